//! The write-ahead batcher: one thread that takes batches from a bounded queue, commits
//! them in groups, publishes each group to the resident layer and acknowledges it.
//!
//! After a failed commit redb refuses further use of its database, so the writer
//! reopens it (through the same file or backend) and rebuilds the resident layer from
//! what is on disk. When that fails too, the writer stops and the store turns
//! read-only: `run` returns the reason, and the store answers writers with
//! `Error::Poisoned`.

use crate::base::beside::{BUILD_ROOT_BESIDE_COMMIT_FROM, beside};
use crate::base::config::{Config, Durability};
use crate::base::error::{Error, Result};
use crate::base::feed::FeedGroup;
use crate::base::instrument::{self, Span};
use crate::base::panic::panic_message;
use crate::base::version::{Lsn, Receipt};
use crate::base::writer_stats::{BatchTally, WriterFigures};
use crate::engine::apply::{Committed, apply_group};
use crate::engine::feed::{now_ms, write_group};
use crate::engine::inbox::{Inbox, Received};
use crate::engine::manage_op::{ManageOp, Managed};
use crate::engine::report::VerifyReport;
use crate::engine::ticket::Completer;
use crate::mem::feed_log::FeedLog;
use crate::mem::{Positions, Published, Root};
use crate::schema::op::Submission;
use crate::schema::registration::Registration;
use crate::schema::view_info::ViewInfo;
use crate::storage::feed::read_feed;
use crate::storage::format::{IndexMeta, META, META_LSN, ViewMeta};
use crate::storage::journal::log::Journal;
use crate::storage::journal::replay::recover;
use crate::storage::open::open_database;
use crate::storage::positions::read_positions;
use crossbeam_channel::Sender;
use redb::Database;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

/// What the writer thread is asked to do.
pub(crate) enum Request {
    Batch { batch: Submission, bytes: usize, done: Completer },
    Register { registration: Box<dyn Registration>, reply: Sender<Result<usize>> },
    Verify { reply: Sender<Result<VerifyReport>> },
    Manage { op: ManageOp, reply: Sender<Result<Managed>> },
}

/// What the loop does after a request.
enum Step {
    Continue,
    /// Stop, with the reason to poison the store, if any.
    Stop(Option<String>),
}

/// A view registered in this process: its id, meta, and the name and meta of each index.
pub(super) struct Registered {
    pub(super) feed: crate::base::feed::FeedMode,
    pub(super) id: usize,
    pub(super) meta: ViewMeta,
    /// The names and shapes of the view's key and value.
    pub(super) shapes: crate::storage::shapes::ViewShapes,
    pub(super) indexes: Vec<(String, IndexMeta)>,
    /// The declared source names, in id order.
    pub(super) sources: &'static [&'static str],
}

pub(crate) struct Writer {
    /// In journal mode, the open transaction holding the groups acknowledged since the
    /// last checkpoint (`engine/checkpoint.rs`). Declared before `db`, so that it is
    /// dropped (aborted) before the database.
    pub(super) pending: Option<redb::WriteTransaction>,
    /// `None` only between dropping a failed database and opening it again.
    pub(super) db: Option<Database>,
    pub(super) config: Config,
    pub(super) published: Arc<Published>,
    /// The change feed in memory, which readers follow.
    pub(super) feed: Arc<FeedLog>,
    pub(super) root: Arc<Root>,
    pub(super) views: Vec<ViewInfo>,
    pub(super) by_name: HashMap<String, Registered>,
    /// Every registered view, in id order: reopening reloads each of them.
    pub(super) registrations: Vec<Box<dyn Registration>>,
    /// Why the writer must stop, found where it cannot return it at once.
    pub(super) fatal: Option<String>,
    pub(super) lsn: Lsn,
    /// When the oldest commit not yet synced to disk was made (periodic durability), or
    /// not yet checkpointed (journal durability).
    pub(super) unsynced_since: Option<Instant>,
    /// What the writer counts, shared with the store's `stats`.
    pub(super) figures: Arc<WriterFigures>,
    /// The journal, in journal mode.
    pub(super) journal: Option<Journal>,
    reclaimer: Reclaimer,
}

/// Drops replaced roots on a thread of its own, so that freeing the parts a group
/// replaced does not hold up the next group. At most two roots wait; past that the
/// writer waits for the thread (or drops the root itself if the thread is gone).
///
/// The thread keeps the last `HELD` roots it was given before dropping them: a reading
/// thread keeps the root it read last (`mem/current.rs`) and lets it go at its first
/// read after the next publish; were it then the last holder, that read would pay for
/// freeing everything the group replaced (a reference count decrement per shared part).
/// Held a little longer here, the old root's last reference stays on this thread.
struct Reclaimer {
    tx: Option<crossbeam_channel::Sender<Arc<Root>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Replaced roots the reclaim thread keeps alive before dropping them (see [`Reclaimer`]).
const HELD: usize = 2;

impl Reclaimer {
    fn new() -> Self {
        let (tx, rx) = crossbeam_channel::bounded::<Arc<Root>>(2);
        let thread = std::thread::Builder::new()
            .name("viewstore-reclaim".into())
            .spawn(move || {
                let mut held = std::collections::VecDeque::with_capacity(HELD + 1);
                for root in rx {
                    held.push_back(root);
                    if held.len() > HELD {
                        drop(held.pop_front());
                    }
                }
            })
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
    pub(crate) fn new(
        db: Database,
        journal: Option<Journal>,
        config: Config,
        published: Arc<Published>,
        feed: Arc<FeedLog>,
        figures: Arc<WriterFigures>,
    ) -> Self {
        let root = published.load_full();
        let lsn = root.lsn;
        Writer {
            db: Some(db),
            config,
            published,
            feed,
            root,
            views: Vec::new(),
            by_name: HashMap::new(),
            registrations: Vec::new(),
            fatal: None,
            lsn,
            unsynced_since: None,
            figures,
            journal,
            pending: None,
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
                    if let Some(txn) = self.pending.take() {
                        std::mem::forget(txn);
                    }
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
        // Journal mode: commit the open transaction (also one that only a group whose
        // batches all failed began), then empty the journal.
        self.checkpoint_pending()
            .and_then(|()| self.sync_if_needed(true))
            .and_then(|()| self.empty_journal())
            .err()
    }

    /// Handles one request (a batch with the group it starts).
    fn handle(
        &mut self,
        request: Request,
        rx: &Inbox<Request>,
        carried: &mut Option<Request>,
    ) -> Step {
        // Requests that read or write the file through a transaction of their own see
        // every acknowledged group: the open transaction of journal mode is committed
        // first. Opening a view already open here does not touch the file.
        let own_transaction = match &request {
            Request::Batch { .. } => false,
            Request::Register { registration, .. } => {
                !self.by_name.contains_key(registration.name())
            }
            Request::Verify { .. } | Request::Manage { .. } => true,
        };
        if own_transaction && let Err(reason) = self.checkpoint_pending() {
            // The request is answered by its dropped reply sender.
            return Step::Stop(Some(reason));
        }
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
            Request::Manage { op, reply } if self.config.replica && op.writes() => {
                let reason = "the store is a replica: it changes only through groups \
                              replicated from its primary (open it without `replica(true)` to \
                              promote it)";
                let file = self.config.path.clone();
                let _ =
                    reply.send(Err(Error::Replication { file, view: None, reason: reason.into() }));
                Step::Continue
            }
            Request::Manage { op, reply } => {
                let (result, reopen) = self.manage(op);
                let _ = reply.send(result);
                match reopen.then(|| self.reopen()) {
                    Some(Err(reason)) => Step::Stop(Some(reason)),
                    _ => Step::Continue,
                }
            }
            Request::Batch { batch, bytes, done } => {
                let mut group = vec![(batch, done)];
                *carried = self.fill_group(rx, &mut group, bytes);
                if instrument::METRICS {
                    let queue = rx.queue_stats();
                    instrument::gauge(instrument::QUEUE_DEPTH, queue.queued as u64);
                    instrument::gauge(
                        instrument::BLOCKED_SUBMITTERS,
                        queue.blocked_submitters as u64,
                    );
                }
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
        group: &mut Vec<(Submission, Completer)>,
        mut bytes: usize,
    ) -> Option<Request> {
        if group.iter().any(|(b, _)| b.replicated.is_some()) {
            // A replicated group commits alone, at its own LSN.
            return None;
        }
        let mut ops: usize = group.iter().map(|(b, _)| b.ops.len().max(1)).sum();
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
                Request::Batch { batch, bytes, done } if batch.replicated.is_some() => {
                    return Some(Request::Batch { batch, bytes, done });
                }
                Request::Batch { batch, bytes: b, done } => {
                    ops += batch.ops.len().max(1);
                    bytes += b;
                    group.push((batch, done));
                }
                other => return Some(other),
            }
        }
        None
    }

    /// Commits a group and acknowledges each of its batches. `Err` with a reason when
    /// the commit failed and the database could not be reopened.
    fn commit_group(
        &mut self,
        group: Vec<(Submission, Completer)>,
    ) -> std::result::Result<(), String> {
        let (batches, completers): (Vec<_>, Vec<_>) = group
            .into_iter()
            .filter_map(|(batch, done)| match self.wrong_role(&batch) {
                Some(error) => {
                    self.figures.count_failed_batch();
                    done.complete(Err(error));
                    None
                }
                None => Some((batch, done)),
            })
            .unzip();
        if batches.is_empty() {
            return Ok(());
        }
        let (count, writes) = (batches.len(), batches.iter().map(|b| b.ops.len()).sum::<usize>());
        let span = Span::commit(count, writes);
        let (before, started) = (self.lsn, Instant::now());
        let applied = span.in_scope(|| self.apply_and_commit(batches));
        match applied {
            Ok((lsn, results)) => {
                if lsn > before {
                    span.record_lsn(lsn.get());
                    self.figures.record_commit(started.elapsed());
                    self.figures.count_group(count as u64, writes as u64);
                }
                for result in &results {
                    match result {
                        Ok(c) => self
                            .figures
                            .count_batch(&BatchTally { outcomes: &c.outcomes, deleted: c.deleted }),
                        Err(_) => self.figures.count_failed_batch(),
                    }
                }
                for (done, result) in completers.into_iter().zip(results) {
                    done.complete(result.map(|c| Receipt {
                        lsn,
                        outcomes: c.outcomes,
                        redelivery: c.redelivery,
                        fell_back: c.fell_back,
                    }));
                }
                self.checkpoint_if_due()
            }
            Err(e) => {
                self.figures.count_failed_group(completers.len() as u64);
                for done in completers {
                    done.complete(Err(e.clone()));
                }
                if let Some(reason) = self.journal.as_ref().and_then(Journal::broken) {
                    // After a failed sync nothing says what the log holds: stop writing.
                    return Err(format!("the journal failed: {reason}"));
                }
                self.reopen().map_err(|reason| format!("after a failed commit ({e}): {reason}"))
            }
        }
    }

    pub(super) fn db(&self) -> Result<&Database> {
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
    pub(super) fn reopen(&mut self) -> std::result::Result<(), String> {
        // The old database holds the file lock: it must be gone before opening again,
        // and the open transaction with it (the journal holds its groups).
        drop(self.pending.take());
        drop(self.db.take());
        self.unsynced_since = None;
        let (db, disk_lsn) = open_database(&self.config, &self.figures.sync_latency)
            .map_err(|e| format!("reopening failed: {e}"))?;
        let disk_lsn = match &mut self.journal {
            Some(journal) => recover(&db, journal, disk_lsn, &self.config.path, true)
                .map_err(|e| format!("replaying the journal failed: {e}"))?,
            None => disk_lsn,
        };
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
        let positions = self
            .db()
            .and_then(|db| read_positions(db, &self.config.path))
            .map_err(|e| format!("reloading the source positions failed: {e}"))?;
        let (feed, pruned) = self
            .db()
            .and_then(|db| read_feed(db, &self.config.path))
            .map_err(|e| format!("reloading the change feed failed: {e}"))?;
        self.feed.reset(feed, pruned);
        self.lsn = disk_lsn;
        self.publish(Arc::new(Root { lsn: self.lsn, views, positions: resident(positions) }));
        self.mark_durable(disk_lsn);
        Ok(())
    }

    /// The one seam that makes a group durable: today a redb write transaction.
    /// Returns the group's LSN and per-batch results, or the error that failed the
    /// whole group (the resident layer is then untouched).
    fn apply_and_commit(
        &mut self,
        batches: Vec<Submission>,
    ) -> Result<(Lsn, Vec<Result<Committed>>)> {
        let file = self.config.path.clone();
        // A replicated group (alone in its group) commits at its primary's LSN, once.
        let replicated = match batches.as_slice() {
            [only] => only.replicated,
            _ => None,
        };
        if let Some(answer) = self.replicated_answer(&batches) {
            return Ok(answer);
        }
        let immediate = match self.config.durability {
            Durability::Immediate => true,
            Durability::Periodic { interval } => {
                self.unsynced_since.is_some_and(|since| since.elapsed() >= interval)
            }
            Durability::Journal => false,
        };
        let journal = self.journal.is_some();
        let txn = self.group_transaction(immediate)?;
        let mut applied = apply_group(&txn, &self.views, &self.root, &file, batches, journal)?;
        if !applied.any_committed() {
            // Every batch failed: nothing was written, and no LSN is spent.
            self.keep_or_abort(txn)?;
            return Ok((self.lsn, applied.results));
        }
        let lsn = replicated.unwrap_or(Lsn::new(self.lsn.get() + 1));
        {
            let mut meta =
                txn.open_table(META).map_err(|e| Error::storage(&file, "opening meta", e))?;
            meta.insert(META_LSN, lsn.get().to_le_bytes().as_slice())
                .map_err(|e| Error::storage(&file, "writing the lsn", e))?;
        }
        let feed_group = (!applied.feed.is_empty()).then(|| FeedGroup {
            lsn,
            committed_at_ms: now_ms(),
            changes: std::mem::take(&mut applied.feed),
        });
        let pruned = match &feed_group {
            Some(group) => {
                write_group(&txn, &file, &self.feed, &self.config.feed_retention, group)?
            }
            None => None,
        };
        let root = if journal {
            // Durable in the journal once this returns; the transaction stays open for
            // the groups to come, until the next checkpoint commits them all. On `Err`
            // the transaction is dropped, which aborts it with any earlier groups it
            // held: the reopen replays them from the journal.
            let effects = applied.effects.take();
            let next =
                self.journal_group(effects, lsn, feed_group.as_ref(), pruned, applied.delta)?;
            self.pending = Some(txn);
            next
        } else if immediate {
            // The commit waits for the disk: the next root is built meanwhile.
            next_root_beside(&self.root, lsn, applied.delta, || txn.commit())
                .map_err(|e| Error::storage(&file, "committing", e))?
        } else {
            txn.commit()
                .map(|()| self.root.with_delta(lsn, applied.delta))
                .map_err(|e| Error::storage(&file, "committing", e))?
        };
        if immediate {
            self.unsynced_since = None;
        } else if self.unsynced_since.is_none() {
            self.unsynced_since = Some(Instant::now());
        }
        self.lsn = lsn;
        self.publish(Arc::new(root));
        // After the publish: the feed never shows what readers of the store cannot see.
        if let Some(group) = feed_group {
            self.feed.append(group);
        }
        if let Some(through) = pruned {
            self.feed.prune_through(through);
        }
        if immediate || journal {
            self.mark_durable(lsn);
        }
        Ok((lsn, applied.results))
    }

    /// Records that every group up to `lsn` is on disk, and shows its feed to readers.
    pub(super) fn mark_durable(&self, lsn: Lsn) {
        // The feed first: whoever sees `durable_lsn` reach `lsn` finds every group up
        // to it in the feed (a changelog publisher relies on it).
        self.feed.reveal(lsn);
        self.published.set_durable(lsn);
    }

    pub(super) fn publish(&mut self, root: Arc<Root>) {
        debug_assert!(root.lsn >= self.root.lsn, "roots are published in LSN order");
        let old = std::mem::replace(&mut self.root, Arc::clone(&root));
        Span::publish(root.lsn.get()).in_scope(|| self.published.publish(root));
        self.reclaimer.retire(old);
    }
}

/// Stored positions as the resident layer holds them.
pub(crate) fn resident(positions: Vec<((String, u32), u64)>) -> Arc<Positions> {
    Arc::new(positions.into_iter().map(|((s, p), n)| ((Arc::from(s), p), n)).collect())
}

/// The root after `delta`, built while `durable` makes the group durable (a commit, a
/// journal append): on another thread when the group changes enough for that to pay.
/// `Err` when `durable` failed; the root built is then dropped, never published.
pub(super) fn next_root_beside<E>(
    root: &Root,
    lsn: Lsn,
    delta: crate::mem::delta::Delta,
    durable: impl FnOnce() -> std::result::Result<(), E>,
) -> std::result::Result<Root, E> {
    if delta.size() >= BUILD_ROOT_BESIDE_COMMIT_FROM {
        let (next, done) = beside("viewstore-publish", || root.with_delta(lsn, delta), durable);
        done.map(|()| next)
    } else {
        durable().map(|()| root.with_delta(lsn, delta))
    }
}
