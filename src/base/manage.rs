//! What the view management calls report: the views a file holds
//! ([`Store::views`](crate::Store::views)), a backup
//! ([`Store::backup`](crate::Store::backup)) and a compaction
//! ([`Store::compact`](crate::Store::compact)).

use crate::base::feed::FeedMode;
use crate::base::index_kind::IndexKind;
use crate::base::version::Lsn;
use std::fmt;
use std::path::PathBuf;

/// An index of a view, as the file records it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexInfo {
    /// The index's name.
    pub name: String,
    /// Unique or multi.
    pub kind: IndexKind,
    /// The index key's type name.
    pub key_type: String,
    /// The index's definition version.
    pub definition_version: u32,
}

/// A view of the file, from [`Store::views`](crate::Store::views): its definition as
/// the file records it and how many records it holds.
///
/// `records` and `tombstones` are exact at the LSN the listing was taken at. For a view
/// open in this process the live records are counted in memory and the tombstones are
/// the rest of its table; for any other view both come from one pass over its table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ViewInfo {
    /// The view's name.
    pub name: String,
    /// The key's type name.
    pub key_type: String,
    /// The value's type name.
    pub value_type: String,
    /// The codec's type name.
    pub codec: String,
    /// The view's schema version.
    pub schema_version: u32,
    /// Its indexes, by name.
    pub indexes: Vec<IndexInfo>,
    /// Its sources, in id order; empty for a view without sources.
    pub sources: Vec<String>,
    /// What it records in the change feed: known only for a view open in this process
    /// (the file does not record it), `None` otherwise.
    pub feed: Option<FeedMode>,
    /// Live records.
    pub records: u64,
    /// Tombstones kept in the file (see `purge_tombstones`).
    pub tombstones: u64,
    /// Whether a `View` handle was made for it by this `Store`.
    pub open: bool,
}

impl fmt::Display for ViewInfo {
    /// One line: `name: key K, value V (codec), schema version n, r records, t
    /// tombstones`, then the indexes, sources, feed and whether it is open.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: key {}, value {} ({}), schema version {}, {} records, {} tombstones",
            self.name,
            self.key_type,
            self.value_type,
            self.codec,
            self.schema_version,
            self.records,
            self.tombstones
        )?;
        for index in &self.indexes {
            let kind = match index.kind {
                IndexKind::Unique => "unique",
                IndexKind::Multi => "multi",
            };
            write!(f, ", index {} ({kind}, key {})", index.name, index.key_type)?;
        }
        if !self.sources.is_empty() {
            write!(f, ", sources [{}]", self.sources.join(", "))?;
        }
        if let Some(feed) = self.feed {
            write!(f, ", feed {feed:?}")?;
        }
        f.write_str(if self.open { ", open" } else { ", not open" })
    }
}

/// What [`Store::backup`](crate::Store::backup) copied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupReport {
    /// The backup's file.
    pub path: PathBuf,
    /// The LSN the copy holds: every group up to it, none after it.
    pub lsn: Lsn,
    /// Tables copied: every table of the file.
    pub tables: usize,
    /// Records copied, over every view, tombstones included.
    pub records: u64,
    /// Rows copied over every table (records, index entries, catalog, feed, positions).
    pub rows: u64,
    /// The backup file's size in bytes.
    pub bytes: u64,
}

impl fmt::Display for BackupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "backup {} at {}: {} tables, {} records, {} rows, {} bytes",
            self.path.display(),
            self.lsn,
            self.tables,
            self.records,
            self.rows,
            self.bytes
        )
    }
}

/// What [`Store::compact`](crate::Store::compact) did to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactReport {
    /// The file's size before, in bytes.
    pub before: u64,
    /// The file's size after, in bytes.
    pub after: u64,
    /// Whether redb moved anything.
    pub compacted: bool,
}

impl fmt::Display for CompactReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "compacted from {} to {} bytes", self.before, self.after)
    }
}

/// How far a migration has come, reported after each of its transactions to the
/// callback of [`Migration::on_progress`](crate::Migration::on_progress).
///
/// `done` and `total` count rows of the view's table, tombstones included (a tombstone
/// has no value to convert and is passed over); `done == total` in the last report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationProgress {
    /// The view's name.
    pub view: String,
    /// The schema version its records were stored at.
    pub from: u32,
    /// The schema version they are converted to.
    pub to: u32,
    /// Rows converted or passed so far, over every run of the migration (a resumed one
    /// starts from where the last stopped).
    pub done: u64,
    /// Rows of the view's table.
    pub total: u64,
}

impl fmt::Display for MigrationProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "migrating '{}' from schema version {} to {}: {} of {} records",
            self.view, self.from, self.to, self.done, self.total
        )
    }
}
