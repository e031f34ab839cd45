//! Loom model 3 (docs/ARCHITECTURE.md section 6): a GC worker shrinks a parked
//! goroutine's stack while senders send to it (golang/go#12967, #13169).
//!
//! The goroutine parked in a select on two channels, its sudogs pointing
//! into its stack (`gostack::Sched::park_on_chans`, `activeStackChans`
//! set). One thread scans it and shrinks its stack (`Sched::scan`:
//! suspendG, shrinkstack, copystack with syncadjustsudogs); two others
//! send a heap pointer each, one on each channel (`Sched::send`: win the
//! select with selectDone, sendDirect through the sudog's elem, then
//! goready). Loom runs every interleaving of the status word, the channel
//! locks, the sudogs' elem, the allocator's locks, and the gaps between
//! stack memory accesses that Go leaves unordered.
//!
//! Properties, for every interleaving
//! (`gostack_models::conc::check_shrink_vs_send`):
//! - exactly one send wins the select; the other finds no receiver;
//! - the stack was shrunk once, and the winner's value is in the new stack
//!   at its receive slot: a send through an elem not yet adjusted, or into
//!   the old stack after the copy read it, loses it (and is the only way
//!   the old stack could be written after the copy);
//! - every other frame word (the loser's slot included) is what the spec's
//!   adjustpointers makes of it, and both sudogs point into the new stack
//!   at their slots;
//! - the goroutine is runnable; the allocator's end state equals the
//!   spec's replay of the copy, whose invariants hold.
//!
//! Mutant: `sudogs_adjusted_unlocked` (copystack adjusts the sudogs and
//! copies without the channel locks). Run: `RUSTFLAGS="--cfg loom" cargo
//! test --release -p gostack-models --test loom_chan -- --nocapture`
//! (ci/loom.sh); `LOOM_MAX_PREEMPTIONS` sets the bound (default 3).
#![cfg(loom)]

mod common;

use gostack_models::conc::{cases, check_shrink_vs_send, config, setup, value};
use loom::sync::Arc;

fn model() {
    let config = config();
    let (sched, gor) = setup(&config, 8192);
    sched.park_on_chans(gor.g, &cases(&gor)).unwrap();
    let sched = Arc::new(sched);
    let g = gor.g;

    let shrinker = {
        let sched = sched.clone();
        loom::thread::spawn(move || loop {
            if let Some(r) = sched.scan(g).unwrap() {
                return r;
            }
            loom::thread::yield_now();
        })
    };
    let senders: Vec<_> = (0..2)
        .map(|i| {
            let (sched, c) = (sched.clone(), gor.chans[i]);
            loom::thread::spawn(move || sched.send(c, &[value(i)]))
        })
        .collect();
    let report = shrinker.join().unwrap();
    let mut sent = senders.into_iter().map(|h| h.join().unwrap());
    let sent = [sent.next().unwrap(), sent.next().unwrap()];
    check_shrink_vs_send(&config, &sched, &gor, &report, &sent);
}

#[test]
fn shrink_against_a_channel_send() {
    common::explore("loom_chan", model);
}
