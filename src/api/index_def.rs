//! Secondary index definitions: a name, unique or multi-valued, and an extractor.

use crate::base::index_kind::IndexKind;
use crate::keys::{encode_key, render_key, unencodable_part};
use crate::schema::index::AnyIndex;
use crate::schema::registration::ViewKey;

/// The definition of a secondary index on a view with values `V` and index keys `I`:
/// a name, a kind and an extractor. Usable as a `const`.
///
/// The constructor says both the kind and how many index keys a record has:
///
/// | index keys per record | unique | multi |
/// |---|---|---|
/// | exactly one: `fn(&V) -> I` | [`unique`](Self::unique) | [`multi`](Self::multi) |
/// | zero or one: `fn(&V) -> Option<I>` | [`unique_optional`](Self::unique_optional) | [`multi_optional`](Self::multi_optional) |
/// | any number: `fn(&V) -> Vec<I>` | [`unique_keys`](Self::unique_keys) | [`multi_keys`](Self::multi_keys) |
///
/// A unique index gives each index key to at most one record; a multi index to any
/// number. Duplicates in the keys of one record count once.
///
/// Index keys use the order-preserving key encoding, like view keys. The definition
/// version (default 1) is stored; bump it with
/// [`with_definition_version`](Self::with_definition_version) whenever the extractor
/// changes, and the index is rebuilt from the view's records at the next open.
///
/// # Examples
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use viewstore::{IndexDef, ViewDef};
///
/// #[derive(Serialize, Deserialize)]
/// struct User { email: String, city: String, manager: Option<u64>, tags: Vec<String> }
///
/// const BY_EMAIL: IndexDef<User, String> = IndexDef::unique("by_email", |u| u.email.clone());
/// const BY_CITY: IndexDef<User, String> = IndexDef::multi("by_city", |u| u.city.clone());
/// const BY_MANAGER: IndexDef<User, u64> = IndexDef::multi_optional("by_manager", |u| u.manager);
/// const BY_TAG: IndexDef<User, String> = IndexDef::multi_keys("by_tag", |u| u.tags.clone());
/// const USERS: ViewDef<u64, User> =
///     ViewDef::new("users").with_indexes(&[&BY_EMAIL, &BY_CITY, &BY_MANAGER, &BY_TAG]);
/// # assert_eq!(BY_EMAIL.name(), "by_email");
/// ```
#[must_use = "an IndexDef does nothing until a ViewDef lists it"]
pub struct IndexDef<V, I> {
    name: &'static str,
    kind: IndexKind,
    definition_version: u32,
    extract: Extract<V, I>,
}

/// An index's extractor, by how many keys it gives a record. Function pointers, so that
/// an `IndexDef` stays usable as a `const`.
enum Extract<V, I> {
    One(fn(&V) -> I),
    Optional(fn(&V) -> Option<I>),
    Many(fn(&V) -> Vec<I>),
}

impl<V, I> IndexDef<V, I> {
    const fn new(name: &'static str, kind: IndexKind, extract: Extract<V, I>) -> Self {
        IndexDef { name, kind, definition_version: 1, extract }
    }

    /// A unique index named `name`, with exactly one index key per record.
    pub const fn unique(name: &'static str, extract: fn(&V) -> I) -> Self {
        Self::new(name, IndexKind::Unique, Extract::One(extract))
    }

    /// A unique index named `name`, with zero or one index key per record: a record
    /// whose extractor returns `None` is not in the index.
    pub const fn unique_optional(name: &'static str, extract: fn(&V) -> Option<I>) -> Self {
        Self::new(name, IndexKind::Unique, Extract::Optional(extract))
    }

    /// A unique index named `name`, with any number of index keys per record, each of
    /// them held by no other record.
    pub const fn unique_keys(name: &'static str, extract: fn(&V) -> Vec<I>) -> Self {
        Self::new(name, IndexKind::Unique, Extract::Many(extract))
    }

    /// A multi-valued index named `name`, with exactly one index key per record.
    pub const fn multi(name: &'static str, extract: fn(&V) -> I) -> Self {
        Self::new(name, IndexKind::Multi, Extract::One(extract))
    }

    /// A multi-valued index named `name`, with zero or one index key per record: a
    /// record whose extractor returns `None` is not in the index.
    pub const fn multi_optional(name: &'static str, extract: fn(&V) -> Option<I>) -> Self {
        Self::new(name, IndexKind::Multi, Extract::Optional(extract))
    }

    /// A multi-valued index named `name`, with any number of index keys per record
    /// (tags, for example).
    pub const fn multi_keys(name: &'static str, extract: fn(&V) -> Vec<I>) -> Self {
        Self::new(name, IndexKind::Multi, Extract::Many(extract))
    }

    /// The same index with definition version `version`: bump it whenever the
    /// extractor changes, and the index is rebuilt at the next open. Default = 1.
    pub const fn with_definition_version(mut self, version: u32) -> Self {
        self.definition_version = version;
        self
    }

    /// The index's definition version.
    pub const fn definition_version(&self) -> u32 {
        self.definition_version
    }

    /// The index's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Unique or multi.
    pub const fn kind(&self) -> IndexKind {
        self.kind
    }
}

impl<V, I> crate::schema::index::sealed::Sealed for IndexDef<V, I> {}

impl<V, I: ViewKey> AnyIndex<V> for IndexDef<V, I> {
    fn index_name(&self) -> &'static str {
        self.name
    }
    fn index_kind(&self) -> IndexKind {
        self.kind
    }
    fn index_definition_version(&self) -> u32 {
        self.definition_version
    }
    fn index_key_type(&self) -> &'static str {
        std::any::type_name::<I>()
    }
    fn encoded_keys(&self, value: &V) -> Result<Vec<Vec<u8>>, String> {
        let encode = |key: &I| {
            // Most index keys fit; one allocation instead of a few as the key grows.
            let mut out = Vec::with_capacity(32);
            encode_key(key, &mut out).map_err(|e| e.0)?;
            Ok::<_, String>(out)
        };
        match &self.extract {
            Extract::One(f) => Ok(vec![encode(&f(value))?]),
            Extract::Optional(f) => f(value).as_ref().map(encode).into_iter().collect(),
            Extract::Many(f) => {
                let mut keys = f(value).iter().map(encode).collect::<Result<Vec<_>, _>>()?;
                keys.sort_unstable();
                keys.dedup();
                Ok(keys)
            }
        }
    }
    fn encode_keys_into(
        &self,
        value: &V,
        out: &mut Vec<u8>,
        ends: &mut Vec<usize>,
    ) -> Result<(), String> {
        let mut encode = |key: &I| {
            encode_key(key, out).map_err(|e| e.0)?;
            ends.push(out.len());
            Ok::<_, String>(())
        };
        match &self.extract {
            Extract::One(f) => encode(&f(value)),
            Extract::Optional(f) => f(value).as_ref().map_or(Ok(()), encode),
            // Sorted and without duplicates, which the buffer cannot do in place.
            Extract::Many(_) => {
                for key in self.encoded_keys(value)? {
                    out.extend_from_slice(&key);
                    ends.push(out.len());
                }
                Ok(())
            }
        }
    }
    fn render_key(&self, bytes: &[u8]) -> String {
        render_key::<I>(bytes)
    }
    fn unencodable_key_part(&self) -> Result<(), &'static str> {
        unencodable_part::<I>()
    }
}
