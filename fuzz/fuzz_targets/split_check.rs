//! split_check: the spec's `needs_morestack` against an emulation of the
//! instructions the spec says the compiler emits, for every modeled
//! architecture, over arbitrary frame sizes, SPs and stackguard0 values.
//!
//! Input layout (little-endian, short inputs are zero-padded): byte 0
//! picks the profile, then framesize (u64), sp (u64), stackguard0 (u64).
//! Out-of-range values must come back as `Throw::Invalid`, never a panic.
#![no_main]

use gostack_models::emu::{Machine, Outcome};
use gostack_spec::guard::{self, Calls};
use gostack_spec::{Profile, Throw};
use libfuzzer_sys::fuzz_target;

const PORTS: &[(&str, &str, &str)] = &[
    ("linux", "amd64", "1.23"),
    ("linux", "386", "1.23"),
    ("linux", "arm64", "1.23"),
    ("linux", "riscv64", "1.23"),
    ("windows", "amd64", "1.19"),
    ("windows", "386", "1.19"),
    ("ios", "arm64", "1.19"),
    ("aix", "ppc64", "1.23"),
];

fn word(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    for (i, x) in b.iter_mut().enumerate() {
        *x = data.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    let pick = data.first().copied().unwrap_or(0) as usize;
    let (os, arch, release) = PORTS[pick % PORTS.len()];
    let race = pick / PORTS.len() % 2 == 1;
    let profile = Profile::parse(os, arch, race, release).expect("a listed port");
    let (fs, sp, g) = (word(data, 1), word(data, 9), word(data, 17));
    let spec = guard::needs_morestack(&profile, fs, sp, g);
    let listing = guard::prologue(&profile, fs, Calls::Others);
    match (spec, listing) {
        (Ok(morestack), Ok(Some(pro))) => {
            let emulated = Machine::new(profile.goarch, sp, g)
                .run(&pro.insns)
                .unwrap_or_else(|e| panic!("{}: emulator: {e}", profile.label()));
            assert_eq!(
                morestack,
                emulated == Outcome::Morestack,
                "{} framesize {fs} sp {sp:#x} stackguard0 {g:#x}",
                profile.label()
            );
        }
        // riscv64's empty frame gets no check at all.
        (Ok(_), Ok(None)) => assert!(arch == "riscv64" && fs == 0),
        (Err(Throw::Invalid(_)), _) | (_, Err(Throw::Invalid(_))) => {}
        (a, b) => panic!("{}: unexpected results {a:?} / {b:?}", profile.label()),
    }
});
