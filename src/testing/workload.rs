//! A workload of numbered batches whose effects can be told apart after a crash: from
//! what a store holds, [`Workload::present`] says which batches are in it and checks
//! that each of them is there whole.
//!
//! Batch `i` writes three views:
//! - `wl.items`: puts key `i` (version 1), a value derived from `i`;
//! - `wl.links`: puts key `i` (version 1) and deletes key `i - 2` (version 2);
//! - `wl.slots`: puts key `i % 4` = `i` at version `i + 1` (an overwrite).
//!
//! So with `P` the set of batches present, `links` must be `{ j in P : j + 2 not in P }`
//! and slot `k` must hold the largest `i` in `P` with `i % 4 == k`.
//!
//! Indexes: `wl.items` has a multi index on value length / 100, `wl.links` a unique
//! index on the value, `wl.slots` a unique index on the value; [`Workload::present`]
//! queries them, and [`check_verify`] compares them with the records.

use crate::api::batch::Batch;
use crate::api::index_def::IndexDef;
use crate::api::store::Store;
use crate::api::view::{View, ViewDef};
use crate::base::error::Result;
use std::collections::BTreeSet;

const BY_SIZE: IndexDef<Vec<u8>, u64> = IndexDef::multi("by_size", |v| v.len() as u64 / 100);
const LINK_BY_VALUE: IndexDef<u64, u64> = IndexDef::unique("by_value", |v| *v);
const SLOT_BY_VALUE: IndexDef<u64, u64> = IndexDef::unique("by_value", |v| *v);
const ITEMS: ViewDef<u64, Vec<u8>> = ViewDef::new("wl.items").with_indexes(&[&BY_SIZE]);
const LINKS: ViewDef<u64, u64> = ViewDef::new("wl.links").with_indexes(&[&LINK_BY_VALUE]);
const SLOTS: ViewDef<u64, u64> = ViewDef::new("wl.slots").with_indexes(&[&SLOT_BY_VALUE]);
const SLOT_COUNT: u64 = 4;

/// The value batch `i` puts into `wl.items`.
pub fn item_value(i: u64) -> Vec<u8> {
    let len = (i * 37 % 700) as usize;
    (0..len).map(|j| (i as usize).wrapping_add(j) as u8).collect()
}

/// The three views of the workload on one store.
#[derive(Debug, Clone)]
pub struct Workload {
    items: View<u64, Vec<u8>>,
    links: View<u64, u64>,
    slots: View<u64, u64>,
}

impl Workload {
    /// Opens the workload's views on `store`.
    ///
    /// # Errors
    ///
    /// Those of [`Store::view`].
    pub fn open(store: &Store) -> Result<Self> {
        Ok(Workload {
            items: store.view(&ITEMS)?,
            links: store.view(&LINKS)?,
            slots: store.view(&SLOTS)?,
        })
    }

    /// Batch number `i`.
    ///
    /// # Errors
    ///
    /// Those of [`Batch::put`] (none for these small values).
    pub fn batch(&self, i: u64) -> Result<Batch> {
        let mut b = Batch::new();
        b.put(&self.items, &i, item_value(i), 1)?;
        b.put(&self.links, &i, i, 1)?;
        if i >= 2 {
            b.delete(&self.links, &(i - 2), 2)?;
        }
        b.put(&self.slots, &(i % SLOT_COUNT), i, i + 1)?;
        Ok(b)
    }

    /// The batches the store holds, read from memory, after checking that each is
    /// there whole and that nothing else is.
    ///
    /// # Errors
    ///
    /// A message naming the view and key that betray a partial or foreign write.
    pub fn present(&self) -> Result<BTreeSet<u64>, String> {
        // One snapshot: the writer may publish between reads.
        let snapshot = self.items.store().snapshot();
        let (items, links, slots) = (
            snapshot.view(&self.items).map_err(|e| e.to_string())?,
            snapshot.view(&self.links).map_err(|e| e.to_string())?,
            snapshot.view(&self.slots).map_err(|e| e.to_string())?,
        );
        let mut present = BTreeSet::new();
        for (i, value) in &items {
            if *value != item_value(i) {
                return Err(format!("wl.items key {i} holds a value batch {i} never wrote"));
            }
            present.insert(i);
        }
        let link_index = links.index(&LINK_BY_VALUE);
        let links: BTreeSet<u64> = links.iter().map(|(k, _)| k).collect();
        let expected: BTreeSet<u64> =
            present.iter().copied().filter(|j| !present.contains(&(j + 2))).collect();
        if links != expected {
            return Err(format!(
                "wl.links holds {links:?}, but batches {present:?} imply {expected:?}"
            ));
        }
        for j in &links {
            if link_index.get(j).map(|(k, _)| k) != Some(*j) {
                return Err(format!("wl.links index by_value does not find {j}"));
            }
        }
        if link_index.len() != links.len() {
            return Err(format!(
                "wl.links index by_value has {} entries for {} records",
                link_index.len(),
                links.len()
            ));
        }
        let sized = items.index(&BY_SIZE).len();
        if sized != present.len() {
            return Err(format!(
                "wl.items index by_size holds {sized} entries for {} records",
                present.len()
            ));
        }
        for slot in 0..SLOT_COUNT {
            let want = present.iter().rev().find(|i| *i % SLOT_COUNT == slot).copied();
            let got = slots.get_versioned(&slot).map(|(v, i)| (v, *i));
            if got != want.map(|i| (i + 1, i)) {
                return Err(format!(
                    "wl.slots key {slot} holds {got:?} (version, batch), but batches \
                     {present:?} imply {:?}",
                    want.map(|i| (i + 1, i))
                ));
            }
        }
        Ok(present)
    }
}

/// Runs the store's own check ([`Store::verify`]): every open view's records in memory
/// equal to those on disk, every index equal to what the records imply, on disk and in
/// memory.
///
/// # Errors
///
/// The problems found, or the error of `verify` itself.
pub fn check_verify(store: &Store) -> Result<(), String> {
    let report = store.verify().map_err(|e| format!("verify: {e}"))?;
    if report.is_ok() { Ok(()) } else { Err(format!("verify found {:?}", report.problems)) }
}

/// Checks `acknowledged ⊆ present ⊆ acknowledged ∪ in_flight`.
///
/// # Errors
///
/// A message naming the batches lost or invented.
pub fn check_recovered(
    present: &BTreeSet<u64>,
    acknowledged: &BTreeSet<u64>,
    in_flight: &BTreeSet<u64>,
) -> Result<(), String> {
    let lost: Vec<_> = acknowledged.difference(present).collect();
    if !lost.is_empty() {
        return Err(format!("acknowledged batches lost: {lost:?}"));
    }
    let invented: Vec<_> =
        present.iter().filter(|i| !acknowledged.contains(i) && !in_flight.contains(i)).collect();
    if !invented.is_empty() {
        return Err(format!(
            "batches present that were neither acknowledged nor in flight: {invented:?}"
        ));
    }
    Ok(())
}

/// What a bounded-loss (periodic) crash may leave of a run in which `acknowledged`
/// batches were acknowledged and `failed` ones got an error: only batches that were
/// submitted, and the acknowledged batches lost form a suffix (nothing submitted after
/// a lost acknowledged batch is present).
///
/// # Errors
///
/// A message naming the batch that is present after a lost one.
pub fn check_lossy(
    present: &BTreeSet<u64>,
    acknowledged: &BTreeSet<u64>,
    failed: &BTreeSet<u64>,
) -> Result<(), String> {
    if let Some(i) = present.iter().find(|i| !acknowledged.contains(i) && !failed.contains(i)) {
        return Err(format!("batch {i} is present but was never submitted"));
    }
    if let Some(lost) = acknowledged.difference(present).next()
        && let Some(later) = present.iter().find(|i| *i > lost)
    {
        return Err(format!(
            "acknowledged batch {lost} is lost but the later batch {later} is present"
        ));
    }
    Ok(())
}

/// Checks that `present` is `0..k` for some `k`: what a bounded-loss (periodic) crash
/// may leave, whole groups in commit order and no holes.
///
/// # Errors
///
/// A message naming the hole.
pub fn check_prefix(present: &BTreeSet<u64>) -> Result<(), String> {
    for (expected, i) in present.iter().enumerate() {
        if *i != expected as u64 {
            return Err(format!(
                "batches present {present:?} are not a prefix: {expected} is missing"
            ));
        }
    }
    Ok(())
}
