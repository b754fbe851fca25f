//! `vpn.BgpSpeaker`: the sans-IO BGP-4 speaker of vpn-core. The caller owns the
//! TCP connections and the clock; the binding converts arguments and turns
//! events into `vpn.BgpEvent` objects. Everything else is
//! `vpn_core::bgp::speaker::Speaker`.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, MutexGuard, PoisonError};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use vpn_core::bgp::policy::Policy;
use vpn_core::bgp::rib::IpPrefix;
use vpn_core::bgp::session::{
    Action, ConnectMode, ConnectionId, DownReason, SessionConfig, SessionEvent, State,
};
use vpn_core::bgp::speaker::{
    originated_attributes, NeighborConfig, PeerId, RouteEvent, RouteSource, Speaker, SpeakerConfig,
    SpeakerEvent,
};
use vpn_core::bgp::wire::family_name;
use vpn_core::entropy::OsEntropy;

use crate::{config_err, now, Input};

fn state_name(s: State) -> &'static str {
    match s {
        State::Idle => "idle",
        State::Connect => "connect",
        State::Active => "active",
        State::OpenSent => "open_sent",
        State::OpenConfirm => "open_confirm",
        State::Established => "established",
    }
}

/// Something a `BgpSpeaker` reports.
///
/// `kind` is one of "state_changed", "established", "down", "route_added",
/// "route_changed", "route_withdrawn", "end_of_rib", "stale_routes_expired",
/// "route_refresh_requested", "outbound_cap_reached". Fields that do not apply
/// are None.
#[pyclass(module = "vpn", name = "BgpEvent", frozen, get_all)]
#[derive(Clone, Debug, Default)]
pub struct BgpEvent {
    kind: &'static str,
    /// The neighbour (session events; route events: the route's source, None
    /// for our own routes and for withdrawals).
    peer: Option<u16>,
    /// Session events: the session's state ("idle" ... "established").
    state: Option<&'static str>,
    /// Route events: "10.1.0.0/16".
    prefix: Option<String>,
    /// Route events: the next hop, if any.
    next_hop: Option<String>,
    /// Down events: "admin_down", "hold_timer_expired",
    /// "notification_received", "notification_sent", "bad_peer_as",
    /// "connection_closed", "max_prefixes".
    reason: Option<&'static str>,
    /// NOTIFICATION code and subcode of a down event.
    error_code: Option<u8>,
    error_subcode: Option<u8>,
    /// Bad peer AS: the configured and the received AS.
    expected_asn: Option<u32>,
    received_asn: Option<u32>,
    /// A human-readable description.
    message: String,
}

#[pymethods]
impl BgpEvent {
    /// The event as a dict with every field (None where it does not apply).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("kind", self.kind)?;
        d.set_item("peer", self.peer)?;
        d.set_item("state", self.state)?;
        d.set_item("prefix", self.prefix.as_deref())?;
        d.set_item("next_hop", self.next_hop.as_deref())?;
        d.set_item("reason", self.reason)?;
        d.set_item("error_code", self.error_code)?;
        d.set_item("error_subcode", self.error_subcode)?;
        d.set_item("expected_asn", self.expected_asn)?;
        d.set_item("received_asn", self.received_asn)?;
        d.set_item("message", &self.message)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let mut parts = vec![format!("kind='{}'", self.kind)];
        if let Some(p) = self.peer {
            parts.push(format!("peer={p}"));
        }
        if let Some(s) = self.state {
            parts.push(format!("state='{s}'"));
        }
        if let Some(p) = &self.prefix {
            parts.push(format!("prefix='{p}'"));
        }
        if let Some(n) = &self.next_hop {
            parts.push(format!("next_hop='{n}'"));
        }
        if let Some(r) = self.reason {
            parts.push(format!("reason='{r}'"));
        }
        parts.push(format!("message={:?}", self.message));
        format!("BgpEvent({})", parts.join(", "))
    }
}

fn event(e: &SpeakerEvent, state: State) -> BgpEvent {
    let mut out = BgpEvent::default();
    match e {
        SpeakerEvent::Session { peer, event } => {
            out.peer = Some(peer.0);
            out.state = Some(state_name(state));
            match event {
                SessionEvent::StateChanged { from, to } => {
                    out.kind = "state_changed";
                    out.state = Some(state_name(*to));
                    out.message = format!("{} -> {}", state_name(*from), state_name(*to));
                }
                SessionEvent::Established { peer_id, hold_time } => {
                    out.kind = "established";
                    out.state = Some("established");
                    out.message = format!("established with {peer_id}, hold time {hold_time} s");
                }
                SessionEvent::Down {
                    reason,
                    graceful_restart,
                } => {
                    out.kind = "down";
                    out.reason = Some(match reason {
                        DownReason::AdminDown => "admin_down",
                        DownReason::HoldTimerExpired => "hold_timer_expired",
                        DownReason::NotificationReceived { code, subcode, .. } => {
                            out.error_code = Some(code.0);
                            out.error_subcode = Some(*subcode);
                            "notification_received"
                        }
                        DownReason::NotificationSent { code, subcode, .. } => {
                            out.error_code = Some(code.0);
                            out.error_subcode = Some(*subcode);
                            "notification_sent"
                        }
                        DownReason::BadPeerAs { expected, received } => {
                            out.expected_asn = Some(*expected);
                            out.received_asn = Some(*received);
                            "bad_peer_as"
                        }
                        DownReason::ConnectionClosed => "connection_closed",
                        DownReason::MaxPrefixesExceeded { .. } => "max_prefixes",
                    });
                    out.message = reason.to_string();
                    if *graceful_restart {
                        out.message
                            .push_str(" (graceful restart: routes kept as stale)");
                    }
                }
                SessionEvent::EndOfRib { afi, safi } => {
                    out.kind = "end_of_rib";
                    out.message = format!("End-of-RIB for {}", family_name(*afi, *safi));
                }
                SessionEvent::StaleRoutesExpired => {
                    out.kind = "stale_routes_expired";
                    out.message = "stale routes expired".to_owned();
                }
                SessionEvent::RouteRefreshRequested { afi, safi } => {
                    out.kind = "route_refresh_requested";
                    out.message =
                        format!("route refresh requested for {}", family_name(*afi, *safi));
                }
            }
        }
        SpeakerEvent::Route(r) => {
            let (kind, prefix, route) = match r {
                RouteEvent::BestAdded { prefix, route } => ("route_added", prefix, Some(route)),
                RouteEvent::BestChanged { prefix, route } => ("route_changed", prefix, Some(route)),
                RouteEvent::BestWithdrawn { prefix } => ("route_withdrawn", prefix, None),
            };
            out.kind = kind;
            out.prefix = Some(prefix.to_string());
            if let Some(route) = route {
                if let RouteSource::Peer(p) = route.source {
                    out.peer = Some(p.0);
                }
                out.next_hop = route.next_hop.map(|n| n.to_string());
            }
            out.message = match &out.next_hop {
                Some(nh) => format!("{prefix} via {nh}"),
                None => prefix.to_string(),
            };
        }
        SpeakerEvent::OutboundCapReached { peer, cap, wanted } => {
            out.kind = "outbound_cap_reached";
            out.peer = Some(peer.0);
            out.message = format!("{wanted} prefixes qualify, only the first {cap} are announced");
        }
    }
    out
}

fn conn(outbound: bool) -> ConnectionId {
    if outbound {
        ConnectionId::Outbound
    } else {
        ConnectionId::Inbound
    }
}

/// Parses "address/length", refusing host bits set past the length.
fn parse_prefix(s: &str) -> PyResult<IpPrefix> {
    let bad = || {
        PyValueError::new_err(format!(
            "invalid prefix {s:?} (address/length, no host bits)"
        ))
    };
    let t = s.trim();
    let p = IpPrefix::parse(t).ok_or_else(bad)?;
    let addr: IpAddr = t
        .split_once('/')
        .ok_or_else(bad)?
        .0
        .parse()
        .map_err(|_| bad())?;
    let network = match p {
        IpPrefix::V4(p) => IpAddr::V4(p.addr()),
        IpPrefix::V6(p) => IpAddr::V6(p.addr()),
    };
    if addr != network {
        return Err(bad());
    }
    Ok(p)
}

fn parse_addr<T: std::str::FromStr>(s: &str, what: &str) -> PyResult<T> {
    s.trim()
        .parse()
        .map_err(|_| PyValueError::new_err(format!("invalid {what} {s:?}")))
}

/// A BGP-4 speaker whose TCP connections and clock belong to the caller.
///
/// Feed inputs (`handle_connected`, `handle_closed`, `handle_bytes`,
/// `handle_timeout`) and commands (`start`, `announce`, ...), then drain the
/// outputs: `poll_transmit()` until None (write the bytes to that
/// neighbour's connection), `poll_action()` until None (connect / close),
/// `poll_event()` until None, and `poll_timeout()` for the next deadline.
/// Methods that move time take `now_ns` (defaults to `time.monotonic_ns()`).
#[pyclass(module = "vpn", name = "BgpSpeaker")]
pub struct BgpSpeaker {
    /// A mutex only to make the class `Sync` (the core's entropy source is
    /// `Send` only); `&mut self` methods reach it without locking.
    inner: Mutex<Speaker>,
    events: VecDeque<(SpeakerEvent, State)>,
}

impl BgpSpeaker {
    fn speaker(&mut self) -> &mut Speaker {
        self.inner.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    fn shared(&self) -> MutexGuard<'_, Speaker> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn peer(&self, peer: u32) -> PyResult<PeerId> {
        u16::try_from(peer)
            .ok()
            .map(PeerId)
            .filter(|p| self.shared().session(*p).is_some())
            .ok_or_else(|| PyValueError::new_err(format!("no BGP neighbour {peer}")))
    }

    /// Moves the core's events into our queue.
    fn drain(&mut self) {
        let speaker = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
        while let Some(e) = speaker.poll_event() {
            let state = match &e {
                SpeakerEvent::Session { peer, .. } => {
                    speaker.session(*peer).map_or(State::Idle, |s| s.state())
                }
                _ => State::Idle,
            };
            self.events.push_back((e, state));
        }
    }
}

#[pymethods]
impl BgpSpeaker {
    #[new]
    #[pyo3(signature = (asn, router_id))]
    fn new(py: Python<'_>, asn: u32, router_id: &str) -> PyResult<Self> {
        let id: Ipv4Addr = router_id
            .trim()
            .parse()
            .map_err(|_| config_err(py, "router_id must be a dotted-quad IPv4 address"))?;
        if asn == 0 || id.is_unspecified() {
            return Err(config_err(py, "AS 0 and router ID 0.0.0.0 are not valid"));
        }
        Ok(Self {
            inner: Mutex::new(Speaker::new(
                SpeakerConfig::new(asn, id),
                Box::new(OsEntropy),
            )),
            events: VecDeque::new(),
        })
    }

    /// Adds a neighbour (idle until `start`); returns its number (0, 1, ...).
    ///
    /// `policy` applies to both directions: "default" (RFC 8212: nothing
    /// accepted from or announced to an eBGP neighbour, everything for iBGP),
    /// "all" or "none". `local_address` (our address on the link, the next hop
    /// we announce over eBGP) defaults to the router ID.
    #[pyo3(signature = (peer_address, peer_asn, *, local_address=None, passive=false, hold_time=30, policy="default"))]
    #[allow(clippy::too_many_arguments)]
    fn add_neighbor(
        &mut self,
        py: Python<'_>,
        peer_address: &str,
        peer_asn: u32,
        local_address: Option<&str>,
        passive: bool,
        hold_time: u16,
        policy: &str,
    ) -> PyResult<u16> {
        let cfg = self.speaker().config().clone();
        let peer_addr: IpAddr = parse_addr(peer_address, "peer_address")?;
        let local_addr = match local_address {
            Some(s) => parse_addr(s, "local_address")?,
            None => IpAddr::V4(cfg.router_id),
        };
        let mut s = SessionConfig::new(cfg.asn, cfg.router_id, peer_asn, local_addr, peer_addr);
        if passive {
            s.mode = ConnectMode::Passive;
        }
        s.hold_time = hold_time;
        let policy = match policy {
            "default" => None,
            "all" => Some(Policy::accept_all()),
            "none" => Some(Policy::reject_all()),
            other => {
                return Err(config_err(
                    py,
                    &format!("policy must be 'default', 'all' or 'none', not {other:?}"),
                ))
            }
        };
        let mut n = NeighborConfig::new(s);
        n.import = policy.clone();
        n.export = policy;
        let peer = self
            .speaker()
            .add_neighbor(n)
            .map_err(|e| config_err(py, &e.to_string()))?;
        Ok(peer.0)
    }

    /// Starts a neighbour's session.
    #[pyo3(signature = (peer, *, now_ns=None))]
    fn start(&mut self, py: Python<'_>, peer: u32, now_ns: Option<u64>) -> PyResult<()> {
        let p = self.peer(peer)?;
        self.speaker().start(now(py, now_ns)?, p);
        self.drain();
        Ok(())
    }

    /// Stops a neighbour's session with an RFC 9003 shutdown message.
    #[pyo3(signature = (peer, reason="", *, now_ns=None))]
    fn stop(
        &mut self,
        py: Python<'_>,
        peer: u32,
        reason: &str,
        now_ns: Option<u64>,
    ) -> PyResult<()> {
        let p = self.peer(peer)?;
        self.speaker().stop(now(py, now_ns)?, p, reason);
        self.drain();
        Ok(())
    }

    /// Originates a prefix ("10.1.0.0/16") with ORIGIN IGP; `next_hop` (same
    /// family) is what the Loc-RIB shows.
    #[pyo3(signature = (prefix, next_hop=None))]
    fn announce(&mut self, prefix: &str, next_hop: Option<&str>) -> PyResult<()> {
        let p = parse_prefix(prefix)?;
        let nh: Option<IpAddr> = next_hop.map(|s| parse_addr(s, "next_hop")).transpose()?;
        let a = originated_attributes(p, nh).ok_or_else(|| {
            PyValueError::new_err("next_hop must be of the prefix's address family")
        })?;
        self.speaker().announce(p, a);
        self.drain();
        Ok(())
    }

    /// Stops originating a prefix.
    fn withdraw(&mut self, prefix: &str) -> PyResult<()> {
        let p = parse_prefix(prefix)?;
        self.speaker().withdraw(p);
        self.drain();
        Ok(())
    }

    /// A TCP connection is up: `outbound` if we opened it (after a "connect"
    /// action), False if the neighbour connected to us.
    #[pyo3(signature = (peer, outbound, *, now_ns=None))]
    fn handle_connected(
        &mut self,
        py: Python<'_>,
        peer: u32,
        outbound: bool,
        now_ns: Option<u64>,
    ) -> PyResult<()> {
        let p = self.peer(peer)?;
        self.speaker()
            .handle_connected(now(py, now_ns)?, p, conn(outbound));
        self.drain();
        Ok(())
    }

    /// A TCP connection closed, or an outbound attempt failed.
    #[pyo3(signature = (peer, outbound, *, now_ns=None))]
    fn handle_closed(
        &mut self,
        py: Python<'_>,
        peer: u32,
        outbound: bool,
        now_ns: Option<u64>,
    ) -> PyResult<()> {
        let p = self.peer(peer)?;
        self.speaker()
            .handle_connection_closed(now(py, now_ns)?, p, conn(outbound));
        self.drain();
        Ok(())
    }

    /// Bytes read from a connection (any split of the stream). Malformed input
    /// never raises: the speaker queues a NOTIFICATION, asks to close and
    /// reports a "down" event.
    #[pyo3(signature = (peer, outbound, data, *, now_ns=None))]
    fn handle_bytes(
        &mut self,
        py: Python<'_>,
        peer: u32,
        outbound: bool,
        data: &Bound<'_, PyAny>,
        now_ns: Option<u64>,
    ) -> PyResult<()> {
        let p = self.peer(peer)?;
        let now = now(py, now_ns)?;
        let input = Input::new(data)?;
        let (ptr, len) = input.raw();
        // SAFETY: `raw` is valid for `len` bytes while no Python code runs,
        // and none runs during the call.
        let data = unsafe { core::slice::from_raw_parts(ptr, len) };
        self.speaker().handle_bytes(now, p, conn(outbound), data);
        self.drain();
        Ok(())
    }

    /// Runs timers due now; spurious calls are harmless.
    #[pyo3(signature = (*, now_ns=None))]
    fn handle_timeout(&mut self, py: Python<'_>, now_ns: Option<u64>) -> PyResult<()> {
        self.speaker().handle_timeout(now(py, now_ns)?);
        self.drain();
        Ok(())
    }

    /// The next bytes to write as `(peer, outbound, data)`, or None.
    fn poll_transmit<'py>(&mut self, py: Python<'py>) -> Option<(u16, bool, Bound<'py, PyBytes>)> {
        let mut buf = Vec::new();
        let (peer, c) = self.speaker().poll_transmit(&mut buf)?;
        self.drain();
        Some((peer.0, c == ConnectionId::Outbound, PyBytes::new(py, &buf)))
    }

    /// The next connection request as `(peer, action, outbound)`, or None.
    /// `action` is "connect" (open a TCP connection, then call
    /// `handle_connected(peer, True)`) or "close" (close the connection named
    /// by `outbound` after writing what was polled for it).
    fn poll_action(&mut self) -> Option<(u16, &'static str, bool)> {
        let (peer, a) = self.speaker().poll_action()?;
        Some(match a {
            Action::Connect => (peer.0, "connect", true),
            Action::Close(c) => (peer.0, "close", c == ConnectionId::Outbound),
        })
    }

    /// The next event, or None.
    fn poll_event(&mut self) -> Option<BgpEvent> {
        let (e, state) = self.events.pop_front()?;
        Some(event(&e, state))
    }

    /// Every pending event.
    fn poll_events(&mut self) -> Vec<BgpEvent> {
        self.events.drain(..).map(|(e, s)| event(&e, s)).collect()
    }

    /// When to call `handle_timeout` next (ns), or None.
    fn poll_timeout(&self) -> Option<u64> {
        self.shared().poll_timeout().map(|t| t.as_nanos())
    }

    /// A neighbour's session state ("idle" ... "established").
    fn peer_state(&self, peer: u32) -> PyResult<&'static str> {
        let p = self.peer(peer)?;
        Ok(self
            .shared()
            .session(p)
            .map_or("idle", |s| state_name(s.state())))
    }

    /// The Loc-RIB as a list of `(prefix, next_hop)` in prefix order
    /// (`next_hop` None when a route has none).
    fn rib(&self) -> Vec<(String, Option<String>)> {
        self.shared()
            .loc_rib()
            .into_iter()
            .map(|(p, route)| (p.to_string(), route.next_hop.map(|n| n.to_string())))
            .collect()
    }

    fn __len__(&self) -> usize {
        self.shared().loc_rib_len()
    }

    fn __repr__(&self) -> String {
        let speaker = self.shared();
        let c = speaker.config();
        format!(
            "BgpSpeaker(asn={}, router_id='{}', neighbors={}, routes={})",
            c.asn,
            c.router_id,
            speaker.peers().count(),
            speaker.loc_rib_len()
        )
    }
}
