//! The differential state-machine test: the spec (`gostack_spec::State`)
//! and the implementation (`gostack::Runtime`, real memory) run the same
//! random op sequences ([`gostack_models::gen`]: allocator, GC, goroutines,
//! channels, mostly valid with a steady share of hostile ops) over eight
//! profiles (linux/amd64 1.23, linux/386 1.19, windows/amd64 1.23,
//! plan9/amd64 1.23, linux/arm64 1.23 and 1.19, windows/386 1.23,
//! ios/arm64 1.23). After every op
//! [`Harness::step`] requires equal results (the exact `Throw` included),
//! equal snapshots (`==`) and the spec's invariants; a failure shows the
//! first differing snapshot field and a JSON reproducer (`gostack conform
//! --replay FILE` replays it), and proptest shrinks the sequence.
//!
//! Default: 256 cases of up to 300 ops (about 44,000 ops and 100,000 API
//! calls, since bursts make several), from a fixed seed so that every run
//! checks the same cases (`PROPTEST_CASES` raises the count,
//! `PROPTEST_RNG_SEED` picks other cases). About 10 s (5 s of CPU) in the
//! test profile on a loaded 2-core machine: some 25 cases/s, 4,000 ops/s.
//! Failures are persisted in `tests/differential.regressions` and replayed
//! first.
//!
//! The other tests: `spec_against_itself` runs the same machinery with the
//! spec on both sides (everything must agree trivially);
//! `arbitrary_ops_agree` feeds unweighted `Arbitrary` ops (what a fuzz
//! target gets); `divergence_is_reported` and
//! `a_fault_is_caught_located_and_minimized` give the harness teeth: a
//! deliberately faulty side is caught, the differing field located and
//! the case minimized; `regression_*` replay the divergences this harness
//! found in the implementation (all fixed).

use gostack::Runtime;
use gostack_models::harness::{differences, first_difference, Case, Harness, Mismatch};
use gostack_models::{driver, gen, minimize, Op};
use gostack_spec::goroutine::{Frame, Func, Slot};
use gostack_spec::{Ctx, Stack, State, Throw};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(256),
        // The same cases on every run (CI must not flicker); set
        // PROPTEST_RNG_SEED to explore others.
        rng_seed: proptest::test_runner::RngSeed::Fixed(
            std::env::var("PROPTEST_RNG_SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0x0060_57ac),
        ),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    }
}

fn run<B: gostack_models::Machine>(case: &Case) -> Result<(), TestCaseError> {
    match driver::run_case::<B>(case, false) {
        Ok(_) => Ok(()),
        Err(Ok(d)) => Err(TestCaseError::fail(d.to_string())),
        Err(Err(e)) => Err(TestCaseError::fail(e)),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn impl_equals_spec(case in gen::case_strategy(300)) {
        run::<Runtime>(&case)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..config() })]

    #[test]
    fn spec_against_itself(case in gen::case_strategy(300)) {
        run::<State>(&case)?;
    }
}

/// A divergence is found, located in the snapshot, and its reproducer
/// round-trips through JSON.
#[test]
fn divergence_is_reported() {
    let a = serde_json::json!({"gs": [{"used": [1, 2, 3]}, {"used": [4, 5, 6]}]});
    let b = serde_json::json!({"gs": [{"used": [1, 2, 3]}, {"used": [4, 7, 6]}]});
    let (path, x, y) = first_difference(&a, &b).expect("they differ");
    assert_eq!(path, "gs[1].used[1]");
    assert_eq!((x, y), (5.into(), 7.into()));
    assert!(first_difference(&a, &a).is_none());
    // Every differing field, in order, up to the bound.
    let c = serde_json::json!({"gs": [{"used": [9, 2, 3]}, {"used": [4, 7]}], "p": 1});
    let all: Vec<String> = differences(&a, &c, 10).into_iter().map(|d| d.0).collect();
    assert_eq!(
        all,
        [
            "gs[0].used[0]",
            "gs[1].used[1]",
            "gs[1].used.len (first 2 equal)",
            "p"
        ]
    );
    assert_eq!(differences(&a, &c, 2).len(), 2);

    // Spec against spec with different arenas: the harness compares
    // allocator results as offsets, so they agree; a changed maxstacksize
    // on one side is caught in the snapshot or the results.
    let case = gen::case(7, &[], 300);
    let json = serde_json::to_string(&case).unwrap();
    let back: Case = serde_json::from_str(&json).unwrap();
    assert_eq!(back, case);
    let mut h: Harness<State> = Harness::new("linux/amd64/1.23").unwrap();
    h.step(Op::Spawn(gostack_models::op::Who::P(0), 0))
        .unwrap()
        .unwrap();
    assert!(h
        .step(Op::Frames(gostack_models::op::GSel::Runnable(0)))
        .unwrap()
        .is_ok());
}

/// Ops made by `Arbitrary` from raw bytes (as libFuzzer makes them: no
/// weights, any numbers; [`driver::case_from_bytes`]) drive both sides
/// without a panic or a divergence, and the spec's invariants hold
/// throughout.
#[test]
fn arbitrary_ops_agree() {
    let mut total = 0;
    for seed in 0..24u64 {
        // A simple deterministic byte stream (splitmix64).
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xdead_beef;
        let bytes: Vec<u8> = (0..4096)
            .map(|_| {
                x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                (z ^ (z >> 31)) as u8
            })
            .collect();
        let case = driver::case_from_bytes(&bytes, 200);
        total += case.ops.len();
        if let Err(e) = run::<Runtime>(&case) {
            panic!("{e}");
        }
    }
    assert!(total > 1000, "only {total} ops from the byte streams");
}

/// The spec with one deliberate fault: `set_ctxt` stores a word 8 off.
/// The harness must catch it, locate it in the snapshot, and minimize a
/// random case down to the few ops that show it.
struct Skewed {
    inner: State,
}

impl gostack_models::alloc::StackAllocator for Skewed {
    fn stackalloc(&mut self, ctx: Ctx, n: u64) -> Result<Stack, Throw> {
        self.inner.stackalloc(ctx, n)
    }
    fn stackfree(&mut self, ctx: Ctx, stk: Stack) -> Result<(), Throw> {
        self.inner.stackfree(ctx, stk)
    }
    fn free_stack_spans(&mut self) -> Result<(), Throw> {
        self.inner.free_stack_spans()
    }
    fn create_p(&mut self) -> Result<u32, Throw> {
        self.inner.create_p()
    }
    fn destroy_p(&mut self, p: u32) -> Result<(), Throw> {
        self.inner.destroy_p(p)
    }
    fn flush_cache(&mut self, p: u32) -> Result<(), Throw> {
        self.inner.flush_cache(p)
    }
    fn gc_start(&mut self) -> Result<(), Throw> {
        self.inner.gc_start()
    }
    fn gc_mark_termination(&mut self) -> Result<(), Throw> {
        self.inner.gc_mark_termination()
    }
    fn gc_off(&mut self) -> Result<(), Throw> {
        self.inner.gc_off()
    }
    fn stack_inuse(&self) -> u64 {
        self.inner.stack_inuse()
    }
}

impl gostack_models::Machine for Skewed {
    fn create(config: gostack_spec::Config) -> Result<Self, gostack_spec::Throw> {
        Ok(Skewed {
            inner: State::new(config)?,
        })
    }
    fn alloc_base(&self) -> u64 {
        self.inner.heap.base
    }
    fn snapshot(&self) -> gostack_spec::Snapshot {
        self.inner.snapshot()
    }
    fn world(&self) -> gostack_spec::snapshot::WorldSnap {
        self.inner.world()
    }
    fn park_begin(&mut self, gid: u32, cases: &[(u32, u64)]) -> Result<(), Throw> {
        self.inner.park_begin(gid, cases)
    }
    fn park(&mut self, gid: u32, cases: &[(u32, u64)]) -> Result<(), Throw> {
        self.inner.park(gid, cases)
    }
    fn set_ctxt(&mut self, gid: u32, value: u64) -> Result<(), Throw> {
        let skewed = if value == 0 { 0 } else { value.wrapping_add(8) };
        self.inner.set_ctxt(gid, skewed)
    }
    fn read_mem_stats(&mut self) -> Result<gostack_spec::Stats, Throw> {
        self.inner.read_mem_stats()
    }
    fn heap_alloc(&mut self, npages: u64) -> Result<u64, Throw> {
        self.inner.heap_alloc(npages)
    }
    fn heap_free(&mut self, base: u64) -> Result<(), Throw> {
        self.inner.heap_free(base)
    }
    fn gc_end(&mut self) -> Result<(), Throw> {
        self.inner.gc_end()
    }
    fn gc_mark_read(&mut self, addr: u64) -> Result<u32, Throw> {
        self.inner.gc_mark_read(addr)
    }
    fn gc_mark(&mut self, id: u32) -> Result<(), Throw> {
        self.inner.gc_mark(id)
    }
    fn read_word(&self, addr: u64) -> u64 {
        self.inner.read_word(addr)
    }
    fn add_func(&mut self, f: Func) -> Result<usize, Throw> {
        self.inner.add_func(f)
    }
    fn frames(&self, gid: u32) -> Result<Vec<Frame>, Throw> {
        self.inner.frames(gid)
    }
    fn spawn(&mut self, ctx: Ctx, func: usize) -> Result<u32, Throw> {
        self.inner.spawn(ctx, func)
    }
    fn call(&mut self, ctx: Ctx, gid: u32, site: usize, callee: usize) -> Result<(), Throw> {
        self.inner.call(ctx, gid, site, callee)
    }
    fn ret(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
        self.inner.ret(ctx, gid)
    }
    fn set_site(&mut self, gid: u32, site: usize) -> Result<(), Throw> {
        self.inner.set_site(gid, site)
    }
    fn slot_addr(&self, gid: u32, frame: usize, slot: Slot) -> Result<u64, Throw> {
        self.inner.slot_addr(gid, frame, slot)
    }
    fn write_slot(&mut self, gid: u32, frame: usize, slot: Slot, value: u64) -> Result<(), Throw> {
        self.inner.write_slot(gid, frame, slot, value)
    }
    fn poke(&mut self, gid: u32, addr: u64, value: u64) -> Result<(), Throw> {
        self.inner.poke(gid, addr, value)
    }
    fn defer_push(
        &mut self,
        gid: u32,
        frame: usize,
        fn_value: u64,
        on_stack: Option<usize>,
    ) -> Result<u64, Throw> {
        self.inner.defer_push(gid, frame, fn_value, on_stack)
    }
    fn defer_pop(&mut self, gid: u32) -> Result<(), Throw> {
        self.inner.defer_pop(gid)
    }
    fn panic_push(&mut self, gid: u32, frame: usize, object: usize) -> Result<u64, Throw> {
        self.inner.panic_push(gid, frame, object)
    }
    fn request_preempt(&mut self, gid: u32) -> Result<(), Throw> {
        self.inner.request_preempt(gid)
    }
    fn request_force_move(&mut self, gid: u32) -> Result<(), Throw> {
        self.inner.request_force_move(gid)
    }
    fn set_max_stack(&mut self, bytes: u64) {
        self.inner.set_max_stack(bytes)
    }
    fn is_shrink_stack_safe(&self, gid: u32) -> Result<bool, Throw> {
        self.inner.is_shrink_stack_safe(gid)
    }
    fn enter_syscall(&mut self, gid: u32) -> Result<(), Throw> {
        self.inner.enter_syscall(gid)
    }
    fn exit_syscall(&mut self, gid: u32) -> Result<(), Throw> {
        self.inner.exit_syscall(gid)
    }
    fn set_async_safe_point(&mut self, gid: u32, on: bool) -> Result<(), Throw> {
        self.inner.set_async_safe_point(gid, on)
    }
    fn gc_scan(&mut self, p: u32, gid: u32) -> Result<(), Throw> {
        self.inner.gc_scan(p, gid)
    }
    fn gc_compute_starting_stack_size(&mut self) -> Result<(), Throw> {
        self.inner.gc_compute_starting_stack_size()
    }
    fn gc_free_g_stacks(&mut self, p: u32) -> Result<(), Throw> {
        self.inner.gc_free_g_stacks(p)
    }
    fn exit_syscall0(&mut self, gid: u32) -> Result<(), Throw> {
        self.inner.exit_syscall0(gid)
    }
    fn newproc(&mut self, ctx: Ctx, func: usize) -> Result<u32, Throw> {
        self.inner.newproc(ctx, func)
    }
    fn start(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
        self.inner.start(ctx, gid)
    }
    fn create_m(&mut self, ctx: Ctx) -> Result<u32, Throw> {
        self.inner.create_m(ctx)
    }
    fn exit_m(&mut self, ctx: Ctx, m: u32) -> Result<(), Throw> {
        self.inner.exit_m(ctx, m)
    }
    fn before_fork(&mut self, gid: u32) -> Result<(), Throw> {
        self.inner.before_fork(gid)
    }
    fn after_fork(&mut self, gid: u32) -> Result<(), Throw> {
        self.inner.after_fork(gid)
    }
    fn exit(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
        self.inner.exit(ctx, gid)
    }
    fn make_chan(&mut self, elemsize: u64) -> Result<u32, Throw> {
        self.inner.make_chan(elemsize)
    }
    fn park_set_parking(&mut self, gid: u32) -> Result<(), Throw> {
        self.inner.park_set_parking(gid)
    }
    fn park_m(&mut self, gid: u32) -> Result<(), Throw> {
        self.inner.park_m(gid)
    }
    fn park_commit(&mut self, gid: u32) -> Result<(), Throw> {
        self.inner.park_commit(gid)
    }
    fn send(&mut self, c: u32, value: &[u64]) -> Result<u32, Throw> {
        self.inner.send(c, value)
    }
    fn wake(&mut self, gid: u32) -> Result<(), Throw> {
        self.inner.wake(gid)
    }
}

#[test]
fn a_fault_is_caught_located_and_minimized() {
    let found = (0..64)
        .map(|seed| gen::case(seed, &["linux/amd64/1.23".to_string()], 300))
        .find_map(|case| match driver::run_case::<Skewed>(&case, false) {
            Err(Ok(d)) => Some(d),
            _ => None,
        })
        .expect("64 random cases never set a non-nil ctxt");
    match &found.mismatch {
        Mismatch::Snapshot { path, .. } => {
            assert!(
                path.starts_with("snapshot.goroutines[") && path.ends_with("regs[2]"),
                "{path}"
            )
        }
        m => panic!("expected a snapshot difference in ctxt, got {m:?}"),
    }
    let (small, d) = minimize::<Skewed>(&found, 3000);
    assert_eq!(d.key(), found.key());
    assert!(
        small.ops.len() <= 3 && small.ops.len() < found.case.ops.len(),
        "minimized to {} ops: {:?}",
        small.ops.len(),
        small.ops
    );
    assert!(
        matches!(small.ops.last(), Some(Op::SetCtxt(..))),
        "{:?}",
        small.ops
    );
    // The reproducer replays to the same divergence, and not without the
    // fault.
    let back: Case = serde_json::from_str(&serde_json::to_string(&small).unwrap()).unwrap();
    match driver::run_case::<Skewed>(&back, false) {
        Err(Ok(again)) => assert_eq!(again.key(), d.key()),
        other => panic!("the reproducer did not diverge again: {other:?}"),
    }
    assert!(driver::run_case::<State>(&back, false).is_ok());
}

/// Replays a reproducer, requiring spec and impl to agree.
fn replay_json(json: &str) {
    let case: Case = serde_json::from_str(json).expect("a reproducer");
    if let Err(e) = run::<Runtime>(&case) {
        panic!("{e}");
    }
}

/// Found by this harness: a call that must grow, made with a P id that
/// does not exist, on a goroutine with junk in a live pointer slot. The
/// spec's copystack allocates the new stack first (as Go's does) and
/// refuses the P (`NoSuchP`); the impl adjusted the frames first and
/// threw "invalid pointer found on stack". Fixed: the impl's prediction
/// of an allocation checks the P where `stackalloc` does.
#[test]
fn regression_growth_with_unknown_p() {
    replay_json(
        r#"{"profile":"linux/amd64/1.23","ops":[{"Spawn":[{"P":0},0]},
        {"WriteSlot":[{"Runnable":0},0,{"Local":0},{"Junk":0}]},
        {"Recurse":[{"Id":10},{"Runnable":0},0,1,32]}]}"#,
    );
}

/// Found by this harness: after a GC raised the starting stack size, a
/// spawn reuses a dead goroutine, frees its old-size stack (gfget) and
/// then runs out of memory allocating the new one. The spec's spawn fails
/// whole; the impl's leaves the old stack freed onto the P's cache
/// (`snapshot.caches[0].lists[0][0]` differed): a failed operation changed
/// the state. Fixed: the impl predicts the allocation before gfget frees.
#[test]
fn regression_failed_spawn_keeps_dropped_stack() {
    replay_json(
        r#"{"profile":"windows/386/1.23","ops":[{"AllocMany":[{"P":0},{"Order":6},31]},
        {"SpawnBurst":[{"P":0},0,4]},{"ExitBurst":[{"P":0},4]},"GcStart",
        {"Spawn":[{"P":0},0]},{"Recurse":[{"P":0},"Last",0,8,8]},{"GcScan":[0,"Last"]},
        "GcEnd",{"Alloc":["NoP",{"Order":5}]},{"SpawnBurst":[{"P":0},0,64]}]}"#,
    );
}

/// Found by this harness (arm64): a spawn that fails with out of memory
/// (no dead goroutine to reuse; malg's stack allocation fails) leaves the
/// impl's goroutine 0, which the op never named, with a different saved
/// frame pointer (`snapshot.goroutines[0].regs[0]`: the spec's points
/// 0x68 below the top of g 0's stack, the impl's outside it). Fixed with
/// the previous one.
#[test]
fn regression_failed_spawn_leaves_other_goroutines() {
    replay_json(
        r#"{"profile":"ios/arm64/1.23","ops":["GcStart",{"Spawn":[{"P":0},0]},
        {"Recurse":[{"P":0},"Last",0,9,15]},{"GcScan":[0,"Last"]},{"Exit":[{"P":0},"Last"]},
        "GcEnd",{"Spawn":[{"P":0},0]},"GcStart",{"AllocMany":["NoP",{"Order":7},38]},
        {"Ret":[{"P":1},{"Runnable":6}]},{"HeapAlloc":33},"GcComputeStartingStackSize",
        {"SpawnBurst":[{"P":2},2,21]},{"SpawnBurst":[{"P":1},5,56]}]}"#,
    );
}
