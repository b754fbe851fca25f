//! Diffie-Hellman groups for IKE (transform type 4, "Key Exchange Method").
//!
//! KE payload encodings and shared secrets follow the RFCs that define each
//! group, so peers agree byte for byte:
//! - MODP (RFC 2409 §6, RFC 3526): g^x left-padded to the prime's length;
//!   shared secret g^xy left-padded the same way (RFC 7296 §2.14).
//! - ECP (RFC 5903): KE data is x | y without the SEC1 0x04 prefix; the
//!   shared secret is the x coordinate.
//! - Curve25519 (RFC 8031): 32-byte u-coordinates; all-zero secrets rejected.
//!
//! Private keys come only from the injected [`Entropy`], so seeded
//! simulations replay exactly.

mod curve25519;
mod ecp;
mod modp;

use zeroize::Zeroizing;

use super::CryptoError;
use crate::entropy::Entropy;

/// A supported Diffie-Hellman group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// Group 1, 768-bit MODP (RFC 2409). Weak; only for legacy peers.
    Modp768,
    /// Group 2, 1024-bit MODP (RFC 2409). Weak; AWS still accepts it.
    Modp1024,
    /// Group 5, 1536-bit MODP (RFC 3526).
    Modp1536,
    /// Group 14, 2048-bit MODP (RFC 3526).
    Modp2048,
    /// Group 15, 3072-bit MODP (RFC 3526).
    Modp3072,
    /// Group 16, 4096-bit MODP (RFC 3526).
    Modp4096,
    /// Group 19, NIST P-256 (RFC 5903).
    Ecp256,
    /// Group 20, NIST P-384 (RFC 5903).
    Ecp384,
    /// Group 21, NIST P-521 (RFC 5903).
    Ecp521,
    /// Group 31, Curve25519 (RFC 8031).
    Curve25519,
}

impl DhGroup {
    /// Every supported group.
    pub const ALL: [DhGroup; 10] = [
        DhGroup::Modp768,
        DhGroup::Modp1024,
        DhGroup::Modp1536,
        DhGroup::Modp2048,
        DhGroup::Modp3072,
        DhGroup::Modp4096,
        DhGroup::Ecp256,
        DhGroup::Ecp384,
        DhGroup::Ecp521,
        DhGroup::Curve25519,
    ];

    /// Looks up a transform ID; `None` for groups we do not implement.
    pub fn from_id(id: u16) -> Option<DhGroup> {
        DhGroup::ALL.into_iter().find(|g| g.id() == id)
    }

    /// The IANA transform ID (also the KE payload's group number).
    pub fn id(self) -> u16 {
        match self {
            DhGroup::Modp768 => 1,
            DhGroup::Modp1024 => 2,
            DhGroup::Modp1536 => 5,
            DhGroup::Modp2048 => 14,
            DhGroup::Modp3072 => 15,
            DhGroup::Modp4096 => 16,
            DhGroup::Ecp256 => 19,
            DhGroup::Ecp384 => 20,
            DhGroup::Ecp521 => 21,
            DhGroup::Curve25519 => 31,
        }
    }

    /// Parses a strongSwan proposal keyword; `x25519` is accepted as an
    /// alias of `curve25519`.
    pub fn from_keyword(keyword: &str) -> Option<DhGroup> {
        if keyword.eq_ignore_ascii_case("x25519") {
            return Some(DhGroup::Curve25519);
        }
        DhGroup::ALL
            .into_iter()
            .find(|g| g.keyword().eq_ignore_ascii_case(keyword))
    }

    /// The strongSwan proposal keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            DhGroup::Modp768 => "modp768",
            DhGroup::Modp1024 => "modp1024",
            DhGroup::Modp1536 => "modp1536",
            DhGroup::Modp2048 => "modp2048",
            DhGroup::Modp3072 => "modp3072",
            DhGroup::Modp4096 => "modp4096",
            DhGroup::Ecp256 => "ecp256",
            DhGroup::Ecp384 => "ecp384",
            DhGroup::Ecp521 => "ecp521",
            DhGroup::Curve25519 => "curve25519",
        }
    }

    /// Length of the KE payload's key exchange data.
    pub fn public_len(self) -> usize {
        match self.kind() {
            Kind::Modp(m) => m.byte_len(),
            Kind::Ecp(c) => 2 * c.field_len(),
            Kind::X25519 => 32,
        }
    }

    /// Length of the shared secret g^ir.
    pub fn shared_secret_len(self) -> usize {
        match self.kind() {
            Kind::Modp(m) => m.byte_len(),
            Kind::Ecp(c) => c.field_len(),
            Kind::X25519 => 32,
        }
    }

    /// Generates a fresh key pair from `entropy`.
    pub fn generate(self, entropy: &mut dyn Entropy) -> Result<KeyPair, CryptoError> {
        let secret = match self.kind() {
            Kind::Modp(m) => Secret::Modp(modp::PrivateKey::generate(m, entropy)?),
            Kind::Ecp(c) => Secret::Ecp(ecp::PrivateKey::generate(c, entropy)?),
            Kind::X25519 => Secret::X25519(curve25519::PrivateKey::generate(entropy)),
        };
        Ok(KeyPair::from_secret(self, secret))
    }

    /// Builds a key pair from fixed private key bytes (big-endian exponent
    /// or scalar; X25519's 32 raw bytes). For known-answer tests and
    /// reproducible tooling; production keys come from [`DhGroup::generate`].
    pub fn key_pair_from_private(self, private: &[u8]) -> Result<KeyPair, CryptoError> {
        let secret = match self.kind() {
            Kind::Modp(m) => Secret::Modp(modp::PrivateKey::from_bytes(m, private)?),
            Kind::Ecp(c) => Secret::Ecp(ecp::PrivateKey::from_bytes(c, private)?),
            Kind::X25519 => Secret::X25519(curve25519::PrivateKey::from_bytes(private)?),
        };
        Ok(KeyPair::from_secret(self, secret))
    }

    fn kind(self) -> Kind {
        match self {
            DhGroup::Modp768 => Kind::Modp(modp::Modp::G1),
            DhGroup::Modp1024 => Kind::Modp(modp::Modp::G2),
            DhGroup::Modp1536 => Kind::Modp(modp::Modp::G5),
            DhGroup::Modp2048 => Kind::Modp(modp::Modp::G14),
            DhGroup::Modp3072 => Kind::Modp(modp::Modp::G15),
            DhGroup::Modp4096 => Kind::Modp(modp::Modp::G16),
            DhGroup::Ecp256 => Kind::Ecp(ecp::Curve::P256),
            DhGroup::Ecp384 => Kind::Ecp(ecp::Curve::P384),
            DhGroup::Ecp521 => Kind::Ecp(ecp::Curve::P521),
            DhGroup::Curve25519 => Kind::X25519,
        }
    }
}

impl core::fmt::Display for DhGroup {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.keyword())
    }
}

enum Kind {
    Modp(modp::Modp),
    Ecp(ecp::Curve),
    X25519,
}

enum Secret {
    Modp(modp::PrivateKey),
    Ecp(ecp::PrivateKey),
    X25519(curve25519::PrivateKey),
}

/// An ephemeral key pair: our private key and the KE data to send.
///
/// The private key is wiped on drop; `Debug` shows only the group.
pub struct KeyPair {
    group: DhGroup,
    secret: Secret,
    public: Vec<u8>,
}

impl core::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyPair")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    fn from_secret(group: DhGroup, secret: Secret) -> KeyPair {
        let public = match &secret {
            Secret::Modp(k) => k.public_value(),
            Secret::Ecp(k) => k.public_value(),
            Secret::X25519(k) => k.public_value(),
        };
        KeyPair {
            group,
            secret,
            public,
        }
    }

    /// The group this pair belongs to.
    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// Our KE payload data, exactly [`DhGroup::public_len`] bytes.
    pub fn public_value(&self) -> &[u8] {
        &self.public
    }

    /// Computes g^ir from the peer's KE data, after validating it: wrong
    /// lengths, out-of-range MODP values, off-curve or identity points and
    /// low-order X25519 points are errors, never panics.
    pub fn shared_secret(&self, peer: &[u8]) -> Result<SharedSecret, CryptoError> {
        let expected = self.group.public_len();
        if peer.len() != expected {
            return Err(CryptoError::WrongLength {
                expected,
                got: peer.len(),
            });
        }
        let bytes = match &self.secret {
            Secret::Modp(k) => k.agree(peer, self.group.id())?,
            Secret::Ecp(k) => k.agree(peer, self.group.id())?,
            Secret::X25519(k) => k.agree(peer, self.group.id())?,
        };
        Ok(SharedSecret(bytes))
    }
}

/// The DH shared secret g^ir, fixed-length for its group, wiped on drop.
#[derive(Clone)]
pub struct SharedSecret(Zeroizing<Vec<u8>>);

impl SharedSecret {
    /// The secret bytes, as fed to SKEYSEED / SKEYID derivation.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl core::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SharedSecret({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests;
