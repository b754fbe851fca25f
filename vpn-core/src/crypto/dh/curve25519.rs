//! Curve25519 group 31 (RFC 8031) via x25519-dalek.

use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::crypto::CryptoError;
use crate::entropy::Entropy;

/// 32 random bytes; clamping happens inside the scalar multiplication
/// (RFC 7748 §5), so every byte string is a valid key. Wiped on drop.
pub(super) struct PrivateKey(StaticSecret);

impl PrivateKey {
    pub(super) fn generate(entropy: &mut dyn Entropy) -> PrivateKey {
        let mut buf = Zeroizing::new([0u8; 32]);
        entropy.fill(&mut buf[..]);
        PrivateKey(StaticSecret::from(*buf))
    }

    pub(super) fn from_bytes(bytes: &[u8]) -> Result<PrivateKey, CryptoError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::WrongLength {
            expected: 32,
            got: bytes.len(),
        })?;
        let arr = Zeroizing::new(arr);
        Ok(PrivateKey(StaticSecret::from(*arr)))
    }

    pub(super) fn public_value(&self) -> Vec<u8> {
        PublicKey::from(&self.0).as_bytes().to_vec()
    }

    /// RFC 8031 §2.3 / RFC 7748 §6.1: an all-zero result means the peer sent
    /// a low-order point; it must be rejected.
    pub(super) fn agree(&self, peer: &[u8], id: u16) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let arr: [u8; 32] = peer.try_into().map_err(|_| CryptoError::WrongLength {
            expected: 32,
            got: peer.len(),
        })?;
        let shared = self.0.diffie_hellman(&PublicKey::from(arr));
        if !shared.was_contributory() {
            return Err(CryptoError::InvalidPeerPublicValue { group: id });
        }
        Ok(Zeroizing::new(shared.as_bytes().to_vec()))
    }
}
