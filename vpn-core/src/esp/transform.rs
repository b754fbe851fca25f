//! The per-packet cryptography of an ESP SA: one enum over the supported
//! transforms, each sealing and opening in place.
//!
//! Packet layout handed to [`Transform::seal`] and [`Transform::open`]
//! (RFC 4303 §2): `SPI | Sequence | IV | payload, padding, pad length, next
//! header | ICV`. The caller has written everything but the IV, ciphertext and ICV.

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes128;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use subtle::ConstantTimeEq;

use super::{EncryptionAlgorithm, EspError, IntegrityAlgorithm, KeyKind};
use crate::crypto::cipher::{AesCbc, GcmFailure, ShortGcm};

/// SPI and sequence number.
pub(crate) const ESP_HEADER_LEN: usize = 8;

/// Sequence number as the ICV sees it.
#[derive(Clone, Copy)]
pub(crate) struct SeqForIcv {
    pub full: u64,
    /// ESN: the high 32 bits are authenticated though never sent.
    pub esn: bool,
}

pub(crate) struct Transform {
    kind: Kind,
    iv_len: usize,
    icv_len: usize,
}

// Each SA owns exactly one transform, so the size of the largest variant
// costs nothing per packet, while boxing would add a pointer chase to each.
#[allow(clippy::large_enum_variant)]
enum Kind {
    /// AES-GCM-16 and ChaCha20-Poly1305: ring, the fast path.
    RingAead { key: LessSafeKey, salt: [u8; 4] },
    /// AES-GCM with a truncated ICV, which ring lacks.
    ShortGcm { gcm: ShortGcm, salt: [u8; 4] },
    /// AES-CBC (RFC 3602) with HMAC (RFC 2404 / RFC 4868).
    CbcHmac {
        cipher: AesCbc,
        /// Keyed permutation of the sequence number that makes each CBC IV
        /// unpredictable to anyone without the SA's entropy (RFC 3602 §3).
        iv_generator: Aes128,
        mac: hmac::Key,
    },
}

impl Transform {
    /// Builds the transform from KEYMAT (AEAD key followed by its salt, or CBC
    /// key) and the integrity key. `iv_seed` keys the CBC IV generator.
    pub(crate) fn new(
        encryption: EncryptionAlgorithm,
        integrity: Option<IntegrityAlgorithm>,
        enc_keymat: &[u8],
        integ_key: &[u8],
        iv_seed: &[u8; 16],
    ) -> Result<Self, EspError> {
        use EncryptionAlgorithm as E;
        if enc_keymat.len() != encryption.keymat_len() {
            return Err(EspError::InvalidKeyLength {
                key: KeyKind::Encryption,
                expected: encryption.keymat_len(),
                got: enc_keymat.len(),
            });
        }
        let (key, salt_bytes) =
            enc_keymat.split_at(encryption.keymat_len() - encryption.salt_len());
        let mut salt = [0u8; 4];
        salt[..salt_bytes.len()].copy_from_slice(salt_bytes);
        let bad_key = || EspError::InvalidKeyLength {
            key: KeyKind::Encryption,
            expected: encryption.keymat_len(),
            got: enc_keymat.len(),
        };

        let (kind, icv_len) = match (encryption, integrity) {
            (E::Aes128Cbc | E::Aes256Cbc, Some(integ)) => {
                if integ_key.len() != integ.key_len() {
                    return Err(EspError::InvalidKeyLength {
                        key: KeyKind::Integrity,
                        expected: integ.key_len(),
                        got: integ_key.len(),
                    });
                }
                let cipher = AesCbc::new(key).ok_or_else(bad_key)?;
                let kind = Kind::CbcHmac {
                    cipher,
                    iv_generator: Aes128::new(iv_seed.into()),
                    mac: hmac::Key::new(integ.ring_algorithm(), integ_key),
                };
                (kind, integ.icv_len())
            }
            (E::Aes128Cbc | E::Aes256Cbc, None) => {
                return Err(EspError::InvalidConfig(
                    "AES-CBC needs an integrity algorithm",
                ))
            }
            (_, Some(_)) => {
                return Err(EspError::InvalidConfig(
                    "an AEAD algorithm takes no separate integrity algorithm",
                ))
            }
            (E::Aes128Gcm16 | E::Aes256Gcm16 | E::ChaCha20Poly1305, None) => {
                let alg = match encryption {
                    E::Aes128Gcm16 => &aead::AES_128_GCM,
                    E::Aes256Gcm16 => &aead::AES_256_GCM,
                    _ => &aead::CHACHA20_POLY1305,
                };
                let key = UnboundKey::new(alg, key).map_err(|_| EspError::InvalidKeyLength {
                    key: KeyKind::Encryption,
                    expected: encryption.keymat_len(),
                    got: enc_keymat.len(),
                })?;
                (
                    Kind::RingAead {
                        key: LessSafeKey::new(key),
                        salt,
                    },
                    16,
                )
            }
            (E::Aes128Gcm12 | E::Aes256Gcm12 | E::Aes128Gcm8 | E::Aes256Gcm8, None) => {
                let gcm = ShortGcm::new(key, encryption.aead_icv_len()).ok_or_else(bad_key)?;
                (Kind::ShortGcm { gcm, salt }, encryption.aead_icv_len())
            }
        };
        Ok(Transform {
            kind,
            iv_len: encryption.iv_len(),
            icv_len,
        })
    }

    pub(crate) fn icv_len(&self) -> usize {
        self.icv_len
    }

    /// Where the encrypted body starts (after SPI, sequence and IV) and the ICV begins.
    fn body_bounds(&self, packet_len: usize) -> Result<(usize, usize), EspError> {
        let body_start = ESP_HEADER_LEN + self.iv_len;
        let icv_start = packet_len
            .checked_sub(self.icv_len)
            .filter(|&s| s >= body_start)
            .ok_or(EspError::Malformed("packet shorter than header and ICV"))?;
        Ok((body_start, icv_start))
    }

    /// Writes the IV, encrypts `packet[header..len - icv]` and writes the ICV.
    /// `packet` must be at least header + icv long (the caller sized it).
    pub(crate) fn seal(&self, packet: &mut [u8], seq: SeqForIcv) -> Result<(), EspError> {
        self.seal_with_iv(packet, seq, IvChoice::Generated)
    }

    /// [`seal`](Self::seal) with the IV either generated (production) or
    /// given (known-answer tests, whose vectors fix the IV).
    pub(crate) fn seal_with_iv(
        &self,
        packet: &mut [u8],
        seq: SeqForIcv,
        iv_choice: IvChoice<'_>,
    ) -> Result<(), EspError> {
        let (body_start, icv_start) = self.body_bounds(packet.len())?;
        match &self.kind {
            Kind::RingAead { key, salt } => {
                let iv = iv_choice.aead_iv(seq)?;
                packet[AEAD_IV].copy_from_slice(&iv);
                let nonce = Nonce::assume_unique_for_key(gcm_nonce(salt, &iv));
                let aad = AeadAad::new(packet, seq);
                let (head, tail) = packet.split_at_mut(icv_start);
                let tag = key
                    .seal_in_place_separate_tag(
                        nonce,
                        Aad::from(aad.as_slice()),
                        &mut head[body_start..],
                    )
                    .map_err(|_| EspError::Malformed("payload too long for the AEAD"))?;
                // Fixed-size copy: the ring tag and the ICV are both 16 bytes.
                let tag: &[u8; 16] = tag.as_ref().try_into().map_err(|_| TAG_LEN_ERROR)?;
                *tail.first_chunk_mut::<16>().ok_or(TAG_LEN_ERROR)? = *tag;
            }
            Kind::ShortGcm { gcm, salt } => {
                let iv = iv_choice.aead_iv(seq)?;
                packet[AEAD_IV].copy_from_slice(&iv);
                let nonce = gcm_nonce(salt, &iv);
                let aad = AeadAad::new(packet, seq);
                let (head, icv) = packet.split_at_mut(icv_start);
                let body = &mut head[body_start..];
                gcm.seal(&nonce, aad.as_slice(), body, icv)
                    .map_err(gcm_error)?;
            }
            Kind::CbcHmac {
                cipher,
                iv_generator,
                mac,
            } => {
                let mut iv = [0u8; 16];
                match iv_choice {
                    IvChoice::Generated => {
                        iv[8..].copy_from_slice(&seq.full.to_be_bytes());
                        iv_generator.encrypt_block((&mut iv).into());
                    }
                    IvChoice::Fixed(fixed) => iv.copy_from_slice(fixed),
                }
                packet[ESP_HEADER_LEN..body_start].copy_from_slice(&iv);
                let body = &mut packet[body_start..icv_start];
                if !body.len().is_multiple_of(16) {
                    return Err(EspError::Malformed("CBC payload not block aligned"));
                }
                cipher.encrypt(&iv, body);
                let tag = hmac_tag(mac, &packet[..icv_start], seq);
                packet[icv_start..].copy_from_slice(&tag.as_ref()[..self.icv_len]);
            }
        }
        Ok(())
    }

    /// Verifies the ICV, then decrypts in place. Returns the range of the
    /// plaintext (payload, padding and trailer) within `packet`.
    /// On failure nothing is decrypted.
    pub(crate) fn open(
        &self,
        packet: &mut [u8],
        seq: SeqForIcv,
    ) -> Result<core::ops::Range<usize>, EspError> {
        let (body_start, icv_start) = self.body_bounds(packet.len())?;
        match &self.kind {
            Kind::RingAead { key, salt } => {
                let nonce = Nonce::assume_unique_for_key(gcm_nonce(salt, &aead_iv(packet)));
                let aad = AeadAad::new(packet, seq);
                key.open_in_place(nonce, Aad::from(aad.as_slice()), &mut packet[body_start..])
                    .map_err(|_| EspError::Authentication)?;
            }
            Kind::ShortGcm { gcm, salt } => {
                let nonce = gcm_nonce(salt, &aead_iv(packet));
                let aad = AeadAad::new(packet, seq);
                let (head, icv) = packet.split_at_mut(icv_start);
                let body = &mut head[body_start..];
                gcm.open(&nonce, aad.as_slice(), body, icv)
                    .map_err(gcm_error)?;
            }
            Kind::CbcHmac { cipher, mac, .. } => {
                let tag = hmac_tag(mac, &packet[..icv_start], seq);
                let received = &packet[icv_start..];
                if !bool::from(tag.as_ref()[..self.icv_len].ct_eq(received)) {
                    return Err(EspError::Authentication);
                }
                let mut iv = [0u8; 16];
                iv.copy_from_slice(&packet[ESP_HEADER_LEN..body_start]);
                let body = &mut packet[body_start..icv_start];
                if !body.len().is_multiple_of(16) {
                    return Err(EspError::Malformed("CBC payload not block aligned"));
                }
                cipher.decrypt(&iv, body);
            }
        }
        Ok(body_start..icv_start)
    }
}

/// Where a sealed packet's IV comes from.
#[derive(Clone, Copy)]
pub(crate) enum IvChoice<'a> {
    Generated,
    #[cfg_attr(not(test), allow(dead_code))]
    Fixed(&'a [u8]),
}

impl IvChoice<'_> {
    /// The AEAD IV: the 64-bit sequence number, which never repeats under
    /// one key (RFC 4106 §3.1, RFC 7634 §2), unless a test fixes it.
    fn aead_iv(self, seq: SeqForIcv) -> Result<[u8; 8], EspError> {
        match self {
            IvChoice::Generated => Ok(seq.full.to_be_bytes()),
            IvChoice::Fixed(iv) => iv
                .try_into()
                .map_err(|_| EspError::InvalidConfig("AEAD IVs are 8 bytes")),
        }
    }
}

fn gcm_error(e: GcmFailure) -> EspError {
    match e {
        GcmFailure::Malformed(what) => EspError::Malformed(what),
        GcmFailure::Authentication => EspError::Authentication,
    }
}

/// Where the 8-byte explicit IV of an AEAD packet lies (RFC 4106 §3.1).
const AEAD_IV: core::ops::Range<usize> = ESP_HEADER_LEN..ESP_HEADER_LEN + 8;
const TAG_LEN_ERROR: EspError = EspError::Malformed("ICV length");

fn aead_iv(packet: &[u8]) -> [u8; 8] {
    packet
        .get(AEAD_IV)
        .and_then(|iv| iv.try_into().ok())
        .unwrap_or_default()
}

/// RFC 4106 §4 / RFC 7634 §2: salt followed by the explicit IV.
fn gcm_nonce(salt: &[u8; 4], iv: &[u8; 8]) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(salt);
    nonce[4..].copy_from_slice(iv);
    nonce
}

/// AEAD additional data: SPI and sequence number, with the ESN high half
/// between them (RFC 4106 §5, RFC 7634 §2.1).
struct AeadAad {
    bytes: [u8; 12],
    len: usize,
}

impl AeadAad {
    fn new(packet: &[u8], seq: SeqForIcv) -> Self {
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&packet[..4]);
        if seq.esn {
            bytes[4..8].copy_from_slice(&((seq.full >> 32) as u32).to_be_bytes());
            bytes[8..12].copy_from_slice(&(seq.full as u32).to_be_bytes());
            AeadAad { bytes, len: 12 }
        } else {
            bytes[4..8].copy_from_slice(&(seq.full as u32).to_be_bytes());
            AeadAad { bytes, len: 8 }
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// HMAC over the packet up to the ICV, plus the ESN high half appended
/// (RFC 4303 §3.3.2.1: authenticated, not transmitted).
fn hmac_tag(mac: &hmac::Key, authenticated: &[u8], seq: SeqForIcv) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(mac);
    ctx.update(authenticated);
    if seq.esn {
        ctx.update(&((seq.full >> 32) as u32).to_be_bytes());
    }
    ctx.sign()
}
