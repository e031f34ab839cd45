//! `gostack conform`: a short random run (no divergence, a full coverage
//! table, the counts it claims), the replay of a reproducer built here,
//! and the one-line errors for bad input.

use gostack_models::harness::Case;
use gostack_models::op::{CSel, CaseSel, GSel, Op, SizeSel, Val, Who};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// Runs gostack like [`gostack`], but kills it and fails the test when it
/// has not ended after `secs` seconds.
fn gostack_within(secs: u64, args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gostack"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gostack");
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            s
        })
    };
    let out = read_all(Box::new(child.stdout.take().unwrap()));
    let err = read_all(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("gostack {args:?} still runs after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.code().unwrap_or(-1),
        out.join().unwrap(),
        err.join().unwrap(),
    )
}

/// The counts of the summary line `N cases, M ops in ...`.
fn cases_and_ops(out: &str) -> (u64, u64) {
    let words: Vec<&str> = out.lines().next().unwrap_or("").split(' ').collect();
    match words[..] {
        [n, "cases,", m, "ops", ..] => (n.parse().unwrap(), m.parse().unwrap()),
        _ => panic!("no summary line: {out}"),
    }
}

/// The ops of `case` a run applies: up to its first Go throw, which is
/// fatal (the spec alone decides it, as both sides agree).
fn ops_run(case: &Case) -> u64 {
    gostack_models::driver::run_case::<gostack_spec::State>(case, true)
        .unwrap()
        .ops
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
    // The op count is the sum of the cases' lengths up to their first Go
    // throw (which ends a case), generated from the seeds alone.
    let ops: u64 = (5..17)
        .map(|s| ops_run(&gostack_models::gen::case(s, &[], 120)))
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

/// `--max-ops 1` runs cases of exactly one op, by count and by time
/// (it used to hang with --cases, and exit 101 silently with --seconds).
#[test]
fn cases_of_one_op() {
    let out_dir = scratch("one-op");
    let out_dir = out_dir.to_str().unwrap();
    let (code, out, err) = gostack_within(
        60,
        &[
            "conform",
            "--max-ops",
            "1",
            "--cases",
            "8",
            "--seed",
            "2",
            "--threads",
            "2",
            "--out",
            out_dir,
        ],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(cases_and_ops(&out), (8, 8), "{out}");
    let (code, out, err) = gostack_within(
        60,
        &[
            "conform",
            "--max-ops",
            "1",
            "--seconds",
            "1",
            "--out",
            out_dir,
        ],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let (cases, ops) = cases_and_ops(&out);
    assert!(cases > 0 && cases == ops, "{out}");
}

#[test]
fn replay_prints_every_step() {
    let dir = scratch("replay");
    let w = Who::P(0);
    let case = Case {
        profile: "linux/amd64/1.23".into(),
        ops: vec![
            Op::Alloc(w, SizeSel::Order(0)),
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
            Op::Alloc(Who::NoP, SizeSel::Raw(3000)),
            Op::GcStart,
        ],
    };
    let file = dir.join("case.json");
    std::fs::write(&file, serde_json::to_string(&case).unwrap()).unwrap();
    let (code, out, err) = gostack(&["conform", "--replay", file.to_str().unwrap()]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.starts_with("profile linux/amd64/1.23, 14 ops\n"),
        "{out}"
    );
    let steps: Vec<&str> = out.lines().filter(|l| l.starts_with("step ")).collect();
    assert_eq!(steps.len(), 13, "the fatal throw ends the case: {out}");
    assert!(steps[0].contains("-> Ok(Stack("), "{}", steps[0]);
    assert!(steps[1].ends_with("Ok(Id(0))"), "{}", steps[1]);
    // Four calls of a 4 KiB frame from a 2 KiB stack: it grows.
    assert!(
        steps[2].contains("Burst([Unit, Unit, Unit, Unit], None)"),
        "{}",
        steps[2]
    );
    assert!(
        steps[7].ends_with("Ok(Id(0))"),
        "the send readies g 0: {}",
        steps[7]
    );
    assert!(
        steps[12].contains("Err(Go(StackSizeNotPowerOf2))"),
        "{}",
        steps[12]
    );
    assert!(
        out.contains("no divergence: 13 ops, 1 failed alike"),
        "{out}"
    );
    assert!(
        out.contains(
            "the case ended at op 12 with the fatal Go throw \"stack size not a power of 2\" (1 ops not run)"
        ),
        "{out}"
    );
}

#[test]
fn bad_input_is_one_line_and_status_2() {
    let dir = scratch("bad");
    for (args, want) in [
        (
            // The harness's message shows the failing op as a Debug dump.
            vec!["conform", "--profile", "linux/mips/1.23"],
            "gostack: --profile linux/mips/1.23: goroutine frames on mips are not modeled",
        ),
        (
            vec!["conform", "--profile", "linux/amd64"],
            "gostack: --profile linux/amd64: expected goos/goarch/release",
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
            vec!["conform", "--profile", "beos/amd64/1.23"],
            "gostack: --profile beos/amd64/1.23: unknown goos \"beos\"; accepted: ",
        ),
        (
            vec!["conform", "--profile", "linux/amd64/1.23:efence=2"],
            "accepted: adaptivestackstart, invalidptr, gcshrinkstackoff, efence",
        ),
        // Too long for a Duration: it used to panic.
        (
            vec!["conform", "--seconds", "1e30"],
            "--seconds 1e30: accepted",
        ),
        (vec!["conform", "--seconds", "0"], "positive number"),
        (vec!["conform", "--seconds", "-3"], "--seconds -3: accepted"),
        (
            vec!["conform", "--seconds", "inf"],
            "--seconds inf: accepted",
        ),
        (
            vec!["conform", "--seconds", "NaN"],
            "--seconds NaN: accepted",
        ),
        (
            vec!["conform", "--seconds", "soon"],
            "--seconds soon: accepted",
        ),
        (
            vec!["conform", "--max-ops", "0"],
            "--max-ops 0: accepted: 1 to 100000",
        ),
        (
            vec!["conform", "--max-ops", "100001"],
            "accepted: 1 to 100000",
        ),
    ] {
        let (code, out, err) = gostack(&args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        // Every message names the flag, and none is a Debug dump.
        assert!(
            err.starts_with("gostack: --") && err.contains(want),
            "{args:?}: {err}"
        );
        assert!(!err.contains(" { "), "{args:?}: {err}");
    }
    let junk = dir.join("junk.json");
    std::fs::write(&junk, "{\"ops\": 3}").unwrap();
    let (code, _, err) = gostack(&["conform", "--replay", junk.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with(&format!(
            "gostack: --replay {}: not a reproducer",
            junk.display()
        )),
        "{err}"
    );
    let mips = dir.join("mips.json");
    std::fs::write(&mips, r#"{"profile": "linux/mips/1.23", "ops": []}"#).unwrap();
    let (code, _, err) = gostack(&["conform", "--replay", mips.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "gostack: --replay {}: profile linux/mips/1.23: goroutine frames on mips are not modeled",
            mips.display()
        )),
        "{err}"
    );
    assert!(!err.contains(" { "), "{err}");
    let (code, _, err) = gostack(&["conform", "--replay", "/nonexistent/case.json"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("gostack: --replay /nonexistent/case.json: cannot read"),
        "{err}"
    );
}

/// On a stderr that is not a terminal (here a pipe, as in a CI log) the
/// progress is plain lines: no carriage returns redrawing one line.
#[test]
fn progress_in_a_log_has_no_carriage_returns() {
    let out_dir = scratch("log");
    let (code, out, err) = gostack(&[
        "conform",
        "--seconds",
        "2",
        "--threads",
        "1",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(!err.contains('\r'), "{err:?}");
    // The start-up line and the final counts.
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(
        err.lines().nth(1).unwrap().starts_with("conform: "),
        "{err}"
    );
}

/// `--quiet` prints no progress; `--json` prints the summary as one JSON
/// object.
#[test]
fn quiet_and_json() {
    let out_dir = scratch("json");
    let out_dir = out_dir.to_str().unwrap();
    let (code, out, err) = gostack(&[
        "conform",
        "--cases",
        "4",
        "--seed",
        "9",
        "--threads",
        "2",
        "--out",
        out_dir,
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    assert!(out.starts_with("4 cases, "), "{out}");
    assert!(out.contains("seed 9"), "{out}");
    assert!(out.contains("coverage: "), "{out}");

    let (code, out, err) = gostack(&[
        "conform",
        "--cases",
        "4",
        "--seed",
        "9",
        "--threads",
        "2",
        "--out",
        out_dir,
        "--json",
        "--profile",
        "linux/arm64/1.19,linux/386/1.23:stackNoCache=1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("stdout is JSON");
    for key in [
        "cases",
        "ops",
        "calls",
        "seconds",
        "seed",
        "threads",
        "profiles",
        "divergences",
        "coverage",
        "unreached",
    ] {
        assert!(v.get(key).is_some(), "no {key}: {v}");
    }
    assert_eq!(v["cases"], 4);
    assert_eq!(v["seed"], 9);
    assert_eq!(v["threads"], 2);
    assert_eq!(
        v["profiles"],
        serde_json::json!(["linux/arm64/1.19", "linux/386/1.23:stackNoCache=1"])
    );
    assert_eq!(v["divergences"], serde_json::json!([]));
    assert!(v["seconds"].as_f64().unwrap() > 0.0);
    let ops: u64 = (9..13)
        .map(|s| {
            let profiles = [
                "linux/arm64/1.19".to_string(),
                "linux/386/1.23:stackNoCache=1".to_string(),
            ];
            ops_run(&gostack_models::gen::case(s, &profiles, 300))
        })
        .sum();
    assert_eq!(v["ops"], ops);
    let coverage = v["coverage"].as_object().unwrap();
    assert!(
        coverage["malg: a new goroutine"].as_u64().unwrap() > 0,
        "{v}"
    );
    let unreached = v["unreached"].as_array().unwrap();
    assert!(!unreached.is_empty(), "four cases reach everything? {v}");
    for name in unreached {
        assert_eq!(coverage[name.as_str().unwrap()], 0, "{name}");
    }
}

/// An `--out` where no reproducer could be written is refused before the
/// run (it used to be found only after a divergence); one that does not
/// exist yet is created for the run and removed again when it stays empty.
#[test]
fn out_is_checked_at_start() {
    let dir = scratch("out");
    let file = dir.join("a-file");
    std::fs::write(&file, "").unwrap();
    for out in [file.clone(), file.join("below")] {
        let out = out.to_str().unwrap();
        let (code, stdout, err) = gostack(&["conform", "--cases", "1", "--out", out]);
        assert_eq!(code, 2, "--out {out}: {stdout}{err}");
        assert!(stdout.is_empty(), "--out {out}: {stdout}");
        assert_eq!(err.lines().count(), 1, "--out {out}: {err}");
        assert!(
            err.starts_with(&format!("gostack: --out {out}: cannot ")),
            "--out {out}: {err}"
        );
    }
    let new = dir.join("new");
    let deeper = new.join("deeper");
    let (code, stdout, err) =
        gostack(&["conform", "--cases", "1", "--out", deeper.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(!new.exists(), "{} is left behind", new.display());
}

/// Values clap refuses: status 2, the flag and the accepted range named.
#[test]
fn threads_are_1_to_1024() {
    for n in ["0", "1025"] {
        let (code, out, err) = gostack(&["conform", "--cases", "1", "--threads", n]);
        assert_eq!(code, 2, "--threads {n}: {out}{err}");
        assert!(out.is_empty(), "--threads {n}: {out}");
        assert!(
            err.contains("'--threads <THREADS>'") && err.contains("1..=1024"),
            "--threads {n}: {err}"
        );
    }
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
