//! The writer takes a key's version from the resident layer when it can: a live record
//! from memory, an absent key of a view without tombstones from memory, a key that may
//! be a tombstone from the file. These check the cases where memory alone would be
//! wrong: tombstones keep stale writes out (also after a reopen and a purge), and a
//! stored record of the wrong layout fails the view's open instead of being taken as
//! live.

use viewstore::redb::{self, ReadableDatabase, ReadableTable};
use viewstore::{Batch, Error, Outcome, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ITEMS: ViewDef<u64, String> = ViewDef::new("items");
const PAGES: ViewDef<u64, String> = ViewDef::new("pages").with_sources(&["users"]);

#[test]
fn tombstones_keep_stale_writes_out_before_and_after_a_reopen_and_a_purge() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::open(&path)?;
    let items = store.view(&ITEMS)?;
    let mut batch = Batch::new();
    for id in 0..100u64 {
        batch.put(&items, &id, format!("item {id}"), 10)?;
    }
    store.submit(batch)?.wait()?;
    // Live keys: their versions come from memory.
    assert_eq!(items.put(&5, "old".into(), 9)?.outcome, Outcome::Stale { current: 10 });
    assert_eq!(items.put(&5, "new".into(), 11)?.outcome, Outcome::Applied);
    // A tombstone is not in memory: its version must still hold.
    items.delete(&7, 20)?;
    assert_eq!(items.put(&7, "back".into(), 15)?.outcome, Outcome::Stale { current: 20 });
    // Absent keys of a view with a tombstone, in one batch with the tombstone's key.
    let mut batch = Batch::new();
    batch.put(&items, &500, "new".into(), 1)?.put(&items, &7, "again".into(), 19)?;
    let receipt = store.submit(batch)?.wait()?;
    assert_eq!(receipt.outcomes, [Outcome::Applied, Outcome::Stale { current: 20 }]);
    drop(items);
    store.close()?;

    let store = Store::open(&path)?;
    let items = store.view(&ITEMS)?;
    assert_eq!(items.put(&7, "back".into(), 18)?.outcome, Outcome::Stale { current: 20 });
    assert_eq!(items.put(&5, "old".into(), 11)?.outcome, Outcome::Stale { current: 11 });
    // Purged, the tombstone's version is gone: any version applies again.
    assert_eq!(items.purge_tombstones(21)?, 1);
    assert_eq!(items.put(&7, "back".into(), 1)?.outcome, Outcome::Applied);
    assert_eq!(items.get(&7).as_deref().map(String::as_str), Some("back"));
    // Deleted and put again in one batch, then stale against the batch's last version.
    let mut batch = Batch::new();
    batch.delete(&items, &8, 30)?.put(&items, &8, "eight".into(), 31)?;
    store.submit(batch)?.wait()?;
    assert_eq!(items.put(&8, "x".into(), 30)?.outcome, Outcome::Stale { current: 31 });
    assert_eq!(store.verify()?.problems.len(), 0);
    Ok(())
}

#[test]
fn a_record_with_per_source_versions_in_a_view_without_sources_fails_the_open() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::open(&path)?;
    store.view(&PAGES)?.source("users")?.put(&1, "page".into(), 3)?;
    store.view(&ITEMS)?.put(&2, "item".into(), 1)?;
    store.close()?;
    {
        // The record of a view with sources, copied into the other view's table.
        let db = redb::Database::open(&path)?;
        let table = |name| redb::TableDefinition::<&[u8], &[u8]>::new(name);
        let read = db.begin_read()?;
        let (key, row) = {
            let pages = read.open_table(table("view.pages"))?;
            let (k, v) = pages.first()?.ok_or("a stored page")?;
            (k.value().to_vec(), v.value().to_vec())
        };
        drop(read);
        let txn = db.begin_write()?;
        txn.open_table(table("view.items"))?.insert(key.as_slice(), row.as_slice())?;
        txn.commit()?;
    }
    let store = Store::open(&path)?;
    let e = store.view(&ITEMS).err().ok_or("a view of the wrong layout opened")?;
    assert!(
        matches!(&e, Error::Decode { view, key, .. } if view == "items" && key == "1"),
        "{e:?}"
    );
    assert!(e.to_string().contains("per-source versions"), "{e}");
    Ok(())
}
