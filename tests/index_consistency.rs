//! Random operations, batches and reopens against a `BTreeMap` model: after every step
//! each index equals the one recomputed from the records, in memory and on disk.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use viewstore::testing::Rng;
use viewstore::{Batch, Error, IndexDef, Outcome, Store, View, ViewDef};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    name: String,
    group: u8,
    tags: Vec<u8>,
}

const BY_NAME: IndexDef<Item, String> = IndexDef::unique("by_name", |i| i.name.clone());
const BY_GROUP: IndexDef<Item, u8> = IndexDef::multi("by_group", |i| i.group);
const BY_TAG: IndexDef<Item, u8> = IndexDef::multi_keys("by_tag", |i| i.tags.clone());
const ITEMS: ViewDef<u32, Item> =
    ViewDef::new("items").with_indexes(&[&BY_NAME, &BY_GROUP, &BY_TAG]);

/// One operation of the model test.
#[derive(Debug, Clone)]
enum Op {
    Put(u32, u64, Item),
    Delete(u32, u64),
    /// Adds a tag (or creates the item) inside the writer.
    Update(u32, u64, u8),
    Cas(u32, Option<u64>, u64, Item),
    Purge(u64),
}

/// The model: key -> (version, live value or tombstone).
type Model = BTreeMap<u32, (u64, Option<Item>)>;

fn item(rng: &mut Rng) -> Item {
    let tags = (0..rng.below(4)).map(|_| rng.below(6) as u8).collect();
    Item { name: format!("n{}", rng.below(12)), group: rng.below(3) as u8, tags }
}

fn random_op(rng: &mut Rng) -> Op {
    let key = rng.below(16) as u32;
    let version = 1 + rng.below(24);
    match rng.below(10) {
        0..=3 => Op::Put(key, version, item(rng)),
        4 => Op::Delete(key, version),
        5 | 6 => Op::Update(key, version, rng.below(6) as u8),
        7 | 8 => {
            let expected = if rng.below(3) == 0 { None } else { Some(1 + rng.below(24)) };
            Op::Cas(key, expected, version, item(rng))
        }
        _ => Op::Purge(rng.below(24)),
    }
}

fn add_tag(old: Option<&Item>, tag: u8) -> Item {
    let mut item =
        old.cloned().unwrap_or(Item { name: format!("u{tag}"), group: 0, tags: Vec::new() });
    item.tags.push(tag);
    item
}

/// Applies `op` to the model, as the store must.
fn model_apply(model: &mut Model, op: &Op) -> Outcome {
    let (k, version) = match op {
        Op::Put(k, v, _) | Op::Delete(k, v) | Op::Update(k, v, _) | Op::Cas(k, _, v, _) => (*k, *v),
        Op::Purge(below) => {
            let doomed: Vec<u32> = model
                .iter()
                .filter(|(_, (v, value))| value.is_none() && v < below)
                .map(|(k, _)| *k)
                .collect();
            for k in &doomed {
                model.remove(k);
            }
            return Outcome::Purged { count: doomed.len() as u64 };
        }
    };
    let stored = model.get(&k).map(|(v, _)| *v);
    let live = model.get(&k).filter(|(_, v)| v.is_some()).map(|(v, _)| *v);
    if let Op::Cas(_, expected, _, _) = op
        && live != *expected
    {
        return Outcome::Conflict { current: live };
    }
    if let Some(current) = stored.filter(|c| version <= *c) {
        return Outcome::Stale { current };
    }
    let next = match op {
        Op::Put(_, _, value) | Op::Cas(_, _, _, value) => Some(value.clone()),
        Op::Update(_, _, tag) => Some(add_tag(model.get(&k).and_then(|(_, v)| v.as_ref()), *tag)),
        Op::Delete(..) | Op::Purge(_) => None,
    };
    model.insert(k, (version, next));
    Outcome::Applied
}

fn unique_ok(model: &Model) -> bool {
    let mut names = std::collections::HashSet::new();
    model.values().filter_map(|(_, v)| v.as_ref()).all(|i| names.insert(i.name.clone()))
}

fn add_to_batch(batch: &mut Batch, items: &View<u32, Item>, op: &Op) -> Result<(), Error> {
    match op.clone() {
        Op::Put(k, version, value) => batch.put(items, &k, value, version)?,
        Op::Delete(k, version) => batch.delete(items, &k, version)?,
        Op::Update(k, version, tag) => {
            batch.update(items, &k, version, move |old| Some(add_tag(old, tag)))?
        }
        Op::Cas(k, expected, version, value) => {
            batch.compare_and_set(items, &k, expected, version, value)?
        }
        Op::Purge(below) => batch.purge_tombstones(items, below)?,
    };
    Ok(())
}

fn expected_entries<I: Ord + Clone>(
    model: &Model,
    keys: impl Fn(&Item) -> Vec<I>,
) -> Vec<(I, u32)> {
    let mut out: Vec<(I, u32)> = model
        .iter()
        .filter_map(|(k, (_, v))| v.as_ref().map(|v| (k, v)))
        .flat_map(|(k, v)| {
            let mut ks = keys(v);
            ks.sort();
            ks.dedup();
            ks.into_iter().map(move |i| (i, *k))
        })
        .collect();
    out.sort();
    out
}

fn check(store: &Store, items: &View<u32, Item>, model: &Model, step: usize) {
    let snap = items.snapshot();
    let live: Vec<(u32, Item)> =
        model.iter().filter_map(|(k, (_, v))| v.clone().map(|v| (*k, v))).collect();
    let stored: Vec<(u32, Item)> = snap.iter().map(|(k, v)| (k, v.clone())).collect();
    assert_eq!(stored, live, "records differ at step {step}");
    let names: Vec<(String, u32)> = snap.index(&BY_NAME).iter().map(|(i, k, _)| (i, k)).collect();
    assert_eq!(names, expected_entries(model, |i| vec![i.name.clone()]), "by_name at step {step}");
    let groups: Vec<(u8, u32)> = snap.index(&BY_GROUP).iter().map(|(i, k, _)| (i, k)).collect();
    assert_eq!(groups, expected_entries(model, |i| vec![i.group]), "by_group at step {step}");
    let tags: Vec<(u8, u32)> = snap.index(&BY_TAG).iter().map(|(i, k, _)| (i, k)).collect();
    assert_eq!(tags, expected_entries(model, |i| i.tags.clone()), "by_tag at step {step}");
    // Point lookups in the unique index agree with the model, including names nobody
    // holds any more.
    for n in 0..12 {
        let name = format!("n{n}");
        let found = snap.index(&BY_NAME).get_ref(&name).map(|(k, v)| (k, v.clone()));
        let expected = live.iter().find(|(_, v)| v.name == name).cloned();
        assert_eq!(found, expected, "unique lookup of {name} at step {step}");
    }
    // Index entries carry the record's current value, not a copy from an older write.
    let current: BTreeMap<u32, Item> = live.iter().cloned().collect();
    let values = snap.index(&BY_TAG).iter().map(|(_, k, v)| (k, v.clone()));
    let values = values.chain(snap.index(&BY_NAME).iter().map(|(_, k, v)| (k, v.clone())));
    for (k, v) in values.chain(snap.index(&BY_GROUP).iter().map(|(_, k, v)| (k, v.clone()))) {
        assert_eq!(Some(&v), current.get(&k), "index entry of {k} is stale at step {step}");
    }
    let report = store.verify().expect("verify runs");
    assert!(report.is_ok(), "verify at step {step}: {:?}", report.problems);
}

fn run(seed: u64, steps: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("model.redb");
    let mut rng = Rng::new(seed);
    let mut model = Model::new();
    let mut store = Store::open(&path).expect("open");
    let mut items = store.view(&ITEMS).expect("view");
    for step in 0..steps {
        match rng.below(12) {
            0 => {
                drop(items);
                store.close().expect("close");
                store = Store::open(&path).expect("reopen");
                items = store.view(&ITEMS).expect("view after reopen");
            }
            1..=3 => {
                let ops: Vec<Op> = (0..=rng.below(5)).map(|_| random_op(&mut rng)).collect();
                let mut tentative = model.clone();
                let outcomes: Vec<Outcome> =
                    ops.iter().map(|op| model_apply(&mut tentative, op)).collect();
                let mut batch = Batch::new();
                for op in &ops {
                    add_to_batch(&mut batch, &items, op).expect("batch builds");
                }
                let result = store.submit(batch).expect("submit").wait();
                if unique_ok(&tentative) {
                    let receipt = result.unwrap_or_else(|e| panic!("step {step}: {ops:?}: {e}"));
                    assert_eq!(receipt.outcomes, outcomes, "step {step}: {ops:?}");
                    model = tentative;
                } else {
                    assert!(
                        matches!(result, Err(Error::UniqueViolation { .. })),
                        "step {step}: expected a violation for {ops:?}, got {result:?}"
                    );
                }
            }
            _ => {
                let op = random_op(&mut rng);
                let mut tentative = model.clone();
                let outcome = model_apply(&mut tentative, &op);
                let mut batch = Batch::new();
                add_to_batch(&mut batch, &items, &op).expect("batch builds");
                let result = store.submit(batch).expect("submit").wait();
                if unique_ok(&tentative) {
                    let receipt = result.unwrap_or_else(|e| panic!("step {step}: {op:?}: {e}"));
                    assert_eq!(receipt.outcomes, vec![outcome], "step {step}: {op:?}");
                    model = tentative;
                } else {
                    assert!(
                        matches!(result, Err(Error::UniqueViolation { .. })),
                        "step {step}: expected a violation for {op:?}, got {result:?}"
                    );
                }
            }
        }
        check(&store, &items, &model, step);
    }
}

#[test]
fn indexes_match_the_records_after_every_step() {
    let seeds: u64 =
        std::env::var("VIEWSTORE_MODEL_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
    for seed in 1..=seeds {
        let seed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        eprintln!("index model seed {seed:#x}");
        run(seed, 300);
    }
}

#[test]
fn a_group_that_moves_the_same_entries_back_and_forth_keeps_the_last_state() {
    // Multi-index entries are written to disk once per group, after its last batch.
    // Batches submitted without waiting, with the writer lingering for more, share a
    // group: key 1 gains and loses the same group and tag entries batch after batch,
    // and key 2 takes tags key 1 has just dropped.
    const BATCHES: u64 = 40;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("group.redb");
    let store = Store::builder(&path)
        .max_linger(std::time::Duration::from_millis(200))
        .open()
        .expect("open");
    let items = store.view(&ITEMS).expect("view");
    let before = store.lsn().get();
    let mut model = Model::new();
    let mut tickets = Vec::new();
    for step in 0..BATCHES {
        let tags = if step % 2 == 0 { vec![1, 2] } else { vec![2, 3] };
        let first = Item { name: "first".into(), group: (step % 3) as u8, tags };
        let second = Item { name: "second".into(), group: 0, tags: vec![(step % 4) as u8] };
        let mut batch = Batch::new();
        batch.put(&items, &1, first.clone(), step + 1).expect("put");
        batch.put(&items, &2, second.clone(), step + 1).expect("put");
        tickets.push(store.submit(batch).expect("submit"));
        model.insert(1, (step + 1, Some(first)));
        model.insert(2, (step + 1, Some(second)));
    }
    for ticket in tickets {
        ticket.wait().expect("commit");
    }
    let groups = store.lsn().get() - before;
    assert!(groups < BATCHES, "the batches should share groups, {groups} groups for {BATCHES}");
    check(&store, &items, &model, 0);
    drop(items);
    store.close().expect("close");
    let store = Store::open(&path).expect("reopen");
    let items = store.view(&ITEMS).expect("view");
    check(&store, &items, &model, 1);
}

#[test]
fn groups_with_thousands_of_index_changes_update_every_index() {
    // Thousands of multi-index changes in one group: the multi indexes are then
    // updated on a thread of their own, beside the records and the unique index.
    const ITEMS_IN_GROUP: u32 = 3_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("large.redb");
    let store = Store::open(&path).expect("open");
    let items = store.view(&ITEMS).expect("view");
    let mut model = Model::new();
    let item = |k: u32, round: u32| Item {
        name: format!("n{k}-{}", round % 2),
        group: ((k + round) % 3) as u8,
        tags: vec![((k + round) % 6) as u8, ((k * 5 + round + 1) % 6) as u8],
    };
    for round in 0..3u32 {
        let mut batch = Batch::new();
        for k in 0..ITEMS_IN_GROUP {
            let version = u64::from(round) + 1;
            // Every fifth item is deleted in round 1, and comes back in round 2.
            if round == 1 && k % 5 == 0 {
                batch.delete(&items, &k, version).expect("delete");
                model.insert(k, (version, None));
            } else {
                batch.put(&items, &k, item(k, round), version).expect("put");
                model.insert(k, (version, Some(item(k, round))));
            }
        }
        store.submit(batch).expect("submit").wait().expect("commit");
        check(&store, &items, &model, round as usize);
    }
    drop(items);
    store.close().expect("close");
    let store = Store::open(&path).expect("reopen");
    let items = store.view(&ITEMS).expect("view");
    check(&store, &items, &model, 3);
}
