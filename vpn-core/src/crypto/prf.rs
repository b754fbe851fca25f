//! The IKE pseudo-random function: HMAC with SHA-1 or SHA-2 (RFC 2104, RFC 4868).
//!
//! IKEv2 negotiates it as transform type 2; IKEv1 uses the HMAC of the
//! negotiated hash the same way, so both key schedules share this type.

use ring::hmac;

use super::SecretBytes;

/// A negotiated PRF. Transform IDs are from the IANA "Transform Type 2" registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prf {
    /// PRF_HMAC_SHA1 (ID 2): legacy, still offered by many peers.
    HmacSha1,
    /// PRF_HMAC_SHA2_256 (ID 5).
    HmacSha256,
    /// PRF_HMAC_SHA2_384 (ID 6).
    HmacSha384,
    /// PRF_HMAC_SHA2_512 (ID 7).
    HmacSha512,
}

impl Prf {
    /// Every supported PRF, strongest first (a sensible proposal order).
    pub const ALL: [Prf; 4] = [
        Prf::HmacSha512,
        Prf::HmacSha384,
        Prf::HmacSha256,
        Prf::HmacSha1,
    ];

    /// Looks up an IKEv2 transform ID; `None` for PRFs we do not implement.
    pub fn from_id(id: u16) -> Option<Prf> {
        match id {
            2 => Some(Prf::HmacSha1),
            5 => Some(Prf::HmacSha256),
            6 => Some(Prf::HmacSha384),
            7 => Some(Prf::HmacSha512),
            _ => None,
        }
    }

    /// The IKEv2 transform ID.
    pub fn id(self) -> u16 {
        match self {
            Prf::HmacSha1 => 2,
            Prf::HmacSha256 => 5,
            Prf::HmacSha384 => 6,
            Prf::HmacSha512 => 7,
        }
    }

    /// Parses a strongSwan proposal keyword (`prfsha256`, ...), so configs
    /// written for strongSwan can be reused.
    pub fn from_keyword(keyword: &str) -> Option<Prf> {
        Prf::ALL
            .into_iter()
            .find(|p| p.keyword().eq_ignore_ascii_case(keyword))
    }

    /// The strongSwan proposal keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Prf::HmacSha1 => "prfsha1",
            Prf::HmacSha256 => "prfsha256",
            Prf::HmacSha384 => "prfsha384",
            Prf::HmacSha512 => "prfsha512",
        }
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Prf::HmacSha1 => 20,
            Prf::HmacSha256 => 32,
            Prf::HmacSha384 => 48,
            Prf::HmacSha512 => 64,
        }
    }

    /// The preferred key length: the length of SK_d, SK_pi and SK_pr
    /// (RFC 7296 §2.14). For the HMAC PRFs it equals the output length
    /// (RFC 4868 §2.1.2 for SHA-2).
    pub fn preferred_key_len(self) -> usize {
        self.output_len()
    }

    fn algorithm(self) -> hmac::Algorithm {
        match self {
            Prf::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Prf::HmacSha256 => hmac::HMAC_SHA256,
            Prf::HmacSha384 => hmac::HMAC_SHA384,
            Prf::HmacSha512 => hmac::HMAC_SHA512,
        }
    }

    /// `prf(key, data)`. HMAC accepts keys of any length.
    pub fn prf(self, key: &[u8], data: &[u8]) -> SecretBytes {
        self.prf_parts(key, &[data])
    }

    /// `prf(key, part0 | part1 | ...)` without first copying the parts
    /// (which would leave unwiped copies of g^ir and other secrets around).
    pub fn prf_parts(self, key: &[u8], parts: &[&[u8]]) -> SecretBytes {
        let key = hmac::Key::new(self.algorithm(), key);
        let mut ctx = hmac::Context::with_key(&key);
        for part in parts {
            ctx.update(part);
        }
        SecretBytes::new(ctx.sign().as_ref().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        super::super::test_util::hex(s)
    }

    #[test]
    fn ids_and_keywords_round_trip() {
        for p in Prf::ALL {
            assert_eq!(Prf::from_id(p.id()), Some(p));
            assert_eq!(Prf::from_keyword(p.keyword()), Some(p));
            assert_eq!(p.prf(b"k", b"d").len(), p.output_len());
        }
        assert_eq!(Prf::from_id(5), Some(Prf::HmacSha256));
        assert_eq!(Prf::from_keyword("PRFSHA384"), Some(Prf::HmacSha384));
        assert_eq!(Prf::from_id(1), None); // PRF_HMAC_MD5: not supported
        assert_eq!(Prf::from_id(8), None);
        assert_eq!(Prf::from_keyword("prfmd5"), None);
    }

    /// RFC 2202 §3, test cases 1 and 2 (HMAC-SHA-1).
    #[test]
    fn rfc2202_hmac_sha1() {
        let p = Prf::HmacSha1;
        assert_eq!(
            *p.prf(&[0x0b; 20], b"Hi There"),
            h("b617318655057264e28bc0b6fb378c8ef146be00")
        );
        assert_eq!(
            *p.prf(b"Jefe", b"what do ya want for nothing?"),
            h("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        );
    }

    /// RFC 4231 §4.2 and §4.3, test cases 1 and 2 (HMAC-SHA-256/384/512).
    #[test]
    fn rfc4231_hmac_sha2() {
        let tc1 = (&[0x0bu8; 20][..], &b"Hi There"[..]);
        let tc2 = (&b"Jefe"[..], &b"what do ya want for nothing?"[..]);
        let cases = [
            (
                Prf::HmacSha256,
                tc1,
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                Prf::HmacSha384,
                tc1,
                "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c\
                 faea9ea9076ede7f4af152e8b2fa9cb6",
            ),
            (
                Prf::HmacSha512,
                tc1,
                "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
                 daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
            ),
            (
                Prf::HmacSha256,
                tc2,
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                Prf::HmacSha384,
                tc2,
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
                 8e2240ca5e69e2c78b3239ecfab21649",
            ),
            (
                Prf::HmacSha512,
                tc2,
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                 9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ),
        ];
        for (p, (key, data), want) in cases {
            assert_eq!(*p.prf(key, data), h(want), "{p:?}");
        }
    }

    #[test]
    fn prf_parts_equals_prf_of_concatenation() {
        let p = Prf::HmacSha256;
        assert_eq!(
            p.prf_parts(b"key", &[b"ab", b"", b"cd"]),
            p.prf(b"key", b"abcd")
        );
        assert_ne!(p.prf(b"key", b"abcd"), p.prf(b"key", b"abce"));
        // Secrets never reach logs through Debug.
        assert_eq!(format!("{:?}", p.prf(b"k", b"d")), "SecretBytes(32 bytes)");
    }
}
