//! Whether a run of stack allocations would succeed, answered from a
//! snapshot without touching the allocator.
//!
//! The spec makes a compound operation (spawn a goroutine and grow its
//! stack, say) all-or-nothing by running it on a copy of its state. The
//! allocator cannot be copied or rolled back, so before a compound
//! operation that allocates more than once the goroutine layer asks this
//! module whether every allocation would succeed, and refuses with the
//! first failure's throw when one would not.
//!
//! The sim replays the operation's steps on a model of the allocator built
//! from the snapshot, following `Stacks::stackalloc` and
//! `Stacks::stackfree` path by path and list by list: the P cache (refill
//! takes half a cache from the pool, the last stack taken at the head;
//! a free into a full cache first releases it from the head down to
//! half), the pool (`stackpoolalloc` takes the head span's first free
//! stack and unlists a span it empties; a new span hands out its highest
//! stack first; `stackpoolfree` relists a span at the head and, with the
//! GC off, returns a span that empties to the heap), stackLarge (head
//! first; a free during the GC goes to the head) and the page heap (first
//! fit over free runs in address order, merging freed pages with their
//! neighbours, growth by 512-page chunks). Every stack the steps touch is
//! then known by its offset, so the frees between allocations (gfget
//! dropping a stack of the wrong size before malg; copystack freeing the
//! stack it left) give back exactly what the allocator will have.
//! `models/tests` (differential, reproducers) and `gostack conform` check
//! the prediction against the spec, which runs the operation itself.

use gostack_spec::heap::PAGE_SIZE;
use gostack_spec::stack::{stacklog2, GcPhase};
use gostack_spec::{Ctx, GoThrow, Snapshot, Throw};
use std::collections::{BTreeMap, VecDeque};

/// One step of a compound operation, as the allocator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// The goroutine runs on the stack at arena offset `off` of `n` bytes,
    /// which exists before the operation (nothing is allocated).
    Current { off: u64, n: u64 },
    /// `stackfree` of the stack at arena offset `off` of `n` bytes, which
    /// exists before the operation.
    Free { off: u64, n: u64 },
    /// `stackalloc(n)`: the goroutine's stack from now on (malg).
    Alloc(u64),
    /// copystack: `stackalloc(n)`, then `stackfree` of the goroutine's
    /// stack, the new one taking its place.
    Copy(u64),
}

/// A pool span: its order, pages, `allocCount` and free stacks (offsets,
/// head first).
#[derive(Clone, Debug)]
struct PoolSpan {
    order: usize,
    npages: u64,
    alloc_count: u64,
    free: VecDeque<u64>,
}

/// Pages the heap grows by at least.
const CHUNK: u64 = 512;

/// The allocator as a snapshot shows it, for one P's (or no P's) calls.
pub(crate) struct AllocSim {
    /// Free page runs: (first page, pages), in address order.
    runs: Vec<(u64, u64)>,
    mapped: u64,
    arena_pages: u64,
    /// The P's cached stacks per order (offsets, head first), and bytes.
    cache: Vec<VecDeque<u64>>,
    cache_bytes: Vec<u64>,
    /// Per order: the listed pool spans' offsets, head first.
    pool: Vec<VecDeque<u64>>,
    /// Pool spans by offset.
    spans: BTreeMap<u64, PoolSpan>,
    /// stackLarge per class: the free spans' offsets, head first.
    large: Vec<VecDeque<u64>>,
    fixed: u64,
    cache_size: u64,
    num_orders: u64,
    use_cache: bool,
    gc_off: bool,
    /// The goroutine's stack: offset and size.
    cur: Option<(u64, u64)>,
    /// With stacks from the system: the free ranges of their region
    /// (offset, bytes, in address order), and whether a free faults.
    sys: Option<(Vec<(u64, u64)>, bool)>,
}

impl AllocSim {
    /// The allocator as `snap` shows it, for allocations by `ctx`.
    pub(crate) fn new(
        snap: &Snapshot,
        ctx: Ctx,
        consts: &gostack_spec::Consts,
        config: &gostack_spec::Config,
    ) -> AllocSim {
        let (arena_bytes, no_cache) = (config.arena_bytes, config.no_cache);
        let efence = config.godebug.efence;
        let sys = (config.stack_from_system || efence)
            .then(|| (snap.sys_free.clone(), efence || config.stack_fault_on_free));
        let orders = consts.num_stack_orders as usize;
        let mut cache = vec![VecDeque::new(); orders];
        let mut cache_bytes = vec![0; orders];
        if let Some(p) = ctx.p {
            if let Some(c) = snap.caches.iter().find(|c| c.p == p) {
                for (o, l) in c.lists.iter().enumerate().take(orders) {
                    cache[o] = l.iter().copied().collect();
                    cache_bytes[o] = c.sizes.get(o).copied().unwrap_or(0);
                }
            }
        }
        let mut spans = BTreeMap::new();
        for s in &snap.spans {
            let is_pool = s.elemsize.is_power_of_two()
                && s.elemsize >= consts.fixed_stack
                && s.elemsize < consts.stack_cache_size;
            if !is_pool {
                continue;
            }
            let order = (s.elemsize / consts.fixed_stack).trailing_zeros() as usize;
            spans.insert(
                s.off,
                PoolSpan {
                    order,
                    npages: s.npages,
                    alloc_count: s.alloc_count,
                    free: s.free_list.iter().copied().collect(),
                },
            );
        }
        let mut pool = vec![VecDeque::new(); orders];
        for (o, list) in snap.stackpool.iter().enumerate().take(orders) {
            pool[o] = list.iter().copied().collect();
        }
        let mut large = vec![VecDeque::new(); 64];
        for (c, l) in &snap.stack_large {
            if let Some(x) = large.get_mut(*c as usize) {
                *x = l.iter().copied().collect();
            }
        }
        AllocSim {
            runs: snap
                .free_runs
                .iter()
                .map(|&(off, n)| (off / PAGE_SIZE, n))
                .collect(),
            mapped: snap.stats.mapped_bytes / PAGE_SIZE,
            arena_pages: arena_bytes / PAGE_SIZE,
            cache,
            cache_bytes,
            pool,
            spans,
            large,
            fixed: consts.fixed_stack,
            cache_size: consts.stack_cache_size,
            num_orders: consts.num_stack_orders,
            use_cache: ctx.p.is_some() && !ctx.preemptoff && !no_cache,
            gc_off: snap.gcphase == GcPhase::Off,
            cur: None,
            sys,
        }
    }

    /// Runs `steps` in order; the first allocation that would fail gives
    /// its throw.
    pub(crate) fn run(&mut self, steps: &[Step]) -> Result<(), Throw> {
        for &st in steps {
            match st {
                Step::Current { off, n } => self.cur = Some((off, n)),
                Step::Free { off, n } => self.free(off, n),
                Step::Alloc(n) => {
                    let off = self.alloc(n)?;
                    self.cur = Some((off, self.stack_len(n)));
                }
                Step::Copy(n) => {
                    let off = self.alloc(n)?;
                    if let Some((old, m)) = self.cur.take() {
                        self.free(old, m);
                    }
                    self.cur = Some((off, self.stack_len(n)));
                }
            }
        }
        Ok(())
    }

    /// The bytes a request of `n` gets: rounded up to the page when stacks
    /// come from the system.
    fn stack_len(&self, n: u64) -> u64 {
        match self.sys {
            Some(_) => crate::sysalloc::SystemStacks::round(n).unwrap_or(n),
            None => n,
        }
    }

    /// `sysAlloc` in the region: the lowest free range that fits.
    fn sys_alloc(free: &mut Vec<(u64, u64)>, len: u64) -> Result<u64, Throw> {
        let i = free
            .iter()
            .position(|&(_, run)| run >= len)
            .ok_or(Throw::Go(GoThrow::OutOfMemoryStackalloc))?;
        let off = free[i].0;
        if free[i].1 == len {
            free.remove(i);
        } else {
            free[i] = (off + len, free[i].1 - len);
        }
        Ok(off)
    }

    /// `sysFree` in the region: the range is free again, merged.
    fn sys_free(free: &mut Vec<(u64, u64)>, off: u64, len: u64) {
        let i = free.partition_point(|&(o, _)| o < off);
        free.insert(i, (off, len));
        if i + 1 < free.len() && off + len == free[i + 1].0 {
            free[i].1 += free[i + 1].1;
            free.remove(i + 1);
        }
        if i > 0 && free[i - 1].0 + free[i - 1].1 == off {
            free[i - 1].1 += free[i].1;
            free.remove(i);
        }
    }

    fn order_of(&self, n: u64) -> Option<usize> {
        if n < self.fixed << self.num_orders && n < self.cache_size {
            let mut order = 0;
            let mut n2 = n;
            while n2 > self.fixed {
                order += 1;
                n2 >>= 1;
            }
            Some(order)
        } else {
            None
        }
    }

    /// First fit of `npages` in the page heap, growing it when no run
    /// fits; the first page taken.
    fn heap(&mut self, npages: u64) -> Result<u64, Throw> {
        let oom = || Throw::Go(GoThrow::OutOfMemory);
        if npages == 0 || npages > self.arena_pages {
            return Err(oom());
        }
        if let Some(i) = self.runs.iter().position(|&(_, n)| n >= npages) {
            let first = self.runs[i].0;
            self.runs[i].0 += npages;
            self.runs[i].1 -= npages;
            if self.runs[i].1 == 0 {
                self.runs.remove(i);
            }
            return Ok(first);
        }
        let ask = npages.div_ceil(CHUNK) * CHUNK;
        if ask > self.arena_pages - self.mapped {
            return Err(oom());
        }
        let start = self.mapped;
        self.mapped += ask;
        match self.runs.last_mut() {
            Some(last) if last.0 + last.1 == start => last.1 += ask,
            _ => self.runs.push((start, ask)),
        }
        self.heap(npages)
    }

    /// Pages back in the page heap, merged with the runs around them.
    fn heap_free(&mut self, first: u64, npages: u64) {
        let i = self.runs.partition_point(|&(p, _)| p < first);
        self.runs.insert(i, (first, npages));
        if i + 1 < self.runs.len() && first + npages == self.runs[i + 1].0 {
            self.runs[i].1 += self.runs[i + 1].1;
            self.runs.remove(i + 1);
        }
        if i > 0 && self.runs[i - 1].0 + self.runs[i - 1].1 == first {
            self.runs[i - 1].1 += self.runs[i].1;
            self.runs.remove(i);
        }
    }

    /// The stacks free in listed spans of order `o`.
    fn pool_free_stacks(&self, o: usize) -> u64 {
        self.pool[o]
            .iter()
            .map(|b| self.spans.get(b).map_or(0, |s| s.free.len() as u64))
            .sum()
    }

    /// A new pool span for order `o` from the page heap: its offset.
    fn new_span(&mut self, o: usize) -> Result<u64, Throw> {
        let npages = self.cache_size / PAGE_SIZE;
        let base = self.heap(npages)? * PAGE_SIZE;
        let n = self.fixed << o;
        // Built lowest first with each stack pushed at the head: the
        // highest stack is handed out first.
        let free = (0..self.cache_size / n)
            .rev()
            .map(|i| base + i * n)
            .collect();
        self.spans.insert(
            base,
            PoolSpan {
                order: o,
                npages,
                alloc_count: 0,
                free,
            },
        );
        Ok(base)
    }

    /// `stackpoolalloc`: the head span's first free stack (a new span when
    /// no span is listed, `reserved` if the caller took one already).
    fn pool_alloc(&mut self, o: usize, reserved: &mut Option<u64>) -> Result<u64, Throw> {
        loop {
            let b = match self.pool[o].front() {
                Some(&b) => b,
                None => {
                    let b = match reserved.take() {
                        Some(b) => b,
                        None => self.new_span(o)?,
                    };
                    self.pool[o].push_front(b);
                    b
                }
            };
            // A listed span always has a free stack; one the snapshot did
            // not describe as a pool span is dropped from the model.
            let Some(s) = self.spans.get_mut(&b) else {
                self.pool[o].pop_front();
                continue;
            };
            let Some(x) = s.free.pop_front() else {
                self.pool[o].pop_front();
                continue;
            };
            s.alloc_count += 1;
            if s.free.is_empty() {
                self.pool[o].pop_front();
            }
            return Ok(x);
        }
    }

    /// `stackpoolfree` of the stack at `x` of order `o`.
    fn pool_free(&mut self, o: usize, x: u64) {
        let Some((&b, s)) = self.spans.range_mut(..=x).next_back() else {
            return;
        };
        if s.order != o || x >= b + s.npages * PAGE_SIZE {
            return;
        }
        let relist = s.free.is_empty();
        s.free.push_front(x);
        s.alloc_count = s.alloc_count.saturating_sub(1);
        let (empty, npages) = (s.alloc_count == 0, s.npages);
        if relist {
            self.pool[o].push_front(b);
        }
        if self.gc_off && empty {
            self.pool[o].retain(|&y| y != b);
            self.spans.remove(&b);
            self.heap_free(b / PAGE_SIZE, npages);
        }
    }

    /// One `stackfree` of the `n`-byte stack at `off`.
    fn free(&mut self, off: u64, n: u64) {
        if let Some((free, fault)) = &mut self.sys {
            if !*fault {
                Self::sys_free(free, off, n);
            }
            return;
        }
        match self.order_of(n) {
            Some(o) if self.use_cache => {
                if self.cache_bytes[o] >= self.cache_size {
                    // stackcacherelease: from the head down to half.
                    while self.cache_bytes[o] > self.cache_size / 2 {
                        let Some(x) = self.cache[o].pop_front() else {
                            break;
                        };
                        self.cache_bytes[o] -= n.min(self.cache_bytes[o]);
                        self.pool_free(o, x);
                    }
                }
                self.cache[o].push_front(off);
                self.cache_bytes[o] += n;
            }
            Some(o) => self.pool_free(o, off),
            None if self.gc_off => self.heap_free(off / PAGE_SIZE, n / PAGE_SIZE),
            None => {
                let class = stacklog2(n / PAGE_SIZE) as usize;
                if let Some(l) = self.large.get_mut(class) {
                    l.push_front(off);
                }
            }
        }
    }

    /// One `stackalloc(n)` of a size that passed `check_size`: the stack's
    /// offset.
    fn alloc(&mut self, n: u64) -> Result<u64, Throw> {
        let len = self.stack_len(n);
        if let Some((free, _)) = &mut self.sys {
            return Self::sys_alloc(free, len);
        }
        match self.order_of(n) {
            Some(o) if self.use_cache => {
                if self.cache[o].is_empty() {
                    // stackcacherefill: a new span it will need first.
                    let want = (self.cache_size / 2).div_ceil(n);
                    let mut reserved = None;
                    if self.pool_free_stacks(o) < want {
                        reserved = Some(self.new_span(o)?);
                    }
                    let mut list = VecDeque::new();
                    for _ in 0..want {
                        let x = self.pool_alloc(o, &mut reserved)?;
                        list.push_front(x);
                    }
                    self.cache[o] = list;
                    self.cache_bytes[o] = want * n;
                }
                let x = self.cache[o].pop_front().expect("refilled");
                self.cache_bytes[o] = self.cache_bytes[o].saturating_sub(n);
                Ok(x)
            }
            Some(o) => self.pool_alloc(o, &mut None),
            None => {
                let class = stacklog2(n / PAGE_SIZE) as usize;
                match self.large.get_mut(class).and_then(|l| l.pop_front()) {
                    Some(off) => Ok(off),
                    None => Ok(self.heap(n / PAGE_SIZE)? * PAGE_SIZE),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Stacks;
    use gostack_spec::{Config, Profile};

    const M: u64 = 1 << 20;

    /// A 4 MiB arena filled with four 1 MiB stacks; their offsets.
    fn full() -> (Stacks, Vec<u64>) {
        let mut c = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
        c.arena_bytes = 4 * M;
        let s = Stacks::new(&c).unwrap();
        let offs = (0..4)
            .map(|_| s.stackalloc(None, false, M).unwrap().lo - s.base())
            .collect();
        (s, offs)
    }

    fn sim(s: &Stacks) -> AllocSim {
        AllocSim::new(&s.snapshot(&[]), Ctx::no_p(), s.consts(), s.config())
    }

    fn oom() -> Result<(), Throw> {
        Err(GoThrow::OutOfMemory.into())
    }

    #[test]
    fn a_free_before_an_allocation_is_counted() {
        let (s, offs) = full();
        let mut sorted = offs.clone();
        sorted.sort();
        assert_eq!(sim(&s).run(&[Step::Alloc(M)]), oom());
        let free = |i: usize| Step::Free {
            off: sorted[i],
            n: M,
        };
        // The GC is off: the pages go back to the heap, and two adjacent
        // stacks' pages merge into one run.
        assert_eq!(sim(&s).run(&[free(0), Step::Alloc(M)]), Ok(()));
        assert_eq!(sim(&s).run(&[free(0), Step::Alloc(2 * M)]), oom());
        assert_eq!(sim(&s).run(&[free(1), free(2), Step::Alloc(2 * M)]), Ok(()));
        assert_eq!(sim(&s).run(&[free(0), free(2), Step::Alloc(2 * M)]), oom());
        // During the GC a large stack waits in stackLarge, for its size
        // only.
        s.gc_start().unwrap();
        assert_eq!(sim(&s).run(&[free(0), Step::Alloc(M)]), Ok(()));
        assert_eq!(sim(&s).run(&[free(1), free(2), Step::Alloc(2 * M)]), oom());
    }

    /// A full 4 MiB arena whose only pool spans, A and B (order 8 KiB),
    /// each keep one stack in use and have three free; the span that got
    /// its frees last heads the pool list. Returns the allocator and A's
    /// stack in use.
    fn two_spans(a_heads: bool) -> (Stacks, gostack_spec::Stack) {
        let mut c = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
        c.arena_bytes = 4 * M;
        let s = Stacks::new(&c).unwrap();
        let small: Vec<_> = (0..8)
            .map(|_| s.stackalloc(None, false, 8192).unwrap())
            .collect();
        for k in [256, 128, 64, 32, 16, 8] {
            s.stackalloc(None, false, k * 8192).unwrap();
        }
        let span = |st: &gostack_spec::Stack| (st.lo - s.base()) / 32768;
        let first = span(&small[0]);
        let (a, b): (Vec<gostack_spec::Stack>, Vec<gostack_spec::Stack>) =
            small.iter().partition(|st| span(st) == first);
        let order = if a_heads { [&b, &a] } else { [&a, &b] };
        for group in order {
            for st in &group[1..] {
                s.stackfree(None, false, *st).unwrap();
            }
        }
        (s, a[0])
    }

    /// A forced move then a growth without a P cache (golang's direct pool
    /// path): the move's copy comes from the head span; when that is B,
    /// freeing the old stack empties A, whose pages then hold the 16 KiB
    /// span the growth needs; when it is A, nothing comes back. The sim
    /// and the allocator agree both ways.
    #[test]
    fn a_copy_from_the_head_span_decides_what_comes_back() {
        for a_heads in [false, true] {
            let (s, keep) = two_spans(a_heads);
            let steps = [
                Step::Current {
                    off: keep.lo - s.base(),
                    n: 8192,
                },
                Step::Copy(8192),
                Step::Copy(16384),
            ];
            let predicted = sim(&s).run(&steps);
            let real = (|| {
                let moved = s.stackalloc(None, false, 8192)?;
                s.stackfree(None, false, keep)?;
                let grown = s.stackalloc(None, false, 16384)?;
                s.stackfree(None, false, moved)?;
                Ok::<_, Throw>(grown)
            })();
            assert_eq!(
                predicted.is_ok(),
                real.is_ok(),
                "A heads: {a_heads}: {real:?}"
            );
            assert_eq!(predicted.is_ok(), !a_heads);
        }
    }

    #[test]
    fn a_copy_frees_the_stack_it_leaves() {
        let (s, offs) = full();
        let mut sorted = offs.clone();
        sorted.sort();
        // Free two adjacent stacks, then let a goroutine on a third grow
        // twice: 1 MiB -> 2 MiB (the freed run) -> 4 MiB, which cannot fit
        // however the frees merge, since one stack stays.
        for &o in &sorted[..2] {
            let lo = s.base() + o;
            s.stackfree(None, false, gostack_spec::Stack { lo, hi: lo + M })
                .unwrap();
        }
        let cur = Step::Current {
            off: sorted[2],
            n: M,
        };
        assert_eq!(sim(&s).run(&[cur, Step::Copy(2 * M)]), Ok(()));
        assert_eq!(
            sim(&s).run(&[cur, Step::Copy(2 * M), Step::Copy(4 * M)]),
            oom()
        );
        // Shrinking back: the 2 MiB copy frees the 1 MiB stack it left,
        // whose pages (merged with the 1 MiB after it, freed below) hold
        // the next 2 MiB.
        let last = s.base() + sorted[3];
        s.stackfree(
            None,
            false,
            gostack_spec::Stack {
                lo: last,
                hi: last + M,
            },
        )
        .unwrap();
        assert_eq!(
            sim(&s).run(&[cur, Step::Copy(2 * M), Step::Copy(M), Step::Copy(2 * M)]),
            Ok(())
        );
    }
}
