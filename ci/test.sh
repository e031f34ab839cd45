#!/usr/bin/env bash
# The test command of the README: installs what the tests need (the Go
# toolchains that serve as oracles), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/install-go.sh
# Seconds: every spec mutant (ci/spec-mutants.py) still applies to the tree.
python3 ci/spec-mutants.py --check
cargo test --workspace "$@"
