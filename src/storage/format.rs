//! The on-disk format: table definitions, the meta table and the record layout.

use crate::base::error::{Error, Result};
use crate::base::type_names::strip_paths;
use crate::base::version::Version;
use crate::storage::sources::SourceVersions;
use redb::TableDefinition;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The newest file format version this build reads.
pub(crate) const FORMAT_VERSION: u32 = 3;
/// The format version of a new store, and of every store without a view with sources:
/// older builds open them.
pub(crate) const FORMAT_PLAIN: u32 = 1;
/// The format version of a store once it has a view with sources, whose records
/// (tags 3 and 4) older builds cannot read: they refuse the file as a newer format.
pub(crate) const FORMAT_SOURCES: u32 = 2;
/// The format version of a store once a journal salt is stored in it (journal mode):
/// its journal may then hold salted frames, which older builds would take for a torn
/// log and drop, acknowledged groups with them. They refuse the file as a newer format
/// instead.
pub(crate) const FORMAT_SALTED_JOURNAL: u32 = 3;

/// The first bytes of every redb file.
pub(crate) const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// Store-wide facts: `format` (u32 LE) and `lsn` (u64 LE).
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("viewstore.meta");
/// One row per view: its name and its [`ViewMeta`].
pub(crate) const VIEWS: TableDefinition<&str, &[u8]> = TableDefinition::new("viewstore.views");

/// One row per index: `view/index` and its [`IndexMeta`].
pub(crate) const INDEXES: TableDefinition<&str, &[u8]> = TableDefinition::new("viewstore.indexes");

/// One row per source partition: `(source, partition)` and the position the store has
/// reached in it, written in the same transaction as the batch that reached it.
pub(crate) const POSITIONS: TableDefinition<(&str, u32), u64> =
    TableDefinition::new("viewstore.positions");
/// One row per view with sources: its name and its source names in id order
/// ([`encode_sources`]). Kept apart from [`VIEWS`] so that a [`ViewMeta`]'s bytes stay
/// what older builds wrote and read; created with the first view with sources.
pub(crate) const SOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("viewstore.sources");

pub(crate) const META_FORMAT: &str = "format";
pub(crate) const META_LSN: &str = "lsn";
/// The salt of the journal's frames written since the last checkpoint (journal mode):
/// 8 bytes, little-endian; absent in files from before salts were stored.
pub(crate) const META_JOURNAL_SALT: &str = "journal_salt";

/// Whether the file has table `name`: a catalog table that not every file has (view
/// sources, shapes, migrations) is looked up this way, since opening it in a write
/// transaction would create it.
pub(crate) fn has_table(txn: &redb::WriteTransaction, name: &str, file: &Path) -> Result<bool> {
    use redb::TableHandle;
    let tables = txn.list_tables().map_err(Error::at(file, "listing tables"))?;
    Ok(tables.into_iter().any(|t| t.name() == name))
}

/// The format version the meta table `meta` holds; `None` when it holds none, or not 4
/// bytes.
pub(crate) fn format_version(
    meta: &impl redb::ReadableTable<&'static str, &'static [u8]>,
    file: &Path,
) -> Result<Option<u32>> {
    let stored = meta.get(META_FORMAT).map_err(Error::at(file, "reading the format version"))?;
    Ok(stored.and_then(|v| <[u8; 4]>::try_from(v.value()).ok()).map(u32::from_le_bytes))
}

/// Raises the format version in `meta` to `to` when it is lower (or missing): the file
/// now holds what builds that read only lower formats cannot read, and they refuse it.
pub(crate) fn raise_format(
    meta: &mut redb::Table<'_, &'static str, &'static [u8]>,
    to: u32,
    file: &Path,
) -> Result<()> {
    if format_version(meta, file)?.is_none_or(|f| f < to) {
        meta.insert(META_FORMAT, to.to_le_bytes().as_slice())
            .map_err(Error::at(file, "raising the format version"))?;
    }
    Ok(())
}

/// A catalog row with a leading layout byte: `[layout][bincode (standard) of value]`.
pub(crate) fn encode_row<T: Serialize>(layout: u8, value: &T) -> Vec<u8> {
    let mut out = vec![layout];
    // Encoding plain data into a Vec cannot fail.
    let _ = bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard());
    out
}

/// The value of a row written by [`encode_row`] with `layout`, decoding at most
/// `LIMIT` bytes of containers; `None` for another layout (a newer build's), trailing
/// bytes, or bytes that do not decode.
pub(crate) fn decode_row<T: serde::de::DeserializeOwned, const LIMIT: usize>(
    layout: u8,
    bytes: &[u8],
) -> Option<T> {
    let (&found, rest) = bytes.split_first()?;
    if found != layout {
        return None;
    }
    let config = bincode::config::standard().with_limit::<LIMIT>();
    let (value, read) = bincode::serde::decode_from_slice(rest, config).ok()?;
    (read == rest.len()).then_some(value)
}

/// The name of the redb table that holds a view's records.
pub(crate) fn view_table_name(view: &str) -> String {
    format!("view.{view}")
}

pub(crate) fn view_table(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

/// The name of the redb table that holds an index's entries.
pub(crate) fn index_table_name(view: &str, index: &str) -> String {
    format!("index.{view}/{index}")
}

/// The key of an index in [`INDEXES`].
pub(crate) fn index_meta_key(view: &str, index: &str) -> String {
    format!("{view}/{index}")
}

/// An index table: the index key then the primary key, mapped to the index key's
/// length.
pub(crate) fn index_table(name: &str) -> TableDefinition<'_, &'static [u8], u32> {
    TableDefinition::new(name)
}

/// What the store records about an index; a change in any field rebuilds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexMeta {
    pub(crate) unique: bool,
    pub(crate) version: u32,
    pub(crate) key_type: String,
}

impl IndexMeta {
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, bincode::config::standard()).unwrap_or_default()
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bincode::serde::decode_from_slice(bytes, bincode::config::standard()).ok().map(|(m, _)| m)
    }
}

/// What the store records about a view, compared at every open of the view. Type names
/// are recorded without module paths (`Profile`, `Vec<Item>`); files written before
/// that hold full `std::any::type_name`s, which [`ViewMeta::normalized`] strips.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ViewMeta {
    pub(crate) key_type: String,
    pub(crate) value_type: String,
    pub(crate) codec: String,
    pub(crate) schema_version: u32,
}

impl ViewMeta {
    /// The same meta with module paths stripped from its type and codec names: what a
    /// stored meta of an older file is compared as.
    pub(crate) fn normalized(&self) -> ViewMeta {
        ViewMeta {
            key_type: strip_paths(&self.key_type),
            value_type: strip_paths(&self.value_type),
            codec: strip_paths(&self.codec),
            schema_version: self.schema_version,
        }
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "key {}, value {} ({}), schema version {}",
            self.key_type, self.value_type, self.codec, self.schema_version
        )
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, bincode::config::standard()).unwrap_or_default()
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bincode::serde::decode_from_slice(bytes, bincode::config::standard()).ok().map(|(m, _)| m)
    }
}

/// The source names of a view, as [`SOURCES`] stores them.
pub(crate) fn encode_sources(names: &[String]) -> Vec<u8> {
    bincode::serde::encode_to_vec(names, bincode::config::standard()).unwrap_or_default()
}

/// The source names stored by [`encode_sources`]; `None` when unreadable.
pub(crate) fn decode_sources(bytes: &[u8]) -> Option<Vec<String>> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard()).ok().map(|(n, _)| n)
}

const TAG_LIVE: u8 = 1;
const TAG_TOMBSTONE: u8 = 2;
const TAG_SOURCED_LIVE: u8 = 3;
const TAG_SOURCED_TOMBSTONE: u8 = 4;
const HEADER: usize = 9;

/// A stored record, borrowed from its bytes. A view without sources stores
/// `[tag 1 or 2][version u64 LE][value bytes]`; a view with sources
/// `[tag 3 or 4][per-source versions][value bytes]` (`storage::sources`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    Live {
        version: Version,
        value: &'a [u8],
    },
    Tombstone {
        version: Version,
    },
    /// A live record of a view with sources; it has no deleter.
    SourcedLive {
        sources: SourceVersions,
        value: &'a [u8],
    },
    /// A tombstone of a view with sources; its deleter's version is present.
    SourcedTombstone {
        sources: SourceVersions,
    },
}

impl<'a> Record<'a> {
    /// The record's version: for a view with sources, the largest of its sources'.
    pub(crate) fn version(&self) -> Version {
        match self {
            Record::Live { version, .. } | Record::Tombstone { version } => *version,
            Record::SourcedLive { sources, .. } | Record::SourcedTombstone { sources } => {
                sources.latest().unwrap_or_default()
            }
        }
    }

    /// The version and value bytes of a live record; `None` for a tombstone.
    /// Whether the record carries per-source versions (a record of a view with sources).
    pub(crate) fn has_sources(&self) -> bool {
        matches!(self, Record::SourcedLive { .. } | Record::SourcedTombstone { .. })
    }

    pub(crate) fn live(&self) -> Option<(Version, &'a [u8])> {
        match self {
            Record::Live { version, value } => Some((*version, value)),
            Record::SourcedLive { value, .. } => Some((self.version(), value)),
            Record::Tombstone { .. } | Record::SourcedTombstone { .. } => None,
        }
    }

    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, String> {
        if let Some((&tag, rest)) = bytes.split_first()
            && (tag == TAG_SOURCED_LIVE || tag == TAG_SOURCED_TOMBSTONE)
        {
            return Self::decode_sourced(tag, rest);
        }
        if bytes.len() < HEADER {
            return Err(format!("record of {} bytes is shorter than its header", bytes.len()));
        }
        let mut v = [0u8; 8];
        v.copy_from_slice(&bytes[1..HEADER]);
        let version = u64::from_le_bytes(v);
        match bytes[0] {
            TAG_LIVE => Ok(Record::Live { version, value: &bytes[HEADER..] }),
            TAG_TOMBSTONE if bytes.len() == HEADER => Ok(Record::Tombstone { version }),
            tag => Err(format!("unknown record tag {tag}")),
        }
    }

    fn decode_sourced(tag: u8, rest: &'a [u8]) -> Result<Self, String> {
        let (sources, value) = SourceVersions::decode(rest)?;
        match (tag, sources.deleter()) {
            (TAG_SOURCED_LIVE, None) => Ok(Record::SourcedLive { sources, value }),
            (TAG_SOURCED_LIVE, Some(_)) => Err("live record with a deleter".into()),
            (_, None) => Err("tombstone without a deleter".into()),
            (_, Some(deleter)) if sources.get(deleter).is_none() => {
                Err(format!("tombstone deleted by source {deleter}, which has no version"))
            }
            (_, Some(_)) if !value.is_empty() => {
                Err(format!("tombstone with {} value bytes", value.len()))
            }
            (_, Some(_)) => Ok(Record::SourcedTombstone { sources }),
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the start of a live record of `version` to `out`, after what it holds:
    /// its value's bytes, appended next, complete it, as [`Record::Live`] encodes. Many
    /// records can so share one buffer.
    pub(crate) fn append_live_header(version: Version, out: &mut Vec<u8>) {
        out.push(TAG_LIVE);
        out.extend_from_slice(&version.to_le_bytes());
    }

    /// Encodes the record into `out`, replacing what it held: a writer that stores many
    /// records reuses one buffer instead of allocating one per record.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        out.clear();
        match self {
            Record::Live { version, value } => {
                out.reserve(HEADER + value.len());
                out.push(TAG_LIVE);
                out.extend_from_slice(&version.to_le_bytes());
                out.extend_from_slice(value);
            }
            Record::Tombstone { version } => {
                out.push(TAG_TOMBSTONE);
                out.extend_from_slice(&version.to_le_bytes());
            }
            Record::SourcedLive { sources, value } => {
                encode_sourced(TAG_SOURCED_LIVE, sources, value, out);
            }
            Record::SourcedTombstone { sources } => {
                encode_sourced(TAG_SOURCED_TOMBSTONE, sources, &[], out);
            }
        }
    }
}

fn encode_sourced(tag: u8, sources: &SourceVersions, value: &[u8], out: &mut Vec<u8>) {
    out.reserve(1 + sources.encoded_len() + value.len());
    out.push(tag);
    sources.encode_into(out);
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::Record;
    use crate::storage::sources::SourceVersions;

    #[test]
    fn a_live_header_then_the_value_is_the_live_record_after_what_was_there() {
        let mut rows = b"row before".to_vec();
        Record::append_live_header(7, &mut rows);
        rows.extend_from_slice(b"value");
        let (before, row) = rows.split_at(b"row before".len());
        assert_eq!(before, b"row before");
        assert_eq!(row, Record::Live { version: 7, value: b"value" }.encode());
        assert_eq!(Record::decode(row), Ok(Record::Live { version: 7, value: b"value" }));
    }

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let live = Record::Live { version: 7, value: b"abc" };
        assert_eq!(live.encode(), [&[1u8][..], &7u64.to_le_bytes(), b"abc"].concat());
        assert_eq!(Record::decode(&live.encode()), Ok(live));
        let tomb = Record::Tombstone { version: 9 };
        assert_eq!(Record::decode(&tomb.encode()), Ok(tomb));
        assert!(Record::decode(&[1, 2]).is_err());
        assert!(Record::decode(&[7; 12]).is_err());
    }

    #[test]
    fn sourced_records_round_trip_and_reject_garbage() {
        let mut sources = SourceVersions::default();
        sources.set(1, 4);
        sources.set(0, 9);
        let live = Record::SourcedLive { sources: sources.clone(), value: b"abc" };
        let bytes = live.encode();
        assert_eq!(bytes[..3], [3, 2, 0xFF]);
        assert_eq!(Record::decode(&bytes), Ok(live.clone()));
        assert_eq!(live.version(), 9);
        assert_eq!(live.live(), Some((9, &b"abc"[..])));
        sources.set_deleter(Some(1));
        let tomb = Record::SourcedTombstone { sources: sources.clone() };
        assert_eq!(Record::decode(&tomb.encode()), Ok(tomb.clone()));
        assert_eq!((tomb.version(), tomb.live()), (9, None));

        let refused = |bytes: &[u8], reason: &str| {
            let err = Record::decode(bytes).expect_err("malformed");
            assert!(err.contains(reason), "{bytes:?}: {err:?} should say {reason:?}");
        };
        // A live record with a deleter; a tombstone without one, or with a value.
        let with_deleter = [&[3u8][..], &tomb.encode()[1..]].concat();
        refused(&with_deleter, "live record with a deleter");
        let no_deleter = [&[4u8][..], &bytes[1..bytes.len() - 3]].concat();
        refused(&no_deleter, "tombstone without a deleter");
        refused(&[tomb.encode(), b"x".to_vec()].concat(), "tombstone with 1 value bytes");
        // A deleter that never wrote the record.
        let mut only_zero = SourceVersions::default();
        only_zero.set(0, 1);
        only_zero.set(1, 1);
        let mut bytes = Record::SourcedTombstone { sources: only_zero }.encode();
        bytes[2] = 1; // deleter 1 ...
        bytes[3 + 9] = 0; // ... whose entry is absent
        bytes[3 + 9 + 1] = 0;
        refused(&bytes, "no version");
        // Truncated, and bad source headers.
        refused(&[3], "too short for its source header");
        refused(&[3, 1, 0xFF, 1, 0], "too short");
        refused(&[4, 200, 0], "at most 64");
        refused(&[3, 1, 0xFF, 5, 0, 0, 0, 0, 0, 0, 0, 0], "presence byte 5");
    }
}
