//! The async API under tokio: thousands of tasks submitting into a full queue on a
//! current-thread and on a multi-thread runtime, with no thread blocked (the one
//! thread of a current-thread runtime keeps running a timer task while they wait) and
//! no ticket lost; cancelled submits; tickets awaited in another task than the one
//! that polled them first; `wait_for_async` and `close_async`.
//!
//! The writer is held inside an `update` closure (`hold_writer`) so that the queue
//! really fills: the tests then wait for what they need to see, never for a guess of
//! time, and a watchdog lets the writer go after a minute so that a test that would
//! hang fails instead.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use viewstore::{Batch, Error, Lsn, Outcome, Store, Ticket, View, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const NAMES: ViewDef<u64, String> = ViewDef::new("names");
const GATES: ViewDef<String, u64> = ViewDef::new("gates");

/// The longest any wait may take before the test calls it a hang.
const LIMIT: Duration = Duration::from_secs(60);

/// Holds the writer inside an `update` closure until the sender is used (or dropped,
/// or a minute passes): meanwhile nothing leaves the queue. Returns the gate batch's
/// ticket and the release.
fn hold_writer(
    store: &Store,
) -> Result<(Ticket, mpsc::Sender<()>), Box<dyn std::error::Error + Send + Sync>> {
    let gates = store.view(&GATES)?;
    let (release, released) = mpsc::channel::<()>();
    let (entered_tx, entered) = mpsc::channel::<()>();
    let mut batch = Batch::new();
    batch.update(&gates, &"gate".to_owned(), 1, move |_| {
        let _ = entered_tx.send(());
        let _ = released.recv_timeout(LIMIT);
        Some(1)
    })?;
    let ticket = store.submit(batch)?;
    entered.recv_timeout(LIMIT)?;
    Ok((ticket, release))
}

fn one_put(names: &View<u64, String>, key: u64) -> viewstore::Result<Batch> {
    let mut batch = Batch::new();
    batch.put(names, &key, format!("name {key}"), 1)?;
    Ok(batch)
}

/// Keys of the committed records.
fn keys(names: &View<u64, String>) -> BTreeSet<u64> {
    names.snapshot().iter().map(|(k, _)| k).collect()
}

/// Yields to the runtime's other tasks until `reached` holds, failing after [`LIMIT`]:
/// no timing is guessed, the other tasks run until the state is there.
async fn until(what: &str, reached: impl Fn() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + LIMIT;
    while !reached() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting until {what}"));
        }
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// Spawns `tasks` submitters of one put each (every other one through
/// `View::put_async`, the others through `submit_async` and the ticket), and a timer
/// task that waits until all but `capacity` of them wait for room, then ticks ten
/// times on the timer, checking each time that they still wait, and releases the
/// writer. Returns the outcomes and the ticks.
async fn submit_into_a_full_queue(
    store: &Store,
    names: &View<u64, String>,
    tasks: u64,
    capacity: usize,
    release: mpsc::Sender<()>,
) -> Result<(Vec<Outcome>, usize), Box<dyn std::error::Error + Send + Sync>> {
    let mut set = tokio::task::JoinSet::new();
    for key in 0..tasks {
        let (store, names) = (store.clone(), names.clone());
        set.spawn(async move {
            if key % 2 == 0 {
                return names.put_async(&key, format!("name {key}"), 1).await;
            }
            let ticket = store.submit_async(one_put(&names, key)?).await?;
            let receipt = ticket.await?;
            Ok(receipt.outcomes[0])
        });
    }
    let waiting = usize::try_from(tasks)? - capacity;
    let ticker = {
        let store = store.clone();
        tokio::spawn(async move {
            until("the submitters wait for room", || store.__waiting_async_submitters() == waiting)
                .await?;
            let mut ticks = 0;
            for _ in 0..10 {
                // The timer is what is tested: it fires only if no submitter blocks
                // the runtime's one thread while the others wait for room.
                tokio::time::sleep(Duration::from_millis(1)).await;
                assert_eq!(store.__waiting_async_submitters(), waiting, "a waiter went away");
                ticks += 1;
            }
            release.send(()).map_err(|e| e.to_string())?;
            Ok::<usize, String>(ticks)
        })
    };
    let mut outcomes = Vec::new();
    while let Some(joined) = set.join_next().await {
        outcomes.push(joined??);
    }
    let ticks = ticker.await??;
    Ok((outcomes, ticks))
}

fn full_queue_on(runtime: &tokio::runtime::Runtime, tasks: u64, capacity: usize) -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::builder(dir.path().join("s.redb")).queue_capacity(capacity).open()?;
    let names = store.view(&NAMES)?;
    let (gate, release) = hold_writer(&store)?;
    let started = Instant::now();
    let (outcomes, ticks) =
        runtime.block_on(submit_into_a_full_queue(&store, &names, tasks, capacity, release))?;
    eprintln!("{tasks} submitters through a queue of {capacity}: {:?}", started.elapsed());
    assert_eq!(ticks, 10, "the timer task did not run while the submitters waited");
    assert!(gate.wait()?.outcomes[0].is_applied());
    // Every receipt accounted for, every record committed, no waiter left.
    assert_eq!(outcomes.len(), usize::try_from(tasks)?);
    assert!(outcomes.iter().all(|o| *o == Outcome::Applied), "{outcomes:?}");
    assert_eq!(keys(&names), (0..tasks).collect::<BTreeSet<_>>());
    assert_eq!(store.__waiting_async_submitters(), 0);
    store.close()?;
    Ok(())
}

#[test]
fn a_current_thread_runtime_keeps_serving_while_thousands_of_submits_wait_for_room() -> TestResult {
    // One thread runs every submitter and the timer task: a submit that blocked its
    // thread would stop the timer, and the ticks would never come.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    full_queue_on(&runtime, 3_000, 4)
}

#[test]
fn a_multi_thread_runtime_submits_thousands_through_a_full_queue() -> TestResult {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build()?;
    full_queue_on(&runtime, 5_000, 8)
}

#[test]
fn cancelled_submits_are_not_committed_and_take_no_wake_up() -> TestResult {
    const TASKS: u64 = 400;
    let dir = tempfile::tempdir()?;
    let store = Store::builder(dir.path().join("s.redb")).queue_capacity(2).open()?;
    let names = store.view(&NAMES)?;
    let (gate, release) = hold_writer(&store)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    let queued = Arc::new(Mutex::new(BTreeSet::new()));
    let (finished, aborted) = runtime.block_on(async {
        let mut handles = Vec::new();
        for key in 0..TASKS {
            let (store, names, queued) = (store.clone(), names.clone(), Arc::clone(&queued));
            handles.push(tokio::spawn(async move {
                let ticket = store.submit_async(one_put(&names, key)?).await?;
                queued.lock().expect("queued").insert(key);
                ticket.await.map(|_| key)
            }));
        }
        until("the submitters wait", || store.__waiting_async_submitters() == 398).await?;
        // Every third task is dropped while it waits (or, for the two queued, while
        // it awaits its ticket).
        let mut aborted = BTreeSet::new();
        for (key, handle) in (0..TASKS).zip(&handles) {
            if key % 3 == 0 {
                handle.abort();
                aborted.insert(key);
            }
        }
        // Nothing leaves the queue while the writer is held: `queued` is settled.
        let queued_now = queued.lock().map_err(|e| e.to_string())?.clone();
        let still_waiting = 398 - aborted.difference(&queued_now).count();
        until("the aborted tasks are gone", || store.__waiting_async_submitters() == still_waiting)
            .await?;
        release.send(())?;
        let mut finished = BTreeSet::new();
        for handle in handles {
            match handle.await {
                Ok(result) => {
                    finished.insert(result?);
                }
                Err(e) if e.is_cancelled() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((finished, aborted))
    })?;
    gate.wait()?;
    let queued = queued.lock().map_err(|e| e.to_string())?.clone();
    let expected: BTreeSet<u64> =
        (0..TASKS).filter(|k| !aborted.contains(k) || queued.contains(k)).collect();
    assert_eq!(keys(&names), expected, "committed: the tasks not aborted, and those queued first");
    assert!(finished.is_subset(&expected));
    assert_eq!(finished.len() + aborted.len(), usize::try_from(TASKS)?);
    assert_eq!(store.__waiting_async_submitters(), 0, "a cancelled submit left its waker");
    Ok(())
}

/// Counts its wake-ups.
struct Count(AtomicUsize);
impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_ticket_wakes_the_task_that_polled_it_last() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::builder(dir.path().join("s.redb")).queue_capacity(64).open()?;
    let names = store.view(&NAMES)?;
    let (gate, release) = hold_writer(&store)?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build()?;
    let first = Arc::new(Count(AtomicUsize::new(0)));
    let polled = Arc::new(AtomicUsize::new(0));
    let receipts = runtime.block_on(async {
        let mut awaiting = Vec::new();
        for key in 0..50 {
            let mut ticket = store.submit_async(one_put(&names, key)?).await?;
            // Polled first with another waker, here, while the writer is held...
            let waker = Waker::from(Arc::clone(&first));
            assert!(Pin::new(&mut ticket).poll(&mut Context::from_waker(&waker)).is_pending());
            // ...then awaited by another task, which must be the one woken.
            let (tx, rx) = tokio::sync::oneshot::channel::<Ticket>();
            let polled = Arc::clone(&polled);
            awaiting.push(tokio::spawn(async move {
                let mut ticket = rx.await.map_err(|e| e.to_string())?;
                let once = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut ticket).poll(cx)));
                if let Poll::Ready(done) = once.await {
                    return done.map_err(|e| e.to_string());
                }
                polled.fetch_add(1, Ordering::SeqCst);
                ticket.await.map_err(|e| e.to_string())
            }));
            tx.send(ticket).map_err(|_| "the awaiting task is gone")?;
        }
        until("every ticket was polled by its new task", || polled.load(Ordering::SeqCst) == 50)
            .await?;
        release.send(())?;
        let mut receipts = Vec::new();
        for task in awaiting {
            receipts.push(task.await??);
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(receipts)
    })?;
    gate.wait()?;
    assert_eq!(receipts.len(), 50);
    assert!(receipts.iter().all(|r| r.outcomes == [Outcome::Applied]));
    assert_eq!(first.0.load(Ordering::SeqCst), 0, "a replaced waker was woken");
    Ok(())
}

#[test]
fn wait_for_async_follows_publishes_and_ends_with_the_writer() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let names = store.view(&NAMES)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    runtime.block_on(async {
        // Waiters for the next ten LSNs, then ten writes (one group each, awaited).
        let start = store.lsn().get();
        let waits: Vec<_> =
            (1..=10).map(|n| tokio::spawn(store.wait_for_async(Lsn::new(start + n)))).collect();
        for key in 0..10 {
            names.put_async(&key, format!("name {key}"), 1).await?;
        }
        for wait in waits {
            wait.await??;
        }
        assert!(store.lsn() >= Lsn::new(start + 10));
        // A reached LSN is ready at once.
        store.wait_for_async(Lsn::new(start)).await?;
        // Waits given up leave nothing behind.
        let far = Lsn::new(start + 1_000);
        for _ in 0..100 {
            let timed_out =
                tokio::time::timeout(Duration::from_millis(1), store.wait_for_async(far));
            assert!(timed_out.await.is_err());
        }
        assert_eq!(store.__lsn_waiters(), 0, "abandoned waits left their wakers");
        // The writer stops before the LSN comes: the wait ends with Closed.
        let pending = tokio::spawn(store.wait_for_async(far));
        until("the wait is registered", || store.__lsn_waiters() == 1).await?;
        store.close_async().await?;
        assert!(matches!(pending.await?, Err(Error::Closed)));
        assert!(matches!(store.wait_for_async(far).await, Err(Error::Closed)));
        assert!(matches!(store.wait_for(far), Err(Error::Closed)));
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })
}

#[test]
fn close_async_waits_for_the_drain_without_blocking_the_thread() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::builder(&path).queue_capacity(4).open()?;
    let names = store.view(&NAMES)?;
    let (gate, release) = hold_writer(&store)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    let results = runtime.block_on(async {
        let submitters: Vec<_> = (0..50)
            .map(|key| tokio::spawn(names.put_async(&key, format!("name {key}"), 1)))
            .collect();
        until("the queue is full", || store.__waiting_async_submitters() == 46).await?;
        // The release comes from a task on this same thread, which runs only once this
        // task yields, inside `close_async`: a close that blocked the thread would never
        // let it run.
        let releaser = tokio::spawn(async move { release.send(()) });
        store.close_async().await?;
        releaser.await??;
        let mut results = Vec::new();
        for s in submitters {
            results.push(s.await?);
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(results)
    })?;
    gate.wait()?;
    // The four queued writes committed; the ones waiting for room were refused.
    let applied = results.iter().filter(|r| matches!(r, Ok(Outcome::Applied))).count();
    let closed = results.iter().filter(|r| matches!(r, Err(Error::Closed))).count();
    assert_eq!((applied, closed), (4, 46), "{results:?}");
    assert_eq!(keys(&names).len(), 4);
    // The writer has stopped and let go of the file, with this store's handles alive.
    let reopened = Store::open(&path)?;
    assert_eq!(reopened.view(&NAMES)?.snapshot().iter().count(), 4);
    // Awaiting again, or closing again, is immediate.
    runtime.block_on(store.close_async())?;
    store.close()?;
    Ok(())
}
