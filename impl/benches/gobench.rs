//! The shapes of Go's runtime stack benchmarks (runtime/stack_test.go and
//! proc_test.go of Go 1.23) run through [`gostack::Runtime`], each against
//! its physical floor measured in the same run.
//!
//! - `BenchmarkStackCopy`: a new goroutine runs `count(1000000)` (frames of
//!   24 bytes, no pointers) and exits;
//! - `BenchmarkStackCopyPtr`: the same with `countp(&i)`;
//! - `BenchmarkStackCopyWithStkobj`: `Sum(100000, &s)`, frames of 208 bytes
//!   whose stack object points at the caller's;
//! - `BenchmarkStackGrowth`: a long-lived goroutine calls
//!   `stackGrowthRecursive(10)` (11 frames of 1048 bytes) again and again.
//!
//! Frame sizes, pointer maps and stack objects are what `go tool compile
//! -S` of Go 1.23 gives on linux/amd64. The floor of a copying shape is
//! what any implementation must at least do: for each growth, fresh zeroed
//! memory of the new size with its pages touched down to the deepest use,
//! and a plain copy of that growth's share of the bytes the impl's copies
//! moved. `ci/bench.sh` prints the ratios; `gostack bench` measures the same
//! shapes from the same definitions (cli/src/shapes.rs, whose tests check
//! them against the spec).

// The shape definitions are shared with `gostack bench` (a benchmark cannot
// depend on the cli crate, so the file is included by path); `gostack bench`
// also uses the parts of it this bench does not.
#[allow(dead_code)]
#[path = "../../cli/src/shapes.rs"]
mod shapes;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use gostack::Runtime;
use gostack_spec::{Config, Profile};
use shapes::{Kind, Shape};
use std::time::{Duration, Instant};

fn config() -> Config {
    let mut c = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
    c.arena_bytes = 1 << 30;
    c
}

/// Writes one byte in every 4 KiB page of the top `used` bytes of `buf`
/// (a stack is used from its top down).
fn touch(buf: &mut [u8], used: u64) {
    let len = buf.len();
    let from = len - (used as usize).min(len);
    let mut i = len;
    while i > from {
        i -= 1;
        buf[i] = 1;
        i = i.saturating_sub(4095).max(from);
    }
}

/// One operation per iteration: the impl's time (the harness's re-reads of
/// the stack's place after growths left out), then the floor of the same
/// growths.
fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("go_shapes");
    g.sample_size(10);
    for kind in Kind::ALL {
        let mut rt = Runtime::new(config()).unwrap();
        let mut shape = Shape::new(&mut rt, kind, kind.go_depth()).unwrap();
        let (first, _) = shape.op(&mut rt).unwrap();
        let start = rt.world().starting_stack_size;
        g.bench_function(BenchmarkId::new("gostack", kind.go_name()), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let (_, resync) = shape.op(&mut rt).unwrap();
                    total += t.elapsed().saturating_sub(resync);
                }
                total
            })
        });
        if kind == Kind::Growth {
            // Go's figure spreads the one growth sequence over b.N
            // iterations; its floor per iteration is nil.
            continue;
        }
        let used = shape.max_used();
        g.bench_function(BenchmarkId::new("floor", kind.go_name()), |b| {
            b.iter(|| floor(start, first.growths, first.bytes_copied, used))
        });
    }
    g.finish();
}

/// See the crate doc: fresh zeroed memory per growth, pages touched, a
/// plain copy of the growth's share of the bytes.
fn floor(start: u64, growths: u64, bytes: u64, used: u64) {
    let sizes: Vec<u64> = (0..=growths).map(|i| start << i).collect();
    let old_total: u64 = sizes[..sizes.len() - 1].iter().sum();
    let mut old = vec![0u8; start as usize];
    touch(&mut old, used);
    let mut copied = 0;
    for i in 1..sizes.len() {
        let c = if i == sizes.len() - 1 {
            bytes - copied
        } else {
            (u128::from(bytes) * u128::from(sizes[i - 1]) / u128::from(old_total)) as u64
        };
        let c = c.min(sizes[i - 1]) as usize;
        copied += c as u64;
        let mut new = vec![0u8; sizes[i] as usize];
        touch(&mut new, used);
        let (olen, nlen) = (old.len(), new.len());
        new[nlen - c..].copy_from_slice(&old[olen - c..]);
        black_box(&new);
        old = new;
    }
    black_box(&old);
}

criterion_group!(benches, bench);
criterion_main!(benches);
