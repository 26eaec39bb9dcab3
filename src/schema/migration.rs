//! A migration with its types erased: what the writer needs to convert a view's stored
//! values, one bounded transaction at a time. Built by the typed `Migration` of the API
//! and the view's definition.

use crate::storage::format::ViewMeta;
use crate::storage::shapes::{TypeShape, ViewShapes};
use std::sync::Arc;

/// Why a stored value could not be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StepFailure {
    /// The schema version step that failed, `(from, to)`; `None` when the stored value
    /// did not decode, or the converted one did not encode.
    pub(crate) step: Option<(u32, u32)>,
    pub(crate) reason: String,
}

/// Converts the bytes of a value stored at a schema version (the first argument) into
/// the bytes of the view's current value type, as its codec encodes it. User code runs
/// inside (the steps); a panic in it is caught and returned as a [`StepFailure`].
pub(crate) type Convert = Arc<dyn Fn(u32, &[u8]) -> Result<Vec<u8>, StepFailure> + Send + Sync>;

/// Everything the writer needs to migrate one view.
pub(crate) struct MigrationPlan {
    /// The view's name.
    pub(crate) view: String,
    /// The view's identity after the migration (its schema version is the target).
    pub(crate) meta: ViewMeta,
    /// The shapes of its key and value after the migration.
    pub(crate) shapes: ViewShapes,
    /// The schema versions the chain converts from, each with the shape of the value
    /// type the chain decodes at that version, in increasing order.
    pub(crate) covered: Vec<(u32, TypeShape)>,
    pub(crate) convert: Convert,
    /// Renders an encoded key for messages.
    pub(crate) render_key: fn(&[u8]) -> String,
    /// At most this many rows of the view's table per transaction.
    pub(crate) chunk_records: usize,
    /// At most about this many bytes of converted values per transaction.
    pub(crate) chunk_bytes: usize,
}

impl MigrationPlan {
    /// The shape the chain decodes values stored at `version` as; `None` when the chain
    /// does not convert from `version`.
    pub(crate) fn covers(&self, version: u32) -> Option<&TypeShape> {
        self.covered.iter().find(|(v, _)| *v == version).map(|(_, shape)| shape)
    }

    /// The covered versions, for messages: `1, 2`.
    pub(crate) fn describe_covered(&self) -> String {
        let list: Vec<String> = self.covered.iter().map(|(v, _)| v.to_string()).collect();
        list.join(", ")
    }
}
