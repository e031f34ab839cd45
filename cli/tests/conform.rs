//! `gostack conform`: a short random run (no divergence, a full coverage
//! table, the counts it claims), the replay of a reproducer built here,
//! and the one-line errors for bad input.

use gostack_models::harness::Case;
use gostack_models::op::{CSel, CaseSel, GSel, Op, SizeSel, Val, Who};
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

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gostack-conform-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_short_run_agrees_and_prints_coverage() {
    let out_dir = scratch("run");
    let (code, out, err) = gostack(&[
        "conform",
        "--cases",
        "12",
        "--seed",
        "5",
        "--threads",
        "2",
        "--max-ops",
        "120",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("seed 5, 2 threads"), "{err}");
    assert!(err.contains("0 divergences"), "{err}");
    let summary = out.lines().next().unwrap();
    assert!(summary.starts_with("12 cases, "), "{summary}");
    // The op count is the sum of the cases' lengths, generated from the
    // seeds alone.
    let ops: usize = (5..17)
        .map(|s| gostack_models::gen::case(s, &[], 120).ops.len())
        .sum();
    assert!(
        summary.contains(&format!(" {ops} ops in ")),
        "{summary} (want {ops} ops)"
    );
    assert!(out.contains("coverage: "), "{out}");
    assert!(out.contains("  branch "), "{out}");
    assert!(out.contains("stackcacherefill"), "{out}");
    // Nothing diverged, so no reproducer was written.
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0);
}

#[test]
fn replay_prints_every_step() {
    let dir = scratch("replay");
    let w = Who::P(0);
    let case = Case {
        profile: "linux/amd64/1.23".into(),
        ops: vec![
            Op::Alloc(w, SizeSel::Order(0)),
            Op::Alloc(Who::NoP, SizeSel::Raw(3000)),
            Op::Spawn(w, 0),
            Op::Recurse(w, GSel::Last, 0, 7, 4),
            Op::Unwind(w, GSel::Last, 255),
            Op::Park(
                GSel::Last,
                vec![CaseSel {
                    c: CSel::Any(0),
                    word: 0,
                }],
            ),
            Op::GcStart,
            Op::GcScan(0, GSel::Last),
            Op::Send(CSel::Busy(0), Val::Heap(8), 0),
            Op::Wake(GSel::Last),
            Op::Exit(w, GSel::Last),
            Op::Free(w, 0),
            Op::GcEnd,
        ],
    };
    let file = dir.join("case.json");
    std::fs::write(&file, serde_json::to_string(&case).unwrap()).unwrap();
    let (code, out, err) = gostack(&["conform", "--replay", file.to_str().unwrap()]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.starts_with("profile linux/amd64/1.23, 13 ops\n"),
        "{out}"
    );
    let steps: Vec<&str> = out.lines().filter(|l| l.starts_with("step ")).collect();
    assert_eq!(steps.len(), 13, "{out}");
    assert!(steps[0].contains("-> Ok(Stack("), "{}", steps[0]);
    assert!(
        steps[1].contains("Err(Go(StackSizeNotPowerOf2))"),
        "{}",
        steps[1]
    );
    assert!(steps[2].ends_with("Ok(Id(0))"), "{}", steps[2]);
    // Four calls of a 4 KiB frame from a 2 KiB stack: it grows.
    assert!(
        steps[3].contains("Burst([Unit, Unit, Unit, Unit], None)"),
        "{}",
        steps[3]
    );
    assert!(
        steps[8].ends_with("Ok(Id(0))"),
        "the send readies g 0: {}",
        steps[8]
    );
    assert!(
        out.contains("no divergence: 13 ops, 1 failed alike"),
        "{out}"
    );
}

#[test]
fn bad_input_is_one_line_and_status_2() {
    let dir = scratch("bad");
    for (args, want) in [
        (
            vec!["conform", "--profile", "linux/mips/1.23"],
            "not modeled",
        ),
        (
            vec!["conform", "--profile", "linux/amd64"],
            "goos/goarch/release",
        ),
        (
            vec![
                "conform",
                "--profile",
                "linux/amd64/1.23:gcshrinkstackoff=2",
            ],
            "accepted: adaptivestackstart, invalidptr, gcshrinkstackoff, efence",
        ),
        (
            vec!["conform", "--profile", "linux/amd64/1.23:efence=2"],
            "accepted: adaptivestackstart, invalidptr, gcshrinkstackoff, efence",
        ),
        (vec!["conform", "--seconds", "0"], "positive number"),
        (vec!["conform", "--max-ops", "0"], "at least 1"),
    ] {
        let (code, out, err) = gostack(&args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("gostack: ") && err.contains(want),
            "{args:?}: {err}"
        );
    }
    let junk = dir.join("junk.json");
    std::fs::write(&junk, "{\"ops\": 3}").unwrap();
    let (code, _, err) = gostack(&["conform", "--replay", junk.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("not a reproducer"), "{err}");
    let (code, _, err) = gostack(&["conform", "--replay", "/nonexistent/case.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read"), "{err}");
}

/// A profile with GODEBUG settings, several at once, and a second profile
/// after it: the commas of the settings and of the profile list both work.
#[test]
fn profiles_take_godebug_settings() {
    let (code, _, err) = gostack(&[
        "conform",
        "--cases",
        "6",
        "--seed",
        "3",
        "--profile",
        "linux/amd64/1.23:gcshrinkstackoff=1,invalidptr=0,linux/386/1.19",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("profiles linux/amd64/1.23:gcshrinkstackoff=1,invalidptr=0 linux/386/1.19"),
        "{err}"
    );
}
