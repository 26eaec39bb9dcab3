//! The file: its format (tables, meta, record layout, per-source versions) and how it
//! is opened.

pub(crate) mod feed;
pub(crate) mod format;
pub(crate) mod journal;
pub(crate) mod open;
pub(crate) mod positions;
pub(crate) mod sources;
