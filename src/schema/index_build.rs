//! Building a secondary index in memory from a view's decoded records (at open, for a
//! stored index or a new one): extract every record's index keys through the index's
//! extractor (or take them as the loader gathered them while decoding), put the entries
//! in order (index key, then primary key), lay them out.
//!
//! The records come in primary-key order, so an entry's position among them orders it
//! as its primary key does: entries sort by index key, then position, with no primary
//! key copied beside them, and the index key held inline up to 30 bytes. A multi
//! index's entries usually come grouped by index key (see `mem::gather`), so that only
//! the distinct keys are sorted. A unique index, and a multi index whose distinct keys
//! turn out to be many, sort their entries.
//!
//! The order of the entries must be that of their on-disk keys (index key then primary
//! key, as one byte string). It is the order above because no encoded key is a prefix
//! of another key of its type (see the encoding in `keys/key.rs`: fixed widths,
//! terminated strings and sequences, tagged options and variants).

use crate::base::beside::{BUILD_INDEXES_IN_TWO_FROM, beside};
use crate::base::error::{Error, Result};
use crate::base::index_kind::IndexKind;
use crate::keys::{WideKey, render_key};
use crate::mem::gather::{Gathered, Groups, SortEntry};
use crate::mem::index::{Hit, IndexData};
use crate::mem::index_entries::{EntriesBuilder, IndexEntries};
use crate::mem::points::{PointIndex, PointSlot, Slot};
use crate::schema::index::{AnyIndex, KeysBuf, extract_into};
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Whether no key of `keys`, sorted, is a prefix of another one (then none is a prefix
/// of the next one), as the key encoding promises.
fn prefix_free<'a>(keys: impl Iterator<Item = &'a [u8]> + Clone) -> bool {
    keys.clone().zip(keys.skip(1)).all(|(a, b)| a == b || !b.starts_with(a))
}

/// Index `spec` of view `view` over `records` (in key order, no key twice), reporting
/// (records done, records in all) every 10,000 records; a unique index with its hash
/// table. A unique index key held by two records fails the build with the error naming
/// both; an extractor that fails or panics fails it with the error naming the record.
pub(crate) fn build_entries<K: DeserializeOwned + Debug, V: Send + Sync + 'static>(
    view: &str,
    spec: &dyn AnyIndex<V>,
    records: &[Slot<V>],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<IndexData<V>> {
    let gathered = gather::<K, V>(view, spec, records, progress)?;
    lay_out_gathered::<K, V>(view, spec, gathered, records)
}

/// The entries of index `spec` of view `view` over `records`, as [`build_entries`]
/// extracts them.
fn gather<K: DeserializeOwned + Debug, V: Send + Sync + 'static>(
    view: &str,
    spec: &dyn AnyIndex<V>,
    records: &[Slot<V>],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Gathered> {
    let total = records.len() as u64;
    let mut gathered = Gathered::new(spec.index_kind(), records.len());
    let mut keys = KeysBuf::default();
    for (at, slot) in records.iter().enumerate() {
        extract_into(spec, &*slot.entry.value, &mut keys).map_err(|e| {
            e.into_error(view, spec.index_name(), render_key::<K>(slot.key.as_bytes()))
        })?;
        for ikey in keys.keys() {
            gathered.add(ikey, at);
        }
        let done = at as u64 + 1;
        if done.is_multiple_of(10_000) {
            progress(done, total);
        }
    }
    Ok(gathered)
}

/// Index `spec` of view `view` over `records`, of the entries `gathered` from them (as
/// [`build_entries`] or the view's loader gathers them), with the errors of
/// [`build_entries`] for a unique key held twice.
pub(crate) fn lay_out_gathered<K: DeserializeOwned + Debug, V: Send + Sync + 'static>(
    view: &str,
    spec: &dyn AnyIndex<V>,
    gathered: Gathered,
    records: &[Slot<V>],
) -> Result<IndexData<V>> {
    let entries = match gathered {
        Gathered::Grouped(groups) => return Ok(lay_out_groups(spec, &groups, records)),
        Gathered::Sorted(entries) => entries,
    };
    lay_out_sorted::<K, V>(view, spec, entries, records)
}

/// A multi index of `groups`.
fn lay_out_groups<V: 'static>(
    spec: &dyn AnyIndex<V>,
    groups: &Groups,
    records: &[Slot<V>],
) -> IndexData<V> {
    let mut keys: Vec<(&WideKey, &Vec<usize>)> = groups.iter().collect();
    keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
    debug_assert!(prefix_free(keys.iter().map(|(ikey, _)| ikey.as_bytes())));
    let len = keys.iter().map(|(_, positions)| positions.len()).sum();
    let mut built = EntriesBuilder::with_capacity(len);
    for (ikey, positions) in keys {
        for slot in positions.iter().filter_map(|&at| records.get(at)) {
            built.push(ikey.as_bytes(), slot.key.as_bytes());
        }
    }
    IndexData::with_entries(spec.index_name(), spec.index_kind(), built.finish())
}

/// The index of `entries`, sorted here; for a unique index, with its hash table (built
/// beside the entries for a large index), and failing on a key held twice.
fn lay_out_sorted<K: DeserializeOwned + Debug, V: Send + Sync + 'static>(
    view: &str,
    spec: &dyn AnyIndex<V>,
    mut entries: Vec<SortEntry>,
    records: &[Slot<V>],
) -> Result<IndexData<V>> {
    // Entries order by index key, then position.
    entries.sort_unstable();
    debug_assert!(prefix_free(entries.iter().map(|(ikey, _)| ikey.as_bytes())));
    let name = spec.index_name();
    if spec.index_kind() == IndexKind::Multi {
        let built = lay_out::<K, V>(view, spec, &entries, records)?;
        return Ok(IndexData::with_entries(name, IndexKind::Multi, built));
    }
    // The hash table takes each entry with its record, found by position rather than by
    // a probe of the view; if a key turns out to be held twice, it is dropped.
    let points = || {
        let hits = entries.iter().filter_map(|(ikey, at)| {
            let slot = records.get(*at)?;
            let hit = Hit { pk: slot.key.clone(), entry: slot.entry.clone() };
            Some(PointSlot { key: ikey.clone(), entry: hit })
        });
        PointIndex::build(hits.collect())
    };
    let (points, built) = if entries.len() >= BUILD_INDEXES_IN_TWO_FROM {
        beside("viewstore-index", points, || lay_out::<K, V>(view, spec, &entries, records))
    } else {
        (points(), lay_out::<K, V>(view, spec, &entries, records))
    };
    Ok(IndexData::with_points(name, built?, points))
}

/// The entries of `entries`, sorted, laid out; for a unique index, failing on a key
/// held twice with the error naming both records.
fn lay_out<K: DeserializeOwned + Debug, V>(
    view: &str,
    spec: &dyn AnyIndex<V>,
    entries: &[SortEntry],
    records: &[Slot<V>],
) -> Result<IndexEntries> {
    let unique = spec.index_kind() == IndexKind::Unique;
    let mut built = EntriesBuilder::with_capacity(entries.len());
    let mut previous: Option<(&[u8], &[u8])> = None;
    for (ikey, at) in entries {
        let (ikey, Some(slot)) = (ikey.as_bytes(), records.get(*at)) else { continue };
        let pk = slot.key.as_bytes();
        if let Some((held, holder)) = previous
            && unique
            && held == ikey
        {
            return Err(Error::UniqueViolation {
                view: view.to_owned(),
                index: spec.index_name().to_owned(),
                key: spec.render_key(ikey),
                key_bytes: ikey.into(),
                holder: render_key::<K>(holder).into(),
                refused: render_key::<K>(pk).into(),
            });
        }
        previous = Some((ikey, pk));
        built.push(ikey, pk);
    }
    Ok(built.finish())
}
