//! The RustCrypto ciphers ESP and IKE share: AES-CBC (RFC 3602; IKEv2's SK
//! payload, IKEv1's ISAKMP encryption, ESP) and AES-GCM with the 8- and
//! 12-byte ICVs ring lacks (RFC 4106, RFC 5282). Key schedules are wiped on
//! drop (the `aes` and `aes-gcm` crates' `zeroize` features). ring serves the
//! 16-byte-ICV AEADs directly.

use aes::cipher::{
    BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, InnerIvInit,
    KeyInit,
};
use aes::{Aes128, Aes256};
use aes_gcm::aead::array::typenum::Unsigned;
use aes_gcm::aead::consts::{U12, U16, U8};
use aes_gcm::aead::AeadInOut;
use aes_gcm::AesGcm;

/// The AES block, and the CBC IV.
pub(crate) const AES_BLOCK: usize = 16;

/// AES-CBC with its key schedule.
pub(crate) enum AesCbc {
    Aes128(Aes128),
    Aes256(Aes256),
}

impl AesCbc {
    /// A 16- or 32-byte key; `None` for any other length.
    pub(crate) fn new(key: &[u8]) -> Option<AesCbc> {
        match key.len() {
            16 => Aes128::new_from_slice(key).ok().map(AesCbc::Aes128),
            32 => Aes256::new_from_slice(key).ok().map(AesCbc::Aes256),
            _ => None,
        }
    }

    /// Encrypts the whole blocks of `body` in place (callers pad first; a
    /// partial last block is left as it is).
    pub(crate) fn encrypt(&self, iv: &[u8; AES_BLOCK], body: &mut [u8]) {
        match self {
            AesCbc::Aes128(c) => encrypt_with(c, iv, body),
            AesCbc::Aes256(c) => encrypt_with(c, iv, body),
        }
    }

    /// Decrypts the whole blocks of `body` in place.
    pub(crate) fn decrypt(&self, iv: &[u8; AES_BLOCK], body: &mut [u8]) {
        match self {
            AesCbc::Aes128(c) => decrypt_with(c, iv, body),
            AesCbc::Aes256(c) => decrypt_with(c, iv, body),
        }
    }
}

fn encrypt_with<C>(cipher: &C, iv: &[u8; AES_BLOCK], body: &mut [u8])
where
    C: BlockCipherEncrypt<BlockSize = U16> + Clone,
{
    let mut mode = cbc::Encryptor::<C>::inner_iv_init(cipher.clone(), iv.into());
    let (blocks, _) = aes::cipher::Block::<C>::slice_as_chunks_mut(body);
    mode.encrypt_blocks(blocks);
}

fn decrypt_with<C>(cipher: &C, iv: &[u8; AES_BLOCK], body: &mut [u8])
where
    C: BlockCipherDecrypt<BlockSize = U16> + Clone,
{
    let mut mode = cbc::Decryptor::<C>::inner_iv_init(cipher.clone(), iv.into());
    let (blocks, _) = aes::cipher::Block::<C>::slice_as_chunks_mut(body);
    mode.decrypt_blocks(blocks);
}

/// AES-GCM with an 8- or 12-byte ICV.
pub(crate) enum ShortGcm {
    Aes128Icv12(AesGcm<Aes128, U12, U12>),
    Aes256Icv12(AesGcm<Aes256, U12, U12>),
    Aes128Icv8(AesGcm<Aes128, U12, U8>),
    Aes256Icv8(AesGcm<Aes256, U12, U8>),
}

/// Why [`ShortGcm`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GcmFailure {
    /// The input cannot be sealed (say, more than GCM protects under one nonce).
    Malformed(&'static str),
    /// The ICV did not verify (or had the wrong length): nothing decrypted.
    Authentication,
}

impl ShortGcm {
    /// A 16- or 32-byte key and an 8- or 12-byte ICV; `None` otherwise.
    pub(crate) fn new(key: &[u8], icv_len: usize) -> Option<ShortGcm> {
        Some(match (key.len(), icv_len) {
            (16, 12) => ShortGcm::Aes128Icv12(KeyInit::new_from_slice(key).ok()?),
            (32, 12) => ShortGcm::Aes256Icv12(KeyInit::new_from_slice(key).ok()?),
            (16, 8) => ShortGcm::Aes128Icv8(KeyInit::new_from_slice(key).ok()?),
            (32, 8) => ShortGcm::Aes256Icv8(KeyInit::new_from_slice(key).ok()?),
            _ => return None,
        })
    }

    /// Encrypts `body` in place and writes its ICV to `icv`.
    pub(crate) fn seal(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        body: &mut [u8],
        icv: &mut [u8],
    ) -> Result<(), GcmFailure> {
        match self {
            ShortGcm::Aes128Icv12(g) => seal_with(g, nonce, aad, body, icv),
            ShortGcm::Aes256Icv12(g) => seal_with(g, nonce, aad, body, icv),
            ShortGcm::Aes128Icv8(g) => seal_with(g, nonce, aad, body, icv),
            ShortGcm::Aes256Icv8(g) => seal_with(g, nonce, aad, body, icv),
        }
    }

    /// Verifies `icv`, then decrypts `body` in place.
    pub(crate) fn open(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        body: &mut [u8],
        icv: &[u8],
    ) -> Result<(), GcmFailure> {
        match self {
            ShortGcm::Aes128Icv12(g) => open_with(g, nonce, aad, body, icv),
            ShortGcm::Aes256Icv12(g) => open_with(g, nonce, aad, body, icv),
            ShortGcm::Aes128Icv8(g) => open_with(g, nonce, aad, body, icv),
            ShortGcm::Aes256Icv8(g) => open_with(g, nonce, aad, body, icv),
        }
    }
}

fn seal_with<A: AeadInOut>(
    gcm: &A,
    nonce: &[u8; 12],
    aad: &[u8],
    body: &mut [u8],
    icv: &mut [u8],
) -> Result<(), GcmFailure> {
    let nonce = aes_gcm::aead::Nonce::<A>::try_from(&nonce[..])
        .map_err(|_| GcmFailure::Malformed("nonce length"))?;
    if icv.len() != A::TagSize::USIZE {
        return Err(GcmFailure::Malformed("ICV length"));
    }
    let tag = gcm
        .encrypt_inout_detached(&nonce, aad, body.into())
        .map_err(|_| GcmFailure::Malformed("payload too long for the AEAD"))?;
    icv.copy_from_slice(&tag);
    Ok(())
}

fn open_with<A: AeadInOut>(
    gcm: &A,
    nonce: &[u8; 12],
    aad: &[u8],
    body: &mut [u8],
    icv: &[u8],
) -> Result<(), GcmFailure> {
    let nonce =
        aes_gcm::aead::Nonce::<A>::try_from(&nonce[..]).map_err(|_| GcmFailure::Authentication)?;
    let tag = aes_gcm::aead::Tag::<A>::try_from(icv).map_err(|_| GcmFailure::Authentication)?;
    gcm.decrypt_inout_detached(&nonce, aad, body.into(), &tag)
        .map_err(|_| GcmFailure::Authentication)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_util::hex;

    #[test]
    fn aes_cbc_matches_rfc_3602_case_1_and_refuses_odd_keys() {
        let cbc = AesCbc::new(&hex("06a9214036b8a15b512e03d534120006")).unwrap();
        let iv: [u8; 16] = hex("3dafba429d9eb430b422da802c9fac41").try_into().unwrap();
        let mut block = *b"Single block msg";
        cbc.encrypt(&iv, &mut block);
        assert_eq!(block.to_vec(), hex("e353779c1079aeb82708942dbe77181a"));
        cbc.decrypt(&iv, &mut block);
        assert_eq!(&block, b"Single block msg");
        assert!(AesCbc::new(&[0u8; 24]).is_none());
        assert!(AesCbc::new(&[0u8; 32]).is_some());
    }

    #[test]
    fn short_gcm_round_trips_and_rejects_tampering() {
        for (key_len, icv_len) in [(16, 8), (16, 12), (32, 8), (32, 12)] {
            let gcm = ShortGcm::new(&vec![7u8; key_len], icv_len).unwrap();
            let nonce = [1u8; 12];
            let mut body = *b"inner packet";
            let mut icv = vec![0u8; icv_len];
            gcm.seal(&nonce, b"aad", &mut body, &mut icv).unwrap();
            assert_ne!(&body, b"inner packet");
            let sealed = body;
            gcm.open(&nonce, b"aad", &mut body, &icv).unwrap();
            assert_eq!(&body, b"inner packet");
            let mut forged = sealed;
            forged[0] ^= 1;
            assert_eq!(
                gcm.open(&nonce, b"aad", &mut forged, &icv),
                Err(GcmFailure::Authentication)
            );
            assert_eq!(forged, {
                let mut f = sealed;
                f[0] ^= 1;
                f
            });
            let mut short = [0u8; 4];
            assert_eq!(
                gcm.seal(&nonce, b"", &mut body, &mut short),
                Err(GcmFailure::Malformed("ICV length"))
            );
        }
        assert!(ShortGcm::new(&[0u8; 16], 16).is_none());
        assert!(ShortGcm::new(&[0u8; 24], 8).is_none());
    }
}
