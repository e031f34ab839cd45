//! ops: arbitrary bytes become a case (a profile and up to 64 ops of the
//! models crate's operation language, through `Arbitrary`), run on the
//! spec and the implementation in step by the models harness. A result,
//! throw, `snapshot()` or `world()` that differs, a failed op that changed
//! the state, a broken spec invariant, or a panic is a crash; the panic
//! message is the divergence report with its JSON reproducer (replay it
//! with `gostack conform` or the models tests).
//!
//! Input layout: byte 0 picks one of `gostack_models::PROFILES`, the rest
//! is decoded op by op (`gostack_models::driver::case_from_bytes`).
#![no_main]

use gostack_models::driver::case_from_bytes;
use gostack_models::Harness;
use libfuzzer_sys::fuzz_target;

/// Ops per input: enough for a parked goroutine to be grown, shrunk and
/// woken, few enough to keep the snapshots cheap.
const MAX_OPS: usize = 64;

fuzz_target!(|data: &[u8]| {
    let case = case_from_bytes(data, MAX_OPS);
    let mut h: Harness<gostack::Runtime> = match Harness::new(&case.profile) {
        Ok(h) => h,
        Err(e) => panic!("{}: the prelude failed: {e}", case.profile),
    };
    for op in case.ops {
        if let Err(d) = h.step(op) {
            panic!("spec and impl diverged:\n{d}");
        }
        if h.dead().is_some() {
            // A Go throw is fatal: the case ends here.
            break;
        }
    }
});
