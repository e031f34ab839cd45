//! Stacks taken straight from the OS: the memory module of Go's
//! `stackFromSystem` debug mode and of `GODEBUG=efence=1`
//! (runtime/stack.go: `stackalloc` calls `sysAlloc`, `stackfree` calls
//! `sysFree`, or `sysFault` with efence or `stackFaultOnFree`), placed as
//! the spec places them ([`gostack_spec::stack::SysStacks`]).
//!
//! The "OS" here is a region of address space as large as the arena and
//! right above it, reserved in the same mapping
//! ([`crate::Stacks`] reserves twice the arena in these modes). A stack
//! takes the lowest free range of the region that fits its size rounded
//! up to the page (Go: `alignUp(n, physPageSize)`), so no two stacks share
//! a page and the addresses are the spec's. A free either gives the range
//! back (`sysFree`: `madvise(MADV_DONTNEED)`, the range reads as zero and
//! is free for the next stack) or, in fault mode, makes it inaccessible
//! and gives its memory back (`sysFault` = `mprotect(PROT_NONE)` then
//! `madvise(MADV_DONTNEED)`, runtime/mem_linux.go `sysFaultOS`) and never
//! hands the range out again, so a stale pointer into it faults.
//!
//! The kernel limits the number of distinct mappings (`vm.max_map_count`,
//! 65530 by default): every faulted stack between live ones splits the
//! region's mapping. When the kernel refuses the `mprotect` (ENOMEM at
//! the limit), the free still succeeds: the memory is given back and the
//! range is never reused, but a touch reads zeros instead of faulting; the
//! count of such frees is [`SystemStats::unprotected`].
//!
//! Fault mode needs `mprotect`, which Miri does not have; [`crate::Stacks`]
//! refuses it there. Memory is read and written through the arena
//! ([`crate::os::Arena`]), with relaxed atomics.

use crate::os::Arena;
use crate::sync::{lock, Mutex};
use std::collections::BTreeMap;

/// The page the stacks are rounded to (Go's `physPageSize`, the spec's
/// [`gostack_spec::stack::PHYS_PAGE_SIZE`]).
pub const OS_PAGE: u64 = gostack_spec::stack::PHYS_PAGE_SIZE;

/// Counts of the stacks from the system.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SystemStats {
    /// Stacks handed out and not freed.
    pub live: u64,
    /// Their bytes (page-rounded).
    pub live_bytes: u64,
    /// Freed stacks made inaccessible (fault mode): never reused.
    pub faulted: u64,
    /// Their bytes. Go keeps them in `stacks_sys` (`sysFault` does not
    /// lower it).
    pub faulted_bytes: u64,
    /// Of the faulted ones, those the kernel would not protect (the map
    /// count limit): their memory was given back, a touch reads zeros.
    pub unprotected: u64,
}

#[derive(Default)]
struct Inner {
    /// Free ranges: first address to length, maximal.
    free: BTreeMap<u64, u64>,
    /// Live stacks: first address to length.
    live: BTreeMap<u64, u64>,
    stats: SystemStats,
}

/// Every stack taken from the system by one allocator, in the region
/// `[lo, lo + len)` of its arena mapping.
pub struct SystemStacks {
    /// The region's first real address and its offset in the arena.
    lo: u64,
    arena_off: u64,
    len: u64,
    fault_on_free: bool,
    inner: Mutex<Inner>,
}

/// Ranges as (first address, length), in address order.
pub(crate) type Ranges = Vec<(u64, u64)>;

/// Why a free was refused: the bounds are not a live stack of this set.
#[derive(Debug, PartialEq, Eq)]
pub struct NotLive;

impl SystemStacks {
    /// An empty set over the `len` bytes at offset `arena_off` of `arena`
    /// (page aligned). With `fault_on_free`, freed stacks are protected and
    /// never reused.
    pub(crate) fn new(arena: &Arena, arena_off: u64, len: u64, fault_on_free: bool) -> Self {
        let lo = arena.base() + arena_off;
        SystemStacks {
            lo,
            arena_off,
            len,
            fault_on_free,
            inner: Mutex::new(Inner {
                free: BTreeMap::from([(lo, len)]),
                ..Inner::default()
            }),
        }
    }

    /// The stack length for a request of `n` bytes: `n` rounded up to the
    /// page, `None` if that overflows.
    pub fn round(n: u64) -> Option<u64> {
        n.checked_add(OS_PAGE - 1).map(|x| x & !(OS_PAGE - 1))
    }

    /// Whether freed stacks are faulted rather than given back.
    pub fn fault_on_free(&self) -> bool {
        self.fault_on_free
    }

    /// Go: `sysAlloc` for a stack of `len` bytes (a positive multiple of
    /// [`OS_PAGE`]): the lowest free range that fits. `None` when none
    /// does.
    pub(crate) fn alloc(&self, len: u64) -> Option<u64> {
        if len == 0 || len % OS_PAGE != 0 {
            return None;
        }
        let mut g = lock(&self.inner);
        let (lo, run) = g
            .free
            .iter()
            .map(|(&lo, &run)| (lo, run))
            .find(|&(_, run)| run >= len)?;
        g.free.remove(&lo);
        if run > len {
            g.free.insert(lo + len, run - len);
        }
        g.live.insert(lo, len);
        g.stats.live += 1;
        g.stats.live_bytes += len;
        Some(lo)
    }

    /// Go: `sysFree`, or `sysFault` in fault mode, of the stack at
    /// `[lo, lo+len)`. Anything but a live stack of exactly that length is
    /// refused and changes nothing.
    pub(crate) fn free(&self, arena: &Arena, lo: u64, len: u64) -> Result<(), NotLive> {
        let mut g = lock(&self.inner);
        if g.live.get(&lo) != Some(&len) {
            return Err(NotLive);
        }
        g.live.remove(&lo);
        g.stats.live -= 1;
        g.stats.live_bytes -= len;
        let off = lo - self.lo + self.arena_off;
        if self.fault_on_free {
            if arena.sys_fault(off, len, false).is_err() {
                g.stats.unprotected += 1;
            }
            let _ = arena.sys_unused(off, len);
            g.stats.faulted += 1;
            g.stats.faulted_bytes += len;
            return Ok(());
        }
        let _ = arena.sys_unused(off, len);
        let (mut lo, mut len) = (lo, len);
        if let Some((&plo, &plen)) = g.free.range(..lo).next_back() {
            if plo + plen == lo {
                g.free.remove(&plo);
                (lo, len) = (plo, plen + len);
            }
        }
        if let Some(next) = g.free.remove(&(lo + len)) {
            len += next;
        }
        g.free.insert(lo, len);
        Ok(())
    }

    /// Whether `addr` lies in the region but in no live stack: a range
    /// that is free or faulted (touching a faulted one raises `SIGSEGV`).
    pub fn is_dead(&self, addr: u64) -> bool {
        if addr < self.lo || addr - self.lo >= self.len {
            return false;
        }
        let g = lock(&self.inner);
        g.live
            .range(..=addr)
            .next_back()
            .is_none_or(|(&lo, &n)| addr - lo >= n)
    }

    /// The counts.
    pub fn stats(&self) -> SystemStats {
        lock(&self.inner).stats
    }

    /// The live stacks and the free ranges, each as (first address,
    /// length) in address order.
    pub(crate) fn ranges(&self) -> (Ranges, Ranges) {
        let g = lock(&self.inner);
        let all = |m: &BTreeMap<u64, u64>| m.iter().map(|(&a, &n)| (a, n)).collect();
        (all(&g.live), all(&g.free))
    }

    /// Bytes of bookkeeping: a bound of 64 per live stack and free range.
    pub(crate) fn metadata_bytes(&self) -> u64 {
        let g = lock(&self.inner);
        (g.live.len() + g.free.len()) as u64 * 64
    }

    /// The region's bytes.
    pub fn region_len(&self) -> u64 {
        self.len
    }
}

impl std::fmt::Debug for SystemStacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemStacks")
            .field("fault_on_free", &self.fault_on_free)
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(fault: bool) -> (Arena, SystemStacks) {
        let arena = Arena::sys_reserve(1 << 20, OS_PAGE).unwrap();
        let s = SystemStacks::new(&arena, 512 << 10, 512 << 10, fault);
        (arena, s)
    }

    #[test]
    fn first_fit_and_merging() {
        let (arena, s) = region(false);
        let lo = arena.base() + (512 << 10);
        let a = s.alloc(OS_PAGE).unwrap();
        let b = s.alloc(4 * OS_PAGE).unwrap();
        assert_eq!((a, b), (lo, lo + OS_PAGE));
        assert!(arena.store_word(b + 8, 9));
        assert_eq!(s.free(&arena, b, OS_PAGE), Err(NotLive));
        assert_eq!(s.free(&arena, b + OS_PAGE, OS_PAGE), Err(NotLive));
        s.free(&arena, a, OS_PAGE).unwrap();
        assert_eq!(s.free(&arena, a, OS_PAGE), Err(NotLive));
        s.free(&arena, b, 4 * OS_PAGE).unwrap();
        assert_eq!(
            arena.load_word(b + 8),
            Some(0),
            "sysFree gives the memory back"
        );
        assert_eq!(s.ranges(), (vec![], vec![(lo, 512 << 10)]), "merged");
        assert_eq!(s.stats(), SystemStats::default());
        assert!(s.alloc(0).is_none() && s.alloc(OS_PAGE + 1).is_none());
        assert!(s.alloc(1 << 20).is_none(), "larger than the region");
        assert_eq!(SystemStacks::round(2048), Some(OS_PAGE));
        assert_eq!(SystemStacks::round(8192), Some(8192));
        assert_eq!(SystemStacks::round(u64::MAX), None);
    }

    #[cfg(not(miri))]
    #[test]
    fn faulted_stacks_are_never_reused() {
        let (arena, s) = region(true);
        let a = s.alloc(2 * OS_PAGE).unwrap();
        s.free(&arena, a, 2 * OS_PAGE).unwrap();
        assert_eq!(s.free(&arena, a, 2 * OS_PAGE), Err(NotLive));
        let st = s.stats();
        assert_eq!((st.live, st.faulted, st.faulted_bytes), (0, 1, 2 * OS_PAGE));
        assert_eq!(st.unprotected, 0);
        let b = s.alloc(2 * OS_PAGE).unwrap();
        assert_eq!(b, a + 2 * OS_PAGE);
    }
}
