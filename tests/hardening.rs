//! Regressions for defects found by adversarial use: a deadlock of `try_submit` against
//! `close`, two openers racing on a new path, a foreign file taken for an interrupted
//! creation, panics in user code that escaped their batch, waits from the writer thread,
//! and key types the key encoding cannot encode. Each test failed before its fix.

use serde::{Deserialize, Serialize, Serializer};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;
use viewstore::{Batch, Codec, CodecError, Error, IndexDef, Lsn, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const NUMBERS: ViewDef<u64, u64> = ViewDef::new("numbers");
/// How long any single wait in these tests may take before it counts as a hang.
const HANG: Duration = Duration::from_secs(60);

/// Runs `f` on a thread and fails if it has not returned within [`HANG`].
fn within_limit<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG).map_err(|_| format!("{what}: hung"))
}

fn one_put(view: &viewstore::View<u64, u64>, key: u64) -> viewstore::Result<Batch> {
    let mut batch = Batch::new();
    batch.put(view, &key, key, 1)?;
    Ok(batch)
}

// ---------------------------------------------------------------------------------------
// 1. `try_submit` against `close` on a full queue.

/// Three threads `try_submit` into a full queue of one while another closes the store.
/// A refused batch's completer used to take the gate's read lock (inside the read lock
/// its caller held) while `close` waited for the write lock: the rounds below hung.
/// Every `try_submit` is refused (`Full`, then `Closed`), the batch that was queued
/// commits, and nothing hangs.
#[test]
fn try_submit_racing_close_never_hangs() -> TestResult {
    let dir = tempfile::tempdir()?;
    for round in 0..200u64 {
        let path = dir.path().join(format!("race-{round}.redb"));
        let store = Store::builder(&path).queue_capacity(1).open()?;
        let numbers = store.view(&NUMBERS)?;
        // The writer is held inside a closure, and one batch fills the queue.
        let (release, released) = mpsc::channel::<()>();
        let (entered_tx, entered) = mpsc::channel::<()>();
        let mut blocker = Batch::new();
        blocker.update(&numbers, &0, 1, move |_| {
            let _ = entered_tx.send(());
            let _ = released.recv();
            Some(0)
        })?;
        let blocker = store.submit(blocker)?;
        entered.recv_timeout(HANG)?;
        let queued = store.submit(one_put(&numbers, 1)?)?;

        let start = Arc::new(Barrier::new(5));
        let submitters: Vec<_> = (0..3u64)
            .map(|t| {
                let (store, numbers, start) = (store.clone(), numbers.clone(), Arc::clone(&start));
                std::thread::spawn(move || -> Result<(), String> {
                    start.wait();
                    for i in 0..5_000 {
                        let batch =
                            one_put(&numbers, 100 + t * 10_000 + i).map_err(|e| e.to_string())?;
                        match store.try_submit(batch) {
                            Err(Error::Full) => {}
                            Err(Error::Closed) => return Ok(()),
                            other => {
                                return Err(format!("try_submit into a full queue: {other:?}"));
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        let closer = {
            let (store, start) = (store.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                store.close()
            })
        };
        start.wait();
        let submitted = within_limit("the try_submitters", move || {
            submitters.into_iter().map(std::thread::JoinHandle::join).collect::<Vec<_>>()
        })
        .map_err(|e| format!("round {round}: {e}"))?;
        for result in submitted {
            result.map_err(|_| "a submitter panicked")??;
        }
        release.send(())?;
        within_limit("the closer", move || closer.join())?.map_err(|_| "the closer panicked")??;
        blocker.wait()?;
        queued.wait()?;
        assert!(numbers.contains(&1), "round {round}: the queued batch is missing");
        assert_eq!(numbers.len(), 2, "round {round}: a refused batch committed");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 2 and 3. Two openers on a new path; a foreign file that looks like an interrupted
// creation.

/// Whether `e` is the refusal of a file that another handle holds open.
fn already_open(e: &Error) -> bool {
    matches!(e, Error::AlreadyOpen { .. })
}

/// Two threads open the same new path at once. The reset of interrupted creations
/// used to run before redb's lock and truncate the other opener's half-written file,
/// leaving a file every later open refused. Now one opener wins, the other is told the
/// file is already open, and the file opens afterwards.
#[test]
fn two_threads_opening_a_new_path_never_brick_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    for round in 0..200 {
        let path = Arc::new(dir.path().join(format!("new-{round}.redb")));
        let start = Arc::new(Barrier::new(2));
        let openers: Vec<_> = (0..2)
            .map(|_| {
                let (path, start) = (Arc::clone(&path), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    let store = Store::open(path.as_path())?;
                    store.view(&NUMBERS)?.put(&1, 1, 1)?;
                    store.close()
                })
            })
            .collect();
        let mut opened = 0;
        for opener in openers {
            match opener.join().map_err(|_| "an opener panicked")? {
                Ok(()) => opened += 1,
                Err(e) if already_open(&e) => {}
                Err(e) => return Err(format!("round {round}: {e}").into()),
            }
        }
        assert!(opened >= 1, "round {round}: neither opener succeeded");
        let store = Store::open(path.as_path()).map_err(|e| format!("round {round}: {e}"))?;
        assert_eq!(store.view(&NUMBERS)?.get_with(&1, |v| *v), Some(1));
    }
    Ok(())
}

/// A file of 16 zero bytes and some text was taken for an interrupted creation,
/// emptied and turned into a store. It is refused, and left as it was.
#[test]
fn a_foreign_file_with_a_zero_head_is_refused_untouched() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("notes.txt");
    let mut bytes = vec![0u8; 16];
    bytes.extend("a line of someone's notes\n".repeat(80).bytes().take(2048));
    std::fs::write(&path, &bytes)?;
    match Store::open(&path) {
        Err(Error::NotAStore { .. }) => {}
        other => return Err(format!("a foreign file: {other:?}").into()),
    }
    assert_eq!(std::fs::read(&path)?, bytes, "the refused file was changed");

    // Zeros of the size of an interrupted creation, with one stray byte past redb's
    // header: not what redb leaves, so refused and untouched too.
    let mut almost = vec![0u8; 72 * 1024];
    almost[60 * 1024] = 1;
    std::fs::write(&path, &almost)?;
    assert!(matches!(Store::open(&path), Err(Error::NotAStore { .. })));
    assert_eq!(std::fs::read(&path)?, almost, "the refused file was changed");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 4. Panics in user code on the writer thread.

/// A value whose `Serialize` panics once asked to.
#[derive(Debug, Clone, Deserialize)]
struct Fragile {
    panic: bool,
}

impl Serialize for Fragile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        assert!(!self.panic, "Serialize panicked on purpose");
        s.serialize_bool(self.panic)
    }
}

const FRAGILE: ViewDef<u64, Fragile> = ViewDef::new("fragile");

/// The result of an `update` closure is encoded on the writer thread, and a panic there
/// used to escape the closure's guard and poison the whole store.
#[test]
fn a_panicking_serialize_of_an_update_result_fails_only_its_batch() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("fragile.redb");
    let store = Store::open(&path)?;
    let fragile = store.view(&FRAGILE)?;
    fragile.put(&1, Fragile { panic: false }, 1)?;

    let mut bad = Batch::new();
    bad.put(&fragile, &2, Fragile { panic: false }, 1)?;
    bad.update(&fragile, &1, 2, |_| Some(Fragile { panic: true }))?;
    match store.submit(bad)?.wait() {
        Err(Error::Encode { view, source, .. }) => {
            assert_eq!(view, "fragile");
            assert!(source.to_string().contains("panicked"), "{source}");
        }
        other => return Err(format!("the failing batch: {other:?}").into()),
    }
    // Nothing of the failed batch; the store keeps writing and closes cleanly.
    assert!(!fragile.contains(&2));
    fragile.put(&3, Fragile { panic: false }, 1)?;
    store.close()?;
    drop(fragile);
    let store = Store::open(&path)?;
    let fragile = store.view(&FRAGILE)?;
    assert!(fragile.contains(&1) && fragile.contains(&3) && !fragile.contains(&2));
    Ok(())
}

/// A codec that panics on values it is told to, in both directions.
#[derive(Debug, Clone, Copy, Default)]
struct TrapCodec;

impl Codec<u64> for TrapCodec {
    fn encode(&self, value: &u64, out: &mut Vec<u8>) -> Result<(), CodecError> {
        assert!(*value != 666, "encode panicked on purpose");
        out.extend_from_slice(&value.to_le_bytes());
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<u64, CodecError> {
        let value = u64::from_le_bytes(bytes.try_into()?);
        assert!(value != 777, "decode panicked on purpose");
        Ok(value)
    }
}

const TRAPPED: ViewDef<u64, u64, TrapCodec> = ViewDef::with_codec("trapped", TrapCodec);

/// A panicking `Codec::encode` on an update's result fails its batch; a panicking
/// `Codec::decode` while a view loads fails that open with a decode error naming the
/// record, and the store keeps serving.
#[test]
fn a_panicking_codec_fails_only_its_batch_or_its_open() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("codec.redb");
    let store = Store::open(&path)?;
    let trapped = store.view(&TRAPPED)?;
    trapped.put(&1, 1, 1)?;
    let mut bad = Batch::new();
    bad.update(&trapped, &1, 2, |_| Some(666))?;
    assert!(matches!(store.submit(bad)?.wait(), Err(Error::Encode { .. })));
    // The caller's own thread gets an error too, not a panic.
    assert!(matches!(trapped.put(&2, 666, 1), Err(Error::Encode { .. })));
    trapped.put(&5, 777, 1)?;
    store.close()?;
    drop(trapped);

    let store = Store::open(&path)?;
    match store.view(&TRAPPED) {
        Err(Error::Decode { view, key, source, .. }) => {
            assert_eq!((view.as_str(), key.as_str()), ("trapped", "5"));
            assert!(source.to_string().contains("panicked"), "{source}");
        }
        other => return Err(format!("opening a view whose decode panics: {other:?}").into()),
    }
    store.view(&NUMBERS)?.put(&1, 1, 1)?;
    store.close()?;
    Ok(())
}

/// A key whose `Debug` panics: rendering it for an error message runs on the writer
/// thread. The unique violation is still reported, with the key in hex.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct ShyKey(u64);

impl std::fmt::Debug for ShyKey {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("Debug panicked on purpose")
    }
}

const BY_SHY: IndexDef<ShyKey, ShyKey> = IndexDef::unique("by_shy", ShyKey::clone);
const SHY: ViewDef<u64, ShyKey> = ViewDef::new("shy").with_indexes(&[&BY_SHY]);

#[test]
fn a_panicking_debug_of_a_key_fails_only_its_batch() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("shy.redb"))?;
    let shy = store.view(&SHY)?;
    shy.put(&1, ShyKey(9), 1)?;
    match shy.put(&2, ShyKey(9), 1) {
        Err(Error::UniqueViolation { view, index, .. }) => {
            assert_eq!((view.as_str(), index.as_str()), ("shy", "by_shy"));
        }
        other => return Err(format!("a duplicate with a panicking Debug: {other:?}").into()),
    }
    shy.put(&3, ShyKey(10), 1)?;
    store.close()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 5. Blocking calls from the writer thread.

/// Every blocking call made from inside an `update` closure returns `WriterReentry` at
/// once (`wait_for` used to block the writer for good); `close` there closes without
/// waiting.
#[test]
fn blocking_calls_from_the_writer_thread_return_writer_reentry() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("reentry.redb"))?;
    let numbers = store.view(&NUMBERS)?;
    numbers.put(&1, 1, 1)?;

    // A batch queued behind the closure's: waiting on its ticket would wait forever.
    let (later_tx, later_rx) = mpsc::channel::<viewstore::Ticket>();
    let (report_tx, report) = mpsc::channel::<(&'static str, String)>();
    let (closed_tx, closed) = mpsc::channel::<viewstore::Result<()>>();
    let (inside, numbers_inside) = (store.clone(), numbers.clone());
    let mut batch = Batch::new();
    batch.update(&numbers, &1, 2, move |v| {
        let say = |what, r: String| {
            let _ = report_tx.send((what, r));
        };
        let next = Lsn::new(inside.lsn().get() + 5);
        say("wait_for", format!("{:?}", inside.wait_for(next)));
        say("wait_for_timeout", format!("{:?}", inside.wait_for_timeout(next, HANG)));
        say("put", format!("{:?}", numbers_inside.put(&9, 9, 1)));
        say("view", format!("{:?}", inside.view(&NUMBERS).map(|_| ())));
        say("verify", format!("{:?}", inside.verify().map(|_| ())));
        say(
            "try_submit",
            format!("{:?}", one_put(&numbers_inside, 8).map(|b| inside.try_submit(b).map(|_| ()))),
        );
        if let Ok(later) = later_rx.recv_timeout(HANG) {
            say("Ticket::wait", format!("{:?}", later.wait()));
        }
        // Closing does not wait on the writer thread: the store closes once the writer
        // has committed what is queued.
        let _ = closed_tx.send(inside.close());
        v.map(|n| n + 1)
    })?;
    let first = store.submit(batch)?;
    let later = store.submit(one_put(&numbers, 7)?)?;
    later_tx.send(later)?;
    let receipt = within_limit("the closure's batch", move || first.wait())??;
    assert_eq!(receipt.outcomes.len(), 1);
    let said: Vec<(&str, String)> = report.try_iter().collect();
    assert_eq!(said.len(), 7, "{said:?}");
    for (what, result) in &said {
        assert!(result.contains("WriterReentry"), "{what} from the writer thread: {result}");
    }
    closed.recv_timeout(HANG)??;
    // The store is unharmed: the batch queued before the close commits, later writes
    // are refused, and a close from outside waits for the writer to stop.
    assert_eq!(numbers.get_with(&1, |v| *v), Some(2));
    store.wait_for(receipt.lsn)?;
    within_limit("close", move || store.close())??;
    assert!(numbers.contains(&7));
    assert!(matches!(numbers.put(&3, 3, 1), Err(Error::Closed)));
    Ok(())
}

/// A closure that owns the last store handle and drops it closes the store from the
/// writer thread: the writer finishes what is queued, then stops; nothing hangs.
#[test]
fn dropping_the_last_handle_inside_a_closure_closes_the_store() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("last.redb");
    let store = Store::open(&path)?;
    let numbers = store.view(&NUMBERS)?;
    let mut batch = Batch::new();
    let owned = (store.clone(), numbers.clone());
    batch.update(&numbers, &1, 1, move |_| {
        drop(owned);
        Some(1)
    })?;
    let ticket = store.submit(batch)?;
    drop((store, numbers));
    within_limit("the closure's batch", move || ticket.wait())??;
    // The writer released the file once it stopped.
    let reopened = within_limit("reopen", move || {
        loop {
            match Store::open(&path) {
                Ok(store) => return Ok::<_, Error>(store),
                Err(e) if already_open(&e) => std::thread::yield_now(),
                Err(e) => return Err(e),
            }
        }
    })??;
    assert_eq!(reopened.view(&NUMBERS)?.get_with(&1, |v| *v), Some(1));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Key types the key encoding cannot encode.

#[derive(Debug, Clone, PartialEq, PartialOrd, Serialize, Deserialize)]
enum Reading {
    Missing,
    Celsius(f64),
}

const FLOATS: ViewDef<f64, u64> = ViewDef::new("floats");
const READINGS: ViewDef<(u64, Reading), u64> = ViewDef::new("readings");
const MAPS: ViewDef<std::collections::BTreeMap<u8, u8>, u64> = ViewDef::new("maps");

/// A view keyed by a float, a map, or an enum with a float in one variant is refused
/// when it is opened, naming the view and the type, and nothing is recorded for it.
#[test]
fn a_key_type_the_encoding_cannot_encode_is_refused_at_open() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("keys.redb"))?;
    let refused = [
        ("floats", store.view(&FLOATS).map(|_| ())),
        ("readings", store.view(&READINGS).map(|_| ())),
        ("maps", store.view(&MAPS).map(|_| ())),
    ];
    for (name, result) in refused {
        match result {
            Err(Error::KeyEncoding { view, reason }) => {
                assert_eq!(view, name);
                assert!(reason.contains("key type"), "{reason}");
            }
            other => return Err(format!("view {name}: {other:?}").into()),
        }
    }
    assert_eq!(store.stats().views.len(), 0, "a refused view was registered");
    Ok(())
}
