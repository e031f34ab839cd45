//! `gostack`: the command-line face of gostack.
//!
//! Every failure of user input exits with status 2 and names the flag: a
//! value outside a closed set (`--goos`, `--goarch`, `--release`,
//! `--calls`), an unknown flag or a range clap checks gets clap's error,
//! which lists the possible values; any other bad value prints one line on
//! stderr naming what is accepted. Nothing the user types can make it
//! panic.

#[macro_use]
mod output;

mod bench;
mod conform;
mod nosplit;
mod shapes;
mod values;

use clap::{Parser, Subcommand};
use gostack_spec::guard::{self, SplitForm};
use gostack_spec::{Consts, Invalid, Profile, Release, Throw};
use std::process::ExitCode;
use values::{CallsArg, GoarchArg, GoosArg, ReleaseArg};

#[derive(Parser)]
#[command(
    name = "gostack",
    version,
    about = "The Go goroutine stack system: specification, implementation and checks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ProfileArgs {
    /// Target operating system, as GOOS.
    #[arg(long, value_enum, default_value = "linux")]
    goos: GoosArg,
    /// Target architecture, as GOARCH.
    #[arg(long, value_enum, default_value = "amd64")]
    goarch: GoarchArg,
    /// A -race build.
    #[arg(long)]
    race: bool,
    /// Go release.
    #[arg(long, value_enum, default_value = "1.23")]
    release: ReleaseArg,
}

impl ProfileArgs {
    /// The profile; `Err` names the flags when the release lacks the port.
    fn profile(&self) -> Result<Profile, String> {
        Profile::new(self.goos.0, self.goarch.0, self.race, self.release.0).map_err(|t| {
            format!(
                "--goos {} --goarch {} --release {}: {t}",
                self.goos.0.name(),
                self.goarch.0.name(),
                self.release.0.name()
            )
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Print the stack constants of one profile, or of every profile.
    Consts {
        #[command(flatten)]
        profile: ProfileArgs,
        /// Every port of every modeled release, with and without race, as
        /// one table (so no --goos, --goarch, --race or --release).
        #[arg(long, conflicts_with_all = ["goos", "goarch", "race", "release"])]
        all: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the prologue split check for a frame size, and evaluate it.
    Split {
        #[command(flatten)]
        profile: ProfileArgs,
        /// The frame size the assembler's stacksplit receives, in bytes.
        #[arg(long, allow_hyphen_values = true)]
        framesize: String,
        /// What the function calls, for the assembler's leaf rules.
        #[arg(long, value_enum, default_value = "others")]
        calls: CallsArg,
        /// The SP at entry (decimal or 0x-hex); needs --guard.
        #[arg(long, requires = "guard", allow_hyphen_values = true)]
        sp: Option<String>,
        /// The value of g.stackguard0 (decimal or 0x-hex, or one of
        /// stackPreempt, stackFork, stackForceMove); needs --sp.
        #[arg(long, requires = "sp", allow_hyphen_values = true)]
        guard: Option<String>,
    },
    /// Run the stanzas of a file in the format of Go's test/nosplit.go (or
    /// that file itself) through the linker's nosplit check: one line per
    /// stanza on stdout, `stanza N: accept` or `stanza N: reject: <chain>`,
    /// and a summary line on stderr.
    ///
    /// The format is test/nosplit.go's table: `#` starts a comment; a
    /// stanza (test case) is a sequence of functions, one per line (or
    /// separated by `;`), each its name, its frame size, optionally
    /// `nosplit`, then its body (`call f` for a call, `callind` for an
    /// indirect call); a line starting `start ` begins a new stanza, whose
    /// first function is `start`; an optional `REJECT` line ends it, naming
    /// the architectures where the link must fail (all of them if none is
    /// named). Where Go's linker may report nothing for a
    /// rejected stanza (it then links it; Report::may_report_nothing) the
    /// verdict says so and --check accepts either outcome.
    Nosplit {
        /// Target architecture, as GOARCH (GOOS is linux, as for the test).
        #[arg(long, value_enum, default_value = "amd64")]
        goarch: GoarchArg,
        /// A -race build (Go 1.23 doubles the nosplit budget).
        #[arg(long)]
        race: bool,
        /// Go release.
        #[arg(long, value_enum, default_value = "1.23")]
        release: ReleaseArg,
        /// Compare each verdict with the stanza's REJECT line; exit 1 on any
        /// difference.
        #[arg(long)]
        check: bool,
        /// The stanza file.
        file: String,
    },
    /// Random differential runs of the implementation against the spec on
    /// every core, with a coverage table; minimized reproducers; replay.
    Conform(conform::ConformArgs),
    /// Time the implementation against its baselines (mmap per stack, one
    /// thread, the physical copy floor, Go's own stack benchmarks when Go
    /// 1.23 is installed) and measure its metadata per live stack.
    Bench {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Short runs (rough figures; for tests and smoke runs).
        #[arg(long)]
        quick: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Conform(args) = &cli.command {
        return conform::run(args);
    }
    if let Command::Nosplit {
        goarch,
        race,
        release,
        check,
        file,
    } = &cli.command
    {
        return match nosplit::run(goarch.0, *race, release.0, *check, file) {
            Ok(run) => {
                out!("{}", run.text);
                errln!("{}", run.summary);
                if run.mismatches > 0 {
                    match run.mismatches {
                        1 => errln!("gostack: 1 stanza differs from its REJECT line"),
                        n => errln!("gostack: {n} stanzas differ from their REJECT lines"),
                    }
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(msg) => {
                errln!("gostack: {msg}");
                ExitCode::from(2)
            }
        };
    }
    let result = match cli.command {
        // Handled above: its exit status has three values.
        Command::Nosplit { .. } | Command::Conform(_) => Ok(String::new()),
        Command::Consts { profile, all, json } => consts(&profile, all, json),
        Command::Bench { json, quick } => bench::run(json, quick),
        Command::Split {
            profile,
            framesize,
            calls,
            sp,
            guard,
        } => split(
            &profile,
            &framesize,
            calls.calls(),
            sp.as_deref().zip(guard.as_deref()),
        ),
    };
    match result {
        Ok(text) => {
            out!("{text}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            errln!("gostack: {msg}");
            ExitCode::from(2)
        }
    }
}

/// One row of the single-profile table: name, value, the Go file it comes from.
fn rows(p: &Profile, c: &Consts) -> Vec<(&'static str, String, &'static str)> {
    let rel = |a: &'static str, b: &'static str| if p.release == Release::Go1_19 { a } else { b };
    let sizes = c
        .cached_stack_sizes
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    let hex = |v: u64| format!("{v:#x}");
    vec![
        ("PtrSize", c.ptr_size.to_string(), "internal/goarch"),
        ("HasLR", c.has_lr.to_string(), "cmd/internal/sys/arch.go"),
        (
            "StackSystem",
            c.stack_system.to_string(),
            "runtime/stack.go",
        ),
        ("StackMin", c.stack_min.to_string(), "runtime/stack.go"),
        ("FixedStack", c.fixed_stack.to_string(), "runtime/stack.go"),
        (
            "StackSmall",
            c.stack_small.to_string(),
            rel("runtime/stack.go", "internal/abi/stack.go"),
        ),
        (
            "StackBig",
            c.stack_big.to_string(),
            rel("runtime/stack.go", "internal/abi/stack.go"),
        ),
        (
            "StackGuardMultiplier",
            c.guard_multiplier.to_string(),
            "runtime/internal/sys/consts.go",
        ),
        (
            "StackNosplit",
            c.stack_nosplit.to_string(),
            rel(
                "runtime/stack.go (_StackLimit)",
                "runtime/stack.go (stackNosplit)",
            ),
        ),
        ("StackGuard", c.stack_guard.to_string(), "runtime/stack.go"),
        (
            "CallSize",
            c.call_size.to_string(),
            "cmd/link/internal/ld/stackcheck.go",
        ),
        (
            "LinkerNosplitLimit",
            c.linker_nosplit_limit.to_string(),
            "cmd/link/internal/ld/stackcheck.go",
        ),
        (
            "NumStackOrders",
            c.num_stack_orders.to_string(),
            "runtime/malloc.go",
        ),
        (
            "StackCacheSize",
            c.stack_cache_size.to_string(),
            "runtime/malloc.go",
        ),
        ("CachedStackSizes", sizes, "runtime/stack.go (stackalloc)"),
        (
            "PageSize",
            c.page_size.to_string(),
            "runtime/sizeclasses.go",
        ),
        (
            "MinLegalPointer",
            c.min_legal_pointer.to_string(),
            "runtime/malloc.go",
        ),
        ("StackPreempt", hex(c.stack_preempt), "runtime/stack.go"),
        ("StackFork", hex(c.stack_fork), "runtime/stack.go"),
        (
            "StackForceMove",
            hex(c.stack_force_move),
            "runtime/stack.go",
        ),
        (
            "StackPoisonMin",
            hex(c.stack_poison_min),
            "runtime/stack.go",
        ),
        (
            "MaxStackSize (boot)",
            c.maxstacksize_boot.to_string(),
            "runtime/stack.go",
        ),
        (
            "MaxStackSize",
            c.maxstacksize.to_string(),
            "runtime/proc.go (main)",
        ),
        (
            "MaxStackCeiling (boot)",
            c.maxstackceiling_boot.to_string(),
            "runtime/stack.go",
        ),
        (
            "MaxStackCeiling",
            c.maxstackceiling.to_string(),
            "runtime/proc.go (main)",
        ),
    ]
}

fn consts(args: &ProfileArgs, all: bool, json: bool) -> Result<String, String> {
    let profiles = if all {
        Profile::all()
    } else {
        vec![args.profile()?]
    };
    if json {
        let items: Vec<serde_json::Value> = profiles
            .iter()
            .map(|p| serde_json::json!({ "profile": p, "consts": p.consts() }))
            .collect();
        let value = if all {
            serde_json::Value::Array(items)
        } else {
            items.into_iter().next().unwrap_or_default()
        };
        return serde_json::to_string_pretty(&value)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string());
    }
    if !all {
        let p = &profiles[0];
        let mut out = format!("{}\n", p.label());
        let rows = rows(p, &p.consts());
        let w = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        for (name, value, file) in rows {
            out += &format!("  {name:<24}{value:>w$}   {file}\n");
        }
        return Ok(out);
    }
    let header = [
        "PROFILE",
        "PTR",
        "LR",
        "SYSTEM",
        "FIXED",
        "MULT",
        "NOSPLIT",
        "GUARD",
        "CALL",
        "LINKLIMIT",
        "ORDERS",
        "CACHED",
        "MAXSTACK",
        "CEILING",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for p in &profiles {
        let c = p.consts();
        table.push(vec![
            p.label(),
            c.ptr_size.to_string(),
            if c.has_lr { "y" } else { "n" }.to_string(),
            c.stack_system.to_string(),
            c.fixed_stack.to_string(),
            c.guard_multiplier.to_string(),
            c.stack_nosplit.to_string(),
            c.stack_guard.to_string(),
            c.call_size.to_string(),
            c.linker_nosplit_limit.to_string(),
            c.num_stack_orders.to_string(),
            c.cached_stack_sizes
                .iter()
                .map(|s| (s / 1024).to_string() + "K")
                .collect::<Vec<_>>()
                .join(","),
            c.maxstacksize.to_string(),
            c.maxstackceiling.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| table.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &table {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if i == 0 {
                    format!("{s:<w$}", w = widths[i])
                } else {
                    format!("{s:>w$}", w = widths[i])
                }
            })
            .collect();
        out += cells.join("  ").trim_end();
        out += "\n";
    }
    out += "Every profile: StackMin 2048, StackSmall 128, StackBig 4096, StackCacheSize 32768, \
            page 8192, minLegalPointer 4096, boot maxstacksize and maxstackceiling 1048576;\n\
            stackPreempt, stackFork, stackForceMove, stackPoisonMin are -1314, -1234, -275, -4096 \
            as pointer-wide unsigned values (see `gostack consts --goarch A`).\n";
    Ok(out)
}

/// Parses a non-negative integer in decimal or 0x-hex; `Err` names `flag`.
fn parse_u64(flag: &str, s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse::<u64>(),
    };
    parsed.map_err(|_| {
        format!(
            "{flag} {s}: not a number; accepted: 0 to {} in decimal or 0x-hex",
            u64::MAX
        )
    })
}

/// An error of the spec's split-check model, with the flag it is about.
fn split_error(t: Throw, framesize: &str) -> String {
    match &t {
        Throw::Invalid(Invalid::FrameTooLarge(_)) => format!("--framesize {framesize}: {t}"),
        Throw::Invalid(Invalid::PrologueNotModeled(arch)) => format!("--goarch {arch}: {t}"),
        _ => t.to_string(),
    }
}

fn split(
    args: &ProfileArgs,
    framesize: &str,
    calls: guard::Calls,
    sp_guard: Option<(&str, &str)>,
) -> Result<String, String> {
    let p = args.profile()?;
    let c = p.consts();
    let fs = parse_u64("--framesize", framesize).map_err(|_| {
        format!(
            "--framesize {framesize}: not a frame size; accepted: 0 to {}",
            guard::MAX_FRAMESIZE
        )
    })?;
    let prologue = guard::prologue(&p, fs, calls).map_err(|t| split_error(t, framesize))?;
    let bits = 8 * c.ptr_size;
    let mut out = format!("{}: framesize {fs}\n", p.label());
    let form = guard::split_form(fs).map_err(|t| split_error(t, framesize))?;
    let k = fs.saturating_sub(c.stack_small);
    let rule = match form {
        SplitForm::Small => format!("small (framesize <= StackSmall {})", c.stack_small),
        SplitForm::Big => format!(
            "big (StackSmall {} < framesize <= StackBig {})",
            c.stack_small, c.stack_big
        ),
        SplitForm::Huge => format!("huge (framesize > StackBig {})", c.stack_big),
    };
    out += &format!("form: {rule}\n");
    let cond = match form {
        SplitForm::Small => "SP <= stackguard0".to_string(),
        SplitForm::Big => format!("SP - {k} <= stackguard0 (wrapping)"),
        SplitForm::Huge => format!("SP < {k}, or else SP - {k} <= stackguard0"),
    };
    match &prologue {
        None => out += "check: none: a leaf function this small is made NOSPLIT by the assembler\n",
        Some(pro) => {
            out += &format!("check: morestack when {cond} ({bits}-bit unsigned)\n");
            for i in &pro.insns {
                out += &format!("    {:<6}{}\n", i.op, i.args);
            }
        }
    }
    if let Some((sp_text, guard)) = sp_guard {
        let sp = parse_u64("--sp", sp_text)?;
        let g = match guard {
            "stackPreempt" => c.stack_preempt,
            "stackFork" => c.stack_fork,
            "stackForceMove" => c.stack_force_move,
            other => parse_u64("--guard", other)
                .map_err(|e| e + ", or stackPreempt, stackFork, stackForceMove")?,
        };
        let runs = guard::needs_morestack(&p, fs, sp, g).map_err(|t| match &t {
            Throw::Invalid(Invalid::NotAPointer { value, .. }) if *value == sp => {
                format!("--sp {sp_text}: {t}")
            }
            Throw::Invalid(Invalid::NotAPointer { .. }) => format!("--guard {guard}: {t}"),
            _ => split_error(t, framesize),
        })?;
        let verdict = match (&prologue, runs) {
            (None, _) => "no check is emitted, so morestack does not run",
            (Some(_), true) => "morestack runs",
            (Some(_), false) => "the check passes; morestack does not run",
        };
        out += &format!("sp {sp:#x}, stackguard0 {g:#x}: {verdict}\n");
    }
    Ok(out)
}
