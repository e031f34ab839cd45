//! Stacks taken straight from the OS, one mapping each: the memory module
//! of Go's `stackFromSystem` debug mode (runtime/stack.go: `stackalloc`
//! calls `sysAlloc` and `stackfree` calls `sysFree`, or `sysFault` when
//! `stackFaultOnFree` is also set).
//!
//! Every stack is its own anonymous read/write mapping whose length is the
//! requested size rounded up to the OS page (Go: `alignUp(n,
//! physPageSize)`), so no two stacks share a page. A free either unmaps the
//! stack (`sysFree`) or, in fault-on-free mode, makes it inaccessible and
//! gives its memory back (`sysFault` = `mprotect(PROT_NONE)` then
//! `madvise(MADV_DONTNEED)`, runtime/mem_linux.go `sysFaultOS`) and keeps
//! the address range reserved for the life of the [`SystemStacks`], so the
//! address is never handed out again and a stale pointer into it faults
//! (Go leaks the range the same way).
//!
//! The kernel limits the number of distinct mappings (`vm.max_map_count`,
//! 65530 by default). Neighbouring mappings with the same protection merge,
//! so live stacks cost few entries, but every faulted stack between live
//! ones splits a mapping. When the kernel refuses the `mprotect` (ENOMEM at
//! the limit), the free still succeeds: the memory is given back with
//! `madvise(MADV_DONTNEED)` and the range stays reserved and is never
//! reused, but a touch reads zeros instead of faulting; the count of such
//! frees is [`SystemStats::unprotected`]. When the kernel refuses a new
//! mapping, [`SystemStacks::alloc`] fails and the allocator reports Go's
//! "out of memory" throw.
//!
//! Under Miri, which cannot map memory, a stack is a zeroed heap block with
//! the same alignment; fault-on-free is refused there
//! ([`SystemStacks::new`]).
//!
//! Words are read and written with relaxed atomics, as in [`crate::os`].
//! A read or write of a faulted stack is a deliberate `SIGSEGV`: that is
//! what the debug mode is for.

use crate::os::{OsError, WORD};
use crate::sync::{lock, Mutex};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// The OS page the mappings are rounded to (Go's `physPageSize`).
pub const OS_PAGE: u64 = 4096;

/// One mapping.
struct Region {
    /// First byte.
    ptr: *mut u8,
    /// Bytes (a multiple of [`OS_PAGE`]).
    len: u64,
    /// Keeps the mapping alive; unmapped on drop.
    #[cfg(not(miri))]
    _map: memmap2::MmapMut,
}

impl Region {
    #[cfg(not(miri))]
    fn map(len: u64) -> Result<Region, OsError> {
        let n = usize::try_from(len).map_err(|_| OsError(format!("cannot map {len} bytes")))?;
        let mut map = memmap2::MmapOptions::new()
            .len(n)
            .map_anon()
            .map_err(|e| OsError(format!("mmap of {len} bytes: {e}")))?;
        Ok(Region {
            ptr: map.as_mut_ptr(),
            len,
            _map: map,
        })
    }

    #[cfg(miri)]
    fn map(len: u64) -> Result<Region, OsError> {
        let layout = usize::try_from(len)
            .ok()
            .and_then(|l| std::alloc::Layout::from_size_align(l, OS_PAGE as usize).ok())
            .ok_or_else(|| OsError(format!("cannot map {len} bytes")))?;
        // SAFETY: `len` is at least one page (checked by the caller), so the
        // layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(OsError(format!("cannot allocate {len} bytes")));
        }
        Ok(Region { ptr, len })
    }

    /// Go: `sysFaultOS`: `mprotect(PROT_NONE)`, then `madvise(DONTNEED)`.
    /// Returns whether the protection took; the memory is given back either
    /// way.
    #[cfg(not(miri))]
    fn fault(&self) -> bool {
        // SAFETY: `ptr..ptr+len` is exactly one live mapping we own (made in
        // `map`, page aligned, `len` a multiple of the page). The stack was
        // just freed and its record moved to the faulted set, so this module
        // hands out no access to it any more except through `word`, whose
        // reads and writes of a protected page fault by design.
        let protected = unsafe {
            rustix::mm::mprotect(
                self.ptr.cast(),
                self.len as usize,
                rustix::mm::MprotectFlags::empty(),
            )
        }
        .is_ok();
        // SAFETY: the same range; DONTNEED on a private anonymous mapping
        // only replaces its contents with zero pages, and nothing holds a
        // Rust reference into it (all access is through atomics made on
        // demand by `word`).
        let _ = unsafe {
            rustix::mm::madvise(
                self.ptr.cast(),
                self.len as usize,
                rustix::mm::Advice::LinuxDontNeed,
            )
        };
        protected
    }

    #[cfg(miri)]
    fn fault(&self) -> bool {
        false
    }

    /// The word at `addr`, if it is an aligned word of this region.
    fn word(&self, addr: u64) -> Option<&AtomicU64> {
        let off = addr.checked_sub(self.ptr as u64)?;
        if off % WORD != 0 || off.checked_add(WORD)? > self.len {
            return None;
        }
        // SAFETY: `off + 8 <= len`, so the word lies inside the region,
        // which stays mapped (or allocated) as long as the region lives; the
        // base is page aligned and `off` a multiple of 8, so the pointer is
        // aligned for `AtomicU64`; every access to stack memory is atomic,
        // so nothing races with this access non-atomically.
        Some(unsafe { AtomicU64::from_ptr(self.ptr.add(off as usize).cast::<u64>()) })
    }
}

#[cfg(miri)]
impl Drop for Region {
    fn drop(&mut self) {
        if let Ok(layout) = std::alloc::Layout::from_size_align(self.len as usize, OS_PAGE as usize)
        {
            // SAFETY: allocated in `map` with this layout, freed once.
            unsafe { std::alloc::dealloc(self.ptr, layout) }
        }
    }
}

// SAFETY: a region owns its mapping; the raw pointer is only an address
// into it, and all access goes through atomics or the kernel.
unsafe impl Send for Region {}
// SAFETY: as above: `&Region` only allows atomic word access.
unsafe impl Sync for Region {}

/// Counts of the stacks from the system.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SystemStats {
    /// Stacks handed out and not freed.
    pub live: u64,
    /// Their bytes (page-rounded).
    pub live_bytes: u64,
    /// Freed stacks kept reserved (fault-on-free): never reused.
    pub faulted: u64,
    /// Their bytes. Go counts them in `stacks_sys` until the process ends.
    pub faulted_bytes: u64,
    /// Of the faulted ones, those the kernel would not protect (the map
    /// count limit): their memory was given back, a touch reads zeros.
    pub unprotected: u64,
}

#[derive(Default)]
struct Inner {
    live: BTreeMap<u64, Region>,
    faulted: BTreeMap<u64, Region>,
    stats: SystemStats,
}

/// Every stack taken from the system by one allocator.
pub struct SystemStacks {
    fault_on_free: bool,
    inner: Mutex<Inner>,
}

/// Why a free was refused: the bounds are not a live stack of this set.
#[derive(Debug, PartialEq, Eq)]
pub struct NotLive;

impl SystemStacks {
    /// An empty set. With `fault_on_free`, freed stacks are protected and
    /// kept instead of unmapped; refused under Miri, which has no
    /// `mprotect`.
    pub fn new(fault_on_free: bool) -> Result<SystemStacks, OsError> {
        if cfg!(miri) && fault_on_free {
            return Err(OsError("mprotect is not available under Miri".into()));
        }
        Ok(SystemStacks {
            fault_on_free,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// The mapping length for a stack of `n` bytes: `n` rounded up to the
    /// OS page, `None` if that overflows.
    pub fn round(n: u64) -> Option<u64> {
        n.checked_add(OS_PAGE - 1).map(|x| x & !(OS_PAGE - 1))
    }

    /// Go: `sysAlloc` for a stack: a new mapping of `len` bytes (a positive
    /// multiple of [`OS_PAGE`]). Returns its address.
    pub fn alloc(&self, len: u64) -> Result<u64, OsError> {
        if len == 0 || len % OS_PAGE != 0 {
            return Err(OsError(format!("cannot map {len} bytes as a stack")));
        }
        let region = Region::map(len)?;
        let addr = region.ptr as u64;
        let mut g = lock(&self.inner);
        g.stats.live += 1;
        g.stats.live_bytes += len;
        g.live.insert(addr, region);
        Ok(addr)
    }

    /// Whether `[lo, lo+len)` is exactly a live stack of this set.
    pub fn is_live(&self, lo: u64, len: u64) -> bool {
        lock(&self.inner)
            .live
            .get(&lo)
            .is_some_and(|r| r.len == len)
    }

    /// Go: `sysFree` (or `sysFault` in fault-on-free mode) of the stack at
    /// `[lo, lo+len)`. Anything but a live stack of exactly that length is
    /// refused and changes nothing.
    pub fn free(&self, lo: u64, len: u64) -> Result<(), NotLive> {
        let mut g = lock(&self.inner);
        if g.live.get(&lo).is_none_or(|r| r.len != len) {
            return Err(NotLive);
        }
        let region = g.live.remove(&lo).ok_or(NotLive)?;
        g.stats.live -= 1;
        g.stats.live_bytes -= len;
        if self.fault_on_free {
            if !region.fault() {
                g.stats.unprotected += 1;
            }
            g.stats.faulted += 1;
            g.stats.faulted_bytes += len;
            g.faulted.insert(lo, region);
        } else {
            drop(g);
            drop(region);
        }
        Ok(())
    }

    /// The counts.
    pub fn stats(&self) -> SystemStats {
        lock(&self.inner).stats
    }

    /// Runs `f` on the word at `addr` if it lies in a stack of this set,
    /// live or faulted (a faulted one faults when touched).
    fn with_word<T>(&self, addr: u64, f: impl FnOnce(&AtomicU64) -> T) -> Option<T> {
        let g = lock(&self.inner);
        let find = |m: &BTreeMap<u64, Region>| {
            m.range(..=addr)
                .next_back()
                .and_then(|(_, r)| r.word(addr))
                .map(|w| w as *const AtomicU64)
        };
        let w = find(&g.live).or_else(|| find(&g.faulted))?;
        // SAFETY: `w` points into a region owned by `g`'s maps, which stay
        // alive (and the region mapped) while the lock is held, and the lock
        // is held until `f` returns.
        Some(f(unsafe { &*w }))
    }

    /// Reads the word at `addr` of a stack from the system. `None` when
    /// `addr` is not an aligned word of one. Reading a faulted stack faults.
    pub fn load_word(&self, addr: u64) -> Option<u64> {
        self.with_word(addr, |w| w.load(Ordering::Relaxed))
    }

    /// Writes the word at `addr` of a stack from the system; `false` when
    /// `addr` is not an aligned word of one. Writing a faulted stack
    /// faults.
    pub fn store_word(&self, addr: u64, v: u64) -> bool {
        self.with_word(addr, |w| w.store(v, Ordering::Relaxed))
            .is_some()
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

    #[test]
    fn alloc_write_free() {
        let s = SystemStacks::new(false).unwrap();
        let a = s.alloc(OS_PAGE).unwrap();
        let b = s.alloc(4 * OS_PAGE).unwrap();
        assert_eq!(a % OS_PAGE, 0);
        assert!(s.store_word(a + 8, 7));
        assert!(s.store_word(b + 4 * OS_PAGE - 8, 9));
        assert_eq!(s.load_word(a + 8), Some(7));
        assert_eq!(s.load_word(b + 4 * OS_PAGE - 8), Some(9));
        assert_eq!(s.load_word(a + 3), None);
        assert!(s.is_live(b, 4 * OS_PAGE));
        assert!(!s.is_live(b, OS_PAGE));
        assert_eq!(s.free(b, OS_PAGE), Err(NotLive));
        assert_eq!(s.free(b + OS_PAGE, OS_PAGE), Err(NotLive));
        assert_eq!(
            s.stats(),
            SystemStats {
                live: 2,
                live_bytes: 5 * OS_PAGE,
                ..SystemStats::default()
            }
        );
        s.free(b, 4 * OS_PAGE).unwrap();
        assert_eq!(s.free(b, 4 * OS_PAGE), Err(NotLive));
        s.free(a, OS_PAGE).unwrap();
        assert_eq!(s.stats(), SystemStats::default());
        assert!(s.alloc(0).is_err());
        assert!(s.alloc(OS_PAGE + 1).is_err());
        assert_eq!(SystemStacks::round(2048), Some(OS_PAGE));
        assert_eq!(SystemStacks::round(8192), Some(8192));
        assert_eq!(SystemStacks::round(u64::MAX), None);
    }

    #[cfg(not(miri))]
    #[test]
    fn faulted_stacks_are_kept_and_never_reused() {
        let s = SystemStacks::new(true).unwrap();
        let a = s.alloc(2 * OS_PAGE).unwrap();
        s.store_word(a, 1);
        s.free(a, 2 * OS_PAGE).unwrap();
        assert_eq!(s.free(a, 2 * OS_PAGE), Err(NotLive));
        let st = s.stats();
        assert_eq!((st.live, st.faulted, st.faulted_bytes), (0, 1, 2 * OS_PAGE));
        assert_eq!(st.unprotected, 0);
        // The range stays reserved: no new stack lands on it.
        for _ in 0..64 {
            let b = s.alloc(2 * OS_PAGE).unwrap();
            assert!(b + 2 * OS_PAGE <= a || b >= a + 2 * OS_PAGE);
        }
    }

    #[cfg(miri)]
    #[test]
    fn fault_on_free_is_refused_under_miri() {
        assert!(SystemStacks::new(true).is_err());
    }
}
