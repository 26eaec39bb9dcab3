//! The on-disk format: table definitions, the meta table and the record layout.

use crate::base::version::Version;
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

/// The file format version this build writes and the newest it reads.
pub(crate) const FORMAT_VERSION: u32 = 1;

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

pub(crate) const META_FORMAT: &str = "format";
pub(crate) const META_LSN: &str = "lsn";

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

/// What the store records about a view, compared at every open of the view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ViewMeta {
    pub(crate) key_type: String,
    pub(crate) value_type: String,
    pub(crate) codec: String,
    pub(crate) schema_version: u32,
}

impl ViewMeta {
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

const TAG_LIVE: u8 = 1;
const TAG_TOMBSTONE: u8 = 2;
const HEADER: usize = 9;

/// A stored record, borrowed from its bytes: `[tag][version u64 LE][value bytes]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    Live { version: Version, value: &'a [u8] },
    Tombstone { version: Version },
}

impl<'a> Record<'a> {
    pub(crate) fn version(&self) -> Version {
        match self {
            Record::Live { version, .. } | Record::Tombstone { version } => *version,
        }
    }

    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, String> {
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

    pub(crate) fn encode(&self) -> Vec<u8> {
        let (tag, version, value): (u8, u64, &[u8]) = match self {
            Record::Live { version, value } => (TAG_LIVE, *version, value),
            Record::Tombstone { version } => (TAG_TOMBSTONE, *version, &[]),
        };
        let mut out = Vec::with_capacity(HEADER + value.len());
        out.push(tag);
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(value);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Record;

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let live = Record::Live { version: 7, value: b"abc" };
        assert_eq!(Record::decode(&live.encode()), Ok(live));
        let tomb = Record::Tombstone { version: 9 };
        assert_eq!(Record::decode(&tomb.encode()), Ok(tomb));
        assert!(Record::decode(&[1, 2]).is_err());
        assert!(Record::decode(&[7; 12]).is_err());
    }
}
