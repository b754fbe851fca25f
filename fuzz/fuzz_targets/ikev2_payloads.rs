//! `ike::v2::wire::decode_payloads(first, bytes)`: byte 0 is the type of the
//! first payload, the rest the chain (as inside an SK payload). A chain that
//! decodes re-encodes, and the re-encoding is a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpn_core::ike::v2::wire::{decode_payloads, encode_payloads, PayloadType};

fuzz_target!(|data: &[u8]| {
    let Some((&first, chain)) = data.split_first() else {
        return;
    };
    let Ok(payloads) = decode_payloads(PayloadType(first), chain) else {
        return;
    };
    let (first2, bytes) = encode_payloads(&payloads).expect("decoded payloads encode");
    if !payloads.is_empty() {
        assert_eq!(first2, PayloadType(first));
    }
    let back = decode_payloads(first2, &bytes).expect("encoded payloads decode");
    assert_eq!(back, payloads);
    let (_, again) = encode_payloads(&back).expect("re-encode");
    assert_eq!(again, bytes, "payload encoding not canonical");
});
