//! Whether a run of stack allocations would succeed, answered from a
//! snapshot without touching the allocator.
//!
//! The spec makes a compound operation (spawn a goroutine and grow its
//! stack, say) all-or-nothing by running it on a copy of its state. The
//! allocator cannot be copied or rolled back, so before a compound
//! operation that allocates more than once the goroutine layer asks this
//! module whether every allocation would succeed, and refuses with the
//! first failure's throw when one would not. The count follows
//! `Stacks::stackalloc`'s paths (P cache, refill from the pool with a new
//! span when the pool has too few, direct pool, stackLarge, first fit in
//! the page heap, heap growth by 512-page chunks).
//!
//! The frees between the allocations (gfget dropping a stack of the wrong
//! size before malg allocates; copystack freeing the old stack before the
//! next growth) are counted too, as `Stacks::stackfree` makes them: into
//! the P cache (releasing half of a full one to the pool), the pool
//! (returning a span that empties with the GC off to the heap), stackLarge
//! during the GC, or the page heap, merging free runs. A free is followed
//! exactly where the sim knows the stack and its span from the snapshot;
//! where it does not (a stack the sim itself handed out of a cache or
//! pool), the free is counted only where it certainly goes (a cache or pool
//! count, stackLarge), never as pages back in the heap. So the sim never
//! promises memory the allocator will not have: a compound operation it
//! passes cannot fail half-way for want of memory.

use gostack_spec::heap::PAGE_SIZE;
use gostack_spec::stack::{stacklog2, GcPhase};
use gostack_spec::{Ctx, GoThrow, Snapshot, Throw};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

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

/// The stack a goroutine runs on in the sim: its size, and its offset
/// where known or the first page the sim took from the page heap for it.
#[derive(Clone, Copy, Debug)]
struct Cur {
    n: u64,
    off: Option<u64>,
    page: Option<u64>,
}

/// A stack span the snapshot shows (pool spans only).
#[derive(Clone, Copy, Debug)]
struct PoolSpan {
    npages: u64,
    alloc_count: u64,
    free: u64,
    listed: bool,
}

/// Pages the heap grows by at least.
const CHUNK: u64 = 512;

/// A count of what the allocator could hand out.
pub(crate) struct AllocSim {
    /// Free page runs: (first page, pages), in address order.
    runs: Vec<(u64, u64)>,
    mapped: u64,
    arena_pages: u64,
    /// The P's cached stacks per order.
    cache: Vec<u64>,
    /// Free stacks in listed pool spans, per order.
    pool: Vec<u64>,
    /// Free spans per stackLarge class.
    large: Vec<u64>,
    fixed: u64,
    cache_size: u64,
    num_orders: u64,
    use_cache: bool,
    gc_off: bool,
    /// The P's cached stacks per order, head first: their offsets where
    /// the snapshot showed them, None for stacks a simulated refill took.
    cache_lists: Vec<VecDeque<Option<u64>>>,
    /// Per order: the P cache's bytes.
    cache_bytes: Vec<u64>,
    /// Pool spans by offset, with their order.
    spans: BTreeMap<u64, (usize, PoolSpan)>,
    /// Orders whose spans a simulated allocation took stacks from (which
    /// span is not followed): their span records are stale.
    stale: BTreeSet<usize>,
    /// The goroutine's stack.
    cur: Option<Cur>,
}

impl AllocSim {
    /// The allocator as `snap` shows it, for allocations by `ctx`.
    pub(crate) fn new(
        snap: &Snapshot,
        ctx: Ctx,
        consts: &gostack_spec::Consts,
        arena_bytes: u64,
        no_cache: bool,
    ) -> AllocSim {
        let orders = consts.num_stack_orders as usize;
        let mut cache = vec![0; orders];
        let mut cache_lists = vec![VecDeque::new(); orders];
        let mut cache_bytes = vec![0; orders];
        if let Some(p) = ctx.p {
            if let Some(c) = snap.caches.iter().find(|c| c.p == p) {
                for (o, l) in c.lists.iter().enumerate().take(orders) {
                    cache[o] = l.len() as u64;
                    cache_lists[o] = l.iter().map(|&x| Some(x)).collect();
                    cache_bytes[o] = c.sizes.get(o).copied().unwrap_or(0);
                }
            }
        }
        let mut pool = vec![0; orders];
        let listed: BTreeSet<u64> = snap.stackpool.iter().flatten().copied().collect();
        let mut spans = BTreeMap::new();
        for s in &snap.spans {
            let o = (s.elemsize.is_power_of_two()
                && s.elemsize >= consts.fixed_stack
                && s.elemsize < consts.stack_cache_size)
                .then(|| (s.elemsize / consts.fixed_stack).trailing_zeros() as usize)
                .filter(|&o| o < orders && s.npages * PAGE_SIZE == consts.stack_cache_size);
            let Some(o) = o else { continue };
            let is_listed = listed.contains(&s.off);
            if is_listed {
                pool[o] += s.free_list.len() as u64;
            }
            spans.insert(
                s.off,
                (
                    o,
                    PoolSpan {
                        npages: s.npages,
                        alloc_count: s.alloc_count,
                        free: s.free_list.len() as u64,
                        listed: is_listed,
                    },
                ),
            );
        }
        let mut large = vec![0; 64];
        for (c, l) in &snap.stack_large {
            if let Some(x) = large.get_mut(*c as usize) {
                *x = l.len() as u64;
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
            pool,
            large,
            fixed: consts.fixed_stack,
            cache_size: consts.stack_cache_size,
            num_orders: consts.num_stack_orders,
            use_cache: ctx.p.is_some() && !ctx.preemptoff && !no_cache,
            gc_off: snap.gcphase == GcPhase::Off,
            cache_lists,
            cache_bytes,
            spans,
            stale: BTreeSet::new(),
            cur: None,
        }
    }

    /// Runs `steps` in order; the first allocation that would fail gives
    /// its throw.
    pub(crate) fn run(&mut self, steps: &[Step]) -> Result<(), Throw> {
        for &st in steps {
            match st {
                Step::Current { off, n } => {
                    self.cur = Some(Cur {
                        n,
                        off: Some(off),
                        page: None,
                    })
                }
                Step::Free { off, n } => self.free(Some(off), n, None),
                Step::Alloc(n) => {
                    let page = self.alloc(n)?;
                    self.cur = Some(Cur { n, off: None, page });
                }
                Step::Copy(n) => {
                    let page = self.alloc(n)?;
                    if let Some(old) = self.cur.take() {
                        self.free(old.off, old.n, old.page);
                    }
                    self.cur = Some(Cur { n, off: None, page });
                }
            }
        }
        Ok(())
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

    /// One `stackfree` of `n` bytes at `off` (None: a stack the sim handed
    /// out; `page`: its first page when it came from the page heap).
    fn free(&mut self, off: Option<u64>, n: u64, page: Option<u64>) {
        match self.order_of(n) {
            Some(o) if self.use_cache => {
                if self.cache_bytes[o] >= self.cache_size {
                    // stackcacherelease: from the head down to half.
                    while self.cache_bytes[o] > self.cache_size / 2 {
                        let x = self.cache_lists[o].pop_front().flatten();
                        self.cache[o] = self.cache[o].saturating_sub(1);
                        self.cache_bytes[o] -= n.min(self.cache_bytes[o]);
                        self.pool_free(o, x);
                    }
                }
                self.cache_lists[o].push_front(off);
                self.cache[o] += 1;
                self.cache_bytes[o] += n;
            }
            Some(o) => self.pool_free(o, off),
            None => {
                if self.gc_off {
                    let first = match off {
                        Some(off) => Some(off / PAGE_SIZE),
                        None => page,
                    };
                    if let Some(first) = first {
                        self.heap_free(first, n / PAGE_SIZE);
                    }
                } else {
                    let class = stacklog2(n / PAGE_SIZE) as usize;
                    if let Some(x) = self.large.get_mut(class) {
                        *x += 1;
                    }
                }
            }
        }
    }

    /// `stackpoolfree` of the stack at `x` (None: unknown) of order `o`.
    fn pool_free(&mut self, o: usize, x: Option<u64>) {
        let span = x
            .filter(|_| !self.stale.contains(&o))
            .and_then(|x| self.spans.range(..=x).next_back().map(|(&b, _)| b))
            .filter(|b| {
                let (so, s) = self.spans[b];
                so == o && x.is_some_and(|x| x < b + s.npages * PAGE_SIZE)
            });
        let Some(b) = span else {
            // Where it goes is not followed: it is a free stack in the
            // pool, and its span stays listed.
            self.pool[o] += 1;
            return;
        };
        let (_, s) = self.spans.get_mut(&b).expect("found above");
        s.listed = true;
        s.free += 1;
        s.alloc_count = s.alloc_count.saturating_sub(1);
        self.pool[o] += 1;
        if self.gc_off && s.alloc_count == 0 {
            let (free, npages) = (s.free, s.npages);
            self.spans.remove(&b);
            self.pool[o] -= free.min(self.pool[o]);
            self.heap_free(b / PAGE_SIZE, npages);
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

    /// One `stackalloc(n)` of a size that passed `check_size`; the first
    /// page when it came from the page heap.
    fn alloc(&mut self, n: u64) -> Result<Option<u64>, Throw> {
        let span_pages = self.cache_size / PAGE_SIZE;
        let mut page = None;
        match self.order_of(n) {
            Some(o) if self.use_cache => {
                if self.cache[o] == 0 {
                    let want = (self.cache_size / 2).div_ceil(n);
                    if self.pool[o] < want {
                        self.heap(span_pages)?;
                        self.pool[o] += self.cache_size / n;
                    }
                    self.pool[o] -= want;
                    self.cache[o] = want;
                    self.cache_bytes[o] = want * n;
                    self.cache_lists[o] = (0..want).map(|_| None).collect();
                    self.stale.insert(o);
                }
                self.cache[o] -= 1;
                self.cache_bytes[o] = self.cache_bytes[o].saturating_sub(n);
                self.cache_lists[o].pop_front();
            }
            Some(o) => {
                if self.pool[o] == 0 {
                    self.heap(span_pages)?;
                    self.pool[o] += self.cache_size / n;
                }
                self.pool[o] -= 1;
                self.stale.insert(o);
            }
            None => {
                let class = stacklog2(n / PAGE_SIZE) as usize;
                if self.large.get(class).copied().unwrap_or(0) > 0 {
                    self.large[class] -= 1;
                } else {
                    page = Some(self.heap(n / PAGE_SIZE)?);
                }
            }
        }
        Ok(page)
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
        AllocSim::new(&s.snapshot(&[]), Ctx::no_p(), s.consts(), 4 * M, false)
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
