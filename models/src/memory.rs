//! Memory per idle goroutine, as the operating system counts it.
//!
//! Go measures the commit charge per goroutine on Windows
//! (`TestWindowsStackMemory`, runtime/syscall_windows_test.go). This is the
//! same measurement for `gostack::Runtime` on Linux: the process's resident
//! memory (`VmRSS` of `/proc/self/status`) before and after `n` goroutines
//! are spawned and left idle at their entry frame, divided by `n`, next to
//! what the model says each one needs (its stack, and the allocator's
//! metadata for it). The arena is reserved with `MAP_NORESERVE`, so Linux
//! charges nothing for it until a page is touched: resident memory is the
//! figure that counts.
//!
//! The resident figure is the whole process's: measure in a process that
//! does nothing else (a test binary with this one test, or a child
//! process, as `models/examples/idle_goroutines.rs` does).

use gostack::Runtime;
use gostack_spec::goroutine::Func;
use gostack_spec::{Config, Ctx, Profile};

/// What `n` idle goroutines cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdleMemory {
    /// Goroutines spawned.
    pub goroutines: u64,
    /// Growth of the process's resident memory while they were spawned.
    pub rss_bytes: u64,
    /// Each goroutine's stack (all of the starting size).
    pub stack_bytes: u64,
    /// The allocator's metadata (`Stacks::metadata_bytes`), after.
    pub metadata_bytes: u64,
}

impl IdleMemory {
    /// Resident bytes per goroutine.
    pub fn rss_per_goroutine(&self) -> f64 {
        self.rss_bytes as f64 / self.goroutines.max(1) as f64
    }
}

/// The process's resident memory in bytes (`VmRSS`), or an error saying
/// why it could not be read.
pub fn resident_bytes() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("/proc/self/status has no VmRSS line")?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .map_err(|e| format!("VmRSS line {line:?}: {e}"))?;
    Ok(kib * 1024)
}

/// Spawns `n` goroutines on one P of a linux/amd64 Go 1.23 runtime, each
/// left idle at the entry frame of a 64-byte function, and measures what
/// they cost (see the module's docs). One goroutine is spawned first, so
/// that the first pool span and the runtime's own tables exist before the
/// measurement starts.
pub fn idle_goroutines(n: u64) -> Result<IdleMemory, String> {
    let profile = Profile::parse("linux", "amd64", false, "1.23").map_err(|t| t.to_string())?;
    let mut config = Config::new(profile);
    let stack = config.profile.consts().fixed_stack;
    // Room for every stack, a quarter more, and whole 4 MiB chunks.
    let chunk = 4 << 20;
    config.arena_bytes = ((n + 1) * stack * 5 / 4).div_ceil(chunk).max(16) * chunk;
    let mut rt = Runtime::new(config).map_err(|t| format!("Runtime::new: {t}"))?;
    let p = rt.create_p().map_err(|t| t.to_string())?;
    let f = rt
        .add_func(Func::new("idle", 64))
        .map_err(|t| t.to_string())?;
    let ctx = Ctx::on(p);
    rt.spawn(ctx, f).map_err(|t| format!("spawn: {t}"))?;
    let before = resident_bytes()?;
    for i in 0..n {
        rt.spawn(ctx, f)
            .map_err(|t| format!("spawn {} of {n}: {t}", i + 1))?;
    }
    let after = resident_bytes()?;
    Ok(IdleMemory {
        goroutines: n,
        rss_bytes: after.saturating_sub(before),
        stack_bytes: stack,
        metadata_bytes: rt.stacks().metadata_bytes(),
    })
}
