//! What one write costs the store, for counting instructions under callgrind.
//!
//! Fills a view of 100,000 `u64`-keyed rows (batches of 1,000, one version each), then
//! overwrites WRITES random rows (default 100,000) in batches of 1,000 puts, waiting for
//! each batch, so that every group is one batch and the run is the same every time. The
//! store is in `Durability::Immediate`, or `Durability::Journal` with `journal`.
//!
//! ```text
//! cargo run --release --example apply_profile -- [plain|indexed] [WRITES] [immediate|journal]
//! ```
//!
//! `plain` writes the row of `benches/write.rs` to a view without indexes; `indexed`
//! writes the user of `benches/index.rs` to a view with its three indexes, moving each
//! record's city and tags. Instructions per write are the difference between two whole
//! runs (every thread counted), divided by WRITES:
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=cg.0 target/release/examples/apply_profile plain 0
//! valgrind --tool=callgrind --callgrind-out-file=cg.1 target/release/examples/apply_profile plain 100000
//! callgrind_annotate cg.1 | head -40
//! ```

use std::time::Instant;
use viewstore::testing::Rng;
use viewstore::{Batch, Durability, Store, ViewDef};

#[path = "../benches/support/row.rs"]
mod row;
#[path = "../benches/support/users.rs"]
mod users;

use row::Row;
use users::{BY_CITY, BY_EMAIL, BY_TAG, User, user};

const ROWS: ViewDef<u64, Row> = ViewDef::new("rows");
const USERS: ViewDef<u64, User> =
    ViewDef::new("users").with_indexes(&[&BY_EMAIL, &BY_CITY, &BY_TAG]);

const RECORDS: u64 = 100_000;
const PER_BATCH: u64 = 1_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let indexed = match args.get(1).map_or("plain", String::as_str) {
        "plain" => false,
        "indexed" => true,
        other => return Err(format!("unknown mode '{other}': plain or indexed").into()),
    };
    let writes: u64 = args.get(2).map_or(Ok(100_000), |s| s.parse())?;
    let durability = match args.get(3).map_or("immediate", String::as_str) {
        "immediate" => Durability::Immediate,
        "journal" => Durability::Journal,
        other => return Err(format!("unknown durability '{other}': immediate or journal").into()),
    };
    let dir = tempfile::tempdir()?;
    // Checkpoints only when the journal is full: under callgrind a second of wall time
    // is a few groups, and the run must not depend on the clock.
    let mut builder = Store::builder(dir.path().join("s.redb"))
        .durability(durability)
        .checkpoint_interval(std::time::Duration::from_secs(3600));
    if let Ok(mib) = std::env::var("CACHE_MIB") {
        // redb's page cache, in MiB (the store's default otherwise).
        builder = builder.cache_size(mib.parse::<usize>()? << 20);
    }
    let store = builder.open()?;
    let rows = store.view(&ROWS)?;
    let users = store.view(&USERS)?;
    for start in (0..RECORDS).step_by(PER_BATCH as usize) {
        let mut batch = Batch::new();
        for id in start..start + PER_BATCH {
            if indexed {
                batch.put(&users, &id, user(id, 0), 1)?;
            } else {
                batch.put(&rows, &id, Row::new(id, 0), 1)?;
            }
        }
        store.submit(batch)?.wait()?;
    }
    let mut rng = Rng::new(0x5EED);
    let started = Instant::now();
    let mut version = 1;
    for start in (0..writes).step_by(PER_BATCH as usize) {
        let mut batch = Batch::new();
        version += 1;
        for k in start..(start + PER_BATCH).min(writes) {
            let id = rng.below(RECORDS);
            if indexed {
                batch.put(&users, &id, user(id, k + 1), version)?;
            } else {
                batch.put(&rows, &id, Row::new(id, k + 1), version)?;
            }
        }
        store.submit(batch)?.wait()?;
    }
    let elapsed = started.elapsed();
    store.close()?;
    if writes > 0 {
        println!(
            "{writes} writes: {} us per write",
            elapsed.as_nanos() / u128::from(writes) / 1_000
        );
    }
    Ok(())
}
