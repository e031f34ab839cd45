//! Platform profiles and the stack constants each one implies.
//!
//! A [`Profile`] is a Go build target (`GOOS`, `GOARCH`), whether the race
//! detector is on, and the Go release. [`Profile::consts`] derives every
//! constant of the stack system the way that release derives it. The
//! constants come from these Go files (paths below `$GOROOT/src`):
//!
//! | constant | Go 1.19 | Go 1.23 |
//! |---|---|---|
//! | StackSystem, StackMin, FixedStack | runtime/stack.go `_StackSystem` ... | runtime/stack.go `stackSystem` ... |
//! | StackSmall, StackBig | runtime/stack.go `_StackSmall`, `_StackBig` | internal/abi/stack.go |
//! | guard multiplier | runtime/internal/sys/consts.go (aix only) | runtime/internal/sys/consts.go (aix, race) |
//! | StackNosplit (runtime) | runtime/stack.go `_StackLimit` | runtime/stack.go `stackNosplit` |
//! | StackGuard | runtime/stack.go `_StackGuard` | runtime/stack.go `stackGuard` |
//! | linker limit | cmd/link/internal/ld/stackcheck.go `doStackCheck` with cmd/internal/objabi/stack.go | same files |
//! | NumStackOrders, StackCacheSize | runtime/malloc.go | runtime/malloc.go |
//! | page size | runtime/sizeclasses.go `_PageShift` | same |
//! | minLegalPointer | runtime/malloc.go | same |
//! | stackPreempt, stackFork, stackForceMove, stackPoisonMin | runtime/stack.go | same |
//! | maxstacksize, maxstackceiling | runtime/stack.go (boot values), runtime/proc.go `main` | same |
//!
//! Two differences between the releases matter:
//! - **The nosplit budget.** Go 1.19 sets the guard to `928 * multiplier +
//!   StackSystem` and derives the nosplit budget (`_StackLimit`) as the guard
//!   less StackSystem less StackSmall, so `800` for multiplier 1. The
//!   multiplier is 2 on aix and 1 elsewhere; a race build does not change it.
//!   Go 1.23 starts from the budget: `800 * (1 + aix + race)`, and the guard
//!   is the budget plus StackSystem plus StackSmall.
//! - **Windows' StackSystem.** Go 1.19 reserves 512 bytes per pointer byte
//!   (4096 on 64-bit, 2048 on 32-bit); Go 1.22 and later reserve 4096 on every
//!   windows architecture.
//!
//! Not modeled: a Go 1.19 toolchain whose own build had `-N` in
//! `GO_GCFLAGS` doubles the multiplier (cmd/dist/buildruntime.go
//! `stackGuardMultiplierDefault`); Debian's toolchains, like the official
//! ones, are built without it.

use crate::throw::{Invalid, Throw};
use serde::Serialize;

/// A Go release whose stack rules the spec models.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[non_exhaustive]
pub enum Release {
    /// Go 1.19: `_StackGuard = 928*multiplier + _StackSystem`.
    Go1_19,
    /// Go 1.23: `stackNosplit = 800*multiplier`, the guard derived from it.
    Go1_23,
}

impl Release {
    /// Every modeled release, oldest first.
    pub const ALL: &'static [Release] = &[Release::Go1_19, Release::Go1_23];

    /// The release as Go spells its version, without the `go` prefix.
    pub fn name(self) -> &'static str {
        match self {
            Release::Go1_19 => "1.19",
            Release::Go1_23 => "1.23",
        }
    }

    /// Parses `1.19`, `go1.19`, `1.23` or `go1.23`.
    pub fn parse(s: &str) -> Result<Release, Throw> {
        let bare = s.strip_prefix("go").unwrap_or(s);
        Release::ALL
            .iter()
            .copied()
            .find(|r| r.name() == bare)
            .ok_or_else(|| Invalid::UnknownRelease(s.to_string()).into())
    }

    /// The `GOOS/GOARCH` pairs this release's `go tool dist list` prints.
    pub fn ports(self) -> &'static [&'static str] {
        match self {
            Release::Go1_19 => PORTS_1_19,
            Release::Go1_23 => PORTS_1_23,
        }
    }

    /// Whether `goos/goarch` is a port of this release.
    pub fn has_port(self, goos: &str, goarch: &str) -> bool {
        self.ports().iter().any(|p| {
            p.split_once('/')
                .is_some_and(|(os, arch)| os == goos && arch == goarch)
        })
    }
}

/// `go tool dist list` of Go 1.19 (checked against the installed toolchain by
/// the oracle tests).
const PORTS_1_19: &[&str] = &[
    "aix/ppc64",
    "android/386",
    "android/amd64",
    "android/arm",
    "android/arm64",
    "darwin/amd64",
    "darwin/arm64",
    "dragonfly/amd64",
    "freebsd/386",
    "freebsd/amd64",
    "freebsd/arm",
    "freebsd/arm64",
    "illumos/amd64",
    "ios/amd64",
    "ios/arm64",
    "js/wasm",
    "linux/386",
    "linux/amd64",
    "linux/arm",
    "linux/arm64",
    "linux/loong64",
    "linux/mips",
    "linux/mips64",
    "linux/mips64le",
    "linux/mipsle",
    "linux/ppc64",
    "linux/ppc64le",
    "linux/riscv64",
    "linux/s390x",
    "netbsd/386",
    "netbsd/amd64",
    "netbsd/arm",
    "netbsd/arm64",
    "openbsd/386",
    "openbsd/amd64",
    "openbsd/arm",
    "openbsd/arm64",
    "openbsd/mips64",
    "plan9/386",
    "plan9/amd64",
    "plan9/arm",
    "solaris/amd64",
    "windows/386",
    "windows/amd64",
    "windows/arm",
    "windows/arm64",
];

/// `go tool dist list` of Go 1.23.
const PORTS_1_23: &[&str] = &[
    "aix/ppc64",
    "android/386",
    "android/amd64",
    "android/arm",
    "android/arm64",
    "darwin/amd64",
    "darwin/arm64",
    "dragonfly/amd64",
    "freebsd/386",
    "freebsd/amd64",
    "freebsd/arm",
    "freebsd/arm64",
    "freebsd/riscv64",
    "illumos/amd64",
    "ios/amd64",
    "ios/arm64",
    "js/wasm",
    "linux/386",
    "linux/amd64",
    "linux/arm",
    "linux/arm64",
    "linux/loong64",
    "linux/mips",
    "linux/mips64",
    "linux/mips64le",
    "linux/mipsle",
    "linux/ppc64",
    "linux/ppc64le",
    "linux/riscv64",
    "linux/s390x",
    "netbsd/386",
    "netbsd/amd64",
    "netbsd/arm",
    "netbsd/arm64",
    "openbsd/386",
    "openbsd/amd64",
    "openbsd/arm",
    "openbsd/arm64",
    "openbsd/ppc64",
    "openbsd/riscv64",
    "plan9/386",
    "plan9/amd64",
    "plan9/arm",
    "solaris/amd64",
    "wasip1/wasm",
    "windows/386",
    "windows/amd64",
    "windows/arm",
    "windows/arm64",
];

macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every value, in Go's alphabetical order of names.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The name Go's environment variable uses.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// Parses the name Go's environment variable uses.
            pub fn parse(s: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.name() == s)
            }
        }
    };
}

named_enum!(
    /// A `GOOS`.
    Goos {
        /// IBM AIX.
        Aix = "aix",
        /// Android.
        Android = "android",
        /// macOS.
        Darwin = "darwin",
        /// DragonFly BSD.
        Dragonfly = "dragonfly",
        /// FreeBSD.
        Freebsd = "freebsd",
        /// illumos.
        Illumos = "illumos",
        /// iOS.
        Ios = "ios",
        /// JavaScript hosts (with `wasm`).
        Js = "js",
        /// Linux.
        Linux = "linux",
        /// NetBSD.
        Netbsd = "netbsd",
        /// OpenBSD.
        Openbsd = "openbsd",
        /// Plan 9.
        Plan9 = "plan9",
        /// Solaris.
        Solaris = "solaris",
        /// WASI preview 1 (Go 1.21 and later).
        Wasip1 = "wasip1",
        /// Windows.
        Windows = "windows",
    }
);

named_enum!(
    /// A `GOARCH`.
    Goarch {
        /// 32-bit x86.
        I386 = "386",
        /// x86-64.
        Amd64 = "amd64",
        /// 32-bit ARM.
        Arm = "arm",
        /// 64-bit ARM.
        Arm64 = "arm64",
        /// LoongArch 64.
        Loong64 = "loong64",
        /// 32-bit MIPS, big-endian.
        Mips = "mips",
        /// 64-bit MIPS, big-endian.
        Mips64 = "mips64",
        /// 64-bit MIPS, little-endian.
        Mips64le = "mips64le",
        /// 32-bit MIPS, little-endian.
        Mipsle = "mipsle",
        /// 64-bit POWER, big-endian.
        Ppc64 = "ppc64",
        /// 64-bit POWER, little-endian.
        Ppc64le = "ppc64le",
        /// RISC-V 64.
        Riscv64 = "riscv64",
        /// IBM Z.
        S390x = "s390x",
        /// WebAssembly.
        Wasm = "wasm",
    }
);

impl Goarch {
    /// `goarch.PtrSize` (internal/goarch), equal to the register size on
    /// every Go architecture (cmd/internal/sys/arch.go).
    pub fn ptr_size(self) -> u64 {
        match self {
            Goarch::I386 | Goarch::Arm | Goarch::Mips | Goarch::Mipsle => 4,
            _ => 8,
        }
    }

    /// `Arch.HasLR` (cmd/internal/sys/arch.go): a CALL leaves the return
    /// address in a register instead of pushing it on the stack.
    pub fn has_lr(self) -> bool {
        !matches!(self, Goarch::I386 | Goarch::Amd64 | Goarch::Wasm)
    }
}

/// A Go build target: the key to every stack constant.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Profile {
    /// The target operating system.
    pub goos: Goos,
    /// The target architecture.
    pub goarch: Goarch,
    /// Whether the program is built with `-race`.
    pub race: bool,
    /// The Go release.
    pub release: Release,
}

/// Every stack constant of one [`Profile`], in bytes unless said otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Consts {
    /// `goarch.PtrSize`.
    pub ptr_size: u64,
    /// Whether CALL leaves the return address in a link register.
    pub has_lr: bool,
    /// `stackSystem`: extra room at the bottom of every stack for the OS
    /// (windows exception handling, plan9 notes, ios/arm64 signals).
    pub stack_system: u64,
    /// `stackMin`: the smallest stack a goroutine starts with, before
    /// StackSystem is added.
    pub stack_min: u64,
    /// `fixedStack`: `stack_min + stack_system` rounded up to a power of two;
    /// the size of order 0.
    pub fixed_stack: u64,
    /// `StackSmall`: a frame this small checks SP against the guard directly.
    pub stack_small: u64,
    /// `StackBig`: a frame up to this size cannot make `SP - framesize` wrap.
    pub stack_big: u64,
    /// `sys.StackGuardMultiplier`.
    pub guard_multiplier: u64,
    /// The runtime's nosplit budget: bytes a chain of NOSPLIT functions may
    /// use below a passing split check (`stackNosplit`, Go 1.19's
    /// `_StackLimit`).
    pub stack_nosplit: u64,
    /// `stackGuard`: how far above the stack's low end `stackguard0` sits.
    pub stack_guard: u64,
    /// Bytes a CALL pushes (the return address), 0 on link-register machines.
    pub call_size: u64,
    /// The linker's limit on a nosplit chain (`doStackCheck`): its own
    /// nosplit budget (which never includes StackSystem) less the call size,
    /// less 8 more on arm64 for the saved frame pointer.
    pub linker_nosplit_limit: u64,
    /// `_NumStackOrders`: how many power-of-two sizes have free lists.
    pub num_stack_orders: u64,
    /// `_StackCacheSize`: bytes a per-P cache holds at most (also the size of
    /// the span a pool takes from the heap).
    pub stack_cache_size: u64,
    /// The sizes `stackalloc` really serves from the pools and caches: an
    /// order's size is cached only when it is below both
    /// `fixedStack << _NumStackOrders` and `_StackCacheSize`.
    pub cached_stack_sizes: Vec<u64>,
    /// `_PageSize`: the runtime's page (8 KiB).
    pub page_size: u64,
    /// `minLegalPointer`: a stack slot holding a smaller non-zero value is an
    /// invalid pointer.
    pub min_legal_pointer: u64,
    /// `stackPreempt`: stackguard0 value that asks for preemption.
    pub stack_preempt: u64,
    /// `stackFork`: stackguard0 value that marks a goroutine being forked.
    pub stack_fork: u64,
    /// `stackForceMove`: stackguard0 value that forces a stack move.
    pub stack_force_move: u64,
    /// `stackPoisonMin`: the lowest value of the poison range.
    pub stack_poison_min: u64,
    /// `maxstacksize` before `runtime.main` sets it.
    pub maxstacksize_boot: u64,
    /// `maxstacksize` once `runtime.main` has set it.
    pub maxstacksize: u64,
    /// `maxstackceiling` before `runtime.main` sets it.
    pub maxstackceiling_boot: u64,
    /// `maxstackceiling` once `runtime.main` has set it (twice maxstacksize).
    pub maxstackceiling: u64,
}

impl Profile {
    /// A profile, checked to be a port of its release.
    pub fn new(goos: Goos, goarch: Goarch, race: bool, release: Release) -> Result<Profile, Throw> {
        if !release.has_port(goos.name(), goarch.name()) {
            return Err(Invalid::NoSuchPort {
                goos: goos.name(),
                goarch: goarch.name(),
                release: release.name(),
            }
            .into());
        }
        Ok(Profile {
            goos,
            goarch,
            race,
            release,
        })
    }

    /// A profile from Go's spellings, as the command line gives them.
    pub fn parse(goos: &str, goarch: &str, race: bool, release: &str) -> Result<Profile, Throw> {
        let os = Goos::parse(goos).ok_or_else(|| Invalid::UnknownGoos(goos.to_string()))?;
        let arch =
            Goarch::parse(goarch).ok_or_else(|| Invalid::UnknownGoarch(goarch.to_string()))?;
        Profile::new(os, arch, race, Release::parse(release)?)
    }

    /// Every port of every release, with and without race, in a stable
    /// order (release, goos, goarch, race).
    pub fn all() -> Vec<Profile> {
        let mut out = Vec::new();
        for &release in Release::ALL {
            for &goos in Goos::ALL {
                for &goarch in Goarch::ALL {
                    for race in [false, true] {
                        if let Ok(p) = Profile::new(goos, goarch, race, release) {
                            out.push(p);
                        }
                    }
                }
            }
        }
        out
    }

    /// Whether this release's toolchain accepts `-race` for this port
    /// (`RaceDetectorSupported`: cmd/internal/sys/supported.go in 1.19,
    /// internal/platform/supported.go in 1.23; openbsd/amd64 lost it in
    /// 1.21).
    ///
    /// A profile with `race` set on a port without race support is still
    /// accepted: the constants are what the toolchain's formulas give (the
    /// linker computes `StackNosplit(race)` without asking), which is what
    /// the tables in the issues pin. Callers that want only buildable
    /// profiles check this.
    pub fn race_supported(&self) -> bool {
        let (os, arch) = (self.goos, self.goarch);
        match os {
            Goos::Linux => matches!(
                arch,
                Goarch::Amd64 | Goarch::Ppc64le | Goarch::Arm64 | Goarch::S390x
            ),
            Goos::Darwin => matches!(arch, Goarch::Amd64 | Goarch::Arm64),
            Goos::Freebsd | Goos::Netbsd | Goos::Windows => arch == Goarch::Amd64,
            Goos::Openbsd => self.release == Release::Go1_19 && arch == Goarch::Amd64,
            _ => false,
        }
    }

    /// `goos/goarch[ race] go1.N`, as the CLI prints it.
    pub fn label(&self) -> String {
        format!(
            "{}/{}{} go{}",
            self.goos.name(),
            self.goarch.name(),
            if self.race { " race" } else { "" },
            self.release.name()
        )
    }

    /// `_StackSystem` / `stackSystem` (runtime/stack.go).
    pub fn stack_system(&self) -> u64 {
        let windows = match (self.goos, self.release) {
            (Goos::Windows, Release::Go1_19) => 512 * self.goarch.ptr_size(),
            (Goos::Windows, Release::Go1_23) => 4096,
            _ => 0,
        };
        let plan9 = if self.goos == Goos::Plan9 { 512 } else { 0 };
        let ios_arm64 = if self.goos == Goos::Ios && self.goarch == Goarch::Arm64 {
            1024
        } else {
            0
        };
        windows + plan9 + ios_arm64
    }

    /// `sys.StackGuardMultiplier` (runtime/internal/sys/consts.go), which the
    /// toolchain mirrors in cmd/internal/objabi/stack.go.
    pub fn guard_multiplier(&self) -> u64 {
        let aix = u64::from(self.goos == Goos::Aix);
        match self.release {
            Release::Go1_19 => 1 + aix,
            Release::Go1_23 => 1 + aix + u64::from(self.race),
        }
    }

    /// The runtime's nosplit budget: Go 1.19's `_StackLimit`
    /// (`_StackGuard - _StackSystem - _StackSmall`), Go 1.23's
    /// `stackNosplit` (`abi.StackNosplitBase * multiplier`).
    pub fn stack_nosplit(&self) -> u64 {
        match self.release {
            Release::Go1_19 => 928 * self.guard_multiplier() - STACK_SMALL,
            Release::Go1_23 => 800 * self.guard_multiplier(),
        }
    }

    /// `_StackGuard` / `stackGuard` (runtime/stack.go).
    pub fn stack_guard(&self) -> u64 {
        match self.release {
            Release::Go1_19 => 928 * self.guard_multiplier() + self.stack_system(),
            Release::Go1_23 => self.stack_nosplit() + self.stack_system() + STACK_SMALL,
        }
    }

    /// The limit of `doStackCheck` (cmd/link/internal/ld/stackcheck.go).
    /// The linker's budget is `objabi.StackLimit` in 1.19 (where objabi's
    /// StackSystem is 0, so it equals the runtime's budget) and
    /// `objabi.StackNosplit(race)` in 1.23.
    pub fn linker_nosplit_limit(&self) -> u64 {
        let arm64_fp = if self.goarch == Goarch::Arm64 { 8 } else { 0 };
        self.stack_nosplit() - self.call_size() - arm64_fp
    }

    /// Bytes a CALL pushes: `Arch.RegSize` without a link register, else 0
    /// (`newStackCheck`, cmd/link/internal/ld/stackcheck.go).
    pub fn call_size(&self) -> u64 {
        if self.goarch.has_lr() {
            0
        } else {
            self.goarch.ptr_size()
        }
    }

    /// `_NumStackOrders` (runtime/malloc.go): 4, less 2 on 64-bit windows or
    /// 1 on 32-bit windows, less 1 on plan9.
    pub fn num_stack_orders(&self) -> u64 {
        let windows = if self.goos == Goos::Windows {
            self.goarch.ptr_size() / 4
        } else {
            0
        };
        let plan9 = u64::from(self.goos == Goos::Plan9);
        4 - windows - plan9
    }

    /// `fixedStack` (runtime/stack.go): StackMin plus StackSystem, rounded up
    /// to a power of two by Go's bit-smearing constants.
    pub fn fixed_stack(&self) -> u64 {
        (STACK_MIN + self.stack_system()).next_power_of_two()
    }

    /// The constants of this profile.
    pub fn consts(&self) -> Consts {
        let ptr_size = self.goarch.ptr_size();
        let mask = if ptr_size == 8 {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        let fixed_stack = self.fixed_stack();
        let orders = self.num_stack_orders();
        let cached_stack_sizes = (0..orders)
            .map(|order| fixed_stack << order)
            .filter(|&n| n < fixed_stack << orders && n < STACK_CACHE_SIZE)
            .collect();
        // runtime.main (runtime/proc.go) sets 1 GB on 64-bit, 250 MB on 32-bit;
        // decimal, not binary, to match what the error message prints.
        let maxstacksize = if ptr_size == 8 {
            1_000_000_000
        } else {
            250_000_000
        };
        Consts {
            ptr_size,
            has_lr: self.goarch.has_lr(),
            stack_system: self.stack_system(),
            stack_min: STACK_MIN,
            fixed_stack,
            stack_small: STACK_SMALL,
            stack_big: STACK_BIG,
            guard_multiplier: self.guard_multiplier(),
            stack_nosplit: self.stack_nosplit(),
            stack_guard: self.stack_guard(),
            call_size: self.call_size(),
            linker_nosplit_limit: self.linker_nosplit_limit(),
            num_stack_orders: orders,
            stack_cache_size: STACK_CACHE_SIZE,
            cached_stack_sizes,
            page_size: PAGE_SIZE,
            min_legal_pointer: MIN_LEGAL_POINTER,
            stack_preempt: (-1314i64 as u64) & mask,
            stack_fork: (-1234i64 as u64) & mask,
            stack_force_move: (-275i64 as u64) & mask,
            stack_poison_min: (-4096i64 as u64) & mask,
            maxstacksize_boot: MAXSTACKSIZE_BOOT,
            maxstacksize,
            maxstackceiling_boot: MAXSTACKSIZE_BOOT,
            maxstackceiling: 2 * maxstacksize,
        }
    }
}

/// `stackMin` (runtime/stack.go), the same in every release modeled.
pub const STACK_MIN: u64 = 2048;
/// `StackSmall` (internal/abi/stack.go; runtime/stack.go in 1.19).
pub const STACK_SMALL: u64 = 128;
/// `StackBig` (internal/abi/stack.go; runtime/stack.go in 1.19).
pub const STACK_BIG: u64 = 4096;
/// `_StackCacheSize` (runtime/malloc.go).
pub const STACK_CACHE_SIZE: u64 = 32 * 1024;
/// `_PageSize` = `1 << _PageShift` (runtime/sizeclasses.go).
pub const PAGE_SIZE: u64 = 8192;
/// `minLegalPointer` (runtime/malloc.go).
pub const MIN_LEGAL_POINTER: u64 = 4096;
/// The initial `maxstacksize` (runtime/stack.go), which `maxstackceiling`
/// also starts at.
pub const MAXSTACKSIZE_BOOT: u64 = 1 << 20;
