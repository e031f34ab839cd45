//! 100,000 goroutine stacks in real memory, growing and shrinking across
//! GC cycles.
//!
//! `cargo run --release -p gostack --example goroutines [-- GOROUTINES]`
//!
//! Every goroutine runs `walk`, a recursive function whose frame holds a
//! stack object `node` (four words) whose first word points at its
//! caller's `node`, and which receives that pointer as a live pointer
//! argument: a linked list through the stack, as Go programs make when they
//! pass `&local` down. Rounds alternate:
//! - a deep round takes each goroutine to a new depth (10 to 50 frames, one
//!   goroutine in 20 to 200 frames), growing stacks through `newstack`
//!   (copystack adjusts every node pointer and argument);
//! - a shallow round returns each goroutine to 1 to 3 frames;
//! - after each round a GC cycle runs in Go's order (`gc_start`, a stack
//!   scan of every goroutine, which halves stacks using less than a quarter,
//!   `gc_mark_termination`, `gc_off`, `free_stack_spans`, then every P's
//!   cache flushed, as `gc_end` would);
//! - after each deep round every 1000th goroutine's list is walked through
//!   the stack memory and checked against where its frames are.
//!
//! At the end every goroutine returns (and dies) and a last GC runs. The
//! example prints per round what happened (calls, returns, growths,
//! shrinks, bytes copied, stack bytes in use, time) and the totals.
//!
//! The program follows where each goroutine's innermost frame is from the
//! frame sizes and the prologue check (`guard::needs_morestack`, and
//! `shrinkstack`'s quarter rule for scans), reading it back with
//! `slot_addr` only after a predicted move, and checks its predictions
//! against the runtime's counters every round.

use gostack::Runtime;
use gostack_spec::goroutine::{Func, Site, Slot, StackObject};
use gostack_spec::{guard, Config, Consts, Ctx, Profile, Throw};
use std::time::{Duration, Instant};

/// Word size (linux/amd64).
const W: u64 = 8;
/// The entry function's frame: an outgoing argument area (2 words) and its
/// own `node` below varp.
const ENTRY_FRAME: u64 = 64;
/// `walk(n int, p *node)`'s frame.
const WALK_FRAME: u64 = 96;
/// A node: 4 words, the first a pointer.
const NODE: u64 = 32;
/// Where a frame's node starts above its SP (amd64: varp = SP + frame -
/// 8, the node just below varp).
fn node_at(sp: u64, frame: u64) -> u64 {
    sp + frame - W - NODE
}

/// A goroutine as the driver follows it.
struct Gor {
    id: u32,
    p: u32,
    depth: u32,
    sp: u64,
    lo: u64,
    hi: u64,
}

/// Totals of a phase.
#[derive(Default)]
struct Count {
    calls: u64,
    rets: u64,
    growths: u64,
    shrinks: u64,
}

struct Driver {
    rt: Runtime,
    consts: Consts,
    profile: Profile,
    entry: usize,
    walk: usize,
    resync: Duration,
}

fn die(what: &str, t: Throw) -> ! {
    eprintln!("goroutines: {what}: {t}");
    std::process::exit(1)
}

/// A small deterministic generator (SplitMix64), so runs are repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

impl Driver {
    fn new(arena: u64) -> Driver {
        let profile = Profile::parse("linux", "amd64", false, "1.23").unwrap();
        let mut c = Config::new(profile);
        c.arena_bytes = arena;
        let mut rt = Runtime::new(c).unwrap_or_else(|t| die("arena", t));
        let obj = |off: i64| StackObject {
            off,
            size: NODE,
            ptrs: vec![true],
        };
        // The entry: no arguments; its node is a stack object.
        let mut entry = Func::new("worker", ENTRY_FRAME);
        entry.objects = vec![obj(-(NODE as i64))];
        let entry = rt.add_func(entry).unwrap_or_else(|t| die("add_func", t));
        // walk(n, p): argument word 1 is a pointer (the caller's node), live
        // at entry and at the call; its node is a stack object.
        let mut walk = Func::new("walk", WALK_FRAME);
        walk.args_size = 2 * W;
        walk.sites = vec![Site {
            locals: vec![],
            args: vec![false, true],
        }];
        walk.objects = vec![obj(-(NODE as i64))];
        let walk = rt.add_func(walk).unwrap_or_else(|t| die("add_func", t));
        Driver {
            rt,
            consts: profile.consts(),
            profile,
            entry,
            walk,
            resync: Duration::ZERO,
        }
    }

    /// Where goroutine `g`'s innermost frame is, read back after a move
    /// (unwinds the goroutine's frames).
    fn resync(&mut self, g: &mut Gor, predicted_sp: u64) {
        let t = Instant::now();
        let sp = self
            .rt
            .slot_addr(g.id, 0, Slot::Local(0))
            .unwrap_or_else(|t| die("slot_addr", t));
        self.resync += t.elapsed();
        let delta = sp.wrapping_sub(predicted_sp);
        g.sp = sp;
        g.lo = g.lo.wrapping_add(delta);
        g.hi = g.hi.wrapping_add(delta);
    }

    fn spawn(&mut self, p: u32) -> Gor {
        let id = self
            .rt
            .spawn(Ctx::on(p), self.entry)
            .unwrap_or_else(|t| die("spawn", t));
        let mut g = Gor {
            id,
            p,
            depth: 0,
            sp: 0,
            lo: 0,
            hi: 0,
        };
        // newproc: four words and goexit's return address, then the entry
        // frame; the stack has the starting size.
        let start = self.rt.world().starting_stack_size;
        self.resync(&mut g, 0);
        g.hi = g.sp + ENTRY_FRAME + 5 * W;
        g.lo = g.hi - start;
        g
    }

    /// The innermost frame calls `walk`: it passes a pointer to its own
    /// node, and the callee links its node to it.
    fn call(&mut self, g: &mut Gor, c: &mut Count) {
        let frame = if g.depth == 0 {
            ENTRY_FRAME
        } else {
            WALK_FRAME
        };
        let mine = node_at(g.sp, frame);
        self.rt
            .poke(g.id, g.sp + W, mine)
            .unwrap_or_else(|t| die("poke", t));
        // Predict the prologue check and newstack's new size.
        let sp1 = g.sp - W;
        let mut lo = g.lo;
        let mut grows = 0;
        while guard::needs_morestack(&self.profile, WALK_FRAME, sp1, lo + self.consts.stack_guard)
            .unwrap_or_else(|t| die("needs_morestack", t))
        {
            let used = g.hi - sp1;
            let mut n = 2 * (g.hi - lo);
            while n - used < WALK_FRAME + self.consts.stack_guard {
                n *= 2;
            }
            lo = g.hi - n;
            grows += 1;
        }
        self.rt
            .call(Ctx::on(g.p), g.id, 0, self.walk)
            .unwrap_or_else(|t| die("call", t));
        let sp = sp1 - WALK_FRAME;
        g.lo = lo;
        g.sp = sp;
        if grows > 0 {
            self.resync(g, sp);
            c.growths += grows;
        }
        // The callee: node.next = p, its argument: the caller's node, where
        // the caller now is (copystack adjusted the argument word if the
        // stack moved; `check_list` reads it back).
        let p = node_at(g.sp + WALK_FRAME + W, frame);
        self.rt
            .poke(g.id, node_at(g.sp, WALK_FRAME), p)
            .unwrap_or_else(|t| die("poke", t));
        g.depth += 1;
        c.calls += 1;
    }

    fn ret(&mut self, g: &mut Gor, c: &mut Count) {
        self.rt
            .ret(Ctx::on(g.p), g.id)
            .unwrap_or_else(|t| die("ret", t));
        g.sp += WALK_FRAME + W;
        g.depth -= 1;
        c.rets += 1;
    }

    /// Reads a word of stack memory straight from the arena (the API's
    /// `read_word` also answers for free-list links and is much slower).
    fn load(&self, va: u64) -> Option<u64> {
        let real = va
            .wrapping_sub(self.rt.base())
            .wrapping_add(self.rt.real_base());
        self.rt.stacks().load_word(real)
    }

    /// Walks `g`'s list from its innermost node to the entry's, reading
    /// stack memory: every node's link and every frame's pointer argument
    /// must be the node of the frame above.
    fn check_list(&self, g: &Gor) -> bool {
        let mut sp = g.sp;
        let mut node = node_at(sp, WALK_FRAME);
        for d in (1..=g.depth).rev() {
            let next = self.load(node);
            let arg = self.load(sp + WALK_FRAME + 2 * W);
            sp += WALK_FRAME + W;
            let want = node_at(sp, if d == 1 { ENTRY_FRAME } else { WALK_FRAME });
            if next != Some(want) || arg != Some(want) || want < g.lo || want >= g.hi {
                return false;
            }
            node = want;
        }
        true
    }

    /// One GC cycle in Go's order. Scans shrink stacks using less than a
    /// quarter (`shrinkstack`); those goroutines are found again.
    fn gc(&mut self, gs: &mut [Gor], ps: &[u32], c: &mut Count) {
        self.rt.gc_start().unwrap_or_else(|t| die("gc_start", t));
        for g in gs.iter_mut() {
            let size = g.hi - g.lo;
            let used = g.hi - g.sp + self.consts.stack_nosplit;
            let shrinks = size / 2 >= self.consts.fixed_stack && used < size / 4;
            self.rt
                .gc_scan(g.p, g.id)
                .unwrap_or_else(|t| die("gc_scan", t));
            if shrinks {
                g.lo = g.hi - size / 2;
                let sp = g.sp;
                self.resync(g, sp);
                c.shrinks += 1;
            }
        }
        self.rt
            .gc_mark_termination()
            .unwrap_or_else(|t| die("gc_mark_termination", t));
        self.rt.gc_off().unwrap_or_else(|t| die("gc_off", t));
        self.rt
            .free_stack_spans()
            .unwrap_or_else(|t| die("free_stack_spans", t));
        for &p in ps {
            self.rt
                .flush_cache(p)
                .unwrap_or_else(|t| die("flush_cache", t));
        }
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("GOROUTINES must be a number"))
        .unwrap_or(100_000);
    let t0 = Instant::now();
    let mut d = Driver::new(8 << 30);
    let ps = [d.rt.create_p().unwrap(), d.rt.create_p().unwrap()];
    let mut gs: Vec<Gor> = (0..n).map(|i| d.spawn(ps[i % 2])).collect();
    let s = d.rt.stats();
    println!(
        "spawned {n} goroutines on 2 Ps in {:.2?}: {:.1} MiB of stacks in use ({} bytes each)",
        t0.elapsed(),
        mib(s.stack_inuse),
        d.rt.world().starting_stack_size
    );
    println!(
        "{:<6} {:<8} {:>10} {:>10} {:>8} {:>8} {:>12} {:>14} {:>9}",
        "round",
        "phase",
        "calls",
        "returns",
        "growths",
        "shrinks",
        "MiB copied",
        "MiB of G stacks",
        "time"
    );
    let mut rng = Rng(0x5eed);
    let mut checked = 0;
    for round in 0..6 {
        let t = Instant::now();
        let before = d.rt.world().gstats;
        let resync0 = d.resync;
        let mut c = Count::default();
        let deep = round % 2 == 0;
        for g in gs.iter_mut() {
            let target = if deep {
                if rng.below(20) == 0 {
                    200
                } else {
                    10 + rng.below(41) as u32
                }
            } else {
                1 + rng.below(3) as u32
            };
            while g.depth < target {
                d.call(g, &mut c);
            }
            while g.depth > target {
                d.ret(g, &mut c);
            }
        }
        if deep {
            for g in gs.iter().step_by(1000) {
                if !d.check_list(g) {
                    eprintln!("goroutines: goroutine {}'s node list is broken", g.id);
                    std::process::exit(1);
                }
                checked += 1;
            }
        }
        d.gc(&mut gs, &ps, &mut c);
        let after = d.rt.world().gstats;
        if after.growths - before.growths != c.growths
            || after.shrinks - before.shrinks != c.shrinks
        {
            eprintln!(
                "goroutines: predicted {} growths and {} shrinks, the runtime made {} and {}",
                c.growths,
                c.shrinks,
                after.growths - before.growths,
                after.shrinks - before.shrinks
            );
            std::process::exit(1);
        }
        let inuse: u64 = gs.iter().map(|g| g.hi - g.lo).sum();
        println!(
            "{:<6} {:<8} {:>10} {:>10} {:>8} {:>8} {:>12.1} {:>14.1} {:>9.2?}",
            round,
            if deep { "deep" } else { "shallow" },
            c.calls,
            c.rets,
            c.growths,
            c.shrinks,
            mib(after.bytes_copied - before.bytes_copied),
            mib(inuse),
            t.elapsed() - (d.resync - resync0),
        );
    }
    // Everyone returns from every frame and dies; a last GC.
    let t = Instant::now();
    let mut c = Count::default();
    for g in gs.iter_mut() {
        while g.depth > 0 {
            d.ret(g, &mut c);
        }
        d.rt.ret(Ctx::on(g.p), g.id)
            .unwrap_or_else(|t| die("ret (goexit)", t));
    }
    d.rt.gc_start().unwrap_or_else(|t| die("gc_start", t));
    d.rt.gc_end().unwrap_or_else(|t| die("gc_end", t));
    let w = d.rt.world();
    let s = d.rt.stats();
    println!(
        "exit   all      {:>10} {:>10} {:>8} {:>8} {:>12} {:>14.1} {:>9.2?}",
        0,
        c.rets + n as u64,
        0,
        0,
        "",
        mib(s.stack_inuse),
        t.elapsed()
    );
    println!(
        "totals: {} growths, {} shrinks, {:.1} MiB copied; node lists checked: {checked}, all intact",
        w.gstats.growths,
        w.gstats.shrinks,
        mib(w.gstats.bytes_copied)
    );
    println!(
        "after exit: {:.1} MiB in stacks (dead goroutines keep starting-size stacks, as gfput does), \
         {} pool spans, {} large spans; allocator metadata {:.1} MiB",
        mib(s.stack_inuse),
        s.pool_spans,
        s.large_spans,
        mib(d.rt.stacks().metadata_bytes())
    );
    println!(
        "total {:.2?} (of which {:.2?} the driver spent finding moved frames with slot_addr)",
        t0.elapsed(),
        d.resync
    );
}
