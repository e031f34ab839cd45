//! The three goroutine-level loom models (loom_chan, loom_park,
//! loom_grow) on real threads: each scenario many times, its threads
//! released together by a barrier, each run judged by the same
//! `gostack_models::conc::check_*` functions against the spec. Loom proves
//! the protocol over every interleaving of a small model; this runs the
//! same code at full speed on the machine's memory model (and under
//! ci/asan.sh, with AddressSanitizer). `GOSTACK_CONC_RUNS` sets the runs
//! per scenario (default 300).
#![cfg(not(loom))]

use gostack_models::conc::{
    cases, check_growth_vs_scan, check_shrink_vs_parking, check_shrink_vs_send, config, setup,
    value,
};
use std::sync::{Arc, Barrier};
use std::thread;

fn runs() -> usize {
    std::env::var("GOSTACK_CONC_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// Retries `Sched::scan` until it has scanned `g`.
fn scan_until_done(sched: &gostack::Sched, g: u32) -> gostack::conc::ScanReport {
    loop {
        match sched.scan(g) {
            Ok(Some(r)) => return r,
            Ok(None) => thread::yield_now(),
            Err(e) => panic!("scanning goroutine {g}: {e}"),
        }
    }
}

#[test]
fn shrink_against_channel_sends() {
    let config = config();
    for _ in 0..runs() {
        let (sched, gor) = setup(&config, 8192);
        sched.park_on_chans(gor.g, &cases(&gor)).unwrap();
        let sched = Arc::new(sched);
        let go = Arc::new(Barrier::new(3));
        let shrinker = {
            let (sched, go, g) = (sched.clone(), go.clone(), gor.g);
            thread::spawn(move || {
                go.wait();
                scan_until_done(&sched, g)
            })
        };
        let senders: Vec<_> = (0..2)
            .map(|i| {
                let (sched, go, c) = (sched.clone(), go.clone(), gor.chans[i]);
                thread::spawn(move || {
                    go.wait();
                    sched.send(c, &[value(i)])
                })
            })
            .collect();
        let report = shrinker.join().unwrap();
        let mut sent = senders.into_iter().map(|h| h.join().unwrap());
        let sent = [sent.next().unwrap(), sent.next().unwrap()];
        check_shrink_vs_send(&config, &sched, &gor, &report, &sent);
    }
}

#[test]
fn shrink_against_parking() {
    let config = config();
    for _ in 0..runs() {
        let (sched, gor) = setup(&config, 8192);
        let sched = Arc::new(sched);
        let go = Arc::new(Barrier::new(2));
        let parker = {
            let (sched, go, g, cases) = (sched.clone(), go.clone(), gor.g, cases(&gor));
            thread::spawn(move || {
                go.wait();
                sched.park_on_chans(g, &cases).unwrap()
            })
        };
        let worker = {
            let (sched, go, g) = (sched.clone(), go.clone(), gor.g);
            thread::spawn(move || {
                go.wait();
                scan_until_done(&sched, g)
            })
        };
        parker.join().unwrap();
        let report = worker.join().unwrap();
        check_shrink_vs_parking(&config, &sched, &gor, &report);
    }
}

#[test]
fn growth_against_a_concurrent_scan() {
    let config = config();
    for _ in 0..runs() {
        let (sched, gor) = setup(&config, 2048);
        let sched = Arc::new(sched);
        let go = Arc::new(Barrier::new(2));
        let goroutine = {
            let (sched, go, g) = (sched.clone(), go.clone(), gor.g);
            thread::spawn(move || {
                go.wait();
                let grown = sched.grow(g).unwrap();
                sched.park(g).unwrap();
                grown
            })
        };
        let worker = {
            let (sched, go, g) = (sched.clone(), go.clone(), gor.g);
            thread::spawn(move || {
                go.wait();
                scan_until_done(&sched, g)
            })
        };
        let grown = goroutine.join().unwrap();
        let report = worker.join().unwrap();
        check_growth_vs_scan(&config, &sched, &gor, grown, &report);
    }
}
