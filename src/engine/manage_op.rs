//! The view management requests the writer takes (list, drop, clear, rename, the
//! snapshot a backup copies, compaction) and what it answers.

use crate::base::manage::{CompactReport, ViewInfo};
use crate::base::version::Lsn;

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
    /// A read transaction of the latest commit, for a backup to copy.
    Snapshot,
    /// Compact the file.
    Compact,
}

/// The writer's answer to a [`ManageOp`].
pub(crate) enum Managed {
    Views(Vec<ViewInfo>),
    /// The LSN of the commit that dropped, cleared or renamed.
    Committed(Lsn),
    /// A consistent snapshot of the file, and its LSN.
    Snapshot(redb::ReadTransaction, Lsn),
    Compacted(CompactReport),
}
