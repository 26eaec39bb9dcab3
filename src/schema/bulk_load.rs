//! A bulk load as the writer runs it, with the view's value type erased: the stored
//! records in key order, and the same records decoded, for the view's loader.

use crate::keys::KeyBuf;
use std::any::Any;

/// The records of one [`Store::bulk_load`](crate::Store::bulk_load), made ready on the
/// caller's thread.
///
/// Invariants, established by the caller and relied on by the writer: `rows` is sorted
/// by key with no key twice, and `records` (a `Vec<Slot<V>>` of the view's value type)
/// holds the same keys in the same order, each with the version and value its row
/// encodes.
pub(crate) struct BulkLoad {
    /// The view's id in the writer's tables.
    pub(crate) view: usize,
    /// Each record's encoded key and its stored bytes (`storage::format::Record`).
    pub(crate) rows: Vec<(KeyBuf, Vec<u8>)>,
    /// The decoded records, for the resident layer and the index builds.
    pub(crate) records: Box<dyn Any + Send>,
}
