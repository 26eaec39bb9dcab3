//! Persistent sorted maps from encoded keys: the ordered index of a view's records
//! (each with its version and value, so that a scan never looks elsewhere), and the
//! ordered entries of its secondary indexes.
//!
//! Items sit in leaves of up to `LEAF_MAX` entries, each leaf one shared allocation,
//! and the leaves in key order in one array next to each leaf's first key (the fences).
//! A range scan finds its first leaf by binary search over the fences and then walks
//! the leaves in order. A published group copies the leaf array (one reference count
//! per leaf) and rebuilds only the leaves it touches, merging its changes in key order;
//! a snapshot keeps the old array. Loading builds full leaves straight from sorted
//! input.

use super::Entry;
use super::points::Slot;
use crate::keys::{KeyBuf, SlotKey};
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;

/// Entries per leaf when built from sorted input or split.
const LEAF_TARGET: usize = 64;
/// A leaf that grows past this splits.
const LEAF_MAX: usize = 128;

struct Leaf<K, T> {
    first: K,
    items: Arc<[(K, T)]>,
}

impl<K: Clone, T> Clone for Leaf<K, T> {
    fn clone(&self) -> Self {
        Leaf { first: self.first.clone(), items: Arc::clone(&self.items) }
    }
}

/// A persistent sorted map from encoded keys (`K` borrows as their bytes, and orders
/// as they do) to `T`.
pub(crate) struct Sorted<K, T> {
    leaves: Arc<[Leaf<K, T>]>,
    len: usize,
}

impl<K, T> Clone for Sorted<K, T> {
    fn clone(&self) -> Self {
        Sorted { leaves: Arc::clone(&self.leaves), len: self.len }
    }
}

/// The ordered index of a view's records: encoded primary key to record (version and
/// value, the same `Arc` as the point index holds).
pub(crate) type OrderedIndex<V> = Sorted<KeyBuf, Entry<V>>;

/// A range of an [`OrderedIndex`].
pub(crate) type Range<'a, V> = SortedRange<'a, KeyBuf, Entry<V>>;

/// One change to a sorted map: a new value for a key, or its removal.
pub(crate) type SortedChange<K, T> = (K, Option<T>);

impl<V> OrderedIndex<V> {
    /// An index of the records in `slots`, which must be sorted by key with no key
    /// twice. Leaves are allocated once, full, at their exact size.
    pub(crate) fn from_slots(slots: &[Slot<V>]) -> Self {
        let leaves: Arc<[Leaf<KeyBuf, Entry<V>>]> = slots
            .chunks(LEAF_TARGET)
            .map(|chunk| Leaf {
                first: chunk[0].key.clone(),
                items: chunk.iter().map(|s| (s.key.clone(), s.entry.clone())).collect(),
            })
            .collect();
        Sorted { leaves, len: slots.len() }
    }
}

impl<K, T> Sorted<K, T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl<K: SlotKey + Ord + Borrow<[u8]>, T: Clone> Sorted<K, T> {
    /// A map of `items`, which must be sorted by key with no key twice.
    #[cfg(test)]
    pub(crate) fn from_sorted(items: Vec<(K, T)>) -> Self {
        let len = items.len();
        let mut leaves = Vec::with_capacity(len.div_ceil(LEAF_TARGET));
        push_leaves(&mut leaves, items);
        Sorted { leaves: leaves.into(), len }
    }

    /// A new map with `changes` applied; untouched leaves are shared. `changes` must
    /// be sorted by key with no key twice.
    pub(crate) fn with_changes(&self, changes: Vec<SortedChange<K, T>>) -> Self {
        let mut leaves: Vec<Leaf<K, T>> = Vec::with_capacity(self.leaves.len() + 1);
        let mut len = self.len;
        let mut changes = changes.into_iter().peekable();
        for (i, leaf) in self.leaves.iter().enumerate() {
            // Changes before the next leaf's first key belong to this leaf (the first leaf
            // also takes those before its own first key, the last one those after).
            let next_first = self.leaves.get(i + 1).map(|l| l.first.borrow());
            let mut mine = Vec::new();
            while let Some(change) =
                changes.next_if(|(k, _)| next_first.is_none_or(|n| k.borrow() < n))
            {
                mine.push(change);
            }
            if mine.is_empty() {
                leaves.push(leaf.clone());
                continue;
            }
            let merged = merge(&leaf.items, mine, &mut len);
            push_leaves(&mut leaves, merged);
        }
        // An empty map has no leaf to take the changes.
        let rest: Vec<SortedChange<K, T>> = changes.collect();
        if !rest.is_empty() {
            let merged = merge(&[], rest, &mut len);
            push_leaves(&mut leaves, merged);
        }
        Sorted { leaves: leaves.into(), len }
    }

    /// The value of `key`.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &[u8]) -> Option<&T> {
        let (li, ii) = self.position(key, false);
        let (k, v) = self.leaves.get(li)?.items.get(ii)?;
        (k.borrow() == key).then_some(v)
    }

    /// Every item, in key order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> SortedRange<'_, K, T> {
        self.range(Bound::Unbounded, Bound::Unbounded)
    }

    /// The items whose keys fall between `start` and `end`, in key order.
    pub(crate) fn range(&self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> SortedRange<'_, K, T> {
        let front = match start {
            Bound::Unbounded => (0, 0),
            Bound::Included(k) => self.position(k, false),
            Bound::Excluded(k) => self.position(k, true),
        };
        // The end is searched for from the front's leaf on: a short scan ends in that
        // leaf or one of the next few. An end before the start gives a position at or
        // before the front, an empty range, as a search from the first leaf would.
        let back = match end {
            Bound::Unbounded => (self.leaves.len(), 0),
            Bound::Included(k) => self.position_from(k, true, front.0),
            Bound::Excluded(k) => self.position_from(k, false, front.0),
        };
        SortedRange::between(&self.leaves, front, back)
    }

    /// The position of the first item whose key is `>= key` (or `> key` when
    /// `after`), as (leaf, index) with index inside the leaf, or (leaves, 0) at the end.
    fn position(&self, key: &[u8], after: bool) -> (usize, usize) {
        let seek = Seek::new(key);
        let li = self.leaves.partition_point(|l| seek.cmp_stored(&l.first).is_le());
        self.position_in(&seek, after, li.saturating_sub(1))
    }

    /// [`position`](Sorted::position), looking at leaves from `from` on only, in steps
    /// that double (1, 2, 4... leaves ahead), then by binary search between the last
    /// two steps.
    fn position_from(&self, key: &[u8], after: bool, from: usize) -> (usize, usize) {
        let seek = Seek::new(key);
        let ahead = self.leaves.get(from..).unwrap_or_default();
        let at_or_before = |l: &Leaf<K, T>| seek.cmp_stored(&l.first).is_le();
        let mut step = 1;
        while ahead.get(step).is_some_and(at_or_before) {
            step *= 2;
        }
        // Leaf `step / 2` starts at or before the key (when `step` > 1); leaf `step` does
        // not, or does not exist.
        let low = step / 2;
        let high = step.min(ahead.len());
        let within = ahead.get(low..high).unwrap_or_default();
        let li = (from + low + within.partition_point(at_or_before)).saturating_sub(1);
        self.position_in(&seek, after, li)
    }

    /// The position of the first item `>= seek` (`> seek` when `after`) in leaf `li`,
    /// the last leaf whose first key is at or before it, or past that leaf's end.
    fn position_in(&self, seek: &Seek<'_>, after: bool, li: usize) -> (usize, usize) {
        let Some(leaf) = self.leaves.get(li) else {
            return (self.leaves.len(), 0);
        };
        let ii = leaf.items.partition_point(|(k, _)| {
            let order = seek.cmp_stored(k);
            if after { order.is_le() } else { order.is_lt() }
        });
        if ii == leaf.items.len() { (li + 1, 0) } else { (li, ii) }
    }

    /// Bytes held by the index itself: the leaf array with its fences, leaf headers and
    /// items (keys longer than the inline limit add their own allocation, not counted).
    pub(crate) fn structural_bytes(&self) -> usize {
        self.leaves.len() * (size_of::<Leaf<K, T>>() + 2 * size_of::<usize>())
            + self.len * size_of::<(K, T)>()
    }
}

/// A key a scan starts or ends at, ready to be compared with stored keys: a key of up
/// to 14 bytes (every integer key, short strings) compares as two words and a length,
/// in registers, instead of through a byte-by-byte comparison of two slices.
struct Seek<'a> {
    bytes: &'a [u8],
    /// The key's [`order_words`], when it is short enough to have them.
    words: Option<(u64, u64, u8)>,
}

impl<'a> Seek<'a> {
    #[inline]
    fn new(bytes: &'a [u8]) -> Self {
        let words = KeyBuf::inline(bytes).and_then(|k| k.words()).map(order_words);
        Seek { bytes, words }
    }

    /// How `stored` orders against this key: as their bytes do.
    #[inline]
    fn cmp_stored<K: SlotKey>(&self, stored: &K) -> Ordering {
        match (stored.words(), self.words) {
            (Some(words), Some(seek)) => order_words(words).cmp(&seek),
            _ => stored.as_bytes().cmp(self.bytes),
        }
    }
}

/// A short key's words ([`KeyBuf::words`]: its length and its zero-padded bytes 0 to 7
/// and 6 to 13, little-endian) as (bytes 0 to 7, bytes 8 to 13 then two zeros, both
/// big-endian, length). These triples order as the keys' bytes do: the two words
/// compare the zero-padded bytes, and where those are equal, the shorter key is a prefix
/// of the longer one, which makes it the smaller.
#[inline]
fn order_words((len, head, tail): (u8, u64, u64)) -> (u64, u64, u8) {
    (head.swap_bytes(), (tail >> 16).swap_bytes(), len)
}

/// The items of `old` with `changes` (sorted, distinct keys) applied; keeps `len` up to
/// date.
fn merge<K: Clone + Borrow<[u8]>, T: Clone>(
    old: &[(K, T)],
    changes: Vec<SortedChange<K, T>>,
    len: &mut usize,
) -> Vec<(K, T)> {
    let mut out = Vec::with_capacity(old.len() + changes.len());
    let mut old = old.iter().peekable();
    for (key, value) in changes {
        while let Some(item) = old.next_if(|(k, _)| k.borrow() < key.borrow()) {
            out.push(item.clone());
        }
        let replaced = old.next_if(|(k, _)| k.borrow() == key.borrow()).is_some();
        match (value, replaced) {
            (Some(value), true) => out.push((key, value)),
            (Some(value), false) => {
                out.push((key, value));
                *len += 1;
            }
            (None, true) => *len -= 1,
            (None, false) => {}
        }
    }
    out.extend(old.cloned());
    out
}

/// Appends `items` (sorted) as leaves: one leaf when it fits, else leaves of
/// `LEAF_TARGET`; nothing when empty.
fn push_leaves<K: Clone, T>(leaves: &mut Vec<Leaf<K, T>>, items: Vec<(K, T)>) {
    if items.is_empty() {
        return;
    }
    if items.len() <= LEAF_MAX {
        leaves.push(leaf(items));
        return;
    }
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let chunk: Vec<(K, T)> = items.by_ref().take(LEAF_TARGET).collect();
        leaves.push(leaf(chunk));
    }
}

fn leaf<K: Clone, T>(items: Vec<(K, T)>) -> Leaf<K, T> {
    let first = items[0].0.clone();
    Leaf { first, items: items.into() }
}

/// An iterator over a range of a [`Sorted`] map, from both ends: the rest of the first
/// leaf, the whole leaves between, and the start of the last leaf, each walked as a
/// slice (one pointer comparison per item, no bounds checks).
pub(crate) struct SortedRange<'a, K, T> {
    /// What is left of the front leaf.
    front: std::slice::Iter<'a, (K, T)>,
    /// The leaves between the front one and the back one, untouched so far.
    middle: &'a [Leaf<K, T>],
    /// What is left of the back leaf (empty when the range ends at a leaf's end).
    back: std::slice::Iter<'a, (K, T)>,
}

impl<'a, K, T> SortedRange<'a, K, T> {
    /// The items from position `front` up to, not including, position `back`, each a
    /// (leaf, index) pair as [`Sorted::position`] gives it.
    fn between(leaves: &'a [Leaf<K, T>], front: (usize, usize), back: (usize, usize)) -> Self {
        let empty = SortedRange { front: [].iter(), middle: &[], back: [].iter() };
        if front >= back {
            return empty;
        }
        let ((lf, fi), (lb, bi)) = (front, back);
        let items = |li: usize| leaves.get(li).map_or(&[][..], |l| &l.items[..]);
        if lf == lb {
            let within = items(lf).get(fi..bi).unwrap_or_default();
            return SortedRange { front: within.iter(), ..empty };
        }
        SortedRange {
            front: items(lf).get(fi..).unwrap_or_default().iter(),
            middle: leaves.get(lf + 1..lb).unwrap_or_default(),
            back: items(lb).get(..bi).unwrap_or_default().iter(),
        }
    }
}

impl<'a, K, T> Iterator for SortedRange<'a, K, T> {
    type Item = (&'a K, &'a T);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((k, v)) = self.front.next() {
                return Some((k, v));
            }
            let Some((leaf, rest)) = self.middle.split_first() else {
                return self.back.next().map(|(k, v)| (k, v));
            };
            self.front = leaf.items.iter();
            self.middle = rest;
        }
    }
}

impl<K, T> DoubleEndedIterator for SortedRange<'_, K, T> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((k, v)) = self.back.next_back() {
                return Some((k, v));
            }
            let Some((leaf, rest)) = self.middle.split_last() else {
                return self.front.next_back().map(|(k, v)| (k, v));
            };
            self.back = leaf.items.iter();
            self.middle = rest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{OrderedIndex, Sorted};
    use crate::keys::KeyBuf;
    use crate::mem::Entry;
    use crate::mem::points::Slot;
    use std::collections::BTreeMap;
    use std::ops::Bound;
    use std::sync::Arc;

    fn key(i: u64) -> KeyBuf {
        KeyBuf::from_slice(&i.to_be_bytes())
    }

    fn entry(value: u64) -> Entry<u64> {
        Entry { version: value + 1, value: Arc::new(value) }
    }

    fn collect(index: &OrderedIndex<u64>, lo: Bound<u64>, hi: Bound<u64>) -> Vec<(u64, u64)> {
        let lo = lo.map(u64::to_be_bytes);
        let hi = hi.map(u64::to_be_bytes);
        index
            .range(lo.as_ref().map(|b| &b[..]), hi.as_ref().map(|b| &b[..]))
            .map(|(k, v)| {
                let mut b = [0u8; 8];
                b.copy_from_slice(k.as_bytes());
                (u64::from_be_bytes(b), *v.value)
            })
            .collect()
    }

    #[test]
    fn matches_a_btreemap_through_inserts_removals_and_ranges() {
        let slots: Vec<Slot<u64>> = (0..500u64)
            .map(|i| Slot { key: key(i * 2), entry: Entry { version: 1, value: Arc::new(i) } })
            .collect();
        let mut index = OrderedIndex::from_slots(&slots);
        let mut model: BTreeMap<u64, u64> = (0..500u64).map(|i| (i * 2, i)).collect();
        let mut x = 11u64;
        for round in 0..80u64 {
            let mut changes = BTreeMap::new();
            for _ in 0..=(round * 7 % 300) {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let k = (x >> 33) % 2_000;
                changes.insert(k, (!x.is_multiple_of(4)).then_some(round));
            }
            for (k, v) in &changes {
                match v {
                    Some(v) => model.insert(*k, *v),
                    None => model.remove(k),
                };
            }
            let before = collect(&index, Bound::Unbounded, Bound::Unbounded);
            let next = index
                .with_changes(changes.into_iter().map(|(k, v)| (key(k), v.map(entry))).collect());
            assert_eq!(collect(&index, Bound::Unbounded, Bound::Unbounded), before);
            index = next;
            assert_eq!(index.len(), model.len());
            let (a, b) = ((x >> 7) % 2_100, (x >> 19) % 2_100);
            for (lo, hi) in [
                (Bound::Included(a), Bound::Excluded(b)),
                (Bound::Excluded(a), Bound::Included(b)),
                (Bound::Unbounded, Bound::Included(b)),
                (Bound::Included(a), Bound::Unbounded),
            ] {
                if a > b && !matches!((lo, hi), (Bound::Unbounded, _) | (_, Bound::Unbounded)) {
                    assert!(collect(&index, lo, hi).is_empty());
                    continue;
                }
                let want: Vec<(u64, u64)> = model.range((lo, hi)).map(|(k, v)| (*k, *v)).collect();
                assert_eq!(collect(&index, lo, hi), want);
                let mut rev: Vec<(u64, u64)> = {
                    let lo_b = lo.map(u64::to_be_bytes);
                    let hi_b = hi.map(u64::to_be_bytes);
                    index
                        .range(lo_b.as_ref().map(|b| &b[..]), hi_b.as_ref().map(|b| &b[..]))
                        .rev()
                        .map(|(k, v)| {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(k.as_bytes());
                            (u64::from_be_bytes(b), *v.value)
                        })
                        .collect()
                };
                rev.reverse();
                assert_eq!(rev, want);
            }
        }
    }

    #[test]
    fn get_finds_exactly_the_keys_present_across_leaves_and_changes() {
        let items: Vec<(KeyBuf, u64)> = (0..1_000u64).map(|i| (key(i * 3), i)).collect();
        let mut map = Sorted::from_sorted(items);
        let mut model: BTreeMap<u64, u64> = (0..1_000u64).map(|i| (i * 3, i)).collect();
        for round in 0..4u64 {
            for k in 0..3_010u64 {
                assert_eq!(map.get(&k.to_be_bytes()), model.get(&k), "key {k} round {round}");
            }
            assert_eq!(map.get(&[]), None);
            assert_eq!(map.get(&[0xFF; 9]), None);
            let changes: Vec<(KeyBuf, Option<u64>)> = (0..3_010u64)
                .filter(|k| (k + round).is_multiple_of(7))
                .map(|k| (key(k), (!k.is_multiple_of(2)).then_some(k + round)))
                .collect();
            for (k, v) in &changes {
                let k = u64::from_be_bytes(k.as_bytes().try_into().unwrap_or_default());
                match v {
                    Some(v) => model.insert(k, *v),
                    None => model.remove(&k),
                };
            }
            map = map.with_changes(changes);
            assert_eq!(map.len(), model.len());
            assert_eq!(map.iter().count(), model.len());
        }
    }

    #[test]
    fn seeks_order_as_bytes_do() {
        // Short keys with zeros and 0xFF in every place, of every length up to past
        // the inline limit, each against all the others.
        let mut keys: Vec<Vec<u8>> = vec![Vec::new()];
        let mut x = 3u64;
        for len in 1..=17usize {
            for _ in 0..24 {
                let key = (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        [0u8, 1, 0x7F, 0x80, 0xFF][(x >> 40) as usize % 5]
                    })
                    .collect();
                keys.push(key);
            }
        }
        for a in &keys {
            let seek = super::Seek::new(a);
            for b in &keys {
                let stored = KeyBuf::from_slice(b);
                assert_eq!(seek.cmp_stored(&stored), b.as_slice().cmp(a), "{b:?} against {a:?}");
            }
        }
    }

    #[test]
    fn an_empty_index_takes_inserts() {
        let index: OrderedIndex<u64> = OrderedIndex::from_slots(&[]);
        let next = index.with_changes(vec![(key(3), Some(entry(3))), (key(5), None)]);
        assert_eq!(next.len(), 1);
        assert_eq!(collect(&next, Bound::Unbounded, Bound::Unbounded), vec![(3, 3)]);
        assert!(collect(&index, Bound::Unbounded, Bound::Unbounded).is_empty());
    }
}
