//! The projector's throughput against the same events written by hand: group
//! `projector`, so that the ratio comes from one run.
//!
//! - `projector_one_event_batches`: events appended to a `MemoryLog` of 4 partitions, a
//!   producer's batch of 2,500 per partition, and applied by a running `Projector`, each
//!   event its own batch carrying its position (chained per partition), many in flight.
//!   Timed from the first append until the projector has committed every event.
//! - `pipelined_1000`: the same puts submitted by hand in batches of 1,000, all queued
//!   before the first wait, with no position.
//!
//! Every event puts a row of about 40 bytes at a random key of a 100,000-record view at
//! a new version, with `Durability::Immediate`. Throughput is counted in events.

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use std::path::Path;
use std::time::{Duration, Instant};
use viewstore::testing::Rng;
use viewstore::{Batch, Durability, MemoryLog, Projector, Store, View, ViewDef};

/// Records in the view before measuring.
const RECORDS: u64 = 100_000;
/// Events per iteration.
const EVENTS: u64 = 10_000;
/// Puts per hand-written batch in `pipelined_1000`.
const PER_BATCH: u64 = 1_000;
const PARTITIONS: u32 = 4;

#[path = "support/row.rs"]
mod row;
use row::Row;

const ROWS: ViewDef<u64, Row> = ViewDef::new("rows");

fn populated_store(path: &Path) -> (Store, View<u64, Row>) {
    let store = Store::builder(path).durability(Durability::Immediate).open().expect("open store");
    let rows = store.view(&ROWS).expect("open view");
    for chunk in 0..RECORDS / 10_000 {
        let mut batch = Batch::new();
        for id in chunk * 10_000..(chunk + 1) * 10_000 {
            batch.put(&rows, &id, Row::new(id, id), id + 1).expect("valid put");
        }
        store.submit(batch).expect("submit").wait().expect("commit");
    }
    (store, rows)
}

/// An event: put `Row::new(key, version)` at `version`.
#[derive(Debug, Clone, Copy)]
struct Put {
    key: u64,
    version: u64,
}

fn projector(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let (store, rows) = populated_store(&dir.path().join("viewstore.redb"));
    let mut rng = Rng::new(7);
    let mut next_version = RECORDS + 1;

    let mut group = c.benchmark_group("projector");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(EVENTS));

    let log = MemoryLog::new(PARTITIONS);
    let target = rows.clone();
    let running = Projector::new(&store, log.source("puts"), move |event, batch: &mut Batch| {
        let Put { key, version } = event.payload;
        batch.put(&target, &key, Row::new(key, version), version)?;
        Ok(())
    })
    .spawn()
    .expect("spawn the projector");
    let mut appended = 0u64;
    group.bench_function("projector_one_event_batches", |b| {
        b.iter_custom(|iters| {
            let began = Instant::now();
            for _ in 0..iters {
                // A producer's batch per partition, as a log client would send them.
                for partition in 0..PARTITIONS {
                    let puts: Vec<Put> = (0..EVENTS / u64::from(PARTITIONS))
                        .map(|_| {
                            next_version += 1;
                            Put { key: rng.below(RECORDS), version: next_version }
                        })
                        .collect();
                    log.append_all(partition, puts).expect("append");
                }
                appended += EVENTS;
                let done = running.wait_until(Duration::from_secs(600), |s| s.events == appended);
                assert!(done, "the projector fell behind or stopped");
            }
            began.elapsed()
        });
    });
    let stats = running.stop().expect("the projector ran without failure");
    assert_eq!((stats.events, stats.dead_letters), (appended, 0));

    group.bench_function("pipelined_1000", |b| {
        b.iter_custom(|iters| {
            let began = Instant::now();
            for _ in 0..iters {
                let mut tickets = Vec::with_capacity((EVENTS / PER_BATCH) as usize);
                for _ in 0..EVENTS / PER_BATCH {
                    let mut batch = Batch::new();
                    for _ in 0..PER_BATCH {
                        let (key, version) = (rng.below(RECORDS), next_version);
                        next_version += 1;
                        batch.put(&rows, &key, Row::new(key, version), version).expect("put");
                    }
                    tickets.push(store.submit(batch).expect("submit"));
                }
                for ticket in tickets {
                    ticket.wait().expect("commit");
                }
            }
            began.elapsed()
        });
    });
    group.finish();
    assert_eq!(rows.len() as u64, RECORDS);
    store.close().expect("close");
}

criterion_group!(benches, projector);
criterion_main!(benches);
