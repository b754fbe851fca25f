//! What an IKEv2 session needs to know: credentials, identities, proposals,
//! lifetimes, liveness and retransmission settings.

use core::time::Duration;
use std::net::IpAddr;

use crate::config::{DpdAction, Secret, StartupAction, TunnelConfig};
use crate::ike::proposal::{
    parse_esp_proposals, parse_ike_proposals, EspProposal, IkeProposal, ProposalError,
};
use crate::ike::v2::wire::{IdPayload, IdType};

/// An IKE identity (RFC 7296 §3.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// ID_IPV4_ADDR / ID_IPV6_ADDR: AWS's default (the outside address).
    Ip(IpAddr),
    /// ID_FQDN.
    Fqdn(String),
    /// ID_RFC822_ADDR (`user@example.com`).
    Email(String),
}

impl Identity {
    /// An address if `s` parses as one, a domain name after a leading `@`,
    /// an e-mail address if it has an `@` elsewhere, a domain name otherwise
    /// (strongSwan's rules for `id = ...`).
    pub fn parse(s: &str) -> Identity {
        let s = s.trim();
        if let Ok(ip) = s.parse::<IpAddr>() {
            Identity::Ip(ip)
        } else if let Some(fqdn) = s.strip_prefix('@') {
            // strongSwan: `@name` forces an FQDN.
            Identity::Fqdn(fqdn.to_string())
        } else if s.contains('@') {
            Identity::Email(s.to_string())
        } else {
            Identity::Fqdn(s.to_string())
        }
    }

    pub fn to_payload(&self) -> IdPayload {
        match self {
            Identity::Ip(ip) => IdPayload::from_ip(*ip),
            Identity::Fqdn(n) => IdPayload::fqdn(n),
            Identity::Email(e) => IdPayload::rfc822(e),
        }
    }

    /// Whether a received ID payload names this identity.
    pub fn matches(&self, id: &IdPayload) -> bool {
        match self {
            Identity::Ip(ip) => id.ip() == Some(*ip),
            Identity::Fqdn(n) => {
                id.id_type == IdType::ID_FQDN && id.data.eq_ignore_ascii_case(n.as_bytes())
            }
            Identity::Email(e) => {
                id.id_type == IdType::ID_RFC822_ADDR && id.data.eq_ignore_ascii_case(e.as_bytes())
            }
        }
    }
}

impl core::fmt::Display for Identity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Identity::Ip(ip) => write!(f, "{ip}"),
            Identity::Fqdn(n) => f.write_str(n),
            Identity::Email(e) => f.write_str(e),
        }
    }
}

/// Retransmission of unanswered requests (strongSwan's `retransmit_*`
/// settings): the n-th retransmission is sent `timeout × base^(n-1)` after
/// the previous send; after `tries` retransmissions and one more wait the
/// peer is unreachable.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetransmitSettings {
    pub timeout: Duration,
    pub base: f64,
    pub tries: u32,
}

impl Default for RetransmitSettings {
    /// strongSwan's defaults: 4 s, 1.8, 5 tries.
    fn default() -> Self {
        RetransmitSettings {
            timeout: Duration::from_secs(4),
            base: 1.8,
            tries: 5,
        }
    }
}

impl RetransmitSettings {
    /// The wait after send number `n` (0 = the first transmission).
    pub fn wait(&self, n: u32) -> Duration {
        let factor = self.base.max(1.0).powi(n.min(64) as i32);
        let nanos = (self.timeout.as_nanos() as f64 * factor).min(1e18);
        Duration::from_nanos(nanos as u64)
    }
}

/// Liveness checks (RFC 7296 §2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DpdSettings {
    /// Silence before an empty INFORMATIONAL request is sent (AWS: 10 s).
    /// Zero disables liveness checks.
    pub interval: Duration,
    /// How long a check may go unanswered (AWS: 30 s).
    pub timeout: Duration,
    pub action: DpdAction,
}

/// Lifetimes and rekeying (AWS's defaults: 28800 s IKE, 3600 s child,
/// margin 270 s, fuzz 100 %).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LifetimeSettings {
    pub ike: Duration,
    pub child: Duration,
    /// Rekeying starts this long before the lifetime ends...
    pub margin: Duration,
    /// ...plus a random extra of up to this percentage of the margin.
    pub fuzz_percent: u8,
    /// Inner bytes after which a child SA is rekeyed (soft limit).
    pub child_soft_bytes: Option<u64>,
    /// Packets after which a child SA is rekeyed (soft limit).
    pub child_soft_packets: Option<u64>,
}

impl Default for LifetimeSettings {
    fn default() -> Self {
        LifetimeSettings {
            ike: Duration::from_secs(28800),
            child: Duration::from_secs(3600),
            margin: Duration::from_secs(270),
            fuzz_percent: 100,
            child_soft_bytes: None,
            child_soft_packets: None,
        }
    }
}

/// Everything an IKEv2-keyed tunnel needs beyond addresses and traffic.
/// `Debug` never shows the pre-shared key ([`Secret`] is redacted).
#[derive(Clone, Debug)]
pub struct Ikev2Settings {
    pub psk: Secret,
    /// The identity we send (AWS: our outside address).
    pub local_identity: Identity,
    /// The identity the peer must send; `None` accepts any.
    pub remote_identity: Option<Identity>,
    /// IKE SA proposals, most preferred first. The first proposal's first
    /// group is the KE we send.
    pub ike_proposals: Vec<IkeProposal>,
    /// Child SA proposals; a DH group in them asks for PFS on rekeys.
    pub esp_proposals: Vec<EspProposal>,
    pub lifetimes: LifetimeSettings,
    pub dpd: DpdSettings,
    /// Pretend to be behind a NAT so that the peer and we both use UDP 4500
    /// (strongSwan's `encap = yes`).
    pub force_encapsulation: bool,
    /// `Start`: [`crate::tunnel::Tunnel::connect`] initiates; `Add`: wait
    /// for the peer (responder only).
    pub startup_action: StartupAction,
    pub retransmit: RetransmitSettings,
    /// Half-open IKE SAs we keep before answering IKE_SA_INIT with a COOKIE
    /// challenge (RFC 7296 §2.6); 0 always challenges.
    pub cookie_threshold: u32,
    /// NAT keepalive interval when behind a NAT (RFC 3948 §2.3; 20 s).
    pub keepalive_interval: Duration,
    /// How long an old inbound SA keeps accepting packets after a rekey.
    pub rekey_overlap: Duration,
}

impl Ikev2Settings {
    /// Settings from a tunnel's config: AWS's defaults where it says nothing.
    /// UDP encapsulation is always forced (see [`Self::force_encapsulation`]):
    /// without it a peer with no NAT in between would send plain ESP
    /// (IP protocol 50), which a tunnel fed from UDP sockets never sees.
    pub fn from_config(config: &TunnelConfig) -> Result<Ikev2Settings, ProposalError> {
        let ike = parse_ike_proposals(&config.ike_proposals.join(","))?;
        let esp = parse_esp_proposals(&config.esp_proposals.join(","))?;
        Ok(Ikev2Settings {
            psk: config.psk.clone(),
            local_identity: Identity::parse(&config.effective_local_identity()),
            remote_identity: Some(Identity::parse(&config.effective_remote_identity())),
            ike_proposals: ike,
            esp_proposals: esp,
            lifetimes: LifetimeSettings {
                ike: Duration::from_secs(config.ike_lifetime.into()),
                child: Duration::from_secs(config.child_lifetime.into()),
                margin: Duration::from_secs(config.rekey_margin.into()),
                fuzz_percent: config.rekey_fuzz_percent,
                child_soft_bytes: None,
                child_soft_packets: None,
            },
            dpd: DpdSettings {
                interval: Duration::from_secs(config.dpd.interval.into()),
                timeout: Duration::from_secs(config.dpd.timeout.into()),
                action: config.dpd.action,
            },
            // A `Tunnel` carries ESP only in UDP 4500, so like strongSwan's
            // kernel-libipsec it always asks the peer for UDP encapsulation;
            // the config's `force_encapsulation` is implied.
            force_encapsulation: true,
            startup_action: config.startup_action,
            retransmit: RetransmitSettings::default(),
            cookie_threshold: 10,
            keepalive_interval: Duration::from_secs(20),
            rekey_overlap: Duration::from_secs(5),
        })
    }

    /// Settings for tests and simple programs: one IKE and one ESP proposal,
    /// AWS's defaults otherwise.
    pub fn new(
        psk: Secret,
        local_identity: Identity,
        ike_proposals: &str,
        esp_proposals: &str,
    ) -> Result<Ikev2Settings, ProposalError> {
        Ok(Ikev2Settings {
            psk,
            local_identity,
            remote_identity: None,
            ike_proposals: parse_ike_proposals(ike_proposals)?,
            esp_proposals: parse_esp_proposals(esp_proposals)?,
            lifetimes: LifetimeSettings::default(),
            dpd: DpdSettings {
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(30),
                action: DpdAction::Clear,
            },
            force_encapsulation: false,
            startup_action: StartupAction::Add,
            retransmit: RetransmitSettings::default(),
            cookie_threshold: 10,
            keepalive_interval: Duration::from_secs(20),
            rekey_overlap: Duration::from_secs(5),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_parse_like_strongswan() {
        assert_eq!(
            Identity::parse("192.0.2.1"),
            Identity::Ip("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            Identity::parse("@vpn.example"),
            Identity::Fqdn("vpn.example".into())
        );
        assert_eq!(
            Identity::parse("ops@example.com"),
            Identity::Email("ops@example.com".into())
        );
        assert_eq!(
            Identity::parse("vpn.example"),
            Identity::Fqdn("vpn.example".into())
        );
        let id = Identity::parse("VPN.example");
        assert!(id.matches(&IdPayload::fqdn("vpn.EXAMPLE")));
        assert!(!id.matches(&IdPayload::rfc822("vpn.example")));
    }

    #[test]
    fn from_config_takes_aws_defaults() {
        let cfg = TunnelConfig::new(
            "192.0.2.1".parse().unwrap(),
            "198.51.100.1".parse().unwrap(),
            "169.254.10.0/30".parse().unwrap(),
            Secret::from("abcdefgh12345678"),
        );
        let s = Ikev2Settings::from_config(&cfg).unwrap();
        assert_eq!(s.local_identity, Identity::Ip("192.0.2.1".parse().unwrap()));
        assert_eq!(
            s.remote_identity,
            Some(Identity::Ip("198.51.100.1".parse().unwrap()))
        );
        assert_eq!(s.lifetimes.ike, Duration::from_secs(28800));
        assert_eq!(s.lifetimes.child, Duration::from_secs(3600));
        assert_eq!(s.dpd.timeout, Duration::from_secs(30));
        assert!(s.force_encapsulation);
        assert!(!format!("{s:?}").contains("abcdefgh"));
    }

    #[test]
    fn retransmit_waits_grow_like_strongswan() {
        let r = RetransmitSettings::default();
        let waits: Vec<u128> = (0..6).map(|n| r.wait(n).as_millis()).collect();
        assert_eq!(waits, [4000, 7200, 12960, 23328, 41990, 75582]);
    }
}
