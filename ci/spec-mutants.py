#!/usr/bin/env python3
"""Teeth for the spec's tests.

Re-injects historical Go stack bugs (and a few plain slips) into a scratch
copy of the committed tree, one at a time, and checks that the spec's tests
catch each. A mutant that does not apply or does not compile is an error,
never a catch. Prints which tests caught each mutant; exits 1 if any mutant
survives or misfires. Run it with ci/spec-mutants.sh. `--check` only checks,
in seconds, that every mutant still applies to the working tree (ci/test.sh
runs it, so a refactor that moves a mutant's text fails at once).
"""
import os, subprocess, sys, tempfile

MUTANTS = [
    ("golang/go#11267: stackpoolfree frees an empty span during GC", "spec/src/stack.rs",
     "if gc_off && now_empty {", "if now_empty {"),
    ("golang/go#11267: stackfree returns a large span to the heap during GC", "spec/src/stack.rs",
     "if self.gcphase == GcPhase::Off {", "if true {"),
    ("freeStackSpans forgets stackLarge", "spec/src/stack.rs",
     "for (_, list) in std::mem::take(&mut s.stack_large) {", "for (_, list) in s.stack_large.clone() {"),
    ("stackpoolalloc forgets allocCount", "spec/src/stack.rs",
     "span.alloc_count += 1;", "span.alloc_count += 0;"),
    ("stackpoolfree appends a span instead of putting it first", "spec/src/stack.rs",
     "self.stackpool[order].insert(0, base);\n        }\n        if gc_off",
     "self.stackpool[order].push(base);\n        }\n        if gc_off"),
    ("golang/go#12967, #13169: copystack does not adjust sudogs", "spec/src/goroutine.rs",
     "sg.elem = sg.elem.wrapping_add(delta);", "sg.elem = sg.elem;"),
    ("golang/go#40641: isShrinkStackSafe ignores parkingOnChan", "spec/src/goroutine.rs",
     "Ok(g.syscallsp == 0 && !g.async_safe_point && !g.parking_on_chan)",
     "Ok(g.syscallsp == 0 && !g.async_safe_point)"),
    ("golang/go#58432: saved frame pointers not adjusted on arm64 (Go 1.19's behaviour in 1.23)", "spec/src/goroutine.rs",
     "&& self.config.profile.release != crate::profile::Release::Go1_19",
     "&& false"),
    ("send leaves sudog.elem set", "spec/src/goroutine.rs",
     '.expect("exists").elem = 0;', '.expect("exists").elem = sg.elem;'),
    ("adjustctxt leaves sched.ctxt", "spec/src/goroutine.rs",
     "gm.ctxt = adj(gm.ctxt);", "gm.ctxt = gm.ctxt;"),
    ("adjustdefers leaves d.link", "spec/src/goroutine.rs",
     "self.adjustpointer(old, delta, d + i * p);",
     "if i != defer_link_index(self.config.profile.release) { self.adjustpointer(old, delta, d + i * p); }"),
    ("newstack doubles only once", "spec/src/goroutine.rs",
     "while newsize - used < needed {", "while newsize < needed {"),
    ("shrinkstack halves at half instead of a quarter", "spec/src/goroutine.rs",
     "if used >= avail / 4 {", "if used >= avail / 2 {"),
    ("adjustframe adjusts stack objects below SP", "spec/src/goroutine.rs",
     "if base < fr.sp {", "if base < fr.sp && false {"),
    ("golang/go#10976: isShrinkStackSafe ignores a system call", "spec/src/goroutine.rs",
     "Ok(g.syscallsp == 0 && !g.async_safe_point && !g.parking_on_chan)",
     "Ok(!g.async_safe_point && !g.parking_on_chan)"),
    ("golang/go#18174: copystack leaves sched.bp", "spec/src/goroutine.rs",
     "gm.bp = adj(gm.bp);", "gm.bp = gm.bp;"),
    ("golang/go#41228: newstack ignores maxstackceiling", "spec/src/goroutine.rs",
     "if newsize > self.gor.maxstacksize || newsize > ceiling {",
     "if newsize > self.gor.maxstacksize || (newsize > ceiling && false) {"),
    ("park accepts a receive slot over a return address (copy_adjust fuzz finding)", "spec/src/goroutine.rs",
     "if !s.in_one_frames_locals(&frames, elem, ch.elemsize) {",
     "if !s.in_one_frames_locals(&frames, elem, ch.elemsize) && false {"),
    ("markrootFreeGStacks never runs: the GC keeps dead goroutines' stacks (issue 14)", "spec/src/stack.rs",
     "if !s.gor.free_g_stacks_done {", "if false {"),
    ("markrootFreeGStacks reverses the list it moves to noStack", "spec/src/goroutine.rs",
     "self.gor.sched_gfree_nostack.extend(list);",
     "self.gor.sched_gfree_nostack.extend(list.into_iter().rev());"),
    ("newstack preempts an M that canPreemptM refuses", "spec/src/goroutine.rs",
     "if preempt && (ctx.preemptoff || ctx.p.is_none() || g.forking) {", "if preempt && false {"),
    ("gfget clears preemptShrink", "spec/src/goroutine.rs",
     "fresh.preempt_shrink = old.preempt_shrink;", "fresh.preempt_shrink = false;"),
    ("adjustctxt adjusts sched.bp on 386 (no framepointer_enabled there)", "spec/src/goroutine.rs",
     "if fp_enabled {\n                gm.bp", "if true {\n                gm.bp"),
    ("a large stack freed twice in one GC cycle is ours, not Go's mSpanList.insert", "spec/src/stack.rs",
     "} else if !small && on_stack_large && self.gcphase != GcPhase::Off {", "} else if false {"),
    ("entersyscall leaves the guard (no stackPreempt poisoning)", "spec/src/goroutine.rs",
     "g.status = GStatus::Syscall;\n            g.stackguard0 = preempt;", "g.status = GStatus::Syscall;\n            let _ = preempt;"),
    ("newstack ignores throwsplit", "spec/src/goroutine.rs",
     "if g.throwsplit {", "if false {"),
    ("exitsyscall forgets a pending preemption", "spec/src/goroutine.rs",
     "g.stackguard0 = if g.preempt {", "g.stackguard0 = if false {"),
    ("suspendG keeps a pending preemption or forced move", "spec/src/goroutine.rs",
     "// (runtime/preempt.go, Go 1.19 and 1.23).\n        self.execute(gid)?;",
     "// (runtime/preempt.go, Go 1.19 and 1.23).\n        let _ = gid;"),
    ("BeforeFork leaves the guard", "spec/src/goroutine.rs",
     "g.stackguard0 = fork;", "let _ = fork;"),
    ("scanstack of a goroutine created after gcStart (not a stack root)", "spec/src/goroutine.rs",
     "if gid >= self.gor.n_stack_roots {", "if false {"),
    ("a live stack root scanned twice in one cycle", "spec/src/goroutine.rs",
     "if g.gcscandone {\n            return Err(GoThrow::GAlreadyScanned", "if false {\n            return Err(GoThrow::GAlreadyScanned"),
    ("mark termination begins with stack roots unscanned", "spec/src/stack.rs",
     "            s.scan_roots_left(p)?;\n", ""),
    ("gfget resets gcscandone (a root scanned while dead is scanned again)", "spec/src/goroutine.rs",
     "fresh.gcscandone = old.gcscandone;", "fresh.gcscandone = false;"),
    ("GODEBUG=invalidptr=0 ignored", "spec/src/goroutine.rs",
     "                && self.config.godebug.invalid_ptr\n", ""),
    ("GODEBUG=gcshrinkstackoff=1 ignored", "spec/src/goroutine.rs",
     "if self.config.godebug.gc_shrink_stack_off {", "if false {"),
    ("GODEBUG=adaptivestackstart=0 ignored at mark termination", "spec/src/goroutine.rs",
     "let next = if self.config.godebug.adaptive_stack_start {", "let next = if self.config.godebug.invalid_ptr {"),
    ("gcStart ignores a P whose cache was not flushed", "spec/src/stack.rs",
     "if !s.unflushed.is_empty() {", "if false {"),
    ("GOMAXPROCS destroys a P during a GC cycle", "spec/src/stack.rs",
     "self.transact(|s| {\n            if s.gcphase != GcPhase::Off || s.spans_pending_free {", "self.transact(|s| {\n            if false {"),
    ("newproc runs the entry at once (a new goroutine has run)", "spec/src/goroutine.rs",
     "self.transact(|s| s.newproc_inner(ctx, func))",
     "self.transact(|s| { let id = s.newproc_inner(ctx, func)?; s.start_inner(ctx, id)?; Ok(id) })"),
    ("mutators run while the world is stopped for mark termination", "spec/src/stack.rs",
     "if self.gcphase == GcPhase::MarkTermination {\n            crate::coverage::hit(\"world stopped",
     "if false {\n            crate::coverage::hit(\"world stopped"),
    ("GOMAXPROCS makes a P during a GC cycle", "spec/src/stack.rs",
     "self.fatal(|s| {\n            if s.gcphase != GcPhase::Off || s.spans_pending_free {",
     "self.fatal(|s| {\n            if false {"),
    ("prepareForSweep flushes a P twice in one sweep cycle", "spec/src/stack.rs",
     "if s.unflushed.remove(&p) {", "if { s.unflushed.remove(&p); true } {"),
    ("isAsyncSafePoint ignores asyncPreemptStack", "spec/src/goroutine.rs",
     "if g.sp < g.stack.lo || room < needs {\n                    crate::coverage::hit(",
     "if false {\n                    crate::coverage::hit("),
    ("allocm takes g0 before gsignal", "spec/src/goroutine.rs",
     "let gsignal = s.stackalloc_inner(ctx, gsignal)?;\n            let g0 = s.stackalloc_inner(ctx, g0)?;",
     "let g0 = s.stackalloc_inner(ctx, g0)?;\n            let gsignal = s.stackalloc_inner(ctx, gsignal)?;"),
    ("Go 1.19's g0 stack is 16 KiB as in 1.23", "spec/src/goroutine.rs",
     "crate::profile::Release::Go1_19 => 8192,", "crate::profile::Release::Go1_19 => 16384,"),
    ("allocm reaps sched.freem oldest first", "spec/src/goroutine.rs",
     "for (_, stk) in std::mem::take(&mut s.gor.freem).into_iter().rev() {",
     "for (_, stk) in std::mem::take(&mut s.gor.freem).into_iter() {"),
    ("Go 1.19's adjustdefers leaves d._panic and d.varp (1.23's fields only)", "spec/src/goroutine.rs",
     "self.adjustpointer(old, delta, d + i * p);",
     "if i < 2 || i == defer_link_index(self.config.profile.release) { self.adjustpointer(old, delta, d + i * p); }"),
    ("ReadMemStats reads StackInuse without flushing the P caches", "spec/src/stack.rs",
     "            for p in s.ps.keys().copied().collect::<Vec<_>>() {\n                s.stackcache_clear(p)?;\n            }\n            Ok(s.stats())",
     "            Ok(s.stats())"),
    ("efence: stackalloc does not round up to the physical page (issue 14)", "spec/src/stack.rs",
     "            n.div_ceil(PHYS_PAGE_SIZE) * PHYS_PAGE_SIZE\n", "            n\n"),
    ("efence: stackfree sysFrees instead of sysFaulting, reusing the range (issue 14)", "spec/src/stack.rs",
     "if self.config.godebug.efence || self.config.stack_fault_on_free {",
     "if self.config.stack_fault_on_free {"),
    ("efence: stacks from the OS counted in StackInuse's place, not StackSys (issue 14)", "spec/src/snapshot.rs",
     "stack_sys: self.heap.stack_inuse + self.sys.stacks_sys,", "stack_sys: self.heap.stack_inuse,"),
    ("Go 1.19 ReadMemStats does not throw after a sysFault (issue 14)", "spec/src/stack.rs",
     "&& s.sys.faulted > 0 {", "&& s.sys.faulted > 0 && false {"),
    ("shrinkstack keeps a stack only above a quarter (> for >=)", "spec/src/goroutine.rs",
     "if used >= avail / 4 {", "if used > avail / 4 {"),
    ("gcComputeStartingStackSize leaves out the guard term", "spec/src/goroutine.rs",
     "(size / n + consts.stack_guard)", "(size / n)"),
    ("NOSPLIT frames may run into the StackSystem area (issue 18)", "spec/src/goroutine.rs",
     "let floor = g.stack.lo + self.consts.stack_system;", "let floor = g.stack.lo;"),
]

TESTS = ["stackalloc", "gc_marker", "stackalloc_props", "goroutine", "goroutine_props", "invariants_negative"]


def run(cmd, cwd, env):
    return subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def check(root):
    """Each mutant's text occurs exactly once in the working tree (seconds)."""
    bad = 0
    for name, path, find, _ in MUTANTS:
        n = open(os.path.join(root, path)).read().count(find)
        if n != 1:
            print(f"NOT APPLIED ({n} matches in {path}): {name}")
            bad += 1
    print(f"{len(MUTANTS) - bad} of {len(MUTANTS)} spec mutants apply")
    return 1 if bad else 0


def main():
    root = subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip()
    if sys.argv[1:] == ["--check"]:
        return check(root)
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", os.path.join(root, "target", "mutants"))
    bad = 0
    with tempfile.TemporaryDirectory() as scratch:
        # The committed tree (a fresh clone in CI); commit before running locally.
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=root, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", scratch], input=archive, check=True)
        if not run(["cargo", "test", "-q", "-p", "gostack-spec", "--no-run"], scratch, env):
            print("the unmutated tree does not build")
            return 1
        for name, path, find, repl in MUTANTS:
            full = os.path.join(scratch, path)
            orig = open(full).read()
            if orig.count(find) != 1:
                print(f"NOT APPLIED ({orig.count(find)} matches): {name}")
                bad += 1
                continue
            open(full, "w").write(orig.replace(find, repl))
            try:
                if not run(["cargo", "test", "-q", "-p", "gostack-spec", "--no-run"], scratch, env):
                    print(f"DOES NOT COMPILE: {name}")
                    bad += 1
                    continue
                caught = [t for t in TESTS
                          if not run(["cargo", "test", "-q", "-p", "gostack-spec", "--test", t], scratch, env)]
                if not run(["cargo", "test", "-q", "-p", "gostack-spec", "--lib"], scratch, env):
                    caught.append("lib")
                if caught:
                    print(f"caught:   {name}  by {', '.join(caught)}")
                else:
                    print(f"SURVIVED: {name}")
                    bad += 1
            finally:
                open(full, "w").write(orig)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
