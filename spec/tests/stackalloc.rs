//! One or more tests per path of Go's stack allocator (runtime/stack.go),
//! each naming the Go function it pins. Every test also runs the invariant
//! checker after each step.

use gostack_spec::heap::{SpanState, PAGE_SIZE};
use gostack_spec::stack::stacklog2;
use gostack_spec::{
    check_invariants, Config, Ctx, GcPhase, GoThrow, Misuse, Profile, Stack, State, Throw,
};

const K: u64 = 1024;

fn state_for(port: &str, release: &str) -> State {
    let (os, arch) = port.split_once('/').unwrap();
    let profile = Profile::parse(os, arch, false, release).unwrap();
    let mut config = Config::new(profile);
    config.arena_bytes = 64 << 20;
    State::new(config).unwrap()
}

fn linux() -> State {
    state_for("linux/amd64", "1.23")
}

fn ok(s: &State) {
    if let Err(v) = check_invariants(s) {
        panic!("{v}");
    }
}

fn alloc(s: &mut State, ctx: Ctx, n: u64) -> Stack {
    let stk = s
        .stackalloc(ctx, n)
        .unwrap_or_else(|e| panic!("stackalloc({n}): {e}"));
    ok(s);
    stk
}

fn free(s: &mut State, ctx: Ctx, stk: Stack) {
    s.stackfree(ctx, stk)
        .unwrap_or_else(|e| panic!("stackfree({stk:x?}): {e}"));
    ok(s);
}

/// The failing call returns exactly this throw and changes nothing. A Go
/// throw is fatal: the runtime must be dead of it (and refuse the next
/// operation); the mark is then cleared so that the test can go on from
/// the state before the throw, which the spec keeps.
fn refused<T: std::fmt::Debug>(
    s: &mut State,
    want: Throw,
    f: impl FnOnce(&mut State) -> Result<T, Throw>,
) {
    let before = s.clone();
    let got = f(s).expect_err("the call must fail");
    assert_eq!(got, want, "got `{got}`");
    if let Throw::Go(t) = want {
        assert_eq!(s.dead, Some(t), "a Go throw is fatal");
        assert_eq!(
            s.create_p(),
            Err(gostack_spec::Misuse::Dead(t).into()),
            "a dead runtime refuses every operation"
        );
        s.dead = None;
    }
    assert_eq!(*s, before, "a failed call changed the state");
    ok(s);
}

fn base(s: &State) -> u64 {
    s.heap.base
}

/// Go: `stacklog2` (runtime/stack.go).
#[test]
fn stacklog2_is_floor_log2() {
    let cases = [
        (0, 0),
        (1, 0),
        (2, 1),
        (3, 1),
        (4, 2),
        (7, 2),
        (8, 3),
        (1 << 18, 18),
        ((1 << 18) + 1, 18),
    ];
    for (n, want) in cases {
        assert_eq!(stacklog2(n), want, "stacklog2({n})");
    }
}

/// Go: the order test at the top of `stackalloc`/`stackfree`: cached when
/// below both fixedStack<<_NumStackOrders and _StackCacheSize.
#[test]
fn orders_per_profile() {
    let s = linux();
    assert_eq!(
        [2 * K, 4 * K, 8 * K, 16 * K, 32 * K].map(|n| s.order_of(n)),
        [Some(0), Some(1), Some(2), Some(3), None]
    );
    let w = state_for("windows/386", "1.23");
    assert_eq!(
        [8 * K, 16 * K, 32 * K].map(|n| w.order_of(n)),
        [Some(0), Some(1), None]
    );
    let w19 = state_for("windows/386", "1.19");
    assert_eq!(
        [4 * K, 8 * K, 16 * K, 32 * K].map(|n| w19.order_of(n)),
        [Some(0), Some(1), Some(2), None]
    );
    let ios = state_for("ios/arm64", "1.23");
    assert_eq!(
        [4 * K, 16 * K, 32 * K].map(|n| ios.order_of(n)),
        [Some(0), Some(2), None]
    );
}

/// Go: `stackpoolalloc` cuts a new span of _StackCacheSize when the pool is
/// empty, builds its free list from the low address up (so the head is the
/// highest stack), lists the span, and drops it from the list when its last
/// stack goes out.
#[test]
fn stackpoolalloc_new_span_highest_first() {
    let mut s = linux();
    let b = base(&s);
    let first = alloc(&mut s, Ctx::no_p(), 2 * K);
    assert_eq!(
        first,
        Stack {
            lo: b + 30 * K,
            hi: b + 32 * K
        }
    );
    assert_eq!(s.stackpool[0], vec![b]);
    let span = s.heap.span_of(b).unwrap();
    assert_eq!(
        (span.state, span.npages, span.elemsize, span.alloc_count),
        (SpanState::Manual, 4, 2 * K, 1)
    );
    assert_eq!(span.free_list[0], b + 28 * K);
    for i in 1..16 {
        let stk = alloc(&mut s, Ctx::no_p(), 2 * K);
        assert_eq!(stk.lo, b + 30 * K - i * 2 * K);
    }
    assert!(
        s.stackpool[0].is_empty(),
        "a span with no free stack leaves the list"
    );
    let next = alloc(&mut s, Ctx::no_p(), 2 * K);
    assert_eq!(
        next.lo,
        b + 32 * K + 30 * K,
        "the next span is the next 4 pages"
    );
    assert_eq!(s.stats().stack_inuse, 64 * K);
}

/// Go: `stackpoolfree` pushes the stack on the span's free list and puts a
/// span that had none at the front of the pool list.
#[test]
fn stackpoolfree_front_insertion() {
    let mut s = linux();
    let b = base(&s);
    let a: Vec<Stack> = (0..16).map(|_| alloc(&mut s, Ctx::no_p(), 2 * K)).collect();
    let c: Vec<Stack> = (0..16).map(|_| alloc(&mut s, Ctx::no_p(), 2 * K)).collect();
    assert!(s.stackpool[0].is_empty());
    free(&mut s, Ctx::no_p(), a[3]);
    free(&mut s, Ctx::no_p(), c[5]);
    assert_eq!(
        s.stackpool[0],
        vec![b + 32 * K, b],
        "the span that last gained a free stack is first"
    );
    free(&mut s, Ctx::no_p(), a[4]);
    assert_eq!(
        s.stackpool[0],
        vec![b + 32 * K, b],
        "a span already listed keeps its place"
    );
    assert_eq!(s.heap.span_of(b).unwrap().free_list, vec![a[4].lo, a[3].lo]);
    // The first span of the list is the one used.
    assert_eq!(alloc(&mut s, Ctx::no_p(), 2 * K), c[5]);
}

/// Go: `stackpoolfree` with `gcphase == _GCoff` returns a span whose last
/// stack came back to the heap at once.
#[test]
fn stackpoolfree_frees_empty_span_when_gc_off() {
    let mut s = linux();
    let a = alloc(&mut s, Ctx::no_p(), 4 * K);
    let b2 = alloc(&mut s, Ctx::no_p(), 4 * K);
    free(&mut s, Ctx::no_p(), a);
    assert_eq!(s.stats().pool_spans, 1);
    free(&mut s, Ctx::no_p(), b2);
    assert_eq!(s.stats().pool_spans, 0);
    assert!(s.stackpool[1].is_empty());
    assert_eq!(s.stats().stack_inuse, 0);
    assert!(s.heap.spans.is_empty());
    assert_eq!(s.heap.free.len(), 1, "the pages merge back into one run");
}

/// Go: `stackpoolfree` while the GC runs keeps the empty span in its list
/// (the comment about a marker holding a sudog.elem); `freeStackSpans`
/// returns it after the cycle.
#[test]
fn stackpoolfree_keeps_empty_span_during_gc() {
    let mut s = linux();
    let a = alloc(&mut s, Ctx::no_p(), 2 * K);
    s.gc_start().unwrap();
    free(&mut s, Ctx::no_p(), a);
    let b = base(&s);
    assert_eq!(s.stackpool[0], vec![b]);
    assert_eq!(s.heap.span_of(b).unwrap().alloc_count, 0);
    s.gc_mark_termination().unwrap();
    s.gc_off().unwrap();
    ok(&s);
    assert_eq!(s.stats().pool_spans, 1, "still there until freeStackSpans");
    s.free_stack_spans().unwrap();
    ok(&s);
    assert_eq!(s.stats().pool_spans, 0);
    assert!(s.stackpool[0].is_empty());
}

/// Between GC off and freeStackSpans the kept empty span is still usable,
/// and frees return spans at once again (the window after
/// startTheWorldWithSema in gcMarkTermination, runtime/mgc.go).
#[test]
fn window_before_free_stack_spans() {
    let mut s = linux();
    let a = alloc(&mut s, Ctx::no_p(), 2 * K);
    s.gc_start().unwrap();
    free(&mut s, Ctx::no_p(), a);
    s.gc_mark_termination().unwrap();
    s.gc_off().unwrap();
    let again = alloc(&mut s, Ctx::no_p(), 2 * K);
    assert_eq!(again, a, "the empty span's head is handed out again");
    free(&mut s, Ctx::no_p(), again);
    assert_eq!(
        s.stats().pool_spans,
        0,
        "GC is off: the emptied span goes back at once"
    );
    s.free_stack_spans().unwrap();
    ok(&s);
}

/// Go: `stackcacherefill` takes stacks from the pool until the cache holds
/// half of _StackCacheSize, pushing each, and `stackalloc` pops the head.
#[test]
fn cache_refill_takes_half_and_pops_head() {
    let mut s = linux();
    let p = s.create_p().unwrap();
    let b = base(&s);
    let stk = alloc(&mut s, Ctx::on(p), 2 * K);
    // The pool handed out 30K, 28K, ..., 16K; the last one pushed is the head.
    assert_eq!(stk.lo, b + 16 * K);
    let c = &s.ps[&p].stackcache[0];
    assert_eq!(c.size, 14 * K);
    assert_eq!(c.list, (9..16).map(|i| b + i * 2 * K).collect::<Vec<_>>());
    let span = s.heap.span_of(b).unwrap();
    assert_eq!(
        span.alloc_count, 8,
        "cached stacks count as allocated in the span"
    );
    // The next allocation comes from the cache, not the pool.
    assert_eq!(alloc(&mut s, Ctx::on(p), 2 * K).lo, b + 18 * K);
    assert_eq!(s.heap.span_of(b).unwrap().alloc_count, 8);
}

/// Go: `stackfree` onto a full cache first calls `stackcacherelease`,
/// which returns stacks from the head to the pool until half remains.
#[test]
fn cache_release_to_half_when_full() {
    let mut s = linux();
    let p = s.create_p().unwrap();
    // Allocate 24 stacks of 2K with no P (so the cache starts empty), then
    // free them all onto P's cache.
    let stacks: Vec<Stack> = (0..24).map(|_| alloc(&mut s, Ctx::no_p(), 2 * K)).collect();
    for &stk in &stacks[..16] {
        free(&mut s, Ctx::on(p), stk);
    }
    assert_eq!(
        s.ps[&p].stackcache[0].size,
        32 * K,
        "full, not yet released"
    );
    let head_before: Vec<u64> = s.ps[&p].stackcache[0].list[..8].to_vec();
    free(&mut s, Ctx::on(p), stacks[16]);
    let c = &s.ps[&p].stackcache[0];
    assert_eq!(
        c.size,
        18 * K,
        "released to 16K, then the freed stack pushed"
    );
    assert_eq!(c.list[0], stacks[16].lo);
    // The eight released were the head of the cache, in order; the last one
    // released is now the head of its span's free list.
    let span_head = s.heap.span_of(head_before[7]).unwrap().free_list[0];
    assert_eq!(span_head, head_before[7]);
    for x in head_before {
        assert!(!s.ps[&p].stackcache[0].list.contains(&x));
    }
}

/// Go: `stackalloc` and `stackfree` skip the cache when `m.preemptoff` is
/// set, even with a P.
#[test]
fn preemptoff_uses_the_pool() {
    let mut s = linux();
    let p = s.create_p().unwrap();
    let ctx = Ctx {
        p: Some(p),
        preemptoff: true,
    };
    let stk = alloc(&mut s, ctx, 8 * K);
    assert!(s.ps[&p].stackcache[2].list.is_empty(), "no refill");
    assert_eq!(stk.lo, base(&s) + 24 * K, "straight from a new pool span");
    free(&mut s, ctx, stk);
    assert!(s.ps[&p].stackcache[2].list.is_empty());
    assert_eq!(s.stats().pool_spans, 0, "freed to the pool, span returned");
}

/// Go: the `stackNoCache` debug switch sends every small allocation to the
/// pool.
#[test]
fn no_cache_switch_uses_the_pool() {
    let mut config = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
    config.no_cache = true;
    let mut s = State::new(config).unwrap();
    let p = s.create_p().unwrap();
    let stk = alloc(&mut s, Ctx::on(p), 2 * K);
    assert_eq!(s.stats().cached_bytes[&p], 0);
    free(&mut s, Ctx::on(p), stk);
    assert_eq!(s.stats().cached_bytes[&p], 0);
    assert_eq!(s.stats().pool_spans, 0);
}

/// Go: the large path of `stackalloc` takes a dedicated span from the heap
/// (elemsize = n); `stackfree` with GC off returns it to the heap.
#[test]
fn large_stacks_from_the_heap() {
    let mut s = linux();
    let p = s.create_p().unwrap();
    let stk = alloc(&mut s, Ctx::on(p), 64 * K);
    let span = s.heap.span_of(stk.lo).unwrap();
    assert_eq!(
        (span.base, span.npages, span.elemsize, span.alloc_count),
        (stk.lo, 8, 64 * K, 0)
    );
    assert_eq!(s.stats().large_spans, 1);
    free(&mut s, Ctx::on(p), stk);
    assert_eq!(s.stats().large_spans, 0);
    assert_eq!(s.stats().stack_inuse, 0);
}

/// Go: `stackfree` of a large stack while the GC runs puts its span in
/// `stackLarge.free[log2(npages)]` (at the front); `stackalloc` takes from
/// there first, in any phase; `freeStackSpans` empties it.
#[test]
fn large_stacks_wait_in_stack_large_during_gc() {
    let mut s = linux();
    let a = alloc(&mut s, Ctx::no_p(), 64 * K);
    let b = alloc(&mut s, Ctx::no_p(), 64 * K);
    let c = alloc(&mut s, Ctx::no_p(), 128 * K);
    s.gc_start().unwrap();
    free(&mut s, Ctx::no_p(), a);
    free(&mut s, Ctx::no_p(), b);
    free(&mut s, Ctx::no_p(), c);
    assert_eq!(s.stack_large[&3], vec![b.lo, a.lo]);
    assert_eq!(s.stack_large[&4], vec![c.lo]);
    assert_eq!(s.stats().large_spans_free, 3);
    // Reuse takes the head of the class.
    let again = alloc(&mut s, Ctx::no_p(), 64 * K);
    assert_eq!(again, b);
    s.gc_end().unwrap();
    ok(&s);
    assert!(s.stack_large.is_empty());
    assert_eq!(s.stats().large_spans, 1, "only the reused one is left");
}

/// Go: `freeStackSpans` returns every empty pool span of every order and
/// every stackLarge span, keeping the non-empty pool spans in order.
#[test]
fn free_stack_spans_returns_everything_empty() {
    let mut s = linux();
    let keep = alloc(&mut s, Ctx::no_p(), 2 * K);
    let x = alloc(&mut s, Ctx::no_p(), 2 * K);
    let y = alloc(&mut s, Ctx::no_p(), 8 * K);
    let big = alloc(&mut s, Ctx::no_p(), 256 * K);
    s.gc_start().unwrap();
    for stk in [x, y, big] {
        free(&mut s, Ctx::no_p(), stk);
    }
    assert_eq!(s.stats().pool_spans, 2);
    s.gc_end().unwrap();
    ok(&s);
    assert_eq!(s.stats().pool_spans, 1);
    assert_eq!(s.stackpool[0], vec![base(&s)]);
    assert!(s.stackpool[2].is_empty());
    assert!(s.in_use.contains_key(&keep.lo));
    assert_eq!(s.stats().stack_inuse, 32 * K);
}

/// Go: destroying a P (`procresize` → `freemcache` → `stackcache_clear`)
/// returns its cached stacks to the pool, head first; with GC off the
/// emptied spans go back to the heap.
#[test]
fn destroy_p_clears_its_cache() {
    let mut s = linux();
    let p = s.create_p().unwrap();
    let q = s.create_p().unwrap();
    let stk = alloc(&mut s, Ctx::on(p), 2 * K);
    let other = alloc(&mut s, Ctx::on(q), 4 * K);
    free(&mut s, Ctx::on(p), stk);
    assert_eq!(s.stats().cached_bytes[&p], 16 * K);
    s.destroy_p(p).unwrap();
    ok(&s);
    assert!(!s.ps.contains_key(&p));
    assert_eq!(s.stats().pool_spans, 1, "only q's order-1 span remains");
    assert_eq!(
        s.stackalloc(Ctx::on(p), 2 * K),
        Err(Throw::Misuse(Misuse::NoSuchP(p)))
    );
    free(&mut s, Ctx::on(q), other);
}

/// Go: after each GC every P's cache is flushed (`mcache.prepareForSweep`
/// → `stackcache_clear`, from `forEachP` in `gcMarkTermination`).
#[test]
fn gc_end_flushes_every_cache() {
    let mut s = linux();
    let ps: Vec<u32> = (0..3).map(|_| s.create_p().unwrap()).collect();
    for &p in &ps {
        let stk = alloc(&mut s, Ctx::on(p), 2 * K);
        free(&mut s, Ctx::on(p), stk);
    }
    s.gc_start().unwrap();
    s.gc_end().unwrap();
    ok(&s);
    for &p in &ps {
        assert_eq!(s.stats().cached_bytes[&p], 0);
    }
    assert_eq!(s.stats().stack_inuse, 0);
}

/// Go: `mcache.prepareForSweep` (runtime/mcache.go, Go 1.19 and 1.23)
/// flushes a P's stack cache once per sweep cycle: it returns at once when
/// the cache's `flushGen` already equals `mheap_.sweepgen`, which is so
/// before the first cycle ends and after the P's flush of this cycle.
#[test]
fn prepare_for_sweep_flushes_once_per_cycle() {
    let mut s = linux();
    let p = s.create_p().unwrap();
    let cycle = |s: &mut State| {
        let stk = alloc(s, Ctx::on(p), 2 * K);
        free(s, Ctx::on(p), stk);
        assert_eq!(s.stats().cached_bytes[&p], 16 * K);
    };
    // Before any GC: nothing to flush.
    cycle(&mut s);
    s.flush_cache(p).unwrap();
    assert_eq!(s.stats().cached_bytes[&p], 16 * K, "no cycle has ended");
    // The cycle's flush, after setGCPhase(_GCoff), here before
    // freeStackSpans (restarting the world flushes as each P starts).
    s.gc_start().unwrap();
    s.gc_mark_termination().unwrap();
    s.gc_off().unwrap();
    s.flush_cache(p).unwrap();
    assert_eq!(s.stats().cached_bytes[&p], 0);
    s.free_stack_spans().unwrap();
    ok(&s);
    // A second flush in the same sweep cycle changes nothing.
    cycle(&mut s);
    let before = s.snapshot();
    s.flush_cache(p).unwrap();
    assert_eq!(
        s.snapshot(),
        before,
        "flushGen == sweepgen: prepareForSweep returns"
    );
    // The next cycle flushes again.
    s.gc_start().unwrap();
    s.gc_end().unwrap();
    assert_eq!(s.stats().cached_bytes[&p], 0);
    ok(&s);
}

/// Go: `gcMarkDone` stops the world before `gcMarkTermination`, which
/// restarts it only after `setGCPhase(_GCoff)` (runtime/mgc.go, Go 1.19
/// and 1.23): no mutator allocates or frees a stack in
/// `_GCmarktermination`, and the refusal changes nothing.
#[test]
fn no_mutator_runs_in_mark_termination() {
    let mut s = linux();
    let p = s.create_p().unwrap();
    let stk = alloc(&mut s, Ctx::on(p), 2 * K);
    s.gc_start().unwrap();
    s.gc_mark_termination().unwrap();
    let before = s.snapshot();
    let stopped = Err(Throw::Misuse(Misuse::WouldBlock(
        gostack_spec::WORLD_STOPPED,
    )));
    assert_eq!(s.stackalloc(Ctx::on(p), 2 * K).map(|_| ()), stopped);
    assert_eq!(s.stackfree(Ctx::on(p), stk), stopped);
    assert_eq!(s.heap_alloc(1).map(|_| ()), stopped);
    assert_eq!(s.snapshot(), before);
    s.gc_off().unwrap();
    free(&mut s, Ctx::on(p), stk);
    s.free_stack_spans().unwrap();
    ok(&s);
}

/// The page heap: address-ordered first fit over free runs, growth by 512
/// pages (`mheap.grow`), and non-stack heap spans that fragment it.
#[test]
fn heap_first_fit_and_growth() {
    let mut s = linux();
    let b = base(&s);
    let h1 = s.heap_alloc(3).unwrap();
    let h2 = s.heap_alloc(10).unwrap();
    assert_eq!((h1, h2), (b, b + 3 * PAGE_SIZE));
    assert_eq!(s.stats().mapped_bytes, 512 * PAGE_SIZE);
    s.heap_free(h1).unwrap();
    // A 4-page pool span does not fit in the 3-page hole: it goes after h2.
    let stk = alloc(&mut s, Ctx::no_p(), 2 * K);
    assert_eq!(s.heap.span_of(stk.lo).unwrap().base, b + 13 * PAGE_SIZE);
    // A 2-page heap span fits in the hole.
    assert_eq!(s.heap_alloc(2).unwrap(), b);
    // More than is mapped: the heap grows by a whole chunk and the run that
    // straddles the old end is used.
    let big = alloc(&mut s, Ctx::no_p(), 4 << 20);
    assert_eq!(big.lo, b + 17 * PAGE_SIZE);
    assert_eq!(s.stats().mapped_bytes, 1024 * PAGE_SIZE);
    ok(&s);
    refused(
        &mut s,
        Throw::Misuse(Misuse::NotAHeapSpan(b + 13 * PAGE_SIZE)),
        |s| s.heap_free(b + 13 * PAGE_SIZE),
    );
    refused(&mut s, Throw::Misuse(Misuse::ZeroPages), |s| {
        s.heap_alloc(0)
    });
    // Sizes whose rounding to the growth chunk overflows are out of memory.
    refused(&mut s, Throw::Go(GoThrow::OutOfMemory), |s| {
        s.heap_alloc(u64::MAX)
    });
    refused(&mut s, Throw::Go(GoThrow::OutOfMemory), |s| {
        s.stackalloc(Ctx::no_p(), 1 << 31)
    });
}

/// Bad sizes: Go's two power-of-two throws (their messages differ), and our
/// own refusals for sizes Go never asks for.
#[test]
fn bad_sizes() {
    let mut s = linux();
    let p = s.create_p().unwrap();
    refused(&mut s, Throw::Go(GoThrow::StackSizeNotPowerOf2), |s| {
        s.stackalloc(Ctx::on(p), 3 * K)
    });
    assert_eq!(
        GoThrow::StackSizeNotPowerOf2.to_string(),
        "stack size not a power of 2"
    );
    refused(&mut s, Throw::Misuse(Misuse::ZeroSizeStack), |s| {
        s.stackalloc(Ctx::on(p), 0)
    });
    refused(
        &mut s,
        Throw::Misuse(Misuse::StackTooSmall {
            n: 1024,
            fixed_stack: 2048,
        }),
        |s| s.stackalloc(Ctx::no_p(), 1024),
    );
    refused(&mut s, Throw::Misuse(Misuse::StackTooLarge(1 << 32)), |s| {
        s.stackalloc(Ctx::no_p(), 1 << 32)
    });
    let stk = alloc(&mut s, Ctx::on(p), 2 * K);
    refused(&mut s, Throw::Go(GoThrow::StackNotPowerOf2), |s| {
        s.stackfree(
            Ctx::on(p),
            Stack {
                lo: stk.lo,
                hi: stk.lo + 3 * K,
            },
        )
    });
    assert_eq!(
        GoThrow::StackNotPowerOf2.to_string(),
        "stack not a power of 2"
    );
}

/// Bad frees: never allocated, double, interior, wrong size, in a heap span,
/// from a P that does not exist. Each is refused with Go's throw where Go
/// checks and ours where Go would corrupt its lists; nothing changes.
#[test]
fn bad_frees() {
    let mut s = linux();
    let p = s.create_p().unwrap();
    let stk = alloc(&mut s, Ctx::on(p), 2 * K);
    let big = alloc(&mut s, Ctx::on(p), 32 * K);
    let heap = s.heap_alloc(4).unwrap();
    let not_a_stack = |lo: u64, hi: u64| Throw::Misuse(Misuse::NotAStack { lo, hi });
    // Interior address and wrong size.
    refused(&mut s, not_a_stack(stk.lo + 8, stk.hi + 8), |s| {
        s.stackfree(
            Ctx::on(p),
            Stack {
                lo: stk.lo + 8,
                hi: stk.hi + 8,
            },
        )
    });
    refused(&mut s, not_a_stack(stk.lo, stk.lo + 4 * K), |s| {
        s.stackfree(
            Ctx::on(p),
            Stack {
                lo: stk.lo,
                hi: stk.lo + 4 * K,
            },
        )
    });
    // A cached stack that was never handed out.
    let cached = s.ps[&p].stackcache[0].list[0];
    refused(&mut s, not_a_stack(cached, cached + 2 * K), |s| {
        s.stackfree(
            Ctx::on(p),
            Stack {
                lo: cached,
                hi: cached + 2 * K,
            },
        )
    });
    // Double free on the cache path, and on the pool path.
    free(&mut s, Ctx::on(p), stk);
    refused(&mut s, not_a_stack(stk.lo, stk.hi), |s| {
        s.stackfree(Ctx::on(p), stk)
    });
    refused(&mut s, not_a_stack(stk.lo, stk.hi), |s| {
        s.stackfree(Ctx::no_p(), stk)
    });
    // Heap memory: Go's stackpoolfree and stackfree check the span state.
    let in_heap = Stack {
        lo: heap,
        hi: heap + 2 * K,
    };
    refused(
        &mut s,
        Throw::Go(GoThrow::FreeingStackNotInStackSpan),
        |s| s.stackfree(Ctx::no_p(), in_heap),
    );
    assert_eq!(
        GoThrow::FreeingStackNotInStackSpan.to_string(),
        "freeing stack not in a stack span"
    );
    refused(&mut s, not_a_stack(heap, heap + 2 * K), |s| {
        s.stackfree(Ctx::on(p), in_heap)
    });
    let big_in_heap = Stack {
        lo: heap,
        hi: heap + 32 * K,
    };
    refused(&mut s, Throw::Go(GoThrow::BadSpanState), |s| {
        s.stackfree(Ctx::on(p), big_in_heap)
    });
    assert_eq!(GoThrow::BadSpanState.to_string(), "bad span state");
    // Large: double free (its span went back to the heap: Go finds the
    // dead span), and an address outside the arena.
    free(&mut s, Ctx::on(p), big);
    refused(&mut s, Throw::Go(GoThrow::BadSpanState), |s| {
        s.stackfree(Ctx::on(p), big)
    });
    refused(&mut s, not_a_stack(0x1000, 0x1000 + 64 * K), |s| {
        s.stackfree(
            Ctx::no_p(),
            Stack {
                lo: 0x1000,
                hi: 0x1000 + 64 * K,
            },
        )
    });
    // Empty bounds: size 0 passes Go's power-of-two test and takes order
    // 0, so in a heap span Go's stackpoolfree check fires; elsewhere ours.
    refused(
        &mut s,
        Throw::Go(GoThrow::FreeingStackNotInStackSpan),
        |s| s.stackfree(Ctx::no_p(), Stack { lo: heap, hi: heap }),
    );
    let c0 = s.ps[&p].stackcache[0].list[0];
    refused(&mut s, not_a_stack(c0, c0), |s| {
        s.stackfree(Ctx::no_p(), Stack { lo: c0, hi: c0 })
    });
    // Inverted bounds.
    refused(&mut s, Throw::Go(GoThrow::StackNotPowerOf2), |s| {
        s.stackfree(
            Ctx::no_p(),
            Stack {
                lo: heap + 3,
                hi: heap,
            },
        )
    });
    refused(&mut s, Throw::Misuse(Misuse::NoSuchP(9)), |s| {
        s.stackfree(Ctx::on(9), big)
    });
}

/// Go: `stackpoolalloc` and the large path of `stackalloc` throw "out of
/// memory" when the heap cannot supply a span; nothing changes.
#[test]
fn out_of_memory() {
    let mut config = Config::new(Profile::parse("linux", "386", false, "1.19").unwrap());
    config.arena_bytes = 4 << 20;
    let mut s = State::new(config).unwrap();
    let p = s.create_p().unwrap();
    let oom = Throw::Go(GoThrow::OutOfMemory);
    assert_eq!(oom.to_string(), "out of memory");
    // Leave 2 free pages: less than a pool span (4) or a 64K stack (8).
    let hog = s.heap_alloc(510).unwrap();
    refused(&mut s, oom.clone(), |s| s.stackalloc(Ctx::on(p), 8 * K));
    refused(&mut s, oom.clone(), |s| s.stackalloc(Ctx::no_p(), 2 * K));
    refused(&mut s, oom.clone(), |s| s.stackalloc(Ctx::no_p(), 64 * K));
    refused(&mut s, oom.clone(), |s| s.heap_alloc(3));
    s.heap_free(hog).unwrap();
    alloc(&mut s, Ctx::on(p), 8 * K);
    // A refill that gets its span but not the whole arena is fine; a stack
    // larger than the arena is not.
    refused(&mut s, oom, |s| s.stackalloc(Ctx::no_p(), 8 << 20));
}

/// GC phase misuse: operations outside the phase Go runs them in.
#[test]
fn gc_phase_rules() {
    let mut s = linux();
    let wrong = |op, needs, found| Throw::Misuse(Misuse::WrongGcPhase { op, needs, found });
    refused(
        &mut s,
        wrong("gcMarkTermination", "_GCmark", "_GCoff"),
        |s| s.gc_mark_termination(),
    );
    refused(
        &mut s,
        wrong("setGCPhase(_GCoff)", "_GCmarktermination", "_GCoff"),
        |s| s.gc_off(),
    );
    refused(&mut s, wrong("a GC marker", "_GCmark", "_GCoff"), |s| {
        s.gc_mark_read(0)
    });
    s.gc_start().unwrap();
    refused(&mut s, wrong("gcStart", "_GCoff", "_GCmark"), |s| {
        s.gc_start()
    });
    refused(&mut s, wrong("freeStackSpans", "_GCoff", "_GCmark"), |s| {
        s.free_stack_spans()
    });
    s.gc_mark_termination().unwrap();
    s.gc_off().unwrap();
    refused(
        &mut s,
        wrong(
            "gcStart",
            "_GCoff after freeStackSpans",
            "_GCoff before freeStackSpans",
        ),
        |s| s.gc_start(),
    );
    s.free_stack_spans().unwrap();
    s.gc_start().unwrap();
    assert_eq!(s.gcphase, GcPhase::Mark);
}

/// Double frees where Go's checks fire (runtime/stack.go `stackfree` and
/// `stackpoolfree`, runtime/mheap.go `mSpanList.insert`; the same in Go
/// 1.19 and 1.23): Go looks the address up with `spanOfUnchecked`, so what
/// it says depends on what became of the span.
#[test]
fn double_frees_get_go_throws() {
    for release in ["1.19", "1.23"] {
        let mut s = state_for("linux/amd64", release);
        let p = s.create_p().unwrap();
        // A large stack freed twice with the GC off: its span went back to
        // the heap and is dead.
        let big = alloc(&mut s, Ctx::on(p), 64 * K);
        free(&mut s, Ctx::on(p), big);
        refused(&mut s, Throw::Go(GoThrow::BadSpanState), |s| {
            s.stackfree(Ctx::on(p), big)
        });
        // Freed twice during one GC cycle: the span waits on stackLarge,
        // and inserting it again throws.
        let big = alloc(&mut s, Ctx::on(p), 64 * K);
        s.gc_start().unwrap();
        free(&mut s, Ctx::on(p), big);
        refused(&mut s, Throw::Go(GoThrow::MSpanListInsert), |s| {
            s.stackfree(Ctx::on(p), big)
        });
        assert_eq!(GoThrow::MSpanListInsert.to_string(), "mSpanList.insert");
        // A small stack freed through the pool path onto that listed large
        // span: stackpoolfree inserts the span into the pool list.
        let inside = Stack {
            lo: big.lo,
            hi: big.lo + 2 * K,
        };
        refused(&mut s, Throw::Go(GoThrow::MSpanListInsert), |s| {
            s.stackfree(Ctx::no_p(), inside)
        });
        // Once the GC is off but before freeStackSpans, Go would free the
        // listed span to the heap and corrupt stackLarge: ours.
        s.gc_mark_termination().unwrap();
        s.gc_off().unwrap();
        refused(
            &mut s,
            Throw::Misuse(Misuse::NotAStack {
                lo: big.lo,
                hi: big.hi,
            }),
            |s| s.stackfree(Ctx::on(p), big),
        );
        s.free_stack_spans().unwrap();
        // A small stack freed twice through the pool path after its span
        // went back to the heap: the dead span is not a stack span.
        let small = alloc(&mut s, Ctx::no_p(), 2 * K);
        free(&mut s, Ctx::no_p(), small);
        assert!(s.heap.span_of(small.lo).is_none(), "the empty span left");
        refused(
            &mut s,
            Throw::Go(GoThrow::FreeingStackNotInStackSpan),
            |s| s.stackfree(Ctx::no_p(), small),
        );
        // Through a P's cache Go checks nothing: ours.
        refused(
            &mut s,
            Throw::Misuse(Misuse::NotAStack {
                lo: small.lo,
                hi: small.hi,
            }),
            |s| s.stackfree(Ctx::on(p), small),
        );
    }
}

/// GC and P sequencing (runtime/debug.go `GOMAXPROCS` → `stopTheWorldGC`;
/// runtime/mgc.go `gcStart`, `gcSweep`; runtime/mcache.go
/// `prepareForSweep`; Go 1.19 and 1.23): no P is made or destroyed while
/// a GC cycle runs; once the GC turns off every P's cache is due for its flush,
/// and `gcStart` throws "p mcache not flushed" while one is not done (a P
/// made meanwhile starts flushed).
#[test]
fn gc_and_p_sequencing() {
    let mut s = linux();
    let (p0, p1) = (s.create_p().unwrap(), s.create_p().unwrap());
    alloc(&mut s, Ctx::on(p0), 2 * K);
    s.gc_start().unwrap();
    let wait = Throw::Misuse(Misuse::WouldBlock(
        "procresize: GOMAXPROCS waits for the GC cycle to end (stopTheWorldGC)",
    ));
    refused(&mut s, wait.clone(), |s| s.destroy_p(p1));
    refused(&mut s, wait.clone(), |s| s.create_p().map(|_| ()));
    s.gc_mark_termination().unwrap();
    refused(&mut s, wait.clone(), |s| s.destroy_p(p1));
    s.gc_off().unwrap();
    refused(&mut s, wait.clone(), |s| s.destroy_p(p1));
    refused(&mut s, wait, |s| s.create_p().map(|_| ()));
    assert_eq!(
        s.unflushed.iter().copied().collect::<Vec<_>>(),
        vec![p0, p1]
    );
    s.free_stack_spans().unwrap();
    let p2 = s.create_p().unwrap();
    s.flush_cache(p0).unwrap();
    refused(&mut s, Throw::Go(GoThrow::PMcacheNotFlushed), |s| {
        s.gc_start()
    });
    assert_eq!(
        GoThrow::PMcacheNotFlushed.to_string(),
        "p mcache not flushed"
    );
    // Destroying the unflushed P flushes its cache (freemcache).
    s.destroy_p(p1).unwrap();
    ok(&s);
    assert!(s.unflushed.is_empty());
    s.gc_start().unwrap();
    s.gc_end().unwrap();
    assert!(s.unflushed.is_empty(), "gc_end flushes every P");
    s.destroy_p(p2).unwrap();
}

/// Go: `runtime.ReadMemStats` (runtime/mstats.go, Go 1.19 and 1.23) stops
/// the world and flushes every P's caches (`flushallmcaches` →
/// `flushmcache` → `stackcache_clear`) before it reads StackInuse: with
/// the GC off a pool span left empty goes back to the heap, so the figure
/// it reports already excludes it. The P's sweep flush stays due (its
/// `flushGen` is untouched), and in mark termination it waits.
#[test]
fn read_mem_stats_flushes_every_cache_first() {
    let mut s = linux();
    let (p, q) = (s.create_p().unwrap(), s.create_p().unwrap());
    let a = alloc(&mut s, Ctx::on(p), 2 * K);
    free(&mut s, Ctx::on(p), a);
    let b = alloc(&mut s, Ctx::on(q), 4 * K);
    free(&mut s, Ctx::on(q), b);
    assert_eq!(s.stats().stack_inuse, 64 * K, "two pool spans, all cached");
    let stats = s.read_mem_stats().unwrap();
    ok(&s);
    assert_eq!(stats.stack_inuse, 0, "both spans emptied and freed");
    assert_eq!(stats, s.stats());
    assert_eq!(s.stats().cached_bytes[&p] + s.stats().cached_bytes[&q], 0);
    // After a cycle's gc_off both flushes stay due.
    s.gc_start().unwrap();
    s.gc_mark_termination().unwrap();
    let before = s.clone();
    assert_eq!(
        s.read_mem_stats().map(|_| ()),
        Err(Throw::Misuse(Misuse::WouldBlock(
            gostack_spec::WORLD_STOPPED
        )))
    );
    assert_eq!(s, before);
    s.gc_off().unwrap();
    s.read_mem_stats().unwrap();
    assert_eq!(s.unflushed.iter().copied().collect::<Vec<_>>(), vec![p, q]);
    s.free_stack_spans().unwrap();
    refused(&mut s, Throw::Go(GoThrow::PMcacheNotFlushed), |s| {
        s.gc_start()
    });
}

/// A state whose stacks come from the OS: `GODEBUG=efence=1` or the
/// `stackFromSystem` / `stackFaultOnFree` constants.
fn from_system(release: &str, efence: bool, from_system: bool, fault: bool) -> State {
    let mut config = Config::new(Profile::parse("linux", "amd64", false, release).unwrap());
    config.arena_bytes = 4 << 20;
    config.godebug.efence = efence;
    config.stack_from_system = from_system;
    config.stack_fault_on_free = fault;
    State::new(config).unwrap()
}

/// stackalloc's first branch (runtime/stack.go, Go 1.19 and 1.23): with
/// efence every stack is `sysAlloc`ed, its size rounded up to the
/// physical page; no pool, cache or span is involved; the bytes count in
/// StackSys (`stacks_sys`), not StackInuse. stackfree then `sysFault`s it:
/// StackSys does not go down and the range is never handed out again.
#[test]
fn efence_stacks_come_from_the_os_and_are_never_reused() {
    let mut s = from_system("1.23", true, false, false);
    let p = s.create_p().unwrap();
    let region = base(&s) + (4 << 20);
    let a = alloc(&mut s, Ctx::on(p), 2 * K);
    assert_eq!(
        a,
        Stack {
            lo: region,
            hi: region + 4 * K
        },
        "2K rounds up to a 4K page"
    );
    let b = alloc(&mut s, Ctx::no_p(), 16 * K);
    assert_eq!(b.lo, region + 4 * K);
    let big = alloc(&mut s, Ctx::on(p), 64 * K);
    assert_eq!(big.hi - big.lo, 64 * K);
    let st = s.stats();
    assert_eq!((st.stack_inuse, st.stack_sys), (0, 84 * K));
    assert_eq!(st.cached_bytes[&p], 0, "the P cache is not refilled");
    assert!(
        s.heap.spans.is_empty() && st.mapped_bytes == 0,
        "the heap is untouched"
    );
    // Freed during a GC too: sysFault at once, no stackLarge.
    s.gc_start().unwrap();
    free(&mut s, Ctx::on(p), a);
    free(&mut s, Ctx::on(p), big);
    assert!(s.stack_large.is_empty());
    assert_eq!(s.stats().stack_sys, 84 * K, "sysFault keeps stacks_sys");
    assert_eq!(s.sys.faulted, 68 * K);
    // Never reused: the next stack is past every range handed out.
    let c = alloc(&mut s, Ctx::on(p), 2 * K);
    assert_eq!(c.lo, region + 84 * K);
    // A second free of a faulted stack, or bounds that are not a stack
    // from the OS, are refused (Go would fault or unmap whatever it got).
    refused(
        &mut s,
        Misuse::NotAStack { lo: a.lo, hi: a.hi }.into(),
        |s| s.stackfree(Ctx::on(p), a),
    );
    refused(
        &mut s,
        Misuse::NotAStack {
            lo: c.lo,
            hi: c.lo + 2 * K,
        }
        .into(),
        |s| {
            s.stackfree(
                Ctx::on(p),
                Stack {
                    lo: c.lo,
                    hi: c.lo + 2 * K,
                },
            )
        },
    );
    refused(&mut s, GoThrow::StackNotPowerOf2.into(), |s| {
        s.stackfree(
            Ctx::on(p),
            Stack {
                lo: c.lo,
                hi: c.lo + 3 * K,
            },
        )
    });
}

/// Without a fault, `stackFromSystem`'s stackfree is `sysFree`: StackSys
/// goes down and the range is free for the next mapping (the spec's OS
/// hands out the lowest free range that fits and merges freed ones).
/// `stackFaultOnFree` alone changes nothing: Go reads it only inside the
/// `stackFromSystem` branch.
#[test]
fn stack_from_system_frees_with_sysfree() {
    let mut s = from_system("1.23", false, true, false);
    let a = alloc(&mut s, Ctx::no_p(), 8 * K);
    let b = alloc(&mut s, Ctx::no_p(), 8 * K);
    let c = alloc(&mut s, Ctx::no_p(), 8 * K);
    free(&mut s, Ctx::no_p(), a);
    free(&mut s, Ctx::no_p(), b);
    assert_eq!(s.stats().stack_sys, 8 * K);
    assert_eq!(s.sys.free.get(&a.lo), Some(&(16 * K)), "merged");
    let d = alloc(&mut s, Ctx::no_p(), 16 * K);
    assert_eq!(d.lo, a.lo, "the lowest range that fits");
    free(&mut s, Ctx::no_p(), c);
    free(&mut s, Ctx::no_p(), d);
    assert_eq!(s.sys.free.len(), 1);
    assert_eq!(s.stats().stack_sys, 0);

    let mut s = from_system("1.23", false, false, true);
    let a = alloc(&mut s, Ctx::no_p(), 2 * K);
    assert_eq!(a.hi - a.lo, 2 * K, "the arena's pools, not the OS");
    assert_eq!(s.stats().stack_inuse, 32 * K);

    let mut s = from_system("1.23", false, true, true);
    let a = alloc(&mut s, Ctx::no_p(), 8 * K);
    free(&mut s, Ctx::no_p(), a);
    assert_eq!((s.stats().stack_sys, s.sys.faulted), (8 * K, 8 * K));
}

/// `sysAlloc` failing is "out of memory (stackalloc)" (stackalloc,
/// runtime/stack.go); here the region the OS maps stacks from is full.
#[test]
fn efence_out_of_memory() {
    let mut s = from_system("1.23", true, false, false);
    let big = alloc(&mut s, Ctx::no_p(), 2 << 20);
    let _ = alloc(&mut s, Ctx::no_p(), 1 << 20);
    refused(&mut s, GoThrow::OutOfMemoryStackalloc.into(), |s| {
        s.stackalloc(Ctx::no_p(), 2 << 20)
    });
    // Faulted ranges are never given back.
    free(&mut s, Ctx::no_p(), big);
    refused(&mut s, GoThrow::OutOfMemoryStackalloc.into(), |s| {
        s.stackalloc(Ctx::no_p(), 2 << 20)
    });
    let _ = alloc(&mut s, Ctx::no_p(), 1 << 20);
}

/// Go 1.19's readmemstats_m (runtime/mstats.go) checks mappedReady
/// against the mapped total; `sysFault` lowers only the first, so after
/// an efence stack is freed ReadMemStats throws. Go 1.23 makes that check
/// only under `doubleCheckReadMemStats` (off outside the runtime's tests).
#[test]
fn go119_read_mem_stats_throws_after_an_efence_free() {
    for (release, throws) in [("1.19", true), ("1.23", false)] {
        let mut s = from_system(release, true, false, false);
        let a = alloc(&mut s, Ctx::no_p(), 2 * K);
        assert_eq!(s.read_mem_stats().unwrap().stack_sys, 4 * K);
        free(&mut s, Ctx::no_p(), a);
        if throws {
            refused(&mut s, GoThrow::MappedReadyNotEqual.into(), |s| {
                s.read_mem_stats()
            });
        } else {
            assert_eq!(s.read_mem_stats().unwrap().stack_sys, 4 * K);
        }
    }
}

/// The region for stacks from the OS (as large as the arena, right above
/// it) must fit in the address space.
#[test]
fn efence_region_must_fit() {
    let mut config = Config::new(Profile::parse("linux", "386", false, "1.19").unwrap());
    config.arena_base = 0xd000_0000;
    config.arena_bytes = 512 << 20;
    assert!(State::new(config.clone()).is_ok());
    config.godebug.efence = true;
    assert!(matches!(
        State::new(config),
        Err(Throw::Misuse(Misuse::BadArena(_)))
    ));
}

/// The page heap's first fit at its edges (runtime/mheap.go `allocSpan`
/// as the spec models it: lowest-addressed free run that fits, growth by
/// 512-page chunks only when none does, the arena's end exact).
#[test]
fn page_heap_first_fit_edges() {
    use gostack_spec::heap::{PageHeap, GROWTH_PAGES};
    let mut h = PageHeap::new(0x10000, 2 * GROWTH_PAGES);
    // A run of exactly the size asked is taken whole; one page more skips
    // it for the next run that fits.
    let a = h.alloc_span(3, SpanState::InUse).unwrap();
    let b = h.alloc_span(1, SpanState::InUse).unwrap();
    let c = h.alloc_span(4, SpanState::InUse).unwrap();
    let _d = h.alloc_span(1, SpanState::InUse).unwrap();
    assert_eq!(h.mapped_pages, GROWTH_PAGES);
    h.free_span(a).unwrap();
    h.free_span(c).unwrap();
    assert_eq!(
        h.alloc_span(3, SpanState::InUse),
        Some(a),
        "exact fit, lowest first"
    );
    h.free_span(a).unwrap();
    assert_eq!(
        h.alloc_span(4, SpanState::InUse),
        Some(c),
        "3 pages are one too few"
    );
    assert!(!h.free.contains_key(&4), "the 4-page run was taken whole");
    // Freeing b between two free runs merges all three.
    h.free_span(c).unwrap();
    h.free_span(b).unwrap();
    assert_eq!(h.free.get(&0), Some(&8));
    // The rest of the first chunk is used before the heap grows; a span
    // one page larger than what is free grows it by one chunk.
    assert_eq!(h.free.values().max(), Some(&(GROWTH_PAGES - 9)));
    let fill = h.alloc_span(GROWTH_PAGES - 9, SpanState::InUse).unwrap();
    assert_eq!(h.mapped_pages, GROWTH_PAGES, "fits without growing");
    h.free_span(fill).unwrap();
    let grown = h.alloc_span(GROWTH_PAGES - 8, SpanState::InUse).unwrap();
    assert_eq!(h.mapped_pages, 2 * GROWTH_PAGES, "one chunk more");
    assert_eq!(
        grown,
        h.base + 9 * PAGE_SIZE,
        "the last free run grew into the new chunk"
    );
    // The arena's end: what is left fits exactly; one page more does not.
    let left: u64 = h.free.values().sum();
    assert_eq!(h.alloc_span(left + 1, SpanState::InUse), None);
    let tail = *h.free.iter().last().unwrap().1;
    assert!(h.alloc_span(tail, SpanState::InUse).is_some());
}
