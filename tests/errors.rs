//! Every kind of bad input gets its own error, naming what and where, and changes
//! nothing.

use redb::{ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::error::Error as _;
use std::path::Path;
use std::sync::Arc;
use viewstore::{
    Batch, Error, ErrorKind, IndexDef, MAX_KEY_BYTES, MAX_VALUE_BYTES, Outcome, Store, ViewDef,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const USERS: ViewDef<u64, String> = ViewDef::new("users");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("viewstore.meta");

fn s(v: &str) -> String {
    v.to_owned()
}

fn assert_refused_untouched(path: &Path, expect: impl Fn(&Error) -> bool) -> TestResult {
    let before = std::fs::read(path)?;
    let err = Store::open(path).expect_err("the file must be refused");
    assert!(expect(&err), "unexpected error: {err:?}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert_eq!(std::fs::read(path)?, before, "the refused file was changed");
    Ok(())
}

#[test]
fn a_file_of_random_bytes_is_not_a_store() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("random.bin");
    // A fixed pseudo-random pattern, long enough to look like a database file.
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let bytes: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&path, &bytes)?;
    assert_refused_untouched(&path, |e| matches!(e, Error::NotAStore { .. }))
}

#[test]
fn a_text_file_is_not_a_store() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "shopping list:\n- eggs\n- milk\n")?;
    assert_refused_untouched(&path, |e| matches!(e, Error::NotAStore { .. }))?;
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "hi")?;
    assert_refused_untouched(&short, |e| matches!(e, Error::NotAStore { .. }))?;
    let err = Store::open(dir.path()).expect_err("a directory is no store");
    assert!(matches!(err, Error::NotAStore { .. }), "{err:?}");
    Ok(())
}

#[test]
fn a_redb_file_of_another_program_is_not_a_store() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&path)?;
        let txn = db.begin_write()?;
        {
            let mut t = txn.open_table(TableDefinition::<u64, u64>::new("orders"))?;
            t.insert(1, 99)?;
        }
        txn.commit()?;
    }
    assert_refused_untouched(
        &path,
        |e| matches!(e, Error::NotAStore { reason, .. } if reason.contains("orders")),
    )?;
    // The other program's data is intact.
    let db = redb::Database::open(&path)?;
    let txn = db.begin_read()?;
    let t = txn.open_table(TableDefinition::<u64, u64>::new("orders"))?;
    assert_eq!(t.get(1)?.map(|v| v.value()), Some(99));
    Ok(())
}

#[test]
fn a_redb_header_followed_by_garbage_is_refused_untouched() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("half.redb");
    let mut bytes = vec![b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
    bytes.extend((0..8192u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    std::fs::write(&path, &bytes)?;
    let err = Store::open(&path).expect_err("garbage after a redb header");
    assert!(matches!(err, Error::NotAStore { .. } | Error::Storage { .. }), "{err:?}");
    assert!(err.to_string().contains("half.redb"), "{err}");
    assert_eq!(std::fs::read(&path)?, bytes, "the refused file was changed");
    Ok(())
}

#[test]
fn a_newer_format_is_refused_untouched() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("newer.redb");
    {
        let store = Store::open(&path)?;
        store.view(&USERS)?.put(&1, s("ada"), 1)?;
        store.close()?;
    }
    {
        let db = redb::Database::open(&path)?;
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert("format", 7u32.to_le_bytes().as_slice())?;
        }
        txn.commit()?;
    }
    assert_refused_untouched(&path, |e| {
        matches!(e, Error::NewerFormat { found: 7, supported: 3, .. })
    })
}

#[test]
fn an_unreadable_format_version_is_not_a_store() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("badmeta.redb");
    {
        let store = Store::open(&path)?;
        store.close()?;
    }
    {
        let db = redb::Database::open(&path)?;
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert("format", [1u8, 0].as_slice())?;
        }
        txn.commit()?;
    }
    assert_refused_untouched(&path, |e| matches!(e, Error::NotAStore { .. }))
}

#[test]
fn a_view_opened_with_other_types_or_schema_is_a_mismatch() -> TestResult {
    const USERS_AS_NUMBERS: ViewDef<u64, u32> = ViewDef::new("users");
    const USERS_BY_NAME: ViewDef<String, String> = ViewDef::new("users");
    const USERS_V2: ViewDef<u64, String> = ViewDef::new("users").with_schema_version(2);

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("schema.redb");
    let check = |store: &Store| -> TestResult {
        for err in [
            store.view(&USERS_AS_NUMBERS).map(drop).expect_err("other value type"),
            store.view(&USERS_BY_NAME).map(drop).expect_err("other key type"),
            store.view(&USERS_V2).map(drop).expect_err("other schema version"),
        ] {
            match &err {
                Error::SchemaMismatch { view, stored, requested, .. } => {
                    assert_eq!(view, "users");
                    assert_ne!(stored, requested);
                    // Type names are recorded without module paths.
                    assert!(stored.contains("value String"), "{stored}");
                    assert!(!stored.contains("alloc::"), "{stored}");
                }
                other => panic!("expected SchemaMismatch, got {other:?}"),
            }
            assert!(err.to_string().contains("'users'"), "{err}");
        }
        Ok(())
    };
    {
        let store = Store::open(&path)?;
        let users = store.view(&USERS)?;
        users.put(&1, s("ada"), 3)?;
        // While the view is open in this store...
        check(&store)?;
        assert_eq!(users.get(&1).as_deref(), Some(&s("ada")));
        store.close()?;
    }
    // ...and when it is only on disk.
    let store = Store::open(&path)?;
    let lsn = store.lsn();
    check(&store)?;
    assert_eq!(store.lsn(), lsn);
    // The stored view is still readable with its own definition.
    let users = store.view(&USERS)?;
    assert_eq!(users.get_versioned(&1).map(|(v, s)| (v, (*s).clone())), Some((3, s("ada"))));
    assert_eq!(users.put(&1, s("ada"), 3)?, Outcome::Stale { current: 3 });
    Ok(())
}

#[test]
fn submitting_after_close_is_closed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("closed.redb"))?;
    let users = store.view(&USERS)?;
    let mut batch = Batch::new();
    batch.put(&users, &1, s("x"), 1)?;
    store.close()?;
    assert!(matches!(store.submit(batch), Err(Error::Closed)));
    assert!(users.is_empty());
    Ok(())
}

#[test]
fn a_key_over_the_limit_is_refused_when_the_batch_is_built() -> TestResult {
    const NAMED: ViewDef<String, u32> = ViewDef::new("named");
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("keys.redb"))?;
    let named = store.view(&NAMED)?;

    // A string key encodes to its bytes plus a two-byte terminator.
    let at_limit = "k".repeat(MAX_KEY_BYTES - 2);
    let over = "k".repeat(MAX_KEY_BYTES - 1);
    let mut batch = Batch::new();
    batch.put(&named, &at_limit, 1, 1)?;
    let err = batch.put(&named, &over, 2, 1).map(drop).expect_err("key too large");
    match &err {
        Error::KeyTooLarge { view, len, max } => {
            assert_eq!(view, "named");
            assert_eq!(*len, MAX_KEY_BYTES + 1);
            assert_eq!(*max, MAX_KEY_BYTES);
        }
        other => panic!("expected KeyTooLarge, got {other:?}"),
    }
    assert!(err.to_string().contains("'named'"), "{err}");
    assert!(matches!(batch.delete(&named, &over, 3), Err(Error::KeyTooLarge { .. })));
    assert!(matches!(batch.update(&named, &over, 3, |_| Some(1)), Err(Error::KeyTooLarge { .. })));
    // The batch kept only its good operation, and it commits.
    assert_eq!(batch.len(), 1);
    assert_eq!(store.submit(batch)?.wait()?.outcomes, vec![Outcome::Applied]);
    assert_eq!(named.len(), 1);
    assert!(named.contains(&at_limit));
    assert!(matches!(named.put(&over, 1, 1), Err(Error::KeyTooLarge { .. })));
    Ok(())
}

#[test]
fn a_value_over_the_limit_is_refused_when_the_batch_is_built() -> TestResult {
    const BLOBS: ViewDef<u32, String> = ViewDef::new("blobs");
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("values.redb"))?;
    let blobs = store.view(&BLOBS)?;

    // bincode writes this length as a 5-byte varint before the bytes.
    let at_limit = "x".repeat(MAX_VALUE_BYTES - 5);
    let over = "x".repeat(MAX_VALUE_BYTES - 4);
    let mut batch = Batch::new();
    batch.put(&blobs, &1, at_limit, 1)?;
    let err = batch.put(&blobs, &31337, over, 1).map(drop).expect_err("value too large");
    match &err {
        Error::ValueTooLarge { view, key, len, max, from_update: false } => {
            assert_eq!(view, "blobs");
            assert_eq!(key, "31337");
            assert_eq!(*len, MAX_VALUE_BYTES + 1);
            assert_eq!(*max, MAX_VALUE_BYTES);
        }
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("'blobs'") && text.contains("31337"), "{text}");
    assert_eq!(batch.len(), 1);
    drop(batch);
    assert!(blobs.is_empty());
    Ok(())
}

/// A value whose encoding always fails.
#[derive(Debug, Deserialize)]
struct Unencodable(u8);

impl Serialize for Unencodable {
    fn serialize<S: Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(format!("no encoding for value {}", self.0)))
    }
}

#[test]
fn a_value_that_fails_to_encode_is_an_encode_error() -> TestResult {
    const BAD: ViewDef<String, Unencodable> = ViewDef::new("bad-values");
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("encode.redb"))?;
    let bad = store.view(&BAD)?;
    let mut batch = Batch::new();
    let err = batch.put(&bad, &s("k-17"), Unencodable(1), 1).map(drop).expect_err("encoding fails");
    match &err {
        Error::Encode { view, key, .. } => {
            assert_eq!(view, "bad-values");
            assert_eq!(key, "\"k-17\"");
        }
        other => panic!("expected Encode, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("'bad-values'") && text.contains("k-17"), "{text}");
    let source = err.source().map(ToString::to_string).unwrap_or_default();
    assert!(source.contains("no encoding for value 1"), "{source}");
    assert!(batch.is_empty());
    assert!(matches!(
        bad.compare_and_set(&s("k"), None, 1, Unencodable(2)),
        Err(Error::Encode { .. })
    ));
    assert!(bad.is_empty());
    Ok(())
}

#[test]
fn keys_without_a_byte_order_are_a_key_encoding_error() -> TestResult {
    const BY_FLOAT: ViewDef<f64, String> = ViewDef::new("by-float");
    const BY_MAP: ViewDef<BTreeMap<u8, u8>, String> = ViewDef::new("by-map");
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("keys.redb"))?;
    // Refused when the view is opened, not at every write.
    let err = store.view(&BY_FLOAT).map(drop).expect_err("float key");
    match &err {
        Error::KeyEncoding { view, reason } => {
            assert_eq!(view, "by-float");
            assert!(reason.contains("f64"), "{reason}");
        }
        other => panic!("expected KeyEncoding, got {other:?}"),
    }
    assert!(err.to_string().contains("'by-float'"), "{err}");
    assert!(matches!(
        store.view(&BY_MAP),
        Err(Error::KeyEncoding { view, reason }) if view == "by-map" && reason.contains("map")
    ));
    assert_eq!(store.lsn().get(), 0);
    assert!(store.stats().views.is_empty());
    Ok(())
}

/// Writes `record` under `key` into the table of view `view`, behind viewstore's back.
fn plant(path: &Path, view: &str, key: &[u8], record: &[u8]) -> TestResult {
    let db = redb::Database::open(path)?;
    let txn = db.begin_write()?;
    {
        let name = format!("view.{view}");
        let mut table = txn.open_table(TableDefinition::<&[u8], &[u8]>::new(&name))?;
        table.insert(key, record)?;
    }
    txn.commit()?;
    Ok(())
}

#[test]
fn corrupt_value_bytes_are_a_decode_error_naming_view_and_key() -> TestResult {
    const OTHER: ViewDef<u64, String> = ViewDef::new("other");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("corrupt.redb");
    {
        let store = Store::open(&path)?;
        store.view(&USERS)?.put(&1, s("fine"), 1)?;
        store.view(&OTHER)?.put(&1, s("fine too"), 1)?;
        store.close()?;
    }
    // Key 4242 as the key encoding writes a u64 (big-endian); a live record header
    // (tag 1, version 9) and then a string length of 250 with only two bytes after it.
    let mut record = vec![1u8];
    record.extend_from_slice(&9u64.to_le_bytes());
    record.extend_from_slice(&[250, b'a', b'b']);
    plant(&path, "users", &4242u64.to_be_bytes(), &record)?;

    let store = Store::open(&path)?;
    let err = store.view(&USERS).map(drop).expect_err("corrupt record");
    match &err {
        Error::Decode { view, key, .. } => {
            assert_eq!(view, "users");
            assert_eq!(key, "4242");
        }
        other => panic!("expected Decode, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("'users'") && text.contains("4242"), "{text}");
    // The bytes do not decode as the view's value type: the message says which, and
    // that raising the schema version is the usual fix.
    assert!(text.contains("current type String at schema version 1"), "{text}");
    assert!(text.contains("usually a schema change") && text.contains("schema_version"), "{text}");
    assert!(
        matches!(&err, Error::Decode { type_name: Some(t), schema_version: Some(1), .. } if t == "String"),
        "{err:?}"
    );
    assert!(err.source().is_some());
    // The rest of the store still works.
    let other = store.view(&OTHER)?;
    assert_eq!(other.get(&1).as_deref(), Some(&s("fine too")));
    assert_eq!(other.put(&2, s("new"), 1)?, Outcome::Applied);
    store.close()?;
    Ok(())
}

#[test]
fn a_record_with_a_bad_header_is_a_decode_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("header.redb");
    {
        let store = Store::open(&path)?;
        store.view(&USERS)?.put(&1, s("fine"), 1)?;
        store.close()?;
    }
    plant(&path, "users", &77u64.to_be_bytes(), &[9u8, 1, 2, 3, 4, 5, 6, 7, 8, 0])?;
    let store = Store::open(&path)?;
    let err = store.view(&USERS).map(drop).expect_err("bad record tag");
    assert!(
        matches!(&err, Error::Decode { view, key, .. } if view == "users" && key == "77"),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn invalid_view_names_are_refused() -> TestResult {
    const EMPTY: ViewDef<u64, u64> = ViewDef::new("");
    const CONTROL: ViewDef<u64, u64> = ViewDef::new("bad\nname");
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("names.redb"))?;
    assert!(matches!(store.view(&EMPTY), Err(Error::InvalidViewName { .. })));
    let err = store.view(&CONTROL).map(drop).expect_err("control character");
    assert!(matches!(&err, Error::InvalidViewName { view } if view == "bad\nname"));
    Ok(())
}

#[test]
fn a_batch_cannot_mix_views_of_two_stores() -> TestResult {
    let dir = tempfile::tempdir()?;
    let a = Store::open(dir.path().join("a.redb"))?;
    let b = Store::open(dir.path().join("b.redb"))?;
    let (ua, ub) = (a.view(&USERS)?, b.view(&USERS)?);
    let mut batch = Batch::new();
    batch.put(&ua, &1, s("a"), 1)?;
    assert!(matches!(
        batch.put(&ub, &1, s("b"), 1),
        Err(Error::ForeignView { view }) if view == "users"
    ));
    assert!(matches!(b.submit(batch), Err(Error::ForeignView { .. })));
    assert!(ua.is_empty() && ub.is_empty());
    Ok(())
}

#[test]
fn a_refused_store_opens_again_once_its_format_is_readable() -> TestResult {
    // Refusing a newer format must not leave a lock or partial state behind: once the
    // format is put back, the store opens with its data.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("back.redb");
    {
        let store = Store::open(&path)?;
        store.view(&USERS)?.put(&5, s("five"), 5)?;
        store.close()?;
    }
    let set_format = |v: u32| -> TestResult {
        let db = redb::Database::open(&path)?;
        let txn = db.begin_write()?;
        txn.open_table(META)?.insert("format", v.to_le_bytes().as_slice())?;
        txn.commit()?;
        Ok(())
    };
    set_format(4)?;
    assert!(matches!(Store::open(&path), Err(Error::NewerFormat { found: 4, .. })));
    set_format(1)?;
    let store = Store::open(&path)?;
    assert_eq!(store.view(&USERS)?.get(&5).as_deref(), Some(&s("five")));
    Ok(())
}

#[test]
fn opening_a_store_that_is_already_open_fails_and_disturbs_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("twice.redb");
    let store = Store::open(&path)?;
    let users = store.view(&USERS)?;
    users.put(&1, s("first"), 1)?;

    let err = Store::open(&path).expect_err("the file is in use");
    assert!(matches!(err, Error::AlreadyOpen { .. }), "{err:?}");
    assert!(err.to_string().contains("twice.redb"), "{err}");

    // The first store goes on as if nothing happened.
    assert_eq!(users.put(&2, s("second"), 1)?, Outcome::Applied);
    assert_eq!(users.len(), 2);
    store.close()?;
    drop(users);
    drop(store);
    let store = Store::open(&path)?;
    assert_eq!(store.view(&USERS)?.len(), 2);
    Ok(())
}

#[test]
fn a_value_over_the_limit_from_an_update_closure_fails_only_its_batch() -> TestResult {
    const BLOBS: ViewDef<u32, String> = ViewDef::new("blobs");
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("update-size.redb"))?;
    let blobs = store.view(&BLOBS)?;
    blobs.put(&5, s("small"), 1)?;

    let mut big = Batch::new();
    big.put(&blobs, &6, s("six"), 1)?;
    big.update(&blobs, &5, 2, |_| Some("x".repeat(MAX_VALUE_BYTES)))?;
    let mut small = Batch::new();
    small.put(&blobs, &7, s("seven"), 1)?;
    let (big, small) = (store.submit(big)?, store.submit(small)?);

    match big.wait() {
        Err(Error::ValueTooLarge { view, key, len, max, from_update: true }) => {
            assert_eq!((view.as_str(), key.as_str()), ("blobs", "5"));
            assert!(len > max && max == MAX_VALUE_BYTES, "{len} {max}");
        }
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    assert_eq!(small.wait()?.outcomes, vec![Outcome::Applied]);
    assert_eq!(blobs.get_versioned(&5).map(|(v, b)| (v, (*b).clone())), Some((1, s("small"))));
    assert!(!blobs.contains(&6));
    assert!(blobs.contains(&7));
    Ok(())
}

#[test]
fn a_store_in_a_missing_directory_is_an_error_naming_the_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("no-such-dir").join("views.redb");
    let err = Store::open(&path).expect_err("the directory does not exist");
    assert!(matches!(err, Error::Storage { .. } | Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert!(err.source().is_some());
    assert!(!dir.path().join("no-such-dir").exists());
    Ok(())
}

#[test]
fn writing_from_inside_an_update_closure_is_refused_not_deadlocked() -> TestResult {
    const COUNTS: ViewDef<u64, u64> = ViewDef::new("reentry_counts");
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let counts = store.view(&COUNTS)?;
    let inner = counts.clone();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen_in_closure = std::sync::Arc::clone(&seen);
    counts.update(&1, 1, move |_| {
        let refused = inner.put(&2, 2, 1);
        *seen_in_closure.lock().expect("lock") = Some(format!("{refused:?}"));
        Some(1)
    })?;
    let seen = seen.lock().expect("lock").clone().unwrap_or_default();
    assert!(seen.contains("WriterReentry"), "{seen}");
    assert_eq!(counts.get(&1).as_deref(), Some(&1));
    assert!(counts.get(&2).is_none());
    Ok(())
}

#[test]
fn a_snapshot_refuses_a_handle_of_another_store() -> TestResult {
    const NUMS: ViewDef<u64, u64> = ViewDef::new("nums");
    let dir = tempfile::tempdir()?;
    let a = Store::open(dir.path().join("a.redb"))?;
    let b = Store::open(dir.path().join("b.redb"))?;
    let (in_a, in_b) = (a.view(&NUMS)?, b.view(&NUMS)?);
    in_a.put(&1, 10, 1)?;
    in_b.put(&1, 20, 1)?;
    assert_eq!(a.snapshot().view(&in_a)?.get_ref(&1), Some(&10));
    match a.snapshot().view(&in_b) {
        Err(Error::ForeignView { view }) => assert_eq!(view, "nums"),
        other => panic!("a handle of another store: {:?}", other.map(|v| v.len())),
    }
    Ok(())
}

/// Asserts that `result` failed with an error of `kind` that `expect` accepts; returns
/// the error.
#[track_caller]
fn failed<T: std::fmt::Debug>(
    result: Result<T, Error>,
    kind: ErrorKind,
    expect: impl Fn(&Error) -> bool,
) -> Error {
    let err = result.expect_err("the call must fail");
    assert!(expect(&err), "unexpected error: {err:?}");
    assert_eq!(err.kind(), kind, "kind of {err:?}");
    err
}

/// Writes format version `version` into the meta table of the closed store at `path`.
fn set_format(path: &Path, version: u32) -> TestResult {
    let db = redb::Database::open(path)?;
    let txn = db.begin_write()?;
    txn.open_table(META)?.insert("format", version.to_le_bytes().as_slice())?;
    txn.commit()?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Account {
    email: String,
    name: String,
}

fn account(email: &str, name: &str) -> Account {
    Account { email: email.to_owned(), name: name.to_owned() }
}

const BY_EMAIL: IndexDef<Account, String> = IndexDef::unique("by_email", |a| a.email.clone());
const ACCOUNTS: ViewDef<u64, Account> = ViewDef::new("accounts").with_indexes(&[&BY_EMAIL]);
const NAMED: ViewDef<String, String> = ViewDef::new("named");
const BAD: ViewDef<u64, Unencodable> = ViewDef::new("bad-values");

/// An index whose extractor panics on the name "boom".
const FUSSY: IndexDef<Account, String> = IndexDef::multi("fussy", |a| {
    assert!(a.name != "boom", "extractor refuses boom");
    a.name.clone()
});
/// An index whose key is over the limit for any name longer than one byte.
const LONG: IndexDef<Account, String> = IndexDef::multi("long", |a| a.name.repeat(MAX_KEY_BYTES));
/// An index whose key, a map, the key encoding cannot encode.
const MAPPED: IndexDef<Account, BTreeMap<String, u8>> =
    IndexDef::multi("mapped", |a| BTreeMap::from([(a.name.clone(), 1)]));
const MAPPED_PEOPLE: ViewDef<u64, Account> = ViewDef::new("mapped-people").with_indexes(&[&MAPPED]);

/// An index key whose type looks encodable (it deserializes from a string) but whose
/// `Serialize` writes a float for an empty name: only the writer can find that out.
#[derive(Debug, Deserialize)]
struct Sneaky(String);

impl Serialize for Sneaky {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() { s.serialize_f64(0.5) } else { s.serialize_str(&self.0) }
    }
}

const SNEAKY: IndexDef<Account, Sneaky> = IndexDef::multi("sneaky", |a| Sneaky(a.name.clone()));
const PEOPLE: ViewDef<u64, Account> =
    ViewDef::new("people").with_indexes(&[&FUSSY, &LONG, &SNEAKY]);

/// Every error a caller can meet, made to happen, has the kind its documentation gives:
/// refusals of the call are `Input`, failures of one batch (or one view's open) are
/// `Batch`, failures of the store are `Store`.
#[test]
fn every_error_the_store_returns_has_its_intended_kind() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kinds.redb");
    let store = Store::builder(&path).queue_capacity(1).open()?;
    input_errors(dir.path(), &store)?;
    batch_errors(&store)?;

    // Store: a closed store.
    let users = store.view(&USERS)?;
    store.close()?;
    failed(users.put(&9, s("late"), 1), ErrorKind::Store, |e| matches!(e, Error::Closed));
    drop((users, store));

    // Batch: a stored record that does not decode fails the open of its view only.
    let mut record = vec![1u8];
    record.extend_from_slice(&9u64.to_le_bytes());
    record.extend_from_slice(&[250, b'a', b'b']);
    plant(&path, "users", &4242u64.to_be_bytes(), &record)?;
    let store = Store::open(&path)?;
    failed(store.view(&USERS), ErrorKind::Batch, |e| matches!(e, Error::Decode { .. }));
    store.view(&NAMED)?.put(&s("k"), s("v"), 2)?;
    store.close()?;

    // Store: a file in a directory that does not exist.
    let nowhere = dir.path().join("no-such-dir").join("s.redb");
    failed(Store::open(&nowhere), ErrorKind::Store, |e| {
        matches!(e, Error::Storage { .. } | Error::Io { .. })
    });
    Ok(())
}

/// The `Input` errors: the call is refused and nothing happens. `store` is open, on a
/// file in `dir`, with a queue of one batch.
fn input_errors(dir: &Path, store: &Store) -> TestResult {
    const USERS_AS_NUMBERS: ViewDef<u64, u32> = ViewDef::new("users");
    const NAMELESS: ViewDef<u64, u64> = ViewDef::new("");
    const BY_FLOAT: ViewDef<f64, u64> = ViewDef::new("by-float");
    const A: IndexDef<Account, String> = IndexDef::multi("same", |a| a.name.clone());
    const B: IndexDef<Account, String> = IndexDef::multi("same", |a| a.email.clone());
    const TWICE: ViewDef<u64, Account> = ViewDef::new("twice").with_indexes(&[&A, &B]);
    let input = ErrorKind::Input;

    // Files that cannot be opened as a store.
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not a database")?;
    failed(Store::open(&text), input, |e| matches!(e, Error::NotAStore { .. }));
    let newer = dir.join("newer.redb");
    Store::open(&newer)?.close()?;
    set_format(&newer, 7)?;
    failed(Store::open(&newer), input, |e| matches!(e, Error::NewerFormat { .. }));
    failed(Store::open(store.path()), input, |e| matches!(e, Error::AlreadyOpen { .. }));

    // Definitions refused when a view is opened.
    let users = store.view(&USERS)?;
    failed(store.view(&USERS_AS_NUMBERS), input, |e| matches!(e, Error::SchemaMismatch { .. }));
    failed(store.view(&NAMELESS), input, |e| matches!(e, Error::InvalidViewName { .. }));
    failed(store.view(&BY_FLOAT), input, |e| matches!(e, Error::KeyEncoding { .. }));
    failed(store.view(&TWICE), input, |e| matches!(e, Error::InvalidIndex { key: None, .. }));

    // Operations refused when they are added to a batch.
    let (named, bad) = (store.view(&NAMED)?, store.view(&BAD)?);
    let mut batch = Batch::new();
    let long = "k".repeat(MAX_KEY_BYTES);
    failed(batch.put(&named, &long, s("v"), 1), input, |e| matches!(e, Error::KeyTooLarge { .. }));
    let huge = "v".repeat(MAX_VALUE_BYTES);
    failed(batch.put(&named, &s("k"), huge, 1), input, |e| {
        matches!(e, Error::ValueTooLarge { from_update: false, .. })
    });
    failed(batch.put(&bad, &1, Unencodable(1), 1), input, |e| {
        matches!(e, Error::Encode { from_update: false, .. })
    });
    let other = Store::open(dir.join("other.redb"))?;
    let foreign = other.view(&USERS)?;
    batch.put(&users, &1, s("ada"), 1)?;
    failed(batch.put(&foreign, &1, s("bob"), 1), input, |e| matches!(e, Error::ForeignView { .. }));
    failed(other.submit(batch), input, |e| matches!(e, Error::ForeignView { .. }));

    // A call made on the writer thread.
    let inner = users.clone();
    let (seen_tx, seen) = std::sync::mpsc::channel();
    users.update(&2, 1, move |_| {
        let _ = seen_tx.send(inner.put(&3, s("from inside"), 1));
        Some(s("two"))
    })?;
    failed(seen.recv()?, input, |e| matches!(e, Error::WriterReentry { .. }));

    // A full queue: an update closure holds the writer until released, and the queue
    // takes one batch.
    let (release_tx, release) = std::sync::mpsc::channel::<()>();
    let (started_tx, started) = std::sync::mpsc::channel();
    let mut holding = Batch::new();
    holding.update(&users, &4, 1, move |_| {
        let _ = started_tx.send(());
        let _ = release.recv();
        Some(s("four"))
    })?;
    let held = store.submit(holding)?;
    started.recv()?;
    let one = |key: u64| -> viewstore::Result<Batch> {
        let mut batch = Batch::new();
        batch.put(&users, &key, s("queued"), 1)?;
        Ok(batch)
    };
    let queued = store.try_submit(one(5)?)?;
    let full = failed(store.try_submit(one(6)?), input, |e| matches!(e, Error::Full));
    assert!(full.is_retryable());
    release_tx.send(())?;
    held.wait()?;
    queued.wait()?;
    // The same call passes once the queue drains.
    store.try_submit(one(6)?)?.wait()?;
    assert!(users.contains(&6));
    Ok(())
}

/// The `Batch` errors: one batch fails, from its ticket, and the store goes on.
fn batch_errors(store: &Store) -> TestResult {
    let batch = ErrorKind::Batch;
    let accounts = store.view(&ACCOUNTS)?;
    accounts.put(&1, account("a@x", "ada"), 1)?;
    let mut taken = Batch::new();
    taken.put(&accounts, &2, account("a@x", "bob"), 1)?;
    let err =
        failed(store.submit(taken)?.wait(), batch, |e| matches!(e, Error::UniqueViolation { .. }));
    assert!(!err.is_retryable());

    // User code on the writer thread failing, or making what cannot be stored.
    let (users, bad) = (store.view(&USERS)?, store.view(&BAD)?);
    failed(users.update(&7, 1, |_| -> Option<String> { panic!("closure bug") }), batch, |e| {
        matches!(e, Error::UpdatePanicked { .. })
    });
    failed(users.update(&7, 1, |_| Some("x".repeat(MAX_VALUE_BYTES))), batch, |e| {
        matches!(e, Error::ValueTooLarge { from_update: true, .. })
    });
    failed(bad.update(&1, 1, |_| Some(Unencodable(2))), batch, |e| {
        matches!(e, Error::Encode { from_update: true, .. })
    });
    // An index key type the key encoding cannot encode is refused at open.
    failed(
        store.view(&MAPPED_PEOPLE),
        ErrorKind::Input,
        |e| matches!(e, Error::InvalidIndex { index, key: None, .. } if index == "mapped"),
    );
    let people = store.view(&PEOPLE)?;
    failed(people.put(&1, account("x", "boom"), 1), batch, |e| {
        matches!(e, Error::IndexPanicked { .. })
    });
    failed(people.put(&1, account("x", "ab"), 1), batch, |e| {
        matches!(e, Error::IndexKeyTooLarge { .. })
    });
    failed(
        people.put(&1, account("x", ""), 1),
        batch,
        |e| matches!(e, Error::InvalidIndex { key: Some(key), .. } if key == "1"),
    );
    assert!(people.is_empty() && !users.contains(&7));
    assert_eq!(users.put(&8, s("the store goes on"), 1)?, Outcome::Applied);
    Ok(())
}

/// A full disk fails a commit with `Storage`, which is retryable: the same batch passes
/// once there is room again. A writer that dies poisons the store, which is not.
#[test]
fn storage_failures_are_store_errors_and_retryable_until_the_store_is_poisoned() -> TestResult {
    use viewstore::testing::{FaultBackend, FaultMode, FaultPlan, FaultTarget};
    let backend = Arc::new(FaultBackend::new());
    let store = Store::builder("in-memory").backend(Arc::clone(&backend) as _).open()?;
    let users = store.view(&USERS)?;
    users.put(&1, s("ada"), 1)?;
    backend.set_capacity(Some(backend.written_image().len() as u64));
    let big = "x".repeat(200_000);
    let err = failed(users.put(&2, big.clone(), 1), ErrorKind::Store, |e| {
        matches!(e, Error::Storage { .. })
    });
    assert!(err.is_retryable());
    backend.set_capacity(None);
    assert_eq!(users.put(&2, big, 1)?, Outcome::Applied);

    // The backend panics inside the next commit, on the writer thread.
    let at = backend.counters().writes;
    backend.set_plan(Some(FaultPlan { target: FaultTarget::Write, at, mode: FaultMode::Panic }));
    failed(users.put(&3, s("cy"), 1), ErrorKind::Store, |e| matches!(e, Error::Poisoned { .. }));
    let err = failed(users.put(&4, s("dee"), 1), ErrorKind::Store, |e| {
        matches!(e, Error::Poisoned { .. })
    });
    assert!(!err.is_retryable());
    Ok(())
}

/// A unique violation carries the index key as stored: its order-preserving encoding,
/// besides its `Debug` form, and the primary keys of the holder and the refused record.
#[test]
fn a_unique_violation_carries_the_encoded_index_key_and_both_records() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("unique.redb"))?;
    let accounts = store.view(&ACCOUNTS)?;
    // A zero byte in a string encodes as 0x00 0xFF; the string ends with 0x00 0x00.
    let email = "a\0b";
    accounts.put(&10, account(email, "ada"), 1)?;
    let mut batch = Batch::new();
    batch.put(&accounts, &11, account("c@x", "cy"), 1)?;
    batch.put(&accounts, &12, account(email, "bob"), 1)?;
    let err = store.submit(batch)?.wait().map(drop).expect_err("a second holder");
    match &err {
        Error::UniqueViolation { view, index, key, key_bytes, holder, refused } => {
            assert_eq!((view.as_str(), index.as_str()), ("accounts", "by_email"));
            assert_eq!(key, &format!("{email:?}"));
            assert_eq!(**key_bytes, [b'a', 0, 0xFF, b'b', 0, 0]);
            assert_eq!((&**holder, &**refused), ("10", "12"));
        }
        other => panic!("expected UniqueViolation, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("by_email") && text.contains("10") && text.contains("12"), "{text}");
    assert_eq!(err.kind(), ErrorKind::Batch);
    assert!(!accounts.contains(&11) && !accounts.contains(&12));
    Ok(())
}
