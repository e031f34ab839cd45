//! Go's throws, and our own errors for misuse that Go would not catch.
//!
//! [`GoThrow`]'s `Display` is the message Go passes to `throw`, byte for
//! byte, so that a test can compare it with a real crash. [`Misuse`] is for
//! calls a correct runtime never makes and that Go would not notice (a double
//! free pushed onto a cache, say) but would go on with corrupted memory; the
//! spec refuses them instead, with a message of its own that starts with
//! `gostack:` and says what was wrong.

use crate::throw::Throw;
use std::fmt;

/// A `throw` of the Go runtime, by its exact message.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum GoThrow {
    /// `stackalloc` (runtime/stack.go): the size is not a power of two.
    StackSizeNotPowerOf2,
    /// `stackfree` (runtime/stack.go): the size is not a power of two.
    StackNotPowerOf2,
    /// `stackpoolalloc` and `stackalloc` (runtime/stack.go): the heap could
    /// not supply a span.
    OutOfMemory,
    /// `stackalloc` (runtime/stack.go), `stackFromSystem` or efence path:
    /// `sysAlloc` could not map the stack.
    OutOfMemoryStackalloc,
    /// `readmemstats_m` (runtime/mstats.go, Go 1.19 only): `mappedReady`
    /// disagrees with the mapped total, which a `sysFault`ed stack causes.
    MappedReadyNotEqual,
    /// `stackpoolfree` (runtime/stack.go): the address is in a span that is
    /// not a stack span.
    FreeingStackNotInStackSpan,
    /// `stackfree` (runtime/stack.go), large path: the address is in a span
    /// that is not a stack span.
    BadSpanState,
    /// `mSpanList.insert` (runtime/mheap.go): a span already on a list
    /// (here: a large stack span waiting on `stackLarge`) is inserted
    /// again.
    MSpanListInsert,
    /// `gcStart` (runtime/mgc.go): a P's cache was not flushed since the
    /// last cycle's sweep began.
    PMcacheNotFlushed,
    /// `badPointer` via `findObject` (runtime/mbitmap.go): the GC found a
    /// pointer into pages that are no longer a live span.
    BadPointerInGoHeap,
    /// `unwinder.next` (runtime/traceback.go): a return address names no
    /// function.
    UnknownCallerPc,
    /// `unwinder.finishInternal` (runtime/traceback.go): the walk did not
    /// end at `stktopsp`.
    TracebackDidNotUnwind,
    /// `newstack`: SP is below the stack (a NOSPLIT chain overflowed).
    SplitStackOverflow,
    /// `newstack`: stackguard0 is stackFork.
    StackGrowthAfterFork,
    /// `newstack`: a split while `throwsplit` is set (between
    /// entersyscall and exitsyscall).
    StackSplitAtBadTime,
    /// `newstack`: the goroutine has no stack.
    MissingStackInNewstack,
    /// `newstack`: the new size exceeds maxstacksize or maxstackceiling.
    StackOverflow,
    /// `shrinkstack`: the goroutine has no stack.
    MissingStackInShrinkstack,
    /// `markroot` (runtime/mgcmark.go): a stack root job found its
    /// goroutine already scanned in this cycle.
    GAlreadyScanned,
    /// `shrinkstack`: `isShrinkStackSafe` says no.
    ShrinkstackAtBadTime,
    /// `adjustpointers`: a small non-zero value in a live pointer slot.
    InvalidPointerOnStack,
    /// `copystack`: the goroutine is in a system call.
    StackGrowthInSyscall,
    /// `copystack`: the goroutine has no stack.
    NilStackbase,
    /// `copystack`: shrinking while the goroutine is parking on a channel.
    RacySudogAdjustment,
}

impl GoThrow {
    /// Every Go throw the spec can raise.
    pub const ALL: &'static [GoThrow] = &[
        GoThrow::StackSizeNotPowerOf2,
        GoThrow::StackNotPowerOf2,
        GoThrow::OutOfMemory,
        GoThrow::OutOfMemoryStackalloc,
        GoThrow::MappedReadyNotEqual,
        GoThrow::FreeingStackNotInStackSpan,
        GoThrow::BadSpanState,
        GoThrow::MSpanListInsert,
        GoThrow::PMcacheNotFlushed,
        GoThrow::BadPointerInGoHeap,
        GoThrow::UnknownCallerPc,
        GoThrow::TracebackDidNotUnwind,
        GoThrow::SplitStackOverflow,
        GoThrow::StackGrowthAfterFork,
        GoThrow::StackSplitAtBadTime,
        GoThrow::MissingStackInNewstack,
        GoThrow::StackOverflow,
        GoThrow::MissingStackInShrinkstack,
        GoThrow::GAlreadyScanned,
        GoThrow::ShrinkstackAtBadTime,
        GoThrow::InvalidPointerOnStack,
        GoThrow::StackGrowthInSyscall,
        GoThrow::NilStackbase,
        GoThrow::RacySudogAdjustment,
    ];

    /// Go's message.
    pub fn message(self) -> &'static str {
        match self {
            GoThrow::StackSizeNotPowerOf2 => "stack size not a power of 2",
            GoThrow::StackNotPowerOf2 => "stack not a power of 2",
            GoThrow::OutOfMemory => "out of memory",
            GoThrow::OutOfMemoryStackalloc => "out of memory (stackalloc)",
            GoThrow::MappedReadyNotEqual => "mappedReady and other memstats are not equal",
            GoThrow::FreeingStackNotInStackSpan => "freeing stack not in a stack span",
            GoThrow::BadSpanState => "bad span state",
            GoThrow::MSpanListInsert => "mSpanList.insert",
            GoThrow::PMcacheNotFlushed => "p mcache not flushed",
            GoThrow::BadPointerInGoHeap => {
                "found bad pointer in Go heap (incorrect use of unsafe or cgo?)"
            }
            GoThrow::UnknownCallerPc => "unknown caller pc",
            GoThrow::TracebackDidNotUnwind => "traceback did not unwind completely",
            GoThrow::SplitStackOverflow => "runtime: split stack overflow",
            GoThrow::StackGrowthAfterFork => "stack growth after fork",
            GoThrow::StackSplitAtBadTime => "runtime: stack split at bad time",
            GoThrow::MissingStackInNewstack => "missing stack in newstack",
            GoThrow::StackOverflow => "stack overflow",
            GoThrow::MissingStackInShrinkstack => "missing stack in shrinkstack",
            GoThrow::GAlreadyScanned => "g already scanned",
            GoThrow::ShrinkstackAtBadTime => "shrinkstack at bad time",
            GoThrow::InvalidPointerOnStack => "invalid pointer found on stack",
            GoThrow::StackGrowthInSyscall => "stack growth not allowed in system call",
            GoThrow::NilStackbase => "nil stackbase",
            GoThrow::RacySudogAdjustment => "racy sudog adjustment due to parking on channel",
        }
    }
}

impl fmt::Display for GoThrow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// The reason of the [`Misuse::WouldBlock`] a mutator's operation gets in
/// `_GCmarktermination`, when Go's world is stopped.
pub const WORLD_STOPPED: &str =
    "the world is stopped for GC mark termination (gcMarkDone to setGCPhase(_GCoff))";

/// The reason of the [`Misuse::WouldBlock`] that creating or destroying a P
/// gets during a GC cycle.
pub const GOMAXPROCS_WAITS: &str =
    "procresize: GOMAXPROCS waits for the GC cycle to end (stopTheWorldGC)";

/// A call a correct runtime never makes, refused instead of corrupting the
/// state as Go would.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Misuse {
    /// `stackalloc(0)`: Go would hand out a slot of order 0 as an empty
    /// stack.
    ZeroSizeStack,
    /// A stack size below fixedStack, which no Go caller asks for.
    StackTooSmall {
        /// The size asked for.
        n: u64,
        /// The profile's fixedStack.
        fixed_stack: u64,
    },
    /// A stack size above `stackalloc`'s `uint32` parameter.
    StackTooLarge(u64),
    /// `stackfree` of bounds that are not a stack in use: never allocated,
    /// already freed, an interior address, or the wrong size. Go would push
    /// it onto a free list and later hand the same memory out twice.
    NotAStack {
        /// The low bound given.
        lo: u64,
        /// The high bound given.
        hi: u64,
    },
    /// A request for zero pages of heap.
    ZeroPages,
    /// `heap_free` of an address that is not the base of a heap span.
    NotAHeapSpan(u64),
    /// A P that does not exist (never created, or destroyed).
    NoSuchP(u32),
    /// A GC marker that does not exist (never created, or already marked).
    NoSuchMarker(u32),
    /// A GC operation in a phase where Go never performs it.
    WrongGcPhase {
        /// The operation.
        op: &'static str,
        /// The phase it needs.
        needs: &'static str,
        /// The phase it found.
        found: &'static str,
    },
    /// The GC marked a pointer whose span was freed and reused for heap
    /// objects: Go would mark an unrelated object and carry on.
    MarkedReusedSpan(u64),
    /// An arena configuration that cannot work.
    BadArena(String),
    /// Goroutine operations on an architecture whose frame layout is not
    /// modeled yet.
    LayoutNotModeled(&'static str),
    /// A function description that does not fit its frame.
    BadFunc(String, String),
    /// No goroutine with this id.
    NoSuchG(u32),
    /// No function with this index.
    NoSuchFunc(usize),
    /// The function has no such call site.
    NoSuchSite(usize, usize),
    /// The goroutine has no such frame.
    NoSuchFrame(u32, usize),
    /// The frame has no such slot.
    NoSuchSlot(u32, usize),
    /// The operation needs the innermost function past its prologue (or at
    /// it).
    NotAtEntry(u32),
    /// The goroutine cannot run this operation in its present state.
    GNotRunnable(u32),
    /// An operation that needs the M to hold a P.
    NeedsP(&'static str),
    /// An address outside the goroutine's used stack.
    NotInUsedStack(u32, u64),
    /// A receive slot that is not inside the locals of one of the
    /// goroutine's frames (a return address, a saved frame pointer, or
    /// words of two frames): Go's compiler never passes such an address.
    NotALocal(u32, u64),
    /// defer_pop with no defer record.
    NoDefer(u32),
    /// No channel with this id.
    NoSuchChan(u32),
    /// An element size that is not a multiple of the pointer size.
    BadElemSize(u64),
    /// A select that is not well formed.
    BadSelect(&'static str),
    /// A parking step out of Go's order.
    ParkOutOfOrder(u32),
    /// A send on a channel with no waiting receiver.
    NoReceiver(u32),
    /// A send through a sudog whose elem is not in its goroutine's current
    /// stack: Go would write into freed (or another goroutine's) memory.
    StaleSudogElem(u64),
    /// The operation would wait for a lock or a goroutine; try it later.
    WouldBlock(&'static str),
    /// RET would jump to a return address that is no function (Go would
    /// fault on the jump).
    BadReturnAddress(u64),
    /// A NOSPLIT frame (or a CALL) would run into the bottom `StackSystem`
    /// bytes of the stack (the OS's, on Windows, Plan 9 and iOS) or past
    /// them: a program the linker's nosplit check rejects.
    NosplitOverrun(u32),
    /// A goroutine spawned at a NOSPLIT entry function (named) whose frame
    /// does not fit on the stack the new goroutine would get.
    NosplitEntryOverrun(String),
    /// A GC root job run a second time in one cycle: `markroot` hands out
    /// each job once (`work.markrootNext`).
    RootJobDone(&'static str),
    /// `gcComputeStartingStackSize` with an average above 2^30 (possible
    /// only after `debug.SetMaxStack` raised `maxstacksize`): Go's
    /// `round2(int32)` would loop forever.
    StartingStackTooLarge(u64),
    /// A stack scan of a goroutine created after `gcStart`: it is no stack
    /// root of this cycle (Go allocates it black and never scans it).
    NotAStackRoot(u32),
    /// An operation of a running goroutine on one that has not run yet
    /// (made by `newproc`, not yet started).
    NotStarted(u32),
    /// No M with this id (never made, or exited).
    NoSuchM(u32),
    /// An operation after a Go throw: a throw is fatal (Go prints it and
    /// exits), so the runtime refuses everything after it.
    Dead(GoThrow),
    /// M stacks on a system where the spec does not model them.
    MStacksNotModeled(&'static str),
    /// An async preemption where `isAsyncSafePoint` (runtime/preempt.go)
    /// refuses it: fewer than `asyncPreemptStack` bytes between SP and
    /// `stack.lo` to inject the call to `asyncPreempt`.
    NoRoomForAsyncPreempt {
        /// The goroutine.
        g: u32,
        /// The bytes between its SP and `stack.lo`.
        room: u64,
        /// `asyncPreemptStack` of the architecture.
        needs: u64,
    },
}

impl fmt::Display for Misuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Misuse::ZeroSizeStack => write!(f, "gostack: stackalloc of 0 bytes; sizes are powers of two from fixedStack to 2^31"),
            Misuse::StackTooSmall { n, fixed_stack } => write!(
                f,
                "gostack: stackalloc of {n} bytes; Go never asks for less than fixedStack ({fixed_stack})"
            ),
            Misuse::StackTooLarge(n) => {
                write!(f, "gostack: stackalloc of {n} bytes; sizes are powers of two up to 2^31 (stackalloc takes a uint32)")
            }
            Misuse::NotAStack { lo, hi } => write!(
                f,
                "gostack: stackfree of [{lo:#x}, {hi:#x}), which is not a stack in use (never allocated, already freed, an interior address or the wrong size)"
            ),
            Misuse::ZeroPages => write!(f, "gostack: heap allocation of 0 pages"),
            Misuse::NotAHeapSpan(a) => write!(f, "gostack: heap free of {a:#x}, which is not the base of a heap span"),
            Misuse::NoSuchP(p) => write!(f, "gostack: no P with id {p}"),
            Misuse::NoSuchMarker(m) => write!(f, "gostack: no pending GC marker with id {m}"),
            Misuse::WrongGcPhase { op, needs, found } => {
                write!(f, "gostack: {op} runs only with gcphase {needs}, not {found}")
            }
            Misuse::MarkedReusedSpan(a) => write!(
                f,
                "gostack: the GC marked {a:#x}, which was a stack but now lies in a heap span (its stack span was freed during GC)"
            ),
            Misuse::BadArena(why) => write!(f, "gostack: bad arena: {why}"),
            Misuse::LayoutNotModeled(a) => write!(f, "gostack: goroutine frames on {a} are not modeled yet; accepted: amd64, 386, arm64"),
            Misuse::BadFunc(name, why) => write!(f, "gostack: function {name}: {why}"),
            Misuse::NoSuchG(g) => write!(f, "gostack: no goroutine {g}"),
            Misuse::NoSuchFunc(i) => write!(f, "gostack: no function {i} in the table"),
            Misuse::NoSuchSite(fi, s) => write!(f, "gostack: function {fi} has no call site {s}"),
            Misuse::NoSuchFrame(g, i) => write!(f, "gostack: goroutine {g} has no frame {i}"),
            Misuse::NoSuchSlot(g, i) => write!(f, "gostack: frame {i} of goroutine {g} has no such slot"),
            Misuse::NotAtEntry(g) => write!(f, "gostack: goroutine {g} is not where this operation needs it"),
            Misuse::GNotRunnable(g) => write!(f, "gostack: goroutine {g} cannot do this in its present state"),
            Misuse::NeedsP(op) => write!(f, "gostack: {op} needs a P"),
            Misuse::NotInUsedStack(g, a) => write!(f, "gostack: {a:#x} is not a word of goroutine {g}'s used stack"),
            Misuse::NotALocal(g, a) => write!(f, "gostack: {a:#x} is not inside the locals of one frame of goroutine {g}"),
            Misuse::NoDefer(g) => write!(f, "gostack: goroutine {g} has no defer record"),
            Misuse::NoSuchChan(c) => write!(f, "gostack: no channel {c}"),
            Misuse::BadElemSize(n) => write!(f, "gostack: element size {n} is not a multiple of the pointer size below 65536"),
            Misuse::BadSelect(why) => write!(f, "gostack: bad select: {why}"),
            Misuse::ParkOutOfOrder(g) => write!(f, "gostack: parking step out of order for goroutine {g}"),
            Misuse::NoReceiver(c) => write!(f, "gostack: send on channel {c}, which has no waiting receiver"),
            Misuse::StaleSudogElem(a) => write!(f, "gostack: a send would write through sudog.elem {a:#x}, outside its goroutine's stack (a stale, unadjusted sudog)"),
            Misuse::WouldBlock(why) => write!(f, "gostack: would block: {why}"),
            Misuse::BadReturnAddress(a) => write!(
                f,
                "gostack: RET would jump to {a:#x}, which is no function (a corrupt return address)"
            ),
            Misuse::Dead(t) => write!(
                f,
                "gostack: the runtime is dead: an earlier operation threw \"{t}\" (a Go throw is fatal)"
            ),
            Misuse::NosplitEntryOverrun(name) => write!(
                f,
                "gostack: the NOSPLIT entry function {name} does not fit on a new goroutine's stack (the linker rejects such programs)"
            ),
            Misuse::NosplitOverrun(g) => write!(
                f,
                "gostack: goroutine {g} would run into the bottom StackSystem bytes of its stack, or off it, in NOSPLIT code (the linker rejects such programs)"
            ),
            Misuse::RootJobDone(job) => write!(
                f,
                "gostack: the GC root job {job} already ran in this cycle (each root job runs once per cycle)"
            ),
            Misuse::NotStarted(g) => write!(
                f,
                "gostack: goroutine {g} has not run yet (newproc made it; start runs it)"
            ),
            Misuse::NoSuchM(m) => write!(f, "gostack: no M {m} (never made, or exited)"),
            Misuse::MStacksNotModeled(os) => write!(
                f,
                "gostack: M stacks on {os} are not modeled; accepted: linux (other systems take g0 or gsignal stacks from the OS)"
            ),
            Misuse::NoRoomForAsyncPreempt { g, room, needs } => write!(
                f,
                "gostack: goroutine {g} has {room} bytes above stack.lo, fewer than the {needs} (asyncPreemptStack) an async preemption needs: isAsyncSafePoint says no"
            ),
            Misuse::NotAStackRoot(g) => write!(
                f,
                "gostack: goroutine {g} was created after gcStart and is no stack root of this GC cycle"
            ),
            Misuse::StartingStackTooLarge(avg) => write!(
                f,
                "gostack: gcComputeStartingStackSize of an average of {avg} bytes, above 2^30, where Go's round2(int32) never returns"
            ),
        }
    }
}

impl From<GoThrow> for Throw {
    fn from(g: GoThrow) -> Self {
        Throw::Go(g)
    }
}

impl From<Misuse> for Throw {
    fn from(m: Misuse) -> Self {
        Throw::Misuse(m)
    }
}
