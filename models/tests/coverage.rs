//! Coverage of the spec by the default generation: every branch the spec
//! records (`gostack_spec::coverage::BRANCHES`) and every Go throw a valid
//! run can reach (`REACHABLE_GO_THROWS`) must be reached by the
//! differential driver's own generator ([`gostack_models::gen`]) at its
//! default size: the same 256 cases of up to 300 ops over the eight
//! profiles as `tests/differential.rs` (seeds 0..256, run on the spec
//! alone, since the counts are the spec's). The test fails listing
//! anything left unreached, and prints the table.

use gostack_models::{driver, gen, Coverage};
use gostack_spec::State;

/// Cases and ops per case, as the differential test's defaults.
const CASES: u64 = 256;
const MAX_OPS: usize = 300;

#[test]
fn default_generation_reaches_every_branch_and_throw() {
    gostack_spec::coverage::take();
    let mut cov = Coverage::default();
    let mut ops = 0;
    for seed in 0..CASES {
        let case = gen::case(seed, &[], MAX_OPS);
        match driver::run_case::<State>(&case, true) {
            Ok(r) => ops += r.ops,
            Err(Ok(d)) => panic!("the spec alone failed: {d}"),
            Err(Err(e)) => panic!("{e}"),
        }
        cov.take_thread();
    }
    eprintln!("{CASES} cases, {ops} ops\n{}", cov.table());
    let missing = cov.unreached();
    assert!(
        missing.is_empty(),
        "unreached by {CASES} cases of the default generation: {missing:#?}"
    );
}
