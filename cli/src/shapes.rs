//! The shapes of Go's runtime stack benchmarks (BenchmarkStackCopy,
//! BenchmarkStackCopyPtr, BenchmarkStackCopyWithStkobj, BenchmarkStackGrowth
//! in runtime/stack_test.go), run through the spec's API on either the spec
//! or the impl. Shared by `gostack bench` (cli/src/bench.rs) and the
//! criterion bench impl/benches/gobench.rs, which includes this file with
//! `#[path]` (a benchmark cannot depend on the cli crate).

use gostack::Runtime;
use gostack_spec::goroutine::{Func, Site, Slot, StackObject};
use gostack_spec::snapshot::WorldSnap;
use gostack_spec::{guard, Ctx, Profile, State, Throw};
use std::time::{Duration, Instant};

/// A pointer into the Go heap (outside every stack): what a frame's
/// channel variable holds.
pub(crate) const HEAP_PTR: u64 = 0xc1_0000_0000;

/// What a shape needs from a goroutine machine: the spec's
/// `gostack_spec::State` and the impl's [`gostack::Runtime`] both have these
/// methods with these signatures.
pub(crate) trait Machine {
    /// Adds a function; returns its index.
    fn add_func(&mut self, f: Func) -> Result<usize, Throw>;
    /// Creates a P.
    fn create_p(&mut self) -> Result<u32, Throw>;
    /// Starts a goroutine at `f`.
    fn spawn(&mut self, ctx: Ctx, f: usize) -> Result<u32, Throw>;
    /// Calls `callee` from call site `site` of the innermost function.
    fn call(&mut self, ctx: Ctx, g: u32, site: usize, callee: usize) -> Result<(), Throw>;
    /// Returns from the innermost function.
    fn ret(&mut self, ctx: Ctx, g: u32) -> Result<(), Throw>;
    /// Writes a word of a goroutine's used stack.
    fn poke(&mut self, g: u32, addr: u64, v: u64) -> Result<(), Throw>;
    /// The address of a slot of a frame (unwinds every frame).
    fn slot_addr(&self, g: u32, frame: usize, slot: Slot) -> Result<u64, Throw>;
    /// The goroutine-level state other than the goroutines.
    fn world(&self) -> WorldSnap;
}

macro_rules! machine_methods {
    () => {
        fn add_func(&mut self, f: Func) -> Result<usize, Throw> {
            Self::add_func(self, f)
        }
        fn create_p(&mut self) -> Result<u32, Throw> {
            Self::create_p(self)
        }
        fn spawn(&mut self, ctx: Ctx, f: usize) -> Result<u32, Throw> {
            Self::spawn(self, ctx, f)
        }
        fn call(&mut self, ctx: Ctx, g: u32, site: usize, callee: usize) -> Result<(), Throw> {
            Self::call(self, ctx, g, site, callee)
        }
        fn ret(&mut self, ctx: Ctx, g: u32) -> Result<(), Throw> {
            Self::ret(self, ctx, g)
        }
        fn poke(&mut self, g: u32, addr: u64, v: u64) -> Result<(), Throw> {
            Self::poke(self, g, addr, v)
        }
        fn slot_addr(&self, g: u32, frame: usize, slot: Slot) -> Result<u64, Throw> {
            Self::slot_addr(self, g, frame, slot)
        }
        fn world(&self) -> WorldSnap {
            Self::world(self)
        }
    };
}

impl Machine for State {
    machine_methods!();
}

impl Machine for Runtime {
    machine_methods!();
}

/// Which of Go's benchmarks a shape reproduces.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// BenchmarkStackCopy: a new goroutine runs `count(1000000)`.
    Copy,
    /// BenchmarkStackCopyPtr: a new goroutine runs `countp(&i)` with
    /// `i = 1000000`.
    CopyPtr,
    /// BenchmarkStackCopyWithStkobj: a new goroutine runs
    /// `Sum(100000, &s)`, each frame holding a stack object that points at
    /// its caller's.
    CopyWithStkobj,
    /// BenchmarkStackGrowth: a long-lived goroutine runs
    /// `stackGrowthRecursive(10)` again and again.
    Growth,
}

impl Kind {
    /// Every shape, in the order printed.
    pub(crate) const ALL: [Kind; 4] = [
        Kind::Copy,
        Kind::CopyPtr,
        Kind::CopyWithStkobj,
        Kind::Growth,
    ];

    /// Go's benchmark name.
    pub(crate) fn go_name(self) -> &'static str {
        match self {
            Kind::Copy => "BenchmarkStackCopy",
            Kind::CopyPtr => "BenchmarkStackCopyPtr",
            Kind::CopyWithStkobj => "BenchmarkStackCopyWithStkobj",
            Kind::Growth => "BenchmarkStackGrowth",
        }
    }

    /// The recursion depth Go's benchmark uses.
    pub(crate) fn go_depth(self) -> u64 {
        match self {
            Kind::Copy | Kind::CopyPtr => 1_000_000,
            Kind::CopyWithStkobj => 100_000,
            Kind::Growth => 10,
        }
    }

    /// Frame sizes (TEXT line) of the entry closure and of the recursive
    /// function.
    fn frames(self) -> (u64, u64) {
        match self {
            Kind::Copy => (32, 16),
            Kind::CopyPtr => (40, 16),
            Kind::CopyWithStkobj => (208, 200),
            Kind::Growth => (24, 1040),
        }
    }
}

pub(crate) fn bits(n: usize, set: &[usize]) -> Vec<bool> {
    (0..n).map(|i| set.contains(&i)).collect()
}

pub(crate) fn site(locals: Vec<bool>, args: Vec<bool>) -> Site {
    Site { locals, args }
}

pub(crate) fn func(
    name: &str,
    frame: u64,
    args: u64,
    sites: Vec<Site>,
    objects: Vec<StackObject>,
) -> Func {
    let mut f = Func::new(name, frame);
    f.args_size = args;
    f.sites = sites;
    f.objects = objects;
    f
}

/// Where the running goroutine's stack and innermost frame are, followed
/// from the frame sizes and the prologue check (`guard::needs_morestack`)
/// rather than asked: `slot_addr` unwinds every frame of a goroutine
/// written with `poke`, as the shapes' goroutines are, which at a depth of
/// a million would make each operation quadratic. After a call
/// that grew the stack the new place is read once with `slot_addr` (the
/// time it takes is measured and left out of the figures), and every
/// operation ends by checking the growths it predicted against the
/// machine's counters.
pub(crate) struct Track {
    sp: u64,
    lo: u64,
    hi: u64,
    growths: u64,
    /// Time spent re-reading the stack's place after growths.
    resync: Duration,
}

/// A shape's functions in a machine's table.
pub(crate) struct Shape {
    kind: Kind,
    depth: u64,
    entry: usize,
    rec: usize,
    p: u32,
    profile: Profile,
    guard: u64,
    /// The long-lived goroutine of BenchmarkStackGrowth, and where its
    /// stack is.
    worker: Option<(u32, u64, u64, u64)>,
}

/// What one operation of a shape did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OpCounters {
    /// Stack growths.
    pub growths: u64,
    /// Bytes copystack moved.
    pub bytes_copied: u64,
}

impl std::fmt::Display for OpCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} growths, {} bytes copied",
            self.growths, self.bytes_copied
        )
    }
}

pub(crate) const P8: u64 = 8;

impl Shape {
    /// Adds the shape's functions to `m` (as `go tool compile -S` of Go
    /// 1.23 shows them for linux/amd64: the TEXT line's frame size, the
    /// `gclocals` bitmaps per stack-map index, the `stkobj` records).
    /// Site `i` is stack-map index `i`; each function calls from the index
    /// its CALL instruction's PCDATA $1 names.
    pub(crate) fn new(m: &mut dyn Machine, kind: Kind, depth: u64) -> Result<Shape, Throw> {
        let p = m.create_p()?;
        let (ef, rf) = kind.frames();
        let (entry, rec) = match kind {
            Kind::Copy => (
                // func() { count(1000000); c <- true }: $32-0, one locals
                // word (c, at varp-8) live at the call.
                func(
                    "BenchmarkStackCopy.func1",
                    ef,
                    0,
                    vec![site(bits(1, &[]), vec![]), site(bits(1, &[0]), vec![])],
                    vec![],
                ),
                // count(n int) int: $16-8, no pointers.
                func("count", rf, 8, vec![site(vec![], vec![])], vec![]),
            ),
            Kind::CopyPtr => (
                // func() { i := 1000000; countp(&i); c <- true }: $40-0; i
                // at 16(SP) (a plain int), c at varp-8 live at the call.
                func(
                    "BenchmarkStackCopyPtr.func1",
                    ef,
                    0,
                    vec![site(bits(1, &[]), vec![]), site(bits(1, &[0]), vec![])],
                    vec![],
                ),
                // countp(n *int): $16-8; the argument is a pointer in
                // stack map 0 (at entry, where morestack spills it) and
                // dead at the recursive call (map 1).
                func(
                    "countp",
                    rf,
                    8,
                    vec![site(vec![], vec![true]), site(vec![], vec![false])],
                    vec![],
                ),
            ),
            Kind::CopyWithStkobj => {
                let obj = |off: i64| StackObject {
                    off,
                    size: 176,
                    ptrs: vec![true],
                };
                (
                    // func() { var s stkobjT; Sum(100000, &s); c <- true }:
                    // $208-0, s a stack object at varp-184, c at varp-8
                    // (locals bit 22 of 23) live at the call.
                    func(
                        "BenchmarkStackCopyWithStkobj.func1",
                        ef,
                        0,
                        vec![site(bits(23, &[]), vec![]), site(bits(23, &[22]), vec![])],
                        vec![obj(-184)],
                    ),
                    // Sum(n int64, p *stkobjT): $200-16, s a stack object at
                    // varp-176 whose first word (s.p) points at the caller's
                    // s; p (argument word 1) live in maps 0 and 1; locals
                    // bit 0 (s.p) live at the recursive call (map 1).
                    func(
                        "Sum",
                        rf,
                        16,
                        vec![
                            site(bits(22, &[]), vec![false, true]),
                            site(bits(22, &[0]), vec![false, true]),
                            site(bits(22, &[]), vec![false, false]),
                        ],
                        vec![obj(-176)],
                    ),
                )
            }
            Kind::Growth => (
                // The RunParallel body `for pb.Next() {
                // stackGrowthRecursive(rec) }`: $24; its pb argument is
                // left out (an entry function takes no arguments here).
                func(
                    "benchmarkStackGrowth.func1",
                    ef,
                    0,
                    vec![site(vec![], vec![])],
                    vec![],
                ),
                // stackGrowthRecursive(i int): $1040-8 (pad [128]uint64),
                // no pointers.
                func(
                    "stackGrowthRecursive",
                    rf,
                    8,
                    vec![site(vec![], vec![])],
                    vec![],
                ),
            ),
        };
        let entry = m.add_func(entry)?;
        let rec = m.add_func(rec)?;
        let profile = Profile::parse("linux", "amd64", false, "1.23")?;
        let guard = profile.consts().stack_guard;
        Ok(Shape {
            kind,
            depth,
            entry,
            rec,
            p,
            profile,
            guard,
            worker: None,
        })
    }

    /// Starts a goroutine at the entry function and finds its stack:
    /// newproc leaves four words and the goexit return address at the top,
    /// then the entry's frame.
    fn start(&self, m: &mut dyn Machine, t: &mut Track) -> Result<u32, String> {
        let g = m
            .spawn(Ctx::on(self.p), self.entry)
            .map_err(|e| format!("spawn: {e}"))?;
        let sp = m
            .slot_addr(g, 0, Slot::Local(0))
            .map_err(|e| format!("slot_addr: {e}"))?;
        let (ef, _) = self.kind.frames();
        t.sp = sp;
        t.hi = sp + ef + 5 * P8;
        t.lo = t.hi - m.world().starting_stack_size;
        Ok(g)
    }

    /// Calls the recursive function from `site`; `spill` runs first when
    /// the prologue check will fail (the compiler's morestack path spills
    /// the register arguments to the callee's argument words, i.e. the
    /// caller's lowest words, at `t.sp`).
    fn call(
        &self,
        m: &mut dyn Machine,
        t: &mut Track,
        g: u32,
        site: usize,
        spill: &[u64],
    ) -> Result<(), String> {
        let (_, f) = self.kind.frames();
        let sp1 = t.sp - P8;
        let (mut lo, hi) = (t.lo, t.hi);
        let mut grows = 0;
        while grows < 64
            && guard::needs_morestack(&self.profile, f, sp1, lo + self.guard)
                .map_err(|e| e.to_string())?
        {
            // newstack: double, more if the frame needs it (its max SP
            // delta is its frame size).
            let used = hi - sp1;
            let mut n = 2 * (hi - lo);
            while n - used < f + self.guard {
                n *= 2;
            }
            lo = hi - n;
            grows += 1;
        }
        if grows > 0 {
            for (i, &v) in spill.iter().enumerate() {
                m.poke(g, t.sp + i as u64 * P8, v)
                    .map_err(|e| format!("spill: {e}"))?;
            }
        }
        m.call(Ctx::on(self.p), g, site, self.rec)
            .map_err(|e| format!("call: {e}"))?;
        let sp = sp1 - f;
        if grows == 0 {
            t.sp = sp;
            return Ok(());
        }
        let r = Instant::now();
        let now = m
            .slot_addr(g, 0, Slot::Local(0))
            .map_err(|e| format!("slot_addr: {e}"))?;
        t.resync += r.elapsed();
        let delta = now.wrapping_sub(sp);
        t.sp = now;
        t.hi = hi.wrapping_add(delta);
        t.lo = lo.wrapping_add(delta);
        t.growths += grows;
        Ok(())
    }

    fn ret(&self, m: &mut dyn Machine, t: &mut Track, g: u32, frame: u64) -> Result<(), String> {
        m.ret(Ctx::on(self.p), g).map_err(|e| format!("ret: {e}"))?;
        t.sp += frame + P8;
        Ok(())
    }

    /// One operation of the benchmark (one `b.N` iteration): what it did,
    /// and the time spent re-reading the stack's place (to leave out).
    pub(crate) fn op(&mut self, m: &mut dyn Machine) -> Result<(OpCounters, Duration), String> {
        let before = m.world().gstats;
        let mut t = Track {
            sp: 0,
            lo: 0,
            hi: 0,
            growths: 0,
            resync: Duration::ZERO,
        };
        let d = self.depth;
        let (ef, rf) = self.kind.frames();
        let poke = |m: &mut dyn Machine, g: u32, a: u64, v: u64| {
            m.poke(g, a, v).map_err(|e| format!("store: {e}"))
        };
        match self.kind {
            Kind::Copy => {
                let g = self.start(m, &mut t)?;
                // c (at varp-8) is a heap pointer.
                poke(m, g, t.sp + ef - 2 * P8, HEAP_PTR)?;
                self.call(m, &mut t, g, 1, &[d])?;
                for n in (0..d).rev() {
                    self.call(m, &mut t, g, 0, &[n])?;
                }
                for _ in 0..=d {
                    self.ret(m, &mut t, g, rf)?;
                }
                self.ret(m, &mut t, g, ef)?;
            }
            Kind::CopyPtr => {
                let g = self.start(m, &mut t)?;
                poke(m, g, t.sp + ef - 2 * P8, HEAP_PTR)?;
                // i := 1000000 at 16(SP); countp(&i).
                let i_off = t.hi - (t.sp + 2 * P8);
                poke(m, g, t.hi - i_off, d)?;
                let i = t.hi - i_off;
                self.call(m, &mut t, g, 1, &[i])?;
                for k in (0..d).rev() {
                    // *n-- (the count lives in i), then countp(n).
                    let i = t.hi - i_off;
                    poke(m, g, i, k)?;
                    self.call(m, &mut t, g, 1, &[i])?;
                }
                for _ in 0..=d {
                    self.ret(m, &mut t, g, rf)?;
                }
                self.ret(m, &mut t, g, ef)?;
            }
            Kind::CopyWithStkobj => {
                let g = self.start(m, &mut t)?;
                // c at varp-8 (Local 24); s at 16(SP) is zeroed by entry.
                poke(m, g, t.sp + ef - 2 * P8, HEAP_PTR)?;
                let s = t.sp + 2 * P8;
                self.call(m, &mut t, g, 1, &[d, s])?;
                for n in (1..=d).rev() {
                    // Sum(n, p): spill p to its argument word; s := {p, n};
                    // Sum(n-1, &s).
                    let p = t.sp + rf + P8 + 2 * P8;
                    poke(m, g, t.sp + rf + 2 * P8, p)?;
                    poke(m, g, t.sp + 2 * P8, p)?;
                    poke(m, g, t.sp + 3 * P8, n)?;
                    let s = t.sp + 2 * P8;
                    self.call(m, &mut t, g, 1, &[n - 1, s])?;
                }
                for _ in 0..=d {
                    self.ret(m, &mut t, g, rf)?;
                }
                self.ret(m, &mut t, g, ef)?;
            }
            Kind::Growth => {
                let g = match self.worker {
                    Some((g, sp, lo, hi)) => {
                        (t.sp, t.lo, t.hi) = (sp, lo, hi);
                        g
                    }
                    None => self.start(m, &mut t)?,
                };
                for i in (0..=d).rev() {
                    self.call(m, &mut t, g, 0, &[i])?;
                }
                for _ in 0..=d {
                    self.ret(m, &mut t, g, rf)?;
                }
                self.worker = Some((g, t.sp, t.lo, t.hi));
            }
        }
        let after = m.world().gstats;
        let c = OpCounters {
            growths: after.growths - before.growths,
            bytes_copied: after.bytes_copied - before.bytes_copied,
        };
        if c.growths != t.growths {
            return Err(format!(
                "{}: predicted {} growths, the machine made {}",
                self.kind.go_name(),
                t.growths,
                c.growths
            ));
        }
        Ok((c, t.resync))
    }

    /// The bytes the deepest point of one operation uses, from the top of
    /// the stack: newproc's four words and goexit's return address, then
    /// every frame with its return address.
    pub(crate) fn max_used(&self) -> u64 {
        let (ef, rf) = self.kind.frames();
        5 * P8 + ef + (self.depth + 1) * (rf + P8)
    }
}
