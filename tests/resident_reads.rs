//! The resident layer answers point reads, ranges, prefixes and snapshots like a
//! `BTreeMap` of the committed records, before and after a reopen (which loads the
//! views on worker threads, in chunks).

use std::collections::BTreeMap;
use std::sync::Arc;
use viewstore::{Batch, Result, Store, ViewDef};

const NUMBERS: ViewDef<u64, String> = ViewDef::new("numbers");
const NAMES: ViewDef<(String, u32), u64> = ViewDef::new("names");

fn check_numbers(store: &Store, model: &BTreeMap<u64, String>) -> Result<()> {
    let view = store.view(&NUMBERS)?;
    assert_eq!(view.len(), model.len());
    for k in (0..30_000u64).step_by(7) {
        assert_eq!(view.get(&k).as_deref(), model.get(&k), "key {k}");
        assert_eq!(view.get_with(&k, String::len), model.get(&k).map(String::len));
    }
    let snap = view.snapshot();
    for (lo, hi) in [(0u64, 10u64), (4_000, 9_000), (19_990, 40_000), (500, 400)] {
        let got: Vec<(u64, String)> = snap.range(lo..hi).map(|(k, v)| (k, v.clone())).collect();
        let want: Vec<(u64, String)> = if lo <= hi {
            model.range(lo..hi).map(|(k, v)| (*k, v.clone())).collect()
        } else {
            Vec::new()
        };
        assert_eq!(got, want, "range {lo}..{hi}");
        let back: Vec<u64> = snap.range(lo..=hi).rev().map(|(k, _)| k).collect();
        let want_back: Vec<u64> = if lo <= hi {
            model.range(lo..=hi).rev().map(|(k, _)| *k).collect()
        } else {
            Vec::new()
        };
        assert_eq!(back, want_back, "reverse range {lo}..={hi}");
    }
    let all: Vec<u64> = snap.iter().map(|(k, _)| k).collect();
    assert_eq!(all, model.keys().copied().collect::<Vec<_>>());
    let stats = store.stats();
    let numbers = stats.views.iter().find(|v| v.name == "numbers").expect("the view is open");
    assert_eq!(numbers.records, model.len());
    assert!(numbers.index_bytes >= 40 * model.len());
    assert!(numbers.resident_bytes() > numbers.index_bytes);
    Ok(())
}

#[test]
fn reads_match_a_btreemap_before_and_after_reopen() -> Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let mut model = BTreeMap::new();
    {
        let store = Store::open(&path)?;
        let view = store.view(&NUMBERS)?;
        let mut batch = Batch::new();
        for k in 0..20_000u64 {
            batch.put(&view, &k, format!("n{k}"), 1)?;
            model.insert(k, format!("n{k}"));
        }
        store.submit(batch)?.wait()?;
        let before = view.snapshot();
        // Scattered updates, deletes and inserts past the end, in a few groups.
        let mut x = 3u64;
        for round in 0..5u64 {
            let mut batch = Batch::new();
            let mut seen = std::collections::HashSet::new();
            for _ in 0..2_000 {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let k = (x >> 33) % 30_000;
                if !seen.insert(k) {
                    continue;
                }
                if x.is_multiple_of(3) {
                    batch.delete(&view, &k, 10 + round)?;
                    model.remove(&k);
                } else {
                    batch.put(&view, &k, format!("r{round}-{k}"), 10 + round)?;
                    model.insert(k, format!("r{round}-{k}"));
                }
            }
            store.submit(batch)?.wait()?;
        }
        assert_eq!(before.len(), 20_000);
        assert_eq!(before.get_ref(&5).map(String::as_str), Some("n5"));
        check_numbers(&store, &model)?;
        store.close()?;
    }
    let store = Store::open(&path)?;
    check_numbers(&store, &model)?;
    Ok(())
}

#[test]
fn long_keys_and_prefixes_survive_reopen() -> Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let key = |i: u32| (format!("a-rather-long-user-name-{}", i % 50), i);
    {
        let store = Store::open(&path)?;
        let names = store.view(&NAMES)?;
        let mut batch = Batch::new();
        for i in 0..10_000u32 {
            batch.put(&names, &key(i), u64::from(i), 1)?;
        }
        store.submit(batch)?.wait()?;
        store.close()?;
    }
    let store = Store::open(&path)?;
    let names = store.view(&NAMES)?;
    assert_eq!(names.len(), 10_000);
    assert_eq!(names.get(&key(4_321)).as_deref(), Some(&4_321));
    let users: Vec<(String, u32)> = names
        .prefix(&"a-rather-long-user-name-7".to_string())
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(users.len(), 200);
    assert!(users.windows(2).all(|w| w[0] < w[1]));
    let shared: Vec<Arc<u64>> = names.range(key(0)..key(50)).into_iter().map(|(_, v)| v).collect();
    assert_eq!(shared.len(), 1);
    Ok(())
}

#[test]
fn a_view_large_enough_to_load_on_two_threads_reopens_whole() -> Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    // Sparse keys with a gap, so that the two halves of the load are uneven.
    let keys: Vec<u64> = (0..40_000u64).chain(1_000_000..1_030_000).collect();
    {
        let store = Store::open(&path)?;
        let view = store.view(&NUMBERS)?;
        for chunk in keys.chunks(10_000) {
            let mut batch = Batch::new();
            for k in chunk {
                batch.put(&view, k, format!("n{k}"), 1)?;
            }
            store.submit(batch)?.wait()?;
        }
        let mut batch = Batch::new();
        batch.delete(&view, &7, 2)?;
        store.submit(batch)?.wait()?;
        store.close()?;
    }
    let store = Store::open(&path)?;
    let view = store.view(&NUMBERS)?;
    assert_eq!(view.len(), keys.len() - 1);
    assert!(view.get(&7).is_none());
    for k in [0u64, 39_999, 1_000_000, 1_015_000, 1_029_999] {
        assert_eq!(view.get(&k).as_deref().map(String::as_str), Some(format!("n{k}").as_str()));
    }
    let snap = view.snapshot();
    let all: Vec<u64> = snap.iter().map(|(k, _)| k).collect();
    let want: Vec<u64> = keys.iter().copied().filter(|k| *k != 7).collect();
    assert_eq!(all, want);
    Ok(())
}

const BY_TEXT: ViewDef<String, u64> = ViewDef::new("by_text");

#[test]
fn string_keys_of_every_length_with_and_without_zero_bytes_are_read_back() -> Result<()> {
    // A `String` key without zero bytes is looked up from its own bytes; one with them
    // is encoded first. Both must find exactly the stored record.
    let keys = viewstore::testing::strings_with_and_without_zero_bytes(70);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    {
        let store = Store::open(&path)?;
        let view = store.view(&BY_TEXT)?;
        let mut batch = Batch::new();
        for (i, key) in (0u64..).zip(&keys) {
            batch.put(&view, key, i, 1)?;
        }
        store.submit(batch)?.wait()?;
    }
    let store = Store::open(&path)?;
    let view = store.view(&BY_TEXT)?;
    let snap = view.snapshot();
    for (i, key) in (0u64..).zip(&keys) {
        assert_eq!(view.get(key).as_deref(), Some(&i), "{key:?}");
        assert_eq!(snap.get_ref(key), Some(&i), "{key:?}");
        assert!(view.get(&format!("{key}~")).is_none(), "{key:?} one byte longer");
        let mut changed = key.clone();
        if changed.pop().is_some() {
            changed.push('~');
            assert!(view.get(&changed).is_none(), "{key:?} with its last byte changed");
        }
    }
    Ok(())
}

/// A view handle, a snapshot of it and an index of it read a record the same ways:
/// `get` shares the value, `get_with` runs a closure on it borrowed, and a snapshot
/// (which outlives its reads) also lends it out with `get_ref`.
#[test]
fn views_snapshots_and_indexes_read_alike() -> std::result::Result<(), Box<dyn std::error::Error>> {
    const BY_LEN: viewstore::IndexDef<String, usize> =
        viewstore::IndexDef::unique("by_len", String::len);
    const WORDS: ViewDef<u64, String> = ViewDef::new("words").with_indexes(&[&BY_LEN]);
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let words = store.view(&WORDS)?;
    words.put(&1, "one".to_owned(), 7)?;
    let snap = words.snapshot();
    let one = Arc::new("one".to_owned());
    assert_eq!((words.get(&1), snap.get(&1)), (Some(Arc::clone(&one)), Some(Arc::clone(&one))));
    assert_eq!(
        (words.get_with(&1, String::len), snap.get_with(&1, String::len)),
        (Some(3), Some(3))
    );
    assert_eq!(snap.get_ref(&1), Some(&*one));
    assert_eq!((words.version(&1), snap.version(&1)), (Some(7), Some(7)));
    assert_eq!(words.get_versioned(&1), snap.get_versioned(&1));
    let index = snap.index(&BY_LEN);
    assert_eq!(words.index_get(&BY_LEN, &3), Some((1, Arc::clone(&one))));
    assert_eq!(index.get(&3), Some((1, Arc::clone(&one))));
    assert_eq!(index.get_ref(&3), Some((1, &*one)));
    let upper = |k: u64, v: &String| (k, v.to_uppercase());
    let want = Some((1, "ONE".to_owned()));
    assert_eq!(
        (words.index_get_with(&BY_LEN, &3, upper), index.get_with(&3, upper)),
        (want.clone(), want)
    );
    assert_eq!((words.get(&2), snap.get_ref(&2), index.get(&4)), (None, None, None));
    Ok(())
}
