//! Resident secondary indexes: for each index of a view, its entries packed in a
//! persistent list of sorted leaves ([`IndexEntries`]) that lives in the same root as
//! the view's records.
//!
//! An entry is the encoded index key followed by the encoded primary key (its on-disk
//! key), so that entries sort by index key, then primary key, for unique and multi
//! indexes alike. Both encodings are prefix-free, so the entries of one index key are
//! exactly those whose bytes start with its encoding. An entry holds its bytes only,
//! and a query takes the value from the view's records.
//!
//! A unique index also has a hash table from index key to the record itself (primary
//! key, version and value), so that a lookup is one probe, as a read by primary key is.
//! A group that writes a record whose unique index keys stay put refreshes those
//! entries of the table (see [`Effect::Keep`]); the ordered entries are left alone.

use super::delta::{Effect, MultiEntries, UniqueChange};
use super::index_entries::{EntryChange, IndexEntries};
use super::ordered::{OrderedIndex, SortedChange};
use super::points::{PointChange, PointIndex, PointSlot};
use super::stats::IndexStats;
use super::{Entry, ViewData};
use crate::base::beside::MULTI_INDEXES_BESIDE_FROM;
use crate::base::index_kind::IndexKind;
use crate::keys::composite;
use crate::keys::{KeyBuf, KeyRef, StackKey, WideKey, encode_key_on_stack};
use std::collections::HashMap;
use std::sync::Arc;

/// The entries of one index, in order. A unique index also keeps a hash table from
/// index key to the record, so that a lookup by index key costs one hash probe rather
/// than a tree descent and a second probe.
pub(crate) struct IndexData<V> {
    name: &'static str,
    pub(crate) kind: IndexKind,
    pub(crate) entries: IndexEntries,
    points: Option<PointIndex<Hit<V>, WideKey>>,
}

impl<V> Clone for IndexData<V> {
    fn clone(&self) -> Self {
        IndexData {
            name: self.name,
            kind: self.kind,
            entries: self.entries.clone(),
            points: self.points.clone(),
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

impl<V> IndexData<V> {
    /// An empty index.
    pub(crate) fn new(name: &'static str, kind: IndexKind) -> Self {
        Self::with_entries(name, kind, IndexEntries::empty())
    }

    /// An index of `entries`, its hash table (for a unique index) still to be built by
    /// [`IndexData::seal`].
    pub(crate) fn with_entries(name: &'static str, kind: IndexKind, entries: IndexEntries) -> Self {
        IndexData { name, kind, entries, points: None }
    }

    /// The index's name, kind, entries and resident bytes.
    pub(crate) fn stats(&self) -> IndexStats {
        IndexStats {
            name: self.name.to_owned(),
            kind: self.kind,
            entries: self.entries.len(),
            bytes: self.entries.structural_bytes()
                + self.points.as_ref().map_or(0, PointIndex::structural_bytes),
        }
    }

    /// Whether this is the index named `name`. Definitions name their indexes with
    /// string literals, so the names usually compare as pointers.
    #[inline]
    pub(crate) fn is(&self, name: &str) -> bool {
        std::ptr::eq(self.name, name) || self.name == name
    }

    /// A unique index of `entries` with its hash table `points` (of the same entries
    /// with their records), built apart so that it can be built beside the entries.
    pub(crate) fn with_points(
        name: &'static str,
        entries: IndexEntries,
        points: PointIndex<Hit<V>, WideKey>,
    ) -> Self {
        let mut index = Self::with_entries(name, IndexKind::Unique, entries);
        index.points = Some(points);
        index
    }

    /// Builds the hash table of a unique index from its entries and the view's records,
    /// once both are there, unless it was built with them. Entries whose record is
    /// missing get no slot.
    pub(crate) fn seal(&mut self, records: &PointIndex<Entry<V>>) {
        if self.kind == IndexKind::Unique && self.points.is_none() {
            let slots = self.entries.iter().filter_map(|e| {
                let entry = records.get(e.pk())?.clone();
                let hit = Hit { pk: KeyBuf::from_slice(e.pk()), entry };
                Some(PointSlot { key: e.wide_ikey(), entry: hit })
            });
            self.points = Some(PointIndex::build(slots.collect()));
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
    ) -> Option<(&'a [u8], &'a Entry<V>)> {
        if let Some(points) = &self.points {
            return points.find(probe).map(|hit| (hit.pk.as_bytes(), &hit.entry));
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
    ) -> Option<(&'a [u8], &'a Entry<V>)> {
        if let Some(points) = &self.points {
            return points.find_string(s.as_bytes()).map(|hit| (hit.pk.as_bytes(), &hit.entry));
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
    ) -> Option<(&'a [u8], &'a Entry<V>)> {
        let pk = ikey.with_bytes(|ikey| self.entries.first(ikey))?;
        Some((pk, view.find(&KeyRef::new(pk))?))
    }

    /// Every entry in its on-disk form (index key then primary key), with the index
    /// key's length.
    pub(crate) fn composites(&self) -> Vec<(Vec<u8>, usize)> {
        self.entries.iter().map(|e| (e.whole(), e.ikey_len())).collect()
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
                let pk =
                    kept_by.or_else(|| self.entries.first(ikey.as_bytes()).map(KeyBuf::from_slice));
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
        let mut merged: Vec<EntryChange> = Vec::new();
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
                            Some(current) => current.as_ref().map(KeyBuf::as_bytes),
                            None => self.entries.first(key.as_bytes()),
                        };
                        if current == Some(c.pk.as_bytes()) {
                            holder = Some(None);
                        }
                    }
                    Effect::Keep => {}
                }
            }
            // The entry moves from the key's old holder to its new one.
            let Some(holder) = holder else { continue };
            let old = self.entries.first(key.as_bytes());
            let new = holder.as_ref().map(KeyBuf::as_bytes);
            if old == new {
                continue;
            }
            if let Some(old) = old {
                merged.push((composite(key.as_bytes(), old), None));
            }
            if let Some(new) = new {
                merged.push((composite(key.as_bytes(), new), Some(key.as_bytes().len())));
            }
        }
        if !merged.is_empty() {
            merged.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            self.entries = self.entries.with_changes(merged);
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
            // An added entry's bytes end with its primary key: what is before is its
            // index key.
            let changes = sorted
                .into_iter()
                .map(|(entry, pk)| {
                    let ikey_len =
                        pk.map(|pk| entry.as_bytes().len().saturating_sub(pk.as_bytes().len()));
                    (entry, ikey_len)
                })
                .collect();
            index.entries = index.entries.with_changes(changes);
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
