//! What one group did to the file, as the journal keeps it: the bytes it left in each
//! table, not the operations that made them, so that replaying it is deterministic and
//! idempotent (every entry sets a key to its final bytes or removes it).

use serde::{Deserialize, Serialize};

/// The writes of one group to one table, in the order they were made (a later entry
/// of a key stands).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TableEffects<V> {
    /// The redb table's name (`view.<name>` or `index.<view>/<index>`).
    pub(crate) table: String,
    /// Key bytes and the value to store, `None` to remove the key.
    pub(crate) entries: Vec<(Vec<u8>, Option<V>)>,
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
    pub(crate) records: Vec<TableEffects<Vec<u8>>>,
    /// Index entries: the index key's length, or removal.
    pub(crate) indexes: Vec<TableEffects<u32>>,
    /// Source positions reached: source, partition, position.
    pub(crate) positions: Vec<(String, u32, u64)>,
    /// The group's change-feed row, encoded, if it had one.
    pub(crate) feed_row: Option<Vec<u8>>,
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
    pub(crate) fn records(&mut self, table: &str, entries: Vec<(Vec<u8>, Option<Vec<u8>>)>) {
        if !entries.is_empty() {
            self.records.push(TableEffects { table: table.to_owned(), entries });
        }
    }

    /// Notes writes to an index table.
    pub(crate) fn index(&mut self, table: &str, entries: Vec<(Vec<u8>, Option<u32>)>) {
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
    use super::GroupEffects;

    #[test]
    fn round_trips() {
        let mut effects = GroupEffects::new();
        effects.lsn = 7;
        effects
            .records("view.v", vec![(b"k".to_vec(), Some(b"r".to_vec())), (b"j".to_vec(), None)]);
        effects.index("index.v/i", vec![(b"ik".to_vec(), Some(2))]);
        effects.positions.push(("s".into(), 1, 9));
        effects.feed_row = Some(vec![1, 2]);
        effects.feed_pruned = Some(3);
        effects.follows = 4;
        assert_eq!(GroupEffects::decode(&effects.encode()), Ok(effects));
        assert!(GroupEffects::decode(&[0xFF; 3]).is_err());
    }
}
