//! Two IKEv2 tunnels in memory: establishment, loss, duplication,
//! reordering, negotiation failures, rekeying and its collisions, liveness,
//! NAT traversal, determinism and robustness.

#![allow(clippy::field_reassign_with_default)]

mod util;

use core::time::Duration;

use util::*;

use crate::ike::v2::wire::{NotifyType, PayloadsExt};
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
    p.run_for(Duration::from_secs(200));
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
