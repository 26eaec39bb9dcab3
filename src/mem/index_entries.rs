//! The ordered entries of a secondary index, packed: a persistent sorted set of
//! (index key, primary key) pairs, each held as its encoded bytes and nothing else.
//!
//! An entry is the bytes of its index key then its primary key (its on-disk key, which
//! sorts by index key, then primary key) and one `u32` that says where those bytes end
//! in their leaf and where the index key ends within them. A leaf of up to `LEAF_MAX`
//! entries is one shared allocation of those words and bytes; the leaves sit in key
//! order in one array, each beside its first entry's bytes (the fences). So an entry
//! costs its key bytes and 4 bytes: 20 for a `u64` index key of a `u64` record key,
//! where a tree node of owned keys would hold two 16- or 32-byte key buffers.
//!
//! Invariants, for every leaf:
//! 1. its entries are sorted by their bytes, with none twice, and all of them sort
//!    after the entries of the leaves before it;
//! 2. it holds between 1 and `LEAF_MAX` entries, and its fence is its first entry's
//!    bytes;
//! 3. `ends[i] >> IKEY_BITS` is where entry `i`'s bytes end in `bytes` (entry `i`
//!    starts where entry `i - 1` ends), and `ends[i] & IKEY_MASK` is the length of its
//!    index key, at most its length.
//!
//! A published group copies the leaf array (one reference count per leaf) and rebuilds
//! only the leaves it touches; a snapshot keeps the old array.

use crate::base::limits::MAX_KEY_BYTES;
use crate::keys::WideKey;
use std::ops::Bound;
use std::sync::Arc;

/// Entries per leaf when built from sorted input or split.
const LEAF_TARGET: usize = 64;
/// A leaf that grows past this splits.
const LEAF_MAX: usize = 128;
/// Bits of an entry's word that hold the length of its index key.
const IKEY_BITS: u32 = 11;
const IKEY_MASK: u32 = (1 << IKEY_BITS) - 1;

// An index key's length fits its bits, and the end of the last entry of the largest
// leaf (every entry two keys of the longest length) fits the rest of the word.
const _: () = assert!(MAX_KEY_BYTES <= IKEY_MASK as usize);
const _: () = assert!(LEAF_MAX * 2 * MAX_KEY_BYTES < 1 << (32 - IKEY_BITS));

/// The word of an entry whose bytes end at `end` in its leaf, of an index key of
/// `ikey_len` bytes (both bounded by the checks above).
#[inline]
fn word(end: usize, ikey_len: usize) -> u32 {
    ((end as u32) << IKEY_BITS) | ikey_len as u32
}

/// One leaf's entries: see the module's invariants.
struct LeafData {
    ends: Box<[u32]>,
    bytes: Box<[u8]>,
}

impl LeafData {
    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Entry `i` whole (index key then primary key), and its index key's length.
    #[inline]
    fn entry(&self, i: usize) -> (&[u8], usize) {
        let start = i.checked_sub(1).and_then(|p| self.ends.get(p)).map_or(0, |w| w >> IKEY_BITS);
        let word = self.ends.get(i).copied().unwrap_or_default();
        let bytes =
            self.bytes.get(start as usize..(word >> IKEY_BITS) as usize).unwrap_or_default();
        (bytes, (word & IKEY_MASK) as usize)
    }

    /// The position of the first entry `>= key` (`> key` when `after`).
    #[inline]
    fn position(&self, key: &[u8], after: bool) -> usize {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = low + (high - low) / 2;
            let (entry, _) = self.entry(mid);
            let before = if after { entry <= key } else { entry < key };
            if before {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }
}

/// A leaf and its fence.
#[derive(Clone)]
struct Leaf {
    first: WideKey,
    data: Arc<LeafData>,
}

/// Appends entries, in order, into leaves of `LEAF_TARGET`.
pub(crate) struct EntriesBuilder {
    leaves: Vec<Leaf>,
    ends: Vec<u32>,
    bytes: Vec<u8>,
    len: usize,
}

impl EntriesBuilder {
    /// A builder for about `entries` entries.
    pub(crate) fn with_capacity(entries: usize) -> Self {
        EntriesBuilder {
            leaves: Vec::with_capacity(entries.div_ceil(LEAF_TARGET)),
            ends: Vec::with_capacity(LEAF_TARGET),
            bytes: Vec::new(),
            len: 0,
        }
    }

    /// Appends an entry; entries must come sorted by index key then primary key, with
    /// none twice.
    #[inline]
    pub(crate) fn push(&mut self, ikey: &[u8], pk: &[u8]) {
        debug_assert!(ikey.len() <= MAX_KEY_BYTES && pk.len() <= MAX_KEY_BYTES);
        self.bytes.extend_from_slice(ikey);
        self.bytes.extend_from_slice(pk);
        self.ends.push(word(self.bytes.len(), ikey.len()));
        self.len += 1;
        if self.ends.len() == LEAF_TARGET {
            self.seal_leaf();
        }
    }

    /// Appends an entry given whole, with its index key's length, to the leaf being
    /// built, whatever its size.
    fn append(&mut self, entry: &[u8], ikey_len: usize) {
        self.bytes.extend_from_slice(entry);
        self.ends.push(word(self.bytes.len(), ikey_len.min(entry.len())));
        self.len += 1;
    }

    fn seal_leaf(&mut self) {
        if self.ends.is_empty() {
            return;
        }
        let data = LeafData {
            ends: std::mem::replace(&mut self.ends, Vec::with_capacity(LEAF_TARGET)).into(),
            bytes: std::mem::take(&mut self.bytes).into(),
        };
        let first = WideKey::from_slice(data.entry(0).0);
        self.leaves.push(Leaf { first, data: Arc::new(data) });
    }

    pub(crate) fn finish(mut self) -> IndexEntries {
        self.seal_leaf();
        IndexEntries { leaves: self.leaves.into(), len: self.len }
    }
}

/// One change to an [`IndexEntries`]: an entry (index key then primary key) added, with
/// its index key's length, or removed (`None`).
pub(crate) type EntryChange = (WideKey, Option<usize>);

/// The ordered entries of one secondary index (see the module docs).
#[derive(Clone)]
pub(crate) struct IndexEntries {
    leaves: Arc<[Leaf]>,
    len: usize,
}

impl IndexEntries {
    /// No entries.
    pub(crate) fn empty() -> Self {
        EntriesBuilder::with_capacity(0).finish()
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The primary key of the first entry of index key `ikey` (encoded).
    #[inline]
    pub(crate) fn first(&self, ikey: &[u8]) -> Option<&[u8]> {
        let (li, ii) = self.position(ikey, false);
        let (entry, ikey_len) = self.leaves.get(li)?.data.entry(ii);
        let (found, pk) = entry.split_at(ikey_len.min(entry.len()));
        (found == ikey).then_some(pk)
    }

    /// Every entry, in order.
    pub(crate) fn iter(&self) -> EntriesRange<'_> {
        self.range(Bound::Unbounded, Bound::Unbounded)
    }

    /// The entries whose bytes (index key then primary key) fall between `start` and
    /// `end`, in order.
    pub(crate) fn range(&self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> EntriesRange<'_> {
        let front = match start {
            Bound::Unbounded => (0, 0),
            Bound::Included(k) => self.position(k, false),
            Bound::Excluded(k) => self.position(k, true),
        };
        let back = match end {
            Bound::Unbounded => (self.leaves.len(), 0),
            Bound::Included(k) => self.position(k, true),
            Bound::Excluded(k) => self.position(k, false),
        };
        EntriesRange { leaves: &self.leaves, at: front, end: back }
    }

    /// The position of the first entry `>= key` (`> key` when `after`), as (leaf,
    /// index) with the index inside the leaf, or (leaves, 0) at the end.
    fn position(&self, key: &[u8], after: bool) -> (usize, usize) {
        let li = self.leaves.partition_point(|l| l.first.as_bytes() <= key).saturating_sub(1);
        let Some(leaf) = self.leaves.get(li) else {
            return (self.leaves.len(), 0);
        };
        let ii = leaf.data.position(key, after);
        if ii == leaf.data.len() { (li + 1, 0) } else { (li, ii) }
    }

    /// A new set with `changes` applied; untouched leaves are shared. `changes` must be
    /// sorted by entry, with no entry twice. Adding an entry that is there, or removing
    /// one that is not, changes nothing.
    pub(crate) fn with_changes(&self, changes: Vec<EntryChange>) -> Self {
        let mut out = EntriesBuilder::with_capacity(0);
        out.leaves.reserve(self.leaves.len() + 1);
        let mut changes = changes.into_iter().peekable();
        let mut len = self.len;
        for (i, leaf) in self.leaves.iter().enumerate() {
            // Changes before the next leaf's first entry belong to this leaf (the first
            // leaf also takes those before its own first entry, the last those after).
            let next_first = self.leaves.get(i + 1).map(|l| l.first.as_bytes());
            let mut mine = Vec::new();
            while let Some(change) =
                changes.next_if(|(k, _)| next_first.is_none_or(|n| k.as_bytes() < n))
            {
                mine.push(change);
            }
            if mine.is_empty() {
                out.seal_leaf();
                out.leaves.push(leaf.clone());
                continue;
            }
            merge_leaf(&mut out, Some(&leaf.data), mine, &mut len);
        }
        let rest: Vec<EntryChange> = changes.collect();
        if !rest.is_empty() {
            merge_leaf(&mut out, None, rest, &mut len);
        }
        out.seal_leaf();
        IndexEntries { leaves: out.leaves.into(), len }
    }

    /// Bytes held: the leaf array with its fences, and each leaf's words and key bytes
    /// with their allocation headers (fences longer than 30 bytes add their own
    /// allocation, not counted).
    pub(crate) fn structural_bytes(&self) -> usize {
        let per_leaf = size_of::<Leaf>() + size_of::<LeafData>() + 2 * size_of::<usize>();
        self.leaves
            .iter()
            .map(|l| per_leaf + l.data.ends.len() * size_of::<u32>() + l.data.bytes.len())
            .sum()
    }
}

/// Merges `changes` (sorted, distinct) into the entries of `old` and appends the result
/// to `out` as leaves: one when it fits `LEAF_MAX`, else leaves of `LEAF_TARGET`.
fn merge_leaf(
    out: &mut EntriesBuilder,
    old: Option<&LeafData>,
    changes: Vec<EntryChange>,
    len: &mut usize,
) {
    out.seal_leaf();
    let mut merged: Vec<(&[u8], usize)> = Vec::with_capacity(LEAF_MAX + changes.len());
    let old_len = old.map_or(0, LeafData::len);
    let mut i = 0;
    let entry = |i: usize| old.map(|o| o.entry(i)).unwrap_or_default();
    for (key, add) in &changes {
        let key = key.as_bytes();
        while i < old_len && entry(i).0 < key {
            merged.push(entry(i));
            i += 1;
        }
        let present = i < old_len && entry(i).0 == key;
        match (add, present) {
            (Some(ikey_len), false) => {
                merged.push((key, *ikey_len));
                *len += 1;
            }
            (Some(_), true) => {
                merged.push(entry(i));
                i += 1;
            }
            (None, true) => {
                i += 1;
                *len -= 1;
            }
            (None, false) => {}
        }
    }
    merged.extend((i..old_len).map(entry));
    // One leaf when it fits, else leaves of `LEAF_TARGET`.
    let size = if merged.len() <= LEAF_MAX { LEAF_MAX } else { LEAF_TARGET };
    for chunk in merged.chunks(size) {
        for &(entry, ikey_len) in chunk {
            out.append(entry, ikey_len);
        }
        out.seal_leaf();
    }
}

/// A range of an [`IndexEntries`], in order: each item is an entry's index key and
/// primary key.
pub(crate) struct EntriesRange<'a> {
    leaves: &'a [Leaf],
    /// The next entry, as (leaf, index).
    at: (usize, usize),
    /// The first entry past the range.
    end: (usize, usize),
}

impl<'a> Iterator for EntriesRange<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.end {
            return None;
        }
        let (li, ii) = self.at;
        let data = &self.leaves.get(li)?.data;
        let (entry, ikey_len) = data.entry(ii);
        self.at = if ii + 1 == data.len() { (li + 1, 0) } else { (li, ii + 1) };
        Some(entry.split_at(ikey_len.min(entry.len())))
    }
}

#[cfg(test)]
#[path = "index_entries_tests.rs"]
mod tests;
