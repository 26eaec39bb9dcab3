//! The shapes a store recorded for a view, as inspection reads them: each part's shape,
//! or why it cannot be used to decode.

use crate::base::error::{Error, Result};
use crate::base::shape::Shape;
use crate::storage::format::{VIEWS, ViewMeta};
use crate::storage::shapes::{SHAPES, TypeShape, ViewShapes as StoredShapes};
use redb::{ReadableTable, TableError, TableHandle};
use std::path::Path;

/// The codec whose bytes a value shape decodes: the default, bincode's standard
/// configuration through serde.
const DECODABLE_CODEC: &str = "Bincode";

/// A view's key and value shapes; each the reason when it cannot be decoded by.
pub(crate) struct ViewShapes {
    pub(crate) key: std::result::Result<Shape, String>,
    pub(crate) value: std::result::Result<Shape, String>,
}

impl ViewShapes {
    /// One line for a person: the fingerprints, or why a shape is unknown.
    pub(crate) fn describe(&self) -> String {
        let part = |s: &std::result::Result<Shape, String>| match s {
            Ok(shape) => format!("{:016x}", shape.fingerprint()),
            Err(why) => format!("unknown ({why})"),
        };
        format!("key {}, value {}", part(&self.key), part(&self.value))
    }

    fn from_rows(meta: Option<ViewMeta>, stored: Option<&[u8]>) -> ViewShapes {
        let Some(bytes) = stored else {
            let why = || "the file records no shapes for the view".to_owned();
            return ViewShapes { key: Err(why()), value: Err(why()) };
        };
        let Some(shapes) = StoredShapes::from_bytes(bytes) else {
            let why = || "the shapes row is of a newer layout than this build reads".to_owned();
            return ViewShapes { key: Err(why()), value: Err(why()) };
        };
        let known = |shape: TypeShape| match shape {
            TypeShape::Known { shape, .. } => Ok(shape),
            TypeShape::Unknown { reason } => Err(reason),
        };
        let codec = meta.map(|m| m.codec).unwrap_or_default();
        let value = if codec == DECODABLE_CODEC || codec.ends_with("::Bincode") {
            known(shapes.value)
        } else {
            Err(format!(
                "values are written by codec {codec}; only {DECODABLE_CODEC} values decode by shape"
            ))
        };
        ViewShapes { key: known(shapes.key), value }
    }
}

/// Reads `view`'s meta and shapes rows from `txn` (a read or a write transaction).
macro_rules! read_rows {
    ($path:expr, $txn:expr, $view:expr) => {{
        let at = Error::at($path, "reading the view's shapes");
        let meta = match $txn.open_table(VIEWS) {
            Ok(table) => table
                .get($view)
                .map_err(Error::at($path, "reading the view list"))?
                .and_then(|m| ViewMeta::from_bytes(m.value())),
            Err(_) => None,
        };
        let row = match $txn.open_table(SHAPES) {
            Ok(table) => table.get($view).map_err(at)?.map(|v| v.value().to_vec()),
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(Error::storage($path, "opening the shapes table", e)),
        };
        Ok(ViewShapes::from_rows(meta, row.as_deref()))
    }};
}

/// The shapes recorded for `view`, read in a read transaction.
pub(crate) fn read_shapes(
    path: &Path,
    txn: &redb::ReadTransaction,
    view: &str,
) -> Result<ViewShapes> {
    read_rows!(path, txn, view)
}

/// The shapes recorded for `view`, read in a write transaction (which must not create
/// the shapes table: it is only read when present).
pub(crate) fn read_shapes_writable(
    path: &Path,
    txn: &redb::WriteTransaction,
    view: &str,
) -> Result<ViewShapes> {
    if !crate::storage::format::has_table(txn, SHAPES.name(), path)? {
        return Ok(ViewShapes::from_rows(None, None));
    }
    read_rows!(path, txn, view)
}
