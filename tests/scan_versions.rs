//! Scans return each record's version with its value, as point reads give it, and a
//! view's length is exact: through puts, overwrites, deletes, revivals, purges of
//! tombstones, snapshots held across writes, and a reopen.

use std::collections::BTreeMap;
use viewstore::testing::Rng;
use viewstore::{Batch, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ITEMS: ViewDef<u64, String> = ViewDef::new("items");
const PATHS: ViewDef<String, u64> = ViewDef::new("paths");
const PAIRS: ViewDef<(u32, u32), u64> = ViewDef::new("pairs");

/// What the view should hold: key to (version, value).
type Model = BTreeMap<u64, (u64, String)>;

/// Every way a `View` and a snapshot report the records, against `model`.
fn check(store: &Store, model: &Model) -> TestResult {
    let items = store.view(&ITEMS)?;
    assert_eq!(items.len(), model.len());
    assert_eq!(items.is_empty(), model.is_empty());
    let snap = items.snapshot();
    assert_eq!(snap.len(), model.len());
    let want: Vec<(u64, u64, String)> =
        model.iter().map(|(k, (ver, val))| (*k, *ver, val.clone())).collect();
    let all: Vec<(u64, u64, String)> =
        snap.iter().versioned().map(|(k, ver, val)| (k, ver, val.clone())).collect();
    assert_eq!(all, want);
    let mut back: Vec<(u64, u64, String)> =
        snap.iter().versioned().rev().map(|(k, ver, val)| (k, ver, val.clone())).collect();
    back.reverse();
    assert_eq!(back, want);
    for (lo, hi) in [(0u64, 10u64), (95, 105), (250, 1_200), (1_990, 3_000), (7, 7)] {
        let want: Vec<(u64, u64, String)> =
            model.range(lo..hi).map(|(k, (ver, val))| (*k, *ver, val.clone())).collect();
        let got: Vec<(u64, u64, String)> = items
            .range_versioned(lo..hi)
            .into_iter()
            .map(|(k, ver, val)| (k, ver, (*val).clone()))
            .collect();
        assert_eq!(got, want, "View::range_versioned({lo}..{hi})");
        let got: Vec<(u64, u64, String)> =
            snap.range(lo..hi).versioned().map(|(k, ver, val)| (k, ver, val.clone())).collect();
        assert_eq!(got, want, "snapshot range({lo}..{hi}).versioned()");
        for (k, ver, _) in &got {
            assert_eq!(items.version(k), Some(*ver), "point read of {k}");
        }
    }
    let stats = store.stats();
    let stat = stats.views.iter().find(|v| v.name == "items").expect("the view is open");
    assert_eq!(stat.records, model.len());
    Ok(())
}

#[test]
fn versioned_scans_and_len_follow_every_kind_of_write() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let mut model = Model::new();
    // Tombstone versions, so that a put is made only above them, as the store requires.
    let mut deleted: BTreeMap<u64, u64> = BTreeMap::new();
    let mut rng = Rng::new(41);
    {
        let store = Store::open(&path)?;
        let items = store.view(&ITEMS)?;
        check(&store, &model)?;
        for round in 1..=30u64 {
            let mut batch = Batch::new();
            let mut touched = std::collections::BTreeSet::new();
            for _ in 0..(50 + round * 37 % 400) {
                let key = rng.below(2_000);
                if !touched.insert(key) {
                    continue;
                }
                let version = round * 10 + rng.below(5);
                if rng.one_in(3) {
                    batch.delete(&items, &key, version)?;
                    model.remove(&key);
                    deleted.insert(key, version);
                } else {
                    let value = format!("{key}@{version}");
                    batch.put(&items, &key, value.clone(), version)?;
                    model.insert(key, (version, value));
                    deleted.remove(&key);
                }
            }
            let before = items.snapshot();
            let before_len = before.len();
            let before_all: Vec<(u64, u64)> =
                before.iter().versioned().map(|(k, ver, _)| (k, ver)).collect();
            store.submit(batch)?.wait()?;
            // A snapshot taken before the group sees none of it.
            assert_eq!(before.len(), before_len);
            let again: Vec<(u64, u64)> =
                before.iter().versioned().map(|(k, ver, _)| (k, ver)).collect();
            assert_eq!(again, before_all);
            check(&store, &model)?;
        }
        // A stale put changes nothing, a stale delete neither.
        if let Some((&key, &(version, _))) = model.iter().next() {
            items.put(&key, "stale".into(), version)?;
            items.delete(&key, version.saturating_sub(1))?;
        }
        check(&store, &model)?;
        // Purging tombstones removes no live record.
        let purged = items.purge_tombstones(200)?;
        assert!(purged > 0, "some tombstones were below 200");
        check(&store, &model)?;
        store.close()?;
    }
    let store = Store::open(&path)?;
    check(&store, &model)?;
    let items = store.view(&ITEMS)?;
    // Revive deleted keys after the reopen.
    let mut batch = Batch::new();
    for (&key, &version) in deleted.iter().take(100) {
        batch.put(&items, &key, format!("back@{}", version + 1), version + 1)?;
        model.insert(key, (version + 1, format!("back@{}", version + 1)));
    }
    store.submit(batch)?.wait()?;
    check(&store, &model)?;
    Ok(())
}

#[test]
fn scans_by_prefix_and_string_start_carry_versions() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let paths = store.view(&PATHS)?;
    let pairs = store.view(&PAIRS)?;
    // Long keys (past the 14 bytes held inline) and short ones side by side.
    let names = ["/a", "/a/b", "/a/very/long/path/beyond/inline", "/ab", "/b", "/a/c"];
    for (i, name) in names.iter().enumerate() {
        paths.put(&(*name).to_string(), i as u64, 10 + i as u64)?;
    }
    paths.delete(&"/a/c".to_string(), 100)?;
    let got: Vec<(String, u64, u64)> =
        paths.starts_with_versioned("/a").into_iter().map(|(k, ver, val)| (k, ver, *val)).collect();
    let want = [
        ("/a".to_string(), 10, 0),
        ("/a/b".to_string(), 11, 1),
        ("/a/very/long/path/beyond/inline".to_string(), 12, 2),
        ("/ab".to_string(), 13, 3),
    ];
    assert_eq!(got, want);
    assert_eq!(paths.len(), 5);
    for a in 0..4u32 {
        for b in 0..4u32 {
            pairs.put(&(a, b), u64::from(a * 4 + b), u64::from(1 + a + b))?;
        }
    }
    pairs.delete(&(2, 1), 50)?;
    let got: Vec<((u32, u32), u64)> =
        pairs.prefix_versioned(&2u32).into_iter().map(|(k, ver, _)| (k, ver)).collect();
    assert_eq!(got, [((2, 0), 3), ((2, 2), 5), ((2, 3), 6)]);
    assert_eq!(pairs.len(), 15);
    Ok(())
}
