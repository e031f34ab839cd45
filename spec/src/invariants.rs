//! Every invariant of the spec's state, in one place.
//!
//! [`check_invariants`] is run after every step by every driver (proptest,
//! fuzz, the differential harness). Each invariant has a short name and a
//! one-line explanation; a violation names both and gives the offending
//! detail.

use crate::heap::{SpanState, PAGE_SIZE};
use crate::stack::{stacklog2, GcPhase, State};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's short name.
    pub name: &'static str,
    /// What the invariant says.
    pub rule: &'static str,
    /// What was found.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant {} ({}) violated: {}",
            self.name, self.rule, self.detail
        )
    }
}

impl std::error::Error for Violation {}

/// The invariants, by name, with what each one says.
pub const INVARIANTS: &[(&str, &str)] = &[
    ("heap-tiling", "the free runs and the spans tile the mapped heap exactly, and free runs are maximal"),
    ("heap-growth", "the mapped heap is whole 512-page chunks within the arena"),
    ("span-shape", "a stack span is a 4-page pool span of one order or a large span holding one stack; heap spans carry no stack fields"),
    ("pool-span-count", "a pool span's allocCount plus its free stacks equals its capacity, and its free list holds distinct slots of the span"),
    ("pool-list", "a pool list holds each span of its order that has a free stack, exactly once, and no other span"),
    ("pool-empty-spans", "with GC off and freeStackSpans done, no pool span is empty (empty spans go back to the heap)"),
    ("stack-large", "stackLarge holds only free large stack spans of its log2 class, once each, and is empty with GC off after freeStackSpans"),
    ("cache", "a P cache's size equals its list's bytes, never exceeds StackCacheSize, and lists only slots of its order's spans"),
    ("ownership", "every stack slot is in exactly one place: its span's free list, one P cache, or in use; allocCount counts the cached and in-use ones"),
    ("stack-inuse", "StackInuse equals the bytes of all stack spans"),
    ("sys-stacks", "stacks from the OS lie in their region, page-rounded, apart from its free ranges (which are maximal); stacks_sys counts them and the faulted bytes, and the region is all accounted for"),
    ("markers", "pointers a GC marker holds exist only while marking, and lie in stack spans"),
    ("gc-pending", "freeStackSpans is pending only with GC off"),
    ("g-stack", "a live goroutine's stack is a stack in use, its own, with lo + StackSystem <= sp <= hi and stackguard0 at lo + StackGuard or a special value"),
    ("g-frames", "a live goroutine's frames unwind from sched.pc down to the goexit return address at stktopsp"),
    ("g-fp", "on amd64 and arm64 every saved frame pointer, and sched.bp, points at the frame-pointer slot of the nearest outer frame that has one"),
    ("m-stack", "every M's g0 and gsignal stack, and every g0 stack on sched.freem, is a stack in use of its size, owned by no goroutine and no other M stack"),
    ("g-dead", "a dead goroutine waits on nothing, and sits in exactly one free list"),
    ("g-park", "parkingOnChan and activeStackChans each imply sudogs, never both; a locked channel is locked by a goroutine inside its parking steps"),
    ("sudog", "each sudog belongs to one waiting goroutine, its elem lies in that goroutine's used stack (or is nil once a sender served it), and a queued sudog is on its own channel"),
];

fn rule(name: &'static str) -> &'static str {
    INVARIANTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| *r)
        .unwrap_or("")
}

fn fail(name: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation {
        name,
        rule: rule(name),
        detail,
    })
}

/// Checks every invariant of the state; the first violation found is
/// returned.
pub fn check_invariants(s: &State) -> Result<(), Violation> {
    check_heap(s)?;
    check_spans(s)?;
    check_pools(s)?;
    check_large(s)?;
    check_caches_and_ownership(s)?;
    check_gc(s)?;
    check_sys_stacks(s)?;
    check_goroutines(s)
}

/// The stacks from the OS ([`crate::stack::SysStacks`]): live ones are
/// the `in_use` entries in the region above the arena.
fn check_sys_stacks(s: &State) -> Result<(), Violation> {
    let region = s.config.arena_base + s.config.arena_bytes;
    let end = region + s.config.arena_bytes;
    let page = crate::stack::PHYS_PAGE_SIZE;
    let live: Vec<(u64, u64)> = s.in_use.range(region..).map(|(&lo, &n)| (lo, n)).collect();
    if !s.from_system() {
        if !live.is_empty() || !s.sys.free.is_empty() || s.sys.stacks_sys + s.sys.faulted != 0 {
            return fail(
                "sys-stacks",
                "stacks from the OS without stackFromSystem or efence".into(),
            );
        }
        return Ok(());
    }
    let mut ranges: Vec<(u64, u64, bool)> = live.iter().map(|&(lo, n)| (lo, n, false)).collect();
    ranges.extend(s.sys.free.iter().map(|(&lo, &n)| (lo, n, true)));
    ranges.sort_unstable();
    let mut prev: Option<(u64, bool)> = None;
    for &(lo, n, free) in &ranges {
        if lo % page != 0 || n == 0 || n % page != 0 || lo + n > end {
            return fail(
                "sys-stacks",
                format!("range {lo:#x}+{n} is not whole pages of the region"),
            );
        }
        if let Some((prev_end, prev_free)) = prev {
            if lo < prev_end {
                return fail(
                    "sys-stacks",
                    format!("range {lo:#x}+{n} overlaps the one before"),
                );
            }
            if free && prev_free && lo == prev_end {
                return fail(
                    "sys-stacks",
                    format!("free range {lo:#x} is not merged with the one before"),
                );
            }
        }
        prev = Some((lo + n, free));
    }
    let live_bytes: u64 = live.iter().map(|&(_, n)| n).sum();
    let free_bytes: u64 = s.sys.free.values().sum();
    let faulting = s.config.godebug.efence || s.config.stack_fault_on_free;
    let accounted = live_bytes + free_bytes + s.sys.faulted;
    if s.sys.stacks_sys != live_bytes + s.sys.faulted
        || accounted != s.config.arena_bytes
        || (!faulting && s.sys.faulted != 0)
    {
        return fail(
            "sys-stacks",
            format!(
                "stacks_sys {} but {live_bytes} live and {} faulted bytes; {free_bytes} free of {}",
                s.sys.stacks_sys, s.sys.faulted, s.config.arena_bytes
            ),
        );
    }
    Ok(())
}

/// Walks the frames from the outermost in: each frame that has a frame
/// saves the frame-pointer register as it was on entry (amd64: at varp, the
/// top of the frame; arm64: one word below its SP) and points the register
/// at that slot; sched.bp is the register after the innermost prologue.
fn check_frame_pointers(
    s: &State,
    id: u32,
    frames: &[crate::goroutine::Frame],
) -> Result<(), Violation> {
    use crate::profile::Goarch;
    let arm = match s.config.profile.goarch {
        Goarch::Amd64 => false,
        // Go 1.19 does not adjust arm64's saved frame pointers, which may
        // therefore point into an old stack.
        Goarch::Arm64 if s.arm64_fp_adjusted() => true,
        _ => return Ok(()),
    };
    let p = s.consts.ptr_size;
    let mut reg = 0u64;
    for fr in frames.iter().rev() {
        let size = if fr.site.is_some() {
            s.gor.funcs[fr.func].frame_size
        } else {
            0
        };
        if size == 0 {
            continue;
        }
        let slot = if arm { fr.sp - p } else { fr.varp };
        let saved = s.read_word(slot);
        if saved != reg {
            return fail(
                "g-fp",
                format!(
                    "g {id}: the frame at sp {:#x} saved FP {saved:#x}, expected {reg:#x}",
                    fr.sp
                ),
            );
        }
        reg = slot;
    }
    let bp = s.gor.gs[&id].bp;
    if bp != reg {
        return fail(
            "g-fp",
            format!("g {id}: sched.bp {bp:#x}, expected {reg:#x}"),
        );
    }
    Ok(())
}

fn check_goroutines(s: &State) -> Result<(), Violation> {
    use crate::goroutine::GStatus;
    let c = &s.consts;
    let mut owners: BTreeMap<u64, u32> = BTreeMap::new();
    let mut in_free: BTreeMap<u32, usize> = BTreeMap::new();
    for id in s
        .gor
        .p_gfree
        .values()
        .flatten()
        .chain(&s.gor.sched_gfree_stack)
        .chain(&s.gor.sched_gfree_nostack)
    {
        *in_free.entry(*id).or_default() += 1;
    }
    let g_stacks: std::collections::BTreeSet<u64> = s
        .gor
        .gs
        .values()
        .map(|g| g.stack.lo)
        .filter(|&lo| lo != 0)
        .collect();
    let mut m_stacks = std::collections::BTreeSet::new();
    let freem = s
        .gor
        .freem
        .iter()
        .map(|&(m, stk)| (m, "g0 on sched.freem", stk));
    let live = s
        .gor
        .ms
        .iter()
        .flat_map(|(&m, st)| [(m, "g0", st.g0), (m, "gsignal", st.gsignal)]);
    for (m, what, stk) in live.chain(freem) {
        if s.in_use.get(&stk.lo) != Some(&(stk.hi - stk.lo))
            || g_stacks.contains(&stk.lo)
            || !m_stacks.insert(stk.lo)
        {
            return fail(
                "m-stack",
                format!(
                    "M {m}'s {what} stack {:#x}..{:#x} is not its own stack in use",
                    stk.lo, stk.hi
                ),
            );
        }
    }
    for (&id, g) in &s.gor.gs {
        if g.stack.lo != 0 {
            if s.in_use.get(&g.stack.lo) != Some(&(g.stack.hi - g.stack.lo)) {
                return fail(
                    "g-stack",
                    format!(
                        "g {id}'s stack {:#x}..{:#x} is not a stack in use",
                        g.stack.lo, g.stack.hi
                    ),
                );
            }
            if let Some(other) = owners.insert(g.stack.lo, id) {
                return fail("g-stack", format!("g {id} and g {other} share a stack"));
            }
        }
        if g.status == GStatus::Dead {
            if !g.waiting.is_empty() || in_free.get(&id) != Some(&1) {
                return fail(
                    "g-dead",
                    format!(
                        "g {id}: {} sudogs, in {:?} free lists",
                        g.waiting.len(),
                        in_free.get(&id)
                    ),
                );
            }
            continue;
        }
        if in_free.contains_key(&id) {
            return fail("g-dead", format!("live g {id} is in a free list"));
        }
        let guard_ok = g.stackguard0 == g.stack.lo + c.stack_guard
            || g.stackguard0 == c.stack_preempt
            || g.stackguard0 == c.stack_force_move
            || g.stackguard0 == c.stack_fork;
        if g.stack.lo == 0 || g.sp < g.stack.lo + c.stack_system || g.sp > g.stack.hi || !guard_ok {
            return fail(
                "g-stack",
                format!(
                    "g {id}: stack {:#x}..{:#x}, sp {:#x}, stackguard0 {:#x}",
                    g.stack.lo, g.stack.hi, g.sp, g.stackguard0
                ),
            );
        }
        if !g.corrupted {
            match s.frames(id) {
                Err(e) => return fail("g-frames", format!("g {id}: {e}")),
                Ok(frames) => check_frame_pointers(s, id, &frames)?,
            }
        }
        if (g.parking_on_chan || g.active_stack_chans) && g.waiting.is_empty()
            || (g.parking_on_chan && g.active_stack_chans)
        {
            return fail(
                "g-park",
                format!(
                    "g {id}: parkingOnChan {}, activeStackChans {}, {} sudogs",
                    g.parking_on_chan,
                    g.active_stack_chans,
                    g.waiting.len()
                ),
            );
        }
        for sid in &g.waiting {
            let Some(sg) = s.gor.sudogs.get(sid) else {
                return fail("sudog", format!("g {id} waits on missing sudog {sid}"));
            };
            let elemsize = s.gor.chans.get(&sg.c).map(|ch| ch.elemsize).unwrap_or(0);
            // A sender clears elem (nil) once it has written the value.
            let served = sg.elem == 0 && g.status == GStatus::Runnable;
            if sg.g != id || (!served && (sg.elem < g.sp || sg.elem + elemsize > g.stack.hi)) {
                return fail(
                    "sudog",
                    format!(
                        "sudog {sid} of g {id}: elem {:#x} outside the used stack {:#x}..{:#x}",
                        sg.elem, g.sp, g.stack.hi
                    ),
                );
            }
        }
    }
    let waiting: BTreeSet<u32> = s
        .gor
        .gs
        .values()
        .flat_map(|g| g.waiting.iter().copied())
        .collect();
    if waiting.len() != s.gor.sudogs.len() {
        return fail(
            "sudog",
            format!(
                "{} sudogs exist, {} are waited on",
                s.gor.sudogs.len(),
                waiting.len()
            ),
        );
    }
    for (&cid, ch) in &s.gor.chans {
        for sid in &ch.recvq {
            if s.gor.sudogs.get(sid).map(|sg| sg.c) != Some(cid) {
                return fail(
                    "sudog",
                    format!("channel {cid} queues sudog {sid}, which is not its own"),
                );
            }
        }
        if let Some(gid) = ch.locked_by {
            let parking = s.gor.gs.get(&gid).is_some_and(|g| {
                g.status == GStatus::Running || (g.status == GStatus::Waiting && g.parking_on_chan)
            });
            if !parking {
                return fail(
                    "g-park",
                    format!("channel {cid} is locked by g {gid}, which is not parking"),
                );
            }
        }
    }
    Ok(())
}

fn check_heap(s: &State) -> Result<(), Violation> {
    let h = &s.heap;
    if h.mapped_pages > h.arena_pages || h.mapped_pages % crate::heap::GROWTH_PAGES != 0 {
        return fail(
            "heap-growth",
            format!("mapped {} of {} pages", h.mapped_pages, h.arena_pages),
        );
    }
    // Walk pages in address order over free runs and spans together.
    let mut pieces: Vec<(u64, u64, bool)> = h.free.iter().map(|(&p, &n)| (p, n, true)).collect();
    for sp in h.spans.values() {
        if sp.base < h.base || (sp.base - h.base) % PAGE_SIZE != 0 || sp.npages == 0 {
            return fail(
                "heap-tiling",
                format!(
                    "span at {:#x} with {} pages is misplaced",
                    sp.base, sp.npages
                ),
            );
        }
        pieces.push(((sp.base - h.base) / PAGE_SIZE, sp.npages, false));
    }
    pieces.sort();
    let mut next = 0;
    let mut prev_free = false;
    for (start, len, free) in pieces {
        if start != next || len == 0 {
            return fail(
                "heap-tiling",
                format!("page {next} expected next, found a piece at page {start} of {len} pages"),
            );
        }
        if free && prev_free {
            return fail(
                "heap-tiling",
                format!("free runs meet at page {start} without merging"),
            );
        }
        prev_free = free;
        next = start + len;
    }
    if next != h.mapped_pages {
        return fail(
            "heap-tiling",
            format!("pieces end at page {next}, mapped {}", h.mapped_pages),
        );
    }
    let manual: u64 = h
        .spans
        .values()
        .filter(|sp| sp.state == SpanState::Manual)
        .map(|sp| sp.npages * PAGE_SIZE)
        .sum();
    if manual != h.stack_inuse {
        return fail(
            "stack-inuse",
            format!("counter says {}, spans hold {manual}", h.stack_inuse),
        );
    }
    Ok(())
}

/// The order of a pool span, from its element size.
fn pool_order(s: &State, elemsize: u64) -> Option<usize> {
    (0..s.stackpool.len()).find(|&o| s.consts.fixed_stack << o == elemsize)
}

fn is_pool_span(s: &State, sp: &crate::heap::Span) -> bool {
    sp.state == SpanState::Manual && sp.elemsize < s.consts.stack_cache_size
}

fn check_spans(s: &State) -> Result<(), Violation> {
    let pool_pages = s.consts.stack_cache_size / PAGE_SIZE;
    for sp in s.heap.spans.values() {
        let bad = match sp.state {
            SpanState::InUse => sp.elemsize != 0 || sp.alloc_count != 0 || !sp.free_list.is_empty(),
            SpanState::Manual if is_pool_span(s, sp) => {
                sp.npages != pool_pages || pool_order(s, sp.elemsize).is_none()
            }
            SpanState::Manual => {
                sp.elemsize != sp.npages * PAGE_SIZE
                    || sp.alloc_count != 0
                    || !sp.free_list.is_empty()
            }
        };
        if bad {
            return fail(
                "span-shape",
                format!(
                    "span {:#x}: {:?}, {} pages, elemsize {}, allocCount {}, {} free",
                    sp.base,
                    sp.state,
                    sp.npages,
                    sp.elemsize,
                    sp.alloc_count,
                    sp.free_list.len()
                ),
            );
        }
        if is_pool_span(s, sp) {
            let capacity = s.consts.stack_cache_size / sp.elemsize;
            let distinct: BTreeSet<u64> = sp.free_list.iter().copied().collect();
            let slots_ok = sp
                .free_list
                .iter()
                .all(|&x| sp.contains(x) && (x - sp.base) % sp.elemsize == 0);
            if sp.alloc_count + sp.free_list.len() as u64 != capacity
                || distinct.len() != sp.free_list.len()
                || !slots_ok
            {
                return fail(
                    "pool-span-count",
                    format!(
                        "span {:#x}: allocCount {} + {} free, capacity {capacity}",
                        sp.base,
                        sp.alloc_count,
                        sp.free_list.len()
                    ),
                );
            }
        }
    }
    Ok(())
}

fn check_pools(s: &State) -> Result<(), Violation> {
    for (order, list) in s.stackpool.iter().enumerate() {
        let distinct: BTreeSet<u64> = list.iter().copied().collect();
        if distinct.len() != list.len() {
            return fail(
                "pool-list",
                format!("order {order} lists a span twice: {list:x?}"),
            );
        }
        for &base in list {
            let ok = s.heap.spans.get(&base).is_some_and(|sp| {
                is_pool_span(s, sp)
                    && pool_order(s, sp.elemsize) == Some(order)
                    && !sp.free_list.is_empty()
            });
            if !ok {
                return fail(
                    "pool-list",
                    format!(
                        "order {order} lists {base:#x}, not a span of its order with a free stack"
                    ),
                );
            }
        }
    }
    let settled = s.gcphase == GcPhase::Off && !s.spans_pending_free;
    for sp in s.heap.spans.values().filter(|sp| is_pool_span(s, sp)) {
        let order = pool_order(s, sp.elemsize).unwrap_or(0);
        if !sp.free_list.is_empty() && !s.stackpool[order].contains(&sp.base) {
            return fail(
                "pool-list",
                format!(
                    "span {:#x} has a free stack but is not in the order {order} list",
                    sp.base
                ),
            );
        }
        if settled && sp.alloc_count == 0 {
            return fail(
                "pool-empty-spans",
                format!("span {:#x} of order {order} is empty", sp.base),
            );
        }
    }
    Ok(())
}

fn check_large(s: &State) -> Result<(), Violation> {
    let settled = s.gcphase == GcPhase::Off && !s.spans_pending_free;
    let mut seen = BTreeSet::new();
    for (&class, list) in &s.stack_large {
        if list.is_empty() || (settled && !list.is_empty()) {
            return fail(
                "stack-large",
                format!(
                    "class {class} holds {} spans (GC {})",
                    list.len(),
                    s.gcphase.name()
                ),
            );
        }
        for &base in list {
            let ok = s.heap.spans.get(&base).is_some_and(|sp| {
                sp.state == SpanState::Manual
                    && !is_pool_span(s, sp)
                    && stacklog2(sp.npages) == class
            });
            if !ok || !seen.insert(base) || s.in_use.contains_key(&base) {
                return fail(
                    "stack-large",
                    format!(
                        "class {class} holds {base:#x}, not a free large stack span of its class"
                    ),
                );
            }
        }
    }
    Ok(())
}

fn check_caches_and_ownership(s: &State) -> Result<(), Violation> {
    // Where each stack slot is: 'f'ree in its span, 'c'ached, 'u'sed, 'l'arge-free.
    let mut place: BTreeMap<u64, (char, u64)> = BTreeMap::new();
    let mut claim = |addr: u64, what: char, size: u64| -> Result<(), Violation> {
        match place.insert(addr, (what, size)) {
            None => Ok(()),
            Some((other, _)) => fail("ownership", format!("stack {addr:#x} is both '{other}' and '{what}' (f=span free list, c=cache, u=in use, l=stackLarge)")),
        }
    };
    for sp in s.heap.spans.values().filter(|sp| is_pool_span(s, sp)) {
        for &x in &sp.free_list {
            claim(x, 'f', sp.elemsize)?;
        }
    }
    for (&id, p) in &s.ps {
        for (order, c) in p.stackcache.iter().enumerate() {
            let elemsize = s.consts.fixed_stack << order;
            if c.size != c.list.len() as u64 * elemsize || c.size > s.consts.stack_cache_size {
                return fail(
                    "cache",
                    format!(
                        "P {id} order {order}: size {} for {} stacks of {elemsize}",
                        c.size,
                        c.list.len()
                    ),
                );
            }
            for &x in &c.list {
                let ok = s.heap.span_of(x).is_some_and(|sp| {
                    is_pool_span(s, sp) && sp.elemsize == elemsize && (x - sp.base) % elemsize == 0
                });
                if !ok {
                    return fail("cache", format!("P {id} order {order} holds {x:#x}, not a slot of an order {order} span"));
                }
                claim(x, 'c', elemsize)?;
            }
        }
    }
    let sys_region = s.config.arena_base + s.config.arena_bytes;
    for (&lo, &n) in s.in_use.range(..sys_region) {
        claim(lo, 'u', n)?;
    }
    for list in s.stack_large.values() {
        for &base in list {
            let n = s.heap.spans.get(&base).map(|sp| sp.elemsize).unwrap_or(0);
            claim(base, 'l', n)?;
        }
    }
    // Every slot of every stack span is claimed exactly once, and nothing
    // else is.
    let mut expected: BTreeMap<u64, u64> = BTreeMap::new();
    for sp in s
        .heap
        .spans
        .values()
        .filter(|sp| sp.state == SpanState::Manual)
    {
        if is_pool_span(s, sp) {
            let out = place
                .range(sp.base..sp.limit())
                .filter(|(_, (w, _))| *w == 'c' || *w == 'u')
                .count() as u64;
            if out != sp.alloc_count {
                return fail(
                    "ownership",
                    format!(
                        "span {:#x}: allocCount {} but {out} stacks cached or in use",
                        sp.base, sp.alloc_count
                    ),
                );
            }
            for x in (sp.base..sp.limit()).step_by(sp.elemsize as usize) {
                expected.insert(x, sp.elemsize);
            }
        } else {
            expected.insert(sp.base, sp.elemsize);
        }
    }
    for (&addr, &(what, size)) in &place {
        if expected.get(&addr) != Some(&size) {
            return fail(
                "ownership",
                format!("stack {addr:#x} of {size} bytes ('{what}') is not a slot of a stack span"),
            );
        }
    }
    if let Some((&addr, _)) = expected.iter().find(|(a, _)| !place.contains_key(a)) {
        return fail(
            "ownership",
            format!("stack slot {addr:#x} is nowhere (lost)"),
        );
    }
    Ok(())
}

fn check_gc(s: &State) -> Result<(), Violation> {
    if s.spans_pending_free && s.gcphase != GcPhase::Off {
        return fail(
            "gc-pending",
            format!("pending with GC {}", s.gcphase.name()),
        );
    }
    if !s.markers.is_empty() && s.gcphase != GcPhase::Mark {
        return fail(
            "markers",
            format!("{} markers with GC {}", s.markers.len(), s.gcphase.name()),
        );
    }
    for (&id, &addr) in &s.markers {
        if s.heap.span_of(addr).map(|sp| sp.state) != Some(SpanState::Manual) {
            return fail(
                "markers",
                format!("marker {id} holds {addr:#x}, which is no longer in a stack span"),
            );
        }
    }
    Ok(())
}
