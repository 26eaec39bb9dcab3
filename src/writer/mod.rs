//! The write-ahead batcher: one thread that takes batches from a bounded queue, commits
//! them in groups, publishes each group to the resident layer and acknowledges it.
//!
//! After a failed commit redb refuses further use of its database, so the writer
//! reopens it (through the same file or backend) and rebuilds the resident layer from
//! what is on disk. When that fails too, the writer stops and the store turns
//! read-only: `run` returns the reason, and the store answers writers with
//! `Error::Poisoned`.

pub(crate) mod apply;
pub(crate) mod inbox;
pub(crate) mod joiner;
mod load;
#[cfg(test)]
mod model_check;
pub(crate) mod ticket;

/// The synchronization primitives of the inbox and the tickets: std's here, a model
/// checker's in `model_check`, which compiles the same files again.
mod sync {
    pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
    pub(crate) use std::thread::{JoinHandle, ThreadId};

    pub(crate) fn current_thread() -> ThreadId {
        std::thread::current().id()
    }
}

use crate::batch::{Op, panic_message};
use crate::config::IndexProgress;
use crate::config::{Config, Durability};
use crate::error::{Error, Result};
use crate::format::{
    INDEXES, IndexMeta, META, META_LSN, Record, VIEWS, ViewMeta, index_meta_key, index_table,
    index_table_name, view_table, view_table_name,
};
use crate::recovery::open_database;
use crate::resident::index::composite;
use crate::resident::{Published, ResidentView, Root};
use crate::verify::{Problem, ProblemKind, VerifyReport, compare};
use crate::version::{Lsn, Receipt};
use crate::view::Registration;
use crate::view::{IndexRegistration, Loader};
use apply::{ViewInfo, apply_group};
use crossbeam_channel::Sender;
use inbox::{Inbox, Received};
use redb::{Database, ReadableTable};
use redb::{ReadableDatabase, WriteTransaction};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;
use ticket::Completer;

/// What the writer thread is asked to do.
pub(crate) enum Request {
    Batch { ops: Vec<Op>, bytes: usize, done: Completer },
    Register { registration: Box<dyn Registration>, reply: Sender<Result<usize>> },
    Verify { reply: Sender<Result<VerifyReport>> },
}

/// What the loop does after a request.
enum Step {
    Continue,
    /// Stop, with the reason to poison the store, if any.
    Stop(Option<String>),
}

/// A view registered in this process: its id, meta, and the name and meta of each index.
struct Registered {
    id: usize,
    meta: ViewMeta,
    indexes: Vec<(String, IndexMeta)>,
}

pub(crate) struct Writer {
    /// `None` only between dropping a failed database and opening it again.
    db: Option<Database>,
    config: Config,
    published: Arc<Published>,
    root: Arc<Root>,
    views: Vec<ViewInfo>,
    by_name: HashMap<String, Registered>,
    /// Every registered view, in id order: reopening reloads each of them.
    registrations: Vec<Box<dyn Registration>>,
    /// Why the writer must stop, found where it cannot return it at once.
    fatal: Option<String>,
    lsn: Lsn,
    /// When the oldest commit not yet synced to disk was made (periodic durability).
    unsynced_since: Option<Instant>,
    reclaimer: Reclaimer,
}

/// Record and index changes in a group from which, with immediate durability, the
/// next root is built on a thread of its own while the commit syncs. A smaller group's
/// root takes less time to build than a thread takes to start.
const BUILD_BESIDE_FROM: usize = 64;

/// Drops replaced roots on a thread of its own, so that freeing the parts a group
/// replaced does not hold up the next group. At most two roots wait; past that the
/// writer waits for the thread (or drops the root itself if the thread is gone).
struct Reclaimer {
    tx: Option<crossbeam_channel::Sender<Arc<Root>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reclaimer {
    fn new() -> Self {
        let (tx, rx) = crossbeam_channel::bounded::<Arc<Root>>(2);
        let thread = std::thread::Builder::new()
            .name("viewstore-reclaim".into())
            .spawn(move || rx.iter().for_each(drop))
            .ok();
        Reclaimer { tx: Some(tx), thread }
    }

    fn retire(&self, root: Arc<Root>) {
        if let Some(tx) = &self.tx
            && let Err(unsent) = tx.send(root)
        {
            drop(unsent.into_inner());
        }
    }
}

impl Drop for Reclaimer {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            // The thread only drops roots; a panic there has nothing to report.
            let _ = thread.join();
        }
    }
}

impl Writer {
    pub(crate) fn new(db: Database, config: Config, published: Arc<Published>) -> Self {
        let root = published.load_full();
        let lsn = root.lsn;
        Writer {
            db: Some(db),
            config,
            published,
            root,
            views: Vec::new(),
            by_name: HashMap::new(),
            registrations: Vec::new(),
            fatal: None,
            lsn,
            unsynced_since: None,
            reclaimer: Reclaimer::new(),
        }
    }

    /// The thread's loop: block for one request, drain what else is queued into a
    /// group, commit it, publish it, acknowledge it. Returns once the inbox is closed
    /// and empty (`None`), or with the reason the store must turn read-only.
    pub(crate) fn run(mut self, rx: &Inbox<Request>) -> Option<String> {
        let mut carried: Option<Request> = None;
        loop {
            let first = match carried.take() {
                Some(request) => request,
                None => match self.next_request(rx) {
                    Some(request) => request,
                    None if self.fatal.is_some() => return self.fatal.take(),
                    None => break,
                },
            };
            // A panic here comes from code the writer calls: a codec, a storage backend,
            // redb. Its requests are answered by their dropped completers.
            let step = catch_unwind(AssertUnwindSafe(|| self.handle(first, rx, &mut carried)));
            match step {
                Ok(Step::Continue) => {}
                Ok(Step::Stop(reason)) => return reason,
                Err(payload) => {
                    // A panic inside redb can leave its locks poisoned, and its `Drop`
                    // then panics again, which aborts the process: never drop it.
                    if let Some(db) = self.db.take() {
                        std::mem::forget(db);
                    }
                    return Some(format!(
                        "the writer panicked: {}",
                        panic_message(payload.as_ref())
                    ));
                }
            }
        }
        self.sync_if_needed(true).err()
    }

    /// Handles one request (a batch with the group it starts).
    fn handle(
        &mut self,
        request: Request,
        rx: &Inbox<Request>,
        carried: &mut Option<Request>,
    ) -> Step {
        match request {
            Request::Register { registration, reply } => {
                let result = self.register(registration);
                let failed_storage = matches!(result, Err(Error::Storage { .. }));
                let _ = reply.send(result);
                match failed_storage.then(|| self.reopen()) {
                    Some(Err(reason)) => Step::Stop(Some(reason)),
                    _ => Step::Continue,
                }
            }
            Request::Verify { reply } => {
                let _ = reply.send(self.verify());
                Step::Continue
            }
            Request::Batch { ops, bytes, done } => {
                let mut group = vec![(ops, done)];
                *carried = self.fill_group(rx, &mut group, bytes);
                match self.commit_group(group) {
                    Ok(()) => Step::Continue,
                    Err(reason) => Step::Stop(Some(reason)),
                }
            }
        }
    }

    /// Waits for the next request; with unsynced commits pending, wakes up in time to
    /// sync them. `None` once the inbox is closed and empty.
    fn next_request(&mut self, rx: &Inbox<Request>) -> Option<Request> {
        loop {
            match rx.recv(self.sync_deadline()) {
                Received::Request(request) => return Some(request),
                Received::Timeout => {
                    if let Err(reason) = self.sync_if_needed(true) {
                        self.fatal = Some(reason);
                        return None;
                    }
                }
                Received::Closed => return None,
            }
        }
    }

    /// Drains queued batches into `group` up to the group limits, lingering if
    /// configured. Returns a non-batch request met on the way, to be handled next.
    fn fill_group(
        &self,
        rx: &Inbox<Request>,
        group: &mut Vec<(Vec<Op>, Completer)>,
        mut bytes: usize,
    ) -> Option<Request> {
        let mut ops: usize = group.iter().map(|(o, _)| o.len()).sum();
        let linger_until = Instant::now() + self.config.max_linger;
        while ops < self.config.max_batch_ops && bytes < self.config.max_batch_bytes {
            let next = match rx.try_recv() {
                Some(r) => r,
                None if self.config.max_linger.is_zero() => return None,
                None => match rx.recv(Some(linger_until)) {
                    Received::Request(r) => r,
                    Received::Timeout | Received::Closed => return None,
                },
            };
            match next {
                Request::Batch { ops: o, bytes: b, done } => {
                    ops += o.len();
                    bytes += b;
                    group.push((o, done));
                }
                other => return Some(other),
            }
        }
        None
    }

    fn sync_deadline(&self) -> Option<Instant> {
        match (self.config.durability, self.unsynced_since) {
            (Durability::Periodic { interval }, Some(since)) => Some(since + interval),
            _ => None,
        }
    }

    /// Makes every commit so far durable when the periodic interval has passed (or
    /// always, with `force`). A failed sync reopens the database (the next commit
    /// retries); `Err` when that fails too.
    fn sync_if_needed(&mut self, force: bool) -> std::result::Result<(), String> {
        let Some(deadline) = self.sync_deadline() else {
            return Ok(());
        };
        if !force && Instant::now() < deadline {
            return Ok(());
        }
        let synced = self.db.as_ref().and_then(|db| {
            let mut txn = db.begin_write().ok()?;
            txn.set_durability(redb::Durability::Immediate).ok()?;
            txn.commit().ok()
        });
        if synced.is_some() {
            self.unsynced_since = None;
            self.published.set_durable(self.lsn);
            Ok(())
        } else {
            self.reopen()
        }
    }

    /// Commits a group and acknowledges each of its batches. `Err` with a reason when
    /// the commit failed and the database could not be reopened.
    fn commit_group(
        &mut self,
        group: Vec<(Vec<Op>, Completer)>,
    ) -> std::result::Result<(), String> {
        let (batches, completers): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        match self.apply_and_commit(batches) {
            Ok((lsn, results)) => {
                for (done, result) in completers.into_iter().zip(results) {
                    done.complete(result.map(|outcomes| Receipt { lsn, outcomes }));
                }
                Ok(())
            }
            Err(e) => {
                for done in completers {
                    done.complete(Err(e.clone()));
                }
                self.reopen().map_err(|reason| format!("after a failed commit ({e}): {reason}"))
            }
        }
    }

    fn db(&self) -> Result<&Database> {
        self.db.as_ref().ok_or_else(|| Error::Poisoned {
            file: self.config.path.clone(),
            reason: "the database is not open".into(),
        })
    }

    /// Drops the database and opens it again, then reloads every registered view from
    /// disk and publishes the result. `Err` when that fails, or when acknowledged
    /// periodic-mode groups were lost with the old database (the resident layer then
    /// stays as it was).
    ///
    /// A group whose commit failed may still have reached the file (its sync failed
    /// after its writes landed); it is then loaded whole, as any crash could leave it.
    fn reopen(&mut self) -> std::result::Result<(), String> {
        // The old database holds the file lock: it must be gone before opening again.
        drop(self.db.take());
        self.unsynced_since = None;
        let (db, disk_lsn) =
            open_database(&self.config).map_err(|e| format!("reopening failed: {e}"))?;
        self.db = Some(db);
        if disk_lsn < self.lsn {
            // Acknowledged groups that were not yet durable (periodic durability) went
            // with the failed database. Writing on would put later groups on disk
            // without them; stop instead, keeping them visible until the store closes.
            return Err(format!(
                "groups up to {} were acknowledged but not yet durable, and are lost on \
                 disk (the file is at {disk_lsn})",
                self.lsn
            ));
        }
        let mut views = Vec::with_capacity(self.registrations.len());
        for reg in &self.registrations {
            let (view, _, _) = self
                .load_view(reg.as_ref())
                .map_err(|e| format!("reloading view '{}' failed: {e}", reg.name()))?;
            views.push(view);
        }
        self.lsn = disk_lsn;
        self.publish(Arc::new(Root { lsn: self.lsn, views }));
        self.published.set_durable(disk_lsn);
        Ok(())
    }

    /// The one seam that makes a group durable: today a redb write transaction.
    /// Returns the group's LSN and per-batch results, or the error that failed the
    /// whole group (the resident layer is then untouched).
    fn apply_and_commit(
        &mut self,
        batches: Vec<Vec<Op>>,
    ) -> Result<(Lsn, Vec<Result<Vec<crate::Outcome>>>)> {
        let file = self.config.path.clone();
        let mut txn =
            self.db()?.begin_write().map_err(|e| Error::storage(&file, "beginning a write", e))?;
        let immediate = match self.config.durability {
            Durability::Immediate => true,
            Durability::Periodic { interval } => {
                self.unsynced_since.is_some_and(|since| since.elapsed() >= interval)
            }
        };
        let durability =
            if immediate { redb::Durability::Immediate } else { redb::Durability::None };
        txn.set_durability(durability)
            .map_err(|e| Error::storage(&file, "setting durability", redb::Error::from(e)))?;
        let applied = apply_group(&txn, &self.views, &self.root, &file, batches)?;
        if !applied.any_committed() {
            // Every batch failed: nothing to commit, and no LSN is spent.
            txn.abort().map_err(|e| Error::storage(&file, "aborting a write", e))?;
            return Ok((self.lsn, applied.results));
        }
        let lsn = Lsn(self.lsn.0 + 1);
        {
            let mut meta =
                txn.open_table(META).map_err(|e| Error::storage(&file, "opening meta", e))?;
            meta.insert(META_LSN, lsn.0.to_le_bytes().as_slice())
                .map_err(|e| Error::storage(&file, "writing the lsn", e))?;
        }
        let changed: usize =
            applied.changes.iter().map(|(_, c)| c.records.len() + c.index.len()).sum();
        let root = if immediate && changed >= BUILD_BESIDE_FROM {
            // The commit waits for the disk: build the next root meanwhile, on another
            // thread. It is published only once the commit has succeeded.
            let root = &self.root;
            let (next, committed) = crate::beside::beside(
                "viewstore-publish",
                || root.with_changes(lsn, applied.changes),
                || txn.commit(),
            );
            committed.map(|()| next)
        } else {
            txn.commit().map(|()| self.root.with_changes(lsn, applied.changes))
        }
        .map_err(|e| Error::storage(&file, "committing", e))?;
        if immediate {
            self.unsynced_since = None;
        } else if self.unsynced_since.is_none() {
            self.unsynced_since = Some(Instant::now());
        }
        self.lsn = lsn;
        self.publish(Arc::new(root));
        if immediate {
            self.published.set_durable(lsn);
        }
        Ok((lsn, applied.results))
    }

    fn publish(&mut self, root: Arc<Root>) {
        let old = std::mem::replace(&mut self.root, Arc::clone(&root));
        self.published.publish(root);
        self.reclaimer.retire(old);
    }

    /// Registers a view: checks or records its meta, loads its records, publishes it.
    fn register(&mut self, reg: Box<dyn Registration>) -> Result<usize> {
        let name = reg.name().to_owned();
        let meta = reg.meta();
        let index_metas: Vec<(String, IndexMeta)> =
            reg.indexes().into_iter().map(|i| (i.writer.name.to_string(), i.meta)).collect();
        if let Some(known) = self.by_name.get(&name) {
            if known.meta != meta {
                return Err(mismatch(&name, &known.meta, &meta));
            }
            if known.indexes != index_metas {
                return Err(Error::SchemaMismatch {
                    view: name.clone(),
                    stored: format!("open with indexes {}", describe_indexes(&known.indexes)),
                    requested: format!("indexes {}", describe_indexes(&index_metas)),
                });
            }
            return Ok(known.id);
        }
        let (view, table_name, indexes) = self.load_view(reg.as_ref())?;
        let id = self.views.len();
        self.views.push(ViewInfo {
            name: Arc::from(name.as_str()),
            table: table_name,
            render_key: reg.render_key(),
            indexes: indexes.into_iter().map(|i| i.writer).collect(),
        });
        self.by_name.insert(name, Registered { id, meta, indexes: index_metas });
        self.registrations.push(reg);
        let mut root = Root { lsn: self.root.lsn, views: self.root.views.clone() };
        root.views.push(view);
        self.publish(Arc::new(root));
        Ok(id)
    }

    /// Checks or records a view's meta, loads its records and brings its indexes in
    /// line, in one transaction. Returns the resident view, the name of its table and
    /// its indexes.
    fn load_view(
        &self,
        reg: &dyn Registration,
    ) -> Result<(Arc<dyn ResidentView>, String, Vec<IndexRegistration>)> {
        let name = reg.name();
        let meta = reg.meta();
        let file = self.config.path.clone();
        let table_name = view_table_name(name);
        let txn = self.db()?.begin_write().map_err(Error::at(&file, "beginning a write"))?;
        let mut created = false;
        {
            let mut views =
                txn.open_table(VIEWS).map_err(Error::at(&file, "opening the view list"))?;
            let stored = views
                .get(name)
                .map_err(Error::at(&file, "reading the view list"))?
                .map(|m| ViewMeta::from_bytes(m.value()));
            match stored {
                Some(Some(stored)) if stored != meta => {
                    return Err(mismatch(name, &stored, &meta));
                }
                Some(None) => {
                    return Err(Error::decode(name, "(view meta)".into(), "unreadable view meta"));
                }
                Some(Some(_)) => {}
                None => {
                    views
                        .insert(name, meta.to_bytes().as_slice())
                        .map_err(Error::at(&file, "recording the view"))?;
                    created = true;
                }
            }
        }
        let mut loader = reg.loader();
        if created {
            // A new view's table is created empty, in the transaction that records it.
            txn.open_table(view_table(&table_name)).map_err(Error::at(&file, "creating a view"))?;
        } else {
            // Records are read through read transactions, on two threads for a large
            // view. Only this thread writes, so they see what this transaction sees.
            load::read_records(self.db()?, &table_name, reg, &file, &mut loader)?;
        }
        loader.decoded()?;
        let indexes = reg.indexes();
        created |= self.open_indexes(&txn, name, &indexes, loader.as_mut())?;
        if created {
            txn.commit().map_err(Error::at(&file, "recording the view"))?;
        } else {
            txn.abort().map_err(Error::at(&file, "aborting a read"))?;
        }
        Ok((loader.finish()?, table_name, indexes))
    }
}

impl Writer {
    /// Brings a view's indexes in line with their definitions inside the registration
    /// transaction: loads the unchanged ones, builds new or changed ones from the
    /// records, drops the ones no longer declared. Returns whether it wrote anything.
    fn open_indexes(
        &self,
        txn: &WriteTransaction,
        view: &str,
        declared: &[IndexRegistration],
        loader: &mut dyn Loader,
    ) -> Result<bool> {
        let file = self.config.path.as_path();
        let mut wrote = false;
        let mut metas =
            txn.open_table(INDEXES).map_err(Error::at(file, "opening the index list"))?;
        let prefix = index_meta_key(view, "");
        let mut undeclared = Vec::new();
        for item in
            metas.range(prefix.as_str()..).map_err(Error::at(file, "reading the index list"))?
        {
            let (k, _) = item.map_err(Error::at(file, "reading the index list"))?;
            let Some(index) = k.value().strip_prefix(prefix.as_str()) else { break };
            // Index names have no '/': a rest with one is an index of another view
            // whose name starts with this one's ("shop/users" below "shop").
            if index.contains('/') {
                continue;
            }
            if !declared.iter().any(|d| &*d.writer.name == index) {
                undeclared.push(index.to_owned());
            }
        }
        for index in undeclared {
            metas
                .remove(index_meta_key(view, &index).as_str())
                .map_err(Error::at(file, "dropping an index"))?;
            let table = index_table_name(view, &index);
            txn.delete_table(index_table(&table)).map_err(Error::at(file, "dropping an index"))?;
            wrote = true;
        }
        for (ix, decl) in declared.iter().enumerate() {
            let key = index_meta_key(view, &decl.writer.name);
            let stored = metas
                .get(key.as_str())
                .map_err(Error::at(file, "reading the index list"))?
                .and_then(|m| IndexMeta::from_bytes(m.value()));
            let table_def = index_table(&decl.writer.table);
            if stored.as_ref() == Some(&decl.meta) {
                let table =
                    txn.open_table(table_def).map_err(Error::at(file, "opening an index"))?;
                for item in table.iter().map_err(Error::at(file, "loading an index"))? {
                    let (k, len) = item.map_err(Error::at(file, "loading an index"))?;
                    // An entry whose record is gone is left for `verify` to report.
                    loader.load_index_entry(ix, k.value(), len.value() as usize);
                }
                continue;
            }
            txn.delete_table(table_def).map_err(Error::at(file, "dropping an index"))?;
            let mut table =
                txn.open_table(table_def).map_err(Error::at(file, "creating an index"))?;
            let mut sink = |k: &[u8], len: u32| {
                table.insert(k, len).map(drop).map_err(Error::at(file, "building an index"))
            };
            let mut progress = |done, total| {
                if let Some(report) = &self.config.index_progress {
                    let progress = IndexProgress {
                        view: view.to_owned(),
                        index: decl.writer.name.to_string(),
                        done,
                        total,
                    };
                    // A panicking report is user code: it loses that report, nothing else.
                    let _ = catch_unwind(AssertUnwindSafe(|| (report.0)(&progress)));
                }
            };
            loader.build_index(ix, &mut sink, &mut progress)?;
            metas
                .insert(key.as_str(), decl.meta.to_bytes().as_slice())
                .map_err(Error::at(file, "recording an index"))?;
            wrote = true;
        }
        Ok(wrote)
    }

    /// Checks every open view's records and indexes: recomputed from the records in
    /// memory, compared with the disk and with the resident indexes.
    pub(crate) fn verify(&self) -> Result<VerifyReport> {
        let file = self.config.path.as_path();
        let txn = self.db()?.begin_read().map_err(Error::at(file, "beginning a read"))?;
        let mut report =
            VerifyReport { lsn: self.lsn, views: self.views.len(), ..VerifyReport::default() };
        for (id, info) in self.views.iter().enumerate() {
            let Some(resident) = self.root.views.get(id) else { continue };
            let problem = |index: Option<&str>, key: String, kind| Problem {
                view: info.name.to_string(),
                index: index.map(str::to_owned),
                key,
                kind,
            };
            let mut on_disk = BTreeMap::new();
            let table =
                txn.open_table(view_table(&info.table)).map_err(Error::at(file, "verifying"))?;
            for item in table.iter().map_err(Error::at(file, "verifying"))? {
                let (k, v) = item.map_err(Error::at(file, "verifying"))?;
                if let Ok(Record::Live { version, .. }) = Record::decode(v.value()) {
                    on_disk.insert(k.value().to_vec(), version);
                }
            }
            let mut in_memory = BTreeMap::new();
            let mut values = Vec::new();
            resident.for_each_record(&mut |k, version, _| {
                in_memory.insert(k.to_vec(), version);
                values.push(k.to_vec());
            });
            report.records += in_memory.len() as u64;
            compare(
                &on_disk,
                &in_memory,
                ProblemKind::MissingInMemory,
                ProblemKind::ExtraInMemory,
                |k, _, kind| {
                    report.problems.push(problem(None, (info.render_key)(k), kind));
                },
            );
            for (k, version) in &in_memory {
                if on_disk.get(k).is_some_and(|v| v != version) {
                    report.problems.push(problem(
                        None,
                        (info.render_key)(k),
                        ProblemKind::VersionMismatch,
                    ));
                }
            }
            for (ix, index) in info.indexes.iter().enumerate() {
                let mut expected = BTreeMap::new();
                for pk in &values {
                    let value = resident.value(pk);
                    match info.index_keys(index, pk, value.as_deref()) {
                        Ok(keys) => {
                            for ikey in keys {
                                expected
                                    .insert(composite(&ikey, pk).as_bytes().to_vec(), ikey.len());
                            }
                        }
                        Err(_) => report.problems.push(problem(
                            Some(&index.name),
                            (info.render_key)(pk),
                            ProblemKind::ExtractorFailed,
                        )),
                    }
                }
                let mut disk = BTreeMap::new();
                let table = txn
                    .open_table(index_table(&index.table))
                    .map_err(Error::at(file, "verifying"))?;
                for item in table.iter().map_err(Error::at(file, "verifying"))? {
                    let (k, len) = item.map_err(Error::at(file, "verifying"))?;
                    disk.insert(k.value().to_vec(), len.value() as usize);
                }
                let memory: BTreeMap<Vec<u8>, usize> =
                    resident.index_composites(ix).into_iter().collect();
                report.index_entries += expected.len() as u64;
                let render = |k: &[u8], len: usize| {
                    let (ikey, pk) = k.split_at(len.min(k.len()));
                    format!("{} -> {}", (index.render)(ikey), (info.render_key)(pk))
                };
                let mut push = |k: &Vec<u8>, len: &usize, kind| {
                    report.problems.push(problem(Some(&index.name), render(k, *len), kind));
                };
                compare(
                    &expected,
                    &disk,
                    ProblemKind::MissingOnDisk,
                    ProblemKind::ExtraOnDisk,
                    &mut push,
                );
                compare(
                    &expected,
                    &memory,
                    ProblemKind::MissingInMemory,
                    ProblemKind::ExtraInMemory,
                    &mut push,
                );
            }
        }
        Ok(report)
    }
}

fn describe_indexes(indexes: &[(String, IndexMeta)]) -> String {
    let list: Vec<String> = indexes
        .iter()
        .map(|(name, m)| {
            let kind = if m.unique { "unique" } else { "multi" };
            format!("{name} ({kind}, {}, version {})", m.key_type, m.version)
        })
        .collect();
    format!("[{}]", list.join(", "))
}

fn mismatch(view: &str, stored: &ViewMeta, requested: &ViewMeta) -> Error {
    Error::SchemaMismatch {
        view: view.to_owned(),
        stored: stored.describe(),
        requested: requested.describe(),
    }
}

#[cfg(test)]
mod ticket_tests {
    use super::sync::{Arc, ThreadId};
    use super::ticket::pair;
    use crate::error::Error;
    use crate::version::Lsn;
    use crate::version::Receipt;
    use std::future::Future;
    use std::path::Path;
    use std::pin::Pin;
    use std::task::Wake;
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    fn other_thread() -> ThreadId {
        std::thread::spawn(|| std::thread::current().id()).join().expect("spawned")
    }

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn future_is_woken_and_resolves() {
        let (mut ticket, completer) = pair(other_thread(), std::sync::Arc::from(Path::new("t")));
        let flag = Arc::new(Flag(false.into()));
        let waker = Waker::from(Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut ticket).poll(&mut cx).is_pending());
        completer.complete(Ok(Receipt { lsn: Lsn(3), outcomes: vec![] }));
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        match Pin::new(&mut ticket).poll(&mut cx) {
            Poll::Ready(Ok(r)) => assert_eq!(r.lsn, Lsn(3)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn dropped_completer_resolves_with_its_error() {
        let (ticket, completer) = pair(other_thread(), std::sync::Arc::from(Path::new("t")));
        drop(completer);
        assert!(matches!(ticket.wait(), Err(Error::Poisoned { .. })));
    }

    #[test]
    fn wait_timeout_gives_the_ticket_back() {
        let (ticket, completer) = pair(other_thread(), std::sync::Arc::from(Path::new("t")));
        let ticket = ticket.wait_timeout(Duration::from_millis(5)).expect_err("still pending");
        completer.complete(Ok(Receipt { lsn: Lsn(1), outcomes: vec![] }));
        assert!(ticket.wait().is_ok());
    }
}
