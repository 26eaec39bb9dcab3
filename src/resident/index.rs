//! Resident secondary indexes: for each index of a view, its entries in a persistent
//! B+tree that lives in the same root as the view's records.
//!
//! A unique index is keyed by the encoded index key; a multi index by the encoded
//! index key followed by the encoded primary key, so that entries sort by index key,
//! then primary key. Both encodings are prefix-free, so the entries of one index key
//! are exactly the keys that start with its encoding. Each entry holds only the
//! record's primary key: a write that leaves a record's index keys alone touches no
//! index, and a query takes the value from the view's records, so it is never stale.

use super::ViewData;
use super::points::{PointChange, PointIndex, PointSlot};
use crate::codec::{KeyBuf, StackKey};
use crate::index::IndexKind;
use imbl::OrdMap;
use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

/// The entries of one index: map key (see [`map_key`]) to primary key. A unique index
/// also keeps a hash table from index key to primary key, so that a lookup by index key
/// costs a hash probe rather than a tree descent over byte strings.
#[derive(Clone)]
pub(crate) struct IndexData {
    pub(crate) name: Arc<str>,
    pub(crate) kind: IndexKind,
    pub(crate) map: OrdMap<KeyBuf, KeyBuf>,
    points: Option<PointIndex<KeyBuf>>,
}

/// One change to an index: `pk` gains (`present`) or loses index key `ikey`.
pub(crate) struct IndexChange {
    pub(crate) index: usize,
    pub(crate) ikey: Vec<u8>,
    pub(crate) pk: KeyBuf,
    pub(crate) present: bool,
}

/// The key of an entry in the resident map of an index of `kind`.
pub(crate) fn map_key(kind: IndexKind, ikey: &[u8], pk: &[u8]) -> KeyBuf {
    match kind {
        IndexKind::Unique => KeyBuf::from_slice(ikey),
        IndexKind::Multi => composite(ikey, pk),
    }
}

/// The on-disk key of an index entry: the index key then the primary key.
pub(crate) fn composite(ikey: &[u8], pk: &[u8]) -> KeyBuf {
    let mut bytes = Vec::with_capacity(ikey.len() + pk.len());
    bytes.extend_from_slice(ikey);
    bytes.extend_from_slice(pk);
    KeyBuf::from_slice(&bytes)
}

impl IndexData {
    pub(crate) fn new(name: &str, kind: IndexKind) -> Self {
        IndexData { name: Arc::from(name), kind, map: OrdMap::new(), points: None }
    }

    /// Builds the hash table of a unique index from its entries, once they are loaded.
    pub(crate) fn seal(&mut self) {
        if self.kind == IndexKind::Unique {
            let slots =
                self.map.iter().map(|(k, pk)| PointSlot { key: k.clone(), entry: pk.clone() });
            self.points = Some(PointIndex::build(slots.collect()));
        }
    }

    /// The encoded index key of a resident entry.
    pub(crate) fn ikey<'a>(&self, map_key: &'a KeyBuf, pk: &KeyBuf) -> &'a [u8] {
        let bytes = map_key.as_bytes();
        match self.kind {
            IndexKind::Unique => bytes,
            IndexKind::Multi => &bytes[..bytes.len().saturating_sub(pk.as_bytes().len())],
        }
    }

    /// The primary key of the first entry of encoded index key `ikey`.
    pub(crate) fn first(&self, ikey: &StackKey) -> Option<&KeyBuf> {
        match self.kind {
            IndexKind::Unique => match &self.points {
                Some(points) => points.find(&ikey.probe()),
                None => ikey.with_bytes(|ikey| self.map.get(ikey)),
            },
            IndexKind::Multi => ikey.with_bytes(|ikey| {
                let (key, pk) =
                    self.map.range::<_, [u8]>((Bound::Included(ikey), Bound::Unbounded)).next()?;
                key.as_bytes().starts_with(ikey).then_some(pk)
            }),
        }
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

    /// Applies one change to the ordered entries (the hash table follows in
    /// [`IndexData::refresh_points`]).
    fn apply(&mut self, change: IndexChange) {
        let key = map_key(self.kind, &change.ikey, change.pk.as_bytes());
        if change.present {
            self.map.insert(key, change.pk);
        } else if self.map.get(key.as_bytes()) == Some(&change.pk) {
            self.map.remove(key.as_bytes());
        }
    }
}

impl IndexData {
    /// Brings the hash table of a unique index in line with its ordered entries for the
    /// index keys in `touched`.
    fn refresh_points(&mut self, touched: BTreeSet<Vec<u8>>) {
        let Some(points) = &self.points else { return };
        let changes: Vec<PointChange<KeyBuf>> = touched
            .into_iter()
            .map(|ikey| {
                let pk = self.map.get(ikey.as_slice()).cloned();
                (KeyBuf::from_slice(&ikey), pk)
            })
            .collect();
        self.points = Some(points.with_changes(changes));
    }
}

impl<V> ViewData<V> {
    /// Applies index changes in the order the group's batches made them.
    pub(crate) fn apply_index_changes(&mut self, changes: Vec<IndexChange>) {
        let mut touched: Vec<BTreeSet<Vec<u8>>> = vec![BTreeSet::new(); self.indexes.len()];
        for change in changes {
            if let Some(index) = self.indexes.get_mut(change.index) {
                if index.kind == IndexKind::Unique {
                    touched[change.index].insert(change.ikey.clone());
                }
                index.apply(change);
            }
        }
        for (index, touched) in self.indexes.iter_mut().zip(touched) {
            if !touched.is_empty() {
                index.refresh_points(touched);
            }
        }
    }
}
