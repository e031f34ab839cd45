//! Times alloc+free of a 2 KiB stack through a warm P cache as the minimum
//! over many short batches (robust on a loaded machine), next to mmap+munmap.
//! `cargo run --release -p gostack --example fastpath`
use gostack::Stacks;
use gostack_spec::{Config, Profile};
use std::hint::black_box;
use std::time::Instant;

fn min_ns(batches: u32, per: u32, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..batches {
        let t = Instant::now();
        for _ in 0..per {
            f();
        }
        best = best.min(t.elapsed().as_nanos() as f64 / f64::from(per));
    }
    best
}

fn main() {
    let mut c = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
    c.arena_bytes = 64 << 20;
    let s = Stacks::new(&c).unwrap();
    let mut p = s.new_p();
    let cache = min_ns(2000, 10_000, || {
        let stk = s.stackalloc(Some(&mut p), false, black_box(2048)).unwrap();
        s.stackfree(Some(&mut p), false, black_box(stk)).unwrap();
    });
    let mmap = min_ns(50, 200, || {
        let mut m = memmap2::MmapOptions::new()
            .len(black_box(2048))
            .map_anon()
            .unwrap();
        m[0] = 1;
        black_box(&m);
    });
    println!("p_cache_alloc_free_ns {cache:.2}");
    println!("mmap_touch_munmap_ns {mmap:.0}");
    println!("ratio {:.0}", mmap / cache);
}
