//! The read fixture's records written to a file, and the random keys its readers use:
//! shared by `benches/read.rs`, `examples/read_overlap.rs` and
//! `examples/reads_under_writes.rs`, so that they read the same records in the same
//! order. The including crate also includes `profile.rs` as `mod profile`.

use super::profile::{PROFILES, profile};
use std::path::Path;
use std::time::Duration;
use viewstore::{Batch, Durability, Store};

/// `n` keys below `below`, from `SplitMix64` seeded with `seed`: deterministic, without
/// a dependency.
pub(crate) fn random_keys(n: usize, seed: u64, below: u64) -> Vec<u64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) % below
        })
        .collect()
}

/// Writes the profiles `0..records` into a new store at `path`, in batches of 10,000
/// submitted at once (periodic durability: the close syncs them), and closes it.
pub(crate) fn fill_profiles(path: &Path, records: u64) -> viewstore::Result<()> {
    let store = Store::builder(path)
        .durability(Durability::Periodic { interval: Duration::from_secs(1) })
        .open()?;
    let view = store.view(&PROFILES)?;
    let mut tickets = Vec::new();
    for start in (0..records).step_by(10_000) {
        let mut batch = Batch::new();
        for id in start..(start + 10_000).min(records) {
            batch.put(&view, &id, profile(id), 1)?;
        }
        tickets.push(store.submit(batch)?);
    }
    for ticket in tickets {
        ticket.wait()?;
    }
    drop(view);
    store.close()
}
