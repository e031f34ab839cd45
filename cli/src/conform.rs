//! `gostack conform`: random differential runs of the implementation
//! against the spec on every core, with a coverage table, minimized
//! reproducers, and replay.
//!
//! Case `i` of a run is generated from seed `S + i` alone
//! ([`gostack_models::gen::case`]), so a run is reproducible from its seed
//! whatever the number of threads. A divergence is shrunk by delta
//! debugging ([`gostack_models::minimize`]) and written as a JSON case
//! (`{"profile": ..., "ops": [...]}`) that `--replay` runs step by step.

use gostack::Runtime;
use gostack_models::driver::{self, Coverage};
use gostack_models::harness::{self, Case, Divergence, Mismatch};
use gostack_models::{gen, minimize};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The implementation the runs check.
type Impl = Runtime;

/// The largest `--max-ops`: generation allocates the ops of a case at
/// once, and far larger bounds exhaust memory.
const MAX_OPS: usize = 100_000;

/// The longest `--seconds`: about 31 years.
const MAX_SECONDS: f64 = 1e9;

/// A positive number of seconds up to [`MAX_SECONDS`], as a duration.
fn parse_seconds(text: &str) -> Option<Duration> {
    let s: f64 = text.trim().parse().ok()?;
    if s > 0.0 && s <= MAX_SECONDS {
        Duration::try_from_secs_f64(s).ok()
    } else {
        None
    }
}

/// The most `--threads`.
const MAX_THREADS: u64 = 1024;

/// Arguments of `gostack conform`.
#[derive(clap::Args, Clone, Debug)]
pub struct ConformArgs {
    /// Run for this many seconds (default 10 when --cases is not given).
    #[arg(long, allow_hyphen_values = true)]
    seconds: Option<String>,
    /// Run this many cases (and stop then, or at --seconds).
    #[arg(long)]
    cases: Option<u64>,
    /// Seed of the first case (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Profiles as goos/goarch/release, optionally with settings after a
    /// colon: GODEBUG adaptivestackstart, invalidptr, gcshrinkstackoff,
    /// efence and runtime/stack.go's stackFromSystem, stackFaultOnFree,
    /// stackNoCache, stackPoisonCopy, each =0 or =1
    /// (linux/amd64/1.23:gcshrinkstackoff=1,invalidptr=0). Default: the profiles of
    /// the differential test. Repeat or separate with commas.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    profile: Vec<String>,
    /// Ops per case at most (1 to 100000).
    #[arg(long, default_value_t = 300)]
    max_ops: usize,
    /// Threads, 1 to 1024 (default: one per core).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_THREADS))]
    threads: Option<usize>,
    /// Run a reproducer (a JSON case) step by step, printing each result
    /// (the case names its profile and ops, so no other flag applies).
    #[arg(
        long,
        conflicts_with_all = [
            "seconds", "cases", "seed", "profile", "max_ops", "threads", "out", "keep_going",
        ]
    )]
    replay: Option<PathBuf>,
    /// Where a divergence's reproducer is written. It is created, and
    /// checked to take a file, before the run; a run that writes nothing
    /// there removes what it created.
    #[arg(long, default_value = "conform-out")]
    out: PathBuf,
    /// No progress on stderr: only the summary, the coverage table and
    /// errors.
    #[arg(long, conflicts_with = "replay")]
    quiet: bool,
    /// Print the summary as one JSON object on stdout (cases, ops, calls,
    /// seconds, seed, threads, profiles, divergences with their
    /// reproducers, coverage as name -> count, unreached names) instead of
    /// text.
    #[arg(long, conflicts_with = "replay")]
    json: bool,
    /// Go on after a divergence, collecting one case per distinct kind of
    /// divergence (the op and the result or state field that differs);
    /// each is minimized and written at the end.
    #[arg(long)]
    keep_going: bool,
}

/// Runs the subcommand: 0 when nothing diverged, 1 on a divergence, 2 on
/// bad input.
pub fn run(args: &ConformArgs) -> ExitCode {
    match &args.replay {
        Some(file) => replay(file),
        None => random(args),
    }
}

fn bad(msg: String) -> ExitCode {
    errln!("gostack: {msg}");
    ExitCode::from(2)
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// One case, a panic of either side counted as a divergence.
fn run_one(case: &Case) -> Result<driver::Ran, Box<Divergence>> {
    match catch_unwind(AssertUnwindSafe(|| driver::run_case::<Impl>(case, false))) {
        Ok(Ok(ran)) => Ok(ran),
        Ok(Err(Ok(d))) => Err(d),
        Ok(Err(Err(msg))) => Err(Box::new(Divergence {
            case: case.clone(),
            mismatch: Mismatch::Invariant {
                call: "(setup)".into(),
                violation: msg,
            },
        })),
        Err(p) => Err(Box::new(Divergence {
            case: case.clone(),
            mismatch: Mismatch::Panic {
                message: panic_message(&*p),
            },
        })),
    }
}

/// The reason in an error of [`harness::config`] or
/// [`harness::Harness::new`] about profile `p`, for a message that names
/// the flag first.
///
/// Those errors repeat the profile, and one of the harness's (a failed
/// prelude op) shows the op as a Debug dump: `p: prelude op AddFunc(FuncSpec
/// { .. }) failed: gostack: goroutine frames on mips are not modeled yet`.
/// Only the reason after `failed: ` is kept.
fn profile_error(p: &str, e: &str) -> String {
    let e = e.strip_prefix(&format!("profile {p:?}: ")).unwrap_or(e);
    let e = match e.split_once(" prelude op ") {
        Some((_, rest)) => rest.split_once(" failed: ").map_or(rest, |(_, why)| why),
        None => e,
    };
    e.strip_prefix("gostack: ").unwrap_or(e).to_string()
}

/// Counts a worker out when it ends, even by a panic, so that the
/// progress loop never waits for a worker that is gone.
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The profiles asked for: clap splits `--profile` at commas, which also
/// separate a profile's GODEBUG settings, so a piece without a `/` is
/// another setting of the profile before it.
fn profiles(args: &ConformArgs) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for piece in &args.profile {
        match out.last_mut() {
            Some(last) if !piece.contains('/') => {
                last.push(',');
                last.push_str(piece);
            }
            _ => out.push(piece.clone()),
        }
    }
    out
}

fn random(args: &ConformArgs) -> ExitCode {
    let profiles = profiles(args);
    for p in &profiles {
        if let Err(e) = harness::config(p) {
            return bad(format!("--profile {p}: {}", profile_error(p, &e)));
        }
        if let Err(e) = harness::Harness::<Impl>::new(p) {
            return bad(format!("--profile {p}: {}", profile_error(p, &e)));
        }
    }
    if !(1..=MAX_OPS).contains(&args.max_ops) {
        return bad(format!(
            "--max-ops {}: accepted: 1 to {MAX_OPS}",
            args.max_ops
        ));
    }
    let seconds = match (&args.seconds, args.cases) {
        (Some(text), _) => match parse_seconds(text) {
            Some(d) => Some(d),
            None => {
                return bad(format!(
                "--seconds {text}: accepted: a positive number of seconds, at most {MAX_SECONDS:e}"
            ))
            }
        },
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let created = match prepare_out(&args.out) {
        Ok(created) => created,
        Err(msg) => return bad(msg),
    };
    let shown: Vec<String> = if profiles.is_empty() {
        harness::PROFILES.iter().map(|p| p.to_string()).collect()
    } else {
        profiles.clone()
    };
    if !args.quiet {
        errln!(
            "gostack conform: seed {seed}, {threads} threads, profiles {}",
            shown.join(" ")
        );
    }

    let next = AtomicU64::new(0);
    let done_cases = AtomicU64::new(0);
    let done_ops = AtomicU64::new(0);
    let done_calls = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let running = AtomicUsize::new(threads);
    let broken: Mutex<Option<String>> = Mutex::new(None);
    let found: Mutex<Vec<Divergence>> = Mutex::new(Vec::new());
    let coverage = Mutex::new(Coverage::default());
    let start = Instant::now();
    let mut progress = Progress::new(args.quiet);
    let quiet_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let _running = Running(&running);
                gostack_spec::coverage::take();
                let mut cov = Coverage::default();
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if args.cases.is_some_and(|n| i >= n) {
                        break;
                    }
                    let case_seed = seed.wrapping_add(i);
                    let made = catch_unwind(AssertUnwindSafe(|| {
                        gen::case(case_seed, &profiles, args.max_ops)
                    }));
                    let case = match made {
                        Ok(case) => case,
                        Err(p) => {
                            broken
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert_with(|| {
                                    format!(
                                        "cannot generate case {i} (seed {case_seed}, --max-ops {}): {}",
                                        args.max_ops,
                                        panic_message(&*p)
                                    )
                                });
                            stop.store(true, Ordering::Relaxed);
                            break;
                        }
                    };
                    match run_one(&case) {
                        Ok(ran) => {
                            done_ops.fetch_add(ran.ops, Ordering::Relaxed);
                            done_calls.fetch_add(ran.calls, Ordering::Relaxed);
                            done_cases.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(d) => {
                            done_ops.fetch_add(d.case.ops.len() as u64, Ordering::Relaxed);
                            done_cases.fetch_add(1, Ordering::Relaxed);
                            let mut f = found.lock().unwrap_or_else(|e| e.into_inner());
                            if !f.iter().any(|x| x.key() == d.key()) {
                                f.push(*d);
                            }
                            if !args.keep_going {
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                    cov.take_thread();
                }
                cov.take_thread();
                coverage
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .merge(&cov);
            });
        }
        // Progress, until the workers stop.
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let all_done = args
                .cases
                .is_some_and(|n| done_cases.load(Ordering::Relaxed) >= n);
            let none_running = running.load(Ordering::Relaxed) == 0;
            if seconds.is_some_and(|d| start.elapsed() >= d) || all_done || none_running {
                stop.store(true, Ordering::Relaxed);
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
            progress.tick(|| status(&done_cases, &done_ops, &found, start));
        }
    });
    progress.finish(status(&done_cases, &done_ops, &found, start));
    if let Some(msg) = broken.into_inner().unwrap_or_else(|e| e.into_inner()) {
        std::panic::set_hook(quiet_hook);
        remove_empty(&created);
        return bad(msg);
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Reproducers are written before anything is printed, so that a
    // reader who stops reading early does not cost them.
    let found = std::mem::take(&mut *found.lock().unwrap_or_else(|e| e.into_inner()));
    let found: Vec<Found> = found
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let name = if i == 0 {
                format!("divergence-{seed}.json")
            } else {
                format!("divergence-{seed}-{i}.json")
            };
            minimize_and_write(d, &args.out, &name, args.quiet)
        })
        .collect();
    std::panic::set_hook(quiet_hook);
    let (cases, ops, calls) = (
        done_cases.load(Ordering::Relaxed),
        done_ops.load(Ordering::Relaxed),
        done_calls.load(Ordering::Relaxed),
    );
    let coverage = std::mem::take(&mut *coverage.lock().unwrap_or_else(|e| e.into_inner()));
    if args.json {
        let summary = Summary {
            cases,
            ops,
            calls,
            seconds: elapsed,
            seed,
            threads,
            profiles: &shown,
            found: &found,
            coverage: &coverage,
        };
        outln!("{}", summary.json());
        for f in &found {
            if let Err(e) = &f.path {
                errln!(
                    "gostack: --out {}: cannot write the reproducer: {e}",
                    args.out.display()
                );
            }
        }
    } else {
        outln!(
            "{cases} cases, {ops} ops in {elapsed:.1} s: {:.1} cases/s, {:.0} ops/s ({:.0} ops/s per thread); {calls} API calls, {:.0} calls/s; seed {seed}",
            cases as f64 / elapsed,
            ops as f64 / elapsed,
            ops as f64 / elapsed / threads as f64,
            calls as f64 / elapsed,
        );
        out!("{}", coverage.table());
        for f in &found {
            outln!("{}", f.text);
            match &f.path {
                Ok(p) => outln!(
                    "minimized reproducer ({} ops): {p}\nreplay: gostack conform --replay {p}",
                    f.ops
                ),
                Err(e) => errln!(
                    "gostack: --out {}: cannot write the reproducer: {e}",
                    args.out.display()
                ),
            }
        }
    }
    if found.is_empty() {
        remove_empty(&created);
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The progress line: counts so far.
fn status(
    cases: &AtomicU64,
    ops: &AtomicU64,
    found: &Mutex<Vec<Divergence>>,
    start: Instant,
) -> String {
    let (c, o) = (cases.load(Ordering::Relaxed), ops.load(Ordering::Relaxed));
    let div = found.lock().map(|f| f.len()).unwrap_or(0);
    format!(
        "conform: {c} cases, {o} ops, {:.0} ops/s, {div} divergences",
        o as f64 / start.elapsed().as_secs_f64().max(1e-9)
    )
}

/// How often the progress line is redrawn on a terminal.
const REDRAW_EVERY: Duration = Duration::from_millis(500);

/// How often a plain progress line is written when stderr is not a
/// terminal (a CI log, a file).
const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// The progress display on stderr. On a terminal it is one line redrawn in
/// place (indicatif); elsewhere it is a plain line every [`PLAIN_EVERY`],
/// with no carriage returns; with `--quiet` it is nothing.
struct Progress {
    /// The line, when stderr is a terminal and the run is not quiet.
    bar: Option<ProgressBar>,
    quiet: bool,
    last: Instant,
}

impl Progress {
    fn new(quiet: bool) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        if !quiet && !bar.is_hidden() {
            // Turns the spinner between the redraws of the counts.
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        Progress {
            bar: (!quiet && !bar.is_hidden()).then_some(bar),
            quiet,
            last: Instant::now(),
        }
    }

    /// Shows `status()` if it is time to.
    fn tick(&mut self, status: impl FnOnce() -> String) {
        let due = |every| self.last.elapsed() >= every;
        match &self.bar {
            Some(bar) if due(REDRAW_EVERY) => bar.set_message(status()),
            None if !self.quiet && due(PLAIN_EVERY) => errln!("{}", status()),
            _ => return,
        }
        self.last = Instant::now();
    }

    /// Clears the line and writes the final status as a plain line.
    fn finish(self, status: String) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
        if !self.quiet {
            errln!("{status}");
        }
    }
}

/// The final summary of a run, for `--json`.
struct Summary<'a> {
    cases: u64,
    ops: u64,
    calls: u64,
    seconds: f64,
    seed: u64,
    threads: usize,
    profiles: &'a [String],
    found: &'a [Found],
    coverage: &'a Coverage,
}

impl Summary<'_> {
    /// One JSON object. `coverage` maps every spec branch and reachable
    /// Go throw (reached or not) and every other throw seen to its count;
    /// `unreached` lists the branches and reachable throws never reached.
    fn json(&self) -> serde_json::Value {
        use gostack_spec::coverage::{BRANCHES, REACHABLE_GO_THROWS};
        let mut coverage = serde_json::Map::new();
        let listed = BRANCHES
            .iter()
            .copied()
            .chain(REACHABLE_GO_THROWS.iter().map(|t| t.message()));
        for name in listed {
            coverage.insert(name.to_string(), 0.into());
        }
        for (name, count) in &self.coverage.hits {
            coverage.insert(name.to_string(), (*count).into());
        }
        let divergences: Vec<serde_json::Value> = self
            .found
            .iter()
            .map(|f| {
                serde_json::json!({
                    "divergence": f.text,
                    "ops": f.ops,
                    "reproducer": f.path.as_ref().ok(),
                    "write_error": f.path.as_ref().err().map(|e| e.to_string()),
                })
            })
            .collect();
        serde_json::json!({
            "cases": self.cases,
            "ops": self.ops,
            "calls": self.calls,
            "seconds": self.seconds,
            "seed": self.seed,
            "threads": self.threads,
            "profiles": self.profiles,
            "divergences": divergences,
            "coverage": coverage,
            "unreached": self.coverage.unreached(),
        })
    }
}

/// Makes sure that reproducers can be written to `dir` before the run
/// starts: creates it, then writes and removes a file there. Returns the
/// directories it created, deepest first, for [`remove_empty`]; `Err` is
/// a one-line message naming `--out`.
fn prepare_out(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let created: Vec<PathBuf> = dir
        .ancestors()
        .filter(|d| !d.as_os_str().is_empty())
        .take_while(|d| !d.exists())
        .map(Path::to_path_buf)
        .collect();
    let fail = |what: &str, e: std::io::Error| {
        remove_empty(&created);
        format!("--out {}: cannot {what}: {e}", dir.display())
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("create the directory", e))?;
    let probe = dir.join(format!(".gostack-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| fail("write a file there", e))?;
    std::fs::remove_file(&probe).map_err(|e| fail("remove a file there", e))?;
    Ok(created)
}

/// Removes the directories [`prepare_out`] created, deepest first, where
/// they are still empty (nothing was written to them).
fn remove_empty(created: &[PathBuf]) {
    for d in created {
        if std::fs::remove_dir(d).is_err() {
            break;
        }
    }
}

/// A divergence, minimized, and where its reproducer went.
struct Found {
    /// The minimized divergence, as it prints.
    text: String,
    /// Ops of the minimized case.
    ops: usize,
    /// The reproducer's path, or why it could not be written.
    path: Result<String, std::io::Error>,
}

/// Minimizes a divergence and writes its reproducer as `out/name`.
fn minimize_and_write(d: &Divergence, out: &std::path::Path, name: &str, quiet: bool) -> Found {
    if !quiet {
        errln!(
            "gostack conform: divergence in a case of {} ops; minimizing",
            d.case.ops.len()
        );
    }
    let (case, min) = match &d.mismatch {
        // A panic cannot be located by step; keep the case as it is.
        Mismatch::Panic { .. } => (d.case.clone(), Box::new(d.clone())),
        _ => minimize::<Impl>(d, 4000),
    };
    let path = out.join(name);
    let written = std::fs::create_dir_all(out)
        .and_then(|_| {
            serde_json::to_string_pretty(&case)
                .map_err(std::io::Error::other)
                .and_then(|j| std::fs::write(&path, j + "\n"))
        })
        .map(|_| path.display().to_string());
    Found {
        text: min.to_string(),
        ops: case.ops.len(),
        path: written,
    }
}

fn replay(file: &std::path::Path) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return bad(format!("--replay {}: cannot read it: {e}", file.display())),
    };
    let case: Case = match serde_json::from_str(&text) {
        Ok(c) => c,
        Err(e) => {
            return bad(format!(
                "--replay {}: not a reproducer ({e}); expected {{\"profile\": \"linux/amd64/1.23\", \"ops\": [...]}}",
                file.display()
            ))
        }
    };
    outln!("profile {}, {} ops", case.profile, case.ops.len());
    let r = catch_unwind(AssertUnwindSafe(|| {
        driver::replay::<Impl>(&case, |i, op, r| outln!("step {i}: {op:?} -> {r:?}"))
    }));
    match r {
        Ok(Ok(ran)) => {
            outln!(
                "no divergence: {} ops, {} failed alike on both sides",
                ran.ops,
                ran.failed
            );
            if let Some(t) = &ran.died {
                outln!(
                    "the case ended at op {} with the fatal Go throw \"{t}\" ({} ops not run)",
                    ran.ops - 1,
                    case.ops.len() as u64 - ran.ops
                );
            }
            ExitCode::SUCCESS
        }
        Ok(Err(Ok(d))) => {
            outln!("{d}");
            ExitCode::from(1)
        }
        Ok(Err(Err(msg))) => bad(format!(
            "--replay {}: profile {}: {}",
            file.display(),
            case.profile,
            profile_error(&case.profile, &msg)
        )),
        Err(p) => {
            outln!("panic: {}", panic_message(&*p));
            ExitCode::from(1)
        }
    }
}
