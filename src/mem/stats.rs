//! What [`Store::stats`](crate::Store::stats) reports: per view, records, tombstones
//! and an estimate of resident memory (records, values, each secondary index); for the
//! store, the writer's figures, its queue and the file's size. `Display` prints it as a
//! table.

use crate::base::histogram::{Row, Unit};
use crate::base::index_kind::IndexKind;
use crate::base::version::Lsn;
use crate::base::writer_stats::{QueueStats, WriterStats};
use std::fmt;

/// Figures about one secondary index of an open view.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexStats {
    /// The index's name.
    pub name: String,
    /// Unique or multi.
    pub kind: IndexKind,
    /// Entries held in memory: one per (index key, record) pair.
    pub entries: usize,
    /// Bytes of the index's resident structures: its ordered leaves (a 32-byte index key
    /// and a 16-byte primary key per entry, with a leaf header per 64 to 128 entries)
    /// and, for a unique index, its hash table (a 64-byte slot per entry: index key,
    /// primary key, version, value pointer; the bucket directory). Index keys over 30
    /// bytes and primary keys over 14 bytes have an allocation of their own, not counted.
    pub bytes: usize,
}

/// Figures about one open view, from [`Store::stats`](crate::Store::stats).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ViewStats {
    /// The view's name.
    pub name: String,
    /// Live records held in memory.
    pub records: usize,
    /// Tombstones in the file (deleted records kept until
    /// [`purge_tombstones`](crate::View::purge_tombstones)); exact, counted at open and
    /// kept up to date by every group, never by a scan. Tombstones are not in memory.
    pub tombstones: u64,
    /// Bytes of the view's two record structures (not its secondary indexes, see
    /// [`indexes`](ViewStats::indexes)): the point index's bucket directory, bucket
    /// headers and 32-byte slots (key, version, value pointer), and the ordered index's
    /// leaf array and 32-byte items (key, version, value pointer). Computed from the structures'
    /// sizes, without the allocator's rounding and per-allocation headers.
    pub index_bytes: usize,
    /// Bytes of the values' own allocations: records × (`size_of::<V>()` + the two
    /// reference counts of an `Arc`). Heap data that a value owns (the bytes of a
    /// `String` field, the elements of a `Vec`) is not seen by the layer and not
    /// counted: measure the process to see it (`examples/memory.rs`).
    pub value_bytes: usize,
    /// Each secondary index, in declaration order.
    pub indexes: Vec<IndexStats>,
}

impl ViewStats {
    /// Bytes of the view's secondary indexes, all together.
    pub fn secondary_index_bytes(&self) -> usize {
        self.indexes.iter().map(|i| i.bytes).sum()
    }

    /// `index_bytes + value_bytes + secondary_index_bytes()`: the layer's estimate of
    /// the view's resident memory, a lower bound (see the fields).
    pub fn resident_bytes(&self) -> usize {
        self.index_bytes + self.value_bytes + self.secondary_index_bytes()
    }
}

/// Figures about an open store, from [`Store::stats`](crate::Store::stats). Its
/// `Display` prints them as a table.
///
/// # Examples
///
/// ```
/// use viewstore::{Store, ViewDef};
///
/// const NAMES: ViewDef<u64, String> = ViewDef::new("names");
///
/// # let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path().join("views.redb"))?;
/// let names = store.view(&NAMES)?;
/// names.put(&1, "ada".to_string(), 1)?;
/// names.delete(&1, 2)?;
/// let stats = store.stats();
/// assert_eq!(stats.writer.outcomes.applied, 2);
/// assert_eq!(stats.writer.outcomes.deleted, 1);
/// assert_eq!(stats.views[0].tombstones, 1);
/// println!("{stats}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The LSN of the latest visible group.
    pub lsn: Lsn,
    /// The LSN of the latest group known to be on disk.
    pub durable_lsn: Lsn,
    /// One entry per open view, at [`lsn`](Stats::lsn).
    pub views: Vec<ViewStats>,
    /// The writer's figures since the store opened.
    pub writer: WriterStats,
    /// The writer's queue now.
    pub queue: QueueStats,
    /// The file's length in bytes (the storage backend's, for a store opened on one);
    /// `None` when it could not be read.
    pub file_bytes: Option<u64>,
}

impl Stats {
    /// The estimated resident memory of every open view, all together.
    pub fn resident_bytes(&self) -> usize {
        self.views.iter().map(ViewStats::resident_bytes).sum()
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file_bytes.map_or_else(|| "unknown".to_owned(), |b| b.to_string());
        writeln!(
            f,
            "lsn {}  durable {}  file {file} bytes",
            self.lsn.get(),
            self.durable_lsn.get()
        )?;
        let q = &self.queue;
        writeln!(
            f,
            "queue     {}/{} queued  {} blocked  {} async waiting",
            q.queued, q.capacity, q.blocked_submitters, q.waiting_async_submitters
        )?;
        let w = &self.writer;
        writeln!(f, "groups    {} committed  {} failed", w.groups, w.failed_groups)?;
        writeln!(f, "batches   {}", Row(&w.batches_per_group, Unit::Count))?;
        writeln!(f, "writes    {}", Row(&w.writes_per_group, Unit::Count))?;
        writeln!(f, "commit    {}", Row(&w.commit_latency, Unit::Nanos))?;
        writeln!(f, "sync      {}", Row(&w.sync_latency, Unit::Nanos))?;
        let o = &w.outcomes;
        writeln!(
            f,
            "outcomes  applied {} (deleted {})  stale {}  conflict {}  unchanged {}  \
             tombstoned {}  redelivered {}  purges {} ({} tombstones)  failed batches {}",
            o.applied,
            o.deleted,
            o.stale,
            o.conflict,
            o.unchanged,
            o.tombstoned,
            o.redelivered,
            o.purges,
            o.purged_tombstones,
            o.failed_batches
        )?;
        writeln!(
            f,
            "{:<20} {:>10} {:>10} {:>12} {:>12} {:>12} {:>12}",
            "view", "records", "tombstones", "records B", "values B", "indexes B", "total B"
        )?;
        for v in &self.views {
            writeln!(
                f,
                "{:<20} {:>10} {:>10} {:>12} {:>12} {:>12} {:>12}",
                v.name,
                v.records,
                v.tombstones,
                v.index_bytes,
                v.value_bytes,
                v.secondary_index_bytes(),
                v.resident_bytes()
            )?;
            for i in &v.indexes {
                let kind = match i.kind {
                    IndexKind::Unique => "unique",
                    IndexKind::Multi => "multi",
                };
                writeln!(
                    f,
                    "  {:<18} {:>10} {:<10} {:>12} {:>12} {:>12}",
                    i.name, i.entries, kind, "", "", i.bytes
                )?;
            }
        }
        Ok(())
    }
}
