//! The allocator-level harness (`gostack_models::alloc`) as a third party
//! uses it: the segregated-list allocator of `models/examples/seglist`
//! passes in behavioural mode, each of its seeded bugs is found and shrunk,
//! Go-exact mode holds for the implementation and needs a snapshot, and
//! the spec passes against itself in both modes.

#[path = "../examples/seglist/mod.rs"]
mod seglist;

use gostack_models::alloc::{check_allocator, run_alloc_case, AllocOp, Equality};
use gostack_spec::{Config, Profile, State};
use seglist::{Bug, SegList};

fn config(arch: &str, release: &str) -> Config {
    let mut c = Config::new(Profile::parse("linux", arch, false, release).unwrap());
    c.arena_bytes = 256 << 20;
    c
}

#[test]
fn a_correct_allocator_of_another_design_passes_in_behavioural_mode() {
    for (arch, release) in [("amd64", "1.23"), ("386", "1.19")] {
        let c = config(arch, release);
        check_allocator(
            &c,
            |c| SegList::new(c, Bug::None),
            Equality::Behavioural,
            128,
            200,
        )
        .unwrap_or_else(|e| panic!("{arch}/{release}: {e}"));
    }
}

#[test]
fn a_bad_free_bug_is_found_and_shrunk() {
    let c = config("amd64", "1.23");
    let e = check_allocator(
        &c,
        |c| SegList::new(c, Bug::AcceptsBadFrees),
        Equality::Behavioural,
        128,
        200,
    )
    .expect_err("the seeded bug must be found");
    assert!(e.message.contains("the candidate succeeded"), "{e}");
    assert!(e.ops.len() <= 12, "not shrunk: {e}");
    assert!(matches!(e.ops.last(), Some(AllocOp::BadFree { .. })), "{e}");
    // The shrunk case replays to the same failure.
    let again = run_alloc_case(
        &c,
        |c| SegList::new(c, Bug::AcceptsBadFrees),
        Equality::Behavioural,
        &e.ops,
    );
    assert_eq!(again, Err(e.message.clone()));
}

#[test]
fn a_leak_is_found() {
    let c = config("amd64", "1.23");
    let e = check_allocator(
        &c,
        |c| SegList::new(c, Bug::Leaks),
        Equality::Behavioural,
        128,
        200,
    )
    .expect_err("the leak must be found");
    assert!(e.message.contains("memory was lost"), "{e}");
    assert!(e.ops.len() <= 4, "not shrunk: {e}");
}

#[test]
fn go_exact_mode() {
    let c = config("amd64", "1.23");
    // The implementation is Go's allocator, exactly.
    check_allocator(
        &c,
        |c| gostack::Runtime::new(c.clone()).unwrap(),
        Equality::GoExact,
        64,
        200,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // The spec against itself, in both modes.
    let spec = |c: &Config| State::new(c.clone()).unwrap();
    check_allocator(&c, spec, Equality::GoExact, 32, 100).unwrap();
    check_allocator(&c, spec, Equality::Behavioural, 32, 100).unwrap();
    // Another design has no Go snapshot: Go-exact mode says so.
    let e = check_allocator(&c, |c| SegList::new(c, Bug::None), Equality::GoExact, 8, 20)
        .expect_err("seglist is not Go's allocator");
    assert!(
        e.message.contains("needs StackAllocator::go_snapshot"),
        "{e}"
    );
}
