//! Random programs over goroutines: calls, returns, pointer writes, parks,
//! sends, wake-ups, GC scans, preemption and forced moves, syscalls,
//! defers, exits. After every step `check_invariants` holds, a failed step
//! changes nothing, and every goroutine's used stack, read with pointers
//! into its own stack written as offsets from the top, is exactly what the
//! step should leave: unchanged for goroutines the step does not touch
//! (whether or not their stacks moved), extended by the new frame on a
//! call, shortened on a return, one word different on a write. That is
//! copystack's contract: every pointer slot that pointed into the old stack
//! points to the same offset in the new one, and no other word changed.
//!
//! Default: 128 programs of up to 150 steps over six profiles (amd64,
//! 386 and arm64, with windows' and ios's StackSystem; arm64 at Go 1.23,
//! since Go 1.19 leaves arm64's saved frame pointers unadjusted, which
//! `go119_arm64_leaves_saved_frame_pointers` pins);
//! `PROPTEST_CASES` raises the count.

use gostack_spec::goroutine::{Func, GSnap, GStatus, Site, Slot, StackObject};
use gostack_spec::{check_invariants, Config, Ctx, GcPhase, Profile, State};
use proptest::prelude::*;
use std::collections::BTreeMap;

const PROFILES: &[(&str, &str)] = &[
    ("linux/amd64", "1.23"),
    ("linux/arm64", "1.23"),
    ("ios/arm64", "1.23"),
    ("linux/386", "1.19"),
    ("windows/amd64", "1.23"),
    ("windows/386", "1.19"),
];

/// A value written into a slot.
#[derive(Clone, Debug)]
enum Val {
    /// The address of local `w` of frame `f` (a pointer into the stack).
    StackPtr(usize, usize),
    /// A heap pointer (outside the arena).
    Heap(u32),
    Nil,
}

#[derive(Clone, Debug)]
enum Op {
    Spawn(usize),
    Call(usize, usize, usize),
    Ret(usize),
    Write(usize, usize, usize, Val),
    Park(usize, usize, usize),
    Send(usize, u32),
    Wake(usize),
    Scan(usize),
    GcStart,
    GcEnd,
    Preempt(usize),
    ForceMove(usize),
    Syscall(usize, bool),
    Defer(usize, usize, bool),
    DeferPop(usize),
    Exit(usize),
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        4 => (0usize..8, 0usize..16).prop_map(|(f, w)| Val::StackPtr(f, w)),
        1 => any::<u32>().prop_map(Val::Heap),
        1 => Just(Val::Nil),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let g = 0usize..6;
    prop_oneof![
        3 => (0usize..6).prop_map(Op::Spawn),
        20 => (g.clone(), 0usize..6, 0usize..2).prop_map(|(g, f, s)| Op::Call(g, f, s)),
        16 => g.clone().prop_map(Op::Ret),
        20 => (g.clone(), 0usize..4, 0usize..16, val()).prop_map(|(g, f, w, v)| Op::Write(g, f, w, v)),
        2 => (g.clone(), 0usize..3, 0usize..16).prop_map(|(g, c, w)| Op::Park(g, c, w)),
        3 => (0usize..3, any::<u32>()).prop_map(|(c, v)| Op::Send(c, v)),
        3 => g.clone().prop_map(Op::Wake),
        8 => g.clone().prop_map(Op::Scan),
        2 => Just(Op::GcStart),
        2 => Just(Op::GcEnd),
        2 => g.clone().prop_map(Op::Preempt),
        3 => g.clone().prop_map(Op::ForceMove),
        2 => (g.clone(), any::<bool>()).prop_map(|(g, b)| Op::Syscall(g, b)),
        2 => (g.clone(), 0usize..3, any::<bool>()).prop_map(|(g, f, h)| Op::Defer(g, f, h)),
        1 => g.clone().prop_map(Op::DeferPop),
        1 => g.prop_map(Op::Exit),
    ]
}

/// The function table: frames around the split thresholds, every local a
/// pointer slot (so that writes of stack pointers are always live), some
/// with a stack object big enough for a defer record.
fn funcs(s: &mut State) -> Vec<usize> {
    let p = s.consts.ptr_size;
    let arch = s.config.profile.goarch.name();
    let mut out = Vec::new();
    for (i, words) in [2u64, 16, 40, 130, 600, 16].iter().enumerate() {
        let frame = match arch {
            "amd64" => words * p + p,
            "arm64" => (words * p + 2 * p).next_multiple_of(16),
            _ => words * p,
        };
        let mut f = Func::new(&format!("f{i}"), frame);
        let site = Site {
            locals: vec![true; *words as usize],
            args: vec![],
        };
        f.sites = vec![site.clone(), site];
        if *words >= 16 {
            f.objects.push(StackObject {
                off: -(4 * p as i64),
                size: 3 * p,
                ptrs: vec![true; 3],
            });
        }
        if i == 5 {
            f.nosplit = true;
        }
        out.push(s.add_func(f).unwrap());
    }
    out
}

struct World {
    s: State,
    p: u32,
    fs: Vec<usize>,
    gs: Vec<u32>,
    chans: Vec<u32>,
}

fn pick<T: Copy>(v: &[T], i: usize) -> Option<T> {
    (!v.is_empty()).then(|| v[i % v.len()])
}

/// What a step may change in goroutine `g`'s used stack.
enum Expect {
    Same,
    Grew(u32),
    Shrank(u32),
    Wrote(u32, Vec<u64>),
    Gone(u32),
}

/// Local `word` of frame `frame` (both taken modulo what exists): the
/// frame index, the slot, and its address.
fn local(w: &World, g: u32, frame: usize, word: usize) -> Option<(usize, Slot, u64)> {
    let frames = w.s.frames(g).ok()?;
    let fi = frame % frames.len();
    let fr = &frames[fi];
    fr.site?;
    let n = w.s.gor.funcs[fr.func].sites[0].locals.len();
    let slot = Slot::Local(word % n);
    Some((fi, slot, w.s.slot_addr(g, fi, slot).ok()?))
}

fn apply(w: &mut World, op: &Op) -> Result<Expect, gostack_spec::Throw> {
    let ctx = Ctx::on(w.p);
    let g_of = |w: &World, i: usize| pick(&w.gs, i);
    Ok(match op {
        Op::Spawn(f) => {
            let g = w.s.spawn(ctx, w.fs[*f])?;
            if !w.gs.contains(&g) {
                w.gs.push(g);
            }
            Expect::Gone(g)
        }
        Op::Call(g, f, site) => {
            let Some(g) = g_of(w, *g) else {
                return Ok(Expect::Same);
            };
            // Code between entersyscall and exitsyscall is NOSPLIT in a
            // valid program (a split there throws).
            let f = w.fs[*f];
            if w.s.gor.gs[&g].status == GStatus::Syscall && !w.s.gor.funcs[f].nosplit {
                return Ok(Expect::Same);
            }
            w.s.call(ctx, g, *site, f)?;
            Expect::Grew(g)
        }
        Op::Ret(g) => {
            let Some(g) = g_of(w, *g) else {
                return Ok(Expect::Same);
            };
            // Keep the bottom frame; Exit ends goroutines.
            if w.s.frames(g).map(|f| f.len()).unwrap_or(0) <= 1 {
                return Ok(Expect::Same);
            }
            w.s.ret(ctx, g)?;
            if w.s.gor.gs[&g].status == GStatus::Dead {
                Expect::Gone(g)
            } else {
                Expect::Shrank(g)
            }
        }
        Op::Write(g, frame, word, v) => {
            let Some(g) = g_of(w, *g) else {
                return Ok(Expect::Same);
            };
            let Some((fi, slot, addr)) = local(w, g, *frame, *word) else {
                return Ok(Expect::Same);
            };
            let value = match v {
                // Only pointers to the same frame or an older one (higher
                // up), as Go's escape analysis guarantees: a pointer to a
                // younger frame would dangle once it returns.
                Val::StackPtr(f, x) => match local(w, g, fi + *f, *x) {
                    Some((tf, _, a)) if tf >= fi => a,
                    _ => return Ok(Expect::Same),
                },
                Val::Heap(h) => 0x4000_0000 + u64::from(*h % 0x1000_0000) / 8 * 8,
                Val::Nil => 0,
            };
            w.s.write_slot(g, fi, slot, value)?;
            Expect::Wrote(g, vec![addr])
        }
        Op::Park(g, c, word) => {
            let Some(g) = g_of(w, *g) else {
                return Ok(Expect::Same);
            };
            let Some((_, _, addr)) = local(w, g, 0, *word) else {
                return Ok(Expect::Same);
            };
            let c = w.chans[*c];
            w.s.park(g, &[(c, addr)])?;
            Expect::Same
        }
        Op::Send(c, v) => {
            // A channel with a waiting receiver, when there is one.
            let busy: Vec<u32> = w
                .chans
                .iter()
                .copied()
                .filter(|c| !w.s.gor.chans[c].recvq.is_empty())
                .collect();
            let c = pick(&busy, *c).unwrap_or(w.chans[*c]);
            let value = 0x4000_0000 + u64::from(*v % 0x1000_0000) / 8 * 8;
            let before: BTreeMap<u32, u64> =
                w.s.gor
                    .gs
                    .iter()
                    .flat_map(|(&id, g)| g.waiting.iter().map(move |sid| (id, *sid)))
                    .filter(|(_, sid)| w.s.gor.sudogs[sid].c == c)
                    .map(|(id, sid)| (id, w.s.gor.sudogs[&sid].elem))
                    .collect();
            let g = w.s.send(c, &[value])?;
            Expect::Wrote(g, vec![before[&g]])
        }
        Op::Wake(g) => {
            // A goroutine a sender readied, when there is one.
            let ready: Vec<u32> =
                w.gs.iter()
                    .copied()
                    .filter(|id| {
                        let g = &w.s.gor.gs[id];
                        g.status == GStatus::Runnable && !g.waiting.is_empty()
                    })
                    .collect();
            let Some(g) = pick(&ready, *g).or(g_of(w, *g)) else {
                return Ok(Expect::Same);
            };
            w.s.wake(g)?;
            Expect::Same
        }
        Op::Scan(g) => {
            let Some(g) = g_of(w, *g) else {
                return Ok(Expect::Same);
            };
            // Each goroutine is scanned once per cycle, and only if it
            // existed at gcStart: else the scan is in the next cycle.
            let scanned = w.s.gor.gs[&g].gcscandone || g >= w.s.gor.n_stack_roots;
            if w.s.gcphase != GcPhase::Off && scanned {
                w.s.gc_end()?;
            }
            if w.s.gcphase == GcPhase::Off {
                if w.s.spans_pending_free {
                    w.s.free_stack_spans()?;
                }
                w.s.gc_start()?;
            }
            w.s.gc_scan(w.p, g)?;
            Expect::Same
        }
        Op::GcStart => {
            if w.s.gcphase == GcPhase::Off && w.s.spans_pending_free {
                w.s.free_stack_spans()?;
            }
            w.s.gc_start()?;
            Expect::Same
        }
        Op::GcEnd => {
            w.s.gc_end()?;
            Expect::Same
        }
        Op::Preempt(g) => {
            let Some(g) = g_of(w, *g) else {
                return Ok(Expect::Same);
            };
            w.s.request_preempt(g)?;
            Expect::Same
        }
        Op::ForceMove(g) => {
            let Some(g) = g_of(w, *g) else {
                return Ok(Expect::Same);
            };
            w.s.request_force_move(g)?;
            Expect::Same
        }
        Op::Syscall(g, enter) => {
            let Some(g) = g_of(w, *g) else {
                return Ok(Expect::Same);
            };
            if *enter {
                w.s.enter_syscall(g)?;
            } else {
                w.s.exit_syscall(g)?;
            }
            Expect::Same
        }
        Op::Defer(g, frame, heap) => {
            let Some(g) = g_of(w, *g) else {
                return Ok(Expect::Same);
            };
            let n = w.s.frames(g)?.len();
            let fi = *frame % n;
            let has_obj = !w.s.gor.funcs[w.s.frames(g)?[fi].func].objects.is_empty();
            let on_stack = (!*heap && has_obj).then_some(0);
            let d = w.s.defer_push(g, fi, 0x4000_0000, on_stack)?;
            if on_stack.is_some() {
                let p = w.s.consts.ptr_size;
                Expect::Wrote(g, vec![d, d + p, d + 2 * p])
            } else {
                Expect::Same
            }
        }
        Op::DeferPop(g) => {
            let Some(g) = g_of(w, *g) else {
                return Ok(Expect::Same);
            };
            w.s.defer_pop(g)?;
            Expect::Same
        }
        Op::Exit(g) => {
            let Some(g) = g_of(w, *g) else {
                return Ok(Expect::Same);
            };
            w.s.exit(ctx, g)?;
            Expect::Gone(g)
        }
    })
}

fn used(snaps: &[GSnap]) -> BTreeMap<u32, (Vec<u64>, u64)> {
    snaps
        .iter()
        .map(|g| (g.id, (g.used.clone(), g.sp)))
        .collect()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(128),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn copies_preserve_every_stack(pi in 0..PROFILES.len(), ops in prop::collection::vec(op(), 1..150)) {
        let (port, release) = PROFILES[pi];
        let (os, arch) = port.split_once('/').unwrap();
        let mut config = Config::new(Profile::parse(os, arch, false, release).unwrap());
        config.arena_bytes = 64 << 20;
        let mut s = State::new(config).unwrap();
        let p = s.create_p().unwrap();
        let fs = funcs(&mut s);
        let chans = (0..3).map(|_| s.make_chan(s.consts.ptr_size).unwrap()).collect();
        let mut w = World { s, p, fs, gs: Vec::new(), chans };
        let g0 = w.s.spawn(Ctx::on(p), w.fs[0]).unwrap();
        w.gs.push(g0);
        for (i, op) in ops.iter().enumerate() {
            let before_state = w.s.clone();
            let before = used(&w.s.g_snapshot());
            let expect = match apply(&mut w, op) {
                Ok(e) => e,
                Err(gostack_spec::Throw::Go(t)) if t != gostack_spec::GoThrow::StackOverflow => {
                    // These programs are valid: the only throw Go could give
                    // them is a stack overflow.
                    return Err(TestCaseError::fail(format!("{port} step {i} {op:?}: Go would throw `{t}`")));
                }
                Err(_) => {
                    prop_assert!(w.s == before_state, "step {i} {op:?} failed but changed the state");
                    Expect::Same
                }
            };
            if let Err(v) = check_invariants(&w.s) {
                return Err(TestCaseError::fail(format!("{port} step {i} {op:?}: {v}")));
            }
            let after = used(&w.s.g_snapshot());
            let ptr = w.s.consts.ptr_size;
            for (id, (u0, _)) in &before {
                let Some((u1, sp1)) = after.get(id) else { continue };
                let ok = match &expect {
                    Expect::Gone(g) if g == id => true,
                    Expect::Grew(g) if g == id => u1.ends_with(u0),
                    Expect::Shrank(g) if g == id => u0.ends_with(u1),
                    Expect::Wrote(g, addrs) if g == id => {
                        // The words at the written addresses may differ;
                        // nothing else.
                        let hi = w.s.gor.gs[id].stack.hi;
                        let sp = hi - (sp1 & !(1 << 63));
                        let written: Vec<usize> = addrs.iter().map(|a| ((a - sp) / ptr) as usize).collect();
                        u0.len() == u1.len()
                            && u0.iter().zip(u1).enumerate().all(|(k, (a, b))| a == b || written.contains(&k))
                    }
                    _ => u0 == u1,
                };
                prop_assert!(ok, "{} step {} {:?}: goroutine {}'s stack changed unexpectedly\nbefore {:x?}\nafter  {:x?}", port, i, op, id, u0, u1);
            }
        }
    }
}
