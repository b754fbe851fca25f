//! `SkCipher::open_payloads` with fixed keys, for AES-GCM-16, ChaCha20-Poly1305
//! and AES-CBC with HMAC-SHA-256.
//!
//! Input: byte 0 picks the suite (low 2 bits) and the mode (bit 2).
//! - raw: the rest is a received message; nobody holds the keys, so it must
//!   not open.
//! - sealed: byte 1 is the first inner payload type, the rest the inner
//!   plaintext; it is sealed with `SkCipher::seal` and opened again: `open`
//!   gives back the same plaintext, and `open_payloads` decodes it (or
//!   reports a wire error) without panicking. Byte 2 and 3, if the mask byte
//!   is non-zero, tamper with the sealed message, which must then not open.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpn_core::entropy::SeededEntropy;
use vpn_core::esp::{EncryptionAlgorithm as E, IntegrityAlgorithm as I};
use vpn_core::ike::v2::sk::{ike_key_lengths, SkCipher};
use vpn_core::ike::v2::wire::{ExchangeType, Flags, Header, PayloadType};
use vpn_core_fuzz::Input;

fn cipher(e: E, i: Option<I>) -> SkCipher {
    let lens = ike_key_lengths(e, i);
    let sk_e: Vec<u8> = (0..lens.encr).map(|b| b as u8).collect();
    let sk_a: Vec<u8> = (0..lens.integ).map(|b| (b as u8).wrapping_mul(3)).collect();
    SkCipher::new(e, i, &sk_e, &sk_a).expect("cipher")
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let sel = input.u8();
    let (e, i) = [
        (E::Aes256Gcm16, None),
        (E::ChaCha20Poly1305, None),
        (E::Aes128Cbc, Some(I::HmacSha256_128)),
        (E::Aes128Gcm8, None),
    ][usize::from(sel & 3)];
    let c = cipher(e, i);
    if sel & 4 == 0 {
        let msg = input.rest();
        let _ = c.open(msg);
        let r = c.open_payloads(msg);
        assert!(r.is_err(), "forged SK payload opened: {r:?}");
        let _ = c.open_fragment(msg);
        return;
    }
    let first = PayloadType(input.u8());
    let pos = usize::from(input.u8());
    let mask = input.u8();
    let plain = input.rest();
    let header = Header::new(
        0x0102_0304_0506_0708,
        0x1112_1314_1516_1718,
        ExchangeType::INFORMATIONAL,
        Flags::new(true, false),
        7,
    );
    let mut msg = c
        .seal(&header, first, plain, &mut SeededEntropy::new(9))
        .expect("seal");
    if mask != 0 {
        let n = msg.len();
        msg[pos % n] ^= mask;
        assert!(c.open(&msg).is_err(), "tampered SK payload opened");
        return;
    }
    let (first2, plain2) = c.open(&msg).expect("sealed message opens");
    assert_eq!((first2, plain2.as_slice()), (first, plain));
    if let Ok((h, payloads)) = c.open_payloads(&msg) {
        assert_eq!(h.message_id, 7);
        assert_eq!(
            payloads.first().map(|p| p.payload_type()).unwrap_or(first),
            first
        );
    }
});
