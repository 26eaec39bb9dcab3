//! The view management requests the writer takes (list, drop, clear, rename, swap, one
//! transaction of a migration, the snapshot a backup copies, compaction) and what it
//! answers.

use crate::base::manage::{CompactReport, ViewInfo};
use crate::base::version::Lsn;
use crate::schema::bulk_load::BulkLoad;
use crate::schema::migration::MigrationPlan;
use std::sync::Arc;

/// A view management request.
pub(crate) enum ManageOp {
    /// Every view of the file.
    List,
    /// Drop a view: its tables and catalog rows.
    Drop(String),
    /// Empty a view, keeping its definition.
    Clear(String),
    /// Rename a view: old name, new name.
    Rename(String, String),
    /// Exchange two views: their tables and catalog rows.
    Swap(String, String),
    /// Convert the next bounded part of a view's records (the first part marks the
    /// view as migrating, the last ends the migration).
    Migrate(Arc<MigrationPlan>),
    /// A read transaction of the latest commit, for a backup to copy.
    Snapshot,
    /// Compact the file.
    Compact,
    /// Fill an empty open view with sorted records, building its indexes after them.
    BulkLoad(Box<BulkLoad>),
}

impl ManageOp {
    /// Whether the request changes the file (all but listing, snapshots, compaction).
    pub(crate) fn writes(&self) -> bool {
        !matches!(self, ManageOp::List | ManageOp::Snapshot | ManageOp::Compact)
    }
}

/// The writer's answer to a [`ManageOp`].
pub(crate) enum Managed {
    Views(Vec<ViewInfo>),
    /// The LSN of the commit that dropped, cleared or renamed.
    Committed(Lsn),
    /// A consistent snapshot of the file, and its LSN.
    Snapshot(redb::ReadTransaction, Lsn),
    Compacted(CompactReport),
    Migrated(MigrationStep),
}

/// What one transaction of a migration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MigrationStep {
    /// The schema version the view's unconverted records are stored at.
    pub(crate) from: u32,
    /// Rows of the view's table converted (or passed: tombstones) so far.
    pub(crate) done: u64,
    /// Rows of the view's table in all.
    pub(crate) total: u64,
    /// Whether the migration is over (or there was nothing to migrate).
    pub(crate) finished: bool,
}
