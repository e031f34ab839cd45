//! Checking any stack allocator against the spec's.
//!
//! The goroutine-level harness ([`crate::harness`]) needs Go's whole
//! runtime behind it. This module is the layer under it: an
//! allocator-level trait, [`StackAllocator`] (stackalloc, stackfree, Ps,
//! the GC's phases and `freeStackSpans`; no goroutines, channels or Go
//! memory layout), public proptest strategies for its operations
//! ([`alloc_ops`]), and an entry point, [`check_allocator`], that runs
//! random operation sequences on a candidate and on the spec in step and
//! shrinks any failure to a short sequence with proptest's own shrinking
//! (finished by single-op deletions).
//!
//! What "equal" means is a choice ([`Equality`]):
//! - [`Equality::GoExact`]: the candidate claims to be Go's allocator; its
//!   results and its [`StackAllocator::go_snapshot`] must equal the spec's
//!   after every operation (pools, caches, spans, free lists in order).
//!   `gostack::Runtime` passes this.
//! - [`Equality::Behavioural`]: the candidate is some other design (a buddy
//!   or segregated-list allocator, say) and must behave as a stack
//!   allocator: every operation succeeds or fails as the spec's does (a
//!   refusal of the same kind: Go throw, misuse or invalid input; for the
//!   size checks, Go's exact throw; for a bad free, any refusal, since
//!   which one Go gives depends on its span layout); a stack has the size
//!   the spec gives;
//!   no two live stacks overlap; what it reports holding
//!   ([`StackAllocator::stack_inuse`]) always covers the live stacks; and
//!   nothing is lost: once everything is freed and a GC cycle has run, the
//!   largest set of stacks the case ever held can be allocated again
//!   without the allocator holding more memory than it did at that peak
//!   plus the bytes it held before the case's cleanup.
//!
//! The operations are generated valid enough to mean something: the GC's
//! phases come in Go's order (a cycle is started, then stopped, which is
//! mark termination, the phase turned off and every P's cache flushed,
//! then `freeStackSpans`), Ps are made and destroyed only with the GC off,
//! and the arena is large enough for every case, so out of memory is never
//! the point. Hostile input is there too: sizes that are not powers of
//! two or are too small, and frees of stacks that are not live. A Go
//! throw is fatal (as in Go): once the results agree on one, the case
//! ends there, its remaining operations and the final cleanup unchecked
//! (the candidate need not die, but nothing after a throw is compared).
//!
//! ```
//! use gostack_models::alloc::{check_allocator, Equality};
//! use gostack_spec::{Config, Profile, State};
//!
//! let mut config = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
//! config.arena_bytes = 64 << 20;
//! // The spec against itself, Go-exact: of course it passes.
//! let make = |c: &Config| State::new(c.clone()).unwrap();
//! check_allocator(&config, make, Equality::GoExact, 16, 40).unwrap();
//! ```

use gostack_spec::{Config, Ctx, GcPhase, GoThrow, Snapshot, Stack, State, Throw};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestError, TestRunner};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A stack allocator with Go's interface (runtime/stack.go and the parts
/// of the GC and scheduler it meets). Ps are named by the ids
/// [`StackAllocator::create_p`] returns; `Ctx` says which P (if any) a call
/// runs on and whether `m.preemptoff` is set.
pub trait StackAllocator {
    /// `stackalloc(n)`.
    fn stackalloc(&mut self, ctx: Ctx, n: u64) -> Result<Stack, Throw>;
    /// `stackfree(stk)`.
    fn stackfree(&mut self, ctx: Ctx, stk: Stack) -> Result<(), Throw>;
    /// A new P (`procresize` growing).
    fn create_p(&mut self) -> Result<u32, Throw>;
    /// P `p` goes away (`procresize` shrinking: `p.destroy`).
    fn destroy_p(&mut self, p: u32) -> Result<(), Throw>;
    /// P `p`'s sweep flush after a cycle (`mcache.prepareForSweep`).
    fn flush_cache(&mut self, p: u32) -> Result<(), Throw>;
    /// A GC cycle starts (`gcStart`: the phase becomes `_GCmark`).
    fn gc_start(&mut self) -> Result<(), Throw>;
    /// Mark termination (`_GCmarktermination`).
    fn gc_mark_termination(&mut self) -> Result<(), Throw>;
    /// The phase is turned off (`_GCoff`).
    fn gc_off(&mut self) -> Result<(), Throw>;
    /// `freeStackSpans`, after the cycle.
    fn free_stack_spans(&mut self) -> Result<(), Throw>;
    /// Bytes the allocator holds for stacks, whether handed out, cached or
    /// free in its own lists (Go's StackInuse is one such measure).
    fn stack_inuse(&self) -> u64;
    /// The spec's view of the allocator, for [`Equality::GoExact`]; `None`
    /// for a design of another shape.
    fn go_snapshot(&self) -> Option<Snapshot> {
        None
    }
}

impl StackAllocator for State {
    fn stackalloc(&mut self, ctx: Ctx, n: u64) -> Result<Stack, Throw> {
        State::stackalloc(self, ctx, n)
    }
    fn stackfree(&mut self, ctx: Ctx, stk: Stack) -> Result<(), Throw> {
        State::stackfree(self, ctx, stk)
    }
    fn create_p(&mut self) -> Result<u32, Throw> {
        State::create_p(self)
    }
    fn destroy_p(&mut self, p: u32) -> Result<(), Throw> {
        State::destroy_p(self, p)
    }
    fn flush_cache(&mut self, p: u32) -> Result<(), Throw> {
        State::flush_cache(self, p)
    }
    fn gc_start(&mut self) -> Result<(), Throw> {
        State::gc_start(self)
    }
    fn gc_mark_termination(&mut self) -> Result<(), Throw> {
        State::gc_mark_termination(self)
    }
    fn gc_off(&mut self) -> Result<(), Throw> {
        State::gc_off(self)
    }
    fn free_stack_spans(&mut self) -> Result<(), Throw> {
        State::free_stack_spans(self)
    }
    fn stack_inuse(&self) -> u64 {
        self.stats().stack_inuse
    }
    fn go_snapshot(&self) -> Option<Snapshot> {
        Some(State::snapshot(self))
    }
}

impl StackAllocator for gostack::Runtime {
    fn stackalloc(&mut self, ctx: Ctx, n: u64) -> Result<Stack, Throw> {
        gostack::Runtime::stackalloc(self, ctx, n)
    }
    fn stackfree(&mut self, ctx: Ctx, stk: Stack) -> Result<(), Throw> {
        gostack::Runtime::stackfree(self, ctx, stk)
    }
    fn create_p(&mut self) -> Result<u32, Throw> {
        gostack::Runtime::create_p(self)
    }
    fn destroy_p(&mut self, p: u32) -> Result<(), Throw> {
        gostack::Runtime::destroy_p(self, p)
    }
    fn flush_cache(&mut self, p: u32) -> Result<(), Throw> {
        gostack::Runtime::flush_cache(self, p)
    }
    fn gc_start(&mut self) -> Result<(), Throw> {
        gostack::Runtime::gc_start(self)
    }
    fn gc_mark_termination(&mut self) -> Result<(), Throw> {
        gostack::Runtime::gc_mark_termination(self)
    }
    fn gc_off(&mut self) -> Result<(), Throw> {
        gostack::Runtime::gc_off(self)
    }
    fn free_stack_spans(&mut self) -> Result<(), Throw> {
        gostack::Runtime::free_stack_spans(self)
    }
    fn stack_inuse(&self) -> u64 {
        self.stats().stack_inuse
    }
    fn go_snapshot(&self) -> Option<Snapshot> {
        Some(gostack::Runtime::snapshot(self))
    }
}

/// What "equal" means for [`check_allocator`] (see the module docs).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Equality {
    /// Results and snapshots equal to the spec's after every operation.
    GoExact,
    /// The behaviour of a stack allocator, whatever its design.
    Behavioural,
}

/// One operation of an allocator-level case. Ps and stacks are named by
/// index into the live ones (taken modulo their number; nothing to act on
/// makes the operation a no-op).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AllocOp {
    /// `stackalloc` of `fixedStack << order` bytes, on P `p` (0: no P).
    Alloc {
        /// 0 for no P, else 1 + an index into the live Ps.
        p: u8,
        /// With `m.preemptoff` set.
        preemptoff: bool,
        /// log2 of the size over fixedStack (0..=5 reach the large path).
        order: u8,
    },
    /// `stackalloc` of a size that is not one Go asks for (`n` bytes).
    AllocRaw {
        /// The size.
        n: u64,
    },
    /// `stackfree` of live stack `i`, on P `p` (0: no P).
    Free {
        /// 0 for no P, else 1 + an index into the live Ps.
        p: u8,
        /// With `m.preemptoff` set.
        preemptoff: bool,
        /// An index into the live stacks.
        i: u16,
    },
    /// `stackfree` of a stack freed before (a double free), or of a live
    /// stack's lower half (not a stack).
    BadFree {
        /// An index into the freed (or live) stacks, newest first (so
        /// that a case shrinks towards the stack freed last).
        i: u16,
        /// Free the lower half of a live stack instead.
        half: bool,
    },
    /// A new P (only with the GC off).
    CreateP,
    /// P `i` goes away (only with the GC off).
    DestroyP(u8),
    /// A GC cycle starts (only when none runs).
    GcStart,
    /// The running cycle stops: mark termination, phase off, every P's
    /// cache flushed.
    GcStop,
    /// `freeStackSpans` after a stopped cycle.
    FreeStackSpans,
}

/// A strategy for one [`AllocOp`], weighted towards allocations and frees.
pub fn alloc_op() -> impl Strategy<Value = AllocOp> {
    prop_oneof![
        30 => (any::<u8>(), prop::bool::weighted(0.1), prop_oneof![8 => 0..3u8, 2 => 3..6u8])
            .prop_map(|(p, preemptoff, order)| AllocOp::Alloc { p: p % 4, preemptoff, order }),
        2 => prop_oneof![Just(0u64), 1..4096u64, Just(1024), Just(3 << 10), Just(1 << 33)]
            .prop_map(|n| AllocOp::AllocRaw { n }),
        25 => (any::<u8>(), prop::bool::weighted(0.1), any::<u16>())
            .prop_map(|(p, preemptoff, i)| AllocOp::Free { p: p % 4, preemptoff, i }),
        2 => (any::<u16>(), any::<bool>()).prop_map(|(i, half)| AllocOp::BadFree { i, half }),
        2 => Just(AllocOp::CreateP),
        1 => any::<u8>().prop_map(AllocOp::DestroyP),
        3 => Just(AllocOp::GcStart),
        3 => Just(AllocOp::GcStop),
        3 => Just(AllocOp::FreeStackSpans),
    ]
}

/// A strategy for a case of 1 to `max` operations.
pub fn alloc_ops(max: usize) -> impl Strategy<Value = Vec<AllocOp>> {
    prop::collection::vec(alloc_op(), 1..max.max(2))
}

/// A failed check: the shrunk case and what went wrong in it.
#[derive(Clone, Debug)]
pub struct AllocFailure {
    /// The shortest failing case proptest found.
    pub ops: Vec<AllocOp>,
    /// What differed, at which step.
    pub message: String,
}

impl fmt::Display for AllocFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.message)?;
        write!(
            f,
            "minimal case ({} ops): {}",
            self.ops.len(),
            serde_json::to_string(&self.ops).unwrap_or_default()
        )
    }
}

impl std::error::Error for AllocFailure {}

/// Runs `cases` random cases of up to `max_ops` operations on a candidate
/// made by `make` and on the spec, both from `config`, with the chosen
/// [`Equality`]; a failure comes back shrunk. The seed is fixed, so a run
/// is reproducible; [`run_alloc_case`] replays one case.
pub fn check_allocator<A: StackAllocator>(
    config: &Config,
    make: impl Fn(&Config) -> A,
    mode: Equality,
    cases: u32,
    max_ops: usize,
) -> Result<(), AllocFailure> {
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig {
            cases,
            failure_persistence: None,
            // Proptest's default (512) can stop a 200-op case half-way
            // through its shrinking; a case runs in microseconds.
            max_shrink_iters: 20_000,
            ..RunnerConfig::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let result = runner.run(&alloc_ops(max_ops), |ops| {
        run_alloc_case(config, &make, mode, &ops).map_err(TestCaseError::fail)
    });
    match result {
        Ok(()) => Ok(()),
        Err(TestError::Fail(why, mut ops)) => {
            // Proptest's vec shrinking makes one pass of deletions before it
            // shrinks the elements; finish with single-op deletions until
            // none keeps the case failing.
            let mut message = why.to_string();
            let mut i = 0;
            while i < ops.len() {
                let mut fewer = ops.clone();
                fewer.remove(i);
                match run_alloc_case(config, &make, mode, &fewer) {
                    Err(m) => {
                        ops = fewer;
                        message = m;
                    }
                    Ok(()) => i += 1,
                }
            }
            Err(AllocFailure { message, ops })
        }
        Err(TestError::Abort(why)) => Err(AllocFailure {
            message: format!("the run was aborted: {why}"),
            ops: Vec::new(),
        }),
    }
}

/// The two sides of a case, in step.
struct Pair<A> {
    spec: State,
    cand: A,
    mode: Equality,
    /// Ps: (spec id, candidate id).
    ps: Vec<(u32, u32)>,
    /// Live stacks: (spec's, candidate's).
    live: Vec<(Stack, Stack)>,
    /// Freed stacks, for double frees.
    freed: Vec<(Stack, Stack)>,
    /// The largest set of live stack sizes so far, and the candidate's
    /// holdings then.
    peak: (Vec<u64>, u64),
    step: usize,
}

/// Runs one case (see [`check_allocator`]); `Err` says what differed and
/// at which step.
pub fn run_alloc_case<A: StackAllocator>(
    config: &Config,
    make: impl Fn(&Config) -> A,
    mode: Equality,
    ops: &[AllocOp],
) -> Result<(), String> {
    let spec =
        State::new(config.clone()).map_err(|t| format!("the spec refused the config: {t}"))?;
    let mut pair = Pair {
        spec,
        cand: make(config),
        mode,
        ps: Vec::new(),
        live: Vec::new(),
        freed: Vec::new(),
        peak: (Vec::new(), 0),
        step: 0,
    };
    // Two Ps to start with, as a program has.
    for _ in 0..2 {
        pair.apply(&AllocOp::CreateP)?;
    }
    pair.check_state()?;
    for (i, op) in ops.iter().enumerate() {
        pair.step = i;
        pair.apply(op)?;
        if pair.spec.dead.is_some() {
            // A Go throw, agreed on: fatal, the case ends here.
            return Ok(());
        }
        pair.check_state()?;
    }
    pair.step = ops.len();
    pair.cleanup_and_reuse()
}

/// The kind of a refusal, for behavioural equality.
fn kind(t: &Throw) -> &'static str {
    match t {
        Throw::Go(_) => "a Go throw",
        Throw::Misuse(_) => "a misuse refusal",
        Throw::Invalid(_) => "an invalid-input refusal",
    }
}

fn overlaps(a: Stack, b: Stack) -> bool {
    a.lo < b.hi && b.lo < a.hi
}

impl<A: StackAllocator> Pair<A> {
    fn fail<T>(&self, op: &AllocOp, what: String) -> Result<T, String> {
        Err(format!("step {} ({op:?}): {what}", self.step))
    }

    /// Results must agree: exactly in Go-exact mode; in behavioural mode,
    /// success with success, a refusal with a refusal of the same kind,
    /// and the size checks' Go throws exactly.
    ///
    /// A bad free is the exception: which refusal Go gives depends on its
    /// span layout ("freeing stack not in a stack span", "bad span state",
    /// or silent corruption that the spec refuses as misuse), so in
    /// behavioural mode any refusal of a bad free agrees.
    fn agree<T, U>(
        &self,
        op: &AllocOp,
        want: &Result<T, Throw>,
        got: &Result<U, Throw>,
    ) -> Result<(), String> {
        match (want, got) {
            (Ok(_), Ok(_)) => Ok(()),
            (Err(w), Err(g)) => {
                let exact = self.mode == Equality::GoExact
                    || matches!(
                        w,
                        Throw::Go(GoThrow::StackSizeNotPowerOf2 | GoThrow::StackNotPowerOf2)
                    );
                let any_kind =
                    self.mode == Equality::Behavioural && matches!(op, AllocOp::BadFree { .. });
                if (exact && w != g) || (!any_kind && kind(w) != kind(g)) {
                    self.fail(
                        op,
                        format!("the spec refused with `{w}`, the candidate with `{g}`"),
                    )
                } else {
                    Ok(())
                }
            }
            (Ok(_), Err(g)) => self.fail(
                op,
                format!("the spec succeeded, the candidate refused: `{g}`"),
            ),
            (Err(w), Ok(_)) => self.fail(
                op,
                format!("the spec refused (`{w}`), the candidate succeeded"),
            ),
        }
    }

    fn ctx(&self, p: u8, preemptoff: bool) -> (Ctx, Ctx) {
        if p == 0 || self.ps.is_empty() {
            let c = Ctx {
                p: None,
                preemptoff,
            };
            return (c, c);
        }
        let (s, c) = self.ps[(p as usize - 1) % self.ps.len()];
        (
            Ctx {
                p: Some(s),
                preemptoff,
            },
            Ctx {
                p: Some(c),
                preemptoff,
            },
        )
    }

    fn apply(&mut self, op: &AllocOp) -> Result<(), String> {
        // With the GC off and its cycle finished (freeStackSpans ran).
        let off = self.spec.gcphase == GcPhase::Off && !self.spec.spans_pending_free;
        match *op {
            AllocOp::Alloc {
                p,
                preemptoff,
                order,
            } => {
                let n = self.spec.consts.fixed_stack << order;
                let (cs, cc) = self.ctx(p, preemptoff);
                let want = self.spec.stackalloc(cs, n);
                let got = self.cand.stackalloc(cc, n);
                self.agree(op, &want, &got)?;
                if let (Ok(w), Ok(g)) = (want, got) {
                    if g.hi.wrapping_sub(g.lo) != w.hi - w.lo || g.hi < g.lo {
                        return self.fail(
                            op,
                            format!("asked for {n} bytes, got {:#x}..{:#x}", g.lo, g.hi),
                        );
                    }
                    if let Some(&(_, other)) = self.live.iter().find(|(_, o)| overlaps(*o, g)) {
                        return self.fail(
                            op,
                            format!(
                                "stack {:#x}..{:#x} overlaps live stack {:#x}..{:#x}",
                                g.lo, g.hi, other.lo, other.hi
                            ),
                        );
                    }
                    self.live.push((w, g));
                    let sizes: Vec<u64> = self.live.iter().map(|(w, _)| w.hi - w.lo).collect();
                    if sizes.iter().sum::<u64>() > self.peak.0.iter().sum::<u64>() {
                        self.peak = (sizes, self.cand.stack_inuse());
                    }
                }
            }
            AllocOp::AllocRaw { n } => {
                let want = self.spec.stackalloc(Ctx::no_p(), n);
                let got = self.cand.stackalloc(Ctx::no_p(), n);
                self.agree(op, &want, &got)?;
                if let (Ok(w), Ok(g)) = (want, got) {
                    self.live.push((w, g));
                }
            }
            AllocOp::Free { p, preemptoff, i } => {
                if self.live.is_empty() {
                    return Ok(());
                }
                let k = i as usize % self.live.len();
                let (w, g) = self.live[k];
                let (cs, cc) = self.ctx(p, preemptoff);
                let want = self.spec.stackfree(cs, w);
                let got = self.cand.stackfree(cc, g);
                self.agree(op, &want, &got)?;
                if want.is_ok() {
                    self.live.swap_remove(k);
                    self.freed.push((w, g));
                }
            }
            AllocOp::BadFree { i, half } => {
                let pick = if half { &self.live } else { &self.freed };
                if pick.is_empty() {
                    return Ok(());
                }
                let (mut w, mut g) = pick[pick.len() - 1 - i as usize % pick.len()];
                if half {
                    w.hi = w.lo + (w.hi - w.lo) / 2;
                    g.hi = g.lo + (g.hi - g.lo) / 2;
                } else if self
                    .live
                    .iter()
                    .any(|(lw, lg)| overlaps(*lw, w) || overlaps(*lg, g))
                {
                    // The range was handed out again (on either side):
                    // not a double free there.
                    return Ok(());
                }
                let want = self.spec.stackfree(Ctx::no_p(), w);
                let got = self.cand.stackfree(Ctx::no_p(), g);
                self.agree(op, &want, &got)?;
                if want.is_ok() {
                    return self.fail(op, "the spec accepted a bad free".into());
                }
            }
            AllocOp::CreateP if off => {
                let want = self.spec.create_p();
                let got = self.cand.create_p();
                self.agree(op, &want, &got)?;
                if let (Ok(w), Ok(g)) = (want, got) {
                    self.ps.push((w, g));
                }
            }
            AllocOp::DestroyP(i) if off && self.ps.len() > 1 => {
                let k = i as usize % self.ps.len();
                let (s, c) = self.ps[k];
                let want = self.spec.destroy_p(s);
                let got = self.cand.destroy_p(c);
                self.agree(op, &want, &got)?;
                if want.is_ok() {
                    self.ps.remove(k);
                }
            }
            AllocOp::GcStart if off => {
                let want = self.spec.gc_start();
                let got = self.cand.gc_start();
                self.agree(op, &want, &got)?;
            }
            AllocOp::GcStop if self.spec.gcphase == GcPhase::Mark => {
                let want = self.spec.gc_mark_termination();
                let got = self.cand.gc_mark_termination();
                self.agree(op, &want, &got)?;
                let want = self.spec.gc_off();
                let got = self.cand.gc_off();
                self.agree(op, &want, &got)?;
                for &(s, c) in &self.ps.clone() {
                    let want = self.spec.flush_cache(s);
                    let got = self.cand.flush_cache(c);
                    self.agree(op, &want, &got)?;
                }
            }
            AllocOp::FreeStackSpans
                if self.spec.gcphase == GcPhase::Off && self.spec.spans_pending_free =>
            {
                let want = self.spec.free_stack_spans();
                let got = self.cand.free_stack_spans();
                self.agree(op, &want, &got)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// After every step: Go-exact snapshots, or the candidate holds at
    /// least what is live.
    fn check_state(&self) -> Result<(), String> {
        let at = format!("after step {}", self.step);
        match self.mode {
            Equality::GoExact => {
                let Some(got) = self.cand.go_snapshot() else {
                    return Err("Go-exact equality needs StackAllocator::go_snapshot".into());
                };
                let want = self.spec.snapshot();
                if got != want {
                    let a = serde_json::to_value(&want).unwrap_or_default();
                    let b = serde_json::to_value(&got).unwrap_or_default();
                    let diffs = crate::harness::differences(&a, &b, 8);
                    return Err(format!("{at}: snapshots differ: {diffs:?}"));
                }
            }
            Equality::Behavioural => {
                let live: u64 = self.live.iter().map(|(_, g)| g.hi - g.lo).sum();
                let held = self.cand.stack_inuse();
                if held < live {
                    return Err(format!(
                        "{at}: the candidate says it holds {held} bytes, but {live} are live"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Frees everything, runs a GC cycle, then allocates the peak set
    /// again: it must succeed, without overlaps, and (behavioural mode)
    /// without the candidate holding more than at the peak.
    fn cleanup_and_reuse(&mut self) -> Result<(), String> {
        if self.spec.gcphase == GcPhase::Mark {
            self.apply(&AllocOp::GcStop)?;
        }
        if self.spec.spans_pending_free {
            self.apply(&AllocOp::FreeStackSpans)?;
        }
        while !self.live.is_empty() {
            self.apply(&AllocOp::Free {
                p: 1,
                preemptoff: false,
                i: 0,
            })?;
        }
        for op in [AllocOp::GcStart, AllocOp::GcStop, AllocOp::FreeStackSpans] {
            self.apply(&op)?;
        }
        self.check_state()?;
        let before = self.cand.stack_inuse();
        let (sizes, peak_held) = self.peak.clone();
        for n in sizes {
            let order = (n / self.spec.consts.fixed_stack).trailing_zeros() as u8;
            self.apply(&AllocOp::Alloc {
                p: 1,
                preemptoff: false,
                order,
            })?;
        }
        self.check_state()?;
        let held = self.cand.stack_inuse();
        if self.mode == Equality::Behavioural && held > peak_held.max(before) {
            return Err(format!(
                "after the case (all freed, a GC cycle, the largest live set allocated again): memory was lost: once everything was freed the candidate held {before} bytes; the case's largest set of stacks, which it once held in {peak_held} bytes, now needs {held}"
            ));
        }
        Ok(())
    }
}
