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

use crate::batch::Batch;
use crate::error::Result;
use crate::store::Store;
use crate::view::{View, ViewDef};
use std::collections::BTreeSet;

const ITEMS: ViewDef<u64, Vec<u8>> = ViewDef::new("wl.items");
const LINKS: ViewDef<u64, u64> = ViewDef::new("wl.links");
const SLOTS: ViewDef<u64, u64> = ViewDef::new("wl.slots");
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
        let (items, links, slots) =
            (snapshot.view(&self.items), snapshot.view(&self.links), snapshot.view(&self.slots));
        let mut present = BTreeSet::new();
        for (i, value) in &items {
            if *value != item_value(i) {
                return Err(format!("wl.items key {i} holds a value batch {i} never wrote"));
            }
            present.insert(i);
        }
        let links: BTreeSet<u64> = links.iter().map(|(k, _)| k).collect();
        let expected: BTreeSet<u64> =
            present.iter().copied().filter(|j| !present.contains(&(j + 2))).collect();
        if links != expected {
            return Err(format!(
                "wl.links holds {links:?}, but batches {present:?} imply {expected:?}"
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
