//! Reading a view's stored records at open into the resident layer's loader: for a
//! large table, in two key ranges read on two threads at once, each with its own read
//! transaction.
//!
//! Reading redb's B-tree is the largest part of loading a view; splitting the key range
//! lets both cores read (and the loaders' workers decode) in parallel. The split point
//! is the midpoint between the first and the last key, so that it costs nothing to
//! find; a skewed key distribution makes the halves uneven, never wrong.

use crate::base::beside::{LOAD_IN_TWO_FROM, beside};
use crate::base::error::{Error, Result};
use crate::schema::registration::{Loader, Registration};
use crate::storage::format::{Record, view_table};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use std::ops::Bound;
use std::path::Path;

/// Pushes the stored records of the view in `table_name` into `loader`; returns how
/// many tombstones the table holds.
pub(crate) fn read_records(
    db: &Database,
    table_name: &str,
    reg: &dyn Registration,
    file: &Path,
    loader: &mut Box<dyn Loader>,
) -> Result<u64> {
    let sourced = !reg.sources().is_empty();
    let view =
        View { name: reg.name(), render_key: reg.render_key(), table: table_name, file, sourced };
    let (split, len) = split_key(db, table_name, file)?;
    let Some(split) = split else {
        // Sized for every record, and each list of gathered index entries (a unique
        // index's) for one entry a record.
        loader.reserve(len);
        return view.read(db, (Bound::Unbounded, Bound::Unbounded), loader.as_mut());
    };
    // Two threads already read and decode: no decoding workers on top.
    loader.decode_inline();
    let mut upper = loader.for_later();
    upper.decode_inline();
    // The lower half's array receives the upper half's records at the end: sized for
    // all of them, neither array grows by copying.
    loader.reserve(len);
    upper.reserve(len - len / 2);
    let upper_range = (Bound::Included(split.as_slice()), Bound::Unbounded);
    let lower_range = (Bound::Unbounded, Bound::Excluded(split.as_slice()));
    let upper_loader = upper.as_mut();
    let view = &view;
    let (upper_read, lower_read) = beside(
        "viewstore-load",
        move || view.read(db, upper_range, upper_loader),
        || view.read(db, lower_range, loader.as_mut()),
    );
    let tombstones = lower_read? + upper_read?;
    loader.append(upper)?;
    Ok(tombstones)
}

/// Where to split the table's key range (`None` to read it on one thread), and its
/// record count.
fn split_key(db: &Database, table_name: &str, file: &Path) -> Result<(Option<Vec<u8>>, usize)> {
    let read = db.begin_read().map_err(Error::at(file, "beginning a read"))?;
    let table =
        read.open_table(view_table(table_name)).map_err(Error::at(file, "opening a view"))?;
    let len = table.len().map_err(Error::at(file, "opening a view"))?;
    let records = usize::try_from(len).unwrap_or(usize::MAX);
    if len < LOAD_IN_TWO_FROM {
        return Ok((None, records));
    }
    let first = table.first().map_err(Error::at(file, "opening a view"))?;
    let last = table.last().map_err(Error::at(file, "opening a view"))?;
    Ok(match (first, last) {
        (Some((first, _)), Some((last, _))) => (midpoint(first.value(), last.value()), records),
        _ => (None, records),
    })
}

/// A key between `first` and `last`: their common prefix, then the midpoint of the next
/// eight bytes of each read as big-endian integers. `None` when they are too close.
fn midpoint(first: &[u8], last: &[u8]) -> Option<Vec<u8>> {
    let common = first.iter().zip(last).take_while(|(a, b)| a == b).count();
    let word = |key: &[u8]| {
        let tail = key.get(common..).unwrap_or_default();
        let mut w = [0u8; 8];
        let n = tail.len().min(8);
        w[..n].copy_from_slice(&tail[..n]);
        u64::from_be_bytes(w)
    };
    let (a, b) = (word(first), word(last));
    if b <= a || b - a < 2 {
        return None;
    }
    let mut key = first[..common].to_vec();
    key.extend_from_slice(&(a + (b - a) / 2).to_be_bytes());
    Some(key)
}

/// What reading a view's table needs to know, shareable with the second thread.
struct View<'a> {
    name: &'a str,
    render_key: fn(&[u8]) -> String,
    table: &'a str,
    file: &'a Path,
    /// Whether the view has sources: its records, and only its, carry per-source
    /// versions. Checked here, once, so that the writer may take a record's state from
    /// the resident layer without reading it again.
    sourced: bool,
}

impl View<'_> {
    fn read(
        &self,
        db: &Database,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        loader: &mut dyn Loader,
    ) -> Result<u64> {
        let file = self.file;
        let read = db.begin_read().map_err(Error::at(file, "beginning a read"))?;
        let table =
            read.open_table(view_table(self.table)).map_err(Error::at(file, "opening a view"))?;
        let mut tombstones = 0;
        for item in table.range::<&[u8]>(range).map_err(Error::at(file, "loading a view"))? {
            let (k, v) = item.map_err(Error::at(file, "loading a view"))?;
            match Record::decode(v.value()) {
                Ok(record) if record.has_sources() != self.sourced => {
                    let reason = if self.sourced {
                        "a record without per-source versions in a view with sources"
                    } else {
                        "a record with per-source versions in a view without sources"
                    };
                    let key = (self.render_key)(k.value());
                    return Err(Error::decode(self.name, key, reason));
                }
                // A record of a view with sources is read at its sources' latest version.
                Ok(record) => {
                    if let Some((version, value)) = record.live() {
                        loader.push(k.value(), version, value)?;
                    } else {
                        tombstones += 1;
                    }
                }
                Err(reason) => {
                    return Err(Error::decode(self.name, (self.render_key)(k.value()), reason));
                }
            }
        }
        loader.pushed_all();
        Ok(tombstones)
    }
}

#[cfg(test)]
mod tests {
    use super::midpoint;

    #[test]
    fn midpoint_lies_between_the_keys() {
        let (a, b) = (3u64.to_be_bytes(), 1_000_003u64.to_be_bytes());
        let mid = midpoint(&a, &b).expect("far apart");
        assert!(a.as_slice() < mid.as_slice() && mid.as_slice() < b.as_slice());
        let (a, b) = (b"user-aaaa".as_slice(), b"user-zzzz".as_slice());
        let mid = midpoint(a, b).expect("far apart");
        assert!(a < mid.as_slice() && mid.as_slice() < b);
        let mid = midpoint(b"abc", b"abd").expect("far apart");
        assert!(b"abc".as_slice() < mid.as_slice() && mid.as_slice() < b"abd".as_slice());
        assert!(midpoint(b"abc", b"abc").is_none());
    }
}
