//! The speaker's configuration file (`--config <file.toml>`) and its translation
//! into vpn-core's [`SpeakerConfig`] / [`NeighborConfig`]. See
//! `examples/bgp-speaker.toml` for a commented sample.
//!
//! ```toml
//! asn = 65001
//! router_id = "198.51.100.1"
//! port = 179                           # optional: listen and connect port
//! listen = ["198.51.100.1"]            # optional: default every neighbour's local_address
//! max_paths = 1                        # optional: ECMP set size (default 1)
//! announce = ["10.11.0.0/24"]          # originated at startup
//!
//! [[neighbor]]
//! name = "vgw"                         # optional: default the address
//! address = "198.51.100.2"
//! local_address = "198.51.100.1"       # source of our connections, next hop we announce
//! peer_asn = 65002
//! mode = "active"                      # or "passive"
//! hold_time = 30                       # seconds (0 or >= 3)
//! keepalive_time = 10                  # optional: default hold / 3
//! connect_retry = 5                    # seconds
//! idle_hold = 1                        # first backoff after an error (doubles up to idle_hold_max)
//! idle_hold_max = 60
//! password = "secret"                  # TCP-MD5 (RFC 2385)
//! ipv4 = true
//! ipv6 = false
//! graceful_restart = true              # helper side (RFC 4724)
//! max_prefixes = 100                   # inbound limit: Cease / Maximum Number of Prefixes
//! max_prefixes_restart = 30            # optional: come back after this many seconds
//! max_announced = 100                  # optional: outbound cap (AWS VGW takes 100)
//! import = "all"                       # "all" | "none" | { prefixes = [...], local_pref = .. }
//! export = { prefixes = ["10.11.0.0/16 le 24"], prepend = 1, med = 10 }
//! ```
//!
//! Without `import`/`export` an eBGP neighbour accepts and announces nothing
//! (RFC 8212): say `"all"` to opt in.

use std::collections::{BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use vpn_core::bgp::policy::{Actions, Policy, PrefixList, PrefixListEntry};
use vpn_core::bgp::rib::IpPrefix;
use vpn_core::bgp::session::{ConnectMode, GracefulRestartConfig, Secret, SessionConfig};
use vpn_core::bgp::speaker::{MaxPrefixes, NeighborConfig, SpeakerConfig};

/// The well-known BGP port.
pub const BGP_PORT: u16 = 179;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Addresses to listen on; default: every neighbour's `local_address`.
    pub listen: Option<Vec<IpAddr>>,
    #[serde(default = "default_max_paths")]
    pub max_paths: usize,
    /// Prefixes originated at startup.
    #[serde(default)]
    pub announce: Vec<String>,
    #[serde(default, rename = "neighbor")]
    pub neighbors: Vec<Neighbor>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Neighbor {
    pub name: Option<String>,
    pub address: IpAddr,
    pub local_address: IpAddr,
    pub peer_asn: u32,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default = "default_hold")]
    pub hold_time: u16,
    pub keepalive_time: Option<u16>,
    #[serde(default = "default_connect_retry")]
    pub connect_retry: u64,
    #[serde(default = "default_idle_hold")]
    pub idle_hold: u64,
    #[serde(default = "default_idle_hold_max")]
    pub idle_hold_max: u64,
    /// Seconds to wait for the peer's OPEN.
    #[serde(default = "default_open_hold")]
    pub open_hold_time: u64,
    pub password: Option<String>,
    #[serde(default = "default_true")]
    pub ipv4: bool,
    #[serde(default)]
    pub ipv6: bool,
    #[serde(default = "default_true")]
    pub graceful_restart: bool,
    pub max_prefixes: Option<u32>,
    pub max_prefixes_restart: Option<u64>,
    pub max_announced: Option<usize>,
    pub import: Option<PolicyConfig>,
    pub export: Option<PolicyConfig>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Active,
    Passive,
}

/// `"all"`, `"none"`, or a table: accept what `prefixes` matches (everything when
/// absent) with the given attribute changes, reject the rest.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PolicyConfig {
    Keyword(String),
    Terms(PolicyTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyTable {
    /// `"10.0.0.0/8"` (exact), `"10.0.0.0/8 le 24"`, `"10.0.0.0/8 ge 16 le 24"`.
    pub prefixes: Option<Vec<String>>,
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
    /// Extra prepends of our AS (export).
    #[serde(default)]
    pub prepend: u8,
}

fn default_port() -> u16 {
    BGP_PORT
}
fn default_max_paths() -> usize {
    1
}
fn default_hold() -> u16 {
    30
}
fn default_connect_retry() -> u64 {
    5
}
fn default_idle_hold() -> u64 {
    1
}
fn default_idle_hold_max() -> u64 {
    60
}
fn default_open_hold() -> u64 {
    240
}
fn default_true() -> bool {
    true
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let config: Config =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        let mut seen = HashSet::new();
        for n in &self.neighbors {
            if !seen.insert(n.address) {
                return Err(format!("neighbour {} is configured twice", n.address));
            }
            if n.address.is_ipv4() != n.local_address.is_ipv4() {
                return Err(format!(
                    "neighbour {}: local_address {} is of another family",
                    n.address, n.local_address
                ));
            }
        }
        self.announced()?;
        for n in &self.neighbors {
            n.neighbor_config(self)?;
        }
        Ok(())
    }

    pub fn speaker(&self) -> SpeakerConfig {
        let mut s = SpeakerConfig::new(self.asn, self.router_id);
        s.max_paths = self.max_paths.max(1);
        s
    }

    pub fn announced(&self) -> Result<Vec<IpPrefix>, String> {
        self.announce.iter().map(|p| parse_prefix(p)).collect()
    }

    /// Addresses to listen on, deduplicated.
    pub fn listen_addresses(&self) -> Vec<IpAddr> {
        let set: BTreeSet<IpAddr> = match &self.listen {
            Some(l) => l.iter().copied().collect(),
            None => self.neighbors.iter().map(|n| n.local_address).collect(),
        };
        set.into_iter().collect()
    }
}

impl Neighbor {
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.address.to_string())
    }

    pub fn neighbor_config(&self, global: &Config) -> Result<NeighborConfig, String> {
        let mut s = SessionConfig::new(
            global.asn,
            global.router_id,
            self.peer_asn,
            self.local_address,
            self.address,
        );
        s.mode = match self.mode {
            Mode::Active => ConnectMode::Active,
            Mode::Passive => ConnectMode::Passive,
        };
        s.hold_time = self.hold_time;
        s.keepalive_time = self.keepalive_time;
        s.open_hold_time = Duration::from_secs(self.open_hold_time);
        s.connect_retry = Duration::from_secs(self.connect_retry);
        s.idle_hold_time = Duration::from_secs(self.idle_hold);
        s.idle_hold_max = Duration::from_secs(self.idle_hold_max.max(self.idle_hold));
        s.ipv4_unicast = self.ipv4;
        s.ipv6_unicast = self.ipv6;
        s.graceful_restart = self.graceful_restart.then(GracefulRestartConfig::default);
        s.md5_password = self.password.clone().map(Secret::new);
        s.validate()
            .map_err(|e| format!("neighbour {}: {e}", self.address))?;
        if self
            .password
            .as_ref()
            .is_some_and(|p| p.len() > MD5_MAX_KEY)
        {
            return Err(format!(
                "neighbour {}: TCP-MD5 password longer than {MD5_MAX_KEY} bytes",
                self.address
            ));
        }
        let mut n = NeighborConfig::new(s);
        n.import = policy(self.import.as_ref()).map_err(|e| self.err("import", e))?;
        n.export = policy(self.export.as_ref()).map_err(|e| self.err("export", e))?;
        n.max_prefixes = self.max_prefixes.map(|limit| MaxPrefixes {
            limit,
            restart: self.max_prefixes_restart.map(Duration::from_secs),
        });
        n.max_announced = self.max_announced;
        Ok(n)
    }

    fn err(&self, what: &str, e: String) -> String {
        format!("neighbour {} {what}: {e}", self.address)
    }
}

/// Linux's `TCP_MD5SIG_MAXKEYLEN`.
pub const MD5_MAX_KEY: usize = 80;

fn policy(p: Option<&PolicyConfig>) -> Result<Option<Policy>, String> {
    Ok(match p {
        None => None,
        Some(PolicyConfig::Keyword(k)) => match k.as_str() {
            "all" => Some(Policy::accept_all()),
            "none" => Some(Policy::reject_all()),
            other => return Err(format!("unknown policy {other:?} (all, none or a table)")),
        },
        Some(PolicyConfig::Terms(t)) => {
            let actions = Actions {
                local_pref: t.local_pref,
                med: t.med,
                prepend: t.prepend,
                ..Actions::default()
            };
            Some(match &t.prefixes {
                None => Policy::accept_with(actions),
                Some(list) => {
                    let entries = list
                        .iter()
                        .map(|s| prefix_list_entry(s))
                        .collect::<Result<Vec<_>, _>>()?;
                    Policy::prefix_list(PrefixList::new(entries), actions)
                }
            })
        }
    })
}

/// `prefix [ge N] [le M]`.
fn prefix_list_entry(s: &str) -> Result<PrefixListEntry, String> {
    let mut words = s.split_whitespace();
    let prefix = parse_prefix(words.next().unwrap_or(""))?;
    let mut entry = PrefixListEntry::exact(prefix);
    while let Some(w) = words.next() {
        let n: u8 = words
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{s:?}: {w} needs a length"))?;
        match w {
            "ge" => entry.ge = Some(n),
            "le" => entry.le = Some(n),
            _ => return Err(format!("{s:?}: expected ge or le, found {w:?}")),
        }
    }
    Ok(entry)
}

pub fn parse_prefix(s: &str) -> Result<IpPrefix, String> {
    IpPrefix::parse(s).ok_or_else(|| format!("not a prefix: {s:?} (want a.b.c.d/len or x::/len)"))
}
