//! The writer's side of [`Durability::Journal`](crate::Durability::Journal): appending
//! each group's effects to the journal before it is acknowledged, and checkpointing
//! (a synced redb commit, then an empty journal) when the journal reaches its limit,
//! when its oldest group reaches the checkpoint interval, and at close.

use crate::base::error::Result;
use crate::base::feed::FeedGroup;
use crate::base::version::Lsn;
use crate::engine::writer::Writer;
use crate::storage::feed::encode_group;
use crate::storage::journal::effects::GroupEffects;
use crate::storage::journal::frame;
use std::time::Instant;

impl Writer {
    /// Appends the group `lsn` to the journal and syncs it. `Err` when that failed: the
    /// group fails, and the journal refuses further appends (the writer then stops).
    pub(super) fn journal_group(
        &mut self,
        mut effects: GroupEffects,
        lsn: Lsn,
        feed: Option<&FeedGroup>,
        pruned: Option<Lsn>,
    ) -> Result<()> {
        effects.lsn = lsn.get();
        effects.follows = self.lsn.get();
        effects.feed_row = feed.map(encode_group);
        effects.feed_pruned = pruned.map(Lsn::get);
        let frame = frame::encode(lsn.get(), &effects.encode());
        let Some(journal) = self.journal.as_mut() else {
            return Ok(());
        };
        journal.append(&frame)?;
        if self.unsynced_since.is_none() {
            self.unsynced_since = Some(Instant::now());
        }
        Ok(())
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

    /// Makes every group so far durable in the store file with a synced, empty redb
    /// commit, then empties the journal. When the commit fails the database is reopened,
    /// which replays the journal; `Err` when that fails too, or when the journal cannot
    /// be emptied.
    pub(super) fn checkpoint(&mut self) -> std::result::Result<(), String> {
        let synced = self.db.as_ref().and_then(|db| {
            let mut txn = db.begin_write().ok()?;
            txn.set_durability(redb::Durability::Immediate).ok()?;
            txn.commit().ok()
        });
        if synced.is_none() {
            return self.reopen();
        }
        self.unsynced_since = None;
        match self.journal.as_mut().map(crate::storage::journal::log::Journal::truncate) {
            Some(Err(e)) => Err(format!("emptying the journal after a checkpoint failed: {e}")),
            _ => Ok(()),
        }
    }
}
