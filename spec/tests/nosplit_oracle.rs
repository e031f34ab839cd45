//! The real Go linker as the oracle for `spec::nosplit`.
//!
//! - `random_graphs_match_the_linker`: random call graphs (nosplit and
//!   splittable functions, frames clustered around the limit, huge frames,
//!   cycles, indirect calls, unreachable functions) written as stanzas of
//!   Go's test/nosplit.go, built with `go build` for amd64, 386 and arm64
//!   exactly as that test builds a stanza, by Go 1.19 and Go 1.23 in turn;
//!   the spec's accept/reject must equal the build's, and when both reject
//!   an acyclic graph, the spec's report must be the linker's output byte
//!   for byte. Where every failing function lies on a cycle nothing else
//!   calls, Go's own verdict depends on its map order
//!   (`Report::may_report_nothing`) and either outcome is accepted. The seed is printed;
//!   `GOSTACK_NOSPLIT_SEED` replays one, `GOSTACK_NOSPLIT_GRAPHS` raises the
//!   count (default 150).
//! - `assembler_frames_match_debugnosplit`: for every architecture the table
//!   names with Go 1.23, and amd64, 386 and arm64 with Go 1.19 (every
//!   architecture with `GOSTACK_NOSPLIT_FULL` set), a program of probe
//!   functions (frames from 0 to
//!   100000, nosplit and splittable, leaf, calling, calling indirectly) built
//!   with `-ldflags=-debugnosplit`: the edges the linker prints for every
//!   function must be the spec's.
//! - `build_failures_match_go`: undefined and duplicate functions,
//!   unreachable over-limit and undefined references.

mod common;

use gostack_spec::nosplit::{
    read_stanzas, Call, Func, Program, StackCheck, StanzaOutcome, Sym, Verdict,
};
use gostack_spec::{Profile, Release};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------------------
// Building as test/nosplit.go does.

/// The `#define REGISTER` of test/nosplit.go's switch.
fn register(arch: &str) -> &'static str {
    match arch {
        "mips" | "mipsle" | "mips64" | "mips64le" | "loong64" | "arm" | "arm64" => "(R0)",
        "ppc64" | "ppc64le" => "(CTR)",
        "riscv64" => "A0",
        "s390x" => "R10",
        _ => "AX",
    }
}

/// One function as the harness writes it.
struct AsmFunc {
    name: String,
    size: u64,
    nosplit: bool,
    /// The body as the stanza line has it, e.g. " call f callind".
    body: String,
}

/// main.go and asm.s for the functions, as test/nosplit.go writes them
/// (the functions are already adjusted).
fn sources(arch: &str, funcs: &[AsmFunc]) -> (String, String) {
    let mut go = String::from("package main\n");
    let mut asm = format!("#define REGISTER {}\n", register(arch));
    go += "func main0()\n";
    go += "func main() { main0() }\n";
    asm += "TEXT ·main0(SB),0,$0-0\n\tCALL ·start(SB)\n";
    for f in funcs {
        let flag = if f.nosplit { ",7" } else { ",0" };
        // callRE and callindRE: `call f` becomes `CALL ·f(SB);`, `callind`
        // becomes `CALL REGISTER;`.
        let mut body = String::new();
        let mut words = f.body.split_whitespace();
        while let Some(w) = words.next() {
            match w {
                "call" => body += &format!(" CALL ·{}(SB);", words.next().unwrap_or("")),
                "callind" => body += " CALL REGISTER;",
                other => body += &format!(" {other}"),
            }
        }
        go += &format!("func {}()\n", f.name);
        asm += &format!(
            "TEXT ·{}(SB){flag},${}-0\n\t{body}\n\tRET\n\n",
            f.name, f.size,
        );
    }
    (go, asm)
}

/// Runs `go build` in a fresh module directory under `scratch`; returns
/// whether it succeeded and its combined output without the `# module`
/// header line.
fn build(
    release: Release,
    arch: &str,
    scratch: &Path,
    cache: &Path,
    go_src: &str,
    asm: &str,
    ldflags: Option<&str>,
) -> (bool, String) {
    let dir = tempfile::tempdir_in(scratch).unwrap();
    std::fs::write(dir.path().join("go.mod"), "module go-test-nosplit\n").unwrap();
    std::fs::write(dir.path().join("main.go"), go_src).unwrap();
    std::fs::write(dir.path().join("asm.s"), asm).unwrap();
    let mut cmd = common::go(release.name(), dir.path());
    cmd.env("GOCACHE", cache)
        .env("GOOS", "linux")
        .env("GOARCH", arch)
        .env("GOPATH", dir.path().join("_gopath"))
        .arg("build");
    if let Some(f) = ldflags {
        cmd.arg(format!("-ldflags={f}"));
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run go{} build: {e}", release.name()));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text += &String::from_utf8_lossy(&out.stderr);
    let text = match text.strip_prefix("# go-test-nosplit\n") {
        Some(rest) => rest.to_string(),
        None => text,
    };
    (out.status.success(), text)
}

/// Runs `jobs` on as many threads as there are cores (at least 2).
fn parallel<J: Send + 'static, R: Send + 'static>(
    jobs: Vec<J>,
    run: impl Fn(J) -> R + Send + Sync + 'static,
) -> Vec<R> {
    let n = jobs.len();
    let queue = Arc::new(Mutex::new(
        jobs.into_iter().enumerate().collect::<VecDeque<_>>(),
    ));
    let results = Arc::new(Mutex::new((0..n).map(|_| None).collect::<Vec<Option<R>>>()));
    let run = Arc::new(run);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (queue, results, run) = (queue.clone(), results.clone(), run.clone());
            std::thread::spawn(move || loop {
                let job = queue.lock().unwrap().pop_front();
                let Some((i, job)) = job else { break };
                let r = run(job);
                results.lock().unwrap()[i] = Some(r);
            })
        })
        .collect();
    for h in handles {
        h.join().expect("build thread panicked");
    }
    let results = Arc::try_unwrap(results).ok().unwrap().into_inner().unwrap();
    results.into_iter().map(|r| r.unwrap()).collect()
}

/// The Go build cache of a release, shared by every nosplit test of this
/// target directory (Go's cache is safe for concurrent builds and keyed by
/// toolchain, so it only saves compiling each runtime again).
fn go_cache(release: Release) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("nosplit-gocache-{}", release.name()))
}

/// The scratch directory of this test binary, for the builds' module
/// directories.
struct Scratch {
    dir: tempfile::TempDir,
    /// The (release, arch) caches already warmed.
    warm: Mutex<Vec<(Release, &'static str)>>,
}

static SCRATCH: std::sync::OnceLock<Scratch> = std::sync::OnceLock::new();

/// The shared scratch, its caches warmed for `arches` in parallel first (so
/// that the jobs do not all compile the runtime at once).
fn scratch(arches: &[&'static str]) -> &'static Scratch {
    for &release in Release::ALL {
        common::goroot(release.name());
    }
    let scratch = SCRATCH.get_or_init(|| Scratch {
        dir: tempfile::tempdir().unwrap(),
        warm: Mutex::new(Vec::new()),
    });
    let mut jobs = Vec::new();
    {
        let mut warm = scratch.warm.lock().unwrap();
        for &release in Release::ALL {
            for &arch in arches {
                if !warm.contains(&(release, arch)) {
                    warm.push((release, arch));
                    jobs.push((release, arch, scratch.path(), scratch.cache(release)));
                }
            }
        }
    }
    let warm = |(release, arch, path, cache): (Release, &'static str, PathBuf, PathBuf)| {
        let f = AsmFunc {
            name: "start".into(),
            size: 0,
            nosplit: false,
            body: String::new(),
        };
        let (go, asm) = sources(arch, &[f]);
        let (ok, out) = build(release, arch, &path, &cache, &go, &asm, None);
        assert!(
            ok,
            "go{} {arch}: a trivial build fails:\n{out}",
            release.name()
        );
    };
    parallel(jobs, warm);
    scratch
}

impl Scratch {
    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn cache(&self, release: Release) -> PathBuf {
        go_cache(release)
    }
}

// ---------------------------------------------------------------------------
// Random graphs.

/// splitmix64: small, seedable, good enough to spread test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A random stanza: its text, and the functions as the harness would write
/// them for a 64-bit (`ptr` 8) or 32-bit machine.
struct Graph {
    text: String,
    funcs: Vec<(String, u64, bool, String)>,
}

fn random_graph(rng: &mut Rng) -> Graph {
    let n = 1 + rng.below(6) as usize;
    let names: Vec<String> = (0..n)
        .map(|i| {
            if i == 0 {
                "start".into()
            } else {
                format!("f{i}")
            }
        })
        .collect();
    let mut funcs = Vec::new();
    let mut first_nosplit = true;
    for i in 0..n {
        let nosplit = rng.chance(65);
        // Frames around the limit for the first nosplit function (which the
        // harness grows by 672), small ones after it, around StackSmall for
        // splittable leaves, and now and then a huge one.
        let mut size = if rng.chance(4) {
            [4096, 10_000, 100_000][rng.below(3) as usize]
        } else if nosplit && first_nosplit {
            8 * rng.below(24)
        } else if nosplit {
            8 * rng.below(10)
        } else if rng.chance(50) {
            96 + 8 * rng.below(6)
        } else {
            8 * rng.below(40)
        };
        if nosplit {
            first_nosplit = false;
        }
        // Now and then a size that 64-bit machines skip.
        if rng.chance(3) {
            size += 4;
        }
        let mut body = String::new();
        let calls = rng.below(4);
        for _ in 0..calls {
            if rng.chance(15) {
                body += " callind";
            } else {
                // Mostly forward calls; sometimes back (cycles) or to self.
                let j = if i + 1 < n && rng.chance(88) {
                    i + 1 + rng.below((n - i - 1) as u64) as usize
                } else {
                    rng.below(n as u64) as usize
                };
                body += &format!(" call {}", names[j]);
            }
        }
        funcs.push((names[i].clone(), size, nosplit, body));
    }
    let mut text = String::new();
    for (k, (name, size, nosplit, body)) in funcs.iter().enumerate() {
        if k > 0 {
            text += if rng.chance(30) { "; " } else { "\n" };
        }
        text += &format!(
            "{name} {size}{}{body}",
            if *nosplit { " nosplit" } else { "" }
        );
    }
    Graph { text, funcs }
}

/// The harness's functions for `arch`, or `None` when it skips the stanza.
fn harness_funcs(g: &Graph, arch: &str) -> Option<Vec<AsmFunc>> {
    let ptr = if arch == "386" { 4 } else { 8 };
    let mut adjusted = false;
    let mut out = Vec::new();
    for (name, size, nosplit, body) in &g.funcs {
        if size % ptr == 4 {
            return None;
        }
        let mut size = *size;
        if !adjusted && *nosplit {
            adjusted = true;
            size += 800 - 128;
        }
        out.push(AsmFunc {
            name: name.clone(),
            size,
            nosplit: *nosplit,
            body: body.clone(),
        });
    }
    Some(out)
}

/// How one build of a random graph went, when the spec and Go agree.
enum Outcome {
    Accept,
    /// Both reject; acyclic, so the report text was compared too.
    RejectSameText,
    /// Both reject; the graph has a cycle, so only the verdict is compared.
    RejectCyclic,
    /// The spec rejects and flags that Go may miss it; Go did.
    GoMissed,
}

#[test]
fn random_graphs_match_the_linker() {
    const ARCHES: [&str; 3] = ["amd64", "386", "arm64"];
    let seed = std::env::var("GOSTACK_NOSPLIT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let count: usize = std::env::var("GOSTACK_NOSPLIT_GRAPHS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    println!(
        "nosplit oracle: seed {seed} ({count} graphs; replay with GOSTACK_NOSPLIT_SEED={seed})"
    );
    eprintln!(
        "nosplit oracle: seed {seed} ({count} graphs; replay with GOSTACK_NOSPLIT_SEED={seed})"
    );
    let mut rng = Rng(seed);
    let graphs: Vec<Arc<Graph>> = (0..count)
        .map(|_| Arc::new(random_graph(&mut rng)))
        .collect();
    let scratch = scratch(&ARCHES);

    struct Job {
        n: usize,
        graph: Arc<Graph>,
        release: Release,
        arch: &'static str,
        scratch: PathBuf,
        cache: PathBuf,
    }
    let mut jobs = Vec::new();
    for (n, g) in graphs.iter().enumerate() {
        // Each graph goes to one release, alternately.
        for &release in &Release::ALL[n % 2..n % 2 + 1] {
            for arch in ARCHES {
                jobs.push(Job {
                    n,
                    graph: g.clone(),
                    release,
                    arch,
                    scratch: scratch.path(),
                    cache: scratch.cache(release),
                });
            }
        }
    }
    // (graph, release, arch, spec says reject, problem)
    let results = parallel(jobs, |j: Job| {
        let ctx = format!(
            "graph {} go{} {}:\n{}\n",
            j.n,
            j.release.name(),
            j.arch,
            j.graph.text
        );
        let stanzas = match read_stanzas(&j.graph.text) {
            Ok(s) => s,
            Err(e) => return (j.n, None, Some(format!("{ctx}reader: {e}"))),
        };
        let profile = Profile::parse("linux", j.arch, false, j.release.name()).unwrap();
        let outcome = match stanzas.as_slice() {
            [s] => s.check(&profile),
            _ => {
                return (
                    j.n,
                    None,
                    Some(format!("{ctx}read {} stanzas", stanzas.len())),
                )
            }
        };
        let verdict = match outcome {
            Ok(StanzaOutcome::Ran(v)) => v,
            Ok(StanzaOutcome::Skipped { .. }) => {
                if harness_funcs(&j.graph, j.arch).is_some() {
                    return (
                        j.n,
                        None,
                        Some(format!("{ctx}spec skips, harness does not")),
                    );
                }
                return (j.n, None, None);
            }
            Ok(other) => return (j.n, None, Some(format!("{ctx}{other:?}"))),
            Err(e) => return (j.n, None, Some(format!("{ctx}{e}"))),
        };
        let Some(funcs) = harness_funcs(&j.graph, j.arch) else {
            return (
                j.n,
                None,
                Some(format!("{ctx}harness skips, spec does not")),
            );
        };
        let (go, asm) = sources(j.arch, &funcs);
        let (ok, out) = build(j.release, j.arch, &j.scratch, &j.cache, &go, &asm, None);
        let problem = match (&verdict, ok) {
            (Verdict::Accept, true) => None,
            // Go's verdict depends on its map order here (see
            // Report::may_report_nothing): either outcome is Go's.
            (Verdict::Reject(r), true) if r.may_report_nothing => {
                return (j.n, Some(Outcome::GoMissed), None);
            }
            (Verdict::Reject(r), false) => {
                if !out.contains("nosplit stack over") {
                    Some(format!("{ctx}the build fails for another reason:\n{out}"))
                } else if !r.cyclic && !r.truncated && r.text != out {
                    Some(format!("{ctx}report differs\nspec:\n{}go:\n{out}", r.text))
                } else {
                    None
                }
            }
            (v, ok) => Some(format!(
                "{ctx}spec: {v}\ngo build {}:\n{out}\n{asm}",
                if ok { "succeeds" } else { "fails" }
            )),
        };
        let outcome = match &verdict {
            Verdict::Reject(r) if r.cyclic => Outcome::RejectCyclic,
            Verdict::Reject(_) => Outcome::RejectSameText,
            _ => Outcome::Accept,
        };
        (j.n, Some(outcome), problem)
    });
    let mut failures = Vec::new();
    let (mut built, mut rejected, mut same_text, mut missed) = (0, 0, 0, 0);
    for (_, outcome, problem) in results {
        if let Some(o) = outcome {
            built += 1;
            match o {
                Outcome::Accept => {}
                Outcome::RejectSameText => {
                    rejected += 1;
                    same_text += 1;
                }
                Outcome::RejectCyclic => rejected += 1,
                Outcome::GoMissed => missed += 1,
            }
        }
        failures.extend(problem);
    }
    println!(
        "nosplit oracle: {built} builds: {} accepted by both, {rejected} rejected by both \
         ({same_text} acyclic, with the linker's exact report), {missed} over-limit cycles \
         that this run of Go's linker failed to report; {} mismatches",
        built - rejected - missed,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "seed {seed}: {} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Both outcomes must be well represented, or the test proves little.
    assert!(
        rejected * 5 >= built
            && (built - rejected - missed) * 5 >= built
            && same_text * 10 >= built,
        "{rejected} of {built} rejected, {same_text} with the report compared"
    );
}

// ---------------------------------------------------------------------------
// The assembler's frames on every architecture.

fn probe_program(ptr: u64) -> Program {
    let mut frames: Vec<u64> = vec![0, 8, 16, 24, 32, 64, 96, 104, 112, 120, 128, 136, 256];
    if ptr == 4 {
        frames.extend([4, 12, 100, 116, 124, 132]);
    }
    let mut funcs = vec![Func {
        name: "main0".into(),
        frame: 0,
        nosplit: false,
        calls: vec![Call::Direct("start".into())],
    }];
    let mut start_calls = Vec::new();
    let mut probes = Vec::new();
    let bodies: [(&str, Vec<Call>); 4] = [
        ("leaf", vec![]),
        ("call", vec![Call::Direct("tgt".into())]),
        ("ind", vec![Call::Indirect]),
        (
            "both",
            vec![Call::Indirect, Call::Direct("tgt".into()), Call::Indirect],
        ),
    ];
    for nosplit in [true, false] {
        let mut fs = frames.clone();
        if !nosplit {
            fs.extend([1000, 5000, 100_000]);
        }
        for &frame in &fs {
            for (kind, calls) in &bodies {
                let name = format!("{}_{kind}_{frame}", if nosplit { "ns" } else { "sp" });
                start_calls.push(Call::Direct(name.clone()));
                probes.push(Func {
                    name,
                    frame,
                    nosplit,
                    calls: calls.clone(),
                });
            }
        }
    }
    funcs.push(Func {
        name: "start".into(),
        frame: 0,
        nosplit: false,
        calls: start_calls,
    });
    funcs.extend(probes);
    funcs.push(Func {
        name: "tgt".into(),
        frame: 0,
        nosplit: true,
        calls: vec![],
    });
    Program {
        funcs,
        entry: "main0".into(),
    }
}

fn program_sources(arch: &str, p: &Program) -> (String, String) {
    let funcs: Vec<AsmFunc> = p
        .funcs
        .iter()
        .filter(|f| f.name != "main0")
        .map(|f| AsmFunc {
            name: f.name.clone(),
            size: f.frame,
            nosplit: f.nosplit,
            body: f
                .calls
                .iter()
                .map(|c| match c {
                    Call::Direct(n) => format!(" call {n}"),
                    Call::Indirect => " callind".to_string(),
                })
                .collect(),
        })
        .collect();
    sources(arch, &funcs)
}

#[test]
fn assembler_frames_match_debugnosplit() {
    const ARCHES: &[&str] = &[
        "386", "amd64", "arm", "arm64", "loong64", "mips", "mipsle", "mips64", "mips64le", "ppc64",
        "ppc64le", "riscv64", "s390x",
    ];
    // Go 1.19 on the architectures the random oracle also builds (their
    // runtimes are compiled once for both tests); every architecture with
    // GOSTACK_NOSPLIT_FULL set (each new one costs a runtime compile).
    let full = std::env::var_os("GOSTACK_NOSPLIT_FULL").is_some();
    let scratch = scratch(&[]);
    let mut jobs = Vec::new();
    for &release in Release::ALL {
        for &arch in ARCHES {
            let oracle_arch = ["amd64", "386", "arm64"].contains(&arch);
            if release == Release::Go1_19 && !oracle_arch && !full {
                continue;
            }
            jobs.push((release, arch, scratch.path(), scratch.cache(release)));
        }
    }
    type Job = (Release, &'static str, PathBuf, PathBuf);
    let results = parallel(jobs, |(release, arch, dir, cache): Job| {
        let profile = Profile::parse("linux", arch, false, release.name()).unwrap();
        let program = probe_program(profile.goarch.ptr_size());
        let (go, asm) = program_sources(arch, &program);
        let (ok, out) = build(
            release,
            arch,
            &dir,
            &cache,
            &go,
            &asm,
            Some("-debugnosplit"),
        );
        if !ok {
            return Err(format!("go{} {arch}: build fails:\n{out}", release.name()));
        }
        let mut got: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with("nosplit: main.") && !l.starts_with("nosplit: main.main<"))
            .map(str::to_string)
            .collect();
        let mut sc = StackCheck::new(&profile, &program, true).unwrap();
        for i in program.reachable().unwrap() {
            sc.check(Sym::Func(i));
        }
        let mut want = sc.debug_lines();
        got.sort();
        want.sort();
        if got != want {
            let only_go: Vec<&String> = got.iter().filter(|l| !want.contains(l)).collect();
            let only_spec: Vec<&String> = want.iter().filter(|l| !got.contains(l)).collect();
            return Err(format!(
                "go{} {arch}: edges differ\n  only go:   {only_go:?}\n  only spec: {only_spec:?}",
                release.name()
            ));
        }
        assert!(program.check(&profile).unwrap() == Verdict::Accept);
        Ok(want.len())
    });
    let failures: Vec<String> = results.iter().filter_map(|r| r.clone().err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for r in results {
        assert!(r.unwrap() > 100);
    }
}

// ---------------------------------------------------------------------------
// Builds that fail before the check, and dead code.

#[test]
fn build_failures_match_go() {
    let cases: &[(&str, bool)] = &[
        // A call to a function that does not exist.
        ("start 0 call nothere", true),
        // ... from an unreachable function: dead code is not linked.
        ("start 0; f 0 nosplit call nothere", false),
        // An unreachable over-limit chain is not checked.
        ("start 0; f 2000 nosplit", false),
        ("start 0 call f; f 2000 nosplit", true),
        // Two definitions of a name.
        ("start 0 call f; f 0; f 0", true),
        ("start 0; main0 0", true),
        ("start 0; main 0", true),
        // Reachable through a splittable function.
        ("start 0 call g; g 5000 call f; f 904 nosplit", true),
        // A nosplit cycle behind a splittable function, and its report.
        (
            "start 0 call f; f 0 call g; g 0 nosplit call h; h 0 nosplit call g",
            true,
        ),
        (
            "start 0 call g; g 0 nosplit call h; h 0 nosplit call k; k 0 nosplit call g",
            true,
        ),
        (
            "start 0 call f; f 128 nosplit callind call g; g 8 call f",
            true,
        ),
        (
            "start 0 call f; f 0 nosplit callind call g; g 8 call f",
            false,
        ),
    ];
    let arches = ["amd64", "386", "arm64"];
    let scratch = scratch(&arches);
    let mut jobs = Vec::new();
    for &(text, reject) in cases {
        for &release in Release::ALL {
            for arch in arches {
                jobs.push((
                    text,
                    reject,
                    release,
                    arch,
                    scratch.path(),
                    scratch.cache(release),
                ));
            }
        }
    }
    type CaseJob = (&'static str, bool, Release, &'static str, PathBuf, PathBuf);
    let results = parallel(
        jobs,
        |(text, reject, release, arch, dir, cache): CaseJob| {
            let s = read_stanzas(text).unwrap();
            let profile = Profile::parse("linux", arch, false, release.name()).unwrap();
            let StanzaOutcome::Ran(v) = s[0].check(&profile).unwrap() else {
                return Some(format!("{text}: skipped"));
            };
            let g = Graph {
                text: text.to_string(),
                funcs: s[0]
                    .funcs
                    .iter()
                    .map(|f| {
                        let body: String = f
                            .calls
                            .iter()
                            .map(|c| match c {
                                Call::Direct(n) => format!(" call {n}"),
                                Call::Indirect => " callind".to_string(),
                            })
                            .collect();
                        (f.name.clone(), f.size, f.nosplit, body)
                    })
                    .collect(),
            };
            let funcs = harness_funcs(&g, arch).unwrap();
            let (go, asm) = sources(arch, &funcs);
            let (ok, out) = build(release, arch, &dir, &cache, &go, &asm, None);
            let ctx = format!("go{} {arch} {text:?}", release.name());
            if ok == v.rejects() || v.rejects() != reject {
                return Some(format!(
                    "{ctx}: spec {v}, table {reject}, go build ok={ok}:\n{out}"
                ));
            }
            if let Verdict::Reject(r) = &v {
                if !r.cyclic && r.text != out {
                    return Some(format!(
                        "{ctx}: report differs\nspec:\n{}go:\n{out}",
                        r.text
                    ));
                }
            }
            None
        },
    );
    let failures: Vec<String> = results.into_iter().flatten().collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
