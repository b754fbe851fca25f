//! Two IKEv1 sessions in memory on a virtual clock.

use core::time::Duration;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::*;
use crate::config::{DpdAction, DpdConfig, Secret};
use crate::entropy::SeededEntropy;
use crate::ike::proposal::{parse_esp_proposals, parse_ike_proposals};
use crate::time::Timestamp;

const A_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const NAT_PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
const A_PRIVATE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ip), port)
}

/// What the network does with one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Deliver,
    Drop,
    Duplicate,
    /// Held back and delivered after the next datagram.
    Delay,
}

type Policy = Box<dyn FnMut(bool, usize, &[u8]) -> Fate>;

struct Pair {
    now: Timestamp,
    a: Ikev1Session,
    b: Ikev1Session,
    a_events: Vec<Ikev1Event>,
    b_events: Vec<Ikev1Event>,
    /// (from_a, index among that side's datagrams, bytes) -> fate.
    policy: Policy,
    sent: [usize; 2],
    held: VecDeque<(bool, SocketAddr, SocketAddr, Vec<u8>)>,
    /// A is behind a NAT that maps it to NAT_PUBLIC, port + 10000.
    nat: bool,
    /// Every datagram that crossed, for inspection: (from_a, src, dst, bytes).
    log: Vec<(bool, SocketAddr, SocketAddr, Vec<u8>)>,
}

fn settings(
    local: SocketAddr,
    remote: SocketAddr,
    psk: &str,
    ike: &str,
    esp: &str,
) -> Ikev1Settings {
    let mut s = Ikev1Settings::aws_default(local, remote, Secret::from(psk));
    s.ike_proposals = parse_ike_proposals(ike).unwrap();
    s.esp_proposals = parse_esp_proposals(esp).unwrap();
    s
}

impl Pair {
    fn new(a: Ikev1Settings, b: Ikev1Settings) -> Pair {
        let now = Timestamp::from_secs(1000);
        Pair {
            now,
            a: Ikev1Session::new(a, now, Box::new(SeededEntropy::new(1))).unwrap(),
            b: Ikev1Session::new(b, now, Box::new(SeededEntropy::new(2))).unwrap(),
            a_events: Vec::new(),
            b_events: Vec::new(),
            policy: Box::new(|_, _, _| Fate::Deliver),
            sent: [0, 0],
            held: VecDeque::new(),
            nat: false,
            log: Vec::new(),
        }
    }

    fn aws(ike: &str, esp: &str) -> Pair {
        Pair::new(
            settings(sa(A_IP, 500), sa(B_IP, 500), "secret-psk-1", ike, esp),
            settings(sa(B_IP, 500), sa(A_IP, 500), "secret-psk-1", ike, esp),
        )
    }

    fn deliver(&mut self, from_a: bool, src: SocketAddr, dst: SocketAddr, bytes: Vec<u8>) {
        self.log.push((from_a, src, dst, bytes.clone()));
        if from_a {
            let src = if self.nat {
                sa(NAT_PUBLIC, src.port() + 10000)
            } else {
                src
            };
            let _ = self.b.handle_datagram(self.now, dst, src, &bytes);
        } else {
            let dst = if self.nat {
                sa(A_PRIVATE, dst.port() - 10000)
            } else {
                dst
            };
            let _ = self.a.handle_datagram(self.now, dst, src, &bytes);
        }
    }

    /// Moves datagrams until both sides are quiet.
    fn drive(&mut self) {
        for _ in 0..1000 {
            let mut any = false;
            for from_a in [true, false] {
                loop {
                    let t = if from_a {
                        self.a.poll_transmit()
                    } else {
                        self.b.poll_transmit()
                    };
                    let Some((src, dst, bytes)) = t else { break };
                    any = true;
                    let i = &mut self.sent[usize::from(!from_a)];
                    let fate = (self.policy)(from_a, *i, &bytes);
                    *i += 1;
                    match fate {
                        Fate::Drop => {}
                        Fate::Delay => self.held.push_back((from_a, src, dst, bytes)),
                        Fate::Deliver | Fate::Duplicate => {
                            if fate == Fate::Duplicate {
                                self.deliver(from_a, src, dst, bytes.clone());
                            }
                            self.deliver(from_a, src, dst, bytes);
                            while let Some((f, s, d, b)) = self.held.pop_front() {
                                self.deliver(f, s, d, b);
                            }
                        }
                    }
                }
            }
            while let Some(e) = self.a.poll_event() {
                self.a_events.push(e);
            }
            while let Some(e) = self.b.poll_event() {
                self.b_events.push(e);
            }
            if !any {
                return;
            }
        }
        panic!("datagram storm");
    }

    /// Runs timers and traffic until `until`.
    fn run_until(&mut self, until: Timestamp) {
        self.drive();
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                    self.drive();
                }
                _ => break,
            }
        }
        self.now = self.now.max(until);
        self.drive();
    }

    fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    fn connect(&mut self) {
        self.a.connect(self.now).unwrap();
        self.run_for(Duration::from_secs(30));
    }
}

fn children(events: &[Ikev1Event]) -> Vec<NegotiatedChildSa> {
    events
        .iter()
        .filter_map(|e| match e {
            Ikev1Event::ChildSaNegotiated(c) => Some(c.clone()),
            Ikev1Event::ChildSaRekeyed { new, .. } => Some(new.clone()),
            _ => None,
        })
        .collect()
}

fn errors(events: &[Ikev1Event]) -> Vec<Ikev1Error> {
    events
        .iter()
        .filter_map(|e| match e {
            Ikev1Event::Error(x) => Some(x.clone()),
            _ => None,
        })
        .collect()
}

fn count(events: &[Ikev1Event], f: impl Fn(&Ikev1Event) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

fn phase1_ups(events: &[Ikev1Event]) -> usize {
    count(events, |e| matches!(e, Ikev1Event::PhaseOneUp { .. }))
}

/// Seals an IPv4 packet on `from`'s outbound SA and opens it on `to`'s inbound one.
fn esp_round_trip(from: &NegotiatedChildSa, to: &NegotiatedChildSa) {
    assert_eq!(from.outbound_spi, to.inbound_spi);
    let mut rng = SeededEntropy::new(9);
    let now = Timestamp::ZERO;
    let (_, mut out) = from.build_esp_sas(now, 1024, &mut rng).unwrap();
    let (mut inn, _) = to.build_esp_sas(now, 1024, &mut rng).unwrap();
    let inner = [
        0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 198, 51, 100, 1,
    ];
    let mut buf = [0u8; 256];
    buf[out.headroom()..][..inner.len()].copy_from_slice(&inner);
    let n = out
        .encapsulate_in_place(now, &mut buf, inner.len())
        .unwrap();
    let opened = inn.decapsulate_in_place(now, &mut buf[..n]).unwrap();
    assert_eq!(&buf[opened.range()], &inner);
}

fn assert_up(p: &Pair) -> (NegotiatedChildSa, NegotiatedChildSa) {
    assert!(errors(&p.a_events).is_empty(), "{:?}", errors(&p.a_events));
    assert!(errors(&p.b_events).is_empty(), "{:?}", errors(&p.b_events));
    assert_eq!(phase1_ups(&p.a_events), 1);
    assert_eq!(phase1_ups(&p.b_events), 1);
    let (ca, cb) = (children(&p.a_events), children(&p.b_events));
    assert_eq!(ca.len(), 1, "{:?}", p.a_events);
    assert_eq!(cb.len(), 1, "{:?}", p.b_events);
    let (ca, cb) = (ca[0].clone(), cb[0].clone());
    assert_eq!(ca.inbound_spi, cb.outbound_spi);
    esp_round_trip(&ca, &cb);
    esp_round_trip(&cb, &ca);
    (ca, cb)
}

#[test]
fn aws_default_main_mode_and_quick_mode() {
    let mut p = Pair::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    p.connect();
    let (ca, cb) = assert_up(&p);
    assert_eq!(ca.encryption, crate::esp::EncryptionAlgorithm::Aes128Cbc);
    assert_eq!(
        ca.integrity,
        Some(crate::esp::IntegrityAlgorithm::HmacSha1_96)
    );
    assert_eq!(
        ca.pfs_group,
        Some(crate::crypto::DhGroup::from_id(2).unwrap())
    );
    assert_eq!(ca.lifetime, Duration::from_secs(3600));
    assert!(ca.initiator && !cb.initiator);
    assert!(!ca.udp_encapsulated);
    // Main Mode 6 messages + Quick Mode 3, then only Informationals (DPD).
    let exchanges: Vec<u8> = p.log.iter().map(|(_, _, _, b)| b[18]).collect();
    assert_eq!(exchanges[..9], [2, 2, 2, 2, 2, 2, 32, 32, 32]);
    assert!(exchanges[9..].iter().all(|x| *x == 5));
    assert!(p
        .log
        .iter()
        .all(|(_, s, d, _)| s.port() == 500 && d.port() == 500));
    // Keys never reach Debug output.
    let dbg = format!("{ca:?} {:?}", p.a_events);
    assert!(
        !dbg.contains("keys") && !dbg.contains("secret-psk"),
        "{dbg}"
    );
    assert!(!format!("{:?}", p.a.settings()).contains("secret-psk"));
}

#[test]
fn aes256_sha256_modp2048() {
    let mut p = Pair::aws("aes256-sha256-modp2048", "aes256-sha256-modp2048");
    p.connect();
    let (ca, _) = assert_up(&p);
    assert_eq!(ca.encryption, crate::esp::EncryptionAlgorithm::Aes256Cbc);
    assert_eq!(ca.pfs_group.map(|g| g.id()), Some(14));
}

#[test]
fn each_lost_message_is_recovered_by_retransmission() {
    // Main Mode 1..6 and Quick Mode 1..3 alternate A, B, A, B, ...
    for lost in 0..9 {
        let mut p = Pair::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
        let mut done = false;
        p.policy = Box::new(move |from_a, i, _| {
            let k = if from_a { 2 * i } else { 2 * i + 1 };
            if k == lost && !done {
                done = true;
                Fate::Drop
            } else {
                Fate::Deliver
            }
        });
        p.connect();
        assert_up(&p);
    }
}

#[test]
fn duplicated_and_delayed_messages() {
    let mut p = Pair::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    p.policy = Box::new(|_, _, _| Fate::Duplicate);
    p.connect();
    assert_up(&p);

    // Every third datagram of A held back behind the next one.
    let mut p = Pair::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    p.policy = Box::new(|from_a, i, _| {
        if from_a && i % 3 == 1 {
            Fate::Delay
        } else {
            Fate::Deliver
        }
    });
    p.connect();
    assert_eq!(children(&p.a_events).len(), 1);
    assert_eq!(children(&p.b_events).len(), 1);
    esp_round_trip(&children(&p.a_events)[0], &children(&p.b_events)[0]);
}

#[test]
fn wrong_psk_is_reported_as_psk_mismatch() {
    let mut p = Pair::new(
        settings(
            sa(A_IP, 500),
            sa(B_IP, 500),
            "psk-one",
            "aes128-sha1-modp1024",
            "aes128-sha1",
        ),
        settings(
            sa(B_IP, 500),
            sa(A_IP, 500),
            "psk-two",
            "aes128-sha1-modp1024",
            "aes128-sha1",
        ),
    );
    p.connect();
    let (ea, eb) = (errors(&p.a_events), errors(&p.b_events));
    assert!(matches!(eb[..], [Ikev1Error::PskMismatch { .. }]), "{eb:?}");
    assert!(matches!(ea[..], [Ikev1Error::PskMismatch { .. }]), "{ea:?}");
    assert!(!p.a.is_established() && !p.b.is_established());
    let text = format!("{ea:?}{eb:?}{}", eb[0]);
    assert!(text.contains("pre-shared key mismatch"));
    assert!(!text.contains("psk-one") && !text.contains("psk-two"));
}

#[test]
fn proposal_mismatch_names_both_offers() {
    let mut p = Pair::new(
        settings(
            sa(A_IP, 500),
            sa(B_IP, 500),
            "k",
            "aes256-sha256-modp2048",
            "aes128-sha1",
        ),
        settings(
            sa(B_IP, 500),
            sa(A_IP, 500),
            "k",
            "aes128-sha1-modp1024",
            "aes128-sha1",
        ),
    );
    p.connect();
    let eb = errors(&p.b_events);
    let [Ikev1Error::NoProposalChosen { ours, theirs, .. }] = &eb[..] else {
        panic!("{eb:?}")
    };
    assert_eq!(ours, "aes128-sha1-modp1024");
    assert_eq!(theirs, "aes256-sha256-modp2048");
    let msg = eb[0].to_string();
    assert!(msg.contains("NO_PROPOSAL_CHOSEN") && msg.contains("aes256-sha256-modp2048"));
    let ea = errors(&p.a_events);
    assert!(
        matches!(&ea[..], [Ikev1Error::NoProposalChosen { ours, .. }] if ours == "aes256-sha256-modp2048"),
        "{ea:?}"
    );
}

#[test]
fn esp_proposal_mismatch_in_quick_mode() {
    let mut p = Pair::new(
        settings(
            sa(A_IP, 500),
            sa(B_IP, 500),
            "k",
            "aes128-sha1-modp1024",
            "aes256-sha256",
        ),
        settings(
            sa(B_IP, 500),
            sa(A_IP, 500),
            "k",
            "aes128-sha1-modp1024",
            "aes128-sha1-modp1024",
        ),
    );
    p.connect();
    assert!(p.a.is_established());
    let eb = errors(&p.b_events);
    assert!(
        matches!(&eb[..], [Ikev1Error::NoProposalChosen { phase: "Quick Mode", theirs, .. }] if theirs == "aes256-sha256"),
        "{eb:?}"
    );
    assert!(matches!(
        &errors(&p.a_events)[..],
        [Ikev1Error::NoProposalChosen {
            phase: "Quick Mode",
            ..
        }]
    ));
}

fn short_lifetimes(p: &mut Pair) {
    for (seed, s) in [(7, &mut p.a), (8, &mut p.b)] {
        let mut st = s.settings().clone();
        st.child_lifetime = Duration::from_secs(120);
        st.ike_lifetime = Duration::from_secs(400);
        st.rekey_margin = Duration::from_secs(30);
        *s = Ikev1Session::new(st, p.now, Box::new(SeededEntropy::new(seed))).unwrap();
    }
}

#[test]
fn phase2_rekey_before_expiry() {
    let mut p = Pair::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    short_lifetimes(&mut p);
    p.connect();
    assert_up(&p);
    p.run_for(Duration::from_secs(100));
    let rekeyed = |ev: &[Ikev1Event]| count(ev, |e| matches!(e, Ikev1Event::ChildSaRekeyed { .. }));
    assert_eq!(rekeyed(&p.a_events), 1, "{:?}", p.a_events);
    assert_eq!(rekeyed(&p.b_events), 1);
    assert!(errors(&p.a_events).is_empty() && errors(&p.b_events).is_empty());
    // The old SA is deleted on both sides, the new one interoperates.
    assert_eq!(p.a.child_sas().count(), 1);
    assert_eq!(p.b.child_sas().count(), 1);
    let (na, nb) = (children(&p.a_events), children(&p.b_events));
    esp_round_trip(na.last().unwrap(), nb.last().unwrap());
    esp_round_trip(nb.last().unwrap(), na.last().unwrap());
    // And it keeps going: several lifetimes later there is still one child.
    p.run_for(Duration::from_secs(250));
    assert_eq!(p.a.child_sas().count(), 1);
    assert_eq!(p.b.child_sas().count(), 1);
    assert!(rekeyed(&p.a_events) >= 3);
}

#[test]
fn phase1_rekey_by_new_main_mode() {
    let mut p = Pair::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    short_lifetimes(&mut p);
    for (seed, s) in [(17, &mut p.a), (18, &mut p.b)] {
        let mut st = s.settings().clone();
        st.child_lifetime = Duration::from_secs(3600);
        st.ike_lifetime = Duration::from_secs(300);
        *s = Ikev1Session::new(st, p.now, Box::new(SeededEntropy::new(seed))).unwrap();
    }
    p.connect();
    p.run_for(Duration::from_secs(290));
    let rekeys = |ev: &[Ikev1Event]| {
        count(ev, |e| {
            matches!(e, Ikev1Event::PhaseOneUp { rekey: true, .. })
        })
    };
    assert_eq!(rekeys(&p.a_events), 1, "{:?}", p.a_events);
    assert_eq!(rekeys(&p.b_events), 1);
    assert_eq!(p.a.phase1_count(), 1);
    assert_eq!(p.b.phase1_count(), 1);
    assert!(p.b_events.iter().any(|e| matches!(
        e,
        Ikev1Event::Deleted {
            sa: DeletedSa::Phase1 { .. },
            reason: DeleteReason::Peer
        }
    )));
    // Children survive, and the new ISAKMP SA negotiates the next one.
    assert_eq!(p.a.child_sas().count(), 1);
    p.a.rekey_child(p.now).unwrap();
    p.drive();
    assert!(errors(&p.a_events).is_empty() && errors(&p.b_events).is_empty());
    let (na, nb) = (children(&p.a_events), children(&p.b_events));
    assert_eq!(na.len(), 2);
    esp_round_trip(na.last().unwrap(), nb.last().unwrap());
    // The replaced child lives on for a grace period, then both sides drop it.
    assert_eq!(p.a.child_sas().count(), 2);
    p.run_for(REKEY_DELETE_DELAY + Duration::from_secs(1));
    assert_eq!(p.a.child_sas().count(), 1);
    assert_eq!(p.b.child_sas().count(), 1);
    assert_eq!(
        p.a.child_sas().next().unwrap().inbound_spi,
        na.last().unwrap().inbound_spi
    );
}

/// A with `action`, B (the AWS end) with `clear`.
fn dpd_pair(action: DpdAction) -> Pair {
    let mut p = Pair::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    for (seed, action, s) in [(5, action, &mut p.a), (6, DpdAction::Clear, &mut p.b)] {
        let mut st = s.settings().clone();
        st.dpd = Some(DpdConfig {
            interval: 10,
            timeout: 30,
            action,
        });
        *s = Ikev1Session::new(st, p.now, Box::new(SeededEntropy::new(seed))).unwrap();
    }
    p.connect();
    assert_up(&p);
    p
}

fn dpd_timeouts(ev: &[Ikev1Event]) -> usize {
    count(ev, |e| matches!(e, Ikev1Event::DpdTimeout { .. }))
}

#[test]
fn dpd_keeps_a_live_peer() {
    let mut p = dpd_pair(DpdAction::Clear);
    let before = p.log.len();
    p.run_for(Duration::from_secs(100));
    assert_eq!(dpd_timeouts(&p.a_events), 0);
    assert!(p.a.is_established() && p.b.is_established());
    // R-U-THERE / ACK pairs were exchanged.
    assert!(p.log.len() > before + 4);
}

#[test]
fn dpd_timeout_clear() {
    let mut p = dpd_pair(DpdAction::Clear);
    p.policy = Box::new(|from_a, _, _| if from_a { Fate::Deliver } else { Fate::Drop });
    let before = p.sent[0];
    p.run_for(Duration::from_secs(29));
    assert_eq!(dpd_timeouts(&p.a_events), 0);
    // R-U-THERE after 10 s and 20 s of silence.
    assert!(p.sent[0] - before >= 2);
    p.run_for(Duration::from_secs(31));
    assert_eq!(dpd_timeouts(&p.a_events), 1, "{:?}", p.a_events);
    assert!(!p.a.is_established());
    assert_eq!(p.a.child_sas().count(), 0);
    assert!(p.a_events.iter().any(|e| matches!(
        e,
        Ikev1Event::Deleted {
            sa: DeletedSa::Child { .. },
            reason: DeleteReason::DeadPeer
        }
    )));
}

#[test]
fn dpd_timeout_restart_reconnects() {
    let mut p = dpd_pair(DpdAction::Restart);
    p.policy = Box::new(|_, _, _| Fate::Drop);
    p.run_for(Duration::from_secs(45));
    assert_eq!(dpd_timeouts(&p.a_events), 1, "{:?}", p.a_events);
    assert!(!p.a.is_established());
    // The link comes back: A's retransmitted Main Mode finds B (which has
    // cleared its side too) and both come back up.
    p.policy = Box::new(|_, _, _| Fate::Deliver);
    p.run_for(Duration::from_secs(30));
    assert!(p.a.is_established());
    assert_eq!(phase1_ups(&p.a_events), 2);
    assert_eq!(children(&p.a_events).len(), 2);
    assert!(p.b.is_established());
    assert_eq!(p.b.child_sas().count(), 1);
    let (na, nb) = (children(&p.a_events), children(&p.b_events));
    esp_round_trip(na.last().unwrap(), nb.last().unwrap());
}

#[test]
fn dpd_timeout_none_only_reports() {
    let mut p = dpd_pair(DpdAction::None);
    p.policy = Box::new(|_, _, _| Fate::Drop);
    p.run_for(Duration::from_secs(45));
    assert_eq!(dpd_timeouts(&p.a_events), 1);
    assert!(p.a.is_established());
    assert_eq!(p.a.child_sas().count(), 1);
}

#[test]
fn close_sends_deletes() {
    let mut p = Pair::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    p.connect();
    let (ca, _) = assert_up(&p);
    p.a.close(p.now);
    p.drive();
    assert!(!p.a.is_established() && !p.b.is_established());
    assert_eq!(p.b.child_sas().count(), 0);
    assert!(p.b_events.iter().any(|e| matches!(
        e,
        Ikev1Event::Deleted { sa: DeletedSa::Child { outbound_spi, .. }, reason: DeleteReason::Peer }
            if *outbound_spi == ca.inbound_spi
    )));
    assert!(p.b_events.iter().any(|e| matches!(
        e,
        Ikev1Event::Deleted {
            sa: DeletedSa::Phase1 { .. },
            reason: DeleteReason::Peer
        }
    )));
}

fn assert_floated(p: &Pair) {
    assert!(p
        .a_events
        .iter()
        .any(|e| matches!(e, Ikev1Event::PhaseOneUp { nat_t: true, .. })));
    assert!(p
        .b_events
        .iter()
        .any(|e| matches!(e, Ikev1Event::PhaseOneUp { nat_t: true, .. })));
    // Messages 1-4 on 500, everything after on 4500 with the non-ESP marker.
    for (i, (_, s, d, bytes)) in p.log.iter().enumerate() {
        if i < 4 {
            assert_eq!((s.port() % 10000, d.port() % 10000), (500, 500));
        } else {
            assert_eq!(s.port() % 10000, 4500, "{i}");
            assert_eq!(&bytes[..4], &[0, 0, 0, 0]);
        }
    }
    let (ca, cb) = (children(&p.a_events), children(&p.b_events));
    assert!(ca[0].udp_encapsulated && cb[0].udp_encapsulated);
    esp_round_trip(&ca[0], &cb[0]);
}

#[test]
fn nat_detected_floats_to_4500() {
    let mut a = settings(
        sa(A_PRIVATE, 500),
        sa(B_IP, 500),
        "k",
        "aes128-sha1-modp1024",
        "aes128-sha1-modp1024",
    );
    // Behind a NAT the initiator identifies itself by its public address.
    a.local_id = Some(Identity::Address(IpAddr::V4(NAT_PUBLIC)));
    let b = settings(
        sa(B_IP, 500),
        sa(NAT_PUBLIC, 500),
        "k",
        "aes128-sha1-modp1024",
        "aes128-sha1-modp1024",
    );
    let mut p = Pair::new(a, b);
    p.nat = true;
    p.connect();
    assert!(
        errors(&p.a_events).is_empty() && errors(&p.b_events).is_empty(),
        "{:?} {:?}",
        p.a_events,
        p.b_events
    );
    assert_floated(&p);
    assert_eq!(p.b.addresses().1, sa(NAT_PUBLIC, 14500));
    assert_eq!(p.a.addresses(), (sa(A_PRIVATE, 4500), sa(B_IP, 4500)));
}

#[test]
fn forced_nat_t_floats_without_nat() {
    let mut p = Pair::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    let mut st = p.b.settings().clone();
    st.force_nat_t = true;
    p.b = Ikev1Session::new(st, p.now, Box::new(SeededEntropy::new(3))).unwrap();
    p.connect();
    assert_up(&p);
    assert_floated(&p);
}

#[test]
fn settings_from_tunnel_config_and_validation() {
    let mut s = Ikev1Settings::aws_default(sa(A_IP, 500), sa(B_IP, 500), Secret::from(""));
    assert!(matches!(s.validate(), Err(Ikev1Error::InvalidSettings(_))));
    s.psk = Secret::from("x");
    s.ike_proposals = parse_ike_proposals("aes256gcm16-prfsha256-ecp256").unwrap();
    assert!(s.validate().is_err());
    assert_eq!(
        RetransmitSettings::default().timeout(1),
        Duration::from_millis(7200)
    );
}

#[test]
fn arbitrary_datagrams_leave_an_established_session_established() {
    let mut p = Pair::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    p.connect();
    assert_up(&p);
    // Real datagrams of this pair, to mutate (valid cookies get further).
    let samples: Vec<Vec<u8>> = p.log.iter().map(|(_, _, _, b)| b.clone()).collect();
    let pair = RefCell::new(p);
    let mut runner = TestRunner::new(Config::with_cases(300));
    let strategy = (
        proptest::collection::vec(any::<u8>(), 0..300),
        0usize..9,
        proptest::collection::vec((0usize..400, any::<u8>()), 0..4),
        any::<bool>(),
    );
    runner
        .run(&strategy, |(random, which, flips, mutate)| {
            let mut p = pair.borrow_mut();
            let bytes = if mutate {
                let mut b = samples[which].clone();
                for (pos, v) in flips {
                    if !b.is_empty() {
                        let n = b.len();
                        b[pos % n] = v;
                    }
                }
                b
            } else {
                random
            };
            let now = p.now;
            let _ =
                p.b.handle_datagram(now, sa(B_IP, 500), sa(A_IP, 500), &bytes);
            let _ =
                p.a.handle_datagram(now, sa(A_IP, 4500), sa(B_IP, 4500), &bytes);
            p.drive();
            prop_assert!(p.a.is_established() && p.b.is_established());
            prop_assert_eq!(p.a.child_sas().count(), 1);
            prop_assert_eq!(p.b.child_sas().count(), 1);
            Ok(())
        })
        .unwrap();
    // Still working afterwards: a child rekey succeeds.
    let mut p = pair.into_inner();
    p.a.rekey_child(p.now).unwrap();
    p.drive();
    let (na, nb) = (children(&p.a_events), children(&p.b_events));
    esp_round_trip(na.last().unwrap(), nb.last().unwrap());
}

#[test]
fn peer_initiated_phase1_rekey_is_answered() {
    let mut p = Pair::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    p.connect();
    assert_up(&p);
    // The responder (B) renegotiates phase 1; A answers, and B retires the old SA.
    p.b.rekey_phase1(p.now).unwrap();
    p.drive();
    assert!(p.a_events.iter().any(|e| matches!(
        e,
        Ikev1Event::PhaseOneUp {
            rekey: true,
            initiator: false,
            ..
        }
    )));
    assert!(p.a_events.iter().any(|e| matches!(
        e,
        Ikev1Event::Deleted {
            sa: DeletedSa::Phase1 { .. },
            reason: DeleteReason::Peer
        }
    )));
    assert_eq!((p.a.phase1_count(), p.b.phase1_count()), (1, 1));
    assert_eq!(p.a.child_sas().count(), 1);
    // DPD and Quick Mode run over the new SA.
    p.run_for(Duration::from_secs(40));
    p.a.rekey_child(p.now).unwrap();
    p.drive();
    assert!(errors(&p.a_events).is_empty() && errors(&p.b_events).is_empty());
    assert_eq!(dpd_timeouts(&p.a_events), 0);
    let (na, nb) = (children(&p.a_events), children(&p.b_events));
    esp_round_trip(na.last().unwrap(), nb.last().unwrap());
}

#[test]
fn unanswered_main_mode_times_out_after_strongswan_schedule() {
    let mut p = Pair::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    p.policy = Box::new(|from_a, _, _| if from_a { Fate::Drop } else { Fate::Deliver });
    p.a.connect(p.now).unwrap();
    let start = p.now;
    p.run_for(Duration::from_secs(164));
    assert!(errors(&p.a_events).is_empty());
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.sent[0], 6);
    let ea = errors(&p.a_events);
    assert!(
        matches!(
            ea[..],
            [Ikev1Error::Timeout {
                transmissions: 6,
                ..
            }]
        ),
        "{ea:?}"
    );
    // 4 + 7.2 + 12.96 + 23.33 + 41.99 + 75.58 s.
    assert!(p.now.saturating_since(start) >= Duration::from_secs(165));
    assert_eq!(p.a.poll_timeout(), None);
}

#[test]
fn half_open_responder_state_is_dropped() {
    let mut p = Pair::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    // Only Main Mode 1 reaches B; nothing after.
    p.policy = Box::new(|from_a, i, _| {
        if from_a && i == 0 {
            Fate::Deliver
        } else {
            Fate::Drop
        }
    });
    p.a.connect(p.now).unwrap();
    p.drive();
    assert!(p.b.poll_timeout().is_some());
    p.run_for(Duration::from_secs(31));
    assert_eq!(p.b.poll_timeout(), None);
}

#[test]
fn delete_one_child() {
    let mut p = Pair::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    p.connect();
    let (_, cb) = assert_up(&p);
    p.b.delete_child(p.now, cb.inbound_spi).unwrap();
    p.drive();
    assert_eq!(p.a.child_sas().count(), 0);
    assert!(p.a.is_established());
    assert!(p.a_events.iter().any(|e| matches!(
        e,
        Ikev1Event::Deleted { sa: DeletedSa::Child { outbound_spi, .. }, reason: DeleteReason::Peer }
            if *outbound_spi == cb.inbound_spi
    )));
    // A new one can be negotiated on the same ISAKMP SA.
    p.a.connect(p.now).unwrap();
    p.drive();
    assert_eq!(p.a.child_sas().count(), 1);
    assert_eq!(p.b.child_sas().count(), 1);
}

#[test]
fn tunnel_config_gives_settings() {
    use crate::config::{Prefix, TunnelConfig};
    let mut t = TunnelConfig::new(
        IpAddr::V4(A_IP),
        IpAddr::V4(B_IP),
        "169.254.10.0/30".parse::<Prefix>().unwrap(),
        Secret::from("k"),
    );
    t.ike_version = 1;
    t.ike_proposals = vec!["aes128-sha1-modp1024".into()];
    t.esp_proposals = vec!["aes128-sha1-modp1024".into()];
    t.nat_traversal.force_encapsulation = true;
    let s = Ikev1Settings::from_tunnel_config(&t).unwrap();
    assert_eq!(s.local, sa(A_IP, 500));
    assert_eq!(s.ike_lifetime, Duration::from_secs(28800));
    assert!(s.force_nat_t);
    assert_eq!(s.dpd.map(|d| d.retries()), Some(3));
    fn is_send<T: Send>(_: &T) {}
    let session = Ikev1Session::new(s, Timestamp::ZERO, Box::new(SeededEntropy::new(1))).unwrap();
    is_send(&session);
}

#[test]
fn restarted_peer_sends_initial_contact_and_old_sas_go() {
    let mut p = Pair::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    p.connect();
    let (_, old_b) = assert_up(&p);
    // A restarts with no memory of its SAs and connects again.
    let st = p.a.settings().clone();
    p.a = Ikev1Session::new(st, p.now, Box::new(SeededEntropy::new(99))).unwrap();
    p.a_events.clear();
    p.connect();
    let deleted_by_peer = |sa_is_child: bool| {
        p.b_events.iter().any(|e| match e {
            Ikev1Event::Deleted {
                sa: DeletedSa::Child { inbound_spi, .. },
                reason: DeleteReason::Peer,
            } => sa_is_child && *inbound_spi == old_b.inbound_spi,
            Ikev1Event::Deleted {
                sa: DeletedSa::Phase1 { .. },
                reason: DeleteReason::Peer,
            } => !sa_is_child,
            _ => false,
        })
    };
    assert!(
        deleted_by_peer(true) && deleted_by_peer(false),
        "{:?}",
        p.b_events
    );
    assert_eq!((p.b.phase1_count(), p.b.child_sas().count()), (1, 1));
    let (na, nb) = (children(&p.a_events), children(&p.b_events));
    esp_round_trip(na.last().unwrap(), nb.last().unwrap());
    esp_round_trip(nb.last().unwrap(), na.last().unwrap());
}

/// Authenticated Informationals with arbitrary notifications and deletes
/// (right and wrong SPIs, several per message) never panic the receiver.
#[test]
fn arbitrary_authenticated_informationals_never_panic() {
    use super::wire::{DeletePayload, NotifyPayload, NotifyType, Payload, ProtocolId};
    let mut runner = TestRunner::new(Config::with_cases(48));
    let item = (0u8..2, 0usize..8, 0usize..5, any::<u16>(), any::<u8>());
    let strategy = proptest::collection::vec(item, 1..5);
    runner
        .run(&strategy, |items| {
            let mut p = Pair::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
            p.connect();
            let Some(Ikev1Event::PhaseOneUp {
                initiator_cookie,
                responder_cookie,
                ..
            }) = p.a_events.first().cloned()
            else {
                panic!("not up")
            };
            let child = children(&p.a_events)[0].clone();
            let mut cookies = initiator_cookie.to_vec();
            cookies.extend_from_slice(&responder_cookie);
            let spis = [
                cookies.clone(),
                child.inbound_spi.to_be_bytes().to_vec(),
                child.outbound_spi.to_be_bytes().to_vec(),
                vec![],
                vec![9; 7],
            ];
            let types = [
                NotifyType::R_U_THERE,
                NotifyType::R_U_THERE_ACK,
                NotifyType::INITIAL_CONTACT,
                NotifyType::NO_PROPOSAL_CHOSEN,
                NotifyType::INVALID_ID_INFORMATION,
                NotifyType::INVALID_SPI,
                NotifyType::RESPONDER_LIFETIME,
                NotifyType(0),
            ];
            let payloads: Vec<Payload> = items
                .into_iter()
                .map(|(kind, t, s, raw, proto)| {
                    let spi = spis[s].clone();
                    let protocol = match proto % 3 {
                        0 => ProtocolId::ISAKMP,
                        1 => ProtocolId::ESP,
                        _ => ProtocolId(proto),
                    };
                    if kind == 0 {
                        let ty = if t == 7 { NotifyType(raw) } else { types[t] };
                        Payload::Notify(NotifyPayload::new(
                            protocol,
                            ty,
                            spi,
                            raw.to_be_bytes().to_vec(),
                        ))
                    } else {
                        Payload::Delete(DeletePayload {
                            doi: 1,
                            protocol,
                            spi_size: spi.len() as u8,
                            spis: vec![spi],
                        })
                    }
                })
                .collect();
            p.a.send_informational_for_test(p.now, payloads);
            p.drive();
            // Whatever happened, both sides keep working: a fresh connect
            // (if anything was torn down) or a rekey gets a usable child.
            p.run_for(Duration::from_secs(5));
            if p.a.is_established() && p.b.is_established() {
                p.a.rekey_child(p.now).ok();
            } else {
                p.a.close(p.now);
                p.b.close(p.now);
                p.a.connect(p.now).unwrap();
            }
            p.run_for(Duration::from_secs(20));
            let (na, nb) = (children(&p.a_events), children(&p.b_events));
            prop_assert!(na.len() >= 2 && !nb.is_empty());
            esp_round_trip(na.last().unwrap(), nb.last().unwrap());
            Ok(())
        })
        .unwrap();
}
