//! A bulk load as the writer runs it, with the view's value type erased: the stored
//! records in key order, and the same records decoded, for the view's loader.

use crate::keys::KeyBuf;
use std::any::Any;

/// The records of one [`Store::bulk_load`](crate::Store::bulk_load), made ready on the
/// caller's thread.
///
/// Invariants, established by the caller and relied on by the writer: `rows` is sorted
/// by key with no key twice, and `records` (a `Vec<Slot<V>>` of the view's value type)
/// holds the same keys in the same order, each with the version and value its row
/// encodes.
pub(crate) struct BulkLoad {
    /// The view's id in the writer's tables.
    pub(crate) view: usize,
    /// Each record's encoded key and its stored bytes (`storage::format::Record`).
    pub(crate) rows: Rows,
    /// The decoded records, for the resident layer and the index builds.
    pub(crate) records: Box<dyn Any + Send>,
}

/// The stored bytes of a load's records in one buffer (one allocation for the load, not
/// one a record to make and free), with each record's encoded key and where its bytes
/// lie, in key order. A large buffer grows by `realloc`, which glibc serves by remapping
/// its pages rather than copying them; only the pages written are resident.
#[derive(Default)]
pub(crate) struct Rows {
    /// Every record's bytes, in the order they were stored (the input's).
    bytes: Vec<u8>,
    /// Each record's key and the range of `bytes` holding its row, in key order.
    rows: Vec<(KeyBuf, RowAt)>,
}

/// Where a record's row lies in [`Rows`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RowAt {
    start: usize,
    end: usize,
}

impl Rows {
    /// Appends a row with `write`, which appends its bytes to the buffer it is given;
    /// returns where the row lies. On an error from `write` the row's bytes so far are
    /// dropped.
    pub(crate) fn store<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<RowAt, E> {
        let start = self.bytes.len();
        match write(&mut self.bytes) {
            Ok(()) => Ok(RowAt { start, end: self.bytes.len() }),
            Err(e) => {
                self.bytes.truncate(start);
                Err(e)
            }
        }
    }

    /// Lists the record of `key`, stored at `at`; records are listed in key order.
    pub(crate) fn list(&mut self, key: KeyBuf, at: RowAt) {
        self.rows.push((key, at));
    }

    /// Makes room to list `records` records.
    pub(crate) fn reserve(&mut self, records: usize) {
        self.rows.reserve_exact(records);
    }

    /// The number of records listed.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Each listed record's key and stored bytes, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&KeyBuf, &[u8])> {
        self.rows
            .iter()
            .map(|(key, at)| (key, self.bytes.get(at.start..at.end).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::Rows;
    use crate::keys::KeyBuf;

    #[test]
    fn rows_come_back_whole_and_in_listed_order() {
        let mut rows = Rows::default();
        // Rows of many sizes, one of them failing half written, listed in reverse.
        let made: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; usize::from(i) * 1_000]).collect();
        let mut places = Vec::new();
        for (i, row) in made.iter().enumerate() {
            places.push(rows.store(|out| -> Result<(), ()> {
                out.extend_from_slice(row);
                Ok(())
            }));
            if i == 7 {
                let failed = rows.store(|out| {
                    out.extend_from_slice(&[0xEE; 100]);
                    Err("refused")
                });
                assert_eq!(failed, Err("refused"));
            }
        }
        for (i, at) in places.iter().enumerate().rev() {
            rows.list(KeyBuf::from_slice(&[i as u8]), at.expect("stored"));
        }
        assert_eq!(rows.len(), made.len());
        for (n, (key, row)) in rows.iter().enumerate() {
            let i = made.len() - 1 - n;
            assert_eq!(key.as_bytes(), [i as u8]);
            assert!(row == made[i].as_slice(), "row {i}: {} bytes back", row.len());
        }
        assert!(!rows.bytes.contains(&0xEE), "the failed row's bytes are gone");
    }
}
