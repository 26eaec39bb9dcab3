//! `Store`: open, close, view handles, submit, snapshots.

use crate::base::config::{Config, StoreBuilder};
use crate::base::error::{Error, Result};
use crate::base::instrument;
use crate::base::version::Lsn;
use crate::base::writer_stats::WriterFigures;
use crate::engine::inbox::{Inbox, Refusal, Refused};
use crate::engine::joiner::{Finished, WriterThread};
use crate::engine::report::VerifyReport;
use crate::engine::ticket::writer_stopped;
use crate::engine::writer::{Request, Writer, resident};
use crate::mem::feed_log::FeedLog;
use crate::mem::lsn_watch::Ended;
use crate::mem::{Published, Root, Snapshot, Stats};
use crate::schema::names::check_source_name;
use crate::storage::feed::read_feed;
use crate::storage::journal::replay::open_journal;
use crate::storage::open::open_database;
use crate::storage::positions::read_positions;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct Inner {
    pub(crate) id: u64,
    pub(crate) config: Config,
    pub(crate) published: Arc<Published>,
    /// The writer's queue and the gate that closes it.
    pub(crate) inbox: Arc<Inbox<Request>>,
    pub(crate) writer: WriterThread,
    /// The file's path, shared with every ticket's error path without a copy.
    pub(crate) file: Arc<Path>,
    /// The change feed in memory.
    pub(crate) feed: Arc<FeedLog>,
    /// What the writer counts, for `stats`.
    pub(crate) figures: Arc<WriterFigures>,
}

/// An open viewstore: one redb file holding many views, one writer thread, and every
/// live record in memory.
///
/// Cheap to clone (`Arc` inside), `Send + Sync`. The store closes when its last clone
/// (including the clones inside [`View`](crate::View) handles) is dropped, or at [`Store::close`].
///
/// # Examples
///
/// ```
/// use viewstore::{Store, ViewDef};
///
/// const PAGES: ViewDef<u64, String> = ViewDef::new("pages");
///
/// # let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path().join("views.redb"))?;
/// let pages = store.view(&PAGES)?;
/// pages.put(&1, "<h1>ada</h1>".to_string(), 1)?;
/// assert_eq!(pages.get(&1).as_deref().map(String::as_str), Some("<h1>ada</h1>"));
/// store.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("file", &self.inner.config.path)
            .field("lsn", &self.lsn())
            .finish_non_exhaustive()
    }
}

impl StoreBuilder {
    /// Opens the store, creating the file if it does not exist.
    ///
    /// # Errors
    ///
    /// [`Error::NotAStore`] for a file that is not a viewstore, [`Error::NewerFormat`]
    /// for one written by a newer format version (both left untouched), and
    /// [`Error::Storage`] when redb cannot open it or its integrity check fails.
    pub fn open(self) -> Result<Store> {
        let config = self.config;
        let figures = Arc::new(WriterFigures::default());
        let (db, lsn) = open_database(&config, &figures.sync_latency)?;
        let (lsn, journal) = open_journal(&db, &config, lsn)?;
        let positions = resident(read_positions(&db, &config.path)?);
        let (groups, pruned) = read_feed(&db, &config.path)?;
        let feed = Arc::new(FeedLog::new(groups, pruned, lsn));
        let root = Root { lsn, views: Vec::new(), positions };
        let published = Arc::new(Published::new(Arc::new(root)));
        let inbox = Arc::new(Inbox::new(config.queue_capacity));
        let writer = Writer::new(
            db,
            journal,
            config.clone(),
            Arc::clone(&published),
            Arc::clone(&feed),
            Arc::clone(&figures),
        );
        let thread_inbox = Arc::clone(&inbox);
        let thread_file = config.path.clone();
        let finished = Arc::new(Finished::new());
        let at_end = AtEnd {
            published: Arc::clone(&published),
            finished: Arc::clone(&finished),
            feed: Arc::clone(&feed),
        };
        let thread = std::thread::Builder::new()
            .name("viewstore-writer".into())
            .spawn(move || {
                // Dropped last, even by a panic past the writer loop's.
                let _at_end = at_end;
                let outcome = catch_unwind(AssertUnwindSafe(|| writer.run(&thread_inbox)));
                let poisoned = match outcome {
                    Ok(poisoned) => poisoned,
                    Err(payload) => Some(format!(
                        "the writer thread panicked: {}",
                        crate::base::panic::panic_message(payload.as_ref())
                    )),
                };
                let error = match &poisoned {
                    Some(reason) => {
                        Error::Poisoned { file: thread_file.clone(), reason: reason.clone() }
                    }
                    None => Error::Closed,
                };
                // Answered outside the inbox's lock: dropping a request runs user code.
                for request in thread_inbox.stop(poisoned) {
                    fail_request(request, &error);
                }
            })
            .map_err(|e| Error::Io { file: config.path.clone(), source: Arc::new(e) })?;
        let file: Arc<Path> = Arc::from(config.path.as_path());
        Ok(Store {
            inner: Arc::new(Inner {
                id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
                config,
                published,
                inbox,
                writer: WriterThread::new(thread, finished),
                file,
                feed,
                figures,
            }),
        })
    }
}

/// The writer thread's last step, when it returns or unwinds: nothing is published
/// after it, so LSN waits that were not reached end, and then async closers are woken.
struct AtEnd {
    published: Arc<Published>,
    finished: Arc<Finished>,
    feed: Arc<FeedLog>,
}

impl Drop for AtEnd {
    fn drop(&mut self) {
        self.published.end();
        // Nothing more will be recorded: feed readers end once they have read all.
        self.feed.close();
        self.finished.finish();
    }
}

/// Answers a request the writer will never handle.
pub(crate) fn fail_request(request: Request, error: &Error) {
    match request {
        Request::Batch { done, .. } => done.complete(Err(error.clone())),
        Request::Register { reply, .. } => {
            let _ = reply.send(Err(error.clone()));
        }
        Request::Verify { reply } => {
            let _ = reply.send(Err(error.clone()));
        }
        Request::Manage { reply, .. } => {
            let _ = reply.send(Err(error.clone()));
        }
    }
}

/// The error a closed or poisoned inbox gives, if it is one.
pub(crate) fn gate_error(inbox: &Inbox<Request>, file: &Path) -> Option<Error> {
    match inbox.status() {
        (_, Some(reason)) => Some(Error::Poisoned { file: file.to_owned(), reason }),
        (true, None) => Some(Error::Closed),
        (false, None) => None,
    }
}

/// The error for a request the inbox refused.
pub(crate) fn refusal_error(file: &Path, why: Refusal) -> Error {
    match why {
        Refusal::Full => Error::Full,
        Refusal::Closed => Error::Closed,
        Refusal::Poisoned(reason) => Error::Poisoned { file: file.to_owned(), reason },
    }
}

impl Store {
    /// A builder for opening a store at `path` with options.
    pub fn builder(path: impl Into<PathBuf>) -> StoreBuilder {
        StoreBuilder::new(path.into())
    }

    /// Opens the store at `path` with default options, creating it if needed.
    ///
    /// # Errors
    ///
    /// See [`StoreBuilder::open`].
    pub fn open(path: impl Into<PathBuf>) -> Result<Store> {
        Store::builder(path).open()
    }

    pub(crate) fn id(&self) -> u64 {
        self.inner.id
    }

    pub(crate) fn published(&self) -> Arc<Published> {
        Arc::clone(&self.inner.published)
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.inner.config.path
    }

    /// The error for a request the writer dropped unanswered: with the inbox still
    /// open, the writer died holding it.
    pub(crate) fn gone_error(&self) -> Error {
        self.gate_error().unwrap_or_else(|| writer_stopped(&self.inner.file))
    }

    /// The error a closed or poisoned store gives, if it is one.
    pub(crate) fn gate_error(&self) -> Option<Error> {
        gate_error(&self.inner.inbox, &self.inner.file)
    }

    pub(crate) fn poisoned(&self, reason: String) -> Error {
        Error::Poisoned { file: self.inner.config.path.clone(), reason }
    }

    pub(crate) fn refusal(&self, why: Refusal) -> Error {
        refusal_error(&self.inner.file, why)
    }

    /// Refuses calls made on the writer thread (from an update closure, extractor or
    /// codec), which would wait for the writer that is running them.
    pub(crate) fn check_not_writer(&self) -> Result<()> {
        if self.inner.writer.is_current() {
            return Err(Error::WriterReentry { file: self.inner.config.path.clone() });
        }
        Ok(())
    }

    pub(crate) fn send(&self, request: Request) -> Result<()> {
        self.check_not_writer()?;
        self.inner.inbox.send(request).map_err(|refused| {
            let Refused { request, why } = refused;
            drop(request);
            self.refusal(why)
        })
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        match self.gate_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The LSN of the latest group visible to readers.
    pub fn lsn(&self) -> Lsn {
        self.inner.published.load().lsn
    }

    /// The position the store has reached in `source`'s `partition`: the position of the
    /// last batch that carried one there (see
    /// [`Batch::set_position`](crate::Batch::set_position)), as readers see the store
    /// now. `None` when no batch carried one.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPosition`] for an invalid source name.
    pub fn position(&self, source: &str, partition: u32) -> Result<Option<u64>> {
        check_source_name(source)?;
        let root = self.inner.published.load();
        Ok(root.positions.get(&(Arc::from(source), partition)).copied())
    }

    /// The positions reached in every partition of `source`, by partition, in
    /// partition order. Resume a consumer from these.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPosition`] for an invalid source name.
    pub fn positions(&self, source: &str) -> Result<Vec<(u32, u64)>> {
        check_source_name(source)?;
        let root = self.inner.published.load();
        let from = (Arc::<str>::from(source), 0);
        Ok(root
            .positions
            .range(from..)
            .take_while(|((s, _), _)| &**s == source)
            .map(|((_, partition), position)| (*partition, *position))
            .collect())
    }

    /// The LSN of the latest group known to be on disk. With
    /// [`Durability::Immediate`](crate::Durability::Immediate) it is the LSN of every
    /// acknowledged group; in the periodic mode it trails [`lsn`](Store::lsn) by at most
    /// one interval (and a group acknowledged at or below it survives any crash).
    pub fn durable_lsn(&self) -> Lsn {
        self.inner.published.durable()
    }

    /// Blocks until the group with `lsn` (or a later one) is visible to readers: read
    /// your writes from another thread than the one that got the acknowledgement.
    ///
    /// It blocks the calling thread: in async code, await
    /// [`wait_for_async`](Store::wait_for_async) instead.
    ///
    /// # Errors
    ///
    /// [`Error::WriterReentry`] on the writer thread (an update closure, an extractor or
    /// a codec), where waiting for a later group would wait forever. [`Error::Closed`]
    /// (or [`Error::Poisoned`]) when the writer stops before `lsn` is published: no
    /// group will be published after that.
    pub fn wait_for(&self, lsn: Lsn) -> Result<()> {
        if self.lsn() < lsn {
            self.check_not_writer()?;
        }
        match self.inner.published.wait_for(lsn, None) {
            Ok(_) => Ok(()),
            Err(Ended(_)) => Err(self.stopped_error()),
        }
    }

    /// Like [`wait_for`](Store::wait_for) with a time limit; returns whether `lsn` was
    /// reached.
    ///
    /// # Errors
    ///
    /// As for `wait_for`.
    pub fn wait_for_timeout(&self, lsn: Lsn, timeout: Duration) -> Result<bool> {
        if self.lsn() < lsn {
            self.check_not_writer()?;
        }
        self.inner.published.wait_for(lsn, Some(timeout)).map_err(|_| self.stopped_error())
    }

    /// The error for a wait that the writer's stop ended: [`Error::Poisoned`] when it
    /// failed, [`Error::Closed`] otherwise.
    pub(crate) fn stopped_error(&self) -> Error {
        self.gate_error().unwrap_or(Error::Closed)
    }

    /// Checks every open view and index: each index recomputed from its view's records,
    /// compared with the index on disk and in memory, and each view's records in memory
    /// compared with those on disk. Runs in the writer, between groups.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the file cannot be read; [`Error::Closed`].
    pub fn verify(&self) -> Result<VerifyReport> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Request::Verify { reply })?;
        answer.recv().map_err(|_| self.gone_error())?
    }

    /// Figures for operating the store: per view at the latest visible LSN, records,
    /// tombstones and an estimate of resident memory (records, values, each secondary
    /// index); the writer's groups, group sizes, commit and sync latencies and outcome
    /// counts since the store opened; its queue now; the file's size. `Display` prints
    /// them as a table.
    ///
    /// Cheap enough to call on every scrape: it scans no table and holds no lock the
    /// writer holds while it works (the queue's lock, for a moment). The memory
    /// estimate walks each view's bucket directory, about one word per 4 to 8 records.
    /// With the `metrics` feature it also sets the per-view gauges (README, Operating).
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
    /// names.put(&1, "ada".to_string(), 1)?; // not newer: stale
    /// let stats = store.stats();
    /// assert_eq!((stats.writer.outcomes.applied, stats.writer.outcomes.stale), (1, 1));
    /// assert_eq!(stats.views[0].records, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> Stats {
        let root = self.inner.published.load();
        let file_bytes = match &self.inner.config.backend {
            Some(backend) => backend.len().ok(),
            None => std::fs::metadata(&self.inner.config.path).ok().map(|m| m.len()),
        };
        let stats = Stats {
            lsn: root.lsn,
            durable_lsn: self.inner.published.durable(),
            views: root.view_stats(),
            writer: self.inner.figures.snapshot(),
            queue: self.inner.inbox.queue_stats(),
            file_bytes,
        };
        if instrument::METRICS {
            publish_gauges(&stats);
        }
        stats
    }

    /// Every view at the latest committed LSN.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot { root: self.inner.published.load_full(), store: self.inner.id }
    }

    /// Commits what is queued, stops the writer and waits for it. Reads keep working on
    /// every handle; writes get [`Error::Closed`], and so do submits that were waiting
    /// for room in a full queue. Calling it again, or from several threads, waits for
    /// the same stop.
    ///
    /// Called on the writer thread (from an `update` closure, say), it closes the store
    /// without waiting: the writer cannot wait for itself, and stops once it has
    /// committed what is queued.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] when the writer had failed.
    pub fn close(&self) -> Result<()> {
        self.inner.shutdown();
        match self.inner.inbox.status() {
            (_, Some(reason)) => Err(self.poisoned(reason)),
            _ => Ok(()),
        }
    }
}

/// Sets the `metrics` gauges of the store and of each view from `stats`.
fn publish_gauges(stats: &Stats) {
    let queue = stats.queue;
    instrument::gauge(instrument::QUEUE_DEPTH, queue.queued as u64);
    instrument::gauge(instrument::BLOCKED_SUBMITTERS, queue.blocked_submitters as u64);
    if let Some(bytes) = stats.file_bytes {
        instrument::gauge(instrument::FILE_BYTES, bytes);
    }
    for v in &stats.views {
        instrument::view_gauge(instrument::VIEW_RECORDS, &v.name, v.records as u64);
        instrument::view_gauge(instrument::VIEW_TOMBSTONES, &v.name, v.tombstones);
        instrument::view_gauge(instrument::VIEW_MEMORY, &v.name, v.resident_bytes() as u64);
        for i in &v.indexes {
            instrument::index_gauge(&v.name, &i.name, i.bytes as u64);
        }
    }
}

/// White-box views of the writer's queue, for the crate's own tests: they let a test
/// wait until a submitter is really blocked instead of sleeping and hoping.
#[cfg(feature = "__testing")]
impl Store {
    /// How many submitters wait for room in a full queue.
    #[doc(hidden)]
    pub fn __blocked_submitters(&self) -> usize {
        self.inner.inbox.waiting_senders()
    }

    /// How many async submitters wait for room in a full queue.
    #[doc(hidden)]
    pub fn __waiting_async_submitters(&self) -> usize {
        self.inner.inbox.waiting_async_senders()
    }

    /// How many futures wait for an LSN to be published.
    #[doc(hidden)]
    pub fn __lsn_waiters(&self) -> usize {
        self.inner.published.lsn_waiters()
    }

    /// How many requests are queued for the writer.
    #[doc(hidden)]
    pub fn __queued_requests(&self) -> usize {
        self.inner.inbox.len()
    }

    /// Whether the store is closed to new writes.
    #[doc(hidden)]
    pub fn __is_closed(&self) -> bool {
        self.inner.inbox.status().0
    }
}

impl Inner {
    /// Closes the inbox, lets the writer commit what is queued, and joins it.
    /// On the writer thread (an update closure dropped the last handle) it only closes:
    /// the writer stops by itself once the queue is empty.
    fn shutdown(&self) {
        self.inbox.close();
        self.writer.join();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}
