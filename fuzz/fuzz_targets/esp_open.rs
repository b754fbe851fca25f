//! `EspSa::decapsulate_in_place` on arbitrary bytes, for eight suites (AES-GCM
//! with 16/12/8-byte ICVs, ChaCha20-Poly1305, AES-CBC with HMAC-SHA1/256/512,
//! ESN on and off, plain ESP and UDP framing).
//!
//! Input: byte 0 picks the suite (low 3 bits) and the mode (bit 3).
//! - raw: the rest is a received datagram. Nobody holds the key, so opening
//!   must fail (`Err`), never panic.
//! - sealed: the sender seals the rest as an inner packet (first nibble forced
//!   to 4 or 6), then two bytes name a position and an XOR mask to tamper with.
//!   Untampered, an `Ok` gives back exactly the inner bytes and a second open is
//!   a replay; tampered with anywhere the ICV covers, opening must fail.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpn_core::esp::{EspError, Framing};
use vpn_core::time::Timestamp;
use vpn_core_fuzz::{esp_sa, esp_suites, Input};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let sel = input.u8();
    let suites = esp_suites();
    let config = &suites[usize::from(sel & 7) % suites.len()];
    let now = Timestamp::from_secs(1);
    let mut rx = esp_sa(config);
    if sel & 8 == 0 {
        let mut buf = input.rest().to_vec();
        let r = rx.decapsulate_in_place(now, &mut buf);
        assert!(r.is_err(), "forged packet opened: {r:?}");
        return;
    }
    let pos = usize::from(input.u16());
    let mask = input.u8();
    let mut inner = input.rest().to_vec();
    if inner.is_empty() {
        return;
    }
    inner[0] = if inner[0] & 0x80 == 0 { 0x40 } else { 0x60 } | (inner[0] & 0x0f);
    let mut tx = esp_sa(config);
    let mut packet = vec![0u8; tx.encapsulated_len(inner.len())];
    let n = match tx.encapsulate(now, &inner, &mut packet) {
        Ok(n) => n,
        Err(EspError::Malformed(_)) => return, // over 64 KiB with UDP framing
        Err(e) => panic!("sealing failed: {e:?}"),
    };
    packet.truncate(n);
    let framing = match config.framing {
        Framing::Esp => 0,
        Framing::UdpEncap { .. } => 8,
    };
    let pos = pos % n;
    // The UDP ports and checksum are not covered by the ICV (RFC 3948).
    let covered = pos >= framing || (4..6).contains(&pos);
    packet[pos] ^= mask;
    let sent = packet.clone();
    let r = rx.decapsulate_in_place(now, &mut packet);
    if mask != 0 && covered {
        assert!(r.is_err(), "tampered packet opened: {r:?}");
        return;
    }
    if let Ok(p) = r {
        assert!(
            p.len <= inner.len() && p.range().end <= packet.len(),
            "{p:?}"
        );
        assert_eq!(&packet[p.range()], &inner[..p.len], "inner packet changed");
        let mut again = sent;
        assert!(
            matches!(
                rx.decapsulate_in_place(now, &mut again),
                Err(EspError::Replay { .. })
            ),
            "replayed packet not rejected"
        );
    }
});
