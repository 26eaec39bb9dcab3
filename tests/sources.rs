//! Views with sources: one version per source, each rule of `ViewDef::with_sources`
//! on its own, handles that name no source or an unknown one, the source list across
//! reopens, and the bytes that views without sources still write.

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use support::TestResult;
use viewstore::redb::{self, ReadableDatabase, ReadableTable, TableDefinition};
use viewstore::{Batch, Change, Error, ErrorKind, Outcome, Store, View, ViewDef};

/// A page fed by a `users` stream (its name, its deletion) and a `posts` stream.
const PAGES: ViewDef<u64, String> = ViewDef::new("pages").with_sources(&["users", "posts"]);
const PAGES_APPENDED: ViewDef<u64, String> =
    ViewDef::new("pages").with_sources(&["users", "posts", "follows"]);
const PAGES_REORDERED: ViewDef<u64, String> =
    ViewDef::new("pages").with_sources(&["posts", "users"]);
const PAGES_SHORTER: ViewDef<u64, String> = ViewDef::new("pages").with_sources(&["users"]);
const PAGES_PLAIN: ViewDef<u64, String> = ViewDef::new("pages");
const NAMES: ViewDef<u64, String> = ViewDef::new("names");
const NAMES_SOURCED: ViewDef<u64, String> = ViewDef::new("names").with_sources(&["users"]);

fn s(text: &str) -> String {
    text.to_owned()
}

/// The pages view and its two source handles.
struct Pages {
    store: Store,
    view: View<u64, String>,
    users: View<u64, String>,
    posts: View<u64, String>,
}

fn open_pages(path: &Path) -> viewstore::Result<Pages> {
    let store = Store::open(path)?;
    let view = store.view(&PAGES)?;
    let (users, posts) = (view.source("users")?, view.source("posts")?);
    Ok(Pages { store, view, users, posts })
}

fn read(view: &View<u64, String>, key: u64) -> Option<(u64, String)> {
    view.get_versioned(&key).map(|(v, x)| (v, (*x).clone()))
}

#[test]
fn a_write_applies_when_newer_than_its_own_sources_version() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = open_pages(&dir.path().join("s.redb"))?;
    assert_eq!(p.users.put(&1, s("ada"), 5)?, Outcome::Applied);
    // The posts stream counts on its own: 100 is not "newer than 5" for users.
    assert_eq!(p.posts.put(&1, s("ada, 1 post"), 100)?, Outcome::Applied);
    assert_eq!(read(&p.view, 1), Some((100, s("ada, 1 post"))));
    // A redelivery is stale with the version of its own source.
    assert_eq!(p.users.put(&1, s("ada"), 5)?, Outcome::Stale { current: 5 });
    assert_eq!(p.users.put(&1, s("old"), 3)?, Outcome::Stale { current: 5 });
    assert_eq!(p.posts.put(&1, s("old"), 99)?, Outcome::Stale { current: 100 });
    // A newer users write applies below the posts version; reads report the largest.
    assert_eq!(p.users.put(&1, s("ada lovelace"), 6)?, Outcome::Applied);
    assert_eq!(read(&p.view, 1), Some((100, s("ada lovelace"))));
    assert_eq!(p.view.version(&1), Some(100));
    assert_eq!(p.users.put(&1, s("ada"), 6)?, Outcome::Stale { current: 6 });
    Ok(())
}

#[test]
fn a_late_event_of_another_source_does_not_bring_a_deleted_record_back() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = open_pages(&dir.path().join("s.redb"))?;
    p.users.put(&1, s("ada"), 1)?;
    p.posts.put(&1, s("ada, 1 post"), 10)?;
    assert_eq!(p.users.delete(&1, 2)?, Outcome::Applied);
    assert_eq!(p.view.get(&1), None);
    // A newer posts event meets the users tombstone: recorded, not applied.
    let late = p.posts.put(&1, s("ada, 2 posts"), 11)?;
    assert_eq!(late, Outcome::Tombstoned { deleter_version: 2 });
    assert!(!late.is_applied());
    assert_eq!(p.view.get(&1), None);
    // Its version was recorded: the same event again is stale, an older one too.
    assert_eq!(p.posts.put(&1, s("ada, 2 posts"), 11)?, Outcome::Stale { current: 11 });
    assert_eq!(p.posts.put(&1, s("ada"), 7)?, Outcome::Stale { current: 10 + 1 });
    // An update closure is not run on the other source's tombstone.
    let ran = Arc::new(Mutex::new(false));
    let flag = Arc::clone(&ran);
    let outcome = p.posts.update(&1, 12, move |_| {
        *flag.lock().expect("flag") = true;
        Some(s("never"))
    })?;
    assert_eq!(outcome, Outcome::Tombstoned { deleter_version: 2 });
    assert!(!*ran.lock().expect("flag"), "the closure ran on a tombstone of users");
    // So is a compare-and-set expecting no live record.
    assert_eq!(
        p.posts.compare_and_set(&1, None, 13, s("never"))?,
        Outcome::Tombstoned { deleter_version: 2 }
    );
    // And the users stream's own redelivery of the delete is stale.
    assert_eq!(p.users.delete(&1, 2)?, Outcome::Stale { current: 2 });
    assert_eq!(p.view.get(&1), None);
    Ok(())
}

#[test]
fn a_newer_write_of_the_deleter_brings_the_record_back_and_its_closure_sees_none() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = open_pages(&dir.path().join("s.redb"))?;
    p.users.put(&1, s("ada"), 1)?;
    p.posts.put(&1, s("ada, 1 post"), 10)?;
    p.users.delete(&1, 2)?;
    let seen = Arc::new(Mutex::new(None));
    let sink = Arc::clone(&seen);
    let outcome = p.users.update(&1, 3, move |current: Option<&String>| {
        *sink.lock().expect("seen") = Some(current.cloned());
        Some(s("ada again"))
    })?;
    assert_eq!(outcome, Outcome::Applied);
    assert_eq!(*seen.lock().expect("seen"), Some(None), "the closure saw a value");
    // The other source's version survived the tombstone: the record reads at 10.
    assert_eq!(read(&p.view, 1), Some((10, s("ada again"))));
    assert_eq!(p.posts.put(&1, s("old"), 10)?, Outcome::Stale { current: 10 });
    assert_eq!(p.posts.put(&1, s("ada, 2 posts"), 11)?, Outcome::Applied);
    assert_eq!(read(&p.view, 1), Some((11, s("ada, 2 posts"))));
    Ok(())
}

#[test]
fn the_last_delete_names_the_deleter() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = open_pages(&dir.path().join("s.redb"))?;
    p.users.put(&1, s("ada"), 1)?;
    p.users.delete(&1, 2)?;
    // A delete from posts on the users tombstone: posts is now the deleter.
    assert_eq!(p.posts.delete(&1, 5)?, Outcome::Applied);
    assert_eq!(p.users.put(&1, s("ada"), 3)?, Outcome::Tombstoned { deleter_version: 5 });
    assert_eq!(p.posts.put(&1, s("back"), 6)?, Outcome::Applied);
    assert_eq!(read(&p.view, 1), Some((6, s("back"))));
    Ok(())
}

#[test]
fn an_absent_record_is_created_by_any_source_also_after_a_purge() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = open_pages(&dir.path().join("s.redb"))?;
    assert_eq!(p.posts.put(&1, s("from posts"), 1)?, Outcome::Applied);
    assert_eq!(
        p.users.update(&2, 1, |n| Some(n.map_or(s("new"), Clone::clone)))?,
        Outcome::Applied
    );
    assert_eq!(read(&p.view, 2), Some((1, s("new"))));
    // Deleting an absent key leaves a tombstone, as without sources.
    assert_eq!(p.users.delete(&3, 4)?, Outcome::Applied);
    assert_eq!(p.posts.put(&3, s("late"), 1)?, Outcome::Tombstoned { deleter_version: 4 });
    // Once purged, the tombstone and its versions are forgotten: a late write of any
    // source creates the record again.
    assert_eq!(p.users.purge_tombstones(5)?, 1);
    assert_eq!(p.posts.put(&3, s("late"), 1)?, Outcome::Applied);
    assert_eq!(read(&p.view, 3), Some((1, s("late"))));
    Ok(())
}

#[test]
fn a_purge_removes_only_the_tombstones_its_source_deleted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = open_pages(&dir.path().join("s.redb"))?;
    p.users.put(&1, s("one"), 1)?;
    p.posts.put(&1, s("one"), 50)?;
    p.users.delete(&1, 2)?; // deleter users at 2 (posts at 50)
    p.posts.delete(&2, 3)?; // deleter posts at 3
    p.users.put(&3, s("three"), 1)?; // live: never purged
    // Below is compared with the purging source's own version.
    assert_eq!(p.posts.purge_tombstones(3)?, 0);
    assert_eq!(p.users.purge_tombstones(2)?, 0);
    assert_eq!(p.users.purge_tombstones(100)?, 1);
    assert_eq!(p.users.put(&2, s("two"), 1)?, Outcome::Tombstoned { deleter_version: 3 });
    assert_eq!(p.posts.purge_tombstones(4)?, 1);
    assert_eq!(p.users.purge_tombstones(u64::MAX)?, 0);
    assert_eq!(read(&p.view, 3), Some((1, s("three"))));
    // In a batch, a purge sees the batch's own tombstones, its source's only.
    let mut batch = Batch::new();
    batch.delete(&p.users, &3, 2)?;
    batch.delete(&p.posts, &4, 2)?;
    batch.purge_tombstones(&p.users, 10)?;
    let receipt = p.store.submit(batch)?.wait()?;
    assert_eq!(receipt.outcomes[2], Outcome::Purged { count: 1 });
    assert_eq!(p.posts.purge_tombstones(10)?, 1);
    Ok(())
}

#[test]
fn compare_and_set_and_delete_compare_their_own_sources_version() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = open_pages(&dir.path().join("s.redb"))?;
    assert_eq!(p.users.compare_and_set(&1, None, 1, s("ada"))?, Outcome::Applied);
    // Posts never wrote the live record: its version there is none.
    assert_eq!(
        p.posts.compare_and_set(&1, Some(1), 5, s("x"))?,
        Outcome::Conflict { current: None }
    );
    assert_eq!(p.posts.compare_and_set(&1, None, 5, s("ada, posts"))?, Outcome::Applied);
    assert_eq!(
        p.users.compare_and_set(&1, Some(5), 2, s("x"))?,
        Outcome::Conflict { current: Some(1) }
    );
    assert_eq!(p.users.compare_and_set(&1, Some(1), 1, s("x"))?, Outcome::Stale { current: 1 });
    assert_eq!(p.users.compare_and_delete(&1, 5, 2)?, Outcome::Conflict { current: Some(1) });
    assert_eq!(p.users.compare_and_delete(&1, 1, 1)?, Outcome::Stale { current: 1 });
    assert_eq!(p.users.compare_and_delete(&1, 1, 2)?, Outcome::Applied);
    assert_eq!(p.view.get(&1), None);
    // No live record: compared with none.
    assert_eq!(p.posts.compare_and_delete(&1, 5, 6)?, Outcome::Conflict { current: None });
    assert_eq!(p.users.put(&1, s("back"), 3)?, Outcome::Applied);
    Ok(())
}

#[test]
fn update_can_delete_through_a_source() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = open_pages(&dir.path().join("s.redb"))?;
    p.posts.put(&1, s("ada"), 4)?;
    assert_eq!(p.users.update(&1, 1, |_| Change::Delete)?, Outcome::Applied);
    assert_eq!(p.view.get(&1), None);
    assert_eq!(p.posts.put(&1, s("late"), 5)?, Outcome::Tombstoned { deleter_version: 1 });
    assert_eq!(p.users.update(&1, 2, |_| Change::Keep)?, Outcome::Unchanged);
    assert_eq!(p.view.get(&1), None);
    Ok(())
}

#[test]
fn several_sources_in_one_batch_on_one_key() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = open_pages(&dir.path().join("s.redb"))?;
    let mut batch = Batch::new();
    batch.put(&p.users, &1, s("ada"), 1)?;
    batch.put(&p.posts, &1, s("ada, 1 post"), 7)?;
    batch.delete(&p.users, &1, 2)?;
    batch.put(&p.posts, &1, s("ada, 2 posts"), 8)?;
    batch.put(&p.users, &1, s("ada"), 2)?;
    batch.update(&p.users, &1, 3, |n: Option<&String>| {
        assert!(n.is_none(), "resurrected from a tombstone, the closure sees none");
        Some(s("ada again"))
    })?;
    let receipt = p.store.submit(batch)?.wait()?;
    assert_eq!(
        receipt.outcomes,
        vec![
            Outcome::Applied,
            Outcome::Applied,
            Outcome::Applied,
            Outcome::Tombstoned { deleter_version: 2 },
            Outcome::Stale { current: 2 },
            Outcome::Applied,
        ]
    );
    assert_eq!(read(&p.view, 1), Some((8, s("ada again"))));
    Ok(())
}

#[test]
fn a_plain_handle_of_a_view_with_sources_cannot_write() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = open_pages(&dir.path().join("s.redb"))?;
    let mut batch = Batch::new();
    let refused = [
        batch.put(&p.view, &1, s("x"), 1).map(drop),
        batch.delete(&p.view, &1, 1).map(drop),
        batch.update(&p.view, &1, 1, |_| Some(s("x"))).map(drop),
        batch.compare_and_set(&p.view, &1, None, 1, s("x")).map(drop),
        batch.compare_and_delete(&p.view, &1, 1, 2).map(drop),
        batch.purge_tombstones(&p.view, 1).map(drop),
    ];
    for result in refused {
        let err = result.expect_err("a write without a source");
        assert!(matches!(&err, Error::SourceRequired { view } if view == "pages"), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Input);
        assert!(err.to_string().contains("'pages'"), "{err}");
    }
    assert!(batch.is_empty());
    let err = p.view.put(&1, s("x"), 1).expect_err("a blocking write without a source");
    assert!(matches!(err, Error::SourceRequired { .. }), "{err:?}");
    // Reads go through any handle, and the source handles read the same.
    p.users.put(&1, s("ada"), 1)?;
    assert_eq!(p.view.get(&1), p.posts.get(&1));
    assert_eq!((p.view.source_name(), p.posts.source_name()), (None, Some("posts")));
    Ok(())
}

/// `n` distinct source names, for a definition made at run time.
fn leaked_names(n: usize) -> &'static [&'static str] {
    let names: Vec<&'static str> =
        (0..n).map(|i| &*Box::leak(format!("source-{i}").into_boxed_str())).collect();
    Box::leak(names.into_boxed_slice())
}

#[test]
fn unknown_sources_and_bad_declarations_are_refused() -> TestResult {
    const TWICE: ViewDef<u64, String> = ViewDef::new("twice").with_sources(&["a", "b", "a"]);
    const EMPTY: ViewDef<u64, String> = ViewDef::new("empty").with_sources(&["a", ""]);
    const CONTROL: ViewDef<u64, String> = ViewDef::new("control").with_sources(&["a\n"]);
    let too_many: ViewDef<u64, String> = ViewDef::new("many").with_sources(leaked_names(65));
    let dir = tempfile::tempdir()?;
    let p = open_pages(&dir.path().join("s.redb"))?;
    let err = p.view.source("follows").expect_err("not declared");
    assert!(
        matches!(&err, Error::UnknownSource { view, source_name }
            if view == "pages" && source_name == "follows"),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Input);
    assert!(err.to_string().contains("follows"), "{err}");
    let names = p.store.view(&NAMES)?;
    let err = names.source("users").expect_err("a view without sources");
    assert!(matches!(err, Error::UnknownSource { .. }), "{err:?}");
    for (def, name) in [(&TWICE, "a"), (&EMPTY, ""), (&CONTROL, "a\n"), (&too_many, "source-64")] {
        let err = p.store.view(def).expect_err("an invalid source list");
        assert!(
            matches!(&err, Error::InvalidSource { view, source_name, .. }
                if view == def.name() && source_name == name),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Input);
    }
    // Sixty-four sources are fine, and the last one writes.
    let most: ViewDef<u64, String> = ViewDef::new("most").with_sources(leaked_names(64));
    let last = p.store.view(&most)?.source("source-63")?;
    assert_eq!(last.put(&1, s("x"), 1)?, Outcome::Applied);
    assert_eq!(last.put(&1, s("x"), 1)?, Outcome::Stale { current: 1 });
    Ok(())
}

#[test]
fn per_source_versions_and_deleters_survive_a_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    {
        let p = open_pages(&path)?;
        p.users.put(&1, s("ada"), 3)?;
        p.posts.put(&1, s("ada, 1 post"), 30)?;
        p.posts.put(&2, s("grace"), 20)?;
        p.users.delete(&2, 4)?;
        p.store.close()?;
    }
    let p = open_pages(&path)?;
    assert_eq!(read(&p.view, 1), Some((30, s("ada, 1 post"))));
    assert_eq!(p.users.put(&1, s("old"), 3)?, Outcome::Stale { current: 3 });
    assert_eq!(p.posts.put(&1, s("old"), 30)?, Outcome::Stale { current: 30 });
    assert_eq!(p.posts.put(&2, s("late"), 21)?, Outcome::Tombstoned { deleter_version: 4 });
    assert_eq!(p.posts.put(&2, s("late"), 21)?, Outcome::Stale { current: 21 });
    assert_eq!(p.users.put(&1, s("ada lovelace"), 4)?, Outcome::Applied);
    assert!(p.store.verify()?.is_ok(), "verify after reopen");
    p.store.close()?;
    let p = open_pages(&path)?;
    assert_eq!(read(&p.view, 1), Some((30, s("ada lovelace"))));
    assert_eq!(p.view.get(&2), None);
    assert!(p.store.verify()?.is_ok(), "verify after the second reopen");
    Ok(())
}

#[test]
fn the_source_list_may_grow_at_its_end_only() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    {
        let p = open_pages(&path)?;
        p.posts.put(&1, s("ada"), 10)?;
        // Within one open store, the view's definition stays what it was.
        let err = p.store.view(&PAGES_APPENDED).expect_err("another list while open");
        assert!(matches!(err, Error::SchemaMismatch { .. }), "{err:?}");
        p.store.close()?;
    }
    for refused in [&PAGES_REORDERED, &PAGES_SHORTER, &PAGES_PLAIN] {
        let store = Store::open(&path)?;
        let err = store.view(refused).expect_err("not an extension");
        assert!(
            matches!(&err, Error::SchemaMismatch { view, stored, .. }
                if view == "pages" && stored.contains("[users, posts]")),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Input);
        store.close()?;
    }
    {
        let store = Store::open(&path)?;
        let pages = store.view(&PAGES_APPENDED)?;
        let (posts, follows) = (pages.source("posts")?, pages.source("follows")?);
        assert_eq!(posts.put(&1, s("old"), 10)?, Outcome::Stale { current: 10 });
        assert_eq!(follows.put(&1, s("ada, followed"), 1)?, Outcome::Applied);
        assert_eq!(follows.put(&1, s("again"), 1)?, Outcome::Stale { current: 1 });
        assert_eq!(read(&pages, 1), Some((10, s("ada, followed"))));
        store.close()?;
    }
    // Once appended, the longer list is the stored one.
    let store = Store::open(&path)?;
    let err = store.view(&PAGES).expect_err("a source removed");
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{err:?}");
    let pages = store.view(&PAGES_APPENDED)?;
    assert_eq!(pages.source("follows")?.put(&1, s("x"), 1)?, Outcome::Stale { current: 1 });
    Ok(())
}

#[test]
fn a_view_stored_without_sources_cannot_gain_them() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::open(&path)?;
    store.view(&NAMES)?.put(&1, s("ada"), 1)?;
    store.close()?;
    let store = Store::open(&path)?;
    let err = store.view(&NAMES_SOURCED).expect_err("sources added to a stored view");
    assert!(
        matches!(&err, Error::SchemaMismatch { view, stored, requested, .. }
            if view == "names" && stored == "without sources" && requested.contains("[users]")),
        "{err:?}"
    );
    assert_eq!(store.view(&NAMES)?.get(&1).as_deref(), Some(&s("ada")));
    Ok(())
}

/// The stored bytes of every record of a view, in key order, and the file's format
/// version.
type RawView = (Vec<Vec<u8>>, u32);

fn raw(path: &Path, view: &str) -> Result<RawView, Box<dyn std::error::Error>> {
    let db = redb::Database::open(path)?;
    let txn = db.begin_read()?;
    let name = format!("view.{view}");
    let table = txn.open_table(TableDefinition::<&[u8], &[u8]>::new(&name))?;
    let mut records = Vec::new();
    for item in table.iter()? {
        records.push(item?.1.value().to_vec());
    }
    let meta = txn.open_table(TableDefinition::<&str, &[u8]>::new("viewstore.meta"))?;
    let format = meta.get("format")?.ok_or("no format")?.value().to_vec();
    Ok((records, u32::from_le_bytes(format.as_slice().try_into()?)))
}

/// The bincode bytes of a string value: its length, then its bytes.
fn string_bytes(text: &str) -> Vec<u8> {
    [&[text.len() as u8][..], text.as_bytes()].concat()
}

#[test]
fn a_view_without_sources_writes_the_same_bytes_as_before() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::open(&path)?;
    let names = store.view(&NAMES)?;
    names.put(&1, s("ada"), 7)?;
    names.update(&2, 300, |_| Some(s("grace")))?;
    names.delete(&3, 9)?;
    store.close()?;
    let (records, format) = raw(&path, "names")?;
    assert_eq!(
        records,
        vec![
            [&[1u8][..], &7u64.to_le_bytes(), &string_bytes("ada")].concat(),
            [&[1u8][..], &300u64.to_le_bytes(), &string_bytes("grace")].concat(),
            [&[2u8][..], &9u64.to_le_bytes()].concat(),
        ]
    );
    assert_eq!(format, 1, "a file without a view with sources keeps format 1");
    // No table for sources either.
    let db = redb::Database::open(&path)?;
    let tables: Vec<String> =
        db.begin_read()?.list_tables()?.map(|t| redb::TableHandle::name(&t).to_owned()).collect();
    assert!(!tables.iter().any(|t| t.contains("sources")), "{tables:?}");
    Ok(())
}

#[test]
fn a_view_with_sources_writes_its_versions_per_source() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let p = open_pages(&path)?;
    p.posts.put(&1, s("ada"), 7)?;
    p.users.delete(&2, 5)?;
    p.store.close()?;
    let (records, format) = raw(&path, "pages")?;
    let entry = |present: u8, version: u64| [&[present][..], &version.to_le_bytes()].concat();
    assert_eq!(
        records,
        vec![
            // Live: tag 3, two sources, no deleter, users absent, posts at 7, value.
            [&[3u8, 2, 0xFF][..], &entry(0, 0), &entry(1, 7), &string_bytes("ada")].concat(),
            // Tombstone: tag 4, one source known (users, at 5), deleted by users.
            [&[4u8, 1, 0][..], &entry(1, 5)].concat(),
        ]
    );
    assert_eq!(format, 2, "a file with a view with sources says so");
    Ok(())
}
