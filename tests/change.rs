//! `update` closures that keep, replace or delete (`Change`), and compare-and-delete,
//! on views without sources: tombstones, stale and conflicting writes, and the unique
//! index entries a delete removes.

mod support;

use serde::{Deserialize, Serialize};
use support::TestResult;
use viewstore::{Batch, Change, IndexDef, Outcome, Store, View, ViewDef};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    email: String,
    logins: u32,
}

const BY_EMAIL: IndexDef<User, String> = IndexDef::unique("by_email", |u| u.email.clone());
const USERS: ViewDef<u64, User> = ViewDef::new("users").with_indexes(&[&BY_EMAIL]);
const COUNTS: ViewDef<u64, u64> = ViewDef::new("counts");

fn user(email: &str, logins: u32) -> User {
    User { email: email.to_owned(), logins }
}

fn open(dir: &tempfile::TempDir) -> viewstore::Result<(Store, View<u64, User>)> {
    let store = Store::open(dir.path().join("s.redb"))?;
    let users = store.view(&USERS)?;
    Ok((store, users))
}

#[test]
fn an_update_that_deletes_leaves_a_tombstone_at_its_version() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (store, users) = open(&dir)?;
    users.put(&1, user("ada@x", 0), 5)?;
    assert_eq!(users.update(&1, 6, |_| Change::Delete)?, Outcome::Applied);
    assert_eq!(users.get(&1), None);
    // The tombstone is at 6: older and equal writes are stale, a newer one applies.
    assert_eq!(users.put(&1, user("ada@x", 1), 6)?, Outcome::Stale { current: 6 });
    assert_eq!(users.update(&1, 4, |_| Some(user("x@x", 0)))?, Outcome::Stale { current: 6 });
    assert_eq!(users.put(&1, user("ada@x", 2), 7)?, Outcome::Applied);
    // Deleting an absent key leaves a tombstone too, as `delete` does.
    assert_eq!(users.update(&2, 3, |_| Change::Delete)?, Outcome::Applied);
    assert_eq!(users.put(&2, user("b@x", 0), 2)?, Outcome::Stale { current: 3 });
    assert_eq!(users.purge_tombstones(4)?, 1);
    assert!(store.verify()?.is_ok());
    Ok(())
}

#[test]
fn an_update_that_deletes_removes_the_index_entries() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (store, users) = open(&dir)?;
    users.put(&1, user("ada@x", 0), 1)?;
    let take = |u: Option<&User>| match u {
        Some(u) if u.logins == 0 => Change::Delete,
        Some(u) => Change::Put(User { logins: u.logins - 1, ..u.clone() }),
        None => Change::Keep,
    };
    assert_eq!(users.update(&1, 2, take)?, Outcome::Applied);
    assert_eq!(users.index_get(&BY_EMAIL, &"ada@x".to_owned()), None);
    // The e-mail is free: another record takes it, in the same batch as a delete too.
    assert_eq!(users.put(&2, user("ada@x", 0), 1)?, Outcome::Applied);
    let mut batch = Batch::new();
    batch.update(&users, &2, 2, take)?;
    batch.put(&users, &3, user("ada@x", 0), 1)?;
    let receipt = store.submit(batch)?.wait()?;
    assert_eq!(receipt.outcomes, vec![Outcome::Applied; 2]);
    let (id, _) = users.index_get(&BY_EMAIL, &"ada@x".to_owned()).ok_or("indexed")?;
    assert_eq!(id, 3);
    assert_eq!(users.update(&9, 1, take)?, Outcome::Unchanged);
    store.close()?;
    let (store, users) = open(&dir)?;
    assert_eq!(users.index_get(&BY_EMAIL, &"ada@x".to_owned()).map(|(k, _)| k), Some(3));
    assert!(store.verify()?.is_ok());
    Ok(())
}

#[test]
fn compare_and_delete_conflicts_goes_stale_or_applies() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (store, users) = open(&dir)?;
    assert_eq!(users.compare_and_delete(&1, 1, 2)?, Outcome::Conflict { current: None });
    users.put(&1, user("ada@x", 0), 5)?;
    assert_eq!(users.compare_and_delete(&1, 4, 6)?, Outcome::Conflict { current: Some(5) });
    assert_eq!(users.compare_and_delete(&1, 5, 5)?, Outcome::Stale { current: 5 });
    assert_eq!(users.compare_and_delete(&1, 5, 6)?, Outcome::Applied);
    assert_eq!(users.get(&1), None);
    assert_eq!(users.index_get(&BY_EMAIL, &"ada@x".to_owned()), None);
    // A tombstone is no live record.
    assert_eq!(users.compare_and_delete(&1, 6, 7)?, Outcome::Conflict { current: None });
    assert_eq!(users.put(&1, user("ada@x", 0), 6)?, Outcome::Stale { current: 6 });
    // In a batch, after the batch's own put.
    let mut batch = Batch::new();
    batch.put(&users, &2, user("b@x", 0), 1)?;
    batch.compare_and_delete(&users, &2, 1, 2)?;
    batch.put(&users, &3, user("b@x", 0), 1)?;
    let receipt = store.submit(batch)?.wait()?;
    assert_eq!(receipt.outcomes, vec![Outcome::Applied; 3]);
    assert_eq!(users.index_get(&BY_EMAIL, &"b@x".to_owned()).map(|(k, _)| k), Some(3));
    assert!(store.verify()?.is_ok());
    Ok(())
}

#[test]
fn closures_returning_options_still_compile_and_keep() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let counts = store.view(&COUNTS)?;
    assert_eq!(counts.update(&1, 1, |_| None)?, Outcome::Unchanged);
    let bump = |n: Option<&u64>| n.map(|n| n + 1);
    assert_eq!(counts.update(&1, 2, bump)?, Outcome::Unchanged);
    assert_eq!(counts.update(&1, 3, |n| Some(n.copied().unwrap_or(0) + 1))?, Outcome::Applied);
    assert_eq!(counts.update(&1, 4, bump)?, Outcome::Applied);
    let mut batch = Batch::new();
    batch.update(&counts, &1, 5, |n| match n {
        Some(&n) if n > 10 => None,
        Some(&n) => Some(n * 10),
        None => Some(0),
    })?;
    batch.update(&counts, &1, 6, |n| Change::from(n.map(|n| n + 1)))?;
    let receipt = store.submit(batch)?.wait()?;
    assert_eq!(receipt.outcomes, vec![Outcome::Applied; 2]);
    assert_eq!(counts.get_versioned(&1).map(|(v, n)| (v, *n)), Some((6, 21)));
    Ok(())
}
