//! Shared set-up for the fuzz targets: fixed SAs, established sessions and a
//! little cursor over the fuzz input. Everything is seeded, so a crashing
//! input replays exactly.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use vpn_core::bgp::policy::Policy;
use vpn_core::bgp::session::{ConnectMode, ConnectionId, SessionConfig, State};
use vpn_core::bgp::speaker::{NeighborConfig, PeerId, Speaker, SpeakerConfig};
use vpn_core::bgp::wire::{Afi, Capability, Message, OpenMessage, Safi, WireContext};
use vpn_core::config::Secret;
use vpn_core::entropy::SeededEntropy;
use vpn_core::esp::{
    EncryptionAlgorithm, EspKeys, EspSa, EspSaConfig, Framing, IntegrityAlgorithm,
};
use vpn_core::ike::v1::{Ikev1Event, Ikev1Session, Ikev1Settings};
use vpn_core::time::Timestamp;
use vpn_core::tunnel::{Keying, ManualKeying, ManualSa, Tunnel, TunnelSettings};

/// Reads the fuzz input front to back; past the end every read gives zeros.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    /// The next `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }
    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.data)
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

// ------------------------------------------------------------------ ESP

pub const ESP_SPI: u32 = 0x1234_5678;

/// The ESP suites the targets exercise: AEAD and CBC+HMAC, ESN on and off,
/// plain and UDP-encapsulated framing.
pub fn esp_suites() -> Vec<EspSaConfig> {
    use EncryptionAlgorithm as E;
    use IntegrityAlgorithm as I;
    let udp = Framing::UdpEncap {
        source_port: 4500,
        destination_port: 4500,
    };
    let suites: [(E, Option<I>, bool, Framing); 8] = [
        (E::Aes256Gcm16, None, false, Framing::Esp),
        (E::Aes128Gcm16, None, true, Framing::Esp),
        (E::Aes256Gcm8, None, false, udp),
        (E::ChaCha20Poly1305, None, true, udp),
        (E::Aes128Cbc, Some(I::HmacSha1_96), false, Framing::Esp),
        (E::Aes256Cbc, Some(I::HmacSha256_128), true, Framing::Esp),
        (E::Aes128Cbc, Some(I::HmacSha512_256), false, udp),
        (E::Aes128Gcm12, None, true, Framing::Esp),
    ];
    suites
        .into_iter()
        .map(|(enc, integ, esn, framing)| {
            let mut c = EspSaConfig::new(ESP_SPI, enc);
            c.integrity = integ;
            c.esn = esn;
            c.framing = framing;
            c.replay_window = 64;
            c
        })
        .collect()
}

/// An SA of `config` with fixed keys; two calls give a sender/receiver pair.
pub fn esp_sa(config: &EspSaConfig) -> EspSa {
    let ek: Vec<u8> = (0..config.encryption.keymat_len() as u8).collect();
    let ik: Vec<u8> = config
        .integrity
        .map_or(Vec::new(), |i| (100..100 + i.key_len() as u8).collect());
    let keys = EspKeys {
        encryption: &ek,
        integrity: &ik,
    };
    EspSa::new(config, keys, Timestamp::ZERO, &mut SeededEntropy::new(7)).expect("valid SA")
}

// ------------------------------------------------------------------ BGP

pub const BGP_CTX: WireContext = WireContext {
    four_octet_as: true,
};

/// A speaker (AS 65000) whose passive neighbour AS 64512 is Established on the
/// inbound connection at time zero: the peer's OPEN (hold time 30 s,
/// multiprotocol IPv4/IPv6, 4-octet AS) and KEEPALIVE were fed as TCP bytes,
/// as `vpn-core/src/bgp/tests/fuzz.rs` does. Output so far is drained.
pub fn bgp_established() -> (Speaker, PeerId) {
    let mut sp = Speaker::new(
        SpeakerConfig::new(65000, Ipv4Addr::new(10, 0, 0, 1)),
        Box::new(SeededEntropy::new(5)),
    );
    let mut s = SessionConfig::new(
        65000,
        Ipv4Addr::new(10, 0, 0, 1),
        64512,
        IpAddr::V4(Ipv4Addr::new(169, 254, 10, 2)),
        IpAddr::V4(Ipv4Addr::new(169, 254, 10, 1)),
    );
    s.mode = ConnectMode::Passive;
    let mut n = NeighborConfig::new(s);
    n.import = Some(Policy::accept_all());
    n.export = Some(Policy::accept_all());
    let peer = sp.add_neighbor(n).expect("neighbour");
    sp.start(Timestamp::ZERO, peer);
    sp.handle_connected(Timestamp::ZERO, peer, ConnectionId::Inbound);
    let caps = vec![
        Capability::Multiprotocol {
            afi: Afi::IPV4,
            safi: Safi::UNICAST,
        },
        Capability::Multiprotocol {
            afi: Afi::IPV6,
            safi: Safi::UNICAST,
        },
        Capability::FourOctetAs(64512),
    ];
    let open = OpenMessage::new(64512, 30, Ipv4Addr::new(10, 0, 0, 2), caps);
    let mut bytes = Message::Open(open).to_vec(&BGP_CTX).expect("OPEN");
    bytes.extend(Message::Keepalive.to_vec(&BGP_CTX).expect("KEEPALIVE"));
    sp.handle_bytes(Timestamp::ZERO, peer, ConnectionId::Inbound, &bytes);
    let mut sink = Vec::new();
    while sp.poll_transmit(&mut sink).is_some() {}
    while sp.poll_event().is_some() {}
    while sp.poll_action().is_some() {}
    assert_eq!(
        sp.session(peer).map(|s| s.state()),
        Some(State::Established)
    );
    (sp, peer)
}

// ------------------------------------------------------------------ IKEv1

pub const V1_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const V1_B: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

pub fn sock(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ip), port)
}

/// Two IKEv1 sessions (AWS's default profile) joined in memory on a fixed
/// clock, as in `vpn-core/src/ike/v1/tests.rs`.
pub struct Ikev1Pair {
    pub now: Timestamp,
    pub a: Ikev1Session,
    pub b: Ikev1Session,
    /// Every datagram that crossed: (from A, bytes).
    pub log: Vec<(bool, Vec<u8>)>,
    pub a_events: Vec<Ikev1Event>,
    pub b_events: Vec<Ikev1Event>,
}

impl Ikev1Pair {
    pub fn new(ike: &str, esp: &str) -> Ikev1Pair {
        use vpn_core::ike::proposal::{parse_esp_proposals, parse_ike_proposals};
        let settings = |local, remote| {
            let mut s = Ikev1Settings::aws_default(local, remote, Secret::from("fuzz-psk"));
            s.ike_proposals = parse_ike_proposals(ike).expect("IKE proposal");
            s.esp_proposals = parse_esp_proposals(esp).expect("ESP proposal");
            s
        };
        let now = Timestamp::from_secs(1000);
        Ikev1Pair {
            now,
            a: Ikev1Session::new(
                settings(sock(V1_A, 500), sock(V1_B, 500)),
                now,
                Box::new(SeededEntropy::new(1)),
            )
            .expect("session A"),
            b: Ikev1Session::new(
                settings(sock(V1_B, 500), sock(V1_A, 500)),
                now,
                Box::new(SeededEntropy::new(2)),
            )
            .expect("session B"),
            log: Vec::new(),
            a_events: Vec::new(),
            b_events: Vec::new(),
        }
    }

    /// A connects; datagrams move until both sides are quiet.
    pub fn established(ike: &str, esp: &str) -> Ikev1Pair {
        let mut p = Ikev1Pair::new(ike, esp);
        p.a.connect(p.now).expect("connect");
        p.drive();
        assert!(p.a.is_established() && p.b.is_established());
        p
    }

    /// Moves datagrams until both sides are quiet (bounded).
    pub fn drive(&mut self) {
        for _ in 0..100 {
            let mut any = false;
            while let Some((src, dst, bytes)) = self.a.poll_transmit() {
                any = true;
                let _ = self.b.handle_datagram(self.now, dst, src, &bytes);
                self.log.push((true, bytes));
            }
            while let Some((src, dst, bytes)) = self.b.poll_transmit() {
                any = true;
                let _ = self.a.handle_datagram(self.now, dst, src, &bytes);
                self.log.push((false, bytes));
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
        panic!("datagram storm between two IKEv1 sessions");
    }
}

// ------------------------------------------------------------------ tunnel

pub const TUNNEL_A: &str = "192.0.2.1:4500";
pub const TUNNEL_B: &str = "198.51.100.1:4500";

/// Two manually keyed tunnels (AES-256-GCM, ESN), both Up, as in
/// `vpn-core/src/tunnel/tests.rs`: A carries 10.1.0.0/16, B 10.2.0.0/16.
pub fn tunnel_pair() -> (Tunnel, Tunnel) {
    use vpn_core::esp::EncryptionAlgorithm as E;
    let manual_sa = |spi: u32| ManualSa {
        spi,
        encryption: E::Aes256Gcm16,
        integrity: None,
        encryption_key: vec![spi as u8; 36].into(),
        integrity_key: Vec::new().into(),
        esn: true,
    };
    let settings =
        |local: &str, remote: &str, out_spi, in_spi, lan: &str, peer_lan: &str| TunnelSettings {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            keying: Keying::Manual(ManualKeying {
                outbound: manual_sa(out_spi),
                inbound: manual_sa(in_spi),
            }),
            local_traffic: vec![lan.parse().unwrap()],
            remote_traffic: vec![peer_lan.parse().unwrap()],
            replay_window: 64,
        };
    let mut rng = SeededEntropy::new(3);
    let t0 = Timestamp::ZERO;
    let mut a = Tunnel::new(
        settings(
            TUNNEL_A,
            TUNNEL_B,
            0x1001,
            0x2002,
            "10.1.0.0/16",
            "10.2.0.0/16",
        ),
        t0,
    )
    .expect("tunnel A");
    let mut b = Tunnel::new(
        settings(
            TUNNEL_B,
            TUNNEL_A,
            0x2002,
            0x1001,
            "10.2.0.0/16",
            "10.1.0.0/16",
        ),
        t0,
    )
    .expect("tunnel B");
    a.connect(t0, &mut rng).expect("connect A");
    b.connect(t0, &mut rng).expect("connect B");
    (a, b)
}

/// A minimal IPv4 packet of `len` bytes (at least 20) from `src` to `dst`.
pub fn ipv4(src: [u8; 4], dst: [u8; 4], len: usize) -> Vec<u8> {
    let len = len.max(20);
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p
}
