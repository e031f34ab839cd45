//! alloc+free of a 2 KiB stack through a warm P cache, against mmap+munmap
//! of the same stack per pair (what coroutine crates commonly do), and the
//! pool path (no P) for reference. `ci/bench.sh` runs it and prints the
//! ratio.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use gostack::Stacks;
use gostack_spec::{Config, Profile};

fn stacks() -> Stacks {
    let mut c = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
    c.arena_bytes = 64 << 20;
    Stacks::new(&c).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("stack_2k");
    let s = stacks();
    let mut p = s.new_p();
    // Warm the cache: one refill.
    let warm = s.stackalloc(Some(&mut p), false, 2048).unwrap();
    s.stackfree(Some(&mut p), false, warm).unwrap();
    g.bench_function("gostack_p_cache_alloc_free", |b| {
        b.iter(|| {
            let stk = s.stackalloc(Some(&mut p), false, black_box(2048)).unwrap();
            s.stackfree(Some(&mut p), false, black_box(stk)).unwrap();
        })
    });
    let keep = s.stackalloc(None, false, 2048).unwrap();
    g.bench_function("gostack_pool_alloc_free", |b| {
        b.iter(|| {
            let stk = s.stackalloc(None, false, black_box(2048)).unwrap();
            s.stackfree(None, false, black_box(stk)).unwrap();
        })
    });
    s.stackfree(None, false, keep).unwrap();
    // The floor of the checked fast path: the two uncontended atomic
    // read-modify-writes (set the in-use bit, compare-and-swap it clear)
    // that double-free detection costs per pair.
    let word = std::sync::atomic::AtomicU64::new(0);
    g.bench_function("floor_two_atomic_rmw", |b| {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        b.iter(|| {
            let bit = black_box(1u64 << 3);
            let t = word.fetch_or(bit, AcqRel) | bit;
            let _ = word.compare_exchange(t, t & !bit, AcqRel, Acquire);
        })
    });
    g.bench_function("mmap_munmap_untouched", |b| {
        b.iter(|| {
            let m = memmap2::MmapOptions::new()
                .len(black_box(2048))
                .map_anon()
                .unwrap();
            black_box(&m);
            drop(m);
        })
    });
    g.bench_function("mmap_munmap", |b| {
        b.iter(|| {
            // What coroutine crates do per stack: map it, touch it, unmap it.
            let mut m = memmap2::MmapOptions::new()
                .len(black_box(2048))
                .map_anon()
                .unwrap();
            m[0] = 1;
            black_box(&m);
            drop(m);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
