//! Pool churn: two threads, each on its own P, each allocating a burst of
//! 2 KiB stacks four times bigger than a P's cache (`_StackCacheSize`,
//! 32 KiB) and then freeing it, so that `stackcacherefill` and
//! `stackcacherelease` hit the order's pool lock from both threads at once
//! (and empty pool spans go back to the page heap under its lock, as Go's
//! `stackpoolfree` does with the GC off).
//!
//! Baselines in the same run, doing the same work:
//! - `one_thread_one_p`: both bursts on one thread and one P, one after the
//!   other (no contention, no parallelism);
//! - `mmap_munmap_two_threads`: the same bursts on two threads with one
//!   anonymous mapping per stack, touched once and unmapped (what coroutine
//!   crates commonly do).
//!
//! Each iteration is one burst of [`BURST`] alloc+free pairs on each of two
//! threads, so each benchmark's time per iteration covers `2 * BURST` pairs.
//! `ci/bench.sh` prints the ratios.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use gostack::{Stacks, P};
use gostack_spec::{Config, Profile, Stack};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Stacks per burst: 64 x 2 KiB = 128 KiB, four P caches' worth.
const BURST: usize = 64;
/// The stack size.
const SIZE: u64 = 2048;

fn stacks() -> Stacks {
    let mut c = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
    c.arena_bytes = 256 << 20;
    Stacks::new(&c).unwrap()
}

/// One burst on `p`: `BURST` stacks out, then all back.
fn burst(s: &Stacks, p: &mut P, held: &mut Vec<Stack>) {
    for _ in 0..BURST {
        held.push(s.stackalloc(Some(p), false, black_box(SIZE)).unwrap());
    }
    for stk in held.drain(..) {
        s.stackfree(Some(p), false, black_box(stk)).unwrap();
    }
}

/// One burst with one mapping per stack.
fn mmap_burst(held: &mut Vec<memmap2::MmapMut>) {
    for _ in 0..BURST {
        let mut m = memmap2::MmapOptions::new()
            .len(black_box(SIZE as usize))
            .map_anon()
            .unwrap();
        m[0] = 1;
        held.push(m);
    }
    held.clear();
}

/// Runs `iters` rounds of `work` on each of two threads released
/// together; returns the wall time from the first thread's start to the
/// last thread's finish, as the threads saw it.
fn two_threads<W: Fn(u64) + Sync>(iters: u64, work: W) -> Duration {
    let start = Barrier::new(2);
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                sc.spawn(|| {
                    start.wait();
                    let t0 = Instant::now();
                    work(iters);
                    (t0, Instant::now())
                })
            })
            .collect();
        let spans: Vec<(Instant, Instant)> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        let first = spans.iter().map(|s| s.0).min().unwrap();
        let last = spans.iter().map(|s| s.1).max().unwrap();
        last - first
    })
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("churn_2k");
    g.throughput(Throughput::Elements(2 * BURST as u64));
    let s = stacks();
    g.bench_function("gostack_two_threads_two_ps", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |n| {
                // A P for this thread and timing: its first refill and the
                // final cache flush are timed too (once per sample of many
                // bursts).
                let mut p = s.new_p();
                let mut held = Vec::with_capacity(BURST);
                for _ in 0..n {
                    burst(&s, &mut p, &mut held);
                }
                s.stackcache_clear(&mut p).unwrap();
            })
        })
    });
    g.bench_function("one_thread_one_p", |b| {
        let mut p = s.new_p();
        let mut held = Vec::with_capacity(BURST);
        b.iter(|| {
            burst(&s, &mut p, &mut held);
            burst(&s, &mut p, &mut held);
        })
    });
    g.bench_function("mmap_munmap_two_threads", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |n| {
                let mut held = Vec::with_capacity(BURST);
                for _ in 0..n {
                    mmap_burst(&mut held);
                }
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
