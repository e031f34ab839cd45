//! Properties of the prologue split check over its whole input space.
//!
//! Three properties, each over every modeled architecture and a spread of
//! profiles (both releases, race, the windows/plan9/ios StackSystems):
//! 1. the spec's `needs_morestack` agrees with an emulation of the
//!    instructions the spec says the compiler emits, everywhere, and in
//!    particular at every boundary;
//! 2. stackPreempt, stackFork and stackForceMove in stackguard0 send every
//!    real SP to morestack;
//! 3. a passing check leaves `SP - framesize` above `lo + StackNosplit +
//!    StackSystem` when `stackguard0 = lo + StackGuard`.
//!
//! Case counts: 4096 per property in the default run (about a second);
//! `PROPTEST_CASES` raises them.

use gostack_models::emu::{Machine, Outcome};
use gostack_spec::guard::{self, Calls, MAX_FRAMESIZE};
use gostack_spec::Profile;
use proptest::prelude::*;

fn profiles() -> Vec<Profile> {
    let mut out = Vec::new();
    for release in ["1.19", "1.23"] {
        for race in [false, true] {
            for port in [
                "linux/amd64",
                "linux/386",
                "linux/arm64",
                "linux/riscv64",
                "windows/amd64",
                "windows/386",
                "plan9/amd64",
                "ios/arm64",
            ] {
                let (os, arch) = port.split_once('/').unwrap();
                out.push(Profile::parse(os, arch, race, release).unwrap());
            }
        }
    }
    out
}

fn mask(p: &Profile) -> u64 {
    if p.goarch.ptr_size() == 8 {
        u64::MAX
    } else {
        u64::from(u32::MAX)
    }
}

/// Frame sizes clustered at the thresholds, with some from anywhere.
fn framesize() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..=3,
        125u64..=131,
        4093u64..=4099,
        0u64..=8192,
        (MAX_FRAMESIZE - 3)..=MAX_FRAMESIZE,
        0u64..=MAX_FRAMESIZE,
    ]
}

/// A pointer-wide value near an interesting place: zero, StackBig, the top
/// of the address space, or anywhere.
fn word() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..=300,
        3800u64..=4400,
        any::<u64>().prop_map(|x| u64::MAX - (x % 5000)),
        any::<u64>(),
    ]
}

/// Whether the emulated instructions call morestack; `None` when the
/// function gets no check at all.
fn emulate(p: &Profile, fs: u64, sp: u64, g: u64) -> Option<bool> {
    let pro = guard::prologue(p, fs, Calls::Others).expect("valid profile and frame")?;
    let outcome = Machine::new(p.goarch, sp, g)
        .run(&pro.insns)
        .unwrap_or_else(|e| panic!("{}: {e}", p.label()));
    Some(outcome == Outcome::Morestack)
}

/// The only function with calls that gets no check: riscv64's empty frame
/// (`stacksplit` in cmd/internal/obj/riscv/obj.go returns early).
fn no_check(p: &Profile, fs: u64) -> bool {
    p.goarch == gostack_spec::Goarch::Riscv64 && fs == 0
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(4096),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn spec_agrees_with_emulated_instructions(pi in 0usize..32, fs in framesize(), sp in word(), g in word(), near in -300i64..300, pick in 0u8..3) {
        let all = profiles();
        let p = &all[pi % all.len()];
        let m = mask(p);
        // Often put SP right next to the guard plus the subtracted constant,
        // where the comparison flips.
        let k = fs.saturating_sub(128);
        let sp = match pick {
            0 => sp & m,
            1 => (g.wrapping_add(k).wrapping_add(near as u64)) & m,
            _ => (k.wrapping_add(near as u64)) & m,
        };
        let g = g & m;
        let spec = guard::needs_morestack(p, fs, sp, g).unwrap();
        if let Some(emulated) = emulate(p, fs, sp, g) {
            prop_assert_eq!(spec, emulated, "{} fs={} sp={:#x} g={:#x}", p.label(), fs, sp, g);
        } else {
            prop_assert!(no_check(p, fs));
        }
    }

    #[test]
    fn special_guards_send_every_real_sp_to_morestack(pi in 0usize..32, fs in framesize(), sp in any::<u64>(), which in 0u8..3) {
        let all = profiles();
        let p = &all[pi % all.len()];
        let c = p.consts();
        // A real SP lies above StackBig (page zero is unmapped) and below the
        // poison range at the top of the address space.
        let lo = c.stack_big + 1;
        let sp = lo + sp % (c.stack_poison_min - lo);
        let g = [c.stack_preempt, c.stack_fork, c.stack_force_move][which as usize];
        prop_assert!(guard::needs_morestack(p, fs, sp, g).unwrap());
        prop_assert!(emulate(p, fs, sp, g).unwrap_or(no_check(p, fs)));
    }

    #[test]
    fn passing_check_leaves_the_nosplit_budget(pi in 0usize..32, fs in framesize(), lo in any::<u64>(), above in word()) {
        let all = profiles();
        let p = &all[pi % all.len()];
        let c = p.consts();
        let m = mask(p);
        // A stack whose guard fits in the address space, and an SP above
        // StackBig (the runtime's guarantee).
        let lo = lo % (m - c.stack_guard);
        let g = lo + c.stack_guard;
        let sp = (c.stack_big + 1).max(g.saturating_add(above % 70_000).min(m));
        if !guard::needs_morestack(p, fs, sp, g).unwrap() {
            let floor = i128::from(lo) + i128::from(c.stack_nosplit) + i128::from(c.stack_system);
            prop_assert!(i128::from(sp) - i128::from(fs) > floor,
                "{} fs={} sp={:#x} lo={:#x}", p.label(), fs, sp, lo);
        }
    }
}

/// Every combination of boundary frame sizes and boundary SP/guard values,
/// exhaustively, on every profile.
#[test]
fn every_boundary_behaves_as_the_instructions() {
    let mut checked = 0u64;
    for p in profiles() {
        let m = mask(&p);
        let c = p.consts();
        let frames = [
            0,
            1,
            127,
            128,
            129,
            130,
            4095,
            4096,
            4097,
            4098,
            1 << 20,
            MAX_FRAMESIZE,
        ];
        for fs in frames {
            let k = fs.saturating_sub(128);
            let mut values = vec![
                0,
                1,
                c.stack_big,
                c.stack_big + 1,
                m,
                m - 1,
                c.stack_preempt,
                c.stack_poison_min,
            ];
            for base in [k, c.stack_guard, c.stack_guard + k, m / 2] {
                for d in [-2i64, -1, 0, 1, 2] {
                    values.push(base.wrapping_add(d as u64) & m);
                }
            }
            for &sp in &values {
                for &g in &values {
                    let spec = guard::needs_morestack(&p, fs, sp, g).unwrap();
                    match emulate(&p, fs, sp, g) {
                        Some(e) => assert_eq!(spec, e, "{} fs={fs} sp={sp:#x} g={g:#x}", p.label()),
                        None => assert!(no_check(&p, fs)),
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100_000, "checked only {checked} cases");
}

/// The listing's constants are the ones the check needs: on every modeled
/// architecture the offset is `framesize - StackSmall` and the guard is two
/// pointers into the g.
#[test]
fn listing_constants() {
    for p in profiles() {
        for fs in [129, 4096, 4097, 100_000] {
            let pro = guard::prologue(&p, fs, Calls::Others).unwrap().unwrap();
            assert_eq!(pro.offset, fs - 128);
            assert_eq!(pro.guard_offset, 2 * p.goarch.ptr_size());
            let text: String = pro
                .insns
                .iter()
                .map(|i| format!("{} {}\n", i.op, i.args))
                .collect();
            assert!(
                text.contains(&format!("{}", fs - 128)),
                "{}: {text}",
                p.label()
            );
        }
    }
}
