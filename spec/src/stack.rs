//! The stack allocator: stackpool, per-P stackcache, stackLarge, and the
//! GC-deferred freeing of stack spans (runtime/stack.go).
//!
//! # How Go allocates a stack
//! Sizes are powers of two. A size below both `fixedStack << _NumStackOrders`
//! and `_StackCacheSize` belongs to an *order* (order 0 is fixedStack, each
//! next order doubles) and is served from free lists:
//! - each P has a `stackcache` per order: a list of free stacks and its byte
//!   count. An allocation pops the head; an empty cache is first refilled
//!   with half of `_StackCacheSize` from the global pool. A free pushes on
//!   the head; a cache already at `_StackCacheSize` is first released down
//!   to half into the pool.
//! - the global `stackpool` per order is a list of spans of
//!   `_StackCacheSize` bytes (4 pages) cut into stacks of that order, each
//!   span with its own free list. Only spans with a free stack are listed;
//!   allocation takes from the first span, a span that gains its first free
//!   stack goes to the front.
//! - with no P, or with `m.preemptoff` set (or the stackNoCache debug
//!   switch), allocation and free go straight to the pool under its lock.
//!
//! Larger sizes get a span of their own, from `stackLarge` (free spans by
//! log2 of their page count) or from the heap.
//!
//! # Why freeing waits for the GC
//! While the garbage collector is marking, it may hold a pointer into a
//! stack that it has not yet marked (a `sudog.elem`, say); if that stack is
//! then copied and freed and its span returned to the heap, marking the
//! pointer finds a free span and crashes. So while `gcphase` is not off, an
//! empty pool span stays in its pool list and a freed large stack goes to
//! `stackLarge`; `freeStackSpans`, after the GC cycle, returns both to the
//! heap (see golang/go#11267 and the comment in Go's `stackpoolfree`).
//!
//! # The model
//! Stacks are identified by their address. Lists are `Vec`s with the head at
//! index 0, so "push on the front" is `insert(0, _)`. Every public operation
//! is all-or-nothing: it runs on a copy of the state and keeps the copy only
//! if it succeeds, so a throw leaves the state exactly as it was.
//!
//! Go's internal consistency throws in `stackpoolalloc` ("bad allocCount",
//! "bad manualFreeList", "span has no free stacks") cannot fire in this
//! model; `check_invariants` states the facts they guard.

use crate::gothrow::{GoThrow, Misuse};
use crate::heap::{PageHeap, SpanState, PAGE_SIZE};
use crate::profile::{Consts, Profile};
use crate::throw::Throw;
use serde::Serialize;
use std::collections::BTreeMap;

/// How a spec instance is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The platform whose constants apply.
    pub profile: Profile,
    /// Address of the arena's first byte (page aligned).
    pub arena_base: u64,
    /// Bytes the arena may ever map: a multiple of 4 MiB (the heap grows in
    /// 512-page chunks).
    pub arena_bytes: u64,
    /// `stackNoCache`: every small allocation and free goes to the pool.
    pub no_cache: bool,
    /// `stackPoisonCopy`: a new stack is filled with 0xfd before a copy,
    /// the old one with 0xfc after it.
    pub poison_copy: bool,
    /// `stackFromSystem`: every stack is its own OS mapping (see
    /// [`SysStacks`]); freed with `sysFree` unless faults are asked for.
    pub stack_from_system: bool,
    /// `stackFaultOnFree`: with `stackFromSystem`, a freed stack is made
    /// inaccessible (`sysFault`) and its range never reused. Go ignores
    /// it otherwise.
    pub stack_fault_on_free: bool,
    /// The GODEBUG switches that change the stack system.
    pub godebug: Godebug,
}

/// The `GODEBUG` settings that change what the stack system does
/// (runtime/runtime1.go `dbgvars`, the same in Go 1.19 and 1.23).
/// `Godebug::default()` is Go's default for each.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Godebug {
    /// `adaptivestackstart` (default 1). With 0, `gcComputeStartingStackSize`
    /// returns at once: new goroutines keep getting fixedStack, and the
    /// Ps' scan counts are never reset.
    pub adaptive_stack_start: bool,
    /// `invalidptr` (default 1). With 0, `adjustpointers` lets a small
    /// non-zero word in a live pointer slot through instead of throwing
    /// "invalid pointer found on stack".
    pub invalid_ptr: bool,
    /// `gcshrinkstackoff` (default 0). With 1, `shrinkstack` returns
    /// after its safety checks: stacks never shrink (a scan of an unsafe
    /// goroutine still sets `preemptShrink`).
    pub gc_shrink_stack_off: bool,
    /// `efence` (default 0). With 1, `stackalloc` and `stackfree` take
    /// the `stackFromSystem` path with `stackFaultOnFree`: every stack is
    /// its own page-rounded OS mapping, made inaccessible when freed and
    /// never reused (see [`SysStacks`]). Go reads it once, in `schedinit`
    /// after m0's signal stack exists; the spec has no m0, so it applies
    /// to every stack.
    pub efence: bool,
}

impl Default for Godebug {
    fn default() -> Godebug {
        Godebug {
            adaptive_stack_start: true,
            invalid_ptr: true,
            gc_shrink_stack_off: false,
            efence: false,
        }
    }
}

impl Config {
    /// A configuration with Go-like defaults: the arena at 0xc000000000 (Go's
    /// first heap hint on 64-bit) or 0x10000000 on 32-bit, 1 GiB (256 MiB on
    /// 32-bit), caches on.
    pub fn new(profile: Profile) -> Config {
        let wide = profile.goarch.ptr_size() == 8;
        Config {
            profile,
            arena_base: if wide { 0xc0_0000_0000 } else { 0x1000_0000 },
            arena_bytes: if wide { 1 << 30 } else { 256 << 20 },
            no_cache: false,
            poison_copy: false,
            stack_from_system: false,
            stack_fault_on_free: false,
            godebug: Godebug::default(),
        }
    }
}

/// A stack's bounds: `[lo, hi)` (`stack`, runtime/runtime2.go).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Stack {
    /// Lowest address.
    pub lo: u64,
    /// One past the highest address.
    pub hi: u64,
}

/// Who is calling: the M's P, if it has one, and whether `m.preemptoff` is
/// set.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ctx {
    /// The P the calling M holds.
    pub p: Option<u32>,
    /// `m.preemptoff != ""`.
    pub preemptoff: bool,
}

impl Ctx {
    /// Running on P `p`.
    pub fn on(p: u32) -> Ctx {
        Ctx {
            p: Some(p),
            preemptoff: false,
        }
    }

    /// Running without a P (in exitsyscall or procresize).
    pub fn no_p() -> Ctx {
        Ctx {
            p: None,
            preemptoff: false,
        }
    }
}

/// `gcphase` (runtime/mgc.go).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub enum GcPhase {
    /// `_GCoff`: not running; sweeping.
    Off,
    /// `_GCmark`: marking.
    Mark,
    /// `_GCmarktermination`: the world is stopped to finish marking.
    MarkTermination,
}

impl GcPhase {
    /// Go's name.
    pub fn name(self) -> &'static str {
        match self {
            GcPhase::Off => "_GCoff",
            GcPhase::Mark => "_GCmark",
            GcPhase::MarkTermination => "_GCmarktermination",
        }
    }
}

/// One order of a P's cache (`stackfreelist`, runtime/mcache.go).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CacheOrder {
    /// Free stacks, head first.
    pub list: Vec<u64>,
    /// Their total bytes.
    pub size: u64,
}

/// A P's stack cache (`mcache.stackcache`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct P {
    /// Per order.
    pub stackcache: Vec<CacheOrder>,
}

/// The spec's whole state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// The configuration it was made with.
    pub config: Config,
    /// The profile's constants.
    pub consts: Consts,
    /// The page heap.
    pub heap: PageHeap,
    /// `stackpool`: per order, the span bases with a free stack, head first.
    pub stackpool: Vec<Vec<u64>>,
    /// `stackLarge.free`: by log2 of the page count, free large stack spans,
    /// head first. Only non-empty classes are present.
    pub stack_large: BTreeMap<u32, Vec<u64>>,
    /// The Ps by id.
    pub ps: BTreeMap<u32, P>,
    /// The id the next P gets.
    pub next_p: u32,
    /// `gcphase`.
    pub gcphase: GcPhase,
    /// The GC has ended (phase off) but `freeStackSpans` has not run yet.
    pub spans_pending_free: bool,
    /// Ps whose caches were not flushed since the last GC turned off (Go:
    /// `mcache.flushGen != mheap_.sweepgen`; a P made since then starts
    /// flushed). `gcStart` throws "p mcache not flushed" while one is left.
    pub unflushed: std::collections::BTreeSet<u32>,
    /// Stacks handed out by `stackalloc` and not yet freed: lo to size.
    pub in_use: BTreeMap<u64, u64>,
    /// Pointers into stacks that a GC marker has read and not yet marked.
    pub markers: BTreeMap<u32, u64>,
    /// The id the next marker gets.
    pub next_marker: u32,
    /// Goroutines, their memory, channels and sudogs.
    pub gor: crate::goroutine::Goroutines,
    /// Stacks from the OS (`stackFromSystem`, `GODEBUG=efence=1`).
    pub sys: SysStacks,
    /// The Go throw that killed the runtime, if one did: a `throw` is
    /// fatal in Go, so every later operation is refused with
    /// [`Misuse::Dead`] and the state stays as it was before the fatal
    /// operation.
    pub dead: Option<crate::GoThrow>,
}

/// Go's `physPageSize` as the spec models it: 4 KiB on every profile (the
/// page of the linux/amd64, linux/386 and most linux/arm64 hosts; Go reads
/// the real one from the OS at startup).
pub const PHYS_PAGE_SIZE: u64 = 4096;

/// The stacks `stackalloc` takes straight from the OS with `sysAlloc`
/// when `stackFromSystem` or `GODEBUG=efence=1` is on (runtime/stack.go,
/// both releases: the first branch of `stackalloc` and of `stackfree`,
/// before the pools, the caches and the GC phase are looked at).
///
/// - The size is rounded up to the physical page: a 2 KiB request gets a
///   4 KiB stack, so a goroutine's first stack is twice its starting size
///   and `gfput` never keeps it (its size is not `startingStackSize`).
/// - The bytes count in `StackSys` (`memstats.stacks_sys`) and never in
///   `StackInuse`.
/// - `stackfree` either unmaps the stack (`sysFree`, lowering StackSys) or,
///   with efence or `stackFaultOnFree`, makes it inaccessible (`sysFault`:
///   its range stays reserved, StackSys stays as it was, and the address is
///   never handed out again).
///
/// Where the OS puts a mapping is the OS's business; the spec fixes it so
/// that runs are reproducible: the system's address space is a region of
/// `arena_bytes` right above the arena, `[arena_base + arena_bytes,
/// arena_base + 2 * arena_bytes)`, and each mapping takes the lowest free
/// range that fits (`sysFree`d ranges become free again and merge with
/// their neighbours; faulted ranges never do). A region with no room is
/// Go's "out of memory (stackalloc)" (`sysAlloc` returned nil).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SysStacks {
    /// Free ranges of the region: first address to length, maximal.
    pub free: BTreeMap<u64, u64>,
    /// `memstats.stacks_sys`: bytes mapped for stacks and not `sysFree`d.
    pub stacks_sys: u64,
    /// Bytes `sysFault`ed: reserved and inaccessible for good. Go lowers
    /// `mappedReady` by them but not `stacks_sys`.
    pub faulted: u64,
}

/// The checks `stackalloc` makes of a size before anything else, in
/// order: above 2^32 (Go's `n` is a `uint32`: [`Misuse::StackTooLarge`]),
/// not a power of two (Go's "stack size not a power of 2"), zero
/// ([`Misuse::ZeroSizeStack`]), below `fixed_stack` ([`Misuse::StackTooSmall`]:
/// Go never asks for less). Any stack allocator with Go's interface owes
/// these answers; `gostack_models::alloc` holds candidates to them.
pub fn check_stack_size(n: u64, fixed_stack: u64) -> Result<(), Throw> {
    if n > u64::from(u32::MAX) {
        return Err(Misuse::StackTooLarge(n).into());
    }
    if n & n.wrapping_sub(1) != 0 {
        return Err(GoThrow::StackSizeNotPowerOf2.into());
    }
    if n == 0 {
        return Err(Misuse::ZeroSizeStack.into());
    }
    if n < fixed_stack {
        return Err(Misuse::StackTooSmall { n, fixed_stack }.into());
    }
    Ok(())
}

/// `stacklog2` (runtime/stack.go): floor of log2 of n, 0 for 0 and 1.
pub fn stacklog2(mut n: u64) -> u32 {
    let mut log2 = 0;
    while n > 1 {
        n >>= 1;
        log2 += 1;
    }
    log2
}

impl State {
    /// A fresh stack system: empty pools, no P, GC off, nothing mapped.
    ///
    /// Go: `stackinit` (runtime/stack.go), whose only check
    /// (`_StackCacheSize` is a multiple of the page size) holds for every
    /// profile.
    pub fn new(config: Config) -> Result<State, Throw> {
        let chunk = crate::heap::GROWTH_PAGES * PAGE_SIZE;
        if config.arena_base % PAGE_SIZE != 0 {
            return Err(Misuse::BadArena(format!(
                "base {:#x} is not page aligned",
                config.arena_base
            ))
            .into());
        }
        if config.arena_bytes == 0 || config.arena_bytes % chunk != 0 {
            return Err(Misuse::BadArena(format!(
                "size {} is not a positive multiple of {chunk}",
                config.arena_bytes
            ))
            .into());
        }
        let ptr_max = if config.profile.goarch.ptr_size() == 8 {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        if config
            .arena_base
            .checked_add(config.arena_bytes)
            .is_none_or(|end| end - 1 > ptr_max)
        {
            return Err(
                Misuse::BadArena("the arena does not fit in the address space".into()).into(),
            );
        }
        let from_system = config.stack_from_system || config.godebug.efence;
        let region = config.arena_base + config.arena_bytes;
        if from_system
            && region
                .checked_add(config.arena_bytes)
                .is_none_or(|end| end - 1 > ptr_max)
        {
            return Err(Misuse::BadArena(
                "the region for stacks from the system (as large as the arena, right above it) does not fit in the address space".into(),
            )
            .into());
        }
        let consts = config.profile.consts();
        let orders = consts.num_stack_orders as usize;
        Ok(State {
            sys: SysStacks {
                free: if from_system {
                    BTreeMap::from([(region, config.arena_bytes)])
                } else {
                    BTreeMap::new()
                },
                ..SysStacks::default()
            },
            heap: PageHeap::new(config.arena_base, config.arena_bytes / PAGE_SIZE),
            stackpool: vec![Vec::new(); orders],
            stack_large: BTreeMap::new(),
            ps: BTreeMap::new(),
            next_p: 0,
            gcphase: GcPhase::Off,
            spans_pending_free: false,
            unflushed: Default::default(),
            in_use: BTreeMap::new(),
            markers: BTreeMap::new(),
            next_marker: 0,
            gor: crate::goroutine::Goroutines {
                starting_stack_size: consts.fixed_stack,
                maxstacksize: consts.maxstacksize,
                ..Default::default()
            },
            consts,
            config,
            dead: None,
        })
    }

    /// Runs `f` on a copy of the state and keeps the copy only if `f`
    /// succeeds, so a refused operation ([`Throw::Misuse`],
    /// [`Throw::Invalid`]) changes nothing. A Go throw is fatal, as in Go:
    /// the state stays as it was before the operation, marked dead, and
    /// every later operation is refused with [`Misuse::Dead`] (an
    /// implementation may leave its own memory in any state after a
    /// throw; only the throw itself is compared).
    pub(crate) fn transact<T>(
        &mut self,
        f: impl FnOnce(&mut State) -> Result<T, Throw>,
    ) -> Result<T, Throw> {
        self.alive()?;
        let mut next = self.clone();
        match f(&mut next) {
            Ok(out) => {
                *self = next;
                Ok(out)
            }
            Err(t) => {
                crate::coverage::throw(&t);
                self.die(&t);
                Err(t)
            }
        }
    }

    /// Refused with [`Misuse::Dead`] once a Go throw killed the runtime.
    pub(crate) fn alive(&self) -> Result<(), Throw> {
        match &self.dead {
            Some(g) => Err(Misuse::Dead(*g).into()),
            None => Ok(()),
        }
    }

    /// Marks the runtime dead when `t` is a Go throw.
    pub(crate) fn die(&mut self, t: &Throw) {
        if let Throw::Go(g) = t {
            self.dead = Some(*g);
        }
    }

    /// An operation that validates before it mutates, so it needs no copy:
    /// refused once the runtime is dead, and kills it when it throws.
    pub(crate) fn fatal<T>(
        &mut self,
        f: impl FnOnce(&mut State) -> Result<T, Throw>,
    ) -> Result<T, Throw> {
        self.alive()?;
        let r = f(self);
        if let Err(t) = &r {
            crate::coverage::throw(t);
            self.die(t);
        }
        r
    }

    /// The order serving size `n`, or `None` when `n` takes the large path:
    /// the test and loop at the top of `stackalloc` and `stackfree`.
    pub fn order_of(&self, n: u64) -> Option<usize> {
        let fixed = self.consts.fixed_stack;
        if n < fixed << self.consts.num_stack_orders && n < self.consts.stack_cache_size {
            let mut order = 0;
            let mut n2 = n;
            while n2 > fixed {
                order += 1;
                n2 >>= 1;
            }
            Some(order)
        } else {
            None
        }
    }

    fn elemsize(&self, order: usize) -> u64 {
        self.consts.fixed_stack << order
    }

    fn cache_mut(&mut self, p: u32) -> Result<&mut P, Throw> {
        self.ps.get_mut(&p).ok_or_else(|| Misuse::NoSuchP(p).into())
    }

    /// Takes a stack from the pool of `order`, cutting a new span from the
    /// heap when the pool is empty. The new span's free list is built by
    /// pushing its stacks from the lowest address up, so its head is the
    /// highest stack.
    ///
    /// Go: `stackpoolalloc` (runtime/stack.go).
    fn stackpoolalloc(&mut self, order: usize) -> Result<u64, Throw> {
        let elemsize = self.elemsize(order);
        let base = match self.stackpool[order].first() {
            Some(&base) => base,
            None => {
                let npages = self.consts.stack_cache_size / PAGE_SIZE;
                let base = self
                    .heap
                    .alloc_span(npages, SpanState::Manual)
                    .ok_or(Throw::Go(GoThrow::OutOfMemory))?;
                crate::coverage::hit("stackpoolalloc: new span from the heap");
                let span = self.heap.span_mut(base).expect("span just allocated");
                span.elemsize = elemsize;
                for i in (0..self.consts.stack_cache_size).step_by(elemsize as usize) {
                    span.free_list.insert(0, base + i);
                }
                self.stackpool[order].insert(0, base);
                base
            }
        };
        let span = self
            .heap
            .span_mut(base)
            .expect("pool lists hold live spans");
        let x = span.free_list.remove(0);
        span.alloc_count += 1;
        if span.free_list.is_empty() {
            // Every stack of the span is out: it leaves the list.
            crate::coverage::hit("stackpoolalloc: span leaves the pool list");
            self.stackpool[order].retain(|&b| b != base);
        }
        Ok(x)
    }

    /// Returns stack `x` to its span. A span that gains its first free stack
    /// goes to the front of the pool list; a span left with no stack out is
    /// returned to the heap at once, unless the GC is running.
    ///
    /// Go: `stackpoolfree` (runtime/stack.go).
    fn stackpoolfree(&mut self, x: u64, order: usize) -> Result<(), Throw> {
        let base = match self.heap.span_of(x) {
            Some(s) if s.state == SpanState::Manual => s.base,
            Some(_) => return Err(GoThrow::FreeingStackNotInStackSpan.into()),
            None => {
                return Err(Misuse::NotAStack {
                    lo: x,
                    hi: x + self.elemsize(order),
                }
                .into())
            }
        };
        let gc_off = self.gcphase == GcPhase::Off;
        let span = self.heap.span_mut(base).expect("span_of found it");
        let was_full = span.free_list.is_empty();
        span.free_list.insert(0, x);
        span.alloc_count -= 1;
        let now_empty = span.alloc_count == 0;
        if was_full {
            crate::coverage::hit("stackpoolfree: span joins the pool list");
            self.stackpool[order].insert(0, base);
        }
        if gc_off && now_empty {
            crate::coverage::hit("stackpoolfree: empty span back to the heap");
            self.stackpool[order].retain(|&b| b != base);
            self.release_span(base);
        } else if now_empty {
            crate::coverage::hit("stackpoolfree: empty span kept during GC");
        }
        Ok(())
    }

    /// Fills P `p`'s empty cache of `order` with half of `_StackCacheSize`
    /// from the pool. The stacks are pushed as they come, so the last one
    /// taken is the head.
    ///
    /// Go: `stackcacherefill` (runtime/stack.go).
    fn stackcacherefill(&mut self, p: u32, order: usize) -> Result<(), Throw> {
        crate::coverage::hit("stackcacherefill");
        let mut list = Vec::new();
        let mut size = 0;
        while size < self.consts.stack_cache_size / 2 {
            let x = self.stackpoolalloc(order)?;
            list.insert(0, x);
            size += self.elemsize(order);
        }
        let c = &mut self.cache_mut(p)?.stackcache[order];
        c.list = list;
        c.size = size;
        Ok(())
    }

    /// Moves stacks from the head of P `p`'s cache of `order` to the pool
    /// until the cache holds half of `_StackCacheSize`.
    ///
    /// Go: `stackcacherelease` (runtime/stack.go).
    fn stackcacherelease(&mut self, p: u32, order: usize) -> Result<(), Throw> {
        let elemsize = self.elemsize(order);
        let half = self.consts.stack_cache_size / 2;
        crate::coverage::hit("stackcacherelease");
        let mut c = std::mem::take(&mut self.cache_mut(p)?.stackcache[order]);
        while c.size > half {
            let x = c.list.remove(0);
            self.stackpoolfree(x, order)?;
            c.size -= elemsize;
        }
        self.cache_mut(p)?.stackcache[order] = c;
        Ok(())
    }

    /// Returns every stack of P `p`'s cache to the pool, order by order,
    /// head first.
    ///
    /// Go: `stackcache_clear` (runtime/stack.go), called when a P is
    /// destroyed (`freemcache`) and after each GC (`mcache.prepareForSweep`).
    fn stackcache_clear(&mut self, p: u32) -> Result<(), Throw> {
        crate::coverage::hit("stackcache_clear");
        for order in 0..self.stackpool.len() {
            let c = std::mem::take(&mut self.cache_mut(p)?.stackcache[order]);
            for x in c.list {
                self.stackpoolfree(x, order)?;
            }
        }
        Ok(())
    }

    /// Allocates a stack of `n` bytes.
    ///
    /// Go: `stackalloc` (runtime/stack.go). Paths: the power-of-two throw;
    /// small sizes from the pool directly (no P, preemptoff, stackNoCache)
    /// or through the P's cache (refilled when empty); large sizes from
    /// `stackLarge` or the heap.
    ///
    /// Sizes below fixedStack are refused ([`Misuse::StackTooSmall`]): Go
    /// never asks for them (every caller rounds up to at least fixedStack),
    /// and if it did, order 0 would serve them while the cache's byte count
    /// moved by the size asked for, so the count would drift from its list.
    pub fn stackalloc(&mut self, ctx: Ctx, n: u64) -> Result<Stack, Throw> {
        self.require_world_running()?;
        self.transact(|s| s.stackalloc_inner(ctx, n))
    }

    pub(crate) fn stackalloc_inner(&mut self, ctx: Ctx, n: u64) -> Result<Stack, Throw> {
        check_stack_size(n, self.consts.fixed_stack)?;
        if let Some(p) = ctx.p {
            self.cache_mut(p)?;
        }
        if self.from_system() {
            return self.sys_alloc(n);
        }
        let v = match self.order_of(n) {
            Some(order) => match ctx.p {
                Some(p) if !self.config.no_cache && !ctx.preemptoff => {
                    if self.cache_mut(p)?.stackcache[order].list.is_empty() {
                        self.stackcacherefill(p, order)?;
                    }
                    crate::coverage::hit("stackalloc: from the P cache");
                    let c = &mut self.cache_mut(p)?.stackcache[order];
                    let x = c.list.remove(0);
                    c.size -= n;
                    x
                }
                _ => {
                    crate::coverage::hit("stackalloc: pool without a cache");
                    self.stackpoolalloc(order)?
                }
            },
            None => {
                let npage = n / PAGE_SIZE;
                let log2npage = stacklog2(npage);
                let reused = match self.stack_large.get_mut(&log2npage) {
                    Some(list) => {
                        let s = list.remove(0);
                        if list.is_empty() {
                            self.stack_large.remove(&log2npage);
                        }
                        Some(s)
                    }
                    None => None,
                };
                match reused {
                    Some(base) => {
                        crate::coverage::hit("stackalloc: large from stackLarge");
                        base
                    }
                    None => {
                        let base = self
                            .heap
                            .alloc_span(npage, SpanState::Manual)
                            .inspect(|_| crate::coverage::hit("stackalloc: large from the heap"))
                            .ok_or(Throw::Go(GoThrow::OutOfMemory))?;
                        self.heap
                            .span_mut(base)
                            .expect("span just allocated")
                            .elemsize = n;
                        base
                    }
                }
            }
        };
        self.in_use.insert(v, n);
        Ok(Stack { lo: v, hi: v + n })
    }

    /// Frees a stack that `stackalloc` returned.
    ///
    /// Go: `stackfree` (runtime/stack.go). Paths: the power-of-two throw;
    /// small sizes to the pool directly (no P, preemptoff, stackNoCache) or
    /// onto the P's cache (released to half first when full); large sizes
    /// back to the heap with GC off, or to `stackLarge` while the GC runs.
    ///
    /// Bounds that are not a stack in use are refused: with Go's own throw
    /// where Go checks ("freeing stack not in a stack span" on the pool path,
    /// "bad span state" on the large path), and with
    /// [`Misuse::NotAStack`] where Go would silently corrupt its lists.
    pub fn stackfree(&mut self, ctx: Ctx, stk: Stack) -> Result<(), Throw> {
        self.require_world_running()?;
        self.transact(|s| s.stackfree_inner(ctx, stk))
    }

    pub(crate) fn stackfree_inner(&mut self, ctx: Ctx, stk: Stack) -> Result<(), Throw> {
        let n = stk.hi.wrapping_sub(stk.lo);
        if n & n.wrapping_sub(1) != 0 {
            return Err(GoThrow::StackNotPowerOf2.into());
        }
        if let Some(p) = ctx.p {
            self.cache_mut(p)?;
        }
        if self.from_system() {
            return self.sys_free(stk);
        }
        let order = self.order_of(n);
        let direct = ctx.p.is_none() || ctx.preemptoff || self.config.no_cache;
        if self.in_use.get(&stk.lo) != Some(&n) {
            return Err(self.bad_free(stk, order.is_some(), direct));
        }
        self.in_use.remove(&stk.lo);
        let v = stk.lo;
        match order {
            Some(order) => match ctx.p {
                Some(p) if !direct => {
                    if self.cache_mut(p)?.stackcache[order].size >= self.consts.stack_cache_size {
                        self.stackcacherelease(p, order)?;
                    }
                    let c = &mut self.cache_mut(p)?.stackcache[order];
                    crate::coverage::hit("stackfree: onto the P cache");
                    c.list.insert(0, v);
                    c.size += n;
                }
                _ => {
                    crate::coverage::hit("stackfree: pool without a cache");
                    self.stackpoolfree(v, order)?
                }
            },
            None => {
                let npages = self.heap.span_of(v).map(|s| s.npages).unwrap_or(0);
                if self.gcphase == GcPhase::Off {
                    crate::coverage::hit("stackfree: large back to the heap");
                    self.release_span(v);
                } else {
                    crate::coverage::hit("stackfree: large to stackLarge during GC");
                    self.stack_large
                        .entry(stacklog2(npages))
                        .or_default()
                        .insert(0, v);
                }
            }
        }
        Ok(())
    }

    /// Stacks come from the OS: `stackFromSystem` or `GODEBUG=efence=1`.
    pub fn from_system(&self) -> bool {
        self.config.stack_from_system || self.config.godebug.efence
    }

    /// The bytes `stackalloc(n)` hands out: `n`, rounded up to the
    /// physical page when stacks come from the system.
    pub fn stack_len(&self, n: u64) -> u64 {
        if self.from_system() {
            n.div_ceil(PHYS_PAGE_SIZE) * PHYS_PAGE_SIZE
        } else {
            n
        }
    }

    /// The `stackFromSystem` branch of `stackalloc` (runtime/stack.go, Go
    /// 1.19 and 1.23; `sysAlloc` is runtime/mem.go): `n` rounded up to the
    /// physical page, mapped at the lowest free range of the region; none
    /// left is "out of memory (stackalloc)".
    fn sys_alloc(&mut self, n: u64) -> Result<Stack, Throw> {
        let len = self.stack_len(n);
        let (lo, run) = self
            .sys
            .free
            .iter()
            .map(|(&lo, &run)| (lo, run))
            .find(|&(_, run)| run >= len)
            .ok_or(Throw::Go(GoThrow::OutOfMemoryStackalloc))?;
        self.sys.free.remove(&lo);
        if run > len {
            self.sys.free.insert(lo + len, run - len);
        }
        crate::coverage::hit("stackalloc: from the system (stackFromSystem, efence)");
        self.sys.stacks_sys += len;
        self.in_use.insert(lo, len);
        Ok(Stack { lo, hi: lo + len })
    }

    /// The `stackFromSystem` branch of `stackfree` (runtime/stack.go, Go
    /// 1.19 and 1.23; `sysFault` and `sysFree` are runtime/mem.go):
    /// `sysFault` with efence or `stackFaultOnFree`, `sysFree` otherwise. Go takes any bounds
    /// here (it would unmap or protect whatever it is given); the spec
    /// refuses bounds that are not a stack in use with
    /// [`Misuse::NotAStack`].
    fn sys_free(&mut self, stk: Stack) -> Result<(), Throw> {
        let n = stk.hi - stk.lo;
        if self.in_use.get(&stk.lo) != Some(&n) {
            return Err(Misuse::NotAStack {
                lo: stk.lo,
                hi: stk.hi,
            }
            .into());
        }
        self.in_use.remove(&stk.lo);
        let words: Vec<u64> = self
            .gor
            .mem
            .range(stk.lo..stk.hi)
            .map(|(&a, _)| a)
            .collect();
        for a in words {
            self.gor.mem.remove(&a);
        }
        if self.config.godebug.efence || self.config.stack_fault_on_free {
            crate::coverage::hit("stackfree: sysFault (efence, stackFaultOnFree)");
            self.sys.faulted += n;
            return Ok(());
        }
        crate::coverage::hit("stackfree: sysFree (stackFromSystem)");
        self.sys.stacks_sys -= n;
        let (mut lo, mut len) = (stk.lo, n);
        if let Some((&plo, &plen)) = self.sys.free.range(..lo).next_back() {
            if plo + plen == lo {
                self.sys.free.remove(&plo);
                (lo, len) = (plo, plen + len);
            }
        }
        if let Some(next) = self.sys.free.remove(&(lo + len)) {
            len += next;
        }
        self.sys.free.insert(lo, len);
        Ok(())
    }

    /// What freeing `stk`, which is not a stack in use, runs into: Go's
    /// throw where Go checks, [`Misuse::NotAStack`] where Go would corrupt
    /// its lists and carry on.
    ///
    /// Go looks the address up with `spanOfUnchecked`. Arena pages that are
    /// no span now (a large stack freed twice: its span went back to the
    /// heap) give Go the dead span that last held them, whose state is not
    /// `mSpanManual`; so do heap spans. (Arena pages that never held a span
    /// would give Go a nil span and a fault; the spec answers as for a dead
    /// one. Addresses outside the arena are [`Misuse::NotAStack`].)
    /// - the pool path without a cache (`stackpoolfree`): a dead or heap
    ///   span throws "freeing stack not in a stack span"; a large span
    ///   waiting on `stackLarge` is still on that list, so pushing it onto
    ///   the pool list throws "mSpanList.insert";
    /// - the large path: a dead or heap span throws "bad span state"; a
    ///   span already on `stackLarge` while the GC runs (a large stack
    ///   freed twice during one cycle) throws "mSpanList.insert";
    /// - everything else (the P cache path, which checks nothing; a stack
    ///   span that is not this stack) is Go's silent corruption.
    fn bad_free(&self, stk: Stack, small: bool, direct: bool) -> Throw {
        let span = self.heap.span_of(stk.lo);
        let in_arena = stk
            .lo
            .checked_sub(self.heap.base)
            .is_some_and(|off| off / PAGE_SIZE < self.heap.arena_pages);
        // Outside the arena Go has no span at all: treat it like a stack
        // span that is not this stack.
        let manual = !in_arena || span.is_some_and(|s| s.state == SpanState::Manual);
        let on_stack_large = span.is_some_and(|s| {
            s.state == SpanState::Manual && self.stack_large.values().any(|l| l.contains(&s.base))
        });
        if small && direct && !manual {
            GoThrow::FreeingStackNotInStackSpan.into()
        } else if small && direct && on_stack_large {
            GoThrow::MSpanListInsert.into()
        } else if !small && !manual {
            GoThrow::BadSpanState.into()
        } else if !small && on_stack_large && self.gcphase != GcPhase::Off {
            GoThrow::MSpanListInsert.into()
        } else {
            Misuse::NotAStack {
                lo: stk.lo,
                hi: stk.hi,
            }
            .into()
        }
    }

    /// Returns every empty pool span and every `stackLarge` span to the heap.
    /// Runs once the GC is off, after the world restarts.
    ///
    /// Go: `freeStackSpans` (runtime/stack.go), called from
    /// `gcMarkTermination` (runtime/mgc.go).
    pub fn free_stack_spans(&mut self) -> Result<(), Throw> {
        self.transact(|s| {
            s.require_phase("freeStackSpans", GcPhase::Off)?;
            for order in 0..s.stackpool.len() {
                let list = std::mem::take(&mut s.stackpool[order]);
                for base in list {
                    let empty = s
                        .heap
                        .spans
                        .get(&base)
                        .is_some_and(|sp| sp.alloc_count == 0);
                    if empty {
                        crate::coverage::hit("freeStackSpans: empty pool span");
                        let span = s.heap.span_mut(base).expect("listed span");
                        span.free_list.clear();
                        s.release_span(base);
                    } else {
                        s.stackpool[order].push(base);
                    }
                }
            }
            for (_, list) in std::mem::take(&mut s.stack_large) {
                for base in list {
                    crate::coverage::hit("freeStackSpans: stackLarge span");
                    s.release_span(base);
                }
            }
            s.spans_pending_free = false;
            Ok(())
        })
    }

    /// Returns a span's pages to the heap. In Go `freeManual` only hands the
    /// pages to the page allocator (the scavenger may release them to the
    /// OS later, or never); this model, like the implementation, releases
    /// them at once (madvise), so their memory reads as zero from now on.
    /// That is one of the outcomes Go allows, chosen so that spec and
    /// implementation agree word for word.
    pub(crate) fn release_span(&mut self, base: u64) {
        if let Some(span) = self.heap.free_span(base) {
            let keys: Vec<u64> = self
                .gor
                .mem
                .range(base..span.limit())
                .map(|(&a, _)| a)
                .collect();
            for a in keys {
                self.gor.mem.remove(&a);
            }
        }
    }

    pub(crate) fn require_phase(&self, op: &'static str, needs: GcPhase) -> Result<(), Throw> {
        if self.gcphase == needs {
            Ok(())
        } else {
            Err(Misuse::WrongGcPhase {
                op,
                needs: needs.name(),
                found: self.gcphase.name(),
            }
            .into())
        }
    }

    /// Refuses a mutator's operation while the world is stopped for mark
    /// termination: `gcMarkDone` stops the world before
    /// `gcMarkTermination` and `setGCPhase(_GCoff)` precedes its restart
    /// (runtime/mgc.go, Go 1.19 and 1.23), so no goroutine runs, allocates
    /// or frees a stack in `_GCmarktermination`.
    pub(crate) fn require_world_running(&self) -> Result<(), Throw> {
        if self.gcphase == GcPhase::MarkTermination {
            crate::coverage::hit("world stopped: mutator refused in mark termination");
            return Err(Misuse::WouldBlock(crate::WORLD_STOPPED).into());
        }
        Ok(())
    }

    /// Creates a P with empty caches (`procresize` growing, `allocmcache`)
    /// and returns its id.
    ///
    /// Like [`State::destroy_p`], refused ([`Misuse::WouldBlock`]) from
    /// `gcStart` until `freeStackSpans` has run: `GOMAXPROCS` waits for the
    /// cycle (`stopTheWorldGC`).
    pub fn create_p(&mut self) -> Result<u32, Throw> {
        self.fatal(|s| {
            if s.gcphase != GcPhase::Off || s.spans_pending_free {
                return Err(Misuse::WouldBlock(crate::GOMAXPROCS_WAITS).into());
            }
            let id = s.next_p;
            s.next_p += 1;
            let orders = s.stackpool.len();
            s.ps.insert(
                id,
                P {
                    stackcache: vec![CacheOrder::default(); orders],
                },
            );
            Ok(id)
        })
    }

    /// Destroys P `p`, flushing its caches to the pool (`procresize`
    /// shrinking → `p.destroy` → `freemcache` → `stackcache_clear`).
    ///
    /// `GOMAXPROCS` stops the world with `stopTheWorldGC`, which waits for
    /// a GC cycle in progress to end: refused ([`Misuse::WouldBlock`])
    /// from `gcStart` until `freeStackSpans` has run. (Go also waits for
    /// the cycle's cache flushes; the destroyed P's own cache is flushed
    /// by `freemcache` either way.)
    pub fn destroy_p(&mut self, p: u32) -> Result<(), Throw> {
        self.transact(|s| {
            if s.gcphase != GcPhase::Off || s.spans_pending_free {
                return Err(Misuse::WouldBlock(crate::GOMAXPROCS_WAITS).into());
            }
            // p.destroy: freemcache (stackcache_clear), then gfpurge moves
            // the P's dead goroutines to the global lists; the P's scan
            // counts leave with it (allp is truncated).
            s.stackcache_clear(p)?;
            s.unflushed.remove(&p);
            s.gfree_to_global(p, 1);
            s.gor.p_gfree.remove(&p);
            s.gor.scanned.remove(&p);
            s.ps.remove(&p);
            Ok(())
        })
    }

    /// `mcache.prepareForSweep` (runtime/mcache.go, Go 1.19 and 1.23) on P
    /// `p`: once per GC cycle, after [`State::gc_off`], the P's stack cache
    /// goes back to the pool. A P already flushed since the last `gc_off`
    /// (its `flushGen` equals the sweep generation) and a P before the
    /// first cycle end are left alone: the call changes nothing.
    /// [`State::destroy_p`] clears the cache whatever the cycle.
    pub fn flush_cache(&mut self, p: u32) -> Result<(), Throw> {
        self.transact(|s| {
            s.cache_mut(p)?;
            if s.unflushed.remove(&p) {
                s.stackcache_clear(p)
            } else {
                crate::coverage::hit("prepareForSweep: already flushed this cycle");
                Ok(())
            }
        })
    }

    /// `runtime.ReadMemStats` (runtime/mstats.go, Go 1.19 and 1.23): it
    /// stops the world and flushes every P's caches (`flushallmcaches` →
    /// `flushmcache` → `stackcache_clear`), so with the GC off a pool span
    /// left empty goes back to the heap before StackInuse is read; then it
    /// returns the figures. Unlike [`State::flush_cache`] it leaves each
    /// P's sweep flush due (`flushGen` is untouched). Refused in
    /// `_GCmarktermination` (its `stopTheWorld` waits for the GC's).
    ///
    /// Go 1.19's `readmemstats_m` then checks that `mappedReady` equals
    /// the mapped total less what was released; `sysFault` lowers the
    /// first but not `stacks_sys`, so once an efence (or
    /// `stackFaultOnFree`) stack was freed it throws "mappedReady and other
    /// memstats are not equal". Go 1.23 makes that check only in its
    /// debug mode (`doubleCheckReadMemStats`).
    pub fn read_mem_stats(&mut self) -> Result<crate::Stats, Throw> {
        self.require_world_running()?;
        self.transact(|s| {
            if s.config.profile.release == crate::profile::Release::Go1_19 && s.sys.faulted > 0 {
                return Err(GoThrow::MappedReadyNotEqual.into());
            }
            for p in s.ps.keys().copied().collect::<Vec<_>>() {
                s.stackcache_clear(p)?;
            }
            Ok(s.stats())
        })
    }

    /// Takes `npages` of ordinary heap memory, for fragmenting the heap as a
    /// program's objects do.
    pub fn heap_alloc(&mut self, npages: u64) -> Result<u64, Throw> {
        self.require_world_running()?;
        self.transact(|s| s.heap.alloc_heap(npages))
    }

    /// Returns heap memory taken with [`State::heap_alloc`].
    pub fn heap_free(&mut self, base: u64) -> Result<(), Throw> {
        self.require_world_running()?;
        self.transact(|s| match s.heap.spans.get(&base) {
            Some(sp) if sp.state == SpanState::InUse => {
                s.release_span(base);
                Ok(())
            }
            _ => Err(Misuse::NotAHeapSpan(base).into()),
        })
    }

    /// Starts a GC cycle: `gcphase` becomes `_GCmark` (`gcStart`,
    /// runtime/mgc.go). The previous cycle must have finished, including its
    /// `freeStackSpans`.
    pub fn gc_start(&mut self) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_phase("gcStart", GcPhase::Off)?;
            if s.spans_pending_free {
                return Err(Misuse::WrongGcPhase {
                    op: "gcStart",
                    needs: "_GCoff after freeStackSpans",
                    found: "_GCoff before freeStackSpans",
                }
                .into());
            }
            if !s.unflushed.is_empty() {
                // gcStart checks that every P finished the cache flush of the
                // last cycle (runtime/mgc.go).
                return Err(GoThrow::PMcacheNotFlushed.into());
            }
            s.gcphase = GcPhase::Mark;
            s.gor.free_g_stacks_done = false;
            // gcResetMarkState clears every goroutine's gcscandone;
            // gcMarkRootPrepare takes the goroutines that exist now as the
            // stack roots (allGsSnapshot).
            for g in s.gor.gs.values_mut() {
                g.gcscandone = false;
            }
            s.gor.n_stack_roots = s.gor.next_g;
            Ok(())
        })
    }

    /// Ends marking. Mark termination starts only when no mark work is
    /// left, so the stack roots no worker scanned are scanned (on the first
    /// P), the next starting stack size is computed, every pointer a
    /// marker still holds is marked, and the root job
    /// [`State::gc_free_g_stacks`] runs if no worker ran it; then `gcphase`
    /// becomes `_GCmarktermination` (`gcMarkTermination`, runtime/mgc.go).
    pub fn gc_mark_termination(&mut self) -> Result<(), Throw> {
        self.transact(|s| {
            s.require_phase("gcMarkTermination", GcPhase::Mark)?;
            // No root work may be left (gcMarkDone, runtime/mgc.go): the
            // refusals of the stack scans no worker did run come first
            // (with the next starting size, fixed from every scan of the
            // cycle), then the markers finish, then those scans run.
            let (p, next) = s.roots_left_refusals()?;
            for id in s.markers.keys().copied().collect::<Vec<_>>() {
                s.gc_mark_inner(id)?;
            }
            s.scan_roots_left(p)?;
            if !s.gor.free_g_stacks_done {
                // The root job no worker took runs now, as if the last
                // worker took it on the first P (without a P when every P
                // was destroyed, which Go never does).
                crate::coverage::hit("gcMarkTermination: markrootFreeGStacks left over");
                let ctx = match s.ps.keys().next() {
                    Some(&p) => Ctx::on(p),
                    None => Ctx::no_p(),
                };
                s.free_g_stacks_inner(ctx)?;
            }
            if let Some(next) = next {
                s.gor.scanned.clear();
                s.gor.starting_stack_size = next;
            }
            s.gcphase = GcPhase::MarkTermination;
            Ok(())
        })
    }

    /// Turns the GC off (`setGCPhase(_GCoff)` in `gcMarkTermination`): from
    /// here frees return spans to the heap at once, but the spans kept
    /// during the cycle wait for [`State::free_stack_spans`].
    ///
    /// Sweeping starts (`gcSweep` advances `mheap_.sweepgen`), so every P's
    /// cache is due for its flush (`mcache.prepareForSweep`) before the
    /// next `gcStart`.
    pub fn gc_off(&mut self) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_phase("setGCPhase(_GCoff)", GcPhase::MarkTermination)?;
            s.gcphase = GcPhase::Off;
            s.spans_pending_free = true;
            s.unflushed = s.ps.keys().copied().collect();
            Ok(())
        })
    }

    /// The end of a GC cycle in Go's order: mark termination (if marking),
    /// GC off, `freeStackSpans`, then every P's cache flushed
    /// (`prepareForSweep` via `forEachP`), all in `gcMarkTermination`.
    pub fn gc_end(&mut self) -> Result<(), Throw> {
        self.transact(|s| {
            if s.gcphase == GcPhase::Mark {
                s.gc_mark_termination()?;
            }
            s.gc_off()?;
            s.free_stack_spans()?;
            // gc_off made every P's flush due.
            for p in std::mem::take(&mut s.unflushed) {
                s.stackcache_clear(p)?;
            }
            Ok(())
        })
    }

    /// A GC marker reads `addr`, a pointer into a stack span, and will mark
    /// it later (a `sudog.elem` found while scanning, say). Returns the
    /// marker's id.
    pub fn gc_mark_read(&mut self, addr: u64) -> Result<u32, Throw> {
        self.fatal(|s| {
            s.require_phase("a GC marker", GcPhase::Mark)?;
            match s.heap.span_of(addr) {
                Some(s) if s.state == SpanState::Manual => {}
                _ => return Err(Misuse::NotAStack { lo: addr, hi: addr }.into()),
            }
            let id = s.next_marker;
            s.next_marker += 1;
            s.markers.insert(id, addr);
            Ok(id)
        })
    }

    /// The marker marks the pointer it read. Its span must still be a stack
    /// span: pages that are no longer a span make Go's `findObject` call
    /// `badPointer` (runtime/mbitmap.go); pages reused for heap objects
    /// would be marked as an unrelated object.
    pub fn gc_mark(&mut self, id: u32) -> Result<(), Throw> {
        self.transact(|s| {
            s.require_phase("a GC marker", GcPhase::Mark)?;
            s.gc_mark_inner(id)
        })
    }

    fn gc_mark_inner(&mut self, id: u32) -> Result<(), Throw> {
        let addr = *self
            .markers
            .get(&id)
            .ok_or(Throw::Misuse(Misuse::NoSuchMarker(id)))?;
        match self.heap.span_of(addr).map(|s| s.state) {
            Some(SpanState::Manual) => {}
            Some(SpanState::InUse) => return Err(Misuse::MarkedReusedSpan(addr).into()),
            None => return Err(GoThrow::BadPointerInGoHeap.into()),
        }
        self.markers.remove(&id);
        Ok(())
    }
}
