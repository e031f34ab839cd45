//! The page heap, as the stack system sees Go's `mheap`.
//!
//! Go's heap hands out runs of 8 KiB pages as spans. Stacks use "manual"
//! spans (`allocManual` / `freeManual` with `spanAllocStack`, runtime/mheap.go),
//! which the garbage collector does not sweep; the rest of the heap uses the
//! same pages for objects. This model keeps what the stack system can
//! observe:
//!
//! - an arena of `arena_pages` pages from `base`, of which the first
//!   `mapped_pages` are mapped; the heap grows the mapped part in chunks of
//!   512 pages (`pallocChunkPages`, `mheap.grow`) when no free run fits;
//! - free pages as maximal runs (coalesced); allocation takes the
//!   lowest-addressed run that fits, as Go's page allocator
//!   (`pageAlloc.alloc`, runtime/mpagealloc.go) searches in address order;
//! - live spans with their state, and, for stack spans, elemsize,
//!   allocCount and the free list (`manualFreeList`).
//!
//! Deliberate simplification: Go serves small heap allocations (under 16
//! pages) from a per-P page cache of 64 aligned pages before falling back to
//! the global search; this model always searches globally. Stack pool spans
//! are 4 pages, so this changes which addresses Go picks under a per-P page
//! cache, not what the stack system does with them.

use crate::gothrow::{GoThrow, Misuse};
use crate::throw::Throw;
use serde::Serialize;
use std::collections::BTreeMap;

/// The size of a page (`_PageSize`, runtime/sizeclasses.go).
pub const PAGE_SIZE: u64 = crate::profile::PAGE_SIZE;
/// Pages the heap grows by at least (`pallocChunkPages`,
/// runtime/mpagealloc.go).
pub const GROWTH_PAGES: u64 = 512;

/// What a live span is used for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub enum SpanState {
    /// `mSpanManual`: a stack span (pool or large).
    Manual,
    /// `mSpanInUse`: ordinary heap memory, taken and returned by the tests
    /// to fragment the heap as real programs do.
    InUse,
}

/// A run of pages handed out by the heap (`mspan`, runtime/mheap.go).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Span {
    /// Address of the first byte.
    pub base: u64,
    /// Length in pages.
    pub npages: u64,
    /// Manual (stacks) or in use (heap objects).
    pub state: SpanState,
    /// For a pool span, the size of each stack in it; for a large stack
    /// span, the stack's size; 0 for heap spans.
    pub elemsize: u64,
    /// For a pool span, how many of its stacks are out of its free list
    /// (handed to a goroutine or sitting in a P's cache). Large stack spans
    /// keep 0, as Go's do.
    pub alloc_count: u64,
    /// For a pool span, its free stacks, head first (`manualFreeList`: each
    /// free stack's first word links to the next).
    pub free_list: Vec<u64>,
}

impl Span {
    /// One past the last byte.
    pub fn limit(&self) -> u64 {
        self.base + self.npages * PAGE_SIZE
    }

    /// Whether `addr` lies inside the span.
    pub fn contains(&self, addr: u64) -> bool {
        self.base <= addr && addr < self.limit()
    }
}

/// The pages of the arena and the spans cut from them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageHeap {
    /// Address of the arena's first page.
    pub base: u64,
    /// Pages the arena may ever map.
    pub arena_pages: u64,
    /// Pages mapped so far (from `base`).
    pub mapped_pages: u64,
    /// Free runs: first page index to length in pages, coalesced.
    pub free: BTreeMap<u64, u64>,
    /// Live spans by base address.
    pub spans: BTreeMap<u64, Span>,
    /// Bytes in manual (stack) spans, kept as Go keeps `inStacks`
    /// (runtime/mstats.go): added when a stack span is allocated, subtracted
    /// when it is freed. Reported as StackInuse.
    pub stack_inuse: u64,
}

impl PageHeap {
    /// An empty heap over an arena of `arena_pages` pages at `base`.
    pub fn new(base: u64, arena_pages: u64) -> PageHeap {
        PageHeap {
            base,
            arena_pages,
            mapped_pages: 0,
            free: BTreeMap::new(),
            spans: BTreeMap::new(),
            stack_inuse: 0,
        }
    }

    fn addr(&self, page: u64) -> u64 {
        self.base + page * PAGE_SIZE
    }

    /// The lowest-addressed free run of at least `npages`, as a page index.
    fn first_fit(&self, npages: u64) -> Option<u64> {
        self.free
            .iter()
            .find(|(_, &len)| len >= npages)
            .map(|(&start, _)| start)
    }

    /// Adds pages `[start, start+len)` to the free runs, merging with
    /// neighbours.
    fn add_free(&mut self, mut start: u64, mut len: u64) {
        if let Some((&prev, &plen)) = self.free.range(..start).next_back() {
            if prev + plen == start {
                self.free.remove(&prev);
                start = prev;
                len += plen;
            }
        }
        if let Some(&nlen) = self.free.get(&(start + len)) {
            self.free.remove(&(start + len));
            len += nlen;
        }
        self.free.insert(start, len);
    }

    /// Maps more of the arena: at least `npages`, rounded up to the growth
    /// chunk. Go: `mheap.grow` (runtime/mheap.go).
    fn grow(&mut self, npages: u64) -> bool {
        let Some(ask) = npages.div_ceil(GROWTH_PAGES).checked_mul(GROWTH_PAGES) else {
            return false;
        };
        if ask > self.arena_pages - self.mapped_pages {
            return false;
        }
        let start = self.mapped_pages;
        self.mapped_pages += ask;
        self.add_free(start, ask);
        true
    }

    /// Takes a run of `npages` pages for a span of the given state: the
    /// lowest-addressed free run that fits, growing the mapped heap when none
    /// does. `None` when the arena is exhausted.
    ///
    /// Go: `mheap.allocSpan` via `allocManual` for stacks (runtime/mheap.go).
    pub fn alloc_span(&mut self, npages: u64, state: SpanState) -> Option<u64> {
        if npages == 0 {
            return None;
        }
        let start = match self.first_fit(npages) {
            Some(start) => start,
            None => {
                if !self.grow(npages) {
                    return None;
                }
                self.first_fit(npages)?
            }
        };
        let len = self.free.remove(&start)?;
        if len > npages {
            self.free.insert(start + npages, len - npages);
        }
        let base = self.addr(start);
        if state == SpanState::Manual {
            self.stack_inuse += npages * PAGE_SIZE;
        }
        self.spans.insert(
            base,
            Span {
                base,
                npages,
                state,
                elemsize: 0,
                alloc_count: 0,
                free_list: Vec::new(),
            },
        );
        Some(base)
    }

    /// Returns a span's pages to the free runs. Go: `mheap.freeManual` and
    /// `freeSpan` (runtime/mheap.go).
    pub fn free_span(&mut self, base: u64) -> Option<Span> {
        let span = self.spans.remove(&base)?;
        if span.state == SpanState::Manual {
            self.stack_inuse -= span.npages * PAGE_SIZE;
        }
        let start = (base - self.base) / PAGE_SIZE;
        self.add_free(start, span.npages);
        Some(span)
    }

    /// The live span containing `addr`, if any. Go: `spanOf`
    /// (runtime/mheap.go), which answers nil for pages that no live span
    /// covers.
    pub fn span_of(&self, addr: u64) -> Option<&Span> {
        self.spans
            .range(..=addr)
            .next_back()
            .map(|(_, s)| s)
            .filter(|s| s.contains(addr))
    }

    /// Mutable access to the span starting at `base`.
    pub fn span_mut(&mut self, base: u64) -> Option<&mut Span> {
        self.spans.get_mut(&base)
    }

    /// Takes `npages` pages of ordinary heap memory (an `mSpanInUse` span).
    pub fn alloc_heap(&mut self, npages: u64) -> Result<u64, Throw> {
        if npages == 0 {
            return Err(Misuse::ZeroPages.into());
        }
        self.alloc_span(npages, SpanState::InUse)
            .ok_or_else(|| GoThrow::OutOfMemory.into())
    }

    /// Returns a heap span taken with [`PageHeap::alloc_heap`].
    pub fn free_heap(&mut self, base: u64) -> Result<(), Throw> {
        match self.spans.get(&base) {
            Some(s) if s.state == SpanState::InUse => {
                self.free_span(base);
                Ok(())
            }
            _ => Err(Misuse::NotAHeapSpan(base).into()),
        }
    }
}
