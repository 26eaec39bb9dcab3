//! A store closed (or dropped) and opened again continues where it was: records,
//! versions, tombstones and the LSN.

use std::path::Path;
use std::time::Duration;
use viewstore::{Batch, Durability, Error, Lsn, Outcome, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const USERS: ViewDef<u64, String> = ViewDef::new("users");
const FOLLOWERS: ViewDef<(u64, u64), bool> = ViewDef::new("followers");

fn s(v: &str) -> String {
    v.to_owned()
}

/// Writes a known state and returns the store's LSN.
fn fill(path: &Path) -> Result<Lsn, Box<dyn std::error::Error>> {
    let store = Store::open(path)?;
    let users = store.view(&USERS)?;
    let followers = store.view(&FOLLOWERS)?;
    users.put(&1, s("ada"), 10)?;
    users.put(&2, s("bob"), 20)?;
    users.put(&3, s("cyd"), 30)?;
    users.delete(&2, 25)?;
    users.delete(&4, 40)?;
    let mut batch = Batch::new();
    batch.put(&followers, &(1, 3), true, 1)?;
    batch.put(&followers, &(3, 1), false, 2)?;
    batch.update(&users, &3, 31, |u| u.map(|u| format!("{u}!")))?;
    store.submit(batch)?.wait()?;
    let lsn = store.lsn();
    store.close()?;
    Ok(lsn)
}

#[test]
fn records_versions_tombstones_and_lsn_survive_a_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("reopen.redb");
    let lsn = fill(&path)?;
    assert_eq!(lsn, Lsn::new(6));

    let store = Store::open(&path)?;
    assert_eq!(store.lsn(), lsn);
    // Open the views in the other order than before: they are found by name.
    let followers = store.view(&FOLLOWERS)?;
    let users = store.view(&USERS)?;

    let all: Vec<(u64, u64, String)> = users
        .snapshot()
        .iter()
        .map(|(k, v)| (k, users.version(&k).unwrap_or(0), v.clone()))
        .collect();
    assert_eq!(all, vec![(1, 10, s("ada")), (3, 31, s("cyd!"))]);
    let edges: Vec<((u64, u64), bool)> =
        followers.snapshot().iter().map(|(k, v)| (k, *v)).collect();
    assert_eq!(edges, vec![((1, 3), true), ((3, 1), false)]);

    // Versions continue: older writes are still stale.
    assert_eq!(users.put(&1, s("old"), 9)?, Outcome::Stale { current: 10 });
    // Tombstones survive: a late put is still stale, for deleted and never-live keys.
    assert_eq!(users.put(&2, s("late"), 24)?, Outcome::Stale { current: 25 });
    assert_eq!(users.put(&4, s("late"), 39)?, Outcome::Stale { current: 40 });
    assert_eq!(users.get(&2), None);
    // The LSN continues from the stored one.
    assert!(store.lsn() >= lsn);
    let before = store.lsn();
    let receipt = store.submit({
        let mut b = Batch::new();
        b.put(&users, &2, s("bob again"), 26)?;
        b
    })?;
    assert_eq!(receipt.wait()?.lsn, Lsn::new(before.get() + 1));
    assert_eq!(users.get(&2).as_deref(), Some(&s("bob again")));
    Ok(())
}

#[test]
fn the_lsn_is_monotonic_across_writes_and_reopens() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("lsn.redb");
    let mut last = Lsn::new(0);
    for round in 0..3u64 {
        let store = Store::open(&path)?;
        assert_eq!(store.lsn(), last, "round {round}");
        let users = store.view(&USERS)?;
        for i in 0..5u64 {
            let mut batch = Batch::new();
            batch.put(&users, &i, format!("r{round}"), round + 1)?;
            let receipt = store.submit(batch)?.wait()?;
            assert!(receipt.lsn > last, "{:?} after {last:?}", receipt.lsn);
            assert_eq!(store.lsn(), receipt.lsn);
            last = receipt.lsn;
        }
        let snap = store.snapshot();
        assert_eq!(snap.lsn(), last);
        store.close()?;
    }
    assert_eq!(last, Lsn::new(15));
    Ok(())
}

#[test]
fn dropping_without_close_keeps_acknowledged_writes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("drop.redb");
    {
        let store = Store::open(&path)?;
        let users = store.view(&USERS)?;
        users.put(&7, s("kept"), 3)?;
        users.delete(&8, 5)?;
        // Also a batch that is acknowledged only after the handles are gone.
        let mut batch = Batch::new();
        batch.put(&users, &9, s("queued"), 1)?;
        let ticket = store.submit(batch)?;
        drop(users);
        drop(store);
        assert_eq!(ticket.wait()?.outcomes, vec![Outcome::Applied]);
    }
    let store = Store::open(&path)?;
    assert_eq!(store.lsn(), Lsn::new(3));
    let users = store.view(&USERS)?;
    assert_eq!(users.get_versioned(&7).map(|(v, s)| (v, (*s).clone())), Some((3, s("kept"))));
    assert_eq!(users.get(&9).as_deref(), Some(&s("queued")));
    assert_eq!(users.put(&8, s("late"), 4)?, Outcome::Stale { current: 5 });
    Ok(())
}

#[test]
fn reads_keep_working_after_close_and_writes_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("closed.redb"))?;
    let users = store.view(&USERS)?;
    users.put(&1, s("ada"), 1)?;
    let mut prepared = Batch::new();
    prepared.put(&users, &2, s("bob"), 1)?;
    let lsn = store.lsn();

    store.close()?;
    // Closing again is harmless.
    store.close()?;

    assert_eq!(users.get(&1).as_deref(), Some(&s("ada")));
    assert_eq!(users.len(), 1);
    assert_eq!(store.snapshot().view(&users)?.get_ref(&1), Some(&s("ada")));
    assert_eq!(store.lsn(), lsn);

    assert!(matches!(users.put(&3, s("cyd"), 1), Err(Error::Closed)));
    assert!(matches!(users.delete(&1, 2), Err(Error::Closed)));
    assert!(matches!(store.submit(prepared), Err(Error::Closed)));
    let mut again = Batch::new();
    again.put(&users, &2, s("bob"), 1)?;
    assert!(matches!(store.try_submit(again), Err(Error::Closed)));
    assert!(matches!(store.submit(Batch::new()), Err(Error::Closed)));
    assert!(matches!(store.view(&FOLLOWERS), Err(Error::Closed)));
    assert_eq!(Error::Closed.to_string(), "the store is closed");

    // Nothing was written after close.
    assert_eq!(users.len(), 1);
    assert_eq!(store.lsn(), lsn);
    drop(users);
    drop(store);
    let store = Store::open(dir.path().join("closed.redb"))?;
    assert_eq!(store.lsn(), lsn);
    assert_eq!(store.view(&USERS)?.len(), 1);
    Ok(())
}

#[test]
fn a_purge_survives_a_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("purge.redb");
    {
        let store = Store::open(&path)?;
        let users = store.view(&USERS)?;
        users.delete(&1, 5)?;
        users.delete(&2, 50)?;
        assert_eq!(users.purge_tombstones(10)?, 1);
        store.close()?;
    }
    let store = Store::open(&path)?;
    let users = store.view(&USERS)?;
    assert_eq!(users.put(&1, s("replayed"), 2)?, Outcome::Applied);
    assert_eq!(users.put(&2, s("late"), 49)?, Outcome::Stale { current: 50 });
    assert_eq!(users.purge_tombstones(10)?, 0);
    Ok(())
}

#[test]
fn the_last_handle_dropped_by_an_update_closure_still_commits() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("last-handle.redb");
    let store = Store::open(&path)?;
    let users = store.view(&USERS)?;

    // Hold the writer inside a first batch, so that the user's handles are all gone
    // before the second batch's closure runs.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
    let mut first = Batch::new();
    first.update(&users, &1, 1, move |_| {
        let _ = entered_tx.send(());
        let _ = released.recv();
        Some(s("first"))
    })?;
    let first = store.submit(first)?;
    entered.recv_timeout(Duration::from_secs(10))?;

    // A closure that reads another view through a handle it owns: once the user's
    // handles are dropped, it holds the last one, and drops it in the writer thread.
    let captured = users.clone();
    let mut second = Batch::new();
    second.update(&users, &2, 1, move |_| Some(format!("{} users", captured.len())))?;
    let second = store.submit(second)?;
    drop(users);
    drop(store);
    release.send(())?;

    assert_eq!(first.wait()?.outcomes, vec![Outcome::Applied]);
    let second = second
        .wait_timeout(Duration::from_secs(10))
        .map_err(|_| "the writer hung dropping the store's last handle")?;
    assert_eq!(second?.outcomes, vec![Outcome::Applied]);

    // The store closed by itself; the file opens again with both writes.
    let mut reopened = None;
    for _ in 0..100 {
        match Store::open(&path) {
            Ok(store) => {
                reopened = Some(store);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let store = reopened.ok_or("the file stayed locked after the store closed")?;
    let users = store.view(&USERS)?;
    assert_eq!(users.get(&1).as_deref(), Some(&s("first")));
    assert_eq!(users.get(&2).as_deref(), Some(&s("1 users")));
    Ok(())
}

#[test]
fn periodic_durability_persists_everything_at_close_and_drop() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("periodic.redb");
    let periodic = || {
        Store::builder(&path)
            .durability(Durability::Periodic { interval: Duration::from_secs(3600) })
            .open()
    };
    {
        let store = periodic()?;
        let users = store.view(&USERS)?;
        for i in 0..20 {
            users.put(&i, format!("user {i}"), 1)?;
        }
        users.delete(&3, 2)?;
        store.close()?;
    }
    {
        // Dropped without close this time.
        let store = periodic()?;
        assert_eq!(store.lsn(), Lsn::new(21));
        let users = store.view(&USERS)?;
        assert_eq!(users.len(), 19);
        users.put(&100, s("dropped"), 1)?;
    }
    let store = Store::open(&path)?;
    assert_eq!(store.lsn(), Lsn::new(22));
    let users = store.view(&USERS)?;
    assert_eq!(users.len(), 20);
    assert_eq!(users.get(&100).as_deref(), Some(&s("dropped")));
    assert_eq!(users.put(&3, s("late"), 1)?, Outcome::Stale { current: 2 });
    Ok(())
}

#[test]
fn close_called_from_an_update_closure_commits_that_batch_and_stops() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("close-inside.redb");
    {
        let store = Store::open(&path)?;
        let users = store.view(&USERS)?;
        let captured = store.clone();
        let mut batch = Batch::new();
        batch.update(&users, &1, 1, move |_| {
            let result = captured.close();
            Some(format!("closed: {}", result.is_ok()))
        })?;
        let receipt = store
            .submit(batch)?
            .wait_timeout(Duration::from_secs(10))
            .map_err(|_| "the writer hung closing its own store")??;
        assert_eq!(receipt.outcomes, vec![Outcome::Applied]);
        assert_eq!(users.get(&1).as_deref(), Some(&s("closed: true")));
        assert!(matches!(users.put(&2, s("after"), 1), Err(Error::Closed)));
    }
    let store = Store::open(&path)?;
    let users = store.view(&USERS)?;
    assert_eq!(users.get(&1).as_deref(), Some(&s("closed: true")));
    assert_eq!(users.len(), 1);
    Ok(())
}

#[test]
fn a_store_closed_from_a_closure_while_its_queue_is_full_still_drops() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("close-full-inside.redb");
    let store = Store::builder(&path).queue_capacity(1).open()?;
    let users = store.view(&USERS)?;

    let (go_tx, go) = std::sync::mpsc::channel::<()>();
    let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
    let captured = store.clone();
    let mut closing = Batch::new();
    closing.update(&users, &1, 1, move |_| {
        let _ = entered_tx.send(());
        let _ = go.recv();
        // The queue holds the next batch: the writer cannot queue its own shutdown.
        Some(format!("closed: {}", captured.close().is_ok()))
    })?;
    let closing = store.submit(closing)?;
    entered.recv_timeout(Duration::from_secs(10))?;
    let mut queued = Batch::new();
    queued.put(&users, &2, s("queued"), 1)?;
    let queued = store.submit(queued)?;
    go_tx.send(())?;

    let wait = |t: viewstore::Ticket| {
        t.wait_timeout(Duration::from_secs(10)).map_err(|_| "a ticket never resolved")
    };
    assert_eq!(wait(closing)??.outcomes, vec![Outcome::Applied]);
    assert_eq!(wait(queued)??.outcomes, vec![Outcome::Applied]);

    // Dropping the last handles joins the writer; it must not wait forever.
    let (dropped_tx, dropped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(users);
        drop(store);
        let _ = dropped_tx.send(());
    });
    dropped.recv_timeout(Duration::from_secs(10)).map_err(|_| "dropping the store hung")?;
    let store = Store::open(&path)?;
    assert_eq!(store.view(&USERS)?.len(), 2);
    Ok(())
}

/// A view large enough to be read in two key ranges at once when it loads: every
/// record comes back, in order, with its version, and the tombstones stay out.
#[test]
fn a_large_view_loads_whole_from_two_ranges() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("large.redb");
    let total = 60_000u64;
    {
        let store = Store::open(&path)?;
        let users = store.view(&USERS)?;
        for chunk in 0..total / 10_000 {
            let mut batch = Batch::new();
            for k in chunk * 10_000..(chunk + 1) * 10_000 {
                batch.put(&users, &k, format!("user {k}"), k + 1)?;
            }
            store.submit(batch)?.wait()?;
        }
        let mut deletes = Batch::new();
        for k in (0..total).step_by(1_000) {
            deletes.delete(&users, &k, k + 2)?;
        }
        store.submit(deletes)?.wait()?;
        store.close()?;
    }
    let store = Store::open(&path)?;
    let users = store.view(&USERS)?;
    assert_eq!(users.len() as u64, total - total / 1_000);
    let snapshot = users.snapshot();
    let mut expected = (0..total).filter(|k| k % 1_000 != 0);
    for (k, v) in &snapshot {
        let want = expected.next().ok_or("more records than written")?;
        assert_eq!((k, v.as_str()), (want, format!("user {want}").as_str()));
    }
    assert!(expected.next().is_none(), "records missing after the load");
    assert_eq!(users.version(&45_678), Some(45_679));
    assert!(store.verify()?.problems.is_empty());
    Ok(())
}
