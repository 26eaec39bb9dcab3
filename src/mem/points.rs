//! The point index of a view: a persistent hash table for reads by key.
//!
//! Buckets are chosen by the top bits of a seeded hash of the encoded key (for a key of up
//! to 14 bytes, two multiplications of its inline words) and hold their slots in one
//! shared allocation each. The bucket directory has two levels: a top array
//! of mid arrays of up to 64 buckets. A published group copies the top array, the mid
//! arrays it touches and the buckets it touches; everything else is shared with the
//! previous root. A read costs one hash, two array indexings (the top array is small
//! enough to stay in cache), a comparison of the bucket's 16 tag bytes in one word, and
//! the key comparison of the one 32-byte slot whose tag matches (rarely more).

use super::Entry;
use crate::keys::{INLINE, KeyBuf, KeyRef, SlotKey, word_at};
use std::hash::BuildHasher;
use std::sync::Arc;

/// Buckets per mid array, as a power of two. A publish copies the top array and every
/// mid array its group touches: with 64 buckets a mid array, a group of 100 random
/// writes into 1,000,000 records (131,072 buckets) copies about 8,400 bucket entries
/// (each a reference count increment, and a decrement when the old root goes) where mid
/// arrays of 256 made it about 26,000 and of 1,024 about 90,000; the top array is then
/// 32 KiB, which readers keep in their caches.
const MID_BITS: u32 = 6;
/// Fewest buckets, as a power of two.
const MIN_BITS: u32 = 4;
/// Average records per bucket that triggers a rehash into more buckets.
const GROW_AT: usize = 8;
/// Average records per bucket right after a rehash (at least; up to twice that, as
/// bucket counts are powers of two).
const AFTER_GROW: usize = 4;

/// One entry in a bucket: an encoded key and what it maps to.
pub(crate) struct PointSlot<T, Q = KeyBuf> {
    pub(crate) key: Q,
    pub(crate) entry: T,
}

/// One record of a view in a bucket.
pub(crate) type Slot<V> = PointSlot<Entry<V>>;

impl<T: Clone, Q: Clone> Clone for PointSlot<T, Q> {
    fn clone(&self) -> Self {
        PointSlot { key: self.key.clone(), entry: self.entry.clone() }
    }
}

/// A bucket: its slots, and one tag byte (8 bits of the key's hash) for each of its
/// first 16 slots. A read compares the tags of all 16 at once, in one word, and then
/// the key of only the slot whose tag matches: it touches one slot of the bucket, not
/// all of them.
struct Bucket<T, Q> {
    tags: u128,
    slots: Option<Arc<[PointSlot<T, Q>]>>,
}

impl<T, Q> Clone for Bucket<T, Q> {
    fn clone(&self) -> Self {
        Bucket { tags: self.tags, slots: self.slots.clone() }
    }
}

/// Slots of a bucket covered by its tags.
const TAGGED: usize = 16;
/// The lowest bit of every tag byte.
const LOW_BITS: u128 = u128::MAX / 0xFF;
/// The highest bit of every tag byte.
const HIGH_BITS: u128 = LOW_BITS << 7;

/// The tag of a key: hash bits that do not choose its bucket (those are the top ones).
#[inline]
fn tag_of(hash: u64) -> u8 {
    hash as u8
}

/// The tags of a bucket's slots, in slot order, packed into one word (the first 16).
fn pack_tags(tags: impl Iterator<Item = u8>) -> u128 {
    tags.take(TAGGED).enumerate().fold(0, |packed, (j, tag)| packed | u128::from(tag) << (8 * j))
}

/// The high bit of each tag byte of `tags` equal to `tag`, among the first `len`.
/// Bytes above a true match may be flagged too; every flag is checked against the key.
#[inline]
fn matching(tags: u128, tag: u8, len: usize) -> u128 {
    let x = tags ^ (u128::from(tag) * LOW_BITS);
    let flags = x.wrapping_sub(LOW_BITS) & !x & HIGH_BITS;
    if len >= TAGGED { flags } else { flags & ((1u128 << (8 * len)) - 1) }
}

type Mid<T, Q> = Arc<[Bucket<T, Q>]>;

/// The seeded hash of an index's keys.
#[derive(Clone)]
pub(crate) struct KeyHasher {
    seeds: [u64; 2],
}

impl KeyHasher {
    pub(crate) fn new() -> Self {
        let random = foldhash::fast::RandomState::default();
        KeyHasher { seeds: [random.hash_one(1u64), random.hash_one(2u64)] }
    }

    /// The hash of a stored key.
    #[inline]
    fn key<Q: SlotKey>(&self, key: &Q) -> u64 {
        if let Some(words) = key.words() {
            return self.words(words);
        }
        let bytes = key.as_bytes();
        self.long(bytes.len(), (0..bytes.len().div_ceil(8)).map(|i| word_at(bytes, i)))
    }

    /// The hash of a probe: the same as [`KeyHasher::key`] for the same bytes.
    #[inline]
    fn probe(&self, probe: &KeyRef<'_>) -> u64 {
        match probe {
            KeyRef::Inline { len, head, tail } => self.words((*len, *head, *tail)),
            _ => self.probe_long(probe),
        }
    }

    /// [`KeyHasher::probe`] for a long key: out of line, to keep short-key reads small.
    #[inline(never)]
    fn probe_long(&self, probe: &KeyRef<'_>) -> u64 {
        match probe {
            KeyRef::Inline { len, head, tail } => self.words((*len, *head, *tail)),
            KeyRef::Long(bytes) => {
                self.long(bytes.len(), (0..bytes.len().div_ceil(8)).map(|i| word_at(bytes, i)))
            }
            KeyRef::Words { len, words } => {
                // `long`, two words at a time without an iterator's bookkeeping.
                let mut h = self.seeds[0] ^ (*len as u64).rotate_left(32);
                let (pairs, rest) = words.as_chunks::<2>();
                for [a, b] in pairs {
                    h = fold(a ^ h, b ^ self.seeds[1]);
                }
                if let [a] = rest {
                    h = fold(a ^ h, self.seeds[1]);
                }
                fold(h ^ self.seeds[1], 0x9E37_79B9_7F4A_7C15)
            }
        }
    }

    /// The hash of a key longer than the inline limit, from its length and its
    /// little-endian words (zero past the end), two words per multiplication.
    #[inline]
    fn long(&self, len: usize, mut words: impl Iterator<Item = u64>) -> u64 {
        let mut h = self.seeds[0] ^ (len as u64).rotate_left(32);
        while let Some(a) = words.next() {
            let b = words.next().unwrap_or(0);
            h = fold(a ^ h, b ^ self.seeds[1]);
        }
        fold(h ^ self.seeds[1], 0x9E37_79B9_7F4A_7C15)
    }

    /// The hash of the encoding of `string`, holding no zero byte (the string, then
    /// the terminator 0x00 0x00), from the string itself: the same as
    /// [`KeyHasher::key`] of the encoded bytes.
    #[inline]
    fn string(&self, string: &[u8]) -> u64 {
        // Past the string, the encoding's words are zero: the terminator, then padding.
        let len = string.len() + 2;
        if len <= INLINE {
            let head = word_at(string, 0);
            return self.words((len as u8, head, head >> 48 | word_at(string, 1) << 16));
        }
        // As `long`, two words at a time: the string's whole pairs of words, then the
        // pair holding the rest of it (zeros when none is left), then, when the
        // terminator's second byte starts a pair of its own, that pair.
        let word = |c: &[u8; 8]| u64::from_le_bytes(*c);
        let mut hash = self.seeds[0] ^ (len as u64).rotate_left(32);
        let (pairs, rest) = string.as_chunks::<16>();
        for pair in pairs {
            let (first, second) = pair.split_at(8);
            let (first, second) =
                (first.first_chunk().map_or(0, word), second.first_chunk().map_or(0, word));
            hash = fold(first ^ hash, second ^ self.seeds[1]);
        }
        // The string is longer than 12 bytes: its last eight give its last word.
        let last = string.last_chunk().map_or(0, word);
        let left = rest.len() as u32;
        let (first, second) = if left >= 8 {
            (rest.first_chunk().map_or(0, word), last.checked_shr(8 * (16 - left)).unwrap_or(0))
        } else {
            (last.checked_shr(8 * (8 - left)).unwrap_or(0), 0)
        };
        hash = fold(first ^ hash, second ^ self.seeds[1]);
        if left == 15 {
            hash = fold(hash, self.seeds[1]);
        }
        fold(hash ^ self.seeds[1], 0x9E37_79B9_7F4A_7C15)
    }

    #[inline]
    fn words(&self, (len, a, b): (u8, u64, u64)) -> u64 {
        let h = fold(a ^ self.seeds[0], b ^ self.seeds[1] ^ u64::from(len));
        fold(h ^ self.seeds[1], 0x9E37_79B9_7F4A_7C15)
    }
}

/// The high and low halves of a 128-bit product, combined by exclusive or.
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// A persistent hash table from encoded keys to resident entries (or, for a unique
/// index, to primary keys).
pub(crate) struct PointIndex<T, Q = KeyBuf> {
    hasher: KeyHasher,
    bits: u32,
    top: Arc<[Mid<T, Q>]>,
    len: usize,
}

impl<T, Q> Clone for PointIndex<T, Q> {
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
pub(crate) type PointChange<T, Q = KeyBuf> = (Q, Option<T>);

impl<T: Clone, Q: SlotKey> PointIndex<T, Q> {
    /// An index of `slots`, whose keys must be distinct.
    pub(crate) fn build(slots: Vec<PointSlot<T, Q>>) -> Self {
        Self::build_with(KeyHasher::new(), slots)
    }

    fn build_with(hasher: KeyHasher, slots: Vec<PointSlot<T, Q>>) -> Self {
        let plan = BuildPlan::new(hasher, &slots);
        Self::assemble(plan, slots)
    }

    /// Builds the index from `slots` (distinct keys) and their buckets, computed
    /// beforehand, possibly on another thread. Every bucket is allocated once, at its
    /// exact size, so that building leaves no freed memory behind.
    pub(crate) fn assemble(plan: BuildPlan, slots: Vec<PointSlot<T, Q>>) -> Self {
        let BuildPlan { hasher, bits, buckets: bucket_ids, tags } = plan;
        let len = slots.len();
        let mut slots: Vec<Option<PointSlot<T, Q>>> = slots.into_iter().map(Some).collect();
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
        let mut scratch: Vec<PointSlot<T, Q>> = Vec::new();
        let top: Arc<[Mid<T, Q>]> = (0..buckets / mid_len)
            .map(|t| {
                (0..mid_len)
                    .map(|m| {
                        let b = t * mid_len + m;
                        let members = &order[starts[b]..starts[b + 1]];
                        scratch.extend(members.iter().filter_map(|&r| slots[r].take()));
                        Bucket {
                            tags: pack_tags(members.iter().map(|&r| tags[r])),
                            slots: (!members.is_empty()).then(|| scratch.drain(..).collect()),
                        }
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
    pub(crate) fn get(&self, key: &[u8]) -> Option<&T> {
        self.find(&KeyRef::new(key))
    }

    /// The entry of the key `probe` stands for.
    /// Always inlined: a probe handed over in memory would be read back in pieces of
    /// other sizes than it was written in.
    #[inline(always)]
    #[allow(
        clippy::inline_always,
        reason = "a key must not pass through memory: see `encode_key_on_stack`"
    )]
    pub(crate) fn find(&self, probe: &KeyRef<'_>) -> Option<&T> {
        self.find_hashed(self.hasher.probe(probe), |key| key.matched_by(probe))
    }

    /// The entry of the key that encodes `s`, a string holding no zero byte (see
    /// [`with_plain_string`](crate::keys::with_plain_string)), hashed and compared where `s` lies.
    #[inline]
    pub(crate) fn find_string(&self, s: &[u8]) -> Option<&T> {
        self.find_hashed(self.hasher.string(s), |key| key.matched_by_string(s))
    }

    /// The entry of the key whose hash is `hash` and for which `matches` holds.
    #[inline(always)]
    #[allow(
        clippy::inline_always,
        reason = "a key must not pass through memory: see `encode_key_on_stack`"
    )]
    fn find_hashed(&self, hash: u64, matches: impl Fn(&Q) -> bool) -> Option<&T> {
        let i = bucket_of(hash, self.bits);
        let mid = self.top.get(i >> MID_BITS.min(self.bits))?;
        let bucket = mid.get(i & ((1 << MID_BITS.min(self.bits)) - 1))?;
        let slots = bucket.slots.as_deref()?;
        let mut candidates = matching(bucket.tags, tag_of(hash), slots.len());
        while candidates != 0 {
            let slot = slots.get(candidates.trailing_zeros() as usize / 8)?;
            if matches(&slot.key) {
                return Some(&slot.entry);
            }
            candidates &= candidates - 1;
        }
        let untagged = slots.get(TAGGED..)?;
        untagged.iter().find(|s| matches(&s.key)).map(|s| &s.entry)
    }

    /// A new index with `changes` applied; untouched buckets are shared. Keys in
    /// `changes` must be distinct.
    pub(crate) fn with_changes(&self, changes: Vec<PointChange<T, Q>>) -> Self {
        if self.len + changes.len() > GROW_AT << self.bits {
            // Rehash everything into more buckets (amortized: the count at least doubles).
            let mut slots: Vec<PointSlot<T, Q>> = Vec::with_capacity(self.len + changes.len());
            let mut pending: std::collections::HashMap<Q, Option<T>> =
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
        // Each change with its bucket and its tag, from one hash.
        let mut per_bucket: Vec<(usize, u8, PointChange<T, Q>)> = changes
            .into_iter()
            .map(|c| {
                let hash = self.hasher.key(&c.0);
                (bucket_of(hash, self.bits), tag_of(hash), c)
            })
            .collect();
        per_bucket.sort_unstable_by_key(|(i, _, _)| *i);
        let mut top: Vec<Mid<T, Q>> = self.top.to_vec();
        let mut len = self.len;
        let mut rest = per_bucket.as_slice();
        while let Some(&(first, _, _)) = rest.first() {
            // All changes under one mid array: copy it once.
            let t = first >> mid_bits;
            let in_mid = rest.iter().take_while(|(j, _, _)| *j >> mid_bits == t).count();
            let (mut here, after) = rest.split_at(in_mid);
            rest = after;
            let mut mid: Vec<Bucket<T, Q>> = top[t].to_vec();
            while let Some(&(i, _, _)) = here.first() {
                let same = here.iter().take_while(|(j, _, _)| *j == i).count();
                let (bucket_changes, others) = here.split_at(same);
                here = others;
                let m = i & mid_mask;
                let bucket = self.changed_bucket(&mid[m], bucket_changes);
                len -= mid[m].slots.as_deref().map_or(0, <[_]>::len);
                len += bucket.slots.as_deref().map_or(0, <[_]>::len);
                mid[m] = bucket;
            }
            top[t] = mid.into();
        }
        PointIndex { hasher: self.hasher.clone(), bits: self.bits, top: top.into(), len }
    }

    /// `bucket` with `changes` (of its keys, each with its tag) made. The slots it keeps keep their tags, read
    /// from the bucket rather than hashed again; a changed key is compared only with
    /// the slots whose tag is its own.
    fn changed_bucket(
        &self,
        bucket: &Bucket<T, Q>,
        changes: &[(usize, u8, PointChange<T, Q>)],
    ) -> Bucket<T, Q> {
        let old = bucket.slots.as_deref().unwrap_or(&[]);
        let mut slots: Vec<PointSlot<T, Q>> = Vec::with_capacity(old.len() + changes.len());
        let mut tags = 0u128;
        let mut tag_next = |tag: u8, at: usize| {
            if at < TAGGED {
                tags |= u128::from(tag) << (8 * at);
            }
        };
        for (j, slot) in old.iter().enumerate() {
            let tag = if j < TAGGED {
                (bucket.tags >> (8 * j)) as u8
            } else {
                tag_of(self.hasher.key(&slot.key))
            };
            if changes.iter().any(|(_, t, (key, _))| *t == tag && *key == slot.key) {
                continue;
            }
            tag_next(tag, slots.len());
            slots.push(slot.clone());
        }
        for (_, tag, (key, entry)) in changes {
            if let Some(entry) = entry {
                tag_next(*tag, slots.len());
                slots.push(PointSlot { key: key.clone(), entry: entry.clone() });
            }
        }
        let slots = (!slots.is_empty()).then(|| Arc::from(slots));
        Bucket { tags, slots }
    }

    fn slots(&self) -> impl Iterator<Item = &PointSlot<T, Q>> {
        self.top.iter().flat_map(|mid| mid.iter()).flat_map(|b| b.slots.as_deref().unwrap_or(&[]))
    }

    /// Bytes held by the index itself: the directory, bucket headers and slots (keys
    /// longer than the inline limit add their own allocation, not counted here).
    pub(crate) fn structural_bytes(&self) -> usize {
        let buckets = 1usize << self.bits;
        let occupied = self.top.iter().flat_map(|m| m.iter()).filter(|b| b.slots.is_some()).count();
        self.top.len() * (size_of::<Mid<T, Q>>() + 2 * size_of::<usize>())
            + buckets * size_of::<Bucket<T, Q>>()
            + occupied * 2 * size_of::<usize>()
            + self.len * size_of::<PointSlot<T, Q>>()
    }
}

/// What building an index needs besides the records: the hasher, the bucket count and
/// each record's bucket.
pub(crate) struct BuildPlan {
    hasher: KeyHasher,
    bits: u32,
    buckets: Vec<u32>,
    /// Each record's tag, from the same hash as its bucket.
    tags: Vec<u8>,
}

impl BuildPlan {
    /// Hashes the keys of `slots` for a new index.
    pub(crate) fn new<T, Q: SlotKey>(hasher: KeyHasher, slots: &[PointSlot<T, Q>]) -> Self {
        let bits = bits_for(slots.len());
        let (buckets, tags) = slots
            .iter()
            .map(|s| {
                let hash = hasher.key(&s.key);
                (bucket_of(hash, bits) as u32, tag_of(hash))
            })
            .unzip();
        BuildPlan { hasher, bits, buckets, tags }
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
#[path = "points_tests.rs"]
mod tests;
