#!/usr/bin/env bash
# Runs the impl's unit tests under Miri (nightly). Miri cannot mmap, so
# under cfg(miri) the OS layer (impl/src/os.rs) backs the arena with a
# zeroed heap allocation behind the same interface: sys_unused zeroes the
# range instead of madvise, and sys_fault (mprotect) is not available.
# Everything above the OS layer (page heap, span table, intrusive lists in
# arena memory, P caches, locks, atomics) runs unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
    rustup +nightly component add miri rust-src
fi
# Many-seeds would be slow; one run with the default seed, plus
# -Zmiri-strict-provenance to check our pointer-to-integer round trips
# stay out of the way (addresses are integers; memory is reached only
# through the arena's base pointer).
MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}" \
    cargo +nightly miri test -p gostack --lib "$@"
