//! Proptest strategies for [`Op`]s: mostly valid operations on live
//! objects, a steady share of hostile ones (bad sizes, double frees,
//! foreign and interior addresses, bad frame tables, out-of-range ids, junk
//! pointers), sizes and frames clustered at the thresholds (fixedStack and
//! the orders, StackSmall/StackBig, `_StackCacheSize`), deep recursion
//! bursts that force growth, and GC cycles that shrink.
//!
//! The same strategies feed the proptest driver (with shrinking) and
//! `gostack conform` (through [`case`] with a seeded runner).

use crate::harness::{Case, PROFILES};
use crate::op::{BadFunc, CSel, CaseSel, FuncSpec, GSel, Op, SizeSel, SlotSel, Val, Who};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};

/// Who runs an op: usually a live P.
pub fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        12 => (0u8..4).prop_map(Who::P),
        2 => Just(Who::NoP),
        2 => (0u8..4).prop_map(Who::Preemptoff),
        1 => (0u32..12).prop_map(Who::Id),
    ]
}

/// Who runs a goroutine op: a live P nearly always.
fn gwho() -> impl Strategy<Value = Who> {
    prop_oneof![
        30 => (0u8..4).prop_map(Who::P),
        1 => Just(Who::NoP),
        1 => (0u8..4).prop_map(Who::Preemptoff),
        1 => (0u32..12).prop_map(Who::Id),
    ]
}

/// Stack sizes: the pool orders and the first large sizes, and bad ones.
pub fn size() -> impl Strategy<Value = SizeSel> {
    prop_oneof![
        28 => (0u8..5).prop_map(SizeSel::Order),
        10 => (5u8..10).prop_map(SizeSel::Order),
        1 => prop_oneof![
            Just(SizeSel::Raw(0)),
            Just(SizeSel::Raw(1024)),
            Just(SizeSel::Raw(3 * 1024)),
            Just(SizeSel::Raw(6144)),
            Just(SizeSel::Raw(1 << 33)),
            Just(SizeSel::Raw(1 << 30)),
            Just(SizeSel::Raw(24 << 20)),
        ],
    ]
}

/// Goroutine selectors: usually a runnable one.
pub fn g() -> impl Strategy<Value = GSel> {
    prop_oneof![
        16 => (0u8..8).prop_map(GSel::Runnable),
        3 => (0u8..8).prop_map(GSel::Waiting),
        3 => (0u8..16).prop_map(GSel::Any),
        1 => (0u32..200).prop_map(GSel::Raw),
        2 => Just(GSel::Last),
    ]
}

fn waiting_g() -> impl Strategy<Value = GSel> {
    prop_oneof![
        8 => (0u8..8).prop_map(GSel::Waiting),
        1 => g(),
    ]
}

fn chan() -> impl Strategy<Value = CSel> {
    prop_oneof![
        6 => (0u8..8).prop_map(CSel::Any),
        1 => (0u32..20).prop_map(CSel::Raw),
    ]
}

fn busy_chan() -> impl Strategy<Value = CSel> {
    prop_oneof![
        8 => (0u8..8).prop_map(CSel::Busy),
        1 => chan(),
    ]
}

fn frame() -> impl Strategy<Value = u8> {
    prop_oneof![
        12 => 0u8..4,
        3 => 0u8..200,
        1 => 200u8..=255,
    ]
}

fn slot() -> impl Strategy<Value = SlotSel> {
    prop_oneof![
        10 => any::<u16>().prop_map(SlotSel::Local),
        2 => any::<u16>().prop_map(SlotSel::Arg),
        3 => (any::<u8>(), any::<u8>()).prop_map(|(o, w)| SlotSel::Object(o, w)),
        1 => (60u16..2000).prop_map(SlotSel::RawLocal),
    ]
}

/// Values: mostly pointers into the stack (which copies must adjust),
/// heap pointers and nil, with some junk.
pub fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        10 => (0u8..4, any::<u16>()).prop_map(|(f, w)| Val::StackPtr(f, w)),
        3 => any::<u32>().prop_map(Val::Heap),
        2 => Just(Val::Nil),
        1 => any::<u16>().prop_map(Val::Junk),
        1 => any::<u64>().prop_map(Val::Raw),
    ]
}

fn case_sel() -> impl Strategy<Value = CaseSel> {
    (
        chan(),
        prop_oneof![15 => 0u16..64, 1 => 0xe000u16..0xf000, 1 => 0xf000u16..=0xffff],
    )
        .prop_map(|(c, word)| CaseSel { c, word })
}

fn cases() -> impl Strategy<Value = Vec<CaseSel>> {
    prop_oneof![
        8 => prop::collection::vec(case_sel(), 1..2),
        4 => prop::collection::vec(case_sel(), 2..4),
        1 => Just(Vec::new()),
    ]
}

/// Frame sizes at the split thresholds (StackSmall 128, StackBig 4096)
/// and beyond.
fn frame_bytes() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 0u32..160,
        3 => 120u32..140,
        3 => 4080u32..4112,
        2 => 160u32..4080,
        1 => 4112u32..12000,
    ]
}

fn bad_func() -> impl Strategy<Value = Option<BadFunc>> {
    prop_oneof![
        12 => Just(None),
        1 => prop_oneof![
            Just(BadFunc::FrameAlign),
            Just(BadFunc::ArgsAlign),
            Just(BadFunc::DeltaBelowFrame),
            Just(BadFunc::NoSites),
            Just(BadFunc::MapsDiffer),
            Just(BadFunc::MapPastFrame),
            Just(BadFunc::ObjectPastFrame),
            Just(BadFunc::Huge),
        ].prop_map(Some),
    ]
}

/// Function descriptions.
pub fn func_spec() -> impl Strategy<Value = FuncSpec> {
    (
        frame_bytes(),
        any::<u64>(),
        any::<u8>(),
        prop_oneof![3 => Just(0u8), 1 => 0u8..8],
        any::<u8>(),
        any::<bool>(),
        prop_oneof![4 => Just(0u32), 1 => 0u32..100_000],
        prop_oneof![8 => Just(false), 1 => Just(true)],
        bad_func(),
    )
        .prop_map(
            |(frame, ptrs, sites, args, arg_ptrs, object, extra_delta, nosplit, bad)| FuncSpec {
                frame,
                ptrs,
                sites,
                args,
                arg_ptrs,
                object,
                extra_delta,
                nosplit,
                bad,
            },
        )
}

/// A function: mostly the small standard ones (0 to 5), then the big
/// ones and those added by ops, rarely an index past the table.
fn callee() -> impl Strategy<Value = u8> {
    prop_oneof![
        16 => 0u8..6,
        6 => 0u8..16,
        1 => 200u8..=255,
    ]
}

fn site() -> impl Strategy<Value = u8> {
    prop_oneof![
        20 => 0u8..4,
        1 => 200u8..=255,
    ]
}

fn alloc_ops() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (who(), size()).prop_map(|(w, s)| Op::Alloc(w, s)),
        16 => (who(), any::<u16>()).prop_map(|(w, i)| Op::Free(w, i)),
        2 => (who(), size(), 1u8..40).prop_map(|(w, s, n)| Op::AllocMany(w, s, n)),
        2 => (who(), 1u8..40).prop_map(|(w, n)| Op::FreeMany(w, n)),
        1 => (who(), any::<u16>(), any::<u8>()).prop_map(|(w, i, k)| Op::BadFree(w, i, k)),
        2 => Just(Op::CreateP),
        1 => any::<u8>().prop_map(Op::DestroyP),
        1 => any::<u8>().prop_map(Op::FlushCache),
        1 => (0u32..8).prop_map(Op::DestroyPId),
        1 => (0u32..8).prop_map(Op::FlushCacheId),
        1 => Just(Op::ReadMemStats),
        3 => (0u16..48).prop_map(Op::HeapAlloc),
        2 => any::<u16>().prop_map(Op::HeapFree),
        1 => (0u32..(24 << 20)).prop_map(Op::HeapFreeAt),
        2 => (any::<u16>(), any::<u32>()).prop_map(|(i, o)| Op::MarkRead(i, o)),
        1 => (0u32..(20 << 20)).prop_map(Op::MarkReadAt),
        2 => any::<u8>().prop_map(Op::Mark),
        1 => (0u32..64).prop_map(Op::MarkId),
    ]
}

fn gc_ops() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::GcStart),
        2 => Just(Op::GcMarkTermination),
        1 => Just(Op::GcOff),
        3 => Just(Op::FreeStackSpans),
        3 => Just(Op::GcEnd),
        4 => (0u8..4, prop_oneof![g(), waiting_g()]).prop_map(|(p, g)| Op::GcScan(p, g)),
        3 => (0u8..4).prop_map(Op::GcScanAll),
        1 => Just(Op::GcComputeStartingStackSize),
        3 => (0u8..4).prop_map(Op::GcFreeGStacks),
        2 => (waiting_g(), any::<u16>()).prop_map(|(g, w)| Op::MarkReadG(g, w)),
    ]
}

fn goroutine_ops() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (gwho(), callee()).prop_map(|(w, f)| Op::Spawn(w, f)),
        2 => (gwho(), 0u8..6, 0u8..81).prop_map(|(w, f, n)| Op::SpawnBurst(w, f, n)),
        20 => (gwho(), g(), site(), callee()).prop_map(|(w, g, s, f)| Op::Call(w, g, s, f)),
        4 => (gwho(), g(), site(), callee(), 1u8..=32)
            .prop_map(|(w, g, s, f, n)| Op::Recurse(w, g, s, f, n)),
        12 => (gwho(), g()).prop_map(|(w, g)| Op::Ret(w, g)),
        3 => (gwho(), g(), any::<u8>()).prop_map(|(w, g, n)| Op::Unwind(w, g, n)),
        3 => (g(), site()).prop_map(|(g, s)| Op::SetSite(g, s)),
        2 => (g(), frame(), slot()).prop_map(|(g, f, s)| Op::SlotAddr(g, f, s)),
        18 => (g(), frame(), slot(), val()).prop_map(|(g, f, s, v)| Op::WriteSlot(g, f, s, v)),
        1 => (g(), prop_oneof![8 => 0u16..64, 1 => 0xf000u16..=0xffff], val())
            .prop_map(|(g, w, v)| Op::Poke(g, w, v)),
        2 => (g(), val()).prop_map(|(g, v)| Op::SetCtxt(g, v)),
        4 => (g(), frame(), any::<u32>(), prop::option::of(any::<u8>()))
            .prop_map(|(g, f, v, o)| Op::DeferPush(g, f, v, o)),
        2 => g().prop_map(Op::DeferPop),
        2 => (g(), frame(), any::<u8>()).prop_map(|(g, f, o)| Op::PanicPush(g, f, o)),
        3 => g().prop_map(Op::RequestPreempt),
        3 => g().prop_map(Op::RequestForceMove),
        1 => prop_oneof![
            4 => (0u8..16).prop_map(Ok),
            1 => prop_oneof![Just(1_000_000_000u64), Just(250_000_000), any::<u64>()].prop_map(Err),
        ].prop_map(Op::SetMaxStack),
        1 => g().prop_map(Op::IsShrinkStackSafe),
        1 => g().prop_map(Op::EnterSyscall),
        3 => g().prop_map(Op::ExitSyscall),
        2 => (who(), 0u8..10).prop_map(|(w, f)| Op::NewProc(w, f)),
        2 => (who(), any::<u8>()).prop_map(|(w, i)| Op::Start(w, i)),
        1 => who().prop_map(Op::CreateM),
        1 => (who(), 0u8..6).prop_map(|(w, i)| Op::ExitM(w, i)),
        1 => g().prop_map(Op::ExitSyscall0),
        1 => g().prop_map(Op::BeforeFork),
        1 => g().prop_map(Op::AfterFork),
        2 => (g(), any::<bool>()).prop_map(|(g, on)| Op::SetAsyncSafePoint(g, on)),
        3 => (gwho(), g()).prop_map(|(w, g)| Op::Exit(w, g)),
        2 => (gwho(), 0u8..81).prop_map(|(w, n)| Op::ExitBurst(w, n)),
        1 => prop_oneof![
            6 => any::<u8>().prop_map(Ok),
            1 => any::<u16>().prop_map(Err),
        ].prop_map(Op::MakeChan),
        3 => (g(), cases()).prop_map(|(g, c)| Op::ParkBegin(g, c)),
        3 => waiting_g().prop_map(Op::ParkSetParking),
        3 => waiting_g().prop_map(Op::ParkM),
        3 => waiting_g().prop_map(Op::ParkCommit),
        5 => (g(), cases()).prop_map(|(g, c)| Op::Park(g, c)),
        6 => (busy_chan(), val(), prop_oneof![8 => Just(0i8), 1 => any::<i8>()])
            .prop_map(|(c, v, e)| Op::Send(c, v, e)),
        5 => waiting_g().prop_map(Op::Wake),
        1 => g().prop_map(Op::Frames),
        1 => (g(), any::<u16>()).prop_map(|(g, w)| Op::ReadWord(g, w)),
        2 => func_spec().prop_map(Op::AddFunc),
    ]
}

/// One op: about a fifth allocator, a tenth GC, the rest goroutines and
/// channels.
pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => alloc_ops(),
        12 => gc_ops(),
        68 => goroutine_ops(),
    ]
}

/// Makes the GC phase `_GCmark` from wherever it is (ops that do not
/// apply fail harmlessly).
fn to_mark() -> Vec<Op> {
    vec![
        Op::GcEnd,
        Op::FreeStackSpans,
        Op::FlushCache(0),
        Op::FlushCache(1),
        Op::GcStart,
    ]
}

/// A big function (index 6 to 9 of the standard table).
fn big() -> impl Strategy<Value = u8> {
    6u8..10
}

/// Stories: short op sequences that reach the rare paths on purpose,
/// each op still an ordinary op (shrinking may drop any of them).
/// - a goroutine grows, unwinds, parks (or selects) and is shrunk by a
///   scan while parked: copystack under the channel locks, up to sghi;
///   then a sender serves it;
/// - a goroutine in a syscall (or at an async safe point) is scanned, so
///   the shrink waits for its next preemption (preemptShrink);
/// - calls in a system call (a split throws) and during a fork (a split
///   throws, unless a preemption request overwrote the guard);
/// - 64 goroutines die on one P: gfput spills to the global lists;
/// - dead goroutines keep stacks of the old starting size, the GC raises
///   it, a spawn drops the old stack (gfget);
/// - a deep recursion under a small maxstacksize: stack overflow;
/// - frees of stack bounds inside ordinary heap spans;
/// - 39 stacks of 1 MiB: more than the arena (out of memory);
/// - a large stack freed twice during a GC cycle ("mSpanList.insert").
fn story() -> impl Strategy<Value = Vec<Op>> {
    let w = Who::P(0);
    prop_oneof![
        (big(), 2u8..12, cases(), any::<bool>(), val()).prop_map(move |(f, depth, cs, step, v)| {
            let mut ops = vec![
                Op::Spawn(w, 0),
                Op::Recurse(w, GSel::Last, 0, f, depth),
                Op::Unwind(w, GSel::Last, 255),
            ];
            if step {
                ops.extend([
                    Op::ParkBegin(GSel::Last, cs),
                    Op::ParkSetParking(GSel::Last),
                    Op::ParkM(GSel::Last),
                    Op::ParkCommit(GSel::Last),
                ]);
            } else {
                ops.push(Op::Park(GSel::Last, cs));
            }
            ops.extend(to_mark());
            ops.extend([
                Op::GcScan(0, GSel::Last),
                Op::Send(CSel::Busy(0), v, 0),
                Op::Wake(GSel::Last),
            ]);
            ops
        }),
        (big(), 2u8..12, any::<bool>()).prop_map(move |(f, depth, syscall)| {
            let mut ops = vec![
                Op::Spawn(w, 0),
                Op::Recurse(w, GSel::Last, 0, f, depth),
                Op::Unwind(w, GSel::Last, 255),
            ];
            ops.push(if syscall {
                Op::EnterSyscall(GSel::Last)
            } else {
                Op::SetAsyncSafePoint(GSel::Last, true)
            });
            ops.extend(to_mark());
            ops.extend([
                Op::GcScan(0, GSel::Last),
                Op::ExitSyscall(GSel::Last),
                Op::SetAsyncSafePoint(GSel::Last, false),
                Op::RequestPreempt(GSel::Last),
                Op::Call(w, GSel::Last, 0, 0),
            ]);
            ops
        }),
        (0u8..10, any::<bool>(), any::<bool>(), 0u8..10).prop_map(move |(f, slow, preempt, f2)| {
            let mut ops = vec![
                Op::Spawn(w, 0),
                Op::EnterSyscall(GSel::Last),
                Op::Call(w, GSel::Last, 0, f),
                Op::Ret(w, GSel::Last),
                if slow {
                    Op::ExitSyscall0(GSel::Last)
                } else {
                    Op::ExitSyscall(GSel::Last)
                },
                Op::BeforeFork(GSel::Last),
            ];
            if preempt {
                ops.push(Op::RequestPreempt(GSel::Last));
            }
            ops.extend([
                Op::Call(w, GSel::Last, 0, f2),
                Op::Ret(w, GSel::Last),
                Op::AfterFork(GSel::Last),
            ]);
            ops
        }),
        (64u8..81).prop_map(move |n| vec![Op::SpawnBurst(w, 0, n), Op::ExitBurst(w, 81)]),
        // NOSPLIT frames (standard function 3) down towards stack.lo, then
        // an async preemption: past some depth isAsyncSafePoint finds no
        // room for asyncPreempt (past another the linker would refuse).
        (12u8..40).prop_map(move |depth| vec![
            Op::Spawn(w, 0),
            Op::Recurse(w, GSel::Last, 0, 3, depth),
            Op::SetAsyncSafePoint(GSel::Last, true),
            Op::SetAsyncSafePoint(GSel::Last, false),
        ]),
        // A cycle ended step by step without the caches' flush: the next
        // gcStart throws.
        Just(vec![
            Op::GcEnd,
            Op::FreeStackSpans,
            Op::FlushCache(0),
            Op::GcStart,
            Op::GcMarkTermination,
            Op::GcOff,
            Op::FreeStackSpans,
            Op::GcStart,
        ]),
        (big(), 4u8..16).prop_map(move |(f, depth)| {
            let mut ops = vec![Op::SpawnBurst(w, 0, 4), Op::ExitBurst(w, 4)];
            ops.extend(to_mark());
            ops.extend([
                Op::Spawn(w, 0),
                Op::Recurse(w, GSel::Last, 0, f, depth),
                Op::GcScan(0, GSel::Last),
                Op::Exit(w, GSel::Last),
                Op::GcEnd,
                Op::Spawn(w, 0),
            ]);
            ops
        }),
        (big(), 8u8..32, 0u8..4).prop_map(move |(f, depth, k)| vec![
            Op::SetMaxStack(Ok(k + 2)),
            Op::Spawn(w, 0),
            Op::Recurse(w, GSel::Last, 0, f, depth),
            Op::SetMaxStack(Err(1_000_000_000)),
            Op::Exit(w, GSel::Last),
        ]),
        // Megabyte stacks until the arena (or, with efence, the region of
        // stacks from the system) runs out.
        Just(vec![Op::AllocMany(w, SizeSel::Raw(1 << 20), 39)]),
        // A large stack freed twice during a GC cycle.
        Just(
            to_mark()
                .into_iter()
                .chain([
                    Op::Alloc(Who::NoP, SizeSel::Order(6)),
                    Op::FreeMany(Who::NoP, 1),
                    Op::BadFree(Who::NoP, 0, 2),
                ])
                .collect()
        ),
        (1u16..8, any::<u16>()).prop_map(|(n, i)| vec![
            Op::HeapAlloc(n),
            Op::BadFree(Who::NoP, i, 5),
            Op::BadFree(Who::P(0), i, 35),
        ]),
    ]
}

/// Whether a chunk of ops is built to end in one of Go's throws: a
/// hostile free, a bad size, a small `maxstacksize`, a system call or a
/// fork (a split then throws), a GC phase stepped by hand (a cycle left
/// unflushed).
fn throws_by_design(chunk: &[Op]) -> bool {
    chunk.iter().any(|op| {
        matches!(
            op,
            Op::BadFree(..)
                | Op::Alloc(_, SizeSel::Raw(_))
                | Op::AllocMany(_, SizeSel::Raw(_), _)
                | Op::SetMaxStack(Ok(_))
                | Op::EnterSyscall(_)
                | Op::BeforeFork(_)
                | Op::GcOff
        )
    })
}

/// A sequence of up to `max` ops: single ops, with a story now and then.
/// A Go throw is fatal and ends the case, so the chunks built to throw
/// (hostile frees, bad sizes, a small `maxstacksize`, system calls,
/// forks, a GC phase stepped by hand) come after the others, the stories
/// among them before the single ops, each in generated order: the
/// ordinary ops run first.
pub fn ops(max: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            40 => op().prop_map(|o| vec![o]),
            1 => story(),
        ],
        // At least one chunk; `1..max` would be empty (and proptest would
        // panic) for `max == 1`. Every larger bound is unchanged, so seeds
        // keep their cases.
        1..max.max(2),
    )
    .prop_map(move |chunks| {
        let (fatal, ordinary): (Vec<_>, Vec<_>) =
            chunks.into_iter().partition(|c| throws_by_design(c));
        // Stories (several ops) aim at rarer throws than a single hostile
        // op does: they come first.
        let (stories, single): (Vec<_>, Vec<_>) = fatal.into_iter().partition(|c| c.len() > 1);
        let mut v: Vec<Op> = ordinary
            .into_iter()
            .chain(stories)
            .chain(single)
            .flatten()
            .collect();
        v.truncate(max);
        v
    })
}

/// A case: a profile of [`PROFILES`] and up to `max` ops.
pub fn case_strategy(max: usize) -> impl Strategy<Value = Case> {
    (0..PROFILES.len(), ops(max)).prop_map(|(p, ops)| Case {
        profile: PROFILES[p].to_string(),
        ops,
    })
}

/// A runner whose generation depends only on `seed`.
pub fn seeded_runner(seed: u64) -> TestRunner {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&seed.rotate_left(17).to_le_bytes());
    TestRunner::new_with_rng(
        RunnerConfig::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

/// A case generated from `seed` alone, on one of `profiles`, with up to
/// `max` ops.
pub fn case(seed: u64, profiles: &[String], max: usize) -> Case {
    let mut runner = seeded_runner(seed);
    let ops = ops(max)
        .new_tree(&mut runner)
        .map(|t| t.current())
        .unwrap_or_default();
    let profile = if profiles.is_empty() {
        PROFILES[(seed % PROFILES.len() as u64) as usize].to_string()
    } else {
        profiles[(seed % profiles.len() as u64) as usize].clone()
    };
    Case { profile, ops }
}
