//! copy_adjust: copystack on arbitrary frames. An arbitrary function
//! table (frame sizes, locals and argument pointer maps, stack objects,
//! SP deltas), a goroutine whose stack is built from it by calls, slot
//! contents that point into the stack, at its edges and just outside it,
//! into another goroutine's stack, to the heap, nil or junk below
//! minLegalPointer, defer and panic records, `sched.ctxt`, and a parked
//! state with sudogs whose elems point into the stack; then grows, forced
//! moves, preemptions, shrinks at stack scans, sends into the parked
//! stack, returns and wake-ups. Every call goes to `gostack_spec::State`
//! and to `gostack::Runtime` with the same arguments: the results (the
//! exact throw included) must be equal after every call, and `snapshot()`
//! and `world()` (with the spec's invariants) after the setup, after every
//! action that can move or free a stack, and at the end. A Go throw is
//! fatal: both sides must die of it, and nothing after it is compared
//! but the refusals.
#![no_main]

use arbitrary::Arbitrary;
use gostack::Runtime;
use gostack_models::harness::{config, state_difference};
use gostack_spec::goroutine::{Func, Site, Slot, StackObject};
use gostack_spec::{check_invariants, Ctx, GcPhase, State};
use libfuzzer_sys::fuzz_target;

const PORTS: &[&str] = &[
    "linux/amd64/1.23",
    "linux/386/1.23",
    "linux/arm64/1.23",
    "linux/arm64/1.19",
    "windows/amd64/1.23",
];

/// A stack object of a function.
#[derive(Arbitrary, Debug)]
struct ObjIn {
    /// In the arguments (offset from argp) rather than the locals.
    in_args: bool,
    /// Offset in words (below varp for locals: at least the size).
    off: u8,
    /// Size in words.
    size: u8,
    /// Bit i: word i is a pointer.
    ptrs: u16,
}

/// A function of the table.
#[derive(Arbitrary, Debug)]
struct FuncIn {
    /// Frame words (modulo 640: up to 5 KiB, past StackBig).
    frame: u16,
    /// Bit i: local word i is a pointer at site 0 (sites rotate it).
    locals: u64,
    /// Locals map length in words (capped by the frame's room).
    nlocals: u8,
    /// Argument words (modulo 8).
    args: u8,
    /// Bit i: argument word i is a pointer.
    arg_ptrs: u8,
    /// Call sites (1 + sites % 4).
    sites: u8,
    objects: Vec<ObjIn>,
    /// Extra SP delta in words (modulo 8192).
    extra: u16,
    nosplit: bool,
}

/// A word value, resolved against the goroutine's stack when used.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Val {
    Nil,
    /// A heap pointer outside the arena.
    Heap(u32),
    /// Word k of the used stack (from SP).
    Used(u16),
    /// `lo`, `hi - p`, `hi` (one past: outside), `lo - p` by `k % 4`.
    Edge(u8),
    /// k words below lo (outside) or above hi.
    Outside(bool, u8),
    /// A misaligned pointer into the used stack.
    Misaligned(u16, u8),
    /// Word k of the other goroutine's used stack.
    OtherG(u16),
    /// A small non-zero value below minLegalPointer.
    Junk(u16),
    /// Any word (cut to the pointer size).
    Raw(u64),
}

/// A slot of a frame, by index modulo what exists.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum SlotIn {
    Local(u16),
    Arg(u16),
    Object(u8, u8),
    /// A raw word of the used stack (`poke`: may corrupt frames).
    Poke(u16),
}

/// What happens to the built stack.
#[derive(Arbitrary, Debug)]
enum Action {
    /// A call (may overflow and grow), from site `site`.
    Call(u8, u8),
    /// `depth` calls of one function (deep recursion).
    Recurse(u8, u8, u8),
    /// `stackguard0 = stackForceMove`, then a call.
    ForceMove(u8, u8),
    /// `stackguard0 = stackPreempt`, then a call (shrinks if the GC asked).
    Preempt(u8, u8),
    /// Up to n returns.
    Ret(u8),
    /// A GC stack scan (starting a cycle if none runs): shrink, or
    /// preemptShrink when unsafe.
    GcScan(bool),
    /// The end of the GC cycle.
    GcEnd,
    /// Write a value into a slot of frame f.
    Write(u8, SlotIn, Val, bool),
    /// Park the goroutine on channels (the i-th channel, the k-th receive
    /// slot its frames' locals have room for).
    Park(Vec<(u8, u16)>),
    /// A send on the i-th channel.
    Send(u8, Val),
    /// The readied goroutine resumes.
    Wake,
    /// Push a defer record for frame f (at object o when Some).
    Defer(u8, Val, Option<u8>),
    /// Push a panic record at object o of frame f.
    Panic(u8, u8),
    /// Set `sched.ctxt`.
    Ctxt(Val),
    /// `entersyscall` / `exitsyscall`.
    Syscall(bool),
    /// `debug.SetMaxStack(fixedStack << k)`.
    MaxStack(u8),
    /// Act on the other goroutine for the next action.
    Other,
}

#[derive(Arbitrary, Debug)]
struct Input {
    port: u8,
    funcs: Vec<FuncIn>,
    /// Channel element sizes in words (1 + k % 4).
    chans: Vec<u8>,
    /// The other goroutine's calls (func, site).
    other: Vec<(u8, u8)>,
    /// The main goroutine's calls (func, site).
    calls: Vec<(u8, u8)>,
    actions: Vec<Action>,
}

/// Both sides and the log of calls made.
struct Pair {
    s: State,
    r: Runtime,
    log: Vec<String>,
    port: &'static str,
}

macro_rules! both {
    ($pr:expr, $what:expr, |$m:ident| $call:expr) => {{
        let a = {
            let $m = &mut $pr.s;
            $call
        };
        let b = {
            let $m = &mut $pr.r;
            $call
        };
        $pr.log.push(format!("{} -> {:?}", $what, a));
        if a != b {
            panic!(
                "{}: results differ for {}\n  spec: {a:?}\n  impl: {b:?}\n  calls:\n    {}",
                $pr.port,
                $what,
                $pr.log.join("\n    ")
            );
        }
        if $pr.s.dead.as_ref() != $pr.r.dead() {
            panic!(
                "{}: after {}, the spec is dead of {:?}, the impl of {:?}\n  calls:\n    {}",
                $pr.port,
                $what,
                $pr.s.dead,
                $pr.r.dead(),
                $pr.log.join("\n    ")
            );
        }
        a
    }};
}

impl Pair {
    fn same_state(&self, when: &str) {
        if self.s.dead.is_some() {
            // A Go throw is fatal: both sides died of it (checked by
            // `both!`), every later call is refused alike, and their
            // states are no longer compared.
            return;
        }
        let a = (self.s.snapshot(), self.s.world());
        let b = (self.r.snapshot(), self.r.world());
        if a != b {
            let (path, x, y) = state_difference(&a, &b);
            panic!(
                "{}: states differ {when} at {path}\n  spec: {x}\n  impl: {y}\n  calls:\n    {}",
                self.port,
                self.log.join("\n    ")
            );
        }
        if let Err(v) = check_invariants(&self.s) {
            panic!(
                "{}: spec invariant broken {when}: {v}\n  calls:\n    {}",
                self.port,
                self.log.join("\n    ")
            );
        }
    }

    fn p(&self) -> u64 {
        self.s.consts.ptr_size
    }

    fn mask(&self) -> u64 {
        if self.p() == 8 {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        }
    }

    /// Word k of goroutine g's used stack, or its SP when it has none.
    fn used_word(&self, g: u32, k: u64) -> u64 {
        match self.s.gor.gs.get(&g) {
            Some(g) => {
                let words = ((g.stack.hi - g.sp) / self.p()).max(1);
                g.sp + k % words * self.p()
            }
            None => 0,
        }
    }

    fn value(&self, g: u32, other: Option<u32>, v: Val) -> u64 {
        let p = self.p();
        let (lo, hi) = self
            .s
            .gor
            .gs
            .get(&g)
            .map_or((0, 0), |g| (g.stack.lo, g.stack.hi));
        let v = match v {
            Val::Nil => 0,
            Val::Heap(h) => 0x4000_0000 + u64::from(h % 0x1000_0000) / p * p,
            Val::Used(k) => self.used_word(g, k.into()),
            Val::Edge(k) => match k % 4 {
                0 => lo,
                1 => hi - p,
                2 => hi,
                _ => lo.wrapping_sub(p),
            },
            Val::Outside(below, k) => {
                if below {
                    lo.wrapping_sub((u64::from(k) + 1) * p)
                } else {
                    hi + u64::from(k) * p
                }
            }
            Val::Misaligned(k, b) => self.used_word(g, k.into()) + 1 + u64::from(b) % (p - 1),
            Val::OtherG(k) => other.map_or(0, |o| self.used_word(o, k.into())),
            Val::Junk(j) => 1 + u64::from(j) % (self.s.consts.min_legal_pointer - 1),
            Val::Raw(r) => r,
        };
        v & self.mask()
    }

    /// The k-th place a receive slot of `words` words fits in the locals
    /// of goroutine g's frames, where the compiler puts one (the models
    /// harness's `recv_slot` picks the same way); None when there is none.
    /// For `k >= 0xe000`, any word of the used stack instead: a slot over
    /// a return address or a saved frame pointer, which `park` must refuse
    /// (`NotALocal`) in both spec and impl.
    fn recv_slot(&self, g: u32, k: u16, words: u64) -> Option<u64> {
        let p = self.p();
        let lr = if self.s.config.profile.goarch.has_lr() {
            p
        } else {
            0
        };
        if k >= 0xe000 {
            let gg = self.s.gor.gs.get(&g)?;
            let n = gg.stack.hi.checked_sub(gg.sp)? / p;
            return (n > 0).then(|| gg.sp + u64::from(k - 0xe000) % n * p);
        }
        let frames = self.s.frames(g).ok()?;
        let mut cands = Vec::new();
        for fr in frames.iter().filter(|fr| fr.site.is_some()) {
            let room = fr.varp.saturating_sub(fr.sp).saturating_sub(lr) / p;
            let mut i = 0;
            while i + words.max(1) <= room && cands.len() < 256 {
                cands.push(fr.varp - (room - i) * p);
                i += 1;
            }
        }
        (!cands.is_empty()).then(|| cands[usize::from(k) % cands.len()])
    }

    fn nframes(&self, g: u32) -> usize {
        self.s.frames(g).map_or(0, |f| f.len())
    }

    /// Call sites of goroutine g's innermost function.
    fn nsites(&self, g: u32) -> usize {
        use gostack_spec::goroutine::Pc;
        match self.s.gor.gs.get(&g).map(|g| g.pc) {
            Some(Pc::At(f, _)) | Some(Pc::Entry(f)) => self.s.gor.funcs[f].sites.len(),
            None => 1,
        }
    }

    fn call(&mut self, ctx: Ctx, g: u32, site: u8, f: u8) -> Result<(), gostack_spec::Throw> {
        let nf = self.s.gor.funcs.len();
        let (site, f) = (usize::from(site) % self.nsites(g), usize::from(f) % nf);
        both!(self, format!("call(g{g}, site {site}, f{f})"), |m| m
            .call(ctx, g, site, f))
    }

    fn slot(&self, g: u32, frame: usize, s: SlotIn) -> Result<Slot, u16> {
        let p = self.p();
        let f = self
            .s
            .frames(g)
            .ok()
            .and_then(|fr| fr.get(frame).map(|x| x.func));
        let Some(f) = f.map(|f| &self.s.gor.funcs[f]) else {
            return Ok(Slot::Local(0));
        };
        let nl = f.sites[0].locals.len().max(1);
        let na = ((f.args_size / p) as usize).max(1);
        Ok(match s {
            SlotIn::Local(i) => Slot::Local(usize::from(i) % nl),
            SlotIn::Arg(i) => Slot::Arg(usize::from(i) % na),
            SlotIn::Object(o, w) => {
                let no = f.objects.len().max(1);
                let o = usize::from(o) % no;
                let nw = f.objects.get(o).map_or(1, |x| (x.size / p).max(1) as usize);
                Slot::Object(o, usize::from(w) % nw)
            }
            SlotIn::Poke(k) => return Err(k),
        })
    }
}

/// The function an input describes, for a profile (mostly valid: the
/// spec and the implementation refuse the rest alike).
fn build(f: &FuncIn, i: usize, p: u64, arch: &str) -> Func {
    let want = u64::from(f.frame % 640) * p;
    let frame = match arch {
        "arm64" if want == 0 => 0,
        "arm64" => want.next_multiple_of(16).max(16),
        _ => want,
    };
    let room = match arch {
        "amd64" if frame > 0 => frame - p,
        "arm64" if frame > 0 => frame.saturating_sub(2 * p),
        _ => frame,
    };
    let words = (room / p) as usize;
    let nl = usize::from(f.nlocals).min(words).min(64);
    let na = usize::from(f.args % 8);
    let nsites = 1 + u32::from(f.sites % 4);
    let sites = (0..nsites)
        .map(|s| Site {
            locals: (0..nl)
                .map(|b| f.locals.rotate_left(s) >> b & 1 == 1)
                .collect(),
            args: (0..na).map(|b| f.arg_ptrs >> b & 1 == 1).collect(),
        })
        .collect();
    let mut objects = Vec::new();
    for o in f.objects.iter().take(4) {
        let size = u64::from(o.size % 8 + 1);
        let ptrs = (0..size).map(|b| o.ptrs >> b & 1 == 1).collect();
        if o.in_args {
            if na == 0 {
                continue;
            }
            let off = u64::from(o.off) % na as u64;
            let size = size.min(na as u64 - off);
            objects.push(StackObject {
                off: (off * p) as i64,
                size: size * p,
                ptrs: (0..size).map(|b| o.ptrs >> b & 1 == 1).collect(),
            });
        } else {
            if words == 0 {
                continue;
            }
            let size = size.min(words as u64);
            let off = size + u64::from(o.off) % (words as u64 - size + 1);
            objects.push(StackObject {
                off: -((off * p) as i64),
                size: size * p,
                ptrs,
            });
            objects
                .last_mut()
                .expect("pushed")
                .ptrs
                .truncate(size as usize);
        }
    }
    Func {
        name: format!("f{i}"),
        frame_size: frame,
        args_size: na as u64 * p,
        max_sp_delta: frame + u64::from(f.extra % 8192) * p,
        nosplit: f.nosplit,
        sites,
        objects,
    }
}

fuzz_target!(|inp: Input| {
    let port = PORTS[usize::from(inp.port) % PORTS.len()];
    let c = config(port).expect("a listed port");
    let s = State::new(c.clone()).expect("the spec starts");
    let r = Runtime::new(c).expect("the implementation starts");
    let mut pr = Pair {
        s,
        r,
        log: Vec::new(),
        port,
    };
    let p = pr.p();
    let arch = port.split('/').nth(1).expect("goos/goarch/release");
    let pid = both!(pr, "create_p()", |m| m.create_p()).expect("a fresh state makes a P");
    let ctx = Ctx::on(pid);
    // Function 0, the entry: a small frame with pointers and a 5-word
    // object (room for a defer record of either release, or a panic
    // record), no arguments.
    let entry = FuncIn {
        frame: 12,
        locals: 0b1011_0110,
        nlocals: 8,
        args: 0,
        arg_ptrs: 0,
        sites: 2,
        objects: vec![ObjIn {
            in_args: false,
            off: 0,
            // Sizes are taken as size % 8 + 1 words.
            size: 4,
            ptrs: 0b1_1111,
        }],
        extra: 0,
        nosplit: false,
    };
    for (i, f) in std::iter::once(&entry)
        .chain(inp.funcs.iter().take(12))
        .enumerate()
    {
        let func = build(f, i, p, arch);
        let what = format!(
            "add_func(f{i}: frame {}, args {}, {} sites, {} objects)",
            func.frame_size,
            func.args_size,
            func.sites.len(),
            func.objects.len()
        );
        let _ = both!(pr, what, |m| m.add_func(func.clone()));
    }
    for (i, &k) in inp.chans.iter().take(4).enumerate() {
        let _ = both!(pr, format!("make_chan #{i}"), |m| m
            .make_chan((u64::from(k % 4) + 1) * p));
    }
    let Ok(g) = both!(pr, "spawn(f0)", |m| m.spawn(ctx, 0)) else {
        return;
    };
    let other = if inp.other.is_empty() {
        None
    } else {
        let o = both!(pr, "spawn(f0) other", |m| m.spawn(ctx, 0)).ok();
        if let Some(o) = o {
            for &(f, site) in inp.other.iter().take(8) {
                let _ = pr.call(ctx, o, site, f);
            }
        }
        o
    };
    for &(f, site) in inp.calls.iter().take(24) {
        let _ = pr.call(ctx, g, site, f);
    }
    pr.same_state("after the setup");
    let main = g;
    let mut switch = false;
    for (n, a) in inp.actions.iter().take(24).enumerate() {
        // The goroutine acted on, and the other one (for OtherG values).
        let (g, og) = match other {
            Some(o) if switch => (o, Some(main)),
            _ => (main, other),
        };
        switch = matches!(a, Action::Other);
        match a {
            Action::Call(site, f) => {
                let _ = pr.call(ctx, g, *site, *f);
            }
            Action::Recurse(site, f, depth) => {
                for _ in 0..depth % 32 {
                    if pr.call(ctx, g, *site, *f).is_err() {
                        break;
                    }
                }
            }
            Action::ForceMove(site, f) => {
                let _ = both!(pr, format!("request_force_move(g{g})"), |m| m
                    .request_force_move(g));
                let _ = pr.call(ctx, g, *site, *f);
            }
            Action::Preempt(site, f) => {
                let _ = both!(pr, format!("request_preempt(g{g})"), |m| m
                    .request_preempt(g));
                let _ = pr.call(ctx, g, *site, *f);
            }
            Action::Ret(k) => {
                for _ in 0..k % 16 {
                    if pr.nframes(g) <= 1 {
                        break;
                    }
                    if both!(pr, format!("ret(g{g})"), |m| m.ret(ctx, g)).is_err() {
                        break;
                    }
                }
            }
            Action::GcScan(start) => {
                if *start || pr.s.gcphase == GcPhase::Off {
                    let _ = both!(pr, "gc_start()", |m| m.gc_start());
                }
                let _ = both!(pr, format!("gc_scan(g{g})"), |m| m.gc_scan(pid, g));
            }
            Action::GcEnd => {
                let _ = both!(pr, "gc_end()", |m| m.gc_end());
            }
            Action::Write(fr, slot, v, site) => {
                let nf = pr.nframes(g).max(1);
                let frame = usize::from(*fr) % nf;
                let value = pr.value(g, og, *v);
                match pr.slot(g, frame, *slot) {
                    Ok(sl) => {
                        if *site {
                            let ns = pr.nsites(g);
                            let _ = both!(pr, format!("set_site(g{g}, {})", frame % ns), |m| m
                                .set_site(g, frame % ns));
                        }
                        let _ = both!(
                            pr,
                            format!("write_slot(g{g}, {frame}, {sl:?}, {value:#x})"),
                            |m| m.write_slot(g, frame, sl, value)
                        );
                    }
                    Err(k) => {
                        let addr = pr.used_word(g, k.into());
                        let _ = both!(pr, format!("poke(g{g}, {addr:#x}, {value:#x})"), |m| m
                            .poke(g, addr, value));
                    }
                }
            }
            Action::Park(cases) => {
                let nc = pr.s.gor.chans.len() as u64;
                if nc == 0 {
                    continue;
                }
                let mut cs: Vec<(u32, u64)> = Vec::new();
                for &(ch, w) in cases.iter().take(4) {
                    let ch = (u64::from(ch) % nc) as u32;
                    let words = pr.s.gor.chans[&ch].elemsize / p;
                    if cs.iter().all(|x| x.0 != ch) {
                        if let Some(slot) = pr.recv_slot(g, w, words) {
                            cs.push((ch, slot));
                        }
                    }
                }
                let _ = both!(pr, format!("park(g{g}, {cs:x?})"), |m| m.park(g, &cs));
            }
            Action::Send(ch, v) => {
                let nc = pr.s.gor.chans.len() as u32;
                if nc == 0 {
                    continue;
                }
                let ch = u32::from(*ch) % nc;
                let words = pr.s.gor.chans[&ch].elemsize / p;
                let value = pr.value(g, og, *v);
                let vals = vec![value; words as usize];
                let _ = both!(pr, format!("send(c{ch}, {vals:x?})"), |m| m.send(ch, &vals));
            }
            Action::Wake => {
                let _ = both!(pr, format!("wake(g{g})"), |m| m.wake(g));
            }
            Action::Defer(fr, v, o) => {
                let frame = usize::from(*fr) % pr.nframes(g).max(1);
                let value = pr.value(g, og, *v);
                let o = o.map(usize::from);
                let _ = both!(
                    pr,
                    format!("defer_push(g{g}, {frame}, {value:#x}, {o:?})"),
                    |m| m.defer_push(g, frame, value, o)
                );
            }
            Action::Panic(fr, o) => {
                let frame = usize::from(*fr) % pr.nframes(g).max(1);
                let o = usize::from(*o) % 4;
                let _ = both!(pr, format!("panic_push(g{g}, {frame}, {o})"), |m| m
                    .panic_push(g, frame, o));
            }
            Action::Ctxt(v) => {
                let value = pr.value(g, og, *v);
                let _ = both!(pr, format!("set_ctxt(g{g}, {value:#x})"), |m| m
                    .set_ctxt(g, value));
            }
            Action::Syscall(enter) => {
                if *enter {
                    let _ = both!(pr, format!("enter_syscall(g{g})"), |m| m.enter_syscall(g));
                } else {
                    let _ = both!(pr, format!("exit_syscall(g{g})"), |m| m.exit_syscall(g));
                }
            }
            Action::MaxStack(k) => {
                let bytes = pr.s.consts.fixed_stack << (k % 12);
                both!(pr, format!("set_max_stack({bytes})"), |m| m
                    .set_max_stack(bytes));
            }
            Action::Other => {}
        }
        // The whole state after every action that can move, grow, shrink
        // or free a stack (the others only write words or registers, which
        // the next comparison sees).
        if !matches!(
            a,
            Action::Write(..)
                | Action::Defer(..)
                | Action::Panic(..)
                | Action::Ctxt(_)
                | Action::MaxStack(_)
                | Action::Other
        ) {
            pr.same_state(&format!("after action {n} ({a:?})"));
        }
    }
    pr.same_state("at the end");
});
