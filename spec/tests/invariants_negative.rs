//! Teeth for the invariant checker: for every rule it names
//! ([`gostack_spec::invariants::INVARIANTS`]), a valid state corrupted in
//! exactly the way that rule forbids must be reported under that rule's
//! name. So no rule can be switched off, or made vacuous, unnoticed; a
//! last test checks that every named rule has its case here.

use gostack_spec::goroutine::{Func, Site, Slot};
use gostack_spec::invariants::INVARIANTS;
use gostack_spec::{check_invariants, Config, Ctx, GcPhase, Profile, State};

const K: u64 = 1024;

/// A valid state with a little of everything: P 0, a goroutine `run`
/// two frames deep, a goroutine `parked` receiving on a channel (a
/// sudog), a dead goroutine on P 0's free list, an M, and pool spans with
/// free stacks.
struct Rich {
    s: State,
    run: u32,
    parked: u32,
    dead: u32,
    sudog: u32,
}

fn state(efence: bool) -> State {
    let mut c = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
    c.arena_bytes = 16 << 20;
    c.godebug.efence = efence;
    State::new(c).unwrap()
}

fn rich() -> Rich {
    let mut s = state(false);
    let p = s.create_p().unwrap();
    let ctx = Ctx::on(p);
    let mut f = Func::new("f", 4 * 8 + 8);
    f.sites = vec![Site {
        locals: vec![true; 4],
        args: vec![],
    }];
    let f = s.add_func(f).unwrap();
    let run = s.spawn(ctx, f).unwrap();
    s.call(ctx, run, 0, f).unwrap();
    let parked = s.spawn(ctx, f).unwrap();
    let c = s.make_chan(8).unwrap();
    let slot = s.slot_addr(parked, 0, Slot::Local(1)).unwrap();
    s.park(parked, &[(c, slot)]).unwrap();
    let sudog = s.gor.gs[&parked].waiting[0];
    let dead = s.spawn(ctx, f).unwrap();
    s.exit(ctx, dead).unwrap();
    s.create_m(ctx).unwrap();
    let a = s.stackalloc(Ctx::no_p(), 2 * K).unwrap();
    let _keep = s.stackalloc(Ctx::no_p(), 2 * K).unwrap();
    s.stackfree(Ctx::no_p(), a).unwrap();
    let big = s.stackalloc(ctx, 64 * K).unwrap();
    let _ = big;
    check_invariants(&s).expect("the rich state is valid");
    Rich {
        s,
        run,
        parked,
        dead,
        sudog,
    }
}

/// A pool span's base (order 0, in the pool list).
fn pool_span(s: &State) -> u64 {
    s.stackpool[0][0]
}

/// Corrupts a copy of a valid state with `f`; the checker must name
/// `rule`.
fn expect(rule: &str, base: &State, f: impl FnOnce(&mut State)) {
    let mut s = base.clone();
    f(&mut s);
    match check_invariants(&s) {
        Ok(()) => panic!("{rule}: the corruption went unnoticed"),
        Err(v) => assert_eq!(v.name, rule, "{rule}: reported as {v}"),
    }
}

/// A rule's name and the test that corrupts a state against it.
type Case = (&'static str, Box<dyn Fn()>);

/// Every rule, with the corruption that breaks it.
fn cases() -> Vec<Case> {
    vec![
        (
            "heap-tiling",
            Box::new(|| {
                let r = rich();
                expect("heap-tiling", &r.s, |s| {
                    let (&first, _) = s.heap.free.iter().next().unwrap();
                    s.heap.free.remove(&first);
                });
            }),
        ),
        (
            "heap-growth",
            Box::new(|| {
                let r = rich();
                expect("heap-growth", &r.s, |s| {
                    s.heap.mapped_pages = s.heap.arena_pages + 512;
                });
            }),
        ),
        (
            "span-shape",
            Box::new(|| {
                let r = rich();
                expect("span-shape", &r.s, |s| {
                    let b = pool_span(s);
                    s.heap.spans.get_mut(&b).unwrap().elemsize = 3 * K;
                });
            }),
        ),
        (
            "pool-span-count",
            Box::new(|| {
                let r = rich();
                expect("pool-span-count", &r.s, |s| {
                    let b = pool_span(s);
                    s.heap.spans.get_mut(&b).unwrap().alloc_count += 1;
                });
            }),
        ),
        (
            "pool-list",
            Box::new(|| {
                let r = rich();
                expect("pool-list", &r.s, |s| {
                    s.stackpool[0].clear();
                });
            }),
        ),
        (
            "pool-empty-spans",
            Box::new(|| {
                // An empty pool span kept in its list during a GC, then the GC
                // turned off without freeStackSpans being owed.
                let mut s = state(false);
                let a = s.stackalloc(Ctx::no_p(), 2 * K).unwrap();
                s.gc_start().unwrap();
                s.stackfree(Ctx::no_p(), a).unwrap();
                s.gc_mark_termination().unwrap();
                s.gc_off().unwrap();
                check_invariants(&s).unwrap();
                expect("pool-empty-spans", &s, |s| s.spans_pending_free = false);
            }),
        ),
        (
            "stack-large",
            Box::new(|| {
                let r = rich();
                expect("stack-large", &r.s, |s| {
                    let b = pool_span(s);
                    s.stack_large.entry(2).or_default().push(b);
                });
            }),
        ),
        (
            "cache",
            Box::new(|| {
                let r = rich();
                expect("cache", &r.s, |s| {
                    s.ps.get_mut(&0).unwrap().stackcache[0].size += 2 * K;
                });
            }),
        ),
        (
            "ownership",
            Box::new(|| {
                let r = rich();
                expect("ownership", &r.s, |s| {
                    let (&lo, _) = s.in_use.iter().find(|(_, &n)| n == 64 * K).unwrap();
                    s.in_use.remove(&lo);
                });
            }),
        ),
        (
            "stack-inuse",
            Box::new(|| {
                let r = rich();
                expect("stack-inuse", &r.s, |s| s.heap.stack_inuse += 8 * K);
            }),
        ),
        (
            "sys-stacks",
            Box::new(|| {
                let mut s = state(true);
                s.stackalloc(Ctx::no_p(), 2 * K).unwrap();
                check_invariants(&s).unwrap();
                expect("sys-stacks", &s, |s| s.sys.stacks_sys += 4 * K);
            }),
        ),
        (
            "markers",
            Box::new(|| {
                let r = rich();
                expect("markers", &r.s, |s| {
                    let b = pool_span(s);
                    s.markers.insert(0, b);
                });
            }),
        ),
        (
            "gc-pending",
            Box::new(|| {
                let mut s = state(false);
                s.gc_start().unwrap();
                expect("gc-pending", &s, |s| s.spans_pending_free = true);
            }),
        ),
        (
            "g-stack",
            Box::new(|| {
                let r = rich();
                let g = r.run;
                expect("g-stack", &r.s, |s| {
                    let gr = s.gor.gs.get_mut(&g).unwrap();
                    gr.stackguard0 = gr.stack.lo + 8;
                });
            }),
        ),
        (
            "g-frames",
            Box::new(|| {
                let r = rich();
                let g = r.run;
                expect("g-frames", &r.s, |s| {
                    s.gor.gs.get_mut(&g).unwrap().stktopsp -= 8;
                });
            }),
        ),
        (
            "g-fp",
            Box::new(|| {
                let r = rich();
                let g = r.run;
                expect("g-fp", &r.s, |s| {
                    s.gor.gs.get_mut(&g).unwrap().bp += 8;
                });
            }),
        ),
        (
            "m-stack",
            Box::new(|| {
                let r = rich();
                expect("m-stack", &r.s, |s| {
                    let m = s.gor.ms.get_mut(&0).unwrap();
                    m.g0 = m.gsignal;
                });
            }),
        ),
        (
            "g-dead",
            Box::new(|| {
                let r = rich();
                let g = r.dead;
                expect("g-dead", &r.s, |s| s.gor.sched_gfree_nostack.push(g));
            }),
        ),
        (
            "g-park",
            Box::new(|| {
                let r = rich();
                let g = r.run;
                expect("g-park", &r.s, |s| {
                    s.gor.gs.get_mut(&g).unwrap().active_stack_chans = true;
                });
            }),
        ),
        (
            "sudog",
            Box::new(|| {
                let r = rich();
                let (g, sid) = (r.parked, r.sudog);
                expect("sudog", &r.s, |s| {
                    let lo = s.gor.gs[&g].stack.lo;
                    s.gor.sudogs.get_mut(&sid).unwrap().elem = lo;
                });
            }),
        ),
    ]
}

#[test]
fn every_rule_catches_its_corruption() {
    for (rule, case) in cases() {
        eprintln!("{rule}");
        case();
    }
}

#[test]
fn every_rule_has_a_case() {
    let covered: Vec<&str> = cases().into_iter().map(|(r, _)| r).collect();
    for (name, _) in INVARIANTS {
        assert!(covered.contains(name), "no corruption test for rule {name}");
    }
    assert_eq!(covered.len(), INVARIANTS.len());
}

/// The rich state holds what the corruptions rely on (and `rich` checks
/// that it is valid before any corruption).
#[test]
fn the_rich_state_has_everything() {
    let r = rich();
    let s = &r.s;
    assert_eq!(s.gcphase, GcPhase::Off);
    assert_eq!(s.gor.gs[&r.parked].waiting, vec![r.sudog]);
    assert_eq!(s.gor.p_gfree[&0], vec![r.dead]);
    assert_eq!(s.gor.ms.len(), 1);
    assert!(s.frames(r.run).unwrap().len() >= 2);
    let span = &s.heap.spans[&pool_span(s)];
    assert!(!span.free_list.is_empty() && span.alloc_count > 0);
    assert!(s.in_use.values().any(|&n| n == 64 * K));
}
