use super::*;
use crate::crypto::test_util::hex;
use crate::entropy::SeededEntropy;
use crypto_bigint::modular::BoxedMontyForm;
use crypto_bigint::{BoxedUint, Integer};

#[test]
fn ids_and_keywords_round_trip() {
    for g in DhGroup::ALL {
        assert_eq!(DhGroup::from_id(g.id()), Some(g));
        assert_eq!(DhGroup::from_keyword(g.keyword()), Some(g));
    }
    assert_eq!(DhGroup::from_keyword("x25519"), Some(DhGroup::Curve25519));
    assert_eq!(DhGroup::from_keyword("MODP2048"), Some(DhGroup::Modp2048));
    assert_eq!(DhGroup::from_id(14), Some(DhGroup::Modp2048));
    assert_eq!(DhGroup::from_id(22), None); // MODP with subgroup: not supported
    assert_eq!(DhGroup::from_id(32), None); // Curve448: not supported
    assert_eq!(DhGroup::from_keyword("ecp224"), None);
    let lens: Vec<(u16, usize, usize)> = DhGroup::ALL
        .iter()
        .map(|g| (g.id(), g.public_len(), g.shared_secret_len()))
        .collect();
    assert_eq!(
        lens,
        [
            (1, 96, 96),
            (2, 128, 128),
            (5, 192, 192),
            (14, 256, 256),
            (15, 384, 384),
            (16, 512, 512),
            (19, 64, 32),
            (20, 96, 48),
            (21, 132, 66),
            (31, 32, 32),
        ]
    );
}

#[test]
fn every_group_agrees_with_itself() {
    let mut rng = SeededEntropy::new(1);
    for g in DhGroup::ALL {
        let a = g.generate(&mut rng).unwrap();
        let b = g.generate(&mut rng).unwrap();
        assert_eq!(a.public_value().len(), g.public_len(), "{g}");
        assert_ne!(a.public_value(), b.public_value(), "{g}");
        let ab = a.shared_secret(b.public_value()).unwrap();
        let ba = b.shared_secret(a.public_value()).unwrap();
        assert_eq!(ab.as_bytes(), ba.as_bytes(), "{g}");
        assert_eq!(ab.as_bytes().len(), g.shared_secret_len(), "{g}");
        // Debug never prints key material.
        assert_eq!(
            format!("{ab:?}"),
            format!("SharedSecret({} bytes)", g.shared_secret_len())
        );
        assert!(!format!("{a:?}").contains('['));
    }
}

#[test]
fn same_seed_same_keys() {
    for g in [DhGroup::Modp1024, DhGroup::Ecp521, DhGroup::Curve25519] {
        let a = g.generate(&mut SeededEntropy::new(9)).unwrap();
        let b = g.generate(&mut SeededEntropy::new(9)).unwrap();
        assert_eq!(a.public_value(), b.public_value(), "{g}");
    }
}

#[test]
fn wrong_lengths_rejected() {
    let mut rng = SeededEntropy::new(2);
    for g in DhGroup::ALL {
        let k = g.generate(&mut rng).unwrap();
        let n = g.public_len();
        for len in [0, 1, n - 1, n + 1, n + 64] {
            assert_eq!(
                k.shared_secret(&vec![2u8; len]).unwrap_err(),
                CryptoError::WrongLength {
                    expected: n,
                    got: len
                },
                "{g} len {len}"
            );
        }
    }
}

/// p - delta, big-endian, at the prime's length.
fn p_minus(g: DhGroup, delta: u8) -> Vec<u8> {
    let mut p = hex(modp_of(g).prime_hex());
    // Every prime ends in 64 one-bits, so no borrow for small deltas.
    let last = p.len() - 1;
    p[last] -= delta;
    p
}

fn modp_of(g: DhGroup) -> modp::Modp {
    match g.kind() {
        Kind::Modp(m) => m,
        _ => unreachable!(),
    }
}

const MODP: [DhGroup; 6] = [
    DhGroup::Modp768,
    DhGroup::Modp1024,
    DhGroup::Modp1536,
    DhGroup::Modp2048,
    DhGroup::Modp3072,
    DhGroup::Modp4096,
];

#[test]
fn modp_out_of_range_peer_values_rejected() {
    let mut rng = SeededEntropy::new(3);
    for g in MODP {
        let k = g.generate(&mut rng).unwrap();
        let n = g.public_len();
        let mut one = vec![0u8; n];
        one[n - 1] = 1;
        let mut two = vec![0u8; n];
        two[n - 1] = 2;
        let bad = [
            vec![0u8; n],
            one,
            p_minus(g, 1),
            p_minus(g, 0),
            vec![0xff; n],
        ];
        for (i, v) in bad.iter().enumerate() {
            assert_eq!(
                k.shared_secret(v).unwrap_err(),
                CryptoError::InvalidPeerPublicValue { group: g.id() },
                "{g} case {i}"
            );
        }
        // The extremes just inside the range are accepted.
        assert!(k.shared_secret(&two).is_ok(), "{g}");
        assert!(k.shared_secret(&p_minus(g, 2)).is_ok(), "{g}");
    }
}

/// Each prime: odd, the right bit length, 64 leading and trailing one bits,
/// a safe prime (p and (p-1)/2 pass Fermat tests to several bases), and the
/// SHA-256 of its hex text equals a digest computed independently from the
/// defining formula p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) pi) + k)
/// (Python, integer Machin-formula pi), so a transcription error cannot hide.
#[test]
fn modp_primes_are_the_rfc_safe_primes() {
    let digests = [
        "c00532299113ee0931f7197460f65d9a837c6c19b3ad9e9b923c22653895d455",
        "693daceaf10c4200894cbd5696b120faebc30f7c4a242a8cd915ca3e83e141db",
        "0a14e50abc56277fbf3d24ae174026486e91f013263cfde280c32577dcebe636",
        "dcd8538e629d7b8bc0dabdcda6744e0542bfb801d50305b2f6acf823b3d4e7ba",
        "2b2c15e1523695d748a2f56b3b81d59d23467b300f1879585be61f0addacdc45",
        "2349a6f8251156cbfade78ada6bd1e0c961a56847def4d288b6fdbd740016bff",
    ];
    for (g, digest) in MODP.into_iter().zip(digests) {
        let m = modp_of(g);
        let text = m.prime_hex();
        let got = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        assert_eq!(got.as_ref(), hex(digest), "{g} digest");

        let bits = m.bits();
        let params = m.params();
        let p = &params.p;
        assert_eq!(bits - p.leading_zeros(), bits, "{g} bit length");
        let bytes = hex(text);
        assert_eq!(bytes.len() * 8, bits as usize);
        assert!(bytes[..8]
            .iter()
            .chain(&bytes[bytes.len() - 8..])
            .all(|b| *b == 0xff));
        assert!(bool::from(p.is_odd()), "{g} odd");

        let one = BoxedUint::one_with_precision(bits);
        let p_minus_1 = p.wrapping_sub(&one);
        let q = p_minus_1.shr_vartime(1).expect("shift by one");
        let q_minus_1 = q.wrapping_sub(&one);
        let q_odd = crypto_bigint::Odd::new(q.clone())
            .into_option()
            .expect("q odd");
        let q_params = crypto_bigint::modular::BoxedMontyParams::new_vartime(q_odd);
        for base in [2u8, 3, 5] {
            let b = BoxedUint::from_be_slice_truncated(&[base], bits);
            let fp = BoxedMontyForm::new(b.clone(), &params.monty)
                .pow(&p_minus_1)
                .retrieve();
            assert_eq!(fp, one, "{g}: p fails Fermat base {base}");
            let fq = BoxedMontyForm::new(b, &q_params).pow(&q_minus_1).retrieve();
            assert_eq!(fq, one, "{g}: (p-1)/2 fails Fermat base {base}");
        }
    }
}

/// Fixed exponents, expected values from Python's pow(2, x, p) over the
/// formula-derived RFC 3526 group 14 prime.
#[test]
fn modp2048_fixed_exponent_vector() {
    let g = DhGroup::Modp2048;
    let a = g
        .key_pair_from_private(&hex(
            "6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a9aa3",
        ))
        .unwrap();
    let b = g
        .key_pair_from_private(&hex(
            "3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3f45",
        ))
        .unwrap();
    let ya = hex(
        "d2483c69ce535b179a41a20aeafa4fb408249cc55a58d07ad9f63bb7099f41ac2e6572a733c7adaccc83be2e04a6c038\
         8e5532615467f26711bd20348ebd6e9cf76a4f163ee711d3c23602ad26f605373658a9b9792f9b76bf51d2e8ab3ccfb5\
         f03737db3f8bb17f8a428ab8c02e5fa9916d449739ef87902f01e8d1230796c5c8da51e00b2f21f31510255bef01c04b\
         60a7060661732c69bd1ea8a1a50025fdcecfd2cac2992d7b344384828f953704e96ae7b9620fbfaa5608a31d1c63aaf0\
         b9e0eb8ba56814e56e8d7b091479312d1eb029fd746fe3a4562e94731f5e34f9077a5a5e488e14971a4b43f6cf5a5851\
         5c39a73487a3d3785c165933bdd83d31",
    );
    let yb = hex(
        "bcbb52960e2e71a97848742eaf078ddc9fcc31ec41554fe071141d70ee51e0a29bdfdc27326150cc69e1f5280e0497ab\
         011fff38a00edd1d4d26646e4c754349582d8b5ace8d13e8cc9878bac4f89aa35d8ea5b8f02e064f8ac53c251fc6c141\
         961bba77c14e2bb8535011deca75a36cc87f4feff9c19239ade82f19293792dbd9a4301db596bd957083a66864bb89c8\
         6bcfc92699d938cb7c97298de888cb41c26dc5a3254eaad53c2df9d53219716d0b4fd66c2548fb1b5d397e609d7aced2\
         87b2b48bb43bae7ce6c1af173cedd6570bc344ec0ee1018d20c89c43d52545db9cb49fc0184ceb1265f273d67530ba24\
         4b7341ed25cc30c7339f74b6ce8c2ab8",
    );
    let s = hex(
        "13dca6248461213849294ab54f1b9cafe061a9d95592fcf295fbf69b4163c11fc18e387eb5e509f59cda5793223ccfc9\
         3767ca1caeaf28bbc033e9a8e9458d3ed6591bd3b7699f46a4f1ad05e31e0b27abef6011b05792f74067c1b40c4fba2e\
         5f195ae58b836e76a4b4d37c8d8f1cf136c61b62ece02d44a46213a5964c5c9414fc7e1390c8a53ded46a101ba32e3a3\
         9855386fd23500518b2273807840e16207ea89bbcdb5309fbf93405227c4bd939d8d1bc6829e8aaa98278463387dd453\
         64fcfeef56448ae2cb7e6c1ffdb0510330f414628a96a8677565d18c684136c53092db3f835a7c57f90b84011aa97fc3\
         8fc379075124ba23c31a9f6f7ea317e9",
    );
    assert_eq!(a.public_value(), ya);
    assert_eq!(b.public_value(), yb);
    assert_eq!(a.shared_secret(&yb).unwrap().as_bytes(), s);
    assert_eq!(b.shared_secret(&ya).unwrap().as_bytes(), s);
    // Degenerate fixed exponents are refused.
    assert!(g.key_pair_from_private(&[0]).is_err());
    assert!(g.key_pair_from_private(&[1]).is_err());
    assert!(g.key_pair_from_private(&p_minus(g, 1)).is_err());
}

struct EcVector {
    group: DhGroup,
    i: &'static str,
    gix: &'static str,
    giy: &'static str,
    r: &'static str,
    grx: &'static str,
    gry: &'static str,
    girx: &'static str,
}

fn check_ec(v: &EcVector) {
    let i = v.group.key_pair_from_private(&hex(v.i)).unwrap();
    let r = v.group.key_pair_from_private(&hex(v.r)).unwrap();
    let gi = [hex(v.gix), hex(v.giy)].concat();
    let gr = [hex(v.grx), hex(v.gry)].concat();
    assert_eq!(i.public_value(), gi, "{} g^i", v.group);
    assert_eq!(r.public_value(), gr, "{} g^r", v.group);
    assert_eq!(
        i.shared_secret(&gr).unwrap().as_bytes(),
        hex(v.girx),
        "{} i side",
        v.group
    );
    assert_eq!(
        r.shared_secret(&gi).unwrap().as_bytes(),
        hex(v.girx),
        "{} r side",
        v.group
    );

    // A point off the curve (y flipped by one bit) and the all-zero "point"
    // (SEC1 cannot encode the identity as x|y; (0,0) is not on these curves).
    let mut off = gr.clone();
    let last = off.len() - 1;
    off[last] ^= 1;
    let invalid = CryptoError::InvalidPeerPublicValue {
        group: v.group.id(),
    };
    assert_eq!(i.shared_secret(&off).unwrap_err(), invalid);
    assert_eq!(i.shared_secret(&vec![0; gr.len()]).unwrap_err(), invalid);
    assert_eq!(i.shared_secret(&vec![0xff; gr.len()]).unwrap_err(), invalid);
    // Zero and out-of-range private scalars are refused.
    let n = hex(v.i).len();
    assert!(v.group.key_pair_from_private(&vec![0; n]).is_err());
    assert!(v.group.key_pair_from_private(&vec![0xff; n]).is_err());
    assert!(v.group.key_pair_from_private(&hex(v.i)[1..]).is_err());
}

/// RFC 5903 §8.1.
#[test]
fn rfc5903_group19() {
    check_ec(&EcVector {
        group: DhGroup::Ecp256,
        i: "C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433",
        gix: "DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180",
        giy: "5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3",
        r: "C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53",
        grx: "D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63",
        gry: "56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB",
        girx: "D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE",
    });
}

/// RFC 5903 §8.2.
#[test]
fn rfc5903_group20() {
    check_ec(&EcVector {
        group: DhGroup::Ecp384,
        i: "099F3C70 34D4A2C6 99884D73 A375A67F 7624EF7C 6B3C0F16 0647B674 14DCE655
            E35B5380 41E649EE 3FAEF896 783AB194",
        gix: "667842D7 D180AC2C DE6F74F3 7551F557 55C7645C 20EF73E3 1634FE72 B4C55EE6
              DE3AC808 ACB4BDB4 C88732AE E95F41AA",
        giy: "9482ED1F C0EEB9CA FC498462 5CCFC23F 65032149 E0E144AD A0241815 35A0F38E
              EB9FCFF3 C2C947DA E69B4C63 4573A81C",
        r: "41CB0779 B4BDB85D 47846725 FBEC3C94 30FAB46C C8DC5060 855CC9BD A0AA2942
            E0308312 916B8ED2 960E4BD5 5A7448FC",
        grx: "E558DBEF 53EECDE3 D3FCCFC1 AEA08A89 A987475D 12FD950D 83CFA417 32BC509D
              0D1AC43A 0336DEF9 6FDA41D0 774A3571",
        gry: "DCFBEC7A ACF31964 72169E83 8430367F 66EEBE3C 6E70C416 DD5F0C68 759DD1FF
              F83FA401 42209DFF 5EAAD96D B9E6386C",
        girx: "11187331 C279962D 93D60424 3FD592CB 9D0A926F 422E4718 7521287E 7156C5C4
               D6031355 69B9E9D0 9CF5D4A2 70F59746",
    });
}

/// RFC 5903 §8.3.
#[test]
fn rfc5903_group21() {
    check_ec(&EcVector {
        group: DhGroup::Ecp521,
        i: "0037ADE9 319A89F4 DABDB3EF 411AACCC A5123C61 ACAB57B5 393DCE47 608172A0
            95AA85A3 0FE1C295 2C6771D9 37BA9777 F5957B26 39BAB072 462F68C2 7A57382D 4A52",
        gix: "0015417E 84DBF28C 0AD3C278 713349DC 7DF153C8 97A1891B D98BAB43 57C9ECBE
              E1E3BF42 E00B8E38 0AEAE57C 2D107564 94188594 2AF5A7F4 601723C4 195D176C ED3E",
        giy: "017CAE20 B6641D2E EB695786 D8C94614 6239D099 E18E1D5A 514C739D 7CB4A10A
              D8A78801 5AC405D7 799DC75E 7B7D5B6C F2261A6A 7F150743 8BF01BEB 6CA3926F 9582",
        r: "0145BA99 A847AF43 793FDD0E 872E7CDF A16BE30F DC780F97 BCCC3F07 8380201E
            9C677D60 0B343757 A3BDBF2A 3163E4C2 F869CCA7 458AA4A4 EFFC311F 5CB15168 5EB9",
        grx: "00D0B397 5AC4B799 F5BEA16D 5E13E9AF 971D5E9B 984C9F39 728B5E57 39735A21
              9B97C356 436ADC6E 95BB0352 F6BE64A6 C2912D4E F2D0433C ED2B6171 640012D9 460F",
        gry: "015C6822 6383956E 3BD066E7 97B623C2 7CE0EAC2 F551A10C 2C724D98 52077B87
              220B6536 C5C408A1 D2AEBB8E 86D678AE 49CB5709 1F473229 6579AB44 FCD17F0F C56A",
        girx: "01144C7D 79AE6956 BC8EDB8E 7C787C45 21CB086F A64407F9 7894E5E6 B2D79B04
               D1427E73 CA4BAA24 0A347868 59810C06 B3C715A3 A8CC3151 F2BEE417 996D19F3 DDEA",
    });
}

/// RFC 7748 §6.1.
#[test]
fn rfc7748_group31() {
    let g = DhGroup::Curve25519;
    let a = g
        .key_pair_from_private(&hex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ))
        .unwrap();
    let b = g
        .key_pair_from_private(&hex(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        ))
        .unwrap();
    let a_pub = hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    let b_pub = hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    let k = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    assert_eq!(a.public_value(), a_pub);
    assert_eq!(b.public_value(), b_pub);
    assert_eq!(a.shared_secret(&b_pub).unwrap().as_bytes(), k);
    assert_eq!(b.shared_secret(&a_pub).unwrap().as_bytes(), k);

    // Low-order points give an all-zero secret, which must be refused:
    // 0 and 1 (RFC 7748 §6.1 / RFC 8031 §2.3).
    let invalid = CryptoError::InvalidPeerPublicValue { group: 31 };
    let mut one = [0u8; 32];
    one[0] = 1;
    assert_eq!(a.shared_secret(&[0u8; 32]).unwrap_err(), invalid);
    assert_eq!(a.shared_secret(&one).unwrap_err(), invalid);
    assert!(g.key_pair_from_private(&[7; 31]).is_err());
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Arbitrary bytes (any length, and exactly the right length) as the
        /// peer's KE data never panic, for every group.
        #[test]
        fn arbitrary_peer_values_never_panic(
            group in proptest::sample::select(DhGroup::ALL.to_vec()),
            any_len in proptest::collection::vec(any::<u8>(), 0..600),
            seed in any::<u64>(),
            fill in any::<u8>(),
        ) {
            let k = group.generate(&mut SeededEntropy::new(seed)).unwrap();
            let _ = k.shared_secret(&any_len);
            let mut exact = any_len.clone();
            exact.resize(group.public_len(), fill);
            let _ = k.shared_secret(&exact);
            let _ = group.key_pair_from_private(&any_len);
        }
    }
}

/// A broken entropy source that only yields zeros.
struct Zeros;

impl Entropy for Zeros {
    fn fill(&mut self, dest: &mut [u8]) {
        dest.fill(0);
    }
}

#[test]
fn broken_entropy_is_an_error_not_a_weak_key() {
    for g in DhGroup::ALL {
        let r = g.generate(&mut Zeros);
        match g {
            // Clamping makes every 32-byte string a valid X25519 key.
            DhGroup::Curve25519 => assert!(r.is_ok()),
            _ => assert_eq!(
                r.unwrap_err(),
                CryptoError::KeyGeneration { group: g.id() },
                "{g}"
            ),
        }
    }
}
