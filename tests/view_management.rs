//! View management: listing the file's views (open or not, with their counts),
//! dropping, clearing and renaming one, each surviving a reopen; the errors for open
//! views, unknown names, collisions and invalid names change nothing; compaction
//! shrinks a file after a big drop and keeps the data.

use redb::{ReadableDatabase, TableHandle};
use serde::{Deserialize, Serialize};
use std::path::Path;
use viewstore::{Batch, Error, FeedMode, IndexDef, IndexKind, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    email: String,
    team: u32,
}

const BY_EMAIL: IndexDef<User, String> = IndexDef::unique("by_email", |u| u.email.clone());
const BY_TEAM: IndexDef<User, u32> = IndexDef::multi("by_team", |u| u.team);
const USERS: ViewDef<u64, User> = ViewDef::new("users").with_indexes(&[&BY_EMAIL, &BY_TEAM]);
const MEMBERS: ViewDef<u64, User> = ViewDef::new("members").with_indexes(&[&BY_EMAIL, &BY_TEAM]);
const NOTES: ViewDef<u64, String> = ViewDef::new("notes").with_feed(FeedMode::Keys);
/// `users` again, with other types: only a dropped `users` opens so.
const USERS_AS_TEXT: ViewDef<String, String> = ViewDef::new("users");

fn user(id: u64) -> User {
    User { email: format!("u{id}@example.com"), team: (id % 3) as u32 }
}

/// The redb tables of the file at `path`, which must be closed.
fn tables(path: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let db = redb::Database::open(path)?;
    let txn = db.begin_read()?;
    Ok(txn.list_tables()?.map(|t| t.name().to_string()).collect())
}

/// A store with `users` (10 records, 2 of them deleted) and `notes` (3 records).
fn fill(path: &Path) -> TestResult {
    let store = Store::open(path)?;
    let users = store.view(&USERS)?;
    let notes = store.view(&NOTES)?;
    let mut batch = Batch::new();
    for id in 0..10 {
        batch.put(&users, &id, user(id), 1)?;
    }
    for id in 0..3 {
        batch.put(&notes, &id, format!("note {id}"), 1)?;
    }
    store.submit(batch)?.wait()?;
    users.delete(&8, 2)?;
    users.delete(&9, 2)?;
    store.close()?;
    Ok(())
}

#[test]
fn views_lists_views_of_earlier_runs_with_their_counts() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    fill(&path)?;
    let store = Store::open(&path)?;
    let views = store.views()?;
    let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["notes", "users"]);
    let users = &views[1];
    assert_eq!((users.records, users.tombstones, users.open), (8, 2, false));
    assert_eq!(users.key_type, std::any::type_name::<u64>());
    assert_eq!(users.schema_version, 1);
    assert_eq!(users.feed, None);
    let indexes: Vec<(&str, IndexKind)> =
        users.indexes.iter().map(|i| (i.name.as_str(), i.kind)).collect();
    assert_eq!(indexes, [("by_email", IndexKind::Unique), ("by_team", IndexKind::Multi)]);
    assert_eq!((views[0].records, views[0].tombstones), (3, 0));

    // Opened in this process, counted from memory, with its feed mode known.
    let handle = store.view(&USERS)?;
    handle.put(&20, user(20), 1)?;
    store.view(&NOTES)?;
    let views = store.views()?;
    assert_eq!((views[1].records, views[1].tombstones, views[1].open), (9, 2, true));
    assert_eq!(views[0].feed, Some(FeedMode::Keys));
    let line = views[1].to_string();
    assert!(line.starts_with("users: key u64") && line.contains("9 records, 2 tombstones"));
    assert!(line.contains("index by_email (unique") && line.ends_with(", open"), "{line}");
    Ok(())
}

#[test]
fn drop_removes_every_table_and_row_and_survives_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    fill(&path)?;
    assert!(tables(&path)?.iter().any(|t| t == "index.users/by_email"));
    let lsn = {
        let store = Store::open(&path)?;
        let before = store.lsn();
        let lsn = store.drop_view("users")?;
        assert_eq!(lsn.get(), before.get() + 1);
        assert_eq!(store.lsn(), lsn);
        let names: Vec<String> = store.views()?.into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["notes"]);
        store.close()?;
        lsn
    };
    let left = tables(&path)?;
    assert!(!left.iter().any(|t| t.contains("users")), "tables left: {left:?}");
    assert!(left.iter().any(|t| t == "view.notes"));
    let store = Store::open(&path)?;
    assert_eq!(store.lsn(), lsn);
    assert_eq!(store.views()?.len(), 1);
    // The name is free again, for any types; the view starts empty.
    let users = store.view(&USERS_AS_TEXT)?;
    assert!(users.is_empty());
    users.put(&"ada".to_string(), "admin".to_string(), 1)?;
    assert_eq!(store.view(&NOTES)?.len(), 3);
    Ok(())
}

#[test]
fn clear_empties_an_open_view_and_its_indexes_and_later_writes_work() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    fill(&path)?;
    let store = Store::open(&path)?;
    let users = store.view(&USERS)?;
    let notes = store.view(&NOTES)?;
    let before = store.snapshot();
    let feed_from = store.lsn();
    let lsn = store.clear_view("users")?;
    assert!(users.is_empty());
    assert_eq!(users.get(&1), None);
    assert_eq!(users.index_get(&BY_EMAIL, "u1@example.com"), None);
    assert_eq!(users.index_count(&BY_TEAM, &1), 0);
    // A snapshot taken before still sees everything; other views are untouched.
    assert_eq!(before.view(&users)?.len(), 8);
    assert_eq!(notes.len(), 3);
    let info = store.views()?;
    assert_eq!((info[1].records, info[1].tombstones), (0, 0));
    // Tombstones went too: a write at any version applies, indexes follow.
    users.put(&9, user(1), 1)?;
    assert_eq!(users.index_get(&BY_EMAIL, "u1@example.com").map(|(k, _)| k), Some(9));
    assert!(store.verify()?.is_ok());
    // The feed records one purge per key of a view with a feed.
    store.clear_view("notes")?;
    let mut reader = store.feed_after(feed_from)?;
    let mut groups = Vec::new();
    while let Some(group) = reader.next_timeout(std::time::Duration::ZERO)? {
        groups.push(group);
    }
    let purged: Vec<_> = groups.iter().flat_map(|g| &g.changes).collect();
    assert_eq!(purged.len(), 3);
    assert!(purged.iter().all(|c| c.kind == viewstore::ChangeKind::Purged && &*c.view == "notes"));
    assert!(groups.iter().all(|g| g.lsn > lsn));
    store.close()?;
    drop((users, notes));
    let store = Store::open(&path)?;
    let users = store.view(&USERS)?;
    assert_eq!(users.len(), 1);
    assert_eq!(users.index_get(&BY_EMAIL, "u1@example.com").map(|(k, _)| k), Some(9));
    assert!(store.view(&NOTES)?.is_empty());
    Ok(())
}

#[test]
fn rename_keeps_records_and_indexes_under_the_new_name() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    fill(&path)?;
    {
        let store = Store::open(&path)?;
        store.rename_view("users", "members")?;
        let names: Vec<String> = store.views()?.into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["members", "notes"]);
        store.close()?;
    }
    let left = tables(&path)?;
    assert!(!left.iter().any(|t| t.contains("users")), "tables left: {left:?}");
    assert!(left.iter().any(|t| t == "index.members/by_team"));
    let store = Store::open(&path)?;
    let members = store.view(&MEMBERS)?;
    assert_eq!(members.len(), 8);
    assert_eq!(members.get(&3).as_deref(), Some(&user(3)));
    assert_eq!(members.index_get(&BY_EMAIL, "u2@example.com").map(|(k, _)| k), Some(2));
    assert_eq!(members.index_count(&BY_TEAM, &0), 3);
    // Tombstones moved too: an older write to a deleted key stays refused.
    assert!(!members.put(&8, user(8), 1)?.is_applied());
    assert!(store.verify()?.is_ok());
    assert!(store.view(&USERS)?.is_empty());
    Ok(())
}

/// The views and their contents, as a comparable value.
fn state(store: &Store) -> viewstore::Result<Vec<(String, u64, u64)>> {
    Ok(store.views()?.into_iter().map(|v| (v.name, v.records, v.tombstones)).collect())
}

#[test]
fn refused_operations_name_the_view_and_change_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    fill(&path)?;
    let store = Store::open(&path)?;
    let _users = store.view(&USERS)?;
    let (before, lsn) = (state(&store)?, store.lsn());
    let refusals = [
        (store.drop_view("users"), "users"),
        (store.rename_view("users", "people"), "users"),
        (store.drop_view("nobody"), "nobody"),
        (store.clear_view("nobody"), "nobody"),
        (store.rename_view("nobody", "people"), "nobody"),
        (store.rename_view("notes", "users"), "users"),
        (store.rename_view("notes", "notes"), "notes"),
        (store.rename_view("notes", ""), ""),
        (store.drop_view("bad\nname"), "bad\nname"),
    ];
    for (result, name) in refusals {
        let err = result.expect_err("refused");
        assert_eq!(err.kind(), viewstore::ErrorKind::Input, "{err}");
        match &err {
            Error::ViewOpen { view, .. }
            | Error::UnknownView { view }
            | Error::ViewExists { view }
            | Error::InvalidViewName { view } => assert_eq!(view, name),
            other => return Err(format!("unexpected error {other:?}").into()),
        }
    }
    let err = store.drop_view("users").expect_err("open").to_string();
    assert!(err.contains("'users'") && err.contains("drop"), "{err}");
    assert_eq!(store.lsn(), lsn);
    assert_eq!(state(&store)?, before);
    store.close()?;
    let store = Store::open(&path)?;
    assert_eq!(state(&store)?, before);
    Ok(())
}

#[test]
fn compaction_shrinks_the_file_after_a_big_drop_and_keeps_the_data() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    fill(&path)?;
    {
        const BIG: ViewDef<u64, String> = ViewDef::new("big");
        let store = Store::open(&path)?;
        let big = store.view(&BIG)?;
        for chunk in 0..20u64 {
            let mut batch = Batch::new();
            for id in chunk * 1000..(chunk + 1) * 1000 {
                batch.put(&big, &id, "x".repeat(200), 1)?;
            }
            store.submit(batch)?.wait()?;
        }
        store.close()?;
    }
    let store = Store::open(&path)?;
    store.drop_view("big")?;
    let report = store.compact()?;
    println!("{report}");
    assert!(report.compacted);
    assert!(report.after * 2 < report.before, "{report:?}");
    assert_eq!(std::fs::metadata(&path)?.len(), report.after);
    let users = store.view(&USERS)?;
    assert_eq!(users.len(), 8);
    users.put(&30, user(30), 1)?;
    store.close()?;
    let store = Store::open(&path)?;
    assert_eq!(store.view(&USERS)?.len(), 9);
    assert_eq!(store.view(&NOTES)?.len(), 3);
    Ok(())
}
