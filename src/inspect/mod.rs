//! Inspecting a store file without the service's Rust types (feature `inspect`): its
//! views and their stored types and shapes, their records decoded to JSON by those
//! shapes, a read-only check, table sizes, and an import of JSON lines.
//!
//! The `viewstore` command-line tool (feature `cli`) is this module with a front end.
//!
//! What a shape cannot decode: values of a view with a custom codec (their shape is
//! unknown: they dump as raw bytes), and types whose shape could not be traced when
//! the view was opened (the reason is in [`ViewFileInfo::shape`]). In the JSON form,
//! `Some(())` and `Some(None)` read as `null`, like `None`.

mod check;
mod file;
mod import;
mod shaped;
mod shaped_out;
mod stored;

pub use check::{FileCheck, TableStat};
pub use file::{DumpedRecord, FileInfo, IndexFileInfo, StoreFile, ViewFileInfo};
pub use import::{ImportMode, ImportReport, import};
