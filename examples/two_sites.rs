//! The simulated two-site VPN connection: a customer gateway and an AWS-style
//! virtual private gateway joined by two tunnels, BGP over each, on a virtual
//! clock. No root, no peer, no network: hours of simulated time in seconds.
//!
//! The timeline shows IKEv2 bringing both tunnels up, BGP routes being
//! learned, tunnel 1 failing and traffic moving to tunnel 2 once dead peer
//! detection or the BGP hold timer notices, tunnel 1 healing and traffic
//! returning after the failback hysteresis, and the hourly child SA rekeys.
//! A per-tunnel metrics table follows, with CloudWatch's names.
//!
//! `cargo run --release --example two_sites [-- --seed N]`

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use vpn_core::config::FailoverPolicy;
use vpn_core::entropy::SeededEntropy;
use vpn_core::sim::lab::{lab_sites, udp_packet, udp_sequence, IkeTimers, LabKeying, LabRouting};
use vpn_core::sim::{LinkConditions, TwoSites};
use vpn_core::time::Timestamp;

const CGW: usize = 0;
const VGW: usize = 1;
const ON_PREM_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 5);
const VPC_HOST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 9);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seed = std::env::args()
        .skip_while(|a| a != "--seed")
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(2026);
    let wall = Instant::now();
    let failover = FailoverPolicy::ActiveStandby {
        preferred_tunnel: 0,
        failback_hysteresis_secs: 60,
    };
    // IKEv2 with AWS's timers: child SAs rekey about hourly, DPD after 30 s.
    let (cgw, vgw) = lab_sites(
        LabKeying::Ikev2(IkeTimers::default()),
        LabRouting::Bgp { hold_time: 30 },
        failover,
        seed,
        Timestamp::ZERO,
    )?;
    // A realistic internet path: 20 ms with jitter and a little loss.
    let link = LinkConditions {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(4),
        loss: 0.001,
        ..LinkConditions::default()
    };
    let mut sim = TwoSites::new(["cgw", "vgw"], cgw, vgw, link, seed, Timestamp::ZERO);
    let mut rng = SeededEntropy::new(seed);
    sim.note("customer gateway 198.51.100.10 (AS 65000, 10.1.0.0/16) <-> VGW 203.0.113.10/.11 (AS 64512, 10.2.0.0/16)");
    sim.site_mut(CGW).connect(Timestamp::ZERO, &mut rng)?;
    sim.site_mut(VGW).connect(Timestamp::ZERO, &mut rng)?;

    // Traffic: one 500-byte packet each way every 100 ms, all along.
    let mut seq = 0u32;
    let mut sent = [0u64; 2];
    let mut run = |sim: &mut TwoSites, until: Timestamp| {
        while sim.now() < until {
            for (site, src, dst) in [(CGW, ON_PREM_HOST, VPC_HOST), (VGW, VPC_HOST, ON_PREM_HOST)] {
                if sim.send(site, &udp_packet(src, dst, seq, 500)).is_ok() {
                    sent[site] += 1;
                }
            }
            seq += 1;
            let next = sim.now() + Duration::from_millis(100);
            sim.run_until(next);
        }
    };

    run(&mut sim, Timestamp::from_secs(5 * 60));
    sim.note("tunnel 1's path fails (its link is cut both ways)");
    sim.set_link(0, |l| l.up = false);
    run(&mut sim, Timestamp::from_secs(10 * 60));
    sim.note("tunnel 1's path is restored");
    sim.set_link(0, |l| l.up = true);
    run(&mut sim, Timestamp::from_secs(2 * 3600));
    sim.note("end of simulation");

    println!("Timeline (simulated time, seed {seed}):");
    for line in sim.log() {
        println!("{line}");
    }

    let delivered = [sim.take_delivered(CGW), sim.take_delivered(VGW)];
    println!("\nTraffic: 500-byte packets every 100 ms each way for 2 simulated hours");
    for (site, name) in [(CGW, "on-premises -> VPC"), (VGW, "VPC -> on-premises")] {
        let got = delivered[1 - site]
            .iter()
            .filter(|p| udp_sequence(p).is_some())
            .count();
        println!(
            "  {name:<20} sent {:>6}, delivered {:>6}, lost {:>4} ({:.3} %)",
            sent[site],
            got,
            sent[site] - got as u64,
            100.0 * (sent[site] - got as u64) as f64 / sent[site].max(1) as f64
        );
    }

    println!("\nPer-tunnel metrics at the customer gateway (CloudWatch names):");
    println!(
        "{:<8} {:>11} {:>14} {:>15} {:>11} {:>12} {:>9} {:>7} {:>7}",
        "tunnel",
        "TunnelState",
        "TunnelDataIn",
        "TunnelDataOut",
        "PacketsIn",
        "PacketsOut",
        "DropsIn",
        "Routes",
        "Active"
    );
    for t in 0..2 {
        if let Some(r) = sim.site(CGW).tunnel_report(t) {
            println!(
                "{:<8} {:>11} {:>14} {:>15} {:>11} {:>12} {:>9} {:>7} {:>7}",
                t + 1,
                r.tunnel_state,
                r.tunnel_data_in,
                r.tunnel_data_out,
                r.packets_in,
                r.packets_out,
                r.drops_in,
                r.accepted_routes,
                if r.active { "yes" } else { "" }
            );
        }
    }
    println!(
        "\nFailovers: {}. Simulated 2 h in {:.2} s of wall time.",
        sim.site(CGW).metrics().failovers,
        wall.elapsed().as_secs_f64()
    );
    Ok(())
}
