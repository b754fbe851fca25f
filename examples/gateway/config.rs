//! The gateway's own configuration file (`--config <file.toml>`), and its
//! translation into [`vpn_core::tunnel::TunnelSettings`].
//!
//! ```toml
//! name = "site-a"                  # optional, for logs
//! start = true                     # connect at startup (else wait for {"cmd":"initiate"})
//! replay_window = 1024             # optional (AWS default)
//!
//! [outside]                        # UDP 500 and 4500 are bound on `local`
//! local = "192.0.2.1"
//! remote = "192.0.2.2"
//!
//! [inner]                          # traffic selectors
//! local_traffic = ["10.201.1.0/24"]
//! remote_traffic = ["10.201.2.0/24"]
//!
//! [tun]
//! name = "vpn0"
//! address = "10.201.1.1/32"
//! mtu = 1436                       # optional (AWS recommendation)
//! routes = ["10.201.2.0/24"]       # `ip route replace <p> dev <name>` at startup
//! ipv6 = false                     # default: IPv6 disabled on the device
//!
//! [manual]                         # static SAs (exactly one keying section:
//!                                  # [manual] or [ikev2])
//! encryption = "aes256gcm16"       # strongSwan ESP keyword
//! integrity = "sha256"             # only with CBC encryption
//! esn = true
//! [manual.outbound]
//! spi = 0x00001001
//! encryption_key = "hex..."        # AEAD: key followed by its 4-byte salt
//! integrity_key = "hex..."         # CBC only
//! [manual.inbound]
//! spi = 0x00002002
//! encryption_key = "hex..."
//!
//! # or: IKEv2 with a pre-shared key (examples/gateway-ikev2.toml): the keys of
//! # vpn_core::config::TunnelConfig; outside addresses from [outside].
//! [ikev2]
//! psk = "..."
//! startup_action = "start"         # we initiate; "add": wait for the peer
//! ike_proposals = ["aes256gcm16-prfsha256-ecp256"]
//! esp_proposals = ["aes256gcm16"]
//! dpd = { interval = 10, timeout = 30, action = "clear" }
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde::Deserialize;
use vpn_core::config::Prefix;
use vpn_core::config::TunnelConfig;
use vpn_core::esp::{EncryptionAlgorithm, IntegrityAlgorithm};
use vpn_core::ike::v2::Ikev2Settings;
use vpn_core::tunnel::{Keying, ManualKeying, ManualSa, TunnelSettings};
use zeroize::Zeroizing;

/// AWS's recommended tunnel MTU.
pub const DEFAULT_MTU: u16 = 1436;

/// `ikev2.inside_cidr` when the file gives none: the tunnel itself never uses it.
const DEFAULT_INSIDE_CIDR: &str = "169.254.0.0/30";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    #[serde(default = "default_name")]
    pub name: String,
    /// Bring the tunnel up at startup. Default: true.
    #[serde(default = "default_true")]
    pub start: bool,
    #[serde(default = "default_replay_window")]
    pub replay_window: u32,
    pub outside: Outside,
    pub inner: Inner,
    pub tun: Tun,
    /// Static SAs.
    pub manual: Option<Manual>,
    // ---- IKEv2 keying: the place for `[ikev2]`. -------------------------------
    // The table maps onto `vpn_core::config::TunnelConfig` (psk, ike_proposals,
    // esp_proposals, lifetimes, dpd, identities, ...); `[outside]` supplies its
    // outside addresses. See `GatewayConfig::keying` for the conversion.
    /// `ike_version = 1` in it selects IKEv1; `[ike]` is accepted as an alias.
    #[serde(alias = "ike")]
    pub ikev2: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outside {
    pub local: IpAddr,
    pub remote: IpAddr,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inner {
    pub local_traffic: Vec<Prefix>,
    pub remote_traffic: Vec<Prefix>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tun {
    pub name: String,
    /// `address/len`; an IPv4 address (IPv6 inner addresses are not configured yet).
    pub address: String,
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// Prefixes routed into the TUN device at startup.
    #[serde(default)]
    pub routes: Vec<Prefix>,
    /// Keep IPv6 enabled on the device. Default: false (the kernel's own IPv6
    /// chatter, router solicitations and MLD, stays out of an IPv4 tunnel).
    #[serde(default)]
    pub ipv6: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manual {
    pub encryption: String,
    pub integrity: Option<String>,
    #[serde(default = "default_true")]
    pub esn: bool,
    pub outbound: ManualDirection,
    pub inbound: ManualDirection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualDirection {
    pub spi: u32,
    pub encryption_key: String,
    #[serde(default)]
    pub integrity_key: String,
}

impl std::fmt::Debug for ManualDirection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManualDirection")
            .field("spi", &format_args!("{:08x}", self.spi))
            .finish_non_exhaustive()
    }
}

fn default_name() -> String {
    "gateway".into()
}
fn default_true() -> bool {
    true
}
fn default_replay_window() -> u32 {
    1024
}
fn default_mtu() -> u16 {
    DEFAULT_MTU
}

impl GatewayConfig {
    pub fn load(path: &Path) -> Result<GatewayConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let config: GatewayConfig =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        config.tun_address()?;
        // Keying errors (a missing PSK, an unknown algorithm) are config errors too.
        config.keying()?;
        Ok(config)
    }

    /// The TUN device's inner address and prefix length.
    pub fn tun_address(&self) -> Result<(std::net::Ipv4Addr, u8), String> {
        let bad = || {
            format!(
                "tun.address: expected IPv4 `addr/len`, got {:?}",
                self.tun.address
            )
        };
        let (addr, len) = match self.tun.address.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().map_err(|_| bad())?),
            None => (self.tun.address.as_str(), 32),
        };
        let addr = addr.parse().map_err(|_| bad())?;
        if len > 32 {
            return Err(bad());
        }
        Ok((addr, len))
    }

    /// What the tunnel is built from.
    pub fn tunnel_settings(&self) -> Result<TunnelSettings, String> {
        Ok(TunnelSettings {
            local: SocketAddr::new(self.outside.local, 500),
            remote: SocketAddr::new(self.outside.remote, 500),
            keying: self.keying()?,
            local_traffic: self.inner.local_traffic.clone(),
            remote_traffic: self.inner.remote_traffic.clone(),
            replay_window: self.replay_window,
        })
    }

    fn keying(&self) -> Result<Keying, String> {
        match (&self.manual, &self.ikev2) {
            (Some(manual), None) => Ok(Keying::Manual(manual.keying()?)),
            (None, Some(table)) => self.ike_keying(table),
            (Some(_), Some(_)) => Err("configure one of [manual] and [ikev2], not both".into()),
            (None, None) => Err("missing keying: add a [manual] (or [ikev2]) section".into()),
        }
    }
}

impl GatewayConfig {
    /// `[ikev2]` read as the core's [`TunnelConfig`], with the outside
    /// addresses (and, unless given, a placeholder inside /30, which only the
    /// AWS-shaped connection layer uses) taken from the rest of the file.
    pub fn ikev2_config(&self, table: &toml::Table) -> Result<TunnelConfig, String> {
        let mut t = table.clone();
        for key in ["local_outside_address", "remote_outside_address"] {
            if t.contains_key(key) {
                return Err(format!("ikev2.{key}: set by [outside], leave it out here"));
            }
        }
        t.insert(
            "local_outside_address".into(),
            self.outside.local.to_string().into(),
        );
        t.insert(
            "remote_outside_address".into(),
            self.outside.remote.to_string().into(),
        );
        t.entry("inside_cidr")
            .or_insert_with(|| DEFAULT_INSIDE_CIDR.into());
        t.entry("replay_window")
            .or_insert_with(|| i64::from(self.replay_window).into());
        // Errors name the key, never a value (the table holds the PSK).
        t.try_into()
            .map_err(|e: toml::de::Error| format!("[ikev2]: {}", e.message()))
    }

    /// IKEv2, or IKEv1 with `ike_version = 1`.
    fn ike_keying(&self, table: &toml::Table) -> Result<Keying, String> {
        if table.get("ike_version").and_then(toml::Value::as_integer) == Some(1) {
            let config = self.ikev2_config(table)?;
            return Keying::from_config(&config).map_err(|e| format!("[ikev2] (IKEv1): {e}"));
        }
        Ok(Keying::Ikev2(Box::new(self.ikev2_settings(table)?)))
    }

    fn ikev2_settings(&self, table: &toml::Table) -> Result<Ikev2Settings, String> {
        let config = self.ikev2_config(table)?;
        if config.ike_version != 2 {
            return Err(format!(
                "ikev2.ike_version: {} is not supported by this gateway",
                config.ike_version
            ));
        }
        Ikev2Settings::from_config(&config).map_err(|e| format!("[ikev2] proposals: {e}"))
    }
}

impl Manual {
    fn keying(&self) -> Result<ManualKeying, String> {
        let encryption = EncryptionAlgorithm::from_keyword(&self.encryption)
            .map_err(|_| format!("manual.encryption: unknown keyword {:?}", self.encryption))?;
        let integrity = self
            .integrity
            .as_deref()
            .map(|k| {
                IntegrityAlgorithm::from_keyword(k)
                    .map_err(|_| format!("manual.integrity: unknown keyword {k:?}"))
            })
            .transpose()?;
        let sa = |dir: &ManualDirection, which: &str| -> Result<ManualSa, String> {
            Ok(ManualSa {
                spi: dir.spi,
                encryption,
                integrity,
                encryption_key: hex(&dir.encryption_key)
                    .map_err(|e| format!("manual.{which}.encryption_key: {e}"))?,
                integrity_key: hex(&dir.integrity_key)
                    .map_err(|e| format!("manual.{which}.integrity_key: {e}"))?,
                esn: self.esn,
            })
        };
        Ok(ManualKeying {
            outbound: sa(&self.outbound, "outbound")?,
            inbound: sa(&self.inbound, "inbound")?,
        })
    }
}

/// Hex digits (whitespace, `:` and a `0x` prefix allowed) to bytes. Errors never
/// repeat the key.
fn hex(s: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let s = s.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    let digits: Zeroizing<Vec<u8>> = Zeroizing::new(
        s.bytes()
            .filter(|b| !b.is_ascii_whitespace() && *b != b':')
            .collect(),
    );
    if !digits.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    let nibble = |c: u8| -> Result<u8, String> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err("not a hex digit".into()),
        }
    };
    let mut out = Zeroizing::new(Vec::with_capacity(digits.len() / 2));
    for pair in digits.chunks(2) {
        out.push(nibble(pair[0])? << 4 | nibble(pair[1])?);
    }
    Ok(out)
}
