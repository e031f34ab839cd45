//! The stack-split check that the Go assembler puts in every function
//! prologue.
//!
//! Every Go function that is not NOSPLIT begins by comparing its stack
//! pointer with `g.stackguard0`; if the new frame might reach below the
//! guard, it calls `runtime.morestack` (which calls `newstack`) before
//! anything else. The assembler emits one of three forms, chosen by the frame
//! size alone (`stacksplit` in cmd/internal/obj/x86/obj6.go,
//! cmd/internal/obj/arm64/obj7.go and cmd/internal/obj/riscv/obj.go; the three
//! forms and their comparisons are identical in Go 1.19 and Go 1.23):
//!
//! | form | frame size | morestack is called when (unsigned, pointer-wide) |
//! |---|---|---|
//! | [`SplitForm::Small`] | `<= StackSmall` | `SP <= stackguard0` |
//! | [`SplitForm::Big`] | `<= StackBig` | `SP - (framesize - StackSmall) <= stackguard0`, the subtraction wrapping |
//! | [`SplitForm::Huge`] | `> StackBig` | `SP < framesize - StackSmall` (the subtraction would wrap), or else as Big |
//!
//! The small form lets the frame reach up to StackSmall bytes below the
//! guard; the big form subtracts only the excess over StackSmall. Both rely on
//! the runtime never placing a stack below StackBig (page zero is unmapped),
//! so `SP - framesize` cannot wrap for frames up to StackBig. Beyond that the
//! huge form tests for the wrap explicitly (a carry/borrow on x86 and arm64,
//! an unsigned compare on riscv64).
//!
//! Because every special value the runtime stores in `stackguard0`
//! (`stackPreempt`, `stackFork`, `stackForceMove`) lies in the top 4 KiB of
//! the address space, above every real SP, any of them makes every check
//! fail and sends the goroutine to `morestack`, which is how the runtime
//! preempts a goroutine and forces stack moves.
//!
//! ## What "framesize" means here
//! The frame size is the value the assembler passes to `stacksplit`, which is
//! the whole frame the function pushes below the caller's SP, excluding the
//! return address a CALL pushed:
//! - amd64: the locals, outgoing arguments and the saved BP slot (which the
//!   assembler adds to the compiler's frame); the `$N` of the TEXT line in
//!   `go tool compile -S`;
//! - 386: the locals and outgoing arguments, the TEXT line's `$N`;
//! - arm64: the frame including the saved LR and the frame-pointer slot
//!   rounded to 16 bytes (`c.autosize` in `preprocess`), the TEXT line's `$N`;
//! - riscv64: the TEXT line's `$N` plus the 8-byte saved-LR slot
//!   (`FixedFrameSize`), the `locals=` figure of the `-S` header.
//!
//! ## Functions that get no check
//! Besides NOSPLIT functions, the assembler leaves out the check in small
//! leaf functions (see [`prologue`]): on amd64 when the frame is below
//! StackSmall and the body calls nothing (calls to zero-argument runtime
//! panics and to duffzero/duffcopy are tolerated when the frame is below
//! StackSmall - 8); on arm64 when the frame is below StackSmall and the body
//! has no BL and no DUFFZERO/DUFFCOPY; on riscv64 when the frame is empty.
//! 386 checks every function.

use crate::profile::{Goarch, Profile};
use crate::throw::{Invalid, Throw};
use serde::Serialize;

/// The architectures whose prologue is modeled.
pub const MODELED_ARCHES: &[Goarch] =
    &[Goarch::Amd64, Goarch::I386, Goarch::Arm64, Goarch::Riscv64];

/// The largest frame size the assembler can hold (`stacksplit` takes an
/// `int32`; the compiler itself refuses frames over 1 GB).
pub const MAX_FRAMESIZE: u64 = i32::MAX as u64;

/// Which of the three check sequences a frame size gets.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub enum SplitForm {
    /// `framesize <= StackSmall`: compare SP with the guard.
    Small,
    /// `StackSmall < framesize <= StackBig`: compare `SP - (framesize -
    /// StackSmall)` with the guard.
    Big,
    /// `framesize > StackBig`: first check that `SP - (framesize -
    /// StackSmall)` does not wrap, then compare as Big.
    Huge,
}

impl SplitForm {
    /// Lower-case name, as the CLI prints it.
    pub fn name(self) -> &'static str {
        match self {
            SplitForm::Small => "small",
            SplitForm::Big => "big",
            SplitForm::Huge => "huge",
        }
    }
}

/// What a function's body calls, as the leaf-function rules see it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Calls {
    /// No CALL (BL, JAL) and no DUFFZERO/DUFFCOPY.
    Nothing,
    /// Only zero-argument runtime panics (`isZeroArgRuntimeCall` in
    /// cmd/internal/obj/x86/obj6.go: panicdivide, panicwrap, panicshift,
    /// panicIndex*, panicSlice*) or DUFFZERO/DUFFCOPY.
    OnlyRuntimePanicsOrDuff,
    /// Any other call.
    Others,
}

/// One instruction of a prologue, in the syntax of `go tool compile -S`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Insn {
    /// The mnemonic, e.g. `CMPQ`.
    pub op: &'static str,
    /// The operands with constants filled in; a branch names its target
    /// symbolically (`morestack` or `body`).
    pub args: String,
    /// Whether this is a conditional branch (whose target `-S` prints as a
    /// PC, so comparisons with Go look at the mnemonic only).
    pub branch: bool,
}

/// The split check of one function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Prologue {
    /// The form chosen by the frame size.
    pub form: SplitForm,
    /// `framesize - StackSmall` for Big and Huge (the constant the
    /// instructions subtract), 0 for Small.
    pub offset: u64,
    /// Offset of `g.stackguard0` in the g (two pointers in).
    pub guard_offset: u64,
    /// The instructions, up to and including the last branch to morestack.
    pub insns: Vec<Insn>,
}

/// The form a frame size gets (cmd/internal/obj/*/`stacksplit`).
pub fn split_form(framesize: u64) -> Result<SplitForm, Throw> {
    if framesize > MAX_FRAMESIZE {
        return Err(Invalid::FrameTooLarge(framesize).into());
    }
    let form = if framesize <= crate::profile::STACK_SMALL {
        SplitForm::Small
    } else if framesize <= crate::profile::STACK_BIG {
        SplitForm::Big
    } else {
        SplitForm::Huge
    };
    Ok(form)
}

/// The prologue the assembler emits for a non-NOSPLIT function, or `None`
/// when the leaf rules drop the check (the function is then treated as
/// NOSPLIT by the linker too).
///
/// Go: `preprocess` and `stacksplit` in cmd/internal/obj/x86/obj6.go (amd64,
/// 386), cmd/internal/obj/arm64/obj7.go, cmd/internal/obj/riscv/obj.go.
pub fn prologue(
    profile: &Profile,
    framesize: u64,
    calls: Calls,
) -> Result<Option<Prologue>, Throw> {
    let arch = modeled_arch(profile)?;
    let form = split_form(framesize)?;
    let small = crate::profile::STACK_SMALL;
    let no_check = match arch {
        Goarch::Amd64 => match calls {
            Calls::Nothing => framesize < small,
            Calls::OnlyRuntimePanicsOrDuff => framesize < small - 8,
            Calls::Others => false,
        },
        Goarch::Arm64 => calls == Calls::Nothing && framesize < small,
        Goarch::Riscv64 => framesize == 0,
        _ => false,
    };
    if no_check {
        return Ok(None);
    }
    let offset = framesize.saturating_sub(small);
    let ptr = profile.goarch.ptr_size();
    let guard_offset = 2 * ptr;
    Ok(Some(Prologue {
        form,
        offset,
        guard_offset,
        insns: instructions(arch, form, offset, guard_offset),
    }))
}

fn modeled_arch(profile: &Profile) -> Result<Goarch, Throw> {
    if MODELED_ARCHES.contains(&profile.goarch) {
        Ok(profile.goarch)
    } else {
        Err(Invalid::PrologueNotModeled(profile.goarch.name()).into())
    }
}

fn insn(op: &'static str, args: String) -> Insn {
    Insn {
        op,
        args,
        branch: false,
    }
}

fn branch(op: &'static str, target: &str) -> Insn {
    Insn {
        op,
        args: target.to_string(),
        branch: true,
    }
}

/// The instruction sequence, as `go tool compile -S` prints it.
fn instructions(arch: Goarch, form: SplitForm, k: u64, g: u64) -> Vec<Insn> {
    use SplitForm::*;
    match arch {
        // amd64 keeps g in R14 (ABIInternal) and uses R12 as scratch
        // (REGENTRYTMP0); 386 loads g from TLS into CX and uses AX.
        Goarch::Amd64 | Goarch::I386 => {
            let (q, gm, tmp) = if arch == Goarch::Amd64 {
                ("Q", format!("{g}(R14)"), "R12")
            } else {
                ("L", format!("{g}(CX)"), "AX")
            };
            let op = |base: &'static str| -> &'static str {
                match (base, q) {
                    ("CMP", "Q") => "CMPQ",
                    ("CMP", _) => "CMPL",
                    ("LEA", "Q") => "LEAQ",
                    ("LEA", _) => "LEAL",
                    ("MOV", "Q") => "MOVQ",
                    ("MOV", _) => "MOVL",
                    ("SUB", "Q") => "SUBQ",
                    _ => "SUBL",
                }
            };
            let mut v = Vec::new();
            if arch == Goarch::I386 {
                v.push(insn("MOVL", "TLS, CX".into()));
                v.push(insn("MOVL", "(CX)(TLS*2), CX".into()));
            }
            match form {
                Small => v.push(insn(op("CMP"), format!("SP, {gm}"))),
                Big => {
                    v.push(insn(op("LEA"), format!("-{k}(SP), {tmp}")));
                    v.push(insn(op("CMP"), format!("{tmp}, {gm}")));
                }
                Huge => {
                    v.push(insn(op("MOV"), format!("SP, {tmp}")));
                    v.push(insn(op("SUB"), format!("${k}, {tmp}")));
                    v.push(branch("JCS", "morestack"));
                    v.push(insn(op("CMP"), format!("{tmp}, {gm}")));
                }
            }
            v.push(branch("JLS", "morestack"));
            v
        }
        // arm64 loads the guard into R16 and computes into R17.
        Goarch::Arm64 => {
            let mut v = vec![insn("MOVD", format!("{g}(g), R16"))];
            match form {
                Small => v.push(insn("CMP", "R16, RSP".into())),
                Big => {
                    v.push(insn("SUB", format!("${k}, RSP, R17")));
                    v.push(insn("CMP", "R16, R17".into()));
                }
                Huge => {
                    v.push(insn("SUBS", format!("${k}, RSP, R17")));
                    v.push(branch("BLO", "morestack"));
                    v.push(insn("CMP", "R16, R17".into()));
                }
            }
            v.push(branch("BLS", "morestack"));
            v
        }
        // riscv64 branches to the body when the check passes (BLTU guard,
        // x) and falls through to the morestack call otherwise.
        _ => {
            let mut v = vec![insn("MOV", format!("{g}(g), X6"))];
            match form {
                Small => v.push(branch("BLTU", "X6, SP, body")),
                Big => {
                    v.push(insn("ADDI", format!("$-{k}, SP, X7")));
                    v.push(branch("BLTU", "X6, X7, body"));
                }
                Huge => {
                    v.push(insn("MOV", format!("${k}, X7")));
                    v.push(branch("BLTU", "SP, X7, morestack"));
                    v.push(insn("ADDI", format!("$-{k}, SP, X7")));
                    v.push(branch("BLTU", "X6, X7, body"));
                }
            }
            v
        }
    }
}

/// Whether the check of a function with this frame size, entered with this
/// SP and `stackguard0`, calls morestack.
///
/// The arithmetic is the emitted instructions' own: pointer-wide unsigned
/// values, a wrapping subtraction in the Big form, an explicit wrap test in
/// the Huge form. `sp` and `stackguard0` must fit in the profile's pointer.
/// A function that [`prologue`] exempts from the check never calls
/// morestack; this function answers for the check itself.
///
/// Go: `stacksplit` in cmd/internal/obj/x86/obj6.go and its siblings.
pub fn needs_morestack(
    profile: &Profile,
    framesize: u64,
    sp: u64,
    stackguard0: u64,
) -> Result<bool, Throw> {
    modeled_arch(profile)?;
    let form = split_form(framesize)?;
    let bits = 8 * profile.goarch.ptr_size() as u32;
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    for value in [sp, stackguard0] {
        if value > mask {
            return Err(Invalid::NotAPointer { value, bits }.into());
        }
    }
    let k = framesize.saturating_sub(crate::profile::STACK_SMALL);
    let below_guard = |x: u64| x <= stackguard0;
    Ok(match form {
        SplitForm::Small => below_guard(sp),
        SplitForm::Big => below_guard(sp.wrapping_sub(k) & mask),
        SplitForm::Huge => sp < k || below_guard(sp - k),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Goos, Release};

    fn p(arch: Goarch) -> Profile {
        Profile::new(Goos::Linux, arch, false, Release::Go1_23).unwrap()
    }

    #[test]
    fn forms_at_the_thresholds() {
        assert_eq!(split_form(0).unwrap(), SplitForm::Small);
        assert_eq!(split_form(128).unwrap(), SplitForm::Small);
        assert_eq!(split_form(129).unwrap(), SplitForm::Big);
        assert_eq!(split_form(4096).unwrap(), SplitForm::Big);
        assert_eq!(split_form(4097).unwrap(), SplitForm::Huge);
        assert_eq!(split_form(MAX_FRAMESIZE).unwrap(), SplitForm::Huge);
        assert!(split_form(MAX_FRAMESIZE + 1).is_err());
    }

    #[test]
    fn leaf_rules_per_arch() {
        let none = |a, f, c| prologue(&p(a), f, c).unwrap().is_none();
        assert!(none(Goarch::Amd64, 127, Calls::Nothing));
        assert!(!none(Goarch::Amd64, 128, Calls::Nothing));
        assert!(none(Goarch::Amd64, 119, Calls::OnlyRuntimePanicsOrDuff));
        assert!(!none(Goarch::Amd64, 120, Calls::OnlyRuntimePanicsOrDuff));
        assert!(!none(Goarch::Amd64, 0, Calls::Others));
        assert!(!none(Goarch::I386, 0, Calls::Nothing));
        assert!(none(Goarch::Arm64, 127, Calls::Nothing));
        assert!(!none(Goarch::Arm64, 16, Calls::OnlyRuntimePanicsOrDuff));
        assert!(none(Goarch::Riscv64, 0, Calls::Others));
        assert!(!none(Goarch::Riscv64, 8, Calls::Nothing));
    }

    #[test]
    fn unmodeled_arch_and_wide_values_are_invalid() {
        let mips = Profile::new(Goos::Linux, Goarch::Mips, false, Release::Go1_23).unwrap();
        assert!(matches!(
            needs_morestack(&mips, 0, 0, 0),
            Err(Throw::Invalid(Invalid::PrologueNotModeled("mips")))
        ));
        let x86 = p(Goarch::I386);
        assert_eq!(
            needs_morestack(&x86, 0, 1 << 32, 0),
            Err(Throw::Invalid(Invalid::NotAPointer {
                value: 1 << 32,
                bits: 32
            }))
        );
        assert!(needs_morestack(&x86, 0, u64::from(u32::MAX), 0).is_ok());
    }

    #[test]
    fn wrapping_in_the_big_form_is_pointer_wide() {
        // SP below the subtracted constant wraps to the top of a 32-bit
        // space on 386, and of a 64-bit space on amd64.
        let k = 4096 - 128;
        assert!(!needs_morestack(&p(Goarch::I386), 4096, 100, u64::from(u32::MAX) - k).unwrap());
        assert!(needs_morestack(&p(Goarch::I386), 4096, 100, u64::from(u32::MAX) - 100).unwrap());
        // 100 - k wraps to u64::MAX - (k - 100) + 1.
        let wrapped = u64::MAX - (k - 100) + 1;
        assert!(needs_morestack(&p(Goarch::Amd64), 4096, 100, wrapped).unwrap());
        assert!(!needs_morestack(&p(Goarch::Amd64), 4096, 100, wrapped - 1).unwrap());
    }
}
