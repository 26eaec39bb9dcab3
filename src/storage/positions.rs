//! Reading the source positions a store has reached.

use crate::base::error::{Error, Result};
use crate::storage::format::POSITIONS;
use redb::{Database, ReadableDatabase, ReadableTable, TableError};
use std::path::Path;

/// Every stored position: `(source, partition)` and the position reached, in order.
pub(crate) fn read_positions(db: &Database, path: &Path) -> Result<Vec<((String, u32), u64)>> {
    let txn = db.begin_read().map_err(Error::at(path, "beginning a read"))?;
    let table = match txn.open_table(POSITIONS) {
        Ok(table) => table,
        // A store that never stored a position has no table.
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(Error::storage(path, "opening the positions", e)),
    };
    let mut out = Vec::new();
    for item in table.iter().map_err(Error::at(path, "reading the positions"))? {
        let (key, position) = item.map_err(Error::at(path, "reading the positions"))?;
        let (source, partition) = key.value();
        out.push(((source.to_owned(), partition), position.value()));
    }
    Ok(out)
}
