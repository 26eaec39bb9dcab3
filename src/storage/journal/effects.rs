//! What one group did to the file, as the journal keeps it: the bytes it left in each
//! table, not the operations that made them, so that replaying it is deterministic and
//! idempotent (every entry sets a key to its final bytes or removes it).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes of a key or a record in a frame. Encoded as bincode encodes a `Vec<u8>` (its
/// length, then the bytes), but written and read as one run of bytes rather than one
/// byte at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Bytes(pub(crate) Vec<u8>);

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Bytes;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }

            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }

            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Bytes, A::Error> {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                Ok(Bytes(bytes))
            }
        }
        // Borrowed from the frame: the length is checked against the bytes that are
        // there before anything is allocated.
        deserializer.deserialize_bytes(Visit)
    }
}

/// The writes of one group to one table, in the order they were made (a later entry
/// of a key stands).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TableEffects<V> {
    /// The redb table's name (`view.<name>` or `index.<view>/<index>`).
    pub(crate) table: String,
    /// Key bytes and the value to store, `None` to remove the key.
    pub(crate) entries: Vec<(Bytes, Option<V>)>,
}

/// Everything one committed group wrote, in one journal frame.
///
/// Invariant: applying these effects to the file as it stood after group `follows`
/// gives the file as it stood after group `lsn`; applying them again changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GroupEffects {
    /// The group's LSN, recorded in the meta table by the replay.
    pub(crate) lsn: u64,
    /// Records of views: encoded record bytes (live or tombstone), or removal (a purge).
    pub(crate) records: Vec<TableEffects<Bytes>>,
    /// Index entries: the index key's length, or removal.
    pub(crate) indexes: Vec<TableEffects<u32>>,
    /// Source positions reached: source, partition, position.
    pub(crate) positions: Vec<(String, u32, u64)>,
    /// The group's change-feed row, encoded, if it had one.
    pub(crate) feed_row: Option<Bytes>,
    /// The highest feed LSN the group pruned, if it pruned any.
    pub(crate) feed_pruned: Option<u64>,
    /// The LSN of the group before it: `lsn - 1`, or less for a group replicated from
    /// a primary whose feed skipped LSNs.
    pub(crate) follows: u64,
}

impl GroupEffects {
    /// The effects of a group, before it is given its LSN.
    pub(crate) fn new() -> Self {
        GroupEffects::default()
    }

    /// Notes writes to a view's record table.
    pub(crate) fn records(&mut self, table: &str, entries: Vec<(Bytes, Option<Bytes>)>) {
        if !entries.is_empty() {
            self.records.push(TableEffects { table: table.to_owned(), entries });
        }
    }

    /// Notes writes to an index table.
    pub(crate) fn index(&mut self, table: &str, entries: Vec<(Bytes, Option<u32>)>) {
        if !entries.is_empty() {
            self.indexes.push(TableEffects { table: table.to_owned(), entries });
        }
    }

    /// The payload of a frame.
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Encoding owned plain data into a `Vec` cannot fail; an empty payload would
        // fail the decode and the replay would say so.
        bincode::serde::encode_to_vec(self, bincode::config::standard()).unwrap_or_default()
    }

    /// Reads a frame's payload back. `Err` with the reason when the bytes are not one.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let config = bincode::config::standard().with_limit::<{ 1 << 32 }>();
        match bincode::serde::decode_from_slice::<GroupEffects, _>(bytes, config) {
            Ok((effects, used)) if used == bytes.len() => Ok(effects),
            Ok((_, used)) => Err(format!("{} bytes left over after the group", bytes.len() - used)),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Bytes, GroupEffects};

    #[test]
    fn round_trips() {
        let mut effects = GroupEffects::new();
        effects.lsn = 7;
        let bytes = |b: &[u8]| Bytes(b.to_vec());
        effects.records("view.v", vec![(bytes(b"k"), Some(bytes(b"r"))), (bytes(b"j"), None)]);
        effects.index("index.v/i", vec![(bytes(b"ik"), Some(2))]);
        effects.positions.push(("s".into(), 1, 9));
        effects.feed_row = Some(bytes(&[1, 2]));
        effects.feed_pruned = Some(3);
        effects.follows = 4;
        assert_eq!(GroupEffects::decode(&effects.encode()), Ok(effects));
        assert!(GroupEffects::decode(&[0xFF; 3]).is_err());
    }

    #[test]
    fn a_length_past_the_payload_is_an_error() {
        // Group 9, one table "v" with one entry whose key claims 0xF000_0000 bytes.
        let payload = [9, 1, 1, b'v', 1, 252, 0, 0, 0, 0xF0];
        assert!(GroupEffects::decode(&payload).is_err());
    }

    /// A table's entries as plain `Vec<u8>`s.
    type PlainTable<V> = (String, Vec<(Vec<u8>, Option<V>)>);

    /// The frames written before keys and records were encoded as runs of bytes: the
    /// same fields with plain `Vec<u8>`s.
    #[derive(serde::Serialize)]
    struct Plain {
        lsn: u64,
        records: Vec<PlainTable<Vec<u8>>>,
        indexes: Vec<PlainTable<u32>>,
        positions: Vec<(String, u32, u64)>,
        feed_row: Option<Vec<u8>>,
        feed_pruned: Option<u64>,
        follows: u64,
    }

    #[test]
    fn reads_and_writes_the_encoding_of_plain_byte_vectors() {
        let long: Vec<u8> = (0..=255).collect();
        let plain = Plain {
            lsn: 9,
            records: vec![("view.v".into(), vec![(b"k".to_vec(), Some(long.clone()))])],
            indexes: vec![("index.v/i".into(), vec![(long.clone(), None)])],
            positions: vec![],
            feed_row: Some(long.clone()),
            feed_pruned: None,
            follows: 8,
        };
        let old =
            bincode::serde::encode_to_vec(&plain, bincode::config::standard()).expect("encodable");
        let mut effects = GroupEffects::new();
        effects.lsn = 9;
        effects.follows = 8;
        effects.feed_row = Some(Bytes(long.clone()));
        effects.records("view.v", vec![(Bytes(b"k".to_vec()), Some(Bytes(long.clone())))]);
        effects.index("index.v/i", vec![(Bytes(long), None)]);
        assert_eq!(effects.encode(), old);
        assert_eq!(GroupEffects::decode(&old), Ok(effects));
    }
}
