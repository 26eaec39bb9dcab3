//! Resident secondary indexes: for each index of a view, its entries in a persistent
//! B+tree that lives in the same root as the view's records.
//!
//! A unique index is keyed by the encoded index key; a multi index by the encoded
//! index key followed by the encoded primary key, so that entries sort by index key,
//! then primary key. Both encodings are prefix-free, so the entries of one index key
//! are exactly the keys that start with its encoding. Each entry holds the record's
//! primary key and a clone of its resident entry: a lookup is one tree descent, with no
//! second lookup in the view.

use super::{Entry, ViewData};
use crate::codec::KeyBuf;
use crate::index::IndexKind;
use imbl::OrdMap;
use std::ops::Bound;
use std::sync::Arc;

/// One index entry: the primary key and the record it points to.
pub(crate) struct IndexEntry<V> {
    pub(crate) pk: KeyBuf,
    pub(crate) entry: Entry<V>,
}

impl<V> Clone for IndexEntry<V> {
    fn clone(&self) -> Self {
        IndexEntry { pk: self.pk.clone(), entry: self.entry.clone() }
    }
}

/// The entries of one index.
pub(crate) struct IndexData<V> {
    pub(crate) name: Arc<str>,
    pub(crate) kind: IndexKind,
    pub(crate) map: OrdMap<KeyBuf, IndexEntry<V>>,
}

impl<V> Clone for IndexData<V> {
    fn clone(&self) -> Self {
        IndexData { name: Arc::clone(&self.name), kind: self.kind, map: self.map.clone() }
    }
}

/// One change to an index: `pk` gains (`present`) or loses index key `ikey`. A gain
/// for a record that already has the key refreshes the entry's value.
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

impl<V> IndexData<V> {
    pub(crate) fn new(name: &str, kind: IndexKind) -> Self {
        IndexData { name: Arc::from(name), kind, map: OrdMap::new() }
    }

    /// The encoded index key of a resident entry.
    pub(crate) fn ikey<'a>(&self, map_key: &'a KeyBuf, entry: &IndexEntry<V>) -> &'a [u8] {
        let bytes = map_key.as_bytes();
        match self.kind {
            IndexKind::Unique => bytes,
            IndexKind::Multi => &bytes[..bytes.len().saturating_sub(entry.pk.as_bytes().len())],
        }
    }

    /// The first entry of encoded index key `ikey`.
    pub(crate) fn first(&self, ikey: &[u8]) -> Option<&IndexEntry<V>> {
        match self.kind {
            IndexKind::Unique => self.map.get(ikey),
            IndexKind::Multi => {
                let (key, entry) =
                    self.map.range::<_, [u8]>((Bound::Included(ikey), Bound::Unbounded)).next()?;
                key.as_bytes().starts_with(ikey).then_some(entry)
            }
        }
    }

    /// Every entry in its on-disk form (index key then primary key), with the index
    /// key's length.
    pub(crate) fn composites(&self) -> Vec<(Vec<u8>, usize)> {
        self.map
            .iter()
            .map(|(k, e)| {
                let ikey = self.ikey(k, e);
                (composite(ikey, e.pk.as_bytes()).as_bytes().to_vec(), ikey.len())
            })
            .collect()
    }
}

impl<V> ViewData<V> {
    /// Applies index changes in order, taking each record from the (already updated)
    /// records of this view.
    pub(crate) fn apply_index_changes(&mut self, changes: Vec<IndexChange>) {
        for change in changes {
            let Some(index) = self.indexes.get_mut(change.index) else { continue };
            let key = map_key(index.kind, &change.ikey, change.pk.as_bytes());
            if change.present {
                if let Some(entry) = self.map.get(change.pk.as_bytes()) {
                    let entry = IndexEntry { pk: change.pk, entry: entry.clone() };
                    index.map.insert(key, entry);
                }
            } else if index.map.get(key.as_bytes()).is_some_and(|e| e.pk == change.pk) {
                index.map.remove(key.as_bytes());
            }
        }
    }
}
