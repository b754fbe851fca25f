//! Two IKEv1 tunnels in memory on a virtual clock.

use core::time::Duration;

use super::*;
use crate::config::{DpdConfig, Secret};
use crate::entropy::SeededEntropy;
use crate::ike::proposal::{parse_esp_proposals, parse_ike_proposals};

const A: &str = "192.0.2.1:500";
const B: &str = "198.51.100.1:500";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ikev1(local: &str, remote: &str, psk: &str, ike: &str, esp: &str) -> Ikev1Settings {
    let mut s = Ikev1Settings::aws_default(addr(local), addr(remote), Secret::from(psk));
    s.ike_proposals = parse_ike_proposals(ike).unwrap();
    s.esp_proposals = parse_esp_proposals(esp).unwrap();
    s
}

fn tunnel(mut ike: Ikev1Settings, start: bool, lan: &str, peer_lan: &str, seed: u64) -> Tunnel {
    ike.startup_action = if start {
        StartupAction::Start
    } else {
        StartupAction::Add
    };
    let settings = TunnelSettings {
        local: ike.local,
        remote: ike.remote,
        keying: Keying::Ikev1(Box::new(ike)),
        local_traffic: vec![lan.parse().unwrap()],
        remote_traffic: vec![peer_lan.parse().unwrap()],
        replay_window: 1024,
    };
    Tunnel::with_entropy(
        settings,
        Timestamp::ZERO,
        Box::new(SeededEntropy::new(seed)),
    )
    .unwrap()
}

/// A initiates (site 10.1/16), B answers (site 10.2/16).
struct Net {
    now: Timestamp,
    a: Tunnel,
    b: Tunnel,
    a_events: Vec<TunnelEvent>,
    b_events: Vec<TunnelEvent>,
    /// Drop every datagram (a link cut).
    cut: bool,
    /// Control datagrams that crossed, per direction.
    control: [usize; 2],
}

impl Net {
    fn new(a: Ikev1Settings, b: Ikev1Settings) -> Net {
        Net {
            now: Timestamp::from_secs(100),
            a: tunnel(a, true, "10.1.0.0/16", "10.2.0.0/16", 1),
            b: tunnel(b, false, "10.2.0.0/16", "10.1.0.0/16", 2),
            a_events: Vec::new(),
            b_events: Vec::new(),
            cut: false,
            control: [0, 0],
        }
    }

    fn aws(ike: &str, esp: &str) -> Net {
        Net::new(
            ikev1(A, B, "shared-secret", ike, esp),
            ikev1(B, A, "shared-secret", ike, esp),
        )
    }

    fn connect(&mut self) {
        let mut rng = SeededEntropy::new(9);
        self.b.connect(self.now, &mut rng).unwrap();
        self.a.connect(self.now, &mut rng).unwrap();
        self.pump();
    }

    /// Moves control datagrams until both tunnels are quiet.
    fn pump(&mut self) {
        let mut buf = vec![0u8; 4096];
        for _ in 0..1000 {
            let mut any = false;
            for from_a in [true, false] {
                loop {
                    let (from, to) = if from_a {
                        (&mut self.a, &mut self.b)
                    } else {
                        (&mut self.b, &mut self.a)
                    };
                    let Some(tx) = from.poll_transmit(&mut buf) else {
                        break;
                    };
                    any = true;
                    self.control[usize::from(!from_a)] += 1;
                    assert_eq!(tx.remote.ip(), to.settings().local.ip());
                    if !self.cut {
                        let _ =
                            to.handle_datagram(self.now, tx.remote, tx.local, &mut buf[..tx.len]);
                    }
                }
            }
            self.a_events
                .extend(std::iter::from_fn(|| self.a.poll_event()));
            self.b_events
                .extend(std::iter::from_fn(|| self.b.poll_event()));
            if !any {
                return;
            }
        }
        panic!("datagram storm");
    }

    /// Runs timers until `d` has passed.
    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.pump();
        while let Some(t) = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .filter(|t| *t <= until)
        {
            self.now = self.now.max(t);
            self.a.handle_timeout(self.now);
            self.b.handle_timeout(self.now);
            self.pump();
        }
        self.now = until;
        self.pump();
    }

    /// Sends one inner packet; what the receiver made of it.
    fn send(&mut self, from_a: bool, len: usize) -> Received {
        let (from, to) = if from_a {
            (&mut self.a, &mut self.b)
        } else {
            (&mut self.b, &mut self.a)
        };
        let inner = if from_a {
            ipv4([10, 1, 0, 5], [10, 2, 0, 9], len)
        } else {
            ipv4([10, 2, 0, 9], [10, 1, 0, 5], len)
        };
        let mut buf = vec![0u8; 2048];
        let h = from.headroom();
        buf[h..h + len].copy_from_slice(&inner);
        let tx = match from.send_inner(self.now, &mut buf, len) {
            Ok(tx) => tx,
            Err(_) => return Received::Dropped(DropReason::NotConnected),
        };
        assert_eq!(tx.local.port(), NAT_T_PORT);
        assert_eq!(tx.remote.port(), NAT_T_PORT);
        if self.cut {
            return Received::Dropped(DropReason::NotConnected);
        }
        let r = to.handle_datagram(self.now, tx.remote, tx.local, &mut buf[..tx.len]);
        if let Received::Inner { range } = &r {
            assert_eq!(&buf[range.clone()], &inner[..]);
        }
        r
    }

    fn assert_up(&self) {
        assert_eq!(self.a.state(), TunnelState::Up, "{:?}", self.a_events);
        assert_eq!(self.b.state(), TunnelState::Up, "{:?}", self.b_events);
    }
}

fn ipv4(src: [u8; 4], dst: [u8; 4], len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p
}

fn downs(events: &[TunnelEvent]) -> Vec<DownReason> {
    events
        .iter()
        .filter_map(|e| match e {
            TunnelEvent::Down { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

fn count(events: &[TunnelEvent], f: impl Fn(&TunnelEvent) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

#[test]
fn ikev1_tunnels_come_up_and_carry_traffic_both_ways() {
    let mut n = Net::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    n.connect();
    n.assert_up();
    for (events, name) in [(&n.a_events, "a"), (&n.b_events, "b")] {
        assert_eq!(
            count(events, |e| matches!(
                e,
                TunnelEvent::IkeSaEstablished { .. }
            )),
            1,
            "{name}: {events:?}"
        );
        assert_eq!(
            count(events, |e| matches!(
                e,
                TunnelEvent::ChildSaInstalled { .. }
            )),
            1,
            "{name}: {events:?}"
        );
    }
    let a_child = n.a.child_sa().unwrap();
    let b_child = n.b.child_sa().unwrap();
    assert_eq!(a_child.outbound_spi(), b_child.inbound_spi());
    assert_eq!(a_child.inbound_spi(), b_child.outbound_spi());
    assert!(matches!(n.send(true, 100), Received::Inner { .. }));
    assert!(matches!(n.send(false, 1400), Received::Inner { .. }));
    assert_eq!(n.a.metrics().data_out_bytes, 100);
    assert_eq!(n.a.metrics().data_in_bytes, 1400);
    let m = n.a.metrics();
    assert!(m.ike_sa_up && m.child_sa_up && m.nat_t, "{m:?}");
    assert!(n.a.ikev1().is_some_and(Ikev1Session::is_established));
}

#[test]
fn aes256_sha256_modp2048_suite() {
    let mut n = Net::aws("aes256-sha256-modp2048", "aes256-sha256-modp2048");
    n.connect();
    n.assert_up();
    assert!(matches!(n.send(true, 300), Received::Inner { .. }));
    assert!(matches!(n.send(false, 300), Received::Inner { .. }));
}

#[test]
fn nat_keepalives_fill_silence_on_4500() {
    // Without DPD nothing else would cross in 65 s (DPD's R-U-THERE every
    // 10 s of silence keeps the NAT mapping alive by itself).
    let mut a = ikev1(A, B, "k", "aes128-sha1-modp1024", "aes128-sha1-modp1024");
    let mut b = ikev1(B, A, "k", "aes128-sha1-modp1024", "aes128-sha1-modp1024");
    a.dpd = None;
    b.dpd = None;
    let mut n = Net::new(a, b);
    n.connect();
    n.assert_up();
    n.run_for(Duration::from_secs(65));
    n.assert_up();
    let (ka, kb) = (n.a.metrics(), n.b.metrics());
    assert!(
        (2..=4).contains(&ka.nat_keepalives_out),
        "{}",
        ka.nat_keepalives_out
    );
    assert_eq!(ka.nat_keepalives_out, kb.nat_keepalives_in);
    assert_eq!(kb.nat_keepalives_out, ka.nat_keepalives_in);
    assert!(downs(&n.a_events).is_empty());
}

/// Packets every 50 ms both ways while `rekey` runs; returns (sent, received).
fn traffic_through(n: &mut Net, rekey: impl FnOnce(&mut Net), secs: u64) -> (usize, usize) {
    let (mut sent, mut received) = (0, 0);
    let mut rekey = Some(rekey);
    for i in 0..secs * 20 {
        if i == 20 {
            (rekey.take().unwrap())(n);
        }
        for from_a in [true, false] {
            sent += 1;
            if matches!(n.send(from_a, 200), Received::Inner { .. }) {
                received += 1;
            }
        }
        n.run_for(Duration::from_millis(50));
    }
    (sent, received)
}

#[test]
fn child_rekey_under_traffic_loses_nothing() {
    for initiator_rekeys in [true, false] {
        let mut n = Net::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
        n.connect();
        n.assert_up();
        let old = n.a.child_sa().unwrap().inbound_spi();
        let (sent, received) = traffic_through(
            &mut n,
            |n| {
                if initiator_rekeys {
                    n.a.rekey_child(n.now)
                } else {
                    n.b.rekey_child(n.now)
                }
            },
            30,
        );
        assert_eq!(sent, received, "initiator_rekeys={initiator_rekeys}");
        n.assert_up();
        for events in [&n.a_events, &n.b_events] {
            assert_eq!(
                count(events, |e| matches!(e, TunnelEvent::ChildSaRekeyed { .. })),
                1,
                "{events:?}"
            );
        }
        let new = n.a.child_sa().unwrap().inbound_spi();
        assert_ne!(old, new);
        // The rekeying side deleted the old SA after a delay; the grace
        // period is over: one child SA left on each side.
        assert_eq!(n.a.child_sas().count(), 1);
        assert_eq!(n.b.child_sas().count(), 1);
        assert_eq!(n.a.metrics().child_rekeys, 1);
    }
}

#[test]
fn child_rekey_at_lifetime_under_traffic() {
    let mut a = ikev1(A, B, "k", "aes128-sha1-modp1024", "aes128-sha1-modp1024");
    a.child_lifetime = Duration::from_secs(40);
    a.rekey_margin = Duration::from_secs(20);
    a.rekey_fuzz_percent = 0;
    let b = ikev1(B, A, "k", "aes128-sha1-modp1024", "aes128-sha1-modp1024");
    let mut n = Net::new(a, b);
    n.connect();
    n.assert_up();
    let (sent, received) = traffic_through(&mut n, |_| {}, 90);
    assert_eq!(sent, received);
    n.assert_up();
    assert!(n.a.metrics().child_rekeys >= 3, "{:?}", n.a.metrics());
    assert!(downs(&n.a_events).is_empty() && downs(&n.b_events).is_empty());
}

#[test]
fn phase1_rekey_keeps_traffic_flowing() {
    let mut n = Net::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    n.connect();
    n.assert_up();
    let (sent, received) = traffic_through(&mut n, |n| n.a.rekey_ike(n.now), 5);
    assert_eq!(sent, received);
    n.assert_up();
    for events in [&n.a_events, &n.b_events] {
        assert_eq!(
            count(events, |e| matches!(e, TunnelEvent::IkeSaRekeyed { .. })),
            1,
            "{events:?}"
        );
    }
    assert_eq!(n.a.ikev1().unwrap().phase1_count(), 1);
    assert_eq!(n.b.ikev1().unwrap().phase1_count(), 1);
}

#[test]
fn dpd_timeout_takes_both_sides_down() {
    let mut n = Net::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    n.connect();
    n.assert_up();
    n.cut = true;
    n.run_for(Duration::from_secs(45));
    assert_eq!(downs(&n.a_events), vec![DownReason::DpdTimeout]);
    assert_eq!(downs(&n.b_events), vec![DownReason::DpdTimeout]);
    assert_eq!(n.a.state(), TunnelState::Down);
    assert_eq!(n.a.metrics().dpd_timeouts, 1);
    assert!(n.a.child_sas().next().is_none());
}

#[test]
fn dpd_restart_comes_back_when_the_link_does() {
    let mut a = ikev1(A, B, "k", "aes128-sha1-modp1024", "aes128-sha1-modp1024");
    a.dpd = Some(DpdConfig {
        action: DpdAction::Restart,
        ..DpdConfig::default()
    });
    let b = ikev1(B, A, "k", "aes128-sha1-modp1024", "aes128-sha1-modp1024");
    let mut n = Net::new(a, b);
    n.connect();
    n.cut = true;
    n.run_for(Duration::from_secs(40));
    assert_eq!(downs(&n.a_events), vec![DownReason::DpdTimeout]);
    assert_eq!(n.a.state(), TunnelState::Connecting);
    n.cut = false;
    n.run_for(Duration::from_secs(60));
    n.assert_up();
    assert!(matches!(n.send(true, 100), Received::Inner { .. }));
}

#[test]
fn wrong_psk_is_authentication_failed_on_both_sides() {
    let mut n = Net::new(
        ikev1(A, B, "psk-one", "aes128-sha1-modp1024", "aes128-sha1"),
        ikev1(B, A, "psk-two", "aes128-sha1-modp1024", "aes128-sha1"),
    );
    n.connect();
    n.run_for(Duration::from_secs(5));
    for events in [&n.a_events, &n.b_events] {
        let d = downs(events);
        assert!(
            matches!(d[..], [DownReason::AuthenticationFailed { .. }]),
            "{events:?}"
        );
        assert!(!format!("{events:?}{}", d[0]).contains("psk-"));
    }
    assert_eq!(n.a.state(), TunnelState::Down);
    assert_eq!(n.b.state(), TunnelState::Down);
}

#[test]
fn proposal_mismatch_is_no_proposal_chosen_with_both_offers() {
    let mut n = Net::new(
        ikev1(A, B, "k", "aes256-sha256-modp2048", "aes128-sha1"),
        ikev1(B, A, "k", "aes128-sha1-modp1024", "aes128-sha1"),
    );
    n.connect();
    let d = downs(&n.b_events);
    assert_eq!(
        d,
        vec![DownReason::NoProposalChosen {
            ours: "aes128-sha1-modp1024".into(),
            theirs: Some("aes256-sha256-modp2048".into()),
        }],
        "{:?}",
        n.b_events
    );
    assert!(
        matches!(&downs(&n.a_events)[..], [DownReason::NoProposalChosen { ours, .. }] if ours == "aes256-sha256-modp2048"),
        "{:?}",
        n.a_events
    );
}

#[test]
fn unanswered_main_mode_is_peer_unreachable() {
    let mut n = Net::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    n.cut = true;
    n.connect();
    n.run_for(Duration::from_secs(300));
    assert!(
        matches!(
            downs(&n.a_events)[..],
            [DownReason::PeerUnreachable { retransmits: 5 }]
        ),
        "{:?}",
        n.a_events
    );
}

#[test]
fn peer_close_is_peer_deleted() {
    let mut n = Net::aws("aes128-sha1-modp1024", "aes128-sha1-modp1024");
    n.connect();
    n.assert_up();
    n.b.close(n.now);
    n.pump();
    assert_eq!(downs(&n.b_events), vec![DownReason::Closed]);
    assert_eq!(downs(&n.a_events), vec![DownReason::PeerDeleted]);
    assert_eq!(n.a.state(), TunnelState::Down);
    // The responder still answers a new attempt.
    let mut rng = SeededEntropy::new(5);
    n.a.connect(n.now, &mut rng).unwrap();
    n.pump();
    n.assert_up();
}

#[test]
fn settings_from_config_choose_the_ike_version() {
    let mut config = TunnelConfig::new(
        "192.0.2.1".parse().unwrap(),
        "198.51.100.1".parse().unwrap(),
        "169.254.10.0/30".parse().unwrap(),
        Secret::from("k"),
    );
    let any: Vec<Prefix> = vec!["0.0.0.0/0".parse().unwrap()];
    let s = TunnelSettings::from_config(&config, any.clone(), any.clone()).unwrap();
    assert!(matches!(s.keying, Keying::Ikev2(_)));
    config.ike_version = 1;
    config.ike_proposals = vec!["aes128-sha1-modp1024".into()];
    config.esp_proposals = vec!["aes128-sha1-modp1024".into()];
    let s = TunnelSettings::from_config(&config, any.clone(), any).unwrap();
    let Keying::Ikev1(v1) = &s.keying else {
        panic!("{:?}", s.keying)
    };
    assert_eq!(v1.startup_action, config.startup_action);
    assert_eq!(s.local, addr("192.0.2.1:500"));
}
