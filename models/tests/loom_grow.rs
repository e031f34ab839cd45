//! Loom model 5 (docs/ARCHITECTURE.md section 6): a goroutine grows its stack while
//! a GC worker tries to scan and shrink it.
//!
//! One thread is the goroutine: it grows its stack (`gostack::Sched::grow`:
//! newstack's status `COPYSTACK` around copystack, to twice the size), then
//! parks. The other is a GC worker retrying `Sched::scan` (suspendG,
//! scanstack, shrinkstack) until it has scanned the goroutine; suspendG
//! must not take a goroutine whose stack is being copied.
//!
//! Properties, for every interleaving
//! (`gostack_models::conc::check_growth_vs_scan`): the worker saw a whole stack, never
//! a half-copied one (the bounds it read are one of the goroutine's
//! stacks, SP is that stack's, and the frame words it read are the frame
//! as adjusted for that stack); it then shrank the grown stack back; the
//! final frame is the spec's adjustpointers over both copies, and the
//! allocator's end state equals the spec's replay, whose invariants hold.
//!
//! Mutant: `scan_during_copystack` (suspendG takes a goroutine in
//! `COPYSTACK`). Run: `RUSTFLAGS="--cfg loom" cargo test --release -p
//! gostack-models --test loom_grow -- --nocapture` (ci/loom.sh);
//! `LOOM_MAX_PREEMPTIONS` sets the bound (default 3).
#![cfg(loom)]

mod common;

use gostack_models::conc::{check_growth_vs_scan, config, setup};
use loom::sync::Arc;

fn model() {
    let config = config();
    let (sched, gor) = setup(&config, 2048);
    let sched = Arc::new(sched);
    let g = gor.g;

    let goroutine = {
        let sched = sched.clone();
        loom::thread::spawn(move || {
            let grown = sched.grow(g).unwrap();
            sched.park(g).unwrap();
            grown
        })
    };
    let worker = {
        let sched = sched.clone();
        loom::thread::spawn(move || loop {
            if let Some(r) = sched.scan(g).unwrap() {
                return r;
            }
            loom::thread::yield_now();
        })
    };
    let grown = goroutine.join().unwrap();
    let report = worker.join().unwrap();
    check_growth_vs_scan(&config, &sched, &gor, grown, &report);
}

#[test]
fn growth_against_a_concurrent_scan() {
    common::explore("loom_grow", model);
}
