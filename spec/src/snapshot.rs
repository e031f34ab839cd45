//! The observable state, as the spec and the implementation both report it.
//!
//! Addresses are offsets from the arena base, so that two instances with
//! arenas at different addresses compare equal when they behave alike
//! (docs/ARCHITECTURE.md section 5). Lists keep their order, head first.

use crate::heap::{SpanState, PAGE_SIZE};
use crate::stack::{GcPhase, State};
use serde::Serialize;
use std::collections::BTreeMap;

/// One span, as observed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SpanSnap {
    /// Offset of the span's base.
    pub off: u64,
    /// Pages.
    pub npages: u64,
    /// Manual (stack) or in use (heap).
    pub state: SpanState,
    /// Stack size in the span (0 for heap spans).
    pub elemsize: u64,
    /// `allocCount`.
    pub alloc_count: u64,
    /// Free stacks' offsets, head first.
    pub free_list: Vec<u64>,
}

/// One P's stack cache, as observed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CacheSnap {
    /// The P's id.
    pub p: u32,
    /// Per order: the cached stacks' offsets, head first.
    pub lists: Vec<Vec<u64>>,
    /// Per order: the cache's byte count.
    pub sizes: Vec<u64>,
}

/// Statistics as Go reports them (runtime/mstats.go), plus counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// `StackInuse`: bytes in stack spans.
    pub stack_inuse: u64,
    /// `StackSys`: StackInuse plus the stacks taken straight from the OS
    /// (`stacks_sys`: `stackFromSystem`, efence; see
    /// [`crate::stack::SysStacks`]).
    pub stack_sys: u64,
    /// Pool spans (4-page spans cut into stacks).
    pub pool_spans: u64,
    /// Large stack spans, in use or in stackLarge.
    pub large_spans: u64,
    /// Of those, the ones waiting in stackLarge.
    pub large_spans_free: u64,
    /// Bytes in each P's caches, by P id.
    pub cached_bytes: BTreeMap<u32, u64>,
    /// Bytes of the arena mapped.
    pub mapped_bytes: u64,
}

/// The whole observable state of the stack system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// `gcphase`.
    pub gcphase: GcPhase,
    /// GC is off but freeStackSpans has not run.
    pub spans_pending_free: bool,
    /// Free runs of pages: (offset, pages), in address order.
    pub free_runs: Vec<(u64, u64)>,
    /// Live spans in address order.
    pub spans: Vec<SpanSnap>,
    /// Per order, the pool list's span offsets, head first.
    pub stackpool: Vec<Vec<u64>>,
    /// stackLarge: (log2 class, span offsets head first).
    pub stack_large: Vec<(u32, Vec<u64>)>,
    /// Each P's cache, by P id.
    pub caches: Vec<CacheSnap>,
    /// Stacks in use: (offset, size).
    pub in_use: Vec<(u64, u64)>,
    /// Free ranges of the region stacks from the OS come from: (offset,
    /// bytes), in address order; empty unless stacks come from the OS.
    pub sys_free: Vec<(u64, u64)>,
    /// Bytes of stacks from the OS made inaccessible by `sysFault`.
    pub sys_faulted: u64,
    /// The statistics.
    pub stats: Stats,
    /// Every goroutine (see [`crate::goroutine::GSnap`]).
    pub goroutines: Vec<crate::goroutine::GSnap>,
}

impl State {
    /// The statistics Go would report.
    pub fn stats(&self) -> Stats {
        let manual = || {
            self.heap
                .spans
                .values()
                .filter(|s| s.state == SpanState::Manual)
        };
        let pool = |s: &&crate::heap::Span| s.elemsize < self.consts.stack_cache_size;
        Stats {
            stack_inuse: self.heap.stack_inuse,
            stack_sys: self.heap.stack_inuse + self.sys.stacks_sys,
            pool_spans: manual().filter(pool).count() as u64,
            large_spans: manual().filter(|s| !pool(s)).count() as u64,
            large_spans_free: self.stack_large.values().map(|l| l.len() as u64).sum(),
            cached_bytes: self
                .ps
                .iter()
                .map(|(&id, p)| (id, p.stackcache.iter().map(|c| c.size).sum()))
                .collect(),
            mapped_bytes: self.heap.mapped_pages * PAGE_SIZE,
        }
    }

    /// The observable state, addresses as offsets from the arena base.
    pub fn snapshot(&self) -> Snapshot {
        let base = self.heap.base;
        let off = |a: &u64| a - base;
        let offs = |v: &Vec<u64>| v.iter().map(off).collect::<Vec<_>>();
        Snapshot {
            gcphase: self.gcphase,
            spans_pending_free: self.spans_pending_free,
            free_runs: self
                .heap
                .free
                .iter()
                .map(|(&p, &n)| (p * PAGE_SIZE, n))
                .collect(),
            spans: self
                .heap
                .spans
                .values()
                .map(|s| SpanSnap {
                    off: off(&s.base),
                    npages: s.npages,
                    state: s.state,
                    elemsize: s.elemsize,
                    alloc_count: s.alloc_count,
                    free_list: offs(&s.free_list),
                })
                .collect(),
            stackpool: self.stackpool.iter().map(offs).collect(),
            stack_large: self
                .stack_large
                .iter()
                .map(|(&c, l)| (c, offs(l)))
                .collect(),
            caches: self
                .ps
                .iter()
                .map(|(&p, c)| CacheSnap {
                    p,
                    lists: c.stackcache.iter().map(|o| offs(&o.list)).collect(),
                    sizes: c.stackcache.iter().map(|o| o.size).collect(),
                })
                .collect(),
            in_use: self.in_use.iter().map(|(&lo, &n)| (lo - base, n)).collect(),
            sys_free: self
                .sys
                .free
                .iter()
                .map(|(&lo, &n)| (lo - base, n))
                .collect(),
            sys_faulted: self.sys.faulted,
            stats: self.stats(),
            goroutines: self.g_snapshot(),
        }
    }
}

/// A channel, as observed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChanSnap {
    /// Its id.
    pub id: u32,
    /// `elemsize`.
    pub elemsize: u64,
    /// The goroutine holding its lock, if any.
    pub locked_by: Option<u32>,
    /// `recvq`: sudog ids, first to be served first.
    pub recvq: Vec<u32>,
}

/// A sudog, as observed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SudogSnap {
    /// Its id.
    pub id: u32,
    /// The waiting goroutine.
    pub g: u32,
    /// The channel.
    pub c: u32,
    /// `elem` as an offset from the arena base; `None` once a sender has
    /// cleared it (nil).
    pub elem: Option<u64>,
    /// `isSelect`.
    pub is_select: bool,
}

/// The rest of the observable state: what [`Snapshot`] does not hold (GC
/// markers, id counters, the dead-goroutine free lists, channels, sudogs,
/// the goroutine counters and sizes). The harness compares it alongside
/// [`Snapshot`].
///
/// It is a separate value because the implementation's allocator builds
/// its part of [`Snapshot`] with a struct literal; folding these fields into
/// [`Snapshot`] needs that literal to name them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorldSnap {
    /// The id the next P gets.
    pub next_p: u32,
    /// Pending GC markers: (id, offset of the pointer read).
    pub markers: Vec<(u32, u64)>,
    /// The id the next marker gets.
    pub next_marker: u32,
    /// Functions in the table.
    pub funcs: usize,
    /// The id the next new goroutine gets.
    pub next_g: u32,
    /// The id the next sudog gets.
    pub next_sudog: u32,
    /// Per P with a non-empty list: its dead goroutines (`p.gFree`), in
    /// list order (the last is popped first).
    pub p_gfree: Vec<(u32, Vec<u32>)>,
    /// `sched.gFree.stack`, in list order (the last is popped first).
    pub sched_gfree_stack: Vec<u32>,
    /// `sched.gFree.noStack`, in list order (the last is popped first).
    pub sched_gfree_nostack: Vec<u32>,
    /// Every channel by id.
    pub chans: Vec<ChanSnap>,
    /// Every live sudog by id.
    pub sudogs: Vec<SudogSnap>,
    /// Growths, shrinks, moves and bytes copied.
    pub gstats: crate::goroutine::GStats,
    /// `startingStackSize`.
    pub starting_stack_size: u64,
    /// `maxstacksize`.
    pub maxstacksize: u64,
    /// Per P: (P, `scannedStackSize`, `scannedStacks`) of this GC cycle.
    pub scanned: Vec<(u32, u64, u64)>,
    /// The heap words for defer records: (next, end) as offsets, `None`
    /// before the first heap defer.
    pub heap_bump: Option<(u64, u64)>,
    /// The GC root job `markrootFreeGStacks` has run in this cycle.
    pub free_g_stacks_done: bool,
    /// `work.nStackRoots` of the present (or last) cycle.
    pub n_stack_roots: u32,
    /// Ps whose caches wait for their flush since the GC turned off.
    pub unflushed: Vec<u32>,
    /// Every M: (id, g0 stack's lo, gsignal stack's lo) as offsets.
    pub ms: Vec<(u32, u64, u64)>,
    /// `sched.freem`: (M, its g0 stack's lo as an offset), oldest first.
    pub freem: Vec<(u32, u64)>,
    /// The id the next M gets.
    pub next_m: u32,
}

impl State {
    /// The rest of the observable state (see [`WorldSnap`]), addresses as
    /// offsets from the arena base.
    pub fn world(&self) -> WorldSnap {
        let base = self.heap.base;
        let g = &self.gor;
        WorldSnap {
            next_p: self.next_p,
            markers: self
                .markers
                .iter()
                .map(|(&id, &a)| (id, a.wrapping_sub(base)))
                .collect(),
            next_marker: self.next_marker,
            funcs: g.funcs.len(),
            next_g: g.next_g,
            next_sudog: g.next_sudog,
            p_gfree: g
                .p_gfree
                .iter()
                .filter(|(_, l)| !l.is_empty())
                .map(|(&p, l)| (p, l.clone()))
                .collect(),
            sched_gfree_stack: g.sched_gfree_stack.clone(),
            sched_gfree_nostack: g.sched_gfree_nostack.clone(),
            chans: g
                .chans
                .iter()
                .map(|(&id, c)| ChanSnap {
                    id,
                    elemsize: c.elemsize,
                    locked_by: c.locked_by,
                    recvq: c.recvq.clone(),
                })
                .collect(),
            sudogs: g
                .sudogs
                .iter()
                .map(|(&id, s)| SudogSnap {
                    id,
                    g: s.g,
                    c: s.c,
                    elem: (s.elem != 0).then(|| s.elem.wrapping_sub(base)),
                    is_select: s.is_select,
                })
                .collect(),
            gstats: g.stats.clone(),
            starting_stack_size: g.starting_stack_size,
            maxstacksize: g.maxstacksize,
            scanned: g.scanned.iter().map(|(&p, &(b, n))| (p, b, n)).collect(),
            free_g_stacks_done: g.free_g_stacks_done,
            n_stack_roots: g.n_stack_roots,
            unflushed: self.unflushed.iter().copied().collect(),
            ms: g
                .ms
                .iter()
                .map(|(&id, m)| {
                    (
                        id,
                        m.g0.lo.wrapping_sub(base),
                        m.gsignal.lo.wrapping_sub(base),
                    )
                })
                .collect(),
            freem: g
                .freem
                .iter()
                .map(|&(id, stk)| (id, stk.lo.wrapping_sub(base)))
                .collect(),
            next_m: g.next_m,
            heap_bump: (g.heap_bump != (0, 0)).then(|| {
                (
                    g.heap_bump.0.wrapping_sub(base),
                    g.heap_bump.1.wrapping_sub(base),
                )
            }),
        }
    }
}
