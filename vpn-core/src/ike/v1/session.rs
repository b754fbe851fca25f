//! The IKEv1 state machine for one peer: Main Mode (PSK), Quick Mode with
//! PFS, Informational exchanges, DPD, NAT-T, retransmission and rekeying.

use core::fmt;
use core::time::Duration;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use subtle::ConstantTimeEq;

use super::crypt::{iv_from_hash, last_block, Cipher, BLOCK};
use super::transforms::{
    accept_esp, accept_phase1, describe_esp_offer, describe_phase1_offer, esp_sa, esp_suites,
    phase1_sa, phase1_suites, select_esp, select_phase1, EspSuite, Phase1Suite,
};
use super::types::{
    ChildKeys, DeleteReason, DeletedSa, Identity, Ikev1Error, Ikev1Event, Ikev1Settings,
    NegotiatedChildSa, RetransmitSettings, IKE_PORT, NAT_T_PORT,
};
use super::wire::{
    decode_chain, encode_payloads, split_datagram, DeletePayload, ExchangeType, Flags, Header,
    IdPayload, NotifyPayload, NotifyType, Payload, PayloadType, Proposal, ProtocolId, RawPayload,
    SaPayload, DOI_IPSEC, HEADER_LEN, SIT_IDENTITY_ONLY, VID_DPD, VID_NAT_T_RFC3947,
};
use crate::config::{DpdAction, Prefix};
use crate::crypto::ikev1::{quick_mode_keymat, skeyid_psk, Ikev1Keys};
use crate::crypto::{KeyPair, Prf, SecretBytes};
use crate::entropy::Entropy;
use crate::esp::nat_t::{classify, NatTDatagram};
use crate::ike::proposal::format_list;
use crate::time::Timestamp;

/// Nonce length we send (RFC 2409 allows 8 to 256 bytes).
const NONCE_LEN: usize = 32;
/// How long a finished Quick Mode is kept to answer retransmissions.
const QM_KEEP: Duration = Duration::from_secs(60);
/// At most this many phase 1 SAs in negotiation or established (a bound
/// against floods of first messages).
const MAX_PHASE1: usize = 8;
/// A Main Mode we answer must complete within this time (strongSwan's
/// half-open timeout).
const HALF_OPEN: Duration = Duration::from_secs(30);
/// How long a child SA we replaced by a rekey lives on before we delete it.
pub const REKEY_DELETE_DELAY: Duration = Duration::from_secs(10);

struct Rtx {
    bytes: Vec<u8>,
    /// Transmissions so far.
    count: u32,
    deadline: Timestamp,
    what: &'static str,
}

/// What a due retransmission timer asks for.
enum RtxDue {
    Resend(Vec<u8>),
    /// Out of tries: the exchange failed after this many transmissions.
    GiveUp(&'static str, u32),
}

impl Rtx {
    /// Advances the timer if it is due: the bytes to send again, or the
    /// end of the exchange once every try is spent.
    fn due(&mut self, now: Timestamp, settings: &RetransmitSettings) -> Option<RtxDue> {
        if self.deadline > now {
            return None;
        }
        if self.count > settings.tries {
            return Some(RtxDue::GiveUp(self.what, self.count));
        }
        self.deadline = now + settings.timeout(self.count);
        self.count += 1;
        Some(RtxDue::Resend(self.bytes.clone()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum P1State {
    ISentSa,
    ISentKe,
    ISentId,
    RSentSa,
    RSentKe,
    Established,
}

struct Phase1 {
    icky: [u8; 8],
    rcky: [u8; 8],
    initiator: bool,
    state: P1State,
    suite: Option<Phase1Suite>,
    sa_i_b: Vec<u8>,
    dh: Option<KeyPair>,
    ke_i: Vec<u8>,
    ke_r: Vec<u8>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    peer_nat_t: bool,
    peer_dpd: bool,
    nat_t: bool,
    keys: Option<Ikev1Keys>,
    cipher: Option<Cipher>,
    /// The CBC chain: during Main Mode the next IV, afterwards the last
    /// phase 1 ciphertext block.
    iv: [u8; BLOCK],
    rtx: Option<Rtx>,
    /// (request, response) pairs for answering retransmitted requests.
    replies: Vec<(Vec<u8>, Vec<u8>)>,
    lifetime: Duration,
    rekey_at: Timestamp,
    expire_at: Timestamp,
    rekey_started: bool,
    is_rekey: bool,
    /// Responder: when an unfinished Main Mode is given up.
    half_open_until: Timestamp,
}

impl Phase1 {
    fn new(icky: [u8; 8], rcky: [u8; 8], initiator: bool, state: P1State) -> Phase1 {
        Phase1 {
            icky,
            rcky,
            initiator,
            state,
            suite: None,
            sa_i_b: Vec::new(),
            dh: None,
            ke_i: Vec::new(),
            ke_r: Vec::new(),
            ni: Vec::new(),
            nr: Vec::new(),
            peer_nat_t: false,
            peer_dpd: false,
            nat_t: false,
            keys: None,
            cipher: None,
            iv: [0; BLOCK],
            rtx: None,
            replies: Vec::new(),
            lifetime: Duration::ZERO,
            rekey_at: Timestamp::NEVER,
            expire_at: Timestamp::NEVER,
            rekey_started: false,
            is_rekey: false,
            half_open_until: Timestamp::NEVER,
        }
    }

    fn prf(&self) -> Prf {
        self.suite.map_or(Prf::HmacSha1, |s| s.hash)
    }

    fn spi16(&self) -> Vec<u8> {
        let mut v = self.icky.to_vec();
        v.extend_from_slice(&self.rcky);
        v
    }

    fn skeyid_a(&self) -> &[u8] {
        self.keys.as_ref().map_or(&[][..], |k| &k.skeyid_a)
    }

    fn header(&self, exchange: ExchangeType, encrypted: bool, mid: u32) -> Header {
        let flags = Flags(if encrypted { Flags::ENCRYPTION } else { 0 });
        Header::new(self.icky, self.rcky, exchange, flags, mid)
    }

    /// Encrypts a payload chain under `iv`; returns the datagram and the
    /// last ciphertext block.
    fn seal(
        &self,
        header: Header,
        first: PayloadType,
        chain: &[u8],
        iv: &[u8; BLOCK],
    ) -> (Vec<u8>, [u8; BLOCK]) {
        let ct = match &self.cipher {
            Some(c) => c.encrypt(iv, chain),
            None => Vec::new(),
        };
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        header.encode(
            first,
            u32::try_from(HEADER_LEN + ct.len()).unwrap_or(u32::MAX),
            &mut out,
        );
        out.extend_from_slice(&ct);
        (out, last_block(&ct))
    }

    fn open(&self, iv: &[u8; BLOCK], body: &[u8]) -> Option<Vec<u8>> {
        self.cipher.as_ref()?.decrypt(iv, body)
    }

    fn cached_reply(&self, request: &[u8]) -> Option<Vec<u8>> {
        self.replies
            .iter()
            .find(|(i, _)| i == request)
            .map(|(_, o)| o.clone())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QmState {
    SentQm1,
    SentQm2,
    Done,
}

struct QuickMode {
    mid: u32,
    icky: [u8; 8],
    initiator: bool,
    state: QmState,
    iv: [u8; BLOCK],
    ni: Vec<u8>,
    /// The responder's nonce (set by the responder).
    nr: Vec<u8>,
    suites: Vec<EspSuite>,
    inbound_spi: u32,
    dh: Option<KeyPair>,
    rekey_of: Option<u32>,
    rtx: Option<Rtx>,
    replies: Vec<(Vec<u8>, Vec<u8>)>,
    /// The responder's child, installed when HASH(3) arrives.
    pending: Option<NegotiatedChildSa>,
    done_at: Timestamp,
}

struct Child {
    sa: NegotiatedChildSa,
    rekey_at: Timestamp,
    expire_at: Timestamp,
    rekeying: bool,
    replaced: bool,
    /// When a child we replaced is deleted (a grace period for packets
    /// still in flight on it).
    delete_at: Timestamp,
}

#[derive(Default)]
struct Dpd {
    last_rx: Timestamp,
    outstanding: u32,
    seq: u32,
    next: Option<Timestamp>,
}

/// One IKEv1 peer: the ISAKMP SAs (an old one survives while its
/// replacement comes up), the Quick Mode exchanges and the child SAs they
/// negotiated.
///
/// Sans-IO, like the rest of the crate:
/// - commands: [`connect`](Self::connect), [`rekey_child`](Self::rekey_child),
///   [`rekey_phase1`](Self::rekey_phase1), [`delete_child`](Self::delete_child),
///   [`close`](Self::close),
///   [`note_inbound_traffic`](Self::note_inbound_traffic);
/// - inputs: [`handle_datagram`](Self::handle_datagram),
///   [`handle_timeout`](Self::handle_timeout);
/// - outputs, drained in this order after any input:
///   [`poll_transmit`](Self::poll_transmit), [`poll_event`](Self::poll_event),
///   [`poll_timeout`](Self::poll_timeout).
///
/// Datagrams are IKE only: on port 4500 they carry the non-ESP marker (both
/// ways); ESP is the caller's, through the SAs built with
/// [`NegotiatedChildSa::build_esp_sas`].
pub struct Ikev1Session {
    settings: Ikev1Settings,
    entropy: Box<dyn Entropy + Send>,
    local: SocketAddr,
    remote: SocketAddr,
    p1: Vec<Phase1>,
    qms: Vec<QuickMode>,
    children: Vec<Child>,
    transmits: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
    events: VecDeque<Ikev1Event>,
    dpd: Dpd,
    want_child: bool,
    initial_contact_sent: bool,
}

impl fmt::Debug for Ikev1Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ikev1Session")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field(
                "phase1",
                &self.p1.iter().map(|p| p.state).collect::<Vec<_>>(),
            )
            .field("quick_modes", &self.qms.len())
            .field(
                "children",
                &self.children.iter().map(|c| &c.sa).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn prefix_id(p: &Prefix) -> IdPayload {
    match p.addr() {
        IpAddr::V4(a) => IdPayload::ipv4_subnet(a, p.len()),
        IpAddr::V6(a) => IdPayload::ipv6_subnet(a, p.len()),
    }
}

fn natd(prf: Prf, icky: &[u8; 8], rcky: &[u8; 8], addr: SocketAddr) -> Vec<u8> {
    let ip = match addr.ip() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    super::crypt::hash(prf, &[icky, rcky, &ip, &addr.port().to_be_bytes()])
}

/// The lifetime to use: the shorter of the peer's and ours; a missing or
/// zero proposal (strongSwan sends 0 when rekeying is disabled) means ours.
fn negotiated_lifetime(offered: Option<Duration>, ours: Duration) -> Duration {
    match offered {
        Some(l) if !l.is_zero() => l.min(ours),
        _ => ours,
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

fn with_port(a: SocketAddr, port: u16) -> SocketAddr {
    SocketAddr::new(a.ip(), port)
}

/// A payload chain with a HASH payload in front of `rest`.
fn hashed_chain(hash: &[u8], rest: &[Payload]) -> (PayloadType, Vec<u8>) {
    let mut chain = Vec::new();
    let mut all = vec![Payload::Hash(hash.to_vec())];
    all.extend_from_slice(rest);
    encode_payloads(&all, &mut chain);
    (PayloadType::HASH, chain)
}

fn encode_rest(rest: &[Payload]) -> Vec<u8> {
    let mut v = Vec::new();
    encode_payloads(rest, &mut v);
    v
}

/// A decrypted (or plain) message body: the chain and its payloads.
struct Body {
    plain: Vec<u8>,
    raw: Vec<RawPayload>,
    end: usize,
}

impl Body {
    fn parse(first: PayloadType, plain: Vec<u8>) -> Result<Body, Ikev1Error> {
        let (raw, end) = decode_chain(first, &plain)?;
        Ok(Body { plain, raw, end })
    }
    fn find(&self, t: PayloadType) -> Option<&[u8]> {
        self.raw
            .iter()
            .find(|p| p.payload_type == t)
            .map(|p| p.body(&self.plain))
    }
    fn all(&self, t: PayloadType) -> Vec<&[u8]> {
        self.raw
            .iter()
            .filter(|p| p.payload_type == t)
            .map(|p| p.body(&self.plain))
            .collect()
    }
    fn payloads(&self) -> Vec<Payload> {
        self.raw
            .iter()
            .filter_map(|p| Payload::decode(p.payload_type, p.body(&self.plain)).ok())
            .collect()
    }
    /// (hash, rest) when the first payload is HASH.
    fn hash_and_rest(&self) -> Option<(&[u8], &[u8])> {
        let first = self.raw.first()?;
        if first.payload_type != PayloadType::HASH {
            return None;
        }
        Some((
            first.body(&self.plain),
            self.plain.get(first.end..self.end).unwrap_or(&[]),
        ))
    }
}

impl Ikev1Session {
    /// A session with no SA yet; it answers a peer's Main Mode at once and
    /// initiates on [`connect`](Self::connect).
    pub fn new(
        settings: Ikev1Settings,
        now: Timestamp,
        entropy: Box<dyn Entropy + Send>,
    ) -> Result<Ikev1Session, Ikev1Error> {
        settings.validate()?;
        let mut s = Ikev1Session {
            local: settings.local,
            remote: settings.remote,
            settings,
            entropy,
            p1: Vec::new(),
            qms: Vec::new(),
            children: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            dpd: Dpd::default(),
            want_child: false,
            initial_contact_sent: false,
        };
        s.dpd.last_rx = now;
        s.dpd.seq = s.entropy.next_u32() & 0x7fff_ffff;
        Ok(s)
    }

    // ------------------------------------------------------------------
    // Getters
    // ------------------------------------------------------------------

    pub fn settings(&self) -> &Ikev1Settings {
        &self.settings
    }

    /// Whether an ISAKMP SA is established.
    pub fn is_established(&self) -> bool {
        self.p1.iter().any(|p| p.state == P1State::Established)
    }

    /// Established ISAKMP SAs (more than one only during a phase 1 rekey).
    pub fn phase1_count(&self) -> usize {
        self.p1
            .iter()
            .filter(|p| p.state == P1State::Established)
            .count()
    }

    /// The current child SAs, oldest first.
    pub fn child_sas(&self) -> impl Iterator<Item = &NegotiatedChildSa> {
        self.children.iter().map(|c| &c.sa)
    }

    /// The addresses IKE currently uses (local, remote): port 4500 after a float.
    pub fn addresses(&self) -> (SocketAddr, SocketAddr) {
        (self.local, self.remote)
    }

    // ------------------------------------------------------------------
    // Commands
    // ------------------------------------------------------------------

    /// Initiates Main Mode, then Quick Mode for one child SA.
    pub fn connect(&mut self, now: Timestamp) -> Result<(), Ikev1Error> {
        self.want_child = true;
        if self.is_established() {
            if self.children.is_empty() && self.qms.iter().all(|q| q.state == QmState::Done) {
                return self.start_quick_mode(now, None);
            }
            return Ok(());
        }
        if self.p1.iter().any(|p| p.initiator) {
            return Ok(());
        }
        self.start_main_mode(now, false)
    }

    /// Rekeys the newest child SA now.
    pub fn rekey_child(&mut self, now: Timestamp) -> Result<(), Ikev1Error> {
        let spi = self
            .children
            .iter()
            .rev()
            .find(|c| !c.replaced)
            .map(|c| c.sa.inbound_spi);
        if let Some(c) = self.children.iter_mut().rev().find(|c| !c.replaced) {
            c.rekeying = true;
        }
        self.start_quick_mode(now, spi)
    }

    /// Starts a new Main Mode that replaces the current ISAKMP SA.
    pub fn rekey_phase1(&mut self, now: Timestamp) -> Result<(), Ikev1Error> {
        if !self.is_established() {
            return Err(Ikev1Error::NotEstablished);
        }
        for p in self.p1.iter_mut() {
            p.rekey_started = true;
        }
        self.start_main_mode(now, true)
    }

    /// Deletes every child and ISAKMP SA (sending DELETEs) and stops.
    pub fn close(&mut self, now: Timestamp) {
        self.want_child = false;
        if let Some(idx) = self.newest_established() {
            let spis: Vec<Vec<u8>> = self
                .children
                .iter()
                .map(|c| c.sa.inbound_spi.to_be_bytes().to_vec())
                .collect();
            if !spis.is_empty() {
                let d = Payload::Delete(DeletePayload {
                    doi: DOI_IPSEC,
                    protocol: ProtocolId::ESP,
                    spi_size: 4,
                    spis,
                });
                self.send_informational(now, idx, vec![d]);
            }
            let est: Vec<usize> = (0..self.p1.len())
                .filter(|i| self.p1[*i].state == P1State::Established)
                .collect();
            for i in est {
                let d = self.isakmp_delete(i);
                self.send_informational(now, i, vec![d]);
            }
        }
        self.clear_all(DeleteReason::Local);
    }

    /// Deletes one child SA (by our inbound SPI) and tells the peer.
    pub fn delete_child(&mut self, now: Timestamp, inbound_spi: u32) -> Result<(), Ikev1Error> {
        let i = self
            .children
            .iter()
            .position(|c| c.sa.inbound_spi == inbound_spi)
            .ok_or(Ikev1Error::Unexpected("no child SA with that SPI"))?;
        let c = self.children.remove(i);
        if let Some(idx) = self.newest_established() {
            let d = Payload::Delete(DeletePayload {
                doi: DOI_IPSEC,
                protocol: ProtocolId::ESP,
                spi_size: 4,
                spis: vec![inbound_spi.to_be_bytes().to_vec()],
            });
            self.send_informational(now, idx, vec![d]);
        }
        self.events.push_back(Ikev1Event::Deleted {
            sa: DeletedSa::Child {
                inbound_spi: c.sa.inbound_spi,
                outbound_spi: c.sa.outbound_spi,
            },
            reason: DeleteReason::Local,
        });
        Ok(())
    }

    /// Test hook: sends a protected Informational with any payloads over
    /// the newest ISAKMP SA (to throw authenticated oddities at a peer).
    #[cfg(test)]
    pub(crate) fn send_informational_for_test(&mut self, now: Timestamp, payloads: Vec<Payload>) {
        if let Some(idx) = self.newest_established() {
            self.send_informational(now, idx, payloads);
        }
    }

    /// Tells the session that traffic arrived from the peer (ESP opened):
    /// DPD stays quiet while the peer is evidently alive.
    pub fn note_inbound_traffic(&mut self, now: Timestamp) {
        self.peer_alive(now);
    }

    // ------------------------------------------------------------------
    // Outputs
    // ------------------------------------------------------------------

    /// The next IKE datagram to send: (local, remote, UDP payload).
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Ikev1Event> {
        self.events.pop_front()
    }

    /// The earliest deadline, if any.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let mut t = Timestamp::NEVER;
        for p in &self.p1 {
            if let Some(r) = &p.rtx {
                t = t.min(r.deadline);
            }
            if p.state == P1State::Established {
                if !p.rekey_started {
                    t = t.min(p.rekey_at);
                }
                t = t.min(p.expire_at);
            } else {
                t = t.min(p.half_open_until);
            }
        }
        for q in &self.qms {
            if let Some(r) = &q.rtx {
                t = t.min(r.deadline);
            }
            if q.state == QmState::Done {
                t = t.min(q.done_at + QM_KEEP);
            }
        }
        for c in &self.children {
            if !c.rekeying && !c.replaced {
                t = t.min(c.rekey_at);
            }
            t = t.min(c.expire_at).min(c.delete_at);
        }
        if let Some(d) = self.dpd.next {
            if self.is_established() {
                t = t.min(d);
            }
        }
        (t != Timestamp::NEVER).then_some(t)
    }

    // ------------------------------------------------------------------
    // Timers
    // ------------------------------------------------------------------

    /// Runs every timer due at `now` (spurious calls are harmless).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.p1_retransmits(now);
        self.qm_retransmits(now);
        self.p1_lifetimes(now);
        self.child_lifetimes(now);
        self.qms
            .retain(|q| !(q.state == QmState::Done && q.done_at + QM_KEEP <= now));
        self.dpd_tick(now);
    }

    /// Sends what is due again; returns the exchanges out of tries as
    /// (index, exchange, transmissions), by index.
    fn resend_or_fail(&mut self, due: Vec<Option<RtxDue>>) -> Vec<(usize, &'static str, u32)> {
        let mut failed = Vec::new();
        for (i, d) in due.into_iter().enumerate() {
            match d {
                Some(RtxDue::Resend(bytes)) => self.send(bytes),
                Some(RtxDue::GiveUp(what, count)) => failed.push((i, what, count)),
                None => {}
            }
        }
        failed
    }

    fn p1_retransmits(&mut self, now: Timestamp) {
        let settings = self.settings.retransmit;
        let due: Vec<_> = self
            .p1
            .iter_mut()
            .map(|p| p.rtx.as_mut().and_then(|r| r.due(now, &settings)))
            .collect();
        let failed = self.resend_or_fail(due);
        for (i, what, count) in failed.into_iter().rev() {
            let p = self.p1.remove(i);
            if p.is_rekey {
                // Try again later, while the current SA lasts.
                let retry = now + self.settings.retransmit.initial;
                if let Some(j) = self.newest_established() {
                    self.p1[j].rekey_started = false;
                    self.p1[j].rekey_at = retry;
                }
            }
            self.error(Ikev1Error::Timeout {
                exchange: what,
                transmissions: count,
            });
        }
    }

    fn qm_retransmits(&mut self, now: Timestamp) {
        let settings = self.settings.retransmit;
        let due: Vec<_> = self
            .qms
            .iter_mut()
            .map(|q| q.rtx.as_mut().and_then(|r| r.due(now, &settings)))
            .collect();
        let failed = self.resend_or_fail(due);
        for (i, what, count) in failed.into_iter().rev() {
            let q = self.qms.remove(i);
            if let Some(old) = q.rekey_of {
                if let Some(c) = self.children.iter_mut().find(|c| c.sa.inbound_spi == old) {
                    c.rekeying = false;
                    c.rekey_at = now + self.settings.retransmit.initial;
                }
            }
            self.error(Ikev1Error::Timeout {
                exchange: what,
                transmissions: count,
            });
        }
    }

    fn p1_lifetimes(&mut self, now: Timestamp) {
        self.p1
            .retain(|p| p.state == P1State::Established || p.half_open_until > now);
        let mut i = 0;
        while i < self.p1.len() {
            let p = &self.p1[i];
            if p.state == P1State::Established && p.expire_at <= now {
                let p = self.p1.remove(i);
                self.events.push_back(Ikev1Event::Deleted {
                    sa: DeletedSa::Phase1 {
                        initiator_cookie: p.icky,
                        responder_cookie: p.rcky,
                    },
                    reason: DeleteReason::Expired,
                });
                if self.p1.is_empty() && self.want_child {
                    // Keep the tunnel up: negotiate a fresh ISAKMP SA.
                    if let Err(e) = self.start_main_mode(now, !self.children.is_empty()) {
                        self.error(e);
                    }
                }
                continue;
            }
            i += 1;
        }
        let due = self
            .p1
            .iter()
            .any(|p| p.state == P1State::Established && !p.rekey_started && p.rekey_at <= now);
        let negotiating = self.p1.iter().any(|p| p.state != P1State::Established);
        if due {
            for p in self.p1.iter_mut() {
                p.rekey_started = true;
            }
            if !negotiating {
                if let Err(e) = self.start_main_mode(now, true) {
                    self.error(e);
                }
            }
        }
    }

    fn child_lifetimes(&mut self, now: Timestamp) {
        let retired: Vec<u32> = self
            .children
            .iter()
            .filter(|c| c.delete_at <= now && c.expire_at > now)
            .map(|c| c.sa.inbound_spi)
            .collect();
        for spi in retired {
            if let Err(e) = self.delete_child(now, spi) {
                self.error(e);
            }
        }
        let mut i = 0;
        while i < self.children.len() {
            if self.children[i].expire_at <= now {
                let c = self.children.remove(i);
                self.events.push_back(Ikev1Event::Deleted {
                    sa: DeletedSa::Child {
                        inbound_spi: c.sa.inbound_spi,
                        outbound_spi: c.sa.outbound_spi,
                    },
                    reason: DeleteReason::Expired,
                });
                continue;
            }
            i += 1;
        }
        let due: Vec<u32> = self
            .children
            .iter()
            .filter(|c| !c.rekeying && !c.replaced && c.rekey_at <= now)
            .map(|c| c.sa.inbound_spi)
            .collect();
        for spi in due {
            if let Some(c) = self.children.iter_mut().find(|c| c.sa.inbound_spi == spi) {
                c.rekeying = true;
            }
            if let Err(e) = self.start_quick_mode(now, Some(spi)) {
                self.error(e);
            }
        }
    }

    /// RFC 3706 DPD: after `interval` without anything from the peer, send
    /// R-U-THERE, and again every `interval` while unanswered; the peer is
    /// dead once `timeout` (AWS: 30 s = 10 s × 3) has passed since it was
    /// last heard.
    fn dpd_tick(&mut self, now: Timestamp) {
        let Some(cfg) = self.settings.dpd else {
            return;
        };
        let interval = Duration::from_secs(cfg.interval.max(1).into());
        let timeout = Duration::from_secs(cfg.timeout.max(cfg.interval.max(1)).into());
        let Some(idx) = self.newest_established() else {
            self.dpd.next = None;
            return;
        };
        if !self.p1[idx].peer_dpd {
            self.dpd.next = None;
            return;
        }
        let next = *self.dpd.next.get_or_insert(self.dpd.last_rx + interval);
        if next > now {
            return;
        }
        let silent = now.saturating_since(self.dpd.last_rx);
        if self.dpd.outstanding > 0 && silent >= timeout {
            self.events
                .push_back(Ikev1Event::DpdTimeout { action: cfg.action });
            match cfg.action {
                DpdAction::None => {
                    self.dpd.outstanding = 0;
                    self.dpd.last_rx = now;
                    self.dpd.next = Some(now + interval);
                }
                DpdAction::Clear => self.clear_all(DeleteReason::DeadPeer),
                DpdAction::Restart => {
                    self.clear_all(DeleteReason::DeadPeer);
                    self.want_child = true;
                    if let Err(e) = self.start_main_mode(now, false) {
                        self.error(e);
                    }
                }
            }
            return;
        }
        if silent < interval {
            self.dpd.next = Some(self.dpd.last_rx + interval);
            return;
        }
        self.dpd.seq = self.dpd.seq.wrapping_add(1);
        self.dpd.outstanding += 1;
        self.dpd.next = Some((now + interval).min(self.dpd.last_rx + timeout));
        let p = &self.p1[idx];
        let n = Payload::Notify(NotifyPayload::new(
            ProtocolId::ISAKMP,
            NotifyType::R_U_THERE,
            p.spi16(),
            self.dpd.seq.to_be_bytes().to_vec(),
        ));
        self.send_informational(now, idx, vec![n]);
    }

    fn peer_alive(&mut self, now: Timestamp) {
        self.dpd.last_rx = now;
        self.dpd.outstanding = 0;
        if let Some(cfg) = self.settings.dpd {
            self.dpd.next = Some(now + Duration::from_secs(cfg.interval.max(1).into()));
        }
    }

    fn clear_all(&mut self, reason: DeleteReason) {
        for c in core::mem::take(&mut self.children) {
            self.events.push_back(Ikev1Event::Deleted {
                sa: DeletedSa::Child {
                    inbound_spi: c.sa.inbound_spi,
                    outbound_spi: c.sa.outbound_spi,
                },
                reason,
            });
        }
        for p in core::mem::take(&mut self.p1) {
            if p.state == P1State::Established {
                self.events.push_back(Ikev1Event::Deleted {
                    sa: DeletedSa::Phase1 {
                        initiator_cookie: p.icky,
                        responder_cookie: p.rcky,
                    },
                    reason,
                });
            }
        }
        self.qms.clear();
        // With nothing left, the next Main Mode tells the peer so.
        self.initial_contact_sent = false;
        self.dpd.outstanding = 0;
        self.dpd.next = None;
        self.local = self.settings.local;
        self.remote = self.settings.remote;
    }

    // ------------------------------------------------------------------
    // Helpers
    // ------------------------------------------------------------------

    fn error(&mut self, e: Ikev1Error) {
        self.events.push_back(Ikev1Event::Error(e));
    }

    fn random(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.entropy.fill(&mut v);
        v
    }

    fn cookie(&mut self) -> [u8; 8] {
        loop {
            let mut c = [0u8; 8];
            self.entropy.fill(&mut c);
            if c != [0; 8] {
                return c;
            }
        }
    }

    fn spi(&mut self) -> u32 {
        loop {
            let s = self.entropy.next_u32();
            if s >= 256 && !self.children.iter().any(|c| c.sa.inbound_spi == s) {
                return s;
            }
        }
    }

    fn message_id(&mut self) -> u32 {
        loop {
            let m = self.entropy.next_u32();
            if m != 0 && !self.qms.iter().any(|q| q.mid == m) {
                return m;
            }
        }
    }

    /// When to rekey something of `lifetime`: the initiator at lifetime −
    /// margin − random fuzz, the responder later (lifetime − margin / 2), so
    /// that it only rekeys when the initiator did not.
    fn rekey_time(&mut self, now: Timestamp, lifetime: Duration, initiator: bool) -> Timestamp {
        let margin = self.settings.rekey_margin;
        let before = if initiator {
            let max_fuzz = margin.as_millis() * u128::from(self.settings.rekey_fuzz_percent) / 100;
            let fuzz = match u64::try_from(max_fuzz) {
                Ok(0) | Err(_) => 0,
                Ok(m) => self.entropy.next_u64() % m.saturating_add(1),
            };
            margin.saturating_add(Duration::from_millis(fuzz))
        } else {
            margin / 2
        };
        let when = if before >= lifetime {
            lifetime / 2
        } else {
            lifetime - before
        };
        now + when
    }

    fn local_id(&self) -> IdPayload {
        match &self.settings.local_id {
            Some(id) => id.to_payload(),
            None => Identity::Address(self.settings.local.ip()).to_payload(),
        }
    }

    fn remote_id(&self) -> IdPayload {
        match &self.settings.remote_id {
            Some(id) => id.to_payload(),
            None => Identity::Address(self.settings.remote.ip()).to_payload(),
        }
    }

    fn send(&mut self, bytes: Vec<u8>) {
        self.send_to(self.local, self.remote, bytes);
    }

    fn send_to(&mut self, local: SocketAddr, remote: SocketAddr, bytes: Vec<u8>) {
        let out = if local.port() == IKE_PORT {
            bytes
        } else {
            let mut v = Vec::with_capacity(bytes.len() + 4);
            v.extend_from_slice(&[0; 4]);
            v.extend_from_slice(&bytes);
            v
        };
        self.transmits.push_back((local, remote, out));
    }

    fn newest_established(&self) -> Option<usize> {
        self.p1
            .iter()
            .rposition(|p| p.state == P1State::Established)
    }

    fn isakmp_delete(&self, idx: usize) -> Payload {
        Payload::Delete(DeletePayload {
            doi: DOI_IPSEC,
            protocol: ProtocolId::ISAKMP,
            spi_size: 16,
            spis: vec![self.p1[idx].spi16()],
        })
    }

    /// Sends a protected Informational exchange: HASH(1) | payloads.
    fn send_informational(&mut self, _now: Timestamp, idx: usize, payloads: Vec<Payload>) {
        let mid = self.message_id();
        let p = &self.p1[idx];
        let rest = encode_rest(&payloads);
        let hash = p
            .prf()
            .prf_parts(p.skeyid_a(), &[&mid.to_be_bytes(), &rest]);
        let (first, chain) = hashed_chain(&hash, &payloads);
        let iv = iv_from_hash(p.prf(), &[&p.iv, &mid.to_be_bytes()]);
        let (dgram, _) = p.seal(
            p.header(ExchangeType::INFORMATIONAL, true, mid),
            first,
            &chain,
            &iv,
        );
        self.send(dgram);
    }

    /// An unprotected Informational with one notification (errors before
    /// keys exist), sent to where the offending datagram came from.
    fn send_plain_notify(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        icky: [u8; 8],
        rcky: [u8; 8],
        notify: NotifyType,
    ) {
        let mut spi = icky.to_vec();
        spi.extend_from_slice(&rcky);
        let msg = super::wire::Message {
            header: Header::new(icky, rcky, ExchangeType::INFORMATIONAL, Flags(0), 0),
            payloads: vec![Payload::Notify(NotifyPayload::new(
                ProtocolId::ISAKMP,
                notify,
                spi,
                vec![],
            ))],
        };
        self.send_to(local, remote, msg.encode());
    }

    // ------------------------------------------------------------------
    // Input
    // ------------------------------------------------------------------

    /// Processes one UDP payload received on `local` from `remote`. On a
    /// port other than 500 the non-ESP marker is expected (NAT-keepalives
    /// are ignored). Errors describe why the datagram was dropped; failures
    /// of an exchange are also reported as [`Ikev1Event::Error`].
    pub fn handle_datagram(
        &mut self,
        now: Timestamp,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Ikev1Error> {
        let ike = if local.port() == IKE_PORT {
            bytes
        } else {
            match classify(bytes) {
                NatTDatagram::Ike(b) => b,
                NatTDatagram::Keepalive => return Ok(()),
                _ => return Err(Ikev1Error::Unexpected("not IKE on the NAT-T port")),
            }
        };
        let (hdr, body) = split_datagram(ike)?;
        match hdr.exchange {
            ExchangeType::MAIN_MODE => self.on_main_mode(now, local, remote, ike, &hdr, body),
            ExchangeType::QUICK_MODE => self.on_quick_mode(now, local, remote, ike, &hdr, body),
            ExchangeType::INFORMATIONAL => self.on_informational(now, local, remote, &hdr, body),
            _ => Err(Ikev1Error::Unexpected("unsupported exchange type")),
        }
    }

    // ------------------------------------------------------------------
    // Main Mode
    // ------------------------------------------------------------------

    fn start_main_mode(&mut self, now: Timestamp, rekey: bool) -> Result<(), Ikev1Error> {
        let icky = self.cookie();
        let sa = phase1_sa(&self.settings.ike_proposals, self.settings.ike_lifetime);
        let mut p = Phase1::new(icky, [0; 8], true, P1State::ISentSa);
        p.sa_i_b = sa.to_body();
        p.is_rekey = rekey;
        let msg = super::wire::Message {
            header: p.header(ExchangeType::MAIN_MODE, false, 0),
            payloads: vec![
                Payload::Sa(sa),
                Payload::VendorId(VID_NAT_T_RFC3947.to_vec()),
                Payload::VendorId(VID_DPD.to_vec()),
            ],
        };
        let bytes = msg.encode();
        p.rtx = Some(Rtx {
            bytes: bytes.clone(),
            count: 1,
            deadline: now + self.settings.retransmit.timeout(0),
            what: "Main Mode (SA)",
        });
        if !rekey {
            self.local = self.settings.local;
            self.remote = self.settings.remote;
        }
        self.p1.push(p);
        self.send(bytes);
        Ok(())
    }

    fn on_main_mode(
        &mut self,
        now: Timestamp,
        local: SocketAddr,
        remote: SocketAddr,
        ike: &[u8],
        hdr: &Header,
        body: &[u8],
    ) -> Result<(), Ikev1Error> {
        let idx = self.p1.iter().position(|p| {
            p.icky == hdr.initiator_cookie
                && (p.rcky == hdr.responder_cookie
                    || (p.initiator && p.state == P1State::ISentSa)
                    || (!p.initiator && hdr.responder_cookie == [0; 8]))
        });
        let Some(idx) = idx else {
            if hdr.responder_cookie == [0; 8] && !hdr.flags.encrypted() {
                return self.on_mm1(now, local, remote, ike, hdr, body);
            }
            return Err(Ikev1Error::Unexpected(
                "Main Mode message for unknown cookies",
            ));
        };
        if let Some(reply) = self.p1[idx].cached_reply(ike) {
            self.send_to(local, remote, reply);
            return Ok(());
        }
        let p = &self.p1[idx];
        let encrypted = hdr.flags.encrypted();
        match (p.state, encrypted) {
            (P1State::ISentSa, false) => self.on_mm2(now, idx, hdr, body),
            (P1State::ISentKe, false) => self.on_mm4(now, idx, hdr, body),
            (P1State::ISentId, true) => self.on_mm6(now, local, remote, idx, hdr, body),
            (P1State::RSentSa, false) => self.on_mm3(local, remote, ike, idx, hdr, body),
            (P1State::RSentKe, true) => self.on_mm5(now, local, remote, ike, idx, hdr, body),
            _ => Err(Ikev1Error::Unexpected("Main Mode message out of order")),
        }
    }

    fn on_mm1(
        &mut self,
        now: Timestamp,
        local: SocketAddr,
        remote: SocketAddr,
        ike: &[u8],
        hdr: &Header,
        body: &[u8],
    ) -> Result<(), Ikev1Error> {
        if hdr.message_id != 0 {
            return Err(Ikev1Error::Unexpected("Main Mode with a message ID"));
        }
        let b = Body::parse(hdr.next_payload, body.to_vec())?;
        let sa_b = b
            .find(PayloadType::SA)
            .ok_or(Ikev1Error::Unexpected("Main Mode message 1 without SA"))?
            .to_vec();
        let offer = SaPayload::decode(&sa_b)?;
        if self.p1.len() >= MAX_PHASE1 {
            return Err(Ikev1Error::Unexpected("too many ISAKMP SAs in negotiation"));
        }
        let ours = phase1_suites(&self.settings.ike_proposals, self.settings.ike_lifetime);
        let Some((suite, transform)) = select_phase1(&ours, &offer) else {
            self.send_plain_notify(
                local,
                remote,
                hdr.initiator_cookie,
                [0; 8],
                NotifyType::NO_PROPOSAL_CHOSEN,
            );
            let e = Ikev1Error::NoProposalChosen {
                phase: "Main Mode",
                ours: format_list(&self.settings.ike_proposals),
                theirs: describe_phase1_offer(&offer),
            };
            self.error(e.clone());
            return Err(e);
        };
        let rcky = self.cookie();
        let mut p = Phase1::new(hdr.initiator_cookie, rcky, false, P1State::RSentSa);
        p.half_open_until = now + HALF_OPEN;
        p.sa_i_b = sa_b;
        p.suite = Some(suite);
        p.lifetime = negotiated_lifetime(suite.lifetime, self.settings.ike_lifetime);
        let vids = b.all(PayloadType::VID);
        p.peer_nat_t = vids.contains(&&VID_NAT_T_RFC3947[..]);
        p.peer_dpd = vids.contains(&&VID_DPD[..]);
        p.is_rekey = self.is_established();
        let number = offer
            .proposals
            .iter()
            .find(|pr| pr.transforms.contains(&transform))
            .map_or(1, |pr| pr.number);
        let reply = super::wire::Message {
            header: p.header(ExchangeType::MAIN_MODE, false, 0),
            payloads: vec![
                Payload::Sa(SaPayload {
                    doi: DOI_IPSEC,
                    situation: SIT_IDENTITY_ONLY,
                    proposals: vec![Proposal {
                        number,
                        protocol: ProtocolId::ISAKMP,
                        spi: vec![],
                        transforms: vec![transform],
                    }],
                }),
                Payload::VendorId(VID_NAT_T_RFC3947.to_vec()),
                Payload::VendorId(VID_DPD.to_vec()),
            ],
        }
        .encode();
        p.replies.push((ike.to_vec(), reply.clone()));
        self.p1.push(p);
        self.send_to(local, remote, reply);
        Ok(())
    }

    fn on_mm2(
        &mut self,
        now: Timestamp,
        idx: usize,
        hdr: &Header,
        body: &[u8],
    ) -> Result<(), Ikev1Error> {
        let b = Body::parse(hdr.next_payload, body.to_vec())?;
        let sa = SaPayload::decode(
            b.find(PayloadType::SA)
                .ok_or(Ikev1Error::Unexpected("Main Mode message 2 without SA"))?,
        )?;
        let ours = phase1_suites(&self.settings.ike_proposals, self.settings.ike_lifetime);
        let Some(suite) = accept_phase1(&ours, &sa) else {
            self.p1.remove(idx);
            let e = Ikev1Error::NoProposalChosen {
                phase: "Main Mode",
                ours: format_list(&self.settings.ike_proposals),
                theirs: format!("a reply choosing {}", describe_phase1_offer(&sa)),
            };
            self.error(e.clone());
            return Err(e);
        };
        let vids: Vec<Vec<u8>> = b.all(PayloadType::VID).iter().map(|v| v.to_vec()).collect();
        let dh = suite.group.generate(&mut *self.entropy)?;
        let ni = self.random(NONCE_LEN);
        let fake = self.random(16);
        let (local, remote, force) = (self.local, self.remote, self.settings.force_nat_t);
        let p = &mut self.p1[idx];
        p.rcky = hdr.responder_cookie;
        p.suite = Some(suite);
        p.lifetime = negotiated_lifetime(suite.lifetime, self.settings.ike_lifetime);
        p.peer_nat_t = vids.iter().any(|v| v[..] == VID_NAT_T_RFC3947);
        p.peer_dpd = vids.iter().any(|v| v[..] == VID_DPD);
        p.ke_i = dh.public_value().to_vec();
        p.dh = Some(dh);
        p.ni = ni.clone();
        let mut payloads = vec![Payload::Ke(p.ke_i.clone()), Payload::Nonce(ni)];
        if p.peer_nat_t {
            payloads.push(Payload::NatD(natd(suite.hash, &p.icky, &p.rcky, remote)));
            let ours = if force {
                super::crypt::hash(suite.hash, &[&fake])
            } else {
                natd(suite.hash, &p.icky, &p.rcky, local)
            };
            payloads.push(Payload::NatD(ours));
        }
        let bytes = super::wire::Message {
            header: p.header(ExchangeType::MAIN_MODE, false, 0),
            payloads,
        }
        .encode();
        p.state = P1State::ISentKe;
        p.rtx = Some(Rtx {
            bytes: bytes.clone(),
            count: 1,
            deadline: now + self.settings.retransmit.timeout(0),
            what: "Main Mode (KE)",
        });
        self.send(bytes);
        Ok(())
    }

    /// Derives the phase 1 keys once both KE and nonces are known.
    fn derive_phase1(&mut self, idx: usize) -> Result<(), Ikev1Error> {
        let psk = self.settings.psk.clone();
        let p = &mut self.p1[idx];
        let suite = p.suite.ok_or(Ikev1Error::Unexpected("no suite"))?;
        let peer_ke = if p.initiator { &p.ke_r } else { &p.ke_i };
        let dh = p.dh.as_ref().ok_or(Ikev1Error::Unexpected("no DH"))?;
        let g_xy = dh.shared_secret(peer_ke)?;
        let skeyid = skeyid_psk(suite.hash, psk.expose().as_bytes(), &p.ni, &p.nr);
        let keys = Ikev1Keys::derive(suite.hash, &skeyid, g_xy.as_bytes(), &p.icky, &p.rcky);
        let key = keys.encryption_key(suite.hash, usize::from(suite.encryption.key_bits() / 8));
        p.cipher = Cipher::new(suite.encryption, key);
        p.keys = Some(keys);
        p.iv = iv_from_hash(suite.hash, &[&p.ke_i, &p.ke_r]);
        p.dh = None;
        Ok(())
    }

    /// NAT detection (RFC 3947 §3.2): whether either side is behind a NAT.
    fn detect_nat(
        &self,
        idx: usize,
        natds: &[&[u8]],
        local: SocketAddr,
        remote: SocketAddr,
    ) -> bool {
        let p = &self.p1[idx];
        if !p.peer_nat_t {
            return false;
        }
        if self.settings.force_nat_t {
            return true;
        }
        let Some((dest, srcs)) = natds.split_first() else {
            return false;
        };
        let prf = p.prf();
        let we_behind = *dest != natd(prf, &p.icky, &p.rcky, local).as_slice();
        let mine = natd(prf, &p.icky, &p.rcky, remote);
        let peer_behind = !srcs.contains(&mine.as_slice());
        we_behind || peer_behind
    }

    fn on_mm4(
        &mut self,
        now: Timestamp,
        idx: usize,
        hdr: &Header,
        body: &[u8],
    ) -> Result<(), Ikev1Error> {
        let b = Body::parse(hdr.next_payload, body.to_vec())?;
        let ke = b
            .find(PayloadType::KE)
            .ok_or(Ikev1Error::Unexpected("Main Mode message 4 without KE"))?;
        let nr = b
            .find(PayloadType::NONCE)
            .ok_or(Ikev1Error::Unexpected("Main Mode message 4 without nonce"))?;
        if !(8..=256).contains(&nr.len()) {
            return Err(Ikev1Error::Unexpected("nonce length outside 8..256"));
        }
        {
            let p = &mut self.p1[idx];
            p.ke_r = ke.to_vec();
            p.nr = nr.to_vec();
        }
        if let Err(e) = self.derive_phase1(idx) {
            self.p1.remove(idx);
            self.error(e.clone());
            return Err(e);
        }
        let nat = self.detect_nat(idx, &b.all(PayloadType::NAT_D), self.local, self.remote);
        if nat {
            self.local = with_port(self.local, NAT_T_PORT);
            self.remote = with_port(self.remote, NAT_T_PORT);
        }
        let id = self.local_id();
        let initial_contact = !self.initial_contact_sent && !self.p1[idx].is_rekey;
        self.initial_contact_sent = true;
        let p = &mut self.p1[idx];
        p.nat_t = nat;
        let id_b = id.to_body();
        let hash_i = p.prf().prf_parts(
            p.keys.as_ref().map_or(&[][..], |k| &k.skeyid[..]),
            &[&p.ke_i, &p.ke_r, &p.icky, &p.rcky, &p.sa_i_b, &id_b],
        );
        let mut payloads = vec![Payload::Id(id), Payload::Hash(hash_i.to_vec())];
        if initial_contact {
            payloads.push(Payload::Notify(NotifyPayload::new(
                ProtocolId::ISAKMP,
                NotifyType::INITIAL_CONTACT,
                p.spi16(),
                vec![],
            )));
        }
        let chain = encode_rest(&payloads);
        let (bytes, last) = p.seal(
            p.header(ExchangeType::MAIN_MODE, true, 0),
            PayloadType::ID,
            &chain,
            &p.iv,
        );
        p.iv = last;
        p.state = P1State::ISentId;
        p.rtx = Some(Rtx {
            bytes: bytes.clone(),
            count: 1,
            deadline: now + self.settings.retransmit.timeout(0),
            what: "Main Mode message 5 (no answer usually means different PSKs)",
        });
        self.send(bytes);
        Ok(())
    }

    fn on_mm3(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        ike: &[u8],
        idx: usize,
        hdr: &Header,
        body: &[u8],
    ) -> Result<(), Ikev1Error> {
        let b = Body::parse(hdr.next_payload, body.to_vec())?;
        let ke = b
            .find(PayloadType::KE)
            .ok_or(Ikev1Error::Unexpected("Main Mode message 3 without KE"))?;
        let ni = b
            .find(PayloadType::NONCE)
            .ok_or(Ikev1Error::Unexpected("Main Mode message 3 without nonce"))?;
        if !(8..=256).contains(&ni.len()) {
            return Err(Ikev1Error::Unexpected("nonce length outside 8..256"));
        }
        let group = self.p1[idx]
            .suite
            .map(|s| s.group)
            .ok_or(Ikev1Error::Unexpected("no suite"))?;
        let dh = group.generate(&mut *self.entropy)?;
        let nr = self.random(NONCE_LEN);
        let fake = self.random(16);
        {
            let p = &mut self.p1[idx];
            p.ke_i = ke.to_vec();
            p.ni = ni.to_vec();
            p.ke_r = dh.public_value().to_vec();
            p.dh = Some(dh);
            p.nr = nr.clone();
        }
        if let Err(e) = self.derive_phase1(idx) {
            self.p1.remove(idx);
            self.error(e.clone());
            return Err(e);
        }
        let nat = self.detect_nat(idx, &b.all(PayloadType::NAT_D), local, remote);
        let force = self.settings.force_nat_t;
        let p = &mut self.p1[idx];
        p.nat_t = nat;
        let prf = p.prf();
        let mut payloads = vec![Payload::Ke(p.ke_r.clone()), Payload::Nonce(nr)];
        if p.peer_nat_t {
            payloads.push(Payload::NatD(natd(prf, &p.icky, &p.rcky, remote)));
            let ours = if force {
                super::crypt::hash(prf, &[&fake])
            } else {
                natd(prf, &p.icky, &p.rcky, local)
            };
            payloads.push(Payload::NatD(ours));
        }
        let reply = super::wire::Message {
            header: p.header(ExchangeType::MAIN_MODE, false, 0),
            payloads,
        }
        .encode();
        p.state = P1State::RSentKe;
        p.replies.push((ike.to_vec(), reply.clone()));
        self.send_to(local, remote, reply);
        Ok(())
    }

    /// Responder: a Main Mode message 5 that cannot be decrypted or whose
    /// HASH_I is wrong means the PSKs differ.
    fn psk_failure(
        &mut self,
        idx: usize,
        local: SocketAddr,
        remote: SocketAddr,
        detail: &'static str,
    ) -> Ikev1Error {
        let p = self.p1.remove(idx);
        self.send_plain_notify(
            local,
            remote,
            p.icky,
            p.rcky,
            NotifyType::INVALID_HASH_INFORMATION,
        );
        let e = Ikev1Error::PskMismatch { detail };
        self.error(e.clone());
        e
    }

    #[allow(clippy::too_many_arguments)]
    fn on_mm5(
        &mut self,
        now: Timestamp,
        local: SocketAddr,
        remote: SocketAddr,
        ike: &[u8],
        idx: usize,
        hdr: &Header,
        body: &[u8],
    ) -> Result<(), Ikev1Error> {
        let p = &self.p1[idx];
        let Some(plain) = p.open(&p.iv, body) else {
            return Err(self.psk_failure(
                idx,
                local,
                remote,
                "Main Mode message 5 is not a whole number of cipher blocks",
            ));
        };
        let Ok(b) = Body::parse(hdr.next_payload, plain) else {
            return Err(self.psk_failure(
                idx,
                local,
                remote,
                "Main Mode message 5 does not decrypt to payloads (different PSKs)",
            ));
        };
        let (Some(id_b), Some(hash)) = (b.find(PayloadType::ID), b.find(PayloadType::HASH)) else {
            return Err(self.psk_failure(
                idx,
                local,
                remote,
                "Main Mode message 5 decrypts without ID and HASH (different PSKs)",
            ));
        };
        let expected = p.prf().prf_parts(
            p.keys.as_ref().map_or(&[][..], |k| &k.skeyid[..]),
            &[&p.ke_i, &p.ke_r, &p.icky, &p.rcky, &p.sa_i_b, id_b],
        );
        if !ct_eq(hash, &expected) {
            return Err(self.psk_failure(
                idx,
                local,
                remote,
                "HASH_I of the initiator does not verify (different PSKs)",
            ));
        }
        let want = self.remote_id();
        let got = IdPayload::decode(id_b)?;
        if got.id_type != want.id_type || got.data != want.data {
            self.p1.remove(idx);
            self.send_plain_notify(
                local,
                remote,
                hdr.initiator_cookie,
                hdr.responder_cookie,
                NotifyType::INVALID_ID_INFORMATION,
            );
            let e = Ikev1Error::IdentityMismatch {
                expected: want.to_string(),
                got: got.to_string(),
            };
            self.error(e.clone());
            return Err(e);
        }
        let initial_contact = b.payloads().iter().any(
            |pl| matches!(pl, Payload::Notify(n) if n.notify_type == NotifyType::INITIAL_CONTACT),
        );
        // Authenticated: the peer's current addresses are where we talk.
        self.local = local;
        self.remote = remote;
        let id = self.local_id();
        let p = &mut self.p1[idx];
        p.iv = last_block(body);
        let id_r = id.to_body();
        let hash_r = p.prf().prf_parts(
            p.keys.as_ref().map_or(&[][..], |k| &k.skeyid[..]),
            &[&p.ke_r, &p.ke_i, &p.rcky, &p.icky, &p.sa_i_b, &id_r],
        );
        let chain = encode_rest(&[Payload::Id(id), Payload::Hash(hash_r.to_vec())]);
        let (reply, last) = p.seal(
            p.header(ExchangeType::MAIN_MODE, true, 0),
            PayloadType::ID,
            &chain,
            &p.iv,
        );
        p.iv = last;
        p.nat_t = p.nat_t || local.port() != IKE_PORT;
        p.replies.push((ike.to_vec(), reply.clone()));
        self.send_to(local, remote, reply);
        let idx = if initial_contact {
            self.p1[idx].is_rekey = false;
            self.initial_contact(idx)
        } else {
            idx
        };
        self.phase1_up(now, idx);
        Ok(())
    }

    /// INITIAL-CONTACT: the peer has no memory of older SAs; drop them.
    /// Returns the index of the kept SA, which may have moved.
    fn initial_contact(&mut self, keep: usize) -> usize {
        let keep_cookies = (self.p1[keep].icky, self.p1[keep].rcky);
        let mut i = 0;
        while i < self.p1.len() {
            let p = &self.p1[i];
            if (p.icky, p.rcky) != keep_cookies && p.state == P1State::Established {
                let p = self.p1.remove(i);
                self.events.push_back(Ikev1Event::Deleted {
                    sa: DeletedSa::Phase1 {
                        initiator_cookie: p.icky,
                        responder_cookie: p.rcky,
                    },
                    reason: DeleteReason::Peer,
                });
                continue;
            }
            i += 1;
        }
        self.qms.retain(|q| q.icky == keep_cookies.0);
        for c in core::mem::take(&mut self.children) {
            self.events.push_back(Ikev1Event::Deleted {
                sa: DeletedSa::Child {
                    inbound_spi: c.sa.inbound_spi,
                    outbound_spi: c.sa.outbound_spi,
                },
                reason: DeleteReason::Peer,
            });
        }
        self.p1
            .iter()
            .position(|p| (p.icky, p.rcky) == keep_cookies)
            .unwrap_or(0)
    }

    fn on_mm6(
        &mut self,
        now: Timestamp,
        local: SocketAddr,
        remote: SocketAddr,
        idx: usize,
        hdr: &Header,
        body: &[u8],
    ) -> Result<(), Ikev1Error> {
        let p = &self.p1[idx];
        let parsed = p
            .open(&p.iv, body)
            .and_then(|plain| Body::parse(hdr.next_payload, plain).ok());
        let verified = parsed.as_ref().and_then(|b| {
            let id_b = b.find(PayloadType::ID)?;
            let hash = b.find(PayloadType::HASH)?;
            let expected = p.prf().prf_parts(
                p.keys.as_ref().map_or(&[][..], |k| &k.skeyid[..]),
                &[&p.ke_r, &p.ke_i, &p.rcky, &p.icky, &p.sa_i_b, id_b],
            );
            ct_eq(hash, &expected).then(|| id_b.to_vec())
        });
        let Some(id_b) = verified else {
            self.p1.remove(idx);
            let e = Ikev1Error::PskMismatch {
                detail: "HASH_R of the responder does not verify (different PSKs)",
            };
            self.error(e.clone());
            return Err(e);
        };
        let want = self.remote_id();
        let got = IdPayload::decode(&id_b)?;
        if got.id_type != want.id_type || got.data != want.data {
            self.p1.remove(idx);
            let e = Ikev1Error::IdentityMismatch {
                expected: want.to_string(),
                got: got.to_string(),
            };
            self.error(e.clone());
            return Err(e);
        }
        self.local = local;
        self.remote = remote;
        self.p1[idx].iv = last_block(body);
        self.phase1_up(now, idx);
        Ok(())
    }

    fn phase1_up(&mut self, now: Timestamp, idx: usize) {
        let (lifetime, initiator) = (self.p1[idx].lifetime, self.p1[idx].initiator);
        let rekey_at = self.rekey_time(now, lifetime, initiator);
        let p = &mut self.p1[idx];
        p.state = P1State::Established;
        p.rtx = None;
        p.rekey_at = rekey_at;
        p.expire_at = now + lifetime;
        p.rekey_started = false;
        p.half_open_until = Timestamp::NEVER;
        let ev = Ikev1Event::PhaseOneUp {
            initiator_cookie: p.icky,
            responder_cookie: p.rcky,
            initiator: p.initiator,
            rekey: p.is_rekey,
            nat_t: p.nat_t,
        };
        let (is_rekey, cookies) = (p.is_rekey, (p.icky, p.rcky));
        self.events.push_back(ev);
        self.peer_alive(now);
        // Only the newest ISAKMP SA is ever rekeyed.
        for q in self.p1.iter_mut() {
            if (q.icky, q.rcky) != cookies {
                q.rekey_started = true;
            }
        }
        if is_rekey && initiator {
            // The replacement is up: delete the older ISAKMP SAs.
            let old: Vec<usize> = (0..self.p1.len())
                .filter(|&i| {
                    let q = &self.p1[i];
                    q.state == P1State::Established && (q.icky, q.rcky) != cookies
                })
                .collect();
            for &i in &old {
                let d = self.isakmp_delete(i);
                self.send_informational(now, i, vec![d]);
            }
            for i in old.into_iter().rev() {
                let q = self.p1.remove(i);
                self.events.push_back(Ikev1Event::Deleted {
                    sa: DeletedSa::Phase1 {
                        initiator_cookie: q.icky,
                        responder_cookie: q.rcky,
                    },
                    reason: DeleteReason::Local,
                });
            }
        }
        if initiator
            && self.want_child
            && self.children.is_empty()
            && !self.qms.iter().any(|q| q.state != QmState::Done)
        {
            if let Err(e) = self.start_quick_mode(now, None) {
                self.error(e);
            }
        }
    }

    // ------------------------------------------------------------------
    // Quick Mode
    // ------------------------------------------------------------------

    fn start_quick_mode(
        &mut self,
        now: Timestamp,
        rekey_of: Option<u32>,
    ) -> Result<(), Ikev1Error> {
        let idx = self
            .newest_established()
            .ok_or(Ikev1Error::NotEstablished)?;
        let mid = self.message_id();
        let spi = self.spi();
        let ni = self.random(NONCE_LEN);
        let nat_t = self.p1[idx].nat_t;
        let suites = esp_suites(
            &self.settings.esp_proposals,
            nat_t,
            self.settings.child_lifetime,
        );
        let pfs = suites.first().and_then(|s| s.pfs);
        let dh = match pfs {
            Some(g) => Some(g.generate(&mut *self.entropy)?),
            None => None,
        };
        let mut rest = vec![
            Payload::Sa(esp_sa(&suites, spi)),
            Payload::Nonce(ni.clone()),
        ];
        if let Some(k) = &dh {
            rest.push(Payload::Ke(k.public_value().to_vec()));
        }
        rest.push(Payload::Id(prefix_id(&self.settings.local_proxy)));
        rest.push(Payload::Id(prefix_id(&self.settings.remote_proxy)));
        let p = &self.p1[idx];
        let rest_b = encode_rest(&rest);
        let hash1 = p
            .prf()
            .prf_parts(p.skeyid_a(), &[&mid.to_be_bytes(), &rest_b]);
        let (first, chain) = hashed_chain(&hash1, &rest);
        let iv = iv_from_hash(p.prf(), &[&p.iv, &mid.to_be_bytes()]);
        let (bytes, last) = p.seal(
            p.header(ExchangeType::QUICK_MODE, true, mid),
            first,
            &chain,
            &iv,
        );
        let q = QuickMode {
            mid,
            icky: p.icky,
            initiator: true,
            state: QmState::SentQm1,
            iv: last,
            ni,
            nr: Vec::new(),
            suites,
            inbound_spi: spi,
            dh,
            rekey_of,
            rtx: Some(Rtx {
                bytes: bytes.clone(),
                count: 1,
                deadline: now + self.settings.retransmit.timeout(0),
                what: "Quick Mode",
            }),
            replies: Vec::new(),
            pending: None,
            done_at: Timestamp::NEVER,
        };
        self.qms.push(q);
        self.send(bytes);
        Ok(())
    }

    fn on_quick_mode(
        &mut self,
        now: Timestamp,
        local: SocketAddr,
        remote: SocketAddr,
        ike: &[u8],
        hdr: &Header,
        body: &[u8],
    ) -> Result<(), Ikev1Error> {
        if !hdr.flags.encrypted() || hdr.message_id == 0 {
            return Err(Ikev1Error::Unexpected("unprotected Quick Mode"));
        }
        let Some(pidx) = self.p1.iter().position(|p| {
            p.state == P1State::Established
                && p.icky == hdr.initiator_cookie
                && p.rcky == hdr.responder_cookie
        }) else {
            return Err(Ikev1Error::NotEstablished);
        };
        let qidx = self
            .qms
            .iter()
            .position(|q| q.mid == hdr.message_id && q.icky == hdr.initiator_cookie);
        let Some(qidx) = qidx else {
            return self.on_qm1(now, local, remote, ike, pidx, hdr, body);
        };
        if let Some(reply) = self.qms[qidx]
            .replies
            .iter()
            .find(|(i, _)| i == ike)
            .map(|(_, o)| o.clone())
        {
            self.send_to(local, remote, reply);
            return Ok(());
        }
        let q = &self.qms[qidx];
        match (q.initiator, q.state) {
            (true, QmState::SentQm1) => self.on_qm2(now, local, remote, ike, pidx, qidx, hdr, body),
            (false, QmState::SentQm2) => self.on_qm3(now, local, remote, pidx, qidx, hdr, body),
            _ => Err(Ikev1Error::Unexpected("Quick Mode message out of order")),
        }
    }

    /// Decrypts and checks the HASH of a protected message; returns the body.
    fn open_hashed(
        &self,
        pidx: usize,
        iv: &[u8; BLOCK],
        hdr: &Header,
        body: &[u8],
        prefix: &[&[u8]],
        what: &'static str,
    ) -> Result<Body, Ikev1Error> {
        let p = &self.p1[pidx];
        let plain = p.open(iv, body).ok_or(Ikev1Error::BadHash(what))?;
        let b = Body::parse(hdr.next_payload, plain).map_err(|_| Ikev1Error::BadHash(what))?;
        let (hash, rest) = b.hash_and_rest().ok_or(Ikev1Error::BadHash(what))?;
        let mut parts: Vec<&[u8]> = prefix.to_vec();
        parts.push(rest);
        let expected = p.prf().prf_parts(p.skeyid_a(), &parts);
        if !ct_eq(hash, &expected) {
            return Err(Ikev1Error::BadHash(what));
        }
        Ok(b)
    }

    #[allow(clippy::too_many_arguments)]
    fn on_qm1(
        &mut self,
        now: Timestamp,
        local: SocketAddr,
        remote: SocketAddr,
        ike: &[u8],
        pidx: usize,
        hdr: &Header,
        body: &[u8],
    ) -> Result<(), Ikev1Error> {
        let mid = hdr.message_id.to_be_bytes();
        let p = &self.p1[pidx];
        let iv = iv_from_hash(p.prf(), &[&p.iv, &mid]);
        let b = self.open_hashed(pidx, &iv, hdr, body, &[&mid], "Quick Mode message 1")?;
        self.local = local;
        self.remote = remote;
        self.peer_alive(now);
        let sa = SaPayload::decode(
            b.find(PayloadType::SA)
                .ok_or(Ikev1Error::Unexpected("Quick Mode without SA"))?,
        )?;
        let ni = b
            .find(PayloadType::NONCE)
            .ok_or(Ikev1Error::Unexpected("Quick Mode without nonce"))?
            .to_vec();
        let ke = b.find(PayloadType::KE).map(<[u8]>::to_vec);
        let ids = b.all(PayloadType::ID);
        let nat_t = self.p1[pidx].nat_t;
        let ours = esp_suites(
            &self.settings.esp_proposals,
            nat_t,
            self.settings.child_lifetime,
        );
        let Some((suite, peer_spi, transform)) = select_esp(&ours, &sa) else {
            let spi = sa
                .proposals
                .first()
                .map(|p| p.spi.clone())
                .unwrap_or_default();
            let n = Payload::Notify(NotifyPayload::new(
                ProtocolId::ESP,
                NotifyType::NO_PROPOSAL_CHOSEN,
                spi,
                vec![],
            ));
            self.send_informational(now, pidx, vec![n]);
            let e = Ikev1Error::NoProposalChosen {
                phase: "Quick Mode",
                ours: format_list(&self.settings.esp_proposals),
                theirs: describe_esp_offer(&sa),
            };
            self.error(e.clone());
            return Err(e);
        };
        if suite.pfs.is_some() != ke.is_some() {
            return Err(Ikev1Error::Unexpected(
                "KE presence does not match the PFS group",
            ));
        }
        let (local_proxy, remote_proxy) = (
            prefix_id(&self.settings.local_proxy),
            prefix_id(&self.settings.remote_proxy),
        );
        if let [idci, idcr] = ids.as_slice() {
            let (ci, cr) = (IdPayload::decode(idci)?, IdPayload::decode(idcr)?);
            if ci != remote_proxy || cr != local_proxy {
                let n = Payload::Notify(NotifyPayload::new(
                    ProtocolId::ESP,
                    NotifyType::INVALID_ID_INFORMATION,
                    peer_spi.to_be_bytes().to_vec(),
                    vec![],
                ));
                self.send_informational(now, pidx, vec![n]);
                let e = Ikev1Error::ProxyIdMismatch {
                    ours: format!("{} <-> {}", local_proxy, remote_proxy),
                    theirs: format!("{ci} <-> {cr}"),
                };
                self.error(e.clone());
                return Err(e);
            }
        }
        let spi = self.spi();
        let nr = self.random(NONCE_LEN);
        let (dh, g_qm) = match (suite.pfs, &ke) {
            (Some(g), Some(ke)) => {
                let k = g.generate(&mut *self.entropy)?;
                let s = k.shared_secret(ke)?;
                (Some(k), Some(s))
            }
            _ => (None, None),
        };
        let number = sa
            .proposals
            .iter()
            .find(|pr| pr.transforms.contains(&transform))
            .map_or(1, |pr| pr.number);
        let mut rest = vec![
            Payload::Sa(SaPayload {
                doi: DOI_IPSEC,
                situation: SIT_IDENTITY_ONLY,
                proposals: vec![Proposal {
                    number,
                    protocol: ProtocolId::ESP,
                    spi: spi.to_be_bytes().to_vec(),
                    transforms: vec![transform],
                }],
            }),
            Payload::Nonce(nr.clone()),
        ];
        if let Some(k) = &dh {
            rest.push(Payload::Ke(k.public_value().to_vec()));
        }
        for id in &ids {
            rest.push(Payload::Id(IdPayload::decode(id)?));
        }
        let child = self.make_child(
            pidx,
            &suite,
            spi,
            peer_spi,
            false,
            g_qm.as_ref().map(|s| s.as_bytes()),
            &ni,
            &nr,
        );
        let p = &self.p1[pidx];
        let rest_b = encode_rest(&rest);
        let hash2 = p.prf().prf_parts(p.skeyid_a(), &[&mid, &ni, &rest_b]);
        let (first, chain) = hashed_chain(&hash2, &rest);
        let (reply, last) = p.seal(
            p.header(ExchangeType::QUICK_MODE, true, hdr.message_id),
            first,
            &chain,
            &last_block(body),
        );
        let q = QuickMode {
            mid: hdr.message_id,
            icky: p.icky,
            initiator: false,
            state: QmState::SentQm2,
            iv: last,
            ni,
            nr,
            suites: ours,
            inbound_spi: spi,
            dh: None,
            rekey_of: None,
            rtx: Some(Rtx {
                bytes: reply.clone(),
                count: 1,
                deadline: now + self.settings.retransmit.timeout(0),
                what: "Quick Mode (waiting for HASH(3))",
            }),
            replies: vec![(ike.to_vec(), reply.clone())],
            pending: Some(child),
            done_at: Timestamp::NEVER,
        };
        self.qms.push(q);
        self.send(reply);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn make_child(
        &self,
        pidx: usize,
        suite: &EspSuite,
        inbound_spi: u32,
        outbound_spi: u32,
        initiator: bool,
        g_qm: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
    ) -> NegotiatedChildSa {
        let p = &self.p1[pidx];
        let d = p.keys.as_ref().map_or(&[][..], |k| &k.skeyid_d[..]);
        let enc_len = suite.encryption.keymat_len();
        let int_len = suite.integrity.map_or(0, |i| i.key_len());
        let km = |spi: u32| {
            quick_mode_keymat(
                p.prf(),
                d,
                g_qm,
                ProtocolId::ESP.0,
                &spi.to_be_bytes(),
                ni,
                nr,
                enc_len + int_len,
            )
        };
        let split = |k: SecretBytes| {
            (
                SecretBytes::new(k[..enc_len].to_vec()),
                SecretBytes::new(k[enc_len..].to_vec()),
            )
        };
        let (in_enc, in_integ) = split(km(inbound_spi));
        let (out_enc, out_integ) = split(km(outbound_spi));
        let lifetime = negotiated_lifetime(suite.lifetime, self.settings.child_lifetime);
        NegotiatedChildSa {
            inbound_spi,
            outbound_spi,
            encryption: suite.encryption,
            integrity: suite.integrity,
            pfs_group: suite.pfs,
            lifetime,
            udp_encapsulated: suite.udp_encapsulated,
            local_proxy: self.settings.local_proxy,
            remote_proxy: self.settings.remote_proxy,
            initiator,
            keys: ChildKeys {
                in_enc,
                in_integ,
                out_enc,
                out_integ,
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_qm2(
        &mut self,
        now: Timestamp,
        local: SocketAddr,
        remote: SocketAddr,
        ike: &[u8],
        pidx: usize,
        qidx: usize,
        hdr: &Header,
        body: &[u8],
    ) -> Result<(), Ikev1Error> {
        let mid = hdr.message_id.to_be_bytes();
        let q = &self.qms[qidx];
        let b = self.open_hashed(
            pidx,
            &q.iv,
            hdr,
            body,
            &[&mid, &q.ni],
            "Quick Mode message 2",
        )?;
        self.local = local;
        self.remote = remote;
        self.peer_alive(now);
        let sa = SaPayload::decode(
            b.find(PayloadType::SA)
                .ok_or(Ikev1Error::Unexpected("Quick Mode without SA"))?,
        )?;
        let nr = b
            .find(PayloadType::NONCE)
            .ok_or(Ikev1Error::Unexpected("Quick Mode without nonce"))?
            .to_vec();
        let q = &self.qms[qidx];
        let Some((suite, peer_spi)) = accept_esp(&q.suites, &sa) else {
            self.qms.remove(qidx);
            let e = Ikev1Error::NoProposalChosen {
                phase: "Quick Mode",
                ours: format_list(&self.settings.esp_proposals),
                theirs: format!("a reply choosing {}", describe_esp_offer(&sa)),
            };
            self.error(e.clone());
            return Err(e);
        };
        let g_qm = match (&q.dh, b.find(PayloadType::KE)) {
            (Some(k), Some(ke)) => Some(k.shared_secret(ke)?),
            (None, None) => None,
            _ => return Err(Ikev1Error::Unexpected("KE presence does not match PFS")),
        };
        let child = self.make_child(
            pidx,
            &suite,
            q.inbound_spi,
            peer_spi,
            true,
            g_qm.as_ref().map(|s| s.as_bytes()),
            &q.ni,
            &nr,
        );
        let p = &self.p1[pidx];
        let q = &self.qms[qidx];
        let hash3 = p.prf().prf_parts(p.skeyid_a(), &[&[0u8], &mid, &q.ni, &nr]);
        let (first, chain) = hashed_chain(&hash3, &[]);
        let (reply, _) = p.seal(
            p.header(ExchangeType::QUICK_MODE, true, hdr.message_id),
            first,
            &chain,
            &last_block(body),
        );
        let q = &mut self.qms[qidx];
        let rekey_of = q.rekey_of;
        q.state = QmState::Done;
        q.done_at = now;
        q.rtx = None;
        q.dh = None;
        q.replies.push((ike.to_vec(), reply.clone()));
        self.send(reply);
        self.install_child(now, child, rekey_of);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn on_qm3(
        &mut self,
        now: Timestamp,
        local: SocketAddr,
        remote: SocketAddr,
        pidx: usize,
        qidx: usize,
        hdr: &Header,
        body: &[u8],
    ) -> Result<(), Ikev1Error> {
        let mid = hdr.message_id.to_be_bytes();
        let q = &self.qms[qidx];
        let p = &self.p1[pidx];
        let plain = p
            .open(&q.iv, body)
            .ok_or(Ikev1Error::BadHash("Quick Mode message 3"))?;
        let b = Body::parse(hdr.next_payload, plain)
            .map_err(|_| Ikev1Error::BadHash("Quick Mode message 3"))?;
        let hash = b
            .find(PayloadType::HASH)
            .ok_or(Ikev1Error::BadHash("Quick Mode message 3"))?;
        let expected = p
            .prf()
            .prf_parts(p.skeyid_a(), &[&[0u8], &mid, &q.ni, &q.nr]);
        if !ct_eq(hash, &expected) {
            return Err(Ikev1Error::BadHash("Quick Mode message 3"));
        }
        self.local = local;
        self.remote = remote;
        self.peer_alive(now);
        let q = &mut self.qms[qidx];
        q.state = QmState::Done;
        q.done_at = now;
        q.rtx = None;
        if let Some(child) = q.pending.take() {
            self.install_child(now, child, None);
        }
        Ok(())
    }

    fn install_child(&mut self, now: Timestamp, sa: NegotiatedChildSa, rekey_of: Option<u32>) {
        // A rekey is explicit on the initiator; the responder recognises a
        // new child for the same proxy IDs as replacing the old one.
        let old = match rekey_of {
            Some(spi) => self.children.iter().position(|c| c.sa.inbound_spi == spi),
            None => self.children.iter().position(|c| {
                !c.replaced
                    && c.sa.local_proxy == sa.local_proxy
                    && c.sa.remote_proxy == sa.remote_proxy
            }),
        };
        let rekey_at = self.rekey_time(now, sa.lifetime, sa.initiator);
        let expire_at = now + sa.lifetime;
        self.children.push(Child {
            sa: sa.clone(),
            rekey_at,
            expire_at,
            rekeying: false,
            replaced: false,
            delete_at: Timestamp::NEVER,
        });
        match old {
            Some(i) => {
                let (old_in, old_out) = {
                    let c = &mut self.children[i];
                    c.replaced = true;
                    (c.sa.inbound_spi, c.sa.outbound_spi)
                };
                self.events.push_back(Ikev1Event::ChildSaRekeyed {
                    old_inbound_spi: old_in,
                    old_outbound_spi: old_out,
                    new: sa,
                });
                if rekey_of.is_some() {
                    // We rekeyed: retire the old SA on both sides once
                    // packets in flight on it have arrived.
                    self.children[i].delete_at = now + REKEY_DELETE_DELAY;
                }
            }
            None => self.events.push_back(Ikev1Event::ChildSaNegotiated(sa)),
        }
    }

    // ------------------------------------------------------------------
    // Informational
    // ------------------------------------------------------------------

    fn on_informational(
        &mut self,
        now: Timestamp,
        local: SocketAddr,
        remote: SocketAddr,
        hdr: &Header,
        body: &[u8],
    ) -> Result<(), Ikev1Error> {
        if !hdr.flags.encrypted() {
            return self.on_plain_notify(hdr, body);
        }
        if let Some(i) = self.p1.iter().position(|p| {
            p.initiator
                && p.state == P1State::ISentId
                && p.icky == hdr.initiator_cookie
                && p.rcky == hdr.responder_cookie
        }) {
            // The responder derived keys but answers our ID/HASH with an
            // encrypted notification instead of its own: it could not
            // decrypt or verify message 5, which is what different PSKs do.
            let p = &self.p1[i];
            let mid = hdr.message_id.to_be_bytes();
            let iv = iv_from_hash(p.prf(), &[&p.iv, &mid]);
            let readable = self
                .open_hashed(i, &iv, hdr, body, &[&mid], "Informational")
                .is_ok();
            if !readable {
                self.p1.remove(i);
                let e = Ikev1Error::PskMismatch {
                    detail: "the peer answered Main Mode message 5 with a notification we cannot decrypt",
                };
                self.error(e.clone());
                return Err(e);
            }
        }
        let Some(pidx) = self.p1.iter().position(|p| {
            p.state == P1State::Established
                && p.icky == hdr.initiator_cookie
                && p.rcky == hdr.responder_cookie
        }) else {
            return Err(Ikev1Error::NotEstablished);
        };
        let mid = hdr.message_id.to_be_bytes();
        let p = &self.p1[pidx];
        let iv = iv_from_hash(p.prf(), &[&p.iv, &mid]);
        let b = self.open_hashed(pidx, &iv, hdr, body, &[&mid], "Informational")?;
        self.local = local;
        self.remote = remote;
        let cookies = (hdr.initiator_cookie, hdr.responder_cookie);
        for payload in b.payloads() {
            // A DELETE or INITIAL-CONTACT earlier in this message may have
            // removed or moved this ISAKMP SA.
            let Some(pidx) = self.p1.iter().position(|p| (p.icky, p.rcky) == cookies) else {
                break;
            };
            match payload {
                Payload::Notify(n) => self.on_notify(now, pidx, n),
                Payload::Delete(d) => self.on_delete(d),
                _ => {}
            }
        }
        // Any authentic message shows the peer is alive (after R-U-THERE
        // handling, which compares sequence numbers).
        self.peer_alive(now);
        Ok(())
    }

    fn on_notify(&mut self, now: Timestamp, pidx: usize, n: NotifyPayload) {
        match n.notify_type {
            NotifyType::R_U_THERE => {
                let ack = Payload::Notify(NotifyPayload::new(
                    ProtocolId::ISAKMP,
                    NotifyType::R_U_THERE_ACK,
                    self.p1[pidx].spi16(),
                    n.data,
                ));
                self.send_informational(now, pidx, vec![ack]);
            }
            NotifyType::R_U_THERE_ACK => {}
            NotifyType::INITIAL_CONTACT => {
                self.initial_contact(pidx);
            }
            NotifyType::NO_PROPOSAL_CHOSEN => {
                let before = self.qms.len();
                self.drop_pending_quick_modes(&n.spi);
                if self.qms.len() != before {
                    self.error(Ikev1Error::NoProposalChosen {
                        phase: "Quick Mode",
                        ours: format_list(&self.settings.esp_proposals),
                        theirs: "unknown (the peer rejected all of ours)".into(),
                    });
                }
            }
            t if t.is_error() => {
                self.drop_pending_quick_modes(&n.spi);
                self.error(Ikev1Error::PeerNotify {
                    notify: t,
                    exchange: "Informational",
                });
            }
            _ => {}
        }
    }

    /// Drops the Quick Modes we initiated that a notification is about: the
    /// one whose SPI it names, or all pending ones when it names none of
    /// them (peers differ in the SPI they put there).
    fn drop_pending_quick_modes(&mut self, spi: &[u8]) {
        let pending = |q: &QuickMode| q.initiator && q.state == QmState::SentQm1;
        let named = self
            .qms
            .iter()
            .any(|q| pending(q) && q.inbound_spi.to_be_bytes() == spi);
        self.qms
            .retain(|q| !(pending(q) && (!named || q.inbound_spi.to_be_bytes() == spi)));
    }

    fn on_delete(&mut self, d: DeletePayload) {
        match (d.protocol, d.spi_size) {
            (ProtocolId::ISAKMP, 16) => {
                for spi in &d.spis {
                    let Some(i) = self.p1.iter().position(|p| p.spi16() == *spi) else {
                        continue;
                    };
                    let p = self.p1.remove(i);
                    self.events.push_back(Ikev1Event::Deleted {
                        sa: DeletedSa::Phase1 {
                            initiator_cookie: p.icky,
                            responder_cookie: p.rcky,
                        },
                        reason: DeleteReason::Peer,
                    });
                }
            }
            (ProtocolId::ESP, 4) => {
                for spi in &d.spis {
                    let Ok(b) = <[u8; 4]>::try_from(spi.as_slice()) else {
                        continue;
                    };
                    let spi = u32::from_be_bytes(b);
                    let Some(i) = self.children.iter().position(|c| c.sa.outbound_spi == spi)
                    else {
                        continue;
                    };
                    let c = self.children.remove(i);
                    self.events.push_back(Ikev1Event::Deleted {
                        sa: DeletedSa::Child {
                            inbound_spi: c.sa.inbound_spi,
                            outbound_spi: c.sa.outbound_spi,
                        },
                        reason: DeleteReason::Peer,
                    });
                }
            }
            _ => {}
        }
    }

    /// An unprotected notification: believed only for a Main Mode we
    /// initiated and that is still in progress.
    fn on_plain_notify(&mut self, hdr: &Header, body: &[u8]) -> Result<(), Ikev1Error> {
        let b = Body::parse(hdr.next_payload, body.to_vec())?;
        let Some(idx) = self.p1.iter().position(|p| {
            p.initiator && p.state != P1State::Established && p.icky == hdr.initiator_cookie
        }) else {
            return Err(Ikev1Error::Unexpected("unprotected notification"));
        };
        let Some(n) = b.payloads().into_iter().find_map(|pl| match pl {
            Payload::Notify(n) if n.notify_type.is_error() => Some(n),
            _ => None,
        }) else {
            return Err(Ikev1Error::Unexpected("unprotected notification"));
        };
        let state = self.p1[idx].state;
        self.p1.remove(idx);
        let e = match (n.notify_type, state) {
            (NotifyType::NO_PROPOSAL_CHOSEN, _) => Ikev1Error::NoProposalChosen {
                phase: "Main Mode",
                ours: format_list(&self.settings.ike_proposals),
                theirs: "unknown (the peer rejected all of ours)".into(),
            },
            (
                NotifyType::INVALID_HASH_INFORMATION
                | NotifyType::AUTHENTICATION_FAILED
                | NotifyType::PAYLOAD_MALFORMED
                | NotifyType::INVALID_PAYLOAD_TYPE,
                P1State::ISentId,
            ) => Ikev1Error::PskMismatch {
                detail: "the peer could not decrypt or verify our Main Mode message 5",
            },
            (t, _) => Ikev1Error::PeerNotify {
                notify: t,
                exchange: "Main Mode",
            },
        };
        self.error(e.clone());
        Err(e)
    }
}
