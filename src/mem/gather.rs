//! An index's entries gathered from a view's records, before they are put in order and
//! laid out: by the index build, or by a view's loader while it decodes the records at
//! open (each record's index keys extracted as soon as its value is decoded, while it is
//! still in cache, in [`ChunkKeys`]).
//!
//! An entry is an index key and its record's position among the view's records, which
//! come in primary-key order: the position orders entries as their primary keys do. A
//! multi index usually has few distinct keys for many records (a city, a tag): its
//! entries are grouped by index key as they come, each group in order as it grows, so
//! that only the distinct keys are sorted later. A unique index, and a multi index
//! whose distinct keys turn out to be many, keep a flat list to sort.

use crate::base::error::Error;
use crate::base::index_kind::IndexKind;
use crate::keys::WideKey;
use std::collections::HashMap;

/// Distinct index keys up to which a multi index's entries stay grouped by key: past
/// this many, the groups (a `Vec` each) are few entries each and the entries are
/// sorted instead. Chosen, not tuned: the benchmark's multi indexes have 500 and 40.
const GROUPED_KEYS_UP_TO: usize = 1 << 14;

/// An entry to sort: its index key and its record's position.
pub(crate) type SortEntry = (WideKey, usize);

/// A multi index's entries grouped by index key: each key's record positions, in
/// record (so primary-key) order.
pub(crate) type Groups = HashMap<WideKey, Vec<usize>, foldhash::fast::RandomState>;

/// An index's entries as they are gathered.
pub(crate) enum Gathered {
    Grouped(Groups),
    Sorted(Vec<SortEntry>),
}

impl Gathered {
    /// No entries yet, for an index of `kind` over about `records` records.
    pub(crate) fn new(kind: IndexKind, records: usize) -> Self {
        match kind {
            IndexKind::Unique => Gathered::Sorted(Vec::with_capacity(records)),
            IndexKind::Multi => Gathered::Grouped(Groups::default()),
        }
    }

    /// Adds the entry of index key `ikey` for the record at `at`, every earlier
    /// record's entries being in already.
    pub(crate) fn add(&mut self, ikey: &[u8], at: usize) {
        match self {
            Gathered::Grouped(groups) => {
                groups.entry(WideKey::from_slice(ikey)).or_default().push(at);
                if groups.len() > GROUPED_KEYS_UP_TO {
                    *self = Gathered::Sorted(ungroup(std::mem::take(groups)));
                }
            }
            Gathered::Sorted(entries) => entries.push((WideKey::from_slice(ikey), at)),
        }
    }

    /// Adds the entries of `later`, gathered from the records after every record of
    /// this one, with their positions counted from `offset`.
    pub(crate) fn append(&mut self, later: Gathered, offset: usize) {
        match (&mut *self, later) {
            (Gathered::Grouped(groups), Gathered::Grouped(later)) => {
                for (ikey, positions) in later {
                    let group = groups.entry(ikey).or_default();
                    group.extend(positions.into_iter().map(|at| at + offset));
                }
                if groups.len() > GROUPED_KEYS_UP_TO {
                    *self = Gathered::Sorted(ungroup(std::mem::take(groups)));
                }
            }
            (Gathered::Sorted(entries), later) => {
                let later = later.into_sorted();
                let sorted = entries.len();
                entries.extend(later.into_iter().map(|(ikey, at)| (ikey, at + offset)));
                if sorted > 0 && entries.get(sorted..).is_some_and(<[SortEntry]>::is_sorted) {
                    // Two sorted runs (each loader sorted its own, on its own thread):
                    // the stable sort merges them in one pass.
                    entries.sort();
                }
            }
            (Gathered::Grouped(groups), later @ Gathered::Sorted(_)) => {
                let mut entries = ungroup(std::mem::take(groups));
                entries.extend(later.into_sorted().into_iter().map(|(k, at)| (k, at + offset)));
                *self = Gathered::Sorted(entries);
            }
        }
    }

    /// Sorts a list of entries (by index key, then position) where they are: a loader
    /// does so on its own thread once every record is in, so that appending the list of
    /// a later loader is a merge.
    pub(crate) fn sort(&mut self) {
        if let Gathered::Sorted(entries) = self {
            entries.sort_unstable();
        }
    }

    /// The entries as a list to sort (in no particular order).
    fn into_sorted(self) -> Vec<SortEntry> {
        match self {
            Gathered::Grouped(groups) => ungroup(groups),
            Gathered::Sorted(entries) => entries,
        }
    }
}

/// The entries of `groups` as entries to sort (in no particular order).
fn ungroup(groups: Groups) -> Vec<SortEntry> {
    let mut entries = Vec::with_capacity(groups.values().map(Vec::len).sum());
    for (ikey, positions) in groups {
        entries.extend(positions.into_iter().map(|at| (ikey.clone(), at)));
    }
    entries
}

/// The index keys of one chunk of records, extracted as each record is decoded: for
/// each index extracted, a [`KeyRun`].
#[derive(Default)]
pub(crate) struct ChunkKeys {
    runs: Vec<KeyRun>,
}

/// One index's keys of a chunk of records, one after the other, each with the record
/// (its position in the chunk) that holds it; or the error of the first record whose
/// keys could not be extracted.
///
/// Invariant: `ends` and `owners` have one element per key; `ends` is ascending, its
/// last element (if any) `bytes.len()`; `owners` is ascending.
#[derive(Default)]
pub(crate) struct KeyRun {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    owners: Vec<u32>,
    failed: Option<Error>,
}

impl ChunkKeys {
    /// Empties the runs (keeping their buffers), and makes `indexes` of them.
    pub(crate) fn reset(&mut self, indexes: usize) {
        self.runs.resize_with(indexes, KeyRun::default);
        for run in &mut self.runs {
            run.bytes.clear();
            run.ends.clear();
            run.owners.clear();
            run.failed = None;
        }
    }

    /// Adds the keys of record `record` (in the chunk; records come in order) for the
    /// index of run `run`: `write` appends each key to the buffer and where it ends to
    /// the list. When it fails, nothing of it is kept and the run holds its error;
    /// after that, the run takes no more keys.
    pub(crate) fn add(
        &mut self,
        run: usize,
        record: u32,
        write: impl FnOnce(&mut Vec<u8>, &mut Vec<usize>) -> Result<(), Error>,
    ) {
        let Some(run) = self.runs.get_mut(run) else {
            debug_assert!(false, "key run {run} of a chunk was never made");
            return;
        };
        if run.failed.is_some() {
            return;
        }
        let (bytes, keys) = (run.bytes.len(), run.ends.len());
        match write(&mut run.bytes, &mut run.ends) {
            Ok(()) => run.owners.resize(run.ends.len(), record),
            Err(e) => {
                run.bytes.truncate(bytes);
                run.ends.truncate(keys);
                run.failed = Some(e);
            }
        }
        debug_assert_eq!(run.ends.len(), run.owners.len());
    }

    /// Adds the keys of every run to `gathered` (one per run, in order), the chunk's
    /// first record being at position `first`; an index whose run failed becomes its
    /// run's error, unless it had failed before (on an earlier record).
    pub(crate) fn gather_into(&mut self, gathered: &mut [Result<Gathered, Error>], first: usize) {
        for (run, gathered) in self.runs.iter_mut().zip(gathered) {
            let Ok(entries) = gathered else { continue };
            if let Some(e) = run.failed.take() {
                *gathered = Err(e);
                continue;
            }
            let mut start = 0;
            for (&end, &owner) in run.ends.iter().zip(&run.owners) {
                if let Some(ikey) = run.bytes.get(start..end) {
                    entries.add(ikey, first + owner as usize);
                }
                start = end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(gathered: Gathered) -> Vec<(Vec<u8>, usize)> {
        let mut entries: Vec<_> =
            gathered.into_sorted().into_iter().map(|(k, at)| (k.as_bytes().to_vec(), at)).collect();
        entries.sort();
        entries
    }

    #[test]
    fn appended_entries_count_from_the_offset() {
        for kind in [IndexKind::Unique, IndexKind::Multi] {
            let mut first = Gathered::new(kind, 0);
            first.add(b"b", 0);
            first.add(b"a", 1);
            let mut later = Gathered::new(kind, 0);
            later.add(b"c", 0);
            later.add(b"a", 1);
            first.append(later, 2);
            let expected = vec![
                (b"a".to_vec(), 1),
                (b"a".to_vec(), 3),
                (b"b".to_vec(), 0),
                (b"c".to_vec(), 2),
            ];
            assert_eq!(sorted(first), expected);
        }
    }

    #[test]
    fn many_distinct_keys_turn_groups_into_a_list() {
        let mut gathered = Gathered::new(IndexKind::Multi, 0);
        for at in 0..=GROUPED_KEYS_UP_TO {
            gathered.add(&(at as u64).to_be_bytes(), at);
        }
        assert!(matches!(gathered, Gathered::Sorted(_)));
        let mut grouped = Gathered::new(IndexKind::Multi, 0);
        grouped.add(b"x", 0);
        grouped.append(gathered, 1);
        assert!(matches!(grouped, Gathered::Sorted(_)));
        assert_eq!(sorted(grouped).len(), GROUPED_KEYS_UP_TO + 2);
    }

    #[test]
    fn a_failed_run_keeps_its_first_error_and_no_keys() {
        let mut chunk = ChunkKeys::default();
        chunk.reset(2);
        let fail = |reason: &str| Error::decode("v", "k".into(), reason);
        chunk.add(0, 0, |bytes, ends| {
            bytes.extend_from_slice(b"k0");
            ends.push(bytes.len());
            Ok(())
        });
        chunk.add(1, 0, |bytes, ends| {
            bytes.extend_from_slice(b"half");
            ends.push(bytes.len());
            Err(fail("first"))
        });
        chunk.add(1, 1, |_, _| Err(fail("second")));
        chunk.add(0, 1, |bytes, ends| {
            bytes.extend_from_slice(b"k1");
            ends.push(bytes.len());
            Ok(())
        });
        let mut gathered: Vec<Result<Gathered, Error>> =
            vec![Ok(Gathered::new(IndexKind::Unique, 0)), Ok(Gathered::new(IndexKind::Unique, 0))];
        chunk.gather_into(&mut gathered, 10);
        let mut gathered = gathered.into_iter();
        let first = gathered.next().and_then(Result::ok).map(sorted);
        assert_eq!(first, Some(vec![(b"k0".to_vec(), 10), (b"k1".to_vec(), 11)]));
        let second = gathered.next().and_then(Result::err).map(|e| e.to_string());
        assert!(second.is_some_and(|e| e.contains("first")), "the first failure is kept");
    }
}
