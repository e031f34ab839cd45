//! M stacks: an M's g0 and gsignal stacks come from the stack allocator
//! (linux), as `State::create_m` and `State::exit_m` specify.

use crate::runtime::Runtime;
use gostack_spec::goroutine::{m_stack_sizes, MStacks};
use gostack_spec::{Ctx, Misuse, Throw};

impl Runtime {
    /// `allocm` on the M of `ctx` (as `State::create_m`): frees the g0
    /// stacks of exited Ms, last exited first, then takes the gsignal and
    /// g0 stacks; returns the new M's id. Out of memory is fatal, as
    /// in Go.
    pub fn create_m(&mut self, ctx: Ctx) -> Result<u32, Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            let (gsignal, g0) = m_stack_sizes(s.config.profile)?;
            // Refused before anything changes: the P the frees and
            // allocations below would use (their sizes are valid).
            if let Some(p) = ctx.p {
                s.p_exists(p)?;
            }
            for (_, stk) in std::mem::take(&mut s.freem).into_iter().rev() {
                s.gfree(ctx, stk)?;
            }
            let gsignal = s.galloc(ctx, gsignal)?;
            let g0 = s.galloc(ctx, g0)?;
            let id = s.next_m;
            s.next_m += 1;
            s.ms.insert(id, MStacks { g0, gsignal });
            Ok(id)
        })
    }

    /// `mexit` of M `m` (as `State::exit_m`): its gsignal stack is freed
    /// on the P of `ctx`, its g0 stack waits on `sched.freem`.
    pub fn exit_m(&mut self, ctx: Ctx, m: u32) -> Result<(), Throw> {
        self.fatal(|s| {
            s.require_world_running()?;
            let ms = *s.ms.get(&m).ok_or(Throw::Misuse(Misuse::NoSuchM(m)))?;
            s.gfree(ctx, ms.gsignal)?;
            s.ms.remove(&m);
            s.freem.push((m, ms.g0));
            Ok(())
        })
    }
}
