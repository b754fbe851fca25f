//! One BGP neighbour: the RFC 4271 §8 finite state machine as a sans-IO object.
//!
//! Methods fall in four groups (quinn-proto's `Connection` style):
//!
//! - getters: [`Session::state`], [`Session::negotiated`], [`Session::config`];
//! - commands: [`Session::start`], [`Session::stop`], [`Session::send_update`],
//!   [`Session::send_route_refresh`], [`Session::shutdown_max_prefixes`];
//! - inputs (`handle_*`): TCP connected / closed / bytes for a [`ConnectionId`], and
//!   [`Session::handle_timeout`] (spurious calls are harmless);
//! - outputs (`poll_*`): after any input, drain [`Session::poll_transmit`] (bytes to
//!   write to a connection), then [`Session::poll_action`] (connect / close TCP),
//!   [`Session::poll_update`] (UPDATEs received), [`Session::poll_event`], and finally
//!   [`Session::poll_timeout`] (when to call `handle_timeout` next).
//!
//! The embedder owns TCP. At most two connections exist at once, one per
//! [`ConnectionId`]: the one we opened ([`ConnectionId::Outbound`], after
//! [`Action::Connect`]) and one the peer opened ([`ConnectionId::Inbound`]). When both
//! reach the OPEN exchange, the collision is resolved as RFC 4271 §6.8 says: the
//! connection opened by the speaker with the higher BGP identifier survives.

pub mod config;
pub mod timers;

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::Bytes;

use crate::entropy::Entropy;
use crate::time::Timestamp;

use super::wire::notification::{cease_subcode, fsm_subcode, open_subcode};
use super::wire::{
    Afi, Capability, DecodeError, ErrorAction, ErrorCode, Frame, Framer, GracefulRestart, Message,
    NotificationMessage, OpenMessage, PathAttributes, RouteRefreshMessage, Safi, UpdateMessage,
    WireContext,
};
pub use config::{ConfigError, ConnectMode, GracefulRestartConfig, Secret, SessionConfig};
use timers::{Timer, TimerTable};

/// RFC 4271 §8.2.2 session states, ordered by progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

/// Which of the (at most two) TCP connections to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionId {
    /// We connected to the peer (after [`Action::Connect`]).
    Outbound,
    /// The peer connected to us.
    Inbound,
}

impl ConnectionId {
    pub(crate) fn index(self) -> usize {
        match self {
            ConnectionId::Outbound => 0,
            ConnectionId::Inbound => 1,
        }
    }

    fn other(self) -> ConnectionId {
        match self {
            ConnectionId::Outbound => ConnectionId::Inbound,
            ConnectionId::Inbound => ConnectionId::Outbound,
        }
    }

    const BOTH: [ConnectionId; 2] = [ConnectionId::Outbound, ConnectionId::Inbound];
}

/// Something only the embedder can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer (port 179), applying the MD5 password if set;
    /// report it with `handle_connected(now, ConnectionId::Outbound)`, or a failure
    /// with `handle_connection_closed(now, ConnectionId::Outbound)`. A new `Connect`
    /// replaces an attempt still in progress.
    Connect,
    /// Close this connection after writing the bytes already polled for it.
    Close(ConnectionId),
}

/// Why a session went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    AdminDown,
    HoldTimerExpired,
    NotificationReceived {
        code: ErrorCode,
        subcode: u8,
        /// RFC 9003 shutdown communication, if any.
        text: Option<String>,
    },
    NotificationSent {
        code: ErrorCode,
        subcode: u8,
        text: Option<String>,
    },
    /// The peer's OPEN names another AS than configured.
    BadPeerAs {
        expected: u32,
        received: u32,
    },
    ConnectionClosed,
    MaxPrefixesExceeded {
        afi: Afi,
        safi: Safi,
        limit: u32,
    },
}

impl core::fmt::Display for DownReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let text = |t: &Option<String>| t.as_ref().map_or(String::new(), |t| format!(": {t}"));
        match self {
            DownReason::AdminDown => f.write_str("administratively stopped"),
            DownReason::HoldTimerExpired => f.write_str("hold timer expired"),
            DownReason::NotificationReceived {
                code,
                subcode,
                text: t,
            } => write!(
                f,
                "NOTIFICATION received (code {}, subcode {subcode}){}",
                code.0,
                text(t)
            ),
            DownReason::NotificationSent {
                code,
                subcode,
                text: t,
            } => write!(
                f,
                "NOTIFICATION sent (code {}, subcode {subcode}){}",
                code.0,
                text(t)
            ),
            DownReason::BadPeerAs { expected, received } => {
                write!(
                    f,
                    "bad peer AS: expected AS{expected}, received AS{received}"
                )
            }
            DownReason::ConnectionClosed => f.write_str("connection closed"),
            DownReason::MaxPrefixesExceeded { afi, safi, limit } => write!(
                f,
                "more than {limit} prefixes received for {}",
                super::wire::family_name(*afi, *safi)
            ),
        }
    }
}

impl DownReason {
    fn sent(n: &NotificationMessage) -> Self {
        DownReason::NotificationSent {
            code: n.code,
            subcode: n.subcode,
            text: n.shutdown_communication().map(str::to_owned),
        }
    }

    fn received(n: &NotificationMessage) -> Self {
        DownReason::NotificationReceived {
            code: n.code,
            subcode: n.subcode,
            text: n.shutdown_communication().map(str::to_owned),
        }
    }
}

/// What was agreed in the OPEN exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub peer_asn: u32,
    pub peer_id: Ipv4Addr,
    /// Negotiated hold time (seconds); 0 = no hold timer and no keepalives.
    pub hold_time: u16,
    pub keepalive_time: u16,
    pub four_octet_as: bool,
    pub ipv4_unicast: bool,
    pub ipv6_unicast: bool,
    pub route_refresh: bool,
    /// The peer's Graceful Restart capability, if both sides support it.
    pub peer_graceful_restart: Option<GracefulRestart>,
}

impl Negotiated {
    pub fn wire_context(&self) -> WireContext {
        WireContext {
            four_octet_as: self.four_octet_as,
        }
    }

    /// Negotiated unicast families.
    pub fn families(&self) -> impl Iterator<Item = Afi> {
        [
            (self.ipv4_unicast, Afi::IPV4),
            (self.ipv6_unicast, Afi::IPV6),
        ]
        .into_iter()
        .filter_map(|(on, afi)| on.then_some(afi))
    }
}

/// Session events, in the order they happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    StateChanged {
        from: State,
        to: State,
    },
    Established {
        peer_id: Ipv4Addr,
        hold_time: u16,
    },
    /// The session left Established, or an attempt to establish it failed with an
    /// error. `graceful_restart`: the peer is restarting and its routes are to be kept
    /// as stale (RFC 4724) until [`SessionEvent::EndOfRib`] or
    /// [`SessionEvent::StaleRoutesExpired`]; otherwise drop its routes now.
    Down {
        reason: DownReason,
        graceful_restart: bool,
    },
    /// The peer finished sending its table for a family (RFC 4724 §2).
    EndOfRib {
        afi: Afi,
        safi: Safi,
    },
    /// Graceful restart is over without End-of-RIB: drop the peer's stale routes.
    StaleRoutesExpired,
    /// The peer asked for our Adj-RIB-Out again (RFC 2918).
    RouteRefreshRequested {
        afi: Afi,
        safi: Safi,
    },
}

/// An UPDATE received on the established session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedUpdate {
    /// As decoded; AS4_PATH already merged for 2-octet peers.
    pub update: UpdateMessage,
    /// RFC 7606: every prefix this UPDATE announces is to be withdrawn instead.
    pub treat_as_withdraw: bool,
}

/// A command that needs an established session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("session is not established")]
    NotEstablished,
    #[error("message does not fit: {0}")]
    Encode(#[from] super::wire::EncodeError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    OpenSent,
    OpenConfirm,
    Established,
}

impl ConnState {
    fn public(self) -> State {
        match self {
            ConnState::OpenSent => State::OpenSent,
            ConnState::OpenConfirm => State::OpenConfirm,
            ConnState::Established => State::Established,
        }
    }
}

#[derive(Debug)]
struct Conn {
    state: ConnState,
    framer: Framer,
    negotiated: Option<Negotiated>,
    ctx: WireContext,
}

/// What to do with a connection after handling a message.
enum Flow {
    Continue,
    Closed,
}

/// One BGP neighbour.
pub struct Session {
    config: SessionConfig,
    entropy: Box<dyn Entropy + Send>,
    /// Last state reported in a `StateChanged` event.
    state: State,
    /// State while no connection is open: Idle, Connect or Active.
    base: State,
    admin_up: bool,
    connect_pending: bool,
    conns: [Option<Conn>; 2],
    out: [Vec<u8>; 2],
    timers: TimerTable,
    idle_hold: Duration,
    established_at: Option<Timestamp>,
    /// The peer is gracefully restarting: its routes are held stale.
    gr_stale: bool,
    /// Families still owing End-of-RIB while `gr_stale`.
    gr_pending: Vec<Afi>,
    events: VecDeque<SessionEvent>,
    actions: VecDeque<Action>,
    updates: VecDeque<ReceivedUpdate>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("peer_asn", &self.config.peer_asn)
            .field("peer_addr", &self.config.peer_addr)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session in Idle; call [`Session::start`] to bring it up. `entropy` jitters the
    /// timers (RFC 4271 §10).
    pub fn new(
        config: SessionConfig,
        entropy: Box<dyn Entropy + Send>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let idle_hold = config.idle_hold_time;
        Ok(Self {
            config,
            entropy,
            state: State::Idle,
            base: State::Idle,
            admin_up: false,
            connect_pending: false,
            conns: [None, None],
            out: [Vec::new(), Vec::new()],
            timers: TimerTable::default(),
            idle_hold,
            established_at: None,
            gr_stale: false,
            gr_pending: Vec::new(),
            events: VecDeque::new(),
            actions: VecDeque::new(),
            updates: VecDeque::new(),
        })
    }

    // ---- getters ----

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// What the established connection negotiated.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.established_conn()
            .and_then(|i| self.conns[i].as_ref())
            .and_then(|c| c.negotiated.as_ref())
    }

    pub fn is_established(&self) -> bool {
        self.established_conn().is_some()
    }

    /// The backoff the next error will wait in Idle.
    pub fn idle_hold_time(&self) -> Duration {
        self.idle_hold
    }

    /// True while the peer is gracefully restarting and its routes are held stale.
    pub fn is_peer_restarting(&self) -> bool {
        self.gr_stale
    }

    // ---- commands ----

    /// Administrative start (RFC 4271 ManualStart).
    pub fn start(&mut self, now: Timestamp) {
        self.admin_up = true;
        self.idle_hold = self.config.idle_hold_time;
        if self.base == State::Idle && self.conns.iter().all(Option::is_none) {
            self.timers.stop(Timer::IdleHold);
            self.begin_connect(now);
        }
    }

    /// Administrative stop: Cease / Administrative Shutdown with an RFC 9003 message on
    /// every open connection, then Idle until the next [`Session::start`].
    pub fn stop(&mut self, _now: Timestamp, reason: &str) {
        let was = self.state;
        self.admin_up = false;
        let n = NotificationMessage::administrative_shutdown(reason);
        for id in ConnectionId::BOTH {
            if self.conns[id.index()].take().is_some() {
                self.write(id, &Message::Notification(n.clone()));
                self.actions.push_back(Action::Close(id));
            }
        }
        if self.connect_pending {
            self.connect_pending = false;
            self.actions
                .push_back(Action::Close(ConnectionId::Outbound));
        }
        self.timers.stop_all();
        self.base = State::Idle;
        self.established_at = None;
        let was_stale = std::mem::take(&mut self.gr_stale);
        if was != State::Idle || was_stale {
            self.events.push_back(SessionEvent::Down {
                reason: DownReason::AdminDown,
                graceful_restart: false,
            });
        }
        self.update_state();
    }

    /// Queues an UPDATE on the established connection.
    pub fn send_update(&mut self, update: &UpdateMessage) -> Result<(), SendError> {
        let i = self.established_conn().ok_or(SendError::NotEstablished)?;
        let ctx = self.conns[i].as_ref().map(|c| c.ctx).unwrap_or_default();
        Message::Update(update.clone()).encode(&mut self.out[i], &ctx)?;
        Ok(())
    }

    /// Encodes an UPDATE without cloning it (the speaker's packing path).
    pub(crate) fn send_message(&mut self, msg: &Message) -> Result<(), SendError> {
        let i = self.established_conn().ok_or(SendError::NotEstablished)?;
        let ctx = self.conns[i].as_ref().map(|c| c.ctx).unwrap_or_default();
        msg.encode(&mut self.out[i], &ctx)?;
        Ok(())
    }

    /// Asks the peer to resend its routes of one family (RFC 2918).
    pub fn send_route_refresh(&mut self, afi: Afi, safi: Safi) -> Result<(), SendError> {
        self.send_message(&Message::RouteRefresh(RouteRefreshMessage::new(afi, safi)))
    }

    /// The peer sent more prefixes than allowed: Cease / Maximum Number of Prefixes
    /// Reached (RFC 4486, data AFI, SAFI, limit), then Idle. With `restart`, the
    /// session comes back by itself after that long; without, only on
    /// [`Session::start`].
    pub fn shutdown_max_prefixes(
        &mut self,
        now: Timestamp,
        afi: Afi,
        safi: Safi,
        limit: u32,
        restart: Option<Duration>,
    ) {
        let Some(i) = self.established_conn() else {
            return;
        };
        let id = ConnectionId::BOTH[i];
        let n = NotificationMessage::maximum_prefixes_reached(afi, safi, limit);
        self.close_conn(id, Some(&n));
        self.session_down(
            now,
            DownReason::MaxPrefixesExceeded { afi, safi, limit },
            None,
        );
        self.timers.stop(Timer::IdleHold);
        self.timers.stop(Timer::ConnectRetry);
        match restart {
            Some(d) => self.timers.set(Timer::IdleHold, now + d),
            None => self.admin_up = false,
        }
        self.update_state();
    }

    // ---- inputs ----

    /// The embedder has a TCP connection to the peer (either direction).
    pub fn handle_connected(&mut self, now: Timestamp, id: ConnectionId) {
        if id == ConnectionId::Outbound {
            self.connect_pending = false;
        }
        if !self.admin_up || self.base == State::Idle {
            // RFC 4271 Idle: refuse connections.
            self.actions.push_back(Action::Close(id));
            return;
        }
        if self.conns[id.index()].is_some() {
            // The embedder reuses the id: the old connection is gone.
            self.handle_connection_closed(now, id);
            if !self.admin_up || self.base == State::Idle {
                self.actions.push_back(Action::Close(id));
                return;
            }
        }
        let other = id.other();
        if let Some(c) = &self.conns[other.index()] {
            if c.state == ConnState::Established {
                let peer_restarts = peer_restart_time(c);
                if let Some(restart) = peer_restarts {
                    // RFC 4724 §4.2: a new connection while established means the
                    // peer restarted; the old one is dead.
                    self.close_conn(other, None);
                    self.session_down(now, DownReason::ConnectionClosed, Some(restart));
                } else {
                    let n = NotificationMessage::new(
                        ErrorCode::CEASE,
                        cease_subcode::CONNECTION_REJECTED,
                        Bytes::new(),
                    );
                    self.out[id.index()].clear();
                    self.write(id, &Message::Notification(n));
                    self.actions.push_back(Action::Close(id));
                    return;
                }
            }
        }
        self.out[id.index()].clear();
        self.conns[id.index()] = Some(Conn {
            state: ConnState::OpenSent,
            framer: Framer::new(),
            negotiated: None,
            ctx: WireContext::default(),
        });
        let open = self.our_open();
        self.write(id, &Message::Open(open));
        self.timers.stop(Timer::ConnectRetry);
        self.timers
            .set(Timer::Hold(id), now + self.config.open_hold_time);
        self.update_state();
    }

    /// The connection closed (or, for [`ConnectionId::Outbound`] with no connection
    /// yet, the connection attempt failed).
    pub fn handle_connection_closed(&mut self, now: Timestamp, id: ConnectionId) {
        let Some(conn) = self.conns[id.index()].take() else {
            if id == ConnectionId::Outbound && self.connect_pending {
                self.connect_pending = false;
                if self.base == State::Connect {
                    self.base = State::Active;
                }
                if !self.timers.is_armed(Timer::ConnectRetry) && self.admin_up {
                    let at = now + self.jitter(self.config.connect_retry);
                    self.timers.set(Timer::ConnectRetry, at);
                }
                self.update_state();
            }
            return;
        };
        self.timers.stop(Timer::Hold(id));
        self.timers.stop(Timer::Keepalive(id));
        if conn.state == ConnState::Established {
            let graceful = peer_restart_time(&conn);
            self.session_down(now, DownReason::ConnectionClosed, graceful);
        } else if self.conns.iter().all(Option::is_none) {
            self.enter_active(now);
        }
        self.update_state();
    }

    /// Bytes received on a connection, split anywhere.
    pub fn handle_bytes(&mut self, now: Timestamp, id: ConnectionId, mut data: &[u8]) {
        while !data.is_empty() {
            let Some(conn) = self.conns[id.index()].as_mut() else {
                return;
            };
            let n = conn.framer.push(data);
            data = &data[n..];
            loop {
                let Some(conn) = self.conns[id.index()].as_mut() else {
                    return;
                };
                let Some(frame) = conn.framer.next_frame() else {
                    break;
                };
                if let Flow::Closed = self.handle_frame(now, id, frame) {
                    return;
                }
            }
            if n == 0 {
                // Cannot happen (the framer always has room after yielding frames),
                // but never spin.
                return;
            }
        }
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        while let Some(t) = self.timers.take_expired(now) {
            self.on_timer(now, t);
        }
    }

    // ---- outputs ----

    /// Appends bytes to write to one connection to `buf`; returns which connection.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<ConnectionId> {
        let i = self.out.iter().position(|o| !o.is_empty())?;
        buf.append(&mut self.out[i]);
        Some(ConnectionId::BOTH[i])
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// UPDATEs received, oldest first; drain before [`Session::poll_event`].
    pub fn poll_update(&mut self) -> Option<ReceivedUpdate> {
        self.updates.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When to call [`Session::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.next()
    }

    // ---- internals ----

    fn established_conn(&self) -> Option<usize> {
        self.conns.iter().position(|c| {
            c.as_ref()
                .is_some_and(|c| c.state == ConnState::Established)
        })
    }

    fn our_open(&self) -> OpenMessage {
        let c = &self.config;
        let mut caps = Vec::new();
        if c.ipv4_unicast {
            caps.push(Capability::Multiprotocol {
                afi: Afi::IPV4,
                safi: Safi::UNICAST,
            });
        }
        if c.ipv6_unicast {
            caps.push(Capability::Multiprotocol {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
            });
        }
        if c.route_refresh {
            caps.push(Capability::RouteRefresh);
        }
        if let Some(gr) = &c.graceful_restart {
            // Helper only: no families, so the peer does not expect us to keep
            // forwarding state across our restarts.
            caps.push(Capability::GracefulRestart(GracefulRestart {
                flags: 0,
                restart_time: gr.restart_time.min(0x0fff),
                families: Vec::new(),
            }));
        }
        caps.push(Capability::FourOctetAs(c.local_asn));
        OpenMessage::new(c.local_asn, c.hold_time, c.router_id, caps)
    }

    /// Multiplies `d` by a random factor in [0.75, 1.0] (RFC 4271 §10).
    fn jitter(&mut self, d: Duration) -> Duration {
        // Integer arithmetic: no float rounding, no overflow panic on huge configs.
        let permille = u128::from(750 + self.entropy.next_u32() % 251);
        let nanos = d.as_nanos().saturating_mul(permille) / 1000;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn write(&mut self, id: ConnectionId, msg: &Message) {
        // Messages we build always fit; an encoding error would only drop this one.
        let _ = msg.encode(
            &mut self.out[id.index()],
            &WireContext {
                four_octet_as: self.conns[id.index()]
                    .as_ref()
                    .is_some_and(|c| c.ctx.four_octet_as),
            },
        );
    }

    fn begin_connect(&mut self, now: Timestamp) {
        match self.config.mode {
            ConnectMode::Active => {
                self.base = State::Connect;
                self.connect_pending = true;
                self.actions.push_back(Action::Connect);
                let at = now + self.jitter(self.config.connect_retry);
                self.timers.set(Timer::ConnectRetry, at);
            }
            ConnectMode::Passive => self.base = State::Active,
        }
        self.update_state();
    }

    /// No connection left, no error: wait for the next attempt.
    fn enter_active(&mut self, now: Timestamp) {
        if !self.admin_up {
            self.base = State::Idle;
            return;
        }
        self.base = State::Active;
        if self.config.mode == ConnectMode::Active && !self.timers.is_armed(Timer::ConnectRetry) {
            let at = now + self.jitter(self.config.connect_retry);
            self.timers.set(Timer::ConnectRetry, at);
        }
    }

    /// Writes the NOTIFICATION (if any), asks the embedder to close, forgets the
    /// connection and its timers.
    fn close_conn(&mut self, id: ConnectionId, notification: Option<&NotificationMessage>) {
        if let Some(n) = notification {
            self.write(id, &Message::Notification(n.clone()));
        }
        self.conns[id.index()] = None;
        self.timers.stop(Timer::Hold(id));
        self.timers.stop(Timer::Keepalive(id));
        self.actions.push_back(Action::Close(id));
    }

    /// A connection failed with an error. If it was the only one (or the established
    /// one) the session goes down; a collision partner just disappears.
    fn fail_conn(
        &mut self,
        now: Timestamp,
        id: ConnectionId,
        notification: Option<&NotificationMessage>,
        reason: DownReason,
    ) -> Flow {
        let was_established = self.conns[id.index()]
            .as_ref()
            .is_some_and(|c| c.state == ConnState::Established);
        // RFC 4724 covers TCP failures; a silent peer (hold timer) is treated alike.
        let graceful = self.conns[id.index()]
            .as_ref()
            .filter(|_| was_established && matches!(reason, DownReason::HoldTimerExpired))
            .and_then(peer_restart_time);
        self.close_conn(id, notification);
        if was_established || self.conns.iter().all(Option::is_none) {
            self.session_down(now, reason, graceful);
        }
        self.update_state();
        Flow::Closed
    }

    /// The session is down (error, close, max prefixes): report, then Idle with
    /// backoff, or straight back to connecting when the peer restarts gracefully.
    /// `peer_restart`: the peer's GR Restart Time when its routes are to be kept.
    fn session_down(&mut self, now: Timestamp, reason: DownReason, peer_restart: Option<u16>) {
        let graceful = peer_restart.is_some();
        if let Some(since) = self.established_at.take() {
            if now.saturating_since(since) >= self.config.idle_hold_max {
                self.idle_hold = self.config.idle_hold_time;
            }
        }
        if let Some(restart) = peer_restart {
            self.gr_stale = true;
            self.timers.stop(Timer::GrStale);
            self.timers
                .set(Timer::GrRestart, now + Duration::from_secs(restart.into()));
        } else {
            self.gr_stale = false;
            self.timers.stop(Timer::GrRestart);
            self.timers.stop(Timer::GrStale);
        }
        self.events.push_back(SessionEvent::Down {
            reason,
            graceful_restart: graceful,
        });
        for id in ConnectionId::BOTH {
            if self.conns[id.index()].is_some() {
                self.close_conn(id, None);
            }
        }
        if graceful && self.admin_up {
            // Accept the restarting peer at once.
            self.begin_connect(now);
            return;
        }
        self.base = State::Idle;
        self.timers.stop(Timer::ConnectRetry);
        if self.connect_pending {
            self.connect_pending = false;
            self.actions
                .push_back(Action::Close(ConnectionId::Outbound));
        }
        if self.admin_up {
            self.timers.set(Timer::IdleHold, now + self.idle_hold);
            self.idle_hold = self
                .idle_hold
                .saturating_mul(2)
                .min(self.config.idle_hold_max);
        }
    }

    fn update_state(&mut self) {
        let now_state = self
            .conns
            .iter()
            .flatten()
            .map(|c| c.state.public())
            .max()
            .unwrap_or(self.base);
        if now_state != self.state {
            self.events.push_back(SessionEvent::StateChanged {
                from: self.state,
                to: now_state,
            });
            self.state = now_state;
        }
    }

    fn on_timer(&mut self, now: Timestamp, t: Timer) {
        match t {
            Timer::ConnectRetry => {
                if self.admin_up
                    && self.conns.iter().all(Option::is_none)
                    && matches!(self.base, State::Connect | State::Active)
                {
                    self.begin_connect(now);
                }
            }
            Timer::IdleHold => {
                if !self.admin_up {
                    // A max-prefix restart timer: come back up by itself.
                    self.admin_up = true;
                }
                if self.base == State::Idle && self.conns.iter().all(Option::is_none) {
                    self.begin_connect(now);
                }
            }
            Timer::Hold(id) => {
                if self.conns[id.index()].is_some() {
                    let n = NotificationMessage::hold_timer_expired();
                    self.fail_conn(now, id, Some(&n), DownReason::HoldTimerExpired);
                }
            }
            Timer::Keepalive(id) => {
                let Some(c) = &self.conns[id.index()] else {
                    return;
                };
                if c.state == ConnState::OpenSent {
                    return;
                }
                let ka = c.negotiated.as_ref().map_or(0, |n| n.keepalive_time);
                self.write(id, &Message::Keepalive);
                self.arm_keepalive(now, id, ka);
            }
            Timer::GrRestart | Timer::GrStale => {
                if self.gr_stale {
                    self.gr_stale = false;
                    self.gr_pending.clear();
                    self.timers.stop(Timer::GrRestart);
                    self.timers.stop(Timer::GrStale);
                    self.events.push_back(SessionEvent::StaleRoutesExpired);
                }
            }
        }
    }

    fn arm_keepalive(&mut self, now: Timestamp, id: ConnectionId, secs: u16) {
        if secs == 0 {
            self.timers.stop(Timer::Keepalive(id));
            return;
        }
        let at = now + self.jitter(Duration::from_secs(secs.into()));
        self.timers.set(Timer::Keepalive(id), at);
    }

    fn restart_hold(&mut self, now: Timestamp, id: ConnectionId) {
        let hold = self.conns[id.index()]
            .as_ref()
            .and_then(|c| c.negotiated.as_ref())
            .map_or(0, |n| n.hold_time);
        if hold == 0 {
            self.timers.stop(Timer::Hold(id));
        } else {
            self.timers
                .set(Timer::Hold(id), now + Duration::from_secs(hold.into()));
        }
    }

    fn handle_frame(
        &mut self,
        now: Timestamp,
        id: ConnectionId,
        frame: Result<Frame, DecodeError>,
    ) -> Flow {
        let Some(conn) = self.conns[id.index()].as_ref() else {
            return Flow::Closed;
        };
        let state = conn.state;
        let ctx = conn.ctx;
        let decoded = frame.and_then(|f| f.decode(&ctx));
        let (msg, action) = match decoded {
            Ok(m) => m,
            Err(e) => {
                let n = e.notification();
                let reason = n
                    .as_ref()
                    .map_or(DownReason::ConnectionClosed, DownReason::sent);
                return self.fail_conn(now, id, n.as_ref(), reason);
            }
        };
        if let Message::Notification(n) = &msg {
            return self.fail_conn(now, id, None, DownReason::received(n));
        }
        match (state, msg) {
            (ConnState::OpenSent, Message::Open(open)) => self.handle_open(now, id, open),
            (ConnState::OpenConfirm, Message::Keepalive) => {
                self.establish(now, id);
                Flow::Continue
            }
            (ConnState::Established, Message::Keepalive) => {
                self.restart_hold(now, id);
                Flow::Continue
            }
            (ConnState::Established, Message::Update(mut update)) => {
                self.restart_hold(now, id);
                self.handle_update(&ctx, &mut update, action);
                Flow::Continue
            }
            (ConnState::Established, Message::RouteRefresh(rr)) => {
                self.restart_hold(now, id);
                let negotiated = self.negotiated().is_some_and(|n| n.route_refresh);
                if negotiated && rr.subtype == RouteRefreshMessage::SUBTYPE_NORMAL {
                    self.events.push_back(SessionEvent::RouteRefreshRequested {
                        afi: rr.afi,
                        safi: rr.safi,
                    });
                }
                Flow::Continue
            }
            (state, _) => {
                // RFC 6608: the subcode names the state the unexpected message hit.
                let sub = match state {
                    ConnState::OpenSent => fsm_subcode::UNEXPECTED_IN_OPEN_SENT,
                    ConnState::OpenConfirm => fsm_subcode::UNEXPECTED_IN_OPEN_CONFIRM,
                    ConnState::Established => fsm_subcode::UNEXPECTED_IN_ESTABLISHED,
                };
                let n = NotificationMessage::new(ErrorCode::FSM, sub, Bytes::new());
                self.fail_conn(now, id, Some(&n), DownReason::sent(&n))
            }
        }
    }

    fn handle_update(
        &mut self,
        ctx: &WireContext,
        update: &mut UpdateMessage,
        action: Option<ErrorAction>,
    ) {
        if let Some((afi, safi)) = end_of_rib(update) {
            if self.gr_stale {
                self.gr_pending.retain(|&a| a != afi);
                if self.gr_pending.is_empty() {
                    self.gr_stale = false;
                    self.timers.stop(Timer::GrStale);
                }
            }
            self.events.push_back(SessionEvent::EndOfRib { afi, safi });
            return;
        }
        if !ctx.four_octet_as {
            update.attributes.reconcile_as4();
        }
        self.updates.push_back(ReceivedUpdate {
            update: std::mem::take(update),
            treat_as_withdraw: matches!(action, Some(ErrorAction::TreatAsWithdraw)),
        });
    }

    fn handle_open(&mut self, now: Timestamp, id: ConnectionId, open: OpenMessage) -> Flow {
        let cfg = &self.config;
        if let Err(n) = open.validate(Some(cfg.peer_asn)) {
            let reason =
                if n.code == ErrorCode::OPEN_MESSAGE && n.subcode == open_subcode::BAD_PEER_AS {
                    DownReason::BadPeerAs {
                        expected: cfg.peer_asn,
                        received: open.asn(),
                    }
                } else {
                    DownReason::sent(&n)
                };
            return self.fail_conn(now, id, Some(&n), reason);
        }
        // RFC 6286 §2.2: an internal peer must not share our identifier.
        if !cfg.is_ebgp() && open.bgp_id == cfg.router_id {
            let n = NotificationMessage::new(
                ErrorCode::OPEN_MESSAGE,
                open_subcode::BAD_BGP_IDENTIFIER,
                Bytes::new(),
            );
            return self.fail_conn(now, id, Some(&n), DownReason::sent(&n));
        }
        let negotiated = self.negotiate(&open);
        // Collision detection (RFC 4271 §6.8, RFC 6286 §2.3 for equal identifiers).
        let other = id.other();
        if let Some(c) = &self.conns[other.index()] {
            let collision = NotificationMessage::new(
                ErrorCode::CEASE,
                cease_subcode::CONNECTION_COLLISION_RESOLUTION,
                Bytes::new(),
            );
            let loser = if c.state == ConnState::Established {
                id
            } else {
                let local = u32::from(self.config.router_id);
                let remote = u32::from(open.bgp_id);
                let local_wins = if local != remote {
                    local > remote
                } else {
                    self.config.local_asn > self.config.peer_asn
                };
                if local_wins {
                    ConnectionId::Inbound
                } else {
                    ConnectionId::Outbound
                }
            };
            self.close_conn(loser, Some(&collision));
            if loser == id {
                self.update_state();
                return Flow::Closed;
            }
        }
        let hold = negotiated.hold_time;
        let ka = negotiated.keepalive_time;
        if let Some(c) = self.conns[id.index()].as_mut() {
            c.ctx = negotiated.wire_context();
            c.negotiated = Some(negotiated);
            c.state = ConnState::OpenConfirm;
        }
        self.write(id, &Message::Keepalive);
        if hold == 0 {
            self.timers.stop(Timer::Hold(id));
        } else {
            self.timers
                .set(Timer::Hold(id), now + Duration::from_secs(hold.into()));
        }
        self.arm_keepalive(now, id, ka);
        self.update_state();
        Flow::Continue
    }

    fn negotiate(&self, open: &OpenMessage) -> Negotiated {
        let cfg = &self.config;
        let hold = cfg.hold_time.min(open.hold_time);
        let keepalive = if hold == 0 {
            0
        } else {
            let third = (hold / 3).max(1);
            cfg.keepalive_time.map_or(third, |k| k.clamp(1, third))
        };
        let mut peer_v4 = false;
        let mut peer_v6 = false;
        let mut any_mp = false;
        let mut rr = false;
        let mut gr = None;
        for cap in open.capabilities() {
            match cap {
                Capability::Multiprotocol { afi, safi } => {
                    any_mp = true;
                    if *safi == Safi::UNICAST {
                        peer_v4 |= *afi == Afi::IPV4;
                        peer_v6 |= *afi == Afi::IPV6;
                    }
                }
                Capability::RouteRefresh => rr = true,
                Capability::GracefulRestart(g) => gr = Some(g.clone()),
                _ => {}
            }
        }
        // RFC 4760 §8: without any MP capability, IPv4 unicast is implied.
        if !any_mp {
            peer_v4 = true;
        }
        Negotiated {
            peer_asn: open.asn(),
            peer_id: open.bgp_id,
            hold_time: hold,
            keepalive_time: keepalive,
            four_octet_as: open.four_octet_as().is_some(),
            ipv4_unicast: cfg.ipv4_unicast && peer_v4,
            ipv6_unicast: cfg.ipv6_unicast && peer_v6,
            route_refresh: cfg.route_refresh && rr,
            peer_graceful_restart: gr.filter(|_| cfg.graceful_restart.is_some()),
        }
    }

    fn establish(&mut self, now: Timestamp, id: ConnectionId) {
        let Some(c) = self.conns[id.index()].as_mut() else {
            return;
        };
        c.state = ConnState::Established;
        let Some(n) = c.negotiated.clone() else {
            return;
        };
        self.established_at = Some(now);
        self.timers.stop(Timer::ConnectRetry);
        self.timers.stop(Timer::IdleHold);
        self.restart_hold(now, id);
        let other = id.other();
        if self.conns[other.index()].is_some() {
            let collision = NotificationMessage::new(
                ErrorCode::CEASE,
                cease_subcode::CONNECTION_COLLISION_RESOLUTION,
                Bytes::new(),
            );
            self.close_conn(other, Some(&collision));
        }
        if self.gr_stale {
            self.timers.stop(Timer::GrRestart);
            // The peer still supports graceful restart: wait for its End-of-RIB.
            if n.peer_graceful_restart.is_some() {
                self.gr_pending = n.families().collect();
                let stale = self
                    .config
                    .graceful_restart
                    .map_or(Duration::ZERO, |g| g.stale_routes_time);
                self.timers.set(Timer::GrStale, now + stale);
            } else {
                self.gr_stale = false;
                self.events.push_back(SessionEvent::StaleRoutesExpired);
            }
        }
        self.update_state();
        self.events.push_back(SessionEvent::Established {
            peer_id: n.peer_id,
            hold_time: n.hold_time,
        });
    }
}

fn peer_restart_time(c: &Conn) -> Option<u16> {
    c.negotiated
        .as_ref()
        .and_then(|n| n.peer_graceful_restart.as_ref())
        .map(|g| g.restart_time)
}

/// The End-of-RIB marker's family (RFC 4724 §2): an empty UPDATE for IPv4 unicast, an
/// UPDATE with nothing but an empty MP_UNREACH_NLRI for the others.
pub fn end_of_rib(update: &UpdateMessage) -> Option<(Afi, Safi)> {
    if update.is_end_of_rib() {
        return Some((Afi::IPV4, Safi::UNICAST));
    }
    let a = &update.attributes;
    let unreach = a.mp_unreach.as_ref()?;
    let only_unreach = PathAttributes {
        mp_unreach: Some(unreach.clone()),
        ..PathAttributes::default()
    };
    (update.withdrawn.is_empty()
        && update.nlri.is_empty()
        && unreach.withdrawn.is_empty()
        && *a == only_unreach)
        .then_some((unreach.afi, unreach.safi))
}
