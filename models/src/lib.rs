//! # gostack-models: checking the implementation against the spec
//!
//! This crate will hold the operation language (`enum Op`), the one
//! comparison of spec and impl, and its proptest, libFuzzer and loom drivers
//! (see `DESIGN.md` section 6 and the models issue).
//!
//! What it holds today:
//! - [`emu`]: an emulator for the split-check instruction listings of
//!   `gostack_spec::guard`, the independent side of the split-check property
//!   tests (and of the future `split_check` fuzz target).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod emu;
