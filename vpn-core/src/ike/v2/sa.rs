//! An IKEv2 session with one peer (RFC 7296): the current IKE SA, its
//! exchanges and the child SAs it negotiates, as a sans-IO state machine.
//!
//! Shape:
//! - An `IkeSa` is the keyed channel (SPIs, SK ciphers, message IDs). Each
//!   one runs at most one request of ours at a time (window size 1) with
//!   retransmission, and answers the peer's requests in order, caching the
//!   last response so that a retransmitted request gets identical bytes.
//! - The session holds the current IKE SA, an old one while it is being
//!   deleted after a rekey, and the records of the child SAs. It never holds
//!   ESP state: child SA keys leave as [`SessionEvent::ChildInstalled`] and
//!   the owner (the tunnel) builds the ESP SAs.
//! - Outputs are queued: [`Ikev2Session::poll_transmit`] yields IKE messages
//!   (without the NAT-T marker; [`Outgoing::nat_t`] says whether to send
//!   them from and to port 4500), [`Ikev2Session::poll_event`] the events.
//!
//! Exchanges: IKE_SA_INIT (with COOKIE and INVALID_KE_PAYLOAD retries,
//! NAT detection), IKE_AUTH with PSK and the first child SA (`initial`),
//! CREATE_CHILD_SA (child SA rekey with optional PFS, IKE SA rekey, their
//! collisions) and INFORMATIONAL (DELETE, liveness checks) (`rekey`). This
//! file holds the types, timers, retransmission and message dispatch.

use core::time::Duration;
use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::config::{DpdAction, StartupAction};

/// Pause before a session that must stay up tries an unreachable peer again.
const RECONNECT_AFTER: core::time::Duration = core::time::Duration::from_secs(10);
use crate::crypto::kdf::{rekey_skeyseed, skeyseed, ChildSaKeys, IkeSaKeys};
use crate::crypto::{DhGroup, KeyPair, SecretBytes};
use crate::entropy::Entropy;
use crate::ike::proposal::{
    accept_esp_reply, accept_ike_reply, describe_offer, format_list, select_esp, select_ike,
    NegotiatedEsp, NegotiatedIke,
};
use crate::ike::v2::auth::{auth_matches, cookie, nat_detection_hash, psk_auth};
use crate::ike::v2::settings::Ikev2Settings;
use crate::ike::v2::sk::SkCiphers;
use crate::ike::v2::ts::{self, Selector};
use crate::ike::v2::wire::{
    AuthMethod, AuthPayload, DeletePayload, ExchangeType, Flags, Header, KePayload, Message,
    NotifyPayload, NotifyType, Payload, PayloadsExt, ProtocolId, SaPayload,
};
use crate::time::Timestamp;
use crate::tunnel::DownReason;

/// Nonce length we send (RFC 7296 §2.10: at least half the PRF key size, ≥ 16).
const NONCE_LEN: usize = 32;
/// How long a half-open IKE SA waits for IKE_AUTH.
const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// A rekey the peer refused (other than TEMPORARY_FAILURE) is tried again
/// after this long, until the SA expires.
const REKEY_RETRY_AFTER_ERROR: Duration = Duration::from_secs(30);
/// Retries of IKE_SA_INIT after COOKIE or INVALID_KE_PAYLOAD answers.
const MAX_INIT_RETRIES: u32 = 5;

/// An IKE message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The IKE message, without the non-ESP marker.
    pub bytes: Vec<u8>,
    /// Send from and to port 4500 (with the non-ESP marker).
    pub nat_t: bool,
    /// Answer to this address (a response goes where its request came from);
    /// `None`: the peer's current address.
    pub to: Option<SocketAddr>,
}

/// Keys and parameters of a negotiated child SA, for the owner to build the
/// two ESP SAs. `Debug` shows no key bytes.
#[derive(Debug)]
pub struct ChildParams {
    pub inbound_spi: u32,
    pub outbound_spi: u32,
    pub esp: NegotiatedEsp,
    pub keys: ChildSaKeys,
    /// We initiated the exchange that created the SA: our outbound SA uses
    /// the initiator's keys (encr_i, integ_i).
    pub initiator: bool,
    pub local_ts: Vec<Selector>,
    pub remote_ts: Vec<Selector>,
    /// Age at which the owner asks for a rekey (time soft limit).
    pub soft_time: Duration,
    /// Age at which the SA dies.
    pub hard_time: Duration,
}

/// What a session reports to its owner.
#[derive(Debug)]
pub enum SessionEvent {
    /// The IKE SA is authenticated.
    IkeEstablished { spi_i: u64, spi_r: u64 },
    /// NAT detection result (after IKE_SA_INIT): `local`: we are behind a NAT
    /// (or pretend to be), `remote`: the peer is.
    NatDetected { local: bool, remote: bool },
    /// A child SA to install; `replaces` is the inbound SPI of the child it
    /// rekeys (keep the old inbound SA a little longer, stop using the old
    /// outbound one).
    ChildInstalled {
        params: Box<ChildParams>,
        replaces: Option<u32>,
    },
    /// The child SA with this inbound SPI is gone.
    ChildDeleted { inbound_spi: u32 },
    /// The IKE SA was replaced.
    IkeRekeyed {
        old_spi_i: u64,
        old_spi_r: u64,
        spi_i: u64,
        spi_r: u64,
    },
    /// The session is down (and idle, or restarting after DPD `restart`).
    Down(DownReason),
    /// After DPD `restart`: a new IKE SA is being negotiated.
    Restarting,
    /// A liveness check went unanswered and the DPD action is `none`: the
    /// SAs stay.
    DeadPeer,
    /// Our liveness check was answered.
    DpdOk,
    /// A new IKE SA attempt failed while an established one stays up.
    Rejected(DownReason),
}

/// Phase of the session, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IkeState {
    /// No IKE SA.
    Idle,
    /// IKE_SA_INIT sent or answered.
    SaInit,
    /// IKE_AUTH sent.
    Auth,
    /// Authenticated.
    Established,
    /// IKE SA rekey in progress.
    Rekeying,
}

/// A child SA as the session tracks it (keys live in the ESP SAs).
#[derive(Debug, Clone)]
struct ChildRec {
    inbound_spi: u32,
    outbound_spi: u32,
    local_ts: Vec<Selector>,
    remote_ts: Vec<Selector>,
    /// Replaced by a rekey; waiting for its DELETE exchange.
    rekeyed: bool,
    /// The peer rekeyed this child while our own rekey was running: the
    /// inbound SPI of the child that exchange created and its lowest nonce.
    peer_rekey: Option<(u32, Vec<u8>)>,
    /// Our rekey of this child is outstanding.
    rekeying: bool,
}

/// What our outstanding request is about.
enum Pending {
    SaInit {
        dh: KeyPair,
        cookie: Option<Vec<u8>>,
        retries: u32,
    },
    Auth {
        child_spi: u32,
    },
    RekeyChild {
        old_inbound: u32,
        new_inbound: u32,
        ni: Vec<u8>,
        dh: Option<KeyPair>,
    },
    RekeyIke {
        new_spi: u64,
        ni: Vec<u8>,
        dh: KeyPair,
    },
    DeleteChild,
    DeleteIke,
    Dpd,
}

struct Request {
    msg_id: u32,
    bytes: Vec<u8>,
    nat_t: bool,
    sends: u32,
    next_at: Timestamp,
    give_up_at: Option<Timestamp>,
    pending: Pending,
}

struct Keys {
    neg: NegotiatedIke,
    sk_d: SecretBytes,
    sk_pi: SecretBytes,
    sk_pr: SecretBytes,
    sk: SkCiphers,
}

/// One IKE SA.
struct IkeSa {
    spi_i: u64,
    spi_r: u64,
    /// We are the initiator of this IKE SA (original, or of its rekey).
    initiator: bool,
    ni: Vec<u8>,
    nr: Vec<u8>,
    init_request: Vec<u8>,
    init_response: Vec<u8>,
    keys: Option<Keys>,
    established: bool,
    next_msg_id: u32,
    expected_peer_id: u32,
    request: Option<Request>,
    last_response: Option<(u32, Vec<u8>)>,
    rekey_at: Option<Timestamp>,
    expire_at: Option<Timestamp>,
    half_open_until: Option<Timestamp>,
}

impl IkeSa {
    fn new(spi_i: u64, spi_r: u64, initiator: bool) -> IkeSa {
        IkeSa {
            spi_i,
            spi_r,
            initiator,
            ni: Vec::new(),
            nr: Vec::new(),
            init_request: Vec::new(),
            init_response: Vec::new(),
            keys: None,
            established: false,
            next_msg_id: 0,
            expected_peer_id: 0,
            request: None,
            last_response: None,
            rekey_at: None,
            expire_at: None,
            half_open_until: None,
        }
    }

    fn header(&self, exchange: ExchangeType, response: bool, msg_id: u32) -> Header {
        Header::new(
            self.spi_i,
            self.spi_r,
            exchange,
            Flags::new(self.initiator, response),
            msg_id,
        )
    }

    fn seal(
        &self,
        exchange: ExchangeType,
        response: bool,
        msg_id: u32,
        payloads: &[Payload],
        entropy: &mut dyn Entropy,
    ) -> Option<Vec<u8>> {
        let keys = self.keys.as_ref()?;
        let header = self.header(exchange, response, msg_id);
        keys.sk
            .outbound
            .seal_payloads(&header, payloads, entropy)
            .ok()
    }
}

/// Counters and status for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStatus {
    pub ike_established: bool,
    pub children: usize,
    pub nat_local: bool,
    pub nat_remote: bool,
    pub nat_t: bool,
    pub dpd_outstanding: bool,
    pub retransmits: u64,
    pub ike_rekeys: u64,
    pub child_rekeys: u64,
}

/// The IKEv2 state machine for one peer.
pub struct Ikev2Session {
    settings: Ikev2Settings,
    local: SocketAddr,
    remote: SocketAddr,
    local_ts: Vec<Selector>,
    remote_ts: Vec<Selector>,
    ike: Option<IkeSa>,
    /// The previous IKE SA after a rekey, until its DELETE exchange ends.
    old_ike: Option<IkeSa>,
    children: Vec<ChildRec>,
    /// Secret for stateless cookies.
    cookie_secret: [u8; 32],
    nat_local: bool,
    nat_remote: bool,
    /// IKE has moved to port 4500.
    nat_t: bool,
    last_inbound: Timestamp,
    /// Retry of a rekey that met TEMPORARY_FAILURE or a busy window.
    child_rekey_retry: Vec<(u32, Timestamp)>,
    ike_rekey_retry: Option<Timestamp>,
    transmits: VecDeque<Outgoing>,
    events: VecDeque<SessionEvent>,
    status: SessionStatus,
    active: bool,
    /// Set while answering a request that ends the session: applied once
    /// the answer is queued.
    pending_failure: Option<DownReason>,
    /// Our inbound SPIs of child SAs to delete when the window is free.
    delete_queue: Vec<u32>,
    /// The peer deleted the old IKE SA: drop it after answering.
    old_deleted: bool,
    /// The IKE SA the peer's rekey created while ours was running.
    collided_ike: Option<IkeSa>,
    /// Key exchange groups the peer asked for with INVALID_KE_PAYLOAD in
    /// a child SA (PFS) or IKE SA rekey.
    pfs_group: Option<DhGroup>,
    ike_rekey_group: Option<DhGroup>,
    /// When an IKE SA replaced by reauthentication is dropped if the peer
    /// has not deleted it.
    old_ike_until: Option<Timestamp>,
    /// When to try again after the peer could not be reached, for a session
    /// that must stay up (startup action `start`, or DPD action `restart`):
    /// like strongSwan with `keyingtries = 0`, it never gives up.
    reconnect_at: Option<Timestamp>,
    /// Where the peer's IKE messages on port 500 and 4500 come from.
    peer_500: SocketAddr,
    peer_4500: SocketAddr,
}

impl core::fmt::Debug for Ikev2Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ikev2Session")
            .field("state", &self.state())
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

fn random_spi64(entropy: &mut dyn Entropy) -> u64 {
    loop {
        let s = entropy.next_u64();
        if s != 0 {
            return s;
        }
    }
}

fn random_esp_spi(entropy: &mut dyn Entropy) -> u32 {
    loop {
        let s = entropy.next_u32();
        if s >= 256 {
            return s;
        }
    }
}

fn nonce(entropy: &mut dyn Entropy) -> Vec<u8> {
    let mut n = vec![0u8; NONCE_LEN];
    entropy.fill(&mut n);
    n
}

fn notify(t: NotifyType) -> Payload {
    Payload::Notify(NotifyPayload::new(t, Vec::new()))
}

fn error_notify(payloads: &[Payload]) -> Option<NotifyType> {
    payloads
        .notifies()
        .into_iter()
        .map(|n| n.notify_type)
        .find(|t| t.is_error())
}

/// The group of an INVALID_KE_PAYLOAD notify's data, if we know it.
fn requested_group(data: &[u8]) -> Option<DhGroup> {
    <[u8; 2]>::try_from(data)
        .ok()
        .map(u16::from_be_bytes)
        .and_then(DhGroup::from_id)
}

fn valid_nonce(n: Option<&[u8]>) -> Option<Vec<u8>> {
    n.filter(|n| (16..=256).contains(&n.len()))
        .map(<[u8]>::to_vec)
}

impl Ikev2Session {
    pub fn new(
        settings: Ikev2Settings,
        local: SocketAddr,
        remote: SocketAddr,
        local_ts: Vec<Selector>,
        remote_ts: Vec<Selector>,
        entropy: &mut dyn Entropy,
    ) -> Ikev2Session {
        let mut cookie_secret = [0u8; 32];
        entropy.fill(&mut cookie_secret);
        Ikev2Session {
            settings,
            local,
            remote,
            local_ts,
            remote_ts,
            ike: None,
            old_ike: None,
            children: Vec::new(),
            cookie_secret,
            nat_local: false,
            nat_remote: false,
            nat_t: false,
            last_inbound: Timestamp::ZERO,
            child_rekey_retry: Vec::new(),
            ike_rekey_retry: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            status: SessionStatus::default(),
            active: false,
            pending_failure: None,
            delete_queue: Vec::new(),
            old_deleted: false,
            collided_ike: None,
            pfs_group: None,
            ike_rekey_group: None,
            old_ike_until: None,
            reconnect_at: None,
            peer_500: remote,
            peer_4500: SocketAddr::new(remote.ip(), crate::tunnel::NAT_T_PORT),
        }
    }

    pub fn settings(&self) -> &Ikev2Settings {
        &self.settings
    }

    pub fn state(&self) -> IkeState {
        match &self.ike {
            None => IkeState::Idle,
            Some(sa) if sa.established => match sa.request.as_ref().map(|r| &r.pending) {
                Some(Pending::RekeyIke { .. }) => IkeState::Rekeying,
                _ => IkeState::Established,
            },
            Some(sa) => match sa.request.as_ref().map(|r| &r.pending) {
                Some(Pending::Auth { .. }) => IkeState::Auth,
                _ => IkeState::SaInit,
            },
        }
    }

    pub fn status(&self) -> SessionStatus {
        let mut s = self.status;
        s.ike_established = self.ike.as_ref().is_some_and(|sa| sa.established);
        s.children = self.children.iter().filter(|c| !c.rekeyed).count();
        s.nat_local = self.nat_local;
        s.nat_remote = self.nat_remote;
        s.nat_t = self.nat_t;
        s.dpd_outstanding = self
            .ike
            .as_ref()
            .and_then(|sa| sa.request.as_ref())
            .is_some_and(|r| matches!(r.pending, Pending::Dpd));
        s
    }

    /// The SPIs (initiator's, responder's) of the current IKE SA.
    #[cfg(test)]
    pub(crate) fn child_records(&self) -> Vec<(u32, u32, bool, bool)> {
        self.children
            .iter()
            .map(|c| (c.inbound_spi, c.outbound_spi, c.rekeyed, c.rekeying))
            .collect()
    }

    pub fn ike_spis(&self) -> Option<(u64, u64)> {
        self.ike.as_ref().map(|sa| (sa.spi_i, sa.spi_r))
    }

    /// Whether an IKE SA replaced by a rekey is still waiting for deletion.
    pub fn has_old_ike_sa(&self) -> bool {
        self.old_ike.is_some()
    }

    /// Whether IKE uses port 4500 (and ESP is UDP-encapsulated for NAT).
    pub fn nat_t(&self) -> bool {
        self.nat_t
    }

    /// Whether we are behind a NAT (or pretend to be): send keepalives.
    pub fn behind_nat(&self) -> bool {
        self.nat_local
    }

    /// The next IKE message to send; `to` is always filled in.
    pub fn poll_transmit(&mut self) -> Option<Outgoing> {
        let mut o = self.transmits.pop_front()?;
        if o.to.is_none() {
            o.to = Some(if o.nat_t {
                self.peer_4500
            } else {
                self.peer_500
            });
        }
        Some(o)
    }

    /// Where ESP-in-UDP goes: the peer's port 4500 address as last seen.
    pub fn esp_peer(&self) -> SocketAddr {
        self.peer_4500
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Authenticated traffic arrived from the peer (ESP or IKE): postpones
    /// the liveness check.
    pub fn note_inbound(&mut self, now: Timestamp) {
        self.last_inbound = self.last_inbound.max(now);
    }

    /// Starts listening (responder) or initiating, per the startup action.
    pub fn start(&mut self, now: Timestamp, entropy: &mut dyn Entropy) {
        self.active = true;
        if self.settings.startup_action == StartupAction::Start {
            self.initiate(now, entropy);
        }
    }

    /// Stops: deletes the IKE SA (best effort, one DELETE without waiting)
    /// and forgets everything; no longer answers IKE_SA_INIT.
    pub fn close(&mut self, entropy: &mut dyn Entropy) {
        self.active = false;
        self.reconnect_at = None;
        self.abort(entropy);
    }

    /// Deletes the IKE SA (best effort) and forgets it, but keeps answering
    /// a peer that starts over (after an SA expired, for instance).
    pub fn abort(&mut self, entropy: &mut dyn Entropy) {
        if let Some(sa) = self.ike.as_mut() {
            if sa.established {
                let id = sa.next_msg_id;
                if let Some(bytes) = sa.seal(
                    ExchangeType::INFORMATIONAL,
                    false,
                    id,
                    &[Payload::Delete(DeletePayload::ike())],
                    entropy,
                ) {
                    self.transmits.push_back(Outgoing {
                        bytes,
                        nat_t: self.nat_t,
                        to: None,
                    });
                }
            }
        }
        self.reset();
    }

    fn reset(&mut self) {
        self.ike = None;
        self.old_ike = None;
        self.collided_ike = None;
        for c in self.children.drain(..) {
            self.events.push_back(SessionEvent::ChildDeleted {
                inbound_spi: c.inbound_spi,
            });
        }
        self.child_rekey_retry.clear();
        self.ike_rekey_retry = None;
        self.delete_queue.clear();
        self.pending_failure = None;
        self.nat_t = false;
        self.nat_local = false;
        self.nat_remote = false;
    }

    /// Whether this end keeps its tunnel up by itself.
    fn keeps_trying(&self) -> bool {
        self.settings.startup_action == StartupAction::Start
            || self.settings.dpd.action == DpdAction::Restart
    }

    fn fail(&mut self, reason: DownReason) {
        self.reset();
        self.events.push_back(SessionEvent::Down(reason));
    }

    // -----------------------------------------------------------------
    // Timers
    // -----------------------------------------------------------------

    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let mut t: Option<Timestamp> = None;
        let mut add = |x: Option<Timestamp>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if let Some(r) = self.old_ike.as_ref().and_then(|sa| sa.request.as_ref()) {
            add(Some(r.next_at));
        }
        if self.old_ike.is_some() {
            add(self.old_ike_until);
        }
        add(self.reconnect_at);
        if let Some(sa) = &self.ike {
            if let Some(r) = &sa.request {
                add(Some(r.next_at));
                add(r.give_up_at);
            }
            add(sa.rekey_at);
            add(sa.expire_at);
            add(sa.half_open_until);
        }
        if let Some(sa) = &self.ike {
            if sa.established && sa.request.is_none() {
                add(self.dpd_due());
            }
        }
        for (_, at) in &self.child_rekey_retry {
            add(Some(*at));
        }
        add(self.ike_rekey_retry);
        t
    }

    fn dpd_due(&self) -> Option<Timestamp> {
        let interval = self.settings.dpd.interval;
        (!interval.is_zero()).then(|| self.last_inbound + interval)
    }

    pub fn handle_timeout(&mut self, now: Timestamp, entropy: &mut dyn Entropy) {
        if self.reconnect_at.is_some_and(|t| now >= t) {
            self.reconnect_at = None;
            self.events.push_back(SessionEvent::Restarting);
            self.initiate(now, entropy);
            return;
        }
        if self.old_ike_until.is_some_and(|t| now >= t) {
            self.old_ike_until = None;
            if self.old_ike.as_ref().is_some_and(|sa| sa.request.is_none()) {
                self.old_ike = None;
            }
        }
        // Retransmissions and give-ups, old SA first.
        if let Some(old) = self.old_ike.as_mut() {
            if let Some(r) = old.request.as_mut() {
                if now >= r.next_at {
                    if r.sends > self.settings.retransmit.tries {
                        // The old SA is going away anyway.
                        self.old_ike = None;
                    } else {
                        let wait = self.settings.retransmit.wait(r.sends);
                        r.sends += 1;
                        r.next_at = now + wait;
                        self.status.retransmits += 1;
                        self.transmits.push_back(Outgoing {
                            bytes: r.bytes.clone(),
                            nat_t: r.nat_t,
                            to: None,
                        });
                    }
                }
            }
        }
        let Some(sa) = self.ike.as_mut() else {
            return;
        };
        if let Some(r) = sa.request.as_mut() {
            if r.give_up_at.is_some_and(|g| now >= g) {
                self.dpd_timeout(now, entropy);
                return;
            }
            if now >= r.next_at {
                if r.sends > self.settings.retransmit.tries {
                    let retransmits = r.sends - 1;
                    if matches!(r.pending, Pending::Dpd) {
                        self.dpd_timeout(now, entropy);
                    } else {
                        self.fail(DownReason::PeerUnreachable { retransmits });
                        if self.keeps_trying() {
                            self.reconnect_at = Some(now + RECONNECT_AFTER);
                        }
                    }
                    return;
                }
                let wait = self.settings.retransmit.wait(r.sends);
                r.sends += 1;
                r.next_at = now + wait;
                self.status.retransmits += 1;
                self.transmits.push_back(Outgoing {
                    bytes: r.bytes.clone(),
                    nat_t: r.nat_t,
                    to: None,
                });
            }
        }
        if sa.half_open_until.is_some_and(|t| now >= t) {
            // The initiator never finished: forget the half-open SA quietly
            // (an established SA it would have replaced carries on).
            self.ike = self.old_ike.take().filter(|old| old.established);
            return;
        }
        if sa.expire_at.is_some_and(|t| now >= t) {
            self.fail(DownReason::SaExpired);
            return;
        }
        let sa_rekey_due = sa.rekey_at.is_some_and(|t| now >= t);
        if sa_rekey_due || self.ike_rekey_retry.is_some_and(|t| now >= t) {
            self.ike_rekey_retry = None;
            if let Some(sa) = self.ike.as_mut() {
                sa.rekey_at = None;
            }
            self.rekey_ike(now, entropy);
        }
        let due: Vec<u32> = self
            .child_rekey_retry
            .iter()
            .filter(|(_, at)| now >= *at)
            .map(|(spi, _)| *spi)
            .collect();
        self.child_rekey_retry.retain(|(_, at)| now < *at);
        for spi in due {
            self.rekey_child(now, spi, entropy);
        }
        self.continue_work(now, entropy);
        let idle = self
            .ike
            .as_ref()
            .is_some_and(|sa| sa.established && sa.request.is_none());
        if idle && self.dpd_due().is_some_and(|t| now >= t) {
            self.send_dpd(now, entropy);
        }
    }

    fn dpd_timeout(&mut self, now: Timestamp, entropy: &mut dyn Entropy) {
        match self.settings.dpd.action {
            DpdAction::None => {
                // Keep the SAs; only report the dead peer and check again later.
                if let Some(sa) = self.ike.as_mut() {
                    sa.request = None;
                }
                self.last_inbound = now;
                self.events.push_back(SessionEvent::DeadPeer);
            }
            DpdAction::Clear => self.fail(DownReason::DpdTimeout),
            DpdAction::Restart => {
                self.fail(DownReason::DpdTimeout);
                self.events.push_back(SessionEvent::Restarting);
                self.initiate(now, entropy);
            }
        }
    }

    fn send_dpd(&mut self, now: Timestamp, entropy: &mut dyn Entropy) {
        let timeout = self.settings.dpd.timeout;
        if self.send_request(now, ExchangeType::INFORMATIONAL, &[], Pending::Dpd, entropy) {
            if let Some(r) = self.ike.as_mut().and_then(|sa| sa.request.as_mut()) {
                r.give_up_at = Some(now + timeout);
            }
        }
    }

    /// Seals and sends a request on the current IKE SA; false if the window is busy.
    fn send_request(
        &mut self,
        now: Timestamp,
        exchange: ExchangeType,
        payloads: &[Payload],
        pending: Pending,
        entropy: &mut dyn Entropy,
    ) -> bool {
        let nat_t = self.nat_t;
        let wait = self.settings.retransmit.wait(0);
        let Some(sa) = self.ike.as_mut() else {
            return false;
        };
        if sa.request.is_some() {
            return false;
        }
        let id = sa.next_msg_id;
        let Some(bytes) = sa.seal(exchange, false, id, payloads, entropy) else {
            return false;
        };
        sa.next_msg_id = sa.next_msg_id.wrapping_add(1);
        self.transmits.push_back(Outgoing {
            bytes: bytes.clone(),
            nat_t,
            to: None,
        });
        sa.request = Some(Request {
            msg_id: id,
            bytes,
            nat_t,
            sends: 1,
            next_at: now + wait,
            give_up_at: None,
            pending,
        });
        true
    }
}

/// Rekey time: lifetime − margin − random(0..=margin × fuzz %), at least 1 s.
pub fn rekey_time(
    lifetime: Duration,
    margin: Duration,
    fuzz_percent: u8,
    entropy: &mut dyn Entropy,
) -> Duration {
    // A margin as long as the lifetime would rekey at once, forever.
    let margin = margin.min(lifetime / 2);
    let fuzz_max = (margin.as_millis() as u64 * u64::from(fuzz_percent) / 100)
        .min((lifetime.saturating_sub(margin) / 2).as_millis() as u64);
    let fuzz = if fuzz_max == 0 {
        0
    } else {
        entropy.next_u64() % (fuzz_max + 1)
    };
    lifetime
        .saturating_sub(margin)
        .saturating_sub(Duration::from_millis(fuzz))
        .max(Duration::from_secs(1).min(lifetime))
}

fn derive_keys(
    neg: NegotiatedIke,
    shared: &crate::crypto::SharedSecret,
    sa: &IkeSa,
    old_sk_d: Option<(crate::crypto::Prf, &[u8])>,
) -> Option<Keys> {
    let seed = match old_sk_d {
        None => skeyseed(neg.prf, &sa.ni, &sa.nr, shared.as_bytes()),
        Some((old_prf, sk_d)) => rekey_skeyseed(old_prf, sk_d, shared.as_bytes(), &sa.ni, &sa.nr),
    };
    let k = IkeSaKeys::derive(
        neg.prf,
        &seed,
        &sa.ni,
        &sa.nr,
        &sa.spi_i.to_be_bytes(),
        &sa.spi_r.to_be_bytes(),
        neg.key_lengths(),
    )
    .ok()?;
    let sk = SkCiphers::from_ike_sa_keys(neg.encryption, neg.integrity, &k, sa.initiator).ok()?;
    Some(Keys {
        neg,
        sk_d: SecretBytes::new(k.sk_d.clone()),
        sk_pi: SecretBytes::new(k.sk_pi.clone()),
        sk_pr: SecretBytes::new(k.sk_pr.clone()),
        sk,
    })
}

/// Which IKE SA a message belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Current,
    Old,
}

impl Ikev2Session {
    fn sa_mut(&mut self, which: Which) -> Option<&mut IkeSa> {
        match which {
            Which::Current => self.ike.as_mut(),
            Which::Old => self.old_ike.as_mut(),
        }
    }

    fn find_sa(&self, spi_i: u64, spi_r: u64) -> Option<Which> {
        let m = |sa: &IkeSa| sa.spi_i == spi_i && sa.spi_r == spi_r;
        if self.ike.as_ref().is_some_and(m) {
            Some(Which::Current)
        } else if self.old_ike.as_ref().is_some_and(m) {
            Some(Which::Old)
        } else {
            None
        }
    }

    /// Handles an IKE message (non-ESP marker removed) received on `local`
    /// from `remote`. Returns whether it was accepted (authentic, or a valid
    /// unauthenticated IKE_SA_INIT exchange message).
    pub fn handle_message(
        &mut self,
        now: Timestamp,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
        entropy: &mut dyn Entropy,
    ) -> bool {
        let Ok(header) = Header::decode(bytes) else {
            return false;
        };
        if header.major_version != 2 || header.length as usize != bytes.len() {
            return false;
        }
        if header.exchange_type == ExchangeType::IKE_SA_INIT {
            let Ok(msg) = Message::decode(bytes) else {
                return false;
            };
            if header.is_response() {
                let ours = self.ike.as_ref().is_some_and(|sa| {
                    sa.initiator
                        && !sa.established
                        && sa.spi_i == header.spi_i
                        && sa.keys.is_none()
                        && header.message_id == 0
                        && !header.flags.initiator()
                });
                return ours && self.handle_sa_init_response(now, bytes, msg, entropy);
            }
            if header.spi_r == 0 && header.message_id == 0 && header.flags.initiator() {
                return self.handle_sa_init_request(now, local, remote, bytes, msg, entropy);
            }
            return false;
        }
        let Some(which) = self.find_sa(header.spi_i, header.spi_r) else {
            return false;
        };
        let nat_t_in = local.port() == crate::tunnel::NAT_T_PORT;
        let Some(sa) = self.sa_mut(which) else {
            return false;
        };
        if header.flags.initiator() == sa.initiator {
            return false;
        }
        if header.is_response() {
            if sa.request.as_ref().map(|r| r.msg_id) != Some(header.message_id) {
                return false;
            }
            let Some(keys) = sa.keys.as_ref() else {
                return false;
            };
            let Ok((h, payloads)) = keys.sk.inbound.open_payloads(bytes) else {
                return false;
            };
            if h.exchange_type != header.exchange_type {
                return false;
            }
            let Some(req) = sa.request.take() else {
                return false;
            };
            self.authentic(now, remote, nat_t_in);
            self.handle_response(now, which, req.pending, payloads, entropy);
        } else {
            let expected = sa.expected_peer_id;
            if header.message_id.wrapping_add(1) == expected {
                if let Some((id, resp)) = &sa.last_response {
                    if *id == header.message_id {
                        let bytes = resp.clone();
                        self.transmits.push_back(Outgoing {
                            bytes,
                            nat_t: nat_t_in,
                            to: Some(remote),
                        });
                        return true;
                    }
                }
                return false;
            }
            if header.message_id != expected {
                return false;
            }
            let Some(keys) = sa.keys.as_ref() else {
                return false;
            };
            let Ok((h, payloads)) = keys.sk.inbound.open_payloads(bytes) else {
                return false;
            };
            sa.expected_peer_id = expected.wrapping_add(1);
            let (spi_i, spi_r) = (sa.spi_i, sa.spi_r);
            self.authentic(now, remote, nat_t_in);
            let response = match h.exchange_type {
                ExchangeType::IKE_AUTH
                    if which == Which::Current
                        && !self.ike.as_ref().is_some_and(|s| s.established)
                        && h.message_id == 1 =>
                {
                    if nat_t_in && (self.nat_local || self.nat_remote) {
                        self.nat_t = true;
                    }
                    self.handle_auth_request(now, &payloads, entropy)
                }
                ExchangeType::CREATE_CHILD_SA if which == Which::Current => {
                    self.handle_create_child_request(now, &payloads, entropy)
                }
                ExchangeType::CREATE_CHILD_SA => vec![notify(NotifyType::TEMPORARY_FAILURE)],
                ExchangeType::INFORMATIONAL => {
                    self.handle_informational(now, which, &payloads, entropy)
                }
                _ => vec![notify(NotifyType::INVALID_SYNTAX)],
            };
            // The SA that got the request answers it (a rekey may have moved it to `old_ike`).
            let Some(which) = self.find_sa(spi_i, spi_r) else {
                self.apply_pending_failure();
                return true;
            };
            if let Some(sa) = self.sa_mut(which) {
                if let Some(bytes) =
                    sa.seal(h.exchange_type, true, h.message_id, &response, entropy)
                {
                    sa.last_response = Some((h.message_id, bytes.clone()));
                    self.transmits.push_back(Outgoing {
                        bytes,
                        nat_t: nat_t_in,
                        to: Some(remote),
                    });
                }
            }
            if core::mem::take(&mut self.old_deleted) {
                self.old_ike = None;
            }
            self.apply_pending_failure();
        }
        true
    }

    fn apply_pending_failure(&mut self) {
        let Some(reason) = self.pending_failure.take() else {
            return;
        };
        // A new IKE SA that failed before authenticating does not get to
        // take an established one down with it: that one carries on.
        let half_open = self.ike.as_ref().is_some_and(|sa| !sa.established);
        if half_open && self.old_ike.as_ref().is_some_and(|sa| sa.established) {
            self.ike = self.old_ike.take();
            self.events.push_back(SessionEvent::Rejected(reason));
            return;
        }
        self.fail(reason);
    }

    /// An authenticated message arrived: the peer lives, and its NAT
    /// mapping is where the message came from.
    fn authentic(&mut self, now: Timestamp, remote: SocketAddr, nat_t_in: bool) {
        self.note_inbound(now);
        if nat_t_in {
            // The peer moved IKE to 4500: so do we (RFC 7296 §2.23).
            self.nat_t = true;
            self.peer_4500 = remote;
        } else {
            self.peer_500 = remote;
        }
    }

    fn handle_response(
        &mut self,
        now: Timestamp,
        which: Which,
        pending: Pending,
        p: Vec<Payload>,
        entropy: &mut dyn Entropy,
    ) {
        match pending {
            Pending::SaInit { .. } => {}
            Pending::Auth { child_spi } => self.handle_auth_response(now, p, child_spi, entropy),
            Pending::Dpd => self.events.push_back(SessionEvent::DpdOk),
            Pending::DeleteIke => {
                if which == Which::Old {
                    self.old_ike = None;
                } else {
                    self.fail(DownReason::Closed);
                }
            }
            Pending::DeleteChild => {}
            Pending::RekeyChild {
                old_inbound,
                new_inbound,
                ni,
                dh,
            } => {
                self.handle_rekey_child_response(now, old_inbound, new_inbound, ni, dh, p, entropy)
            }
            Pending::RekeyIke { new_spi, ni, dh } => {
                self.handle_rekey_ike_response(now, new_spi, ni, dh, p, entropy)
            }
        }
        self.continue_work(now, entropy);
    }

    /// After an exchange ends: start what waited for the window (deletes
    /// of child SAs replaced by rekeys).
    fn continue_work(&mut self, now: Timestamp, entropy: &mut dyn Entropy) {
        let idle = self
            .ike
            .as_ref()
            .is_some_and(|s| s.established && s.request.is_none());
        if !idle || self.delete_queue.is_empty() {
            return;
        }
        let spis = core::mem::take(&mut self.delete_queue);
        let payloads = [Payload::Delete(DeletePayload::esp(&spis))];
        if self.send_request(
            now,
            ExchangeType::INFORMATIONAL,
            &payloads,
            Pending::DeleteChild,
            entropy,
        ) {
            for spi in spis {
                if let Some(pos) = self.children.iter().position(|c| c.inbound_spi == spi) {
                    self.children.remove(pos);
                    self.events
                        .push_back(SessionEvent::ChildDeleted { inbound_spi: spi });
                }
            }
        } else {
            self.delete_queue = spis;
        }
    }
}

mod initial;
mod rekey;
