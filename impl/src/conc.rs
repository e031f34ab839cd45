//! Goroutine stacks shared between threads: the synchronization that lets a
//! GC thread copy (shrink) a goroutine's stack while other threads send to
//! that goroutine on channels, while the goroutine itself is parking, and
//! that keeps a scanner away from a stack being grown.
//!
//! [`crate::Runtime`] is the sequential face of the implementation: one
//! caller drives every goroutine, and each operation equals the spec's.
//! [`Sched`] is the concurrent one: its methods take `&self`, so that a
//! goroutine's own thread, a sender and a GC worker can act on one
//! goroutine at once, as in Go. It keeps Go's protocol step for step, on
//! the same allocator ([`Stacks`], with its locks and its linearization
//! log) and the same copy and adjustment loops (`impl/src/adjust.rs`) as the
//! runtime; the loom models in `models/tests/loom_{chan,park,grow}.rs`
//! explore its interleavings and check each outcome against the spec.
//!
//! # The protocol (Go 1.23's runtime, cited by function)
//! - **Ownership by status.** A goroutine's stack belongs to whoever holds
//!   its status: the goroutine itself while `RUNNING` or `COPYSTACK`, and
//!   a GC worker that set the `SCAN` bit on a `WAITING` or `RUNNABLE`
//!   goroutine (`suspendG` in preempt.go, `castogscanstatus` in proc.go).
//!   A worker cannot take a running goroutine (Go asks it to preempt
//!   itself; here [`Sched::scan`] reports "not now"), nor one whose stack is
//!   being copied (`COPYSTACK`, set by `newstack` in stack.go around its
//!   `copystack`). A status change by the owner waits while the bit is set
//!   (`casgstatus`).
//! - **Parking on channels** (`selectgo` in select.go, `park_m` in proc.go,
//!   `selparkcommit`): the goroutine locks its channels in address order,
//!   enqueues one sudog per case whose `elem` points into its own stack,
//!   sets `parkingOnChan`, goes `WAITING`, then sets `activeStackChans`,
//!   clears `parkingOnChan` and unlocks. From `WAITING` on, a GC worker
//!   may take it, so between the status change and the unlock a shrink is
//!   unsafe: `isShrinkStackSafe` refuses while `parkingOnChan` is set
//!   (golang/go#40641).
//! - **Sending** (`chansend`, `send`, `sendDirect` in chan.go, `goready`):
//!   under the channel lock, the sender takes a waiting sudog (winning its
//!   select with a compare-and-swap of `selectDone`), writes the value
//!   through `elem` into the receiver's stack, unlocks, and readies the
//!   receiver (`WAITING` to `RUNNABLE`, waiting out a `SCAN` bit).
//! - **Copying** (`copystack`): when `activeStackChans` is set, senders
//!   may write into the stack at any time, so the copier locks every
//!   channel the goroutine waits on, adjusts the sudogs' `elem` and copies
//!   the part of the stack they point into before unlocking
//!   (`syncadjustsudogs`, golang/go#12967 and #13169); the words below
//!   that bound (`sghi`) are adjusted with a compare-and-swap afterwards.
//!   Without `activeStackChans` nobody else can touch the sudogs, and
//!   they are adjusted without locks (`adjustsudogs`) — but a shrink then
//!   while `parkingOnChan` is set is "racy sudog adjustment due to parking
//!   on channel".
//!
//! # What is simplified
//! Each goroutine has one frame of fixed size at the top of its stack,
//! whose pointer words are given when it is spawned (the frame walk, with
//! its per-function maps, is [`crate::Runtime`]'s, tested against the
//! spec by the differential tests). Channels are unbuffered and only
//! receive through a parked select; a readied goroutine is not resumed.
//! The goroutines, channels and sudogs are created before the threads
//! start (`&mut self`). 64-bit profiles only.
//!
//! # Mutants
//! Three `cfg(gostack_mutant = "...")` switches remove one protocol step
//! each (ci/loom.sh requires its model to catch it):
//! `sudogs_adjusted_unlocked` (copystack ignores `activeStackChans`),
//! `shrink_while_parking` (isShrinkStackSafe ignores `parkingOnChan`,
//! shared with [`crate::Runtime`]), `scan_during_copystack` (suspendG takes
//! a goroutine in `COPYSTACK`).

use crate::adjust::{self, Move, Words, W64};
use crate::stack::Stacks;
use crate::sync::{lock, AtomicBool, AtomicU32, AtomicU64, Mutex, Ordering::SeqCst};
use gostack_spec::{Config, Consts, GoThrow, Misuse, Stack, Throw};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32 as PlainU32, Ordering::Relaxed};

/// Goroutine status values, Go's (`_G*` in runtime/runtime2.go).
pub mod gstatus {
    /// `_Grunnable`: readied, not running.
    pub const RUNNABLE: u32 = 1;
    /// `_Grunning`: its own thread owns it.
    pub const RUNNING: u32 = 2;
    /// `_Gwaiting`: parked.
    pub const WAITING: u32 = 4;
    /// `_Gcopystack`: its own thread is copying its stack.
    pub const COPYSTACK: u32 = 8;
    /// `_Gscan`: added to a status by the thread that scans it.
    pub const SCAN: u32 = 0x1000;
}
use gstatus::*;

/// The most cases a select may have here.
pub const MAX_CASES: usize = 4;

/// One goroutine. Fields Go protects by ownership (the stack bounds, SP,
/// the flags) are atomics so that a broken protocol (a mutant) is a wrong
/// value, never undefined behaviour; the ones a protocol step orders are
/// loom's under `cfg(loom)`.
struct GCell {
    status: AtomicU32,
    lo: AtomicU64,
    hi: AtomicU64,
    sp: AtomicU64,
    parking_on_chan: AtomicBool,
    active_stack_chans: AtomicBool,
    select_done: AtomicU32,
    /// Sudogs in `waiting` (ids `gid * MAX_CASES ..`), in lock order; 0 when
    /// not parked on channels. Written by the owner only.
    nwaiting: PlainU32,
    /// Frame length in words (at the top of the stack).
    words: usize,
    /// The frame's pointer words, packed (bit i = word i from SP).
    ptrs: Vec<u64>,
}

/// A sudog: a goroutine waiting on a channel, and where the value goes.
struct SudogCell {
    /// Channel; written by the owner before it enqueues the sudog.
    c: PlainU32,
    /// Go: `sudog.elem`, protected by the channel lock.
    elem: AtomicU64,
}

/// An unbuffered channel: its receive queue of sudog ids, under its lock.
struct ChanCell {
    elem_words: usize,
    recvq: Mutex<VecDeque<u32>>,
}

/// One stack copy, as [`Sched::copies`] lists them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Copy {
    /// The goroutine.
    pub gid: u32,
    /// Its stack before.
    pub old: Stack,
    /// Its stack after.
    pub new: Stack,
}

/// What a GC worker saw when it scanned a goroutine ([`Sched::scan`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanReport {
    /// The stack bounds it read.
    pub stack: Stack,
    /// The SP it read.
    pub sp: u64,
    /// The frame words it read at `[sp, sp + 8 * words)`.
    pub frame: Vec<u64>,
    /// The stack it shrank to, if it shrank.
    pub shrunk: Option<Stack>,
}

/// Goroutines, channels and stacks that several threads act on at once;
/// see the module documentation.
pub struct Sched {
    stacks: Stacks,
    consts: Consts,
    gs: Vec<GCell>,
    sudogs: Vec<SudogCell>,
    chans: Vec<ChanCell>,
    /// Every copy, in the order it happened for each goroutine (the
    /// copies of one goroutine are ordered by its status). A std lock: it
    /// is never held across a step of the protocol.
    copies: std::sync::Mutex<Vec<Copy>>,
    /// See [`mem_point`].
    tick: AtomicU32,
}

impl std::fmt::Debug for Sched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sched")
            .field("goroutines", &self.gs.len())
            .field("chans", &self.chans.len())
            .finish()
    }
}

/// Go's `adjustpointer` on one value.
fn adj(v: u64, old: Stack, delta: u64) -> u64 {
    if old.lo <= v && v < old.hi {
        v.wrapping_add(delta)
    } else {
        v
    }
}

/// Waits before retrying a compare-and-swap another thread holds up.
fn spin() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}

/// Stack memory is plain words that loom does not see; loom switches
/// threads only at locks and atomics. Loom builds call this between two
/// accesses to stack memory that Go does not order (a sender's read of
/// `elem` and its write through it, a copier's sudog adjustment and its
/// memmove), so that loom may run another thread there, as hardware may.
/// Elsewhere it does nothing.
#[inline(always)]
fn mem_point(tick: &AtomicU32) {
    #[cfg(loom)]
    tick.fetch_add(1, SeqCst);
    #[cfg(not(loom))]
    let _ = tick;
}

impl Sched {
    /// A scheduler over a new allocator for `config`; 32-bit profiles are
    /// refused (`LayoutNotModeled`).
    pub fn new(config: &Config) -> Result<Sched, Throw> {
        let consts = config.profile.consts();
        if consts.ptr_size != 8 {
            return Err(
                Misuse::LayoutNotModeled("concurrent goroutines on a 32-bit profile").into(),
            );
        }
        Ok(Sched {
            stacks: Stacks::new(config)?,
            consts,
            gs: Vec::new(),
            sudogs: Vec::new(),
            chans: Vec::new(),
            copies: std::sync::Mutex::new(Vec::new()),
            tick: AtomicU32::new(0),
        })
    }

    /// The allocator (real addresses).
    pub fn stacks(&self) -> &Stacks {
        &self.stacks
    }

    fn g(&self, gid: u32) -> Result<&GCell, Throw> {
        self.gs
            .get(gid as usize)
            .ok_or_else(|| Misuse::NoSuchG(gid).into())
    }

    fn chan(&self, c: u32) -> Result<&ChanCell, Throw> {
        self.chans
            .get(c as usize)
            .ok_or_else(|| Misuse::NoSuchChan(c).into())
    }

    /// A new goroutine, `RUNNING` (owned by the caller's thread), on a
    /// fresh stack of `size` bytes (allocated without a P) whose top
    /// `frame.len()` words hold `frame`; `ptrs[i]` marks word `i` (from
    /// SP) as a pointer. A frame that leaves less than the stack guard
    /// below it, or a pointer map longer than the frame, is
    /// `NotInUsedStack`.
    pub fn spawn(&mut self, size: u64, frame: &[u64], ptrs: &[bool]) -> Result<u32, Throw> {
        let gid = self.gs.len() as u32;
        let bytes = (frame.len() as u64).saturating_mul(8);
        if frame.is_empty()
            || bytes.saturating_add(self.consts.stack_guard) > size
            || ptrs.len() > frame.len()
        {
            return Err(Misuse::NotInUsedStack(gid, bytes).into());
        }
        let stk = self.stacks.stackalloc(None, false, size)?;
        let sp = stk.hi - bytes;
        let Some(ws) = self.stacks.arena().words(sp, frame.len()) else {
            return Err(Misuse::NotInUsedStack(gid, sp).into());
        };
        for (w, &v) in ws.iter().zip(frame) {
            w.store(v, Relaxed);
        }
        self.gs.push(GCell {
            status: AtomicU32::new(RUNNING),
            lo: AtomicU64::new(stk.lo),
            hi: AtomicU64::new(stk.hi),
            sp: AtomicU64::new(sp),
            parking_on_chan: AtomicBool::new(false),
            active_stack_chans: AtomicBool::new(false),
            select_done: AtomicU32::new(0),
            nwaiting: PlainU32::new(0),
            words: frame.len(),
            ptrs: adjust::pack(ptrs),
        });
        for _ in 0..MAX_CASES {
            self.sudogs.push(SudogCell {
                c: PlainU32::new(0),
                elem: AtomicU64::new(0),
            });
        }
        Ok(gid)
    }

    /// A new unbuffered channel of `elem_words`-word values (1 to 8).
    pub fn make_chan(&mut self, elem_words: usize) -> Result<u32, Throw> {
        if !(1..=8).contains(&elem_words) {
            return Err(Misuse::BadElemSize((elem_words as u64).saturating_mul(8)).into());
        }
        self.chans.push(ChanCell {
            elem_words,
            recvq: Mutex::new(VecDeque::new()),
        });
        Ok(self.chans.len() as u32 - 1)
    }

    /// The goroutine's status word (with the `SCAN` bit).
    pub fn status(&self, gid: u32) -> Result<u32, Throw> {
        Ok(self.g(gid)?.status.load(SeqCst))
    }

    /// The goroutine's stack.
    pub fn stack(&self, gid: u32) -> Result<Stack, Throw> {
        let g = self.g(gid)?;
        Ok(Stack {
            lo: g.lo.load(SeqCst),
            hi: g.hi.load(SeqCst),
        })
    }

    /// The goroutine's frame words, read at its current SP.
    pub fn frame(&self, gid: u32) -> Result<Vec<u64>, Throw> {
        let g = self.g(gid)?;
        self.read(g.sp.load(SeqCst), g.words)
    }

    /// Where each of the goroutine's sudogs points (`elem`), in lock order.
    pub fn sudog_elems(&self, gid: u32) -> Result<Vec<u64>, Throw> {
        let g = self.g(gid)?;
        let base = gid as usize * MAX_CASES;
        let n = g.nwaiting.load(Relaxed) as usize;
        Ok(self.sudogs[base..base + n]
            .iter()
            .map(|s| s.elem.load(SeqCst))
            .collect())
    }

    /// Every stack copy so far.
    pub fn copies(&self) -> Vec<Copy> {
        self.copies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn read(&self, addr: u64, n: usize) -> Result<Vec<u64>, Throw> {
        let ws = self
            .stacks
            .arena()
            .words(addr, n)
            .ok_or(Misuse::NotInUsedStack(u32::MAX, addr))?;
        Ok(ws.iter().map(|w| w.load(Relaxed)).collect())
    }

    fn words(&self, addr: u64, n: usize) -> W64<'_> {
        // Every address passed here lies in a stack the caller owns.
        W64(self.stacks.arena().words(addr, n).unwrap_or(&[]))
    }

    /// `casgstatus`: the owner's status change, waiting while a scanner
    /// holds the `SCAN` bit; a status that is neither `from` nor
    /// `from | SCAN` is the caller's misuse.
    fn casgstatus(&self, gid: u32, g: &GCell, from: u32, to: u32) -> Result<(), Throw> {
        loop {
            match g.status.compare_exchange(from, to, SeqCst, SeqCst) {
                Ok(_) => return Ok(()),
                Err(s) if s == from | SCAN => spin(),
                Err(_) => return Err(Misuse::GNotRunnable(gid).into()),
            }
        }
    }

    // ---- the goroutine's own thread -------------------------------------

    /// The goroutine (`RUNNING`) stores `v` in word `i` of its frame.
    pub fn set_frame_word(&self, gid: u32, i: usize, v: u64) -> Result<(), Throw> {
        let g = self.g(gid)?;
        if g.status.load(SeqCst) != RUNNING {
            return Err(Misuse::GNotRunnable(gid).into());
        }
        if i >= g.words {
            return Err(Misuse::NotInUsedStack(gid, (i as u64).saturating_mul(8)).into());
        }
        self.words(g.sp.load(SeqCst) + i as u64 * 8, 1).st(0, v);
        Ok(())
    }

    /// The goroutine's SP.
    pub fn sp(&self, gid: u32) -> Result<u64, Throw> {
        Ok(self.g(gid)?.sp.load(SeqCst))
    }

    /// Go: `selectgo` with receive cases only, then `gopark` with
    /// `selparkcommit`: the goroutine (`RUNNING`) parks on
    /// `cases` (channel, frame word its value goes to). Every step is
    /// Go's, in Go's order; see the module documentation.
    pub fn park_on_chans(&self, gid: u32, cases: &[(u32, usize)]) -> Result<(), Throw> {
        let g = self.g(gid)?;
        if cases.is_empty() || cases.len() > MAX_CASES {
            return Err(Misuse::BadSelect("a select parks on 1 to 4 receive cases").into());
        }
        let mut order: Vec<(u32, usize)> = cases.to_vec();
        order.sort_unstable();
        for &(c, slot) in &order {
            let ch = self.chan(c)?;
            if slot
                .checked_add(ch.elem_words)
                .is_none_or(|end| end > g.words)
            {
                return Err(Misuse::NotInUsedStack(gid, (slot as u64).saturating_mul(8)).into());
            }
        }
        if g.status.load(SeqCst) != RUNNING {
            return Err(Misuse::GNotRunnable(gid).into());
        }
        // sellock: each distinct channel once, in order.
        let mut held = Vec::new();
        let mut last = None;
        for &(c, _) in &order {
            if last != Some(c) {
                held.push(lock(&self.chans[c as usize].recvq));
                last = Some(c);
            }
        }
        let sp = g.sp.load(SeqCst);
        let base = gid as usize * MAX_CASES;
        g.select_done.store(0, SeqCst);
        // Enqueue one sudog per case; `held[q]` is the lock of its channel.
        let mut q = 0;
        for (k, &(c, slot)) in order.iter().enumerate() {
            if k > 0 && order[k - 1].0 != c {
                q += 1;
            }
            let sg = &self.sudogs[base + k];
            sg.c.store(c, Relaxed);
            sg.elem.store(sp + slot as u64 * 8, SeqCst);
            held[q].push_back((base + k) as u32);
        }
        g.nwaiting.store(order.len() as u32, Relaxed);
        g.parking_on_chan.store(true, SeqCst);
        // park_m: the status change publishes the goroutine to scanners.
        self.casgstatus(gid, g, RUNNING, WAITING)?;
        // selparkcommit.
        g.active_stack_chans.store(true, SeqCst);
        g.parking_on_chan.store(false, SeqCst);
        drop(held);
        Ok(())
    }

    /// Go: `gopark` with no channels (a plain wait): `RUNNING` to
    /// `WAITING`.
    pub fn park(&self, gid: u32) -> Result<(), Throw> {
        let g = self.g(gid)?;
        self.casgstatus(gid, g, RUNNING, WAITING)
    }

    /// Go: `newstack`'s growth: the goroutine (`RUNNING`) goes
    /// `COPYSTACK`, copies its stack to one twice the size, and runs
    /// again. Returns the new stack.
    pub fn grow(&self, gid: u32) -> Result<Stack, Throw> {
        let g = self.g(gid)?;
        let old = self.stack(gid)?;
        let newsize = (old.hi - old.lo).saturating_mul(2);
        self.stacks.check_size(newsize)?;
        self.casgstatus(gid, g, RUNNING, COPYSTACK)?;
        let r = self.copystack(gid, g, newsize);
        self.casgstatus(gid, g, COPYSTACK, RUNNING)?;
        r
    }

    // ---- other threads -----------------------------------------------------

    /// Go: `chansend` to a waiting receiver (`send`, `sendDirect`,
    /// `goready`): returns the goroutine that received `value`, or
    /// `WouldBlock` when no receiver waits (channels here have no buffer
    /// and this sender does not park). A value of the wrong length is
    /// `BadElemSize`.
    pub fn send(&self, c: u32, value: &[u64]) -> Result<u32, Throw> {
        let ch = self.chan(c)?;
        if value.len() != ch.elem_words {
            return Err(Misuse::BadElemSize(value.len() as u64 * 8).into());
        }
        let mut q = lock(&ch.recvq);
        // dequeue: skip sudogs whose select another channel already won.
        let (gid, elem) = loop {
            let Some(id) = q.pop_front() else {
                return Err(Misuse::WouldBlock("send with no waiting receiver").into());
            };
            let gid = id / MAX_CASES as u32;
            let g = &self.gs[gid as usize];
            if g.select_done.compare_exchange(0, 1, SeqCst, SeqCst).is_ok() {
                break (gid, self.sudogs[id as usize].elem.load(SeqCst));
            }
        };
        // sendDirect: into the receiver's stack, under the lock.
        mem_point(&self.tick);
        let ws = self.words(elem, value.len());
        for (i, &v) in value.iter().enumerate() {
            ws.st(i, v);
        }
        drop(q);
        // goready.
        let g = &self.gs[gid as usize];
        self.casgstatus(gid, g, WAITING, RUNNABLE)?;
        Ok(gid)
    }

    /// Go: a GC worker's `markroot` of one goroutine: `suspendG`, then
    /// `scanstack` (here: read the stack bounds, SP and frame) and
    /// `shrinkstack` when `isShrinkStackSafe`, then `resumeG`. `None` when
    /// the goroutine cannot be taken now (running, copying its stack, or
    /// held by another scanner): the caller retries.
    pub fn scan(&self, gid: u32) -> Result<Option<ScanReport>, Throw> {
        let g = self.g(gid)?;
        // suspendG.
        let s = g.status.load(SeqCst);
        let takeable = s == WAITING || s == RUNNABLE;
        // Mutant: suspendG treats a stack being copied as scannable.
        #[cfg(gostack_mutant = "scan_during_copystack")]
        let takeable = takeable || s == COPYSTACK;
        if !takeable
            || g.status
                .compare_exchange(s, s | SCAN, SeqCst, SeqCst)
                .is_err()
        {
            return Ok(None);
        }
        // scanstack.
        let stack = self.stack(gid)?;
        let sp = g.sp.load(SeqCst);
        mem_point(&self.tick);
        let frame = self.read(sp, g.words).unwrap_or_default();
        // shrinkstack.
        let mut shrunk = None;
        let r = if self.is_shrink_stack_safe(g) {
            let oldsize = stack.hi - stack.lo;
            let newsize = oldsize / 2;
            let used = stack.hi - sp + self.consts.stack_nosplit;
            if newsize >= self.consts.fixed_stack && used < oldsize / 4 {
                self.copystack(gid, g, newsize).map(|s| shrunk = Some(s))
            } else {
                Ok(())
            }
        } else {
            Ok(())
        };
        // resumeG.
        g.status.store(s, SeqCst);
        r?;
        Ok(Some(ScanReport {
            stack,
            sp,
            frame,
            shrunk,
        }))
    }

    /// Go: `isShrinkStackSafe` (no syscalls or async safe points here).
    fn is_shrink_stack_safe(&self, g: &GCell) -> bool {
        // Mutant (golang/go#40641): parkingOnChan ignored.
        #[cfg(gostack_mutant = "shrink_while_parking")]
        let _ = g;
        #[cfg(gostack_mutant = "shrink_while_parking")]
        return true;
        #[cfg(not(gostack_mutant = "shrink_while_parking"))]
        !g.parking_on_chan.load(SeqCst)
    }

    /// Go: `copystack`, by the stack's owner.
    fn copystack(&self, gid: u32, g: &GCell, newsize: u64) -> Result<Stack, Throw> {
        let old = self.stack(gid)?;
        let sp = g.sp.load(SeqCst);
        // Wrapping: only a broken protocol (a mutant) reads an SP outside
        // the stack, and then the words reached are checked by the arena.
        let used = old.hi.wrapping_sub(sp);
        let base = gid as usize * MAX_CASES;
        let sudogs = &self.sudogs[base..base + g.nwaiting.load(Relaxed) as usize];
        let active = g.active_stack_chans.load(SeqCst);
        // Mutant (golang/go#12967, #13169): the sudogs are adjusted and the
        // stack copied without the channel locks, as before Go had
        // syncadjustsudogs.
        #[cfg(gostack_mutant = "sudogs_adjusted_unlocked")]
        let active = active && false;
        // Go checks after allocating; checking first changes nothing on
        // the throw.
        if !active && newsize < old.hi - old.lo && g.parking_on_chan.load(SeqCst) {
            return Err(GoThrow::RacySudogAdjustment.into());
        }
        let new = self.stacks.stackalloc(None, false, newsize)?;
        let delta = new.hi.wrapping_sub(old.hi);
        let mut ncopy = used;
        let mut sghi = 0;
        if !active {
            for sg in sudogs {
                sg.elem.store(adj(sg.elem.load(SeqCst), old, delta), SeqCst);
            }
        } else {
            // findsghi.
            for sg in sudogs {
                let c = &self.chans[sg.c.load(Relaxed) as usize];
                let end = sg.elem.load(SeqCst) + c.elem_words as u64 * 8;
                if old.lo <= end && end < old.hi && end > sghi {
                    sghi = end;
                }
            }
            // syncadjustsudogs: lock each channel once (sudogs are in lock
            // order), adjust, copy up to sghi, unlock.
            let mut held = Vec::new();
            let mut last = None;
            for sg in sudogs {
                let c = sg.c.load(Relaxed);
                if last != Some(c) {
                    held.push(lock(&self.chans[c as usize].recvq));
                    last = Some(c);
                }
            }
            for sg in sudogs {
                sg.elem.store(adj(sg.elem.load(SeqCst), old, delta), SeqCst);
            }
            if sghi != 0 {
                mem_point(&self.tick);
                let n = (sghi.wrapping_sub(sp) / 8) as usize;
                adjust::copy64(self.words(sp, n), self.words(new.hi.wrapping_sub(used), n));
                ncopy = ncopy.wrapping_sub(sghi.wrapping_sub(sp));
            }
            drop(held);
        }
        mem_point(&self.tick);
        let n = (ncopy / 8) as usize;
        adjust::copy64(
            self.words(old.hi.wrapping_sub(ncopy), n),
            self.words(new.hi.wrapping_sub(ncopy), n),
        );
        // The switch to the new stack.
        g.lo.store(new.lo, SeqCst);
        g.hi.store(new.hi, SeqCst);
        g.sp.store(new.hi.wrapping_sub(used), SeqCst);
        // adjustframe: words below sghi with compare-and-swap.
        let mv = Move {
            lo: old.lo,
            hi: old.hi,
            delta,
            mask: u64::MAX,
        };
        // adjustframe: a map that starts below sghi (where senders may
        // write) is adjusted with compare-and-swap.
        mem_point(&self.tick);
        let frame = self.words(new.hi.wrapping_sub(used), g.words);
        mv.bits(frame, &g.ptrs, sghi != 0);
        self.copies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Copy { gid, old, new });
        self.stacks.stackfree(None, false, old)?;
        Ok(new)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use gostack_spec::Profile;

    fn config(arch: &str) -> Config {
        let mut c = Config::new(Profile::parse("linux", arch, false, "1.23").unwrap());
        c.arena_bytes = 4 << 20;
        c
    }

    /// A scheduler, one goroutine with a 4-word frame (word 0 points to
    /// word 3, words 1 and 2 receive) on an 8 KiB stack, two channels.
    fn one() -> (Sched, u32, [u32; 2]) {
        let mut s = Sched::new(&config("amd64")).unwrap();
        let c = [s.make_chan(1).unwrap(), s.make_chan(1).unwrap()];
        let g = s.spawn(8192, &[0; 4], &[true, true, true]).unwrap();
        let sp = s.sp(g).unwrap();
        s.set_frame_word(g, 0, sp + 24).unwrap();
        (s, g, c)
    }

    #[test]
    fn refuses_bad_input_and_changes_nothing() {
        assert_eq!(
            Sched::new(&config("386")).err(),
            Some(Misuse::LayoutNotModeled("concurrent goroutines on a 32-bit profile").into())
        );
        let (mut s, g, [c0, c1]) = one();
        let before = s.stacks().snapshot(&[]);
        // A frame that leaves no room for the guard, a map longer than it.
        assert!(s.spawn(2048, &[0; 200], &[]).is_err());
        assert!(s.spawn(2048, &[0; 2], &[true; 3]).is_err());
        assert!(s.make_chan(0).is_err());
        assert!(s.make_chan(9).is_err());
        assert!(s.make_chan(usize::MAX).is_err());
        assert_eq!(s.status(7), Err(Misuse::NoSuchG(7).into()));
        assert!(s.park_on_chans(g, &[]).is_err());
        assert!(s.park_on_chans(g, &[(c0, 0); 5]).is_err());
        assert_eq!(
            s.park_on_chans(g, &[(9, 0)]),
            Err(Misuse::NoSuchChan(9).into())
        );
        assert!(s.park_on_chans(g, &[(c0, 4)]).is_err());
        assert!(s.park_on_chans(g, &[(c0, usize::MAX)]).is_err());
        assert!(s.set_frame_word(g, 4, 0).is_err());
        assert!(s.set_frame_word(g, usize::MAX, 0).is_err());
        assert_eq!(s.send(c0, &[1, 2]), Err(Misuse::BadElemSize(16).into()));
        assert_eq!(
            s.send(c0, &[1]),
            Err(Misuse::WouldBlock("send with no waiting receiver").into())
        );
        // Running: a scanner cannot take it.
        assert_eq!(s.scan(g), Ok(None));
        assert_eq!(s.stacks().snapshot(&[]), before);
        s.park_on_chans(g, &[(c1, 2), (c0, 1)]).unwrap();
        // Parked: its own steps are refused.
        assert_eq!(s.park(g), Err(Misuse::GNotRunnable(g).into()));
        assert_eq!(s.grow(g), Err(Misuse::GNotRunnable(g).into()));
        assert_eq!(
            s.set_frame_word(g, 0, 0),
            Err(Misuse::GNotRunnable(g).into())
        );
        assert_eq!(s.status(g), Ok(WAITING));
    }

    #[test]
    fn send_then_shrink_and_shrink_then_send() {
        for send_first in [true, false] {
            let (s, g, [c0, c1]) = one();
            let old = s.stack(g).unwrap();
            s.park_on_chans(g, &[(c1, 2), (c0, 1)]).unwrap();
            // The sudogs are in lock order (channel c0 first).
            let sp = s.sp(g).unwrap();
            assert_eq!(s.sudog_elems(g).unwrap(), vec![sp + 8, sp + 16]);
            if send_first {
                assert_eq!(s.send(c1, &[0xc000]), Ok(g));
                assert_eq!(s.status(g), Ok(RUNNABLE));
            }
            let r = s.scan(g).unwrap().unwrap();
            assert_eq!((r.stack, r.sp), (old, sp));
            let new = r.shrunk.unwrap();
            assert_eq!(new.hi - new.lo, 4096);
            if !send_first {
                assert_eq!(s.send(c1, &[0xc000]), Ok(g));
                // The select is won: c0's sudog is stale.
                assert!(s.send(c0, &[1]).is_err());
            }
            let nsp = s.sp(g).unwrap();
            assert_eq!(nsp, new.hi - 32);
            assert_eq!(s.frame(g).unwrap(), vec![nsp + 24, 0, 0xc000, 0]);
            assert_eq!(s.sudog_elems(g).unwrap(), vec![nsp + 8, nsp + 16]);
            assert_eq!(s.copies(), vec![Copy { gid: g, old, new }]);
            // The old stack went back: one 4 KiB stack is in use.
            assert_eq!(s.stacks().snapshot(&[]).in_use.len(), 1);
        }
    }

    #[test]
    fn grow_then_scan_shrinks_back() {
        let (s, g, _) = one();
        let first = s.stack(g).unwrap();
        let grown = s.grow(g).unwrap();
        assert_eq!(grown.hi - grown.lo, 16384);
        assert_eq!(s.status(g), Ok(RUNNING));
        assert_eq!(s.frame(g).unwrap()[0], s.sp(g).unwrap() + 24);
        s.park(g).unwrap();
        let r = s.scan(g).unwrap().unwrap();
        assert_eq!(r.stack, grown);
        assert_eq!(r.shrunk.map(|st| st.hi - st.lo), Some(8192));
        assert_eq!(s.status(g), Ok(WAITING));
        assert_eq!(s.copies().len(), 2);
        assert_eq!(s.copies()[0].old, first);
        assert_eq!(s.frame(g).unwrap()[0], s.sp(g).unwrap() + 24);
    }
}
