//! # gostack: the real-memory Go stack system (not written yet)
//!
//! This crate will hold the optimized implementation of the stack system
//! that `gostack-spec` specifies: one memmap2 arena, intrusive free lists,
//! per-P caches, real copying and pointer adjustment (see `DESIGN.md`
//! section 4 and the impl issue). Until then it exposes nothing, so that no
//! caller can mistake it for a working allocator.
#![deny(unsafe_op_in_unsafe_fn)]
