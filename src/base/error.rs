//! The one error type of the crate.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// The result type of every fallible viewstore call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed error from a value codec, kept as the `source()` of [`Error::Encode`] and
/// [`Error::Decode`].
pub type CodecError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong in viewstore. Each variant names what failed and where:
/// the view, the key, the index or the file.
///
/// Errors are `Clone` because one failed commit fails every batch of its group with the
/// same error.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The file exists but is not a viewstore database. Nothing was written to it.
    NotAStore {
        /// The file that was refused.
        file: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// The file is a viewstore written by a newer format version than this build reads.
    NewerFormat {
        /// The file that was refused.
        file: PathBuf,
        /// The format version stored in the file.
        found: u32,
        /// The newest format version this build reads.
        supported: u32,
    },
    /// A view was opened with key or value types, or a schema version, other than the
    /// ones the store recorded for it. Nothing was written.
    SchemaMismatch {
        /// The view's name.
        view: String,
        /// What the store holds: key type, value type and schema version.
        stored: String,
        /// What the caller asked for.
        requested: String,
    },
    /// A view name that cannot be used (empty, too long, or with control characters).
    InvalidViewName {
        /// The name that was refused.
        view: String,
    },
    /// The view handle belongs to another store than the one the batch was submitted to.
    ForeignView {
        /// The view's name.
        view: String,
    },
    /// An encoded key is longer than [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES).
    KeyTooLarge {
        /// The view's name.
        view: String,
        /// The encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An encoded value is longer than [`MAX_VALUE_BYTES`](crate::MAX_VALUE_BYTES).
    ValueTooLarge {
        /// The view's name.
        view: String,
        /// The key, as its `Debug` form.
        key: String,
        /// The encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A key could not be encoded with the order-preserving key encoding (for example a
    /// float or a map, which have no usable byte order).
    KeyEncoding {
        /// The view's name.
        view: String,
        /// What the encoder refused.
        reason: String,
    },
    /// The value codec failed to encode a value.
    Encode {
        /// The view's name.
        view: String,
        /// The key, as its `Debug` form.
        key: String,
        /// The codec's error.
        source: Arc<CodecError>,
    },
    /// Stored bytes could not be decoded: the record of this key is corrupt, or was
    /// written with another value type.
    Decode {
        /// The view's name.
        view: String,
        /// The key, as its `Debug` form (or its bytes, when the key itself is unreadable).
        key: String,
        /// The codec's error or what was wrong with the record.
        source: Arc<CodecError>,
    },
    /// An `update` closure panicked. Its batch failed; the writer keeps running.
    UpdatePanicked {
        /// The view's name.
        view: String,
        /// The key, as its `Debug` form.
        key: String,
        /// The panic message.
        message: String,
    },
    /// A write would give a unique index key a second record. The batch failed.
    UniqueViolation {
        /// The view's name.
        view: String,
        /// The index's name.
        index: String,
        /// The index key, as its `Debug` form.
        key: String,
    },
    /// An index extractor panicked. The batch (or the index build) failed.
    IndexPanicked {
        /// The view's name.
        view: String,
        /// The index's name.
        index: String,
        /// The record's key, as its `Debug` form.
        key: String,
        /// The panic message.
        message: String,
    },
    /// An extracted index key encodes to more than [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES).
    IndexKeyTooLarge {
        /// The view's name.
        view: String,
        /// The index's name.
        index: String,
        /// The record's key, as its `Debug` form.
        key: String,
        /// The encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An index definition that cannot be used: a bad or duplicate name, or keys that
    /// cannot be encoded.
    InvalidIndex {
        /// The view's name.
        view: String,
        /// The index's name.
        index: String,
        /// What is wrong.
        reason: String,
    },
    /// The file is held open by another `Store` in this process or by another process
    /// (redb locks it). Nothing was written to it.
    AlreadyOpen {
        /// The file that was refused.
        file: PathBuf,
    },
    /// A blocking call (a write, a view open, `verify`, `wait_for` of a later LSN, a wait
    /// on a pending ticket) was made on the writer thread, from an update closure, an
    /// index extractor or a codec: it would wait for the writer running it.
    WriterReentry {
        /// The file of the store.
        file: PathBuf,
    },
    /// The write queue is full; returned by [`Store::try_submit`](crate::Store::try_submit).
    Full,
    /// The store was closed; nothing more can be written.
    Closed,
    /// The writer stopped after a failure it cannot recover from; the store is read-only.
    Poisoned {
        /// The file of the store.
        file: PathBuf,
        /// What poisoned it.
        reason: String,
    },
    /// The storage engine failed (I/O, disk full, corruption found by redb).
    Storage {
        /// The file of the store.
        file: PathBuf,
        /// What viewstore was doing.
        during: &'static str,
        /// redb's error.
        source: Arc<redb::Error>,
    },
    /// A file system operation outside redb failed.
    Io {
        /// The file concerned.
        file: PathBuf,
        /// The I/O error.
        source: Arc<std::io::Error>,
    },
}

impl Error {
    pub(crate) fn storage(
        file: &std::path::Path,
        during: &'static str,
        e: impl Into<redb::Error>,
    ) -> Self {
        Error::Storage { file: file.to_path_buf(), during, source: Arc::new(e.into()) }
    }

    /// A `map_err` adapter for redb errors.
    pub(crate) fn at<'a, E: Into<redb::Error>>(
        file: &'a std::path::Path,
        during: &'static str,
    ) -> impl FnOnce(E) -> Self + 'a {
        move |e| Error::storage(file, during, e)
    }

    pub(crate) fn decode(view: &str, key: String, source: impl Into<CodecError>) -> Self {
        Error::Decode { view: view.to_owned(), key, source: Arc::new(source.into()) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotAStore { file, reason } => {
                write!(f, "{} is not a viewstore database: {reason}", file.display())
            }
            Error::NewerFormat { file, found, supported } => write!(
                f,
                "{} has viewstore format version {found}; this build reads up to {supported}",
                file.display()
            ),
            Error::SchemaMismatch { view, stored, requested } => {
                write!(f, "view '{view}' is stored as {stored} but was opened as {requested}")
            }
            Error::InvalidViewName { view } => write!(
                f,
                "invalid view name {view:?}: names are 1 to 200 bytes without control characters"
            ),
            Error::ForeignView { view } => {
                write!(f, "view '{view}' belongs to another store than this batch's")
            }
            Error::KeyTooLarge { view, len, max } => {
                write!(f, "key for view '{view}' encodes to {len} bytes; the limit is {max}")
            }
            Error::ValueTooLarge { view, key, len, max } => write!(
                f,
                "value for view '{view}', key {key} encodes to {len} bytes; the limit is {max}"
            ),
            Error::KeyEncoding { view, reason } => {
                write!(f, "key for view '{view}' cannot be encoded: {reason}")
            }
            Error::Encode { view, key, source } => {
                write!(f, "cannot encode value for view '{view}', key {key}: {source}")
            }
            Error::Decode { view, key, source } => {
                write!(f, "corrupt record in view '{view}', key {key}: {source}")
            }
            Error::UpdatePanicked { view, key, message } => {
                write!(f, "update closure for view '{view}', key {key} panicked: {message}")
            }
            Error::UniqueViolation { view, index, key } => write!(
                f,
                "unique index '{index}' of view '{view}' already has a record for key {key}"
            ),
            Error::IndexPanicked { view, index, key, message } => write!(
                f,
                "extractor of index '{index}' of view '{view}' panicked on key {key}: {message}"
            ),
            Error::IndexKeyTooLarge { view, index, key, len, max } => write!(
                f,
                "index '{index}' of view '{view}': a key of record {key} encodes to {len} \
                 bytes; the limit is {max}"
            ),
            Error::InvalidIndex { view, index, reason } => {
                write!(f, "invalid index '{index}' on view '{view}': {reason}")
            }
            Error::AlreadyOpen { file } => write!(
                f,
                "{} is already open, by another Store in this process or by another process",
                file.display()
            ),
            Error::WriterReentry { file } => write!(
                f,
                "store {} was called from inside its own writer (an update closure, \
                 extractor or codec) in a way that would wait for that writer forever",
                file.display()
            ),
            Error::Full => f.write_str("the write queue is full"),
            Error::Closed => f.write_str("the store is closed"),
            Error::Poisoned { file, reason } => {
                write!(f, "store {} is read-only after a writer failure: {reason}", file.display())
            }
            Error::Storage { file, during, source } => {
                write!(f, "storage error in {} while {during}: {source}", file.display())
            }
            Error::Io { file, source } => write!(f, "I/O error on {}: {source}", file.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Encode { source, .. } | Error::Decode { source, .. } => {
                Some(source.as_ref().as_ref())
            }
            Error::Storage { source, .. } => Some(source.as_ref()),
            Error::Io { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}
