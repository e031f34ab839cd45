//! Random operation sequences over the stack allocator: several Ps, no-P
//! and preemptoff calls, GC phases, GC markers, interleaved heap use, bad
//! sizes and bad frees. After every step `check_invariants` holds, and a
//! step that fails leaves the state unchanged. At the end, freeing
//! everything with GC off returns every stack page to the heap.
//!
//! Default: 256 sequences of up to 200 steps over six profiles (about a
//! second); `PROPTEST_CASES` raises the count.

use gostack_spec::{check_invariants, Config, Ctx, GcPhase, Profile, Stack, State};
use proptest::prelude::*;

const PROFILES: &[(&str, &str)] = &[
    ("linux/amd64", "1.23"),
    ("linux/386", "1.19"),
    ("windows/amd64", "1.23"),
    ("windows/386", "1.23"),
    ("plan9/amd64", "1.19"),
    ("ios/arm64", "1.23"),
];

#[derive(Clone, Debug)]
enum Who {
    P(usize),
    NoP,
    Preemptoff(usize),
}

#[derive(Clone, Debug)]
enum Op {
    Alloc(Who, u64),
    Free(Who, usize),
    /// A free of bounds derived from a live stack: shifted, resized, or
    /// a stack already freed.
    BadFree(Who, usize, u8),
    CreateP,
    DestroyP(usize),
    FlushCache(usize),
    HeapAlloc(u64),
    HeapFree(usize),
    GcStart,
    GcMarkTermination,
    GcOff,
    FreeStackSpans,
    GcEnd,
    MarkRead(usize, u64),
    Mark(usize),
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        4 => (0usize..8).prop_map(Who::P),
        2 => Just(Who::NoP),
        1 => (0usize..8).prop_map(Who::Preemptoff),
    ]
}

fn size() -> impl Strategy<Value = u64> {
    prop_oneof![
        12 => (11u32..=15).prop_map(|s| 1u64 << s),
        4 => (16u32..=20).prop_map(|s| 1u64 << s),
        1 => prop_oneof![Just(0u64), Just(1024), Just(3 * 1024), Just(1 << 33), Just(24 << 20)],
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (who(), size()).prop_map(|(w, n)| Op::Alloc(w, n)),
        25 => (who(), any::<usize>()).prop_map(|(w, i)| Op::Free(w, i)),
        3 => (who(), any::<usize>(), any::<u8>()).prop_map(|(w, i, k)| Op::BadFree(w, i, k)),
        3 => Just(Op::CreateP),
        1 => any::<usize>().prop_map(Op::DestroyP),
        1 => any::<usize>().prop_map(Op::FlushCache),
        4 => (1u64..48).prop_map(Op::HeapAlloc),
        3 => any::<usize>().prop_map(Op::HeapFree),
        2 => Just(Op::GcStart),
        2 => Just(Op::GcMarkTermination),
        2 => Just(Op::GcOff),
        2 => Just(Op::FreeStackSpans),
        1 => Just(Op::GcEnd),
        3 => (any::<usize>(), any::<u64>()).prop_map(|(i, o)| Op::MarkRead(i, o)),
        2 => any::<usize>().prop_map(Op::Mark),
    ]
}

/// What the test holds: live stacks, heap spans, P ids, marker ids.
#[derive(Default)]
struct Held {
    stacks: Vec<Stack>,
    freed: Vec<Stack>,
    heap: Vec<u64>,
    ps: Vec<u32>,
    markers: Vec<u32>,
}

fn pick<T: Copy>(v: &[T], i: usize) -> Option<T> {
    if v.is_empty() {
        None
    } else {
        Some(v[i % v.len()])
    }
}

fn ctx(h: &Held, w: &Who) -> Ctx {
    match w {
        // A P id that may be stale (destroyed) or never made, now and then.
        Who::P(i) => Ctx::on(pick(&h.ps, *i).unwrap_or(*i as u32 + 100)),
        Who::NoP => Ctx::no_p(),
        Who::Preemptoff(i) => Ctx {
            p: Some(pick(&h.ps, *i).unwrap_or(0)),
            preemptoff: true,
        },
    }
}

fn apply(s: &mut State, h: &mut Held, op: &Op) -> Result<(), gostack_spec::Throw> {
    match op {
        Op::Alloc(w, n) => {
            let stk = s.stackalloc(ctx(h, w), *n)?;
            h.stacks.push(stk);
        }
        Op::Free(w, i) => {
            if let Some(stk) = pick(&h.stacks, *i) {
                s.stackfree(ctx(h, w), stk)?;
                h.stacks.retain(|x| *x != stk);
                h.freed.push(stk);
            }
        }
        Op::BadFree(w, i, k) => {
            let bad = match (k % 3, pick(&h.stacks, *i), pick(&h.freed, *i)) {
                (0, Some(st), _) => Stack {
                    lo: st.lo + 8,
                    hi: st.hi + 8,
                },
                (1, Some(st), _) => Stack {
                    lo: st.lo,
                    hi: st.lo + 2 * (st.hi - st.lo),
                },
                (_, _, Some(st)) if !h.stacks.contains(&st) => st,
                _ => return Ok(()),
            };
            s.stackfree(ctx(h, w), bad)?;
            panic!("a bad free of {bad:x?} succeeded");
        }
        Op::CreateP => h.ps.push(s.create_p()?),
        Op::DestroyP(i) => {
            if let Some(p) = pick(&h.ps, *i) {
                s.destroy_p(p)?;
                h.ps.retain(|&x| x != p);
            }
        }
        Op::FlushCache(i) => {
            if let Some(p) = pick(&h.ps, *i) {
                s.flush_cache(p)?;
            }
        }
        Op::HeapAlloc(n) => h.heap.push(s.heap_alloc(*n)?),
        Op::HeapFree(i) => {
            if let Some(b) = pick(&h.heap, *i) {
                s.heap_free(b)?;
                h.heap.retain(|&x| x != b);
            }
        }
        Op::GcStart => s.gc_start()?,
        Op::GcMarkTermination => {
            s.gc_mark_termination()?;
            h.markers.clear();
        }
        Op::GcOff => s.gc_off()?,
        Op::FreeStackSpans => s.free_stack_spans()?,
        Op::GcEnd => {
            s.gc_end()?;
            h.markers.clear();
        }
        Op::MarkRead(i, off) => {
            if let Some(stk) = pick(&h.stacks, *i) {
                let addr = stk.lo + off % (stk.hi - stk.lo);
                h.markers.push(s.gc_mark_read(addr)?);
            }
        }
        Op::Mark(i) => {
            if let Some(m) = pick(&h.markers, *i) {
                s.gc_mark(m)?;
                h.markers.retain(|&x| x != m);
            }
        }
    }
    Ok(())
}

/// Frees everything with the GC off; every stack page must be back.
fn drain(s: &mut State, h: &mut Held) {
    match s.gcphase {
        GcPhase::Mark | GcPhase::MarkTermination => s.gc_end().unwrap(),
        GcPhase::Off if s.spans_pending_free => s.free_stack_spans().unwrap(),
        GcPhase::Off => {}
    }
    for stk in std::mem::take(&mut h.stacks) {
        s.stackfree(Ctx::no_p(), stk).unwrap();
    }
    for p in std::mem::take(&mut h.ps) {
        s.destroy_p(p).unwrap();
    }
    for b in std::mem::take(&mut h.heap) {
        s.heap_free(b).unwrap();
    }
    check_invariants(s).unwrap();
    assert_eq!(
        s.stats().stack_inuse,
        0,
        "stack pages left: {:?}",
        s.heap.spans
    );
    assert!(s.heap.spans.is_empty());
    assert!(s.stackpool.iter().all(Vec::is_empty) && s.stack_large.is_empty());
    let mapped = s.heap.mapped_pages;
    assert!(
        mapped == 0 || s.heap.free.iter().eq([(&0, &mapped)]),
        "heap not whole again"
    );
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(256),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn invariants_hold_and_failures_change_nothing(pi in 0..PROFILES.len(), ops in prop::collection::vec(op(), 1..200)) {
        let (port, release) = PROFILES[pi];
        let (os, arch) = port.split_once('/').unwrap();
        let mut config = Config::new(Profile::parse(os, arch, false, release).unwrap());
        config.arena_bytes = 16 << 20;
        let mut s = State::new(config).unwrap();
        let mut h = Held::default();
        h.ps.push(s.create_p().unwrap());
        for (i, op) in ops.iter().enumerate() {
            let before = s.clone();
            let r = apply(&mut s, &mut h, op);
            if let Err(gostack_spec::Throw::Go(t)) = &r {
                // Fatal: the runtime is dead of it and kept the state from
                // before; the case ends here.
                prop_assert_eq!(s.dead.take(), Some(*t));
            }
            if r.is_err() {
                prop_assert!(s == before, "step {i} {op:?} failed but changed the state");
            }
            if let Err(v) = check_invariants(&s) {
                return Err(TestCaseError::fail(format!("{port} go{release} step {i} {op:?}: {v}")));
            }
            if matches!(r, Err(gostack_spec::Throw::Go(_))) {
                return Ok(());
            }
        }
        drain(&mut s, &mut h);
    }
}
