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
pub enum GoThrow {
    /// `stackalloc` (runtime/stack.go): the size is not a power of two.
    StackSizeNotPowerOf2,
    /// `stackfree` (runtime/stack.go): the size is not a power of two.
    StackNotPowerOf2,
    /// `stackpoolalloc` and `stackalloc` (runtime/stack.go): the heap could
    /// not supply a span.
    OutOfMemory,
    /// `stackpoolfree` (runtime/stack.go): the address is in a span that is
    /// not a stack span.
    FreeingStackNotInStackSpan,
    /// `stackfree` (runtime/stack.go), large path: the address is in a span
    /// that is not a stack span.
    BadSpanState,
    /// `badPointer` via `findObject` (runtime/mbitmap.go): the GC found a
    /// pointer into pages that are no longer a live span.
    BadPointerInGoHeap,
}

impl GoThrow {
    /// Every Go throw the spec can raise.
    pub const ALL: &'static [GoThrow] = &[
        GoThrow::StackSizeNotPowerOf2,
        GoThrow::StackNotPowerOf2,
        GoThrow::OutOfMemory,
        GoThrow::FreeingStackNotInStackSpan,
        GoThrow::BadSpanState,
        GoThrow::BadPointerInGoHeap,
    ];

    /// Go's message.
    pub fn message(self) -> &'static str {
        match self {
            GoThrow::StackSizeNotPowerOf2 => "stack size not a power of 2",
            GoThrow::StackNotPowerOf2 => "stack not a power of 2",
            GoThrow::OutOfMemory => "out of memory",
            GoThrow::FreeingStackNotInStackSpan => "freeing stack not in a stack span",
            GoThrow::BadSpanState => "bad span state",
            GoThrow::BadPointerInGoHeap => {
                "found bad pointer in Go heap (incorrect use of unsafe or cgo?)"
            }
        }
    }
}

impl fmt::Display for GoThrow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// A call a correct runtime never makes, refused instead of corrupting the
/// state as Go would.
#[derive(Clone, Debug, PartialEq, Eq)]
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
