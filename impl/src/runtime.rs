//! [`Runtime`]: the spec's API over the real allocator.
//!
//! `gostack_spec::State` names Ps by id and takes a [`Ctx`]; the real
//! allocator ([`Stacks`]) takes `&mut P` handles. A `Runtime` owns a
//! `Stacks` and its Ps by id and offers every allocator operation of the
//! spec with the same arguments, results and throws (a P id that does not
//! exist is [`Misuse::NoSuchP`], checked where the spec checks it), so the
//! differential tests drive both alike.

use crate::stack::{Stacks, P};
use gostack_spec::{Config, Ctx, GcPhase, Misuse, Snapshot, Stack, Stats, Throw};
use std::collections::BTreeMap;

/// A stack system with its Ps, driven like `gostack_spec::State`.
#[derive(Debug)]
pub struct Runtime {
    stacks: Stacks,
    ps: BTreeMap<u32, P>,
}

impl Runtime {
    /// A fresh stack system over a new arena of `config.arena_bytes`; the
    /// same configurations are refused as by `State::new`.
    pub fn new(config: Config) -> Result<Runtime, Throw> {
        Ok(Runtime {
            stacks: Stacks::new(&config)?,
            ps: BTreeMap::new(),
        })
    }

    /// The allocator.
    pub fn stacks(&self) -> &Stacks {
        &self.stacks
    }

    /// The arena's first byte.
    pub fn base(&self) -> u64 {
        self.stacks.base()
    }

    /// `gcphase`.
    pub fn gcphase(&self) -> GcPhase {
        self.stacks.gcphase()
    }

    /// Whether the GC is off but `freeStackSpans` has not run.
    pub fn spans_pending_free(&self) -> bool {
        self.stacks.spans_pending_free()
    }

    /// The ids of the live Ps.
    pub fn ps(&self) -> Vec<u32> {
        self.ps.keys().copied().collect()
    }

    /// The order serving size `n`, or `None` for the large path.
    pub fn order_of(&self, n: u64) -> Option<usize> {
        self.stacks.order_of(n)
    }

    /// `stackalloc` (as `State::stackalloc`).
    pub fn stackalloc(&mut self, ctx: Ctx, n: u64) -> Result<Stack, Throw> {
        self.stacks.check_size(n)?;
        let stacks = &self.stacks;
        let p = match ctx.p {
            Some(id) => Some(
                self.ps
                    .get_mut(&id)
                    .ok_or(Throw::Misuse(Misuse::NoSuchP(id)))?,
            ),
            None => None,
        };
        stacks.stackalloc(p, ctx.preemptoff, n)
    }

    /// `stackfree` (as `State::stackfree`).
    pub fn stackfree(&mut self, ctx: Ctx, stk: Stack) -> Result<(), Throw> {
        let n = stk.hi.wrapping_sub(stk.lo);
        if n & n.wrapping_sub(1) != 0 {
            return Err(gostack_spec::GoThrow::StackNotPowerOf2.into());
        }
        let stacks = &self.stacks;
        let p = match ctx.p {
            Some(id) => Some(
                self.ps
                    .get_mut(&id)
                    .ok_or(Throw::Misuse(Misuse::NoSuchP(id)))?,
            ),
            None => None,
        };
        stacks.stackfree(p, ctx.preemptoff, stk)
    }

    /// Creates a P and returns its id.
    pub fn create_p(&mut self) -> u32 {
        let p = self.stacks.new_p();
        let id = p.id();
        self.ps.insert(id, p);
        id
    }

    /// Destroys P `p`, flushing its caches to the pool.
    pub fn destroy_p(&mut self, p: u32) -> Result<(), Throw> {
        let mut handle = self
            .ps
            .remove(&p)
            .ok_or(Throw::Misuse(Misuse::NoSuchP(p)))?;
        self.stacks.stackcache_clear(&mut handle)
    }

    /// Flushes P `p`'s caches to the pool (`mcache.prepareForSweep`).
    pub fn flush_cache(&mut self, p: u32) -> Result<(), Throw> {
        let handle = self
            .ps
            .get_mut(&p)
            .ok_or(Throw::Misuse(Misuse::NoSuchP(p)))?;
        self.stacks.stackcache_clear(handle)
    }

    /// Takes `npages` of ordinary heap memory.
    pub fn heap_alloc(&mut self, npages: u64) -> Result<u64, Throw> {
        self.stacks.heap_alloc(npages)
    }

    /// Returns heap memory taken with [`Runtime::heap_alloc`].
    pub fn heap_free(&mut self, base: u64) -> Result<(), Throw> {
        self.stacks.heap_free(base)
    }

    /// `gcStart`.
    pub fn gc_start(&mut self) -> Result<(), Throw> {
        self.stacks.gc_start()
    }

    /// `gcMarkTermination`.
    pub fn gc_mark_termination(&mut self) -> Result<(), Throw> {
        self.stacks.gc_mark_termination()
    }

    /// `setGCPhase(_GCoff)`.
    pub fn gc_off(&mut self) -> Result<(), Throw> {
        self.stacks.gc_off()
    }

    /// `freeStackSpans`.
    pub fn free_stack_spans(&mut self) -> Result<(), Throw> {
        self.stacks.free_stack_spans()
    }

    /// The end of a GC cycle, every P's cache flushed in id order.
    pub fn gc_end(&mut self) -> Result<(), Throw> {
        let mut ps: Vec<&mut P> = self.ps.values_mut().collect();
        self.stacks.gc_end(&mut ps)
    }

    /// A GC marker reads `addr`.
    pub fn gc_mark_read(&mut self, addr: u64) -> Result<u32, Throw> {
        self.stacks.gc_mark_read(addr)
    }

    /// The marker marks what it read.
    pub fn gc_mark(&mut self, id: u32) -> Result<(), Throw> {
        self.stacks.gc_mark(id)
    }

    /// The observable state, as `State::snapshot`.
    pub fn snapshot(&self) -> Snapshot {
        let ps: Vec<&P> = self.ps.values().collect();
        self.stacks.snapshot(&ps)
    }

    /// The statistics, as `State::stats`.
    pub fn stats(&self) -> Stats {
        self.snapshot().stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gostack_spec::{GoThrow, Profile};

    fn rt() -> Runtime {
        let mut c = Config::new(Profile::parse("windows", "amd64", false, "1.23").unwrap());
        c.arena_bytes = 4 << 20;
        Runtime::new(c).unwrap()
    }

    #[test]
    fn ids_and_errors_follow_the_spec() {
        let mut r = rt();
        assert_eq!(r.create_p(), 0);
        assert_eq!(r.create_p(), 1);
        // Size checks come before the P check.
        assert_eq!(
            r.stackalloc(Ctx::on(9), 3000),
            Err(Throw::Go(GoThrow::StackSizeNotPowerOf2))
        );
        assert_eq!(
            r.stackalloc(Ctx::on(9), 8192),
            Err(Throw::Misuse(Misuse::NoSuchP(9)))
        );
        // windows/amd64: fixedStack is 8 KiB.
        assert_eq!(
            r.stackalloc(Ctx::on(0), 4096),
            Err(Throw::Misuse(Misuse::StackTooSmall {
                n: 4096,
                fixed_stack: 8192
            }))
        );
        let stk = r.stackalloc(Ctx::on(0), 8192).unwrap();
        assert_eq!(r.stats().cached_bytes[&0], 8192);
        r.destroy_p(0).unwrap();
        assert_eq!(r.destroy_p(0), Err(Throw::Misuse(Misuse::NoSuchP(0))));
        assert_eq!(r.ps(), vec![1]);
        r.stackfree(Ctx::on(1), stk).unwrap();
        r.gc_start().unwrap();
        r.gc_end().unwrap();
        assert_eq!(r.gcphase(), GcPhase::Off);
        assert!(!r.spans_pending_free());
        assert!(r.snapshot().spans.is_empty());
    }

    #[test]
    fn bad_arenas_are_refused() {
        let mut c = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
        c.arena_bytes = 3 << 20;
        assert!(matches!(
            Runtime::new(c.clone()),
            Err(Throw::Misuse(Misuse::BadArena(_)))
        ));
        c.arena_bytes = 4 << 20;
        c.arena_base = 4096;
        assert!(matches!(
            Runtime::new(c),
            Err(Throw::Misuse(Misuse::BadArena(_)))
        ));
    }
}
