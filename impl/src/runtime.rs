//! [`Runtime`]: the spec's API over real memory.
//!
//! `gostack_spec::State` names Ps by id and takes a [`Ctx`]; the real
//! allocator ([`Stacks`]) takes `&mut P` handles. A `Runtime` owns a
//! `Stacks` and its Ps by id and offers every operation of the spec, the
//! allocator's and the goroutine layer's (impl/src/goroutine.rs), with the
//! same arguments, results and throws, so the differential tests drive both
//! alike.
//!
//! # Addresses
//! A `Runtime` lives in the spec's address space: every address it takes or
//! returns (stacks, heap spans, GC markers, frame slots, sudog elems, defer
//! records, the words in frames) is `config.arena_base + offset`, as the
//! spec's. [`Runtime::base`] is that virtual base; the arena's real address
//! is [`Runtime::real_base`], and an address is translated only when memory
//! is touched (`real = va - arena_base + real_base`). Stack memory is
//! therefore bit-identical to the spec's, also for 4-byte-word profiles,
//! whose words are stored as 4-byte words.
//!
//! # The allocator's link words
//! The allocator keeps its free lists in the free stacks (a free stack's
//! first 8 bytes link to the next, as Go's `gclinkptr`); the spec keeps its
//! lists aside and a free stack's memory keeps what its goroutine left
//! there. So that stack contents stay equal, a `Runtime` saves the first 8
//! bytes of a small stack when it frees it (if non-zero), puts them back
//! when the stack is handed out again (zero for a stack never used), forgets
//! them when the stack's span goes back to the heap (whose pages then read
//! as zero on both sides), and [`Runtime::read_word`] answers the saved
//! value for the link bytes of a free stack.

use crate::adjust::{Words, W32};
use crate::goroutine::Gor;
use crate::stack::{Stacks, P};
use gostack_spec::heap::SpanState;
use gostack_spec::snapshot::WorldSnap;
use gostack_spec::{Config, Consts, Ctx, GcPhase, Misuse, Snapshot, Stack, Stats, Throw};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A stack system with its Ps and goroutines, driven like
/// `gostack_spec::State`.
#[derive(Debug)]
pub struct Runtime {
    pub(crate) stacks: Stacks,
    pub(crate) ps: BTreeMap<u32, P>,
    pub(crate) config: Config,
    pub(crate) consts: Consts,
    /// `config.arena_base`: the virtual address of the arena's first byte.
    pub(crate) va_base: u64,
    /// The arena's real address.
    pub(crate) real_base: u64,
    /// The arena's length.
    pub(crate) len: u64,
    /// The profile's pointer size (4 or 8).
    pub(crate) ptr: u64,
    /// Mask of a word's value bits.
    pub(crate) mask: u64,
    next_p: u32,
    next_marker: u32,
    /// Saved first 8 bytes of free small stacks, by virtual `lo`.
    shadow: HashMap<u64, u64>,
    /// Ps whose caches wait for their flush since the GC turned off
    /// (`mcache.flushGen != sweepgen`).
    unflushed: BTreeSet<u32>,
    /// The goroutine layer.
    pub(crate) gor: Gor,
    /// Ms by id (see `mstacks.rs`).
    pub(crate) ms: BTreeMap<u32, gostack_spec::goroutine::MStacks>,
    /// `sched.freem`: exited Ms' g0 stacks, oldest first.
    pub(crate) freem: Vec<(u32, Stack)>,
    pub(crate) next_m: u32,
    /// The Go throw that killed the runtime, if one did (see
    /// [`Runtime::dead`]).
    dead: Option<gostack_spec::GoThrow>,
}

impl Runtime {
    /// A fresh stack system over a new arena of `config.arena_bytes`; the
    /// same configurations are refused as by `State::new`.
    pub fn new(config: Config) -> Result<Runtime, Throw> {
        let stacks = Stacks::new(&config)?;
        let consts = config.profile.consts();
        let ptr = consts.ptr_size;
        Ok(Runtime {
            real_base: stacks.base(),
            // The arena, and with stacks from the system their region
            // above it.
            len: stacks.arena().len(),
            va_base: config.arena_base,
            mask: if ptr == 8 {
                u64::MAX
            } else {
                u64::from(u32::MAX)
            },
            ptr,
            gor: Gor::new(&consts),
            stacks,
            ps: BTreeMap::new(),
            consts,
            config,
            next_p: 0,
            next_marker: 0,
            shadow: HashMap::new(),
            unflushed: BTreeSet::new(),
            ms: BTreeMap::new(),
            freem: Vec::new(),
            next_m: 0,
            dead: None,
        })
    }

    /// The Go throw that killed the runtime, if one did. A throw is fatal,
    /// as in Go: every later operation is refused with [`Misuse::Dead`],
    /// and what the runtime holds is left as the throw found it (stacks an
    /// operation allocated before it threw are not given back). Reading
    /// (`snapshot`, `read_word`, `frames`) still works, for a post-mortem.
    pub fn dead(&self) -> Option<&gostack_spec::GoThrow> {
        self.dead.as_ref()
    }

    /// Refused with [`Misuse::Dead`] once a Go throw killed the runtime.
    pub(crate) fn alive(&self) -> Result<(), Throw> {
        match &self.dead {
            Some(g) => Err(Misuse::Dead(*g).into()),
            None => Ok(()),
        }
    }

    /// Runs a public operation unless the runtime is dead, and kills it
    /// when the operation throws one of Go's throws.
    pub(crate) fn fatal<T>(
        &mut self,
        f: impl FnOnce(&mut Runtime) -> Result<T, Throw>,
    ) -> Result<T, Throw> {
        self.alive()?;
        let r = f(self);
        if let Err(Throw::Go(g)) = &r {
            self.dead = Some(*g);
        }
        r
    }

    /// The allocator (it works in real addresses).
    pub fn stacks(&self) -> &Stacks {
        &self.stacks
    }

    /// The virtual address of the arena's first byte (`config.arena_base`):
    /// every address this API takes or returns is relative to it.
    pub fn base(&self) -> u64 {
        self.va_base
    }

    /// The real address of the arena's first byte.
    pub fn real_base(&self) -> u64 {
        self.real_base
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    #[inline]
    pub(crate) fn to_real(&self, va: u64) -> u64 {
        va.wrapping_sub(self.va_base).wrapping_add(self.real_base)
    }

    #[inline]
    pub(crate) fn to_va(&self, real: u64) -> u64 {
        real.wrapping_sub(self.real_base).wrapping_add(self.va_base)
    }

    fn stack_to_va(&self, s: Stack) -> Stack {
        Stack {
            lo: self.to_va(s.lo),
            hi: self.to_va(s.hi),
        }
    }

    /// The allocator's throws carry real addresses; make them virtual.
    fn va_throw(&self, t: Throw) -> Throw {
        match t {
            Throw::Misuse(Misuse::NotAStack { lo, hi }) => Throw::Misuse(Misuse::NotAStack {
                lo: self.to_va(lo),
                hi: self.to_va(hi),
            }),
            Throw::Misuse(Misuse::NotAHeapSpan(a)) => {
                Throw::Misuse(Misuse::NotAHeapSpan(self.to_va(a)))
            }
            Throw::Misuse(Misuse::MarkedReusedSpan(a)) => {
                Throw::Misuse(Misuse::MarkedReusedSpan(self.to_va(a)))
            }
            t => t,
        }
    }

    // ---- memory -------------------------------------------------------------

    /// The word at virtual address `va` (the profile's word size), 0 outside
    /// the arena or unaligned, as the spec's absent words.
    #[inline]
    pub(crate) fn rd(&self, va: u64) -> u64 {
        let off = va.wrapping_sub(self.va_base);
        if off >= self.len || off % self.ptr != 0 {
            return 0;
        }
        let real = self.real_base + off;
        let arena = self.stacks.arena();
        if self.ptr == 8 {
            arena.load_word(real).unwrap_or(0)
        } else {
            arena.words(real & !7, 1).map_or(0, |w| {
                W32 {
                    words: w,
                    start: (real % 8 / 4) as usize,
                    len: 1,
                }
                .ld(0)
            })
        }
    }

    /// Writes the word at virtual address `va` (masked to the word size);
    /// ignored outside the arena, where the spec writes nothing either.
    #[inline]
    pub(crate) fn wr(&self, va: u64, v: u64) {
        let off = va.wrapping_sub(self.va_base);
        if off >= self.len || off % self.ptr != 0 {
            debug_assert!(false, "write outside the arena at {va:#x}");
            return;
        }
        let real = self.real_base + off;
        let arena = self.stacks.arena();
        if self.ptr == 8 {
            arena.store_word(real, v);
        } else if let Some(w) = arena.words(real & !7, 1) {
            W32 {
                words: w,
                start: (real % 8 / 4) as usize,
                len: 1,
            }
            .st(0, v);
        }
    }

    /// The 8 bytes at a small stack's `lo` (the allocator's link word).
    fn link_bytes(&self, lo_va: u64) -> u64 {
        self.stacks
            .arena()
            .load_word(self.to_real(lo_va))
            .unwrap_or(0)
    }

    // ---- stacks through the link-word shadow ---------------------------------

    /// `stackalloc` in virtual addresses; a small stack gets its saved
    /// first bytes back.
    pub(crate) fn galloc(&mut self, ctx: Ctx, n: u64) -> Result<Stack, Throw> {
        self.stacks.check_size(n)?;
        let preemptoff = ctx.preemptoff;
        let stacks = &self.stacks;
        let p = match ctx.p {
            Some(id) => Some(
                self.ps
                    .get_mut(&id)
                    .ok_or(Throw::Misuse(Misuse::NoSuchP(id)))?,
            ),
            None => None,
        };
        let stk = stacks.stackalloc(p, preemptoff, n)?;
        if !self.stacks.from_system() && self.stacks.order_of(n).is_some() {
            let lo = self.to_va(stk.lo);
            let v = self.shadow.remove(&lo).unwrap_or(0);
            self.stacks.arena().store_word(stk.lo, v);
        }
        Ok(self.stack_to_va(stk))
    }

    /// `stackfree` in virtual addresses; a small stack's first bytes are
    /// saved before the allocator links it.
    pub(crate) fn gfree(&mut self, ctx: Ctx, stk: Stack) -> Result<(), Throw> {
        let n = stk.hi.wrapping_sub(stk.lo);
        if n & n.wrapping_sub(1) != 0 {
            return Err(gostack_spec::GoThrow::StackNotPowerOf2.into());
        }
        let small = !self.stacks.from_system() && self.stacks.order_of(n).is_some();
        let saved = if small { self.link_bytes(stk.lo) } else { 0 };
        let real = Stack {
            lo: self.to_real(stk.lo),
            hi: self.to_real(stk.hi),
        };
        let preemptoff = ctx.preemptoff;
        let stacks = &self.stacks;
        let p = match ctx.p {
            Some(id) => Some(
                self.ps
                    .get_mut(&id)
                    .ok_or(Throw::Misuse(Misuse::NoSuchP(id)))?,
            ),
            None => None,
        };
        let r = stacks.stackfree(p, preemptoff, real);
        match r {
            Ok(()) => {
                if small {
                    if saved != 0 {
                        self.shadow.insert(stk.lo, saved);
                    } else {
                        self.shadow.remove(&stk.lo);
                    }
                }
                self.prune_shadow();
                Ok(())
            }
            Err(t) => Err(self.va_throw(t)),
        }
    }

    /// Forgets the saved bytes of stacks whose span went back to the heap.
    fn prune_shadow(&mut self) {
        if self.shadow.is_empty() {
            return;
        }
        let snap = self.stacks.snapshot(&[]);
        let cache = self.consts.stack_cache_size;
        let spans: Vec<(u64, u64)> = snap
            .spans
            .iter()
            .filter(|s| s.state == SpanState::Manual && s.elemsize < cache)
            .map(|s| (s.off, s.off + s.npages * gostack_spec::heap::PAGE_SIZE))
            .collect();
        let base = self.va_base;
        self.shadow.retain(|&lo, _| {
            let off = lo.wrapping_sub(base);
            spans.iter().any(|&(a, b)| a <= off && off < b)
        });
    }

    /// The spec's value of the word at `va` when it lies in the link bytes
    /// of a free small stack, else `None`.
    fn free_link_word(&self, va: u64) -> Option<u64> {
        let off = va.wrapping_sub(self.va_base);
        if off >= self.len || off % self.consts.fixed_stack >= 8 {
            return None;
        }
        let snap = self.stacks.snapshot(&[]);
        let span = snap
            .spans
            .iter()
            .find(|s| s.off <= off && off < s.off + s.npages * gostack_spec::heap::PAGE_SIZE)?;
        if span.state != SpanState::Manual || span.elemsize >= self.consts.stack_cache_size {
            return None;
        }
        let lo_off = span.off + (off - span.off) / span.elemsize * span.elemsize;
        if off - lo_off >= 8 || snap.in_use.contains(&(lo_off, span.elemsize)) {
            return None;
        }
        let v = self
            .shadow
            .get(&(self.va_base + lo_off))
            .copied()
            .unwrap_or(0);
        Some(if self.ptr == 8 {
            v
        } else if off == lo_off {
            v & 0xffff_ffff
        } else {
            v >> 32
        })
    }

    /// Reads a word of memory (as `State::read_word`): 0 where nothing was
    /// written, and in a stack from the system that was freed (which
    /// would fault if touched: efence).
    pub fn read_word(&self, addr: u64) -> u64 {
        if let Some(v) = self.free_link_word(addr) {
            return v;
        }
        if self.stacks.in_dead_system_range(self.to_real(addr)) {
            return 0;
        }
        self.rd(addr)
    }

    // ---- the allocator's API -------------------------------------------------

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
        self.fatal(|s| {
            s.require_world_running()?;
            s.galloc(ctx, n)
        })
    }

    /// `stackfree` (as `State::stackfree`).
    pub fn stackfree(&mut self, ctx: Ctx, stk: Stack) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.gfree(ctx, stk)
        })
    }

    /// Creates a P and returns its id.
    ///
    /// Refused while a GC cycle runs (until `freeStackSpans`), as
    /// [`Runtime::destroy_p`] is.
    pub fn create_p(&mut self) -> Result<u32, Throw> {
        self.fatal(|s| {
            s.require_no_gc_cycle()?;
            let p = s.stacks.new_p();
            let id = p.id();
            s.ps.insert(id, p);
            s.next_p = s.next_p.max(id.wrapping_add(1));
            Ok(id)
        })
    }

    /// `GOMAXPROCS` waits for a GC cycle to end (`stopTheWorldGC`).
    fn require_no_gc_cycle(&self) -> Result<(), Throw> {
        if self.stacks.gcphase() != GcPhase::Off || self.stacks.spans_pending_free() {
            return Err(Misuse::WouldBlock(gostack_spec::GOMAXPROCS_WAITS).into());
        }
        Ok(())
    }

    /// Mutators wait while the world is stopped for mark termination
    /// (as `State`'s operations do).
    pub(crate) fn require_world_running(&self) -> Result<(), Throw> {
        if self.stacks.gcphase() == GcPhase::MarkTermination {
            return Err(Misuse::WouldBlock(gostack_spec::WORLD_STOPPED).into());
        }
        Ok(())
    }

    /// Refused ([`Misuse::WrongGcPhase`]) unless the GC is in `_GCmark`.
    pub(crate) fn require_mark(&self, op: &'static str) -> Result<(), Throw> {
        let phase = self.stacks.gcphase();
        if phase != GcPhase::Mark {
            return Err(Misuse::WrongGcPhase {
                op,
                needs: GcPhase::Mark.name(),
                found: phase.name(),
            }
            .into());
        }
        Ok(())
    }

    /// Destroys P `p`: its caches go to the pool, its dead goroutines to
    /// the global lists (`gfpurge`), its scan counts are dropped.
    ///
    /// Refused while a GC cycle runs (until `freeStackSpans`):
    /// `GOMAXPROCS` waits for it (`stopTheWorldGC`).
    pub fn destroy_p(&mut self, p: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_no_gc_cycle()?;
            let mut handle = s.ps.remove(&p).ok_or(Throw::Misuse(Misuse::NoSuchP(p)))?;
            let r = s.stacks.stackcache_clear(&mut handle);
            if let Err(t) = r {
                s.ps.insert(p, handle);
                return Err(t);
            }
            s.gfpurge(p);
            s.unflushed.remove(&p);
            s.prune_shadow();
            Ok(())
        })
    }

    /// `mcache.prepareForSweep` on P `p`: its caches go to the pool once
    /// per cycle, after `gc_off`; otherwise nothing changes (as
    /// `State::flush_cache`).
    pub fn flush_cache(&mut self, p: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            let handle = s.ps.get_mut(&p).ok_or(Throw::Misuse(Misuse::NoSuchP(p)))?;
            if !s.unflushed.contains(&p) {
                return Ok(());
            }
            s.stacks.stackcache_clear(handle)?;
            s.unflushed.remove(&p);
            s.prune_shadow();
            Ok(())
        })
    }

    /// `runtime.ReadMemStats` (as `State::read_mem_stats`): every P's
    /// caches are flushed, each P's sweep flush stays due; returns the
    /// figures.
    pub fn read_mem_stats(&mut self) -> Result<Stats, Throw> {
        self.fatal(|rt| {
            rt.require_world_running()?;
            // Go 1.19's readmemstats_m consistency check fails once a stack
            // from the system was sysFaulted (see the spec's read_mem_stats).
            if rt.config.profile.release == gostack_spec::Release::Go1_19
                && rt
                    .stacks
                    .system_stats()
                    .is_some_and(|s| s.faulted_bytes > 0)
            {
                return Err(gostack_spec::GoThrow::MappedReadyNotEqual.into());
            }
            for handle in rt.ps.values_mut() {
                rt.stacks.stackcache_clear(handle)?;
            }
            rt.prune_shadow();
            Ok(rt.stats())
        })
    }

    /// Takes `npages` of ordinary heap memory; returns its address.
    pub fn heap_alloc(&mut self, npages: u64) -> Result<u64, Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.stacks.heap_alloc(npages).map(|a| s.to_va(a))
        })
    }

    /// Returns heap memory taken with [`Runtime::heap_alloc`].
    pub fn heap_free(&mut self, base: u64) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.stacks
                .heap_free(s.to_real(base))
                .map_err(|t| s.va_throw(t))
        })
    }

    /// `gcStart`.
    pub fn gc_start(&mut self) -> Result<(), Throw> {
        self.fatal(|s| {
            if s.stacks.gcphase() == GcPhase::Off
                && !s.stacks.spans_pending_free()
                && !s.unflushed.is_empty()
            {
                return Err(gostack_spec::GoThrow::PMcacheNotFlushed.into());
            }
            s.stacks.gc_start()?;
            s.gor.free_g_stacks_done = false;
            for g in &mut s.gor.gs {
                g.gcscandone = false;
            }
            s.gor.n_stack_roots = s.gor.gs.len() as u32;
            Ok(())
        })
    }

    /// `gcMarkTermination` (as `State::gc_mark_termination`): the stack
    /// roots no worker scanned are scanned on the first P, the next
    /// starting stack size is computed, the pending markers mark, and the
    /// root job `markrootFreeGStacks` runs if no worker ran it.
    pub fn gc_mark_termination(&mut self) -> Result<(), Throw> {
        self.fatal(|s| {
            // Every refusal comes before anything changes: the phase, the
            // scans left and the starting size they lead to, then the
            // markers (the allocator's call, which changes nothing when it
            // fails), as the spec orders them. The scans then run with the
            // phase already _GCmarktermination, which frees treat as
            // _GCmark.
            s.require_mark("gcMarkTermination")?;
            let p = s.plan_roots_left()?;
            s.stacks.gc_mark_termination().map_err(|t| s.va_throw(t))?;
            s.scan_roots_left(p)?;
            if !s.gor.free_g_stacks_done {
                let ctx = match s.ps.keys().next() {
                    Some(&p) => Ctx::on(p),
                    None => Ctx::no_p(),
                };
                s.free_g_stacks(ctx)?;
            }
            s.gc_compute_starting_stack_size()
        })
    }

    /// `setGCPhase(_GCoff)`.
    pub fn gc_off(&mut self) -> Result<(), Throw> {
        self.fatal(|s| {
            s.stacks.gc_off()?;
            s.unflushed = s.ps.keys().copied().collect();
            Ok(())
        })
    }

    /// `freeStackSpans`.
    pub fn free_stack_spans(&mut self) -> Result<(), Throw> {
        self.fatal(|s| {
            s.stacks.free_stack_spans()?;
            s.prune_shadow();
            Ok(())
        })
    }

    /// The end of a GC cycle, every P's cache flushed in id order.
    pub fn gc_end(&mut self) -> Result<(), Throw> {
        self.fatal(|s| {
            if s.stacks.gcphase() == GcPhase::Mark {
                s.gc_mark_termination()?;
            }
            let mut ps: Vec<&mut P> = s.ps.values_mut().collect();
            s.stacks.gc_end(&mut ps).map_err(|t| s.va_throw(t))?;
            s.unflushed.clear();
            s.prune_shadow();
            Ok(())
        })
    }

    /// A GC marker reads `addr`.
    pub fn gc_mark_read(&mut self, addr: u64) -> Result<u32, Throw> {
        self.fatal(|s| {
            let id = s
                .stacks
                .gc_mark_read(s.to_real(addr))
                .map_err(|t| s.va_throw(t))?;
            s.next_marker = s.next_marker.max(id.wrapping_add(1));
            Ok(id)
        })
    }

    /// The marker marks what it read.
    pub fn gc_mark(&mut self, id: u32) -> Result<(), Throw> {
        self.fatal(|s| s.stacks.gc_mark(id).map_err(|t| s.va_throw(t)))
    }

    /// The observable state, as `State::snapshot`.
    pub fn snapshot(&self) -> Snapshot {
        let ps: Vec<&P> = self.ps.values().collect();
        let mut s = self.stacks.snapshot(&ps);
        s.goroutines = self.g_snapshot();
        s
    }

    /// The rest of the observable state, as `State::world`.
    pub fn world(&self) -> WorldSnap {
        let mut w = self.gor_world();
        w.next_p = self.next_p;
        w.next_marker = self.next_marker;
        w.unflushed = self.unflushed.iter().copied().collect();
        let off = |stk: Stack| stk.lo.wrapping_sub(self.va_base);
        w.ms = self
            .ms
            .iter()
            .map(|(&id, m)| (id, off(m.g0), off(m.gsignal)))
            .collect();
        w.freem = self.freem.iter().map(|&(id, stk)| (id, off(stk))).collect();
        w.next_m = self.next_m;
        w.markers = self
            .stacks
            .markers()
            .into_iter()
            .map(|(id, a)| (id, a.wrapping_sub(self.real_base)))
            .collect();
        w
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
        assert_eq!(r.create_p().unwrap(), 0);
        assert_eq!(r.create_p().unwrap(), 1);
        // Size checks come before the P check; a size that is not a power
        // of two is a Go throw, fatal (so on another runtime).
        let mut dead = rt();
        dead.create_p().unwrap();
        assert_eq!(
            dead.stackalloc(Ctx::on(9), 3000),
            Err(Throw::Go(GoThrow::StackSizeNotPowerOf2))
        );
        assert_eq!(
            dead.stackalloc(Ctx::on(0), 8192),
            Err(Throw::Misuse(Misuse::Dead(GoThrow::StackSizeNotPowerOf2)))
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
        // Addresses are the spec's: from config.arena_base.
        assert_eq!(stk.lo & !0xff_ffff, 0xc0_0000_0000);
        assert_eq!(r.stats().cached_bytes[&0], 8192);
        r.destroy_p(0).unwrap();
        assert_eq!(r.destroy_p(0), Err(Throw::Misuse(Misuse::NoSuchP(0))));
        assert_eq!(r.ps(), vec![1]);
        r.stackfree(Ctx::on(1), stk).unwrap();
        assert_eq!(
            r.stackfree(Ctx::on(1), stk),
            Err(Throw::Misuse(Misuse::NotAStack {
                lo: stk.lo,
                hi: stk.hi
            }))
        );
        r.gc_start().unwrap();
        r.gc_end().unwrap();
        assert_eq!(r.gcphase(), GcPhase::Off);
        assert!(!r.spans_pending_free());
        assert!(r.snapshot().spans.is_empty());
        assert_eq!(r.world().next_p, 2);
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

    /// A free small stack's first bytes hold the allocator's link; the
    /// runtime keeps what the goroutine layer wrote there and gives it back
    /// with the stack.
    #[test]
    fn link_bytes_are_saved_and_restored() {
        let mut c = Config::new(Profile::parse("linux", "386", false, "1.19").unwrap());
        c.arena_bytes = 4 << 20;
        let mut r = Runtime::new(c).unwrap();
        let p = r.create_p().unwrap();
        let a = r.stackalloc(Ctx::on(p), 2048).unwrap();
        let b = r.stackalloc(Ctx::on(p), 2048).unwrap();
        assert_eq!(r.read_word(a.lo), 0);
        r.wr(a.lo, 0x1234);
        r.wr(a.lo + 4, 0x5678);
        r.stackfree(Ctx::on(p), a).unwrap();
        r.stackfree(Ctx::on(p), b).unwrap();
        // b's link points at a in real memory; read_word shows the spec's.
        assert_ne!(r.link_bytes(b.lo), 0);
        assert_eq!(r.read_word(b.lo), 0);
        assert_eq!(r.read_word(a.lo), 0x1234);
        assert_eq!(r.read_word(a.lo + 4), 0x5678);
        let b2 = r.stackalloc(Ctx::on(p), 2048).unwrap();
        assert_eq!(b2, b);
        assert_eq!(r.rd(b.lo), 0);
        let a2 = r.stackalloc(Ctx::on(p), 2048).unwrap();
        assert_eq!(a2, a);
        assert_eq!((r.rd(a.lo), r.rd(a.lo + 4)), (0x1234, 0x5678));
    }
}
