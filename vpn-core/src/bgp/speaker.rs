//! A BGP speaker: the Loc-RIB, locally originated prefixes and one [`Session`] per
//! neighbour, with import/export policy between them.
//!
//! Same sans-IO shape as [`Session`], with a [`PeerId`] on every input and output:
//! `handle_*` for TCP events, bytes and timeouts; `poll_transmit` (bytes for a
//! neighbour's connection), `poll_action` (connect/close TCP), `poll_event` (session
//! and Loc-RIB changes), `poll_timeout`. Outbound UPDATEs are built lazily in
//! `poll_transmit`, so changes made between two polls are packed together.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use crate::entropy::{Entropy, SeededEntropy};
use crate::time::Timestamp;

use super::policy::{Decision, Policy};
use super::rib::{
    AttrId, AttrTable, Delta, Edit, IpPrefix, KeyedState, Path, Rib, Selected, SourceId,
    SourceInfo, DEFAULT_LOCAL_PREF, LOCAL,
};
use super::session::{
    Action, ConfigError, ConnectionId, ReceivedUpdate, Session, SessionConfig, SessionEvent,
};
use super::wire::{
    Afi, Community, Ipv4Nlri, Ipv6Nlri, Message, MpNextHop, MpNlri, MpReach, MpUnreach, Origin,
    PathAttributes, Safi, UpdateMessage, WireContext, HEADER_LEN, MAX_MESSAGE_LEN,
};

/// Attributes for a locally originated prefix whose Loc-RIB entry shows
/// `next_hop` (none: no next hop). `None` when the next hop's family is not
/// the prefix's. What [`Speaker::announce`] sends is rewritten per neighbour.
pub fn originated_attributes(prefix: IpPrefix, next_hop: Option<IpAddr>) -> Option<PathAttributes> {
    let mut attrs = PathAttributes::default();
    match (prefix, next_hop) {
        (_, None) => {}
        (IpPrefix::V4(_), Some(IpAddr::V4(v4))) => attrs.next_hop = Some(v4),
        (IpPrefix::V6(_), Some(IpAddr::V6(v6))) => {
            attrs.mp_reach = Some(MpReach {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
                next_hop: MpNextHop::Ipv6 {
                    global: v6,
                    link_local: None,
                },
                nlri: MpNlri::Ipv6(Default::default()),
            })
        }
        _ => return None,
    }
    Some(attrs)
}

/// The speaker itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerConfig {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// Largest equal-cost multipath set (1 = none).
    pub max_paths: usize,
    /// Emit [`RouteEvent`]s for Loc-RIB changes.
    pub route_events: bool,
}

impl SpeakerConfig {
    pub fn new(asn: u32, router_id: Ipv4Addr) -> Self {
        Self {
            asn,
            router_id,
            max_paths: 2,
            route_events: true,
        }
    }
}

/// Inbound prefix limit (RFC 4486 Cease subcode 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPrefixes {
    pub limit: u32,
    /// Come back up by itself after this long; `None`: stay down until `start`.
    pub restart: Option<Duration>,
}

/// One neighbour: session settings plus routing policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborConfig {
    pub session: SessionConfig,
    /// `None` on an eBGP session: accept nothing (RFC 8212).
    pub import: Option<Policy>,
    /// `None` on an eBGP session: announce nothing (RFC 8212).
    pub export: Option<Policy>,
    pub max_prefixes: Option<MaxPrefixes>,
    /// Announce at most this many prefixes (AWS: a VGW takes 100 from a customer
    /// gateway); the first ones in prefix order win.
    pub max_announced: Option<usize>,
}

impl NeighborConfig {
    pub fn new(session: SessionConfig) -> Self {
        Self {
            session,
            import: None,
            export: None,
            max_prefixes: None,
            max_announced: None,
        }
    }
}

/// Handle of a neighbour in a [`Speaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u16);

/// Where a Loc-RIB route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteSource {
    Local,
    Peer(PeerId),
}

/// A selected route, for programming forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestRoute {
    pub next_hop: Option<IpAddr>,
    pub source: RouteSource,
    pub attrs: Arc<PathAttributes>,
    /// Size of the equal-cost multipath set this route heads.
    pub multipath: u8,
}

/// A Loc-RIB change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteEvent {
    BestAdded { prefix: IpPrefix, route: BestRoute },
    BestChanged { prefix: IpPrefix, route: BestRoute },
    BestWithdrawn { prefix: IpPrefix },
}

/// Everything a speaker reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpeakerEvent {
    Session {
        peer: PeerId,
        event: SessionEvent,
    },
    Route(RouteEvent),
    /// More prefixes qualify for a neighbour than its `max_announced`; only the first
    /// `cap` (in prefix order) are announced.
    OutboundCapReached {
        peer: PeerId,
        cap: usize,
        wanted: usize,
    },
}

/// Adj-RIB-Out of one neighbour.
#[derive(Default)]
struct AdjOut {
    /// What policy wants announced (holds a reference per entry).
    desired: BTreeMap<IpPrefix, AttrId>,
    /// What the neighbour has been told (holds a reference per entry).
    sent: HashMap<IpPrefix, AttrId>,
    dirty: BTreeSet<IpPrefix>,
    /// End-of-RIB still to follow the initial table.
    eor_pending: bool,
    cap_reported: bool,
}

struct Peer {
    session: Session,
    import: Option<Policy>,
    export: Option<Policy>,
    max_prefixes: Option<MaxPrefixes>,
    max_announced: Option<usize>,
    out: AdjOut,
}

impl Peer {
    fn ebgp(&self) -> bool {
        self.session.config().is_ebgp()
    }
}

/// A BGP speaker. See the module documentation for the call pattern.
pub struct Speaker {
    config: SpeakerConfig,
    rib: Rib,
    peers: Vec<Peer>,
    events: VecDeque<SpeakerEvent>,
    entropy: Box<dyn Entropy + Send>,
}

impl std::fmt::Debug for Speaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speaker")
            .field("asn", &self.config.asn)
            .field("router_id", &self.config.router_id)
            .field("peers", &self.peers.len())
            .field("loc_rib", &self.rib.loc_rib_len())
            .finish_non_exhaustive()
    }
}

const MAX_BODY: usize = MAX_MESSAGE_LEN - HEADER_LEN - 4;

impl Speaker {
    pub fn new(config: SpeakerConfig, mut entropy: Box<dyn Entropy + Send>) -> Self {
        let hasher = KeyedState::new(entropy.next_u64(), entropy.next_u64());
        Self {
            rib: Rib::new(hasher, config.max_paths),
            config,
            peers: Vec::new(),
            events: VecDeque::new(),
            entropy,
        }
    }

    pub fn config(&self) -> &SpeakerConfig {
        &self.config
    }

    /// Adds a neighbour (Idle until [`Speaker::start`]).
    pub fn add_neighbor(&mut self, config: NeighborConfig) -> Result<PeerId, ConfigError> {
        if config.session.local_asn != self.config.asn
            || config.session.router_id != self.config.router_id
        {
            return Err(ConfigError::SpeakerMismatch);
        }
        let id = u16::try_from(self.peers.len())
            .ok()
            .filter(|&i| i < LOCAL)
            .ok_or(ConfigError::TooManyNeighbors)?;
        let seed = self.entropy.next_u64();
        let ebgp = config.session.is_ebgp();
        let peer_addr = config.session.peer_addr;
        let session = Session::new(config.session, Box::new(SeededEntropy::new(seed)))?;
        self.rib.set_source(
            id,
            SourceInfo {
                ebgp,
                router_id: Ipv4Addr::UNSPECIFIED,
                peer_addr,
            },
        );
        self.peers.push(Peer {
            session,
            import: config.import,
            export: config.export,
            max_prefixes: config.max_prefixes,
            max_announced: config.max_announced,
            out: AdjOut::default(),
        });
        Ok(PeerId(id))
    }

    // ---- getters ----

    pub fn session(&self, peer: PeerId) -> Option<&Session> {
        self.peers.get(usize::from(peer.0)).map(|p| &p.session)
    }

    pub fn peers(&self) -> impl Iterator<Item = PeerId> {
        (0..self.peers.len() as u16).map(PeerId)
    }

    /// The Loc-RIB route of a prefix.
    pub fn best(&self, prefix: &IpPrefix) -> Option<BestRoute> {
        let sel = self.rib.best(prefix)?;
        self.best_route(sel)
    }

    /// The equal-cost multipath set of a prefix, best first.
    pub fn multipath(&self, prefix: &IpPrefix) -> Vec<BestRoute> {
        let n = self.rib.multipath(prefix).len();
        self.rib
            .multipath(prefix)
            .into_iter()
            .filter_map(|p| {
                self.best_route(Selected {
                    source: p.source,
                    attr: p.accepted()?,
                    multipath: n as u8,
                })
            })
            .collect()
    }

    /// The whole Loc-RIB in prefix order (IPv4 first): a snapshot for
    /// display and for embedders that list routes rather than follow events.
    pub fn loc_rib(&self) -> Vec<(IpPrefix, BestRoute)> {
        let mut routes = Vec::with_capacity(self.rib.loc_rib_len());
        self.rib.for_each_best(|prefix, sel| {
            if let Some(route) = self.best_route(sel) {
                routes.push((prefix, route));
            }
        });
        routes.sort_unstable_by_key(|(prefix, _)| *prefix);
        routes
    }

    /// Prefixes in the Loc-RIB.
    pub fn loc_rib_len(&self) -> usize {
        self.rib.loc_rib_len()
    }

    /// Prefixes received from a neighbour (accepted or not).
    pub fn adj_rib_in_len(&self, peer: PeerId) -> usize {
        self.rib.received_count(peer.0, Afi::IPV4) + self.rib.received_count(peer.0, Afi::IPV6)
    }

    /// Attributes of a prefix as received from a neighbour, before policy.
    pub fn adj_rib_in(&self, peer: PeerId, prefix: &IpPrefix) -> Option<Arc<PathAttributes>> {
        let path = self
            .rib
            .paths_of(prefix)?
            .iter()
            .find(|p| p.source == peer.0)?;
        self.rib.attrs.get(path.received()).cloned()
    }

    /// True if the neighbour's path for `prefix` is held stale (graceful restart).
    pub fn is_stale(&self, peer: PeerId, prefix: &IpPrefix) -> bool {
        self.rib
            .paths_of(prefix)
            .and_then(|ps| ps.iter().find(|p| p.source == peer.0))
            .is_some_and(Path::is_stale)
    }

    /// What the neighbour has been sent, in prefix order.
    pub fn adj_rib_out(&self, peer: PeerId) -> Vec<(IpPrefix, Arc<PathAttributes>)> {
        let Some(p) = self.peers.get(usize::from(peer.0)) else {
            return Vec::new();
        };
        let mut v: Vec<_> = p
            .out
            .sent
            .iter()
            .filter_map(|(k, a)| Some((*k, self.rib.attrs.get(*a)?.clone())))
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// Distinct attribute sets in memory.
    pub fn attribute_sets(&self) -> usize {
        self.rib.attrs.len()
    }

    /// Pre-sizes the IPv4 Loc-RIB for a bulk load.
    pub fn reserve_v4(&mut self, n: usize) {
        self.rib.reserve_v4(n);
    }

    fn best_route(&self, sel: Selected) -> Option<BestRoute> {
        let attrs = self.rib.attrs.get(sel.attr)?.clone();
        Some(BestRoute {
            next_hop: self.rib.attrs.summary(sel.attr).next_hop,
            source: if sel.source == LOCAL {
                RouteSource::Local
            } else {
                RouteSource::Peer(PeerId(sel.source))
            },
            attrs,
            multipath: sel.multipath,
        })
    }

    // ---- commands ----

    pub fn start(&mut self, now: Timestamp, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(usize::from(peer.0)) {
            p.session.start(now);
        }
        self.process(now, peer);
    }

    /// Administrative shutdown with an RFC 9003 message.
    pub fn stop(&mut self, now: Timestamp, peer: PeerId, reason: &str) {
        if let Some(p) = self.peers.get_mut(usize::from(peer.0)) {
            p.session.stop(now, reason);
        }
        self.process(now, peer);
    }

    /// Originates a prefix. Missing ORIGIN becomes IGP and a missing AS_PATH empty; the
    /// next hop is rewritten per neighbour on export.
    pub fn announce(&mut self, prefix: IpPrefix, mut attrs: PathAttributes) {
        attrs.origin.get_or_insert(Origin::Igp);
        attrs.as_path.get_or_insert_with(Default::default);
        attrs.mp_unreach = None;
        if let Some(m) = attrs.mp_reach.as_mut() {
            m.nlri = empty_nlri(prefix.afi());
        }
        let id = self.rib.attrs.intern(&attrs);
        self.rib.attrs.retain(id);
        let delta = self.rib.upsert(prefix, LOCAL, id, Some(id));
        self.apply_deltas(delta.into_iter().collect());
    }

    /// Stops originating a prefix.
    pub fn withdraw(&mut self, prefix: IpPrefix) {
        let delta = self.rib.remove(prefix, LOCAL);
        self.apply_deltas(delta.into_iter().collect());
    }

    /// Replaces a neighbour's import policy and re-evaluates its Adj-RIB-In.
    pub fn set_import_policy(&mut self, peer: PeerId, policy: Option<Policy>) {
        let Some(p) = self.peers.get_mut(usize::from(peer.0)) else {
            return;
        };
        p.import = policy;
        let ebgp = p.ebgp();
        let import = p.import.clone();
        let own = self.config.asn;
        let deltas = self.rib.edit_source(peer.0, None, |prefix, path, attrs| {
            let Some(received) = attrs.get(path.received()).cloned() else {
                return Edit::Keep;
            };
            let accepted = import_one(attrs, import.as_ref(), ebgp, own, &prefix, &received);
            Edit::Set {
                attr: accepted,
                flags: path.flags,
            }
        });
        self.apply_deltas(deltas);
    }

    /// Replaces a neighbour's export policy and recomputes its Adj-RIB-Out.
    pub fn set_export_policy(&mut self, peer: PeerId, policy: Option<Policy>) {
        let Some(p) = self.peers.get_mut(usize::from(peer.0)) else {
            return;
        };
        p.export = policy;
        self.full_export(usize::from(peer.0));
    }

    /// Asks a neighbour to resend its routes of one family (RFC 2918), e.g. after
    /// enabling a policy that needs attributes the Adj-RIB-In no longer has.
    pub fn request_route_refresh(
        &mut self,
        peer: PeerId,
        afi: Afi,
    ) -> Result<(), super::session::SendError> {
        let p = self
            .peers
            .get_mut(usize::from(peer.0))
            .ok_or(super::session::SendError::NotEstablished)?;
        p.session.send_route_refresh(afi, Safi::UNICAST)
    }

    // ---- inputs ----

    pub fn handle_connected(&mut self, now: Timestamp, peer: PeerId, id: ConnectionId) {
        if let Some(p) = self.peers.get_mut(usize::from(peer.0)) {
            p.session.handle_connected(now, id);
            self.process(now, peer);
        }
    }

    pub fn handle_connection_closed(&mut self, now: Timestamp, peer: PeerId, id: ConnectionId) {
        if let Some(p) = self.peers.get_mut(usize::from(peer.0)) {
            p.session.handle_connection_closed(now, id);
            self.process(now, peer);
        }
    }

    pub fn handle_bytes(&mut self, now: Timestamp, peer: PeerId, id: ConnectionId, data: &[u8]) {
        if let Some(p) = self.peers.get_mut(usize::from(peer.0)) {
            p.session.handle_bytes(now, id, data);
            self.process(now, peer);
        }
    }

    pub fn handle_timeout(&mut self, now: Timestamp) {
        for i in 0..self.peers.len() {
            self.peers[i].session.handle_timeout(now);
            self.process(now, PeerId(i as u16));
        }
    }

    // ---- outputs ----

    /// Appends bytes for one neighbour's connection to `buf`.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<(PeerId, ConnectionId)> {
        for i in 0..self.peers.len() {
            self.flush(i);
        }
        self.peers
            .iter_mut()
            .enumerate()
            .find_map(|(i, p)| p.session.poll_transmit(buf).map(|c| (PeerId(i as u16), c)))
    }

    pub fn poll_action(&mut self) -> Option<(PeerId, Action)> {
        self.peers
            .iter_mut()
            .enumerate()
            .find_map(|(i, p)| p.session.poll_action().map(|a| (PeerId(i as u16), a)))
    }

    pub fn poll_event(&mut self) -> Option<SpeakerEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.peers
            .iter()
            .filter_map(|p| p.session.poll_timeout())
            .min()
    }

    // ---- internals ----

    /// Drains what the session produced.
    fn process(&mut self, now: Timestamp, peer: PeerId) {
        let i = usize::from(peer.0);
        loop {
            let Some(p) = self.peers.get_mut(i) else {
                return;
            };
            if let Some(u) = p.session.poll_update() {
                self.receive(now, i, u);
                continue;
            }
            let Some(ev) = p.session.poll_event() else {
                break;
            };
            self.session_event(i, &ev);
            self.events
                .push_back(SpeakerEvent::Session { peer, event: ev });
        }
    }

    fn session_event(&mut self, i: usize, ev: &SessionEvent) {
        let source = i as SourceId;
        match ev {
            SessionEvent::Established { peer_id, .. } => {
                let p = &self.peers[i];
                self.rib.set_source(
                    source,
                    SourceInfo {
                        ebgp: p.ebgp(),
                        router_id: *peer_id,
                        peer_addr: p.session.config().peer_addr,
                    },
                );
                self.peers[i].out.eor_pending = true;
                self.full_export(i);
            }
            SessionEvent::Down {
                graceful_restart, ..
            } => {
                self.clear_out(i);
                let deltas = if *graceful_restart {
                    self.rib.edit_source(source, None, |_, path, attrs| {
                        if let Some(a) = path.accepted() {
                            attrs.retain(a);
                        }
                        Edit::Set {
                            attr: path.accepted(),
                            flags: path.flags | Path::STALE,
                        }
                    })
                } else {
                    self.rib.remove_source(source, None)
                };
                self.apply_deltas(deltas);
            }
            SessionEvent::EndOfRib { afi, .. } => self.flush_stale(source, Some(*afi)),
            SessionEvent::StaleRoutesExpired => self.flush_stale(source, None),
            SessionEvent::RouteRefreshRequested { .. } => {
                let out = &mut self.peers[i].out;
                for (_, a) in out.sent.drain() {
                    self.rib.attrs.release(a);
                }
                out.dirty = out.desired.keys().copied().collect();
            }
            SessionEvent::StateChanged { .. } => {}
        }
    }

    fn flush_stale(&mut self, source: SourceId, afi: Option<Afi>) {
        let deltas = self.rib.edit_source(source, afi, |_, path, _| {
            if path.is_stale() {
                Edit::Remove
            } else {
                Edit::Keep
            }
        });
        self.apply_deltas(deltas);
    }

    /// Applies one received UPDATE to the neighbour's Adj-RIB-In and the Loc-RIB.
    fn receive(&mut self, now: Timestamp, i: usize, ru: ReceivedUpdate) {
        let source = i as SourceId;
        let Some(neg) = self.peers[i].session.negotiated().cloned() else {
            return;
        };
        let up = ru.update;
        let mut deltas = Vec::new();
        let family_ok = |afi: Afi, safi: Safi| {
            safi == Safi::UNICAST
                && ((afi == Afi::IPV4 && neg.ipv4_unicast)
                    || (afi == Afi::IPV6 && neg.ipv6_unicast))
        };
        // Withdrawals.
        for p in up.withdrawn.iter() {
            deltas.extend(self.rib.remove(IpPrefix::V4(p), source));
        }
        if let Some(mu) = &up.attributes.mp_unreach {
            if family_ok(mu.afi, mu.safi) {
                for p in mp_prefixes(&mu.withdrawn) {
                    deltas.extend(self.rib.remove(p, source));
                }
            }
        }
        let mp_reach = up
            .attributes
            .mp_reach
            .as_ref()
            .filter(|m| family_ok(m.afi, m.safi));
        if ru.treat_as_withdraw {
            // RFC 7606 §2: withdraw everything this UPDATE announces.
            for p in up.nlri.iter() {
                deltas.extend(self.rib.remove(IpPrefix::V4(p), source));
            }
            if let Some(m) = mp_reach {
                for p in mp_prefixes(&m.nlri) {
                    deltas.extend(self.rib.remove(p, source));
                }
            }
            self.apply_deltas(deltas);
            return;
        }
        let ebgp = self.peers[i].ebgp();
        let own = self.config.asn;
        let mut base = up.attributes.clone();
        base.mp_unreach = None;
        base.mp_reach = None;
        if ebgp {
            // LOCAL_PREF is not for us from another AS (RFC 4271 §5.1.5).
            base.local_pref = None;
        }
        if !up.nlri.is_empty() && neg.ipv4_unicast {
            let attrs = base.clone();
            self.import_batch(
                source,
                ebgp,
                own,
                attrs,
                up.nlri.iter().map(IpPrefix::V4),
                &mut deltas,
            );
        }
        if let Some(m) = mp_reach {
            let mut attrs = base;
            attrs.next_hop = None;
            attrs.mp_reach = Some(MpReach {
                afi: m.afi,
                safi: m.safi,
                next_hop: m.next_hop.clone(),
                nlri: empty_nlri(m.afi),
            });
            let prefixes: Vec<IpPrefix> = mp_prefixes(&m.nlri).collect();
            self.import_batch(source, ebgp, own, attrs, prefixes.into_iter(), &mut deltas);
        }
        self.apply_deltas(deltas);
        // Inbound prefix limit.
        let p = &self.peers[i];
        if let Some(mp) = p.max_prefixes {
            let count = self.rib.received_count(source, Afi::IPV4)
                + self.rib.received_count(source, Afi::IPV6);
            if count > mp.limit as usize {
                let afi = if self.rib.received_count(source, Afi::IPV6) > 0
                    && mp_reach.is_some_and(|m| m.afi == Afi::IPV6)
                {
                    Afi::IPV6
                } else {
                    Afi::IPV4
                };
                self.peers[i].session.shutdown_max_prefixes(
                    now,
                    afi,
                    Safi::UNICAST,
                    mp.limit,
                    mp.restart,
                );
            }
        }
    }

    fn import_batch(
        &mut self,
        source: SourceId,
        ebgp: bool,
        own: u32,
        attrs: PathAttributes,
        prefixes: impl Iterator<Item = IpPrefix>,
        deltas: &mut Vec<Delta>,
    ) {
        let looped = attrs
            .as_path
            .as_ref()
            .is_some_and(|p| p.segments.iter().any(|s| s.asns.contains(&own)));
        let received = self.rib.attrs.intern(&attrs);
        // Accepted attributes per decision: every prefix hitting the same term shares
        // one rewritten set.
        let mut cache: Vec<(Decision, Option<AttrId>)> = Vec::new();
        let import = self.peers[usize::from(source)].import.as_ref();
        for prefix in prefixes {
            let decision = match (import, looped) {
                (_, true) => Decision::Reject,
                (None, _) if ebgp => Decision::Reject,
                (None, _) => Decision::Accept(None),
                (Some(pol), _) => pol.evaluate(&prefix, &attrs),
            };
            let accepted = match cache.iter().find(|(d, _)| *d == decision) {
                Some((_, a)) => *a,
                None => {
                    let a = accepted_attrs(
                        &mut self.rib.attrs,
                        import,
                        decision,
                        own,
                        received,
                        &attrs,
                    );
                    cache.push((decision, a));
                    a
                }
            };
            if let Some(a) = accepted {
                self.rib.attrs.retain(a);
            }
            self.rib.attrs.retain(received);
            deltas.extend(self.rib.upsert(prefix, source, received, accepted));
        }
        for (_, a) in cache {
            if let Some(a) = a {
                self.rib.attrs.release(a);
            }
        }
        self.rib.attrs.release(received);
    }

    /// Loc-RIB changes: route events, then export to every established neighbour.
    fn apply_deltas(&mut self, deltas: Vec<Delta>) {
        if deltas.is_empty() {
            return;
        }
        if self.config.route_events {
            for d in &deltas {
                let ev = match (d.before, d.after) {
                    (_, None) => RouteEvent::BestWithdrawn { prefix: d.prefix },
                    (None, Some(s)) => match self.best_route(s) {
                        Some(route) => RouteEvent::BestAdded {
                            prefix: d.prefix,
                            route,
                        },
                        None => continue,
                    },
                    (Some(_), Some(s)) => match self.best_route(s) {
                        Some(route) => RouteEvent::BestChanged {
                            prefix: d.prefix,
                            route,
                        },
                        None => continue,
                    },
                };
                self.events.push_back(SpeakerEvent::Route(ev));
            }
        }
        for q in 0..self.peers.len() {
            if !self.peers[q].session.is_established() {
                continue;
            }
            let items: Vec<(IpPrefix, Option<Selected>)> =
                deltas.iter().map(|d| (d.prefix, d.after)).collect();
            self.export_batch(q, &items);
        }
    }

    /// Recomputes a neighbour's whole Adj-RIB-Out from the Loc-RIB.
    fn full_export(&mut self, q: usize) {
        if !self.peers[q].session.is_established() {
            return;
        }
        let mut items: Vec<(IpPrefix, Option<Selected>)> = Vec::new();
        self.rib.for_each_best(|p, s| items.push((p, Some(s))));
        let old: Vec<IpPrefix> = self.peers[q].out.desired.keys().copied().collect();
        let keep: BTreeSet<IpPrefix> = items.iter().map(|(p, _)| *p).collect();
        for p in old {
            if !keep.contains(&p) {
                items.push((p, None));
            }
        }
        self.export_batch(q, &items);
    }

    fn export_batch(&mut self, q: usize, items: &[(IpPrefix, Option<Selected>)]) {
        let mut cache: HashMap<(AttrId, Decision, SourceId), Option<AttrId>> = HashMap::new();
        for &(prefix, sel) in items {
            let new = sel.and_then(|sel| {
                let ok = self.exportable(q, prefix, sel)?;
                let key = (sel.attr, ok, sel.source);
                if let Some(a) = cache.get(&key) {
                    if let Some(a) = a {
                        self.rib.attrs.retain(*a);
                    }
                    return *a;
                }
                let a = self.export_attrs(q, prefix.afi(), sel, ok);
                if let Some(a) = a {
                    self.rib.attrs.retain(a);
                }
                cache.insert(key, a);
                a
            });
            let out = &mut self.peers[q].out;
            let old = match new {
                Some(a) => out.desired.insert(prefix, a),
                None => out.desired.remove(&prefix),
            };
            if old != new {
                out.dirty.insert(prefix);
            }
            if let Some(o) = old {
                self.rib.attrs.release(o);
            }
        }
        for a in cache.into_values().flatten() {
            self.rib.attrs.release(a);
        }
    }

    /// Whether a Loc-RIB route may go to neighbour `q`, and the export decision.
    fn exportable(&self, q: usize, prefix: IpPrefix, sel: Selected) -> Option<Decision> {
        let peer = &self.peers[q];
        let neg = peer.session.negotiated()?;
        match prefix.afi() {
            Afi::IPV4 if !neg.ipv4_unicast => return None,
            Afi::IPV6 if !neg.ipv6_unicast => return None,
            _ => {}
        }
        if sel.source != LOCAL {
            if usize::from(sel.source) == q {
                return None;
            }
            let src = self.peers.get(usize::from(sel.source))?;
            // iBGP split horizon.
            if !src.ebgp() && !peer.ebgp() {
                return None;
            }
            // Never back into the AS the route came from.
            if peer.ebgp() && src.session.config().peer_asn == peer.session.config().peer_asn {
                return None;
            }
        }
        let attrs = self.rib.attrs.get(sel.attr)?;
        if let Some(cs) = &attrs.communities {
            if cs.contains(&Community::NO_ADVERTISE)
                || (peer.ebgp() && cs.contains(&Community::NO_EXPORT))
            {
                return None;
            }
        }
        match (&peer.export, peer.ebgp()) {
            (None, true) => None, // RFC 8212
            (None, false) => Some(Decision::Accept(None)),
            (Some(pol), _) => match pol.evaluate(&prefix, attrs) {
                Decision::Reject => None,
                d => Some(d),
            },
        }
    }

    /// The attributes a route is announced with to neighbour `q`; the caller owns the
    /// returned reference.
    fn export_attrs(&mut self, q: usize, afi: Afi, sel: Selected, d: Decision) -> Option<AttrId> {
        let peer = &self.peers[q];
        let mut a = PathAttributes::clone(self.rib.attrs.get(sel.attr)?);
        let cfg = peer.session.config();
        let ebgp = peer.ebgp();
        let self_v4 = match cfg.local_addr {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => self.config.router_id,
        };
        let self_v6 = match cfg.local_addr {
            IpAddr::V6(v6) => v6,
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        };
        let next_hop_self = ebgp || sel.source == LOCAL;
        if ebgp {
            super::policy::prepend(&mut a, self.config.asn, 1);
            a.local_pref = None;
            if sel.source != LOCAL {
                // MED does not cross into a third AS.
                a.med = None;
            }
        } else {
            a.local_pref.get_or_insert(DEFAULT_LOCAL_PREF);
        }
        match afi {
            Afi::IPV6 => {
                a.next_hop = None;
                let nh = match a.mp_reach.as_ref().map(|m| &m.next_hop) {
                    Some(nh) if !next_hop_self => nh.clone(),
                    _ => MpNextHop::Ipv6 {
                        global: self_v6,
                        link_local: None,
                    },
                };
                a.mp_reach = Some(MpReach {
                    afi: Afi::IPV6,
                    safi: Safi::UNICAST,
                    next_hop: nh,
                    nlri: empty_nlri(Afi::IPV6),
                });
            }
            _ => {
                a.mp_reach = None;
                if next_hop_self || a.next_hop.is_none() {
                    a.next_hop = Some(self_v4);
                }
            }
        }
        if let (Some(pol), Decision::Accept(_)) = (&peer.export, d) {
            if let Some(actions) = pol.actions(d) {
                actions.apply(&mut a, self.config.asn);
            }
        }
        Some(self.rib.attrs.intern(&a))
    }

    fn clear_out(&mut self, q: usize) {
        let out = std::mem::take(&mut self.peers[q].out);
        for a in out.desired.into_values().chain(out.sent.into_values()) {
            self.rib.attrs.release(a);
        }
    }

    /// Turns a neighbour's Adj-RIB-Out changes into packed UPDATEs.
    fn flush(&mut self, q: usize) {
        let peer = &mut self.peers[q];
        if !peer.session.is_established() {
            return;
        }
        if peer.out.dirty.is_empty() && !peer.out.eor_pending {
            return;
        }
        let out = &mut peer.out;
        let mut withdraw: Vec<IpPrefix> = Vec::new();
        let mut announce: BTreeMap<AttrId, Vec<IpPrefix>> = BTreeMap::new();
        match peer.max_announced {
            // Over the cap now, or at the last flush (a withdrawal may have let the
            // next prefix in line move up): recompute the first `cap`.
            Some(cap) if out.desired.len() > cap || out.cap_reported => {
                let wanted = out.desired.len();
                if wanted > cap && !out.cap_reported {
                    out.cap_reported = true;
                    self.events.push_back(SpeakerEvent::OutboundCapReached {
                        peer: PeerId(q as u16),
                        cap,
                        wanted,
                    });
                } else if wanted <= cap {
                    out.cap_reported = false;
                }
                let target: BTreeMap<IpPrefix, AttrId> = out
                    .desired
                    .iter()
                    .take(cap)
                    .map(|(k, v)| (*k, *v))
                    .collect();
                for k in out.sent.keys() {
                    if !target.contains_key(k) {
                        withdraw.push(*k);
                    }
                }
                for (k, v) in &target {
                    if out.sent.get(k) != Some(v) {
                        announce.entry(*v).or_default().push(*k);
                    }
                }
                withdraw.sort();
            }
            _ => {
                out.cap_reported = false;
                for k in &out.dirty {
                    match (out.desired.get(k), out.sent.get(k)) {
                        (None, Some(_)) => withdraw.push(*k),
                        (Some(d), s) if s != Some(d) => announce.entry(*d).or_default().push(*k),
                        _ => {}
                    }
                }
            }
        }
        out.dirty.clear();
        let eor = std::mem::take(&mut out.eor_pending);
        let neg = peer.session.negotiated().cloned();
        let ctx = neg.as_ref().map(|n| n.wire_context()).unwrap_or_default();
        // Attribute sets too large for a 4096-byte UPDATE with one prefix cannot be
        // announced: such prefixes are withdrawn instead (if the peer had them).
        announce.retain(|id, prefixes| {
            if fits_one_prefix(&self.rib.attrs, *id, &ctx) {
                return true;
            }
            withdraw.extend(prefixes.iter().filter(|k| out.sent.contains_key(*k)));
            false
        });
        withdraw.sort();
        withdraw.dedup();
        // Record what the neighbour now has.
        for k in &withdraw {
            if let Some(a) = out.sent.remove(k) {
                self.rib.attrs.release(a);
            }
        }
        for (a, ks) in &announce {
            for k in ks {
                self.rib.attrs.retain(*a);
                if let Some(old) = out.sent.insert(*k, *a) {
                    self.rib.attrs.release(old);
                }
            }
        }
        let mut msgs = build_updates(&self.rib.attrs, &withdraw, &announce, &ctx);
        if eor {
            if let Some(n) = &neg {
                for afi in n.families() {
                    msgs.push(end_of_rib_marker(afi));
                }
            }
        }
        let session = &mut self.peers[q].session;
        for m in msgs {
            // Messages are sized to fit; a failure would mean a bug, not bad input.
            let _ = session.send_message(&Message::Update(m));
        }
    }
}

/// True if an UPDATE with these attributes and one prefix fits 4096 bytes.
fn fits_one_prefix(table: &AttrTable, id: AttrId, ctx: &WireContext) -> bool {
    let Some(a) = table.get(id) else {
        return false;
    };
    let mut a = PathAttributes::clone(a);
    if !ctx.four_octet_as {
        a.add_as4_for_two_octet_peer();
    }
    // Largest prefix (17 bytes) plus a possible extended-length byte.
    a.encoded_len(ctx) + 18 <= MAX_BODY
}

/// Accepted attributes for one import decision (owned reference, or `None`).
fn accepted_attrs(
    table: &mut AttrTable,
    import: Option<&Policy>,
    decision: Decision,
    own: u32,
    received: AttrId,
    attrs: &PathAttributes,
) -> Option<AttrId> {
    match decision {
        Decision::Reject => None,
        d => match import.and_then(|p| p.actions(d)).filter(|a| !a.is_empty()) {
            None => {
                table.retain(received);
                Some(received)
            }
            Some(actions) => {
                let mut a = attrs.clone();
                actions.apply(&mut a, own);
                Some(table.intern(&a))
            }
        },
    }
}

/// Import policy for one path (used when a policy changes).
fn import_one(
    table: &mut AttrTable,
    import: Option<&Policy>,
    ebgp: bool,
    own: u32,
    prefix: &IpPrefix,
    attrs: &PathAttributes,
) -> Option<AttrId> {
    let looped = attrs
        .as_path
        .as_ref()
        .is_some_and(|p| p.segments.iter().any(|s| s.asns.contains(&own)));
    let decision = match import {
        _ if looped => Decision::Reject,
        None if ebgp => Decision::Reject,
        None => Decision::Accept(None),
        Some(p) => p.evaluate(prefix, attrs),
    };
    match decision {
        Decision::Reject => None,
        d => {
            let mut a = attrs.clone();
            if let Some(actions) = import.and_then(|p| p.actions(d)) {
                actions.apply(&mut a, own);
            }
            Some(table.intern(&a))
        }
    }
}

fn empty_nlri(afi: Afi) -> MpNlri {
    if afi == Afi::IPV6 {
        MpNlri::Ipv6(Ipv6Nlri::default())
    } else {
        MpNlri::Ipv4(Ipv4Nlri::default())
    }
}

fn mp_prefixes(n: &MpNlri) -> Box<dyn Iterator<Item = IpPrefix> + '_> {
    match n {
        MpNlri::Ipv4(n) => Box::new(n.iter().map(IpPrefix::V4)),
        MpNlri::Ipv6(n) => Box::new(n.iter().map(IpPrefix::V6)),
        MpNlri::Other(_) => Box::new(std::iter::empty()),
    }
}

/// The End-of-RIB marker of a family (RFC 4724 §2).
pub fn end_of_rib_marker(afi: Afi) -> UpdateMessage {
    if afi == Afi::IPV4 {
        return UpdateMessage::default();
    }
    UpdateMessage {
        attributes: PathAttributes {
            mp_unreach: Some(MpUnreach {
                afi,
                safi: Safi::UNICAST,
                withdrawn: empty_nlri(afi),
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn wire_len(p: &IpPrefix) -> usize {
    1 + usize::from(p.len()).div_ceil(8)
}

/// Splits `prefixes` into runs whose NLRI encoding fits `budget` bytes.
fn chunks(prefixes: &[IpPrefix], budget: usize) -> Vec<&[IpPrefix]> {
    let mut out = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (i, p) in prefixes.iter().enumerate() {
        let l = wire_len(p);
        if used + l > budget && i > start {
            out.push(&prefixes[start..i]);
            start = i;
            used = 0;
        }
        used += l;
    }
    if start < prefixes.len() {
        out.push(&prefixes[start..]);
    }
    out
}

fn v4s(ps: &[IpPrefix]) -> Ipv4Nlri {
    ps.iter()
        .filter_map(|p| match p {
            IpPrefix::V4(p) => Some(*p),
            IpPrefix::V6(_) => None,
        })
        .collect()
}

fn v6s(ps: &[IpPrefix]) -> Ipv6Nlri {
    ps.iter()
        .filter_map(|p| match p {
            IpPrefix::V6(p) => Some(*p),
            IpPrefix::V4(_) => None,
        })
        .collect()
}

/// Update packing: withdrawals first (IPv4 in the withdrawn field, IPv6 in
/// MP_UNREACH_NLRI), then one run of UPDATEs per attribute set, each holding as many
/// prefixes as fit in 4096 bytes.
pub fn build_updates(
    attrs: &AttrTable,
    withdraw: &[IpPrefix],
    announce: &BTreeMap<AttrId, Vec<IpPrefix>>,
    ctx: &WireContext,
) -> Vec<UpdateMessage> {
    let mut msgs = Vec::new();
    let (w4, w6): (Vec<IpPrefix>, Vec<IpPrefix>) =
        withdraw.iter().partition(|p| p.afi() == Afi::IPV4);
    for c in chunks(&w4, MAX_BODY) {
        msgs.push(UpdateMessage {
            withdrawn: v4s(c),
            ..Default::default()
        });
    }
    // Attribute header (4 with extended length) + AFI/SAFI.
    for c in chunks(&w6, MAX_BODY - 4 - 3) {
        msgs.push(UpdateMessage {
            attributes: PathAttributes {
                mp_unreach: Some(MpUnreach {
                    afi: Afi::IPV6,
                    safi: Safi::UNICAST,
                    withdrawn: MpNlri::Ipv6(v6s(c)),
                }),
                ..Default::default()
            },
            ..Default::default()
        });
    }
    for (id, prefixes) in announce {
        let Some(a) = attrs.get(*id) else { continue };
        let mut a = PathAttributes::clone(a);
        if !ctx.four_octet_as {
            a.add_as4_for_two_octet_peer();
        }
        let (p4, p6): (Vec<IpPrefix>, Vec<IpPrefix>) =
            prefixes.iter().partition(|p| p.afi() == Afi::IPV4);
        if !p4.is_empty() {
            let mut a4 = a.clone();
            a4.mp_reach = None;
            let budget = MAX_BODY.saturating_sub(a4.encoded_len(ctx));
            for c in chunks(&p4, budget.max(1)) {
                msgs.push(UpdateMessage {
                    attributes: a4.clone(),
                    nlri: v4s(c),
                    ..Default::default()
                });
            }
        }
        if !p6.is_empty() {
            let base_len = a.encoded_len(ctx) + 1;
            let budget = MAX_BODY.saturating_sub(base_len);
            for c in chunks(&p6, budget.max(1)) {
                let mut a6 = a.clone();
                if let Some(m) = a6.mp_reach.as_mut() {
                    m.nlri = MpNlri::Ipv6(v6s(c));
                }
                msgs.push(UpdateMessage {
                    attributes: a6,
                    ..Default::default()
                });
            }
        }
    }
    msgs
}
