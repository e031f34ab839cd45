//! A deliberately simple stack allocator of a different design from Go's,
//! to show how a third party checks an allocator with
//! `gostack_models::alloc`: segregated free lists, one per power-of-two
//! size, over address space handed out by a bump pointer. It never returns
//! memory and has no per-P caches and no GC-deferred freeing: none of that
//! is required of a stack allocator, so it passes the behavioural check.
//!
//! It can carry one of two seeded bugs ([`Bug`]), classics both: a free
//! validated only by "is this an aligned range of memory I handed out?"
//! instead of "is this a live stack?" (a double free, or a free of part of
//! a live stack, is accepted and the range later handed out twice), and a
//! free that forgets the stack instead of listing it (memory leaks).

use gostack_models::alloc::StackAllocator;
use gostack_spec::stack::check_stack_size;
use gostack_spec::{Config, Ctx, GoThrow, Misuse, Stack, Throw};
use std::collections::{BTreeMap, BTreeSet};

/// A seeded bug.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[allow(dead_code)] // each user of the module seeds only some of them
pub enum Bug {
    /// None: the allocator is correct.
    None,
    /// A free accepts any aligned range it once handed out.
    AcceptsBadFrees,
    /// A free of a 2 KiB-class stack forgets it instead of listing it.
    Leaks,
}

/// The allocator.
pub struct SegList {
    /// The smallest stack (Go's fixedStack for the profile).
    fixed: u64,
    /// Where fresh address space starts, and the next unused address.
    base: u64,
    next: u64,
    /// Free stacks by size.
    free: BTreeMap<u64, Vec<u64>>,
    /// Live stacks: address to size.
    live: BTreeMap<u64, u64>,
    /// Ps by id (they hold nothing here).
    ps: BTreeSet<u32>,
    next_p: u32,
    bug: Bug,
}

impl SegList {
    /// An allocator for `config`'s profile, with `bug` seeded.
    pub fn new(config: &Config, bug: Bug) -> SegList {
        SegList {
            fixed: config.profile.consts().fixed_stack,
            base: config.arena_base,
            next: config.arena_base,
            free: BTreeMap::new(),
            live: BTreeMap::new(),
            ps: BTreeSet::new(),
            next_p: 0,
            bug,
        }
    }

    fn check_p(&self, ctx: Ctx) -> Result<(), Throw> {
        match ctx.p {
            Some(p) if !self.ps.contains(&p) => Err(Misuse::NoSuchP(p).into()),
            _ => Ok(()),
        }
    }
}

impl StackAllocator for SegList {
    fn stackalloc(&mut self, ctx: Ctx, n: u64) -> Result<Stack, Throw> {
        // The size rules every Go stack allocator shares.
        check_stack_size(n, self.fixed)?;
        self.check_p(ctx)?;
        let lo = match self.free.get_mut(&n).and_then(Vec::pop) {
            Some(lo) => lo,
            None => {
                let lo = self.next;
                self.next += n;
                lo
            }
        };
        self.live.insert(lo, n);
        Ok(Stack { lo, hi: lo + n })
    }

    fn stackfree(&mut self, ctx: Ctx, stk: Stack) -> Result<(), Throw> {
        let n = stk.hi.wrapping_sub(stk.lo);
        if n & n.wrapping_sub(1) != 0 {
            return Err(GoThrow::StackNotPowerOf2.into());
        }
        self.check_p(ctx)?;
        let live = self.live.get(&stk.lo) == Some(&n);
        let known = self.bug == Bug::AcceptsBadFrees
            && stk.lo >= self.base
            && stk.hi <= self.next
            && stk.lo % n == 0;
        if !live && !known {
            return Err(Misuse::NotAStack {
                lo: stk.lo,
                hi: stk.hi,
            }
            .into());
        }
        self.live.remove(&stk.lo);
        if !(self.bug == Bug::Leaks && n == self.fixed) {
            self.free.entry(n).or_default().push(stk.lo);
        }
        Ok(())
    }

    fn create_p(&mut self) -> Result<u32, Throw> {
        let p = self.next_p;
        self.next_p += 1;
        self.ps.insert(p);
        Ok(p)
    }

    fn destroy_p(&mut self, p: u32) -> Result<(), Throw> {
        if self.ps.remove(&p) {
            Ok(())
        } else {
            Err(Misuse::NoSuchP(p).into())
        }
    }

    fn flush_cache(&mut self, p: u32) -> Result<(), Throw> {
        self.check_p(Ctx::on(p))
    }

    fn gc_start(&mut self) -> Result<(), Throw> {
        Ok(())
    }

    fn gc_mark_termination(&mut self) -> Result<(), Throw> {
        Ok(())
    }

    fn gc_off(&mut self) -> Result<(), Throw> {
        Ok(())
    }

    fn free_stack_spans(&mut self) -> Result<(), Throw> {
        Ok(())
    }

    fn stack_inuse(&self) -> u64 {
        self.next - self.base
    }
}
