//! Resident secondary indexes: for each index of a view, its entries in a persistent
//! list of sorted leaves (`Sorted`) that lives in the same root as the view's records.
//!
//! A unique index is keyed by the encoded index key; a multi index by the encoded
//! index key followed by the encoded primary key, so that entries sort by index key,
//! then primary key. Both encodings are prefix-free, so the entries of one index key
//! are exactly the keys that start with its encoding. Each ordered entry holds only the
//! record's primary key, and a query takes the value from the view's records.
//!
//! A unique index also has a hash table from index key to the record itself (primary
//! key, version and value), so that a lookup is one probe, as a read by primary key is.
//! A group that writes a record whose unique index keys stay put refreshes those
//! entries of the table (see [`Effect::Keep`]); the ordered entries are left alone.

use super::delta::{Effect, MultiEntries, UniqueChange};
use super::ordered::{OrderedIndex, Sorted, SortedChange};
use super::points::{PointChange, PointIndex, PointSlot};
use super::stats::IndexStats;
use super::{Entry, ViewData};
use crate::base::beside::MULTI_INDEXES_BESIDE_FROM;
use crate::base::index_kind::IndexKind;
use crate::base::order::last_of_each_key;
use crate::keys::composite;
use crate::keys::{KeyBuf, KeyRef, StackKey, WideKey, encode_key_on_stack};
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;

/// The entries of one index: map key (see [`map_key`]) to primary key. A unique index
/// also keeps a hash table from index key to the record, so that a lookup by index key
/// costs one hash probe rather than a tree descent and a second probe.
pub(crate) struct IndexData<V> {
    name: &'static str,
    pub(crate) kind: IndexKind,
    pub(crate) map: Sorted<WideKey, KeyBuf>,
    points: Option<PointIndex<Hit<V>, WideKey>>,
    /// Entries loaded or built at open, in key order, until [`IndexData::seal`].
    loaded: Vec<(WideKey, KeyBuf)>,
}

impl<V> Clone for IndexData<V> {
    fn clone(&self) -> Self {
        IndexData {
            name: self.name,
            kind: self.kind,
            map: self.map.clone(),
            points: self.points.clone(),
            loaded: self.loaded.clone(),
        }
    }
}

/// What a unique index key leads to: the record's primary key and its resident entry.
pub(crate) struct Hit<V> {
    pub(crate) pk: KeyBuf,
    pub(crate) entry: Entry<V>,
}

impl<V> Clone for Hit<V> {
    fn clone(&self) -> Self {
        Hit { pk: self.pk.clone(), entry: self.entry.clone() }
    }
}

/// The key of an entry in the resident map of an index of `kind`.
pub(crate) fn map_key(kind: IndexKind, ikey: &[u8], pk: &[u8]) -> WideKey {
    match kind {
        IndexKind::Unique => WideKey::from_slice(ikey),
        IndexKind::Multi => WideKey::concat(ikey, pk),
    }
}

impl<V> IndexData<V> {
    pub(crate) fn new(name: &'static str, kind: IndexKind) -> Self {
        IndexData {
            name,
            kind,
            map: Sorted::from_sorted(Vec::new()),
            points: None,
            loaded: Vec::new(),
        }
    }

    /// The index's name, kind, entries and resident bytes.
    pub(crate) fn stats(&self) -> IndexStats {
        IndexStats {
            name: self.name.to_owned(),
            kind: self.kind,
            entries: self.map.len(),
            bytes: self.map.structural_bytes()
                + self.points.as_ref().map_or(0, PointIndex::structural_bytes),
        }
    }

    /// Whether this is the index named `name`. Definitions name their indexes with
    /// string literals, so the names usually compare as pointers.
    #[inline]
    pub(crate) fn is(&self, name: &str) -> bool {
        std::ptr::eq(self.name, name) || self.name == name
    }

    /// Builds the hash table of a unique index from its entries and the view's records,
    /// once both are loaded. Loading keeps only entries whose record is there.
    pub(crate) fn seal(&mut self, records: &PointIndex<Entry<V>>) {
        // Already in key order when the file is sound; of two entries of one map key,
        // the later one stands.
        let loaded = std::mem::take(&mut self.loaded);
        self.map = Sorted::from_sorted(last_of_each_key(loaded));
        if self.kind == IndexKind::Unique {
            let slots = self.map.iter().filter_map(|(k, pk)| {
                let entry = records.get(pk.as_bytes())?.clone();
                Some(PointSlot { key: k.clone(), entry: Hit { pk: pk.clone(), entry } })
            });
            self.points = Some(PointIndex::build(slots.collect()));
        }
    }

    /// The encoded index key of a resident entry.
    pub(crate) fn ikey<'a>(&self, map_key: &'a WideKey, pk: &KeyBuf) -> &'a [u8] {
        let bytes = map_key.as_bytes();
        match self.kind {
            IndexKind::Unique => bytes,
            IndexKind::Multi => &bytes[..bytes.len().saturating_sub(pk.as_bytes().len())],
        }
    }

    /// The primary key and record of the first entry of encoded index key `ikey`, with
    /// `view` the records this index belongs to and `probe` from `ikey.probe()`.
    ///
    /// The caller makes the probe where it encoded the key, so that a short key goes
    /// from registers to the probe's words: reading them back out of the encoded key in
    /// memory, at other offsets than they were written, would wait for those writes to
    /// complete, and so for the cache misses of earlier reads.
    #[inline]
    pub(crate) fn first<'a>(
        &'a self,
        view: &'a ViewData<V>,
        probe: &KeyRef<'_>,
        ikey: &StackKey,
    ) -> Option<(&'a KeyBuf, &'a Entry<V>)> {
        if let Some(points) = &self.points {
            return points.find(probe).map(|hit| (&hit.pk, &hit.entry));
        }
        self.first_in_tree(view, ikey)
    }

    /// [`IndexData::first`] for an index key that is a string holding no zero byte, `s`
    /// (see [`with_plain_string`](crate::keys::with_plain_string)).
    #[inline]
    pub(crate) fn first_string<'a>(
        &'a self,
        view: &'a ViewData<V>,
        s: &str,
    ) -> Option<(&'a KeyBuf, &'a Entry<V>)> {
        if let Some(points) = &self.points {
            return points.find_string(s.as_bytes()).map(|hit| (&hit.pk, &hit.entry));
        }
        let mut stack = StackKey::new();
        encode_key_on_stack(s, &mut stack)?;
        self.first_in_tree(view, &stack)
    }

    /// [`IndexData::first`] from the ordered entries: a multi index's lookups.
    fn first_in_tree<'a>(
        &'a self,
        view: &'a ViewData<V>,
        ikey: &StackKey,
    ) -> Option<(&'a KeyBuf, &'a Entry<V>)> {
        let pk = ikey.with_bytes(|ikey| match self.kind {
            IndexKind::Unique => self.map.get(ikey),
            IndexKind::Multi => {
                let (key, pk) = self.map.range(Bound::Included(ikey), Bound::Unbounded).next()?;
                key.as_bytes().starts_with(ikey).then_some(pk)
            }
        })?;
        Some((pk, view.find(&KeyRef::of(pk))?))
    }

    /// Every entry in its on-disk form (index key then primary key), with the index
    /// key's length.
    pub(crate) fn composites(&self) -> Vec<(Vec<u8>, usize)> {
        self.map
            .iter()
            .map(|(k, pk)| {
                let ikey = self.ikey(k, pk);
                (composite(ikey, pk.as_bytes()).as_bytes().to_vec(), ikey.len())
            })
            .collect()
    }

    /// An entry loaded or built at open; entries must come in key order.
    pub(crate) fn push_loaded(&mut self, ikey: &[u8], pk: &[u8]) {
        self.loaded.push((map_key(self.kind, ikey, pk), KeyBuf::from_slice(pk)));
    }

    /// Brings the hash table of a unique index in line with its ordered entries and the
    /// view's records (`records`, already updated) for the index keys in `touched`.
    ///
    /// A key that was only kept comes with its holder; the holder of any other is looked
    /// up in the ordered entries.
    fn refresh_points(&mut self, touched: Touched, records: &PointIndex<Entry<V>>) {
        let Some(points) = &self.points else { return };
        let changes: Vec<PointChange<Hit<V>, WideKey>> = touched
            .into_iter()
            .map(|(ikey, kept_by)| {
                let pk = kept_by.or_else(|| self.map.get(ikey.as_bytes()).cloned());
                let hit = pk.and_then(|pk| {
                    let entry = records.get(pk.as_bytes())?.clone();
                    Some(Hit { pk, entry })
                });
                (ikey, hit)
            })
            .collect();
        self.points = Some(points.with_changes(changes));
    }
}

/// The index keys of a unique index that a group touched, each with its holder when
/// the group only kept it (a move needs a lookup in the ordered entries).
type Touched = HashMap<WideKey, Option<KeyBuf>>;

impl<V> IndexData<V> {
    /// Applies a unique index's changes of one group to its ordered entries. Each index
    /// key's changes are folded in the order the group's batches made them (the sort is
    /// stable); the entries then take them all in one pass, in key order. Returns the
    /// index keys whose hash-table entries must follow, for
    /// [`IndexData::refresh_points`].
    fn apply_unique_changes(&mut self, changes: Vec<UniqueChange>) -> Touched {
        let mut touched = Touched::new();
        let mut changes = changes;
        changes.sort_by(|a, b| a.ikey.cmp(&b.ikey));
        let mut merged: Vec<SortedChange<WideKey, KeyBuf>> = Vec::new();
        let mut changes = changes.into_iter().peekable();
        while let Some(first) = changes.next() {
            let key = first.ikey.clone();
            // `None` while the changes so far leave the entry as it was.
            let mut holder: Option<Option<KeyBuf>> = None;
            let mut change = Some(first);
            while let Some(c) = change.take().or_else(|| changes.next_if(|c| c.ikey == key)) {
                let kept_by = (c.effect == Effect::Keep).then(|| c.pk.clone());
                touched
                    .entry(c.ikey)
                    .and_modify(|holder| {
                        if kept_by.is_none() {
                            *holder = None;
                        }
                    })
                    .or_insert(kept_by);
                match c.effect {
                    Effect::Gain => holder = Some(Some(c.pk)),
                    // Only the record that holds the key gives it up.
                    Effect::Loss => {
                        let current = match &holder {
                            Some(current) => current.as_ref(),
                            None => self.map.get(key.as_bytes()),
                        };
                        if current == Some(&c.pk) {
                            holder = Some(None);
                        }
                    }
                    Effect::Keep => {}
                }
            }
            if let Some(holder) = holder {
                merged.push((key, holder));
            }
        }
        if !merged.is_empty() {
            self.map = self.map.with_changes(merged);
        }
        touched
    }
}

impl<V: Send + Sync> ViewData<V> {
    /// The view after a group: `records` gives its records with the group's changes,
    /// unique indexes take `changes` (in the order the group's batches made them) and
    /// multi indexes take `multi`. A unique index's hash table holds records, so it
    /// follows them; the ordered entries of multi indexes do not, and with enough
    /// changes they are updated on a second thread meanwhile.
    pub(crate) fn with_group(
        &self,
        changes: Vec<UniqueChange>,
        multi: Vec<(usize, MultiEntries)>,
        records: impl FnOnce() -> (OrderedIndex<V>, PointIndex<Entry<V>>),
    ) -> Self {
        let mut indexes = self.indexes.clone();
        let mut by_index: Vec<Vec<UniqueChange>> = indexes.iter().map(|_| Vec::new()).collect();
        for change in changes {
            if let Some(list) = by_index.get_mut(change.index) {
                list.push(change);
            }
        }
        let mut sorted: Vec<Vec<SortedChange<WideKey, KeyBuf>>> =
            indexes.iter().map(|_| Vec::new()).collect();
        for (index, changes) in multi {
            if let Some(list) = sorted.get_mut(index) {
                *list = changes;
            }
        }
        let (mut multi, mut unique) = (Vec::new(), Vec::new());
        for ((index, changes), sorted) in indexes.iter_mut().zip(by_index).zip(sorted) {
            match index.kind {
                IndexKind::Multi => multi.push((index, sorted)),
                IndexKind::Unique => unique.push((index, changes)),
            }
        }
        let multi_changes: usize = multi.iter().map(|(_, sorted)| sorted.len()).sum();
        let (order, points) = if multi_changes >= MULTI_INDEXES_BESIDE_FROM {
            let ((), records) = crate::base::beside::beside(
                "viewstore-index",
                || apply_multi(multi),
                || {
                    let (order, points) = records();
                    apply_unique(unique, &points);
                    (order, points)
                },
            );
            records
        } else {
            let (order, points) = records();
            apply_multi(multi);
            apply_unique(unique, &points);
            (order, points)
        };
        ViewData {
            name: Arc::clone(&self.name),
            order,
            points,
            indexes,
            tombstones: self.tombstones,
        }
    }
}

/// Multi indexes with their changes of one group: map keys in order, one per key (the
/// entries their tables took).
type MultiWork<'a, V> = Vec<(&'a mut IndexData<V>, Vec<SortedChange<WideKey, KeyBuf>>)>;

/// Unique indexes with their changes of one group, in the order the batches made them.
type UniqueWork<'a, V> = Vec<(&'a mut IndexData<V>, Vec<UniqueChange>)>;

/// Applies multi indexes' changes: their ordered entries are all they have.
fn apply_multi<V>(multi: MultiWork<'_, V>) {
    for (index, sorted) in multi {
        if !sorted.is_empty() {
            index.map = index.map.with_changes(sorted);
        }
    }
}

/// Applies unique indexes' changes, then brings their hash tables in line with
/// `records`, the view's records after the group.
fn apply_unique<V>(unique: UniqueWork<'_, V>, records: &PointIndex<Entry<V>>) {
    for (index, changes) in unique {
        let touched = index.apply_unique_changes(changes);
        if !touched.is_empty() {
            index.refresh_points(touched, records);
        }
    }
}

impl<V> ViewData<V> {
    /// Takes the view's indexes, loaded or built, and builds their hash tables.
    pub(crate) fn seal_indexes(&mut self, indexes: Vec<IndexData<V>>) {
        self.indexes = indexes;
        let records = &self.points;
        for index in &mut self.indexes {
            index.seal(records);
        }
    }
}
