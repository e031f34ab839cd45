//! Coverage of the spec by the default generation: every branch the spec
//! records (`gostack_spec::coverage::BRANCHES`) and every Go throw a valid
//! run can reach (`REACHABLE_GO_THROWS`) must be reached by the
//! differential driver's own generator ([`gostack_models::gen`]) at its
//! default case size: 1024 cases of up to 300 ops over the profiles
//! (seeds 0..1024, four times the differential test's 256, run on the
//! spec alone, since the counts are the spec's). A Go throw ends its case,
//! and each case can reach only one, so the rare throws need the larger
//! count. The test fails listing anything left unreached, and prints the
//! table.

use gostack_models::{driver, gen, Coverage};
use gostack_spec::State;

/// Cases (four times the differential test's) and ops per case (its
/// default).
const CASES: u64 = 1024;
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
