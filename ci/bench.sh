#!/usr/bin/env bash
# The implementation's benchmarks, each figure next to a baseline measured in
# the same run (BENCHMARKS.md holds the latest figures and explains them):
#   1. criterion (cargo bench -p gostack):
#      alloc   - alloc+free of a 2 KiB stack (warm P cache, pool) vs
#                mmap+munmap per stack;
#      churn   - bursts bigger than a P cache on two threads/two Ps vs the
#                same work on one thread, and vs mmap+munmap on two threads;
#      gobench - the shapes of Go's BenchmarkStackCopy, StackCopyPtr,
#                StackCopyWithStkobj, StackGrowth vs their physical floor;
#   2. `gostack bench` (release): the same figures timed as best-of-batches,
#      metadata per live stack with 1,000,000 stacks, and Go's own
#      benchmarks (go test -bench 'StackCopy|StackGrowth' runtime, Go 1.23)
#      with the impl/Go ratios;
#   3. the 100,000-goroutine example.
# Prints the machine and its load first: run it when the machine is idle.
#   ci/bench.sh            # 1 s warm-up, 5 s per criterion benchmark
#   ci/bench.sh --quick    # 1 s per benchmark, gostack bench --quick
set -euo pipefail
cd "$(dirname "$0")/.."
T=5
QUICK=()
if [ "${1:-}" = "--quick" ]; then
    T=1
    QUICK=(--quick)
fi
TARGET="${CARGO_TARGET_DIR:-target}"

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rustc: $(rustc --version)"
GO=${GOSTACK_GO_1_23:-/usr/lib/go-1.23}/bin/go
if [ -x "$GO" ]; then
    echo "go: $("$GO" version)"
else
    echo "go: Go 1.23 not found at $GO; install it with ci/install-go.sh (gostack bench then prints the impl's figures only, marked as such)"
fi

for b in alloc churn gobench; do
    cargo bench -p gostack --bench "$b" -- --warm-up-time 1 --measurement-time "$T" >&2
done

CRITERION="$TARGET/criterion" python3 - <<'PY'
import json, os
root = os.environ["CRITERION"]
def ns(group, name):
    with open(os.path.join(root, group, name, "new", "estimates.json")) as f:
        return json.load(f)["mean"]["point_estimate"]
def fmt(t):
    return f"{t/1e6:.1f} ms" if t >= 1e6 else (f"{t/1e3:.2f} us" if t >= 1e4 else f"{t:.1f} ns")

print("\n## criterion: alloc+free of a 2 KiB stack (mean per pair)\n")
print("| benchmark | mean | mmap+touch+munmap / it |")
print("|---|---|---|")
base = ns("stack_2k", "mmap_munmap")
for n in ["gostack_p_cache_alloc_free", "gostack_pool_alloc_free",
          "floor_two_atomic_rmw", "mmap_munmap_untouched", "mmap_munmap"]:
    t = ns("stack_2k", n)
    print(f"| {n} | {fmt(t)} | {base/t:.1f}x |")

print("\n## criterion: churn, bursts of 64 x 2 KiB on each of two threads (mean per iteration = 128 pairs)\n")
print("| benchmark | mean per iteration | per pair | / one thread |")
print("|---|---|---|---|")
one = ns("churn_2k", "one_thread_one_p")
for n in ["gostack_two_threads_two_ps", "one_thread_one_p", "mmap_munmap_two_threads"]:
    t = ns("churn_2k", n)
    print(f"| {n} | {fmt(t)} | {fmt(t/128)} | {t/one:.2f} |")

print("\n## criterion: Go's stack benchmark shapes through gostack::Runtime (mean per op)\n")
print("| shape | gostack | floor | gostack / floor |")
print("|---|---|---|---|")
for n in ["BenchmarkStackCopy", "BenchmarkStackCopyPtr", "BenchmarkStackCopyWithStkobj"]:
    t, f = ns("go_shapes/gostack", n), ns("go_shapes/floor", n)
    print(f"| {n} | {fmt(t)} | {fmt(f)} | {t/f:.2f} |")
t = ns("go_shapes/gostack", "BenchmarkStackGrowth")
print(f"| BenchmarkStackGrowth | {fmt(t)} | (one growth over all ops) | - |")
PY

echo
echo "## gostack bench ${QUICK[*]:-}"
echo
cargo run --release -q -p gostack-cli -- bench "${QUICK[@]}"

echo
echo "## the 100,000-goroutine example"
echo
cargo run --release -q -p gostack --example goroutines
