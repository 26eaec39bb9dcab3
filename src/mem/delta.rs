//! The one protocol between the writer and the read layer: a [`Delta`], what a committed
//! group changes, handed over once its transaction has committed.
//!
//! Invariants the writer upholds and the read layer relies on:
//! 1. Each record key of a view appears at most once in its [`ViewDelta::records`],
//!    with its final state after the whole group.
//! 2. Every index entry a delta adds or keeps points at a record that is live after
//!    the delta (so a reader never finds an index hit whose record is missing).
//! 3. A multi index's changes are in key order, one per key ([`SortedChange`]); a
//!    unique index's changes are in the order the group's batches made them.

use crate::base::version::Version;
use crate::keys::{KeyBuf, WideKey};
use crate::mem::AnyValue;
use crate::mem::ordered::SortedChange;
use std::sync::Arc;

/// What a committed group changes, view by view (by view id).
#[derive(Default)]
pub(crate) struct Delta {
    pub(crate) views: Vec<(usize, ViewDelta)>,
    /// The source positions the group recorded.
    pub(crate) positions: Vec<((Arc<str>, u32), u64)>,
}

impl Delta {
    /// Record and index changes in all: what the next root costs to build.
    pub(crate) fn size(&self) -> usize {
        self.views.iter().map(|(_, v)| v.records.len() + v.unique.len()).sum()
    }
}

/// Everything a committed group changes in one view.
#[derive(Default)]
pub(crate) struct ViewDelta {
    /// The final state of each record the group touched.
    pub(crate) records: Vec<RecordChange>,
    /// Changes to unique indexes, in the order the group's batches made them.
    pub(crate) unique: Vec<UniqueChange>,
    /// Changes to multi indexes: per index, its entries in key order, one per key.
    pub(crate) multi: Vec<(usize, MultiEntries)>,
    /// Keys that were not tombstones before the group and are after it.
    pub(crate) tombstones_gained: u64,
    /// Keys that were tombstones before the group and are not after it (purged, or
    /// written again).
    pub(crate) tombstones_lost: u64,
}

/// A multi index's changed entries (index key then primary key, mapped to the primary
/// key, or removed), in key order, one per key.
pub(crate) type MultiEntries = Vec<SortedChange<WideKey, KeyBuf>>;

/// A record's state after the group: a live value at a version, or gone (deleted or
/// purged; tombstones are not resident).
pub(crate) struct RecordChange {
    pub(crate) key: KeyBuf,
    pub(crate) new: Option<(Version, AnyValue)>,
}

/// One change to a unique index: record `pk` gains, loses or keeps index key `ikey`.
pub(crate) struct UniqueChange {
    pub(crate) index: usize,
    pub(crate) ikey: WideKey,
    pub(crate) pk: KeyBuf,
    pub(crate) effect: Effect,
}

/// What a change does to an index key of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// The record gains the index key.
    Gain,
    /// The record loses the index key.
    Loss,
    /// The record keeps the index key of a unique index but was written: the entry in
    /// the hash table must take the record's new version and value.
    Keep,
}
