//! The full constant table, pinned by hand from the Go sources.
//!
//! Every expected value below was worked out from the Go 1.19 and Go 1.23
//! sources (paths relative to `$GOROOT/src`), not from the spec's code. Each
//! test covers one constant and names the file it comes from. A row gives the
//! value for (Go 1.19, Go 1.19 -race, Go 1.23, Go 1.23 -race).

use gostack_spec::{Consts, Profile};

const PROFILES: &[&str] = &[
    "linux/amd64",
    "linux/arm64",
    "linux/386",
    "linux/arm",
    "linux/riscv64",
    "linux/ppc64le",
    "linux/s390x",
    "windows/amd64",
    "windows/386",
    "plan9/amd64",
    "ios/arm64",
    "aix/ppc64",
    "openbsd/amd64",
];

fn consts(port: &str, release: &str, race: bool) -> Consts {
    let (os, arch) = port.split_once('/').unwrap();
    Profile::parse(os, arch, race, release)
        .unwrap_or_else(|e| panic!("{port} {release}: {e}"))
        .consts()
}

/// Checks one constant for every profile, both releases, with and without
/// race; `rows` must name every profile of [`PROFILES`].
fn check(name: &str, rows: &[(&str, [u64; 4])], get: fn(&Consts) -> u64) {
    let named: Vec<&str> = rows.iter().map(|r| r.0).collect();
    assert_eq!(
        named, PROFILES,
        "{name}: the table must cover every profile, in order"
    );
    let mut wrong = Vec::new();
    for (port, want) in rows {
        let got = [
            get(&consts(port, "1.19", false)),
            get(&consts(port, "1.19", true)),
            get(&consts(port, "1.23", false)),
            get(&consts(port, "1.23", true)),
        ];
        if got != *want {
            wrong.push(format!("{port}: want {want:?}, got {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{name} (1.19, 1.19 race, 1.23, 1.23 race):\n{}",
        wrong.join("\n")
    );
}

fn same(v: u64) -> [u64; 4] {
    [v; 4]
}

/// runtime/stack.go: 1.19 `_StackSystem = IsWindows*512*PtrSize + IsPlan9*512
/// + IsIos*IsArm64*1024`; 1.23 `stackSystem` has windows at a flat 4096.
#[test]
fn stack_system_runtime_stack_go() {
    check(
        "StackSystem",
        &[
            ("linux/amd64", same(0)),
            ("linux/arm64", same(0)),
            ("linux/386", same(0)),
            ("linux/arm", same(0)),
            ("linux/riscv64", same(0)),
            ("linux/ppc64le", same(0)),
            ("linux/s390x", same(0)),
            ("windows/amd64", same(4096)),
            ("windows/386", [2048, 2048, 4096, 4096]),
            ("plan9/amd64", same(512)),
            ("ios/arm64", same(1024)),
            ("aix/ppc64", same(0)),
            ("openbsd/amd64", same(0)),
        ],
        |c| c.stack_system,
    );
}

/// runtime/stack.go: `fixedStack` rounds StackMin (2048) + StackSystem up to
/// a power of two.
#[test]
fn fixed_stack_runtime_stack_go() {
    check(
        "FixedStack",
        &[
            ("linux/amd64", same(2048)),
            ("linux/arm64", same(2048)),
            ("linux/386", same(2048)),
            ("linux/arm", same(2048)),
            ("linux/riscv64", same(2048)),
            ("linux/ppc64le", same(2048)),
            ("linux/s390x", same(2048)),
            ("windows/amd64", same(8192)),
            ("windows/386", [4096, 4096, 8192, 8192]),
            ("plan9/amd64", same(4096)),
            ("ios/arm64", same(4096)),
            ("aix/ppc64", same(2048)),
            ("openbsd/amd64", same(2048)),
        ],
        |c| c.fixed_stack,
    );
}

/// runtime/internal/sys/consts.go: 1.19 `StackGuardMultiplier` is 2 on aix
/// and 1 elsewhere, race or not; 1.23 is `1 + IsAix + isRace`.
#[test]
fn guard_multiplier_runtime_internal_sys_consts_go() {
    let plain = [1, 1, 1, 2];
    let rows: Vec<(&str, [u64; 4])> = PROFILES
        .iter()
        .map(|&p| {
            (
                p,
                if p == "aix/ppc64" {
                    [2, 2, 2, 3]
                } else {
                    plain
                },
            )
        })
        .collect();
    check("StackGuardMultiplier", &rows, |c| c.guard_multiplier);
}

/// runtime/stack.go: 1.19 `_StackLimit = _StackGuard - _StackSystem -
/// _StackSmall` = 928*m - 128; 1.23 `stackNosplit = abi.StackNosplitBase
/// (internal/abi/stack.go, 800) * m`.
#[test]
fn stack_nosplit_runtime_stack_go() {
    let rows: Vec<(&str, [u64; 4])> = PROFILES
        .iter()
        .map(|&p| {
            let v = if p == "aix/ppc64" {
                [1728, 1728, 1600, 2400]
            } else {
                [800, 800, 800, 1600]
            };
            (p, v)
        })
        .collect();
    check("StackNosplit", &rows, |c| c.stack_nosplit);
}

/// runtime/stack.go: 1.19 `_StackGuard = 928*m + _StackSystem`; 1.23
/// `stackGuard = stackNosplit + stackSystem + abi.StackSmall`.
#[test]
fn stack_guard_runtime_stack_go() {
    check(
        "StackGuard",
        &[
            ("linux/amd64", [928, 928, 928, 1728]),
            ("linux/arm64", [928, 928, 928, 1728]),
            ("linux/386", [928, 928, 928, 1728]),
            ("linux/arm", [928, 928, 928, 1728]),
            ("linux/riscv64", [928, 928, 928, 1728]),
            ("linux/ppc64le", [928, 928, 928, 1728]),
            ("linux/s390x", [928, 928, 928, 1728]),
            ("windows/amd64", [5024, 5024, 5024, 5824]),
            ("windows/386", [2976, 2976, 5024, 5824]),
            ("plan9/amd64", [1440, 1440, 1440, 2240]),
            ("ios/arm64", [1952, 1952, 1952, 2752]),
            ("aix/ppc64", [1856, 1856, 1728, 2528]),
            ("openbsd/amd64", [928, 928, 928, 1728]),
        ],
        |c| c.stack_guard,
    );
}

/// cmd/link/internal/ld/stackcheck.go `doStackCheck`: the budget
/// (cmd/internal/objabi/stack.go: 1.19 `StackLimit` with objabi's
/// StackSystem of 0; 1.23 `StackNosplit(race)`) less the call size
/// (`newStackCheck`: RegSize without a link register), less 8 on arm64.
#[test]
fn linker_nosplit_limit_cmd_link_internal_ld_stackcheck_go() {
    check(
        "linker nosplit limit",
        &[
            ("linux/amd64", [792, 792, 792, 1592]),
            ("linux/arm64", [792, 792, 792, 1592]),
            ("linux/386", [796, 796, 796, 1596]),
            ("linux/arm", [800, 800, 800, 1600]),
            ("linux/riscv64", [800, 800, 800, 1600]),
            ("linux/ppc64le", [800, 800, 800, 1600]),
            ("linux/s390x", [800, 800, 800, 1600]),
            ("windows/amd64", [792, 792, 792, 1592]),
            ("windows/386", [796, 796, 796, 1596]),
            ("plan9/amd64", [792, 792, 792, 1592]),
            ("ios/arm64", [792, 792, 792, 1592]),
            ("aix/ppc64", [1728, 1728, 1600, 2400]),
            ("openbsd/amd64", [792, 792, 792, 1592]),
        ],
        |c| c.linker_nosplit_limit,
    );
}

/// cmd/internal/sys/arch.go: `RegSize` is pushed by a CALL on 386 and amd64;
/// link-register machines push nothing (`HasLR`).
#[test]
fn call_size_cmd_internal_sys_arch_go() {
    let rows: Vec<(&str, [u64; 4])> = PROFILES
        .iter()
        .map(|&p| {
            let v = if p.ends_with("/amd64") {
                8
            } else if p.ends_with("/386") {
                4
            } else {
                0
            };
            (p, same(v))
        })
        .collect();
    check("call size", &rows, |c| c.call_size);
}

/// runtime/malloc.go: `_NumStackOrders = 4 - PtrSize/4*IsWindows -
/// 1*IsPlan9`.
#[test]
fn num_stack_orders_runtime_malloc_go() {
    let rows: Vec<(&str, [u64; 4])> = PROFILES
        .iter()
        .map(|&p| {
            let v = match p {
                "windows/amd64" => 2,
                "windows/386" | "plan9/amd64" => 3,
                _ => 4,
            };
            (p, same(v))
        })
        .collect();
    check("NumStackOrders", &rows, |c| c.num_stack_orders);
}

/// runtime/stack.go `stackalloc`: a size takes the pool/cache path when it
/// is below `fixedStack<<_NumStackOrders` and below `_StackCacheSize`
/// (runtime/malloc.go, 32 KiB). The sizes are packed as a bit set of
/// KiB: bit n set means n KiB is cached.
#[test]
fn cached_sizes_runtime_stack_go_stackalloc() {
    const K2: u64 = 1 << 2;
    const K4: u64 = 1 << 4;
    const K8: u64 = 1 << 8;
    const K16: u64 = 1 << 16;
    let linux = same(K2 | K4 | K8 | K16);
    check(
        "cached stack sizes",
        &[
            ("linux/amd64", linux),
            ("linux/arm64", linux),
            ("linux/386", linux),
            ("linux/arm", linux),
            ("linux/riscv64", linux),
            ("linux/ppc64le", linux),
            ("linux/s390x", linux),
            ("windows/amd64", same(K8 | K16)),
            // 1.23: 8K, 16K, and 32K is an order but not below StackCacheSize.
            (
                "windows/386",
                [K4 | K8 | K16, K4 | K8 | K16, K8 | K16, K8 | K16],
            ),
            ("plan9/amd64", same(K4 | K8 | K16)),
            // Four orders from 4K, but 32K is not cached.
            ("ios/arm64", same(K4 | K8 | K16)),
            ("aix/ppc64", linux),
            ("openbsd/amd64", linux),
        ],
        |c| {
            c.cached_stack_sizes
                .iter()
                .map(|s| 1u64 << (s / 1024))
                .sum()
        },
    );
}

/// internal/goarch `PtrSize`, and the pointer-wide masks of runtime/stack.go
/// (`uintptrMask & -1314`, `-1234`, `-275`, `-4096`).
#[test]
fn special_guard_values_runtime_stack_go() {
    for &p in PROFILES {
        let c = consts(p, "1.23", false);
        let c19 = consts(p, "1.19", true);
        assert_eq!(c.stack_preempt, c19.stack_preempt);
        let wide = !(p.ends_with("/386") || p.ends_with("/arm"));
        let (preempt, fork, force, poison, ptr) = if wide {
            (
                0xffff_ffff_ffff_fade,
                0xffff_ffff_ffff_fb2e,
                0xffff_ffff_ffff_feed,
                0xffff_ffff_ffff_f000,
                8,
            )
        } else {
            (0xffff_fade, 0xffff_fb2e, 0xffff_feed, 0xffff_f000, 4)
        };
        assert_eq!(
            (
                c.stack_preempt,
                c.stack_fork,
                c.stack_force_move,
                c.stack_poison_min,
                c.ptr_size
            ),
            (preempt, fork, force, poison, ptr),
            "{p}"
        );
    }
}

/// runtime/stack.go: `maxstacksize` starts at 1<<20 and `maxstackceiling`
/// at the same value; runtime/proc.go `main` sets 1e9 (64-bit) or 250e6
/// (32-bit) and a ceiling of twice that.
#[test]
fn max_stack_sizes_runtime_stack_go_and_proc_go() {
    for &p in PROFILES {
        for release in ["1.19", "1.23"] {
            let c = consts(p, release, false);
            let wide = !(p.ends_with("/386") || p.ends_with("/arm"));
            let max = if wide { 1_000_000_000 } else { 250_000_000 };
            assert_eq!(
                (
                    c.maxstacksize_boot,
                    c.maxstackceiling_boot,
                    c.maxstacksize,
                    c.maxstackceiling
                ),
                (1_048_576, 1_048_576, max, 2 * max),
                "{p} {release}"
            );
        }
    }
}

/// The constants every profile shares: StackMin (runtime/stack.go),
/// StackSmall and StackBig (internal/abi/stack.go; runtime/stack.go in 1.19),
/// _StackCacheSize and minLegalPointer (runtime/malloc.go), _PageShift
/// (runtime/sizeclasses.go).
#[test]
fn shared_constants() {
    for p in Profile::all() {
        let c = p.consts();
        assert_eq!(
            (
                c.stack_min,
                c.stack_small,
                c.stack_big,
                c.stack_cache_size,
                c.min_legal_pointer,
                c.page_size
            ),
            (2048, 128, 4096, 32768, 4096, 8192),
            "{}",
            p.label()
        );
    }
}

/// Every profile's derived values keep the relations the runtime relies on.
#[test]
fn relations_hold_for_every_port() {
    for p in Profile::all() {
        let c = p.consts();
        let l = p.label();
        assert_eq!(
            c.stack_guard,
            c.stack_nosplit + c.stack_system + c.stack_small,
            "{l}"
        );
        assert!(
            c.fixed_stack.is_power_of_two() && c.fixed_stack >= c.stack_min + c.stack_system,
            "{l}"
        );
        assert!(c.fixed_stack / 2 < c.stack_min + c.stack_system, "{l}");
        assert!(c.linker_nosplit_limit <= c.stack_nosplit, "{l}");
        if !p.race || p.race_supported() {
            assert!(
                c.stack_guard < c.fixed_stack,
                "{l}: the guard must leave room for frames"
            );
        }
        assert_eq!(
            c.stack_cache_size % c.page_size,
            0,
            "{l}: stackinit's check"
        );
    }
}

/// cmd/internal/sys/supported.go (1.19) and internal/platform/supported.go
/// (1.23) `RaceDetectorSupported`.
#[test]
fn race_support() {
    let supported = |port: &str, release: &str| {
        let (os, arch) = port.split_once('/').unwrap();
        Profile::parse(os, arch, true, release)
            .unwrap()
            .race_supported()
    };
    for port in [
        "linux/amd64",
        "linux/arm64",
        "linux/ppc64le",
        "linux/s390x",
        "windows/amd64",
        "darwin/arm64",
        "freebsd/amd64",
    ] {
        assert!(supported(port, "1.19") && supported(port, "1.23"), "{port}");
    }
    for port in [
        "linux/386",
        "linux/arm",
        "linux/riscv64",
        "windows/386",
        "plan9/amd64",
        "ios/arm64",
        "aix/ppc64",
    ] {
        assert!(
            !supported(port, "1.19") && !supported(port, "1.23"),
            "{port}"
        );
    }
    assert!(supported("openbsd/amd64", "1.19") && !supported("openbsd/amd64", "1.23"));
}

#[test]
fn ports_and_names() {
    assert!(Profile::parse("wasip1", "wasm", false, "1.23").is_ok());
    let e = Profile::parse("wasip1", "wasm", false, "1.19")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "wasip1/wasm is not a Go 1.19 port; Go 1.19 has no wasip1 port"
    );
    let e = Profile::parse("linux", "sparc", false, "1.23")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("unknown goarch \"sparc\"; accepted: 386, amd64, arm, arm64"),
        "{e}"
    );
    let e = Profile::parse("linux", "amd64", false, "1.20")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "unknown release \"1.20\"; accepted: 1.19, 1.23");
    assert!(Profile::parse("linux", "amd64", false, "go1.19").is_ok());
    assert_eq!(Profile::all().len(), 2 * (46 + 49));
}
