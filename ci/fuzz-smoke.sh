#!/usr/bin/env bash
# CI's fuzz smoke run: every fuzz target for SECONDS (default 60) over its
# committed corpus. Long runs: ci/fuzz.sh TARGET SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
for target in $(cd fuzz && cargo fuzz list); do
  ci/fuzz.sh "$target" "$seconds" 2>&1 | tail -8
done
