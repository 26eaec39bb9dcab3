//! Batches are atomic and isolated: readers see a whole group or none of it, a failing
//! batch fails alone, and the bounded queue pushes back on submitters.

use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Duration;
use viewstore::{Batch, Error, Outcome, Store, Ticket, View, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ACCOUNTS: ViewDef<u32, i64> = ViewDef::new("accounts");
const TRANSFERS: ViewDef<u64, (u32, u32, i64)> = ViewDef::new("transfers");
const COUNTERS: ViewDef<String, u64> = ViewDef::new("counters");

const N_ACCOUNTS: u32 = 16;
const TOTAL: i64 = 16_000;

/// Runs a future to completion on this thread, parking between polls.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// Hands out versions and submits under one lock, so that versions reach the writer in
/// increasing order while the waits (outside the lock) let batches share groups.
#[derive(Clone)]
struct Sequencer {
    store: Store,
    next: Arc<Mutex<u64>>,
}

impl Sequencer {
    fn submit(
        &self,
        fill: impl FnOnce(&mut Batch, u64) -> viewstore::Result<()>,
    ) -> viewstore::Result<Ticket> {
        let mut next = self.next.lock().expect("sequencer lock");
        *next += 1;
        let mut batch = Batch::new();
        fill(&mut batch, *next)?;
        self.store.submit(batch)
    }
}

/// The views of the bank test: balances, a log of transfers and a count of them.
#[derive(Clone)]
struct Bank {
    store: Store,
    accounts: View<u32, i64>,
    transfers: View<u64, (u32, u32, i64)>,
    counters: View<String, u64>,
}

impl Bank {
    /// Reads snapshots until `done`, checking on each that the views agree; returns how
    /// many reads were made and the LSNs seen.
    fn read_until(&self, done: &AtomicBool) -> (u64, BTreeSet<u64>) {
        let mut reads = 0;
        let mut lsns = BTreeSet::new();
        let mut last_lsn = 0;
        loop {
            let finished = done.load(Ordering::SeqCst);
            let snap = self.store.snapshot();
            let lsn = snap.lsn().get();
            assert!(lsn >= last_lsn, "snapshot lsn went back {last_lsn} -> {lsn}");
            last_lsn = lsn;
            lsns.insert(lsn);
            let balances = snap.view(&self.accounts).expect("a view of this store");
            let sum: i64 = balances.iter().map(|(_, b)| *b).sum();
            assert_eq!(sum, TOTAL, "money created or lost at {lsn}");
            assert_eq!(balances.len(), N_ACCOUNTS as usize);
            // The transfer log and the counter are in other views of the same groups:
            // they must agree with each other at every snapshot.
            let log = snap.view(&self.transfers).expect("a view of this store");
            let count = snap
                .view(&self.counters)
                .expect("a view of this store")
                .get_ref(&"transfers".to_owned())
                .copied();
            assert_eq!(count, Some(log.len() as u64), "views disagree at {lsn}");
            // The log replayed from the initial balances gives the balances seen.
            let mut replay = vec![TOTAL / i64::from(N_ACCOUNTS); N_ACCOUNTS as usize];
            for (_, &(from, to, amount)) in &log {
                replay[from as usize] -= amount;
                replay[to as usize] += amount;
            }
            let seen: Vec<i64> = balances.iter().map(|(_, b)| *b).collect();
            assert_eq!(seen, replay, "balances and log disagree at {lsn}");
            reads += 1;
            if finished {
                return (reads, lsns);
            }
        }
    }

    /// Makes `count` transfers between accounts picked from `seed`, each one batch.
    fn transfer(&self, seq: &Sequencer, seed: u64, count: u64) -> viewstore::Result<()> {
        for i in 0..count {
            let from = ((seed * 7 + i * 3) % u64::from(N_ACCOUNTS)) as u32;
            let to = ((seed * 5 + i * 11 + 1) % u64::from(N_ACCOUNTS)) as u32;
            if from == to {
                continue;
            }
            let amount = i64::try_from((seed + 1) * (i + 1) % 97).expect("below 97") + 1;
            let ticket = seq.submit(|b, v| {
                b.update(&self.accounts, &from, v, move |x| x.map(|x| x - amount))?;
                b.update(&self.accounts, &to, v, move |x| x.map(|x| x + amount))?;
                b.put(&self.transfers, &v, (from, to, amount), v)?;
                b.update(&self.counters, &"transfers".to_owned(), v, |n| n.map(|n| n + 1))?;
                Ok(())
            })?;
            let receipt = ticket.wait()?;
            assert!(receipt.outcomes.iter().all(|o| *o == Outcome::Applied), "{receipt:?}");
        }
        Ok(())
    }
}

#[test]
fn readers_never_see_part_of_a_group() -> TestResult {
    const WRITERS: u64 = 4;
    const TRANSFERS_PER_WRITER: u64 = 60;
    const READERS: usize = 3;

    let dir = tempfile::tempdir()?;
    let store = Store::builder(dir.path().join("atomic.redb"))
        .max_linger(Duration::from_micros(300))
        .open()?;
    let bank = Bank {
        accounts: store.view(&ACCOUNTS)?,
        transfers: store.view(&TRANSFERS)?,
        counters: store.view(&COUNTERS)?,
        store: store.clone(),
    };

    let mut init = Batch::new();
    for a in 0..N_ACCOUNTS {
        init.put(&bank.accounts, &a, TOTAL / i64::from(N_ACCOUNTS), 1)?;
    }
    init.put(&bank.counters, &"transfers".to_owned(), 0, 1)?;
    store.submit(init)?.wait()?;

    let seq = Sequencer { store: store.clone(), next: Arc::new(Mutex::new(1)) };
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (bank, done) = (bank.clone(), Arc::clone(&done));
            std::thread::spawn(move || bank.read_until(&done))
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (bank, seq) = (bank.clone(), seq.clone());
            std::thread::spawn(move || bank.transfer(&seq, w, TRANSFERS_PER_WRITER))
        })
        .collect();
    for w in writers {
        w.join().expect("writer panicked")?;
    }
    done.store(true, Ordering::SeqCst);
    let mut distinct = BTreeSet::new();
    for r in readers {
        let (reads, lsns) = r.join().expect("a reader saw a partial group");
        assert!(reads > 0);
        distinct.extend(lsns);
    }
    // The readers ran while the writers did: they saw many different states.
    assert!(distinct.len() > 2, "readers saw only {distinct:?}");

    let committed = bank.transfers.len() as u64;
    assert!(committed > WRITERS * TRANSFERS_PER_WRITER / 2);
    assert_eq!(bank.counters.get(&"transfers".to_owned()).as_deref(), Some(&committed));
    let sum: i64 = bank.accounts.snapshot().iter().map(|(_, b)| *b).sum();
    assert_eq!(sum, TOTAL);
    Ok(())
}

/// A value whose encoding fails when `poisoned` is set.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Fussy {
    n: u64,
    poisoned: bool,
}

impl Serialize for Fussy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.poisoned {
            return Err(serde::ser::Error::custom("this value refuses to be encoded"));
        }
        (self.n, self.poisoned).serialize(serializer)
    }
}

const FUSSY: ViewDef<u32, Fussy> = ViewDef::new("fussy");

/// The store (with its directory) after a group test, and each batch's result.
type GroupRun = (Store, tempfile::TempDir, Vec<viewstore::Result<viewstore::Receipt>>);

/// Submits `count` batches without waiting, so that they group, each incrementing the
/// same counter; batch `bad` also gets the operations `spoil` adds after its increment.
fn group_with_one_failure(
    spoil: impl FnOnce(&Store, &mut Batch) -> viewstore::Result<()>,
) -> Result<GroupRun, Box<dyn std::error::Error>> {
    const COUNT: u32 = 40;
    const BAD: u32 = 17;
    let dir = tempfile::tempdir()?;
    let store = Store::builder(dir.path().join("group.redb"))
        .max_linger(Duration::from_millis(50))
        .open()?;
    let counters = store.view(&COUNTERS)?;
    let accounts = store.view(&ACCOUNTS)?;
    let mut spoil = Some(spoil);
    // Every batch is built before the first is submitted, so that the submissions come
    // in one burst with no view registration between them.
    let mut batches = Vec::new();
    for i in 0..COUNT {
        let mut batch = Batch::new();
        batch.update(&counters, &"n".to_owned(), u64::from(i) + 1, |n| {
            Some(n.copied().unwrap_or(0) + 1)
        })?;
        batch.put(&accounts, &i, i64::from(i), 1)?;
        if i == BAD
            && let Some(spoil) = spoil.take()
        {
            spoil(&store, &mut batch)?;
        }
        batches.push(batch);
    }
    let tickets =
        batches.into_iter().map(|b| store.submit(b)).collect::<viewstore::Result<Vec<_>>>()?;
    let results: Vec<_> = tickets.into_iter().map(Ticket::wait).collect();

    for (i, result) in results.iter().enumerate() {
        if i == BAD as usize {
            assert!(result.is_err(), "batch {i} should fail");
        } else {
            let receipt = result.as_ref().map_err(|e| format!("batch {i}: {e}"))?;
            assert_eq!(receipt.outcomes, vec![Outcome::Applied, Outcome::Applied], "batch {i}");
        }
    }
    // The batches did share groups (or the test would prove nothing about group-mates).
    let lsns: BTreeSet<u64> =
        results.iter().filter_map(|r| r.as_ref().ok()).map(|r| r.lsn.get()).collect();
    assert!(lsns.len() < COUNT as usize - 1, "no grouping: {lsns:?}");
    // The failed batch's increment is absent; every other one, before and after it in
    // its group, is there.
    assert_eq!(
        counters.get_versioned(&"n".to_owned()).map(|(v, n)| (v, *n)),
        Some((u64::from(COUNT), u64::from(COUNT) - 1))
    );
    assert_eq!(accounts.len(), COUNT as usize - 1);
    assert!(!accounts.contains(&BAD));
    for i in (0..COUNT).filter(|&i| i != BAD) {
        assert_eq!(accounts.get(&i).as_deref(), Some(&i64::from(i)));
    }
    Ok((store, dir, results))
}

#[test]
fn a_panicking_batch_leaves_its_group_mates_committed() -> TestResult {
    let (_store, _dir, results) = group_with_one_failure(|store, batch| {
        let counters = store.view(&COUNTERS)?;
        batch.update(&counters, &"other".to_owned(), 1, |_| -> Option<u64> {
            panic!("fails its batch")
        })?;
        Ok(())
    })?;
    assert!(
        matches!(&results[17], Err(Error::UpdatePanicked { view, .. }) if view == "counters"),
        "{:?}",
        results[17]
    );
    Ok(())
}

#[test]
fn an_encode_failure_inside_update_leaves_its_group_mates_committed() -> TestResult {
    let (store, _dir, results) = group_with_one_failure(|store, batch| {
        let fussy = store.view(&FUSSY)?;
        batch.update(&fussy, &9, 1, |_| Some(Fussy { n: 1, poisoned: true }))?;
        Ok(())
    })?;
    match &results[17] {
        Err(Error::Encode { view, key, .. }) => {
            assert_eq!(view, "fussy");
            assert_eq!(key, "9");
        }
        other => panic!("expected an encode error, got {other:?}"),
    }
    let fussy = store.view(&FUSSY)?;
    assert!(fussy.is_empty());
    let ok = Fussy { n: 2, poisoned: false };
    assert_eq!(fussy.update(&9, 1, move |_| Some(ok))?, Outcome::Applied);
    assert_eq!(fussy.get(&9).map(|f| f.n), Some(2));
    Ok(())
}

/// Submits a batch whose update closure blocks the writer until the returned sender is
/// used (or dropped), and waits until the writer is inside it.
fn block_writer(store: &Store) -> Result<(Ticket, mpsc::Sender<()>), Box<dyn std::error::Error>> {
    let counters = store.view(&COUNTERS)?;
    let (release, released) = mpsc::channel::<()>();
    let (entered_tx, entered) = mpsc::channel::<()>();
    let mut batch = Batch::new();
    batch.update(&counters, &"gate".to_owned(), 1, move |_| {
        let _ = entered_tx.send(());
        let _ = released.recv();
        Some(1)
    })?;
    let ticket = store.submit(batch)?;
    entered.recv_timeout(Duration::from_secs(10))?;
    Ok((ticket, release))
}

/// Waits until `reached` holds: the state a test needs before its next step. Gives up
/// with an error after a minute instead of hanging.
fn wait_until(what: &str, reached: impl Fn() -> bool) -> TestResult {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !reached() {
        if std::time::Instant::now() > deadline {
            return Err(format!("timed out waiting until {what}").into());
        }
        std::thread::yield_now();
    }
    Ok(())
}

fn one_put(accounts: &View<u32, i64>, key: u32) -> viewstore::Result<Batch> {
    let mut batch = Batch::new();
    batch.put(accounts, &key, i64::from(key), 1)?;
    Ok(batch)
}

#[test]
fn a_full_queue_blocks_submit_and_fails_try_submit() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::builder(dir.path().join("queue.redb")).queue_capacity(1).open()?;
    let accounts = store.view(&ACCOUNTS)?;
    let (blocker, release) = block_writer(&store)?;

    // The writer is busy: one batch fits in the queue, the next does not.
    let queued = store.try_submit(one_put(&accounts, 1)?)?;
    assert!(matches!(store.try_submit(one_put(&accounts, 2)?), Err(Error::Full)));
    assert!(matches!(store.try_submit(one_put(&accounts, 3)?), Err(Error::Full)));

    // A blocking submit waits until there is room.
    let returned = Arc::new(AtomicBool::new(false));
    let submitter = {
        let (store, accounts, returned) = (store.clone(), accounts.clone(), Arc::clone(&returned));
        std::thread::spawn(move || -> viewstore::Result<viewstore::Receipt> {
            let ticket = store.submit(one_put(&accounts, 4)?)?;
            returned.store(true, Ordering::SeqCst);
            ticket.wait()
        })
    };
    // Proceeds only once the submitter is really waiting for room in the queue.
    wait_until("the submitter blocks on the full queue", || store.__blocked_submitters() == 1)?;
    assert!(!returned.load(Ordering::SeqCst), "submit returned while the queue was full");
    assert!(!queued.is_ready());

    release.send(())?;
    assert_eq!(blocker.wait()?.outcomes, vec![Outcome::Applied]);
    assert_eq!(queued.wait()?.outcomes, vec![Outcome::Applied]);
    let receipt = submitter.join().expect("submitter panicked")?;
    assert!(returned.load(Ordering::SeqCst));
    assert_eq!(receipt.outcomes, vec![Outcome::Applied]);

    // The batches refused with `Full` were dropped, the others committed.
    let keys: Vec<u32> = accounts.snapshot().iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![1, 4]);
    // With room again, try_submit succeeds.
    store.try_submit(one_put(&accounts, 5)?)?.wait()?;
    assert!(accounts.contains(&5));
    Ok(())
}

#[test]
fn try_submit_reports_full_under_a_burst_of_large_batches() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::builder(dir.path().join("burst.redb")).queue_capacity(1).open()?;
    let accounts = store.view(&ACCOUNTS)?;
    let next_key = AtomicU64::new(0);
    let large = || -> viewstore::Result<Batch> {
        let mut batch = Batch::new();
        for _ in 0..2_000 {
            let k = next_key.fetch_add(1, Ordering::Relaxed) as u32;
            batch.put(&accounts, &k, 1, 1)?;
        }
        Ok(batch)
    };
    let mut tickets = Vec::new();
    let mut full = 0;
    for _ in 0..20 {
        match store.try_submit(large()?) {
            Ok(t) => tickets.push(t),
            Err(Error::Full) => full += 1,
            Err(e) => return Err(e.into()),
        }
    }
    assert!(full > 0, "the queue of one never filled");
    let accepted = tickets.len();
    for t in tickets {
        t.wait()?;
    }
    assert_eq!(accounts.len(), accepted * 2_000);
    Ok(())
}

#[test]
fn tickets_can_be_awaited() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("await.redb"))?;
    let accounts = store.view(&ACCOUNTS)?;

    let receipt = block_on(store.submit(one_put(&accounts, 1)?)?)?;
    assert_eq!(receipt.outcomes, vec![Outcome::Applied]);
    assert_eq!(store.lsn(), receipt.lsn);
    assert!(accounts.contains(&1));

    // A ticket still pending when first polled wakes its task when the batch commits.
    let (blocker, release) = block_writer(&store)?;
    let mut pending = store.submit(one_put(&accounts, 2)?)?;
    // The future is polled while its batch is surely pending (the writer is blocked),
    // so that it must be woken by the commit, not found ready at the first poll.
    let waker = std::task::Waker::noop();
    let first_poll =
        std::pin::Pin::new(&mut pending).poll(&mut std::task::Context::from_waker(waker));
    assert!(first_poll.is_pending());
    let releaser = std::thread::spawn(move || {
        let _ = release.send(());
    });
    let receipt = block_on(async { (blocker.await, pending.await) });
    releaser.join().expect("releaser panicked");
    let (first, second) = (receipt.0?, receipt.1?);
    assert!(second.lsn >= first.lsn);
    assert_eq!(second.outcomes, vec![Outcome::Applied]);
    assert!(accounts.contains(&2));

    // A failed batch resolves its future with the error.
    let counters = store.view(&COUNTERS)?;
    let mut bad = Batch::new();
    bad.update(&counters, &"x".to_owned(), 1, |_| -> Option<u64> { panic!("awaited failure") })?;
    let result = block_on(store.submit(bad)?);
    assert!(matches!(result, Err(Error::UpdatePanicked { .. })), "{result:?}");
    Ok(())
}

#[test]
fn wait_for_makes_an_acknowledged_write_visible_on_another_thread() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("wait.redb"))?;
    let accounts = store.view(&ACCOUNTS)?;
    let (lsn_tx, lsn_rx) = mpsc::channel();
    let reader = {
        let (store, accounts) = (store.clone(), accounts.clone());
        std::thread::spawn(move || -> Option<i64> {
            let lsn: viewstore::Lsn = lsn_rx.recv().ok()?;
            store.wait_for(lsn).ok()?;
            assert!(store.lsn() >= lsn);
            accounts.get_with(&7, |b| *b)
        })
    };
    let receipt = store.submit(one_put(&accounts, 7)?)?.wait()?;
    lsn_tx.send(receipt.lsn)?;
    assert_eq!(reader.join().expect("reader panicked"), Some(7));

    // A time limit reports whether the LSN was reached.
    assert!(store.wait_for_timeout(receipt.lsn, Duration::from_millis(1))?);
    let future = viewstore::Lsn::new(receipt.lsn.get() + 1);
    assert!(!store.wait_for_timeout(future, Duration::from_millis(20))?);
    let waiter = {
        let store = store.clone();
        std::thread::spawn(move || store.wait_for_timeout(future, Duration::from_secs(10)))
    };
    store.submit(one_put(&accounts, 8)?)?.wait()?;
    assert!(waiter.join().expect("waiter panicked")?);
    Ok(())
}

#[test]
fn close_commits_what_blocked_submitters_queue() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("close-full.redb");
    let store = Store::builder(&path).queue_capacity(1).open()?;
    let accounts = store.view(&ACCOUNTS)?;
    let (blocker, release) = block_writer(&store)?;
    let queued = store.submit(one_put(&accounts, 1)?)?;
    // Two submitters wait for room in the full queue.
    let submitters: Vec<_> = [2, 3]
        .into_iter()
        .map(|key| {
            let (store, accounts) = (store.clone(), accounts.clone());
            std::thread::spawn(move || store.submit(one_put(&accounts, key)?)?.wait())
        })
        .collect();
    wait_until("both submitters block on the full queue", || store.__blocked_submitters() == 2)?;
    let closer = {
        let store = store.clone();
        std::thread::spawn(move || store.close())
    };
    // The close has reached the store before the writer moves on: the blocked
    // submitters are refused, the queued batch commits.
    wait_until("the close reaches the store", || store.__is_closed())?;
    release.send(())?;
    closer.join().expect("closer panicked")?;

    blocker.wait()?;
    queued.wait()?;
    // The submitters that were waiting for room when the store closed are refused with
    // `Closed`; the batch already queued commits. None hangs.
    let committed = vec![1];
    for s in submitters {
        let result = s.join().expect("submitter panicked");
        assert!(matches!(result, Err(Error::Closed)), "{result:?}");
    }
    let seen: Vec<u32> = accounts.snapshot().iter().map(|(k, _)| k).collect();
    assert_eq!(seen, committed);
    drop(accounts);
    drop(store);
    let store = Store::open(&path)?;
    let seen: Vec<u32> = store.view(&ACCOUNTS)?.snapshot().iter().map(|(k, _)| k).collect();
    assert_eq!(seen, committed);
    Ok(())
}

#[test]
fn a_group_of_failed_batches_writes_nothing_and_spends_no_lsn() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::builder(dir.path().join("no-lsn.redb"))
        .max_linger(Duration::from_millis(50))
        .open()?;
    let accounts = store.view(&ACCOUNTS)?;
    store.submit(one_put(&accounts, 1)?)?.wait()?;
    let lsn = store.lsn();

    let failing = |key: u32| -> viewstore::Result<Batch> {
        let mut batch = one_put(&accounts, key)?;
        batch.update(&accounts, &1, 2, |_| -> Option<i64> { panic!("every batch fails") })?;
        Ok(batch)
    };
    let tickets = [store.submit(failing(10)?)?, store.submit(failing(11)?)?];
    for ticket in tickets {
        assert!(matches!(ticket.wait(), Err(Error::UpdatePanicked { .. })));
    }
    assert_eq!(store.lsn(), lsn);
    assert_eq!(accounts.len(), 1);
    // The next committed group takes the next LSN.
    let receipt = store.submit(one_put(&accounts, 2)?)?.wait()?;
    assert_eq!(receipt.lsn.get(), lsn.get() + 1);
    let stats = store.stats();
    assert_eq!(stats.lsn, receipt.lsn);
    let counts: Vec<(String, usize)> =
        stats.views.iter().map(|v| (v.name.clone(), v.records)).collect();
    assert_eq!(counts, vec![("accounts".to_owned(), 2)]);
    Ok(())
}

#[test]
fn reads_do_not_wait_for_a_busy_writer() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("busy.redb"))?;
    let accounts = store.view(&ACCOUNTS)?;
    store.submit(one_put(&accounts, 1)?)?.wait()?;
    let lsn = store.lsn();
    let (blocker, release) = block_writer(&store)?;
    let pending = store.submit(one_put(&accounts, 2)?)?;

    // The writer is stuck inside a closure; readers on another thread still finish.
    let (done_tx, done) = mpsc::channel();
    {
        let (store, accounts) = (store.clone(), accounts.clone());
        std::thread::spawn(move || {
            let mut seen = 0;
            for _ in 0..1_000 {
                seen += usize::from(accounts.contains(&1));
                seen += usize::from(accounts.get(&2).is_some());
                let snap = store.snapshot();
                seen += snap.view(&accounts).expect("a view of this store").len();
                assert_eq!(snap.lsn(), store.stats().lsn);
            }
            let _ = done_tx.send(seen);
        });
    }
    let seen = done.recv_timeout(Duration::from_secs(10))?;
    // Key 1 in every read, key 2 in none: the pending batch is not visible.
    assert_eq!(seen, 2_000);
    assert_eq!(store.lsn(), lsn);
    assert!(!pending.is_ready());

    release.send(())?;
    blocker.wait()?;
    pending.wait()?;
    assert!(accounts.contains(&2));
    Ok(())
}
