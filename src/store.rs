//! `Store`: open, close, view handles, submit, snapshots.

use crate::batch::Batch;
use crate::codec::Codec;
use crate::config::{Config, StoreBuilder};
use crate::error::{Error, Result};
use crate::recovery::open_database;
use crate::resident::{Published, Root, Snapshot, Stats};
use crate::verify::VerifyReport;
use crate::version::{Lsn, Receipt};
use crate::view::{
    TypedRegistration, View, ViewDef, ViewKey, ViewValue, check_index_names, check_view_name,
};
use crate::writer::ticket::{self, Ticket};
use crate::writer::{Request, Writer};
use crossbeam_channel::{Sender, TrySendError};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

/// Whether writes are still accepted. Submitters hold the read lock while they enqueue,
/// so that once `close` (or the dying writer) takes the write lock, no batch can slip
/// into the queue behind the writer's back.
#[derive(Default)]
struct Gate {
    closed: bool,
    poisoned: Option<String>,
}

struct Inner {
    id: u64,
    config: Config,
    published: Arc<Published>,
    tx: Sender<Request>,
    gate: Arc<RwLock<Gate>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    writer_thread: std::thread::ThreadId,
    /// The file's path, shared with every ticket's error path without a copy.
    file: Arc<Path>,
}

/// An open viewstore: one redb file holding many views, one writer thread, and every
/// live record in memory.
///
/// Cheap to clone (`Arc` inside), `Send + Sync`. The store closes when its last clone
/// (including the clones inside [`View`] handles) is dropped, or at [`Store::close`].
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
    inner: Arc<Inner>,
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
        let (db, lsn) = open_database(&config)?;
        let published = Arc::new(Published::new(Arc::new(Root { lsn, views: Vec::new() })));
        let (tx, rx) = crossbeam_channel::bounded(config.queue_capacity);
        let gate = Arc::new(RwLock::new(Gate::default()));
        let writer = Writer::new(db, config.clone(), Arc::clone(&published));
        let thread_gate = Arc::clone(&gate);
        let thread_file = config.path.clone();
        let thread = std::thread::Builder::new()
            .name("viewstore-writer".into())
            .spawn(move || {
                let outcome = catch_unwind(AssertUnwindSafe(|| writer.run(&rx)));
                let poisoned = match outcome {
                    Ok(poisoned) => poisoned,
                    Err(payload) => Some(format!(
                        "the writer thread panicked: {}",
                        payload
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| payload.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "non-string panic payload".into())
                    )),
                };
                shut_gate(&thread_gate, &rx, &thread_file, poisoned);
            })
            .map_err(|e| Error::Io { file: config.path.clone(), source: Arc::new(e) })?;
        let file: Arc<Path> = Arc::from(config.path.as_path());
        Ok(Store {
            inner: Arc::new(Inner {
                id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
                config,
                published,
                tx,
                gate,
                writer_thread: thread.thread().id(),
                file,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }
}

/// Closes the gate once the writer is gone and fails whatever is still queued, so that
/// no ticket waits forever: with [`Error::Poisoned`] when the writer stopped on a
/// failure, [`Error::Closed`] otherwise. Drains before taking the lock: a submitter
/// blocked on a full queue holds the read lock until its batch fits.
fn shut_gate(
    gate: &RwLock<Gate>,
    rx: &crossbeam_channel::Receiver<Request>,
    file: &Path,
    poisoned: Option<String>,
) {
    let error = match &poisoned {
        Some(reason) => Error::Poisoned { file: file.to_owned(), reason: reason.clone() },
        None => Error::Closed,
    };
    let drain = || {
        while let Ok(request) = rx.try_recv() {
            fail_request(request, &error);
        }
    };
    loop {
        drain();
        let mut g = match gate.try_write() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        g.closed = true;
        if g.poisoned.is_none() {
            g.poisoned = poisoned;
        }
        drop(g);
        drain();
        return;
    }
}

/// Answers a request the writer will never handle.
fn fail_request(request: Request, error: &Error) {
    match request {
        Request::Batch { done, .. } => done.complete(Err(error.clone())),
        Request::Register { reply, .. } => {
            let _ = reply.send(Err(error.clone()));
        }
        Request::Verify { reply } => {
            let _ = reply.send(Err(error.clone()));
        }
        Request::Shutdown { reply } => {
            let _ = reply.send(());
        }
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

    /// Opens a view: registers it on first use (recording its types and schema version)
    /// and loads its records into memory, or checks that they match what is stored.
    /// Call it once per view and clone the handle.
    ///
    /// # Errors
    ///
    /// [`Error::SchemaMismatch`] when the view is stored with other key or value types,
    /// codec or schema version (nothing is written); [`Error::InvalidViewName`];
    /// [`Error::Decode`] naming the key of a stored record that does not decode;
    /// [`Error::Closed`].
    pub fn view<K, V, C>(&self, def: &ViewDef<K, V, C>) -> Result<View<K, V, C>>
    where
        K: ViewKey,
        V: ViewValue,
        C: Codec<V> + Clone,
    {
        check_view_name(def.name())?;
        check_index_names(def.name(), def.indexes().iter().map(|i| i.index_name()))?;
        let registration = TypedRegistration::<K, V, C> {
            name: def.name(),
            meta: def.meta(),
            codec: def.codec().clone(),
            indexes: def.indexes(),
            _types: PhantomData,
        };
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Request::Register { registration: Box::new(registration), reply })?;
        let id = answer.recv().map_err(|_| self.gone_error())??;
        Ok(View::new(self.clone(), id, def.name(), def.codec().clone()))
    }

    /// The error for a request the writer dropped unanswered: with the gate still open,
    /// the writer died holding it.
    fn gone_error(&self) -> Error {
        let file = &self.inner.config.path;
        gate_error(&self.inner.gate, file).unwrap_or_else(|| writer_stopped(file))
    }

    /// Refuses calls made on the writer thread (from an update closure, extractor or
    /// codec), which would wait for the writer that is running them.
    fn check_not_writer(&self) -> Result<()> {
        if std::thread::current().id() == self.inner.writer_thread {
            return Err(Error::WriterReentry { file: self.inner.config.path.clone() });
        }
        Ok(())
    }

    fn send(&self, request: Request) -> Result<()> {
        self.check_not_writer()?;
        let gate = self.inner.gate.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = gate_state_error(&gate, &self.inner.config.path) {
            return Err(e);
        }
        self.inner.tx.send(request).map_err(|_| self.gone_error_locked(&gate))
    }

    fn gone_error_locked(&self, gate: &Gate) -> Error {
        gate_state_error(gate, &self.inner.config.path).unwrap_or(Error::Closed)
    }

    fn request(&self, batch: Batch) -> Result<(Ticket, Request)> {
        if let Some(store) = batch.store
            && store != self.inner.id
        {
            return Err(Error::ForeignView { view: "(a view of another store)".into() });
        }
        let gate = Arc::clone(&self.inner.gate);
        let file = Arc::clone(&self.inner.file);
        // A completer dropped while the gate is still open means the writer died with
        // this batch in hand (a panic unwinding through it).
        let (ticket, done) = ticket::pair(Box::new(move || {
            gate_error(&gate, &file).unwrap_or_else(|| writer_stopped(&file))
        }));
        Ok((ticket, Request::Batch { ops: batch.ops, bytes: batch.bytes, done }))
    }

    /// Queues `batch` for the writer and returns its [`Ticket`]. Blocks while the queue
    /// is full (backpressure).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`close`](Store::close); [`Error::Poisoned`] after the
    /// writer failed for good; [`Error::ForeignView`] for a batch built with views of
    /// another store.
    pub fn submit(&self, batch: Batch) -> Result<Ticket> {
        if batch.is_empty() {
            self.check_open()?;
            return Ok(Ticket::ready(Ok(Receipt { lsn: self.lsn(), outcomes: Vec::new() })));
        }
        let (ticket, request) = self.request(batch)?;
        self.send(request)?;
        Ok(ticket)
    }

    /// Like [`submit`](Store::submit), but never blocks: a full queue gives
    /// [`Error::Full`] and the batch is dropped.
    pub fn try_submit(&self, batch: Batch) -> Result<Ticket> {
        if batch.is_empty() {
            return self.submit(batch);
        }
        self.check_not_writer()?;
        let (ticket, request) = self.request(batch)?;
        let gate = self.inner.gate.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = gate_state_error(&gate, &self.inner.config.path) {
            return Err(e);
        }
        match self.inner.tx.try_send(request) {
            Ok(()) => Ok(ticket),
            Err(TrySendError::Full(_)) => Err(Error::Full),
            Err(TrySendError::Disconnected(_)) => Err(self.gone_error_locked(&gate)),
        }
    }

    fn check_open(&self) -> Result<()> {
        match gate_error(&self.inner.gate, &self.inner.config.path) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The LSN of the latest group visible to readers.
    pub fn lsn(&self) -> Lsn {
        self.inner.published.load().lsn
    }

    /// Blocks until the group with `lsn` (or a later one) is visible to readers: read
    /// your writes from another thread than the one that got the acknowledgement.
    pub fn wait_for(&self, lsn: Lsn) {
        self.inner.published.wait_for(lsn, None);
    }

    /// Like [`wait_for`](Store::wait_for) with a time limit; returns whether `lsn` was
    /// reached.
    pub fn wait_for_timeout(&self, lsn: Lsn, timeout: Duration) -> bool {
        self.inner.published.wait_for(lsn, Some(timeout))
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

    /// Record counts per open view, at the latest committed LSN.
    pub fn stats(&self) -> Stats {
        let root = self.inner.published.load();
        Stats { lsn: root.lsn, views: root.view_stats() }
    }

    /// Every view at the latest committed LSN.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot { root: self.inner.published.load_full(), store: self.inner.id }
    }

    /// Commits what is queued, stops the writer and waits for it. Reads keep working on
    /// every handle; writes get [`Error::Closed`]. Calling it again does nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] when the writer had already failed.
    pub fn close(&self) -> Result<()> {
        self.inner.shutdown();
        let gate = self.inner.gate.read().unwrap_or_else(PoisonError::into_inner);
        match &gate.poisoned {
            Some(reason) => Err(Error::Poisoned {
                file: self.inner.config.path.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }
}

fn writer_stopped(file: &Path) -> Error {
    Error::Poisoned {
        file: file.to_owned(),
        reason: "the writer stopped before answering this request".into(),
    }
}

fn gate_state_error(gate: &Gate, file: &Path) -> Option<Error> {
    if let Some(reason) = &gate.poisoned {
        return Some(Error::Poisoned { file: file.to_owned(), reason: reason.clone() });
    }
    gate.closed.then_some(Error::Closed)
}

fn gate_error(gate: &RwLock<Gate>, file: &Path) -> Option<Error> {
    let gate = gate.read().unwrap_or_else(PoisonError::into_inner);
    gate_state_error(&gate, file)
}

impl Inner {
    /// Closes the gate, lets the writer commit what is queued, and joins it.
    fn shutdown(&self) {
        // An update closure that owns a handle can drop the store's last one on the
        // writer thread, which cannot wait for itself: there the gate is closed and the
        // writer told to stop, without waiting. It still commits what is queued first.
        let on_writer = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|h| h.thread().id() == std::thread::current().id());
        if on_writer {
            let mut gate = self.gate.write().unwrap_or_else(PoisonError::into_inner);
            if !gate.closed {
                gate.closed = true;
                let (reply, _) = crossbeam_channel::bounded(1);
                // With a full queue this is refused, which is fine: dropping the last
                // handle disconnects the queue, and a later shutdown asks again.
                let _ = self.tx.try_send(Request::Shutdown { reply });
            }
            return;
        }
        {
            let mut gate = self.gate.write().unwrap_or_else(PoisonError::into_inner);
            // Closed from the writer thread, the writer may have found no room for its
            // Shutdown: until it is joined, ask again (a stopped writer refuses at once).
            let running = self.thread.lock().unwrap_or_else(PoisonError::into_inner).is_some();
            if !gate.closed || running {
                gate.closed = true;
                let (reply, done) = crossbeam_channel::bounded(1);
                if self.tx.send(Request::Shutdown { reply }).is_ok() {
                    drop(gate);
                    // A writer that stops on its own just after the send (its last drain
                    // done, its queue not yet dropped) never answers: stop waiting once
                    // its thread has ended.
                    while done.recv_timeout(Duration::from_millis(20))
                        == Err(crossbeam_channel::RecvTimeoutError::Timeout)
                    {
                        let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
                        if thread.as_ref().is_none_or(std::thread::JoinHandle::is_finished) {
                            break;
                        }
                    }
                }
            }
        }
        if let Some(handle) = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}
