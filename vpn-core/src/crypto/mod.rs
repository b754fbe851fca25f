//! IKE key exchange and key derivation.
//!
//! - [`prf`]: the negotiated pseudo-random function (HMAC-SHA1/SHA2 via ring).
//! - [`kdf`]: IKEv2 key derivation (RFC 7296 §2.13, §2.14, §2.17, §2.18).
//! - [`ikev1`]: IKEv1 key derivation for pre-shared keys (RFC 2409 §5, Appendix B).
//! - [`dh`]: the Diffie-Hellman groups (MODP, NIST ECP, Curve25519).
//! - `cipher`: AES-CBC and short-ICV AES-GCM, shared by ESP and IKE.
//!
//! Everything here is pure: randomness comes in through [`crate::entropy::Entropy`],
//! and secrets live in buffers that are wiped on drop and never printed.

pub(crate) mod cipher;
pub mod dh;
pub mod ikev1;
pub mod kdf;
pub mod prf;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

pub use dh::{DhGroup, KeyPair, SharedSecret};
pub use prf::Prf;

/// Secret bytes (keys, SKEYSEED, KEYMAT): wiped when dropped, compared in
/// constant time, and never printed (`Debug` shows only the length).
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of `bytes` (no copy is left behind).
    pub fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(bytes)
    }

    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Moves a buffer out of a `Zeroizing` wrapper without copying it.
    fn from_zeroizing(mut z: Zeroizing<Vec<u8>>) -> SecretBytes {
        SecretBytes(core::mem::take(&mut *z))
    }
}

impl core::ops::Deref for SecretBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for SecretBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &SecretBytes) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretBytes {}

impl core::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SecretBytes({} bytes)", self.0.len())
    }
}

/// Errors from the key-exchange and key-derivation code.
///
/// Variants carry only public facts (group numbers, lengths), never key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The peer's KE data is not a valid public value for the group
    /// (out of range, not on the curve, the identity, or a low-order point).
    #[error("invalid peer public value for DH group {group}")]
    InvalidPeerPublicValue { group: u16 },
    /// An input had the wrong length (KE data, fixed private key).
    #[error("wrong length: expected {expected} bytes, got {got}")]
    WrongLength { expected: usize, got: usize },
    /// prf+ is defined for at most 255 iterations (RFC 7296 §2.13).
    #[error("prf+ cannot produce {requested} bytes (at most {max} with this PRF)")]
    PrfPlusTooLong { requested: usize, max: usize },
    /// The entropy source kept producing unusable private keys; it is broken.
    #[error("could not generate a private key for DH group {group}")]
    KeyGeneration { group: u16 },
    /// A fixed private key was out of range for its group.
    #[error("invalid private key for DH group {group}")]
    InvalidPrivateKey { group: u16 },
    /// The DH computation gave a degenerate shared secret (e.g. all-zero X25519).
    #[error("degenerate shared secret for DH group {group}")]
    DegenerateSharedSecret { group: u16 },
}

#[cfg(test)]
pub(crate) mod test_util {
    /// Decodes hex for test vectors (whitespace ignored); panics on bad input,
    /// which is fine for constants written in tests.
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .map(|b| match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => panic!("bad hex digit {b}"),
            })
            .collect();
        assert!(digits.len().is_multiple_of(2), "odd hex length");
        digits.chunks(2).map(|c| c[0] << 4 | c[1]).collect()
    }
}
