//! The BGP speaker (`vpn_bgp_speaker`): a sans-IO BGP-4 speaker whose TCP
//! connections, clock and timers belong to the caller.
//!
//! Call pattern (as for every object here): feed inputs
//! (`vpn_bgp_speaker_handle_connected` / `_handle_closed` / `_handle_bytes` /
//! `_handle_timeout`, or commands such as `_start` and `_announce`), then drain
//! the outputs in this order: `vpn_bgp_speaker_poll_transmit` until it yields no
//! bytes, `_poll_action` until false, `_poll_event` until false, and finally
//! `_poll_timeout` for the next deadline.
//!
//! The binding is thin: it converts arguments, cuts the byte stream of a
//! connection into chunks of whole BGP messages (at most
//! `VPN_BGP_MAX_TRANSMIT` bytes each) and turns events into flat structs and
//! the Loc-RIB into text (`vpn_bgp_speaker_rib`). Everything else is
//! `vpn_core::bgp::speaker::Speaker`.

use core::ffi::{c_char, CStr};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use vpn_core::bgp::policy::Policy;
use vpn_core::bgp::rib::IpPrefix;
use vpn_core::bgp::session::{
    Action, ConnectMode, ConnectionId, DownReason, SessionConfig, SessionEvent, State,
};
use vpn_core::bgp::speaker::{
    originated_attributes, NeighborConfig, PeerId, RouteEvent, RouteSource, Speaker, SpeakerConfig,
    SpeakerEvent,
};
use vpn_core::bgp::wire::{family_name, HEADER_LEN};
use vpn_core::entropy::OsEntropy;
use vpn_core::time::Timestamp;

use crate::result::vpn_result::{self, *};
use crate::result::{guard, guard_value, in_slice, non_null, out_slice, write_c_str};

/// Size of `vpn_bgp_event.prefix` (an IPv6 prefix needs at most 44 bytes).
pub const VPN_BGP_PREFIX_TEXT_LEN: usize = 64;
/// Size of `vpn_bgp_event.next_hop` (an IPv6 address needs at most 46 bytes).
pub const VPN_BGP_ADDR_TEXT_LEN: usize = 48;
/// Size of `vpn_bgp_event.message`.
pub const VPN_BGP_MESSAGE_TEXT_LEN: usize = 160;
/// `vpn_bgp_speaker_poll_transmit` never needs a larger buffer than this.
pub const VPN_BGP_MAX_TRANSMIT: usize = 65536;
/// `vpn_bgp_event.peer` of a route the speaker originates itself, or of a
/// withdrawn route.
pub const VPN_BGP_PEER_NONE: u32 = u32::MAX;

/// `vpn_bgp_neighbor_config.policy`: no policy. RFC 8212: an eBGP neighbour's
/// routes are not accepted and none are announced to it; an iBGP neighbour
/// exchanges everything.
pub const VPN_BGP_POLICY_DEFAULT: u32 = 0;
/// `vpn_bgp_neighbor_config.policy`: accept and announce every route.
pub const VPN_BGP_POLICY_ALL: u32 = 1;
/// `vpn_bgp_neighbor_config.policy`: accept and announce nothing.
pub const VPN_BGP_POLICY_NONE: u32 = 2;

/// The speaker itself.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct vpn_bgp_speaker_config {
    /// Our AS number (4-octet ASNs are fine).
    pub local_asn: u32,
    /// Our BGP identifier as a NUL-terminated dotted quad ("10.0.0.1").
    pub router_id: *const c_char,
}

/// One neighbour. A zero-initialised struct holds the defaults of every field
/// but `peer_address` and `peer_asn`, which must be set.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct vpn_bgp_neighbor_config {
    /// The neighbour's address (tunnel inside address), NUL-terminated
    /// ("169.254.10.1" or an IPv6 address).
    pub peer_address: *const c_char,
    /// Our address on that link, the next hop of routes we announce over eBGP;
    /// NULL: the router ID.
    pub local_address: *const c_char,
    pub peer_asn: u32,
    /// Only accept connections from the neighbour; otherwise the speaker asks
    /// for outbound connections (`VPN_BGP_ACTION_CONNECT`) and accepts them too.
    pub passive: bool,
    /// Hold time we offer in seconds: 0 means the default (30, as AWS); 1 and
    /// 2 are invalid.
    pub hold_time: u16,
    /// `VPN_BGP_POLICY_DEFAULT`, `VPN_BGP_POLICY_ALL` or `VPN_BGP_POLICY_NONE`,
    /// applied to both directions.
    pub policy: u32,
}

/// RFC 4271 session state.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum vpn_bgp_state {
    /// The event is not about a session.
    VPN_BGP_STATE_NONE = 0,
    VPN_BGP_STATE_IDLE = 1,
    VPN_BGP_STATE_CONNECT = 2,
    VPN_BGP_STATE_ACTIVE = 3,
    VPN_BGP_STATE_OPEN_SENT = 4,
    VPN_BGP_STATE_OPEN_CONFIRM = 5,
    VPN_BGP_STATE_ESTABLISHED = 6,
}

/// What the embedder must do with a neighbour's TCP connections.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum vpn_bgp_action {
    /// Open a TCP connection to the neighbour (port 179); report it with
    /// `vpn_bgp_speaker_handle_connected(.., outbound = true, ..)`, or a
    /// failure with `vpn_bgp_speaker_handle_closed(.., outbound = true, ..)`.
    VPN_BGP_ACTION_CONNECT = 1,
    /// Close the connection named by `outbound` after writing the bytes
    /// already polled for it.
    VPN_BGP_ACTION_CLOSE = 2,
}

/// What a `vpn_bgp_event` reports.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum vpn_bgp_event_kind {
    /// A session changed state (`state` is the new one).
    VPN_BGP_EVENT_STATE_CHANGED = 1,
    /// A session reached Established (`message` has the neighbour's BGP
    /// identifier and the hold time).
    VPN_BGP_EVENT_ESTABLISHED = 2,
    /// A session went down or failed to come up: `reason`, and for
    /// NOTIFICATIONs `error_code`/`error_subcode`, for a wrong AS
    /// `expected_asn`/`received_asn`; `message` describes it.
    VPN_BGP_EVENT_DOWN = 3,
    /// A Loc-RIB route was added: `prefix`, `next_hop`, `peer` (its source,
    /// or `VPN_BGP_PEER_NONE` for a route we originate).
    VPN_BGP_EVENT_ROUTE_ADDED = 4,
    /// A Loc-RIB route's best path changed; fields as for ROUTE_ADDED.
    VPN_BGP_EVENT_ROUTE_CHANGED = 5,
    /// A prefix left the Loc-RIB (`prefix`).
    VPN_BGP_EVENT_ROUTE_WITHDRAWN = 6,
    /// The neighbour finished sending its table for a family (`message`).
    VPN_BGP_EVENT_END_OF_RIB = 7,
    /// Graceful restart ended without End-of-RIB; stale routes were dropped.
    VPN_BGP_EVENT_STALE_ROUTES_EXPIRED = 8,
    /// The neighbour asked for our routes again (RFC 2918); they are resent.
    VPN_BGP_EVENT_ROUTE_REFRESH_REQUESTED = 9,
    /// More prefixes qualify for the neighbour than its outbound cap.
    VPN_BGP_EVENT_OUTBOUND_CAP_REACHED = 10,
}

/// Why a session went down (`VPN_BGP_EVENT_DOWN`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum vpn_bgp_down_reason {
    /// Not a DOWN event.
    VPN_BGP_REASON_NONE = 0,
    /// Stopped locally.
    VPN_BGP_REASON_ADMIN_DOWN = 1,
    VPN_BGP_REASON_HOLD_TIMER_EXPIRED = 2,
    /// The neighbour sent a NOTIFICATION (`error_code`, `error_subcode`).
    VPN_BGP_REASON_NOTIFICATION_RECEIVED = 3,
    /// We sent a NOTIFICATION (`error_code`, `error_subcode`), e.g. for
    /// malformed bytes.
    VPN_BGP_REASON_NOTIFICATION_SENT = 4,
    /// The neighbour's OPEN names another AS than configured
    /// (`expected_asn`, `received_asn`); a NOTIFICATION was sent.
    VPN_BGP_REASON_BAD_PEER_AS = 5,
    /// The TCP connection closed.
    VPN_BGP_REASON_CONNECTION_CLOSED = 6,
    /// The neighbour sent more prefixes than allowed.
    VPN_BGP_REASON_MAX_PREFIXES = 7,
}

/// Something the speaker reports. Text fields are NUL-terminated (empty
/// when they do not apply).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct vpn_bgp_event {
    pub kind: vpn_bgp_event_kind,
    /// The neighbour, or `VPN_BGP_PEER_NONE`.
    pub peer: u32,
    /// The session's state for session events, else `VPN_BGP_STATE_NONE`.
    pub state: vpn_bgp_state,
    pub reason: vpn_bgp_down_reason,
    /// NOTIFICATION error code and subcode (RFC 4271 §4.5), else 0.
    pub error_code: u8,
    pub error_subcode: u8,
    /// For `VPN_BGP_REASON_BAD_PEER_AS`: the configured and the received AS.
    pub expected_asn: u32,
    pub received_asn: u32,
    /// Route events: the prefix ("10.1.0.0/16").
    pub prefix: [c_char; VPN_BGP_PREFIX_TEXT_LEN],
    /// Route events: the next hop, empty if none.
    pub next_hop: [c_char; VPN_BGP_ADDR_TEXT_LEN],
    /// A human-readable description (truncated to fit).
    pub message: [c_char; VPN_BGP_MESSAGE_TEXT_LEN],
}

/// Bytes polled from the speaker for one connection, handed out in chunks.
struct Pending {
    peer: PeerId,
    conn: ConnectionId,
    data: Vec<u8>,
    pos: usize,
}

impl Pending {
    /// Length of the next chunk: whole messages, at most `VPN_BGP_MAX_TRANSMIT`
    /// bytes (messages are at most 4096).
    fn chunk_len(&self) -> usize {
        let rest = &self.data[self.pos..];
        let mut n = 0;
        while n + HEADER_LEN <= rest.len() {
            let len = usize::from(u16::from_be_bytes([rest[n + 16], rest[n + 17]]));
            if len < HEADER_LEN || n + len > rest.len() {
                // Not our framing (never happens): hand out the rest.
                return rest.len().min(VPN_BGP_MAX_TRANSMIT).max(n);
            }
            if n + len > VPN_BGP_MAX_TRANSMIT {
                break;
            }
            n += len;
        }
        if n == 0 {
            rest.len().min(VPN_BGP_MAX_TRANSMIT)
        } else {
            n
        }
    }
}

/// A BGP speaker. Create with `vpn_bgp_speaker_new`, release with
/// `vpn_bgp_speaker_free`.
pub struct vpn_bgp_speaker {
    speaker: Speaker,
    /// Core events drained after every call, with the session state at that time.
    events: VecDeque<(SpeakerEvent, State)>,
    pending: Option<Pending>,
}

impl vpn_bgp_speaker {
    fn peer(&self, peer: u32) -> Result<PeerId, vpn_result> {
        u16::try_from(peer)
            .ok()
            .map(PeerId)
            .filter(|p| self.speaker.session(*p).is_some())
            .ok_or(VPN_ERR_UNKNOWN_PEER)
    }

    /// Moves the core's events into our queue.
    fn drain(&mut self) {
        while let Some(e) = self.speaker.poll_event() {
            let state = match &e {
                SpeakerEvent::Session { peer, .. } => self
                    .speaker
                    .session(*peer)
                    .map_or(State::Idle, |s| s.state()),
                _ => State::Idle,
            };
            self.events.push_back((e, state));
        }
    }

    /// The Loc-RIB as "prefix next_hop" lines ("-" for no next hop).
    fn rib_text(&self) -> String {
        let mut s = String::new();
        for (prefix, route) in self.speaker.loc_rib() {
            let _ = match route.next_hop {
                Some(nh) => writeln!(s, "{prefix} {nh}"),
                None => writeln!(s, "{prefix} -"),
            };
        }
        s
    }
}

fn conn(outbound: bool) -> ConnectionId {
    if outbound {
        ConnectionId::Outbound
    } else {
        ConnectionId::Inbound
    }
}

/// A NUL-terminated UTF-8 argument; NULL is `None`.
///
/// # Safety
///
/// `ptr` is NULL or a NUL-terminated string that outlives the call.
unsafe fn text<'a>(ptr: *const c_char) -> Result<Option<&'a str>, vpn_result> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str().map(Some).map_err(|_| VPN_ERR_INVALID_ARGUMENT)
}

fn parse<T: std::str::FromStr>(s: Option<&str>) -> Result<T, vpn_result> {
    s.ok_or(VPN_ERR_NULL_ARGUMENT)?
        .trim()
        .parse()
        .map_err(|_| VPN_ERR_INVALID_ARGUMENT)
}

/// Copies `s` into a fixed C array, truncated on a character boundary and
/// always NUL-terminated.
fn fill<const N: usize>(out: &mut [c_char; N], s: &str) {
    let mut end = s.len().min(N - 1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    for (o, b) in out.iter_mut().zip(&s.as_bytes()[..end]) {
        *o = *b as c_char;
    }
    out[end] = 0;
}

fn state_code(s: State) -> vpn_bgp_state {
    use vpn_bgp_state::*;
    match s {
        State::Idle => VPN_BGP_STATE_IDLE,
        State::Connect => VPN_BGP_STATE_CONNECT,
        State::Active => VPN_BGP_STATE_ACTIVE,
        State::OpenSent => VPN_BGP_STATE_OPEN_SENT,
        State::OpenConfirm => VPN_BGP_STATE_OPEN_CONFIRM,
        State::Established => VPN_BGP_STATE_ESTABLISHED,
    }
}

fn blank_event() -> vpn_bgp_event {
    vpn_bgp_event {
        kind: vpn_bgp_event_kind::VPN_BGP_EVENT_STATE_CHANGED,
        peer: VPN_BGP_PEER_NONE,
        state: vpn_bgp_state::VPN_BGP_STATE_NONE,
        reason: vpn_bgp_down_reason::VPN_BGP_REASON_NONE,
        error_code: 0,
        error_subcode: 0,
        expected_asn: 0,
        received_asn: 0,
        prefix: [0; VPN_BGP_PREFIX_TEXT_LEN],
        next_hop: [0; VPN_BGP_ADDR_TEXT_LEN],
        message: [0; VPN_BGP_MESSAGE_TEXT_LEN],
    }
}

fn event(e: &SpeakerEvent, state: State) -> vpn_bgp_event {
    use vpn_bgp_down_reason::*;
    use vpn_bgp_event_kind::*;
    let mut out = blank_event();
    let message = match e {
        SpeakerEvent::Session { peer, event } => {
            out.peer = u32::from(peer.0);
            out.state = state_code(state);
            match event {
                SessionEvent::StateChanged { from, to } => {
                    out.state = state_code(*to);
                    format!("{from:?} -> {to:?}")
                }
                SessionEvent::Established { peer_id, hold_time } => {
                    out.kind = VPN_BGP_EVENT_ESTABLISHED;
                    out.state = vpn_bgp_state::VPN_BGP_STATE_ESTABLISHED;
                    format!("established with {peer_id}, hold time {hold_time} s")
                }
                SessionEvent::Down {
                    reason,
                    graceful_restart,
                } => {
                    out.kind = VPN_BGP_EVENT_DOWN;
                    out.reason = match reason {
                        DownReason::AdminDown => VPN_BGP_REASON_ADMIN_DOWN,
                        DownReason::HoldTimerExpired => VPN_BGP_REASON_HOLD_TIMER_EXPIRED,
                        DownReason::NotificationReceived { code, subcode, .. } => {
                            out.error_code = code.0;
                            out.error_subcode = *subcode;
                            VPN_BGP_REASON_NOTIFICATION_RECEIVED
                        }
                        DownReason::NotificationSent { code, subcode, .. } => {
                            out.error_code = code.0;
                            out.error_subcode = *subcode;
                            VPN_BGP_REASON_NOTIFICATION_SENT
                        }
                        DownReason::BadPeerAs { expected, received } => {
                            out.expected_asn = *expected;
                            out.received_asn = *received;
                            VPN_BGP_REASON_BAD_PEER_AS
                        }
                        DownReason::ConnectionClosed => VPN_BGP_REASON_CONNECTION_CLOSED,
                        DownReason::MaxPrefixesExceeded { .. } => VPN_BGP_REASON_MAX_PREFIXES,
                    };
                    let mut m = reason.to_string();
                    if *graceful_restart {
                        m.push_str(" (graceful restart: routes kept as stale)");
                    }
                    m
                }
                SessionEvent::EndOfRib { afi, safi } => {
                    out.kind = VPN_BGP_EVENT_END_OF_RIB;
                    format!("End-of-RIB for {}", family_name(*afi, *safi))
                }
                SessionEvent::StaleRoutesExpired => {
                    out.kind = VPN_BGP_EVENT_STALE_ROUTES_EXPIRED;
                    "stale routes expired".to_owned()
                }
                SessionEvent::RouteRefreshRequested { afi, safi } => {
                    out.kind = VPN_BGP_EVENT_ROUTE_REFRESH_REQUESTED;
                    format!("route refresh requested for {}", family_name(*afi, *safi))
                }
            }
        }
        SpeakerEvent::Route(r) => {
            let (kind, prefix, route) = match r {
                RouteEvent::BestAdded { prefix, route } => {
                    (VPN_BGP_EVENT_ROUTE_ADDED, prefix, Some(route))
                }
                RouteEvent::BestChanged { prefix, route } => {
                    (VPN_BGP_EVENT_ROUTE_CHANGED, prefix, Some(route))
                }
                RouteEvent::BestWithdrawn { prefix } => {
                    (VPN_BGP_EVENT_ROUTE_WITHDRAWN, prefix, None)
                }
            };
            out.kind = kind;
            fill(&mut out.prefix, &prefix.to_string());
            if let Some(route) = route {
                if let RouteSource::Peer(p) = route.source {
                    out.peer = u32::from(p.0);
                }
                if let Some(nh) = route.next_hop {
                    fill(&mut out.next_hop, &nh.to_string());
                }
            }
            match route.and_then(|r| r.next_hop) {
                Some(nh) => format!("{prefix} via {nh}"),
                None => prefix.to_string(),
            }
        }
        SpeakerEvent::OutboundCapReached { peer, cap, wanted } => {
            out.kind = VPN_BGP_EVENT_OUTBOUND_CAP_REACHED;
            out.peer = u32::from(peer.0);
            format!("{wanted} prefixes qualify, only the first {cap} are announced")
        }
    };
    fill(&mut out.message, &message);
    out
}

/// Builds the core neighbour config.
///
/// # Safety
///
/// String pointers in `c` are NULL or NUL-terminated strings.
unsafe fn neighbor_config(
    speaker: &SpeakerConfig,
    c: &vpn_bgp_neighbor_config,
) -> Result<NeighborConfig, vpn_result> {
    // SAFETY: per the caller's contract.
    let peer_addr: IpAddr = parse(unsafe { text(c.peer_address) }?)?;
    // SAFETY: per the caller's contract.
    let local_addr = match unsafe { text(c.local_address) }? {
        None => IpAddr::V4(speaker.router_id),
        Some(s) => parse(Some(s))?,
    };
    let mut s = SessionConfig::new(
        speaker.asn,
        speaker.router_id,
        c.peer_asn,
        local_addr,
        peer_addr,
    );
    if c.passive {
        s.mode = ConnectMode::Passive;
    }
    if c.hold_time != 0 {
        s.hold_time = c.hold_time;
    }
    let policy = match c.policy {
        VPN_BGP_POLICY_DEFAULT => None,
        VPN_BGP_POLICY_ALL => Some(Policy::accept_all()),
        VPN_BGP_POLICY_NONE => Some(Policy::reject_all()),
        _ => return Err(VPN_ERR_INVALID_CONFIG),
    };
    let mut n = NeighborConfig::new(s);
    n.import = policy.clone();
    n.export = policy;
    Ok(n)
}

/// Borrows the speaker behind a handle for a mutating call.
///
/// # Safety
///
/// `s` is NULL or a live handle from `vpn_bgp_speaker_new` not used concurrently.
unsafe fn speaker_mut<'a>(s: *mut vpn_bgp_speaker) -> Result<&'a mut vpn_bgp_speaker, vpn_result> {
    // SAFETY: per the caller's contract a non-NULL `s` came from
    // `Box::into_raw` in `vpn_bgp_speaker_new`, is live and is not aliased.
    unsafe { s.as_mut() }.ok_or(VPN_ERR_NULL_ARGUMENT)
}

/// Creates a speaker with no neighbours. Its randomness (timer jitter) comes
/// from the operating system's CSPRNG.
///
/// On success writes a new handle to `*speaker_out`; free it with
/// `vpn_bgp_speaker_free`. Errors: `VPN_ERR_NULL_ARGUMENT`,
/// `VPN_ERR_INVALID_ARGUMENT` (router ID is not a dotted quad),
/// `VPN_ERR_INVALID_CONFIG` (AS 0, router ID 0.0.0.0).
///
/// # Safety
///
/// `config` points to a valid config whose `router_id` is NULL or a
/// NUL-terminated string; `speaker_out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_bgp_speaker_new(
    config: *const vpn_bgp_speaker_config,
    speaker_out: *mut *mut vpn_bgp_speaker,
) -> vpn_result {
    guard(|| {
        non_null(speaker_out)?;
        // SAFETY: a non-NULL `config` points to a valid struct per the contract.
        let c = unsafe { config.as_ref() }.ok_or(VPN_ERR_NULL_ARGUMENT)?;
        // SAFETY: per the contract.
        let router_id: Ipv4Addr = parse(unsafe { text(c.router_id) }?)?;
        if c.local_asn == 0 || router_id.is_unspecified() {
            return Err(VPN_ERR_INVALID_CONFIG);
        }
        let speaker = Speaker::new(
            SpeakerConfig::new(c.local_asn, router_id),
            Box::new(OsEntropy),
        );
        let handle = Box::into_raw(Box::new(vpn_bgp_speaker {
            speaker,
            events: VecDeque::new(),
            pending: None,
        }));
        // SAFETY: `speaker_out` is non-NULL and valid for a write.
        unsafe { speaker_out.write(handle) };
        Ok(())
    })
}

/// Frees a speaker. NULL is ignored.
///
/// # Safety
///
/// `speaker` is NULL or a handle from `vpn_bgp_speaker_new` not used again.
#[no_mangle]
pub unsafe extern "C" fn vpn_bgp_speaker_free(speaker: *mut vpn_bgp_speaker) {
    guard_value((), || {
        if !speaker.is_null() {
            // SAFETY: a non-NULL handle came from `Box::into_raw` and is freed
            // once per the contract.
            drop(unsafe { Box::from_raw(speaker) });
        }
    })
}

/// Adds a neighbour (Idle until `vpn_bgp_speaker_start`) and writes its
/// number to `*peer_out` (0, 1, ... in order of addition).
///
/// Errors: `VPN_ERR_NULL_ARGUMENT`, `VPN_ERR_INVALID_ARGUMENT` (an address
/// does not parse), `VPN_ERR_INVALID_CONFIG` (AS 0, hold time 1 or 2, an
/// unknown policy, too many neighbours).
///
/// # Safety
///
/// `speaker` is a live handle; `config` points to a valid config whose
/// string pointers are NULL or NUL-terminated; `peer_out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_bgp_speaker_add_neighbor(
    speaker: *mut vpn_bgp_speaker,
    config: *const vpn_bgp_neighbor_config,
    peer_out: *mut u32,
) -> vpn_result {
    guard(|| {
        non_null(peer_out)?;
        // SAFETY: per the contract.
        let h = unsafe { speaker_mut(speaker) }?;
        // SAFETY: a non-NULL `config` points to a valid struct per the contract.
        let c = unsafe { config.as_ref() }.ok_or(VPN_ERR_NULL_ARGUMENT)?;
        // SAFETY: string pointers per the contract.
        let n = unsafe { neighbor_config(h.speaker.config(), c) }?;
        let peer = h
            .speaker
            .add_neighbor(n)
            .map_err(|_| VPN_ERR_INVALID_CONFIG)?;
        // SAFETY: `peer_out` is non-NULL and valid for a write.
        unsafe { peer_out.write(u32::from(peer.0)) };
        Ok(())
    })
}

/// Starts a neighbour's session (active neighbours then ask to connect).
/// Errors: `VPN_ERR_NULL_ARGUMENT`, `VPN_ERR_UNKNOWN_PEER`.
///
/// # Safety
///
/// `speaker` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_bgp_speaker_start(
    speaker: *mut vpn_bgp_speaker,
    peer: u32,
    now_ns: u64,
) -> vpn_result {
    guard(|| {
        // SAFETY: per the contract.
        let h = unsafe { speaker_mut(speaker) }?;
        let p = h.peer(peer)?;
        h.speaker.start(Timestamp::from_nanos(now_ns), p);
        h.drain();
        Ok(())
    })
}

/// Stops a neighbour's session with an RFC 9003 shutdown message (`reason`,
/// NULL for none). Errors: `VPN_ERR_NULL_ARGUMENT`, `VPN_ERR_UNKNOWN_PEER`,
/// `VPN_ERR_INVALID_ARGUMENT` (not UTF-8).
///
/// # Safety
///
/// `speaker` is a live handle; `reason` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vpn_bgp_speaker_stop(
    speaker: *mut vpn_bgp_speaker,
    peer: u32,
    now_ns: u64,
    reason: *const c_char,
) -> vpn_result {
    guard(|| {
        // SAFETY: per the contract.
        let h = unsafe { speaker_mut(speaker) }?;
        let p = h.peer(peer)?;
        // SAFETY: per the contract.
        let reason = unsafe { text(reason) }?.unwrap_or_default();
        h.speaker.stop(Timestamp::from_nanos(now_ns), p, reason);
        h.drain();
        Ok(())
    })
}

/// Originates a prefix ("10.1.0.0/16", "2001:db8::/32") with ORIGIN IGP.
/// `next_hop` (same family, or NULL) is what the Loc-RIB shows; neighbours
/// get the next hop rewritten to our address as usual. Announcing again
/// replaces the route. Errors: `VPN_ERR_NULL_ARGUMENT`,
/// `VPN_ERR_INVALID_ARGUMENT` (unparsable prefix or address, host bits set,
/// mixed families).
///
/// # Safety
///
/// `speaker` is a live handle; `prefix` is a NUL-terminated string;
/// `next_hop` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vpn_bgp_speaker_announce(
    speaker: *mut vpn_bgp_speaker,
    prefix: *const c_char,
    next_hop: *const c_char,
) -> vpn_result {
    guard(|| {
        // SAFETY: per the contract.
        let h = unsafe { speaker_mut(speaker) }?;
        // SAFETY: per the contract.
        let prefix = unsafe { text(prefix) }?.ok_or(VPN_ERR_NULL_ARGUMENT)?;
        let prefix = parse_prefix(prefix).ok_or(VPN_ERR_INVALID_ARGUMENT)?;
        // SAFETY: per the contract.
        let nh = unsafe { text(next_hop) }?
            .map(|s| parse::<IpAddr>(Some(s)))
            .transpose()?;
        let attrs = originated_attributes(prefix, nh).ok_or(VPN_ERR_INVALID_ARGUMENT)?;
        h.speaker.announce(prefix, attrs);
        h.drain();
        Ok(())
    })
}

/// Parses "address/length", refusing host bits set past the length.
pub(crate) fn parse_prefix(s: &str) -> Option<IpPrefix> {
    let s = s.trim();
    let p = IpPrefix::parse(s)?;
    let addr: IpAddr = s.split_once('/')?.0.parse().ok()?;
    let network = match p {
        IpPrefix::V4(p) => IpAddr::V4(p.addr()),
        IpPrefix::V6(p) => IpAddr::V6(p.addr()),
    };
    (addr == network).then_some(p)
}

/// Stops originating a prefix (no effect if it was not announced).
/// Errors: `VPN_ERR_NULL_ARGUMENT`, `VPN_ERR_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `speaker` is a live handle; `prefix` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vpn_bgp_speaker_withdraw(
    speaker: *mut vpn_bgp_speaker,
    prefix: *const c_char,
) -> vpn_result {
    guard(|| {
        // SAFETY: per the contract.
        let h = unsafe { speaker_mut(speaker) }?;
        // SAFETY: per the contract.
        let prefix = unsafe { text(prefix) }?.ok_or(VPN_ERR_NULL_ARGUMENT)?;
        let prefix = parse_prefix(prefix).ok_or(VPN_ERR_INVALID_ARGUMENT)?;
        h.speaker.withdraw(prefix);
        h.drain();
        Ok(())
    })
}

/// A TCP connection to the neighbour is up: `outbound` if we opened it
/// (after `VPN_BGP_ACTION_CONNECT`), false if the neighbour connected to us.
/// Errors: `VPN_ERR_NULL_ARGUMENT`, `VPN_ERR_UNKNOWN_PEER`.
///
/// # Safety
///
/// `speaker` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_bgp_speaker_handle_connected(
    speaker: *mut vpn_bgp_speaker,
    peer: u32,
    outbound: bool,
    now_ns: u64,
) -> vpn_result {
    guard(|| {
        // SAFETY: per the contract.
        let h = unsafe { speaker_mut(speaker) }?;
        let p = h.peer(peer)?;
        h.speaker
            .handle_connected(Timestamp::from_nanos(now_ns), p, conn(outbound));
        h.drain();
        Ok(())
    })
}

/// A TCP connection closed, or an outbound attempt failed.
/// Errors: `VPN_ERR_NULL_ARGUMENT`, `VPN_ERR_UNKNOWN_PEER`.
///
/// # Safety
///
/// `speaker` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_bgp_speaker_handle_closed(
    speaker: *mut vpn_bgp_speaker,
    peer: u32,
    outbound: bool,
    now_ns: u64,
) -> vpn_result {
    guard(|| {
        // SAFETY: per the contract.
        let h = unsafe { speaker_mut(speaker) }?;
        let p = h.peer(peer)?;
        // Bytes not yet handed out for that connection go nowhere now.
        if h.pending
            .as_ref()
            .is_some_and(|t| t.peer == p && t.conn == conn(outbound))
        {
            h.pending = None;
        }
        h.speaker
            .handle_connection_closed(Timestamp::from_nanos(now_ns), p, conn(outbound));
        h.drain();
        Ok(())
    })
}

/// Bytes read from a connection (any split of the TCP stream). Malformed
/// input never fails the call: the speaker answers with a NOTIFICATION, asks
/// to close the connection and reports a `VPN_BGP_EVENT_DOWN`.
/// Errors: `VPN_ERR_NULL_ARGUMENT`, `VPN_ERR_UNKNOWN_PEER`.
///
/// # Safety
///
/// `speaker` is a live handle; `data` is valid for `len` bytes of reads (or
/// NULL with `len` 0).
#[no_mangle]
pub unsafe extern "C" fn vpn_bgp_speaker_handle_bytes(
    speaker: *mut vpn_bgp_speaker,
    peer: u32,
    outbound: bool,
    now_ns: u64,
    data: *const u8,
    len: usize,
) -> vpn_result {
    guard(|| {
        // SAFETY: per the contract.
        let h = unsafe { speaker_mut(speaker) }?;
        let p = h.peer(peer)?;
        // SAFETY: valid for reads per the contract.
        let data = unsafe { in_slice(data, len) }?;
        h.speaker
            .handle_bytes(Timestamp::from_nanos(now_ns), p, conn(outbound), data);
        h.drain();
        Ok(())
    })
}

/// Runs timers due at `now_ns`; spurious calls are harmless.
/// Errors: `VPN_ERR_NULL_ARGUMENT`.
///
/// # Safety
///
/// `speaker` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_bgp_speaker_handle_timeout(
    speaker: *mut vpn_bgp_speaker,
    now_ns: u64,
) -> vpn_result {
    guard(|| {
        // SAFETY: per the contract.
        let h = unsafe { speaker_mut(speaker) }?;
        h.speaker.handle_timeout(Timestamp::from_nanos(now_ns));
        h.drain();
        Ok(())
    })
}

/// Takes the next bytes to write to a neighbour's connection: whole BGP
/// messages, at most `VPN_BGP_MAX_TRANSMIT` bytes.
///
/// On success writes them to `buf`, their length to `*out_n`, the neighbour
/// to `*peer` and the connection to `*outbound`. When nothing is waiting,
/// returns `VPN_OK` with `*out_n` = 0 (`*peer` and `*outbound` untouched). If
/// `len` is too small, writes the size needed to `*out_n`, keeps the bytes
/// queued and returns `VPN_ERR_BUFFER_TOO_SMALL`.
///
/// # Safety
///
/// `speaker` is a live handle; `buf` is valid for `len` bytes of writes (or
/// NULL with `len` 0); `out_n`, `peer` and `outbound` are valid for writes.
#[no_mangle]
pub unsafe extern "C" fn vpn_bgp_speaker_poll_transmit(
    speaker: *mut vpn_bgp_speaker,
    buf: *mut u8,
    len: usize,
    out_n: *mut usize,
    peer: *mut u32,
    outbound: *mut bool,
) -> vpn_result {
    guard(|| {
        non_null(out_n)?;
        non_null(peer)?;
        non_null(outbound)?;
        // SAFETY: per the contract.
        let h = unsafe { speaker_mut(speaker) }?;
        // SAFETY: valid for writes per the contract.
        let buf = unsafe { out_slice(buf, len) }?;
        if h.pending.as_ref().is_none_or(|t| t.pos >= t.data.len()) {
            let mut data = Vec::new();
            h.pending = h
                .speaker
                .poll_transmit(&mut data)
                .map(|(peer, conn)| Pending {
                    peer,
                    conn,
                    data,
                    pos: 0,
                });
            // Building UPDATEs can report an outbound cap.
            h.drain();
        }
        let Some(t) = h.pending.as_mut() else {
            // SAFETY: `out_n` is non-NULL and valid for a write.
            unsafe { out_n.write(0) };
            return Ok(());
        };
        let n = t.chunk_len();
        // SAFETY: as above.
        unsafe { out_n.write(n) };
        if buf.len() < n {
            return Err(VPN_ERR_BUFFER_TOO_SMALL);
        }
        buf[..n].copy_from_slice(&t.data[t.pos..t.pos + n]);
        t.pos += n;
        // SAFETY: `peer` and `outbound` are non-NULL and valid for writes.
        unsafe {
            peer.write(u32::from(t.peer.0));
            outbound.write(t.conn == ConnectionId::Outbound);
        }
        if t.pos >= t.data.len() {
            h.pending = None;
        }
        Ok(())
    })
}

/// Takes the next connect/close request. Returns true if one was written to
/// `*peer`, `*action` and `*outbound` (which connection to close; true for
/// CONNECT), false if none is pending (or an argument is NULL).
///
/// # Safety
///
/// `speaker` is NULL or a live handle; the out pointers are NULL or valid for
/// writes.
#[no_mangle]
pub unsafe extern "C" fn vpn_bgp_speaker_poll_action(
    speaker: *mut vpn_bgp_speaker,
    peer: *mut u32,
    action: *mut vpn_bgp_action,
    outbound: *mut bool,
) -> bool {
    guard_value(false, || {
        if peer.is_null() || action.is_null() || outbound.is_null() {
            return false;
        }
        // SAFETY: per the contract.
        let Ok(h) = (unsafe { speaker_mut(speaker) }) else {
            return false;
        };
        let Some((p, a)) = h.speaker.poll_action() else {
            return false;
        };
        let (a, o) = match a {
            Action::Connect => (vpn_bgp_action::VPN_BGP_ACTION_CONNECT, true),
            Action::Close(c) => (
                vpn_bgp_action::VPN_BGP_ACTION_CLOSE,
                c == ConnectionId::Outbound,
            ),
        };
        // SAFETY: all three are non-NULL and valid for writes.
        unsafe {
            peer.write(u32::from(p.0));
            action.write(a);
            outbound.write(o);
        }
        true
    })
}

/// Takes the next event into `*out`. Returns true if one was written, false
/// if none is pending (or an argument is NULL).
///
/// # Safety
///
/// `speaker` is NULL or a live handle; `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_bgp_speaker_poll_event(
    speaker: *mut vpn_bgp_speaker,
    out: *mut vpn_bgp_event,
) -> bool {
    guard_value(false, || {
        if out.is_null() {
            return false;
        }
        // SAFETY: per the contract.
        let Ok(h) = (unsafe { speaker_mut(speaker) }) else {
            return false;
        };
        let Some((e, state)) = h.events.pop_front() else {
            return false;
        };
        // SAFETY: `out` is non-NULL and valid for a write.
        unsafe { out.write(event(&e, state)) };
        true
    })
}

/// The next instant (ns) at which `vpn_bgp_speaker_handle_timeout` must be
/// called, or `UINT64_MAX` if none (also if `speaker` is NULL).
///
/// # Safety
///
/// `speaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_bgp_speaker_poll_timeout(speaker: *const vpn_bgp_speaker) -> u64 {
    guard_value(u64::MAX, || {
        // SAFETY: per the contract.
        unsafe { speaker.as_ref() }
            .and_then(|h| h.speaker.poll_timeout())
            .map_or(u64::MAX, Timestamp::as_nanos)
    })
}

/// A neighbour's session state into `*state`.
/// Errors: `VPN_ERR_NULL_ARGUMENT`, `VPN_ERR_UNKNOWN_PEER`.
///
/// # Safety
///
/// `speaker` is a live handle; `state` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_bgp_speaker_peer_state(
    speaker: *const vpn_bgp_speaker,
    peer: u32,
    state: *mut vpn_bgp_state,
) -> vpn_result {
    guard(|| {
        non_null(state)?;
        // SAFETY: per the contract.
        let h = unsafe { speaker.as_ref() }.ok_or(VPN_ERR_NULL_ARGUMENT)?;
        let p = h.peer(peer)?;
        let s = h.speaker.session(p).map_or(State::Idle, |s| s.state());
        // SAFETY: `state` is non-NULL and valid for a write.
        unsafe { state.write(state_code(s)) };
        Ok(())
    })
}

/// Writes the Loc-RIB as NUL-terminated text, one "prefix next_hop\n" line
/// per route in prefix order ("-" when a route has no next hop).
///
/// On success `*out_n` is the text's length without the NUL. If `len` is
/// smaller than the text plus its NUL, writes nothing to `buf`, writes the
/// size needed (with the NUL) to `*out_n` and returns
/// `VPN_ERR_BUFFER_TOO_SMALL`.
///
/// # Safety
///
/// `speaker` is a live handle; `buf` is valid for `len` bytes of writes (or
/// NULL with `len` 0); `out_n` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_bgp_speaker_rib(
    speaker: *const vpn_bgp_speaker,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> vpn_result {
    guard(|| {
        non_null(out_n)?;
        // SAFETY: per the contract.
        let h = unsafe { speaker.as_ref() }.ok_or(VPN_ERR_NULL_ARGUMENT)?;
        // SAFETY: per the contract.
        unsafe { write_c_str(&h.rib_text(), buf.cast(), len, out_n) }
    })
}

/// Number of routes in the Loc-RIB (0 if `speaker` is NULL).
///
/// # Safety
///
/// `speaker` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_bgp_speaker_rib_len(speaker: *const vpn_bgp_speaker) -> usize {
    guard_value(0, || {
        // SAFETY: per the contract.
        unsafe { speaker.as_ref() }.map_or(0, |h| h.speaker.loc_rib_len())
    })
}

#[cfg(test)]
mod tests {
    //! The C entry points called from Rust as a C caller would: two speakers
    //! wired back to back on a fake clock.

    use core::ptr::{null, null_mut};

    use super::*;

    const CGW: u32 = 65000;
    const AWS: u32 = 64512;

    struct S(*mut vpn_bgp_speaker);

    impl Drop for S {
        fn drop(&mut self) {
            // SAFETY: the handle came from `vpn_bgp_speaker_new`, freed once.
            unsafe { vpn_bgp_speaker_free(self.0) }
        }
    }

    fn new_speaker(asn: u32, id: &'static [u8]) -> S {
        let c = vpn_bgp_speaker_config {
            local_asn: asn,
            router_id: id.as_ptr().cast(),
        };
        let mut s = null_mut();
        // SAFETY: valid config and out pointer.
        assert_eq!(unsafe { vpn_bgp_speaker_new(&c, &mut s) }, VPN_OK);
        S(s)
    }

    fn neighbor(
        peer: &'static [u8],
        local: &'static [u8],
        asn: u32,
        passive: bool,
    ) -> vpn_bgp_neighbor_config {
        vpn_bgp_neighbor_config {
            peer_address: peer.as_ptr().cast(),
            local_address: local.as_ptr().cast(),
            peer_asn: asn,
            passive,
            hold_time: 0,
            policy: VPN_BGP_POLICY_ALL,
        }
    }

    fn add(s: &S, n: &vpn_bgp_neighbor_config) -> Result<u32, vpn_result> {
        let mut peer = u32::MAX;
        // SAFETY: live handle, valid config and out pointer.
        match unsafe { vpn_bgp_speaker_add_neighbor(s.0, n, &mut peer) } {
            VPN_OK => Ok(peer),
            e => Err(e),
        }
    }

    /// CGW (active) and AWS (passive), each with one neighbour (number 0).
    fn pair(aws_expects: u32) -> (S, S) {
        let a = new_speaker(CGW, b"10.0.0.1\0");
        let b = new_speaker(AWS, b"10.0.0.2\0");
        assert_eq!(
            add(
                &a,
                &neighbor(b"169.254.10.1\0", b"169.254.10.2\0", AWS, false)
            ),
            Ok(0)
        );
        assert_eq!(
            add(
                &b,
                &neighbor(b"169.254.10.2\0", b"169.254.10.1\0", aws_expects, true)
            ),
            Ok(0)
        );
        (a, b)
    }

    fn events(s: &S) -> Vec<vpn_bgp_event> {
        let mut out = Vec::new();
        let mut e = blank_event();
        // SAFETY: live handle, valid out pointer.
        while unsafe { vpn_bgp_speaker_poll_event(s.0, &mut e) } {
            out.push(e);
        }
        out
    }

    fn text(a: &[c_char]) -> String {
        let bytes: Vec<u8> = a
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8(bytes).unwrap()
    }

    /// Moves bytes and actions between the two until nothing moves; returns
    /// each side's events.
    fn drive(a: &S, b: &S, now: u64, ev: &mut [Vec<vpn_bgp_event>; 2]) {
        let sides = [a, b];
        for _ in 0..1000 {
            let mut progress = false;
            for (i, s) in sides.iter().enumerate() {
                let other = sides[1 - i];
                let mut buf = vec![0u8; VPN_BGP_MAX_TRANSMIT];
                loop {
                    let (mut n, mut peer, mut outbound) = (0usize, u32::MAX, false);
                    // SAFETY: live handle, valid buffers.
                    let r = unsafe {
                        vpn_bgp_speaker_poll_transmit(
                            s.0,
                            buf.as_mut_ptr(),
                            buf.len(),
                            &mut n,
                            &mut peer,
                            &mut outbound,
                        )
                    };
                    assert_eq!(r, VPN_OK);
                    if n == 0 {
                        break;
                    }
                    progress = true;
                    // SAFETY: as above.
                    let r = unsafe {
                        vpn_bgp_speaker_handle_bytes(other.0, 0, !outbound, now, buf.as_ptr(), n)
                    };
                    assert_eq!(r, VPN_OK);
                }
                let (mut peer, mut action, mut outbound) =
                    (0u32, vpn_bgp_action::VPN_BGP_ACTION_CLOSE, false);
                // SAFETY: live handle, valid out pointers.
                while unsafe {
                    vpn_bgp_speaker_poll_action(s.0, &mut peer, &mut action, &mut outbound)
                } {
                    progress = true;
                    // SAFETY: live handles.
                    unsafe {
                        match action {
                            vpn_bgp_action::VPN_BGP_ACTION_CONNECT => {
                                vpn_bgp_speaker_handle_connected(s.0, peer, true, now);
                                vpn_bgp_speaker_handle_connected(other.0, 0, false, now);
                            }
                            vpn_bgp_action::VPN_BGP_ACTION_CLOSE => {
                                vpn_bgp_speaker_handle_closed(s.0, peer, outbound, now);
                                vpn_bgp_speaker_handle_closed(other.0, 0, !outbound, now);
                            }
                        }
                    }
                }
                ev[i].extend(events(s));
            }
            if !progress {
                return;
            }
        }
        panic!("did not settle");
    }

    /// Runs timers and traffic for `secs` seconds of fake time from `*now`.
    fn run(a: &S, b: &S, now: &mut u64, secs: u64, ev: &mut [Vec<vpn_bgp_event>; 2]) {
        let end = *now + secs * 1_000_000_000;
        drive(a, b, *now, ev);
        loop {
            // SAFETY: live handles.
            let t =
                unsafe { vpn_bgp_speaker_poll_timeout(a.0).min(vpn_bgp_speaker_poll_timeout(b.0)) };
            if t > end {
                break;
            }
            *now = (*now).max(t);
            // SAFETY: live handles.
            unsafe {
                assert_eq!(vpn_bgp_speaker_handle_timeout(a.0, *now), VPN_OK);
                assert_eq!(vpn_bgp_speaker_handle_timeout(b.0, *now), VPN_OK);
            }
            drive(a, b, *now, ev);
        }
        *now = end;
    }

    fn rib(s: &S) -> String {
        let mut n = 0usize;
        // SAFETY: (NULL, 0) asks for the size.
        let r = unsafe { vpn_bgp_speaker_rib(s.0, null_mut(), 0, &mut n) };
        assert_eq!(r, VPN_ERR_BUFFER_TOO_SMALL);
        let mut buf = vec![0 as c_char; n];
        let mut m = 0usize;
        // SAFETY: buffer of `n` bytes.
        let r = unsafe { vpn_bgp_speaker_rib(s.0, buf.as_mut_ptr(), n, &mut m) };
        assert_eq!(r, VPN_OK);
        assert_eq!(m + 1, n);
        text(&buf)
    }

    #[test]
    fn back_to_back_speakers_establish_and_exchange_routes() {
        let (a, b) = pair(CGW);
        // SAFETY: live handles, NUL-terminated strings.
        unsafe {
            assert_eq!(
                vpn_bgp_speaker_announce(a.0, c"10.1.0.0/16".as_ptr(), c"169.254.10.2".as_ptr()),
                VPN_OK
            );
            assert_eq!(
                vpn_bgp_speaker_announce(b.0, c"172.31.0.0/16".as_ptr(), null()),
                VPN_OK
            );
            assert_eq!(vpn_bgp_speaker_start(a.0, 0, 0), VPN_OK);
            assert_eq!(vpn_bgp_speaker_start(b.0, 0, 0), VPN_OK);
        }
        let mut ev = [Vec::new(), Vec::new()];
        let mut now = 0;
        run(&a, &b, &mut now, 5, &mut ev);
        for (i, e) in ev.iter().enumerate() {
            assert!(
                e.iter()
                    .any(|e| e.kind == vpn_bgp_event_kind::VPN_BGP_EVENT_ESTABLISHED
                        && e.peer == 0
                        && e.state == vpn_bgp_state::VPN_BGP_STATE_ESTABLISHED),
                "side {i} not established: {e:?}"
            );
        }
        let added = ev[0]
            .iter()
            .find(|e| {
                e.kind == vpn_bgp_event_kind::VPN_BGP_EVENT_ROUTE_ADDED
                    && text(&e.prefix) == "172.31.0.0/16"
            })
            .expect("CGW learned AWS's route");
        assert_eq!(added.peer, 0);
        assert_eq!(text(&added.next_hop), "169.254.10.1");
        assert_eq!(
            rib(&a),
            "10.1.0.0/16 169.254.10.2\n172.31.0.0/16 169.254.10.1\n"
        );
        assert_eq!(rib(&b), "10.1.0.0/16 169.254.10.2\n172.31.0.0/16 -\n");
        // SAFETY: live handles.
        unsafe {
            assert_eq!(vpn_bgp_speaker_rib_len(a.0), 2);
            let mut st = vpn_bgp_state::VPN_BGP_STATE_NONE;
            assert_eq!(vpn_bgp_speaker_peer_state(a.0, 0, &mut st), VPN_OK);
            assert_eq!(st, vpn_bgp_state::VPN_BGP_STATE_ESTABLISHED);
            assert_ne!(vpn_bgp_speaker_poll_timeout(a.0), u64::MAX);
            // Withdrawal reaches the other side.
            assert_eq!(
                vpn_bgp_speaker_withdraw(b.0, c"172.31.0.0/16".as_ptr()),
                VPN_OK
            );
        }
        run(&a, &b, &mut now, 1, &mut ev);
        assert_eq!(rib(&a), "10.1.0.0/16 169.254.10.2\n");
        assert!(ev[0].iter().any(
            |e| e.kind == vpn_bgp_event_kind::VPN_BGP_EVENT_ROUTE_WITHDRAWN
                && text(&e.prefix) == "172.31.0.0/16"
        ));
        // Keepalives keep the session up over a long quiet period.
        run(&a, &b, &mut now, 120, &mut ev);
        assert!(!ev[0]
            .iter()
            .any(|e| e.kind == vpn_bgp_event_kind::VPN_BGP_EVENT_DOWN));
    }

    #[test]
    fn wrong_peer_asn_goes_down_naming_both() {
        let (a, b) = pair(64999);
        // SAFETY: live handles.
        unsafe {
            vpn_bgp_speaker_start(a.0, 0, 0);
            vpn_bgp_speaker_start(b.0, 0, 0);
        }
        let mut ev = [Vec::new(), Vec::new()];
        let mut now = 0;
        run(&a, &b, &mut now, 2, &mut ev);
        let down = ev[1]
            .iter()
            .find(|e| e.kind == vpn_bgp_event_kind::VPN_BGP_EVENT_DOWN)
            .expect("AWS side down");
        assert_eq!(down.reason, vpn_bgp_down_reason::VPN_BGP_REASON_BAD_PEER_AS);
        assert_eq!((down.expected_asn, down.received_asn), (64999, CGW));
        let m = text(&down.message);
        assert!(m.contains("64999") && m.contains("65000"), "{m}");
        let down = ev[0]
            .iter()
            .find(|e| e.kind == vpn_bgp_event_kind::VPN_BGP_EVENT_DOWN)
            .expect("CGW side down");
        assert_eq!(
            down.reason,
            vpn_bgp_down_reason::VPN_BGP_REASON_NOTIFICATION_RECEIVED
        );
        assert_eq!((down.error_code, down.error_subcode), (2, 2));
    }

    #[test]
    fn garbage_bytes_get_a_notification_and_a_down_event() {
        let b = new_speaker(AWS, b"10.0.0.2\0");
        assert_eq!(
            add(
                &b,
                &neighbor(b"169.254.10.2\0", b"169.254.10.1\0", CGW, true)
            ),
            Ok(0)
        );
        let garbage = [0x42u8; 64];
        // SAFETY: live handle, valid buffer.
        unsafe {
            assert_eq!(vpn_bgp_speaker_start(b.0, 0, 0), VPN_OK);
            assert_eq!(vpn_bgp_speaker_handle_connected(b.0, 0, false, 0), VPN_OK);
            events(&b);
            // Drop the OPEN we sent.
            let mut buf = vec![0u8; VPN_BGP_MAX_TRANSMIT];
            let (mut n, mut p, mut o) = (0, 0, true);
            vpn_bgp_speaker_poll_transmit(b.0, buf.as_mut_ptr(), buf.len(), &mut n, &mut p, &mut o);
            assert!(n > 0 && !o);
            assert_eq!(
                vpn_bgp_speaker_handle_bytes(b.0, 0, false, 1, garbage.as_ptr(), garbage.len()),
                VPN_OK
            );
            // Too small: size reported, data kept.
            let mut small = [0u8; 4];
            assert_eq!(
                vpn_bgp_speaker_poll_transmit(b.0, small.as_mut_ptr(), 4, &mut n, &mut p, &mut o),
                VPN_ERR_BUFFER_TOO_SMALL
            );
            let needed = n;
            assert_eq!(needed, 21, "a NOTIFICATION with code and subcode");
            assert_eq!(
                vpn_bgp_speaker_poll_transmit(
                    b.0,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut n,
                    &mut p,
                    &mut o
                ),
                VPN_OK
            );
            assert_eq!(n, needed);
            assert_eq!(buf[18], 3, "NOTIFICATION");
            assert_eq!(buf[19], 1, "Message Header Error");
            let (mut act, mut outb) = (vpn_bgp_action::VPN_BGP_ACTION_CONNECT, true);
            assert!(vpn_bgp_speaker_poll_action(
                b.0, &mut p, &mut act, &mut outb
            ));
            assert_eq!((act, outb), (vpn_bgp_action::VPN_BGP_ACTION_CLOSE, false));
        }
        let ev = events(&b);
        let down = ev
            .iter()
            .find(|e| e.kind == vpn_bgp_event_kind::VPN_BGP_EVENT_DOWN)
            .expect("down");
        assert_eq!(
            down.reason,
            vpn_bgp_down_reason::VPN_BGP_REASON_NOTIFICATION_SENT
        );
        assert_eq!(down.error_code, 1);
    }

    #[test]
    fn argument_errors() {
        let s = new_speaker(CGW, b"10.0.0.1\0");
        let mut peer = 0u32;
        let mut out = null_mut();
        // SAFETY: every pointer is NULL or valid; the calls must reject them.
        unsafe {
            assert_eq!(vpn_bgp_speaker_new(null(), &mut out), VPN_ERR_NULL_ARGUMENT);
            let bad = vpn_bgp_speaker_config {
                local_asn: CGW,
                router_id: c"not an address".as_ptr(),
            };
            assert_eq!(
                vpn_bgp_speaker_new(&bad, &mut out),
                VPN_ERR_INVALID_ARGUMENT
            );
            let zero = vpn_bgp_speaker_config {
                local_asn: 0,
                router_id: c"10.0.0.1".as_ptr(),
            };
            assert_eq!(vpn_bgp_speaker_new(&zero, &mut out), VPN_ERR_INVALID_CONFIG);
            assert!(out.is_null());
            let mut n = neighbor(b"bogus\0", b"169.254.10.2\0", AWS, false);
            assert_eq!(
                vpn_bgp_speaker_add_neighbor(s.0, &n, &mut peer),
                VPN_ERR_INVALID_ARGUMENT
            );
            n = neighbor(b"169.254.10.1\0", b"169.254.10.2\0", AWS, false);
            n.hold_time = 2;
            assert_eq!(
                vpn_bgp_speaker_add_neighbor(s.0, &n, &mut peer),
                VPN_ERR_INVALID_CONFIG
            );
            n.hold_time = 0;
            n.policy = 7;
            assert_eq!(
                vpn_bgp_speaker_add_neighbor(s.0, &n, &mut peer),
                VPN_ERR_INVALID_CONFIG
            );
            n.policy = VPN_BGP_POLICY_DEFAULT;
            n.local_address = null();
            assert_eq!(vpn_bgp_speaker_add_neighbor(s.0, &n, &mut peer), VPN_OK);
            assert_eq!(peer, 0);
            assert_eq!(vpn_bgp_speaker_start(s.0, 1, 0), VPN_ERR_UNKNOWN_PEER);
            assert_eq!(
                vpn_bgp_speaker_start(null_mut(), 0, 0),
                VPN_ERR_NULL_ARGUMENT
            );
            assert_eq!(
                vpn_bgp_speaker_handle_bytes(s.0, 0, true, 0, null(), 5),
                VPN_ERR_NULL_ARGUMENT
            );
            assert_eq!(
                vpn_bgp_speaker_announce(s.0, c"10.1.2.3/16".as_ptr(), null()),
                VPN_ERR_INVALID_ARGUMENT
            );
            assert_eq!(
                vpn_bgp_speaker_announce(s.0, c"10.1.0.0/16".as_ptr(), c"2001:db8::1".as_ptr()),
                VPN_ERR_INVALID_ARGUMENT
            );
            assert_eq!(
                vpn_bgp_speaker_announce(s.0, null(), null()),
                VPN_ERR_NULL_ARGUMENT
            );
            assert_eq!(
                vpn_bgp_speaker_announce(s.0, c"2001:db8::/32".as_ptr(), c"2001:db8::1".as_ptr()),
                VPN_OK
            );
            let ev = events(&s);
            // Never started: only the local route.
            assert_eq!(ev.len(), 1);
            assert_eq!(ev[0].kind, vpn_bgp_event_kind::VPN_BGP_EVENT_ROUTE_ADDED);
            assert_eq!(ev[0].peer, VPN_BGP_PEER_NONE);
            assert_eq!(vpn_bgp_speaker_poll_timeout(null()), u64::MAX);
            assert!(!vpn_bgp_speaker_poll_event(s.0, null_mut()));
            let (mut n_, mut p, mut o) = (0usize, 0u32, false);
            assert_eq!(
                vpn_bgp_speaker_poll_transmit(s.0, null_mut(), 0, &mut n_, &mut p, &mut o),
                VPN_OK
            );
            assert_eq!(n_, 0, "nothing to send before start");
            vpn_bgp_speaker_free(null_mut());
        }
        assert_eq!(rib(&s), "2001:db8::/32 2001:db8::1\n");
    }
}
