//! Running cases: one case through a [`Harness`], a delta-debugging
//! minimizer for divergences, and the coverage report.

use crate::harness::{Case, Divergence, Harness, Out};
use crate::machine::Machine;
use gostack_spec::Throw;
use std::collections::BTreeMap;

/// The outcome of a case that did not diverge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ran {
    /// Ops applied (bursts count once).
    pub ops: u64,
    /// Ops that failed alike on both sides.
    pub failed: u64,
    /// Calls of the API they made (a burst op makes several; an op with
    /// nothing to act on, none).
    pub calls: u64,
    /// The Go throw that ended the case before its last op, if one did (a
    /// throw is fatal: the ops after it are not run).
    pub died: Option<Throw>,
}

/// API calls an op's result stands for.
fn calls(r: &Result<Out, Throw>) -> u64 {
    match r {
        Ok(Out::Burst(done, t)) => done.len() as u64 + u64::from(t.is_some()),
        Ok(Out::Skip) => 0,
        _ => 1,
    }
}

/// Runs a case on the spec and `B` (or the spec alone when `solo`), up to
/// its end or the first Go throw (which is fatal).
/// `Err(Ok(d))` is a divergence; `Err(Err(msg))` a case that cannot even
/// start (an unknown profile).
pub fn run_case<B: Machine>(
    case: &Case,
    solo: bool,
) -> Result<Ran, Result<Box<Divergence>, String>> {
    let mut h: Harness<B> = if solo {
        Harness::solo(&case.profile)
    } else {
        Harness::new(&case.profile)
    }
    .map_err(Err)?;
    let mut ran = Ran::default();
    for op in &case.ops {
        let r = h.step(op.clone()).map_err(Ok)?;
        ran.ops += 1;
        ran.calls += calls(&r);
        if r.is_err() {
            ran.failed += 1;
        }
        if let Some(t) = h.dead() {
            // A Go throw is fatal: the case ends here.
            ran.died = Some(t.clone());
            break;
        }
    }
    Ok(ran)
}

/// Runs a case, calling `each` with every step's op index, op and the
/// spec's result (the other side's is equal, or the run stops).
pub fn replay<B: Machine>(
    case: &Case,
    mut each: impl FnMut(usize, &crate::op::Op, &Result<Out, Throw>),
) -> Result<Ran, Result<Box<Divergence>, String>> {
    let mut h: Harness<B> = Harness::new(&case.profile).map_err(Err)?;
    let mut ran = Ran::default();
    for (i, op) in case.ops.iter().enumerate() {
        let r = h.step(op.clone()).map_err(Ok)?;
        each(i, op, &r);
        ran.ops += 1;
        ran.calls += calls(&r);
        if r.is_err() {
            ran.failed += 1;
        }
        if let Some(t) = h.dead() {
            // A Go throw is fatal: the case ends here.
            ran.died = Some(t.clone());
            break;
        }
    }
    Ok(ran)
}

/// Shrinks a diverging case by delta debugging: removes chunks of ops
/// (halves, quarters, ... single ops) while the case still diverges with
/// the same [`Divergence::key`], and cuts it after the diverging op.
/// Returns the smallest case found and its divergence.
pub fn minimize<B: Machine>(d: &Divergence, budget: usize) -> (Case, Box<Divergence>) {
    let key = d.key();
    let mut best = d.case.clone();
    let mut best_d = Box::new(d.clone());
    let mut tries = 0;
    let check = |c: &Case, tries: &mut usize| -> Option<Box<Divergence>> {
        *tries += 1;
        match run_case::<B>(c, false) {
            Err(Ok(d)) if d.key() == key => Some(d),
            _ => None,
        }
    };
    let mut chunk = best.ops.len().div_ceil(2).max(1);
    while tries < budget {
        let mut i = 0;
        let mut shrank = false;
        while i < best.ops.len() && tries < budget {
            let mut c = best.clone();
            let end = (i + chunk).min(c.ops.len());
            c.ops.drain(i..end);
            match check(&c, &mut tries) {
                Some(nd) => {
                    // The failing op ends the reproducer.
                    best = nd.case.clone();
                    best_d = nd;
                    shrank = true;
                }
                None => i += chunk,
            }
        }
        if !shrank {
            if chunk == 1 {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
    }
    (best, best_d)
}

/// Branch and throw counts merged across runs (and threads).
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    /// Counts by name.
    pub hits: BTreeMap<&'static str, u64>,
}

impl Coverage {
    /// Adds this thread's counts since the last call (they are cleared).
    pub fn take_thread(&mut self) {
        for (k, v) in gostack_spec::coverage::take() {
            *self.hits.entry(k).or_default() += v;
        }
    }

    /// Adds another coverage's counts.
    pub fn merge(&mut self, other: &Coverage) {
        for (k, v) in &other.hits {
            *self.hits.entry(k).or_default() += v;
        }
    }

    /// Branches and reachable Go throws never reached.
    pub fn unreached(&self) -> Vec<&'static str> {
        gostack_spec::coverage::unreached(&self.hits)
    }

    /// A table: every branch and reachable Go throw with its count, then
    /// the other throws seen.
    pub fn table(&self) -> String {
        use gostack_spec::coverage::{BRANCHES, REACHABLE_GO_THROWS};
        let mut out = String::new();
        let listed: Vec<&str> = BRANCHES
            .iter()
            .copied()
            .chain(REACHABLE_GO_THROWS.iter().map(|t| t.message()))
            .collect();
        let reached = listed.iter().filter(|n| self.hits.contains_key(*n)).count();
        out += &format!(
            "coverage: {reached}/{} spec branches and reachable Go throws\n",
            listed.len()
        );
        for (i, n) in listed.iter().enumerate() {
            let kind = if i < BRANCHES.len() {
                "branch"
            } else {
                "throw "
            };
            let c = self.hits.get(n).copied().unwrap_or(0);
            let mark = if c == 0 { "  UNREACHED" } else { "" };
            out += &format!("  {kind} {c:>10}  {n}{mark}\n");
        }
        for (n, c) in &self.hits {
            if !listed.contains(n) {
                out += &format!("  other  {c:>10}  {n}\n");
            }
        }
        out
    }
}

/// A case from raw bytes, as a libFuzzer target gets them: the first byte
/// picks one of [`crate::PROFILES`], the rest become ops through
/// `Arbitrary` (unweighted, any numbers), at most `max` of them.
pub fn case_from_bytes(data: &[u8], max: usize) -> Case {
    use arbitrary::{Arbitrary, Unstructured};
    let profiles = crate::PROFILES;
    let (first, rest) = data.split_first().map_or((0, data), |(f, r)| (*f, r));
    let mut u = Unstructured::new(rest);
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < max {
        match crate::Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    Case {
        profile: profiles[usize::from(first) % profiles.len()].to_string(),
        ops,
    }
}
