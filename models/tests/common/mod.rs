//! Shared by the loom models (`models/tests/loom_*.rs`).

/// Explores every interleaving of `model` with loom at the preemption
/// bound `LOOM_MAX_PREEMPTIONS` (default 3), then prints
/// `NAME: N interleavings explored, preemption bound B, T s` (the line
/// `ci/loom.sh` reports).
pub fn explore(name: &str, model: fn()) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let bound = std::env::var("LOOM_MAX_PREEMPTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(bound);
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let start = std::time::Instant::now();
    builder.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        model();
    });
    println!(
        "{name}: {} interleavings explored, preemption bound {bound}, {:.1} s",
        runs.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
}
