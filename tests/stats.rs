//! `Store::stats`: outcome counts, exact tombstone counts, index memory, the writer's
//! histograms, its queue, and the file's size.

mod support;

use serde::{Deserialize, Serialize};
use std::sync::mpsc;
use std::time::Instant;
use support::{LIMIT, NAMES, TestResult};
use viewstore::{Batch, IndexDef, IndexKind, Outcome, Store, ViewDef};

const PAGES: ViewDef<u64, String> = ViewDef::new("pages").with_sources(&["users", "posts"]);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    email: String,
    city: String,
    tags: Vec<String>,
}

const BY_EMAIL: IndexDef<User, String> = IndexDef::unique("by_email", |u| u.email.clone());
const BY_CITY: IndexDef<User, String> = IndexDef::multi("by_city", |u| u.city.clone());
const BY_TAG: IndexDef<User, String> = IndexDef::multi_keys("by_tag", |u| u.tags.clone());
const PLAIN_USERS: ViewDef<u64, User> = ViewDef::new("plain_users");
const INDEXED_USERS: ViewDef<u64, User> =
    ViewDef::new("indexed_users").with_indexes(&[&BY_EMAIL, &BY_CITY, &BY_TAG]);

fn user(id: u64) -> User {
    User {
        email: format!("user{id}@example.com"),
        city: format!("city{}", id % 10),
        tags: vec![format!("t{}", id % 7), format!("u{}", id % 5)],
    }
}

fn s(text: &str) -> String {
    text.to_owned()
}

#[test]
fn outcome_counts_equal_what_the_test_wrote() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let names = store.view(&NAMES)?;
    let pages = store.view(&PAGES)?;
    let (users, posts) = (pages.source("users")?, pages.source("posts")?);
    let (mut applied, mut deleted, mut stale, mut tombstoned, mut redelivered) = (0, 0, 0, 0, 0);
    let mut unchanged = 0;
    for k in 0..10 {
        assert_eq!(names.put(&k, format!("n{k}"), 1)?, Outcome::Applied);
        applied += 1;
    }
    for k in 0..3 {
        assert!(matches!(names.put(&k, s("old"), 1)?.outcome, Outcome::Stale { .. }));
        stale += 1;
    }
    for k in 0..2 {
        assert_eq!(names.delete(&k, 2)?, Outcome::Applied);
        applied += 1;
        deleted += 1;
    }
    assert_eq!(names.update(&5, 3, |_| None::<String>)?, Outcome::Unchanged);
    unchanged += 1;
    // A batch with a position, then the same batch again: a redelivery of two operations.
    for round in 0..2 {
        let mut batch = Batch::new();
        batch.put(&names, &20, s("twenty"), 1)?.put(&names, &21, s("twenty-one"), 1)?;
        batch.set_position("events", 0, 7)?;
        let receipt = store.submit(batch)?.wait()?;
        if round == 0 {
            applied += 2;
        } else {
            assert!(receipt.redelivery);
            redelivered += 2;
        }
    }
    // A panicking update closure fails its own batch.
    let failed = names.update(&3, 9, |_: Option<&String>| -> Option<String> { panic!("boom") });
    assert!(failed.is_err());
    // Per-source rules: a delete by one source, then a newer write by the other.
    users.put(&1, s("ada"), 1)?;
    posts.put(&1, s("ada, 1 post"), 10)?;
    users.delete(&1, 2)?;
    applied += 3;
    deleted += 1;
    assert!(matches!(posts.put(&1, s("late"), 11)?.outcome, Outcome::Tombstoned { .. }));
    tombstoned += 1;

    let o = store.stats().writer.outcomes;
    assert_eq!(o.applied, applied, "{o:?}");
    assert_eq!(o.deleted, deleted, "{o:?}");
    assert_eq!(o.stale, stale, "{o:?}");
    assert_eq!(o.unchanged, unchanged, "{o:?}");
    assert_eq!(o.tombstoned, tombstoned, "{o:?}");
    assert_eq!(o.redelivered, redelivered, "{o:?}");
    assert_eq!(o.failed_batches, 1, "{o:?}");
    assert_eq!((o.conflict, o.purges), (0, 0), "{o:?}");
    Ok(())
}

#[test]
fn tombstone_counts_follow_deletes_purges_and_rewrites_across_a_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let tombstones = |store: &Store| store.stats().views[0].tombstones;
    {
        let store = Store::open(&path)?;
        let names = store.view(&NAMES)?;
        for k in 1..=10 {
            names.put(&k, format!("n{k}"), 1)?;
        }
        for k in 1..=4 {
            names.delete(&k, 2)?;
        }
        assert_eq!((tombstones(&store), names.len()), (4, 6));
        // A delete of a deleted key leaves one tombstone, not two.
        names.delete(&4, 3)?;
        assert_eq!(tombstones(&store), 4);
        // A rewrite of a deleted key removes its tombstone.
        names.put(&1, s("back"), 3)?;
        assert_eq!(tombstones(&store), 3);
        // Within one batch: a key deleted then written again is no tombstone; a key
        // deleted twice is one.
        let mut batch = Batch::new();
        batch.delete(&names, &5, 2)?.put(&names, &5, s("five"), 3)?;
        batch.delete(&names, &6, 2)?.delete(&names, &6, 3)?;
        store.submit(batch)?.wait()?;
        assert_eq!(tombstones(&store), 4);
        // Tombstones below version 3 are keys 2 and 3 (key 4's is at 3, key 6's at 3).
        assert_eq!(names.purge_tombstones(3)?, 2);
        assert_eq!(tombstones(&store), 2);
        // A delete of a key never written leaves a tombstone too.
        names.delete(&100, 1)?;
        assert_eq!(tombstones(&store), 3);
        store.close()?;
    }
    let store = Store::open(&path)?;
    let names = store.view(&NAMES)?;
    assert_eq!(tombstones(&store), 3, "counted again at open");
    names.delete(&7, 2)?;
    names.put(&4, s("four"), 4)?;
    assert_eq!(tombstones(&store), 3);
    assert_eq!(names.purge_tombstones(u64::MAX)?, 3);
    assert_eq!(tombstones(&store), 0);
    Ok(())
}

#[test]
fn index_memory_grows_with_indexes_and_each_index_is_listed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let plain = store.view(&PLAIN_USERS)?;
    let indexed = store.view(&INDEXED_USERS)?;
    let mut batch = Batch::new();
    for id in 0..2_000 {
        batch.put(&plain, &id, user(id), 1)?.put(&indexed, &id, user(id), 1)?;
    }
    store.submit(batch)?.wait()?;
    let stats = store.stats();
    let find = |name: &str| stats.views.iter().find(|v| v.name == name).ok_or("view missing");
    let (p, i) = (find("plain_users")?, find("indexed_users")?);
    assert_eq!((p.records, i.records), (2_000, 2_000));
    // The same records take the same structures, up to what each view's own hash seed
    // moves (a few bytes of the point table).
    assert!(p.index_bytes.abs_diff(i.index_bytes) <= p.index_bytes / 100, "{p:?} against {i:?}");
    assert_eq!(p.value_bytes, i.value_bytes);
    assert!(p.indexes.is_empty());
    let listed: Vec<(&str, IndexKind, usize)> =
        i.indexes.iter().map(|x| (x.name.as_str(), x.kind, x.entries)).collect();
    assert_eq!(
        listed,
        [
            ("by_email", IndexKind::Unique, 2_000),
            ("by_city", IndexKind::Multi, 2_000),
            ("by_tag", IndexKind::Multi, 4_000),
        ]
    );
    for index in &i.indexes {
        // At least an entry's 4-byte word and its 8-byte primary key (its index key's
        // bytes may be shared by its leaf).
        assert!(index.bytes >= 12 * index.entries, "{index:?}");
    }
    let email = &i.indexes[0];
    assert!(email.bytes >= (12 + 64) * email.entries, "a unique index has a hash table too");
    let without = i.resident_bytes() - i.secondary_index_bytes();
    assert!(
        without.abs_diff(p.resident_bytes()) <= p.resident_bytes() / 100,
        "{i:?} against {p:?}"
    );
    assert!(i.resident_bytes() >= p.resident_bytes() + 12 * 8_000);
    let table = stats.to_string();
    for name in ["plain_users", "indexed_users", "by_email", "by_city", "by_tag"] {
        assert!(table.contains(name), "{name} missing from:\n{table}");
    }
    Ok(())
}

#[test]
fn writer_histograms_count_every_group_and_percentiles_are_ordered() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let names = store.view(&NAMES)?;
    let before = store.stats().writer;
    let mut ops = 0;
    let mut batches = 0;
    for k in 0..30 {
        names.put(&k, format!("n{k}"), 1)?;
        ops += 1;
        batches += 1;
    }
    let mut tickets = Vec::new();
    for k in 0..200u64 {
        let mut batch = Batch::new();
        batch.put(&names, &(1_000 + k), s("x"), 1)?.put(&names, &(5_000 + k), s("y"), 1)?;
        tickets.push(store.submit(batch)?);
        ops += 2;
        batches += 1;
    }
    for t in tickets {
        t.wait()?;
    }
    let stats = store.stats();
    let w = &stats.writer;
    assert_eq!(before.groups, 0);
    assert_eq!(w.groups, stats.lsn.get(), "one LSN per group");
    assert_eq!(w.failed_groups, 0);
    for (name, h) in [
        ("batches", &w.batches_per_group),
        ("writes", &w.writes_per_group),
        ("commit", &w.commit_latency),
    ] {
        assert_eq!(h.count(), w.groups, "{name}: every group counted");
        let (p50, p90, p99) = (h.percentile(50.0), h.percentile(90.0), h.percentile(99.0));
        assert!(p50 <= p90 && p90 <= p99 && p99 <= h.max(), "{name}: {p50} {p90} {p99}");
        assert!(p50 > 0, "{name}");
    }
    assert_eq!(w.batches_per_group.sum(), batches);
    assert_eq!(w.writes_per_group.sum(), ops);
    // Immediate durability: each commit syncs the file at least once.
    let syncs = &w.sync_latency;
    assert!(syncs.count() >= w.groups, "{} syncs for {} groups", syncs.count(), w.groups);
    assert!(syncs.percentile(50.0) <= syncs.percentile(99.0));
    assert!(syncs.percentile(99.0) <= syncs.max() && syncs.max() > 0);
    assert!(w.commit_latency.mean() > 0.0);
    Ok(())
}

#[test]
fn queue_depth_is_seen_while_the_writer_is_held() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::builder(dir.path().join("s.redb")).queue_capacity(3).open()?;
    let names = store.view(&NAMES)?;
    let (started_tx, started) = mpsc::channel::<()>();
    let (release, release_rx) = mpsc::channel::<()>();
    let mut held = Batch::new();
    held.update(&names, &1, 1, move |_| {
        let _ = started_tx.send(());
        let _ = release_rx.recv_timeout(LIMIT);
        Some(s("held"))
    })?;
    let held = store.submit(held)?;
    started.recv_timeout(LIMIT)?;
    assert_eq!(store.stats().queue.queued, 0);
    let mut tickets = Vec::new();
    for k in 10..13 {
        let mut batch = Batch::new();
        batch.put(&names, &k, s("queued"), 1)?;
        tickets.push(store.try_submit(batch)?);
    }
    let queue = store.stats().queue;
    assert_eq!((queue.queued, queue.capacity, queue.blocked_submitters), (3, 3, 0));
    let blocked = std::thread::spawn({
        let (store, names) = (store.clone(), names.clone());
        move || -> viewstore::Result<()> {
            let mut batch = Batch::new();
            batch.put(&names, &20, s("blocked"), 1)?;
            store.submit(batch)?.wait().map(drop)
        }
    });
    let deadline = Instant::now() + LIMIT;
    while store.stats().queue.blocked_submitters == 0 {
        assert!(Instant::now() < deadline, "the submitter never blocked");
        std::thread::yield_now();
    }
    let shown = store.stats().to_string();
    assert!(shown.contains("3/3 queued  1 blocked"), "{shown}");
    release.send(())?;
    held.wait()?;
    for t in tickets {
        t.wait()?;
    }
    blocked.join().map_err(|_| "the submitter panicked")??;
    let queue = store.stats().queue;
    assert_eq!((queue.queued, queue.blocked_submitters), (0, 0));
    Ok(())
}

#[test]
fn file_size_equals_the_files_length_on_disk() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::open(&path)?;
    let names = store.view(&NAMES)?;
    let empty = store.stats().file_bytes;
    assert_eq!(empty, Some(std::fs::metadata(&path)?.len()));
    let mut batch = Batch::new();
    for k in 0..20_000u64 {
        batch.put(&names, &k, format!("a value long enough to grow the file {k}"), 1)?;
    }
    store.submit(batch)?.wait()?;
    let grown = store.stats().file_bytes;
    assert_eq!(grown, Some(std::fs::metadata(&path)?.len()));
    assert!(grown > empty, "{grown:?} after {empty:?}");
    Ok(())
}
