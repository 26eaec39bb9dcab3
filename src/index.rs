//! Secondary index definitions: a name, unique or multi-valued, and an extractor.

use crate::codec::{encode_key, render_key};
use crate::view::ViewKey;
use std::any::Any;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Whether an index key may belong to one record or to many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexKind {
    /// At most one record per index key: a write that would give an index key a second
    /// record fails its batch with [`Error::UniqueViolation`](crate::Error::UniqueViolation).
    Unique,
    /// Any number of records per index key.
    Multi,
}

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
    version: u32,
    extract: fn(&V) -> R,
    _key: PhantomData<fn() -> I>,
}

impl<V, I, R> IndexDef<V, I, R> {
    /// A unique index named `name`.
    pub const fn unique(name: &'static str, extract: fn(&V) -> R) -> Self {
        IndexDef { name, kind: IndexKind::Unique, version: 1, extract, _key: PhantomData }
    }

    /// A multi-valued index named `name`.
    pub const fn multi(name: &'static str, extract: fn(&V) -> R) -> Self {
        IndexDef { name, kind: IndexKind::Multi, version: 1, extract, _key: PhantomData }
    }

    /// The same index with definition version `version`. Default = 1.
    #[must_use]
    pub const fn definition_version(mut self, version: u32) -> Self {
        self.version = version;
        self
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

mod sealed {
    pub trait Sealed {}
}

impl<V, I, R> sealed::Sealed for IndexDef<V, I, R> {}

/// An [`IndexDef`] with its key type erased, so that a view can list indexes of
/// different key types. Implemented only by `IndexDef`.
pub trait AnyIndex<V>: sealed::Sealed + Send + Sync {
    /// The index's name.
    fn index_name(&self) -> &'static str;
    /// Unique or multi.
    fn index_kind(&self) -> IndexKind;
    /// The definition version.
    fn index_version(&self) -> u32;
    /// The index key's type name.
    fn index_key_type(&self) -> &'static str;
    /// The encoded index keys of `value`, sorted, without duplicates.
    #[doc(hidden)]
    fn encoded_keys(&self, value: &V) -> Result<Vec<Vec<u8>>, String>;
    /// An encoded index key in its `Debug` form.
    #[doc(hidden)]
    fn render_key(&self, bytes: &[u8]) -> String;
}

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
    fn index_version(&self) -> u32 {
        self.version
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

/// Why index keys could not be extracted from a value.
pub(crate) enum ExtractError {
    Panicked(String),
    TooLarge(usize),
    Encoding(String),
}

/// Runs an index's extractor on a type-erased value, catching panics and enforcing the
/// key size limit.
pub(crate) fn extract<V: 'static>(
    index: &dyn AnyIndex<V>,
    value: &(dyn Any + Send + Sync),
) -> Result<Vec<Vec<u8>>, ExtractError> {
    let Some(value) = value.downcast_ref::<V>() else { return Ok(Vec::new()) };
    let keys = catch_unwind(AssertUnwindSafe(|| index.encoded_keys(value)))
        .map_err(|payload| ExtractError::Panicked(crate::batch::panic_message(payload.as_ref())))?
        .map_err(ExtractError::Encoding)?;
    if let Some(long) = keys.iter().find(|k| k.len() > crate::MAX_KEY_BYTES) {
        return Err(ExtractError::TooLarge(long.len()));
    }
    Ok(keys)
}

/// Checks an index name: 1 to 200 bytes, no control characters, no `/`.
pub(crate) fn valid_index_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 200 && !name.chars().any(|c| c.is_control() || c == '/')
}
