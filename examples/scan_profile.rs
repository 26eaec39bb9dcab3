//! What short scans, `len` and large delete batches cost, for profiling.
//!
//! Builds a view of RECORDS `u64`-keyed rows (default 100,000), then runs one kind of
//! operation and prints its time per operation:
//!
//! - `scan10` / `scan1000`: a scan of 10 / 1,000 consecutive records from a random
//!   start, with keys, versions and values (`ViewSnapshot::range(..).versioned()`);
//! - `view_scan10`: the same through `View::range_versioned`, collected;
//! - `btree10` / `btree1000`: the same scans of a `BTreeMap<u64, (u64, Arc<V>)>` of the
//!   same records (the view's own values, shared, as in `benches/read.rs`: each
//!   taken with `View::get` while the map is built), the baseline;
//! - `len`: `View::len`;
//! - `put` / `delete`: one batch of 50,000 puts (or deletes) of existing records,
//!   from `submit` to the acknowledgement.
//!
//! ```text
//! cargo run --release --example scan_profile -- scan10 [RECORDS]
//! ```
//!
//! Instructions per operation under callgrind (the reads run 100,000 times inside
//! `time`, which is kept out of line so that callgrind can count it alone):
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*scan_profile::time*' \
//!     target/release/examples/scan_profile scan10
//! ```
//!
//! For `put` and `delete`, the writer thread's share shows under `apply_group` and
//! `with_delta` in a whole-program profile (`--toggle-collect` omitted).

use std::hint::black_box;
use std::time::{Duration, Instant};
use viewstore::testing::Rng;
use viewstore::{Batch, Durability, Store, ViewDef};

const ROWS: ViewDef<u64, (u64, String)> = ViewDef::new("rows");
const OPS: u64 = 100_000;
const BATCH: u64 = 50_000;

/// Runs `f` `OPS` times; the time per call. Out of line, so that callgrind can count
/// its instructions alone.
#[inline(never)]
fn time(mut f: impl FnMut(u64) -> u64) -> Duration {
    let start = Instant::now();
    let mut acc = 0u64;
    for i in 0..OPS {
        acc = acc.wrapping_add(f(i));
    }
    black_box(acc);
    start.elapsed() / OPS as u32
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map_or("scan10", String::as_str);
    let records: u64 = args.get(2).map_or(Ok(100_000), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let store = Store::builder(dir.path().join("s.redb"))
        .durability(Durability::Periodic { interval: Duration::from_secs(1) })
        .open()?;
    let rows = store.view(&ROWS)?;
    for chunk in (0..records).step_by(10_000) {
        let mut batch = Batch::new();
        for id in chunk..(chunk + 10_000).min(records) {
            batch.put(&rows, &id, (id, format!("row-{id}")), 1)?;
        }
        store.submit(batch)?.wait()?;
    }
    let mut rng = Rng::new(7);
    let starts: Vec<u64> =
        (0..OPS).map(|_| rng.below(records.saturating_sub(1_000).max(1))).collect();
    let start_of = |i: u64| starts[i as usize % starts.len()];
    let per_op = match what {
        "scan10" | "scan1000" => {
            let n = if what == "scan10" { 10 } else { 1_000 };
            time(|i| {
                let s = start_of(i);
                let snap = rows.snapshot();
                snap.range(s..s + n).versioned().map(|(k, v, r)| k ^ v ^ r.0).sum()
            })
        }
        "btree10" | "btree1000" => {
            let n = if what == "btree10" { 10 } else { 1_000 };
            let tree: std::collections::BTreeMap<u64, (u64, std::sync::Arc<(u64, String)>)> = rows
                .snapshot()
                .iter()
                .versioned()
                .map(|(k, v, _)| Ok((k, (v, rows.get(&k).ok_or("a listed row is gone")?))))
                .collect::<Result<_, &str>>()?;
            time(|i| {
                let s = start_of(i);
                tree.range(s..s + n).map(|(k, (v, r))| k ^ v ^ r.0).sum()
            })
        }
        "view_scan10" => time(|i| {
            let s = start_of(i);
            rows.range_versioned(s..s + 10).iter().map(|(k, v, r)| k ^ v ^ r.0).sum()
        }),
        "len" => time(|_| rows.len() as u64),
        "put" | "delete" => {
            let keys: Vec<u64> = (0..BATCH).map(|i| i * records / BATCH).collect();
            let mut batch = Batch::new();
            for &k in &keys {
                if what == "put" {
                    batch.put(&rows, &k, (k, format!("row-{k}")), 2)?;
                } else {
                    batch.delete(&rows, &k, 2)?;
                }
            }
            let started = Instant::now();
            store.submit(batch)?.wait()?;
            started.elapsed() / BATCH as u32
        }
        other => return Err(format!("unknown operation {other}").into()),
    };
    println!("{what} over {records} records: {per_op:?} per operation");
    store.close()?;
    Ok(())
}
