//! Keys made of keys: an index entry's on-disk key (index key, then primary key); the
//! first key past every key with a given prefix, and the bounds of those keys.

use crate::keys::WideKey;
use std::ops::Bound;

/// The on-disk key of an index entry: the index key then the primary key.
pub(crate) fn composite(ikey: &[u8], pk: &[u8]) -> WideKey {
    WideKey::concat(ikey, pk)
}

/// The smallest byte string greater than every string that starts with `prefix`, or
/// `None` when there is none (the prefix is all 0xFF).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The bounds of the encoded keys that start with `start`: from `start` itself to the
/// first key past all of them (unbounded when `start` is all 0xFF bytes, or empty).
pub(crate) fn prefix_bounds(start: Vec<u8>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let end = prefix_successor(&start).map_or(Bound::Unbounded, Bound::Excluded);
    (Bound::Included(start), end)
}
