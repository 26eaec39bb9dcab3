//! Indexes with their key type erased: what the writer and the loaders call.

use crate::base::error::Error;
use crate::base::index_kind::IndexKind;
use crate::base::limits::MAX_KEY_BYTES;
use crate::base::panic::panic_message;
use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Seals [`AnyIndex`]: only the crate's `IndexDef` implements it.
pub(crate) mod sealed {
    pub trait Sealed {}
}

/// An [`IndexDef`](crate::IndexDef) with its key type erased, so that a view can list indexes of
/// different key types. Implemented only by `IndexDef`.
pub trait AnyIndex<V>: sealed::Sealed + Send + Sync {
    /// The index's name.
    fn index_name(&self) -> &'static str;
    /// Unique or multi.
    fn index_kind(&self) -> IndexKind;
    /// The definition version.
    fn index_definition_version(&self) -> u32;
    /// The index key's type name.
    fn index_key_type(&self) -> &'static str;
    /// The encoded index keys of `value`, sorted, without duplicates.
    #[doc(hidden)]
    fn encoded_keys(&self, value: &V) -> Result<Vec<Vec<u8>>, String>;
    /// Appends the encoded index keys of `value` to `out`, sorted, without duplicates,
    /// and where each one ends to `ends`: [`AnyIndex::encoded_keys`] without an
    /// allocation per key.
    #[doc(hidden)]
    fn encode_keys_into(
        &self,
        value: &V,
        out: &mut Vec<u8>,
        ends: &mut Vec<usize>,
    ) -> Result<(), String>;
    /// An encoded index key in its `Debug` form.
    #[doc(hidden)]
    fn render_key(&self, bytes: &[u8]) -> String;
    /// What in the index key's type the key encoding cannot encode, if anything.
    #[doc(hidden)]
    fn unencodable_key_part(&self) -> Result<(), &'static str>;
}

/// Why index keys could not be extracted from a value.
pub(crate) enum ExtractError {
    Panicked(String),
    TooLarge(usize),
    Encoding(String),
}

impl ExtractError {
    /// The error for the record with key `key` (rendered) of index `index` of `view`.
    pub(crate) fn into_error(self, view: &str, index: &str, key: String) -> Error {
        let (view, index) = (view.to_owned(), index.to_owned());
        match self {
            ExtractError::Panicked(message) => Error::IndexPanicked { view, index, key, message },
            ExtractError::TooLarge(len) => {
                Error::IndexKeyTooLarge { view, index, key, len, max: MAX_KEY_BYTES }
            }
            ExtractError::Encoding(reason) => {
                Error::InvalidIndex { view, index, reason, key: Some(key) }
            }
        }
    }
}

/// Runs an index's extractor on a type-erased value, catching panics and enforcing the
/// key size limit.
pub(crate) fn extract<V: 'static>(
    index: &dyn AnyIndex<V>,
    value: &(dyn Any + Send + Sync),
) -> Result<Vec<Vec<u8>>, ExtractError> {
    // The writer hands a view's extractors only values of the view's type.
    let Some(value) = value.downcast_ref::<V>() else {
        debug_assert!(false, "an index extractor was handed a value of another type");
        return Err(ExtractError::Encoding("the value is not of the view's type".into()));
    };
    let keys = catch_unwind(AssertUnwindSafe(|| index.encoded_keys(value)))
        .map_err(|payload| ExtractError::Panicked(panic_message(payload.as_ref())))?
        .map_err(ExtractError::Encoding)?;
    if let Some(long) = keys.iter().find(|k| k.len() > MAX_KEY_BYTES) {
        return Err(ExtractError::TooLarge(long.len()));
    }
    Ok(keys)
}

/// An index's encoded keys of one value, in reused buffers: see [`extract_into`].
#[derive(Default)]
pub(crate) struct KeysBuf {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl KeysBuf {
    /// The keys, in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).filter_map(|(start, &end)| self.bytes.get(start..end))
    }
}

/// [`extract`] into `buf` (emptied first), so that extracting the keys of many values
/// allocates no buffer per value.
pub(crate) fn extract_into<V: 'static>(
    index: &dyn AnyIndex<V>,
    value: &(dyn Any + Send + Sync),
    buf: &mut KeysBuf,
) -> Result<(), ExtractError> {
    buf.bytes.clear();
    buf.ends.clear();
    let Some(value) = value.downcast_ref::<V>() else {
        debug_assert!(false, "an index extractor was handed a value of another type");
        return Err(ExtractError::Encoding("the value is not of the view's type".into()));
    };
    append_keys(index, value, &mut buf.bytes, &mut buf.ends)
}

/// Appends the encoded index keys of `value` to `bytes` and where each one ends to
/// `ends`, catching a panic of the extractor and enforcing the key size limit. On an
/// error, what was appended is left for the caller to drop.
pub(crate) fn append_keys<V>(
    index: &dyn AnyIndex<V>,
    value: &V,
    bytes: &mut Vec<u8>,
    ends: &mut Vec<usize>,
) -> Result<(), ExtractError> {
    let (mut start, first) = (bytes.len(), ends.len());
    catch_unwind(AssertUnwindSafe(|| index.encode_keys_into(value, bytes, ends)))
        .map_err(|payload| ExtractError::Panicked(panic_message(payload.as_ref())))?
        .map_err(ExtractError::Encoding)?;
    for &end in ends.get(first..).unwrap_or_default() {
        let len = end.saturating_sub(start);
        if len > MAX_KEY_BYTES {
            return Err(ExtractError::TooLarge(len));
        }
        start = end;
    }
    Ok(())
}
