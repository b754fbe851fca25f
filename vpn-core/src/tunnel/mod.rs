//! One IPsec tunnel: the keying (IKE, or manual keys), its ESP child SAs and
//! the datagrams that carry them.
//!
//! A [`Tunnel`] is a sans-IO object like every other in this crate. Its
//! methods fall in four groups:
//! - getters: [`state`](Tunnel::state), [`metrics`](Tunnel::metrics),
//!   [`headroom`](Tunnel::headroom), ...
//! - inputs (`handle_*`): a received UDP datagram, a timeout;
//! - commands: [`connect`](Tunnel::connect), [`close`](Tunnel::close), and
//!   [`send_inner`](Tunnel::send_inner), which seals a packet for the peer at once;
//! - outputs (`poll_*`): control datagrams to send, events, the next deadline.
//!
//! After any input or command, drain transmits, then events, then read the
//! timeout. The data path never allocates: [`send_inner`](Tunnel::send_inner)
//! seals in the caller's buffer and [`handle_datagram`](Tunnel::handle_datagram)
//! opens in it.
//!
//! With [`Keying::Ikev2`] the tunnel runs an [`Ikev2Session`]:
//! - [`connect`](Tunnel::connect) initiates (startup action `start`) or
//!   starts listening as responder (`add`); either way the state becomes
//!   `Connecting`, then `Up` once a child SA is installed.
//! - Datagrams arriving on port 500 are IKE; on port 4500 the non-ESP marker
//!   tells IKE from ESP (dispatched by SPI to the right child SA, including
//!   an old inbound SA kept for a few seconds after a rekey) and from NAT
//!   keepalives. Bind both ports and hand every datagram from either in.
//! - [`poll_transmit`](Tunnel::poll_transmit) yields IKE messages (from the
//!   local address on port 500, or 4500 with the marker once NAT-T is in
//!   use) and keepalives; `Transmit::remote` is where the peer was last seen.
//! - ESP always travels in UDP 4500 ([`send_inner`](Tunnel::send_inner)).
//!
//! With [`Keying::Ikev1`] the tunnel runs an [`Ikev1Session`] the same way
//! (same events, same [`DownReason`]s), with these differences:
//! - [`connect`](Tunnel::connect) initiates Main Mode when the settings'
//!   `startup_action` is `Start`; the session answers the peer's Main Mode
//!   at any time once connected (also after the tunnel went down).
//! - NAT-T is always forced (ESP only travels in UDP 4500 here); when the
//!   tunnel has one local and one remote traffic prefix they are the Quick
//!   Mode proxy IDs.
//! - A rekeyed child SA carries our traffic once the peer sends on it, once
//!   the old one is deleted, or [`IKEV1_REKEY_GRACE`] after it was
//!   installed, whichever comes first (nothing acknowledges Quick Mode
//!   message 3); a deleted old inbound SA accepts packets for
//!   [`IKEV1_REKEY_GRACE`] more.
//! - NAT keepalives go out after [`IKEV1_KEEPALIVE_INTERVAL`] without
//!   anything sent on 4500, while a UDP-encapsulated child SA is installed.
//! - The tunnel goes down when the session has neither an ISAKMP SA nor a
//!   child SA left (peer DELETEs: `PeerDeleted`), on a DPD timeout with
//!   action `clear`/`restart`, or when the negotiation bringing it up fails;
//!   a failed rekey while up is a `NegotiationFailed` event.
//!
//! Randomness, with either IKE version: [`Tunnel::with_entropy`] hands in a
//! source for the tunnel's life; with [`Tunnel::new`],
//! [`connect`](Tunnel::connect) seeds a ChaCha20 generator from the entropy
//! passed to it. `handle_timeout` keeps its signature.

mod child;

use core::fmt;
use core::ops::Range;
use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::config::{DpdAction, Prefix, StartupAction, TunnelConfig};
use crate::entropy::{Entropy, SeededEntropy};
use crate::esp::nat_t::{self, NatTDatagram, NON_ESP_MARKER_LEN};
use crate::esp::{EncryptionAlgorithm, EspError, EspEvent, EspKeys, IntegrityAlgorithm, Limits};
use crate::ike::proposal::ProposalError;
use crate::ike::v1::wire::NotifyType;
use crate::ike::v1::{
    DeleteReason, DeletedSa, Ikev1Error, Ikev1Event, Ikev1Session, Ikev1Settings, NegotiatedChildSa,
};
use crate::ike::v2::{ts, IkeState, Ikev2Session, Ikev2Settings, Outgoing, SessionEvent};
use crate::time::Timestamp;

pub use child::{ChildSa, ChildSaMetrics};

/// UDP port of IKE and of ESP-in-UDP (RFC 3948).
pub const NAT_T_PORT: u16 = 4500;

/// IKEv1 tunnels: NAT keepalive interval while ESP is UDP-encapsulated
/// (strongSwan's and AWS's 20 s).
pub const IKEV1_KEEPALIVE_INTERVAL: core::time::Duration = core::time::Duration::from_secs(20);

/// IKEv1 tunnels: how long a replaced inbound SA still accepts packets after
/// it was deleted (by the peer's DELETE, or ours
/// [`REKEY_DELETE_DELAY`](crate::ike::v1::REKEY_DELETE_DELAY) after a rekey),
/// and how long a rekeyed SA waits at most for the peer's first packet
/// before it carries our traffic.
pub const IKEV1_REKEY_GRACE: core::time::Duration = core::time::Duration::from_secs(5);

/// How a tunnel gets its keys.
#[derive(Debug)]
pub enum Keying {
    /// Static SAs configured by hand on both ends, like `ip xfrm state add`:
    /// no IKE, no rekeying. For labs, tests and emergencies.
    Manual(ManualKeying),
    /// IKEv2 (RFC 7296) with a pre-shared key.
    Ikev2(Box<Ikev2Settings>),
    /// IKEv1 (RFC 2409) Main Mode with a pre-shared key, Quick Mode with PFS.
    Ikev1(Box<Ikev1Settings>),
}

/// The two static SAs of a manually keyed tunnel. Key bytes are wiped on drop.
pub struct ManualKeying {
    pub outbound: ManualSa,
    pub inbound: ManualSa,
}

impl core::fmt::Debug for ManualKeying {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ManualKeying")
            .field("outbound_spi", &format_args!("{:#010x}", self.outbound.spi))
            .field("inbound_spi", &format_args!("{:#010x}", self.inbound.spi))
            .finish_non_exhaustive()
    }
}

/// One direction of a manually keyed tunnel.
pub struct ManualSa {
    pub spi: u32,
    pub encryption: EncryptionAlgorithm,
    pub integrity: Option<IntegrityAlgorithm>,
    /// AEAD key followed by its salt, or the CBC key.
    pub encryption_key: zeroize::Zeroizing<Vec<u8>>,
    pub integrity_key: zeroize::Zeroizing<Vec<u8>>,
    pub esn: bool,
}

/// Everything a tunnel needs to know.
#[derive(Debug)]
pub struct TunnelSettings {
    /// Our outside address; ESP-in-UDP uses port 4500 on it.
    pub local: SocketAddr,
    /// The peer's outside address.
    pub remote: SocketAddr,
    pub keying: Keying,
    /// Inner traffic this tunnel carries from us (0.0.0.0/0 as AWS uses).
    pub local_traffic: Vec<Prefix>,
    /// Inner traffic this tunnel carries from the peer: decrypted packets
    /// whose source lies outside are dropped.
    pub remote_traffic: Vec<Prefix>,
    /// Anti-replay window of inbound child SAs.
    pub replay_window: u32,
}

/// Why a [`TunnelConfig`] does not make [`TunnelSettings`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Proposal(#[from] ProposalError),
    #[error(transparent)]
    Ikev1(#[from] Ikev1Error),
}

impl Keying {
    /// IKE keying from a tunnel config: IKEv1 or IKEv2 by its `ike_version`.
    pub fn from_config(config: &TunnelConfig) -> Result<Keying, SettingsError> {
        Ok(if config.ike_version == 1 {
            Keying::Ikev1(Box::new(Ikev1Settings::from_tunnel_config(config)?))
        } else {
            Keying::Ikev2(Box::new(Ikev2Settings::from_config(config)?))
        })
    }
}

impl TunnelSettings {
    /// An IKE tunnel from its config (IKEv1 or IKEv2 by `ike_version`):
    /// outside addresses on port 500, `local_traffic` / `remote_traffic` as
    /// given (AWS: 0.0.0.0/0 both).
    pub fn from_config(
        config: &TunnelConfig,
        local_traffic: Vec<Prefix>,
        remote_traffic: Vec<Prefix>,
    ) -> Result<TunnelSettings, SettingsError> {
        Ok(TunnelSettings {
            local: SocketAddr::new(config.local_outside_address, 500),
            remote: SocketAddr::new(config.remote_outside_address, 500),
            keying: Keying::from_config(config)?,
            local_traffic,
            remote_traffic,
            replay_window: config.replay_window,
        })
    }
}

/// Where a tunnel stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelState {
    /// Not connected; nothing is negotiated.
    Down,
    /// Negotiating keys.
    Connecting,
    /// Child SAs installed: traffic flows.
    Up,
}

/// Why a tunnel went down, named so that an operator can act on it.
/// Never carries key material. New causes may be added: match with a
/// wildcard arm.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DownReason {
    /// [`Tunnel::close`] was called.
    Closed,
    /// An SA reached its hard lifetime without being replaced.
    SaExpired,
    /// The peer deleted the IKE SA.
    PeerDeleted,
    /// A liveness check went unanswered for the DPD timeout.
    DpdTimeout,
    /// A request went unanswered after this many retransmissions.
    PeerUnreachable { retransmits: u32 },
    /// PSK or identity mismatch (either side's verdict).
    AuthenticationFailed { detail: &'static str },
    /// No common proposal: what we offered, and what the peer offered
    /// when we know it (as responder).
    NoProposalChosen {
        ours: String,
        theirs: Option<String>,
    },
    /// The traffic selectors have no intersection.
    TsUnacceptable,
    /// The peer answered with this error notification.
    PeerError { notify: String },
    /// The peer broke the protocol.
    Protocol(&'static str),
    /// Something failed on our side (configuration, crypto).
    Internal(&'static str),
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::Closed => f.write_str("closed locally"),
            DownReason::SaExpired => f.write_str("SA expired without being rekeyed"),
            DownReason::PeerDeleted => f.write_str("peer deleted the IKE SA"),
            DownReason::DpdTimeout => f.write_str("dead peer detection timeout"),
            DownReason::PeerUnreachable { retransmits } => {
                write!(f, "peer unreachable after {retransmits} retransmits")
            }
            DownReason::AuthenticationFailed { detail } => {
                write!(
                    f,
                    "authentication failed (pre-shared key mismatch?): {detail}"
                )
            }
            DownReason::NoProposalChosen { ours, theirs } => match theirs {
                Some(t) => write!(f, "no proposal chosen: we offered {ours}, peer offered {t}"),
                None => write!(f, "no proposal chosen: peer accepted none of {ours}"),
            },
            DownReason::TsUnacceptable => {
                f.write_str("traffic selectors unacceptable (no common inner networks)")
            }
            DownReason::PeerError { notify } => write!(f, "peer sent error {notify}"),
            DownReason::Protocol(what) => write!(f, "protocol error: {what}"),
            DownReason::Internal(what) => write!(f, "internal error: {what}"),
        }
    }
}

/// Something the tunnel's owner may want to know or act on. New events may
/// be added: match with a wildcard arm.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TunnelEvent {
    StateChanged {
        from: TunnelState,
        to: TunnelState,
    },
    /// A child SA pair now carries traffic.
    ChildSaInstalled {
        inbound_spi: u32,
        outbound_spi: u32,
    },
    /// An ESP SA needs attention (soft lifetime: rekey; hard: expired).
    Esp(EspEvent),
    Down {
        reason: DownReason,
    },
    /// The IKE SA is authenticated (phase 1 up).
    IkeSaEstablished {
        spi_i: u64,
        spi_r: u64,
    },
    /// A child SA replaced another (the old inbound SA lingers briefly).
    ChildSaRekeyed {
        old_inbound_spi: u32,
        inbound_spi: u32,
        outbound_spi: u32,
    },
    /// A child SA was removed.
    ChildSaDeleted {
        inbound_spi: u32,
    },
    /// The IKE SA was replaced by a rekey.
    IkeSaRekeyed {
        old_spi_i: u64,
        old_spi_r: u64,
        spi_i: u64,
        spi_r: u64,
    },
    /// NAT detection: `local` we are behind a NAT (or pretend to be, to force
    /// UDP encapsulation), `remote` the peer is.
    NatDetected {
        local: bool,
        remote: bool,
    },
    /// A liveness check failed and the DPD action is `none`: SAs kept.
    DeadPeerDetected,
    /// A new IKE SA attempt from the peer failed while the established one
    /// stays up (e.g. a wrong PSK from an impostor).
    NegotiationFailed {
        reason: DownReason,
    },
}

/// A datagram to send, written at the start of the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Send from this local address and port...
    pub local: SocketAddr,
    /// ...to this remote address and port, over UDP.
    pub remote: SocketAddr,
    /// Bytes of UDP payload at the start of the buffer.
    pub len: usize,
}

/// What a received datagram turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// A decrypted inner IP packet, at this range of the caller's buffer.
    Inner { range: Range<usize> },
    /// Consumed by the control plane (IKE, NAT keepalive, TFC dummy packet).
    Control,
    /// Dropped; the reason is counted in the metrics.
    Dropped(DropReason),
}

/// Why a datagram or inner packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Not from our peer's address.
    UnknownPeer,
    /// An ESP SPI we do not have.
    UnknownSpi,
    /// Rejected by the SA (replay, ICV, malformed, expired).
    Esp(EspError),
    /// Decrypted, but from or to an address outside the negotiated traffic selectors.
    OutsideTrafficSelectors,
    /// No child SA is installed.
    NotConnected,
    /// Not ESP, not IKE, not a keepalive.
    Garbage,
}

/// Errors from commands.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TunnelError {
    #[error("tunnel is not up")]
    NotConnected,
    #[error("invalid IKE settings")]
    InvalidSettings,
    #[error(transparent)]
    Esp(#[from] EspError),
}

/// Counters of one tunnel, mirroring CloudWatch's and the AWS tunnel log's fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunnelMetrics {
    /// Inner bytes received after decryption (TunnelDataIn).
    pub data_in_bytes: u64,
    /// Inner bytes sent before encryption (TunnelDataOut).
    pub data_out_bytes: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub drops_unknown_peer: u64,
    pub drops_unknown_spi: u64,
    pub drops_replay: u64,
    pub drops_icv: u64,
    pub drops_malformed: u64,
    pub drops_traffic_selectors: u64,
    pub drops_not_connected: u64,
    pub nat_keepalives_in: u64,
    pub nat_keepalives_out: u64,
    pub last_state_change: Option<Timestamp>,
    /// IKE SA established (AWS's "phase 1 up").
    pub ike_sa_up: bool,
    /// A child SA installed (AWS's "phase 2 up").
    pub child_sa_up: bool,
    /// Where IKE negotiation stands.
    pub ike_state: Option<IkeState>,
    /// NAT detected in front of us (or encapsulation forced) / the peer.
    pub nat_local: bool,
    pub nat_remote: bool,
    /// IKE on UDP 4500.
    pub nat_t: bool,
    /// A liveness check is outstanding.
    pub dpd_outstanding: bool,
    pub dpd_timeouts: u64,
    pub ike_retransmits: u64,
    pub ike_rekeys: u64,
    pub child_rekeys: u64,
    /// IKE datagrams received that were not accepted (bad SPI, ICV, syntax).
    pub ike_dropped: u64,
}

/// A child SA the tunnel holds.
struct Installed {
    sa: ChildSa,
    /// Carries our outbound traffic.
    active: bool,
    /// Responder side of a rekey: becomes active on first inbound packet
    /// or when the SA it replaces goes.
    activate_on_inbound: bool,
    /// Replaced: accepts inbound packets until then.
    retire_at: Option<Timestamp>,
    /// IKEv1: negotiated as UDP-encapsulated (NAT keepalives due).
    udp_encapsulated: bool,
    /// IKEv1: becomes active at this time at the latest (a Quick Mode has
    /// no acknowledgement of its last message).
    activate_at: Option<Timestamp>,
}

/// One tunnel to one peer.
pub struct Tunnel {
    settings: TunnelSettings,
    state: TunnelState,
    children: Vec<Installed>,
    ike: Option<Ikev2Session>,
    /// The IKEv1 session ([`Keying::Ikev1`]).
    v1: Option<Ikev1Session>,
    /// Cookies of the current ISAKMP SA, as (initiator, responder) SPIs.
    v1_phase1: Option<(u64, u64)>,
    entropy: Option<Box<dyn Entropy + Send>>,
    events: VecDeque<TunnelEvent>,
    metrics: TunnelMetrics,
    /// Last datagram sent on port 4500 (keepalives fill silences).
    last_nat_t_out: Timestamp,
    keepalive_pending: bool,
    /// A control datagram that did not fit the caller's buffer.
    oversized: Option<Outgoing>,
    /// The latest time any input carried.
    last_now: Timestamp,
}

impl fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tunnel")
            .field("state", &self.state)
            .field("settings", &self.settings)
            .field("children", &self.children.len())
            .finish_non_exhaustive()
    }
}

impl Tunnel {
    /// A tunnel. IKE-keyed tunnels draw their randomness from a generator
    /// seeded at [`connect`](Self::connect) from the entropy passed there;
    /// use [`with_entropy`](Self::with_entropy) to hand one in for good.
    pub fn new(settings: TunnelSettings, now: Timestamp) -> Result<Self, TunnelError> {
        let mut tunnel = Tunnel {
            settings,
            state: TunnelState::Down,
            children: Vec::new(),
            ike: None,
            v1: None,
            v1_phase1: None,
            entropy: None,
            events: VecDeque::new(),
            metrics: TunnelMetrics::default(),
            last_nat_t_out: now,
            keepalive_pending: false,
            oversized: None,
            last_now: now,
        };
        tunnel.metrics.last_state_change = Some(now);
        Ok(tunnel)
    }

    /// A tunnel that owns its randomness (SPIs, nonces, DH keys, IVs,
    /// rekey fuzz) for its whole life.
    pub fn with_entropy(
        settings: TunnelSettings,
        now: Timestamp,
        entropy: Box<dyn Entropy + Send>,
    ) -> Result<Self, TunnelError> {
        let mut t = Tunnel::new(settings, now)?;
        t.entropy = Some(entropy);
        Ok(t)
    }

    pub fn state(&self) -> TunnelState {
        self.state
    }

    pub fn metrics(&self) -> &TunnelMetrics {
        &self.metrics
    }

    pub fn settings(&self) -> &TunnelSettings {
        &self.settings
    }

    /// The child SA carrying outbound traffic, if any.
    pub fn child_sa(&self) -> Option<&ChildSa> {
        self.outbound_child().map(|c| &c.sa)
    }

    /// All installed child SAs (including ones lingering after a rekey).
    pub fn child_sas(&self) -> impl Iterator<Item = &ChildSa> {
        self.children.iter().map(|c| &c.sa)
    }

    /// The IKE session, for IKEv2-keyed tunnels.
    pub fn ike(&self) -> Option<&Ikev2Session> {
        self.ike.as_ref()
    }

    /// The IKE session, for IKEv1-keyed tunnels (once connected).
    pub fn ikev1(&self) -> Option<&Ikev1Session> {
        self.v1.as_ref()
    }

    fn outbound_child(&self) -> Option<&Installed> {
        self.children.iter().rev().find(|c| c.active)
    }

    /// Bytes [`send_inner`](Self::send_inner) needs before the inner packet.
    pub fn headroom(&self) -> usize {
        self.child_sa()
            .map_or(ChildSa::MAX_HEADROOM, ChildSa::headroom)
    }

    /// Bytes that may follow the inner packet once sealed, at most.
    pub fn tailroom(&self) -> usize {
        self.child_sa()
            .map_or(ChildSa::MAX_TAILROOM, ChildSa::tailroom)
    }

    /// Brings the tunnel up: starts negotiating (IKE startup action
    /// `start`), waits for the peer (`add`), or installs manual SAs.
    pub fn connect(
        &mut self,
        now: Timestamp,
        entropy: &mut dyn Entropy,
    ) -> Result<(), TunnelError> {
        self.last_now = self.last_now.max(now);
        if self.state != TunnelState::Down {
            return Ok(());
        }
        match &self.settings.keying {
            Keying::Manual(manual) => {
                let child = ChildSa::new(
                    &manual.outbound,
                    &manual.inbound,
                    self.settings.replay_window,
                    self.settings.local_traffic.clone(),
                    self.settings.remote_traffic.clone(),
                    now,
                    entropy,
                )?;
                self.events.push_back(TunnelEvent::ChildSaInstalled {
                    inbound_spi: child.inbound_spi(),
                    outbound_spi: child.outbound_spi(),
                });
                self.children.push(Installed {
                    sa: child,
                    active: true,
                    activate_on_inbound: false,
                    retire_at: None,
                    udp_encapsulated: false,
                    activate_at: None,
                });
                self.set_state(now, TunnelState::Up);
            }
            Keying::Ikev2(ike) => {
                if self.entropy.is_none() {
                    let mut seed = [0u8; 32];
                    entropy.fill(&mut seed);
                    self.entropy = Some(Box::new(SeededEntropy::from_seed(seed)));
                }
                let Some(rng) = self.entropy.as_deref_mut() else {
                    return Err(TunnelError::NotConnected);
                };
                if self.ike.is_none() {
                    self.ike = Some(Ikev2Session::new(
                        (**ike).clone(),
                        self.settings.local,
                        self.settings.remote,
                        ts::from_prefixes(&self.settings.local_traffic),
                        ts::from_prefixes(&self.settings.remote_traffic),
                        rng,
                    ));
                }
                if let Some(session) = self.ike.as_mut() {
                    session.start(now, rng);
                }
                self.set_state(now, TunnelState::Connecting);
                self.drain_session(now);
            }
            Keying::Ikev1(v1) => {
                let rng = self.entropy.get_or_insert_with(|| {
                    let mut seed = [0u8; 32];
                    entropy.fill(&mut seed);
                    Box::new(SeededEntropy::from_seed(seed))
                });
                if self.v1.is_none() {
                    let mut settings = (**v1).clone();
                    // The tunnel carries ESP in UDP 4500 only.
                    settings.force_nat_t = true;
                    // The tunnel's selectors are the proxy IDs when there is
                    // one prefix each way (otherwise the settings' own).
                    if let ([l], [r]) = (
                        &self.settings.local_traffic[..],
                        &self.settings.remote_traffic[..],
                    ) {
                        settings.local_proxy = *l;
                        settings.remote_proxy = *r;
                    }
                    settings.replay_window = self.settings.replay_window;
                    let mut seed = [0u8; 32];
                    rng.fill(&mut seed);
                    let session =
                        Ikev1Session::new(settings, now, Box::new(SeededEntropy::from_seed(seed)))
                            .map_err(|_| TunnelError::InvalidSettings)?;
                    self.v1 = Some(session);
                }
                let start = v1.startup_action == StartupAction::Start;
                if let Some(session) = self.v1.as_mut() {
                    if start {
                        // Fails only when already established: nothing to do.
                        let _ = session.connect(now);
                    }
                }
                self.set_state(now, TunnelState::Connecting);
                self.drain_v1(now);
            }
        }
        Ok(())
    }

    /// Takes the tunnel down (an IKE tunnel tells the peer with a DELETE).
    pub fn close(&mut self, now: Timestamp) {
        if self.state == TunnelState::Down && self.children.is_empty() {
            return;
        }
        if let (Some(session), Some(rng)) = (self.ike.as_mut(), self.entropy.as_deref_mut()) {
            session.close(rng);
            // The session reports its children gone; the tunnel reports Closed.
            while session.poll_event().is_some() {}
        }
        if let Some(session) = self.v1.as_mut() {
            session.close(now);
            while session.poll_event().is_some() {}
            self.v1_phase1 = None;
        }
        self.children.clear();
        self.set_state(now, TunnelState::Down);
        self.events.push_back(TunnelEvent::Down {
            reason: DownReason::Closed,
        });
        self.refresh_metrics();
    }

    /// Rekeys the outbound child SA now (IKE tunnels).
    pub fn rekey_child(&mut self, now: Timestamp) {
        let Some(spi) = self.child_sa().map(ChildSa::inbound_spi) else {
            return;
        };
        if let (Some(session), Some(rng)) = (self.ike.as_mut(), self.entropy.as_deref_mut()) {
            session.rekey_child(now, spi, rng);
        }
        if let Some(session) = self.v1.as_mut() {
            if let Err(e) = session.rekey_child(now) {
                self.events.push_back(TunnelEvent::NegotiationFailed {
                    reason: v1_reason(&e),
                });
            }
        }
        self.drain_session(now);
    }

    /// Deletes the outbound child SA (IKE tunnels), keeping the IKE SA.
    pub fn delete_child(&mut self, now: Timestamp) {
        let Some(spi) = self.child_sa().map(ChildSa::inbound_spi) else {
            return;
        };
        if let (Some(session), Some(rng)) = (self.ike.as_mut(), self.entropy.as_deref_mut()) {
            session.delete_child(now, spi, rng);
        }
        if let Some(session) = self.v1.as_mut() {
            let _ = session.delete_child(now, spi);
        }
        self.drain_session(now);
    }

    /// Rekeys the IKE SA now.
    pub fn rekey_ike(&mut self, now: Timestamp) {
        if let (Some(session), Some(rng)) = (self.ike.as_mut(), self.entropy.as_deref_mut()) {
            session.rekey_ike(now, rng);
        }
        if let Some(session) = self.v1.as_mut() {
            if let Err(e) = session.rekey_phase1(now) {
                self.events.push_back(TunnelEvent::NegotiationFailed {
                    reason: v1_reason(&e),
                });
            }
        }
        self.drain_session(now);
    }

    /// Seals the inner packet at `buf[headroom()..][..inner_len]` for the
    /// peer; the datagram's UDP payload is then at `buf[..transmit.len]`.
    pub fn send_inner(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
        inner_len: usize,
    ) -> Result<Transmit, TunnelError> {
        let Some(child) = self.children.iter_mut().rev().find(|c| c.active) else {
            self.metrics.drops_not_connected += 1;
            return Err(TunnelError::NotConnected);
        };
        let len = child.sa.seal(now, buf, inner_len)?;
        self.metrics.packets_out += 1;
        self.metrics.data_out_bytes += inner_len as u64;
        self.last_nat_t_out = now;
        self.drain_esp_events(now);
        Ok(Transmit {
            local: self.nat_t_local(),
            remote: self.nat_t_remote(),
            len,
        })
    }

    /// Handles a UDP datagram received on `local` from `remote`; `buf` holds
    /// its payload and is decrypted in place.
    pub fn handle_datagram(
        &mut self,
        now: Timestamp,
        local: SocketAddr,
        remote: SocketAddr,
        buf: &mut [u8],
    ) -> Received {
        self.last_now = self.last_now.max(now);
        if remote.ip() != self.settings.remote.ip() {
            self.metrics.drops_unknown_peer += 1;
            return Received::Dropped(DropReason::UnknownPeer);
        }
        let (ike_at, esp_len) = if local.port() == NAT_T_PORT {
            match nat_t::classify(buf) {
                NatTDatagram::Esp(esp) => (None, esp.len()),
                NatTDatagram::Keepalive => {
                    self.metrics.nat_keepalives_in += 1;
                    return Received::Control;
                }
                NatTDatagram::Ike(_) => (Some(NON_ESP_MARKER_LEN), 0),
                NatTDatagram::Invalid => {
                    self.count_drop(DropReason::Garbage);
                    return Received::Dropped(DropReason::Garbage);
                }
            }
        } else {
            (Some(0), 0)
        };
        if let Some(offset) = ike_at {
            if let Some(session) = self.v1.as_mut() {
                // The session takes the marker along and strips it itself.
                let result = session.handle_datagram(now, local, remote, buf);
                self.drain_v1(now);
                return match result {
                    Ok(()) => Received::Control,
                    Err(_) => {
                        self.metrics.ike_dropped += 1;
                        Received::Dropped(DropReason::Garbage)
                    }
                };
            }
            return self.handle_ike(now, local, remote, &buf[offset..]);
        }
        let spi = buf
            .get(..4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
        let Some(pos) = self
            .children
            .iter()
            .position(|c| Some(c.sa.inbound_spi()) == spi)
        else {
            let reason = if self.children.is_empty() {
                DropReason::NotConnected
            } else {
                DropReason::UnknownSpi
            };
            self.count_drop(reason);
            return Received::Dropped(reason);
        };
        let received = self.children[pos].sa.open(now, &mut buf[..esp_len]);
        match &received {
            Received::Inner { range } => {
                self.metrics.packets_in += 1;
                self.metrics.data_in_bytes += range.len() as u64;
            }
            Received::Dropped(reason) => self.count_drop(*reason),
            Received::Control => {}
        }
        if !matches!(received, Received::Dropped(_)) {
            if let Some(session) = self.ike.as_mut() {
                session.note_inbound(now);
            }
            if let Some(session) = self.v1.as_mut() {
                session.note_inbound_traffic(now);
            }
            if self.children[pos].activate_on_inbound {
                self.activate(pos);
            }
        }
        self.drain_esp_events(now);
        received
    }

    fn handle_ike(
        &mut self,
        now: Timestamp,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &[u8],
    ) -> Received {
        let (Some(session), Some(rng)) = (self.ike.as_mut(), self.entropy.as_deref_mut()) else {
            self.count_drop(DropReason::Garbage);
            return Received::Dropped(DropReason::Garbage);
        };
        let accepted = session.handle_message(now, local, remote, msg, rng);
        self.drain_session(now);
        if accepted {
            Received::Control
        } else {
            self.metrics.ike_dropped += 1;
            Received::Dropped(DropReason::Garbage)
        }
    }

    /// Control datagrams to send: IKE messages (with the non-ESP marker on
    /// port 4500) and NAT keepalives. A datagram larger than `buf` stays
    /// queued: see [`pending_transmit_len`](Self::pending_transmit_len).
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        let next = self
            .oversized
            .take()
            .or_else(|| self.ike.as_mut().and_then(Ikev2Session::poll_transmit))
            .or_else(|| {
                let (local, remote, mut bytes) = self.v1.as_mut()?.poll_transmit()?;
                let nat_t = local.port() != 500;
                if nat_t {
                    // Queued without the marker, like IKEv2's messages.
                    bytes.drain(..NON_ESP_MARKER_LEN.min(bytes.len()));
                }
                Some(Outgoing {
                    bytes,
                    nat_t,
                    to: Some(remote),
                })
            });
        if let Some(out) = next {
            let marker = if out.nat_t { NON_ESP_MARKER_LEN } else { 0 };
            let len = marker + out.bytes.len();
            if buf.len() < len {
                self.oversized = Some(out);
                return None;
            }
            buf[..marker].fill(0);
            buf[marker..len].copy_from_slice(&out.bytes);
            let local = if out.nat_t {
                self.last_nat_t_out = self.last_now;
                self.nat_t_local()
            } else {
                self.settings.local
            };
            return Some(Transmit {
                local,
                remote: out.to.unwrap_or(self.settings.remote),
                len,
            });
        }
        if self.keepalive_pending && !buf.is_empty() {
            self.keepalive_pending = false;
            buf[0] = nat_t::NAT_KEEPALIVE[0];
            self.metrics.nat_keepalives_out += 1;
            return Some(Transmit {
                local: self.nat_t_local(),
                remote: self.nat_t_remote(),
                len: 1,
            });
        }
        None
    }

    /// The size of a control datagram that did not fit the last
    /// [`poll_transmit`](Self::poll_transmit) buffer.
    pub fn pending_transmit_len(&self) -> Option<usize> {
        self.oversized
            .as_ref()
            .map(|o| o.bytes.len() + if o.nat_t { NON_ESP_MARKER_LEN } else { 0 })
    }

    pub fn poll_event(&mut self) -> Option<TunnelEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let children = self.children.iter().flat_map(|c| {
            [c.sa.poll_timeout(), c.retire_at, c.activate_at]
                .into_iter()
                .flatten()
        });
        let ike = self.ike.as_ref().and_then(Ikev2Session::poll_timeout);
        let v1 = self.v1.as_ref().and_then(Ikev1Session::poll_timeout);
        children
            .chain(ike)
            .chain(v1)
            .chain(self.keepalive_due())
            .min()
    }

    fn keepalive_due(&self) -> Option<Timestamp> {
        if self.v1.is_some() {
            let udp = self.children.iter().any(|c| c.udp_encapsulated);
            return udp.then(|| self.last_nat_t_out + IKEV1_KEEPALIVE_INTERVAL);
        }
        let session = self.ike.as_ref()?;
        (session.behind_nat() && !self.children.is_empty())
            .then(|| self.last_nat_t_out + session.settings().keepalive_interval)
    }

    /// Fires what is due. Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        for c in &mut self.children {
            c.sa.handle_timeout(now);
        }
        self.drain_esp_events(now);
        self.children
            .retain(|c| c.retire_at.is_none_or(|t| now < t));
        if let Some(pos) = self
            .children
            .iter()
            .rposition(|c| c.activate_at.is_some_and(|t| t <= now))
        {
            self.activate(pos);
        }
        if let (Some(session), Some(rng)) = (self.ike.as_mut(), self.entropy.as_deref_mut()) {
            session.handle_timeout(now, rng);
        }
        if let Some(session) = self.v1.as_mut() {
            session.handle_timeout(now);
        }
        self.drain_session(now);
        if self.keepalive_due().is_some_and(|t| now >= t) {
            self.keepalive_pending = true;
            self.last_nat_t_out = now;
        }
        if self.children.iter().any(|c| c.sa.is_expired()) {
            self.children.retain(|c| !c.sa.is_expired());
            if self.children.is_empty() && self.state == TunnelState::Up {
                self.go_down(now, DownReason::SaExpired);
            } else if self.outbound_child().is_none() {
                if let Some(newest) = self.children.iter().rposition(|c| c.retire_at.is_none()) {
                    self.activate(newest);
                }
            }
        }
        self.refresh_metrics();
    }

    fn go_down(&mut self, now: Timestamp, reason: DownReason) {
        self.children.clear();
        if let Some(session) = self.v1.as_mut() {
            session.close(now);
            while session.poll_event().is_some() {}
            self.v1_phase1 = None;
        }
        if let (Some(session), Some(rng)) = (self.ike.as_mut(), self.entropy.as_deref_mut()) {
            if session.state() != IkeState::Idle {
                // Still listening: the peer may start over.
                session.abort(rng);
                while session.poll_event().is_some() {}
            }
        }
        self.set_state(now, TunnelState::Down);
        self.events.push_back(TunnelEvent::Down { reason });
    }

    fn activate(&mut self, pos: usize) {
        for (i, c) in self.children.iter_mut().enumerate() {
            c.active = i == pos;
            if i == pos {
                c.activate_on_inbound = false;
                c.activate_at = None;
            }
        }
    }

    /// Turns session events into child SAs and tunnel events.
    fn drain_session(&mut self, now: Timestamp) {
        if self.v1.is_some() {
            self.drain_v1(now);
            return;
        }
        while let Some(ev) = self.ike.as_mut().and_then(Ikev2Session::poll_event) {
            match ev {
                SessionEvent::IkeEstablished { spi_i, spi_r } => {
                    self.events
                        .push_back(TunnelEvent::IkeSaEstablished { spi_i, spi_r });
                }
                SessionEvent::NatDetected { local, remote } => {
                    self.events
                        .push_back(TunnelEvent::NatDetected { local, remote });
                }
                SessionEvent::ChildInstalled { params, replaces } => {
                    let soft = self.ike.as_ref().map_or(Limits::default(), |s| {
                        let l = &s.settings().lifetimes;
                        Limits {
                            bytes: l.child_soft_bytes,
                            packets: l.child_soft_packets,
                            time: None,
                        }
                    });
                    let Some(rng) = self.entropy.as_deref_mut() else {
                        continue;
                    };
                    let sa = match ChildSa::from_params(
                        &params,
                        self.settings.replay_window,
                        soft,
                        now,
                        rng,
                    ) {
                        Ok(sa) => sa,
                        Err(_) => {
                            self.go_down(now, DownReason::Internal("ESP SA rejected its keys"));
                            continue;
                        }
                    };
                    let first = self.children.iter().all(|c| c.retire_at.is_some());
                    let take_over = replaces.is_none() || params.initiator || first;
                    self.children.push(Installed {
                        sa,
                        active: false,
                        activate_on_inbound: !take_over,
                        retire_at: None,
                        udp_encapsulated: false,
                        activate_at: None,
                    });
                    if take_over {
                        self.activate(self.children.len() - 1);
                    }
                    match replaces {
                        None => self.events.push_back(TunnelEvent::ChildSaInstalled {
                            inbound_spi: params.inbound_spi,
                            outbound_spi: params.outbound_spi,
                        }),
                        Some(old) => self.events.push_back(TunnelEvent::ChildSaRekeyed {
                            old_inbound_spi: old,
                            inbound_spi: params.inbound_spi,
                            outbound_spi: params.outbound_spi,
                        }),
                    }
                    self.set_state(now, TunnelState::Up);
                }
                SessionEvent::ChildDeleted { inbound_spi } => {
                    self.child_deleted(now, inbound_spi);
                }
                SessionEvent::IkeRekeyed {
                    old_spi_i,
                    old_spi_r,
                    spi_i,
                    spi_r,
                } => self.events.push_back(TunnelEvent::IkeSaRekeyed {
                    old_spi_i,
                    old_spi_r,
                    spi_i,
                    spi_r,
                }),
                SessionEvent::Down(reason) => {
                    if reason == DownReason::DpdTimeout {
                        self.metrics.dpd_timeouts += 1;
                    }
                    self.children.clear();
                    self.set_state(now, TunnelState::Down);
                    self.events.push_back(TunnelEvent::Down { reason });
                }
                SessionEvent::Restarting => self.set_state(now, TunnelState::Connecting),
                SessionEvent::DeadPeer => {
                    self.metrics.dpd_timeouts += 1;
                    self.events.push_back(TunnelEvent::DeadPeerDetected);
                }
                SessionEvent::DpdOk => {}
                SessionEvent::Rejected(reason) => {
                    self.events
                        .push_back(TunnelEvent::NegotiationFailed { reason });
                }
            }
        }
        self.refresh_metrics();
    }

    /// Turns IKEv1 session events into child SAs and tunnel events.
    fn drain_v1(&mut self, now: Timestamp) {
        // Why the tunnel goes down if the session ends up with neither an
        // ISAKMP SA nor a child SA.
        let mut down: Option<DownReason> = None;
        // Down already reported in this drain.
        let mut reported = false;
        while let Some(ev) = self.v1.as_mut().and_then(Ikev1Session::poll_event) {
            match ev {
                Ikev1Event::PhaseOneUp {
                    initiator_cookie,
                    responder_cookie,
                    ..
                } => {
                    let spi_i = u64::from_be_bytes(initiator_cookie);
                    let spi_r = u64::from_be_bytes(responder_cookie);
                    match self.v1_phase1.replace((spi_i, spi_r)) {
                        Some((old_spi_i, old_spi_r)) => {
                            self.metrics.ike_rekeys += 1;
                            self.events.push_back(TunnelEvent::IkeSaRekeyed {
                                old_spi_i,
                                old_spi_r,
                                spi_i,
                                spi_r,
                            });
                        }
                        None => self
                            .events
                            .push_back(TunnelEvent::IkeSaEstablished { spi_i, spi_r }),
                    }
                }
                Ikev1Event::ChildSaNegotiated(child) => self.install_v1(now, &child, None),
                Ikev1Event::ChildSaRekeyed {
                    old_inbound_spi,
                    new,
                    ..
                } => {
                    self.metrics.child_rekeys += 1;
                    self.install_v1(now, &new, Some(old_inbound_spi));
                }
                Ikev1Event::Deleted { sa, reason } => {
                    let why = match reason {
                        DeleteReason::Peer => DownReason::PeerDeleted,
                        DeleteReason::Expired => DownReason::SaExpired,
                        DeleteReason::DeadPeer => DownReason::DpdTimeout,
                        DeleteReason::Local => DownReason::Closed,
                    };
                    match sa {
                        DeletedSa::Child { inbound_spi, .. } => {
                            self.child_deleted(now, inbound_spi)
                        }
                        DeletedSa::Phase1 {
                            initiator_cookie,
                            responder_cookie,
                        } => {
                            let spis = (
                                u64::from_be_bytes(initiator_cookie),
                                u64::from_be_bytes(responder_cookie),
                            );
                            if self.v1_phase1 == Some(spis) {
                                self.v1_phase1 = None;
                            }
                        }
                    }
                    down = Some(why);
                }
                Ikev1Event::DpdTimeout { action } => {
                    self.metrics.dpd_timeouts += 1;
                    if action == DpdAction::None {
                        self.events.push_back(TunnelEvent::DeadPeerDetected);
                    } else {
                        // The session has cleared its SAs (and restarts
                        // Main Mode with action `restart`).
                        self.v1_phase1 = None;
                        self.children.clear();
                        self.set_state(now, TunnelState::Down);
                        self.events.push_back(TunnelEvent::Down {
                            reason: DownReason::DpdTimeout,
                        });
                        if action == DpdAction::Restart {
                            self.set_state(now, TunnelState::Connecting);
                        }
                        reported = true;
                    }
                }
                Ikev1Event::Error(e) => {
                    let reason = v1_reason(&e);
                    if self.state == TunnelState::Connecting && self.children.is_empty() {
                        // The negotiation that was to bring the tunnel up failed.
                        if let Some(session) = self.v1.as_mut() {
                            session.close(now);
                            while session.poll_event().is_some() {}
                        }
                        self.v1_phase1 = None;
                        self.set_state(now, TunnelState::Down);
                        self.events.push_back(TunnelEvent::Down { reason });
                        reported = true;
                    } else {
                        self.events
                            .push_back(TunnelEvent::NegotiationFailed { reason });
                    }
                }
            }
        }
        let live = self.children.iter().any(|c| c.retire_at.is_none());
        let established = self.v1.as_ref().is_some_and(Ikev1Session::is_established);
        if let Some(reason) = down.filter(|_| !reported) {
            if !live && !established && self.state != TunnelState::Down {
                self.children.clear();
                self.set_state(now, TunnelState::Down);
                self.events.push_back(TunnelEvent::Down { reason });
            }
        }
        self.refresh_metrics();
    }

    /// Installs an IKEv1 child SA; `replaces`: the inbound SPI of the one it rekeys.
    fn install_v1(&mut self, now: Timestamp, child: &NegotiatedChildSa, replaces: Option<u32>) {
        let Some(rng) = self.entropy.as_deref_mut() else {
            return;
        };
        let sa = match ChildSa::from_v1(child, self.settings.replay_window, now, rng) {
            Ok(sa) => sa,
            Err(_) => {
                self.go_down(now, DownReason::Internal("ESP SA rejected its keys"));
                return;
            }
        };
        let first = self.children.iter().all(|c| c.retire_at.is_some());
        // A rekeyed SA carries our traffic once the peer uses it, once the
        // old one goes, or after a grace period: the Quick Mode responder
        // installs only when our last message arrives, and nothing
        // acknowledges that.
        let take_over = replaces.is_none() || first;
        self.children.push(Installed {
            sa,
            active: false,
            activate_on_inbound: !take_over,
            retire_at: None,
            udp_encapsulated: child.udp_encapsulated,
            activate_at: (!take_over).then(|| now + IKEV1_REKEY_GRACE),
        });
        if take_over {
            self.activate(self.children.len() - 1);
        }
        self.events.push_back(match replaces {
            None => TunnelEvent::ChildSaInstalled {
                inbound_spi: child.inbound_spi,
                outbound_spi: child.outbound_spi,
            },
            Some(old) => TunnelEvent::ChildSaRekeyed {
                old_inbound_spi: old,
                inbound_spi: child.inbound_spi,
                outbound_spi: child.outbound_spi,
            },
        });
        self.set_state(now, TunnelState::Up);
    }

    fn child_deleted(&mut self, now: Timestamp, inbound_spi: u32) {
        let Some(pos) = self
            .children
            .iter()
            .position(|c| c.sa.inbound_spi() == inbound_spi)
        else {
            return;
        };
        let replaced = self
            .children
            .iter()
            .enumerate()
            .any(|(i, c)| i != pos && c.retire_at.is_none());
        let was_active = self.children[pos].active;
        if replaced {
            // Keep accepting in-flight packets for a moment.
            let overlap = match (&self.ike, &self.v1) {
                (Some(s), _) => s.settings().rekey_overlap,
                (None, Some(_)) => IKEV1_REKEY_GRACE,
                (None, None) => core::time::Duration::ZERO,
            };
            let c = &mut self.children[pos];
            c.active = false;
            c.activate_on_inbound = false;
            c.retire_at = Some(now + overlap);
        } else {
            self.children.remove(pos);
        }
        self.events
            .push_back(TunnelEvent::ChildSaDeleted { inbound_spi });
        if was_active || self.outbound_child().is_none() {
            if let Some(newest) = self.children.iter().rposition(|c| c.retire_at.is_none()) {
                self.activate(newest);
            }
        }
        if self.children.iter().all(|c| c.retire_at.is_some()) && self.state == TunnelState::Up {
            // IKE SA without a child: not carrying traffic.
            self.set_state(now, TunnelState::Connecting);
        }
    }

    fn drain_esp_events(&mut self, now: Timestamp) {
        let mut rekey = Vec::new();
        for c in &mut self.children {
            while let Some(event) = c.sa.poll_event() {
                if let EspEvent::SoftLifetimeReached { .. } = event {
                    if c.retire_at.is_none() {
                        rekey.push(c.sa.inbound_spi());
                    }
                }
                self.events.push_back(TunnelEvent::Esp(event));
            }
        }
        if rekey.is_empty() {
            return;
        }
        if let (Some(session), Some(rng)) = (self.ike.as_mut(), self.entropy.as_deref_mut()) {
            for spi in rekey {
                session.rekey_child(now, spi, rng);
            }
        }
        self.drain_session(now);
    }

    fn refresh_metrics(&mut self) {
        let m = &mut self.metrics;
        m.child_sa_up = !self.children.is_empty();
        if let Some(s) = &self.ike {
            let st = s.status();
            m.ike_state = Some(s.state());
            m.ike_sa_up = st.ike_established;
            m.nat_local = st.nat_local;
            m.nat_remote = st.nat_remote;
            m.nat_t = st.nat_t;
            m.dpd_outstanding = st.dpd_outstanding;
            m.ike_retransmits = st.retransmits;
            m.ike_rekeys = st.ike_rekeys;
            m.child_rekeys = st.child_rekeys;
        }
        if let Some(s) = &self.v1 {
            m.ike_sa_up = s.is_established();
            m.nat_t = s.addresses().0.port() != 500;
            m.nat_local = m.nat_t;
        }
    }

    fn count_drop(&mut self, reason: DropReason) {
        let m = &mut self.metrics;
        match reason {
            DropReason::UnknownPeer => m.drops_unknown_peer += 1,
            DropReason::UnknownSpi => m.drops_unknown_spi += 1,
            DropReason::Esp(EspError::Replay { .. }) => m.drops_replay += 1,
            DropReason::Esp(EspError::Authentication) => m.drops_icv += 1,
            DropReason::Esp(_) | DropReason::Garbage => m.drops_malformed += 1,
            DropReason::OutsideTrafficSelectors => m.drops_traffic_selectors += 1,
            DropReason::NotConnected => m.drops_not_connected += 1,
        }
    }

    fn set_state(&mut self, now: Timestamp, to: TunnelState) {
        let from = self.state;
        if from != to {
            self.state = to;
            self.metrics.last_state_change = Some(now);
            self.events
                .push_back(TunnelEvent::StateChanged { from, to });
        }
    }

    fn nat_t_local(&self) -> SocketAddr {
        SocketAddr::new(self.settings.local.ip(), NAT_T_PORT)
    }

    fn nat_t_remote(&self) -> SocketAddr {
        match (&self.ike, &self.v1) {
            (Some(s), _) => s.esp_peer(),
            (None, Some(s)) => match s.addresses().1 {
                r if r.port() != 500 => r,
                r => SocketAddr::new(r.ip(), NAT_T_PORT),
            },
            (None, None) => SocketAddr::new(self.settings.remote.ip(), NAT_T_PORT),
        }
    }
}

/// What an IKEv1 failure means for the tunnel's operator.
fn v1_reason(e: &Ikev1Error) -> DownReason {
    match e {
        Ikev1Error::PskMismatch { detail } => DownReason::AuthenticationFailed { detail },
        Ikev1Error::IdentityMismatch { .. } => DownReason::AuthenticationFailed {
            detail: "the peer's identity is not the configured one",
        },
        Ikev1Error::NoProposalChosen { ours, theirs, .. } => DownReason::NoProposalChosen {
            ours: ours.clone(),
            theirs: Some(theirs.clone()),
        },
        Ikev1Error::PeerNotify { notify, .. } => match *notify {
            NotifyType::NO_PROPOSAL_CHOSEN => DownReason::NoProposalChosen {
                ours: String::new(),
                theirs: None,
            },
            NotifyType::AUTHENTICATION_FAILED
            | NotifyType::INVALID_HASH_INFORMATION
            | NotifyType::INVALID_ID_INFORMATION => DownReason::AuthenticationFailed {
                detail: "the peer rejected our Main Mode authentication",
            },
            other => DownReason::PeerError {
                notify: other.to_string(),
            },
        },
        Ikev1Error::Timeout { transmissions, .. } => DownReason::PeerUnreachable {
            retransmits: transmissions.saturating_sub(1),
        },
        Ikev1Error::ProxyIdMismatch { .. } => DownReason::TsUnacceptable,
        Ikev1Error::BadHash(_) => DownReason::Protocol("IKEv1 HASH verification failed"),
        Ikev1Error::Wire(_) | Ikev1Error::Unexpected(_) => {
            DownReason::Protocol("malformed or unexpected IKEv1 message")
        }
        Ikev1Error::NotEstablished => DownReason::Internal("no ISAKMP SA"),
        Ikev1Error::Crypto(_) | Ikev1Error::Esp(_) => DownReason::Internal("IKEv1 key exchange"),
        Ikev1Error::InvalidSettings(_) => DownReason::Internal("invalid IKEv1 settings"),
    }
}

/// Keys for one ESP SA, borrowed from a [`ManualSa`].
pub(crate) fn manual_keys(sa: &ManualSa) -> EspKeys<'_> {
    EspKeys {
        encryption: &sa.encryption_key,
        integrity: &sa.integrity_key,
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v1;
