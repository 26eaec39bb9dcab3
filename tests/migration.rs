//! Migrations of a view's stored values: the chain 1 → 2 → 3 from each stored version,
//! bounded transactions with progress reports, indexes rebuilt from the converted
//! records, a half-migrated view refused without a migration and resumed with one;
//! and the refusals (a failing or panicking step, no migration, a newer stored version,
//! a chain that does not fit, an open view), each of which changes nothing.

mod profiles;

use profiles::{
    BY_DISPLAY_NAME, BY_TEAM, PROFILES_V1, PROFILES_V2, PROFILES_V3, ProfileV1, ProfileV2,
    ProfileV3, RECORDS, chain, deleted, up_1_2, up_2_3, v1, v2, v3, version_of,
};
use std::path::Path;
use std::sync::{Arc, Mutex};
use viewstore::{Batch, Error, Migration, MigrationProgress, Outcome, Store, ViewInfo};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Writes the profiles at schema version `at` (1, 2 or 3), deletes every tenth.
fn write_at(path: &Path, at: u32) -> TestResult {
    let store = Store::open(path)?;
    macro_rules! fill {
        ($def:expr, $value:expr) => {{
            let view = store.view(&$def)?;
            let mut batch = Batch::new();
            for id in 0..RECORDS {
                batch.put(&view, &id, $value(id), version_of(id))?;
            }
            store.submit(batch)?.wait()?;
            for id in (0..RECORDS).filter(|&id| deleted(id)) {
                view.delete(&id, version_of(id) + 1)?;
            }
        }};
    }
    match at {
        1 => fill!(PROFILES_V1, v1),
        2 => fill!(PROFILES_V2, v2),
        _ => fill!(PROFILES_V3, v3),
    }
    store.close()?;
    Ok(())
}

/// Checks every record of a migrated view: values, versions, tombstones, indexes.
fn check_v3(store: &Store) -> TestResult {
    let view = store.view(&PROFILES_V3)?;
    let live = (0..RECORDS).filter(|&id| !deleted(id)).count();
    assert_eq!(view.len(), live);
    for id in 0..RECORDS {
        if deleted(id) {
            assert_eq!(view.get(&id), None, "key {id}");
            // The tombstone kept its version: an older put is still stale.
            let late = view.put(&id, v3(id), version_of(id))?;
            assert_eq!(late, Outcome::Stale { current: version_of(id) + 1 });
        } else {
            assert_eq!(
                view.get_versioned(&id).map(|(v, p)| (v, (*p).clone())),
                Some((version_of(id), v3(id)))
            );
        }
    }
    assert_eq!(view.index_get(&BY_DISPLAY_NAME, "@user 4").map(|(k, _)| k), Some(4));
    let team_0: Vec<u64> = view.index_get_all(&BY_TEAM, &0).into_iter().map(|(k, _)| k).collect();
    let expected: Vec<u64> = (0..RECORDS).filter(|&id| !deleted(id) && v3(id).team == 0).collect();
    assert_eq!(team_0, expected);
    let report = store.verify()?;
    assert!(report.is_ok(), "{report:?}");
    Ok(())
}

fn info(store: &Store) -> Result<ViewInfo, Box<dyn std::error::Error>> {
    Ok(store.views()?.into_iter().find(|v| v.name == "profiles").ok_or("no profiles view")?)
}

#[test]
fn the_chain_converts_from_each_stored_version_and_survives_reopen() -> TestResult {
    for at in [1, 2, 3] {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("s.redb");
        write_at(&path, at)?;
        {
            let store = Store::open(&path)?;
            store.view_migrated(&PROFILES_V3, &chain())?;
            check_v3(&store)?;
            let info = info(&store)?;
            assert_eq!((info.schema_version, info.value_type.as_str()), (3, "ProfileV3"));
            store.close()?;
        }
        // Reopened with the plain definition: a finished migration leaves nothing behind.
        let store = Store::open(&path)?;
        let view = store.view(&PROFILES_V3)?;
        assert_eq!(view.get(&0).as_deref(), Some(&v3(0)), "stored at version {at}");
    }
    Ok(())
}

#[test]
fn bounded_transactions_report_progress_and_take_one_lsn_each() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    write_at(&path, 1)?;
    let store = Store::open(&path)?;
    let before = store.lsn();
    let reports: Arc<Mutex<Vec<MigrationProgress>>> = Arc::default();
    let seen = Arc::clone(&reports);
    let migration =
        chain().chunk_records(40).on_progress(move |p| seen.lock().expect("lock").push(p.clone()));
    store.view_migrated(&PROFILES_V3, &migration)?;
    let reports = reports.lock().map_err(|_| "poisoned")?.clone();
    let done: Vec<u64> = reports.iter().map(|p| p.done).collect();
    let expected: Vec<u64> = (1..=RECORDS.div_ceil(40)).map(|n| (n * 40).min(RECORDS)).collect();
    assert_eq!(done, expected);
    assert!(reports.iter().all(|p| (p.from, p.to, p.total) == (1, 3, RECORDS)));
    assert_eq!(
        reports[0].to_string(),
        "migrating 'profiles' from schema version 1 to 3: 40 of 300 records"
    );
    // One commit per transaction; opening the view builds its indexes in one more.
    assert!(store.lsn().get() >= before.get() + expected.len() as u64);
    check_v3(&store)
}

/// A chain whose step 2 → 3 fails on key 25, by an error or by a panic.
fn failing(panics: bool) -> Migration<ProfileV3> {
    Migration::<ProfileV1>::from_version(1).then(2, up_1_2).try_then(3, move |p: ProfileV2| {
        if p.name == "user 25" {
            assert!(!panics, "no plan for {}", p.name);
            return Err(format!("no plan for {}", p.name));
        }
        Ok(up_2_3(p))
    })
}

fn is_step_failure(e: &Error, text: &str) -> bool {
    matches!(e, Error::Migration { view, step: Some((2, 3)), key: Some(key), reason }
        if view == "profiles" && key == "25" && reason.contains(text))
}

#[test]
fn a_failing_step_names_view_key_and_step_and_changes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    write_at(&path, 1)?;
    let store = Store::open(&path)?;
    let lsn = store.lsn();
    for panics in [false, true] {
        let e = store.view_migrated(&PROFILES_V3, &failing(panics)).err().ok_or("migrated")?;
        assert!(is_step_failure(&e, "no plan for user 25"), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("'profiles', step 2 → 3, key 25"), "{text}");
        if panics {
            assert!(text.contains("panicked"), "{text}");
        }
    }
    // One transaction held every record: it never committed.
    assert_eq!(store.lsn(), lsn);
    assert_eq!(info(&store)?.schema_version, 1);
    let view = store.view(&PROFILES_V1)?;
    assert_eq!(view.get(&25).as_deref(), Some(&v1(25)));
    assert!(store.verify()?.is_ok());
    Ok(())
}

#[test]
fn a_half_migrated_view_is_refused_without_a_migration_and_resumed_with_one() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    write_at(&path, 2)?;
    {
        let store = Store::open(&path)?;
        // Transactions of 10: keys 0..20 commit, the one holding key 25 fails.
        let migration = Migration::<ProfileV2>::from_version(2).try_then(3, |p: ProfileV2| {
            if p.name == "user 25" { Err("not yet") } else { Ok(up_2_3(p)) }
        });
        let e = store
            .view_migrated(&PROFILES_V3, &migration.chunk_records(10))
            .err()
            .ok_or("migrated")?;
        assert!(matches!(&e, Error::Migration { key: Some(k), .. } if k == "25"), "{e:?}");
        for e in [store.view(&PROFILES_V3).err(), store.view(&PROFILES_V2).err()] {
            let e = e.ok_or("a half-migrated view opened")?;
            assert!(matches!(e, Error::Migration { .. }), "{e:?}");
            assert!(
                e.to_string()
                    .contains("half migrated from schema version 2 to 3 (20 records done)"),
                "{e}"
            );
        }
        // An older build sees the target version and a value type no build has.
        let info = info(&store)?;
        assert_eq!((info.schema_version, info.value_type.as_str()), (3, "ProfileV3 (migrating)"));
        // A chain to another version is refused; so is one that does not start at 2.
        let e = store.view_migrated(&PROFILES_V2, &Migration::<ProfileV2>::from_version(2)).err();
        assert!(matches!(e, Some(Error::Migration { .. })), "{e:?}");
        store.close()?;
    }
    // An import would add lines encoded by one shape to a mix of two: refused.
    #[cfg(feature = "inspect")]
    {
        let line = r#"{"key":1,"version":9,"deleted":true}"#;
        let input = std::io::Cursor::new(line);
        let mode = viewstore::inspect::ImportMode::Merge;
        let e = viewstore::inspect::import(&path, PROFILES_V3.name(), input, mode).err();
        let e = e.ok_or("imported into a half-migrated view")?;
        assert!(matches!(e, Error::Import { line: 0, .. }), "{e:?}");
        assert!(e.to_string().contains("being migrated from schema version 2 to 3"), "{e}");
    }
    let store = Store::open(&path)?;
    let resumed: Arc<Mutex<Vec<u64>>> = Arc::default();
    let seen = Arc::clone(&resumed);
    let migration =
        chain().chunk_records(100).on_progress(move |p| seen.lock().expect("lock").push(p.done));
    store.view_migrated(&PROFILES_V3, &migration)?;
    assert_eq!(*resumed.lock().map_err(|_| "poisoned")?, [120, 220, 300]);
    check_v3(&store)
}

#[test]
fn without_a_migration_an_older_view_is_refused_with_a_message_that_says_to_migrate() -> TestResult
{
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    write_at(&path, 1)?;
    let store = Store::open(&path)?;
    let e = store.view(&PROFILES_V3).err().ok_or("opened")?;
    assert!(matches!(e, Error::SchemaMismatch { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("Store::view_migrated") && text.contains("from version 1 to 3"),
        "{text}"
    );
    assert_eq!(store.view(&PROFILES_V1)?.get(&0).as_deref(), Some(&v1(0)));
    Ok(())
}

#[test]
fn a_newer_stored_version_is_always_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    write_at(&path, 3)?;
    let store = Store::open(&path)?;
    let lsn = store.lsn();
    let to_2 = Migration::<ProfileV1>::from_version(1).then(2, up_1_2);
    let e = store.view_migrated(&PROFILES_V2, &to_2).err().ok_or("opened")?;
    assert!(matches!(e, Error::SchemaMismatch { .. }), "{e:?}");
    assert!(e.to_string().contains("older than the stored schema version 3"), "{e}");
    let e = store.view(&PROFILES_V2).err().ok_or("opened")?;
    assert!(matches!(e, Error::SchemaMismatch { .. }), "{e:?}");
    assert_eq!(store.lsn(), lsn);
    check_v3(&store)
}

#[test]
fn a_chain_that_does_not_fit_is_refused_and_changes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    write_at(&path, 1)?;
    let store = Store::open(&path)?;
    let lsn = store.lsn();
    let refused = |e: Option<Error>, text: &str| {
        let e = e.expect("refused");
        assert!(matches!(e, Error::Migration { .. }) && e.to_string().contains(text), "{e}");
    };
    // Ends at 2, the definition has 3.
    let short = Migration::<ProfileV1>::from_version(1).then(2, up_1_2);
    let e =
        store.view_migrated(&PROFILES_V3.with_schema_version(2), &short.clone().then(2, up_2_3));
    refused(e.err(), "must be greater");
    let wrong_end = short.then(4, up_2_3);
    refused(store.view_migrated(&PROFILES_V3, &wrong_end).err(), "ends at schema version 4");
    // Starts at 2: does not convert from the stored version 1.
    let from_2 = Migration::<ProfileV2>::from_version(2).then(3, up_2_3);
    refused(store.view_migrated(&PROFILES_V3, &from_2).err(), "converts from versions 2 only");
    // Says version 1 holds ProfileV2 values: their shapes differ.
    let misread = Migration::<ProfileV2>::from_version(1).then(3, up_2_3);
    refused(store.view_migrated(&PROFILES_V3, &misread).err(), "another shape");
    assert_eq!(store.lsn(), lsn);
    assert_eq!(info(&store)?.schema_version, 1);
    // Open at version 1 in this process: a migration would change records under it.
    let open = store.view(&PROFILES_V1)?;
    let e = store.view_migrated(&PROFILES_V3, &chain()).err();
    assert!(matches!(e, Some(Error::ViewOpen { operation: "migrate", .. })), "{e:?}");
    assert_eq!(open.get(&1).as_deref(), Some(&v1(1)));
    Ok(())
}

#[test]
fn a_backup_of_a_half_migrated_view_resumes_and_a_drop_forgets_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    write_at(&path, 1)?;
    let store = Store::open(&path)?;
    let stop_at_25 =
        Migration::<ProfileV1>::from_version(1).then(2, up_1_2).try_then(3, |p: ProfileV2| {
            if p.name == "user 25" { Err("stop") } else { Ok(up_2_3(p)) }
        });
    assert!(store.view_migrated(&PROFILES_V3, &stop_at_25.chunk_records(10)).is_err());
    let copy = dir.path().join("copy.redb");
    store.backup(&copy)?;
    store.drop_view("profiles")?;
    // Dropped with its migration row: the name opens afresh at any version.
    let fresh = store.view(&PROFILES_V2)?;
    assert!(fresh.is_empty());
    store.close()?;
    let copy = Store::open(&copy)?;
    assert!(matches!(copy.view(&PROFILES_V3), Err(Error::Migration { .. })));
    copy.view_migrated(&PROFILES_V3, &chain())?;
    check_v3(&copy)
}
