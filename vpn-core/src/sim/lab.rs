//! A ready-made pair of sites shaped like an AWS VPN connection, for
//! simulations, tests and the demo: a customer gateway (on-premises LAN
//! 10.1.0.0/16) and a virtual private gateway (VPC 10.2.0.0/16) joined by
//! two tunnels with inside /30s 169.254.10.0/30 and 169.254.11.0/30.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use core::time::Duration;

use crate::config::{DpdAction, FailoverPolicy, Prefix, Secret, StartupAction, TunnelConfig};
use crate::connection::{BgpSettings, Connection, ConnectionError, ConnectionPolicy};
use crate::entropy::{Entropy, SeededEntropy};
use crate::esp::EncryptionAlgorithm;
use crate::time::Timestamp;
use crate::tunnel::{Keying, ManualKeying, ManualSa, Tunnel, TunnelSettings};

/// How the lab's tunnels get their keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabKeying {
    /// Static SAs derived from the seed: no IKE, no liveness checks.
    Manual,
    /// IKEv2 with a pre-shared key, AWS-like proposals and these timers.
    Ikev2(IkeTimers),
}

/// Lifetimes and liveness settings of the lab's IKEv2 tunnels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IkeTimers {
    pub ike_lifetime: Duration,
    pub child_lifetime: Duration,
    pub rekey_margin: Duration,
    pub dpd_interval: Duration,
    pub dpd_timeout: Duration,
}

impl Default for IkeTimers {
    /// AWS's defaults: IKE SA 8 h, child SA 1 h, margin 270 s, DPD 10 s / 30 s.
    fn default() -> Self {
        IkeTimers {
            ike_lifetime: Duration::from_secs(28800),
            child_lifetime: Duration::from_secs(3600),
            rekey_margin: Duration::from_secs(270),
            dpd_interval: Duration::from_secs(10),
            dpd_timeout: Duration::from_secs(30),
        }
    }
}

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
/// Keys, SPIs and every other random choice come from `seed`.
pub fn lab_sites(
    keying: LabKeying,
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
                let settings = match keying {
                    LabKeying::Manual => TunnelSettings {
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
                    LabKeying::Ikev2(timers) => ikev2_settings(cgw, i, local, remote, timers),
                };
                // Each tunnel owns a stream of its own, so runs replay exactly.
                let stream = seed ^ ((i as u64 + 1) << 8) ^ (u64::from(cgw) << 16);
                Tunnel::with_entropy(settings, now, Box::new(SeededEntropy::new(stream)))
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
                    keepalive: None,
                    advertised: vec![lan],
                    accepted: Vec::new(),
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

/// IKEv2 settings of lab tunnel `i`: a PSK that depends only on the tunnel
/// (so a restarted site built from another seed still matches), AWS-like proposals, 0.0.0.0/0
/// selectors; the customer gateway initiates and restarts a dead tunnel,
/// the VGW waits and clears.
fn ikev2_settings(
    cgw: bool,
    i: usize,
    local: SocketAddr,
    remote: SocketAddr,
    timers: IkeTimers,
) -> TunnelSettings {
    let (cgw_inside, _) = inside_addresses(i);
    let inside = Prefix::truncating(IpAddr::V4(cgw_inside), 30);
    let psk = Secret::new(format!("lab.psk_tunnel_{i}"));
    let mut config = TunnelConfig::new(local.ip(), remote.ip(), inside, psk);
    config.ike_proposals = vec!["aes256gcm16-prfsha256-ecp256".into()];
    config.esp_proposals = vec!["aes256gcm16".into()];
    let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    config.ike_lifetime = secs(timers.ike_lifetime);
    config.child_lifetime = secs(timers.child_lifetime);
    config.rekey_margin = secs(timers.rekey_margin);
    config.dpd.interval = secs(timers.dpd_interval);
    config.dpd.timeout = secs(timers.dpd_timeout);
    config.dpd.action = if cgw {
        DpdAction::Restart
    } else {
        DpdAction::Clear
    };
    config.startup_action = if cgw {
        StartupAction::Start
    } else {
        StartupAction::Add
    };
    let any: Prefix = "0.0.0.0/0".parse().expect("lab prefix");
    TunnelSettings::from_config(&config, vec![any], vec![any]).expect("lab proposals parse")
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
