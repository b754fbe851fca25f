//! Arbitrary input into an established session (inside a speaker, so received UPDATEs
//! reach the RIB): never a panic; either ignored, or NOTIFICATION + Down.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use crate::bgp::policy::Policy;
use crate::bgp::session::{Action, ConnectMode, ConnectionId, SessionConfig, SessionEvent, State};
use crate::bgp::speaker::{NeighborConfig, PeerId, Speaker, SpeakerConfig, SpeakerEvent};
use crate::bgp::wire::{
    Afi, Capability, Framer, Message, NotificationMessage, OpenMessage, Safi, WireContext,
};
use crate::entropy::SeededEntropy;
use crate::time::Timestamp;

const CTX: WireContext = WireContext {
    four_octet_as: true,
};

fn established() -> (Speaker, PeerId) {
    let mut sp = Speaker::new(
        SpeakerConfig::new(65000, Ipv4Addr::new(10, 0, 0, 1)),
        Box::new(SeededEntropy::new(5)),
    );
    let mut s = SessionConfig::new(
        65000,
        Ipv4Addr::new(10, 0, 0, 1),
        64512,
        IpAddr::V4(Ipv4Addr::new(169, 254, 10, 2)),
        IpAddr::V4(Ipv4Addr::new(169, 254, 10, 1)),
    );
    s.mode = ConnectMode::Passive;
    let mut n = NeighborConfig::new(s);
    n.import = Some(Policy::accept_all());
    n.export = Some(Policy::accept_all());
    let peer = sp.add_neighbor(n).unwrap();
    sp.start(Timestamp::ZERO, peer);
    sp.handle_connected(Timestamp::ZERO, peer, ConnectionId::Inbound);
    let caps = vec![
        Capability::Multiprotocol {
            afi: Afi::IPV4,
            safi: Safi::UNICAST,
        },
        Capability::Multiprotocol {
            afi: Afi::IPV6,
            safi: Safi::UNICAST,
        },
        Capability::FourOctetAs(64512),
    ];
    let open = OpenMessage::new(64512, 30, Ipv4Addr::new(10, 0, 0, 2), caps);
    let mut bytes = Message::Open(open).to_vec(&CTX).unwrap();
    bytes.extend(Message::Keepalive.to_vec(&CTX).unwrap());
    sp.handle_bytes(Timestamp::ZERO, peer, ConnectionId::Inbound, &bytes);
    let mut sink = Vec::new();
    while sp.poll_transmit(&mut sink).is_some() {}
    while sp.poll_event().is_some() {}
    while sp.poll_action().is_some() {}
    assert_eq!(sp.session(peer).unwrap().state(), State::Established);
    (sp, peer)
}

/// A chunk of input: raw bytes, or a message with a valid header and random body.
fn arb_chunk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..120),
        (1u8..=6, prop::collection::vec(any::<u8>(), 0..200)).prop_map(|(t, body)| {
            let mut m = vec![0xff; 16];
            m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
            m.push(t);
            m.extend_from_slice(&body);
            m
        }),
        // Structurally plausible UPDATEs: lengths consistent, contents random.
        (
            prop::collection::vec(any::<u8>(), 0..20),
            prop::collection::vec(any::<u8>(), 0..80),
            prop::collection::vec(any::<u8>(), 0..20)
        )
            .prop_map(|(w, a, n)| {
                let mut body = (w.len() as u16).to_be_bytes().to_vec();
                body.extend_from_slice(&w);
                body.extend_from_slice(&(a.len() as u16).to_be_bytes());
                body.extend_from_slice(&a);
                body.extend_from_slice(&n);
                let mut m = vec![0xff; 16];
                m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
                m.push(2);
                m.extend_from_slice(&body);
                m
            }),
    ]
}

fn sent_notifications(bytes: &[u8]) -> Vec<NotificationMessage> {
    let mut f = Framer::new();
    let mut rest = bytes;
    let mut out = Vec::new();
    loop {
        let n = f.push(rest);
        rest = &rest[n..];
        let Some(Ok(frame)) = f.next_frame() else {
            break;
        };
        if let Ok((Message::Notification(n), _)) = frame.decode(&CTX) {
            out.push(n);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn prop_arbitrary_input_is_ignored_or_ends_in_notification_and_down(
        chunks in prop::collection::vec(arb_chunk(), 1..6),
        split in 1usize..40,
    ) {
        let (mut sp, peer) = established();
        let stream: Vec<u8> = chunks.concat();
        for piece in stream.chunks(split) {
            sp.handle_bytes(Timestamp::from_secs(1), peer, ConnectionId::Inbound, piece);
        }
        let mut out = Vec::new();
        while sp.poll_transmit(&mut out).is_some() {}
        let mut downs = Vec::new();
        while let Some(e) = sp.poll_event() {
            if let SpeakerEvent::Session { event: SessionEvent::Down { reason, .. }, .. } = e {
                downs.push(reason);
            }
        }
        let mut closed = false;
        while let Some((_, a)) = sp.poll_action() {
            closed |= a == Action::Close(ConnectionId::Inbound);
        }
        let notes = sent_notifications(&out);
        let state = sp.session(peer).unwrap().state();
        if state == State::Established {
            prop_assert!(notes.is_empty(), "{:?}", notes);
            prop_assert!(downs.is_empty() && !closed);
        } else {
            prop_assert_eq!(downs.len(), 1);
            prop_assert!(closed);
            // Either the peer's own NOTIFICATION ended it, or we sent exactly one and
            // the Down reason names it.
            match (&downs[0], notes.as_slice()) {
                (crate::bgp::session::DownReason::NotificationReceived { .. }, []) => {}
                (crate::bgp::session::DownReason::NotificationSent { code, subcode, .. }, [n]) => {
                    prop_assert_eq!((*code, *subcode), (n.code, n.subcode));
                }
                (reason, notes) => prop_assert!(false, "reason {:?}, sent {:?}", reason, notes),
            }
            // Routes of a failed session are gone.
            prop_assert_eq!(sp.loc_rib_len(), 0);
        }
    }
}
