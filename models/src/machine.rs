//! [`Machine`]: the spec's public API as a trait, implemented by the spec
//! (`gostack_spec::State`) and by the implementation (`gostack::Runtime`)
//! with the same names, arguments, results and throws, so that the harness
//! drives both through one code path.

use crate::alloc::StackAllocator;
use gostack_spec::goroutine::{Frame, Func, Slot};
use gostack_spec::snapshot::WorldSnap;
use gostack_spec::{Config, Ctx, Snapshot, State, Throw};

/// One side of the comparison: every public operation of the spec. The
/// allocator's operations come from [`StackAllocator`], the layer under
/// it, which third-party allocators implement alone.
pub trait Machine: StackAllocator {
    /// A fresh instance (`State::new`, `Runtime::new`).
    fn create(config: Config) -> Result<Self, Throw>
    where
        Self: Sized;
    /// The address the allocator's addresses (stacks from `stackalloc`,
    /// heap spans, GC marker addresses) are relative to.
    fn alloc_base(&self) -> u64;
    /// The observable state.
    fn snapshot(&self) -> Snapshot;
    /// The rest of the observable state (ids, free goroutine lists,
    /// channels, sudogs, counters, pending markers).
    fn world(&self) -> WorldSnap;

    /// `runtime.ReadMemStats`: every P's caches flushed, then the figures.
    fn read_mem_stats(&mut self) -> Result<gostack_spec::Stats, Throw>;
    /// Ordinary heap pages.
    fn heap_alloc(&mut self, npages: u64) -> Result<u64, Throw>;
    /// Return ordinary heap pages.
    fn heap_free(&mut self, base: u64) -> Result<(), Throw>;
    /// The end of a GC cycle.
    fn gc_end(&mut self) -> Result<(), Throw>;
    /// A GC marker reads a pointer.
    fn gc_mark_read(&mut self, addr: u64) -> Result<u32, Throw>;
    /// A GC marker marks.
    fn gc_mark(&mut self, id: u32) -> Result<(), Throw>;

    /// Reads a word of memory.
    fn read_word(&self, addr: u64) -> u64;
    /// Adds a function.
    fn add_func(&mut self, f: Func) -> Result<usize, Throw>;
    /// A goroutine's frames.
    fn frames(&self, gid: u32) -> Result<Vec<Frame>, Throw>;
    /// `newproc`, then the new goroutine runs at once.
    fn spawn(&mut self, ctx: Ctx, func: usize) -> Result<u32, Throw>;
    /// `newproc1` alone: the goroutine has not run yet.
    fn newproc(&mut self, ctx: Ctx, func: usize) -> Result<u32, Throw>;
    /// A scheduler runs a new goroutine for the first time.
    fn start(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw>;
    /// `allocm`: a new M's stacks.
    fn create_m(&mut self, ctx: Ctx) -> Result<u32, Throw>;
    /// `mexit`.
    fn exit_m(&mut self, ctx: Ctx, m: u32) -> Result<(), Throw>;
    /// A call.
    fn call(&mut self, ctx: Ctx, gid: u32, site: usize, callee: usize) -> Result<(), Throw>;
    /// A return.
    fn ret(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw>;
    /// Move to a call site.
    fn set_site(&mut self, gid: u32, site: usize) -> Result<(), Throw>;
    /// A slot's address.
    fn slot_addr(&self, gid: u32, frame: usize, slot: Slot) -> Result<u64, Throw>;
    /// Write a slot.
    fn write_slot(&mut self, gid: u32, frame: usize, slot: Slot, value: u64) -> Result<(), Throw>;
    /// Write a raw word of the used stack.
    fn poke(&mut self, gid: u32, addr: u64, value: u64) -> Result<(), Throw>;
    /// Set `sched.ctxt`.
    fn set_ctxt(&mut self, gid: u32, value: u64) -> Result<(), Throw>;
    /// Push a defer record.
    fn defer_push(
        &mut self,
        gid: u32,
        frame: usize,
        fn_value: u64,
        on_stack: Option<usize>,
    ) -> Result<u64, Throw>;
    /// Pop a defer record.
    fn defer_pop(&mut self, gid: u32) -> Result<(), Throw>;
    /// Push a panic record.
    fn panic_push(&mut self, gid: u32, frame: usize, object: usize) -> Result<u64, Throw>;
    /// `stackguard0 = stackPreempt`.
    fn request_preempt(&mut self, gid: u32) -> Result<(), Throw>;
    /// `stackguard0 = stackForceMove`.
    fn request_force_move(&mut self, gid: u32) -> Result<(), Throw>;
    /// `debug.SetMaxStack`.
    fn set_max_stack(&mut self, bytes: u64);
    /// `isShrinkStackSafe`.
    fn is_shrink_stack_safe(&self, gid: u32) -> Result<bool, Throw>;
    /// `entersyscall`.
    fn enter_syscall(&mut self, gid: u32) -> Result<(), Throw>;
    /// `exitsyscall`.
    fn exit_syscall(&mut self, gid: u32) -> Result<(), Throw>;
    /// `exitsyscall`'s slow path (`exitsyscall0`, then `execute`).
    fn exit_syscall0(&mut self, gid: u32) -> Result<(), Throw>;
    /// `syscall_runtime_BeforeFork`.
    fn before_fork(&mut self, gid: u32) -> Result<(), Throw>;
    /// `syscall_runtime_AfterFork`.
    fn after_fork(&mut self, gid: u32) -> Result<(), Throw>;
    /// Set `asyncSafePoint`.
    fn set_async_safe_point(&mut self, gid: u32, on: bool) -> Result<(), Throw>;
    /// `scanstack`.
    fn gc_scan(&mut self, p: u32, gid: u32) -> Result<(), Throw>;
    /// `gcComputeStartingStackSize`.
    fn gc_compute_starting_stack_size(&mut self) -> Result<(), Throw>;
    /// `markrootFreeGStacks` on a P.
    fn gc_free_g_stacks(&mut self, p: u32) -> Result<(), Throw>;
    /// `runtime.Goexit`.
    fn exit(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw>;
    /// `makechan`.
    fn make_chan(&mut self, elemsize: u64) -> Result<u32, Throw>;
    /// First parking step.
    fn park_begin(&mut self, gid: u32, cases: &[(u32, u64)]) -> Result<(), Throw>;
    /// `parkingOnChan = true`.
    fn park_set_parking(&mut self, gid: u32) -> Result<(), Throw>;
    /// `park_m`.
    fn park_m(&mut self, gid: u32) -> Result<(), Throw>;
    /// `chanparkcommit`.
    fn park_commit(&mut self, gid: u32) -> Result<(), Throw>;
    /// The four parking steps.
    fn park(&mut self, gid: u32, cases: &[(u32, u64)]) -> Result<(), Throw>;
    /// A send.
    fn send(&mut self, c: u32, value: &[u64]) -> Result<u32, Throw>;
    /// A readied receiver resumes.
    fn wake(&mut self, gid: u32) -> Result<(), Throw>;
}

/// Implements [`Machine`] for a type with the spec's method names by
/// forwarding each call.
macro_rules! forward {
    ($t:ty, $base:expr) => {
        impl Machine for $t {
            fn create(config: Config) -> Result<Self, Throw> {
                <$t>::new(config)
            }
            fn alloc_base(&self) -> u64 {
                let f: fn(&$t) -> u64 = $base;
                f(self)
            }
            fn snapshot(&self) -> Snapshot {
                <$t>::snapshot(self)
            }
            fn world(&self) -> WorldSnap {
                <$t>::world(self)
            }
            fn read_mem_stats(&mut self) -> Result<gostack_spec::Stats, Throw> {
                <$t>::read_mem_stats(self)
            }
            fn heap_alloc(&mut self, npages: u64) -> Result<u64, Throw> {
                <$t>::heap_alloc(self, npages)
            }
            fn heap_free(&mut self, base: u64) -> Result<(), Throw> {
                <$t>::heap_free(self, base)
            }
            fn gc_end(&mut self) -> Result<(), Throw> {
                <$t>::gc_end(self)
            }
            fn gc_mark_read(&mut self, addr: u64) -> Result<u32, Throw> {
                <$t>::gc_mark_read(self, addr)
            }
            fn gc_mark(&mut self, id: u32) -> Result<(), Throw> {
                <$t>::gc_mark(self, id)
            }
            fn read_word(&self, addr: u64) -> u64 {
                <$t>::read_word(self, addr)
            }
            fn add_func(&mut self, f: Func) -> Result<usize, Throw> {
                <$t>::add_func(self, f)
            }
            fn frames(&self, gid: u32) -> Result<Vec<Frame>, Throw> {
                <$t>::frames(self, gid)
            }
            fn spawn(&mut self, ctx: Ctx, func: usize) -> Result<u32, Throw> {
                <$t>::spawn(self, ctx, func)
            }
            fn call(
                &mut self,
                ctx: Ctx,
                gid: u32,
                site: usize,
                callee: usize,
            ) -> Result<(), Throw> {
                <$t>::call(self, ctx, gid, site, callee)
            }
            fn ret(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
                <$t>::ret(self, ctx, gid)
            }
            fn set_site(&mut self, gid: u32, site: usize) -> Result<(), Throw> {
                <$t>::set_site(self, gid, site)
            }
            fn slot_addr(&self, gid: u32, frame: usize, slot: Slot) -> Result<u64, Throw> {
                <$t>::slot_addr(self, gid, frame, slot)
            }
            fn write_slot(
                &mut self,
                gid: u32,
                frame: usize,
                slot: Slot,
                value: u64,
            ) -> Result<(), Throw> {
                <$t>::write_slot(self, gid, frame, slot, value)
            }
            fn poke(&mut self, gid: u32, addr: u64, value: u64) -> Result<(), Throw> {
                <$t>::poke(self, gid, addr, value)
            }
            fn set_ctxt(&mut self, gid: u32, value: u64) -> Result<(), Throw> {
                <$t>::set_ctxt(self, gid, value)
            }
            fn defer_push(
                &mut self,
                gid: u32,
                frame: usize,
                fn_value: u64,
                on_stack: Option<usize>,
            ) -> Result<u64, Throw> {
                <$t>::defer_push(self, gid, frame, fn_value, on_stack)
            }
            fn defer_pop(&mut self, gid: u32) -> Result<(), Throw> {
                <$t>::defer_pop(self, gid)
            }
            fn panic_push(&mut self, gid: u32, frame: usize, object: usize) -> Result<u64, Throw> {
                <$t>::panic_push(self, gid, frame, object)
            }
            fn request_preempt(&mut self, gid: u32) -> Result<(), Throw> {
                <$t>::request_preempt(self, gid)
            }
            fn request_force_move(&mut self, gid: u32) -> Result<(), Throw> {
                <$t>::request_force_move(self, gid)
            }
            fn set_max_stack(&mut self, bytes: u64) {
                <$t>::set_max_stack(self, bytes)
            }
            fn is_shrink_stack_safe(&self, gid: u32) -> Result<bool, Throw> {
                <$t>::is_shrink_stack_safe(self, gid)
            }
            fn enter_syscall(&mut self, gid: u32) -> Result<(), Throw> {
                <$t>::enter_syscall(self, gid)
            }
            fn exit_syscall(&mut self, gid: u32) -> Result<(), Throw> {
                <$t>::exit_syscall(self, gid)
            }
            fn exit_syscall0(&mut self, gid: u32) -> Result<(), Throw> {
                <$t>::exit_syscall0(self, gid)
            }
            fn newproc(&mut self, ctx: Ctx, func: usize) -> Result<u32, Throw> {
                <$t>::newproc(self, ctx, func)
            }
            fn start(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
                <$t>::start(self, ctx, gid)
            }
            fn create_m(&mut self, ctx: Ctx) -> Result<u32, Throw> {
                <$t>::create_m(self, ctx)
            }
            fn exit_m(&mut self, ctx: Ctx, m: u32) -> Result<(), Throw> {
                <$t>::exit_m(self, ctx, m)
            }
            fn before_fork(&mut self, gid: u32) -> Result<(), Throw> {
                <$t>::before_fork(self, gid)
            }
            fn after_fork(&mut self, gid: u32) -> Result<(), Throw> {
                <$t>::after_fork(self, gid)
            }
            fn set_async_safe_point(&mut self, gid: u32, on: bool) -> Result<(), Throw> {
                <$t>::set_async_safe_point(self, gid, on)
            }
            fn gc_scan(&mut self, p: u32, gid: u32) -> Result<(), Throw> {
                <$t>::gc_scan(self, p, gid)
            }
            fn gc_compute_starting_stack_size(&mut self) -> Result<(), Throw> {
                <$t>::gc_compute_starting_stack_size(self)
            }
            fn gc_free_g_stacks(&mut self, p: u32) -> Result<(), Throw> {
                <$t>::gc_free_g_stacks(self, p)
            }
            fn exit(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
                <$t>::exit(self, ctx, gid)
            }
            fn make_chan(&mut self, elemsize: u64) -> Result<u32, Throw> {
                <$t>::make_chan(self, elemsize)
            }
            fn park_begin(&mut self, gid: u32, cases: &[(u32, u64)]) -> Result<(), Throw> {
                <$t>::park_begin(self, gid, cases)
            }
            fn park_set_parking(&mut self, gid: u32) -> Result<(), Throw> {
                <$t>::park_set_parking(self, gid)
            }
            fn park_m(&mut self, gid: u32) -> Result<(), Throw> {
                <$t>::park_m(self, gid)
            }
            fn park_commit(&mut self, gid: u32) -> Result<(), Throw> {
                <$t>::park_commit(self, gid)
            }
            fn park(&mut self, gid: u32, cases: &[(u32, u64)]) -> Result<(), Throw> {
                <$t>::park(self, gid, cases)
            }
            fn send(&mut self, c: u32, value: &[u64]) -> Result<u32, Throw> {
                <$t>::send(self, c, value)
            }
            fn wake(&mut self, gid: u32) -> Result<(), Throw> {
                <$t>::wake(self, gid)
            }
        }
    };
}

forward!(State, |s: &State| s.heap.base);
forward!(gostack::Runtime, |r: &gostack::Runtime| r.base());
