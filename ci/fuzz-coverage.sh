#!/usr/bin/env bash
# HTML line coverage of the spec and the impl reached by a fuzz target's
# corpus: ci/fuzz-coverage.sh TARGET [CORPUS_DIR]
#
# CORPUS_DIR defaults to the committed seeds fuzz/corpus/TARGET; pass the
# scratch directory a long `ci/fuzz.sh TARGET SECONDS` run printed to see
# what fuzzing reached. Builds the target with coverage instrumentation
# (`cargo fuzz coverage`), merges the profile, and writes
#   fuzz/coverage/TARGET/html/index.html   (browse it)
# and prints a per-file summary of spec/, impl/ and models/ sources.
# Installs cargo-fuzz and nightly's llvm-tools-preview if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: ci/fuzz-coverage.sh TARGET [CORPUS_DIR]}
corpus=$(realpath "${2:-fuzz/corpus/$target}")
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
rustup component add --toolchain nightly llvm-tools-preview >/dev/null
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
llvm_bin="$(rustc +nightly --print sysroot)/lib/rustlib/$host/bin"
cd fuzz
cargo +nightly fuzz coverage "$target" "$corpus"
bin="target/$host/coverage/$host/release/$target"
profdata="coverage/$target/coverage.profdata"
out="coverage/$target/html"
ignore='(/\.cargo/|/rustc/|/\.rustup/|fuzz_targets/)'
"$llvm_bin/llvm-cov" show "$bin" -instr-profile="$profdata" -format=html \
  -output-dir="$out" -ignore-filename-regex="$ignore" -show-line-counts-or-regions
"$llvm_bin/llvm-cov" report "$bin" -instr-profile="$profdata" \
  -ignore-filename-regex="$ignore"
echo "coverage report: fuzz/$out/index.html"
