//! What a group writes, noted for the journal while the apply step writes it
//! ([`Durability::Journal`](crate::Durability::Journal)): the same entries that go to
//! the redb tables, as bytes, so that a replay of the journal leaves the tables exactly
//! as the group did. Off in the other modes, where it costs one branch per table.

use crate::engine::tables::{DeferredEntry, Pending, record_bytes};
use crate::keys::{KeyBuf, WideKey};
use crate::schema::view_info::ViewInfo;
use crate::storage::journal::effects::{Bytes, GroupEffects};
use std::collections::HashMap;
use std::sync::Arc;

/// Unique-index entries written while batches apply, per (view, index), in order.
type UniqueWrites = HashMap<(usize, usize), Vec<(Bytes, Option<u32>)>>;

/// Collects a group's effects, when the journal wants them.
pub(super) struct Recorder {
    effects: Option<GroupEffects>,
    unique: UniqueWrites,
}

impl Recorder {
    /// A recorder that notes everything (`on`) or nothing.
    pub(super) fn new(on: bool) -> Self {
        Recorder { effects: on.then(GroupEffects::new), unique: HashMap::new() }
    }

    /// Notes the records written to `view`'s table, one per key, as they are written.
    pub(super) fn records(
        &mut self,
        views: &[ViewInfo],
        view: usize,
        entries: &[(KeyBuf, Pending)],
    ) {
        let (Some(effects), Some(info)) = (self.effects.as_mut(), views.get(view)) else {
            return;
        };
        let entries = entries.iter().map(|(key, pending)| {
            (Bytes(key.as_bytes().to_vec()), record_bytes(pending).map(Bytes))
        });
        effects.records(&info.table, entries.collect());
    }

    /// Notes the multi-index entries written to index `index` of `view`.
    pub(super) fn index(
        &mut self,
        views: &[ViewInfo],
        (view, index): (usize, usize),
        entries: &[DeferredEntry],
    ) {
        let (Some(effects), Some(info)) =
            (self.effects.as_mut(), views.get(view).and_then(|v| v.indexes.get(index)))
        else {
            return;
        };
        let entries = entries.iter().map(|(key, len)| (Bytes(key.as_bytes().to_vec()), *len));
        effects.index(&info.table, entries.collect());
    }

    /// Notes one unique-index entry inserted (`Some(index key length)`) or removed.
    pub(super) fn unique(&mut self, view: usize, index: usize, key: &WideKey, len: Option<u32>) {
        if self.effects.is_some() {
            let key = Bytes(key.as_bytes().to_vec());
            self.unique.entry((view, index)).or_default().push((key, len));
        }
    }

    /// The group's effects, with the positions it recorded; `None` when off.
    pub(super) fn finish(
        self,
        views: &[ViewInfo],
        positions: &HashMap<(Arc<str>, u32), u64>,
    ) -> Option<GroupEffects> {
        let mut effects = self.effects?;
        for ((view, index), entries) in self.unique {
            if let Some(info) = views.get(view).and_then(|v| v.indexes.get(index)) {
                effects.index(&info.table, entries);
            }
        }
        effects.positions =
            positions.iter().map(|((source, p), at)| (source.to_string(), *p, *at)).collect();
        Some(effects)
    }
}
