//! Views are independent whatever their names: a view whose name is a path prefix of
//! another's ("shop" and "shop/users") neither sees nor disturbs the other's data or
//! indexes.

use serde::{Deserialize, Serialize};
use viewstore::{Error, IndexDef, Outcome, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    email: String,
}

const BY_EMAIL: IndexDef<User, String> = IndexDef::unique("by_email", |u| u.email.clone());
const SHOP_USERS: ViewDef<u64, User> = ViewDef::new("shop/users").with_indexes(&[&BY_EMAIL]);
const SHOP: ViewDef<u64, String> = ViewDef::new("shop");

fn user(email: &str) -> User {
    User { email: email.to_owned() }
}

#[test]
fn opening_a_view_keeps_the_indexes_of_views_named_below_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("names.redb");
    {
        let store = Store::open(&path)?;
        let users = store.view(&SHOP_USERS)?;
        assert_eq!(users.put(&1, user("ada@example.com"), 1)?, Outcome::Applied);

        // A view named "shop", with no index of its own, opened after "shop/users".
        let shop = store.view(&SHOP)?;
        shop.put(&1, "open".to_owned(), 1)?;

        // The unique index of "shop/users" still guards its emails.
        let err = users.put(&2, user("ada@example.com"), 1).map(drop).expect_err("duplicate");
        assert!(
            matches!(&err, Error::UniqueViolation { view, index, .. }
                if view == "shop/users" && index == "by_email"),
            "{err:?}"
        );
        assert_eq!(
            users.index_get(&BY_EMAIL, &"ada@example.com".to_owned()).map(|(k, _)| k),
            Some(1)
        );
        let report = store.verify()?;
        assert!(report.is_ok(), "{:?}", report.problems);
        store.close()?;
    }
    // Also when "shop" is the first view opened after a reopen.
    let store = Store::open(&path)?;
    let shop = store.view(&SHOP)?;
    assert_eq!(shop.get(&1).as_deref().map(String::as_str), Some("open"));
    let users = store.view(&SHOP_USERS)?;
    assert!(matches!(
        users.put(&3, user("ada@example.com"), 1),
        Err(Error::UniqueViolation { .. })
    ));
    assert_eq!(users.len(), 1);
    let report = store.verify()?;
    assert!(report.is_ok(), "{:?}", report.problems);
    Ok(())
}
