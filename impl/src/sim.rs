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

use gostack_spec::heap::PAGE_SIZE;
use gostack_spec::stack::stacklog2;
use gostack_spec::{Ctx, GoThrow, Snapshot, Throw};

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
        if let Some(p) = ctx.p {
            if let Some(c) = snap.caches.iter().find(|c| c.p == p) {
                for (o, l) in c.lists.iter().enumerate().take(orders) {
                    cache[o] = l.len() as u64;
                }
            }
        }
        let mut pool = vec![0; orders];
        for (o, list) in snap.stackpool.iter().enumerate().take(orders) {
            for off in list {
                if let Some(s) = snap.spans.iter().find(|s| s.off == *off) {
                    pool[o] += s.free_list.len() as u64;
                }
            }
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

    /// First fit of `npages` in the page heap, growing it when no run fits.
    fn heap(&mut self, npages: u64) -> Result<(), Throw> {
        let oom = || Throw::Go(GoThrow::OutOfMemory);
        if npages == 0 || npages > self.arena_pages {
            return Err(oom());
        }
        if let Some(i) = self.runs.iter().position(|&(_, n)| n >= npages) {
            self.runs[i].0 += npages;
            self.runs[i].1 -= npages;
            if self.runs[i].1 == 0 {
                self.runs.remove(i);
            }
            return Ok(());
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

    /// One `stackalloc(n)` of a size that passed `check_size`.
    pub(crate) fn alloc(&mut self, n: u64) -> Result<(), Throw> {
        let span_pages = self.cache_size / PAGE_SIZE;
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
                }
                self.cache[o] -= 1;
            }
            Some(o) => {
                if self.pool[o] == 0 {
                    self.heap(span_pages)?;
                    self.pool[o] += self.cache_size / n;
                }
                self.pool[o] -= 1;
            }
            None => {
                let class = stacklog2(n / PAGE_SIZE) as usize;
                if self.large.get(class).copied().unwrap_or(0) > 0 {
                    self.large[class] -= 1;
                } else {
                    self.heap(n / PAGE_SIZE)?;
                }
            }
        }
        Ok(())
    }
}
