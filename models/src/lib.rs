//! # gostack-models: checking the implementation against the spec
//!
//! One operation language, one comparison, several drivers (docs/ARCHITECTURE.md
//! section 6), and an allocator-level layer under them that checks any
//! stack allocator against the spec's ([`alloc`]):
//! - [`op`]: `enum Op`, every operation of the spec's API (allocator, GC,
//!   goroutines, channels), naming objects by index into what is live,
//!   with `Arbitrary` for libFuzzer and serde for JSON reproducers;
//! - [`gen`]: proptest strategies that reach every path of the spec;
//! - [`machine`]: the spec's API as a trait, implemented by
//!   `gostack_spec::State` and `gostack::Runtime`;
//! - [`harness`]: [`harness::Harness::step`] applies an op to both,
//!   compares results and snapshots, checks the spec's invariants, and
//!   reports a divergence with its reproducer and every differing field;
//! - [`driver`]: running cases, minimizing divergences, coverage tables;
//! - [`conc`]: the spec's judgement of runs of the impl's concurrent
//!   goroutine layer (`gostack::Sched`): replay of its copies, adjusted
//!   frames;
//! - [`emu`]: an emulator for the split-check instruction listings of
//!   `gostack_spec::guard`, the independent side of the split-check
//!   property tests and fuzz target.
//!
//! # Example
//! Generate a random case, run it on the spec and the implementation in
//! step, and show what the spec reached:
//! ```
//! use gostack_models::{driver, gen, Coverage};
//!
//! let case = gen::case(42, &["linux/amd64/1.23".to_string()], 100);
//! match driver::run_case::<gostack::Runtime>(&case, false) {
//!     Ok(ran) => println!("{} ops agreed", ran.ops),
//!     Err(Ok(divergence)) => panic!("{divergence}"),
//!     Err(Err(setup)) => panic!("{setup}"),
//! }
//! let mut cov = Coverage::default();
//! cov.take_thread();
//! assert!(cov.table().starts_with("coverage: "));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alloc;
pub mod conc;
pub mod driver;
pub mod emu;
pub mod gen;
pub mod harness;
pub mod machine;
pub mod memory;
pub mod op;

pub use driver::{minimize, run_case, Coverage};
pub use harness::{Case, Divergence, Harness, PROFILES};
pub use machine::Machine;
pub use op::Op;
