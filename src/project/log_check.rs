//! The in-memory log's waiting, model-checked: `memory_log.rs` compiled again against
//! shuttle's primitives, with producers appending one by one and in batches and a reader
//! polling without a deadline. Shuttle fails on a deadlock (a poll never woken by an
//! append) or a broken assertion. `VIEWSTORE_MODEL_ITERATIONS` sets the schedules per
//! scheduler (default 5,000).

mod sync {
    pub(crate) use shuttle::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
}

#[allow(
    dead_code,
    unreachable_pub,
    clippy::duplicate_mod,
    reason = "the same file, compiled again against the model's primitives"
)]
#[path = "memory_log.rs"]
mod memory_log;

use crate::project::source::Source;
use memory_log::MemoryLog;
use std::time::Duration;

fn scenario() {
    let log: MemoryLog<u32> = MemoryLog::new(2);
    let mut source = log.source("model");
    let producers: Vec<_> = (0..2u32)
        .map(|p| {
            let log = log.clone();
            shuttle::thread::spawn(move || {
                if p == 0 {
                    for i in 0..3 {
                        log.append(0, i).expect("append");
                    }
                } else {
                    log.append_all(1, [10, 11]).expect("append");
                }
            })
        })
        .collect();
    let mut got: Vec<(u32, u64, u32)> = Vec::new();
    while got.len() < 5 {
        // No deadline: only an append can end the wait.
        let events = source.poll(2, Duration::MAX).expect("poll");
        assert!(!events.is_empty() && events.len() <= 2);
        got.extend(events.into_iter().map(|e| (e.partition, e.position, e.payload)));
    }
    for producer in producers {
        producer.join().expect("producer");
    }
    got.sort_unstable();
    assert_eq!(got, [(0, 0, 0), (0, 1, 1), (0, 2, 2), (1, 0, 10), (1, 1, 11)]);
}

#[test]
fn a_poll_is_woken_by_every_kind_of_append() {
    let n = std::env::var("VIEWSTORE_MODEL_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000);
    shuttle::check_random(scenario, n);
    shuttle::check_pct(scenario, n, 3);
    eprintln!("model check 'memory log': {} schedules", n * 2);
}
