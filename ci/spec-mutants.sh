#!/usr/bin/env bash
# Teeth for the spec's tests: re-injects historical Go stack bugs (and a few
# plain slips) into a scratch copy of the workspace, one at a time, and
# checks that the spec's tests catch each one. Prints which test files
# caught each mutant; exits 1 if any mutant survives.
#
# Usage: ci/spec-mutants.sh            (about 2 minutes warm)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# The committed tree (a fresh clone in CI); commit before running locally.
git archive HEAD | tar -x -C "$scratch"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/mutants}"

# name | file | text to find | replacement
mutants=(
  "golang/go#11267: stackpoolfree frees an empty span during GC|spec/src/stack.rs|if gc_off && now_empty {|if now_empty {"
  "golang/go#11267: stackfree returns a large span to the heap during GC|spec/src/stack.rs|if self.gcphase == GcPhase::Off {|if true {"
  "freeStackSpans forgets stackLarge|spec/src/stack.rs|for (_, list) in std::mem::take(&mut s.stack_large) {|for (_, list) in s.stack_large.clone() {"
  "stackpoolalloc forgets allocCount|spec/src/stack.rs|span.alloc_count += 1;|span.alloc_count += 0;"
  "stackpoolfree appends instead of front-inserting|spec/src/stack.rs|self.stackpool[order].insert(0, base);
        }
        if gc_off|self.stackpool[order].push(base);
        }
        if gc_off"
  "golang/go#12967/#13169: copystack does not adjust sudogs|spec/src/goroutine.rs|sg.elem = sg.elem.wrapping_add(delta);|sg.elem = sg.elem;"
  "golang/go#40641: isShrinkStackSafe ignores parkingOnChan|spec/src/goroutine.rs|Ok(g.syscallsp == 0 && !g.async_safe_point && !g.parking_on_chan)|Ok(g.syscallsp == 0 \&\& !g.async_safe_point)"
  "saved frame pointers not adjusted on arm64|spec/src/goroutine.rs|if matches!(self.config.profile.goarch, Goarch::Amd64 | Goarch::Arm64)|if matches!(self.config.profile.goarch, Goarch::Amd64)"
  "adjustctxt leaves sched.ctxt|spec/src/goroutine.rs|gm.ctxt = adj(gm.ctxt);|gm.ctxt = gm.ctxt;"
  "adjustdefers leaves d.link|spec/src/goroutine.rs|self.adjustpointer(old, delta, d + 2 * p);|let _ = d + 2 * p;"
  "newstack doubles only once|spec/src/goroutine.rs|while newsize - used < needed {|while newsize < needed {"
  "shrinkstack ignores the quarter rule|spec/src/goroutine.rs|if used >= avail / 4 {|if used > avail / 2 {"
  "adjustframe adjusts objects below SP|spec/src/goroutine.rs|if base < fr.sp {|if base < fr.sp \&\& false {"
)

survivors=0
for m in "${mutants[@]}"; do
  IFS='|' read -r name file from to <<<"$m"
  git show "HEAD:$file" > "$scratch/$file"
  if ! python3 - "$scratch/$file" "$from" "$to" <<'PY'
import sys
path, a, b = sys.argv[1], sys.argv[2].replace('\\&', '&'), sys.argv[3].replace('\\&', '&')
s = open(path).read()
if a not in s:
    sys.exit(1)
open(path, 'w').write(s.replace(a, b, 1))
PY
  then
    echo "MUTANT NOT APPLIED (the code moved?): $name"
    survivors=$((survivors + 1))
    continue
  fi
  caught=""
  for t in stackalloc gc_marker stackalloc_props goroutine goroutine_props; do
    if ! (cd "$scratch" && cargo test -q -p gostack-spec --test "$t" >/dev/null 2>&1); then
      caught="$caught $t"
    fi
  done
  if ! (cd "$scratch" && cargo test -q -p gostack-spec --lib >/dev/null 2>&1); then caught="$caught lib"; fi
  git show "HEAD:$file" > "$scratch/$file"
  if [ -z "$caught" ]; then
    echo "SURVIVED: $name"
    survivors=$((survivors + 1))
  else
    echo "caught:   $name  by$caught"
  fi
done
[ "$survivors" = 0 ]
