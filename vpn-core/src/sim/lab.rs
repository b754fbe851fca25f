//! A ready-made pair of sites shaped like an AWS VPN connection, for
//! simulations, tests and the demo: a customer gateway (on-premises LAN
//! 10.1.0.0/16) and a virtual private gateway (VPC 10.2.0.0/16) joined by
//! two tunnels with inside /30s 169.254.10.0/30 and 169.254.11.0/30.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::config::{FailoverPolicy, Prefix};
use crate::connection::{BgpSettings, Connection, ConnectionError, ConnectionPolicy};
use crate::entropy::{Entropy, SeededEntropy};
use crate::esp::EncryptionAlgorithm;
use crate::time::Timestamp;
use crate::tunnel::{Keying, ManualKeying, ManualSa, Tunnel, TunnelSettings};

/// The customer gateway's outside address (one for both tunnels, as at AWS).
pub const CGW_OUTSIDE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// AWS's outside address of tunnel `i`: 203.0.113.(10 + i).
pub fn vgw_outside(tunnel: usize) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, 10 + tunnel as u8)
}
/// Inside /30 of tunnel `i`: 169.254.(10 + i).0/30; the CGW has .2, AWS .1.
pub fn inside_addresses(tunnel: usize) -> (Ipv4Addr, Ipv4Addr) {
    let third = 10 + tunnel as u8;
    (
        Ipv4Addr::new(169, 254, third, 2),
        Ipv4Addr::new(169, 254, third, 1),
    )
}
pub const CGW_LAN: &str = "10.1.0.0/16";
pub const VPC: &str = "10.2.0.0/16";

/// How the lab's connection routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabRouting {
    Static,
    /// BGP with this hold time (AWS: 30 s); CGW AS 65000, AWS AS 64512.
    Bgp {
        hold_time: u16,
    },
}

/// Builds the two ends: index 0 is the customer gateway, 1 the VGW.
/// Keys and SPIs come from `seed`.
pub fn lab_sites(
    routing: LabRouting,
    failover: FailoverPolicy,
    seed: u64,
    now: Timestamp,
) -> Result<(Connection, Connection), ConnectionError> {
    let mut keys = SeededEntropy::new(seed);
    // Per tunnel: (CGW -> VGW SA, VGW -> CGW SA), shared by both ends.
    let sas: Vec<[(u32, Vec<u8>); 2]> = (0..2)
        .map(|_| {
            [0, 1].map(|_| {
                let spi = 0x1000 | keys.next_u32();
                let mut key = vec![0u8; EncryptionAlgorithm::Aes256Gcm16.keymat_len()];
                keys.fill(&mut key);
                (spi, key)
            })
        })
        .collect();
    let site = |cgw: bool, rng: &mut SeededEntropy| {
        let tunnels = (0..2)
            .map(|i| {
                let cgw_addr = SocketAddr::new(IpAddr::V4(CGW_OUTSIDE), 500);
                let vgw_addr = SocketAddr::new(IpAddr::V4(vgw_outside(i)), 500);
                let (local, remote) = if cgw {
                    (cgw_addr, vgw_addr)
                } else {
                    (vgw_addr, cgw_addr)
                };
                let sa = |(spi, key): &(u32, Vec<u8>)| ManualSa {
                    spi: *spi,
                    encryption: EncryptionAlgorithm::Aes256Gcm16,
                    integrity: None,
                    encryption_key: zeroize::Zeroizing::new(key.clone()),
                    integrity_key: zeroize::Zeroizing::new(Vec::new()),
                    esn: true,
                };
                let (out, inn) = if cgw {
                    (&sas[i][0], &sas[i][1])
                } else {
                    (&sas[i][1], &sas[i][0])
                };
                let (cgw_inside, vgw_inside) = inside_addresses(i);
                let (lan, peer_lan, our_inside, peer_inside) = if cgw {
                    (CGW_LAN, VPC, cgw_inside, vgw_inside)
                } else {
                    (VPC, CGW_LAN, vgw_inside, cgw_inside)
                };
                let host = |a: Ipv4Addr| Prefix::new(IpAddr::V4(a), 32).expect("a /32 is a prefix");
                Tunnel::new(
                    TunnelSettings {
                        local,
                        remote,
                        keying: Keying::Manual(ManualKeying {
                            outbound: sa(out),
                            inbound: sa(inn),
                        }),
                        local_traffic: vec![lan.parse().expect("lab prefix"), host(our_inside)],
                        remote_traffic: vec![
                            peer_lan.parse().expect("lab prefix"),
                            host(peer_inside),
                        ],
                        replay_window: 1024,
                    },
                    now,
                )
                .expect("lab tunnel settings are valid")
            })
            .collect();
        let (lan, peer_lan): (Prefix, Prefix) = if cgw {
            (
                CGW_LAN.parse().expect("lab prefix"),
                VPC.parse().expect("lab prefix"),
            )
        } else {
            (
                VPC.parse().expect("lab prefix"),
                CGW_LAN.parse().expect("lab prefix"),
            )
        };
        let mut policy = ConnectionPolicy {
            failover,
            ..ConnectionPolicy::default()
        };
        match routing {
            LabRouting::Static => policy.static_routes = vec![peer_lan],
            LabRouting::Bgp { hold_time } => {
                policy.bgp = Some(BgpSettings {
                    local_asn: if cgw { 65000 } else { 64512 },
                    peer_asn: if cgw { 64512 } else { 65000 },
                    hold_time,
                    advertised: vec![lan],
                    max_prefixes_in: Some(100),
                    max_prefixes_out: Some(100),
                    active: cgw,
                    inside_addresses: (0..2)
                        .map(|i| {
                            let (c, v) = inside_addresses(i);
                            if cgw {
                                (c, v)
                            } else {
                                (v, c)
                            }
                        })
                        .collect(),
                })
            }
        }
        Connection::new(tunnels, policy, now, rng)
    };
    let mut rng = SeededEntropy::new(seed ^ 0x5eed);
    let cgw = site(true, &mut rng)?;
    let vgw = site(false, &mut rng)?;
    Ok((cgw, vgw))
}

/// An IPv4/UDP packet from `src` to `dst` with a 4-byte sequence number
/// payload padded to `len` bytes (at least 32), for traffic in simulations.
pub fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, sequence: u32, len: usize) -> Vec<u8> {
    let len = len.max(32);
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[20..22].copy_from_slice(&5000u16.to_be_bytes());
    p[22..24].copy_from_slice(&5001u16.to_be_bytes());
    p[24..26].copy_from_slice(&((len - 20) as u16).to_be_bytes());
    p[28..32].copy_from_slice(&sequence.to_be_bytes());
    p
}

/// The sequence number of a packet made by [`udp_packet`].
pub fn udp_sequence(packet: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(packet.get(28..32)?.try_into().ok()?))
}
