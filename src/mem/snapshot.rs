//! Reads at one LSN: store-wide snapshots and typed per-view snapshots.

use super::{Entry, Root, ViewData, ordered};
use crate::base::version::{Lsn, Version};
use crate::keys::{CompositeKey, prefix_bounds, string_start};
use crate::keys::{KeyBuf, StackKey, decode_key, encode_key, encode_key_on_stack};
use crate::mem::IndexView;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Borrow;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

/// Every view of a store at one LSN. Cheap to make (one reference count increment) and
/// to clone; reads through it never see a later group. Holding it keeps the records it
/// sees in memory, so drop it when done.
///
/// # Examples
///
/// ```
/// # use viewstore::{Store, ViewDef};
/// const COUNTS: ViewDef<String, u64> = ViewDef::new("counts");
/// # let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path().join("s.redb"))?;
/// let counts = store.view(&COUNTS)?;
/// counts.put(&"a".to_string(), 1, 1)?;
/// let snap = store.snapshot();
/// counts.put(&"a".to_string(), 2, 2)?;
/// assert_eq!(snap.view(&counts)?.get_ref(&"a".to_string()), Some(&1));
/// assert_eq!(counts.get(&"a".to_string()).as_deref(), Some(&2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Snapshot {
    pub(crate) root: Arc<Root>,
    pub(crate) store: u64,
}

impl Snapshot {
    /// The LSN of the last group this snapshot contains.
    pub fn lsn(&self) -> Lsn {
        self.root.lsn
    }

    /// The view with id `id` (of this snapshot's store) at this snapshot's LSN.
    pub(crate) fn view_by_id<K, V>(&self, id: usize) -> ViewSnapshot<K, V> {
        ViewSnapshot { root: Arc::clone(&self.root), id, _types: PhantomData }
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("lsn", &self.root.lsn).finish_non_exhaustive()
    }
}

/// One view's records at one LSN. Reads borrow from it: no reference count is written
/// per read, nothing is decoded, nothing waits on the writer.
pub struct ViewSnapshot<K, V> {
    root: Arc<Root>,
    id: usize,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for ViewSnapshot<K, V> {
    fn clone(&self) -> Self {
        ViewSnapshot { root: Arc::clone(&self.root), id: self.id, _types: PhantomData }
    }
}

impl<K, V> ViewSnapshot<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Send + Sync + 'static,
{
    pub(crate) fn new(root: Arc<Root>, id: usize) -> Self {
        ViewSnapshot { root, id, _types: PhantomData }
    }

    fn data(&self) -> Option<&ViewData<V>> {
        self.root.view::<V>(self.id)
    }

    #[inline]
    fn entry<Q>(&self, key: &Q) -> Option<&Entry<V>>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let mut stack = StackKey::new();
        encode_key_on_stack(key, &mut stack)?;
        self.data()?.find(&stack.probe())
    }

    /// The LSN of the last group this snapshot contains.
    pub fn lsn(&self) -> Lsn {
        self.root.lsn
    }

    /// Runs `f` on the value of `key`, borrowed from the snapshot. Like
    /// [`View::get_with`](crate::View::get_with).
    pub fn get_with<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.entry(key).map(|e| f(&e.value))
    }

    /// The value of `key`, borrowed from the snapshot: no reference count is written.
    pub fn get_ref<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.entry(key).map(|e| &*e.value)
    }

    /// The value of `key`, shared (one reference count increment). Like
    /// [`View::get`](crate::View::get).
    pub fn get<Q>(&self, key: &Q) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.entry(key).map(|e| Arc::clone(&e.value))
    }

    /// The version and value of `key`, shared.
    pub fn get_versioned<Q>(&self, key: &Q) -> Option<(Version, Arc<V>)>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.entry(key).map(|e| (e.version, Arc::clone(&e.value)))
    }

    /// The version of the live record of `key`.
    pub fn version<Q>(&self, key: &Q) -> Option<Version>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.entry(key).map(|e| e.version)
    }

    /// Whether `key` has a live record.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.entry(key).is_some()
    }

    /// The number of live records.
    pub fn len(&self) -> usize {
        self.data().map_or(0, ViewData::len)
    }

    /// Whether the view has no live record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All records in key order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        self.bytes_range(Bound::Unbounded, Bound::Unbounded)
    }

    /// The records whose keys fall in `range`, in key order.
    pub fn range<R: RangeBounds<K>>(&self, range: R) -> Iter<'_, K, V> {
        let start = encode_bound(range.start_bound());
        let end = encode_bound(range.end_bound());
        match (start, end) {
            (Some(start), Some(end)) => {
                self.bytes_range(as_bytes(start.as_ref()), as_bytes(end.as_ref()))
            }
            _ => Iter::empty(),
        }
    }

    /// The records whose leading key fields equal `prefix`, in key order: on a
    /// `(u64, String)` view, `prefix(&7u64)` yields every key `(7, _)`, and
    /// `prefix(&(7u64, "ann"))` the key `(7, "ann")` alone (a string field matches
    /// whole). `prefix` is a value of the first fields of the key, or a tuple of them;
    /// only keys of several fields have a prefix ([`CompositeKey`]). A `prefix` that
    /// cannot be encoded (a float) selects nothing.
    ///
    /// For the string keys that start with some text, see
    /// [`starts_with`](ViewSnapshot::starts_with).
    pub fn prefix<P: Serialize + ?Sized>(&self, prefix: &P) -> Iter<'_, K, V>
    where
        K: CompositeKey,
    {
        let mut start = Vec::new();
        if encode_key(prefix, &mut start).is_err() {
            return Iter::empty();
        }
        self.bytes_within(start)
    }

    /// The records whose string key starts with `start`, in key order (byte order of
    /// the UTF-8 strings, which is `String`'s order). An empty `start` selects every
    /// record.
    ///
    /// # Examples
    ///
    /// ```
    /// # use viewstore::{Store, ViewDef};
    /// const PATHS: ViewDef<String, u32> = ViewDef::new("paths");
    /// # let dir = tempfile::tempdir()?;
    /// # let store = Store::open(dir.path().join("s.redb"))?;
    /// let paths = store.view(&PATHS)?;
    /// for (i, path) in ["/a", "/a/b", "/ab", "/b"].into_iter().enumerate() {
    ///     paths.put(&path.to_string(), i as u32, 1)?;
    /// }
    /// let snap = paths.snapshot();
    /// let under_a: Vec<String> = snap.starts_with("/a/").map(|(path, _)| path).collect();
    /// assert_eq!(under_a, ["/a/b"]);
    /// assert_eq!(snap.starts_with("/a").count(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn starts_with(&self, start: &str) -> Iter<'_, K, V>
    where
        K: Borrow<str>,
    {
        match string_start(start) {
            Some(start) => self.bytes_within(start),
            None => Iter::empty(),
        }
    }

    /// The secondary index named `name`, read at this snapshot's LSN; empty when the
    /// view was not opened with it.
    pub(crate) fn index_named<I>(&self, name: &str) -> IndexView<'_, K, V, I>
    where
        I: Serialize + DeserializeOwned,
    {
        IndexView::named(self.data(), name)
    }

    /// The records whose encoded key starts with `start`.
    fn bytes_within(&self, start: Vec<u8>) -> Iter<'_, K, V> {
        let (start, end) = prefix_bounds(start);
        self.bytes_range(start.as_ref().map(Vec::as_slice), end.as_ref().map(Vec::as_slice))
    }

    fn bytes_range(&self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> Iter<'_, K, V> {
        let inner = self.data().map(|d| d.range(start, end));
        Iter { inner, _types: PhantomData }
    }
}

fn as_bytes(bound: Bound<&KeyBuf>) -> Bound<&[u8]> {
    bound.map(KeyBuf::as_bytes)
}

fn encode_bound<K: Serialize>(bound: Bound<&K>) -> Option<Bound<KeyBuf>> {
    // On the stack: a short key (every integer key) is encoded without an allocation.
    let encode = |k: &K| {
        let mut stack = StackKey::new();
        encode_key_on_stack(k, &mut stack)?;
        Some(stack.with_bytes(KeyBuf::from_slice))
    };
    Some(match bound {
        Bound::Included(k) => Bound::Included(encode(k)?),
        Bound::Excluded(k) => Bound::Excluded(encode(k)?),
        Bound::Unbounded => Bound::Unbounded,
    })
}

/// An iterator over records in key order, yielding each key decoded and its value
/// borrowed. [`versioned`](Iter::versioned) adds each record's version.
pub struct Iter<'a, K, V> {
    inner: Option<ordered::Range<'a, V>>,
    _types: PhantomData<fn() -> K>,
}

impl<'a, K, V> IntoIterator for &'a ViewSnapshot<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Send + Sync + 'static,
{
    type Item = (K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Iter<'a, K, V> {
        self.iter()
    }
}

impl<'a, K: DeserializeOwned, V> Iter<'a, K, V> {
    fn empty() -> Self {
        Iter { inner: None, _types: PhantomData }
    }

    /// The same records with their versions: items `(key, version, value)`, the
    /// version of each record as [`ViewSnapshot::get_versioned`] gives it. Costs what
    /// the scan without versions costs: the ordered index keeps each record's version
    /// beside its value.
    ///
    /// # Examples
    ///
    /// ```
    /// # use viewstore::{Store, ViewDef};
    /// const NAMES: ViewDef<u64, String> = ViewDef::new("names");
    /// # let dir = tempfile::tempdir()?;
    /// # let store = Store::open(dir.path().join("s.redb"))?;
    /// let names = store.view(&NAMES)?;
    /// names.put(&1, "ada".to_string(), 3)?;
    /// names.put(&2, "grace".to_string(), 5)?;
    /// let snap = names.snapshot();
    /// let versions: Vec<(u64, u64)> = snap.iter().versioned().map(|(k, v, _)| (k, v)).collect();
    /// assert_eq!(versions, [(1, 3), (2, 5)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn versioned(self) -> VersionedIter<'a, K, V> {
        VersionedIter { iter: self }
    }

    /// The next key with its shared value.
    #[inline]
    pub(crate) fn next_shared(&mut self) -> Option<(K, &'a Arc<V>)> {
        self.next_entry(false).map(|(k, e)| (k, &e.value))
    }

    /// The next key with its record (version and value), from the front or the back.
    #[inline]
    fn next_entry(&mut self, back: bool) -> Option<(K, &'a Entry<V>)> {
        let inner = self.inner.as_mut()?;
        loop {
            let (key, entry) = if back { inner.next_back()? } else { inner.next()? };
            // Every resident key was encoded from a `K` or checked to decode as one
            // when its view was loaded.
            if let Ok(k) = decode_key::<K>(key.as_bytes()) {
                return Some((k, entry));
            }
        }
    }
}

impl<'a, K: DeserializeOwned, V> Iterator for Iter<'a, K, V> {
    type Item = (K, &'a V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.next_shared().map(|(k, v)| (k, &**v))
    }
}

impl<K: DeserializeOwned, V> DoubleEndedIterator for Iter<'_, K, V> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        self.next_entry(true).map(|(k, e)| (k, &*e.value))
    }
}

/// Records in key order with their versions, from [`Iter::versioned`]: each yields
/// the key decoded, the record's version and its value borrowed.
pub struct VersionedIter<'a, K, V> {
    iter: Iter<'a, K, V>,
}

impl<'a, K: DeserializeOwned, V> VersionedIter<'a, K, V> {
    /// The next key with its version and shared value.
    #[inline]
    pub(crate) fn next_shared(&mut self) -> Option<(K, Version, &'a Arc<V>)> {
        self.iter.next_entry(false).map(|(k, e)| (k, e.version, &e.value))
    }
}

impl<'a, K: DeserializeOwned, V> Iterator for VersionedIter<'a, K, V> {
    type Item = (K, Version, &'a V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.iter.next_entry(false).map(|(k, e)| (k, e.version, &*e.value))
    }
}

impl<K: DeserializeOwned, V> DoubleEndedIterator for VersionedIter<'_, K, V> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        self.iter.next_entry(true).map(|(k, e)| (k, e.version, &*e.value))
    }
}
