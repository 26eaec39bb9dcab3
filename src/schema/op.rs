//! Operations as the writer receives them: keys and values already encoded, values
//! type-erased, `update` closures boxed.

use crate::base::error::Error;
use crate::base::version::Version;
use crate::keys::KeyBuf;
use crate::mem::AnyValue;
use std::any::Any;

/// What an `update` closure produced, type-erased for the writer.
pub(crate) enum UpdateResult {
    Unchanged,
    Value { bytes: Vec<u8>, value: AnyValue },
    Delete,
    Failed(Error),
}

pub(crate) type UpdateFn = Box<dyn FnOnce(Option<&(dyn Any + Send + Sync)>) -> UpdateResult + Send>;

pub(crate) enum OpKind {
    Put { version: Version, bytes: Vec<u8>, value: AnyValue },
    Delete { version: Version },
    CompareAndSet { expected: Option<Version>, version: Version, bytes: Vec<u8>, value: AnyValue },
    CompareAndDelete { expected: Version, version: Version },
    Update { version: Version, f: UpdateFn },
    PurgeTombstones { below: Version },
}

pub(crate) struct Op {
    pub(crate) view: usize,
    /// The id of the source the write comes from, for a view with sources; `None` for
    /// a view without.
    pub(crate) source: Option<u8>,
    pub(crate) key: KeyBuf,
    pub(crate) kind: OpKind,
}
