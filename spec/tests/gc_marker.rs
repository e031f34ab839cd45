//! The scenario of Go's comment in `stackpoolfree` (runtime/stack.go) and
//! golang/go#11267: a GC marker reads a pointer into a stack (a
//! `sudog.elem`, say), the stack is copied and freed, and the marker marks
//! the pointer later. Freeing must not return the stack's span to the heap
//! while the GC runs, or the marker finds a free (or reused) span.
//!
//! These tests fail if `stackpoolfree`, `stackfree` (large path),
//! `stackcache_clear` or `freeStackSpans` let a stack span go during GC.

use gostack_spec::{check_invariants, Config, Ctx, Profile, Stack, State};

const K: u64 = 1024;

fn linux() -> State {
    let mut c = Config::new(Profile::parse("linux", "amd64", false, "1.23").unwrap());
    c.arena_bytes = 8 << 20;
    State::new(c).unwrap()
}

fn step<T>(s: &State, r: Result<T, gostack_spec::Throw>) -> T {
    let v = r.unwrap_or_else(|e| panic!("{e}"));
    if let Err(v) = check_invariants(s) {
        panic!("{v}");
    }
    v
}

/// "Copy" a stack: allocate the new one, free the old one (as copystack
/// does), then let the program take every free page of the heap, so that a
/// span returned to the heap would be reused at once.
fn copy_then_churn(s: &mut State, ctx: Ctx, old: Stack) -> Stack {
    let new = s.stackalloc(ctx, 2 * (old.hi - old.lo));
    let new = step(s, new);
    let r = s.stackfree(ctx, old);
    step(s, r);
    take_every_page(s);
    new
}

/// Lets the program take every page the heap can still give. Running out
/// is Go's fatal "out of memory", so each page is tried on a copy.
fn take_every_page(s: &mut State) {
    loop {
        let mut t = s.clone();
        if t.heap_alloc(1).is_err() {
            return;
        }
        *s = t;
    }
}

fn scenario(size: u64, ctx_of: impl Fn(&mut State) -> Ctx) {
    let mut s = linux();
    let ctx = ctx_of(&mut s);
    let stk = s.stackalloc(ctx, size);
    let stk = step(&s, stk);
    let r = s.gc_start();
    step(&s, r);
    // The marker reads sudog.elem, which points into the stack.
    let id = s.gc_mark_read(stk.lo + 64);
    let id = step(&s, id);
    let _new = copy_then_churn(&mut s, ctx, stk);
    // If the goroutine ran on a P, the old stack sits in its cache; a
    // flush during GC moves it to the pool. (A P destroyed would too, but
    // GOMAXPROCS waits for the GC cycle to end.)
    if let Some(p) = ctx.p {
        let r = s.flush_cache(p);
        step(&s, r);
        take_every_page(&mut s);
    }
    let span = s
        .heap
        .span_of(stk.lo)
        .expect("the old stack's span is still a span");
    assert_eq!(span.state, gostack_spec::heap::SpanState::Manual);
    let r = s.gc_mark(id);
    step(&s, r);
    let r = s.gc_end();
    step(&s, r);
}

#[test]
fn pool_stack_freed_without_p_stays_a_stack_span() {
    scenario(2 * K, |_| Ctx::no_p());
}

#[test]
fn pool_stack_freed_to_a_cache_then_flushed_stays_a_stack_span() {
    scenario(8 * K, |s| Ctx::on(s.create_p().unwrap()));
}

#[test]
fn large_stack_freed_during_gc_stays_a_stack_span() {
    scenario(64 * K, |_| Ctx::no_p());
}

/// Mark termination drains the markers (no mark work is left when it
/// starts), so a pointer still held is checked then.
#[test]
fn mark_termination_marks_what_is_left() {
    let mut s = linux();
    let stk = s.stackalloc(Ctx::no_p(), 128 * K).unwrap();
    s.gc_start().unwrap();
    s.gc_mark_read(stk.hi - 8).unwrap();
    copy_then_churn(&mut s, Ctx::no_p(), stk);
    s.gc_mark_termination().unwrap();
    assert!(s.markers.is_empty());
    s.gc_off().unwrap();
    s.free_stack_spans().unwrap();
    check_invariants(&s).unwrap();
    // After the cycle the span is returned and its pages are reusable.
    assert!(s.heap.span_of(stk.lo).is_none());
}
