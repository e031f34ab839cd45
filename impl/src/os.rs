//! The OS layer: the only module that maps memory or touches it through raw
//! pointers.
//!
//! One arena is reserved up front ([`Arena::sys_reserve`], Go's `sysReserve`)
//! with memmap2 as an anonymous, private mapping without swap reservation
//! (`MAP_NORESERVE`), so reserving costs address space, not memory. Pages are
//! committed by the kernel when first touched; [`Arena::sys_map`] and
//! [`Arena::sys_used`] are therefore bookkeeping only on Linux (Go's
//! `sysMap` / `sysUsed` do no more there). [`Arena::sys_unused`] gives pages
//! back with `madvise(MADV_DONTNEED)` (they read as zero afterwards),
//! [`Arena::sys_fault`] makes them inaccessible with `mprotect(PROT_NONE)`,
//! and dropping the arena unmaps it (`sysFree`).
//!
//! Under Miri, which cannot run `mmap`, the arena is a zeroed heap
//! allocation with the same interface; `sys_unused` zeroes the range
//! instead of calling madvise and `sys_fault` is refused.
//!
//! Memory words are read and written with relaxed atomic operations
//! ([`Arena::load_word`], [`Arena::store_word`]): the free-list links stored
//! in free stacks are only touched under the lock that owns the list (or by
//! the owner of the P cache), but a misbehaving caller could make two
//! threads touch the same word, and atomics keep that a logic error instead
//! of a data race.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of a machine word of the host, the unit of the intrusive links.
pub const WORD: u64 = 8;

// The OS layer speaks Linux: `madvise(MADV_DONTNEED)` zeroes private
// anonymous pages there, and `MAP_NORESERVE` reserves without committing.
// Elsewhere those mean other things, so refuse to build rather than run
// with other semantics.
#[cfg(not(any(target_os = "linux", miri)))]
compile_error!("gostack's OS layer (impl/src/os.rs) supports Linux only (and Miri's interpreter); other systems need their own sysReserve/sysUnused/sysFault");

/// The OS page the layer works in: 4 KiB, which every range it protects
/// or releases is a multiple of (stacks from the system are rounded to it,
/// as Go rounds them to `physPageSize`). [`Arena::sys_reserve`] refuses a
/// host whose page is larger (some arm64 kernels use 16 or 64 KiB).
fn os_page() -> u64 {
    4096
}

/// The host's page size, as the kernel reports it.
#[cfg(not(miri))]
fn host_page() -> u64 {
    rustix::param::page_size() as u64
}

/// One reserved, contiguous range of address space.
pub struct Arena {
    /// First byte of the usable arena (aligned to `align`).
    base: *mut u8,
    /// Usable bytes from `base`.
    len: u64,
    /// Keeps the mapping alive; unmapped on drop (`sysFree`).
    #[cfg(not(miri))]
    _map: memmap2::MmapMut,
    /// The heap block under Miri, and its layout.
    #[cfg(miri)]
    _block: (*mut u8, std::alloc::Layout),
}

// SAFETY: `Arena` owns its mapping; the raw pointer is only an address into
// memory that lives as long as the `Arena`, and every access through it goes
// through atomics (`load_word`/`store_word`) or the kernel (madvise,
// mprotect), so sharing and sending it between threads cannot race.
unsafe impl Send for Arena {}
// SAFETY: as above: `&Arena` only allows atomic word access and syscalls.
unsafe impl Sync for Arena {}

/// Why the OS layer refused.
#[derive(Debug)]
pub struct OsError(pub String);

impl std::fmt::Display for OsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Arena {
    /// Go: `sysReserve`. Reserves `len` bytes whose first byte is aligned to
    /// `align` (a power of two, at least the OS page): maps `len + align`
    /// bytes and uses the aligned part.
    #[cfg(not(miri))]
    pub fn sys_reserve(len: u64, align: u64) -> Result<Arena, OsError> {
        if host_page() != os_page() {
            return Err(OsError(format!(
                "this host's page is {} bytes; gostack's OS layer needs {} (Go's physPageSize rounding and every protected range assume it)",
                host_page(),
                os_page()
            )));
        }
        if len == 0 || !align.is_power_of_two() || align < os_page() {
            return Err(OsError(format!(
                "cannot reserve {len} bytes aligned to {align}"
            )));
        }
        let total = len
            .checked_add(align)
            .and_then(|t| usize::try_from(t).ok())
            .ok_or_else(|| OsError(format!("cannot reserve {len} bytes")))?;
        let mut map = memmap2::MmapOptions::new()
            .len(total)
            .no_reserve_swap()
            .map_anon()
            .map_err(|e| OsError(format!("mmap of {total} bytes: {e}")))?;
        let start = map.as_mut_ptr();
        let skip = (align - (start as u64 % align)) % align;
        // SAFETY: `skip < align` and the mapping is `len + align` bytes, so
        // `start + skip` and the `len` bytes after it lie inside it.
        let base = unsafe { start.add(skip as usize) };
        Ok(Arena {
            base,
            len,
            _map: map,
        })
    }

    /// Go: `sysReserve`, over a zeroed heap block (Miri cannot mmap).
    #[cfg(miri)]
    pub fn sys_reserve(len: u64, align: u64) -> Result<Arena, OsError> {
        if len == 0 || !align.is_power_of_two() || align < os_page() {
            return Err(OsError(format!(
                "cannot reserve {len} bytes aligned to {align}"
            )));
        }
        let layout = usize::try_from(len)
            .ok()
            .and_then(|l| std::alloc::Layout::from_size_align(l, align as usize).ok())
            .ok_or_else(|| OsError(format!("cannot reserve {len} bytes")))?;
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { std::alloc::alloc_zeroed(layout) };
        if base.is_null() {
            return Err(OsError(format!("cannot allocate {len} bytes")));
        }
        Ok(Arena {
            base,
            len,
            _block: (base, layout),
        })
    }

    /// The address of the arena's first byte.
    #[inline]
    pub fn base(&self) -> u64 {
        self.base as u64
    }

    /// The arena's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the arena is empty (never: `sys_reserve` refuses 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks that `[off, off+len)` is a non-empty, OS-page-aligned range
    /// inside the arena.
    fn check_range(&self, off: u64, len: u64) -> Result<(), OsError> {
        let page = os_page();
        let end = off.checked_add(len);
        if len == 0 || off % page != 0 || len % page != 0 || end.is_none_or(|e| e > self.len) {
            return Err(OsError(format!(
                "range [{off:#x}, +{len:#x}) is not page aligned inside the arena of {:#x} bytes",
                self.len
            )));
        }
        Ok(())
    }

    /// Go: `sysMap`: make `[off, off+len)` usable. The whole arena is mapped
    /// read/write at reservation (without swap reservation), so this only
    /// checks the range.
    pub fn sys_map(&self, off: u64, len: u64) -> Result<(), OsError> {
        self.check_range(off, len)
    }

    /// Go: `sysUsed`: the pages will be used again. Nothing to do on Linux
    /// (the kernel commits pages on first touch).
    pub fn sys_used(&self, off: u64, len: u64) -> Result<(), OsError> {
        self.check_range(off, len)
    }

    /// Go: `sysUnused`: give the pages' memory back to the OS
    /// (`madvise(MADV_DONTNEED)`); they read as zero when touched again.
    ///
    /// The caller must ensure nothing else accesses the range concurrently
    /// (it is a span just returned to the heap).
    #[cfg(not(miri))]
    pub fn sys_unused(&self, off: u64, len: u64) -> Result<(), OsError> {
        self.check_range(off, len)?;
        // SAFETY: the range is page aligned and inside our private anonymous
        // mapping (checked above). DONTNEED on such memory only replaces its
        // contents with zero pages; no Rust reference to this memory exists
        // (all access is through atomics on raw pointers, and the heap owns
        // these pages now), so no value is invalidated.
        unsafe {
            rustix::mm::madvise(
                self.base.add(off as usize).cast(),
                len as usize,
                rustix::mm::Advice::LinuxDontNeed,
            )
        }
        .map_err(|e| OsError(format!("madvise(DONTNEED): {e}")))
    }

    /// Go: `sysUnused`, under Miri: zero the range.
    #[cfg(miri)]
    pub fn sys_unused(&self, off: u64, len: u64) -> Result<(), OsError> {
        self.check_range(off, len)?;
        // SAFETY: the range is inside the block (checked above); the caller
        // guarantees nothing accesses it concurrently (a span just returned
        // to the heap), so this non-atomic write races with nothing.
        unsafe { std::ptr::write_bytes(self.base.add(off as usize), 0, len as usize) };
        Ok(())
    }

    /// Go: `sysFault`: make the pages inaccessible (`mprotect(PROT_NONE)`),
    /// so that any touch faults. `restore` makes them read/write again.
    ///
    /// Each protected range may split the mapping and costs a kernel map
    /// entry (`vm.max_map_count`); when the kernel refuses, the error says
    /// so and nothing is protected.
    #[cfg(not(miri))]
    pub fn sys_fault(&self, off: u64, len: u64, restore: bool) -> Result<(), OsError> {
        use rustix::mm::MprotectFlags;
        self.check_range(off, len)?;
        let flags = if restore {
            MprotectFlags::READ | MprotectFlags::WRITE
        } else {
            MprotectFlags::empty()
        };
        // SAFETY: the range is page aligned and inside our mapping (checked
        // above). The caller guarantees that nothing in this process reads
        // or writes the range while it is protected (it is a freed stack);
        // a touch would fault, which is the point of the debug mode.
        unsafe { rustix::mm::mprotect(self.base.add(off as usize).cast(), len as usize, flags) }
            .map_err(|e| {
                OsError(format!(
                    "mprotect: {e} (vm.max_map_count may be exhausted by protected ranges)"
                ))
            })
    }

    /// Go: `sysFault`: not available under Miri.
    #[cfg(miri)]
    pub fn sys_fault(&self, _off: u64, _len: u64, _restore: bool) -> Result<(), OsError> {
        Err(OsError("mprotect is not available under Miri".into()))
    }

    /// The word at absolute address `addr`, if it is an aligned word inside
    /// the arena.
    #[inline]
    fn word(&self, addr: u64) -> Option<&AtomicU64> {
        let off = addr.checked_sub(self.base())?;
        if off % WORD != 0 || off.checked_add(WORD)? > self.len {
            return None;
        }
        // SAFETY: `off + 8 <= len`, so the 8 bytes at `base + off` lie inside
        // the arena, which stays mapped (or allocated) while `self` lives;
        // `base` is aligned to at least the OS page and `off` to 8, so the
        // pointer is aligned for `AtomicU64`. All accesses this crate makes
        // to arena memory are atomic, so no non-atomic access races with
        // this one.
        Some(unsafe { AtomicU64::from_ptr(self.base.add(off as usize).cast::<u64>()) })
    }

    /// Reads the word at `addr` (a free-list link). `None` outside the arena
    /// or unaligned.
    #[inline]
    pub fn load_word(&self, addr: u64) -> Option<u64> {
        self.word(addr).map(|w| w.load(Ordering::Relaxed))
    }

    /// Writes the word at `addr` (a free-list link). `false` outside the
    /// arena or unaligned.
    #[inline]
    pub fn store_word(&self, addr: u64, v: u64) -> bool {
        match self.word(addr) {
            Some(w) => {
                w.store(v, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }
}

/// A zero-initialized array of `AtomicU64`, for tables indexed by arena
/// page (the span table). It is an anonymous private mapping without swap
/// reservation (`MAP_NORESERVE`), so the kernel commits a page of the table
/// only when an entry in it is first touched: a table sized for a 64 GiB
/// arena costs memory only where the heap is in use. Under Miri it is a
/// zeroed heap block.
pub struct ZeroedWords {
    ptr: std::ptr::NonNull<AtomicU64>,
    len: usize,
    /// Keeps the mapping alive; unmapped on drop.
    #[cfg(not(miri))]
    _map: memmap2::MmapMut,
}

// SAFETY: the table owns its memory and is only accessed through
// `&[AtomicU64]`, whose elements are safe to share and send.
unsafe impl Send for ZeroedWords {}
// SAFETY: as above.
unsafe impl Sync for ZeroedWords {}

impl ZeroedWords {
    /// Bytes for `len` words (at least one word), if that fits.
    fn bytes(len: usize) -> Option<usize> {
        len.max(1).checked_mul(std::mem::size_of::<AtomicU64>())
    }

    /// A table of `len` words, all zero.
    #[cfg(not(miri))]
    pub fn new(len: usize) -> Result<ZeroedWords, OsError> {
        let bytes = Self::bytes(len)
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or_else(|| OsError(format!("a table of {len} words is too large")))?;
        let mut map = memmap2::MmapOptions::new()
            .len(bytes)
            .no_reserve_swap()
            .map_anon()
            .map_err(|e| OsError(format!("cannot map a table of {len} words: {e}")))?;
        let ptr = std::ptr::NonNull::new(map.as_mut_ptr().cast::<AtomicU64>())
            .ok_or_else(|| OsError("mmap returned null".into()))?;
        Ok(ZeroedWords {
            ptr,
            len,
            _map: map,
        })
    }

    /// A table of `len` words, all zero (Miri: a zeroed heap block).
    #[cfg(miri)]
    pub fn new(len: usize) -> Result<ZeroedWords, OsError> {
        let layout = Self::layout(len)
            .ok_or_else(|| OsError(format!("a table of {len} words is too large")))?;
        // SAFETY: the layout has a non-zero size (at least one word).
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = std::ptr::NonNull::new(raw.cast::<AtomicU64>())
            .ok_or_else(|| OsError(format!("cannot allocate a table of {len} words")))?;
        Ok(ZeroedWords { ptr, len })
    }

    #[cfg(miri)]
    fn layout(len: usize) -> Option<std::alloc::Layout> {
        Self::bytes(len)?;
        std::alloc::Layout::array::<AtomicU64>(len.max(1)).ok()
    }

    /// The words.
    #[inline]
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: `ptr` points to `len` (or, for 0, one) words of zeroed
        // memory owned by `self` (a page-aligned mapping, or a block
        // allocated with `AtomicU64`'s layout), aligned for `AtomicU64`;
        // all-zero bytes are a valid `AtomicU64`; the memory is only ever
        // accessed through these atomics (shared references to
        // interior-mutable cells), and it is freed only when `self` is
        // dropped, which needs `&mut self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

#[cfg(miri)]
impl Drop for ZeroedWords {
    fn drop(&mut self) {
        if let Some(layout) = Self::layout(self.len) {
            // SAFETY: allocated in `new` with this same layout, freed once.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), layout) }
        }
    }
}

#[cfg(miri)]
impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: the block was allocated in `sys_reserve` with this layout
        // and is freed exactly once, here.
        unsafe { std::alloc::dealloc(self._block.0, self._block.1) }
    }
}

#[cfg(test)]
// The goroutine layer's `impl Arena` block stays last in the file.
#[allow(clippy::items_after_test_module)]
mod tests {
    use super::*;

    #[test]
    fn reserve_is_aligned_and_words_round_trip() {
        let a = Arena::sys_reserve(4 << 20, 8192).unwrap();
        assert_eq!(a.base() % 8192, 0);
        assert_eq!(a.len(), 4 << 20);
        assert_eq!(a.load_word(a.base()), Some(0));
        assert!(a.store_word(a.base() + 8192, 0xdead_beef));
        assert_eq!(a.load_word(a.base() + 8192), Some(0xdead_beef));
        // Outside, unaligned, at the very end.
        assert_eq!(a.load_word(a.base() + 3), None);
        assert_eq!(a.load_word(a.base() - 8), None);
        assert_eq!(a.load_word(a.base() + (4 << 20)), None);
        assert_eq!(a.load_word(a.base() + (4 << 20) - 8), Some(0));
        assert!(!a.store_word(u64::MAX, 1));
    }

    #[test]
    fn unused_pages_read_as_zero() {
        let a = Arena::sys_reserve(4 << 20, 8192).unwrap();
        a.store_word(a.base() + 8192, 7);
        a.store_word(a.base() + 16384, 9);
        a.sys_unused(8192, 8192).unwrap();
        assert_eq!(a.load_word(a.base() + 8192), Some(0));
        assert_eq!(a.load_word(a.base() + 16384), Some(9));
        a.sys_map(0, 8192).unwrap();
        a.sys_used(0, 8192).unwrap();
    }

    #[test]
    fn bad_ranges_are_refused() {
        let a = Arena::sys_reserve(4 << 20, 8192).unwrap();
        assert!(a.sys_unused(1, 4096).is_err());
        assert!(a.sys_unused(0, 0).is_err());
        assert!(a.sys_unused(0, 8 << 20).is_err());
        assert!(a.sys_unused(u64::MAX - 4095, 4096).is_err());
        assert!(Arena::sys_reserve(0, 8192).is_err());
        assert!(Arena::sys_reserve(8192, 3).is_err());
    }

    #[test]
    fn zeroed_words() {
        let n = if cfg!(miri) { 1 << 14 } else { 1 << 20 };
        let t = ZeroedWords::new(n).unwrap();
        assert_eq!(t.words().len(), n);
        assert!(t
            .words()
            .iter()
            .step_by(4099)
            .all(|w| w.load(Ordering::Relaxed) == 0));
        t.words()[5].store(7, Ordering::Relaxed);
        assert_eq!(t.words()[5].load(Ordering::Relaxed), 7);
        assert_eq!(ZeroedWords::new(0).unwrap().words().len(), 0);
        assert!(ZeroedWords::new(usize::MAX).is_err());
    }

    #[cfg(not(miri))]
    #[test]
    fn fault_and_restore() {
        let a = Arena::sys_reserve(4 << 20, 8192).unwrap();
        a.sys_fault(8192, 8192, false).unwrap();
        a.sys_fault(8192, 8192, true).unwrap();
        assert!(a.store_word(a.base() + 8192, 1));
        assert_eq!(a.load_word(a.base() + 8192), Some(1));
    }
}

/// Word views for the goroutine layer (impl/src/goroutine.rs and
/// impl/src/adjust.rs): runs of 8-byte words of the arena, for copying
/// stacks and adjusting the pointers in their frames (32-bit profiles use
/// each as two 4-byte words, so every access to arena memory has one size).
/// Every access through them is a relaxed atomic load, store or
/// compare-and-swap, like [`Arena::load_word`]: a word loop of relaxed
/// atomics compiles to plain moves, and a caller that lets two threads
/// touch the same words gets wrong values, never a data race.
impl Arena {
    /// `n` consecutive 8-byte words from absolute address `addr`, if they
    /// lie inside the arena and `addr` is 8-byte aligned.
    #[inline]
    pub fn words(&self, addr: u64, n: usize) -> Option<&[std::sync::atomic::AtomicU64]> {
        let off = addr.checked_sub(self.base())?;
        let bytes = (n as u64).checked_mul(8)?;
        if off % 8 != 0 || off.checked_add(bytes)? > self.len {
            return None;
        }
        // SAFETY: `[off, off + 8n)` lies inside the arena (checked above),
        // which stays mapped (or allocated, under Miri) while `self` lives,
        // and the returned slice borrows `self`; `base` is page aligned and
        // `off` a multiple of 8, so the pointer is aligned for `AtomicU64`.
        // Every access this crate makes to arena memory is atomic, so the
        // shared slice of atomics aliases no non-atomic access.
        Some(unsafe {
            std::slice::from_raw_parts(
                self.base
                    .add(off as usize)
                    .cast::<std::sync::atomic::AtomicU64>(),
                n,
            )
        })
    }
}
