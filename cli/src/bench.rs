//! `gostack bench`: the implementation's speed and memory, each figure
//! next to a baseline measured in the same run.
//!
//! Every time is the best of several batches measured with
//! [`std::time::Instant`] (the minimum is the figure least disturbed by
//! other work on the machine). What it measures:
//! - alloc+free of a 2 KiB stack through a warm P cache, through the pool
//!   (no P), and the baseline: one anonymous mapping per stack, touched once
//!   and unmapped (what coroutine crates commonly do);
//! - pool churn: two threads on two Ps allocating bursts bigger than a P's
//!   cache and freeing them, against the same work on one thread and one P,
//!   and against one mapping per stack on two threads;
//! - the shapes of Go's runtime benchmarks BenchmarkStackCopy,
//!   BenchmarkStackCopyPtr, BenchmarkStackCopyWithStkobj and
//!   BenchmarkStackGrowth (same frames, frame sizes, pointer maps and stack
//!   objects as Go 1.23's compiler gives them on linux/amd64) run through
//!   [`gostack::Runtime`], each against its physical floor (a plain copy of
//!   the bytes the impl's copies move, into freshly allocated memory whose
//!   pages are touched first), and against Go's own figures when Go 1.23 is
//!   installed;
//! - metadata bytes per live 2 KiB stack with many stacks live
//!   ([`gostack::Stacks::metadata_bytes`]).
//!
//! Go's figures come from `go test -run=NONE -bench 'StackCopy|StackGrowth'
//! -cpu 1 -benchtime=1s -count=3 runtime` (`--quick`: 100ms, once), the
//! best of the counts: one P, as the impl's shapes run on one thread
//! (BenchmarkStackGrowth is a `RunParallel` benchmark, whose ns/op with two
//! Ps would be wall time over two goroutines' work).
//!
//! The shapes follow where the goroutine's innermost frame is from the
//! frame sizes and the prologue check, because the API's `slot_addr`
//! unwinds every frame of a goroutine written with `poke` (quadratic at a
//! depth of a million); after a growth
//! they read the new place once with `slot_addr` and leave that time out of
//! the figures (it is reported as `harness_resync_ns_per_op_left_out`).
//! The stores a Go function body makes to its frame (`*n--`, `s := ...`,
//! the spills of register arguments before `morestack`) are `poke`s.

use crate::shapes::{Kind, OpCounters, Shape};
use gostack::os::Arena;
use gostack::{Runtime, Stacks, P};
use gostack_spec::{Config, Profile, Stack, Throw};
use serde_json::{json, Value};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// The stack size of the allocator benchmarks.
const SIZE: u64 = 2048;
/// Stacks per churn burst: 64 x 2 KiB = 128 KiB, four P caches' worth.
const BURST: usize = 64;
/// The overall target for the Go shapes: the impl in at most this fraction
/// of Go's time.
const GO_TARGET: f64 = 0.25;
/// The metadata target: under this percentage of the live stack bytes.
const META_TARGET_PERCENT: f64 = 1.0;

/// How much work each measurement does.
struct Plan {
    fast_batches: u32,
    fast_per: u32,
    mmap_batches: u32,
    mmap_per: u32,
    churn_batches: u32,
    churn_bursts: u32,
    shape_runs: u32,
    growth_per_batch: u32,
    meta_stacks: u64,
    go_benchtime: &'static str,
    go_count: u32,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                fast_batches: 20,
                fast_per: 2_000,
                mmap_batches: 10,
                mmap_per: 50,
                churn_batches: 5,
                churn_bursts: 20,
                shape_runs: 1,
                growth_per_batch: 200,
                meta_stacks: 100_000,
                go_benchtime: "100ms",
                go_count: 1,
            }
        } else {
            Plan {
                fast_batches: 300,
                fast_per: 10_000,
                mmap_batches: 50,
                mmap_per: 200,
                churn_batches: 30,
                churn_bursts: 200,
                shape_runs: 7,
                growth_per_batch: 20_000,
                meta_stacks: 1_000_000,
                go_benchtime: "1s",
                go_count: 3,
            }
        }
    }
}

/// The profile every measurement uses: Go 1.23 on linux/amd64, the
/// platform Go's benchmark figures come from.
fn config(arena_bytes: u64) -> Config {
    let profile = Profile::parse("linux", "amd64", false, "1.23").expect("linux/amd64 is a port");
    let mut c = Config::new(profile);
    c.arena_bytes = arena_bytes;
    c
}

fn throw(what: &str, t: Throw) -> String {
    format!("bench: {what}: {t}")
}

/// The best of `batches` timings of `per` calls of `f`, in ns per call.
fn best_ns(batches: u32, per: u32, mut f: impl FnMut()) -> f64 {
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

// ---- the allocator --------------------------------------------------------

/// The three single-thread allocator figures, ns per alloc+free pair.
fn alloc(plan: &Plan) -> Result<Value, String> {
    let s = Stacks::new(&config(64 << 20)).map_err(|t| throw("arena", t))?;
    let mut p = s.new_p();
    let mut err = None;
    // One pair first, so the cache is warm (one refill).
    let warm = s
        .stackalloc(Some(&mut p), false, SIZE)
        .map_err(|t| throw("stackalloc", t))?;
    s.stackfree(Some(&mut p), false, warm)
        .map_err(|t| throw("stackfree", t))?;
    let cache = best_ns(plan.fast_batches, plan.fast_per, || {
        match s.stackalloc(Some(&mut p), false, black_box(SIZE)) {
            Ok(stk) => {
                if let Err(t) = s.stackfree(Some(&mut p), false, black_box(stk)) {
                    err = Some(t);
                }
            }
            Err(t) => err = Some(t),
        }
    });
    // Keep one stack out so the pool's span is not returned to the heap on
    // every free: this is the pool path itself, not span churn.
    let keep = s
        .stackalloc(None, false, SIZE)
        .map_err(|t| throw("stackalloc", t))?;
    let pool = best_ns(plan.fast_batches, plan.fast_per, || {
        match s.stackalloc(None, false, black_box(SIZE)) {
            Ok(stk) => {
                if let Err(t) = s.stackfree(None, false, black_box(stk)) {
                    err = Some(t);
                }
            }
            Err(t) => err = Some(t),
        }
    });
    s.stackfree(None, false, keep)
        .map_err(|t| throw("stackfree", t))?;
    if let Some(t) = err {
        return Err(throw("allocator loop", t));
    }
    let mmap = mmap_ns(plan)?;
    Ok(json!({
        "p_cache_alloc_free_ns": cache,
        "pool_alloc_free_ns": pool,
        "mmap_touch_munmap_ns": mmap,
        "mmap_over_p_cache": mmap / cache,
        "mmap_over_pool": mmap / pool,
    }))
}

/// One anonymous mapping of a stack's size (plus the OS layer's alignment
/// slack), one word written (the first touch), unmapped.
fn mmap_one() -> Result<(), String> {
    let a = Arena::sys_reserve(SIZE, 4096).map_err(|e| format!("bench: mmap: {e}"))?;
    if !a.store_word(a.base(), 1) {
        return Err("bench: cannot write a fresh mapping".into());
    }
    black_box(&a);
    Ok(())
}

fn mmap_ns(plan: &Plan) -> Result<f64, String> {
    let mut err = None;
    let ns = best_ns(plan.mmap_batches, plan.mmap_per, || {
        if let Err(e) = mmap_one() {
            err = Some(e);
        }
    });
    err.map_or(Ok(ns), Err)
}

// ---- churn ----------------------------------------------------------------

/// One burst on `p`: `BURST` stacks out, then all back.
fn burst(s: &Stacks, p: &mut P, held: &mut Vec<Stack>) -> Result<(), Throw> {
    for _ in 0..BURST {
        held.push(s.stackalloc(Some(p), false, black_box(SIZE))?);
    }
    for stk in held.drain(..) {
        s.stackfree(Some(p), false, black_box(stk))?;
    }
    Ok(())
}

/// Runs `work` on `threads` threads released together; the wall time from
/// the first thread's start to the last thread's finish, as the threads
/// themselves saw it.
fn timed_threads(
    threads: usize,
    work: &(dyn Fn() -> Result<(), String> + Sync),
) -> Result<Duration, String> {
    let start = Barrier::new(threads);
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                sc.spawn(|| {
                    start.wait();
                    let t0 = Instant::now();
                    work().map(|()| (t0, Instant::now()))
                })
            })
            .collect();
        let mut span: Option<(Instant, Instant)> = None;
        for h in hs {
            let (t0, t1) = h
                .join()
                .map_err(|_| "bench: a churn thread panicked".to_string())??;
            span = Some(match span {
                None => (t0, t1),
                Some((a, b)) => (a.min(t0), b.max(t1)),
            });
        }
        span.map(|(a, b)| b - a)
            .ok_or_else(|| "bench: no churn thread ran".to_string())
    })
}

/// The best over batches of `threads` threads each running `work`, in ns
/// per alloc+free pair (`pairs` in all the threads together).
fn churn_ns(
    plan: &Plan,
    threads: usize,
    pairs: u64,
    work: &(dyn Fn() -> Result<(), String> + Sync),
) -> Result<f64, String> {
    let mut best = f64::MAX;
    for _ in 0..plan.churn_batches {
        let t = timed_threads(threads, work)?;
        best = best.min(t.as_nanos() as f64 / pairs as f64);
    }
    Ok(best)
}

fn churn(plan: &Plan) -> Result<Value, String> {
    let s = Stacks::new(&config(256 << 20)).map_err(|t| throw("arena", t))?;
    let s = &s;
    // Each thread takes a P (a P is owned by one thread at a time).
    let ps: std::sync::Mutex<Vec<P>> = std::sync::Mutex::new(vec![s.new_p(), s.new_p()]);
    let ps = &ps;
    let on_p = |bursts: u32| {
        move || -> Result<(), String> {
            let mut p = ps
                .lock()
                .map_err(|_| "bench: P list poisoned".to_string())?
                .pop()
                .ok_or("bench: no free P")?;
            let mut held = Vec::with_capacity(BURST);
            let mut r = Ok(());
            for _ in 0..bursts {
                if let Err(t) = burst(s, &mut p, &mut held) {
                    r = Err(throw("churn", t));
                    break;
                }
            }
            ps.lock()
                .map_err(|_| "bench: P list poisoned".to_string())?
                .push(p);
            r
        }
    };
    let b = plan.churn_bursts;
    let one_round = on_p(b);
    // The same number of pairs in all three timings.
    let pairs = 2 * u64::from(b) * BURST as u64;
    let two = churn_ns(plan, 2, pairs, &one_round)?;
    let double_round = on_p(2 * b);
    let one = churn_ns(plan, 1, pairs, &double_round)?;
    let mmap_round = || -> Result<(), String> {
        let mut held = Vec::with_capacity(BURST);
        for _ in 0..b {
            for _ in 0..BURST {
                let a = Arena::sys_reserve(SIZE, 4096).map_err(|e| format!("bench: mmap: {e}"))?;
                a.store_word(a.base(), 1);
                held.push(a);
            }
            held.clear();
        }
        Ok(())
    };
    let mmap = churn_ns(plan, 2, pairs, &mmap_round)?;
    Ok(json!({
        "burst_stacks": BURST,
        "two_threads_two_ps_ns_per_pair": two,
        "one_thread_one_p_ns_per_pair": one,
        "mmap_two_threads_ns_per_pair": mmap,
        "two_threads_over_one_thread": two / one,
        "mmap_over_two_threads": mmap / two,
    }))
}

// ---- Go's stack benchmarks: the shapes are in shapes.rs ---------------------

/// The physical floor of one operation that grows a `start`-byte stack
/// `growths` times, copying `bytes` in all, with `used` bytes in use at the
/// deepest point: for each growth, a fresh zeroed buffer of the new size
/// whose pages (down to the deepest use) are touched, and a plain copy of
/// that growth's share of the bytes (shared in proportion to the old
/// sizes: each growth copies almost all of the old stack). Returns ns per
/// operation, the best of `runs`.
fn floor_ns(start: u64, growths: u64, bytes: u64, used: u64, runs: u32) -> f64 {
    if growths == 0 {
        return 0.0;
    }
    let sizes: Vec<u64> = (0..=growths).map(|i| start << i).collect();
    let old_total: u64 = sizes[..sizes.len() - 1].iter().sum();
    let mut best = f64::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        let mut old = vec![0u8; start as usize];
        touch(&mut old, used);
        let mut copied = 0;
        for i in 1..sizes.len() {
            let n = sizes[i] as usize;
            let c = if i == sizes.len() - 1 {
                bytes - copied
            } else {
                (u128::from(bytes) * u128::from(sizes[i - 1]) / u128::from(old_total)) as u64
            };
            let c = c.min(sizes[i - 1]) as usize;
            copied += c as u64;
            let mut new = vec![0u8; n];
            touch(&mut new, used);
            let (olen, nlen) = (old.len(), new.len());
            new[nlen - c..].copy_from_slice(&old[olen - c..]);
            black_box(&new);
            old = new;
        }
        black_box(&old);
        drop(old);
        best = best.min(t.elapsed().as_nanos() as f64);
    }
    best
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

/// The impl's figures for one shape.
struct ShapeRun {
    kind: Kind,
    /// Best time per operation, harness re-reads left out.
    impl_ns: f64,
    /// The physical floor per operation.
    floor_ns: f64,
    /// Growths per operation (BenchmarkStackGrowth: the first operation's
    /// growths spread over every operation timed, as Go's ns/op spreads
    /// them over b.N).
    growths: f64,
    /// Bytes copied per operation (spread likewise).
    bytes_copied: f64,
    /// Time per operation the harness spent re-reading the stack's place
    /// after growths (left out of `impl_ns`).
    resync_ns: f64,
    /// The starting stack size.
    start: u64,
}

fn shape_run(plan: &Plan, kind: Kind) -> Result<ShapeRun, String> {
    let cfg = config(1 << 30);
    let start = cfg.profile.consts().fixed_stack;
    let mut rt = Runtime::new(cfg).map_err(|t| throw("arena", t))?;
    let name = kind.go_name();
    let mut shape = Shape::new(&mut rt, kind, kind.go_depth()).map_err(|t| throw(name, t))?;
    let fail = |e: String| format!("bench: {name}: {e}");
    // A first operation warms up (and, for StackGrowth, grows the worker's
    // stack once, as Go's first iteration does).
    let (first, _) = shape.op(&mut rt).map_err(fail)?;
    let floor = floor_ns(
        start,
        first.growths,
        first.bytes_copied,
        shape.max_used(),
        plan.shape_runs.max(3),
    );
    let (per, batches) = if kind == Kind::Growth {
        // Many short operations per timing, as b.N iterations.
        (plan.growth_per_batch, plan.shape_runs.max(5))
    } else {
        (1, plan.shape_runs)
    };
    let mut best = f64::MAX;
    let mut best_resync = 0.0;
    for _ in 0..batches {
        let t = Instant::now();
        let mut resync = Duration::ZERO;
        for _ in 0..per {
            let (c, r) = shape.op(&mut rt).map_err(fail)?;
            resync += r;
            let expect = if kind == Kind::Growth {
                OpCounters {
                    growths: 0,
                    bytes_copied: 0,
                }
            } else {
                first
            };
            if c != expect {
                return Err(fail(format!("operations differ ({c} after {first})")));
            }
        }
        let ns = (t.elapsed().saturating_sub(resync)).as_nanos() as f64 / f64::from(per);
        if ns < best {
            best = ns;
            best_resync = resync.as_nanos() as f64 / f64::from(per);
        }
    }
    // Every operation of the run, the warm-up included.
    let total = if kind == Kind::Growth {
        (u64::from(per) * u64::from(batches) + 1) as f64
    } else {
        1.0
    };
    Ok(ShapeRun {
        kind,
        impl_ns: best,
        floor_ns: floor / total,
        growths: first.growths as f64 / total,
        bytes_copied: first.bytes_copied as f64 / total,
        resync_ns: best_resync,
        start,
    })
}

// ---- Go's own figures -----------------------------------------------------

/// The Go 1.23 toolchain: `$GOSTACK_GO_1_23/bin/go`, else
/// /usr/lib/go-1.23/bin/go.
fn go_binary() -> Option<PathBuf> {
    let root = std::env::var_os("GOSTACK_GO_1_23")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/go-1.23"));
    let go = root.join("bin/go");
    go.exists().then_some(go)
}

/// The `go test` arguments `gostack bench` runs.
fn go_args(plan: &Plan) -> Vec<String> {
    [
        "test",
        "-run=NONE",
        "-bench",
        "StackCopy|StackGrowth",
        "-cpu",
        "1",
        &format!("-benchtime={}", plan.go_benchtime),
        &format!("-count={}", plan.go_count),
        "runtime",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Parses `go test -bench` output: benchmark name (without the `-N`
/// GOMAXPROCS suffix) to the best ns/op over its lines.
pub(crate) fn parse_go_bench(out: &str) -> Vec<(String, f64)> {
    let mut best: Vec<(String, f64)> = Vec::new();
    for line in out.lines() {
        let mut w = line.split_whitespace();
        let Some(name) = w.next().filter(|n| n.starts_with("Benchmark")) else {
            continue;
        };
        let rest: Vec<&str> = w.collect();
        let Some(ns) = rest
            .windows(2)
            .find(|p| p[1] == "ns/op")
            .and_then(|p| p[0].parse::<f64>().ok())
        else {
            continue;
        };
        let name = match name.rsplit_once('-') {
            Some((base, procs)) if procs.chars().all(|c| c.is_ascii_digit()) => base,
            _ => name,
        };
        match best.iter_mut().find(|(n, _)| n == name) {
            Some((_, b)) => *b = b.min(ns),
            None => best.push((name.to_string(), ns)),
        }
    }
    best
}

/// Runs Go's benchmarks; `Ok(None)` when Go 1.23 is not installed.
/// Go's figures: the command run, and each benchmark's best ns/op.
type GoFigures = (String, Vec<(String, f64)>);

fn go_bench(plan: &Plan) -> Result<Option<GoFigures>, String> {
    let Some(go) = go_binary() else {
        return Ok(None);
    };
    let args = go_args(plan);
    let cmd = format!(
        "{} {}",
        go.display(),
        args.join(" ")
            .replace("StackCopy|StackGrowth", "'StackCopy|StackGrowth'")
    );
    errln!("gostack bench: running Go's benchmarks: {cmd}");
    let out = std::process::Command::new(&go)
        .args(&args)
        .output()
        .map_err(|e| format!("bench: cannot run {}: {e}", go.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "bench: `{cmd}` failed: {}{}",
            text.lines().last().unwrap_or(""),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    let parsed = parse_go_bench(&text);
    for k in Kind::ALL {
        if !parsed.iter().any(|(n, _)| n == k.go_name()) {
            return Err(format!(
                "bench: `{cmd}` printed no figure for {}",
                k.go_name()
            ));
        }
    }
    Ok(Some((cmd, parsed)))
}

// ---- metadata -------------------------------------------------------------

fn metadata(plan: &Plan) -> Result<Value, String> {
    let n = plan.meta_stacks;
    // The stacks, plus room for the page heap's own rounding.
    let arena = (n * SIZE).next_power_of_two() * 2;
    let s = Stacks::new(&config(arena)).map_err(|t| throw("arena", t))?;
    let mut p = s.new_p();
    let mut held = Vec::with_capacity(n as usize);
    for _ in 0..n {
        held.push(
            s.stackalloc(Some(&mut p), false, SIZE)
                .map_err(|t| throw("stackalloc", t))?,
        );
    }
    let meta = s.metadata_bytes();
    for stk in held {
        s.stackfree(Some(&mut p), false, stk)
            .map_err(|t| throw("stackfree", t))?;
    }
    let stack_bytes = n * SIZE;
    let percent = 100.0 * meta as f64 / stack_bytes as f64;
    Ok(json!({
        "live_stacks": n,
        "stack_bytes": stack_bytes,
        "metadata_bytes": meta,
        "bytes_per_stack": meta as f64 / n as f64,
        "percent": percent,
        "target_percent": META_TARGET_PERCENT,
        "met": percent < META_TARGET_PERCENT,
    }))
}

// ---- the command ----------------------------------------------------------

fn machine() -> Value {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let load: Vec<f64> = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| {
            s.split_whitespace()
                .take(3)
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    json!({ "nproc": nproc, "cpu": cpu, "loadavg": load })
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

/// Runs every measurement; returns the table (or the JSON object) to print.
pub fn run(json_out: bool, quick: bool) -> Result<String, String> {
    let plan = Plan::new(quick);
    let mach = machine();
    errln!("gostack bench: allocator");
    let alloc = alloc(&plan)?;
    errln!("gostack bench: churn");
    let churn = churn(&plan)?;
    let mut shapes = Vec::new();
    for k in Kind::ALL {
        errln!("gostack bench: {}", k.go_name());
        shapes.push(shape_run(&plan, k)?);
    }
    errln!("gostack bench: metadata");
    let meta = metadata(&plan)?;
    let go = go_bench(&plan)?;
    let go_ns = |k: Kind| {
        go.as_ref()
            .and_then(|(_, v)| v.iter().find(|(n, _)| n == k.go_name()).map(|(_, ns)| *ns))
    };
    let shape_json: Vec<Value> = shapes
        .iter()
        .map(|s| {
            let g = go_ns(s.kind);
            json!({
                "name": s.kind.go_name(),
                "depth": s.kind.go_depth(),
                "impl_ns_per_op": s.impl_ns,
                "floor_ns_per_op": s.floor_ns,
                // BenchmarkStackGrowth copies once in a whole run: its floor
                // per operation is that copy spread over every operation,
                // and a ratio against it says nothing.
                "impl_over_floor": if s.kind != Kind::Growth && s.floor_ns > 0.0 {
                    json!(s.impl_ns / s.floor_ns)
                } else {
                    Value::Null
                },
                "growths_per_op": s.growths,
                "bytes_copied_per_op": s.bytes_copied,
                "harness_resync_ns_per_op_left_out": s.resync_ns,
                "start_stack": s.start,
                "go_ns_per_op": g,
                "impl_over_go": g.map(|g| s.impl_ns / g),
                "target_impl_over_go": GO_TARGET,
                "met": g.map(|g| s.impl_ns / g <= GO_TARGET),
            })
        })
        .collect();
    let go_json = match &go {
        Some((cmd, figures)) => json!({
            "available": true,
            "command": cmd,
            "ns_per_op": figures.iter().map(|(n, v)| (n.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        }),
        None => json!({
            "available": false,
            "install": "ci/install-go.sh (or set GOSTACK_GO_1_23 to a Go 1.23 GOROOT)",
        }),
    };
    let all = json!({
        "quick": quick,
        "machine": mach,
        "alloc": alloc,
        "churn": churn,
        "go_shapes": shape_json,
        "metadata": meta,
        "go": go_json,
    });
    if json_out {
        return serde_json::to_string_pretty(&all)
            .map(|s| s + "\n")
            .map_err(|e| format!("bench: {e}"));
    }
    Ok(table(&all, &shapes, go.is_some()))
}

fn table(all: &Value, shapes: &[ShapeRun], have_go: bool) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let m = &all["machine"];
    let _ = writeln!(
        o,
        "machine: {} CPUs, {}, load average {}{}",
        m["nproc"],
        m["cpu"].as_str().unwrap_or("?"),
        m["loadavg"],
        if all["quick"] == json!(true) {
            "  (--quick: short runs, rough figures)"
        } else {
            ""
        }
    );
    let a = &all["alloc"];
    let _ = writeln!(
        o,
        "\nalloc+free of a 2 KiB stack (linux/amd64, Go 1.23 constants), best of batches"
    );
    let _ = writeln!(o, "{:<34} {:>12} {:>14}", "", "ns/pair", "vs mmap");
    let _ = writeln!(
        o,
        "{:<34} {:>12.1} {:>13.0}x",
        "gostack, warm P cache",
        f(a, "p_cache_alloc_free_ns"),
        f(a, "mmap_over_p_cache")
    );
    let _ = writeln!(
        o,
        "{:<34} {:>12.1} {:>13.0}x",
        "gostack, pool (no P)",
        f(a, "pool_alloc_free_ns"),
        f(a, "mmap_over_pool")
    );
    let _ = writeln!(
        o,
        "{:<34} {:>12.1} {:>14}",
        "mmap+touch+munmap per stack",
        f(a, "mmap_touch_munmap_ns"),
        "1x"
    );
    let c = &all["churn"];
    let _ = writeln!(
        o,
        "\nchurn: bursts of {BURST} stacks (4 P caches) out and back, ns per alloc+free pair"
    );
    let _ = writeln!(
        o,
        "{:<34} {:>12.1}",
        "gostack, 2 threads, 2 Ps",
        f(c, "two_threads_two_ps_ns_per_pair")
    );
    let _ = writeln!(
        o,
        "{:<34} {:>12.1}   (2 threads / 1 thread = {:.2}; 0.5 would be perfect scaling)",
        "gostack, 1 thread, 1 P, same work",
        f(c, "one_thread_one_p_ns_per_pair"),
        f(c, "two_threads_over_one_thread")
    );
    let _ = writeln!(
        o,
        "{:<34} {:>12.1}   (mmap / gostack 2 threads = {:.0}x)",
        "mmap+touch+munmap, 2 threads",
        f(c, "mmap_two_threads_ns_per_pair"),
        f(c, "mmap_over_two_threads")
    );
    let _ = writeln!(
        o,
        "\nGo's stack benchmarks, same shape through gostack::Runtime, ns per op (best of runs)"
    );
    let _ = writeln!(
        o,
        "{:<30} {:>14} {:>14} {:>10} {:>14} {:>10}  growths  bytes copied/op",
        "", "gostack", "floor", "/floor", "Go 1.23", "/Go"
    );
    for (s, j) in shapes
        .iter()
        .zip(all["go_shapes"].as_array().into_iter().flatten())
    {
        let go = j["go_ns_per_op"].as_f64();
        let _ = writeln!(
            o,
            "{:<30} {:>14.0} {:>14} {:>10} {:>14} {:>10}  {:>7}  {}",
            s.kind.go_name(),
            s.impl_ns,
            if s.floor_ns >= 10.0 {
                format!("{:.0}", s.floor_ns)
            } else {
                format!("{:.3}", s.floor_ns)
            },
            if s.kind != Kind::Growth && s.floor_ns > 0.0 {
                format!("{:.2}", s.impl_ns / s.floor_ns)
            } else {
                "-".into()
            },
            go.map_or("-".into(), |g| format!("{g:.0}")),
            go.map_or("-".into(), |g| format!("{:.3}", s.impl_ns / g)),
            if s.growths >= 1.0 {
                format!("{:.0}", s.growths)
            } else {
                format!("{:.1e}", s.growths)
            },
            if s.bytes_copied >= 10.0 {
                format!("{:.0}", s.bytes_copied)
            } else {
                format!("{:.1}", s.bytes_copied)
            },
        );
    }
    if have_go {
        let _ = writeln!(
            o,
            "target: gostack at most {GO_TARGET} of Go's time; Go: {}",
            all["go"]["command"].as_str().unwrap_or("")
        );
    } else {
        let _ = writeln!(
            o,
            "Go 1.23 NOT FOUND: the Go columns are empty and these are the impl's figures only.\n\
             Install it with ci/install-go.sh (or set GOSTACK_GO_1_23 to a Go 1.23 GOROOT)."
        );
    }
    let md = &all["metadata"];
    let _ = writeln!(
        o,
        "\nmetadata with {} live 2 KiB stacks: {} bytes, {:.1} bytes per stack, {:.3}% of the stack bytes (target < {META_TARGET_PERCENT}%)",
        md["live_stacks"], md["metadata_bytes"], f(md, "bytes_per_stack"), f(md, "percent")
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use gostack_spec::State;

    #[test]
    fn parses_go_bench_output() {
        let out = "goos: linux\nBenchmarkStackGrowth           \t 1729224\t       733.9 ns/op\n\
                   BenchmarkStackCopy-2 \t 16\t  94567699 ns/op\n\
                   BenchmarkStackCopy-2 \t 16\t  90000000 ns/op\t 0 B/op\nPASS\n";
        let v = parse_go_bench(out);
        assert_eq!(
            v,
            vec![
                ("BenchmarkStackGrowth".to_string(), 733.9),
                ("BenchmarkStackCopy".to_string(), 90_000_000.0)
            ]
        );
    }

    #[test]
    fn touch_writes_each_page_of_the_used_top() {
        let mut b = vec![0u8; 5 * 4096];
        touch(&mut b, 2 * 4096 + 1);
        let touched: Vec<usize> = (0..5)
            .filter(|&pg| b[pg * 4096..(pg + 1) * 4096].contains(&1))
            .collect();
        assert_eq!(touched, vec![2, 3, 4]);
    }

    /// Each shape does the same thing on the spec and on the impl (at a
    /// depth the spec's word map handles quickly): the growths the shape
    /// predicts happen, the same bytes are copied, and the snapshots are
    /// equal after every operation.
    #[test]
    fn shapes_agree_with_the_spec() {
        for kind in Kind::ALL {
            let depth = if kind == Kind::Growth { 10 } else { 400 };
            let mut spec = State::new(config(64 << 20)).unwrap();
            let mut imp = Runtime::new(config(64 << 20)).unwrap();
            let mut a = Shape::new(&mut spec, kind, depth).unwrap();
            let mut b = Shape::new(&mut imp, kind, depth).unwrap();
            for round in 0..3 {
                let (ca, _) = a.op(&mut spec).unwrap();
                let (cb, _) = b.op(&mut imp).unwrap();
                assert_eq!(ca, cb, "{kind:?} round {round}");
                if round == 0 {
                    assert!(ca.growths > 0 && ca.bytes_copied > 0, "{kind:?} grows");
                } else if kind == Kind::Growth {
                    assert_eq!(ca.growths, 0, "the worker's stack grew once");
                }
                assert!(
                    spec.snapshot() == imp.snapshot(),
                    "{kind:?} round {round}: snapshots differ"
                );
                assert!(
                    spec.world() == imp.world(),
                    "{kind:?} round {round}: worlds differ"
                );
                gostack_spec::check_invariants(&spec).unwrap();
            }
        }
    }
}
