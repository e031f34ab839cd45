//! Loom model 2 (docs/ARCHITECTURE.md section 6): stack frees during a GC against
//! `freeStackSpans` (golang/go#11267).
//!
//! A GC thread starts a cycle (`gc_start`), reads pointers into two stacks
//! (a pool stack alone in its span, and a large stack) to mark later
//! (`gc_mark_read`), then ends the cycle as Go does: mark termination marks
//! what it read (`gc_mark_termination`: each pointer must still point into
//! a stack span), the phase goes off (`gc_off`), and `freeStackSpans`
//! returns the spans kept during the cycle. Meanwhile another thread frees
//! both stacks, as `copystack` frees a goroutine's old stack, without a P
//! (straight to the pool, and to stackLarge or the heap). Loom runs every
//! interleaving of the locks and the GC phase within the preemption bound.
//!
//! Properties, for every interleaving: a read fails only if the stack was
//! already freed before marking began (its span went back to the heap);
//! every read that succeeded is still a stack span when mark termination
//! marks it (an empty pool span, or a large stack, freed while the GC
//! marks must not go back to the heap, where it could become an object
//! span: golang/go#11267); every other GC step and every free succeeds;
//! afterwards every page is back in the heap and nothing is counted in use,
//! and nothing waits in stackLarge.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release -p gostack-models
//! --test loom_gc -- --nocapture` (ci/loom.sh). `LOOM_MAX_PREEMPTIONS` sets
//! the bound (default 3). Without `cfg(loom)` this file is empty.
#![cfg(loom)]

mod common;

use gostack::Stacks;
use gostack_spec::{Config, GcPhase, Profile};
use loom::sync::Arc;
use std::sync::atomic::Ordering;

fn config() -> Config {
    let mut c = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
    c.arena_bytes = 4 << 20;
    c
}

fn model() {
    let stacks = Arc::new(Stacks::new(&config()).unwrap());
    // A 2 KiB stack alone in its pool span, and a 64 KiB (large) stack.
    let small = stacks.stackalloc(None, false, 2048).unwrap();
    let large = stacks.stackalloc(None, false, 64 << 10).unwrap();
    // How many frees the copier has begun.
    let started = Arc::new(loom::sync::atomic::AtomicUsize::new(0));

    let gc = {
        let (stacks, started) = (stacks.clone(), started.clone());
        loom::thread::spawn(move || {
            stacks.gc_start().unwrap();
            // A free not begun by now runs during marking.
            let before = started.load(Ordering::SeqCst);
            let m1 = stacks.gc_mark_read(small.lo + 64);
            let m2 = stacks.gc_mark_read(large.hi - 64);
            // A read of a stack whose free began after marking began must
            // succeed (its span stays a stack span until freeStackSpans).
            if before < 1 {
                assert!(m1.is_ok(), "reading a pointer into the small stack: {m1:?}");
            }
            if before < 2 {
                assert!(m2.is_ok(), "reading a pointer into the large stack: {m2:?}");
            }
            let marked = stacks.gc_mark_termination();
            assert_eq!(marked, Ok(()), "the marker no longer finds a stack span");
            stacks.gc_off().unwrap();
            stacks.free_stack_spans().unwrap();
        })
    };
    let copier = {
        let (stacks, started) = (stacks.clone(), started.clone());
        loom::thread::spawn(move || {
            started.store(1, Ordering::SeqCst);
            stacks.stackfree(None, false, small).unwrap();
            started.store(2, Ordering::SeqCst);
            stacks.stackfree(None, false, large).unwrap();
        })
    };
    gc.join().unwrap();
    copier.join().unwrap();

    let snap = stacks.snapshot(&[]);
    assert_eq!(snap.gcphase, GcPhase::Off);
    assert!(!snap.spans_pending_free);
    assert!(snap.spans.is_empty(), "spans left: {:?}", snap.spans);
    assert!(snap.stack_large.is_empty());
    assert!(snap.in_use.is_empty());
    assert_eq!(snap.stats.stack_inuse, 0);
    assert_eq!(snap.free_runs, vec![(0, snap.stats.mapped_bytes / 8192)]);
}

#[test]
fn frees_during_gc_against_free_stack_spans() {
    common::explore("loom_gc", model);
}
