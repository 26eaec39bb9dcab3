//! `Store::swap_views`, the blue/green rebuild: two views' records, indexes and
//! identities exchanged in one transaction, surviving a reopen, with views of other
//! types too; the refusals (an open view, an unknown one, the same name twice) change
//! nothing.

use serde::{Deserialize, Serialize};
use std::path::Path;
use viewstore::{Batch, Error, IndexDef, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    team: u32,
}

const BY_NAME: IndexDef<Profile, String> = IndexDef::unique("by_name", |p| p.name.clone());
const BY_TEAM: IndexDef<Profile, u32> = IndexDef::multi("by_team", |p| p.team);
const LIVE: ViewDef<u64, Profile> = ViewDef::new("profiles").with_indexes(&[&BY_NAME, &BY_TEAM]);
const NEXT: ViewDef<u64, Profile> =
    ViewDef::new("profiles_next").with_indexes(&[&BY_NAME, &BY_TEAM]);
/// A view of other types, and an index only one side has.
const TEXT: ViewDef<String, String> = ViewDef::new("profiles_next");
const LIVE_AS_TEXT: ViewDef<String, String> = ViewDef::new("profiles");

fn profile(id: u64, generation: &str) -> Profile {
    Profile { name: format!("{generation} {id}"), team: (id % 3) as u32 }
}

/// `profiles` holds 10 old profiles; `profiles_next` 12 rebuilt ones.
fn fill(path: &Path) -> TestResult {
    let store = Store::open(path)?;
    let (live, next) = (store.view(&LIVE)?, store.view(&NEXT)?);
    let mut batch = Batch::new();
    for id in 0..10 {
        batch.put(&live, &id, profile(id, "old"), 1)?;
    }
    for id in 0..12 {
        batch.put(&next, &id, profile(id, "new"), 2)?;
    }
    store.submit(batch)?.wait()?;
    store.close()?;
    Ok(())
}

#[test]
fn swap_exchanges_records_and_indexes_and_survives_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    fill(&path)?;
    let lsn = {
        let store = Store::open(&path)?;
        let before = store.lsn();
        let lsn = store.swap_views("profiles", "profiles_next")?;
        assert_eq!(lsn.get(), before.get() + 1);
        let live = store.view(&LIVE)?;
        assert_eq!(live.len(), 12);
        assert_eq!(
            live.get_versioned(&11).map(|(v, p)| (v, p.name.clone())),
            Some((2, "new 11".into()))
        );
        assert_eq!(live.index_get(&BY_NAME, "new 3").map(|(k, _)| k), Some(3));
        assert_eq!(live.index_get(&BY_NAME, "old 3"), None);
        assert_eq!(live.index_count(&BY_TEAM, &0), 4);
        let next = store.view(&NEXT)?;
        assert_eq!((next.len(), next.get(&11)), (10, None));
        assert_eq!(next.index_get(&BY_NAME, "old 3").map(|(k, _)| k), Some(3));
        assert!(store.verify()?.is_ok());
        store.close()?;
        lsn
    };
    let store = Store::open(&path)?;
    assert_eq!(store.lsn(), lsn);
    assert_eq!(store.view(&LIVE)?.index_get(&BY_NAME, "new 7").map(|(k, _)| k), Some(7));
    assert_eq!(store.view(&NEXT)?.len(), 10);
    assert!(store.verify()?.is_ok());
    Ok(())
}

#[test]
fn views_of_other_types_swap_with_their_identities() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    {
        let store = Store::open(&path)?;
        store.view(&LIVE)?.put(&1, profile(1, "old"), 1)?;
        store.view(&TEXT)?.put(&"ada".to_string(), "admin".to_string(), 1)?;
        store.close()?;
    }
    let store = Store::open(&path)?;
    store.swap_views("profiles_next", "profiles")?;
    let infos = store.views()?;
    let live = infos.iter().find(|v| v.name == "profiles").ok_or("no profiles")?;
    assert_eq!((live.key_type.as_str(), live.indexes.len()), ("String", 0));
    // Each name now opens only with the other's types.
    assert!(matches!(store.view(&LIVE), Err(Error::SchemaMismatch { .. })));
    let text = store.view(&LIVE_AS_TEXT)?;
    assert_eq!(text.get(&"ada".to_string()).as_deref().map(String::as_str), Some("admin"));
    let profiles = store.view(&NEXT)?;
    assert_eq!(profiles.index_get(&BY_NAME, "old 1").map(|(k, _)| k), Some(1));
    assert!(store.verify()?.is_ok());
    Ok(())
}

#[test]
fn refusals_change_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    fill(&path)?;
    let store = Store::open(&path)?;
    let lsn = store.lsn();
    let e = store.swap_views("profiles", "nowhere").err();
    assert!(matches!(&e, Some(Error::UnknownView { view }) if view == "nowhere"), "{e:?}");
    let e = store.swap_views("nowhere", "profiles").err();
    assert!(matches!(&e, Some(Error::UnknownView { view }) if view == "nowhere"), "{e:?}");
    let e = store.swap_views("profiles", "profiles").err();
    assert!(matches!(e, Some(Error::ViewExists { .. })), "{e:?}");
    let e = store.swap_views("profiles", "bad\nname").err();
    assert!(matches!(e, Some(Error::InvalidViewName { .. })), "{e:?}");
    let next = store.view(&NEXT)?;
    let e = store.swap_views("profiles", "profiles_next").err().ok_or("swapped")?;
    assert!(matches!(e, Error::ViewOpen { operation: "swap", .. }), "{e:?}");
    assert!(e.to_string().contains("swap refuses an open view"), "{e}");
    assert_eq!(store.lsn(), lsn);
    assert_eq!(next.len(), 12);
    assert_eq!(store.view(&LIVE)?.get(&1).map(|p| p.name.clone()), Some("old 1".into()));
    assert!(store.verify()?.is_ok());
    Ok(())
}

/// A second definition of `profiles_next` with other types, for the refusal below.
const OTHER: ViewDef<u64, String> = ViewDef::new("other");

#[test]
fn open_views_of_one_definition_swap_under_their_handles() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    fill(&path)?;
    {
        let store = Store::open(&path)?;
        let (live, next) = (store.view(&LIVE)?, store.view(&NEXT)?);
        let before = live.snapshot();
        // A reader sees the old view whole or the new one whole, never a mix.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (live, stop) = (live.clone(), std::sync::Arc::clone(&stop));
            std::thread::spawn(move || -> Result<u64, String> {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let snap = live.snapshot();
                    let name = snap.get(&1).map(|p| p.name.clone()).unwrap_or_default();
                    match (snap.len(), name.as_str()) {
                        (10, "old 1") | (12, "new 1") => reads += 1,
                        other => return Err(format!("a mixed view: {other:?}")),
                    }
                }
                Ok(reads)
            })
        };
        store.swap_views("profiles", "profiles_next")?;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().map_err(|_| "the reader panicked")??;
        assert_eq!((live.len(), next.len()), (12, 10));
        assert_eq!(live.get(&11).map(|p| p.name.clone()), Some("new 11".into()));
        assert_eq!(live.index_get(&BY_NAME, "new 3").map(|(k, _)| k), Some(3));
        assert!(live.index_get(&BY_NAME, "old 3").is_none());
        assert_eq!(next.index_get(&BY_NAME, "old 3").map(|(k, _)| k), Some(3));
        assert_eq!(live.index_count(&BY_TEAM, &0), 4);
        // A snapshot taken before keeps the old records.
        assert_eq!(
            (before.len(), before.get(&1).map(|p| p.name.clone())),
            (10, Some("old 1".into()))
        );
        // Writes after the swap land in the tables under each handle's name.
        live.put(&100, profile(100, "new"), 5)?;
        next.delete(&0, 5)?;
        assert!(store.verify()?.is_ok());
        let names: Vec<String> = store.stats().views.iter().map(|v| v.name.clone()).collect();
        assert!(
            names.contains(&"profiles".to_owned()) && names.contains(&"profiles_next".to_owned())
        );
        // Open views of other definitions, or one open view, are refused.
        store.view(&OTHER)?;
        let e = store.swap_views("profiles", "other").err().ok_or("swapped other types")?;
        assert!(matches!(e, Error::ViewOpen { operation: "swap", .. }), "{e:?}");
        store.close()?;
    }
    let store = Store::open(&path)?;
    let (live, next) = (store.view(&LIVE)?, store.view(&NEXT)?);
    assert_eq!((live.len(), next.len()), (13, 9));
    assert_eq!(live.get(&100).map(|p| p.name.clone()), Some("new 100".into()));
    assert_eq!(next.get(&1).map(|p| p.name.clone()), Some("old 1".into()));
    assert!(store.verify()?.is_ok());
    Ok(())
}
