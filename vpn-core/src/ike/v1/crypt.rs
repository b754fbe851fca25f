//! ISAKMP message protection after the key exchange (RFC 2409 §5 and
//! Appendix B): AES-CBC with the phase 1 key, zero padding, the IV rules,
//! and the plain hash used for IVs and NAT-D.

use crate::crypto::cipher::{AesCbc, AES_BLOCK};
use crate::crypto::{Prf, SecretBytes};
use crate::esp::EncryptionAlgorithm;

/// AES block size: the IV and padding unit.
pub(crate) const BLOCK: usize = AES_BLOCK;

/// The negotiated hash itself (not its HMAC) over the concatenated parts:
/// the initial IV (RFC 2409 Appendix B) and NAT-D (RFC 3947 §3.2).
pub(crate) fn hash(prf: Prf, parts: &[&[u8]]) -> Vec<u8> {
    let alg = match prf {
        Prf::HmacSha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        Prf::HmacSha256 => &ring::digest::SHA256,
        Prf::HmacSha384 => &ring::digest::SHA384,
        Prf::HmacSha512 => &ring::digest::SHA512,
    };
    let mut ctx = ring::digest::Context::new(alg);
    for p in parts {
        ctx.update(p);
    }
    ctx.finish().as_ref().to_vec()
}

/// An IV: the first block of a hash (initial phase 1 IV, Quick Mode and
/// Informational IVs).
pub(crate) fn iv_from_hash(prf: Prf, parts: &[&[u8]]) -> [u8; BLOCK] {
    let h = hash(prf, parts);
    let mut iv = [0u8; BLOCK];
    // Every supported hash is at least 20 bytes long.
    for (d, s) in iv.iter_mut().zip(h.iter()) {
        *d = *s;
    }
    iv
}

/// The last ciphertext block of a message: the next IV in the chain.
pub(crate) fn last_block(ciphertext: &[u8]) -> [u8; BLOCK] {
    let mut iv = [0u8; BLOCK];
    if ciphertext.len() >= BLOCK {
        iv.copy_from_slice(&ciphertext[ciphertext.len() - BLOCK..]);
    }
    iv
}

/// The ISAKMP SA cipher: AES-CBC-128 or -256 with its key schedule.
pub(crate) struct Cipher {
    cbc: AesCbc,
}

impl Cipher {
    /// `None` for algorithms IKEv1 phase 1 does not use here (AEAD) or a key
    /// of the wrong length.
    pub(crate) fn new(alg: EncryptionAlgorithm, key: SecretBytes) -> Option<Cipher> {
        let key_len = match alg {
            EncryptionAlgorithm::Aes128Cbc => 16,
            EncryptionAlgorithm::Aes256Cbc => 32,
            _ => return None,
        };
        (key.len() == key_len)
            .then(|| AesCbc::new(&key))
            .flatten()
            .map(|cbc| Cipher { cbc })
    }

    /// Encrypts `plain` padded with zeros to a whole number of blocks (the
    /// payload lengths say where the data ends, RFC 2408 §3.1).
    pub(crate) fn encrypt(&self, iv: &[u8; BLOCK], plain: &[u8]) -> Vec<u8> {
        let mut buf = plain.to_vec();
        let pad = (BLOCK - buf.len() % BLOCK) % BLOCK;
        buf.resize(buf.len() + pad, 0);
        if buf.is_empty() {
            buf.resize(BLOCK, 0);
        }
        self.cbc.encrypt(iv, &mut buf);
        buf
    }

    /// Decrypts a body; `None` unless it is a non-empty whole number of blocks.
    pub(crate) fn decrypt(&self, iv: &[u8; BLOCK], ciphertext: &[u8]) -> Option<Vec<u8>> {
        if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(BLOCK) {
            return None;
        }
        let mut buf = ciphertext.to_vec();
        self.cbc.decrypt(iv, &mut buf);
        Some(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_util::hex;

    /// RFC 3602 §4 case #1 (AES-128-CBC, one block) through our wrapper.
    #[test]
    fn rfc3602_case1() {
        let key = SecretBytes::new(hex("06a9214036b8a15b512e03d534120006"));
        let iv: [u8; 16] = hex("3dafba429d9eb430b422da802c9fac41").try_into().unwrap();
        let c = Cipher::new(EncryptionAlgorithm::Aes128Cbc, key).unwrap();
        let ct = c.encrypt(&iv, b"Single block msg");
        assert_eq!(ct, hex("e353779c1079aeb82708942dbe77181a"));
        assert_eq!(c.decrypt(&iv, &ct).unwrap(), b"Single block msg");
        assert_eq!(last_block(&ct), <[u8; 16]>::try_from(&ct[..]).unwrap());
        assert!(c.decrypt(&iv, &ct[..15]).is_none());
        // Padding to a whole block with zeros.
        assert_eq!(c.encrypt(&iv, b"abc").len(), 16);
    }

    #[test]
    fn hash_is_the_plain_digest() {
        // SHA-1("abc") (FIPS 180-2 example).
        assert_eq!(
            hash(Prf::HmacSha1, &[b"a", b"bc"]),
            hex("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert_eq!(
            iv_from_hash(Prf::HmacSha1, &[b"abc"]),
            hex("a9993e364706816aba3e25717850c26c")[..]
        );
    }
}
