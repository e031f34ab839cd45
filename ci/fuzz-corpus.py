#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/ from meaningful cases.

split_check: every listed port (with and without race) crossed with frame
sizes at the split thresholds and SP/stackguard0 pairs at the edges where
the comparison flips, near zero, and near the top of the address space.
The layout is the target's: byte 0 picks the port, then framesize, sp and
stackguard0 as little-endian u64s.
"""
import os, struct, hashlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus")


def write(target, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def split_check():
    ports = 8
    frames = [0, 128, 136, 4096, 4104, 1 << 20, (1 << 31) - 1, 1 << 31]
    for pick in range(ports):
        wide = pick % ports not in (1, 5)  # 386 ports are 32-bit
        top = (1 << 64) - 1 if wide else (1 << 32) - 1
        guard = 0xc000_0000_0000 + 928 if wide else 0x1000_0000 + 928
        for fs in frames:
            k = max(fs - 128, 0)
            for sp in {guard + k, guard + k + 1, k - 1 if k else 0, top - 8}:
                for g in {guard, top - 1313}:  # a real guard, stackPreempt
                    write("split_check", struct.pack("<BQQQ", pick, fs, sp & (2**64 - 1), g & (2**64 - 1)))


if __name__ == "__main__":
    split_check()
    for t in sorted(os.listdir(ROOT)):
        print(t, len(os.listdir(os.path.join(ROOT, t))), "inputs")
