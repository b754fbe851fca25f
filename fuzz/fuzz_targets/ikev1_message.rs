//! The ISAKMP decoder (`ike::v1::wire`): `Message::decode` on arbitrary
//! datagrams, plus `split_datagram` and `decode_chain` (the path encrypted
//! bodies take after decryption). A decoded message re-encodes to bytes that
//! decode to the same message, and that encoding is a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpn_core::ike::v1::wire::{decode_chain, split_datagram, Message, Payload, PayloadType};

fuzz_target!(|data: &[u8]| {
    if let Ok((header, body)) = split_datagram(data) {
        if let Ok((raw, end)) = decode_chain(header.next_payload, body) {
            assert!(end <= body.len());
            for p in &raw {
                assert!(p.start < p.end && p.end <= end);
                let _ = Payload::decode(p.payload_type, p.body(body));
            }
        }
    }
    // The first byte as a chain type, the rest as a decrypted body.
    if let Some((&t, chain)) = data.split_first() {
        let _ = decode_chain(PayloadType(t), chain);
    }
    let Ok(msg) = Message::decode(data) else {
        return;
    };
    let bytes = msg.encode();
    let back = Message::decode(&bytes).expect("encoded message decodes");
    assert_eq!(back.payloads, msg.payloads);
    assert_eq!(back.header.length as usize, bytes.len());
    assert_eq!(back.encode(), bytes, "encoding not canonical");
});
