#!/usr/bin/env bash
# Teeth for the spec's tests: re-injects historical Go stack bugs into a
# scratch copy of the committed tree and checks the tests catch each one
# (see ci/spec-mutants.py for the list). About 3 minutes warm.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 ci/spec-mutants.py
