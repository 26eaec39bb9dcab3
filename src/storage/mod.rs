//! The file: its format (tables, meta, record layout, per-source versions) and how it
//! is opened; the catalog read back, a view's tables changed as a whole, and the copy a
//! backup makes.

pub(crate) mod catalog;
pub(crate) mod copy;
pub(crate) mod feed;
pub(crate) mod format;
pub(crate) mod journal;
pub(crate) mod migrations;
pub(crate) mod open;
pub(crate) mod positions;
pub(crate) mod shapes;
pub(crate) mod sources;
pub(crate) mod timed;
pub(crate) mod view_tables;
