//! The operation language: one [`Op`] per operation of the spec's public
//! API, plus a few hostile and burst forms.
//!
//! Ops name objects by *index into what is live* (the i-th held stack, the
//! i-th runnable goroutine, the i-th channel with a waiting receiver, ...),
//! taken modulo the number of candidates when the op runs, so that any
//! sequence is meaningful and shrinking (dropping ops, making numbers
//! smaller) keeps it meaningful. Sizes and frame sizes are given relative
//! to the profile's thresholds ([`SizeSel`], [`FuncSpec`]) so that one
//! sequence hits the same paths on every profile. [`crate::harness`] turns
//! an op into concrete arguments from the spec's state; both sides then get
//! the same arguments.
//!
//! Every type here is `Serialize`/`Deserialize` (a sequence is a JSON
//! reproducer) and `Arbitrary` (for libFuzzer targets). The weighted
//! proptest strategies that reach every path are in [`crate::gen`].

use arbitrary::Arbitrary;
use serde::{Deserialize, Serialize};

/// Who performs an allocator or goroutine operation: the M's P and
/// `m.preemptoff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Arbitrary)]
pub enum Who {
    /// The i-th live P (an id no P has when there is none).
    P(u8),
    /// No P (exitsyscall, procresize).
    NoP,
    /// The i-th live P with `m.preemptoff` set.
    Preemptoff(u8),
    /// A raw P id, usually one that does not exist.
    Id(u32),
}

/// A stack size, relative to the profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Arbitrary)]
pub enum SizeSel {
    /// `fixedStack << k` (k taken modulo 12): the pool orders, then the
    /// large sizes.
    Order(u8),
    /// Exactly this many bytes (bad sizes: 0, not a power of two, below
    /// fixedStack, above 2^32, larger than the arena).
    Raw(u64),
}

/// A goroutine, by index into the goroutines in some state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Arbitrary)]
pub enum GSel {
    /// The i-th runnable goroutine (falls back to any goroutine).
    Runnable(u8),
    /// The i-th goroutine with sudogs (parking, parked or readied; falls
    /// back to any goroutine).
    Waiting(u8),
    /// The i-th goroutine ever made, dead ones included.
    Any(u8),
    /// A raw id, usually one no goroutine has.
    Raw(u32),
    /// The goroutine the last successful spawn returned (falls back to
    /// any goroutine).
    Last,
}

/// A channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Arbitrary)]
pub enum CSel {
    /// The i-th channel with a waiting receiver (falls back to any).
    Busy(u8),
    /// The i-th channel.
    Any(u8),
    /// A raw id, usually one no channel has.
    Raw(u32),
}

/// A word of a goroutine's frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Arbitrary)]
pub enum SlotSel {
    /// Local word i (taken modulo the frame's locals when it has any).
    Local(u16),
    /// Argument word i (modulo the arguments).
    Arg(u16),
    /// Word w of stack object o (both modulo what exists).
    Object(u8, u8),
    /// Local word i as given: out of range when i is large.
    RawLocal(u16),
}

/// A word value written into a stack, a register or a channel element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Arbitrary)]
pub enum Val {
    /// Nil.
    Nil,
    /// A heap pointer outside the arena.
    Heap(u32),
    /// The address of local word `word` of frame `frame` of the same
    /// goroutine, counted outwards from the frame being written (so it
    /// points into the same or an older frame, as escape analysis allows).
    StackPtr(u8, u16),
    /// A small non-zero value below `minLegalPointer`: junk that copystack
    /// throws on when it sits in a live pointer slot.
    Junk(u16),
    /// Any word (wider than the pointer on 32-bit profiles).
    Raw(u64),
}

/// A frame of a goroutine: `frame % nframes` when below 200, else the raw
/// number (out of range).
pub type FrameSel = u8;

/// One case of a select: a channel and the receive slot, chosen by `word`
/// among the local words of the goroutine's frames (`0xe000..0xf000`: a
/// return-address word, which is no local; `0xf000` and above: one word
/// below SP, outside the used stack).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Arbitrary)]
pub struct CaseSel {
    /// The channel.
    pub c: CSel,
    /// The receive slot.
    pub word: u16,
}

/// A way to make a function description invalid, for the hostile
/// `AddFunc`s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Arbitrary)]
pub enum BadFunc {
    /// A frame size that is not a multiple of the pointer size (or of 16
    /// on arm64).
    FrameAlign,
    /// An argument size that is not a multiple of the pointer size.
    ArgsAlign,
    /// `max_sp_delta` below the frame size.
    DeltaBelowFrame,
    /// No call sites.
    NoSites,
    /// Sites whose pointer maps have different lengths.
    MapsDiffer,
    /// A locals map longer than the frame.
    MapPastFrame,
    /// A stack object outside the frame.
    ObjectPastFrame,
    /// A frame larger than the assembler's int32.
    Huge,
}

/// A function description, relative to the profile: the frame is sized
/// in bytes and rounded to what the architecture's assembler makes of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Arbitrary)]
pub struct FuncSpec {
    /// Frame bytes wanted (rounded up to the pointer size, to 16 on
    /// arm64; on amd64 a non-zero frame includes the saved BP).
    pub frame: u32,
    /// Bit i: local word i is a pointer slot at site 0 (the map covers up
    /// to 64 words of locals; site i > 0 uses the pattern rotated by i).
    pub ptrs: u64,
    /// Call sites (1 + sites % 4).
    pub sites: u8,
    /// Argument words (0 to 7).
    pub args: u8,
    /// Bit i: argument word i is a pointer.
    pub arg_ptrs: u8,
    /// Give the frame a 5-word (3 when it has no room) stack object at its top (room for a defer
    /// or panic record), when the locals have room for it.
    pub object: bool,
    /// Extra bytes of `max_sp_delta` over the frame size.
    pub extra_delta: u32,
    /// NOSPLIT: no prologue check.
    pub nosplit: bool,
    /// Break one rule of the function table.
    pub bad: Option<BadFunc>,
}

/// One operation on the stack system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Arbitrary)]
#[non_exhaustive]
pub enum Op {
    // --- the allocator ---
    /// `stackalloc`; the stack is held until freed.
    Alloc(Who, SizeSel),
    /// `stackfree` of the i-th held stack.
    Free(Who, u16),
    /// n `stackalloc`s of one size in a row (fills a P cache, drains the
    /// pool); stops at the first failure.
    AllocMany(Who, SizeSel, u8),
    /// `stackfree` of the n most recently allocated held stacks, newest
    /// first (overflows a P cache into the pool); stops at the first
    /// failure.
    FreeMany(Who, u8),
    /// `stackfree` of bounds derived from a held or freed stack: shifted
    /// by a word, of twice the size, the stack freed last (a double free),
    /// arbitrary, three quarters of the size, or a held heap span (by
    /// `kind % 6`); a kind with nothing to derive from takes a freed
    /// stack by index.
    BadFree(Who, u16, u8),
    /// A new P.
    CreateP,
    /// Destroy the i-th live P.
    DestroyP(u8),
    /// Flush the i-th live P's caches.
    FlushCache(u8),
    /// Destroy P with this raw id.
    DestroyPId(u32),
    /// Flush P with this raw id.
    FlushCacheId(u32),
    /// `runtime.ReadMemStats`: every P's caches flushed.
    ReadMemStats,
    /// Take pages of ordinary heap (`npages % 64`, 0 included).
    HeapAlloc(u16),
    /// Return the i-th heap span taken.
    HeapFree(u16),
    /// Return heap at this offset (rounded down to a page) in the arena.
    HeapFreeAt(u32),
    /// `gcStart`.
    GcStart,
    /// `gcMarkTermination`.
    GcMarkTermination,
    /// `setGCPhase(_GCoff)`.
    GcOff,
    /// `freeStackSpans`.
    FreeStackSpans,
    /// The whole end of a GC cycle.
    GcEnd,
    /// A GC marker reads a pointer into the i-th held stack, at this
    /// offset in it.
    MarkRead(u16, u32),
    /// A GC marker reads a pointer into word `word` of a goroutine's used
    /// stack (golang/go#11267's sudog.elem).
    MarkReadG(GSel, u16),
    /// A GC marker reads this arena offset.
    MarkReadAt(u32),
    /// The i-th pending marker marks.
    Mark(u8),
    /// Marker with this raw id marks.
    MarkId(u32),
    // --- functions and goroutines ---
    /// Add a function to the table.
    AddFunc(FuncSpec),
    /// `newproc` of the i-th function.
    Spawn(Who, u8),
    /// `newproc1` alone of the i-th function: the goroutine has not run
    /// yet.
    NewProc(Who, u8),
    /// A scheduler runs the i-th goroutine that has not run yet (falls
    /// back to any goroutine).
    Start(Who, u8),
    /// `newm` → `allocm`: an M takes its gsignal and g0 stacks.
    CreateM(Who),
    /// `mexit` of the i-th M (a raw id beyond the Ms).
    ExitM(Who, u8),
    /// n spawns of the same function (n up to 80: enough dead goroutines
    /// for gfput to spill to the global lists).
    SpawnBurst(Who, u8, u8),
    /// The innermost function calls function `f` from site `site`.
    Call(Who, GSel, u8, u8),
    /// `depth` calls of function `f` from site `site`, one after the
    /// other (deep recursion that forces growth); stops at the first
    /// failure.
    Recurse(Who, GSel, u8, u8, u8),
    /// The innermost function returns.
    Ret(Who, GSel),
    /// Up to n returns (stopping before the bottom frame).
    Unwind(Who, GSel, u8),
    /// The innermost frame moves to call site `site`.
    SetSite(GSel, u8),
    /// Query a slot's address.
    SlotAddr(GSel, FrameSel, SlotSel),
    /// Write a value into a slot.
    WriteSlot(GSel, FrameSel, SlotSel, Val),
    /// Write a raw word at word `word` of the used stack (from SP;
    /// `0xf000` and above: below SP).
    Poke(GSel, u16, Val),
    /// Set `sched.ctxt`.
    SetCtxt(GSel, Val),
    /// Push a defer record for a frame, on the heap or (`Some(o)`) at stack
    /// object o.
    DeferPush(GSel, FrameSel, u32, Option<u8>),
    /// Pop the first defer record.
    DeferPop(GSel),
    /// Push a panic record at stack object `o` of a frame.
    PanicPush(GSel, FrameSel, u8),
    /// `stackguard0 = stackPreempt`.
    RequestPreempt(GSel),
    /// `stackguard0 = stackForceMove`.
    RequestForceMove(GSel),
    /// `debug.SetMaxStack`: `fixedStack << (k % 16)` for `Ok(k)`, raw bytes
    /// for `Err(n)`.
    SetMaxStack(Result<u8, u64>),
    /// `isShrinkStackSafe`.
    IsShrinkStackSafe(GSel),
    /// `entersyscall`.
    EnterSyscall(GSel),
    /// `exitsyscall`.
    ExitSyscall(GSel),
    /// `exitsyscall`'s slow path (no P free: queued, then `execute`).
    ExitSyscall0(GSel),
    /// `syscall_runtime_BeforeFork`.
    BeforeFork(GSel),
    /// `syscall_runtime_AfterFork`.
    AfterFork(GSel),
    /// Set or clear `asyncSafePoint`.
    SetAsyncSafePoint(GSel, bool),
    /// `scanstack` from the i-th P.
    GcScan(u8, GSel),
    /// `scanstack` of every stack root not scanned yet in this cycle, from
    /// the i-th P, in id order, stopping at the first failure.
    GcScanAll(u8),
    /// `gcComputeStartingStackSize`.
    GcComputeStartingStackSize,
    /// `markrootFreeGStacks` (the GC root job freeing dead goroutines'
    /// stacks) on the i-th P.
    GcFreeGStacks(u8),
    /// `runtime.Goexit`.
    Exit(Who, GSel),
    /// `runtime.Goexit` of up to n runnable goroutines, in id order.
    ExitBurst(Who, u8),
    /// A channel with elements of this many words (`Err(n)`: n raw bytes).
    MakeChan(Result<u8, u16>),
    /// First parking step on these cases.
    ParkBegin(GSel, Vec<CaseSel>),
    /// `parkingOnChan = true`.
    ParkSetParking(GSel),
    /// `park_m`.
    ParkM(GSel),
    /// `chanparkcommit`.
    ParkCommit(GSel),
    /// The four parking steps.
    Park(GSel, Vec<CaseSel>),
    /// Send on a channel: one value word repeated to the element size,
    /// with `extra` more or fewer words when `extra` is not 0.
    Send(CSel, Val, i8),
    /// Resume a readied receiver.
    Wake(GSel),
    /// Unwind a goroutine's frames.
    Frames(GSel),
    /// Read word `word` of a goroutine's used stack.
    ReadWord(GSel, u16),
}

impl Op {
    /// The op's name (its variant), for counts and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Alloc(..) => "Alloc",
            Op::Free(..) => "Free",
            Op::AllocMany(..) => "AllocMany",
            Op::FreeMany(..) => "FreeMany",
            Op::BadFree(..) => "BadFree",
            Op::CreateP => "CreateP",
            Op::DestroyP(_) => "DestroyP",
            Op::FlushCache(_) => "FlushCache",
            Op::DestroyPId(_) => "DestroyPId",
            Op::FlushCacheId(_) => "FlushCacheId",
            Op::ReadMemStats => "ReadMemStats",
            Op::HeapAlloc(_) => "HeapAlloc",
            Op::HeapFree(_) => "HeapFree",
            Op::HeapFreeAt(_) => "HeapFreeAt",
            Op::GcStart => "GcStart",
            Op::GcMarkTermination => "GcMarkTermination",
            Op::GcOff => "GcOff",
            Op::FreeStackSpans => "FreeStackSpans",
            Op::GcEnd => "GcEnd",
            Op::MarkRead(..) => "MarkRead",
            Op::MarkReadG(..) => "MarkReadG",
            Op::MarkReadAt(_) => "MarkReadAt",
            Op::Mark(_) => "Mark",
            Op::MarkId(_) => "MarkId",
            Op::AddFunc(_) => "AddFunc",
            Op::Spawn(..) => "Spawn",
            Op::SpawnBurst(..) => "SpawnBurst",
            Op::NewProc(..) => "NewProc",
            Op::Start(..) => "Start",
            Op::CreateM(_) => "CreateM",
            Op::ExitM(..) => "ExitM",
            Op::Call(..) => "Call",
            Op::Recurse(..) => "Recurse",
            Op::Ret(..) => "Ret",
            Op::Unwind(..) => "Unwind",
            Op::SetSite(..) => "SetSite",
            Op::SlotAddr(..) => "SlotAddr",
            Op::WriteSlot(..) => "WriteSlot",
            Op::Poke(..) => "Poke",
            Op::SetCtxt(..) => "SetCtxt",
            Op::DeferPush(..) => "DeferPush",
            Op::DeferPop(_) => "DeferPop",
            Op::PanicPush(..) => "PanicPush",
            Op::RequestPreempt(_) => "RequestPreempt",
            Op::RequestForceMove(_) => "RequestForceMove",
            Op::SetMaxStack(_) => "SetMaxStack",
            Op::IsShrinkStackSafe(_) => "IsShrinkStackSafe",
            Op::EnterSyscall(_) => "EnterSyscall",
            Op::ExitSyscall(_) => "ExitSyscall",
            Op::ExitSyscall0(_) => "ExitSyscall0",
            Op::BeforeFork(_) => "BeforeFork",
            Op::AfterFork(_) => "AfterFork",
            Op::SetAsyncSafePoint(..) => "SetAsyncSafePoint",
            Op::GcScan(..) => "GcScan",
            Op::GcScanAll(_) => "GcScanAll",
            Op::GcComputeStartingStackSize => "GcComputeStartingStackSize",
            Op::GcFreeGStacks(_) => "GcFreeGStacks",
            Op::Exit(..) => "Exit",
            Op::ExitBurst(..) => "ExitBurst",
            Op::MakeChan(_) => "MakeChan",
            Op::ParkBegin(..) => "ParkBegin",
            Op::ParkSetParking(_) => "ParkSetParking",
            Op::ParkM(_) => "ParkM",
            Op::ParkCommit(_) => "ParkCommit",
            Op::Park(..) => "Park",
            Op::Send(..) => "Send",
            Op::Wake(_) => "Wake",
            Op::Frames(_) => "Frames",
            Op::ReadWord(..) => "ReadWord",
        }
    }
}
