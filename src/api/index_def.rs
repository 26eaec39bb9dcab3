//! Secondary index definitions: a name, unique or multi-valued, and an extractor.

use crate::base::index_kind::IndexKind;
use crate::keys::{encode_key, render_key};
use crate::schema::index::AnyIndex;
use crate::schema::registration::ViewKey;
use std::marker::PhantomData;

/// The definition of a secondary index on a view with values `V`: a name, a kind and an
/// extractor giving zero, one or many index keys `I` per value. Usable as a `const`.
///
/// Index keys use the order-preserving key encoding, like view keys. The definition
/// version (default 1) is stored; bump it whenever the extractor changes, and the index
/// is rebuilt from the view's records at the next open.
///
/// `R` is what the extractor returns: `Vec<I>` by default, or any `IntoIterator` of
/// `I` such as `Option<I>` or `[I; 1]`.
///
/// # Examples
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use viewstore::{IndexDef, ViewDef};
///
/// #[derive(Serialize, Deserialize)]
/// struct User { email: String, city: String, tags: Vec<String> }
///
/// const BY_EMAIL: IndexDef<User, String, [String; 1]> =
///     IndexDef::unique("by_email", |u| [u.email.clone()]);
/// const BY_TAG: IndexDef<User, String> = IndexDef::multi("by_tag", |u| u.tags.clone());
/// const USERS: ViewDef<u64, User> = ViewDef::new("users").with_indexes(&[&BY_EMAIL, &BY_TAG]);
/// # assert_eq!(BY_EMAIL.name(), "by_email");
/// ```
pub struct IndexDef<V, I, R = Vec<I>> {
    name: &'static str,
    kind: IndexKind,
    definition_version: u32,
    extract: fn(&V) -> R,
    _key: PhantomData<fn() -> I>,
}

impl<V, I, R> IndexDef<V, I, R> {
    /// A unique index named `name`.
    pub const fn unique(name: &'static str, extract: fn(&V) -> R) -> Self {
        IndexDef {
            name,
            kind: IndexKind::Unique,
            definition_version: 1,
            extract,
            _key: PhantomData,
        }
    }

    /// A multi-valued index named `name`.
    pub const fn multi(name: &'static str, extract: fn(&V) -> R) -> Self {
        IndexDef { name, kind: IndexKind::Multi, definition_version: 1, extract, _key: PhantomData }
    }

    /// The same index with definition version `version`: bump it whenever the
    /// extractor changes, and the index is rebuilt at the next open. Default = 1.
    #[must_use]
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

impl<V, I, R> crate::schema::index::sealed::Sealed for IndexDef<V, I, R> {}

impl<V, I, R> AnyIndex<V> for IndexDef<V, I, R>
where
    I: ViewKey,
    R: IntoIterator<Item = I>,
{
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
        let mut keys = Vec::new();
        for key in (self.extract)(value) {
            // Most index keys fit; one allocation instead of a few as the key grows.
            let mut out = Vec::with_capacity(32);
            encode_key(&key, &mut out).map_err(|e| e.0)?;
            keys.push(out);
        }
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }
    fn render_key(&self, bytes: &[u8]) -> String {
        render_key::<I>(bytes)
    }
}
