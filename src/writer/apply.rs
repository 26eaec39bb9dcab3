//! The pure part of the writer: apply a group of batches to one write transaction.
//!
//! Version checks, compare-and-set, update closures and tombstone purges happen here,
//! with no thread or channel in sight, so that this can be tested and fuzzed alone.
//! A batch is first worked out in memory against the state the group has reached, and
//! written to the transaction only if every one of its operations succeeded: a failing
//! batch leaves no trace, and the batches after it see the group without it.

use crate::batch::{Op, OpKind, UpdateResult};
use crate::codec::KeyBuf;
use crate::error::{Error, Result};
use crate::format::{Record, view_table};
use crate::resident::{AnyValue, Change, Root};
use crate::version::{Outcome, Version};
use redb::{ReadableTable, Table, WriteTransaction};
use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::path::Path;
use std::sync::Arc;

/// What the writer knows of each registered view.
pub(crate) struct ViewInfo {
    pub(crate) name: Arc<str>,
    pub(crate) table: String,
    pub(crate) render_key: fn(&[u8]) -> String,
}

/// The result of applying a group: one result per batch, and the changes to publish to
/// the resident layer once the transaction commits.
pub(crate) struct Applied {
    pub(crate) results: Vec<Result<Vec<Outcome>>>,
    pub(crate) changes: Vec<(usize, Vec<Change>)>,
}

impl Applied {
    pub(crate) fn any_committed(&self) -> bool {
        self.results.iter().any(Result::is_ok)
    }
}

/// A key's state as the group has left it so far.
#[derive(Clone)]
struct State {
    /// The version of the live record or tombstone; `None` when there is neither.
    stored: Option<Version>,
    /// The live value; `None` for a tombstone or an absent key.
    live: Option<AnyValue>,
}

enum Pending {
    Live { version: Version, bytes: Vec<u8> },
    Tombstone { version: Version },
    Remove,
}

/// A failure of one batch, or of the whole group (storage).
enum Fail {
    Batch(Error),
    Group(Error),
}

type Key = (usize, KeyBuf);

struct Group<'t, 'v> {
    txn: &'t WriteTransaction,
    views: &'v [ViewInfo],
    root: &'v Root,
    file: &'v Path,
    tables: HashMap<usize, Table<'t, &'static [u8], &'static [u8]>>,
    overlay: HashMap<Key, State>,
}

/// Applies `batches` to `txn`. `Err` only for storage failures, which fail the group.
pub(crate) fn apply_group(
    txn: &WriteTransaction,
    views: &[ViewInfo],
    root: &Root,
    file: &Path,
    batches: Vec<Vec<Op>>,
) -> Result<Applied> {
    let mut group = Group {
        txn,
        views,
        root,
        file,
        tables: HashMap::new(),
        overlay: HashMap::new(),
    };
    let mut results = Vec::with_capacity(batches.len());
    for ops in batches {
        let mut local: HashMap<Key, (State, Option<Pending>)> = HashMap::new();
        match group.apply_batch(ops, &mut local) {
            Ok(outcomes) => {
                group.write_batch(local)?;
                results.push(Ok(outcomes));
            }
            Err(Fail::Batch(e)) => results.push(Err(e)),
            Err(Fail::Group(e)) => return Err(e),
        }
    }
    let mut per_view: HashMap<usize, Vec<Change>> = HashMap::new();
    for ((view, key), state) in group.overlay {
        let new = match (state.stored, state.live) {
            (Some(version), Some(value)) => Some((version, value)),
            _ => None,
        };
        per_view.entry(view).or_default().push(Change { key, new });
    }
    Ok(Applied {
        results,
        changes: per_view.into_iter().collect(),
    })
}

impl<'t> Group<'t, '_> {
    fn storage(&self, during: &'static str, e: impl Into<redb::Error>) -> Fail {
        Fail::Group(Error::storage(self.file, during, e))
    }

    fn view(&self, view: usize) -> Result<&ViewInfo, Fail> {
        self.views.get(view).ok_or_else(|| {
            Fail::Batch(Error::ForeignView {
                view: format!("#{view} (not registered)"),
            })
        })
    }

    fn table(&mut self, view: usize) -> Result<&mut Table<'t, &'static [u8], &'static [u8]>, Fail> {
        match self.tables.entry(view) {
            MapEntry::Occupied(t) => Ok(t.into_mut()),
            MapEntry::Vacant(slot) => {
                let info = self.views.get(view).ok_or_else(|| {
                    Fail::Batch(Error::ForeignView {
                        view: format!("#{view} (not registered)"),
                    })
                })?;
                let table = self.txn.open_table(view_table(&info.table)).map_err(|e| {
                    Fail::Group(Error::storage(self.file, "opening a view table", e))
                })?;
                Ok(slot.insert(table))
            }
        }
    }

    /// The state of `key` before the current operation: this batch's own writes, then
    /// the group's, then the committed store.
    fn current(
        &mut self,
        local: &HashMap<Key, (State, Option<Pending>)>,
        view: usize,
        key: &KeyBuf,
    ) -> Result<State, Fail> {
        let k = (view, key.clone());
        if let Some((state, _)) = local.get(&k) {
            return Ok(state.clone());
        }
        if let Some(state) = self.overlay.get(&k) {
            return Ok(state.clone());
        }
        let file = self.file;
        let stored = {
            let table = self.table(view)?;
            let guard = table
                .get(key.as_bytes())
                .map_err(|e| Fail::Group(Error::storage(file, "reading a record", e)))?;
            guard.map(|bytes| {
                Record::decode(bytes.value())
                    .map(|record| (record.version(), matches!(record, Record::Live { .. })))
            })
        };
        let stored = match stored.transpose() {
            Ok(stored) => stored,
            Err(reason) => {
                let info = self.view(view)?;
                let key = (info.render_key)(key.as_bytes());
                return Err(Fail::Batch(Error::decode(&info.name, key, reason)));
            }
        };
        let live = match stored {
            Some((_, true)) => self
                .root
                .views
                .get(view)
                .and_then(|v| v.value(key.as_bytes())),
            _ => None,
        };
        Ok(State {
            stored: stored.map(|(v, _)| v),
            live,
        })
    }

    fn apply_batch(
        &mut self,
        ops: Vec<Op>,
        local: &mut HashMap<Key, (State, Option<Pending>)>,
    ) -> Result<Vec<Outcome>, Fail> {
        let mut outcomes = Vec::with_capacity(ops.len());
        for Op { view, key, kind } in ops {
            self.view(view)?;
            if let OpKind::PurgeTombstones { below } = kind {
                outcomes.push(self.purge(view, below, local)?);
                continue;
            }
            let state = self.current(local, view, &key)?;
            let newer_or_stale = |version: Version| state.stored.filter(|&c| version <= c);
            let (outcome, next) = match kind {
                OpKind::Put {
                    version,
                    bytes,
                    value,
                } => match newer_or_stale(version) {
                    Some(current) => (Outcome::Stale { current }, None),
                    None => (Outcome::Applied, Some(live(version, bytes, value))),
                },
                OpKind::Delete { version } => match newer_or_stale(version) {
                    Some(current) => (Outcome::Stale { current }, None),
                    None => (Outcome::Applied, Some(tombstone(version))),
                },
                OpKind::CompareAndSet {
                    expected,
                    version,
                    bytes,
                    value,
                } => {
                    let live_version = state.live.as_ref().and(state.stored);
                    if live_version != expected {
                        (
                            Outcome::Conflict {
                                current: live_version,
                            },
                            None,
                        )
                    } else if let Some(current) = newer_or_stale(version) {
                        (Outcome::Stale { current }, None)
                    } else {
                        (Outcome::Applied, Some(live(version, bytes, value)))
                    }
                }
                OpKind::Update { version, f } => match newer_or_stale(version) {
                    Some(current) => (Outcome::Stale { current }, None),
                    None => match f(state.live.as_deref()) {
                        UpdateResult::Unchanged => (Outcome::Unchanged, None),
                        UpdateResult::Value { bytes, value } => {
                            (Outcome::Applied, Some(live(version, bytes, value)))
                        }
                        UpdateResult::Failed(e) => return Err(Fail::Batch(e)),
                    },
                },
                OpKind::PurgeTombstones { .. } => unreachable_purge(),
            };
            if let Some((state, pending)) = next {
                local.insert((view, key), (state, Some(pending)));
            }
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// Stages the removal of every tombstone of `view` below `below`, as this batch
    /// sees the view.
    fn purge(
        &mut self,
        view: usize,
        below: Version,
        local: &mut HashMap<Key, (State, Option<Pending>)>,
    ) -> Result<Outcome, Fail> {
        let mut doomed: Vec<KeyBuf> = Vec::new();
        {
            let file = self.file;
            let table = self.table(view)?;
            let iter = table
                .iter()
                .map_err(|e| Fail::Group(Error::storage(file, "scanning for tombstones", e)))?;
            for item in iter {
                let (k, v) = item
                    .map_err(|e| Fail::Group(Error::storage(file, "scanning for tombstones", e)))?;
                if let Ok(Record::Tombstone { version }) = Record::decode(v.value())
                    && version < below
                {
                    let key = KeyBuf::from_slice(k.value());
                    if !local.contains_key(&(view, key.clone())) {
                        doomed.push(key);
                    }
                }
            }
        }
        for ((v, key), (state, _)) in local.iter() {
            if *v == view && state.live.is_none() && state.stored.is_some_and(|s| s < below) {
                doomed.push(key.clone());
            }
        }
        let count = doomed.len() as u64;
        for key in doomed {
            local.insert(
                (view, key),
                (
                    State {
                        stored: None,
                        live: None,
                    },
                    Some(Pending::Remove),
                ),
            );
        }
        Ok(Outcome::Purged { count })
    }

    /// Writes a batch that succeeded to the transaction and folds it into the group.
    fn write_batch(&mut self, local: HashMap<Key, (State, Option<Pending>)>) -> Result<()> {
        for ((view, key), (state, pending)) in local {
            if let Some(pending) = pending {
                let table = match self.table(view) {
                    Ok(t) => t,
                    Err(Fail::Batch(e) | Fail::Group(e)) => return Err(e),
                };
                let result = match pending {
                    Pending::Live { version, bytes } => table
                        .insert(
                            key.as_bytes(),
                            Record::Live {
                                version,
                                value: &bytes,
                            }
                            .encode()
                            .as_slice(),
                        )
                        .map(drop),
                    Pending::Tombstone { version } => table
                        .insert(
                            key.as_bytes(),
                            Record::Tombstone { version }.encode().as_slice(),
                        )
                        .map(drop),
                    Pending::Remove => table.remove(key.as_bytes()).map(drop),
                };
                if let Err(e) = result {
                    return Err(match self.storage("writing a record", e) {
                        Fail::Batch(e) | Fail::Group(e) => e,
                    });
                }
            }
            self.overlay.insert((view, key), state);
        }
        Ok(())
    }
}

fn live(version: Version, bytes: Vec<u8>, value: AnyValue) -> (State, Pending) {
    (
        State {
            stored: Some(version),
            live: Some(value),
        },
        Pending::Live { version, bytes },
    )
}

fn tombstone(version: Version) -> (State, Pending) {
    (
        State {
            stored: Some(version),
            live: None,
        },
        Pending::Tombstone { version },
    )
}

fn unreachable_purge() -> (Outcome, Option<(State, Pending)>) {
    // Purges are handled before this match; keep the match exhaustive without a panic.
    (Outcome::Purged { count: 0 }, None)
}
