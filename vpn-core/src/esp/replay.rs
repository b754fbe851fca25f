//! Anti-replay window (RFC 4303 §3.4.3) with extended sequence number
//! inference (RFC 4303 Appendix A).
//!
//! The bitmap is a ring of 64-bit words indexed by sequence number, as in
//! RFC 6479: advancing the window clears whole words instead of shifting bits,
//! so the cost of a packet does not grow with the window size.

/// Smallest and largest configurable window, in packets.
pub const MIN_REPLAY_WINDOW: u32 = 32;
pub const MAX_REPLAY_WINDOW: u32 = 65536;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayKind {
    /// Already received.
    Duplicate,
    /// Left of the window: too old to tell.
    TooOld,
}

#[derive(Clone, Debug)]
pub(crate) struct ReplayWindow {
    /// Window size W in packets.
    size: u32,
    /// Highest authenticated sequence number; 0 before the first packet.
    top: u64,
    /// Ring of bits, one per sequence number modulo `words.len() * 64`.
    words: Box<[u64]>,
}

impl ReplayWindow {
    /// `size` must already be validated to lie within the configurable range.
    pub(crate) fn new(size: u32) -> Self {
        // One spare word so that clearing the word that `top` enters never
        // clears bits still inside the window.
        let words = (size as usize).div_ceil(64) + 1;
        ReplayWindow {
            size,
            top: 0,
            words: vec![0u64; words.next_power_of_two()].into_boxed_slice(),
        }
    }

    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    /// Reconstructs the full sequence number from its low 32 bits. Without
    /// ESN the high half is zero; with ESN it is inferred from the window
    /// position (RFC 4303 Appendix A2.2). `None` means the packet cannot be
    /// placed (it would fall before sequence number 1 or beyond 2^64).
    pub(crate) fn infer(&self, seq_low: u32, esn: bool) -> Option<u64> {
        if !esn {
            return Some(u64::from(seq_low));
        }
        let w = self.size;
        let top_low = self.top as u32;
        let top_high = (self.top >> 32) as u32;
        let high = if top_low >= w - 1 {
            // Case A: the window lies within one 2^32 block.
            if seq_low >= top_low - (w - 1) {
                top_high
            } else {
                top_high.checked_add(1)?
            }
        } else {
            // Case B: the window spans two blocks.
            if seq_low >= top_low.wrapping_sub(w - 1) {
                top_high.checked_sub(1)?
            } else {
                top_high
            }
        };
        Some(u64::from(high) << 32 | u64::from(seq_low))
    }

    /// Checks a full sequence number without changing the window.
    pub(crate) fn check(&self, seq: u64) -> Result<(), ReplayKind> {
        if seq == 0 {
            return Err(ReplayKind::TooOld);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= u64::from(self.size) {
            return Err(ReplayKind::TooOld);
        }
        let (word, bit) = self.position(seq);
        if self.words[word] & bit != 0 {
            Err(ReplayKind::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Records an authenticated sequence number, advancing the window if it
    /// is the new highest. Call only after [`check`](Self::check) passed and
    /// the ICV verified.
    pub(crate) fn mark(&mut self, seq: u64) {
        if seq > self.top {
            let ring_words = self.words.len() as u64;
            let old_word = self.top / 64;
            let new_word = seq / 64;
            let advance = (new_word - old_word).min(ring_words);
            for i in 1..=advance {
                let w = ((new_word - advance + i) % ring_words) as usize;
                self.words[w] = 0;
            }
            self.top = seq;
        }
        let (word, bit) = self.position(seq);
        self.words[word] |= bit;
    }

    fn position(&self, seq: u64) -> (usize, u64) {
        let word = ((seq / 64) % self.words.len() as u64) as usize;
        (word, 1u64 << (seq % 64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn duplicates_and_old_packets_are_rejected() {
        let mut w = ReplayWindow::new(64);
        assert_eq!(w.check(0), Err(ReplayKind::TooOld));
        for seq in [1u64, 3, 2, 100] {
            assert_eq!(w.check(seq), Ok(()));
            w.mark(seq);
            assert_eq!(w.check(seq), Err(ReplayKind::Duplicate));
        }
        // 100 - 64 = 36 is the first sequence number outside the window.
        assert_eq!(w.check(36), Err(ReplayKind::TooOld));
        assert_eq!(w.check(37), Ok(()));
        // A jump far beyond the window forgets everything before it.
        w.mark(100_000);
        assert_eq!(w.check(99_999), Ok(()));
        assert_eq!(w.check(100_000 - 64), Err(ReplayKind::TooOld));
    }

    #[test]
    fn esn_inference_follows_appendix_a() {
        let mut w = ReplayWindow::new(1024);
        // Before anything arrives, only the first block is reachable.
        assert_eq!(w.infer(5, true), Some(5));
        assert_eq!(w.infer(u32::MAX, true), None);
        // Case A: top well inside block 0; a small low half means block 1.
        w.mark(0xFFFF_FF00);
        assert_eq!(w.infer(0xFFFF_FE00, true), Some(0xFFFF_FE00));
        assert_eq!(w.infer(3, true), Some(0x1_0000_0003));
        // Case B: top just past a block boundary; large low halves are the old block.
        w.mark(0x1_0000_0010);
        assert_eq!(w.infer(0xFFFF_FFF0, true), Some(0xFFFF_FFF0));
        assert_eq!(w.infer(0x20, true), Some(0x1_0000_0020));
        assert_eq!(w.check(0xFFFF_FF00), Err(ReplayKind::Duplicate));
        // Without ESN the high half is always zero.
        assert_eq!(w.infer(3, false), Some(3));
    }

    proptest! {
        /// The ring bitmap agrees with a naive set-based model of the window.
        #[test]
        fn ring_matches_naive_model(size in 32u32..300, seqs in proptest::collection::vec(1u64..3000, 1..400)) {
            let mut w = ReplayWindow::new(size);
            let mut seen = std::collections::BTreeSet::new();
            let mut top = 0u64;
            for seq in seqs {
                let expected = if seq > top {
                    Ok(())
                } else if top - seq >= u64::from(size) {
                    Err(ReplayKind::TooOld)
                } else if seen.contains(&seq) {
                    Err(ReplayKind::Duplicate)
                } else {
                    Ok(())
                };
                prop_assert_eq!(w.check(seq), expected);
                if expected.is_ok() {
                    w.mark(seq);
                    seen.insert(seq);
                    top = top.max(seq);
                }
            }
        }
    }
}
