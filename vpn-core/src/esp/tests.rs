//! Behaviour of the ESP SA: round trips, replay, ESN, lifetimes, framing,
//! malformed input.

use super::*;
use crate::entropy::SeededEntropy;
use crate::time::Timestamp;
use proptest::prelude::*;

const T0: Timestamp = Timestamp::ZERO;

fn keys_for(enc: EncryptionAlgorithm, integ: Option<IntegrityAlgorithm>) -> (Vec<u8>, Vec<u8>) {
    let enc_key = (0..enc.keymat_len() as u8).collect();
    let integ_key = integ.map_or(Vec::new(), |i| (100..100 + i.key_len() as u8).collect());
    (enc_key, integ_key)
}

fn config(enc: EncryptionAlgorithm) -> EspSaConfig {
    let mut c = EspSaConfig::new(0x0102_0304, enc);
    if !enc.is_aead() {
        c.integrity = Some(IntegrityAlgorithm::HmacSha256_128);
    }
    c
}

/// Outbound and inbound SA sharing keys.
fn pair(config: &EspSaConfig) -> (EspSa, EspSa) {
    let (ek, ik) = keys_for(config.encryption, config.integrity);
    let keys = EspKeys {
        encryption: &ek,
        integrity: &ik,
    };
    let mut rng = SeededEntropy::new(42);
    (
        EspSa::new(config, keys, T0, &mut rng).unwrap(),
        EspSa::new(config, keys, T0, &mut rng).unwrap(),
    )
}

fn ipv4_packet(len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len).map(|i| i as u8).collect();
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p
}

fn ipv6_packet(payload: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..40 + payload).map(|i| (i * 7) as u8).collect();
    p[0] = 0x60;
    p[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
    p
}

fn seal(sa: &mut EspSa, inner: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; sa.encapsulated_len(inner.len())];
    let n = sa.encapsulate(T0, inner, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn open(sa: &mut EspSa, packet: &[u8]) -> Result<Vec<u8>, EspError> {
    let mut buf = packet.to_vec();
    let inner = sa.decapsulate_in_place(T0, &mut buf)?;
    Ok(buf[inner.range()].to_vec())
}

fn all_suites() -> Vec<EspSaConfig> {
    let mut out = Vec::new();
    for enc in EncryptionAlgorithm::ALL {
        if enc.is_aead() {
            out.push(EspSaConfig::new(0x1234_5678, enc));
        } else {
            for integ in IntegrityAlgorithm::ALL {
                let mut c = EspSaConfig::new(0x1234_5678, enc);
                c.integrity = Some(integ);
                out.push(c);
            }
        }
    }
    out
}

#[test]
fn every_suite_round_trips_ipv4_and_ipv6_with_and_without_esn() {
    for base in all_suites() {
        for esn in [false, true] {
            let mut c = base.clone();
            c.esn = esn;
            let (mut tx, mut rx) = pair(&c);
            for inner in [
                ipv4_packet(20),
                ipv4_packet(1400),
                ipv6_packet(0),
                ipv6_packet(333),
            ] {
                let esp = seal(&mut tx, &inner);
                assert_eq!(esp.len(), tx.encapsulated_len(inner.len()));
                assert_eq!(&esp[..4], &0x1234_5678u32.to_be_bytes());
                let block = c.encryption.block_len();
                let icv = c.encryption.aead_icv_len() + c.integrity.map_or(0, |i| i.icv_len());
                assert_eq!((esp.len() - 8 - c.encryption.iv_len() - icv) % block, 0);
                // The plaintext does not appear in the packet.
                assert!(!esp.windows(16).any(|w| w == &inner[4..20]), "{c:?}");
                assert_eq!(open(&mut rx, &esp).unwrap(), inner, "{c:?}");
            }
            assert_eq!(rx.counters().packets_in, 4);
            assert_eq!(tx.counters().packets_out, 4);
            assert_eq!(tx.counters().bytes_out, 20 + 1400 + 40 + 373);
            assert_eq!(rx.counters().bytes_in, tx.counters().bytes_out);
        }
    }
}

#[test]
fn sequence_numbers_start_at_one_and_increase() {
    let (mut tx, _) = pair(&config(EncryptionAlgorithm::Aes128Gcm16));
    for expected in 1u32..=3 {
        let esp = seal(&mut tx, &ipv4_packet(40));
        assert_eq!(&esp[4..8], &expected.to_be_bytes());
    }
}

#[test]
fn tampering_anywhere_fails_authentication_and_is_counted() {
    for c in all_suites() {
        let (mut tx, mut rx) = pair(&c);
        let esp = seal(&mut tx, &ipv4_packet(100));
        // Every byte after the SPI is covered by the ICV.
        for i in 4..esp.len() {
            let mut bad = esp.clone();
            bad[i] ^= 0x80; // keeps a tampered sequence number inside the window
            assert_eq!(
                open(&mut rx, &bad),
                Err(EspError::Authentication),
                "{c:?} byte {i}"
            );
        }
        assert_eq!(rx.counters().icv_failures, esp.len() as u64 - 4);
        // A failed ICV does not advance the window: the genuine packet still opens.
        assert!(open(&mut rx, &esp).is_ok());
    }
}

#[test]
fn wrong_key_fails_authentication() {
    let c = config(EncryptionAlgorithm::Aes256Gcm16);
    let (mut tx, _) = pair(&c);
    let mut rx = EspSa::new(
        &c,
        EspKeys {
            encryption: &[9u8; 36],
            integrity: &[],
        },
        T0,
        &mut SeededEntropy::new(1),
    )
    .unwrap();
    assert_eq!(
        open(&mut rx, &seal(&mut tx, &ipv4_packet(60))),
        Err(EspError::Authentication)
    );
}

#[test]
fn replays_are_rejected_and_counted_reordering_is_not() {
    let mut c = config(EncryptionAlgorithm::Aes128Gcm16);
    c.replay_window = 32;
    let (mut tx, mut rx) = pair(&c);
    let packets: Vec<_> = (0..40).map(|_| seal(&mut tx, &ipv4_packet(30))).collect();
    // Reordered within the window: fine.
    assert!(open(&mut rx, &packets[5]).is_ok());
    assert!(open(&mut rx, &packets[3]).is_ok());
    assert!(matches!(
        open(&mut rx, &packets[5]),
        Err(EspError::Replay {
            seq: 6,
            kind: ReplayKind::Duplicate
        })
    ));
    assert!(open(&mut rx, &packets[39]).is_ok());
    // Sequence 4 is now 36 behind the top (40): outside a 32-packet window.
    assert!(matches!(
        open(&mut rx, &packets[3]),
        Err(EspError::Replay {
            kind: ReplayKind::TooOld,
            ..
        })
    ));
    assert!(open(&mut rx, &packets[10]).is_ok());
    let counters = rx.counters();
    assert_eq!(
        (counters.replay_duplicates, counters.replay_too_old),
        (1, 1)
    );
    assert_eq!(counters.replay_drops(), 2);
    assert_eq!(counters.packets_in, 4);
}

#[test]
fn esn_high_bits_are_inferred_and_authenticated() {
    let mut c = config(EncryptionAlgorithm::Aes128Cbc);
    c.esn = true;
    let (mut tx, mut rx) = pair(&c);
    // Jump both ends to just below the 2^32 boundary.
    tx.seq_out = 0xFFFF_FFFE;
    rx.replay.mark(0xFFFF_FFFD);
    let a = seal(&mut tx, &ipv4_packet(50)); // 0xFFFF_FFFF
    let b = seal(&mut tx, &ipv4_packet(50)); // 0x1_0000_0000: low half 0 on the wire
    let d = seal(&mut tx, &ipv4_packet(50)); // 0x1_0000_0001
    assert_eq!(&b[4..8], &[0, 0, 0, 0]);
    let mut buf = d.clone();
    assert_eq!(
        rx.decapsulate_in_place(T0, &mut buf).unwrap().sequence,
        0x1_0000_0001
    );
    let mut buf = a.clone();
    assert_eq!(
        rx.decapsulate_in_place(T0, &mut buf).unwrap().sequence,
        0xFFFF_FFFF
    );
    let mut buf = b.clone();
    assert_eq!(
        rx.decapsulate_in_place(T0, &mut buf).unwrap().sequence,
        0x1_0000_0000
    );

    // Without ESN on the receiver the implicit high bits differ: the ICV fails.
    let mut no_esn = c.clone();
    no_esn.esn = false;
    let (_, mut plain_rx) = pair(&no_esn);
    assert_eq!(open(&mut plain_rx, &d), Err(EspError::Authentication));
}

#[test]
fn sequence_exhaustion_is_an_error_and_an_event_never_a_wrap() {
    let (mut tx, _) = pair(&config(EncryptionAlgorithm::Aes128Gcm16));
    tx.seq_out = u64::from(u32::MAX) - 1;
    seal(&mut tx, &ipv4_packet(20));
    let mut buf = vec![0u8; 200];
    let inner = ipv4_packet(20);
    assert_eq!(
        tx.encapsulate(T0, &inner, &mut buf),
        Err(EspError::SequenceExhausted)
    );
    assert_eq!(
        tx.encapsulate(T0, &inner, &mut buf),
        Err(EspError::SequenceExhausted)
    );
    assert_eq!(
        tx.poll_event(),
        Some(EspEvent::SequenceExhausted { spi: 0x0102_0304 })
    );
    assert_eq!(tx.poll_event(), None);
    assert_eq!(tx.last_sequence_out(), u64::from(u32::MAX));
}

#[test]
fn soft_and_hard_lifetimes_fire_once_each() {
    let mut c = config(EncryptionAlgorithm::Aes256Gcm16);
    c.lifetimes.soft.packets = Some(3);
    c.lifetimes.hard.packets = Some(5);
    let (mut tx, _) = pair(&c);
    for _ in 0..2 {
        seal(&mut tx, &ipv4_packet(20));
    }
    assert_eq!(tx.poll_event(), None);
    seal(&mut tx, &ipv4_packet(20));
    assert_eq!(
        tx.poll_event(),
        Some(EspEvent::SoftLifetimeReached {
            spi: 0x0102_0304,
            limit: LifetimeLimit::Packets
        })
    );
    seal(&mut tx, &ipv4_packet(20));
    seal(&mut tx, &ipv4_packet(20));
    assert_eq!(
        tx.poll_event(),
        Some(EspEvent::HardLifetimeReached {
            spi: 0x0102_0304,
            limit: LifetimeLimit::Packets
        })
    );
    assert_eq!(tx.poll_event(), None);
    let mut buf = vec![0u8; 200];
    assert_eq!(
        tx.encapsulate(T0, &ipv4_packet(20), &mut buf),
        Err(EspError::Expired)
    );
    assert!(tx.is_expired());
}

#[test]
fn byte_and_time_lifetimes() {
    let mut c = config(EncryptionAlgorithm::ChaCha20Poly1305);
    c.lifetimes.soft.bytes = Some(1000);
    c.lifetimes.soft.time = Some(core::time::Duration::from_secs(3330));
    c.lifetimes.hard.time = Some(core::time::Duration::from_secs(3600));
    let (mut tx, _) = pair(&c);
    assert_eq!(tx.poll_timeout(), Some(Timestamp::from_secs(3330)));
    seal(&mut tx, &ipv4_packet(600));
    seal(&mut tx, &ipv4_packet(600));
    assert_eq!(
        tx.poll_event(),
        Some(EspEvent::SoftLifetimeReached {
            spi: 0x0102_0304,
            limit: LifetimeLimit::Bytes
        })
    );
    // Soft already reached: only the hard deadline remains.
    assert_eq!(tx.poll_timeout(), Some(Timestamp::from_secs(3600)));
    tx.handle_timeout(Timestamp::from_secs(3599));
    assert_eq!(tx.poll_event(), None);
    tx.handle_timeout(Timestamp::from_secs(3600));
    assert_eq!(
        tx.poll_event(),
        Some(EspEvent::HardLifetimeReached {
            spi: 0x0102_0304,
            limit: LifetimeLimit::Time
        })
    );
    assert_eq!(tx.poll_timeout(), None);
}

#[test]
fn too_small_buffers_say_how_much_is_needed() {
    let (mut tx, mut rx) = pair(&config(EncryptionAlgorithm::Aes128Cbc));
    let inner = ipv4_packet(100);
    let needed = tx.encapsulated_len(100);
    let mut small = vec![0u8; needed - 1];
    assert_eq!(
        tx.encapsulate(T0, &inner, &mut small),
        Err(EspError::BufferTooSmall { needed })
    );
    // Nothing was consumed by the failure.
    assert_eq!(tx.last_sequence_out(), 0);
    let esp = seal(&mut tx, &inner);
    let mut out = vec![0u8; esp.len() - 1];
    assert_eq!(
        rx.decapsulate(T0, &esp, &mut out),
        Err(EspError::BufferTooSmall { needed: esp.len() })
    );
    assert!(tx.headroom() + 100 + tx.tailroom() >= needed);
    // An absurd inner length is an error, not an arithmetic overflow.
    assert_eq!(
        tx.encapsulate_in_place(T0, &mut small, usize::MAX - 3),
        Err(EspError::BufferTooSmall { needed: usize::MAX })
    );
}

#[test]
fn aead_padding_to_16_bytes_is_optional_and_either_alignment_is_accepted() {
    let mut minimal = config(EncryptionAlgorithm::Aes256Gcm16);
    minimal.aead_pad_to_16 = false;
    let padded = config(EncryptionAlgorithm::Aes256Gcm16);
    let (mut tx_min, mut rx_min) = pair(&minimal);
    let (mut tx_pad, mut rx_pad) = pair(&padded);
    let inner = ipv4_packet(64);
    let esp_min = seal(&mut tx_min, &inner);
    let esp_pad = seal(&mut tx_pad, &inner);
    // Header 8 + IV 8 + ICV 16 around 64 + 2 bytes: 68 at 4-byte alignment, 80 at 16.
    assert_eq!(esp_min.len(), 32 + 68);
    assert_eq!(esp_pad.len(), 32 + 80);
    assert_eq!(open(&mut rx_pad, &esp_min).unwrap(), inner);
    assert_eq!(open(&mut rx_min, &esp_pad).unwrap(), inner);
}

#[test]
fn tfc_padding_is_added_and_stripped() {
    let mut c = config(EncryptionAlgorithm::Aes256Gcm16);
    c.tfc_pad_to = Some(1000);
    let (mut tx, mut rx) = pair(&c);
    let inner = ipv4_packet(64);
    let esp = seal(&mut tx, &inner);
    assert!(esp.len() >= 1000 + 8 + 8 + 16);
    assert_eq!(open(&mut rx, &esp).unwrap(), inner);
}

#[test]
fn udp_encapsulation_adds_and_checks_the_udp_header() {
    let mut c = config(EncryptionAlgorithm::Aes128Gcm16);
    c.framing = Framing::UdpEncap {
        source_port: 4500,
        destination_port: 4500,
    };
    let (mut tx, mut rx) = pair(&c);
    let inner = ipv6_packet(100);
    let dgram = seal(&mut tx, &inner);
    assert_eq!(&dgram[..2], &4500u16.to_be_bytes());
    assert_eq!(
        usize::from(u16::from_be_bytes([dgram[4], dgram[5]])),
        dgram.len()
    );
    assert_eq!(&dgram[6..8], &[0, 0]);
    assert_eq!(
        nat_t::classify(&dgram[8..]),
        nat_t::NatTDatagram::Esp(&dgram[8..])
    );
    assert_eq!(open(&mut rx, &dgram).unwrap(), inner);

    let keepalive = [0x11, 0x94, 0x11, 0x94, 0, 9, 0, 0, 0xFF];
    assert_eq!(
        open(&mut rx, &keepalive),
        Err(EspError::NotEsp(nat_t::NatTKind::Keepalive))
    );
    let ike = [0x11, 0x94, 0x11, 0x94, 0, 40, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    assert!(open(&mut rx, &ike[..]).is_err());
}

#[test]
fn bad_padding_and_next_header_are_malformed_even_when_authentic() {
    // Seal at the transform level so the trailer can be forged under a valid ICV.
    let mut c = config(EncryptionAlgorithm::Aes128Gcm16);
    c.aead_pad_to_16 = false;
    let (mut tx, mut rx) = pair(&c);
    let inner = ipv4_packet(22); // 22 + 2 = 24: no padding needed
    let mut esp = seal(&mut tx, &inner);
    assert!(open(&mut rx, &esp).is_ok());

    // Re-seal with next header 17 (transport-mode UDP): not a tunnel packet.
    let mut forged = esp.clone();
    let seq = super::transform::SeqForIcv {
        full: 2,
        esn: false,
    };
    forged[4..8].copy_from_slice(&2u32.to_be_bytes());
    let n = forged.len();
    forged[16..n - 16].copy_from_slice(&[inner.clone(), vec![0, 17]].concat());
    tx.transform.seal(&mut forged, seq).unwrap();
    assert_eq!(
        open(&mut rx, &forged),
        Err(EspError::Malformed("next header is not IPv4 or IPv6"))
    );

    // Padding bytes must be 1, 2, 3, ...
    let inner = ipv4_packet(20); // 20 + 2 = 22: two bytes of padding
    esp = seal(&mut tx, &inner);
    let n = esp.len();
    let mut body = [inner.clone(), vec![1, 7, 2, 4]].concat();
    body.truncate(n - 32);
    esp[16..n - 16].copy_from_slice(&body);
    esp[4..8].copy_from_slice(&4u32.to_be_bytes());
    tx.transform
        .seal(
            &mut esp,
            super::transform::SeqForIcv {
                full: 4,
                esn: false,
            },
        )
        .unwrap();
    assert_eq!(open(&mut rx, &esp), Err(EspError::InvalidPadding));
    assert_eq!(rx.counters().malformed, 2);
}

#[test]
fn invalid_configurations_are_rejected() {
    let mut rng = SeededEntropy::new(0);
    let keys = EspKeys {
        encryption: &[0u8; 20],
        integrity: &[],
    };
    let mut c = config(EncryptionAlgorithm::Aes128Gcm16);
    c.replay_window = 16;
    assert!(matches!(
        EspSa::new(&c, keys, T0, &mut rng),
        Err(EspError::InvalidConfig(_))
    ));
    c.replay_window = 4096;
    assert!(EspSa::new(&c, keys, T0, &mut rng).is_ok());
    c.spi = 255;
    assert!(matches!(
        EspSa::new(&c, keys, T0, &mut rng),
        Err(EspError::InvalidConfig(_))
    ));
    c.spi = 0x1000;
    c.integrity = Some(IntegrityAlgorithm::HmacSha1_96);
    assert!(matches!(
        EspSa::new(&c, keys, T0, &mut rng),
        Err(EspError::InvalidConfig(_))
    ));
    let c = config(EncryptionAlgorithm::Aes256Cbc);
    let short = EspKeys {
        encryption: &[0u8; 32],
        integrity: &[0u8; 31],
    };
    assert_eq!(
        EspSa::new(&c, short, T0, &mut rng).err(),
        Some(EspError::InvalidKeyLength {
            key: KeyKind::Integrity,
            expected: 32,
            got: 31
        })
    );
}

#[test]
fn wrong_spi_is_rejected() {
    let (mut tx, _) = pair(&config(EncryptionAlgorithm::Aes128Gcm16));
    let mut other = config(EncryptionAlgorithm::Aes128Gcm16);
    other.spi = 0x9999;
    let (_, mut rx) = pair(&other);
    assert!(matches!(
        open(&mut rx, &seal(&mut tx, &ipv4_packet(40))),
        Err(EspError::WrongSpi {
            expected: 0x9999,
            ..
        })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// No input makes decapsulation panic, and garbage never opens.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), suite in 0usize..13, esn: bool, udp: bool) {
        let mut c = all_suites()[suite].clone();
        c.esn = esn;
        if udp {
            c.framing = Framing::UdpEncap { source_port: 4500, destination_port: 4500 };
        }
        let (_, mut rx) = pair(&c);
        let mut buf = bytes.clone();
        prop_assert!(rx.decapsulate_in_place(T0, &mut buf).is_err());
        // Arbitrary bytes with the right SPI get as far as the ICV check.
        let mut buf = bytes;
        let off = if udp { 8 } else { 0 };
        if buf.len() >= off + 8 {
            buf[off..off + 4].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        }
        prop_assert!(rx.decapsulate_in_place(T0, &mut buf).is_err());
    }

    /// Arbitrary inner packets round trip through every suite.
    #[test]
    fn arbitrary_inner_packets_round_trip(len in 20usize..1500, suite in 0usize..13, esn: bool) {
        let mut c = all_suites()[suite].clone();
        c.esn = esn;
        let (mut tx, mut rx) = pair(&c);
        let inner = ipv4_packet(len);
        let esp = seal(&mut tx, &inner);
        prop_assert_eq!(open(&mut rx, &esp).unwrap(), inner);
    }
}
