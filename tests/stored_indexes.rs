//! Opening a view whose indexes are stored: every index is rebuilt in memory from the
//! records (on two threads for a large view), so that after a reopen each lookup,
//! range and scan answers as a model computed from the records does, and later writes
//! keep it so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use viewstore::testing::Rng;
use viewstore::{Batch, IndexDef, IndexProgress, Store, View, ViewDef};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Item {
    name: String,
    group: u16,
    tags: Vec<u8>,
}

const BY_NAME: IndexDef<Item, String> = IndexDef::unique("by_name", |i| i.name.clone());
const BY_GROUP: IndexDef<Item, u16> = IndexDef::multi("by_group", |i| i.group);
const BY_TAG: IndexDef<Item, u8> = IndexDef::multi_keys("by_tag", |i| i.tags.clone());
const ITEMS: ViewDef<u64, Item> =
    ViewDef::new("items").with_indexes(&[&BY_NAME, &BY_GROUP, &BY_TAG]);

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Enough records for the indexes to be built on two threads and span many leaves.
const RECORDS: u64 = 30_000;

/// Item `id` at `salt`: names of 5 to 60 bytes (inline and long keys), 300 groups,
/// up to three tags.
fn item(id: u64, salt: u64) -> Item {
    let pad = "x".repeat(((id * 7 + salt) % 56) as usize);
    Item {
        name: format!("n{id}-{pad}"),
        group: ((id + salt) % 300) as u16,
        tags: (0..(id + salt) % 4).map(|t| ((id * 13 + t * 5 + salt) % 50) as u8).collect(),
    }
}

/// Writes every record, then moves, rewrites and deletes some in later groups, so that
/// the stored tables hold the index entries of many groups; returns the live records.
fn fill(path: &Path) -> Result<BTreeMap<u64, Item>, Box<dyn std::error::Error>> {
    let store = Store::open(path)?;
    let items = store.view(&ITEMS)?;
    let mut model = BTreeMap::new();
    for start in (0..RECORDS).step_by(5_000) {
        let mut batch = Batch::new();
        for id in start..start + 5_000 {
            batch.put(&items, &id, item(id, 0), 1)?;
            model.insert(id, item(id, 0));
        }
        store.submit(batch)?.wait()?;
    }
    let mut rng = Rng::new(7);
    for round in 0..20u64 {
        let mut batch = Batch::new();
        // One operation a key: a second one at the same version would be stale.
        let ids: BTreeSet<u64> = (0..200).map(|_| rng.below(RECORDS)).collect();
        for id in ids {
            if rng.below(4) == 0 {
                batch.delete(&items, &id, 10 + round)?;
                model.remove(&id);
            } else {
                batch.put(&items, &id, item(id, 1 + round), 10 + round)?;
                model.insert(id, item(id, 1 + round));
            }
        }
        store.submit(batch)?.wait()?;
    }
    drop(items);
    store.close()?;
    Ok(model)
}

fn check(items: &View<u64, Item>, model: &BTreeMap<u64, Item>) {
    let snap = items.snapshot();
    let names: Vec<(String, u64)> = snap.index(&BY_NAME).iter().map(|(i, k, _)| (i, k)).collect();
    let want: BTreeSet<(String, u64)> = model.iter().map(|(k, v)| (v.name.clone(), *k)).collect();
    assert_eq!(names, want.into_iter().collect::<Vec<_>>(), "by_name in order");
    let groups: Vec<(u16, u64)> = snap.index(&BY_GROUP).iter().map(|(i, k, _)| (i, k)).collect();
    let want: BTreeSet<(u16, u64)> = model.iter().map(|(k, v)| (v.group, *k)).collect();
    assert_eq!(groups, want.into_iter().collect::<Vec<_>>(), "by_group in order");
    let tags: Vec<(u8, u64)> = snap.index(&BY_TAG).iter().map(|(i, k, _)| (i, k)).collect();
    let want: BTreeSet<(u8, u64)> =
        model.iter().flat_map(|(k, v)| v.tags.iter().map(move |t| (*t, *k))).collect();
    assert_eq!(tags, want.into_iter().collect::<Vec<_>>(), "by_tag in order");
    // Every point lookup, by a key held and by keys of deleted or moved records.
    for id in (0..RECORDS).step_by(7) {
        for salt in [0, 1, 5] {
            let name = item(id, salt).name;
            let want = model.iter().find(|(_, v)| v.name == name).map(|(k, _)| *k);
            assert_eq!(items.index_get(&BY_NAME, name.as_str()).map(|(k, _)| k), want, "{name}");
        }
    }
    for group in (0..300u16).step_by(11) {
        let want: Vec<u64> =
            model.iter().filter(|(_, v)| v.group == group).map(|(k, _)| *k).collect();
        let found: Vec<u64> = snap.index(&BY_GROUP).get_all(&group).map(|(_, k, _)| k).collect();
        assert_eq!(found, want, "group {group}");
        assert_eq!(items.index_get(&BY_GROUP, &group).map(|(k, _)| k), want.first().copied());
        let range: Vec<(u16, u64)> =
            snap.index(&BY_GROUP).range(group..group + 3).map(|(i, k, _)| (i, k)).collect();
        let mut want: Vec<(u16, u64)> = model
            .iter()
            .filter(|(_, v)| (group..group + 3).contains(&v.group))
            .map(|(k, v)| (v.group, *k))
            .collect();
        want.sort_unstable();
        assert_eq!(range, want, "groups from {group}");
    }
    for tag in 0..50u8 {
        let want = model.values().filter(|v| v.tags.contains(&tag)).count();
        assert_eq!(items.index_count(&BY_TAG, &tag), want, "tag {tag}");
    }
}

/// A store reopened with its three indexes stored answers every lookup as the model
/// does, reports no index build, and keeps doing so through later writes.
#[test]
fn a_reopened_store_with_stored_indexes_answers_as_the_model() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let mut model = fill(&path)?;
    let builds = Arc::new(Mutex::new(Vec::<IndexProgress>::new()));
    let seen = Arc::clone(&builds);
    let store = Store::builder(&path)
        .on_index_build(move |p| seen.lock().expect("progress lock").push(p.clone()))
        .open()?;
    let items = store.view(&ITEMS)?;
    assert!(builds.lock().map_err(|_| "progress lock")?.is_empty(), "a stored index was rebuilt");
    check(&items, &model);
    assert!(store.verify()?.is_ok(), "{:?}", store.verify()?.problems);
    // Writes after the open change entries in the leaves the open built.
    let mut rng = Rng::new(11);
    for round in 0..5u64 {
        let mut batch = Batch::new();
        let ids: BTreeSet<u64> = (0..500).map(|_| rng.below(RECORDS + 100)).collect();
        for id in ids {
            batch.put(&items, &id, item(id, 40 + round), 100 + round)?;
            model.insert(id, item(id, 40 + round));
        }
        store.submit(batch)?.wait()?;
    }
    check(&items, &model);
    assert!(store.verify()?.is_ok(), "{:?}", store.verify()?.problems);
    Ok(())
}

/// A stored entry that gives a record an index key its value does not have (same
/// count, wrong key) is not what lookups see after a reopen: memory follows the
/// records, and `verify` names the stored table's disagreement.
#[test]
fn lookups_after_a_reopen_follow_the_records_not_a_disagreeing_table() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    {
        let store = Store::open(&path)?;
        let items = store.view(&ITEMS)?;
        for id in 0..100u64 {
            items.put(&id, item(id, 0), 1)?;
        }
        store.close()?;
    }
    // Record 3's group entry moved from its group to group 299 on disk only.
    let group = item(3, 0).group;
    let entry = |g: u16| [g.to_be_bytes().as_slice(), &3u64.to_be_bytes()].concat();
    {
        let db = redb::Database::open(&path)?;
        let txn = db.begin_write()?;
        {
            let def: redb::TableDefinition<&[u8], u32> =
                redb::TableDefinition::new("index.items/by_group");
            let mut table = txn.open_table(def)?;
            assert!(table.remove(entry(group).as_slice())?.is_some(), "the entry is stored");
            table.insert(entry(299).as_slice(), 2)?;
        }
        txn.commit()?;
    }
    let store = Store::open(&path)?;
    let items = store.view(&ITEMS)?;
    let in_group: Vec<u64> =
        items.index_get_all(&BY_GROUP, &group).into_iter().map(|(k, _)| k).collect();
    assert!(in_group.contains(&3), "{in_group:?}");
    assert!(items.index_get_all(&BY_GROUP, &299).is_empty());
    let report = store.verify()?;
    assert!(!report.is_ok(), "verify finds the stored table's disagreement");
    Ok(())
}
