//! The async API without tokio: the futures need no runtime, so they run under a
//! `block_on` written here (a waker that unparks the thread) and under a tiny
//! single-thread executor of many tasks, also written here. Also `try_submit_or_keep`,
//! which gives a refused batch back, the writer-thread refusals of the async forms, and
//! the traits the futures promise (`Send + 'static`, `Unpin`).

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Duration;
use viewstore::{
    Batch, CloseFuture, Error, Lsn, Outcome, Store, SubmitFuture, Ticket, TrySubmitError, View,
    ViewDef, WaitForFuture, WriteFuture,
};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const NAMES: ViewDef<u64, String> = ViewDef::new("names");
const GATES: ViewDef<String, u64> = ViewDef::new("gates");
const LIMIT: Duration = Duration::from_secs(60);

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

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// A single-thread executor: tasks in a list, a woken task's index pushed on a run
/// queue, the thread parked while the queue is empty.
struct Executor {
    tasks: Vec<Option<Task>>,
    ready: Arc<Mutex<VecDeque<usize>>>,
}

struct TaskWaker {
    index: usize,
    ready: Arc<Mutex<VecDeque<usize>>>,
    thread: Thread,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.ready.lock().expect("run queue").push_back(self.index);
        self.thread.unpark();
    }
}

impl Executor {
    fn new() -> Self {
        Executor { tasks: Vec::new(), ready: Arc::new(Mutex::new(VecDeque::new())) }
    }

    fn spawn(&mut self, task: impl Future<Output = ()> + 'static) {
        self.ready.lock().expect("run queue").push_back(self.tasks.len());
        self.tasks.push(Some(Box::pin(task)));
    }

    /// Runs until every task is done.
    fn run(mut self) {
        let mut left = self.tasks.len();
        while left > 0 {
            let next = self.ready.lock().expect("run queue").pop_front();
            let Some(index) = next else {
                std::thread::park();
                continue;
            };
            let Some(task) = self.tasks[index].as_mut() else { continue };
            let waker = Waker::from(Arc::new(TaskWaker {
                index,
                ready: Arc::clone(&self.ready),
                thread: std::thread::current(),
            }));
            if task.as_mut().poll(&mut Context::from_waker(&waker)).is_ready() {
                self.tasks[index] = None;
                left -= 1;
            }
        }
    }
}

/// Holds the writer inside an `update` closure until released (or a minute passes).
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

fn keys(names: &View<u64, String>) -> BTreeSet<u64> {
    names.snapshot().iter().map(|(k, _)| k).collect()
}

#[test]
fn the_futures_are_send_static_and_unpin() {
    fn spawnable<T: Send + Unpin + 'static>() {}
    fn error<T: std::error::Error + Send + Sync + 'static>() {}
    spawnable::<SubmitFuture>();
    spawnable::<WaitForFuture>();
    spawnable::<CloseFuture>();
    spawnable::<WriteFuture>();
    spawnable::<Ticket>();
    error::<TrySubmitError>();
}

#[test]
fn threads_with_their_own_block_on_submit_through_a_small_queue() -> TestResult {
    const THREADS: u64 = 4;
    const EACH: u64 = 300;
    let dir = tempfile::tempdir()?;
    let store = Store::builder(dir.path().join("s.redb")).queue_capacity(2).open()?;
    let names = store.view(&NAMES)?;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, names) = (store.clone(), names.clone());
            std::thread::spawn(move || {
                block_on(async {
                    let mut outcomes = Vec::new();
                    for i in 0..EACH {
                        let key = t * EACH + i;
                        if i % 2 == 0 {
                            outcomes.push(names.put_async(&key, format!("name {key}"), 1).await?);
                        } else {
                            let ticket = store.submit_async(one_put(&names, key)?).await?;
                            outcomes.push(ticket.await?.outcomes[0]);
                        }
                    }
                    Ok::<_, Error>(outcomes)
                })
            })
        })
        .collect();
    for t in threads {
        let outcomes = t.join().map_err(|_| "a submitting thread panicked")??;
        assert!(outcomes.iter().all(|o| *o == Outcome::Applied));
    }
    assert_eq!(keys(&names), (0..THREADS * EACH).collect());
    // wait_for_async and close_async under the same block_on.
    block_on(store.wait_for_async(store.lsn()))?;
    block_on(store.close_async())?;
    assert!(matches!(block_on(store.wait_for_async(Lsn::new(u64::MAX))), Err(Error::Closed)));
    Ok(())
}

#[test]
fn one_thread_runs_a_thousand_waiting_submitters_and_the_task_that_frees_them() -> TestResult {
    const TASKS: u64 = 1_000;
    let dir = tempfile::tempdir()?;
    let store = Store::builder(dir.path().join("s.redb")).queue_capacity(4).open()?;
    let names = store.view(&NAMES)?;
    let (gate, release) = hold_writer(&store)?;
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let mut executor = Executor::new();
    for key in 0..TASKS {
        let (store, names, outcomes) = (store.clone(), names.clone(), Arc::clone(&outcomes));
        executor.spawn(async move {
            let result = match store.submit_async(one_put(&names, key).expect("a put")).await {
                Ok(ticket) => ticket.await.map(|r| r.outcomes[0]),
                Err(e) => Err(e),
            };
            outcomes.lock().expect("outcomes").push(result);
        });
    }
    // The releasing task runs on the same thread as the waiting submitters: it is
    // polled again and again (it wakes itself) while they wait for room, and lets the
    // writer go once all of them wait.
    {
        let store = store.clone();
        let mut release = Some(release);
        executor.spawn(std::future::poll_fn(move |cx| {
            if store.__waiting_async_submitters() == 996
                && let Some(release) = release.take()
            {
                let _ = release.send(());
                return Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }));
    }
    executor.run();
    gate.wait()?;
    let outcomes = outcomes.lock().map_err(|e| e.to_string())?;
    assert_eq!(outcomes.len(), 1_000);
    assert!(outcomes.iter().all(|o| matches!(o, Ok(Outcome::Applied))));
    assert_eq!(keys(&names), (0..TASKS).collect());
    Ok(())
}

#[test]
fn try_submit_or_keep_gives_a_refused_batch_back() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::builder(dir.path().join("s.redb")).queue_capacity(1).open()?;
    let names = store.view(&NAMES)?;
    let (gate, release) = hold_writer(&store)?;
    let queued = store.try_submit_or_keep(one_put(&names, 1)?)?;
    // Full: the same batch comes back, unchanged, and is submitted again later.
    let refused = store.try_submit_or_keep(one_put(&names, 2)?).expect_err("the queue is full");
    assert!(matches!(refused.error(), Error::Full) && refused.error().is_retryable());
    assert!(refused.to_string().contains("full"), "{refused}");
    assert!(format!("{refused:?}").contains("ops: 1"), "{refused:?}");
    let mut kept = refused.into_batch();
    assert_eq!(kept.len(), 1);
    release.send(())?;
    gate.wait()?;
    queued.wait()?;
    let ticket = loop {
        match store.try_submit_or_keep(kept) {
            Ok(ticket) => break ticket,
            Err(again) if again.error().is_retryable() => kept = again.into_batch(),
            Err(other) => return Err(other.into()),
        }
    };
    assert_eq!(ticket.wait()?.outcomes, [Outcome::Applied]);
    assert_eq!(keys(&names), BTreeSet::from([1, 2]));

    // A batch of another store's view comes back too, and `?` turns the error into
    // the crate's.
    let other_dir = tempfile::tempdir()?;
    let other = Store::open(other_dir.path().join("o.redb"))?;
    let foreign = store.try_submit_or_keep(one_put(&other.view(&NAMES)?, 3)?).expect_err("foreign");
    let (batch, error) = foreign.into_parts();
    assert!(matches!(error, Error::ForeignView { .. }));
    assert!(other.try_submit_or_keep(batch)?.wait()?.outcomes[0].is_applied());
    let as_error = || -> viewstore::Result<Ticket> {
        store.close()?;
        Ok(store.try_submit_or_keep(one_put(&names, 4)?)?)
    };
    assert!(matches!(as_error(), Err(Error::Closed)));
    // try_submit keeps its signature: the batch is dropped.
    assert!(matches!(store.try_submit(one_put(&names, 5)?), Err(Error::Closed)));
    Ok(())
}

#[test]
fn the_async_forms_refuse_to_wait_on_the_writer_thread() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let names = store.view(&NAMES)?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let inside = (store.clone(), names.clone(), Arc::clone(&seen));
    let mut batch = Batch::new();
    batch.update(&store.view(&GATES)?, &"reentry".to_owned(), 1, move |_| {
        let (store, names, seen) = &inside;
        let mut cx = Context::from_waker(Waker::noop());
        let say = |what: &str, poll: Poll<String>| {
            seen.lock().expect("seen").push(format!("{what}: {poll:?}"));
        };
        let mut submit = store.submit_async(one_put(names, 9).expect("a put"));
        say("submit", Pin::new(&mut submit).poll(&mut cx).map(|r| format!("{:?}", r.err())));
        let mut write = names.put_async(&9, "nine".into(), 1);
        say("write", Pin::new(&mut write).poll(&mut cx).map(|r| format!("{:?}", r.err())));
        let mut wait = store.wait_for_async(Lsn::new(store.lsn().get() + 1));
        say("wait", Pin::new(&mut wait).poll(&mut cx).map(|r| format!("{:?}", r.err())));
        Some(1)
    })?;
    store.submit(batch)?.wait()?;
    let seen = seen.lock().map_err(|e| e.to_string())?;
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.contains("Ready") && s.contains("WriterReentry")), "{seen:?}");
    assert!(!names.contains(&9));
    Ok(())
}

#[test]
fn a_submit_future_polled_after_it_resolved_reports_closed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let names = store.view(&NAMES)?;
    let mut submit = store.submit_async(one_put(&names, 1)?);
    let mut cx = Context::from_waker(Waker::noop());
    let ticket = match Pin::new(&mut submit).poll(&mut cx) {
        Poll::Ready(ticket) => ticket?,
        Poll::Pending => return Err("an empty queue made a submit wait".into()),
    };
    assert!(matches!(Pin::new(&mut submit).poll(&mut cx), Poll::Ready(Err(Error::Closed))));
    assert!(ticket.wait()?.outcomes[0].is_applied());
    // An empty batch needs no room: its ticket is ready at the current LSN.
    let empty = block_on(store.submit_async(Batch::new()))?;
    assert_eq!(empty.wait()?.lsn, store.lsn());
    Ok(())
}
