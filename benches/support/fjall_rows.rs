//! The fjall baseline of `benches/write.rs`: a fjall database with one keyspace of
//! rows, written in synced write batches.

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::path::Path;

/// A fjall database and its keyspace `rows`. Keys are `u64`s stored as redb stores
/// them (their 8 little-endian bytes); values are bytes as given.
pub(crate) struct FjallRows {
    db: Database,
    rows: Keyspace,
}

impl FjallRows {
    /// A database in the directory `dir` whose `rows` hold `records`, written in one
    /// batch and synced.
    pub(crate) fn populated(dir: &Path, records: impl IntoIterator<Item = (u64, Vec<u8>)>) -> Self {
        let db = Database::builder(dir).open().expect("open fjall");
        let rows = db.keyspace("rows", KeyspaceCreateOptions::default).expect("keyspace");
        let fjall = FjallRows { db, rows };
        fjall.commit_synced(records);
        fjall
    }

    /// Commits `records` in one write batch, durable when this returns: the batch's
    /// journal entry is written and then fdatasync'd (`PersistMode::SyncData`) before
    /// the commit returns.
    pub(crate) fn commit_synced(&self, records: impl IntoIterator<Item = (u64, Vec<u8>)>) {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        for (key, value) in records {
            batch.insert(&self.rows, key.to_le_bytes(), value);
        }
        batch.commit().expect("commit");
    }

    /// The number of records in `rows` (a full scan).
    pub(crate) fn len(&self) -> u64 {
        self.rows.len().expect("len") as u64
    }
}
