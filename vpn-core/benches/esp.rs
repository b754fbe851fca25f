//! ESP throughput, measured side by side with its anchor in the same run:
//! raw ring AES-256-GCM `seal_in_place` + `open_in_place` for `aes256gcm16`,
//! raw RustCrypto AES-128-CBC + ring HMAC-SHA-256 for `aes128-sha256`.
//!
//! Run with `cargo bench -p vpn-core --bench esp`; the last lines print the
//! throughput ratio ESP / anchor per packet size (1.00 = as fast as the bare
//! primitive).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use criterion::{BenchmarkId, Criterion, Throughput};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hmac;
use vpn_core::entropy::SeededEntropy;
use vpn_core::esp::{EncryptionAlgorithm, EspKeys, EspSa, EspSaConfig, IntegrityAlgorithm};
use vpn_core::time::Timestamp;

const SIZES: [usize; 4] = [64, 512, 1400, 8192];

fn ipv4_inner(buf: &mut [u8], len: usize) {
    buf[0] = 0x45;
    buf[2..4].copy_from_slice(&(len as u16).to_be_bytes());
}

fn sa_pair(enc: EncryptionAlgorithm, integ: Option<IntegrityAlgorithm>) -> (EspSa, EspSa) {
    let mut config = EspSaConfig::new(0x1000, enc);
    config.integrity = integ;
    let ek = vec![7u8; enc.keymat_len()];
    let ik = vec![9u8; integ.map_or(0, |i| i.key_len())];
    let keys = EspKeys {
        encryption: &ek,
        integrity: &ik,
    };
    let mut rng = SeededEntropy::new(1);
    (
        EspSa::new(&config, keys, Timestamp::ZERO, &mut rng).unwrap(),
        EspSa::new(&config, keys, Timestamp::ZERO, &mut rng).unwrap(),
    )
}

fn bench_esp(
    c: &mut Criterion,
    name: &str,
    enc: EncryptionAlgorithm,
    integ: Option<IntegrityAlgorithm>,
) {
    let mut group = c.benchmark_group(name);
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let (mut tx, mut rx) = sa_pair(enc, integ);
        let mut buf = vec![0u8; tx.encapsulated_len(size)];
        group.bench_function(BenchmarkId::new("esp", size), |b| {
            b.iter(|| {
                ipv4_inner(&mut buf[tx.headroom()..], size);
                let n = tx
                    .encapsulate_in_place(Timestamp::ZERO, &mut buf, size)
                    .unwrap();
                let inner = rx
                    .decapsulate_in_place(Timestamp::ZERO, &mut buf[..n])
                    .unwrap();
                black_box(inner.len)
            })
        });
    }
    group.finish();
}

fn bench_ring_gcm(c: &mut Criterion) {
    let mut group = c.benchmark_group("aes256gcm16");
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0u8; size + 16];
        let mut counter = 0u64;
        group.bench_function(BenchmarkId::new("anchor", size), |b| {
            b.iter(|| {
                counter += 1;
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&counter.to_be_bytes());
                let aad = [0u8; 8];
                let (body, tag_space) = buf.split_at_mut(size);
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad),
                        body,
                    )
                    .unwrap();
                tag_space.copy_from_slice(tag.as_ref());
                let plain = key
                    .open_in_place(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad),
                        &mut buf,
                    )
                    .unwrap();
                black_box(plain.len())
            })
        });
    }
    group.finish();
}

fn bench_raw_cbc_hmac(c: &mut Criterion) {
    let mut group = c.benchmark_group("aes128-sha256");
    let mac = hmac::Key::new(hmac::HMAC_SHA256, &[9u8; 32]);
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let padded = size.div_ceil(16) * 16;
        let mut buf = vec![0u8; padded];
        group.bench_function(BenchmarkId::new("anchor", size), |b| {
            b.iter(|| {
                let iv = [1u8; 16];
                let enc = cbc::Encryptor::<aes::Aes128>::new(&[7u8; 16].into(), &iv.into());
                let (blocks, _) = aes::cipher::Block::<aes::Aes128>::slice_as_chunks_mut(&mut buf);
                let mut enc = enc;
                enc.encrypt_blocks(blocks);
                let tag = hmac::sign(&mac, &buf);
                hmac::verify(&mac, &buf, tag.as_ref()).unwrap();
                let mut dec = cbc::Decryptor::<aes::Aes128>::new(&[7u8; 16].into(), &iv.into());
                let (blocks, _) = aes::cipher::Block::<aes::Aes128>::slice_as_chunks_mut(&mut buf);
                dec.decrypt_blocks(blocks);
                black_box(buf[0])
            })
        });
    }
    group.finish();
}

/// Mean time of one benchmark, from criterion's saved estimates.
fn mean_ns(
    criterion_dir: &std::path::Path,
    group: &str,
    function: &str,
    size: usize,
) -> Option<f64> {
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

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
        .configure_from_args();
    bench_ring_gcm(&mut c);
    bench_esp(
        &mut c,
        "aes256gcm16",
        EncryptionAlgorithm::Aes256Gcm16,
        None,
    );
    bench_raw_cbc_hmac(&mut c);
    bench_esp(
        &mut c,
        "aes128-sha256",
        EncryptionAlgorithm::Aes128Cbc,
        Some(IntegrityAlgorithm::HmacSha256_128),
    );
    c.final_summary();

    let dir = criterion_dir();
    println!("\nESP encapsulate+decapsulate throughput relative to the anchor (same run):");
    println!(
        "{:<16} {:>6} {:>12} {:>12} {:>7}",
        "suite", "bytes", "esp ns", "anchor ns", "ratio"
    );
    for group in ["aes256gcm16", "aes128-sha256"] {
        for size in SIZES {
            match (
                mean_ns(&dir, group, "esp", size),
                mean_ns(&dir, group, "anchor", size),
            ) {
                (Some(esp), Some(anchor)) => println!(
                    "{group:<16} {size:>6} {esp:>12.1} {anchor:>12.1} {:>7.2}",
                    anchor / esp
                ),
                _ => println!("{group:<16} {size:>6} (not measured in this run)"),
            }
        }
    }
}
