//! A bulk load as the writer runs it, with the view's value type erased: the records to
//! write to the view's table, encoded as they are written, and the same records
//! decoded, for the view's loader.

use crate::base::error::Result;
use std::any::Any;

/// The records of one [`Store::bulk_load`](crate::Store::bulk_load), made ready on the
/// caller's thread.
///
/// Invariants, established by the caller and relied on by the writer: `rows` lists the
/// records sorted by key with no key twice, and `records` (a `Vec<Slot<V>>` of the
/// view's value type) holds the same keys in the same order, each with the version and
/// value its row encodes.
pub(crate) struct BulkLoad {
    /// The view's id in the writer's tables.
    pub(crate) view: usize,
    /// Each record's encoded key, and its stored bytes made as they are written.
    pub(crate) rows: Box<dyn BulkRows>,
    /// The decoded records, for the resident layer and the index builds.
    pub(crate) records: Box<dyn Any + Send>,
}

/// A load's records as the view's table stores them, with the value type erased. The
/// stored bytes are made one record at a time, in one reused buffer, as the writer
/// writes them: a load never holds every record encoded at once, only decoded.
pub(crate) trait BulkRows: Send + Sync {
    /// The number of records.
    fn len(&self) -> usize;

    /// Makes each record's stored bytes (`storage::format::Record`: its header, then its
    /// value by the view's codec) and hands its encoded key and those bytes to `write`,
    /// in key order. `Err`: the first record that cannot be encoded (a codec error or
    /// panic, a value over the size limit, named by its key), or the first error of
    /// `write`; nothing after it is written.
    fn write(&self, write: &mut RowSink<'_>) -> Result<()>;
}

/// Where [`BulkRows::write`] hands each record: its encoded key and stored bytes.
pub(crate) type RowSink<'a> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'a;
