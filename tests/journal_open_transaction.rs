//! In journal mode the groups since the last checkpoint wait in one open redb
//! transaction: the store file is not written per group, only at checkpoints. Every
//! request that reads or writes the file through a transaction of its own (registering
//! a view, `verify`, a backup, view management, a bulk load) first checkpoints, so that
//! it sees every acknowledged group, and none of them hangs behind the open
//! transaction.

use std::sync::Arc;
use std::time::Duration;
use viewstore::testing::FaultBackend;
use viewstore::{Batch, Durability, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ITEMS: ViewDef<u64, String> = ViewDef::new("items");
const OTHER: ViewDef<u64, String> = ViewDef::new("other");
const LOADED: ViewDef<u64, String> = ViewDef::new("loaded");
const GROUPS: u64 = 200;

/// A journal-mode store over two in-memory backends, checkpointing only when asked
/// (or at its journal's limit, which these tests do not reach).
fn open(store: &Arc<FaultBackend>, log: &Arc<FaultBackend>) -> viewstore::Result<Store> {
    Store::builder("journal-open-transaction.redb")
        .backend(Arc::clone(store) as _)
        .durability(Durability::Journal)
        .journal_backend(Arc::clone(log) as _)
        .checkpoint_interval(Duration::from_secs(3600))
        .open()
}

/// Writes `GROUPS` acknowledged one-write groups to `items`, keys `0..GROUPS`.
fn write_groups(store: &Store) -> TestResult {
    let items = store.view(&ITEMS)?;
    for k in 0..GROUPS {
        let mut batch = Batch::new();
        batch.put(&items, &k, format!("value {k}"), 1)?;
        store.submit(batch)?.wait()?;
    }
    Ok(())
}

fn check_items(store: &Store) -> TestResult {
    let items = store.view(&ITEMS)?;
    assert_eq!(items.len() as u64, GROUPS);
    for k in 0..GROUPS {
        assert_eq!(items.get(&k).as_deref(), Some(&format!("value {k}")), "key {k}");
    }
    Ok(())
}

#[test]
fn groups_between_checkpoints_leave_the_store_file_alone() -> TestResult {
    let (file, log) = (Arc::new(FaultBackend::new()), Arc::new(FaultBackend::new()));
    let store = open(&file, &log)?;
    // Registering the view commits its own transaction; from here on only the journal
    // is written.
    let items = store.view(&ITEMS)?;
    let (file_before, log_before) = (file.counters(), log.counters());
    for k in 0..GROUPS {
        items.put(&k, format!("value {k}"), 1)?;
    }
    // Opening the view again, already open here, reads nothing from the file either.
    let again = store.view(&ITEMS)?;
    assert_eq!(again.len() as u64, GROUPS);
    let (file_after, log_after) = (file.counters(), log.counters());
    assert_eq!(file_after.mutations(), file_before.mutations(), "the store file was written");
    assert!(
        log_after.syncs >= log_before.syncs + GROUPS,
        "each acknowledged group syncs the journal: {log_before:?} -> {log_after:?}"
    );
    // The groups reach the store file at the checkpoint that closing makes.
    store.close()?;
    assert!(file.counters().syncs > file_after.syncs, "closing did not checkpoint");
    let reopened = open(&file, &log)?;
    check_items(&reopened)?;
    reopened.close()?;
    Ok(())
}

#[test]
fn a_clean_close_leaves_an_empty_journal() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("views.redb");
    let journal = dir.path().join("views.redb.journal");
    let store = Store::builder(&path).durability(Durability::Journal).open()?;
    write_groups(&store)?;
    assert!(std::fs::metadata(&journal)?.len() > 0, "the groups are in the journal");
    store.close()?;
    assert_eq!(std::fs::metadata(&journal)?.len(), 0);
    // Tools that read the store file alone accept it.
    #[cfg(feature = "inspect")]
    {
        let info = viewstore::inspect::StoreFile::open(&path)?.info()?;
        assert!(info.views.iter().any(|v| v.name == "items" && v.records == GROUPS), "{info:?}");
    }
    let reopened = Store::builder(&path).durability(Durability::Journal).open()?;
    check_items(&reopened)?;
    reopened.close()?;
    Ok(())
}

#[test]
fn verify_sees_every_acknowledged_group() -> TestResult {
    let (file, log) = (Arc::new(FaultBackend::new()), Arc::new(FaultBackend::new()));
    let store = open(&file, &log)?;
    write_groups(&store)?;
    let report = store.verify()?;
    assert!(report.is_ok(), "verify after journal-only groups: {report:?}");
    store.close()?;
    Ok(())
}

#[test]
fn a_backup_holds_every_acknowledged_group() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (file, log) = (Arc::new(FaultBackend::new()), Arc::new(FaultBackend::new()));
    let store = open(&file, &log)?;
    write_groups(&store)?;
    let report = store.backup(dir.path().join("backup.redb"))?;
    assert_eq!(report.lsn, store.lsn());
    store.close()?;
    let backup = Store::open(dir.path().join("backup.redb"))?;
    check_items(&backup)?;
    backup.close()?;
    Ok(())
}

#[test]
fn registering_and_managing_views_between_checkpoints() -> TestResult {
    let (file, log) = (Arc::new(FaultBackend::new()), Arc::new(FaultBackend::new()));
    let store = open(&file, &log)?;
    write_groups(&store)?;
    // A view registered while groups wait in the open transaction.
    let other = store.view(&OTHER)?;
    other.put(&1, "one".to_owned(), 1)?;
    let items = store.view(&ITEMS)?;
    items.put(&GROUPS, "after the registration".to_owned(), 1)?;
    // A bulk load and a clear with journal-only groups before each.
    let loaded = store.view(&LOADED)?;
    items.delete(&GROUPS, 2)?;
    store.bulk_load(&loaded, (0..100u64).map(|k| (k, 1, format!("loaded {k}"))))?;
    other.put(&2, "two".to_owned(), 1)?;
    store.clear_view("other")?;
    other.put(&3, "three".to_owned(), 1)?;
    check_items(&store)?;
    store.close()?;

    let reopened = open(&file, &log)?;
    check_items(&reopened)?;
    let other = reopened.view(&OTHER)?;
    assert_eq!(other.len(), 1);
    assert_eq!(other.get(&3).as_deref().map(String::as_str), Some("three"));
    let loaded = reopened.view(&LOADED)?;
    assert_eq!(loaded.len(), 100);
    assert_eq!(reopened.view(&ITEMS)?.version(&GROUPS), None);
    assert!(reopened.verify()?.is_ok());
    reopened.close()?;
    Ok(())
}

#[test]
fn the_journal_is_overwritten_in_place_after_each_checkpoint() -> TestResult {
    const LIMIT: u64 = 1024;
    let (file, log) = (Arc::new(FaultBackend::new()), Arc::new(FaultBackend::new()));
    let store = Store::builder("journal-open-transaction.redb")
        .backend(Arc::clone(&file) as _)
        .durability(Durability::Journal)
        .journal_backend(Arc::clone(&log) as _)
        .journal_limit(LIMIT)
        .checkpoint_interval(Duration::from_secs(3600))
        .open()?;
    let items = store.view(&ITEMS)?;
    let syncs_before = file.counters().syncs;
    // Each key written again and again at rising versions: a frame of an older group
    // replayed over a newer one would show as an older value.
    for round in 0..4u64 {
        for k in 0..GROUPS {
            items.put(&k, format!("value {k} round {round}"), round + 1)?;
        }
    }
    let checkpoints = file.counters().syncs - syncs_before;
    assert!(checkpoints >= 5, "the journal's limit made only {checkpoints} checkpoint syncs");
    // Never shortened: each checkpoint's groups overwrote the frames before them.
    assert_eq!(log.counters().set_lens, 0);
    let log_len = log.written_image().len() as u64;
    assert!(log_len < 2 * LIMIT, "the journal grew to {log_len} bytes");
    // What a power loss leaves now: old frames behind the newest ones, which the open
    // must neither replay nor take for damage.
    let (file_image, log_image) = (file.durable_image(), log.durable_image());
    store.close()?;
    let (file, log) = (
        Arc::new(FaultBackend::from_image(file_image)),
        Arc::new(FaultBackend::from_image(log_image)),
    );
    let reopened = open(&file, &log)?;
    let items = reopened.view(&ITEMS)?;
    for k in 0..GROUPS {
        let want = format!("value {k} round 3");
        assert_eq!(items.get_versioned(&k).map(|(v, s)| (v, (*s).clone())), Some((4, want)));
    }
    reopened.close()?;
    Ok(())
}

#[test]
fn a_clean_close_after_a_failed_group_leaves_an_empty_journal() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("views.redb");
    let store = Store::builder(&path).durability(Durability::Journal).open()?;
    let items = store.view(&ITEMS)?;
    items.put(&1, "one".to_owned(), 1)?;
    // Checkpoints: the journal starts over, its frame left in the file.
    assert!(store.verify()?.is_ok());
    // A group whose one batch fails begins the next open transaction and writes nothing.
    let mut bad = Batch::new();
    bad.update(&items, &1, 2, |_| -> Option<String> { panic!("a failing update") })?;
    assert!(store.submit(bad)?.wait().is_err());
    store.close()?;
    assert_eq!(std::fs::metadata(dir.path().join("views.redb.journal"))?.len(), 0);
    let reopened = Store::builder(&path).durability(Durability::Journal).open()?;
    assert_eq!(reopened.view(&ITEMS)?.get(&1).as_deref().map(String::as_str), Some("one"));
    reopened.close()?;
    Ok(())
}
