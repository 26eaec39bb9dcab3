//! The one error type of the crate.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// The result type of every fallible viewstore call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed error from a value codec, kept as the `source()` of [`Error::Encode`] and
/// [`Error::Decode`].
pub type CodecError = Box<dyn std::error::Error + Send + Sync>;

/// Whose failure an [`Error`] is, and so what a caller can do about it: fix the call
/// ([`Input`](ErrorKind::Input)), give up on one batch and go on
/// ([`Batch`](ErrorKind::Batch)), or deal with a store that cannot write
/// ([`Store`](ErrorKind::Store)). Given by [`Error::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The call was refused for what it was given or how it was made, before anything
    /// was tried against the store's data: an argument (a key or value over the limits,
    /// a key or value that does not encode), a definition (a view or index name, types
    /// or schema version other than the stored ones), the file (not a store, a newer
    /// format, already open), the thread (the writer's own) or the moment (a full
    /// queue). Nothing happened: nothing was queued or written. Made again unchanged,
    /// the call fails the same way until what refused it changes.
    Input,
    /// The writer tried this batch, or the open of a view, and it failed on its own: the
    /// stored data refused it (a unique index key held by another record, a stored
    /// record that does not decode), or user code run by the writer (an `update`
    /// closure, an index extractor, a codec) panicked or gave a result that cannot be
    /// stored. Nothing of it was written. The store is fine: other batches, those of the
    /// same group included, committed, and later ones go on.
    Batch,
    /// The store or its storage failed: redb or the file system failed (a failed commit
    /// fails every batch of its group), or the store is closed or read-only after a
    /// failure of its writer. Not about this call in particular: other calls fail too.
    Store,
}

/// Everything that can go wrong in viewstore. Each variant names what failed and where:
/// the view, the key, the index or the file. [`Error::kind`] tells whose failure it is.
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
    /// A source declared with [`ViewDef::with_sources`](crate::ViewDef::with_sources)
    /// that cannot be used: a name that is empty, longer than 200 bytes or has control
    /// characters, a name listed twice, or more than
    /// [`MAX_SOURCES`](crate::MAX_SOURCES) sources. Refused when the view is opened.
    InvalidSource {
        /// The view's name.
        view: String,
        /// The source's name.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// [`View::source`](crate::View::source) named a source that the view does not
    /// declare, or the view declares no sources at all.
    UnknownSource {
        /// The view's name.
        view: String,
        /// The name that was asked for.
        source_name: String,
    },
    /// A write to a view with sources through a handle that names none: such a view is
    /// written through the handle [`View::source`](crate::View::source) returns, so
    /// that every write is attributed to a source. Refused when the operation is added
    /// to a batch.
    SourceRequired {
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
        /// Whether the value is what an `update` closure returned, encoded by the writer:
        /// then only its batch failed ([`ErrorKind::Batch`]). `false` for a value
        /// refused on the caller's thread, when its operation was added
        /// ([`ErrorKind::Input`]).
        from_update: bool,
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
        /// Whether the value is what an `update` closure returned, encoded by the writer:
        /// then only its batch failed ([`ErrorKind::Batch`]). `false` for a value
        /// refused on the caller's thread, when its operation was added
        /// ([`ErrorKind::Input`]).
        from_update: bool,
    },
    /// Stored bytes could not be decoded: the record of this key is corrupt, or was
    /// written with another value type. Found by a batch that reads the record, it fails
    /// that batch; found when a view is opened, it fails that open. Either way the rest
    /// of the store goes on ([`ErrorKind::Batch`]).
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
    /// A write would give a unique index key a second record. The batch failed (or,
    /// when a new unique index is built over existing records, the view's open).
    UniqueViolation {
        /// The view's name.
        view: String,
        /// The index's name.
        index: String,
        /// The index key, as its `Debug` form.
        key: String,
        /// The index key in the order-preserving key encoding, the form indexes store:
        /// the same bytes as a view key of the index key's type. (This field and the
        /// next two are boxed to keep `Error` small.)
        key_bytes: Box<[u8]>,
        /// The primary key of a record that holds the index key, as its `Debug` form: a
        /// committed record, or another record of the same batch.
        holder: Box<str>,
        /// The primary key of the record that was refused the index key, as its `Debug`
        /// form. When a new index is built, the later of two records sharing the key.
        refused: Box<str>,
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
    /// An index definition that cannot be used: a bad or duplicate name, refused when
    /// the view is opened ([`ErrorKind::Input`]), or an extracted index key the key
    /// encoding cannot encode, found by the writer in one record: that fails the batch
    /// writing it, or the open that builds the index ([`ErrorKind::Batch`]).
    InvalidIndex {
        /// The view's name.
        view: String,
        /// The index's name.
        index: String,
        /// What is wrong.
        reason: String,
        /// The primary key of the record whose index key does not encode, as its `Debug`
        /// form; `None` for a definition refused when the view was opened.
        key: Option<String>,
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
    /// A source position given to a batch or a projector is not valid: an invalid
    /// source name, or a second position for one partition in one batch.
    InvalidPosition {
        /// The source's name.
        source: String,
        /// What is wrong.
        reason: String,
    },
    /// A batch's position for a partition does not follow the stored one: the batch
    /// said it comes right after `follows`, but the store is at `stored` (an earlier
    /// batch of the partition failed or was never submitted). Nothing was written.
    PositionGap {
        /// The source's name.
        source: String,
        /// The partition.
        partition: u32,
        /// The batch's position.
        position: u64,
        /// The position the batch said it follows (`None`: the start).
        follows: Option<u64>,
        /// The stored position (`None`: none yet).
        stored: Option<u64>,
    },
    /// A batch carried positions the store had reached for some partitions but not for
    /// others, so it is neither new nor a redelivery. Nothing was written.
    PartialRedelivery {
        /// The source of a position already reached.
        source: String,
        /// Its partition.
        partition: u32,
        /// The batch's position there.
        position: u64,
        /// The stored position there.
        stored: u64,
        /// A position of the batch not reached yet, as `source partition p at n`.
        ahead: String,
    },
    /// A projector could not apply an event, and its policy is to stop: the event's
    /// handler failed or panicked, or its batch failed. The event's position was not
    /// stored; a restarted projector meets the event again.
    EventFailed {
        /// The source's name.
        source: String,
        /// The event's partition.
        partition: u32,
        /// The event's position.
        position: u64,
        /// What failed.
        reason: String,
    },
    /// A projector's source failed to poll or to acknowledge.
    SourceFailed {
        /// The source's name.
        source: String,
        /// What failed.
        reason: String,
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
    /// Whose failure this is: the caller's input ([`ErrorKind::Input`]), one batch's
    /// ([`ErrorKind::Batch`]) or the store's ([`ErrorKind::Store`]). A [`Ticket`]
    /// can resolve with any of them, so match on this rather than on every variant.
    ///
    /// | Kind | Variants |
    /// |---|---|
    /// | `Input` | `NotAStore`, `NewerFormat`, `SchemaMismatch`, `InvalidViewName`, `ForeignView`, `InvalidSource`, `UnknownSource`, `SourceRequired`, `KeyTooLarge`, `KeyEncoding`, `AlreadyOpen`, `WriterReentry`, `InvalidPosition`, `Full`; `ValueTooLarge` and `Encode` of a value given to the batch; `InvalidIndex` of a definition (`key: None`) |
    /// | `Batch` | `UniqueViolation`, `UpdatePanicked`, `IndexPanicked`, `IndexKeyTooLarge`, `Decode`, `PositionGap`, `PartialRedelivery`, `EventFailed`; `ValueTooLarge` and `Encode` of an `update` closure's result (`from_update: true`); `InvalidIndex` of one record's index key (`key: Some`) |
    /// | `Store` | `Storage`, `Io`, `Poisoned`, `Closed`, `SourceFailed` |
    ///
    /// # Examples
    ///
    /// Retrying what may pass later, skipping a batch that failed on its own, and giving
    /// up on the rest:
    ///
    /// ```
    /// use std::time::Duration;
    /// use viewstore::{Batch, Error, ErrorKind, Receipt, Store, View, ViewDef};
    ///
    /// const COUNTS: ViewDef<String, u64> = ViewDef::new("counts");
    ///
    /// /// Counts one more `name` at `version`; `Ok(None)` when only this batch failed.
    /// fn count(
    ///     store: &Store,
    ///     counts: &View<String, u64>,
    ///     name: &str,
    ///     version: u64,
    /// ) -> Result<Option<Receipt>, Error> {
    ///     let mut attempt = 0;
    ///     loop {
    ///         attempt += 1;
    ///         let mut batch = Batch::new();
    ///         batch.update(counts, &name.to_owned(), version, |n| Some(n.map_or(1, |n| n + 1)))?;
    ///         let err = match store.try_submit(batch).and_then(|ticket| ticket.wait()) {
    ///             Ok(receipt) => return Ok(Some(receipt)),
    ///             Err(err) => err,
    ///         };
    ///         // A full queue or a failed commit: the same batch may pass later.
    ///         if err.is_retryable() && attempt < 5 {
    ///             std::thread::sleep(Duration::from_millis(10 * attempt));
    ///             continue;
    ///         }
    ///         match err.kind() {
    ///             // This batch failed on its own (a unique violation, a panicking
    ///             // closure...): nothing of it was written, the store goes on.
    ///             ErrorKind::Batch => return Ok(None),
    ///             // A mistake in the call, or a store that cannot write.
    ///             _ => return Err(err),
    ///         }
    ///     }
    /// }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("views.redb"))?;
    /// let counts = store.view(&COUNTS)?;
    /// assert!(count(&store, &counts, "visits", 1)?.is_some());
    /// assert_eq!(counts.get(&"visits".to_owned()).as_deref(), Some(&1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`Ticket`]: crate::Ticket
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotAStore { .. }
            | Error::NewerFormat { .. }
            | Error::SchemaMismatch { .. }
            | Error::InvalidViewName { .. }
            | Error::ForeignView { .. }
            | Error::InvalidSource { .. }
            | Error::UnknownSource { .. }
            | Error::SourceRequired { .. }
            | Error::KeyTooLarge { .. }
            | Error::KeyEncoding { .. }
            | Error::AlreadyOpen { .. }
            | Error::WriterReentry { .. }
            | Error::InvalidPosition { .. }
            | Error::Full => ErrorKind::Input,
            Error::ValueTooLarge { from_update, .. } | Error::Encode { from_update, .. } => {
                if *from_update {
                    ErrorKind::Batch
                } else {
                    ErrorKind::Input
                }
            }
            Error::InvalidIndex { key, .. } => {
                if key.is_some() {
                    ErrorKind::Batch
                } else {
                    ErrorKind::Input
                }
            }
            Error::Decode { .. }
            | Error::UpdatePanicked { .. }
            | Error::UniqueViolation { .. }
            | Error::IndexPanicked { .. }
            | Error::IndexKeyTooLarge { .. }
            | Error::PositionGap { .. }
            | Error::PartialRedelivery { .. }
            | Error::EventFailed { .. } => ErrorKind::Batch,
            Error::Storage { .. }
            | Error::Io { .. }
            | Error::Poisoned { .. }
            | Error::Closed
            | Error::SourceFailed { .. } => ErrorKind::Store,
        }
    }

    /// Whether the same operation, made again unchanged after a pause, may succeed:
    /// `true` for [`Error::Full`] (the queue drains), [`Error::SourceFailed`], and for a failure of the storage,
    /// [`Error::Storage`] and [`Error::Io`], which may be passing (a full disk, an I/O
    /// error): after a failed commit the writer reopens the database and takes new
    /// batches, and if it cannot, later calls return [`Error::Poisoned`]. A storage
    /// failure may also last (a corrupt file), so bound the retries.
    ///
    /// `false` for everything else: [`Error::Poisoned`] and [`Error::Closed`] (this
    /// `Store` will not write again), every [`ErrorKind::Batch`] error (the same batch
    /// meets the same data and code), and every other [`ErrorKind::Input`] error
    /// (the same call is refused again; [`Error::AlreadyOpen`] only passes once the
    /// other holder of the file closes it).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Full | Error::Storage { .. } | Error::Io { .. } | Error::SourceFailed { .. }
        )
    }
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

/// A position as Display shows it: the number, or "the start".
fn position_text(position: Option<u64>) -> String {
    position.map_or_else(|| "the start".to_owned(), |p| format!("position {p}"))
}

/// The words Display adds for a value an `update` closure returned.
fn by_update(from_update: bool) -> &'static str {
    if from_update { " (returned by an update closure)" } else { "" }
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
            Error::InvalidSource { view, source_name, reason } => {
                write!(f, "invalid source {source_name:?} of view '{view}': {reason}")
            }
            Error::UnknownSource { view, source_name } => {
                write!(f, "view '{view}' declares no source named {source_name:?}")
            }
            Error::SourceRequired { view } => write!(
                f,
                "view '{view}' has sources: write to it through a handle of one of them \
                 (View::source)"
            ),
            Error::KeyTooLarge { view, len, max } => {
                write!(f, "key for view '{view}' encodes to {len} bytes; the limit is {max}")
            }
            Error::ValueTooLarge { view, key, len, max, from_update } => write!(
                f,
                "value for view '{view}', key {key}{} encodes to {len} bytes; the limit is {max}",
                by_update(*from_update)
            ),
            Error::KeyEncoding { view, reason } => {
                write!(f, "key for view '{view}' cannot be encoded: {reason}")
            }
            Error::Encode { view, key, source, from_update } => write!(
                f,
                "cannot encode value for view '{view}', key {key}{}: {source}",
                by_update(*from_update)
            ),
            Error::Decode { view, key, source } => {
                write!(f, "corrupt record in view '{view}', key {key}: {source}")
            }
            Error::UpdatePanicked { view, key, message } => {
                write!(f, "update closure for view '{view}', key {key} panicked: {message}")
            }
            Error::UniqueViolation { view, index, key, holder, refused, .. } => write!(
                f,
                "unique index '{index}' of view '{view}' already has a record for key {key} \
                 (record {holder}); record {refused} cannot have it too"
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
            Error::InvalidIndex { view, index, reason, key: None } => {
                write!(f, "invalid index '{index}' on view '{view}': {reason}")
            }
            Error::InvalidIndex { view, index, reason, key: Some(key) } => write!(
                f,
                "invalid index '{index}' on view '{view}': a key of record {key} cannot be \
                 encoded: {reason}"
            ),
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
            Error::InvalidPosition { .. }
            | Error::PositionGap { .. }
            | Error::PartialRedelivery { .. }
            | Error::EventFailed { .. }
            | Error::SourceFailed { .. } => self.fmt_source_error(f),
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

impl Error {
    /// Display of the errors of source positions and projectors.
    fn fmt_source_error(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidPosition { source, reason } => {
                write!(f, "invalid position for source '{source}': {reason}")
            }
            Error::PositionGap { source, partition, position, follows, stored } => write!(
                f,
                "source '{source}' partition {partition}: the batch at position {position} \
                 follows {} but the store is at {}",
                position_text(*follows),
                position_text(*stored)
            ),
            Error::PartialRedelivery { source, partition, position, stored, ahead } => write!(
                f,
                "source '{source}' partition {partition}: the batch's position {position} was \
                 reached already (the store is at {stored}) but not its position of {ahead}"
            ),
            Error::EventFailed { source, partition, position, reason } => write!(
                f,
                "the event of source '{source}' partition {partition} at position {position} \
                 failed: {reason}"
            ),
            Error::SourceFailed { source, reason } => {
                write!(f, "source '{source}' failed: {reason}")
            }
            _ => Ok(()),
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
