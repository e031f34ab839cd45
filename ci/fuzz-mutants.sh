#!/usr/bin/env bash
# Teeth for the fuzz targets (issue 9): every target must find at least one
# re-injected bug within FUZZ_MUTANTS_SECONDS (default 300). For a fixed
# table of (target, mutant) pairs it builds the target with the mutant and
# runs it from the committed corpus fuzz/corpus/TARGET (read-only; new
# inputs go to a scratch directory) until it crashes or the time is up.
#
# Mutants are of two kinds:
#   impl  `cfg(gostack_mutant = "NAME")` in impl/src/*.rs (the catalogue is
#         at the top of ci/mutants.sh). The cfg is set by a one-line build
#         script added to the scratch copy's impl/Cargo.toml, as
#         ci/mutants.sh does, so it reaches the gostack crate alone.
#         (cargo-fuzz appends RUSTFLAGS to its own flags, so
#         RUSTFLAGS='--cfg gostack_mutant="NAME"' would work too, but it
#         reaches every crate and changes every crate's fingerprint: each
#         mutant would rebuild all dependencies under ASan.)
#   spec  a source patch of the spec (the spec crate has no mutant cfg),
#         applied to the scratch copy the way ci/spec-mutants.py does: the
#         text must occur exactly once.
#
# First the unmutated targets are built and run once over their corpus
# (`-runs=0`): a target that crashes there cannot judge a mutant, and the
# run fails. A mutant that does not apply or does not build is an error,
# never a catch. Only a crash counts (a panic, an abort or a sanitizer
# report: libFuzzer's crash-* artifact); a timeout, OOM or leak does not.
# Prints a table (target, mutant, seconds from the start of the run to the
# crash, corpus loading included, or "not caught"; executions; whether a
# committed seed or a fuzzed input crashed) and exits 1 if a pair is not
# caught, a mutant does not build, or an unmutated target crashes on its
# corpus; 2 on bad usage or when the unmutated tree does not build.
#
# Usage: ci/fuzz-mutants.sh [--list] [TARGET...]   (default: every pair)
#
# Everything runs in a scratch copy of the working tree (target
# directories, fuzz artifacts and coverage left out), so the checkout is
# never patched and its corpus never written. Knobs: FUZZ_MUTANTS_SECONDS
# (300), FUZZ_MUTANTS_SEED (libFuzzer's -seed, 1), CARGO_TARGET_DIR (the
# builds go to $CARGO_TARGET_DIR/fuzz-mutants, default
# target/fuzz-mutants), CARGO_BUILD_JOBS. Needs nightly Rust and
# cargo-fuzz (installed if missing), like ci/fuzz.sh.
set -euo pipefail

# target | kind | mutant | what it re-injects. The committed seeds catch
# most of these at once; big_form_wrap_64bit is there because they do not
# (it needs a 32-bit port, a big frame, SP below framesize - StackSmall and
# a stackguard0 near the top: the fuzzer found one after 50 s and after
# 3 s in two runs with the same -seed, whose binaries differed because the
# tree had changed). ci/spec-mutants.py has no mutant of the split check,
# hence the spec patches below.
PAIRS=(
    "adjust_pointers|impl|adjust_partial_word_skipped|adjustpointers' packed-bitmap walk skips the last, partial u64 of a map"
    "copy_adjust|impl|frame_pointer_not_adjusted|golang/go#58432: arm64 saved frame pointers not adjusted"
    "ops|impl|cache_release_quarter|stackcacherelease releases the cache down to a quarter, not half"
    "split_check|spec|guard_compare_strict|needs_morestack tests SP < stackguard0 where the prologue branches on <= (JLS, BLS)"
    "split_check|spec|big_form_wrap_64bit|needs_morestack's big form wraps SP - (framesize - StackSmall) at 64 bits on 32-bit ports"
)

# spec_patch NAME: sets file, find and repl for a spec mutant.
spec_patch() {
    case $1 in
        guard_compare_strict)
            file=spec/src/guard.rs
            find='let below_guard = |x: u64| x <= stackguard0;'
            repl='let below_guard = |x: u64| x < stackguard0;'
            ;;
        big_form_wrap_64bit)
            file=spec/src/guard.rs
            find='SplitForm::Big => below_guard(sp.wrapping_sub(k) & mask),'
            repl='SplitForm::Big => below_guard(sp.wrapping_sub(k)),'
            ;;
        *)
            echo "ci/fuzz-mutants.sh: no patch for spec mutant $1" >&2
            return 1
            ;;
    esac
}

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_MUTANTS_SECONDS:-300}
seed=${FUZZ_MUTANTS_SEED:-1}

if [[ ${1:-} == --list ]]; then
    for p in "${PAIRS[@]}"; do
        IFS='|' read -r t k n what <<<"$p"
        printf '%-16s %-5s %-36s %s\n' "$t" "$k" "$n" "$what"
    done
    exit 0
fi
targets=()
for p in "${PAIRS[@]}"; do targets+=("${p%%|*}"); done
want=()
for a in "$@"; do
    if [[ ! " ${targets[*]} " == *" $a "* ]]; then
        echo "ci/fuzz-mutants.sh: no pair for target '$a' (--list shows them)" >&2
        exit 2
    fi
done
for p in "${PAIRS[@]}"; do
    if [[ $# -eq 0 || " $* " == *" ${p%%|*} "* ]]; then want+=("$p"); fi
done

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# Every impl mutant must exist in the source: a misspelt cfg would build
# the unmutated code and survive for the wrong reason.
for p in "${want[@]}"; do
    IFS='|' read -r t k n what <<<"$p"
    if [[ $k == impl ]] && ! grep -q "gostack_mutant = \"$n\"" "$root"/impl/src/*.rs; then
        echo "ci/fuzz-mutants.sh: no cfg(gostack_mutant = \"$n\") in impl/src" >&2
        exit 2
    fi
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}/fuzz-mutants
t0=$(date +%s)
# shellcheck source=ci/mutant-scratch.sh
source "$root/ci/mutant-scratch.sh"
mutant_scratch "$root" gostack-fuzz-mutants ./fuzz/target ./fuzz/artifacts ./fuzz/coverage ./conform-out

set_mutant() {
    mutant_cfg "$1"
}

# patch FILE FIND REPL: replaces the one occurrence of FIND (status 1 if
# there is not exactly one).
patch() {
    python3 - "$@" <<'EOF'
import sys
path, find, repl = sys.argv[1:4]
text = open(path).read()
n = text.count(find)
if n != 1:
    print(f"    the patch matches {n} times in {path}", file=sys.stderr)
    sys.exit(1)
open(path, "w").write(text.replace(find, repl))
EOF
}

# build TARGET: cargo fuzz build with run's defaults (release, ASan,
# debug assertions); the log is in $scratch/build.log.
build() {
    (cd fuzz && cargo +nightly fuzz build "$1") >"$scratch/build.log" 2>&1
}

# fuzz TARGET LOG LIBFUZZER-ARGS...: runs the target from a fresh scratch
# corpus and the committed one (read-only in this copy), with its
# dictionary; crashes land in fuzz/artifacts/TARGET of the copy.
fuzz() {
    local t=$1 log=$2 dict=()
    shift 2
    [[ -f fuzz/dict/$t.dict ]] && dict=("-dict=dict/$t.dict")
    rm -rf "$scratch/new" "fuzz/artifacts/$t"
    mkdir -p "$scratch/new" "fuzz/artifacts/$t"
    (cd fuzz && timeout --signal=INT --kill-after=30 $((seconds + 120)) \
        cargo +nightly fuzz run "$t" "$scratch/new" "corpus/$t" -- \
        -print_final_stats=1 "${dict[@]}" "$@") >"$log" 2>&1 || true
}

echo "==> the unmutated targets (scratch copy in $scratch, target $CARGO_TARGET_DIR)"
set_mutant none
declare -A base_bad
base_count=0
for t in $(printf '%s\n' "${want[@]}" | cut -d'|' -f1 | sort -u); do
    if ! build "$t"; then
        cat "$scratch/build.log"
        echo "ci/fuzz-mutants.sh: the unmutated $t does not build" >&2
        exit 2
    fi
    fuzz "$t" "$scratch/base-$t.log" -runs=0
    n=$(find "fuzz/corpus/$t" -type f | wc -l)
    if compgen -G "fuzz/artifacts/$t/*" >/dev/null || ! grep -q 'Done 0 runs\|INITED' "$scratch/base-$t.log"; then
        tail -40 "$scratch/base-$t.log"
        echo "    WARNING: the unmutated $t fails on its corpus ($n inputs): its pairs are not judged"
        base_bad[$t]=1
        base_count=$((base_count + 1))
    else
        echo "    $t: $n corpus inputs, no crash"
    fi
done
echo "    done ($(($(date +%s) - t0)) s)"

declare -A result execs found
fail=0
for p in "${want[@]}"; do
    IFS='|' read -r t k n what <<<"$p"
    key="$t|$n"
    echo "==> $t against $k mutant $n"
    if [[ -n ${base_bad[$t]:-} ]]; then
        result[$key]="not judged"
        fail=1
        continue
    fi
    file=""
    if [[ $k == spec ]]; then
        spec_patch "$n"
        cp "$file" "$scratch/orig"
        if ! patch "$file" "$find" "$repl"; then
            echo "    DOES NOT APPLY"
            result[$key]="NOT APPLIED"
            fail=1
            continue
        fi
        set_mutant none
    else
        set_mutant "$n"
    fi
    if ! build "$t"; then
        cat "$scratch/build.log"
        echo "    DOES NOT BUILD"
        result[$key]="BUILD FAILED"
        fail=1
    else
        log="$scratch/$t-$n.log"
        start=$(date +%s.%N)
        fuzz "$t" "$log" -max_total_time="$seconds" -seed="$seed"
        end=$(date +%s.%N)
        # Executions: the final stats, else the last status line's count.
        execs[$key]=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        [[ -n ${execs[$key]} ]] ||
            execs[$key]=$(sed -n 's/^#\([0-9][0-9]*\)[[:space:]].*/\1/p' "$log" | tail -1)
        crash=$(compgen -G "fuzz/artifacts/$t/crash-*" | head -1 || true)
        if [[ -n $crash ]]; then
            result[$key]=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
            # A crash before libFuzzer's INITED line is a seed's.
            if grep -q INITED "$log"; then found[$key]=fuzzing; else found[$key]=seed; fi
            echo "    crashed after ${result[$key]} s (${found[$key]}, ${execs[$key]:-?} execs): $(
                grep -m1 -A1 'panicked at\|ERROR: AddressSanitizer' "$log" | tail -1 | cut -c1-160)"
        else
            other=$(compgen -G "fuzz/artifacts/$t/*" | head -1 || true)
            result[$key]="not caught"
            [[ -z $other ]] || result[$key]="not caught ($(basename "$other" | cut -d- -f1))"
            echo "    ${result[$key]} in $seconds s"
            fail=1
        fi
    fi
    if [[ $k == spec ]]; then
        cp "$scratch/orig" "$file"
    fi
done

echo
printf '%-16s %-36s %-14s %-10s %s\n' target mutant "secs to crash" execs "crashed on"
for p in "${want[@]}"; do
    IFS='|' read -r t k n what <<<"$p"
    key="$t|$n"
    printf '%-16s %-36s %-14s %-10s %s\n' "$t" "$n" "${result[$key]}" "${execs[$key]:--}" "${found[$key]:--}"
done
echo
echo "total $(($(date +%s) - t0)) s; limit ${seconds} s per pair, libFuzzer -seed=$seed"
if [[ $base_count -gt 0 ]]; then
    echo "unmutated targets that crash on their corpus: ${!base_bad[*]}"
fi
exit $fail
