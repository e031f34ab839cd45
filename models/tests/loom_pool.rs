//! Loom model 1 (docs/ARCHITECTURE.md section 6): P caches against the global pool.
//!
//! Two threads, each running on its own P, allocate and free stacks of one
//! order so that their cache refills (`stackcacherefill`) and releases
//! (`stackcacherelease`) meet in the pool list of that order, while a third
//! thread without a P allocates from and frees to the pool directly
//! (`stackpoolalloc` / `stackpoolfree` under the pool lock). Loom runs every
//! interleaving of the pool, heap and stackLarge locks and the GC phase
//! within the preemption bound.
//!
//! Properties, for every interleaving:
//! - no stack is handed out twice: each thread writes its own mark into
//!   every stack it gets and finds it unchanged when it frees the stack;
//! - none is lost, and the end state is exactly a sequential one: the
//!   allocator logs the order in which operations took the pool lock
//!   (`Stacks::linearization`, loom builds only); the spec's `State` applies
//!   the same operations in that order (operations served by a P's cache
//!   alone commute with everything else and keep their thread's order); every
//!   result must be the spec's (same stack offsets), the final snapshots must
//!   be equal (`==`, caches included), and the spec's invariants must hold.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release -p gostack-models
//! --test loom_pool -- --nocapture` (ci/loom.sh). `LOOM_MAX_PREEMPTIONS`
//! sets the bound (default 3). Without `cfg(loom)` this file is empty.
#![cfg(loom)]

mod common;

use gostack::Stacks;
use gostack_spec::{check_invariants, Config, Ctx, Profile, Stack, State, Throw};
use loom::sync::Arc;

/// 16 KiB stacks: order 3 on linux/amd64. A pool span holds two, a refill
/// takes one, a cache holding two releases one before taking a third: the
/// smallest numbers at which refill, release and direct pool use all
/// happen.
const N: u64 = 16 << 10;

#[derive(Copy, Clone, Debug)]
enum Step {
    Alloc,
    /// Free the i-th stack this thread allocated.
    Free(usize),
}

/// One thread's program: on P `p`, or without a P.
struct Program {
    p: Option<u32>,
    steps: Vec<Step>,
}

/// What a thread saw: per step, the stack allocated (or the throw) or the
/// free's result.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Alloc(Result<Stack, Throw>),
    Free(Result<(), Throw>),
}

fn config() -> Config {
    let mut c = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
    c.arena_bytes = 4 << 20;
    c
}

fn programs() -> Vec<Program> {
    use Step::*;
    vec![
        // Three refills (the first two empty a span), then three frees, the
        // last of which releases one stack to the pool.
        Program {
            p: Some(0),
            steps: vec![Alloc, Alloc, Alloc, Free(0), Free(1), Free(2)],
        },
        // A refill, and a release that meets the other P's refills.
        Program {
            p: Some(1),
            steps: vec![Alloc, Alloc, Free(1), Free(0)],
        },
        // Straight from and back to the pool.
        Program {
            p: None,
            steps: vec![Alloc, Free(0)],
        },
    ]
}

fn mark(thread: usize, step: usize) -> u64 {
    0x5eed_0000_0000 | (thread as u64) << 16 | step as u64
}

/// Runs one thread's program on the real allocator.
fn run(
    stacks: &Stacks,
    thread: usize,
    prog: &Program,
    mut p: Option<gostack::P>,
) -> (Vec<Outcome>, Option<gostack::P>) {
    let mut held: Vec<(Stack, u64)> = Vec::new();
    let mut out = Vec::new();
    for (i, step) in prog.steps.iter().enumerate() {
        match *step {
            Step::Alloc => {
                let r = stacks.stackalloc(p.as_mut(), false, N);
                if let Ok(stk) = r {
                    // The first word of a free stack is its free-list
                    // link; the mark goes in the second.
                    assert!(stacks.store_word(stk.lo + 8, mark(thread, i)));
                    held.push((stk, mark(thread, i)));
                }
                out.push(Outcome::Alloc(r));
            }
            Step::Free(k) => {
                let (stk, m) = held[k];
                assert_eq!(
                    stacks.load_word(stk.lo + 8),
                    Some(m),
                    "thread {thread}: stack {:#x} was handed out twice",
                    stk.lo - stacks.base()
                );
                out.push(Outcome::Free(stacks.stackfree(p.as_mut(), false, stk)));
            }
        }
    }
    (out, p)
}

/// Applies the threads' operations to the spec in the order the allocator
/// linearized them, checking each result against the impl's.
fn replay(
    progs: &[Program],
    outcomes: &[Vec<Outcome>],
    log: &[(Option<u32>, u64)],
    impl_base: u64,
) -> State {
    let mut spec = State::new(config()).unwrap();
    for _ in 0..2 {
        spec.create_p().unwrap();
    }
    let spec_base = spec.config.arena_base;
    let off = |s: Stack, b: u64| Stack {
        lo: s.lo - b,
        hi: s.hi - b,
    };
    let mut next = vec![0usize; progs.len()];
    let mut held: Vec<Vec<Stack>> = vec![Vec::new(); progs.len()];
    let mut apply = |spec: &mut State, t: usize, next: &mut Vec<usize>| {
        let i = next[t];
        next[t] += 1;
        let ctx = match progs[t].p {
            Some(p) => Ctx::on(p),
            None => Ctx::no_p(),
        };
        match (progs[t].steps[i], &outcomes[t][i]) {
            (Step::Alloc, Outcome::Alloc(got)) => {
                let want = spec.stackalloc(ctx, N);
                assert_eq!(
                    want.clone().map(|s| off(s, spec_base)),
                    got.clone().map(|s| off(s, impl_base)),
                    "thread {t} step {i}: alloc differs from the spec"
                );
                if let Ok(s) = want {
                    held[t].push(s);
                }
            }
            (Step::Free(k), Outcome::Free(got)) => {
                let want = spec.stackfree(ctx, held[t][k]);
                assert_eq!(
                    &want, got,
                    "thread {t} step {i}: free differs from the spec"
                );
            }
            (s, o) => panic!("thread {t} step {i}: {s:?} has outcome {o:?}"),
        }
    };
    for &(p, serial) in log {
        let t = progs
            .iter()
            .position(|pr| pr.p == p)
            .expect("log entry of an unknown thread");
        // The logged operation: the serial-th on its P (from 1), or the
        // no-P thread's next one (each of its operations takes the lock).
        let target = match p {
            Some(_) => serial as usize - 1,
            None => next[t],
        };
        assert!(target >= next[t], "log out of program order: {log:?}");
        while next[t] <= target {
            apply(&mut spec, t, &mut next);
        }
    }
    for t in 0..progs.len() {
        while next[t] < progs[t].steps.len() {
            apply(&mut spec, t, &mut next);
        }
    }
    spec
}

fn model() {
    let progs = Arc::new(programs());
    let stacks = Arc::new(Stacks::new(&config()).unwrap());
    let ps: Vec<gostack::P> = (0..2).map(|_| stacks.new_p()).collect();
    let mut ps = ps.into_iter();
    let mut handles = Vec::new();
    for t in 0..progs.len() {
        let p = if progs[t].p.is_some() {
            ps.next()
        } else {
            None
        };
        let (stacks, progs) = (stacks.clone(), progs.clone());
        handles.push(loom::thread::spawn(move || run(&stacks, t, &progs[t], p)));
    }
    let mut outcomes = Vec::new();
    let mut ps = Vec::new();
    for h in handles {
        let (o, p) = h.join().unwrap();
        outcomes.push(o);
        ps.extend(p);
    }
    ps.sort_by_key(|p| p.id());
    let log = stacks.linearization();
    let spec = replay(&progs, &outcomes, &log, stacks.base());
    let pr: Vec<&gostack::P> = ps.iter().collect();
    let snap = stacks.snapshot(&pr);
    assert_eq!(snap, spec.snapshot(), "final state differs; log {log:?}");
    check_invariants(&spec).unwrap();
    // None lost: every slot of every stack span is free in a span, cached,
    // or in use.
    let slots: u64 = snap
        .spans
        .iter()
        .map(|s| s.npages * 8192 / s.elemsize)
        .sum();
    let cached: usize = snap
        .caches
        .iter()
        .flat_map(|c| &c.lists)
        .map(Vec::len)
        .sum();
    let free: usize = snap.spans.iter().map(|s| s.free_list.len()).sum();
    assert_eq!(slots, (cached + free + snap.in_use.len()) as u64);
}

#[test]
fn caches_against_the_pool() {
    common::explore("loom_pool", model);
}
