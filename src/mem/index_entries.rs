//! The ordered entries of a secondary index, packed: a persistent sorted set of
//! (index key, primary key) pairs, each held as its encoded bytes and nothing else.
//!
//! An entry is the bytes of its index key then its primary key (its on-disk key, which
//! sorts by index key, then primary key) and one `u32` that says where those bytes end
//! in their leaf and how long its index key is. A leaf of up to `LEAF_MAX` entries holds
//! those words and bytes, the index-key bytes that all its entries start with only once
//! (its prefix: a city name shared by a leaf of one city's records, the high bytes of
//! nearby counts); the leaves sit in key order in one array, each beside its first
//! entry's bytes (the fences). So an entry costs its key bytes past the prefix and 4
//! bytes: at most 20 for a `u64` index key of a `u64` record key, 12 when the leaf
//! shares the index key, where a tree node of owned keys would hold two 16- or 32-byte
//! key buffers.
//!
//! Invariants, for every leaf:
//! 1. its entries are sorted by their bytes, with none twice, and all of them sort
//!    after the entries of the leaves before it;
//! 2. it holds between 1 and `LEAF_MAX` entries, and its fence is its first entry's
//!    bytes;
//! 3. `bytes` starts with the `prefix` bytes that every entry's index key starts with;
//!    `ends[i] >> IKEY_BITS` is where the rest of entry `i` ends in `bytes` (it starts
//!    where entry `i - 1`'s ends, or after the prefix), and `ends[i] & IKEY_MASK` is the
//!    length of its whole index key, at least the prefix's.
//!
//! A published group copies the leaf array (one reference count per leaf) and rebuilds
//! only the leaves it touches; a snapshot keeps the old array.

use crate::base::limits::MAX_KEY_BYTES;
use crate::keys::WideKey;
use std::cmp::Ordering;
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
    /// The length of the index-key bytes every entry starts with, held once at the
    /// start of `bytes`.
    prefix: u32,
    ends: Box<[u32]>,
    bytes: Box<[u8]>,
}

impl LeafData {
    fn len(&self) -> usize {
        self.ends.len()
    }

    /// The bytes every entry's index key starts with.
    #[inline]
    fn prefix(&self) -> &[u8] {
        self.bytes.get(..self.prefix as usize).unwrap_or_default()
    }

    /// Entry `i`'s bytes after the prefix, and its index key's whole length.
    #[inline]
    fn rest(&self, i: usize) -> (&[u8], usize) {
        let start =
            i.checked_sub(1).and_then(|p| self.ends.get(p)).map_or(self.prefix, |w| w >> IKEY_BITS);
        let word = self.ends.get(i).copied().unwrap_or_default();
        let bytes =
            self.bytes.get(start as usize..(word >> IKEY_BITS) as usize).unwrap_or_default();
        (bytes, (word & IKEY_MASK) as usize)
    }

    /// Entry `i` in its parts.
    #[inline]
    fn entry(&self, i: usize) -> EntryRef<'_> {
        let (rest, ikey_len) = self.rest(i);
        let (ikey_rest, pk) =
            rest.split_at(ikey_len.saturating_sub(self.prefix as usize).min(rest.len()));
        EntryRef { prefix: self.prefix(), ikey_rest, pk }
    }

    /// How entry `i` (index key then primary key) orders against `key`.
    #[inline]
    fn cmp_entry(&self, i: usize, key: &[u8]) -> Ordering {
        let prefix = self.prefix();
        let (head, tail) = key.split_at(prefix.len().min(key.len()));
        match prefix.get(..head.len()).unwrap_or_default().cmp(head) {
            // The key ends inside the prefix: the entry goes on, so it is greater.
            Ordering::Equal if head.len() < prefix.len() => Ordering::Greater,
            Ordering::Equal => self.rest(i).0.cmp(tail),
            other => other,
        }
    }

    /// The position of the first entry `>= key` (`> key` when `after`).
    #[inline]
    fn position(&self, key: &[u8], after: bool) -> usize {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = low + (high - low) / 2;
            let order = self.cmp_entry(mid, key);
            let before = if after { order.is_le() } else { order.is_lt() };
            if before {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }
}

/// One entry, as its leaf holds it: the leaf's shared prefix of index-key bytes, the
/// rest of the index key, and the primary key.
#[derive(Clone, Copy)]
pub(crate) struct EntryRef<'a> {
    prefix: &'a [u8],
    ikey_rest: &'a [u8],
    pk: &'a [u8],
}

impl<'a> EntryRef<'a> {
    /// The primary key.
    #[inline]
    pub(crate) fn pk(&self) -> &'a [u8] {
        self.pk
    }

    /// The index key's length.
    pub(crate) fn ikey_len(&self) -> usize {
        self.prefix.len() + self.ikey_rest.len()
    }

    /// Whether the index key is `ikey`.
    #[inline]
    fn ikey_is(&self, ikey: &[u8]) -> bool {
        ikey.len() == self.ikey_len()
            && ikey.starts_with(self.prefix)
            && ikey.get(self.prefix.len()..) == Some(self.ikey_rest)
    }

    /// Runs `f` on the index key, put together in `scratch` when its leaf holds part of
    /// it as a prefix.
    #[inline]
    pub(crate) fn with_ikey<R>(&self, scratch: &mut Vec<u8>, f: impl FnOnce(&[u8]) -> R) -> R {
        if self.prefix.is_empty() {
            return f(self.ikey_rest);
        }
        scratch.clear();
        scratch.extend_from_slice(self.prefix);
        scratch.extend_from_slice(self.ikey_rest);
        f(scratch)
    }

    /// The index key, in a `WideKey`.
    pub(crate) fn wide_ikey(&self) -> WideKey {
        WideKey::concat(self.prefix, self.ikey_rest)
    }

    /// The entry's on-disk key: the index key then the primary key.
    pub(crate) fn whole(&self) -> Vec<u8> {
        [self.prefix, self.ikey_rest, self.pk].concat()
    }
}

/// A leaf and its fence.
#[derive(Clone)]
struct Leaf {
    first: WideKey,
    data: Arc<LeafData>,
}

/// Appends entries, in order, into leaves of `LEAF_TARGET`. The leaf being built holds
/// its entries whole; sealing it moves the index-key bytes they all start with to its
/// front, once.
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
        self.append(&[ikey, pk], ikey.len());
        if self.ends.len() == LEAF_TARGET {
            self.seal_leaf();
        }
    }

    /// Appends an entry given in parts, with its index key's length, to the leaf being
    /// built, whatever its size.
    fn append(&mut self, parts: &[&[u8]], ikey_len: usize) {
        for part in parts {
            self.bytes.extend_from_slice(part);
        }
        self.ends.push(word(self.bytes.len(), ikey_len));
        self.len += 1;
    }

    fn seal_leaf(&mut self) {
        let (Some(&first_end), Some(&last_end)) = (self.ends.first(), self.ends.last()) else {
            return;
        };
        let whole = |start: u32, end: u32| {
            self.bytes.get((start >> IKEY_BITS) as usize..(end >> IKEY_BITS) as usize)
        };
        let first = whole(0, first_end).unwrap_or_default();
        let last_start = self.ends.len().checked_sub(2).and_then(|p| self.ends.get(p));
        let last = whole(last_start.copied().unwrap_or(0), last_end).unwrap_or_default();
        // Sorted entries share what the first and the last share; only index-key bytes
        // are taken, so that each primary key stays whole in its entry.
        let shortest = self.ends.iter().map(|w| (w & IKEY_MASK) as usize).min().unwrap_or(0);
        let prefix = first.iter().zip(last).take_while(|(a, b)| a == b).count().min(shortest);
        let mut bytes = Vec::with_capacity(self.bytes.len() - (self.ends.len() - 1) * prefix);
        bytes.extend_from_slice(first.get(..prefix).unwrap_or_default());
        let mut start = 0;
        let ends: Box<[u32]> = self
            .ends
            .iter()
            .map(|&w| {
                let end = (w >> IKEY_BITS) as usize;
                bytes.extend_from_slice(self.bytes.get(start + prefix..end).unwrap_or_default());
                start = end;
                word(bytes.len(), (w & IKEY_MASK) as usize)
            })
            .collect();
        let fence = WideKey::from_slice(first);
        let data = LeafData { prefix: prefix as u32, ends, bytes: bytes.into() };
        self.leaves.push(Leaf { first: fence, data: Arc::new(data) });
        self.ends.clear();
        self.bytes.clear();
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
        let data = &self.leaves.get(li)?.data;
        if ii >= data.len() {
            return None;
        }
        let entry = data.entry(ii);
        entry.ikey_is(ikey).then_some(entry.pk)
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
            merge_leaf(&mut out, Some(&leaf.data), &mine, &mut len);
        }
        let rest: Vec<EntryChange> = changes.collect();
        if !rest.is_empty() {
            merge_leaf(&mut out, None, &rest, &mut len);
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
    changes: &[EntryChange],
    len: &mut usize,
) {
    out.seal_leaf();
    // Each item an old entry (by position) or an added one (its bytes, its index key's
    // length).
    let mut merged: Vec<Result<usize, (&[u8], usize)>> =
        Vec::with_capacity(LEAF_MAX + changes.len());
    let old_len = old.map_or(0, LeafData::len);
    let mut i = 0;
    let order = |i: usize, key: &[u8]| old.map_or(Ordering::Greater, |o| o.cmp_entry(i, key));
    for (key, add) in changes {
        let key = key.as_bytes();
        while i < old_len && order(i, key).is_lt() {
            merged.push(Ok(i));
            i += 1;
        }
        let present = i < old_len && order(i, key).is_eq();
        match (add, present) {
            (Some(ikey_len), false) => {
                merged.push(Err((key, *ikey_len)));
                *len += 1;
            }
            (Some(_), true) => {
                merged.push(Ok(i));
                i += 1;
            }
            (None, true) => {
                i += 1;
                *len -= 1;
            }
            (None, false) => {}
        }
    }
    merged.extend((i..old_len).map(Ok));
    // One leaf when it fits, else leaves of `LEAF_TARGET`.
    let size = if merged.len() <= LEAF_MAX { LEAF_MAX } else { LEAF_TARGET };
    for chunk in merged.chunks(size) {
        for item in chunk {
            match (item, old) {
                (Ok(i), Some(old)) => {
                    let (rest, ikey_len) = old.rest(*i);
                    out.append(&[old.prefix(), rest], ikey_len);
                }
                (Err((entry, ikey_len)), _) => out.append(&[entry], *ikey_len),
                (Ok(_), None) => {}
            }
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
    type Item = EntryRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.end {
            return None;
        }
        let (li, ii) = self.at;
        let data = &self.leaves.get(li)?.data;
        self.at = if ii + 1 >= data.len() { (li + 1, 0) } else { (li, ii + 1) };
        Some(data.entry(ii))
    }
}

#[cfg(test)]
#[path = "index_entries_tests.rs"]
mod tests;
