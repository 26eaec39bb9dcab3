//! Read benchmarks: the resident layer against what users would pick instead (plain
//! maps, a concurrent cache, raw redb), reads while a paced writer writes, thread
//! scaling, range scans with and without versions, `len`, and opening a large store.
//!
//! One fixture of 1,000,000 records (`u64` keys, a 7-field struct of about 100 bytes
//! encoded) is built once per run in a temporary directory; the baselines hold the
//! same values, so every ratio comes from one run.

use criterion::{Criterion, SamplingMode, Throughput};
use redb::{Database, ReadableDatabase, TableDefinition};
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, RwLock};
use std::time::{Duration, Instant};
use viewstore::{Batch, Store, View};

const RECORDS: u64 = 1_000_000;
/// Random keys are drawn once and cycled through.
const LOOKUPS: usize = 1 << 20;
/// Keys read per thread per iteration in the scaling group.
const READS_PER_ITER: u64 = 1_000;
const HOT_KEYS: usize = 16;
const SCAN_LEN: u64 = 1_000;
/// Writes per second of the paced background writer in `read_get`'s `*_under_writes`.
const BACKGROUND_WRITES: u64 = 20_000;
/// Writes per batch of the background writer (one batch every 5 ms).
const BACKGROUND_BATCH: u64 = 100;
/// Records of the small view that `len` compares with the fixture's view.
const SMALL: u64 = 1_000;

#[path = "support/profile.rs"]
mod profile;
#[path = "support/profile_fixture.rs"]
mod profile_fixture;
use profile::{PROFILES, Profile, profile};
use profile_fixture::{fill_profiles, random_keys};

/// A view of `SMALL` profiles beside the fixture's, for `len`.
const SMALL_PROFILES: viewstore::ViewDef<u64, Profile> = viewstore::ViewDef::new("small_profiles");

const RAW: TableDefinition<u64, &[u8]> = TableDefinition::new("profiles");

fn encode(p: &Profile) -> Vec<u8> {
    bincode::serde::encode_to_vec(p, bincode::config::standard()).expect("encodable")
}

fn decode(bytes: &[u8]) -> Profile {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard()).expect("decodable").0
}

fn populate_raw(path: &Path) -> Database {
    let db = Database::create(path).expect("redb");
    let txn = db.begin_write().expect("write");
    {
        let mut table = txn.open_table(RAW).expect("table");
        for id in 0..RECORDS {
            table.insert(id, encode(&profile(id)).as_slice()).expect("insert");
        }
    }
    txn.commit().expect("commit");
    db
}

struct Fixture {
    _dir: tempfile::TempDir,
    store_path: PathBuf,
    store: Store,
    view: View<u64, Profile>,
    small: View<u64, Profile>,
    raw: Database,
    values: Vec<Arc<Profile>>,
    keys: Vec<u64>,
}

impl Fixture {
    fn build() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store_path = dir.path().join("views.redb");
        let started = Instant::now();
        fill_profiles(&store_path, RECORDS).expect("fill the fixture");
        let raw = populate_raw(&dir.path().join("raw.redb"));
        let store = Store::open(&store_path).expect("reopen");
        let view = store.view(&PROFILES).expect("view");
        let small = store.view(&SMALL_PROFILES).expect("view");
        let mut batch = Batch::new();
        for id in 0..SMALL {
            batch.put(&small, &id, profile(id), 1).expect("put");
        }
        store.submit(batch).expect("submit").wait().expect("commit");
        let values: Vec<Arc<Profile>> = (0..RECORDS).filter_map(|id| view.get(&id)).collect();
        assert_eq!(values.len() as u64, RECORDS);
        eprintln!("fixture: {RECORDS} records in {:?}", started.elapsed());
        Fixture {
            _dir: dir,
            store_path,
            store,
            view,
            small,
            raw,
            values,
            keys: random_keys(LOOKUPS, 0x5EED, RECORDS),
        }
    }

    fn hashmap(&self) -> HashMap<u64, Arc<Profile>> {
        self.values.iter().map(|v| (v.id, Arc::clone(v))).collect()
    }
}

/// One read per iteration, keys cycled from a pre-generated random list.
fn bench_reads(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    keys: &[u64],
    mut read: impl FnMut(u64) -> Option<u64>,
) {
    let mask = keys.len() - 1;
    group.bench_function(name, |b| {
        let mut i = 0usize;
        b.iter(|| {
            let key = keys[i & mask];
            i = i.wrapping_add(1);
            black_box(read(black_box(key)))
        });
    });
}

fn read_get(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("read_get");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let keys = &f.keys;
    let view = &f.view;
    bench_reads(&mut group, "viewstore_get", keys, |k| view.get_with(&k, |p| p.followers));
    bench_reads(&mut group, "viewstore_get_arc", keys, |k| view.get(&k).map(|p| p.followers));
    let snap = view.snapshot();
    bench_reads(&mut group, "viewstore_snapshot_get", keys, |k| {
        snap.get_ref(&k).map(|p| p.followers)
    });
    drop(snap);
    let version = AtomicU64::new(2);
    let writes = paced_writes(
        || {
            let mut batch = Batch::new();
            let v = version.fetch_add(1, Ordering::Relaxed);
            for i in 0..BACKGROUND_BATCH {
                let id = keys[((v * BACKGROUND_BATCH + i) as usize) & (keys.len() - 1)];
                batch.put(view, &id, profile(id), v).expect("put");
            }
            f.store.submit(batch).expect("submit")
        },
        |ticket| drop(ticket.wait().expect("commit")),
        || {
            bench_reads(&mut group, "viewstore_get_under_writes", keys, |k| {
                view.get_with(&k, |p| p.followers)
            });
        },
    );
    eprintln!("viewstore_get_under_writes: the background writer made {writes:.0} writes/s");
    let map = f.hashmap();
    bench_reads(&mut group, "hashmap_get", keys, |k| map.get(&k).map(|p| p.followers));
    let locked = RwLock::new(map);
    bench_reads(&mut group, "rwlock_hashmap_get", keys, |k| {
        let map = locked.read().expect("lock");
        map.get(&k).map(|p| p.followers)
    });
    let round = AtomicU64::new(0);
    let writes = paced_writes(
        || {
            let r = round.fetch_add(1, Ordering::Relaxed);
            let mut map = locked.write().expect("lock");
            for i in 0..BACKGROUND_BATCH {
                let id = keys[((r * BACKGROUND_BATCH + i) as usize) & (keys.len() - 1)];
                map.insert(id, Arc::new(profile(id)));
            }
        },
        |()| {},
        || {
            bench_reads(&mut group, "rwlock_hashmap_get_under_writes", keys, |k| {
                let map = locked.read().expect("lock");
                map.get(&k).map(|p| p.followers)
            });
        },
    );
    eprintln!("rwlock_hashmap_get_under_writes: the background writer made {writes:.0} writes/s");
    drop(locked);
    let cache: moka::sync::Cache<u64, Arc<Profile>> = moka::sync::Cache::new(2 * RECORDS);
    for v in &f.values {
        cache.insert(v.id, Arc::clone(v));
    }
    cache.run_pending_tasks();
    bench_reads(&mut group, "moka_get", keys, |k| cache.get(&k).map(|p| p.followers));
    drop(cache);
    let txn = f.raw.begin_read().expect("read");
    let table = txn.open_table(RAW).expect("table");
    bench_reads(&mut group, "redb_get_decode", keys, |k| {
        let bytes = table.get(k).expect("get")?;
        Some(decode(bytes.value()).followers)
    });
    drop(table);
    drop(txn);
    bench_reads(&mut group, "redb_txn_get_decode", keys, |k| {
        let txn = f.raw.begin_read().expect("read");
        let table = txn.open_table(RAW).expect("table");
        let bytes = table.get(k).expect("get")?;
        Some(decode(bytes.value()).followers)
    });
    group.finish();
}

/// Runs `measure` while another thread submits a batch of `BACKGROUND_BATCH` records
/// with `submit` at `BACKGROUND_WRITES` writes per second, on a fixed schedule (a batch
/// every few milliseconds; late ones are made up for at once, up to `IN_FLIGHT`). A durable writer does not
/// wait for each batch before the next: up to `IN_FLIGHT` batches are outstanding, and
/// `settle` waits for the oldest beyond that (as a service writing at a steady rate
/// would), so the rate is the one asked, not one commit latency per batch. Returns the
/// rate of settled writes reached.
#[expect(clippy::cast_precision_loss, reason = "a rate for a message")]
fn paced_writes<T>(
    submit: impl Fn() -> T + Sync,
    settle: impl Fn(T) + Sync,
    measure: impl FnOnce(),
) -> f64 {
    const IN_FLIGHT: usize = 64;
    let every = Duration::from_secs(1) * BACKGROUND_BATCH as u32 / BACKGROUND_WRITES as u32;
    let stop = AtomicBool::new(false);
    let began = Instant::now();
    let batches = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut next = Instant::now();
            let mut batches = 0u64;
            let mut outstanding = std::collections::VecDeque::with_capacity(IN_FLIGHT + 1);
            while !stop.load(Ordering::Relaxed) {
                outstanding.push_back(submit());
                while outstanding.len() > IN_FLIGHT {
                    settle(outstanding.pop_front().expect("one outstanding"));
                    batches += 1;
                }
                // A writer more than `IN_FLIGHT` batches late catches up only that far:
                // the rate stays the one asked, not as fast as the store goes.
                let now = Instant::now();
                let earliest = now.checked_sub(every * IN_FLIGHT as u32).unwrap_or(now);
                next = (next + every).max(earliest);
                if next > now {
                    std::thread::sleep(next - now);
                }
            }
            for batch in outstanding {
                settle(batch);
                batches += 1;
            }
            batches
        });
        measure();
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("the background writer")
    });
    (batches * BACKGROUND_BATCH) as f64 / began.elapsed().as_secs_f64()
}

/// Runs `iters * READS_PER_ITER` reads on each of `threads` threads at once and returns
/// the wall time from the common start to the last thread's end.
fn parallel_reads(
    threads: usize,
    iters: u64,
    keys: &[u64],
    read: &(impl Fn(u64) -> Option<u64> + Sync),
) -> Duration {
    let start = Barrier::new(threads + 1);
    let mut began = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let start = &start;
            s.spawn(move || {
                start.wait();
                let offset = t * 7919;
                let mut acc = 0u64;
                for n in 0..iters * READS_PER_ITER {
                    let key = keys[(offset + n as usize) % keys.len()];
                    acc = acc.wrapping_add(read(key).unwrap_or(0));
                }
                black_box(acc);
            });
        }
        start.wait();
        began = Instant::now();
    });
    began.elapsed()
}

fn read_scaling(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("read_scaling");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let uniform = &f.keys;
    let hot: Vec<u64> = f.keys[..HOT_KEYS].to_vec();
    let view = &f.view;
    let locked = RwLock::new(f.hashmap());
    let viewstore_read = |k: u64| view.get_with(&k, |p| p.followers);
    let rwlock_read = |k: u64| {
        let map = locked.read().expect("lock");
        map.get(&k).map(|p| p.followers)
    };
    for (keys_name, keys) in [("uniform", uniform.as_slice()), ("hot", hot.as_slice())] {
        for threads in [1usize, 2] {
            group.throughput(Throughput::Elements(threads as u64 * READS_PER_ITER));
            group.bench_function(format!("viewstore_{keys_name}/{threads}"), |b| {
                b.iter_custom(|iters| parallel_reads(threads, iters, keys, &viewstore_read));
            });
            group.bench_function(format!("rwlock_hashmap_{keys_name}/{threads}"), |b| {
                b.iter_custom(|iters| parallel_reads(threads, iters, keys, &rwlock_read));
            });
        }
    }
    group.finish();
}

fn scan(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("scan");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(SCAN_LEN));
    let starts: Vec<u64> = f.keys.iter().map(|k| k % (RECORDS - SCAN_LEN)).collect();
    let mask = starts.len() - 1;
    let view = &f.view;
    group.bench_function("viewstore_range", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let start = starts[i & mask];
            i += 1;
            let snap = view.snapshot();
            let sum: u64 = snap.range(start..start + SCAN_LEN).map(|(_, p)| p.followers).sum();
            black_box(sum)
        });
    });
    let tree: BTreeMap<u64, Arc<Profile>> =
        f.values.iter().map(|v| (v.id, Arc::clone(v))).collect();
    group.bench_function("btreemap_range", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let start = starts[i & mask];
            i += 1;
            let sum: u64 = tree.range(start..start + SCAN_LEN).map(|(_, p)| p.followers).sum();
            black_box(sum)
        });
    });
    drop(tree);
    // Scans that take each record's key, version and value, against a `BTreeMap` of
    // (version, value) over the same records.
    let versioned: BTreeMap<u64, (u64, Arc<Profile>)> = f
        .values
        .iter()
        .map(|v| (v.id, (view.version(&v.id).unwrap_or(0), Arc::clone(v))))
        .collect();
    for len in [10u64, 1_000] {
        group.throughput(Throughput::Elements(len));
        group.bench_function(format!("viewstore_scan_{len}"), |b| {
            let mut i = 0usize;
            b.iter(|| {
                let start = starts[i & mask];
                i += 1;
                let snap = view.snapshot();
                let sum: u64 = snap
                    .range(start..start + len)
                    .versioned()
                    .map(|(k, version, p)| k ^ version ^ p.followers)
                    .sum();
                black_box(sum)
            });
        });
        group.bench_function(format!("btreemap_range_{len}"), |b| {
            let mut i = 0usize;
            b.iter(|| {
                let start = starts[i & mask];
                i += 1;
                let sum: u64 = versioned
                    .range(start..start + len)
                    .map(|(k, (version, p))| k ^ version ^ p.followers)
                    .sum();
                black_box(sum)
            });
        });
    }
    group.finish();
}

/// `View::len` on a view of 1,000 records and on the fixture's 1,000,000.
fn len(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("len");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for (records, view) in [(SMALL, &f.small), (RECORDS, &f.view)] {
        assert_eq!(view.len() as u64, records);
        group.bench_function(format!("viewstore_len/{records}"), |b| {
            b.iter(|| black_box(black_box(view).len()));
        });
    }
    group.finish();
}

/// Opening runs last, on the fixture's store file once the fixture has closed it.
fn open(c: &mut Criterion, path: &Path) {
    let mut group = c.benchmark_group("open");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(RECORDS));
    let first = 123_457u64;
    // With the store's defaults (redb's integrity check on), and with the check off as
    // in the redb baseline, which opens with redb's defaults.
    for (name, check) in
        [("viewstore_open_first_read", true), ("viewstore_open_unchecked_first_read", false)]
    {
        group.bench_function(name, |b| {
            b.iter_with_large_drop(|| {
                let store = Store::builder(path).check_integrity(check).open().expect("open");
                let view = store.view(&PROFILES).expect("view");
                assert!(view.get_with(&first, |p| p.followers).is_some());
                (view, store)
            });
        });
    }
    let table: TableDefinition<&[u8], &[u8]> = TableDefinition::new("view.profiles");
    group.bench_function("redb_iterate_decode_hashmap", |b| {
        b.iter_with_large_drop(|| {
            let db = Database::open(path).expect("open");
            let mut map = HashMap::with_capacity(RECORDS as usize);
            {
                let txn = db.begin_read().expect("read");
                let table = txn.open_table(table).expect("table");
                for item in table.range::<&[u8]>(..).expect("iter") {
                    let (k, v) = item.expect("item");
                    let key = u64::from_be_bytes(k.value().try_into().expect("u64 key"));
                    // Skip the record header (tag and version).
                    let value = decode(&v.value()[9..]);
                    map.insert(key, Arc::new(value));
                }
            }
            let first_read = map.get(&first).map(|p| p.followers);
            assert!(first_read.is_some());
            (map, db)
        });
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let fixture = Fixture::build();
    read_get(&mut c, &fixture);
    read_scaling(&mut c, &fixture);
    scan(&mut c, &fixture);
    len(&mut c, &fixture);
    let Fixture { _dir: dir, store_path, store, view, small, .. } = fixture;
    drop((view, small));
    store.close().expect("close");
    drop(store);
    open(&mut c, &store_path);
    drop(dir);
    c.final_summary();
}
