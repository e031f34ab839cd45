//! Differential test of the goroutine layer: the spec (`gostack_spec::State`)
//! and the implementation (`gostack::Runtime`, frames in real memory) are
//! driven through the same scripted scenarios (growth, shrinking at stack
//! scans, forced moves, parking and sends with select, syscalls, defers and
//! panics, exits with dead-goroutine reuse, hostile inputs) and a seeded
//! random mix, over linux/amd64 1.23, linux/386 1.19, linux/arm64 1.19 and
//! 1.23, windows/amd64 1.23. After every operation the results (addresses
//! are in the same virtual address space on both sides, so they compare
//! as they are, throws included), `snapshot()` and `world()` must be equal,
//! and the spec's invariants must hold.
//!
//! A Go throw is fatal, on both sides: a scenario marks each step that
//! throws with `fatal!`, and runs once with all of them skipped, then once
//! per throwing step, ending there (skipping a throwing step leaves the
//! state the throw found, which is the state the spec keeps). The random
//! mix ends at its first throw.
//!
//! `GOSTACK_DIFF_GOR_STEPS` sets the random run's length (default 400 per
//! profile and seed).

use gostack::Runtime;
use gostack_spec::goroutine::{Func, Site, Slot, StackObject};
use gostack_spec::{check_invariants, Config, Ctx, GoThrow, Misuse, Profile, Stack, State, Throw};
use std::fmt::Debug;

const PROFILES: &[(&str, &str, &str)] = &[
    ("linux", "amd64", "1.23"),
    ("linux", "386", "1.19"),
    ("linux", "arm64", "1.19"),
    ("linux", "arm64", "1.23"),
    ("windows", "amd64", "1.23"),
];

struct Pair {
    s: State,
    r: Runtime,
    name: String,
    step: usize,
    /// The `fatal!` step this run ends at (by index), if any.
    fatal_at: Option<usize>,
    /// `fatal!` steps met so far.
    fatal_seen: usize,
    /// Whether the run ended at its `fatal!` step (or, with `any_fatal`,
    /// at any throw).
    ended: bool,
    /// Any step may throw, ending the run there (the random mix).
    any_fatal: bool,
}

/// A step that ends in Go's throw `$want`: a throw is fatal, so it runs
/// only when it is the run's chosen `fatal!` step, where both sides must
/// throw it, die of it, and the scenario ends (the enclosing closure
/// returns); otherwise it is skipped.
macro_rules! fatal {
    ($pair:expr, $want:expr, |$x:ident| $body:expr) => {{
        let i = $pair.fatal_seen;
        $pair.fatal_seen += 1;
        if $pair.fatal_at == Some(i) {
            let (a, b) = sides!($pair, |$x| $body);
            $pair.compare_fatal(stringify!($body), a.map(|_| ()), b.map(|_| ()), $want);
            return;
        }
    }};
}

/// Runs the same expression on both sides: (the spec's result, the
/// impl's).
macro_rules! sides {
    ($pair:expr, |$x:ident| $body:expr) => {{
        let a = {
            let $x = &mut $pair.s;
            $body
        };
        let b = {
            let $x = &mut $pair.r;
            $body
        };
        (a, b)
    }};
}

/// Runs the same expression on both sides and compares the results and
/// the whole observable state.
macro_rules! both {
    ($pair:expr, |$x:ident| $body:expr) => {{
        let (a, b) = sides!($pair, |$x| $body);
        $pair.compare(stringify!($body), &a, &b);
        a
    }};
}

/// The GC's stack scan of `g` from P `pid` on both sides, in a cycle in
/// which its root job has not run: the present one, or (each goroutine is
/// scanned once per cycle, and only if it existed at gcStart) a new one.
fn scan(p: &mut Pair, pid: u32, g: u32) -> Result<(), Throw> {
    let s = &p.s;
    let done = s.gor.gs[&g].gcscandone || g >= s.gor.n_stack_roots;
    if s.gcphase != gostack_spec::GcPhase::Off && done {
        // gc_end scans what is left first; it may have to wait (then the
        // scan below runs in this cycle, and fails as Go would).
        let _ = both!(p, |x| x.gc_end());
    }
    if p.s.gcphase == gostack_spec::GcPhase::Off {
        if p.s.spans_pending_free {
            both!(p, |x| x.free_stack_spans()).unwrap();
        }
        both!(p, |x| x.gc_start()).unwrap();
    }
    both!(p, |x| x.gc_scan(pid, g))
}

impl Pair {
    fn new(goos: &str, arch: &str, rel: &str, arena: u64, poison: bool) -> Pair {
        let mut c = Config::new(Profile::parse(goos, arch, false, rel).unwrap());
        c.arena_bytes = arena;
        c.poison_copy = poison;
        Pair {
            s: State::new(c.clone()).unwrap(),
            r: Runtime::new(c).unwrap(),
            name: format!("{goos}/{arch} {rel}{}", if poison { " poison" } else { "" }),
            step: 0,
            fatal_at: None,
            fatal_seen: 0,
            ended: false,
            any_fatal: false,
        }
    }

    /// A `fatal!` step's outcome: `want` on both sides, and both dead of
    /// it, refusing the next operation.
    fn compare_fatal(
        &mut self,
        what: &str,
        a: Result<(), Throw>,
        b: Result<(), Throw>,
        want: GoThrow,
    ) {
        self.step += 1;
        let ctx = format!("{} step {} `{what}`", self.name, self.step);
        assert_eq!(a, Err(Throw::Go(want)), "{ctx}: the spec");
        assert_eq!(b, Err(Throw::Go(want)), "{ctx}: the impl");
        assert_eq!(self.s.dead, Some(want), "{ctx}: the spec is dead");
        assert_eq!(self.r.dead(), Some(&want), "{ctx}: the impl is dead");
        let dead = Err(Throw::Misuse(Misuse::Dead(want)));
        assert_eq!(self.s.create_p(), dead, "{ctx}: the spec refuses");
        assert_eq!(self.r.create_p(), dead, "{ctx}: the impl refuses");
        self.ended = true;
    }

    fn compare<T: PartialEq + Debug>(&mut self, what: &str, a: &T, b: &T) {
        self.step += 1;
        let ctx = format!("{} step {} `{what}`", self.name, self.step);
        assert_eq!(a, b, "{ctx}: results differ");
        if let Some(t) = self.s.dead {
            assert!(
                self.any_fatal,
                "{ctx}: threw \"{t}\", which is fatal: mark the step `fatal!`"
            );
            assert_eq!(self.r.dead(), Some(&t), "{ctx}: the impl is dead");
            // Fatal: the states are no longer compared.
            self.ended = true;
            return;
        }
        if let Err(v) = check_invariants(&self.s) {
            panic!("{ctx}: spec invariant: {v}");
        }
        let (sa, sb) = (self.s.snapshot(), self.r.snapshot());
        if sa != sb {
            let ja = serde_json::to_value(&sa).unwrap();
            let jb = serde_json::to_value(&sb).unwrap();
            for (k, va) in ja.as_object().unwrap() {
                if jb.get(k) != Some(va) {
                    if k == "goroutines" {
                        for (ga, gb) in sa.goroutines.iter().zip(&sb.goroutines) {
                            assert_eq!(ga, gb, "{ctx}: goroutine differs");
                        }
                    }
                    panic!(
                        "{ctx}: snapshot field {k} differs:\nspec {va}\nimpl {}",
                        jb.get(k).unwrap()
                    );
                }
            }
        }
        assert_eq!(self.s.world(), self.r.world(), "{ctx}: world differs");
    }
}

/// The function table every scenario uses, valid on every profile.
struct Fns {
    /// Entry: frame 64, a pointer local, calls from two sites.
    main: usize,
    /// Recursive: frame 64, locals map 4 words, 2 args (first a pointer),
    /// a 3-word stack object of pointers.
    rec: usize,
    /// A big frame (8 KiB) that forces growth more than twice.
    big: usize,
    /// NOSPLIT with a 4 KiB frame.
    nosplit: usize,
    /// Frameless leaf.
    leaf: usize,
}

fn funcs(p: &mut Pair) -> Fns {
    let ptr = p.s.consts.ptr_size as i64;
    let mut main = Func::new("main", 64);
    main.sites = vec![
        Site {
            locals: vec![true, false, true, false],
            args: vec![],
        },
        Site {
            locals: vec![false, true, true, true],
            args: vec![],
        },
    ];
    // Room for a defer record of either release (five words in Go 1.19).
    main.objects.push(StackObject {
        off: -6 * ptr,
        size: 5 * ptr as u64,
        ptrs: vec![true, false, true, true, false],
    });
    let mut rec = Func::new("rec", 64);
    rec.args_size = 2 * ptr as u64;
    rec.sites = vec![
        Site {
            locals: vec![true, true, false, true],
            args: vec![true, false],
        },
        Site {
            locals: vec![false, true, false, false],
            args: vec![true, true],
        },
    ];
    rec.objects.push(StackObject {
        off: -4 * ptr,
        size: 3 * ptr as u64,
        ptrs: vec![true, true, true],
    });
    let big = Func::new("big", 8192);
    let mut nosplit = Func::new("nosplit", 4096);
    nosplit.nosplit = true;
    let leaf = Func::new("leaf", 0);
    Fns {
        main: both!(p, |x| x.add_func(main.clone())).unwrap(),
        rec: both!(p, |x| x.add_func(rec.clone())).unwrap(),
        big: both!(p, |x| x.add_func(big.clone())).unwrap(),
        nosplit: both!(p, |x| x.add_func(nosplit.clone())).unwrap(),
        leaf: both!(p, |x| x.add_func(leaf.clone())).unwrap(),
    }
}

/// Runs scenario `f` on every profile, with and without poisoned copies:
/// once with its `fatal!` steps skipped, then once ending at each.
fn each_profile(arena: u64, f: impl Fn(&mut Pair)) {
    for &(goos, arch, rel) in PROFILES {
        for poison in [false, true] {
            let mut p = Pair::new(goos, arch, rel, arena, poison);
            f(&mut p);
            for k in 0..p.fatal_seen {
                let mut q = Pair::new(goos, arch, rel, arena, poison);
                q.fatal_at = Some(k);
                f(&mut q);
                assert!(q.ended, "{}: fatal step {k} not reached", q.name);
            }
        }
    }
}

/// Calls `rec` `n` deep from site 0 of main, each frame's first local
/// pointing at its caller's, then returns all the way.
#[test]
fn grow_deep_and_return() {
    each_profile(64 << 20, |p| {
        let fs = funcs(p);
        let pid = both!(p, |x| x.create_p().unwrap());
        let ctx = Ctx::on(pid);
        let g = both!(p, |x| x.spawn(ctx, fs.main)).unwrap();
        both!(p, |x| x.call(ctx, g, 0, fs.rec)).unwrap();
        for i in 0..300 {
            let prev = both!(p, |x| x.slot_addr(g, 1, Slot::Local(0))).unwrap_or(0);
            let (m0, m1) = (map_local(p, g, 0), map_local(p, g, 1));
            both!(p, |x| x.write_slot(g, 0, m0, prev)).unwrap();
            both!(p, |x| x.write_slot(g, 0, m1, prev + 8)).unwrap();
            both!(p, |x| x.write_slot(g, 0, Slot::Arg(0), prev)).unwrap();
            let obj = both!(p, |x| x.slot_addr(g, 0, Slot::Object(0, 1))).unwrap();
            both!(p, |x| x.write_slot(g, 0, Slot::Object(0, 0), obj)).unwrap();
            if i % 7 == 0 {
                both!(p, |x| x.set_site(g, 1)).unwrap();
            }
            both!(p, |x| x.call(ctx, g, 0, fs.rec)).unwrap();
        }
        assert!(p.s.gor.stats.growths > 0, "{}: no growth", p.name);
        both!(p, |x| x.frames(g)).unwrap();
        for _ in 0..301 {
            both!(p, |x| x.ret(ctx, g)).unwrap();
        }
        // Back in main; then the bottom return ends the goroutine.
        both!(p, |x| x.ret(ctx, g)).unwrap();
        both!(p, |x| x.frames(g)).unwrap_err();
    });
}

/// Grows, returns, then shrinks at stack scans (directly, or at the next
/// preemption when a syscall or an async safe point makes it unsafe),
/// and forced moves.
#[test]
fn shrink_scan_preempt_and_force_move() {
    each_profile(64 << 20, |p| {
        let fs = funcs(p);
        let pid = both!(p, |x| x.create_p().unwrap());
        let ctx = Ctx::on(pid);
        let g = both!(p, |x| x.spawn(ctx, fs.main)).unwrap();
        let h = both!(p, |x| x.spawn(ctx, fs.main)).unwrap();
        both!(p, |x| x.call(ctx, g, 1, fs.big)).unwrap();
        both!(p, |x| x.ret(ctx, g)).unwrap();
        both!(p, |x| x.gc_scan(pid, g)).unwrap_err();
        both!(p, |x| x.gc_start()).unwrap();
        scan(p, pid, g).unwrap();
        scan(p, pid, g).unwrap();
        // Unsafe: in a syscall, then asynchronously stopped.
        both!(p, |x| x.call(ctx, h, 0, fs.big)).unwrap();
        both!(p, |x| x.ret(ctx, h)).unwrap();
        both!(p, |x| x.enter_syscall(h)).unwrap();
        fatal!(p, GoThrow::StackSplitAtBadTime, |x| x
            .call(ctx, h, 0, fs.leaf));
        scan(p, pid, h).unwrap();
        both!(p, |x| x.exit_syscall(h)).unwrap();
        both!(p, |x| x.exit_syscall(h)).unwrap_err();
        both!(p, |x| x.set_async_safe_point(h, true)).unwrap();
        scan(p, pid, h).unwrap();
        both!(p, |x| x.request_preempt(h)).unwrap();
        // Stopped at an async safe point, it cannot run a call.
        assert_eq!(
            both!(p, |x| x.call(ctx, h, 0, fs.rec)),
            Err(Misuse::GNotRunnable(h).into())
        );
        both!(p, |x| x.set_async_safe_point(h, false)).unwrap();
        both!(p, |x| x.call(ctx, h, 0, fs.rec)).unwrap();
        both!(p, |x| x.ret(ctx, h)).unwrap();
        // Forced moves, then one into a frame that needs growth.
        both!(p, |x| x.request_force_move(g)).unwrap();
        both!(p, |x| x.call(ctx, g, 0, fs.rec)).unwrap();
        both!(p, |x| x.request_force_move(g)).unwrap();
        both!(p, |x| x.call(ctx, g, 0, fs.big)).unwrap();
        // A preemption that shrinks and then must grow: two copies in one
        // call; first a stack overflow against maxstacksize after the
        // shrink (fatal), then done.
        let k = both!(p, |x| x.spawn(ctx, fs.main)).unwrap();
        for _ in 0..3 {
            both!(p, |x| x.call(ctx, k, 0, fs.big)).unwrap();
            both!(p, |x| x.ret(ctx, k)).unwrap();
            both!(p, |x| x.call(ctx, k, 0, fs.rec)).unwrap();
        }
        for _ in 0..3 {
            both!(p, |x| x.ret(ctx, k)).unwrap();
        }
        both!(p, |x| x.enter_syscall(k)).unwrap();
        scan(p, pid, k).unwrap();
        both!(p, |x| x.exit_syscall(k)).unwrap();
        both!(p, |x| x.request_preempt(k)).unwrap();
        let size = |p: &Pair| {
            let st = p.s.gor.gs[&k].stack;
            st.hi - st.lo
        };
        let before = size(p);
        both!(p, |x| x.set_max_stack(before / 2));
        fatal!(p, GoThrow::StackOverflow, |x| x.call(ctx, k, 0, fs.big));
        both!(p, |x| x.set_max_stack(1 << 30));
        let st0 = p.s.gor.stats.clone();
        both!(p, |x| x.call(ctx, k, 0, fs.big)).unwrap();
        let st1 = &p.s.gor.stats;
        assert_eq!(
            (st1.shrinks - st0.shrinks, st1.growths - st0.growths),
            (1, 1),
            "{}: shrink then grow",
            p.name
        );
        both!(p, |x| x.gc_end()).unwrap();
        both!(p, |x| x.gc_compute_starting_stack_size()).unwrap();
        both!(p, |x| x.free_stack_spans()).unwrap();
    });
}

/// Parks on two channels (a select), shrinks while parked, sends on one,
/// wakes; step-by-step parking with scans in between; hostile sends.
#[test]
fn park_select_shrink_send_wake() {
    each_profile(64 << 20, |p| {
        let fs = funcs(p);
        let ptr = p.s.consts.ptr_size;
        let pid = both!(p, |x| x.create_p().unwrap());
        let ctx = Ctx::on(pid);
        let c1 = both!(p, |x| x.make_chan(ptr)).unwrap();
        let c2 = both!(p, |x| x.make_chan(2 * ptr)).unwrap();
        both!(p, |x| x.make_chan(ptr + 1)).unwrap_err();
        let g = both!(p, |x| x.spawn(ctx, fs.main)).unwrap();
        both!(p, |x| x.call(ctx, g, 0, fs.big)).unwrap();
        both!(p, |x| x.ret(ctx, g)).unwrap();
        let e1 = both!(p, |x| x.slot_addr(g, 0, Slot::Local(0))).unwrap();
        let e2 = both!(p, |x| x.slot_addr(g, 0, Slot::Object(0, 0))).unwrap();
        both!(p, |x| x.write_slot(g, 0, Slot::Local(2), e2)).unwrap();
        both!(p, |x| x.park(g, &[(c1, e1), (c1, e2)])).unwrap_err();
        both!(p, |x| x.park(g, &[(c2, e2), (c1, e1)])).unwrap();
        both!(p, |x| x.call(ctx, g, 0, fs.leaf)).unwrap_err();
        both!(p, |x| x.gc_start()).unwrap();
        scan(p, pid, g).unwrap();
        both!(p, |x| x.send(c1, &[1, 2])).unwrap_err();
        let stack_ptr = p.s.gor.gs[&g].stack.hi - ptr;
        both!(p, |x| x.send(c2, &[stack_ptr, 7])).unwrap();
        // The select is won: the other case is skipped.
        both!(p, |x| x.send(c1, &[9])).unwrap_err();
        both!(p, |x| x.wake(g)).unwrap();
        both!(p, |x| x.wake(g)).unwrap_err();
        // Step by step, with a scan while parking (the stack moved).
        let e1 = both!(p, |x| x.slot_addr(g, 0, Slot::Local(0))).unwrap();
        both!(p, |x| x.park_begin(g, &[(c1, e1)])).unwrap();
        both!(p, |x| x.park_m(g)).unwrap_err();
        both!(p, |x| x.send(c1, &[3])).unwrap_err();
        both!(p, |x| x.park_set_parking(g)).unwrap();
        scan(p, pid, g).unwrap_err();
        both!(p, |x| x.park_m(g)).unwrap();
        scan(p, pid, g).unwrap();
        both!(p, |x| x.park_commit(g)).unwrap();
        scan(p, pid, g).unwrap();
        let _ = both!(p, |x| x.send(c1, &[u64::MAX]));
        let _ = both!(p, |x| x.send(c1, &[5]));
        both!(p, |x| x.wake(g)).unwrap();
        both!(p, |x| x.request_preempt(g)).unwrap();
        both!(p, |x| x.call(ctx, g, 0, fs.rec)).unwrap();
        both!(p, |x| x.gc_end()).unwrap();
        both!(p, |x| x.send(99, &[5])).unwrap_err();
    });
}

/// Heap and stack defers and a panic record, adjusted through growth and
/// shrink; popped; exits.
#[test]
fn defers_and_panics_move_with_the_stack() {
    each_profile(64 << 20, |p| {
        let fs = funcs(p);
        let pid = both!(p, |x| x.create_p().unwrap());
        let ctx = Ctx::on(pid);
        let g = both!(p, |x| x.spawn(ctx, fs.main)).unwrap();
        both!(p, |x| x.defer_push(g, 0, 0x1234, None)).unwrap();
        both!(p, |x| x.defer_push(g, 0, 0x5678, Some(0))).unwrap();
        both!(p, |x| x.defer_push(g, 0, 0x5678, Some(3))).unwrap_err();
        both!(p, |x| x.defer_push(g, 4, 0x5678, None)).unwrap_err();
        both!(p, |x| x.call(ctx, g, 0, fs.rec)).unwrap();
        both!(p, |x| x.panic_push(g, 0, 0)).unwrap();
        both!(p, |x| x.defer_push(g, 0, 0x9abc, None)).unwrap();
        let d = both!(p, |x| x.slot_addr(g, 1, Slot::Local(1))).unwrap();
        both!(p, |x| x.set_ctxt(g, d)).unwrap();
        both!(p, |x| x.call(ctx, g, 0, fs.big)).unwrap();
        both!(p, |x| x.ret(ctx, g)).unwrap();
        both!(p, |x| x.ret(ctx, g)).unwrap();
        both!(p, |x| x.gc_start()).unwrap();
        both!(p, |x| x.gc_scan(pid, g)).unwrap();
        for _ in 0..3 {
            both!(p, |x| x.defer_pop(g)).unwrap();
        }
        both!(p, |x| x.defer_pop(g)).unwrap_err();
        both!(p, |x| x.exit(ctx, g)).unwrap();
        both!(p, |x| x.exit(ctx, g)).unwrap_err();
        both!(p, |x| x.gc_end()).unwrap();
    });
}

/// Many goroutines exit (P's list spills to the global lists), the
/// starting stack size changes at a GC, and spawns reuse dead goroutines,
/// dropping stacks of the wrong size; destroying a P purges its list.
#[test]
fn exits_and_gfree_reuse() {
    each_profile(64 << 20, |p| {
        let fs = funcs(p);
        let p0 = both!(p, |x| x.create_p().unwrap());
        let p1 = both!(p, |x| x.create_p().unwrap());
        let mut gs = Vec::new();
        for i in 0..80 {
            let g = both!(p, |x| x.spawn(Ctx::on(p0), fs.main)).unwrap();
            if i % 3 == 0 {
                both!(p, |x| x.call(Ctx::on(p0), g, 0, fs.big)).unwrap();
            }
            gs.push(g);
        }
        both!(p, |x| x.gc_start()).unwrap();
        for &g in gs.iter().take(40) {
            both!(p, |x| x.gc_scan(p1, g)).unwrap();
        }
        both!(p, |x| x.gc_end()).unwrap();
        for &g in &gs {
            both!(p, |x| x.exit(Ctx::on(p0), g)).unwrap();
        }
        for _ in 0..50 {
            both!(p, |x| x.spawn(Ctx::on(p1), fs.rec)).unwrap_err();
            both!(p, |x| x.spawn(Ctx::on(p1), fs.main)).unwrap();
        }
        both!(p, |x| x.destroy_p(p0)).unwrap();
        both!(p, |x| x.spawn(Ctx::on(p0), fs.main)).unwrap_err();
        both!(p, |x| x.spawn(Ctx::no_p(), fs.main)).unwrap_err();
        both!(p, |x| x.spawn(Ctx::on(p1), 99)).unwrap_err();
        let _ = both!(p, |x| x.spawn(Ctx::on(p1), fs.nosplit));
    });
}

/// Corrupt frames, junk pointers, stack overflow, NOSPLIT overruns, bad
/// ids and out of memory: the same throw on both sides, and nothing
/// changes.
#[test]
fn hostile_inputs() {
    each_profile(4 << 20, |p| {
        let fs = funcs(p);
        let ptr = p.s.consts.ptr_size;
        let pid = both!(p, |x| x.create_p().unwrap());
        let ctx = Ctx::on(pid);
        let g = both!(p, |x| x.spawn(ctx, fs.main)).unwrap();
        // Junk in a live local pointer slot: caught when the stack moves.
        let junk = map_local(p, g, 0);
        both!(p, |x| x.write_slot(g, 0, junk, 7)).unwrap();
        fatal!(p, GoThrow::InvalidPointerOnStack, |x| x
            .call(ctx, g, 0, fs.big));
        both!(p, |x| x.write_slot(g, 0, junk, 0)).unwrap();
        let _ = both!(p, |x| x.write_slot(g, 0, Slot::Local(0), u64::MAX));
        // A corrupt return address.
        both!(p, |x| x.call(ctx, g, 0, fs.rec)).unwrap();
        let fr = both!(p, |x| x.frames(g)).unwrap();
        let ra = if p.s.config.profile.goarch == gostack_spec::Goarch::Arm64 {
            fr[0].sp
        } else {
            fr[0].fp - ptr
        };
        let saved = p.s.read_word(ra);
        both!(p, |x| x.poke(g, ra, 0x1234)).unwrap();
        fatal!(p, GoThrow::UnknownCallerPc, |x| x.call(ctx, g, 0, fs.big));
        both!(p, |x| x.frames(g)).unwrap_err();
        both!(p, |x| x.ret(ctx, g)).unwrap_err();
        both!(p, |x| x.poke(g, ra, saved)).unwrap();
        both!(p, |x| x.poke(g, ra + 1, saved)).unwrap_err();
        both!(p, |x| x.poke(g, 0, saved)).unwrap_err();
        both!(p, |x| x.ret(ctx, g)).unwrap();
        // Stack overflow against maxstacksize, then out of memory.
        both!(p, |x| x.set_max_stack(4 << 10));
        fatal!(p, GoThrow::StackOverflow, |x| x.call(ctx, g, 0, fs.big));
        both!(p, |x| x.set_max_stack(1 << 30));
        let mut huge = Func::new("huge", 8 << 20);
        huge.max_sp_delta = 8 << 20;
        let hf = both!(p, |x| x.add_func(huge.clone())).unwrap();
        fatal!(p, GoThrow::OutOfMemory, |x| x.call(ctx, g, 0, hf));
        fatal!(p, GoThrow::OutOfMemory, |x| x.spawn(ctx, hf));
        // NOSPLIT chains run off the bottom.
        for _ in 0..4 {
            let _ = both!(p, |x| x.call(ctx, g, 0, fs.nosplit));
        }
        // Bad functions and ids.
        both!(p, |x| x.add_func(Func::new("odd", 13))).unwrap_err();
        let mut bad = Func::new("bad", 64);
        bad.sites[0].locals = vec![true; 64];
        both!(p, |x| x.add_func(bad.clone())).unwrap_err();
        both!(p, |x| x.call(ctx, 77, 0, fs.rec)).unwrap_err();
        both!(p, |x| x.call(ctx, g, 9, fs.rec)).unwrap_err();
        both!(p, |x| x.call(ctx, g, 0, 1000)).unwrap_err();
        both!(p, |x| x.set_site(g, 5)).unwrap_err();
        both!(p, |x| x.slot_addr(g, 9, Slot::Local(0))).unwrap_err();
        both!(p, |x| x.slot_addr(g, 0, Slot::Local(1000))).unwrap_err();
        both!(p, |x| x.request_preempt(500)).unwrap_err();
        both!(p, |x| x.wake(g)).unwrap_err();
        both!(p, |x| x.park_commit(g)).unwrap_err();
        both!(p, |x| x.park(g, &[])).unwrap_err();
        both!(p, |x| x.park(g, &[(0, 8)])).unwrap_err();
        // Fill the heap, then spawn until the cached stacks run out too
        // (running out is fatal: each step is tried on a copy of the spec
        // first).
        for n in [64, 8, 1] {
            while would(p, |s| s.heap_alloc(n)) {
                both!(p, |x| x.heap_alloc(n)).unwrap();
            }
        }
        let mut n = 0;
        while would(p, |s| s.spawn(ctx, fs.main)) {
            both!(p, |x| x.spawn(ctx, fs.main)).unwrap();
            n += 1;
            assert!(n < 10_000);
        }
        fatal!(p, GoThrow::OutOfMemory, |x| x.spawn(ctx, fs.main));
        fatal!(p, GoThrow::OutOfMemory, |x| x.stackalloc(ctx, 1 << 20));
        // An interior address is no stack.
        both!(p, |x| x.stackfree(
            ctx,
            Stack {
                lo: x.base() + 1024,
                hi: x.base() + 3072
            }
        ))
        .unwrap_err();
    });
}

/// Whether `op` would succeed on the spec (tried on a copy: a failure
/// there may be a fatal throw).
fn would<T>(p: &Pair, op: impl FnOnce(&mut State) -> Result<T, Throw>) -> bool {
    op(&mut p.s.clone()).is_ok()
}

/// The slot of bit `bit` of the innermost frame's 4-word locals map (the
/// map covers the top of the locals area).
fn map_local(p: &Pair, g: u32, bit: usize) -> Slot {
    let ptr = p.s.consts.ptr_size;
    let fr = &p.s.frames(g).unwrap()[0];
    let first = p.s.slot_addr(g, 0, Slot::Local(0)).unwrap();
    let room = (fr.varp - first) / ptr;
    Slot::Local((room - 4) as usize + bit)
}

trait Base {
    fn base(&self) -> u64;
}
impl Base for State {
    fn base(&self) -> u64 {
        self.heap.base
    }
}

/// A small random mix over every operation, seeded.
#[test]
fn random_mix() {
    let steps: usize = std::env::var("GOSTACK_DIFF_GOR_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    for seed in 1..=3u64 {
        for &(goos, arch, rel) in PROFILES {
            let mut p = Pair::new(goos, arch, rel, 8 << 20, seed == 2);
            p.name = format!("{} seed {seed}", p.name);
            p.any_fatal = true;
            random_run(&mut p, seed, steps);
        }
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn random_run(p: &mut Pair, seed: u64, steps: usize) {
    let fs = funcs(p);
    let fl = [fs.main, fs.rec, fs.big, fs.nosplit, fs.leaf];
    let ptr = p.s.consts.ptr_size;
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let p0 = both!(p, |x| x.create_p().unwrap());
    let mut ps = vec![p0];
    let mut chans = Vec::new();
    for i in 1..=3u64 {
        chans.push(both!(p, |x| x.make_chan(i * ptr)).unwrap());
    }
    let mut raw: Vec<Stack> = Vec::new();
    for _ in 0..steps {
        if p.ended {
            // A Go throw ended the run.
            break;
        }
        let gids: Vec<u32> = p.s.gor.gs.keys().copied().collect();
        let g = if gids.is_empty() {
            0
        } else {
            gids[rng.below(gids.len() as u64) as usize]
        };
        let pid = ps[rng.below(ps.len() as u64) as usize];
        let ctx = Ctx::on(pid);
        let f = fl[rng.below(fl.len() as u64) as usize];
        match rng.below(30) {
            0..=2 => {
                let _ = both!(p, |x| x.spawn(ctx, f));
            }
            3..=7 => {
                let site = rng.below(3) as usize;
                let _ = both!(p, |x| x.call(ctx, g, site, f));
            }
            8..=9 => {
                let _ = both!(p, |x| x.ret(ctx, g));
            }
            10..=12 => {
                let frame = rng.below(3) as usize;
                let slot = match rng.below(3) {
                    0 => Slot::Local(rng.below(5) as usize),
                    1 => Slot::Arg(rng.below(2) as usize),
                    _ => Slot::Object(0, rng.below(3) as usize),
                };
                let target =
                    p.s.slot_addr(g, rng.below(4) as usize, Slot::Local(0))
                        .unwrap_or(0);
                let v = match rng.below(4) {
                    0 => target,
                    1 => 0,
                    2 => rng.below(4096),
                    _ => p.s.heap.base + rng.below(1 << 20) * ptr,
                };
                let _ = both!(p, |x| x.write_slot(g, frame, slot, v));
            }
            13 => {
                let s = rng.below(2) as usize;
                let _ = both!(p, |x| x.set_site(g, s));
            }
            14 => {
                let o = if rng.below(2) == 0 { None } else { Some(0) };
                let fr = rng.below(3) as usize;
                let _ = both!(p, |x| x.defer_push(g, fr, 0x42, o));
            }
            15 => {
                let _ = both!(p, |x| x.defer_pop(g));
                let _ = both!(p, |x| x.panic_push(g, 0, 0));
            }
            16 => match rng.below(3) {
                0 => {
                    let _ = both!(p, |x| x.request_preempt(g));
                }
                1 => {
                    let _ = both!(p, |x| x.request_force_move(g));
                }
                _ => {
                    let on = rng.below(2) == 0;
                    let _ = both!(p, |x| x.set_async_safe_point(g, on));
                }
            },
            17 => {
                let _ = both!(p, |x| x.gc_start());
            }
            18..=19 => {
                // A second scan in one cycle is the fatal "g already
                // scanned" (the scripted scenarios have it): skipped.
                if p.s.gor.gs.get(&g).is_none_or(|x| !x.gcscandone) {
                    let _ = both!(p, |x| x.gc_scan(pid, g));
                }
            }
            20 => {
                let _ = both!(p, |x| x.gc_end());
            }
            21..=22 => {
                let n = 1 + rng.below(2) as usize;
                let mut cases = Vec::new();
                for k in 0..n {
                    let c = chans[(k + rng.below(3) as usize) % chans.len()];
                    let e =
                        p.s.slot_addr(g, 0, Slot::Local(rng.below(4) as usize))
                            .unwrap_or(0);
                    cases.push((c, e));
                }
                if rng.below(2) == 0 {
                    let _ = both!(p, |x| x.park(g, &cases));
                } else {
                    let _ = both!(p, |x| x.park_begin(g, &cases));
                    let _ = both!(p, |x| x.park_set_parking(g));
                }
            }
            23 => {
                let _ = both!(p, |x| x.park_m(g));
                let _ = both!(p, |x| x.park_commit(g));
            }
            24 => {
                let c = chans[rng.below(3) as usize];
                let n = c as u64 + 1;
                let val: Vec<u64> = (0..n).map(|i| i * 0x10).collect();
                let _ = both!(p, |x| x.send(c, &val));
                let _ = both!(p, |x| x.wake(g));
            }
            25 => {
                if rng.below(2) == 0 {
                    let _ = both!(p, |x| x.enter_syscall(g));
                } else {
                    let _ = both!(p, |x| x.exit_syscall(g));
                }
            }
            26 => {
                let _ = both!(p, |x| x.exit(ctx, g));
            }
            27 => {
                let n = 2048 << rng.below(6);
                if let Ok(s) = both!(p, |x| x.stackalloc(ctx, n)) {
                    raw.push(s);
                }
            }
            28 => {
                if !raw.is_empty() {
                    let s = raw.swap_remove(rng.below(raw.len() as u64) as usize);
                    both!(p, |x| x.stackfree(ctx, s)).unwrap();
                }
            }
            _ => match rng.below(4) {
                0 => {
                    // Refused while a GC cycle runs, as destroying is.
                    if let Ok(id) = both!(p, |x| x.create_p()) {
                        ps.push(id);
                    }
                }
                1 if ps.len() > 1 => {
                    // Refused while a GC cycle runs (GOMAXPROCS waits).
                    let i = rng.below(ps.len() as u64) as usize;
                    if both!(p, |x| x.destroy_p(ps[i])).is_ok() {
                        ps.swap_remove(i);
                    }
                }
                2 => {
                    let a = p.s.read_word(p.s.heap.base + rng.below(1 << 16) * ptr);
                    let addr = p.s.heap.base + rng.below(1 << 16) * ptr;
                    let (x, y) = (p.s.read_word(addr), p.r.read_word(addr));
                    assert_eq!(x, y, "{} read_word({addr:#x})", p.name);
                    let _ = a;
                }
                _ => {
                    let mx = 4096 << rng.below(12);
                    both!(p, |x| x.set_max_stack(mx));
                }
            },
        }
    }
    let st = &p.s.gor.stats;
    eprintln!(
        "{}: {} goroutines, {} growths, {} shrinks, {} moves, {} sudogs made",
        p.name,
        p.s.gor.gs.len(),
        st.growths,
        st.shrinks,
        st.moves,
        p.s.gor.next_sudog
    );
    if let Some(t) = p.s.dead {
        eprintln!("{}: ended at step {} by the fatal \"{t}\"", p.name, p.step);
    }
    assert!(st.growths > 0, "{}: the mix never grew a stack", p.name);
    let _ = Misuse::NoSuchG(0);
}

/// adjustframe skips the stack objects of a frame that lie below its SP:
/// those of the innermost frame while it is at its entry (its frame not
/// allocated yet). Goroutine `h` leaves, in its stack A, words pointing
/// into goroutine `g`'s stack just below where g's SP will be once g
/// moves onto A; h grows (A goes back to the P's cache); a forced move
/// gives A to g as g calls `obj`, whose object, placed at the entry's
/// varp, covers one of those words, and whose allocated frame does not
/// zero it. The word must keep its value (an adjustment would make it
/// point into g's new stack, and g's used stack differs). On 386 the
/// entry's varp is the allocated frame's, so the object is zeroed at
/// entry either way: the scenario runs on the 64-bit profiles.
#[test]
fn entry_objects_below_sp_are_not_adjusted() {
    for &(goos, arch, rel) in PROFILES.iter().filter(|p| p.1 != "386") {
        let mut pair = Pair::new(goos, arch, rel, 64 << 20, false);
        let p = &mut pair;
        let fs = funcs(p);
        let ptr = p.s.consts.ptr_size;
        let mut obj = Func::new("obj", 64);
        obj.sites = vec![Site {
            locals: vec![],
            args: vec![],
        }];
        obj.objects.push(StackObject {
            off: -2 * ptr as i64,
            size: ptr,
            ptrs: vec![true],
        });
        let obj = both!(p, |x| x.add_func(obj.clone())).unwrap();
        let pad = both!(p, |x| x.add_func(Func::new("pad", 1024))).unwrap();
        let pid = both!(p, |x| x.create_p().unwrap());
        let ctx = Ctx::on(pid);
        let g = both!(p, |x| x.spawn(ctx, fs.main)).unwrap();
        let h = both!(p, |x| x.spawn(ctx, fs.main)).unwrap();
        for _ in 0..2 {
            both!(p, |x| x.call(ctx, g, 0, fs.rec)).unwrap();
        }
        both!(p, |x| x.call(ctx, h, 0, pad)).unwrap();
        let (old, a) = (p.s.gor.gs[&g].stack, p.s.gor.gs[&h].stack);
        assert_eq!(old.hi - old.lo, a.hi - a.lo, "{}", p.name);
        // g's SP at obj's entry (x86 pushes the return address), on A.
        let arm = p.s.config.profile.goarch == gostack_spec::Goarch::Arm64;
        let entry_sp = p.s.gor.gs[&g].sp - if arm { 0 } else { ptr };
        let new_entry_sp = a.hi - (old.hi - entry_sp);
        let target = old.lo + (old.hi - old.lo) / 2;
        let padf = both!(p, |x| x.frames(h)).unwrap()[0].clone();
        for k in 1..=8 {
            let at = new_entry_sp - k * ptr;
            assert!(
                at >= padf.sp + ptr && at + ptr <= padf.varp,
                "{}: {at:#x} is not a local of pad",
                p.name
            );
            both!(p, |x| x.poke(h, at, target)).unwrap();
        }
        // h grows off A; g moves onto it.
        both!(p, |x| x.call(ctx, h, 0, fs.big)).unwrap();
        both!(p, |x| x.request_force_move(g)).unwrap();
        both!(p, |x| x.call(ctx, g, 0, obj)).unwrap();
        assert_eq!(p.s.gor.gs[&g].stack, a, "{}: g did not move onto A", p.name);
        // The entry object's word: in g's used stack, outside obj's
        // allocated object, and still pointing into the old stack.
        let word = new_entry_sp - 2 * ptr;
        let fr = both!(p, |x| x.frames(g)).unwrap()[0].clone();
        assert!(word >= fr.sp && word != fr.varp - 2 * ptr, "{}", p.name);
        assert_eq!(p.s.read_word(word), target, "{}", p.name);
        both!(p, |x| x.ret(ctx, g)).unwrap();
    }
}
