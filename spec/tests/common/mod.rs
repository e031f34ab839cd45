//! Finding and running the Go toolchains that serve as oracles.
//!
//! The tests use Debian's packaged toolchains: Go 1.19 from bookworm and
//! Go 1.23 from bookworm-backports, installed under `/usr/lib/go-1.NN`.
//! `GOSTACK_GO_1_19` / `GOSTACK_GO_1_23` name another GOROOT. A missing
//! toolchain fails the test with the command that installs it; it never
//! skips.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The GOROOT of a release (`"1.19"` or `"1.23"`), or a panic that says how
/// to install it.
pub fn goroot(release: &str) -> PathBuf {
    let var = format!("GOSTACK_GO_{}", release.replace('.', "_"));
    let root = std::env::var_os(&var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/usr/lib/go-{release}")));
    let go = root.join("bin/go");
    if !go.exists() || !root.join("src/runtime/stack.go").exists() {
        let pkgs = format!("golang-{release}-go golang-{release}-src");
        let how = if release == "1.19" {
            format!("apt-get install {pkgs}")
        } else {
            format!("add bookworm-backports to the Debian sources, then apt-get install -t bookworm-backports {pkgs}")
        };
        panic!(
            "Go {release} is needed as an oracle but {} is missing.\n\
             Install it with `ci/install-go.sh` (as root: {how}),\n\
             or point {var} at a GOROOT holding bin/go and src/.",
            go.display()
        );
    }
    root
}

/// A `go` command of that release with a clean, hermetic environment.
pub fn go(release: &str, scratch: &std::path::Path) -> Command {
    let root = goroot(release);
    let mut cmd = Command::new(root.join("bin/go"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", scratch)
        .env("GOROOT", &root)
        .env("GOCACHE", scratch.join("gocache"))
        .env("GOPATH", scratch.join("gopath"))
        .env("GOFLAGS", "")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .current_dir(scratch);
    cmd
}

/// Runs a command and returns its stdout, or panics with its stderr.
pub fn output(mut cmd: Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}
