//! Importing JSON lines into a view of a closed store file, without the Rust types:
//! the inverse of [`StoreFile::dump`](super::StoreFile::dump).

use super::file::guarded;
use super::shaped_out::Shaped;
use super::stored::read_shapes_writable;
use crate::base::error::{Error, Result};
use crate::base::limits::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
use crate::base::version::Lsn;
use crate::storage::format::{META, META_LSN, Record, SOURCES, VIEWS, view_table, view_table_name};
use redb::{ReadableTable, WriteTransaction};
use serde_json::Value;
use std::io::BufRead;
use std::path::Path;

/// What [`import`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ImportReport {
    /// Lines read (blank lines are skipped and not counted).
    pub lines: u64,
    /// Records written (tombstones included).
    pub written: u64,
    /// Lines skipped because the stored record's version is the same or newer.
    pub skipped: u64,
    /// The store's LSN after the import.
    pub lsn: Lsn,
}

/// How [`import`] treats the view's existing records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImportMode {
    /// Keep them: a line is written only when its version is newer than the stored
    /// record's, as a write through the store would be.
    Merge,
    /// Remove them first: the view holds exactly the imported lines.
    Replace,
}

/// Imports JSON lines into `view` of the store file at `path`, which no process may
/// have open, in one transaction: either every line is applied or, on any error,
/// nothing.
///
/// Each line is an object as [`StoreFile::dump`](super::StoreFile::dump) and `export`
/// write them: `key`, `version` (at least 1), and `value`, or `"deleted": true` for a
/// tombstone. Keys and values are encoded by the view's stored shapes; a view whose
/// shape is unknown takes that part as an array of bytes, as it dumps it. `null` reads
/// as `None` for an `Option`, so `Some(None)` and `Some(())` do not round-trip.
///
/// A file whose journal (`<file>.journal`, `Durability::Journal`) still holds groups is
/// refused: open it once with [`Store::open`](crate::Store::open), which replays them.
///
/// The view's stored indexes are dropped, so that the next open of the view by the
/// service rebuilds them from the records. The change feed does not record imported
/// records. Views with sources are refused (their per-source versions are not in the
/// JSON form).
///
/// # Errors
///
/// [`Error::AlreadyOpen`] while a process has the store open; [`Error::UnknownView`];
/// [`Error::Import`] naming the line and what is wrong with it.
pub fn import(
    path: impl AsRef<Path>,
    view: &str,
    input: impl BufRead,
    mode: ImportMode,
) -> Result<ImportReport> {
    let path = path.as_ref();
    crate::storage::open::check_magic(path)?;
    super::file::refuse_pending_journal(path)?;
    guarded(path, "importing into it", || {
        let db = redb::Database::open(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                Error::AlreadyOpen { file: path.to_owned() }
            }
            e => Error::storage(path, "opening the file", e),
        })?;
        let txn = db.begin_write().map_err(Error::at(path, "starting a transaction"))?;
        let report = import_in(path, &txn, view, input, mode)?;
        txn.commit().map_err(Error::at(path, "committing the import"))?;
        Ok(report)
    })
}

fn import_in(
    path: &Path,
    txn: &WriteTransaction,
    view: &str,
    input: impl BufRead,
    mode: ImportMode,
) -> Result<ImportReport> {
    let known = txn.open_table(VIEWS).map_err(Error::at(path, "reading the view list"))?;
    if known.get(view).map_err(Error::at(path, "reading the view list"))?.is_none() {
        return Err(Error::UnknownView { view: view.to_owned() });
    }
    drop(known);
    let bad = |line: u64, reason: String| Error::Import {
        file: path.to_owned(),
        view: view.to_owned(),
        line,
        reason,
    };
    if let Ok(sources) = txn.open_table(SOURCES)
        && sources.get(view).map_err(Error::at(path, "reading the source list"))?.is_some()
    {
        return Err(bad(0, "the view has sources, whose versions JSON lines do not carry".into()));
    }
    // A view being migrated holds old and new values behind its progress row: lines
    // encoded by either shape would add to the mix. Finish the migration first.
    if let Some(row) = crate::storage::migrations::read_row(txn, view, path)? {
        return Err(bad(
            0,
            format!(
                "the view is being migrated from schema version {} to {}: open it once with \
                 Store::view_migrated to finish the migration, then import",
                row.from, row.to
            ),
        ));
    }
    let shapes = read_shapes_writable(path, txn, view)?;
    let table_name = view_table_name(view);
    let mut records =
        txn.open_table(view_table(&table_name)).map_err(Error::at(path, "opening the view"))?;
    if mode == ImportMode::Replace {
        records.retain(|_, _| false).map_err(Error::at(path, "clearing the view"))?;
    }
    let mut report = ImportReport::default();
    for (n, line) in input.lines().enumerate() {
        let number = n as u64 + 1;
        let line = line.map_err(|e| bad(number, format!("unreadable: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        report.lines += 1;
        let (key, version, value) =
            parse_line(&shapes, &line).map_err(|reason| bad(number, reason))?;
        let record = match &value {
            Some(value) => Record::Live { version, value },
            None => Record::Tombstone { version },
        };
        let stored = records
            .get(key.as_slice())
            .map_err(Error::at(path, "reading the view"))?
            .and_then(|v| Record::decode(v.value()).ok().map(|r| r.version()));
        if stored.is_some_and(|v| v >= record.version()) {
            report.skipped += 1;
            continue;
        }
        records
            .insert(key.as_slice(), record.encode().as_slice())
            .map_err(Error::at(path, "writing the view"))?;
        report.written += 1;
    }
    drop(records);
    // The view's stored indexes go, so that its next open rebuilds them.
    crate::storage::view_tables::drop_index_tables(txn, view, path)?;
    let mut meta = txn.open_table(META).map_err(Error::at(path, "opening the meta table"))?;
    let lsn = meta
        .get(META_LSN)
        .map_err(Error::at(path, "reading the LSN"))?
        .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
        .map_or(0, u64::from_le_bytes)
        + 1;
    meta.insert(META_LSN, lsn.to_le_bytes().as_slice())
        .map_err(Error::at(path, "writing the LSN"))?;
    report.lsn = Lsn::new(lsn);
    Ok(report)
}

/// A line's encoded key, version, and encoded value (`None` for a tombstone).
type Parsed = (Vec<u8>, u64, Option<Vec<u8>>);

/// One line, encoded; the reason when it is malformed.
fn parse_line(
    shapes: &super::stored::ViewShapes,
    line: &str,
) -> std::result::Result<Parsed, String> {
    let json: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let object = json.as_object().ok_or("not a JSON object")?;
    if let Some(extra) =
        object.keys().find(|k| !["key", "version", "value", "deleted", "raw"].contains(&k.as_str()))
    {
        return Err(format!("unknown member '{extra}'"));
    }
    // Each part is raw bytes exactly when its shape is unknown, as `dump` writes it;
    // the line's `raw` member only says that one of them is.
    let version = object
        .get("version")
        .and_then(Value::as_u64)
        .filter(|&v| v > 0)
        .ok_or("'version' must be a whole number of at least 1")?;
    let key_json = object.get("key").ok_or("no 'key'")?;
    let key = match &shapes.key {
        Ok(shape) => {
            let mut out = Vec::new();
            crate::keys::encode_key(&Shaped::root(shape, key_json), &mut out)
                .map_err(|e| format!("key: {e}"))?;
            out
        }
        Err(_) => raw_bytes(key_json).map_err(|e| format!("key (raw bytes): {e}"))?,
    };
    if key.len() > MAX_KEY_BYTES {
        return Err(format!("the key is {} bytes, over the {MAX_KEY_BYTES}-byte limit", key.len()));
    }
    let deleted = object.get("deleted").and_then(Value::as_bool).unwrap_or(false);
    match (object.get("value"), deleted) {
        (None, true) => Ok((key, version, None)),
        (Some(_), true) => Err("a line has either 'value' or \"deleted\": true, not both".into()),
        (None, false) => Err("no 'value' (and not \"deleted\": true)".into()),
        (Some(value_json), false) => {
            let value = match &shapes.value {
                Ok(shape) => bincode::serde::encode_to_vec(
                    Shaped::root(shape, value_json),
                    bincode::config::standard(),
                )
                .map_err(|e| format!("value: {e}"))?,
                Err(_) => raw_bytes(value_json).map_err(|e| format!("value (raw bytes): {e}"))?,
            };
            if value.len() > MAX_VALUE_BYTES {
                return Err(format!(
                    "the value is {} bytes, over the {MAX_VALUE_BYTES}-byte limit",
                    value.len()
                ));
            }
            Ok((key, version, Some(value)))
        }
    }
}

fn raw_bytes(json: &Value) -> std::result::Result<Vec<u8>, String> {
    let items = json.as_array().ok_or("expected an array of bytes")?;
    items
        .iter()
        .map(|b| {
            b.as_u64()
                .and_then(|b| u8::try_from(b).ok())
                .ok_or_else(|| format!("{b} is not a byte"))
        })
        .collect()
}
