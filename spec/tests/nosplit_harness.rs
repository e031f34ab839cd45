//! Go's own harness, test/nosplit.go, as the oracle for the stanza reader
//! and for the spec's verdicts.
//!
//! For each release, random stanzas are written with awkward but legal
//! formatting (tabs, `;` with and without spaces, comment and blank lines,
//! indented lines, every form of the REJECT clause), annotated with REJECT
//! lines that say what the spec predicts for amd64, 386 and arm64. The
//! installed test/nosplit.go is copied with its table replaced by these
//! stanzas and its debug switch on, built for the host, and run once per
//! architecture. The harness must report no BUG (so the real linker agreed
//! with every prediction, through the harness's own parsing, adjustment and
//! skipping), and the assembly it wrote for each stanza must be exactly the
//! program the spec's reader made of it (names, adjusted frames, NOSPLIT
//! flags, calls in order), with the same stanzas skipped.
//!
//! The seed is printed; `GOSTACK_NOSPLIT_SEED` replays one.

mod common;

use gostack_spec::nosplit::{read_stanzas, Call, Stanza, StanzaOutcome, Verdict};
use gostack_spec::{Profile, Release};

const ARCHES: [&str; 3] = ["amd64", "386", "arm64"];
const STANZAS: usize = 24;

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
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// The functions of one random stanza, without its REJECT clause, in
/// awkward formatting.
fn random_stanza(rng: &mut Rng) -> String {
    let n = 1 + rng.below(4) as usize;
    let names: Vec<String> = (0..n)
        .map(|i| {
            if i == 0 {
                "start".into()
            } else {
                format!("g{i}")
            }
        })
        .collect();
    let mut text = String::new();
    let mut first_nosplit = true;
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            text += rng.pick(&["\n", ";", "; ", " ;  ", "\n\t", "\n# a comment\n", "\n\n"]);
        }
        let nosplit = rng.chance(60);
        let mut size = if nosplit && first_nosplit {
            8 * rng.below(20)
        } else if nosplit {
            8 * rng.below(8)
        } else {
            8 * rng.below(20)
        };
        if nosplit {
            first_nosplit = false;
        }
        if rng.chance(4) {
            size += 4;
        }
        text += name;
        text += rng.pick(&[" ", "\t"]);
        text += &size.to_string();
        if nosplit {
            text += rng.pick(&[" nosplit", "\tnosplit"]);
        }
        for _ in 0..rng.below(3) {
            text += rng.pick(&[" ", "  ", "\t", " \t "]);
            if rng.chance(20) {
                text += "callind";
            } else {
                let j = if i + 1 < n && rng.chance(85) {
                    i + 1 + rng.below((n - i - 1) as u64) as usize
                } else {
                    rng.below(n as u64) as usize
                };
                text += rng.pick(&["call ", "call\t"]);
                text += &names[j];
            }
        }
    }
    text
}

/// The REJECT clause naming `arches`, in one of its legal forms.
fn reject_clause(rng: &mut Rng, arches: &[&str]) -> String {
    let lead = rng.pick(&["\n", ";", "; ", ";   "]);
    if arches.len() == ARCHES.len() && rng.chance(50) {
        return format!("{lead}REJECT{}", rng.pick(&["", " "]));
    }
    format!("{lead}REJECT {}", arches.join(rng.pick(&[" ", "  ", "\t"])))
}

/// What the harness wrote for one stanza: (name, size, nosplit, calls).
type Written = Vec<(String, u64, bool, Vec<Call>)>;

/// The asm.s blocks of the harness's debug output, one per built stanza.
fn written_programs(out: &str) -> Vec<Written> {
    let mut blocks = Vec::new();
    for block in out.split("-- asm.s --\n").skip(1) {
        let asm = block.split("===\n").next().unwrap_or(block);
        let mut funcs: Written = Vec::new();
        let mut lines = asm.lines();
        while let Some(l) = lines.next() {
            let Some(rest) = l.strip_prefix("TEXT ·") else {
                continue;
            };
            let (name, rest) = rest.split_once("(SB),").unwrap();
            if name == "main0" {
                continue;
            }
            let (flag, rest) = rest.split_once(",$").unwrap();
            let size: u64 = rest.strip_suffix("-0").unwrap().parse().unwrap();
            let body = lines.next().unwrap_or("");
            let calls = body
                .split(';')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(|c| {
                    if c == "CALL REGISTER" {
                        Call::Indirect
                    } else {
                        let n = c
                            .strip_prefix("CALL ·")
                            .unwrap()
                            .strip_suffix("(SB)")
                            .unwrap();
                        Call::Direct(n.to_string())
                    }
                })
                .collect();
            funcs.push((name.to_string(), size, flag == "7", calls));
        }
        blocks.push(funcs);
    }
    blocks
}

fn spec_written(s: &Stanza, profile: &Profile) -> Option<Written> {
    let p = s.program(profile).ok()?;
    Some(
        p.funcs
            .into_iter()
            .filter(|f| f.name != "main0")
            .map(|f| (f.name, f.frame, f.nosplit, f.calls))
            .collect(),
    )
}

/// The Go build cache of a release, shared with the other nosplit tests of
/// this target directory.
fn go_cache(release: Release) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("nosplit-gocache-{}", release.name()))
}

#[test]
fn gos_harness_agrees_with_the_reader_and_the_verdicts() {
    let seed = std::env::var("GOSTACK_NOSPLIT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("nosplit harness: seed {seed} (replay with GOSTACK_NOSPLIT_SEED={seed})");
    let mut rng = Rng(seed);
    let scratch = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for &release in Release::ALL {
        let profiles: Vec<Profile> = ARCHES
            .iter()
            .map(|a| Profile::parse("linux", a, false, release.name()).unwrap())
            .collect();
        // Stanzas with REJECT clauses that state the spec's predictions.
        // Both outcomes must occur on every arch (the harness checks it).
        let mut table = String::from("\n# generated\nstart 0\nstart 1000 nosplit; REJECT\n");
        let mut made = 0;
        while made < STANZAS {
            let body = random_stanza(&mut rng);
            let read = read_stanzas(&body).unwrap_or_else(|e| panic!("{body:?}: {e}"));
            let [s] = read.as_slice() else {
                panic!("{body:?}: {} stanzas", read.len())
            };
            let mut rejecting = Vec::new();
            let mut ambiguous = false;
            for (arch, p) in ARCHES.iter().zip(&profiles) {
                if let StanzaOutcome::Ran(v) = s.check(p).unwrap() {
                    if let Verdict::Reject(r) = &v {
                        // Go's verdict depends on its map order here.
                        ambiguous |= r.may_report_nothing;
                    }
                    if v.rejects() {
                        rejecting.push(*arch);
                    }
                }
            }
            if ambiguous {
                continue;
            }
            table += "\n";
            table += &body;
            if !rejecting.is_empty() {
                table += &reject_clause(&mut rng, &rejecting);
            }
            made += 1;
        }
        table += "\n";
        let stanzas = read_stanzas(&table).unwrap();
        assert_eq!(stanzas.len(), STANZAS + 2);
        // The reader reads the clauses back as written.
        for s in &stanzas {
            for p in &profiles {
                if let StanzaOutcome::Ran(v) = s.check(p).unwrap() {
                    assert_eq!(v.rejects(), s.expects_reject(p.goarch), "{s:?}");
                }
            }
        }
        // Go's harness, with this table and its debug output on.
        let root = common::goroot(release.name());
        let src = std::fs::read_to_string(root.join("test/nosplit.go")).unwrap();
        let at = src.find("var tests = `").expect("the tests table") + "var tests = `".len();
        let end = at + src[at..].find('`').unwrap();
        let harness = format!("{}{}{}", &src[..at], table, &src[end..])
            .replace("const debug = false", "const debug = true");
        let dir = scratch.path().join(release.name());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("nosplit.go"), harness).unwrap();
        let mut cmd = common::go(release.name(), &dir);
        cmd.args(["build", "-o", "harness", "nosplit.go"]);
        common::output(cmd);
        for p in profiles.clone() {
            runs.push((release, p, dir.clone(), stanzas.clone(), root.clone()));
        }
    }
    let handles: Vec<_> = runs
        .into_iter()
        .map(|(release, p, dir, stanzas, root)| {
            std::thread::spawn(move || {
                let path = format!(
                    "{}:{}",
                    root.join("bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                );
                let out = std::process::Command::new(dir.join("harness"))
                    .env_clear()
                    .env("PATH", path)
                    .env("HOME", &dir)
                    .env("GOROOT", &root)
                    .env("GOCACHE", go_cache(release))
                    .env("GOFLAGS", "")
                    .env("GOTOOLCHAIN", "local")
                    .env("CGO_ENABLED", "0")
                    .env("TMPDIR", &dir)
                    .env("GOOS", "linux")
                    .env("GOARCH", p.goarch.name())
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let ctx = format!("go{} {}", release.name(), p.goarch.name());
                let mut problems = Vec::new();
                if !out.status.success() || text.contains("BUG") {
                    problems.push(format!(
                        "{ctx}: the harness reports a bug:\n{text}{}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                let want: Vec<Written> = stanzas.iter().filter_map(|s| spec_written(s, &p)).collect();
                let got = written_programs(&text);
                if got != want {
                    problems.push(format!(
                        "{ctx}: the harness built {} stanzas, the spec {}; first difference:\n  go:   {:?}\n  spec: {:?}",
                        got.len(),
                        want.len(),
                        got.iter().zip(&want).find(|(g, w)| g != w).map(|(g, _)| g),
                        got.iter().zip(&want).find(|(g, w)| g != w).map(|(_, w)| w),
                    ));
                }
                (want.len(), problems)
            })
        })
        .collect();
    let mut problems = Vec::new();
    let mut built = 0;
    for h in handles {
        let (n, p) = h.join().unwrap();
        built += n;
        problems.extend(p);
    }
    println!(
        "nosplit harness: {built} stanza builds by Go's own test/nosplit.go agree with the spec"
    );
    assert!(problems.is_empty(), "seed {seed}:\n{}", problems.join("\n"));
}
