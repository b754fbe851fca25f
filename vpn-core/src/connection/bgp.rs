//! Dynamic routing for a connection: one BGP speaker with a session over
//! each tunnel's inside addresses, carried through the tunnel itself.
//!
//! The speaker's sessions ride a userspace TCP stack per tunnel
//! ([`InsideStack`]), so the connection needs no help from the embedder's
//! kernel, and a simulation carries BGP over ESP end to end. Routes the
//! speaker learns become [`RouteOrigin::Bgp`] routes of the tunnel they
//! came through, ranked by AS_PATH length and MED as AWS ranks them.

use core::time::Duration;
use std::net::{IpAddr, Ipv4Addr};

use super::inside::{InsideStack, TcpChange};
use crate::bgp::policy::{Actions, Policy, PrefixList, PrefixListEntry};
use crate::bgp::rib::IpPrefix;
use crate::bgp::session::{Action, ConnectMode, ConnectionId, SessionConfig, SessionEvent};
use crate::bgp::speaker::{
    MaxPrefixes, NeighborConfig, PeerId, Speaker, SpeakerConfig, SpeakerEvent,
};
use crate::bgp::wire::{Ipv4Prefix, Ipv6Prefix, Origin, PathAttributes};
use crate::config::Prefix;
use crate::entropy::Entropy;
use crate::route::{Route, RouteOrigin, RouteTable, TunnelIndex};
use crate::time::Timestamp;

/// BGP settings of a connection (AWS: peer ASN 64512, hold 30 s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpSettings {
    pub local_asn: u32,
    pub peer_asn: u32,
    /// Hold time offered, seconds (0 or at least 3).
    pub hold_time: u16,
    /// Keepalive interval, seconds; `None`: a third of the negotiated hold time.
    pub keepalive: Option<u16>,
    /// Prefixes we announce over every tunnel.
    pub advertised: Vec<Prefix>,
    /// Prefixes accepted from the peer, each exactly or more specific;
    /// empty: everything.
    pub accepted: Vec<Prefix>,
    /// Take the session down when the peer sends more (AWS VGW: 100 from a CGW).
    pub max_prefixes_in: Option<u32>,
    /// Announce at most this many prefixes.
    pub max_prefixes_out: Option<usize>,
    /// Open the TCP connection (the customer gateway does); otherwise wait.
    pub active: bool,
    /// Per tunnel, in tunnel order: our inside address and the peer's.
    pub inside_addresses: Vec<(Ipv4Addr, Ipv4Addr)>,
}

/// The BGP side of a connection.
pub(crate) struct BgpRouting {
    speaker: Speaker,
    /// Per tunnel: its TCP stack and its neighbour in the speaker.
    links: Vec<(InsideStack, PeerId)>,
    scratch: Vec<u8>,
}

/// What BGP did that the connection reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BgpEvent {
    Session {
        tunnel: TunnelIndex,
        event: SessionEvent,
    },
    RouteAdded {
        tunnel: TunnelIndex,
        prefix: Prefix,
    },
    RouteRemoved {
        tunnel: TunnelIndex,
        prefix: Prefix,
    },
    /// More prefixes to announce than the peer accepts; the first ones win.
    OutboundCapReached {
        tunnel: TunnelIndex,
        cap: usize,
        wanted: usize,
    },
}

impl BgpRouting {
    pub(crate) fn new(
        settings: &BgpSettings,
        mtu: u16,
        now: Timestamp,
        entropy: &mut dyn Entropy,
    ) -> Result<Self, crate::bgp::session::ConfigError> {
        let router_id = settings
            .inside_addresses
            .first()
            .map_or(Ipv4Addr::new(0, 0, 0, 1), |(local, _)| *local);
        // The speaker keeps its own stream, drawn from ours: still one seed per run.
        let speaker_entropy = Box::new(crate::entropy::SeededEntropy::new(entropy.next_u64()));
        let mut speaker = Speaker::new(
            SpeakerConfig::new(settings.local_asn, router_id),
            speaker_entropy,
        );
        let mut links = Vec::new();
        for &(local, peer) in &settings.inside_addresses {
            let mut session = SessionConfig::new(
                settings.local_asn,
                router_id,
                settings.peer_asn,
                IpAddr::V4(local),
                IpAddr::V4(peer),
            );
            session.hold_time = settings.hold_time;
            session.keepalive_time = settings.keepalive;
            session.mode = if settings.active {
                ConnectMode::Active
            } else {
                ConnectMode::Passive
            };
            // Over a tunnel the first connect should not wait two minutes.
            session.connect_retry = Duration::from_secs(5);
            session.idle_hold_time = Duration::from_secs(1);
            session.ipv6_unicast = false;
            let mut neighbor = NeighborConfig::new(session);
            neighbor.import = Some(import_policy(&settings.accepted));
            neighbor.export = Some(Policy::accept_all());
            neighbor.max_prefixes = settings.max_prefixes_in.map(|limit| MaxPrefixes {
                limit,
                restart: Some(Duration::from_secs(30)),
            });
            neighbor.max_announced = settings.max_prefixes_out;
            let peer_id = speaker.add_neighbor(neighbor)?;
            let stack = InsideStack::new(
                local,
                peer,
                !settings.active,
                usize::from(mtu),
                entropy.next_u64(),
                now,
            );
            links.push((stack, peer_id));
        }
        let mut routing = BgpRouting {
            speaker,
            links,
            scratch: Vec::new(),
        };
        routing.readvertise(&[], &settings.advertised);
        for (_, peer) in &routing.links {
            routing.speaker.start(now, *peer);
        }
        Ok(routing)
    }

    /// Withdraws `removed` and announces `added` among the prefixes this end
    /// originates; the next [`drive`](Self::drive) sends the UPDATEs.
    pub(crate) fn readvertise(&mut self, removed: &[Prefix], added: &[Prefix]) {
        for prefix in removed.iter().filter_map(|p| to_bgp_prefix(*p)) {
            self.speaker.withdraw(prefix);
        }
        for prefix in added.iter().filter_map(|p| to_bgp_prefix(*p)) {
            self.speaker.announce(
                prefix,
                PathAttributes {
                    origin: Some(Origin::Igp),
                    ..PathAttributes::default()
                },
            );
        }
    }

    pub(crate) fn speaker(&self) -> &Speaker {
        &self.speaker
    }

    /// The tunnel whose inside address is `destination`, if any.
    pub(crate) fn inside_owner(&self, destination: IpAddr) -> Option<TunnelIndex> {
        let IpAddr::V4(destination) = destination else {
            return None;
        };
        self.links
            .iter()
            .position(|(s, _)| s.local() == destination)
    }

    /// An inner packet addressed to our inside address on `tunnel`.
    pub(crate) fn push_packet(&mut self, tunnel: TunnelIndex, packet: &[u8]) {
        if let Some((stack, _)) = self.links.get_mut(tunnel) {
            stack.push_packet(packet);
        }
    }

    /// The tunnel under a session went down: drop its TCP connection now
    /// instead of waiting for the hold timer.
    pub(crate) fn tunnel_down(&mut self, now: Timestamp, tunnel: TunnelIndex) {
        if let Some((stack, peer)) = self.links.get_mut(tunnel) {
            stack.abort();
            let id = if stack_is_passive(&self.speaker, *peer) {
                ConnectionId::Inbound
            } else {
                ConnectionId::Outbound
            };
            self.speaker.handle_connection_closed(now, *peer, id);
        }
    }

    /// Moves bytes and packets between the speaker, the TCP stacks and the
    /// tunnels until nothing moves. Packets to seal are handed to `send`;
    /// events to `report`; `routes` follows the speaker's Adj-RIBs-In.
    pub(crate) fn drive(
        &mut self,
        now: Timestamp,
        routes: &mut RouteTable,
        mut send: impl FnMut(TunnelIndex, Vec<u8>),
        mut report: impl FnMut(BgpEvent),
    ) {
        for _round in 0..16 {
            let mut progress = false;
            for (tunnel, (stack, peer)) in self.links.iter_mut().enumerate() {
                self.scratch.clear();
                let change = stack.poll(now, &mut self.scratch);
                let id = if stack_is_passive(&self.speaker, *peer) {
                    ConnectionId::Inbound
                } else {
                    ConnectionId::Outbound
                };
                match change {
                    Some(TcpChange::Connected) => self.speaker.handle_connected(now, *peer, id),
                    Some(TcpChange::Closed) => {
                        self.speaker.handle_connection_closed(now, *peer, id)
                    }
                    None => {}
                }
                if !self.scratch.is_empty() {
                    self.speaker.handle_bytes(now, *peer, id, &self.scratch);
                }
                while let Some(packet) = stack.pop_packet() {
                    send(tunnel, packet);
                    progress = true;
                }
                progress |= change.is_some() || !self.scratch.is_empty();
            }
            while let Some((peer, action)) = self.speaker.poll_action() {
                progress = true;
                if let Some((stack, _)) = self.links.iter_mut().find(|(_, p)| *p == peer) {
                    match action {
                        Action::Connect => stack.connect(),
                        Action::Close(_) => stack.close(),
                    }
                }
            }
            let mut out = Vec::new();
            while let Some((peer, _)) = self.speaker.poll_transmit(&mut out) {
                progress = true;
                if let Some((stack, _)) = self.links.iter_mut().find(|(_, p)| *p == peer) {
                    stack.send(&out);
                }
                out.clear();
            }
            while let Some(event) = self.speaker.poll_event() {
                progress = true;
                self.apply(event, routes, &mut report);
            }
            if !progress && !self.links.iter().any(|(s, _)| s.has_input()) {
                break;
            }
        }
    }

    fn apply(
        &mut self,
        event: SpeakerEvent,
        routes: &mut RouteTable,
        report: &mut impl FnMut(BgpEvent),
    ) {
        match event {
            SpeakerEvent::Session { peer, event } => {
                if let Some(tunnel) = self.tunnel_of(peer) {
                    if matches!(event, SessionEvent::Down { .. }) {
                        let learned: Vec<Prefix> = routes
                            .iter()
                            .filter(|r| {
                                r.tunnel == tunnel && matches!(r.origin, RouteOrigin::Bgp { .. })
                            })
                            .map(|r| r.prefix)
                            .collect();
                        for prefix in learned {
                            routes.remove(prefix, tunnel, false);
                            report(BgpEvent::RouteRemoved { tunnel, prefix });
                        }
                    }
                    report(BgpEvent::Session { tunnel, event });
                }
            }
            SpeakerEvent::Route(route) => {
                let prefix = match route {
                    crate::bgp::speaker::RouteEvent::BestAdded { prefix, .. }
                    | crate::bgp::speaker::RouteEvent::BestChanged { prefix, .. }
                    | crate::bgp::speaker::RouteEvent::BestWithdrawn { prefix } => prefix,
                };
                self.sync_prefix(prefix, routes, report);
            }
            SpeakerEvent::OutboundCapReached { peer, cap, wanted } => {
                if let Some(tunnel) = self.tunnel_of(peer) {
                    report(BgpEvent::OutboundCapReached {
                        tunnel,
                        cap,
                        wanted,
                    });
                }
            }
        }
    }

    /// Makes the route table's BGP routes for `prefix` match each
    /// neighbour's Adj-RIB-In.
    fn sync_prefix(
        &self,
        prefix: IpPrefix,
        routes: &mut RouteTable,
        report: &mut impl FnMut(BgpEvent),
    ) {
        let Some(ours) = from_bgp_prefix(prefix) else {
            return;
        };
        let accepted = self.speaker.best(&prefix).is_some();
        for (tunnel, (_, peer)) in self.links.iter().enumerate() {
            match self.speaker.adj_rib_in(*peer, &prefix).filter(|_| accepted) {
                Some(attrs) => {
                    let as_path_len = attrs.as_path.as_ref().map_or(0, |p| p.path_len() as u32);
                    let route = Route {
                        prefix: ours,
                        tunnel,
                        origin: RouteOrigin::Bgp {
                            as_path_len,
                            med: attrs.med.unwrap_or(0),
                        },
                    };
                    if routes.insert(route) {
                        report(BgpEvent::RouteAdded {
                            tunnel,
                            prefix: ours,
                        });
                    }
                }
                None => {
                    if routes.remove(ours, tunnel, false) {
                        report(BgpEvent::RouteRemoved {
                            tunnel,
                            prefix: ours,
                        });
                    }
                }
            }
        }
    }

    /// Whether the BGP session over `tunnel` is Established.
    pub(crate) fn established(&self, tunnel: TunnelIndex) -> bool {
        self.links
            .get(tunnel)
            .and_then(|(_, peer)| self.speaker.session(*peer))
            .is_some_and(|s| s.is_established())
    }

    fn tunnel_of(&self, peer: PeerId) -> Option<TunnelIndex> {
        self.links.iter().position(|(_, p)| *p == peer)
    }

    pub(crate) fn handle_timeout(&mut self, now: Timestamp) {
        self.speaker.handle_timeout(now);
    }

    pub(crate) fn poll_timeout(&mut self, now: Timestamp) -> Option<Timestamp> {
        let stacks = self.links.iter_mut().filter_map(|(s, _)| s.poll_at(now));
        stacks.chain(self.speaker.poll_timeout()).min()
    }
}

/// Accepts every route, or with `accepted` prefixes only those each
/// covers (exact or more specific), as a prefix list `le 32/128` would.
fn import_policy(accepted: &[Prefix]) -> Policy {
    if accepted.is_empty() {
        return Policy::accept_all();
    }
    let entries = accepted
        .iter()
        .filter_map(|p| to_bgp_prefix(*p))
        .map(|p| {
            let longest = if matches!(p, IpPrefix::V4(_)) {
                32
            } else {
                128
            };
            PrefixListEntry::orlonger(p, longest)
        })
        .collect();
    Policy::prefix_list(PrefixList::new(entries), Actions::default())
}

fn stack_is_passive(speaker: &Speaker, peer: PeerId) -> bool {
    speaker
        .session(peer)
        .is_some_and(|s| s.config().mode == ConnectMode::Passive)
}

fn to_bgp_prefix(prefix: Prefix) -> Option<IpPrefix> {
    match prefix.addr() {
        IpAddr::V4(a) => Ipv4Prefix::new(a, prefix.len()).ok().map(IpPrefix::V4),
        IpAddr::V6(a) => Ipv6Prefix::new(a, prefix.len()).ok().map(IpPrefix::V6),
    }
}

fn from_bgp_prefix(prefix: IpPrefix) -> Option<Prefix> {
    match prefix {
        IpPrefix::V4(p) => Prefix::new(IpAddr::V4(p.addr()), p.len()).ok(),
        IpPrefix::V6(p) => Prefix::new(IpAddr::V6(p.addr()), p.len()).ok(),
    }
}
