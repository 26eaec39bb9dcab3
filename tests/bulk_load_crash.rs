//! A bulk load under the fault-injecting backend: the N-th storage call of the load
//! fails (once, or from then on) for every N the load makes; every image a crash could
//! then leave (the durable bytes, torn power losses, what the process wrote) opens with
//! the view empty, as before the load, or fully loaded with its indexes, never in
//! between; and a load that was acknowledged is in the durable image.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use viewstore::testing::{FaultBackend, FaultMode, FaultPlan, FaultTarget};
use viewstore::{IndexDef, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    email: String,
    team: u32,
}

const BY_EMAIL: IndexDef<User, String> = IndexDef::unique("by_email", |u| u.email.clone());
const BY_TEAM: IndexDef<User, u32> = IndexDef::multi("by_team", |u| u.team);
const USERS: ViewDef<u64, User> = ViewDef::new("users").with_indexes(&[&BY_EMAIL, &BY_TEAM]);
const NOTES: ViewDef<u64, String> = ViewDef::new("notes");

const LOADED: u64 = 2_000;

fn user(id: u64) -> User {
    User { email: format!("u{id}@example.com"), team: (id % 4) as u32 }
}

fn open(image: Vec<u8>) -> viewstore::Result<Store> {
    Store::builder("crash").backend(Arc::new(FaultBackend::from_image(image)) as _).open()
}

/// The records of `users` and `notes` in an image, after checking the indexes.
fn state_of(image: Vec<u8>) -> Result<(BTreeMap<u64, User>, usize), String> {
    let store = open(image).map_err(|e| format!("reopening: {e}"))?;
    let users = store.view(&USERS).map_err(|e| e.to_string())?;
    let notes = store.view(&NOTES).map_err(|e| e.to_string())?;
    if !store.verify().map_err(|e| e.to_string())?.is_ok() {
        return Err("indexes disagree with their view".into());
    }
    let records = users.range(..).into_iter().map(|(k, v)| (k, User::clone(&v))).collect();
    Ok((records, notes.len()))
}

/// A store image with `users` open and empty, and `notes` holding 40 records.
fn base_image() -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let backend = Arc::new(FaultBackend::new());
    let store = Store::builder("crash").backend(Arc::clone(&backend) as _).open()?;
    let users = store.view(&USERS)?;
    let notes = store.view(&NOTES)?;
    for id in 0..40u64 {
        notes.put(&id, format!("note {id}"), 1)?;
    }
    store.close()?;
    drop((users, notes));
    Ok(backend.written_image())
}

/// Loads `users` on a store on `backend`, arming the fault first; `Ok(true)` when the
/// load succeeded.
fn run(backend: &Arc<FaultBackend>, arm: impl FnOnce()) -> Result<bool, String> {
    let store = Store::builder("crash")
        .backend(Arc::clone(backend) as _)
        .open()
        .map_err(|e| format!("opening: {e}"))?;
    let users = store.view(&USERS).map_err(|e| e.to_string())?;
    arm();
    let result = store.bulk_load(&users, (0..LOADED).rev().map(|id| (id, 1, user(id))));
    // Readers see the whole load or none of it. A failed commit may still have reached
    // the file; the writer then reloads the view from it.
    let seen = (users.len(), users.index_count(&BY_TEAM, &1));
    let whole = (LOADED as usize, LOADED as usize / 4);
    if seen != (0, 0) && seen != whole {
        return Err(format!("readers see {seen:?} after {result:?}"));
    }
    if result.is_ok() && seen != whole {
        return Err(format!("acknowledged, readers see {seen:?}"));
    }
    let _ = store.close();
    Ok(result.is_ok())
}

#[test]
fn a_load_is_whole_or_absent_at_every_io_failure() -> TestResult {
    let base = base_image()?;
    let before = state_of(base.clone())?;
    assert_eq!((before.0.len(), before.1), (0, 40));
    let clean = Arc::new(FaultBackend::from_image(base.clone()));
    if !run(&clean, || {})? {
        return Err("the load without faults failed".into());
    }
    let after = state_of(clean.written_image())?;
    let expected: BTreeMap<u64, User> = (0..LOADED).map(|id| (id, user(id))).collect();
    assert_eq!(after, (expected, 40));
    let (mut faults, mut images) = (0u64, 0u64);
    for mode in [FaultMode::Once, FaultMode::FromThenOn] {
        for k in 0..2_000u64 {
            let backend = Arc::new(FaultBackend::from_image(base.clone()));
            let arming = Arc::clone(&backend);
            let succeeded = run(&backend, move || {
                let at = arming.counters().mutations() + k;
                arming.set_plan(Some(FaultPlan { target: FaultTarget::Any, at, mode }));
            })?;
            let hit = backend.counters().faults;
            faults += hit;
            let candidates = [
                backend.durable_image(),
                backend.power_loss_image(k + 1),
                backend.power_loss_image(k * 7919 + 3),
                backend.written_image(),
            ];
            for (i, image) in candidates.into_iter().enumerate() {
                let state = state_of(image)?;
                images += 1;
                if state != before && state != after {
                    let seen = (state.0.len(), state.1);
                    return Err(format!("{mode:?} fault {k}: in between: {seen:?}").into());
                }
                // Acknowledged means durable: the durable image (the first) has it.
                if succeeded && i == 0 && state != after {
                    return Err(format!("{mode:?} fault {k}: acknowledged, then lost").into());
                }
            }
            if hit == 0 {
                break;
            }
        }
    }
    println!("bulk load: {faults} faults injected, {images} crash images checked");
    assert!(faults > 0);
    Ok(())
}
