//! The one error type of the crate.

use crate::base::version::Lsn;
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
    /// ones the store recorded for it, or with a key or value type whose serde shape
    /// changed without a new schema version. Nothing was written.
    SchemaMismatch {
        /// The view's name.
        view: String,
        /// What the store holds: key type, value type and schema version.
        stored: String,
        /// What the caller asked for.
        requested: String,
        /// How the key and value shapes changed, one line each
        /// (`value Profile.address.city: u32 → String`); empty when the shapes are the
        /// same or one of them is unknown.
        changes: Vec<String>,
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
    /// Stored bytes could not be decoded: the record of this key was written with
    /// another key or value type (usually a schema change), or is corrupt. Found by a
    /// batch that reads the record, it fails that batch; found when a view is opened,
    /// it fails that open. Either way the rest of the store goes on
    /// ([`ErrorKind::Batch`]).
    Decode {
        /// The view's name.
        view: String,
        /// The key, as its `Debug` form (or its bytes, when the key itself is unreadable).
        key: String,
        /// The codec's error or what was wrong with the record.
        source: Arc<CodecError>,
        /// The name of the type the bytes were decoded as (the view's key or value type,
        /// as the store records it); `None` when the record's own layout was wrong.
        type_name: Option<String>,
        /// The view's schema version when `type_name` is given.
        schema_version: Option<u32>,
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
    /// A line of a JSON-lines import is malformed or does not fit the view's stored
    /// shape (`line` 0: the view itself cannot be imported into). Nothing was imported.
    Import {
        /// The store file.
        file: PathBuf,
        /// The view imported into.
        view: String,
        /// The line, counted from 1.
        line: u64,
        /// What is wrong with it.
        reason: String,
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
    /// A feed reader asked for groups the change feed no longer holds (its retention
    /// pruned them). Resync: read a [`Snapshot`](crate::Snapshot) taken at or after
    /// `readable_after`, then follow the feed after the snapshot's LSN.
    FeedPruned {
        /// Where the reader stood: it asked for the groups after this LSN.
        after: Lsn,
        /// The feed holds every group after this LSN.
        readable_after: Lsn,
    },
    /// A replicated group could not be applied, or a write met a store in the wrong
    /// role: an ordinary batch on a store opened as a replica
    /// ([`StoreBuilder::replica`](crate::StoreBuilder::replica)), a replicated group on a
    /// store that is not one, a change for a view the replicator does not hold, or a
    /// live change without its value. Nothing was written.
    Replication {
        /// The file of the store.
        file: PathBuf,
        /// The view concerned, when there is one.
        view: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// A view management call ([`Store::drop_view`](crate::Store::drop_view),
    /// [`clear_view`](crate::Store::clear_view), [`rename_view`](crate::Store::rename_view))
    /// named a view the file does not hold. Nothing was changed.
    UnknownView {
        /// The name that was asked for.
        view: String,
    },
    /// [`Store::rename_view`](crate::Store::rename_view) was asked for a new name that a
    /// view of the file already has. Nothing was changed.
    ViewExists {
        /// The name that is taken.
        view: String,
    },
    /// A view is open in this process (a `View` handle was made for it by this `Store`),
    /// and the operation would leave that handle pointing at nothing: drop and rename
    /// refuse it. Nothing was changed. Reopen the store without opening the view first.
    ViewOpen {
        /// The view's name.
        view: String,
        /// The operation that was refused: `"drop"`, `"rename"`, `"swap"` or `"migrate"`.
        operation: &'static str,
    },
    /// A migration of a view's stored values ([`Store::view_migrated`](crate::Store::view_migrated))
    /// could not run or could not finish: the chain does not fit the definition or the
    /// stored version, a step failed or panicked on a record, or a view left half
    /// migrated was opened without a migration. A migration that fails before its first
    /// commit changed nothing; one that fails later leaves the view marked as migrating,
    /// and opening it again with a migration resumes where it stopped.
    Migration {
        /// The view's name.
        view: String,
        /// The schema version step that failed, `(from, to)`, when one did.
        step: Option<(u32, u32)>,
        /// The record it failed on, rendered, when there is one.
        key: Option<String>,
        /// What went wrong.
        reason: String,
    },
    /// [`Store::bulk_load`](crate::Store::bulk_load) refused its input or its view:
    /// the view holds records or tombstones already, the view has sources, or two
    /// records of the input have the same key. Nothing was written.
    BulkLoad {
        /// The view's name.
        view: String,
        /// The record concerned, rendered, when there is one.
        key: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// [`Store::backup`](crate::Store::backup) was given a path that already exists: a
    /// backup never overwrites a file. Nothing was written there.
    FileExists {
        /// The path that exists.
        file: PathBuf,
    },
    /// The file holds a table that this build does not know how to copy, so a backup
    /// would be incomplete: the backup was refused, and nothing was written at its path.
    UnknownTable {
        /// The store's file.
        file: PathBuf,
        /// The table's name.
        table: String,
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
    /// The journal of a store in [`Durability::Journal`](crate::Durability::Journal)
    /// mode is damaged before its end: a frame that fails its checksum (or is cut short,
    /// or a group missing) followed by a frame of a later group. A damaged *last* frame
    /// is a crash during an append, which was never acknowledged, and is not an error.
    /// Nothing was changed; the store does not open.
    JournalCorrupt {
        /// The journal file.
        file: PathBuf,
        /// The offset in it of the damaged frame.
        offset: u64,
        /// What is wrong there.
        reason: String,
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
        Error::Decode {
            view: view.to_owned(),
            key,
            source: Arc::new(source.into()),
            type_name: None,
            schema_version: None,
        }
    }

    /// A [`Error::Decode`] of bytes that do not decode as `type_name`, the view's key or
    /// value type at `schema_version`.
    pub(crate) fn decode_as(
        view: &str,
        key: String,
        source: impl Into<CodecError>,
        type_name: &str,
        schema_version: u32,
    ) -> Self {
        Error::Decode {
            view: view.to_owned(),
            key,
            source: Arc::new(source.into()),
            type_name: Some(type_name.to_owned()),
            schema_version: Some(schema_version),
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
