//! The LSN watch, model-checked: `lsn_watch.rs` compiled again against shuttle's
//! primitives and driven by a publisher that advances the LSN and then ends (as the
//! writer thread does when it stops), threads blocked in `wait`, futures awaited with
//! shuttle's `block_on` (which sleeps until its waker is woken, so a lost wake-up is a
//! deadlock that shuttle reports), futures polled once and dropped, and a future polled
//! on one thread and finished on another.
//!
//! What every schedule must show: no deadlock; a wait for an LSN at or below the last
//! published one resolves with at least that LSN; a wait for a later one resolves with
//! `Ended` at the last LSN; no cancelled or finished future leaves a waker behind.
//!
//! `VIEWSTORE_MODEL_ITERATIONS` sets the schedules per scheduler and scenario
//! (default 5,000).

mod sync {
    pub(crate) use shuttle::sync::{Condvar, Mutex, MutexGuard, PoisonError};
}

#[allow(
    dead_code,
    unreachable_pub,
    clippy::duplicate_mod,
    reason = "the same file, compiled again against the model's primitives; the model uses a part of it"
)]
#[path = "lsn_watch.rs"]
mod lsn_watch;

use crate::base::version::Lsn;
use crate::mem::notify::Place;
use lsn_watch::{Ended, LsnReached, LsnWatch};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// The LSN the model's publisher stops at.
const LAST: u64 = 3;

fn lsn(n: u64) -> Lsn {
    Lsn::new(n)
}

/// Publishes 1 to `LAST`, then ends, as the writer thread does.
fn publisher(watch: &Arc<LsnWatch>) -> shuttle::thread::JoinHandle<()> {
    let watch = Arc::clone(watch);
    shuttle::thread::spawn(move || {
        for n in 1..=LAST {
            watch.advance(lsn(n));
        }
        watch.end();
    })
}

fn expect(target: u64, outcome: Result<Lsn, Ended>) {
    match outcome {
        Ok(reached) => {
            assert!(target <= LAST, "waited for {target}, past the last LSN, and got {reached:?}");
            assert!(reached >= lsn(target), "waited for {target}, woken at {reached:?}");
        }
        Err(Ended(last)) => {
            assert!(target > LAST, "waited for {target} and the watch ended at {last:?}");
            assert_eq!(last, lsn(LAST), "ended before the last publish");
        }
    }
}

/// Futures and blocked threads waiting for every target around the publisher's range,
/// each registering while the publisher advances: no wake-up lost, none early.
fn waiters_against_publish() {
    let watch = Arc::new(LsnWatch::new(lsn(0)));
    let mut threads = Vec::new();
    for target in [1, LAST, LAST + 1] {
        let watch = Arc::clone(&watch);
        threads.push(shuttle::thread::spawn(move || {
            expect(target, shuttle::future::block_on(LsnReached::new(watch, lsn(target))));
        }));
    }
    for target in [2, LAST + 1] {
        let watch = Arc::clone(&watch);
        threads.push(shuttle::thread::spawn(move || {
            let outcome = watch.wait(lsn(target), None).map(|r| r.unwrap_or(lsn(0)));
            expect(target, outcome);
        }));
    }
    let publishing = publisher(&watch);
    for t in threads {
        t.join().expect("waiter");
    }
    publishing.join().expect("publisher");
    assert_eq!(watch.waiting(), 0, "a finished wait left its waker behind");
}

/// A future polled once and dropped beside one that waits: the dropped one takes its
/// waker out, the other is still woken.
fn cancelled_beside_a_waiter() {
    let watch = Arc::new(LsnWatch::new(lsn(0)));
    let cancelled = {
        let watch = Arc::clone(&watch);
        shuttle::thread::spawn(move || {
            let mut future = LsnReached::new(watch, lsn(2));
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(outcome) = Pin::new(&mut future).poll(&mut cx) {
                expect(2, outcome);
            }
            drop(future);
        })
    };
    let waiting = {
        let watch = Arc::clone(&watch);
        shuttle::thread::spawn(move || {
            expect(2, shuttle::future::block_on(LsnReached::new(watch, lsn(2))));
        })
    };
    let publishing = publisher(&watch);
    cancelled.join().expect("cancelled");
    waiting.join().expect("waiting");
    publishing.join().expect("publisher");
    assert_eq!(watch.waiting(), 0, "a cancelled wait left its waker behind");
}

/// A future polled on one thread with a waker that is never woken into anything, then
/// handed to another thread that awaits it: the second poll's waker replaces the first,
/// and is the one woken.
fn moved_between_tasks() {
    let watch = Arc::new(LsnWatch::new(lsn(0)));
    let publishing = publisher(&watch);
    let first = {
        let watch = Arc::clone(&watch);
        shuttle::thread::spawn(move || {
            let mut future = LsnReached::new(watch, lsn(LAST));
            let mut cx = Context::from_waker(Waker::noop());
            let first = Pin::new(&mut future).poll(&mut cx);
            (future, first.is_ready())
        })
    };
    let (future, done) = first.join().expect("first poll");
    let second = shuttle::thread::spawn(move || {
        if !done {
            expect(LAST, shuttle::future::block_on(future));
        }
    });
    second.join().expect("second poll");
    publishing.join().expect("publisher");
    assert_eq!(watch.waiting(), 0);
}

/// The place API a stream would use: one place, waiting for each next LSN in turn.
fn a_stream_of_lsns() {
    let watch = Arc::new(LsnWatch::new(lsn(0)));
    let publishing = publisher(&watch);
    let follower = {
        let watch = Arc::clone(&watch);
        shuttle::thread::spawn(move || {
            let mut seen = lsn(0);
            let mut place = Place::default();
            let next = std::future::poll_fn(move |cx| {
                watch.poll_reached(lsn(seen.get() + 1), &mut place, cx).map(|r| {
                    if let Ok(at) = r {
                        seen = at;
                    }
                    r
                })
            });
            let mut next = std::pin::pin!(next);
            let mut last = lsn(0);
            loop {
                match shuttle::future::block_on(next.as_mut()) {
                    Ok(at) => {
                        assert!(at > last, "the LSN went from {last:?} to {at:?}");
                        last = at;
                    }
                    Err(Ended(at)) => {
                        assert_eq!(at, lsn(LAST));
                        return;
                    }
                }
            }
        })
    };
    follower.join().expect("follower");
    publishing.join().expect("publisher");
    assert_eq!(watch.waiting(), 0);
}

fn iterations() -> usize {
    std::env::var("VIEWSTORE_MODEL_ITERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(5_000)
}

fn explore(name: &str, scenario: fn()) {
    let n = iterations();
    shuttle::check_random(scenario, n);
    shuttle::check_pct(scenario, n, 3);
    eprintln!("model check '{name}': {} schedules", n * 2);
}

#[test]
fn lsn_waiters_are_woken_by_publish_and_end() {
    explore("LSN waiters against publish", waiters_against_publish);
}

#[test]
fn a_cancelled_lsn_wait_leaves_nothing_and_steals_nothing() {
    explore("LSN wait cancelled", cancelled_beside_a_waiter);
}

#[test]
fn an_lsn_wait_moved_between_tasks_wakes_the_last_poller() {
    explore("LSN wait moved between tasks", moved_between_tasks);
}

#[test]
fn a_follower_sees_each_lsn_then_the_end() {
    explore("LSN follower", a_stream_of_lsns);
}
