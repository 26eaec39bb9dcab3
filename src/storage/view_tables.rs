//! A view's tables and catalog rows changed as a whole, inside one write transaction:
//! dropped, emptied or renamed. The caller commits; until then nothing is visible, and a
//! crash leaves the file as it was.

use crate::base::error::{Error, Result};
use crate::base::version::Version;
use crate::storage::format::{
    INDEXES, Record, SOURCES, VIEWS, has_table, index_meta_key, index_table, index_table_name,
    view_table, view_table_name,
};
use crate::storage::migrations::MIGRATIONS;
use crate::storage::shapes::SHAPES;
use redb::{ReadableTable, TableHandle, WriteTransaction};
use std::path::Path;

/// Whether the catalog records `view`.
pub(crate) fn view_exists(txn: &WriteTransaction, view: &str, file: &Path) -> Result<bool> {
    let views = txn.open_table(VIEWS).map_err(Error::at(file, "opening the view list"))?;
    let found = views.get(view).map_err(Error::at(file, "reading the view list"))?;
    Ok(found.is_some())
}

/// The names of `view`'s indexes, as the catalog records them.
pub(crate) fn index_names(txn: &WriteTransaction, view: &str, file: &Path) -> Result<Vec<String>> {
    let metas = txn.open_table(INDEXES).map_err(Error::at(file, "opening the index list"))?;
    let prefix = index_meta_key(view, "");
    let mut names = Vec::new();
    for item in metas.range(prefix.as_str()..).map_err(Error::at(file, "reading the index list"))? {
        let (key, _) = item.map_err(Error::at(file, "reading the index list"))?;
        let Some(index) = key.value().strip_prefix(prefix.as_str()) else { break };
        // A rest with a '/' is an index of another view whose name starts with this
        // one's ("shop/users" below "shop"): index names have no '/'.
        if !index.contains('/') {
            names.push(index.to_owned());
        }
    }
    Ok(names)
}

/// The catalog tables with one row per view besides [`VIEWS`], those the file has.
fn per_view_tables(
    txn: &WriteTransaction,
    file: &Path,
) -> Result<Vec<redb::TableDefinition<'static, &'static str, &'static [u8]>>> {
    let mut out = Vec::new();
    for def in [SOURCES, SHAPES, MIGRATIONS] {
        if has_table(txn, def.name(), file)? {
            out.push(def);
        }
    }
    Ok(out)
}

/// Removes `view`'s record table, its index tables and every catalog row of it.
pub(crate) fn drop_view_tables(txn: &WriteTransaction, view: &str, file: &Path) -> Result<()> {
    let table = view_table_name(view);
    txn.delete_table(view_table(&table)).map_err(Error::at(file, "dropping a view"))?;
    drop_index_tables(txn, view, file)?;
    let mut views = txn.open_table(VIEWS).map_err(Error::at(file, "opening the view list"))?;
    views.remove(view).map_err(Error::at(file, "dropping a view"))?;
    for def in per_view_tables(txn, file)? {
        let mut rows = txn.open_table(def).map_err(Error::at(file, "opening the catalog"))?;
        rows.remove(view).map_err(Error::at(file, "dropping a view"))?;
    }
    Ok(())
}

/// Empties `view`'s record table and index tables; its catalog rows stay.
pub(crate) fn clear_view_tables(txn: &WriteTransaction, view: &str, file: &Path) -> Result<()> {
    let table = view_table_name(view);
    txn.delete_table(view_table(&table)).map_err(Error::at(file, "clearing a view"))?;
    txn.open_table(view_table(&table)).map_err(Error::at(file, "clearing a view"))?;
    for index in index_names(txn, view, file)? {
        let table = index_table_name(view, &index);
        txn.delete_table(index_table(&table)).map_err(Error::at(file, "clearing an index"))?;
        txn.open_table(index_table(&table)).map_err(Error::at(file, "clearing an index"))?;
    }
    Ok(())
}

/// Moves `old`'s record table, index tables and catalog rows to `new`, which the
/// caller has checked is free.
pub(crate) fn rename_view_tables(
    txn: &WriteTransaction,
    old: &str,
    new: &str,
    file: &Path,
) -> Result<()> {
    let indexes = index_names(txn, old, file)?;
    let (from, to) = (view_table_name(old), view_table_name(new));
    txn.rename_table(view_table(&from), view_table(&to))
        .map_err(Error::at(file, "renaming a view"))?;
    let mut metas = txn.open_table(INDEXES).map_err(Error::at(file, "opening the index list"))?;
    for index in &indexes {
        let (from, to) = (index_table_name(old, index), index_table_name(new, index));
        txn.rename_table(index_table(&from), index_table(&to))
            .map_err(Error::at(file, "renaming an index"))?;
        move_row(&mut metas, &index_meta_key(old, index), &index_meta_key(new, index), file)?;
    }
    let mut views = txn.open_table(VIEWS).map_err(Error::at(file, "opening the view list"))?;
    move_row(&mut views, old, new, file)?;
    for def in per_view_tables(txn, file)? {
        let mut rows = txn.open_table(def).map_err(Error::at(file, "opening the catalog"))?;
        move_row(&mut rows, old, new, file)?;
    }
    Ok(())
}

/// Exchanges `a`'s and `b`'s record tables, index tables and catalog rows, through a
/// temporary name no view can have (it holds a control character). Both must exist.
pub(crate) fn swap_view_tables(
    txn: &WriteTransaction,
    a: &str,
    b: &str,
    file: &Path,
) -> Result<()> {
    const PARKED: &str = "\u{1}swap";
    rename_view_tables(txn, a, PARKED, file)?;
    rename_view_tables(txn, b, a, file)?;
    rename_view_tables(txn, PARKED, b, file)
}

/// Removes `view`'s index tables and index rows (a migration's last step: the indexes
/// are rebuilt from the converted records when the view is next opened).
pub(crate) fn drop_index_tables(txn: &WriteTransaction, view: &str, file: &Path) -> Result<()> {
    let indexes = index_names(txn, view, file)?;
    let mut metas = txn.open_table(INDEXES).map_err(Error::at(file, "opening the index list"))?;
    for index in &indexes {
        let table = index_table_name(view, index);
        txn.delete_table(index_table(&table)).map_err(Error::at(file, "dropping an index"))?;
        metas
            .remove(index_meta_key(view, index).as_str())
            .map_err(Error::at(file, "dropping an index"))?;
    }
    Ok(())
}

/// Moves the row at `from` to `to`, if there is one.
fn move_row(
    table: &mut redb::Table<'_, &'static str, &'static [u8]>,
    from: &str,
    to: &str,
    file: &Path,
) -> Result<()> {
    let bytes = table.remove(from).map_err(Error::at(file, "moving a catalog row"))?;
    if let Some(bytes) = bytes.map(|b| b.value().to_vec()) {
        table.insert(to, bytes.as_slice()).map_err(Error::at(file, "moving a catalog row"))?;
    }
    Ok(())
}

/// Every key of `view`'s table with its record's version, tombstones included.
pub(crate) fn stored_versions(
    txn: &WriteTransaction,
    view: &str,
    file: &Path,
) -> Result<Vec<(Vec<u8>, Version)>> {
    let name = view_table_name(view);
    let table = txn.open_table(view_table(&name)).map_err(Error::at(file, "opening a view"))?;
    let mut out = Vec::new();
    for item in table.iter().map_err(Error::at(file, "reading a view"))? {
        let (key, bytes) = item.map_err(Error::at(file, "reading a view"))?;
        let version = Record::decode(bytes.value()).map_or(0, |r| r.version());
        out.push((key.value().to_vec(), version));
    }
    Ok(out)
}
