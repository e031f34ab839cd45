#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/ from meaningful cases.

split_check: every listed port (with and without race) crossed with frame
sizes at the split thresholds and SP/stackguard0 pairs at the edges where
the comparison flips, near zero, and near the top of the address space.
The layout is the target's: byte 0 picks the port, then framesize, sp and
stackguard0 as little-endian u64s.

ops, copy_adjust, adjust_pointers: structured inputs, written in the
encoding of the `arbitrary` crate (1.x) that the targets decode: integers
little-endian, an enum as a u32 whose variant is (v * count) >> 32, a
Vec as elements each preceded by a 1 byte and ended by a 0 byte, an
Option or a Result as a bool byte then the value. The ops seeds name Op
variants by name, looked up in models/src/op.rs, so a reordered enum
still gets the intended ops.
"""
import os, re, struct, hashlib

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


# --- the arbitrary crate's encoding ----------------------------------------

def u8(x): return struct.pack("<B", x & 0xFF)
def u16(x): return struct.pack("<H", x & 0xFFFF)
def u32(x): return struct.pack("<I", x & 0xFFFFFFFF)
def u64(x): return struct.pack("<Q", x & (2**64 - 1))
def i8(x): return struct.pack("<b", x)
def i16(x): return struct.pack("<h", x)
def b(x): return b"\x01" if x else b"\x00"
def vec(items): return b"".join(b"\x01" + it for it in items) + b"\x00"
def opt(x): return b"\x00" if x is None else b"\x01" + x
def ok(x): return b"\x01" + x
def err(x): return b"\x00" + x


def var(i, n):
    """The u32 that makes a derived enum of n variants pick variant i."""
    assert 0 <= i < n
    return u32(-(-(i << 32) // n))


OP_RS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "src", "op.rs")


def enums():
    """Variant names of every `pub enum` in models/src/op.rs, in order."""
    out, cur = {}, None
    for line in open(OP_RS):
        m = re.match(r"pub enum (\w+)", line)
        if m:
            cur = out.setdefault(m.group(1), [])
            continue
        if cur is not None:
            if line.startswith("}"):
                cur = None
            else:
                m = re.match(r"    (\w+)\s*[(,{]", line)
                if m:
                    cur.append(m.group(1))
    return out


E = None


def v(enum, name, *fields):
    names = E[enum]
    return var(names.index(name), len(names)) + b"".join(fields)


# --- ops --------------------------------------------------------------------

def P(i=0): return v("Who", "P", u8(i))
def G(i=0): return v("GSel", "Runnable", u8(i))
def W(i=0): return v("GSel", "Waiting", u8(i))
def LAST(): return v("GSel", "Last")
def op(name, *fields): return v("Op", name, *fields)
def stackptr(frame, word): return v("Val", "StackPtr", u8(frame), u16(word))
def case(c, word): return v("CSel", "Any", u8(c)) + u16(word)


def ops_seeds():
    """Case prefixes: grow, move, shrink, park and shrink with sudogs,
    junk, defers and panics, allocator churn."""
    spawn = lambda f: op("Spawn", P(), u8(f))
    grow = [spawn(0), op("Recurse", P(), LAST(), u8(0), u8(2), u8(40)),
            op("WriteSlot", LAST(), u8(3), v("SlotSel", "Local", u16(1)), stackptr(2, 0)),
            op("Recurse", P(), LAST(), u8(1), u8(7), u8(6)),
            op("Unwind", P(), LAST(), u8(60)), op("GcStart"), op("GcScan", u8(0), LAST()),
            op("GcScan", u8(1), LAST()), op("GcEnd")]
    move = [spawn(6), op("Call", P(), LAST(), u8(0), u8(4)),
            op("WriteSlot", LAST(), u8(0), v("SlotSel", "Arg", u16(0)), stackptr(1, 2)),
            op("SetCtxt", LAST(), stackptr(0, 1)),
            op("RequestForceMove", LAST()), op("Call", P(), LAST(), u8(1), u8(1)),
            op("RequestPreempt", LAST()), op("Call", P(), LAST(), u8(0), u8(0)),
            op("Frames", LAST())]
    park = [spawn(9), op("Recurse", P(), LAST(), u8(0), u8(6), u8(8)), op("Unwind", P(), LAST(), u8(7)),
            op("Park", LAST(), vec([case(0, 2), case(1, 5), case(2, 9)])),
            op("GcStart"), op("GcScan", u8(0), W()), op("Send", v("CSel", "Busy", u8(0)), stackptr(0, 3), i8(0)),
            op("Wake", W()), op("GcEnd")]
    steps = [spawn(8), op("Recurse", P(), LAST(), u8(0), u8(1), u8(5)), op("Unwind", P(), LAST(), u8(4)),
             op("ParkBegin", LAST(), vec([case(1, 0), case(2, 3)])), op("ParkSetParking", LAST()),
             op("GcStart"), op("GcScan", u8(0), W()), op("ParkM", W()), op("GcScan", u8(0), W()),
             op("ParkCommit", W()), op("GcScan", u8(1), W()), op("Send", v("CSel", "Busy", u8(0)),
             v("Val", "Heap", u32(0x1234)), i8(0)), op("Wake", W())]
    junk = [spawn(1), op("WriteSlot", LAST(), u8(0), v("SlotSel", "Local", u16(0)), v("Val", "Junk", u16(7))),
            op("Recurse", P(), LAST(), u8(0), u8(7), u8(3)),
            op("Poke", LAST(), u16(1), v("Val", "Raw", u64(0x4242))), op("Call", P(), LAST(), u8(0), u8(9))]
    defers = [spawn(2), op("Call", P(), LAST(), u8(0), u8(6)), op("DeferPush", LAST(), u8(0), u32(77), opt(u8(0))),
              op("DeferPush", LAST(), u8(1), u32(78), opt(None)), op("PanicPush", LAST(), u8(1), u8(0)),
              op("Recurse", P(), LAST(), u8(0), u8(8), u8(4)), op("DeferPop", LAST()),
              op("Exit", P(), LAST())]
    alloc = [op("AllocMany", P(0), v("SizeSel", "Order", u8(0)), u8(40)), op("FreeMany", P(1), u8(40)),
             op("AllocMany", v("Who", "NoP"), v("SizeSel", "Order", u8(5)), u8(3)), op("GcStart"),
             op("FreeMany", P(0), u8(3)), op("FreeStackSpans"), op("GcEnd"), op("FlushCache", u8(0)),
             op("BadFree", P(0), u16(0), u8(2)), op("SpawnBurst", P(0), u8(0), u8(70)),
             op("ExitBurst", P(0), u8(70)), op("DestroyP", u8(1))]
    return [grow, move, park, steps, junk, defers, alloc]


def ops():
    nprof = 8  # gostack_models::PROFILES
    for prof in range(nprof):
        for seq in ops_seeds():
            write("ops", u8(prof) + b"".join(seq))


# --- copy_adjust ------------------------------------------------------------

ACTIONS = ["Call", "Recurse", "ForceMove", "Preempt", "Ret", "GcScan", "GcEnd", "Write", "Park",
           "Send", "Wake", "Defer", "Panic", "Ctxt", "Syscall", "MaxStack", "Other"]
VALS = ["Nil", "Heap", "Used", "Edge", "Outside", "Misaligned", "OtherG", "Junk", "Raw"]
SLOTS = ["Local", "Arg", "Object", "Poke"]


def act(name, *f): return var(ACTIONS.index(name), len(ACTIONS)) + b"".join(f)
def val(name, *f): return var(VALS.index(name), len(VALS)) + b"".join(f)
def slot(name, *f): return var(SLOTS.index(name), len(SLOTS)) + b"".join(f)


def func(frame, locals_, nlocals, args=0, arg_ptrs=0, sites=1, objects=(), extra=0, nosplit=False):
    objs = [b(ia) + u8(off) + u8(size) + u16(ptrs) for (ia, off, size, ptrs) in objects]
    return (u16(frame) + u64(locals_) + u8(nlocals) + u8(args) + u8(arg_ptrs) + u8(sites)
            + vec(objs) + u16(extra) + b(nosplit))


def copy_adjust():
    funcs = [
        func(4, 0b1011, 3, objects=[(False, 0, 3, 0b111)]),                 # f1: small
        func(16, 0x5555, 14, args=3, arg_ptrs=0b101, sites=2,
             objects=[(False, 2, 3, 0b101), (True, 0, 2, 0b10)]),           # f2: args, objects
        func(17, (1 << 64) - 1, 16),                                        # f3: just above StackSmall
        func(513, 0xF0F0_F0F0_F0F0_F0F0, 64, sites=3),                     # f4: above StackBig
        func(600, 1, 1, extra=6000),                                        # f5: big SP delta
        func(8, 0b11, 2, nosplit=True),                                     # f6: NOSPLIT
        func(0, 0, 0),                                                      # f7: frameless
    ]
    edges = [val("Edge", u8(k)) for k in range(4)] + [val("Outside", b(True), u8(0)),
             val("Outside", b(False), u8(0)), val("Misaligned", u16(3), u8(1)), val("Nil"),
             val("Heap", u32(0x10)), val("OtherG", u16(2)), val("Raw", u64(0xdead_beef))]
    writes = []
    for i, e in enumerate(edges):
        writes.append(act("Write", u8(i % 4), slot("Local", u16(i)), e, b(False)))
    writes.append(act("Write", u8(1), slot("Arg", u16(0)), val("Used", u16(5)), b(False)))
    writes.append(act("Write", u8(2), slot("Object", u8(0), u8(1)), val("Used", u16(1)), b(True)))
    records = [act("Defer", u8(0), val("Heap", u32(1)), opt(u8(0))), act("Defer", u8(2), val("Nil"), opt(None)),
               act("Panic", u8(1), u8(0)), act("Ctxt", val("Used", u16(4)))]
    calls = [u8(f) + u8(0) for f in (1, 2, 3, 1, 2)]
    other = [u8(2) + u8(0), u8(3) + u8(1)]
    scenarios = {
        "grow": writes + records + [act("Call", u8(0), u8(4)), act("Recurse", u8(0), u8(3), u8(20))],
        "force": writes + records + [act("ForceMove", u8(0), u8(1)), act("ForceMove", u8(1), u8(2))],
        "shrink": [act("Recurse", u8(0), u8(4), u8(6))] + writes + records
                  + [act("Ret", u8(15)), act("GcScan", b(True)), act("GcScan", b(False)), act("GcEnd")],
        "preempt-shrink": [act("Recurse", u8(0), u8(5), u8(3)), act("Ret", u8(4)), act("Syscall", b(True)),
                           act("GcScan", b(True)), act("Syscall", b(False)), act("Preempt", u8(0), u8(1))],
        "park": [act("Recurse", u8(0), u8(4), u8(4)), act("Ret", u8(3))] + writes
                + [act("Park", vec([u8(0) + u16(1), u8(1) + u16(6), u8(2) + u16(12)])), act("GcScan", b(True)),
                   act("Send", u8(1), val("Used", u16(2))), act("Wake"), act("GcEnd")],
        "junk": [act("Write", u8(0), slot("Local", u16(0)), val("Junk", u16(5)), b(False)),
                 act("Recurse", u8(0), u8(4), u8(3)), act("ForceMove", u8(0), u8(1))],
        "poke": [act("Write", u8(1), slot("Poke", u16(3)), val("Used", u16(0)), b(False)),
                 act("Call", u8(0), u8(4))],
        "other": [act("Other"), act("Write", u8(0), slot("Local", u16(1)), val("OtherG", u16(3)), b(False)),
                  act("Other"), act("ForceMove", u8(0), u8(1)), act("Recurse", u8(0), u8(4), u8(3))],
        "overflow": [act("MaxStack", u8(2)), act("Recurse", u8(0), u8(4), u8(10))],
    }
    for port in range(5):
        for name, actions in scenarios.items():
            data = (u8(port) + vec(funcs) + vec([u8(0), u8(1), u8(2)]) + vec(other)
                    + vec(calls) + vec(actions))
            write("copy_adjust", data)


# --- adjust_pointers --------------------------------------------------------

WORDS = ["Nil", "FromLo", "FromHi", "Edge", "Junk", "Raw"]


def word(name, *f): return var(WORDS.index(name), len(WORDS)) + b"".join(f)


def adjust_pointers():
    mixed = ([word("FromLo", u32(8 * i)) for i in range(6)] + [word("Edge", u8(k)) for k in range(4)]
             + [word("FromHi", u16(0)), word("FromHi", u16(7)), word("Nil"), word("Junk", u16(3)),
                word("Raw", u64(0x4000_0000)), word("Raw", u64((1 << 64) - 8))] * 4)
    n = len(mixed)
    junk = word("Junk", u16(3))
    maps = {
        "all": [u16(0) + vec([b(True)] * n) + b(False)],
        "locals-junk": [u16(0) + vec([b(True)] * n) + b(True)],
        "skip-junk": [u16(0) + vec([b(w != junk) for w in mixed]) + b(True)],
        "past-end": [u16(n - 3) + vec([b(True)] * 70) + b(False)],
        "overlap": [u16(1) + vec([b(True), b(False)] * 40) + b(False),
                    u16(2) + vec([b(True)] * 65) + b(False), u16(n + 1) + vec([b(True)]) + b(True)],
        "word64": [u16(3) + vec([b(i in (0, 63, 64)) for i in range(65)]) + b(False)],
    }
    ranges = [var(0, 2) + u8(0) + u32(0x600), var(0, 2) + u8(5) + u32(0x7ffff),
              var(1, 2) + u64(0x1000) + u64(0x1000), var(1, 2) + u64(0x2000) + u64(0x1000),
              var(1, 2) + u64((1 << 64) - 0x100) + u64((1 << 64) - 1)]
    deltas = [var(0, 2) + i16(1), var(0, 2) + i16(-3), var(1, 2) + u64((1 << 64) - 4096)]
    sghis = (0, n // 2, n + 1)  # none, in the middle, above every map
    for wide, half in ((True, False), (False, False), (False, True)):
        for i, r in enumerate(ranges):
            for j, ms in enumerate(maps.values()):
                d, sghi = deltas[(i + j) % 3], sghis[j % 3]
                data = b(wide) + b(half) + r + d + u16(sghi) + vec(mixed) + vec(ms)
                write("adjust_pointers", data)


def dicts():
    """libFuzzer dictionaries (fuzz/dict/TARGET.dict, used by
    ClusterFuzzLite): the u32 that selects each Op variant, and for
    copy_adjust each Action."""
    d = os.path.join(ROOT, "..", "dict")
    os.makedirs(d, exist_ok=True)
    esc = lambda bs: "".join("\\x%02x" % c for c in bs)
    with open(os.path.join(d, "ops.dict"), "w") as f:
        for i, name in enumerate(E["Op"]):
            f.write('op_%s="%s"\n' % (name, esc(var(i, len(E["Op"])))))
    with open(os.path.join(d, "copy_adjust.dict"), "w") as f:
        for i, name in enumerate(ACTIONS):
            f.write('action_%s="%s"\n' % (name, esc(var(i, len(ACTIONS)))))


if __name__ == "__main__":
    E = enums()
    # The corpora are generated whole: clear them first, so that seeds
    # written for an older Op enum (whose variant numbers shifted) go.
    if os.path.isdir(ROOT):
        for t in os.listdir(ROOT):
            for name in os.listdir(os.path.join(ROOT, t)):
                os.remove(os.path.join(ROOT, t, name))
    dicts()
    split_check()
    ops()
    copy_adjust()
    adjust_pointers()
    for t in sorted(os.listdir(ROOT)):
        print(t, len(os.listdir(os.path.join(ROOT, t))), "inputs")
