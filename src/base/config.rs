//! Store options and durability modes.

use crate::base::feed::FeedRetention;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// When an acknowledgement is given, relative to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Every group is fsynced before any of its batches is acknowledged: an
    /// acknowledged write survives a crash or power loss. Default.
    Immediate,
    /// Groups are acknowledged after they are committed and visible, and made durable at
    /// most `interval` later (the writer also syncs when it goes idle past the interval).
    /// A crash or power loss may lose the writes acknowledged in the last `interval`,
    /// always whole groups, never corrupting the file.
    Periodic {
        /// The longest time an acknowledged group may stay unsynced.
        interval: Duration,
    },
    /// Every group is appended to a checksummed write-ahead log and synced
    /// (`fdatasync`) before any of its batches is acknowledged: an acknowledged write
    /// survives a crash or power loss, as with `Immediate`, at the cost of one
    /// sequential append and one sync per group instead of a redb commit with its
    /// random page writes.
    ///
    /// The log is the file `<store file>.journal` beside the store file (or the backend
    /// given to [`StoreBuilder::journal_backend`]): in this mode a store is two files,
    /// and both must be kept together. Each log record holds what its group wrote (the
    /// bytes of each record and index entry, source positions, the change-feed row,
    /// the LSN), never closures, with a CRC-32C checksum. The store file takes the
    /// groups into one redb transaction kept open between checkpoints; a
    /// **checkpoint** (that transaction committed with a sync) makes them durable there
    /// and starts the log over from its beginning, once it holds
    /// [`StoreBuilder::journal_limit`] bytes, once the oldest group not yet
    /// checkpointed is [`StoreBuilder::checkpoint_interval`] old, before a request that
    /// uses a transaction of its own (a new view, `verify`, a backup, view management,
    /// a bulk load), and at `close`, which also empties the log. A group that would
    /// take the log past its limit waits for that checkpoint (backpressure), so the log
    /// stays bounded.
    ///
    /// Opening the store replays the log's groups above the LSN the store file holds,
    /// in one synced transaction. A torn or damaged *last* record (a crash or power loss
    /// during its append) ends the replay: it was never acknowledged; so does a record
    /// of a group not above the one before it, left from before a checkpoint. A damaged record followed by a valid, later one is
    /// [`Error::JournalCorrupt`](crate::Error::JournalCorrupt), naming the log file and
    /// the offset, and nothing is changed. Replays are idempotent: a crash during one
    /// is repaired by the next open.
    ///
    /// A failed append or sync of the log turns the store read-only
    /// ([`Error::Poisoned`](crate::Error::Poisoned) for later writes): after a failed
    /// sync nothing can say what the disk holds. The group it was for gets the error
    /// and is not acknowledged; it may or may not be present after a reopen, whole or
    /// not at all.
    Journal,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) path: PathBuf,
    pub(crate) durability: Durability,
    pub(crate) queue_capacity: usize,
    pub(crate) max_batch_ops: usize,
    pub(crate) max_batch_bytes: usize,
    pub(crate) max_linger: Duration,
    pub(crate) check_integrity: bool,
    /// `None`: the default of the durability mode ([`Config::cache_size`]).
    pub(crate) cache_size: Option<usize>,
    pub(crate) backend: Option<Arc<dyn redb::StorageBackend>>,
    pub(crate) index_progress: Option<ProgressFn>,
    pub(crate) feed_retention: FeedRetention,
    pub(crate) journal_limit: u64,
    pub(crate) checkpoint_interval: Duration,
    pub(crate) journal_backend: Option<Arc<dyn redb::StorageBackend>>,
    pub(crate) replica: bool,
}

impl Config {
    /// The size of redb's page cache: the one set, or the default of the durability
    /// mode (see [`StoreBuilder::cache_size`]).
    pub(crate) fn cache_size(&self) -> usize {
        match (self.cache_size, self.durability) {
            (Some(bytes), _) => bytes,
            (None, Durability::Journal) => 64 << 20,
            (None, _) => 4 << 20,
        }
    }
}

/// The default [`StoreBuilder::journal_limit`]: 64 MiB.
pub const DEFAULT_JOURNAL_LIMIT: u64 = 64 << 20;

/// The default [`StoreBuilder::checkpoint_interval`]: one second.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// How far an index build has come, as reported to
/// [`StoreBuilder::on_index_build`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexProgress {
    /// The view.
    pub view: String,
    /// The index being built.
    pub index: String,
    /// Records processed so far.
    pub done: u64,
    /// Records in the view.
    pub total: u64,
}

#[derive(Clone)]
pub(crate) struct ProgressFn(pub(crate) Arc<dyn Fn(&IndexProgress) + Send + Sync>);

impl std::fmt::Debug for ProgressFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressFn")
    }
}

/// Options for opening a [`Store`](crate::Store); made by
/// [`Store::builder`](crate::Store::builder).
///
/// Each setter returns the builder (the type is `#[must_use]`, so a setter's result
/// cannot be dropped by mistake), and its documentation gives the default.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use viewstore::{Durability, Store};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::builder(dir.path().join("views.redb"))
///     .durability(Durability::Immediate)
///     .queue_capacity(1024)
///     .max_linger(Duration::from_micros(200))
///     .open()?;
/// store.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a StoreBuilder does nothing until `open` is called"]
pub struct StoreBuilder {
    pub(crate) config: Config,
}

impl StoreBuilder {
    pub(crate) fn new(path: PathBuf) -> Self {
        StoreBuilder {
            config: Config {
                path,
                durability: Durability::Immediate,
                queue_capacity: 16_384,
                max_batch_ops: 10_000,
                max_batch_bytes: 32 << 20,
                max_linger: Duration::ZERO,
                check_integrity: true,
                cache_size: None,
                backend: None,
                index_progress: None,
                feed_retention: FeedRetention::default(),
                journal_limit: DEFAULT_JOURNAL_LIMIT,
                checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
                journal_backend: None,
                replica: false,
            },
        }
    }

    /// When writes are acknowledged relative to the disk. Default = [`Durability::Immediate`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.config.durability = durability;
        self
    }

    /// How many submitted batches may wait for the writer before `submit` blocks and
    /// `try_submit` returns [`Error::Full`](crate::Error::Full). Default = 16,384, at
    /// least 1. The default leaves room for a full group of one-write batches (see
    /// [`max_batch_ops`](Self::max_batch_ops)) to queue while another commits; a smaller
    /// queue caps groups of small batches at its size.
    pub fn queue_capacity(mut self, batches: usize) -> Self {
        self.config.queue_capacity = batches.max(1);
        self
    }

    /// The most operations the writer commits in one group (one redb transaction); a
    /// single larger batch still commits whole, alone. Default = 10,000.
    pub fn max_batch_ops(mut self, ops: usize) -> Self {
        self.config.max_batch_ops = ops.max(1);
        self
    }

    /// The most encoded bytes (keys and values) the writer commits in one group.
    /// Default = 32 MiB.
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.config.max_batch_bytes = bytes.max(1);
        self
    }

    /// How long the writer waits for more batches once the queue is empty, to make a
    /// larger group. Default = 0 (commit what is queued at once).
    pub fn max_linger(mut self, linger: Duration) -> Self {
        self.config.max_linger = linger;
        self
    }

    /// Whether opening runs redb's integrity check (every page checksum verified).
    /// Default = true. Turning it off speeds up opening large files; a file altered
    /// behind redb's back is then not detected at open.
    pub fn check_integrity(mut self, check: bool) -> Self {
        self.config.check_integrity = check;
        self
    }

    /// Called while an index is built (a new index, or one whose definition version
    /// changed), with the records done so far, every 10,000 records and at the end.
    /// Builds happen when a view is opened, before it serves. Default = none.
    pub fn on_index_build(
        mut self,
        report: impl Fn(&IndexProgress) + Send + Sync + 'static,
    ) -> Self {
        self.config.index_progress = Some(ProgressFn(Arc::new(report)));
        self
    }

    /// The size of redb's page cache, in bytes. Default = 4 MiB, or 64 MiB in
    /// [`Durability::Journal`]. Reads are served by the resident layer, so the cache only
    /// speeds up the writer (version checks and B-tree updates on the file); pages that
    /// miss are read through the operating system's page cache. redb's own default of
    /// 1 GiB would keep most of a large file in memory a second time, in encoded form,
    /// once it has been loaded. Raise it for stores that take many random writes to a
    /// large file. In journal mode the groups since the last checkpoint wait in one open
    /// transaction whose changed pages are held in half of this cache; past that, they
    /// are written to the file early and read back when changed again.
    pub fn cache_size(mut self, bytes: usize) -> Self {
        self.config.cache_size = Some(bytes);
        self
    }

    /// Stores the database in `backend`, a
    /// [`viewstore::redb::StorageBackend`](crate::redb::StorageBackend), instead of the
    /// file at the builder's path (which then only names the store in errors). For
    /// in-memory stores (`viewstore::redb::backends::InMemoryBackend`) and for tests that
    /// inject I/O faults. Default = the file.
    pub fn backend(mut self, backend: Arc<dyn redb::StorageBackend>) -> Self {
        self.config.backend = Some(backend);
        self
    }

    /// How much of the change feed to keep (see
    /// [`ViewDef::with_feed`](crate::ViewDef::with_feed)). Default =
    /// [`FeedRetention::default`]: 64 MiB.
    pub fn feed_retention(mut self, retention: FeedRetention) -> Self {
        self.config.feed_retention = retention;
        self
    }
}

impl StoreBuilder {
    /// With [`Durability::Journal`], the size the log may reach before the writer
    /// checkpoints (a synced redb commit) and starts it over; a group waits for that
    /// checkpoint. It bounds the log file, the replay at open, and the memory redb holds
    /// for groups not yet checkpointed. Default = [`DEFAULT_JOURNAL_LIMIT`] (64 MiB), at
    /// least 1 byte. Ignored in the other modes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use viewstore::{Durability, Store};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::builder(dir.path().join("views.redb"))
    ///     .durability(Durability::Journal)
    ///     .journal_limit(16 << 20)
    ///     .checkpoint_interval(Duration::from_millis(500))
    ///     .open()?;
    /// assert!(dir.path().join("views.redb.journal").exists());
    /// store.close()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn journal_limit(mut self, bytes: u64) -> Self {
        self.config.journal_limit = bytes.max(1);
        self
    }

    /// Opens the store as a replica of another: it takes only groups replicated from
    /// its primary's change feed ([`Replicator`](crate::Replicator)), each at the LSN it
    /// has there, so that it goes through the same states at the same LSNs; an ordinary
    /// batch (a write, a projector's) fails with [`Error::Replication`] and writes
    /// nothing. Opening the same file without this option promotes it: it then takes
    /// ordinary writes and numbers its groups on from the last replicated LSN.
    /// Default = `false`.
    ///
    /// [`Error::Replication`]: crate::Error::Replication
    pub fn replica(mut self, replica: bool) -> Self {
        self.config.replica = replica;
        self
    }

    /// With [`Durability::Journal`], how long a group may stay in the log only before
    /// a checkpoint writes it durably to the store file (an idle writer checkpoints at
    /// that deadline too). Default = [`DEFAULT_CHECKPOINT_INTERVAL`] (1 s). Ignored in
    /// the other modes.
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.config.checkpoint_interval = interval;
        self
    }

    /// With [`Durability::Journal`], keeps the log in `backend` instead of the file
    /// `<path>.journal`; for in-memory stores and for tests that inject I/O faults into
    /// the log. Default = the file.
    pub fn journal_backend(mut self, backend: Arc<dyn redb::StorageBackend>) -> Self {
        self.config.journal_backend = Some(backend);
        self
    }
}

/// Lets a shared backend be handed to redb, which takes its backend by value.
#[derive(Debug)]
pub(crate) struct SharedBackend(pub(crate) Arc<dyn redb::StorageBackend>);

impl redb::StorageBackend for SharedBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.0.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.0.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.0.write(offset, data)
    }
    fn close(&self) -> Result<(), std::io::Error> {
        self.0.close()
    }
}

#[cfg(test)]
mod tests {
    use super::StoreBuilder;

    #[test]
    fn the_default_queue_holds_a_full_group_of_one_write_batches() {
        // Groups of one-write batches can only reach `max_batch_ops` if that many
        // batches can wait in the queue.
        let config = StoreBuilder::new("unused.redb".into()).config;
        assert!(config.queue_capacity >= config.max_batch_ops);
    }

    #[test]
    fn journal_mode_defaults_to_a_larger_page_cache_and_a_set_size_wins() {
        use super::Durability;
        let cache = |b: StoreBuilder| b.config.cache_size();
        let builder = || StoreBuilder::new("unused.redb".into());
        assert_eq!(cache(builder()), 4 << 20);
        assert_eq!(cache(builder().durability(Durability::Journal)), 64 << 20);
        assert_eq!(cache(builder().durability(Durability::Journal).cache_size(1 << 20)), 1 << 20);
        assert_eq!(cache(builder().cache_size(8 << 20)), 8 << 20);
    }
}
