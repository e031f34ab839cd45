//! The spec's judgement of the impl's concurrent goroutine layer
//! ([`gostack::Sched`]), shared by its loom models
//! (`models/tests/loom_{chan,park,grow}.rs`) and its threaded stress test
//! (`models/tests/conc_threads.rs`).
//!
//! A `Sched` run is judged by what a sequential spec does with the same
//! operations in the order the impl performed them: the copies of one
//! goroutine are ordered by its status (whoever copies owns it), so
//! [`gostack::Sched::copies`] is a linearization of every allocator call
//! the run made after the goroutines were spawned. [`replay`] applies it to
//! a `State`, and [`adjusted_frame`] runs the spec's `adjustpointers` over
//! a frame for each copy. The `check_*` functions hold each model's
//! properties (the models' files state them), so that the loom models and
//! the threaded test judge runs the same way.

use gostack::conc::{gstatus, Copy, ScanReport};
use gostack::Sched;
use gostack_spec::{check_invariants, Config, Ctx, Misuse, Stack, State, Throw};

/// The arena of the models: small, so that snapshots are short.
pub fn config() -> Config {
    let mut c = Config::new(
        gostack_spec::Profile::parse("linux", "amd64", false, "1.23").expect("a Go port"),
    );
    c.arena_bytes = 4 << 20;
    c
}

/// Replays the allocator calls of a run on the spec: `spawned` (the
/// goroutines' first stacks, in spawn order), then for each copy the new
/// stack's allocation and the old one's free, without a P. Panics if a
/// result differs from the impl's (same offsets from the arena base), if
/// the final snapshots differ, or if the spec's invariants fail; returns
/// the spec's state.
pub fn replay(config: &Config, sched: &Sched, spawned: &[Stack]) -> State {
    let mut spec = State::new(config.clone()).expect("the models' config");
    let (ibase, sbase) = (sched.stacks().base(), spec.config.arena_base);
    let to_spec = |s: Stack| Stack {
        lo: s.lo - ibase + sbase,
        hi: s.hi - ibase + sbase,
    };
    for &s in spawned {
        let got = spec.stackalloc(Ctx::no_p(), s.hi - s.lo);
        assert_eq!(got, Ok(to_spec(s)), "spawn's stack differs from the spec's");
    }
    let copies = sched.copies();
    for (i, c) in copies.iter().enumerate() {
        let got = spec.stackalloc(Ctx::no_p(), c.new.hi - c.new.lo);
        assert_eq!(
            got,
            Ok(to_spec(c.new)),
            "copy {i}: new stack differs from the spec's; copies {copies:?}"
        );
        let freed = spec.stackfree(Ctx::no_p(), to_spec(c.old));
        assert_eq!(
            freed,
            Ok(()),
            "copy {i}: freeing the old stack; copies {copies:?}"
        );
    }
    assert_eq!(
        sched.stacks().snapshot(&[]),
        spec.snapshot(),
        "final allocator state differs from the spec's; copies {copies:?}"
    );
    check_invariants(&spec).expect("the spec's invariants after the replay");
    spec
}

/// `frame` as the spec's `adjustpointers` leaves it after every copy of
/// goroutine `gid` in `copies`, in order (`ptrs[i]` marks word `i`).
pub fn adjusted_frame(
    config: &Config,
    frame: &[u64],
    ptrs: &[bool],
    copies: &[Copy],
    gid: u32,
) -> Vec<u64> {
    let mut words = frame.to_vec();
    for c in copies.iter().filter(|c| c.gid == gid) {
        let delta = c.new.hi.wrapping_sub(c.old.hi);
        State::adjust_pointer_words(config.profile, &mut words, 0, ptrs, c.old, delta, false)
            .expect("no junk check");
    }
    words
}

/// A value that is no address of the arena: a heap pointer for the
/// models (`adjustpointers` leaves it alone).
pub const HEAP: u64 = 0x00c0_0000_1000;

/// The goroutine the models share, as [`setup`] spawned it.
#[derive(Clone, Debug)]
pub struct Goroutine {
    /// Its id, `RUNNING` after setup.
    pub g: u32,
    /// Two channels of one-word values.
    pub chans: [u32; 2],
    /// Its frame as spawned (absolute values).
    pub frame: Vec<u64>,
    /// The frame's pointer words.
    pub ptrs: Vec<bool>,
    /// Its first stack.
    pub spawned: Stack,
}

/// The frame words a select receives into: `chans[0]` into word 1,
/// `chans[1]` into word 2.
pub const SLOTS: [usize; 2] = [1, 2];

/// What sender `i` sends: a heap pointer.
pub fn value(i: usize) -> u64 {
    HEAP + 0x40 + 8 * i as u64
}

/// A scheduler with one goroutine on a stack of `stack_bytes` and two
/// channels. The frame has six words, from SP: a pointer to word 4; the
/// two receive slots (pointer words, both holding a pointer to word 5, so
/// that the copier adjusts what a sender overwrites); word 3 holds an
/// address of the stack as a plain integer (never adjusted); word 4 an
/// integer; word 5 a heap pointer.
pub fn setup(config: &Config, stack_bytes: u64) -> (Sched, Goroutine) {
    let ptrs = vec![true, true, true, false, false, true];
    let mut sched = Sched::new(config).expect("the models' config");
    let chans = [
        sched.make_chan(1).expect("a channel"),
        sched.make_chan(1).expect("a channel"),
    ];
    let g = sched
        .spawn(stack_bytes, &[0; 6], &ptrs)
        .expect("a goroutine");
    let sp = sched.sp(g).expect("g");
    let frame = vec![sp + 32, sp + 40, sp + 40, sp + 8, 0x1234, HEAP];
    for (i, &v) in frame.iter().enumerate() {
        sched.set_frame_word(g, i, v).expect("its own frame");
    }
    let spawned = sched.stack(g).expect("g");
    let gor = Goroutine {
        g,
        chans,
        frame,
        ptrs,
        spawned,
    };
    (sched, gor)
}

/// Both cases of the goroutine's select: `chans[i]` into `SLOTS[i]`.
pub fn cases(gor: &Goroutine) -> [(u32, usize); 2] {
    [(gor.chans[0], SLOTS[0]), (gor.chans[1], SLOTS[1])]
}

/// Where the goroutine's sudogs must point: its slots, from its SP now.
fn check_sudogs(sched: &Sched, gor: &Goroutine) {
    let sp = sched.sp(gor.g).expect("g");
    assert_eq!(
        sp,
        sched.stack(gor.g).expect("g").hi - 48,
        "SP moved within the stack"
    );
    assert_eq!(
        sched.sudog_elems(gor.g).expect("g"),
        vec![sp + 8 * SLOTS[0] as u64, sp + 8 * SLOTS[1] as u64],
        "the sudogs do not point at the receive slots of the current stack"
    );
}

/// Model 3's properties: `gor`, parked on both channels, was scanned
/// (`report`) while sender `i` sent `value(i)` on `chans[i]` (`sent`).
pub fn check_shrink_vs_send(
    config: &Config,
    sched: &Sched,
    gor: &Goroutine,
    report: &ScanReport,
    sent: &[Result<u32, Throw>; 2],
) {
    let lost = Err(Throw::Misuse(Misuse::WouldBlock(
        "send with no waiting receiver",
    )));
    let winner = match sent {
        [Ok(a), b] if *a == gor.g && *b == lost => 0,
        [a, Ok(b)] if *b == gor.g && *a == lost => 1,
        _ => panic!("not exactly one send won the select: {sent:?}"),
    };
    let new = report
        .shrunk
        .expect("the parked goroutine's stack is shrunk");
    assert_eq!(sched.stack(gor.g).expect("g"), new);
    let copies = sched.copies();
    assert_eq!(copies.len(), 1);
    let mut want = adjusted_frame(config, &gor.frame, &gor.ptrs, &copies, gor.g);
    want[SLOTS[winner]] = value(winner);
    assert_eq!(
        sched.frame(gor.g).expect("g"),
        want,
        "the frame after the shrink and the send (word {} receives {:#x})",
        SLOTS[winner],
        value(winner)
    );
    check_sudogs(sched, gor);
    assert_eq!(sched.status(gor.g).expect("g"), gstatus::RUNNABLE);
    replay(config, sched, &[gor.spawned]);
}

/// Model 4's properties: `gor` parked on both channels while a worker
/// scanned it (`report`, after every scan succeeded).
pub fn check_shrink_vs_parking(
    config: &Config,
    sched: &Sched,
    gor: &Goroutine,
    report: &ScanReport,
) {
    let copies = sched.copies();
    assert!(copies.len() <= 1);
    assert_eq!(report.shrunk, copies.first().map(|c| c.new));
    check_sudogs(sched, gor);
    assert_eq!(
        sched.frame(gor.g).expect("g"),
        adjusted_frame(config, &gor.frame, &gor.ptrs, &copies, gor.g)
    );
    assert_eq!(sched.status(gor.g).expect("g"), gstatus::WAITING);
    replay(config, sched, &[gor.spawned]);
}

/// Model 5's properties: `gor` grew to `grown` and parked while a worker
/// scanned it (`report`).
pub fn check_growth_vs_scan(
    config: &Config,
    sched: &Sched,
    gor: &Goroutine,
    grown: Stack,
    report: &ScanReport,
) {
    let copies = sched.copies();
    // The stacks the goroutine had, in order.
    let stacks: Vec<Stack> = std::iter::once(gor.spawned)
        .chain(copies.iter().map(|c| c.new))
        .collect();
    let k = stacks
        .iter()
        .position(|&st| st == report.stack)
        .unwrap_or_else(|| {
            panic!(
                "the worker read bounds {:?}, none of the goroutine's stacks {stacks:?}",
                report.stack
            )
        });
    assert_eq!(
        report.sp,
        report.stack.hi - 48,
        "the worker read an SP outside the stack it read"
    );
    assert_eq!(
        report.frame,
        adjusted_frame(config, &gor.frame, &gor.ptrs, &copies[..k], gor.g),
        "the worker read a frame not (yet) adjusted for the stack it read"
    );
    assert_eq!(stacks.get(1), Some(&grown));
    assert_eq!(
        report.shrunk.map(|st| st.hi - st.lo),
        Some(grown.hi - grown.lo).map(|n| n / 2),
        "the grown stack is shrunk back"
    );
    assert_eq!(copies.len(), 2);
    assert_eq!(sched.stack(gor.g).expect("g"), copies[1].new);
    assert_eq!(
        sched.frame(gor.g).expect("g"),
        adjusted_frame(config, &gor.frame, &gor.ptrs, &copies, gor.g)
    );
    assert_eq!(sched.status(gor.g).expect("g"), gstatus::WAITING);
    replay(config, sched, &[gor.spawned]);
}
