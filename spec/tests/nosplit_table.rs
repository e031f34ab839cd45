//! Go's own table of nosplit cases as a test of `spec::nosplit`.
//!
//! Reads `test/nosplit.go` of the installed Go 1.19 and Go 1.23 (the
//! `golang-1.NN-src` packages) and runs every stanza of its `tests` table on
//! every architecture that test knows (the arms of its GOARCH switch, 386
//! being its default), as that test runs them: the spec's verdict must be
//! the table's expectation for every stanza the test does not skip. There is
//! no list of exceptions.

mod common;

use gostack_spec::nosplit::{read_stanzas, stanza_text, StanzaOutcome};
use gostack_spec::{Goarch, Profile, Release};

/// Every GOARCH that test/nosplit.go's switch names, and its default (386).
const ARCHES: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mipsle", "mips64", "mips64le", "ppc64",
    "ppc64le", "riscv64", "s390x",
];

fn table(release: Release) -> String {
    let path = common::goroot(release.name()).join("test/nosplit.go");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; install golang-{}-src (ci/install-go.sh)",
            path.display(),
            release.name()
        )
    })
}

#[test]
fn the_harness_arches_are_the_modeled_ones() {
    let mut names: Vec<&str> = gostack_spec::nosplit::NOSPLIT_ARCHES
        .iter()
        .map(|a| a.name())
        .collect();
    names.sort_unstable();
    let mut want = ARCHES.to_vec();
    want.sort_unstable();
    assert_eq!(names, want);
    // And the test's own switch names exactly these (plus its default).
    for &release in Release::ALL {
        let src = table(release);
        for a in ARCHES.iter().filter(|a| **a != "386") {
            assert!(
                src.contains(&format!("\"{a}\"")),
                "go{} test/nosplit.go does not name {a}",
                release.name()
            );
        }
    }
}

#[test]
fn every_stanza_on_every_arch_matches_the_table() {
    let mut failures = Vec::new();
    let mut summary = Vec::new();
    for &release in Release::ALL {
        let file = table(release);
        let stanzas = read_stanzas(&file).unwrap_or_else(|e| panic!("go{}: {e}", release.name()));
        // Every "start" line begins a stanza; none is lost.
        let (text, _) = stanza_text(&file);
        let starts = text
            .lines()
            .filter(|l| l.replace('\t', " ").starts_with("start "))
            .count();
        assert_eq!(stanzas.len(), starts, "go{}: stanzas read", release.name());
        assert!(starts > 60, "go{}: only {starts} stanzas", release.name());
        for arch in ARCHES {
            let profile = Profile::parse("linux", arch, false, release.name()).unwrap();
            let (mut accepted, mut rejected, mut skipped) = (0, 0, 0);
            for (n, s) in stanzas.iter().enumerate() {
                let outcome = s.check(&profile).unwrap_or_else(|e| {
                    panic!("go{} {arch} stanza {}: {e}", release.name(), n + 1)
                });
                let verdict = match outcome {
                    StanzaOutcome::Ran(v) => v,
                    StanzaOutcome::Skipped { size, .. } => {
                        assert_eq!(size % 8, 4);
                        assert_eq!(profile.goarch.ptr_size(), 8);
                        skipped += 1;
                        continue;
                    }
                    StanzaOutcome::NothingToBuild => {
                        skipped += 1;
                        continue;
                    }
                };
                let want = s.expects_reject(profile.goarch);
                if verdict.rejects() {
                    rejected += 1;
                } else {
                    accepted += 1;
                }
                if verdict.rejects() != want {
                    failures.push(format!(
                        "go{} {arch} stanza {} (line {}): table says {}, spec says {verdict}",
                        release.name(),
                        n + 1,
                        s.line,
                        if want { "reject" } else { "accept" },
                    ));
                }
            }
            // The harness's own sanity check: both outcomes occur.
            assert!(accepted > 0 && rejected > 0, "go{} {arch}", release.name());
            if profile.goarch.ptr_size() == 4 {
                assert_eq!(skipped, 0, "go{} {arch}", release.name());
            } else {
                assert!(skipped > 0, "go{} {arch}", release.name());
            }
            summary.push(format!(
                "go{} {arch:8} {} stanzas: {accepted} accept, {rejected} reject, {skipped} skipped",
                release.name(),
                stanzas.len()
            ));
        }
    }
    println!("{}", summary.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The limits the table relies on, per architecture: the first nosplit
/// frame may reach exactly the limit (less what the assembler adds).
#[test]
fn the_table_boundary_is_the_linker_limit() {
    for &release in Release::ALL {
        for arch in ARCHES {
            let p = Profile::parse("linux", arch, false, release.name()).unwrap();
            let want = match p.goarch {
                Goarch::Amd64 => 800 - 8,
                Goarch::I386 => 800 - 4,
                Goarch::Arm64 => 800 - 8,
                _ => 800,
            };
            assert_eq!(
                p.linker_nosplit_limit(),
                want,
                "go{} {arch}",
                release.name()
            );
        }
    }
}
