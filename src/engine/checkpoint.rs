//! The writer's side of [`Durability::Journal`](crate::Durability::Journal): appending
//! each group's effects to the journal before it is acknowledged, keeping the groups in
//! one open redb transaction, and checkpointing (that transaction committed with a sync,
//! then the journal started over from its beginning) when the journal reaches its limit, when its oldest group
//! reaches the checkpoint interval, before any request other than a batch, and at
//! close.
//!
//! A group is acknowledged once its journal frame is synced: the redb transaction that
//! also holds it is written to the file only at the next checkpoint, together with
//! every group since the one before. Many groups share one B-tree transaction, so a
//! page that they all change is copied and written once per checkpoint instead of once
//! per group. When anything fails while that transaction is open, it is dropped, and
//! the database is reopened, which replays the journal: every acknowledged group is in
//! it.
//!
//! Also the periodic mode's deadline and sync, the other way a group reaches the disk
//! after its commit.

use crate::base::config::Durability;
use crate::base::error::{Error, Result};
use crate::base::feed::FeedGroup;
use crate::base::version::Lsn;
use crate::engine::writer::{Writer, next_root_beside};
use crate::mem::Root;
use crate::mem::delta::Delta;
use crate::storage::feed::encode_group;
use crate::storage::journal::effects::{Bytes, GroupEffects};
use crate::storage::journal::frame;
use crate::storage::journal::log::fresh_salt;
use crate::storage::journal::replay::store_salt;
use redb::WriteTransaction;
use std::time::Instant;

impl Writer {
    /// The transaction the next group writes to: in journal mode the open one, holding
    /// the groups since the last checkpoint, or a new one; otherwise a new one, with the
    /// durability `immediate` asks for.
    pub(super) fn group_transaction(&mut self, immediate: bool) -> Result<WriteTransaction> {
        if let Some(txn) = self.pending.take() {
            return Ok(txn);
        }
        let file = &self.config.path;
        let mut txn =
            self.db()?.begin_write().map_err(|e| Error::storage(file, "beginning a write", e))?;
        let durability =
            if immediate { redb::Durability::Immediate } else { redb::Durability::None };
        txn.set_durability(durability)
            .map_err(|e| Error::storage(file, "setting durability", redb::Error::from(e)))?;
        Ok(txn)
    }

    /// Ends a transaction in which no batch of the group wrote anything: in journal
    /// mode it stays open for the groups to come (it may hold earlier ones), otherwise it
    /// is aborted.
    pub(super) fn keep_or_abort(&mut self, txn: WriteTransaction) -> Result<()> {
        if self.journal.is_some() {
            self.pending = Some(txn);
            return Ok(());
        }
        txn.abort().map_err(|e| Error::storage(&self.config.path, "aborting a write", e))
    }

    /// Appends the group `lsn` to the journal and syncs it, and builds the next root
    /// from `delta` meanwhile (on another thread for a large group). `Err` when the
    /// append failed: the group fails, and the journal refuses further appends (the
    /// writer then stops).
    pub(super) fn journal_group(
        &mut self,
        effects: Option<GroupEffects>,
        lsn: Lsn,
        feed: Option<&FeedGroup>,
        pruned: Option<Lsn>,
        delta: Delta,
    ) -> Result<Root> {
        let follows = self.lsn.get();
        let (root, journal) = (&self.root, &mut self.journal);
        let append = || {
            let (Some(mut effects), Some(journal)) = (effects, journal.as_mut()) else {
                return Ok(());
            };
            effects.lsn = lsn.get();
            effects.follows = follows;
            effects.feed_row = feed.map(|group| Bytes(encode_group(group)));
            effects.feed_pruned = pruned.map(Lsn::get);
            journal.append(&frame::encode(lsn.get(), journal.salt(), &effects.encode()))
        };
        let next = next_root_beside(root, lsn, delta, append)?;
        if self.unsynced_since.is_none() {
            self.unsynced_since = Some(Instant::now());
        }
        Ok(next)
    }

    /// Checkpoints if the journal passed its limit or its oldest group the checkpoint
    /// interval: before the writer takes the next group, so the journal stays bounded.
    pub(super) fn checkpoint_if_due(&mut self) -> std::result::Result<(), String> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let full = journal.len() >= self.config.journal_limit;
        let old = self
            .unsynced_since
            .is_some_and(|since| since.elapsed() >= self.config.checkpoint_interval);
        if full || old { self.checkpoint() } else { Ok(()) }
    }

    /// Empties the journal at a clean close, once the last checkpoint has left nothing
    /// in the open transaction.
    pub(super) fn empty_journal(&mut self) -> std::result::Result<(), String> {
        match (&mut self.journal, &self.pending) {
            (Some(journal), None) => {
                journal.empty().map_err(|e| format!("emptying the journal at close failed: {e}"))
            }
            _ => Ok(()),
        }
    }

    /// Checkpoints when groups wait in the open transaction: before a request that reads
    /// or writes the file through a transaction of its own.
    pub(super) fn checkpoint_pending(&mut self) -> std::result::Result<(), String> {
        if self.pending.is_some() { self.checkpoint() } else { Ok(()) }
    }

    /// Makes every group so far durable in the store file, committing the open
    /// transaction (or an empty one) with a sync and a fresh salt for the journal's
    /// frames, then starts the journal over. When the commit fails the database is
    /// reopened, which replays the journal; `Err` when that fails too.
    pub(super) fn checkpoint(&mut self) -> std::result::Result<(), String> {
        let salt = self.journal.as_ref().map(|_| fresh_salt());
        if !self.synced_commit(salt) {
            return self.reopen();
        }
        self.unsynced_since = None;
        if let (Some(journal), Some(salt)) = (self.journal.as_mut(), salt) {
            journal.restart(salt);
        }
        Ok(())
    }

    /// Commits the open transaction of journal mode, or else an empty one, with a sync
    /// (and `salt` stored as the journal's): every commit before it is then durable
    /// too. `false` when that failed.
    fn synced_commit(&mut self, salt: Option<u64>) -> bool {
        let txn = match self.pending.take() {
            Some(txn) => Some(txn),
            None => self.db.as_ref().and_then(|db| db.begin_write().ok()),
        };
        txn.and_then(|mut txn| {
            if let Some(salt) = salt {
                store_salt(&txn, salt, &self.config.path).ok()?;
            }
            txn.set_durability(redb::Durability::Immediate).ok()?;
            txn.commit().ok()
        })
        .is_some()
    }

    pub(super) fn sync_deadline(&self) -> Option<Instant> {
        match (self.config.durability, self.unsynced_since) {
            (Durability::Periodic { interval }, Some(since)) => Some(since + interval),
            (Durability::Journal, Some(since)) => Some(since + self.config.checkpoint_interval),
            _ => None,
        }
    }

    /// Makes every commit so far durable when the periodic interval has passed (or
    /// always, with `force`). A failed sync reopens the database (the next commit
    /// retries); `Err` when that fails too.
    pub(super) fn sync_if_needed(&mut self, force: bool) -> std::result::Result<(), String> {
        let Some(deadline) = self.sync_deadline() else {
            return Ok(());
        };
        if !force && Instant::now() < deadline {
            return Ok(());
        }
        if self.journal.is_some() {
            return self.checkpoint();
        }
        if self.synced_commit(None) {
            self.unsynced_since = None;
            self.mark_durable(self.lsn);
            Ok(())
        } else {
            self.reopen()
        }
    }
}
