//! The write-ahead batcher: one thread that takes batches from a bounded queue, commits
//! them in groups, publishes each group to the resident layer and acknowledges it.

pub(crate) mod apply;
pub(crate) mod ticket;

use crate::batch::Op;
use crate::config::{Config, Durability};
use crate::error::{Error, Result};
use crate::format::{META, META_LSN, VIEWS, ViewMeta, view_table, view_table_name};
use crate::resident::{Published, Root};
use crate::version::{Lsn, Receipt};
use crate::view::Registration;
use apply::{ViewInfo, apply_group};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use redb::{Database, ReadableTable};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use ticket::Completer;

/// What the writer thread is asked to do.
pub(crate) enum Request {
    Batch {
        ops: Vec<Op>,
        bytes: usize,
        done: Completer,
    },
    Register {
        registration: Box<dyn Registration>,
        reply: Sender<Result<usize>>,
    },
    Shutdown {
        reply: Sender<()>,
    },
}

pub(crate) struct Writer {
    db: Database,
    config: Config,
    published: Arc<Published>,
    root: Arc<Root>,
    views: Vec<ViewInfo>,
    by_name: HashMap<String, (usize, ViewMeta)>,
    lsn: Lsn,
    /// When the oldest commit not yet synced to disk was made (periodic durability).
    unsynced_since: Option<Instant>,
}

impl Writer {
    pub(crate) fn new(db: Database, config: Config, published: Arc<Published>) -> Self {
        let root = published.load_full();
        let lsn = root.lsn;
        Writer {
            db,
            config,
            published,
            root,
            views: Vec::new(),
            by_name: HashMap::new(),
            lsn,
            unsynced_since: None,
        }
    }

    /// The thread's loop: block for one request, drain what else is queued into a
    /// group, commit it, publish it, acknowledge it. Returns on shutdown or when every
    /// sender is gone.
    pub(crate) fn run(mut self, rx: &Receiver<Request>) {
        let mut carried: Option<Request> = None;
        loop {
            let first = match carried.take() {
                Some(request) => request,
                None => match self.next_request(rx) {
                    Some(request) => request,
                    None => break,
                },
            };
            match first {
                Request::Shutdown { reply } => {
                    self.sync_if_needed(true);
                    let _ = reply.send(());
                    return;
                }
                Request::Register {
                    registration,
                    reply,
                } => {
                    let _ = reply.send(self.register(registration.as_ref()));
                }
                Request::Batch { ops, bytes, done } => {
                    let mut group = vec![(ops, done)];
                    carried = self.fill_group(rx, &mut group, bytes);
                    self.commit_group(group);
                }
            }
        }
        self.sync_if_needed(true);
    }

    /// Waits for the next request; with unsynced commits pending, wakes up in time to
    /// sync them. `None` when every sender is gone.
    fn next_request(&mut self, rx: &Receiver<Request>) -> Option<Request> {
        loop {
            let Some(deadline) = self.sync_deadline() else {
                return rx.recv().ok();
            };
            match rx.recv_deadline(deadline) {
                Ok(request) => return Some(request),
                Err(RecvTimeoutError::Timeout) => self.sync_if_needed(true),
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Drains queued batches into `group` up to the group limits, lingering if
    /// configured. Returns a non-batch request met on the way, to be handled next.
    fn fill_group(
        &self,
        rx: &Receiver<Request>,
        group: &mut Vec<(Vec<Op>, Completer)>,
        mut bytes: usize,
    ) -> Option<Request> {
        let mut ops: usize = group.iter().map(|(o, _)| o.len()).sum();
        let linger_until = Instant::now() + self.config.max_linger;
        while ops < self.config.max_batch_ops && bytes < self.config.max_batch_bytes {
            let next = match rx.try_recv() {
                Ok(r) => r,
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) if self.config.max_linger.is_zero() => return None,
                Err(TryRecvError::Empty) => match rx.recv_deadline(linger_until) {
                    Ok(r) => r,
                    Err(_) => return None,
                },
            };
            match next {
                Request::Batch {
                    ops: o,
                    bytes: b,
                    done,
                } => {
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
    /// always, with `force`). A failed sync is retried by the next commit.
    fn sync_if_needed(&mut self, force: bool) {
        let Some(deadline) = self.sync_deadline() else {
            return;
        };
        if !force && Instant::now() < deadline {
            return;
        }
        let synced = self.db.begin_write().ok().and_then(|mut txn| {
            txn.set_durability(redb::Durability::Immediate).ok()?;
            txn.commit().ok()
        });
        if synced.is_some() {
            self.unsynced_since = None;
        }
    }

    fn commit_group(&mut self, group: Vec<(Vec<Op>, Completer)>) {
        let (batches, completers): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        match self.apply_and_commit(batches) {
            Ok((lsn, results)) => {
                for (done, result) in completers.into_iter().zip(results) {
                    done.complete(result.map(|outcomes| Receipt { lsn, outcomes }));
                }
            }
            Err(e) => {
                for done in completers {
                    done.complete(Err(e.clone()));
                }
            }
        }
    }

    /// The one seam that makes a group durable: today a redb write transaction.
    /// Returns the group's LSN and per-batch results, or the error that failed the
    /// whole group (the resident layer is then untouched).
    fn apply_and_commit(
        &mut self,
        batches: Vec<Vec<Op>>,
    ) -> Result<(Lsn, Vec<Result<Vec<crate::Outcome>>>)> {
        let file = self.config.path.clone();
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| Error::storage(&file, "beginning a write", e))?;
        let immediate = match self.config.durability {
            Durability::Immediate => true,
            Durability::Periodic { interval } => self
                .unsynced_since
                .is_some_and(|since| since.elapsed() >= interval),
        };
        let durability = if immediate {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        };
        txn.set_durability(durability)
            .map_err(|e| Error::storage(&file, "setting durability", redb::Error::from(e)))?;
        let applied = apply_group(&txn, &self.views, &self.root, &file, batches)?;
        if !applied.any_committed() {
            // Every batch failed: nothing to commit, and no LSN is spent.
            txn.abort()
                .map_err(|e| Error::storage(&file, "aborting a write", e))?;
            return Ok((self.lsn, applied.results));
        }
        let lsn = Lsn(self.lsn.0 + 1);
        {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| Error::storage(&file, "opening meta", e))?;
            meta.insert(META_LSN, lsn.0.to_le_bytes().as_slice())
                .map_err(|e| Error::storage(&file, "writing the lsn", e))?;
        }
        txn.commit()
            .map_err(|e| Error::storage(&file, "committing", e))?;
        if immediate {
            self.unsynced_since = None;
        } else if self.unsynced_since.is_none() {
            self.unsynced_since = Some(Instant::now());
        }
        self.lsn = lsn;
        let root = Arc::new(self.root.with_changes(lsn, applied.changes));
        self.publish(root);
        Ok((lsn, applied.results))
    }

    fn publish(&mut self, root: Arc<Root>) {
        self.root = Arc::clone(&root);
        self.published.publish(root);
    }

    /// Registers a view: checks or records its meta, loads its records, publishes it.
    fn register(&mut self, reg: &dyn Registration) -> Result<usize> {
        let name = reg.name().to_owned();
        let meta = reg.meta();
        if let Some((id, stored)) = self.by_name.get(&name) {
            return if *stored == meta {
                Ok(*id)
            } else {
                Err(mismatch(&name, stored, &meta))
            };
        }
        let file = self.config.path.clone();
        let table_name = view_table_name(&name);
        let txn = self
            .db
            .begin_write()
            .map_err(Error::at(&file, "beginning a write"))?;
        let mut created = false;
        {
            let mut views = txn
                .open_table(VIEWS)
                .map_err(Error::at(&file, "opening the view list"))?;
            let stored = views
                .get(name.as_str())
                .map_err(Error::at(&file, "reading the view list"))?
                .map(|m| ViewMeta::from_bytes(m.value()));
            match stored {
                Some(Some(stored)) if stored != meta => {
                    return Err(mismatch(&name, &stored, &meta));
                }
                Some(None) => {
                    return Err(Error::decode(
                        &name,
                        "(view meta)".into(),
                        "unreadable view meta",
                    ));
                }
                Some(Some(_)) => {}
                None => {
                    views
                        .insert(name.as_str(), meta.to_bytes().as_slice())
                        .map_err(Error::at(&file, "recording the view"))?;
                    created = true;
                }
            }
        }
        let mut loader = reg.loader();
        {
            let table = txn
                .open_table(view_table(&table_name))
                .map_err(Error::at(&file, "opening a view"))?;
            for item in table.iter().map_err(Error::at(&file, "loading a view"))? {
                let (k, v) = item.map_err(Error::at(&file, "loading a view"))?;
                match crate::format::Record::decode(v.value()) {
                    Ok(crate::format::Record::Live { version, value }) => {
                        loader.push(k.value(), version, value)?;
                    }
                    Ok(crate::format::Record::Tombstone { .. }) => {}
                    Err(reason) => {
                        return Err(Error::decode(&name, (reg.render_key())(k.value()), reason));
                    }
                }
            }
        }
        if created {
            txn.commit()
                .map_err(Error::at(&file, "recording the view"))?;
        } else {
            txn.abort().map_err(Error::at(&file, "aborting a read"))?;
        }
        let id = self.views.len();
        self.views.push(ViewInfo {
            name: Arc::from(name.as_str()),
            table: table_name,
            render_key: reg.render_key(),
        });
        self.by_name.insert(name, (id, meta));
        let mut root = Root {
            lsn: self.root.lsn,
            views: self.root.views.clone(),
        };
        root.views.push(loader.finish());
        self.publish(Arc::new(root));
        Ok(id)
    }
}

fn mismatch(view: &str, stored: &ViewMeta, requested: &ViewMeta) -> Error {
    Error::SchemaMismatch {
        view: view.to_owned(),
        stored: stored.describe(),
        requested: requested.describe(),
    }
}
