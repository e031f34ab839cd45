//! `GODEBUG=efence=1` on real Go programs against the spec's
//! `Godebug::efence` (runtime/stack.go `stackalloc` and `stackfree`, both
//! releases; runtime/mstats.go `readmemstats_m`).
//!
//! `spec/tests/realgo/efence.go` is built with Go 1.19 and Go 1.23 for
//! linux/amd64 and run with only `GODEBUG=efence=1` in its environment:
//! - `spawn N`: N new goroutines that block at once. The spec says each
//!   costs one 4 KiB page (malg's 2 KiB rounded up to the physical page),
//!   all of it in StackSys and none in StackInuse; the test compares the
//!   real deltas with the spec's for the same N spawns, exactly. (Main's
//!   stack is grown by two ReadMemStats calls before the first reading,
//!   and nothing is printed between the readings, so no other stack moves.)
//! - `grow`: main's first stack overflows and is freed with `sysFault`,
//!   then `runtime.ReadMemStats` runs. The spec says Go 1.19 throws
//!   "mappedReady and other memstats are not equal" there and Go 1.23
//!   does not; the test compares the real outcome, message included.

mod common;

use gostack_spec::goroutine::Func;
use gostack_spec::{Config, Ctx, Profile, State};
use std::process::Command;

const N: u64 = 100;

fn build(release: &str, dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::write(dir.join("efence.go"), include_str!("realgo/efence.go")).unwrap();
    let mut b = common::go(release, dir);
    b.env("GOOS", "linux")
        .env("GOARCH", "amd64")
        .args(["build", "-o", "efence", "efence.go"]);
    common::output(b);
    dir.join("efence")
}

fn run(bin: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .env_clear()
        .env("GODEBUG", "efence=1")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin:?}: {e}"))
}

fn spec(release: &str) -> State {
    let mut c = Config::new(Profile::parse("linux", "amd64", false, release).unwrap());
    c.godebug.efence = true;
    State::new(c).unwrap()
}

fn check(release: &'static str) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("gostack-efence-{release}-"))
        .tempdir()
        .unwrap();
    let bin = build(release, dir.path());

    // spawn N: the spec's deltas.
    let mut s = spec(release);
    let p = s.create_p().unwrap();
    let park = s.add_func(Func::new("main.park", 64)).unwrap();
    let before = s.stats();
    for _ in 0..N {
        s.spawn(Ctx::on(p), park).unwrap();
    }
    let after = s.stats();
    let want = (
        after.stack_inuse as i64 - before.stack_inuse as i64,
        after.stack_sys as i64 - before.stack_sys as i64,
    );
    assert_eq!(want, (0, N as i64 * 4096), "the spec's own figures");
    // Go's.
    let out = run(&bin, &["spawn", &N.to_string()]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "Go {release} spawn: {text}");
    let nums = |tag: &str| -> (i64, i64) {
        let line = text
            .lines()
            .find(|l| l.starts_with(tag))
            .unwrap_or_else(|| panic!("Go {release}: no {tag:?} line in {text}"));
        let f: Vec<i64> = line
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap())
            .collect();
        (f[0], f[1])
    };
    let (b, a) = (nums("before"), nums("after"));
    assert_eq!(
        (a.0 - b.0, a.1 - b.1),
        want,
        "Go {release}: StackInuse and StackSys deltas for {N} goroutines under efence"
    );

    // grow: a sysFaulted stack, then ReadMemStats.
    let mut s = spec(release);
    let p = s.create_p().unwrap();
    let main = s.add_func(Func::new("main.main", 64)).unwrap();
    let big = s.add_func(Func::new("uses a MemStats", 5 * 1024)).unwrap();
    let g = s.spawn(Ctx::on(p), main).unwrap();
    s.call(Ctx::on(p), g, 0, big).unwrap();
    assert_eq!(s.sys.faulted, 4096, "the first page was sysFaulted");
    let spec_says = s.read_mem_stats().err().map(|t| t.to_string());
    let out = run(&bin, &["grow"]);
    let text = String::from_utf8_lossy(&out.stderr);
    match spec_says {
        Some(msg) => {
            assert_eq!(release, "1.19");
            assert!(
                !out.status.success() && text.contains(&format!("fatal error: {msg}")),
                "Go {release} should throw {msg:?}: {} {text}",
                out.status
            );
        }
        None => {
            assert_eq!(release, "1.23");
            assert!(
                out.status.success() && text.contains("read "),
                "Go {release}: {} {text}",
                out.status
            );
        }
    }
}

#[test]
fn efence_matches_go_1_19() {
    check("1.19");
}

#[test]
fn efence_matches_go_1_23() {
    check("1.23");
}
