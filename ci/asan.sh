#!/usr/bin/env bash
# The impl's tests under AddressSanitizer (nightly, std rebuilt with ASan):
# the unit tests of `gostack`, its integration tests (impl/tests/*.rs,
# including the debug modes' child processes, which run under ASan too),
# the differential tests against the spec, and the concurrent goroutine
# layer on real threads (models/tests/conc_threads.rs).
#
# Doctests are not run: rustdoc cannot build them with -Zbuild-std for an
# explicit --target without the unstable -Zdoctest-xcompile, and the one
# doctest of the crate (impl/src/lib.rs) is covered by the unit tests.
#
# Usage: ci/asan.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup +nightly component list --installed 2>/dev/null | grep -q '^rust-src'; then
    rustup toolchain install nightly --profile minimal
    rustup component add --toolchain nightly rust-src
fi
target=x86_64-unknown-linux-gnu
export RUSTFLAGS="-Zsanitizer=address"
export RUSTDOCFLAGS="-Zsanitizer=address"
# A separate target directory: these flags rebuild everything.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/asan"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
start=$(date +%s)
cargo +nightly test -Zbuild-std --target "$target" -p gostack --lib --tests "$@"
# The differential tests: the scripted scenarios, and the random state
# machine at a quarter of its default case count (ASan makes it about ten
# times slower; PROPTEST_CASES overrides).
PROPTEST_CASES="${PROPTEST_CASES:-64}" cargo +nightly test -Zbuild-std --target "$target" \
    -p gostack-models --test diff_goroutine --test differential --test conc_threads "$@"
diff_test="diff_goroutine, differential and conc_threads"
echo "asan: impl tests and $diff_test passed under AddressSanitizer in $(( $(date +%s) - start )) s"
