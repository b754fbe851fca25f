//! Protection of the Encrypted and Authenticated (SK) payload
//! (RFC 7296 §3.14; RFC 5282 for AES-GCM; RFC 7634 §3 for ChaCha20-Poly1305),
//! and of its fragments (SKF, RFC 7383 §2.5: [`SkCipher::seal_fragment`],
//! [`SkCipher::open_fragment`]).
//!
//! ```text
//!  IKE header (28) | SK generic header (4) | IV | E(inner payloads | padding | pad length) | ICV
//! ```
//!
//! - AEAD (AES-GCM-16/12/8, ChaCha20-Poly1305): 8-byte IV; nonce = salt (the
//!   last 4 bytes of SK_e) ‖ IV; additional data = the message from the IKE
//!   header through the SK generic payload header (RFC 5282 §5.1); no
//!   padding is needed (block size 1), so the pad length is 0.
//! - AES-CBC with HMAC: random 16-byte IV, padding to the 16-byte block, and
//!   the ICV is the truncated HMAC over the whole message up to the ICV.
//!
//! One [`SkCipher`] protects one direction of one IKE SA: build the pair
//! with [`SkCiphers::from_ike_sa_keys`]. [`SkCipher::open`] checks the ICV
//! (in constant time) before anything is decrypted or parsed.
//!
//! ```
//! use vpn_core::crypto::{kdf::IkeSaKeys, Prf};
//! use vpn_core::entropy::SeededEntropy;
//! use vpn_core::esp::EncryptionAlgorithm;
//! use vpn_core::ike::v2::sk::{ike_key_lengths, SkCiphers};
//! use vpn_core::ike::v2::wire::*;
//!
//! let enc = EncryptionAlgorithm::Aes256Gcm16;
//! let lens = ike_key_lengths(enc, None);
//! let keys = IkeSaKeys::derive(Prf::HmacSha256, &[1; 32], &[2; 32], &[3; 32], &[4; 8], &[5; 8], lens).unwrap();
//! let initiator = SkCiphers::from_ike_sa_keys(enc, None, &keys, true).unwrap();
//! let responder = SkCiphers::from_ike_sa_keys(enc, None, &keys, false).unwrap();
//!
//! let header = Header::new(0x0404040404040404, 0x0505050505050505, ExchangeType::INFORMATIONAL, Flags::new(true, false), 2);
//! let inner = [Payload::Delete(DeletePayload::ike())];
//! let bytes = initiator.outbound.seal_payloads(&header, &inner, &mut SeededEntropy::new(1)).unwrap();
//! let (hdr, payloads) = responder.inbound.open_payloads(&bytes).unwrap();
//! assert_eq!(hdr.message_id, 2);
//! assert_eq!(payloads, inner);
//! ```

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use subtle::ConstantTimeEq;

use super::wire::{
    decode_payloads, encode_payloads, Header, Payload, PayloadType, WireError, GENERIC_HEADER_LEN,
    HEADER_LEN,
};
use crate::crypto::cipher::{AesCbc, GcmFailure, ShortGcm, AES_BLOCK};
use crate::crypto::kdf::{IkeKeyLengths, IkeSaKeys};
use crate::entropy::Entropy;
use crate::esp::{EncryptionAlgorithm, IntegrityAlgorithm};

/// Which key a length error is about (errors never carry key bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkKey {
    /// SK_ei / SK_er.
    Encryption,
    /// SK_ai / SK_ar.
    Integrity,
}

/// Errors protecting or opening an SK payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkError {
    /// The algorithm combination is not usable (AEAD with integrity, CBC without).
    #[error("invalid SK algorithm combination: {0}")]
    InvalidConfig(&'static str),
    /// A key had the wrong length.
    #[error("{key:?} key is {got} bytes, the algorithm needs {expected}")]
    InvalidKeyLength {
        key: SkKey,
        expected: usize,
        got: usize,
    },
    /// The message (or the plaintext inside it) could not be parsed or built.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The message has no SK payload.
    #[error("message has no Encrypted payload")]
    NoEncryptedPayload,
    /// The SK payload is too short for IV, ICV and pad length, or a CBC
    /// ciphertext is not block aligned.
    #[error("malformed Encrypted payload: {0}")]
    Malformed(&'static str),
    /// The ICV did not verify: wrong key or a modified message. Nothing was decrypted.
    #[error("Encrypted payload failed integrity check")]
    Authentication,
    /// The pad length exceeds the plaintext.
    #[error("invalid padding in the Encrypted payload")]
    InvalidPadding,
}

/// Key lengths for [`IkeSaKeys::derive`] under these algorithms: SK_e
/// includes the 4-byte salt for AEAD (RFC 5282 §7.1, RFC 7634 §3); SK_a is
/// empty for AEAD.
pub fn ike_key_lengths(
    encryption: EncryptionAlgorithm,
    integrity: Option<IntegrityAlgorithm>,
) -> IkeKeyLengths {
    IkeKeyLengths {
        integ: integrity.map_or(0, IntegrityAlgorithm::key_len),
        encr: encryption.keymat_len(),
    }
}

/// A decrypted Encrypted Fragment payload (RFC 7383 §2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedFragment {
    /// The first inner payload's type (fragment 1), NONE in later fragments.
    pub inner_first: PayloadType,
    /// 1-based.
    pub fragment_number: u16,
    pub total_fragments: u16,
    /// This fragment's piece of the inner payload chain.
    pub chunk: Vec<u8>,
}

/// The two directions of an IKE SA's SK protection.
#[derive(Debug)]
pub struct SkCiphers {
    /// Protects messages we send.
    pub outbound: SkCipher,
    /// Opens messages we receive.
    pub inbound: SkCipher,
}

impl SkCiphers {
    /// Both directions from the IKE SA keys. `we_are_initiator` is our role
    /// in this IKE SA (the original initiator, or whoever initiated the
    /// rekey that created it): the initiator sends with SK_ei/SK_ai and
    /// receives with SK_er/SK_ar.
    pub fn from_ike_sa_keys(
        encryption: EncryptionAlgorithm,
        integrity: Option<IntegrityAlgorithm>,
        keys: &IkeSaKeys,
        we_are_initiator: bool,
    ) -> Result<SkCiphers, SkError> {
        let i = SkCipher::new(encryption, integrity, &keys.sk_ei, &keys.sk_ai)?;
        let r = SkCipher::new(encryption, integrity, &keys.sk_er, &keys.sk_ar)?;
        Ok(if we_are_initiator {
            SkCiphers {
                outbound: i,
                inbound: r,
            }
        } else {
            SkCiphers {
                outbound: r,
                inbound: i,
            }
        })
    }
}

/// SK payload protection for one direction of one IKE SA.
pub struct SkCipher {
    kind: Kind,
    encryption: EncryptionAlgorithm,
    integrity: Option<IntegrityAlgorithm>,
}

impl core::fmt::Debug for SkCipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Algorithms only: never key material.
        f.debug_struct("SkCipher")
            .field("encryption", &self.encryption)
            .field("integrity", &self.integrity)
            .finish_non_exhaustive()
    }
}

// One SkCipher per IKE SA direction; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Kind {
    /// AES-GCM-16 and ChaCha20-Poly1305 via ring.
    RingAead { key: LessSafeKey, salt: [u8; 4] },
    /// AES-GCM with 8- or 12-byte ICVs via RustCrypto (ring lacks them).
    ShortGcm { gcm: ShortGcm, salt: [u8; 4] },
    /// AES-CBC with truncated HMAC.
    CbcHmac {
        cipher: AesCbc,
        mac: hmac::Key,
        icv_len: usize,
    },
}

const CBC_BLOCK: usize = AES_BLOCK;

impl SkCipher {
    /// Builds the protection for one direction from its SK_e (for AEAD the
    /// key followed by the 4-byte salt, exactly as [`IkeSaKeys::derive`]
    /// splits it with [`ike_key_lengths`]) and SK_a (empty for AEAD).
    pub fn new(
        encryption: EncryptionAlgorithm,
        integrity: Option<IntegrityAlgorithm>,
        sk_e: &[u8],
        sk_a: &[u8],
    ) -> Result<SkCipher, SkError> {
        use EncryptionAlgorithm as E;
        let bad_e = || SkError::InvalidKeyLength {
            key: SkKey::Encryption,
            expected: encryption.keymat_len(),
            got: sk_e.len(),
        };
        if sk_e.len() != encryption.keymat_len() {
            return Err(bad_e());
        }
        let (key, salt_bytes) = sk_e.split_at(sk_e.len() - encryption.salt_len());
        let mut salt = [0u8; 4];
        if salt_bytes.len() == 4 {
            salt.copy_from_slice(salt_bytes);
        }
        let kind = match (encryption, integrity) {
            (E::Aes128Cbc | E::Aes256Cbc, Some(integ)) => {
                if sk_a.len() != integ.key_len() {
                    return Err(SkError::InvalidKeyLength {
                        key: SkKey::Integrity,
                        expected: integ.key_len(),
                        got: sk_a.len(),
                    });
                }
                let cipher = AesCbc::new(key).ok_or_else(bad_e)?;
                Kind::CbcHmac {
                    cipher,
                    mac: hmac::Key::new(integ.ring_algorithm(), sk_a),
                    icv_len: integ.icv_len(),
                }
            }
            (E::Aes128Cbc | E::Aes256Cbc, None) => {
                return Err(SkError::InvalidConfig(
                    "AES-CBC needs an integrity algorithm",
                ))
            }
            (_, Some(_)) => {
                return Err(SkError::InvalidConfig(
                    "an AEAD algorithm takes no integrity algorithm",
                ))
            }
            (E::Aes128Gcm16 | E::Aes256Gcm16 | E::ChaCha20Poly1305, None) => {
                let alg = match encryption {
                    E::Aes128Gcm16 => &aead::AES_128_GCM,
                    E::Aes256Gcm16 => &aead::AES_256_GCM,
                    _ => &aead::CHACHA20_POLY1305,
                };
                let key = UnboundKey::new(alg, key).map_err(|_| bad_e())?;
                Kind::RingAead {
                    key: LessSafeKey::new(key),
                    salt,
                }
            }
            (E::Aes128Gcm12 | E::Aes256Gcm12 | E::Aes128Gcm8 | E::Aes256Gcm8, None) => {
                let gcm = ShortGcm::new(key, encryption.aead_icv_len()).ok_or_else(bad_e)?;
                Kind::ShortGcm { gcm, salt }
            }
        };
        Ok(SkCipher {
            kind,
            encryption,
            integrity,
        })
    }

    /// The encryption algorithm.
    pub fn encryption(&self) -> EncryptionAlgorithm {
        self.encryption
    }

    /// The integrity algorithm (`None` for AEAD).
    pub fn integrity(&self) -> Option<IntegrityAlgorithm> {
        self.integrity
    }

    fn iv_len(&self) -> usize {
        self.encryption.iv_len()
    }

    fn icv_len(&self) -> usize {
        match &self.kind {
            Kind::CbcHmac { icv_len, .. } => *icv_len,
            _ => self.encryption.aead_icv_len(),
        }
    }

    fn block_len(&self) -> usize {
        match self.kind {
            Kind::CbcHmac { .. } => CBC_BLOCK,
            _ => 1,
        }
    }

    /// Bytes an SK payload adds around `inner_len` bytes of inner payloads,
    /// generic header included (useful for fragmentation decisions).
    pub fn overhead(&self, inner_len: usize) -> usize {
        let padded = (inner_len + 1).div_ceil(self.block_len()) * self.block_len();
        GENERIC_HEADER_LEN + self.iv_len() + (padded - inner_len) + self.icv_len()
    }

    /// Builds a complete message whose only payload is an SK payload
    /// containing `inner` (an encoded payload chain starting with a payload
    /// of type `inner_first`, e.g. from [`encode_payloads`]). The header's
    /// `next_payload` and `length` are set here; its other fields are used
    /// as given. The IV comes from `entropy`.
    pub fn seal(
        &self,
        header: &Header,
        inner_first: PayloadType,
        inner: &[u8],
        entropy: &mut dyn Entropy,
    ) -> Result<Vec<u8>, SkError> {
        let mut iv = [0u8; 16];
        let iv = &mut iv[..self.iv_len()];
        entropy.fill(iv);
        self.seal_with_iv(header, inner_first, inner, iv)
    }

    /// Builds one fragment message of RFC 7383: an Encrypted Fragment (SKF)
    /// payload carrying `chunk`, a piece of the encoded inner payload chain.
    /// `inner_first` is the first inner payload's type for fragment 1 and
    /// [`PayloadType::NONE`] for the others (RFC 7383 §2.5). Fragment number
    /// and total are authenticated along with the headers. Splitting the
    /// chain and reassembly are the exchange's job.
    pub fn seal_fragment(
        &self,
        header: &Header,
        inner_first: PayloadType,
        fragment_number: u16,
        total_fragments: u16,
        chunk: &[u8],
        entropy: &mut dyn Entropy,
    ) -> Result<Vec<u8>, SkError> {
        let mut iv = [0u8; 16];
        let iv = &mut iv[..self.iv_len()];
        entropy.fill(iv);
        let mut prefix = [0u8; 4];
        prefix[..2].copy_from_slice(&fragment_number.to_be_bytes());
        prefix[2..].copy_from_slice(&total_fragments.to_be_bytes());
        self.seal_inner(header, PayloadType::SKF, &prefix, inner_first, chunk, iv)
    }

    /// Verifies and decrypts a fragment message (SKF payload, RFC 7383).
    /// Returns the SKF Next Payload field (the first inner payload's type in
    /// fragment 1), the fragment number, the total, and the decrypted chunk.
    pub fn open_fragment(&self, message: &[u8]) -> Result<OpenedFragment, SkError> {
        let (first, prefix, chunk) = self.open_inner(message, PayloadType::SKF)?;
        Ok(OpenedFragment {
            inner_first: first,
            fragment_number: u16::from_be_bytes([prefix[0], prefix[1]]),
            total_fragments: u16::from_be_bytes([prefix[2], prefix[3]]),
            chunk,
        })
    }

    /// [`seal`](Self::seal) for a list of payloads.
    pub fn seal_payloads(
        &self,
        header: &Header,
        inner: &[Payload],
        entropy: &mut dyn Entropy,
    ) -> Result<Vec<u8>, SkError> {
        let (first, bytes) = encode_payloads(inner)?;
        self.seal(header, first, &bytes, entropy)
    }

    /// [`seal`](Self::seal) with a given IV (known-answer tests).
    pub(crate) fn seal_with_iv(
        &self,
        header: &Header,
        inner_first: PayloadType,
        inner: &[u8],
        iv: &[u8],
    ) -> Result<Vec<u8>, SkError> {
        self.seal_inner(header, PayloadType::SK, &[], inner_first, inner, iv)
    }

    /// Seals an SK payload, or an SKF payload whose fragment fields are `prefix`.
    fn seal_inner(
        &self,
        header: &Header,
        payload_type: PayloadType,
        prefix: &[u8],
        inner_first: PayloadType,
        inner: &[u8],
        iv: &[u8],
    ) -> Result<Vec<u8>, SkError> {
        let block = self.block_len();
        let padded = (inner.len() + 1).div_ceil(block) * block;
        let pad_len = padded - inner.len() - 1;
        let sk_len = GENERIC_HEADER_LEN + prefix.len() + self.iv_len() + padded + self.icv_len();
        let sk_len16 = u16::try_from(sk_len).map_err(|_| WireError::TooLong {
            what: "Encrypted payload",
        })?;
        let total = HEADER_LEN + sk_len;
        let mut h = *header;
        h.next_payload = payload_type;
        // Cannot overflow: total < 28 + 65536.
        h.length = total as u32;

        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&h.to_bytes());
        out.push(inner_first.0);
        out.push(0);
        out.extend_from_slice(&sk_len16.to_be_bytes());
        out.extend_from_slice(prefix);
        let aad_end = out.len();
        out.extend_from_slice(iv);
        let body_start = out.len();
        out.extend_from_slice(inner);
        out.resize(out.len() + pad_len, 0);
        out.push(pad_len as u8);
        let icv_start = out.len();

        match &self.kind {
            Kind::RingAead { key, salt } => {
                let nonce = Nonce::assume_unique_for_key(nonce(salt, iv));
                let (aad, body) = out.split_at_mut(aad_end);
                let tag = key
                    .seal_in_place_separate_tag(
                        nonce,
                        Aad::from(&aad[..]),
                        &mut body[self.iv_len()..],
                    )
                    .map_err(|_| SkError::Malformed("plaintext too long for the AEAD"))?;
                out.extend_from_slice(tag.as_ref());
            }
            Kind::ShortGcm { gcm, salt } => {
                let n = nonce(salt, iv);
                let mut icv = [0u8; 16];
                let icv = &mut icv[..self.icv_len()];
                let (aad, body) = out.split_at_mut(aad_end);
                let body = &mut body[self.iv_len()..];
                gcm.seal(&n, aad, body, icv).map_err(gcm_error)?;
                out.extend_from_slice(icv);
            }
            Kind::CbcHmac {
                cipher,
                mac,
                icv_len,
            } => {
                let iv: &[u8; 16] = iv
                    .try_into()
                    .map_err(|_| SkError::Malformed("CBC IV must be 16 bytes"))?;
                cipher.encrypt(iv, &mut out[body_start..icv_start]);
                let tag = hmac::sign(mac, &out);
                out.extend_from_slice(&tag.as_ref()[..*icv_len]);
            }
        }
        Ok(out)
    }

    /// Verifies and decrypts the SK payload of a received message. Returns
    /// the type of the first inner payload and the inner payload chain
    /// (padding removed), ready for [`decode_payloads`].
    ///
    /// The SK payload must be the last payload (it may follow unencrypted
    /// ones). The header Length must equal `message.len()`.
    pub fn open(&self, message: &[u8]) -> Result<(PayloadType, Vec<u8>), SkError> {
        let (first, _, inner) = self.open_inner(message, PayloadType::SK)?;
        Ok((first, inner))
    }

    /// Opens the SK or SKF payload: (next payload field, SKF fragment fields, plaintext).
    fn open_inner(
        &self,
        message: &[u8],
        payload_type: PayloadType,
    ) -> Result<(PayloadType, [u8; 4], Vec<u8>), SkError> {
        let header = Header::decode(message)?;
        if header.length as usize != message.len() {
            return Err(WireError::LengthMismatch {
                header: header.length,
                actual: message.len(),
            }
            .into());
        }
        let sk_start = find_sk(header.next_payload, message, payload_type)?;
        let inner_first = PayloadType(message[sk_start]);
        let mut prefix = [0u8; 4];
        let mut aad_end = sk_start + GENERIC_HEADER_LEN;
        if payload_type == PayloadType::SKF {
            let p = message
                .get(aad_end..aad_end + 4)
                .ok_or(SkError::Malformed("fragment fields missing"))?;
            prefix.copy_from_slice(p);
            aad_end += 4;
        }
        let body = &message[aad_end..];
        let (iv_len, icv_len) = (self.iv_len(), self.icv_len());
        if body.len() < iv_len + icv_len + 1 {
            return Err(SkError::Malformed("shorter than IV, ICV and pad length"));
        }
        let iv = &body[..iv_len];
        let ct = &body[iv_len..body.len() - icv_len];
        let icv = &body[body.len() - icv_len..];
        let aad = &message[..aad_end];

        let mut plain = ct.to_vec();
        match &self.kind {
            Kind::RingAead { key, salt } => {
                let n = Nonce::assume_unique_for_key(nonce(salt, iv));
                let mut buf = plain;
                buf.extend_from_slice(icv);
                let len = key
                    .open_in_place(n, Aad::from(aad), &mut buf)
                    .map_err(|_| SkError::Authentication)?
                    .len();
                buf.truncate(len);
                plain = buf;
            }
            Kind::ShortGcm { gcm, salt } => {
                let n = nonce(salt, iv);
                gcm.open(&n, aad, &mut plain, icv).map_err(gcm_error)?;
            }
            Kind::CbcHmac {
                cipher,
                mac,
                icv_len,
            } => {
                let tag = hmac::sign(mac, &message[..message.len() - icv_len]);
                if !bool::from(tag.as_ref()[..*icv_len].ct_eq(icv)) {
                    return Err(SkError::Authentication);
                }
                if plain.is_empty() || !plain.len().is_multiple_of(CBC_BLOCK) {
                    return Err(SkError::Malformed("CBC ciphertext not block aligned"));
                }
                let iv: &[u8; 16] = iv
                    .try_into()
                    .map_err(|_| SkError::Malformed("CBC IV must be 16 bytes"))?;
                cipher.decrypt(iv, &mut plain);
            }
        }
        let pad_len = *plain.last().ok_or(SkError::InvalidPadding)? as usize;
        let inner_len = plain
            .len()
            .checked_sub(pad_len + 1)
            .ok_or(SkError::InvalidPadding)?;
        plain.truncate(inner_len);
        Ok((inner_first, prefix, plain))
    }

    /// [`open`](Self::open) and decode the inner payloads. Returns the
    /// message header and the decrypted payloads.
    pub fn open_payloads(&self, message: &[u8]) -> Result<(Header, Vec<Payload>), SkError> {
        let (first, inner) = self.open(message)?;
        let header = Header::decode(message)?;
        Ok((header, decode_payloads(first, &inner)?))
    }
}

/// Walks the payload chain to the SK (or SKF) payload; returns its offset.
/// It must be the last payload (its length reaches the end of the message).
fn find_sk(first: PayloadType, message: &[u8], target: PayloadType) -> Result<usize, SkError> {
    let mut next = first;
    let mut off = HEADER_LEN;
    loop {
        if next == PayloadType::NONE {
            return Err(SkError::NoEncryptedPayload);
        }
        let gh = message
            .get(off..off + GENERIC_HEADER_LEN)
            .ok_or(WireError::Truncated { payload_type: next })?;
        let len = u16::from_be_bytes([gh[2], gh[3]]);
        if (len as usize) < GENERIC_HEADER_LEN || off + len as usize > message.len() {
            return Err(WireError::BadPayloadLength {
                payload_type: next,
                length: len,
            }
            .into());
        }
        if next == target {
            if off + len as usize != message.len() {
                return Err(WireError::PayloadAfterEncrypted.into());
            }
            return Ok(off);
        }
        if next == PayloadType::SK || next == PayloadType::SKF {
            // The other kind of encrypted payload: it ends the chain.
            return Err(SkError::NoEncryptedPayload);
        }
        next = PayloadType(gh[0]);
        off += len as usize;
    }
}

/// RFC 5282 §4 / RFC 7634 §2: salt ‖ IV.
fn nonce(salt: &[u8; 4], iv: &[u8]) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(salt);
    let k = iv.len().min(8);
    n[4..4 + k].copy_from_slice(&iv[..k]);
    n
}

fn gcm_error(e: GcmFailure) -> SkError {
    match e {
        GcmFailure::Malformed(what) => SkError::Malformed(what),
        GcmFailure::Authentication => SkError::Authentication,
    }
}

#[cfg(test)]
mod tests;
