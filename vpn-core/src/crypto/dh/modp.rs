//! MODP groups 1, 2, 5, 14, 15, 16 (RFC 2409 §6, RFC 3526), generator 2.
//!
//! Exponentiation uses crypto-bigint's constant-time windowed Montgomery
//! exponentiation; the modulus parameters are computed once per
//! group and cached.

use std::sync::OnceLock;

use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::CryptoError;
use crate::entropy::Entropy;

/// One of the MODP groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Modp {
    G1,
    G2,
    G5,
    G14,
    G15,
    G16,
}

impl Modp {
    pub(super) fn bits(self) -> u32 {
        match self {
            Modp::G1 => 768,
            Modp::G2 => 1024,
            Modp::G5 => 1536,
            Modp::G14 => 2048,
            Modp::G15 => 3072,
            Modp::G16 => 4096,
        }
    }

    pub(super) fn id(self) -> u16 {
        match self {
            Modp::G1 => 1,
            Modp::G2 => 2,
            Modp::G5 => 5,
            Modp::G14 => 14,
            Modp::G15 => 15,
            Modp::G16 => 16,
        }
    }

    pub(super) fn byte_len(self) -> usize {
        self.bits() as usize / 8
    }

    /// Private exponent size: twice the group's security strength
    /// (NIST SP 800-57), never below 256 bits, so the short exponent is not
    /// the weak point. 4096-bit (~150-bit strength) gets 512 bits.
    pub(super) fn exponent_bits(self) -> u32 {
        match self {
            Modp::G16 => 512,
            _ => 256,
        }
    }

    pub(super) fn prime_hex(self) -> &'static str {
        match self {
            Modp::G1 => MODP768_HEX,
            Modp::G2 => MODP1024_HEX,
            Modp::G5 => MODP1536_HEX,
            Modp::G14 => MODP2048_HEX,
            Modp::G15 => MODP3072_HEX,
            Modp::G16 => MODP4096_HEX,
        }
    }

    fn slot(self) -> &'static OnceLock<Params> {
        static CACHE: [OnceLock<Params>; 6] = [const { OnceLock::new() }; 6];
        let i = match self {
            Modp::G1 => 0,
            Modp::G2 => 1,
            Modp::G5 => 2,
            Modp::G14 => 3,
            Modp::G15 => 4,
            Modp::G16 => 5,
        };
        &CACHE[i]
    }

    /// The cached modulus data for this group.
    pub(super) fn params(self) -> &'static Params {
        self.slot().get_or_init(|| Params::new(self))
    }
}

/// Precomputed data for one group.
pub(super) struct Params {
    pub(super) monty: BoxedMontyParams,
    /// The prime itself (read by the tests that check the constants).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) p: BoxedUint,
    /// p - 1: the largest value a peer may not send.
    p_minus_1: BoxedUint,
    generator: BoxedMontyForm,
}

impl Params {
    fn new(group: Modp) -> Params {
        let bits = group.bits();
        // The constants are checked by tests (odd, right length, safe prime),
        // so failing here would be a build defect, not an input error.
        let p = BoxedUint::from_be_hex(group.prime_hex(), bits)
            .into_option()
            .expect("MODP prime constant is valid hex of the right length");
        let odd = Odd::new(p.clone())
            .into_option()
            .expect("MODP prime is odd");
        let monty = BoxedMontyParams::new_vartime(odd);
        let p_minus_1 = p.wrapping_sub(BoxedUint::one_with_precision(bits));
        let generator = BoxedMontyForm::new(BoxedUint::from_be_slice_truncated(&[2], bits), &monty);
        Params {
            monty,
            p,
            p_minus_1,
            generator,
        }
    }

    /// Encodes `v` (< p) big-endian, left-padded to the prime's byte length.
    fn encode(&self, group: Modp, v: &BoxedUint) -> Zeroizing<Vec<u8>> {
        let raw = Zeroizing::new(v.to_be_bytes());
        let len = group.byte_len();
        let mut out = Zeroizing::new(vec![0u8; len]);
        if raw.len() >= len {
            // Whole limbs: any extra leading bytes are zero because v < p.
            out.copy_from_slice(&raw[raw.len() - len..]);
        } else {
            out[len - raw.len()..].copy_from_slice(&raw);
        }
        out
    }
}

/// A private exponent x, wiped on drop.
pub(super) struct PrivateKey {
    group: Modp,
    x: BoxedUint,
    /// How many low bits of x the exponentiation walks. Derived from public
    /// facts only (the group, or a fixed key's byte length), since
    /// crypto-bigint may leak it through timing.
    exp_bits: u32,
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        self.x.zeroize();
    }
}

impl PrivateKey {
    /// Draws `exponent_bits` random bits; retries the (2^-256 likely) 0 and 1.
    pub(super) fn generate(
        group: Modp,
        entropy: &mut dyn Entropy,
    ) -> Result<PrivateKey, CryptoError> {
        let mut buf = Zeroizing::new(vec![0u8; group.exponent_bits() as usize / 8]);
        for _ in 0..16 {
            entropy.fill(&mut buf);
            if let Ok(k) = PrivateKey::from_bytes(group, &buf) {
                return Ok(k);
            }
        }
        Err(CryptoError::KeyGeneration { group: group.id() })
    }

    /// A fixed exponent (big-endian). It must be at least 2 and shorter than
    /// the prime; values >= p-1 would only alias smaller exponents.
    pub(super) fn from_bytes(group: Modp, bytes: &[u8]) -> Result<PrivateKey, CryptoError> {
        let bits = group.bits();
        let params = group.params();
        let x = BoxedUint::from_be_slice(bytes, bits).map_err(|_| CryptoError::WrongLength {
            expected: group.byte_len(),
            got: bytes.len(),
        })?;
        let two = BoxedUint::from_be_slice_truncated(&[2], bits);
        if x < two || x >= params.p_minus_1 {
            let mut x = x;
            x.zeroize();
            return Err(CryptoError::InvalidPrivateKey { group: group.id() });
        }
        let short = group.exponent_bits();
        let exp_bits = if bytes.len() * 8 <= short as usize {
            short
        } else {
            bits
        };
        Ok(PrivateKey { group, x, exp_bits })
    }

    /// g^x mod p, left-padded.
    pub(super) fn public_value(&self) -> Vec<u8> {
        let params = self.group.params();
        let y = params
            .generator
            .pow_bounded_exp(&self.x, self.exp_bits)
            .retrieve();
        params.encode(self.group, &y).to_vec()
    }

    /// y^x mod p after checking 1 < y < p-1 (RFC 7296 §5, NIST SP 800-56A
    /// partial public-key validation). The length was checked by the caller.
    pub(super) fn agree(&self, peer: &[u8], id: u16) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let params = self.group.params();
        let bits = self.group.bits();
        let invalid = CryptoError::InvalidPeerPublicValue { group: id };
        let y = BoxedUint::from_be_slice(peer, bits).map_err(|_| invalid.clone())?;
        let one = BoxedUint::one_with_precision(bits);
        if y <= one || y >= params.p_minus_1 {
            return Err(invalid);
        }
        let base = BoxedMontyForm::new(y, &params.monty);
        let mut z = base.pow_bounded_exp(&self.x, self.exp_bits).retrieve();
        // With 1 < y < p-1 in a safe-prime group and 1 < x < p-1 this cannot
        // be 1 or 0, but a degenerate secret must never be used.
        let degenerate = z <= one;
        let out = params.encode(self.group, &z);
        z.zeroize();
        if degenerate {
            return Err(CryptoError::DegenerateSharedSecret { group: id });
        }
        Ok(out)
    }
}

// The primes, as printed in RFC 2409 §6.1-6.2 and RFC 3526 §2-5. Each is
// p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) pi) + k); the tests check
// they are safe primes of the right length, and their SHA-256 against digests
// computed from that formula independently.
pub(super) const MODP768_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A63A3620FFFFFFFFFFFFFFFF",
);
pub(super) const MODP1024_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
);
pub(super) const MODP1536_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF",
);
pub(super) const MODP2048_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
);
pub(super) const MODP3072_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
);
pub(super) const MODP4096_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7",
    "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8",
    "DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2",
    "233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9",
    "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF",
);
