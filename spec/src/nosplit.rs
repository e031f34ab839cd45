//! The linker's nosplit chain analysis (cmd/link/internal/ld/stackcheck.go),
//! and the stanza format of Go's own test of it (`test/nosplit.go`).
//!
//! ## Why the linker checks nosplit chains
//! A function that is not NOSPLIT begins with the split check of
//! [`crate::guard`]: when it returns without calling morestack, at least the
//! linker's budget of bytes is free below SP. A NOSPLIT function has no check,
//! so a chain of NOSPLIT functions runs on that budget alone. The linker
//! proves, for every program, that no chain can outgrow it: it computes the
//! *stack height* of every function, the most bytes the function and the
//! NOSPLIT functions it reaches can push before some split check runs, and
//! fails the link when a height exceeds the limit
//! ([`Profile::linker_nosplit_limit`]: the budget, less the bytes of one
//! CALL, less 8 more on arm64 for the frame pointer that a callee saves below
//! SP).
//!
//! The rules of the height (`computeHeight`):
//! - a splittable function's height is the CALL to morestack in its
//!   prologue: the call size (0 on link-register machines);
//! - `runtime.morestack` has height 0 (what it calls runs on the system
//!   stack);
//! - an indirect call is assumed to reach a splittable function, so its
//!   height is the call size;
//! - a NOSPLIT function's height is the largest of: its SP adjustment at each
//!   call plus the call size plus the callee's height, and its own largest SP
//!   adjustment;
//! - a cycle among NOSPLIT functions has an "infinite" height, which the
//!   linker stores as 32767 (heights are `int16`), as it does any height over
//!   32767.
//!
//! Only the functions of the final program are checked, that is those the
//! linker's dead-code pass keeps: the ones reachable by direct calls from the
//! entry.
//!
//! ## What the assembler makes of a frame
//! The linker reads each function's SP adjustments from its pcsp table, which
//! the assembler's `preprocess` writes after adding the slots a frame needs
//! ([`preprocess`]): the saved frame pointer on amd64, the saved link register
//! on link-register machines (`FixedFrameSize`: 4 on arm and mips, 8 on the
//! other 64-bit machines, 32 on ppc64), arm64's 16-byte rounding with its
//! frame-pointer slot; a leaf without locals gets no frame at all, and on
//! amd64, arm64, ppc64 and s390x a small leaf is made NOSPLIT.
//!
//! ## The stanza format
//! [`read_stanzas`] reads the backquoted `tests` table of Go's
//! `test/nosplit.go` (or a file in the same format) and reproduces that test's
//! own conventions: see [`Stanza`]. [`Stanza::check`] runs one stanza as the
//! test builds it.
//!
//! ## Limits of the model
//! Everything is computed in 64-bit arithmetic; the assembler holds frames in
//! an `int32`, so frames above [`crate::guard::MAX_FRAMESIZE`] are refused
//! ([`Invalid::FrameTooLarge`]) and the wrap of a frame within a few bytes of
//! 2^31 is not modeled. A stanza may not call `main` (Go's `main.main`, which
//! assembly reaches through an ABI wrapper whose frame depends on the
//! architecture's calling convention). Bodies are calls only: anything the
//! harness would pass to the assembler as raw text is refused by the reader.

use crate::guard::MAX_FRAMESIZE;
use crate::profile::{Goarch, Profile, Release, STACK_SMALL};
use crate::throw::{Invalid, Throw};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The architectures whose assembler frame rules are modeled: every one
/// that `test/nosplit.go` names.
pub const NOSPLIT_ARCHES: &[Goarch] = &[
    Goarch::I386,
    Goarch::Amd64,
    Goarch::Arm,
    Goarch::Arm64,
    Goarch::Loong64,
    Goarch::Mips,
    Goarch::Mips64,
    Goarch::Mips64le,
    Goarch::Mipsle,
    Goarch::Ppc64,
    Goarch::Ppc64le,
    Goarch::Riscv64,
    Goarch::S390x,
];

/// The "infinite" height of a cycle, and the largest height the linker
/// stores (`stackCheckCycle`, the largest `int16`).
pub const STACK_CHECK_CYCLE: u64 = (1 << 15) - 1;

/// How many chain steps [`Report`] walks at most; Go's report enumerates
/// every over-limit path, which grows exponentially with the graph.
pub const REPORT_STEP_BUDGET: usize = 200_000;

/// How many bytes of the linker's text [`Report`] writes at most.
pub const REPORT_TEXT_LIMIT: usize = 1 << 20;

// ---------------------------------------------------------------------------
// The program.

/// A call in a function's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `CALL name(SB)`: a direct call to a function of the program.
    Direct(String),
    /// `CALL register`: an indirect call (an `R_CALLIND` relocation).
    Indirect,
}

/// An assembly function, as its TEXT line and body declare it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Func {
    /// The name within package main.
    pub name: String,
    /// The frame size of the TEXT line (`$N`), before the assembler adds
    /// the slots for the saved frame pointer or link register.
    pub frame: u64,
    /// Whether the TEXT line has the NOSPLIT flag.
    pub nosplit: bool,
    /// The calls of the body, in order.
    pub calls: Vec<Call>,
}

/// The functions of one program in definition order (the order of the
/// linker's symbol numbers, which breaks ties in its report), and the entry
/// that the dead-code pass starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// The functions, in definition order.
    pub funcs: Vec<Func>,
    /// The function the program starts at.
    pub entry: String,
}

/// What the assembler makes of a function, as far as the linker's check can
/// see it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Assembled {
    /// Whether the object file marks the function NOSPLIT: declared so, or
    /// made so by a leaf rule.
    pub nosplit: bool,
    /// The SP adjustment of the body, which is both the largest value of
    /// the pcsp table and its value at every call.
    pub height: u64,
}

/// Why a build fails before the linker's check can run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The assembler refuses a frame (its `Diag`).
    Assembler {
        /// The function.
        func: String,
        /// The assembler's message.
        message: String,
    },
    /// Two definitions of one name (the Go declarations collide).
    Redefined(String),
    /// A reachable call names no function of the program (or the entry is
    /// missing).
    Undefined {
        /// The missing name.
        name: String,
        /// The function that calls it, or `None` for the entry.
        caller: Option<String>,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Assembler { func, message } => write!(f, "asm: {func}: {message}"),
            BuildError::Redefined(n) => write!(f, "{n} redeclared"),
            BuildError::Undefined { name, caller } => match caller {
                Some(c) => write!(f, "{c} calls {name}, which is not defined"),
                None => write!(f, "the entry {name} is not defined"),
            },
        }
    }
}

/// The outcome of building a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The build succeeds.
    Accept,
    /// The linker's nosplit check fails, with its report.
    Reject(Report),
    /// The build fails before the check.
    BuildFails(BuildError),
}

impl Verdict {
    /// Whether the build fails, for whatever reason.
    pub fn rejects(&self) -> bool {
        !matches!(self, Verdict::Accept)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accept => write!(f, "accept"),
            Verdict::Reject(r) => write!(f, "reject: {r}"),
            Verdict::BuildFails(e) => write!(f, "reject: build fails: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// The assembler.

/// `FixedFrameSize` of a link-register machine: the bytes at the bottom of
/// every frame that hold the saved link register (cmd/internal/sys/arch.go).
fn fixed_frame_size(goarch: Goarch) -> u64 {
    match goarch {
        Goarch::Ppc64 | Goarch::Ppc64le => 32,
        Goarch::Arm | Goarch::Mips | Goarch::Mipsle => 4,
        _ => 8,
    }
}

/// The frame the assembler gives a function, and whether it is NOSPLIT.
///
/// Go: `preprocess` in cmd/internal/obj/x86/obj6.go, arm64/obj7.go,
/// arm/obj5.go, mips/obj0.go, loong64/obj.go, ppc64/obj9.go, riscv/obj.go and
/// s390x/objz.go. A function is a leaf when its body has no CALL.
///
/// Precondition: `f.frame <= MAX_FRAMESIZE`. Returns the assembler's
/// complaint as `Err` when it refuses the frame.
pub fn preprocess(profile: &Profile, f: &Func) -> Result<Assembled, String> {
    let leaf = f.calls.is_empty();
    match profile.goarch {
        Goarch::Amd64 | Goarch::I386 => preprocess_x86(profile, f, leaf),
        Goarch::Arm64 => preprocess_arm64(f, leaf),
        _ => preprocess_lr(profile.goarch, f, leaf),
    }
}

/// Go: `preprocess` (cmd/internal/obj/x86/obj6.go).
///
/// On amd64 the frame gains an 8-byte slot for the saved BP unless the
/// function is a leaf with no locals (Go 1.19 also leaves it out of a NOSPLIT
/// function with no locals); a splittable amd64 function whose frame,
/// BP slot included, is under StackSmall and which calls nothing is made
/// NOSPLIT. 386 has neither rule. The frame must be a multiple of the
/// register size.
fn preprocess_x86(profile: &Profile, f: &Func, leaf: bool) -> Result<Assembled, String> {
    let amd64 = profile.goarch == Goarch::Amd64;
    let mut autoffset = f.frame;
    let frameless_nosplit = profile.release == Release::Go1_19 && f.frame == 0 && f.nosplit;
    if amd64 && !(f.frame == 0 && leaf) && !frameless_nosplit {
        autoffset += 8;
    }
    let mut nosplit = f.nosplit;
    if amd64 && autoffset < STACK_SMALL && !nosplit && leaf {
        nosplit = true;
    }
    let reg_size = profile.goarch.ptr_size();
    // Go 1.19 checks the alignment only of a non-empty frame; 0 is aligned.
    if autoffset % reg_size != 0 {
        return Err(format!("unaligned stack size {autoffset}"));
    }
    Ok(Assembled {
        nosplit,
        height: autoffset,
    })
}

/// Go: `preprocess` (cmd/internal/obj/arm64/obj7.go).
///
/// A leaf with no locals has no frame. Any other frame gains 8 bytes for the
/// saved LR and is rounded to 16 bytes, keeping 8 more for the frame pointer
/// below it: the locals plus 16 when they are a multiple of 16, plus 24 when
/// they are 8 more than one. Other sizes are refused. A leaf whose frame is
/// then under StackSmall is made NOSPLIT.
fn preprocess_arm64(f: &Func, leaf: bool) -> Result<Assembled, String> {
    if leaf && f.frame == 0 {
        return Ok(Assembled {
            nosplit: f.nosplit,
            height: 0,
        });
    }
    let mut autosize = f.frame + 8;
    if autosize % 16 == 8 {
        autosize += 8;
    } else if autosize % 16 == 0 {
        autosize += 16;
    } else {
        return Err(format!(
            "unaligned frame size {} - must be 16 aligned",
            f.frame
        ));
    }
    Ok(Assembled {
        nosplit: f.nosplit || (leaf && autosize < STACK_SMALL),
        height: autosize,
    })
}

/// Go: `preprocess` in cmd/internal/obj/arm/obj5.go, mips/obj0.go,
/// loong64/obj.go, ppc64/obj9.go, riscv/obj.go and s390x/objz.go.
///
/// A leaf with no locals has no frame; any other frame gains
/// `FixedFrameSize` bytes for the saved link register. mips64 and loong64
/// round a frame that is 4 more than a multiple of 8 up by 4. ppc64 and
/// s390x refuse frames that are not a multiple of 8, arm those that are not a
/// multiple of 4, and those two make a leaf whose frame is under StackSmall
/// NOSPLIT. (riscv64 leaves the check out of a leaf without a frame without
/// marking it NOSPLIT; with a call size of 0 the two have the same height.)
fn preprocess_lr(goarch: Goarch, f: &Func, leaf: bool) -> Result<Assembled, String> {
    let multiple = match goarch {
        Goarch::Ppc64 | Goarch::Ppc64le | Goarch::S390x => 8,
        Goarch::Arm => 4,
        _ => 1,
    };
    if f.frame % multiple != 0 {
        return Err(if multiple == 4 {
            format!("frame size {} not 0 or a positive multiple of 4", f.frame)
        } else {
            format!("frame size {} not a multiple of 8", f.frame)
        });
    }
    let mut autosize = if leaf && f.frame == 0 {
        0
    } else {
        f.frame + fixed_frame_size(goarch)
    };
    let rounds = matches!(goarch, Goarch::Mips64 | Goarch::Mips64le | Goarch::Loong64);
    if rounds && autosize % 8 == 4 {
        autosize += 4;
    }
    let small_leaf_rule = matches!(goarch, Goarch::Ppc64 | Goarch::Ppc64le | Goarch::S390x);
    Ok(Assembled {
        nosplit: f.nosplit || (small_leaf_rule && leaf && autosize < STACK_SMALL),
        height: autosize,
    })
}

/// Whether the assembler marks an indirect call with an `R_CALLIND`
/// relocation, which is how the linker sees it. x86 (asm6.go), arm
/// (asm5.go), arm64 (asm7.go), mips (asm0.go) and loong64 (asm.go) do;
/// ppc64, riscv64 and s390x do not, so there an indirect call makes the
/// function a non-leaf for the assembler but is no edge for the linker (with
/// a call size of 0 the height is the same either way).
pub fn marks_indirect_calls(goarch: Goarch) -> bool {
    !matches!(
        goarch,
        Goarch::Ppc64 | Goarch::Ppc64le | Goarch::Riscv64 | Goarch::S390x
    )
}

// ---------------------------------------------------------------------------
// The linker.

/// A symbol as the stack check sees it. The derived order is the order of
/// the linker's symbol numbers as far as it matters: the leaf pseudo-target
/// (Go's symbol 0) first, the program's functions in definition order (the
/// main package is loaded before the runtime), then `runtime.morestack`, and
/// the indirect-call pseudo-target last (Go's `^0`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Sym {
    /// The target of a local stack growth that is not a call.
    Leaf,
    /// A function of the program, by definition index.
    Func(usize),
    /// `runtime.morestack`.
    Morestack,
    /// The target of every indirect call (`stackCheckIndirect`).
    Indirect,
}

/// One out-edge of a function: the stack grows by `growth` bytes and, unless
/// the target is [`Sym::Leaf`], calls `target`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    /// Bytes pushed up to and including the call.
    pub growth: u64,
    /// The callee, or [`Sym::Leaf`].
    pub target: Sym,
}

/// The state of one run of the analysis (Go's `stackCheck`).
#[derive(Clone, Debug)]
pub struct StackCheck<'a> {
    program: &'a Program,
    assembled: Vec<Assembled>,
    /// For each function, its calls resolved to symbols (`None`: a name the
    /// program does not define, which only an unreachable function can
    /// hold).
    callees: Vec<Vec<Option<Sym>>>,
    call_size: u64,
    /// Computed heights, with [`STACK_CHECK_CYCLE`] as the in-progress mark.
    height: BTreeMap<Sym, u64>,
    /// The recorded out-edges, when recording.
    graph: Option<BTreeMap<Sym, Vec<Edge>>>,
}

/// A function whose edges are being walked by [`StackCheck::check`].
struct Walk {
    sym: Sym,
    /// The edges still to follow, in order.
    todo: std::vec::IntoIter<Edge>,
    /// The edges followed so far, for the graph.
    edges: Vec<Edge>,
    /// The growth of the edge whose target is being computed.
    pending: u64,
    max_height: u64,
    /// The function's own largest SP adjustment (nosplit functions only).
    local: Option<u64>,
}

impl<'a> StackCheck<'a> {
    /// Go: `newStackCheck` (cmd/link/internal/ld/stackcheck.go). The call
    /// size is the register size on machines without a link register, else 0;
    /// `graph` says whether to record the out-edges for a report.
    ///
    /// Fails on a frame the spec cannot represent; the caller has already
    /// checked that the assembler accepts every frame.
    pub fn new(profile: &Profile, program: &'a Program, graph: bool) -> Result<Self, Throw> {
        let index = name_index(program);
        let mut assembled = Vec::with_capacity(program.funcs.len());
        let mut callees = Vec::with_capacity(program.funcs.len());
        for f in &program.funcs {
            if f.frame > MAX_FRAMESIZE {
                return Err(Invalid::FrameTooLarge(f.frame).into());
            }
            // An assembler refusal cannot reach here through Program::check;
            // as a plain frame it still has the height the rules give.
            let a = preprocess(profile, f).unwrap_or(Assembled {
                nosplit: f.nosplit,
                height: f.frame,
            });
            assembled.push(a);
            callees.push(
                f.calls
                    .iter()
                    .map(|c| match c {
                        Call::Indirect if marks_indirect_calls(profile.goarch) => {
                            Some(Sym::Indirect)
                        }
                        Call::Indirect => None,
                        Call::Direct(n) => index.get(n.as_str()).map(|&i| Sym::Func(i)),
                    })
                    .collect(),
            );
        }
        Ok(StackCheck {
            program,
            assembled,
            callees,
            call_size: profile.call_size(),
            height: BTreeMap::new(),
            graph: graph.then(BTreeMap::new),
        })
    }

    /// Go: `(*stackCheck).symName`: `main.f<0>` for a function (every one is
    /// ABI0 assembly), `runtime.morestack<0>`, `indirect`, `leaf`.
    pub fn sym_name(&self, sym: Sym) -> String {
        match sym {
            Sym::Leaf => "leaf".to_string(),
            Sym::Indirect => "indirect".to_string(),
            Sym::Morestack => "runtime.morestack<0>".to_string(),
            Sym::Func(i) => format!("main.{}<0>", self.func_name(i)),
        }
    }

    fn func_name(&self, i: usize) -> &str {
        self.program.funcs.get(i).map_or("?", |f| f.name.as_str())
    }

    /// The short name used in [`Chain`]s: the function's own name,
    /// `runtime.morestack`, `indirect`, `leaf`.
    fn short_name(&self, sym: Sym) -> String {
        match sym {
            Sym::Func(i) => self.func_name(i).to_string(),
            Sym::Morestack => "runtime.morestack".to_string(),
            other => self.sym_name(other),
        }
    }

    /// Go: `(*stackCheck).check`. The height of `sym`, computing and
    /// remembering it (and, when recording, its edges) for `sym` and every
    /// function below it. A function met again while its own height is being
    /// computed yields [`STACK_CHECK_CYCLE`]; every height is capped there.
    ///
    /// Go recurses; this walks with an explicit stack, visiting the edges in
    /// the same order, so that deep call graphs cannot exhaust the Rust stack.
    pub fn check(&mut self, sym: Sym) -> u64 {
        if let Some(&h) = self.height.get(&sym) {
            return h;
        }
        let mut stack = vec![self.enter(sym)];
        // The height returned by the callee that has just finished.
        let mut returned: Option<u64> = None;
        loop {
            let Some(top) = stack.last_mut() else {
                return 0;
            };
            if let Some(h) = returned.take() {
                top.max_height = top.max_height.max(top.pending.saturating_add(h));
            }
            if let Some(edge) = top.todo.next() {
                // addEdge: record, then add the target's height.
                top.edges.push(edge);
                if edge.target == Sym::Leaf {
                    top.max_height = top.max_height.max(edge.growth);
                    continue;
                }
                if let Some(&h) = self.height.get(&edge.target) {
                    top.max_height = top.max_height.max(edge.growth.saturating_add(h));
                    continue;
                }
                top.pending = edge.growth;
                let next = self.enter(edge.target);
                stack.push(next);
                continue;
            }
            // All calls walked: the local growth of a nosplit function.
            let Some(mut done) = stack.pop() else {
                return 0;
            };
            if let Some(local) = done.local {
                if local > done.max_height {
                    done.edges.push(Edge {
                        growth: local,
                        target: Sym::Leaf,
                    });
                    done.max_height = local;
                }
            }
            let h = done.max_height.min(STACK_CHECK_CYCLE);
            self.height.insert(done.sym, h);
            if let Some(g) = self.graph.as_mut() {
                g.insert(done.sym, done.edges);
            }
            if stack.is_empty() {
                return h;
            }
            returned = Some(h);
        }
    }

    /// Marks `sym` in progress and lists the edges its height is made of.
    ///
    /// Go: `(*stackCheck).computeHeight`: morestack has no edges; an indirect
    /// call has the single edge of a call to morestack, whose height it does
    /// not compute; a splittable function has that edge too, followed; a
    /// nosplit function has one edge per call, growing by its SP adjustment
    /// plus the call size, and afterwards its own growth if that is larger
    /// than every call's.
    fn enter(&mut self, sym: Sym) -> Walk {
        self.height.insert(sym, STACK_CHECK_CYCLE);
        let mut walk = Walk {
            sym,
            todo: Vec::new().into_iter(),
            edges: Vec::new(),
            pending: 0,
            max_height: 0,
            local: None,
        };
        let to_morestack = Edge {
            growth: self.call_size,
            target: Sym::Morestack,
        };
        match sym {
            Sym::Leaf | Sym::Morestack => {}
            Sym::Indirect => {
                walk.edges.push(to_morestack);
                walk.max_height = self.call_size;
            }
            Sym::Func(i) => {
                let Some(a) = self.assembled.get(i).copied() else {
                    return walk;
                };
                if !a.nosplit {
                    walk.todo = vec![to_morestack].into_iter();
                } else {
                    let growth = a.height.saturating_add(self.call_size);
                    let edges: Vec<Edge> = self.callees[i]
                        .iter()
                        .flatten()
                        .map(|&target| Edge { growth, target })
                        .collect();
                    walk.todo = edges.into_iter();
                    walk.local = Some(a.height);
                }
            }
        }
        walk
    }

    /// The recorded out-edges of `sym`, as the linker's `-debugnosplit`
    /// flag prints them (empty when not recording or not yet computed).
    pub fn edges(&self, sym: Sym) -> &[Edge] {
        self.graph
            .as_ref()
            .and_then(|g| g.get(&sym))
            .map_or(&[], |v| v.as_slice())
    }

    /// The lines `-ldflags=-debugnosplit` prints for the program's
    /// functions that have been computed, in definition order: `nosplit:
    /// main.f<0> +GROWTH -> TARGET`, or without `-> TARGET` for a local
    /// growth. Needs a recording check.
    pub fn debug_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for i in 0..self.program.funcs.len() {
            for e in self.edges(Sym::Func(i)) {
                let mut line = format!("nosplit: {} +{}", self.sym_name(Sym::Func(i)), e.growth);
                if e.target != Sym::Leaf {
                    line += &format!(" -> {}", self.sym_name(e.target));
                }
                out.push(line);
            }
        }
        out
    }

    /// Go: `(*stackCheck).findRoots`. The functions of the recorded graph
    /// that no other recorded function calls; for a cycle that nothing
    /// outside calls, its lowest-numbered member found on the walk. Sorted
    /// by height, highest first, then by symbol number.
    ///
    /// Go walks its node set in map order, which can change which member of
    /// a cycle of three or more functions becomes the root; this walks in
    /// symbol order. The second result says whether such a cycle was met.
    pub fn find_roots(&self) -> (Vec<Sym>, bool) {
        let Some(graph) = self.graph.as_ref() else {
            return (Vec::new(), false);
        };
        let mut nodes: BTreeSet<Sym> = graph.keys().copied().collect();
        let mut unrooted_cycle = false;
        let keys: Vec<Sym> = graph.keys().copied().collect();
        for k in keys {
            if !nodes.contains(&k) {
                continue;
            }
            for out in graph.get(&k).map_or(&[][..], |v| v.as_slice()) {
                if let Some(lowest) = walk_delete(graph, &mut nodes, k, out.target) {
                    nodes.insert(lowest);
                    unrooted_cycle = true;
                }
            }
        }
        let mut roots: Vec<Sym> = nodes.into_iter().collect();
        roots.sort_by(|a, b| {
            let ha = self.height.get(a).copied().unwrap_or(0);
            let hb = self.height.get(b).copied().unwrap_or(0);
            hb.cmp(&ha).then(a.cmp(b))
        });
        (roots, unrooted_cycle)
    }

    /// Whether the recorded graph has a cycle, and whether every recorded
    /// symbol is called by another (see [`Report::cyclic`] and
    /// [`Report::may_report_nothing`]). Kahn's algorithm: peel off the
    /// symbols no remaining symbol calls; a cycle is what is left.
    pub fn graph_shape(&self) -> (bool, bool) {
        let Some(graph) = self.graph.as_ref() else {
            return (false, false);
        };
        let mut indegree: BTreeMap<Sym, usize> = graph.keys().map(|&k| (k, 0)).collect();
        for edges in graph.values() {
            for e in edges {
                if let Some(d) = indegree.get_mut(&e.target) {
                    *d += 1;
                }
            }
        }
        let mut free: Vec<Sym> = indegree
            .iter()
            .filter(|(_, &d)| d == 0)
            .map(|(&k, _)| k)
            .collect();
        // A lone function calling itself is always reported: findRoots
        // deletes it and puts it back, and no other walk can delete it.
        let all_called = free.is_empty() && graph.len() > 1;
        let mut peeled = 0;
        while let Some(k) = free.pop() {
            peeled += 1;
            for e in graph.get(&k).map_or(&[][..], |v| v.as_slice()) {
                if let Some(d) = indegree.get_mut(&e.target) {
                    *d -= 1;
                    if *d == 0 {
                        free.push(e.target);
                    }
                }
            }
        }
        (peeled < graph.len(), all_called)
    }

    /// Go: `(*stackCheck).report`. Walks every path from `root`, and for
    /// each one that ends over the limit (its remaining depth negative) or
    /// comes back to a function already on the path, records the chain and
    /// writes it the way the linker prints it: the root, then one indented
    /// line per edge not yet printed for an earlier chain of this root
    /// (`grows N bytes[, calls F]`), then `N bytes over limit` or `infinite
    /// cycle`.
    ///
    /// A target that is absent from the graph counts as the end of a cycle,
    /// as in Go: so a chain through an indirect call, whose edge to
    /// morestack is recorded without morestack itself, ends in "infinite
    /// cycle" unless some splittable function of the failed set put
    /// morestack in the graph.
    fn report(&mut self, root: Sym, limit: u64, out: &mut ReportBuilder) {
        struct Visit {
            sym: Sym,
            depth: i64,
            edges: Vec<Edge>,
            next: usize,
            is_cycle: bool,
        }
        let Some(graph) = self.graph.as_mut() else {
            return;
        };
        // chain[i]: the edge into the i-th symbol and whether it is printed.
        let mut chain: Vec<(Edge, bool)> = vec![(
            Edge {
                growth: 0,
                target: root,
            },
            false,
        )];
        let enter = |graph: &mut BTreeMap<Sym, Vec<Edge>>, sym: Sym, depth: i64| {
            let found = graph.remove(&sym);
            Visit {
                sym,
                depth,
                is_cycle: found.is_none() && sym != Sym::Leaf,
                edges: found.unwrap_or_default(),
                next: 0,
            }
        };
        let mut stack = vec![enter(graph, root, clamp_i64(limit))];
        while let Some(top) = stack.last_mut() {
            out.steps += 1;
            if out.steps > REPORT_STEP_BUDGET {
                out.truncated = true;
                // Put back what is on the path and stop.
                while let Some(v) = stack.pop() {
                    graph.insert(v.sym, v.edges);
                }
                return;
            }
            if let Some(&edge) = top.edges.get(top.next) {
                top.next += 1;
                let depth = top.depth.saturating_sub(clamp_i64(edge.growth));
                chain.push((edge, false));
                let v = enter(graph, edge.target, depth);
                stack.push(v);
                continue;
            }
            let Some(v) = stack.pop() else { break };
            if v.edges.is_empty() && (v.depth < 0 || v.is_cycle) {
                out.emit(
                    self_names(&self.program.funcs),
                    &mut chain,
                    v.is_cycle,
                    v.depth,
                );
            }
            // Go puts the edges back under the symbol, even one that was
            // absent (which from then on is present with no edges).
            graph.insert(v.sym, v.edges);
            chain.pop();
        }
    }
}

/// Saturating conversion for depths, which Go keeps in an `int`.
fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The walk of `findRoots`: deletes `sym` and everything below it from
/// `nodes`; if the walk comes back to `origin`, returns the lowest-numbered
/// symbol met on the way back from it (Go's `(cycle, lowest)`).
///
/// Iterative, visiting children in the same order as Go's recursion.
fn walk_delete(
    graph: &BTreeMap<Sym, Vec<Edge>>,
    nodes: &mut BTreeSet<Sym>,
    origin: Sym,
    sym: Sym,
) -> Option<Sym> {
    struct Frame<'g> {
        sym: Sym,
        children: &'g [Edge],
        next: usize,
        lowest: Option<Sym>,
    }
    if !nodes.remove(&sym) {
        return None;
    }
    if sym == origin {
        return Some(sym);
    }
    let children = |s: Sym| graph.get(&s).map_or(&[][..], |v| v.as_slice());
    let mut stack = vec![Frame {
        sym,
        children: children(sym),
        next: 0,
        lowest: None,
    }];
    // The result of the frame that has just finished.
    let mut returned: Option<Option<Sym>> = None;
    loop {
        let top = stack.last_mut()?;
        if let Some(Some(l)) = returned.take() {
            // A cycle below: this symbol joins the candidates.
            let lowest = top.lowest.unwrap_or(top.sym);
            top.lowest = Some(lowest.min(l));
        }
        if let Some(out) = top.children.get(top.next) {
            top.next += 1;
            let t = out.target;
            if !nodes.remove(&t) {
                continue;
            }
            if t == origin {
                returned = Some(Some(t));
                continue;
            }
            stack.push(Frame {
                sym: t,
                children: children(t),
                next: 0,
                lowest: None,
            });
            continue;
        }
        let done = stack.pop()?;
        if stack.is_empty() {
            return done.lowest;
        }
        returned = Some(done.lowest);
    }
}

fn self_names(funcs: &[Func]) -> Vec<&str> {
    funcs.iter().map(|f| f.name.as_str()).collect()
}

fn name_index(program: &Program) -> BTreeMap<&str, usize> {
    let mut index = BTreeMap::new();
    for (i, f) in program.funcs.iter().enumerate() {
        index.entry(f.name.as_str()).or_insert(i);
    }
    index
}

// ---------------------------------------------------------------------------
// The report.

/// One step of an over-limit chain: `func` grows the stack by `growth`
/// bytes, reaching `total`, and calls `callee` (or, for `None`, that is its
/// own local growth).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainStep {
    /// The function that grows the stack.
    pub func: String,
    /// Bytes it adds on this edge.
    pub growth: u64,
    /// The running total from the root.
    pub total: u64,
    /// What it calls, if this edge is a call.
    pub callee: Option<String>,
}

/// How a chain ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainEnd {
    /// The chain is this many bytes over the limit.
    Over(u64),
    /// The chain comes back to a function already on it (or, as the linker
    /// counts it, reaches a target outside the recorded graph).
    Cycle,
}

/// One over-limit chain from a root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// The root function.
    pub root: String,
    /// The edges from the root, in order.
    pub steps: Vec<ChainStep>,
    /// How it ends.
    pub end: ChainEnd,
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps.is_empty() {
            write!(f, "{}", self.root)?;
        }
        for (i, s) in self.steps.iter().enumerate() {
            if i > 0 {
                write!(f, " -> ")?;
            }
            write!(f, "{} +{} ({})", s.func, s.growth, s.total)?;
        }
        if let Some(c) = self.steps.last().and_then(|s| s.callee.as_ref()) {
            write!(f, " -> {c}")?;
        }
        match self.end {
            ChainEnd::Over(n) => write!(f, ": {n} bytes over limit"),
            ChainEnd::Cycle => write!(f, ": infinite cycle"),
        }
    }
}

/// What the linker reports when the check fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The limit every chain was checked against.
    pub limit: u64,
    /// The over-limit chains, root by root in the linker's order.
    pub chains: Vec<Chain>,
    /// The linker's output, byte for byte: for each root, the error line
    /// `main.f: nosplit stack over N byte limit` (on stderr) and the chains
    /// (on stdout), in the order it writes them.
    pub text: String,
    /// Whether the recorded graph has a cycle. Go finds the roots by
    /// walking a map in its random order, deleting what each walk reaches
    /// and putting back one member of each cycle it comes round; with a
    /// cycle, which members survive as roots (and so the text) can change
    /// from one run of the linker to the next. Without one the roots are
    /// exactly the functions no other recorded function calls, and the
    /// text is fixed.
    pub cyclic: bool,
    /// Whether every recorded function is called by another recorded one
    /// (all the failures lie on cycles that nothing outside them calls).
    /// Then a later walk can delete the member put back, Go may find no
    /// root, report nothing and link the program although a chain is over
    /// the limit: with `start 768 nosplit call f1 call start call f1; f1 0
    /// nosplit call start call f1 call start` on amd64, Go 1.23's `go build`
    /// succeeded in 9 of 12 runs. The spec's verdict stays a rejection (the
    /// heights are over the limit); this flag says Go may disagree. It is
    /// conservative, except that a lone self-recursive function (always
    /// reported: `findRoots` puts it back and nothing else can delete it)
    /// does not set it.
    pub may_report_nothing: bool,
    /// Whether the walk stopped at [`REPORT_STEP_BUDGET`] or the text at
    /// [`REPORT_TEXT_LIMIT`] (the chains found so far are kept).
    pub truncated: bool,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.chains.first() {
            Some(c) => write!(f, "{c} (limit {})", self.limit)?,
            None => write!(f, "nosplit stack over {} byte limit", self.limit)?,
        }
        match self.chains.len() {
            0 | 1 => {}
            2 => write!(f, "; 1 more chain")?,
            n => write!(f, "; {} more chains", n - 1)?,
        }
        Ok(())
    }
}

/// Collects the chains and text of a report.
#[derive(Default)]
struct ReportBuilder {
    chains: Vec<Chain>,
    text: String,
    steps: usize,
    truncated: bool,
    /// Short names of the symbols, for chains.
    root_name: String,
}

impl ReportBuilder {
    /// The printing half of Go's `report`.
    fn emit(&mut self, names: Vec<&str>, chain: &mut [(Edge, bool)], cycle: bool, depth: i64) {
        let short = |s: Sym| match s {
            Sym::Func(i) => names.get(i).copied().unwrap_or("?").to_string(),
            Sym::Morestack => "runtime.morestack".to_string(),
            Sym::Indirect => "indirect".to_string(),
            Sym::Leaf => "leaf".to_string(),
        };
        let long = |s: Sym| match s {
            Sym::Func(i) => format!("main.{}<0>", names.get(i).copied().unwrap_or("?")),
            Sym::Morestack => "runtime.morestack<0>".to_string(),
            other => short(other),
        };
        let mut indent = String::new();
        let mut steps = Vec::new();
        let mut total: u64 = 0;
        for i in 0..chain.len() {
            let (edge, printed) = chain[i];
            if i > 0 {
                total = total.saturating_add(edge.growth);
                let caller = chain[i - 1].0.target;
                steps.push(ChainStep {
                    func: short(caller),
                    growth: edge.growth,
                    total,
                    callee: (edge.target != Sym::Leaf).then(|| short(edge.target)),
                });
            }
            if printed {
                continue;
            }
            chain[i].1 = true;
            if i == 0 {
                self.text += &format!("{}\n", long(edge.target));
                continue;
            }
            // Go indents each line by its depth, so a deep chain's text
            // grows with the square of its length: stop writing at the cap.
            if self.text.len().saturating_add(4 * i) > REPORT_TEXT_LIMIT {
                self.truncated = true;
            }
            if self.truncated {
                continue;
            }
            indent = "    ".repeat(i);
            self.text += &format!("{indent}grows {} bytes", edge.growth);
            if edge.target != Sym::Leaf {
                self.text += &format!(", calls {}", long(edge.target));
            }
            self.text += "\n";
        }
        let over = depth.unsigned_abs();
        let (end, last) = if cycle {
            (ChainEnd::Cycle, "infinite cycle".to_string())
        } else {
            (ChainEnd::Over(over), format!("{over} bytes over limit"))
        };
        if !self.truncated {
            self.text += &format!("{indent}{last}\n");
        }
        self.chains.push(Chain {
            root: self.root_name.clone(),
            steps,
            end,
        });
    }
}

// ---------------------------------------------------------------------------
// The whole build.

impl Program {
    /// Builds the program for `profile` as the Go toolchain would, and runs
    /// the linker's nosplit check.
    ///
    /// Go: the assembler's `preprocess` for every function, the duplicate
    /// and undefined-symbol checks of the compiler and linker, the dead-code
    /// pass (only functions reachable from the entry are kept), then
    /// `(*Link).doStackCheck` (cmd/link/internal/ld/stackcheck.go): the
    /// height of every kept function against the limit; on failure, a second
    /// pass that records the graph below the failed functions, its roots, and
    /// a report per root.
    ///
    /// `Err` only for input no toolchain can hold: an architecture whose
    /// frame rules are not modeled, a frame over [`MAX_FRAMESIZE`].
    pub fn check(&self, profile: &Profile) -> Result<Verdict, Throw> {
        if !NOSPLIT_ARCHES.contains(&profile.goarch) {
            return Err(Invalid::NosplitNotModeled(profile.goarch.name()).into());
        }
        for f in &self.funcs {
            if f.frame > MAX_FRAMESIZE {
                return Err(Invalid::FrameTooLarge(f.frame).into());
            }
        }
        for f in &self.funcs {
            if let Err(message) = preprocess(profile, f) {
                return Ok(Verdict::BuildFails(BuildError::Assembler {
                    func: f.name.clone(),
                    message,
                }));
            }
        }
        let mut seen = BTreeSet::new();
        for f in &self.funcs {
            if !seen.insert(f.name.as_str()) {
                return Ok(Verdict::BuildFails(BuildError::Redefined(f.name.clone())));
            }
        }
        let reachable = match self.reachable() {
            Ok(r) => r,
            Err(e) => return Ok(Verdict::BuildFails(e)),
        };
        do_stack_check(profile, self, &reachable)
    }

    /// The functions the linker keeps: those reachable from the entry by
    /// direct calls, in definition order (Go: `deadcode`,
    /// cmd/link/internal/ld/deadcode.go, as far as assembly functions go).
    /// A reachable call to a missing name fails the link.
    pub fn reachable(&self) -> Result<Vec<usize>, BuildError> {
        let index = name_index(self);
        let Some(&entry) = index.get(self.entry.as_str()) else {
            return Err(BuildError::Undefined {
                name: self.entry.clone(),
                caller: None,
            });
        };
        let mut marked = vec![false; self.funcs.len()];
        marked[entry] = true;
        let mut work = vec![entry];
        while let Some(i) = work.pop() {
            for c in &self.funcs[i].calls {
                let Call::Direct(name) = c else { continue };
                let Some(&j) = index.get(name.as_str()) else {
                    return Err(BuildError::Undefined {
                        name: name.clone(),
                        caller: Some(self.funcs[i].name.clone()),
                    });
                };
                if !marked[j] {
                    marked[j] = true;
                    work.push(j);
                }
            }
        }
        Ok((0..self.funcs.len()).filter(|&i| marked[i]).collect())
    }
}

/// Go: `(*Link).doStackCheck` (cmd/link/internal/ld/stackcheck.go), over
/// the kept functions `textp`.
///
/// The limit is [`Profile::linker_nosplit_limit`]: `objabi.StackLimit` (Go
/// 1.19) or `objabi.StackNosplit(race)` (Go 1.23), less the call size, less
/// 8 on arm64. A function fails when its height exceeds the limit.
pub fn do_stack_check(
    profile: &Profile,
    program: &Program,
    textp: &[usize],
) -> Result<Verdict, Throw> {
    let limit = profile.linker_nosplit_limit();
    let mut sc = StackCheck::new(profile, program, false)?;
    let failed: Vec<usize> = textp
        .iter()
        .copied()
        .filter(|&i| sc.check(Sym::Func(i)) > limit)
        .collect();
    if failed.is_empty() {
        return Ok(Verdict::Accept);
    }
    let mut sc = StackCheck::new(profile, program, true)?;
    for &i in &failed {
        sc.check(Sym::Func(i));
    }
    let (roots, _) = sc.find_roots();
    let (cyclic, may_report_nothing) = sc.graph_shape();
    let mut out = ReportBuilder::default();
    for root in roots {
        let name = match root {
            Sym::Func(i) => format!("main.{}", sc.func_name(i)),
            other => sc.sym_name(other),
        };
        out.text += &format!("{name}: nosplit stack over {limit} byte limit\n");
        out.root_name = sc.short_name(root);
        sc.report(root, limit, &mut out);
        if out.truncated {
            break;
        }
    }
    Ok(Verdict::Reject(Report {
        limit,
        chains: out.chains,
        text: out.text,
        cyclic,
        may_report_nothing,
        truncated: out.truncated,
    }))
}

// ---------------------------------------------------------------------------
// The stanza format of test/nosplit.go.

/// One function line of a stanza.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StanzaFunc {
    /// The function's name.
    pub name: String,
    /// The frame size as written (before the harness's adjustment).
    pub size: u64,
    /// Whether the line says `nosplit`.
    pub nosplit: bool,
    /// `call f` and `callind`, in order.
    pub calls: Vec<Call>,
    /// The 1-based line of the file it is on.
    pub line: usize,
}

/// The REJECT clause of a stanza.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// No REJECT: the build must succeed everywhere.
    Accept,
    /// `REJECT` alone: the build must fail everywhere.
    RejectAll,
    /// `REJECT a b ...`: the build must fail on the named architectures
    /// (the words after REJECT, up to the end of the stanza) and succeed
    /// elsewhere.
    RejectOn(Vec<String>),
}

/// One stanza of the `tests` table of Go's `test/nosplit.go`.
///
/// That test's conventions (its `main`), which [`read_stanzas`] and
/// [`Stanza::check`] reproduce:
/// - lines starting with `#` are comments; tabs count as spaces;
/// - a line beginning `start ` begins a new stanza; within a stanza `;`
///   separates lines as a newline does;
/// - each function line is `name size [nosplit] body`, the body made of
///   `call f` (a direct call) and `callind` (an indirect call through a
///   register);
/// - the stanza ends with an optional REJECT clause, at the start of a line
///   or after a `;`: with no words it expects failure everywhere, otherwise
///   on the architectures it names;
/// - the whole stanza is skipped on an architecture whose pointer size is 8
///   when any frame size is 4 more than a multiple of 8;
/// - the first nosplit function's frame grows by the difference between
///   today's nosplit budget and the 128 bytes the table was written for
///   ([`harness_adjustment`]), so that the table's sizes keep their meaning;
/// - the program enters the stanza from `main.main` through `main0`, a
///   splittable assembly function with an empty frame that calls `start`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stanza {
    /// The 1-based line of the file where the stanza begins.
    pub line: usize,
    /// The functions, in order.
    pub funcs: Vec<StanzaFunc>,
    /// The REJECT clause.
    pub expect: Expect,
    /// Whether the text before the REJECT clause is blank: the harness then
    /// builds nothing on the architectures the clause does not name.
    pub empty: bool,
}

/// The result of running a stanza on one architecture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StanzaOutcome {
    /// The harness skips the stanza there: this function's frame size is
    /// 4 more than a multiple of the pointer size.
    Skipped {
        /// The function.
        func: String,
        /// Its frame size as written.
        size: u64,
    },
    /// The stanza has no text before its REJECT clause, which does not name
    /// this architecture: the harness does not build it.
    NothingToBuild,
    /// The build's outcome.
    Ran(Verdict),
}

/// The pointer size the harness assumes for `goarch` (its switch on GOARCH:
/// 8 for amd64, arm64, loong64, mips64, ppc64, riscv64, s390x; 4 for the
/// rest, 386 being the default).
pub fn harness_ptr_size(goarch: Goarch) -> u64 {
    match goarch {
        Goarch::Amd64
        | Goarch::Arm64
        | Goarch::Loong64
        | Goarch::Mips64
        | Goarch::Mips64le
        | Goarch::Ppc64
        | Goarch::Ppc64le
        | Goarch::Riscv64
        | Goarch::S390x => 8,
        _ => 4,
    }
}

/// What the harness adds to the first nosplit frame of a stanza: the table
/// was written for a 128-byte limit. Go 1.19's test adds `(928-128)-128`
/// (its guard less StackSmall, less 128); Go 1.23's adds `800-128`
/// (`abi.StackNosplitBase` less 128). Both are 672. (Go 1.19's test adds
/// 928 more when GO_GCFLAGS holds `-N`; the toolchains modeled are not built
/// that way.)
pub fn harness_adjustment(release: Release) -> u64 {
    match release {
        Release::Go1_19 => (928 - 128) - 128,
        Release::Go1_23 => 800 - 128,
    }
}

/// The name of the harness's entry function.
pub const HARNESS_ENTRY: &str = "main0";

impl Stanza {
    /// Whether the table expects the build to fail on `goarch`.
    pub fn expects_reject(&self, goarch: Goarch) -> bool {
        match &self.expect {
            Expect::Accept => false,
            Expect::RejectAll => true,
            Expect::RejectOn(arches) => arches.iter().any(|a| a == goarch.name()),
        }
    }

    /// The program the harness assembles for `profile`, or the function
    /// that makes it skip the stanza there.
    pub fn program(&self, profile: &Profile) -> Result<Program, StanzaOutcome> {
        let ptr = harness_ptr_size(profile.goarch);
        if let Some(f) = self.funcs.iter().find(|f| f.size % ptr == 4) {
            return Err(StanzaOutcome::Skipped {
                func: f.name.clone(),
                size: f.size,
            });
        }
        let mut funcs = vec![Func {
            name: HARNESS_ENTRY.to_string(),
            frame: 0,
            nosplit: false,
            calls: vec![Call::Direct("start".to_string())],
        }];
        let mut adjusted = false;
        for f in &self.funcs {
            let mut frame = f.size;
            if !adjusted && f.nosplit {
                adjusted = true;
                frame = frame.saturating_add(harness_adjustment(profile.release));
            }
            funcs.push(Func {
                name: f.name.clone(),
                frame,
                nosplit: f.nosplit,
                calls: f.calls.clone(),
            });
        }
        Ok(Program {
            funcs,
            entry: HARNESS_ENTRY.to_string(),
        })
    }

    /// Runs the stanza on `profile` as test/nosplit.go does: skip it, or
    /// build its program and report the verdict. A function named `main`
    /// collides with the harness's own `main.main`.
    pub fn check(&self, profile: &Profile) -> Result<StanzaOutcome, Throw> {
        if self.empty && !self.expects_reject(profile.goarch) {
            return Ok(StanzaOutcome::NothingToBuild);
        }
        let program = match self.program(profile) {
            Ok(p) => p,
            Err(skip) => return Ok(skip),
        };
        if self.funcs.iter().any(|f| f.name == "main") {
            return Ok(StanzaOutcome::Ran(Verdict::BuildFails(
                BuildError::Redefined("main".to_string()),
            )));
        }
        Ok(StanzaOutcome::Ran(program.check(profile)?))
    }
}

/// The text of the stanza table in `file`: the backquoted string after
/// `var tests = ` when the file is Go's test/nosplit.go, else the whole
/// file. The second result is the 1-based line the text starts on.
pub fn stanza_text(file: &str) -> (&str, usize) {
    const MARK: &str = "var tests = `";
    if let Some(at) = file.find(MARK) {
        let start = at + MARK.len();
        let rest = &file[start..];
        let end = rest.find('`').unwrap_or(rest.len());
        let line = 1 + file[..start].matches('\n').count();
        return (&rest[..end], line);
    }
    (file, 1)
}

const WORDS: &str = "call NAME, callind";
const FUNC_LINE: &str = "name size [nosplit] [call NAME | callind]...";

/// Go's keywords, which cannot name a function.
const GO_KEYWORDS: &[&str] = &[
    "break",
    "case",
    "chan",
    "const",
    "continue",
    "default",
    "defer",
    "else",
    "fallthrough",
    "for",
    "func",
    "go",
    "goto",
    "if",
    "import",
    "interface",
    "map",
    "package",
    "range",
    "return",
    "select",
    "struct",
    "switch",
    "type",
    "var",
];

/// Reads every stanza of a file in the format of test/nosplit.go (see
/// [`Stanza`] and [`stanza_text`]), with the harness's exact splitting.
///
/// Go: `main` of test/nosplit.go: comment removal (`commentRE`), the split at
/// each `"\nstart "`, `rejectRE` (the first `\nREJECT` or `; REJECT` after
/// the stanza's first byte ends the functions), `lineRE` (found anywhere in
/// a line, text before it ignored), `callRE` and `callindRE`. A stanza with
/// no function line and no REJECT is skipped, as the harness skips it.
///
/// Stricter than the harness, which would hand such text to the assembler
/// or compiler and report a failed build: a line that is not a function
/// line, body text other than calls, a name Go cannot declare, a size that is
/// not a multiple of 4 or exceeds [`MAX_FRAMESIZE`], a call to `main` or to
/// a function named `callind` are errors naming the line.
pub fn read_stanzas(file: &str) -> Result<Vec<Stanza>, Throw> {
    let (text, first_line) = stanza_text(file);
    // Tabs become spaces and comment lines become empty; lines keep their
    // numbers.
    let lines: Vec<String> = text
        .split('\n')
        .map(|l| {
            let l = l.replace('\t', " ");
            if l.starts_with('#') {
                String::new()
            } else {
                l
            }
        })
        .collect();
    // A stanza begins at every line (but the first) that starts "start ".
    let mut chunks: Vec<(usize, usize)> = Vec::new();
    let mut begin = 0;
    for (i, l) in lines.iter().enumerate().skip(1) {
        if l.starts_with("start ") {
            chunks.push((begin, i));
            begin = i;
        }
    }
    chunks.push((begin, lines.len()));
    let mut stanzas = Vec::new();
    for (from, to) in chunks {
        if let Some(s) = read_stanza(&lines[from..to], first_line + from)? {
            stanzas.push(s);
        }
    }
    Ok(stanzas)
}

/// One chunk of lines, the first on file line `line0`.
fn read_stanza(lines: &[String], line0: usize) -> Result<Option<Stanza>, Throw> {
    // rejectRE: the earliest REJECT after the chunk's first byte.
    let mut func_lines: Vec<(usize, &str)> = Vec::new();
    let mut reject_words: Option<String> = None;
    let mut offset = 0usize;
    for (i, l) in lines.iter().enumerate() {
        let line = line0 + i;
        if reject_words.is_some() {
            if let Some(w) = reject_words.as_mut() {
                w.push('\n');
                w.push_str(l);
            }
            continue;
        }
        // `\nREJECT` at the start of this line, the newline being past the
        // chunk's first byte.
        if offset >= 2 {
            if let Some(rest) = l.strip_prefix("REJECT") {
                reject_words = Some(rest.to_string());
                continue;
            }
        }
        // `; *REJECT` within the line, at a byte past the chunk's first.
        let mut cut = None;
        for (j, _) in l.match_indices(';') {
            if offset + j == 0 {
                continue;
            }
            let after = l[j + 1..].trim_start_matches(' ');
            if let Some(rest) = after.strip_prefix("REJECT") {
                cut = Some((j, rest));
                break;
            }
        }
        match cut {
            Some((j, rest)) => {
                func_lines.push((line, &l[..j]));
                reject_words = Some(rest.to_string());
            }
            None => func_lines.push((line, l.as_str())),
        }
        offset += l.len() + 1;
    }
    let expect = match &reject_words {
        None => Expect::Accept,
        Some(w) if w.trim().is_empty() => Expect::RejectAll,
        Some(w) => Expect::RejectOn(w.split_whitespace().map(str::to_string).collect()),
    };
    let func_lines_blank = func_lines.iter().all(|(_, l)| l.trim().is_empty());
    let mut funcs = Vec::new();
    for (line, l) in func_lines {
        for sub in l.split(';') {
            let sub = sub.trim();
            if sub.is_empty() {
                continue;
            }
            funcs.push(read_func_line(sub, line)?);
        }
    }
    let empty = func_lines_blank;
    if empty && expect == Expect::Accept {
        return Ok(None);
    }
    let start = lines.iter().position(|l| !l.trim().is_empty()).unwrap_or(0);
    Ok(Some(Stanza {
        line: line0 + start,
        funcs,
        expect,
        empty,
    }))
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn stanza_error(line: usize, problem: String, accepted: &'static str) -> Throw {
    Invalid::Stanza {
        line,
        problem,
        accepted,
    }
    .into()
}

/// Go: `lineRE`, `callRE` and `callindRE` of test/nosplit.go, applied to
/// one function line (already trimmed, without `;`).
fn read_func_line(s: &str, line: usize) -> Result<StanzaFunc, Throw> {
    let b = s.as_bytes();
    // lineRE is not anchored: the first word followed by a space and a
    // digit starts the match.
    let mut found = None;
    let mut i = 0;
    while i < b.len() {
        if !is_word(b[i]) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len() && is_word(b[j]) {
            j += 1;
        }
        if j + 1 < b.len() && b[j] == b' ' && b[j + 1].is_ascii_digit() {
            found = Some((i, j));
            break;
        }
        i = j;
    }
    let Some((ns, ne)) = found else {
        return Err(stanza_error(
            line,
            format!("{s:?} is not a function line"),
            FUNC_LINE,
        ));
    };
    let name = &s[ns..ne];
    let mut k = ne + 1;
    while k < b.len() && b[k].is_ascii_digit() {
        k += 1;
    }
    let digits = &s[ne + 1..k];
    let size = digits.parse::<u64>().ok().filter(|&n| n <= MAX_FRAMESIZE);
    let Some(size) = size else {
        return Err(stanza_error(
            line,
            format!("frame size {digits} of {name} is too large"),
            "0 to 2147483647",
        ));
    };
    if size % 4 != 0 {
        return Err(stanza_error(
            line,
            format!("frame size {size} of {name} is not a multiple of 4"),
            "multiples of 4 (the harness skips 4 more than a multiple of 8 on 64-bit machines)",
        ));
    }
    let first = name.as_bytes()[0];
    if first.is_ascii_digit() || name == "_" || name == "init" || GO_KEYWORDS.contains(&name) {
        return Err(stanza_error(
            line,
            format!("{name:?} cannot name a Go function"),
            "identifiers other than Go keywords, init and _",
        ));
    }
    let mut rest = &s[k..];
    let nosplit = match rest.strip_prefix(" nosplit") {
        Some(r) => {
            rest = r;
            true
        }
        None => false,
    };
    let calls = read_body(rest, line)?;
    Ok(StanzaFunc {
        name: name.to_string(),
        size,
        nosplit,
        calls,
        line,
    })
}

/// The body of a function line: `call NAME` and `callind`, separated by
/// spaces.
fn read_body(body: &str, line: usize) -> Result<Vec<Call>, Throw> {
    let b = body.as_bytes();
    let mut calls = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b' ' || b[i] == b'\r' {
            i += 1;
            continue;
        }
        let at_boundary = i == 0 || !is_word(b[i - 1]);
        let rest = &body[i..];
        if at_boundary && rest.starts_with("call ") && rest.len() > 5 && is_word(b[i + 5]) {
            let mut j = i + 5;
            while j < b.len() && is_word(b[j]) {
                j += 1;
            }
            let name = &body[i + 5..j];
            if name == "main" || name == "callind" {
                return Err(stanza_error(
                    line,
                    format!("call {name} is not modeled"),
                    "calls to functions of the stanza (not main, not one named callind)",
                ));
            }
            calls.push(Call::Direct(name.to_string()));
            i = j;
            continue;
        }
        if at_boundary && rest.starts_with("callind") && (rest.len() == 7 || !is_word(b[i + 7])) {
            calls.push(Call::Indirect);
            i += 7;
            continue;
        }
        let word: String = rest.split(' ').next().unwrap_or(rest).to_string();
        return Err(stanza_error(
            line,
            format!("{word:?} in a function body"),
            WORDS,
        ));
    }
    Ok(calls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(arch: &str, release: &str) -> Profile {
        Profile::parse("linux", arch, false, release).unwrap()
    }

    fn verdict(text: &str, arch: &str) -> StanzaOutcome {
        let s = read_stanzas(text).unwrap();
        assert_eq!(s.len(), 1, "{text}");
        s[0].check(&p(arch, "1.23")).unwrap()
    }

    #[test]
    fn table_examples() {
        let rejects = |t: &str, a: &str| match verdict(t, a) {
            StanzaOutcome::Ran(v) => v.rejects(),
            other => panic!("{other:?}"),
        };
        assert!(!rejects("start 96 nosplit", "amd64"));
        assert!(rejects("start 120 nosplit", "amd64"));
        assert!(!rejects("start 112 nosplit", "amd64"));
        assert!(rejects("start 104 nosplit", "arm64"));
        assert!(rejects("start 0 nosplit call start", "arm"));
        assert!(!rejects("start 0 call start", "386"));
        assert!(rejects(
            "start 0 call f1\nf1 0 nosplit call f2\nf2 0 nosplit call f1",
            "amd64"
        ));
        assert!(rejects("start 124 nosplit call f; f 0 nosplit", "386"));
        assert!(!rejects("start 120 nosplit call f; f 0 nosplit", "386"));
    }

    #[test]
    fn unmodeled_arches_and_huge_frames_are_refused() {
        let prog = |frame| Program {
            funcs: vec![Func {
                name: "start".into(),
                frame,
                nosplit: true,
                calls: vec![],
            }],
            entry: "start".into(),
        };
        let wasm = Profile::parse("js", "wasm", false, "1.23").unwrap();
        assert_eq!(
            prog(0).check(&wasm),
            Err(Invalid::NosplitNotModeled("wasm").into())
        );
        assert_eq!(
            prog(MAX_FRAMESIZE + 1).check(&p("amd64", "1.23")),
            Err(Invalid::FrameTooLarge(MAX_FRAMESIZE + 1).into())
        );
        let v = prog(MAX_FRAMESIZE).check(&p("amd64", "1.23")).unwrap();
        assert!(v.rejects());
    }

    #[test]
    fn report_text_matches_the_linker_format() {
        let s = read_stanzas("start 0 call f1\nf1 80 nosplit call f2 call f3\nf2 40 nosplit call f4\nf3 96 nosplit\nf4 40 nosplit\nREJECT").unwrap();
        let StanzaOutcome::Ran(Verdict::Reject(r)) = s[0].check(&p("amd64", "1.23")).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            r.text,
            "main.f1: nosplit stack over 792 byte limit\nmain.f1<0>\n    grows 768 bytes, calls main.f2<0>\n        grows 56 bytes, calls main.f4<0>\n            grows 48 bytes\n            80 bytes over limit\n    grows 768 bytes, calls main.f3<0>\n        grows 104 bytes\n        80 bytes over limit\n"
        );
        assert_eq!(r.chains.len(), 2);
        assert_eq!(r.chains[0].steps.last().unwrap().total, 872);
    }
}
