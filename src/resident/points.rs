//! The point index of a view: a persistent hash table for reads by key.
//!
//! Buckets are chosen by the top bits of a seeded hash of the encoded key and hold their
//! slots in one shared allocation each. The bucket directory has two levels: a top array
//! of mid arrays of up to 1,024 buckets. A published group copies the top array, the mid
//! arrays it touches and the buckets it touches; everything else is shared with the
//! previous root. A read costs one hash, two array indexings (the top array is small
//! enough to stay in cache) and a scan of two to four 32-byte slots on average.

use super::Entry;
use crate::codec::KeyBuf;
use std::hash::BuildHasher;
use std::sync::Arc;

/// Buckets per mid array, as a power of two.
const MID_BITS: u32 = 10;
/// Fewest buckets, as a power of two.
const MIN_BITS: u32 = 4;
/// Average records per bucket that triggers a rehash into more buckets.
const GROW_AT: usize = 8;
/// Average records per bucket right after a rehash (at least; up to twice that, as
/// bucket counts are powers of two).
const AFTER_GROW: usize = 4;

/// One entry in a bucket: an encoded key and what it maps to.
pub(crate) struct PointSlot<T> {
    pub(crate) key: KeyBuf,
    pub(crate) entry: T,
}

/// One record of a view in a bucket.
pub(crate) type Slot<V> = PointSlot<Entry<V>>;

impl<T: Clone> Clone for PointSlot<T> {
    fn clone(&self) -> Self {
        PointSlot { key: self.key.clone(), entry: self.entry.clone() }
    }
}

type Bucket<T> = Option<Arc<[PointSlot<T>]>>;
type Mid<T> = Arc<[Bucket<T>]>;

/// A persistent hash table from encoded keys to resident entries (or, for a unique
/// index, to primary keys).
pub(crate) struct PointIndex<T> {
    hasher: foldhash::fast::RandomState,
    bits: u32,
    top: Arc<[Mid<T>]>,
    len: usize,
}

impl<T> Clone for PointIndex<T> {
    fn clone(&self) -> Self {
        PointIndex {
            hasher: self.hasher.clone(),
            bits: self.bits,
            top: Arc::clone(&self.top),
            len: self.len,
        }
    }
}

/// One change to the point index: a new entry for a key, or its removal.
pub(crate) type PointChange<T> = (KeyBuf, Option<T>);

impl<T: Clone> PointIndex<T> {
    /// An index of `slots`, whose keys must be distinct.
    pub(crate) fn build(slots: Vec<PointSlot<T>>) -> Self {
        Self::build_with(foldhash::fast::RandomState::default(), slots)
    }

    fn build_with(hasher: foldhash::fast::RandomState, slots: Vec<PointSlot<T>>) -> Self {
        let plan = BuildPlan::new(hasher, &slots);
        Self::assemble(plan, slots)
    }

    /// Builds the index from `slots` (distinct keys) and their buckets, computed
    /// beforehand, possibly on another thread. Every bucket is allocated once, at its
    /// exact size, so that building leaves no freed memory behind.
    pub(crate) fn assemble(plan: BuildPlan, slots: Vec<PointSlot<T>>) -> Self {
        let BuildPlan { hasher, bits, buckets: bucket_ids } = plan;
        let len = slots.len();
        let mut slots: Vec<Option<PointSlot<T>>> = slots.into_iter().map(Some).collect();
        let buckets = 1usize << bits;
        // Counting sort of the records by bucket.
        let mut starts = vec![0usize; buckets + 1];
        for &b in &bucket_ids {
            starts[b as usize + 1] += 1;
        }
        for i in 0..buckets {
            starts[i + 1] += starts[i];
        }
        let mut order = vec![0usize; len];
        let mut next = starts.clone();
        for (record, &b) in bucket_ids.iter().enumerate() {
            let at = &mut next[b as usize];
            order[*at] = record;
            *at += 1;
        }
        drop(next);
        drop(bucket_ids);
        let mid_len = 1usize << bits.min(MID_BITS);
        let mut scratch: Vec<PointSlot<T>> = Vec::new();
        let top: Arc<[Mid<T>]> = (0..buckets / mid_len)
            .map(|t| {
                (0..mid_len)
                    .map(|m| {
                        let b = t * mid_len + m;
                        let members = &order[starts[b]..starts[b + 1]];
                        if members.is_empty() {
                            return None;
                        }
                        scratch.extend(members.iter().filter_map(|&r| slots[r].take()));
                        Some(scratch.drain(..).collect())
                    })
                    .collect()
            })
            .collect();
        PointIndex { hasher, bits, top, len }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The entry of an encoded key.
    #[inline]
    pub(crate) fn get(&self, key: &[u8]) -> Option<&T> {
        let i = bucket_of(self.hasher.hash_one(key), self.bits);
        let mid = self.top.get(i >> MID_BITS.min(self.bits))?;
        let bucket = mid.get(i & ((1 << MID_BITS.min(self.bits)) - 1))?.as_deref()?;
        let found = match KeyBuf::inline(key) {
            Some(probe) => bucket.iter().find(|s| s.key == probe),
            None => bucket.iter().find(|s| s.key.as_bytes() == key),
        };
        found.map(|s| &s.entry)
    }

    /// A new index with `changes` applied; untouched buckets are shared. Keys in
    /// `changes` must be distinct.
    pub(crate) fn with_changes(&self, changes: Vec<PointChange<T>>) -> Self {
        if self.len + changes.len() > GROW_AT << self.bits {
            // Rehash everything into more buckets (amortized: the count at least doubles).
            let mut slots: Vec<PointSlot<T>> = Vec::with_capacity(self.len + changes.len());
            let mut pending: std::collections::HashMap<KeyBuf, Option<T>> =
                changes.into_iter().collect();
            for slot in self.slots() {
                match pending.remove(&slot.key) {
                    Some(Some(entry)) => slots.push(PointSlot { key: slot.key.clone(), entry }),
                    Some(None) => {}
                    None => slots.push(slot.clone()),
                }
            }
            slots.extend(
                pending
                    .into_iter()
                    .filter_map(|(key, entry)| Some(PointSlot { key, entry: entry? })),
            );
            return Self::build_with(self.hasher.clone(), slots);
        }
        let mid_bits = MID_BITS.min(self.bits);
        let mid_mask = (1 << mid_bits) - 1;
        let mut per_bucket: Vec<(usize, PointChange<T>)> = changes
            .into_iter()
            .map(|c| (bucket_of(self.hasher.hash_one(c.0.as_bytes()), self.bits), c))
            .collect();
        per_bucket.sort_unstable_by_key(|(i, _)| *i);
        let mut top: Vec<Mid<T>> = self.top.to_vec();
        let mut len = self.len;
        let mut rest = per_bucket.as_slice();
        while let Some(&(first, _)) = rest.first() {
            // All changes under one mid array: copy it once.
            let t = first >> mid_bits;
            let in_mid = rest.iter().take_while(|(j, _)| *j >> mid_bits == t).count();
            let (mut here, after) = rest.split_at(in_mid);
            rest = after;
            let mut mid: Vec<Bucket<T>> = top[t].to_vec();
            while let Some(&(i, _)) = here.first() {
                let same = here.iter().take_while(|(j, _)| *j == i).count();
                let (bucket_changes, others) = here.split_at(same);
                here = others;
                let m = i & mid_mask;
                let old = mid[m].as_deref().unwrap_or(&[]);
                let mut slots: Vec<PointSlot<T>> = old
                    .iter()
                    .filter(|s| !bucket_changes.iter().any(|(_, (k, _))| *k == s.key))
                    .cloned()
                    .collect();
                len -= old.len() - slots.len();
                for (_, (key, entry)) in bucket_changes {
                    if let Some(entry) = entry {
                        slots.push(PointSlot { key: key.clone(), entry: entry.clone() });
                        len += 1;
                    }
                }
                mid[m] = (!slots.is_empty()).then(|| Arc::from(slots));
            }
            top[t] = mid.into();
        }
        PointIndex { hasher: self.hasher.clone(), bits: self.bits, top: top.into(), len }
    }

    fn slots(&self) -> impl Iterator<Item = &PointSlot<T>> {
        self.top.iter().flat_map(|mid| mid.iter()).flat_map(|b| b.as_deref().unwrap_or(&[]))
    }

    /// Bytes held by the index itself: the directory, bucket headers and slots (keys
    /// longer than the inline limit add their own allocation, not counted here).
    pub(crate) fn structural_bytes(&self) -> usize {
        let buckets = 1usize << self.bits;
        let occupied = self.top.iter().flat_map(|m| m.iter()).flatten().count();
        self.top.len() * (size_of::<Mid<T>>() + 2 * size_of::<usize>())
            + buckets * size_of::<Bucket<T>>()
            + occupied * 2 * size_of::<usize>()
            + self.len * size_of::<PointSlot<T>>()
    }
}

/// What building an index needs besides the records: the hasher, the bucket count and
/// each record's bucket.
pub(crate) struct BuildPlan {
    hasher: foldhash::fast::RandomState,
    bits: u32,
    buckets: Vec<u32>,
}

impl BuildPlan {
    /// Hashes the keys of `slots` for a new index.
    pub(crate) fn new<T>(hasher: foldhash::fast::RandomState, slots: &[PointSlot<T>]) -> Self {
        let bits = bits_for(slots.len());
        let buckets = slots
            .iter()
            .map(|s| bucket_of(hasher.hash_one(s.key.as_bytes()), bits) as u32)
            .collect();
        BuildPlan { hasher, bits, buckets }
    }
}

/// The bucket of a hash: its top `bits` bits.
#[inline]
fn bucket_of(hash: u64, bits: u32) -> usize {
    (hash >> (64 - bits)) as usize
}

/// Enough buckets for `len` records at `AFTER_GROW` to twice that per bucket.
fn bits_for(len: usize) -> u32 {
    // The largest power of two at most `len / AFTER_GROW`.
    (len / AFTER_GROW).max(1).ilog2().max(MIN_BITS)
}

#[cfg(test)]
mod tests {
    use super::{PointIndex, Slot};
    use crate::codec::KeyBuf;
    use crate::resident::Entry;
    use std::collections::HashMap;
    use std::sync::Arc;

    fn key(i: u64) -> KeyBuf {
        KeyBuf::from_slice(&i.to_be_bytes())
    }

    fn entry(v: u64) -> Entry<u64> {
        Entry { version: v, value: Arc::new(v) }
    }

    #[test]
    fn matches_a_hashmap_through_growth_and_removal() {
        let mut index = PointIndex::build(Vec::new());
        let mut model: HashMap<u64, u64> = HashMap::new();
        let mut x = 7u64;
        for round in 0..60u64 {
            let mut changes = HashMap::new();
            for _ in 0..=(round * 13 % 200) {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let k = (x >> 33) % 3_000;
                if x.is_multiple_of(5) {
                    changes.insert(k, None);
                } else {
                    changes.insert(k, Some(round));
                }
            }
            for (k, v) in &changes {
                match v {
                    Some(v) => model.insert(*k, *v),
                    None => model.remove(k),
                };
            }
            let before = index.clone();
            index = index
                .with_changes(changes.into_iter().map(|(k, v)| (key(k), v.map(entry))).collect());
            assert_eq!(index.len(), model.len());
            let _ = before.len();
        }
        for k in 0..3_000u64 {
            let got = index.get(key(k).as_bytes()).map(|e| *e.value);
            assert_eq!(got, model.get(&k).copied(), "key {k}");
        }
        let built = PointIndex::build(
            model.iter().map(|(k, v)| Slot { key: key(*k), entry: entry(*v) }).collect(),
        );
        for k in 0..3_000u64 {
            let got = built.get(key(k).as_bytes()).map(|e| *e.value);
            assert_eq!(got, model.get(&k).copied(), "key {k}");
        }
    }

    #[test]
    fn an_old_index_is_unchanged_by_a_new_one() {
        let index = PointIndex::build(vec![Slot { key: key(1), entry: entry(1) }]);
        let next = index.with_changes(vec![(key(1), None), (key(2), Some(entry(2)))]);
        assert_eq!(index.get(key(1).as_bytes()).map(|e| *e.value), Some(1));
        assert!(index.get(key(2).as_bytes()).is_none());
        assert!(next.get(key(1).as_bytes()).is_none());
        assert_eq!(next.get(key(2).as_bytes()).map(|e| *e.value), Some(2));
    }
}
