//! `gostack nosplit` as a user meets it: Go's own table passes `--check` on
//! every architecture, outputs are one line per stanza, and bad input gets
//! one line naming the line number and what is accepted, with status 2.

use std::path::PathBuf;
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

/// Go's test/nosplit.go of a release, or a panic that says how to install it.
#[cfg(feature = "go-oracle")]
fn table(release: &str) -> PathBuf {
    let var = format!("GOSTACK_GO_{}", release.replace('.', "_"));
    let root = std::env::var_os(&var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/usr/lib/go-{release}")));
    let path = root.join("test/nosplit.go");
    assert!(
        path.exists(),
        "{} is missing: install golang-{release}-src with ci/install-go.sh, or point {var} at a GOROOT",
        path.display()
    );
    path
}

/// A stanza file in the temp directory, removed when dropped (the CLI
/// crate has no tempfile dependency).
struct TempFile(PathBuf);

impl TempFile {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn stanza_file(text: &str) -> TempFile {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "gostack-nosplit-test-{}-{n}.txt",
        std::process::id()
    ));
    std::fs::write(&path, text).unwrap();
    TempFile(path)
}

#[cfg(feature = "go-oracle")]
const ARCHES: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mipsle", "mips64", "mips64le", "ppc64",
    "ppc64le", "riscv64", "s390x",
];

#[cfg(feature = "go-oracle")]
#[test]
fn check_passes_on_gos_own_table_for_every_arch() {
    for release in ["1.19", "1.23"] {
        let path = table(release);
        let path = path.to_str().unwrap();
        for arch in ARCHES {
            let (code, out, err) = gostack(&[
                "nosplit",
                "--check",
                "--goarch",
                arch,
                "--release",
                release,
                path,
            ]);
            assert_eq!(code, 0, "go{release} {arch}: {err}\n{out}");
            assert!(
                err.starts_with("71 stanzas on ")
                    && err.ends_with(", 0 differ from their REJECT lines\n"),
                "{err}"
            );
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines.len(), 71, "go{release} {arch}");
            for (i, l) in lines.iter().enumerate() {
                assert!(l.starts_with(&format!("stanza {}: ", i + 1)), "{l}");
                assert!(!l.contains("MISMATCH"), "{l}");
            }
        }
    }
}

#[test]
fn one_line_per_stanza_in_the_files_order() {
    let f = stanza_file(
        "# a comment\nstart 0\n\nstart 96 nosplit\nstart 128 nosplit; REJECT\nstart 100 nosplit\n\
         start 0 call f\nf 0 nosplit call f\nREJECT\nstart 96 nosplit callind\nstart 0 call nothere\n",
    );
    let (code, out, err) = gostack(&["nosplit", f.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "stanza 1: accept\n\
         stanza 2: accept\n\
         stanza 3: reject: start +808 (808): 16 bytes over limit (limit 792)\n\
         stanza 4: skip: start's frame size 100 is 4 more than a multiple of 8, which test/nosplit.go skips on amd64\n\
         stanza 5: reject: f +688 (688) -> f: infinite cycle (limit 792)\n\
         stanza 6: accept\n\
         stanza 7: reject: build fails: start calls nothere, which is not defined\n"
    );
    // On 386 nothing is skipped, and the limit is 800 - 4.
    let (code, out, _) = gostack(&["nosplit", "--goarch", "386", f.path().to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("stanza 4: accept\n"), "{out}");
    assert!(
        out.contains("stanza 3: reject: start +800 (800): 4 bytes over limit (limit 796)\n"),
        "{out}"
    );
}

#[test]
fn race_and_release_move_the_limit() {
    let f = stanza_file("start 800 nosplit\n");
    let path = f.path().to_str().unwrap();
    let (_, out, _) = gostack(&["nosplit", path]);
    assert!(out.starts_with("stanza 1: reject"), "{out}");
    // Go 1.23 doubles the budget for race builds; Go 1.19 does not.
    let (_, out, _) = gostack(&["nosplit", "--race", path]);
    assert_eq!(out, "stanza 1: accept\n");
    let (_, out, _) = gostack(&["nosplit", "--race", "--release", "1.19", path]);
    assert!(out.starts_with("stanza 1: reject"), "{out}");
}

#[test]
fn check_exits_1_on_a_mismatch() {
    let f = stanza_file("start 0\nstart 96 nosplit; REJECT amd64\nstart 128 nosplit; REJECT 386\n");
    let (code, out, err) = gostack(&["nosplit", "--check", f.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        err,
        "3 stanzas on 1.23/amd64: 2 accept, 1 reject, 0 skipped, 2 differ from their REJECT lines\ngostack: 2 stanzas differ from their REJECT lines\n"
    );
    assert!(
        out.contains("stanza 2: accept MISMATCH: the table (line 2) expects reject\n"),
        "{out}"
    );
    assert!(out.contains("stanza 3: reject: "), "{out}");
    assert!(
        out.contains("MISMATCH: the table (line 3) expects accept"),
        "{out}"
    );
    // Without --check the same file is just printed.
    let (code, _, _) = gostack(&["nosplit", f.path().to_str().unwrap()]);
    assert_eq!(code, 0);
}

/// Bad input: status 2, nothing on stdout, one line on stderr that names
/// what is wrong and what is accepted.
fn fails(args: &[&str], contains: &[&str]) {
    let (code, out, err) = gostack(args);
    assert_eq!(code, 2, "{args:?}: {err}{out}");
    assert!(out.is_empty(), "{args:?}: {out}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.starts_with("gostack: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for c in contains {
        assert!(err.contains(c), "{args:?}: {err} lacks {c}");
    }
}

#[test]
fn malformed_input_names_the_line() {
    let cases: &[(&str, &[&str])] = &[
        (
            "start 0\nstart 0 bogus\n",
            &["line 2", "\"bogus\"", "accepted: call NAME, callind"],
        ),
        (
            "start 0\n\nstart\n",
            &["line 3", "not a function line", "accepted: name size"],
        ),
        ("start 6 nosplit\n", &["line 1", "not a multiple of 4"]),
        (
            "start 99999999999999999999\n",
            &["line 1", "too large", "accepted: 0 to 2147483647"],
        ),
        (
            "start 0 call main\n",
            &["line 1", "call main is not modeled"],
        ),
        (
            "# c\nstart 0; func 0\n",
            &["line 2", "\"func\" cannot name a Go function", "accepted"],
        ),
        ("start 0 call  f\n", &["line 1", "accepted"]),
    ];
    for (text, want) in cases {
        let f = stanza_file(text);
        fails(&["nosplit", f.path().to_str().unwrap()], want);
    }
}

#[test]
fn bad_options_and_files() {
    let f = stanza_file("start 0\n");
    let path = f.path().to_str().unwrap();
    fails(
        &["nosplit", "--goarch", "wasm", path],
        &[
            "--goarch wasm --release 1.23: linux/wasm is not a Go 1.23 port",
            "accepts: 386",
        ],
    );
    fails(
        &["nosplit", "/nonexistent/stanzas"],
        &["cannot read /nonexistent/stanzas"],
    );
    let bin = stanza_file("");
    std::fs::write(bin.path(), [b's', 0xff, 0xfe, b'\n']).unwrap();
    fails(
        &["nosplit", bin.path().to_str().unwrap()],
        &["not UTF-8", "accepted"],
    );
}

/// Where Go's linker may report nothing and link the program
/// (`Report::may_report_nothing`: every over-limit function is called by
/// another), the verdict says so and `--check` accepts the stanza with or
/// without a REJECT line; the summary on stderr counts it.
#[test]
fn a_stanza_go_may_also_link_is_flagged_and_either_outcome_checks() {
    let cycle =
        "start 768 nosplit call f1 call start call f1; f1 0 nosplit call start call f1 call start";
    let f = stanza_file(&format!("{cycle}\nREJECT\n\n{cycle}\n\nstart 0\nREJECT\n"));
    let p = f.path().to_str().unwrap();
    let (code, out, err) = gostack(&["nosplit", "--check", p]);
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    for l in &lines[..2] {
        assert!(
            l.contains(": reject: ") && l.ends_with("(Go's linker may also link it: every function over the limit is called by another, and its report can come out empty)"),
            "{l}"
        );
        assert!(!l.contains("MISMATCH"), "{l}");
    }
    assert!(lines[2].contains("MISMATCH"), "{}", lines[2]);
    assert!(
        err.contains("3 stanzas on 1.23/amd64: 1 accept, 2 reject (2 of them may also link), 0 skipped, 1 differ from their REJECT lines"),
        "{err}"
    );
}

/// `--help` explains the stanza format.
#[test]
fn help_explains_the_stanza_format() {
    let (code, out, _) = gostack(&["nosplit", "--help"]);
    assert_eq!(code, 0);
    for part in ["call f", "callind", "REJECT", "nosplit", "`;`", "start"] {
        assert!(out.contains(part), "{part}: {out}");
    }
}
