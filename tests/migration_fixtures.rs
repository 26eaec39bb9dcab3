//! Store files written at schema versions 1, 2 and 3 of the `profiles` view
//! (`tests/fixtures/`, made by `examples/make_fixtures.rs`, checked in) open with the
//! current code: each is migrated by the chain 1 → 2 → 3 (version 3 needs none) and
//! every record is checked exactly, tombstones included. The fixtures are copied first:
//! a migration rewrites its file.

mod profiles;

use profiles::{BY_DISPLAY_NAME, PROFILES_V3, RECORDS, chain, deleted, v1, v2, v3, version_of};
use std::path::Path;
use viewstore::{Outcome, Store};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Opens a copy of fixture `name`, checks its stored schema version, migrates it.
fn migrated(
    name: &str,
    stored_version: u32,
) -> Result<(tempfile::TempDir, Store), Box<dyn std::error::Error>> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(name);
    std::fs::copy(&fixture, &path)?;
    let store = Store::open(&path)?;
    let info = store.views()?.into_iter().find(|v| v.name == "profiles").ok_or("no view")?;
    assert_eq!(info.schema_version, stored_version, "{name}");
    let live = (0..RECORDS).filter(|&id| !deleted(id)).count() as u64;
    assert_eq!((info.records, info.tombstones), (live, RECORDS - live), "{name}");
    store.view_migrated(&PROFILES_V3, &chain())?;
    Ok((dir, store))
}

/// Every record of the migrated view, exactly.
fn check(store: &Store) -> TestResult {
    let view = store.view(&PROFILES_V3)?;
    for id in 0..RECORDS {
        if deleted(id) {
            assert_eq!(view.get(&id), None, "key {id}");
            let late = view.put(&id, v3(id), version_of(id))?;
            assert_eq!(late, Outcome::Stale { current: version_of(id) + 1 }, "key {id}");
        } else {
            let found = view.get_versioned(&id).map(|(v, p)| (v, (*p).clone()));
            assert_eq!(found, Some((version_of(id), v3(id))), "key {id}");
        }
    }
    assert_eq!(view.len() as u64, (0..RECORDS).filter(|&id| !deleted(id)).count() as u64);
    assert_eq!(view.index_get(&BY_DISPLAY_NAME, "@user 12").map(|(k, _)| k), Some(12));
    assert!(store.verify()?.is_ok());
    Ok(())
}

#[test]
fn the_version_1_fixture_migrates_to_version_3() -> TestResult {
    // The fixture's values are what the version 1 type says: a field, an enum, a name.
    assert_eq!(v1(4).name, "user 4");
    let (_dir, store) = migrated("profiles_v1.redb", 1)?;
    check(&store)
}

#[test]
fn the_version_2_fixture_migrates_to_version_3() -> TestResult {
    assert_eq!(v2(4).team, v3(4).team);
    let (_dir, store) = migrated("profiles_v2.redb", 2)?;
    check(&store)
}

#[test]
fn the_version_3_fixture_opens_unchanged() -> TestResult {
    let (_dir, store) = migrated("profiles_v3.redb", 3)?;
    check(&store)
}
