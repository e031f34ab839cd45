//! Output to a reader that has gone, as in `gostack ... | head -1`: the
//! commands end quietly with status 0, never with a panic message.

use gostack_models::harness::Case;
use gostack_models::op::{Op, SizeSel, Who};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};

/// Runs gostack with its stdout a socket whose other end is already
/// closed, so that its first write fails with a broken pipe. Returns the
/// exit status and stderr.
fn to_closed_stdout(args: &[&str]) -> (i32, String) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    drop(ours);
    let out = Command::new(env!("CARGO_BIN_EXE_gostack"))
        .args(args)
        .stdout(Stdio::from(OwnedFd::from(theirs)))
        .stderr(Stdio::piped())
        .output()
        .expect("run gostack");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gostack-pipes-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let dir = scratch("closed");
    let case = Case {
        profile: "linux/amd64/1.23".into(),
        ops: (0..2000u32)
            .map(|i| Op::Alloc(Who::P(0), SizeSel::Order((i % 4) as u8)))
            .collect(),
    };
    let replay = dir.join("case.json");
    std::fs::write(&replay, serde_json::to_string(&case).unwrap()).unwrap();
    let stanzas = dir.join("stanzas.txt");
    std::fs::write(&stanzas, "start 0\n".repeat(500)).unwrap();
    let out = dir.join("out");
    for args in [
        vec!["conform", "--replay", replay.to_str().unwrap()],
        vec![
            "conform",
            "--cases",
            "2",
            "--seed",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
        vec!["consts"],
        vec!["consts", "--all"],
        vec!["consts", "--all", "--json"],
        vec![
            "split",
            "--framesize",
            "5000",
            "--sp",
            "0x8000",
            "--guard",
            "0",
        ],
        vec!["nosplit", stanzas.to_str().unwrap()],
    ] {
        let (code, err) = to_closed_stdout(&args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
    }
}
