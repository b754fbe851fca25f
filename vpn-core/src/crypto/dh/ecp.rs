//! NIST ECP groups 19, 20, 21 (RFC 5903) over RustCrypto's `p256`, `p384`
//! and `p521`, which (unlike ring) accept private scalars we generate from
//! injected entropy.
//!
//! KE data is x | y, each coordinate left-padded to the field length, with
//! no SEC1 prefix; the shared secret is the x coordinate of the product.

use p256::elliptic_curve::sec1::ToSec1Point;
use zeroize::Zeroizing;

use crate::crypto::CryptoError;
use crate::entropy::Entropy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    pub(super) fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    fn id(self) -> u16 {
        match self {
            Curve::P256 => 19,
            Curve::P384 => 20,
            Curve::P521 => 21,
        }
    }
}

/// A private scalar in 1..n-1 (each crate's `SecretKey` wipes itself on drop).
pub(super) enum PrivateKey {
    P256(p256::SecretKey),
    P384(p384::SecretKey),
    P521(p521::SecretKey),
}

/// SEC1 uncompressed form minus its 0x04 tag byte.
fn strip_tag(sec1: &[u8]) -> Vec<u8> {
    sec1.get(1..).unwrap_or_default().to_vec()
}

/// 0x04 | x | y, the SEC1 form the curve crates parse and validate.
fn add_tag(peer: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(peer.len() + 1);
    v.push(0x04);
    v.extend_from_slice(peer);
    v
}

impl PrivateKey {
    /// Rejection sampling: random field-length bytes until they form a
    /// scalar in 1..n-1. P-521's top byte is masked to its one used bit so
    /// a draw succeeds about half the time instead of 2^-7.
    pub(super) fn generate(
        curve: Curve,
        entropy: &mut dyn Entropy,
    ) -> Result<PrivateKey, CryptoError> {
        let mut buf = Zeroizing::new(vec![0u8; curve.field_len()]);
        for _ in 0..128 {
            entropy.fill(&mut buf);
            if curve == Curve::P521 {
                buf[0] &= 0x01;
            }
            if let Ok(k) = PrivateKey::from_bytes(curve, &buf) {
                return Ok(k);
            }
        }
        Err(CryptoError::KeyGeneration { group: curve.id() })
    }

    /// A fixed big-endian scalar of exactly the field length, in 1..n-1.
    pub(super) fn from_bytes(curve: Curve, bytes: &[u8]) -> Result<PrivateKey, CryptoError> {
        if bytes.len() != curve.field_len() {
            return Err(CryptoError::WrongLength {
                expected: curve.field_len(),
                got: bytes.len(),
            });
        }
        let invalid = CryptoError::InvalidPrivateKey { group: curve.id() };
        Ok(match curve {
            Curve::P256 => {
                PrivateKey::P256(p256::SecretKey::from_slice(bytes).map_err(|_| invalid)?)
            }
            Curve::P384 => {
                PrivateKey::P384(p384::SecretKey::from_slice(bytes).map_err(|_| invalid)?)
            }
            Curve::P521 => {
                PrivateKey::P521(p521::SecretKey::from_slice(bytes).map_err(|_| invalid)?)
            }
        })
    }

    pub(super) fn public_value(&self) -> Vec<u8> {
        match self {
            PrivateKey::P256(k) => strip_tag(k.public_key().to_sec1_point(false).as_bytes()),
            PrivateKey::P384(k) => strip_tag(k.public_key().to_sec1_point(false).as_bytes()),
            PrivateKey::P521(k) => strip_tag(k.public_key().to_sec1_point(false).as_bytes()),
        }
    }

    /// Parsing the point checks that it is on the curve and not the identity
    /// (the NIST curves have cofactor 1, so that is full validation).
    pub(super) fn agree(&self, peer: &[u8], id: u16) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let sec1 = add_tag(peer);
        let invalid = CryptoError::InvalidPeerPublicValue { group: id };
        let secret = match self {
            PrivateKey::P256(k) => {
                let pk = p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| invalid)?;
                Zeroizing::new(k.diffie_hellman(&pk).raw_secret_bytes().to_vec())
            }
            PrivateKey::P384(k) => {
                let pk = p384::PublicKey::from_sec1_bytes(&sec1).map_err(|_| invalid)?;
                Zeroizing::new(k.diffie_hellman(&pk).raw_secret_bytes().to_vec())
            }
            PrivateKey::P521(k) => {
                let pk = p521::PublicKey::from_sec1_bytes(&sec1).map_err(|_| invalid)?;
                Zeroizing::new(k.diffie_hellman(&pk).raw_secret_bytes().to_vec())
            }
        };
        Ok(secret)
    }
}
