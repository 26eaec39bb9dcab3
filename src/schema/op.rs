//! Operations as the writer receives them: keys and values already encoded, values
//! type-erased, `update` closures boxed.

use crate::base::error::Error;
use crate::base::version::{Lsn, Version};
use crate::keys::KeyBuf;
use crate::mem::AnyValue;
use std::any::Any;
use std::sync::Arc;

/// What an `update` closure produced, type-erased for the writer.
pub(crate) enum UpdateResult {
    Unchanged,
    Value { bytes: Vec<u8>, value: AnyValue },
    Delete,
    Failed(Error),
}

pub(crate) type UpdateFn = Box<dyn FnOnce(Option<&(dyn Any + Send + Sync)>) -> UpdateResult + Send>;

pub(crate) enum OpKind {
    Put {
        version: Version,
        bytes: Vec<u8>,
        value: AnyValue,
    },
    Delete {
        version: Version,
    },
    CompareAndSet {
        expected: Option<Version>,
        version: Version,
        bytes: Vec<u8>,
        value: AnyValue,
    },
    CompareAndDelete {
        expected: Version,
        version: Version,
    },
    Update {
        version: Version,
        f: UpdateFn,
    },
    /// An update at the version after the stored one (of its source), whatever it is.
    UpdateNext {
        f: UpdateFn,
    },
    PurgeTombstones {
        below: Version,
    },
    /// A replicated state: the record is live at `version` with this value, whatever
    /// it was (the primary decided).
    SetLive {
        version: Version,
        bytes: Vec<u8>,
        value: AnyValue,
    },
    /// A replicated state: the record is a tombstone at `version`, whatever it was.
    SetTombstone {
        version: Version,
    },
    /// A replicated state: the key is absent, whatever it held.
    Remove,
}

pub(crate) struct Op {
    pub(crate) view: usize,
    /// The id of the source the write comes from, for a view with sources; `None` for
    /// a view without.
    pub(crate) source: Option<u8>,
    pub(crate) key: KeyBuf,
    pub(crate) kind: OpKind,
}

/// Where a batch stands in a source: the batch is the effect of `source`'s `partition`
/// up to `position`. Stored in the same transaction as the batch's writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) source: Arc<str>,
    pub(crate) partition: u32,
    pub(crate) at: u64,
    pub(crate) follows: Follows,
}

/// What a batch's position must find stored to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Follows {
    /// Anything below it.
    Any,
    /// Exactly this (`None`: nothing stored), so that a partition's batches commit in
    /// order with no gap.
    Exactly(Option<u64>),
}

/// Builds the operations to apply instead of a batch that failed, from its error.
pub(crate) type Fallback = Box<dyn FnOnce(&Error) -> Result<Vec<Op>, Error> + Send>;

/// A batch as the writer receives it.
pub(crate) struct Submission {
    pub(crate) ops: Vec<Op>,
    pub(crate) positions: Vec<Position>,
    pub(crate) fallback: Option<Fallback>,
    /// A group replicated from a primary's feed, at its LSN there: it commits alone, at
    /// exactly that LSN, or not at all when the store has it already.
    pub(crate) replicated: Option<Lsn>,
    /// For a replicated group: it applies only once the store has reached this LSN (the
    /// group its sender submitted before it), so that when one group of a pipeline
    /// fails, none after it commits.
    pub(crate) replicated_after: Option<Lsn>,
}
