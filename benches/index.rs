//! Secondary index benchmarks: lookups against plain view reads, indexed against
//! unindexed writes, opening with index builds or stored indexes against opening
//! without indexes, and a bulk load (`Store::bulk_load` of 200,000 records, without and
//! with the three indexes) against one redb transaction of the same records
//! (`redb_bulk_load`).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use redb::{Database, TableDefinition};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};
use viewstore::testing::Rng;
use viewstore::{Batch, Durability, Store, ViewDef};

#[path = "support/users.rs"]
mod users;

use users::{BY_CITY, BY_EMAIL, BY_TAG, User, user};

const INDEXED: ViewDef<u64, User> =
    ViewDef::new("users").with_indexes(&[&BY_EMAIL, &BY_CITY, &BY_TAG]);
const PLAIN: ViewDef<u64, User> = ViewDef::new("users");

const RECORDS: u64 = 100_000;
const OPEN_RECORDS: u64 = 1_000_000;
const BULK_RECORDS: u64 = 200_000;
const REDB_USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("users");

fn fill(store: &Store, def: &ViewDef<u64, User>, records: u64) {
    let view = store.view(def).expect("view");
    for start in (0..records).step_by(10_000) {
        let mut batch = Batch::new();
        for id in start..(start + 10_000).min(records) {
            batch.put(&view, &id, user(id, 0), 1).expect("put");
        }
        store.submit(batch).expect("submit").wait().expect("commit");
    }
}

fn lookups(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    // Built on first use, so that a filter that skips these benchmarks skips the fill.
    let built = std::cell::OnceCell::new();
    let users = || {
        built.get_or_init(|| {
            let store = Store::open(dir.path().join("lookup.redb")).expect("open");
            fill(&store, &INDEXED, RECORDS);
            let users = store.view(&INDEXED).expect("view");
            (store, users)
        })
    };
    let mut rng = Rng::new(0x5EED);
    let ids: Vec<u64> = (0..4096).map(|_| rng.below(RECORDS)).collect();
    let emails: Vec<String> = ids.iter().map(|id| user(*id, 0).email).collect();
    let mut group = c.benchmark_group("index");
    group.throughput(Throughput::Elements(1)).sample_size(20);
    let mut i = 0usize;
    group.bench_function("view_get", |b| {
        let (_, users) = users();
        b.iter(|| {
            i = (i + 1) & 4095;
            users.get_with(&ids[i], |u| black_box(u.score))
        });
    });
    let mut i = 0usize;
    group.bench_function("lookup_unique", |b| {
        let (_, users) = users();
        b.iter(|| {
            i = (i + 1) & 4095;
            users.index_get_with(&BY_EMAIL, &emails[i], |_, u| black_box(u.score))
        });
    });
    group.finish();
}

/// Submits `n` one-op batches at random keys from one thread, then waits for them all.
/// With `move_keys`, every put changes the record's city and tags (both multi indexes
/// lose and gain entries); without, it changes only a field no index reads.
fn pipelined(
    store: &Store,
    def: &ViewDef<u64, User>,
    n: u64,
    salt: &mut u64,
    move_keys: bool,
) -> Duration {
    let view = store.view(def).expect("view");
    let mut rng = Rng::new(*salt);
    *salt += 1;
    let base = view.version(&0).unwrap_or(1);
    let start = Instant::now();
    let mut tickets = Vec::with_capacity(n as usize);
    for k in 0..n {
        let id = rng.below(RECORDS);
        let mut batch = Batch::new();
        let value = if move_keys {
            user(id, *salt + k)
        } else {
            User { score: (*salt + k) as u32, ..user(id, 0) }
        };
        batch.put(&view, &id, value, base + *salt * n + k + 1).expect("put");
        tickets.push(store.submit(batch).expect("submit"));
    }
    for t in tickets {
        t.wait().expect("commit");
    }
    start.elapsed()
}

fn writes(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    // Built on first use, so that a filter that skips these benchmarks skips the fill.
    let store_of = |name: &str, def: &ViewDef<u64, User>| {
        let store = Store::builder(dir.path().join(name))
            .durability(Durability::Immediate)
            .open()
            .expect("open");
        fill(&store, def, RECORDS);
        store
    };
    let (indexed, plain) = (std::cell::OnceCell::new(), std::cell::OnceCell::new());
    let indexed = || indexed.get_or_init(|| store_of("indexed.redb", &INDEXED));
    let plain = || plain.get_or_init(|| store_of("plain.redb", &PLAIN));
    let mut group = c.benchmark_group("index");
    group.throughput(Throughput::Elements(10_000)).sample_size(10);
    let mut salt = 1;
    group.bench_function("put_indexed_3", |b| {
        let indexed = indexed();
        b.iter_custom(|iters| {
            (0..iters).map(|_| pipelined(indexed, &INDEXED, 10_000, &mut salt, true)).sum()
        });
    });
    group.bench_function("put_indexed_3_keys_kept", |b| {
        let indexed = indexed();
        b.iter_custom(|iters| {
            (0..iters).map(|_| pipelined(indexed, &INDEXED, 10_000, &mut salt, false)).sum()
        });
    });
    let mut salt = 1;
    group.bench_function("put_unindexed", |b| {
        let plain = plain();
        b.iter_custom(|iters| {
            (0..iters).map(|_| pipelined(plain, &PLAIN, 10_000, &mut salt, true)).sum()
        });
    });
    group.finish();
}

fn time_open(base: &Path, scratch: &Path, def: &ViewDef<u64, User>) -> Duration {
    std::fs::copy(base, scratch).expect("copy the base file");
    let start = Instant::now();
    let store = Store::open(scratch).expect("open");
    let view = store.view(def).expect("view");
    black_box(view.get_with(&7, |u| u.score));
    let elapsed = start.elapsed();
    drop(view);
    store.close().expect("close");
    elapsed
}

fn opens(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    // Built on first use, so that a filter that skips these benchmarks skips the fill:
    // one file of plain records, one whose three indexes are stored beside them.
    let plain = dir.path().join("plain.redb");
    let indexed = dir.path().join("indexed.redb");
    let (built_plain, built_indexed) = (std::cell::OnceCell::new(), std::cell::OnceCell::new());
    let base_file = |def: &ViewDef<u64, User>| {
        let (cell, path) = if def.indexes().is_empty() {
            (&built_plain, &plain)
        } else {
            (&built_indexed, &indexed)
        };
        cell.get_or_init(|| {
            let store = Store::open(path).expect("open");
            fill(&store, def, OPEN_RECORDS);
            store.close().expect("close");
        });
        path.as_path()
    };
    let scratch = dir.path().join("scratch.redb");
    let mut group = c.benchmark_group("index");
    group.throughput(Throughput::Elements(OPEN_RECORDS)).sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    // `open_build_3_indexes` opens the plain file with the indexes declared (each built
    // from the records); `open_stored_3_indexes` opens the file that stores them.
    for (id, file_def, def) in [
        ("open_build_3_indexes", &PLAIN, &INDEXED),
        ("open_stored_3_indexes", &INDEXED, &INDEXED),
        ("open_no_indexes", &PLAIN, &PLAIN),
    ] {
        group.bench_function(BenchmarkId::from_parameter(id), |b| {
            let base = base_file(file_def);
            b.iter_custom(|iters| (0..iters).map(|_| time_open(base, &scratch, def)).sum());
        });
    }
    group.finish();
}

/// The records of a bulk load, in key order, made before the clock starts.
fn bulk_records() -> Vec<(u64, u64, User)> {
    (0..BULK_RECORDS).map(|id| (id, 1, user(id, 0))).collect()
}

/// `Store::bulk_load` of `BULK_RECORDS` users into a new store's empty view: from the
/// call to its return (encoding, the sorted writes, the index builds, the commit).
fn time_bulk_load(dir: &Path, def: &ViewDef<u64, User>) -> Duration {
    let path = dir.join("bulk.redb");
    let _ = std::fs::remove_file(&path);
    let store = Store::open(&path).expect("open");
    let view = store.view(def).expect("view");
    let records = bulk_records();
    let start = Instant::now();
    store.bulk_load(&view, records).expect("bulk load");
    let elapsed = start.elapsed();
    drop(view);
    store.close().expect("close");
    elapsed
}

/// The same records in one redb write transaction (bincode values, `u64` keys), with
/// redb's default durability: the baseline.
fn time_redb_bulk_load(dir: &Path) -> Duration {
    let path = dir.join("bulk_redb.redb");
    let _ = std::fs::remove_file(&path);
    let db = Database::create(&path).expect("create");
    let records = bulk_records();
    let start = Instant::now();
    let txn = db.begin_write().expect("begin");
    {
        let mut table = txn.open_table(REDB_USERS).expect("table");
        for (id, _, user) in &records {
            let bytes = bincode::serde::encode_to_vec(user, bincode::config::standard())
                .expect("encodable user");
            table.insert(id, bytes.as_slice()).expect("insert");
        }
    }
    txn.commit().expect("commit");
    start.elapsed()
}

fn bulk_loads(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("index");
    group.throughput(Throughput::Elements(BULK_RECORDS)).sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("redb_bulk_load", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| time_redb_bulk_load(dir.path())).sum());
    });
    group.bench_function("bulk_load", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| time_bulk_load(dir.path(), &PLAIN)).sum());
    });
    group.bench_function("bulk_load_3_indexes", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| time_bulk_load(dir.path(), &INDEXED)).sum());
    });
    group.finish();
}

criterion_group!(benches, lookups, writes, opens, bulk_loads);
criterion_main!(benches);
