//! Arbitrary datagrams into an Up manually keyed `tunnel::Tunnel` (there is
//! no IKEv2 session in vpn-core yet, so this is the tunnel-level state-machine
//! input: `Tunnel::handle_datagram`). Built as in `vpn-core/src/tunnel/tests.rs`.
//!
//! Input: up to four records, each a control byte then
//! - raw (bit 0 clear): a length byte and that many bytes of UDP payload; or
//! - sealed (bit 0 set): a length byte and inner bytes that the peer seals
//!   (as an IPv4 packet from its LAN, or outside it with bit 3), then a
//!   (position u16, XOR u8) tamper.
//!
//! Bit 1 picks port 500 or 4500, bit 2 a wrong peer address. Properties: no
//! panic; the tunnel stays Up; a raw or tampered datagram never yields an
//! inner packet; a decrypted inner packet lies inside the buffer; afterwards
//! a fresh packet from the peer still gets through.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use vpn_core::time::Timestamp;
use vpn_core::tunnel::{Received, Tunnel, TunnelState};
use vpn_core_fuzz::{ipv4, tunnel_pair, Input, TUNNEL_A, TUNNEL_B};

fn seal(from: &mut Tunnel, now: Timestamp, inner: &[u8]) -> Vec<u8> {
    let h = from.headroom();
    let mut buf = vec![0u8; h + inner.len() + from.tailroom()];
    buf[h..h + inner.len()].copy_from_slice(inner);
    let t = from.send_inner(now, &mut buf, inner.len()).expect("seal");
    buf.truncate(t.len);
    buf
}

fuzz_target!(|data: &[u8]| {
    let (mut a, mut b) = tunnel_pair();
    let now = Timestamp::from_secs(1);
    let mut input = Input::new(data);
    for _ in 0..4 {
        if input.is_empty() {
            break;
        }
        let ctl = input.u8();
        let port = if ctl & 2 != 0 { 4500 } else { 500 };
        let local: SocketAddr = TUNNEL_A.parse().unwrap();
        let local = SocketAddr::new(local.ip(), port);
        let remote: SocketAddr = if ctl & 4 != 0 {
            "203.0.113.9:4500".parse().unwrap()
        } else {
            TUNNEL_B.parse().unwrap()
        };
        let n = usize::from(input.u8());
        let body = input.bytes(n);
        let (mut buf, genuine) = if ctl & 1 == 0 {
            (body.to_vec(), false)
        } else {
            let dst = if ctl & 8 != 0 {
                [172, 16, 0, 1]
            } else {
                [10, 1, 0, 1]
            };
            let mut inner = ipv4([10, 2, 0, 1], dst, 20 + body.len());
            inner[20..].copy_from_slice(body);
            let mut dgram = seal(&mut b, now, &inner);
            let pos = usize::from(input.u16()) % dgram.len();
            let mask = input.u8();
            dgram[pos] ^= mask;
            (dgram, mask == 0)
        };
        let len = buf.len();
        match a.handle_datagram(now, local, remote, &mut buf) {
            Received::Inner { range } => {
                assert!(genuine, "an unauthenticated datagram gave an inner packet");
                assert!(range.end <= len);
            }
            Received::Control | Received::Dropped(_) => {}
        }
        while a.poll_event().is_some() {}
        assert_eq!(a.state(), TunnelState::Up);
    }
    // Still carries traffic.
    let inner = ipv4([10, 2, 0, 7], [10, 1, 0, 7], 60);
    let mut dgram = seal(&mut b, now, &inner);
    let got = a.handle_datagram(
        now,
        TUNNEL_A.parse().unwrap(),
        TUNNEL_B.parse().unwrap(),
        &mut dgram,
    );
    match got {
        Received::Inner { range } => assert_eq!(&dgram[range], &inner[..]),
        other => panic!("tunnel stopped carrying traffic: {other:?}"),
    }
});
