//! Checking a third-party stack allocator against the spec, as a user's
//! `cargo test` would: `cargo run -p gostack-models --example
//! third_party_allocator` checks the simple segregated-list allocator of
//! `seglist/mod.rs` in behavioural mode (it passes), then the same with its
//! seeded bug (the harness finds it and prints the shrunk case).
//! `models/tests/third_party.rs` runs the same checks in CI.

#[path = "seglist/mod.rs"]
mod seglist;

use gostack_models::alloc::{check_allocator, Equality};
use gostack_spec::{Config, Profile};

fn main() {
    let mut config = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
    config.arena_bytes = 256 << 20;
    let good = check_allocator(
        &config,
        |c| seglist::SegList::new(c, seglist::Bug::None),
        Equality::Behavioural,
        256,
        200,
    );
    match good {
        Ok(()) => println!("seglist: passes 256 cases in behavioural mode"),
        Err(e) => println!("seglist: FAILED\n{e}"),
    }
    match check_allocator(
        &config,
        |c| seglist::SegList::new(c, seglist::Bug::AcceptsBadFrees),
        Equality::Behavioural,
        256,
        200,
    ) {
        Ok(()) => println!("seglist with its seeded bug: not found (it should be)"),
        Err(e) => println!("seglist with its seeded bug: found\n{e}"),
    }
}
