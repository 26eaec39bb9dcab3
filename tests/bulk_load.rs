//! `Store::bulk_load`: an empty view filled in one transaction, its indexes built after
//! its records, published once; refused input and refused views change nothing.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use viewstore::{
    ChangeKind, Codec, CodecError, Error, FeedMode, IndexDef, Lsn, MAX_VALUE_BYTES, Outcome, Store,
    ViewDef,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    email: String,
    city: u32,
}

const BY_EMAIL: IndexDef<User, String> = IndexDef::unique("by_email", |u| u.email.clone());
const BY_CITY: IndexDef<User, u32> = IndexDef::multi("by_city", |u| u.city);
const USERS: ViewDef<u64, User> = ViewDef::new("users").with_indexes(&[&BY_EMAIL, &BY_CITY]);
const NAMES: ViewDef<u64, String> = ViewDef::new("names").with_feed(FeedMode::Values);

const N: u64 = 5_000;

fn user(id: u64) -> User {
    User { email: format!("u{id}@example.com"), city: (id % 17) as u32 }
}

/// The records `0..N` in a scrambled order, record `id` at version `id + 1`.
fn scrambled() -> impl Iterator<Item = (u64, u64, User)> {
    (0..N).map(|i| (i * 7_919) % N).map(|id| (id, id + 1, user(id)))
}

/// Checks the loaded records; `rewritten`: a record written again since, at that version.
fn check_loaded(store: &Store, rewritten: Option<(u64, u64)>) -> TestResult {
    let users = store.view(&USERS)?;
    assert_eq!(users.len(), N as usize);
    for id in 0..N {
        let (version, value) = users.get_versioned(&id).ok_or(format!("record {id}"))?;
        let expected = rewritten.filter(|r| r.0 == id).map_or(id + 1, |r| r.1);
        assert_eq!((version, &*value), (expected, &user(id)));
        let (pk, _) = users.index_get(&BY_EMAIL, &user(id).email).ok_or("email")?;
        assert_eq!(pk, id);
    }
    for city in 0..17u32 {
        let expected = (0..N).filter(|id| id % 17 == u64::from(city)).count();
        assert_eq!(users.index_count(&BY_CITY, &city), expected);
    }
    let report = store.verify()?;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.records, N);
    Ok(())
}

#[test]
fn a_loaded_view_holds_every_record_and_index_entry_and_survives_a_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::open(&path)?;
    let users = store.view(&USERS)?;
    let before = store.lsn();
    let lsn = store.bulk_load(&users, scrambled())?;
    assert_eq!(lsn.get(), before.get() + 1, "one transaction, one LSN");
    assert_eq!(store.lsn(), lsn);
    check_loaded(&store, None)?;
    // Versions are those loaded: an older write is stale, a newer one applies.
    assert_eq!(users.put(&3, user(3), 4)?.outcome, Outcome::Stale { current: 4 });
    assert_eq!(users.put(&3, User { city: 99, ..user(3) }, 5)?.outcome, Outcome::Applied);
    assert_eq!(users.index_count(&BY_CITY, &99), 1);
    assert_eq!(users.put(&3, user(3), 6)?.outcome, Outcome::Applied);
    drop(users);
    store.close()?;
    let store = Store::open(&path)?;
    check_loaded(&store, Some((3, 6)))
}

#[test]
fn a_view_with_records_or_tombstones_is_refused_and_unchanged() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let users = store.view(&USERS)?;
    users.put(&1, user(1), 1)?;
    let lsn = store.lsn();
    let e = store.bulk_load(&users, scrambled()).err().ok_or("loaded into a full view")?;
    assert!(matches!(&e, Error::BulkLoad { view, key: None, .. } if view == "users"), "{e:?}");
    assert!(e.to_string().contains("1 records and 0 tombstones"), "{e}");
    assert_eq!((users.len(), store.lsn()), (1, lsn));
    // A tombstone counts too: it holds a version that a load could move backwards.
    users.delete(&1, 2)?;
    let e = store.bulk_load(&users, scrambled()).err().ok_or("loaded over a tombstone")?;
    assert!(e.to_string().contains("0 records and 1 tombstones"), "{e}");
    assert_eq!(users.len(), 0);
    // Emptied, the view loads.
    store.clear_view("users")?;
    store.bulk_load(&users, scrambled())?;
    check_loaded(&store, None)
}

#[test]
fn a_key_given_twice_is_named_and_nothing_is_loaded() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let users = store.view(&USERS)?;
    let lsn = store.lsn();
    let twice = scrambled().chain([(42, 100, User { email: "other".into(), city: 1 })]);
    let e = store.bulk_load(&users, twice).err().ok_or("a key loaded twice")?;
    assert!(matches!(&e, Error::BulkLoad { key: Some(k), .. } if k == "42"), "{e:?}");
    assert_eq!((users.len(), store.lsn()), (0, lsn));
    Ok(())
}

/// A codec that refuses the value "refused" and panics on "panics": user code that
/// runs while a load encodes its records.
#[derive(Clone, Copy)]
struct Picky;

impl Codec<String> for Picky {
    fn encode(&self, value: &String, out: &mut Vec<u8>) -> Result<(), CodecError> {
        match value.as_str() {
            "refused" => Err("this value is refused".into()),
            "panics" => panic!("an encoding bug"),
            _ => {
                out.extend_from_slice(value.as_bytes());
                Ok(())
            }
        }
    }
    fn decode(&self, bytes: &[u8]) -> Result<String, CodecError> {
        String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string().into())
    }
}

/// A record that cannot be encoded (refused by the codec, a panicking codec, a value
/// over the size limit), anywhere in the input, fails the load named by its key, and
/// nothing is loaded: not in memory, not in the file, not in the feed. The store goes
/// on, and the same load without that record succeeds.
#[test]
fn a_record_that_cannot_be_encoded_fails_the_load_whole() -> TestResult {
    const WORDS: ViewDef<u64, String, Picky> =
        ViewDef::with_codec("words", Picky).with_feed(FeedMode::Values);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::open(&path)?;
    let words = store.view(&WORDS)?;
    let lsn = store.lsn();
    let fine = |id: u64| (id, 1, format!("word {id}"));
    let huge = "x".repeat(MAX_VALUE_BYTES + 1);
    for (bad, at) in [("refused", 4_321), ("panics", 0), (huge.as_str(), N - 1)] {
        let input = (0..N).map(|id| if id == at { (id, 1, bad.to_string()) } else { fine(id) });
        let e = store.bulk_load(&words, input).err().ok_or("an unencodable record loaded")?;
        match &e {
            Error::Encode { view, key, .. } | Error::ValueTooLarge { view, key, .. } => {
                assert_eq!((view.as_str(), key.as_str()), ("words", at.to_string().as_str()));
            }
            other => return Err(format!("unexpected error {other:?}").into()),
        }
        assert_eq!((words.len(), store.lsn()), (0, lsn), "nothing loaded for {e}");
    }
    store.bulk_load(&words, (0..N).map(fine))?;
    assert_eq!(words.get(&7).as_deref().map(String::as_str), Some("word 7"));
    drop(words);
    store.close()?;
    let store = Store::open(&path)?;
    let words = store.view(&WORDS)?;
    assert_eq!(words.len(), N as usize);
    assert_eq!(store.verify()?.problems.len(), 0);
    Ok(())
}

/// Input in ascending key order skips the sort: a key repeated in place, or input that
/// turns back after an ascending start, is still found and named.
#[test]
fn ascending_input_loads_and_its_repeated_key_is_still_named() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let users = store.view(&USERS)?;
    let lsn = store.lsn();
    let ascending = || (0..N).map(|id| (id, id + 1, user(id)));
    // 0..=42, 42 again, then the rest.
    let repeated = ascending().take(43).chain([(42, 100, user(42))]).chain(ascending().skip(43));
    let e = store.bulk_load(&users, repeated).err().ok_or("a repeated key loaded")?;
    assert!(matches!(&e, Error::BulkLoad { key: Some(k), .. } if k == "42"), "{e:?}");
    // Ascending, then back to a key loaded earlier, further on.
    let back = ascending().chain([(7, 100, user(7))]);
    let e = store.bulk_load(&users, back).err().ok_or("a key loaded twice, late")?;
    assert!(matches!(&e, Error::BulkLoad { key: Some(k), .. } if k == "7"), "{e:?}");
    assert_eq!((users.len(), store.lsn()), (0, lsn));
    // Ascending and whole: loaded as given.
    store.bulk_load(&users, ascending())?;
    drop(users);
    check_loaded(&store, None)
}

#[test]
fn a_unique_index_key_held_twice_fails_the_load_whole() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::open(&path)?;
    let users = store.view(&USERS)?;
    let lsn = store.lsn();
    let clash = scrambled().map(|(id, v, u)| {
        if id == N - 1 { (id, v, User { email: user(7).email, ..u }) } else { (id, v, u) }
    });
    let e = store.bulk_load(&users, clash).err().ok_or("a unique key loaded twice")?;
    assert!(matches!(&e, Error::UniqueViolation { index, .. } if index == "by_email"), "{e:?}");
    assert_eq!((users.len(), store.lsn()), (0, lsn));
    assert!(users.index_get(&BY_EMAIL, &user(7).email).is_none());
    assert_eq!(store.verify()?.problems.len(), 0);
    // Nothing reached the file either, and the store goes on.
    drop(users);
    store.close()?;
    let store = Store::open(&path)?;
    let users = store.view(&USERS)?;
    assert_eq!(users.len(), 0);
    store.bulk_load(&users, scrambled())?;
    check_loaded(&store, None)
}

#[test]
fn a_view_with_a_feed_records_every_loaded_record_in_one_group() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let names = store.view(&NAMES)?;
    let mut feed = store.feed_after(Lsn::new(0))?;
    let lsn = store.bulk_load(&names, (0..100u64).rev().map(|i| (i, 1, format!("n{i}"))))?;
    let group = feed.next_timeout(Duration::from_secs(10))?.ok_or("a group")?;
    assert_eq!((group.lsn, group.changes.len()), (lsn, 100));
    assert!(group.changes.iter().all(|c| c.kind == ChangeKind::Live && c.value.is_some()));
    assert_eq!(names.get(&42).as_deref().map(String::as_str), Some("n42"));
    Ok(())
}
