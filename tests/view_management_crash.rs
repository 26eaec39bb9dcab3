//! Drop, clear and rename under the fault-injecting backend: the N-th storage call
//! fails (once, or from then on) for every N the operation makes; every image a crash
//! could then leave (the durable bytes, a torn power loss, what the process wrote)
//! opens as the store before the operation or after it, never in between.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use viewstore::testing::{FaultBackend, FaultMode, FaultPlan, FaultTarget};
use viewstore::{Batch, IndexDef, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    email: String,
    team: u32,
}

const BY_EMAIL: IndexDef<User, String> = IndexDef::unique("by_email", |u| u.email.clone());
const BY_TEAM: IndexDef<User, u32> = IndexDef::multi("by_team", |u| u.team);
const USERS: ViewDef<u64, User> = ViewDef::new("users").with_indexes(&[&BY_EMAIL, &BY_TEAM]);
const MEMBERS: ViewDef<u64, User> = ViewDef::new("members").with_indexes(&[&BY_EMAIL, &BY_TEAM]);
const NOTES: ViewDef<u64, String> = ViewDef::new("notes");

/// The views of a store (name, records, tombstones, indexes), and the records of
/// `users` or `members`, whichever it holds.
type State = (Vec<(String, u64, u64, usize)>, BTreeMap<u64, User>);

fn open(image: Vec<u8>) -> viewstore::Result<Store> {
    Store::builder("crash").backend(Arc::new(FaultBackend::from_image(image)) as _).open()
}

fn state_of(image: Vec<u8>) -> Result<State, String> {
    let store = open(image).map_err(|e| format!("reopening: {e}"))?;
    let views = store.views().map_err(|e| e.to_string())?;
    let listed =
        views.iter().map(|v| (v.name.clone(), v.records, v.tombstones, v.indexes.len())).collect();
    let mut records = BTreeMap::new();
    for def in [&USERS, &MEMBERS] {
        if views.iter().any(|v| v.name == def.name()) {
            let view = store.view(def).map_err(|e| e.to_string())?;
            records.extend(view.range(..).into_iter().map(|(k, v)| (k, User::clone(&v))));
            if !store.verify().map_err(|e| e.to_string())?.is_ok() {
                return Err("indexes disagree with their view".into());
            }
        }
    }
    Ok((listed, records))
}

/// A store image with `users` (40 records, 5 tombstones) and `notes`.
fn base_image() -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let backend = Arc::new(FaultBackend::new());
    let store = Store::builder("crash").backend(Arc::clone(&backend) as _).open()?;
    let users = store.view(&USERS)?;
    let notes = store.view(&NOTES)?;
    let mut batch = Batch::new();
    for id in 0..40u64 {
        let user = User { email: format!("u{id}@example.com"), team: (id % 4) as u32 };
        batch.put(&users, &id, user, 1)?;
        batch.put(&notes, &id, format!("note {id}"), 1)?;
    }
    store.submit(batch)?.wait()?;
    for id in 0..5 {
        users.delete(&id, 2)?;
    }
    store.close()?;
    drop((users, notes));
    Ok(backend.written_image())
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Drop,
    Clear,
    Rename,
}

/// Runs `op` on a store on `backend`; `Ok(true)` when it succeeded.
fn run(op: Op, backend: &Arc<FaultBackend>, arm: impl FnOnce()) -> Result<bool, String> {
    let store = Store::builder("crash")
        .backend(Arc::clone(backend) as _)
        .open()
        .map_err(|e| format!("opening: {e}"))?;
    let users = match op {
        Op::Clear => Some(store.view(&USERS).map_err(|e| e.to_string())?),
        Op::Drop | Op::Rename => None,
    };
    arm();
    let result = match op {
        Op::Drop => store.drop_view("users"),
        Op::Clear => store.clear_view("users"),
        Op::Rename => store.rename_view("users", "members"),
    };
    if let Some(users) = &users {
        // Readers see the whole clear or none of it. A failed commit may still have
        // reached the file; the writer then reloads the cleared view from it.
        let seen = (users.len(), users.index_count(&BY_TEAM, &1));
        let fine = seen == (0, 0) || (result.is_err() && seen == (35, 9));
        if !fine {
            return Err(format!("{op:?}: readers see {seen:?} after {result:?}"));
        }
    }
    let _ = store.close();
    Ok(result.is_ok())
}

fn sweep(op: Op) -> TestResult {
    let base = base_image()?;
    let before = state_of(base.clone())?;
    let clean = Arc::new(FaultBackend::from_image(base.clone()));
    if !run(op, &clean, || {})? {
        return Err(format!("{op:?} without faults failed").into());
    }
    let after = state_of(clean.written_image())?;
    assert_ne!(before, after, "{op:?} changed nothing");
    let (mut faults, mut images) = (0u64, 0u64);
    for mode in [FaultMode::Once, FaultMode::FromThenOn] {
        for k in 0..500u64 {
            let backend = Arc::new(FaultBackend::from_image(base.clone()));
            let arming = Arc::clone(&backend);
            let succeeded = run(op, &backend, move || {
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
                    return Err(format!("{op:?} {mode:?} fault {k}: in between: {state:?}").into());
                }
                // Acknowledged means durable: the durable image (the first) has it.
                if succeeded && i == 0 && state != after {
                    return Err(
                        format!("{op:?} {mode:?} fault {k}: acknowledged, then lost").into()
                    );
                }
            }
            if hit == 0 {
                break;
            }
        }
    }
    println!("{op:?}: {faults} faults injected, {images} crash images checked");
    assert!(faults > 0);
    Ok(())
}

#[test]
fn a_drop_is_whole_or_absent_at_every_io_failure() -> TestResult {
    sweep(Op::Drop)
}

#[test]
fn a_clear_is_whole_or_absent_at_every_io_failure() -> TestResult {
    sweep(Op::Clear)
}

#[test]
fn a_rename_is_whole_or_absent_at_every_io_failure() -> TestResult {
    sweep(Op::Rename)
}
