//! Every synchronization type the crate uses, from one place, so that a
//! `cfg(loom)` build can swap them for loom's (DESIGN.md section 4).

pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: every critical section of this crate
/// leaves its data consistent before anything that could panic, and no
/// input makes it panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
