//! The pure part of the writer: apply a group of batches to one write transaction.
//!
//! Version checks, compare-and-set, update closures, tombstone purges and index
//! maintenance happen here, with no channel or thread of its own (a large group's
//! tables are written beside the writer through `base::beside`), so that this can be
//! tested and fuzzed alone. A batch is first worked out in memory against the state the
//! group has reached, and written to the transaction only if every one of its
//! operations succeeded: a failing batch leaves no trace, and the batches after it see
//! the group without it.
//!
//! Index maintenance (entries added and removed, unique keys checked) is in `index`.

mod index;

use index::IndexWrite;

use crate::base::beside::WRITE_TABLES_BESIDE_FROM;
use crate::base::error::{Error, ErrorKind, Result};
use crate::base::feed::FeedChange;
use crate::base::index_kind::IndexKind;
use crate::base::order::last_of_each_key;
use crate::base::version::{Outcome, Version};
use crate::engine::decide::{State, decide};
use crate::engine::effects::Recorder;
use crate::engine::feed::FeedChanges;
use crate::engine::positions::{Check, GroupPositions};
use crate::engine::tables::{
    DeferredEntry, Fail, IndexTable, Pending, RecordTable, TableWrites, open_once, open_owned,
    put_records, write_all, write_beside,
};
use crate::keys::KeyBuf;
use crate::mem::Root;
use crate::mem::delta::{Delta, MultiEntries, RecordChange, UniqueChange, ViewDelta};
use crate::schema::op::{Op, OpKind, Submission};
use crate::schema::view_info::ViewInfo;
use crate::storage::format::{Record, index_table, view_table};
use crate::storage::journal::effects::GroupEffects;
use redb::{ReadableTable, WriteTransaction};
use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// What became of a batch that did not fail: the outcomes of its operations (or of its
/// fallback's), or a redelivery skipped whole.
pub(crate) struct Committed {
    pub(crate) outcomes: Vec<Outcome>,
    pub(crate) redelivery: bool,
    pub(crate) fell_back: bool,
    /// How many of the applied outcomes deleted their record.
    pub(crate) deleted: u64,
}

/// The result of applying a group: one result per batch, and the changes to publish to
/// the resident layer once the transaction commits.
pub(crate) struct Applied {
    pub(crate) results: Vec<Result<Committed>>,
    pub(crate) delta: Delta,
    /// The group's changes to views with a feed.
    pub(crate) feed: Vec<FeedChange>,
    /// What the group wrote, when asked for (journal mode); the writer adds the LSN and
    /// the feed row.
    pub(crate) effects: Option<GroupEffects>,
}

impl Applied {
    /// Whether any batch wrote to the transaction (a redelivery writes nothing).
    pub(crate) fn any_committed(&self) -> bool {
        self.results.iter().any(|r| r.as_ref().is_ok_and(|c| !c.redelivery))
    }
}

/// A key touched by the batch being worked out.
struct KeyInBatch {
    before: State,
    now: State,
    pending: Option<Pending>,
}

type Key = (usize, KeyBuf);

/// The group's hash maps of keys: foldhash, seeded per process, as the resident layer
/// hashes its keys (the writer's keys are not chosen by an attacker against this
/// process's seed any more than a reader's).
type KeyMap<V> = HashMap<Key, V, foldhash::fast::RandomState>;

struct Group<'t, 'v> {
    txn: &'t WriteTransaction,
    views: &'v [ViewInfo],
    root: &'v Root,
    file: &'v Path,
    tables: HashMap<usize, RecordTable<'t>>,
    index_tables: HashMap<(usize, usize), IndexTable<'t>>,
    /// Each key the group wrote: its state now, and whether it was a tombstone before
    /// the group (so that the group's change in tombstones is exact, not scanned).
    overlay: KeyMap<(State, bool)>,
    /// The batch being worked out, kept between batches for its allocation.
    scratch: KeyMap<KeyInBatch>,
    unique_changes: HashMap<usize, Vec<UniqueChange>>,
    /// Records to write at the end of the group, per view, in the order the batches
    /// made them (the last write of a key stands). Later batches read the group's
    /// writes from `overlay`, so the table need not hold them until the group ends;
    /// a purge, which scans the table, first writes out its view's.
    records: HashMap<usize, Vec<(KeyBuf, Pending)>>,
    /// Entries of multi indexes to write at the end of the group, in the order the
    /// batches made them: `Some(index key length)` inserts, `None` removes. Nothing
    /// reads a multi index while a group applies, and writing the entries in key order
    /// lets redb's B-tree take them leaf by leaf instead of in scattered order.
    deferred: HashMap<(usize, usize), Vec<DeferredEntry>>,
    /// Per view, the multi-index entries the group wrote, per index: the resident
    /// indexes take them as they are (in key order, one per key).
    multi: HashMap<usize, Vec<(usize, MultiEntries)>>,
    positions: GroupPositions<'t>,
    /// The changes to views with a feed.
    feed: FeedChanges,
    /// What the group writes, for the journal.
    recorder: Recorder,
}

/// Applies `batches` to `txn`; with `record`, also notes what they write
/// ([`Applied::effects`]). `Err` only for storage failures, which fail the group.
pub(crate) fn apply_group(
    txn: &WriteTransaction,
    views: &[ViewInfo],
    root: &Root,
    file: &Path,
    batches: Vec<Submission>,
    record: bool,
) -> Result<Applied> {
    let mut group = Group {
        txn,
        views,
        root,
        file,
        tables: HashMap::new(),
        index_tables: HashMap::new(),
        overlay: KeyMap::default(),
        scratch: KeyMap::default(),
        unique_changes: HashMap::new(),
        records: HashMap::new(),
        deferred: HashMap::new(),
        multi: HashMap::new(),
        positions: GroupPositions::new(),
        feed: FeedChanges::default(),
        recorder: Recorder::new(record),
    };
    let mut results = Vec::with_capacity(batches.len());
    for batch in batches {
        match group.apply_submission(batch) {
            Ok(committed) => results.push(Ok(committed)),
            Err(Fail::Batch(e)) => results.push(Err(e)),
            Err(Fail::Group(e)) => return Err(e),
        }
    }
    group.write_tables().map_err(|f| match f {
        Fail::Batch(e) | Fail::Group(e) => e,
    })?;
    group.positions.write(txn, file).map_err(|f| match f {
        Fail::Batch(e) | Fail::Group(e) => e,
    })?;
    let mut per_view: HashMap<usize, ViewDelta> = HashMap::new();
    for ((view, key), (state, was_tombstone)) in group.overlay {
        let is_tombstone = state.is_tombstone();
        let new = match (state.stored, state.live) {
            (Some(version), Some(value)) => Some((version, value)),
            _ => None,
        };
        let delta = per_view.entry(view).or_default();
        delta.records.push(RecordChange { key, new });
        match (was_tombstone, is_tombstone) {
            (false, true) => delta.tombstones_gained += 1,
            (true, false) => delta.tombstones_lost += 1,
            _ => {}
        }
    }
    for (view, changes) in group.unique_changes {
        per_view.entry(view).or_default().unique = changes;
    }
    for (view, changes) in group.multi {
        per_view.entry(view).or_default().multi = changes;
    }
    let recorded = group.positions.into_recorded();
    let effects = group.recorder.finish(views, &recorded);
    let positions = recorded.into_iter().collect();
    let feed = group.feed.into_changes(views);
    let delta = Delta { views: per_view.into_iter().collect(), positions };
    Ok(Applied { results, delta, feed, effects })
}

impl<'t> Group<'t, '_> {
    /// Applies one batch: skipped whole when its positions were reached already; else
    /// its operations, or when they fail and it has a fallback, the fallback's; then its
    /// positions.
    fn apply_submission(&mut self, batch: Submission) -> Result<Committed, Fail> {
        let Submission { ops, positions, fallback, .. } = batch;
        if let Check::Redelivery = self.positions.check(self.txn, self.file, &positions)? {
            let outcomes = vec![Outcome::Redelivered; ops.len()];
            return Ok(Committed { outcomes, redelivery: true, fell_back: false, deleted: 0 });
        }
        let ((outcomes, deleted), fell_back) = match self.try_ops(ops) {
            Ok(worked_out) => (worked_out, false),
            Err(Fail::Batch(e)) => {
                let Some(fallback) = fallback.filter(|_| e.kind() == ErrorKind::Batch) else {
                    return Err(Fail::Batch(e));
                };
                // The fallback is user code: a panic fails the batch with its own error.
                let ops = catch_unwind(AssertUnwindSafe(|| fallback(&e))).unwrap_or(Err(e))?;
                (self.try_ops(ops)?, true)
            }
            Err(group) => return Err(group),
        };
        self.positions.record(&positions);
        Ok(Committed { outcomes, redelivery: false, fell_back, deleted })
    }

    /// Works out `ops` and writes them to the transaction if all of them succeed.
    /// Returns their outcomes and how many of them deleted their record.
    fn try_ops(&mut self, ops: Vec<Op>) -> Result<(Vec<Outcome>, u64), Fail> {
        let mut local = std::mem::take(&mut self.scratch);
        local.clear();
        let worked_out = self
            .apply_batch(ops, &mut local)
            .and_then(|outcomes| Ok((outcomes, self.index_batch(&local)?)));
        let result = worked_out.and_then(|(outcomes, (writes, changes))| {
            let written = self.write_batch(&mut local, writes, changes);
            written.map_err(|f| match f {
                Fail::Batch(e) | Fail::Group(e) => Fail::Group(e),
            })?;
            Ok(outcomes)
        });
        self.scratch = local;
        result
    }

    fn view(&self, view: usize) -> Result<&ViewInfo, Fail> {
        self.views.get(view).ok_or_else(|| {
            Fail::Batch(Error::ForeignView { view: format!("#{view} (not registered)") })
        })
    }

    fn table(&mut self, view: usize) -> Result<&mut RecordTable<'t>, Fail> {
        let name = self.views.get(view).map(|v| v.table.as_str());
        open_once(self.txn, self.file, &mut self.tables, view, name.map(view_table))
    }

    fn index_table(&mut self, view: usize, index: usize) -> Result<&mut IndexTable<'t>, Fail> {
        let name = self.views.get(view).and_then(|v| v.indexes.get(index)).map(|i| &*i.table);
        open_once(self.txn, self.file, &mut self.index_tables, (view, index), name.map(index_table))
    }

    /// The state of `key` before the current operation: this batch's own writes, then
    /// the group's, then the committed store. `sourced`: whether the view has sources,
    /// so that its stored records must have per-source versions (and others must not).
    fn current(
        &mut self,
        local: &KeyMap<KeyInBatch>,
        view: usize,
        key: &KeyBuf,
        need_value: bool,
        sourced: bool,
    ) -> Result<State, Fail> {
        let k = (view, key.clone());
        if let Some(slot) = local.get(&k) {
            return Ok(slot.now.clone());
        }
        if let Some((state, _)) = self.overlay.get(&k) {
            return Ok(state.clone());
        }
        // A view without sources: the resident layer holds every live record with its
        // version, as the last commit left it, and counts the tombstones. A live key, or
        // any key of a view without tombstones, needs no read of the table; only a key
        // that may be a tombstone does. (Records of the wrong layout fail at open,
        // `engine/load.rs`, so the resident layer holds none.) A view with sources
        // reads the table for its per-source versions.
        if !sourced && let Some(resident) = self.root.views.get(view) {
            if let Some((version, live)) = resident.live_version(key.as_bytes(), need_value) {
                return Ok(State { stored: Some(version), is_live: true, live, sources: None });
            }
            if resident.tombstones() == 0 {
                return Ok(State::absent());
            }
        }
        let file = self.file;
        let stored = {
            let table = self.table(view)?;
            let guard = table
                .get(key.as_bytes())
                .map_err(|e| Fail::Group(Error::storage(file, "reading a record", e)))?;
            guard.map(|bytes| Record::decode(bytes.value()).map(State::of_record))
        };
        let mut state = match stored.transpose() {
            Ok(stored) if stored.as_ref().is_some_and(|s| s.sources.is_some() != sourced) => {
                let reason = if sourced {
                    "a record without per-source versions in a view with sources"
                } else {
                    "a record with per-source versions in a view without sources"
                };
                return Err(self.decode_error(view, key, reason.into()));
            }
            Ok(stored) => stored.unwrap_or_else(State::absent),
            Err(reason) => return Err(self.decode_error(view, key, reason)),
        };
        if state.is_live && need_value {
            state.live = self.root.views.get(view).and_then(|v| v.value(key.as_bytes()));
        }
        Ok(state)
    }

    /// A stored record of `key` that does not decode, or does not belong in its view.
    fn decode_error(&self, view: usize, key: &KeyBuf, reason: String) -> Fail {
        match self.view(view) {
            Ok(info) => {
                let key = (info.render_key)(key.as_bytes());
                Fail::Batch(Error::decode(&info.name, key, reason))
            }
            Err(fail) => fail,
        }
    }

    fn apply_batch(
        &mut self,
        ops: Vec<Op>,
        local: &mut KeyMap<KeyInBatch>,
    ) -> Result<(Vec<Outcome>, u64), Fail> {
        let mut outcomes = Vec::with_capacity(ops.len());
        let mut deleted = 0;
        for Op { view, source, key, kind } in ops {
            let has_indexes = !self.view(view)?.indexes.is_empty();
            let outcome = match kind {
                OpKind::PurgeTombstones { below } => {
                    self.write_records(view)?;
                    self.purge(view, source, below, local)?
                }
                kind => {
                    let need_value = has_indexes
                        || matches!(kind, OpKind::Update { .. } | OpKind::UpdateNext { .. });
                    let state = self.current(local, view, &key, need_value, source.is_some())?;
                    let kind = match kind {
                        // The version after the stored one, of the writing source for a
                        // view with sources; past the largest there is none: stale.
                        OpKind::UpdateNext { f } => {
                            let stored = match (source, state.sources.as_deref()) {
                                (Some(s), Some(versions)) => versions.get(s),
                                _ => state.stored,
                            };
                            OpKind::Update { version: stored.map_or(1, |v| v.saturating_add(1)), f }
                        }
                        kind => kind,
                    };
                    let (outcome, next) = decide(&state, kind, source)?;
                    if let Some((now, pending)) = next {
                        if outcome == Outcome::Applied && now.is_tombstone() {
                            deleted += 1;
                        }
                        match local.entry((view, key)) {
                            MapEntry::Occupied(mut slot) => {
                                let slot = slot.get_mut();
                                slot.now = now;
                                slot.pending = Some(pending);
                            }
                            MapEntry::Vacant(slot) => {
                                slot.insert(KeyInBatch {
                                    before: state,
                                    now,
                                    pending: Some(pending),
                                });
                            }
                        }
                    }
                    outcome
                }
            };
            outcomes.push(outcome);
        }
        Ok((outcomes, deleted))
    }

    /// Stages the removal of every tombstone of `view` below `below`, as this batch
    /// sees the view; for a view with sources, of those `source` deleted last, below
    /// `below` in its version.
    fn purge(
        &mut self,
        view: usize,
        source: Option<u8>,
        below: Version,
        local: &mut KeyMap<KeyInBatch>,
    ) -> Result<Outcome, Fail> {
        let mut doomed: Vec<(KeyBuf, State)> = Vec::new();
        {
            let file = self.file;
            let scan_error = |e| Fail::Group(Error::storage(file, "scanning for tombstones", e));
            let table = self.table(view)?;
            for item in table.iter().map_err(scan_error)? {
                let (k, v) = item.map_err(scan_error)?;
                let Ok(record) = Record::decode(v.value()) else { continue };
                if record.live().is_some() {
                    continue;
                }
                let before = State::of_record(record);
                if before.purgeable(source, below) {
                    let key = KeyBuf::from_slice(k.value());
                    if !local.contains_key(&(view, key.clone())) {
                        doomed.push((key, before));
                    }
                }
            }
        }
        for ((v, key), slot) in local.iter() {
            if *v == view && slot.now.purgeable(source, below) {
                doomed.push((key.clone(), slot.before.clone()));
            }
        }
        let count = doomed.len() as u64;
        for (key, before) in doomed {
            let now = State::absent();
            let pending = Some(Pending::Remove { version: before.stored.unwrap_or_default() });
            local.insert((view, key), KeyInBatch { before, now, pending });
        }
        Ok(Outcome::Purged { count })
    }

    /// Writes a batch that succeeded to the transaction and folds it into the group.
    fn write_batch(
        &mut self,
        local: &mut KeyMap<KeyInBatch>,
        index_writes: Vec<IndexWrite>,
        index_changes: Vec<(usize, UniqueChange)>,
    ) -> Result<(), Fail> {
        let file = self.file;
        let write_error = |e| Fail::Group(Error::storage(file, "writing an index", e));
        for ((view, key), slot) in local.drain() {
            if let Some(pending) = slot.pending {
                self.records.entry(view).or_default().push((key.clone(), pending));
            }
            // A key the group had not written yet: `before` is its committed state.
            match self.overlay.entry((view, key)) {
                MapEntry::Occupied(mut entry) => entry.get_mut().0 = slot.now,
                MapEntry::Vacant(entry) => {
                    entry.insert((slot.now, slot.before.is_tombstone()));
                }
            }
        }
        for w in index_writes {
            let unique = self.view(w.view)?.indexes.get(w.index).map(|i| i.kind);
            if unique != Some(IndexKind::Unique) {
                let entries = self.deferred.entry((w.view, w.index)).or_default();
                entries.push((w.key, w.insert.then_some(w.ikey_len)));
                continue;
            }
            self.recorder.unique(w.view, w.index, &w.key, w.insert.then_some(w.ikey_len));
            let table = self.index_table(w.view, w.index)?;
            if w.insert {
                table.insert(w.key.as_bytes(), w.ikey_len).map_err(write_error)?;
            } else {
                table.remove(w.key.as_bytes()).map_err(write_error)?;
            }
        }
        for (view, change) in index_changes {
            self.unique_changes.entry(view).or_default().push(change);
        }
        Ok(())
    }
}

impl Group<'_, '_> {
    /// Writes out the group's records of `view` so far, so that its table holds them.
    fn write_records(&mut self, view: usize) -> Result<(), Fail> {
        let Some(entries) = self.records.remove(&view) else { return Ok(()) };
        let file = self.file;
        let entries = last_of_each_key(entries);
        if let Some(info) = self.views.get(view) {
            self.feed.note(info, view, &entries);
        }
        self.recorder.records(self.views, view, &entries);
        put_records(self.table(view)?, entries, file)
    }

    /// Writes the group's records and multi-index entries, each table in key order (so
    /// that redb's B-tree takes them leaf by leaf) with the last write of a key
    /// standing, and keeps the multi-index entries as the changes of the resident
    /// indexes. Large groups write on two threads: each table takes the whole of one
    /// thread, so the tables are shared out by their number of writes.
    fn write_tables(&mut self) -> Result<(), Fail> {
        let (txn, file) = (self.txn, self.file);
        let mut jobs = Vec::new();
        for (view, entries) in std::mem::take(&mut self.records) {
            let name = self.views.get(view).map(|v| view_table(&v.table));
            let table = open_owned(txn, file, &mut self.tables, &view, name)?;
            let entries = last_of_each_key(entries);
            if let Some(info) = self.views.get(view) {
                self.feed.note(info, view, &entries);
            }
            self.recorder.records(self.views, view, &entries);
            jobs.push(TableWrites::Records(table, entries));
        }
        for ((view, index), entries) in std::mem::take(&mut self.deferred) {
            let info = self.views.get(view).and_then(|v| v.indexes.get(index));
            let name = info.map(|i| index_table(&i.table));
            let table = open_owned(txn, file, &mut self.index_tables, &(view, index), name)?;
            let entries = last_of_each_key(entries);
            self.recorder.index(self.views, (view, index), &entries);
            jobs.push(TableWrites::Index((view, index), table, entries));
        }
        let total: usize = jobs.iter().map(TableWrites::len).sum();
        let written = if jobs.len() < 2 || total < WRITE_TABLES_BESIDE_FROM {
            write_all(jobs, file)?
        } else {
            write_beside(jobs, file)?
        };
        for ((view, index), entries) in written {
            let changes = entries
                .into_iter()
                .map(|(key, entry)| {
                    let pk = entry.and_then(|len| key.as_bytes().get(len as usize..));
                    let pk = pk.map(KeyBuf::from_slice);
                    (key, pk)
                })
                .collect();
            self.multi.entry(view).or_default().push((index, changes));
        }
        Ok(())
    }
}
