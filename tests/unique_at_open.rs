//! A unique index built at open over a large view (its hash table built beside its
//! entries) whose records give one key twice fails the open with the error naming the
//! view, the index, the key and both records, and changes nothing: the view opens again
//! without the index, with its records.

use viewstore::{Batch, Error, IndexDef, Store, ViewDef};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Account {
    email: String,
}

const PLAIN: ViewDef<u64, Account> = ViewDef::new("accounts");
const BY_EMAIL: IndexDef<Account, String> = IndexDef::unique("by_email", |a| a.email.clone());
const INDEXED: ViewDef<u64, Account> = ViewDef::new("accounts").with_indexes(&[&BY_EMAIL]);

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Enough records for the index's hash table to be built on a thread of its own.
const RECORDS: u64 = 30_000;

/// Records 12,345 and 23,456 share an address; every other one has its own.
fn email(id: u64) -> String {
    let id = if id == 23_456 { 12_345 } else { id };
    format!("user{id}@example.com")
}

#[test]
fn a_key_held_twice_fails_the_open_of_a_new_unique_index_naming_both_records() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("accounts.redb");
    {
        let store = Store::open(&path)?;
        let accounts = store.view(&PLAIN)?;
        let mut batch = Batch::new();
        for id in 0..RECORDS {
            batch.put(&accounts, &id, Account { email: email(id) }, 1)?;
        }
        store.submit(batch)?.wait()?;
        drop(accounts);
        store.close()?;
    }
    let store = Store::open(&path)?;
    match store.view(&INDEXED) {
        Err(Error::UniqueViolation { view, index, key, holder, refused, .. }) => {
            assert_eq!((view.as_str(), index.as_str()), ("accounts", "by_email"));
            assert_eq!(key, format!("{:?}", email(12_345)));
            assert_eq!((&*holder, &*refused), ("12345", "23456"));
        }
        Err(other) => return Err(format!("another error: {other}").into()),
        Ok(_) => return Err("the open succeeded with a key held twice".into()),
    }
    let accounts = store.view(&PLAIN)?;
    assert_eq!(accounts.len(), RECORDS as usize);
    assert_eq!(accounts.get(&23_456).map(|a| a.email.clone()), Some(email(12_345)));
    Ok(())
}
