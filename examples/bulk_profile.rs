//! What a bulk load of users costs, alone: the loads of `cargo bench --bench index --
//! 'index/.*bulk_load'`, without the other benchmarks' setup in the profile.
//!
//! ROUNDS times (default 3), fills a new file in DIR (default: a directory named
//! `viewstore-bulk-profile` in the system's temporary directory) with RECORDS users
//! (default 200,000, the benchmark's records, made before the clock starts) and prints
//! the time of the load alone (and, on Linux, the minor page faults the process took
//! meanwhile, every thread's): `viewstore` is `Store::bulk_load` into a view without
//! indexes, `indexed` the same with the benchmark's three indexes, `redb` the
//! benchmark's baseline (one redb write transaction of the same records, bincode values
//! and `u64` keys, redb's default durability):
//!
//! ```text
//! cargo run --release --example bulk_profile -- viewstore|indexed|redb [RECORDS] [ROUNDS] [DIR]
//! ```
//!
//! Instructions per function, the load and the baseline compared. The records are made
//! and dropped outside the load, and show in the totals: compare the inclusive figures
//! of `load_redb` against those of `load_viewstore` (the calling thread) plus the
//! writer's threads (`--separate-threads=yes` writes one file per thread: the writer's
//! `Writer::manage`, and the thread that writes the records' table beside it):
//!
//! ```text
//! valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file=bulk.out \
//!     target/release/examples/bulk_profile viewstore 200000 1
//! callgrind_annotate --inclusive=yes bulk.out-01 | grep -E 'load_viewstore|load_redb'
//! ```

use redb::{Database, TableDefinition};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use viewstore::{Store, View, ViewDef};

#[path = "../benches/support/users.rs"]
mod users;

use users::{BY_CITY, BY_EMAIL, BY_TAG, User, user};

const INDEXED: ViewDef<u64, User> =
    ViewDef::new("users").with_indexes(&[&BY_EMAIL, &BY_CITY, &BY_TAG]);
const PLAIN: ViewDef<u64, User> = ViewDef::new("users");
const REDB_USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("users");

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A load's records: key, version, value.
type Records = Vec<(u64, u64, User)>;

/// The records of a load, in key order.
fn records(n: u64) -> Records {
    (0..n).map(|id| (id, 1, user(id, 0))).collect()
}

/// `Store::bulk_load` of `n` users into a new store's empty view: from the call to its
/// return.
#[inline(never)]
fn time_viewstore(path: &Path, def: &ViewDef<u64, User>, n: u64) -> Result<Timed> {
    let store = Store::open(path)?;
    let view = store.view(def)?;
    let records = records(n);
    let (start, faults) = (Instant::now(), minor_faults());
    load_viewstore(&store, &view, records)?;
    let timed = Timed { elapsed: start.elapsed(), faults: fault_delta(faults) };
    drop(view);
    store.close()?;
    Ok(timed)
}

/// The load itself, apart for a profile (its work on the writer's threads aside).
#[inline(never)]
fn load_viewstore(store: &Store, view: &View<u64, User>, records: Records) -> Result<()> {
    store.bulk_load(view, records)?;
    Ok(())
}

/// The same records in one redb write transaction: the benchmark's baseline.
fn time_redb(path: &Path, n: u64) -> Result<Timed> {
    let db = Database::create(path)?;
    let records = records(n);
    let (start, faults) = (Instant::now(), minor_faults());
    load_redb(&db, &records)?;
    let timed = Timed { elapsed: start.elapsed(), faults: fault_delta(faults) };
    drop(db);
    drop(records);
    Ok(timed)
}

/// A load's time, and the page faults the process took meanwhile (on every thread).
struct Timed {
    elapsed: Duration,
    faults: Option<u64>,
}

/// The process's minor page faults so far (field 10 of `/proc/self/stat`), where there
/// is such a file.
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command's name, which is in parentheses and may hold spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    rest.split(' ').nth(7)?.parse().ok()
}

fn fault_delta(before: Option<u64>) -> Option<u64> {
    Some(minor_faults()?.saturating_sub(before?))
}

/// The baseline's load itself, apart for a profile.
#[inline(never)]
fn load_redb(db: &Database, records: &Records) -> Result<()> {
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(REDB_USERS)?;
        for (id, _, user) in records {
            let bytes = bincode::serde::encode_to_vec(user, bincode::config::standard())?;
            table.insert(id, bytes.as_slice())?;
        }
    }
    txn.commit()?;
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kind = args.first().map(String::as_str).unwrap_or_default();
    if !matches!(kind, "viewstore" | "indexed" | "redb") {
        return Err("usage: bulk_profile viewstore|indexed|redb [RECORDS] [ROUNDS] [DIR]".into());
    }
    let n: u64 = args.get(1).map_or(Ok(200_000), |a| a.parse())?;
    let rounds: u32 = args.get(2).map_or(Ok(3), |a| a.parse())?;
    let dir = args
        .get(3)
        .map_or_else(|| std::env::temp_dir().join("viewstore-bulk-profile"), PathBuf::from);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("bulk-{kind}-{}.redb", std::process::id()));
    for round in 0..rounds {
        let _ = std::fs::remove_file(&path);
        let elapsed = match kind {
            "viewstore" => time_viewstore(&path, &PLAIN, n),
            "indexed" => time_viewstore(&path, &INDEXED, n),
            _ => time_redb(&path, n),
        };
        let _ = std::fs::remove_file(&path);
        let Timed { elapsed, faults } = elapsed?;
        let per_record = elapsed.as_nanos() / u128::from(n.max(1));
        let faults = faults.map_or_else(String::new, |f| format!(", {f} page faults"));
        println!(
            "bulk load {kind} {n} round {round}: {elapsed:.3?} ({per_record} ns a record{faults})"
        );
    }
    Ok(())
}
