//! The page heap's free-page index: a bitmap of free pages with a summary
//! per 512-page chunk, searched in address order (Go's `pageAlloc`,
//! runtime/mpagealloc.go, with one summary level).
//!
//! Each chunk (`pallocChunkPages` = 512 pages, 4 MiB) has eight 64-bit words
//! of bits (1 = free) and a summary `(start, max, end)` (`pallocSum`): the
//! free run at its start, the longest free run in it, the free run at its
//! end. First fit walks the summaries, carrying the free run that reaches
//! the end of the previous chunk: a chunk whose start extends the carry far
//! enough answers at once, a chunk whose `max` is too small is skipped
//! without looking at its bits, and only a chunk that holds a fit is
//! searched word by word (runs of free bits found with `trailing_zeros`).
//!
//! The result is the spec's first fit over coalesced free runs: the lowest
//! page `p` with `[p, p+n)` free is always the start of a maximal run.
//!
//! The heap grows by whole chunks (`mheap.grow`), exactly as the spec.

/// Pages per chunk (`pallocChunkPages`).
pub const CHUNK_PAGES: u64 = 512;
const WORDS: usize = (CHUNK_PAGES / 64) as usize;

/// A chunk's summary (`pallocSum`): free pages at its start, the longest
/// free run, free pages at its end.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Sum {
    /// Free pages from the chunk's first page up.
    pub start: u16,
    /// The longest free run.
    pub max: u16,
    /// Free pages from the chunk's last page down.
    pub end: u16,
}

/// Free pages of the mapped part of the arena.
#[derive(Clone, Debug, Default)]
pub struct FreePages {
    /// Per mapped chunk, its bits: bit `i` of word `w` is page `w*64+i`.
    bits: Vec<[u64; WORDS]>,
    /// Per mapped chunk, its summary.
    sums: Vec<Sum>,
}

fn summarize(words: &[u64; WORDS]) -> Sum {
    let (mut start, mut max, mut run) = (0u64, 0u64, 0u64);
    let mut at_start = true;
    for &w in words {
        if w == u64::MAX {
            run += 64;
            continue;
        }
        let mut b = 0u32;
        while b < 64 {
            let rest = w >> b;
            if rest & 1 == 1 {
                let ones = (!rest).trailing_zeros().min(64 - b);
                run += u64::from(ones);
                b += ones;
            } else {
                if at_start {
                    start = run;
                    at_start = false;
                }
                max = max.max(run);
                run = 0;
                b += rest.trailing_zeros().min(64 - b);
            }
        }
    }
    if at_start {
        start = run;
    }
    max = max.max(run);
    Sum {
        start: start as u16,
        max: max as u16,
        end: run as u16,
    }
}

/// The first `i` at which `n` free bits start in the chunk, if any.
fn find_in_chunk(words: &[u64; WORDS], n: u64) -> Option<u64> {
    let (mut run, mut run_start) = (0u64, 0u64);
    for (wi, &w) in words.iter().enumerate() {
        let base = wi as u64 * 64;
        if w == u64::MAX {
            if run == 0 {
                run_start = base;
            }
            run += 64;
            if run >= n {
                return Some(run_start);
            }
            continue;
        }
        let mut b = 0u32;
        while b < 64 {
            let rest = w >> b;
            if rest & 1 == 1 {
                let ones = (!rest).trailing_zeros().min(64 - b);
                if run == 0 {
                    run_start = base + u64::from(b);
                }
                run += u64::from(ones);
                if run >= n {
                    return Some(run_start);
                }
                b += ones;
            } else {
                run = 0;
                b += rest.trailing_zeros().min(64 - b);
            }
        }
    }
    None
}

impl FreePages {
    /// Pages covered (mapped).
    pub fn pages(&self) -> u64 {
        self.bits.len() as u64 * CHUNK_PAGES
    }

    /// Adds `chunks` fully free chunks at the end (`mheap.grow`).
    pub fn grow(&mut self, chunks: u64) {
        for _ in 0..chunks {
            self.bits.push([u64::MAX; WORDS]);
            self.sums.push(Sum {
                start: CHUNK_PAGES as u16,
                max: CHUNK_PAGES as u16,
                end: CHUNK_PAGES as u16,
            });
        }
    }

    /// Drops the last `chunks` chunks: undoes a [`FreePages::grow`] whose
    /// allocation failed afterwards.
    pub fn shrink(&mut self, chunks: u64) {
        let keep = self.bits.len().saturating_sub(chunks as usize);
        self.bits.truncate(keep);
        self.sums.truncate(keep);
    }

    /// Bytes of the bitmap and summaries (their capacity).
    pub fn metadata_bytes(&self) -> u64 {
        (self.bits.capacity() * std::mem::size_of::<[u64; WORDS]>()
            + self.sums.capacity() * std::mem::size_of::<Sum>()) as u64
    }

    /// The lowest page `p` with `[p, p+n)` free (`pageAlloc.find`).
    pub fn find(&self, n: u64) -> Option<u64> {
        if n == 0 {
            return None;
        }
        let mut carry = 0u64;
        for (ci, s) in self.sums.iter().enumerate() {
            let first = ci as u64 * CHUNK_PAGES;
            if carry + u64::from(s.start) >= n {
                return Some(first - carry);
            }
            if u64::from(s.max) >= n {
                return find_in_chunk(&self.bits[ci], n).map(|i| first + i);
            }
            carry = if u64::from(s.start) == CHUNK_PAGES {
                carry + CHUNK_PAGES
            } else {
                u64::from(s.end)
            };
        }
        None
    }

    /// Marks `[p, p+n)` free (`free`) or used (`!free`). The range must be
    /// inside the mapped pages.
    pub fn set(&mut self, p: u64, n: u64, free: bool) {
        let end = (p + n).min(self.pages());
        let mut i = p;
        while i < end {
            let (ci, bit) = ((i / CHUNK_PAGES) as usize, i % CHUNK_PAGES);
            let (wi, b) = ((bit / 64) as usize, bit % 64);
            let take = (64 - b).min(end - i);
            let mask = if take == 64 {
                u64::MAX
            } else {
                ((1u64 << take) - 1) << b
            };
            let w = &mut self.bits[ci][wi];
            if free {
                *w |= mask;
            } else {
                *w &= !mask;
            }
            i += take;
            if i % CHUNK_PAGES == 0 || i == end {
                self.sums[ci] = summarize(&self.bits[ci]);
            }
        }
    }

    /// Whether page `p` is free.
    pub fn is_free(&self, p: u64) -> bool {
        let (ci, bit) = ((p / CHUNK_PAGES) as usize, p % CHUNK_PAGES);
        self.bits
            .get(ci)
            .is_some_and(|c| c[(bit / 64) as usize] >> (bit % 64) & 1 == 1)
    }

    /// The maximal free runs, `(first page, pages)`, in address order.
    pub fn runs(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut run: Option<(u64, u64)> = None;
        for (ci, words) in self.bits.iter().enumerate() {
            for (wi, &w) in words.iter().enumerate() {
                let base = ci as u64 * CHUNK_PAGES + wi as u64 * 64;
                let mut b = 0u32;
                while b < 64 {
                    let rest = w >> b;
                    if rest & 1 == 1 {
                        let ones = (!rest).trailing_zeros().min(64 - b);
                        match &mut run {
                            Some((_, len)) => *len += u64::from(ones),
                            None => run = Some((base + u64::from(b), u64::from(ones))),
                        }
                        b += ones;
                    } else {
                        if let Some(r) = run.take() {
                            out.push(r);
                        }
                        b += rest.trailing_zeros().min(64 - b);
                    }
                }
            }
        }
        out.extend(run);
        out
    }

    /// The summary of chunk `ci` (for tests and statistics).
    pub fn sum(&self, ci: usize) -> Option<Sum> {
        self.sums.get(ci).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious first fit over a plain vector of page states.
    fn naive_find(free: &[bool], n: u64) -> Option<u64> {
        let n = n as usize;
        if n == 0 {
            return None;
        }
        (0..free.len().saturating_sub(n - 1))
            .find(|&p| free[p..p + n].iter().all(|&f| f))
            .map(|p| p as u64)
    }

    fn naive_runs(free: &[bool]) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (p, &f) in free.iter().enumerate() {
            if f {
                match out.last_mut() {
                    Some((s, l)) if *s + *l == p as u64 => *l += 1,
                    _ => out.push((p as u64, 1)),
                }
            }
        }
        out
    }

    #[test]
    fn summaries() {
        let mut w = [u64::MAX; WORDS];
        assert_eq!(
            summarize(&w),
            Sum {
                start: 512,
                max: 512,
                end: 512
            }
        );
        w[0] = !0b1000; // page 3 used
        w[7] = !(1 << 60); // page 508 used
        assert_eq!(
            summarize(&w),
            Sum {
                start: 3,
                max: 508 - 4,
                end: 3
            }
        );
        let w = [0u64; WORDS];
        assert_eq!(summarize(&w), Sum::default());
    }

    #[test]
    fn matches_naive_first_fit() {
        // A deterministic pseudo-random pattern over three chunks.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let rounds = if cfg!(miri) { 3 } else { 200 };
        for round in 0..rounds {
            let mut f = FreePages::default();
            f.grow(3);
            let mut naive = vec![true; 3 * 512];
            for _ in 0..(round % 40) {
                let p = rnd() % (3 * 512);
                let n = 1 + rnd() % if round % 2 == 0 { 8 } else { 700 };
                let n = n.min(3 * 512 - p);
                let free = rnd() % 3 == 0;
                f.set(p, n, free);
                for x in p..p + n {
                    naive[x as usize] = free;
                }
            }
            let sizes: &[u64] = if cfg!(miri) {
                &[1, 8, 65, 513]
            } else {
                &[
                    1, 2, 3, 4, 7, 8, 63, 64, 65, 200, 511, 512, 513, 1000, 1536, 1537,
                ]
            };
            for &n in sizes {
                assert_eq!(f.find(n), naive_find(&naive, n), "round {round} n {n}");
            }
            assert_eq!(f.runs(), naive_runs(&naive), "round {round}");
            for p in (0..3 * 512).step_by(if cfg!(miri) { 37 } else { 1 }) {
                assert_eq!(f.is_free(p), naive[p as usize]);
            }
        }
    }

    #[test]
    fn shrink_undoes_grow() {
        let mut f = FreePages::default();
        f.grow(1);
        f.set(0, 10, false);
        let before = (f.runs(), f.pages(), f.sum(0));
        f.grow(2);
        assert_eq!(f.pages(), 3 * 512);
        f.shrink(2);
        assert_eq!((f.runs(), f.pages(), f.sum(0)), before);
        assert_eq!(f.sum(1), None);
        assert!(f.metadata_bytes() >= 64 + 6);
    }

    #[test]
    fn runs_cross_chunks() {
        let mut f = FreePages::default();
        f.grow(2);
        f.set(0, 500, false);
        f.set(600, 10, false);
        assert_eq!(f.runs(), vec![(500, 100), (610, 414)]);
        assert_eq!(f.find(100), Some(500));
        assert_eq!(f.find(101), Some(610));
        assert_eq!(f.find(415), None);
        assert_eq!(f.find(0), None);
    }
}
