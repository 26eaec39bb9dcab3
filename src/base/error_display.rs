//! How each [`Error`] reads: what failed and where (view, key, index, file, source,
//! partition).

use crate::base::error::Error;
use std::fmt;

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
            Error::SchemaMismatch { view, stored, requested, changes } => {
                write!(f, "view '{view}' is stored as {stored} but was opened as {requested}")?;
                if !changes.is_empty() {
                    write!(f, "; the shape changed: {}", changes.join("; "))?;
                }
                Ok(())
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
            Error::Decode { .. } => self.fmt_decode(f),
            Error::UpdatePanicked { view, key, message } => {
                write!(f, "update closure for view '{view}', key {key} panicked: {message}")
            }
            Error::UniqueViolation { view, index, key, holder, refused, .. } => write!(
                f,
                "unique index '{index}' of view '{view}' already has a record for key {key} \
                 (record {holder}); record {refused} cannot have it too"
            ),
            Error::IndexPanicked { .. }
            | Error::IndexKeyTooLarge { .. }
            | Error::InvalidIndex { .. } => self.fmt_index_error(f),
            Error::AlreadyOpen { file } => write!(
                f,
                "{} is already open, by another Store in this process or by another process",
                file.display()
            ),
            Error::InvalidPosition { .. }
            | Error::PositionGap { .. }
            | Error::PartialRedelivery { .. }
            | Error::EventFailed { .. }
            | Error::SourceFailed { .. }
            | Error::FeedPruned { .. }
            | Error::Replication { .. } => self.fmt_source_error(f),
            Error::WriterReentry { .. }
            | Error::UnknownView { .. }
            | Error::ViewExists { .. }
            | Error::ViewOpen { .. }
            | Error::Migration { .. }
            | Error::BulkLoad { .. }
            | Error::FileExists { .. }
            | Error::UnknownTable { .. }
            | Error::Import { .. } => self.fmt_manage_error(f),
            Error::Full => f.write_str("the write queue is full"),
            Error::Closed => f.write_str("the store is closed"),
            Error::Poisoned { file, reason } => {
                write!(f, "store {} is read-only after a writer failure: {reason}", file.display())
            }
            Error::Storage { file, during, source } => {
                write!(f, "storage error in {} while {during}: {source}", file.display())
            }
            Error::JournalCorrupt { file, offset, reason } => {
                write!(f, "journal {} is damaged at offset {offset}: {reason}", file.display())
            }
            Error::Io { file, source } => write!(f, "I/O error on {}: {source}", file.display()),
        }
    }
}

impl Error {
    /// Display of the errors of view management and backup.
    fn fmt_manage_error(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::WriterReentry { file } => write!(
                f,
                "store {} was called from inside its own writer (an update closure, \
                 extractor or codec) in a way that would wait for that writer forever",
                file.display()
            ),
            Error::Import { file, view, line: 0, reason } => {
                write!(f, "cannot import into view '{view}' of {}: {reason}", file.display())
            }
            Error::Import { file, view, line, reason } => write!(
                f,
                "import into view '{view}' of {}, line {line}: {reason}; nothing was imported",
                file.display()
            ),
            Error::UnknownView { view } => write!(f, "the store holds no view named '{view}'"),
            Error::ViewExists { view } => {
                write!(f, "the store already holds a view named '{view}'")
            }
            Error::ViewOpen { view, operation } => write!(
                f,
                "view '{view}' is open in this process: {operation} refuses an open view, \
                 whose handles would point at nothing"
            ),
            Error::Migration { view, step, key, reason } => {
                write!(f, "migrating view '{view}'")?;
                if let Some((from, to)) = step {
                    write!(f, ", step {from} → {to}")?;
                }
                if let Some(key) = key {
                    write!(f, ", key {key}")?;
                }
                write!(f, ": {reason}")
            }
            Error::BulkLoad { view, key: Some(key), reason } => {
                write!(f, "bulk load of view '{view}', key {key}: {reason}; nothing was loaded")
            }
            Error::BulkLoad { view, key: None, reason } => {
                write!(f, "bulk load of view '{view}': {reason}; nothing was loaded")
            }
            Error::FileExists { file } => {
                write!(f, "{} exists: a backup never overwrites a file", file.display())
            }
            Error::UnknownTable { file, table } => write!(
                f,
                "{} holds table '{table}', which this build cannot copy: no backup was made",
                file.display()
            ),
            _ => Ok(()),
        }
    }

    /// Display of a value or key that does not decode.
    fn fmt_decode(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Decode { view, key, source, type_name: Some(type_name), schema_version } => {
                let version = schema_version.map_or_else(String::new, |v| format!(" {v}"));
                write!(
                    f,
                    "the stored bytes of view '{view}', key {key} do not match the current \
                     type {type_name} at schema version{version} ({source}): this is usually \
                     a schema change rather than corruption; raise the view's schema_version \
                     (and migrate or rebuild the view)"
                )
            }
            Error::Decode { view, key, source, type_name: None, .. } => {
                write!(f, "corrupt record in view '{view}', key {key}: {source}")
            }
            _ => Ok(()),
        }
    }

    /// Display of the errors of an index's keys.
    fn fmt_index_error(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
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
            _ => Ok(()),
        }
    }

    /// Display of the errors of source positions, projectors and the change feed.
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
            Error::Replication { file, view: Some(view), reason } => {
                write!(f, "store {}: replicating view '{view}': {reason}", file.display())
            }
            Error::Replication { file, view: None, reason } => {
                write!(f, "store {}: replication: {reason}", file.display())
            }
            Error::FeedPruned { after, readable_after } => write!(
                f,
                "the change feed after {after} was pruned: it holds the groups after \
                 {readable_after} only; read a snapshot taken at or after {readable_after}, \
                 then the feed after the snapshot's lsn"
            ),
            _ => Ok(()),
        }
    }
}
