//! The one comparison: [`Harness::step`] applies an [`Op`] to the spec and
//! to the other side, compares the results (the exact [`Throw`] included)
//! and the whole observable states (`snapshot()` and `world()`) with `==`,
//! requires a failed op to leave that state unchanged, and checks the
//! spec's invariants. An op that names nothing live (`Call::Skip`) calls
//! neither side and is not compared.
//!
//! An op is first *resolved* against the spec's state into a [`Call`] with
//! concrete arguments (ids, addresses, sizes); both sides get that same
//! call. Addresses that the allocator hands out (held stacks, heap spans,
//! marker addresses) travel as offsets from each side's
//! [`Machine::alloc_base`]; goroutine addresses (frames, slots, values
//! written into stacks) are in the spec's address space, which the
//! implementation's goroutine layer shares.

use crate::machine::Machine;
use crate::op::{BadFunc, CSel, CaseSel, FuncSpec, GSel, Op, SizeSel, SlotSel, Val, Who};
use gostack_spec::goroutine::{Func, GStatus, Pc, Site, Slot, StackObject};
use gostack_spec::heap::{SpanState, PAGE_SIZE};
use gostack_spec::snapshot::WorldSnap;
use gostack_spec::{check_invariants, Config, Ctx, Misuse, Profile, Snapshot, Stack, State, Throw};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The platforms the drivers run, as `goos/goarch/release[:godebug]`
/// (see [`config`]): the six the models issue names, windows/386
/// (StackSystem 4096 on a 32-bit port) and ios/arm64 (StackSystem 1024)
/// from the allocator's former differential test, two with Go's
/// GODEBUG switches that change the stack policies set, two with
/// `efence=1` and one with runtime/stack.go's `stackFromSystem`.
pub const PROFILES: &[&str] = &[
    "linux/amd64/1.23",
    "linux/386/1.19",
    "windows/amd64/1.23",
    "plan9/amd64/1.23",
    "linux/arm64/1.23",
    "linux/arm64/1.19",
    "windows/386/1.23",
    "ios/arm64/1.23",
    // Go's GODEBUG switches for the stack system, all away from their
    // defaults (on a 32-bit port too).
    "linux/amd64/1.23:adaptivestackstart=0,invalidptr=0,gcshrinkstackoff=1",
    "linux/386/1.19:adaptivestackstart=0,invalidptr=0,gcshrinkstackoff=1",
    // GODEBUG=efence=1: every stack its own page from the OS, faulted
    // when freed (and Go 1.19's ReadMemStats throw after that).
    "linux/amd64/1.23:efence=1",
    "linux/arm64/1.19:efence=1",
    // runtime/stack.go's stackFromSystem without stackFaultOnFree: freed
    // stacks are unmapped (sysFree) and their range reused.
    "linux/386/1.23:stackFromSystem=1",
];

/// Bytes of arena each side gets: small, so that growth, large stacks and
/// heap churn run it out of memory now and then.
pub const ARENA_BYTES: u64 = 16 << 20;

/// A reproducer: a profile and the ops after the prelude.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// `goos/goarch/release`, one of [`PROFILES`] or any port the spec
    /// models goroutines on.
    pub profile: String,
    /// The ops, in order.
    pub ops: Vec<Op>,
}

/// The settings a profile may carry after its colon: Go's GODEBUG
/// switches for the stack system, then the debug constants at the top of
/// runtime/stack.go (spelled as Go spells them).
pub const SETTINGS: &[&str] = &[
    "adaptivestackstart",
    "invalidptr",
    "gcshrinkstackoff",
    "efence",
    "stackFromSystem",
    "stackFaultOnFree",
    "stackNoCache",
    "stackPoisonCopy",
];

/// The configuration both sides of a case get. `profile` is
/// `goos/goarch/release`, optionally followed by `:` and settings, each
/// `=0` or `=1`, comma-separated: GODEBUG switches as Go writes them
/// (`adaptivestackstart`, `invalidptr`, `gcshrinkstackoff`, `efence`) and
/// runtime/stack.go's debug constants (`stackFromSystem`,
/// `stackFaultOnFree`, `stackNoCache`, `stackPoisonCopy`); see
/// [`SETTINGS`]. E.g. `linux/amd64/1.23:gcshrinkstackoff=1,invalidptr=0`.
pub fn config(profile: &str) -> Result<Config, String> {
    let (port, godebug) = profile.split_once(':').unwrap_or((profile, ""));
    let parts: Vec<&str> = port.split('/').collect();
    let [goos, goarch, release] = parts[..] else {
        return Err(format!(
            "profile {profile:?}: expected goos/goarch/release[:settings], e.g. linux/amd64/1.23 or linux/amd64/1.23:gcshrinkstackoff=1"
        ));
    };
    let p = Profile::parse(goos, goarch, false, release).map_err(|t| t.to_string())?;
    let mut c = Config::new(p);
    c.arena_bytes = ARENA_BYTES;
    for setting in godebug.split(',').filter(|s| !s.is_empty()) {
        let bad = || {
            format!(
                "profile {profile:?}: setting {setting:?}; accepted: adaptivestackstart, invalidptr, gcshrinkstackoff, efence (GODEBUG) and stackFromSystem, stackFaultOnFree, stackNoCache, stackPoisonCopy (runtime/stack.go), each =0 or =1"
            )
        };
        let (name, value) = setting.split_once('=').ok_or_else(bad)?;
        let on = match value {
            "0" => false,
            "1" => true,
            _ => return Err(bad()),
        };
        match name {
            "adaptivestackstart" => c.godebug.adaptive_stack_start = on,
            "invalidptr" => c.godebug.invalid_ptr = on,
            "gcshrinkstackoff" => c.godebug.gc_shrink_stack_off = on,
            "efence" => c.godebug.efence = on,
            "stackFromSystem" => c.stack_from_system = on,
            "stackFaultOnFree" => c.stack_fault_on_free = on,
            "stackNoCache" => c.no_cache = on,
            "stackPoisonCopy" => c.poison_copy = on,
            _ => return Err(bad()),
        }
    }
    Ok(c)
}

/// What an operation returned, with allocator addresses as offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    /// Nothing to act on (no live object of the kind the op names).
    Skip,
    /// Success without a value.
    Unit,
    /// A stack, as offsets.
    Stack(u64, u64),
    /// An allocator address, as an offset.
    Off(u64),
    /// An id (P, marker, goroutine, channel, function).
    Id(u64),
    /// A goroutine-space address (slot, defer or panic record).
    Addr(u64),
    /// A boolean.
    Bool(bool),
    /// A word read.
    Word(u64),
    /// StackInuse as `ReadMemStats` reports it.
    StackInuse(u64),
    /// Frames: (func, site, sp, fp, varp, argp).
    Frames(Vec<(usize, Option<usize>, u64, u64, u64, u64)>),
    /// A burst: what each step returned, and the throw that stopped it.
    Burst(Vec<Out>, Option<Throw>),
}

/// An op with concrete arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Call {
    Skip,
    Alloc(Ctx, u64),
    /// Bounds as offsets.
    Free(Ctx, u64, u64),
    AllocMany(Ctx, u64, u8),
    /// Bounds as offsets.
    FreeMany(Ctx, Vec<(u64, u64)>),
    CreateP,
    DestroyP(u32),
    FlushCache(u32),
    ReadMemStats,
    HeapAlloc(u64),
    /// An offset.
    HeapFree(u64),
    GcStart,
    GcMarkTermination,
    GcOff,
    FreeStackSpans,
    GcEnd,
    /// An offset.
    MarkRead(u64),
    Mark(u32),
    AddFunc(Func),
    Spawn(Ctx, usize),
    NewProc(Ctx, usize),
    Start(Ctx, u32),
    CreateM(Ctx),
    ExitM(Ctx, u32),
    SpawnBurst(Ctx, usize, u8),
    Call(Ctx, u32, usize, usize),
    Recurse(Ctx, u32, usize, usize, u8),
    Ret(Ctx, u32),
    Unwind(Ctx, u32, usize),
    SetSite(u32, usize),
    SlotAddr(u32, usize, Slot),
    WriteSlot(u32, usize, Slot, u64),
    Poke(u32, u64, u64),
    SetCtxt(u32, u64),
    DeferPush(u32, usize, u64, Option<usize>),
    DeferPop(u32),
    PanicPush(u32, usize, usize),
    RequestPreempt(u32),
    RequestForceMove(u32),
    SetMaxStack(u64),
    IsShrinkStackSafe(u32),
    EnterSyscall(u32),
    ExitSyscall(u32),
    ExitSyscall0(u32),
    BeforeFork(u32),
    AfterFork(u32),
    SetAsyncSafePoint(u32, bool),
    GcScan(u32, u32),
    GcScanAll(u32, Vec<u32>),
    GcComputeStartingStackSize,
    GcFreeGStacks(u32),
    Exit(Ctx, u32),
    ExitMany(Ctx, Vec<u32>),
    MakeChan(u64),
    ParkBegin(u32, Vec<(u32, u64)>),
    ParkSetParking(u32),
    ParkM(u32),
    ParkCommit(u32),
    Park(u32, Vec<(u32, u64)>),
    Send(u32, Vec<u64>),
    Wake(u32),
    Frames(u32),
    ReadWord(u64),
}

impl Call {
    /// Whether the call's addresses are allocator addresses (offsets from
    /// [`Machine::alloc_base`]).
    fn allocator(&self) -> bool {
        matches!(
            self,
            Call::Alloc(..)
                | Call::Free(..)
                | Call::AllocMany(..)
                | Call::FreeMany(..)
                | Call::HeapAlloc(_)
                | Call::HeapFree(_)
                | Call::MarkRead(_)
                | Call::Mark(_)
                | Call::GcMarkTermination
                | Call::GcEnd
        )
    }
}

/// Applies a call to one side. Allocator addresses in the result and in
/// the throw are made offsets from the side's `alloc_base`.
pub fn apply<M: Machine + ?Sized>(m: &mut M, call: &Call) -> Result<Out, Throw> {
    let b = m.alloc_base();
    let unit = |r: Result<(), Throw>| r.map(|_| Out::Unit);
    let r = match call {
        Call::Skip => Ok(Out::Skip),
        Call::Alloc(ctx, n) => m
            .stackalloc(*ctx, *n)
            .map(|s| Out::Stack(s.lo.wrapping_sub(b), s.hi.wrapping_sub(b))),
        Call::Free(ctx, lo, hi) => unit(m.stackfree(
            *ctx,
            Stack {
                lo: lo.wrapping_add(b),
                hi: hi.wrapping_add(b),
            },
        )),
        Call::AllocMany(ctx, n, k) => {
            let mut done = Vec::new();
            for _ in 0..*k {
                match m.stackalloc(*ctx, *n) {
                    Ok(s) => done.push(Out::Stack(s.lo.wrapping_sub(b), s.hi.wrapping_sub(b))),
                    Err(t) => return Ok(Out::Burst(done, Some(norm(t, b)))),
                }
            }
            Ok(Out::Burst(done, None))
        }
        Call::FreeMany(ctx, stacks) => {
            let mut done = Vec::new();
            for (lo, hi) in stacks {
                let stk = Stack {
                    lo: lo.wrapping_add(b),
                    hi: hi.wrapping_add(b),
                };
                match m.stackfree(*ctx, stk) {
                    Ok(()) => done.push(Out::Unit),
                    Err(t) => return Ok(Out::Burst(done, Some(norm(t, b)))),
                }
            }
            Ok(Out::Burst(done, None))
        }
        Call::CreateP => m.create_p().map(|p| Out::Id(p.into())),
        Call::DestroyP(p) => unit(m.destroy_p(*p)),
        Call::FlushCache(p) => unit(m.flush_cache(*p)),
        Call::ReadMemStats => m.read_mem_stats().map(|s| Out::StackInuse(s.stack_inuse)),
        Call::HeapAlloc(n) => m.heap_alloc(*n).map(|a| Out::Off(a.wrapping_sub(b))),
        Call::HeapFree(off) => unit(m.heap_free(off.wrapping_add(b))),
        Call::GcStart => unit(m.gc_start()),
        Call::GcMarkTermination => unit(m.gc_mark_termination()),
        Call::GcOff => unit(m.gc_off()),
        Call::FreeStackSpans => unit(m.free_stack_spans()),
        Call::GcEnd => unit(m.gc_end()),
        Call::MarkRead(off) => m
            .gc_mark_read(off.wrapping_add(b))
            .map(|id| Out::Id(id.into())),
        Call::Mark(id) => unit(m.gc_mark(*id)),
        Call::AddFunc(f) => m.add_func(f.clone()).map(|i| Out::Id(i as u64)),
        Call::Spawn(ctx, f) => m.spawn(*ctx, *f).map(|g| Out::Id(g.into())),
        Call::NewProc(ctx, f) => m.newproc(*ctx, *f).map(|g| Out::Id(g.into())),
        Call::Start(ctx, g) => unit(m.start(*ctx, *g)),
        Call::CreateM(ctx) => m.create_m(*ctx).map(|id| Out::Id(id.into())),
        Call::ExitM(ctx, id) => unit(m.exit_m(*ctx, *id)),
        Call::SpawnBurst(ctx, f, n) => {
            let mut done = Vec::new();
            for _ in 0..*n {
                match m.spawn(*ctx, *f) {
                    Ok(g) => done.push(Out::Id(g.into())),
                    Err(t) => return Ok(Out::Burst(done, Some(t))),
                }
            }
            Ok(Out::Burst(done, None))
        }
        Call::Call(ctx, g, site, f) => unit(m.call(*ctx, *g, *site, *f)),
        Call::Recurse(ctx, g, site, f, n) => {
            let mut done = Vec::new();
            for _ in 0..*n {
                match m.call(*ctx, *g, *site, *f) {
                    Ok(()) => done.push(Out::Unit),
                    Err(t) => return Ok(Out::Burst(done, Some(t))),
                }
            }
            Ok(Out::Burst(done, None))
        }
        Call::Ret(ctx, g) => unit(m.ret(*ctx, *g)),
        Call::Unwind(ctx, g, n) => {
            let mut done = Vec::new();
            for _ in 0..*n {
                match m.ret(*ctx, *g) {
                    Ok(()) => done.push(Out::Unit),
                    Err(t) => return Ok(Out::Burst(done, Some(t))),
                }
            }
            Ok(Out::Burst(done, None))
        }
        Call::SetSite(g, s) => unit(m.set_site(*g, *s)),
        Call::SlotAddr(g, f, s) => m.slot_addr(*g, *f, *s).map(Out::Addr),
        Call::WriteSlot(g, f, s, v) => unit(m.write_slot(*g, *f, *s, *v)),
        Call::Poke(g, a, v) => unit(m.poke(*g, *a, *v)),
        Call::SetCtxt(g, v) => unit(m.set_ctxt(*g, *v)),
        Call::DeferPush(g, f, v, o) => m.defer_push(*g, *f, *v, *o).map(Out::Addr),
        Call::DeferPop(g) => unit(m.defer_pop(*g)),
        Call::PanicPush(g, f, o) => m.panic_push(*g, *f, *o).map(Out::Addr),
        Call::RequestPreempt(g) => unit(m.request_preempt(*g)),
        Call::RequestForceMove(g) => unit(m.request_force_move(*g)),
        Call::SetMaxStack(n) => {
            m.set_max_stack(*n);
            Ok(Out::Unit)
        }
        Call::IsShrinkStackSafe(g) => m.is_shrink_stack_safe(*g).map(Out::Bool),
        Call::EnterSyscall(g) => unit(m.enter_syscall(*g)),
        Call::ExitSyscall(g) => unit(m.exit_syscall(*g)),
        Call::ExitSyscall0(g) => unit(m.exit_syscall0(*g)),
        Call::BeforeFork(g) => unit(m.before_fork(*g)),
        Call::AfterFork(g) => unit(m.after_fork(*g)),
        Call::SetAsyncSafePoint(g, on) => unit(m.set_async_safe_point(*g, *on)),
        Call::GcScan(p, g) => unit(m.gc_scan(*p, *g)),
        Call::GcScanAll(p, gs) => {
            let mut done = Vec::new();
            for &g in gs {
                match m.gc_scan(*p, g) {
                    Ok(()) => done.push(Out::Unit),
                    Err(t) => return Ok(Out::Burst(done, Some(t))),
                }
            }
            Ok(Out::Burst(done, None))
        }
        Call::GcComputeStartingStackSize => unit(m.gc_compute_starting_stack_size()),
        Call::GcFreeGStacks(p) => unit(m.gc_free_g_stacks(*p)),
        Call::Exit(ctx, g) => unit(m.exit(*ctx, *g)),
        Call::ExitMany(ctx, gs) => {
            let mut done = Vec::new();
            for &g in gs {
                match m.exit(*ctx, g) {
                    Ok(()) => done.push(Out::Unit),
                    Err(t) => return Ok(Out::Burst(done, Some(t))),
                }
            }
            Ok(Out::Burst(done, None))
        }
        Call::MakeChan(n) => m.make_chan(*n).map(|c| Out::Id(c.into())),
        Call::ParkBegin(g, cases) => unit(m.park_begin(*g, cases)),
        Call::ParkSetParking(g) => unit(m.park_set_parking(*g)),
        Call::ParkM(g) => unit(m.park_m(*g)),
        Call::ParkCommit(g) => unit(m.park_commit(*g)),
        Call::Park(g, cases) => unit(m.park(*g, cases)),
        Call::Send(c, v) => m.send(*c, v).map(|g| Out::Id(g.into())),
        Call::Wake(g) => unit(m.wake(*g)),
        Call::Frames(g) => m.frames(*g).map(|fs| {
            Out::Frames(
                fs.iter()
                    .map(|f| (f.func, f.site, f.sp, f.fp, f.varp, f.argp))
                    .collect(),
            )
        }),
        Call::ReadWord(a) => Ok(Out::Word(m.read_word(*a))),
    };
    if call.allocator() {
        r.map_err(|t| norm(t, b))
    } else {
        r
    }
}

/// The Go throw an op's outcome ends with (a burst's included), if any.
pub fn go_throw(r: &Result<Out, Throw>) -> Option<&Throw> {
    match r {
        Err(t @ Throw::Go(_)) | Ok(Out::Burst(_, Some(t @ Throw::Go(_)))) => Some(t),
        _ => None,
    }
}

/// A throw with its allocator addresses made offsets from `base`.
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

/// What the harness holds between ops, as offsets from the arena base.
#[derive(Clone, Debug, Default)]
pub struct Held {
    /// Stacks from `Alloc`, not yet freed.
    pub stacks: Vec<(u64, u64)>,
    /// Stacks freed by `Free`.
    pub freed: Vec<(u64, u64)>,
    /// Heap spans from `HeapAlloc`, not yet freed.
    pub heap: Vec<u64>,
    /// The goroutine the last successful spawn returned.
    pub last_g: Option<u32>,
}

fn pick<T: Copy>(v: &[T], i: usize) -> Option<T> {
    (!v.is_empty()).then(|| v[i % v.len()])
}

/// Address of a heap object outside every arena the drivers use.
fn heap_ptr(h: u32, ptr: u64) -> u64 {
    0x4000_0000 + u64::from(h % 0x1000_0000) / ptr * ptr
}

/// The standard function table of the prelude: small frames around
/// StackSmall (128), a NOSPLIT one, one with pointer arguments, a
/// frameless leaf, then (from index 6) the big frames: around StackBig
/// (4096), and one above it whose SP delta forces growth by more than
/// twice. Functions added by ops follow.
pub fn standard_funcs() -> Vec<FuncSpec> {
    let f = |frame: u32, ptrs: u64, args: u8, object: bool, extra: u32, nosplit: bool| FuncSpec {
        frame,
        ptrs,
        sites: 2,
        args,
        arg_ptrs: 0b101,
        object,
        extra_delta: extra,
        nosplit,
        bad: None,
    };
    vec![
        f(48, u64::MAX, 0, true, 0, false),
        f(128, 0x5555_5555_5555_5555, 0, true, 0, false),
        f(136, u64::MAX, 0, true, 0, false),
        f(64, u64::MAX, 0, true, 0, true),
        f(256, 0x3, 3, true, 0, false),
        f(0, 0, 0, false, 0, false),
        f(512, 0xff00_ff00_ff00_ff0f, 0, true, 0, false),
        f(4096, u64::MAX, 0, true, 0, false),
        f(4104, 0x0f0f, 0, true, 0, false),
        f(4608, u64::MAX, 0, true, 40000, false),
    ]
}

/// Builds the function a spec describes, for a profile.
pub fn build_func(spec: &FuncSpec, idx: usize, c: &gostack_spec::Consts, arch: &str) -> Func {
    let p = c.ptr_size;
    let want = u64::from(spec.frame);
    let frame = match arch {
        "arm64" if want == 0 => 0,
        "arm64" => want.next_multiple_of(16).max(16),
        _ => want.next_multiple_of(p),
    };
    // The locals: the frame less the saved BP (amd64) or the saved LR and
    // FP words (arm64), as the spec's locals_room computes.
    let room = match arch {
        "amd64" if frame > 0 => frame - p,
        "arm64" if frame > 0 => frame.saturating_sub(2 * p),
        _ => frame,
    };
    let words = (room / p).min(64) as usize;
    let nsites = 1 + usize::from(spec.sites % 4);
    let sites = (0..nsites)
        .map(|s| Site {
            locals: (0..words)
                .map(|i| spec.ptrs.rotate_left(s as u32) >> i & 1 == 1)
                .collect(),
            args: (0..usize::from(spec.args % 8))
                .map(|i| spec.arg_ptrs >> i & 1 == 1)
                .collect(),
        })
        .collect();
    let mut f = Func {
        name: format!("f{idx}"),
        frame_size: frame,
        args_size: u64::from(spec.args % 8) * p,
        max_sp_delta: frame + u64::from(spec.extra_delta) / p * p,
        nosplit: spec.nosplit,
        sites,
        objects: Vec::new(),
    };
    // Room for a defer record (five words in Go 1.19, three in 1.23) or a
    // panic record.
    if spec.object && room >= 3 * p {
        let words = if room >= 5 * p { 5 } else { 3 };
        f.objects.push(StackObject {
            off: -(words as i64 * p as i64),
            size: words * p,
            ptrs: vec![true; words as usize],
        });
    }
    if spec.args % 8 >= 2 {
        f.objects.push(StackObject {
            off: 0,
            size: 2 * p,
            ptrs: vec![false, true],
        });
    }
    match spec.bad {
        None => {}
        Some(BadFunc::FrameAlign) => f.frame_size += p / 2 + 8 * u64::from(arch == "arm64"),
        Some(BadFunc::ArgsAlign) => f.args_size += 1,
        Some(BadFunc::DeltaBelowFrame) => {
            f.frame_size = f.frame_size.max(16);
            f.max_sp_delta = f.frame_size - 1;
        }
        Some(BadFunc::NoSites) => f.sites.clear(),
        Some(BadFunc::MapsDiffer) => {
            let mut s = f.sites[0].clone();
            s.locals.push(true);
            f.sites.push(s);
        }
        Some(BadFunc::MapPastFrame) => {
            for s in &mut f.sites {
                s.locals.extend([true; 3]);
            }
        }
        Some(BadFunc::ObjectPastFrame) => f.objects.push(StackObject {
            off: -((room + 2 * p) as i64),
            size: p,
            ptrs: vec![true],
        }),
        Some(BadFunc::Huge) => f.frame_size = 1 << 32,
    }
    f
}

/// The first field in which two JSON values differ: its path (e.g.
/// `goroutines[3].used[17]`) and both values.
pub fn first_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
) -> Option<(String, serde_json::Value, serde_json::Value)> {
    differences(a, b, 1).pop()
}

/// Up to `max` fields in which two JSON values differ, in order: each
/// path (as [`first_difference`] gives it) and both values. An array of
/// another length counts once, as its `.len`, after its common elements.
pub fn differences(
    a: &serde_json::Value,
    b: &serde_json::Value,
    max: usize,
) -> Vec<(String, serde_json::Value, serde_json::Value)> {
    let mut out = Vec::new();
    collect_differences(a, b, "", max, &mut out);
    out
}

fn collect_differences(
    a: &serde_json::Value,
    b: &serde_json::Value,
    at: &str,
    max: usize,
    out: &mut Vec<(String, serde_json::Value, serde_json::Value)>,
) {
    use serde_json::Value;
    if out.len() >= max {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let path = join(at, k);
                match y.get(k) {
                    Some(vb) => collect_differences(va, vb, &path, max, out),
                    None if out.len() < max => out.push((path, va.clone(), Value::Null)),
                    None => {}
                }
            }
            for (k, vb) in y {
                if !x.contains_key(k) && out.len() < max {
                    out.push((join(at, k), Value::Null, vb.clone()));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                collect_differences(va, vb, &format!("{at}[{i}]"), max, out);
            }
            if x.len() != y.len() && out.len() < max {
                let n = x.len().min(y.len());
                out.push((
                    format!("{at}.len (first {n} equal)"),
                    Value::from(x.len()),
                    Value::from(y.len()),
                ));
            }
        }
        _ if a != b => out.push((at.to_string(), a.clone(), b.clone())),
        _ => {}
    }
}

fn dot(p: &str) -> String {
    if p.is_empty() || p.starts_with('[') || p.starts_with('.') {
        p.to_string()
    } else {
        format!(".{p}")
    }
}

fn join(k: &str, p: &str) -> String {
    if k.is_empty() {
        return p.to_string();
    }
    format!("{k}{}", dot(p))
}

/// How the spec and the other side came apart.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Mismatch {
    /// Different results (or throws).
    Result {
        /// The call both got.
        call: String,
        /// The spec's result.
        spec: String,
        /// The other side's.
        other: String,
    },
    /// Equal results, different snapshots.
    Snapshot {
        /// The call both got.
        call: String,
        /// Both returned this.
        result: String,
        /// The first differing field.
        path: String,
        /// The spec's value there.
        spec: String,
        /// The other side's.
        other: String,
        /// The other differing fields (path, spec's value, other side's),
        /// up to [`MAX_DIFFERENCES`] in all.
        more: Vec<(String, String, String)>,
    },
    /// An operation was refused (alike on both sides) but the state
    /// changed: a refusal must change nothing.
    Changed {
        /// The call.
        call: String,
        /// The throw both returned.
        throw: String,
        /// The first field that changed.
        path: String,
        /// Its value before.
        before: String,
        /// Its value after.
        after: String,
        /// The other fields that changed (path, before, after), up to
        /// [`MAX_DIFFERENCES`] in all.
        more: Vec<(String, String, String)>,
    },
    /// A side panicked (a bug in itself: every input has a defined
    /// outcome).
    Panic {
        /// The panic's message.
        message: String,
    },
    /// The spec broke one of its invariants.
    Invariant {
        /// The call.
        call: String,
        /// The violation.
        violation: String,
    },
}

/// A divergence: the case up to and including the op that diverged.
#[derive(Clone, Debug)]
pub struct Divergence {
    /// The reproducer: the profile and the ops up to the failing one.
    pub case: Case,
    /// What differed.
    pub mismatch: Mismatch,
}

impl Divergence {
    /// A short key for "the same failure": the mismatch kind and, for
    /// results and snapshots, the op and the differing field.
    pub fn key(&self) -> String {
        let op = self.case.ops.last().map(|o| o.name()).unwrap_or("prelude");
        match &self.mismatch {
            Mismatch::Result { .. } => format!("result of {op}"),
            Mismatch::Snapshot { path, .. } => {
                format!("state {} after {op}", field_of(path))
            }
            Mismatch::Invariant { violation, .. } => {
                format!("invariant {}", violation.split(':').next().unwrap_or(""))
            }
            Mismatch::Panic { .. } => "panic".into(),
            Mismatch::Changed { path, .. } => format!("failed {op} changed {}", field_of(path)),
        }
    }
}

/// The top two components of a path (`snapshot.goroutines`), without
/// indices.
fn field_of(path: &str) -> String {
    path.split('.')
        .take(2)
        .map(|c| c.split('[').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(".")
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.case.ops.len();
        let op = self
            .case
            .ops
            .last()
            .map(|o| format!("{o:?}"))
            .unwrap_or_else(|| "(prelude)".into());
        writeln!(
            f,
            "{} step {}: {op}",
            self.case.profile,
            n.saturating_sub(1)
        )?;
        match &self.mismatch {
            Mismatch::Result { call, spec, other } => writeln!(
                f,
                "  results differ for {call}\n  spec: {spec}\n  impl: {other}"
            )?,
            Mismatch::Snapshot {
                call,
                result,
                path,
                spec,
                other,
                more,
            } => {
                writeln!(
                    f,
                    "  snapshots differ after {call} (both returned {result})\n  at {path}\n  spec: {spec}\n  impl: {other}"
                )?;
                write_more(f, more, "spec", "impl")?
            }
            Mismatch::Invariant { call, violation } => {
                writeln!(f, "  spec invariant broken after {call}: {violation}")?
            }
            Mismatch::Panic { message } => writeln!(f, "  a side panicked: {message}")?,
            Mismatch::Changed {
                call,
                throw,
                path,
                before,
                after,
                more,
            } => {
                writeln!(
                    f,
                    "  {call} failed ({throw}) on both sides but changed the state\n  at {path}\n  before: {before}\n  after:  {after}"
                )?;
                write_more(f, more, "before", "after")?
            }
        }
        write!(
            f,
            "  reproducer: {}",
            serde_json::to_string(&self.case).unwrap_or_default()
        )
    }
}

/// The most differing fields a divergence lists.
pub const MAX_DIFFERENCES: usize = 32;

/// The differing fields after the first, one line each.
fn write_more(
    f: &mut fmt::Formatter<'_>,
    more: &[(String, String, String)],
    a: &str,
    b: &str,
) -> fmt::Result {
    if !more.is_empty() {
        writeln!(f, "  {} more differing fields:", more.len())?;
    }
    for (path, x, y) in more {
        writeln!(f, "  at {path}: {a} {x}, {b} {y}")?;
    }
    if more.len() + 1 >= MAX_DIFFERENCES {
        writeln!(f, "  (the list stops at {MAX_DIFFERENCES})")?;
    }
    Ok(())
}

/// The spec and (optionally) another side, driven in step.
pub struct Harness<B: Machine = State> {
    profile: String,
    spec: State,
    other: Option<B>,
    held: Held,
    ops: Vec<Op>,
    /// The snapshots after the last step (both sides had them).
    last: Option<(Snapshot, WorldSnap)>,
    /// Steps taken (bursts count once).
    pub steps: u64,
    /// The Go throw that ended the case, if one did.
    dead: Option<Throw>,
}

impl<B: Machine> Harness<B> {
    /// Both sides on `profile`, after the prelude: two Ps, the
    /// [`standard_funcs`], and channels of one, two and three words.
    pub fn new(profile: &str) -> Result<Self, String> {
        Self::build(profile, true)
    }

    /// The spec alone (for coverage counts and speed baselines): the same
    /// ops and invariant checks, nothing to compare with.
    pub fn solo(profile: &str) -> Result<Self, String> {
        Self::build(profile, false)
    }

    fn build(profile: &str, with_other: bool) -> Result<Self, String> {
        let c = config(profile)?;
        let spec = State::new(c.clone()).map_err(|t| t.to_string())?;
        let other = if with_other {
            Some(B::create(c).map_err(|t| t.to_string())?)
        } else {
            None
        };
        let mut h = Harness {
            profile: profile.to_string(),
            spec,
            other,
            held: Held::default(),
            ops: Vec::new(),
            last: None,
            steps: 0,
            dead: None,
        };
        let mut prelude = vec![Op::CreateP, Op::CreateP];
        prelude.extend(standard_funcs().into_iter().map(Op::AddFunc));
        prelude.extend((1..=3).map(|k| Op::MakeChan(Ok(k))));
        for op in prelude {
            match h.step(op.clone()) {
                Ok(Ok(_)) => {}
                Ok(Err(t)) => return Err(format!("{profile}: prelude op {op:?} failed: {t}")),
                Err(d) => return Err(format!("prelude: {d}")),
            }
        }
        h.ops.clear();
        Ok(h)
    }

    /// The spec's state.
    pub fn spec(&self) -> &State {
        &self.spec
    }

    /// The other side, if any.
    pub fn other(&self) -> Option<&B> {
        self.other.as_ref()
    }

    /// The ops applied since the prelude.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// The Go throw both sides died of, if one ended the case. A throw is
    /// fatal (as in Go): after it both sides must refuse every operation
    /// with [`Misuse::Dead`], which later steps still compare, but their
    /// states are no longer compared (the spec keeps the state from before
    /// the throw, an implementation whatever the throw left), and drivers
    /// end the case.
    pub fn dead(&self) -> Option<&Throw> {
        self.dead.as_ref()
    }

    /// One op on both sides: equal results, equal snapshots and worlds,
    /// nothing changed by a refused op, the spec's invariants. A Go throw
    /// (equal on both sides) ends the case: see [`Harness::dead`]. Returns
    /// the spec's result.
    pub fn step(&mut self, op: Op) -> Result<Result<Out, Throw>, Box<Divergence>> {
        let call = self.resolve(&op);
        self.ops.push(op);
        self.steps += 1;
        if call == Call::Skip {
            // Nothing was called on either side: nothing to compare.
            return Ok(Ok(Out::Skip));
        }
        let a = apply(&mut self.spec, &call);
        if let Some(other) = self.other.as_mut() {
            let b = apply(other, &call);
            if a != b {
                return Err(self.diverged(Mismatch::Result {
                    call: format!("{call:?}"),
                    spec: format!("{a:?}"),
                    other: format!("{b:?}"),
                }));
            }
            let fatal = self.dead.is_some() || go_throw(&a).is_some();
            if fatal {
                self.dead = self.dead.take().or_else(|| go_throw(&a).cloned());
                self.record(&call, &a);
                return Ok(a);
            }
            let sa = (self.spec.snapshot(), self.spec.world());
            let sb = (other.snapshot(), other.world());
            if sa != sb {
                let mut diffs = state_differences(&sa, &sb).into_iter();
                let (path, x, y) = diffs.next().unwrap_or_default();
                return Err(self.diverged(Mismatch::Snapshot {
                    call: format!("{call:?}"),
                    result: format!("{a:?}"),
                    path,
                    spec: x,
                    other: y,
                    more: diffs.collect(),
                }));
            }
            if let (Err(t), Some(before)) = (&a, &self.last) {
                if *before != sa {
                    let mut diffs = state_differences(before, &sa).into_iter();
                    let (path, x, y) = diffs.next().unwrap_or_default();
                    return Err(self.diverged(Mismatch::Changed {
                        call: format!("{call:?}"),
                        throw: format!("{t:?}"),
                        path,
                        before: x,
                        after: y,
                        more: diffs.collect(),
                    }));
                }
            }
            self.last = Some(sa);
        }
        if self.dead.is_none() {
            self.dead = go_throw(&a).cloned();
        }
        if let Err(v) = check_invariants(&self.spec) {
            return Err(self.diverged(Mismatch::Invariant {
                call: format!("{call:?}"),
                violation: v.to_string(),
            }));
        }
        self.record(&call, &a);
        Ok(a)
    }

    fn diverged(&self, mismatch: Mismatch) -> Box<Divergence> {
        Box::new(Divergence {
            case: Case {
                profile: self.profile.clone(),
                ops: self.ops.clone(),
            },
            mismatch,
        })
    }

    fn record(&mut self, call: &Call, out: &Result<Out, Throw>) {
        let Ok(out) = out else { return };
        match (call, out) {
            (Call::Alloc(..), Out::Stack(lo, hi)) => self.held.stacks.push((*lo, *hi)),
            (Call::Free(_, lo, hi), _) => {
                if let Some(i) = self.held.stacks.iter().position(|s| *s == (*lo, *hi)) {
                    self.held.stacks.remove(i);
                    self.held.freed.push((*lo, *hi));
                }
            }
            (Call::AllocMany(..), Out::Burst(done, _)) => {
                for o in done {
                    if let Out::Stack(lo, hi) = o {
                        self.held.stacks.push((*lo, *hi));
                    }
                }
            }
            (Call::FreeMany(_, stacks), Out::Burst(done, _)) => {
                for st in &stacks[..done.len()] {
                    if let Some(i) = self.held.stacks.iter().position(|s| s == st) {
                        self.held.stacks.remove(i);
                        self.held.freed.push(*st);
                    }
                }
            }
            (Call::HeapAlloc(_), Out::Off(a)) => self.held.heap.push(*a),
            (Call::Spawn(..) | Call::NewProc(..), Out::Id(g)) => self.held.last_g = Some(*g as u32),
            (Call::SpawnBurst(..), Out::Burst(done, _)) => {
                if let Some(Out::Id(g)) = done.last() {
                    self.held.last_g = Some(*g as u32);
                }
            }
            (Call::HeapFree(a), _) => self.held.heap.retain(|x| x != a),
            _ => {}
        }
    }

    fn ptr(&self) -> u64 {
        self.spec.consts.ptr_size
    }

    fn ps(&self) -> Vec<u32> {
        self.spec.ps.keys().copied().collect()
    }

    fn ctx(&self, w: Who) -> Ctx {
        let ps = self.ps();
        match w {
            Who::P(i) => Ctx::on(pick(&ps, i.into()).unwrap_or(u32::from(i) + 100)),
            Who::NoP => Ctx::no_p(),
            Who::Preemptoff(i) => Ctx {
                p: Some(pick(&ps, i.into()).unwrap_or(u32::from(i) + 100)),
                preemptoff: true,
            },
            Who::Id(p) => Ctx::on(p),
        }
    }

    fn gsel(&self, s: GSel) -> Option<u32> {
        let gs = &self.spec.gor.gs;
        let all: Vec<u32> = gs.keys().copied().collect();
        let of = |f: &dyn Fn(&gostack_spec::goroutine::G) -> bool| -> Vec<u32> {
            gs.iter().filter(|(_, g)| f(g)).map(|(&id, _)| id).collect()
        };
        match s {
            GSel::Runnable(i) => {
                let r = of(&|g| g.status == GStatus::Runnable && g.waiting.is_empty());
                pick(&r, i.into()).or_else(|| pick(&all, i.into()))
            }
            GSel::Waiting(i) => {
                let r = of(&|g| !g.waiting.is_empty());
                pick(&r, i.into()).or_else(|| pick(&all, i.into()))
            }
            GSel::Any(i) => pick(&all, i.into()),
            GSel::Raw(id) => Some(id),
            GSel::Last => self.held.last_g.or_else(|| pick(&all, 0)),
        }
    }

    fn csel(&self, s: CSel) -> Option<u32> {
        let chans = &self.spec.gor.chans;
        let all: Vec<u32> = chans.keys().copied().collect();
        match s {
            CSel::Busy(i) => {
                let busy: Vec<u32> = chans
                    .iter()
                    .filter(|(_, c)| !c.recvq.is_empty())
                    .map(|(&id, _)| id)
                    .collect();
                pick(&busy, i.into()).or_else(|| pick(&all, i.into()))
            }
            CSel::Any(i) => pick(&all, i.into()),
            CSel::Raw(id) => Some(id),
        }
    }

    fn nframes(&self, g: u32) -> usize {
        self.spec.frames(g).map(|f| f.len()).unwrap_or(0)
    }

    fn frame(&self, g: u32, f: u8) -> usize {
        let n = self.nframes(g);
        if f < 200 && n > 0 {
            usize::from(f) % n
        } else {
            usize::from(f)
        }
    }

    fn func_of_frame(&self, g: u32, frame: usize) -> Option<&Func> {
        let frames = self.spec.frames(g).ok()?;
        self.spec.gor.funcs.get(frames.get(frame)?.func)
    }

    /// Bytes of the caller's locals below the arguments of frame `frame`:
    /// the outgoing-argument room the caller's frame has. Go's callers
    /// always have room for their callees' arguments; the spec does not
    /// check it (a function table is taken as given), so the harness
    /// writes arguments and argument objects only where that room exists.
    fn args_room(&self, g: u32, frame: usize) -> u64 {
        let Ok(frames) = self.spec.frames(g) else {
            return 0;
        };
        match frames.get(frame + 1) {
            Some(c) if c.site.is_some() => self.locals_bytes(c),
            _ => 0,
        }
    }

    /// Bytes of a frame's locals, `[varp - n, varp)`: the frame below
    /// varp less the saved LR at 0(SP) on link-register machines.
    fn locals_bytes(&self, fr: &gostack_spec::goroutine::Frame) -> u64 {
        let lr = if self.spec.config.profile.goarch.has_lr() {
            self.ptr()
        } else {
            0
        };
        fr.varp.saturating_sub(fr.sp).saturating_sub(lr)
    }

    /// The stack objects of a frame that are safe to write: locals
    /// objects, and argument objects within the caller's room.
    fn safe_objects(&self, g: u32, frame: usize) -> Vec<usize> {
        let Some(f) = self.func_of_frame(g, frame) else {
            return Vec::new();
        };
        let room = self.args_room(g, frame);
        f.objects
            .iter()
            .enumerate()
            .filter(|(_, o)| o.off < 0 || o.off as u64 + o.size <= room)
            .map(|(i, _)| i)
            .collect()
    }

    fn slot(&self, g: u32, frame: usize, s: SlotSel) -> Slot {
        let p = self.ptr();
        let f = self.func_of_frame(g, frame);
        let m = |i: usize, n: usize| if n > 0 { i % n } else { i };
        let local = |i: u16| {
            let n = f.map(|f| f.sites[0].locals.len()).unwrap_or(0);
            Slot::Local(m(i.into(), n))
        };
        match s {
            SlotSel::Local(i) => local(i),
            SlotSel::Arg(i) => {
                let n = f.map(|f| (f.args_size / p) as usize).unwrap_or(0);
                let room = (self.args_room(g, frame) / p) as usize;
                if n > 0 && room >= n {
                    Slot::Arg(m(i.into(), n))
                } else {
                    local(i)
                }
            }
            SlotSel::Object(o, w) => {
                let safe = self.safe_objects(g, frame);
                match pick(&safe, o.into()) {
                    Some(o) => {
                        let size = f.map(|f| f.objects[o].size).unwrap_or(0);
                        Slot::Object(o, m(w.into(), (size / p) as usize))
                    }
                    None => local(w.into()),
                }
            }
            SlotSel::RawLocal(i) => Slot::Local(i.into()),
        }
    }

    /// Stack object `o` of a frame among the safe ones; an index past the
    /// table (refused) when there is none.
    fn object(&self, g: u32, frame: usize, o: u8) -> usize {
        let safe = self.safe_objects(g, frame);
        pick(&safe, o.into()).unwrap_or_else(|| {
            self.func_of_frame(g, frame)
                .map(|f| f.objects.len())
                .unwrap_or(0)
                + usize::from(o)
        })
    }

    /// A receive slot for a channel of `words` words: a run of local words
    /// of some frame (Go's receive slots are locals), chosen by `w`; a
    /// frame's return-address word for `0xe000 <= w < 0xf000` (refused as
    /// `NotALocal`); the word below SP for `w >= 0xf000` or when no frame
    /// has room.
    fn recv_slot(&self, g: u32, w: u16, words: u64) -> u64 {
        let p = self.ptr();
        let below = self
            .spec
            .gor
            .gs
            .get(&g)
            .map(|g| g.sp.wrapping_sub(p))
            .unwrap_or(0);
        if w >= 0xf000 {
            return below;
        }
        let Ok(frames) = self.spec.frames(g) else {
            return below;
        };
        if w >= 0xe000 {
            let lr_arch = self.spec.config.profile.goarch.has_lr();
            // A word of the used stack that is no local: a frame's return
            // address (x86: below fp; arm64: saved at 0(SP)).
            let links: Vec<u64> = frames
                .iter()
                .filter(|fr| fr.site.is_some())
                .map(|fr| if lr_arch { fr.sp } else { fr.fp - p })
                .collect();
            return pick(&links, w.into()).unwrap_or(below);
        }
        let mut cands = Vec::new();
        for fr in frames.iter().filter(|fr| fr.site.is_some()) {
            let room = self.locals_bytes(fr) / p;
            let mut i = 0;
            while i + words.max(1) <= room && cands.len() < 256 {
                cands.push(fr.varp - (room - i) * p);
                i += 1;
            }
        }
        pick(&cands, w.into()).unwrap_or(below)
    }

    /// The value `v` stands for, written into frame `frame` of `g`.
    fn val(&self, g: Option<u32>, frame: usize, v: Val) -> u64 {
        let p = self.ptr();
        match v {
            Val::Nil => 0,
            Val::Heap(h) => heap_ptr(h, p),
            Val::Junk(j) => 1 + u64::from(j) % (self.spec.consts.min_legal_pointer - 1),
            Val::Raw(x) => x,
            Val::StackPtr(f, w) => {
                let Some(g) = g else {
                    return heap_ptr(u32::from(w), p);
                };
                let n = self.nframes(g);
                if n <= frame {
                    return 0;
                }
                let tf = frame + usize::from(f) % (n - frame);
                let slot = self.slot(g, tf, SlotSel::Local(w));
                self.spec.slot_addr(g, tf, slot).unwrap_or(0)
            }
        }
    }

    /// Word `w` of `g`'s used stack (from SP), or the word below SP.
    fn used_word(&self, g: u32, w: u16) -> u64 {
        let p = self.ptr();
        let Some(gr) = self.spec.gor.gs.get(&g) else {
            return 0;
        };
        if w >= 0xf000 {
            return gr.sp.wrapping_sub(p);
        }
        let n = gr.stack.hi.saturating_sub(gr.sp) / p;
        if n == 0 {
            gr.sp
        } else {
            gr.sp + u64::from(w) % n * p
        }
    }

    fn cases(&self, g: u32, cs: &[CaseSel]) -> Vec<(u32, u64)> {
        cs.iter()
            .map(|c| {
                let ch = self.csel(c.c).unwrap_or(u32::MAX);
                let words = self
                    .spec
                    .gor
                    .chans
                    .get(&ch)
                    .map(|c| c.elemsize / self.ptr())
                    .unwrap_or(1);
                (ch, self.recv_slot(g, c.word, words))
            })
            .collect()
    }

    fn func_index(&self, f: u8) -> usize {
        let n = self.spec.gor.funcs.len();
        if f < 200 && n > 0 {
            usize::from(f) % n
        } else {
            usize::from(f)
        }
    }

    fn site(&self, g: u32, s: u8) -> usize {
        let n = match self.spec.gor.gs.get(&g).map(|g| g.pc) {
            Some(Pc::At(f, _)) => self.spec.gor.funcs[f].sites.len(),
            _ => 0,
        };
        if s < 200 && n > 0 {
            usize::from(s) % n
        } else {
            usize::from(s)
        }
    }

    fn size(&self, s: SizeSel) -> u64 {
        match s {
            SizeSel::Order(k) => self.spec.consts.fixed_stack << (k % 12),
            SizeSel::Raw(n) => n,
        }
    }

    /// Whether bounds (as offsets) are some goroutine's stack: freeing one
    /// behind its goroutine's back is not an operation of the API (the
    /// spec would let it and break the goroutine).
    /// Whether the stack at offset `lo` belongs to a goroutine or an M
    /// (a raw free of it is not the test's to make).
    fn is_g_stack(&self, lo: u64) -> bool {
        let lo = lo.wrapping_add(self.spec.heap.base);
        let gor = &self.spec.gor;
        gor.gs.values().any(|g| g.stack.lo != 0 && g.stack.lo == lo)
            || gor.ms.values().any(|m| m.g0.lo == lo || m.gsignal.lo == lo)
            || gor.freem.iter().any(|&(_, stk)| stk.lo == lo)
    }

    /// The concrete call an op stands for in the spec's present state.
    pub fn resolve(&self, op: &Op) -> Call {
        let p = self.ptr();
        let base = self.spec.heap.base;
        let ps = self.ps();
        let g_or_skip = |s: GSel| self.gsel(s);
        macro_rules! g {
            ($s:expr) => {
                match g_or_skip($s) {
                    Some(g) => g,
                    None => return Call::Skip,
                }
            };
        }
        match op {
            Op::Alloc(w, s) => Call::Alloc(self.ctx(*w), self.size(*s)),
            Op::Free(w, i) => match pick(&self.held.stacks, (*i).into()) {
                Some((lo, hi)) => Call::Free(self.ctx(*w), lo, hi),
                None => Call::Skip,
            },
            Op::AllocMany(w, s, n) => Call::AllocMany(self.ctx(*w), self.size(*s), *n),
            Op::FreeMany(w, n) => {
                let k = usize::from(*n).min(self.held.stacks.len());
                let newest = self.held.stacks[self.held.stacks.len() - k..]
                    .iter()
                    .rev()
                    .copied()
                    .collect();
                Call::FreeMany(self.ctx(*w), newest)
            }
            Op::BadFree(w, i, k) => {
                let i = usize::from(*i);
                let fixed = self.spec.consts.fixed_stack;
                let heap = pick(&self.held.heap, i);
                let bad = match (k % 6, pick(&self.held.stacks, i), pick(&self.held.freed, i)) {
                    (5, _, _) => heap.map(|h| (h, h + (fixed << ((k / 6) % 6)))),
                    (0, Some((lo, hi)), _) => Some((lo + 8, hi + 8)),
                    (4, Some((lo, hi)), _) => Some((lo, hi - (hi - lo) / 4)),
                    (1, Some((lo, hi)), _) => Some((lo, lo + 2 * (hi - lo))),
                    (2, _, _) => self
                        .held
                        .freed
                        .last()
                        .copied()
                        .filter(|st| !self.held.stacks.contains(st)),
                    (3, _, _) => {
                        let lo = (i as u64 * 0x800) % ARENA_BYTES;
                        Some((lo, lo + (fixed << (k % 6))))
                    }
                    (_, _, Some(st)) if !self.held.stacks.contains(&st) => Some(st),
                    _ => None,
                };
                match bad {
                    Some((lo, _)) if self.is_g_stack(lo) => Call::Skip,
                    Some((lo, hi)) => Call::Free(self.ctx(*w), lo, hi),
                    None => Call::Skip,
                }
            }
            Op::CreateP => Call::CreateP,
            Op::DestroyP(i) => pick(&ps, (*i).into()).map_or(Call::Skip, Call::DestroyP),
            Op::FlushCache(i) => pick(&ps, (*i).into()).map_or(Call::Skip, Call::FlushCache),
            Op::DestroyPId(id) => Call::DestroyP(*id),
            Op::FlushCacheId(id) => Call::FlushCache(*id),
            Op::ReadMemStats => Call::ReadMemStats,
            Op::HeapAlloc(n) => Call::HeapAlloc(u64::from(*n % 64)),
            Op::HeapFree(i) => {
                pick(&self.held.heap, (*i).into()).map_or(Call::Skip, Call::HeapFree)
            }
            Op::HeapFreeAt(off) => {
                let a = u64::from(*off) & !(PAGE_SIZE - 1);
                // Heap spans the harness did not take (the spec's own
                // defer-record pages) are not the test's to free.
                let theirs = self
                    .spec
                    .heap
                    .spans
                    .get(&(a + base))
                    .is_some_and(|s| s.state == SpanState::InUse)
                    && !self.held.heap.contains(&a);
                if theirs {
                    Call::Skip
                } else {
                    Call::HeapFree(a)
                }
            }
            Op::GcStart => Call::GcStart,
            Op::GcMarkTermination => Call::GcMarkTermination,
            Op::GcOff => Call::GcOff,
            Op::FreeStackSpans => Call::FreeStackSpans,
            Op::GcEnd => Call::GcEnd,
            Op::MarkRead(i, off) => match pick(&self.held.stacks, (*i).into()) {
                Some((lo, hi)) => Call::MarkRead(lo + u64::from(*off) % (hi - lo)),
                None => Call::Skip,
            },
            Op::MarkReadG(g, w) => {
                let g = g!(*g);
                Call::MarkRead(self.used_word(g, *w).wrapping_sub(base))
            }
            Op::MarkReadAt(off) => Call::MarkRead(u64::from(*off)),
            Op::Mark(i) => {
                let ms: Vec<u32> = self.spec.markers.keys().copied().collect();
                pick(&ms, (*i).into()).map_or(Call::Skip, Call::Mark)
            }
            Op::MarkId(id) => Call::Mark(*id),
            Op::AddFunc(spec) => Call::AddFunc(build_func(
                spec,
                self.spec.gor.funcs.len(),
                &self.spec.consts,
                self.spec.config.profile.goarch.name(),
            )),
            Op::Spawn(w, f) => Call::Spawn(self.ctx(*w), self.func_index(*f)),
            Op::NewProc(w, f) => Call::NewProc(self.ctx(*w), self.func_index(*f)),
            Op::Start(w, i) => {
                let new: Vec<u32> = self
                    .spec
                    .gor
                    .gs
                    .iter()
                    .filter(|(_, g)| g.status == GStatus::Runnable && matches!(g.pc, Pc::Entry(_)))
                    .map(|(&id, _)| id)
                    .collect();
                let all: Vec<u32> = self.spec.gor.gs.keys().copied().collect();
                match pick(&new, (*i).into()).or_else(|| pick(&all, (*i).into())) {
                    Some(g) => Call::Start(self.ctx(*w), g),
                    None => Call::Skip,
                }
            }
            Op::CreateM(w) => Call::CreateM(self.ctx(*w)),
            Op::ExitM(w, i) => {
                let ms: Vec<u32> = self.spec.gor.ms.keys().copied().collect();
                Call::ExitM(
                    self.ctx(*w),
                    pick(&ms, (*i).into()).unwrap_or(u32::from(*i) + 100),
                )
            }
            Op::SpawnBurst(w, f, n) => Call::SpawnBurst(self.ctx(*w), self.func_index(*f), n % 81),
            Op::Call(w, g, s, f) => {
                let g = g!(*g);
                Call::Call(self.ctx(*w), g, self.site(g, *s), self.func_index(*f))
            }
            Op::Recurse(w, g, s, f, n) => {
                let g = g!(*g);
                Call::Recurse(self.ctx(*w), g, self.site(g, *s), self.func_index(*f), *n)
            }
            Op::Ret(w, g) => Call::Ret(self.ctx(*w), g!(*g)),
            Op::Unwind(w, g, n) => {
                let g = g!(*g);
                let k = self.nframes(g).saturating_sub(1).min(usize::from(*n));
                Call::Unwind(self.ctx(*w), g, k)
            }
            Op::SetSite(g, s) => {
                let g = g!(*g);
                Call::SetSite(g, self.site(g, *s))
            }
            Op::SlotAddr(g, f, s) => {
                let g = g!(*g);
                let f = self.frame(g, *f);
                Call::SlotAddr(g, f, self.slot(g, f, *s))
            }
            Op::WriteSlot(g, f, s, v) => {
                let g = g!(*g);
                let f = self.frame(g, *f);
                Call::WriteSlot(g, f, self.slot(g, f, *s), self.val(Some(g), f, *v))
            }
            Op::Poke(g, w, v) => {
                let g = g!(*g);
                Call::Poke(g, self.used_word(g, *w), self.val(Some(g), 0, *v))
            }
            Op::SetCtxt(g, v) => {
                let g = g!(*g);
                Call::SetCtxt(g, self.val(Some(g), 0, *v))
            }
            Op::DeferPush(g, f, fv, o) => {
                let g = g!(*g);
                let f = self.frame(g, *f);
                let o = o.map(|o| self.object(g, f, o));
                Call::DeferPush(g, f, heap_ptr(*fv, p), o)
            }
            Op::DeferPop(g) => Call::DeferPop(g!(*g)),
            Op::PanicPush(g, f, o) => {
                let g = g!(*g);
                let f = self.frame(g, *f);
                let o = self.object(g, f, *o);
                Call::PanicPush(g, f, o)
            }
            Op::RequestPreempt(g) => Call::RequestPreempt(g!(*g)),
            Op::RequestForceMove(g) => Call::RequestForceMove(g!(*g)),
            Op::SetMaxStack(Ok(k)) => Call::SetMaxStack(self.spec.consts.fixed_stack << (k % 16)),
            Op::SetMaxStack(Err(n)) => Call::SetMaxStack(*n),
            Op::IsShrinkStackSafe(g) => Call::IsShrinkStackSafe(g!(*g)),
            Op::EnterSyscall(g) => Call::EnterSyscall(g!(*g)),
            Op::ExitSyscall(g) => Call::ExitSyscall(g!(*g)),
            Op::ExitSyscall0(g) => Call::ExitSyscall0(g!(*g)),
            Op::BeforeFork(g) => Call::BeforeFork(g!(*g)),
            Op::AfterFork(g) => Call::AfterFork(g!(*g)),
            Op::SetAsyncSafePoint(g, on) => Call::SetAsyncSafePoint(g!(*g), *on),
            Op::GcScan(i, g) => {
                let p = pick(&ps, (*i).into()).unwrap_or(u32::from(*i) + 100);
                Call::GcScan(p, g!(*g))
            }
            Op::GcScanAll(i) => {
                let p = pick(&ps, (*i).into()).unwrap_or(u32::from(*i) + 100);
                Call::GcScanAll(p, self.spec.stack_roots_left())
            }
            Op::GcComputeStartingStackSize => Call::GcComputeStartingStackSize,
            Op::GcFreeGStacks(i) => {
                let p = pick(&ps, (*i).into()).unwrap_or(u32::from(*i) + 100);
                Call::GcFreeGStacks(p)
            }
            Op::Exit(w, g) => Call::Exit(self.ctx(*w), g!(*g)),
            Op::ExitBurst(w, n) => {
                let gs: Vec<u32> = self
                    .spec
                    .gor
                    .gs
                    .iter()
                    .filter(|(_, g)| g.status == GStatus::Runnable && g.waiting.is_empty())
                    .map(|(&id, _)| id)
                    .take(usize::from(*n))
                    .collect();
                Call::ExitMany(self.ctx(*w), gs)
            }
            Op::MakeChan(Ok(k)) => Call::MakeChan(u64::from(k % 4) * p),
            Op::MakeChan(Err(n)) => Call::MakeChan(u64::from(*n)),
            Op::ParkBegin(g, cs) => {
                let g = g!(*g);
                Call::ParkBegin(g, self.cases(g, cs))
            }
            Op::ParkSetParking(g) => Call::ParkSetParking(g!(*g)),
            Op::ParkM(g) => Call::ParkM(g!(*g)),
            Op::ParkCommit(g) => Call::ParkCommit(g!(*g)),
            Op::Park(g, cs) => {
                let g = g!(*g);
                Call::Park(g, self.cases(g, cs))
            }
            Op::Send(c, v, extra) => {
                let Some(c) = self.csel(*c) else {
                    return Call::Skip;
                };
                let words = self
                    .spec
                    .gor
                    .chans
                    .get(&c)
                    .map(|ch| ch.elemsize / p)
                    .unwrap_or(1) as i64;
                let n = (words + i64::from(*extra % 3)).max(0) as usize;
                Call::Send(c, vec![self.val(None, 0, *v); n])
            }
            Op::Wake(g) => Call::Wake(g!(*g)),
            Op::Frames(g) => Call::Frames(g!(*g)),
            Op::ReadWord(g, w) => {
                let g = g!(*g);
                Call::ReadWord(self.used_word(g, *w))
            }
        }
    }
}

/// The differing fields of two observed states (the snapshot and the
/// rest, `world`), at most [`MAX_DIFFERENCES`], each with both values as
/// JSON: a path is `snapshot.goroutines[3].used[17]` or
/// `world.chans[0].recvq`. Never empty for states that differ.
pub fn state_differences(
    a: &(Snapshot, WorldSnap),
    b: &(Snapshot, WorldSnap),
) -> Vec<(String, String, String)> {
    let json = |s: &(Snapshot, WorldSnap)| {
        serde_json::json!({
            "snapshot": serde_json::to_value(&s.0).unwrap_or_default(),
            "world": serde_json::to_value(&s.1).unwrap_or_default(),
        })
    };
    let found: Vec<(String, String, String)> = differences(&json(a), &json(b), MAX_DIFFERENCES)
        .into_iter()
        .map(|(p, l, r)| (p, l.to_string(), r.to_string()))
        .collect();
    if found.is_empty() && a != b {
        return vec![(
            "(equal as JSON; differ in a field JSON does not show)".into(),
            format!("{a:?}"),
            format!("{b:?}"),
        )];
    }
    found
}

/// The first differing field of two observed states (see
/// [`state_differences`]).
pub fn state_difference(
    a: &(Snapshot, WorldSnap),
    b: &(Snapshot, WorldSnap),
) -> (String, String, String) {
    state_differences(a, b)
        .into_iter()
        .next()
        .unwrap_or_default()
}
