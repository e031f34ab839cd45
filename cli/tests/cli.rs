//! The `gostack` command as a user meets it: outputs, and one-line errors
//! with exit status 2 for every bad input.

use gostack_spec::{Goarch, Goos, Profile};
use std::process::Command;

fn gostack(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gostack"))
        .args(args)
        .output()
        .expect("run gostack");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Runs a command that must fail with one line naming what is accepted.
fn fails(args: &[&str], starts: &str, accepted: &str) {
    let (code, out, err) = gostack(args);
    assert_eq!(code, 2, "{args:?}: exit status");
    assert!(out.is_empty(), "{args:?}: printed {out}");
    assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
    assert!(
        err.starts_with(&format!("gostack: {starts}")),
        "{args:?}: {err}"
    );
    assert!(
        err.contains(accepted),
        "{args:?}: {err} does not list {accepted}"
    );
    assert!(!err.contains("panicked"), "{args:?}: {err}");
}

#[test]
fn consts_all_lists_every_profile() {
    let (code, out, err) = gostack(&["consts", "--all"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out
        .lines()
        .skip(1)
        .filter(|l| l.contains(" go1."))
        .collect();
    assert_eq!(rows.len(), Profile::all().len());
    let win = rows
        .iter()
        .find(|r| r.starts_with("windows/386 go1.23"))
        .expect("windows/386 row");
    let cells: Vec<&str> = win.split_whitespace().collect();
    // PROFILE(2 words) PTR LR SYSTEM FIXED MULT NOSPLIT GUARD CALL LINKLIMIT ORDERS CACHED ...
    assert_eq!(
        &cells[2..12],
        ["4", "n", "4096", "8192", "1", "800", "5024", "4", "796", "3"]
    );
    assert_eq!(cells[12], "8K,16K");
}

#[test]
fn consts_json_is_the_spec_table() {
    let (code, out, _) = gostack(&[
        "consts",
        "--goos",
        "ios",
        "--goarch",
        "arm64",
        "--release",
        "1.19",
        "--json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["consts"]["stack_system"], 1024);
    assert_eq!(v["consts"]["fixed_stack"], 4096);
    assert_eq!(v["consts"]["linker_nosplit_limit"], 792);
    assert_eq!(
        v["consts"]["cached_stack_sizes"],
        serde_json::json!([4096, 8192, 16384])
    );
    let (_, all, _) = gostack(&["consts", "--all", "--json"]);
    let all: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all.as_array().unwrap().len(), Profile::all().len());
}

#[test]
fn consts_single_profile_names_sources() {
    let (code, out, _) = gostack(&["consts", "--goos", "aix", "--goarch", "ppc64", "--race"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("aix/ppc64 race go1.23\n"), "{out}");
    let guard = out
        .lines()
        .find(|l| l.trim_start().starts_with("StackGuard "))
        .unwrap();
    assert!(
        guard.contains(" 2528 ") && guard.ends_with("runtime/stack.go"),
        "{guard}"
    );
}

#[test]
fn split_prints_form_listing_and_verdict() {
    let (code, out, err) = gostack(&[
        "split",
        "--goarch",
        "arm64",
        "--framesize",
        "224",
        "--sp",
        "0xc000100000",
        "--guard",
        "0xc0000fffa0",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("form: big (StackSmall 128 < framesize <= StackBig 4096)"),
        "{out}"
    );
    assert!(out.contains("SUB   $96, RSP, R17"), "{out}");
    // SP - 96 = 0xc0000fffa0 exactly: at the guard, so morestack runs.
    assert!(out.contains("morestack runs"), "{out}");
    let (_, out, _) = gostack(&[
        "split",
        "--goarch",
        "arm64",
        "--framesize",
        "224",
        "--sp",
        "0xc000100001",
        "--guard",
        "0xc0000fffa0",
    ]);
    assert!(out.contains("the check passes"), "{out}");
    let (_, out, _) = gostack(&[
        "split",
        "--goarch",
        "amd64",
        "--framesize",
        "64",
        "--calls",
        "nothing",
    ]);
    assert!(out.contains("check: none"), "{out}");
    let (_, out, _) = gostack(&[
        "split",
        "--goarch",
        "386",
        "--framesize",
        "5000",
        "--sp",
        "0x8000",
        "--guard",
        "stackForceMove",
    ]);
    assert!(
        out.contains("JCS   morestack") && out.contains("stackguard0 0xfffffeed: morestack runs"),
        "{out}"
    );
}

/// A value outside a closed set: clap's error (status 2) names the flag
/// and lists the possible values.
fn clap_refuses(args: &[&str], flag: &str, possible: &str) {
    let (code, out, err) = gostack(args);
    assert_eq!(code, 2, "{args:?}: exit status");
    assert!(out.is_empty(), "{args:?}: printed {out}");
    let bad = args.last().unwrap();
    assert!(
        err.starts_with(&format!("error: invalid value '{bad}' for '{flag}'")),
        "{args:?}: {err}"
    );
    assert!(
        err.contains(&format!("[possible values: {possible}]")),
        "{args:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{args:?}: {err}");
}

/// The spec's names, as clap lists them.
fn names(names: impl Iterator<Item = &'static str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

fn gooses() -> String {
    names(Goos::ALL.iter().map(|g| g.name()))
}

fn goarches() -> String {
    names(Goarch::ALL.iter().map(|a| a.name()))
}

#[test]
fn bad_names_get_the_possible_values() {
    clap_refuses(&["consts", "--goos", "beos"], "--goos <GOOS>", &gooses());
    clap_refuses(
        &["consts", "--goarch", "sparc64"],
        "--goarch <GOARCH>",
        &goarches(),
    );
    clap_refuses(
        &["consts", "--release", "1.21"],
        "--release <RELEASE>",
        "1.19, 1.23",
    );
    clap_refuses(
        &["split", "--framesize", "8", "--goos", "Linux"],
        "--goos <GOOS>",
        &gooses(),
    );
    clap_refuses(
        &["split", "--framesize", "8", "--goarch", "x86"],
        "--goarch <GOARCH>",
        &goarches(),
    );
    clap_refuses(
        &["split", "--framesize", "8", "--release", "1.22"],
        "--release <RELEASE>",
        "1.19, 1.23",
    );
    clap_refuses(
        &["split", "--framesize", "8", "--calls", "some"],
        "--calls <CALLS>",
        "nothing, panics, others",
    );
    clap_refuses(
        &["nosplit", "x", "--goarch", "vax"],
        "--goarch <GOARCH>",
        &goarches(),
    );
    clap_refuses(
        &["nosplit", "x", "--release", "1.5"],
        "--release <RELEASE>",
        "1.19, 1.23",
    );
    // Go's own spelling of a release is accepted too.
    let (code, out, err) = gostack(&["consts", "--release", "go1.19"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("linux/amd64 go1.19\n"), "{out}");
}

#[test]
fn help_lists_the_possible_values() {
    for cmd in ["consts", "split"] {
        let (code, out, _) = gostack(&[cmd, "--help"]);
        assert_eq!(code, 0);
        assert!(
            out.contains(&format!("[possible values: {}]", gooses())),
            "{out}"
        );
        assert!(
            out.contains(&format!("[possible values: {}]", goarches())),
            "{out}"
        );
        assert!(out.contains("[possible values: 1.19, 1.23]"), "{out}");
    }
    let (_, out, _) = gostack(&["split", "--help"]);
    for calls in ["- nothing: ", "- panics: ", "- others: "] {
        assert!(out.contains(calls), "{out}");
    }
    let (_, out, _) = gostack(&["nosplit", "--help"]);
    assert!(
        out.contains(&format!("[possible values: {}]", goarches())),
        "{out}"
    );
    assert!(out.contains("[possible values: 1.19, 1.23]"), "{out}");
}

/// Flags a command would ignore are refused by clap, naming both.
#[test]
fn ignored_flags_are_refused() {
    for (args, with) in [
        (&["consts", "--all", "--goos", "ios"][..], "--goos <GOOS>"),
        (&["consts", "--goarch", "386", "--all"], "--goarch <GOARCH>"),
        (&["consts", "--all", "--race", "--json"], "--race"),
        (
            &["consts", "--all", "--release", "1.19"],
            "--release <RELEASE>",
        ),
        (
            &["conform", "--replay", "x.json", "--seconds", "3"],
            "--seconds <SECONDS>",
        ),
        (
            &["conform", "--replay", "x.json", "--keep-going"],
            "--keep-going",
        ),
        (&["conform", "--replay", "x.json", "--json"], "--json"),
    ] {
        let (code, out, err) = gostack(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(
            err.starts_with("error: the argument '--"),
            "{args:?}: {err}"
        );
        assert!(err.contains("cannot be used with"), "{args:?}: {err}");
        assert!(err.contains(with), "{args:?}: {err}");
    }
}

#[test]
fn bad_input_is_one_line_and_status_2() {
    fails(
        &["consts", "--goos", "ios", "--goarch", "386"],
        "--goos ios --goarch 386 --release 1.23: ios/386 is not a Go 1.23 port",
        "amd64, arm64",
    );
    fails(
        &["split", "--framesize", "-8"],
        "--framesize -8: not a frame size",
        "0 to 2147483647",
    );
    fails(
        &["split", "--framesize", "2147483648"],
        "--framesize 2147483648: frame size 2147483648 cannot exist",
        "0 to 2147483647",
    );
    fails(
        &["split", "--framesize", "99999999999999999999999"],
        "--framesize 99999999999999999999999: ",
        "0 to 2147483647",
    );
    fails(
        &["split", "--goarch", "mips", "--framesize", "8"],
        "--goarch mips: the split-check prologue of mips",
        "amd64, 386, arm64, riscv64",
    );
    fails(
        &[
            "split",
            "--goarch",
            "386",
            "--framesize",
            "8",
            "--sp",
            "0x100000000",
            "--guard",
            "0",
        ],
        "--sp 0x100000000: 0x100000000 does not fit in a 32-bit pointer",
        "0xffffffff",
    );
    fails(
        &[
            "split",
            "--framesize",
            "8",
            "--sp",
            "12",
            "--guard",
            "stackPanic",
        ],
        "--guard stackPanic: not a number",
        "stackPreempt",
    );
    fails(
        &[
            "split",
            "--goarch",
            "386",
            "--framesize",
            "8",
            "--sp",
            "16",
            "--guard",
            "4294967296",
        ],
        "--guard 4294967296: 0x100000000 does not fit in a 32-bit pointer",
        "0xffffffff",
    );
}
