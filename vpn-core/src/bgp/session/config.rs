//! Configuration of one BGP neighbour session.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A password (TCP-MD5, RFC 2385) that never shows up in logs: `Debug` and `Display`
/// print `<redacted>`, and the bytes are wiped on drop. The embedder applies it to the
/// socket (`TCP_MD5SIG`); the core only carries it.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The password, for the embedder's socket option.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Who opens the TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectMode {
    /// Ask the embedder to connect ([`super::Action::Connect`]) and also accept
    /// incoming connections (collisions are resolved per RFC 4271 §6.8).
    Active,
    /// Only accept connections from the peer.
    Passive,
}

/// Graceful restart, helper side (RFC 4724): when the peer restarts, its routes are
/// kept (marked stale) until it sends End-of-RIB or a timer runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// Restart Time we advertise (seconds, 12 bits).
    pub restart_time: u16,
    /// How long stale routes are kept after the peer re-established, waiting for its
    /// End-of-RIB.
    pub stale_routes_time: Duration,
}

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        Self {
            restart_time: 120,
            stale_routes_time: Duration::from_secs(360),
        }
    }
}

/// One neighbour. Defaults follow AWS Site-to-Site VPN: hold 30 s, keepalive 10 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub local_asn: u32,
    pub router_id: Ipv4Addr,
    pub peer_asn: u32,
    /// Tunnel inside address of the peer (for the embedder; best-path tie-breaker).
    pub peer_addr: IpAddr,
    /// Our tunnel inside address: next hop of routes we announce over eBGP.
    pub local_addr: IpAddr,
    pub mode: ConnectMode,
    /// Hold time we offer (seconds): 0 or at least 3.
    pub hold_time: u16,
    /// Keepalive interval (seconds); `None`: a third of the negotiated hold time.
    pub keepalive_time: Option<u16>,
    /// Hold time while waiting for the peer's OPEN (RFC 4271 suggests 4 minutes).
    pub open_hold_time: Duration,
    pub connect_retry: Duration,
    /// First backoff after an error; doubles on each consecutive error.
    pub idle_hold_time: Duration,
    pub idle_hold_max: Duration,
    pub ipv4_unicast: bool,
    pub ipv6_unicast: bool,
    pub route_refresh: bool,
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// TCP-MD5 password, applied by the embedder.
    pub md5_password: Option<Secret>,
}

impl SessionConfig {
    /// A neighbour with AWS-like defaults.
    pub fn new(
        local_asn: u32,
        router_id: Ipv4Addr,
        peer_asn: u32,
        local_addr: IpAddr,
        peer_addr: IpAddr,
    ) -> Self {
        Self {
            local_asn,
            router_id,
            peer_asn,
            peer_addr,
            local_addr,
            mode: ConnectMode::Active,
            hold_time: 30,
            keepalive_time: None,
            open_hold_time: Duration::from_secs(240),
            connect_retry: Duration::from_secs(120),
            idle_hold_time: Duration::from_secs(5),
            idle_hold_max: Duration::from_secs(300),
            ipv4_unicast: true,
            ipv6_unicast: true,
            route_refresh: true,
            graceful_restart: Some(GracefulRestartConfig::default()),
            md5_password: None,
        }
    }

    /// External BGP: the peer is in another AS.
    pub fn is_ebgp(&self) -> bool {
        self.local_asn != self.peer_asn
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.hold_time == 1 || self.hold_time == 2 {
            return Err(ConfigError::HoldTime(self.hold_time));
        }
        if self.router_id.is_unspecified() {
            return Err(ConfigError::RouterId);
        }
        if self.local_asn == 0 || self.peer_asn == 0 {
            return Err(ConfigError::Asn);
        }
        if !self.ipv4_unicast && !self.ipv6_unicast {
            return Err(ConfigError::NoFamily);
        }
        if self.connect_retry.is_zero() || self.idle_hold_time.is_zero() {
            return Err(ConfigError::ZeroTimer);
        }
        Ok(())
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("hold time {0} s: must be 0 or at least 3 (RFC 4271 §4.2)")]
    HoldTime(u16),
    #[error("router ID 0.0.0.0 is not a valid BGP identifier")]
    RouterId,
    #[error("AS number 0 is reserved")]
    Asn,
    #[error("no address family enabled")]
    NoFamily,
    #[error("connect-retry and idle-hold times must be positive")]
    ZeroTimer,
    #[error("too many neighbours")]
    TooManyNeighbors,
    #[error("neighbour's local AS or router ID differs from the speaker's")]
    SpeakerMismatch,
}
