//! Arbitrary datagrams into an established IKEv2 tunnel: the customer
//! gateway of the AWS-shaped lab (`vpn_core::sim::lab`) after both tunnels
//! negotiated on a virtual clock.
//!
//! Input: datagrams separated by the byte 0xA5, at most eight; the first byte
//! of each picks port 500 or 4500 (bit 0) and tunnel 1 or 2 (bit 1) as the
//! apparent sender. Properties: no panic; afterwards both IKE SAs are still
//! up and traffic from the VPC still reaches the customer LAN.
#![no_main]

use std::net::{IpAddr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use vpn_core::config::FailoverPolicy;
use vpn_core::entropy::SeededEntropy;
use vpn_core::sim::lab::{
    lab_sites, udp_packet, vgw_outside, IkeTimers, LabKeying, LabRouting, CGW_OUTSIDE,
};
use vpn_core::sim::{LinkConditions, TwoSites};
use vpn_core::time::Timestamp;
use vpn_core::tunnel::TunnelState;

fuzz_target!(|data: &[u8]| {
    let keying = LabKeying::Ikev2(IkeTimers::default());
    let (cgw, vgw) = lab_sites(
        keying,
        LabRouting::Static,
        FailoverPolicy::default(),
        1,
        Timestamp::ZERO,
    )
    .expect("lab");
    let mut sim = TwoSites::new(
        ["cgw", "vgw"],
        cgw,
        vgw,
        LinkConditions::default(),
        1,
        Timestamp::ZERO,
    );
    let mut rng = SeededEntropy::new(1);
    sim.site_mut(0)
        .connect(Timestamp::ZERO, &mut rng)
        .expect("connect");
    sim.site_mut(1)
        .connect(Timestamp::ZERO, &mut rng)
        .expect("connect");
    sim.run_until(Timestamp::from_secs(2));
    let up = |sim: &TwoSites| {
        (0..2).all(|t| sim.site(0).tunnel(t).map(|x| x.state()) == Some(TunnelState::Up))
    };
    assert!(up(&sim), "the lab must come up before fuzzing");

    let now = sim.now();
    for datagram in data.split(|b| *b == 0xA5).take(8) {
        let Some((&ctl, body)) = datagram.split_first() else {
            continue;
        };
        let port = if ctl & 1 == 0 { 500 } else { 4500 };
        let tunnel = usize::from(ctl >> 1 & 1);
        let local = SocketAddr::new(IpAddr::V4(CGW_OUTSIDE), port);
        let remote = SocketAddr::new(IpAddr::V4(vgw_outside(tunnel)), port);
        let mut buf = body.to_vec();
        let _ = sim
            .site_mut(0)
            .handle_datagram(now, local, remote, &mut buf);
    }
    sim.run_until(now + std::time::Duration::from_secs(2));
    assert!(up(&sim), "garbage must not take an IKE SA down");
    let packet = udp_packet([10, 2, 0, 9].into(), [10, 1, 0, 5].into(), 7, 100);
    sim.send(1, &packet).expect("the VPC side still routes");
    sim.run_until(sim.now() + std::time::Duration::from_secs(1));
    assert!(
        sim.take_delivered(0).contains(&packet),
        "traffic still flows"
    );
});
