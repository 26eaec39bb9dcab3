//! Indexes with their key type erased: what the writer and the loaders call.

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
    /// An encoded index key in its `Debug` form.
    #[doc(hidden)]
    fn render_key(&self, bytes: &[u8]) -> String;
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
        .map_err(|payload| ExtractError::Panicked(panic_message(payload.as_ref())))?
        .map_err(ExtractError::Encoding)?;
    if let Some(long) = keys.iter().find(|k| k.len() > MAX_KEY_BYTES) {
        return Err(ExtractError::TooLarge(long.len()));
    }
    Ok(keys)
}
