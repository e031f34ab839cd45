//! The default arena (`Stacks::default_config`): 64 GiB of address space on
//! a 64-bit host, which must cost next to nothing while idle (the arena and
//! the span tables are lazily committed mappings), hold 1 GiB stacks, and
//! keep the allocator's metadata under 1% of the bytes of live stacks
//! (`Stacks::metadata_bytes`). Alone in its test binary so that the resident
//! set it measures is its own.

use gostack::Stacks;
use gostack_spec::Profile;

/// Resident set of this process in bytes (`VmRSS`).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[test]
fn default_arena_is_lazily_committed_and_metadata_is_small() {
    let profile = Profile::parse("linux", "amd64", false, "1.23").unwrap();
    let config = Stacks::default_config(profile);
    assert_eq!(config.arena_bytes, 64 << 30);
    let before = rss();
    let s = Stacks::new(&config).unwrap();
    let idle = rss().saturating_sub(before);
    println!(
        "idle 64 GiB arena: {} KiB resident, metadata_bytes {}",
        idle / 1024,
        s.metadata_bytes()
    );
    // Reserving 64 GiB and tables for 8 Mi pages (512 MiB of table address
    // space) commits almost nothing.
    assert!(idle < 2 << 20, "idle arena costs {idle} bytes");
    assert!(s.metadata_bytes() < 64 << 10, "{}", s.metadata_bytes());

    // A few stacks at Go's 1 GB maxstacksize fit (1 GiB is the power of two
    // above it).
    let big: Vec<_> = (0..4)
        .map(|_| s.stackalloc(None, false, 1 << 30).unwrap())
        .collect();
    assert!(s.store_word(big[3].hi - 8, 1));

    // Live 2 KiB stacks: metadata per stack stays under 1% of 2 KiB.
    let mut p = s.new_p();
    let live: u64 = 200_000;
    let before = s.metadata_bytes();
    let stacks: Vec<_> = (0..live)
        .map(|_| s.stackalloc(Some(&mut p), false, 2048).unwrap())
        .collect();
    let meta = s.metadata_bytes();
    let per_stack = (meta - before) as f64 / live as f64;
    println!(
        "{live} live 2 KiB stacks: metadata {meta} bytes, {per_stack:.2} bytes per stack ({:.3}%)",
        per_stack / 2048.0 * 100.0
    );
    assert!(
        per_stack < 20.48,
        "{per_stack} bytes of metadata per 2 KiB stack"
    );
    for stk in stacks {
        s.stackfree(Some(&mut p), false, stk).unwrap();
    }
    for stk in big {
        s.stackfree(None, false, stk).unwrap();
    }
    s.stackcache_clear(&mut p).unwrap();
    assert!(s.snapshot(&[&p]).spans.is_empty());
}
