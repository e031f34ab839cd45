//! M stacks: an M's g0 and gsignal stacks come from the stack allocator
//! (linux), as `State::create_m` and `State::exit_m` specify.

use crate::runtime::Runtime;
use crate::sim::Step;
use gostack_spec::goroutine::{m_stack_sizes, MStacks};
use gostack_spec::{Ctx, Misuse, Throw};

impl Runtime {
    /// `allocm` on the M of `ctx` (as `State::create_m`): frees the g0
    /// stacks of exited Ms, last exited first, then takes the gsignal and
    /// g0 stacks; returns the new M's id. Planned before anything changes,
    /// so a refusal changes nothing.
    pub fn create_m(&mut self, ctx: Ctx) -> Result<u32, Throw> {
        self.require_world_running()?;
        let (gsignal, g0) = m_stack_sizes(self.config.profile)?;
        let mut steps: Vec<Step> = self
            .freem
            .iter()
            .rev()
            .map(|&(_, stk)| self.known(stk, true))
            .collect();
        steps.extend([Step::Alloc(gsignal), Step::Alloc(g0)]);
        self.predict(ctx, &steps)?;
        for (_, stk) in std::mem::take(&mut self.freem).into_iter().rev() {
            self.gfree(ctx, stk)?;
        }
        let gsignal = self.galloc(ctx, gsignal)?;
        let g0 = self.galloc(ctx, g0)?;
        let id = self.next_m;
        self.next_m += 1;
        self.ms.insert(id, MStacks { g0, gsignal });
        Ok(id)
    }

    /// `mexit` of M `m` (as `State::exit_m`): its gsignal stack is freed
    /// on the P of `ctx`, its g0 stack waits on `sched.freem`.
    pub fn exit_m(&mut self, ctx: Ctx, m: u32) -> Result<(), Throw> {
        self.require_world_running()?;
        let ms = *self.ms.get(&m).ok_or(Throw::Misuse(Misuse::NoSuchM(m)))?;
        self.gfree(ctx, ms.gsignal)?;
        self.ms.remove(&m);
        self.freem.push((m, ms.g0));
        Ok(())
    }
}
