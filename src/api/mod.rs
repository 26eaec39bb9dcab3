//! What users call: `Store`, `View`, `Batch`, `ViewDef`, `IndexDef`, snapshot reads, and
//! the async forms of submitting, writing, waiting and closing; view management and
//! online backup.

pub(crate) mod asynchronous;
mod backup;
pub(crate) mod batch;
mod bulk_load;
pub(crate) mod index_def;
mod manage;
mod migrate;
pub(crate) mod migration;
mod open_view;
pub(crate) mod replicate;
pub(crate) mod snapshot;
pub(crate) mod store;
pub(crate) mod submit;
pub(crate) mod view;
mod view_reads;
pub(crate) mod writes;
pub(crate) mod writes_async;
