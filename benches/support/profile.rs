//! The read fixture shared by `benches/read.rs` and `examples/memory.rs`, so that the
//! memory figures and the read benchmarks measure the same records.

use serde::{Deserialize, Serialize};
use viewstore::ViewDef;

/// A 7-field profile of about 100 bytes in bincode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Profile {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) city: String,
    pub(crate) bio: String,
    pub(crate) followers: u64,
    pub(crate) active: bool,
}

pub(crate) const PROFILES: ViewDef<u64, Profile> = ViewDef::new("profiles");

const CITIES: [&str; 8] =
    ["Amsterdam", "Berlin", "Lisbon", "Oslo", "Porto", "Tallinn", "Vienna", "Zagreb"];

/// The profile of record `id`.
pub(crate) fn profile(id: u64) -> Profile {
    Profile {
        id,
        name: format!("user-{id:07}"),
        email: format!("user-{id:07}@example.com"),
        city: CITIES[(id % 8) as usize].to_owned(),
        bio: format!("Writes about storage, caches and {id} other things."),
        followers: id.wrapping_mul(2_654_435_761) % 100_000,
        active: !id.is_multiple_of(3),
    }
}
