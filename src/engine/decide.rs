//! What one operation does to one key, given the key's state: the version rules, for a
//! view without sources (one version per record) and for a view with sources (one
//! version per source, `storage::sources`). Pure functions; `apply` finds the state
//! and keeps what they decide.

use crate::base::version::{Outcome, Version};
use crate::engine::tables::{Fail, Pending};
use crate::mem::AnyValue;
use crate::schema::op::{OpKind, UpdateResult};
use crate::storage::format::Record;
use crate::storage::sources::SourceVersions;

/// A key's state as the group has left it so far.
#[derive(Clone)]
pub(super) struct State {
    /// The version of the live record or tombstone (for a view with sources, the
    /// largest of its sources'); `None` when there is neither.
    pub(super) stored: Option<Version>,
    /// Whether there is a live record (not a tombstone, not absent).
    pub(super) is_live: bool,
    /// The live value, when it was needed: by an `update` closure or an index diff.
    /// Reading it for every put would cost a resident lookup that nothing uses.
    pub(super) live: Option<AnyValue>,
    /// The per-source versions of a record of a view with sources; `None` for an
    /// absent record and for every record of a view without sources.
    pub(super) sources: Option<Box<SourceVersions>>,
}

/// An operation's outcome and, when it writes, the key's next state and the record to
/// store.
pub(super) type Decision = (Outcome, Option<(State, Pending)>);

impl State {
    /// No record and no tombstone.
    pub(super) fn absent() -> Self {
        State { stored: None, is_live: false, live: None, sources: None }
    }

    /// The state of a stored record, its live value not read.
    pub(super) fn of_record(record: Record<'_>) -> Self {
        let (stored, is_live) = (Some(record.version()), record.live().is_some());
        let sources = match record {
            Record::SourcedLive { sources, .. } | Record::SourcedTombstone { sources } => {
                Some(Box::new(sources))
            }
            Record::Live { .. } | Record::Tombstone { .. } => None,
        };
        State { stored, is_live, live: None, sources }
    }

    /// Whether the key holds a tombstone: a stored version and no live record.
    pub(super) fn is_tombstone(&self) -> bool {
        self.stored.is_some() && !self.is_live
    }

    /// Whether `purge_tombstones(below)` from `source` removes this record: a tombstone
    /// below `below`; of a view with sources, one that `source` deleted last, below
    /// `below` in that source's version.
    pub(super) fn purgeable(&self, source: Option<u8>, below: Version) -> bool {
        if self.is_live {
            return false;
        }
        match (source, self.sources.as_deref()) {
            (None, None) => self.stored.is_some_and(|v| v < below),
            (Some(s), Some(versions)) => {
                versions.deleter() == Some(s) && versions.get(s).is_some_and(|v| v < below)
            }
            _ => false,
        }
    }
}

/// What `kind`, from `source` (`None` for a view without sources), does to a key in
/// `state`. Purges act on a whole view and are handled before this.
pub(super) fn decide(state: &State, kind: OpKind, source: Option<u8>) -> Result<Decision, Fail> {
    match source {
        None => plain(state, kind),
        Some(source) => sourced(state, kind, source),
    }
}

/// One version per record: a write applies when it is newer than the record's.
fn plain(state: &State, kind: OpKind) -> Result<Decision, Fail> {
    let not_newer = |version: Version| state.stored.filter(|&c| version <= c);
    let live_version = state.stored.filter(|_| state.is_live);
    Ok(match kind {
        OpKind::Put { version, bytes, value } => match not_newer(version) {
            Some(current) => (Outcome::Stale { current }, None),
            None => (Outcome::Applied, Some(live(version, bytes, value))),
        },
        OpKind::Delete { version } => match not_newer(version) {
            Some(current) => (Outcome::Stale { current }, None),
            None => (Outcome::Applied, Some(tombstone(version))),
        },
        OpKind::CompareAndSet { expected, version, bytes, value } => {
            if live_version != expected {
                (Outcome::Conflict { current: live_version }, None)
            } else if let Some(current) = not_newer(version) {
                (Outcome::Stale { current }, None)
            } else {
                (Outcome::Applied, Some(live(version, bytes, value)))
            }
        }
        OpKind::CompareAndDelete { expected, version } => {
            if live_version != Some(expected) {
                (Outcome::Conflict { current: live_version }, None)
            } else if let Some(current) = not_newer(version) {
                (Outcome::Stale { current }, None)
            } else {
                (Outcome::Applied, Some(tombstone(version)))
            }
        }
        OpKind::Update { version, f } => match not_newer(version) {
            Some(current) => (Outcome::Stale { current }, None),
            None => match f(state.live.as_deref()) {
                UpdateResult::Unchanged => (Outcome::Unchanged, None),
                UpdateResult::Value { bytes, value } => {
                    (Outcome::Applied, Some(live(version, bytes, value)))
                }
                UpdateResult::Delete => (Outcome::Applied, Some(tombstone(version))),
                UpdateResult::Failed(e) => return Err(Fail::Batch(e)),
            },
        },
        // `apply` handles purges, and gives an update at the next version its version.
        OpKind::PurgeTombstones { .. } | OpKind::UpdateNext { .. } => (Outcome::Unchanged, None),
        OpKind::SetLive { version, bytes, value } => {
            (Outcome::Applied, Some(live(version, bytes, value)))
        }
        OpKind::SetTombstone { version } => (Outcome::Applied, Some(tombstone(version))),
        OpKind::Remove => match state.stored {
            Some(version) => {
                (Outcome::Purged { count: 1 }, Some((State::absent(), Pending::Remove { version })))
            }
            None => (Outcome::Unchanged, None),
        },
    })
}

/// One version per source: a write from `source` applies when it is newer than that
/// source's version, and only the deleter of a tombstone brings its record back; a
/// newer write from another source is recorded on the tombstone (`Tombstoned`).
fn sourced(state: &State, kind: OpKind, source: u8) -> Result<Decision, Fail> {
    let versions = state.sources.as_deref();
    let mine = versions.and_then(|v| v.get(source));
    let not_newer = |version: Version| mine.filter(|&c| version <= c);
    // What a compare-and-set or compare-and-delete compares: this source's version of
    // the live record.
    let compared = mine.filter(|_| state.is_live);
    let deleted_by_other = versions
        .filter(|_| !state.is_live)
        .and_then(SourceVersions::deleter)
        .is_some_and(|d| d != source);
    // The versions after a write from this source at `version`.
    let next = |version: Version| {
        let mut next = versions.cloned().unwrap_or_default();
        next.set(source, version);
        Box::new(next)
    };
    let recorded = |version: Version| {
        let next = next(version);
        let deleter_version = next.deleter().and_then(|d| next.get(d)).unwrap_or_default();
        (Outcome::Tombstoned { deleter_version }, Some(sourced_tombstone(next)))
    };
    let deleted = |version: Version| {
        let mut next = next(version);
        next.set_deleter(Some(source));
        (Outcome::Applied, Some(sourced_tombstone(next)))
    };
    Ok(match kind {
        OpKind::Put { version, bytes, value } => match not_newer(version) {
            Some(current) => (Outcome::Stale { current }, None),
            None if deleted_by_other => recorded(version),
            None => (Outcome::Applied, Some(sourced_live(next(version), bytes, value))),
        },
        OpKind::Delete { version } => match not_newer(version) {
            Some(current) => (Outcome::Stale { current }, None),
            None => deleted(version),
        },
        OpKind::CompareAndSet { expected, version, bytes, value } => {
            if compared != expected {
                (Outcome::Conflict { current: compared }, None)
            } else if let Some(current) = not_newer(version) {
                (Outcome::Stale { current }, None)
            } else if deleted_by_other {
                recorded(version)
            } else {
                (Outcome::Applied, Some(sourced_live(next(version), bytes, value)))
            }
        }
        OpKind::CompareAndDelete { expected, version } => {
            if compared != Some(expected) {
                (Outcome::Conflict { current: compared }, None)
            } else if let Some(current) = not_newer(version) {
                (Outcome::Stale { current }, None)
            } else {
                deleted(version)
            }
        }
        OpKind::Update { version, f } => match not_newer(version) {
            Some(current) => (Outcome::Stale { current }, None),
            // The closure is not run: its result could not be stored.
            None if deleted_by_other => recorded(version),
            None => match f(state.live.as_deref()) {
                UpdateResult::Unchanged => (Outcome::Unchanged, None),
                UpdateResult::Value { bytes, value } => {
                    (Outcome::Applied, Some(sourced_live(next(version), bytes, value)))
                }
                UpdateResult::Delete => deleted(version),
                UpdateResult::Failed(e) => return Err(Fail::Batch(e)),
            },
        },
        // `apply` handles purges, and gives an update at the next version its version.
        // Replicated states are for views without sources (`Replicator::view`).
        OpKind::PurgeTombstones { .. }
        | OpKind::UpdateNext { .. }
        | OpKind::SetLive { .. }
        | OpKind::SetTombstone { .. }
        | OpKind::Remove => (Outcome::Unchanged, None),
    })
}

fn live(version: Version, bytes: Vec<u8>, value: AnyValue) -> (State, Pending) {
    let state = State { stored: Some(version), is_live: true, live: Some(value), sources: None };
    (state, Pending::Live { version, bytes })
}

fn tombstone(version: Version) -> (State, Pending) {
    (State { stored: Some(version), ..State::absent() }, Pending::Tombstone { version })
}

fn sourced_live(
    mut versions: Box<SourceVersions>,
    bytes: Vec<u8>,
    value: AnyValue,
) -> (State, Pending) {
    versions.set_deleter(None);
    let state = State {
        stored: versions.latest(),
        is_live: true,
        live: Some(value),
        sources: Some(versions.clone()),
    };
    (state, Pending::Sourced { sources: versions, bytes: Some(bytes) })
}

fn sourced_tombstone(versions: Box<SourceVersions>) -> (State, Pending) {
    let state = State {
        stored: versions.latest(),
        is_live: false,
        live: None,
        sources: Some(versions.clone()),
    };
    (state, Pending::Sourced { sources: versions, bytes: None })
}
