//! IKEv1 key derivation for pre-shared-key authentication (RFC 2409 §5,
//! §5.5 and Appendix B).
//!
//! ```text
//! SKEYID   = prf(pre-shared-key, Ni_b | Nr_b)
//! SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)
//! SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)
//! SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)
//! ```
//!
//! `prf` is the HMAC of the negotiated hash; the trailing 0/1/2 are single
//! octets; CKY-I/CKY-R are the 8-byte ISAKMP cookies; Ni_b/Nr_b the nonce
//! payload bodies.

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{Prf, SecretBytes};

/// SKEYID for pre-shared keys = prf(pre-shared-key, Ni_b | Nr_b).
pub fn skeyid_psk(prf: Prf, psk: &[u8], ni_b: &[u8], nr_b: &[u8]) -> SecretBytes {
    prf.prf_parts(psk, &[ni_b, nr_b])
}

/// The Phase 1 key set, wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Ikev1Keys {
    /// Keys the Phase 1 HASH_I / HASH_R.
    pub skeyid: Vec<u8>,
    /// Derives Quick Mode KEYMAT.
    pub skeyid_d: Vec<u8>,
    /// Authenticates ISAKMP messages after Phase 1 (Quick Mode and
    /// informational HASH payloads).
    pub skeyid_a: Vec<u8>,
    /// Source of the ISAKMP encryption key (see [`Ikev1Keys::encryption_key`]).
    pub skeyid_e: Vec<u8>,
}

impl core::fmt::Debug for Ikev1Keys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ikev1Keys")
            .field("len", &self.skeyid.len())
            .finish_non_exhaustive()
    }
}

impl Ikev1Keys {
    /// Derives SKEYID_d, SKEYID_a and SKEYID_e from SKEYID (however SKEYID
    /// was obtained: [`skeyid_psk`] for pre-shared keys).
    pub fn derive(
        prf: Prf,
        skeyid: &[u8],
        g_xy: &[u8],
        cky_i: &[u8; 8],
        cky_r: &[u8; 8],
    ) -> Ikev1Keys {
        let d = prf.prf_parts(skeyid, &[g_xy, cky_i, cky_r, &[0]]);
        let a = prf.prf_parts(skeyid, &[&d, g_xy, cky_i, cky_r, &[1]]);
        let e = prf.prf_parts(skeyid, &[&a, g_xy, cky_i, cky_r, &[2]]);
        Ikev1Keys {
            skeyid: skeyid.to_vec(),
            skeyid_d: d.to_vec(),
            skeyid_a: a.to_vec(),
            skeyid_e: e.to_vec(),
        }
    }

    /// The ISAKMP SA encryption key of `key_len` bytes ([`encryption_key`]).
    pub fn encryption_key(&self, prf: Prf, key_len: usize) -> SecretBytes {
        encryption_key(prf, &self.skeyid_e, key_len)
    }
}

/// The Phase 1 encryption key from SKEYID_e (RFC 2409 §5.3 and Appendix B):
/// the leftmost bytes of SKEYID_e when it is long enough, otherwise
/// K = K1 | K2 | ... with K1 = prf(SKEYID_e, 0) (one zero octet) and
/// Kn = prf(SKEYID_e, Kn-1), truncated to `key_len`.
pub fn encryption_key(prf: Prf, skeyid_e: &[u8], key_len: usize) -> SecretBytes {
    if key_len <= skeyid_e.len() {
        return SecretBytes::new(skeyid_e[..key_len].to_vec());
    }
    let mut out = Zeroizing::new(Vec::with_capacity(key_len + prf.output_len()));
    let mut k = prf.prf(skeyid_e, &[0]);
    loop {
        out.extend_from_slice(&k);
        if out.len() >= key_len {
            break;
        }
        k = prf.prf(skeyid_e, &k);
    }
    out.truncate(key_len);
    SecretBytes::from_zeroizing(out)
}

/// Quick Mode KEYMAT for one SA (RFC 2409 §5.5):
///
/// ```text
/// K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b)
/// Kn = prf(SKEYID_d, Kn-1 | [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b)
/// KEYMAT = K1 | K2 | ...  (truncated to out_len)
/// ```
///
/// `protocol` is the IPsec protocol ID (3 for ESP) and `spi` the SPI of the
/// SA being keyed (the receiver's), so each direction gets its own KEYMAT.
/// `g_qm` is the Quick Mode shared secret when PFS is used.
// Every argument is a distinct RFC 2409 input; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn quick_mode_keymat(
    prf: Prf,
    skeyid_d: &[u8],
    g_qm: Option<&[u8]>,
    protocol: u8,
    spi: &[u8],
    ni_b: &[u8],
    nr_b: &[u8],
    out_len: usize,
) -> SecretBytes {
    let proto = [protocol];
    let g: &[u8] = g_qm.unwrap_or(&[]);
    let mut out = Zeroizing::new(Vec::with_capacity(out_len + prf.output_len()));
    let mut k = prf.prf_parts(skeyid_d, &[g, &proto, spi, ni_b, nr_b]);
    loop {
        out.extend_from_slice(&k);
        if out.len() >= out_len {
            break;
        }
        k = prf.prf_parts(skeyid_d, &[&k, g, &proto, spi, ni_b, nr_b]);
    }
    out.truncate(out_len);
    SecretBytes::from_zeroizing(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_util::hex;

    /// NIST CAVS IKEv1 KDF sample values, [SHA-256] (as carried in NSS's
    /// ike_sha256_vectors.h): SKEYID_d/a/e from SKEYID, g^xy and the cookies,
    /// and a pre-shared-key SKEYID.
    #[test]
    fn cavs_ikev1_sha256() {
        let p = Prf::HmacSha256;
        let skeyid = hex("750c5c94b9c2ec20b68033e024dadf0fa87e8b48c6561b21c72478451a06583d");
        let g_xy = hex("a1ff3dc6cf9b4c04709943cb4ca1f1789bcf360b03f1d027de3ae8ee039e9155");
        let cky_i: [u8; 8] = hex("6c6beb72631ddc3d").try_into().unwrap();
        let cky_r: [u8; 8] = hex("b84e24b22cffbd14").try_into().unwrap();
        let k = Ikev1Keys::derive(p, &skeyid, &g_xy, &cky_i, &cky_r);
        assert_eq!(k.skeyid, skeyid);
        assert_eq!(
            k.skeyid_d,
            hex("a4f7ca7de913814813e3312099e7c943bd293483f387532330237f1b20957310")
        );
        assert_eq!(
            k.skeyid_a,
            hex("1d4b705746c43b0a6fcbb8db33983c0f24ff6f8b6543e3779fed227c6067f004")
        );
        assert_eq!(
            k.skeyid_e,
            hex("03e6f16cd9ce9f64b5cdc5b34cca7163483ba5389a30afebef3d14640b0a815e")
        );

        let psk_skeyid = skeyid_psk(
            p,
            &hex("a0"),
            &hex("ead9ced494868f41"),
            &hex("f1aff4f425a94f18"),
        );
        assert_eq!(
            *psk_skeyid,
            hex("558a99b299773d267cf7c8ef073bf3b7af362c206c75a538403c5ef884d4cace")
        );
    }

    /// Appendix B expansion with HMAC-SHA-256: a 132-byte key from a 32-byte
    /// SKEYID_e (value from NSS's self-generated vectors, re-derived with
    /// Python's hmac), and the short-key case where SKEYID_e is used as is.
    #[test]
    fn appendix_b_expansion_sha256() {
        let p = Prf::HmacSha256;
        let e = hex("5f00d1bd2c58ec224b1e6b71fa0f19a1faa7a193952c444411b47c1a9d8ba6fe");
        assert_eq!(
            *encryption_key(p, &e, 132),
            hex(
                "b10fff32cbeaa1e7afe6ab0b191e0bd63cd524849a4b56019146d232a24cf9af6b89494d2a360b06\
                 825db8bb0324c15cecf47fc0bc99e39bf1171a7f4bf1733dc49ef64c642e73b054b2e82456e34fa3\
                 c822da475e27e403b3da3929da50e6aa9e7f9252c68fa069b4b0edd374e80d35378c4f5e8ec285a1\
                 b169c92bbb5353d05ba94165"
            )
        );
        assert_eq!(*encryption_key(p, &e, 32), e);
        assert_eq!(*encryption_key(p, &e, 16), e[..16]);
    }

    /// A full pre-shared-key Phase 1 + Quick Mode schedule with HMAC-SHA-1
    /// (the usual AWS IKEv1 proposal), computed independently with Python's
    /// hmac/hashlib. AES-256 needs 32 bytes but SHA-1 gives 20, so this
    /// exercises the Appendix B expansion; the 52-byte KEYMAT (AES-256 key +
    /// HMAC-SHA1 key) needs three Quick Mode blocks.
    #[test]
    fn python_psk_schedule_sha1() {
        let p = Prf::HmacSha1;
        let ni = hex("0102030405060708090a0b0c0d0e0f101112131415161718");
        let nr = hex("a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf");
        let g_xy: Vec<u8> = (1..=128).collect();
        let cky_i: [u8; 8] = hex("1122334455667788").try_into().unwrap();
        let cky_r: [u8; 8] = hex("99aabbccddeeff00").try_into().unwrap();

        let skeyid = skeyid_psk(p, b"aws-tunnel-psk_0123", &ni, &nr);
        assert_eq!(*skeyid, hex("962753d06bb1acbbde7bedf2681df08a654177c3"));
        let k = Ikev1Keys::derive(p, &skeyid, &g_xy, &cky_i, &cky_r);
        assert_eq!(k.skeyid_d, hex("f1d86b431ef6128470150f473f4121ccd01525c9"));
        assert_eq!(k.skeyid_a, hex("fcc71b479ecad076a126d805f4d04fbe3e6c0cd5"));
        assert_eq!(k.skeyid_e, hex("541af13edf219ef03640dc9ce281c56711998cd3"));
        assert_eq!(
            *k.encryption_key(p, 32),
            hex("fc8585e810433d18c4d0a05d925db91b361787827c444bc7675eda7af383808b")
        );

        let spi = hex("c0ffee01");
        let km = quick_mode_keymat(p, &k.skeyid_d, None, 3, &spi, &ni, &nr, 52);
        assert_eq!(
            *km,
            hex(
                "5ab1f5deeff4c2c639651616d9016fd7272b04e3e3be31d02319a4c9bb396a1e7251573442c0d2a3\
                 0fdbebb46ca37c97fb03d6aa"
            )
        );
        let g_qm: Vec<u8> = (200..232).collect();
        let km_pfs = quick_mode_keymat(p, &k.skeyid_d, Some(&g_qm), 3, &spi, &ni, &nr, 52);
        assert_eq!(
            *km_pfs,
            hex(
                "6ab398586553c23ab4d323cc90e32a94d0bcfd74599a98a835448d7d24f1679f400cb46d631ebf70\
                 3d9508866ca9d164bf959b4e"
            )
        );
        assert!(!format!("{k:?}").contains('['));
    }
}
