#!/usr/bin/env bash
# Teeth for the differential harness (docs/ARCHITECTURE.md section 6): builds the
# implementation once per re-injected bug (`cfg(gostack_mutant = "NAME")` in
# impl/src/stack.rs, goroutine.rs, adjust.rs and conc.rs) and
# checks that something catches it, trying in order:
#   1. the differential tests: models/tests/differential.rs (proptest over
#      random op sequences) and models/tests/diff_goroutine.rs (scripted
#      goroutine scenarios and a seeded mix);
#   2. `gostack conform --seconds 60 --seed 1 --keep-going` (random cases on
#      every core), when the tests miss it; a divergence counts only if its
#      minimized reproducer does not diverge on the unmutated
#      implementation (`conform --replay`);
#   3. the mutant's loom model (models/tests/loom_*.rs, as ci/loom.sh), for
#      the allocator races that no sequential run can show.
# A mutant that does not build is an error, never a catch. The unmutated
# tree runs the same tests first: a test that fails there cannot judge a
# mutant, so it is reported and not counted, and the run fails. Prints a
# table (mutant, ops to failure, seconds, what caught it) and the total
# time; exits 1 if a mutant survives or does not build or the unmutated
# tree fails a test, 2 on bad usage or when the unmutated tree does not
# build.
#
# Ops to failure: for the proptest (impl_equals_spec) and conform, the
# length of the minimized reproducer; for differential.rs's other tests,
# the ops of the failing case up to the divergence; for diff_goroutine's
# scenarios, the calls its pair compared up to the failing one (setup
# included); "-" when the output names none (a loom model).
#
# Usage: ci/mutants.sh [--list] [NAME...]   (default: every mutant)
#        ci/mutants.sh --fuzz [TARGET...]   (runs ci/fuzz-mutants.sh)
#
# How it stays fast: everything runs in a scratch copy of the working tree
# (so proptest's failure persistence never writes into the checkout; the
# proptest runs its fixed-seed cases without the persisted regressions,
# which replay known divergences that have their own tests), whose
# impl/Cargo.toml gets a one-line build script that emits the mutant's cfg
# for the `gostack` crate alone. All mutants share one target directory
# ($CARGO_TARGET_DIR/mutants, default target/mutants): the dependencies
# build once, and each mutant rebuilds only gostack, gostack-models and the
# test binaries (and gostack-cli when conform runs). Knobs:
# MUTANTS_CONFORM_SECONDS (60), MUTANTS_SHRINK_MS (proptest's shrink time
# limit, 30000), LOOM_MAX_PREEMPTIONS (3).
#
# fuzz: the fuzz targets' teeth (each target must crash on one of these
# mutants, or on a spec patch, within 5 minutes) are in ci/fuzz-mutants.sh.
set -euo pipefail

# name | file | what it re-injects
MUTANTS=(
    "pool_span_freed_during_gc|stack.rs|golang/go#11267: stackpoolfree gives an empty span back to the heap during GC"
    "cache_release_quarter|stack.rs|stackcacherelease releases the cache down to a quarter, not half"
    "order_loop_ge|stack.rs|the stack order loop compares with >="
    "large_free_during_gc_to_heap|stack.rs|golang/go#11267: stackfree gives a large span back to the heap during GC"
    "refill_unlocked_read|stack.rs|stackcacherefill reads the pool head without holding its lock"
    "sudog_elem_not_adjusted|goroutine.rs|golang/go#12967, #13169: copystack skips adjustsudogs"
    "shrink_while_parking|goroutine.rs|golang/go#40641: isShrinkStackSafe ignores parkingOnChan"
    "frame_pointer_not_adjusted|goroutine.rs|golang/go#58432: arm64 saved frame pointers not adjusted (adjustframe, adjustctxt)"
    "shrink_quarter_vs_half|goroutine.rs|shrinkstack's used < avail/4 test done against avail/2"
    "objects_below_sp_adjusted|goroutine.rs|adjustframe adjusts stack objects lying below the frame's SP"
    "junk_pointer_accepted|goroutine.rs|adjustpointers accepts 0 < p < minLegalPointer"
    "adjust_partial_word_skipped|adjust.rs|adjustpointers' packed-bitmap walk skips the last, partial u64 of a map (floor division)"
    "sudogs_adjusted_unlocked|conc.rs|golang/go#12967, #13169: Sched's copystack adjusts sudogs and copies without the channel locks"
    "scan_during_copystack|conc.rs|suspendG takes a goroutine in _Gcopystack (Sched)"
)
# The loom model that must catch a mutant (as in ci/loom.sh).
loom_model() {
    case $1 in
        refill_unlocked_read | cache_release_quarter) echo loom_pool ;;
        pool_span_freed_during_gc | large_free_during_gc_to_heap) echo loom_gc ;;
        sudogs_adjusted_unlocked) echo loom_chan ;;
        shrink_while_parking) echo loom_park ;;
        scan_during_copystack) echo loom_grow ;;
        *) echo "" ;;
    esac
}
TESTS=(differential diff_goroutine)

root=$(cd "$(dirname "$0")/.." && pwd)
names=()
for m in "${MUTANTS[@]}"; do names+=("${m%%|*}"); done

if [[ ${1:-} == --fuzz ]]; then
    # The fuzz targets' teeth: see ci/fuzz-mutants.sh.
    shift
    exec "$root/ci/fuzz-mutants.sh" "$@"
fi
if [[ ${1:-} == --list ]]; then
    for m in "${MUTANTS[@]}"; do
        IFS='|' read -r n f what <<<"$m"
        printf '%-30s impl/src/%-13s %s\n' "$n" "$f" "$what"
    done
    exit 0
fi
want=()
for a in "$@"; do
    if [[ ! " ${names[*]} " == *" $a "* ]]; then
        echo "ci/mutants.sh: unknown mutant '$a' (--list shows them)" >&2
        exit 2
    fi
    want+=("$a")
done
[[ ${#want[@]} -gt 0 ]] || want=("${names[@]}")

# Every mutant must exist in the source: a misspelt cfg would build the
# unmutated code and count as a survivor for the wrong reason.
for n in "${want[@]}"; do
    if ! grep -q "gostack_mutant = \"$n\"" "$root"/impl/src/*.rs; then
        echo "ci/mutants.sh: no cfg(gostack_mutant = \"$n\") in impl/src" >&2
        exit 2
    fi
done

conform_seconds=${MUTANTS_CONFORM_SECONDS:-60}
export PROPTEST_MAX_SHRINK_TIME=${MUTANTS_SHRINK_MS:-30000}
export LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-3}
target=${CARGO_TARGET_DIR:-$root/target}/mutants
export CARGO_TARGET_DIR=$target/test
# No debug info: smaller, faster links; it is a setting of this directory.
export CARGO_PROFILE_TEST_DEBUG=0
t0=$(date +%s)

# shellcheck source=ci/mutant-scratch.sh
source "$root/ci/mutant-scratch.sh"
mutant_scratch "$root" gostack-mutants ./fuzz ./conform-out

set_mutant() {
    mutant_cfg "$1"
    # Each run is the proptest's fixed-seed cases alone: the persisted
    # regressions replay old failures of the implementation, which would
    # stop the test before any new case (they have their own tests).
    rm -f models/tests/differential.regressions
}

build_tests() {
    local args=()
    for t in "${TESTS[@]}"; do args+=(--test "$t"); done
    cargo test -q -p gostack-models "${args[@]}" --no-run >"$scratch/build.log" 2>&1
}

# run_test TEST -> writes "failing-test ops" lines to stdout; status 0 when
# the test binary passes.
run_test() {
    local t=$1 log="$scratch/$1.log" status=0
    cargo test -p gostack-models --test "$t" --no-fail-fast >"$log" 2>&1 || status=$?
    # Per failing test, the op count of its report: the harness's
    # Divergence prints "PROFILE step I: OP" (I counts from 0, so I + 1
    # ops), diff_goroutine's pairs print "NAME step N `CALL`" (N calls).
    awk -v t="$t" '
        /^thread '"'"'[^'"'"']+'"'"'.* panicked/ {
            cur = substr($0, 9); sub(/'"'"'.*/, "", cur); next
        }
        cur != "" && match($0, /[a-z0-9]+\/[a-z0-9]+\/1\.[0-9]+ step [0-9]+: /) {
            s = substr($0, RSTART, RLENGTH); sub(/.* step /, "", s); sub(/:.*/, "", s)
            ops[cur] = s + 1; next
        }
        cur != "" && match($0, /step [0-9]+ `/) {
            s = substr($0, RSTART, RLENGTH); sub(/step /, "", s); sub(/ `/, "", s)
            if (!(cur in ops)) ops[cur] = s + 0
        }
        /^test .* FAILED$/ { f = $2; failed[f] = 1 }
        END { for (f in failed) print f, ((f in ops) ? ops[f] : "-") }
    ' "$log" | sort
    return $status
}

declare -A caught_by ops_of secs_of base_fail
# How many entries base_fail has (bash's set -u refuses ${#a[@]} on an
# empty associative array).
base_count=0
survivors=0

echo "==> the unmutated tree (scratch copy in $scratch, target $target)"
set_mutant none
if ! build_tests; then
    cat "$scratch/build.log"
    echo "ci/mutants.sh: the unmutated tree does not build" >&2
    exit 2
fi
# A test that fails without any mutant cannot judge one: it is reported,
# not counted, and the run fails at the end.
for t in "${TESTS[@]}"; do
    if ! out=$(run_test "$t"); then
        [[ -n $out ]] || { cat "$scratch/$t.log"; echo "ci/mutants.sh: $t fails to run" >&2; exit 2; }
        while read -r test o; do
            echo "    WARNING: $t::$test fails without a mutant ($o ops); it is not counted"
            base_fail[$t::$test]=1
            base_count=$((base_count + 1))
        done <<<"$out"
    fi
done
echo "    done ($(($(date +%s) - t0)) s)"

plain_cli=""
# The unmutated gostack binary, built on first need (for judging conform's
# reproducers).
plain_gostack() {
    if [[ -z $plain_cli ]]; then
        set_mutant none
        cargo build -q --profile test -p gostack-cli --bin gostack >"$scratch/build.log" 2>&1 ||
            { cat "$scratch/build.log"; return 1; }
        cp "$CARGO_TARGET_DIR/debug/gostack" "$scratch/gostack-plain"
        plain_cli=$scratch/gostack-plain
    fi
}

# loom_run MODEL: builds (status 2 if that fails) and runs a loom model
# in release, as ci/loom.sh does.
declare -A loom_plain
loom_run() {
    if ! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="$target/loom" \
        cargo test -q --release -p gostack-models --test "$1" --no-run >"$scratch/build.log" 2>&1; then
        cat "$scratch/build.log"
        return 2
    fi
    RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="$target/loom" \
        cargo test -q --release -p gostack-models --test "$1" >"$scratch/loom.log" 2>&1 || return 1
}

for n in "${want[@]}"; do
    start=$(date +%s)
    echo "==> $n"
    set_mutant "$n"
    if ! build_tests; then
        cat "$scratch/build.log"
        echo "    DOES NOT BUILD"
        caught_by[$n]="BUILD FAILED"
        ops_of[$n]="-"
        secs_of[$n]=$(($(date +%s) - start))
        survivors=$((survivors + 1))
        continue
    fi
    by=()
    first_ops=""
    for t in "${TESTS[@]}"; do
        if out=$(run_test "$t"); then
            echo "    $t: passes"
        else
            [[ -n $out ]] || out="(the test binary failed) -"
            while read -r test o; do
                if [[ -n ${base_fail[$t::$test]:-} ]]; then
                    echo "    $t: $test fails, as without the mutant (not counted)"
                    continue
                fi
                echo "    $t: $test fails ($o ops)"
                by+=("$t::$test")
                [[ -n $first_ops || $o == - ]] || first_ops=$o
            done <<<"$out"
        fi
    done
    if [[ ${#by[@]} -eq 0 ]]; then
        echo "    the tests miss it: gostack conform --seconds $conform_seconds"
        if plain_gostack && set_mutant "$n" &&
            cargo build -q --profile test -p gostack-cli --bin gostack >"$scratch/build.log" 2>&1; then
            status=0
            # --keep-going: one minimized case per kind of divergence; a
            # kind the unmutated implementation shows too is no catch.
            "$CARGO_TARGET_DIR/debug/gostack" conform --seconds "$conform_seconds" --seed 1 \
                --keep-going --out "$scratch/conform-$n" >"$scratch/conform.log" 2>&1 || status=$?
            echo "    conform: $(tr '\r' '\n' <"$scratch/conform.log" |
                grep -m1 -E '^[0-9]+ cases, [0-9]+ ops in' | cut -d: -f1 || true)"
            while read -r o repro; do
                [[ -n $repro ]] || continue
                if "$plain_cli" conform --replay "$repro" >/dev/null 2>&1; then
                    echo "    conform: diverges ($o ops): only with the mutant"
                    [[ " ${by[*]} " == *" conform "* ]] || by+=(conform)
                    if [[ -z $first_ops || $o -lt $first_ops ]]; then first_ops=$o; fi
                else
                    echo "    conform: diverges ($o ops), as without the mutant (not counted)"
                fi
            done < <(sed -n 's/^minimized reproducer (\([0-9]*\) ops): \(.*\)$/\1 \2/p' "$scratch/conform.log")
            if [[ $status != 0 && $status != 1 ]]; then
                cat "$scratch/conform.log"
                echo "    conform: failed to run (status $status)"
            fi
        else
            cat "$scratch/build.log"
            echo "    gostack-cli DOES NOT BUILD"
            caught_by[$n]="BUILD FAILED"
        fi
    fi
    model=$(loom_model "$n")
    if [[ ${#by[@]} -eq 0 && -n $model && -z ${caught_by[$n]:-} ]]; then
        echo "    loom model $model (preemption bound $LOOM_MAX_PREEMPTIONS)"
        # The model must pass without the mutant (checked once per model).
        if [[ -z ${loom_plain[$model]:-} ]]; then
            set_mutant none
            status=0
            loom_run "$model" || status=$?
            loom_plain[$model]=$status
            [[ $status == 0 ]] || {
                echo "    WARNING: $model fails without a mutant (status $status); it is not counted"
                base_fail[$model]=1
                base_count=$((base_count + 1))
            }
            set_mutant "$n"
        fi
        status=0
        loom_run "$model" || status=$?
        if [[ $status == 2 ]]; then
            echo "    the loom model DOES NOT BUILD"
            caught_by[$n]="BUILD FAILED"
        elif [[ $status == 0 ]]; then
            echo "    $model: passes"
        elif [[ ${loom_plain[$model]} != 0 ]]; then
            echo "    $model: fails, as without the mutant (not counted)"
        else
            echo "    $model: fails"
            by+=("$model")
        fi
    fi
    secs_of[$n]=$(($(date +%s) - start))
    if [[ -n ${caught_by[$n]:-} ]]; then
        ops_of[$n]="-"
        survivors=$((survivors + 1))
    elif [[ ${#by[@]} -eq 0 ]]; then
        caught_by[$n]="SURVIVED"
        ops_of[$n]="-"
        survivors=$((survivors + 1))
    else
        caught_by[$n]=$(IFS=' '; echo "${by[*]}")
        ops_of[$n]=${first_ops:--}
    fi
done

echo
printf '%-30s %-6s %-5s %s\n' mutant ops secs "caught by"
for n in "${want[@]}"; do
    printf '%-30s %-6s %-5s %s\n' "$n" "${ops_of[$n]}" "${secs_of[$n]}" "${caught_by[$n]}"
done
echo
echo "total $(($(date +%s) - t0)) s; ops: the first catching test's reported failure (its minimized case for the proptest and conform)"
fail=0
if [[ $survivors -gt 0 ]]; then
    echo "$survivors mutant(s) survived or did not build"
    fail=1
fi
if [[ $base_count -gt 0 ]]; then
    echo "the unmutated tree fails ${!base_fail[*]}: not counted as a catch for any mutant"
    fail=1
fi
exit $fail
