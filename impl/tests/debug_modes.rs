//! Go's stack debug modes in the implementation (`Config::stack_from_system`,
//! `Config::stack_fault_on_free`, `Config::no_cache`, and the
//! implementation's own `gostack::stack::DebugOptions`): stacks from the
//! system, fault on free, no cache. (`GODEBUG=efence=1` is checked against
//! the spec by the differential harness, models/tests.)
//!
//! Each mode is checked for working allocation, freeing and reuse, for
//! refusing bad frees without changing anything, and for leaking nothing.
//! Where a mode keeps the arena's policies (`no_cache`, `fault_on_free`)
//! the implementation is run against the spec's `State` and every result
//! and snapshot must be equal. Whether freed pages
//! are really protected is read from `/proc/self/maps`, and that touching
//! them really faults is shown in a child process (this test binary run
//! again with `GOSTACK_DEBUG_CHILD` set), which must die of SIGSEGV, while
//! the same touch without the mode must not.

use gostack::stack::DebugOptions;
use gostack::Stacks;
use gostack_spec::{Config, Ctx, GcPhase, Misuse, Profile, Stack, State, Throw};
use std::process::Command;

const K: u64 = 1024;
const CHILD: &str = "GOSTACK_DEBUG_CHILD";

fn config(arena: u64) -> Config {
    let mut c = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
    c.arena_bytes = arena;
    c
}

fn from_system(fault_on_free: bool) -> Stacks {
    from_system_in(4 << 20, fault_on_free)
}

/// `stackFromSystem` (with `stackFaultOnFree` if `fault_on_free`) over an
/// arena of `arena` bytes, whose region for stacks from the system is as
/// large.
fn from_system_in(arena: u64, fault_on_free: bool) -> Stacks {
    let mut c = config(arena);
    c.stack_from_system = true;
    c.stack_fault_on_free = fault_on_free;
    Stacks::new(&c).unwrap()
}

/// The permissions (`rw-p`, `---p`, ...) of the mapping that holds `addr`,
/// from /proc/self/maps.
fn perms(addr: u64) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (lo, hi) = f.next()?.split_once('-')?;
        let (lo, hi) = (
            u64::from_str_radix(lo, 16).ok()?,
            u64::from_str_radix(hi, 16).ok()?,
        );
        (lo <= addr && addr < hi).then(|| f.next().unwrap_or("").to_string())
    })
}

fn protected(addr: u64) -> bool {
    perms(addr).is_some_and(|p| p.starts_with("---"))
}

// ---- from_system ----------------------------------------------------------

#[test]
fn from_system_allocates_rounds_and_frees() {
    let s = from_system(false);
    let mut p = s.new_p();
    // Go rounds every size up to the OS page: a 2 KiB stack is 4 KiB.
    let a = s.stackalloc(Some(&mut p), false, 2 * K).unwrap();
    assert_eq!(a.hi - a.lo, 4 * K);
    assert_eq!(a.lo % (4 * K), 0);
    let b = s.stackalloc(None, false, 8 * K).unwrap();
    assert_eq!(b.hi - b.lo, 8 * K);
    let big = s.stackalloc(None, true, 1 << 20).unwrap();
    assert_eq!(big.hi - big.lo, 1 << 20);
    // In the region above the arena, in no span, not cached.
    for stk in [a, b, big] {
        assert!(stk.lo >= s.base() + (4 << 20) && stk.hi <= s.base() + (8 << 20));
    }
    assert_eq!(p.cached_bytes(), 0);
    // Real memory, read and written through the allocator.
    assert!(s.store_word(a.hi - 8, 0x1234));
    assert!(s.store_word(big.lo, 7));
    assert_eq!(s.load_word(a.hi - 8), Some(0x1234));
    assert_eq!(s.load_word(big.lo), Some(7));
    let snap = s.snapshot(&[&p]);
    assert!(snap.spans.is_empty() && snap.in_use.len() == 3);
    assert_eq!(snap.stats.stack_inuse, 0);
    assert_eq!(snap.stats.stack_sys, 4 * K + 8 * K + (1 << 20));
    let st = s.system_stats().unwrap();
    assert_eq!((st.live, st.live_bytes), (3, 4 * K + 8 * K + (1 << 20)));
    // Frees ignore the GC phase (Go returns before the pool paths).
    s.gc_start().unwrap();
    s.stackfree(Some(&mut p), false, a).unwrap();
    s.stackfree(None, false, big).unwrap();
    assert_eq!(s.gcphase(), GcPhase::Mark);
    s.stackfree(None, false, b).unwrap();
    // Given back (sysFree): the memory reads as zero.
    assert_eq!(s.load_word(a.lo), Some(0));
    assert_eq!(s.load_word(big.lo), Some(0));
    assert_eq!(s.system_stats().unwrap(), Default::default());
    assert_eq!(s.snapshot(&[&p]).stats.stack_sys, 0);
    // Reuse: new stacks come and go.
    for i in 0..200u64 {
        let stk = s
            .stackalloc(Some(&mut p), false, (2 * K) << (i % 4))
            .unwrap();
        assert!(s.store_word(stk.lo, i));
        s.stackfree(Some(&mut p), false, stk).unwrap();
    }
    assert_eq!(s.system_stats().unwrap(), Default::default());
}

#[test]
fn from_system_refuses_bad_frees_and_changes_nothing() {
    for fault in [false, true] {
        let s = from_system(fault);
        let mut p = s.new_p();
        let a = s.stackalloc(Some(&mut p), false, 8 * K).unwrap();
        let b = s.stackalloc(None, false, 64 * K).unwrap();
        let heap = s.heap_alloc(1).unwrap();
        let gone = s.stackalloc(None, false, 4 * K).unwrap();
        s.stackfree(None, false, gone).unwrap();
        let before = (s.system_stats(), s.snapshot(&[&p]));
        let not_a_stack = |stk: Stack| -> Throw {
            Misuse::NotAStack {
                lo: stk.lo,
                hi: stk.hi,
            }
            .into()
        };
        let bad = [
            gone, // double free
            Stack {
                lo: a.lo,
                hi: a.lo + 4 * K,
            }, // wrong size
            Stack {
                lo: a.lo + 4 * K,
                hi: a.hi + 4 * K,
            }, // interior
            Stack {
                lo: b.lo,
                hi: b.lo + 128 * K,
            }, // too big
            Stack {
                lo: heap,
                hi: heap + 8 * K,
            }, // the arena's heap
            Stack { lo: 0, hi: 4 * K }, // foreign
            Stack {
                lo: u64::MAX - 4095,
                hi: u64::MAX,
            },
        ];
        for stk in bad {
            let want = if (stk.hi.wrapping_sub(stk.lo)).is_power_of_two() {
                not_a_stack(stk)
            } else {
                gostack_spec::GoThrow::StackNotPowerOf2.into()
            };
            assert_eq!(s.stackfree(Some(&mut p), false, stk), Err(want.clone()));
            assert_eq!(s.stackfree(None, true, stk), Err(want));
            assert_eq!((s.system_stats(), s.snapshot(&[&p])), before, "{stk:x?}");
        }
        // Bad sizes are refused before anything is mapped.
        assert!(s.stackalloc(None, false, 3 * K).is_err());
        assert!(s.stackalloc(None, false, K).is_err());
        assert!(s.stackalloc(None, false, 1 << 33).is_err());
        assert_eq!((s.system_stats(), s.snapshot(&[&p])), before);
        // A P of another allocator is refused.
        let other = from_system(fault);
        let mut q = other.new_p();
        assert_eq!(
            s.stackfree(Some(&mut q), false, a),
            Err(Misuse::NoSuchP(q.id()).into())
        );
        s.stackfree(Some(&mut p), false, a).unwrap();
        s.stackfree(None, false, b).unwrap();
        let st = s.system_stats().unwrap();
        assert_eq!((st.live, st.live_bytes), (0, 0));
        if fault {
            // Faulted stacks stay reserved and are counted as Go counts
            // them (stacks_sys), never reused.
            assert_eq!(st.faulted, 3);
            assert_eq!(st.faulted_bytes, 4 * K + 8 * K + 64 * K);
            assert_eq!(st.unprotected, 0);
            assert!(protected(a.lo) && protected(b.hi - 8) && protected(gone.lo));
            for _ in 0..32 {
                let c = s.stackalloc(None, false, 8 * K).unwrap();
                assert!(c.hi <= a.lo || c.lo >= a.hi);
                s.stackfree(None, false, c).unwrap();
            }
        } else {
            assert_eq!(st, Default::default());
        }
    }
}

// ---- no_cache ---------------------------------------------------------------

/// Applies one operation to the spec and the implementation; results (as
/// offsets) must agree.
struct Pair {
    spec: State,
    imp: Stacks,
    ps: Vec<gostack::P>,
    held: Vec<(Stack, Stack)>,
}

impl Pair {
    fn new(config: Config, debug: DebugOptions) -> Pair {
        Pair {
            spec: State::new(config.clone()).unwrap(),
            imp: Stacks::with_debug(&config, debug).unwrap(),
            ps: Vec::new(),
            held: Vec::new(),
        }
    }

    fn off(&self, stk: Stack) -> Stack {
        Stack {
            lo: stk.lo - self.imp.base(),
            hi: stk.hi - self.imp.base(),
        }
    }

    fn spec_off(&self, stk: Stack) -> Stack {
        let b = self.spec.config.arena_base;
        Stack {
            lo: stk.lo - b,
            hi: stk.hi - b,
        }
    }

    fn add_p(&mut self) {
        let id = self.spec.create_p().unwrap();
        let p = self.imp.new_p();
        assert_eq!(id, p.id());
        self.ps.push(p);
    }

    fn alloc(&mut self, p: Option<usize>, n: u64) {
        let ctx = match p {
            Some(i) => Ctx::on(i as u32),
            None => Ctx::no_p(),
        };
        let want = self.spec.stackalloc(ctx, n);
        let got = self.imp.stackalloc(p.map(|i| &mut self.ps[i]), false, n);
        match (want, got) {
            (Ok(w), Ok(g)) => {
                assert_eq!(self.spec_off(w), self.off(g));
                self.held.push((w, g));
            }
            (w, g) => {
                assert_eq!(w.err(), g.err());
                // `Stacks` is an allocator, not a runtime: a throw changes
                // nothing there and it goes on. The spec kept its state
                // from before the throw, so it is revived to go on too.
                self.spec.dead = None;
            }
        }
    }

    fn free(&mut self, p: Option<usize>, i: usize) {
        if self.held.is_empty() {
            return;
        }
        let (w, g) = self.held.swap_remove(i % self.held.len());
        let ctx = match p {
            Some(i) => Ctx::on(i as u32),
            None => Ctx::no_p(),
        };
        assert_eq!(self.spec.stackfree(ctx, w), Ok(()));
        assert_eq!(
            self.imp.stackfree(p.map(|i| &mut self.ps[i]), false, g),
            Ok(())
        );
    }

    fn check(&self) {
        let ps: Vec<&gostack::P> = self.ps.iter().collect();
        assert_eq!(self.imp.snapshot(&ps), self.spec.snapshot());
        gostack_spec::check_invariants(&self.spec).unwrap();
    }

    /// A seeded mix of allocations and frees of every size class, with
    /// and without Ps, across GC cycles.
    fn churn(&mut self, steps: u64, seed: u64) {
        let mut x = seed;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..steps {
            let r = rnd();
            let who = match r % 4 {
                0 => None,
                k => Some((k as usize - 1) % self.ps.len()),
            };
            match (r >> 8) % 16 {
                0..=6 => self.alloc(who, (2 * K) << ((r >> 16) % 7)),
                7..=13 => self.free(who, (r >> 24) as usize),
                14 if self.spec.gcphase == GcPhase::Off => {
                    assert_eq!(self.spec.gc_start(), self.imp.gc_start());
                }
                _ if self.spec.gcphase != GcPhase::Off => {
                    assert_eq!(self.spec.gc_end(), {
                        let mut ps: Vec<&mut gostack::P> = self.ps.iter_mut().collect();
                        self.imp.gc_end(&mut ps)
                    });
                }
                _ => {}
            }
            self.check();
        }
    }
}

#[test]
fn no_cache_is_honoured_and_equals_the_spec() {
    let mut c = config(8 << 20);
    c.no_cache = true;
    let mut pair = Pair::new(c, DebugOptions::default());
    pair.add_p();
    pair.add_p();
    pair.alloc(Some(0), 2 * K);
    // No cache: the P's lists stay empty, the stack came from the pool.
    assert_eq!(pair.ps[0].cached_bytes(), 0);
    pair.free(Some(0), 0);
    assert_eq!(pair.ps[0].cached_bytes(), 0);
    pair.check();
    pair.churn(3000, 0x5eed);
    while !pair.held.is_empty() {
        pair.free(Some(1), 0);
    }
    pair.check();
    assert!(pair.ps.iter().all(|p| p.cached_bytes() == 0));
}

/// stackFromSystem with sysFree, with sysFault (stackFaultOnFree), and
/// GODEBUG=efence=1: the implementation places, frees and counts stacks
/// exactly as the spec (snapshots equal after every step, allocation
/// failures with the same throw).
#[test]
fn stacks_from_the_system_equal_the_spec() {
    for (from_system, fault, efence) in [
        (true, false, false),
        (true, true, false),
        (false, false, true),
    ] {
        let mut c = config(4 << 20);
        c.stack_from_system = from_system;
        c.stack_fault_on_free = fault;
        c.godebug.efence = efence;
        let mut pair = Pair::new(c, DebugOptions::default());
        pair.add_p();
        pair.add_p();
        pair.churn(3000, 0x5eed);
        // Large requests until the region is full: the same throw.
        for _ in 0..8 {
            pair.alloc(None, 1 << 20);
        }
        pair.check();
        while !pair.held.is_empty() {
            pair.free(Some(1), 0);
        }
        pair.check();
        let st = pair.imp.system_stats().unwrap();
        assert_eq!(st.live, 0);
        assert_eq!(st.faulted > 0, fault || efence);
    }
}

// ---- fault_on_free in the arena ---------------------------------------------

fn arena_fault(arena: u64) -> Stacks {
    Stacks::with_debug(
        &config(arena),
        DebugOptions {
            fault_on_free: true,
        },
    )
    .unwrap()
}

#[test]
fn arena_fault_on_free_keeps_the_spec_policies() {
    let mut pair = Pair::new(
        config(16 << 20),
        DebugOptions {
            fault_on_free: true,
        },
    );
    pair.add_p();
    pair.add_p();
    pair.churn(4000, 0xfa17);
    while !pair.held.is_empty() {
        pair.free(None, 0);
    }
    pair.check();
    assert_eq!(pair.imp.unprotected_frees(), 0);
}

#[test]
fn arena_fault_on_free_protects_what_goes_back() {
    let s = arena_fault(8 << 20);
    let mut p = s.new_p();
    // A large stack freed with the GC off goes back to the heap: protected.
    let big = s.stackalloc(None, false, 64 * K).unwrap();
    assert!(s.store_word(big.lo, 1));
    assert!(!protected(big.lo));
    s.stackfree(None, false, big).unwrap();
    assert!(protected(big.lo) && protected(big.hi - 8));
    // Carving a span from those pages makes them accessible again.
    let again = s.stackalloc(None, false, 64 * K).unwrap();
    assert_eq!(again, big);
    assert!(!protected(again.lo));
    assert_eq!(s.load_word(again.lo), Some(0));
    // Freed during a GC it waits in stackLarge, protected, and is
    // unprotected when reused from there.
    s.gc_start().unwrap();
    s.stackfree(None, false, again).unwrap();
    assert!(protected(again.lo));
    let from_large = s.stackalloc(None, false, 64 * K).unwrap();
    assert_eq!(from_large, again);
    assert!(!protected(from_large.lo));
    s.stackfree(None, false, from_large).unwrap();
    s.gc_end(&mut []).unwrap();
    assert!(protected(from_large.lo));
    // A small stack sits on a free list (its first word is the link): not
    // protected until its whole span goes back to the heap.
    let a = s.stackalloc(Some(&mut p), false, 2 * K).unwrap();
    let b = s.stackalloc(None, false, 2 * K).unwrap();
    s.stackfree(None, false, b).unwrap();
    assert!(!protected(b.lo));
    s.stackfree(Some(&mut p), false, a).unwrap();
    assert!(!protected(a.lo));
    s.stackcache_clear(&mut p).unwrap();
    assert!(protected(a.lo) && protected(b.lo));
    // Bad frees are still refused and change nothing.
    let before = s.snapshot(&[&p]);
    assert!(s.stackfree(None, false, a).is_err());
    assert!(s.stackfree(None, false, big).is_err());
    assert_eq!(s.snapshot(&[&p]), before);
    // Nothing leaks.
    let snap = s.snapshot(&[&p]);
    assert!(snap.spans.is_empty());
    assert_eq!(snap.free_runs, vec![(0, 512)]);
    assert_eq!(s.unprotected_frees(), 0);
}

// ---- touching freed stacks, in a child process ------------------------------

/// What a child does: allocate, write, free, touch. It prints `touching`
/// just before the touch and `survived` after it.
fn child(mode: &str) {
    let (s, n) = match mode {
        "arena-fault-large" | "arena-plain-large" => (
            if mode == "arena-fault-large" {
                arena_fault(8 << 20)
            } else {
                Stacks::new(&config(8 << 20)).unwrap()
            },
            64 * K,
        ),
        "arena-fault-small" | "arena-plain-small" => (
            if mode == "arena-fault-small" {
                arena_fault(8 << 20)
            } else {
                Stacks::new(&config(8 << 20)).unwrap()
            },
            2 * K,
        ),
        "system-fault" => (from_system(true), 8 * K),
        "system-plain" => (from_system(false), 8 * K),
        _ => panic!("unknown child mode {mode}"),
    };
    let stk = s.stackalloc(None, false, n).unwrap();
    assert!(s.store_word(stk.lo + 8, 0xfeed));
    s.stackfree(None, false, stk).unwrap();
    println!("touching");
    let v = s.load_word(stk.lo + 8);
    println!("survived {v:?}");
}

/// Runs `mode` in a child process; returns (killed by SIGSEGV, stdout).
fn run_child(test: &str, mode: &str) -> (bool, String, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, mode)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    use std::os::unix::process::ExitStatusExt;
    // SIGSEGV kills the child; under AddressSanitizer its handler reports
    // the SEGV and exits with an error instead.
    let segv = out.status.signal() == Some(11)
        || (!out.status.success() && stderr.contains("AddressSanitizer: SEGV"));
    (segv, stdout, stderr)
}

#[test]
fn touching_a_freed_stack_faults_only_in_fault_on_free_mode() {
    if let Ok(mode) = std::env::var(CHILD) {
        child(&mode);
        return;
    }
    let me = "touching_a_freed_stack_faults_only_in_fault_on_free_mode";
    for (fault, plain, plain_reads) in [
        ("arena-fault-large", "arena-plain-large", "Some(0)"),
        ("arena-fault-small", "arena-plain-small", "Some(0)"),
        ("system-fault", "system-plain", "Some(0)"),
    ] {
        let (segv, out, err) = run_child(me, fault);
        assert!(
            out.contains("touching") && !out.contains("survived") && segv,
            "{fault}: the touch did not fault\n{out}\n{err}"
        );
        let (segv, out, err) = run_child(me, plain);
        assert!(
            !segv && out.contains(&format!("survived {plain_reads}")),
            "{plain}: the touch should not fault\n{out}\n{err}"
        );
    }
}

// ---- the kernel's map count limit, in a child process -----------------------

/// Fills the kernel's map table (`vm.max_map_count`) with protected
/// ranges: every other stack freed, so that each faulted range splits a
/// mapping. Past the limit the kernel refuses `mprotect`; frees must still
/// succeed, be counted as unprotected, and change the allocator exactly as
/// without the mode.
fn map_limit_child(mode: &str) {
    let max: u64 = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Twice the limit's worth of stacks: freeing every other one makes
    // about as many ranges as the limit allows, and then some.
    let count = max * 2 + 4096;
    match mode {
        "limit-system" => {
            // A region large enough for every stack.
            let s = from_system_in(1 << 30, true);
            let mut held = Vec::new();
            let mut oom = 0;
            for _ in 0..count {
                match s.stackalloc(None, false, 4 * K) {
                    Ok(stk) => held.push(stk),
                    Err(e) => {
                        assert_eq!(e, Throw::Go(gostack_spec::GoThrow::OutOfMemoryStackalloc));
                        oom += 1;
                    }
                }
            }
            let mut freed = 0;
            for stk in held.iter().step_by(2) {
                s.stackfree(None, false, *stk).unwrap();
                freed += 1;
            }
            let st = s.system_stats().unwrap();
            println!(
                "limit-system: {} stacks, {oom} refused, {freed} freed: {st:?}",
                held.len()
            );
            assert_eq!(st.faulted, freed);
            assert!(st.unprotected > 0, "the limit was never reached: {st:?}");
            assert_eq!(s.unprotected_frees(), st.unprotected);
            // A double free of an unprotected stack (the last ones freed,
            // past the limit) is still refused.
            let before = s.system_stats();
            let last = (held.len() - 1) & !1;
            assert!(s.stackfree(None, false, held[last]).is_err());
            assert_eq!(s.system_stats(), before);
            for stk in held.iter().skip(1).step_by(2) {
                s.stackfree(None, false, *stk).unwrap();
            }
            assert_eq!(s.system_stats().unwrap().live, 0);
            println!("limit-system ok");
        }
        "limit-arena" => {
            // 32 KiB stacks take the large path on linux/amd64 and go back
            // to the heap when freed with the GC off.
            let n = 32 * K;
            let arena = ((count * n).div_ceil(4 << 20) * (4 << 20)).max(4 << 30);
            let s = arena_fault(arena);
            let plain = Stacks::new(&config(arena)).unwrap();
            let mut held = Vec::new();
            for _ in 0..count {
                let a = s.stackalloc(None, false, n).unwrap();
                let b = plain.stackalloc(None, false, n).unwrap();
                assert_eq!(a.lo - s.base(), b.lo - plain.base());
                held.push((a, b));
            }
            for (a, b) in held.iter().step_by(2) {
                s.stackfree(None, false, *a).unwrap();
                plain.stackfree(None, false, *b).unwrap();
            }
            let unprotected = s.unprotected_frees();
            println!("limit-arena: {count} stacks, every other freed, {unprotected} unprotected");
            assert!(unprotected > 0, "the limit was never reached");
            // Nothing below allocates memory until the map count is down
            // again (at the limit, even malloc and AddressSanitizer's shadow
            // memory cannot map). Free the rest: every free succeeds.
            for (a, b) in held.iter().skip(1).step_by(2) {
                s.stackfree(None, false, *a).unwrap();
                plain.stackfree(None, false, *b).unwrap();
            }
            // Two 2 GiB stacks over the fragmented pages: making them
            // accessible again merges the mappings back.
            let big: Vec<_> = (0..2)
                .map(|_| {
                    let a = s.stackalloc(None, false, 2 << 30).unwrap();
                    let b = plain.stackalloc(None, false, 2 << 30).unwrap();
                    assert_eq!(a.lo - s.base(), b.lo - plain.base());
                    (a, b)
                })
                .collect();
            assert!(s.store_word(big[1].0.hi - 8, 1));
            assert_eq!(s.snapshot(&[]), plain.snapshot(&[]));
            for (a, b) in big {
                s.stackfree(None, false, a).unwrap();
                plain.stackfree(None, false, b).unwrap();
            }
            assert_eq!(s.snapshot(&[]), plain.snapshot(&[]));
            assert!(s.snapshot(&[]).spans.is_empty());
            println!("limit-arena ok");
        }
        _ => panic!("unknown mode {mode}"),
    }
}

#[test]
fn fault_on_free_past_the_map_count_limit() {
    if let Ok(mode) = std::env::var(CHILD) {
        map_limit_child(&mode);
        return;
    }
    let me = "fault_on_free_past_the_map_count_limit";
    for mode in ["limit-system", "limit-arena"] {
        let (segv, out, err) = run_child(me, mode);
        assert!(
            !segv && out.contains(&format!("{mode} ok")),
            "{mode}:\n{out}\n{err}"
        );
        println!(
            "{}",
            out.lines()
                .find(|l| l.contains("unprotected"))
                .unwrap_or("")
        );
    }
}
