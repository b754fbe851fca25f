//! Injected randomness.
//!
//! SPIs, nonces, IV seeds and timer jitter all come from an [`Entropy`] source
//! that the caller hands in. Production uses [`OsEntropy`] (the operating
//! system's CSPRNG); tests and simulations use [`SeededEntropy`], so a run with
//! the same seed replays byte for byte.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// A source of cryptographically strong random bytes.
pub trait Entropy {
    /// Fills `dest` entirely with random bytes.
    fn fill(&mut self, dest: &mut [u8]);

    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill(&mut b);
        u32::from_be_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_be_bytes(b)
    }
}

impl<E: Entropy + ?Sized> Entropy for &mut E {
    fn fill(&mut self, dest: &mut [u8]) {
        (**self).fill(dest)
    }
}

/// The operating system's CSPRNG (`getrandom`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, dest: &mut [u8]) {
        // The OS CSPRNG failing is not an input error but a broken platform;
        // there is no safe way to continue without randomness.
        rand_core::OsRng.fill_bytes(dest)
    }
}

/// A deterministic ChaCha20 stream: the same seed gives the same bytes.
/// For tests and simulations only.
#[derive(Debug, Clone)]
pub struct SeededEntropy(ChaCha20Rng);

impl SeededEntropy {
    pub fn new(seed: u64) -> Self {
        SeededEntropy(ChaCha20Rng::seed_from_u64(seed))
    }

    /// A ChaCha20 stream keyed with 256 bits drawn from another source: a
    /// deterministic random bit generator an object can own when it was
    /// handed entropy only by reference.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SeededEntropy(ChaCha20Rng::from_seed(seed))
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_different_seed_different_stream() {
        let (mut a, mut b, mut c) = (
            SeededEntropy::new(7),
            SeededEntropy::new(7),
            SeededEntropy::new(8),
        );
        let (mut x, mut y, mut z) = ([0u8; 32], [0u8; 32], [0u8; 32]);
        a.fill(&mut x);
        b.fill(&mut y);
        c.fill(&mut z);
        assert_eq!(x, y);
        assert_ne!(x, z);
    }

    #[test]
    fn os_entropy_is_not_constant() {
        let mut os = OsEntropy;
        assert_ne!(os.next_u64(), os.next_u64());
    }
}
