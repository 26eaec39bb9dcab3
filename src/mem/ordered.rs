//! Persistent sorted maps from encoded keys: the ordered index of a view's records
//! (each with its version and value, so that a scan never looks elsewhere), and the
//! ordered entries of its secondary indexes.
//!
//! Items sit in leaves of up to `LEAF_MAX` entries, each leaf one shared allocation;
//! the leaves sit in key order in chunks of up to `CHUNK_MAX`, each chunk one shared
//! array of leaves with each leaf's first key (the fences), and the chunks in one array
//! with each chunk's first key. A range scan finds its first chunk and then its first
//! leaf by binary search over the fences and walks the leaves in order. A published
//! group copies the chunk array (one reference count per chunk) and, in the chunks it
//! touches, their leaf arrays, rebuilding only the leaves it touches by merging its
//! changes in key order; a snapshot keeps the old arrays. At 1,000,000 records that is
//! about 250 chunks where a flat array of leaves made every publish copy 15,625. Loading
//! builds full leaves and chunks straight from sorted input.

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
/// Leaves per chunk when built from sorted input or split (4 in the crate's own unit
/// tests, so that their maps cross many chunks).
const CHUNK_TARGET: usize = if cfg!(test) { 4 } else { 64 };
/// A chunk that grows past this many leaves splits.
const CHUNK_MAX: usize = 2 * CHUNK_TARGET;

struct Leaf<K, T> {
    first: K,
    items: Arc<[(K, T)]>,
}

impl<K: Clone, T> Clone for Leaf<K, T> {
    fn clone(&self) -> Self {
        Leaf { first: self.first.clone(), items: Arc::clone(&self.items) }
    }
}

/// Consecutive leaves, with the first key of the first.
struct Chunk<K, T> {
    first: K,
    leaves: Arc<[Leaf<K, T>]>,
}

impl<K: Clone, T> Clone for Chunk<K, T> {
    fn clone(&self) -> Self {
        Chunk { first: self.first.clone(), leaves: Arc::clone(&self.leaves) }
    }
}

/// A place in a map: (chunk, leaf in the chunk, item in the leaf), always of an item,
/// or `(chunks, 0, 0)` at the end; so two places compare as the items they stand for.
type Place = (usize, usize, usize);

/// A persistent sorted map from encoded keys (`K` borrows as their bytes, and orders
/// as they do) to `T`.
pub(crate) struct Sorted<K, T> {
    chunks: Arc<[Chunk<K, T>]>,
    len: usize,
}

impl<K, T> Clone for Sorted<K, T> {
    fn clone(&self) -> Self {
        Sorted { chunks: Arc::clone(&self.chunks), len: self.len }
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
        let leaves: Vec<Leaf<KeyBuf, Entry<V>>> = slots
            .chunks(LEAF_TARGET)
            .map(|chunk| Leaf {
                first: chunk[0].key.clone(),
                items: chunk.iter().map(|s| (s.key.clone(), s.entry.clone())).collect(),
            })
            .collect();
        let mut chunks = Vec::with_capacity(leaves.len().div_ceil(CHUNK_TARGET));
        push_chunks(&mut chunks, leaves);
        Sorted { chunks: chunks.into(), len: slots.len() }
    }
}

impl<K, T> Sorted<K, T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The place past the last item.
    fn end(&self) -> Place {
        (self.chunks.len(), 0, 0)
    }
}

impl<K: SlotKey + Ord + Borrow<[u8]>, T: Clone> Sorted<K, T> {
    /// A map of `items`, which must be sorted by key with no key twice.
    #[cfg(test)]
    pub(crate) fn from_sorted(items: Vec<(K, T)>) -> Self {
        let len = items.len();
        let mut leaves = Vec::with_capacity(len.div_ceil(LEAF_TARGET));
        push_leaves(&mut leaves, items);
        let mut chunks = Vec::new();
        push_chunks(&mut chunks, leaves);
        Sorted { chunks: chunks.into(), len }
    }

    /// A new map with `changes` applied; untouched chunks and leaves are shared.
    /// `changes` must be sorted by key with no key twice.
    pub(crate) fn with_changes(&self, changes: Vec<SortedChange<K, T>>) -> Self {
        let mut chunks: Vec<Chunk<K, T>> = Vec::with_capacity(self.chunks.len() + 1);
        let mut len = self.len;
        let mut changes = changes.into_iter().peekable();
        for (i, chunk) in self.chunks.iter().enumerate() {
            // Changes before the next chunk's first key belong to this chunk (the first
            // chunk also takes those before its own first key, the last one those after).
            let next_first = self.chunks.get(i + 1).map(|c| c.first.borrow());
            let mut mine = Vec::new();
            while let Some(change) =
                changes.next_if(|(k, _)| next_first.is_none_or(|n| k.borrow() < n))
            {
                mine.push(change);
            }
            if mine.is_empty() {
                chunks.push(chunk.clone());
                continue;
            }
            push_chunks(&mut chunks, with_leaf_changes(&chunk.leaves, mine, &mut len));
        }
        // An empty map has no chunk to take the changes.
        let rest: Vec<SortedChange<K, T>> = changes.collect();
        if !rest.is_empty() {
            push_chunks(&mut chunks, with_leaf_changes(&[], rest, &mut len));
        }
        Sorted { chunks: chunks.into(), len }
    }

    /// The value of `key`.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &[u8]) -> Option<&T> {
        let (ci, li, ii) = self.position(key, false);
        let (k, v) = self.chunks.get(ci)?.leaves.get(li)?.items.get(ii)?;
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
            Bound::Unbounded => (0, 0, 0),
            Bound::Included(k) => self.position(k, false),
            Bound::Excluded(k) => self.position(k, true),
        };
        // The end is searched for from the front's chunk on: a short scan ends in that
        // chunk or the next. An end before the start gives a place at or before the
        // front, an empty range, as a search from the first chunk would.
        let back = match end {
            Bound::Unbounded => self.end(),
            Bound::Included(k) => self.position_from(k, true, front),
            Bound::Excluded(k) => self.position_from(k, false, front),
        };
        SortedRange::between(&self.chunks, front, back)
    }

    /// The place of the first item whose key is `>= key` (or `> key` when `after`).
    fn position(&self, key: &[u8], after: bool) -> Place {
        let seek = Seek::new(key);
        let ci = self.chunks.partition_point(|c| seek.cmp_stored(&c.first).is_le());
        self.position_in_chunk(&seek, after, ci.saturating_sub(1), 0)
    }

    /// [`position`](Sorted::position), looking from the place `from` on only: a short
    /// scan ends in the front's leaf or one of the next few, found in steps that double
    /// (1, 2, 4... leaves ahead), then by binary search between the last two steps; the
    /// same over chunks when the key is at or after the next chunk's first.
    fn position_from(&self, key: &[u8], after: bool, from: Place) -> Place {
        let seek = Seek::new(key);
        let (ci, li, _) = from;
        let at_or_before = |first: &K| seek.cmp_stored(first).is_le();
        match self.chunks.get(ci + 1) {
            Some(next) if at_or_before(&next.first) => {
                let cj = gallop(&self.chunks, ci + 1, |c| at_or_before(&c.first));
                self.position_in_chunk(&seek, after, cj, 0)
            }
            _ => {
                let Some(chunk) = self.chunks.get(ci) else {
                    return self.end();
                };
                let lj = gallop(&chunk.leaves, li, |l| at_or_before(&l.first));
                self.position_in_leaf(&seek, after, ci, lj)
            }
        }
    }

    /// The place of the first item `>= seek` (`> seek` when `after`) in chunk `ci`, the
    /// last chunk whose first key is at or before it, looking from its leaf `from` on;
    /// or the place after that chunk's last item.
    fn position_in_chunk(&self, seek: &Seek<'_>, after: bool, ci: usize, from: usize) -> Place {
        let Some(chunk) = self.chunks.get(ci) else {
            return self.end();
        };
        let leaves = chunk.leaves.get(from..).unwrap_or_default();
        let li = from + leaves.partition_point(|l| seek.cmp_stored(&l.first).is_le());
        self.position_in_leaf(seek, after, ci, li.saturating_sub(1).max(from))
    }

    /// The place of the first item `>= seek` (`> seek` when `after`) in leaf `li` of
    /// chunk `ci`, or the place after that leaf's last item.
    fn position_in_leaf(&self, seek: &Seek<'_>, after: bool, ci: usize, li: usize) -> Place {
        let Some(leaves) = self.chunks.get(ci).map(|c| &c.leaves) else {
            return self.end();
        };
        let Some(leaf) = leaves.get(li) else {
            return (ci + 1, 0, 0).min(self.end());
        };
        let ii = leaf.items.partition_point(|(k, _)| {
            let order = seek.cmp_stored(k);
            if after { order.is_le() } else { order.is_lt() }
        });
        if ii < leaf.items.len() {
            (ci, li, ii)
        } else if li + 1 < leaves.len() {
            (ci, li + 1, 0)
        } else {
            (ci + 1, 0, 0)
        }
    }

    /// Bytes held by the index itself: the chunk and leaf arrays with their fences,
    /// leaf headers and items (keys longer than the inline limit add their own
    /// allocation, not counted).
    pub(crate) fn structural_bytes(&self) -> usize {
        let leaves: usize = self.chunks.iter().map(|c| c.leaves.len()).sum();
        self.chunks.len() * (size_of::<Chunk<K, T>>() + 2 * size_of::<usize>())
            + leaves * (size_of::<Leaf<K, T>>() + 2 * size_of::<usize>())
            + self.len * size_of::<(K, T)>()
    }
}

/// In `items`, the last element from `from` on for which `at_or_before` holds (or
/// `from` when none does), found in steps that double from `from`, then by binary
/// search between the last two steps.
fn gallop<X>(items: &[X], from: usize, at_or_before: impl Fn(&X) -> bool) -> usize {
    let ahead = items.get(from..).unwrap_or_default();
    let mut step = 1;
    while ahead.get(step).is_some_and(&at_or_before) {
        step *= 2;
    }
    // Element `step / 2` is at or before (when `step` > 1); element `step` is not, or
    // does not exist.
    let low = step / 2;
    let within = ahead.get(low..step.min(ahead.len())).unwrap_or_default();
    (from + low + within.partition_point(&at_or_before)).saturating_sub(1).max(from)
}

/// The leaves of one chunk, `leaves`, with `changes` (sorted, distinct keys) applied:
/// untouched leaves shared, touched ones merged and split again; keeps `len` up to date.
fn with_leaf_changes<K: Clone + Ord + Borrow<[u8]>, T: Clone>(
    leaves: &[Leaf<K, T>],
    changes: Vec<SortedChange<K, T>>,
    len: &mut usize,
) -> Vec<Leaf<K, T>> {
    let mut out: Vec<Leaf<K, T>> = Vec::with_capacity(leaves.len() + 1);
    let mut changes = changes.into_iter().peekable();
    for (i, leaf) in leaves.iter().enumerate() {
        // Changes before the next leaf's first key belong to this leaf (the first leaf
        // also takes those before its own first key, the last one those after).
        let next_first = leaves.get(i + 1).map(|l| &l.first);
        let mut mine = Vec::new();
        while let Some(change) = changes.next_if(|(k, _)| next_first.is_none_or(|n| k < n)) {
            mine.push(change);
        }
        if mine.is_empty() {
            out.push(leaf.clone());
            continue;
        }
        push_leaves(&mut out, merge(&leaf.items, mine, len));
    }
    // A chunk with no leaf (a map with none) takes them all here.
    let rest: Vec<SortedChange<K, T>> = changes.collect();
    if !rest.is_empty() {
        push_leaves(&mut out, merge(&[], rest, len));
    }
    out
}

/// Appends `leaves` (in key order) as chunks: one chunk when they fit, else chunks of
/// `CHUNK_TARGET`; nothing when empty.
fn push_chunks<K: Clone, T>(chunks: &mut Vec<Chunk<K, T>>, leaves: Vec<Leaf<K, T>>) {
    let chunk = |leaves: Vec<Leaf<K, T>>| {
        leaves.first().map(|l| l.first.clone()).map(|first| Chunk { first, leaves: leaves.into() })
    };
    if leaves.len() <= CHUNK_MAX {
        chunks.extend(chunk(leaves));
        return;
    }
    let mut leaves = leaves.into_iter().peekable();
    while leaves.peek().is_some() {
        chunks.extend(chunk(leaves.by_ref().take(CHUNK_TARGET).collect()));
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
fn merge<K: Clone + Ord, T: Clone>(
    old: &[(K, T)],
    changes: Vec<SortedChange<K, T>>,
    len: &mut usize,
) -> Vec<(K, T)> {
    let mut out = Vec::with_capacity(old.len() + changes.len());
    let mut old = old.iter().peekable();
    for (key, value) in changes {
        while let Some(item) = old.next_if(|(k, _)| *k < key) {
            out.push(item.clone());
        }
        let replaced = old.next_if(|(k, _)| *k == key).is_some();
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
/// leaf, the whole leaves between (the rest of the first chunk, the whole chunks
/// between, the start of the last chunk), and the start of the last leaf, each walked
/// as a slice (one pointer comparison per item, no bounds checks).
pub(crate) struct SortedRange<'a, K, T> {
    /// What is left of the front leaf.
    front: std::slice::Iter<'a, (K, T)>,
    /// Whole leaves after the front leaf, in the front's chunk, untouched so far.
    first_leaves: &'a [Leaf<K, T>],
    /// The chunks between the front one and the back one, untouched so far.
    chunks: &'a [Chunk<K, T>],
    /// Whole leaves before the back leaf, in the back's chunk, untouched so far.
    last_leaves: &'a [Leaf<K, T>],
    /// What is left of the back leaf (empty when the range ends at a leaf's end).
    back: std::slice::Iter<'a, (K, T)>,
}

impl<'a, K, T> SortedRange<'a, K, T> {
    /// The items from place `front` up to, not including, place `back`.
    fn between(chunks: &'a [Chunk<K, T>], front: Place, back: Place) -> Self {
        let empty = SortedRange {
            front: [].iter(),
            first_leaves: &[],
            chunks: &[],
            last_leaves: &[],
            back: [].iter(),
        };
        if front >= back {
            return empty;
        }
        let ((cf, lf, fi), (cb, lb, bi)) = (front, back);
        let leaves = |ci: usize| chunks.get(ci).map_or(&[][..], |c| &c.leaves[..]);
        let items = |ci: usize, li: usize| leaves(ci).get(li).map_or(&[][..], |l| &l.items[..]);
        if (cf, lf) == (cb, lb) {
            let within = items(cf, lf).get(fi..bi).unwrap_or_default();
            return SortedRange { front: within.iter(), ..empty };
        }
        let front = items(cf, lf).get(fi..).unwrap_or_default().iter();
        let back = items(cb, lb).get(..bi).unwrap_or_default().iter();
        if cf == cb {
            let first_leaves = leaves(cf).get(lf + 1..lb).unwrap_or_default();
            return SortedRange { front, first_leaves, back, ..empty };
        }
        SortedRange {
            front,
            first_leaves: leaves(cf).get(lf + 1..).unwrap_or_default(),
            chunks: chunks.get(cf + 1..cb).unwrap_or_default(),
            last_leaves: leaves(cb).get(..lb).unwrap_or_default(),
            back,
        }
    }
}

impl<'a, K, T> Iterator for SortedRange<'a, K, T> {
    type Item = (&'a K, &'a T);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self.front.next() {
            Some((k, v)) => Some((k, v)),
            None => self.next_leaf(),
        }
    }
}

impl<'a, K, T> SortedRange<'a, K, T> {
    /// [`next`](Iterator::next) once the front leaf is done: out of line, so that the
    /// walk through a leaf stays a pointer comparison and an increment.
    #[inline(never)]
    fn next_leaf(&mut self) -> Option<(&'a K, &'a T)> {
        loop {
            if let Some((leaf, rest)) = self.first_leaves.split_first() {
                self.front = leaf.items.iter();
                self.first_leaves = rest;
            } else if let Some((chunk, rest)) = self.chunks.split_first() {
                self.first_leaves = &chunk.leaves;
                self.chunks = rest;
            } else if let Some((leaf, rest)) = self.last_leaves.split_first() {
                self.front = leaf.items.iter();
                self.last_leaves = rest;
            } else {
                return self.back.next().map(|(k, v)| (k, v));
            }
            if let Some((k, v)) = self.front.next() {
                return Some((k, v));
            }
        }
    }

    /// [`next_back`](DoubleEndedIterator::next_back) once the back leaf is done.
    #[inline(never)]
    fn next_back_leaf(&mut self) -> Option<(&'a K, &'a T)> {
        loop {
            if let Some((leaf, rest)) = self.last_leaves.split_last() {
                self.back = leaf.items.iter();
                self.last_leaves = rest;
            } else if let Some((chunk, rest)) = self.chunks.split_last() {
                self.last_leaves = &chunk.leaves;
                self.chunks = rest;
            } else if let Some((leaf, rest)) = self.first_leaves.split_last() {
                self.back = leaf.items.iter();
                self.first_leaves = rest;
            } else {
                return self.front.next_back().map(|(k, v)| (k, v));
            }
            if let Some((k, v)) = self.back.next_back() {
                return Some((k, v));
            }
        }
    }
}

impl<K, T> DoubleEndedIterator for SortedRange<'_, K, T> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        match self.back.next_back() {
            Some((k, v)) => Some((k, v)),
            None => self.next_back_leaf(),
        }
    }
}

#[cfg(test)]
#[path = "ordered_tests.rs"]
mod tests;
