//! `gostack nosplit`: stanzas in the format of Go's test/nosplit.go, run
//! through the spec's model of the assembler and the linker's nosplit check.

use gostack_spec::nosplit::{read_stanzas, StanzaOutcome, NOSPLIT_ARCHES};
use gostack_spec::{Goarch, Goos, Invalid, Profile, Release};

/// What the command prints, and whether `--check` found a stanza whose
/// verdict differs from its REJECT line.
pub struct Run {
    /// One line per stanza, in the file's order.
    pub text: String,
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
                continue;
            }
            StanzaOutcome::NothingToBuild => {
                text += &format!(
                    "stanza {n}: skip: no functions, and the REJECT line does not name {}\n",
                    profile.goarch.name()
                );
                continue;
            }
            StanzaOutcome::Ran(v) => v,
        };
        text += &format!("stanza {n}: {verdict}");
        if check {
            let want = s.expects_reject(profile.goarch);
            if verdict.rejects() != want {
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
    Ok(Run { text, mismatches })
}
