//! The `Pair` harness: two IKEv2 tunnels (A initiates, B responds) on a
//! virtual clock, joined by a small deterministic network that can drop,
//! duplicate or delay single datagrams and put a NAT in front of A.

use core::time::Duration;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use crate::config::{DpdAction, Secret, StartupAction};
use crate::entropy::SeededEntropy;
use crate::esp::nat_t::{classify, NatTDatagram};
use crate::ike::v2::wire::Header;
use crate::ike::v2::{Identity, Ikev2Settings};
use crate::time::Timestamp;
use crate::tunnel::{Keying, Received, Tunnel, TunnelEvent, TunnelSettings, TunnelState};

pub const A_IP: &str = "192.0.2.1";
pub const A_PRIVATE_IP: &str = "10.99.0.1";
pub const NAT_IP: &str = "203.0.113.5";
pub const B_IP: &str = "198.51.100.1";
pub const LATENCY: Duration = Duration::from_millis(10);

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// IKEv2 settings with one IKE and one ESP proposal string.
pub fn ike(ike: &str, esp: &str, start: bool) -> Ikev2Settings {
    let mut s = Ikev2Settings::new(
        Secret::from("correct.horse.battery"),
        Identity::Fqdn("unused".into()),
        ike,
        esp,
    )
    .unwrap();
    s.startup_action = if start {
        StartupAction::Start
    } else {
        StartupAction::Add
    };
    s.dpd.action = DpdAction::Clear;
    s
}

pub struct Config {
    pub a: Ikev2Settings,
    pub b: Ikev2Settings,
    pub a_lan: &'static str,
    pub b_lan: &'static str,
    /// What B accepts from A's side (default: A's LAN).
    pub b_remote_lan: Option<&'static str>,
    pub nat: bool,
    pub seed: u64,
}

impl Config {
    pub fn new(ike_s: &str, esp_s: &str) -> Config {
        Config {
            a: ike(ike_s, esp_s, true),
            b: ike(ike_s, esp_s, false),
            a_lan: "10.1.0.0/16",
            b_lan: "10.2.0.0/16",
            b_remote_lan: None,
            nat: false,
            seed: 1,
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::new("aes256gcm16-prfsha256-ecp256", "aes256gcm16")
    }
}

/// What the network does with one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Deliver,
    Drop,
    Duplicate,
    Delay(Duration),
}

/// A datagram on the wire, as the filter sees it.
#[derive(Clone, Debug)]
pub struct Sent {
    pub from_a: bool,
    pub at: Timestamp,
    /// Source and destination after any NAT.
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub bytes: Vec<u8>,
}

impl Sent {
    /// The IKE message inside (marker removed), if it is one.
    pub fn ike(&self) -> Option<&[u8]> {
        if self.dst.port() == 4500 {
            match classify(&self.bytes) {
                NatTDatagram::Ike(m) => Some(m),
                _ => None,
            }
        } else {
            Some(&self.bytes)
        }
    }

    pub fn ike_header(&self) -> Option<Header> {
        self.ike().and_then(|m| Header::decode(m).ok())
    }

    pub fn is_esp(&self) -> bool {
        self.dst.port() == 4500 && matches!(classify(&self.bytes), NatTDatagram::Esp(_))
    }
}

pub type Filter = Box<dyn FnMut(&Sent) -> Fate>;

pub struct Pair {
    pub now: Timestamp,
    pub a: Tunnel,
    pub b: Tunnel,
    pub a_events: Vec<TunnelEvent>,
    pub b_events: Vec<TunnelEvent>,
    /// Every datagram handed to the network, in order.
    pub transcript: Vec<Sent>,
    /// Inner packets received (decrypted) by A and by B.
    pub a_inner: Vec<Vec<u8>>,
    pub b_inner: Vec<Vec<u8>>,
    in_flight: VecDeque<(Timestamp, Sent)>,
    pub filter: Filter,
    nat: bool,
    a_local: SocketAddr,
}

fn settings(
    local: SocketAddr,
    remote: SocketAddr,
    mut ike: Ikev2Settings,
    lan: &str,
    peer_lan: &str,
) -> TunnelSettings {
    ike.local_identity = Identity::Ip(local.ip());
    TunnelSettings {
        local,
        remote,
        keying: Keying::Ikev2(Box::new(ike)),
        local_traffic: vec![lan.parse().unwrap()],
        remote_traffic: vec![peer_lan.parse().unwrap()],
        replay_window: 1024,
    }
}

impl Pair {
    pub fn new(cfg: Config) -> Pair {
        Pair::with_filter(cfg, Box::new(|_| Fate::Deliver))
    }

    /// A pair whose network applies `filter` from the very first datagram.
    pub fn with_filter(cfg: Config, filter: Filter) -> Pair {
        let now = Timestamp::from_secs(1000);
        let a_local = SocketAddr::new(ip(if cfg.nat { A_PRIVATE_IP } else { A_IP }), 500);
        let a_seen = SocketAddr::new(ip(if cfg.nat { NAT_IP } else { A_IP }), 500);
        let b_addr = SocketAddr::new(ip(B_IP), 500);
        let a = Tunnel::with_entropy(
            settings(a_local, b_addr, cfg.a, cfg.a_lan, cfg.b_lan),
            now,
            Box::new(SeededEntropy::new(cfg.seed)),
        )
        .unwrap();
        let b = Tunnel::with_entropy(
            settings(
                b_addr,
                a_seen,
                cfg.b,
                cfg.b_lan,
                cfg.b_remote_lan.unwrap_or(cfg.a_lan),
            ),
            now,
            Box::new(SeededEntropy::new(cfg.seed.wrapping_add(1000))),
        )
        .unwrap();
        let mut p = Pair {
            now,
            a,
            b,
            a_events: Vec::new(),
            b_events: Vec::new(),
            transcript: Vec::new(),
            a_inner: Vec::new(),
            b_inner: Vec::new(),
            in_flight: VecDeque::new(),
            filter,
            nat: cfg.nat,
            a_local,
        };
        let mut unused = SeededEntropy::new(0);
        p.b.connect(now, &mut unused).unwrap();
        p.a.connect(now, &mut unused).unwrap();
        p.pump();
        p
    }

    /// A restarts: a fresh tunnel with new randomness and no memory of the
    /// old SAs initiates again.
    pub fn restart_a(&mut self, ike: Ikev2Settings, a_lan: &str, b_lan: &str, seed: u64) {
        let b_addr = SocketAddr::new(ip(B_IP), 500);
        self.a = Tunnel::with_entropy(
            settings(self.a_local, b_addr, ike, a_lan, b_lan),
            self.now,
            Box::new(SeededEntropy::new(seed)),
        )
        .unwrap();
        let mut unused = SeededEntropy::new(0);
        self.a.connect(self.now, &mut unused).unwrap();
        self.pump();
    }

    /// A's source port as the NAT maps it.
    fn nat_port(port: u16) -> u16 {
        if port == 4500 {
            31001
        } else {
            31000
        }
    }

    fn send(&mut self, from_a: bool, mut src: SocketAddr, dst: SocketAddr, bytes: Vec<u8>) {
        if from_a && self.nat {
            src = SocketAddr::new(ip(NAT_IP), Pair::nat_port(src.port()));
        }
        let sent = Sent {
            from_a,
            at: self.now,
            src,
            dst,
            bytes,
        };
        self.transcript.push(sent.clone());
        match (self.filter)(&sent) {
            Fate::Deliver => self.in_flight.push_back((self.now + LATENCY, sent)),
            Fate::Drop => {}
            Fate::Duplicate => {
                self.in_flight.push_back((self.now + LATENCY, sent.clone()));
                self.in_flight.push_back((self.now + LATENCY, sent));
            }
            Fate::Delay(d) => self.in_flight.push_back((self.now + LATENCY + d, sent)),
        }
    }

    /// Moves transmits into the network and events into the logs.
    pub fn pump(&mut self) {
        let mut buf = vec![0u8; 4096];
        loop {
            let mut any = false;
            while let Some(t) = self.a.poll_transmit(&mut buf) {
                self.send(true, t.local, t.remote, buf[..t.len].to_vec());
                any = true;
            }
            while let Some(t) = self.b.poll_transmit(&mut buf) {
                self.send(false, t.local, t.remote, buf[..t.len].to_vec());
                any = true;
            }
            while let Some(e) = self.a.poll_event() {
                self.a_events.push(e);
            }
            while let Some(e) = self.b.poll_event() {
                self.b_events.push(e);
            }
            if !any {
                break;
            }
        }
    }

    fn deliver(&mut self, sent: Sent) {
        let mut bytes = sent.bytes.clone();
        if sent.from_a {
            let r = self
                .b
                .handle_datagram(self.now, sent.dst, sent.src, &mut bytes);
            if let Received::Inner { range } = r {
                self.b_inner.push(bytes[range].to_vec());
            }
        } else {
            // Through A's NAT back to its private address.
            let dst = if self.nat {
                if sent.dst.ip() != ip(NAT_IP) {
                    return;
                }
                let port = if sent.dst.port() == Pair::nat_port(4500) {
                    4500
                } else if sent.dst.port() == Pair::nat_port(500) {
                    500
                } else {
                    return;
                };
                SocketAddr::new(self.a_local.ip(), port)
            } else {
                sent.dst
            };
            let r = self.a.handle_datagram(self.now, dst, sent.src, &mut bytes);
            if let Received::Inner { range } = r {
                self.a_inner.push(bytes[range].to_vec());
            }
        }
        self.pump();
    }

    /// Runs the network and both timers until `until`.
    pub fn run_until(&mut self, until: Timestamp) {
        let mut stuck = 0;
        let mut last = self.now;
        loop {
            if self.now == last {
                stuck += 1;
                assert!(
                    stuck < 10_000,
                    "no progress at {:?}: timers {:?} {:?}",
                    self.now,
                    self.a.poll_timeout(),
                    self.b.poll_timeout()
                );
            } else {
                stuck = 0;
                last = self.now;
            }
            self.pump();
            let next_delivery = self.in_flight.iter().map(|(t, _)| *t).min();
            let next_timer = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let next = [next_delivery, next_timer].into_iter().flatten().min();
            let Some(next) = next.filter(|t| *t <= until) else {
                self.now = self.now.max(until);
                return;
            };
            self.now = self.now.max(next);
            if next_delivery == Some(next) {
                let pos = self.in_flight.iter().position(|(t, _)| *t == next).unwrap();
                let (_, sent) = self.in_flight.remove(pos).unwrap();
                self.deliver(sent);
            } else {
                self.a.handle_timeout(self.now);
                self.b.handle_timeout(self.now);
            }
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    pub fn both_up(&self) -> bool {
        self.a.state() == TunnelState::Up && self.b.state() == TunnelState::Up
    }

    /// Sends one inner packet from A (or B) into the tunnel.
    pub fn send_inner(&mut self, from_a: bool, inner: &[u8]) -> bool {
        let mut buf = vec![0u8; 2048];
        let t = if from_a { &mut self.a } else { &mut self.b };
        let h = t.headroom();
        buf[h..h + inner.len()].copy_from_slice(inner);
        match t.send_inner(self.now, &mut buf, inner.len()) {
            Ok(tx) => {
                self.send(from_a, tx.local, tx.remote, buf[..tx.len].to_vec());
                self.pump();
                true
            }
            Err(_) => false,
        }
    }

    /// One packet each way; true when both arrived.
    pub fn ping(&mut self) -> bool {
        let (a0, b0) = (self.a_inner.len(), self.b_inner.len());
        let ab = ipv4([10, 1, 0, 5], [10, 2, 0, 7], 84, self.b_inner.len() as u8);
        let ba = ipv4([10, 2, 0, 7], [10, 1, 0, 5], 84, self.a_inner.len() as u8);
        let sent = self.send_inner(true, &ab) & self.send_inner(false, &ba);
        self.run_for(LATENCY * 3);
        sent && self.a_inner.len() == a0 + 1 && self.b_inner.len() == b0 + 1
    }

    pub fn down_reason(events: &[TunnelEvent]) -> Option<crate::tunnel::DownReason> {
        events.iter().find_map(|e| match e {
            TunnelEvent::Down { reason } => Some(reason.clone()),
            _ => None,
        })
    }

    /// IKE datagrams of the transcript.
    pub fn ike_messages(&self) -> Vec<&Sent> {
        self.transcript
            .iter()
            .filter(|s| s.ike_header().is_some() && !s.is_esp())
            .collect()
    }
}

pub fn ipv4(src: [u8; 4], dst: [u8; 4], len: usize, tag: u8) -> Vec<u8> {
    let mut p = vec![tag; len];
    p[0] = 0x45;
    p[1] = 0;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p
}
