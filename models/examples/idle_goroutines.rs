//! Memory per idle goroutine, measured by the OS: 1,000, 100,000 and
//! 1,000,000 goroutines spawned on `gostack::Runtime` and left idle, each
//! count in a fresh child process (resident memory is per process), with
//! the resident bytes per goroutine next to its 2 KiB stack and the
//! allocator's metadata. See `gostack_models::memory`.
//!
//! `cargo run --release -p gostack-models --example idle_goroutines`

use gostack_models::memory::idle_goroutines;
use std::process::Command;

fn main() {
    if let Some(n) = std::env::args().nth(1) {
        // The child: one measurement.
        let n: u64 = n.parse().unwrap_or_else(|e| {
            eprintln!("idle_goroutines: {n:?} is no count: {e}");
            std::process::exit(2)
        });
        match idle_goroutines(n) {
            Ok(m) => println!(
                "{:>10} {:>14.0} {:>12} {:>12.1} {:>10.3}",
                m.goroutines,
                m.rss_per_goroutine(),
                m.stack_bytes,
                m.metadata_bytes as f64 / m.goroutines as f64,
                m.rss_bytes as f64 / (1 << 20) as f64,
            ),
            Err(e) => {
                eprintln!("idle_goroutines: {e}");
                std::process::exit(1)
            }
        }
        return;
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| {
        eprintln!("idle_goroutines: cannot find this program: {e}");
        std::process::exit(1)
    });
    println!(
        "{:>10} {:>14} {:>12} {:>12} {:>10}",
        "goroutines", "RSS B/gor", "stack B", "meta B/gor", "RSS MiB"
    );
    for n in [1_000u64, 100_000, 1_000_000] {
        let status = Command::new(&exe).arg(n.to_string()).status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                eprintln!("idle_goroutines: the run of {n} failed ({s})");
                std::process::exit(1)
            }
            Err(e) => {
                eprintln!("idle_goroutines: cannot run {}: {e}", exe.display());
                std::process::exit(1)
            }
        }
    }
}
