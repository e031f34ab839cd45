//! The hot loops of copystack over real memory: a word copy, a fill, and
//! the bitmap walk of `adjustpointers` (runtime/stack.go).
//!
//! They work on slices of atomic words from [`crate::os::Arena::words`] or
//! [`crate::os::Arena::words32`] (8-byte words for 64-bit profiles, 4-byte
//! words for 32-bit ones), with relaxed loads and stores that compile to
//! plain moves. A pointer map is packed as `u64` words, bit `i` of word
//! `i / 64` for slot `i`, and the walk visits only the set bits
//! (`trailing_zeros`, then clear the lowest bit), so a frame without
//! pointers costs one test of zero per 64 slots.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A run of stack words, 8 or 4 bytes each, indexed from 0.
pub(crate) trait Words: Sized + Copy {
    /// Words in the run.
    fn len(&self) -> usize;
    /// Relaxed load of word `i` (`i < len`), widened.
    fn ld(&self, i: usize) -> u64;
    /// Relaxed store of the low bits of `v` into word `i`.
    fn st(&self, i: usize, v: u64);
    /// Compare-and-swap of word `i`; true if it stored.
    fn cas(&self, i: usize, old: u64, new: u64) -> bool;
    /// Words `[start, start + n)`, if they are in the run.
    fn sub(&self, start: usize, n: usize) -> Option<Self>;
}

/// 8-byte words: a slice of the arena's atomics.
#[derive(Copy, Clone)]
pub(crate) struct W64<'a>(pub &'a [AtomicU64]);

impl Words for W64<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.0.len()
    }
    #[inline(always)]
    fn ld(&self, i: usize) -> u64 {
        self.0[i].load(Relaxed)
    }
    #[inline(always)]
    fn st(&self, i: usize, v: u64) {
        self.0[i].store(v, Relaxed)
    }
    #[inline(always)]
    fn cas(&self, i: usize, old: u64, new: u64) -> bool {
        self.0[i]
            .compare_exchange(old, new, Relaxed, Relaxed)
            .is_ok()
    }
    #[inline(always)]
    fn sub(&self, start: usize, n: usize) -> Option<Self> {
        self.0.get(start..start.checked_add(n)?).map(W64)
    }
}

/// 4-byte words (32-bit profiles), each half of one of the arena's 8-byte
/// atomics: every access is an 8-byte atomic, so no access of one size
/// overlaps one of another (the allocator's links are 8-byte words). A
/// store replaces its half with a compare-and-swap loop that keeps the
/// other half.
#[derive(Copy, Clone)]
pub(crate) struct W32<'a> {
    /// The 8-byte words covering the run.
    pub words: &'a [AtomicU64],
    /// Index of the first 4-byte word in `words` (0 or 1, or more).
    pub start: usize,
    /// 4-byte words in the run.
    pub len: usize,
}

impl W32<'_> {
    #[inline(always)]
    fn at(&self, i: usize) -> (&AtomicU64, u32) {
        let j = self.start + i;
        let shift = if cfg!(target_endian = "little") {
            (j % 2) as u32 * 32
        } else {
            (1 - j % 2) as u32 * 32
        };
        (&self.words[j / 2], shift)
    }
}

impl Words for W32<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }
    #[inline(always)]
    fn ld(&self, i: usize) -> u64 {
        assert!(i < self.len);
        let (w, sh) = self.at(i);
        (w.load(Relaxed) >> sh) & 0xffff_ffff
    }
    #[inline(always)]
    fn st(&self, i: usize, v: u64) {
        assert!(i < self.len);
        let (w, sh) = self.at(i);
        let mask = 0xffff_ffffu64 << sh;
        let _ = w.fetch_update(Relaxed, Relaxed, |old| {
            Some((old & !mask) | ((v & 0xffff_ffff) << sh))
        });
    }
    #[inline(always)]
    fn cas(&self, i: usize, old: u64, new: u64) -> bool {
        assert!(i < self.len);
        let (w, sh) = self.at(i);
        let mask = 0xffff_ffffu64 << sh;
        w.fetch_update(Relaxed, Relaxed, |cur| {
            ((cur & mask) >> sh == old & 0xffff_ffff)
                .then_some((cur & !mask) | ((new & 0xffff_ffff) << sh))
        })
        .is_ok()
    }
    #[inline(always)]
    fn sub(&self, start: usize, n: usize) -> Option<Self> {
        (start.checked_add(n)? <= self.len).then_some(W32 {
            words: self.words,
            start: self.start + start,
            len: n,
        })
    }
}

/// Packs a bool map into words, bit `i` of word `i / 64`.
pub(crate) fn pack(bits: &[bool]) -> Vec<u64> {
    let mut out = vec![0u64; bits.len().div_ceil(64)];
    for (i, &b) in bits.iter().enumerate() {
        if b {
            out[i / 64] |= 1 << (i % 64);
        }
    }
    out
}

/// Copies `src` into `dst` word by word (they never overlap: two stacks).
#[inline]
pub(crate) fn copy<W: Words>(src: W, dst: W) {
    for i in 0..src.len().min(dst.len()) {
        dst.st(i, src.ld(i));
    }
}

/// 8-byte words copied as a slice loop (the bounds checks hoisted).
#[inline]
pub(crate) fn copy64(src: W64<'_>, dst: W64<'_>) {
    for (d, s) in dst.0.iter().zip(src.0) {
        d.store(s.load(Relaxed), Relaxed);
    }
}

/// Stores `v` in every word.
pub(crate) fn fill<W: Words>(dst: W, v: u64) {
    for i in 0..dst.len() {
        dst.st(i, v);
    }
}

/// The range an adjustment moves: values in `[lo, hi)` get `delta` added
/// (modulo the word size, `mask`).
#[derive(Copy, Clone, Debug)]
pub(crate) struct Move {
    pub lo: u64,
    pub hi: u64,
    pub delta: u64,
    pub mask: u64,
}

impl Move {
    /// Go: `adjustpointer` on word `i`.
    #[inline(always)]
    pub(crate) fn one<W: Words>(&self, w: W, i: usize) {
        let v = w.ld(i);
        if self.lo <= v && v < self.hi {
            w.st(i, v.wrapping_add(self.delta) & self.mask);
        }
    }

    /// The same with a compare-and-swap, for words a concurrent sender may
    /// write (below `sghi`): retried until the word is outside the old
    /// stack or swapped.
    #[inline(always)]
    fn one_cas<W: Words>(&self, w: W, i: usize) {
        loop {
            let v = w.ld(i);
            if !(self.lo <= v && v < self.hi) {
                return;
            }
            if w.cas(i, v, v.wrapping_add(self.delta) & self.mask) {
                return;
            }
        }
    }

    /// Go: `adjustpointers`: adjusts the words of `words` whose bit is set
    /// in `bits` (bits past the end of `words` are ignored).
    #[inline]
    pub(crate) fn bits<W: Words>(&self, words: W, bits: &[u64], cas: bool) {
        let n = words.len();
        // Mutant: the walk counts its bitmap words by floor division of the
        // map's length, so it never visits the last, partial word (a map of
        // fewer than 64 slots is not adjusted at all); the junk check still
        // sees every word.
        #[cfg(gostack_mutant = "adjust_partial_word_skipped")]
        let bits = &bits[..bits.len().min(n / 64)];
        for (wi, &b) in bits.iter().enumerate() {
            let mut m = b;
            while m != 0 {
                let i = wi * 64 + m.trailing_zeros() as usize;
                m &= m - 1;
                if i < n {
                    if cas {
                        self.one_cas(words, i);
                    } else {
                        self.one(words, i);
                    }
                }
            }
        }
    }
}

/// Whether a word whose bit is set holds a small non-zero value (below
/// `min_legal`): adjustpointers' "invalid pointer found on stack".
#[inline]
pub(crate) fn has_junk<W: Words>(words: W, bits: &[u64], min_legal: u64) -> bool {
    let n = words.len();
    for (wi, &b) in bits.iter().enumerate() {
        let mut m = b;
        while m != 0 {
            let i = wi * 64 + m.trailing_zeros() as usize;
            m &= m - 1;
            if i < n {
                let v = words.ld(i);
                if 0 < v && v < min_legal {
                    return true;
                }
            }
        }
    }
    false
}

/// The parameters of [`adjust_words`]: one `adjustpointers` over a run
/// of words outside any stack.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct WordAdjust {
    /// 8-byte words (64-bit profiles) when true, else 4-byte words.
    pub wide: bool,
    /// 4-byte words only: the run starts in the upper half of its first
    /// 8-byte atomic when odd (the alignment a 32-bit stack word can have).
    pub half: usize,
    /// The old stack: words in `[lo, hi)` are moved.
    pub old_lo: u64,
    /// End of the old stack.
    pub old_hi: u64,
    /// Added to every moved word (modulo the word size).
    pub delta: u64,
    /// With `Some(min)`, a marked non-zero word below `min` is "invalid
    /// pointer found on stack" (minLegalPointer; locals only in Go).
    pub min_legal: Option<u64>,
    /// A word index: a map that starts below it is adjusted with
    /// compare-and-swap, as copystack does below `sghi`.
    pub sghi: usize,
}

/// Runs the word-at-a-time walk of copystack (the packed bitmap,
/// `Move::bits` on a sub-run of atomic words, `has_junk` first, CAS
/// below `sghi`) on a copy of `words` (cut to the word size) and writes
/// the result back; the map `bits` starts at word `start` and its bits
/// past the end of `words` are ignored. On the junk throw `words` are
/// unchanged. For comparing the walk with the spec's
/// `State::adjust_pointer_words`.
pub fn adjust_words(
    a: &WordAdjust,
    words: &mut [u64],
    start: usize,
    bits: &[bool],
) -> Result<(), gostack_spec::Throw> {
    let mask = if a.wide {
        u64::MAX
    } else {
        u64::from(u32::MAX)
    };
    let mv = Move {
        lo: a.old_lo,
        hi: a.old_hi,
        delta: a.delta,
        mask,
    };
    let packed = pack(bits);
    let start = start.min(words.len());
    let n = bits.len().min(words.len() - start);
    let cas = start < a.sghi;
    let junk = |bad: bool| -> Result<(), gostack_spec::Throw> {
        if bad {
            Err(gostack_spec::GoThrow::InvalidPointerOnStack.into())
        } else {
            Ok(())
        }
    };
    if a.wide {
        let cells: Vec<AtomicU64> = words.iter().map(|&w| AtomicU64::new(w)).collect();
        let run = W64(&cells);
        let map = run.sub(start, n).expect("start + n <= len");
        if let Some(min) = a.min_legal {
            junk(has_junk(map, &packed, min))?;
        }
        mv.bits(map, &packed, cas);
        for (w, c) in words.iter_mut().zip(&cells) {
            *w = c.load(Relaxed);
        }
    } else {
        // The halves around the run hold a canary that must survive.
        const CANARY: u64 = 0xa5a5_5a5a;
        let half = a.half % 2;
        let cells: Vec<AtomicU64> = (0..(half + words.len()).div_ceil(2))
            .map(|_| AtomicU64::new(CANARY << 32 | CANARY))
            .collect();
        let run = W32 {
            words: &cells,
            start: half,
            len: words.len(),
        };
        for (i, &w) in words.iter().enumerate() {
            run.st(i, w);
        }
        let map = run.sub(start, n).expect("start + n <= len");
        if let Some(min) = a.min_legal {
            junk(has_junk(map, &packed, min))?;
        }
        mv.bits(map, &packed, cas);
        for (i, w) in words.iter_mut().enumerate() {
            *w = run.ld(i);
        }
        let whole = W32 {
            words: &cells,
            start: 0,
            len: 2 * cells.len(),
        };
        for j in (0..half).chain(half + words.len()..whole.len) {
            assert_eq!(whole.ld(j), CANARY, "the walk wrote outside its run");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(v: &[u64]) -> Vec<AtomicU64> {
        v.iter().map(|&x| AtomicU64::new(x)).collect()
    }

    #[test]
    fn pack_sets_the_right_bits() {
        let mut m = vec![false; 130];
        m[0] = true;
        m[63] = true;
        m[64] = true;
        m[129] = true;
        assert_eq!(pack(&m), vec![1 | 1 << 63, 1, 2]);
        assert!(pack(&[]).is_empty());
    }

    #[test]
    fn bits_adjust_only_marked_words_in_range() {
        let v = words(&[0x1000, 0x1800, 0x3000, 7, 0x1ff8]);
        let w = W64(&v);
        let mv = Move {
            lo: 0x1000,
            hi: 0x2000,
            delta: 0x10_0000,
            mask: u64::MAX,
        };
        // Bits 0, 2, 3, 4 and a bit past the end.
        mv.bits(w, &[0b1_1101 | 1 << 40], false);
        let got: Vec<u64> = (0..5).map(|i| w.ld(i)).collect();
        assert_eq!(got, vec![0x10_1000, 0x1800, 0x3000, 7, 0x10_1ff8]);
        mv.bits(w, &[0b10], true);
        assert_eq!(w.ld(1), 0x10_1800);
        assert!(has_junk(w, &[0b1000], 4096));
        assert!(!has_junk(w, &[0b0111], 4096));
        assert!(w.sub(3, 3).is_none());
        assert_eq!(w.sub(3, 2).unwrap().ld(0), 7);
    }

    #[test]
    fn four_byte_words_are_halves_and_wrap_at_32_bits() {
        let v = words(&[0, 0]);
        let w = W32 {
            words: &v,
            start: 1,
            len: 3,
        };
        w.st(0, 0x1000_0100);
        w.st(1, 5);
        w.st(2, 0xdead_beef_0000_0001);
        assert_eq!(v[0].load(Relaxed) >> 32, 0x1000_0100);
        assert_eq!(v[0].load(Relaxed) & 0xffff_ffff, 0);
        assert_eq!((w.ld(1), w.ld(2)), (5, 1));
        let mv = Move {
            lo: 0x1000_0000,
            hi: 0x1000_0800,
            delta: 0u64.wrapping_sub(0x100),
            mask: u64::from(u32::MAX),
        };
        mv.bits(w, &[0b11], true);
        assert_eq!((w.ld(0), w.ld(1)), (0x1000_0000, 5));
        assert!(!w.cas(1, 4, 9));
        assert!(w.cas(1, 5, 9));
        let dv = words(&[0, 0]);
        let dst = W32 {
            words: &dv,
            start: 0,
            len: 4,
        };
        copy(w, dst);
        assert_eq!((dst.ld(0), dst.ld(1), dst.ld(2)), (0x1000_0000, 9, 1));
        fill(dst, 0xfcfc_fcfc);
        assert_eq!(dv[1].load(Relaxed), 0xfcfc_fcfc_fcfc_fcfc);
        assert!(w.sub(1, 2).is_some() && w.sub(2, 2).is_none());
    }

    #[test]
    fn adjust_words_moves_marked_words_and_keeps_neighbours() {
        let mut a = WordAdjust {
            wide: true,
            half: 0,
            old_lo: 0x1000,
            old_hi: 0x2000,
            delta: 0x100,
            min_legal: Some(4096),
            sghi: 0,
        };
        let mut w = vec![0x1000, 0x1000, 0x1fff, 0x2000];
        adjust_words(&a, &mut w, 1, &[true, false, true, true, true]).unwrap();
        assert_eq!(w, vec![0x1000, 0x1100, 0x1fff, 0x2000]);
        let mut j = vec![0x1000, 3];
        assert!(adjust_words(&a, &mut j, 0, &[true, true]).is_err());
        assert_eq!(j, vec![0x1000, 3]);
        a.wide = false;
        a.half = 1;
        a.sghi = 5;
        a.delta = 0u64.wrapping_sub(0x2000);
        let mut v = vec![0x1_0000_1000, 0x1004, 9];
        adjust_words(&a, &mut v, 0, &[true, true]).unwrap();
        assert_eq!(v, vec![0xffff_f000, 0xffff_f004, 9]);
    }
}
