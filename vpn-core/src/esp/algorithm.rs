//! ESP algorithm identifiers, named with strongSwan's ESP proposal keywords.

use core::fmt;
use core::str::FromStr;

use super::EspError;

/// Encryption transform of an ESP SA (IKEv2 transform type 1).
///
/// AEAD variants carry their own integrity; CBC needs an [`IntegrityAlgorithm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncryptionAlgorithm {
    /// AES-GCM with a 16-byte ICV (RFC 4106).
    Aes128Gcm16,
    Aes256Gcm16,
    /// AES-GCM with a 12-byte ICV (RFC 4106).
    Aes128Gcm12,
    Aes256Gcm12,
    /// AES-GCM with an 8-byte ICV (RFC 4106).
    Aes128Gcm8,
    Aes256Gcm8,
    /// ChaCha20-Poly1305 (RFC 7634).
    ChaCha20Poly1305,
    /// AES-CBC (RFC 3602).
    Aes128Cbc,
    Aes256Cbc,
}

impl EncryptionAlgorithm {
    pub const ALL: [EncryptionAlgorithm; 9] = [
        Self::Aes128Gcm16,
        Self::Aes256Gcm16,
        Self::Aes128Gcm12,
        Self::Aes256Gcm12,
        Self::Aes128Gcm8,
        Self::Aes256Gcm8,
        Self::ChaCha20Poly1305,
        Self::Aes128Cbc,
        Self::Aes256Cbc,
    ];

    /// Parses a strongSwan ESP keyword (`aes256gcm16`, `aes128gcm128`, `aes128`, ...).
    pub fn from_keyword(keyword: &str) -> Result<Self, EspError> {
        Ok(match keyword.to_ascii_lowercase().as_str() {
            "aes128gcm16" | "aes128gcm128" => Self::Aes128Gcm16,
            "aes256gcm16" | "aes256gcm128" => Self::Aes256Gcm16,
            "aes128gcm12" | "aes128gcm96" => Self::Aes128Gcm12,
            "aes256gcm12" | "aes256gcm96" => Self::Aes256Gcm12,
            "aes128gcm8" | "aes128gcm64" => Self::Aes128Gcm8,
            "aes256gcm8" | "aes256gcm64" => Self::Aes256Gcm8,
            "chacha20poly1305" => Self::ChaCha20Poly1305,
            "aes128" | "aes128cbc" => Self::Aes128Cbc,
            "aes256" | "aes256cbc" => Self::Aes256Cbc,
            _ => return Err(EspError::UnknownAlgorithm),
        })
    }

    /// The canonical strongSwan keyword.
    pub const fn keyword(self) -> &'static str {
        match self {
            Self::Aes128Gcm16 => "aes128gcm16",
            Self::Aes256Gcm16 => "aes256gcm16",
            Self::Aes128Gcm12 => "aes128gcm12",
            Self::Aes256Gcm12 => "aes256gcm12",
            Self::Aes128Gcm8 => "aes128gcm8",
            Self::Aes256Gcm8 => "aes256gcm8",
            Self::ChaCha20Poly1305 => "chacha20poly1305",
            Self::Aes128Cbc => "aes128",
            Self::Aes256Cbc => "aes256",
        }
    }

    /// IKEv2 transform ID (IANA "Transform Type 1").
    pub const fn transform_id(self) -> u16 {
        match self {
            Self::Aes128Cbc | Self::Aes256Cbc => 12,
            Self::Aes128Gcm8 | Self::Aes256Gcm8 => 18,
            Self::Aes128Gcm12 | Self::Aes256Gcm12 => 19,
            Self::Aes128Gcm16 | Self::Aes256Gcm16 => 20,
            Self::ChaCha20Poly1305 => 28,
        }
    }

    /// Cipher key length in bits (the IKE Key Length attribute), salt excluded.
    pub const fn key_bits(self) -> u16 {
        match self {
            Self::Aes128Gcm16 | Self::Aes128Gcm12 | Self::Aes128Gcm8 | Self::Aes128Cbc => 128,
            _ => 256,
        }
    }

    /// Whether the algorithm authenticates by itself (no separate integrity).
    pub const fn is_aead(self) -> bool {
        !matches!(self, Self::Aes128Cbc | Self::Aes256Cbc)
    }

    /// Salt bytes appended to the key (RFC 4106 §8.1, RFC 7634 §4).
    pub const fn salt_len(self) -> usize {
        if self.is_aead() {
            4
        } else {
            0
        }
    }

    /// Keying material length: the key followed by its salt, as in KEYMAT and xfrm.
    pub const fn keymat_len(self) -> usize {
        self.key_bits() as usize / 8 + self.salt_len()
    }

    /// Explicit IV carried in each packet.
    pub const fn iv_len(self) -> usize {
        if self.is_aead() {
            8
        } else {
            16
        }
    }

    /// ICV length of an AEAD, zero for CBC (its ICV comes from the integrity algorithm).
    pub const fn aead_icv_len(self) -> usize {
        match self {
            Self::Aes128Gcm16 | Self::Aes256Gcm16 | Self::ChaCha20Poly1305 => 16,
            Self::Aes128Gcm12 | Self::Aes256Gcm12 => 12,
            Self::Aes128Gcm8 | Self::Aes256Gcm8 => 8,
            Self::Aes128Cbc | Self::Aes256Cbc => 0,
        }
    }

    /// Alignment of payload + padding + trailer: the cipher block, or 4 bytes.
    pub const fn block_len(self) -> usize {
        if self.is_aead() {
            4
        } else {
            16
        }
    }
}

impl FromStr for EncryptionAlgorithm {
    type Err = EspError;
    fn from_str(s: &str) -> Result<Self, EspError> {
        Self::from_keyword(s)
    }
}

impl fmt::Display for EncryptionAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// Integrity transform for non-AEAD ESP (IKEv2 transform type 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntegrityAlgorithm {
    /// HMAC-SHA1-96 (RFC 2404).
    HmacSha1_96,
    /// HMAC-SHA-256-128 (RFC 4868).
    HmacSha256_128,
    /// HMAC-SHA-384-192 (RFC 4868).
    HmacSha384_192,
    /// HMAC-SHA-512-256 (RFC 4868).
    HmacSha512_256,
}

impl IntegrityAlgorithm {
    pub const ALL: [IntegrityAlgorithm; 4] = [
        Self::HmacSha1_96,
        Self::HmacSha256_128,
        Self::HmacSha384_192,
        Self::HmacSha512_256,
    ];

    /// Parses a strongSwan integrity keyword (`sha1`, `sha256`, `sha2_256`, ...).
    pub fn from_keyword(keyword: &str) -> Result<Self, EspError> {
        Ok(match keyword.to_ascii_lowercase().as_str() {
            "sha1" | "sha" => Self::HmacSha1_96,
            "sha256" | "sha2_256" => Self::HmacSha256_128,
            "sha384" | "sha2_384" => Self::HmacSha384_192,
            "sha512" | "sha2_512" => Self::HmacSha512_256,
            _ => return Err(EspError::UnknownAlgorithm),
        })
    }

    pub const fn keyword(self) -> &'static str {
        match self {
            Self::HmacSha1_96 => "sha1",
            Self::HmacSha256_128 => "sha256",
            Self::HmacSha384_192 => "sha384",
            Self::HmacSha512_256 => "sha512",
        }
    }

    /// IKEv2 transform ID (IANA "Transform Type 3").
    pub const fn transform_id(self) -> u16 {
        match self {
            Self::HmacSha1_96 => 2,
            Self::HmacSha256_128 => 12,
            Self::HmacSha384_192 => 13,
            Self::HmacSha512_256 => 14,
        }
    }

    /// Key length: the hash output length (RFC 2404 §3, RFC 4868 §2.1.1).
    pub const fn key_len(self) -> usize {
        match self {
            Self::HmacSha1_96 => 20,
            Self::HmacSha256_128 => 32,
            Self::HmacSha384_192 => 48,
            Self::HmacSha512_256 => 64,
        }
    }

    /// Truncated ICV length carried in each packet.
    pub const fn icv_len(self) -> usize {
        match self {
            Self::HmacSha1_96 => 12,
            Self::HmacSha256_128 => 16,
            Self::HmacSha384_192 => 24,
            Self::HmacSha512_256 => 32,
        }
    }

    pub(crate) fn ring_algorithm(self) -> ring::hmac::Algorithm {
        match self {
            Self::HmacSha1_96 => ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::HmacSha256_128 => ring::hmac::HMAC_SHA256,
            Self::HmacSha384_192 => ring::hmac::HMAC_SHA384,
            Self::HmacSha512_256 => ring::hmac::HMAC_SHA512,
        }
    }
}

impl FromStr for IntegrityAlgorithm {
    type Err = EspError;
    fn from_str(s: &str) -> Result<Self, EspError> {
        Self::from_keyword(s)
    }
}

impl fmt::Display for IntegrityAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_round_trip_and_aliases_resolve() {
        for alg in EncryptionAlgorithm::ALL {
            assert_eq!(
                EncryptionAlgorithm::from_keyword(alg.keyword()).unwrap(),
                alg
            );
        }
        for alg in IntegrityAlgorithm::ALL {
            assert_eq!(
                IntegrityAlgorithm::from_keyword(alg.keyword()).unwrap(),
                alg
            );
        }
        assert_eq!(
            "AES128GCM128".parse::<EncryptionAlgorithm>().unwrap(),
            EncryptionAlgorithm::Aes128Gcm16
        );
        assert_eq!(
            "sha2_256".parse::<IntegrityAlgorithm>().unwrap(),
            IntegrityAlgorithm::HmacSha256_128
        );
        assert!("des".parse::<EncryptionAlgorithm>().is_err());
        assert!("md5".parse::<IntegrityAlgorithm>().is_err());
    }

    #[test]
    fn sizes_match_the_rfcs() {
        use EncryptionAlgorithm::*;
        assert_eq!(Aes128Gcm16.keymat_len(), 20);
        assert_eq!(Aes256Gcm8.keymat_len(), 36);
        assert_eq!(ChaCha20Poly1305.keymat_len(), 36);
        assert_eq!(Aes256Cbc.keymat_len(), 32);
        assert_eq!(Aes128Gcm12.aead_icv_len(), 12);
        assert_eq!(Aes128Cbc.iv_len(), 16);
        assert_eq!(IntegrityAlgorithm::HmacSha384_192.icv_len(), 24);
        assert_eq!(IntegrityAlgorithm::HmacSha1_96.key_len(), 20);
    }
}
