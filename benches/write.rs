//! Durable write throughput: viewstore's group commit against raw redb and fjall, in one
//! group so that the ratios come from one run.
//!
//! Every benchmark writes random `u64` keys over a 100,000-record table, with
//! `Durability::Immediate` (an fsync before each acknowledgement or commit returns),
//! except in the journal and fjall benchmarks below.
//! Throughput is counted in writes. `viewstore_pipelined_feed_keys` and
//! `viewstore_pipelined_feed_values` write to views recorded in the change feed (keys
//! and versions, or values too), `viewstore_pipelined` to one that is not;
//! `feed_follow_values` also has a reader take every change from the feed as it comes.
//! `viewstore_journal_pipelined` and `viewstore_journal_64_writers` run the workloads of
//! `viewstore_pipelined` and `viewstore_64_writers` on a store in `Durability::Journal`
//! (an append and an fdatasync of the journal before each acknowledgement).
//! `put_batch_50000` and `delete_batch_50000` put, or delete, 50,000 existing records
//! in one batch, over their own view.
//!
//! `fjall_batch_1000` is the workload of `redb_1000_per_txn` (the same keys, in the
//! same little-endian encoding, and the same values) on fjall, an LSM-tree store: the
//! 100,000 records in one keyspace, then write batches of 1,000 inserts, each committed
//! with `PersistMode::SyncData` (an fdatasync of fjall's journal before the commit
//! returns and the next batch begins).

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableDefinition};
use std::path::Path;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use viewstore::testing::Rng;
use viewstore::{Batch, Durability, FeedMode, Lsn, Store, View, ViewDef};

/// Records in each table before measuring.
const RECORDS: u64 = 100_000;
/// Concurrent writers in `viewstore_64_writers`.
const WRITERS: u64 = 64;
/// One-op batches per iteration of `viewstore_pipelined`.
const PIPELINED: u64 = 10_000;
/// Commits per iteration of `redb_commit_per_write` (each costs an fsync).
const COMMITS: u64 = 50;
/// Inserts per commit in `redb_1000_per_txn`.
const PER_TXN: u64 = 1_000;
/// Operations of the one batch of `put_batch_50000` and `delete_batch_50000`.
const LARGE_BATCH: u64 = 50_000;

#[path = "support/row.rs"]
mod row;
use row::Row;
#[path = "support/fjall_rows.rs"]
mod fjall_rows;
use fjall_rows::FjallRows;

const ROWS: ViewDef<u64, Row> = ViewDef::new("rows");
/// The same rows, recorded in the change feed by key and version only.
const ROWS_FEED_KEYS: ViewDef<u64, Row> = ViewDef::new("rows_feed_keys").with_feed(FeedMode::Keys);
/// The same rows, recorded in the change feed with their values.
const ROWS_FEED_VALUES: ViewDef<u64, Row> =
    ViewDef::new("rows_feed_values").with_feed(FeedMode::Values);
/// The rows that the large batches overwrite and delete.
const ROWS_LARGE: ViewDef<u64, Row> = ViewDef::new("rows_large");
const REDB_ROWS: TableDefinition<u64, &[u8]> = TableDefinition::new("rows");

/// Random keys over the view.
fn random_key(rng: &mut Rng) -> u64 {
    rng.below(RECORDS)
}

fn encode(row: &Row) -> Vec<u8> {
    bincode::serde::encode_to_vec(row, bincode::config::standard()).expect("encodable row")
}

/// A store with `RECORDS` rows at versions `1..=RECORDS`; the next version to write.
/// The store, its three views, the next version, and the LSN before the
/// `rows_feed_values` view was filled (its 100,000 changes follow it in the feed).
fn populated_store(dir: &Path) -> (Store, [View<u64, Row>; 3], AtomicU64, Lsn) {
    populated_in(dir, "viewstore.redb", Durability::Immediate)
}

/// `populated_store` in the file `name`, with `durability`.
fn populated_in(
    dir: &Path,
    name: &str,
    durability: Durability,
) -> (Store, [View<u64, Row>; 3], AtomicU64, Lsn) {
    let store = Store::builder(dir.join(name)).durability(durability).open().expect("open store");
    let views = [ROWS, ROWS_FEED_KEYS, ROWS_FEED_VALUES].map(|def| store.view(&def).expect("view"));
    let mut values_from = store.lsn();
    for rows in &views {
        values_from = store.lsn();
        for chunk in 0..RECORDS / 10_000 {
            let mut batch = Batch::new();
            for id in chunk * 10_000..(chunk + 1) * 10_000 {
                batch.put(rows, &id, Row::new(id, id), id + 1).expect("valid put");
            }
            store.submit(batch).expect("submit").wait().expect("commit");
        }
    }
    (store, views, AtomicU64::new(RECORDS + 1), values_from)
}

fn populated_redb(dir: &Path) -> Database {
    let db = Database::create(dir.join("raw.redb")).expect("create redb");
    let txn = db.begin_write().expect("begin");
    {
        let mut table = txn.open_table(REDB_ROWS).expect("table");
        for id in 0..RECORDS {
            table.insert(id, encode(&Row::new(id, id)).as_slice()).expect("insert");
        }
    }
    txn.commit().expect("commit");
    db
}

/// What every benchmark of the group writes to.
struct Fixture {
    store: Store,
    rows: View<u64, Row>,
    rows_feed_keys: View<u64, Row>,
    rows_feed_values: View<u64, Row>,
    next_version: AtomicU64,
    db: Database,
    /// The redb table's records in fjall.
    fjall: FjallRows,
    /// A store like `store`, in journal durability, and its `rows`.
    journal: Store,
    journal_rows: View<u64, Row>,
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// 64 threads, each with one write in flight: what group commit does for many
/// independent request handlers. One iteration = one write per thread.
fn viewstore_64_writers(group: &mut Group<'_>, fx: &Fixture) {
    writers_into(group, fx, "viewstore_64_writers", &fx.store, &fx.rows);
}

/// `viewstore_64_writers` into `store`.
fn writers_into(
    group: &mut Group<'_>,
    fx: &Fixture,
    id: &str,
    store: &Store,
    rows: &View<u64, Row>,
) {
    group.throughput(Throughput::Elements(WRITERS));
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let start = Barrier::new(WRITERS as usize + 1);
            std::thread::scope(|s| {
                for t in 0..WRITERS {
                    let start = &start;
                    s.spawn(move || {
                        let mut rng = Rng::new(iters * WRITERS + t);
                        start.wait();
                        for _ in 0..iters {
                            let key = random_key(&mut rng);
                            let version = fx.next_version.fetch_add(1, Ordering::Relaxed);
                            let mut batch = Batch::new();
                            batch
                                .put(rows, &key, Row::new(key, version), version)
                                .expect("valid put");
                            let ticket = store.submit(batch).expect("submit");
                            ticket.wait().expect("commit");
                        }
                    });
                }
                start.wait();
                // Leaving the scope joins every writer.
                Instant::now()
            })
            .elapsed()
        });
    });
}

/// One thread keeps the queue full: the writer's own ceiling; into `rows`, whose
/// feed mode the benchmark's name says.
fn viewstore_pipelined(group: &mut Group<'_>, fx: &Fixture, id: &str, rows: &View<u64, Row>) {
    pipelined_into(group, fx, id, &fx.store, rows);
}

/// `viewstore_pipelined` into `store`.
fn pipelined_into(
    group: &mut Group<'_>,
    fx: &Fixture,
    id: &str,
    store: &Store,
    rows: &View<u64, Row>,
) {
    group.throughput(Throughput::Elements(PIPELINED));
    group.bench_function(id, |b| {
        let mut rng = Rng::new(7);
        b.iter_custom(|iters| {
            let began = Instant::now();
            for _ in 0..iters {
                let mut tickets = Vec::with_capacity(PIPELINED as usize);
                for _ in 0..PIPELINED {
                    let key = random_key(&mut rng);
                    let version = fx.next_version.fetch_add(1, Ordering::Relaxed);
                    let mut batch = Batch::new();
                    batch.put(rows, &key, Row::new(key, version), version).expect("valid put");
                    tickets.push(store.submit(batch).expect("submit"));
                }
                for ticket in tickets {
                    ticket.wait().expect("commit");
                }
            }
            began.elapsed()
        });
    });
}

/// A reader following the feed while the writer writes: from the first submit until
/// the reader has taken the changes of the last group. Throughput in writes (a key
/// written twice in one group is one change, so slightly fewer changes are read).
fn feed_follow(group: &mut Group<'_>, fx: &Fixture) {
    group.throughput(Throughput::Elements(PIPELINED));
    group.bench_function("feed_follow_values", |b| {
        let mut rng = Rng::new(11);
        b.iter_custom(|iters| {
            let mut feed = fx.rows_feed_values.feed_after(fx.store.lsn()).expect("a reader");
            // The LSN of the last write, once the writer knows it.
            let last = AtomicU64::new(u64::MAX);
            let began = Instant::now();
            std::thread::scope(|s| {
                let last = &last;
                let reader = s.spawn(move || {
                    let (mut seen, waited) = (0, Instant::now());
                    while seen < last.load(Ordering::Acquire) {
                        match feed.next_timeout(Duration::from_millis(1)).expect("read") {
                            Some(change) => {
                                assert!(change.value.is_some());
                                seen = change.lsn.get();
                            }
                            None => assert!(waited.elapsed() < Duration::from_secs(300)),
                        }
                    }
                });
                let mut lsn = 0;
                for _ in 0..iters {
                    let mut tickets = Vec::with_capacity(PIPELINED as usize);
                    for _ in 0..PIPELINED {
                        let key = random_key(&mut rng);
                        let version = fx.next_version.fetch_add(1, Ordering::Relaxed);
                        let mut batch = Batch::new();
                        let row = Row::new(key, version);
                        batch.put(&fx.rows_feed_values, &key, row, version).expect("valid put");
                        tickets.push(fx.store.submit(batch).expect("submit"));
                    }
                    for ticket in tickets {
                        lsn = lsn.max(ticket.wait().expect("commit").lsn.get());
                    }
                }
                last.store(lsn, Ordering::Release);
                reader.join().expect("the reader");
            });
            began.elapsed()
        });
    });
}

/// A reader taking committed changes from the feed, decoded: the 100,000 changes that
/// filled `rows_feed_values`. Throughput in changes.
fn feed_read(group: &mut Group<'_>, fx: &Fixture, from: Lsn) {
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("feed_read_values", |b| {
        b.iter(|| {
            let mut feed = fx.rows_feed_values.feed_after(from).expect("a reader");
            for _ in 0..RECORDS {
                let change = feed.next_timeout(Duration::ZERO).expect("read").expect("retained");
                std::hint::black_box(change);
            }
        });
    });
}

/// Raw redb, one commit per write: what a service gets without batching.
fn redb_commit_per_write(group: &mut Group<'_>, fx: &Fixture) {
    group.throughput(Throughput::Elements(COMMITS));
    group.bench_function("redb_commit_per_write", |b| {
        let mut rng = Rng::new(11);
        b.iter(|| {
            for _ in 0..COMMITS {
                let key = random_key(&mut rng);
                let txn = fx.db.begin_write().expect("begin");
                {
                    let mut table = txn.open_table(REDB_ROWS).expect("table");
                    table
                        .insert(key, encode(&Row::new(key, rng.next_u64())).as_slice())
                        .expect("insert");
                }
                txn.commit().expect("commit");
            }
        });
    });
}

/// Raw redb, hand-batched: 1,000 writes per commit.
fn redb_1000_per_txn(group: &mut Group<'_>, fx: &Fixture) {
    group.throughput(Throughput::Elements(PER_TXN));
    group.bench_function("redb_1000_per_txn", |b| {
        let mut rng = Rng::new(13);
        b.iter(|| {
            let txn = fx.db.begin_write().expect("begin");
            {
                let mut table = txn.open_table(REDB_ROWS).expect("table");
                for _ in 0..PER_TXN {
                    let key = random_key(&mut rng);
                    table
                        .insert(key, encode(&Row::new(key, rng.next_u64())).as_slice())
                        .expect("insert");
                }
            }
            txn.commit().expect("commit");
        });
    });
}

/// fjall, hand-batched like `redb_1000_per_txn` (the same keys and values): 1,000
/// inserts per write batch, each batch synced with `PersistMode::SyncData`.
fn fjall_batch_1000(group: &mut Group<'_>, fx: &Fixture) {
    group.throughput(Throughput::Elements(PER_TXN));
    group.bench_function("fjall_batch_1000", |b| {
        let mut rng = Rng::new(13);
        b.iter(|| {
            fx.fjall.commit_synced((0..PER_TXN).map(|_| {
                let key = random_key(&mut rng);
                (key, encode(&Row::new(key, rng.next_u64())))
            }));
        });
    });
}

/// One batch of `LARGE_BATCH` puts, or deletes, of existing records (the same keys, a
/// random half of the view), from `submit` to the acknowledgement. Before each delete
/// batch, untimed, a put batch brings the records back. Throughput in operations.
fn large_batches(group: &mut Group<'_>, fx: &Fixture) {
    let rows = fx.store.view(&ROWS_LARGE).expect("view");
    let mut rng = Rng::new(17);
    let mut keys: Vec<u64> = (0..RECORDS).collect();
    for i in (1..keys.len()).rev() {
        keys.swap(i, rng.below(i as u64 + 1) as usize);
    }
    keys.truncate(LARGE_BATCH as usize);
    let put_all = |version: u64| {
        let mut batch = Batch::new();
        for &key in &keys {
            batch.put(&rows, &key, Row::new(key, version), version).expect("valid put");
        }
        let started = Instant::now();
        fx.store.submit(batch).expect("submit").wait().expect("commit");
        started.elapsed()
    };
    let mut batch = Batch::new();
    for key in 0..RECORDS {
        batch.put(&rows, &key, Row::new(key, 1), 1).expect("valid put");
    }
    fx.store.submit(batch).expect("submit").wait().expect("commit");
    group.throughput(Throughput::Elements(LARGE_BATCH));
    group.bench_function("put_batch_50000", |b| {
        b.iter_custom(|iters| {
            (0..iters).map(|_| put_all(fx.next_version.fetch_add(1, Ordering::Relaxed))).sum()
        });
    });
    group.bench_function("delete_batch_50000", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                put_all(fx.next_version.fetch_add(1, Ordering::Relaxed));
                let version = fx.next_version.fetch_add(1, Ordering::Relaxed);
                let mut batch = Batch::new();
                for &key in &keys {
                    batch.delete(&rows, &key, version).expect("valid delete");
                }
                let started = Instant::now();
                fx.store.submit(batch).expect("submit").wait().expect("commit");
                spent += started.elapsed();
                assert_eq!(rows.len() as u64, RECORDS - LARGE_BATCH);
            }
            spent
        });
    });
}

fn write(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let (store, [rows, rows_feed_keys, rows_feed_values], next_version, values_from) =
        populated_store(dir.path());
    let db = populated_redb(dir.path());
    let fjall = FjallRows::populated(
        &dir.path().join("fjall"),
        (0..RECORDS).map(|id| (id, encode(&Row::new(id, id)))),
    );
    let (journal, [journal_rows, _, _], _, _) =
        populated_in(dir.path(), "journal.redb", Durability::Journal);
    let fx = Fixture {
        store,
        rows,
        rows_feed_keys,
        rows_feed_values,
        next_version,
        db,
        fjall,
        journal,
        journal_rows,
    };

    let mut group = c.benchmark_group("write");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    viewstore_64_writers(&mut group, &fx);
    feed_read(&mut group, &fx, values_from);
    viewstore_pipelined(&mut group, &fx, "viewstore_pipelined", &fx.rows);
    viewstore_pipelined(&mut group, &fx, "viewstore_pipelined_feed_keys", &fx.rows_feed_keys);
    viewstore_pipelined(&mut group, &fx, "viewstore_pipelined_feed_values", &fx.rows_feed_values);
    feed_follow(&mut group, &fx);
    pipelined_into(&mut group, &fx, "viewstore_journal_pipelined", &fx.journal, &fx.journal_rows);
    writers_into(&mut group, &fx, "viewstore_journal_64_writers", &fx.journal, &fx.journal_rows);
    redb_commit_per_write(&mut group, &fx);
    redb_1000_per_txn(&mut group, &fx);
    fjall_batch_1000(&mut group, &fx);
    large_batches(&mut group, &fx);
    group.finish();

    // Every write above was an update: the tables still hold exactly every key.
    assert_eq!(fx.rows.len() as u64, RECORDS);
    assert_eq!(fx.rows_feed_values.len() as u64, RECORDS);
    let read = fx.db.begin_read().expect("read");
    let table = read.open_table(REDB_ROWS).expect("table");
    assert_eq!(table.len().expect("len"), RECORDS);
    assert_eq!(fx.fjall.len(), RECORDS);
    assert_eq!(fx.journal_rows.len() as u64, RECORDS);
    fx.store.close().expect("close");
    fx.journal.close().expect("close");
}

criterion_group!(benches, write);
criterion_main!(benches);
