//! What the writer knows of each registered view and its indexes, types erased.

use crate::base::error::Result;
use crate::base::feed::FeedMode;
use crate::base::index_kind::IndexKind;
use crate::schema::index::ExtractError;
use std::any::Any;
use std::sync::Arc;

/// Extracts the encoded index keys of a type-erased value.
pub(crate) type Extractor =
    Box<dyn Fn(&(dyn Any + Send + Sync)) -> Result<Vec<Vec<u8>>, ExtractError> + Send + Sync>;

/// Renders an encoded key in its `Debug` form.
pub(crate) type Renderer = Box<dyn Fn(&[u8]) -> String + Send + Sync>;

/// What the writer knows of one index of a view.
pub(crate) struct WriterIndex {
    pub(crate) name: Arc<str>,
    pub(crate) kind: IndexKind,
    pub(crate) table: String,
    pub(crate) extract: Extractor,
    pub(crate) render: Renderer,
}

/// What the writer knows of each registered view.
pub(crate) struct ViewInfo {
    pub(crate) name: Arc<str>,
    pub(crate) table: String,
    pub(crate) render_key: fn(&[u8]) -> String,
    pub(crate) indexes: Vec<WriterIndex>,
    /// What the view records in the change feed.
    pub(crate) feed: FeedMode,
}

impl ViewInfo {
    /// The index keys of `value` (none for `None`), as errors naming view, index, key.
    pub(crate) fn index_keys(
        &self,
        index: &WriterIndex,
        pk: &[u8],
        value: Option<&(dyn Any + Send + Sync)>,
    ) -> Result<Vec<Vec<u8>>> {
        let Some(value) = value else { return Ok(Vec::new()) };
        (index.extract)(value)
            .map_err(|e| e.into_error(&self.name, &index.name, (self.render_key)(pk)))
    }
}
