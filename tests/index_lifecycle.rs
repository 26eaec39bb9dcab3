//! Index lifecycle: built at open for existing data (with progress), rebuilt when its
//! definition version changes, dropped when no longer declared, checked by `verify`.

use redb::{ReadableDatabase, ReadableTable, TableHandle};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::{Arc, Mutex};
use viewstore::{IndexDef, IndexProgress, ProblemKind, Store, ViewDef};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Post {
    author: u32,
    tags: Vec<String>,
}

const BY_AUTHOR: IndexDef<Post, u32> = IndexDef::multi("by_author", |p| p.author);
const BY_TAG: IndexDef<Post, String> = IndexDef::multi_keys("by_tag", |p| p.tags.clone());
// Version 2 of by_tag indexes tags upper-cased.
const BY_TAG_V2: IndexDef<Post, String> =
    IndexDef::multi_keys("by_tag", |p: &Post| p.tags.iter().map(|t| t.to_uppercase()).collect())
        .with_definition_version(2);

const PLAIN: ViewDef<u64, Post> = ViewDef::new("posts");
const WITH_AUTHOR: ViewDef<u64, Post> = ViewDef::new("posts").with_indexes(&[&BY_AUTHOR]);
const WITH_BOTH: ViewDef<u64, Post> = ViewDef::new("posts").with_indexes(&[&BY_AUTHOR, &BY_TAG]);
const WITH_BOTH_V2: ViewDef<u64, Post> =
    ViewDef::new("posts").with_indexes(&[&BY_AUTHOR, &BY_TAG_V2]);

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn post(author: u32, tags: &[&str]) -> Post {
    Post { author, tags: tags.iter().map(|t| (*t).to_string()).collect() }
}

fn open_recording(path: &Path) -> viewstore::Result<(Store, Arc<Mutex<Vec<IndexProgress>>>)> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let store = Store::builder(path)
        .on_index_build(move |p| sink.lock().expect("progress lock").push(p.clone()))
        .open()?;
    Ok((store, seen))
}

fn tables(path: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let db = redb::Database::open(path)?;
    let txn = db.begin_read()?;
    Ok(txn.list_tables()?.map(|t| t.name().to_string()).collect())
}

#[test]
fn a_new_index_is_built_from_existing_records_with_progress() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    {
        let store = Store::open(&path)?;
        let posts = store.view(&PLAIN)?;
        let mut batch = viewstore::Batch::new();
        for id in 0..25_000u64 {
            batch.put(&posts, &id, post((id % 7) as u32, &["rust"]), 1)?;
        }
        store.submit(batch)?.wait()?;
    }
    let (store, seen) = open_recording(&path)?;
    let posts = store.view(&WITH_AUTHOR)?;
    let progress = seen.lock().expect("progress lock").clone();
    assert_eq!(progress.first().map(|p| (p.done, p.total)), Some((0, 25_000)));
    assert_eq!(progress.last().map(|p| (p.done, p.total)), Some((25_000, 25_000)));
    assert!(progress.iter().all(|p| p.view == "posts" && p.index == "by_author"));
    assert!(progress.len() >= 4, "expected intermediate reports, got {progress:?}");
    assert_eq!(posts.index_count(&BY_AUTHOR, &3), (0..25_000).filter(|i| i % 7 == 3).count());
    let first: Vec<u64> =
        posts.snapshot().index(&BY_AUTHOR).get_all(&3).take(3).map(|(_, id, _)| id).collect();
    assert_eq!(first, vec![3, 10, 17]);
    assert!(store.verify()?.is_ok());
    drop(posts);
    store.close()?;
    // Reopened unchanged: loaded, not rebuilt.
    let (store, seen) = open_recording(&path)?;
    let posts = store.view(&WITH_AUTHOR)?;
    assert!(seen.lock().expect("progress lock").is_empty(), "an unchanged index was rebuilt");
    assert_eq!(posts.index_count(&BY_AUTHOR, &3), (0..25_000).filter(|i| i % 7 == 3).count());
    Ok(())
}

#[test]
fn a_changed_definition_version_rebuilds_and_a_dropped_index_is_deleted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    {
        let store = Store::open(&path)?;
        let posts = store.view(&WITH_BOTH)?;
        posts.put(&1, post(1, &["db", "rust"]), 1)?;
        posts.put(&2, post(2, &["rust"]), 1)?;
        assert_eq!(posts.index_count(&BY_TAG, &"rust".to_string()), 2);
    }
    {
        let (store, seen) = open_recording(&path)?;
        let posts = store.view(&WITH_BOTH_V2)?;
        let built: Vec<String> =
            seen.lock().expect("progress lock").iter().map(|p| p.index.clone()).collect();
        assert!(built.iter().all(|i| i == "by_tag") && !built.is_empty(), "{built:?}");
        assert_eq!(posts.index_count(&BY_TAG_V2, &"RUST".to_string()), 2);
        assert_eq!(posts.index_count(&BY_TAG_V2, &"rust".to_string()), 0);
        assert!(store.verify()?.is_ok());
    }
    assert!(tables(&path)?.contains(&"index.posts/by_tag".to_string()));
    {
        let store = Store::open(&path)?;
        let posts = store.view(&WITH_AUTHOR)?;
        assert_eq!(posts.index_count(&BY_TAG_V2, &"RUST".to_string()), 0);
        assert_eq!(posts.index_count(&BY_AUTHOR, &1), 1);
        assert!(store.verify()?.is_ok());
    }
    let names = tables(&path)?;
    assert!(!names.contains(&"index.posts/by_tag".to_string()), "dropped index kept: {names:?}");
    assert!(names.contains(&"index.posts/by_author".to_string()));
    Ok(())
}

#[test]
fn verify_reports_an_index_corrupted_on_disk() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    {
        let store = Store::open(&path)?;
        let posts = store.view(&WITH_AUTHOR)?;
        for id in 0..10u64 {
            posts.put(&id, post(id as u32 % 3, &[]), 1)?;
        }
        assert!(store.verify()?.is_ok());
    }
    {
        // Remove one entry and add a bogus one behind the store's back.
        let db = redb::Database::open(&path)?;
        let txn = db.begin_write()?;
        {
            let def: redb::TableDefinition<&[u8], u32> =
                redb::TableDefinition::new("index.posts/by_author");
            let mut table = txn.open_table(def)?;
            let first = table.first()?.map(|(k, _)| k.value().to_vec()).expect("an entry");
            table.remove(first.as_slice())?;
            let mut bogus = 9u32.to_be_bytes().to_vec();
            bogus.extend_from_slice(&4u64.to_be_bytes());
            table.insert(bogus.as_slice(), 4)?;
        }
        txn.commit()?;
    }
    let store = Store::open(&path)?;
    let _posts = store.view(&WITH_AUTHOR)?;
    let report = store.verify()?;
    let kinds: Vec<ProblemKind> = report.problems.iter().map(|p| p.kind).collect();
    assert!(kinds.contains(&ProblemKind::MissingOnDisk), "{:?}", report.problems);
    assert!(kinds.contains(&ProblemKind::ExtraOnDisk), "{:?}", report.problems);
    let extra = report.problems.iter().find(|p| p.kind == ProblemKind::ExtraOnDisk).expect("extra");
    assert_eq!(extra.index.as_deref(), Some("by_author"));
    assert_eq!(extra.key, "9 -> 4");
    assert_eq!(report.records, 10);
    Ok(())
}

/// A stored index entry whose record is not in the view is an index that disagrees
/// with its records: opening the view rebuilds the index from the records, so that no
/// lookup can find an entry without its record.
#[test]
fn an_index_entry_without_its_record_is_rebuilt_away_at_open() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    {
        let store = Store::open(&path)?;
        let posts = store.view(&WITH_AUTHOR)?;
        for id in 0..10u64 {
            posts.put(&id, post(id as u32 % 3, &[]), 1)?;
        }
    }
    let def: redb::TableDefinition<&[u8], u32> =
        redb::TableDefinition::new("index.posts/by_author");
    let mut dangling = 1u32.to_be_bytes().to_vec();
    dangling.extend_from_slice(&99u64.to_be_bytes());
    {
        let db = redb::Database::open(&path)?;
        let txn = db.begin_write()?;
        txn.open_table(def)?.insert(dangling.as_slice(), 4)?;
        txn.commit()?;
    }
    {
        let store = Store::open(&path)?;
        let posts = store.view(&WITH_AUTHOR)?;
        assert!(store.verify()?.is_ok(), "{:?}", store.verify()?.problems);
        let by_author: Vec<u64> =
            posts.index_get_all(&BY_AUTHOR, &1).into_iter().map(|(k, _)| k).collect();
        assert_eq!(by_author, vec![1, 4, 7]);
    }
    let db = redb::Database::open(&path)?;
    let txn = redb::ReadableDatabase::begin_read(&db)?;
    let table = txn.open_table(def)?;
    assert!(table.get(dangling.as_slice())?.is_none(), "the dangling entry is still stored");
    assert_eq!(redb::ReadableTableMetadata::len(&table)?, 10);
    Ok(())
}

#[test]
fn one_view_cannot_be_open_with_two_index_lists_at_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let posts = store.view(&WITH_AUTHOR)?;
    posts.put(&1, post(1, &["a"]), 1)?;
    match store.view(&WITH_BOTH) {
        Err(viewstore::Error::SchemaMismatch { view, stored, requested, .. }) => {
            assert_eq!(view, "posts");
            assert!(stored.contains("by_author") && !stored.contains("by_tag"), "{stored}");
            assert!(requested.contains("by_tag"), "{requested}");
        }
        other => panic!("expected a schema mismatch, got {other:?}"),
    }
    // The same definition again is fine and shares the open view.
    let again = store.view(&WITH_AUTHOR)?;
    assert_eq!(again.index_count(&BY_AUTHOR, &1), 1);
    Ok(())
}

#[test]
fn a_unique_index_over_duplicate_data_is_refused_and_nothing_changes() -> TestResult {
    const BY_AUTHOR_UNIQUE: IndexDef<Post, u32> = IndexDef::unique("author_unique", |p| p.author);
    const STRICT: ViewDef<u64, Post> = ViewDef::new("posts").with_indexes(&[&BY_AUTHOR_UNIQUE]);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    {
        let store = Store::open(&path)?;
        let posts = store.view(&PLAIN)?;
        posts.put(&1, post(5, &[]), 1)?;
        posts.put(&2, post(5, &[]), 1)?;
    }
    let store = Store::open(&path)?;
    match store.view(&STRICT) {
        Err(viewstore::Error::UniqueViolation { view, index, key, key_bytes, holder, refused }) => {
            assert_eq!(
                (view.as_str(), index.as_str(), key.as_str()),
                ("posts", "author_unique", "5")
            );
            // A u32 index key encodes big-endian; records 1 and 2 share it.
            assert_eq!(*key_bytes, 5u32.to_be_bytes());
            assert_eq!((&*holder, &*refused), ("1", "2"));
        }
        other => panic!("expected a unique violation, got {other:?}"),
    }
    let posts = store.view(&PLAIN)?;
    assert_eq!(posts.len(), 2);
    drop(posts);
    store.close()?;
    assert!(!tables(&path)?.contains(&"index.posts/author_unique".to_string()));
    Ok(())
}
