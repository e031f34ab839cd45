//! Every synchronization type the crate uses, from one place, so that a
//! `cfg(loom)` build can swap them for loom's (docs/ARCHITECTURE.md section 4).
//!
//! Under `cfg(loom)` (`RUSTFLAGS="--cfg loom"`, ci/loom.sh) the locks and
//! the atomics that order the allocator's shared state (the GC phase, P
//! ids) are loom's, so loom's model checker explores their interleavings.
//! Memory that lives in mapped pages (the span table, the words of the
//! arena) keeps std atomics: it is only ever reached through the locks and
//! the phase that loom does model, and loom cannot track millions of words.
//! loom's types exist only inside `loom::model`: a loom build's
//! [`crate::Stacks`] must be created inside the model closure.

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: every critical section of this crate
/// leaves its data consistent before anything that could panic, and no
/// input makes it panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
