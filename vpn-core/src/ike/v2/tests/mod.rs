//! Two IKEv2 tunnels in memory: establishment, loss, duplication,
//! reordering, negotiation failures, rekeying and its collisions, liveness,
//! NAT traversal, determinism and robustness.

#![allow(clippy::field_reassign_with_default)]

mod interop;
mod util;

use core::time::Duration;

use util::*;

use crate::config::DpdAction;
use crate::ike::v2::wire::{NotifyType, PayloadsExt};
use crate::time::Timestamp;
use crate::tunnel::{DownReason, TunnelEvent, TunnelState};

const SECOND: Duration = Duration::from_secs(1);

fn established(cfg: Config) -> Pair {
    let mut p = Pair::new(cfg);
    p.run_for(SECOND);
    assert!(p.both_up(), "a: {:?}\nb: {:?}", p.a_events, p.b_events);
    p
}

#[test]
fn establishes_and_passes_traffic() {
    let mut p = established(Config::default());
    assert!(p.ping());
    assert!(p.ping());
    // Four IKE messages: IKE_SA_INIT and IKE_AUTH.
    assert_eq!(p.ike_messages().len(), 4);
    let a_out = p.a.child_sa().unwrap().outbound_spi();
    assert_eq!(p.b.child_sa().unwrap().inbound_spi(), a_out);
    assert!(p.a.metrics().ike_sa_up && p.a.metrics().child_sa_up);
    assert!(p
        .a_events
        .iter()
        .any(|e| matches!(e, TunnelEvent::IkeSaEstablished { .. })));
}

#[test]
fn every_ike_suite_establishes() {
    for suite in [
        "aes256gcm16-prfsha256-ecp256",
        "aes256-sha256-modp2048",
        "aes128-sha1-modp2048",
        "aes128-sha1-modp1024",
        "aes256gcm16-prfsha384-ecp384",
        "aes128gcm16-prfsha256-x25519",
        "chacha20poly1305-prfsha256-curve25519",
        "aes256-sha512-ecp521",
    ] {
        let mut p = Pair::new(Config::new(suite, "aes256gcm16"));
        p.run_for(SECOND);
        assert!(p.both_up(), "{suite}: {:?}", p.a_events);
        assert!(p.ping(), "{suite}");
    }
}

#[test]
fn every_esp_suite_passes_traffic() {
    for suite in [
        "aes256gcm16",
        "aes128gcm16",
        "aes256-sha256",
        "aes128-sha1",
        "aes256-sha512",
        "aes256-sha384",
        "chacha20poly1305",
        "aes128gcm16-esn",
    ] {
        let mut p = Pair::new(Config::new("aes256gcm16-prfsha256-ecp256", suite));
        p.run_for(SECOND);
        assert!(p.both_up(), "{suite}: {:?}", p.a_events);
        for _ in 0..3 {
            assert!(p.ping(), "{suite}");
        }
    }
}

/// The n-th IKE datagram (counting both directions) meets `fate`, once.
fn nth_ike(n: usize, fate: Fate) -> Box<dyn FnMut(&Sent) -> Fate> {
    let mut seen = 0;
    Box::new(move |s: &Sent| {
        if s.is_esp() || s.ike_header().is_none() {
            return Fate::Deliver;
        }
        seen += 1;
        if seen == n + 1 {
            fate
        } else {
            Fate::Deliver
        }
    })
}

#[test]
fn each_initial_message_lost_once_is_retransmitted() {
    for n in 0..4 {
        let mut p = Pair::with_filter(Config::default(), nth_ike(n, Fate::Drop));
        p.run_for(3 * SECOND);
        assert!(!p.both_up(), "message {n}: up before any retransmission");
        p.run_for(10 * SECOND);
        assert!(
            p.both_up(),
            "message {n}: {:?} {:?}",
            p.a_events,
            p.b_events
        );
        assert!(p.ping());
        assert!(p.a.metrics().ike_retransmits >= 1);
    }
}

#[test]
fn duplicated_messages_get_identical_responses() {
    for n in 0..4 {
        let mut p = Pair::with_filter(Config::default(), nth_ike(n, Fate::Duplicate));
        p.run_for(SECOND);
        assert!(p.both_up(), "message {n}");
        assert!(p.ping());
        if n % 2 == 0 {
            // A duplicated request is answered twice, byte for byte the same.
            let responses: Vec<_> = p
                .ike_messages()
                .into_iter()
                .filter(|s| !s.from_a)
                .map(|s| s.bytes.clone())
                .collect();
            assert_eq!(responses.len(), 3, "message {n}");
            let dup = &responses[n / 2];
            assert_eq!(responses.iter().filter(|r| *r == dup).count(), 2);
        }
    }
}

#[test]
fn reordered_late_originals_are_ignored() {
    // Each request is held back past its retransmission: the retransmission
    // is answered first, the late original is a duplicate.
    for n in [0, 2] {
        let mut p = Pair::with_filter(
            Config::default(),
            nth_ike(n, Fate::Delay(Duration::from_secs(5))),
        );
        p.run_for(20 * SECOND);
        assert!(p.both_up(), "message {n}: {:?}", p.b_events);
        assert!(p.ping());
        assert_eq!(
            p.a_events
                .iter()
                .filter(|e| matches!(e, TunnelEvent::ChildSaInstalled { .. }))
                .count(),
            1
        );
    }
}

#[test]
fn invalid_ke_payload_retries_with_the_requested_group() {
    let mut cfg = Config::default();
    cfg.a = ike("aes256gcm16-prfsha256-ecp256-modp2048", "aes256gcm16", true);
    cfg.b = ike("aes256gcm16-prfsha256-modp2048", "aes256gcm16", false);
    let mut p = established(cfg);
    let ike = p.ike_messages();
    let first_resp = crate::ike::v2::wire::Message::decode(ike[1].ike().unwrap()).unwrap();
    let n = first_resp
        .find_notify(NotifyType::INVALID_KE_PAYLOAD)
        .unwrap();
    assert_eq!(n.data, 14u16.to_be_bytes());
    let retry = crate::ike::v2::wire::Message::decode(ike[2].ike().unwrap()).unwrap();
    assert_eq!(retry.payloads.ke().unwrap().group, 14);
    assert!(p.ping());
}

#[test]
fn cookie_challenge_is_answered() {
    let mut cfg = Config::default();
    cfg.b.cookie_threshold = 0;
    let mut p = established(cfg);
    let ike = p.ike_messages();
    let challenge = crate::ike::v2::wire::Message::decode(ike[1].ike().unwrap()).unwrap();
    let cookie = challenge
        .find_notify(NotifyType::COOKIE)
        .unwrap()
        .data
        .clone();
    assert_eq!(challenge.header.spi_r, 0);
    let retry = crate::ike::v2::wire::Message::decode(ike[2].ike().unwrap()).unwrap();
    match &retry.payloads[0] {
        crate::ike::v2::wire::Payload::Notify(n) => {
            assert_eq!(n.notify_type, NotifyType::COOKIE);
            assert_eq!(n.data, cookie);
        }
        other => panic!("first payload {other:?}"),
    }
    assert!(p.ping());
}

#[test]
fn wrong_psk_fails_authentication_on_both_sides() {
    let mut cfg = Config::default();
    cfg.b.psk = crate::config::Secret::from("another.secret.entirely");
    let mut p = Pair::new(cfg);
    p.run_for(SECOND);
    let a = Pair::down_reason(&p.a_events).expect("A down");
    let b = Pair::down_reason(&p.b_events).expect("B down");
    assert!(
        matches!(a, DownReason::AuthenticationFailed { .. }),
        "{a:?}"
    );
    assert!(
        matches!(b, DownReason::AuthenticationFailed { .. }),
        "{b:?}"
    );
    assert!(a.to_string().contains("pre-shared key"));
    for e in p.a_events.iter().chain(&p.b_events) {
        let text = format!("{e:?}");
        assert!(!text.contains("correct.horse") && !text.contains("another.secret"));
    }
    assert!(!format!("{:?}", p.a.settings()).contains("correct.horse"));
    assert_eq!(p.a.state(), TunnelState::Down);
}

#[test]
fn no_common_ike_proposal_names_both_offers() {
    let mut cfg = Config::default();
    cfg.a = ike("aes128-sha1-modp2048", "aes256gcm16", true);
    cfg.b = ike("aes256gcm16-prfsha384-ecp384", "aes256gcm16", false);
    let mut p = Pair::new(cfg);
    p.run_for(SECOND);
    let b = Pair::down_reason(&p.b_events).unwrap();
    let text = b.to_string();
    assert!(text.contains("aes256gcm16-prfsha384-ecp384"), "{text}");
    assert!(text.contains("aes128-sha1"), "{text}");
    let a = Pair::down_reason(&p.a_events).unwrap();
    assert!(matches!(a, DownReason::NoProposalChosen { .. }));
    assert!(a.to_string().contains("aes128-sha1"), "{a}");
}

#[test]
fn no_common_esp_proposal_names_both_offers() {
    let mut cfg = Config::default();
    cfg.a = ike("aes256gcm16-prfsha256-ecp256", "aes128-sha1", true);
    cfg.b = ike("aes256gcm16-prfsha256-ecp256", "aes256gcm16", false);
    let mut p = Pair::new(cfg);
    p.run_for(SECOND);
    let b = Pair::down_reason(&p.b_events).unwrap();
    match &b {
        DownReason::NoProposalChosen { ours, theirs } => {
            assert!(ours.contains("aes256gcm16"));
            assert!(theirs.as_deref().unwrap().contains("aes128"), "{b}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Pair::down_reason(&p.a_events),
        Some(DownReason::NoProposalChosen { .. })
    ));
}

#[test]
fn disjoint_traffic_selectors_are_unacceptable() {
    let mut cfg = Config::default();
    cfg.b_remote_lan = Some("10.77.0.0/16");
    let mut p = Pair::new(cfg);
    p.run_for(SECOND);
    assert_eq!(
        Pair::down_reason(&p.a_events),
        Some(DownReason::TsUnacceptable)
    );
    assert_eq!(
        Pair::down_reason(&p.b_events),
        Some(DownReason::TsUnacceptable)
    );
}

#[test]
fn any_to_any_selectors_narrow_to_configuration() {
    let mut cfg = Config::default();
    cfg.a_lan = "0.0.0.0/0";
    cfg.b_lan = "0.0.0.0/0";
    let mut p = established(cfg);
    assert!(p.ping());
}

#[test]
fn silent_peer_is_unreachable_after_five_retransmits_at_strongswan_times() {
    let mut p = Pair::with_filter(
        Config::default(),
        Box::new(|s: &Sent| if s.from_a { Fate::Drop } else { Fate::Deliver }),
    );
    let t0 = p.now;
    // The last retransmission times out at 165.07 s.
    p.run_for(Duration::from_secs(170));
    let sends: Vec<f64> = p
        .transcript
        .iter()
        .filter(|s| s.from_a)
        .map(|s| s.at.saturating_since(t0).as_secs_f64())
        .collect();
    let expected = [0.0, 4.0, 11.2, 24.16, 47.488, 89.4784];
    assert_eq!(sends.len(), expected.len(), "{sends:?}");
    for (s, e) in sends.iter().zip(expected) {
        assert!((s - e).abs() < 0.001, "{sends:?}");
    }
    assert_eq!(
        Pair::down_reason(&p.a_events),
        Some(DownReason::PeerUnreachable { retransmits: 5 })
    );
    let down_at =
        p.a.metrics()
            .last_state_change
            .unwrap()
            .saturating_since(t0)
            .as_secs_f64();
    assert!((down_at - 165.06).abs() < 0.01, "{down_at}");
    assert!(Pair::down_reason(&p.a_events)
        .unwrap()
        .to_string()
        .contains("5 retransmits"));
    // An initiator that must stay up starts over 10 s later, for ever.
    p.run_for(Duration::from_secs(20));
    let restart = p
        .transcript
        .iter()
        .filter(|s| s.from_a)
        .map(|s| s.at.saturating_since(t0).as_secs_f64())
        .nth(6);
    assert!(
        restart.is_some_and(|r| (r - 175.06).abs() < 0.01),
        "{restart:?}"
    );
}

#[test]
fn same_seed_same_transcript() {
    let run = |seed| {
        let mut cfg = Config::default();
        cfg.seed = seed;
        let mut p = established(cfg);
        for _ in 0..3 {
            assert!(p.ping());
        }
        p.run_for(Duration::from_secs(60));
        p.transcript
            .iter()
            .map(|s| (s.from_a, s.at, s.bytes.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

/// Sends a packet each way every `interval` for `d`; returns the number sent each way.
fn traffic(p: &mut Pair, d: Duration, interval: Duration) -> usize {
    let end = p.now + d;
    let mut n = 0;
    while p.now < end {
        let ab = ipv4([10, 1, 0, 5], [10, 2, 0, 7], 100, n as u8);
        let ba = ipv4([10, 2, 0, 7], [10, 1, 0, 5], 100, n as u8);
        assert!(p.send_inner(true, &ab), "A could not send at {:?}", p.now);
        assert!(p.send_inner(false, &ba), "B could not send at {:?}", p.now);
        n += 1;
        p.run_for(interval);
    }
    p.run_for(SECOND);
    n
}

fn count(events: &[TunnelEvent], f: impl Fn(&TunnelEvent) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

/// Each side's active outbound SA is an inbound SA the other side holds
/// (right after a rekey the responder may still send on the old pair, whose
/// inbound half the initiator keeps for a few seconds); with one pair on
/// each side, the two pairs mirror each other.
fn pairs_match(p: &Pair) {
    let a = p.a.child_sa().unwrap();
    let b = p.b.child_sa().unwrap();
    assert!(p.b.child_sas().any(|c| c.inbound_spi() == a.outbound_spi()));
    assert!(p.a.child_sas().any(|c| c.inbound_spi() == b.outbound_spi()));
    if p.a.child_sas().count() == 1 && p.b.child_sas().count() == 1 {
        assert_eq!(a.outbound_spi(), b.inbound_spi());
        assert_eq!(b.outbound_spi(), a.inbound_spi());
    }
}

fn short_child_lifetimes() -> Config {
    let mut cfg = Config::default();
    cfg.a.lifetimes.child = Duration::from_secs(60);
    cfg.a.lifetimes.margin = Duration::from_secs(10);
    cfg.a.lifetimes.fuzz_percent = 0;
    cfg.b.lifetimes.child = Duration::from_secs(120);
    cfg.b.lifetimes.margin = Duration::from_secs(10);
    cfg.b.lifetimes.fuzz_percent = 0;
    cfg
}

#[test]
fn child_rekey_under_continuous_traffic_loses_nothing() {
    let mut p = established(short_child_lifetimes());
    let first = p.a.child_sa().unwrap().inbound_spi();
    let sent = traffic(&mut p, Duration::from_secs(80), Duration::from_millis(50));
    assert_eq!(p.b_inner.len(), sent, "A→B lost packets");
    assert_eq!(p.a_inner.len(), sent, "B→A lost packets");
    assert_eq!(
        count(&p.a_events, |e| matches!(
            e,
            TunnelEvent::ChildSaRekeyed { .. }
        )),
        1
    );
    assert_eq!(
        count(&p.b_events, |e| matches!(
            e,
            TunnelEvent::ChildSaRekeyed { .. }
        )),
        1
    );
    assert_ne!(p.a.child_sa().unwrap().inbound_spi(), first);
    assert_eq!(p.a.child_sas().count(), 1);
    assert_eq!(p.b.child_sas().count(), 1);
    pairs_match(&p);
    assert!(p.both_up());
}

#[test]
fn child_rekey_with_pfs() {
    let mut cfg = short_child_lifetimes();
    cfg.a.esp_proposals = crate::ike::proposal::parse_esp_proposals("aes256gcm16-ecp256").unwrap();
    cfg.b.esp_proposals = crate::ike::proposal::parse_esp_proposals("aes256gcm16-ecp256").unwrap();
    let mut p = established(cfg);
    p.run_for(Duration::from_secs(55));
    let rekey = p
        .ike_messages()
        .into_iter()
        .find(|s| {
            s.ike_header().is_some_and(|h| {
                h.exchange_type == crate::ike::v2::wire::ExchangeType::CREATE_CHILD_SA
            })
        })
        .is_some();
    assert!(rekey);
    assert!(p.ping());
    pairs_match(&p);
}

#[test]
fn soft_packet_limit_triggers_a_rekey() {
    let mut cfg = Config::default();
    cfg.a.lifetimes.child_soft_packets = Some(20);
    let mut p = established(cfg);
    let sent = traffic(&mut p, Duration::from_secs(2), Duration::from_millis(100));
    assert_eq!(p.b_inner.len(), sent);
    assert!(
        count(&p.a_events, |e| matches!(
            e,
            TunnelEvent::ChildSaRekeyed { .. }
        )) >= 1
    );
    assert!(p.ping());
}

#[test]
fn ike_rekey_moves_children_and_keeps_working() {
    let mut cfg = Config::default();
    cfg.a.lifetimes.ike = Duration::from_secs(100);
    cfg.a.lifetimes.margin = Duration::from_secs(10);
    cfg.a.lifetimes.fuzz_percent = 0;
    let mut p = established(cfg);
    let sent = traffic(&mut p, Duration::from_secs(85), Duration::from_millis(500));
    let sent = sent + traffic(&mut p, Duration::from_secs(10), Duration::from_millis(500));

    assert_eq!(p.b_inner.len(), sent);
    assert_eq!(p.a_inner.len(), sent);
    assert_eq!(
        count(&p.a_events, |e| matches!(
            e,
            TunnelEvent::IkeSaRekeyed { .. }
        )),
        1
    );
    assert_eq!(
        count(&p.b_events, |e| matches!(
            e,
            TunnelEvent::IkeSaRekeyed { .. }
        )),
        1
    );
    // The new IKE SA negotiates a child rekey and answers liveness checks.
    p.a.rekey_child(p.now);
    p.pump();
    p.run_for(SECOND);
    assert_eq!(
        count(&p.a_events, |e| matches!(
            e,
            TunnelEvent::ChildSaRekeyed { .. }
        )),
        1
    );
    p.run_for(Duration::from_secs(60));
    assert!(p.both_up());
    assert!(p.ping());
    pairs_match(&p);
    assert_eq!(p.a.metrics().ike_rekeys, 1);
}

#[test]
fn simultaneous_child_rekeys_resolve_to_one_pair() {
    for seed in 1..6 {
        let mut cfg = Config::default();
        cfg.seed = seed;
        let mut p = established(cfg);
        let now = p.now;
        p.a.rekey_child(now);
        p.b.rekey_child(now);
        p.pump();
        p.run_for(Duration::from_secs(10));
        assert_eq!(p.a.child_sas().count(), 1, "seed {seed}");
        assert_eq!(p.b.child_sas().count(), 1, "seed {seed}");
        pairs_match(&p);
        assert!(p.ping(), "seed {seed}");
        assert!(p.both_up());
    }
}

#[test]
fn delete_crossing_a_rekey_removes_the_child() {
    let mut p = established(Config::default());
    let now = p.now;
    p.a.rekey_child(now);
    p.b.delete_child(now);
    p.pump();
    p.run_for(Duration::from_secs(10));
    assert_eq!(p.a.child_sas().count(), 0);
    assert_eq!(p.b.child_sas().count(), 0);
    assert!(p.a.metrics().ike_sa_up && p.b.metrics().ike_sa_up);
    assert_eq!(Pair::down_reason(&p.a_events), None);
}

fn cut_network_after(p: &mut Pair) {
    p.filter = Box::new(|_| Fate::Drop);
}

#[test]
fn dpd_timeout_clear() {
    let mut p = established(Config::default());
    cut_network_after(&mut p);
    let t0 = p.now;
    p.run_for(Duration::from_secs(60));
    assert_eq!(Pair::down_reason(&p.a_events), Some(DownReason::DpdTimeout));
    let at =
        p.a.metrics()
            .last_state_change
            .unwrap()
            .saturating_since(t0);
    // 10 s of silence, then 30 s without an answer.
    assert!(
        at >= Duration::from_secs(39) && at <= Duration::from_secs(41),
        "{at:?}"
    );
    assert_eq!(p.a.state(), TunnelState::Down);
}

#[test]
fn dpd_timeout_restart_reconnects() {
    let mut cfg = Config::default();
    cfg.a.dpd.action = DpdAction::Restart;
    let mut p = established(cfg);
    cut_network_after(&mut p);
    p.run_for(Duration::from_secs(42));
    assert_eq!(Pair::down_reason(&p.a_events), Some(DownReason::DpdTimeout));
    assert_eq!(p.a.state(), TunnelState::Connecting);
    p.filter = Box::new(|_| Fate::Deliver);
    p.run_for(Duration::from_secs(30));
    assert!(p.both_up(), "{:?}", p.b_events);
    assert!(p.ping());
    pairs_match(&p);
}

#[test]
fn dpd_timeout_none_keeps_the_sas() {
    let mut cfg = Config::default();
    cfg.a.dpd.action = DpdAction::None;
    cfg.b.dpd.action = DpdAction::None;
    let mut p = established(cfg);
    cut_network_after(&mut p);
    p.run_for(Duration::from_secs(60));
    assert!(count(&p.a_events, |e| matches!(e, TunnelEvent::DeadPeerDetected)) >= 1);
    assert_eq!(Pair::down_reason(&p.a_events), None);
    p.filter = Box::new(|_| Fate::Deliver);
    assert!(p.ping());
    assert!(p.both_up());
}

#[test]
fn idle_tunnel_stays_up_through_liveness_checks() {
    let mut p = established(Config::default());
    p.run_for(Duration::from_secs(300));
    assert!(p.both_up());
    let informational = p
        .ike_messages()
        .into_iter()
        .filter(|s| {
            s.ike_header().is_some_and(|h| {
                h.exchange_type == crate::ike::v2::wire::ExchangeType::INFORMATIONAL
            })
        })
        .count();
    assert!(informational >= 20, "{informational}");
    assert!(p.ping());
}

#[test]
fn peer_delete_takes_the_tunnel_down() {
    let mut p = established(Config::default());
    p.a.close(p.now);
    p.pump();
    p.run_for(SECOND);
    assert_eq!(Pair::down_reason(&p.a_events), Some(DownReason::Closed));
    assert_eq!(
        Pair::down_reason(&p.b_events),
        Some(DownReason::PeerDeleted)
    );
    assert_eq!(p.b.state(), TunnelState::Down);
    assert!(Pair::down_reason(&p.b_events)
        .unwrap()
        .to_string()
        .contains("peer deleted"));
}

#[test]
fn nat_is_detected_and_everything_moves_to_4500() {
    let mut cfg = Config::default();
    cfg.nat = true;
    cfg.a.dpd.interval = Duration::ZERO;
    cfg.b.dpd.interval = Duration::ZERO;
    let mut p = established(cfg);
    assert!(p.a_events.contains(&TunnelEvent::NatDetected {
        local: true,
        remote: false
    }));
    assert!(p.b_events.contains(&TunnelEvent::NatDetected {
        local: false,
        remote: true
    }));
    let ike = p.ike_messages();
    assert_eq!(ike[0].dst.port(), 500);
    // IKE_AUTH and its response on 4500 with the non-ESP marker.
    assert_eq!(ike[2].dst.port(), 4500);
    assert_eq!(ike[2].src.port(), 31001);
    assert_eq!(&ike[2].bytes[..4], &[0, 0, 0, 0]);
    assert_eq!(ike[3].dst.port(), 31001);
    assert!(p.ping());
    let esp: Vec<_> = p.transcript.iter().filter(|s| s.is_esp()).collect();
    assert!(esp
        .iter()
        .all(|s| s.dst.port() == 4500 || s.dst.port() == 31001));
    p.run_for(Duration::from_secs(65));
    assert!(p.a.metrics().nat_keepalives_out >= 3);
    assert!(p.b.metrics().nat_keepalives_in >= 3);
    assert_eq!(p.b.metrics().nat_keepalives_out, 0);
    assert!(p.a.metrics().nat_t && p.b.metrics().nat_t);
    assert!(p.ping());
}

#[test]
fn forced_encapsulation_fakes_nat_detection() {
    let mut cfg = Config::default();
    cfg.a.force_encapsulation = true;
    let mut p = established(cfg);
    assert!(p.b_events.contains(&TunnelEvent::NatDetected {
        local: false,
        remote: true
    }));
    let ike = p.ike_messages();
    assert_eq!(ike[2].dst.port(), 4500);
    assert!(p.ping());
}

#[test]
fn rekeys_and_liveness_work_behind_nat() {
    let mut cfg = short_child_lifetimes();
    cfg.nat = true;
    let mut p = established(cfg);
    let sent = traffic(&mut p, Duration::from_secs(70), Duration::from_millis(200));
    assert_eq!(p.b_inner.len(), sent);
    assert_eq!(p.a_inner.len(), sent);
    p.a.rekey_ike(p.now);
    p.pump();
    p.run_for(Duration::from_secs(60));
    assert!(p.both_up());
    assert!(p.ping());
}

#[test]
fn simultaneous_ike_rekeys_resolve() {
    for seed in 1..4 {
        let mut cfg = Config::default();
        cfg.seed = seed;
        let mut p = established(cfg);
        let now = p.now;
        p.a.rekey_ike(now);
        p.b.rekey_ike(now);
        p.pump();
        p.run_for(Duration::from_secs(20));
        let rekeys = count(&p.a_events, |e| {
            matches!(e, TunnelEvent::IkeSaRekeyed { .. })
        });
        assert_eq!(rekeys, 1, "seed {seed}");
        assert_eq!(
            rekeys,
            count(&p.b_events, |e| matches!(
                e,
                TunnelEvent::IkeSaRekeyed { .. }
            ))
        );
        let (a, b) = (p.a.ike().unwrap(), p.b.ike().unwrap());
        assert_eq!(a.ike_spis(), b.ike_spis(), "seed {seed}");
        assert!(!a.has_old_ike_sa() && !b.has_old_ike_sa());
        // Resolved by the nonces, not by TEMPORARY_FAILURE and retries.
        let rekey_requests = p
            .ike_messages()
            .iter()
            .filter(|s| {
                s.ike_header().is_some_and(|h| {
                    h.exchange_type == crate::ike::v2::wire::ExchangeType::CREATE_CHILD_SA
                        && !h.is_response()
                })
            })
            .count();
        assert_eq!(rekey_requests, 2, "seed {seed}");
        p.run_for(Duration::from_secs(60));
        assert!(p.both_up(), "seed {seed}");
        assert!(p.ping());
        pairs_match(&p);
    }
}

#[test]
fn unknown_esp_spi_and_garbage_are_counted_not_fatal() {
    let mut p = established(Config::default());
    let mut junk = vec![0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1, 2, 3, 4, 5];
    let from = std::net::SocketAddr::new(ip(A_IP), 4500);
    let to = std::net::SocketAddr::new(ip(B_IP), 4500);
    assert_eq!(
        p.b.handle_datagram(p.now, to, from, &mut junk),
        crate::tunnel::Received::Dropped(crate::tunnel::DropReason::UnknownSpi)
    );
    let mut ike_junk = vec![0u8; 40];
    assert!(matches!(
        p.b.handle_datagram(p.now, to, from, &mut ike_junk),
        crate::tunnel::Received::Dropped(_)
    ));
    assert!(p.ping());
}

#[test]
fn failed_reinitiation_does_not_take_down_an_established_sa() {
    let mut p = established(Config::default());
    // An impostor at A's address with the wrong key starts over.
    let mut cfg = Config::default();
    cfg.a.psk = crate::config::Secret::from("not.the.key");
    cfg.seed = 99;
    let mut impostor = Pair::new(cfg);
    // Move the impostor's IKE_SA_INIT and IKE_AUTH to the real B by hand.
    let mut buf = vec![0u8; 4096];
    impostor.run_for(Duration::from_millis(1));
    let init = impostor
        .transcript
        .iter()
        .find(|s| s.from_a)
        .unwrap()
        .bytes
        .clone();
    let from = std::net::SocketAddr::new(ip(A_IP), 500);
    let to = std::net::SocketAddr::new(ip(B_IP), 500);
    let mut m = init.clone();
    let _ = p.b.handle_datagram(p.now, to, from, &mut m);
    while let Some(t) = p.b.poll_transmit(&mut buf) {
        let mut r = buf[..t.len].to_vec();
        let _ = impostor.a.handle_datagram(p.now, from, to, &mut r);
    }
    while let Some(t) = impostor.a.poll_transmit(&mut buf) {
        let mut r = buf[..t.len].to_vec();
        let _ = p.b.handle_datagram(p.now, to, from, &mut r);
    }
    p.pump();
    assert!(p
        .b_events
        .iter()
        .any(|e| matches!(e, TunnelEvent::NegotiationFailed { .. })));
    assert!(p.both_up());
    assert!(p.ping());
    p.run_for(Duration::from_secs(60));
    assert!(p.both_up());
    assert!(p.ping());
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Input {
        /// Random bytes on port 500 (`false`) or 4500 (`true`).
        Raw(bool, Vec<u8>),
        /// A recorded IKE message with one byte changed.
        Mutated(usize, usize, u8),
        /// A recorded IKE message replayed as is.
        Replay(usize),
        /// A recorded message truncated.
        Truncated(usize, usize),
    }

    fn input() -> impl Strategy<Value = Input> {
        prop_oneof![
            (
                any::<bool>(),
                proptest::collection::vec(any::<u8>(), 0..300)
            )
                .prop_map(|(p, b)| Input::Raw(p, b)),
            (0..64usize, 0..400usize, any::<u8>()).prop_map(|(m, i, x)| Input::Mutated(m, i, x)),
            (0..64usize).prop_map(Input::Replay),
            (0..64usize, 0..400usize).prop_map(|(m, n)| Input::Truncated(m, n)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            // PROPTEST_CASES=1000 for a deeper run.
            cases: std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(48),
            ..ProptestConfig::default()
        })]

        #[test]
        fn arbitrary_datagrams_leave_an_established_tunnel_up(
            inputs in proptest::collection::vec(input(), 1..24)
        ) {
            let mut p = established(Config::default());
            p.run_for(Duration::from_secs(15)); // a liveness exchange on record
            let recorded: Vec<Sent> = p.transcript.clone();
            let from_a = std::net::SocketAddr::new(ip(A_IP), 500);
            let from_a_nat = std::net::SocketAddr::new(ip(A_IP), 4500);
            for input in inputs {
                let (bytes, nat_t) = match input {
                    Input::Raw(nat_t, b) => (b, nat_t),
                    Input::Mutated(m, i, x) => {
                        let s = &recorded[m % recorded.len()];
                        let mut b = s.bytes.clone();
                        let n = b.len();
                        if n > 0 {
                            b[i % n] ^= x | 1;
                        }
                        (b, s.dst.port() == 4500)
                    }
                    Input::Replay(m) => {
                        let s = &recorded[m % recorded.len()];
                        (s.bytes.clone(), s.dst.port() == 4500)
                    }
                    Input::Truncated(m, n) => {
                        let s = &recorded[m % recorded.len()];
                        let mut b = s.bytes.clone();
                        b.truncate(n % (b.len() + 1));
                        (b, s.dst.port() == 4500)
                    }
                };
                // Deliver to both ends, as if from the other.
                let (src, dst) = if nat_t { (from_a_nat, 4500) } else { (from_a, 500) };
                let mut b1 = bytes.clone();
                let _ = p.b.handle_datagram(
                    p.now,
                    std::net::SocketAddr::new(ip(B_IP), dst),
                    src,
                    &mut b1,
                );
                let mut b2 = bytes;
                let _ = p.a.handle_datagram(
                    p.now,
                    std::net::SocketAddr::new(ip(A_IP), dst),
                    std::net::SocketAddr::new(ip(B_IP), dst),
                    &mut b2,
                );
                p.pump();
                p.run_for(Duration::from_millis(50));
            }
            prop_assert!(p.both_up(), "a {:?}\nb {:?}", p.a_events, p.b_events);
            prop_assert!(p.ping());
            p.run_for(Duration::from_secs(40));
            prop_assert!(p.both_up());
            prop_assert!(p.ping());
        }
    }
}

/// The n-th IKE datagram of an exchange type (after establishment) meets `fate`, once.
fn nth_of(
    exchange: crate::ike::v2::wire::ExchangeType,
    n: usize,
    fate: Fate,
) -> Box<dyn FnMut(&Sent) -> Fate> {
    let mut seen = 0;
    Box::new(move |s: &Sent| {
        if s.ike_header().is_none_or(|h| h.exchange_type != exchange) || s.is_esp() {
            return Fate::Deliver;
        }
        seen += 1;
        if seen == n + 1 {
            fate
        } else {
            Fate::Deliver
        }
    })
}

#[test]
fn child_rekey_survives_each_lost_or_duplicated_message() {
    use crate::ike::v2::wire::ExchangeType as X;
    // CREATE_CHILD_SA request/response, then the DELETE exchange; the
    // INFORMATIONAL count skips nothing else: liveness checks do not run
    // under traffic.
    for (exchange, n) in [
        (X::CREATE_CHILD_SA, 0),
        (X::CREATE_CHILD_SA, 1),
        (X::INFORMATIONAL, 0),
        (X::INFORMATIONAL, 1),
    ] {
        for fate in [Fate::Drop, Fate::Duplicate] {
            let mut p = established(short_child_lifetimes());
            p.filter = nth_of(exchange, n, fate);
            let sent = traffic(&mut p, Duration::from_secs(75), Duration::from_millis(100));
            assert_eq!(p.b_inner.len(), sent, "{exchange} {n} {fate:?}: A→B lost");
            assert_eq!(p.a_inner.len(), sent, "{exchange} {n} {fate:?}: B→A lost");
            assert_eq!(p.a.child_sas().count(), 1, "{exchange} {n} {fate:?}");
            assert_eq!(p.b.child_sas().count(), 1, "{exchange} {n} {fate:?}");
            pairs_match(&p);
            assert_eq!(
                count(&p.a_events, |e| matches!(
                    e,
                    TunnelEvent::ChildSaRekeyed { .. }
                )),
                1
            );
        }
    }
}

#[test]
fn ike_rekey_survives_each_lost_message() {
    use crate::ike::v2::wire::ExchangeType as X;
    for (exchange, n) in [
        (X::CREATE_CHILD_SA, 0),
        (X::CREATE_CHILD_SA, 1),
        (X::INFORMATIONAL, 0),
        (X::INFORMATIONAL, 1),
    ] {
        let mut p = established(Config::default());
        p.filter = nth_of(exchange, n, Fate::Drop);
        p.a.rekey_ike(p.now);
        p.pump();
        let sent = traffic(&mut p, Duration::from_secs(30), Duration::from_millis(500));
        assert_eq!(p.b_inner.len(), sent, "{exchange} {n}");
        assert_eq!(p.a_inner.len(), sent, "{exchange} {n}");
        assert_eq!(
            count(&p.b_events, |e| matches!(
                e,
                TunnelEvent::IkeSaRekeyed { .. }
            )),
            1,
            "{exchange} {n}"
        );
        p.run_for(Duration::from_secs(60));
        assert!(p.both_up(), "{exchange} {n}");
        assert!(p.ping());
    }
}

#[test]
fn simultaneous_ike_rekeys_with_a_late_response() {
    use crate::ike::v2::wire::ExchangeType as X;
    for seed in 1..7 {
        let mut cfg = Config::default();
        cfg.seed = seed;
        let mut p = established(cfg);
        // A's answer to B's rekey arrives after A's DELETE of the old SA
        // could (if A wins).
        p.filter = Box::new(|s: &Sent| {
            let late = s.from_a
                && s.ike_header()
                    .is_some_and(|h| h.exchange_type == X::CREATE_CHILD_SA && h.is_response());
            if late {
                Fate::Delay(Duration::from_secs(1))
            } else {
                Fate::Deliver
            }
        });
        let now = p.now;
        p.a.rekey_ike(now);
        p.b.rekey_ike(now);
        p.pump();
        p.run_for(Duration::from_secs(20));
        let (a, b) = (p.a.ike().unwrap(), p.b.ike().unwrap());
        assert_eq!(a.ike_spis(), b.ike_spis(), "seed {seed}");
        assert!(!a.has_old_ike_sa() && !b.has_old_ike_sa(), "seed {seed}");
        p.run_for(Duration::from_secs(60));
        assert!(p.both_up(), "seed {seed}");
        assert!(p.ping());
        assert_eq!(Pair::down_reason(&p.a_events), None);
    }
}

#[test]
fn both_ends_initiating_at_once_make_one_ike_sa() {
    for seed in 1..5 {
        let mut cfg = Config::default();
        cfg.seed = seed;
        cfg.b.startup_action = crate::config::StartupAction::Start;
        let mut p = Pair::new(cfg);
        p.run_for(Duration::from_secs(20));
        assert!(p.both_up(), "seed {seed}: {:?}", p.a_events);
        assert_eq!(p.a.ike().unwrap().ike_spis(), p.b.ike().unwrap().ike_spis());
        pairs_match(&p);
        assert!(p.ping());
    }
}

#[test]
fn a_late_copy_of_ike_sa_init_changes_nothing() {
    let mut p = established(Config::default());
    let init = p.ike_messages()[0].bytes.clone();
    let spis = p.b.ike().unwrap().ike_spis();
    let mut m = init;
    let from = std::net::SocketAddr::new(ip(A_IP), 500);
    let to = std::net::SocketAddr::new(ip(B_IP), 500);
    let _ = p.b.handle_datagram(p.now, to, from, &mut m);
    p.pump();
    assert_eq!(p.b.ike().unwrap().ike_spis(), spis);
    assert!(!p.b.ike().unwrap().has_old_ike_sa());
    assert_eq!(p.ike_messages().len(), 4, "no answer to a stale request");
    assert!(p.ping());
}

#[test]
fn tunnel_is_send() {
    fn send<T: Send>() {}
    send::<crate::tunnel::Tunnel>();
}

#[test]
fn restarted_initiator_replaces_the_old_sas_with_initial_contact() {
    let mut p = established(Config::default());
    let old_b_in = p.b.child_sa().unwrap().inbound_spi();
    p.restart_a(
        ike("aes256gcm16-prfsha256-ecp256", "aes256gcm16", true),
        "10.1.0.0/16",
        "10.2.0.0/16",
        77,
    );
    p.run_for(SECOND);
    assert!(p.both_up());
    assert_ne!(p.b.child_sa().unwrap().inbound_spi(), old_b_in);
    assert!(p.b_events.contains(&TunnelEvent::ChildSaDeleted {
        inbound_spi: old_b_in
    }));
    assert!(!p.b.ike().unwrap().has_old_ike_sa());
    assert!(p.ping());
    pairs_match(&p);
    p.run_for(Duration::from_secs(10));
    assert_eq!(p.b.child_sas().count(), 1);
}

#[test]
fn child_rekey_retries_with_the_pfs_group_the_peer_asks_for() {
    let mut cfg = Config::default();
    cfg.a.esp_proposals =
        crate::ike::proposal::parse_esp_proposals("aes256gcm16-ecp256-modp2048").unwrap();
    cfg.b.esp_proposals =
        crate::ike::proposal::parse_esp_proposals("aes256gcm16-modp2048").unwrap();
    let mut p = established(cfg);
    p.a.rekey_child(p.now);
    p.pump();
    p.run_for(Duration::from_secs(3));
    assert_eq!(
        count(&p.a_events, |e| matches!(
            e,
            TunnelEvent::ChildSaRekeyed { .. }
        )),
        1
    );
    let kes: Vec<u16> = p
        .ike_messages()
        .iter()
        .filter(|s| s.from_a)
        .filter_map(|s| {
            let h = s.ike_header()?;
            (h.exchange_type == crate::ike::v2::wire::ExchangeType::CREATE_CHILD_SA).then_some(h)
        })
        .map(|h| h.message_id as u16)
        .collect();
    assert_eq!(kes.len(), 2, "one refused, one retried");
    assert!(p.ping());
    pairs_match(&p);
}

#[test]
fn refused_child_rekey_is_tried_again_later() {
    let mut cfg = Config::default();
    // B takes no PFS, A insists on it: B refuses A's rekeys.
    cfg.a.esp_proposals = crate::ike::proposal::parse_esp_proposals("aes256gcm16-ecp256").unwrap();
    let mut p = established(cfg);
    p.a.rekey_child(p.now);
    p.pump();
    p.run_for(Duration::from_secs(65));
    let requests = p
        .ike_messages()
        .iter()
        .filter(|s| {
            s.from_a
                && s.ike_header().is_some_and(|h| {
                    h.exchange_type == crate::ike::v2::wire::ExchangeType::CREATE_CHILD_SA
                })
        })
        .count();
    assert_eq!(requests, 3, "at 0, 30 and 60 s");
    assert!(p.both_up());
    assert!(p.ping());
}

#[test]
fn tunnels_from_aws_style_config_come_up() {
    use crate::config::{Secret, StartupAction, TunnelConfig};
    use crate::entropy::SeededEntropy;
    use crate::tunnel::{Tunnel, TunnelSettings};
    let any: crate::config::Prefix = "0.0.0.0/0".parse().unwrap();
    let cfg = |local: &str, remote: &str, start| {
        let mut c = TunnelConfig::new(
            ip(local),
            ip(remote),
            "169.254.10.0/30".parse().unwrap(),
            Secret::from("abcdefgh12345678"),
        );
        c.startup_action = start;
        c
    };
    let now = Timestamp::from_secs(5);
    let settings_a =
        TunnelSettings::from_config(&cfg(A_IP, B_IP, StartupAction::Start), vec![any], vec![any])
            .unwrap();
    let settings_b =
        TunnelSettings::from_config(&cfg(B_IP, A_IP, StartupAction::Add), vec![any], vec![any])
            .unwrap();
    let mut a = Tunnel::new(settings_a, now).unwrap();
    let mut b = Tunnel::new(settings_b, now).unwrap();
    b.connect(now, &mut SeededEntropy::new(1)).unwrap();
    a.connect(now, &mut SeededEntropy::new(2)).unwrap();
    // A plain relay: every datagram straight to the other side.
    let mut buf = vec![0u8; 4096];
    for _ in 0..10 {
        while let Some(t) = a.poll_transmit(&mut buf) {
            let mut d = buf[..t.len].to_vec();
            b.handle_datagram(now, t.remote, t.local, &mut d);
        }
        while let Some(t) = b.poll_transmit(&mut buf) {
            let mut d = buf[..t.len].to_vec();
            a.handle_datagram(now, t.remote, t.local, &mut d);
        }
    }
    assert_eq!(a.state(), TunnelState::Up);
    assert_eq!(b.state(), TunnelState::Up);
    // Encapsulation is forced: IKE moved to 4500.
    assert!(a.metrics().nat_t && b.metrics().nat_t);
    assert!(!format!("{a:?}").contains("abcdefgh"));
    assert!(!format!("{:?}", a.ike().unwrap()).contains("abcdefgh"));
    // Traffic either way through 0.0.0.0/0 selectors.
    let inner = ipv4([172, 16, 0, 1], [172, 17, 0, 1], 64, 1);
    let h = a.headroom();
    buf[h..h + inner.len()].copy_from_slice(&inner);
    let t = a.send_inner(now, &mut buf, inner.len()).unwrap();
    let mut d = buf[..t.len].to_vec();
    assert!(matches!(
        b.handle_datagram(now, t.remote, t.local, &mut d),
        crate::tunnel::Received::Inner { .. }
    ));
}

mod chaos {
    use super::*;
    use proptest::prelude::*;

    fn fate() -> impl Strategy<Value = Fate> {
        prop_oneof![
            6 => Just(Fate::Deliver),
            2 => Just(Fate::Drop),
            1 => Just(Fate::Duplicate),
            1 => (1u64..3000).prop_map(|ms| Fate::Delay(Duration::from_millis(ms))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(24),
            ..ProptestConfig::default()
        })]

        /// Seeded loss, duplication and delay while the tunnel comes up and
        /// rekeys (child and IKE SAs every few tens of seconds, with fuzz):
        /// nothing panics, and once the network calms down the tunnel is up
        /// (reconnected if it went down) and passes traffic.
        #[test]
        fn lossy_network_then_calm(
            seed in 1u64..1_000_000,
            fates in proptest::collection::vec(fate(), 1..64),
        ) {
            let mut cfg = Config::default();
            cfg.seed = seed;
            for s in [&mut cfg.a, &mut cfg.b] {
                s.lifetimes.child = Duration::from_secs(40);
                s.lifetimes.ike = Duration::from_secs(70);
                s.lifetimes.margin = Duration::from_secs(10);
                s.lifetimes.fuzz_percent = 100;
            }
            cfg.a.dpd.action = DpdAction::Restart;
            let overlap = cfg.a.rekey_overlap;
            let mut i = 0;
            let mut p = Pair::with_filter(cfg, Box::new(move |_s: &Sent| {
                let f = fates[i % fates.len()];
                i += 1;
                f
            }));
            for _ in 0..120 {
                let _ = p.send_inner(true, &ipv4([10, 1, 0, 5], [10, 2, 0, 7], 80, 0));
                let _ = p.send_inner(false, &ipv4([10, 2, 0, 7], [10, 1, 0, 5], 80, 0));
                p.run_for(Duration::from_millis(500));
            }
            p.filter = Box::new(|_| Fate::Deliver);
            // Calm: whoever owns A reconnects when it reports Down (an
            // initiation stuck on an SA the responder dropped gives up after
            // the full retransmission schedule, 165 s).
            for _ in 0..8 {
                p.run_for(Duration::from_secs(30));
                if p.a.state() == TunnelState::Down {
                    let now = p.now;
                    p.a.connect(now, &mut crate::entropy::SeededEntropy::new(seed)).unwrap();
                    p.pump();
                }
            }
            p.run_for(Duration::from_secs(20));
            prop_assert!(p.both_up(), "a {:?}\nb {:?}", p.a.state(), p.b.state());
            prop_assert!(p.ping());
            // One pair, plus at most the one it replaced within the last
            // few seconds (its inbound SA lingers for in-flight packets):
            // checked once the overlap of any rekey the calm period started
            // (two can fall within one overlap after a collision) is over.
            p.run_for(overlap + Duration::from_secs(1));
            prop_assert!(p.a.child_sas().count() <= 2, "a {:?} b {:?} log {:?}",
                p.a.child_sas().map(|c| (c.inbound_spi(), c.outbound_spi())).collect::<Vec<_>>(),
                p.b.child_sas().map(|c| (c.inbound_spi(), c.outbound_spi())).collect::<Vec<_>>(),
                (p.a.ike().map(|s| s.child_records()), p.b.ike().map(|s| s.child_records())));
            prop_assert!(p.b.child_sas().count() <= 2);
            pairs_match(&p);
            p.run_for(Duration::from_secs(6));
            prop_assert!(p.ping());
        }
    }
}
