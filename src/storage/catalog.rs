//! The file's catalog read back: every view the meta tables record (`viewstore.views`,
//! `viewstore.indexes`, `viewstore.sources`), and how many records and tombstones a
//! view's table holds.

use crate::base::error::{Error, Result};
use crate::storage::format::{
    INDEXES, IndexMeta, Record, SOURCES, VIEWS, ViewMeta, decode_sources, view_table,
    view_table_name,
};
use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, TableError};
use std::collections::BTreeMap;
use std::path::Path;

/// A view as the file's catalog records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredView {
    pub(crate) name: String,
    pub(crate) meta: ViewMeta,
    /// Its indexes by name.
    pub(crate) indexes: Vec<(String, IndexMeta)>,
    /// Its source names in id order; empty for a view without sources.
    pub(crate) sources: Vec<String>,
}

/// Opens a catalog table for reading; `None` when the file never created it.
fn open(
    txn: &ReadTransaction,
    def: redb::TableDefinition<'_, &'static str, &'static [u8]>,
    file: &Path,
) -> Result<Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>> {
    match txn.open_table(def) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(Error::storage(file, "opening the catalog", e)),
    }
}

/// Every view the catalog records, in name order.
pub(crate) fn read_catalog(txn: &ReadTransaction, file: &Path) -> Result<Vec<StoredView>> {
    let Some(views) = open(txn, VIEWS, file)? else { return Ok(Vec::new()) };
    let mut out: BTreeMap<String, StoredView> = BTreeMap::new();
    for item in views.iter().map_err(Error::at(file, "reading the catalog"))? {
        let (name, bytes) = item.map_err(Error::at(file, "reading the catalog"))?;
        let name = name.value().to_owned();
        let meta = ViewMeta::from_bytes(bytes.value())
            .ok_or_else(|| Error::decode(&name, "(view meta)".into(), "unreadable view meta"))?;
        out.insert(name.clone(), StoredView { name, meta, indexes: Vec::new(), sources: vec![] });
    }
    if let Some(indexes) = open(txn, INDEXES, file)? {
        for item in indexes.iter().map_err(Error::at(file, "reading the catalog"))? {
            let (key, bytes) = item.map_err(Error::at(file, "reading the catalog"))?;
            // `view/index`: index names have no '/', view names may.
            let Some((view, index)) = key.value().rsplit_once('/') else { continue };
            let meta = IndexMeta::from_bytes(bytes.value())
                .ok_or_else(|| Error::decode(view, format!("(index {index})"), "unreadable"))?;
            if let Some(stored) = out.get_mut(view) {
                stored.indexes.push((index.to_owned(), meta));
            }
        }
    }
    if let Some(sources) = open(txn, SOURCES, file)? {
        for item in sources.iter().map_err(Error::at(file, "reading the catalog"))? {
            let (view, bytes) = item.map_err(Error::at(file, "reading the catalog"))?;
            let view = view.value();
            let names = decode_sources(bytes.value())
                .ok_or_else(|| Error::decode(view, "(source list)".into(), "unreadable"))?;
            if let Some(stored) = out.get_mut(view) {
                stored.sources = names;
            }
        }
    }
    Ok(out.into_values().collect())
}

/// The number of rows of `view`'s record table, tombstones included: one lookup, no
/// pass over the records. 0 when the table is absent.
pub(crate) fn stored_rows(txn: &ReadTransaction, view: &str, file: &Path) -> Result<u64> {
    let name = view_table_name(view);
    match txn.open_table(view_table(&name)) {
        Ok(table) => table.len().map_err(Error::at(file, "counting records")),
        Err(TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(Error::storage(file, "opening a view", e)),
    }
}

/// The live records and tombstones of `view`'s table, counted in one pass over it.
pub(crate) fn count_records(txn: &ReadTransaction, view: &str, file: &Path) -> Result<(u64, u64)> {
    let name = view_table_name(view);
    let table = match txn.open_table(view_table(&name)) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok((0, 0)),
        Err(e) => return Err(Error::storage(file, "opening a view", e)),
    };
    let (mut live, mut tombstones) = (0, 0);
    for item in table.iter().map_err(Error::at(file, "counting records"))? {
        let (key, bytes) = item.map_err(Error::at(file, "counting records"))?;
        match Record::decode(bytes.value()) {
            Ok(record) if record.live().is_some() => live += 1,
            Ok(_) => tombstones += 1,
            Err(reason) => {
                return Err(Error::decode(view, crate::keys::render_bytes(key.value()), reason));
            }
        }
    }
    Ok((live, tombstones))
}
