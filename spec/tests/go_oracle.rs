//! The installed Go toolchains as oracles for `spec::profile` and
//! `spec::guard`.
//!
//! - `go tool dist list` of each release must equal the spec's port list.
//! - For amd64, 386, arm64 and riscv64, with Go 1.19 and Go 1.23, a file of
//!   several hundred functions with frames around StackSmall and StackBig
//!   (and some huge ones, and small leaf functions) is compiled with
//!   `go tool compile -S`; for each function the emitted prologue must be
//!   exactly the listing the spec predicts (mnemonics and operands; branch
//!   targets, which `-S` prints as PCs, are compared by mnemonic), and a
//!   function must have no check exactly when the spec's leaf rules say so.
//!
//! The frame size the spec takes is read off the `-S` output as documented
//! in `spec::guard`: the TEXT line's `$N` on amd64, 386 and arm64; the
//! header's `locals=` on riscv64 (the TEXT frame plus the saved-LR slot).

mod common;

use gostack_spec::guard::{self, Calls, Insn};
use gostack_spec::{Profile, Release};
use std::collections::BTreeSet;
use std::fmt::Write as _;

#[test]
fn dist_list_matches_the_spec_ports() {
    for &release in Release::ALL {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = common::go(release.name(), dir.path());
        cmd.args(["tool", "dist", "list"]);
        let got: Vec<String> = common::output(cmd).lines().map(str::to_string).collect();
        let want: Vec<String> = release.ports().iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "go{} tool dist list", release.name());
    }
}

/// Array sizes that put frames on both sides of every threshold.
fn sizes() -> Vec<u64> {
    let mut v: Vec<u64> = (1..=641).step_by(4).collect();
    v.extend((3501..=4701).step_by(4));
    v.extend([5000, 8192, 10_000, 65_536, 1 << 20, 4 << 20]);
    v
}

fn source() -> String {
    let mut s = String::from("package p\n\n//go:noinline\nfunc sink(p *byte) {}\n\n");
    // A leaf with an empty frame.
    s += "func nop(x int) int { return x + 1 }\n";
    for k in sizes() {
        // A frame holding k bytes that must stay on the stack, and a call.
        let _ = writeln!(s, "func f{k}() {{ var a [{k}]byte; sink(&a[0]) }}");
    }
    for k in (8..=200).step_by(4) {
        // A leaf with no calls at all.
        let _ = writeln!(
            s,
            "func l{k}(i uint) byte {{ var a [{k}]byte; for j := range a {{ a[j] = byte(j) }}; return a[i%{k}] }}"
        );
        // A leaf whose only call is the bounds-check panic.
        let _ = writeln!(
            s,
            "func b{k}(i int) byte {{ var a [{k}]byte; for j := range a {{ a[j] = byte(j) }}; return a[i] }}"
        );
    }
    s
}

/// One compiled function as `-S` shows it.
struct Func {
    name: String,
    header: String,
    text_frame: u64,
    locals: u64,
    insns: Vec<(String, String)>,
}

fn parse(listing: &str) -> Vec<Func> {
    let mut funcs: Vec<Func> = Vec::new();
    for line in listing.lines() {
        if !line.starts_with('\t') && line.contains(" STEXT") {
            let name = line.split_whitespace().next().unwrap().to_string();
            let locals = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("locals=0x"))
                .map(|h| u64::from_str_radix(h, 16).unwrap())
                .unwrap_or_else(|| panic!("no locals= in {line}"));
            funcs.push(Func {
                name,
                header: line.to_string(),
                text_frame: u64::MAX,
                locals,
                insns: Vec::new(),
            });
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        // Instruction lines: "", "0x0000 00000 (file:line)", OP, ARGS.
        if fields.len() < 3 || !fields[1].contains('(') {
            continue;
        }
        let Some(f) = funcs.last_mut() else { continue };
        let op = fields[2].trim().to_string();
        let args = fields
            .get(3)
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        match op.as_str() {
            "TEXT" => {
                let frame = args.rsplit('$').next().unwrap();
                let n = frame.split('-').next().unwrap();
                f.text_frame = n
                    .parse()
                    .unwrap_or_else(|_| panic!("bad TEXT frame in {args}"));
            }
            "FUNCDATA" | "PCDATA" => {}
            _ => f.insns.push((op, args)),
        }
    }
    funcs
}

/// What the body calls, classified as the leaf rules need; the morestack
/// call that the prologue itself adds does not count.
fn calls(f: &Func) -> Calls {
    let mut kind = Calls::Nothing;
    for (op, args) in &f.insns {
        let is_call = matches!(op.as_str(), "CALL" | "BL" | "JAL" | "DUFFZERO" | "DUFFCOPY");
        if !is_call || args.contains("runtime.morestack") || (op == "JAL" && args.starts_with("X0"))
        {
            continue;
        }
        let zero_arg = op.starts_with("DUFF")
            || [
                "runtime.panicdivide",
                "runtime.panicwrap",
                "runtime.panicshift",
            ]
            .iter()
            .any(|n| args.starts_with(&format!("{n}(SB)")))
            || args.starts_with("runtime.panicIndex")
            || args.starts_with("runtime.panicSlice");
        if !zero_arg {
            return Calls::Others;
        }
        kind = Calls::OnlyRuntimePanicsOrDuff;
    }
    kind
}

/// Whether the function reads g.stackguard0, i.e. has a split check.
fn has_check(arch: &str, f: &Func) -> bool {
    let operand = match arch {
        "amd64" => "16(R14)",
        "386" => "8(CX)",
        _ => "16(g)",
    };
    f.insns.iter().any(|(_, args)| args.contains(operand))
}

fn same_insn(arch: &str, want: &Insn, got: &(String, String)) -> bool {
    if want.op != got.0 {
        return false;
    }
    if !want.branch {
        return want.args == got.1;
    }
    if arch == "riscv64" {
        // BLTU a, b, target: compare the registers, not the PC.
        let strip = |s: &str| s.rsplit_once(", ").map(|(regs, _)| regs.to_string());
        return strip(&want.args) == strip(&got.1);
    }
    true
}

/// What one toolchain run showed: the frame sizes seen, and which
/// (calls, has a check) pairs occurred.
struct Seen {
    frames: Vec<u64>,
    kinds: BTreeSet<(String, bool)>,
}

fn check_arch(release: Release, arch: &str) -> Result<Seen, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.go"), source()).unwrap();
    let mut cmd = common::go(release.name(), dir.path());
    cmd.env("GOOS", "linux")
        .env("GOARCH", arch)
        .args(["tool", "compile", "-p", "p", "-S", "-o", "p.o", "p.go"]);
    let funcs = parse(&common::output(cmd));
    let profile = Profile::parse("linux", arch, false, release.name()).unwrap();
    let mut errors = Vec::new();
    let mut frames = Vec::new();
    let mut kinds = BTreeSet::new();
    for f in funcs.iter().filter(|f| f.name != "p.sink") {
        let fs = if arch == "riscv64" {
            f.locals
        } else {
            f.text_frame
        };
        frames.push(fs);
        let c = calls(f);
        let want = guard::prologue(&profile, fs, c).map_err(|e| e.to_string())?;
        let checked = has_check(arch, f);
        kinds.insert((format!("{c:?}"), checked));
        if std::env::var_os("GOSTACK_ORACLE_DEBUG").is_some() {
            eprintln!(
                "go{} {arch} {} fs={fs} {c:?} check={checked}",
                release.name(),
                f.name
            );
        }
        let ctx = format!(
            "go{} {arch} {} framesize {fs} ({c:?})",
            release.name(),
            f.name
        );
        match want {
            None if checked => errors.push(format!(
                "{ctx}: spec says no check, Go emitted one\n  {}",
                f.header
            )),
            None => {}
            Some(_) if !checked => errors.push(format!(
                "{ctx}: spec predicts a check, Go emitted none\n  {}",
                f.header
            )),
            Some(p) => {
                let n = p.insns.len();
                let got = &f.insns[..n.min(f.insns.len())];
                let ok =
                    got.len() == n && p.insns.iter().zip(got).all(|(w, g)| same_insn(arch, w, g));
                if !ok {
                    let w: Vec<String> = p
                        .insns
                        .iter()
                        .map(|i| format!("{} {}", i.op, i.args))
                        .collect();
                    let g: Vec<String> = got.iter().map(|(o, a)| format!("{o} {a}")).collect();
                    errors.push(format!(
                        "{ctx} ({:?}):\n  spec: {w:?}\n  go:   {g:?}",
                        p.form
                    ));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(Seen { frames, kinds })
    } else {
        Err(errors.join("\n"))
    }
}

#[test]
fn emitted_prologues_match_the_spec() {
    let mut jobs = Vec::new();
    for &release in Release::ALL {
        // Fail here, once, with install instructions if a toolchain is absent.
        common::goroot(release.name());
        for arch in ["amd64", "386", "arm64", "riscv64"] {
            jobs.push(std::thread::spawn(move || {
                (release, arch, check_arch(release, arch))
            }));
        }
    }
    let mut failures = Vec::new();
    for job in jobs {
        let (release, arch, result) = job.join().expect("oracle thread panicked");
        match result {
            Err(e) => failures.push(e),
            Ok(seen) => {
                // Every leaf rule was exercised on both of its sides.
                let (nothing, panics, others) = ("Nothing", "OnlyRuntimePanicsOrDuff", "Others");
                let want: &[(&str, bool)] = match arch {
                    "amd64" => &[
                        (nothing, false),
                        (panics, false),
                        (panics, true),
                        (others, true),
                    ],
                    "arm64" => &[(nothing, false), (panics, true), (others, true)],
                    "riscv64" => &[(nothing, false), (nothing, true), (others, true)],
                    _ => &[(nothing, true), (panics, true), (others, true)],
                };
                for (kind, checked) in want {
                    if !seen.kinds.contains(&(kind.to_string(), *checked)) {
                        failures.push(format!(
                            "go{} {arch}: no function with calls {kind} and check={checked} was compiled",
                            release.name()
                        ));
                    }
                }
                let distinct: BTreeSet<u64> = seen.frames.into_iter().collect();
                // At least 30 frame sizes within 512 bytes of each threshold,
                // with some on each side.
                for t in [guard_small(), guard_big()] {
                    let below = distinct.iter().filter(|&&f| f <= t && f + 512 > t).count();
                    let above = distinct.iter().filter(|&&f| f > t && f < t + 512).count();
                    // (arm64 frames are multiples of 16, so at most 8 non-zero
                    // sizes lie at or below StackSmall.)
                    if below + above < 30 || below < 5 || above < 5 {
                        failures.push(format!(
                            "go{} {arch}: only {below} + {above} frame sizes around {t}",
                            release.name()
                        ));
                    }
                }
                if !distinct.iter().any(|&f| f > 1 << 20) {
                    failures.push(format!("go{} {arch}: no huge frame", release.name()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn guard_small() -> u64 {
    gostack_spec::profile::STACK_SMALL
}

fn guard_big() -> u64 {
    gostack_spec::profile::STACK_BIG
}
