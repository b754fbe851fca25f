//! Two gateways exchange traffic through a pair of ESP SAs, with no network:
//! the customer gateway seals packets, the AWS side opens them, a replayed
//! and a tampered packet are rejected, and both ends print their counters.
//!
//! `cargo run --release --example esp_demo`

use vpn_core::entropy::OsEntropy;
use vpn_core::esp::{EncryptionAlgorithm, EspError, EspKeys, EspSa, EspSaConfig};
use vpn_core::time::Timestamp;
use vpn_examples::ipv4_udp_packet;

fn main() -> Result<(), EspError> {
    // In a real tunnel these keys come from IKE; here both ends share them.
    let mut rng = OsEntropy;
    let mut keymat = [0u8; 36];
    vpn_core::entropy::Entropy::fill(&mut rng, &mut keymat);
    let keys = EspKeys {
        encryption: &keymat,
        integrity: &[],
    };

    let mut config = EspSaConfig::new(0xc0ff_ee01, EncryptionAlgorithm::Aes256Gcm16);
    config.esn = true;
    let mut cgw = EspSa::new(&config, keys, Timestamp::ZERO, &mut rng)?;
    let mut vgw = EspSa::new(&config, keys, Timestamp::ZERO, &mut rng)?;
    println!(
        "SA {:#010x} {} esn={} replay window={}",
        config.spi, config.encryption, config.esn, config.replay_window
    );

    let mut buf = vec![0u8; 2048];
    let mut last = Vec::new();
    for (i, size) in [64usize, 512, 1400, 1400, 200].into_iter().enumerate() {
        let now = Timestamp::from_millis(i as u64 * 10);
        let inner = ipv4_udp_packet([10, 0, 0, 2], [172, 31, 0, 10], &vec![i as u8; size - 28]);
        let n = cgw.encapsulate(now, &inner, &mut buf)?;
        last = buf[..n].to_vec();
        let opened = vgw.decapsulate_in_place(now, &mut buf[..n])?;
        assert_eq!(&buf[opened.range()], &inner[..]);
        println!(
            "  packet {}: {:>4} inner bytes -> {:>4} ESP bytes, seq {} opened OK",
            i + 1,
            inner.len(),
            n,
            opened.sequence
        );
    }

    let now = Timestamp::from_millis(100);
    let mut replay = last.clone();
    match vgw.decapsulate_in_place(now, &mut replay) {
        Err(e) => println!("  replayed packet rejected: {e}"),
        Ok(_) => unreachable!("a replay must not open"),
    }
    let mut tampered = last;
    tampered[20] ^= 0x40;
    tampered[4..8].copy_from_slice(&100u32.to_be_bytes());
    match vgw.decapsulate_in_place(now, &mut tampered) {
        Err(e) => println!("  tampered packet rejected: {e}"),
        Ok(_) => unreachable!("a forgery must not open"),
    }

    println!("\n{:<22} {:>12} {:>12}", "counter", "CGW (out)", "VGW (in)");
    let (o, i) = (cgw.counters(), vgw.counters());
    for (name, a, b) in [
        ("packets", o.packets_out, i.packets_in),
        ("bytes", o.bytes_out, i.bytes_in),
        ("icv failures", o.icv_failures, i.icv_failures),
        ("replay drops", o.replay_drops(), i.replay_drops()),
        ("malformed", o.malformed, i.malformed),
    ] {
        println!("{name:<22} {a:>12} {b:>12}");
    }
    Ok(())
}
