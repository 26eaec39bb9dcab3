//! Versioned writes: a write applies only when it is strictly newer than what is stored
//! (live record or tombstone), so replays and out-of-order deliveries never move a view
//! backwards.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use viewstore::{Batch, Error, Outcome, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const NAMES: ViewDef<u64, String> = ViewDef::new("names");
const COUNTERS: ViewDef<String, u64> = ViewDef::new("counters");

fn open() -> Result<(tempfile::TempDir, Store), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("versioning.redb"))?;
    Ok((dir, store))
}

fn s(v: &str) -> String {
    v.to_owned()
}

#[test]
fn out_of_order_and_duplicate_deliveries_never_move_a_record_back() -> TestResult {
    let (_dir, store) = open()?;
    let names = store.view(&NAMES)?;

    assert_eq!(names.put(&1, s("v5"), 5)?, Outcome::Applied);
    // A late delivery of an older version.
    assert_eq!(names.put(&1, s("v3"), 3)?, Outcome::Stale { current: 5 });
    // A duplicate delivery of the current version is not newer either.
    assert_eq!(names.put(&1, s("v5-again"), 5)?, Outcome::Stale { current: 5 });
    assert_eq!(names.get_versioned(&1).map(|(v, s)| (v, (*s).clone())), Some((5, s("v5"))));

    assert_eq!(names.put(&1, s("v9"), 9)?, Outcome::Applied);
    assert_eq!(names.put(&1, s("v6"), 6)?, Outcome::Stale { current: 9 });
    assert_eq!(names.version(&1), Some(9));
    assert_eq!(names.get(&1).as_deref(), Some(&s("v9")));

    // Versions are per key: an old version on another key applies.
    assert_eq!(names.put(&2, s("two"), 1)?, Outcome::Applied);
    assert_eq!(names.len(), 2);
    Ok(())
}

#[test]
fn shuffled_deliveries_converge_to_the_newest_version() -> TestResult {
    let (_dir, store) = open()?;
    let names = store.view(&NAMES)?;
    // Every version of key 1 from 1 to 40, delivered in a scrambled order with repeats.
    let order: Vec<u64> = (0..80u64).map(|i| (i * 17 + 3) % 40 + 1).collect();
    let mut batch = Batch::new();
    for &v in &order {
        batch.put(&names, &1, format!("v{v}"), v)?;
    }
    let receipt = store.submit(batch)?.wait()?;
    let mut newest = 0;
    for (&v, outcome) in order.iter().zip(&receipt.outcomes) {
        if v > newest {
            assert_eq!(*outcome, Outcome::Applied, "version {v} after {newest}");
            newest = v;
        } else {
            assert_eq!(*outcome, Outcome::Stale { current: newest }, "version {v}");
        }
    }
    assert_eq!(newest, 40);
    assert_eq!(names.get_versioned(&1).map(|(v, s)| (v, (*s).clone())), Some((40, s("v40"))));
    Ok(())
}

#[test]
fn a_tombstone_rejects_older_puts_and_a_newer_put_resurrects() -> TestResult {
    let (_dir, store) = open()?;
    let names = store.view(&NAMES)?;
    names.put(&1, s("alive"), 10)?;

    // A delete older than the record is stale and changes nothing.
    assert_eq!(names.delete(&1, 7)?, Outcome::Stale { current: 10 });
    assert_eq!(names.get(&1).as_deref(), Some(&s("alive")));

    assert_eq!(names.delete(&1, 20)?, Outcome::Applied);
    assert_eq!(names.get(&1), None);
    assert!(!names.contains(&1));
    assert_eq!(names.version(&1), None);
    assert_eq!(names.len(), 0);

    // Late puts older than (or equal to) the tombstone stay rejected.
    assert_eq!(names.put(&1, s("late"), 15)?, Outcome::Stale { current: 20 });
    assert_eq!(names.put(&1, s("same"), 20)?, Outcome::Stale { current: 20 });
    assert_eq!(names.delete(&1, 20)?, Outcome::Stale { current: 20 });
    assert_eq!(names.get(&1), None);

    // A newer put brings the record back.
    assert_eq!(names.put(&1, s("back"), 21)?, Outcome::Applied);
    assert_eq!(names.get_versioned(&1).map(|(v, s)| (v, (*s).clone())), Some((21, s("back"))));
    assert_eq!(names.len(), 1);
    Ok(())
}

#[test]
fn deleting_an_absent_key_leaves_a_tombstone() -> TestResult {
    let (_dir, store) = open()?;
    let names = store.view(&NAMES)?;
    assert_eq!(names.delete(&42, 8)?, Outcome::Applied);
    assert_eq!(names.len(), 0);
    // The delete arrived before the put it follows: the put must not create the record.
    assert_eq!(names.put(&42, s("early"), 3)?, Outcome::Stale { current: 8 });
    assert_eq!(names.get(&42), None);
    assert_eq!(names.put(&42, s("later"), 9)?, Outcome::Applied);
    assert_eq!(names.get(&42).as_deref(), Some(&s("later")));
    Ok(())
}

#[test]
fn compare_and_set_checks_the_live_version() -> TestResult {
    let (_dir, store) = open()?;
    let names = store.view(&NAMES)?;

    // Expecting absence on an absent key applies.
    assert_eq!(names.compare_and_set(&1, None, 1, s("first"))?, Outcome::Applied);
    // Expecting absence on a present key conflicts and reports the live version.
    assert_eq!(
        names.compare_and_set(&1, None, 2, s("clobber"))?,
        Outcome::Conflict { current: Some(1) }
    );
    // Expecting the wrong version conflicts.
    assert_eq!(
        names.compare_and_set(&1, Some(7), 8, s("wrong"))?,
        Outcome::Conflict { current: Some(1) }
    );
    // Expecting an existing version on an absent key conflicts with `None`.
    assert_eq!(
        names.compare_and_set(&2, Some(1), 2, s("nobody"))?,
        Outcome::Conflict { current: None }
    );
    assert_eq!(names.get(&2), None);
    // The right expectation applies.
    assert_eq!(names.compare_and_set(&1, Some(1), 4, s("second"))?, Outcome::Applied);
    assert_eq!(names.get_versioned(&1).map(|(v, s)| (v, (*s).clone())), Some((4, s("second"))));
    // A matching expectation with a version that is not newer is stale.
    assert_eq!(
        names.compare_and_set(&1, Some(4), 4, s("same version"))?,
        Outcome::Stale { current: 4 }
    );
    assert_eq!(names.compare_and_set(&1, Some(4), 2, s("older"))?, Outcome::Stale { current: 4 });
    assert_eq!(names.get(&1).as_deref(), Some(&s("second")));
    Ok(())
}

#[test]
fn compare_and_set_on_a_tombstone_expects_absence_and_must_be_newer() -> TestResult {
    let (_dir, store) = open()?;
    let names = store.view(&NAMES)?;
    names.put(&1, s("x"), 5)?;
    names.delete(&1, 10)?;

    // The tombstone is not a live record: expecting its version conflicts.
    assert_eq!(
        names.compare_and_set(&1, Some(10), 11, s("a"))?,
        Outcome::Conflict { current: None }
    );
    // Expecting absence matches, but the write must still be newer than the tombstone.
    assert_eq!(names.compare_and_set(&1, None, 9, s("b"))?, Outcome::Stale { current: 10 });
    assert_eq!(names.get(&1), None);
    assert_eq!(names.compare_and_set(&1, None, 11, s("c"))?, Outcome::Applied);
    assert_eq!(names.get_versioned(&1).map(|(v, s)| (v, (*s).clone())), Some((11, s("c"))));
    Ok(())
}

#[test]
fn update_runs_on_the_current_value() -> TestResult {
    let (_dir, store) = open()?;
    let counters = store.view(&COUNTERS)?;
    let key = s("hits");

    assert_eq!(
        counters.update(&key, 1, |n| Some(n.copied().unwrap_or(100) + 1))?,
        Outcome::Applied
    );
    assert_eq!(counters.get(&key).as_deref(), Some(&101));
    assert_eq!(counters.update(&key, 2, |n| n.map(|n| n * 2))?, Outcome::Applied);
    assert_eq!(counters.get_versioned(&key).map(|(v, n)| (v, *n)), Some((2, 202)));

    // Several updates of one key in one batch each see the previous one.
    let mut batch = Batch::new();
    for v in 3..=12 {
        batch.update(&counters, &key, v, |n| n.map(|n| n + 1))?;
    }
    let receipt = store.submit(batch)?.wait()?;
    assert!(receipt.outcomes.iter().all(|o| *o == Outcome::Applied));
    assert_eq!(counters.get_versioned(&key).map(|(v, n)| (v, *n)), Some((12, 212)));
    Ok(())
}

#[test]
fn update_returning_none_is_unchanged() -> TestResult {
    let (_dir, store) = open()?;
    let counters = store.view(&COUNTERS)?;
    counters.put(&s("a"), 7, 3)?;

    assert_eq!(counters.update(&s("a"), 4, |_| None)?, Outcome::Unchanged);
    assert_eq!(counters.get_versioned(&s("a")).map(|(v, n)| (v, *n)), Some((3, 7)));

    // On an absent key, `None` leaves no record and no tombstone: an old put still applies.
    assert_eq!(counters.update(&s("b"), 50, |_| None)?, Outcome::Unchanged);
    assert!(!counters.contains(&s("b")));
    assert_eq!(counters.put(&s("b"), 1, 1)?, Outcome::Applied);
    // Nor did the unchanged update raise the version of "a".
    assert_eq!(counters.put(&s("a"), 8, 4)?, Outcome::Applied);
    Ok(())
}

#[test]
fn update_closure_is_not_run_when_stale() -> TestResult {
    let (_dir, store) = open()?;
    let counters = store.view(&COUNTERS)?;
    counters.put(&s("a"), 7, 5)?;
    counters.delete(&s("gone"), 5)?;

    for (key, version) in [(s("a"), 5), (s("a"), 4), (s("gone"), 5), (s("gone"), 1)] {
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let outcome = counters.update(&key, version, move |n| {
            flag.store(true, Ordering::SeqCst);
            n.map(|n| n + 1)
        })?;
        assert_eq!(outcome, Outcome::Stale { current: 5 }, "{key} at {version}");
        assert!(!ran.load(Ordering::SeqCst), "closure ran for {key} at {version}");
    }
    assert_eq!(counters.get(&s("a")).as_deref(), Some(&7));

    // On a tombstone, a newer update runs and sees no value.
    let seen = Arc::new(Mutex::new(Some(0)));
    let seen_in = Arc::clone(&seen);
    let outcome = counters.update(&s("gone"), 6, move |n| {
        *seen_in.lock().expect("lock") = n.copied();
        Some(1)
    })?;
    assert_eq!(outcome, Outcome::Applied);
    assert_eq!(*seen.lock().expect("lock"), None);
    assert_eq!(counters.get(&s("gone")).as_deref(), Some(&1));
    Ok(())
}

#[test]
fn concurrent_updates_in_version_order_lose_nothing() -> TestResult {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 40;
    let (_dir, store) = open()?;
    let counters = store.view(&COUNTERS)?;
    // Versions are handed out and submitted under one lock so that they reach the writer
    // in order; the waits happen outside it, so batches of many threads share groups.
    let next_version = Arc::new(Mutex::new(0u64));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (store, counters, next_version) =
                (store.clone(), counters.clone(), Arc::clone(&next_version));
            std::thread::spawn(move || -> viewstore::Result<Vec<u64>> {
                let mut lsns = Vec::new();
                for _ in 0..PER_THREAD {
                    let ticket = {
                        let mut v = next_version.lock().expect("lock");
                        *v += 1;
                        let mut batch = Batch::new();
                        batch.update(&counters, &"total".to_owned(), *v, |n| {
                            Some(n.copied().unwrap_or(0) + 1)
                        })?;
                        store.submit(batch)?
                    };
                    let receipt = ticket.wait()?;
                    assert_eq!(receipt.outcomes, vec![Outcome::Applied]);
                    lsns.push(receipt.lsn.get());
                }
                Ok(lsns)
            })
        })
        .collect();
    let mut lsns = Vec::new();
    for t in threads {
        lsns.extend(t.join().expect("updater thread panicked")?);
    }
    let total = THREADS * PER_THREAD;
    assert_eq!(counters.get_versioned(&s("total")).map(|(v, n)| (v, *n)), Some((total, total)));
    assert_eq!(lsns.len() as u64, total);
    Ok(())
}

#[test]
fn concurrent_updates_with_racing_versions_count_exactly_the_applied_ones() -> TestResult {
    const THREADS: u64 = 6;
    const PER_THREAD: u64 = 30;
    let (_dir, store) = open()?;
    let counters = store.view(&COUNTERS)?;
    let next_version = Arc::new(AtomicU64::new(1));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (counters, next_version) = (counters.clone(), Arc::clone(&next_version));
            std::thread::spawn(move || -> viewstore::Result<(u64, u64)> {
                let (mut applied, mut stale) = (0, 0);
                for _ in 0..PER_THREAD {
                    let v = next_version.fetch_add(1, Ordering::SeqCst);
                    match counters
                        .update(&"n".to_owned(), v, |n| Some(n.copied().unwrap_or(0) + 1))?
                        .outcome
                    {
                        Outcome::Applied => applied += 1,
                        Outcome::Stale { current } => {
                            assert!(current > v, "stale {v} against {current}");
                            stale += 1;
                        }
                        other => panic!("unexpected outcome {other:?}"),
                    }
                }
                Ok((applied, stale))
            })
        })
        .collect();
    let (mut applied, mut stale) = (0, 0);
    for t in threads {
        let (a, s) = t.join().expect("updater thread panicked")?;
        applied += a;
        stale += s;
    }
    let total = THREADS * PER_THREAD;
    assert_eq!(applied + stale, total);
    // Every applied update added one, none was lost; the newest version always applies.
    assert_eq!(counters.get_versioned(&s("n")).map(|(v, n)| (v, *n)), Some((total, applied)));
    Ok(())
}

#[test]
fn a_panicking_update_fails_only_its_own_batch() -> TestResult {
    let (_dir, store) = open()?;
    let (names, counters) = (store.view(&NAMES)?, store.view(&COUNTERS)?);
    counters.put(&s("boom"), 1, 1)?;

    let mut before = Batch::new();
    before.put(&names, &1, s("before"), 1)?;
    let mut failing = Batch::new();
    failing.put(&names, &2, s("never"), 1)?;
    failing.update(&counters, &s("n"), 1, |_| Some(5))?;
    failing.update(&counters, &s("boom"), 2, |_| -> Option<u64> {
        panic!("closure exploded on purpose")
    })?;
    let mut after = Batch::new();
    after.put(&names, &3, s("after"), 1)?;

    let tickets = [store.submit(before)?, store.submit(failing)?, store.submit(after)?];
    let [before, failing, after] = tickets.map(viewstore::Ticket::wait);
    assert_eq!(before?.outcomes, vec![Outcome::Applied]);
    assert_eq!(after?.outcomes, vec![Outcome::Applied]);
    match failing {
        Err(Error::UpdatePanicked { view, key, message }) => {
            assert_eq!(view, "counters");
            assert_eq!(key, "\"boom\"");
            assert!(message.contains("closure exploded on purpose"), "{message}");
        }
        other => panic!("expected UpdatePanicked, got {other:?}"),
    }
    // Nothing of the failed batch is visible, even its operations before the panic.
    assert_eq!(names.get(&2), None);
    assert_eq!(counters.get(&s("n")), None);
    assert_eq!(counters.get_versioned(&s("boom")).map(|(v, n)| (v, *n)), Some((1, 1)));
    assert_eq!(names.get(&1).as_deref(), Some(&s("before")));
    assert_eq!(names.get(&3).as_deref(), Some(&s("after")));

    // The writer keeps running, and the failed versions were never stored.
    assert_eq!(names.put(&2, s("now"), 1)?, Outcome::Applied);
    assert_eq!(counters.update(&s("boom"), 2, |n| n.map(|n| n + 1))?, Outcome::Applied);
    assert_eq!(counters.get(&s("boom")).as_deref(), Some(&2));
    Ok(())
}

#[test]
fn the_panic_error_names_view_and_key() -> TestResult {
    let (_dir, store) = open()?;
    let counters = store.view(&COUNTERS)?;
    let err = counters
        .update(&s("the-key"), 1, |_| -> Option<u64> { panic!("bad {}", 42) })
        .expect_err("the closure panics");
    let text = err.to_string();
    assert!(text.contains("counters"), "{text}");
    assert!(text.contains("the-key"), "{text}");
    assert!(text.contains("bad 42"), "{text}");
    Ok(())
}

#[test]
fn purge_removes_old_tombstones_so_older_puts_apply_again() -> TestResult {
    let (_dir, store) = open()?;
    let names = store.view(&NAMES)?;
    names.put(&1, s("live"), 2)?;
    for (key, version) in [(10, 5), (11, 10), (12, 15)] {
        assert_eq!(names.delete(&key, version)?, Outcome::Applied);
    }
    names.put(&13, s("x"), 1)?;
    names.delete(&13, 3)?;

    // Tombstones 5, 10 and 3 are below 11; 15 is not; the live record is no tombstone.
    assert_eq!(names.purge_tombstones(11)?, 3);
    assert_eq!(names.get(&1).as_deref(), Some(&s("live")));
    assert_eq!(names.len(), 1);

    // With its tombstone gone, an older put applies again.
    assert_eq!(names.put(&10, s("replayed"), 4)?, Outcome::Applied);
    assert_eq!(names.put(&11, s("replayed"), 1)?, Outcome::Applied);
    // The tombstone above the bound still rejects.
    assert_eq!(names.put(&12, s("late"), 14)?, Outcome::Stale { current: 15 });
    assert_eq!(names.len(), 3);

    // Nothing left below 11; 15 goes at a higher bound.
    assert_eq!(names.purge_tombstones(11)?, 0);
    assert_eq!(names.purge_tombstones(16)?, 1);
    assert_eq!(names.put(&12, s("late"), 14)?, Outcome::Applied);
    assert_eq!(names.len(), 4);
    Ok(())
}

#[test]
fn purge_sees_tombstones_written_earlier_in_its_batch() -> TestResult {
    let (_dir, store) = open()?;
    let names = store.view(&NAMES)?;
    names.put(&1, s("a"), 1)?;
    let mut batch = Batch::new();
    batch.delete(&names, &1, 2)?;
    batch.delete(&names, &2, 3)?;
    batch.purge_tombstones(&names, 3)?;
    batch.put(&names, &1, s("again"), 1)?;
    batch.put(&names, &2, s("blocked"), 1)?;
    let receipt = store.submit(batch)?.wait()?;
    assert_eq!(
        receipt.outcomes,
        vec![
            Outcome::Applied,
            Outcome::Applied,
            Outcome::Purged { count: 1 },
            Outcome::Applied,
            Outcome::Stale { current: 3 },
        ]
    );
    assert_eq!(names.get_versioned(&1).map(|(v, s)| (v, (*s).clone())), Some((1, s("again"))));
    assert_eq!(names.get(&2), None);
    Ok(())
}
