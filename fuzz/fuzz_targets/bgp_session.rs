//! Arbitrary TCP bytes from the peer into an Established neighbour of a
//! `bgp::speaker::Speaker` (set up as in `vpn-core/src/bgp/tests/fuzz.rs`):
//! never a panic. Afterwards, if the session is still Established it must
//! still be alive: over the next 21 s (hold time 30 s, keepalive 10 s) the
//! speaker sends KEEPALIVEs and stays Established; if it went down, it said
//! so with a Down event.
//!
//! Input: byte 0 is the chunk size (1..=256), the rest the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpn_core::bgp::session::{ConnectionId, SessionEvent, State};
use vpn_core::bgp::speaker::SpeakerEvent;
use vpn_core::bgp::wire::{Framer, Message};
use vpn_core::time::Timestamp;
use vpn_core_fuzz::{bgp_established, BGP_CTX};

fn keepalives_in(out: &[u8]) -> usize {
    let mut f = Framer::new();
    let mut rest = out;
    let mut n = 0;
    loop {
        let k = f.push(rest);
        rest = &rest[k..];
        match f.next_frame() {
            Some(Ok(frame)) => {
                if let Ok((Message::Keepalive, _)) = Message::decode(&frame.bytes, &BGP_CTX) {
                    n += 1;
                }
            }
            _ => return n,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let (mut sp, peer) = bgp_established();
    let t1 = Timestamp::from_secs(1);
    for piece in stream.chunks(usize::from(chunk) + 1) {
        sp.handle_bytes(t1, peer, ConnectionId::Inbound, piece);
    }
    let mut out = Vec::new();
    while sp.poll_transmit(&mut out).is_some() {}
    let mut down = false;
    while let Some(e) = sp.poll_event() {
        down |= matches!(
            e,
            SpeakerEvent::Session {
                event: SessionEvent::Down { .. },
                ..
            }
        );
    }
    while sp.poll_action().is_some() {}
    let state = sp.session(peer).expect("peer").state();
    if state != State::Established {
        assert!(down, "left Established ({state:?}) without a Down event");
        return;
    }
    assert!(!down, "Down event but still Established");
    // Still alive: run the timers for 21 s, short of the 30 s hold time.
    let until = Timestamp::from_secs(22);
    let mut now = t1;
    let mut sent = Vec::new();
    let mut steps = 0;
    while let Some(t) = sp.poll_timeout() {
        if t > until {
            break;
        }
        steps += 1;
        assert!(
            steps < 10_000,
            "timer storm: deadline {t:?} keeps coming back"
        );
        now = now.max(t);
        sp.handle_timeout(now);
        while sp.poll_transmit(&mut sent).is_some() {}
        while sp.poll_event().is_some() {}
        while sp.poll_action().is_some() {}
    }
    assert_eq!(
        sp.session(peer).expect("peer").state(),
        State::Established,
        "session died on its own within the hold time"
    );
    assert!(keepalives_in(&sent) >= 1, "no KEEPALIVE sent in 21 s");
});
