//! View definitions, typed view handles (and their source handles) and their reads.

use crate::api::store::Store;
use crate::base::codec::Bincode;
use crate::base::error::Error;
use crate::base::error::Result;
use crate::base::feed::FeedMode;
use crate::base::type_names::strip_paths;
use crate::mem::Published;
use crate::schema::index::AnyIndex;
use crate::storage::format::ViewMeta;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::Arc;

/// The definition of a view: its name, key and value types, value codec and schema
/// version. Usable as a `const`.
///
/// The store records the key and value type names, the codec and the schema version
/// of every view, and the serde shapes of its key and value ([`Shape`](crate::Shape));
/// opening a view with other names or version, or with a shape that changed under the
/// same schema version, fails with [`Error::SchemaMismatch`] naming what changed. Type
/// names are those of [`std::any::type_name`] without module paths (`Profile`,
/// `Vec<Item>`), so moving a type to another module changes nothing; renaming it does,
/// unless the names are fixed with [`ViewDef::with_type_names`].
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
    /// The key and value type names the user fixed, if any.
    type_names: Option<(&'static str, &'static str)>,
    codec: C,
    indexes: &'static [&'static dyn AnyIndex<V>],
    sources: &'static [&'static str],
    feed: FeedMode,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V: 'static> ViewDef<K, V, Bincode> {
    /// A view named `name`, with the bincode codec, schema version 1, no index and no
    /// sources.
    pub const fn new(name: &'static str) -> Self {
        ViewDef::with_codec(name, Bincode)
    }
}

impl<K, V: 'static, C> ViewDef<K, V, C> {
    /// A view named `name` whose values use `codec`, schema version 1, no index, no
    /// sources.
    pub const fn with_codec(name: &'static str, codec: C) -> Self {
        ViewDef {
            name,
            schema_version: 1,
            type_names: None,
            codec,
            indexes: &[],
            sources: &[],
            feed: FeedMode::Off,
            _types: PhantomData,
        }
    }

    /// The same definition with its changes recorded in the store's change feed:
    /// keys and versions ([`FeedMode::Keys`]) or values too ([`FeedMode::Values`]). The
    /// feed is written in the same transaction as the records and read with
    /// [`Store::feed_after`] (every view) or [`View::feed_after`] (this view, typed).
    /// Default = [`FeedMode::Off`]: the view pays nothing. May change between opens of a
    /// file: the feed records what each view asked for when each group committed.
    pub const fn with_feed(mut self, mode: FeedMode) -> Self {
        self.feed = mode;
        self
    }

    /// What the view records in the change feed.
    pub const fn feed(&self) -> FeedMode {
        self.feed
    }

    /// The same definition with these named sources: each record then keeps one
    /// version per source, for a view that several independent streams write, each
    /// with its own version counter (a profile built from a users table and a posts
    /// table, say). Default = none: one version per record.
    ///
    /// Every write to such a view goes through a handle of one source,
    /// [`View::source`]; a write through the plain handle is refused with
    /// [`Error::SourceRequired`]. The rules, for a write from source `s` at version
    /// `v`:
    ///
    /// 1. A record keeps one version per source (none for a source that never wrote
    ///    it). The write applies only if `v` is newer than the record's version for
    ///    `s` (any `v`, when `s` never wrote it); the other sources' versions are kept.
    ///    No write moves any source's version backwards. Otherwise the outcome is
    ///    [`Outcome::Stale`](crate::Outcome::Stale) with `s`'s version as `current`.
    /// 2. A delete from `s` (`delete`, an update returning
    ///    [`Change::Delete`](crate::Change::Delete), `compare_and_delete`) leaves a
    ///    tombstone that keeps every source's version and remembers `s` as its
    ///    *deleter*, the source of the last delete.
    /// 3. A newer write from the deleter brings the record back (an `update` closure
    ///    sees `None`). A newer write from any other source does not: its version is
    ///    recorded (so that its redelivery is stale) and the outcome is
    ///    [`Outcome::Tombstoned`](crate::Outcome::Tombstoned); an `update` closure is
    ///    not run. So a late event of one source never brings back a record that
    ///    another source deleted.
    /// 4. An absent record (never written, or purged) is created by a write from any
    ///    source.
    /// 5. `purge_tombstones(below)` from `s` removes the tombstones whose deleter is
    ///    `s` and whose version for `s` is below `below`. A purged tombstone is
    ///    forgotten with all its versions: a late write from any source can then
    ///    create the record again, so purge only below versions that can no longer
    ///    arrive.
    /// 6. `compare_and_set` and `compare_and_delete` from `s` compare `expected` with
    ///    `s`'s version of the live record: `None` when there is no live record or
    ///    `s` never wrote it.
    /// 7. Reads report a record's version as the largest of its sources' versions.
    ///
    /// The store records the source names. A view may be opened later with sources
    /// appended to the list (they get the next ids); removing or reordering sources,
    /// and adding sources to a view stored without them (or the reverse), is
    /// [`Error::SchemaMismatch`]. Names follow the rules of view names, are distinct,
    /// and number at most [`MAX_SOURCES`](crate::MAX_SOURCES)
    /// ([`Error::InvalidSource`] when the view is opened). A file that holds a view
    /// with sources has format version 2, which builds before sources refuse.
    ///
    /// # Examples
    ///
    /// ```
    /// use viewstore::{Outcome, Store, ViewDef};
    ///
    /// // A user's page: its name comes from the users stream, its deletion too;
    /// // its post count from the posts stream, with counters of its own.
    /// const PAGES: ViewDef<u64, (String, u32)> =
    ///     ViewDef::new("pages").with_sources(&["users", "posts"]);
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("s.redb"))?;
    /// let pages = store.view(&PAGES)?;
    /// let (users, posts) = (pages.source("users")?, pages.source("posts")?);
    ///
    /// users.put(&7, ("ada".into(), 0), 1)?;
    /// posts.update(&7, 40, |p| p.map(|(name, n)| (name.clone(), n + 1)))?;
    /// assert_eq!(pages.get_versioned(&7).map(|(v, p)| (v, p.1)), Some((40, 1)));
    ///
    /// // The user is deleted; a late posts event does not bring the page back.
    /// users.delete(&7, 2)?;
    /// let late = posts.update(&7, 41, |p| p.map(|(name, n)| (name.clone(), n + 1)))?;
    /// assert_eq!(late, Outcome::Tombstoned { deleter_version: 2 });
    /// assert_eq!(pages.get(&7), None);
    ///
    /// // Writes name their source.
    /// assert!(pages.put(&8, ("grace".into(), 0), 1).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn with_sources(mut self, sources: &'static [&'static str]) -> Self {
        self.sources = sources;
        self
    }

    /// The view's sources, in id order; empty for a view without sources.
    pub const fn sources(&self) -> &'static [&'static str] {
        self.sources
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

    /// The same definition with the key and value type names the store records fixed to
    /// `key` and `value`, so that renaming the Rust types keeps the view (their serde
    /// shapes are still compared). Default = the types' names without module paths, as
    /// [`std::any::type_name`] gives them.
    ///
    /// # Examples
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use viewstore::ViewDef;
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct ProfileV2 { name: String }
    ///
    /// const PROFILES: ViewDef<u64, ProfileV2> =
    ///     ViewDef::new("profiles").with_type_names("UserId", "Profile");
    /// assert_eq!(PROFILES.type_names(), ("UserId".to_string(), "Profile".to_string()));
    /// ```
    pub const fn with_type_names(mut self, key: &'static str, value: &'static str) -> Self {
        self.type_names = Some((key, value));
        self
    }

    /// The key and value type names the store records for the view.
    pub fn type_names(&self) -> (String, String) {
        match self.type_names {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => {
                (strip_paths(std::any::type_name::<K>()), strip_paths(std::any::type_name::<V>()))
            }
        }
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
        let (key_type, value_type) = self.type_names();
        ViewMeta {
            key_type,
            value_type,
            codec: strip_paths(std::any::type_name::<C>()),
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
    /// The view's declared sources; empty for a view without sources.
    pub(crate) sources: &'static [&'static str],
    /// The source this handle writes as (an index into `sources`).
    pub(crate) source: Option<u8>,
    pub(crate) published: Arc<Published>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V, C: Clone> Clone for View<K, V, C> {
    fn clone(&self) -> Self {
        View {
            store: self.store.clone(),
            id: self.id,
            name: Arc::clone(&self.name),
            codec: self.codec.clone(),
            sources: self.sources,
            source: self.source,
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
            .field("source", &self.source_name())
            .finish_non_exhaustive()
    }
}

impl<K, V, C> View<K, V, C> {
    pub(crate) fn new(
        store: Store,
        id: usize,
        name: &str,
        codec: C,
        sources: &'static [&'static str],
    ) -> Self {
        let published = store.published();
        let name = Arc::from(name);
        View { store, id, name, codec, sources, source: None, published, _types: PhantomData }
    }

    /// A handle on the same view whose writes come from source `name`, one of those
    /// declared with [`ViewDef::with_sources`]: every write through it (batch
    /// operations and the blocking conveniences alike) is versioned for that source.
    /// Reads are the same through every handle.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownSource`] when the view declares no source `name` (or no sources
    /// at all).
    pub fn source(&self, name: &str) -> Result<Self>
    where
        C: Clone,
    {
        let id = self.sources.iter().position(|&s| s == name).and_then(|i| u8::try_from(i).ok());
        let Some(id) = id else {
            return Err(Error::UnknownSource {
                view: self.name.to_string(),
                source_name: name.to_owned(),
            });
        };
        let mut handle = self.clone();
        handle.source = Some(id);
        Ok(handle)
    }

    /// The source this handle writes as ([`View::source`]); `None` for a plain handle.
    pub fn source_name(&self) -> Option<&'static str> {
        self.source.and_then(|id| self.sources.get(usize::from(id)).copied())
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
