//! The BGP stream path: bytes into `bgp::wire::Framer` in chunks whose sizes
//! come from the input, every frame through `Message::decode` with both the
//! 2-octet and the 4-octet `WireContext`, and every decoded message encoded
//! again (never a panic; KEEPALIVE, NOTIFICATION and ROUTE-REFRESH must come
//! back equal, and any encoding must decode again without panicking).
//!
//! Input: byte 0 is the chunk size (1..=256), the rest the TCP stream.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use vpn_core::bgp::wire::{Framer, Message, WireContext, MAX_MESSAGE_LEN};

fn check(frame: &Bytes) {
    for four_octet_as in [false, true] {
        let ctx = WireContext { four_octet_as };
        let Ok((msg, _action)) = Message::decode(frame, &ctx) else {
            continue;
        };
        let _ = msg.message_type();
        let _ = msg.encoded_len(&ctx);
        let Ok(bytes) = msg.to_vec(&ctx) else {
            continue;
        };
        assert!(bytes.len() <= MAX_MESSAGE_LEN);
        let back = Message::decode(&Bytes::from(bytes), &ctx);
        if matches!(
            msg,
            Message::Keepalive | Message::Notification(_) | Message::RouteRefresh(_)
        ) {
            assert_eq!(
                back.map(|(m, _)| m),
                Ok(msg),
                "round trip changed the message"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk) + 1;
    let mut framer = Framer::new();
    for mut piece in stream.chunks(chunk) {
        while !piece.is_empty() {
            let n = framer.push(piece);
            piece = &piece[n..];
            while let Some(frame) = framer.next_frame() {
                if let Ok(frame) = frame {
                    assert_eq!(frame.bytes.len(), usize::from(frame.header.length));
                    check(&frame.bytes);
                }
            }
            assert!(framer.buffered_len() <= MAX_MESSAGE_LEN);
        }
    }
    // Frames decode the same way whether the framer or a caller holds them.
    check(&Bytes::copy_from_slice(stream));
});
