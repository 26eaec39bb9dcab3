//! The kill loop of a migration: a child process migrates a view of 20,000 records
//! (every seventh a tombstone) from schema version 1 to 2 in transactions of 500 rows,
//! printing each progress report, and the parent kills it with SIGKILL at a random
//! moment. The parent then reads the file with redb alone and checks that the view is
//! entirely at version 1 with its old values, or migrating with exactly a whole number
//! of transactions converted (a prefix in key order, at least every one the child
//! reported, at most one more) and its progress row present, or entirely migrated;
//! then resumes the migration and checks that it ends in exactly the expected records,
//! that its first report starts where the file said, and that `verify` is clean.
//!
//! `VIEWSTORE_MIGRATION_SEED` replays a run, `VIEWSTORE_MIGRATION_CYCLES` sets the
//! number of kills (default 100).

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use viewstore::redb::{self, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use viewstore::testing::{Rng, seed_from_time};
use viewstore::{Batch, Bincode, Codec, Error, Migration, Store, ViewDef};

const RECORDS: u64 = 20_000;
const CHUNK: u64 = 500;
const CHILD_ENV: &str = "VIEWSTORE_MIGRATION_CHILD";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ItemV1 {
    n: u64,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ItemV2 {
    n: u64,
    name: String,
    label: String,
}

const ITEMS_V1: ViewDef<u64, ItemV1> = ViewDef::new("items");
const ITEMS_V2: ViewDef<u64, ItemV2> = ViewDef::new("items").with_schema_version(2);

fn deleted(id: u64) -> bool {
    id % 7 == 3
}

fn old(id: u64) -> ItemV1 {
    ItemV1 { n: id, name: format!("item {id}") }
}

fn up(v1: ItemV1) -> ItemV2 {
    ItemV2 { label: format!("#{}", v1.n), n: v1.n, name: v1.name }
}

/// Live records among the first `rows` rows of the table (keys `0..rows`).
fn live_in(rows: u64) -> u64 {
    (0..rows.min(RECORDS)).filter(|&id| !deleted(id)).count() as u64
}

type Failure = String;

fn main() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(Path::new(&path));
        return;
    }
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| "migration_kill".contains(f.as_str())) {
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        println!("migration_kill: test");
        return;
    }
    let env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let seed = env("VIEWSTORE_MIGRATION_SEED").unwrap_or_else(seed_from_time);
    let cycles = env("VIEWSTORE_MIGRATION_CYCLES").unwrap_or(100);
    let started = Instant::now();
    match run(seed, cycles) {
        Ok(states) => println!(
            "migration_kill: {cycles} cycles (killed before the first commit {}, migrating {}, \
             after the last {}), seed {seed}, {:.1} s",
            states[0],
            states[1],
            states[2],
            started.elapsed().as_secs_f64()
        ),
        Err(e) => {
            eprintln!("migration_kill FAILED: {e}\nreplay with VIEWSTORE_MIGRATION_SEED={seed}");
            std::process::exit(1);
        }
    }
}

fn run(seed: u64, cycles: u64) -> Result<[u32; 3], Failure> {
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let template = dir.path().join("template.redb");
    make_template(&template).map_err(|e| format!("template: {e}"))?;
    let path = dir.path().join("store.redb");
    let mut rng = Rng::new(seed);
    // A first child runs to the end: how long a whole migration takes here.
    std::fs::copy(&template, &path).map_err(|e| format!("copy: {e}"))?;
    let (whole, reports, finished) = run_child(&path, None)?;
    if !finished || reports.last() != Some(&RECORDS) {
        return Err(format!("the uninterrupted child reported {reports:?}"));
    }
    let mut states = [0u32; 3];
    for cycle in 0..cycles {
        std::fs::copy(&template, &path).map_err(|e| format!("copy: {e}"))?;
        // One kill in five falls in the first twentieth: around the first commit.
        let span = whole.as_micros() as u64 / if rng.one_in(5) { 20 } else { 1 };
        let delay = Duration::from_micros(rng.below(span + 1));
        let (_, reports, _) = run_child(&path, Some(delay))?;
        let state = check(&path, &reports).map_err(|e| {
            let kept = dir.path().join(format!("failed-{cycle}.redb"));
            let _ = std::fs::copy(&path, &kept);
            format!("cycle {cycle} (killed after {delay:?}, reports {reports:?}): {e}")
        })?;
        states[state] += 1;
    }
    Ok(states)
}

fn make_template(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(path)?;
    let items = store.view(&ITEMS_V1)?;
    let mut batch = Batch::new();
    for id in 0..RECORDS {
        batch.put(&items, &id, old(id), id + 10)?;
    }
    store.submit(batch)?.wait()?;
    let mut batch = Batch::new();
    for id in (0..RECORDS).filter(|&id| deleted(id)) {
        batch.delete(&items, &id, id + 11)?;
    }
    store.submit(batch)?.wait()?;
    store.close()?;
    Ok(())
}

/// Runs a child on `path`; kills it `kill_after` after it opened the store, or lets it
/// finish. Returns how long it ran after opening, the `done` counts it reported, and
/// whether it said it finished.
fn run_child(
    path: &Path,
    kill_after: Option<Duration>,
) -> Result<(Duration, Vec<u64>, bool), Failure> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .env(CHILD_ENV, path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawning the child: {e}"))?;
    let stdout = child.stdout.take().ok_or("child has no stdout")?;
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(line) if line == "open" => {}
        other => return Err(format!("the child said {other:?} instead of \"open\"")),
    }
    let opened = Instant::now();
    if let Some(delay) = kill_after {
        std::thread::sleep(delay);
        child.kill().map_err(|e| format!("kill: {e}"))?;
        child.wait().map_err(|e| format!("wait: {e}"))?;
    } else {
        let status = child.wait().map_err(|e| format!("wait: {e}"))?;
        if !status.success() {
            return Err(format!("the child failed: {status}"));
        }
    }
    let ran = opened.elapsed();
    let _ = reader.join();
    let (mut reports, mut finished) = (Vec::new(), false);
    for line in rx.try_iter() {
        if let Some(done) = line.strip_prefix("done ") {
            reports.push(done.parse().map_err(|_| format!("bad line {line:?}"))?);
        } else if line == "finished" {
            finished = true;
        } else {
            return Err(format!("unexpected child output {line:?}"));
        }
    }
    Ok((ran, reports, finished))
}

fn child(path: &Path) {
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        eprintln!("migration_kill child: {what}: {e}");
        std::process::exit(2);
    };
    let store = Store::open(path).unwrap_or_else(|e| fail("open", &e));
    println!("open");
    let migration = Migration::<ItemV1>::from_version(1)
        .then(2, up)
        .chunk_records(CHUNK as usize)
        .on_progress(|p| println!("done {}", p.done));
    store.view_migrated(&ITEMS_V2, &migration).unwrap_or_else(|e| fail("migrate", &e));
    println!("finished");
    store.close().unwrap_or_else(|e| fail("close", &e));
}

const VIEWS: TableDefinition<&str, &[u8]> = TableDefinition::new("viewstore.views");
const MIGRATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("viewstore.migrations");
const RECORDS_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("view.items");

/// Checks the file after a kill and resumes the migration; returns 0 when nothing was
/// converted, 1 when the view was migrating, 2 when the migration was over.
fn check(path: &Path, reports: &[u64]) -> Result<usize, Failure> {
    let (converted, migrating, marked) = inspect(path).map_err(|e| format!("inspect: {e}"))?;
    let reported = reports.last().copied().unwrap_or(0);
    let state = if converted == 0 && !migrating && !marked {
        0
    } else if migrating && marked {
        1
    } else if !migrating && !marked && converted == live_in(RECORDS) {
        2
    } else {
        return Err(format!(
            "{converted} records converted, progress row {migrating}, meta marked {marked}"
        ));
    };
    // A whole number of transactions, at least the reported ones, at most one more.
    let rows = (0..=RECORDS.div_ceil(CHUNK))
        .map(|k| (k * CHUNK).min(RECORDS))
        .find(|&rows| live_in(rows) == converted)
        .ok_or_else(|| format!("{converted} converted records are no whole transaction"))?;
    if rows < reported || rows > reported + CHUNK {
        return Err(format!("{rows} rows converted, the child reported {reported}"));
    }
    resume(path, state, rows).map_err(|e| format!("resume: {e}"))?;
    Ok(state)
}

/// Reads the file with redb: how many live records decode as the new type (checking
/// that they are a prefix in key order and that the others decode as the old one),
/// whether a progress row exists, and whether the meta is marked as migrating.
fn inspect(path: &Path) -> Result<(u64, bool, bool), Box<dyn std::error::Error>> {
    let db = redb::Database::open(path)?;
    let txn = db.begin_read()?;
    let has_row = if txn.list_tables()?.any(|t| t.name() == MIGRATIONS.name()) {
        txn.open_table(MIGRATIONS)?.get("items")?.is_some()
    } else {
        false
    };
    let meta = txn.open_table(VIEWS)?.get("items")?.ok_or("no meta row")?.value().to_vec();
    let marked = String::from_utf8_lossy(&meta).contains("(migrating)");
    let table = txn.open_table(RECORDS_TABLE)?;
    let (mut converted, mut old_seen, mut id) = (0u64, false, 0u64);
    for item in table.iter()? {
        let (_, bytes) = item?;
        let bytes = bytes.value();
        let version = u64::from_le_bytes(bytes[1..9].try_into()?);
        if deleted(id) {
            if (bytes[0], bytes.len(), version) != (2, 9, id + 11) {
                return Err(format!("tombstone {id} changed: {bytes:?}").into());
            }
        } else {
            if (bytes[0], version) != (1, id + 10) {
                return Err(format!("record {id} has tag {} version {version}", bytes[0]).into());
            }
            if let Ok(new) = Codec::<ItemV2>::decode(&Bincode, &bytes[9..]) {
                if old_seen || new != up(old(id)) {
                    return Err(format!("record {id} converted out of order or wrongly").into());
                }
                converted += 1;
            } else {
                let value =
                    Codec::<ItemV1>::decode(&Bincode, &bytes[9..]).map_err(|e| e.to_string())?;
                if value != old(id) {
                    return Err(format!("record {id} holds {value:?}").into());
                }
                old_seen = true;
            }
        }
        id += 1;
    }
    if id != RECORDS {
        return Err(format!("{id} rows instead of {RECORDS}").into());
    }
    Ok((converted, has_row, marked))
}

/// Opens the store as a later run would: a view never converted still opens at
/// version 1; a half-migrated one is refused without a migration; resuming converts
/// the rest, starting where the file said.
fn resume(path: &Path, state: usize, rows: u64) -> Result<(), Box<dyn std::error::Error>> {
    if state == 0 {
        let store = Store::open(path)?;
        let items = store.view(&ITEMS_V1)?;
        if items.len() as u64 != live_in(RECORDS) || items.get(&5).as_deref() != Some(&old(5)) {
            return Err("the old view does not read back".into());
        }
        store.close()?;
    }
    let store = Store::open(path)?;
    if state == 1 && !matches!(store.view(&ITEMS_V2), Err(Error::Migration { .. })) {
        return Err("a half-migrated view opened without a migration".into());
    }
    let first = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = std::sync::Arc::clone(&first);
    let migration = Migration::<ItemV1>::from_version(1)
        .then(2, up)
        .chunk_records(CHUNK as usize)
        .on_progress(move |p| {
            let mut first = seen.lock().expect("lock");
            first.get_or_insert(p.done);
        });
    let items = store.view_migrated(&ITEMS_V2, &migration)?;
    let first = *first.lock().map_err(|_| "poisoned")?;
    let expected_first = (state != 2).then(|| (rows + CHUNK).min(RECORDS));
    if first != expected_first {
        return Err(format!(
            "the resumed migration first reported {first:?}, not {expected_first:?}"
        )
        .into());
    }
    for id in 0..RECORDS {
        let found = items.get_versioned(&id).map(|(v, item)| (v, (*item).clone()));
        let expected = (!deleted(id)).then(|| (id + 10, up(old(id))));
        if found != expected {
            return Err(format!("key {id}: {found:?} instead of {expected:?}").into());
        }
    }
    if !store.verify()?.is_ok() {
        return Err("verify found problems".into());
    }
    store.close()?;
    Ok(())
}
