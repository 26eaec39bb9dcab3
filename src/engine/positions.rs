//! Source positions within a group: checking a batch's positions against the stored
//! ones (redelivery, gaps) and recording them in the group's transaction.

use crate::base::error::Error;
use crate::engine::tables::Fail;
use crate::schema::op::{Follows, Position};
use crate::storage::format::POSITIONS;
use redb::{ReadableTable, Table, WriteTransaction};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// What a batch's positions allow.
pub(super) enum Check {
    /// Apply the batch, then record its positions.
    Apply,
    /// Every position was reached already: skip the batch whole.
    Redelivery,
}

/// The positions of one group: those its batches recorded, over the stored ones.
pub(super) struct GroupPositions<'t> {
    table: Option<Table<'t, (&'static str, u32), u64>>,
    recorded: HashMap<(Arc<str>, u32), u64>,
}

impl<'t> GroupPositions<'t> {
    pub(super) fn new() -> Self {
        GroupPositions { table: None, recorded: HashMap::new() }
    }

    fn table(
        &mut self,
        txn: &'t WriteTransaction,
        file: &Path,
    ) -> Result<&mut Table<'t, (&'static str, u32), u64>, Fail> {
        let table = match self.table.take() {
            Some(table) => table,
            None => txn
                .open_table(POSITIONS)
                .map_err(|e| Fail::Group(Error::storage(file, "opening the positions", e)))?,
        };
        Ok(self.table.insert(table))
    }

    /// The position of `(source, partition)` as the group has left it.
    fn stored(
        &mut self,
        txn: &'t WriteTransaction,
        file: &Path,
        source: &Arc<str>,
        partition: u32,
    ) -> Result<Option<u64>, Fail> {
        if let Some(&p) = self.recorded.get(&(Arc::clone(source), partition)) {
            return Ok(Some(p));
        }
        let table = self.table(txn, file)?;
        let stored = table
            .get((&**source, partition))
            .map_err(|e| Fail::Group(Error::storage(file, "reading a position", e)))?;
        Ok(stored.map(|p| p.value()))
    }

    /// Whether a batch carrying `positions` applies, is a redelivery, or is refused
    /// (`Fail::Batch`): some positions reached and others not, or a gap.
    pub(super) fn check(
        &mut self,
        txn: &'t WriteTransaction,
        file: &Path,
        positions: &[Position],
    ) -> Result<Check, Fail> {
        let mut reached = None;
        let mut ahead = None;
        for p in positions {
            let stored = self.stored(txn, file, &p.source, p.partition)?;
            if stored.is_some_and(|s| s >= p.at) {
                reached.get_or_insert((p, stored));
            } else {
                if let Follows::Exactly(previous) = p.follows
                    && previous != stored
                {
                    return Err(Fail::Batch(Error::PositionGap {
                        source: p.source.to_string(),
                        partition: p.partition,
                        position: p.at,
                        follows: previous,
                        stored,
                    }));
                }
                ahead.get_or_insert(p);
            }
        }
        match (reached, ahead) {
            (None, _) => Ok(Check::Apply),
            (Some(_), None) => Ok(Check::Redelivery),
            (Some((old, stored)), Some(new)) => Err(Fail::Batch(Error::PartialRedelivery {
                source: old.source.to_string(),
                partition: old.partition,
                position: old.at,
                stored: stored.unwrap_or_default(),
                ahead: format!("{} partition {} at {}", new.source, new.partition, new.at),
            })),
        }
    }

    /// Records `positions` for the group; [`write`](GroupPositions::write) stores the
    /// last of each partition at the end of the group.
    pub(super) fn record(&mut self, positions: &[Position]) {
        for p in positions {
            self.recorded.insert((Arc::clone(&p.source), p.partition), p.at);
        }
    }

    /// Stores the positions the group recorded in its transaction, once per partition.
    pub(super) fn write(&mut self, txn: &'t WriteTransaction, file: &Path) -> Result<(), Fail> {
        if self.recorded.is_empty() {
            return Ok(());
        }
        let recorded = std::mem::take(&mut self.recorded);
        let table = self.table(txn, file)?;
        for ((source, partition), at) in &recorded {
            table
                .insert((&**source, *partition), *at)
                .map_err(|e| Fail::Group(Error::storage(file, "writing a position", e)))?;
        }
        self.recorded = recorded;
        Ok(())
    }

    /// The positions the group recorded.
    pub(super) fn into_recorded(self) -> HashMap<(Arc<str>, u32), u64> {
        self.recorded
    }
}
