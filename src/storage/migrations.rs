//! The `viewstore.migrations` table: one row per view whose stored values are being
//! converted to a new schema version, with how far the conversion has come. The row
//! exists from the first transaction of a migration to its last, and is written in the
//! same transactions as the converted records, so it always says exactly which records
//! are converted: those up to and including `last_key`, in key order.
//!
//! A row is `[1][bincode (standard configuration) of MigrationRow]`; the leading byte
//! is the row's layout version. The table exists only in files that have had a
//! migration: readers check for it before opening it.

use crate::base::error::{Error, Result};
use crate::storage::format::{decode_row, encode_row, has_table};
use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One row per view being migrated: its name and its [`MigrationRow`].
pub(crate) const MIGRATIONS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("viewstore.migrations");

/// The layout version of a row of [`MIGRATIONS`].
const LAYOUT: u8 = 1;

/// How far a view's migration has come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MigrationRow {
    /// The schema version the unconverted records are stored at.
    pub(crate) from: u32,
    /// The schema version the view is migrated to (the one its meta records).
    pub(crate) to: u32,
    /// The encoded key of the last converted record; `None` before the first.
    pub(crate) last_key: Option<Vec<u8>>,
    /// Rows of the view's table passed so far, tombstones included.
    pub(crate) done: u64,
}

impl MigrationRow {
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        encode_row(LAYOUT, self)
    }

    /// The row's contents; `None` for bytes this build cannot read.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        decode_row::<Self, { 1 << 20 }>(LAYOUT, bytes)
    }
}

/// `view`'s migration row, if it is being migrated.
pub(crate) fn read_row(
    txn: &WriteTransaction,
    view: &str,
    file: &Path,
) -> Result<Option<MigrationRow>> {
    if !has_table(txn, MIGRATIONS.name(), file)? {
        return Ok(None);
    }
    let table = txn.open_table(MIGRATIONS).map_err(Error::at(file, "opening the migrations"))?;
    let bytes = table.get(view).map_err(Error::at(file, "reading the migrations"))?;
    match bytes {
        None => Ok(None),
        Some(bytes) => match MigrationRow::from_bytes(bytes.value()) {
            Some(row) => Ok(Some(row)),
            None => Err(Error::decode(view, "(migration row)".into(), "unreadable migration row")),
        },
    }
}

/// Writes `view`'s migration row.
pub(crate) fn write_row(
    txn: &WriteTransaction,
    view: &str,
    row: &MigrationRow,
    file: &Path,
) -> Result<()> {
    let mut table =
        txn.open_table(MIGRATIONS).map_err(Error::at(file, "opening the migrations"))?;
    table
        .insert(view, row.to_bytes().as_slice())
        .map_err(Error::at(file, "recording the migration's progress"))?;
    Ok(())
}

/// Removes `view`'s migration row, if the file has one.
pub(crate) fn remove_row(txn: &WriteTransaction, view: &str, file: &Path) -> Result<()> {
    if has_table(txn, MIGRATIONS.name(), file)? {
        let mut table =
            txn.open_table(MIGRATIONS).map_err(Error::at(file, "opening the migrations"))?;
        table.remove(view).map_err(Error::at(file, "ending the migration"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::MigrationRow;

    #[test]
    fn rows_round_trip_and_refuse_other_layouts() {
        let row = MigrationRow { from: 1, to: 3, last_key: Some(vec![0, 7]), done: 12 };
        let bytes = row.to_bytes();
        assert_eq!(MigrationRow::from_bytes(&bytes), Some(row));
        let mut newer = bytes.clone();
        newer[0] = 2;
        assert_eq!(MigrationRow::from_bytes(&newer), None);
        assert_eq!(MigrationRow::from_bytes(&bytes[..bytes.len() - 1]), None);
        assert_eq!(MigrationRow::from_bytes(&[]), None);
    }
}
