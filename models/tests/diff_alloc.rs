//! Differential test of the allocator: the spec (`gostack_spec::State`) and
//! the implementation (`gostack::Runtime`, real memory) are driven by the
//! same random operations (the generator of spec/tests/stackalloc_props.rs:
//! several Ps, no-P and preemptoff calls, GC phases and markers, heap
//! fragmentation, bad sizes and bad frees). After every step the results
//! (stacks and addresses as offsets from each arena's base, and the exact
//! `Throw`) and the whole snapshots must be equal (`==`), and the spec's
//! invariants must hold. On divergence the test prints the step, the op and
//! the first snapshot field that differs.
//!
//! Two drivers: proptest (default 256 sequences of up to 300 steps over six
//! profiles; `PROPTEST_CASES` raises it) and a seeded long run (per profile,
//! 10,000 steps over a small arena, so the heap fills, grows to its limit
//! and runs out; `GOSTACK_DIFF_STEPS` changes the count).

use gostack::Runtime;
use gostack_spec::{check_invariants, Config, Ctx, GcPhase, Misuse, Profile, Stack, State, Throw};
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
    /// Any P id, usually one that does not exist.
    Id(u32),
}

#[derive(Clone, Debug)]
enum Op {
    Alloc(Who, u64),
    Free(Who, usize),
    /// A free of bounds derived from a live stack: shifted, resized, a
    /// stack already freed, or an arbitrary offset.
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
    /// Marker, P or heap operations on arbitrary ids and addresses.
    MarkId(u32),
    DestroyId(u32),
    FlushId(u32),
    HeapFreeAt(u64),
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        4 => (0usize..8).prop_map(Who::P),
        2 => Just(Who::NoP),
        1 => (0usize..8).prop_map(Who::Preemptoff),
        1 => (0u32..12).prop_map(Who::Id),
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
        1 => (0u32..64).prop_map(Op::MarkId),
        1 => (0u32..12).prop_map(Op::DestroyId),
        1 => (0u32..12).prop_map(Op::FlushId),
        1 => (0u64..(16 << 20)).prop_map(Op::HeapFreeAt),
    ]
}

/// What the test holds, as offsets from the arena base (so one record
/// serves both sides).
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
        Who::P(i) => Ctx::on(pick(&h.ps, *i).unwrap_or(*i as u32 + 100)),
        Who::NoP => Ctx::no_p(),
        Who::Preemptoff(i) => Ctx {
            p: Some(pick(&h.ps, *i).unwrap_or(0)),
            preemptoff: true,
        },
        Who::Id(p) => Ctx::on(*p),
    }
}

/// An outcome with addresses as offsets.
#[derive(Debug, PartialEq)]
enum Out {
    Unit,
    Stack(Stack),
    Addr(u64),
    Id(u32),
}

/// A throw with its addresses made offsets from `base`.
fn norm(t: Throw, base: u64) -> Throw {
    let o = |a: u64| a.wrapping_sub(base);
    match t {
        Throw::Misuse(Misuse::NotAStack { lo, hi }) => Throw::Misuse(Misuse::NotAStack {
            lo: o(lo),
            hi: o(hi),
        }),
        Throw::Misuse(Misuse::NotAHeapSpan(a)) => Throw::Misuse(Misuse::NotAHeapSpan(o(a))),
        Throw::Misuse(Misuse::MarkedReusedSpan(a)) => Throw::Misuse(Misuse::MarkedReusedSpan(o(a))),
        t => t,
    }
}

/// Either side, as the driver sees it.
trait Sys {
    fn base(&self) -> u64;
    fn stackalloc(&mut self, c: Ctx, n: u64) -> Result<Stack, Throw>;
    fn stackfree(&mut self, c: Ctx, s: Stack) -> Result<(), Throw>;
    fn create_p(&mut self) -> u32;
    fn destroy_p(&mut self, p: u32) -> Result<(), Throw>;
    fn flush_cache(&mut self, p: u32) -> Result<(), Throw>;
    fn heap_alloc(&mut self, n: u64) -> Result<u64, Throw>;
    fn heap_free(&mut self, b: u64) -> Result<(), Throw>;
    fn gc_start(&mut self) -> Result<(), Throw>;
    fn gc_mark_termination(&mut self) -> Result<(), Throw>;
    fn gc_off(&mut self) -> Result<(), Throw>;
    fn free_stack_spans(&mut self) -> Result<(), Throw>;
    fn gc_end(&mut self) -> Result<(), Throw>;
    fn gc_mark_read(&mut self, a: u64) -> Result<u32, Throw>;
    fn gc_mark(&mut self, id: u32) -> Result<(), Throw>;
}

macro_rules! forward {
    ($t:ty) => {
        impl Sys for $t {
            fn base(&self) -> u64 {
                Self::base_addr(self)
            }
            fn stackalloc(&mut self, c: Ctx, n: u64) -> Result<Stack, Throw> {
                <$t>::stackalloc(self, c, n)
            }
            fn stackfree(&mut self, c: Ctx, s: Stack) -> Result<(), Throw> {
                <$t>::stackfree(self, c, s)
            }
            fn create_p(&mut self) -> u32 {
                <$t>::create_p(self)
            }
            fn destroy_p(&mut self, p: u32) -> Result<(), Throw> {
                <$t>::destroy_p(self, p)
            }
            fn flush_cache(&mut self, p: u32) -> Result<(), Throw> {
                <$t>::flush_cache(self, p)
            }
            fn heap_alloc(&mut self, n: u64) -> Result<u64, Throw> {
                <$t>::heap_alloc(self, n)
            }
            fn heap_free(&mut self, b: u64) -> Result<(), Throw> {
                <$t>::heap_free(self, b)
            }
            fn gc_start(&mut self) -> Result<(), Throw> {
                <$t>::gc_start(self)
            }
            fn gc_mark_termination(&mut self) -> Result<(), Throw> {
                <$t>::gc_mark_termination(self)
            }
            fn gc_off(&mut self) -> Result<(), Throw> {
                <$t>::gc_off(self)
            }
            fn free_stack_spans(&mut self) -> Result<(), Throw> {
                <$t>::free_stack_spans(self)
            }
            fn gc_end(&mut self) -> Result<(), Throw> {
                <$t>::gc_end(self)
            }
            fn gc_mark_read(&mut self, a: u64) -> Result<u32, Throw> {
                <$t>::gc_mark_read(self, a)
            }
            fn gc_mark(&mut self, id: u32) -> Result<(), Throw> {
                <$t>::gc_mark(self, id)
            }
        }
    };
}

trait BaseAddr {
    fn base_addr(&self) -> u64;
}
impl BaseAddr for State {
    fn base_addr(&self) -> u64 {
        self.heap.base
    }
}
impl BaseAddr for Runtime {
    fn base_addr(&self) -> u64 {
        self.base()
    }
}
forward!(State);
forward!(Runtime);

/// Applies `op` to one side; `h` is read, never written (the caller updates
/// it from the spec's outcome).
fn apply(s: &mut dyn Sys, h: &Held, op: &Op) -> Result<Out, Throw> {
    let b = s.base();
    let abs = |st: Stack| Stack {
        lo: st.lo.wrapping_add(b),
        hi: st.hi.wrapping_add(b),
    };
    let rel = |st: Stack| Stack {
        lo: st.lo.wrapping_sub(b),
        hi: st.hi.wrapping_sub(b),
    };
    let r = match op {
        Op::Alloc(w, n) => s.stackalloc(ctx(h, w), *n).map(|st| Out::Stack(rel(st))),
        Op::Free(w, i) => match pick(&h.stacks, *i) {
            Some(st) => s.stackfree(ctx(h, w), abs(st)).map(|_| Out::Unit),
            None => Ok(Out::Unit),
        },
        Op::BadFree(w, i, k) => {
            let bad = match (k % 4, pick(&h.stacks, *i), pick(&h.freed, *i)) {
                (0, Some(st), _) => Stack {
                    lo: st.lo + 8,
                    hi: st.hi + 8,
                },
                (1, Some(st), _) => Stack {
                    lo: st.lo,
                    hi: st.lo + 2 * (st.hi - st.lo),
                },
                (3, _, _) => {
                    let lo = (*i as u64 % (20 << 20)) & !0x7ff;
                    Stack {
                        lo,
                        hi: lo + (2048 << (*k as u64 % 6)),
                    }
                }
                (_, _, Some(st)) if !h.stacks.contains(&st) => st,
                _ => return Ok(Out::Unit),
            };
            s.stackfree(ctx(h, w), abs(bad)).map(|_| Out::Unit)
        }
        Op::CreateP => Ok(Out::Id(s.create_p())),
        Op::DestroyP(i) => match pick(&h.ps, *i) {
            Some(p) => s.destroy_p(p).map(|_| Out::Unit),
            None => Ok(Out::Unit),
        },
        Op::FlushCache(i) => match pick(&h.ps, *i) {
            Some(p) => s.flush_cache(p).map(|_| Out::Unit),
            None => Ok(Out::Unit),
        },
        Op::HeapAlloc(n) => s.heap_alloc(*n).map(|a| Out::Addr(a - b)),
        Op::HeapFree(i) => match pick(&h.heap, *i) {
            Some(a) => s.heap_free(a + b).map(|_| Out::Unit),
            None => Ok(Out::Unit),
        },
        Op::GcStart => s.gc_start().map(|_| Out::Unit),
        Op::GcMarkTermination => s.gc_mark_termination().map(|_| Out::Unit),
        Op::GcOff => s.gc_off().map(|_| Out::Unit),
        Op::FreeStackSpans => s.free_stack_spans().map(|_| Out::Unit),
        Op::GcEnd => s.gc_end().map(|_| Out::Unit),
        Op::MarkRead(i, off) => match pick(&h.stacks, *i) {
            Some(st) => s
                .gc_mark_read(st.lo + b + off % (st.hi - st.lo))
                .map(Out::Id),
            None => Ok(Out::Unit),
        },
        Op::Mark(i) => match pick(&h.markers, *i) {
            Some(m) => s.gc_mark(m).map(|_| Out::Unit),
            None => Ok(Out::Unit),
        },
        Op::MarkId(m) => s.gc_mark(*m).map(|_| Out::Unit),
        Op::DestroyId(p) => s.destroy_p(*p).map(|_| Out::Unit),
        Op::FlushId(p) => s.flush_cache(*p).map(|_| Out::Unit),
        Op::HeapFreeAt(off) => s
            .heap_free((off & !0xfff).wrapping_add(b))
            .map(|_| Out::Unit),
    };
    r.map_err(|t| norm(t, b))
}

/// Records the outcome of `op` (the same on both sides) in `h`.
fn record(h: &mut Held, op: &Op, out: &Result<Out, Throw>) {
    let Ok(out) = out else { return };
    match (op, out) {
        (Op::Alloc(..), Out::Stack(st)) => h.stacks.push(*st),
        (Op::Free(_, i), _) => {
            if let Some(st) = pick(&h.stacks, *i) {
                h.stacks.retain(|x| *x != st);
                h.freed.push(st);
            }
        }
        (Op::CreateP, Out::Id(p)) => h.ps.push(*p),
        (Op::DestroyP(i), _) => {
            if let Some(p) = pick(&h.ps, *i) {
                h.ps.retain(|&x| x != p);
            }
        }
        (Op::HeapAlloc(_), Out::Addr(a)) => h.heap.push(*a),
        (Op::HeapFree(i), _) => {
            if let Some(a) = pick(&h.heap, *i) {
                h.heap.retain(|&x| x != a);
            }
        }
        (Op::GcMarkTermination | Op::GcEnd, _) => h.markers.clear(),
        (Op::MarkRead(..), Out::Id(m)) => h.markers.push(*m),
        (Op::Mark(i), _) => {
            if let Some(m) = pick(&h.markers, *i) {
                h.markers.retain(|&x| x != m);
            }
        }
        (Op::MarkId(m), _) => h.markers.retain(|x| x != m),
        (Op::DestroyId(p), _) => h.ps.retain(|x| x != p),
        (Op::HeapFreeAt(off), _) => {
            let a = off & !0xfff;
            h.heap.retain(|&x| x != a);
        }
        _ => {}
    }
}

/// The first field in which two snapshots differ, with both values.
fn first_difference(a: &gostack_spec::Snapshot, b: &gostack_spec::Snapshot) -> String {
    macro_rules! field {
        ($f:ident) => {
            if a.$f != b.$f {
                return format!(
                    "{}:\n  spec: {:?}\n  impl: {:?}",
                    stringify!($f),
                    a.$f,
                    b.$f
                );
            }
        };
    }
    field!(gcphase);
    field!(spans_pending_free);
    field!(free_runs);
    if a.spans != b.spans {
        for (x, y) in a.spans.iter().zip(&b.spans) {
            if x != y {
                return format!("spans: first differing span\n  spec: {x:?}\n  impl: {y:?}");
            }
        }
        return format!(
            "spans: {} in the spec, {} in the impl",
            a.spans.len(),
            b.spans.len()
        );
    }
    field!(stackpool);
    field!(stack_large);
    field!(caches);
    field!(in_use);
    field!(stats);
    field!(goroutines);
    "none".into()
}

fn new_pair(port: &str, release: &str, arena: u64) -> (State, Runtime) {
    let (os, arch) = port.split_once('/').unwrap();
    let mut config = Config::new(Profile::parse(os, arch, false, release).unwrap());
    config.arena_bytes = arena;
    (
        State::new(config.clone()).unwrap(),
        Runtime::new(config).unwrap(),
    )
}

/// One step on both sides: equal results, equal snapshots, invariants.
fn step(
    s: &mut State,
    r: &mut Runtime,
    h: &mut Held,
    i: usize,
    op: &Op,
    label: &str,
) -> Result<Option<String>, String> {
    let before = s.snapshot();
    let a = apply(s, h, op);
    let b = apply(r, h, op);
    if a != b {
        return Err(format!(
            "{label} step {i} {op:?}: results differ\n  spec: {a:?}\n  impl: {b:?}"
        ));
    }
    let (sa, sb) = (s.snapshot(), r.snapshot());
    if sa != sb {
        return Err(format!(
            "{label} step {i} {op:?} ({a:?}): snapshots differ in {}",
            first_difference(&sa, &sb)
        ));
    }
    if a.is_err() && sb != before {
        return Err(format!(
            "{label} step {i} {op:?}: failed but changed the state"
        ));
    }
    if let Err(v) = check_invariants(s) {
        return Err(format!("{label} step {i} {op:?}: spec invariant: {v}"));
    }
    record(h, op, &a);
    Ok(a.err().map(|t| match t {
        Throw::Go(g) => format!("{g:?}"),
        Throw::Misuse(m) => format!("{m:?}")
            .split([' ', '(', '{'])
            .next()
            .unwrap_or("")
            .to_string(),
        Throw::Invalid(_) => "Invalid".into(),
    }))
}

/// Frees everything with the GC off on both sides, comparing as it goes;
/// every stack page must be back.
fn drain(s: &mut State, r: &mut Runtime, h: &mut Held, label: &str) -> Result<(), String> {
    let mut ops = Vec::new();
    match s.gcphase {
        GcPhase::Mark | GcPhase::MarkTermination => ops.push(Op::GcEnd),
        GcPhase::Off if s.spans_pending_free => ops.push(Op::FreeStackSpans),
        GcPhase::Off => {}
    }
    for (i, op) in ops.iter().enumerate() {
        step(s, r, h, i, op, label)?;
    }
    // Stacks freed by a bad free that hit a live stack fail here alike on
    // both sides; drop them from the record either way.
    while let Some(&st) = h.stacks.first() {
        step(s, r, h, 0, &Op::Free(Who::NoP, 0), label)?;
        h.stacks.retain(|x| *x != st);
    }
    while !h.ps.is_empty() {
        step(s, r, h, 0, &Op::DestroyP(0), label)?;
    }
    while !h.heap.is_empty() {
        step(s, r, h, 0, &Op::HeapFree(0), label)?;
    }
    let snap = r.snapshot();
    if snap.stats.stack_inuse != 0 || !snap.spans.is_empty() {
        return Err(format!(
            "{label}: stack pages left after draining: {snap:?}"
        ));
    }
    Ok(())
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
    fn impl_equals_spec(pi in 0..PROFILES.len(), ops in prop::collection::vec(op(), 1..300)) {
        let (port, release) = PROFILES[pi];
        let (mut s, mut r) = new_pair(port, release, 16 << 20);
        let mut h = Held::default();
        let label = format!("{port} go{release}");
        step(&mut s, &mut r, &mut h, 0, &Op::CreateP, &label).map_err(TestCaseError::fail)?;
        for (i, op) in ops.iter().enumerate() {
            step(&mut s, &mut r, &mut h, i + 1, op, &label).map_err(TestCaseError::fail)?;
        }
        drain(&mut s, &mut r, &mut h, &label).map_err(TestCaseError::fail)?;
    }
}

/// A small deterministic generator (xorshift) for the long runs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn who(&mut self) -> Who {
        match self.below(7) {
            0..=3 => Who::P(self.below(8) as usize),
            4 | 5 => Who::NoP,
            6 if self.below(8) == 0 => Who::Id(self.below(12) as u32),
            _ => Who::Preemptoff(self.below(8) as usize),
        }
    }

    fn size(&mut self) -> u64 {
        match self.below(17) {
            0..=11 => 1 << (11 + self.below(5)),
            12..=15 => 1 << (16 + self.below(5)),
            _ => [0, 1024, 3 * 1024, 1 << 33, 24 << 20][self.below(5) as usize],
        }
    }

    /// An op, weighted as the proptest strategy, with more allocation than
    /// freeing in `filling` phases so that the arena runs out.
    fn op(&mut self, filling: bool) -> Op {
        let i = self.next() as usize;
        match self.below(88) {
            0..=29 => Op::Alloc(self.who(), self.size()),
            30..=54 if filling && self.below(2) == 0 => Op::Alloc(self.who(), self.size()),
            30..=54 => Op::Free(self.who(), i),
            55..=57 => Op::BadFree(self.who(), i, self.next() as u8),
            58..=60 => Op::CreateP,
            61 => Op::DestroyP(i),
            62 => Op::FlushCache(i),
            63..=66 => Op::HeapAlloc(1 + self.below(47)),
            67..=69 => Op::HeapFree(i),
            70 | 71 => Op::GcStart,
            72 | 73 => Op::GcMarkTermination,
            74 | 75 => Op::GcOff,
            76 | 77 => Op::FreeStackSpans,
            78 => Op::GcEnd,
            79..=81 => Op::MarkRead(i, self.next()),
            82 => Op::MarkId(self.below(64) as u32),
            83 => Op::DestroyId(self.below(12) as u32),
            84 => Op::FlushId(self.below(12) as u32),
            85 => Op::HeapFreeAt(self.below(12 << 20)),
            _ => Op::Mark(i),
        }
    }
}

#[test]
fn long_runs_equal_spec() {
    let steps: usize = std::env::var("GOSTACK_DIFF_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    for (pi, &(port, release)) in PROFILES.iter().enumerate() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ ((pi as u64 + 1) * 0x9e37_79b9));
        let (mut s, mut r) = new_pair(port, release, 12 << 20);
        let mut h = Held::default();
        let label = format!("{port} go{release} (seeded)");
        step(&mut s, &mut r, &mut h, 0, &Op::CreateP, &label).unwrap_or_else(|e| panic!("{e}"));
        let mut outcomes: std::collections::BTreeMap<String, u64> = Default::default();
        for i in 1..=steps {
            // Alternate filling and emptying phases of 1,000 steps.
            let op = rng.op((i / 1000) % 2 == 0);
            let name = format!("{op:?}");
            let name = name.split('(').next().unwrap_or("").to_string();
            let key = match step(&mut s, &mut r, &mut h, i, &op, &label) {
                Ok(None) => format!("{name} ok"),
                Ok(Some(t)) => format!("{name} {t}"),
                Err(e) => panic!("{e}"),
            };
            *outcomes.entry(key).or_default() += 1;
        }
        eprintln!("{label}: {outcomes:?}");
        drain(&mut s, &mut r, &mut h, &label).unwrap_or_else(|e| panic!("{e}"));
    }
}
