//! What users call: `Store`, `View`, `Batch`, `ViewDef`, `IndexDef` and snapshot reads.

pub(crate) mod batch;
pub(crate) mod index_def;
mod open_view;
pub(crate) mod snapshot;
pub(crate) mod store;
pub(crate) mod view;
mod view_reads;
pub(crate) mod writes;
