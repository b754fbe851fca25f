//! ESP throughput, measured side by side with its anchor in the same run:
//! raw ring AES-256-GCM `seal_in_place` + `open_in_place` for `aes256gcm16`,
//! raw RustCrypto AES-128-CBC + ring HMAC-SHA-256 for `aes128-sha256`.
//!
//! Run with `cargo bench -p vpn-core --bench esp`. After criterion's own
//! report it prints the throughput ratio ESP / anchor per packet size (1.00 =
//! as fast as the bare primitive) twice: from criterion's means, and from an
//! interleaved pass that alternates short batches of anchor and ESP and takes
//! the median ratio, which shared, noisy machines disturb far less.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use criterion::{BenchmarkId, Criterion, Throughput};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hmac;
use vpn_core::entropy::SeededEntropy;
use vpn_core::esp::{EncryptionAlgorithm, EspKeys, EspSa, EspSaConfig, IntegrityAlgorithm};
use vpn_core::time::Timestamp;

const SIZES: [usize; 4] = [64, 512, 1400, 8192];

/// A suite under test: its name, its ESP algorithms and its anchor.
struct Suite {
    name: &'static str,
    encryption: EncryptionAlgorithm,
    integrity: Option<IntegrityAlgorithm>,
    anchor: fn(usize) -> Box<dyn FnMut()>,
}

const SUITES: [Suite; 2] = [
    Suite {
        name: "aes256gcm16",
        encryption: EncryptionAlgorithm::Aes256Gcm16,
        integrity: None,
        anchor: ring_gcm_round_trip,
    },
    Suite {
        name: "aes128-sha256",
        encryption: EncryptionAlgorithm::Aes128Cbc,
        integrity: Some(IntegrityAlgorithm::HmacSha256_128),
        anchor: cbc_hmac_round_trip,
    },
];

/// Encapsulates and decapsulates one inner packet of `size` bytes in place.
fn esp_round_trip(suite: &Suite, size: usize) -> Box<dyn FnMut()> {
    let mut config = EspSaConfig::new(0x1000, suite.encryption);
    config.integrity = suite.integrity;
    let ek = vec![7u8; suite.encryption.keymat_len()];
    let ik = vec![9u8; suite.integrity.map_or(0, |i| i.key_len())];
    let keys = EspKeys {
        encryption: &ek,
        integrity: &ik,
    };
    let mut rng = SeededEntropy::new(1);
    let mut tx = EspSa::new(&config, keys, Timestamp::ZERO, &mut rng).unwrap();
    let mut rx = EspSa::new(&config, keys, Timestamp::ZERO, &mut rng).unwrap();
    let mut buf = vec![0u8; tx.encapsulated_len(size)];
    let headroom = tx.headroom();
    Box::new(move || {
        let inner = &mut buf[headroom..];
        inner[0] = 0x45;
        inner[2..4].copy_from_slice(&(size as u16).to_be_bytes());
        let n = tx
            .encapsulate_in_place(Timestamp::ZERO, &mut buf, size)
            .unwrap();
        let opened = rx
            .decapsulate_in_place(Timestamp::ZERO, &mut buf[..n])
            .unwrap();
        black_box(opened.len);
    })
}

/// Raw ring AES-256-GCM seal and open of `size` bytes with an 8-byte AAD.
fn ring_gcm_round_trip(size: usize) -> Box<dyn FnMut()> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
    let mut buf = vec![0u8; size + 16];
    let mut counter = 0u64;
    Box::new(move || {
        counter += 1;
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&counter.to_be_bytes());
        let aad = [0u8; 8];
        let (body, tag_space) = buf.split_at_mut(size);
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), body)
            .unwrap();
        tag_space.copy_from_slice(tag.as_ref());
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .unwrap();
        black_box(plain.len());
    })
}

/// Raw AES-128-CBC encrypt, HMAC-SHA-256 sign and verify, CBC decrypt.
fn cbc_hmac_round_trip(size: usize) -> Box<dyn FnMut()> {
    let mac = hmac::Key::new(hmac::HMAC_SHA256, &[9u8; 32]);
    let mut buf = vec![0u8; size.div_ceil(16) * 16];
    Box::new(move || {
        let iv = [1u8; 16];
        let mut enc = cbc::Encryptor::<aes::Aes128>::new(&[7u8; 16].into(), &iv.into());
        let (blocks, _) = aes::cipher::Block::<aes::Aes128>::slice_as_chunks_mut(&mut buf);
        enc.encrypt_blocks(blocks);
        let tag = hmac::sign(&mac, &buf);
        hmac::verify(&mac, &buf, tag.as_ref()).unwrap();
        let mut dec = cbc::Decryptor::<aes::Aes128>::new(&[7u8; 16].into(), &iv.into());
        let (blocks, _) = aes::cipher::Block::<aes::Aes128>::slice_as_chunks_mut(&mut buf);
        dec.decrypt_blocks(blocks);
        black_box(buf[0]);
    })
}

fn bench_suite(c: &mut Criterion, suite: &Suite) {
    let mut group = c.benchmark_group(suite.name);
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut anchor = (suite.anchor)(size);
        group.bench_function(BenchmarkId::new("anchor", size), |b| b.iter(&mut anchor));
        let mut esp = esp_round_trip(suite, size);
        group.bench_function(BenchmarkId::new("esp", size), |b| b.iter(&mut esp));
    }
    group.finish();
}

/// Mean time of one benchmark, from criterion's saved estimates.
fn mean_ns(criterion_dir: &Path, group: &str, function: &str, size: usize) -> Option<f64> {
    let path = criterion_dir
        .join(group)
        .join(function)
        .join(size.to_string())
        .join("new/estimates.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

fn criterion_dir() -> PathBuf {
    if let Ok(home) = std::env::var("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("criterion")
}

/// Time of `iterations` calls.
fn time_batch(f: &mut dyn FnMut(), iterations: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed()
}

/// Median over alternating batches of anchor time / ESP time.
fn interleaved_ratio(anchor: &mut dyn FnMut(), esp: &mut dyn FnMut()) -> f64 {
    // Size batches to about a millisecond of anchor work.
    let per_call = time_batch(anchor, 1000).as_secs_f64() / 1000.0;
    let iterations = ((1e-3 / per_call) as u32).clamp(10, 100_000);
    let mut ratios: Vec<f64> = (0..41)
        .map(|_| {
            let a = time_batch(anchor, iterations).as_secs_f64();
            let e = time_batch(esp, iterations).as_secs_f64();
            a / e
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
        .configure_from_args();
    for suite in &SUITES {
        bench_suite(&mut c, suite);
    }
    c.final_summary();

    let dir = criterion_dir();
    println!("\nESP encapsulate+decapsulate throughput relative to the anchor (same run):");
    println!(
        "{:<16} {:>6} {:>10} {:>10} {:>15} {:>12}",
        "suite", "bytes", "esp ns", "anchor ns", "criterion ratio", "interleaved"
    );
    for suite in &SUITES {
        for size in SIZES {
            let interleaved = interleaved_ratio(
                &mut *(suite.anchor)(size),
                &mut *esp_round_trip(suite, size),
            );
            match (
                mean_ns(&dir, suite.name, "esp", size),
                mean_ns(&dir, suite.name, "anchor", size),
            ) {
                (Some(esp), Some(anchor)) => println!(
                    "{:<16} {size:>6} {esp:>10.1} {anchor:>10.1} {:>15.2} {interleaved:>12.2}",
                    suite.name,
                    anchor / esp
                ),
                _ => println!(
                    "{:<16} {size:>6} {:>10} {:>10} {:>15} {interleaved:>12.2}",
                    suite.name, "-", "-", "-"
                ),
            }
        }
    }
}
