//! Two sites, each a connection of two manually keyed tunnels, in memory.

use super::*;
use crate::entropy::SeededEntropy;
use crate::tunnel::{Keying, ManualKeying, ManualSa, TunnelSettings};

const T0: Timestamp = Timestamp::ZERO;

fn sa(spi: u32) -> ManualSa {
    ManualSa {
        spi,
        encryption: crate::esp::EncryptionAlgorithm::Aes256Gcm16,
        integrity: None,
        encryption_key: zeroize::Zeroizing::new(vec![spi as u8; 36]),
        integrity_key: zeroize::Zeroizing::new(Vec::new()),
        esn: false,
    }
}

/// Site A (CGW, 10.1.0.0/16) and site B (VGW, 10.2.0.0/16); tunnel i uses
/// outside addresses 192.0.2.(1+i) and 198.51.100.(1+i).
fn sites(failover: FailoverPolicy) -> (Connection, Connection) {
    let (mut a, mut b) = unconnected_sites(failover);
    let mut rng = SeededEntropy::new(5);
    a.connect(T0, &mut rng).unwrap();
    b.connect(T0, &mut rng).unwrap();
    (a, b)
}

fn unconnected_sites(failover: FailoverPolicy) -> (Connection, Connection) {
    let site = |a_side: bool| {
        let tunnels = (0..2u32)
            .map(|i| {
                let a = format!("192.0.2.{}:500", 1 + i).parse().unwrap();
                let b = format!("198.51.100.{}:500", 1 + i).parse().unwrap();
                let (a_out, b_out) = (0x1000 + i, 0x2000 + i);
                let (local, remote, out, inn, lan, peer) = if a_side {
                    (a, b, a_out, b_out, "10.1.0.0/16", "10.2.0.0/16")
                } else {
                    (b, a, b_out, a_out, "10.2.0.0/16", "10.1.0.0/16")
                };
                Tunnel::new(
                    TunnelSettings {
                        local,
                        remote,
                        keying: Keying::Manual(ManualKeying {
                            outbound: sa(out),
                            inbound: sa(inn),
                        }),
                        local_traffic: vec![lan.parse().unwrap()],
                        remote_traffic: vec![peer.parse().unwrap()],
                        replay_window: 1024,
                    },
                    T0,
                )
                .unwrap()
            })
            .collect();
        let peer_lan = if a_side { "10.2.0.0/16" } else { "10.1.0.0/16" };
        Connection::new(
            tunnels,
            ConnectionPolicy {
                failover,
                static_routes: vec![peer_lan.parse().unwrap()],
                ..ConnectionPolicy::default()
            },
            T0,
            &mut SeededEntropy::new(9),
        )
        .unwrap()
    };
    (site(true), site(false))
}

const STANDBY: FailoverPolicy = FailoverPolicy::ActiveStandby {
    preferred_tunnel: 0,
    failback_hysteresis_secs: 60,
};

fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p
}

/// Sends `inner` from `from` to `to`; returns the tunnel used, or the error.
fn deliver(
    now: Timestamp,
    from: &mut Connection,
    to: &mut Connection,
    inner: &[u8],
) -> Result<TunnelIndex, SendError> {
    let mut buf = vec![0u8; 2048];
    let h = from.headroom();
    buf[h..h + inner.len()].copy_from_slice(inner);
    match from.send_packet(now, &mut buf, inner.len())? {
        SendOutcome::Sent { tunnel, transmit } => {
            let (index, received) = to.handle_datagram(
                now,
                transmit.remote,
                transmit.local,
                &mut buf[..transmit.len],
            );
            assert_eq!(index, Some(tunnel));
            let Received::Inner { range } = received else {
                panic!("{received:?}")
            };
            assert_eq!(&buf[range], inner);
            Ok(tunnel)
        }
        other => panic!("{other:?}"),
    }
}

fn drain(c: &mut Connection) -> Vec<ConnectionEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

#[test]
fn active_standby_fails_over_in_the_same_call_and_fails_back_after_hysteresis() {
    let (mut a, mut b) = sites(STANDBY);
    assert!(
        drain(&mut a).contains(&ConnectionEvent::ActiveTunnelChanged {
            from: None,
            to: Some(0)
        })
    );
    let packet = udp([10, 1, 0, 5], [10, 2, 0, 9], 1000, 200);
    assert_eq!(deliver(T0, &mut a, &mut b, &packet), Ok(0));

    // Tunnel 0 fails: the same call moves traffic to tunnel 1.
    let t1 = Timestamp::from_secs(10);
    let mut rng = SeededEntropy::new(1);
    a.set_tunnel_admin_up(t1, 0, false, &mut rng).unwrap();
    let events = drain(&mut a);
    assert!(
        events.contains(&ConnectionEvent::ActiveTunnelChanged {
            from: Some(0),
            to: Some(1)
        }),
        "{events:?}"
    );
    assert_eq!(deliver(t1, &mut a, &mut b, &packet), Ok(1));

    // Tunnel 0 returns: traffic stays on 1 until it has been up for 60 s.
    let t2 = Timestamp::from_secs(20);
    a.set_tunnel_admin_up(t2, 0, true, &mut rng).unwrap();
    // Manual SAs restart at sequence 1: the far end restarts its SA too.
    b.set_tunnel_admin_up(t2, 0, false, &mut rng).unwrap();
    b.set_tunnel_admin_up(t2, 0, true, &mut rng).unwrap();
    assert_eq!(a.poll_timeout(), Some(Timestamp::from_secs(80)));
    a.handle_timeout(Timestamp::from_secs(79));
    assert_eq!(
        deliver(Timestamp::from_secs(79), &mut a, &mut b, &packet),
        Ok(1)
    );
    a.handle_timeout(Timestamp::from_secs(80));
    assert_eq!(a.active_tunnel(), Some(0));
    assert_eq!(
        deliver(Timestamp::from_secs(80), &mut a, &mut b, &packet),
        Ok(0)
    );
    assert_eq!(a.metrics().failovers, 2);
}

#[test]
fn a_flapping_preferred_tunnel_does_not_pull_traffic_back() {
    let (mut a, _) = sites(STANDBY);
    let mut rng = SeededEntropy::new(1);
    a.set_tunnel_admin_up(Timestamp::from_secs(1), 0, false, &mut rng)
        .unwrap();
    for i in 0..10 {
        // Up for 30 s, down again: never long enough for failback.
        a.set_tunnel_admin_up(Timestamp::from_secs(10 + 40 * i), 0, true, &mut rng)
            .unwrap();
        a.handle_timeout(Timestamp::from_secs(40 + 40 * i));
        assert_eq!(a.active_tunnel(), Some(1));
        a.set_tunnel_admin_up(Timestamp::from_secs(40 + 40 * i), 0, false, &mut rng)
            .unwrap();
    }
    assert_eq!(a.metrics().failovers, 1);
}

#[test]
fn active_active_spreads_flows_and_keeps_each_flow_on_one_tunnel() {
    let (mut a, mut b) = sites(FailoverPolicy::ActiveActive);
    let mut used = [0usize; 2];
    for port in 0..64u16 {
        let packet = udp([10, 1, 0, 5], [10, 2, 0, 9], 2000 + port, 100);
        let first = deliver(T0, &mut a, &mut b, &packet).unwrap();
        assert_eq!(deliver(T0, &mut a, &mut b, &packet), Ok(first));
        used[first] += 1;
    }
    assert!(used[0] > 10 && used[1] > 10, "{used:?}");
    // One tunnel down: every flow moves to the other.
    a.set_tunnel_admin_up(T0, 1, false, &mut SeededEntropy::new(1))
        .unwrap();
    for port in 0..64u16 {
        let packet = udp([10, 1, 0, 5], [10, 2, 0, 9], 2000 + port, 100);
        assert_eq!(deliver(T0, &mut a, &mut b, &packet), Ok(0));
    }
}

#[test]
fn no_route_when_both_tunnels_are_down_or_the_destination_is_unknown() {
    let (mut a, mut b) = sites(STANDBY);
    let elsewhere = udp([10, 1, 0, 5], [172, 16, 0, 1], 1, 100);
    assert_eq!(
        deliver(T0, &mut a, &mut b, &elsewhere),
        Err(SendError::NoRoute("172.16.0.1".parse().unwrap()))
    );
    let mut rng = SeededEntropy::new(1);
    a.set_tunnel_admin_up(T0, 0, false, &mut rng).unwrap();
    a.set_tunnel_admin_up(T0, 1, false, &mut rng).unwrap();
    let packet = udp([10, 1, 0, 5], [10, 2, 0, 9], 1, 100);
    assert!(matches!(
        deliver(T0, &mut a, &mut b, &packet),
        Err(SendError::NoRoute(_))
    ));
    assert_eq!(a.active_tunnel(), None);
    assert_eq!(a.metrics().drops_no_route, 2);
}

#[test]
fn oversized_packets_are_fragmented_refused_or_answered_with_icmp() {
    let (mut a, mut b) = sites(STANDBY);
    let big = udp([10, 1, 0, 5], [10, 2, 0, 9], 1, 1500);
    // Fragmented before encryption (AWS's recommendation), sealed, queued.
    let mut buf = vec![0u8; 2048];
    let h = a.headroom();
    buf[h..h + big.len()].copy_from_slice(&big);
    assert_eq!(
        a.send_packet(T0, &mut buf, big.len()),
        Ok(SendOutcome::Fragmented {
            tunnel: 0,
            fragments: 2
        })
    );
    let mut payload = Vec::new();
    while let Some((_, transmit)) = a.poll_transmit(&mut buf) {
        let (_, received) = b.handle_datagram(
            T0,
            transmit.remote,
            transmit.local,
            &mut buf[..transmit.len],
        );
        let Received::Inner { range } = received else {
            panic!("{received:?}")
        };
        assert!(range.len() <= 1436);
        payload.extend_from_slice(&buf[range.start + 20..range.end]);
    }
    assert_eq!(payload, &big[20..], "the fragments carry the whole payload");
    assert_eq!(a.metrics().fragmented, 1);
    // Without fragmentation it is refused.
    a.policy.fragment_before_encrypt = false;
    assert_eq!(
        deliver(T0, &mut a, &mut b, &big),
        Err(SendError::TooBig {
            len: 1500,
            mtu: 1436
        })
    );
    a.policy.clear_df = false;
    let mut df = big.clone();
    df[6] = 0x40;
    let mut buf = vec![0u8; 2048];
    let h = a.headroom();
    buf[h..h + df.len()].copy_from_slice(&df);
    let Ok(SendOutcome::IcmpTooBig { len }) = a.send_packet(T0, &mut buf, df.len()) else {
        panic!()
    };
    assert_eq!((buf[20], buf[21]), (3, 4));
    assert_eq!(&buf[16..20], &[10, 1, 0, 5]);
    assert_eq!(packet::internet_checksum(&buf[20..len]), 0);
}

#[test]
fn policy_from_the_aws_fixture() {
    let xml = include_str!("../../tests/fixtures/config/aws-vpn-connection-bgp.xml");
    let config = crate::config::ConnectionConfig::from_aws_xml(xml).unwrap();
    let policy = ConnectionPolicy::from_config(&config);
    assert_eq!(
        (policy.mtu, policy.tcp_mss_clamp),
        (config.mtu, config.tcp_mss_clamp)
    );
    let bgp = policy.bgp.expect("the fixture uses BGP");
    assert!(bgp.active, "the customer gateway opens the sessions");
    assert_eq!(bgp.inside_addresses.len(), 2);
    for (i, (ours, theirs)) in bgp.inside_addresses.iter().enumerate() {
        assert_eq!(Some(*ours), config.tunnels[i].cgw_inside_address());
        assert_eq!(Some(*theirs), config.tunnels[i].vgw_inside_address());
    }
    assert_eq!(bgp.peer_asn, 64512);
}

#[test]
fn a_connection_from_the_aws_fixture_and_a_refusal_naming_the_field() {
    let xml = include_str!("../../tests/fixtures/config/aws-vpn-connection-bgp.xml");
    let mut config = crate::config::ConnectionConfig::from_aws_xml(xml).unwrap();
    // The fixture is IKEv1 (main mode); this connection negotiates IKEv2.
    for t in &mut config.tunnels {
        t.ike_version = 2;
    }
    let mut rng = SeededEntropy::new(1);
    let mut c = Connection::from_config(&config, T0, &mut rng).unwrap();
    assert_eq!(c.tunnel_count(), 2);
    // AWS's default startup action `add`: the customer gateway initiates.
    c.connect(T0, &mut rng).unwrap();
    let mut buf = [0u8; 2048];
    assert!(c.poll_transmit(&mut buf).is_some(), "IKE_SA_INIT goes out");
    let mut vgw_config = config.clone();
    vgw_config.role = crate::config::Role::Vgw;
    for t in &mut vgw_config.tunnels {
        std::mem::swap(&mut t.local_outside_address, &mut t.remote_outside_address);
    }
    let mut vgw = Connection::from_config(&vgw_config, T0, &mut rng).unwrap();
    vgw.connect(T0, &mut rng).unwrap();
    assert!(
        vgw.poll_transmit(&mut buf).is_none(),
        "AWS waits for the customer gateway"
    );
    assert!(c.bgp_speaker().is_some());
    assert_eq!(
        c.tunnel(1).unwrap().settings().remote.ip(),
        config.tunnels[1].remote_outside_address
    );

    config.tunnels[0].inside_cidr = "169.254.0.0/30".parse().unwrap();
    let Err(ConnectionError::InvalidConfig(errors)) =
        Connection::from_config(&config, T0, &mut rng)
    else {
        panic!("a reserved inside CIDR must be refused");
    };
    assert!(
        errors
            .iter()
            .any(|e| e.field() == Some("tunnels[0].inside_cidr")),
        "{errors:?}"
    );
}

#[test]
fn the_preferred_tunnel_takes_over_at_once_when_it_comes_up_second() {
    let (mut a, _) = unconnected_sites(STANDBY);
    let mut rng = SeededEntropy::new(1);
    // Bring-up where tunnel 2 is ready first.
    a.set_tunnel_admin_up(Timestamp::from_secs(1), 1, true, &mut rng)
        .unwrap();
    assert_eq!(a.active_tunnel(), Some(1));
    a.set_tunnel_admin_up(Timestamp::from_secs(2), 0, true, &mut rng)
        .unwrap();
    assert_eq!(
        a.active_tunnel(),
        Some(0),
        "no hysteresis before the preferred tunnel ever served"
    );
}

#[test]
fn headroom_follows_the_tunnels_that_are_up_so_packets_never_move() {
    let (mut a, _) = unconnected_sites(STANDBY);
    let mut rng = SeededEntropy::new(1);
    // Nothing up: room for any algorithm.
    assert_eq!(a.headroom(), crate::tunnel::ChildSa::MAX_HEADROOM);
    a.set_tunnel_admin_up(T0, 0, true, &mut rng).unwrap();
    // Tunnel 2 is still down (it would ask for the maximum); tunnel 1's
    // AES-GCM wants 8 + 8 bytes, and that is what the connection asks for.
    assert_eq!(a.headroom(), 16);
    assert_eq!(a.headroom(), a.tunnel(0).unwrap().headroom());
}

// ---------------------------------------------------------------- reconfiguration

/// The AWS fixture as IKEv2 with static routes, for both ends: (CGW, VGW).
fn fixture_pair() -> (
    crate::config::ConnectionConfig,
    crate::config::ConnectionConfig,
) {
    let xml = include_str!("../../tests/fixtures/config/aws-vpn-connection-bgp.xml");
    let mut cgw = crate::config::ConnectionConfig::from_aws_xml(xml).unwrap();
    for t in &mut cgw.tunnels {
        t.ike_version = 2;
    }
    cgw.routing = crate::config::Routing::Static {
        prefixes: vec!["10.2.0.0/16".parse().unwrap()],
    };
    cgw.failover = FailoverPolicy::ActiveStandby {
        preferred_tunnel: 0,
        failback_hysteresis_secs: 20,
    };
    let mut vgw = cgw.clone();
    vgw.role = crate::config::Role::Vgw;
    vgw.routing = crate::config::Routing::Static {
        prefixes: vec!["10.1.0.0/16".parse().unwrap()],
    };
    for t in &mut vgw.tunnels {
        std::mem::swap(&mut t.local_outside_address, &mut t.remote_outside_address);
    }
    (cgw, vgw)
}

/// Both ends of the fixture connection on a simulated network, tunnels up.
fn fixture_sites() -> crate::sim::TwoSites {
    let (cgw, vgw) = fixture_pair();
    let mut rng = SeededEntropy::new(21);
    let mut a = Connection::from_config(&cgw, T0, &mut rng).unwrap();
    let mut b = Connection::from_config(&vgw, T0, &mut rng).unwrap();
    a.connect(T0, &mut rng).unwrap();
    b.connect(T0, &mut rng).unwrap();
    let mut net = crate::sim::TwoSites::new(
        ["cgw", "vgw"],
        a,
        b,
        crate::sim::LinkConditions::default(),
        3,
        T0,
    );
    net.run_until(Timestamp::from_secs(5));
    for site in 0..2 {
        for t in 0..2 {
            assert_eq!(net.site(site).tunnel(t).unwrap().state(), TunnelState::Up);
        }
    }
    assert_eq!(net.site(0).active_tunnel(), Some(0));
    net
}

fn lan_packet() -> Vec<u8> {
    udp([10, 1, 0, 5], [10, 2, 0, 9], 1000, 200)
}

#[test]
fn replacing_a_tunnels_options_restarts_only_that_tunnel_and_traffic_rides_the_other() {
    let mut net = fixture_sites();
    let (mut cgw, mut vgw) = fixture_pair();
    // AWS's ModifyVpnTunnelOptions on tunnel 1 (index 0): a new PSK and suite,
    // applied at both ends.
    for config in [&mut cgw, &mut vgw] {
        config.tunnels[0].psk = "Replaced_key_for.tunnel1".into();
        config.tunnels[0].ike_proposals = vec!["aes256gcm16-prfsha384-ecp384".parse().unwrap()];
    }
    let now = net.now();
    let mut rng = SeededEntropy::new(4);
    let change = net.site_mut(1).replace_config(now, &vgw, &mut rng).unwrap();
    assert_eq!(change.tunnels_restarted, vec![0]);
    let change = net.site_mut(0).replace_config(now, &cgw, &mut rng).unwrap();
    assert_eq!(
        change,
        ConfigChange {
            tunnels_restarted: vec![0],
            ..ConfigChange::default()
        }
    );
    // In the same call, traffic moved to the tunnel that was left alone.
    assert_eq!(net.site(0).active_tunnel(), Some(1));
    assert_eq!(net.site(1).tunnel(1).unwrap().state(), TunnelState::Up);
    let events = drain(net.site_mut(0));
    assert!(
        events.iter().any(|e| matches!(
            e,
            ConnectionEvent::Tunnel {
                tunnel: 0,
                event: TunnelEvent::Down {
                    reason: crate::tunnel::DownReason::Closed
                }
            }
        )),
        "{events:?}"
    );
    let Ok(SendOutcome::Sent { tunnel: 1, .. }) = net.send(0, &lan_packet()) else {
        panic!("traffic must use tunnel 2 while tunnel 1 restarts");
    };
    // Tunnel 1 comes back with its new suite; traffic returns after the hysteresis.
    net.run_until(now + Duration::from_secs(5));
    let tunnel = net.site(0).tunnel(0).unwrap();
    assert_eq!(tunnel.state(), TunnelState::Up);
    let proposals = &tunnel.ike().unwrap().settings().ike_proposals;
    let configured = format!("{proposals:?}");
    assert!(
        configured.contains("Aes256Gcm16") && configured.contains("Ecp384"),
        "{configured}"
    );
    assert_eq!(net.site(0).active_tunnel(), Some(1));
    net.run_until(now + Duration::from_secs(26));
    assert_eq!(net.site(0).active_tunnel(), Some(0));
    net.take_delivered(1);
    let Ok(SendOutcome::Sent { tunnel: 0, .. }) = net.send(0, &lan_packet()) else {
        panic!("traffic returns to tunnel 1");
    };
    net.run_until(net.now() + Duration::from_secs(1));
    assert_eq!(net.take_delivered(1), vec![lan_packet()]);
}

#[test]
fn replacing_static_routes_and_policy_applies_at_once_without_restarting_tunnels() {
    let mut net = fixture_sites();
    let (mut cgw, _) = fixture_pair();
    cgw.routing = crate::config::Routing::Static {
        prefixes: vec!["10.3.0.0/16".parse().unwrap()],
    };
    cgw.tcp_mss_clamp = 1300;
    let now = net.now();
    let change = net
        .site_mut(0)
        .replace_config(now, &cgw, &mut SeededEntropy::new(4))
        .unwrap();
    assert_eq!(
        change,
        ConfigChange {
            routes_changed: true,
            policy_changed: true,
            ..ConfigChange::default()
        }
    );
    let routes: Vec<String> = net
        .site(0)
        .routes()
        .iter()
        .map(|r| format!("{} via {}", r.prefix, r.tunnel))
        .collect();
    assert_eq!(routes, ["10.3.0.0/16 via 0", "10.3.0.0/16 via 1"]);
    assert_eq!(net.site(0).policy().tcp_mss_clamp, 1300);
    assert!(matches!(
        net.send(0, &lan_packet()),
        Err(SendError::NoRoute(_))
    ));
    let moved = udp([10, 1, 0, 5], [10, 3, 0, 9], 1000, 200);
    assert!(matches!(
        net.send(0, &moved),
        Ok(SendOutcome::Sent { tunnel: 0, .. })
    ));
    // The same configuration again changes nothing.
    let again = net
        .site_mut(0)
        .replace_config(now, &cgw, &mut SeededEntropy::new(4))
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(net.site(0).tunnel(0).unwrap().state(), TunnelState::Up);
}

#[test]
fn replacements_that_cannot_apply_are_refused_and_change_nothing() {
    let mut net = fixture_sites();
    let (cgw, _) = fixture_pair();
    let now = net.now();
    let mut rng = SeededEntropy::new(4);
    let routes_before = net.site(0).routes().len();

    let mut bgp = cgw.clone();
    let xml = include_str!("../../tests/fixtures/config/aws-vpn-connection-bgp.xml");
    bgp.routing = crate::config::ConnectionConfig::from_aws_xml(xml)
        .unwrap()
        .routing;
    bgp.tunnels[0].psk = "Another_key_for.tunnel1".into();
    assert_eq!(
        net.site_mut(0).replace_config(now, &bgp, &mut rng),
        Err(ReplaceError::RoutingChange)
    );
    let mut vgw_role = cgw.clone();
    vgw_role.role = crate::config::Role::Vgw;
    assert_eq!(
        net.site_mut(0).replace_config(now, &vgw_role, &mut rng),
        Err(ReplaceError::RoleChange)
    );
    let mut invalid = cgw.clone();
    invalid.tunnels[1].inside_cidr = "169.254.0.0/30".parse().unwrap();
    invalid.tunnels[0].psk = "Another_key_for.tunnel1".into();
    let Err(ReplaceError::Invalid(ConnectionError::InvalidConfig(errors))) =
        net.site_mut(0).replace_config(now, &invalid, &mut rng)
    else {
        panic!("a reserved inside CIDR must be refused");
    };
    assert!(errors
        .iter()
        .any(|e| e.field() == Some("tunnels[1].inside_cidr")));
    // Nothing moved: both tunnels up, same routes, tunnel 1 active.
    for t in 0..2 {
        assert_eq!(net.site(0).tunnel(t).unwrap().state(), TunnelState::Up);
    }
    assert_eq!(net.site(0).routes().len(), routes_before);
    assert_eq!(net.site(0).active_tunnel(), Some(0));

    // A connection built from tunnels, not a configuration, has nothing to replace.
    let (mut manual, _) = sites(STANDBY);
    assert_eq!(
        manual.replace_config(now, &cgw, &mut rng),
        Err(ReplaceError::NoConfig)
    );
}

#[test]
fn an_operator_rekey_renews_the_child_or_the_ike_sa_of_one_tunnel() {
    let mut net = fixture_sites();
    let logged = |net: &crate::sim::TwoSites, from: usize, what: &str| {
        net.log()[from..]
            .iter()
            .filter(|line| line.contains("cgw") && line.contains(what))
            .count()
    };
    let (now, mark) = (net.now(), net.log().len());
    net.site_mut(0).rekey_tunnel(now, 1, RekeyKind::Child);
    net.run_until(now + Duration::from_secs(2));
    assert_eq!(
        logged(&net, mark, "tunnel 2 child SA rekeyed"),
        1,
        "{:#?}",
        &net.log()[mark..]
    );
    assert_eq!(logged(&net, mark, "tunnel 1 child SA rekeyed"), 0);
    let (now, mark) = (net.now(), net.log().len());
    net.site_mut(0).rekey_tunnel(now, 0, RekeyKind::Ike);
    net.run_until(now + Duration::from_secs(2));
    assert_eq!(
        logged(&net, mark, "tunnel 1 IKE SA rekeyed"),
        1,
        "{:#?}",
        &net.log()[mark..]
    );
    // Neither rekey disturbed the tunnels or the traffic.
    assert_eq!(net.site(0).active_tunnel(), Some(0));
    assert!(matches!(
        net.send(0, &lan_packet()),
        Ok(SendOutcome::Sent { tunnel: 0, .. })
    ));
    // Out-of-range tunnels are ignored.
    net.site_mut(0).rekey_tunnel(now, 7, RekeyKind::Ike);
}

/// The fixture with its BGP routing for both ends: the CGW (AS 65010)
/// announces `cgw_announces`; AWS's end (AS 64512) announces 10.2.0.0/16 and
/// accepts only what `vgw_accepts` covers.
fn bgp_pair(
    cgw_announces: &[&str],
    vgw_accepts: &[&str],
) -> (
    crate::config::ConnectionConfig,
    crate::config::ConnectionConfig,
) {
    let (mut cgw, mut vgw) = fixture_pair();
    let prefixes = |list: &[&str]| list.iter().map(|p| p.parse().unwrap()).collect();
    cgw.routing = crate::config::Routing::Bgp {
        local_asn: 65010,
        peer_asn: 64512,
        hold_time: 30,
        keepalive: 10,
        advertised_prefixes: prefixes(cgw_announces),
        accepted_prefixes: Vec::new(),
        max_prefixes_in: None,
        max_prefixes_out: 100,
    };
    vgw.routing = crate::config::Routing::Bgp {
        local_asn: 64512,
        peer_asn: 65010,
        hold_time: 30,
        keepalive: 10,
        advertised_prefixes: prefixes(&["10.2.0.0/16"]),
        accepted_prefixes: prefixes(vgw_accepts),
        max_prefixes_in: None,
        max_prefixes_out: 100,
    };
    (cgw, vgw)
}

/// Prefixes a site routes into tunnel 0 that BGP taught it.
fn bgp_routes(c: &Connection) -> Vec<String> {
    let mut routes: Vec<String> = c
        .routes()
        .iter()
        .filter(|r| r.tunnel == 0 && matches!(r.origin, crate::route::RouteOrigin::Bgp { .. }))
        .map(|r| r.prefix.to_string())
        .collect();
    routes.sort();
    routes
}

#[test]
fn bgp_announcements_follow_a_replaced_config_and_the_accepted_prefixes_filter() {
    let (cgw, vgw) = bgp_pair(&["10.1.0.0/16", "192.168.0.0/16"], &["10.0.0.0/8"]);
    let mut rng = SeededEntropy::new(31);
    let mut a = Connection::from_config(&cgw, T0, &mut rng).unwrap();
    let mut b = Connection::from_config(&vgw, T0, &mut rng).unwrap();
    a.connect(T0, &mut rng).unwrap();
    b.connect(T0, &mut rng).unwrap();
    let mut net = crate::sim::TwoSites::new(
        ["cgw", "vgw"],
        a,
        b,
        crate::sim::LinkConditions::default(),
        7,
        T0,
    );
    net.run_until(Timestamp::from_secs(20));
    // AWS's end accepts 10.1.0.0/16 (inside 10.0.0.0/8) but not 192.168.0.0/16.
    assert_eq!(bgp_routes(net.site(1)), ["10.1.0.0/16"]);
    assert_eq!(bgp_routes(net.site(0)), ["10.2.0.0/16"]);

    // The customer announces one more network and stops announcing another.
    let (cgw, _) = bgp_pair(&["10.3.0.0/16", "192.168.0.0/16"], &[]);
    let now = net.now();
    let change = net.site_mut(0).replace_config(now, &cgw, &mut rng).unwrap();
    assert_eq!(
        change,
        ConfigChange {
            advertised_changed: true,
            ..ConfigChange::default()
        }
    );
    net.run_until(now + Duration::from_secs(2));
    assert_eq!(bgp_routes(net.site(1)), ["10.3.0.0/16"]);
    for t in 0..2 {
        assert_eq!(net.site(0).tunnel(t).unwrap().state(), TunnelState::Up);
    }

    // A new ASN is a new connection.
    let (mut other_as, _) = bgp_pair(&["10.3.0.0/16"], &[]);
    if let crate::config::Routing::Bgp { local_asn, .. } = &mut other_as.routing {
        *local_asn = 65011;
    }
    assert_eq!(
        net.site_mut(0).replace_config(now, &other_as, &mut rng),
        Err(ReplaceError::RoutingChange)
    );
}
