//! Unique indexes: every way a second holder can appear is refused, moves are legal.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use viewstore::{Batch, Error, IndexDef, Store, View, ViewDef};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    email: String,
}

const BY_EMAIL: IndexDef<User, String> = IndexDef::unique("by_email", |u| u.email.clone());
const USERS: ViewDef<u64, User> = ViewDef::new("users").with_indexes(&[&BY_EMAIL]);

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn user(name: &str, email: &str) -> User {
    User { name: name.into(), email: email.into() }
}

fn open(dir: &tempfile::TempDir) -> Result<(Store, View<u64, User>), Error> {
    let store =
        Store::builder(dir.path().join("s.redb")).max_linger(Duration::from_millis(50)).open()?;
    let users = store.view(&USERS)?;
    Ok((store, users))
}

fn holder(users: &View<u64, User>, email: &str) -> Option<u64> {
    users.index_get(&BY_EMAIL, &email.to_string()).map(|(id, _)| id)
}

/// Checks a unique violation of `email`, held by record `holder` and refused to record
/// `refused`.
fn assert_violation(
    result: Result<viewstore::Receipt, Error>,
    email: &str,
    holder: u64,
    refused: u64,
) {
    match result {
        Err(Error::UniqueViolation { view, index, key, key_bytes, holder: h, refused: r }) => {
            assert_eq!((view.as_str(), index.as_str()), ("users", "by_email"));
            assert_eq!(key, format!("{email:?}"));
            // A string without zero bytes encodes as its bytes and the terminator 0 0.
            assert_eq!(*key_bytes, [email.as_bytes(), &[0, 0]].concat());
            assert_eq!((&*h, &*r), (holder.to_string().as_str(), refused.to_string().as_str()));
        }
        other => panic!("expected a unique violation for {email}, got {other:?}"),
    }
}

#[test]
fn a_committed_holder_blocks_a_second_one() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (store, users) = open(&dir)?;
    users.put(&1, user("ada", "a@x"), 1)?;
    let mut batch = Batch::new();
    batch.put(&users, &2, user("bob", "a@x"), 1)?;
    assert_violation(store.submit(batch)?.wait(), "a@x", 1, 2);
    assert!(users.get(&2).is_none(), "the failed batch wrote its record");
    assert_eq!(holder(&users, "a@x"), Some(1));
    // Re-putting the holder itself with the same key is not a violation.
    users.put(&1, user("ada lovelace", "a@x"), 2)?;
    assert_eq!(holder(&users, "a@x"), Some(1));
    assert!(store.verify()?.is_ok());
    Ok(())
}

#[test]
fn an_earlier_batch_of_the_same_group_blocks_a_second_holder() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (store, users) = open(&dir)?;
    let mut first = Batch::new();
    first.put(&users, &1, user("ada", "a@x"), 1)?;
    let mut second = Batch::new();
    second.put(&users, &2, user("bob", "a@x"), 1)?;
    let mut third = Batch::new();
    third.put(&users, &3, user("cy", "c@x"), 1)?;
    let tickets = [store.submit(first)?, store.submit(second)?, store.submit(third)?];
    let [first, second, third] = tickets.map(viewstore::Ticket::wait);
    let (first, third) = (first?, third?);
    assert_eq!(first.lsn, third.lsn, "the batches did not share a group");
    assert_violation(second, "a@x", 1, 2);
    assert_eq!(holder(&users, "a@x"), Some(1));
    assert_eq!(holder(&users, "c@x"), Some(3));
    assert!(store.verify()?.is_ok());
    Ok(())
}

#[test]
fn two_holders_in_one_batch_fail_the_batch() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (store, users) = open(&dir)?;
    let mut batch = Batch::new();
    batch.put(&users, &1, user("ada", "a@x"), 1)?.put(&users, &2, user("bob", "a@x"), 1)?;
    assert_violation(store.submit(batch)?.wait(), "a@x", 1, 2);
    assert!(users.is_empty());
    assert_eq!(holder(&users, "a@x"), None);
    Ok(())
}

#[test]
fn swapping_keys_within_one_batch_succeeds() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (store, users) = open(&dir)?;
    users.put(&1, user("ada", "a@x"), 1)?;
    users.put(&2, user("bob", "b@x"), 1)?;
    let mut swap = Batch::new();
    swap.put(&users, &1, user("ada", "b@x"), 2)?.put(&users, &2, user("bob", "a@x"), 2)?;
    store.submit(swap)?.wait()?;
    assert_eq!(holder(&users, "a@x"), Some(2));
    assert_eq!(holder(&users, "b@x"), Some(1));
    // Swapping without both halves is a violation.
    let mut half = Batch::new();
    half.put(&users, &1, user("ada", "a@x"), 3)?;
    assert_violation(store.submit(half)?.wait(), "a@x", 2, 1);
    assert!(store.verify()?.is_ok());
    drop(users);
    store.close()?;
    let (_store, users) = open(&dir)?;
    assert_eq!(holder(&users, "a@x"), Some(2));
    assert_eq!(holder(&users, "b@x"), Some(1));
    Ok(())
}

#[test]
fn a_key_freed_by_a_move_or_delete_can_be_taken() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (store, users) = open(&dir)?;
    users.put(&1, user("ada", "a@x"), 1)?;
    users.put(&2, user("bob", "b@x"), 1)?;
    // Move 1 away from a@x and give it to 3, in two batches of one group.
    let mut moved = Batch::new();
    moved.put(&users, &1, user("ada", "new@x"), 2)?;
    let mut taken = Batch::new();
    taken.put(&users, &3, user("cy", "a@x"), 1)?;
    let (moved, taken) = (store.submit(moved)?, store.submit(taken)?);
    moved.wait()?;
    taken.wait()?;
    assert_eq!(holder(&users, "a@x"), Some(3));
    assert_eq!(holder(&users, "new@x"), Some(1));
    users.delete(&2, 2)?;
    assert_eq!(holder(&users, "b@x"), None);
    users.put(&4, user("dee", "b@x"), 1)?;
    assert_eq!(holder(&users, "b@x"), Some(4));
    assert!(store.verify()?.is_ok());
    Ok(())
}

#[test]
fn a_panicking_extractor_fails_only_its_batch() -> TestResult {
    const FUSSY: IndexDef<User, String> = IndexDef::multi("fussy", |u| {
        assert!(u.name != "boom", "extractor refuses boom");
        u.name.clone()
    });
    const PEOPLE: ViewDef<u64, User> = ViewDef::new("people").with_indexes(&[&FUSSY]);
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let people = store.view(&PEOPLE)?;
    let mut bad = Batch::new();
    bad.put(&people, &1, user("boom", "x"), 1)?;
    let mut good = Batch::new();
    good.put(&people, &2, user("fine", "y"), 1)?;
    let (bad, good) = (store.submit(bad)?, store.submit(good)?);
    match bad.wait() {
        Err(Error::IndexPanicked { view, index, key, message }) => {
            assert_eq!((view.as_str(), index.as_str(), key.as_str()), ("people", "fussy", "1"));
            assert!(message.contains("refuses boom"), "{message}");
        }
        other => panic!("expected an extractor panic, got {other:?}"),
    }
    good.wait()?;
    assert!(people.get(&1).is_none());
    assert_eq!(people.index_count(&FUSSY, &"fine".to_string()), 1);
    people.put(&3, user("later", "z"), 1)?;
    assert!(store.verify()?.is_ok());
    Ok(())
}

#[test]
fn an_oversized_index_key_fails_its_batch_naming_the_index() -> TestResult {
    const BY_NAME: IndexDef<User, String> = IndexDef::multi("by_name", |u| u.name.clone());
    const PEOPLE: ViewDef<u64, User> = ViewDef::new("people").with_indexes(&[&BY_NAME]);
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let people = store.view(&PEOPLE)?;
    let result = people.put(&1, user(&"n".repeat(5000), "x"), 1);
    match result {
        Err(Error::IndexKeyTooLarge { view, index, key, len, max }) => {
            assert_eq!((view.as_str(), index.as_str(), key.as_str()), ("people", "by_name", "1"));
            assert!(len > max);
        }
        other => panic!("expected IndexKeyTooLarge, got {other:?}"),
    }
    assert!(people.is_empty());
    Ok(())
}

#[test]
fn two_indexes_with_one_name_are_refused_at_open() -> TestResult {
    const A: IndexDef<User, String> = IndexDef::multi("same", |u| u.name.clone());
    const B: IndexDef<User, String> = IndexDef::unique("same", |u| u.email.clone());
    const TWICE: ViewDef<u64, User> = ViewDef::new("twice").with_indexes(&[&A, &B]);
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    match store.view(&TWICE) {
        Err(Error::InvalidIndex { view, index, .. }) => {
            assert_eq!((view.as_str(), index.as_str()), ("twice", "same"));
        }
        other => panic!("expected InvalidIndex, got {other:?}"),
    }
    Ok(())
}

#[test]
fn lookups_find_keys_of_every_length_with_and_without_zero_bytes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let emails = viewstore::testing::strings_with_and_without_zero_bytes(70);
    {
        let (store, users) = open(&dir)?;
        let mut batch = Batch::new();
        for (id, email) in (0u64..).zip(&emails) {
            batch.put(&users, &id, user("u", email), 1)?;
        }
        store.submit(batch)?.wait()?;
    }
    let (_store, users) = open(&dir)?;
    let snapshot = users.snapshot();
    for (id, email) in (0u64..).zip(&emails) {
        assert_eq!(holder(&users, email), Some(id), "{email:?}");
        let found = snapshot.index(&BY_EMAIL).get(email).map(|(k, u)| (k, u.email.clone()));
        assert_eq!(found, Some((id, email.clone())), "{email:?}");
        // A key one byte longer, or with its last byte changed, is held by no one.
        assert_eq!(holder(&users, &format!("{email}~")), None, "{email:?}");
        let mut changed = email.clone();
        if changed.pop().is_some() {
            changed.push('~');
            assert_eq!(holder(&users, &changed), None, "{email:?}");
        }
    }
    Ok(())
}

#[test]
fn optional_and_many_key_extractors_index_what_they_return() -> TestResult {
    // Aliases: the name and, when it has one, the email's local part; each unique.
    const BY_ALIAS: IndexDef<User, String> = IndexDef::unique_keys("by_alias", |u| {
        let mut aliases = vec![u.name.clone()];
        aliases.extend(u.email.split_once('@').map(|(local, _)| local.to_owned()));
        aliases
    });
    // The email's domain, for users whose email has one.
    const BY_DOMAIN: IndexDef<User, String> =
        IndexDef::multi_optional("by_domain", |u| u.email.split_once('@').map(|(_, d)| d.into()));
    const BY_EXACT: IndexDef<User, String> =
        IndexDef::unique_optional("by_exact", |u| (!u.email.is_empty()).then(|| u.email.clone()));
    const PEOPLE: ViewDef<u64, User> =
        ViewDef::new("people").with_indexes(&[&BY_ALIAS, &BY_DOMAIN, &BY_EXACT]);
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let people = store.view(&PEOPLE)?;
    people.put(&1, user("ada", "lovelace@x"), 1)?;
    people.put(&2, user("grace", ""), 1)?;
    people.put(&3, user("alan", "turing@x"), 1)?;
    // A name equal to its own email's local part is one alias, not a violation.
    people.put(&4, user("kay", "kay@y"), 1)?;
    let alias = |a: &str| people.index_get(&BY_ALIAS, &a.to_string()).map(|(id, _)| id);
    assert_eq!((alias("ada"), alias("lovelace"), alias("grace")), (Some(1), Some(1), Some(2)));
    assert_eq!(people.index_count(&BY_ALIAS, &"kay".to_string()), 1);
    assert_eq!(people.index_count(&BY_DOMAIN, &"x".to_string()), 2);
    assert_eq!(people.snapshot().index(&BY_DOMAIN).len(), 3, "grace has no domain");
    assert_eq!(people.snapshot().index(&BY_EXACT).len(), 3, "grace has no email");
    // Either alias of a second record collides.
    match people.put(&5, user("turing", ""), 1) {
        Err(Error::UniqueViolation { index, key, .. }) => {
            assert_eq!((index.as_str(), key.as_str()), ("by_alias", "\"turing\""));
        }
        other => panic!("expected a unique violation, got {other:?}"),
    }
    assert!(store.verify()?.is_ok());
    Ok(())
}
