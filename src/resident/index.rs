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
use crate::codec::KeyBuf;
use crate::index::IndexKind;
use imbl::OrdMap;
use std::ops::Bound;
use std::sync::Arc;

/// The entries of one index: map key (see [`map_key`]) to primary key.
#[derive(Clone)]
pub(crate) struct IndexData {
    pub(crate) name: Arc<str>,
    pub(crate) kind: IndexKind,
    pub(crate) map: OrdMap<KeyBuf, KeyBuf>,
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
        IndexData { name: Arc::from(name), kind, map: OrdMap::new() }
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
    pub(crate) fn first(&self, ikey: &[u8]) -> Option<&KeyBuf> {
        match self.kind {
            IndexKind::Unique => self.map.get(ikey),
            IndexKind::Multi => {
                let (key, pk) =
                    self.map.range::<_, [u8]>((Bound::Included(ikey), Bound::Unbounded)).next()?;
                key.as_bytes().starts_with(ikey).then_some(pk)
            }
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

    /// Applies one change.
    pub(crate) fn apply(&mut self, change: IndexChange) {
        let key = map_key(self.kind, &change.ikey, change.pk.as_bytes());
        if change.present {
            self.map.insert(key, change.pk);
        } else if self.map.get(key.as_bytes()) == Some(&change.pk) {
            self.map.remove(key.as_bytes());
        }
    }
}

impl<V> ViewData<V> {
    /// Applies index changes in the order the group's batches made them.
    pub(crate) fn apply_index_changes(&mut self, changes: Vec<IndexChange>) {
        for change in changes {
            if let Some(index) = self.indexes.get_mut(change.index) {
                index.apply(change);
            }
        }
    }
}
