//! A bulk load as the writer runs it, with the view's value type erased: the stored
//! records in key order, and the same records decoded, for the view's loader.

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
/// one a record to make and free): each record's encoded key, then its stored bytes,
/// with where each record lies, in key order. A large buffer grows by `realloc`, which
/// glibc serves by remapping its pages rather than copying them; only the pages written
/// are resident.
#[derive(Default)]
pub(crate) struct Rows {
    /// Every record's key and bytes, in the order they were stored (the input's).
    bytes: Vec<u8>,
    /// Where each record lies in `bytes`, in key order.
    rows: Vec<RowAt>,
}

/// Where one record lies in a [`Rows`] buffer: its key at `start..key_end`, its stored
/// bytes at `key_end..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RowAt {
    start: usize,
    key_end: usize,
    end: usize,
}

impl Rows {
    /// Appends a record: `key`, then the bytes `write` appends to the buffer. When
    /// `write` fails, the buffer is as it was.
    pub(crate) fn store<E>(
        &mut self,
        key: &[u8],
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<RowAt, E> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        let key_end = self.bytes.len();
        match write(&mut self.bytes) {
            Ok(()) => Ok(RowAt { start, key_end, end: self.bytes.len() }),
            Err(e) => {
                self.bytes.truncate(start);
                Err(e)
            }
        }
    }

    /// Sets the records' order: `order` lists places [`store`](Rows::store) returned,
    /// in key order.
    pub(crate) fn set_order(&mut self, order: Vec<RowAt>) {
        self.rows = order;
    }

    /// The number of records listed.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Each listed record's key and stored bytes, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.rows.iter().map(|at| {
            let bytes = |range: std::ops::Range<usize>| self.bytes.get(range).unwrap_or_default();
            (bytes(at.start..at.key_end), bytes(at.key_end..at.end))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Rows;

    #[test]
    fn rows_come_back_whole_and_in_listed_order() {
        let mut rows = Rows::default();
        // Rows of many sizes, one of them failing half written, listed in reverse.
        let made: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; usize::from(i) * 1_000]).collect();
        let mut places = Vec::new();
        for (i, row) in made.iter().enumerate() {
            places.push(rows.store(&[i as u8, 0xAB], |out| -> Result<(), ()> {
                out.extend_from_slice(row);
                Ok(())
            }));
            if i == 7 {
                let failed = rows.store(&[0xEE; 3], |out| {
                    out.extend_from_slice(&[0xEE; 100]);
                    Err("refused")
                });
                assert_eq!(failed, Err("refused"));
            }
        }
        let order = places.iter().rev().map(|at| at.expect("stored")).collect();
        rows.set_order(order);
        assert_eq!(rows.len(), made.len());
        for (n, (key, row)) in rows.iter().enumerate() {
            let i = made.len() - 1 - n;
            assert_eq!(key, [i as u8, 0xAB]);
            assert!(row == made[i].as_slice(), "row {i}: {} bytes back", row.len());
        }
        assert!(!rows.bytes.contains(&0xEE), "the failed row's key and bytes are gone");
    }
}
