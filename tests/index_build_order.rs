//! An index built in memory at open lists its entries in the order of their on-disk
//! keys (index key, then primary key, as one byte string), as the writer keeps them:
//! for a multi index of few keys (grouped by key while it is built), one of many keys
//! (past the grouping limit, sorted), and index keys of different lengths whose
//! primary keys' bytes are all greater than theirs.

use std::path::Path;
use viewstore::{Batch, IndexDef, Store, View, ViewDef};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Rec {
    /// A sequence: each byte tagged, then a terminator.
    path: Vec<u8>,
    n: u32,
}

const BY_PATH: IndexDef<Rec, Vec<u8>> = IndexDef::multi("by_path", |r| r.path.clone());
const BY_PATH_ONCE: IndexDef<Rec, (Vec<u8>, u32)> =
    IndexDef::unique("by_path_once", |r| (r.path.clone(), r.n));
const BY_N: IndexDef<Rec, u32> = IndexDef::multi("by_n", |r| r.n / 2);
const BY_FEW: IndexDef<Rec, u32> = IndexDef::multi("by_few", |r| r.n % 7);
/// Several keys a record, given out of order and some twice: each path byte, in
/// reverse, then the path's bytes again.
const BY_BYTE: IndexDef<Rec, u8> =
    IndexDef::multi_keys("by_byte", |r| r.path.iter().rev().chain(&r.path).copied().collect());
const RECS: ViewDef<u64, Rec> =
    ViewDef::new("recs").with_indexes(&[&BY_PATH, &BY_PATH_ONCE, &BY_N, &BY_FEW, &BY_BYTE]);

const BY_PATH_2: IndexDef<Rec, Vec<u8>> = IndexDef::multi("by_path_2", |r| r.path.clone());
const RENAMED: ViewDef<u64, Rec> = ViewDef::new("recs").with_indexes(&[&BY_PATH_2]);

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// More distinct `by_n` keys (`n / 2`) than an index keeps grouped while it is built.
const RECORDS: u32 = 40_000;

/// The high bits of every key: its first encoded byte, 0xFF, sorts after every path
/// byte.
const HIGH: u64 = 0xFF00_0000_0000_0000;

/// Record `i`: a key of `HIGH` and `i`, a path of one to three bytes from a few values,
/// short paths starting long ones.
fn rec(i: u32) -> (u64, Rec) {
    let path = match i % 5 {
        0 => vec![1],
        1 => vec![1, 2],
        2 => vec![1, 2, 3],
        3 => vec![2],
        _ => vec![1, 0x70],
    };
    (HIGH | u64::from(i), Rec { path, n: i })
}

/// Every index's entries as (index key bytes rendered, primary key), in the order the
/// index lists them.
fn listed(view: &View<u64, Rec>) -> Vec<Vec<String>> {
    let snap = view.snapshot();
    vec![
        snap.index(&BY_PATH).iter().map(|(i, k, _)| format!("{i:?} {}", k - HIGH)).collect(),
        snap.index(&BY_PATH_ONCE).iter().map(|(i, k, _)| format!("{i:?} {}", k - HIGH)).collect(),
        snap.index(&BY_N).iter().map(|(i, k, _)| format!("{i} {}", k - HIGH)).collect(),
        snap.index(&BY_FEW).iter().map(|(i, k, _)| format!("{i} {}", k - HIGH)).collect(),
        snap.index(&BY_BYTE).iter().map(|(i, k, _)| format!("{i} {}", k - HIGH)).collect(),
    ]
}

fn fill(path: &Path) -> Result<Vec<Vec<String>>, Box<dyn std::error::Error>> {
    let store = Store::open(path)?;
    let recs = store.view(&RECS)?;
    for start in (0..RECORDS).step_by(10_000) {
        let mut batch = Batch::new();
        for i in start..start + 10_000 {
            let (key, value) = rec(i);
            batch.put(&recs, &key, value, 1)?;
        }
        store.submit(batch)?.wait()?;
    }
    let written = listed(&recs);
    drop(recs);
    store.close()?;
    Ok(written)
}

#[test]
fn indexes_built_at_open_list_entries_in_on_disk_key_order() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("order.redb");
    let written = fill(&path)?;
    // The writer keeps the on-disk order, which is the paths' own order: a sequence's
    // terminator sorts before another element.
    let order: Vec<&str> = written[0]
        .iter()
        .step_by(RECORDS as usize / 5)
        .map(|e| e.rsplit_once(' ').map_or("", |(path, _)| path))
        .collect();
    assert_eq!(order, ["[1]", "[1, 2]", "[1, 2, 3]", "[1, 112]", "[2]"]);
    assert_eq!(written[2].len(), RECORDS as usize);

    let store = Store::open(&path)?;
    let recs = store.view(&RECS)?;
    let reopened = listed(&recs);
    for (index, (after, before)) in
        ["by_path", "by_path_once", "by_n", "by_few"].iter().zip(reopened.iter().zip(&written))
    {
        assert_eq!(after.len(), before.len(), "{index}: entries after a reopen");
        let differs = after.iter().zip(before).position(|(a, b)| a != b);
        assert_eq!(differs, None, "{index}: the first entry listed out of order");
    }
    assert!(store.verify()?.is_ok(), "{:?}", store.verify()?.problems);
    Ok(())
}

#[test]
fn a_new_index_is_built_in_on_disk_key_order_too() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("new.redb");
    let written = fill(&path)?;
    // The same records opened with `by_path` under another name: a new index, built
    // from the records.
    let store = Store::open(&path)?;
    let recs = store.view(&RENAMED)?;
    let built: Vec<String> = recs
        .snapshot()
        .index(&BY_PATH_2)
        .iter()
        .map(|(i, k, _)| format!("{i:?} {}", k - HIGH))
        .collect();
    assert_eq!(built, written[0], "by_path built under a new name");
    assert!(store.verify()?.is_ok(), "{:?}", store.verify()?.problems);
    Ok(())
}
