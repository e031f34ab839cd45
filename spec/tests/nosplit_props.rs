//! Properties of `spec::nosplit` over arbitrary input.
//!
//! - The analysis never panics, whatever the graph: cycles, self-calls,
//!   undefined names, duplicate names, frames up to and past what the
//!   assembler holds, every modeled architecture and release, race or not.
//! - The reader never panics, whatever the text.
//! - On small graphs, the height of every function equals a brute-force
//!   enumeration of every call path (a path that comes back to a nosplit
//!   function already on it is infinite, capped at 32767 as the linker caps
//!   it), and the verdict is "reject" exactly when some reachable function's
//!   brute-force height is over the limit.
//! - Every reported chain adds up: running totals are the sums of the
//!   growths, and "N bytes over" is the last total less the limit.
//!
//! `PROPTEST_CASES` raises the number of cases (default 256 each).

use gostack_spec::guard::MAX_FRAMESIZE;
use gostack_spec::nosplit::{
    marks_indirect_calls, preprocess, read_stanzas, Call, ChainEnd, Func, Program, StackCheck, Sym,
    Verdict, NOSPLIT_ARCHES, STACK_CHECK_CYCLE,
};
use gostack_spec::{Profile, Release};
use proptest::prelude::*;

fn profile() -> impl Strategy<Value = Profile> {
    (
        proptest::sample::select(NOSPLIT_ARCHES.to_vec()),
        proptest::sample::select(Release::ALL.to_vec()),
        any::<bool>(),
    )
        .prop_map(|(arch, release, race)| {
            Profile::parse("linux", arch.name(), race, release.name()).unwrap()
        })
}

/// Frames around the limits, huge ones, and some no assembler accepts.
fn frame() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => (0u64..120).prop_map(|k| k * 8),
        2 => 600u64..1000,
        1 => Just(MAX_FRAMESIZE),
        1 => 0..=MAX_FRAMESIZE,
        1 => any::<u64>(),
    ]
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("f{i}")).collect()
}

/// Arbitrary graphs: calls to any name (some undefined), indirect calls,
/// duplicate names, any entry.
fn wild_program() -> impl Strategy<Value = Program> {
    (1usize..10).prop_flat_map(|n| {
        let func = (
            0..n + 2,
            frame(),
            any::<bool>(),
            proptest::collection::vec(proptest::option::of(0..n + 2), 0..5),
        );
        (proptest::collection::vec(func, n), 0..n + 1).prop_map(move |(fs, entry)| {
            let name = |i: usize| format!("f{i}");
            Program {
                funcs: fs
                    .into_iter()
                    .map(|(nm, frame, nosplit, calls)| Func {
                        name: name(nm),
                        frame,
                        nosplit,
                        calls: calls
                            .into_iter()
                            .map(|c| c.map_or(Call::Indirect, |t| Call::Direct(name(t))))
                            .collect(),
                    })
                    .collect(),
                entry: name(entry),
            }
        })
    })
}

/// Well-formed small graphs: distinct names, defined targets, frames every
/// assembler accepts (multiples of 16), so the build reaches the check.
fn small_program() -> impl Strategy<Value = Program> {
    (1usize..6).prop_flat_map(|n| {
        let frame = prop_oneof![
            3 => (0u64..8).prop_map(|k| k * 16),
            2 => (40u64..56).prop_map(|k| k * 16),
            1 => Just(100_000u64),
        ];
        let func = (
            frame,
            any::<bool>(),
            proptest::collection::vec(proptest::option::of(0..n), 0..4),
        );
        proptest::collection::vec(func, n).prop_map(move |fs| {
            let names = names(n);
            Program {
                funcs: fs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (frame, nosplit, calls))| Func {
                        name: names[i].clone(),
                        frame,
                        nosplit,
                        calls: calls
                            .into_iter()
                            .map(|c| c.map_or(Call::Indirect, |t| Call::Direct(names[t].clone())))
                            .collect(),
                    })
                    .collect(),
                entry: names[0].clone(),
            }
        })
    })
}

/// The most bytes any call path from function `i` can push before a split
/// check, by enumerating every path; `None` when a path comes back to a
/// nosplit function already on it.
fn brute_height(profile: &Profile, p: &Program, i: usize, path: &mut Vec<usize>) -> Option<u64> {
    let call = profile.call_size();
    let a = preprocess(profile, &p.funcs[i]).unwrap();
    if !a.nosplit {
        // The call to morestack.
        return Some(call);
    }
    if path.contains(&i) {
        return None;
    }
    path.push(i);
    let mut best = a.height;
    for c in &p.funcs[i].calls {
        let below = match c {
            Call::Indirect if marks_indirect_calls(profile.goarch) => Some(call),
            Call::Indirect => Some(0),
            Call::Direct(name) => {
                let j = p.funcs.iter().position(|f| &f.name == name).unwrap();
                brute_height(profile, p, j, path)
            }
        };
        match below {
            None => {
                path.pop();
                return None;
            }
            Some(h) => best = best.max(a.height + call + h),
        }
    }
    path.pop();
    Some(best)
}

fn reachable(p: &Program) -> Vec<usize> {
    let mut seen = vec![false; p.funcs.len()];
    let mut work = vec![0];
    seen[0] = true;
    while let Some(i) = work.pop() {
        for c in &p.funcs[i].calls {
            if let Call::Direct(n) = c {
                let j = p.funcs.iter().position(|f| &f.name == n).unwrap();
                if !seen[j] {
                    seen[j] = true;
                    work.push(j);
                }
            }
        }
    }
    (0..p.funcs.len()).filter(|&i| seen[i]).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn the_analysis_never_panics(p in wild_program(), prof in profile()) {
        match p.check(&prof) {
            Ok(v) => {
                let _ = v.to_string();
                if let Verdict::Reject(r) = &v {
                    prop_assert!(!r.chains.is_empty() || r.may_report_nothing);
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        if let Ok(mut sc) = StackCheck::new(&prof, &p, true) {
            for i in 0..p.funcs.len() {
                prop_assert!(sc.check(Sym::Func(i)) <= STACK_CHECK_CYCLE);
            }
            let _ = sc.find_roots();
            let _ = sc.debug_lines();
        }
    }

    #[test]
    fn the_reader_never_panics(text in "(start |f[0-9] |[0-9]{1,12} |nosplit |call |callind|REJECT |;|\n|#|\t| |[a-z]{1,3}|\\PC){0,40}") {
        if let Ok(stanzas) = read_stanzas(&text) {
            for s in stanzas {
                for &arch in NOSPLIT_ARCHES {
                    let prof = Profile::parse("linux", arch.name(), false, "1.23").unwrap();
                    let _ = s.check(&prof);
                }
            }
        }
    }

    #[test]
    fn heights_equal_brute_force_path_enumeration(p in small_program(), prof in profile()) {
        let limit = prof.linker_nosplit_limit();
        let mut sc = StackCheck::new(&prof, &p, false).unwrap();
        let mut over = false;
        for i in reachable(&p) {
            let brute = brute_height(&prof, &p, i, &mut Vec::new())
                .map_or(STACK_CHECK_CYCLE, |h| h.min(STACK_CHECK_CYCLE));
            let got = sc.check(Sym::Func(i));
            prop_assert_eq!(got, brute, "function f{}", i);
            over |= brute > limit;
        }
        let v = p.check(&prof).unwrap();
        prop_assert!(!matches!(v, Verdict::BuildFails(_)), "{}", v);
        prop_assert_eq!(v.rejects(), over, "{}", v);
        if let Verdict::Reject(r) = v {
            for c in &r.chains {
                let mut total = 0;
                for s in &c.steps {
                    total += s.growth;
                    prop_assert_eq!(s.total, total);
                }
                if let ChainEnd::Over(n) = c.end {
                    prop_assert_eq!(n + limit, total, "{}", c);
                }
            }
        }
    }
}

/// A chain far deeper than any Rust stack could recurse: the analysis, the
/// search for roots and the report all walk with explicit stacks.
#[test]
fn deep_chains_do_not_exhaust_the_stack() {
    let n = 50_000;
    let name = |i: usize| format!("f{i}");
    let mut funcs: Vec<Func> = (0..n)
        .map(|i| Func {
            name: name(i),
            frame: 0,
            nosplit: true,
            calls: vec![Call::Direct(name(i + 1))],
        })
        .collect();
    funcs.push(Func {
        name: name(n),
        frame: 16,
        nosplit: true,
        calls: vec![],
    });
    let prof = Profile::parse("linux", "amd64", false, "1.23").unwrap();
    let p = Program {
        funcs,
        entry: name(0),
    };
    let v = p.check(&prof).unwrap();
    let Verdict::Reject(r) = &v else {
        panic!("{v}")
    };
    assert_eq!(r.chains.len(), 1);
    assert!(!r.cyclic);
    // The same chain closed into a cycle.
    let mut q = p.clone();
    q.funcs[n].calls.push(Call::Direct(name(0)));
    let v = q.check(&prof).unwrap();
    let Verdict::Reject(r) = &v else {
        panic!("{v}")
    };
    assert!(r.cyclic && r.may_report_nothing);
}
