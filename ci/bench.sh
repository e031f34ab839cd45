#!/usr/bin/env bash
# Allocator benchmarks (criterion), each reported as a ratio against the
# mmap+munmap baseline measured in the same run. Writes the table to stdout;
# BENCHMARKS.md holds the latest figures.
#   ci/bench.sh            # default: 1 s warm-up, 5 s per benchmark
#   ci/bench.sh --quick    # 1 s per benchmark
set -euo pipefail
cd "$(dirname "$0")/.."
T=5
if [ "${1:-}" = "--quick" ]; then T=1; fi
cargo bench -p gostack --bench alloc -- --warm-up-time 1 --measurement-time "$T" >&2
python3 - <<'PY'
import json, os
d = "target/criterion/stack_2k"
def ns(name):
    with open(os.path.join(d, name, "new", "estimates.json")) as f:
        return json.load(f)["mean"]["point_estimate"]
names = ["gostack_p_cache_alloc_free", "gostack_pool_alloc_free",
         "floor_two_atomic_rmw", "mmap_munmap_untouched", "mmap_munmap"]
base = ns("mmap_munmap")
base_u = ns("mmap_munmap_untouched")
print("| benchmark (2 KiB stack, alloc+free pair) | mean | vs mmap+touch+munmap | vs mmap+munmap untouched |")
print("|---|---|---|---|")
for n in names:
    t = ns(n)
    print(f"| {n} | {t:.1f} ns | {base/t:.0f}x faster | {base_u/t:.0f}x faster |" if t < base_u
          else f"| {n} | {t:.1f} ns | {t/base:.2f} of it | {t/base_u:.2f} of it |")
PY
