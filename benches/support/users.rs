//! The index fixture shared by `benches/index.rs` and `examples/index_overlap.rs`, so that
//! the example explains the benchmark's lookups on the same records and indexes.

use serde::{Deserialize, Serialize};
use viewstore::IndexDef;

/// A user of about 120 bytes in bincode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct User {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) city: String,
    pub(crate) tags: Vec<String>,
    pub(crate) score: u32,
    pub(crate) bio: String,
}

/// Unique: the e-mail address (23 bytes encoded in the benchmark).
pub(crate) const BY_EMAIL: IndexDef<User, String> =
    IndexDef::unique("by_email", |u| u.email.clone());
/// Multi: the city, one of 500.
pub(crate) const BY_CITY: IndexDef<User, String> = IndexDef::multi("by_city", |u| u.city.clone());
/// Multi: two tags of 40.
pub(crate) const BY_TAG: IndexDef<User, String> =
    IndexDef::multi_keys("by_tag", |u| u.tags.clone());

/// User `id`; `salt` moves its city and tags (0 for the records as first written).
pub(crate) fn user(id: u64, salt: u64) -> User {
    User {
        id,
        name: format!("user {id}"),
        email: format!("user{id}@example.com"),
        city: format!("city {}", (id + salt) % 500),
        tags: vec![format!("t{}", (id + salt) % 40), format!("t{}", (id * 7 + salt) % 40)],
        score: (id % 1000) as u32,
        bio: "writes about storage engines".into(),
    }
}
