//! [`Prefix`]: an IP network in CIDR notation (`169.254.44.40/30`).

use core::fmt;
use core::str::FromStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IPv4 or IPv6 prefix. Host bits must be zero (`10.0.0.1/8` is rejected), so a
/// prefix has exactly one spelling. Serialized as its CIDR string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

/// Why a string is not a [`Prefix`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("expected ADDRESS/LENGTH")]
    Syntax,
    #[error("prefix length {len} is longer than {max}")]
    Length { len: u8, max: u8 },
    #[error("host bits are set (the network is {network})")]
    HostBits { network: String },
}

impl Prefix {
    /// A prefix from its network address and length; host bits must be clear.
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, PrefixError> {
        let max = max_len(addr);
        if len > max {
            return Err(PrefixError::Length { len, max });
        }
        let network = Prefix::truncating(addr, len);
        if network.addr != addr {
            return Err(PrefixError::HostBits {
                network: network.to_string(),
            });
        }
        Ok(network)
    }

    /// The prefix of length `len` that contains `addr` (host bits cleared).
    /// `len` is clamped to the address family's maximum.
    pub fn truncating(addr: IpAddr, len: u8) -> Prefix {
        let len = len.min(max_len(addr));
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Prefix { addr, len }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether this is the zero-length prefix (`0.0.0.0/0` or `::/0`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `addr` lies inside this prefix.
    pub fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.addr.is_ipv4() && Prefix::truncating(addr, self.len) == *self
    }

    /// Whether `other` lies entirely inside this prefix.
    pub fn covers(&self, other: &Prefix) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }

    /// The IPv4 host at `offset` inside this prefix (`.1` and `.2` of a tunnel /30);
    /// `None` for IPv6 prefixes or when the offset leaves the prefix.
    pub fn v4_host(&self, offset: u32) -> Option<Ipv4Addr> {
        match self.addr {
            IpAddr::V4(a) => {
                let size = 1u64 << (32 - u32::from(self.len));
                (u64::from(offset) < size).then(|| Ipv4Addr::from(u32::from(a) + offset))
            }
            IpAddr::V6(_) => None,
        }
    }
}

fn max_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Prefix, PrefixError> {
        let (addr, len) = s.trim().split_once('/').ok_or(PrefixError::Syntax)?;
        let addr: IpAddr = addr.parse().map_err(|_| PrefixError::Syntax)?;
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PrefixError::Syntax);
        }
        let len: u8 = len.parse().map_err(|_| PrefixError::Syntax)?;
        Prefix::new(addr, len)
    }
}

impl Serialize for Prefix {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Prefix, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse()
            .map_err(|e| serde::de::Error::custom(format_args!("invalid prefix: {e}")))
    }
}
