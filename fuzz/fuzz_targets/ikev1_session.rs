//! Arbitrary datagrams to two established IKEv1 sessions (AWS's default
//! profile, `aes128-sha1-modp1024` with PFS), built afresh for every input
//! like the in-memory pair of `vpn-core/src/ike/v1/tests.rs`.
//!
//! Input: up to four records, each a control byte then either
//! - raw (bit 2 clear): a length byte and that many bytes, the datagram; or
//! - sample (bit 2 set): a byte picking one of the datagrams the pair
//!   exchanged while connecting (right cookies get past the SA lookup), then
//!   up to three (position u16, value u8) overwrites.
//!
//! Bit 0 picks the receiver (A or B), bit 1 port 500 or 4500 (where the
//! sample gets its non-ESP marker). After each datagram the pair runs until
//! quiet. Property: no panic, and nobody without the keys can take the
//! sessions down: both stay established with their one child SA.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpn_core_fuzz::{sock, Ikev1Pair, Input, V1_A, V1_B};

fuzz_target!(|data: &[u8]| {
    let mut p = Ikev1Pair::established("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    let samples: Vec<Vec<u8>> = p.log.iter().map(|(_, b)| b.clone()).collect();
    let mut input = Input::new(data);
    for _ in 0..4 {
        if input.is_empty() {
            break;
        }
        let ctl = input.u8();
        let to_a = ctl & 1 != 0;
        let port = if ctl & 2 != 0 { 4500 } else { 500 };
        let bytes = if ctl & 4 == 0 {
            let n = usize::from(input.u8());
            input.bytes(n).to_vec()
        } else {
            let mut b = samples[usize::from(input.u8()) % samples.len()].clone();
            for _ in 0..input.u8() % 4 {
                let pos = usize::from(input.u16()) % b.len();
                b[pos] = input.u8();
            }
            if port == 4500 {
                b.splice(0..0, [0, 0, 0, 0]);
            }
            b
        };
        let now = p.now;
        let _ = if to_a {
            p.a.handle_datagram(now, sock(V1_A, port), sock(V1_B, port), &bytes)
        } else {
            p.b.handle_datagram(now, sock(V1_B, port), sock(V1_A, port), &bytes)
        };
        p.drive();
        assert!(
            p.a.is_established() && p.b.is_established(),
            "a session went down"
        );
        assert_eq!(p.a.child_sas().count(), 1, "A lost or gained a child SA");
        assert_eq!(p.b.child_sas().count(), 1, "B lost or gained a child SA");
    }
});
