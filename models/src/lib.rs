//! # gostack-models: checking the implementation against the spec (not written yet)
//!
//! This crate will hold the operation language (`enum Op`), the one
//! comparison of spec and impl, and its proptest, libFuzzer and loom drivers
//! (see `DESIGN.md` section 6 and the models issue). It exposes nothing yet.
#![forbid(unsafe_code)]
