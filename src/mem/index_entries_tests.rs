//! [`IndexEntries`] against a `BTreeSet` model: bulk builds, random changes across leaf
//! splits and merges, point lookups and ranges.

use super::{EntriesBuilder, EntryChange, IndexEntries};
use crate::keys::WideKey;
use std::collections::BTreeSet;
use std::ops::Bound;

/// An entry of index key `ikey` (one to three bytes, some of them long, to leave the
/// inline form) and primary key `pk`.
fn parts(ikey: u16, pk: u32) -> (Vec<u8>, Vec<u8>) {
    let mut i = ikey.to_be_bytes().to_vec();
    if ikey.is_multiple_of(5) {
        i.extend_from_slice(&[0xAB; 40]);
    }
    i.push(0);
    (i, pk.to_be_bytes().to_vec())
}

fn build(model: &BTreeSet<(Vec<u8>, Vec<u8>)>) -> IndexEntries {
    let mut b = EntriesBuilder::with_capacity(model.len());
    for (i, p) in model {
        b.push(i, p);
    }
    b.finish()
}

fn collect(entries: &IndexEntries, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut scratch = Vec::new();
    entries
        .range(lo, hi)
        .map(|e| (e.with_ikey(&mut scratch, <[u8]>::to_vec), e.pk().to_vec()))
        .collect()
}

fn model_range(
    model: &BTreeSet<(Vec<u8>, Vec<u8>)>,
    lo: Bound<&[u8]>,
    hi: Bound<&[u8]>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let inside = |whole: &[u8]| {
        let above = match lo {
            Bound::Included(k) => whole >= k,
            Bound::Excluded(k) => whole > k,
            Bound::Unbounded => true,
        };
        let below = match hi {
            Bound::Included(k) => whole <= k,
            Bound::Excluded(k) => whole < k,
            Bound::Unbounded => true,
        };
        above && below
    };
    model.iter().filter(|(i, p)| inside(&[i.as_slice(), p].concat())).cloned().collect()
}

#[test]
fn matches_a_btreeset_through_builds_changes_lookups_and_ranges() {
    let mut x = 7u64;
    let mut next = move || {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        x >> 33
    };
    let mut model: BTreeSet<(Vec<u8>, Vec<u8>)> =
        (0..3_000u32).map(|n| parts((n % 97) as u16, n)).collect();
    let mut entries = build(&model);
    assert_eq!(entries.len(), model.len());
    for round in 0..60 {
        // A round adds and removes entries at random, many in few leaves or few in many.
        let spread = if round % 2 == 0 { 400 } else { 20 };
        let mut changes: Vec<EntryChange> = Vec::new();
        let mut seen = BTreeSet::new();
        for _ in 0..(next() % 500) {
            let (i, p) = parts((next() % spread) as u16, (next() % 4_000) as u32);
            let whole = [i.as_slice(), &p].concat();
            if !seen.insert(whole.clone()) {
                continue;
            }
            let add = next() % 3 != 0;
            changes.push((WideKey::from_slice(&whole), add.then_some(i.len())));
            if add {
                model.insert((i, p));
            } else {
                model.remove(&(i, p));
            }
        }
        changes.sort_by(|a, b| a.0.cmp(&b.0));
        let before = collect(&entries, Bound::Unbounded, Bound::Unbounded);
        let after = entries.with_changes(changes);
        // The old set is untouched: a snapshot keeps reading it.
        assert_eq!(collect(&entries, Bound::Unbounded, Bound::Unbounded), before);
        entries = after;
        assert_eq!(entries.len(), model.len(), "round {round}");
        let all = collect(&entries, Bound::Unbounded, Bound::Unbounded);
        assert_eq!(all, model.iter().cloned().collect::<Vec<_>>(), "round {round}");
        for ikey in 0..420u16 {
            let (i, _) = parts(ikey, 0);
            let want = model.range((i.clone(), Vec::new())..).next().filter(|(f, _)| *f == i);
            assert_eq!(entries.first(&i), want.map(|(_, p)| p.as_slice()), "first of {ikey}");
        }
        let (a, b) = (parts((next() % 420) as u16, 0).0, parts((next() % 420) as u16, 9).0);
        for (lo, hi) in [
            (Bound::Included(&a[..]), Bound::Excluded(&b[..])),
            (Bound::Excluded(&a[..]), Bound::Included(&b[..])),
            (Bound::Unbounded, Bound::Excluded(&b[..])),
            (Bound::Included(&a[..]), Bound::Unbounded),
        ] {
            assert_eq!(collect(&entries, lo, hi), model_range(&model, lo, hi), "round {round}");
        }
    }
    // Removing everything leaves an empty set that takes entries again.
    let all: Vec<EntryChange> = model
        .iter()
        .map(|(i, p)| (WideKey::from_slice(&[i.as_slice(), p].concat()), None))
        .collect();
    let empty = entries.with_changes(all);
    assert_eq!((empty.len(), empty.iter().count()), (0, 0));
    let (i, p) = parts(3, 3);
    let one = empty
        .with_changes(vec![(WideKey::from_slice(&[i.as_slice(), &p].concat()), Some(i.len()))]);
    assert_eq!(collect(&one, Bound::Unbounded, Bound::Unbounded), vec![(i.clone(), p)]);
    assert_eq!(one.first(&i), Some(&3u32.to_be_bytes()[..]));
}

#[test]
fn an_entry_costs_its_bytes_and_one_word() {
    let model: BTreeSet<(Vec<u8>, Vec<u8>)> = (0..64_000u64)
        .map(|n| ((n / 8).to_be_bytes().to_vec(), n.to_be_bytes().to_vec()))
        .collect();
    let entries = build(&model);
    let (bytes, len) = (entries.structural_bytes(), model.len());
    // 8 primary-key bytes and a 4-byte word (eight entries share each index key, and a
    // leaf of 64 the first 7 bytes of theirs), plus the leaf's share of the index key's
    // last byte, its fence and headers.
    assert!((14 * len..15 * len).contains(&bytes), "{bytes} bytes for {len} entries");
}
