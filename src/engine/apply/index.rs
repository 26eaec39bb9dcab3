//! A batch's index maintenance: the entries it adds and removes in each index, worked
//! out from each key's record before and after the batch, and every unique index key
//! it gains checked against the records that hold it already.

use super::{Fail, Group, KeyInBatch, KeyMap};
use crate::base::error::Error;
use crate::base::index_kind::IndexKind;
use crate::keys::{KeyBuf, WideKey, composite, prefix_successor};
use crate::mem::delta::{Effect, UniqueChange};
use redb::ReadableTable;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

/// What a batch does to the indexes: entries to write, changes to publish.
pub(super) type IndexWork = (Vec<IndexWrite>, Vec<(usize, UniqueChange)>);

/// One index entry to write or remove: view, index, on-disk key, index key length.
pub(super) struct IndexWrite {
    pub(super) view: usize,
    pub(super) index: usize,
    pub(super) key: WideKey,
    pub(super) ikey_len: u32,
    pub(super) insert: bool,
}

impl Group<'_, '_> {
    /// Works out the index entries a batch adds and removes, and checks unique indexes
    /// against the store as the group has left it, this batch included.
    pub(super) fn index_batch(&mut self, local: &KeyMap<KeyInBatch>) -> Result<IndexWork, Fail> {
        let mut writes = Vec::new();
        let mut removals = Vec::new();
        let mut gains = Vec::new();
        let mut kept = Vec::new();
        // Per unique (view, index, index key): primary keys gained and lost here.
        let mut gained: HashMap<(usize, usize, Vec<u8>), BTreeSet<KeyBuf>> = HashMap::new();
        let mut lost: HashMap<(usize, usize, Vec<u8>), BTreeSet<KeyBuf>> = HashMap::new();
        for ((view, pk), slot) in local {
            if slot.pending.is_none() {
                continue;
            }
            let info = self.view(*view)?;
            for (ix, index) in info.indexes.iter().enumerate() {
                let old = info.index_keys(index, pk.as_bytes(), slot.before.live.as_deref())?;
                let new = info.index_keys(index, pk.as_bytes(), slot.now.live.as_deref())?;
                for ikey in &old {
                    if new.binary_search(ikey).is_ok() {
                        // Nothing to write; a unique index's table holds the record.
                        if index.kind == IndexKind::Unique {
                            kept.push((*view, change(ix, ikey, pk, Effect::Keep)));
                        }
                    } else {
                        writes.push(index_write(*view, ix, ikey, pk, false));
                        // A multi index's resident entries follow its table's writes.
                        if index.kind == IndexKind::Unique {
                            removals.push((*view, change(ix, ikey, pk, Effect::Loss)));
                            lost.entry((*view, ix, ikey.clone())).or_default().insert(pk.clone());
                        }
                    }
                }
                for ikey in &new {
                    if old.binary_search(ikey).is_err() {
                        writes.push(index_write(*view, ix, ikey, pk, true));
                        if index.kind == IndexKind::Unique {
                            gains.push((*view, change(ix, ikey, pk, Effect::Gain)));
                            gained.entry((*view, ix, ikey.clone())).or_default().insert(pk.clone());
                        }
                    }
                }
            }
        }
        for ((view, ix, ikey), adders) in gained {
            let mut holders = self.holders(view, ix, &ikey)?;
            if let Some(gone) = lost.get(&(view, ix, ikey.clone())) {
                holders.retain(|pk| !gone.contains(pk));
            }
            // The key may have one record at most. Named in the error: a record holding
            // it already (else the batch's lowest key) and the batch's lowest other one.
            let holder = holders.first().or(adders.first());
            let refused = holder.and_then(|h| adders.iter().chain(&holders).find(|pk| *pk != h));
            let (Some(holder), Some(refused)) = (holder, refused) else { continue };
            let info = self.view(view)?;
            let index = &info.indexes[ix];
            return Err(Fail::Batch(Error::UniqueViolation {
                view: info.name.to_string(),
                index: index.name.to_string(),
                key: (index.render)(&ikey),
                key_bytes: ikey.into(),
                holder: (info.render_key)(holder.as_bytes()).into(),
                refused: (info.render_key)(refused.as_bytes()).into(),
            }));
        }
        // Removals first, so that a key moved between records within the batch ends up
        // with its new holder.
        removals.extend(gains);
        removals.extend(kept);
        Ok((writes, removals))
    }

    /// The primary keys holding `ikey` in index `ix` of `view`, as the transaction
    /// has it (committed data and this group's earlier batches).
    fn holders(&mut self, view: usize, ix: usize, ikey: &[u8]) -> Result<BTreeSet<KeyBuf>, Fail> {
        let file = self.file;
        let table = self.index_table(view, ix)?;
        let end = prefix_successor(ikey);
        let range =
            (Bound::Included(ikey), end.as_deref().map_or(Bound::Unbounded, Bound::Excluded));
        let scan_error = |e| Fail::Group(Error::storage(file, "reading an index", e));
        let mut holders = BTreeSet::new();
        for item in table.range::<&[u8]>(range).map_err(scan_error)? {
            let (k, _) = item.map_err(scan_error)?;
            holders.insert(KeyBuf::from_slice(&k.value()[ikey.len()..]));
        }
        Ok(holders)
    }
}

fn index_write(view: usize, index: usize, ikey: &[u8], pk: &KeyBuf, insert: bool) -> IndexWrite {
    IndexWrite {
        view,
        index,
        key: composite(ikey, pk.as_bytes()),
        ikey_len: ikey.len() as u32,
        insert,
    }
}

fn change(index: usize, ikey: &[u8], pk: &KeyBuf, effect: Effect) -> UniqueChange {
    UniqueChange { index, ikey: WideKey::from_slice(ikey), pk: pk.clone(), effect }
}
