//! View definitions, typed view handles and their reads.

use crate::api::index_def::IndexDef;
use crate::api::store::Store;
use crate::base::codec::{Bincode, Codec};
use crate::base::error::Error;
use crate::base::error::Result;
use crate::base::version::Version;
use crate::engine::writer::Request;
use crate::keys::unencodable_part;
use crate::keys::{KeyBuf, StackKey, decode_key, encode_key_on_stack, plain_string};
use crate::mem::index::IndexData;
use crate::mem::{Entry, Published, ViewData, ViewSnapshot};
use crate::schema::index::AnyIndex;
use crate::schema::names::{check_index_names, check_view_name};
use crate::schema::registration::TypedRegistration;
use crate::schema::registration::{ViewKey, ViewValue};
use crate::storage::format::ViewMeta;
use serde::Serialize;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::RangeBounds;
use std::sync::Arc;

/// The definition of a view: its name, key and value types, value codec and schema
/// version. Usable as a `const`.
///
/// The store records the key and value type names, the codec and the schema version
/// of every view; opening a view with other ones fails with
/// [`Error::SchemaMismatch`]. Type names are those of [`std::any::type_name`], so
/// moving or renaming a type counts as a change.
///
/// Options are set with `with_*` methods, whose documentation gives the default and
/// whose result must be used (the type is `#[must_use]`), and read back by their bare
/// names.
///
/// # Examples
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use viewstore::ViewDef;
///
/// #[derive(Serialize, Deserialize)]
/// struct Profile { name: String, followers: u64 }
///
/// const PROFILES: ViewDef<u64, Profile> = ViewDef::new("profiles").with_schema_version(2);
/// assert_eq!(PROFILES.name(), "profiles");
/// assert_eq!(PROFILES.schema_version(), 2);
/// ```
#[must_use = "a ViewDef does nothing until it is opened with `Store::view`"]
pub struct ViewDef<K, V: 'static, C = Bincode> {
    name: &'static str,
    schema_version: u32,
    codec: C,
    indexes: &'static [&'static dyn AnyIndex<V>],
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V: 'static> ViewDef<K, V, Bincode> {
    /// A view named `name`, with the bincode codec, schema version 1 and no index.
    pub const fn new(name: &'static str) -> Self {
        ViewDef { name, schema_version: 1, codec: Bincode, indexes: &[], _types: PhantomData }
    }
}

impl<K, V: 'static, C> ViewDef<K, V, C> {
    /// A view named `name` whose values use `codec`, schema version 1, no index.
    pub const fn with_codec(name: &'static str, codec: C) -> Self {
        ViewDef { name, schema_version: 1, codec, indexes: &[], _types: PhantomData }
    }

    /// The same definition with these secondary indexes. They are maintained in the same
    /// transaction as every write, built at open when new or changed, and dropped from
    /// the file when no longer listed. Default = none.
    pub const fn with_indexes(mut self, indexes: &'static [&'static dyn AnyIndex<V>]) -> Self {
        self.indexes = indexes;
        self
    }

    /// The view's secondary indexes.
    pub const fn indexes(&self) -> &'static [&'static dyn AnyIndex<V>] {
        self.indexes
    }

    /// The same definition with schema version `version`: bump it whenever the value
    /// type or the codec changes shape. Default = 1.
    pub const fn with_schema_version(mut self, version: u32) -> Self {
        self.schema_version = version;
        self
    }

    /// The view's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The view's schema version.
    pub const fn schema_version(&self) -> u32 {
        self.schema_version
    }

    pub(crate) fn codec(&self) -> &C {
        &self.codec
    }
}

impl<K, V: 'static, C: Clone> ViewDef<K, V, C> {
    pub(crate) fn meta(&self) -> ViewMeta {
        ViewMeta {
            key_type: std::any::type_name::<K>().to_owned(),
            value_type: std::any::type_name::<V>().to_owned(),
            codec: std::any::type_name::<C>().to_owned(),
            schema_version: self.schema_version,
        }
    }
}

/// A handle on one view of an open store: typed reads from memory and blocking writes.
/// Cheap to clone, `Send + Sync`; made by [`Store::view`].
///
/// Reads never touch disk, never wait for the writer and decode nothing. Each read sees
/// the latest committed group; use [`View::snapshot`] or [`Store::snapshot`] for many
/// reads at one LSN.
pub struct View<K, V, C = Bincode> {
    pub(crate) store: Store,
    pub(crate) id: usize,
    pub(crate) name: Arc<str>,
    pub(crate) codec: C,
    published: Arc<Published>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V, C: Clone> Clone for View<K, V, C> {
    fn clone(&self) -> Self {
        View {
            store: self.store.clone(),
            id: self.id,
            name: Arc::clone(&self.name),
            codec: self.codec.clone(),
            published: Arc::clone(&self.published),
            _types: PhantomData,
        }
    }
}

impl<K, V, C> Debug for View<K, V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<K, V, C> View<K, V, C> {
    pub(crate) fn new(store: Store, id: usize, name: &str, codec: C) -> Self {
        let published = store.published();
        View { store, id, name: Arc::from(name), codec, published, _types: PhantomData }
    }

    /// The view's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store this view belongs to.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl<K: ViewKey, V: ViewValue, C: Codec<V> + Clone> View<K, V, C> {
    fn with_entry<R>(&self, key: &K, f: impl FnOnce(&Entry<V>) -> R) -> Option<R> {
        let mut stack = StackKey::new();
        encode_key_on_stack(key, &mut stack)?;
        let probe = stack.probe();
        self.published.with_root(|root| root.view::<V>(self.id)?.find(&probe).map(f))
    }

    /// Runs `f` on the value of `key`, borrowed from memory: no reference count is
    /// written, nothing is copied. The fastest read.
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
    pub fn get_with<R>(&self, key: &K, f: impl FnOnce(&V) -> R) -> Option<R> {
        self.with_entry(key, |e| f(&e.value))
    }

    /// The value of `key`, shared (one reference count increment on the value).
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        self.with_entry(key, |e| Arc::clone(&e.value))
    }

    /// The version and value of `key`.
    pub fn get_versioned(&self, key: &K) -> Option<(Version, Arc<V>)> {
        self.with_entry(key, |e| (e.version, Arc::clone(&e.value)))
    }

    /// The version of the live record of `key`.
    pub fn version(&self, key: &K) -> Option<Version> {
        self.with_entry(key, |e| e.version)
    }

    /// Whether `key` has a live record.
    pub fn contains(&self, key: &K) -> bool {
        self.with_entry(key, |_| ()).is_some()
    }

    /// The number of live records.
    pub fn len(&self) -> usize {
        let root = self.published.load();
        root.view::<V>(self.id).map_or(0, ViewData::len)
    }

    /// Whether the view has no live record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The view at the latest committed LSN, for many consistent reads and for ordered
    /// scans (`iter`, `range`, `prefix`) that borrow.
    pub fn snapshot(&self) -> ViewSnapshot<K, V> {
        ViewSnapshot::new(self.published.load_full(), self.id)
    }

    /// The records whose keys fall in `range`, in key order, collected.
    pub fn range<R: RangeBounds<K>>(&self, range: R) -> Vec<(K, Arc<V>)> {
        let snap = self.snapshot();
        collect_shared(snap.range(range))
    }

    /// The records whose encoded key starts with the encoding of `prefix`, in key order,
    /// collected. See [`ViewSnapshot::prefix`].
    pub fn prefix<P: Serialize + ?Sized>(&self, prefix: &P) -> Vec<(K, Arc<V>)> {
        let snap = self.snapshot();
        collect_shared(snap.prefix(prefix))
    }

    /// The record holding `ikey` in a unique index (the first one, for a multi index),
    /// shared.
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
    /// let (id, name) = names.index_get(&BY_NAME, &"ada".to_string()).expect("indexed");
    /// assert_eq!((id, name.as_str()), (1, "Ada"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn index_get<I: ViewKey>(&self, index: &IndexDef<V, I>, ikey: &I) -> Option<(K, Arc<V>)> {
        self.index_get_entry(index, ikey, |k, entry| (k, Arc::clone(&entry.value)))
    }

    /// Runs `f` on the record holding `ikey` in `index` (the first one, for a multi
    /// index), its value borrowed from memory.
    pub fn index_get_with<I: ViewKey, T>(
        &self,
        index: &IndexDef<V, I>,
        ikey: &I,
        f: impl FnOnce(K, &V) -> T,
    ) -> Option<T> {
        self.index_get_entry(index, ikey, |k, entry| f(k, &entry.value))
    }

    /// Runs `f` on the record holding `ikey` in `index`, as of the current root, through
    /// the same index lookups as `IndexView::get` (`IndexData::first_string` and
    /// `IndexData::first`). The key is made ready (encoded and hashed) before the root is
    /// loaded, and the whole lookup stays one function: split across calls, independent
    /// lookups stop overlapping their cache misses (`examples/index_overlap.rs`).
    fn index_get_entry<I: ViewKey, T>(
        &self,
        index: &IndexDef<V, I>,
        ikey: &I,
        f: impl FnOnce(K, &Entry<V>) -> T,
    ) -> Option<T> {
        if let Some(s) = plain_string(ikey) {
            return self.index_first(index, |index, data| index.first_string(data, s), f);
        }
        let mut stack = StackKey::new();
        encode_key_on_stack(ikey, &mut stack)?;
        let probe = stack.probe();
        self.index_first(index, |index, data| index.first(data, &probe, &stack), f)
    }

    #[inline]
    fn index_first<I, T>(
        &self,
        index: &IndexDef<V, I>,
        first: impl for<'a> FnOnce(
            &'a IndexData<V>,
            &'a ViewData<V>,
        ) -> Option<(&'a KeyBuf, &'a Entry<V>)>,
        f: impl FnOnce(K, &Entry<V>) -> T,
    ) -> Option<T> {
        self.published.with_root(|root| {
            let data: &ViewData<V> = root.view(self.id)?;
            let index = data.indexes.iter().find(|i| i.is(index.name()))?;
            let (pk, entry) = first(index, data)?;
            let key = decode_key::<K>(pk.as_bytes()).ok()?;
            Some(f(key, entry))
        })
    }

    /// Every record holding `ikey` in `index`, in primary-key order, shared.
    pub fn index_get_all<I: ViewKey>(&self, index: &IndexDef<V, I>, ikey: &I) -> Vec<(K, Arc<V>)> {
        let snap = self.snapshot();
        let found: Vec<K> = snap.index(index).get_all(ikey).map(|(_, k, _)| k).collect();
        found.into_iter().filter_map(|k| snap.get(&k).map(|v| (k, v))).collect()
    }

    /// How many records hold `ikey` in `index`.
    pub fn index_count<I: ViewKey>(&self, index: &IndexDef<V, I>, ikey: &I) -> usize {
        self.snapshot().index(index).count(ikey)
    }
}

fn collect_shared<K: ViewKey, V: ViewValue>(
    mut iter: crate::mem::Iter<'_, K, V>,
) -> Vec<(K, Arc<V>)> {
    // Share the values instead of cloning `V`.
    let mut out = Vec::new();
    while let Some((k, value)) = iter.next_shared() {
        out.push((k, Arc::clone(value)));
    }
    out
}

impl Store {
    /// Opens a view: registers it on first use (recording its types and schema version)
    /// and loads its records into memory, or checks that they match what is stored.
    /// Call it once per view and clone the handle.
    ///
    /// # Errors
    ///
    /// [`Error::SchemaMismatch`] when the view is stored with other key or value types,
    /// codec or schema version (nothing is written); [`Error::InvalidViewName`];
    /// [`Error::KeyEncoding`] when the key type holds a part the key encoding cannot
    /// encode (a float, a map, an untagged enum), in any variant;
    /// [`Error::Decode`] naming the key of a stored record that does not decode;
    /// [`Error::Closed`].
    pub fn view<K, V, C>(&self, def: &ViewDef<K, V, C>) -> Result<View<K, V, C>>
    where
        K: ViewKey,
        V: ViewValue,
        C: Codec<V> + Clone,
    {
        check_view_name(def.name())?;
        check_index_names(def.name(), def.indexes().iter().map(|i| i.index_name()))?;
        if let Err(what) = unencodable_part::<K>() {
            return Err(Error::KeyEncoding {
                view: def.name().to_owned(),
                reason: format!(
                    "the key type {} holds {what}, which the order-preserving key encoding \
                     cannot encode",
                    std::any::type_name::<K>()
                ),
            });
        }
        for index in def.indexes() {
            if let Err(what) = index.unencodable_key_part() {
                return Err(Error::InvalidIndex {
                    view: def.name().to_owned(),
                    index: index.index_name().to_owned(),
                    reason: format!(
                        "the index key type {} holds {what}, which the order-preserving key \
                         encoding cannot encode",
                        index.index_key_type()
                    ),
                    key: None,
                });
            }
        }
        let registration = TypedRegistration::<K, V, C> {
            name: def.name(),
            meta: def.meta(),
            codec: def.codec().clone(),
            indexes: def.indexes(),
            _types: PhantomData,
        };
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Request::Register { registration: Box::new(registration), reply })?;
        let id = answer.recv().map_err(|_| self.gone_error())??;
        Ok(View::new(self.clone(), id, def.name(), def.codec().clone()))
    }
}
