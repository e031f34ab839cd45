//! Goroutines, growth, shrinking, copying and the sudog protocol, tested
//! from Go's own tests and stack bugs (each test cites its source).

use gostack_spec::goroutine::{Func, GStatus, Site, Slot, StackObject, GOEXIT_PC};
use gostack_spec::{check_invariants, Config, Ctx, GoThrow, Misuse, Profile, State, Throw};

/// A Go throw is fatal: checks that the runtime died of `want`, then
/// clears the mark so that the test can go on from the state before the
/// throw (which the spec keeps).
fn revive(s: &mut State, want: GoThrow) {
    assert_eq!(s.dead.take(), Some(want), "a Go throw is fatal");
}

const K: u64 = 1024;

struct T {
    s: State,
    p: u32,
}

impl T {
    fn new(arch: &str) -> T {
        let mut c = Config::new(Profile::parse("linux", arch, false, "1.23").unwrap());
        c.arena_bytes = 256 << 20;
        let mut s = State::new(c).unwrap();
        let p = s.create_p().unwrap();
        T { s, p }
    }

    fn ctx(&self) -> Ctx {
        Ctx::on(self.p)
    }

    fn ok(&self) {
        if let Err(v) = check_invariants(&self.s) {
            panic!("{v}");
        }
    }

    fn func(&mut self, f: Func) -> usize {
        self.s.add_func(f).unwrap()
    }

    fn spawn(&mut self, f: usize) -> u32 {
        let g = self.s.spawn(self.ctx(), f).unwrap();
        self.ok();
        g
    }

    fn call(&mut self, g: u32, site: usize, f: usize) {
        let ctx = self.ctx();
        self.s
            .call(ctx, g, site, f)
            .unwrap_or_else(|e| panic!("call: {e}"));
        self.ok();
    }

    /// A call that must fail with `want`, tried on a copy so that the test
    /// can go on: a refusal changes nothing; a Go throw leaves the state as
    /// it was, marked dead, and the dead runtime refuses the next call.
    fn call_fails(&mut self, g: u32, f: usize, want: Throw) {
        let mut after = self.s.clone();
        let ctx = self.ctx();
        assert_eq!(after.call(ctx, g, 0, f), Err(want.clone()));
        if let Throw::Go(t) = want {
            assert_eq!(after.dead, Some(t), "a Go throw is fatal");
            assert_eq!(
                after.call(ctx, g, 0, f),
                Err(Misuse::Dead(t).into()),
                "a dead runtime refuses every operation"
            );
            after.dead = None;
        }
        assert_eq!(after, self.s, "a failed call changes nothing");
    }

    fn ret(&mut self, g: u32) {
        let ctx = self.ctx();
        self.s.ret(ctx, g).unwrap_or_else(|e| panic!("ret: {e}"));
        self.ok();
    }

    fn size(&self, g: u32) -> u64 {
        let st = self.s.gor.gs[&g].stack;
        st.hi - st.lo
    }

    fn hi(&self, g: u32) -> u64 {
        self.s.gor.gs[&g].stack.hi
    }

    fn addr(&self, g: u32, frame: usize, slot: Slot) -> u64 {
        self.s.slot_addr(g, frame, slot).unwrap()
    }

    fn depth(&self, g: u32) -> usize {
        self.s.frames(g).unwrap().len()
    }

    /// A GC's stack scan of `g`: in the present cycle if its root job has
    /// not run yet, else in a new cycle (each goroutine is scanned once
    /// per cycle, from the goroutines that existed at gcStart).
    fn scan(&mut self, g: u32) {
        let scanned = self.s.gor.gs[&g].gcscandone || g >= self.s.gor.n_stack_roots;
        if self.s.gcphase != gostack_spec::GcPhase::Off && scanned {
            self.gc_end();
        }
        if self.s.gcphase == gostack_spec::GcPhase::Off {
            if self.s.spans_pending_free {
                self.s.free_stack_spans().unwrap();
            }
            self.s.gc_start().unwrap();
        }
        let p = self.p;
        self.s.gc_scan(p, g).unwrap_or_else(|e| panic!("scan: {e}"));
        self.ok();
    }

    fn gc_end(&mut self) {
        self.s.gc_end().unwrap();
        self.ok();
    }
}

/// A function with `locals` words of locals, all pointer slots, and a frame
/// of that plus the saved BP on amd64.
fn ptr_func(t: &T, name: &str, locals: usize) -> Func {
    let p = t.s.consts.ptr_size;
    let frame = match t.s.config.profile.goarch.name() {
        // The saved BP on top.
        "amd64" => locals as u64 * p + p,
        // The saved LR at 0(SP) and the FP word on top, 16-byte aligned.
        "arm64" => (locals as u64 * p + 2 * p).next_multiple_of(16),
        _ => locals as u64 * p,
    };
    let mut f = Func::new(name, frame);
    f.sites = vec![Site {
        locals: vec![true; locals],
        args: vec![],
    }];
    f
}

/// TestStackGrowth (runtime/stack_test.go): a pointer into the bottom
/// frame survives many growths of a deep recursion, and a GC at the bottom;
/// every frame's own pointer to itself too.
#[test]
fn pointer_into_stack_survives_growth_and_gc() {
    for arch in ["amd64", "386", "arm64"] {
        let mut t = T::new(arch);
        let bottom = t.func(ptr_func(&t, "bottom", 4));
        let rec = t.func(ptr_func(&t, "rec", 3));
        let g = t.spawn(bottom);
        let target = t.addr(g, 0, Slot::Local(0));
        let target_off = t.hi(g) - target;
        t.s.write_slot(g, 0, Slot::Local(1), target).unwrap();
        // A heap pointer in slot 0 stays as it is.
        t.s.write_slot(g, 0, Slot::Local(0), 0x4000_0000).unwrap();
        let first = t.size(g);
        for i in 0..1000 {
            t.call(g, 0, rec);
            // Each frame points at its own slot 0 and at the bottom frame.
            let own = t.addr(g, 0, Slot::Local(0));
            t.s.write_slot(g, 0, Slot::Local(1), own).unwrap();
            let bottom_slot = t.addr(g, i + 1, Slot::Local(0));
            t.s.write_slot(g, 0, Slot::Local(2), bottom_slot).unwrap();
        }
        assert!(
            t.size(g) >= 8 * first,
            "{arch}: the stack grew ({} bytes)",
            t.size(g)
        );
        assert!(t.s.gor.stats.growths >= 3);
        t.scan(g);
        t.gc_end();
        // Unwind, checking every pointer.
        for _ in 0..1000 {
            let own = t.addr(g, 0, Slot::Local(0));
            let me = t.s.read_word(t.addr(g, 0, Slot::Local(1)));
            assert_eq!(me, own, "{arch}: a frame's pointer to itself moved with it");
            let bottom_now = t.addr(g, t.depth(g) - 1, Slot::Local(0));
            assert_eq!(t.s.read_word(t.addr(g, 0, Slot::Local(2))), bottom_now);
            t.ret(g);
        }
        let target_now = t.addr(g, 0, Slot::Local(0));
        assert_eq!(
            t.s.read_word(t.addr(g, 0, Slot::Local(1))),
            target_now,
            "{arch}"
        );
        assert_eq!(
            t.hi(g) - target_now,
            target_off,
            "{arch}: the same offset from the top"
        );
        assert_eq!(t.s.read_word(target_now), 0x4000_0000, "{arch}");
    }
}

/// TestDeferPtrs (runtime/stack_test.go): a defer record on the stack, and
/// one on the heap, whose sp points into the stack, are adjusted when the
/// stack grows (adjustdefers).
#[test]
fn defer_records_are_adjusted() {
    let mut t = T::new("amd64");
    let p = t.s.consts.ptr_size;
    let mut f = ptr_func(&t, "withdefer", 6);
    f.objects.push(StackObject {
        off: -(4 * p as i64),
        size: 3 * p,
        ptrs: vec![true, true, true],
    });
    let fd = t.func(f);
    let big = t.func(Func::new("big", 16 * K));
    let g = t.spawn(fd);
    let on_stack = t.s.defer_push(g, 0, 0x7000_0000, Some(0)).unwrap();
    let heap = t.s.defer_push(g, 0, 0x7000_1000, None).unwrap();
    let sp_before = t.s.frames(g).unwrap()[0].sp;
    let hi_before = t.hi(g);
    t.call(g, 0, big);
    assert!(t.hi(g) != hi_before, "the stack moved");
    let frame = t.s.frames(g).unwrap()[1].clone();
    let delta = t.hi(g).wrapping_sub(hi_before);
    // The head is the heap record; its link is the stack record, moved.
    assert_eq!(t.s.gor.gs[&g].defer_head, heap);
    assert_eq!(t.s.read_word(heap + 2 * p), on_stack.wrapping_add(delta));
    assert_eq!(t.s.read_word(heap + p), sp_before.wrapping_add(delta));
    assert_eq!(t.s.read_word(on_stack.wrapping_add(delta) + p), frame.sp);
    assert_eq!(
        t.s.read_word(on_stack.wrapping_add(delta)),
        0x7000_0000,
        "fn is a heap pointer, left alone"
    );
    t.ret(g);
    t.s.defer_pop(g).unwrap();
    assert_eq!(t.s.gor.gs[&g].defer_head, on_stack.wrapping_add(delta));
}

/// Builds a goroutine that grew to `deep` frames of 1 KiB and came back,
/// so that a GC scan can shrink it; returns (g, recv fn index).
fn grown_then_shallow(t: &mut T, deep: usize) -> u32 {
    let bottom = t.func(ptr_func(t, "bottom", 8));
    let f = t.func(Func::new("deep", K));
    let g = t.spawn(bottom);
    for _ in 0..deep {
        t.call(g, 0, f);
    }
    for _ in 0..deep {
        t.ret(g);
    }
    g
}

/// TestShrinkStackDuringBlockedSend (runtime/chan_test.go) and
/// golang/go#12967, #13169: a goroutine parked receiving into its stack is
/// shrunk (copystack takes the channel locks: activeStackChans); the value
/// sent afterwards lands at the adjusted slot in the new stack, and nothing
/// is written to the freed old stack.
#[test]
fn shrink_while_blocked_then_send() {
    let mut t = T::new("amd64");
    let g = grown_then_shallow(&mut t, 60);
    let big = t.size(g);
    assert!(big >= 64 * K);
    let c = t.s.make_chan(16).unwrap();
    let slot = t.addr(g, 0, Slot::Local(2));
    let off = t.hi(g) - slot;
    t.s.park(g, &[(c, slot)]).unwrap();
    t.ok();
    let old = t.s.gor.gs[&g].stack;
    t.scan(g);
    let old_words: Vec<(u64, u64)> =
        t.s.gor
            .mem
            .range(old.lo..old.hi)
            .map(|(&a, &v)| (a, v))
            .collect();
    assert_eq!(t.size(g), big / 2, "shrunk once per scan");
    let sid = t.s.gor.gs[&g].waiting[0];
    assert_eq!(
        t.hi(g) - t.s.gor.sudogs[&sid].elem,
        off,
        "sudog.elem adjusted"
    );
    assert_eq!(t.s.send(c, &[0x1111, 0x2222]).unwrap(), g);
    assert_eq!(t.s.read_word(t.hi(g) - off), 0x1111);
    assert_eq!(t.s.read_word(t.hi(g) - off + 8), 0x2222);
    let after: Vec<(u64, u64)> =
        t.s.gor
            .mem
            .range(old.lo..old.hi)
            .map(|(&a, &v)| (a, v))
            .collect();
    assert_eq!(after, old_words, "nothing written to the freed old stack");
    t.s.wake(g).unwrap();
    t.ok();
    assert!(!t.s.gor.gs[&g].active_stack_chans);
    t.gc_end();
}

/// TestNoShrinkStackWhileParking (runtime/chan_test.go), golang/go#40641:
/// between park_m (status waiting) and chanparkcommit the goroutine is
/// parkingOnChan; a scan must not shrink it (it would adjust sudogs without
/// the locks), but asks for a shrink at the next synchronous preemption.
#[test]
fn no_shrink_while_parking() {
    let mut t = T::new("amd64");
    let g = grown_then_shallow(&mut t, 60);
    let big = t.size(g);
    let c = t.s.make_chan(8).unwrap();
    let slot = t.addr(g, 0, Slot::Local(0));
    t.s.park_begin(g, &[(c, slot)]).unwrap();
    t.s.park_set_parking(g).unwrap();
    // Still running inside gopark: the scanner waits.
    t.s.gc_start().unwrap();
    assert!(matches!(
        t.s.gc_scan(t.p, g),
        Err(Throw::Misuse(Misuse::WouldBlock(_)))
    ));
    t.s.park_m(g).unwrap();
    t.scan(g);
    assert_eq!(t.size(g), big, "not shrunk while parking");
    assert!(t.s.gor.gs[&g].preempt_shrink);
    t.s.park_commit(g).unwrap();
    t.s.send(c, &[0x2000_0000]).unwrap();
    t.s.wake(g).unwrap();
    assert_eq!(t.s.read_word(t.addr(g, 0, Slot::Local(0))), 0x2000_0000);
    // The next synchronous preemption shrinks.
    t.s.request_preempt(g).unwrap();
    let f = t.func(Func::new("leaf", 64));
    t.call(g, 0, f);
    assert_eq!(t.size(g), big / 2);
    assert!(!t.s.gor.gs[&g].preempt_shrink);
    t.gc_end();
}

/// TestSelectStackAdjust (runtime/chan_test.go): a select on two channels
/// with both slots in the stack; the stack shrinks (sghi covers both); a
/// send on the second lands in the new stack and the other case is dropped
/// on wake-up.
#[test]
fn select_stack_adjust() {
    let mut t = T::new("amd64");
    let g = grown_then_shallow(&mut t, 60);
    let c1 = t.s.make_chan(8).unwrap();
    let c2 = t.s.make_chan(8).unwrap();
    let a1 = t.addr(g, 0, Slot::Local(0));
    let a2 = t.addr(g, 0, Slot::Local(5));
    let (o1, o2) = (t.hi(g) - a1, t.hi(g) - a2);
    t.s.park(g, &[(c2, a2), (c1, a1)]).unwrap();
    assert_eq!(t.s.gor.gs[&g].waiting.len(), 2);
    t.scan(g);
    t.s.send(c2, &[7]).unwrap();
    assert!(t.s.send(c1, &[8]).is_err(), "the select already chose");
    assert_eq!(t.s.read_word(t.hi(g) - o2), 7);
    assert_eq!(t.s.read_word(t.hi(g) - o1), 0);
    t.s.wake(g).unwrap();
    assert!(t.s.gor.chans[&c1].recvq.is_empty());
    t.ok();
    t.gc_end();
}

/// TestGCTestMoveStackRepeatedly (runtime/gc_test.go): forced moves copy
/// to a stack of the same size, however often.
#[test]
fn forced_moves_keep_the_size() {
    let mut t = T::new("amd64");
    let bottom = t.func(ptr_func(&t, "bottom", 2));
    let leaf = t.func(Func::new("leaf", 16));
    let g = t.spawn(bottom);
    let size = t.size(g);
    let own = t.addr(g, 0, Slot::Local(0));
    t.s.write_slot(g, 0, Slot::Local(1), own).unwrap();
    let mut places = std::collections::BTreeSet::new();
    for _ in 0..100 {
        t.s.request_force_move(g).unwrap();
        t.call(g, 0, leaf);
        t.ret(g);
        places.insert(t.hi(g));
        assert_eq!(t.size(g), size);
        assert_eq!(
            t.s.read_word(t.addr(g, 0, Slot::Local(1))),
            t.addr(g, 0, Slot::Local(0))
        );
    }
    assert_eq!(t.s.gor.stats.moves, 100);
    assert!(places.len() > 1, "the stack really moved");
}

/// adjustpointers: a junk value below minLegalPointer in a live pointer
/// slot is "invalid pointer found on stack", and the state is unchanged.
#[test]
fn junk_in_a_pointer_slot_throws() {
    let mut t = T::new("amd64");
    let bottom = t.func(ptr_func(&t, "bottom", 2));
    let big = t.func(Func::new("big", 8 * K));
    let g = t.spawn(bottom);
    t.s.write_slot(g, 0, Slot::Local(0), 0x17).unwrap();
    let before = t.s.clone();
    let ctx = t.ctx();
    let e = t.s.call(ctx, g, 0, big).unwrap_err();
    assert_eq!(e.to_string(), "invalid pointer found on stack");
    revive(&mut t.s, GoThrow::InvalidPointerOnStack);
    assert_eq!(t.s, before);
    // A heap pointer or nil is fine.
    t.s.write_slot(g, 0, Slot::Local(0), 0x1000).unwrap();
    t.call(g, 0, big);
}

/// golang/go#58432 and adjustframe's saved-BP case: after a grow and a
/// shrink every saved frame pointer, and sched.bp, points into the new
/// stack at the frame above.
#[test]
fn saved_frame_pointers_follow_the_stack() {
    for arch in ["amd64", "arm64"] {
        saved_frame_pointers_on(arch);
    }
}

fn saved_frame_pointers_on(arch: &str) {
    let mut t = T::new(arch);
    let bottom = t.func(ptr_func(&t, "bottom", 2));
    let mid = t.func(ptr_func(&t, "mid", 30));
    let g = t.spawn(bottom);
    for _ in 0..100 {
        t.call(g, 0, mid);
    }
    // amd64 saves the caller's BP at the top of each frame (varp) and BP
    // points there; arm64 saves the caller's FP one word below each frame's
    // SP and FP points there.
    let arm = arch == "arm64";
    let check = |t: &T| {
        let frames = t.s.frames(g).unwrap();
        let st = t.s.gor.gs[&g].stack;
        let fp_of = |fr: &gostack_spec::goroutine::Frame| if arm { fr.sp - 8 } else { fr.varp };
        assert_eq!(
            t.s.gor.gs[&g].bp,
            fp_of(&frames[0]),
            "{arch}: sched.bp is the innermost frame's FP"
        );
        for w in frames.windows(2) {
            let saved = t.s.read_word(fp_of(&w[0]));
            assert_eq!(
                saved,
                fp_of(&w[1]),
                "{arch}: a saved FP points at the caller's"
            );
            assert!(st.lo <= saved && saved < st.hi);
        }
    };
    check(&t);
    for _ in 0..95 {
        t.ret(g);
    }
    let big = t.size(g);
    t.scan(g);
    assert!(t.size(g) < big);
    check(&t);
    t.gc_end();
}

/// newstack: growth past maxstacksize is "stack overflow", with nothing
/// changed; a call with a frame larger than any stack may be, too.
#[test]
fn stack_overflow() {
    let mut t = T::new("amd64");
    let bottom = t.func(ptr_func(&t, "bottom", 2));
    let rec = t.func(Func::new("rec", 4 * K));
    let g = t.spawn(bottom);
    t.s.set_max_stack(64 * K);
    let mut n = 0;
    loop {
        let before = t.s.clone();
        let ctx = t.ctx();
        match t.s.call(ctx, g, 0, rec) {
            Ok(()) => n += 1,
            Err(e) => {
                assert_eq!(e, Throw::Go(GoThrow::StackOverflow));
                assert_eq!(e.to_string(), "stack overflow");
                revive(&mut t.s, GoThrow::StackOverflow);
                assert_eq!(t.s, before);
                break;
            }
        }
        assert!(n < 100);
    }
    assert!(t.size(g) <= 64 * K);
    let huge = t.func(Func::new("huge", 1 << 30));
    t.call_fails(g, huge, Throw::Go(GoThrow::StackOverflow));
}

/// The unwinder reads return addresses from memory: a corrupted one is
/// "unknown caller pc", never a panic, and nothing changes.
#[test]
fn corrupt_return_address_throws() {
    let mut t = T::new("amd64");
    let bottom = t.func(ptr_func(&t, "bottom", 2));
    let mid = t.func(ptr_func(&t, "mid", 2));
    let big = t.func(Func::new("big", 8 * K));
    let g = t.spawn(bottom);
    t.call(g, 0, mid);
    let ret_slot = t.s.frames(g).unwrap()[0].fp - 8;
    t.s.poke(g, ret_slot, 0xdead).unwrap();
    let before = t.s.clone();
    let ctx = t.ctx();
    assert_eq!(
        t.s.call(ctx, g, 0, big),
        Err(Throw::Go(GoThrow::UnknownCallerPc))
    );
    revive(&mut t.s, GoThrow::UnknownCallerPc);
    assert_eq!(t.s, before);
    // RET jumps to the innermost frame's own return address: a corrupt one
    // would fault.
    assert_eq!(
        t.s.ret(ctx, g),
        Err(Throw::Misuse(Misuse::BadReturnAddress(0xdead)))
    );
    // The goexit address where a frame should be: the walk ends early.
    t.s.poke(g, ret_slot, GOEXIT_PC).unwrap();
    assert_eq!(
        t.s.frames(g),
        Err(Throw::Go(GoThrow::TracebackDidNotUnwind))
    );
}

/// isShrinkStackSafe: no shrink in a system call or at an asynchronous safe
/// point; the GC asks for preemptShrink instead.
#[test]
fn no_shrink_in_syscall_or_async_safe_point() {
    let mut t = T::new("386");
    let g = grown_then_shallow(&mut t, 60);
    let big = t.size(g);
    t.s.enter_syscall(g).unwrap();
    t.scan(g);
    assert_eq!(t.size(g), big);
    assert!(t.s.gor.gs[&g].preempt_shrink);
    t.s.exit_syscall(g).unwrap();
    t.s.gor.gs.get_mut(&g).unwrap().preempt_shrink = false;
    t.s.set_async_safe_point(g, true).unwrap();
    t.scan(g);
    assert_eq!(t.size(g), big);
    t.s.set_async_safe_point(g, false).unwrap();
    t.scan(g);
    assert_eq!(t.size(g), big / 2);
    t.gc_end();
}

/// shrinkstack's rules: never below fixedStack; not when used plus the
/// nosplit budget reaches a quarter.
#[test]
fn shrink_rules() {
    let mut t = T::new("amd64");
    let bottom = t.func(ptr_func(&t, "bottom", 2));
    let g = t.spawn(bottom);
    assert_eq!(t.size(g), 2 * K);
    t.scan(g);
    assert_eq!(t.size(g), 2 * K, "fixedStack floor");
    // 8K stack: used + 800 must be under 2K to shrink.
    let f = t.func(Func::new("f", 1400));
    t.call(g, 0, f);
    assert_eq!(t.size(g), 4 * K);
    t.scan(g);
    assert_eq!(t.size(g), 4 * K, "used + nosplit >= a quarter: kept");
    t.ret(g);
    // 712 bytes used + 800 of nosplit budget: above a quarter of 4K (so
    // kept) though under half.
    let f640 = t.func(Func::new("f640", 640));
    t.call(g, 0, f640);
    t.scan(g);
    assert_eq!(t.size(g), 4 * K, "used + nosplit >= a quarter: kept");
    t.ret(g);
    t.scan(g);
    assert_eq!(t.size(g), 2 * K, "shallow again: halved");
    t.gc_end();
}

/// Adaptive starting stack size (gcComputeStartingStackSize, Go 1.19+), and
/// gfput/gfget dropping stacks of the wrong size.
#[test]
fn starting_stack_size_adapts() {
    let mut t = T::new("amd64");
    let bottom = t.func(ptr_func(&t, "bottom", 2));
    let deep = t.func(Func::new("deep", 3 * K));
    let g = t.spawn(bottom);
    t.call(g, 0, deep);
    t.call(g, 0, deep);
    assert_eq!(t.size(g), 8 * K);
    t.scan(g);
    t.gc_end();
    // Used 6224 bytes + guard 928, rounded up to a power of two.
    assert_eq!(t.s.gor.starting_stack_size, 8 * K);
    let ctx = t.ctx();
    t.s.exit(ctx, g).unwrap();
    t.ok();
    // gfput keeps a stack of the starting size.
    assert_eq!(t.size(g), 8 * K);
    let g2 = t.spawn(bottom);
    assert_eq!(g2, g, "the dead G is reused, with its stack");
    assert_eq!(t.size(g2), 8 * K);
    let g3 = t.spawn(bottom);
    assert_eq!(t.size(g3), 2 * K, "a new G from malg gets fixedStack");
    assert_eq!(t.s.gor.gs[&g3].status, GStatus::Runnable);
    // A cycle that scans nothing resets the starting size to fixedStack;
    // gfget then drops the dead G's 8K stack for a 2K one.
    t.s.exit(ctx, g2).unwrap();
    t.s.gc_start().unwrap();
    t.gc_end();
    assert_eq!(t.s.gor.starting_stack_size, 2 * K);
    let g4 = t.spawn(bottom);
    assert_eq!(g4, g);
    assert_eq!(t.size(g4), 2 * K);
}

/// Bad function tables and bad operations are refused, state unchanged.
#[test]
fn bad_input() {
    let mut t = T::new("amd64");
    let mut f = Func::new("f", 64);
    f.sites[0].locals = vec![true; 9];
    assert!(matches!(
        t.s.add_func(f),
        Err(Throw::Misuse(Misuse::BadFunc(..)))
    ));
    let mut f = Func::new("f", 64);
    f.objects.push(StackObject {
        off: -64,
        size: 128,
        ptrs: vec![],
    });
    assert!(t.s.add_func(f).is_err());
    let mut f = Func::new("f", 60);
    f.max_sp_delta = 64;
    assert!(t.s.add_func(f).is_err());
    assert!(t.s.add_func(Func::new("f", 1 << 32)).is_err());
    assert!(t.s.gor.funcs.is_empty());
    let bottom = t.func(ptr_func(&t, "bottom", 2));
    let g = t.spawn(bottom);
    let c = t.s.make_chan(8).unwrap();
    let before = t.s.clone();
    assert_eq!(t.s.send(c, &[1]), Err(Throw::Misuse(Misuse::NoReceiver(c))));
    assert!(t.s.write_slot(g, 0, Slot::Local(7), 1).is_err());
    assert!(t.s.write_slot(g, 3, Slot::Local(0), 1).is_err());
    assert!(t.s.park(g, &[(c, 8)]).is_err());
    assert_eq!(t.s, before);
    let mips = State::new(Config::new(
        Profile::parse("linux", "mips", false, "1.23").unwrap(),
    ))
    .unwrap()
    .add_func(Func::new("f", 8));
    assert_eq!(
        mips.unwrap_err().to_string(),
        "gostack: goroutine frames on mips are not modeled yet; accepted: amd64, 386, arm64"
    );
}

/// newstack doubles, then keeps doubling until the new frame fits with the
/// guard to spare (`needed = funcMaxSPDelta + stackGuard`): one copy, not
/// one per doubling.
#[test]
fn growth_doubles_until_the_frame_fits() {
    let mut t = T::new("amd64");
    let bottom = t.func(ptr_func(&t, "bottom", 2));
    let mid = t.func(Func::new("mid", 3 * K));
    let big = t.func(Func::new("big", 4200));
    let g = t.spawn(bottom);
    t.call(g, 0, mid);
    assert_eq!(t.size(g), 4 * K);
    let growths = t.s.gor.stats.growths;
    // Used is 3152 of 4K: doubling to 8K leaves 5040, under 4200 + 928.
    t.call(g, 0, big);
    assert_eq!(t.size(g), 16 * K);
    assert_eq!(
        t.s.gor.stats.growths,
        growths + 1,
        "one copy straight to 16K"
    );
}

/// adjustctxt (runtime/stack.go): a closure context pointing into the
/// stack follows it; one pointing elsewhere is left alone. A pointer to the
/// stack's lowest word is in range too.
#[test]
fn ctxt_and_edges_are_adjusted() {
    let mut t = T::new("amd64");
    let bottom = t.func(ptr_func(&t, "bottom", 2));
    let big = t.func(Func::new("big", 8 * K));
    let g = t.spawn(bottom);
    let slot = t.addr(g, 0, Slot::Local(0));
    let off = t.hi(g) - slot;
    let lo = t.s.gor.gs[&g].stack.lo;
    let lo_off = t.hi(g) - lo;
    t.s.set_ctxt(g, slot).unwrap();
    t.s.write_slot(g, 0, Slot::Local(1), lo).unwrap();
    t.call(g, 0, big);
    assert_eq!(t.s.gor.gs[&g].ctxt, t.hi(g) - off);
    assert_eq!(
        t.s.read_word(t.addr(g, 1, Slot::Local(1))),
        t.hi(g) - lo_off,
        "a pointer to lo is adjusted"
    );
    t.ret(g);
    t.s.set_ctxt(g, 0x4000_0000).unwrap();
    t.s.request_force_move(g).unwrap();
    t.call(g, 0, big);
    assert_eq!(t.s.gor.gs[&g].ctxt, 0x4000_0000);
}

/// Stack maps are per call site (`PCDATA_StackMapIndex`): a slot that is
/// dead at the site where the frame called is not adjusted, even if it
/// holds a stack address; at a site where it is live, it is.
#[test]
fn pointer_maps_are_per_site() {
    let mut t = T::new("amd64");
    let mut f = ptr_func(&t, "two_sites", 2);
    f.sites = vec![
        Site {
            locals: vec![true, true],
            args: vec![],
        },
        Site {
            locals: vec![true, false],
            args: vec![],
        },
    ];
    let fi = t.func(f);
    let big = t.func(Func::new("big", 8 * K));
    let g = t.spawn(fi);
    let a0 = t.addr(g, 0, Slot::Local(0));
    let off = t.hi(g) - a0;
    t.s.write_slot(g, 0, Slot::Local(0), a0).unwrap();
    t.s.write_slot(g, 0, Slot::Local(1), a0).unwrap();
    let old_hi = t.hi(g);
    // Call from site 1, where local 1 is dead.
    t.call(g, 1, big);
    assert_eq!(
        t.s.read_word(t.addr(g, 1, Slot::Local(0))),
        t.hi(g) - off,
        "live: adjusted"
    );
    assert_eq!(
        t.s.read_word(t.addr(g, 1, Slot::Local(1))),
        old_hi - off,
        "dead: left as it was"
    );
}

/// Arguments: the callee's args map describes the caller's outgoing
/// argument words, and the callee's frame adjusts them ("the
/// argument/return area is adjusted by the callee", adjustframe); a junk
/// value there is not checked (Go passes no funcInfo for arguments).
#[test]
fn arguments_are_adjusted_by_the_callee() {
    for arch in ["amd64", "arm64", "386"] {
        let mut t = T::new(arch);
        let p = t.s.consts.ptr_size;
        // The caller's frame holds its locals and, at its bottom, the
        // outgoing argument area: on x86 at SP, on arm64 just above the
        // saved LR at 0(SP). The callee reads 2 argument words there.
        let mut cf = ptr_func(&t, "caller", 4);
        // The two lowest words are the outgoing argument area, which the
        // caller's own locals map leaves out.
        cf.sites[0].locals = vec![false, false, true, true];
        let caller = t.func(cf);
        let mut callee = Func::new("callee", if arch == "arm64" { 16 * K } else { 8 * K });
        callee.args_size = 2 * p;
        callee.sites = vec![Site {
            locals: vec![],
            args: vec![true, false],
        }];
        let ce = t.func(callee);
        let g = t.spawn(caller);
        let target = t.addr(g, 0, Slot::Local(3));
        let off = t.hi(g) - target;
        // Write the arguments through the callee's view after the call: the
        // argument words are the caller's lowest locals.
        t.call(g, 0, ce);
        t.s.write_slot(g, 0, Slot::Arg(0), t.addr(g, 1, Slot::Local(3)))
            .unwrap();
        t.s.write_slot(g, 0, Slot::Arg(1), 0x5).unwrap();
        t.ret(g);
        t.s.request_force_move(g).unwrap();
        t.call(g, 0, ce);
        assert_eq!(
            t.s.read_word(t.addr(g, 0, Slot::Arg(0))),
            t.hi(g) - off,
            "{arch}"
        );
        assert_eq!(
            t.s.read_word(t.addr(g, 0, Slot::Arg(1))),
            0x5,
            "{arch}: junk in a non-pointer arg word stays"
        );
        let _ = target;
    }
}

/// gfput spills half of a P's 64 dead goroutines to the global lists: each
/// popped G goes to the head of a `gQueue`, and `gList.pushAll` prepends the
/// queue in its order, so the *last* popped heads the global list; gfget
/// refills an empty P list from the global head.
#[test]
fn gfree_lists_keep_go_order() {
    let mut t = T::new("amd64");
    let bottom = t.func(ptr_func(&t, "bottom", 2));
    let gs: Vec<u32> = (0..64).map(|_| t.spawn(bottom)).collect();
    let ctx = t.ctx();
    for &g in &gs {
        t.s.exit(ctx, g).unwrap();
    }
    t.ok();
    // The 64th exit spilled the 33 most recent, g63 down to g31.
    assert_eq!(t.s.gor.p_gfree[&t.p], gs[..31].to_vec());
    let head_first: Vec<u32> = t.s.gor.sched_gfree_stack.iter().rev().copied().collect();
    assert_eq!(head_first, gs[31..].to_vec());
    // A new P refills 32 from the global head (g31..g62) and pops the last.
    let q = t.s.create_p().unwrap();
    let g = t.s.spawn(Ctx::on(q), bottom).unwrap();
    assert_eq!(g, gs[62]);
    assert_eq!(t.s.gor.p_gfree[&q].len(), 31);
}

/// p.destroy runs gfpurge: the destroyed P's dead goroutines go to the
/// global lists, where another P finds them (runtime/proc.go).
#[test]
fn destroy_p_purges_its_free_goroutines() {
    let mut t = T::new("amd64");
    let bottom = t.func(ptr_func(&t, "bottom", 2));
    let (p0, p1) = (t.s.create_p().unwrap(), t.s.create_p().unwrap());
    let g = t.s.spawn(Ctx::on(p0), bottom).unwrap();
    t.s.exit(Ctx::on(p0), g).unwrap();
    t.s.destroy_p(p0).unwrap();
    t.ok();
    assert_eq!(t.s.spawn(Ctx::on(p1), bottom).unwrap(), g);
}

/// newproc1 zeroes the caller's LR slot at the top of the stack on
/// link-register machines, and (Go 1.23) the caller's FP word below it on
/// arm64; malg zeroes the new stack's lowest word.
#[test]
fn arm64_newproc_zeroes_the_top_words() {
    for (release, fp_zeroed) in [("1.23", true), ("1.19", false)] {
        let mut c = Config::new(Profile::parse("linux", "arm64", false, release).unwrap());
        c.poison_copy = true;
        let mut s = State::new(c).unwrap();
        let p = s.create_p().unwrap();
        let f = s.add_func(Func::new("f", 32)).unwrap();
        let g1 = s.spawn(Ctx::on(p), f).unwrap();
        // Move g1: its old stack, filled with 0xfc, goes to P's cache.
        s.request_force_move(g1).unwrap();
        s.call(Ctx::on(p), g1, 0, f).unwrap();
        let g2 = s.spawn(Ctx::on(p), f).unwrap();
        let top = s.gor.gs[&g2].stktopsp;
        assert_eq!(s.read_word(top), 0, "{release}: the caller's LR slot");
        assert_eq!(
            s.read_word(top - 8) == 0,
            fp_zeroed,
            "{release}: the caller's FP word"
        );
    }
}

/// Go 1.19 adjusts saved frame pointers on amd64 only: on arm64 they keep
/// pointing into the old stack after a copy (golang/go#58432); Go 1.23
/// adjusts them.
#[test]
fn go119_arm64_leaves_saved_frame_pointers() {
    for (release, adjusted) in [("1.19", false), ("1.23", true)] {
        let mut s = State::new(Config::new(
            Profile::parse("linux", "arm64", false, release).unwrap(),
        ))
        .unwrap();
        let p = s.create_p().unwrap();
        let f = s.add_func(Func::new("f", 32)).unwrap();
        let g = s.spawn(Ctx::on(p), f).unwrap();
        s.call(Ctx::on(p), g, 0, f).unwrap();
        s.call(Ctx::on(p), g, 0, f).unwrap();
        let slot = s.frames(g).unwrap()[0].varp;
        let v = s.read_word(slot);
        assert_ne!(v, 0);
        let hi = s.gor.gs[&g].stack.hi;
        s.request_force_move(g).unwrap();
        s.call(Ctx::on(p), g, 0, f).unwrap();
        check_invariants(&s).unwrap();
        let delta = s.gor.gs[&g].stack.hi.wrapping_sub(hi);
        let moved = s.read_word(slot.wrapping_add(delta));
        assert_eq!(moved == v.wrapping_add(delta), adjusted, "{release}");
        assert_eq!(moved == v, !adjusted, "{release}");
    }
}

/// A goroutine's entry function takes no arguments (newproc1 starts a
/// func()); one that does is refused, so no argument slot lies above hi.
#[test]
fn entry_functions_take_no_arguments() {
    let mut t = T::new("amd64");
    let mut f = Func::new("f", 16);
    f.args_size = 64;
    let f = t.func(f);
    let ctx = t.ctx();
    assert!(matches!(
        t.s.spawn(ctx, f),
        Err(Throw::Misuse(Misuse::BadFunc(..)))
    ));
}

/// send (runtime/chan.go) sets sudog.elem to nil once it has written the
/// value; the woken goroutine's copy then ignores that sudog.
#[test]
fn send_clears_the_sudog_elem() {
    let mut t = T::new("amd64");
    let g = grown_then_shallow(&mut t, 60);
    let c = t.s.make_chan(8).unwrap();
    let slot = t.addr(g, 0, Slot::Local(0));
    t.s.park(g, &[(c, slot)]).unwrap();
    t.s.send(c, &[0x4000_0000]).unwrap();
    let sid = t.s.gor.gs[&g].waiting[0];
    assert_eq!(t.s.gor.sudogs[&sid].elem, 0);
    // Woken but not yet resumed: a scan may shrink it, ignoring the sudog.
    t.scan(g);
    t.s.wake(g).unwrap();
    t.ok();
    t.gc_end();
}

/// Go's compiler hands chanrecv/selectgo the address of a variable, a slot
/// inside some frame's locals. A receive slot over a return address, a
/// saved frame pointer (arm64: the LR saved at 0(SP)), or straddling two
/// frames is refused with `NotALocal` and changes nothing; a slot in a
/// caller's locals (a variable passed down by pointer) is accepted. Found
/// by the copy_adjust fuzz target: a send into such a slot rewrote the
/// frames themselves.
#[test]
fn receive_slot_must_be_a_local() {
    for arch in ["amd64", "386", "arm64"] {
        let mut t = T::new(arch);
        let p = t.s.consts.ptr_size;
        let bottom = t.func(ptr_func(&t, "bottom", 4));
        let mid = t.func(ptr_func(&t, "mid", 4));
        let g = t.spawn(bottom);
        t.call(g, 0, mid);
        t.call(g, 0, mid);
        let c = t.s.make_chan(p).unwrap();
        let c2 = t.s.make_chan(2 * p).unwrap();
        let frames = t.s.frames(g).unwrap();
        let inner = &frames[0];
        let ret_addr = if arch == "arm64" {
            inner.sp
        } else {
            inner.fp - p
        };
        let mut refused = vec![ret_addr];
        if arch != "386" {
            // The frame pointer word: amd64 saves BP at varp; arm64 keeps
            // the caller's FP at varp (one word below the caller's SP).
            refused.push(inner.varp);
        }
        let before = t.s.clone();
        for a in refused {
            assert_eq!(
                t.s.park(g, &[(c, a)]),
                Err(Throw::Misuse(Misuse::NotALocal(g, a))),
                "{arch}: {a:#x}"
            );
            assert_eq!(t.s, before, "{arch}: a refused park changes nothing");
        }
        // Two words: the last local of the inner frame and the word above.
        let last = t.addr(g, 0, Slot::Local(3));
        assert_eq!(
            t.s.park(g, &[(c2, last)]),
            Err(Throw::Misuse(Misuse::NotALocal(g, last))),
            "{arch}: a slot straddling the end of the locals"
        );
        // A select with one good and one bad case is refused whole.
        let good = t.addr(g, 0, Slot::Local(0));
        assert!(t.s.park(g, &[(c, good), (c2, ret_addr)]).is_err());
        assert_eq!(t.s, before);
        // A caller's local is a fine receive slot.
        let callers = t.addr(g, 2, Slot::Local(1));
        t.s.park(g, &[(c2, callers)]).unwrap();
        t.ok();
        t.s.send(c2, &[0x1000_0000, 0x2000_0000]).unwrap();
        t.s.wake(g).unwrap();
        t.ok();
        assert_eq!(t.s.read_word(callers + p), 0x2000_0000);
    }
}

/// golang/go#41228: `debug.SetMaxStack` above 4 GB did not bound growth,
/// since stackalloc takes 32-bit sizes; newstack now also refuses sizes
/// above `maxstackceiling` (twice the default maxstacksize, set in
/// runtime.main), whatever SetMaxStack says.
#[test]
fn growth_is_bounded_by_maxstackceiling() {
    let mut t = T::new("amd64");
    let ceiling = t.s.consts.maxstackceiling;
    assert_eq!(ceiling, 2_000_000_000);
    let bottom = t.func(ptr_func(&t, "bottom", 2));
    // A frame (the assembler's limit is 2^31) that only a stack of 2 GiB,
    // the next power of two above the ceiling, can hold.
    let huge = t.func(Func::new("huge", 2_100_000_000));
    let g = t.spawn(bottom);
    t.s.set_max_stack(8 << 30);
    t.call_fails(g, huge, Throw::Go(GoThrow::StackOverflow));
}

/// Fills P's free list to 64 so that gfput spills 33 dead goroutines, with
/// their fixedStack stacks, to `sched.gFree.stack`; returns them.
fn spill_dead_goroutines(t: &mut T) -> Vec<u32> {
    let bottom = t.func(ptr_func(t, "bottom", 2));
    let gs: Vec<u32> = (0..64).map(|_| t.spawn(bottom)).collect();
    let ctx = t.ctx();
    for &g in &gs {
        t.s.exit(ctx, g).unwrap();
    }
    t.ok();
    gs
}

/// The GC frees dead goroutines' stacks: `markrootFreeGStacks`
/// (runtime/mgcmark.go, Go 1.19 and 1.23), a root job of every cycle,
/// frees the stacks of the goroutines on the global free list from its
/// head, on the worker's P, and moves them in order to the front of
/// `sched.gFree.noStack`; the Ps' own lists keep their stacks. Each root
/// job runs once per cycle, during mark.
#[test]
fn gc_frees_dead_goroutines_stacks() {
    let mut t = T::new("amd64");
    let gs = spill_dead_goroutines(&mut t);
    let global = t.s.gor.sched_gfree_stack.clone();
    assert_eq!(global.len(), 33);
    let local = t.s.gor.p_gfree[&t.p].clone();
    let inuse = t.s.stats().stack_inuse;
    assert_eq!(inuse, 64 * 2 * K, "64 stacks of 2 KiB, in 4 whole spans");
    let p = t.p;
    // Outside mark: refused.
    let before = t.s.clone();
    assert!(matches!(
        t.s.gc_free_g_stacks(p),
        Err(Throw::Misuse(Misuse::WrongGcPhase { .. }))
    ));
    assert_eq!(t.s, before);
    t.s.gc_start().unwrap();
    let guards: Vec<u64> = global.iter().map(|g| t.s.gor.gs[g].stackguard0).collect();
    t.s.gc_free_g_stacks(p).unwrap();
    t.ok();
    assert!(t.s.gor.sched_gfree_stack.is_empty());
    assert_eq!(t.s.gor.sched_gfree_nostack, global, "same list, same order");
    assert_eq!(t.s.gor.p_gfree[&p], local, "the P's own list is left alone");
    for (g, guard) in global.iter().zip(guards) {
        let gg = &t.s.gor.gs[g];
        assert_eq!((gg.stack.lo, gg.stack.hi), (0, 0));
        assert_eq!(
            gg.stackguard0, guard,
            "markrootFreeGStacks leaves stackguard0"
        );
    }
    for g in &local {
        assert_eq!(t.size(*g), 2 * K);
    }
    // The frees went through the worker's P cache (which releases to the
    // pool when full); emptied pool spans wait for the end of the cycle.
    assert_eq!(t.s.stats().stack_inuse, inuse);
    assert!(t.s.ps[&p].stackcache[0].size > 0);
    // Once per cycle.
    let before = t.s.clone();
    assert_eq!(
        t.s.gc_free_g_stacks(p),
        Err(Throw::Misuse(Misuse::RootJobDone("markrootFreeGStacks")))
    );
    assert_eq!(t.s, before);
    t.gc_end();
    // 31 stacks of 2 KiB remain in use, 16 to a 32 KiB span.
    let spans: std::collections::BTreeSet<u64> =
        t.s.in_use.keys().map(|lo| lo / (32 * K)).collect();
    assert_eq!(t.s.in_use.len(), 31);
    assert_eq!(t.s.stats().stack_inuse, spans.len() as u64 * 32 * K);
    assert!(t.s.stats().stack_inuse <= 3 * 32 * K);
    // A new P takes 32 from the global lists (31 on P0 stay): the
    // goroutines without stacks get new ones of the starting size.
    let q = t.s.create_p().unwrap();
    let bottom = 0;
    let g = t.s.spawn(Ctx::on(q), bottom).unwrap();
    t.ok();
    assert!(gs.contains(&g) && global.contains(&g));
    assert_eq!(t.size(g), 2 * K);
}

/// Mark termination starts only when no root work is left: a cycle in
/// which no worker ran `markrootFreeGStacks` runs it at mark termination
/// (on the first P), so `gc_end` alone frees the global list's stacks.
#[test]
fn gc_end_runs_the_free_stacks_job_left_over() {
    for release in ["1.19", "1.23"] {
        let mut c = Config::new(Profile::parse("linux", "amd64", false, release).unwrap());
        c.arena_bytes = 256 << 20;
        let mut s = State::new(c).unwrap();
        let p = s.create_p().unwrap();
        let mut t = T { s, p };
        spill_dead_goroutines(&mut t);
        let global = t.s.gor.sched_gfree_stack.clone();
        t.s.gc_start().unwrap();
        t.gc_end();
        assert!(t.s.gor.sched_gfree_stack.is_empty(), "Go {release}");
        assert_eq!(t.s.gor.sched_gfree_nostack, global);
        assert!(t.s.stats().stack_inuse <= 3 * 32 * K);
        // The next cycle runs it again (on an empty list).
        t.s.gc_start().unwrap();
        t.s.gc_free_g_stacks(p).unwrap();
        t.gc_end();
    }
}

/// newstack with stackguard0 = stackPreempt on an M that `canPreemptM`
/// (runtime/preempt.go) refuses (preemption off, or no running P): Go
/// gives the guard back and resumes (runtime/stack.go newstack, Go 1.19
/// and 1.23); no shrink, and `preemptShrink` stays for a later preemption.
#[test]
fn newstack_leaves_a_non_preemptible_m_alone() {
    let mut t = T::new("386");
    let g = grown_then_shallow(&mut t, 60);
    let big = t.size(g);
    t.s.enter_syscall(g).unwrap();
    t.scan(g);
    t.s.exit_syscall(g).unwrap();
    assert!(t.s.gor.gs[&g].preempt_shrink);
    let f = t.func(Func::new("f", 64));
    for ctx in [
        Ctx {
            p: Some(t.p),
            preemptoff: true,
        },
        Ctx::no_p(),
    ] {
        t.s.request_preempt(g).unwrap();
        t.s.call(ctx, g, 0, f).unwrap();
        t.ok();
        let gg = &t.s.gor.gs[&g];
        assert_eq!(t.size(g), big, "no shrink");
        assert!(gg.preempt_shrink, "the request stays");
        assert_eq!(gg.stackguard0, gg.stack.lo + t.s.consts.stack_guard);
        t.ret(g);
    }
    // A preemptible M shrinks at the preemption.
    t.s.request_preempt(g).unwrap();
    t.call(g, 0, f);
    assert_eq!(t.size(g), big / 2);
    assert!(!t.s.gor.gs[&g].preempt_shrink);
    t.gc_end();
}

/// `preemptShrink` survives death and reuse: Go clears it only in
/// newstack's preemption branch (runtime/stack.go), not in gfput, gfget or
/// newproc1 (runtime/proc.go; Go 1.19 and 1.23).
#[test]
fn preempt_shrink_survives_death_and_reuse() {
    let mut t = T::new("amd64");
    let g = grown_then_shallow(&mut t, 60);
    t.s.enter_syscall(g).unwrap();
    t.scan(g);
    t.s.exit_syscall(g).unwrap();
    t.gc_end();
    assert!(t.s.gor.gs[&g].preempt_shrink);
    let ctx = t.ctx();
    t.s.exit(ctx, g).unwrap();
    assert!(t.s.gor.gs[&g].preempt_shrink);
    let bottom = t.func(ptr_func(&t, "bottom2", 2));
    let g2 = t.spawn(bottom);
    assert_eq!(g2, g, "the dead G is reused");
    assert!(t.s.gor.gs[&g2].preempt_shrink, "the flag came along");
    // Its first preemption serves the old request.
    let f = t.func(Func::new("f", 64));
    t.s.request_preempt(g2).unwrap();
    t.call(g2, 0, f);
    assert!(!t.s.gor.gs[&g2].preempt_shrink);
}

/// adjustctxt adjusts `sched.bp` only where `framepointer_enabled`
/// (runtime/runtime2.go: amd64 and arm64, in Go 1.19 and 1.23): on 386 a
/// value in the BP register (which the compiler uses as a general
/// register there) is left as it was when the stack moves. (amd64's and
/// arm64's adjustment: saved_frame_pointers_follow_the_stack.)
#[test]
fn sched_bp_is_not_adjusted_on_386() {
    let mut t = T::new("386");
    let bottom = t.func(ptr_func(&t, "bottom", 4));
    let g = t.spawn(bottom);
    let bp = t.s.gor.gs[&g].sp + 8;
    t.s.gor.gs.get_mut(&g).unwrap().bp = bp;
    let (old_hi, f) = (t.hi(g), t.func(Func::new("f", 64)));
    t.s.request_force_move(g).unwrap();
    t.call(g, 0, f);
    assert_ne!(t.hi(g), old_hi, "the stack moved");
    assert_eq!(t.s.gor.gs[&g].bp, bp);
}

/// gcComputeStartingStackSize (runtime/stack.go) rounds the average with
/// `round2(int32)`, which never returns above 2^30; the average can get
/// there only after `debug.SetMaxStack` raised `maxstacksize`. Refused,
/// nothing changed; 2^30 itself is fine.
#[test]
fn starting_stack_size_above_2_30_is_refused() {
    let mut t = T::new("amd64");
    t.s.set_max_stack(8 << 30);
    let guard = t.s.consts.stack_guard;
    t.s.gor.scanned.insert(t.p, ((1 << 30) + 1 - guard, 1));
    let before = t.s.clone();
    assert_eq!(
        t.s.gc_compute_starting_stack_size(),
        Err(Throw::Misuse(Misuse::StartingStackTooLarge((1 << 30) + 1)))
    );
    assert_eq!(t.s, before);
    t.s.gor.scanned.insert(t.p, ((1 << 30) - guard, 1));
    t.s.gc_compute_starting_stack_size().unwrap();
    assert_eq!(t.s.gor.starting_stack_size, 1 << 30);
}

/// A NOSPLIT function (no prologue check) with a small frame.
fn nosplit_func(t: &T, name: &str) -> Func {
    let mut f = ptr_func(t, name, 2);
    f.nosplit = true;
    f
}

/// System calls poison the guard: `reentersyscall` (runtime/proc.go, Go
/// 1.19 and 1.23) sets `stackguard0 = stackPreempt` and `throwsplit`, so
/// any split before `exitsyscall` throws "runtime: stack split at bad
/// time" (NOSPLIT code runs fine); `exitsyscall`'s fast path restores
/// the guard from `gp.preempt` (a forced move requested before is lost),
/// its slow path (`exitsyscall0` then `execute`) drops the preemption.
#[test]
fn syscalls_poison_the_guard() {
    let mut t = T::new("amd64");
    let bottom = t.func(ptr_func(&t, "bottom", 2));
    let leaf = t.func(nosplit_func(&t, "leaf"));
    let split = t.func(Func::new("split", 64));
    let g = t.spawn(bottom);
    let c = t.s.consts.clone();
    let lo = t.s.gor.gs[&g].stack.lo;
    t.s.request_force_move(g).unwrap();
    t.s.enter_syscall(g).unwrap();
    t.ok();
    let gg = &t.s.gor.gs[&g];
    assert_eq!(gg.stackguard0, c.stack_preempt);
    assert!(gg.throwsplit);
    // NOSPLIT code runs; a split throws; a return only from what was
    // called in the system call.
    t.call(g, 0, leaf);
    t.call_fails(g, split, Throw::Go(GoThrow::StackSplitAtBadTime));
    assert_eq!(
        GoThrow::StackSplitAtBadTime.to_string(),
        "runtime: stack split at bad time"
    );
    t.ret(g);
    let ctx = t.ctx();
    assert_eq!(t.s.ret(ctx, g), Err(Throw::Misuse(Misuse::GNotRunnable(g))));
    // Fast path, no preemption pending: the stack's guard; the forced
    // move asked for before the system call is gone.
    t.s.exit_syscall(g).unwrap();
    t.ok();
    let gg = &t.s.gor.gs[&g];
    assert_eq!(gg.stackguard0, lo + c.stack_guard);
    assert!(!gg.throwsplit);
    // A preemption requested during the system call survives the fast
    // path...
    t.s.enter_syscall(g).unwrap();
    t.s.request_preempt(g).unwrap();
    t.s.exit_syscall(g).unwrap();
    assert_eq!(t.s.gor.gs[&g].stackguard0, c.stack_preempt);
    assert!(t.s.gor.gs[&g].preempt);
    // ...and not the slow path, where execute schedules the goroutine.
    t.s.enter_syscall(g).unwrap();
    t.s.exit_syscall0(g).unwrap();
    t.ok();
    assert_eq!(t.s.gor.gs[&g].stackguard0, lo + c.stack_guard);
    assert!(!t.s.gor.gs[&g].preempt);
}

/// A goroutine that is scheduled (`execute`, runtime/proc.go) or
/// suspended by the GC for its scan (`suspendG`, runtime/preempt.go)
/// loses any preemption or forced move requested before: its guard is its
/// stack's again (Go 1.19 and 1.23).
#[test]
fn execute_and_suspend_drop_pending_requests() {
    let mut t = T::new("amd64");
    let bottom = t.func(ptr_func(&t, "bottom", 4));
    let g = t.spawn(bottom);
    let guard = t.s.consts.stack_guard;
    let c = t.s.make_chan(8).unwrap();
    let slot = t.addr(g, 0, Slot::Local(0));
    t.s.park(g, &[(c, slot)]).unwrap();
    t.s.request_preempt(g).unwrap();
    t.s.send(c, &[0]).unwrap();
    t.s.wake(g).unwrap();
    t.ok();
    let gg = &t.s.gor.gs[&g];
    assert_eq!(gg.stackguard0, gg.stack.lo + guard);
    assert!(!gg.preempt);
    t.s.request_force_move(g).unwrap();
    t.scan(g);
    let gg = &t.s.gor.gs[&g];
    assert_eq!(
        gg.stackguard0,
        gg.stack.lo + guard,
        "the scan dropped the move"
    );
    t.gc_end();
}

/// Fork: `syscall_runtime_BeforeFork` (runtime/proc.go, Go 1.19 and 1.23)
/// sets `stackguard0 = stackFork`, so a split in the child throws "stack
/// growth after fork"; `AfterFork` gives the stack's guard back. The M
/// holds a lock meanwhile, so it cannot be preempted: a preemption
/// request (which overwrites the guard, as `preemptone` does) only
/// restores the guard at the next prologue, and the GC cannot suspend the
/// goroutine.
#[test]
fn fork_poisons_the_guard() {
    let mut t = T::new("amd64");
    let bottom = t.func(ptr_func(&t, "bottom", 2));
    let split = t.func(Func::new("split", 64));
    let g = t.spawn(bottom);
    let c = t.s.consts.clone();
    let lo = t.s.gor.gs[&g].stack.lo;
    t.s.before_fork(g).unwrap();
    t.ok();
    assert_eq!(t.s.gor.gs[&g].stackguard0, c.stack_fork);
    t.call_fails(g, split, Throw::Go(GoThrow::StackGrowthAfterFork));
    let ctx = t.ctx();
    for refused in [
        t.s.clone().exit(ctx, g),
        t.s.clone().enter_syscall(g),
        t.s.clone().before_fork(g),
        t.s.clone().request_force_move(g),
    ] {
        assert_eq!(refused, Err(Throw::Misuse(Misuse::GNotRunnable(g))));
    }
    t.s.gc_start().unwrap();
    assert!(matches!(
        t.s.gc_scan(t.p, g),
        Err(Throw::Misuse(Misuse::WouldBlock(_)))
    ));
    t.s.request_preempt(g).unwrap();
    t.call(g, 0, split);
    let gg = &t.s.gor.gs[&g];
    assert_eq!(gg.stackguard0, lo + c.stack_guard, "canPreemptM said no");
    assert!(gg.preempt);
    t.ret(g);
    t.s.after_fork(g).unwrap();
    t.ok();
    assert_eq!(t.s.gor.gs[&g].stackguard0, lo + c.stack_guard);
    assert_eq!(
        t.s.after_fork(g),
        Err(Throw::Misuse(Misuse::GNotRunnable(g)))
    );
    t.scan(g);
    t.gc_end();
}

/// `asyncSafePoint` is set only while an asynchronous preemption holds the
/// goroutine stopped (`asyncPreempt2`, runtime/preempt.go) and cleared
/// before it runs Go code again: a stopped goroutine makes no calls, so
/// "shrinkstack at bad time" (a preemption shrink at an async safe point)
/// cannot happen.
#[test]
fn async_safe_point_only_while_stopped() {
    let mut t = T::new("amd64");
    let bottom = t.func(ptr_func(&t, "bottom", 2));
    let f = t.func(Func::new("f", 64));
    let g = t.spawn(bottom);
    assert_eq!(
        t.s.set_async_safe_point(g, false),
        Err(Throw::Misuse(Misuse::GNotRunnable(g)))
    );
    t.s.set_async_safe_point(g, true).unwrap();
    t.s.request_preempt(g).unwrap();
    t.call_fails(g, f, Throw::Misuse(Misuse::GNotRunnable(g)));
    assert_eq!(
        t.s.set_async_safe_point(g, true),
        Err(Throw::Misuse(Misuse::GNotRunnable(g)))
    );
    t.s.set_async_safe_point(g, false).unwrap();
    t.call(g, 0, f);
    t.s.enter_syscall(g).unwrap();
    assert_eq!(
        t.s.set_async_safe_point(g, true),
        Err(Throw::Misuse(Misuse::GNotRunnable(g)))
    );
}

/// GC stack scanning is exactly once per goroutine per cycle, during mark
/// (runtime/mgcmark.go `gcMarkRootPrepare`, `markroot`; runtime/mgc.go
/// `gcResetMarkState`, `gcMarkDone`; Go 1.19 and 1.23): the stack roots
/// are the goroutines that existed at gcStart (`allGsSnapshot`); one
/// created later is not scanned; a second scan of a live root throws "g
/// already scanned"; mark termination begins only once every root is
/// scanned (the spec scans what is left, on the first P).
#[test]
fn each_goroutine_is_scanned_once_per_cycle() {
    let mut t = T::new("amd64");
    let a = grown_then_shallow(&mut t, 60);
    let b = grown_then_shallow(&mut t, 60);
    let big = t.size(a);
    assert_eq!(t.size(b), big);
    let bottom = t.func(ptr_func(&t, "bottom2", 2));
    let dead = t.spawn(bottom);
    let ctx = t.ctx();
    t.s.exit(ctx, dead).unwrap();
    t.s.gc_start().unwrap();
    assert_eq!(t.s.gor.n_stack_roots, 3);
    let p = t.p;
    // A dead root is only marked done, as often as asked; reused now, its
    // job has run for this cycle.
    t.s.gc_scan(p, dead).unwrap();
    t.s.gc_scan(p, dead).unwrap();
    assert_eq!(t.spawn(bottom), dead);
    assert!(t.s.gor.gs[&dead].gcscandone);
    let late = t.spawn(bottom);
    let before = t.s.clone();
    assert_eq!(
        t.s.gc_scan(p, late),
        Err(Throw::Misuse(Misuse::NotAStackRoot(late)))
    );
    assert_eq!(t.s, before);
    t.scan(a);
    assert_eq!(t.size(a), big / 2);
    assert_eq!(t.s.gc_scan(p, a), Err(Throw::Go(GoThrow::GAlreadyScanned)));
    revive(&mut t.s, GoThrow::GAlreadyScanned);
    assert_eq!(GoThrow::GAlreadyScanned.to_string(), "g already scanned");
    assert_eq!(t.s.stack_roots_left(), vec![b]);
    // Mark termination scans b; the late goroutine is not scanned.
    t.s.gc_mark_termination().unwrap();
    t.ok();
    assert_eq!(
        t.size(b),
        big / 2,
        "scanned (and shrunk) at mark termination"
    );
    assert!(!t.s.gor.gs[&late].gcscandone);
    assert!(matches!(
        t.s.gc_scan(p, late),
        Err(Throw::Misuse(Misuse::WrongGcPhase { .. }))
    ));
    // Two roots scanned: the starting size comes from them alone.
    assert_eq!(t.s.gor.starting_stack_size, 2 * K);
    t.gc_end();
    // The next cycle takes the late goroutine as a root.
    t.s.gc_start().unwrap();
    assert_eq!(t.s.stack_roots_left(), vec![a, b, dead, late]);
    t.gc_end();
}

/// A state whose GODEBUG switches are set by `f`.
fn with_godebug(arch: &str, f: impl Fn(&mut gostack_spec::stack::Godebug)) -> T {
    let mut c = Config::new(Profile::parse("linux", arch, false, "1.23").unwrap());
    c.arena_bytes = 256 << 20;
    f(&mut c.godebug);
    let mut s = State::new(c).unwrap();
    let p = s.create_p().unwrap();
    T { s, p }
}

/// Go's GODEBUG switches for stacks (runtime/runtime1.go; runtime/stack.go
/// `gcComputeStartingStackSize`, `adjustpointers`, `shrinkstack`; the same
/// in Go 1.19 and 1.23): `adaptivestackstart=0` keeps the starting size
/// at fixedStack and never resets the scan counts; `invalidptr=0` lets
/// junk in a pointer slot through a copy; `gcshrinkstackoff=1` never
/// shrinks (an unsafe scan still sets `preemptShrink`, and a preemption
/// still clears it).
#[test]
fn godebug_switches() {
    let d = gostack_spec::stack::Godebug::default();
    assert!(d.adaptive_stack_start && d.invalid_ptr && !d.gc_shrink_stack_off);

    let mut t = with_godebug("amd64", |d| d.adaptive_stack_start = false);
    let bottom = t.func(ptr_func(&t, "bottom", 2));
    let deep = t.func(Func::new("deep", 3 * K));
    let g = t.spawn(bottom);
    t.call(g, 0, deep);
    t.call(g, 0, deep);
    t.scan(g);
    t.gc_end();
    assert_eq!(t.s.gor.starting_stack_size, 2 * K);
    assert_eq!(t.s.gor.scanned[&t.p].1, 1, "the counts stay");
    t.scan(g);
    t.gc_end();
    assert_eq!(t.s.gor.scanned[&t.p].1, 2);

    let mut t = with_godebug("amd64", |d| d.invalid_ptr = false);
    let bottom = t.func(ptr_func(&t, "bottom", 2));
    let big = t.func(Func::new("big", 8 * K));
    let g = t.spawn(bottom);
    t.s.write_slot(g, 0, Slot::Local(0), 0x17).unwrap();
    t.call(g, 0, big);
    assert_eq!(t.s.read_word(t.addr(g, 1, Slot::Local(0))), 0x17);

    let mut t = with_godebug("amd64", |d| d.gc_shrink_stack_off = true);
    let g = grown_then_shallow(&mut t, 60);
    let size = t.size(g);
    t.scan(g);
    assert_eq!(t.size(g), size, "no shrink at the scan");
    t.s.enter_syscall(g).unwrap();
    t.scan(g);
    assert!(t.s.gor.gs[&g].preempt_shrink);
    t.s.exit_syscall(g).unwrap();
    t.s.request_preempt(g).unwrap();
    let f = t.func(Func::new("f", 64));
    t.call(g, 0, f);
    assert_eq!(t.size(g), size, "no shrink at the preemption");
    assert!(!t.s.gor.gs[&g].preempt_shrink);
    t.gc_end();
}

/// A new goroutine has not run yet: `newproc1` (runtime/proc.go, Go 1.19
/// and 1.23) leaves `sched.sp` below the top words with goexit's return
/// address and `sched.pc` at the entry; the entry's prologue and frame
/// run when a scheduler first runs it (`execute`), on that M. So a GC scan
/// of it counts 40 bytes on amd64, and the growth its entry needs is
/// allocated from the P that runs it.
#[test]
fn a_new_goroutine_has_not_run_yet() {
    let mut t = T::new("amd64");
    let f = t.func(ptr_func(&t, "entry", 4 * 1024 / 8));
    let ctx = t.ctx();
    let g = t.s.newproc(ctx, f).unwrap();
    t.ok();
    let gg = &t.s.gor.gs[&g];
    assert_eq!(gg.pc, gostack_spec::goroutine::Pc::Entry(f));
    assert_eq!(
        gg.stack.hi - gg.sp,
        40,
        "newproc1's 4 words and goexit's PC"
    );
    assert_eq!(
        t.s.call(ctx, g, 0, f),
        Err(Throw::Misuse(Misuse::NotStarted(g)))
    );
    assert_eq!(
        t.s.enter_syscall(g),
        Err(Throw::Misuse(Misuse::NotStarted(g)))
    );
    assert_eq!(t.s.exit(ctx, g), Err(Throw::Misuse(Misuse::NotStarted(g))));
    // The GC scans the 40 bytes.
    t.scan(g);
    assert_eq!(t.s.gor.scanned[&t.p], (40, 1));
    t.gc_end();
    assert_eq!(t.s.gor.starting_stack_size, 2 * K);
    // Another P runs it: the entry's growth comes from that P's cache.
    let q = t.s.create_p().unwrap();
    let old_lo = t.s.gor.gs[&g].stack.lo;
    t.s.start(Ctx::on(q), g).unwrap();
    t.ok();
    assert_eq!(t.size(g), 8 * K);
    assert_eq!(t.depth(g), 1);
    assert_eq!(
        t.s.ps[&q].stackcache[0].list,
        vec![old_lo],
        "the old stack went to the running P's cache"
    );
    assert!(t.s.ps[&q].stackcache[2].size > 0, "q refilled for 8 KiB");
    assert_eq!(
        t.s.start(Ctx::on(q), g),
        Err(Throw::Misuse(Misuse::NotAtEntry(g)))
    );
    // spawn is newproc and start at once.
    let h = t.spawn(f);
    assert_eq!(t.depth(h), 1);
}

/// Go: the world is stopped from `gcMarkDone` until `gcMarkTermination`
/// has set `_GCoff` (runtime/mgc.go, Go 1.19 and 1.23): in
/// `_GCmarktermination` no goroutine is made, runs, calls, returns, parks,
/// is woken or enters a system call. Each refusal changes nothing.
#[test]
fn no_goroutine_runs_in_mark_termination() {
    let mut t = T::new("amd64");
    let f = t.func(ptr_func(&t, "f", 4));
    let g = t.spawn(f);
    t.s.gc_start().unwrap();
    t.s.gc_mark_termination().unwrap();
    let ctx = t.ctx();
    let before = t.s.clone();
    let stopped = Err(Throw::Misuse(Misuse::WouldBlock(
        gostack_spec::WORLD_STOPPED,
    )));
    assert_eq!(t.s.spawn(ctx, f).map(|_| ()), stopped);
    assert_eq!(t.s.newproc(ctx, f).map(|_| ()), stopped);
    assert_eq!(t.s.call(ctx, g, 0, f), stopped);
    assert_eq!(t.s.ret(ctx, g), stopped);
    assert_eq!(t.s.enter_syscall(g), stopped);
    assert_eq!(t.s.request_preempt(g), stopped);
    assert_eq!(t.s.exit(ctx, g), stopped);
    assert_eq!(t.s, before);
    t.s.gc_off().unwrap();
    t.call(g, 0, f);
    t.ret(g);
}

/// Go: `isAsyncSafePoint` (runtime/preempt.go, Go 1.19 and 1.23) refuses
/// an async preemption when SP is fewer than `asyncPreemptStack` bytes
/// above `stack.lo` (472 on amd64, 200 on 386, 592 on arm64): the
/// injected call to `asyncPreempt` must fit. After a split-checked
/// prologue more than StackGuard - StackSmall bytes are always left, so
/// only NOSPLIT code runs that low.
#[test]
fn async_preemption_needs_room_above_lo() {
    for (arch, needs) in [("amd64", 472u64), ("386", 200), ("arm64", 592)] {
        let mut t = T::new(arch);
        assert_eq!(
            gostack_spec::goroutine::async_preempt_stack(t.s.config.profile.goarch),
            Some(needs)
        );
        let bottom = t.func(ptr_func(&t, "bottom", 2));
        let g = t.spawn(bottom);
        let room = |t: &T| t.s.gor.gs[&g].sp - t.s.gor.gs[&g].stack.lo;
        // A frame that leaves SP just above lo + StackGuard - StackSmall
        // (the lowest a split-checked function runs at) without growing.
        let fill = (room(&t) - 800 - 64) / 16 * 16;
        let mut filler = Func::new("filler", fill);
        filler.sites = vec![Site {
            locals: vec![],
            args: vec![],
        }];
        let filler = t.func(filler);
        t.call(g, 0, filler);
        assert_eq!(t.size(g), 2 * K, "{arch}: no growth");
        assert!(room(&t) >= needs, "{arch}: room {}", room(&t));
        t.s.set_async_safe_point(g, true).unwrap();
        t.s.set_async_safe_point(g, false).unwrap();
        // A NOSPLIT frame below that leaves less than asyncPreemptStack.
        let mut low = Func::new("low", (room(&t) - needs / 2) / 16 * 16);
        low.nosplit = true;
        let low = t.func(low);
        t.call(g, 0, low);
        let r = room(&t);
        assert!(r < needs, "{arch}: room {r}");
        let before = t.s.clone();
        assert_eq!(
            t.s.set_async_safe_point(g, true),
            Err(Throw::Misuse(Misuse::NoRoomForAsyncPreempt {
                g,
                room: r,
                needs
            })),
            "{arch}"
        );
        assert_eq!(t.s, before);
        t.ret(g);
        t.s.set_async_safe_point(g, true).unwrap();
    }
}

fn state(goos: &str, arch: &str, race: bool, rel: &str) -> State {
    let mut c = Config::new(Profile::parse(goos, arch, race, rel).unwrap());
    c.arena_bytes = 64 << 20;
    State::new(c).unwrap()
}

/// Go: `allocm` (runtime/proc.go, Go 1.19 and 1.23) first frees the g0
/// stacks of the Ms on `sched.freem`, then `mpreinit` (runtime/os_linux.go)
/// takes a 32 KiB gsignal stack and `malg` the g0 stack, 8 KiB in Go 1.19
/// and 16 KiB in Go 1.23 (times StackGuardMultiplier: 32 KiB in a 1.23
/// race build), on the caller's P. `mexit` frees gsignal at once; the g0
/// stack waits on `sched.freem` for the next `allocm`, which frees it into
/// the same P cache and so takes it straight back.
#[test]
fn m_stacks_come_from_the_stack_allocator() {
    for (rel, race, g0) in [
        ("1.19", false, 8 * K),
        ("1.23", false, 16 * K),
        ("1.23", true, 32 * K),
    ] {
        let mut s = state("linux", "amd64", race, rel);
        let p = s.create_p().unwrap();
        assert_eq!(s.m_stack_sizes(), Ok((32 * K, g0)));
        let m = s.create_m(Ctx::on(p)).unwrap();
        check_invariants(&s).unwrap();
        let ms = s.gor.ms[&m];
        assert_eq!(ms.gsignal.hi - ms.gsignal.lo, 32 * K);
        assert_eq!(ms.g0.hi - ms.g0.lo, g0);
        // A 32 KiB span for gsignal, and one for g0: a pool span refilled
        // into p's cache, or (32 KiB) a large span of its own.
        assert_eq!(s.stats().stack_inuse, 64 * K, "{rel} race={race}");
        // mexit with the GC off: gsignal's span goes back to the heap.
        s.exit_m(Ctx::on(p), m).unwrap();
        check_invariants(&s).unwrap();
        assert_eq!(s.stats().stack_inuse, 32 * K);
        assert_eq!(s.gor.freem, vec![(m, ms.g0)]);
        assert_eq!(
            s.exit_m(Ctx::on(p), m),
            Err(Throw::Misuse(Misuse::NoSuchM(m)))
        );
        // The next M reaps the g0 stack and, through p's cache (or the
        // heap's first fit), gets the same memory back.
        let n = s.create_m(Ctx::on(p)).unwrap();
        check_invariants(&s).unwrap();
        assert!(s.gor.freem.is_empty());
        assert_eq!(s.gor.ms[&n].g0, ms.g0, "{rel} race={race}");
        assert_eq!(s.stats().stack_inuse, 64 * K);
        // During a GC cycle gsignal's span waits on stackLarge, and the
        // next M's gsignal is taken from there.
        s.gc_start().unwrap();
        let old = s.gor.ms[&n];
        s.exit_m(Ctx::on(p), n).unwrap();
        assert_eq!(s.stats().stack_inuse, 64 * K, "kept during the cycle");
        let o = s.create_m(Ctx::on(p)).unwrap();
        if g0 == 32 * K {
            // The reaped 32 KiB g0 went on stackLarge's list after
            // gsignal, at its head: gsignal takes it, g0 takes the old
            // gsignal.
            assert_eq!(
                s.gor.ms[&o],
                gostack_spec::goroutine::MStacks {
                    g0: old.gsignal,
                    gsignal: old.g0
                }
            );
        } else {
            assert_eq!(s.gor.ms[&o].gsignal, old.gsignal, "{rel}");
            assert_eq!(s.gor.ms[&o].g0, old.g0, "{rel}: back from p's cache");
        }
        assert_eq!(s.stats().stack_inuse, 64 * K);
        check_invariants(&s).unwrap();
        // No M is made or exits while the world is stopped.
        s.gc_mark_termination().unwrap();
        let before = s.clone();
        let stopped = Err(Throw::Misuse(Misuse::WouldBlock(
            gostack_spec::WORLD_STOPPED,
        )));
        assert_eq!(s.create_m(Ctx::on(p)).map(|_| ()), stopped);
        assert_eq!(s.exit_m(Ctx::on(p), o), stopped);
        assert_eq!(s, before);
    }
    // Other systems take g0 or gsignal from the OS: not modelled.
    let mut s = state("windows", "amd64", false, "1.23");
    let p = s.create_p().unwrap();
    let before = s.clone();
    assert_eq!(
        s.create_m(Ctx::on(p)),
        Err(Throw::Misuse(Misuse::MStacksNotModeled("windows")))
    );
    assert_eq!(s, before);
}

/// A refused `allocm` (out of memory for g0 after gsignal was taken, or
/// after the reaped g0 stacks were freed) changes nothing.
#[test]
fn a_refused_allocm_changes_nothing() {
    let mut c = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
    c.arena_bytes = 4 << 20;
    let mut s = State::new(c).unwrap();
    let p = s.create_p().unwrap();
    // 12 of the arena's 512 pages left: one M (4 + 4 pages), a 16 KiB
    // stack that takes the pool span's other slot, then gsignal fits and
    // g0's new pool span does not.
    s.heap_alloc(500).unwrap();
    let m = s.create_m(Ctx::on(p)).unwrap();
    s.stackalloc(Ctx::on(p), 16 * K).unwrap();
    let before = s.clone();
    assert_eq!(s.create_m(Ctx::on(p)), Err(Throw::Go(GoThrow::OutOfMemory)));
    revive(&mut s, GoThrow::OutOfMemory);
    assert_eq!(s, before);
    s.exit_m(Ctx::on(p), m).unwrap();
    check_invariants(&s).unwrap();
}

/// Go: `mexit` pushes the M on the head of `sched.freem`, and `allocm`
/// walks the list from the head: the g0 stack of the M that exited last is
/// freed first, so (a P cache being last in, first out) the new M gets the
/// g0 stack of the M that exited first.
#[test]
fn allocm_reaps_the_last_exited_m_first() {
    let mut s = state("linux", "amd64", false, "1.19");
    let p = s.create_p().unwrap();
    let (a, b) = (
        s.create_m(Ctx::on(p)).unwrap(),
        s.create_m(Ctx::on(p)).unwrap(),
    );
    let (ga, gb) = (s.gor.ms[&a].g0, s.gor.ms[&b].g0);
    s.exit_m(Ctx::on(p), a).unwrap();
    s.exit_m(Ctx::on(p), b).unwrap();
    assert_eq!(s.gor.freem, vec![(a, ga), (b, gb)]);
    let c = s.create_m(Ctx::on(p)).unwrap();
    assert_eq!(s.gor.ms[&c].g0, ga);
    assert_eq!(s.ps[&p].stackcache[2].list, vec![gb.lo]);
    check_invariants(&s).unwrap();
}

/// Go: `adjustdefers` (runtime/stack.go) adjusts `fn`, `sp` and `link` of
/// each `_defer` in Go 1.23, and in Go 1.19 also `_panic`, `varp` and `fd`
/// (runtime2.go's `_defer` of 1.19 has them; 1.23's does not). A heap
/// record whose `_panic` and `varp` point into the stack keeps pointing at
/// the moved panic record and frame in 1.19.
#[test]
fn go_1_19_adjustdefers_also_adjusts_panic_and_varp() {
    use gostack_spec::goroutine::{defer_fields, defer_link_index, DeferField, StackObject};
    for rel in ["1.19", "1.23"] {
        let mut s = state("linux", "amd64", false, rel);
        let p = s.create_p().unwrap();
        let ctx = Ctx::on(p);
        let mut f = Func::new("f", 64);
        f.sites = vec![Site {
            locals: vec![false; 7],
            args: vec![],
        }];
        f.objects.push(StackObject {
            off: -6 * 8,
            size: 5 * 8,
            ptrs: vec![true; 5],
        });
        let f = s.add_func(f).unwrap();
        let big = s.add_func(Func::new("big", 16 * K)).unwrap();
        let g = s.spawn(ctx, f).unwrap();
        let pr = s.panic_push(g, 0, 0).unwrap();
        let d = s.defer_push(g, 0, 0x40_1000, None).unwrap();
        let fields = defer_fields(s.config.profile.release);
        let word = |s: &State, f: DeferField| {
            let i = fields.iter().position(|&x| x == f).unwrap() as u64;
            s.read_word(d + 8 * i)
        };
        assert_eq!(fields.len(), if rel == "1.19" { 5 } else { 3 });
        assert_eq!(
            defer_link_index(s.config.profile.release),
            if rel == "1.19" { 3 } else { 2 }
        );
        let old_frame = s.frames(g).unwrap()[0].clone();
        if rel == "1.19" {
            assert_eq!(word(&s, DeferField::Panic), pr);
            assert_eq!(word(&s, DeferField::Varp), old_frame.varp);
        }
        s.call(ctx, g, 0, big).unwrap();
        check_invariants(&s).unwrap();
        let fr = s.frames(g).unwrap()[1].clone();
        assert_ne!(fr.sp, old_frame.sp, "{rel}: the stack moved");
        assert_eq!(word(&s, DeferField::Sp), fr.sp, "{rel}");
        assert_eq!(word(&s, DeferField::Fn), 0x40_1000);
        assert_eq!(word(&s, DeferField::Link), 0);
        if rel == "1.19" {
            assert_eq!(word(&s, DeferField::Panic), s.gor.gs[&g].panic_head);
            assert_ne!(word(&s, DeferField::Panic), pr);
            assert_eq!(word(&s, DeferField::Varp), fr.varp);
        }
        s.ret(ctx, g).unwrap();
        s.defer_pop(g).unwrap();
        assert_eq!(s.gor.gs[&g].defer_head, 0);
    }
}

/// Goroutines under `GODEBUG=efence=1` (runtime/stack.go stackalloc and
/// stackfree; proc.go gfput, gfget; stack.go newstack, shrinkstack):
/// malg's 2K request gets a 4K page, so the goroutine starts with twice
/// fixedStack; growth doubles that (4K to 8K) and `sysFault`s the old
/// stack; a shrink of a 4K stack asks for 2K (not below fixedStack) and so
/// copies into a fresh 4K page; `gfput` frees every such stack at exit,
/// since its size is not startingStackSize. StackInuse never moves;
/// StackSys counts every page ever mapped.
#[test]
fn efence_goroutines() {
    let mut c = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
    c.arena_bytes = 4 << 20;
    c.godebug.efence = true;
    let mut s = State::new(c).unwrap();
    let p = s.create_p().unwrap();
    let mut t = T { s, p };
    let bottom = t.func(ptr_func(&t, "bottom", 2));
    let g = t.spawn(bottom);
    assert_eq!(t.size(g), 4 * K, "2K rounded up to the page");
    let first = t.s.gor.gs[&g].stack;
    // A frame that fits in 4K but not in 2K: no growth.
    let f = t.func(Func::new("f", 1400));
    t.call(g, 0, f);
    assert_eq!(t.s.gor.gs[&g].stack, first);
    let f3k = t.func(Func::new("f3k", 3 * K));
    t.call(g, 0, f3k);
    assert_eq!(t.size(g), 8 * K, "4K doubled");
    assert_eq!(t.s.sys.faulted, 4 * K, "the old stack is faulted");
    t.ret(g);
    t.ret(g);
    t.scan(g);
    assert_eq!(t.size(g), 4 * K, "8K halved");
    t.gc_end();
    let before = t.s.gor.gs[&g].stack;
    t.scan(g);
    let after = t.s.gor.gs[&g].stack;
    assert_eq!(
        after.hi - after.lo,
        4 * K,
        "a 2K request is a 4K page again"
    );
    assert!(after.lo > before.lo, "moved to a new page");
    t.gc_end();
    let st = t.s.stats();
    assert_eq!(st.stack_inuse, 0);
    assert_eq!(st.stack_sys, (4 + 8 + 4 + 4) * K);
    let ctx = t.ctx();
    t.s.exit(ctx, g).unwrap();
    t.ok();
    assert_eq!(t.s.gor.gs[&g].stack.lo, 0, "gfput freed the 4K stack");
    assert_eq!(t.s.sys.faulted, (4 + 8 + 4 + 4) * K);
    // The reused goroutine gets a new page from gfget.
    let g2 = t.spawn(bottom);
    assert_eq!(g2, g);
    assert_eq!(t.size(g2), 4 * K);
    assert_eq!(t.s.stats().stack_sys, 24 * K);
}

/// shrinkstack's boundary (runtime/stack.go, both releases): a stack is
/// kept when `hi - sched.sp + StackNosplit` (Go 1.19 calls the term
/// `_StackLimit`) is at least a quarter of it, and halved one word below.
#[test]
fn shrink_boundary_is_exactly_a_quarter() {
    for release in ["1.19", "1.23"] {
        for below in [false, true] {
            let mut c = Config::new(Profile::parse("linux", "amd64", false, release).unwrap());
            c.arena_bytes = 64 << 20;
            let mut s = State::new(c).unwrap();
            let p = s.create_p().unwrap();
            let mut t = T { s, p };
            let bottom = t.func(ptr_func(&t, "bottom", 2));
            let g = t.spawn(bottom);
            // Grow to 8 KiB once, then come back.
            let big = t.func(Func::new("big", 5000));
            t.call(g, 0, big);
            t.ret(g);
            assert_eq!(t.size(g), 8 * K, "go{release}");
            // A probe frame to measure what a call costs besides its frame.
            let probe = t.func(Func::new("probe", 64));
            t.call(g, 0, probe);
            let gr = &t.s.gor.gs[&g];
            let overhead = gr.stack.hi - gr.sp - 64;
            t.ret(g);
            // The frame that puts used exactly at a quarter (or a word under).
            let quarter = 8 * K / 4;
            let want_hi_minus_sp = quarter - t.s.consts.stack_nosplit - if below { 8 } else { 0 };
            let f = t.func(Func::new("edge", want_hi_minus_sp - overhead));
            t.call(g, 0, f);
            let gr = &t.s.gor.gs[&g];
            assert_eq!(gr.stack.hi - gr.sp, want_hi_minus_sp, "go{release}");
            t.scan(g);
            let size = t.size(g);
            assert_eq!(
                size,
                if below { 4 * K } else { 8 * K },
                "go{release}, used {} of a quarter {quarter}",
                want_hi_minus_sp + t.s.consts.stack_nosplit
            );
            t.gc_end();
        }
    }
}

/// gcComputeStartingStackSize's guard term (runtime/stack.go, both
/// releases): the new starting size is round2(average scanned size +
/// StackGuard), so an average that brings the sum exactly to a power of
/// two keeps it, and one byte more doubles it.
#[test]
fn starting_size_adds_the_guard_before_rounding() {
    for release in ["1.19", "1.23"] {
        for over in [0u64, 8] {
            let mut c = Config::new(Profile::parse("linux", "amd64", false, release).unwrap());
            c.arena_bytes = 64 << 20;
            let mut s = State::new(c).unwrap();
            let p = s.create_p().unwrap();
            let mut t = T { s, p };
            let guard = t.s.consts.stack_guard;
            let bottom = t.func(ptr_func(&t, "bottom", 2));
            let g = t.spawn(bottom);
            let probe = t.func(Func::new("probe", 64));
            t.call(g, 0, probe);
            let gr = &t.s.gor.gs[&g];
            let overhead = gr.stack.hi - gr.sp - 64;
            t.ret(g);
            // Scanned size such that size + guard = 4096 (+ over).
            let scanned = 4096 - guard + over;
            let f = t.func(Func::new("edge", scanned - overhead));
            t.call(g, 0, f);
            let gr = &t.s.gor.gs[&g];
            assert_eq!(gr.stack.hi - gr.sp, scanned, "go{release}");
            // The cycle's end runs gcComputeStartingStackSize.
            t.scan(g);
            t.gc_end();
            assert_eq!(
                t.s.gor.starting_stack_size,
                if over == 0 { 4096 } else { 8192 },
                "go{release}: average {scanned} + guard {guard}"
            );
        }
    }
}

/// The bottom StackSystem bytes of a stack are the OS's (4 KiB on
/// windows/amd64 Go 1.23): the linker's nosplit limit keeps every frame
/// above them, so a NOSPLIT frame that would reach into them is a program
/// the linker rejects, refused as on linux a frame past `lo` is. The frame
/// that ends exactly at `lo + StackSystem` fits.
#[test]
fn nosplit_frames_stay_above_the_stack_system_area() {
    for (goos, system) in [("windows", 4096), ("linux", 0)] {
        let mut c = Config::new(Profile::parse(goos, "amd64", false, "1.23").unwrap());
        c.arena_bytes = 64 << 20;
        let mut s = State::new(c).unwrap();
        assert_eq!(s.consts.stack_system, system);
        let ctx = Ctx::on(s.create_p().unwrap());
        let main = s.add_func(Func::new("main", 64)).unwrap();
        let g = s.spawn(ctx, main).unwrap();
        let (sp, lo) = (s.gor.gs[&g].sp, s.gor.gs[&g].stack.lo);
        // CALL pushes 8 bytes; the callee's frame then ends at its SP.
        let fits = sp - 8 - lo - system;
        for (frame, ok) in [(fits, true), (fits + 8, false)] {
            let mut f = Func::new(&format!("nosplit{frame}"), frame);
            f.nosplit = true;
            let mut t = s.clone();
            let callee = t.add_func(f).unwrap();
            let r = t.call(ctx, g, 0, callee);
            if ok {
                assert_eq!(r, Ok(()), "{goos}: a frame down to lo + StackSystem");
                assert_eq!(t.gor.gs[&g].sp, lo + system);
                check_invariants(&t).unwrap();
            } else {
                assert_eq!(r, Err(Misuse::NosplitOverrun(g).into()), "{goos}");
                assert_eq!(t.dead, None, "a refusal, not a throw");
            }
        }
    }
}

/// A spawn whose NOSPLIT entry does not fit on the stack the goroutine
/// would get is refused before anything changes (on windows/amd64 Go
/// 1.23 the new stack is 8 KiB, its bottom 4 KiB the OS's).
#[test]
fn a_nosplit_entry_that_does_not_fit_is_refused_first() {
    let mut c = Config::new(Profile::parse("windows", "amd64", false, "1.23").unwrap());
    c.arena_bytes = 64 << 20;
    let mut s = State::new(c).unwrap();
    let ctx = Ctx::on(s.create_p().unwrap());
    let mut f = Func::new("entry", 4 << 10);
    f.nosplit = true;
    let f = s.add_func(f).unwrap();
    let before = s.clone();
    assert_eq!(
        s.spawn(ctx, f),
        Err(Misuse::NosplitEntryOverrun("entry".into()).into())
    );
    assert_eq!(s, before, "a refusal changes nothing");
    // newproc's own refusals come first.
    assert_eq!(s.spawn(Ctx::on(9), f), Err(Misuse::NoSuchP(9).into()));
}

/// After a Go throw every operation that could change the state is
/// refused with `Misuse::Dead`.
#[test]
fn a_dead_runtime_refuses_every_operation() {
    let mut t = T::new("amd64");
    let main = t.func(ptr_func(&t, "main", 2));
    let g = t.spawn(main);
    let ctx = t.ctx();
    assert_eq!(
        t.s.stackalloc(ctx, 3000),
        Err(GoThrow::StackSizeNotPowerOf2.into())
    );
    let dead: Result<(), Throw> = Err(Misuse::Dead(GoThrow::StackSizeNotPowerOf2).into());
    let s = &mut t.s;
    assert_eq!(s.create_p().map(|_| ()), dead);
    assert_eq!(s.add_func(Func::new("late", 64)).map(|_| ()), dead);
    assert_eq!(s.spawn(ctx, main).map(|_| ()), dead);
    assert_eq!(s.call(ctx, g, 0, main), dead);
    assert_eq!(s.ret(ctx, g), dead);
    assert_eq!(s.enter_syscall(g), dead);
    assert_eq!(s.exit_syscall(g), dead);
    assert_eq!(s.exit_syscall0(g), dead);
    assert_eq!(s.request_preempt(g), dead);
    assert_eq!(s.gc_start(), dead);
    assert_eq!(s.exit(ctx, g), dead);
}
