//! Views and indexes with their types erased: registration, loading, index-key
//! extraction and the operations the writer applies. The one place of `dyn Any`.

pub(crate) mod bulk_load;
pub(crate) mod index;
pub(crate) mod index_build;
pub(crate) mod migration;
pub(crate) mod names;
pub(crate) mod op;
pub(crate) mod registration;
pub(crate) mod view_info;
