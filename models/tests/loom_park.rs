//! Loom model 4 (docs/ARCHITECTURE.md section 6): a GC worker scans, and may shrink,
//! a goroutine that is parking on channels (golang/go#40641).
//!
//! One thread is the goroutine: it goes through a select's parking steps
//! (`gostack::Sched::park_on_chans`: lock both channels, enqueue sudogs
//! whose elem points into its stack, set parkingOnChan, go waiting, set
//! activeStackChans, clear parkingOnChan, unlock). The other is a GC worker
//! retrying `Sched::scan` (suspendG, isShrinkStackSafe, shrinkstack) until
//! it has scanned the goroutine. Between "waiting" and "activeStackChans"
//! the worker can take the goroutine while its sudogs are not under the
//! channel locks' protection; isShrinkStackSafe must refuse to shrink
//! then, or copystack adjusts the sudogs without the locks (Go throws
//! "racy sudog adjustment due to parking on channel").
//!
//! Properties, for every interleaving
//! (`gostack_models::conc::check_shrink_vs_parking`): every scan succeeds (no throw);
//! afterwards both sudogs point into the goroutine's current stack at
//! their slots, every frame word is what the spec's adjustpointers makes of
//! it over the copies made, the goroutine is waiting, and the allocator's
//! end state equals the spec's replay, whose invariants hold.
//!
//! Mutant: `shrink_while_parking` (isShrinkStackSafe ignores
//! parkingOnChan). Run: `RUSTFLAGS="--cfg loom" cargo test --release -p
//! gostack-models --test loom_park -- --nocapture` (ci/loom.sh);
//! `LOOM_MAX_PREEMPTIONS` sets the bound (default 3).
#![cfg(loom)]

mod common;

use gostack_models::conc::{cases, check_shrink_vs_parking, config, setup};
use loom::sync::Arc;

fn model() {
    let config = config();
    let (sched, gor) = setup(&config, 8192);
    let sched = Arc::new(sched);
    let g = gor.g;

    let parker = {
        let (sched, cases) = (sched.clone(), cases(&gor));
        loom::thread::spawn(move || sched.park_on_chans(g, &cases).unwrap())
    };
    let worker = {
        let sched = sched.clone();
        loom::thread::spawn(move || loop {
            match sched.scan(g) {
                Ok(Some(r)) => return r,
                Ok(None) => loom::thread::yield_now(),
                Err(e) => panic!("scanning the parking goroutine: {e}"),
            }
        })
    };
    parker.join().unwrap();
    let report = worker.join().unwrap();
    check_shrink_vs_parking(&config, &sched, &gor, &report);
}

#[test]
fn shrink_against_parking() {
    common::explore("loom_park", model);
}
