//! An emulator for the split-check prologues that `gostack_spec::guard`
//! lists, independent of the spec's own arithmetic.
//!
//! The spec says two things about a prologue: which instructions the Go
//! assembler emits (checked against real Go by the oracle tests), and, in
//! `needs_morestack`, what they compute. This module runs the listed
//! instructions the way the hardware would (registers of the pointer width,
//! x86 carry and zero flags, arm64 NZCV's C and Z, riscv64's unsigned
//! branches) so that the second statement can be checked against the first.
//!
//! Syntax is Go's assembler syntax as `go tool compile -S` prints it:
//! - x86: `CMPQ a, b` sets flags from `a - b`; `JLS` jumps when CF or ZF
//!   (a <= b unsigned); `JCS` jumps when CF; `SUBQ $k, r` sets CF on borrow.
//! - arm64: `CMP m, n` sets flags from `n - m`; C is set when there is no
//!   borrow; `BLS` jumps when C is clear or Z set; `BLO` when C is clear.
//! - riscv64: `BLTU a, b, t` jumps when `a < b` unsigned; falling off the end
//!   of the listing reaches the call to morestack.

use gostack_spec::guard::Insn;
use gostack_spec::Goarch;
use std::collections::HashMap;

/// The machine state the prologue reads.
#[derive(Clone, Debug)]
pub struct Machine {
    arch: Goarch,
    mask: u64,
    regs: HashMap<String, u64>,
    stackguard0: u64,
    guard_offset: u64,
    carry: bool,
    zero: bool,
}

/// Where the prologue went.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It branched or fell through to the morestack call.
    Morestack,
    /// It went on into the function body.
    Body,
}

impl Machine {
    /// A machine about to run a prologue with this SP and `g.stackguard0`.
    pub fn new(arch: Goarch, sp: u64, stackguard0: u64) -> Machine {
        let ptr = arch.ptr_size();
        let mask = if ptr == 8 {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        let sp_name = if arch == Goarch::Arm64 { "RSP" } else { "SP" };
        let mut regs = HashMap::new();
        regs.insert(sp_name.to_string(), sp & mask);
        Machine {
            arch,
            mask,
            regs,
            stackguard0: stackguard0 & mask,
            guard_offset: 2 * ptr,
            carry: false,
            zero: false,
        }
    }

    fn reg(&self, name: &str) -> Result<u64, String> {
        self.regs
            .get(name)
            .copied()
            .ok_or_else(|| format!("read of unset register {name}"))
    }

    /// Reads an operand: `$k`, `$-k`, a register, or the stackguard0 slot
    /// `off(R14)`, `off(CX)`, `off(g)`.
    fn read(&self, operand: &str) -> Result<u64, String> {
        let operand = operand.trim();
        if let Some(imm) = operand.strip_prefix('$') {
            let v: i64 = imm
                .parse()
                .map_err(|_| format!("bad immediate {operand}"))?;
            return Ok((v as u64) & self.mask);
        }
        if let Some((off, base)) = operand.strip_suffix(')').and_then(|s| s.split_once('(')) {
            let off: u64 = off
                .parse()
                .map_err(|_| format!("bad offset in {operand}"))?;
            let g_reg = match self.arch {
                Goarch::Amd64 => "R14",
                Goarch::I386 => "CX",
                _ => "g",
            };
            if base != g_reg {
                return Err(format!(
                    "memory operand {operand} is not based on the g register {g_reg}"
                ));
            }
            if self.arch == Goarch::I386 && !self.regs.contains_key("CX") {
                return Err("CX read before g was loaded from TLS".into());
            }
            if off != self.guard_offset {
                return Err(format!(
                    "{operand} is not g.stackguard0 (offset {})",
                    self.guard_offset
                ));
            }
            return Ok(self.stackguard0);
        }
        self.reg(operand)
    }

    fn set(&mut self, reg: &str, v: u64) {
        self.regs.insert(reg.trim().to_string(), v & self.mask);
    }

    /// Sets x86-style flags for `a - b` (carry = borrow).
    fn flags_sub_x86(&mut self, a: u64, b: u64) {
        self.carry = a < b;
        self.zero = a == b;
    }

    /// Sets arm64 flags for `a - b` (C = no borrow).
    fn flags_sub_arm64(&mut self, a: u64, b: u64) {
        self.carry = a >= b;
        self.zero = a == b;
    }

    /// Runs the listing; an instruction the emulator does not know is an
    /// error, so a listing that drifts from what this module understands
    /// fails loudly.
    pub fn run(mut self, insns: &[Insn]) -> Result<Outcome, String> {
        for i in insns {
            let args: Vec<&str> = i.args.split(", ").collect();
            let target = |t: &str| match t {
                "morestack" => Ok(Outcome::Morestack),
                "body" => Ok(Outcome::Body),
                other => Err(format!("unknown branch target {other}")),
            };
            match (self.arch, i.op, args.as_slice()) {
                (Goarch::I386, "MOVL", ["TLS", "CX"]) => {
                    self.regs.insert("TLS".into(), 0);
                }
                (Goarch::I386, "MOVL", ["(CX)(TLS*2)", "CX"]) => {
                    if !self.regs.contains_key("TLS") {
                        return Err("g loaded before TLS".into());
                    }
                    // CX now holds g; its value is irrelevant, only that it
                    // is set.
                    self.set("CX", 0);
                }
                (Goarch::Amd64 | Goarch::I386, "CMPQ" | "CMPL", [a, b]) => {
                    let (a, b) = (self.read(a)?, self.read(b)?);
                    self.flags_sub_x86(a, b);
                }
                (Goarch::Amd64 | Goarch::I386, "LEAQ" | "LEAL", [mem, dst]) => {
                    let (off, base) = mem
                        .strip_suffix(')')
                        .and_then(|s| s.split_once('('))
                        .ok_or_else(|| format!("bad LEA operand {mem}"))?;
                    let off: i64 = off.parse().map_err(|_| format!("bad LEA offset {mem}"))?;
                    let v = self.reg(base)?.wrapping_add(off as u64);
                    self.set(dst, v);
                }
                (Goarch::Amd64 | Goarch::I386, "MOVQ" | "MOVL", [src, dst]) => {
                    let v = self.read(src)?;
                    self.set(dst, v);
                }
                (Goarch::Amd64 | Goarch::I386, "SUBQ" | "SUBL", [src, dst]) => {
                    let (s, d) = (self.read(src)?, self.reg(dst)?);
                    self.flags_sub_x86(d, s);
                    self.set(dst, d.wrapping_sub(s));
                }
                (Goarch::Amd64 | Goarch::I386, "JLS", [t]) => {
                    if self.carry || self.zero {
                        return target(t);
                    }
                }
                (Goarch::Amd64 | Goarch::I386, "JCS", [t]) => {
                    if self.carry {
                        return target(t);
                    }
                }
                (Goarch::Arm64, "MOVD", [src, dst]) | (Goarch::Riscv64, "MOV", [src, dst]) => {
                    let v = self.read(src)?;
                    self.set(dst, v);
                }
                (Goarch::Arm64, "CMP", [m, n]) => {
                    let (m, n) = (self.read(m)?, self.read(n)?);
                    self.flags_sub_arm64(n, m);
                }
                (Goarch::Arm64, "SUB" | "SUBS", [imm, src, dst]) => {
                    let (k, s) = (self.read(imm)?, self.read(src)?);
                    if i.op == "SUBS" {
                        self.flags_sub_arm64(s, k);
                    }
                    self.set(dst, s.wrapping_sub(k));
                }
                (Goarch::Arm64, "BLS", [t]) => {
                    if !self.carry || self.zero {
                        return target(t);
                    }
                }
                (Goarch::Arm64, "BLO", [t]) => {
                    if !self.carry {
                        return target(t);
                    }
                }
                (Goarch::Riscv64, "ADDI", [imm, src, dst]) => {
                    let (k, s) = (self.read(imm)?, self.read(src)?);
                    self.set(dst, s.wrapping_add(k));
                }
                (Goarch::Riscv64, "BLTU", [a, b, t]) => {
                    if self.read(a)? < self.read(b)? {
                        return target(t);
                    }
                }
                _ => {
                    return Err(format!(
                        "the emulator does not know `{} {}` on {}",
                        i.op,
                        i.args,
                        self.arch.name()
                    ))
                }
            }
        }
        Ok(match self.arch {
            // riscv64 branches to the body on success and falls through to
            // the morestack call.
            Goarch::Riscv64 => Outcome::Morestack,
            _ => Outcome::Body,
        })
    }
}
