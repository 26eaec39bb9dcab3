//! View definitions, typed view handles and their reads.

use crate::batch::Batch;
use crate::batch::panic_message;
use crate::codec::{
    Bincode, Codec, KeyBuf, StackKey, WideKey, decode_key, encode_key_on_stack, plain_string,
    render_key,
};
use crate::error::{Error, Result};
use crate::format::{IndexMeta, ViewMeta, index_table_name};
use crate::index::{AnyIndex, ExtractError, IndexDef, IndexKind, extract};
use crate::resident::index::{IndexData, composite};
use crate::resident::load::{self, DecodeFn};
use crate::resident::points::Slot;
use crate::resident::{Entry, Published, ResidentView, ViewData, ViewSnapshot};
use crate::store::Store;
use crate::version::{Outcome, Version};
use crate::writer::apply::WriterIndex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::RangeBounds;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// What a view key must be: serde-encodable with the order-preserving key encoding
/// (integers, strings, byte strings, `bool`, `char`, `Option`, tuples, structs and enums
/// of those; not floats or maps), and `Debug` so that errors can name it.
///
/// Keys sort in the order of their encoding, which equals their `Ord` order for the
/// types above (and for derived `Ord` on structs and enums of them).
pub trait ViewKey: Serialize + DeserializeOwned + Debug + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Debug + Send + Sync + 'static> ViewKey for T {}

/// What a view value must be: shareable between threads. Its encoding is the
/// [`Codec`]'s business.
pub trait ViewValue: Send + Sync + 'static {}
impl<T: Send + Sync + 'static> ViewValue for T {}

/// The definition of a view: its name, key and value types, value codec and schema
/// version. Usable as a `const`.
///
/// The store records the key and value type names, the codec and the schema version
/// of every view; opening a view with other ones fails with
/// [`Error::SchemaMismatch`]. Type names are those of [`std::any::type_name`], so
/// moving or renaming a type counts as a change.
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
/// const PROFILES: ViewDef<u64, Profile> = ViewDef::new("profiles").schema_version(2);
/// assert_eq!(PROFILES.name(), "profiles");
/// ```
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
    #[must_use]
    pub const fn with_indexes(mut self, indexes: &'static [&'static dyn AnyIndex<V>]) -> Self {
        self.indexes = indexes;
        self
    }

    /// The view's secondary indexes.
    pub const fn indexes(&self) -> &'static [&'static dyn AnyIndex<V>] {
        self.indexes
    }

    /// The same definition with schema version `version`. Default = 1.
    #[must_use]
    pub const fn schema_version(mut self, version: u32) -> Self {
        self.schema_version = version;
        self
    }

    /// The view's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The view's schema version.
    pub const fn version(&self) -> u32 {
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

/// Checks a view name: 1 to 200 bytes, no control characters.
pub(crate) fn check_view_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(Error::InvalidViewName { view: name.to_owned() });
    }
    Ok(())
}

/// Checks a view's index names: valid and distinct.
pub(crate) fn check_index_names<'a>(
    view: &str,
    names: impl Iterator<Item = &'a str>,
) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for name in names {
        if !crate::index::valid_index_name(name) {
            return Err(Error::InvalidIndex {
                view: view.to_owned(),
                index: name.to_owned(),
                reason: "names are 1 to 200 bytes without control characters or '/'".into(),
                key: None,
            });
        }
        if !seen.insert(name) {
            return Err(Error::InvalidIndex {
                view: view.to_owned(),
                index: name.to_owned(),
                reason: "two indexes of the view have this name".into(),
                key: None,
            });
        }
    }
    Ok(())
}

/// A view as the writer registers it: its meta, its indexes and how to load it.
pub(crate) trait Registration: Send {
    fn name(&self) -> &str;
    fn meta(&self) -> ViewMeta;
    fn render_key(&self) -> fn(&[u8]) -> String;
    fn indexes(&self) -> Vec<IndexRegistration>;
    fn loader(&self) -> Box<dyn Loader>;
}

/// An index as the writer registers it.
pub(crate) struct IndexRegistration {
    pub(crate) meta: IndexMeta,
    pub(crate) writer: WriterIndex,
}

/// Builds a view's resident records from its stored ones, in key order, then its
/// indexes, from their stored entries or from the records.
pub(crate) trait Loader: Send {
    fn push(&mut self, key: &[u8], version: Version, value: &[u8]) -> Result<()>;
    /// Adds the records of `later`, a loader of the same view whose keys all come after
    /// this one's.
    fn append(&mut self, later: Box<dyn Loader>) -> Result<()>;
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any>;
    /// Decode on the pushing thread instead of on worker threads.
    fn decode_inline(&mut self);
    /// Makes room for `records` decoded records (stored records, tombstones included,
    /// so possibly more than will be live): a hint, ignored when the memory is not
    /// there.
    fn reserve(&mut self, records: usize);
    /// Waits until every pushed record is decoded. Decoding happens on worker threads
    /// while records are pushed: errors (naming the first bad record in key order)
    /// surface here. Indexes are loaded or built after this.
    fn decoded(&mut self) -> Result<()>;
    /// Adds a stored entry of index `index`; false when its record is missing.
    fn load_index_entry(&mut self, index: usize, stored: &[u8], ikey_len: usize) -> bool;
    /// Builds index `index` from the records, handing each entry (on-disk key, index
    /// key length) to `sink` and reporting (records done, records in all).
    fn build_index(
        &mut self,
        index: usize,
        sink: &mut dyn FnMut(&[u8], u32) -> Result<()>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()>;
    fn finish(self: Box<Self>) -> Result<Arc<dyn ResidentView>>;
}

pub(crate) struct TypedRegistration<K, V: 'static, C> {
    pub(crate) name: &'static str,
    pub(crate) meta: ViewMeta,
    pub(crate) codec: C,
    pub(crate) indexes: &'static [&'static dyn AnyIndex<V>],
    pub(crate) _types: PhantomData<fn() -> (K, V)>,
}

impl<K: ViewKey, V: ViewValue, C: Codec<V> + Clone> Registration for TypedRegistration<K, V, C> {
    fn name(&self) -> &str {
        self.name
    }
    fn meta(&self) -> ViewMeta {
        self.meta.clone()
    }
    fn render_key(&self) -> fn(&[u8]) -> String {
        render_key::<K>
    }
    fn indexes(&self) -> Vec<IndexRegistration> {
        self.indexes
            .iter()
            .map(|&spec| IndexRegistration {
                meta: IndexMeta {
                    unique: spec.index_kind() == IndexKind::Unique,
                    version: spec.index_version(),
                    key_type: spec.index_key_type().to_owned(),
                },
                writer: WriterIndex {
                    name: Arc::from(spec.index_name()),
                    kind: spec.index_kind(),
                    table: index_table_name(self.name, spec.index_name()),
                    extract: Box::new(move |value| extract(spec, value)),
                    render: Box::new(move |bytes| spec.render_key(bytes)),
                },
            })
            .collect()
    }

    fn loader(&self) -> Box<dyn Loader> {
        let name = self.name;
        let codec = self.codec.clone();
        let decode: DecodeFn<V> = Arc::new(move |key: &[u8], value: &[u8]| {
            // The key's `Deserialize` and the codec are user code: a panic in either
            // fails the view's open with a decode error naming the record.
            let decoded = catch_unwind(AssertUnwindSafe(|| {
                if let Err(e) = decode_key::<K>(key) {
                    return Err(Error::decode(name, crate::codec::render_bytes(key), e));
                }
                codec.decode(value).map_err(|e| Error::decode(name, render_key::<K>(key), e))
            }));
            decoded.unwrap_or_else(|payload| {
                let message = format!("the codec panicked: {}", panic_message(payload.as_ref()));
                Err(Error::decode(name, render_key::<K>(key), message))
            })
        });
        Box::new(TypedLoader::<K, V> {
            name: self.name,
            specs: self.indexes,
            loading: load::Loader::new(self.name, Arc::clone(&decode)),
            decode,
            records: None,
            indexes: self
                .indexes
                .iter()
                .map(|spec| IndexData::new(spec.index_name(), spec.index_kind()))
                .collect(),
            _types: PhantomData,
        })
    }
}

struct TypedLoader<K, V: 'static> {
    name: &'static str,
    specs: &'static [&'static dyn AnyIndex<V>],
    decode: DecodeFn<V>,
    /// Records pushed so far, being decoded.
    loading: load::Loader<V>,
    /// Every record, decoded, in key order, once `decoded` has run.
    records: Option<Vec<Slot<V>>>,
    indexes: Vec<IndexData<V>>,
    _types: PhantomData<fn() -> K>,
}

impl<K: ViewKey, V: ViewValue> Loader for TypedLoader<K, V> {
    fn push(&mut self, key: &[u8], version: Version, value: &[u8]) -> Result<()> {
        self.loading.push(key, version, value);
        Ok(())
    }

    fn append(&mut self, later: Box<dyn Loader>) -> Result<()> {
        match later.into_any().downcast::<Self>() {
            Ok(later) => {
                self.loading.append(later.loading);
                Ok(())
            }
            Err(_) => {
                Err(Error::decode(self.name, "(loading)".into(), "records of another view type"))
            }
        }
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }

    fn decode_inline(&mut self) {
        self.loading.decode_inline();
    }

    fn reserve(&mut self, records: usize) {
        self.loading.reserve(records);
    }

    fn decoded(&mut self) -> Result<()> {
        if self.records.is_none() {
            let fresh = load::Loader::new(self.name, Arc::clone(&self.decode));
            let loading = std::mem::replace(&mut self.loading, fresh);
            self.records = Some(loading.into_records()?);
        }
        Ok(())
    }

    fn load_index_entry(&mut self, index: usize, stored: &[u8], ikey_len: usize) -> bool {
        let (Some(ikey), Some(pk)) = (stored.get(..ikey_len), stored.get(ikey_len..)) else {
            return false;
        };
        let records = self.records.as_deref().unwrap_or_default();
        let present = records.binary_search_by(|s| s.key.as_bytes().cmp(pk)).is_ok();
        let (true, Some(index)) = (present, self.indexes.get_mut(index)) else {
            return false;
        };
        index.push_loaded(ikey, pk);
        true
    }

    fn build_index(
        &mut self,
        index: usize,
        sink: &mut dyn FnMut(&[u8], u32) -> Result<()>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        let records = self.records.as_deref().unwrap_or_default();
        let (Some(&spec), Some(built)) = (self.specs.get(index), self.indexes.get_mut(index))
        else {
            return Ok(());
        };
        let total = records.len() as u64;
        let mut done = 0u64;
        progress(0, total);
        // Entries are gathered, then written in key order: sorted inserts are much
        // cheaper for redb's B-tree and for the resident tree than scattered ones.
        let mut entries: Vec<(WideKey, u32, &KeyBuf)> = Vec::with_capacity(records.len());
        for slot in records {
            let pk = &slot.key;
            let keys = extract(spec, &*slot.entry.value).map_err(|e| {
                build_error(self.name, spec.index_name(), render_key::<K>(pk.as_bytes()), e)
            })?;
            for ikey in keys {
                let stored = composite(&ikey, pk.as_bytes());
                entries.push((stored, ikey.len() as u32, pk));
            }
            done += 1;
            if done.is_multiple_of(10_000) {
                progress(done, total);
            }
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut previous: Option<(&[u8], &KeyBuf)> = None;
        for (stored, ikey_len, pk) in &entries {
            let ikey = &stored.as_bytes()[..*ikey_len as usize];
            if let Some((held, holder)) = previous
                && built.kind == IndexKind::Unique
                && held == ikey
            {
                return Err(Error::UniqueViolation {
                    view: self.name.to_owned(),
                    index: spec.index_name().to_owned(),
                    key: spec.render_key(ikey),
                    key_bytes: ikey.into(),
                    holder: render_key::<K>(holder.as_bytes()).into(),
                    refused: render_key::<K>(pk.as_bytes()).into(),
                });
            }
            previous = Some((ikey, pk));
            sink(stored.as_bytes(), *ikey_len)?;
            built.push_loaded(ikey, pk.as_bytes());
        }
        if !done.is_multiple_of(10_000) {
            progress(done, total);
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<Arc<dyn ResidentView>> {
        self.decoded()?;
        let records = self.records.take().unwrap_or_default();
        let mut data = ViewData::from_sorted(self.name, records);
        data.seal_indexes(std::mem::take(&mut self.indexes));
        Ok(Arc::new(data))
    }
}

fn build_error(view: &str, index: &str, key: String, e: ExtractError) -> Error {
    match e {
        ExtractError::Panicked(message) => {
            Error::IndexPanicked { view: view.to_owned(), index: index.to_owned(), key, message }
        }
        ExtractError::TooLarge(len) => Error::IndexKeyTooLarge {
            view: view.to_owned(),
            index: index.to_owned(),
            key,
            len,
            max: crate::MAX_KEY_BYTES,
        },
        ExtractError::Encoding(reason) => Error::InvalidIndex {
            view: view.to_owned(),
            index: index.to_owned(),
            reason,
            key: Some(key),
        },
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
    /// const BY_NAME: IndexDef<String, String, [String; 1]> =
    ///     IndexDef::unique("by_name", |name| [name.to_lowercase()]);
    /// const NAMES: ViewDef<u64, String> = ViewDef::new("names").with_indexes(&[&BY_NAME]);
    /// # let dir = tempfile::tempdir()?;
    /// # let store = Store::open(dir.path().join("s.redb"))?;
    /// let names = store.view(&NAMES)?;
    /// names.put(&1, "Ada".to_string(), 1)?;
    /// let (id, name) = names.index_get(&BY_NAME, &"ada".to_string()).expect("indexed");
    /// assert_eq!((id, name.as_str()), (1, "Ada"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn index_get<I: ViewKey, R>(
        &self,
        index: &IndexDef<V, I, R>,
        ikey: &I,
    ) -> Option<(K, Arc<V>)> {
        self.index_get_with(index, ikey, |k, v| (k, Arc::clone(v)))
    }

    /// Runs `f` on the record holding `ikey` in `index`, borrowed from memory.
    pub fn index_get_with<I: ViewKey, R, T>(
        &self,
        index: &IndexDef<V, I, R>,
        ikey: &I,
        f: impl FnOnce(K, &Arc<V>) -> T,
    ) -> Option<T> {
        if let Some(s) = plain_string(ikey) {
            return self.index_first(index, |index, data| index.first_string(data, s), f);
        }
        let mut stack = StackKey::new();
        encode_key_on_stack(ikey, &mut stack)?;
        let probe = stack.probe();
        self.index_first(index, |index, data| index.first(data, &probe, &stack), f)
    }

    /// Runs `f` on the record `first` finds in `index`, as of the current root.
    #[inline]
    fn index_first<I, R, T>(
        &self,
        index: &IndexDef<V, I, R>,
        first: impl for<'a> FnOnce(
            &'a IndexData<V>,
            &'a ViewData<V>,
        ) -> Option<(&'a KeyBuf, &'a Entry<V>)>,
        f: impl FnOnce(K, &Arc<V>) -> T,
    ) -> Option<T> {
        self.published.with_root(|root| {
            let data: &ViewData<V> = root.view(self.id)?;
            let index = data.indexes.iter().find(|i| i.is(index.name()))?;
            let (pk, entry) = first(index, data)?;
            let key = decode_key::<K>(pk.as_bytes()).ok()?;
            Some(f(key, &entry.value))
        })
    }

    /// Every record holding `ikey` in `index`, in primary-key order, shared.
    pub fn index_get_all<I: ViewKey, R>(
        &self,
        index: &IndexDef<V, I, R>,
        ikey: &I,
    ) -> Vec<(K, Arc<V>)> {
        let snap = self.snapshot();
        let found: Vec<K> = snap.index(index).get_all(ikey).map(|(_, k, _)| k).collect();
        found.into_iter().filter_map(|k| snap.get_arc(&k).map(|v| (k, v))).collect()
    }

    /// How many records hold `ikey` in `index`.
    pub fn index_count<I: ViewKey, R>(&self, index: &IndexDef<V, I, R>, ikey: &I) -> usize {
        self.snapshot().index(index).count(ikey)
    }

    fn write(&self, fill: impl FnOnce(&mut Batch) -> Result<&mut Batch>) -> Result<Outcome> {
        let mut batch = Batch::new();
        fill(&mut batch)?;
        let receipt = self.store.submit(batch)?.wait()?;
        Ok(receipt.outcomes.first().copied().unwrap_or(Outcome::Unchanged))
    }

    /// Writes `value` at `version` and waits for the commit. See [`Batch::put`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use viewstore::{Outcome, Store, ViewDef};
    /// const NAMES: ViewDef<u64, String> = ViewDef::new("names");
    /// # let dir = tempfile::tempdir()?;
    /// # let store = Store::open(dir.path().join("s.redb"))?;
    /// let names = store.view(&NAMES)?;
    /// assert_eq!(names.put(&1, "new".to_string(), 5)?, Outcome::Applied);
    /// assert_eq!(names.put(&1, "old".to_string(), 4)?, Outcome::Stale { current: 5 });
    /// assert_eq!(names.get(&1).as_deref().map(String::as_str), Some("new"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put(&self, key: &K, value: V, version: Version) -> Result<Outcome> {
        self.write(|b| b.put(self, key, value, version))
    }

    /// Deletes `key` at `version` and waits for the commit. See [`Batch::delete`].
    pub fn delete(&self, key: &K, version: Version) -> Result<Outcome> {
        self.write(|b| b.delete(self, key, version))
    }

    /// Compare-and-set, waiting for the commit. See [`Batch::compare_and_set`].
    pub fn compare_and_set(
        &self,
        key: &K,
        expected: Option<Version>,
        version: Version,
        value: V,
    ) -> Result<Outcome> {
        self.write(|b| b.compare_and_set(self, key, expected, version, value))
    }

    /// Read-modify-write inside the writer, waiting for the commit. See
    /// [`Batch::update`].
    pub fn update<F>(&self, key: &K, version: Version, f: F) -> Result<Outcome>
    where
        F: FnOnce(Option<&V>) -> Option<V> + Send + 'static,
    {
        self.write(|b| b.update(self, key, version, f))
    }

    /// Removes this view's tombstones below `below` and returns how many there were.
    /// See [`Batch::purge_tombstones`].
    pub fn purge_tombstones(&self, below: Version) -> Result<u64> {
        match self.write(|b| b.purge_tombstones(self, below))? {
            Outcome::Purged { count } => Ok(count),
            _ => Ok(0),
        }
    }
}

fn collect_shared<K: ViewKey, V: ViewValue>(
    mut iter: crate::resident::Iter<'_, K, V>,
) -> Vec<(K, Arc<V>)> {
    // Share the values instead of cloning `V`.
    let mut out = Vec::new();
    while let Some((k, value)) = iter.next_shared() {
        out.push((k, Arc::clone(value)));
    }
    out
}
