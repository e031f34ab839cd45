//! Divergences `gostack conform` found, kept as minimized reproducers in
//! `tests/reproducers/*.json` (the format `gostack conform --replay`
//! reads) and replayed on the impl against the spec: each must now run
//! to its end, or to a Go throw both sides die of (a throw is fatal),
//! with equal results and snapshots at every step.
//!
//! - `spawn_frees_wrong_size_stack_near_oom` (2026-12-02, windows/386):
//!   gfget drops a dead goroutine's stack of the wrong size before malg
//!   allocates; in a nearly full arena the impl's allocation predictor
//!   ignored the memory that free returns and refused a spawn the spec
//!   made. (The predictor is gone since Go's throws are fatal; the case
//!   now ends at its out of memory.)
//! - `efence-nosplit-entry-on-a-page-rounded-stack` (2026-12-03): the
//!   entry of a NOSPLIT function on a page-rounded stack from the system.
//! - `fatal-create-m-refused-before-freeing-the-reaped-g0-stacks`
//!   (2026-12-03, when throws became fatal): `allocm` on a P that does not
//!   exist must be refused before it frees exited Ms' g0 stacks.
//! - `fatal-spawn-refusals-in-newproc-order` (2026-12-03): a spawn whose
//!   NOSPLIT entry does not fit is refused as such only after newproc's
//!   own refusals (here: no such P).

use gostack::Runtime;
use gostack_models::driver;
use gostack_models::harness::Case;

#[test]
fn conform_reproducers_replay_without_divergence() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reproducers");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no reproducers in {}", dir.display());
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable");
        let case: Case = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not a reproducer: {e}", f.display()));
        match driver::replay::<Runtime>(&case, |_, _, _| {}) {
            Ok(ran) => assert!(
                ran.ops as usize == case.ops.len() || ran.died.is_some(),
                "{}: stopped after {} ops",
                f.display(),
                ran.ops
            ),
            Err(Ok(d)) => panic!("{}: {d}", f.display()),
            Err(Err(msg)) => panic!("{}: {msg}", f.display()),
        }
    }
}
