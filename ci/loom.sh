#!/usr/bin/env bash
# The loom models of the impl's concurrent protocols (docs/ARCHITECTURE.md section 6),
# each run exhaustively (release build, preemption bound LOOM_MAX_PREEMPTIONS,
# default 3), then once per re-injected bug it must catch
# (cfg(gostack_mutant = "...")): a mutant run must FAIL
# its model, or this script fails. Prints, per run, the interleavings
# explored and the time.
#
# Usage: ci/loom.sh [MODEL...]   (default: every model below)
#
# One line per model: the test file (models/tests/NAME.rs) and the mutants
# it must catch (allocator mutants in impl/src/stack.rs, goroutine-protocol
# mutants in impl/src/conc.rs).
MODELS=(
    "loom_pool  refill_unlocked_read cache_release_quarter"
    "loom_gc    pool_span_freed_during_gc large_free_during_gc_to_heap"
    "loom_chan  sudogs_adjusted_unlocked"
    "loom_park  shrink_while_parking"
    "loom_grow  scan_during_copystack"
)
set -euo pipefail
cd "$(dirname "$0")/.."
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
# Every RUSTFLAGS value rebuilds the whole dependency tree; one target
# directory per value keeps reruns incremental.
base="${CARGO_TARGET_DIR:-$PWD/target}/loom"
want=("$@")
fail=0
summary=()

# run NAME MUTANT|-  -> prints the model's report line; returns the test's
# status (2 if it did not build).
run() {
    local name=$1 mutant=$2 flags="--cfg loom" dir="$base/plain"
    if [[ $mutant != - ]]; then
        flags="--cfg loom --cfg gostack_mutant=\"$mutant\""
        dir="$base/$mutant"
    fi
    local log start status
    log=$(mktemp)
    # Build first, so that a build failure is never taken for a caught bug.
    if ! RUSTFLAGS="$flags" CARGO_TARGET_DIR="$dir" \
        cargo test --release -p gostack-models --test "$name" --no-run >"$log" 2>&1; then
        cat "$log"
        rm -f "$log"
        return 2
    fi
    start=$(date +%s%N)
    status=0
    RUSTFLAGS="$flags" CARGO_TARGET_DIR="$dir" \
        cargo test -q --release -p gostack-models --test "$name" -- --nocapture >"$log" 2>&1 || status=$?
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    if [[ $status == 0 ]]; then
        grep -E "^$name: " "$log" || true
    else
        grep -m1 -A1 "panicked at" "$log" | sed 's/^/    /' || true
    fi
    printf '    (%d.%d s)\n' $((ms / 1000)) $((ms % 1000 / 100))
    rm -f "$log"
    return $status
}

for line in "${MODELS[@]}"; do
    read -r name mutants <<<"$line"
    if [[ ${#want[@]} -gt 0 && ! " ${want[*]} " == *" $name "* ]]; then
        continue
    fi
    echo "==> $name (preemption bound $LOOM_MAX_PREEMPTIONS)"
    if run "$name" -; then
        summary+=("$name: passes")
    else
        echo "FAIL: $name fails without any mutant"
        summary+=("$name: FAILS")
        fail=1
    fi
    for m in $mutants; do
        echo "==> $name against mutant $m"
        status=0
        run "$name" "$m" || status=$?
        case $status in
            0) echo "FAIL: $name did not catch $m"; summary+=("$name / $m: NOT caught"); fail=1 ;;
            2) echo "FAIL: $name does not build with $m"; summary+=("$name / $m: build failed"); fail=1 ;;
            *) summary+=("$name / $m: caught") ;;
        esac
    done
done
echo "==> summary"
printf '    %s\n' "${summary[@]}"
exit $fail
