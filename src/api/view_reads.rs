//! A view handle's reads: point reads by key, ordered scans, secondary index lookups.

use crate::api::index_def::IndexDef;
use crate::api::view::View;
use crate::base::codec::Codec;
use crate::base::version::Version;
use crate::keys::{CompositeKey, StackKey, decode_key, encode_key_on_stack, with_plain_string};
use crate::mem::index::IndexData;
use crate::mem::snapshot::VersionedIter;
use crate::mem::{Entry, IndexIter, Iter, ViewData, ViewSnapshot};
use crate::schema::registration::{ViewKey, ViewValue};
use serde::Serialize;
use std::borrow::Borrow;
use std::ops::RangeBounds;
use std::sync::Arc;

impl<K: ViewKey, V: ViewValue, C: Codec<V> + Clone> View<K, V, C> {
    #[inline]
    fn with_entry<Q, R>(&self, key: &Q, f: impl FnOnce(&Entry<V>) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let mut stack = StackKey::new();
        encode_key_on_stack(key, &mut stack)?;
        let probe = stack.probe();
        self.published.with_root(|root| root.view::<V>(self.id)?.find(&probe).map(f))
    }

    /// Runs `f` on the value of `key`, borrowed from memory: no reference count is
    /// written, nothing is copied. The fastest read. `key` may be borrowed, as for
    /// [`get`](View::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # use viewstore::{Store, ViewDef};
    /// const NAMES: ViewDef<u64, String> = ViewDef::new("names");
    /// # let dir = tempfile::tempdir()?;
    /// # let store = Store::open(dir.path().join("s.redb"))?;
    /// let names = store.view(&NAMES)?;
    /// names.put(&1, "ada".to_string(), 1)?;
    /// assert_eq!(names.get_with(&1, |name| name.len()), Some(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_with<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.with_entry(key, |e| f(&e.value))
    }

    /// The value of `key`, shared (one reference count increment on the value).
    ///
    /// `key` is the key, or a borrowed form of it (`K: Borrow<Q>`) that serializes as
    /// the key does, so that it encodes to the same bytes: `&str` for a `String` or
    /// `Box<str>` key (or `Arc<str>`, with serde's `rc` feature), `&[T]` for a `Vec<T>`
    /// key, a newtype's content for a newtype key that borrows as it. Not an array key `[T; N]` through
    /// `&[T]`: an array serializes as a tuple and a slice as a sequence, so such a
    /// lookup finds nothing. The same holds for every read that takes a key or an index
    /// key: [`get_with`](View::get_with), [`get_versioned`](View::get_versioned),
    /// [`version`](View::version), [`contains`](View::contains), `index_get*`,
    /// [`index_count`](View::index_count), and their snapshot equivalents.
    ///
    /// # Examples
    ///
    /// ```
    /// # use viewstore::{Store, ViewDef};
    /// const COUNTS: ViewDef<String, u64> = ViewDef::new("counts");
    /// # let dir = tempfile::tempdir()?;
    /// # let store = Store::open(dir.path().join("s.redb"))?;
    /// let counts = store.view(&COUNTS)?;
    /// counts.put(&"home".to_string(), 7, 1)?;
    /// assert_eq!(counts.get("home").as_deref(), Some(&7)); // no `String` made
    /// assert_eq!(counts.get(&"home".to_string()).as_deref(), Some(&7));
    /// assert!(!counts.contains("away"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.with_entry(key, |e| Arc::clone(&e.value))
    }

    /// The version and value of `key`.
    pub fn get_versioned<Q>(&self, key: &Q) -> Option<(Version, Arc<V>)>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.with_entry(key, |e| (e.version, Arc::clone(&e.value)))
    }

    /// The version of the live record of `key`.
    pub fn version<Q>(&self, key: &Q) -> Option<Version>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.with_entry(key, |e| e.version)
    }

    /// Whether `key` has a live record.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.with_entry(key, |_| ()).is_some()
    }

    /// The number of live records: a counter the resident layer keeps, read in
    /// constant time whatever the view's size.
    pub fn len(&self) -> usize {
        self.published.with_root(|root| root.view::<V>(self.id).map_or(0, ViewData::len))
    }

    /// Whether the view has no live record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The view at the latest committed LSN, for many consistent reads and for ordered
    /// scans (`iter`, `range`, `prefix`, `starts_with`) that borrow.
    pub fn snapshot(&self) -> ViewSnapshot<K, V> {
        ViewSnapshot::new(self.published.load_full(), self.id)
    }

    /// The records whose keys fall in `range`, in key order, collected.
    pub fn range<R: RangeBounds<K>>(&self, range: R) -> Vec<(K, Arc<V>)> {
        collect_shared(self.snapshot().range(range))
    }

    /// [`range`](View::range) with each record's version.
    pub fn range_versioned<R: RangeBounds<K>>(&self, range: R) -> Vec<(K, Version, Arc<V>)> {
        collect_versioned(self.snapshot().range(range).versioned())
    }

    /// The records whose leading key fields equal `prefix`, in key order, collected:
    /// `prefix(&7u64)` on a `(u64, u64)` view gives the keys `(7, _)`. Only keys of
    /// several fields have a prefix ([`CompositeKey`]); for string keys, see
    /// [`starts_with`](View::starts_with). See [`ViewSnapshot::prefix`].
    pub fn prefix<P: Serialize + ?Sized>(&self, prefix: &P) -> Vec<(K, Arc<V>)>
    where
        K: CompositeKey,
    {
        collect_shared(self.snapshot().prefix(prefix))
    }

    /// [`prefix`](View::prefix) with each record's version.
    pub fn prefix_versioned<P: Serialize + ?Sized>(&self, prefix: &P) -> Vec<(K, Version, Arc<V>)>
    where
        K: CompositeKey,
    {
        collect_versioned(self.snapshot().prefix(prefix).versioned())
    }

    /// The records whose string key starts with `start`, in key order, collected. An
    /// empty `start` selects every record; a whole key selects it and the longer keys
    /// it begins.
    ///
    /// # Examples
    ///
    /// ```
    /// # use viewstore::{Store, ViewDef};
    /// const USERS: ViewDef<String, u32> = ViewDef::new("users");
    /// # let dir = tempfile::tempdir()?;
    /// # let store = Store::open(dir.path().join("s.redb"))?;
    /// let users = store.view(&USERS)?;
    /// for (i, name) in ["ada", "adele", "bob"].into_iter().enumerate() {
    ///     users.put(&name.to_string(), i as u32, 1)?;
    /// }
    /// let names: Vec<String> = users.starts_with("ad").into_iter().map(|(k, _)| k).collect();
    /// assert_eq!(names, ["ada", "adele"]);
    /// assert_eq!(users.starts_with("ada").len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn starts_with(&self, start: &str) -> Vec<(K, Arc<V>)>
    where
        K: Borrow<str>,
    {
        collect_shared(self.snapshot().starts_with(start))
    }

    /// [`starts_with`](View::starts_with) with each record's version.
    pub fn starts_with_versioned(&self, start: &str) -> Vec<(K, Version, Arc<V>)>
    where
        K: Borrow<str>,
    {
        collect_versioned(self.snapshot().starts_with(start).versioned())
    }

    /// The record holding `ikey` in a unique index (the first one, for a multi index),
    /// shared. `ikey` may be borrowed (`&str` for a `String` index key), as for
    /// [`get`](View::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # use viewstore::{IndexDef, Store, ViewDef};
    /// const BY_NAME: IndexDef<String, String> =
    ///     IndexDef::unique("by_name", |name| name.to_lowercase());
    /// const NAMES: ViewDef<u64, String> = ViewDef::new("names").with_indexes(&[&BY_NAME]);
    /// # let dir = tempfile::tempdir()?;
    /// # let store = Store::open(dir.path().join("s.redb"))?;
    /// let names = store.view(&NAMES)?;
    /// names.put(&1, "Ada".to_string(), 1)?;
    /// let (id, name) = names.index_get(&BY_NAME, "ada").expect("indexed");
    /// assert_eq!((id, name.as_str()), (1, "Ada"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn index_get<I, Q>(&self, index: &IndexDef<V, I>, ikey: &Q) -> Option<(K, Arc<V>)>
    where
        I: ViewKey + Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.index_get_entry(index, ikey, |k, entry| (k, Arc::clone(&entry.value)))
    }

    /// Runs `f` on the record holding `ikey` in `index` (the first one, for a multi
    /// index), its value borrowed from memory.
    pub fn index_get_with<I, Q, T>(
        &self,
        index: &IndexDef<V, I>,
        ikey: &Q,
        f: impl FnOnce(K, &V) -> T,
    ) -> Option<T>
    where
        I: ViewKey + Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.index_get_entry(index, ikey, |k, entry| f(k, &entry.value))
    }

    /// The record holding `ikey` in `index` (the first one, for a multi index) with its
    /// version, shared.
    pub fn index_get_versioned<I, Q>(
        &self,
        index: &IndexDef<V, I>,
        ikey: &Q,
    ) -> Option<(K, Version, Arc<V>)>
    where
        I: ViewKey + Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.index_get_entry(index, ikey, |k, e| (k, e.version, Arc::clone(&e.value)))
    }

    /// Runs `f` on the record holding `ikey` in `index`, as of the current root, through
    /// the same index lookups as `IndexView::get` (`IndexData::first_string` and
    /// `IndexData::first`). The key is made ready (a string found as it lies, any other
    /// key encoded and hashed) before the root is loaded, and the whole lookup stays one
    /// function: split across calls, independent lookups stop overlapping their cache
    /// misses (`examples/index_overlap.rs`).
    #[inline]
    fn index_get_entry<I, Q, T>(
        &self,
        index: &IndexDef<V, I>,
        ikey: &Q,
        f: impl FnOnce(K, &Entry<V>) -> T,
    ) -> Option<T>
    where
        I: ViewKey + Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let mut f = Some(f);
        let plain = with_plain_string(ikey, |s| {
            self.index_first(index, |index, data| index.first_string(data, s), &mut f)
        });
        if let Some(found) = plain {
            return found;
        }
        let mut stack = StackKey::new();
        encode_key_on_stack(ikey, &mut stack)?;
        let probe = stack.probe();
        self.index_first(index, |index, data| index.first(data, &probe, &stack), &mut f)
    }

    /// Runs `f` (taken once) on the record that `first` finds in `index`, as of the
    /// current root.
    #[inline]
    fn index_first<I, T, F: FnOnce(K, &Entry<V>) -> T>(
        &self,
        index: &IndexDef<V, I>,
        first: impl for<'a> FnOnce(
            &'a IndexData<V>,
            &'a ViewData<V>,
        ) -> Option<(&'a [u8], &'a Entry<V>)>,
        f: &mut Option<F>,
    ) -> Option<T> {
        self.published.with_root(|root| {
            let data: &ViewData<V> = root.view(self.id)?;
            let index = data.indexes.iter().find(|i| i.is(index.name()))?;
            let (pk, entry) = first(index, data)?;
            let key = decode_key::<K>(pk).ok()?;
            Some(f.take()?(key, entry))
        })
    }

    /// Every record holding `ikey` in `index`, in primary-key order, shared.
    pub fn index_get_all<I, Q>(&self, index: &IndexDef<V, I>, ikey: &Q) -> Vec<(K, Arc<V>)>
    where
        I: ViewKey + Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let snap = self.snapshot();
        let mut entries = snap.index(index).get_all(ikey);
        let mut out = Vec::new();
        while let Some((_, key, entry)) = entries.next_entry() {
            out.push((key, Arc::clone(&entry.value)));
        }
        out
    }

    /// How many records hold `ikey` in `index`.
    pub fn index_count<I, Q>(&self, index: &IndexDef<V, I>, ikey: &Q) -> usize
    where
        I: ViewKey + Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.snapshot().index(index).count(ikey)
    }

    /// The entries of `index` whose string index key starts with `start`, in
    /// index-key order, then primary-key order, collected: `(index key, key, value)`.
    /// See [`IndexView::starts_with`](crate::IndexView::starts_with).
    ///
    /// # Examples
    ///
    /// ```
    /// # use viewstore::{IndexDef, Store, ViewDef};
    /// const BY_HANDLE: IndexDef<(String, u32), String> =
    ///     IndexDef::unique("by_handle", |(handle, _)| handle.clone());
    /// const USERS: ViewDef<u64, (String, u32)> =
    ///     ViewDef::new("users").with_indexes(&[&BY_HANDLE]);
    /// # let dir = tempfile::tempdir()?;
    /// # let store = Store::open(dir.path().join("s.redb"))?;
    /// let users = store.view(&USERS)?;
    /// users.put(&1, ("ada".into(), 36), 1)?;
    /// users.put(&2, ("adele".into(), 40), 1)?;
    /// users.put(&3, ("grace".into(), 85), 1)?;
    /// let found: Vec<(String, u64)> =
    ///     users.index_starts_with(&BY_HANDLE, "ad").into_iter().map(|(h, id, _)| (h, id)).collect();
    /// assert_eq!(found, [("ada".into(), 1), ("adele".into(), 2)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn index_starts_with<I>(&self, index: &IndexDef<V, I>, start: &str) -> Vec<(I, K, Arc<V>)>
    where
        I: ViewKey + Borrow<str>,
    {
        let snap = self.snapshot();
        collect_index(snap.index(index).starts_with(start))
    }
}

fn collect_shared<K: ViewKey, V: ViewValue>(mut iter: Iter<'_, K, V>) -> Vec<(K, Arc<V>)> {
    // Share the values instead of cloning `V`.
    let mut out = Vec::new();
    while let Some((k, value)) = iter.next_shared() {
        out.push((k, Arc::clone(value)));
    }
    out
}

fn collect_versioned<K: ViewKey, V: ViewValue>(
    mut iter: VersionedIter<'_, K, V>,
) -> Vec<(K, Version, Arc<V>)> {
    let mut out = Vec::new();
    while let Some((k, version, value)) = iter.next_shared() {
        out.push((k, version, Arc::clone(value)));
    }
    out
}

fn collect_index<K: ViewKey, V: ViewValue, I: ViewKey>(
    mut iter: IndexIter<'_, K, V, I>,
) -> Vec<(I, K, Arc<V>)> {
    let mut out = Vec::new();
    while let Some((ikey, key, entry)) = iter.next_entry() {
        out.push((ikey, key, Arc::clone(&entry.value)));
    }
    out
}
