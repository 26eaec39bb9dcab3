//! What opening a store of users costs, with its three indexes stored or without
//! indexes: the two opens of `cargo bench --bench index -- 'index/open_'`, for
//! profiling.
//!
//! Keeps a base file per kind and size (`plain-RECORDS.redb`, `indexed-RECORDS.redb`:
//! RECORDS users, default 1,000,000, the benchmark's records and indexes) in DIR (default: a directory named
//! `viewstore-open-profile` in the system's temporary directory), filled on first use
//! and reused afterwards; then, ROUNDS times (default 3), copies it to a scratch file,
//! opens the store, reads one record and closes it, and prints the time from the open
//! to the read:
//!
//! ```text
//! cargo run --release --example open_profile -- stored|plain [RECORDS] [ROUNDS] [DIR]
//! ```
//!
//! To see where an open's time goes (the fill, on first use, shows in the profile too:
//! run once without the profiler first):
//!
//! ```text
//! perf record -g target/release/examples/open_profile stored 1000000 3
//! perf report --no-children
//! ```

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use viewstore::{Batch, Store, ViewDef};

#[path = "../benches/support/users.rs"]
mod users;

use users::{BY_CITY, BY_EMAIL, BY_TAG, User, user};

const INDEXED: ViewDef<u64, User> =
    ViewDef::new("users").with_indexes(&[&BY_EMAIL, &BY_CITY, &BY_TAG]);
const PLAIN: ViewDef<u64, User> = ViewDef::new("users");

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Writes `records` users into a new file at `path`, 10,000 to a batch.
fn fill(path: &Path, def: &ViewDef<u64, User>, records: u64) -> Result<()> {
    let store = Store::open(path)?;
    let view = store.view(def)?;
    for start in (0..records).step_by(10_000) {
        let mut batch = Batch::new();
        for id in start..(start + 10_000).min(records) {
            batch.put(&view, &id, user(id, 0), 1)?;
        }
        store.submit(batch)?.wait()?;
    }
    drop(view);
    store.close()?;
    Ok(())
}

/// One open of a copy of `base`: the time from the open to the first read.
fn time_open(base: &Path, scratch: &Path, def: &ViewDef<u64, User>) -> Result<Duration> {
    std::fs::copy(base, scratch)?;
    let start = Instant::now();
    let store = Store::open(scratch)?;
    let view = store.view(def)?;
    black_box(view.get_with(&7, |u| u.score));
    let elapsed = start.elapsed();
    drop(view);
    store.close()?;
    Ok(elapsed)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let def = match args.first().map(String::as_str) {
        Some("stored") => &INDEXED,
        Some("plain") => &PLAIN,
        _ => return Err("usage: open_profile stored|plain [RECORDS] [ROUNDS] [DIR]".into()),
    };
    let records: u64 = args.get(1).map_or(Ok(1_000_000), |a| a.parse())?;
    let rounds: u32 = args.get(2).map_or(Ok(3), |a| a.parse())?;
    let dir = args
        .get(3)
        .map_or_else(|| std::env::temp_dir().join("viewstore-open-profile"), PathBuf::from);
    std::fs::create_dir_all(&dir)?;
    let kind = if def.indexes().is_empty() { "plain" } else { "indexed" };
    let base = dir.join(format!("{kind}-{records}.redb"));
    if !base.exists() {
        let filling = dir.join(format!("{kind}-{records}.filling"));
        let _ = std::fs::remove_file(&filling);
        let start = Instant::now();
        fill(&filling, def, records)?;
        std::fs::rename(&filling, &base)?;
        println!("filled {} in {:.2?}", base.display(), start.elapsed());
    }
    let scratch = dir.join(format!("scratch-{}.redb", std::process::id()));
    for round in 0..rounds {
        let elapsed = time_open(&base, &scratch, def);
        let _ = std::fs::remove_file(&scratch);
        println!("open {kind} {records} round {round}: {:.3?}", elapsed?);
    }
    Ok(())
}
