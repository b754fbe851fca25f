//! Typed configuration of a whole VPN connection: two tunnels, routing, failover.
//!
//! Where a configuration comes from:
//! - native files: [`ConnectionConfig::from_toml`] / [`ConnectionConfig::from_json`]
//!   (and back with [`ConnectionConfig::to_toml`] / [`ConnectionConfig::to_json`]);
//!   `examples/connection.toml` documents every key;
//! - what AWS hands out: [`ConnectionConfig::from_aws_xml`] reads the
//!   `CustomerGatewayConfiguration` document of a VPN connection, and
//!   [`ConnectionConfig::merge_aws_tunnel_options`] overlays the `TunnelOptions` of a
//!   `DescribeVpnConnections` response (phase 1/2 algorithm sets, lifetimes, DPD, ...).
//!
//! [`ConnectionConfig::validate`] applies AWS's rules and names the offending field in
//! each [`ConfigError`] (`tunnels[1].psk: ...`). Errors never contain a pre-shared key.
//!
//! For a lab, the other end can be generated: [`ConnectionConfig::to_swanctl_conf`]
//! (strongSwan), [`ConnectionConfig::to_bird_conf`] (BIRD 2), and a readable
//! [`ConnectionConfig::summary`] like AWS's "Generic" download.
//!
//! Defaults are AWS's: lifetimes 28800 s / 3600 s, rekey margin 270 s, fuzz 100 %,
//! replay window 1024, DPD 10 s × 3 (30 s) with action `clear`, startup action `add`,
//! MTU 1436, TCP MSS 1379, clear DF and fragment before encryption. All durations are
//! whole seconds.

mod aws_options;
mod aws_xml;
mod export;
mod prefix;
mod proposal;
mod secret;
mod validate;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

pub use prefix::{Prefix, PrefixError};
pub use secret::Secret;

/// Largest native or AWS document accepted by the parsers (1 MiB).
pub const MAX_INPUT_BYTES: usize = 1 << 20;

/// A configuration problem. Every variant names where it is (`field` / `path`), and no
/// variant ever carries a pre-shared key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value breaks a rule; `field` is its path (`tunnels[0].inside_cidr`,
    /// `vpn_connection/ipsec_tunnel[1]/ike/lifetime`, `TunnelOptions[0].PreSharedKey`).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A required element or key is absent.
    #[error("{path}: missing")]
    Missing { path: String },
    /// The document is not well-formed TOML / JSON / XML (or has the wrong shape).
    /// Quoted string values are replaced by `"…"` so that a secret cannot leak here.
    #[error("{format} error{location}: {message}")]
    Syntax {
        format: &'static str,
        location: String,
        message: String,
    },
    /// The document is larger than [`MAX_INPUT_BYTES`] (or another stated limit).
    #[error("input is {size} bytes, more than the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
}

impl ConfigError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn missing(path: impl Into<String>) -> ConfigError {
        ConfigError::Missing { path: path.into() }
    }

    /// The field or element path the error is about, if it has one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            ConfigError::Missing { path } => Some(path),
            ConfigError::Syntax { .. } | ConfigError::TooLarge { .. } => None,
        }
    }
}

/// Which end of the VPN connection this configuration describes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The customer gateway (on-premises device): gets `.2` of each inside /30.
    #[default]
    Cgw,
    /// The virtual private (or transit) gateway, AWS's end: gets `.1`.
    Vgw,
}

impl Role {
    /// The other end.
    pub fn peer(self) -> Role {
        match self {
            Role::Cgw => Role::Vgw,
            Role::Vgw => Role::Cgw,
        }
    }
}

/// The whole VPN connection: two redundant tunnels, routing and failover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// A name for logs and exported configs (`[A-Za-z0-9_.-]`, 1 to 64 characters).
    pub name: String,
    /// Which end this is. Default: `cgw`.
    #[serde(default)]
    pub role: Role,
    /// Exactly two tunnels, as AWS provisions them.
    #[serde(deserialize_with = "two_tunnels")]
    pub tunnels: [TunnelConfig; 2],
    /// Static routes or BGP over the tunnels' inside addresses.
    pub routing: Routing,
    /// How traffic is spread over the two tunnels. Default: active/standby on tunnel 0.
    #[serde(default)]
    pub failover: FailoverPolicy,
    /// Inner MTU of the tunnels in bytes. Default (AWS recommendation): 1436.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// MSS written into TCP SYNs through the tunnels. Default (AWS): 1379.
    #[serde(default = "default_mss")]
    pub tcp_mss_clamp: u16,
    /// Clear the DF bit of inner packets so that they can be fragmented. Default: true.
    #[serde(default = "default_true")]
    pub clear_df: bool,
    /// Fragment inner packets before encryption rather than the ESP packets after it.
    /// Default: true.
    #[serde(default = "default_true")]
    pub fragment_before_encrypt: bool,
}

/// One IPsec tunnel: an IKE SA and its ESP child SA between two outside addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelConfig {
    /// This end's public (outside) IPv4 address.
    pub local_outside_address: IpAddr,
    /// The other end's public (outside) IPv4 address.
    pub remote_outside_address: IpAddr,
    /// The tunnel's inside /30 from 169.254.0.0/16: the customer gateway uses `.2`,
    /// AWS `.1` (see [`TunnelConfig::cgw_inside_address`]).
    pub inside_cidr: Prefix,
    /// The pre-shared key (AWS: 8 to 64 of `[A-Za-z0-9._]`, not starting with `0`).
    pub psk: Secret,
    /// 1 (Main Mode) or 2. Default: 2.
    #[serde(default = "default_ike_version")]
    pub ike_version: u8,
    /// IKE SA proposals in strongSwan syntax, most preferred first
    /// (`aes256-sha256-modp2048`, `aes256gcm16-prfsha256-ecp256`).
    #[serde(default = "default_ike_proposals")]
    pub ike_proposals: Vec<String>,
    /// ESP proposals in strongSwan syntax; a DH group enables PFS (`aes256gcm16-modp2048`).
    #[serde(default = "default_esp_proposals")]
    pub esp_proposals: Vec<String>,
    /// Phase 1 (IKE SA) lifetime in seconds. Default: 28800.
    #[serde(default = "default_ike_lifetime")]
    pub ike_lifetime: u32,
    /// Phase 2 (child SA) lifetime in seconds. Default: 3600.
    #[serde(default = "default_child_lifetime")]
    pub child_lifetime: u32,
    /// Seconds before a lifetime ends when rekeying starts. Default: 270.
    #[serde(default = "default_rekey_margin")]
    pub rekey_margin: u32,
    /// Random extra margin, as a percentage of `rekey_margin`. Default: 100.
    #[serde(default = "default_rekey_fuzz")]
    pub rekey_fuzz_percent: u8,
    /// ESP anti-replay window in packets. Default: 1024.
    #[serde(default = "default_replay_window")]
    pub replay_window: u32,
    /// Dead peer detection.
    #[serde(default)]
    pub dpd: DpdConfig,
    /// Who brings the tunnel up. Default: `add` (the customer gateway initiates).
    #[serde(default)]
    pub startup_action: StartupAction,
    /// NAT traversal.
    #[serde(default)]
    pub nat_traversal: NatTraversal,
    /// IKE identity sent by this end. Default (`None`): the local outside address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_identity: Option<String>,
    /// IKE identity expected from the other end. Default: the remote outside address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_identity: Option<String>,
}

impl TunnelConfig {
    /// A tunnel with AWS's defaults for everything but the addresses and the key.
    pub fn new(
        local_outside_address: IpAddr,
        remote_outside_address: IpAddr,
        inside_cidr: Prefix,
        psk: Secret,
    ) -> TunnelConfig {
        TunnelConfig {
            local_outside_address,
            remote_outside_address,
            inside_cidr,
            psk,
            ike_version: default_ike_version(),
            ike_proposals: default_ike_proposals(),
            esp_proposals: default_esp_proposals(),
            ike_lifetime: default_ike_lifetime(),
            child_lifetime: default_child_lifetime(),
            rekey_margin: default_rekey_margin(),
            rekey_fuzz_percent: default_rekey_fuzz(),
            replay_window: default_replay_window(),
            dpd: DpdConfig::default(),
            startup_action: StartupAction::default(),
            nat_traversal: NatTraversal::default(),
            local_identity: None,
            remote_identity: None,
        }
    }

    /// Whether the end playing `role` opens the IKE negotiation. The startup
    /// action speaks from AWS's side: `add` (AWS waits, the customer gateway
    /// initiates) or `start` (AWS initiates).
    pub fn initiates(&self, role: Role) -> bool {
        match (role, self.startup_action) {
            (Role::Cgw, StartupAction::Add) | (Role::Vgw, StartupAction::Start) => true,
            (Role::Cgw, StartupAction::Start) | (Role::Vgw, StartupAction::Add) => false,
        }
    }

    /// The customer gateway's inside address: `.2` of the inside /30.
    pub fn cgw_inside_address(&self) -> Option<Ipv4Addr> {
        self.inside_cidr.v4_host(2)
    }

    /// AWS's (the VGW's) inside address: `.1` of the inside /30.
    pub fn vgw_inside_address(&self) -> Option<Ipv4Addr> {
        self.inside_cidr.v4_host(1)
    }

    /// The inside address of the given end.
    pub fn inside_address(&self, role: Role) -> Option<Ipv4Addr> {
        match role {
            Role::Cgw => self.cgw_inside_address(),
            Role::Vgw => self.vgw_inside_address(),
        }
    }

    /// The IKE identity this end sends (explicit, or the local outside address).
    pub fn effective_local_identity(&self) -> String {
        self.local_identity
            .clone()
            .unwrap_or_else(|| self.local_outside_address.to_string())
    }

    /// The IKE identity the other end sends (explicit, or the remote outside address).
    pub fn effective_remote_identity(&self) -> String {
        self.remote_identity
            .clone()
            .unwrap_or_else(|| self.remote_outside_address.to_string())
    }
}

/// Dead peer detection (RFC 3706 for IKEv1, liveness checks for IKEv2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpdConfig {
    /// Seconds of silence before a liveness check is sent. Default: 10.
    #[serde(default = "default_dpd_interval")]
    pub interval: u32,
    /// Seconds without an answer after which the peer is declared dead (AWS's
    /// `DpdTimeoutSeconds`, at least 30; AWS's XML says interval 10 × retries 3).
    /// IKEv2 counts them from the first unanswered liveness check, as AWS
    /// documents ("dead 30 seconds after the first failed keep-alive"), so
    /// detection takes up to `interval + timeout` after the last packet
    /// heard; IKEv1 counts them from the last packet heard, as RFC 3706
    /// implementations (strongSwan's `dpd_timeout`) do. Default: 30.
    #[serde(default = "default_dpd_timeout")]
    pub timeout: u32,
    /// What to do with a dead peer. Default: `clear`.
    #[serde(default)]
    pub action: DpdAction,
}

impl Default for DpdConfig {
    fn default() -> DpdConfig {
        DpdConfig {
            interval: default_dpd_interval(),
            timeout: default_dpd_timeout(),
            action: DpdAction::default(),
        }
    }
}

impl DpdConfig {
    /// Liveness checks sent before giving up (`timeout / interval`, at least 1).
    pub fn retries(&self) -> u32 {
        (self.timeout / self.interval.max(1)).max(1)
    }
}

/// AWS's `DpdTimeoutAction`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DpdAction {
    /// Tear the SAs down and wait for the peer.
    #[default]
    Clear,
    /// Tear down and initiate again.
    Restart,
    /// Only report the dead peer.
    None,
}

impl DpdAction {
    /// The keyword in files and in AWS's API (`clear`, `restart`, `none`).
    pub fn keyword(self) -> &'static str {
        match self {
            DpdAction::Clear => "clear",
            DpdAction::Restart => "restart",
            DpdAction::None => "none",
        }
    }
}

/// AWS's `StartupAction`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartupAction {
    /// The customer gateway initiates; AWS waits.
    #[default]
    Add,
    /// AWS initiates (IKEv2 only).
    Start,
}

impl StartupAction {
    /// The keyword in files and in AWS's API (`add`, `start`).
    pub fn keyword(self) -> &'static str {
        match self {
            StartupAction::Add => "add",
            StartupAction::Start => "start",
        }
    }
}

/// NAT traversal (RFC 3947 / RFC 7296 §2.23, ESP in UDP 4500 per RFC 3948).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatTraversal {
    /// Encapsulate ESP in UDP even when no NAT is detected (strongSwan `encap = yes`).
    #[serde(default)]
    pub force_encapsulation: bool,
}

/// How routes reach the tunnels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Routing {
    /// Fixed prefixes routed into the tunnels (the other side's networks).
    Static {
        #[serde(default)]
        prefixes: Vec<Prefix>,
    },
    /// eBGP over each tunnel's inside addresses.
    Bgp {
        /// This end's ASN (customer gateway: its own ASN; VGW: the Amazon-side ASN).
        local_asn: u32,
        /// The other end's ASN (AWS default for the Amazon side: 64512).
        peer_asn: u32,
        /// Hold time in seconds. Default (AWS): 30.
        #[serde(default = "default_hold_time")]
        hold_time: u16,
        /// Keepalive interval in seconds. Default (AWS): 10.
        #[serde(default = "default_keepalive")]
        keepalive: u16,
        /// Prefixes this end announces.
        #[serde(default)]
        advertised_prefixes: Vec<Prefix>,
        /// Prefixes accepted from the peer (exact or more specific); empty: all.
        #[serde(default)]
        accepted_prefixes: Vec<Prefix>,
        /// Most prefixes accepted from the peer before the session is reset;
        /// `None`: no limit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_prefixes_in: Option<u32>,
        /// Most prefixes announced. Default: 100, AWS's limit for routes from a
        /// customer gateway to a virtual private gateway (more and AWS drops the session).
        #[serde(default = "default_max_prefixes_out")]
        max_prefixes_out: u32,
    },
}

impl Routing {
    /// Whether this is BGP routing.
    pub fn is_bgp(&self) -> bool {
        matches!(self, Routing::Bgp { .. })
    }
}

/// How traffic uses the two tunnels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum FailoverPolicy {
    /// One tunnel carries traffic; the other takes over when it fails.
    ActiveStandby {
        /// Index (0 or 1) of the tunnel used while both are up. Default: 0.
        #[serde(default)]
        preferred_tunnel: usize,
        /// Seconds the preferred tunnel must stay healthy before traffic moves back.
        /// Default: 60.
        #[serde(default = "default_failback")]
        failback_hysteresis_secs: u32,
    },
    /// Both tunnels carry traffic (ECMP), as a transit gateway does.
    ActiveActive,
}

impl Default for FailoverPolicy {
    fn default() -> FailoverPolicy {
        FailoverPolicy::ActiveStandby {
            preferred_tunnel: 0,
            failback_hysteresis_secs: default_failback(),
        }
    }
}

impl ConnectionConfig {
    /// A connection with AWS's defaults around the given tunnels and routing.
    pub fn new(name: impl Into<String>, tunnels: [TunnelConfig; 2], routing: Routing) -> Self {
        ConnectionConfig {
            name: name.into(),
            role: Role::Cgw,
            tunnels,
            routing,
            failover: FailoverPolicy::default(),
            mtu: default_mtu(),
            tcp_mss_clamp: default_mss(),
            clear_df: true,
            fragment_before_encrypt: true,
        }
    }

    /// Parses the native TOML format (see `examples/connection.toml`). Only the syntax
    /// and types are checked here: call [`ConnectionConfig::validate`] next.
    pub fn from_toml(text: &str) -> Result<ConnectionConfig, ConfigError> {
        check_size(text.len())?;
        toml::from_str(text).map_err(|e| {
            let location = e
                .span()
                .map(|span| {
                    let (line, column) = line_column(text, span.start);
                    format!(" at line {line} column {column}")
                })
                .unwrap_or_default();
            ConfigError::Syntax {
                format: "TOML",
                location,
                message: redact_quoted(e.message()),
            }
        })
    }

    /// Parses the native JSON format (same keys as TOML). Validate afterwards.
    pub fn from_json(text: &str) -> Result<ConnectionConfig, ConfigError> {
        check_size(text.len())?;
        serde_json::from_str(text).map_err(|e| json_error(&e))
    }

    /// Serializes to the native TOML format. The output contains the pre-shared keys.
    pub fn to_toml(&self) -> String {
        // Every field serializes to a TOML value (no maps with non-string keys, no
        // `None` outside `skip_serializing_if`), so this cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Serializes to pretty JSON. The output contains the pre-shared keys.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Deserializes exactly two tunnels: some formats silently drop extra elements of a
/// fixed-size array, which would lose a tunnel without a word.
fn two_tunnels<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[TunnelConfig; 2], D::Error> {
    let tunnels = Vec::<TunnelConfig>::deserialize(d)?;
    let n = tunnels.len();
    tunnels.try_into().map_err(|_| {
        serde::de::Error::custom(format_args!("expected exactly 2 tunnels, found {n}"))
    })
}

pub(crate) fn check_size(size: usize) -> Result<(), ConfigError> {
    if size > MAX_INPUT_BYTES {
        return Err(ConfigError::TooLarge {
            size,
            limit: MAX_INPUT_BYTES,
        });
    }
    Ok(())
}

pub(crate) fn json_error(e: &serde_json::Error) -> ConfigError {
    // serde_json appends " at line L column C" to the message it displays.
    let full = e.to_string();
    let message = match full.rfind(" at line ") {
        Some(i) => &full[..i],
        None => &full[..],
    };
    let location = if e.line() > 0 {
        format!(" at line {} column {}", e.line(), e.column())
    } else {
        String::new()
    };
    ConfigError::Syntax {
        format: "JSON",
        location,
        message: redact_quoted(message),
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before, |i| &before[i + 1..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// Replaces each `"..."` in a parser's message with `"…"`: serde echoes string values
/// it could not use (`invalid type: string "..."`), and such a value may be a secret.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        if c == '"' {
            if inside {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    if inside {
        out.push('…');
    }
    out
}

fn default_mtu() -> u16 {
    1436
}
fn default_mss() -> u16 {
    1379
}
fn default_true() -> bool {
    true
}
fn default_ike_version() -> u8 {
    2
}
fn default_ike_proposals() -> Vec<String> {
    vec!["aes256-sha256-modp2048".to_owned()]
}
fn default_esp_proposals() -> Vec<String> {
    vec!["aes256gcm16-modp2048".to_owned()]
}
fn default_ike_lifetime() -> u32 {
    28800
}
fn default_child_lifetime() -> u32 {
    3600
}
fn default_rekey_margin() -> u32 {
    270
}
fn default_rekey_fuzz() -> u8 {
    100
}
fn default_replay_window() -> u32 {
    1024
}
fn default_dpd_interval() -> u32 {
    10
}
fn default_dpd_timeout() -> u32 {
    30
}
fn default_hold_time() -> u16 {
    30
}
fn default_keepalive() -> u16 {
    10
}
fn default_max_prefixes_out() -> u32 {
    100
}
fn default_failback() -> u32 {
    60
}
