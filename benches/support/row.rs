//! The row the write and projector benchmarks write, so that both measure the same
//! values.

use serde::{Deserialize, Serialize};

/// A small row of the kind a view holds: about 40 bytes with bincode's standard config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Row {
    id: u64,
    owner: u32,
    name: String,
    score: i64,
    active: bool,
    tags: Vec<u16>,
    updated_at: u64,
}

impl Row {
    /// Row `id`; `seed` varies its fields (a version, say).
    pub(crate) fn new(id: u64, seed: u64) -> Row {
        Row {
            id,
            owner: (seed % 1_000) as u32,
            name: format!("row-{id:08}-{:04}", seed % 10_000),
            score: i64::try_from(seed % 1_000_000).unwrap_or(0) - 500_000,
            active: seed & 1 == 0,
            tags: vec![(seed % 7) as u16, (seed % 13) as u16, (seed % 29) as u16],
            updated_at: 1_700_000_000 + seed % 86_400,
        }
    }
}
