//! The vocabulary every layer shares: errors, versions and LSNs, value codecs, the
//! store's configuration, size limits, and running work beside the caller. Imports
//! nothing else of the crate.

pub(crate) mod beside;
pub(crate) mod codec;
pub(crate) mod config;
pub(crate) mod error;
mod error_display;
mod error_kind;
pub(crate) mod feed;
pub(crate) mod histogram;
pub(crate) mod index_kind;
pub(crate) mod instrument;
pub(crate) mod limits;
pub(crate) mod manage;
pub(crate) mod order;
pub(crate) mod panic;
pub(crate) mod shape;
pub(crate) mod sync;
pub(crate) mod type_names;
pub(crate) mod version;
pub(crate) mod writer_stats;
