//! `ike::v2::wire::Message::decode` on arbitrary datagrams. When it decodes:
//! `encode()` succeeds, decoding that gives the same message (header fields
//! the encoder computes aside), and the encoding is canonical: a second
//! decode/encode cycle reproduces it byte for byte (the codec promises
//! byte-exactness for canonical input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpn_core::ike::v2::wire::{Header, Message};

fuzz_target!(|data: &[u8]| {
    // The header-only decoder never panics either.
    let _ = Header::decode(data);
    let Ok(msg) = Message::decode(data) else {
        return;
    };
    assert_eq!(msg.header.length as usize, data.len());
    let bytes = match msg.encode() {
        Ok(b) => b,
        // Re-encoding can exceed a length field only if decoding was lax.
        Err(e) => panic!("decoded message does not encode: {e:?}"),
    };
    let back = Message::decode(&bytes).expect("encoded message decodes");
    assert_eq!(back.payloads, msg.payloads);
    let mut h = msg.header;
    h.length = back.header.length;
    h.next_payload = back.header.next_payload;
    assert_eq!(back.header, h);
    assert_eq!(back.header.length as usize, bytes.len());
    assert_eq!(
        back.encode().expect("re-encode"),
        bytes,
        "encoding not canonical"
    );
});
