//! Deterministic simulations of whole VPN connections: two sites, two
//! tunnels, BGP over the tunnels, seeded network faults, a virtual clock.

use std::net::Ipv4Addr;
use std::time::Duration;

use vpn_core::config::FailoverPolicy;
use vpn_core::sim::lab::{lab_sites, udp_packet, udp_sequence, IkeTimers, LabKeying, LabRouting};
use vpn_core::sim::{LinkConditions, TwoSites};
use vpn_core::time::Timestamp;

const CGW: usize = 0;
const VGW: usize = 1;
const STANDBY: FailoverPolicy = FailoverPolicy::ActiveStandby {
    preferred_tunnel: 0,
    failback_hysteresis_secs: 60,
};

fn secs(s: u64) -> Timestamp {
    Timestamp::from_secs(s)
}

fn lab(routing: LabRouting, failover: FailoverPolicy, seed: u64, link: LinkConditions) -> TwoSites {
    lab_with(LabKeying::Manual, routing, failover, seed, link)
}

fn lab_with(
    keying: LabKeying,
    routing: LabRouting,
    failover: FailoverPolicy,
    seed: u64,
    link: LinkConditions,
) -> TwoSites {
    let (cgw, vgw) = lab_sites(keying, routing, failover, seed, Timestamp::ZERO).unwrap();
    let mut sim = TwoSites::new(["cgw", "vgw"], cgw, vgw, link, seed, Timestamp::ZERO);
    let mut rng = vpn_core::entropy::SeededEntropy::new(seed);
    sim.site_mut(CGW)
        .connect(Timestamp::ZERO, &mut rng)
        .unwrap();
    sim.site_mut(VGW)
        .connect(Timestamp::ZERO, &mut rng)
        .unwrap();
    sim
}

const ON_PREM_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 5);
const VPC_HOST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 9);

/// Sends one packet every `interval` from the CGW LAN to the VPC until
/// `until`, returning the sequence numbers sent.
fn stream(sim: &mut TwoSites, first: u32, until: Timestamp, interval: Duration) -> Vec<u32> {
    let mut sent = Vec::new();
    let mut seq = first;
    while sim.now() < until {
        if sim
            .send(CGW, &udp_packet(ON_PREM_HOST, VPC_HOST, seq, 200))
            .is_ok()
        {
            sent.push(seq);
        }
        seq += 1;
        let next = sim.now() + interval;
        sim.run_until(next);
    }
    sent
}

fn received(sim: &mut TwoSites, site: usize) -> Vec<u32> {
    sim.take_delivered(site)
        .iter()
        .filter_map(|p| udp_sequence(p))
        .collect()
}

fn bgp_down_events(sim: &TwoSites) -> usize {
    sim.log().iter().filter(|l| l.contains("BGP Down")).count()
}

#[test]
fn static_routing_carries_traffic_both_ways() {
    let mut sim = lab(LabRouting::Static, STANDBY, 1, LinkConditions::default());
    sim.run_until(secs(1));
    sim.send(CGW, &udp_packet(ON_PREM_HOST, VPC_HOST, 1, 300))
        .unwrap();
    sim.send(VGW, &udp_packet(VPC_HOST, ON_PREM_HOST, 2, 300))
        .unwrap();
    sim.run_until(secs(2));
    assert_eq!(received(&mut sim, VGW), vec![1]);
    assert_eq!(received(&mut sim, CGW), vec![2]);
}

#[test]
fn bgp_sessions_come_up_over_both_tunnels_and_routes_are_learned() {
    let mut sim = lab(
        LabRouting::Bgp { hold_time: 30 },
        STANDBY,
        2,
        LinkConditions::default(),
    );
    sim.run_until(secs(20));
    for site in [CGW, VGW] {
        let speaker = sim.site(site).bgp_speaker().unwrap();
        assert_eq!(
            speaker
                .peers()
                .filter(|p| speaker.session(*p).unwrap().is_established())
                .count(),
            2
        );
        assert_eq!(
            sim.site(site).routes().len(),
            2,
            "the peer's LAN via each tunnel"
        );
    }
    let learned = sim
        .log()
        .iter()
        .filter(|l| {
            l.starts_with("  0:00") && l.contains("cgw") && l.contains("route learned 10.2.0.0/16")
        })
        .count();
    assert_eq!(learned, 2, "{:#?}", sim.log());
    let sent = stream(&mut sim, 0, secs(25), Duration::from_millis(100));
    sim.run_until(secs(26));
    assert_eq!(received(&mut sim, VGW), sent);
}

#[test]
fn cutting_tunnel_1_moves_traffic_to_tunnel_2_within_the_hold_time_and_it_fails_back() {
    let mut sim = lab(
        LabRouting::Bgp { hold_time: 9 },
        STANDBY,
        3,
        LinkConditions::default(),
    );
    sim.run_until(secs(20));
    assert_eq!(sim.site(CGW).active_tunnel(), Some(0));
    let before = stream(&mut sim, 0, secs(30), Duration::from_millis(100));
    sim.run_until(secs(31));
    assert_eq!(received(&mut sim, VGW), before);

    sim.note("cut tunnel 1");
    sim.set_link(0, |l| l.up = false);
    let during = stream(&mut sim, 10_000, secs(60), Duration::from_millis(100));
    sim.run_until(secs(61));
    let got = received(&mut sim, VGW);
    let lost: Vec<u32> = during
        .iter()
        .copied()
        .filter(|s| !got.contains(s))
        .collect();
    // Lost only inside the detection window: at most the 9 s hold time.
    assert!(!lost.is_empty(), "the cut must cost something");
    assert!(lost.len() <= 91, "lost {} packets", lost.len());
    assert!(
        lost.windows(2).all(|w| w[1] == w[0] + 1),
        "losses are one contiguous window"
    );
    assert_eq!(sim.site(CGW).active_tunnel(), Some(1));
    assert!(sim.log().iter().any(|l| l.contains("active tunnel 1 -> 2")));

    sim.note("heal tunnel 1");
    sim.set_link(0, |l| l.up = true);
    sim.run_until(secs(90));
    // Back up, but traffic stays on tunnel 2 during the hysteresis...
    assert_eq!(sim.site(CGW).active_tunnel(), Some(1));
    sim.run_until(secs(200));
    // ...and then returns.
    assert_eq!(sim.site(CGW).active_tunnel(), Some(0));
    let after = stream(&mut sim, 20_000, secs(205), Duration::from_millis(100));
    sim.run_until(secs(206));
    assert_eq!(received(&mut sim, VGW), after);
}

#[test]
fn active_active_uses_both_tunnels() {
    let mut sim = lab(
        LabRouting::Bgp { hold_time: 30 },
        FailoverPolicy::ActiveActive,
        4,
        LinkConditions::default(),
    );
    sim.run_until(secs(20));
    for port in 0..32u16 {
        let mut p = udp_packet(ON_PREM_HOST, VPC_HOST, u32::from(port), 100);
        p[20..22].copy_from_slice(&(6000 + port).to_be_bytes());
        sim.send(CGW, &p).unwrap();
    }
    sim.run_until(secs(21));
    assert_eq!(received(&mut sim, VGW).len(), 32);
    let used: Vec<_> = (0..2)
        .map(|t| sim.site(CGW).tunnel_metrics(t).unwrap().packets_out)
        .collect();
    assert!(used.iter().all(|&n| n > 0), "{used:?}");
}

#[test]
fn one_percent_loss_for_two_hours_flaps_nothing() {
    let link = LinkConditions {
        loss: 0.01,
        jitter: Duration::from_millis(5),
        ..LinkConditions::default()
    };
    for keying in [LabKeying::Manual, LabKeying::Ikev2(IkeTimers::default())] {
        let mut sim = lab_with(keying, LabRouting::Bgp { hold_time: 30 }, STANDBY, 5, link);
        // Converged after five minutes (a lost first packet may make tunnel 2
        // active until tunnel 1 has been up for the hysteresis)...
        sim.run_until(secs(300));
        assert_eq!(sim.site(CGW).active_tunnel(), Some(0), "{:#?}", sim.log());
        let failovers = sim.site(CGW).metrics().failovers;
        // ...and nothing moves for the rest of two hours.
        sim.run_until(secs(2 * 3600));
        assert_eq!(bgp_down_events(&sim), 0, "{keying:?}: {:#?}", sim.log());
        assert_eq!(
            count(&sim, "IPsec Up ->"),
            0,
            "{keying:?}: {:#?}",
            sim.log()
        );
        assert_eq!(sim.site(CGW).metrics().failovers, failovers, "{keying:?}");
        assert_eq!(sim.site(CGW).active_tunnel(), Some(0));
    }
    let mut sim = lab(LabRouting::Bgp { hold_time: 30 }, STANDBY, 5, link);
    sim.run_until(secs(300));
    let text = sim.site(CGW).metrics_prometheus("lab");
    assert!(
        text.contains("vpn_tunnel_state{connection=\"lab\",tunnel=\"1\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("vpn_tunnel_accepted_routes{connection=\"lab\",tunnel=\"2\"} 1"),
        "{text}"
    );
    let failovers = sim.site(CGW).metrics().failovers;
    assert!(
        text.contains(&format!(
            "vpn_connection_failovers_total{{connection=\"lab\"}} {failovers}"
        )),
        "{text}"
    );
}

#[test]
fn the_same_seed_gives_the_same_event_log() {
    let run = |seed| {
        let link = LinkConditions {
            loss: 0.02,
            jitter: Duration::from_millis(20),
            ..LinkConditions::default()
        };
        let mut sim = lab(LabRouting::Bgp { hold_time: 9 }, STANDBY, seed, link);
        sim.run_until(secs(30));
        sim.set_link(0, |l| l.up = false);
        stream(&mut sim, 0, secs(60), Duration::from_millis(250));
        sim.log().join("\n")
    };
    let a = run(7);
    assert_eq!(a, run(7));
    assert_ne!(a, run(8));
    assert!(a.contains("route withdrawn"));
}

#[test]
fn routes_learned_are_events() {
    let mut sim = lab(
        LabRouting::Bgp { hold_time: 30 },
        STANDBY,
        6,
        LinkConditions::default(),
    );
    let mut seen = Vec::new();
    sim.run_until(secs(20));
    // The log is the events, rendered; the raw events are also reachable.
    for line in sim.log() {
        if line.contains("route learned") {
            seen.push(line.clone());
        }
    }
    assert_eq!(
        seen.len(),
        4,
        "two prefixes learned over two tunnels: {seen:#?}"
    );
    // Each side learned the other's LAN, once per tunnel, and its route
    // table holds exactly what the events announced.
    for (site, name, prefix) in [(CGW, "cgw", "10.2.0.0/16"), (VGW, "vgw", "10.1.0.0/16")] {
        for tunnel in 1..=2 {
            let line = format!("{name}  tunnel {tunnel} route learned {prefix}");
            assert_eq!(
                seen.iter().filter(|l| l.ends_with(&line)).count(),
                1,
                "{seen:#?}"
            );
        }
        let table: Vec<String> = sim
            .site(site)
            .routes()
            .iter()
            .map(|r| r.prefix.to_string())
            .collect();
        assert_eq!(table, vec![prefix, prefix]);
    }
}

/// Fast IKE timers so that hours of rekeys fit in a test.
fn quick_ike() -> IkeTimers {
    IkeTimers {
        ike_lifetime: Duration::from_secs(900),
        child_lifetime: Duration::from_secs(300),
        rekey_margin: Duration::from_secs(60),
        dpd_interval: Duration::from_secs(2),
        dpd_timeout: Duration::from_secs(10),
    }
}

fn count(sim: &TwoSites, needle: &str) -> usize {
    sim.log().iter().filter(|l| l.contains(needle)).count()
}

#[test]
fn ikev2_tunnels_negotiate_and_carry_bgp_and_traffic() {
    let mut sim = lab_with(
        LabKeying::Ikev2(IkeTimers::default()),
        LabRouting::Bgp { hold_time: 30 },
        STANDBY,
        11,
        LinkConditions::default(),
    );
    sim.run_until(secs(20));
    for site in [CGW, VGW] {
        assert!(sim.site(site).tunnel(0).unwrap().ike().is_some());
        assert_eq!(sim.site(site).routes().len(), 2, "{:#?}", sim.log());
    }
    let sent = stream(&mut sim, 0, secs(25), Duration::from_millis(100));
    sim.run_until(secs(26));
    assert_eq!(received(&mut sim, VGW), sent);
}

#[test]
fn dpd_detects_a_cut_tunnel_and_traffic_fails_over_then_back() {
    let mut sim = lab_with(
        LabKeying::Ikev2(quick_ike()),
        LabRouting::Static,
        STANDBY,
        12,
        LinkConditions::default(),
    );
    sim.run_until(secs(10));
    assert_eq!(sim.site(CGW).active_tunnel(), Some(0));
    sim.note("cut tunnel 1");
    sim.set_link(0, |l| l.up = false);
    let during = stream(&mut sim, 0, secs(40), Duration::from_millis(100));
    sim.run_until(secs(41));
    let got = received(&mut sim, VGW);
    let lost: Vec<u32> = during
        .iter()
        .copied()
        .filter(|s| !got.contains(s))
        .collect();
    // DPD: 2 s of silence, then 10 s without an answer.
    assert!(!lost.is_empty());
    assert!(lost.len() <= 130, "lost {}", lost.len());
    assert!(
        lost.windows(2).all(|w| w[1] == w[0] + 1),
        "one window of loss"
    );
    assert_eq!(sim.site(CGW).active_tunnel(), Some(1), "{:#?}", sim.log());

    sim.note("heal tunnel 1");
    sim.set_link(0, |l| l.up = true);
    sim.run_until(secs(200));
    assert_eq!(sim.site(CGW).active_tunnel(), Some(0), "{:#?}", sim.log());
    let after = stream(&mut sim, 1000, secs(205), Duration::from_millis(100));
    sim.run_until(secs(206));
    assert_eq!(received(&mut sim, VGW), after);
}

#[test]
fn child_and_ike_rekeys_under_load_lose_nothing() {
    let mut sim = lab_with(
        LabKeying::Ikev2(quick_ike()),
        LabRouting::Static,
        STANDBY,
        13,
        LinkConditions::default(),
    );
    sim.run_until(secs(5));
    let sent = stream(&mut sim, 0, secs(40 * 60), Duration::from_millis(50));
    sim.run_until(secs(40 * 60 + 1));
    let got = received(&mut sim, VGW);
    assert_eq!(got.len(), sent.len(), "lost {}", sent.len() - got.len());
    assert!(
        count(&sim, "cgw  tunnel 1 child SA rekeyed") >= 5,
        "{:#?}",
        sim.log()
    );
    assert!(
        count(&sim, "tunnel 1 IKE SA rekeyed") >= 2,
        "{:#?}",
        sim.log()
    );
    assert_eq!(sim.site(CGW).metrics().failovers, 0);
}

#[test]
fn a_tunnel_whose_peer_stayed_unreachable_comes_back_when_the_path_does() {
    let mut sim = lab_with(
        LabKeying::Ikev2(quick_ike()),
        LabRouting::Static,
        STANDBY,
        14,
        LinkConditions::default(),
    );
    sim.run_until(secs(10));
    sim.set_link(0, |l| l.up = false);
    // Long enough for DPD, the restart and every retransmission to fail.
    sim.run_until(secs(400));
    assert!(count(&sim, "peer unreachable") >= 1, "{:#?}", sim.log());
    assert_ne!(
        sim.site(CGW).tunnel(0).unwrap().state(),
        vpn_core::tunnel::TunnelState::Up
    );
    sim.set_link(0, |l| l.up = true);
    sim.run_until(secs(500));
    assert_eq!(
        sim.site(CGW).tunnel(0).unwrap().state(),
        vpn_core::tunnel::TunnelState::Up,
        "{:#?}",
        sim.log()
    );
    assert_eq!(sim.site(CGW).active_tunnel(), Some(0));
}

#[test]
fn a_restarted_peer_is_recovered_either_way() {
    // The customer gateway restarts: its new IKE SAs carry INITIAL_CONTACT
    // and replace the VGW's stale ones at once.
    let mut sim = lab_with(
        LabKeying::Ikev2(quick_ike()),
        LabRouting::Static,
        STANDBY,
        15,
        LinkConditions::default(),
    );
    sim.run_until(secs(10));
    let (fresh_cgw, _) = lab_sites(
        LabKeying::Ikev2(quick_ike()),
        LabRouting::Static,
        STANDBY,
        16,
        secs(10),
    )
    .unwrap();
    sim.restart_site(CGW, fresh_cgw);
    sim.site_mut(CGW)
        .connect(secs(10), &mut vpn_core::entropy::SeededEntropy::new(16))
        .unwrap();
    sim.run_until(secs(12));
    let sent = stream(&mut sim, 0, secs(15), Duration::from_millis(100));
    sim.run_until(secs(16));
    assert_eq!(sent.len(), 30, "{:#?}", sim.log());
    assert_eq!(received(&mut sim, VGW), sent, "{:#?}", sim.log());

    // The VGW restarts: it waits, the customer gateway's DPD notices and
    // its restart action negotiates anew.
    let (_, fresh_vgw) = lab_sites(
        LabKeying::Ikev2(quick_ike()),
        LabRouting::Static,
        STANDBY,
        17,
        secs(20),
    )
    .unwrap();
    sim.run_until(secs(20));
    sim.restart_site(VGW, fresh_vgw);
    sim.site_mut(VGW)
        .connect(secs(20), &mut vpn_core::entropy::SeededEntropy::new(17))
        .unwrap();
    // Within DPD interval + timeout (2 s + 10 s) and a round trip or two.
    sim.run_until(secs(40));
    let sent = stream(&mut sim, 100, secs(43), Duration::from_millis(100));
    sim.run_until(secs(44));
    assert_eq!(sent.len(), 30, "{:#?}", sim.log());
    assert_eq!(received(&mut sim, VGW), sent, "{:#?}", sim.log());
}
