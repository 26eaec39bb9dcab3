//! What one operation does to one key, given the key's state: the version rules.
//! Pure functions; `apply` finds the state and keeps what they decide.

use crate::base::version::{Outcome, Version};
use crate::engine::tables::{Fail, Pending};
use crate::mem::AnyValue;
use crate::schema::op::{OpKind, UpdateResult};

/// A key's state as the group has left it so far.
#[derive(Clone)]
pub(super) struct State {
    /// The version of the live record or tombstone; `None` when there is neither.
    pub(super) stored: Option<Version>,
    /// Whether there is a live record (not a tombstone, not absent).
    pub(super) is_live: bool,
    /// The live value, when it was needed: by an `update` closure or an index diff.
    /// Reading it for every put would cost a resident lookup that nothing uses.
    pub(super) live: Option<AnyValue>,
}

/// What one operation does to a key in `state`: its outcome and, when it writes, the
/// key's next state and the record to store.
pub(super) fn decide(
    state: &State,
    kind: OpKind,
) -> Result<(Outcome, Option<(State, Pending)>), Fail> {
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
        // Purges act on a whole view; `apply_batch` handles them before `decide`.
        OpKind::PurgeTombstones { .. } => (Outcome::Unchanged, None),
    })
}

fn live(version: Version, bytes: Vec<u8>, value: AnyValue) -> (State, Pending) {
    let state = State { stored: Some(version), is_live: true, live: Some(value) };
    (state, Pending::Live { version, bytes })
}

fn tombstone(version: Version) -> (State, Pending) {
    (State { stored: Some(version), is_live: false, live: None }, Pending::Tombstone { version })
}
