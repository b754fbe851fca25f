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
//! NAT detection), IKE_AUTH with PSK and the first child SA, CREATE_CHILD_SA
//! (child SA rekey with optional PFS, IKE SA rekey), INFORMATIONAL (DELETE,
//! liveness checks).

use core::time::Duration;
use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::config::{DpdAction, StartupAction};
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
    /// When an IKE SA replaced by reauthentication is dropped if the peer
    /// has not deleted it.
    old_ike_until: Option<Timestamp>,
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
            old_ike_until: None,
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
    /// and forgets everything.
    pub fn close(&mut self, entropy: &mut dyn Entropy) {
        self.active = false;
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

    // -----------------------------------------------------------------
    // IKE_SA_INIT, initiator
    // -----------------------------------------------------------------

    /// Starts a new IKE SA as initiator (replacing any state).
    pub fn initiate(&mut self, now: Timestamp, entropy: &mut dyn Entropy) {
        self.reset();
        self.active = true;
        let Some(group) = self
            .settings
            .ike_proposals
            .first()
            .and_then(|p| p.dh.first().copied())
        else {
            self.fail(DownReason::Internal("no IKE proposal configured"));
            return;
        };
        let Ok(dh) = group.generate(entropy) else {
            self.fail(DownReason::Internal("key exchange failed"));
            return;
        };
        let mut sa = IkeSa::new(random_spi64(entropy), 0, true);
        sa.ni = nonce(entropy);
        sa.next_msg_id = 1;
        self.ike = Some(sa);
        self.send_sa_init(now, dh, None, 0, entropy);
    }

    fn send_sa_init(
        &mut self,
        now: Timestamp,
        dh: KeyPair,
        cookie: Option<Vec<u8>>,
        retries: u32,
        entropy: &mut dyn Entropy,
    ) {
        let Some(sa) = self.ike.as_mut() else {
            return;
        };
        let mut payloads = Vec::new();
        if let Some(c) = &cookie {
            payloads.push(Payload::Notify(NotifyPayload::new(
                NotifyType::COOKIE,
                c.clone(),
            )));
        }
        let proposals = self
            .settings
            .ike_proposals
            .iter()
            .enumerate()
            .map(|(n, p)| p.to_wire((n + 1).min(255) as u8, &[]))
            .collect();
        payloads.push(Payload::Sa(SaPayload { proposals }));
        payloads.push(Payload::Ke(KePayload {
            group: dh.group().id(),
            data: dh.public_value().to_vec(),
        }));
        payloads.push(Payload::Nonce(sa.ni.clone()));
        let src = if self.settings.force_encapsulation {
            let mut fake = vec![0u8; 20];
            entropy.fill(&mut fake);
            fake
        } else {
            nat_detection_hash(sa.spi_i, 0, self.local)
        };
        payloads.push(Payload::Notify(NotifyPayload::new(
            NotifyType::NAT_DETECTION_SOURCE_IP,
            src,
        )));
        payloads.push(Payload::Notify(NotifyPayload::new(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            nat_detection_hash(sa.spi_i, 0, self.remote),
        )));
        let msg = Message {
            header: sa.header(ExchangeType::IKE_SA_INIT, false, 0),
            payloads,
        };
        let Ok(bytes) = msg.encode() else {
            return;
        };
        sa.init_request = bytes.clone();
        self.transmits.push_back(Outgoing {
            bytes: bytes.clone(),
            nat_t: false,
            to: None,
        });
        sa.request = Some(Request {
            msg_id: 0,
            bytes,
            nat_t: false,
            sends: 1,
            next_at: now + self.settings.retransmit.wait(0),
            give_up_at: None,
            pending: Pending::SaInit {
                dh,
                cookie,
                retries,
            },
        });
    }

    fn handle_sa_init_response(
        &mut self,
        now: Timestamp,
        bytes: &[u8],
        msg: Message,
        entropy: &mut dyn Entropy,
    ) -> bool {
        let Some(sa) = self.ike.as_mut() else {
            return false;
        };
        let Some(Request {
            pending: Pending::SaInit { .. },
            ..
        }) = &sa.request
        else {
            return false;
        };
        let Some(Request {
            pending:
                Pending::SaInit {
                    dh,
                    cookie: old_cookie,
                    retries,
                },
            ..
        }) = sa.request.take()
        else {
            return false;
        };
        let p = &msg.payloads;
        if let Some(c) = p.find_notify(NotifyType::COOKIE) {
            if retries >= MAX_INIT_RETRIES || c.data.is_empty() || c.data.len() > 64 {
                self.fail(DownReason::PeerError {
                    notify: "COOKIE".into(),
                });
                return true;
            }
            let _ = old_cookie;
            self.send_sa_init(now, dh, Some(c.data.clone()), retries + 1, entropy);
            return true;
        }
        if let Some(n) = p.find_notify(NotifyType::INVALID_KE_PAYLOAD) {
            let group = <[u8; 2]>::try_from(&n.data[..])
                .ok()
                .map(u16::from_be_bytes)
                .and_then(DhGroup::from_id);
            let acceptable = group.filter(|g| {
                *g != dh.group() && self.settings.ike_proposals.iter().any(|p| p.dh.contains(g))
            });
            match (acceptable, retries < MAX_INIT_RETRIES) {
                (Some(g), true) => match g.generate(entropy) {
                    Ok(new_dh) => {
                        self.send_sa_init(now, new_dh, old_cookie, retries + 1, entropy);
                    }
                    Err(_) => self.fail(DownReason::Internal("key exchange failed")),
                },
                _ => self.fail(DownReason::NoProposalChosen {
                    ours: format_list(&self.settings.ike_proposals),
                    theirs: Some(format!(
                        "key exchange group {}",
                        group.map_or("unknown".to_string(), |g| g.keyword().to_string())
                    )),
                }),
            }
            return true;
        }
        if p.find_notify(NotifyType::NO_PROPOSAL_CHOSEN).is_some() {
            self.fail(DownReason::NoProposalChosen {
                ours: format_list(&self.settings.ike_proposals),
                theirs: None,
            });
            return true;
        }
        if let Some(t) = error_notify(p) {
            self.fail(DownReason::PeerError {
                notify: t.to_string(),
            });
            return true;
        }
        let (Some(sa_p), Some(ke), Some(nr)) = (p.sa(), p.ke(), valid_nonce(p.nonce())) else {
            self.fail(DownReason::Protocol("incomplete IKE_SA_INIT response"));
            return true;
        };
        let neg = match accept_ike_reply(&self.settings.ike_proposals, &sa_p.proposals) {
            Ok(n) => n,
            Err(e) => {
                self.fail(DownReason::Protocol(
                    if matches!(e, crate::ike::proposal::ProposalError::NotOffered { .. }) {
                        "peer chose a proposal we did not offer"
                    } else {
                        "invalid SA payload in IKE_SA_INIT response"
                    },
                ));
                return true;
            }
        };
        if ke.group != dh.group().id() || neg.dh != dh.group() || msg.header.spi_r == 0 {
            self.fail(DownReason::Protocol("KE group differs from the chosen one"));
            return true;
        }
        let Ok(shared) = dh.shared_secret(&ke.data) else {
            self.fail(DownReason::Protocol("invalid KE value from peer"));
            return true;
        };
        let Some(sa) = self.ike.as_mut() else {
            return false;
        };
        sa.spi_r = msg.header.spi_r;
        sa.nr = nr;
        sa.init_response = bytes.to_vec();
        let Some(keys) = derive_keys(neg, &shared, sa, None) else {
            self.fail(DownReason::Internal("key derivation failed"));
            return true;
        };
        sa.keys = Some(keys);
        let (spi_i, spi_r) = (sa.spi_i, sa.spi_r);
        self.detect_nat(p, spi_i, spi_r, self.remote, self.local);
        self.send_auth(now, entropy);
        true
    }

    /// NAT detection from the peer's notifies: `peer_addr` is where the
    /// message came from, `our_addr` where it arrived.
    fn detect_nat(
        &mut self,
        p: &[Payload],
        spi_i: u64,
        spi_r: u64,
        peer_addr: SocketAddr,
        our_addr: SocketAddr,
    ) {
        let src = p.find_notify(NotifyType::NAT_DETECTION_SOURCE_IP);
        let dst = p.find_notify(NotifyType::NAT_DETECTION_DESTINATION_IP);
        if src.is_none() && dst.is_none() && !self.settings.force_encapsulation {
            return;
        }
        let expected_src = nat_detection_hash(spi_i, spi_r, peer_addr);
        let expected_dst = nat_detection_hash(spi_i, spi_r, our_addr);
        let remote = p
            .notifies()
            .iter()
            .filter(|n| n.notify_type == NotifyType::NAT_DETECTION_SOURCE_IP)
            .all(|n| n.data != expected_src)
            && src.is_some();
        let local =
            dst.is_some_and(|d| d.data != expected_dst) || self.settings.force_encapsulation;
        self.nat_local = local;
        self.nat_remote = remote;
        if local || remote {
            self.nat_t = true;
        }
        self.events
            .push_back(SessionEvent::NatDetected { local, remote });
    }

    fn send_auth(&mut self, now: Timestamp, entropy: &mut dyn Entropy) {
        let child_spi = random_esp_spi(entropy);
        let Some(sa) = self.ike.as_ref() else {
            return;
        };
        let Some(keys) = sa.keys.as_ref() else {
            return;
        };
        let id = self.settings.local_identity.to_payload();
        let auth = psk_auth(
            keys.neg.prf,
            self.settings.psk.expose().as_bytes(),
            &keys.sk_pi,
            &sa.init_request,
            &sa.nr,
            &id.body_bytes(),
        );
        let mut payloads = vec![Payload::IdI(id)];
        if let Some(r) = &self.settings.remote_identity {
            payloads.push(Payload::IdR(r.to_payload()));
        }
        payloads.push(Payload::Auth(AuthPayload {
            method: AuthMethod::SHARED_KEY_MIC,
            data: auth.to_vec(),
        }));
        payloads.push(notify(NotifyType::INITIAL_CONTACT));
        payloads.push(self.esp_offer(child_spi, false));
        payloads.push(Payload::TsI(ts::to_payload(&self.local_ts)));
        payloads.push(Payload::TsR(ts::to_payload(&self.remote_ts)));
        self.send_request(
            now,
            ExchangeType::IKE_AUTH,
            &payloads,
            Pending::Auth { child_spi },
            entropy,
        );
    }

    fn esp_offer(&self, spi: u32, with_dh: bool) -> Payload {
        Payload::Sa(SaPayload {
            proposals: self
                .settings
                .esp_proposals
                .iter()
                .enumerate()
                .map(|(n, p)| p.to_wire((n + 1).min(255) as u8, spi, with_dh))
                .collect(),
        })
    }

    fn child_times(&self, entropy: &mut dyn Entropy) -> (Duration, Duration) {
        let l = &self.settings.lifetimes;
        (
            rekey_time(l.child, l.margin, l.fuzz_percent, entropy),
            l.child,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn install_child(
        &mut self,
        esp: NegotiatedEsp,
        inbound_spi: u32,
        initiator: bool,
        g_ir: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
        local_ts: Vec<Selector>,
        remote_ts: Vec<Selector>,
        replaces: Option<u32>,
        entropy: &mut dyn Entropy,
    ) -> Result<u32, DownReason> {
        let Some(keys) = self.ike.as_ref().and_then(|sa| sa.keys.as_ref()) else {
            return Err(DownReason::Internal("no IKE SA keys"));
        };
        let child_keys = ChildSaKeys::derive(
            keys.neg.prf,
            &keys.sk_d,
            g_ir,
            ni,
            nr,
            esp.encryption.keymat_len(),
            esp.integrity.map_or(0, |i| i.key_len()),
        )
        .map_err(|_| DownReason::Internal("child key derivation failed"))?;
        let (soft_time, hard_time) = self.child_times(entropy);
        let outbound_spi = esp.spi;
        self.children.push(ChildRec {
            inbound_spi,
            outbound_spi,
            local_ts: local_ts.clone(),
            remote_ts: remote_ts.clone(),
            rekeyed: false,
            peer_rekey: None,
            rekeying: false,
        });
        self.events.push_back(SessionEvent::ChildInstalled {
            params: Box::new(ChildParams {
                inbound_spi,
                outbound_spi,
                esp,
                keys: child_keys,
                initiator,
                local_ts,
                remote_ts,
                soft_time,
                hard_time,
            }),
            replaces,
        });
        Ok(inbound_spi)
    }

    fn ike_established(&mut self, now: Timestamp, entropy: &mut dyn Entropy) {
        let l = self.settings.lifetimes;
        if let Some(sa) = self.ike.as_mut() {
            sa.established = true;
            sa.half_open_until = None;
            sa.rekey_at = Some(now + rekey_time(l.ike, l.margin, l.fuzz_percent, entropy));
            sa.expire_at = Some(now + l.ike);
            self.events.push_back(SessionEvent::IkeEstablished {
                spi_i: sa.spi_i,
                spi_r: sa.spi_r,
            });
        }
        self.last_inbound = now;
    }

    fn handle_auth_response(
        &mut self,
        now: Timestamp,
        p: Vec<Payload>,
        child_spi: u32,
        entropy: &mut dyn Entropy,
    ) {
        if p.find_notify(NotifyType::AUTHENTICATION_FAILED).is_some() {
            self.fail(DownReason::AuthenticationFailed {
                detail: "peer rejected our pre-shared key or identity",
            });
            return;
        }
        let Some(sa) = self.ike.as_ref() else {
            return;
        };
        let Some(keys) = sa.keys.as_ref() else {
            return;
        };
        let (Some(idr), Some(auth)) = (p.id_r(), p.auth()) else {
            if let Some(t) = error_notify(&p) {
                self.fail(DownReason::PeerError {
                    notify: t.to_string(),
                });
            } else {
                self.fail(DownReason::Protocol("IKE_AUTH response without IDr/AUTH"));
            }
            return;
        };
        if self
            .settings
            .remote_identity
            .as_ref()
            .is_some_and(|r| !r.matches(idr))
        {
            self.fail(DownReason::AuthenticationFailed {
                detail: "peer identity is not the configured remote identity",
            });
            return;
        }
        let expected = psk_auth(
            keys.neg.prf,
            self.settings.psk.expose().as_bytes(),
            &keys.sk_pr,
            &sa.init_response,
            &sa.ni,
            &idr.body_bytes(),
        );
        if auth.method != AuthMethod::SHARED_KEY_MIC || !auth_matches(&expected, &auth.data) {
            self.fail(DownReason::AuthenticationFailed {
                detail: "peer's AUTH does not match our pre-shared key",
            });
            return;
        }
        let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
        self.ike_established(now, entropy);
        if p.find_notify(NotifyType::NO_PROPOSAL_CHOSEN).is_some() {
            self.fail(DownReason::NoProposalChosen {
                ours: format_list(&self.settings.esp_proposals),
                theirs: None,
            });
            return;
        }
        if p.find_notify(NotifyType::TS_UNACCEPTABLE).is_some() {
            self.fail(DownReason::TsUnacceptable);
            return;
        }
        if let Some(t) = error_notify(&p) {
            self.fail(DownReason::PeerError {
                notify: t.to_string(),
            });
            return;
        }
        let (Some(sa_p), Some(tsi), Some(tsr)) = (p.sa(), p.ts_i(), p.ts_r()) else {
            self.fail(DownReason::Protocol("IKE_AUTH response without a child SA"));
            return;
        };
        let Ok(esp) = accept_esp_reply(&self.settings.esp_proposals, &sa_p.proposals, true) else {
            self.fail(DownReason::Protocol(
                "peer chose an ESP proposal we did not offer",
            ));
            return;
        };
        let (local_ts, remote_ts) = (ts::ranges(tsi), ts::ranges(tsr));
        if local_ts.is_empty() || remote_ts.is_empty() {
            self.fail(DownReason::TsUnacceptable);
            return;
        }
        if let Err(e) = self.install_child(
            esp, child_spi, true, None, &ni, &nr, local_ts, remote_ts, None, entropy,
        ) {
            self.fail(e);
        }
    }

    // -----------------------------------------------------------------
    // IKE_SA_INIT and IKE_AUTH, responder
    // -----------------------------------------------------------------

    fn stateless_reply(&mut self, req: &Header, payloads: Vec<Payload>, to: SocketAddr) {
        let msg = Message {
            header: Header::new(
                req.spi_i,
                0,
                ExchangeType::IKE_SA_INIT,
                Flags::new(false, true),
                0,
            ),
            payloads,
        };
        if let Ok(bytes) = msg.encode() {
            self.transmits.push_back(Outgoing {
                bytes,
                nat_t: false,
                to: Some(to),
            });
        }
    }

    fn handle_sa_init_request(
        &mut self,
        now: Timestamp,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
        msg: Message,
        entropy: &mut dyn Entropy,
    ) -> bool {
        if !self.active {
            return false;
        }
        // A retransmission of the request we answered: the same answer.
        if let Some(sa) = &self.ike {
            if !sa.initiator && sa.spi_i == msg.header.spi_i && !sa.established {
                if sa.init_request == bytes {
                    if let Some((0, resp)) = &sa.last_response {
                        self.transmits.push_back(Outgoing {
                            bytes: resp.clone(),
                            nat_t: false,
                            to: Some(remote),
                        });
                    }
                }
                return true;
            }
            if sa.initiator && !sa.established {
                // Both sides initiating at once: the initiation with the
                // higher SPI goes on, the other side answers it instead.
                if sa.spi_i > msg.header.spi_i {
                    return false;
                }
                self.ike = None;
            }
        }
        // A late copy of the request that made an SA we already have.
        let known = [self.ike.as_ref(), self.old_ike.as_ref()]
            .into_iter()
            .flatten()
            .any(|sa| !sa.initiator && sa.spi_i == msg.header.spi_i);
        if known {
            return true;
        }
        let p = &msg.payloads;
        let (Some(sa_p), Some(ke), Some(ni)) = (p.sa(), p.ke(), valid_nonce(p.nonce())) else {
            self.stateless_reply(
                &msg.header,
                vec![notify(NotifyType::INVALID_SYNTAX)],
                remote,
            );
            return true;
        };
        let half_open = usize::from(self.ike.as_ref().is_some_and(|sa| !sa.established));
        if half_open as u32 >= self.settings.cookie_threshold {
            let expected = cookie(&self.cookie_secret, &ni, remote.ip(), msg.header.spi_i);
            let ok = p
                .find_notify(NotifyType::COOKIE)
                .is_some_and(|c| auth_matches(&expected, &c.data));
            if !ok {
                self.stateless_reply(
                    &msg.header,
                    vec![Payload::Notify(NotifyPayload::new(
                        NotifyType::COOKIE,
                        expected,
                    ))],
                    remote,
                );
                return true;
            }
        }
        let Some(neg) = select_ike(&self.settings.ike_proposals, &sa_p.proposals) else {
            let theirs = describe_offer(&sa_p.proposals);
            self.stateless_reply(
                &msg.header,
                vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)],
                remote,
            );
            let reason = DownReason::NoProposalChosen {
                ours: format_list(&self.settings.ike_proposals),
                theirs: Some(theirs),
            };
            // Unauthenticated: it cannot take down an SA we have.
            self.events.push_back(if self.ike.is_some() {
                SessionEvent::Rejected(reason)
            } else {
                SessionEvent::Down(reason)
            });
            return true;
        };
        if ke.group != neg.dh.id() {
            self.stateless_reply(
                &msg.header,
                vec![Payload::Notify(NotifyPayload::new(
                    NotifyType::INVALID_KE_PAYLOAD,
                    neg.dh.id().to_be_bytes().to_vec(),
                ))],
                remote,
            );
            return true;
        }
        let Ok(dh) = neg.dh.generate(entropy) else {
            return false;
        };
        let Ok(shared) = dh.shared_secret(&ke.data) else {
            self.stateless_reply(
                &msg.header,
                vec![notify(NotifyType::INVALID_SYNTAX)],
                remote,
            );
            return true;
        };
        let mut sa = IkeSa::new(msg.header.spi_i, random_spi64(entropy), false);
        sa.ni = ni;
        sa.nr = nonce(entropy);
        sa.init_request = bytes.to_vec();
        sa.expected_peer_id = 1;
        sa.half_open_until = Some(now + HALF_OPEN_TIMEOUT);
        let src = if self.settings.force_encapsulation {
            let mut fake = vec![0u8; 20];
            entropy.fill(&mut fake);
            fake
        } else {
            nat_detection_hash(sa.spi_i, sa.spi_r, local)
        };
        let payloads = vec![
            Payload::Sa(SaPayload {
                proposals: vec![neg.to_wire(&[])],
            }),
            Payload::Ke(KePayload {
                group: neg.dh.id(),
                data: dh.public_value().to_vec(),
            }),
            Payload::Nonce(sa.nr.clone()),
            Payload::Notify(NotifyPayload::new(NotifyType::NAT_DETECTION_SOURCE_IP, src)),
            Payload::Notify(NotifyPayload::new(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                nat_detection_hash(sa.spi_i, sa.spi_r, remote),
            )),
        ];
        let resp = Message {
            header: sa.header(ExchangeType::IKE_SA_INIT, true, 0),
            payloads,
        };
        let Ok(resp_bytes) = resp.encode() else {
            return false;
        };
        sa.init_response = resp_bytes.clone();
        sa.last_response = Some((0, resp_bytes.clone()));
        let Some(keys) = derive_keys(neg, &shared, &sa, None) else {
            return false;
        };
        sa.keys = Some(keys);
        let spi_i = sa.spi_i;
        // A new IKE SA replaces any old one once it is authenticated; until
        // then the half-open one takes the slot only if nothing is established.
        if self.ike.as_ref().is_some_and(|s| s.established) {
            self.old_ike = self.ike.take();
        }
        self.ike = Some(sa);
        // The request's NAT-D hashes use SPIr = 0.
        self.detect_nat(p, spi_i, 0, remote, local);
        self.peer_500 = remote;
        self.transmits.push_back(Outgoing {
            bytes: resp_bytes,
            nat_t: false,
            to: Some(remote),
        });
        true
    }

    /// IKE_AUTH request (responder). Returns the response payloads.
    fn handle_auth_request(
        &mut self,
        now: Timestamp,
        p: &[Payload],
        entropy: &mut dyn Entropy,
    ) -> Vec<Payload> {
        let Some(sa) = self.ike.as_ref() else {
            return vec![notify(NotifyType::AUTHENTICATION_FAILED)];
        };
        let Some(keys) = sa.keys.as_ref() else {
            return vec![notify(NotifyType::AUTHENTICATION_FAILED)];
        };
        let (Some(idi), Some(auth)) = (p.id_i(), p.auth()) else {
            self.pending_failure = Some(DownReason::Protocol("IKE_AUTH request without IDi/AUTH"));
            return vec![notify(NotifyType::INVALID_SYNTAX)];
        };
        let id_ok = self
            .settings
            .remote_identity
            .as_ref()
            .is_none_or(|r| r.matches(idi));
        let expected = psk_auth(
            keys.neg.prf,
            self.settings.psk.expose().as_bytes(),
            &keys.sk_pi,
            &sa.init_request,
            &sa.nr,
            &idi.body_bytes(),
        );
        if !id_ok {
            self.pending_failure = Some(DownReason::AuthenticationFailed {
                detail: "peer identity is not the configured remote identity",
            });
            return vec![notify(NotifyType::AUTHENTICATION_FAILED)];
        }
        if auth.method != AuthMethod::SHARED_KEY_MIC || !auth_matches(&expected, &auth.data) {
            self.pending_failure = Some(DownReason::AuthenticationFailed {
                detail: "peer's AUTH does not match our pre-shared key",
            });
            return vec![notify(NotifyType::AUTHENTICATION_FAILED)];
        }
        let id = self.settings.local_identity.to_payload();
        let our_auth = psk_auth(
            keys.neg.prf,
            self.settings.psk.expose().as_bytes(),
            &keys.sk_pr,
            &sa.init_response,
            &sa.ni,
            &id.body_bytes(),
        );
        let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
        let mut out = vec![
            Payload::IdR(id),
            Payload::Auth(AuthPayload {
                method: AuthMethod::SHARED_KEY_MIC,
                data: our_auth.to_vec(),
            }),
        ];
        // Authenticated: this IKE SA replaces an older one with the peer.
        // With INITIAL_CONTACT the peer forgot that one (it restarted);
        // without, this is a make-before-break reauthentication and the
        // peer will delete the old SA itself. Either way the old children
        // go once the new one is installed.
        let replaced: Vec<u32> = match self.old_ike.take() {
            Some(old) => {
                if p.find_notify(NotifyType::INITIAL_CONTACT).is_none() {
                    self.old_ike = Some(old);
                    self.old_ike_until = Some(now + HALF_OPEN_TIMEOUT);
                }
                self.children.iter().map(|c| c.inbound_spi).collect()
            }
            None => Vec::new(),
        };
        self.ike_established(now, entropy);
        let (Some(sa_p), Some(tsi), Some(tsr)) = (p.sa(), p.ts_i(), p.ts_r()) else {
            self.pending_failure =
                Some(DownReason::Protocol("IKE_AUTH request without a child SA"));
            out.push(notify(NotifyType::NO_PROPOSAL_CHOSEN));
            return out;
        };
        let Some(esp) = select_esp(&self.settings.esp_proposals, &sa_p.proposals, true) else {
            self.pending_failure = Some(DownReason::NoProposalChosen {
                ours: format_list(&self.settings.esp_proposals),
                theirs: Some(describe_offer(&sa_p.proposals)),
            });
            out.push(notify(NotifyType::NO_PROPOSAL_CHOSEN));
            return out;
        };
        let tsi_n = ts::narrow(tsi, &self.remote_ts);
        let tsr_n = ts::narrow(tsr, &self.local_ts);
        if tsi_n.is_empty() || tsr_n.is_empty() {
            self.pending_failure = Some(DownReason::TsUnacceptable);
            out.push(notify(NotifyType::TS_UNACCEPTABLE));
            return out;
        }
        let spi = random_esp_spi(entropy);
        match self.install_child(
            esp.clone(),
            spi,
            false,
            None,
            &ni,
            &nr,
            tsr_n.clone(),
            tsi_n.clone(),
            None,
            entropy,
        ) {
            Ok(_) => {
                for old in replaced {
                    if let Some(pos) = self.children.iter().position(|c| c.inbound_spi == old) {
                        self.children.remove(pos);
                        self.events
                            .push_back(SessionEvent::ChildDeleted { inbound_spi: old });
                    }
                }
                out.push(Payload::Sa(SaPayload {
                    proposals: vec![esp.to_wire(spi)],
                }));
                out.push(Payload::TsI(ts::to_payload(&tsi_n)));
                out.push(Payload::TsR(ts::to_payload(&tsr_n)));
            }
            Err(e) => {
                self.pending_failure = Some(e);
                out.push(notify(NotifyType::NO_PROPOSAL_CHOSEN));
            }
        }
        out
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

    // -----------------------------------------------------------------
    // INFORMATIONAL
    // -----------------------------------------------------------------

    fn handle_informational(
        &mut self,
        now: Timestamp,
        which: Which,
        p: &[Payload],
        entropy: &mut dyn Entropy,
    ) -> Vec<Payload> {
        let mut out = Vec::new();
        let mut deleted_esp = Vec::new();
        for d in p.deletes() {
            match d.protocol {
                ProtocolId::IKE => {
                    if which == Which::Old {
                        // Dropped once the (empty) answer is sealed.
                        self.old_deleted = true;
                    } else if let Some(theirs) = self.collided_ike.take() {
                        // Colliding IKE rekeys: the peer's won and it
                        // deletes the old SA before our exchange ended.
                        self.switch_ike(now, theirs, entropy);
                        self.old_deleted = true;
                    } else {
                        self.pending_failure = Some(DownReason::PeerDeleted);
                    }
                    return Vec::new();
                }
                ProtocolId::ESP => {
                    for spi in d.spis_u32().unwrap_or_default() {
                        if let Some(pos) = self.children.iter().position(|c| c.outbound_spi == spi)
                        {
                            let c = self.children.remove(pos);
                            deleted_esp.push(c.inbound_spi);
                            self.events.push_back(SessionEvent::ChildDeleted {
                                inbound_spi: c.inbound_spi,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        if !deleted_esp.is_empty() {
            out.push(Payload::Delete(DeletePayload::esp(&deleted_esp)));
        }
        out
    }

    // -----------------------------------------------------------------
    // CREATE_CHILD_SA
    // -----------------------------------------------------------------

    /// Deletes the child SA with this inbound SPI (INFORMATIONAL DELETE).
    pub fn delete_child(&mut self, now: Timestamp, inbound_spi: u32, entropy: &mut dyn Entropy) {
        if self.children.iter().any(|c| c.inbound_spi == inbound_spi) {
            self.queue_delete_unknown(inbound_spi);
            self.continue_work(now, entropy);
        }
    }

    /// Rekeys the child SA with this inbound SPI (lifetime or a soft limit).
    pub fn rekey_child(&mut self, now: Timestamp, inbound_spi: u32, entropy: &mut dyn Entropy) {
        let Some(child) = self
            .children
            .iter()
            .find(|c| c.inbound_spi == inbound_spi)
            .cloned()
        else {
            return;
        };
        if child.rekeyed || child.rekeying {
            return;
        }
        let busy = self
            .ike
            .as_ref()
            .is_none_or(|sa| !sa.established || sa.request.is_some());
        if busy {
            if !self
                .child_rekey_retry
                .iter()
                .any(|(s, _)| *s == inbound_spi)
            {
                self.child_rekey_retry
                    .push((inbound_spi, now + Duration::from_secs(1)));
            }
            return;
        }
        let pfs = self
            .settings
            .esp_proposals
            .first()
            .and_then(|p| p.dh.first().copied());
        let dh = match pfs.map(|g| g.generate(entropy)) {
            Some(Ok(k)) => Some(k),
            Some(Err(_)) => return,
            None => None,
        };
        let new_inbound = random_esp_spi(entropy);
        let ni = nonce(entropy);
        let mut payloads = vec![Payload::Notify(NotifyPayload::with_spi(
            ProtocolId::ESP,
            inbound_spi.to_be_bytes().to_vec(),
            NotifyType::REKEY_SA,
            Vec::new(),
        ))];
        payloads.push(self.esp_offer(new_inbound, dh.is_some()));
        payloads.push(Payload::Nonce(ni.clone()));
        if let Some(k) = &dh {
            payloads.push(Payload::Ke(KePayload {
                group: k.group().id(),
                data: k.public_value().to_vec(),
            }));
        }
        payloads.push(Payload::TsI(ts::to_payload(&child.local_ts)));
        payloads.push(Payload::TsR(ts::to_payload(&child.remote_ts)));
        let sent = self.send_request(
            now,
            ExchangeType::CREATE_CHILD_SA,
            &payloads,
            Pending::RekeyChild {
                old_inbound: inbound_spi,
                new_inbound,
                ni,
                dh,
            },
            entropy,
        );
        if sent {
            if let Some(c) = self
                .children
                .iter_mut()
                .find(|c| c.inbound_spi == inbound_spi)
            {
                c.rekeying = true;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_rekey_child_response(
        &mut self,
        now: Timestamp,
        old_inbound: u32,
        new_inbound: u32,
        ni: Vec<u8>,
        dh: Option<KeyPair>,
        p: Vec<Payload>,
        entropy: &mut dyn Entropy,
    ) {
        let Some(pos) = self
            .children
            .iter()
            .position(|c| c.inbound_spi == old_inbound)
        else {
            // Deleted meanwhile (a DELETE crossed our rekey): if the peer
            // created the new SA anyway, delete it again.
            if p.sa().is_some() && error_notify(&p).is_none() {
                self.queue_delete_unknown(new_inbound);
            }
            return;
        };
        self.children[pos].rekeying = false;
        if p.find_notify(NotifyType::TEMPORARY_FAILURE).is_some() {
            let delay = Duration::from_millis(2000 + entropy.next_u64() % 4000);
            self.child_rekey_retry.push((old_inbound, now + delay));
            return;
        }
        if error_notify(&p).is_some() {
            // CHILD_SA_NOT_FOUND, NO_PROPOSAL_CHOSEN, ...: keep the old SA
            // until it expires; the peer may rekey it.
            return;
        }
        let (Some(sa_p), Some(nr), Some(tsi), Some(tsr)) =
            (p.sa(), valid_nonce(p.nonce()), p.ts_i(), p.ts_r())
        else {
            return;
        };
        let Ok(esp) = accept_esp_reply(&self.settings.esp_proposals, &sa_p.proposals, false) else {
            return;
        };
        let g_ir = match (&dh, p.ke(), esp.dh) {
            (Some(k), Some(ke), Some(g)) if ke.group == g.id() && k.group() == g => {
                match k.shared_secret(&ke.data) {
                    Ok(s) => Some(s),
                    Err(_) => return,
                }
            }
            (_, _, None) => None,
            _ => return,
        };
        // Collision (RFC 7296 §2.8.1): the peer rekeyed the same child. The
        // exchange with the lowest nonce made the redundant SA; its
        // initiator deletes it.
        if let Some((_, peer_min)) = self.children[pos].peer_rekey.clone() {
            let our_min = if ni < nr { ni.clone() } else { nr.clone() };
            if our_min < peer_min {
                // Ours is redundant: never install it, ask the peer to drop its half.
                self.children[pos].rekeyed = true;
                self.queue_delete_unknown(new_inbound);
                return;
            }
        }
        let local_ts = ts::ranges(tsi);
        let remote_ts = ts::ranges(tsr);
        match self.install_child(
            esp,
            new_inbound,
            true,
            g_ir.as_ref().map(|s| s.as_bytes()),
            &ni,
            &nr,
            local_ts,
            remote_ts,
            Some(old_inbound),
            entropy,
        ) {
            Ok(_) => {
                self.status.child_rekeys += 1;
                if let Some(c) = self
                    .children
                    .iter_mut()
                    .find(|c| c.inbound_spi == old_inbound)
                {
                    c.rekeyed = true;
                }
                self.queue_delete_unknown(old_inbound);
            }
            Err(e) => self.fail(e),
        }
    }

    /// Queues an INFORMATIONAL DELETE for our inbound SPI (sent when the window frees).
    fn queue_delete_unknown(&mut self, inbound_spi: u32) {
        if !self.delete_queue.contains(&inbound_spi) {
            self.delete_queue.push(inbound_spi);
        }
    }

    fn handle_create_child_request(
        &mut self,
        now: Timestamp,
        p: &[Payload],
        entropy: &mut dyn Entropy,
    ) -> Vec<Payload> {
        let rekey = p
            .notifies()
            .into_iter()
            .find(|n| n.notify_type == NotifyType::REKEY_SA)
            .cloned();
        match rekey {
            Some(n) if n.protocol == ProtocolId::ESP => {
                let Ok(spi) = <[u8; 4]>::try_from(&n.spi[..]).map(u32::from_be_bytes) else {
                    return vec![notify(NotifyType::INVALID_SYNTAX)];
                };
                self.handle_rekey_child_request(now, spi, p, entropy)
            }
            Some(_) => vec![notify(NotifyType::INVALID_SYNTAX)],
            None if p
                .sa()
                .and_then(|s| s.proposals.first())
                .is_some_and(|pr| pr.protocol == ProtocolId::IKE) =>
            {
                self.handle_rekey_ike_request(now, p, entropy)
            }
            // One child SA pair per tunnel.
            None => vec![notify(NotifyType::NO_ADDITIONAL_SAS)],
        }
    }

    fn handle_rekey_child_request(
        &mut self,
        _now: Timestamp,
        peer_spi: u32,
        p: &[Payload],
        entropy: &mut dyn Entropy,
    ) -> Vec<Payload> {
        let ike_rekeying = self
            .ike
            .as_ref()
            .and_then(|s| s.request.as_ref())
            .is_some_and(|r| matches!(r.pending, Pending::RekeyIke { .. }));
        if ike_rekeying {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        }
        let Some(pos) = self
            .children
            .iter()
            .position(|c| c.outbound_spi == peer_spi && !c.rekeyed)
        else {
            return vec![Payload::Notify(NotifyPayload::with_spi(
                ProtocolId::ESP,
                peer_spi.to_be_bytes().to_vec(),
                NotifyType::CHILD_SA_NOT_FOUND,
                Vec::new(),
            ))];
        };
        if self.delete_queue.contains(&self.children[pos].inbound_spi) {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        }
        let (Some(sa_p), Some(ni)) = (p.sa(), valid_nonce(p.nonce())) else {
            return vec![notify(NotifyType::INVALID_SYNTAX)];
        };
        let Some(esp) = select_esp(&self.settings.esp_proposals, &sa_p.proposals, false) else {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        };
        let (ke_out, g_ir) = match esp.dh {
            Some(g) => {
                let Some(ke) = p.ke().filter(|k| k.group == g.id()) else {
                    return vec![Payload::Notify(NotifyPayload::new(
                        NotifyType::INVALID_KE_PAYLOAD,
                        g.id().to_be_bytes().to_vec(),
                    ))];
                };
                let Ok(k) = g.generate(entropy) else {
                    return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
                };
                let Ok(s) = k.shared_secret(&ke.data) else {
                    return vec![notify(NotifyType::INVALID_SYNTAX)];
                };
                (
                    Some(KePayload {
                        group: g.id(),
                        data: k.public_value().to_vec(),
                    }),
                    Some(s),
                )
            }
            None => (None, None),
        };
        let child = self.children[pos].clone();
        let tsi = p.ts_i().map(|t| ts::narrow(t, &child.remote_ts));
        let tsr = p.ts_r().map(|t| ts::narrow(t, &child.local_ts));
        let (Some(tsi), Some(tsr)) = (tsi, tsr) else {
            return vec![notify(NotifyType::TS_UNACCEPTABLE)];
        };
        if tsi.is_empty() || tsr.is_empty() {
            return vec![notify(NotifyType::TS_UNACCEPTABLE)];
        }
        let nr = nonce(entropy);
        let new_spi = random_esp_spi(entropy);
        if let Err(e) = self.install_child(
            esp.clone(),
            new_spi,
            false,
            g_ir.as_ref().map(|s| s.as_bytes()),
            &ni,
            &nr,
            tsr.clone(),
            tsi.clone(),
            Some(child.inbound_spi),
            entropy,
        ) {
            self.pending_failure = Some(e);
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        }
        self.status.child_rekeys += 1;
        if let Some(c) = self.children.get_mut(pos) {
            if c.rekeying {
                let min = if ni < nr { ni.clone() } else { nr.clone() };
                c.peer_rekey = Some((new_spi, min));
            } else {
                c.rekeyed = true;
            }
        }
        let mut out = vec![
            Payload::Sa(SaPayload {
                proposals: vec![esp.to_wire(new_spi)],
            }),
            Payload::Nonce(nr),
        ];
        if let Some(ke) = ke_out {
            out.push(Payload::Ke(ke));
        }
        out.push(Payload::TsI(ts::to_payload(&tsi)));
        out.push(Payload::TsR(ts::to_payload(&tsr)));
        out
    }

    // -----------------------------------------------------------------
    // IKE SA rekey
    // -----------------------------------------------------------------

    /// Rekeys the IKE SA (lifetime, or on request).
    pub fn rekey_ike(&mut self, now: Timestamp, entropy: &mut dyn Entropy) {
        let Some(sa) = self.ike.as_ref() else {
            return;
        };
        let busy = !sa.established
            || sa.request.is_some()
            || self.old_ike.is_some()
            || self.children.iter().any(|c| c.rekeying);
        if busy {
            self.ike_rekey_retry = Some(now + Duration::from_secs(1));
            return;
        }
        let Some(keys) = sa.keys.as_ref() else {
            return;
        };
        let Ok(dh) = keys.neg.dh.generate(entropy) else {
            return;
        };
        let new_spi = random_spi64(entropy);
        let ni = nonce(entropy);
        let proposals = self
            .settings
            .ike_proposals
            .iter()
            .enumerate()
            .map(|(n, p)| p.to_wire((n + 1).min(255) as u8, &new_spi.to_be_bytes()))
            .collect();
        let payloads = [
            Payload::Sa(SaPayload { proposals }),
            Payload::Nonce(ni.clone()),
            Payload::Ke(KePayload {
                group: dh.group().id(),
                data: dh.public_value().to_vec(),
            }),
        ];
        self.send_request(
            now,
            ExchangeType::CREATE_CHILD_SA,
            &payloads,
            Pending::RekeyIke { new_spi, ni, dh },
            entropy,
        );
    }

    fn handle_rekey_ike_request(
        &mut self,
        now: Timestamp,
        p: &[Payload],
        entropy: &mut dyn Entropy,
    ) -> Vec<Payload> {
        let pending = self
            .ike
            .as_ref()
            .and_then(|s| s.request.as_ref())
            .map(|r| &r.pending);
        // Both ends rekeying the IKE SA at once (RFC 7296 §2.8.2): answer as
        // usual and let the nonces pick the survivor when ours completes.
        let colliding = matches!(pending, Some(Pending::RekeyIke { .. }));
        let busy = self.old_ike.is_some()
            || self.collided_ike.is_some()
            || self.children.iter().any(|c| c.rekeying)
            || (pending.is_some() && !colliding);
        if busy {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        }
        let (Some(sa_p), Some(ni), Some(ke)) = (p.sa(), valid_nonce(p.nonce()), p.ke()) else {
            return vec![notify(NotifyType::INVALID_SYNTAX)];
        };
        let Some(neg) = select_ike(&self.settings.ike_proposals, &sa_p.proposals) else {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        };
        let Ok(peer_spi) = <[u8; 8]>::try_from(&neg.spi[..]).map(u64::from_be_bytes) else {
            return vec![notify(NotifyType::INVALID_SYNTAX)];
        };
        if ke.group != neg.dh.id() {
            return vec![Payload::Notify(NotifyPayload::new(
                NotifyType::INVALID_KE_PAYLOAD,
                neg.dh.id().to_be_bytes().to_vec(),
            ))];
        }
        let Ok(dh) = neg.dh.generate(entropy) else {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        };
        let Ok(shared) = dh.shared_secret(&ke.data) else {
            return vec![notify(NotifyType::INVALID_SYNTAX)];
        };
        let our_spi = random_spi64(entropy);
        let mut new = IkeSa::new(peer_spi, our_spi, false);
        new.ni = ni;
        new.nr = nonce(entropy);
        let Some(old_keys) = self.ike.as_ref().and_then(|s| s.keys.as_ref()) else {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        };
        let Some(keys) = derive_keys(
            neg.clone(),
            &shared,
            &new,
            Some((old_keys.neg.prf, &old_keys.sk_d)),
        ) else {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        };
        new.keys = Some(keys);
        let out = vec![
            Payload::Sa(SaPayload {
                proposals: vec![neg.to_wire(&our_spi.to_be_bytes())],
            }),
            Payload::Nonce(new.nr.clone()),
            Payload::Ke(KePayload {
                group: neg.dh.id(),
                data: dh.public_value().to_vec(),
            }),
        ];
        if colliding {
            self.collided_ike = Some(new);
        } else {
            self.switch_ike(now, new, entropy);
        }
        out
    }

    fn switch_ike(&mut self, now: Timestamp, new: IkeSa, entropy: &mut dyn Entropy) {
        let (spi_i, spi_r) = (new.spi_i, new.spi_r);
        let old = self.ike.replace(new);
        self.ike_established(now, entropy);
        // `ike_established` announced the new SA; this rekey event replaces it.
        if let Some(SessionEvent::IkeEstablished { .. }) = self.events.back() {
            self.events.pop_back();
        }
        if let Some(old) = old {
            self.events.push_back(SessionEvent::IkeRekeyed {
                old_spi_i: old.spi_i,
                old_spi_r: old.spi_r,
                spi_i,
                spi_r,
            });
            self.old_ike = Some(old);
        }
        self.status.ike_rekeys += 1;
    }

    fn handle_rekey_ike_response(
        &mut self,
        now: Timestamp,
        new_spi: u64,
        ni: Vec<u8>,
        dh: KeyPair,
        p: Vec<Payload>,
        entropy: &mut dyn Entropy,
    ) {
        if p.find_notify(NotifyType::TEMPORARY_FAILURE).is_some() {
            self.ike_rekey_retry =
                Some(now + Duration::from_millis(2000 + entropy.next_u64() % 4000));
            return;
        }
        if error_notify(&p).is_some() {
            return;
        }
        let (Some(sa_p), Some(nr), Some(ke)) = (p.sa(), valid_nonce(p.nonce()), p.ke()) else {
            return;
        };
        let Ok(neg) = accept_ike_reply(&self.settings.ike_proposals, &sa_p.proposals) else {
            return;
        };
        let Ok(peer_spi) = <[u8; 8]>::try_from(&neg.spi[..]).map(u64::from_be_bytes) else {
            return;
        };
        if ke.group != dh.group().id() || neg.dh != dh.group() {
            return;
        }
        let Ok(shared) = dh.shared_secret(&ke.data) else {
            return;
        };
        let mut new = IkeSa::new(new_spi, peer_spi, true);
        new.ni = ni;
        new.nr = nr;
        let Some(old_keys) = self.ike.as_ref().and_then(|s| s.keys.as_ref()) else {
            return;
        };
        let Some(keys) = derive_keys(neg, &shared, &new, Some((old_keys.neg.prf, &old_keys.sk_d)))
        else {
            return;
        };
        new.keys = Some(keys);
        if let Some(theirs) = self.collided_ike.take() {
            // RFC 7296 §2.8.2: the rekey whose exchange has the lowest nonce
            // made the redundant SA, and its initiator deletes it; the other
            // initiator deletes the old SA.
            let min = |sa: &IkeSa| core::cmp::min(sa.ni.clone(), sa.nr.clone());
            if min(&new) < min(&theirs) {
                if let Some(bytes) = new.seal(
                    ExchangeType::INFORMATIONAL,
                    false,
                    0,
                    &[Payload::Delete(DeletePayload::ike())],
                    entropy,
                ) {
                    self.transmits.push_back(Outgoing {
                        bytes,
                        nat_t: self.nat_t,
                        to: None,
                    });
                }
                self.switch_ike(now, theirs, entropy);
                return;
            }
        }
        self.switch_ike(now, new, entropy);
        // Delete the old IKE SA on the old SA.
        let nat_t = self.nat_t;
        let wait = self.settings.retransmit.wait(0);
        if let Some(old) = self.old_ike.as_mut() {
            let id = old.next_msg_id;
            if let Some(bytes) = old.seal(
                ExchangeType::INFORMATIONAL,
                false,
                id,
                &[Payload::Delete(DeletePayload::ike())],
                entropy,
            ) {
                old.next_msg_id = id.wrapping_add(1);
                self.transmits.push_back(Outgoing {
                    bytes: bytes.clone(),
                    nat_t,
                    to: None,
                });
                old.request = Some(Request {
                    msg_id: id,
                    bytes,
                    nat_t,
                    sends: 1,
                    next_at: now + wait,
                    give_up_at: None,
                    pending: Pending::DeleteIke,
                });
            }
        }
    }
}
