//! The stack allocator over real memory: Go's `stackpool`, per-P
//! `stackcache`, `stackLarge` and GC-deferred span freeing
//! (runtime/stack.go), with the spec's policies to the byte.
//!
//! # Data structures
//! - **Span table.** Two flat tables indexed by arena page, in zeroed
//!   memory that the kernel commits only where the heap is in use
//!   ([`crate::os::ZeroedWords`]): for every page the base page of the span
//!   that covers it (`spanOf` in O(1): one load), and a record of seven
//!   words at each span's base page (`mspan`). A span's `tag` packs its
//!   kind (pool, large, heap), log2 of its element size and a bit per slot
//!   that is handed out, so checking a free (right span, right size, right
//!   slot, in use) and clearing the bit is one compare-and-swap. 64 bytes of
//!   table per 8 KiB page: 0.78% of the bytes in use.
//! - **Free lists are intrusive**, as Go's `gclinkptr`: a free stack's first
//!   word holds the address of the next free stack (0 ends the list). Span
//!   free lists (`manualFreeList`) and P caches both use them, so a cache
//!   pop or push is a load or store of one word.
//! - **Pool and stackLarge lists** are doubly linked through the span
//!   records (`mSpanList`): insert at the front and removal are O(1).
//! - **Page heap**: [`crate::heap::FreePages`], a bitmap with per-chunk
//!   summaries, under the heap lock.
//!
//! # Locks (Go's structure)
//! One lock per pool order (`stackpool[order].item.mu`), one for stackLarge
//! (`stackLarge.lock`), one for the heap (`mheap_.lock`), and `gcphase` as
//! an atomic; per-P caches need no lock because a [`P`] is owned (`&mut P`).
//! Lock order: GC state, then pools by order, then stackLarge, then heap.
//!
//! Two changes from Go's order, because here the GC phase changes while
//! other threads free stacks (Go changes it with the world stopped):
//! `stackfree` of a large stack reads the phase under the stackLarge lock,
//! and `gc_start` waits for every pool and the stackLarge lock after
//! setting `_GCmark`, so no free that saw `_GCoff` is still returning a span
//! to the heap when a marker starts reading (models/tests/loom_gc.rs).
//!
//! # Debug modes
//! [`DebugOptions`] (Go's `stackFromSystem` and `stackFaultOnFree`) and the
//! spec's `Config::no_cache` (`stackNoCache`); [`Stacks::with_debug`].
//!
//! # Mutants
//! `cfg(gostack_mutant = "...")` re-injects a bug for the harness to catch
//! (ci/loom.sh): `pool_span_freed_during_gc` (golang/go#11267),
//! `cache_release_quarter`, `order_loop_ge`, `large_free_during_gc_to_heap`,
//! `refill_unlocked_read`.
//!
//! # Failure changes nothing
//! Every operation validates before it mutates: a cache refill that needs a
//! new span takes it from the heap before touching the pool, so "out of
//! memory" leaves everything as it was; a free first proves, with the
//! compare-and-swap on the span's tag, that the bounds are a stack in use.

use crate::heap::{FreePages, CHUNK_PAGES};
use crate::os::{Arena, ZeroedWords};
use crate::sync::{lock, AtomicBool, AtomicU32, AtomicU8, Mutex};
use crate::sysalloc::{SystemStacks, SystemStats};
use gostack_spec::heap::{SpanState, PAGE_SIZE};
use gostack_spec::snapshot::{CacheSnap, SpanSnap};
use gostack_spec::stack::stacklog2;
use gostack_spec::{Config, Consts, GcPhase, GoThrow, Misuse, Snapshot, Stack, Stats, Throw};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::marker::PhantomData;
// The span table lives in plain zeroed memory shared by all threads: its
// words are std atomics even in a loom build (loom cannot model a table of
// millions of words; the locks and the GC phase, which order every access
// to it, are loom's).
use std::sync::atomic::{AtomicU64, Ordering};

const KIND_SHIFT: u32 = 62;
const LOG_SHIFT: u32 = 56;
const BITS: u64 = (1 << LOG_SHIFT) - 1;
const KIND_POOL: u64 = 1;
const KIND_LARGE: u64 = 2;
const KIND_HEAP: u64 = 3;

fn tag(kind: u64, elemsize: u64) -> u64 {
    let log = if elemsize == 0 {
        0
    } else {
        u64::from(elemsize.trailing_zeros())
    };
    kind << KIND_SHIFT | log << LOG_SHIFT
}

fn tag_kind(t: u64) -> u64 {
    t >> KIND_SHIFT
}

fn tag_elemsize(t: u64) -> u64 {
    if tag_kind(t) == KIND_HEAP {
        0
    } else {
        1 << ((t >> LOG_SHIFT) & 63)
    }
}

/// Words per span record in the span table.
const META_WORDS: usize = 7;

/// A span's record, at its base page (`mspan`): a view of its words in the
/// span table. Each word is written under the lock named.
struct SpanMeta<'a> {
    /// Kind, log2 elemsize and in-use slot bits (heap lock to create and
    /// destroy; slot bits by compare-and-swap).
    tag: &'a AtomicU64,
    /// Pages (heap lock).
    npages: &'a AtomicU64,
    /// `allocCount` (pool lock).
    alloc_count: &'a AtomicU64,
    /// Stacks on the free list (pool lock).
    nfree: &'a AtomicU64,
    /// Pool or stackLarge list links: base page + 1, 0 for none (pool or
    /// stackLarge lock).
    next: &'a AtomicU64,
    prev: &'a AtomicU64,
    /// `manualFreeList`: the first free stack's address, 0 when none (pool
    /// lock).
    free_head: &'a AtomicU64,
}

impl<'a> SpanMeta<'a> {
    fn of(w: &'a [AtomicU64; META_WORDS]) -> SpanMeta<'a> {
        let [tag, npages, alloc_count, nfree, next, prev, free_head] = w;
        SpanMeta {
            tag,
            npages,
            alloc_count,
            nfree,
            next,
            prev,
            free_head,
        }
    }
}

static NO_SPAN: [AtomicU64; META_WORDS] = [const { AtomicU64::new(0) }; META_WORDS];

/// What the heap lock protects.
struct Heap {
    free: FreePages,
    stack_inuse: u64,
}

/// One order of the global pool (`stackpool[order]`).
#[derive(Default)]
struct Pool {
    /// First span: base page + 1, or 0.
    head: u64,
    /// Free stacks over all listed spans.
    nfree: u64,
}

/// GC state changed only with this lock held.
#[derive(Default)]
struct Gc {
    markers: BTreeMap<u32, u64>,
    next_marker: u32,
}

/// One order of a P's cache (`stackfreelist`): an intrusive list.
#[derive(Copy, Clone, Default)]
struct CacheList {
    head: u64,
    size: u64,
}

/// A P's stack cache (`mcache.stackcache`). Owned by whoever runs on the P:
/// it can be sent to another thread but not shared, and every operation
/// that uses it takes `&mut P`.
pub struct P {
    id: u32,
    owner: u64,
    caches: Box<[CacheList]>,
    /// Operations started on this P (loom builds: names an operation in
    /// the linearization log, see [`Stacks::linearization`]).
    #[cfg(loom)]
    serial: u64,
    _not_sync: PhantomData<Cell<()>>,
}

impl P {
    /// The P's id (the order in which its [`Stacks`] made it).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Bytes in this P's caches.
    pub fn cached_bytes(&self) -> u64 {
        self.caches.iter().map(|c| c.size).sum()
    }
}

impl std::fmt::Debug for P {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P")
            .field("id", &self.id)
            .field("cached_bytes", &self.cached_bytes())
            .finish()
    }
}

static NEXT_INSTANCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A debug mode of the implementation only: protect freed arena memory.
///
/// Go's own debug modes that change where stacks come from are the
/// spec's configuration and the implementation follows them exactly:
/// [`Config::stack_from_system`] (Go's `stackFromSystem`),
/// [`Config::stack_fault_on_free`] (`stackFaultOnFree`) and
/// `GODEBUG=efence=1` ([`gostack_spec::Godebug::efence`]): every stack is
/// then its own page-rounded range of a region as large as the arena,
/// right above it (reserved in the same mapping), placed where the spec
/// places it ([`gostack_spec::stack::SysStacks`]), and `sysFault`ed when
/// freed in fault mode ([`crate::sysalloc`]). Go ignores
/// `stackFaultOnFree` for arena stacks: free stacks of the pool hold the
/// free-list link in their first word and share 8 KiB spans, so they
/// cannot be protected.
///
/// - `fault_on_free` protects what can be protected in the arena while its
///   policies (and so the snapshots) stay the spec's: every span that goes
///   back to the heap (a pool span whose last stack came back, a large
///   stack, `freeStackSpans`) and every large stack waiting in stackLarge
///   is `sysFault`ed (`mprotect(PROT_NONE)`, then `madvise(DONTNEED)`), and
///   made read/write again when a span is carved from those pages or the
///   large stack is reused. Free stacks in a pool span or a P cache stay
///   accessible (their first word is a link), exactly where Go could not
///   protect them either.
///
/// Each protected range may split a kernel mapping, and the kernel caps
/// their number (`vm.max_map_count`, 65530 by default). At the cap, a
/// protection that fails is not an error: the memory is still given back
/// (`madvise(DONTNEED)`), the free succeeds, and
/// [`Stacks::unprotected_frees`] counts it (such a range reads as zeros
/// instead of faulting). Making pages accessible again can also fail at
/// the cap: the allocation then fails with Go's "out of memory" throw
/// and changes nothing (Go throws on a failing `mmap` as well).
///
/// Touching a protected stack raises `SIGSEGV` (that is the mode's
/// purpose); under Miri, which has no `mprotect`, `fault_on_free` is
/// refused, as are efence and `stack_fault_on_free`.
///
/// ```
/// use gostack::stack::{DebugOptions, Stacks};
/// use gostack_spec::{Config, Profile};
///
/// let mut config = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
/// config.arena_bytes = 4 << 20;
/// // GODEBUG=efence=1: a 2 KiB request gets its own 4 KiB page, right
/// // above the arena, counted in StackSys and not in StackInuse.
/// config.godebug.efence = true;
/// let stacks = Stacks::new(&config).unwrap();
/// let mut p = stacks.new_p();
/// let stk = stacks.stackalloc(Some(&mut p), false, 2048).unwrap();
/// assert_eq!((stk.lo - stacks.base(), stk.hi - stk.lo), (4 << 20, 4096));
/// assert_eq!(stacks.snapshot(&[&p]).stats.stack_sys, 4096);
/// stacks.stackfree(Some(&mut p), false, stk).unwrap();
/// assert!(stacks.stackfree(Some(&mut p), false, stk).is_err());
///
/// // The implementation's own arena protection.
/// config.godebug.efence = false;
/// let debug = DebugOptions { fault_on_free: true };
/// let stacks = Stacks::with_debug(&config, debug).unwrap();
/// let big = stacks.stackalloc(None, false, 64 << 10).unwrap();
/// stacks.stackfree(None, false, big).unwrap(); // its pages are PROT_NONE now
/// ```
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct DebugOptions {
    /// Protect arena spans that go back to the heap or wait in
    /// stackLarge.
    pub fault_on_free: bool,
}

/// The stack system over one arena: shareable between threads (`Sync`);
/// per-P work goes through [`P`] handles.
pub struct Stacks {
    id: u64,
    config: Config,
    consts: Consts,
    arena: Arena,
    arena_pages: u64,
    /// Per arena page: base page of the covering span + 1, or 0
    /// (`mheap.spans`).
    span_of: ZeroedWords,
    /// Per arena page: the record of the span based there
    /// (`META_WORDS` words).
    metas: ZeroedWords,
    heap: Mutex<Heap>,
    pools: Box<[Mutex<Pool>]>,
    large: Mutex<Vec<u64>>,
    gcphase: AtomicU8,
    spans_pending_free: AtomicBool,
    gc: Mutex<Gc>,
    next_p: AtomicU32,
    debug: DebugOptions,
    /// The stacks from the system (`stack_from_system` or efence only).
    system: Option<SystemStacks>,
    /// Protections the kernel refused (`fault_on_free` at the map limit).
    unprotected: AtomicU64,
    /// Loom builds: the order in which operations took a pool lock.
    #[cfg(loom)]
    lin: std::sync::Mutex<Vec<(Option<u32>, u64)>>,
}

/// Who runs an operation, for the linearization log of loom builds: the
/// P's id and the number of operations started on it, or `None` for no
/// P. Nothing in other builds.
#[cfg(loom)]
type Who = (Option<u32>, u64);
#[cfg(not(loom))]
type Who = NoWho;

/// The empty [`Who`] of builds without loom.
#[cfg(not(loom))]
#[derive(Copy, Clone)]
struct NoWho;

fn phase_from(v: u8) -> GcPhase {
    match v {
        1 => GcPhase::Mark,
        2 => GcPhase::MarkTermination,
        _ => GcPhase::Off,
    }
}

fn phase_to(p: GcPhase) -> u8 {
    match p {
        GcPhase::Off => 0,
        GcPhase::Mark => 1,
        GcPhase::MarkTermination => 2,
    }
}

fn wrong_phase(op: &'static str, needs: GcPhase, found: GcPhase) -> Throw {
    Misuse::WrongGcPhase {
        op,
        needs: needs.name(),
        found: found.name(),
    }
    .into()
}

impl Stacks {
    /// A fresh stack system over a newly reserved arena of
    /// `config.arena_bytes` (`stackinit`). The arena's real address is
    /// wherever the OS puts it; `config.arena_base` is only validated, as
    /// the spec validates it, so that both refuse the same configurations.
    pub fn new(config: &Config) -> Result<Stacks, Throw> {
        Stacks::with_debug(config, DebugOptions::default())
    }

    /// The default arena size for `profile` on this host: 64 GiB for a
    /// 64-bit profile on a 64-bit host, room for a million 2 KiB stacks and
    /// several stacks at Go's 1 GB `maxstacksize` (Go's heap arenas reserve
    /// address space the same way); 2 GiB for a 32-bit profile (the arena
    /// must fit below 4 GiB from the spec's 32-bit base); 256 MiB on a
    /// 32-bit host. Reserving costs address space only: the arena is mapped
    /// with `MAP_NORESERVE` and committed page by page on first touch, and
    /// the span tables ([`crate::os::ZeroedWords`]) are lazily committed
    /// mappings too, of which only the entries for the heap's mapped pages
    /// are ever touched (see [`Stacks::metadata_bytes`]).
    pub fn default_arena_bytes(profile: &gostack_spec::Profile) -> u64 {
        if cfg!(target_pointer_width = "64") {
            if profile.goarch.ptr_size() == 8 {
                64 << 30
            } else {
                2 << 30
            }
        } else {
            256 << 20
        }
    }

    /// `Config::new(profile)` with [`Stacks::default_arena_bytes`].
    pub fn default_config(profile: gostack_spec::Profile) -> Config {
        let bytes = Stacks::default_arena_bytes(&profile);
        let mut c = Config::new(profile);
        c.arena_bytes = bytes;
        c
    }

    /// [`Stacks::new`] with Go's debug modes ([`DebugOptions`]). The arena
    /// is reserved in every mode (ordinary heap spans, [`Stacks::heap_alloc`],
    /// still come from it).
    pub fn with_debug(config: &Config, debug: DebugOptions) -> Result<Stacks, Throw> {
        let from_system = config.stack_from_system || config.godebug.efence;
        let sys_fault = from_system && (config.stack_fault_on_free || config.godebug.efence);
        if cfg!(miri) && (debug.fault_on_free || sys_fault) {
            return Err(Misuse::BadArena(
                "fault_on_free, efence and stack_fault_on_free need mprotect, which Miri does not have".into(),
            )
            .into());
        }
        let chunk = CHUNK_PAGES * PAGE_SIZE;
        if config.arena_base % PAGE_SIZE != 0 {
            return Err(Misuse::BadArena(format!(
                "base {:#x} is not page aligned",
                config.arena_base
            ))
            .into());
        }
        if config.arena_bytes == 0 || config.arena_bytes % chunk != 0 {
            return Err(Misuse::BadArena(format!(
                "size {} is not a positive multiple of {chunk}",
                config.arena_bytes
            ))
            .into());
        }
        let ptr_max = if config.profile.goarch.ptr_size() == 8 {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        if config
            .arena_base
            .checked_add(config.arena_bytes)
            .is_none_or(|end| end - 1 > ptr_max)
        {
            return Err(
                Misuse::BadArena("the arena does not fit in the address space".into()).into(),
            );
        }
        if from_system
            && (config.arena_base + config.arena_bytes)
                .checked_add(config.arena_bytes)
                .is_none_or(|end| end - 1 > ptr_max)
        {
            return Err(Misuse::BadArena(
                "the region for stacks from the system (as large as the arena, right above it) does not fit in the address space".into(),
            )
            .into());
        }
        let arena_pages = config.arena_bytes / PAGE_SIZE;
        if arena_pages >= u64::from(u32::MAX) {
            return Err(Misuse::BadArena(format!(
                "size {} is more pages than the span table indexes",
                config.arena_bytes
            ))
            .into());
        }
        let reserve = if from_system {
            2 * config.arena_bytes
        } else {
            config.arena_bytes
        };
        let arena = Arena::sys_reserve(reserve, PAGE_SIZE)
            .map_err(|e| Throw::Misuse(Misuse::BadArena(e.to_string())))?;
        let consts = config.profile.consts();
        let table = |len: u64| {
            usize::try_from(len)
                .ok()
                .and_then(|l| ZeroedWords::new(l).ok())
                .ok_or_else(|| {
                    Throw::Misuse(Misuse::BadArena(format!(
                        "cannot allocate the span table for {arena_pages} pages"
                    )))
                })
        };
        let span_of = table(arena_pages)?;
        let metas = table(arena_pages * META_WORDS as u64)?;
        let system = from_system
            .then(|| SystemStacks::new(&arena, config.arena_bytes, config.arena_bytes, sys_fault));
        Ok(Stacks {
            debug,
            system,
            unprotected: AtomicU64::new(0),
            #[cfg(loom)]
            lin: std::sync::Mutex::new(Vec::new()),
            id: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
            pools: (0..consts.num_stack_orders)
                .map(|_| Mutex::new(Pool::default()))
                .collect(),
            span_of,
            metas,
            heap: Mutex::new(Heap {
                free: FreePages::default(),
                stack_inuse: 0,
            }),
            large: Mutex::new(vec![0; 64]),
            gcphase: AtomicU8::new(0),
            spans_pending_free: AtomicBool::new(false),
            gc: Mutex::new(Gc::default()),
            next_p: AtomicU32::new(0),
            arena,
            arena_pages,
            consts,
            config: config.clone(),
        })
    }

    /// The address of the arena's first byte; snapshots report addresses
    /// as offsets from it.
    pub fn base(&self) -> u64 {
        self.arena.base()
    }

    /// The profile's constants.
    pub fn consts(&self) -> &Consts {
        &self.consts
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The arena (for the debug modes and tests).
    pub fn arena(&self) -> &Arena {
        &self.arena
    }

    /// The debug modes this allocator runs with.
    pub fn debug(&self) -> DebugOptions {
        self.debug
    }

    /// The counts of stacks from the system (`stack_from_system` or
    /// efence only).
    pub fn system_stats(&self) -> Option<SystemStats> {
        self.system.as_ref().map(SystemStacks::stats)
    }

    /// Whether `addr` is in the region of stacks from the system but in
    /// none that is live (free, or faulted: touching it would raise
    /// `SIGSEGV`). Always `false` without stacks from the system.
    pub fn in_dead_system_range(&self, addr: u64) -> bool {
        self.system.as_ref().is_some_and(|s| s.is_dead(addr))
    }

    /// Whether stacks come from the system (`stack_from_system` or efence)
    /// instead of the pools and the heap.
    pub fn from_system(&self) -> bool {
        self.system.is_some()
    }

    /// `fault_on_free`: frees whose pages the kernel would not protect
    /// (the `vm.max_map_count` limit, see [`DebugOptions`]), in the arena
    /// and among the stacks from the system.
    pub fn unprotected_frees(&self) -> u64 {
        self.unprotected.load(Ordering::Relaxed) + self.system_stats().map_or(0, |s| s.unprotected)
    }

    /// Reads the word at `addr` of a stack (in the arena or, with stacks
    /// from the system, in their region above it). `None` if `addr` is not
    /// an aligned word of either. Touching a protected stack raises
    /// `SIGSEGV`.
    pub fn load_word(&self, addr: u64) -> Option<u64> {
        self.arena.load_word(addr)
    }

    /// Writes the word at `addr` of a stack (see [`Stacks::load_word`]);
    /// `false` if `addr` is not an aligned word of the arena or the region.
    pub fn store_word(&self, addr: u64, v: u64) -> bool {
        self.arena.store_word(addr, v)
    }

    /// Bytes of allocator metadata committed for the heap in use: an upper
    /// bound of the memory the allocator's bookkeeping costs besides the
    /// stacks themselves. It counts
    /// - the span tables ([`crate::os::ZeroedWords`], lazily committed
    ///   mappings): `spanOf` (8 bytes per page) and the span records (56
    ///   bytes per page) for every page the heap has mapped, rounded up to
    ///   whole OS pages, since the heap touches no entry beyond its mapped
    ///   pages and the kernel commits a table page when an entry in it is
    ///   first touched;
    /// - the page heap's bitmap and chunk summaries (their capacity);
    /// - the pool, stackLarge, heap and GC locks and lists, and the
    ///   `Stacks` value itself;
    /// - pending GC markers (48 bytes each, a bound on a B-tree entry);
    /// - with stacks from the system, the record of every live stack and
    ///   free range of their region (64 bytes each, a bound on a B-tree
    ///   entry).
    ///
    /// It does not count the P handles ([`P`], 16 bytes per order, owned by
    /// the caller), the free-list links (they live in the free stacks), or
    /// the allocator's code and statics. With every page mapped full of
    /// live stacks it is 64 bytes per 8 KiB page, 0.78% of the stack bytes.
    pub fn metadata_bytes(&self) -> u64 {
        const OS_PAGE: u64 = 4096;
        let (mapped, heap) = {
            let h = lock(&self.heap);
            (h.free.pages(), h.free.metadata_bytes())
        };
        let table = |words_per_page: u64| {
            let len = mapped * words_per_page * 8;
            len.div_ceil(OS_PAGE) * OS_PAGE
        };
        let markers = lock(&self.gc).markers.len() as u64 * 48;
        let system = self.system.as_ref().map_or(0, SystemStacks::metadata_bytes);
        let fixed = std::mem::size_of::<Stacks>()
            + self.pools.len() * std::mem::size_of::<Mutex<Pool>>()
            + lock(&self.large).capacity() * std::mem::size_of::<u64>();
        table(1) + table(META_WORDS as u64) + heap + markers + system + fixed as u64
    }

    /// `gcphase`.
    #[inline]
    pub fn gcphase(&self) -> GcPhase {
        phase_from(self.gcphase.load(Ordering::Acquire))
    }

    /// The order serving size `n`, or `None` for the large path (the test
    /// at the top of `stackalloc`/`stackfree`).
    #[inline]
    pub fn order_of(&self, n: u64) -> Option<usize> {
        let fixed = self.consts.fixed_stack;
        if n < fixed << self.consts.num_stack_orders && n < self.consts.stack_cache_size {
            let mut order = 0;
            let mut n2 = n;
            #[cfg(not(gostack_mutant = "order_loop_ge"))]
            while n2 > fixed {
                order += 1;
                n2 >>= 1;
            }
            // Mutant: the order loop compares with >=.
            #[cfg(gostack_mutant = "order_loop_ge")]
            while n2 >= fixed {
                order += 1;
                n2 >>= 1;
            }
            Some(order)
        } else {
            None
        }
    }

    /// Creates a P with empty caches (`allocmcache`).
    pub fn new_p(&self) -> P {
        P {
            id: self.next_p.fetch_add(1, Ordering::Relaxed),
            owner: self.id,
            caches: vec![CacheList::default(); self.pools.len()].into_boxed_slice(),
            #[cfg(loom)]
            serial: 0,
            _not_sync: PhantomData,
        }
    }

    /// Names the operation starting now on `p` (loom builds only): every
    /// `stackalloc`, `stackfree` and `stackcache_clear` call counts, even
    /// one that fails.
    #[inline]
    fn who(p: &mut Option<&mut P>) -> Who {
        #[cfg(loom)]
        {
            match p {
                Some(p) => {
                    p.serial += 1;
                    (Some(p.id), p.serial)
                }
                None => (None, 0),
            }
        }
        #[cfg(not(loom))]
        {
            let _ = p;
            NoWho
        }
    }

    /// Records that operation `who` holds a pool lock now (loom builds:
    /// the order in which operations touched the shared pool is the order
    /// in which a sequential spec must apply them).
    #[inline]
    fn log(&self, who: Who) {
        #[cfg(loom)]
        self.lin.lock().unwrap_or_else(|e| e.into_inner()).push(who);
        #[cfg(not(loom))]
        let NoWho = who;
    }

    /// Loom builds: the linearization log, one entry per pool-lock
    /// acquisition by `stackalloc`, `stackfree` or `stackcache_clear`, in
    /// the order they happened: `(Some(p), k)` is the `k`-th operation
    /// started on P `p` (counting from one), `(None, 0)` an operation
    /// without a P. Operations that touch only their P's cache take no pool lock and are
    /// not listed: they commute with every other thread's operations.
    #[cfg(loom)]
    pub fn linearization(&self) -> Vec<(Option<u32>, u64)> {
        self.lin.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    #[inline]
    fn own(&self, p: &P) -> Result<(), Throw> {
        if p.owner == self.id {
            Ok(())
        } else {
            Err(Misuse::NoSuchP(p.id).into())
        }
    }

    // ---- span table -------------------------------------------------------

    #[inline]
    fn addr(&self, page: u64) -> u64 {
        self.base() + page * PAGE_SIZE
    }

    /// Base page of the live span covering `addr` (`spanOf`).
    #[inline]
    fn span_page(&self, addr: u64) -> Option<u64> {
        let off = addr.checked_sub(self.base())?;
        let page = usize::try_from(off / PAGE_SIZE).ok()?;
        match self.span_of.words().get(page)?.load(Ordering::Acquire) {
            0 => None,
            e => Some(e - 1),
        }
    }

    #[inline]
    fn meta(&self, page: u64) -> SpanMeta<'_> {
        let w = usize::try_from(page)
            .ok()
            .and_then(|p| p.checked_mul(META_WORDS))
            .and_then(|i| self.metas.words().get(i..i + META_WORDS))
            .and_then(|s| <&[AtomicU64; META_WORDS]>::try_from(s).ok());
        debug_assert!(w.is_some(), "span record of page {page} missing");
        SpanMeta::of(w.unwrap_or(&NO_SPAN))
    }

    /// The kind of the span covering `addr`, as the spec's `SpanState`.
    fn state_of(&self, addr: u64) -> Option<SpanState> {
        let page = self.span_page(addr)?;
        match tag_kind(self.meta(page).tag.load(Ordering::Acquire)) {
            KIND_POOL | KIND_LARGE => Some(SpanState::Manual),
            KIND_HEAP => Some(SpanState::InUse),
            _ => None,
        }
    }

    #[inline]
    fn load(&self, addr: u64) -> u64 {
        let v = self.arena.load_word(addr);
        debug_assert!(v.is_some(), "link word at {addr:#x} outside the arena");
        v.unwrap_or(0)
    }

    #[inline]
    fn store(&self, addr: u64, v: u64) {
        let ok = self.arena.store_word(addr, v);
        debug_assert!(ok, "link word at {addr:#x} outside the arena");
    }

    // ---- the page heap ----------------------------------------------------

    /// Takes `npages` for a span: first fit, growing by 512-page chunks
    /// (`mheap.allocSpan`, `mheap.grow`). Returns the base page.
    fn alloc_span(&self, npages: u64, kind: u64, elemsize: u64) -> Result<u64, Throw> {
        let oom = || Throw::Go(GoThrow::OutOfMemory);
        if npages == 0 || npages > self.arena_pages {
            return Err(oom());
        }
        let mut h = lock(&self.heap);
        let mapped_before = h.free.pages();
        let page = match h.free.find(npages) {
            Some(p) => p,
            None => {
                let ask = npages.div_ceil(CHUNK_PAGES) * CHUNK_PAGES;
                let mapped = h.free.pages();
                if ask > self.arena_pages - mapped {
                    return Err(oom());
                }
                // Go: sysMap of the new chunks (bookkeeping on Linux).
                let _ = self.arena.sys_map(mapped * PAGE_SIZE, ask * PAGE_SIZE);
                h.free.grow(ask / CHUNK_PAGES);
                h.free.find(npages).ok_or_else(oom)?
            }
        };
        // fault_on_free: pages that were mapped before may have been
        // protected when a stack span went back to the heap; make them
        // accessible before anything is written to them. Failing (the map
        // count limit) changes nothing: undo the growth, report OOM.
        if self.debug.fault_on_free && page < mapped_before {
            let end = (page + npages).min(mapped_before);
            if self
                .arena
                .sys_fault(page * PAGE_SIZE, (end - page) * PAGE_SIZE, true)
                .is_err()
            {
                let grown = (h.free.pages() - mapped_before) / CHUNK_PAGES;
                h.free.shrink(grown);
                return Err(oom());
            }
        }
        h.free.set(page, npages, false);
        let _ = self.arena.sys_used(page * PAGE_SIZE, npages * PAGE_SIZE);
        let m = self.meta(page);
        m.npages.store(npages, Ordering::Relaxed);
        m.alloc_count.store(0, Ordering::Relaxed);
        m.nfree.store(0, Ordering::Relaxed);
        m.next.store(0, Ordering::Relaxed);
        m.prev.store(0, Ordering::Relaxed);
        m.free_head.store(0, Ordering::Relaxed);
        m.tag.store(tag(kind, elemsize), Ordering::Release);
        for w in &self.span_of.words()[page as usize..(page + npages) as usize] {
            w.store(page + 1, Ordering::Release);
        }
        if kind != KIND_HEAP {
            h.stack_inuse += npages * PAGE_SIZE;
        }
        Ok(page)
    }

    /// Returns a span's pages to the heap and their memory to the OS
    /// (`mheap.freeManual` / `freeSpan`, then `sysUnused`).
    fn free_span(&self, page: u64) {
        let mut h = lock(&self.heap);
        let m = self.meta(page);
        let npages = m.npages.load(Ordering::Relaxed);
        let kind = tag_kind(m.tag.swap(0, Ordering::AcqRel));
        for w in &self.span_of.words()[page as usize..(page + npages) as usize] {
            w.store(0, Ordering::Release);
        }
        if kind != KIND_HEAP {
            h.stack_inuse -= npages * PAGE_SIZE;
        }
        h.free.set(page, npages, true);
        if self.debug.fault_on_free && kind != KIND_HEAP {
            self.fault(page, npages);
        }
        let _ = self.arena.sys_unused(page * PAGE_SIZE, npages * PAGE_SIZE);
    }

    /// fault_on_free: makes a freed stack span's pages inaccessible
    /// (`sysFault`); when the kernel refuses (the map count limit), counts
    /// it and leaves them accessible.
    fn fault(&self, page: u64, npages: u64) {
        if self
            .arena
            .sys_fault(page * PAGE_SIZE, npages * PAGE_SIZE, false)
            .is_err()
        {
            self.unprotected.fetch_add(1, Ordering::Relaxed);
        }
    }

    // ---- span lists (mSpanList) -------------------------------------------

    fn push_front(&self, head: &mut u64, page: u64) {
        let m = self.meta(page);
        m.prev.store(0, Ordering::Relaxed);
        m.next.store(*head, Ordering::Relaxed);
        if *head != 0 {
            self.meta((*head) - 1)
                .prev
                .store(page + 1, Ordering::Relaxed);
        }
        *head = page + 1;
    }

    fn unlink(&self, head: &mut u64, page: u64) {
        let m = self.meta(page);
        let (prev, next) = (
            m.prev.load(Ordering::Relaxed),
            m.next.load(Ordering::Relaxed),
        );
        if prev != 0 {
            self.meta(prev - 1).next.store(next, Ordering::Relaxed);
        } else {
            *head = next;
        }
        if next != 0 {
            self.meta(next - 1).prev.store(prev, Ordering::Relaxed);
        }
        m.next.store(0, Ordering::Relaxed);
        m.prev.store(0, Ordering::Relaxed);
    }

    fn list(&self, head: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut e = head;
        while e != 0 && (out.len() as u64) < self.arena_pages {
            let page = e - 1;
            out.push(page);
            e = self.meta(page).next.load(Ordering::Relaxed);
        }
        out
    }

    // ---- in-use slots -----------------------------------------------------

    /// Marks stack `x` of size `n` handed out.
    #[inline]
    fn set_in_use(&self, x: u64, n: u64) {
        if let Some(page) = self.span_page(x) {
            // n is a power of two: a shift, not a division.
            let slot = (x - self.addr(page)) >> n.trailing_zeros();
            self.meta(page)
                .tag
                .fetch_or(1 << slot.min(LOG_SHIFT as u64 - 1), Ordering::AcqRel);
        }
    }

    /// If `[lo, lo+n)` is a stack in use, marks it not in use and returns
    /// true: one compare-and-swap that checks the span's kind and size and
    /// the slot's bit together.
    #[inline]
    fn take_in_use(&self, lo: u64, n: u64) -> bool {
        if !n.is_power_of_two() {
            return false;
        }
        let Some(page) = self.span_page(lo) else {
            return false;
        };
        let off = lo - self.addr(page);
        let m = self.meta(page);
        let mut t = m.tag.load(Ordering::Acquire);
        loop {
            if tag_elemsize(t) != n {
                return false;
            }
            let bit = match tag_kind(t) {
                KIND_POOL
                    if off & (n - 1) == 0 && off >> n.trailing_zeros() < u64::from(LOG_SHIFT) =>
                {
                    1 << (off >> n.trailing_zeros())
                }
                KIND_LARGE if off == 0 => 1,
                _ => return false,
            };
            if t & bit == 0 {
                return false;
            }
            match m
                .tag
                .compare_exchange_weak(t, t & !bit, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => t = now,
            }
        }
    }

    // ---- the pool ---------------------------------------------------------

    #[inline]
    fn elemsize(&self, order: usize) -> u64 {
        self.consts.fixed_stack << order
    }

    fn pool_span_pages(&self) -> u64 {
        self.consts.stack_cache_size / PAGE_SIZE
    }

    /// Go: `stackpoolalloc`. Takes a stack from the first span of the
    /// pool; with the pool empty, uses `reserved` (a span already taken from
    /// the heap) or takes a new span, whose free list is built from the low
    /// address up so the highest stack is the head.
    fn stackpoolalloc(
        &self,
        pool: &mut Pool,
        order: usize,
        reserved: &mut Option<u64>,
    ) -> Result<u64, Throw> {
        let elemsize = self.elemsize(order);
        let page = if pool.head != 0 {
            pool.head - 1
        } else {
            let page = match reserved.take() {
                Some(p) => p,
                None => self.alloc_span(self.pool_span_pages(), KIND_POOL, elemsize)?,
            };
            let base = self.addr(page);
            let mut head = 0;
            let mut n = 0;
            for i in (0..self.consts.stack_cache_size).step_by(elemsize as usize) {
                self.store(base + i, head);
                head = base + i;
                n += 1;
            }
            let m = self.meta(page);
            m.free_head.store(head, Ordering::Relaxed);
            m.nfree.store(n, Ordering::Relaxed);
            pool.nfree += n;
            self.push_front(&mut pool.head, page);
            page
        };
        let m = self.meta(page);
        let x = m.free_head.load(Ordering::Relaxed);
        m.free_head.store(self.load(x), Ordering::Relaxed);
        let nfree = m.nfree.load(Ordering::Relaxed).saturating_sub(1);
        m.nfree.store(nfree, Ordering::Relaxed);
        m.alloc_count.fetch_add(1, Ordering::Relaxed);
        pool.nfree = pool.nfree.saturating_sub(1);
        if nfree == 0 {
            // Every stack of the span is out: it leaves the list.
            self.unlink(&mut pool.head, page);
        }
        Ok(x)
    }

    /// Go: `stackpoolfree`. Pushes `x` on its span's free list; a span that
    /// had none goes to the front of the pool; a span with nothing out goes
    /// back to the heap unless the GC runs.
    fn stackpoolfree(&self, pool: &mut Pool, x: u64) {
        let Some(page) = self.span_page(x) else {
            debug_assert!(false, "stackpoolfree of {x:#x} outside every span");
            return;
        };
        let m = self.meta(page);
        let nfree = m.nfree.load(Ordering::Relaxed);
        self.store(x, m.free_head.load(Ordering::Relaxed));
        m.free_head.store(x, Ordering::Relaxed);
        m.nfree.store(nfree + 1, Ordering::Relaxed);
        let count = m.alloc_count.load(Ordering::Relaxed).saturating_sub(1);
        m.alloc_count.store(count, Ordering::Relaxed);
        pool.nfree += 1;
        if nfree == 0 {
            self.push_front(&mut pool.head, page);
        }
        #[cfg(not(gostack_mutant = "pool_span_freed_during_gc"))]
        let give_back = count == 0 && self.gcphase() == GcPhase::Off;
        // Mutant (golang/go#11267): an empty span goes back to the heap even
        // while the GC runs.
        #[cfg(gostack_mutant = "pool_span_freed_during_gc")]
        let give_back = count == 0;
        if give_back {
            self.unlink(&mut pool.head, page);
            pool.nfree -= nfree + 1;
            self.free_span(page);
        }
    }

    /// Go: `stackcacherefill`: half of `_StackCacheSize` from the pool, the
    /// last taken at the head. A new span it will need is taken first, so
    /// running out of memory changes nothing.
    fn stackcacherefill(&self, c: &mut CacheList, order: usize, who: Who) -> Result<(), Throw> {
        let elemsize = self.elemsize(order);
        let want = (self.consts.stack_cache_size / 2).div_ceil(elemsize);
        #[cfg_attr(gostack_mutant = "refill_unlocked_read", allow(unused_mut))]
        let mut pool = lock(&self.pools[order]);
        self.log(who);
        let mut reserved = None;
        if pool.nfree < want {
            reserved = Some(self.alloc_span(self.pool_span_pages(), KIND_POOL, elemsize)?);
        }
        let mut head = 0;
        #[cfg(not(gostack_mutant = "refill_unlocked_read"))]
        for _ in 0..want {
            let x = self.stackpoolalloc(&mut pool, order, &mut reserved)?;
            self.store(x, head);
            head = x;
        }
        // Mutant: each stack is read from the pool under the lock, the lock
        // is dropped, and the pool is popped under the lock taken again
        // (a check-then-act race with every other pool user).
        #[cfg(gostack_mutant = "refill_unlocked_read")]
        {
            drop(pool);
            for _ in 0..want {
                let seen = {
                    let pool = lock(&self.pools[order]);
                    match pool.head {
                        0 => None,
                        h => Some(self.meta(h - 1).free_head.load(Ordering::Relaxed)),
                    }
                };
                let mut pool = lock(&self.pools[order]);
                let y = self.stackpoolalloc(&mut pool, order, &mut reserved)?;
                let x = seen.unwrap_or(y);
                self.store(x, head);
                head = x;
            }
        }
        c.head = head;
        c.size = want * elemsize;
        Ok(())
    }

    /// Go: `stackcacherelease`: from the head to the pool until half is
    /// left.
    fn stackcacherelease(&self, c: &mut CacheList, order: usize, who: Who) {
        let elemsize = self.elemsize(order);
        #[cfg(not(gostack_mutant = "cache_release_quarter"))]
        let half = self.consts.stack_cache_size / 2;
        // Mutant: the cache is released down to a quarter.
        #[cfg(gostack_mutant = "cache_release_quarter")]
        let half = self.consts.stack_cache_size / 4;
        let mut pool = lock(&self.pools[order]);
        self.log(who);
        while c.size > half && c.head != 0 {
            let x = c.head;
            c.head = self.load(x);
            self.stackpoolfree(&mut pool, x);
            c.size -= elemsize;
        }
    }

    /// Go: `stackcache_clear`: every cached stack back to the pool, order by
    /// order, head first (`freemcache`, `mcache.prepareForSweep`).
    pub fn stackcache_clear(&self, p: &mut P) -> Result<(), Throw> {
        let who = Self::who(&mut Some(&mut *p));
        self.own(p)?;
        for (order, c) in p.caches.iter_mut().enumerate() {
            let mut pool = lock(&self.pools[order]);
            self.log(who);
            let mut x = c.head;
            while x != 0 {
                let next = self.load(x);
                self.stackpoolfree(&mut pool, x);
                x = next;
            }
            *c = CacheList::default();
        }
        Ok(())
    }

    /// The checks `stackalloc` makes of a size before anything else.
    #[inline]
    pub fn check_size(&self, n: u64) -> Result<(), Throw> {
        if n > u64::from(u32::MAX) {
            return Err(Misuse::StackTooLarge(n).into());
        }
        if n & n.wrapping_sub(1) != 0 {
            return Err(GoThrow::StackSizeNotPowerOf2.into());
        }
        if n == 0 {
            return Err(Misuse::ZeroSizeStack.into());
        }
        if n < self.consts.fixed_stack {
            return Err(Misuse::StackTooSmall {
                n,
                fixed_stack: self.consts.fixed_stack,
            }
            .into());
        }
        Ok(())
    }

    /// Allocates a stack of `n` bytes (Go: `stackalloc`). `p` is the P the
    /// caller runs on, if any; `preemptoff` is `m.preemptoff != ""`. Small
    /// sizes come from `p`'s cache (refilled from the pool when empty) or,
    /// with no P, preemptoff or stackNoCache, straight from the pool; large
    /// sizes from stackLarge or the heap.
    pub fn stackalloc(
        &self,
        mut p: Option<&mut P>,
        preemptoff: bool,
        n: u64,
    ) -> Result<Stack, Throw> {
        let who = Self::who(&mut p);
        self.check_size(n)?;
        if let Some(p) = &p {
            self.own(p)?;
        }
        if let Some(sys) = &self.system {
            // Go: the stackFromSystem branch of stackalloc: sysAlloc of the
            // size rounded up to the OS page.
            let oom = || Throw::Go(GoThrow::OutOfMemoryStackalloc);
            let len = SystemStacks::round(n).ok_or_else(oom)?;
            let lo = sys.alloc(len).ok_or_else(oom)?;
            return Ok(Stack { lo, hi: lo + len });
        }
        let x = match self.order_of(n) {
            Some(order) => match p {
                Some(p) if !self.config.no_cache && !preemptoff => {
                    let c = &mut p.caches[order];
                    if c.head == 0 {
                        self.stackcacherefill(c, order, who)?;
                    }
                    let x = c.head;
                    c.head = self.load(x);
                    c.size -= n;
                    x
                }
                _ => {
                    let mut pool = lock(&self.pools[order]);
                    self.log(who);
                    self.stackpoolalloc(&mut pool, order, &mut None)?
                }
            },
            None => {
                let npage = n / PAGE_SIZE;
                let class = stacklog2(npage) as usize;
                let reused = {
                    let mut large = lock(&self.large);
                    let head = large[class];
                    if head != 0 {
                        let page = head - 1;
                        // fault_on_free: the span was protected when it was
                        // freed; failing to unprotect changes nothing.
                        if self.debug.fault_on_free
                            && self
                                .arena
                                .sys_fault(
                                    page * PAGE_SIZE,
                                    self.meta(page).npages.load(Ordering::Relaxed) * PAGE_SIZE,
                                    true,
                                )
                                .is_err()
                        {
                            return Err(GoThrow::OutOfMemory.into());
                        }
                        self.unlink(&mut large[class], page);
                        Some(page)
                    } else {
                        None
                    }
                };
                let page = match reused {
                    Some(page) => page,
                    None => self.alloc_span(npage, KIND_LARGE, n)?,
                };
                self.addr(page)
            }
        };
        self.set_in_use(x, n);
        Ok(Stack { lo: x, hi: x + n })
    }

    /// Frees a stack that [`Stacks::stackalloc`] returned (Go: `stackfree`).
    /// Bounds that are not a stack in use are refused with the spec's throw
    /// and change nothing.
    pub fn stackfree(
        &self,
        mut p: Option<&mut P>,
        preemptoff: bool,
        stk: Stack,
    ) -> Result<(), Throw> {
        let who = Self::who(&mut p);
        let n = stk.hi.wrapping_sub(stk.lo);
        if n & n.wrapping_sub(1) != 0 {
            return Err(GoThrow::StackNotPowerOf2.into());
        }
        if let Some(p) = &p {
            self.own(p)?;
        }
        if let Some(sys) = &self.system {
            // Go: the stackFromSystem branch of stackfree: sysFree, or
            // sysFault with stackFaultOnFree; refused unless live.
            return sys.free(&self.arena, stk.lo, n).map_err(|_| {
                Misuse::NotAStack {
                    lo: stk.lo,
                    hi: stk.hi,
                }
                .into()
            });
        }
        let order = self.order_of(n);
        let direct = p.is_none() || preemptoff || self.config.no_cache;
        if !self.take_in_use(stk.lo, n) {
            return Err(self.bad_free(stk, order.is_some(), direct));
        }
        let v = stk.lo;
        match order {
            Some(order) => match p {
                Some(p) if !direct => {
                    let c = &mut p.caches[order];
                    if c.size >= self.consts.stack_cache_size {
                        self.stackcacherelease(c, order, who);
                    }
                    self.store(v, c.head);
                    c.head = v;
                    c.size += n;
                }
                _ => {
                    let mut pool = lock(&self.pools[order]);
                    self.log(who);
                    self.stackpoolfree(&mut pool, v);
                }
            },
            None => {
                let Some(page) = self.span_page(v) else {
                    return Ok(());
                };
                // The phase is read, and the span freed or listed, under
                // the stackLarge lock. Go reads gcphase before taking the
                // lock, which is safe there only because the phase changes
                // with the world stopped; here `gc_off` and
                // `free_stack_spans` run concurrently with frees, and a
                // free that read _GCmark and listed the span after
                // freeStackSpans emptied stackLarge would leave it there
                // past the cycle (found by models/tests/loom_gc.rs).
                let mut large = lock(&self.large);
                #[cfg(not(gostack_mutant = "large_free_during_gc_to_heap"))]
                let now = self.gcphase() == GcPhase::Off;
                // Mutant: a large stack freed during the GC goes straight
                // back to the heap instead of stackLarge.
                #[cfg(gostack_mutant = "large_free_during_gc_to_heap")]
                let now = true;
                if now {
                    self.free_span(page);
                } else {
                    let npages = self.meta(page).npages.load(Ordering::Relaxed);
                    if self.debug.fault_on_free {
                        self.fault(page, npages);
                    }
                    let class = stacklog2(npages) as usize;
                    self.push_front(&mut large[class], page);
                }
            }
        }
        Ok(())
    }

    /// What freeing `stk`, which is not a stack in use, runs into (the
    /// spec's `State::bad_free`, runtime/stack.go `stackfree` and
    /// `stackpoolfree`): Go's throw where Go's span checks fire, `NotAStack`
    /// where Go would corrupt its lists. Only the refused path pays for it.
    fn bad_free(&self, stk: Stack, small: bool, direct: bool) -> Throw {
        let in_arena = stk
            .lo
            .checked_sub(self.base())
            .is_some_and(|off| off / PAGE_SIZE < self.arena_pages);
        let state = self.state_of(stk.lo);
        let manual = !in_arena || state == Some(SpanState::Manual);
        let on_stack_large = state == Some(SpanState::Manual)
            && self.span_page(stk.lo).is_some_and(|page| {
                let large = lock(&self.large);
                large.iter().any(|&h| self.list(h).contains(&page))
            });
        if small && direct && !manual {
            GoThrow::FreeingStackNotInStackSpan.into()
        } else if small && direct && on_stack_large {
            GoThrow::MSpanListInsert.into()
        } else if !small && !manual {
            GoThrow::BadSpanState.into()
        } else if !small && on_stack_large && self.gcphase() != GcPhase::Off {
            GoThrow::MSpanListInsert.into()
        } else {
            Misuse::NotAStack {
                lo: stk.lo,
                hi: stk.hi,
            }
            .into()
        }
    }

    // ---- ordinary heap memory ----------------------------------------------

    /// Takes `npages` of ordinary heap memory (an `mSpanInUse` span), as a
    /// program's objects fragment the heap. Returns its address.
    pub fn heap_alloc(&self, npages: u64) -> Result<u64, Throw> {
        if npages == 0 {
            return Err(Misuse::ZeroPages.into());
        }
        Ok(self.addr(self.alloc_span(npages, KIND_HEAP, 0)?))
    }

    /// Returns heap memory taken with [`Stacks::heap_alloc`].
    pub fn heap_free(&self, base: u64) -> Result<(), Throw> {
        let page = self.span_page(base).filter(|&pg| {
            self.addr(pg) == base
                && tag_kind(self.meta(pg).tag.load(Ordering::Acquire)) == KIND_HEAP
        });
        match page {
            Some(pg) => {
                self.free_span(pg);
                Ok(())
            }
            None => Err(Misuse::NotAHeapSpan(base).into()),
        }
    }

    // ---- the GC -------------------------------------------------------------

    fn require(&self, op: &'static str, needs: GcPhase) -> Result<(), Throw> {
        let found = self.gcphase();
        if found == needs {
            Ok(())
        } else {
            Err(wrong_phase(op, needs, found))
        }
    }

    fn set_phase(&self, p: GcPhase) {
        self.gcphase.store(phase_to(p), Ordering::Release);
    }

    /// Whether GC is off but `freeStackSpans` has not run yet.
    pub fn spans_pending_free(&self) -> bool {
        self.spans_pending_free.load(Ordering::Acquire)
    }

    /// Starts a GC cycle (`gcStart`): `_GCoff` after `freeStackSpans` to
    /// `_GCmark`.
    pub fn gc_start(&self) -> Result<(), Throw> {
        let _gc = lock(&self.gc);
        self.require("gcStart", GcPhase::Off)?;
        if self.spans_pending_free() {
            return Err(Misuse::WrongGcPhase {
                op: "gcStart",
                needs: "_GCoff after freeStackSpans",
                found: "_GCoff before freeStackSpans",
            }
            .into());
        }
        self.set_phase(GcPhase::Mark);
        // Go changes the phase with the world stopped, so no stackfree is
        // half done when marking starts. Here frees run concurrently: wait
        // for every free that read _GCoff under a pool or the stackLarge
        // lock (and so may be returning a span to the heap) to finish, so
        // that a marker cannot read a pointer into a span that is about to
        // leave (models/tests/loom_gc.rs).
        for pool in self.pools.iter() {
            drop(lock(pool));
        }
        drop(lock(&self.large));
        Ok(())
    }

    /// The check `gc_mark` makes of marker `id`.
    fn check_marker(&self, gc: &Gc, id: u32) -> Result<(), Throw> {
        let addr = *gc
            .markers
            .get(&id)
            .ok_or(Throw::Misuse(Misuse::NoSuchMarker(id)))?;
        match self.state_of(addr) {
            Some(SpanState::Manual) => Ok(()),
            Some(SpanState::InUse) => Err(Misuse::MarkedReusedSpan(addr).into()),
            None => Err(GoThrow::BadPointerInGoHeap.into()),
        }
    }

    fn mark_termination(&self, gc: &mut Gc) -> Result<(), Throw> {
        self.require("gcMarkTermination", GcPhase::Mark)?;
        for &id in gc.markers.keys() {
            self.check_marker(gc, id)?;
        }
        gc.markers.clear();
        self.set_phase(GcPhase::MarkTermination);
        Ok(())
    }

    /// Ends marking (`gcMarkTermination`): every pending marker marks its
    /// pointer, then `_GCmarktermination`.
    pub fn gc_mark_termination(&self) -> Result<(), Throw> {
        let mut gc = lock(&self.gc);
        self.mark_termination(&mut gc)
    }

    /// `setGCPhase(_GCoff)`: frees return spans at once again; the spans
    /// kept during the cycle wait for [`Stacks::free_stack_spans`].
    pub fn gc_off(&self) -> Result<(), Throw> {
        let _gc = lock(&self.gc);
        self.require("setGCPhase(_GCoff)", GcPhase::MarkTermination)?;
        self.set_phase(GcPhase::Off);
        self.spans_pending_free.store(true, Ordering::Release);
        Ok(())
    }

    fn free_stack_spans_locked(&self) -> Result<(), Throw> {
        self.require("freeStackSpans", GcPhase::Off)?;
        for order in 0..self.pools.len() {
            let mut pool = lock(&self.pools[order]);
            for page in self.list(pool.head) {
                let m = self.meta(page);
                if m.alloc_count.load(Ordering::Relaxed) == 0 {
                    self.unlink(&mut pool.head, page);
                    pool.nfree -= m.nfree.load(Ordering::Relaxed);
                    self.free_span(page);
                }
            }
        }
        let mut large = lock(&self.large);
        for class in 0..large.len() {
            for page in self.list(large[class]) {
                self.free_span(page);
            }
            large[class] = 0;
        }
        self.spans_pending_free.store(false, Ordering::Release);
        Ok(())
    }

    /// Go: `freeStackSpans`: every empty pool span and every stackLarge
    /// span back to the heap, once the GC is off.
    pub fn free_stack_spans(&self) -> Result<(), Throw> {
        let _gc = lock(&self.gc);
        self.free_stack_spans_locked()
    }

    /// The end of a GC cycle in Go's order: mark termination (if marking),
    /// GC off, `freeStackSpans`, then the caches of `ps` flushed in the
    /// order given (`forEachP` → `prepareForSweep`).
    pub fn gc_end(&self, ps: &mut [&mut P]) -> Result<(), Throw> {
        for p in ps.iter() {
            self.own(p)?;
        }
        let mut gc = lock(&self.gc);
        if self.gcphase() == GcPhase::Mark {
            self.mark_termination(&mut gc)?;
        }
        self.require("setGCPhase(_GCoff)", GcPhase::MarkTermination)?;
        self.set_phase(GcPhase::Off);
        self.spans_pending_free.store(true, Ordering::Release);
        self.free_stack_spans_locked()?;
        drop(gc);
        for p in ps.iter_mut() {
            self.stackcache_clear(p)?;
        }
        Ok(())
    }

    /// A GC marker reads `addr`, a pointer into a stack span, to mark it
    /// later. Returns the marker's id.
    pub fn gc_mark_read(&self, addr: u64) -> Result<u32, Throw> {
        let mut gc = lock(&self.gc);
        self.require("a GC marker", GcPhase::Mark)?;
        if self.state_of(addr) != Some(SpanState::Manual) {
            return Err(Misuse::NotAStack { lo: addr, hi: addr }.into());
        }
        let id = gc.next_marker;
        gc.next_marker = id.wrapping_add(1);
        gc.markers.insert(id, addr);
        Ok(id)
    }

    /// The marker marks the pointer it read; its span must still be a
    /// stack span.
    pub fn gc_mark(&self, id: u32) -> Result<(), Throw> {
        let mut gc = lock(&self.gc);
        self.require("a GC marker", GcPhase::Mark)?;
        self.check_marker(&gc, id)?;
        gc.markers.remove(&id);
        Ok(())
    }

    /// Pending markers, by id.
    pub fn markers(&self) -> BTreeMap<u32, u64> {
        lock(&self.gc).markers.clone()
    }

    // ---- observation --------------------------------------------------------

    fn walk(&self, head: u64, max: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut x = head;
        while x != 0 && (out.len() as u64) < max {
            out.push(x - self.base());
            x = self.load(x);
        }
        out
    }

    /// The observable state, addresses as offsets from the arena base, with
    /// the caches of `ps` (sorted by id). Equal to the spec's snapshot after
    /// the same operations.
    pub fn snapshot(&self, ps: &[&P]) -> Snapshot {
        let _gc = lock(&self.gc);
        let pools: Vec<_> = self.pools.iter().map(lock).collect();
        let large = lock(&self.large);
        let heap = lock(&self.heap);
        let base = self.base();
        let mut spans = Vec::new();
        let mut in_use = Vec::new();
        let mut pool_spans = 0;
        let mut large_spans = 0;
        let mapped = heap.free.pages();
        let mut page = 0;
        while page < mapped {
            if self.span_page(self.addr(page)) != Some(page) {
                page += 1;
                continue;
            }
            let m = self.meta(page);
            let t = m.tag.load(Ordering::Acquire);
            let npages = m.npages.load(Ordering::Relaxed);
            let elemsize = tag_elemsize(t);
            let off = page * PAGE_SIZE;
            let kind = tag_kind(t);
            if kind != KIND_HEAP {
                if elemsize < self.consts.stack_cache_size {
                    pool_spans += 1;
                } else {
                    large_spans += 1;
                }
                let bits = t & BITS;
                if kind == KIND_LARGE {
                    if bits & 1 != 0 {
                        in_use.push((off, elemsize));
                    }
                } else {
                    for slot in 0..npages * PAGE_SIZE / elemsize {
                        if bits >> slot & 1 != 0 {
                            in_use.push((off + slot * elemsize, elemsize));
                        }
                    }
                }
            }
            spans.push(SpanSnap {
                off,
                npages,
                state: if kind == KIND_HEAP {
                    SpanState::InUse
                } else {
                    SpanState::Manual
                },
                elemsize,
                alloc_count: m.alloc_count.load(Ordering::Relaxed),
                free_list: self.walk(
                    m.free_head.load(Ordering::Relaxed),
                    m.nfree.load(Ordering::Relaxed),
                ),
            });
            page += npages.max(1);
        }
        let stackpool = pools
            .iter()
            .map(|pool| {
                self.list(pool.head)
                    .into_iter()
                    .map(|p| p * PAGE_SIZE)
                    .collect()
            })
            .collect();
        let stack_large: Vec<(u32, Vec<u64>)> = large
            .iter()
            .enumerate()
            .filter(|(_, &h)| h != 0)
            .map(|(c, &h)| {
                (
                    c as u32,
                    self.list(h).into_iter().map(|p| p * PAGE_SIZE).collect(),
                )
            })
            .collect();
        let mut ps: Vec<&P> = ps.to_vec();
        ps.sort_by_key(|p| p.id);
        let caches: Vec<CacheSnap> = ps
            .iter()
            .map(|p| CacheSnap {
                p: p.id,
                lists: p
                    .caches
                    .iter()
                    .enumerate()
                    .map(|(o, c)| self.walk(c.head, c.size / self.elemsize(o)))
                    .collect(),
                sizes: p.caches.iter().map(|c| c.size).collect(),
            })
            .collect();
        let sys_stats = self.system_stats().unwrap_or_default();
        let stats = Stats {
            stack_inuse: heap.stack_inuse,
            // Go's stacks_sys also counts the stacks from the system,
            // faulted ones included (sysFault does not give them back).
            stack_sys: heap.stack_inuse + sys_stats.live_bytes + sys_stats.faulted_bytes,
            pool_spans,
            large_spans,
            large_spans_free: stack_large.iter().map(|(_, l)| l.len() as u64).sum(),
            cached_bytes: ps.iter().map(|p| (p.id, p.cached_bytes())).collect(),
            mapped_bytes: mapped * PAGE_SIZE,
        };
        let (sys_live, sys_free) = self
            .system
            .as_ref()
            .map(SystemStacks::ranges)
            .unwrap_or_default();
        in_use.extend(sys_live.into_iter().map(|(lo, n)| (lo - base, n)));
        Snapshot {
            sys_free: sys_free.into_iter().map(|(lo, n)| (lo - base, n)).collect(),
            sys_faulted: sys_stats.faulted_bytes,
            gcphase: self.gcphase(),
            spans_pending_free: self.spans_pending_free(),
            free_runs: heap
                .free
                .runs()
                .into_iter()
                .map(|(p, n)| (p * PAGE_SIZE, n))
                .collect(),
            spans,
            stackpool,
            stack_large,
            caches,
            in_use,
            stats,
            goroutines: Vec::new(),
        }
    }
}

impl std::fmt::Debug for Stacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stacks")
            .field("profile", &self.config.profile)
            .field("base", &format_args!("{:#x}", self.base()))
            .field("arena_bytes", &self.config.arena_bytes)
            .field("gcphase", &self.gcphase())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gostack_spec::Profile;

    const K: u64 = 1024;

    fn stacks(port: &str, release: &str, arena: u64) -> Stacks {
        let (os, arch) = port.split_once('/').unwrap();
        let mut c = Config::new(Profile::parse(os, arch, false, release).unwrap());
        c.arena_bytes = arena;
        Stacks::new(&c).unwrap()
    }

    fn linux() -> Stacks {
        stacks("linux/amd64", "1.23", 8 << 20)
    }

    #[test]
    fn p_is_send_not_shared() {
        fn send<T: Send>() {}
        fn sync<T: Sync>() {}
        send::<P>();
        send::<Stacks>();
        sync::<Stacks>();
    }

    #[test]
    fn new_span_hands_out_highest_first_and_links_live_in_memory() {
        let s = linux();
        let b = s.base();
        let first = s.stackalloc(None, false, 2 * K).unwrap();
        assert_eq!(first.lo, b + 30 * K);
        // The span's free list is in the free stacks' first words.
        assert_eq!(s.arena.load_word(b + 28 * K), Some(b + 26 * K));
        assert_eq!(s.arena.load_word(b), Some(0));
        let snap = s.snapshot(&[]);
        assert_eq!(snap.spans[0].free_list[0], 28 * K);
        assert_eq!(snap.spans[0].alloc_count, 1);
        assert_eq!(snap.stackpool[0], vec![0]);
        // The stack is real memory.
        assert!(s.arena.store_word(first.hi - 8, 42));
        assert_eq!(s.arena.load_word(first.hi - 8), Some(42));
        for i in 1..16 {
            assert_eq!(
                s.stackalloc(None, false, 2 * K).unwrap().lo,
                b + 30 * K - i * 2 * K
            );
        }
        assert!(s.snapshot(&[]).stackpool[0].is_empty());
    }

    #[test]
    fn cache_refill_and_release() {
        let s = linux();
        let mut p = s.new_p();
        let b = s.base();
        let stk = s.stackalloc(Some(&mut p), false, 2 * K).unwrap();
        assert_eq!(stk.lo, b + 16 * K);
        assert_eq!(p.cached_bytes(), 14 * K);
        let snap = s.snapshot(&[&p]);
        assert_eq!(
            snap.caches[0].lists[0],
            (9..16).map(|i| i * 2 * K).collect::<Vec<_>>()
        );
        // Fill the cache to _StackCacheSize, then one more free releases
        // it to half first.
        let more: Vec<Stack> = (0..24)
            .map(|_| s.stackalloc(None, false, 2 * K).unwrap())
            .collect();
        s.stackfree(Some(&mut p), false, stk).unwrap();
        for &m in &more[..8] {
            s.stackfree(Some(&mut p), false, m).unwrap();
        }
        assert_eq!(p.cached_bytes(), 32 * K);
        s.stackfree(Some(&mut p), false, more[8]).unwrap();
        assert_eq!(p.cached_bytes(), 18 * K);
        s.stackcache_clear(&mut p).unwrap();
        assert_eq!(p.cached_bytes(), 0);
    }

    #[test]
    fn bad_frees_are_refused_and_change_nothing() {
        let s = linux();
        let mut p = s.new_p();
        let stk = s.stackalloc(Some(&mut p), false, 2 * K).unwrap();
        let big = s.stackalloc(None, false, 64 * K).unwrap();
        let heap = s.heap_alloc(4).unwrap();
        let before = s.snapshot(&[&p]);
        let bad = [
            Stack {
                lo: stk.lo + 8,
                hi: stk.hi + 8,
            },
            Stack {
                lo: stk.lo,
                hi: stk.lo + 4 * K,
            },
            Stack {
                lo: big.lo + 8192,
                hi: big.hi + 8192,
            },
            Stack {
                lo: heap,
                hi: heap + 2 * K,
            },
            Stack {
                lo: heap,
                hi: heap + 64 * K,
            },
            Stack { lo: 0, hi: 2 * K },
            Stack {
                lo: u64::MAX - 2047,
                hi: u64::MAX,
            },
            Stack {
                lo: heap + 3,
                hi: heap,
            },
        ];
        for b in bad {
            assert!(s.stackfree(Some(&mut p), false, b).is_err(), "{b:x?}");
            assert!(s.stackfree(None, false, b).is_err(), "{b:x?}");
            assert_eq!(s.snapshot(&[&p]), before, "{b:x?}");
        }
        s.stackfree(Some(&mut p), false, stk).unwrap();
        let after = s.snapshot(&[&p]);
        assert_eq!(
            s.stackfree(None, false, stk),
            Err(Misuse::NotAStack {
                lo: stk.lo,
                hi: stk.hi
            }
            .into())
        );
        assert_eq!(s.snapshot(&[&p]), after);
        // A P of another instance is refused.
        let other = linux();
        let mut q = other.new_p();
        assert_eq!(
            s.stackalloc(Some(&mut q), false, 2 * K),
            Err(Misuse::NoSuchP(q.id()).into())
        );
    }

    #[test]
    fn out_of_memory_changes_nothing() {
        let s = stacks("linux/386", "1.19", 4 << 20);
        let mut p = s.new_p();
        let hog = s.heap_alloc(510).unwrap();
        let before = s.snapshot(&[&p]);
        let oom = Err(Throw::Go(GoThrow::OutOfMemory));
        assert_eq!(s.stackalloc(Some(&mut p), false, 8 * K), oom);
        assert_eq!(s.stackalloc(None, false, 2 * K), oom);
        assert_eq!(s.stackalloc(None, false, 64 * K), oom);
        assert_eq!(
            s.heap_alloc(u64::MAX).err(),
            Some(Throw::Go(GoThrow::OutOfMemory))
        );
        assert_eq!(s.snapshot(&[&p]), before);
        s.heap_free(hog).unwrap();
        assert!(s.stackalloc(Some(&mut p), false, 8 * K).is_ok());
    }

    #[test]
    fn spans_wait_for_the_gc() {
        let s = linux();
        let a = s.stackalloc(None, false, 2 * K).unwrap();
        let big = s.stackalloc(None, false, 64 * K).unwrap();
        s.gc_start().unwrap();
        let m = s.gc_mark_read(a.lo + 64).unwrap();
        s.stackfree(None, false, a).unwrap();
        s.stackfree(None, false, big).unwrap();
        let snap = s.snapshot(&[]);
        assert_eq!(snap.stats.pool_spans, 1);
        assert_eq!(snap.stack_large, vec![(3, vec![big.lo - s.base()])]);
        s.gc_mark(m).unwrap();
        s.gc_end(&mut []).unwrap();
        let snap = s.snapshot(&[]);
        assert!(snap.spans.is_empty());
        assert_eq!(snap.stats.stack_inuse, 0);
        assert_eq!(snap.free_runs, vec![(0, 512)]);
        // The pages went back to the OS: they read as zero.
        assert_eq!(s.arena.load_word(a.lo), Some(0));
    }

    #[test]
    fn two_threads_two_ps() {
        let s = linux();
        std::thread::scope(|sc| {
            for t in 0..2 {
                let s = &s;
                sc.spawn(move || {
                    let mut p = s.new_p();
                    let mut held = Vec::new();
                    let iters = if cfg!(miri) { 120 } else { 20_000u64 };
                    for i in 0..iters {
                        let n = (2 * K) << ((i + t) % 3);
                        if i % 3 == 2 {
                            if let Some(stk) = held.pop() {
                                s.stackfree(Some(&mut p), false, stk).unwrap();
                            }
                        } else if held.len() < 64 {
                            let stk = s.stackalloc(Some(&mut p), i % 7 == 0, n).unwrap();
                            s.arena().store_word(stk.lo, i);
                            held.push(stk);
                        } else {
                            for stk in held.drain(..) {
                                s.stackfree(None, false, stk).unwrap();
                            }
                        }
                    }
                    for stk in held {
                        s.stackfree(Some(&mut p), false, stk).unwrap();
                    }
                    s.stackcache_clear(&mut p).unwrap();
                });
            }
        });
        let snap = s.snapshot(&[]);
        assert!(snap.in_use.is_empty());
        assert_eq!(snap.stats.stack_inuse, 0, "{snap:?}");
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;
    use gostack_spec::Profile;

    fn config() -> Config {
        let mut c = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
        c.arena_bytes = 4 << 20;
        c
    }

    #[test]
    fn from_system_stacks_are_page_rounded_and_validated() {
        let mut c = config();
        c.stack_from_system = true;
        let s = Stacks::new(&c).unwrap();
        let mut p = s.new_p();
        let a = s.stackalloc(Some(&mut p), false, 2048).unwrap();
        assert_eq!((a.lo - s.base(), a.hi - a.lo), (c.arena_bytes, 4096));
        assert!(s.store_word(a.lo, 5));
        assert_eq!(s.load_word(a.lo), Some(5));
        let before = s.snapshot(&[&p]);
        assert_eq!(before.stats.stack_sys, 4096);
        assert_eq!(before.in_use, vec![(c.arena_bytes, 4096)]);
        let half = Stack {
            lo: a.lo,
            hi: a.lo + 2048,
        };
        assert_eq!(
            s.stackfree(Some(&mut p), false, half),
            Err(Misuse::NotAStack {
                lo: half.lo,
                hi: half.hi
            }
            .into())
        );
        assert_eq!(s.snapshot(&[&p]), before);
        s.stackfree(Some(&mut p), false, a).unwrap();
        assert!(s.stackfree(None, false, a).is_err());
        assert_eq!(s.system_stats(), Some(SystemStats::default()));
        assert_eq!(s.snapshot(&[&p]).stats.stack_sys, 0);
        assert_eq!(s.load_word(a.lo), Some(0), "sysFree gave the page back");
    }

    #[test]
    fn fault_modes_are_refused_only_where_mprotect_is_missing() {
        let r = Stacks::with_debug(
            &config(),
            DebugOptions {
                fault_on_free: true,
            },
        );
        assert_eq!(r.is_err(), cfg!(miri));
        let mut c = config();
        c.godebug.efence = true;
        assert_eq!(Stacks::new(&c).is_err(), cfg!(miri));
        c.godebug.efence = false;
        c.stack_from_system = true;
        assert!(Stacks::new(&c).is_ok());
        c.stack_fault_on_free = true;
        assert_eq!(Stacks::new(&c).is_err(), cfg!(miri));
    }

    #[test]
    fn metadata_bytes_follow_the_mapped_pages() {
        let s = Stacks::new(&config()).unwrap();
        let idle = s.metadata_bytes();
        assert!(idle < 4096, "{idle}");
        let stk = s.stackalloc(None, false, 2048).unwrap();
        // One chunk (512 pages) mapped: 8 + 56 bytes of table per page, the
        // chunk's bitmap and summary.
        let grown = s.metadata_bytes() - idle;
        assert!((512 * 64..512 * 64 + 512).contains(&grown), "{grown}");
        s.stackfree(None, false, stk).unwrap();
        assert_eq!(s.metadata_bytes() - idle, grown);
    }

    #[test]
    fn default_arena_sizes() {
        let p64 = Profile::parse("linux", "amd64", false, "1.23").unwrap();
        let p32 = Profile::parse("linux", "386", false, "1.23").unwrap();
        assert_eq!(Stacks::default_arena_bytes(&p64), 64 << 30);
        assert_eq!(Stacks::default_arena_bytes(&p32), 2 << 30);
        let c = Stacks::default_config(p32);
        assert_eq!(c.arena_bytes, 2 << 30);
        // The spec accepts the default configuration too.
        assert!(gostack_spec::State::new(c).is_ok());
    }
}

#[cfg(test)]
mod cross_thread_tests {
    use super::*;
    use gostack_spec::Profile;

    /// Stacks allocated on one P are freed on another thread's P, while the
    /// other thread allocates from the same spans: the in-use bits of a
    /// span are updated from both threads at once.
    #[test]
    fn frees_cross_ps_and_double_frees_race() {
        let mut c = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
        c.arena_bytes = 8 << 20;
        let s = Stacks::new(&c).unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Stack>(256);
        let rounds = if cfg!(miri) { 80 } else { 20_000 };
        std::thread::scope(|sc| {
            let s = &s;
            sc.spawn(move || {
                let mut p = s.new_p();
                for i in 0..rounds {
                    let stk = s.stackalloc(Some(&mut p), false, 2048 << (i % 3)).unwrap();
                    tx.send(stk).unwrap();
                }
                s.stackcache_clear(&mut p).unwrap();
            });
            sc.spawn(move || {
                let mut p = s.new_p();
                let mut n = 0;
                for stk in rx {
                    s.stackfree(Some(&mut p), false, stk).unwrap();
                    // A double free is refused, whoever tries it.
                    assert!(s.stackfree(None, false, stk).is_err());
                    n += 1;
                }
                assert_eq!(n, rounds);
                s.stackcache_clear(&mut p).unwrap();
            });
        });
        let snap = s.snapshot(&[]);
        assert!(snap.in_use.is_empty());
        assert_eq!(snap.stats.stack_inuse, 0);
    }
}
