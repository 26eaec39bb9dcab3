//! The point index against a `HashMap`, through growth, removal and every kind of probe.

use super::{
    BuildPlan, KeyHasher, MIN_BITS, PointIndex, Slot, TAGGED, bucket_of, matching, tag_of,
};
use crate::keys::KeyBuf;
use crate::mem::Entry;
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
        index =
            index.with_changes(changes.into_iter().map(|(k, v)| (key(k), v.map(entry))).collect());
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
fn buckets_longer_than_their_tags_are_searched_whole() {
    // 16 buckets for 3,000 records: about 190 per bucket, most past the tagged 16.
    let slots: Vec<Slot<u64>> =
        (0..3_000u64).map(|k| Slot { key: key(k), entry: entry(k) }).collect();
    let hasher = KeyHasher::new();
    let key_hashes: Vec<u64> = slots.iter().map(|s| hasher.key(&s.key)).collect();
    let buckets = key_hashes.iter().map(|h| bucket_of(*h, MIN_BITS) as u32).collect();
    let tags = key_hashes.iter().map(|h| tag_of(*h)).collect();
    let plan = BuildPlan { buckets, tags, hasher, bits: MIN_BITS };
    let index = PointIndex::assemble(plan, slots);
    for k in 0..3_000u64 {
        assert_eq!(index.get(key(k).as_bytes()).map(|e| *e.value), Some(k), "key {k}");
    }
    assert!(index.get(key(3_000).as_bytes()).is_none());
    // Changes rebuild overfull buckets with their tags.
    let next = index.with_changes((0..3_000u64).step_by(7).map(|k| (key(k), None)).collect());
    for k in 0..3_000u64 {
        let want = (k % 7 != 0).then_some(k);
        assert_eq!(next.get(key(k).as_bytes()).map(|e| *e.value), want, "key {k}");
    }
    // Updates of slots past the tagged 16, and new keys, keep every tag right.
    let updates = (1..3_000u64).step_by(11).map(|k| (key(k), Some(entry(k + 1))));
    let inserts = (3_000..3_100u64).map(|k| (key(k), Some(entry(k))));
    let last = next.with_changes(updates.chain(inserts).collect());
    for k in 0..3_100u64 {
        let want = if k >= 3_000 {
            Some(k)
        } else if k % 11 == 1 {
            Some(k + 1)
        } else {
            (k % 7 != 0).then_some(k)
        };
        assert_eq!(last.get(key(k).as_bytes()).map(|e| *e.value), want, "key {k}");
    }
    assert_eq!(last.len(), 3_100 - (0..3_000u64).filter(|k| k % 7 == 0 && k % 11 != 1).count());
}

#[test]
fn changes_to_a_bucket_past_its_tagged_slots_keep_every_tag() {
    // 40 keys in bucket 0 of a 16-bucket index (few enough records that changes do not
    // rehash), and 20 more for it: changes replace, remove and add slots on both sides
    // of the 16 that have tags.
    let hasher = KeyHasher::new();
    let keys: Vec<u64> =
        (0u64..).filter(|&k| bucket_of(hasher.key(&key(k)), MIN_BITS) == 0).take(60).collect();
    let slots: Vec<Slot<u64>> =
        keys[..40].iter().map(|&k| Slot { key: key(k), entry: entry(k) }).collect();
    let slot_hashes: Vec<u64> = slots.iter().map(|s| hasher.key(&s.key)).collect();
    let buckets = slot_hashes.iter().map(|h| bucket_of(*h, MIN_BITS) as u32).collect();
    let tags = slot_hashes.iter().map(|h| tag_of(*h)).collect();
    let plan = BuildPlan { buckets, tags, hasher, bits: MIN_BITS };
    let mut index = PointIndex::assemble(plan, slots);
    let mut model: HashMap<u64, u64> = keys[..40].iter().map(|&k| (k, k)).collect();
    let mut x = 11u64;
    let mut past_tags = 0;
    for round in 0..200u64 {
        let bucket_len = index.top[0][0].slots.as_deref().map_or(0, <[_]>::len);
        if bucket_len > TAGGED {
            past_tags += 1;
        }
        let mut changes: HashMap<u64, Option<u64>> = HashMap::new();
        for _ in 0..5 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let k = keys[usize::try_from((x >> 33) % keys.len() as u64).unwrap_or(0)];
            changes.insert(k, (!x.is_multiple_of(3)).then_some(round * 1_000 + k));
        }
        for (k, v) in &changes {
            match v {
                Some(v) => model.insert(*k, *v),
                None => model.remove(k),
            };
        }
        index =
            index.with_changes(changes.into_iter().map(|(k, v)| (key(k), v.map(entry))).collect());
        assert_eq!(index.bits, MIN_BITS, "no rehash");
        assert_eq!(index.len(), model.len());
        for &k in &keys {
            let got = index.get(key(k).as_bytes()).map(|e| *e.value);
            assert_eq!(got, model.get(&k).copied(), "round {round}, key {k}");
        }
    }
    assert!(past_tags > 100, "the bucket held more than 16 slots in {past_tags} rounds");
}

#[test]
fn tags_flag_every_match_among_the_first_len() {
    let tags = u128::from_le_bytes([7, 3, 7, 0, 7, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 7]);
    let lanes = |m: u128| (0..16).filter(|j| m >> (8 * j + 7) & 1 == 1).collect::<Vec<_>>();
    assert!(lanes(matching(tags, 7, 16)).starts_with(&[0, 2, 4]));
    assert!(lanes(matching(tags, 7, 16)).contains(&15));
    assert_eq!(lanes(matching(tags, 7, 3)), vec![0, 2]);
    assert!(lanes(matching(tags, 0, 3)).is_empty());
    assert!(lanes(matching(tags, 0, 4)).contains(&3));
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

#[test]
fn long_keys_are_found_by_every_kind_of_probe() {
    use crate::keys::{KeyRef, WideKey, encode_key, encode_key_on_stack};
    // Strings of every length from 0 to 99, with and without zero bytes, as keys
    // of a view (`KeyBuf`) and of a unique index (`WideKey`).
    let strings: Vec<String> = (0..100usize)
        .flat_map(|n| {
            let plain: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            let mut zeroed = plain.clone();
            if n > 0 {
                zeroed.replace_range(n / 2..=n / 2, "\0");
            }
            [plain, zeroed]
        })
        .collect();
    let encoded: Vec<Vec<u8>> = strings
        .iter()
        .map(|s| {
            let mut out = Vec::new();
            encode_key(s, &mut out).expect("encodes");
            out
        })
        .collect();
    let mut distinct = encoded.clone();
    distinct.sort();
    distinct.dedup();
    let view = PointIndex::build(
        distinct
            .iter()
            .map(|k| Slot { key: KeyBuf::from_slice(k), entry: entry(k.len() as u64) })
            .collect(),
    );
    let unique: PointIndex<usize, WideKey> = PointIndex::build(
        distinct
            .iter()
            .map(|k| super::PointSlot { key: WideKey::from_slice(k), entry: k.len() })
            .collect(),
    );
    for (string, bytes) in strings.iter().zip(&encoded) {
        let mut stack = crate::keys::StackKey::new();
        encode_key_on_stack(string, &mut stack).expect("encodes");
        let probes = [stack.probe(), KeyRef::new(bytes)];
        for probe in &probes {
            assert_eq!(view.find(probe).map(|e| *e.value), Some(bytes.len() as u64));
            assert_eq!(unique.find(probe), Some(&bytes.len()), "{string:?}");
        }
        // One byte more or less finds nothing.
        let mut longer = bytes.clone();
        longer.push(1);
        assert!(unique.get(&longer).is_none() && view.get(&longer).is_none());
        assert!(view.get(&bytes[..bytes.len() - 1]).is_none() || bytes.len() < 2);
        // A string without zero bytes is also found from its own bytes, with the
        // same hash as its encoding.
        if let Some(s) = crate::keys::with_plain_string(string, str::to_owned) {
            assert_eq!(unique.hasher.string(s.as_bytes()), unique.hasher.key(&unique_key(bytes)));
            assert_eq!(unique.find_string(s.as_bytes()), Some(&bytes.len()), "{string:?}");
            assert_eq!(view.find_string(s.as_bytes()).map(|e| *e.value), Some(bytes.len() as u64));
            // A string one byte longer, or with its last byte changed, finds nothing;
            // one byte shorter, it finds its own record (every prefix is a key here).
            let mut other = s.as_bytes().to_vec();
            other.push(b'~');
            assert!(unique.find_string(&other).is_none(), "{string:?}");
            if let Some(last) = other.len().checked_sub(2) {
                other.truncate(last + 1);
                other[last] = b'~';
                assert!(unique.find_string(&other).is_none(), "{string:?}");
                other.pop();
                assert_eq!(unique.find_string(&other), Some(&(other.len() + 2)));
            }
        }
    }
}

fn unique_key(bytes: &[u8]) -> crate::keys::WideKey {
    crate::keys::WideKey::from_slice(bytes)
}
