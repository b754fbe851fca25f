//! ESP (RFC 4303) in tunnel mode: the data plane.
//!
//! An [`EspSa`] seals inner IPv4/IPv6 packets into ESP and opens them again,
//! in place in the caller's buffer. It keeps the sequence counter, the
//! anti-replay window, lifetimes and counters; it never allocates per packet.
//!
//! ```
//! use vpn_core::esp::{EncryptionAlgorithm, EspKeys, EspSa, EspSaConfig};
//! use vpn_core::{entropy::SeededEntropy, time::Timestamp};
//!
//! let config = EspSaConfig::new(0x1000, EncryptionAlgorithm::Aes256Gcm16);
//! let keys = EspKeys { encryption: &[7u8; 36], integrity: &[] };
//! let mut rng = SeededEntropy::new(1);
//! let mut out = EspSa::new(&config, keys, Timestamp::ZERO, &mut rng)?;
//! let mut inn = EspSa::new(&config, keys, Timestamp::ZERO, &mut rng)?;
//!
//! // An IPv4 header (20 bytes, total length 20) as the inner packet.
//! let inner = [0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 198, 51, 100, 1];
//! let mut buf = [0u8; 128];
//! buf[out.headroom()..][..inner.len()].copy_from_slice(&inner);
//! let esp_len = out.encapsulate_in_place(Timestamp::ZERO, &mut buf, inner.len())?;
//! let opened = inn.decapsulate_in_place(Timestamp::ZERO, &mut buf[..esp_len])?;
//! assert_eq!(&buf[opened.range()], &inner);
//! # Ok::<(), vpn_core::esp::EspError>(())
//! ```

mod algorithm;
pub mod nat_t;
mod replay;
mod sa;
mod transform;

pub use algorithm::{EncryptionAlgorithm, IntegrityAlgorithm};
pub use replay::{ReplayKind, MAX_REPLAY_WINDOW, MIN_REPLAY_WINDOW};
pub use sa::{
    EspCounters, EspEvent, EspKeys, EspSa, EspSaConfig, Framing, InnerPacket, InnerProtocol,
    LifetimeLimit, Lifetimes, Limits,
};

use nat_t::NatTKind;

/// Which key a length error is about. Errors never carry key bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Encryption,
    Integrity,
}

/// Everything that can go wrong creating an SA or moving a packet through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EspError {
    #[error("unknown ESP algorithm keyword")]
    UnknownAlgorithm,
    #[error("invalid ESP SA configuration: {0}")]
    InvalidConfig(&'static str),
    #[error("{key:?} key is {got} bytes, the algorithm needs {expected}")]
    InvalidKeyLength {
        key: KeyKind,
        expected: usize,
        got: usize,
    },
    #[error("buffer too small: {needed} bytes needed")]
    BufferTooSmall { needed: usize },
    #[error("inner packet is neither IPv4 nor IPv6")]
    UnsupportedInnerPacket,
    #[error("sequence number space exhausted: the SA must be rekeyed")]
    SequenceExhausted,
    #[error("SA hard lifetime expired")]
    Expired,
    #[error("packet is for SPI {got:#010x}, this SA is {expected:#010x}")]
    WrongSpi { expected: u32, got: u32 },
    #[error("replayed packet: sequence number {seq} ({kind:?})")]
    Replay { seq: u64, kind: ReplayKind },
    #[error("ICV verification failed (wrong key or corrupted packet)")]
    Authentication,
    #[error("invalid ESP padding")]
    InvalidPadding,
    #[error("malformed ESP packet: {0}")]
    Malformed(&'static str),
    #[error("datagram on the NAT-T port is not ESP ({0:?})")]
    NotEsp(NatTKind),
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;
