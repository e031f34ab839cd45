//! Goroutines whose frames live in stack memory; growth (`newstack`),
//! shrinking (`shrinkstack`), copying with pointer adjustment
//! (`copystack`), and the sudog/channel protocol that makes shrinking a
//! parked goroutine safe (runtime/stack.go, runtime/chan.go,
//! runtime/select.go, runtime/proc.go).
//!
//! # Memory and frames
//! Memory is a map from word addresses to words (absent = 0); a stack is the
//! words of `[lo, hi)`. Frames are laid out as Go lays them out on x86
//! (`amd64` with frame pointers, `386` without) and on arm64 (below); other
//! architectures are refused with [`Misuse::LayoutNotModeled`] for now. For
//! an x86 frame whose function has frame size `F` and whose SP is `sp`:
//!
//! ```text
//!   argp = fp  ->  +-----------------------+  caller's outgoing args
//!                  | return address        |  fp - P
//!   varp (amd64)-> | caller's BP (saved)   |  fp - 2P, amd64 only, when F > 0
//!                  | locals                |  [sp, varp)
//!   sp          -> +-----------------------+
//! ```
//!
//! with `fp = sp + F + P`, `varp = fp - P` (386, or amd64 with no frame) or
//! `fp - 2P` (amd64 with a frame), as Go's unwinder computes them
//! (`unwinder.resolveInternal`, runtime/traceback.go). `F` is the frame size
//! of the TEXT line (on amd64 it includes the saved-BP slot; see
//! `spec::guard`).
//!
//! On arm64 a call leaves the return address in LR; the callee's prologue
//! stores it at `0(SP)` of its new frame and stores the caller's frame
//! pointer one word *below* its SP. So `fp = sp + F`, `varp = fp - 8` (the
//! word where the caller saved its own caller's FP), `argp = fp + 8`, and
//! the innermost frame's saved FP lies outside every frame, which is why
//! copystack copies and adjusts it separately (adjustctxt; Go 1.23 only,
//! Go 1.19 leaves arm64's frame pointers unadjusted).
//!
//! A return address is a PC that encodes the calling function and its call
//! site: `PC_BASE + func * PC_STRIDE + site`. The goroutine's bottom return
//! address is `GOEXIT_PC`. The unwinder reads return addresses from stack
//! memory, so a corrupted one is a throw ("unknown caller pc"), as in Go.
//!
//! # What is simplified
//! - Channel operations are receives that park (the case where another
//!   goroutine writes into the parked goroutine's stack); a select names
//!   distinct channels.
//! - The CAS that Go uses below `sghi` is a plain write here: the spec is
//!   sequential, and the CAS matters only against a concurrent sender,
//!   which the loom models of the implementation explore.
//! - A goroutine runs only inside an operation; between operations it is
//!   runnable (or waiting, in a syscall, or dead).

use crate::gothrow::{GoThrow, Misuse};
use crate::profile::Goarch;
use crate::stack::{Ctx, Stack, State};
use crate::throw::{Invalid, Throw};
use serde::Serialize;
use std::collections::BTreeMap;

/// The first PC of the function table.
pub const PC_BASE: u64 = 0x40_0000;
/// PCs per function: a function's call sites are `PC_BASE + f*PC_STRIDE +
/// site`.
pub const PC_STRIDE: u64 = 0x1_0000;
/// The return address at the bottom of every goroutine
/// (`goexit + PCQuantum`).
pub const GOEXIT_PC: u64 = PC_BASE - 0x10 + 1;

/// A word of a function's pointer map: true for a pointer slot.
pub type Bitmap = Vec<bool>;

/// A call site's pointer maps (Go's stack maps, indexed by the PC's
/// `PCDATA_StackMapIndex`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Site {
    /// Locals: bit `i` is the word at `varp - len*P + i*P`.
    pub locals: Bitmap,
    /// Arguments: bit `i` is the word at `argp + i*P`.
    pub args: Bitmap,
}

/// A stack object: an addressed local (or argument) the GC and copystack
/// treat as a whole, live or not (`stackObjectRecord`, runtime/stack.go).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StackObject {
    /// Offset from varp (negative) or from argp (zero or positive).
    pub off: i64,
    /// Size in bytes.
    pub size: u64,
    /// Its pointer bitmap, one bit per word from its start.
    pub ptrs: Bitmap,
}

/// A function: what Go's funcdata says about its frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Func {
    /// Its name, for messages.
    pub name: String,
    /// The frame size of its TEXT line (see `spec::guard`).
    pub frame_size: u64,
    /// Bytes of arguments and results it reads from its caller's frame.
    pub args_size: u64,
    /// `funcMaxSPDelta`: the largest SP delta in the function (at least the
    /// frame size).
    pub max_sp_delta: u64,
    /// NOSPLIT: no prologue check.
    pub nosplit: bool,
    /// Call sites; site 0 is where the function stands after its prologue.
    pub sites: Vec<Site>,
    /// Stack objects.
    pub objects: Vec<StackObject>,
}

impl Func {
    /// A function with a frame of `frame_size` bytes, no pointers, one site.
    pub fn new(name: &str, frame_size: u64) -> Func {
        Func {
            name: name.to_string(),
            frame_size,
            args_size: 0,
            max_sp_delta: frame_size,
            nosplit: false,
            sites: vec![Site::default()],
            objects: Vec::new(),
        }
    }
}

/// Where a goroutine's innermost function stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Pc {
    /// At the entry of the function (in its prologue, frame not allocated).
    Entry(usize),
    /// At a call site of the function, its frame allocated.
    At(usize, usize),
}

/// `_Grunnable`, `_Grunning`, ... (runtime/runtime2.go).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub enum GStatus {
    /// Ready to run (between operations).
    Runnable,
    /// On a CPU, inside the parking steps.
    Running,
    /// In a system call.
    Syscall,
    /// Blocked (parked on channels).
    Waiting,
    /// Finished.
    Dead,
}

/// A goroutine (`g`, runtime/runtime2.go): the fields the stack system
/// reads and writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct G {
    /// Its stack; `lo == hi == 0` when it has none.
    pub stack: Stack,
    /// `stackguard0`.
    pub stackguard0: u64,
    /// `atomicstatus`, without the scan bit.
    pub status: GStatus,
    /// `sched.sp`.
    pub sp: u64,
    /// `sched.pc`, as the innermost function and where it stands.
    pub pc: Pc,
    /// `sched.bp`: the frame pointer register (amd64, arm64).
    pub bp: u64,
    /// `sched.lr`: the link register (arm64), holding the return address
    /// until the prologue saves it.
    pub lr: u64,
    /// `sched.ctxt`: the closure context register.
    pub ctxt: u64,
    /// `stktopsp`: the SP at the bottom frame, to check unwinds.
    pub stktopsp: u64,
    /// `syscallsp`: non-zero while in a system call.
    pub syscallsp: u64,
    /// `asyncSafePoint`: stopped at an asynchronous safe point.
    pub async_safe_point: bool,
    /// `preemptShrink`: shrink at the next synchronous safe point.
    pub preempt_shrink: bool,
    /// `preempt`: a preemption was requested (`preemptone`); survives a
    /// refused preemption in newstack, and `exitsyscall` re-arms the guard
    /// from it. Cleared when the goroutine is scheduled (`execute`) or
    /// suspended by the GC (`suspendG`).
    pub preempt: bool,
    /// `throwsplit`: between `entersyscall` and `exitsyscall` a stack
    /// split is fatal.
    pub throwsplit: bool,
    /// Between `syscall_runtime_BeforeFork` and `AfterFork`
    /// (runtime/proc.go): the M holds a lock (`m.locks`), so it cannot be
    /// preempted, and `stackguard0` was set to stackFork.
    pub forking: bool,
    /// `gcscandone`: the GC's stack root job for this goroutine ran in the
    /// present cycle (reset for every goroutine by `gcStart`).
    pub gcscandone: bool,
    /// `parkingOnChan`.
    pub parking_on_chan: bool,
    /// `activeStackChans`.
    pub active_stack_chans: bool,
    /// `selectDone`: a sender has already chosen one of its select cases.
    pub select_done: bool,
    /// `waiting`: its sudogs, in `waitlink` order.
    pub waiting: Vec<u32>,
    /// `_defer`: the first defer record (0 for none).
    pub defer_head: u64,
    /// `_panic`: the first panic record (0 for none).
    pub panic_head: u64,
    /// A test wrote a raw word into its stack ([`State::poke`]); its frames
    /// may no longer unwind, so the invariant checker does not ask them to.
    pub corrupted: bool,
}

/// A channel (`hchan`): its element size, its lock, and its waiting
/// receivers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Chan {
    /// `elemsize`, a multiple of the pointer size.
    pub elemsize: u64,
    /// The goroutine holding `lock` (a parking goroutine between its first
    /// parking step and chanparkcommit), if any.
    pub locked_by: Option<u32>,
    /// `recvq`: sudogs of parked receivers, first to be served first.
    pub recvq: Vec<u32>,
}

/// A sudog: a goroutine waiting on a channel, and where the value goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sudog {
    /// The waiting goroutine.
    pub g: u32,
    /// The channel.
    pub c: u32,
    /// `elem`: the receive slot, in the goroutine's stack.
    pub elem: u64,
    /// `isSelect`.
    pub is_select: bool,
}

/// Counters of what the stack system did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GStats {
    /// Stack growths (newstack copies to a larger stack).
    pub growths: u64,
    /// Shrinks.
    pub shrinks: u64,
    /// Forced moves to a stack of the same size.
    pub moves: u64,
    /// Bytes copied by copystack.
    pub bytes_copied: u64,
}

/// The goroutine part of the state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Goroutines {
    /// The function table.
    pub funcs: Vec<Func>,
    /// Goroutines by id.
    pub gs: BTreeMap<u32, G>,
    /// The id of the next goroutine.
    pub next_g: u32,
    /// Word memory: address to value (absent words read as 0).
    pub mem: BTreeMap<u64, u64>,
    /// Channels by id.
    pub chans: BTreeMap<u32, Chan>,
    /// Sudogs by id.
    pub sudogs: BTreeMap<u32, Sudog>,
    /// The id of the next sudog.
    pub next_sudog: u32,
    /// Per P: dead goroutines kept for reuse (`p.gFree`), last freed first.
    pub p_gfree: BTreeMap<u32, Vec<u32>>,
    /// `sched.gFree`: dead goroutines with a stack, then without.
    pub sched_gfree_stack: Vec<u32>,
    /// `sched.gFree.noStack`.
    pub sched_gfree_nostack: Vec<u32>,
    /// `startingStackSize`.
    pub starting_stack_size: u64,
    /// `maxstacksize` (as `runtime.main` sets it, or `debug.SetMaxStack`).
    pub maxstacksize: u64,
    /// Per P: (`scannedStackSize`, `scannedStacks`).
    pub scanned: BTreeMap<u32, (u64, u64)>,
    /// The GC root job `markrootFreeGStacks` has run in this cycle (reset
    /// by `gcStart`).
    pub free_g_stacks_done: bool,
    /// `work.nStackRoots`: the goroutines that existed at `gcStart` (ids
    /// below this) are the cycle's stack roots, each scanned once; later
    /// ones are not scanned.
    pub n_stack_roots: u32,
    /// Heap words for heap-allocated defer records: the next free address
    /// in the current heap span, and its end.
    pub heap_bump: (u64, u64),
    /// Ms (threads) made by [`State::create_m`] and not exited, by id.
    pub ms: BTreeMap<u32, MStacks>,
    /// `sched.freem`: exited Ms whose g0 stack waits for the next `allocm`
    /// to free it, oldest first (the list's head is the Vec's end).
    pub freem: Vec<(u32, Stack)>,
    /// The id of the next M.
    pub next_m: u32,
    /// Counters.
    pub stats: GStats,
}

/// The stacks an M takes from the stack allocator on linux: its g0 (the
/// stack the scheduler and `systemstack` run on) and its signal-handling
/// goroutine's (`gsignal`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MStacks {
    /// `m.g0.stack`.
    pub g0: Stack,
    /// `m.gsignal.stack`.
    pub gsignal: Stack,
}

/// What a word written into a frame is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Slot {
    /// Word `i` of the frame's locals area, counted up from its bottom:
    /// the address `varp - room + i*P`, where `room` is the whole area
    /// below varp (the frame less the saved BP on amd64; less the saved LR
    /// and frame-pointer words on arm64). A site's locals map describes the
    /// top `len` words of that area (bit `j` is the word at
    /// `varp - len*P + j*P`), so `Local(i)` is bit `i` of the map only
    /// when the map covers the whole area; otherwise it is bit
    /// `i - (room/P - len)`, and words below the map are not pointers.
    Local(usize),
    /// Word `i` of the arguments.
    Arg(usize),
    /// Word `w` of stack object `o`.
    Object(usize, usize),
}

/// `asyncPreemptStack` (runtime/preempt.go `init`, Go 1.19 and 1.23): the
/// bytes an async preemption needs between SP and `stack.lo`, the largest
/// SP deltas of `asyncPreempt` (assembly that saves every register) and of
/// `asyncPreempt2`, plus eight words for return PCs. Measured by reading
/// the variable from programs built by both releases (the same in both;
/// the runtime is never race-instrumented): amd64 384 + 24 + 64, 386
/// 160 + 8 + 32, arm64 496 + 32 + 64. `None` for the architectures whose
/// frames are not modelled.
pub fn async_preempt_stack(goarch: Goarch) -> Option<u64> {
    match goarch {
        Goarch::Amd64 => Some(472),
        Goarch::I386 => Some(200),
        Goarch::Arm64 => Some(592),
        _ => None,
    }
}

/// A word of the spec's defer record: the `_defer` fields (runtime/
/// runtime2.go) that copystack's `adjustdefers` (runtime/stack.go)
/// adjusts, in the order it adjusts them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DeferField {
    /// `d.fn`: the deferred closure (a stack address for a closure whose
    /// context lives on the stack).
    Fn,
    /// `d.sp`: the deferring frame's SP.
    Sp,
    /// `d._panic` (Go 1.19 only): the panic running the defer (a record
    /// in `gopanic`'s frame, so on the stack).
    Panic,
    /// `d.link`: the next record.
    Link,
    /// `d.varp` (Go 1.19 only): the deferring frame's `varp`, which the
    /// records of open-coded defers carry.
    Varp,
}

/// The spec's defer record for `release`, one word per field. Go 1.23's
/// `adjustdefers` adjusts `fn`, `sp` and `link`; Go 1.19's also
/// `_panic`, `varp` and `fd`. The fields neither adjusts (the flags, `pc`,
/// `framepc`, 1.23's `head`, which lives on the heap) are left out, and so
/// is 1.19's `fd`: it points at funcdata in read-only data, never into a
/// stack, so adjusting it never changes it.
pub fn defer_fields(release: crate::profile::Release) -> &'static [DeferField] {
    use DeferField::*;
    match release {
        crate::profile::Release::Go1_19 => &[Fn, Sp, Panic, Link, Varp],
        crate::profile::Release::Go1_23 => &[Fn, Sp, Link],
    }
}

/// The word index of `link` in the defer record of `release`.
pub fn defer_link_index(release: crate::profile::Release) -> u64 {
    defer_fields(release)
        .iter()
        .position(|&f| f == DeferField::Link)
        .unwrap_or(0) as u64
}

/// The stack sizes `allocm` asks for on `profile`, (gsignal, g0); see
/// [`State::m_stack_sizes`].
pub fn m_stack_sizes(profile: crate::Profile) -> Result<(u64, u64), Throw> {
    if profile.goos != crate::profile::Goos::Linux {
        return Err(Misuse::MStacksNotModeled(profile.goos.name()).into());
    }
    let c = profile.consts();
    let g0 = match profile.release {
        crate::profile::Release::Go1_19 => 8192,
        crate::profile::Release::Go1_23 => 16384,
    } * c.guard_multiplier;
    let sys = c.stack_system;
    Ok((
        (sys + 32 * 1024).next_power_of_two(),
        (sys + g0).next_power_of_two(),
    ))
}

fn bits(v: &[bool]) -> u64 {
    v.len() as u64
}

impl State {
    fn ptr(&self) -> u64 {
        self.consts.ptr_size
    }

    /// The byte offset of `link` in a defer record.
    fn defer_link_offset(&self) -> u64 {
        defer_link_index(self.config.profile.release) * self.ptr()
    }

    fn word_mask(&self) -> u64 {
        if self.ptr() == 8 {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        }
    }

    fn require_layout(&self) -> Result<(), Throw> {
        match self.config.profile.goarch {
            Goarch::Amd64 | Goarch::I386 | Goarch::Arm64 => Ok(()),
            a => Err(Misuse::LayoutNotModeled(a.name()).into()),
        }
    }

    /// Whether copystack adjusts arm64's saved frame pointers: Go 1.23 does
    /// (adjustframe and adjustctxt); Go 1.19 adjusts only amd64's, leaving
    /// arm64's pointing into the old stack (golang/go#58432).
    pub(crate) fn arm64_fp_adjusted(&self) -> bool {
        self.config.profile.goarch == Goarch::Arm64
            && self.config.profile.release != crate::profile::Release::Go1_19
    }

    /// Whether CALL leaves the return address in the link register (arm64)
    /// rather than pushing it (x86).
    fn uses_lr(&self) -> bool {
        self.config.profile.goarch == Goarch::Arm64
    }

    /// `sys.MinFrameSize`: the caller's saved-LR word that sits between a
    /// callee's frame and its arguments on link-register machines.
    fn min_frame(&self) -> u64 {
        if self.uses_lr() {
            self.ptr()
        } else {
            0
        }
    }

    /// fp, varp and argp of a frame of `size` bytes at `sp`, as
    /// `unwinder.resolveInternal` computes them (runtime/traceback.go).
    fn geometry(&self, size: u64, sp: u64) -> (u64, u64, u64) {
        let p = self.ptr();
        let fp = if self.uses_lr() {
            sp + size
        } else {
            sp + size + p
        };
        let mut varp = if self.uses_lr() { fp } else { fp - p };
        // amd64 and arm64 save a frame pointer in every frame that has one.
        let fp_enabled = matches!(self.config.profile.goarch, Goarch::Amd64 | Goarch::Arm64);
        if fp_enabled && varp > sp {
            varp -= p;
        }
        (fp, varp, fp + self.min_frame())
    }

    /// Reads a word of memory.
    pub fn read_word(&self, addr: u64) -> u64 {
        self.gor.mem.get(&addr).copied().unwrap_or(0)
    }

    fn write_mem(&mut self, addr: u64, v: u64) {
        let v = v & self.word_mask();
        if v == 0 {
            self.gor.mem.remove(&addr);
        } else {
            self.gor.mem.insert(addr, v);
        }
    }

    fn g(&self, id: u32) -> Result<&G, Throw> {
        self.gor
            .gs
            .get(&id)
            .ok_or_else(|| Misuse::NoSuchG(id).into())
    }

    fn g_mut(&mut self, id: u32) -> Result<&mut G, Throw> {
        self.gor
            .gs
            .get_mut(&id)
            .ok_or_else(|| Misuse::NoSuchG(id).into())
    }

    /// Adds a function to the table after checking that its frame
    /// description fits its frame; returns its index.
    pub fn add_func(&mut self, f: Func) -> Result<usize, Throw> {
        self.alive()?;
        self.require_layout()?;
        let p = self.ptr();
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
            // cmd/internal/obj/arm64 preprocess: the frame holds the saved LR
            // and is 16-byte aligned.
            return bad(format!(
                "an arm64 frame is 0 or a multiple of 16, not {}",
                f.frame_size
            ));
        }
        if f.frame_size > crate::guard::MAX_FRAMESIZE || f.args_size > crate::guard::MAX_FRAMESIZE {
            return bad("frame or args larger than the assembler's int32".into());
        }
        if f.max_sp_delta > crate::guard::MAX_FRAMESIZE {
            // funcMaxSPDelta is an int32; a larger one would make newstack's
            // doubling loop overflow.
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
        let locals_room = self.locals_room(&f);
        let (nl, na) = (f.sites[0].locals.len(), f.sites[0].args.len());
        if f.sites
            .iter()
            .any(|s| s.locals.len() != nl || s.args.len() != na)
        {
            // Go's stack maps have one bit count per function.
            return bad("every site's locals (and args) map must have the same length".into());
        }
        for (i, s) in f.sites.iter().enumerate() {
            if bits(&s.locals) * p > locals_room || bits(&s.args) * p > f.args_size {
                return bad(format!("site {i}'s pointer maps run past the frame ({locals_room} bytes of locals, {} of args)", f.args_size));
            }
        }
        for (i, o) in f.objects.iter().enumerate() {
            let fits = if o.off < 0 {
                o.off.unsigned_abs() <= locals_room && o.size <= o.off.unsigned_abs()
            } else {
                (o.off as u64)
                    .checked_add(o.size)
                    .is_some_and(|end| end <= f.args_size)
            };
            if o.off.unsigned_abs() % p != 0
                || o.size % p != 0
                || !fits
                || bits(&o.ptrs) * p > o.size
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
        self.gor.funcs.push(f);
        Ok(self.gor.funcs.len() - 1)
    }

    /// Bytes of locals, from the bottom of the locals area up to varp: on
    /// x86 the frame less the saved-BP slot (amd64); on arm64 the frame less
    /// the saved-LR word at 0(SP) and the frame-pointer word at the top.
    fn locals_room(&self, f: &Func) -> u64 {
        let (_, varp, _) = self.geometry(f.frame_size, 0);
        if self.uses_lr() {
            varp.saturating_sub(self.ptr())
        } else {
            varp
        }
    }

    /// Whether a frame of this size saves the caller's BP on its own top
    /// (amd64 with a frame: framepointer_enabled).
    fn saves_bp(&self, frame_size: u64) -> bool {
        self.config.profile.goarch == Goarch::Amd64 && frame_size > 0
    }

    fn encode_pc(&self, func: usize, site: usize) -> u64 {
        PC_BASE + func as u64 * PC_STRIDE + site as u64
    }

    /// The function and site a return address names (`findfunc` and the
    /// stack-map index), or None.
    fn decode_pc(&self, pc: u64) -> Option<(usize, usize)> {
        let rel = pc.checked_sub(PC_BASE)?;
        let (f, site) = ((rel / PC_STRIDE) as usize, (rel % PC_STRIDE) as usize);
        let func = self.gor.funcs.get(f)?;
        (site < func.sites.len()).then_some((f, site))
    }
}

/// One frame as the unwinder sees it (`stkframe`, runtime/stkframe.go).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The function.
    pub func: usize,
    /// The call site, or None at the function's entry.
    pub site: Option<usize>,
    /// Lowest address of the frame.
    pub sp: u64,
    /// The caller's SP (above the return address).
    pub fp: u64,
    /// Top of the locals.
    pub varp: u64,
    /// Start of the arguments.
    pub argp: u64,
}

impl State {
    /// The frames of goroutine `gid`, innermost first, read from its stack
    /// memory as Go's unwinder reads them (runtime/traceback.go). Ends at
    /// the goexit return address, where the SP must be `stktopsp`.
    pub fn frames(&self, gid: u32) -> Result<Vec<Frame>, Throw> {
        let g = self.g(gid)?;
        if g.status == GStatus::Dead {
            return Err(Misuse::GNotRunnable(gid).into());
        }
        let p = self.ptr();
        let mut out = Vec::new();
        let (mut func, mut site) = match g.pc {
            Pc::Entry(f) => (f, None),
            Pc::At(f, s) => (f, Some(s)),
        };
        let mut sp = g.sp;
        loop {
            let f = &self.gor.funcs[func];
            let size = if site.is_some() { f.frame_size } else { 0 };
            let (fp, varp, argp) = self.geometry(size, sp);
            out.push(Frame {
                func,
                site,
                sp,
                fp,
                varp,
                argp,
            });
            if fp > g.stack.hi || out.len() as u64 > (g.stack.hi - g.stack.lo) / p {
                return Err(GoThrow::UnknownCallerPc.into());
            }
            // The return address: pushed just below fp on x86; on arm64 saved
            // at 0(SP) by the prologue, or still in LR for the innermost
            // function before its prologue.
            let lr = if !self.uses_lr() {
                self.read_word(fp - p)
            } else if size > 0 {
                self.read_word(sp)
            } else if out.len() == 1 {
                g.lr
            } else {
                return Err(GoThrow::UnknownCallerPc.into());
            };
            if lr == GOEXIT_PC {
                if fp != g.stktopsp {
                    return Err(GoThrow::TracebackDidNotUnwind.into());
                }
                return Ok(out);
            }
            let (cf, cs) = self
                .decode_pc(lr)
                .ok_or(Throw::Go(GoThrow::UnknownCallerPc))?;
            func = cf;
            site = Some(cs);
            sp = fp;
        }
    }

    /// Creates a goroutine that will run function `func`, and runs it at
    /// once on the same M: [`State::newproc`] then [`State::start`], as one
    /// operation (Go's `newproc` puts the new goroutine in the P's
    /// `runnext`, so this is the schedule where the spawner yields right
    /// away).
    ///
    /// A NOSPLIT entry function whose frame does not fit on the stack the
    /// goroutine would get is refused ([`Misuse::NosplitEntryOverrun`])
    /// before anything changes, ahead of any throw the allocation could
    /// raise: a refusal is decided before the first mutation.
    pub fn spawn(&mut self, ctx: Ctx, func: usize) -> Result<u32, Throw> {
        self.require_world_running()?;
        self.transact(|s| {
            let p = s.newproc_checks(ctx, func)?;
            s.spawn_entry_fits(p, func)?;
            let id = s.newproc_inner(ctx, func)?;
            s.start_inner(ctx, id)?;
            Ok(id)
        })
    }

    /// Creates a goroutine that will run function `func`; it has not run
    /// yet.
    ///
    /// Go: `newproc1` (runtime/proc.go): a dead goroutine from `gfget` or a
    /// new one from `malg(stackMin)`, then `gostartcallfn` pushes the goexit
    /// return address below `stktopsp` and points `sched.pc` at the entry.
    /// The entry's prologue and frame run when a scheduler first runs the
    /// goroutine ([`State::start`]); until then its used stack is only
    /// the top words newproc1 leaves (40 bytes on amd64), which is what a
    /// GC scan counts.
    pub fn newproc(&mut self, ctx: Ctx, func: usize) -> Result<u32, Throw> {
        self.require_world_running()?;
        self.transact(|s| s.newproc_inner(ctx, func))
    }

    /// A scheduler on the M of `ctx` runs goroutine `gid` for the first
    /// time (`execute`, then `gogo` to the entry): its entry's prologue
    /// check (growing in this M's context if needed) and frame push.
    /// Refused ([`Misuse::NotAtEntry`]) for a goroutine that already ran.
    pub fn start(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
        self.require_world_running()?;
        self.transact(|s| {
            let g = s.g(gid)?;
            if g.status != GStatus::Runnable || !matches!(g.pc, Pc::Entry(_)) {
                return Err(Misuse::NotAtEntry(gid).into());
            }
            let p = ctx.p.ok_or(Throw::Misuse(Misuse::NeedsP("execute")))?;
            s.stack_p_exists(p)?;
            s.start_inner(ctx, gid)
        })
    }

    /// Refuses a spawn whose NOSPLIT entry would overrun the new stack:
    /// its length is `startingStackSize` when `gfget` finds a dead
    /// goroutine (reused at that size or given a new stack of it), the
    /// fixed size of `malg` otherwise, page-rounded when stacks come from
    /// the system; the entry's SP sits `top` bytes below its top (and one
    /// more word on x86 for goexit's return address).
    fn spawn_entry_fits(&self, p: u32, func: usize) -> Result<(), Throw> {
        let f = &self.gor.funcs[func];
        if !f.nosplit {
            return Ok(());
        }
        let found = self.gor.p_gfree.get(&p).is_some_and(|l| !l.is_empty())
            || !self.gor.sched_gfree_stack.is_empty()
            || !self.gor.sched_gfree_nostack.is_empty();
        let n = if found {
            self.gor.starting_stack_size
        } else {
            (self.consts.stack_system + self.consts.stack_min).next_power_of_two()
        };
        let ptr = self.ptr();
        let uses_lr = self.uses_lr();
        let top = (4 * ptr + self.min_frame()).next_multiple_of(if uses_lr { 16 } else { ptr });
        let room = self.stack_len(n) - top - if uses_lr { 0 } else { ptr };
        let below = if uses_lr && f.frame_size > 0 { ptr } else { 0 };
        if room < f.frame_size + below + self.consts.stack_system {
            return Err(Misuse::NosplitEntryOverrun(f.name.clone()).into());
        }
        Ok(())
    }

    fn start_inner(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
        self.execute(gid)?;
        self.enter(ctx, gid)
    }

    /// `newproc`'s refusals; returns the P.
    fn newproc_checks(&self, ctx: Ctx, func: usize) -> Result<u32, Throw> {
        self.require_layout()?;
        let p = ctx.p.ok_or(Throw::Misuse(Misuse::NeedsP("newproc")))?;
        self.stack_p_exists(p)?;
        if func >= self.gor.funcs.len() {
            return Err(Misuse::NoSuchFunc(func).into());
        }
        if self.gor.funcs[func].args_size != 0 {
            // newproc1 starts only a func() (the compiler wraps a go
            // statement's call in a closure without arguments).
            let name = self.gor.funcs[func].name.clone();
            return Err(Misuse::BadFunc(
                name,
                "a goroutine's entry function takes no arguments".into(),
            )
            .into());
        }
        Ok(p)
    }

    fn newproc_inner(&mut self, ctx: Ctx, func: usize) -> Result<u32, Throw> {
        let p = self.newproc_checks(ctx, func)?;
        let s = self;
        let id = match s.gfget(ctx, p)? {
            Some(id) => {
                crate::coverage::hit("gfget: reuse a dead goroutine");
                id
            }
            None => {
                crate::coverage::hit("malg: a new goroutine");
                // malg(stackMin): round2(stackSystem + stackMin), i.e.
                // fixedStack, whatever startingStackSize is.
                let n = (s.consts.stack_system + s.consts.stack_min).next_power_of_two();
                let stk = s.stackalloc_inner(ctx, n)?;
                // malg zeroes the stack's lowest word.
                s.write_mem(stk.lo, 0);
                let id = s.gor.next_g;
                s.gor.next_g += 1;
                s.gor.gs.insert(id, s.new_g(stk));
                id
            }
        };
        let ptr = s.ptr();
        let guard = s.consts.stack_guard;
        let uses_lr = s.uses_lr();
        let top = (4 * ptr + s.min_frame()).next_multiple_of(if uses_lr { 16 } else { ptr });
        let g = s.g_mut(id)?;
        // newproc1: leave 4 words (and MinFrameSize) at the top, aligned
        // to StackAlign; gostartcall pushes the goexit return address
        // (x86) or puts it in LR (arm64). execute() gives the guard back
        // when the goroutine is scheduled, which here is at once.
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
            s.write_mem(sp, GOEXIT_PC);
        } else {
            // The caller's LR slot at the top frame is zeroed; Go 1.23
            // zeroes the caller's FP word below it too.
            s.write_mem(sp, 0);
            if s.config.profile.release != crate::profile::Release::Go1_19 {
                s.write_mem(sp - ptr, 0);
            }
        }
        Ok(id)
    }

    fn new_g(&self, stk: Stack) -> G {
        G {
            stack: stk,
            stackguard0: stk.lo + self.consts.stack_guard,
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

    fn stack_p_exists(&self, p: u32) -> Result<(), Throw> {
        if self.ps.contains_key(&p) {
            Ok(())
        } else {
            Err(Misuse::NoSuchP(p).into())
        }
    }

    /// Go: `gfget` (runtime/proc.go): a dead goroutine from P's free list
    /// (refilled from the global lists up to 32), its stack replaced when
    /// it is not of `startingStackSize`.
    fn gfget(&mut self, ctx: Ctx, p: u32) -> Result<Option<u32>, Throw> {
        let local = self.gor.p_gfree.entry(p).or_default();
        if local.is_empty() {
            while local.len() < 32 {
                let next = if let Some(g) = self.gor.sched_gfree_stack.pop() {
                    g
                } else if let Some(g) = self.gor.sched_gfree_nostack.pop() {
                    g
                } else {
                    break;
                };
                local.push(next);
            }
        }
        let Some(id) = self.gor.p_gfree.entry(p).or_default().pop() else {
            return Ok(None);
        };
        let stk = self.g(id)?.stack;
        let start = self.gor.starting_stack_size;
        if stk.lo != 0 && stk.hi - stk.lo != start {
            crate::coverage::hit("gfget: drop a stack of the wrong size");
            self.stackfree_inner(ctx, stk)?;
            self.g_mut(id)?.stack = Stack { lo: 0, hi: 0 };
        }
        if self.g(id)?.stack.lo == 0 {
            let stk = self.stackalloc_inner(ctx, start)?;
            let guard = stk.lo + self.consts.stack_guard;
            let g = self.g_mut(id)?;
            g.stack = stk;
            g.stackguard0 = guard;
        }
        // Only the stack survives from the dead goroutine's fields here,
        // and two flags gfput, gfget and newproc1 (runtime/proc.go) leave
        // alone: `preemptShrink` (Go clears it only in newstack's
        // preemption branch, so a shrink the GC asked of the goroutine's
        // previous life happens at the new one's first preemption) and
        // `gcscandone` (a root scanned while dead is not scanned again in
        // the cycle).
        let old = self.g(id)?;
        let mut fresh = self.new_g(old.stack);
        fresh.preempt_shrink = old.preempt_shrink;
        fresh.gcscandone = old.gcscandone;
        *self.g_mut(id)? = fresh;
        Ok(Some(id))
    }

    /// Runs the entry of the innermost function (at `Pc::Entry`): its
    /// prologue check (unless NOSPLIT), `newstack` while it fails, then the
    /// frame push (on amd64 the caller's BP is saved at the top of the
    /// frame and BP points at it).
    fn enter(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
        let Pc::Entry(func) = self.g(gid)?.pc else {
            return Err(Misuse::NotAtEntry(gid).into());
        };
        let f = self.gor.funcs[func].clone();
        if !f.nosplit {
            // A preemption request is served once; growth may need a
            // second pass (newstack doubles until the frame fits).
            for _ in 0..64 {
                let g = self.g(gid)?;
                if !crate::guard::needs_morestack(
                    &self.config.profile,
                    f.frame_size,
                    g.sp,
                    g.stackguard0,
                )? {
                    break;
                }
                self.newstack(ctx, gid)?;
            }
        }
        let p = self.ptr();
        let g = self.g(gid)?.clone();
        // arm64 also stores the caller's FP one word below the new SP.
        let below = if self.uses_lr() && f.frame_size > 0 {
            p
        } else {
            0
        };
        // The bottom StackSystem bytes belong to the OS (Windows, Plan 9,
        // iOS): the linker's nosplit limit (StackGuard - StackSystem -
        // StackSmall below a passing check) keeps every frame above them.
        let floor = g.stack.lo + self.consts.stack_system;
        let new_sp =
            g.sp.checked_sub(f.frame_size + below)
                .filter(|&sp| sp >= floor)
                .map(|sp| sp + below);
        let Some(new_sp) = new_sp else {
            // Only a NOSPLIT function can get here: a program the linker's
            // nosplit check rejects.
            return Err(Misuse::NosplitOverrun(gid).into());
        };
        let mut bp = g.bp;
        if self.uses_lr() {
            if f.frame_size > 0 {
                // MOVD.W R30, -framesize(RSP); MOVD R29, -8(RSP);
                // SUB $8, RSP, R29.
                self.write_mem(new_sp, g.lr);
                self.write_mem(new_sp - p, g.bp);
                bp = new_sp - p;
            }
        } else if self.saves_bp(f.frame_size) {
            // PUSHQ BP; MOVQ SP, BP.
            let slot = g.sp - p;
            self.write_mem(slot, g.bp);
            bp = slot;
        }
        // The compiler zeroes the frame's pointer slots (every word any
        // site's locals map marks, and the stack objects) before they can
        // be live; other words keep whatever the memory held.
        let (_, varp, _) = self.geometry(f.frame_size, new_sp);
        let nbit = f.sites[0].locals.len() as u64;
        for i in 0..nbit as usize {
            if f.sites.iter().any(|s| s.locals[i]) {
                self.write_mem(varp - nbit * p + i as u64 * p, 0);
            }
        }
        for o in f.objects.iter().filter(|o| o.off < 0) {
            for w in 0..o.size / p {
                self.write_mem(varp - o.off.unsigned_abs() + w * p, 0);
            }
        }
        let g = self.g_mut(gid)?;
        g.sp = new_sp;
        g.bp = bp;
        g.pc = Pc::At(func, 0);
        Ok(())
    }

    /// The innermost function calls `callee` from its call site `site`: the
    /// CALL pushes the return address, then the callee's entry runs.
    pub fn call(&mut self, ctx: Ctx, gid: u32, site: usize, callee: usize) -> Result<(), Throw> {
        self.require_world_running()?;
        self.transact(|s| {
            s.require_can_call(gid, false)?;
            let Pc::At(func, _) = s.g(gid)?.pc else {
                return Err(Misuse::NotAtEntry(gid).into());
            };
            if site >= s.gor.funcs[func].sites.len() {
                return Err(Misuse::NoSuchSite(func, site).into());
            }
            if callee >= s.gor.funcs.len() {
                return Err(Misuse::NoSuchFunc(callee).into());
            }
            let p = s.ptr();
            let g = s.g(gid)?.clone();
            let ret = s.encode_pc(func, site);
            if s.uses_lr() && s.gor.funcs[func].frame_size == 0 {
                // BL leaves the return address in LR, which only a function
                // with a frame can have saved.
                let name = s.gor.funcs[func].name.clone();
                return Err(Misuse::BadFunc(
                    name,
                    "a frameless arm64 function cannot call".into(),
                )
                .into());
            }
            // The callee's arguments are the caller's outgoing argument
            // area, the bottom of its locals: a callee with more arguments
            // than that would read (and write) the caller's saved BP and
            // return address as arguments, which no compiled Go program
            // does.
            let room = s.locals_room(&s.gor.funcs[func]);
            if s.gor.funcs[callee].args_size > room {
                return Err(Misuse::BadFunc(
                    s.gor.funcs[callee].name.clone(),
                    format!(
                        "its {} bytes of arguments do not fit in the {room} bytes of locals of its caller {}",
                        s.gor.funcs[callee].args_size, s.gor.funcs[func].name
                    ),
                )
                .into());
            }
            if s.uses_lr() {
                // BL: the return address goes to LR, which only a function
                // with a frame can have saved (checked above).
                s.g_mut(gid)?.lr = ret;
            } else {
                // CALL pushes the return address (above the StackSystem
                // area, as every frame).
                if g.sp < g.stack.lo + s.consts.stack_system + p {
                    return Err(Misuse::NosplitOverrun(gid).into());
                }
                s.write_mem(g.sp - p, ret);
                s.g_mut(gid)?.sp -= p;
            }
            s.g_mut(gid)?.pc = Pc::Entry(callee);
            s.enter(ctx, gid)
        })
    }

    /// The innermost function returns: its frame is popped, BP restored
    /// (amd64), and the return address popped. Returning from the bottom
    /// function ends the goroutine (`goexit`).
    pub fn ret(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
        self.require_world_running()?;
        self.transact(|s| {
            s.require_can_call(gid, true)?;
            // RET looks only at the innermost frame (its own return
            // address), never at the outer ones.
            let g0 = s.g(gid)?.clone();
            let Pc::At(func, site) = g0.pc else {
                return Err(Misuse::NotAtEntry(gid).into());
            };
            let (fp, varp, argp) = s.geometry(s.gor.funcs[func].frame_size, g0.sp);
            let top = &Frame {
                func,
                site: Some(site),
                sp: g0.sp,
                fp,
                varp,
                argp,
            };
            let p = s.ptr();
            let f = &s.gor.funcs[top.func];
            let g = s.g(gid)?;
            let (saved_bp, ret) = if s.uses_lr() {
                if f.frame_size > 0 {
                    // MOVD -8(RSP), R29; MOVD.P framesize(RSP), R30; RET.
                    (s.read_word(top.sp - p), s.read_word(top.sp))
                } else {
                    (g.bp, g.lr)
                }
            } else if s.saves_bp(f.frame_size) {
                (s.read_word(top.varp), s.read_word(top.fp - p))
            } else {
                (g.bp, s.read_word(top.fp - p))
            };
            if ret == GOEXIT_PC {
                return s.goexit(ctx, gid);
            }
            let (cf, cs) = s
                .decode_pc(ret)
                .ok_or(Throw::Misuse(Misuse::BadReturnAddress(ret)))?;
            let uses_lr = s.uses_lr();
            let g = s.g_mut(gid)?;
            g.sp = top.fp;
            g.bp = saved_bp;
            if uses_lr {
                g.lr = ret;
            }
            g.pc = Pc::At(cf, cs);
            Ok(())
        })
    }

    /// The innermost frame moves to call site `site` (its live pointer maps
    /// change).
    pub fn set_site(&mut self, gid: u32, site: usize) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_runnable(gid)?;
            let Pc::At(f, _) = s.g(gid)?.pc else {
                return Err(Misuse::NotAtEntry(gid).into());
            };
            if site >= s.gor.funcs[f].sites.len() {
                return Err(Misuse::NoSuchSite(f, site).into());
            }
            s.g_mut(gid)?.pc = Pc::At(f, site);
            Ok(())
        })
    }

    /// The goroutine runs Go code: runnable (between operations it stands
    /// for a running goroutine), not waiting on channels, and not stopped
    /// at an asynchronous safe point (Go clears `asyncSafePoint` before it
    /// runs Go code again, runtime/preempt.go `asyncPreempt2`).
    fn require_runnable(&self, gid: u32) -> Result<(), Throw> {
        let g = self.g(gid)?;
        if g.status == GStatus::Runnable && g.waiting.is_empty() && !g.async_safe_point {
            if matches!(g.pc, Pc::Entry(_)) {
                // Between operations only a goroutine that never ran
                // stands at an entry.
                return Err(Misuse::NotStarted(gid).into());
            }
            Ok(())
        } else {
            Err(Misuse::GNotRunnable(gid).into())
        }
    }

    /// As [`State::require_runnable`], and not between BeforeFork and
    /// AfterFork: operations that leave the running code (a system call, a
    /// park, an exit) are not made in the middle of a fork.
    fn require_runnable_not_forking(&self, gid: u32) -> Result<(), Throw> {
        self.require_runnable(gid)?;
        if self.g(gid)?.forking {
            return Err(Misuse::GNotRunnable(gid).into());
        }
        Ok(())
    }

    /// A call or a return can also run in a system call (runtime code
    /// between entersyscall and exitsyscall, which must be NOSPLIT: a
    /// split there throws); a return only from a frame called after
    /// entersyscall.
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

    /// The address of a slot of frame `frame` (0 = innermost).
    pub fn slot_addr(&self, gid: u32, frame: usize, slot: Slot) -> Result<u64, Throw> {
        let frames = self.frames(gid)?;
        let fr = frames
            .get(frame)
            .ok_or(Throw::Misuse(Misuse::NoSuchFrame(gid, frame)))?;
        let f = &self.gor.funcs[fr.func];
        let p = self.ptr();
        let locals = self.locals_room(f);
        let bad = || Throw::Misuse(Misuse::NoSuchSlot(gid, frame));
        match slot {
            Slot::Local(i) if fr.site.is_some() && (i as u64 + 1) * p <= locals => {
                Ok(fr.varp - locals + i as u64 * p)
            }
            Slot::Arg(i) if (i as u64 + 1) * p <= f.args_size => Ok(fr.argp + i as u64 * p),
            Slot::Object(o, w) => {
                let obj = f.objects.get(o).ok_or_else(bad)?;
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

    /// Writes `value` into a slot of frame `frame` (0 = innermost): a
    /// pointer into this stack, a heap pointer, nil, or junk.
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
            if value > s.word_mask() {
                return Err(Invalid::NotAPointer {
                    value,
                    bits: 8 * s.ptr() as u32,
                }
                .into());
            }
            let addr = s.slot_addr(gid, frame, slot)?;
            s.write_mem(addr, value);
            Ok(())
        })
    }

    /// Writes any word of a goroutine's used stack, return addresses
    /// included: the hostile operation that lets tests corrupt frames.
    pub fn poke(&mut self, gid: u32, addr: u64, value: u64) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            let g = s.g(gid)?;
            let p = s.ptr();
            if addr < g.sp || addr >= g.stack.hi || addr % p != 0 || value > s.word_mask() {
                return Err(Misuse::NotInUsedStack(gid, addr).into());
            }
            s.write_mem(addr, value);
            s.g_mut(gid)?.corrupted = true;
            Ok(())
        })
    }

    /// Sets the closure-context register (`sched.ctxt`).
    pub fn set_ctxt(&mut self, gid: u32, value: u64) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_runnable(gid)?;
            s.g_mut(gid)?.ctxt = value & s.word_mask();
            Ok(())
        })
    }

    /// Pushes a defer record for frame `frame` calling `fn_value`: on the
    /// heap, or at a stack object of the frame (`deferprocStack`). The
    /// record holds the fields [`defer_fields`] lists for the release:
    /// {fn, sp, link} in Go 1.23, {fn, sp, _panic, link, varp} in Go 1.19,
    /// where `_panic` is the goroutine's panic head (the panic that would
    /// run the defer) and `varp` the frame's.
    pub fn defer_push(
        &mut self,
        gid: u32,
        frame: usize,
        fn_value: u64,
        on_stack: Option<usize>,
    ) -> Result<u64, Throw> {
        self.require_world_running()?;
        self.transact(|s| {
            s.require_runnable(gid)?;
            let p = s.ptr();
            let fields = defer_fields(s.config.profile.release);
            let words = fields.len() as u64;
            let frames = s.frames(gid)?;
            let fr = frames
                .get(frame)
                .ok_or(Throw::Misuse(Misuse::NoSuchFrame(gid, frame)))?
                .clone();
            let d = match on_stack {
                Some(o) => {
                    let obj = s.gor.funcs[fr.func]
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
                    DeferField::Fn => fn_value,
                    DeferField::Sp => fr.sp,
                    DeferField::Panic => panic,
                    DeferField::Link => head,
                    DeferField::Varp => fr.varp,
                };
                s.write_mem(d + i as u64 * p, v);
            }
            s.g_mut(gid)?.defer_head = d;
            Ok(d)
        })
    }

    /// Pops the first defer record (it ran).
    pub fn defer_pop(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_runnable(gid)?;
            let head = s.g(gid)?.defer_head;
            if head == 0 {
                return Err(Misuse::NoDefer(gid).into());
            }
            let link = s.read_word(head + s.defer_link_offset());
            s.g_mut(gid)?.defer_head = link;
            Ok(())
        })
    }

    /// Sets the head of the panic list (`gp._panic`) to a panic record at a
    /// stack object of frame `frame`; the record's first word links to the
    /// previous head.
    pub fn panic_push(&mut self, gid: u32, frame: usize, object: usize) -> Result<u64, Throw> {
        self.require_world_running()?;
        self.transact(|s| {
            s.require_runnable(gid)?;
            let addr = s.slot_addr(gid, frame, Slot::Object(object, 0))?;
            let head = s.g(gid)?.panic_head;
            s.write_mem(addr, head);
            s.g_mut(gid)?.panic_head = addr;
            Ok(addr)
        })
    }

    /// Takes `n` words of heap memory (for heap defer records), from heap
    /// spans taken one page at a time.
    fn heap_words(&mut self, n: u64) -> Result<u64, Throw> {
        let bytes = n * self.ptr();
        let (next, end) = self.gor.heap_bump;
        if next + bytes <= end && next != 0 {
            self.gor.heap_bump.0 += bytes;
            return Ok(next);
        }
        let base = self.heap.alloc_heap(1)?;
        self.gor.heap_bump = (base + bytes, base + crate::heap::PAGE_SIZE);
        Ok(base)
    }

    /// Asks goroutine `gid` to stop at its next prologue: `stackguard0 =
    /// stackPreempt` (`preemptone`, runtime/proc.go).
    pub fn request_preempt(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            let preempt = s.consts.stack_preempt;
            let g = s.g_mut(gid)?;
            if g.status == GStatus::Dead {
                return Err(Misuse::GNotRunnable(gid).into());
            }
            g.preempt = true;
            g.stackguard0 = preempt;
            Ok(())
        })
    }

    /// Asks for a stack move at the next prologue: `stackguard0 =
    /// stackForceMove`, as `gcTestMoveStackOnNextCall` (runtime/stack.go)
    /// does; the goroutine calls that on itself, so it must be running Go
    /// code (not in a system call, a fork, or parked).
    pub fn request_force_move(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_runnable_not_forking(gid)?;
            let force = s.consts.stack_force_move;
            s.g_mut(gid)?.stackguard0 = force;
            Ok(())
        })
    }

    /// Sets `maxstacksize` (`debug.SetMaxStack`, runtime/debug).
    pub fn set_max_stack(&mut self, bytes: u64) {
        self.gor.maxstacksize = bytes;
    }

    /// Go: `newstack` (runtime/stack.go), entered from morestack with the
    /// goroutine at the entry of the function whose prologue failed.
    fn newstack(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
        let c = self.consts.clone();
        let g = self.g(gid)?.clone();
        if g.stackguard0 == c.stack_fork {
            return Err(GoThrow::StackGrowthAfterFork.into());
        }
        if g.throwsplit {
            // A split between entersyscall and exitsyscall.
            return Err(GoThrow::StackSplitAtBadTime.into());
        }
        let preempt = g.stackguard0 == c.stack_preempt;
        if preempt && (ctx.preemptoff || ctx.p.is_none() || g.forking) {
            // canPreemptM (runtime/preempt.go) says no: the M has
            // preemption off, holds locks (as during a fork), is in malloc
            // (the spec folds those into `preemptoff` and `forking`), or
            // has no running P. Go only gives the guard back and lets the
            // goroutine run on: no shrink; `preempt` and a pending
            // `preemptShrink` stay for a later preemption. This comes
            // before newstack's stack checks, as in Go.
            crate::coverage::hit("newstack: preempt refused (canPreemptM)");
            let g = self.g_mut(gid)?;
            g.stackguard0 = g.stack.lo.wrapping_add(c.stack_guard);
            return Ok(());
        }
        if g.stack.lo == 0 {
            return Err(GoThrow::MissingStackInNewstack.into());
        }
        // On x86 morestack's own return address sits below sched.sp.
        let sp = if self.uses_lr() {
            g.sp
        } else {
            g.sp.wrapping_sub(self.ptr())
        };
        if sp < g.stack.lo {
            return Err(GoThrow::SplitStackOverflow.into());
        }
        if preempt {
            // canPreemptM holds; shrink if the GC asked, then the goroutine
            // yields (gopreempt_m) and, rescheduled, gets its guard back
            // (execute).
            crate::coverage::hit("newstack: preempt");
            if g.preempt_shrink {
                crate::coverage::hit("newstack: preempt then shrink");
                self.g_mut(gid)?.preempt_shrink = false;
                self.shrinkstack(ctx, gid)?;
            }
            // gopreempt_m: the goroutine yields; `execute` runs it again.
            self.execute(gid)?;
            return Ok(());
        }
        let oldsize = g.stack.hi - g.stack.lo;
        let mut newsize = oldsize * 2;
        let Pc::Entry(fi) = g.pc else {
            return Err(Misuse::NotAtEntry(gid).into());
        };
        let needed = self.gor.funcs[fi].max_sp_delta + c.stack_guard;
        let used = g.stack.hi - g.sp;
        while newsize - used < needed {
            crate::coverage::hit("newstack: grow more than twice");
            newsize *= 2;
        }
        if g.stackguard0 == c.stack_force_move {
            crate::coverage::hit("newstack: forced move");
            newsize = oldsize;
        } else {
            crate::coverage::hit("newstack: grow");
        }
        let ceiling = c.maxstackceiling;
        if newsize > self.gor.maxstacksize || newsize > ceiling {
            return Err(GoThrow::StackOverflow.into());
        }
        if newsize == oldsize {
            self.gor.stats.moves += 1;
        } else {
            self.gor.stats.growths += 1;
        }
        self.copystack(ctx, gid, newsize)
    }

    /// Go: `isShrinkStackSafe` (runtime/stack.go).
    pub fn is_shrink_stack_safe(&self, gid: u32) -> Result<bool, Throw> {
        let g = self.g(gid)?;
        Ok(g.syscallsp == 0 && !g.async_safe_point && !g.parking_on_chan)
    }

    /// Go: `shrinkstack` (runtime/stack.go): halve the stack if that leaves
    /// at least fixedStack and the used part plus the nosplit budget is
    /// under a quarter of it.
    fn shrinkstack(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
        let g = self.g(gid)?.clone();
        if g.stack.lo == 0 {
            return Err(GoThrow::MissingStackInShrinkstack.into());
        }
        if !self.is_shrink_stack_safe(gid)? {
            return Err(GoThrow::ShrinkstackAtBadTime.into());
        }
        if self.config.godebug.gc_shrink_stack_off {
            crate::coverage::hit("shrinkstack: gcshrinkstackoff");
            return Ok(());
        }
        match self.shrink_target(&g) {
            Err(Keep::BelowFixedStack) => {
                crate::coverage::hit("shrinkstack: below fixedStack");
                Ok(())
            }
            Err(Keep::QuarterUsed) => {
                crate::coverage::hit("shrinkstack: more than a quarter used");
                Ok(())
            }
            Ok(newsize) => {
                crate::coverage::hit("shrinkstack: halve");
                self.gor.stats.shrinks += 1;
                self.copystack(ctx, gid, newsize)
            }
        }
    }

    /// `shrinkstack`'s size rule: half the stack, unless that is below
    /// fixedStack or a quarter or more of the stack is in use (counting
    /// `stackNosplit` as used); the reason it keeps the stack otherwise.
    fn shrink_target(&self, g: &G) -> Result<u64, Keep> {
        let oldsize = g.stack.hi - g.stack.lo;
        let newsize = oldsize / 2;
        if newsize < self.consts.fixed_stack {
            return Err(Keep::BelowFixedStack);
        }
        let avail = oldsize;
        let used = g.stack.hi - g.sp + self.consts.stack_nosplit;
        if used >= avail / 4 {
            return Err(Keep::QuarterUsed);
        }
        Ok(newsize)
    }

    /// `copystack`'s one refusal, decided before anything changes: with
    /// `activeStackChans` it locks the channels the goroutine waits on
    /// (`syncadjustsudogs`), and one held elsewhere would block.
    fn chans_unlocked(&self, g: &G) -> Result<(), Throw> {
        if g.active_stack_chans {
            for sid in &g.waiting {
                let c = self.gor.sudogs[sid].c;
                if self.gor.chans[&c].locked_by.is_some() {
                    return Err(Misuse::WouldBlock(
                        "copystack: a channel the goroutine waits on is locked",
                    )
                    .into());
                }
            }
        }
        Ok(())
    }

    fn adjustpointer(&mut self, old: Stack, delta: u64, addr: u64) {
        let v = self.read_word(addr);
        if old.lo <= v && v < old.hi {
            self.write_mem(addr, v.wrapping_add(delta));
        }
    }

    /// Go: `adjustpointers` (runtime/stack.go): adjust the words at `scanp`
    /// whose bits are set; with `check`, a small non-zero value in a pointer
    /// slot is "invalid pointer found on stack".
    fn adjustpointers(
        &mut self,
        scanp: u64,
        bv: &[bool],
        old: Stack,
        delta: u64,
        check: bool,
    ) -> Result<(), Throw> {
        let p = self.ptr();
        // Go uses CAS for a whole bitmap whose start lies below sghi
        // (already moved to new-stack addresses), against a concurrent
        // sender; sequentially that is this same write. Saved frame
        // pointers and stack objects always use the plain adjustpointer.
        for (i, &bit) in bv.iter().enumerate() {
            if !bit {
                continue;
            }
            let addr = scanp + i as u64 * p;
            let v = self.read_word(addr);
            if check
                && self.config.godebug.invalid_ptr
                && 0 < v
                && v < self.consts.min_legal_pointer
            {
                return Err(GoThrow::InvalidPointerOnStack.into());
            }
            if old.lo <= v && v < old.hi {
                self.write_mem(addr, v.wrapping_add(delta));
            }
        }
        Ok(())
    }

    /// Go: `adjustframe` (runtime/stack.go): the saved frame pointer, the
    /// locals and arguments by their maps, and every stack object not below
    /// SP.
    fn adjustframe(&mut self, fr: &Frame, old: Stack, delta: u64) -> Result<(), Throw> {
        let p = self.ptr();
        let f = self.gor.funcs[fr.func].clone();
        if (self.config.profile.goarch == Goarch::Amd64 || self.arm64_fp_adjusted())
            && fr.argp - fr.varp == 2 * p
        {
            crate::coverage::hit("adjustframe: saved frame pointer");
            self.adjustpointer(old, delta, fr.varp);
        }
        let (locals, args) = match fr.site {
            Some(s) => (f.sites[s].locals.clone(), f.sites[s].args.clone()),
            // At entry there are no locals yet; the arguments use site 0's
            // map.
            None => (Vec::new(), f.sites[0].args.clone()),
        };
        if !locals.is_empty() && fr.varp > fr.sp {
            let size = locals.len() as u64 * p;
            self.adjustpointers(fr.varp - size, &locals, old, delta, true)?;
        }
        if !args.is_empty() {
            self.adjustpointers(fr.argp, &args, old, delta, false)?;
        }
        for obj in &f.objects {
            let base = if obj.off < 0 {
                fr.varp - obj.off.unsigned_abs()
            } else {
                fr.argp + obj.off as u64
            };
            if base < fr.sp {
                // Not allocated yet: the frame is at its entry.
                crate::coverage::hit("adjustframe: stack object below SP");
                continue;
            }
            for (i, &bit) in obj.ptrs.iter().enumerate() {
                if bit {
                    self.adjustpointer(old, delta, base + i as u64 * p);
                }
            }
        }
        Ok(())
    }

    /// Go: `findsghi` (runtime/stack.go): the highest end of a sudog's
    /// element inside the stack.
    fn findsghi(&self, gid: u32, stk: Stack) -> Result<u64, Throw> {
        let mut sghi = 0;
        for sid in &self.g(gid)?.waiting {
            let sg = &self.gor.sudogs[sid];
            let end = sg.elem + self.gor.chans[&sg.c].elemsize;
            if stk.lo <= end && end < stk.hi && end > sghi {
                sghi = end;
            }
        }
        Ok(sghi)
    }

    fn copy_words(&mut self, from: u64, to: u64, len: u64) {
        let p = self.ptr();
        let words: Vec<(u64, u64)> = (0..len / p)
            .map(|i| (i * p, self.read_word(from + i * p)))
            .collect();
        for (off, v) in words {
            self.write_mem(to + off, v);
        }
    }

    /// Go: `copystack` (runtime/stack.go).
    fn copystack(&mut self, ctx: Ctx, gid: u32, newsize: u64) -> Result<(), Throw> {
        let g = self.g(gid)?.clone();
        if g.syscallsp != 0 {
            return Err(GoThrow::StackGrowthInSyscall.into());
        }
        let old = g.stack;
        if old.lo == 0 {
            return Err(GoThrow::NilStackbase.into());
        }
        let used = old.hi - g.sp;
        self.chans_unlocked(&g)?;
        let new = self.stackalloc_inner(ctx, newsize)?;
        if self.config.poison_copy {
            self.fill(new, 0xfd);
        }
        let delta = new.hi.wrapping_sub(old.hi);
        let mut sghi = 0;
        let mut ncopy = used;
        if !g.active_stack_chans {
            if newsize < old.hi - old.lo && g.parking_on_chan {
                return Err(GoThrow::RacySudogAdjustment.into());
            }
            crate::coverage::hit("copystack: sudogs without locks");
            self.adjustsudogs(gid, old, delta)?;
        } else {
            sghi = self.findsghi(gid, old)?;
            // syncadjustsudogs: lock the distinct channels, adjust, copy the
            // part of the stack up to sghi, unlock (none is held elsewhere:
            // checked above).
            crate::coverage::hit("copystack: sudogs under the channel locks");
            self.adjustsudogs(gid, old, delta)?;
            if sghi != 0 {
                crate::coverage::hit("copystack: copy up to sghi under the locks");
                let old_bot = old.hi - used;
                let sgsize = sghi - old_bot;
                self.copy_words(old_bot, old_bot.wrapping_add(delta), sgsize);
                ncopy -= sgsize;
            }
        }
        self.copy_words(old.hi - ncopy, new.hi - ncopy, ncopy);
        self.gor.stats.bytes_copied += used;
        // adjustctxt, adjustdefers, adjustpanics.
        let adj = |v: u64| {
            if old.lo <= v && v < old.hi {
                v.wrapping_add(delta)
            } else {
                v
            }
        };
        let p = self.ptr();
        let oldfp = g.bp;
        let fp_enabled = matches!(self.config.profile.goarch, Goarch::Amd64 | Goarch::Arm64);
        {
            let gm = self.g_mut(gid)?;
            gm.ctxt = adj(gm.ctxt);
            // adjustctxt leaves sched.bp alone where the toolchain keeps no
            // frame pointers (`framepointer_enabled`: amd64 and arm64 only;
            // so not on 386).
            if fp_enabled {
                gm.bp = adj(gm.bp);
            }
            gm.defer_head = adj(gm.defer_head);
        }
        if self.arm64_fp_adjusted() && oldfp == g.sp.wrapping_sub(p) {
            crate::coverage::hit("copystack: arm64 frame pointer below SP");
            // adjustctxt: on arm64 the innermost frame's saved FP sits one
            // word below SP, outside what memmove copied: copy and adjust
            // it here (golang/go#58432's neighbourhood).
            let newfp = self.g(gid)?.bp;
            let v = self.read_word(oldfp);
            self.write_mem(newfp, v);
            self.adjustpointer(old, delta, newfp);
        }
        // adjustdefers: every field of the release's record, in Go's
        // order, then on along the (adjusted) link.
        let mut d = self.g(gid)?.defer_head;
        let mut guard = 0;
        let words = defer_fields(self.config.profile.release).len() as u64;
        while d != 0 && guard < 1 << 16 {
            for i in 0..words {
                self.adjustpointer(old, delta, d + i * p);
            }
            d = self.read_word(d + self.defer_link_offset());
            guard += 1;
        }
        let guard = self.consts.stack_guard;
        {
            let gm = self.g_mut(gid)?;
            gm.panic_head = adj(gm.panic_head);
            gm.stack = new;
            gm.stackguard0 = new.lo + guard;
            gm.sp = new.hi - used;
            gm.stktopsp = gm.stktopsp.wrapping_add(delta);
        }
        let _ = sghi;
        for fr in self.frames(gid)? {
            self.adjustframe(&fr, old, delta)?;
        }
        if self.config.poison_copy {
            self.fill(old, 0xfc);
        }
        self.stackfree_inner(ctx, old)
    }

    fn fill(&mut self, stk: Stack, byte: u8) {
        let p = self.ptr();
        let word = u64::from_ne_bytes([byte; 8]) & self.word_mask();
        for a in (stk.lo..stk.hi).step_by(p as usize) {
            self.write_mem(a, word);
        }
    }

    /// Go: `adjustsudogs` (runtime/stack.go).
    fn adjustsudogs(&mut self, gid: u32, old: Stack, delta: u64) -> Result<(), Throw> {
        for sid in self.g(gid)?.waiting.clone() {
            let sg = self.gor.sudogs.get_mut(&sid).expect("waiting sudogs exist");
            if old.lo <= sg.elem && sg.elem < old.hi {
                sg.elem = sg.elem.wrapping_add(delta);
            }
        }
        Ok(())
    }

    /// The scheduler runs goroutine `gid` (`execute`, runtime/proc.go):
    /// a preemption request made while it waited is dropped and its guard
    /// is its stack's again.
    fn execute(&mut self, gid: u32) -> Result<(), Throw> {
        let guard = self.consts.stack_guard;
        let g = self.g_mut(gid)?;
        g.preempt = false;
        g.stackguard0 = g.stack.lo.wrapping_add(guard);
        Ok(())
    }

    /// Goroutine `gid` enters a system call (`reentersyscall`,
    /// runtime/proc.go): `syscallsp` is set and its stack may not move; the
    /// guard is poisoned (`stackguard0 = stackPreempt`, so every prologue
    /// fails) and `throwsplit` set, so that a split before `exitsyscall`
    /// throws "runtime: stack split at bad time".
    pub fn enter_syscall(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_runnable_not_forking(gid)?;
            let preempt = s.consts.stack_preempt;
            let g = s.g_mut(gid)?;
            g.syscallsp = g.sp;
            g.status = GStatus::Syscall;
            g.stackguard0 = preempt;
            g.throwsplit = true;
            Ok(())
        })
    }

    /// Goroutine `gid` leaves its system call on the fast path
    /// (`exitsyscall` when `exitsyscallfast` gets a P): the guard is
    /// restored from `preempt` (stackPreempt if a preemption is pending,
    /// else the stack's guard: a pending forced move is lost) and
    /// `throwsplit` cleared.
    pub fn exit_syscall(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            let (preempt_v, guard) = (s.consts.stack_preempt, s.consts.stack_guard);
            let g = s.g_mut(gid)?;
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

    /// Goroutine `gid` leaves its system call on the slow path
    /// (`exitsyscall0`, runtime/proc.go: no P was free, so the goroutine
    /// was queued and `execute` runs it later): a pending preemption is
    /// dropped and the guard is the stack's.
    pub fn exit_syscall0(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            let g = s.g_mut(gid)?;
            if g.status != GStatus::Syscall {
                return Err(Misuse::GNotRunnable(gid).into());
            }
            g.syscallsp = 0;
            g.status = GStatus::Runnable;
            g.throwsplit = false;
            s.execute(gid)
        })
    }

    /// Goroutine `gid` stops at (`on`), or resumes from, an asynchronous
    /// preemption: `asyncSafePoint`, set by `asyncPreempt2`
    /// (runtime/preempt.go) only while the goroutine is parked there, and
    /// cleared before it runs Go code again. Only a goroutine running Go
    /// code (not in a system call, a fork, or parked) can be stopped, and
    /// only one that is stopped can resume; while stopped it runs nothing.
    ///
    /// `isAsyncSafePoint` refuses a preemption with fewer than
    /// [`async_preempt_stack`] bytes between SP and `stack.lo`
    /// ([`Misuse::NoRoomForAsyncPreempt`]): Go does not preempt there.
    pub fn set_async_safe_point(&mut self, gid: u32, on: bool) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            if on {
                s.require_runnable_not_forking(gid)?;
                // isAsyncSafePoint (runtime/preempt.go) leaves a goroutine
                // without room for asyncPreempt's frame alone.
                let g = s.g(gid)?;
                let needs = async_preempt_stack(s.config.profile.goarch).unwrap_or(0);
                let room = g.sp.wrapping_sub(g.stack.lo);
                if g.sp < g.stack.lo || room < needs {
                    crate::coverage::hit("isAsyncSafePoint: no room for asyncPreempt");
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
            s.g_mut(gid)?.async_safe_point = on;
            Ok(())
        })
    }

    /// Goroutine `gid` is about to fork (`syscall_runtime_BeforeFork`,
    /// runtime/proc.go): the M takes a lock (so it cannot be preempted) and
    /// `stackguard0 = stackFork`, so that a split in the child's code
    /// throws "stack growth after fork". A preemption request made now
    /// overwrites the guard, as `preemptone` does in Go.
    pub fn before_fork(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_runnable_not_forking(gid)?;
            let fork = s.consts.stack_fork;
            let g = s.g_mut(gid)?;
            g.forking = true;
            g.stackguard0 = fork;
            Ok(())
        })
    }

    /// The fork is done (`syscall_runtime_AfterFork`): the guard is the
    /// stack's again (a pending preemption's guard is dropped; `preempt`
    /// stays) and the M's lock is released.
    pub fn after_fork(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_runnable(gid)?;
            let guard = s.consts.stack_guard;
            let g = s.g_mut(gid)?;
            if !g.forking {
                return Err(Misuse::GNotRunnable(gid).into());
            }
            g.forking = false;
            g.stackguard0 = g.stack.lo.wrapping_add(guard);
            Ok(())
        })
    }

    /// The GC's stack root job for goroutine `gid` runs on P `p`
    /// (`markroot` → `suspendG` → `scanstack`, runtime/mgcmark.go): it
    /// counts the scanned bytes for the starting stack size, then shrinks
    /// the stack if that is safe, or asks for a shrink at the next
    /// synchronous safe point (`preemptShrink`).
    ///
    /// Stack roots are the goroutines that existed at `gcStart`
    /// (`allGsSnapshot`); each root job runs once, during `_GCmark`. So
    /// this is refused outside `_GCmark` and for a goroutine created later
    /// in the cycle ([`Misuse::NotAStackRoot`]); a dead root is only marked
    /// done; a live root already scanned throws "g already scanned" (Go's
    /// check in `markroot`). Mark termination scans every root left
    /// ([`State::gc_mark_termination`]).
    pub fn gc_scan(&mut self, p: u32, gid: u32) -> Result<(), Throw> {
        self.transact(|s| {
            s.require_phase("scanstack", crate::stack::GcPhase::Mark)?;
            s.stack_p_exists(p)?;
            s.scan_root(p, gid)
        })
    }

    /// The root job of [`State::gc_scan`], phase and P checked.
    fn scan_root(&mut self, p: u32, gid: u32) -> Result<(), Throw> {
        let g = self.g(gid)?.clone();
        if gid >= self.gor.n_stack_roots {
            return Err(Misuse::NotAStackRoot(gid).into());
        }
        self.scan_would_block(&g)?;
        if g.status == GStatus::Dead {
            self.g_mut(gid)?.gcscandone = true;
            return Ok(());
        }
        if g.gcscandone {
            return Err(GoThrow::GAlreadyScanned.into());
        }
        // suspendG claims the stopped goroutine and drops any preemption
        // request: `preempt` cleared, the guard the stack's
        // (runtime/preempt.go, Go 1.19 and 1.23).
        self.execute(gid)?;
        self.g_mut(gid)?.gcscandone = true;
        let sp = if g.syscallsp != 0 { g.syscallsp } else { g.sp };
        let e = self.gor.scanned.entry(p).or_default();
        e.0 += g.stack.hi - sp;
        e.1 += 1;
        if self.is_shrink_stack_safe(gid)? {
            crate::coverage::hit("scanstack: shrink");
            self.shrinkstack(Ctx::on(p), gid)
        } else {
            crate::coverage::hit("scanstack: preemptShrink");
            self.g_mut(gid)?.preempt_shrink = true;
            Ok(())
        }
    }

    /// `suspendG` waits for a running goroutine (here: one inside the
    /// parking steps) and for one whose M cannot be preempted (a fork).
    fn scan_would_block(&self, g: &G) -> Result<(), Throw> {
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

    /// The stack roots whose job has not run, in id order.
    pub fn stack_roots_left(&self) -> Vec<u32> {
        self.gor
            .gs
            .range(..self.gor.n_stack_roots)
            .filter(|(_, g)| !g.gcscandone)
            .map(|(&id, _)| id)
            .collect()
    }

    /// The refusals of the stack root jobs no worker ran, decided at mark
    /// termination before anything changes: a root cannot be suspended now
    /// ([`Misuse::WouldBlock`]), a live one is left and no P exists (which
    /// Go never lacks), a shrink would wait for a channel lock, or the
    /// starting size the scans lead to is out of range
    /// ([`Misuse::StartingStackTooLarge`]). Returns the P the roots are
    /// scanned on (the first) and that starting size (`None` unless
    /// adaptive).
    pub(crate) fn roots_left_refusals(&self) -> Result<(u32, Option<u64>), Throw> {
        let left = self.stack_roots_left();
        for &id in &left {
            self.scan_would_block(&self.gor.gs[&id])?;
        }
        let live: Vec<u32> = left
            .iter()
            .copied()
            .filter(|id| self.gor.gs[id].status != GStatus::Dead)
            .collect();
        let p = match self.ps.keys().next() {
            Some(&p) => p,
            None if !live.is_empty() => {
                return Err(Misuse::NeedsP("gcMarkTermination: the stack scans left").into())
            }
            None => 0,
        };
        // What the scans will count and shrink (scan_root's rules).
        let mut scanned = self.gor.scanned.clone();
        for &id in &live {
            let g = &self.gor.gs[&id];
            let sp = if g.syscallsp != 0 { g.syscallsp } else { g.sp };
            let e = scanned.entry(p).or_default();
            e.0 += g.stack.hi - sp;
            e.1 += 1;
            if self.is_shrink_stack_safe(id)?
                && !self.config.godebug.gc_shrink_stack_off
                && self.shrink_target(g).is_ok()
            {
                self.chans_unlocked(g)?;
            }
        }
        let next = if self.config.godebug.adaptive_stack_start {
            Some(next_starting_stack_size(
                &scanned,
                &self.consts,
                self.gor.maxstacksize,
            )?)
        } else {
            None
        };
        Ok((p, next))
    }

    /// The stack root jobs no worker ran, scanned on P `p` at mark
    /// termination (after [`State::roots_left_refusals`]).
    pub(crate) fn scan_roots_left(&mut self, p: u32) -> Result<(), Throw> {
        for id in self.stack_roots_left() {
            crate::coverage::hit("gcMarkTermination: a stack root left over");
            self.scan_root(p, id)?;
        }
        Ok(())
    }

    /// Go: `gcComputeStartingStackSize` (runtime/stack.go), run at the end of
    /// each GC: the average scanned stack plus the guard, rounded up to a
    /// power of two, between fixedStack and maxstacksize.
    ///
    /// The average is clamped to `maxstacksize`, which fits in 30 bits
    /// unless `debug.SetMaxStack` raised it; Go's `round2` takes an `int32`
    /// and loops forever on values above 2^30, so the spec refuses those
    /// with [`Misuse::StartingStackTooLarge`] (and changes nothing).
    pub fn gc_compute_starting_stack_size(&mut self) -> Result<(), Throw> {
        self.fatal(|s| {
            if !s.config.godebug.adaptive_stack_start {
                return Ok(());
            }
            let next = s.next_starting_stack_size()?;
            s.gor.scanned.clear();
            s.gor.starting_stack_size = next;
            Ok(())
        })
    }

    /// What [`State::gc_compute_starting_stack_size`] would set.
    pub(crate) fn next_starting_stack_size(&self) -> Result<u64, Throw> {
        next_starting_stack_size(&self.gor.scanned, &self.consts, self.gor.maxstacksize)
    }

    /// Go: `goexit0` → `gdestroy` → `gfput` (runtime/proc.go): the
    /// goroutine dies; its stack is freed unless it has the starting size,
    /// and it goes on P's free list (spilling half to the global lists at
    /// 64).
    fn goexit(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
        let p = ctx.p.ok_or(Throw::Misuse(Misuse::NeedsP("goexit")))?;
        self.stack_p_exists(p)?;
        let stk = self.g(gid)?.stack;
        let start = self.gor.starting_stack_size;
        {
            let g = self.g_mut(gid)?;
            g.status = GStatus::Dead;
            g.defer_head = 0;
            g.panic_head = 0;
            g.ctxt = 0;
        }
        if stk.hi - stk.lo != start {
            crate::coverage::hit("gfput: free the stack");
            self.stackfree_inner(ctx, stk)?;
            let g = self.g_mut(gid)?;
            g.stack = Stack { lo: 0, hi: 0 };
            g.stackguard0 = 0;
        } else {
            crate::coverage::hit("gfput: keep the stack");
        }
        let local = self.gor.p_gfree.entry(p).or_default();
        local.push(gid);
        if local.len() >= 64 {
            crate::coverage::hit("gfput: spill to the global lists");
            self.gfree_to_global(p, 32);
        }
        Ok(())
    }

    /// Moves dead goroutines from P `p`'s free list to the global lists
    /// until `keep - 1` remain (`gfput` with keep 32; `gfpurge` with keep
    /// 1, emptying it). Each popped G goes to the head of a queue (with or
    /// without a stack), and each queue is prepended to its global list in
    /// its own order, so the last popped heads the global list. (The lists
    /// are Vecs whose end is the head.)
    pub(crate) fn gfree_to_global(&mut self, p: u32, keep: usize) {
        let local = self.gor.p_gfree.entry(p).or_default();
        let (mut with, mut without) = (Vec::new(), Vec::new());
        while local.len() >= keep && !local.is_empty() {
            let g = local.pop().expect("non-empty");
            if self.gor.gs[&g].stack.lo == 0 {
                without.push(g);
            } else {
                with.push(g);
            }
        }
        self.gor.sched_gfree_stack.extend(with);
        self.gor.sched_gfree_nostack.extend(without);
    }

    /// The GC root job that frees dead goroutines' stacks, run by a mark
    /// worker on P `p`.
    ///
    /// Go: `markrootFreeGStacks` (runtime/mgcmark.go, Go 1.19 and 1.23),
    /// the root job `fixedRootFreeGStacks` of `markroot`: it takes the
    /// whole global list of dead goroutines with stacks
    /// (`sched.gFree.stack`), `stackfree`s each stack from the head on, on
    /// the worker's P (so small stacks go onto that P's cache, and pool
    /// spans emptied now wait for `freeStackSpans`), zeroes each G's stack
    /// bounds (not its `stackguard0`), and pushes the list, in its order,
    /// onto the front of `sched.gFree.noStack`. The Ps' own free lists are
    /// left alone.
    ///
    /// Each root job runs exactly once per cycle, during `_GCmark`: a
    /// second run is refused ([`Misuse::RootJobDone`]), and
    /// [`State::gc_mark_termination`] runs it first if no worker has (mark
    /// termination begins only when no root work is left).
    pub fn gc_free_g_stacks(&mut self, p: u32) -> Result<(), Throw> {
        self.transact(|s| {
            s.require_phase("markrootFreeGStacks", crate::stack::GcPhase::Mark)?;
            s.stack_p_exists(p)?;
            if s.gor.free_g_stacks_done {
                return Err(Misuse::RootJobDone("markrootFreeGStacks").into());
            }
            s.free_g_stacks_inner(Ctx::on(p))
        })
    }

    /// `markrootFreeGStacks` from the M of `ctx` (see
    /// [`State::gc_free_g_stacks`]).
    pub(crate) fn free_g_stacks_inner(&mut self, ctx: Ctx) -> Result<(), Throw> {
        self.gor.free_g_stacks_done = true;
        // The list's head is the Vec's end.
        let list = std::mem::take(&mut self.gor.sched_gfree_stack);
        for &id in list.iter().rev() {
            crate::coverage::hit("markrootFreeGStacks: free a dead goroutine's stack");
            let stk = self.g(id)?.stack;
            self.stackfree_inner(ctx, stk)?;
            self.g_mut(id)?.stack = Stack { lo: 0, hi: 0 };
        }
        // gQueue.pushAll puts the whole list, head first, before the
        // present head of noStack.
        self.gor.sched_gfree_nostack.extend(list);
        Ok(())
    }

    /// The sizes `allocm` asks for, (gsignal, g0), or why this profile's
    /// Ms are not modelled. Linux only: there `mpreinit`
    /// (runtime/os_linux.go) takes a 32 KiB gsignal stack with
    /// `malg(32 * 1024)`, and without cgo the g0 stack comes from the
    /// allocator too (`malg(8192 * StackGuardMultiplier)` in Go 1.19,
    /// `16384 * StackGuardMultiplier` in Go 1.23; `malg` rounds
    /// stackSystem + n up to a power of two). Other systems take one or
    /// both from the OS or size them differently.
    pub fn m_stack_sizes(&self) -> Result<(u64, u64), Throw> {
        m_stack_sizes(self.config.profile)
    }

    /// Makes an M (`newm` → `allocm`, runtime/proc.go, Go 1.19 and 1.23)
    /// from the M of `ctx`, and returns its id. `allocm` first frees the
    /// g0 stacks of the exited Ms on `sched.freem`, head first (the last
    /// exited first); then `mcommoninit` → `mpreinit` takes the gsignal
    /// stack (the large path); then `malg` takes the g0 stack. All run on
    /// the calling M (`systemstack`), so a P's cache serves the small
    /// stacks: the P the caller holds or borrows (Go never calls `allocm`
    /// without one; `Ctx::preemptoff` is an M made by
    /// `startTheWorldWithSema`, which uses the global pool).
    ///
    /// Every M's stacks count in StackInuse, as in Go. A refusal (out of
    /// memory, a misuse) changes nothing.
    pub fn create_m(&mut self, ctx: Ctx) -> Result<u32, Throw> {
        self.require_world_running()?;
        self.transact(|s| {
            let (gsignal, g0) = s.m_stack_sizes()?;
            for (_, stk) in std::mem::take(&mut s.gor.freem).into_iter().rev() {
                crate::coverage::hit("allocm: free an exited M's g0 stack");
                s.stackfree_inner(ctx, stk)?;
            }
            let gsignal = s.stackalloc_inner(ctx, gsignal)?;
            let g0 = s.stackalloc_inner(ctx, g0)?;
            let id = s.gor.next_m;
            s.gor.next_m += 1;
            s.gor.ms.insert(id, MStacks { g0, gsignal });
            crate::coverage::hit("allocm: a new M");
            Ok(id)
        })
    }

    /// M `m` exits (`mexit`, runtime/proc.go, Go 1.19 and 1.23: its locked
    /// goroutine exited). It frees its gsignal stack at once, on the P it
    /// still holds (`ctx`); its g0 stack is in use until the thread is
    /// gone, so the M goes on `sched.freem` and the next
    /// [`State::create_m`] frees it.
    pub fn exit_m(&mut self, ctx: Ctx, m: u32) -> Result<(), Throw> {
        self.require_world_running()?;
        self.transact(|s| {
            let ms = *s.gor.ms.get(&m).ok_or(Throw::Misuse(Misuse::NoSuchM(m)))?;
            s.stackfree_inner(ctx, ms.gsignal)?;
            s.gor.ms.remove(&m);
            s.gor.freem.push((m, ms.g0));
            crate::coverage::hit("mexit: free gsignal, g0 to sched.freem");
            Ok(())
        })
    }

    /// Ends goroutine `gid` from wherever it stands (`runtime.Goexit`).
    pub fn exit(&mut self, ctx: Ctx, gid: u32) -> Result<(), Throw> {
        self.require_world_running()?;
        self.transact(|s| {
            s.require_runnable_not_forking(gid)?;
            s.goexit(ctx, gid)
        })
    }
}

impl State {
    /// Makes a channel with elements of `elemsize` bytes (a multiple of the
    /// pointer size, at most 64 KiB as `makechan` allows); returns its id.
    pub fn make_chan(&mut self, elemsize: u64) -> Result<u32, Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            if elemsize % s.ptr() != 0 || elemsize >= 1 << 16 {
                return Err(Misuse::BadElemSize(elemsize).into());
            }
            let id = s.gor.chans.len() as u32;
            s.gor.chans.insert(
                id,
                Chan {
                    elemsize,
                    locked_by: None,
                    recvq: Vec::new(),
                },
            );
            Ok(id)
        })
    }

    /// First parking step of a blocking receive (`chanrecv`) or a select
    /// (`selectgo`) on the channels of `cases`, each with the address of its
    /// receive slot, inside the locals of one of the goroutine's frames
    /// (else [`Misuse::NotALocal`]): the channels are locked
    /// in lock order (by id), one sudog per case is queued on its channel,
    /// and `gp.waiting` lists them in lock order. The goroutine is now
    /// running inside gopark.
    pub fn park_begin(&mut self, gid: u32, cases: &[(u32, u64)]) -> Result<(), Throw> {
        self.require_world_running()?;
        self.transact(|s| {
            s.require_runnable_not_forking(gid)?;
            let g = s.g(gid)?.clone();
            if cases.is_empty() {
                return Err(Misuse::BadSelect("no cases").into());
            }
            let mut order: Vec<(u32, u64)> = cases.to_vec();
            order.sort();
            if order.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(Misuse::BadSelect("a channel named twice").into());
            }
            // A goroutine whose frames no longer unwind (after `poke`) has
            // no locals to receive into.
            let frames = s.frames(gid).unwrap_or_default();
            for &(c, elem) in &order {
                let ch = s
                    .gor
                    .chans
                    .get(&c)
                    .ok_or(Throw::Misuse(Misuse::NoSuchChan(c)))?;
                if ch.locked_by.is_some() {
                    return Err(Misuse::WouldBlock("park: the channel is locked").into());
                }
                let p = s.ptr();
                if elem < g.sp
                    || elem % p != 0
                    || elem.checked_add(ch.elemsize).is_none_or(|e| e > g.stack.hi)
                {
                    return Err(Misuse::NotInUsedStack(gid, elem).into());
                }
                if !s.in_one_frames_locals(&frames, elem, ch.elemsize) {
                    return Err(Misuse::NotALocal(gid, elem).into());
                }
            }
            let is_select = order.len() > 1;
            let mut waiting = Vec::new();
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
                let ch = s.gor.chans.get_mut(&c).expect("checked");
                ch.locked_by = Some(gid);
                ch.recvq.push(sid);
                waiting.push(sid);
            }
            let g = s.g_mut(gid)?;
            g.waiting = waiting;
            g.status = GStatus::Running;
            g.select_done = false;
            Ok(())
        })
    }

    /// Whether `[addr, addr + size)` lies inside the locals of one frame
    /// of `frames`: `[varp - locals_room, varp)` of a frame past its
    /// prologue. Go's compiler hands `chanrecv` and `selectgo` the address
    /// of a variable, which is always such a slot (of the receiver's own
    /// frame, or of a caller's when the variable was passed by pointer);
    /// never a return address, a saved frame pointer (or arm64's saved LR
    /// at `0(SP)`), nor words straddling two frames.
    fn in_one_frames_locals(&self, frames: &[Frame], addr: u64, size: u64) -> bool {
        frames.iter().filter(|fr| fr.site.is_some()).any(|fr| {
            let room = self.locals_room(&self.gor.funcs[fr.func]);
            addr >= fr.varp - room && addr.checked_add(size).is_some_and(|e| e <= fr.varp)
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

    /// Second parking step: `gp.parkingOnChan.Store(true)` just before
    /// gopark.
    pub fn park_set_parking(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_parking_step(gid, GStatus::Running, false)?;
            s.g_mut(gid)?.parking_on_chan = true;
            Ok(())
        })
    }

    /// Third parking step: `park_m` sets the status to waiting, before it
    /// calls the commit function. From here the GC may scan the goroutine.
    pub fn park_m(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_parking_step(gid, GStatus::Running, true)?;
            s.g_mut(gid)?.status = GStatus::Waiting;
            Ok(())
        })
    }

    /// Last parking step: `chanparkcommit` / `selparkcommit`:
    /// `activeStackChans` set, `parkingOnChan` cleared, the channels
    /// unlocked.
    pub fn park_commit(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            s.require_parking_step(gid, GStatus::Waiting, true)?;
            let waiting = s.g(gid)?.waiting.clone();
            let g = s.g_mut(gid)?;
            g.active_stack_chans = true;
            g.parking_on_chan = false;
            for sid in waiting {
                let c = s.gor.sudogs[&sid].c;
                s.gor.chans.get_mut(&c).expect("sudog's channel").locked_by = None;
            }
            Ok(())
        })
    }

    /// The four parking steps at once.
    pub fn park(&mut self, gid: u32, cases: &[(u32, u64)]) -> Result<(), Throw> {
        self.require_world_running()?;
        self.transact(|s| {
            s.park_begin(gid, cases)?;
            s.park_set_parking(gid)?;
            s.park_m(gid)?;
            s.park_commit(gid)
        })
    }

    /// A sender delivers `value` (the element's words) on channel `c` to its
    /// first waiting receiver (`chansend` → `send` → `sendDirect`): under the
    /// channel lock it dequeues the sudog (skipping select sudogs whose
    /// goroutine another case already won), writes the element through
    /// `sudog.elem` into the receiver's stack, and readies it.
    pub fn send(&mut self, c: u32, value: &[u64]) -> Result<u32, Throw> {
        self.require_world_running()?;
        self.transact(|s| {
            let ch = s
                .gor
                .chans
                .get(&c)
                .ok_or(Throw::Misuse(Misuse::NoSuchChan(c)))?
                .clone();
            if ch.locked_by.is_some() {
                return Err(Misuse::WouldBlock("send: the channel is locked").into());
            }
            let p = s.ptr();
            if value.len() as u64 * p != ch.elemsize || value.iter().any(|&v| v > s.word_mask()) {
                return Err(Misuse::BadElemSize(value.len() as u64 * p).into());
            }
            let mut queue = ch.recvq.clone();
            while !queue.is_empty() {
                let sid = queue.remove(0);
                let sg = s.gor.sudogs[&sid].clone();
                let g = s.g(sg.g)?.clone();
                if sg.is_select && g.select_done {
                    crate::coverage::hit("send: skip a select already won");
                    continue;
                }
                // The slot must be in the receiver's current stack: a stale
                // elem (an unadjusted sudog) would write into freed memory.
                if sg.elem < g.stack.lo || sg.elem + ch.elemsize > g.stack.hi {
                    return Err(Misuse::StaleSudogElem(sg.elem).into());
                }
                for (i, &v) in value.iter().enumerate() {
                    s.write_mem(sg.elem + i as u64 * p, v);
                }
                // send sets sg.elem to nil once the value is written.
                s.gor.sudogs.get_mut(&sid).expect("exists").elem = 0;
                s.gor.chans.get_mut(&c).expect("exists").recvq = queue;
                let gm = s.g_mut(sg.g)?;
                gm.select_done = sg.is_select;
                gm.status = GStatus::Runnable;
                return Ok(sg.g);
            }
            Err(Misuse::NoReceiver(c).into())
        })
    }

    /// The readied receiver resumes after gopark: a select relocks its
    /// channels and dequeues its other sudogs; then `gp.waiting` and
    /// `activeStackChans` are cleared (`chanrecv`, `selectgo`).
    pub fn wake(&mut self, gid: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            let g = s.g(gid)?.clone();
            if g.status != GStatus::Runnable || g.waiting.is_empty() {
                return Err(Misuse::ParkOutOfOrder(gid).into());
            }
            for sid in &g.waiting {
                let c = s.gor.sudogs[sid].c;
                if s.gor.chans[&c].locked_by.is_some() {
                    return Err(Misuse::WouldBlock("wake: a channel is locked").into());
                }
            }
            for sid in &g.waiting {
                let c = s.gor.sudogs[sid].c;
                s.gor
                    .chans
                    .get_mut(&c)
                    .expect("exists")
                    .recvq
                    .retain(|x| x != sid);
                s.gor.sudogs.remove(sid);
            }
            let gm = s.g_mut(gid)?;
            gm.waiting.clear();
            gm.active_stack_chans = false;
            gm.select_done = false;
            // The readied goroutine was scheduled (`execute`) before it
            // resumed in selectgo.
            s.execute(gid)
        })
    }
}

/// One goroutine, as observed: addresses as offsets from the arena base.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GSnap {
    /// Its id.
    pub id: u32,
    /// Its status.
    pub status: GStatus,
    /// Stack bounds as offsets (0, 0 when none).
    pub stack: (u64, u64),
    /// `stackguard0`, as an offset when it lies in the stack, else raw.
    pub stackguard0: u64,
    /// `sched.sp` as an offset.
    pub sp: u64,
    /// Innermost function and site.
    pub pc: Pc,
    /// Flags: syscall, asyncSafePoint, preemptShrink, parkingOnChan,
    /// activeStackChans, preempt, throwsplit, forking, gcscandone.
    pub flags: [bool; 9],
    /// The used stack, `[sp, hi)`, word by word, with words that point into
    /// the stack written as offsets from the stack's top (tagged by the
    /// high bit) so that equal stacks at different places compare equal.
    pub used: Vec<u64>,
    /// The receive slots of its sudogs, as offsets from the stack's top.
    pub waiting: Vec<u64>,
    /// The registers the stack system adjusts: sched.bp, sched.lr,
    /// sched.ctxt, and the defer and panic heads (stack addresses written
    /// as in `used`).
    pub regs: [u64; 5],
}

impl State {
    /// The goroutines, as observed.
    pub fn g_snapshot(&self) -> Vec<GSnap> {
        let p = self.consts.ptr_size.max(1);
        self.gor
            .gs
            .iter()
            .map(|(&id, g)| {
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
                        .map(|a| rel(self.read_word(a)))
                        .collect()
                };
                let off = |a: u64| if a == 0 { 0 } else { a - self.heap.base };
                GSnap {
                    id,
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
}

impl State {
    /// Go: `adjustpointers` (runtime/stack.go) over a scratch memory: the
    /// spec's one-bit-at-a-time loop run on `words` alone, for comparing
    /// other walks with it (the `adjust_pointers` fuzz target).
    ///
    /// `words` are stack words of `profile`'s pointer size, laid out from
    /// the arena base (values wider than the pointer are cut to it); the
    /// pointer map `bits` starts at word `start`, and its bits past the
    /// end of `words` are ignored. Words whose bit is set and whose value
    /// lies in `old` get `delta` added (modulo the word size); with
    /// `check`, a set bit on a small non-zero value is "invalid pointer
    /// found on stack", and then `words` are left as they were.
    pub fn adjust_pointer_words(
        profile: crate::profile::Profile,
        words: &mut [u64],
        start: usize,
        bits: &[bool],
        old: Stack,
        delta: u64,
        check: bool,
    ) -> Result<(), Throw> {
        let mut s = State::new(crate::stack::Config::new(profile))?;
        let p = s.ptr();
        let base = s.config.arena_base;
        for (i, &w) in words.iter().enumerate() {
            s.write_mem(base + i as u64 * p, w);
        }
        let n = bits.len().min(words.len().saturating_sub(start));
        let scanp = base + start.min(words.len()) as u64 * p;
        s.adjustpointers(scanp, &bits[..n], old, delta, check)?;
        for (i, w) in words.iter_mut().enumerate() {
            *w = s.read_word(base + i as u64 * p);
        }
        Ok(())
    }
}

/// `gcComputeStartingStackSize`'s rule over the per-P scan counts
/// `(bytes, stacks)`: see [`State::gc_compute_starting_stack_size`].
fn next_starting_stack_size(
    scanned: &BTreeMap<u32, (u64, u64)>,
    consts: &crate::Consts,
    maxstacksize: u64,
) -> Result<u64, Throw> {
    let (mut size, mut n) = (0u64, 0u64);
    for &(s, c) in scanned.values() {
        size += s;
        n += c;
    }
    let fixed = consts.fixed_stack;
    if n == 0 {
        return Ok(fixed);
    }
    let avg = (size / n + consts.stack_guard).clamp(fixed, maxstacksize.max(fixed));
    if avg > 1 << 30 {
        return Err(Misuse::StartingStackTooLarge(avg).into());
    }
    Ok(avg.next_power_of_two())
}

/// Why `shrinkstack` keeps a stack (see `State::shrink_target`).
enum Keep {
    /// Half the stack would be below fixedStack.
    BelowFixedStack,
    /// A quarter or more of the stack is in use.
    QuarterUsed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::Config;
    use crate::Profile;

    /// adjustframe (runtime/stack.go) skips a stack object that lies below
    /// SP: at a function's entry (its prologue failed) the frame is not
    /// allocated, so the words there are stale and must be left alone.
    #[test]
    fn adjustframe_skips_objects_below_sp() {
        let mut s = State::new(Config::new(
            Profile::parse("linux", "amd64", false, "1.23").unwrap(),
        ))
        .unwrap();
        let mut f = Func::new("obj", 64);
        f.objects.push(StackObject {
            off: -32,
            size: 16,
            ptrs: vec![true, true],
        });
        let fi = s.add_func(f).unwrap();
        let old = Stack {
            lo: 0x1000_0000,
            hi: 0x1000_0800,
        };
        let delta = 0x10_0000;
        let sp = 0x1010_0700;
        // The object would sit at varp - 32 = sp - 32, below SP.
        let at_entry = Frame {
            func: fi,
            site: None,
            sp,
            fp: sp + 8,
            varp: sp,
            argp: sp + 8,
        };
        s.write_mem(sp - 32, 0x1000_0100);
        s.write_mem(sp - 24, 0x1000_0200);
        s.adjustframe(&at_entry, old, delta).unwrap();
        assert_eq!(s.read_word(sp - 32), 0x1000_0100);
        assert_eq!(s.read_word(sp - 24), 0x1000_0200);
        // The same object in an allocated frame is adjusted, live or not.
        let sp2 = sp - 64;
        let allocated = Frame {
            func: fi,
            site: Some(0),
            sp: sp2,
            fp: sp + 8,
            varp: sp - 8,
            argp: sp + 8,
        };
        s.adjustframe(&allocated, old, delta).unwrap();
        assert_eq!(s.read_word(sp - 40), 0);
        s.write_mem(sp - 40, 0x1000_0300);
        s.adjustframe(&allocated, old, delta).unwrap();
        assert_eq!(s.read_word(sp - 40), 0x1010_0300);
    }

    /// A max SP delta beyond funcMaxSPDelta's int32 is refused: newstack
    /// doubles the new size until the frame fits, which would overflow.
    #[test]
    fn max_sp_delta_is_an_int32() {
        let mut s = State::new(Config::new(
            Profile::parse("linux", "amd64", false, "1.23").unwrap(),
        ))
        .unwrap();
        let mut f = Func::new("huge", 1 << 20);
        f.max_sp_delta = u64::MAX - 4096;
        assert!(matches!(
            s.add_func(f.clone()),
            Err(Throw::Misuse(Misuse::BadFunc(..)))
        ));
        f.max_sp_delta = crate::guard::MAX_FRAMESIZE;
        let fi = s.add_func(f).unwrap();
        let p = s.create_p().unwrap();
        assert_eq!(
            s.spawn(Ctx::on(p), fi),
            Err(Throw::Go(GoThrow::StackOverflow))
        );
    }

    /// A callee's arguments live in its caller's outgoing argument area
    /// (the bottom of the caller's locals); a call whose callee takes more
    /// is refused, so argument slots never cover a return address.
    #[test]
    fn arguments_fit_the_callers_frame() {
        for arch in ["amd64", "386", "arm64"] {
            let mut s = State::new(Config::new(
                Profile::parse("linux", arch, false, "1.23").unwrap(),
            ))
            .unwrap();
            let p = s.consts.ptr_size;
            let small = s.add_func(Func::new("small", 16)).unwrap();
            let big = s.add_func(Func::new("big", 64)).unwrap();
            let mut callee = Func::new("callee", 32);
            callee.args_size = 5 * p;
            let callee = s.add_func(callee).unwrap();
            let pid = s.create_p().unwrap();
            let g = s.spawn(Ctx::on(pid), small).unwrap();
            let before = s.snapshot();
            assert!(
                matches!(
                    s.call(Ctx::on(pid), g, 0, callee),
                    Err(Throw::Misuse(Misuse::BadFunc(..)))
                ),
                "{arch}"
            );
            assert_eq!(s.snapshot(), before);
            s.call(Ctx::on(pid), g, 0, big).unwrap();
            s.call(Ctx::on(pid), g, 0, callee).unwrap();
            crate::check_invariants(&s).unwrap();
        }
    }

    /// adjustpointers checks for junk only in locals (Go passes an invalid
    /// funcInfo for the arguments).
    #[test]
    fn junk_check_is_for_locals_only() {
        let mut s = State::new(Config::new(
            Profile::parse("linux", "386", false, "1.19").unwrap(),
        ))
        .unwrap();
        let old = Stack {
            lo: 0x1000,
            hi: 0x2000,
        };
        s.write_mem(0x5000, 7);
        assert_eq!(
            s.adjustpointers(0x5000, &[true], old, 0x100, true),
            Err(Throw::Go(GoThrow::InvalidPointerOnStack))
        );
        assert_eq!(s.adjustpointers(0x5000, &[true], old, 0x100, false), Ok(()));
        assert_eq!(s.adjustpointers(0x5000, &[false], old, 0x100, true), Ok(()));
    }

    /// The scratch-memory wrapper adjusts exactly the marked words in the
    /// old range, ignores bits past the words, and leaves the words alone
    /// when it throws.
    #[test]
    fn adjust_pointer_words_runs_the_loop_on_its_words() {
        let old = Stack {
            lo: 0x1000,
            hi: 0x2000,
        };
        let amd64 = Profile::parse("linux", "amd64", false, "1.23").unwrap();
        let mut w = vec![0x1000, 0x1ff8, 0x2000, 0x1800, 0];
        State::adjust_pointer_words(
            amd64,
            &mut w,
            1,
            &[true, true, false, true, true, true],
            old,
            0x10_0000,
            true,
        )
        .unwrap();
        assert_eq!(w, vec![0x1000, 0x10_1ff8, 0x2000, 0x1800, 0]);
        let mut j = vec![0x1000, 7];
        assert_eq!(
            State::adjust_pointer_words(amd64, &mut j, 0, &[true, true], old, 8, true),
            Err(Throw::Go(GoThrow::InvalidPointerOnStack))
        );
        assert_eq!(j, vec![0x1000, 7]);
        State::adjust_pointer_words(amd64, &mut j, 0, &[true, true], old, 8, false).unwrap();
        assert_eq!(j, vec![0x1008, 7]);
        // 4-byte words wrap at 32 bits.
        let i386 = Profile::parse("linux", "386", false, "1.23").unwrap();
        let mut v = vec![0x1_0000_1000, 0x1004];
        State::adjust_pointer_words(
            i386,
            &mut v,
            0,
            &[true, true],
            old,
            0u64.wrapping_sub(0x2000),
            true,
        )
        .unwrap();
        assert_eq!(v, vec![0xffff_f000, 0xffff_f004]);
    }
}
