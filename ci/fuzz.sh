#!/usr/bin/env bash
# Runs one fuzz target for a while: ci/fuzz.sh TARGET SECONDS
# Uses nightly Rust and cargo-fuzz (installed if missing) with
# AddressSanitizer (cargo-fuzz's default). The committed corpus
# fuzz/corpus/TARGET seeds the run read-only; new inputs go to a scratch
# directory (printed), crashes to fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: ci/fuzz.sh TARGET SECONDS}
seconds=${2:?usage: ci/fuzz.sh TARGET SECONDS}
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
scratch=$(mktemp -d)
echo "fuzzing $target for ${seconds}s; new corpus entries in $scratch"
cd fuzz
dict=()
if [[ -f "dict/$target.dict" ]]; then
  dict=("-dict=dict/$target.dict")
fi
cargo +nightly fuzz run "$target" "$scratch" "corpus/$target" -- \
  -max_total_time="$seconds" -print_final_stats=1 "${dict[@]}"
