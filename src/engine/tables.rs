//! Writing a group's records and multi-index entries to their redb tables at the end of
//! the group, each table in key order; a large group's tables on two threads at once
//! (`base::beside`), each table on one of them. And opening a group's tables.

use crate::base::beside::beside;
use crate::base::error::Error;
use crate::base::version::Version;
use crate::keys::{KeyBuf, WideKey};
use crate::storage::format::Record;
use crate::storage::sources::SourceVersions;
use redb::{Table, WriteTransaction};
use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::path::Path;

pub(super) enum Pending {
    Live {
        version: Version,
        bytes: Vec<u8>,
    },
    Tombstone {
        version: Version,
    },
    /// A record of a view with sources: live with its value bytes, or a tombstone.
    Sourced {
        sources: Box<SourceVersions>,
        bytes: Option<Vec<u8>>,
    },
    /// Remove the key (a purged tombstone, of this version).
    Remove {
        version: Version,
    },
}

/// A failure of one batch, or of the whole group (storage).
pub(super) enum Fail {
    Batch(Error),
    Group(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Batch(e)
    }
}

pub(super) type RecordTable<'t> = Table<'t, &'static [u8], &'static [u8]>;

pub(super) type IndexTable<'t> = Table<'t, &'static [u8], u32>;

/// A multi-index entry to write at the end of the group: on-disk key, and the index
/// key's length to insert it or `None` to remove it.
pub(super) type DeferredEntry = (WideKey, Option<u32>);

/// The multi-index entries a group wrote to one index: (view, index) and its entries.
pub(super) type IndexWritten = ((usize, usize), Vec<DeferredEntry>);

/// The multi-index entries a group wrote, per index.
pub(super) type Written = Vec<IndexWritten>;

/// Writes `jobs` one after the other, and returns their index entries.
pub(super) fn write_all(jobs: Vec<TableWrites<'_>>, file: &Path) -> Result<Written, Fail> {
    let mut written = Vec::new();
    for job in jobs {
        written.extend(job.write(file)?);
    }
    Ok(written)
}

/// Writes `jobs` on the calling thread and a helper, each table on one of them, shared
/// out by their number of writes; returns their index entries.
pub(super) fn write_beside(mut jobs: Vec<TableWrites<'_>>, file: &Path) -> Result<Written, Fail> {
    jobs.sort_by_key(|job| std::cmp::Reverse(job.len()));
    let (mut here, mut side) = (Vec::new(), Vec::new());
    let (mut here_len, mut side_len) = (0, 0);
    for job in jobs {
        if side_len <= here_len {
            side_len += job.len();
            side.push(job);
        } else {
            here_len += job.len();
            here.push(job);
        }
    }
    let (side, here) =
        beside("viewstore-tables", || write_all(side, file), || write_all(here, file));
    let mut written = side?;
    written.extend(here?);
    Ok(written)
}

/// The writes a group leaves for the end to one table, in key order, one per key.
pub(super) enum TableWrites<'t> {
    Records(RecordTable<'t>, Vec<(KeyBuf, Pending)>),
    Index((usize, usize), IndexTable<'t>, Vec<DeferredEntry>),
}

impl TableWrites<'_> {
    pub(super) fn len(&self) -> usize {
        match self {
            TableWrites::Records(_, entries) => entries.len(),
            TableWrites::Index(_, _, entries) => entries.len(),
        }
    }

    /// Writes the entries; returns an index's, with its (view, index).
    fn write(self, file: &Path) -> Result<Option<IndexWritten>, Fail> {
        match self {
            TableWrites::Records(mut table, entries) => {
                put_records(&mut table, entries, file)?;
                Ok(None)
            }
            TableWrites::Index(id, mut table, entries) => {
                put_index_entries(&mut table, &entries, file)?;
                Ok(Some((id, entries)))
            }
        }
    }
}

/// The bytes a pending write leaves in its table: the encoded record, or `None` when it
/// removes the key.
pub(super) fn record_bytes(pending: &Pending) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    encode_record(pending, &mut out).then_some(out)
}

/// Encodes the record a pending write leaves into `out` (replacing what it held);
/// false when the write removes the key.
fn encode_record(pending: &Pending, out: &mut Vec<u8>) -> bool {
    match pending {
        Pending::Live { version, bytes } => {
            Record::Live { version: *version, value: bytes }.encode_into(out);
        }
        Pending::Tombstone { version } => Record::Tombstone { version: *version }.encode_into(out),
        Pending::Sourced { sources, bytes } => {
            let sources = (**sources).clone();
            match bytes {
                Some(value) => Record::SourcedLive { sources, value }.encode_into(out),
                None => Record::SourcedTombstone { sources }.encode_into(out),
            }
        }
        Pending::Remove { .. } => return false,
    }
    true
}

/// Writes records (`Pending::Remove` removes the key), encoding each into one buffer.
pub(super) fn put_records(
    table: &mut RecordTable<'_>,
    entries: Vec<(KeyBuf, Pending)>,
    file: &Path,
) -> Result<(), Fail> {
    let write_error = |e| Fail::Group(Error::storage(file, "writing a record", e));
    let mut record = Vec::new();
    for (key, pending) in entries {
        let key = key.as_bytes();
        if encode_record(&pending, &mut record) {
            table.insert(key, record.as_slice()).map(drop)
        } else {
            table.remove(key).map(drop)
        }
        .map_err(write_error)?;
    }
    Ok(())
}

/// Writes index entries: `Some(index key length)` inserts, `None` removes.
pub(super) fn put_index_entries(
    table: &mut IndexTable<'_>,
    entries: &[DeferredEntry],
    file: &Path,
) -> Result<(), Fail> {
    let write_error = |e| Fail::Group(Error::storage(file, "writing an index", e));
    for (key, entry) in entries {
        match *entry {
            Some(ikey_len) => table.insert(key.as_bytes(), ikey_len).map_err(write_error)?,
            None => table.remove(key.as_bytes()).map_err(write_error)?,
        };
    }
    Ok(())
}

/// The table `id` of this transaction, opened on first use and kept for the group.
/// `definition` is `None` for an id this store never registered.
pub(super) fn open_once<'c, 't, I, K, V>(
    txn: &'t WriteTransaction,
    file: &Path,
    tables: &'c mut HashMap<I, Table<'t, K, V>>,
    id: I,
    definition: Option<redb::TableDefinition<'_, K, V>>,
) -> Result<&'c mut Table<'t, K, V>, Fail>
where
    I: std::hash::Hash + Eq + std::fmt::Debug,
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    match tables.entry(id) {
        MapEntry::Occupied(t) => Ok(t.into_mut()),
        MapEntry::Vacant(slot) => {
            let table = open_table(txn, file, slot.key(), definition)?;
            Ok(slot.insert(table))
        }
    }
}

/// Opens table `id` of this transaction; `definition` is `None` for an id this store
/// never registered.
fn open_table<'t, I, K, V>(
    txn: &'t WriteTransaction,
    file: &Path,
    id: &I,
    definition: Option<redb::TableDefinition<'_, K, V>>,
) -> Result<Table<'t, K, V>, Fail>
where
    I: std::fmt::Debug,
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    let Some(definition) = definition else {
        let view = format!("{id:?} (not registered)");
        return Err(Fail::Batch(Error::ForeignView { view }));
    };
    txn.open_table(definition).map_err(|e| Fail::Group(Error::storage(file, "opening a table", e)))
}

/// The table `id` of this transaction, taken out of `tables` if the group opened it
/// already, else opened now.
pub(super) fn open_owned<'t, I, K, V>(
    txn: &'t WriteTransaction,
    file: &Path,
    tables: &mut HashMap<I, Table<'t, K, V>>,
    id: &I,
    definition: Option<redb::TableDefinition<'_, K, V>>,
) -> Result<Table<'t, K, V>, Fail>
where
    I: std::hash::Hash + Eq + std::fmt::Debug,
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    match tables.remove(id) {
        Some(table) => Ok(table),
        None => open_table(txn, file, id, definition),
    }
}
