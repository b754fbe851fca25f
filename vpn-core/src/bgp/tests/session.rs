//! FSM tests: two `Session`s back to back on a virtual clock.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bytes::Bytes;

use super::harness::Net;
use crate::bgp::session::{
    Action, ConnectMode, ConnectionId, DownReason, Session, SessionConfig, SessionEvent, State,
};
use crate::bgp::wire::notification::{cease_subcode, fsm_subcode, open_subcode};
use crate::bgp::wire::{ErrorCode, Framer, Message, NotificationMessage, WireContext};
use crate::entropy::SeededEntropy;
use crate::time::Timestamp;

const CGW_ASN: u32 = 65000;
const AWS_ASN: u32 = 64512;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn cgw_config() -> SessionConfig {
    SessionConfig::new(
        CGW_ASN,
        Ipv4Addr::new(10, 0, 0, 1),
        AWS_ASN,
        ip("169.254.10.2"),
        ip("169.254.10.1"),
    )
}

pub fn aws_config() -> SessionConfig {
    SessionConfig::new(
        AWS_ASN,
        Ipv4Addr::new(10, 0, 0, 2),
        CGW_ASN,
        ip("169.254.10.1"),
        ip("169.254.10.2"),
    )
}

fn session(cfg: SessionConfig, seed: u64) -> Session {
    Session::new(cfg, Box::new(SeededEntropy::new(seed))).unwrap()
}

fn pair(a: SessionConfig, b: SessionConfig) -> Net<Session> {
    let mut net = Net::new(vec![session(a, 1), session(b, 2)]);
    net.wire((0, ()), (1, ()));
    net
}

fn established_pair() -> Net<Session> {
    let mut b = aws_config();
    b.mode = ConnectMode::Passive;
    let mut net = pair(cgw_config(), b);
    let now = net.now;
    net.nodes[0].start(now);
    net.nodes[1].start(now);
    net.drive();
    assert_eq!(net.nodes[0].state(), State::Established);
    assert_eq!(net.nodes[1].state(), State::Established);
    net
}

fn downs(net: &Net<Session>, node: usize) -> Vec<(Timestamp, DownReason)> {
    net.events[node]
        .iter()
        .filter_map(|(t, e)| match e {
            SessionEvent::Down { reason, .. } => Some((*t, reason.clone())),
            _ => None,
        })
        .collect()
}

/// Every NOTIFICATION a node sent, decoded from the trace.
fn notifications_from(net: &Net<Session>, node: usize) -> Vec<NotificationMessage> {
    let mut out = Vec::new();
    for (from, bytes) in &net.trace {
        if *from != node {
            continue;
        }
        let mut f = Framer::new();
        let mut rest = &bytes[..];
        loop {
            let n = f.push(rest);
            rest = &rest[n..];
            let Some(Ok(frame)) = f.next_frame() else {
                break;
            };
            if let Ok((Message::Notification(n), _)) = frame.decode(&WireContext {
                four_octet_as: true,
            }) {
                out.push(n);
            }
        }
    }
    out
}

#[test]
fn establishes_active_to_passive_with_state_sequence() {
    let net = established_pair();
    let states: Vec<State> = net.events[0]
        .iter()
        .filter_map(|(_, e)| match e {
            SessionEvent::StateChanged { to, .. } => Some(*to),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        vec![
            State::Connect,
            State::OpenSent,
            State::OpenConfirm,
            State::Established
        ]
    );
    let n = net.nodes[0].negotiated().unwrap();
    assert_eq!(n.hold_time, 30);
    assert_eq!(n.keepalive_time, 10);
    assert!(n.four_octet_as && n.ipv4_unicast && n.ipv6_unicast && n.route_refresh);
    assert_eq!(n.peer_asn, AWS_ASN);
    assert!(net.events[1]
        .iter()
        .any(|(_, e)| matches!(e, SessionEvent::Established { .. })));
}

#[test]
fn passive_side_never_connects() {
    let mut a = cgw_config();
    a.mode = ConnectMode::Passive;
    let mut b = aws_config();
    b.mode = ConnectMode::Passive;
    let mut net = pair(a, b);
    net.nodes[0].start(Timestamp::ZERO);
    net.nodes[1].start(Timestamp::ZERO);
    net.run_for(Duration::from_secs(600));
    assert_eq!(net.nodes[0].state(), State::Active);
    assert_eq!(net.open_connections(), 0);
}

#[test]
fn keepalives_keep_it_up_for_ten_minutes() {
    let mut net = established_pair();
    net.run_for(Duration::from_secs(600));
    assert_eq!(net.nodes[0].state(), State::Established);
    assert_eq!(net.nodes[1].state(), State::Established);
    assert!(downs(&net, 0).is_empty() && downs(&net, 1).is_empty());
    // About one keepalive each 7.5–10 s from each side: 60–80 in 600 s, plus OPEN phase.
    let keepalives = net
        .trace
        .iter()
        .filter(|(from, b)| *from == 0 && b.len() == 19 && b[18] == 4)
        .count();
    assert!((60..=82).contains(&keepalives), "{keepalives} keepalives");
}

#[test]
fn hold_timer_expires_when_peer_goes_silent() {
    let mut net = established_pair();
    net.run_for(Duration::from_secs(60));
    net.muted.insert(1);
    // The last thing node 0 heard from node 1 (a keepalive up to 10 s ago).
    let last_heard = net.last_delivered[1].unwrap();
    net.run_for(Duration::from_secs(60));
    let d = downs(&net, 0);
    assert_eq!(d.len(), 1, "{d:?}");
    let (t, reason) = &d[0];
    assert_eq!(*reason, DownReason::HoldTimerExpired);
    // Exactly the negotiated hold time after the last message.
    assert_eq!(*t, last_heard + Duration::from_secs(30));
    let n = notifications_from(&net, 0);
    assert_eq!(n.last().unwrap().code, ErrorCode::HOLD_TIMER_EXPIRED);
    // Then Idle, with backoff.
    assert_ne!(net.nodes[0].state(), State::Established);
}

#[test]
fn wrong_peer_asn_sends_bad_peer_as_and_names_both() {
    let mut a = cgw_config();
    a.peer_asn = 64999; // expects the wrong AS
    let mut b = aws_config();
    b.mode = ConnectMode::Passive;
    let mut net = pair(a, b);
    net.nodes[0].start(Timestamp::ZERO);
    net.nodes[1].start(Timestamp::ZERO);
    net.drive();
    let d = downs(&net, 0);
    assert_eq!(
        d[0].1,
        DownReason::BadPeerAs {
            expected: 64999,
            received: AWS_ASN
        }
    );
    let n = &notifications_from(&net, 0)[0];
    assert_eq!(
        (n.code, n.subcode),
        (ErrorCode::OPEN_MESSAGE, open_subcode::BAD_PEER_AS)
    );
    // The other side saw the NOTIFICATION.
    match &downs(&net, 1)[0].1 {
        DownReason::NotificationReceived { code, subcode, .. } => {
            assert_eq!((*code, *subcode), (ErrorCode::OPEN_MESSAGE, 2))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(net.nodes[0].state(), State::Idle);
}

#[test]
fn hold_time_one_is_unacceptable() {
    // Our config refuses 1 s; a raw peer offering it gets Unacceptable Hold Time.
    let mut bad = cgw_config();
    bad.hold_time = 1;
    assert!(Session::new(bad, Box::new(SeededEntropy::new(0))).is_err());

    let mut s = session(aws_config(), 3);
    s.start(Timestamp::ZERO);
    s.handle_connected(Timestamp::ZERO, ConnectionId::Inbound);
    let open = crate::bgp::wire::OpenMessage::new(CGW_ASN, 1, Ipv4Addr::new(10, 0, 0, 1), vec![]);
    let bytes = Message::Open(open).to_vec(&WireContext::default()).unwrap();
    s.handle_bytes(Timestamp::ZERO, ConnectionId::Inbound, &bytes);
    let mut out = Vec::new();
    while s.poll_transmit(&mut out).is_some() {}
    let mut f = Framer::new();
    f.push(&out);
    let msgs: Vec<Message> = std::iter::from_fn(|| f.next_frame())
        .map(|fr| fr.unwrap().decode(&WireContext::default()).unwrap().0)
        .collect();
    assert!(matches!(msgs[0], Message::Open(_)));
    let Message::Notification(n) = &msgs[1] else {
        panic!("{msgs:?}")
    };
    assert_eq!(
        (n.code, n.subcode),
        (
            ErrorCode::OPEN_MESSAGE,
            open_subcode::UNACCEPTABLE_HOLD_TIME
        )
    );
    assert_eq!(s.poll_action(), Some(Action::Connect));
    assert_eq!(s.poll_action(), Some(Action::Close(ConnectionId::Inbound)));
}

#[test]
fn hold_time_zero_negotiates_no_keepalives() {
    let mut a = cgw_config();
    a.hold_time = 0;
    let mut b = aws_config();
    b.mode = ConnectMode::Passive;
    let mut net = pair(a, b);
    net.nodes[0].start(Timestamp::ZERO);
    net.nodes[1].start(Timestamp::ZERO);
    net.drive();
    assert_eq!(net.nodes[1].negotiated().unwrap().hold_time, 0);
    let before = net.trace.len();
    net.run_for(Duration::from_secs(3600));
    assert_eq!(net.trace.len(), before);
    assert_eq!(net.nodes[1].state(), State::Established);
}

#[test]
fn collision_keeps_the_connection_of_the_higher_identifier() {
    // Both active: both connect at once; two connections, one survives.
    let mut net = pair(cgw_config(), aws_config());
    net.nodes[0].start(Timestamp::ZERO);
    net.nodes[1].start(Timestamp::ZERO);
    net.drive();
    assert_eq!(net.nodes[0].state(), State::Established);
    assert_eq!(net.nodes[1].state(), State::Established);
    assert_eq!(net.open_connections(), 1);
    // Node 1 (10.0.0.2) has the higher identifier: its outbound connection survives,
    // the other got Cease / Connection Collision Resolution.
    let cease = notifications_from(&net, 1);
    assert!(cease.iter().any(|n| n.code == ErrorCode::CEASE
        && n.subcode == cease_subcode::CONNECTION_COLLISION_RESOLUTION));
    assert!(downs(&net, 0).is_empty() && downs(&net, 1).is_empty());
    net.run_for(Duration::from_secs(120));
    assert_eq!(net.nodes[0].state(), State::Established);
    // Sending works over the survivor.
    assert!(net.nodes[0]
        .send_update(&crate::bgp::wire::UpdateMessage::default())
        .is_ok());
}

#[test]
fn idle_hold_backoff_doubles_up_to_the_cap() {
    let mut a = cgw_config();
    a.peer_asn = 64999; // every attempt fails with Bad Peer AS
    a.idle_hold_time = Duration::from_secs(5);
    a.idle_hold_max = Duration::from_secs(40);
    let mut b = aws_config();
    b.mode = ConnectMode::Passive;
    // The peer backs off too (it receives NOTIFICATIONs); keep its backoff short so
    // it is listening again whenever we retry.
    b.idle_hold_time = Duration::from_secs(1);
    b.idle_hold_max = Duration::from_secs(1);
    let mut net = pair(a, b);
    net.nodes[0].start(Timestamp::ZERO);
    net.nodes[1].start(Timestamp::ZERO);
    net.run_for(Duration::from_secs(400));
    let times: Vec<u64> = downs(&net, 0)
        .iter()
        .map(|(t, _)| t.as_nanos() / 1_000_000_000)
        .collect();
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() >= 5, "{times:?}");
    assert_eq!(&gaps[..3], &[5, 10, 20], "{times:?}");
    assert!(gaps[3..].iter().all(|&g| g == 40), "{gaps:?}");
}

#[test]
fn admin_stop_sends_cease_with_shutdown_text() {
    let mut net = established_pair();
    let now = net.now;
    net.nodes[0].stop(now, "maintenance window");
    net.drive();
    let n = notifications_from(&net, 0);
    assert_eq!(n[0].subcode, cease_subcode::ADMINISTRATIVE_SHUTDOWN);
    assert_eq!(n[0].shutdown_communication(), Some("maintenance window"));
    assert_eq!(downs(&net, 0)[0].1, DownReason::AdminDown);
    assert_eq!(
        downs(&net, 1)[0].1,
        DownReason::NotificationReceived {
            code: ErrorCode::CEASE,
            subcode: cease_subcode::ADMINISTRATIVE_SHUTDOWN,
            text: Some("maintenance window".into())
        }
    );
    // Stays down: no reconnection while admin down.
    net.run_for(Duration::from_secs(600));
    assert_eq!(net.nodes[0].state(), State::Idle);
}

#[test]
fn unexpected_open_in_established_is_an_fsm_error() {
    let mut net = established_pair();
    let open = crate::bgp::wire::OpenMessage::new(AWS_ASN, 30, Ipv4Addr::new(10, 0, 0, 2), vec![]);
    let bytes = Message::Open(open).to_vec(&WireContext::default()).unwrap();
    let now = net.now;
    // Node 1 is the passive side: its connection to node 0 is Inbound at node 1, so
    // node 0's is Outbound.
    net.nodes[0].handle_bytes(now, ConnectionId::Outbound, &bytes);
    net.drive();
    let n = notifications_from(&net, 0);
    assert_eq!(
        (n[0].code, n[0].subcode),
        (ErrorCode::FSM, fsm_subcode::UNEXPECTED_IN_ESTABLISHED)
    );
}

#[test]
fn connection_refused_retries_after_connect_retry() {
    let mut a = cgw_config();
    a.connect_retry = Duration::from_secs(120);
    let mut net = pair(a, aws_config());
    // Node 1 never started: refuses (Idle) every connection.
    net.nodes[0].start(Timestamp::ZERO);
    net.run_for(Duration::from_secs(500));
    let connects = net.events[0]
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                SessionEvent::StateChanged {
                    to: State::Connect,
                    ..
                }
            )
        })
        .count();
    // Jittered 90–120 s: 4 or 5 retries after the first attempt in 500 s.
    assert!((5..=6).contains(&connects), "{connects}");
    assert_eq!(net.nodes[0].state(), State::Active);
}

#[test]
fn spurious_timeouts_and_garbage_inputs_are_harmless() {
    let mut s = session(cgw_config(), 9);
    s.handle_timeout(Timestamp::ZERO);
    s.handle_bytes(Timestamp::ZERO, ConnectionId::Inbound, &[1, 2, 3]);
    s.handle_connection_closed(Timestamp::ZERO, ConnectionId::Outbound);
    s.handle_connected(Timestamp::ZERO, ConnectionId::Inbound); // refused: Idle
    assert_eq!(s.poll_action(), Some(Action::Close(ConnectionId::Inbound)));
    assert_eq!(s.state(), State::Idle);
    for t in 0..10 {
        s.handle_timeout(Timestamp::from_secs(t));
    }
    let _ = Bytes::new();
}

#[test]
fn bad_bgp_identifier_is_refused() {
    for (peer_asn, id) in [
        (CGW_ASN, Ipv4Addr::UNSPECIFIED),
        (AWS_ASN, Ipv4Addr::new(10, 0, 0, 2)),
    ] {
        // eBGP peer with identifier 0, and an iBGP peer reusing our identifier.
        let mut cfg = aws_config();
        cfg.peer_asn = peer_asn;
        let mut s = session(cfg, 4);
        s.start(Timestamp::ZERO);
        s.handle_connected(Timestamp::ZERO, ConnectionId::Inbound);
        let open = crate::bgp::wire::OpenMessage::new(peer_asn, 30, id, vec![]);
        let bytes = Message::Open(open).to_vec(&WireContext::default()).unwrap();
        s.handle_bytes(Timestamp::ZERO, ConnectionId::Inbound, &bytes);
        let mut out = Vec::new();
        while s.poll_transmit(&mut out).is_some() {}
        let mut f = Framer::new();
        f.push(&out);
        let msgs: Vec<Message> = std::iter::from_fn(|| f.next_frame())
            .map(|fr| fr.unwrap().decode(&WireContext::default()).unwrap().0)
            .collect();
        let Message::Notification(n) = &msgs[1] else {
            panic!("{msgs:?}")
        };
        assert_eq!(
            (n.code, n.subcode),
            (ErrorCode::OPEN_MESSAGE, open_subcode::BAD_BGP_IDENTIFIER)
        );
    }
}
