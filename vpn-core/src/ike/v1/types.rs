//! Settings, events, errors and the negotiated child SA of an
//! [`Ikev1Session`](super::Ikev1Session).

use core::fmt;
use core::time::Duration;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::wire::{IdPayload, NotifyType, WireError};
use crate::config::{DpdAction, DpdConfig, Prefix, Secret, StartupAction, TunnelConfig};
use crate::crypto::{CryptoError, DhGroup, SecretBytes};
use crate::entropy::Entropy;
use crate::esp::{
    EncryptionAlgorithm, EspError, EspKeys, EspSa, EspSaConfig, IntegrityAlgorithm, Lifetimes,
    Limits,
};
use crate::ike::proposal::{
    parse_esp_proposals, parse_ike_proposals, EspProposal, IkeProposal, ProposalError,
};
use crate::time::Timestamp;

/// The IKE port.
pub const IKE_PORT: u16 = 500;
/// The NAT-T port (RFC 3947 §4).
pub const NAT_T_PORT: u16 = 4500;

/// A phase 1 identity (the ID payload of Main Mode messages 5 and 6).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// ID_IPV4_ADDR / ID_IPV6_ADDR: what AWS uses (the outside addresses).
    Address(IpAddr),
    /// ID_FQDN.
    Fqdn(String),
}

impl Identity {
    /// An address if `s` parses as one, otherwise an FQDN.
    pub fn parse(s: &str) -> Identity {
        match s.parse::<IpAddr>() {
            Ok(a) => Identity::Address(a),
            Err(_) => Identity::Fqdn(s.to_string()),
        }
    }

    pub(crate) fn to_payload(&self) -> IdPayload {
        match self {
            Identity::Address(IpAddr::V4(a)) => IdPayload::ipv4(*a),
            Identity::Address(IpAddr::V6(a)) => IdPayload::ipv6(*a),
            Identity::Fqdn(n) => IdPayload::fqdn(n),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Address(a) => write!(f, "{a}"),
            Identity::Fqdn(n) => f.write_str(n),
        }
    }
}

/// Retransmission of unanswered requests: `initial × 1.8^n`, `tries`
/// retransmissions (strongSwan's defaults: 4 s, 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetransmitSettings {
    pub initial: Duration,
    pub tries: u32,
}

impl Default for RetransmitSettings {
    fn default() -> Self {
        RetransmitSettings {
            initial: Duration::from_secs(4),
            tries: 5,
        }
    }
}

impl RetransmitSettings {
    /// The wait after transmission number `n` (0 = the first sending).
    pub fn timeout(&self, n: u32) -> Duration {
        let mut d = self.initial;
        for _ in 0..n.min(32) {
            d = d.saturating_mul(9) / 5;
        }
        d
    }
}

/// Everything an [`Ikev1Session`](super::Ikev1Session) needs. The PSK is
/// never printed (`Secret`'s Debug is redacted).
#[derive(Clone, Debug)]
pub struct Ikev1Settings {
    /// Our outside address and IKE port (normally 500).
    pub local: SocketAddr,
    /// The peer's outside address and IKE port.
    pub remote: SocketAddr,
    pub psk: Secret,
    /// Our phase 1 identity; `None`: our outside address (as AWS does).
    pub local_id: Option<Identity>,
    /// The identity the peer must present; `None`: its outside address.
    pub remote_id: Option<Identity>,
    pub ike_proposals: Vec<IkeProposal>,
    /// ESP proposals; the PFS group is the first proposal's first DH group.
    pub esp_proposals: Vec<EspProposal>,
    /// Phase 1 lifetime (AWS: 28800 s).
    pub ike_lifetime: Duration,
    /// Phase 2 lifetime (AWS: 3600 s).
    pub child_lifetime: Duration,
    /// Rekey this long before expiry (AWS: 270 s) ...
    pub rekey_margin: Duration,
    /// ... minus a random part of up to this percentage of the margin (AWS: 100).
    pub rekey_fuzz_percent: u8,
    /// Dead peer detection; `None` disables it.
    pub dpd: Option<DpdConfig>,
    /// Behave as if behind a NAT: float to 4500 and UDP-encapsulate ESP.
    pub force_nat_t: bool,
    /// Quick Mode proxy IDs (AWS: 0.0.0.0/0 on both sides).
    pub local_proxy: Prefix,
    pub remote_proxy: Prefix,
    pub retransmit: RetransmitSettings,
    /// Anti-replay window of the ESP SAs built from negotiated children.
    pub replay_window: u32,
    /// What a [`Tunnel`](crate::tunnel::Tunnel)'s `connect` does: `Start`
    /// initiates Main Mode, `Add` only waits for the peer's. The session
    /// itself ignores it (it initiates on [`connect`](super::Ikev1Session::connect)
    /// and always answers).
    pub startup_action: StartupAction,
}

fn any_v4() -> Prefix {
    Prefix::truncating(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
}

impl Ikev1Settings {
    /// AWS's default IKEv1 profile: `aes128-sha1-modp1024` for both phases
    /// (PFS group 2), 28800 s / 3600 s, margin 270 s, fuzz 100 %, DPD
    /// 10 s × 3 with action clear, proxy IDs 0.0.0.0/0.
    pub fn aws_default(local: SocketAddr, remote: SocketAddr, psk: Secret) -> Ikev1Settings {
        Ikev1Settings {
            local,
            remote,
            psk,
            local_id: None,
            remote_id: None,
            ike_proposals: parse_ike_proposals("aes128-sha1-modp1024").unwrap_or_default(),
            esp_proposals: parse_esp_proposals("aes128-sha1-modp1024").unwrap_or_default(),
            ike_lifetime: Duration::from_secs(28800),
            child_lifetime: Duration::from_secs(3600),
            rekey_margin: Duration::from_secs(270),
            rekey_fuzz_percent: 100,
            dpd: Some(DpdConfig::default()),
            force_nat_t: false,
            local_proxy: any_v4(),
            remote_proxy: any_v4(),
            retransmit: RetransmitSettings::default(),
            replay_window: 1024,
            startup_action: StartupAction::Start,
        }
    }

    /// Settings for one tunnel of a connection config.
    pub fn from_tunnel_config(t: &TunnelConfig) -> Result<Ikev1Settings, Ikev1Error> {
        let bad = |e: ProposalError| Ikev1Error::InvalidSettings(e.to_string());
        let ike = parse_ike_proposals(&t.ike_proposals.join(",")).map_err(bad)?;
        let esp = parse_esp_proposals(&t.esp_proposals.join(",")).map_err(bad)?;
        let mut s = Ikev1Settings::aws_default(
            SocketAddr::new(t.local_outside_address, IKE_PORT),
            SocketAddr::new(t.remote_outside_address, IKE_PORT),
            t.psk.clone(),
        );
        s.ike_proposals = ike;
        s.esp_proposals = esp;
        s.ike_lifetime = Duration::from_secs(t.ike_lifetime.into());
        s.child_lifetime = Duration::from_secs(t.child_lifetime.into());
        s.rekey_margin = Duration::from_secs(t.rekey_margin.into());
        s.rekey_fuzz_percent = t.rekey_fuzz_percent;
        s.dpd = Some(t.dpd);
        s.force_nat_t = t.nat_traversal.force_encapsulation;
        s.local_id = t.local_identity.as_deref().map(Identity::parse);
        s.remote_id = t.remote_identity.as_deref().map(Identity::parse);
        s.replay_window = t.replay_window;
        s.startup_action = t.startup_action;
        s.validate()?;
        Ok(s)
    }

    /// Checks what IKEv1 can do with these settings.
    pub fn validate(&self) -> Result<(), Ikev1Error> {
        use super::transforms::{esp_encryption_supported, phase1_encryption_supported};
        let bad = |m: &str| Err(Ikev1Error::InvalidSettings(m.to_string()));
        if self.psk.is_empty() {
            return bad("the pre-shared key is empty");
        }
        if self.ike_proposals.is_empty()
            || !self
                .ike_proposals
                .iter()
                .flat_map(|p| p.encryption.iter())
                .any(|e| phase1_encryption_supported(*e))
        {
            return bad("IKEv1 phase 1 needs an aes128 or aes256 (CBC) proposal");
        }
        if self.esp_proposals.is_empty()
            || !self
                .esp_proposals
                .iter()
                .flat_map(|p| p.encryption.iter())
                .any(|e| esp_encryption_supported(*e))
        {
            return bad("no ESP proposal usable with IKEv1");
        }
        if self.local_proxy.addr().is_ipv4() != self.remote_proxy.addr().is_ipv4() {
            return bad("proxy IDs mix IPv4 and IPv6");
        }
        if self.ike_lifetime.is_zero() || self.child_lifetime.is_zero() {
            return bad("lifetimes must not be zero");
        }
        Ok(())
    }
}

/// Why an operation or exchange failed. No variant carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ikev1Error {
    #[error("malformed IKEv1 message: {0}")]
    Wire(#[from] WireError),
    /// The pre-shared keys differ (detected as an undecryptable or
    /// unverifiable Main Mode message 5/6, or reported by the peer).
    #[error("pre-shared key mismatch: {detail}")]
    PskMismatch { detail: &'static str },
    /// No common proposal. `ours` is our configuration, `theirs` the
    /// peer's offer (or what we know of it).
    #[error("NO_PROPOSAL_CHOSEN in {phase}: our proposals: {ours}; the peer's: {theirs}")]
    NoProposalChosen {
        phase: &'static str,
        ours: String,
        theirs: String,
    },
    /// The peer sent an error notification.
    #[error("peer sent {notify} during {exchange}")]
    PeerNotify {
        notify: NotifyType,
        exchange: &'static str,
    },
    #[error("the peer's identity is {got}, expected {expected}")]
    IdentityMismatch { expected: String, got: String },
    #[error("proxy IDs do not match: the peer proposes {theirs}, we have {ours}")]
    ProxyIdMismatch { ours: String, theirs: String },
    #[error("HASH verification failed in {0}")]
    BadHash(&'static str),
    #[error("{exchange} timed out after {transmissions} transmissions")]
    Timeout {
        exchange: &'static str,
        transmissions: u32,
    },
    #[error("key exchange failed: {0}")]
    Crypto(#[from] CryptoError),
    #[error("ESP SA: {0}")]
    Esp(#[from] EspError),
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
    #[error("no established ISAKMP SA")]
    NotEstablished,
    #[error("invalid IKEv1 settings: {0}")]
    InvalidSettings(String),
}

/// Which SA a DELETE (or expiry, or DPD) removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeletedSa {
    Phase1 {
        initiator_cookie: [u8; 8],
        responder_cookie: [u8; 8],
    },
    Child {
        inbound_spi: u32,
        outbound_spi: u32,
    },
}

/// Why an SA went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteReason {
    /// The peer sent a DELETE (or INITIAL-CONTACT).
    Peer,
    /// We deleted it (close, or after a rekey).
    Local,
    /// Its hard lifetime ran out.
    Expired,
    /// Dead peer detection cleared it.
    DeadPeer,
}

/// What the session reports.
#[derive(Clone, Debug)]
pub enum Ikev1Event {
    /// An ISAKMP SA is established (`rekey`: it replaces an older one).
    PhaseOneUp {
        initiator_cookie: [u8; 8],
        responder_cookie: [u8; 8],
        initiator: bool,
        rekey: bool,
        /// IKE moved to port 4500 (NAT detected or forced).
        nat_t: bool,
    },
    /// A new child SA (keys inside, never printed).
    ChildSaNegotiated(NegotiatedChildSa),
    /// A child SA replaced an older one (the old one stays usable until
    /// it is deleted or expires).
    ChildSaRekeyed {
        old_inbound_spi: u32,
        old_outbound_spi: u32,
        new: NegotiatedChildSa,
    },
    Deleted {
        sa: DeletedSa,
        reason: DeleteReason,
    },
    /// The peer stopped answering DPD; `action` has been applied.
    DpdTimeout {
        action: DpdAction,
    },
    Error(Ikev1Error),
}

/// Child SA keys (KEYMAT split per RFC 2409 §5.5: encryption key first).
#[derive(Clone)]
pub(crate) struct ChildKeys {
    pub(crate) in_enc: SecretBytes,
    pub(crate) in_integ: SecretBytes,
    pub(crate) out_enc: SecretBytes,
    pub(crate) out_integ: SecretBytes,
}

/// A negotiated ESP SA pair: SPIs, algorithms and keys. `Debug` never shows
/// keys.
#[derive(Clone)]
pub struct NegotiatedChildSa {
    /// The SPI the peer sends to (we chose it).
    pub inbound_spi: u32,
    /// The SPI we send to (the peer chose it).
    pub outbound_spi: u32,
    pub encryption: EncryptionAlgorithm,
    pub integrity: Option<IntegrityAlgorithm>,
    pub pfs_group: Option<DhGroup>,
    pub lifetime: Duration,
    /// ESP goes in UDP 4500 (encapsulation mode UDP-Tunnel).
    pub udp_encapsulated: bool,
    pub local_proxy: Prefix,
    pub remote_proxy: Prefix,
    /// We initiated the Quick Mode.
    pub initiator: bool,
    pub(crate) keys: ChildKeys,
}

impl fmt::Debug for NegotiatedChildSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NegotiatedChildSa")
            .field("inbound_spi", &format_args!("{:#010x}", self.inbound_spi))
            .field("outbound_spi", &format_args!("{:#010x}", self.outbound_spi))
            .field("encryption", &self.encryption)
            .field("integrity", &self.integrity)
            .field("pfs_group", &self.pfs_group)
            .field("lifetime", &self.lifetime)
            .field("udp_encapsulated", &self.udp_encapsulated)
            .finish_non_exhaustive()
    }
}

impl NegotiatedChildSa {
    /// The ESP SA configurations (inbound, outbound) with a hard time
    /// lifetime; framing is plain ESP (the caller puts it in UDP 4500 when
    /// [`NegotiatedChildSa::udp_encapsulated`]).
    pub fn esp_configs(&self, replay_window: u32) -> (EspSaConfig, EspSaConfig) {
        let make = |spi| {
            let mut c = EspSaConfig::new(spi, self.encryption);
            c.integrity = self.integrity;
            c.replay_window = replay_window;
            c.lifetimes = Lifetimes {
                soft: Limits::default(),
                hard: Limits {
                    time: Some(self.lifetime),
                    ..Limits::default()
                },
            };
            c
        };
        (make(self.inbound_spi), make(self.outbound_spi))
    }

    /// Builds the two ESP SAs: (inbound, outbound).
    pub fn build_esp_sas(
        &self,
        now: Timestamp,
        replay_window: u32,
        entropy: &mut dyn Entropy,
    ) -> Result<(EspSa, EspSa), EspError> {
        let (cin, cout) = self.esp_configs(replay_window);
        let inbound = EspSa::new(
            &cin,
            EspKeys {
                encryption: &self.keys.in_enc,
                integrity: &self.keys.in_integ,
            },
            now,
            entropy,
        )?;
        let outbound = EspSa::new(
            &cout,
            EspKeys {
                encryption: &self.keys.out_enc,
                integrity: &self.keys.out_integ,
            },
            now,
            entropy,
        )?;
        Ok((inbound, outbound))
    }
}
