//! `gostack nosplit`: stanzas in the format of Go's test/nosplit.go, run
//! through the spec's model of the assembler and the linker's nosplit check.

use gostack_spec::nosplit::{read_stanzas, StanzaOutcome, Verdict, NOSPLIT_ARCHES};
use gostack_spec::{Goarch, Goos, Invalid, Profile, Release};

/// What the command prints, and whether `--check` found a stanza whose
/// verdict differs from its REJECT line.
pub struct Run {
    /// One line per stanza, in the file's order.
    pub text: String,
    /// The summary line (for stderr): stanzas, accepted, rejected (and how
    /// many of those Go's linker may also link), skipped, mismatches.
    pub summary: String,
    /// How many stanzas disagree with the table (only with `--check`).
    pub mismatches: usize,
}

/// Reads `path` (a stanza file, or Go's test/nosplit.go itself) and runs
/// every stanza on linux/`goarch`, as that test does. `Err` is a one-line
/// message for exit status 2.
pub fn run(
    goarch: Goarch,
    race: bool,
    release: Release,
    check: bool,
    path: &str,
) -> Result<Run, String> {
    let profile = Profile::new(Goos::Linux, goarch, race, release).map_err(|t| {
        format!(
            "--goarch {} --release {}: {t}",
            goarch.name(),
            release.name()
        )
    })?;
    if !NOSPLIT_ARCHES.contains(&profile.goarch) {
        return Err(format!(
            "--goarch {}: {}",
            goarch.name(),
            Invalid::NosplitNotModeled(goarch.name())
        ));
    }
    let file = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let file = String::from_utf8(file).map_err(|e| {
        format!(
            "{path} is not UTF-8 text (byte {}); accepted: a text file of stanzas",
            e.utf8_error().valid_up_to()
        )
    })?;
    let stanzas = read_stanzas(&file).map_err(|t| format!("{path}: {t}"))?;
    let mut text = String::new();
    let mut mismatches = 0;
    let (mut accepted, mut rejected, mut either, mut skipped) = (0, 0, 0, 0);
    for (i, s) in stanzas.iter().enumerate() {
        let n = i + 1;
        let outcome = s
            .check(&profile)
            .map_err(|t| format!("{path}: stanza {n} (line {}): {t}", s.line))?;
        let verdict = match outcome {
            StanzaOutcome::Skipped { func, size } => {
                text += &format!(
                    "stanza {n}: skip: {func}'s frame size {size} is 4 more than a multiple of 8, which test/nosplit.go skips on {}\n",
                    profile.goarch.name()
                );
                skipped += 1;
                continue;
            }
            StanzaOutcome::NothingToBuild => {
                text += &format!(
                    "stanza {n}: skip: no functions, and the REJECT line does not name {}\n",
                    profile.goarch.name()
                );
                skipped += 1;
                continue;
            }
            StanzaOutcome::Ran(v) => v,
        };
        // Go's linker reports nothing for some over-limit graphs in some
        // runs, and links the program then (Report::may_report_nothing).
        let uncertain = matches!(&verdict, Verdict::Reject(r) if r.may_report_nothing);
        text += &format!("stanza {n}: {verdict}");
        if uncertain {
            text += " (Go's linker may also link it: every function over the limit is called by another, and its report can come out empty)";
            either += 1;
        }
        if verdict.rejects() {
            rejected += 1;
        } else {
            accepted += 1;
        }
        if check {
            let want = s.expects_reject(profile.goarch);
            if verdict.rejects() != want && !uncertain {
                mismatches += 1;
                text += &format!(
                    " MISMATCH: the table (line {}) expects {}",
                    s.line,
                    if want { "reject" } else { "accept" }
                );
            }
        }
        text += "\n";
    }
    let mut summary = format!(
        "{} stanzas on {}/{}: {accepted} accept, {rejected} reject",
        stanzas.len(),
        release.name(),
        profile.goarch.name()
    );
    if either > 0 {
        summary += &format!(" ({either} of them may also link)");
    }
    summary += &format!(", {skipped} skipped");
    if check {
        summary += &format!(", {mismatches} differ from their REJECT lines");
    }
    Ok(Run {
        text,
        summary,
        mismatches,
    })
}
