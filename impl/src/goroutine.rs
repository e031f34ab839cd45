//! The goroutine layer over real memory: goroutines whose frames live in
//! their stacks in the arena, growth (`newstack`), shrinking
//! (`shrinkstack`), copying with pointer adjustment (`copystack`), dead
//! goroutine reuse (`gfget`/`gfput`/`gfpurge`) and the sudog/channel
//! protocol, with the results, throws and observable state of
//! `gostack_spec::State`'s goroutine operations (spec/src/goroutine.rs
//! states the model: frame layouts, PCs, what is simplified).
//!
//! # How it is fast
//! - Each function's pointer maps are packed into `u64` words when it is
//!   added ([`crate::adjust::pack`]), and its frame geometry (fp, varp and
//!   argp as offsets from SP, with and without a frame) is precomputed.
//! - Goroutines are a `Vec` indexed by id.
//! - `copystack` walks the old stack's frames once (reading each return
//!   address from memory, as Go's unwinder does) into a reused buffer,
//!   checking the locals for junk pointers on the way; then copies the used
//!   words as a slice of atomics, and adjusts each frame's saved frame
//!   pointer, locals, arguments and stack objects through slices of the new
//!   stack, visiting only set bits. Words below `sghi` are adjusted with a
//!   compare-and-swap, as Go's `adjustpointers` does against a concurrent
//!   channel sender.
//!
//! # Refusals change nothing; Go's throws are fatal
//! Every operation decides its refusals ([`Misuse`], as the spec does)
//! before it changes anything, including the ones a compound operation
//! would meet later: a spawn whose NOSPLIT entry does not fit on the new
//! stack, a copy that would wait for a channel lock, the mark-termination
//! scans that would wait for a goroutine or lead to a starting size out of
//! range. Then it runs in Go's order, and a Go throw on the way (out of
//! memory, stack overflow, an invalid pointer found while copying) kills
//! the runtime where it stands, as it kills a Go process: nothing is
//! undone, and every later operation is refused ([`Runtime::dead`]).

use crate::adjust::{self, Move, Words, W32, W64};
use crate::runtime::Runtime;
use gostack_spec::goroutine::{
    defer_fields, defer_link_index, Chan, DeferField, Frame, Func, GSnap, GStats, GStatus, Pc,
    Slot, Sudog, G, GOEXIT_PC, PC_BASE, PC_STRIDE,
};
use gostack_spec::guard::MAX_FRAMESIZE;
use gostack_spec::profile::STACK_SMALL;
use gostack_spec::snapshot::{ChanSnap, SudogSnap, WorldSnap};
use gostack_spec::{Consts, Ctx, GoThrow, Goarch, Invalid, Misuse, Release, Stack, Throw};
use std::collections::BTreeMap;

/// The `site` of a frame at its function's entry.
const ENTRY: u32 = u32::MAX;

/// A function as the copier needs it.
pub(crate) struct FuncInfo {
    /// The description it was added with.
    pub(crate) f: Func,
    /// fp, varp, argp as offsets from SP with the frame allocated.
    geo: (u64, u64, u64),
    /// The same at the entry (no frame).
    geo0: (u64, u64, u64),
    /// Bytes of locals below varp.
    locals_room: u64,
    /// Locals map length in words (the same at every site).
    nl: usize,
    /// Args map length.
    na: usize,
    /// Per site: packed locals map.
    locals: Vec<Vec<u64>>,
    /// Per site: packed args map.
    args: Vec<Vec<u64>>,
    /// Union of every site's locals map: the slots zeroed at entry.
    zero: Vec<u64>,
    /// Stack objects: offset, size, packed pointer map, its bit count.
    objs: Vec<(i64, u64, Vec<u64>, usize)>,
}

/// One frame found by the walk: function, site (or [`ENTRY`]), SP.
#[derive(Copy, Clone, Debug)]
struct Rec {
    func: u32,
    site: u32,
    sp: u64,
}

/// What one `newstack` copy is for.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Kind {
    Grow,
    Move,
    Shrink,
}

/// The goroutine part of a [`Runtime`].
pub(crate) struct Gor {
    pub(crate) funcs: Vec<FuncInfo>,
    pub(crate) gs: Vec<G>,
    chans: Vec<Chan>,
    sudogs: BTreeMap<u32, Sudog>,
    next_sudog: u32,
    p_gfree: BTreeMap<u32, Vec<u32>>,
    sched_stack: Vec<u32>,
    sched_nostack: Vec<u32>,
    starting: u64,
    maxstacksize: u64,
    scanned: BTreeMap<u32, (u64, u64)>,
    /// `markrootFreeGStacks` has run in this GC cycle.
    pub(crate) free_g_stacks_done: bool,
    /// `work.nStackRoots`: goroutines with smaller ids are this cycle's
    /// stack roots.
    pub(crate) n_stack_roots: u32,
    heap_bump: (u64, u64),
    stats: GStats,
    /// The frames of the stack being copied (reused).
    walk: Vec<Rec>,
}

impl Gor {
    pub(crate) fn new(c: &Consts) -> Gor {
        Gor {
            funcs: Vec::new(),
            gs: Vec::new(),
            chans: Vec::new(),
            sudogs: BTreeMap::new(),
            next_sudog: 0,
            p_gfree: BTreeMap::new(),
            sched_stack: Vec::new(),
            sched_nostack: Vec::new(),
            starting: c.fixed_stack,
            maxstacksize: c.maxstacksize,
            scanned: BTreeMap::new(),
            free_g_stacks_done: false,
            n_stack_roots: 0,
            heap_bump: (0, 0),
            stats: GStats::default(),
            walk: Vec::new(),
        }
    }
}

impl std::fmt::Debug for Gor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gor")
            .field("funcs", &self.funcs.len())
            .field("goroutines", &self.gs.len())
            .field("chans", &self.chans.len())
            .field("sudogs", &self.sudogs.len())
            .field("stats", &self.stats)
            .finish()
    }
}

fn new_g(stk: Stack, guard: u64) -> G {
    G {
        stack: stk,
        stackguard0: stk.lo.wrapping_add(guard),
        status: GStatus::Dead,
        sp: 0,
        pc: Pc::Entry(0),
        bp: 0,
        lr: 0,
        ctxt: 0,
        stktopsp: 0,
        syscallsp: 0,
        async_safe_point: false,
        preempt_shrink: false,
        preempt: false,
        throwsplit: false,
        forking: false,
        gcscandone: false,
        parking_on_chan: false,
        active_stack_chans: false,
        select_done: false,
        waiting: Vec::new(),
        defer_head: 0,
        panic_head: 0,
        corrupted: false,
    }
}

impl Runtime {
    // ---- layout ---------------------------------------------------------------

    fn uses_lr(&self) -> bool {
        self.config.profile.goarch == Goarch::Arm64
    }

    fn min_frame(&self) -> u64 {
        if self.uses_lr() {
            self.ptr
        } else {
            0
        }
    }

    fn arm64_fp_adjusted(&self) -> bool {
        #[cfg(not(gostack_mutant = "frame_pointer_not_adjusted"))]
        let adjusted = self.config.profile.release != Release::Go1_19;
        // Mutant (golang/go#58432): adjustframe and adjustctxt leave
        // arm64's saved frame pointers pointing into the old stack, as
        // before Go 1.21.
        #[cfg(gostack_mutant = "frame_pointer_not_adjusted")]
        let adjusted = false;
        self.config.profile.goarch == Goarch::Arm64 && adjusted
    }

    fn require_layout(&self) -> Result<(), Throw> {
        match self.config.profile.goarch {
            Goarch::Amd64 | Goarch::I386 | Goarch::Arm64 => Ok(()),
            a => Err(Misuse::LayoutNotModeled(a.name()).into()),
        }
    }

    /// fp, varp, argp of a frame of `size` bytes, as offsets from its SP
    /// (`unwinder.resolveInternal`, runtime/traceback.go).
    fn geometry(&self, size: u64) -> (u64, u64, u64) {
        let p = self.ptr;
        let lr = self.uses_lr();
        let fp = if lr { size } else { size + p };
        let mut varp = if lr { fp } else { fp - p };
        let fp_enabled = matches!(self.config.profile.goarch, Goarch::Amd64 | Goarch::Arm64);
        if fp_enabled && varp > 0 {
            varp -= p;
        }
        (fp, varp, fp + self.min_frame())
    }

    fn locals_room_of(&self, frame_size: u64) -> u64 {
        let (_, varp, _) = self.geometry(frame_size);
        if self.uses_lr() {
            varp.saturating_sub(self.ptr)
        } else {
            varp
        }
    }

    fn saves_bp(&self, frame_size: u64) -> bool {
        self.config.profile.goarch == Goarch::Amd64 && frame_size > 0
    }

    fn decode_pc(&self, pc: u64) -> Option<(usize, usize)> {
        let rel = pc.checked_sub(PC_BASE)?;
        let (f, site) = ((rel / PC_STRIDE) as usize, (rel % PC_STRIDE) as usize);
        let func = self.gor.funcs.get(f)?;
        (site < func.f.sites.len()).then_some((f, site))
    }

    fn g(&self, id: u32) -> Result<&G, Throw> {
        self.gor
            .gs
            .get(id as usize)
            .ok_or_else(|| Misuse::NoSuchG(id).into())
    }

    fn gm(&mut self, id: u32) -> Result<&mut G, Throw> {
        self.gor
            .gs
            .get_mut(id as usize)
            .ok_or_else(|| Misuse::NoSuchG(id).into())
    }

    /// Running Go code (as the spec's `require_runnable`): runnable, not
    /// waiting, not stopped at an async safe point.
    fn require_runnable(&self, gid: u32) -> Result<(), Throw> {
        let g = self.g(gid)?;
        if g.status == GStatus::Runnable && g.waiting.is_empty() && !g.async_safe_point {
            if matches!(g.pc, Pc::Entry(_)) {
                // Only a goroutine that never ran stands at an entry.
                return Err(Misuse::NotStarted(gid).into());
            }
            Ok(())
        } else {
            Err(Misuse::GNotRunnable(gid).into())
        }
    }

    /// Running Go code and not in the middle of a fork.
    fn require_runnable_not_forking(&self, gid: u32) -> Result<(), Throw> {
        self.require_runnable(gid)?;
        if self.g(gid)?.forking {
            return Err(Misuse::GNotRunnable(gid).into());
        }
        Ok(())
    }

    /// A call, or a return (`ret`), also runs in a system call; a return
    /// there only from a frame called after entersyscall.
    fn require_can_call(&self, gid: u32, ret: bool) -> Result<(), Throw> {
        let g = self.g(gid)?;
        if g.status == GStatus::Syscall && !g.async_safe_point {
            if ret && g.sp >= g.syscallsp {
                return Err(Misuse::GNotRunnable(gid).into());
            }
            return Ok(());
        }
        self.require_runnable(gid)
    }

    /// `execute`: the goroutine is scheduled; a pending preemption is
    /// dropped and the guard is the stack's.
    fn execute(&mut self, gid: u32) -> Result<(), Throw> {
        let guard = self.consts.stack_guard;
        let g = self.gm(gid)?;
        g.preempt = false;
        g.stackguard0 = g.stack.lo.wrapping_add(guard);
        Ok(())
    }

    pub(crate) fn p_exists(&self, p: u32) -> Result<(), Throw> {
        if self.ps.contains_key(&p) {
            Ok(())
        } else {
            Err(Misuse::NoSuchP(p).into())
        }
    }

    /// The compiler's prologue check (the three forms of `spec::guard`).
    fn needs_morestack(&self, framesize: u64, sp: u64, guard: u64) -> Result<bool, Throw> {
        if framesize > MAX_FRAMESIZE {
            return Err(Invalid::FrameTooLarge(framesize).into());
        }
        for value in [sp, guard] {
            if value > self.mask {
                return Err(Invalid::NotAPointer {
                    value,
                    bits: 8 * self.ptr as u32,
                }
                .into());
            }
        }
        let k = framesize.saturating_sub(STACK_SMALL);
        Ok(if framesize <= STACK_SMALL {
            sp <= guard
        } else if framesize <= self.consts.stack_big {
            (sp.wrapping_sub(k) & self.mask) <= guard
        } else {
            sp < k || sp - k <= guard
        })
    }

    // ---- the function table ---------------------------------------------------

    /// Adds a function to the table after checking that its frame
    /// description fits its frame; returns its index (as `State::add_func`).
    pub fn add_func(&mut self, f: Func) -> Result<usize, Throw> {
        self.alive()?;
        self.require_layout()?;
        let p = self.ptr;
        let bad = |why: String| -> Result<usize, Throw> {
            Err(Misuse::BadFunc(f.name.clone(), why).into())
        };
        if f.frame_size % p != 0 || f.args_size % p != 0 {
            return bad(format!(
                "frame {} and args {} must be multiples of {p}",
                f.frame_size, f.args_size
            ));
        }
        if self.uses_lr() && (f.frame_size % 16 != 0 || f.frame_size == 8) {
            return bad(format!(
                "an arm64 frame is 0 or a multiple of 16, not {}",
                f.frame_size
            ));
        }
        if f.frame_size > MAX_FRAMESIZE || f.args_size > MAX_FRAMESIZE {
            return bad("frame or args larger than the assembler's int32".into());
        }
        if f.max_sp_delta > MAX_FRAMESIZE {
            return bad("max SP delta larger than the assembler's int32".into());
        }
        if f.max_sp_delta < f.frame_size {
            return bad(format!(
                "max SP delta {} below the frame size {}",
                f.max_sp_delta, f.frame_size
            ));
        }
        if f.sites.is_empty() || f.sites.len() as u64 >= PC_STRIDE {
            return bad("a function needs between 1 and 65535 call sites".into());
        }
        let room = self.locals_room_of(f.frame_size);
        let (nl, na) = (f.sites[0].locals.len(), f.sites[0].args.len());
        if f.sites
            .iter()
            .any(|s| s.locals.len() != nl || s.args.len() != na)
        {
            return bad("every site's locals (and args) map must have the same length".into());
        }
        for (i, s) in f.sites.iter().enumerate() {
            if s.locals.len() as u64 * p > room || s.args.len() as u64 * p > f.args_size {
                return bad(format!("site {i}'s pointer maps run past the frame ({room} bytes of locals, {} of args)", f.args_size));
            }
        }
        for (i, o) in f.objects.iter().enumerate() {
            let fits = if o.off < 0 {
                o.off.unsigned_abs() <= room && o.size <= o.off.unsigned_abs()
            } else {
                (o.off as u64)
                    .checked_add(o.size)
                    .is_some_and(|end| end <= f.args_size)
            };
            if o.off.unsigned_abs() % p != 0
                || o.size % p != 0
                || !fits
                || o.ptrs.len() as u64 * p > o.size
            {
                return bad(format!(
                    "stack object {i} (off {}, size {}) does not fit the frame",
                    o.off, o.size
                ));
            }
        }
        if self.gor.funcs.len() as u64 >= (u64::MAX - PC_BASE) / PC_STRIDE {
            return bad("function table full".into());
        }
        let mut zero = vec![0u64; nl.div_ceil(64)];
        let locals: Vec<Vec<u64>> = f.sites.iter().map(|s| adjust::pack(&s.locals)).collect();
        for l in &locals {
            for (z, w) in zero.iter_mut().zip(l) {
                *z |= w;
            }
        }
        let info = FuncInfo {
            geo: self.geometry(f.frame_size),
            geo0: self.geometry(0),
            locals_room: room,
            nl,
            na,
            args: f.sites.iter().map(|s| adjust::pack(&s.args)).collect(),
            locals,
            zero,
            objs: f
                .objects
                .iter()
                .map(|o| (o.off, o.size, adjust::pack(&o.ptrs), o.ptrs.len()))
                .collect(),
            f,
        };
        self.gor.funcs.push(info);
        Ok(self.gor.funcs.len() - 1)
    }

    // ---- frames -------------------------------------------------------------

    /// Walks `g`'s frames from its SP as Go's unwinder does, into `out`;
    /// `limit` is the most frames a stack of its size can hold.
    fn walk_into(&self, g: &G, limit: u64, out: &mut Vec<Rec>) -> Result<(), Throw> {
        self.walk_upto(g, limit, usize::MAX, out)
    }

    /// [`Runtime::walk_into`], stopping after frame `upto` (0 = innermost)
    /// unless the goroutine is `corrupted`. Only `poke` can break a
    /// goroutine's frames (`check_invariants` unwinds every other one to
    /// goexit, and `park` refuses receive slots outside locals), so the
    /// outer frames of a goroutine that was never poked unwind and need not
    /// be read to find frame `upto`: what `slot_addr` returns, or throws,
    /// is the spec's either way. This makes `slot_addr(g, 0, ..)` O(1)
    /// instead of O(depth).
    fn walk_upto(&self, g: &G, limit: u64, upto: usize, out: &mut Vec<Rec>) -> Result<(), Throw> {
        let upto = if g.corrupted { usize::MAX } else { upto };
        if self.ptr == 8 {
            self.walk_words(g, self.stack_words64(g.stack), limit, upto, out)
        } else {
            self.walk_words(g, self.stack_words32(g.stack), limit, upto, out)
        }
    }

    /// [`Runtime::walk_into`] reading return addresses through `ws`, the
    /// words of `g`'s stack.
    fn walk_words<W: Words>(
        &self,
        g: &G,
        ws: W,
        limit: u64,
        upto: usize,
        out: &mut Vec<Rec>,
    ) -> Result<(), Throw> {
        out.clear();
        let lo = g.stack.lo;
        let read = |a: u64| {
            let i = (a.wrapping_sub(lo) / self.ptr) as usize;
            if a >= lo && i < ws.len() {
                ws.ld(i)
            } else {
                self.rd(a)
            }
        };
        let funcs = &self.gor.funcs[..];
        let p = self.ptr;
        let lr_arch = self.uses_lr();
        let (mut func, mut site) = match g.pc {
            Pc::Entry(f) => (f, ENTRY),
            Pc::At(f, s) => (f, s as u32),
        };
        let mut sp = g.sp;
        let unknown = || Throw::Go(GoThrow::UnknownCallerPc);
        loop {
            let fi = funcs.get(func).ok_or_else(unknown)?;
            let sized = site != ENTRY && fi.f.frame_size > 0;
            let (fpo, _, _) = if site != ENTRY { fi.geo } else { fi.geo0 };
            let fp = sp.wrapping_add(fpo);
            out.push(Rec {
                func: func as u32,
                site,
                sp,
            });
            if fp > g.stack.hi || out.len() as u64 > limit {
                return Err(unknown());
            }
            if out.len() > upto {
                return Ok(());
            }
            let lr = if !lr_arch {
                read(fp - p)
            } else if sized {
                read(sp)
            } else if out.len() == 1 {
                g.lr
            } else {
                return Err(unknown());
            };
            if lr == GOEXIT_PC {
                if fp != g.stktopsp {
                    return Err(GoThrow::TracebackDidNotUnwind.into());
                }
                return Ok(());
            }
            // findfunc and the stack-map index of the return address.
            let rel = lr.wrapping_sub(PC_BASE);
            let (cf, cs) = ((rel / PC_STRIDE) as usize, (rel % PC_STRIDE) as u32);
            match funcs.get(cf) {
                Some(c) if lr >= PC_BASE && (cs as usize) < c.locals.len() => {}
                _ => return Err(unknown()),
            }
            func = cf;
            site = cs;
            sp = fp;
        }
    }

    fn frame_of(&self, r: &Rec) -> Frame {
        let fi = &self.gor.funcs[r.func as usize];
        let (fpo, varpo, argpo) = if r.site != ENTRY { fi.geo } else { fi.geo0 };
        Frame {
            func: r.func as usize,
            site: (r.site != ENTRY).then_some(r.site as usize),
            sp: r.sp,
            fp: r.sp.wrapping_add(fpo),
            varp: r.sp.wrapping_add(varpo),
            argp: r.sp.wrapping_add(argpo),
        }
    }

    /// The frames of goroutine `gid`, innermost first, read from its stack
    /// memory (as `State::frames`).
    pub fn frames(&self, gid: u32) -> Result<Vec<Frame>, Throw> {
        self.frames_upto(gid, usize::MAX)
    }

    /// The frames of `gid` from the innermost to frame `upto` (fewer when
    /// the goroutine has fewer; all of them when it is `corrupted`), or
    /// the unwinder's throw: see [`Runtime::walk_upto`].
    fn frames_upto(&self, gid: u32, upto: usize) -> Result<Vec<Frame>, Throw> {
        let g = self.g(gid)?;
        if g.status == GStatus::Dead {
            return Err(Misuse::GNotRunnable(gid).into());
        }
        let mut recs = Vec::new();
        let limit = (g.stack.hi - g.stack.lo) / self.ptr;
        self.walk_upto(g, limit, upto, &mut recs)?;
        Ok(recs.iter().map(|r| self.frame_of(r)).collect())
    }

    // ---- spawn, gfget, gfput ----------------------------------------------------

    /// `gfget`'s list moves (runtime/proc.go): when P's free list is
    /// empty, up to 32 dead goroutines move to it from the global lists
    /// (those with stacks first); then the list's last one is taken.
    fn gfget_take(&mut self, p: u32) -> Option<u32> {
        let local = self.gor.p_gfree.entry(p).or_default();
        if local.is_empty() {
            while local.len() < 32 {
                if let Some(g) = self.gor.sched_stack.pop() {
                    local.push(g);
                } else if let Some(g) = self.gor.sched_nostack.pop() {
                    local.push(g);
                } else {
                    break;
                }
            }
        }
        local.pop()
    }

    /// Creates a goroutine that will run `func` and runs its entry (as
    /// `State::spawn`: `newproc` then `start`, as one operation).
    pub fn spawn(&mut self, ctx: Ctx, func: usize) -> Result<u32, Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.newproc_run(ctx, func, true)
        })
    }

    /// Creates a goroutine that will run `func`; it has not run yet (as
    /// `State::newproc`).
    pub fn newproc(&mut self, ctx: Ctx, func: usize) -> Result<u32, Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.newproc_run(ctx, func, false)
        })
    }

    /// A scheduler on the M of `ctx` runs goroutine `gid` for the first
    /// time: `execute`, then its entry (as `State::start`).
    pub fn start(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            let g = s.g(gid)?;
            if g.status != GStatus::Runnable || !matches!(g.pc, Pc::Entry(_)) {
                return Err(Misuse::NotAtEntry(gid).into());
            }
            let (preempt, guard) = (g.preempt, g.stackguard0);
            let p = ctx.p.ok_or(Throw::Misuse(Misuse::NeedsP("execute")))?;
            s.p_exists(p)?;
            s.execute(gid)?;
            let r = s.enter(ctx, gid);
            if r.is_err() {
                let g = s.gm(gid)?;
                g.preempt = preempt;
                g.stackguard0 = guard;
            }
            r
        })
    }

    /// `newproc1`, and with `run` the entry at once.
    fn newproc_run(&mut self, ctx: Ctx, func: usize, run: bool) -> Result<u32, Throw> {
        self.require_layout()?;
        let p = ctx.p.ok_or(Throw::Misuse(Misuse::NeedsP("newproc")))?;
        self.p_exists(p)?;
        if func >= self.gor.funcs.len() {
            return Err(Misuse::NoSuchFunc(func).into());
        }
        if self.gor.funcs[func].f.args_size != 0 {
            let name = self.gor.funcs[func].f.name.clone();
            return Err(Misuse::BadFunc(
                name,
                "a goroutine's entry function takes no arguments".into(),
            )
            .into());
        }
        let ptr = self.ptr;
        let guard = self.consts.stack_guard;
        let uses_lr = self.uses_lr();
        let top = (4 * ptr + self.min_frame()).next_multiple_of(if uses_lr { 16 } else { ptr });
        let start = self.gor.starting;
        if run {
            self.spawn_entry_fits(p, func, top)?;
        }
        // From here a throw is fatal: nothing is undone.
        let id = match self.gfget_take(p) {
            Some(id) => {
                let stk = self.gor.gs[id as usize].stack;
                if stk.lo != 0 && stk.hi - stk.lo != start {
                    self.gfree(ctx, stk)?;
                    self.gor.gs[id as usize].stack = Stack { lo: 0, hi: 0 };
                }
                if self.gor.gs[id as usize].stack.lo == 0 {
                    let stk = self.galloc(ctx, start)?;
                    let g = &mut self.gor.gs[id as usize];
                    g.stack = stk;
                    g.stackguard0 = stk.lo + guard;
                }
                // Go clears preemptShrink only in newstack's preemption
                // branch: it survives death and reuse.
                let old = &self.gor.gs[id as usize];
                let mut fresh = new_g(old.stack, guard);
                fresh.preempt_shrink = old.preempt_shrink;
                fresh.gcscandone = old.gcscandone;
                self.gor.gs[id as usize] = fresh;
                id
            }
            None => {
                let stk = self.galloc(ctx, self.malg_size())?;
                // malg zeroes the stack's lowest word.
                self.wr(stk.lo, 0);
                let id = self.gor.gs.len() as u32;
                self.gor.gs.push(new_g(stk, guard));
                id
            }
        };
        let g = &mut self.gor.gs[id as usize];
        g.stktopsp = g.stack.hi - top;
        g.sp = if uses_lr {
            g.stktopsp
        } else {
            g.stktopsp - ptr
        };
        g.lr = if uses_lr { GOEXIT_PC } else { 0 };
        g.pc = Pc::Entry(func);
        g.status = GStatus::Runnable;
        g.stackguard0 = g.stack.lo + guard;
        let sp = g.sp;
        if !uses_lr {
            self.wr(sp, GOEXIT_PC);
        } else {
            self.wr(sp, 0);
            if self.config.profile.release != Release::Go1_19 {
                self.wr(sp - ptr, 0);
            }
        }
        if run {
            self.enter(ctx, id)?;
        }
        Ok(id)
    }

    /// `malg(stackMin)`'s size: `stackSystem + stackMin` rounded up to a
    /// power of two (the fixed stack, whatever `startingStackSize` is).
    fn malg_size(&self) -> u64 {
        (self.consts.stack_system + self.consts.stack_min).next_power_of_two()
    }

    /// As `State::spawn` decides before anything changes: a NOSPLIT entry
    /// whose frame does not fit on the stack the goroutine would get is
    /// refused. The stack is of `startingStackSize` when `gfget` will find
    /// a dead goroutine, of `malg`'s size otherwise (page-rounded when
    /// stacks come from the system); the entry's SP is `top` bytes below
    /// its top, one more word on x86 (goexit's return address).
    fn spawn_entry_fits(&self, p: u32, func: usize, top: u64) -> Result<(), Throw> {
        let f = &self.gor.funcs[func].f;
        if !f.nosplit {
            return Ok(());
        }
        let found = self.gor.p_gfree.get(&p).is_some_and(|l| !l.is_empty())
            || !self.gor.sched_stack.is_empty()
            || !self.gor.sched_nostack.is_empty();
        let n = if found {
            self.gor.starting
        } else {
            self.malg_size()
        };
        let uses_lr = self.uses_lr();
        let room = self.stack_len(n) - top - if uses_lr { 0 } else { self.ptr };
        let below = if uses_lr && f.frame_size > 0 {
            self.ptr
        } else {
            0
        };
        if room < f.frame_size + below + self.consts.stack_system {
            return Err(Misuse::NosplitEntryOverrun(f.name.clone()).into());
        }
        Ok(())
    }

    /// The bytes `stackalloc(n)` hands out: `n`, or `n` rounded up to the
    /// page when stacks come from the system.
    fn stack_len(&self, n: u64) -> u64 {
        if self.stacks.from_system() {
            crate::sysalloc::SystemStacks::round(n).unwrap_or(n)
        } else {
            n
        }
    }

    /// Runs the entry of the innermost function (at `Pc::Entry`): its
    /// prologue check, `newstack` while it fails, then the frame push. Its
    /// one refusal, a NOSPLIT overrun, comes before any change (a NOSPLIT
    /// function never grows its stack); a Go throw is fatal.
    fn enter(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
        let g = self.g(gid)?;
        let Pc::Entry(func) = g.pc else {
            return Err(Misuse::NotAtEntry(gid).into());
        };
        let f = &self.gor.funcs[func].f;
        let (frame_size, nosplit) = (f.frame_size, f.nosplit);
        if !nosplit {
            for _ in 0..64 {
                let g = self.g(gid)?;
                if !self.needs_morestack(frame_size, g.sp, g.stackguard0)? {
                    break;
                }
                self.newstack(ctx, gid)?;
            }
        }
        let p = self.ptr;
        let g = self.g(gid)?;
        let (gsp, glo, glr, gbp) = (g.sp, g.stack.lo, g.lr, g.bp);
        let below = if self.uses_lr() && frame_size > 0 {
            p
        } else {
            0
        };
        // Every frame stays above the StackSystem area (as the spec's enter).
        let floor = glo + self.consts.stack_system;
        let new_sp = gsp
            .checked_sub(frame_size + below)
            .filter(|&sp| sp >= floor)
            .map(|sp| sp + below)
            .ok_or(Throw::Misuse(Misuse::NosplitOverrun(gid)))?;
        let mut bp = gbp;
        if self.uses_lr() {
            if frame_size > 0 {
                self.wr(new_sp, glr);
                self.wr(new_sp - p, gbp);
                bp = new_sp - p;
            }
        } else if self.saves_bp(frame_size) {
            let slot = gsp - p;
            self.wr(slot, gbp);
            bp = slot;
        }
        // Zero every slot some site's locals map marks, and the local stack
        // objects.
        let fi = &self.gor.funcs[func];
        let varp = new_sp + fi.geo.1;
        let nl = fi.nl as u64;
        let base = varp - nl * p;
        for (wi, &w) in fi.zero.iter().enumerate() {
            let mut m = w;
            while m != 0 {
                let i = wi as u64 * 64 + u64::from(m.trailing_zeros());
                m &= m - 1;
                self.wr(base + i * p, 0);
            }
        }
        for &(off, size, _, _) in &fi.objs {
            if off < 0 {
                for w in 0..size / p {
                    self.wr(varp - off.unsigned_abs() + w * p, 0);
                }
            }
        }
        let g = self.gm(gid)?;
        g.sp = new_sp;
        g.bp = bp;
        g.pc = Pc::At(func, 0);
        Ok(())
    }

    // ---- calls and returns ----------------------------------------------------

    /// The innermost function calls `callee` from its site `site` (as
    /// `State::call`).
    pub fn call(&mut self, ctx: Ctx, gid: u32, site: usize, callee: usize) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_can_call(gid, false)?;
            let Pc::At(func, _) = s.g(gid)?.pc else {
                return Err(Misuse::NotAtEntry(gid).into());
            };
            if site >= s.gor.funcs[func].f.sites.len() {
                return Err(Misuse::NoSuchSite(func, site).into());
            }
            if callee >= s.gor.funcs.len() {
                return Err(Misuse::NoSuchFunc(callee).into());
            }
            let p = s.ptr;
            let saved = s.g(gid)?.clone();
            let ret = PC_BASE + func as u64 * PC_STRIDE + site as u64;
            let mut written = None;
            if s.uses_lr() && s.gor.funcs[func].f.frame_size == 0 {
                let name = s.gor.funcs[func].f.name.clone();
                return Err(
                    Misuse::BadFunc(name, "a frameless arm64 function cannot call".into()).into(),
                );
            }
            let room = s.gor.funcs[func].locals_room;
            if s.gor.funcs[callee].f.args_size > room {
                return Err(Misuse::BadFunc(
                    s.gor.funcs[callee].f.name.clone(),
                    format!(
                        "its {} bytes of arguments do not fit in the {room} bytes of locals of its caller {}",
                        s.gor.funcs[callee].f.args_size, s.gor.funcs[func].f.name
                    ),
                )
                .into());
            }
            if s.uses_lr() {
                s.gm(gid)?.lr = ret;
            } else {
                if saved.sp < saved.stack.lo + s.consts.stack_system + p {
                    return Err(Misuse::NosplitOverrun(gid).into());
                }
                let slot = saved.sp - p;
                written = Some((slot, s.rd(slot)));
                s.wr(slot, ret);
                s.gm(gid)?.sp -= p;
            }
            s.gm(gid)?.pc = Pc::Entry(callee);
            if let Err(e) = s.enter(ctx, gid) {
                if let Some((slot, v)) = written {
                    s.wr(slot, v);
                }
                s.gor.gs[gid as usize] = saved;
                return Err(e);
            }
            Ok(())
        })
    }

    /// The innermost function returns; from the bottom function the
    /// goroutine ends (as `State::ret`).
    pub fn ret(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_can_call(gid, true)?;
            let g = s.g(gid)?;
            let Pc::At(func, _) = g.pc else {
                return Err(Misuse::NotAtEntry(gid).into());
            };
            let p = s.ptr;
            let fi = &s.gor.funcs[func];
            let size = fi.f.frame_size;
            let (fpo, varpo, _) = fi.geo;
            let (sp, fp, varp) = (g.sp, g.sp + fpo, g.sp + varpo);
            let (saved_bp, ret) = if s.uses_lr() {
                if size > 0 {
                    (s.rd(sp - p), s.rd(sp))
                } else {
                    (g.bp, g.lr)
                }
            } else if s.saves_bp(size) {
                (s.rd(varp), s.rd(fp - p))
            } else {
                (g.bp, s.rd(fp - p))
            };
            if ret == GOEXIT_PC {
                return s.goexit(ctx, gid);
            }
            let (cf, cs) = s
                .decode_pc(ret)
                .ok_or(Throw::Misuse(Misuse::BadReturnAddress(ret)))?;
            let uses_lr = s.uses_lr();
            let g = s.gm(gid)?;
            g.sp = fp;
            g.bp = saved_bp;
            if uses_lr {
                g.lr = ret;
            }
            g.pc = Pc::At(cf, cs);
            Ok(())
        })
    }

    /// The innermost frame moves to call site `site`.
    pub fn set_site(&mut self, gid: u32, site: usize) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_runnable(gid)?;
            let Pc::At(f, _) = s.g(gid)?.pc else {
                return Err(Misuse::NotAtEntry(gid).into());
            };
            if site >= s.gor.funcs[f].f.sites.len() {
                return Err(Misuse::NoSuchSite(f, site).into());
            }
            s.gm(gid)?.pc = Pc::At(f, site);
            Ok(())
        })
    }

    /// The address of a slot of frame `frame` (0 = innermost).
    pub fn slot_addr(&self, gid: u32, frame: usize, slot: Slot) -> Result<u64, Throw> {
        let frames = self.frames_upto(gid, frame)?;
        let fr = frames
            .get(frame)
            .ok_or(Throw::Misuse(Misuse::NoSuchFrame(gid, frame)))?;
        let fi = &self.gor.funcs[fr.func];
        let p = self.ptr;
        let locals = fi.locals_room;
        let bad = || Throw::Misuse(Misuse::NoSuchSlot(gid, frame));
        match slot {
            Slot::Local(i) if fr.site.is_some() && (i as u64 + 1) * p <= locals => {
                Ok(fr.varp - locals + i as u64 * p)
            }
            Slot::Arg(i) if (i as u64 + 1) * p <= fi.f.args_size => Ok(fr.argp + i as u64 * p),
            Slot::Object(o, w) => {
                let obj = fi.f.objects.get(o).ok_or_else(bad)?;
                if (w as u64 + 1) * p > obj.size || (obj.off < 0 && fr.site.is_none()) {
                    return Err(bad());
                }
                let base = if obj.off < 0 {
                    fr.varp - obj.off.unsigned_abs()
                } else {
                    fr.argp + obj.off as u64
                };
                Ok(base + w as u64 * p)
            }
            _ => Err(bad()),
        }
    }

    /// Writes `value` into a slot of frame `frame`.
    pub fn write_slot(
        &mut self,
        gid: u32,
        frame: usize,
        slot: Slot,
        value: u64,
    ) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_runnable(gid)?;
            if value > s.mask {
                return Err(Invalid::NotAPointer {
                    value,
                    bits: 8 * s.ptr as u32,
                }
                .into());
            }
            let addr = s.slot_addr(gid, frame, slot)?;
            s.wr(addr, value);
            Ok(())
        })
    }

    /// Writes any word of a goroutine's used stack (the hostile operation).
    pub fn poke(&mut self, gid: u32, addr: u64, value: u64) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            let g = s.g(gid)?;
            let p = s.ptr;
            if addr < g.sp || addr >= g.stack.hi || addr % p != 0 || value > s.mask {
                return Err(Misuse::NotInUsedStack(gid, addr).into());
            }
            s.wr(addr, value);
            s.gm(gid)?.corrupted = true;
            Ok(())
        })
    }

    /// Sets the closure-context register.
    pub fn set_ctxt(&mut self, gid: u32, value: u64) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_runnable(gid)?;
            let mask = s.mask;
            s.gm(gid)?.ctxt = value & mask;
            Ok(())
        })
    }

    /// Pushes a defer record {fn, sp, link} for frame `frame`, on the heap
    /// or at a stack object of the frame; returns its address.
    pub fn defer_push(
        &mut self,
        gid: u32,
        frame: usize,
        fn_value: u64,
        on_stack: Option<usize>,
    ) -> Result<u64, Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_runnable(gid)?;
            let p = s.ptr;
            let fields = defer_fields(s.config.profile.release);
            let words = fields.len() as u64;
            let frames = s.frames_upto(gid, frame)?;
            let fr = frames
                .get(frame)
                .ok_or(Throw::Misuse(Misuse::NoSuchFrame(gid, frame)))?
                .clone();
            let d = match on_stack {
                Some(o) => {
                    let obj = s.gor.funcs[fr.func]
                        .f
                        .objects
                        .get(o)
                        .ok_or(Throw::Misuse(Misuse::NoSuchSlot(gid, frame)))?;
                    if obj.size < words * p {
                        return Err(Misuse::NoSuchSlot(gid, frame).into());
                    }
                    s.slot_addr(gid, frame, Slot::Object(o, 0))?
                }
                None => s.heap_words(words)?,
            };
            let g = s.g(gid)?;
            let (head, panic) = (g.defer_head, g.panic_head);
            for (i, f) in fields.iter().enumerate() {
                let v = match f {
                    DeferField::Fn => fn_value & s.mask,
                    DeferField::Sp => fr.sp,
                    DeferField::Panic => panic,
                    DeferField::Link => head,
                    DeferField::Varp => fr.varp,
                };
                s.wr(d + i as u64 * p, v);
            }
            s.gm(gid)?.defer_head = d;
            Ok(d)
        })
    }

    /// The byte offset of `link` in a defer record of the release.
    fn defer_link_offset(&self) -> u64 {
        defer_link_index(self.config.profile.release) * self.ptr
    }

    /// Pops the first defer record.
    pub fn defer_pop(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_runnable(gid)?;
            let head = s.g(gid)?.defer_head;
            if head == 0 {
                return Err(Misuse::NoDefer(gid).into());
            }
            let link = s.rd(head + s.defer_link_offset());
            s.gm(gid)?.defer_head = link;
            Ok(())
        })
    }

    /// Sets the panic head to a record at a stack object of frame `frame`.
    pub fn panic_push(&mut self, gid: u32, frame: usize, object: usize) -> Result<u64, Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_runnable(gid)?;
            let addr = s.slot_addr(gid, frame, Slot::Object(object, 0))?;
            let head = s.g(gid)?.panic_head;
            s.wr(addr, head);
            s.gm(gid)?.panic_head = addr;
            Ok(addr)
        })
    }

    /// `n` words of heap memory for defer records, from heap spans of one
    /// page.
    fn heap_words(&mut self, n: u64) -> Result<u64, Throw> {
        let bytes = n * self.ptr;
        let (next, end) = self.gor.heap_bump;
        if next + bytes <= end && next != 0 {
            self.gor.heap_bump.0 += bytes;
            return Ok(next);
        }
        let base = self.heap_alloc(1)?;
        self.gor.heap_bump = (base + bytes, base + gostack_spec::heap::PAGE_SIZE);
        Ok(base)
    }

    /// `stackguard0 = stackPreempt`.
    pub fn request_preempt(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            let preempt = s.consts.stack_preempt;
            let g = s.gm(gid)?;
            if g.status == GStatus::Dead {
                return Err(Misuse::GNotRunnable(gid).into());
            }
            g.preempt = true;
            g.stackguard0 = preempt;
            Ok(())
        })
    }

    /// `stackguard0 = stackForceMove` (`gcTestMoveStackOnNextCall`, which
    /// the goroutine calls on itself).
    pub fn request_force_move(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_runnable_not_forking(gid)?;
            let force = s.consts.stack_force_move;
            s.gm(gid)?.stackguard0 = force;
            Ok(())
        })
    }

    /// Sets `maxstacksize`.
    pub fn set_max_stack(&mut self, bytes: u64) {
        self.gor.maxstacksize = bytes;
    }

    // ---- newstack, shrinkstack, copystack -------------------------------------

    /// Go: `newstack` (runtime/stack.go).
    fn newstack(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
        let c = &self.consts;
        let (fork, preempt_v, force, guard, fixed_max) = (
            c.stack_fork,
            c.stack_preempt,
            c.stack_force_move,
            c.stack_guard,
            c.maxstackceiling,
        );
        let g = self.g(gid)?;
        if g.stackguard0 == fork {
            return Err(GoThrow::StackGrowthAfterFork.into());
        }
        if g.throwsplit {
            return Err(GoThrow::StackSplitAtBadTime.into());
        }
        let preempt = g.stackguard0 == preempt_v;
        if preempt && (ctx.preemptoff || ctx.p.is_none() || g.forking) {
            // canPreemptM says no: the guard comes back, nothing else
            // changes (preemptShrink stays).
            let g = self.gm(gid)?;
            g.stackguard0 = g.stack.lo.wrapping_add(guard);
            return Ok(());
        }
        if g.stack.lo == 0 {
            return Err(GoThrow::MissingStackInNewstack.into());
        }
        let sp = if self.uses_lr() {
            g.sp
        } else {
            g.sp.wrapping_sub(self.ptr)
        };
        if sp < g.stack.lo {
            return Err(GoThrow::SplitStackOverflow.into());
        }
        if preempt {
            if g.preempt_shrink {
                self.gm(gid)?.preempt_shrink = false;
                if let Err(e) = self.shrinkstack(ctx, gid) {
                    self.gm(gid)?.preempt_shrink = true;
                    return Err(e);
                }
            }
            // gopreempt_m, then execute.
            return self.execute(gid);
        }
        let oldsize = g.stack.hi - g.stack.lo;
        let mut newsize = oldsize * 2;
        let Pc::Entry(fi) = g.pc else {
            return Err(Misuse::NotAtEntry(gid).into());
        };
        let needed = self.gor.funcs[fi].f.max_sp_delta + guard;
        let used = g.stack.hi - g.sp;
        while newsize - used < needed {
            newsize *= 2;
        }
        let kind = if g.stackguard0 == force {
            newsize = oldsize;
            Kind::Move
        } else {
            Kind::Grow
        };
        if newsize > self.gor.maxstacksize || newsize > fixed_max {
            return Err(GoThrow::StackOverflow.into());
        }
        self.copystack(ctx, gid, newsize, kind)
    }

    /// Go: `isShrinkStackSafe` (runtime/stack.go).
    pub fn is_shrink_stack_safe(&self, gid: u32) -> Result<bool, Throw> {
        let g = self.g(gid)?;
        #[cfg(not(gostack_mutant = "shrink_while_parking"))]
        let parking = g.parking_on_chan;
        // Mutant (golang/go#40641): a goroutine between setting
        // parkingOnChan and chanparkcommit counts as safe to shrink.
        #[cfg(gostack_mutant = "shrink_while_parking")]
        let parking = false;
        Ok(g.syscallsp == 0 && !g.async_safe_point && !parking)
    }

    /// Go: `shrinkstack` (runtime/stack.go).
    fn shrinkstack(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
        let g = self.g(gid)?;
        if g.stack.lo == 0 {
            return Err(GoThrow::MissingStackInShrinkstack.into());
        }
        if !self.is_shrink_stack_safe(gid)? {
            return Err(GoThrow::ShrinkstackAtBadTime.into());
        }
        if self.config.godebug.gc_shrink_stack_off {
            return Ok(());
        }
        match self.shrink_target(gid) {
            Some(newsize) => self.copystack(ctx, gid, newsize, Kind::Shrink),
            None => Ok(()),
        }
    }

    /// `shrinkstack`'s size rule: half the stack, unless that is below
    /// fixedStack or a quarter or more of it is in use (`stackNosplit`
    /// counted as used).
    fn shrink_target(&self, gid: u32) -> Option<u64> {
        let g = &self.gor.gs[gid as usize];
        let oldsize = g.stack.hi - g.stack.lo;
        let newsize = oldsize / 2;
        if newsize < self.consts.fixed_stack {
            return None;
        }
        let used = g.stack.hi - g.sp + self.consts.stack_nosplit;
        #[cfg(not(gostack_mutant = "shrink_quarter_vs_half"))]
        let avail = oldsize / 4;
        // Mutant: shrinks while a quarter to a half of the stack is used.
        #[cfg(gostack_mutant = "shrink_quarter_vs_half")]
        let avail = oldsize / 2;
        (used < avail).then_some(newsize)
    }

    /// `copystack`'s refusal, made before anything changes: with
    /// `activeStackChans` it will lock the channels the goroutine waits
    /// on, and one held elsewhere would block.
    fn chans_unlocked(&self, gid: u32) -> Result<(), Throw> {
        let g = self.g(gid)?;
        if g.active_stack_chans {
            for sid in &g.waiting {
                let c = self.gor.sudogs[sid].c;
                if self.gor.chans[c as usize].locked_by.is_some() {
                    return Err(Misuse::WouldBlock(
                        "copystack: a channel the goroutine waits on is locked",
                    )
                    .into());
                }
            }
        }
        Ok(())
    }

    /// The checks `copystack` makes after its allocation: parking while
    /// shrinking, the frame walk (into `gor.walk`) and junk pointers in
    /// the locals. They change nothing but `gor.walk`.
    fn copy_checks(&mut self, gid: u32, newsize: u64, shrink: bool) -> Result<(), Throw> {
        let g = self.g(gid)?;
        if !g.active_stack_chans && shrink && g.parking_on_chan {
            return Err(GoThrow::RacySudogAdjustment.into());
        }
        let mut walk = std::mem::take(&mut self.gor.walk);
        let r = self
            .walk_into(self.g(gid)?, newsize / self.ptr, &mut walk)
            .and_then(|()| {
                let g = self.g(gid)?;
                if self.ptr == 8 {
                    let ws = self.stack_words64(g.stack);
                    self.junk(&walk, g.stack.lo, ws)
                } else {
                    let ws = self.stack_words32(g.stack);
                    self.junk(&walk, g.stack.lo, ws)
                }
            });
        self.gor.walk = walk;
        r
    }

    fn stack_words64(&self, s: Stack) -> W64<'_> {
        W64(self
            .stacks
            .arena()
            .words(self.to_real(s.lo), ((s.hi - s.lo) / 8) as usize)
            .unwrap_or(&[]))
    }

    /// A stack's 4-byte words (its `lo` is 8-byte aligned).
    fn stack_words32(&self, s: Stack) -> W32<'_> {
        let words = self
            .stacks
            .arena()
            .words(self.to_real(s.lo), ((s.hi - s.lo) / 8) as usize)
            .unwrap_or(&[]);
        W32 {
            words,
            start: 0,
            len: 2 * words.len(),
        }
    }

    /// adjustpointers' junk check over the locals of every walked frame.
    fn junk<W: Words>(&self, walk: &[Rec], lo: u64, ws: W) -> Result<(), Throw> {
        let p = self.ptr;
        let min = self.consts.min_legal_pointer;
        for r in walk {
            if r.site == ENTRY {
                continue;
            }
            let fi = &self.gor.funcs[r.func as usize];
            let varp = r.sp + fi.geo.1;
            if fi.nl == 0 || varp <= r.sp {
                continue;
            }
            let scanp = varp - fi.nl as u64 * p;
            let bits = &fi.locals[r.site as usize];
            let start = (scanp.wrapping_sub(lo) / p) as usize;
            let inside = if scanp >= lo {
                ws.sub(start, fi.nl)
            } else {
                None
            };
            let bad = match inside {
                Some(words) => adjust::has_junk(words, bits, min),
                None => bits_set(bits).any(|i| {
                    let v = self.rd(scanp + i as u64 * p);
                    0 < v && v < min
                }),
            };
            // GODEBUG=invalidptr=0 lets junk through.
            let bad = bad && self.config.godebug.invalid_ptr;
            #[cfg(not(gostack_mutant = "junk_pointer_accepted"))]
            if bad {
                return Err(GoThrow::InvalidPointerOnStack.into());
            }
            // Mutant: a small non-zero word in a live pointer slot is
            // let through (adjustpointers without its minLegalPointer
            // check).
            #[cfg(gostack_mutant = "junk_pointer_accepted")]
            let _ = bad;
        }
        Ok(())
    }

    /// Go: `copystack` (runtime/stack.go): validate, allocate, copy the
    /// used words, adjust sudogs, registers, defers and every frame, free
    /// the old stack.
    fn copystack(&mut self, ctx: Ctx, gid: u32, newsize: u64, kind: Kind) -> Result<(), Throw> {
        let g = self.g(gid)?;
        if g.syscallsp != 0 {
            return Err(GoThrow::StackGrowthInSyscall.into());
        }
        let old = g.stack;
        if old.lo == 0 {
            return Err(GoThrow::NilStackbase.into());
        }
        let shrink = newsize < old.hi - old.lo;
        // The one refusal comes before anything changes (as in the spec);
        // then Go's order: allocate, then the checks that throw.
        self.chans_unlocked(gid)?;
        let new = self.galloc(ctx, newsize)?;
        self.copy_checks(gid, newsize, shrink)?;
        let p = self.ptr;
        let mask = self.mask;
        let poison = self.config.poison_copy;
        if poison {
            self.fill(new, 0xfd);
        }
        let g = self.g(gid)?.clone();
        let used = old.hi - g.sp;
        let delta = new.hi.wrapping_sub(old.hi);
        let mv = Move {
            lo: old.lo,
            hi: old.hi,
            delta,
            mask,
        };
        let adj = |v: u64| {
            if old.lo <= v && v < old.hi {
                v.wrapping_add(delta) & mask
            } else {
                v
            }
        };
        // findsghi, then adjustsudogs (under the channel locks when
        // activeStackChans; sequentially the same).
        let mut sghi = 0;
        if g.active_stack_chans {
            for sid in &g.waiting {
                let sg = &self.gor.sudogs[sid];
                let end = sg.elem + self.gor.chans[sg.c as usize].elemsize;
                if old.lo <= end && end < old.hi && end > sghi {
                    sghi = end;
                }
            }
        }
        // Mutant (golang/go#12967, #13169): adjustsudogs skipped; the
        // sudogs' elem keep pointing into the old stack.
        #[cfg(not(gostack_mutant = "sudog_elem_not_adjusted"))]
        for sid in &g.waiting {
            if let Some(sg) = self.gor.sudogs.get_mut(sid) {
                sg.elem = adj(sg.elem);
            }
        }
        // The used words, old to new.
        let n = (used / p) as usize;
        if p == 8 {
            let (src, dst) = (self.stack_words64(old), self.stack_words64(new));
            if let (Some(src), Some(dst)) = (tail(src, n), tail(dst, n)) {
                adjust::copy64(src, dst);
            }
        } else {
            let (src, dst) = (self.stack_words32(old), self.stack_words32(new));
            if let (Some(src), Some(dst)) = (tail(src, n), tail(dst, n)) {
                adjust::copy(src, dst);
            }
        }
        self.gor.stats.bytes_copied += used;
        // adjustctxt, adjustdefers, adjustpanics.
        let oldfp = g.bp;
        // adjustctxt adjusts sched.bp only where `framepointer_enabled`
        // (amd64, arm64).
        let fp_enabled = matches!(self.config.profile.goarch, Goarch::Amd64 | Goarch::Arm64);
        {
            let gm = &mut self.gor.gs[gid as usize];
            gm.ctxt = adj(gm.ctxt);
            if fp_enabled {
                gm.bp = adj(gm.bp);
            }
            gm.defer_head = adj(gm.defer_head);
        }
        if self.arm64_fp_adjusted() && oldfp == g.sp.wrapping_sub(p) {
            let newfp = self.gor.gs[gid as usize].bp;
            let v = self.rd(oldfp);
            self.wr(newfp, v);
            self.adjust_one(newfp, &mv);
        }
        let mut d = self.gor.gs[gid as usize].defer_head;
        let mut n = 0;
        let words = defer_fields(self.config.profile.release).len() as u64;
        let link = self.defer_link_offset();
        while d != 0 && n < 1 << 16 {
            for i in 0..words {
                self.adjust_one(d.wrapping_add(i * p), &mv);
            }
            d = self.rd(d.wrapping_add(link));
            n += 1;
        }
        let guard = self.consts.stack_guard;
        {
            let gm = &mut self.gor.gs[gid as usize];
            gm.panic_head = adj(gm.panic_head);
            gm.stack = new;
            gm.stackguard0 = new.lo + guard;
            gm.sp = new.hi - used;
            gm.stktopsp = gm.stktopsp.wrapping_add(delta);
        }
        let sghi_new = if sghi == 0 {
            0
        } else {
            sghi.wrapping_add(delta)
        };
        let walk = std::mem::take(&mut self.gor.walk);
        if p == 8 {
            let ws = self.stack_words64(new);
            self.adjust_frames(&walk, new, ws, &mv, sghi_new);
        } else {
            let ws = self.stack_words32(new);
            self.adjust_frames(&walk, new, ws, &mv, sghi_new);
        }
        self.gor.walk = walk;
        if poison {
            self.fill(old, 0xfc);
        }
        match kind {
            Kind::Grow => self.gor.stats.growths += 1,
            Kind::Move => self.gor.stats.moves += 1,
            Kind::Shrink => self.gor.stats.shrinks += 1,
        }
        self.gfree(ctx, old)
    }

    /// adjustpointer on the word at `va`.
    fn adjust_one(&self, va: u64, mv: &Move) {
        let v = self.rd(va);
        if mv.lo <= v && v < mv.hi {
            self.wr(va, v.wrapping_add(mv.delta));
        }
    }

    /// Adjusts the words of a map at `scanp`: through the stack slice when
    /// the map lies in it, else word by word.
    #[inline]
    fn adjust_map<W: Words>(
        &self,
        (ws, lo): (W, u64),
        scanp: u64,
        bits: &[u64],
        n: usize,
        mv: &Move,
        cas: bool,
    ) {
        let p = self.ptr;
        if scanp >= lo {
            let start = ((scanp - lo) / p) as usize;
            if let Some(words) = ws.sub(start, n) {
                mv.bits(words, bits, cas);
                return;
            }
        }
        for i in bits_set(bits) {
            self.adjust_one(scanp.wrapping_add(i as u64 * p), mv);
        }
    }

    /// Go: `adjustframe` for every walked frame, moved to the new stack.
    fn adjust_frames<W: Words>(&self, walk: &[Rec], new: Stack, ws: W, mv: &Move, sghi: u64) {
        let p = self.ptr;
        let fp_adj = self.config.profile.goarch == Goarch::Amd64 || self.arm64_fp_adjusted();
        for r in walk {
            let fi = &self.gor.funcs[r.func as usize];
            let sp = r.sp.wrapping_add(mv.delta) & self.mask;
            let entry = r.site == ENTRY;
            let (_, varpo, argpo) = if entry { fi.geo0 } else { fi.geo };
            let (varp, argp) = (sp + varpo, sp + argpo);
            if fp_adj && argp - varp == 2 * p {
                let i = (varp.wrapping_sub(new.lo) / p) as usize;
                if varp >= new.lo && i < ws.len() {
                    mv.one(ws, i);
                } else {
                    self.adjust_one(varp, mv);
                }
            }
            if !entry && fi.nl > 0 && varp > sp {
                let scanp = varp - fi.nl as u64 * p;
                let bits = &fi.locals[r.site as usize];
                self.adjust_map((ws, new.lo), scanp, bits, fi.nl, mv, scanp < sghi);
            }
            if fi.na > 0 {
                let bits = &fi.args[if entry { 0 } else { r.site as usize }];
                self.adjust_map((ws, new.lo), argp, bits, fi.na, mv, argp < sghi);
            }
            for (off, _, ptrs, nbits) in &fi.objs {
                let base = if *off < 0 {
                    varp.wrapping_sub(off.unsigned_abs())
                } else {
                    argp + *off as u64
                };
                // Mutant: the objects of a frame at its entry (below its
                // SP, not allocated yet) are adjusted too.
                #[cfg(not(gostack_mutant = "objects_below_sp_adjusted"))]
                if base < sp {
                    continue;
                }
                self.adjust_map((ws, new.lo), base, ptrs, *nbits, mv, false);
            }
        }
    }

    fn fill(&self, s: Stack, byte: u8) {
        let word = u64::from_ne_bytes([byte; 8]) & self.mask;
        if self.ptr == 8 {
            adjust::fill(self.stack_words64(s), word);
        } else {
            adjust::fill(self.stack_words32(s), word);
        }
    }

    // ---- syscalls, scans, exits -------------------------------------------------

    /// `reentersyscall`: syscallsp set, the guard poisoned with
    /// stackPreempt, `throwsplit` set.
    pub fn enter_syscall(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_runnable_not_forking(gid)?;
            let preempt = s.consts.stack_preempt;
            let g = s.gm(gid)?;
            g.syscallsp = g.sp;
            g.status = GStatus::Syscall;
            g.stackguard0 = preempt;
            g.throwsplit = true;
            Ok(())
        })
    }

    /// `exitsyscall`, fast path: the guard restored from `preempt`.
    pub fn exit_syscall(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            let (preempt_v, guard) = (s.consts.stack_preempt, s.consts.stack_guard);
            let g = s.gm(gid)?;
            if g.status != GStatus::Syscall {
                return Err(Misuse::GNotRunnable(gid).into());
            }
            g.syscallsp = 0;
            g.status = GStatus::Runnable;
            g.throwsplit = false;
            g.stackguard0 = if g.preempt {
                preempt_v
            } else {
                g.stack.lo.wrapping_add(guard)
            };
            Ok(())
        })
    }

    /// `exitsyscall`, slow path (`exitsyscall0`, then `execute`).
    pub fn exit_syscall0(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            let g = s.gm(gid)?;
            if g.status != GStatus::Syscall {
                return Err(Misuse::GNotRunnable(gid).into());
            }
            g.syscallsp = 0;
            g.status = GStatus::Runnable;
            g.throwsplit = false;
            s.execute(gid)
        })
    }

    /// Stops at (or resumes from) an asynchronous preemption:
    /// `asyncSafePoint`.
    pub fn set_async_safe_point(&mut self, gid: u32, on: bool) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            if on {
                s.require_runnable_not_forking(gid)?;
                let g = s.g(gid)?;
                let needs = gostack_spec::goroutine::async_preempt_stack(s.config().profile.goarch)
                    .unwrap_or(0);
                let room = g.sp.wrapping_sub(g.stack.lo);
                if g.sp < g.stack.lo || room < needs {
                    return Err(Misuse::NoRoomForAsyncPreempt {
                        g: gid,
                        room,
                        needs,
                    }
                    .into());
                }
            } else if !s.g(gid)?.async_safe_point {
                return Err(Misuse::GNotRunnable(gid).into());
            }
            s.gm(gid)?.async_safe_point = on;
            Ok(())
        })
    }

    /// `syscall_runtime_BeforeFork`: stackguard0 = stackFork, the M
    /// locked.
    pub fn before_fork(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_runnable_not_forking(gid)?;
            let fork = s.consts.stack_fork;
            let g = s.gm(gid)?;
            g.forking = true;
            g.stackguard0 = fork;
            Ok(())
        })
    }

    /// `syscall_runtime_AfterFork`: the stack's guard again.
    pub fn after_fork(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_runnable(gid)?;
            let guard = s.consts.stack_guard;
            let g = s.gm(gid)?;
            if !g.forking {
                return Err(Misuse::GNotRunnable(gid).into());
            }
            g.forking = false;
            g.stackguard0 = g.stack.lo.wrapping_add(guard);
            Ok(())
        })
    }

    /// The GC's stack root job for `gid` on P `p` (as `State::gc_scan`):
    /// only during `_GCmark`, only for a goroutine that existed at
    /// gcStart, once per live goroutine per cycle.
    pub fn gc_scan(&mut self, p: u32, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_mark("scanstack")?;
            s.p_exists(p)?;
            s.scan_root(p, gid)
        })
    }

    /// `suspendG` waits for a goroutine inside the parking steps and for
    /// one whose M cannot be preempted (a fork).
    fn scan_would_block(g: &G) -> Result<(), Throw> {
        if g.status == GStatus::Running {
            return Err(
                Misuse::WouldBlock("scanstack: the goroutine is running; suspendG waits").into(),
            );
        }
        if g.forking && g.status != GStatus::Dead {
            return Err(Misuse::WouldBlock(
                "scanstack: the goroutine is forking and cannot be preempted; suspendG waits",
            )
            .into());
        }
        Ok(())
    }

    /// The root job: `suspendG`, then `scanstack`. Changes nothing when
    /// it fails.
    fn scan_root(&mut self, p: u32, gid: u32) -> Result<(), Throw> {
        let g = self.g(gid)?;
        if gid >= self.gor.n_stack_roots {
            return Err(Misuse::NotAStackRoot(gid).into());
        }
        Self::scan_would_block(g)?;
        if g.status == GStatus::Dead {
            self.gm(gid)?.gcscandone = true;
            return Ok(());
        }
        if g.gcscandone {
            return Err(GoThrow::GAlreadyScanned.into());
        }
        let sp = if g.syscallsp != 0 { g.syscallsp } else { g.sp };
        let bytes = g.stack.hi - sp;
        let (preempt, guard) = (g.preempt, g.stackguard0);
        let before = self.gor.scanned.get(&p).copied();
        // suspendG drops any preemption request.
        self.execute(gid)?;
        self.gm(gid)?.gcscandone = true;
        let e = self.gor.scanned.entry(p).or_default();
        e.0 += bytes;
        e.1 += 1;
        let r = if self.is_shrink_stack_safe(gid)? {
            self.shrinkstack(Ctx::on(p), gid)
        } else {
            self.gm(gid)?.preempt_shrink = true;
            Ok(())
        };
        if r.is_err() {
            match before {
                Some(b) => self.gor.scanned.insert(p, b),
                None => self.gor.scanned.remove(&p),
            };
            let g = self.gm(gid)?;
            g.preempt = preempt;
            g.stackguard0 = guard;
            g.gcscandone = false;
        }
        r
    }

    /// The stack roots whose job has not run, in id order.
    fn stack_roots_left(&self) -> Vec<u32> {
        (0..self.gor.n_stack_roots)
            .filter(|&id| !self.gor.gs[id as usize].gcscandone)
            .collect()
    }

    /// The refusals of the stack scans left for mark termination (as
    /// `State::scan_roots_left` decides them, before anything changes): a
    /// scan would wait for its goroutine, no P to scan on, a shrink would
    /// wait for a channel lock, or the starting stack size the scans lead
    /// to is out of range. Returns the P the scans run on.
    pub(crate) fn plan_roots_left(&mut self) -> Result<u32, Throw> {
        let left = self.stack_roots_left();
        for &id in &left {
            Self::scan_would_block(&self.gor.gs[id as usize])?;
        }
        let live: Vec<u32> = left
            .into_iter()
            .filter(|&id| self.gor.gs[id as usize].status != GStatus::Dead)
            .collect();
        let p = match self.ps.keys().next() {
            Some(&p) => p,
            None if !live.is_empty() => {
                return Err(Misuse::NeedsP("gcMarkTermination: the stack scans left").into())
            }
            None => 0,
        };
        let mut scanned = self.gor.scanned.clone();
        for &id in &live {
            let g = &self.gor.gs[id as usize];
            let sp = if g.syscallsp != 0 { g.syscallsp } else { g.sp };
            let e = scanned.entry(p).or_default();
            e.0 += g.stack.hi - sp;
            e.1 += 1;
            if self.is_shrink_stack_safe(id)?
                && !self.config.godebug.gc_shrink_stack_off
                && self.shrink_target(id).is_some()
            {
                self.chans_unlocked(id)?;
            }
        }
        if !self.config.godebug.adaptive_stack_start {
            return Ok(p);
        }
        let saved = std::mem::replace(&mut self.gor.scanned, scanned);
        let next = self.next_starting_stack_size();
        self.gor.scanned = saved;
        next.map(|_| p)
    }

    /// Runs the stack scans [`Runtime::plan_roots_left`] checked.
    pub(crate) fn scan_roots_left(&mut self, p: u32) -> Result<(), Throw> {
        for id in self.stack_roots_left() {
            self.scan_root(p, id)?;
        }
        Ok(())
    }

    /// Go: `gcComputeStartingStackSize` (runtime/stack.go); an average
    /// above 2^30 is refused as the spec refuses it.
    pub fn gc_compute_starting_stack_size(&mut self) -> Result<(), Throw> {
        self.fatal(|s| {
            if !s.config.godebug.adaptive_stack_start {
                return Ok(());
            }
            let next = s.next_starting_stack_size()?;
            s.gor.scanned.clear();
            s.gor.starting = next;
            Ok(())
        })
    }

    /// What [`Runtime::gc_compute_starting_stack_size`] would set.
    pub(crate) fn next_starting_stack_size(&self) -> Result<u64, Throw> {
        let (mut size, mut n) = (0u64, 0u64);
        for &(s, c) in self.gor.scanned.values() {
            size += s;
            n += c;
        }
        let fixed = self.consts.fixed_stack;
        if n == 0 {
            return Ok(fixed);
        }
        let avg =
            (size / n + self.consts.stack_guard).clamp(fixed, self.gor.maxstacksize.max(fixed));
        if avg > 1 << 30 {
            return Err(Misuse::StartingStackTooLarge(avg).into());
        }
        Ok(avg.next_power_of_two())
    }

    /// Go: `markrootFreeGStacks` (runtime/mgcmark.go), the GC root job
    /// that frees the stacks of the dead goroutines on the global free
    /// list, on P `p` (as `State::gc_free_g_stacks`).
    pub fn gc_free_g_stacks(&mut self, p: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_mark("markrootFreeGStacks")?;
            s.p_exists(p)?;
            if s.gor.free_g_stacks_done {
                return Err(Misuse::RootJobDone("markrootFreeGStacks").into());
            }
            s.free_g_stacks(Ctx::on(p))
        })
    }

    /// The body of `markrootFreeGStacks`, from the M of `ctx`. The frees
    /// are of stacks the goroutines hold, so they cannot fail.
    pub(crate) fn free_g_stacks(&mut self, ctx: Ctx) -> Result<(), Throw> {
        self.gor.free_g_stacks_done = true;
        let list = std::mem::take(&mut self.gor.sched_stack);
        for &id in list.iter().rev() {
            let stk = self.gor.gs[id as usize].stack;
            self.gfree(ctx, stk)?;
            self.gor.gs[id as usize].stack = Stack { lo: 0, hi: 0 };
        }
        self.gor.sched_nostack.extend(list);
        Ok(())
    }

    /// Go: `goexit0` → `gdestroy` → `gfput` (runtime/proc.go).
    fn goexit(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
        let p = ctx.p.ok_or(Throw::Misuse(Misuse::NeedsP("goexit")))?;
        self.p_exists(p)?;
        let stk = self.g(gid)?.stack;
        let start = self.gor.starting;
        if stk.hi - stk.lo != start {
            self.gfree(ctx, stk)?;
            let g = self.gm(gid)?;
            g.stack = Stack { lo: 0, hi: 0 };
            g.stackguard0 = 0;
        }
        let g = self.gm(gid)?;
        g.status = GStatus::Dead;
        g.defer_head = 0;
        g.panic_head = 0;
        g.ctxt = 0;
        let local = self.gor.p_gfree.entry(p).or_default();
        local.push(gid);
        if local.len() >= 64 {
            self.gfree_to_global(p, 32);
        }
        Ok(())
    }

    /// Moves dead goroutines from P's list to the global lists until
    /// `keep - 1` remain (as the spec's `gfree_to_global`).
    fn gfree_to_global(&mut self, p: u32, keep: usize) {
        let local = self.gor.p_gfree.entry(p).or_default();
        let (mut with, mut without) = (Vec::new(), Vec::new());
        while local.len() >= keep && !local.is_empty() {
            let g = local.pop().expect("non-empty");
            if self.gor.gs[g as usize].stack.lo == 0 {
                without.push(g);
            } else {
                with.push(g);
            }
        }
        self.gor.sched_stack.extend(with);
        self.gor.sched_nostack.extend(without);
    }

    /// `gfpurge` and the rest of a P's goroutine state, when it is
    /// destroyed.
    pub(crate) fn gfpurge(&mut self, p: u32) {
        self.gfree_to_global(p, 1);
        self.gor.p_gfree.remove(&p);
        self.gor.scanned.remove(&p);
    }

    /// Ends goroutine `gid` from wherever it stands (`runtime.Goexit`).
    pub fn exit(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_runnable_not_forking(gid)?;
            s.goexit(ctx, gid)
        })
    }

    // ---- channels ---------------------------------------------------------------

    /// Makes a channel with elements of `elemsize` bytes; returns its id.
    pub fn make_chan(&mut self, elemsize: u64) -> Result<u32, Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            if elemsize % s.ptr != 0 || elemsize >= 1 << 16 {
                return Err(Misuse::BadElemSize(elemsize).into());
            }
            let id = s.gor.chans.len() as u32;
            s.gor.chans.push(Chan {
                elemsize,
                locked_by: None,
                recvq: Vec::new(),
            });
            Ok(id)
        })
    }

    /// First parking step of a receive or select on `cases` (as
    /// `State::park_begin`).
    pub fn park_begin(&mut self, gid: u32, cases: &[(u32, u64)]) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_runnable_not_forking(gid)?;
            let g = s.g(gid)?;
            let (sp, hi) = (g.sp, g.stack.hi);
            if cases.is_empty() {
                return Err(Misuse::BadSelect("no cases").into());
            }
            let mut order: Vec<(u32, u64)> = cases.to_vec();
            order.sort();
            if order.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(Misuse::BadSelect("a channel named twice").into());
            }
            let mut recs = Vec::new();
            let limit = (g.stack.hi - g.stack.lo) / s.ptr;
            if s.walk_into(g, limit, &mut recs).is_err() {
                recs.clear();
            }
            for &(c, elem) in &order {
                let ch = s
                    .gor
                    .chans
                    .get(c as usize)
                    .ok_or(Throw::Misuse(Misuse::NoSuchChan(c)))?;
                if ch.locked_by.is_some() {
                    return Err(Misuse::WouldBlock("park: the channel is locked").into());
                }
                if elem < sp
                    || elem % s.ptr != 0
                    || elem.checked_add(ch.elemsize).is_none_or(|e| e > hi)
                {
                    return Err(Misuse::NotInUsedStack(gid, elem).into());
                }
                if !s.in_one_frames_locals(&recs, elem, ch.elemsize) {
                    return Err(Misuse::NotALocal(gid, elem).into());
                }
            }
            let is_select = order.len() > 1;
            let mut waiting = Vec::with_capacity(order.len());
            for &(c, elem) in &order {
                let sid = s.gor.next_sudog;
                s.gor.next_sudog += 1;
                s.gor.sudogs.insert(
                    sid,
                    Sudog {
                        g: gid,
                        c,
                        elem,
                        is_select,
                    },
                );
                let ch = &mut s.gor.chans[c as usize];
                ch.locked_by = Some(gid);
                ch.recvq.push(sid);
                waiting.push(sid);
            }
            let g = s.gm(gid)?;
            g.waiting = waiting;
            g.status = GStatus::Running;
            g.select_done = false;
            Ok(())
        })
    }

    /// `State::in_one_frames_locals`: `[addr, addr + size)` inside
    /// `[varp - locals_room, varp)` of one frame past its prologue.
    fn in_one_frames_locals(&self, recs: &[Rec], addr: u64, size: u64) -> bool {
        recs.iter().filter(|r| r.site != ENTRY).any(|r| {
            let fi = &self.gor.funcs[r.func as usize];
            let varp = r.sp.wrapping_add(fi.geo.1);
            addr >= varp.wrapping_sub(fi.locals_room)
                && addr.checked_add(size).is_some_and(|e| e <= varp)
        })
    }

    fn require_parking_step(&self, gid: u32, want: GStatus, parking: bool) -> Result<(), Throw> {
        let g = self.g(gid)?;
        if g.status == want
            && !g.waiting.is_empty()
            && g.parking_on_chan == parking
            && !g.active_stack_chans
        {
            Ok(())
        } else {
            Err(Misuse::ParkOutOfOrder(gid).into())
        }
    }

    /// Second parking step: `parkingOnChan` set.
    pub fn park_set_parking(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_parking_step(gid, GStatus::Running, false)?;
            s.gm(gid)?.parking_on_chan = true;
            Ok(())
        })
    }

    /// Third parking step: `park_m` sets the status to waiting.
    pub fn park_m(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_parking_step(gid, GStatus::Running, true)?;
            s.gm(gid)?.status = GStatus::Waiting;
            Ok(())
        })
    }

    /// Last parking step: `chanparkcommit`.
    pub fn park_commit(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_parking_step(gid, GStatus::Waiting, true)?;
            let g = &mut s.gor.gs[gid as usize];
            g.active_stack_chans = true;
            g.parking_on_chan = false;
            for sid in &g.waiting {
                let c = s.gor.sudogs[sid].c;
                s.gor.chans[c as usize].locked_by = None;
            }
            Ok(())
        })
    }

    /// The four parking steps at once.
    pub fn park(&mut self, gid: u32, cases: &[(u32, u64)]) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.park_begin(gid, cases)?;
            s.park_set_parking(gid)?;
            s.park_m(gid)?;
            s.park_commit(gid)
        })
    }

    /// A sender delivers `value` on channel `c` to its first waiting
    /// receiver (as `State::send`); returns the receiver.
    pub fn send(&mut self, c: u32, value: &[u64]) -> Result<u32, Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            let ch = s
                .gor
                .chans
                .get(c as usize)
                .ok_or(Throw::Misuse(Misuse::NoSuchChan(c)))?;
            if ch.locked_by.is_some() {
                return Err(Misuse::WouldBlock("send: the channel is locked").into());
            }
            let p = s.ptr;
            let elemsize = ch.elemsize;
            if (value.len() as u64).wrapping_mul(p) != elemsize || value.iter().any(|&v| v > s.mask)
            {
                return Err(Misuse::BadElemSize((value.len() as u64).wrapping_mul(p)).into());
            }
            let mut i = 0;
            let chosen = loop {
                let Some(&sid) = ch.recvq.get(i) else {
                    return Err(Misuse::NoReceiver(c).into());
                };
                i += 1;
                let sg = &s.gor.sudogs[&sid];
                let g = s.g(sg.g)?;
                if sg.is_select && g.select_done {
                    continue;
                }
                if sg.elem < g.stack.lo || sg.elem.wrapping_add(elemsize) > g.stack.hi {
                    return Err(Misuse::StaleSudogElem(sg.elem).into());
                }
                break sid;
            };
            let sg = s.gor.sudogs[&chosen].clone();
            for (k, &v) in value.iter().enumerate() {
                s.wr(sg.elem + k as u64 * p, v);
            }
            s.gor.sudogs.get_mut(&chosen).expect("exists").elem = 0;
            s.gor.chans[c as usize].recvq.drain(..i);
            let g = &mut s.gor.gs[sg.g as usize];
            g.select_done = sg.is_select;
            g.status = GStatus::Runnable;
            Ok(sg.g)
        })
    }

    /// The readied receiver resumes (as `State::wake`).
    pub fn wake(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            let g = s.g(gid)?;
            if g.status != GStatus::Runnable || g.waiting.is_empty() {
                return Err(Misuse::ParkOutOfOrder(gid).into());
            }
            for sid in &g.waiting {
                let c = s.gor.sudogs[sid].c;
                if s.gor.chans[c as usize].locked_by.is_some() {
                    return Err(Misuse::WouldBlock("wake: a channel is locked").into());
                }
            }
            let waiting = std::mem::take(&mut s.gor.gs[gid as usize].waiting);
            for sid in &waiting {
                let c = s.gor.sudogs[sid].c;
                s.gor.chans[c as usize].recvq.retain(|x| x != sid);
                s.gor.sudogs.remove(sid);
            }
            let g = &mut s.gor.gs[gid as usize];
            g.active_stack_chans = false;
            g.select_done = false;
            // Scheduled (`execute`) before it resumed.
            s.execute(gid)
        })
    }

    // ---- observation ----------------------------------------------------------------

    /// The goroutines, as `State::g_snapshot` reports them.
    pub fn g_snapshot(&self) -> Vec<GSnap> {
        let p = self.ptr;
        let base = self.va_base;
        self.gor
            .gs
            .iter()
            .enumerate()
            .map(|(id, g)| {
                let rel = |v: u64| {
                    if g.stack.lo <= v && v < g.stack.hi {
                        (1 << 63) | (g.stack.hi - v)
                    } else {
                        v
                    }
                };
                let used = if g.stack.lo == 0 || g.status == GStatus::Dead {
                    Vec::new()
                } else {
                    (g.sp..g.stack.hi)
                        .step_by(p as usize)
                        .map(|a| rel(self.rd(a)))
                        .collect()
                };
                let off = |a: u64| if a == 0 { 0 } else { a.wrapping_sub(base) };
                GSnap {
                    id: id as u32,
                    status: g.status,
                    stack: (off(g.stack.lo), off(g.stack.hi)),
                    stackguard0: rel(g.stackguard0),
                    sp: rel(g.sp),
                    pc: g.pc,
                    flags: [
                        g.syscallsp != 0,
                        g.async_safe_point,
                        g.preempt_shrink,
                        g.parking_on_chan,
                        g.active_stack_chans,
                        g.preempt,
                        g.throwsplit,
                        g.forking,
                        g.gcscandone,
                    ],
                    used,
                    waiting: g
                        .waiting
                        .iter()
                        .map(|sid| match self.gor.sudogs[sid].elem {
                            0 => 0,
                            elem => g.stack.hi.wrapping_sub(elem),
                        })
                        .collect(),
                    regs: [
                        rel(g.bp),
                        rel(g.lr),
                        rel(g.ctxt),
                        rel(g.defer_head),
                        rel(g.panic_head),
                    ],
                }
            })
            .collect()
    }

    /// The goroutine part of [`Runtime::world`].
    pub(crate) fn gor_world(&self) -> WorldSnap {
        let base = self.va_base;
        let g = &self.gor;
        WorldSnap {
            next_p: 0,
            markers: Vec::new(),
            next_marker: 0,
            funcs: g.funcs.len(),
            next_g: g.gs.len() as u32,
            next_sudog: g.next_sudog,
            p_gfree: g
                .p_gfree
                .iter()
                .filter(|(_, l)| !l.is_empty())
                .map(|(&p, l)| (p, l.clone()))
                .collect(),
            sched_gfree_stack: g.sched_stack.clone(),
            sched_gfree_nostack: g.sched_nostack.clone(),
            chans: g
                .chans
                .iter()
                .enumerate()
                .map(|(id, c)| ChanSnap {
                    id: id as u32,
                    elemsize: c.elemsize,
                    locked_by: c.locked_by,
                    recvq: c.recvq.clone(),
                })
                .collect(),
            sudogs: g
                .sudogs
                .iter()
                .map(|(&id, s)| SudogSnap {
                    id,
                    g: s.g,
                    c: s.c,
                    elem: (s.elem != 0).then(|| s.elem.wrapping_sub(base)),
                    is_select: s.is_select,
                })
                .collect(),
            gstats: g.stats.clone(),
            starting_stack_size: g.starting,
            maxstacksize: g.maxstacksize,
            scanned: g.scanned.iter().map(|(&p, &(b, n))| (p, b, n)).collect(),
            free_g_stacks_done: g.free_g_stacks_done,
            n_stack_roots: g.n_stack_roots,
            unflushed: Vec::new(),
            ms: Vec::new(),
            freem: Vec::new(),
            next_m: 0,
            heap_bump: (g.heap_bump != (0, 0)).then(|| {
                (
                    g.heap_bump.0.wrapping_sub(base),
                    g.heap_bump.1.wrapping_sub(base),
                )
            }),
        }
    }
}

/// The last `n` words of a stack.
fn tail<W: Words>(ws: W, n: usize) -> Option<W> {
    ws.sub(ws.len().checked_sub(n)?, n)
}

/// The indices of the set bits of a packed map.
fn bits_set(bits: &[u64]) -> impl Iterator<Item = usize> + '_ {
    bits.iter().enumerate().flat_map(|(wi, &w)| {
        let mut m = w;
        std::iter::from_fn(move || {
            if m == 0 {
                return None;
            }
            let i = wi * 64 + m.trailing_zeros() as usize;
            m &= m - 1;
            Some(i)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gostack_spec::goroutine::{Site, StackObject};
    use gostack_spec::{Config, Profile};

    fn rt(arch: &str, rel: &str) -> (Runtime, Ctx) {
        let mut c = Config::new(Profile::parse("linux", arch, false, rel).unwrap());
        c.arena_bytes = 4 << 20;
        let mut r = Runtime::new(c).unwrap();
        let p = r.create_p().unwrap();
        (r, Ctx::on(p))
    }

    /// A function of 64 bytes whose 4-word locals map marks words 0 and 1
    /// and whose stack object (5 words at varp - 6 words: room for a Go
    /// 1.19 defer record) holds pointers.
    fn ptr_func(r: &mut Runtime, name: &str) -> usize {
        let p = r.ptr as i64;
        let mut f = Func::new(name, 64);
        f.sites = vec![Site {
            locals: vec![true, true, false, false],
            args: vec![],
        }];
        f.objects.push(StackObject {
            off: -6 * p,
            size: 5 * p as u64,
            ptrs: vec![true; 5],
        });
        r.add_func(f).unwrap()
    }

    /// The slot of bit `bit` of the innermost frame's 4-word locals map.
    fn map_slot(r: &Runtime, g: u32, frame: usize, bit: usize) -> Slot {
        let fr = &r.frames(g).unwrap()[frame];
        let first = r.slot_addr(g, frame, Slot::Local(0)).unwrap();
        Slot::Local(((fr.varp - first) / r.ptr) as usize - 4 + bit)
    }

    fn size(r: &Runtime, g: u32) -> u64 {
        let s = r.gor.gs[g as usize].stack;
        s.hi - s.lo
    }

    /// Grows 1000 frames deep (60 under Miri), every frame's first map
    /// slot pointing at its caller's; the chain survives every copy; then
    /// returns and shrinks back at stack scans.
    #[test]
    fn grow_deep_and_shrink_back() {
        let depth = if cfg!(miri) { 60 } else { 1000 };
        for (arch, rel) in [("amd64", "1.23"), ("386", "1.19"), ("arm64", "1.23")] {
            let (mut r, ctx) = rt(arch, rel);
            let f = ptr_func(&mut r, "f");
            let g = r.spawn(ctx, f).unwrap();
            for _ in 0..depth {
                r.call(ctx, g, 0, f).unwrap();
                let s = map_slot(&r, g, 0, 0);
                let caller = r.slot_addr(g, 1, map_slot(&r, g, 1, 0)).unwrap();
                r.write_slot(g, 0, s, caller).unwrap();
            }
            assert!(size(&r, g) >= depth as u64 * 64, "{arch}: grew");
            assert!(r.gor.stats.growths >= 2);
            // Every link still points at the caller's slot, in the new stack.
            let frames = r.frames(g).unwrap();
            assert_eq!(frames.len(), depth + 1);
            for i in 0..depth {
                let here = r.slot_addr(g, i, map_slot(&r, g, i, 0)).unwrap();
                let caller = r.slot_addr(g, i + 1, map_slot(&r, g, i + 1, 0)).unwrap();
                assert_eq!(r.read_word(here), caller, "{arch}: frame {i}");
            }
            for _ in 0..depth {
                r.ret(ctx, g).unwrap();
            }
            // One halving per GC cycle (each goroutine is scanned once).
            let mut last = size(&r, g);
            loop {
                r.gc_start().unwrap();
                r.gc_scan(ctx.p.unwrap(), g).unwrap();
                r.gc_end().unwrap();
                if size(&r, g) == last {
                    break;
                }
                last = size(&r, g);
            }
            assert_eq!(size(&r, g), r.consts.fixed_stack, "{arch}: shrunk back");
        }
    }

    /// A goroutine parks on two channels (select) with its receive slots
    /// in its stack; a scan shrinks the stack under the channel locks; the
    /// sudogs follow; a send writes into the new stack.
    #[test]
    fn park_on_two_channels_shrink_then_send() {
        let (mut r, ctx) = rt("amd64", "1.23");
        let f = ptr_func(&mut r, "f");
        let big = r.add_func(Func::new("big", 16 * 1024)).unwrap();
        let g = r.spawn(ctx, f).unwrap();
        r.call(ctx, g, 0, big).unwrap();
        r.ret(ctx, g).unwrap();
        let c1 = r.make_chan(8).unwrap();
        let c2 = r.make_chan(16).unwrap();
        let e1 = r.slot_addr(g, 0, Slot::Object(0, 0)).unwrap();
        let e2 = r.slot_addr(g, 0, Slot::Object(0, 1)).unwrap();
        r.park(g, &[(c2, e2), (c1, e1)]).unwrap();
        let before = size(&r, g);
        r.gc_start().unwrap();
        r.gc_scan(ctx.p.unwrap(), g).unwrap();
        assert!(size(&r, g) < before, "shrunk while parked");
        let e1n = r.slot_addr(g, 0, Slot::Object(0, 0));
        // Not runnable: slot_addr still walks the frames.
        let e1n = e1n.unwrap();
        let w = r.world();
        let elems: Vec<Option<u64>> = w.sudogs.iter().map(|s| s.elem).collect();
        assert!(elems.contains(&Some(e1n - r.base())));
        // The value, itself a pointer into the stack, lands in the new
        // stack.
        assert_eq!(r.send(c1, &[e1n]).unwrap(), g);
        assert_eq!(r.read_word(e1n), e1n);
        assert!(r.send(c2, &[1, 2]).is_err(), "the select is won");
        r.wake(g).unwrap();
        r.gc_end().unwrap();
        assert!(r.world().sudogs.is_empty());
    }

    /// Defer records on the heap and in stack objects, and a panic
    /// record, move with the stack.
    #[test]
    fn defer_and_panic_records_are_adjusted() {
        for (arch, rel) in [("amd64", "1.23"), ("386", "1.19")] {
            let (mut r, ctx) = rt(arch, rel);
            let p = r.ptr;
            let f = ptr_func(&mut r, "f");
            let big = r.add_func(Func::new("big", 16 * 1024)).unwrap();
            let g = r.spawn(ctx, f).unwrap();
            let heap = r.defer_push(g, 0, 0x40_7700, None).unwrap();
            let stack = r.defer_push(g, 0, 0x40_8800, Some(0)).unwrap();
            let link = r.defer_link_offset();
            assert_eq!(r.read_word(stack + link), heap);
            let old_sp = r.frames(g).unwrap()[0].sp;
            r.call(ctx, g, 0, big).unwrap();
            let fr = r.frames(g).unwrap();
            let new_stack = r.slot_addr(g, 1, Slot::Object(0, 0)).unwrap();
            assert_ne!(new_stack, stack);
            assert_eq!(r.gor.gs[g as usize].defer_head, new_stack);
            // The records' sp words moved; the heap record stayed put.
            assert_eq!(r.read_word(new_stack + p), fr[1].sp);
            assert_eq!(r.read_word(new_stack + link), heap);
            assert_eq!(r.read_word(heap + p), fr[1].sp);
            assert_ne!(fr[1].sp, old_sp);
            r.ret(ctx, g).unwrap();
            let pr = r.panic_push(g, 0, 0).unwrap();
            r.request_force_move(g).unwrap();
            r.call(ctx, g, 0, f).unwrap();
            let moved = r.slot_addr(g, 1, Slot::Object(0, 0)).unwrap();
            assert_ne!(moved, pr);
            assert_eq!(r.gor.gs[g as usize].panic_head, moved);
            r.ret(ctx, g).unwrap();
            r.defer_pop(g).unwrap();
            r.defer_pop(g).unwrap();
            assert_eq!(r.defer_pop(g), Err(Misuse::NoDefer(g).into()));
        }
    }

    /// Refusals get the spec's throw and change nothing, including those
    /// decided for a later step of the operation (a RET through a corrupt
    /// return address).
    #[test]
    fn refusals_change_nothing() {
        let (mut r, ctx) = rt("amd64", "1.23");
        let f = ptr_func(&mut r, "f");
        let g = r.spawn(ctx, f).unwrap();
        let same = |r: &Runtime| (r.snapshot(), r.world());
        let check =
            |r: &mut Runtime, op: &dyn Fn(&mut Runtime) -> Result<(), Throw>, want: Misuse| {
                let before = same(r);
                assert_eq!(op(r), Err(want.into()));
                assert!(same(r) == before, "state changed");
                assert_eq!(r.dead(), None, "a refusal is not fatal");
            };
        check(&mut r, &|r| r.call(ctx, g, 0, 99), Misuse::NoSuchFunc(99));
        check(&mut r, &|r| r.call(ctx, 9, 0, f), Misuse::NoSuchG(9));
        check(&mut r, &|r| r.call(ctx, g, 3, f), Misuse::NoSuchSite(f, 3));
        let ra = r.frames(g).unwrap()[0].fp - 8;
        r.poke(g, ra, 0x99).unwrap();
        check(&mut r, &|r| r.ret(ctx, g), Misuse::BadReturnAddress(0x99));
        r.poke(g, ra, GOEXIT_PC).unwrap();
        check(&mut r, &|r| r.poke(g, 3, 0), Misuse::NotInUsedStack(g, 3));
        check(&mut r, &|r| r.park(g, &[(7, 0)]), Misuse::NoSuchChan(7));
        check(&mut r, &|r| r.wake(g), Misuse::ParkOutOfOrder(g));
        check(
            &mut r,
            &|r| r.spawn(Ctx::no_p(), f).map(|_| ()),
            Misuse::NeedsP("newproc"),
        );
        check(
            &mut r,
            &|r| r.gc_scan(0, g),
            Misuse::WrongGcPhase {
                op: "scanstack",
                needs: "_GCmark",
                found: "_GCoff",
            },
        );
        r.ret(ctx, g).unwrap();
        assert_eq!(r.gor.gs[g as usize].status, GStatus::Dead);
    }

    /// A Go throw is fatal, found before or after the frames were walked
    /// (out of memory for the new stack, stack overflow, junk pointers, a
    /// corrupt return address): the runtime is dead of it and refuses the
    /// next operation, and can still be read.
    #[test]
    fn go_throws_are_fatal() {
        type Prep = fn(&mut Runtime, u32);
        let cases: [(&str, Prep, GoThrow); 5] = [
            ("huge", |_, _| {}, GoThrow::OutOfMemory),
            (
                "big",
                |r, _| r.set_max_stack(8 << 10),
                GoThrow::StackOverflow,
            ),
            (
                "big",
                |r, g| {
                    let s = map_slot(r, g, 0, 1);
                    r.write_slot(g, 0, s, 9).unwrap();
                },
                GoThrow::InvalidPointerOnStack,
            ),
            (
                "big",
                |r, g| {
                    let ra = r.frames(g).unwrap()[0].fp - 8;
                    r.poke(g, ra, 0x99).unwrap();
                },
                GoThrow::UnknownCallerPc,
            ),
            ("spawn huge", |_, _| {}, GoThrow::OutOfMemory),
        ];
        for (what, prep, want) in cases {
            let (mut r, ctx) = rt("amd64", "1.23");
            let f = ptr_func(&mut r, "f");
            let big = r.add_func(Func::new("big", 16 * 1024)).unwrap();
            let mut huge = Func::new("huge", 8 << 20);
            huge.max_sp_delta = 8 << 20;
            let huge = r.add_func(huge).unwrap();
            let g = r.spawn(ctx, f).unwrap();
            prep(&mut r, g);
            let got = match what {
                "huge" => r.call(ctx, g, 0, huge),
                "big" => r.call(ctx, g, 0, big),
                _ => r.spawn(ctx, huge).map(|_| ()),
            };
            assert_eq!(got, Err(want.into()), "{what}");
            assert_eq!(r.dead(), Some(&want));
            let dead: Throw = Misuse::Dead(want).into();
            assert_eq!(r.create_p(), Err(dead.clone()));
            assert_eq!(r.spawn(ctx, f), Err(dead.clone()));
            assert_eq!(r.add_func(Func::new("late", 64)), Err(dead));
            assert!(!r.g_snapshot().is_empty(), "still readable");
        }
    }

    /// On 32-bit profiles a frame word is 4 bytes of real memory.
    #[test]
    fn words_are_four_bytes_on_386() {
        let (mut r, ctx) = rt("386", "1.19");
        let f = ptr_func(&mut r, "f");
        let g = r.spawn(ctx, f).unwrap();
        let a = r.slot_addr(g, 0, Slot::Local(0)).unwrap();
        assert_eq!(a % 4, 0);
        r.write_slot(g, 0, Slot::Local(0), 0x1122_3344).unwrap();
        r.write_slot(g, 0, Slot::Local(1), 0x5566_7788).unwrap();
        let real = r.to_real(a);
        // Two 4-byte words of the arena (little endian), read as 8-byte
        // words.
        let w = r.stacks.arena().words(real & !7, 2).unwrap();
        let bytes: Vec<u8> = w
            .iter()
            .flat_map(|x| x.load(std::sync::atomic::Ordering::Relaxed).to_le_bytes())
            .collect();
        let at = (real % 8) as usize;
        let word = |i: usize| u32::from_le_bytes(bytes[at + i..at + i + 4].try_into().unwrap());
        assert_eq!((word(0), word(4)), (0x1122_3344, 0x5566_7788));
        assert!(r.write_slot(g, 0, Slot::Local(0), 1 << 32).is_err());
        assert!(r.base() == 0x1000_0000 && a >> 32 == 0);
    }
}
