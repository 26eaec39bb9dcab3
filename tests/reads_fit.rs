//! Reads shaped for services: lookups by borrowed keys (`&str` for a `String` key) on
//! views, snapshots and indexes; versions beside values in scans and index queries;
//! prefixes by the leading fields of composite keys; and the LSN a blocking write
//! returns, for reading it from another thread.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use viewstore::{Batch, CompositeKey, IndexDef, Lsn, Outcome, Store, View, ViewDef, Written};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A store in memory: reads are the subject here, not the disk.
fn memory_store() -> viewstore::Result<Store> {
    Store::builder("memory")
        .backend(Arc::new(viewstore::redb::backends::InMemoryBackend::new()))
        .open()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    email: String,
    city: String,
}

const BY_EMAIL: IndexDef<User, String> = IndexDef::unique("by_email", |u| u.email.clone());
const BY_CITY: IndexDef<User, String> = IndexDef::multi("by_city", |u| u.city.clone());
const USERS: ViewDef<u64, User> = ViewDef::new("users").with_indexes(&[&BY_EMAIL, &BY_CITY]);

fn user(email: &str, city: &str) -> User {
    User { email: email.into(), city: city.into() }
}

/// Strings that take each path of a string lookup: short and inline, long enough to
/// leave the stack, with zero bytes (encoded first), and non-ASCII.
const STRINGS: [&str; 6] = [
    "a",
    "",
    "a-rather-long-string-key-that-is-longer-than-forty-eight-bytes",
    "with\0zero",
    "\0",
    "naïve-ünïcödé",
];

#[test]
fn string_keys_are_read_by_str() -> TestResult {
    let store = memory_store()?;
    let view = store.view(&ViewDef::<String, usize>::new("strings"))?;
    for (i, s) in STRINGS.iter().enumerate() {
        view.put(&(*s).to_string(), i, i as u64 + 10)?;
    }
    let snap = view.snapshot();
    for (i, s) in STRINGS.iter().enumerate() {
        let owned = (*s).to_string();
        assert_eq!(view.get(*s).as_deref(), Some(&i), "{s:?}");
        assert_eq!(view.get(&owned).as_deref(), Some(&i), "{s:?}");
        assert_eq!(view.get_with(*s, |v| *v), Some(i));
        assert_eq!(view.get_versioned(*s).map(|(v, x)| (v, *x)), Some((i as u64 + 10, i)));
        assert_eq!(view.version(*s), Some(i as u64 + 10));
        assert!(view.contains(*s));
        assert_eq!(snap.get(*s).as_deref(), Some(&i));
        assert_eq!(snap.get_ref(*s), Some(&i));
        assert_eq!(snap.get_with(*s, |v| *v), Some(i));
        assert_eq!(snap.get_versioned(*s).map(|(v, _)| v), Some(i as u64 + 10));
        assert_eq!(snap.version(*s), Some(i as u64 + 10));
        assert!(snap.contains(*s));
        // One byte more finds nothing.
        let longer = format!("{s}!");
        assert!(!view.contains(longer.as_str()) && !snap.contains(longer.as_str()));
    }
    Ok(())
}

#[test]
fn other_keys_are_read_by_their_borrowed_forms() -> TestResult {
    let store = memory_store()?;
    let boxed = store.view(&ViewDef::<Box<str>, u8>::new("boxed"))?;
    boxed.put(&Box::from("ada"), 1, 1)?;
    assert_eq!(boxed.get("ada").as_deref(), Some(&1));
    assert!(!boxed.contains("ad"));

    // `Vec<u8>` and `[u8]` both serialize as sequences, so they encode alike.
    let bytes = store.view(&ViewDef::<Vec<u8>, u8>::new("bytes"))?;
    bytes.put(&vec![0, 1, 255], 2, 1)?;
    assert_eq!(bytes.get([0u8, 1, 255].as_slice()).as_deref(), Some(&2));
    assert_eq!(bytes.get(&vec![0u8, 1, 255]).as_deref(), Some(&2));
    assert_eq!(bytes.version([0u8, 1].as_slice()), None);

    // Integer literals still infer the key type, owned keys still read.
    let numbers = store.view(&ViewDef::<u64, u8>::new("numbers"))?;
    numbers.put(&7, 3, 1)?;
    assert_eq!(numbers.get(&7).as_deref(), Some(&3));
    let key: u64 = 7;
    let by_ref: &u64 = &key;
    assert_eq!(numbers.get(by_ref).as_deref(), Some(&3));
    Ok(())
}

#[test]
fn index_keys_are_read_by_str() -> TestResult {
    let store = memory_store()?;
    let users = store.view(&USERS)?;
    let mut batch = Batch::new();
    for (i, s) in STRINGS.iter().enumerate() {
        let city = if i % 2 == 0 { "paris" } else { "oslo\0" };
        batch.put(&users, &(i as u64), user(s, city), i as u64 + 1)?;
    }
    store.submit(batch)?.wait()?;
    let snap = users.snapshot();
    let by_email = snap.index(&BY_EMAIL);
    for (i, s) in STRINGS.iter().enumerate() {
        let id = i as u64;
        let owned = (*s).to_string();
        assert_eq!(users.index_get(&BY_EMAIL, *s).map(|(k, _)| k), Some(id), "{s:?}");
        assert_eq!(users.index_get(&BY_EMAIL, &owned).map(|(k, _)| k), Some(id));
        assert_eq!(
            users.index_get_with(&BY_EMAIL, *s, |k, u| (k, u.email.clone())),
            Some((id, owned.clone()))
        );
        assert_eq!(
            users.index_get_versioned(&BY_EMAIL, *s).map(|(k, v, _)| (k, v)),
            Some((id, id + 1))
        );
        assert_eq!(users.index_get_all(&BY_EMAIL, *s).len(), 1);
        assert_eq!(users.index_count(&BY_EMAIL, *s), 1);
        assert_eq!(by_email.get(*s).map(|(k, _)| k), Some(id));
        assert_eq!(by_email.get_ref(*s).map(|(k, u)| (k, u.email.as_str())), Some((id, *s)));
        assert_eq!(by_email.get_with(*s, |k, _| k), Some(id));
        assert_eq!(by_email.get_versioned(*s).map(|(k, v, _)| (k, v)), Some((id, id + 1)));
        assert_eq!(by_email.get_all(*s).count(), 1);
        assert_eq!(by_email.count(*s), 1);
        let longer = format!("{s}!");
        assert!(users.index_get(&BY_EMAIL, longer.as_str()).is_none());
        assert!(by_email.get(longer.as_str()).is_none());
    }
    // A multi index, with a key holding a zero byte (never looked up as it lies).
    let paris: Vec<u64> =
        users.index_get_all(&BY_CITY, "paris").into_iter().map(|(k, _)| k).collect();
    assert_eq!(paris, [0, 2, 4]);
    assert_eq!(users.index_count(&BY_CITY, "oslo\0"), 3);
    assert_eq!(users.index_get(&BY_CITY, "oslo\0").map(|(k, _)| k), Some(1));
    assert_eq!(
        snap.index(&BY_CITY).get_all("oslo\0").map(|(_, k, _)| k).collect::<Vec<_>>(),
        [1, 3, 5]
    );
    assert_eq!(snap.index(&BY_CITY).count("oslo"), 0);
    Ok(())
}

/// What the view should hold: key to version and value.
type Model = BTreeMap<(u64, u64), (u64, u32)>;

fn check_versions(view: &View<(u64, u64), u32>, model: &Model) {
    let expected: Vec<((u64, u64), u64, u32)> =
        model.iter().map(|(k, (v, x))| (*k, *v, *x)).collect();
    let flat = |rows: Vec<((u64, u64), u64, Arc<u32>)>| -> Vec<((u64, u64), u64, u32)> {
        rows.into_iter().map(|(k, v, x)| (k, v, *x)).collect()
    };
    assert_eq!(flat(view.range_versioned(..)), expected);
    let snap = view.snapshot();
    let all: Vec<_> = snap.iter().versioned().map(|(k, v, x)| (k, v, *x)).collect();
    assert_eq!(all, expected);
    let mut backwards: Vec<_> = snap.iter().versioned().rev().map(|(k, v, x)| (k, v, *x)).collect();
    backwards.reverse();
    assert_eq!(backwards, expected);
    for first in 0..4u64 {
        let of_first: Vec<_> = expected.iter().filter(|(k, _, _)| k.0 == first).copied().collect();
        assert_eq!(flat(view.prefix_versioned(&first)), of_first);
        let scanned: Vec<_> = snap.prefix(&first).versioned().map(|(k, v, x)| (k, v, *x)).collect();
        assert_eq!(scanned, of_first);
        let ranged: Vec<_> =
            expected.iter().filter(|(k, _, _)| *k >= (first, 2)).copied().collect();
        assert_eq!(flat(view.range_versioned((first, 2)..)), ranged);
        // Point reads agree with the scans.
        for (k, v, _) in &of_first {
            assert_eq!(view.version(k), Some(*v));
        }
    }
}

#[test]
fn scans_carry_versions_through_updates_and_deletes() -> TestResult {
    let store = memory_store()?;
    let view = store.view(&ViewDef::<(u64, u64), u32>::new("pairs"))?;
    // Every key's last version, with its value when live (`None`: a tombstone).
    let mut written: BTreeMap<(u64, u64), (u64, Option<u32>)> = BTreeMap::new();
    let mut rng = viewstore::testing::Rng::new(0x00DE_C0DE);
    for round in 0..40u64 {
        let mut batch = Batch::new();
        for _ in 0..20 {
            let key = (rng.below(4), rng.below(6));
            let version = 100 * round + rng.below(150);
            let value = (!rng.one_in(5)).then(|| rng.below(1000) as u32);
            match value {
                Some(value) => batch.put(&view, &key, value, version)?,
                None => batch.delete(&view, &key, version)?,
            };
            if written.get(&key).is_none_or(|(current, _)| *current < version) {
                written.insert(key, (version, value));
            }
        }
        store.submit(batch)?.wait()?;
        let model: Model =
            written.iter().filter_map(|(k, (v, x))| x.map(|x| (*k, (*v, x)))).collect();
        check_versions(&view, &model);
    }
    Ok(())
}

#[test]
fn index_queries_carry_versions() -> TestResult {
    let store = memory_store()?;
    let users = store.view(&USERS)?;
    users.put(&1, user("ada@x", "paris"), 5)?;
    users.put(&2, user("bob@x", "paris"), 6)?;
    users.put(&1, user("ada@y", "paris"), 9)?;
    users.put(&3, user("cy@x", "oslo"), 7)?;
    let snap = users.snapshot();
    let by_city: Vec<(String, u64, u64)> =
        snap.index(&BY_CITY).iter().versioned().map(|(c, k, v, _)| (c, k, v)).collect();
    assert_eq!(by_city, [("oslo".into(), 3, 7), ("paris".into(), 1, 9), ("paris".into(), 2, 6)]);
    let paris: Vec<(u64, u64)> =
        snap.index(&BY_CITY).get_all("paris").versioned().map(|(_, k, v, _)| (k, v)).collect();
    assert_eq!(paris, [(1, 9), (2, 6)]);
    let emails: Vec<(String, u64)> = snap
        .index(&BY_EMAIL)
        .get_all("ada@y")
        .versioned()
        .map(|(e, _, v, u)| (format!("{e} {}", u.city), v))
        .collect();
    assert_eq!(emails, [("ada@y paris".to_string(), 9)]);
    let ranged: Vec<u64> =
        snap.index(&BY_EMAIL).range("b".to_string()..).versioned().map(|(_, _, v, _)| v).collect();
    assert_eq!(ranged, [6, 7]);
    Ok(())
}

/// The values of scanned records, in order.
fn values<K>(rows: Vec<(K, Arc<u8>)>) -> Vec<u8> {
    rows.into_iter().map(|(_, v)| *v).collect()
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Follow {
    user: u64,
    kind: String,
    other: u64,
}

impl CompositeKey for Follow {}

#[test]
fn prefixes_select_the_leading_fields_of_composite_keys() -> TestResult {
    let store = memory_store()?;
    let tuples = store.view(&ViewDef::<(u64, String, u64), u8>::new("tuples"))?;
    let follows = store.view(&ViewDef::<Follow, u8>::new("follows"))?;
    let rows = [(1, "a", 1), (1, "a", 2), (1, "ab", 1), (1, "b", 1), (2, "a", 1), (1, "", 9)];
    let mut batch = Batch::new();
    for (i, (u, k, o)) in rows.iter().enumerate() {
        batch.put(&tuples, &(*u, (*k).to_string(), *o), i as u8, 1)?;
        batch.put(&follows, &Follow { user: *u, kind: (*k).into(), other: *o }, i as u8, 1)?;
    }
    store.submit(batch)?.wait()?;
    assert_eq!(values(tuples.prefix(&1u64)), [5, 0, 1, 2, 3]);
    // A string field of a prefix matches whole: "a" is not "ab".
    assert_eq!(values(tuples.prefix(&(1u64, "a"))), [0, 1]);
    assert_eq!(values(tuples.prefix(&(1u64, "a".to_string()))), [0, 1]);
    assert_eq!(values(tuples.prefix(&(1u64, ""))), [5]);
    // Every field: the one record.
    assert_eq!(values(tuples.prefix(&(1u64, "ab", 1u64))), [2]);
    assert_eq!(values(follows.prefix(&1u64)), [5, 0, 1, 2, 3]);
    assert_eq!(values(follows.prefix(&(1u64, "a"))), [0, 1]);
    assert_eq!(values(follows.prefix(&2u64)), [4]);
    assert!(follows.prefix(&3u64).is_empty());
    Ok(())
}

const BY_PLACE: IndexDef<User, (String, String)> =
    IndexDef::multi("by_place", |u| (u.city.clone(), u.email.clone()));
const PLACED: ViewDef<u64, User> = ViewDef::new("placed").with_indexes(&[&BY_PLACE]);

#[test]
fn index_prefixes_select_leading_fields() -> TestResult {
    let store = memory_store()?;
    let users = store.view(&PLACED)?;
    for (id, (email, city)) in
        [("b", "paris"), ("a", "paris"), ("c", "parisian"), ("d", "oslo")].into_iter().enumerate()
    {
        users.put(&(id as u64), user(email, city), 1)?;
    }
    let snap = users.snapshot();
    let paris: Vec<u64> = snap.index(&BY_PLACE).prefix("paris").map(|(_, k, _)| k).collect();
    assert_eq!(paris, [1, 0]);
    let exact: Vec<u64> =
        snap.index(&BY_PLACE).prefix(&("paris", "b")).map(|(_, k, _)| k).collect();
    assert_eq!(exact, [0]);
    Ok(())
}

#[test]
fn blocking_writes_return_the_lsn_of_their_commit() -> TestResult {
    let store = memory_store()?;
    let users = store.view(&USERS)?;
    let mut batch = Batch::new();
    batch.put(&users, &1, user("a", "x"), 1)?;
    let receipt = store.submit(batch)?.wait()?;

    let written: Written = users.put(&2, user("b", "x"), 1)?;
    assert_eq!(written, Outcome::Applied);
    assert_eq!(Outcome::Applied, written);
    assert!(written.is_applied());
    assert_eq!(written.lsn, Lsn::new(receipt.lsn.get() + 1));
    assert_eq!(written.lsn, store.lsn());

    // Each convenience reports its own commit.
    let stale = users.put(&2, user("b", "x"), 1)?;
    assert_eq!(stale.outcome, Outcome::Stale { current: 1 });
    let cas = users.compare_and_set(&3, None, 1, user("c", "x"))?;
    let updated = users.update(&3, 2, |u| u.map(|u| User { city: "y".into(), ..u.clone() }))?;
    let next = users.update_next(&3, |u| u.map(|u| User { city: "z".into(), ..u.clone() }))?;
    let deleted = users.compare_and_delete(&3, 3, 4)?;
    let gone = users.delete(&2, 2)?;
    let lsns = [stale.lsn, cas.lsn, updated.lsn, next.lsn, deleted.lsn, gone.lsn];
    assert!(lsns.windows(2).all(|w| w[0] <= w[1]), "{lsns:?}");
    assert!(lsns[1..].windows(2).all(|w| w[0] < w[1]), "{lsns:?}");
    assert_eq!(gone.lsn, store.lsn());
    assert_eq!([cas, updated, next, deleted, gone].map(|w| w.outcome), [Outcome::Applied; 5]);
    Ok(())
}

#[test]
fn a_reader_thread_waits_for_the_lsn_a_write_returned() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let users = store.view(&USERS)?;
    users.put(&1, user("a", "x"), 1)?;
    // The reader learns the LSN of the next write before it commits, and waits for it
    // through its own handle of the store.
    let expected = Lsn::new(store.lsn().get() + 1);
    let (reader_store, reader_users) = (store.clone(), users.clone());
    let reader = std::thread::spawn(move || -> viewstore::Result<Option<String>> {
        reader_store.wait_for(expected)?;
        Ok(reader_users.get(&2).map(|u| u.email.clone()))
    });
    std::thread::sleep(std::time::Duration::from_millis(20));
    let written = users.put(&2, user("b", "x"), 1)?;
    assert_eq!(written.lsn, expected);
    let seen = reader.join().map_err(|_| "the reader panicked")??;
    assert_eq!(seen.as_deref(), Some("b"));
    // And a later reader with the returned LSN never waits past it.
    let other = store.clone();
    let lsn = written.lsn;
    let found = std::thread::spawn(move || -> viewstore::Result<bool> {
        other.wait_for(lsn)?;
        Ok(other.lsn() >= lsn)
    })
    .join()
    .map_err(|_| "the reader panicked")??;
    assert!(found);
    Ok(())
}
