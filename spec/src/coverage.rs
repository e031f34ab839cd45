//! Which of the spec's branches, and which throws, a run reached.
//!
//! Each branch of a Go path that the spec follows calls [`hit`] with a
//! name from [`BRANCHES`]; every failed public operation records its throw.
//! Counts are kept per thread (drivers run one spec instance per thread)
//! and survive failed operations, which the all-or-nothing rule otherwise
//! rolls back. The harness reads them with [`take`] and reports what was
//! never reached; a test keeps [`BRANCHES`] and the `hit` calls in the
//! source in step.

use crate::gothrow::{GoThrow, Misuse};
use crate::throw::Throw;
use std::cell::RefCell;
use std::collections::BTreeMap;

thread_local! {
    static HITS: RefCell<BTreeMap<&'static str, u64>> = const { RefCell::new(BTreeMap::new()) };
}

/// Every branch name the spec records, in source order.
pub const BRANCHES: &[&str] = &[
    "stackpoolalloc: new span from the heap",
    "stackpoolalloc: span leaves the pool list",
    "stackpoolfree: span joins the pool list",
    "stackpoolfree: empty span back to the heap",
    "stackpoolfree: empty span kept during GC",
    "stackcacherefill",
    "stackcacherelease",
    "stackcache_clear",
    "stackalloc: pool without a cache",
    "stackalloc: from the P cache",
    "stackalloc: large from stackLarge",
    "stackalloc: large from the heap",
    "stackfree: pool without a cache",
    "stackfree: onto the P cache",
    "stackfree: large back to the heap",
    "stackfree: large to stackLarge during GC",
    "stackalloc: from the system (stackFromSystem, efence)",
    "stackfree: sysFault (efence, stackFaultOnFree)",
    "stackfree: sysFree (stackFromSystem)",
    "freeStackSpans: empty pool span",
    "freeStackSpans: stackLarge span",
    "gfget: reuse a dead goroutine",
    "gfget: drop a stack of the wrong size",
    "malg: a new goroutine",
    "gfput: keep the stack",
    "gfput: free the stack",
    "gfput: spill to the global lists",
    "markrootFreeGStacks: free a dead goroutine's stack",
    "gcMarkTermination: markrootFreeGStacks left over",
    "world stopped: mutator refused in mark termination",
    "isAsyncSafePoint: no room for asyncPreempt",
    "allocm: free an exited M's g0 stack",
    "allocm: a new M",
    "mexit: free gsignal, g0 to sched.freem",
    "prepareForSweep: already flushed this cycle",
    "gcMarkTermination: a stack root left over",
    "newstack: preempt",
    "newstack: preempt refused (canPreemptM)",
    "newstack: preempt then shrink",
    "newstack: grow",
    "newstack: grow more than twice",
    "newstack: forced move",
    "shrinkstack: gcshrinkstackoff",
    "shrinkstack: below fixedStack",
    "shrinkstack: more than a quarter used",
    "shrinkstack: halve",
    "copystack: sudogs without locks",
    "copystack: sudogs under the channel locks",
    "copystack: copy up to sghi under the locks",
    "copystack: arm64 frame pointer below SP",
    "adjustframe: saved frame pointer",
    "adjustframe: stack object below SP",
    "scanstack: shrink",
    "scanstack: preemptShrink",
    "send: skip a select already won",
];

/// Records that a branch ran.
pub fn hit(name: &'static str) {
    HITS.with(|h| *h.borrow_mut().entry(name).or_default() += 1);
}

/// Records the throw of a failed operation.
pub fn throw(t: &Throw) {
    hit(throw_name(t));
}

/// The name a throw is counted under.
pub fn throw_name(t: &Throw) -> &'static str {
    match t {
        Throw::Go(g) => g.message(),
        Throw::Misuse(m) => misuse_name(m),
        Throw::Invalid(_) => "invalid input",
    }
}

fn misuse_name(m: &Misuse) -> &'static str {
    match m {
        Misuse::ZeroSizeStack => "misuse: zero-size stack",
        Misuse::StackTooSmall { .. } => "misuse: stack below fixedStack",
        Misuse::StackTooLarge(_) => "misuse: stack above 2^32",
        Misuse::NotAStack { .. } => "misuse: not a stack in use",
        Misuse::ZeroPages => "misuse: zero pages",
        Misuse::NotAHeapSpan(_) => "misuse: not a heap span",
        Misuse::NoSuchP(_) => "misuse: no such P",
        Misuse::NoSuchMarker(_) => "misuse: no such marker",
        Misuse::WrongGcPhase { .. } => "misuse: wrong GC phase",
        Misuse::MarkedReusedSpan(_) => "misuse: marked a reused span",
        Misuse::BadArena(_) => "misuse: bad arena",
        Misuse::LayoutNotModeled(_) => "misuse: layout not modeled",
        Misuse::BadFunc(..) => "misuse: bad function",
        Misuse::NoSuchG(_) => "misuse: no such goroutine",
        Misuse::NoSuchFunc(_) => "misuse: no such function",
        Misuse::NoSuchSite(..) => "misuse: no such site",
        Misuse::NoSuchFrame(..) => "misuse: no such frame",
        Misuse::NoSuchSlot(..) => "misuse: no such slot",
        Misuse::NotAtEntry(_) => "misuse: not where the operation needs it",
        Misuse::GNotRunnable(_) => "misuse: goroutine not runnable",
        Misuse::NeedsP(_) => "misuse: needs a P",
        Misuse::NotInUsedStack(..) => "misuse: not in the used stack",
        Misuse::NotALocal(..) => "misuse: receive slot not a local",
        Misuse::NoDefer(_) => "misuse: no defer",
        Misuse::NoSuchChan(_) => "misuse: no such channel",
        Misuse::BadElemSize(_) => "misuse: bad element size",
        Misuse::BadSelect(_) => "misuse: bad select",
        Misuse::ParkOutOfOrder(_) => "misuse: parking out of order",
        Misuse::NoReceiver(_) => "misuse: no receiver",
        Misuse::StaleSudogElem(_) => "misuse: stale sudog elem",
        Misuse::WouldBlock(_) => "misuse: would block",
        Misuse::BadReturnAddress(_) => "misuse: bad return address",
        Misuse::NosplitOverrun(_) => "misuse: nosplit overrun",
        Misuse::NosplitEntryOverrun(_) => "misuse: nosplit entry overrun",
        Misuse::RootJobDone(_) => "misuse: root job already done",
        Misuse::StartingStackTooLarge(_) => "misuse: starting stack above 2^30",
        Misuse::NotAStackRoot(_) => "misuse: not a stack root",
        Misuse::NotStarted(_) => "misuse: not started",
        Misuse::NoSuchM(_) => "misuse: no such M",
        Misuse::Dead(_) => "misuse: the runtime is dead",
        Misuse::MStacksNotModeled(_) => "misuse: M stacks not modeled",
        Misuse::NoRoomForAsyncPreempt { .. } => "misuse: no room for an async preemption",
    }
}

/// The Go throws a correct spec can raise from valid operation sequences,
/// which a long enough random run must reach. (The rest of
/// [`GoThrow::ALL`] guard states that only corrupted memory or a broken
/// spec produce, and are pinned by unit tests.)
pub const REACHABLE_GO_THROWS: &[GoThrow] = &[
    GoThrow::StackSizeNotPowerOf2,
    GoThrow::StackNotPowerOf2,
    GoThrow::OutOfMemory,
    GoThrow::OutOfMemoryStackalloc,
    GoThrow::MappedReadyNotEqual,
    GoThrow::FreeingStackNotInStackSpan,
    GoThrow::BadSpanState,
    GoThrow::MSpanListInsert,
    GoThrow::StackOverflow,
    GoThrow::InvalidPointerOnStack,
    GoThrow::StackSplitAtBadTime,
    GoThrow::StackGrowthAfterFork,
    GoThrow::GAlreadyScanned,
    GoThrow::PMcacheNotFlushed,
];

/// The counts so far on this thread, clearing them.
pub fn take() -> BTreeMap<&'static str, u64> {
    HITS.with(|h| std::mem::take(&mut *h.borrow_mut()))
}

/// The branches of [`BRANCHES`] and the throws of
/// [`REACHABLE_GO_THROWS`] missing from `hits`.
pub fn unreached(hits: &BTreeMap<&'static str, u64>) -> Vec<&'static str> {
    BRANCHES
        .iter()
        .copied()
        .chain(REACHABLE_GO_THROWS.iter().map(|t| t.message()))
        .filter(|n| !hits.contains_key(n))
        .collect()
}

#[cfg(test)]
mod tests {
    /// Every `hit("...")` in the source names a listed branch, and every
    /// listed branch has a `hit` in the source.
    #[test]
    fn branches_match_the_source() {
        let sources = [include_str!("stack.rs"), include_str!("goroutine.rs")];
        let mut found = Vec::new();
        for src in sources {
            let mut rest = src;
            while let Some(i) = rest.find("coverage::hit(\"") {
                rest = &rest[i + "coverage::hit(\"".len()..];
                let end = rest.find('"').expect("closing quote");
                found.push(&rest[..end]);
            }
        }
        for name in &found {
            assert!(
                super::BRANCHES.contains(name),
                "hit({name:?}) is not in BRANCHES"
            );
        }
        for name in super::BRANCHES {
            assert!(
                found.contains(name),
                "BRANCHES lists {name:?}, which no hit() records"
            );
        }
    }
}
