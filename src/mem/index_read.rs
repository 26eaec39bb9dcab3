//! Typed reads of a secondary index, from memory.

use super::index::IndexData;
use super::index_entries::EntriesRange;
use super::{Entry, ViewData};
use crate::base::version::Version;
use crate::keys::{CompositeKey, prefix_bounds, prefix_successor, string_start};
use crate::keys::{
    StackKey, WideKey, decode_key, encode_key, encode_key_on_stack, with_plain_string,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Borrow;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

/// One index of a view at one LSN, from [`ViewSnapshot::index`](crate::ViewSnapshot::index).
/// Results come in index-key order, then primary-key order, and borrow from the
/// snapshot.
///
/// Point lookups take the index key or a borrowed form of it (`&str` for a `String`
/// index key), as [`View::get`](crate::View::get) does.
pub struct IndexView<'a, K, V, I> {
    data: Option<(&'a IndexData<V>, &'a ViewData<V>)>,
    _types: PhantomData<fn() -> (K, I)>,
}

/// An index key made ready for a point lookup: a string without zero bytes as it is
/// (see [`with_plain_string`]), any other key encoded on the stack. Made before a view
/// handle loads its root, so that the root is held for the lookup alone (and, measured,
/// so that independent lookups overlap their cache misses).
#[derive(Clone, Copy)]
pub(crate) enum Probe<'k> {
    Plain(&'k str),
    Encoded(&'k StackKey),
}

impl Probe<'_> {
    /// The record holding this index key in `index` (the first one, for a multi index),
    /// with its key decoded: every point lookup of an index, from a snapshot or a view
    /// handle, ends here.
    #[inline]
    pub(crate) fn first<'a, K: DeserializeOwned, V>(
        self,
        index: &'a IndexData<V>,
        view: &'a ViewData<V>,
    ) -> Option<(K, &'a Entry<V>)> {
        let (pk, entry) = match self {
            Probe::Plain(s) => index.first_string(view, s)?,
            Probe::Encoded(stack) => index.first(view, &stack.probe(), stack)?,
        };
        let key = decode_key::<K>(pk).ok()?;
        Some((key, entry))
    }
}

impl<'a, K, V, I> IndexView<'a, K, V, I>
where
    K: DeserializeOwned,
    I: Serialize + DeserializeOwned,
{
    pub(crate) fn new(data: Option<(&'a IndexData<V>, &'a ViewData<V>)>) -> Self {
        IndexView { data, _types: PhantomData }
    }

    /// The index named `name` of `view`; empty when there is no such view or index.
    #[inline]
    pub(crate) fn named(view: Option<&'a ViewData<V>>, name: &str) -> Self {
        let data = view
            .and_then(|view| view.indexes.iter().find(|i| i.is(name)).map(|index| (index, view)));
        IndexView::new(data)
    }

    /// The record holding index key `ikey` (the first one, for a multi index).
    #[inline]
    fn first<Q>(&self, ikey: &Q) -> Option<(K, &'a Entry<V>)>
    where
        I: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let (index, view) = self.data?;
        if let Some(found) = with_plain_string(ikey, |s| Probe::Plain(s).first(index, view)) {
            return found;
        }
        let mut stack = StackKey::new();
        encode_key_on_stack(ikey, &mut stack)?;
        Probe::Encoded(&stack).first(index, view)
    }

    /// The record holding index key `ikey` (the first one, for a multi index), its
    /// value shared (one reference count increment).
    pub fn get<Q>(&self, ikey: &Q) -> Option<(K, Arc<V>)>
    where
        I: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.first(ikey).map(|(key, entry)| (key, Arc::clone(&entry.value)))
    }

    /// The record holding index key `ikey` (the first one, for a multi index), its
    /// value borrowed from the snapshot.
    pub fn get_ref<Q>(&self, ikey: &Q) -> Option<(K, &'a V)>
    where
        I: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.first(ikey).map(|(key, entry)| (key, &*entry.value))
    }

    /// Runs `f` on the record holding index key `ikey` (the first one, for a multi
    /// index), its value borrowed.
    #[inline]
    pub fn get_with<Q, T>(&self, ikey: &Q, f: impl FnOnce(K, &V) -> T) -> Option<T>
    where
        I: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.first(ikey).map(|(key, entry)| f(key, &entry.value))
    }

    /// The record holding index key `ikey` (the first one, for a multi index) with its
    /// version, its value shared.
    pub fn get_versioned<Q>(&self, ikey: &Q) -> Option<(K, Version, Arc<V>)>
    where
        I: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.first(ikey).map(|(key, entry)| (key, entry.version, Arc::clone(&entry.value)))
    }

    /// Every record holding index key `ikey`.
    pub fn get_all<Q>(&self, ikey: &Q) -> IndexIter<'a, K, V, I>
    where
        I: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let mut start = Vec::new();
        if encode_key(ikey, &mut start).is_err() {
            return IndexIter::empty();
        }
        // Index-key encodings are prefix-free, so the entries of one index key are the
        // map keys that start with its encoding, for unique and multi indexes alike.
        self.within(start)
    }

    /// How many records hold index key `ikey`.
    pub fn count<Q>(&self, ikey: &Q) -> usize
    where
        I: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.get_all(ikey).count()
    }

    /// The entries whose index keys fall in `range`.
    pub fn range<R: RangeBounds<I>>(&self, range: R) -> IndexIter<'a, K, V, I> {
        let encode = |k: &I| {
            let mut out = Vec::new();
            encode_key(k, &mut out).ok().map(|()| out)
        };
        // The entries of one index key are the map keys that start with its encoding.
        let start = match range.start_bound() {
            Bound::Included(k) => encode(k).map(|e| Bound::Included(WideKey::from_slice(&e))),
            // No successor: nothing sorts after this key, so the range is empty.
            Bound::Excluded(k) => encode(k)
                .and_then(|e| prefix_successor(&e))
                .map(|next| Bound::Included(WideKey::from_slice(&next))),
            Bound::Unbounded => Some(Bound::Unbounded),
        };
        let end = match range.end_bound() {
            Bound::Included(k) => encode(k).map(|e| match prefix_successor(&e) {
                Some(next) => Bound::Excluded(WideKey::from_slice(&next)),
                None => Bound::Unbounded,
            }),
            Bound::Excluded(k) => encode(k).map(|e| Bound::Excluded(WideKey::from_slice(&e))),
            Bound::Unbounded => Some(Bound::Unbounded),
        };
        self.iter_bytes(start, end)
    }

    /// The entries whose leading index-key fields equal `prefix`: on an index keyed
    /// `(String, u32)`, `prefix("paris")` yields the entries `("paris", _)`. Only index
    /// keys of several fields have a prefix ([`CompositeKey`]); see
    /// [`ViewSnapshot::prefix`](crate::ViewSnapshot::prefix). A `prefix` that cannot be
    /// encoded selects nothing.
    pub fn prefix<P: Serialize + ?Sized>(&self, prefix: &P) -> IndexIter<'a, K, V, I>
    where
        I: CompositeKey,
    {
        let mut start = Vec::new();
        if encode_key(prefix, &mut start).is_err() {
            return IndexIter::empty();
        }
        self.within(start)
    }

    /// The entries whose string index key starts with `start`, in index-key order,
    /// then primary-key order. An empty `start` selects every entry.
    ///
    /// # Examples
    ///
    /// ```
    /// # use viewstore::{IndexDef, Store, ViewDef};
    /// const BY_NAME: IndexDef<String, String> = IndexDef::multi("by_name", |n| n.to_lowercase());
    /// const NAMES: ViewDef<u64, String> = ViewDef::new("names").with_indexes(&[&BY_NAME]);
    /// # let dir = tempfile::tempdir()?;
    /// # let store = Store::open(dir.path().join("s.redb"))?;
    /// let names = store.view(&NAMES)?;
    /// for (id, name) in [(1, "Ada"), (2, "Adele"), (3, "Grace"), (4, "ada")] {
    ///     names.put(&id, name.to_string(), 1)?;
    /// }
    /// let snap = names.snapshot();
    /// let found: Vec<(String, u64)> =
    ///     snap.index(&BY_NAME).starts_with("ad").map(|(name, id, _)| (name, id)).collect();
    /// assert_eq!(found, [("ada".into(), 1), ("ada".into(), 4), ("adele".into(), 2)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn starts_with(&self, start: &str) -> IndexIter<'a, K, V, I>
    where
        I: Borrow<str>,
    {
        match string_start(start) {
            Some(start) => self.within(start),
            None => IndexIter::empty(),
        }
    }

    /// Every entry.
    pub fn iter(&self) -> IndexIter<'a, K, V, I> {
        self.iter_bytes(Some(Bound::Unbounded), Some(Bound::Unbounded))
    }

    /// The number of entries (records times their index keys).
    pub fn len(&self) -> usize {
        self.data.map_or(0, |(index, _)| index.entries.len())
    }

    /// Whether the index has no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries whose map key (encoded index key, then primary key for a multi
    /// index) starts with `start`.
    fn within(&self, start: Vec<u8>) -> IndexIter<'a, K, V, I> {
        let (start, end) = prefix_bounds(start);
        let wide = |b: Bound<Vec<u8>>| Some(b.map(|b| WideKey::from_slice(&b)));
        self.iter_bytes(wide(start), wide(end))
    }

    fn iter_bytes(
        &self,
        start: Option<Bound<WideKey>>,
        end: Option<Bound<WideKey>>,
    ) -> IndexIter<'a, K, V, I> {
        let (Some((index, view)), Some(start), Some(end)) = (self.data, start, end) else {
            return IndexIter::empty();
        };
        if let (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) =
            (&start, &end)
            && s > e
        {
            return IndexIter::empty();
        }
        let inner = index
            .entries
            .range(start.as_ref().map(WideKey::as_bytes), end.as_ref().map(WideKey::as_bytes));
        IndexIter {
            data: Some((index, view)),
            inner: Some(inner),
            scratch: Vec::new(),
            _types: PhantomData,
        }
    }
}

impl<'a, K, V, I> IntoIterator for &IndexView<'a, K, V, I>
where
    K: DeserializeOwned,
    I: Serialize + DeserializeOwned,
{
    type Item = (I, K, &'a V);
    type IntoIter = IndexIter<'a, K, V, I>;

    fn into_iter(self) -> IndexIter<'a, K, V, I> {
        self.iter()
    }
}

/// Index entries in order: each yields the index key, the record key and the value.
pub struct IndexIter<'a, K, V, I> {
    data: Option<(&'a IndexData<V>, &'a ViewData<V>)>,
    inner: Option<EntriesRange<'a>>,
    /// Where an index key split between its leaf's prefix and its entry is put together.
    scratch: Vec<u8>,
    _types: PhantomData<fn() -> (K, I)>,
}

impl<K, V, I> IndexIter<'_, K, V, I> {
    fn empty() -> Self {
        IndexIter { data: None, inner: None, scratch: Vec::new(), _types: PhantomData }
    }
}

impl<'a, K: DeserializeOwned, V, I: DeserializeOwned> IndexIter<'a, K, V, I> {
    /// The same entries with their records' versions: items `(index key, key,
    /// version, value)`, the version as [`View::get_versioned`](crate::View::get_versioned)
    /// gives it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use viewstore::{IndexDef, Store, ViewDef};
    /// const BY_LEN: IndexDef<String, usize> = IndexDef::multi("by_len", String::len);
    /// const NAMES: ViewDef<u64, String> = ViewDef::new("names").with_indexes(&[&BY_LEN]);
    /// # let dir = tempfile::tempdir()?;
    /// # let store = Store::open(dir.path().join("s.redb"))?;
    /// let names = store.view(&NAMES)?;
    /// names.put(&1, "ada".to_string(), 4)?;
    /// names.put(&2, "grace".to_string(), 9)?;
    /// let snap = names.snapshot();
    /// let short: Vec<(u64, u64)> =
    ///     snap.index(&BY_LEN).range(..5).versioned().map(|(_, id, v, _)| (id, v)).collect();
    /// assert_eq!(short, [(1, 4)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn versioned(self) -> VersionedIndexIter<'a, K, V, I> {
        VersionedIndexIter { iter: self }
    }

    /// The next entry: its index key, the record's key and the record.
    pub(crate) fn next_entry(&mut self) -> Option<(I, K, &'a Entry<V>)> {
        let (_, view) = self.data?;
        let inner = self.inner.as_mut()?;
        loop {
            let found = inner.next()?;
            let pk = found.pk();
            let entry: Option<&Entry<V>> = view.get(pk);
            // Index and records are published together (the delta's invariant 2), so
            // every entry has its record.
            debug_assert!(entry.is_some(), "an index entry without its record");
            let ikey = found.with_ikey(&mut self.scratch, decode_key::<I>);
            let key = decode_key::<K>(pk);
            if let (Some(entry), Ok(ikey), Ok(key)) = (entry, ikey, key) {
                return Some((ikey, key, entry));
            }
        }
    }
}

impl<'a, K: DeserializeOwned, V, I: DeserializeOwned> Iterator for IndexIter<'a, K, V, I> {
    type Item = (I, K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry().map(|(ikey, key, entry)| (ikey, key, &*entry.value))
    }
}

/// Index entries in order with their records' versions, from
/// [`IndexIter::versioned`]: each yields the index key, the record key, the record's
/// version and the value.
pub struct VersionedIndexIter<'a, K, V, I> {
    iter: IndexIter<'a, K, V, I>,
}

impl<'a, K: DeserializeOwned, V, I: DeserializeOwned> Iterator for VersionedIndexIter<'a, K, V, I> {
    type Item = (I, K, Version, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        self.iter.next_entry().map(|(ikey, key, entry)| (ikey, key, entry.version, &*entry.value))
    }
}
