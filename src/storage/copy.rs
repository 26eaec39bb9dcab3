//! Copying a whole store, table by table, from one read transaction (a consistent
//! snapshot) into a write transaction of another database: what a backup is.
//!
//! The tables are listed, not named: every table the file holds is copied, and a table
//! whose kind this build does not know refuses the copy ([`Error::UnknownTable`]) rather
//! than leaving it out.

use crate::base::error::{Error, Result};
use crate::storage::feed::FEED;
use crate::storage::format::{
    INDEXES, META, META_JOURNAL_SALT, POSITIONS, SOURCES, VIEWS, index_table, view_table,
};
use crate::storage::journal::log::fresh_salt;
use crate::storage::journal::replay::store_salt;
use crate::storage::migrations::MIGRATIONS;
use crate::storage::shapes::SHAPES;
use redb::{Key, ReadTransaction, ReadableTable, TableDefinition, TableHandle, Value};
use redb::{MultimapTableHandle, ReadableTableMetadata, WriteTransaction};
use std::path::Path;

/// What a copy did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Copied {
    pub(crate) tables: usize,
    /// Rows of view record tables.
    pub(crate) records: u64,
    /// Rows over every table.
    pub(crate) rows: u64,
}

/// The kind of a table, from its name.
enum Kind {
    /// A catalog or meta table: `&str` to bytes.
    Named(TableDefinition<'static, &'static str, &'static [u8]>),
    Positions,
    Feed,
    Records,
    Index,
}

fn kind_of(name: &str) -> Option<Kind> {
    let named = [META, VIEWS, INDEXES, SOURCES, SHAPES, MIGRATIONS];
    if let Some(def) = named.into_iter().find(|d| d.name() == name) {
        return Some(Kind::Named(def));
    }
    if name == POSITIONS.name() {
        return Some(Kind::Positions);
    }
    if name == FEED.name() {
        return Some(Kind::Feed);
    }
    if name.starts_with("view.") {
        return Some(Kind::Records);
    }
    name.starts_with("index.").then_some(Kind::Index)
}

/// Copies every table of `from` into `into`, which should be a new, empty database's
/// first transaction. `file` names the source in errors, `target` the copy.
pub(crate) fn copy_tables(
    from: &ReadTransaction,
    into: &WriteTransaction,
    file: &Path,
    target: &Path,
) -> Result<Copied> {
    if let Some(table) =
        from.list_multimap_tables().map_err(Error::at(file, "listing tables"))?.next()
    {
        return Err(Error::UnknownTable { file: file.to_owned(), table: table.name().into() });
    }
    let names: Vec<String> = from
        .list_tables()
        .map_err(Error::at(file, "listing tables"))?
        .map(|t| t.name().to_owned())
        .collect();
    let mut copied = Copied::default();
    for name in &names {
        let Some(kind) = kind_of(name) else {
            return Err(Error::UnknownTable { file: file.to_owned(), table: name.clone() });
        };
        let rows = match kind {
            Kind::Named(def) => copy_one(from, into, def, [file, target])?,
            Kind::Positions => copy_one(from, into, POSITIONS, [file, target])?,
            Kind::Feed => copy_one(from, into, FEED, [file, target])?,
            Kind::Records => {
                let rows = copy_one(from, into, view_table(name), [file, target])?;
                copied.records += rows;
                rows
            }
            Kind::Index => copy_one(from, into, index_table(name), [file, target])?,
        };
        copied.rows += rows;
        copied.tables += 1;
    }
    renew_journal_salt(into, target)?;
    Ok(copied)
}

/// Gives the copy a journal salt of its own when it has one: a copy restored beside the
/// journal of the store it came from must not take that journal's later groups for its
/// own.
fn renew_journal_salt(into: &WriteTransaction, target: &Path) -> Result<()> {
    let meta = into.open_table(META).map_err(Error::at(target, "reading the journal's salt"))?;
    let salted = meta
        .get(META_JOURNAL_SALT)
        .map_err(Error::at(target, "reading the journal's salt"))?
        .is_some();
    drop(meta);
    if salted {
        store_salt(into, fresh_salt(), target)?;
    }
    Ok(())
}

/// Copies one table, in key order (the cheapest order for redb's B-tree); returns its
/// number of rows.
fn copy_one<K: Key + 'static, V: Value + 'static>(
    from: &ReadTransaction,
    into: &WriteTransaction,
    def: TableDefinition<'_, K, V>,
    [file, backup]: [&Path; 2],
) -> Result<u64> {
    let source = from.open_table(def).map_err(Error::at(file, "opening a table to copy"))?;
    let mut target =
        into.open_table(def).map_err(Error::at(backup, "creating a table in the backup"))?;
    for item in source.iter().map_err(Error::at(file, "reading a table to copy"))? {
        let (key, value) = item.map_err(Error::at(file, "reading a table to copy"))?;
        target
            .insert(key.value(), value.value())
            .map_err(Error::at(backup, "writing the backup"))?;
    }
    source.len().map_err(Error::at(file, "counting a table"))
}
