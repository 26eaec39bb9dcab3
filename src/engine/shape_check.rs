//! A view's stored identity checked against its definition at open: type names (with
//! the module paths of older files stripped), codec, schema version, and the serde
//! shapes of key and value. Runs in the registration transaction, which also records
//! a new view's identity and brings an older file's up to date.

use crate::base::error::{Error, Result};
use crate::storage::format::{VIEWS, ViewMeta};
use crate::storage::migrations::read_row;
use crate::storage::shapes::{SHAPES, ViewShapes};
use redb::{ReadableTable, WriteTransaction};
use std::path::Path;

/// What [`check_identity`] did to the file.
pub(super) struct Checked {
    /// The view was not in the file and is now recorded.
    pub(super) created: bool,
    /// Something was written (the view recorded, its meta or shapes updated).
    pub(super) wrote: bool,
}

/// Checks view `name`'s stored meta and shapes against `meta` and `shapes`, in `txn`.
///
/// - A view not in the file is recorded, with its shapes.
/// - Stored names are compared without module paths, so a file written with full
///   `type_name`s opens and its meta is rewritten in the new form.
/// - When both sides know a shape and it changed under the same schema version, the
///   open fails with [`Error::SchemaMismatch`] listing the changes; a changed schema
///   version is a mismatch as before, with the changes listed too.
/// - A file without shapes for the view (written before shapes existed), and a shape
///   unknown on either side, compare names and schema version only; the current
///   shapes are then recorded.
pub(super) fn check_identity(
    txn: &WriteTransaction,
    file: &Path,
    name: &str,
    meta: &ViewMeta,
    shapes: &ViewShapes,
) -> Result<Checked> {
    if let Some(row) = read_row(txn, name, file)? {
        return Err(Error::Migration {
            view: name.to_owned(),
            step: None,
            key: None,
            reason: format!(
                "it is half migrated from schema version {} to {} ({} records done): open it \
                 with Store::view_migrated and a migration from version {} to finish",
                row.from, row.to, row.done, row.from
            ),
        });
    }
    let mut views = txn.open_table(VIEWS).map_err(Error::at(file, "opening the view list"))?;
    let stored = views
        .get(name)
        .map_err(Error::at(file, "reading the view list"))?
        .map(|m| ViewMeta::from_bytes(m.value()));
    let mut table = txn.open_table(SHAPES).map_err(Error::at(file, "opening the shape list"))?;
    let stored = match stored {
        None => {
            views
                .insert(name, meta.to_bytes().as_slice())
                .map_err(Error::at(file, "recording the view"))?;
            table
                .insert(name, shapes.to_bytes().as_slice())
                .map_err(Error::at(file, "recording the view's shapes"))?;
            return Ok(Checked { created: true, wrote: true });
        }
        Some(None) => {
            return Err(Error::decode(name, "(view meta)".into(), "unreadable view meta"));
        }
        Some(Some(stored)) => stored,
    };
    let stored_shapes = match table.get(name).map_err(Error::at(file, "reading the shapes"))? {
        None => None,
        Some(bytes) => match ViewShapes::from_bytes(bytes.value()) {
            Some(s) => Some(s),
            None => {
                return Err(Error::decode(name, "(view shapes)".into(), "unreadable view shapes"));
            }
        },
    };
    let changes: Vec<String> = stored_shapes
        .as_ref()
        .map(|s| s.changes(shapes).iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    if stored.normalized() != *meta || !changes.is_empty() {
        return Err(mismatch(name, &stored, meta, changes));
    }
    let mut wrote = false;
    if stored != *meta {
        views
            .insert(name, meta.to_bytes().as_slice())
            .map_err(Error::at(file, "updating the view's type names"))?;
        wrote = true;
    }
    if stored_shapes.as_ref() != Some(shapes) {
        table
            .insert(name, shapes.to_bytes().as_slice())
            .map_err(Error::at(file, "recording the view's shapes"))?;
        wrote = true;
    }
    Ok(Checked { created: false, wrote })
}

/// The error of a view opened with another identity than the stored one.
pub(super) fn mismatch(
    view: &str,
    stored: &ViewMeta,
    requested: &ViewMeta,
    changes: Vec<String>,
) -> Error {
    let (from, to) = (stored.schema_version, requested.schema_version);
    let hint = match from.cmp(&to) {
        std::cmp::Ordering::Less => format!(
            " without a migration: to convert its values, open it with Store::view_migrated \
             and a Migration from version {from} to {to}"
        ),
        std::cmp::Ordering::Greater => {
            format!(
                ", older than the stored schema version {from}, which this definition cannot read"
            )
        }
        std::cmp::Ordering::Equal => String::new(),
    };
    let requested_text = requested.describe() + &hint;
    Error::SchemaMismatch {
        view: view.to_owned(),
        stored: stored.describe(),
        requested: requested_text,
        changes,
    }
}
