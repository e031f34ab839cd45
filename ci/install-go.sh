#!/usr/bin/env bash
# Installs the Go toolchains the oracle tests use, with their sources, from
# Debian's packages: Go 1.19 from bookworm, Go 1.23 from bookworm-backports
# (added to the apt sources if absent, by copying the machine's bookworm
# stanza, as docs/ARCHITECTURE.md section 2 says). Does nothing when both are present.
set -euo pipefail

have() { [ -x "/usr/lib/go-$1/bin/go" ] && [ -f "/usr/lib/go-$1/src/runtime/stack.go" ] \
  && [ -f "/usr/lib/go-$1/test/nosplit.go" ]; }

if have 1.19 && have 1.23; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "ci/install-go.sh: need root (or sudo) to install golang-1.19-go golang-1.19-src golang-1.23-go golang-1.23-src" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive

if ! have 1.23 && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  src=/etc/apt/sources.list.d/debian.sources
  dst=/etc/apt/sources.list.d/gostack-bookworm-backports.sources
  if [ -f "$src" ]; then
    # The first stanza whose Suites line names plain bookworm, with its
    # Suites line replaced.
    awk 'BEGIN { RS=""; ORS="\n\n" }
         /Suites:[^\n]*bookworm([ \n]|$)/ && !done {
           gsub(/Suites:[^\n]*/, "Suites: bookworm-backports"); print; done=1 }' "$src" \
      | $SUDO tee "$dst" >/dev/null
  fi
  if [ ! -s "$dst" ]; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" \
      | $SUDO tee /etc/apt/sources.list.d/gostack-bookworm-backports.list >/dev/null
    $SUDO rm -f "$dst"
  fi
fi

$SUDO apt-get update -qq
have 1.19 || $SUDO apt-get install -y -qq golang-1.19-go golang-1.19-src >/dev/null
have 1.23 || $SUDO apt-get install -y -qq -t bookworm-backports golang-1.23-go golang-1.23-src >/dev/null
have 1.19 && have 1.23 || { echo "ci/install-go.sh: Go toolchains still missing after apt-get" >&2; exit 1; }
echo "Go toolchains: $(/usr/lib/go-1.19/bin/go version), $(/usr/lib/go-1.23/bin/go version)"
