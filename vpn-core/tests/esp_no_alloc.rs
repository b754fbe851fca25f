//! Proves the ESP data path is zero-allocation: after an SA exists, sealing
//! and opening packets in place never touch the heap.
//!
//! A counting global allocator records every allocation made on the current
//! thread while a measured closure runs; this file holds a single test so no
//! other test thread can allocate concurrently.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use vpn_core::entropy::SeededEntropy;
use vpn_core::esp::{EncryptionAlgorithm, EspKeys, EspSa, EspSaConfig, IntegrityAlgorithm};
use vpn_core::time::Timestamp;

struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_during(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn steady_state_esp_allocates_nothing() {
    // The measurement works: a Vec allocation is seen.
    assert_eq!(
        allocations_during(|| drop(std::hint::black_box(vec![1u8; 64]))),
        1
    );

    let suites = [
        (EncryptionAlgorithm::Aes256Gcm16, None),
        (EncryptionAlgorithm::Aes128Gcm8, None),
        (EncryptionAlgorithm::ChaCha20Poly1305, None),
        (
            EncryptionAlgorithm::Aes128Cbc,
            Some(IntegrityAlgorithm::HmacSha256_128),
        ),
    ];
    for (enc, integ) in suites {
        let mut config = EspSaConfig::new(0x4242, enc);
        config.integrity = integ;
        config.esn = true;
        config.replay_window = 4096;
        config.lifetimes.soft.packets = Some(500);
        let enc_key = vec![3u8; enc.keymat_len()];
        let integ_key = vec![5u8; integ.map_or(0, |i| i.key_len())];
        let keys = EspKeys {
            encryption: &enc_key,
            integrity: &integ_key,
        };
        let mut rng = SeededEntropy::new(9);
        let mut tx = EspSa::new(&config, keys, Timestamp::ZERO, &mut rng).unwrap();
        let mut rx = EspSa::new(&config, keys, Timestamp::ZERO, &mut rng).unwrap();

        let mut buf = vec![0u8; 2048];
        let inner_len = 1400;
        let count = allocations_during(|| {
            for i in 0..1000u64 {
                let now = Timestamp::from_millis(i);
                let h = tx.headroom();
                buf[h] = 0x45;
                buf[h + 2..h + 4].copy_from_slice(&(inner_len as u16).to_be_bytes());
                let n = tx.encapsulate_in_place(now, &mut buf, inner_len).unwrap();
                let inner = rx.decapsulate_in_place(now, &mut buf[..n]).unwrap();
                assert_eq!(inner.len, inner_len);
                // Replays and forgeries are rejected without allocating either.
                let n2 = tx.encapsulate_in_place(now, &mut buf, inner_len).unwrap();
                buf[n2 - 1] ^= 1;
                assert!(rx.decapsulate_in_place(now, &mut buf[..n2]).is_err());
                // Lifetime events are queued without allocating.
                while tx.poll_event().is_some() {}
            }
        });
        assert_eq!(count, 0, "{enc:?}: the data path allocated");
        assert_eq!(rx.counters().packets_in, 1000);
        assert_eq!(rx.counters().icv_failures, 1000);
    }
}
