//! A view's value type at three schema versions, the migration between them, and the
//! records the fixture files hold; shared by the migration tests and
//! `examples/make_fixtures.rs`.
//!
//! - version 1: `ProfileV1 { name, posts, plan: PlanV1 }`;
//! - version 2: a field added (`team`);
//! - version 3: `name` renamed `display_name`, and the plan enum changed (`Paid` became
//!   `Pro { seats }`, `Enterprise` added).

#![allow(dead_code, reason = "each user of this module uses a part of it")]

use serde::{Deserialize, Serialize};
use viewstore::{IndexDef, Migration, ViewDef};

/// A plan at versions 1 and 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum PlanV1 {
    Free,
    Paid,
}

/// A profile at schema version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProfileV1 {
    pub(crate) name: String,
    pub(crate) posts: u32,
    pub(crate) plan: PlanV1,
}

/// A profile at schema version 2: `team` added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProfileV2 {
    pub(crate) name: String,
    pub(crate) posts: u32,
    pub(crate) plan: PlanV1,
    pub(crate) team: u16,
}

/// A plan at version 3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Plan {
    Free,
    Pro { seats: u32 },
    Enterprise,
}

/// A profile at schema version 3: `name` renamed, the plan changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProfileV3 {
    pub(crate) display_name: String,
    pub(crate) posts: u32,
    pub(crate) plan: Plan,
    pub(crate) team: u16,
}

pub(crate) const BY_NAME: IndexDef<ProfileV1, String> =
    IndexDef::unique("by_name", |p| p.name.clone());
pub(crate) const BY_TEAM: IndexDef<ProfileV3, u16> = IndexDef::multi("by_team", |p| p.team);
pub(crate) const BY_DISPLAY_NAME: IndexDef<ProfileV3, String> =
    IndexDef::unique("by_name", |p| format!("@{}", p.display_name));

pub(crate) const PROFILES_V1: ViewDef<u64, ProfileV1> =
    ViewDef::new("profiles").with_indexes(&[&BY_NAME]);
pub(crate) const PROFILES_V2: ViewDef<u64, ProfileV2> =
    ViewDef::new("profiles").with_schema_version(2);
pub(crate) const PROFILES_V3: ViewDef<u64, ProfileV3> =
    ViewDef::new("profiles").with_schema_version(3).with_indexes(&[&BY_DISPLAY_NAME, &BY_TEAM]);

/// Records `0..RECORDS` are written; every tenth (`id % 10 == 9`) is then deleted.
pub(crate) const RECORDS: u64 = 300;

pub(crate) fn deleted(id: u64) -> bool {
    id % 10 == 9
}

/// The version a record is written at; a deleted one's tombstone is one above.
pub(crate) fn version_of(id: u64) -> u64 {
    id * 3 + 1
}

pub(crate) fn v1(id: u64) -> ProfileV1 {
    let plan = if id.is_multiple_of(4) { PlanV1::Paid } else { PlanV1::Free };
    ProfileV1 { name: format!("user {id}"), posts: (id * 7 % 101) as u32, plan }
}

pub(crate) fn v2(id: u64) -> ProfileV2 {
    up_1_2(v1(id))
}

pub(crate) fn v3(id: u64) -> ProfileV3 {
    up_2_3(v2(id))
}

pub(crate) fn up_1_2(old: ProfileV1) -> ProfileV2 {
    let team = (old.posts % 5) as u16;
    ProfileV2 { name: old.name, posts: old.posts, plan: old.plan, team }
}

pub(crate) fn up_2_3(old: ProfileV2) -> ProfileV3 {
    let plan = match old.plan {
        PlanV1::Free => Plan::Free,
        PlanV1::Paid => Plan::Pro { seats: 1 },
    };
    ProfileV3 { display_name: old.name, posts: old.posts, plan, team: old.team }
}

/// The chain 1 → 2 → 3.
pub(crate) fn chain() -> Migration<ProfileV3> {
    Migration::<ProfileV1>::from_version(1).then(2, up_1_2).then(3, up_2_3)
}
