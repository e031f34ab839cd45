//! adjust_pointers: the implementation's word-at-a-time walk of
//! copystack (`gostack::adjust_words`: packed bitmap, set bits only,
//! junk check first, compare-and-swap for a map that starts below
//! `sghi`, 4-byte words as halves of 8-byte atomics at either alignment)
//! against the spec's one-bit-at-a-time `adjustpointers`
//! (`State::adjust_pointer_words`), over arbitrary words, maps of any
//! length and start, an arbitrary old range, delta and sghi. After every
//! map both must return the same result (the same throw) and leave the
//! same words.
#![no_main]

use arbitrary::Arbitrary;
use gostack::{adjust_words, WordAdjust};
use gostack_spec::{Profile, Stack, State};
use libfuzzer_sys::fuzz_target;

/// A word of the run, relative to the old range.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Word {
    /// Nil.
    Nil,
    /// `old.lo + k` rounded to the word size (inside when small).
    FromLo(u32),
    /// `old.hi - 1 - k`.
    FromHi(u16),
    /// `old.lo`, `old.hi - 1`, `old.hi`, `old.lo - 1` by `k % 4`: the
    /// edges and just outside.
    Edge(u8),
    /// A small non-zero value (junk below minLegalPointer when checked).
    Junk(u16),
    /// Any word.
    Raw(u64),
}

/// The old stack's range.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Range {
    /// A power-of-two stack `2^(11 + k % 8)` bytes at page `page`.
    Stack(u8, u32),
    /// Arbitrary bounds (possibly empty or reversed).
    Raw(u64, u64),
}

/// The delta.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Delta {
    /// `new.hi - old.hi` for a new stack `k` pages above (or below).
    Pages(i16),
    /// Any delta.
    Raw(u64),
}

/// One pointer map over the run.
#[derive(Arbitrary, Debug)]
struct Map {
    /// First word (taken modulo the run's length plus 2: sometimes past
    /// its end).
    start: u16,
    /// The bits (past the run's end: ignored by both).
    bits: Vec<bool>,
    /// Locals (checked for junk) or arguments (not).
    check: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// 8-byte (linux/amd64) or 4-byte (linux/386) words.
    wide: bool,
    /// 4-byte words: the run starts in the upper half of an atomic.
    half: bool,
    range: Range,
    delta: Delta,
    /// A word index (modulo the run's length plus 2).
    sghi: u16,
    words: Vec<Word>,
    maps: Vec<Map>,
}

fuzz_target!(|inp: Input| {
    let (arch, p, mask) = if inp.wide {
        ("amd64", 8u64, u64::MAX)
    } else {
        ("386", 4u64, u64::from(u32::MAX))
    };
    let profile = Profile::parse("linux", arch, false, "1.23").expect("a known port");
    let min_legal = State::new(gostack_spec::Config::new(profile))
        .expect("a default config")
        .consts
        .min_legal_pointer;
    let old = match inp.range {
        Range::Stack(k, page) => {
            let size = 1u64 << (11 + k % 8);
            let lo = (u64::from(page) << 13) & mask;
            Stack {
                lo,
                hi: lo.wrapping_add(size) & mask,
            }
        }
        Range::Raw(lo, hi) => Stack { lo, hi },
    };
    let delta = match inp.delta {
        Delta::Pages(k) => (i64::from(k) * 8192) as u64 & mask,
        Delta::Raw(d) => d,
    };
    let mut words: Vec<u64> = inp
        .words
        .iter()
        .take(4096)
        .map(|w| match *w {
            Word::Nil => 0,
            Word::FromLo(k) => old.lo.wrapping_add(u64::from(k) / p * p),
            Word::FromHi(k) => old.hi.wrapping_sub(1 + u64::from(k)),
            Word::Edge(k) => match k % 4 {
                0 => old.lo,
                1 => old.hi.wrapping_sub(1),
                2 => old.hi,
                _ => old.lo.wrapping_sub(1),
            },
            Word::Junk(j) => 1 + u64::from(j) % (min_legal - 1),
            Word::Raw(r) => r,
        })
        .collect();
    let len = words.len();
    let sghi = usize::from(inp.sghi) % (len + 2);
    let mut mine = words.clone();
    for (i, m) in inp.maps.iter().take(16).enumerate() {
        let start = usize::from(m.start) % (len + 2);
        let spec =
            State::adjust_pointer_words(profile, &mut words, start, &m.bits, old, delta, m.check);
        let a = WordAdjust {
            wide: inp.wide,
            half: usize::from(inp.half),
            old_lo: old.lo,
            old_hi: old.hi,
            delta,
            min_legal: m.check.then_some(min_legal),
            sghi,
        };
        let other = adjust_words(&a, &mut mine, start, &m.bits);
        assert_eq!(
            spec, other,
            "map {i}: results differ ({a:?}, start {start})"
        );
        if let Some(w) = (0..len).find(|&w| words[w] != mine[w]) {
            panic!(
                "map {i}: word {w} differs: spec {:#x}, impl {:#x} ({a:?}, start {start}, bit {:?})",
                words[w],
                mine[w],
                w.checked_sub(start).and_then(|b| m.bits.get(b))
            );
        }
    }
});
