//! The ordered index against a `BTreeMap`, through inserts, removals and ranges from
//! both ends, across leaves and chunks; and the seek keys' order.

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
        let next =
            index.with_changes(changes.into_iter().map(|(k, v)| (key(k), v.map(entry))).collect());
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

#[test]
fn a_change_copies_only_the_chunk_and_the_leaf_it_touches() {
    let slots: Vec<Slot<u64>> = (0..10_000u64)
        .map(|i| Slot { key: key(i), entry: Entry { version: 1, value: Arc::new(i) } })
        .collect();
    let index = OrderedIndex::from_slots(&slots);
    let next = index.with_changes(vec![(key(5_000), Some(entry(7)))]);
    assert_eq!(index.chunks.len(), next.chunks.len());
    assert!(index.chunks.len() > 2, "the map spans several chunks");
    let mut copied_chunks = 0;
    for (old, new) in index.chunks.iter().zip(next.chunks.iter()) {
        if Arc::ptr_eq(&old.leaves, &new.leaves) {
            continue;
        }
        copied_chunks += 1;
        let copied_leaves = old
            .leaves
            .iter()
            .zip(new.leaves.iter())
            .filter(|(a, b)| !Arc::ptr_eq(&a.items, &b.items))
            .count();
        assert_eq!(copied_leaves, 1, "only the leaf holding the key is rebuilt");
    }
    assert_eq!(copied_chunks, 1, "only the chunk holding the key is copied");
}
