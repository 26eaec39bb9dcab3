//! The store used as an attacker or a careless user would use it: two openers of one
//! file (in one process and in two), files that are not stores, read-only files and
//! directories, oversized keys and values, `close` from many threads at once, the last
//! handle dropped under load, a full disk in both durability modes, and a snapshot held
//! across a million writes. Each test states what the store does today, precisely
//! enough to fail if it changes: the error variant, and that nothing else changed.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, RwLock, mpsc};
use std::time::{Duration, Instant};
use viewstore::testing::{FaultBackend, Rng, check_verify};
use viewstore::{
    Batch, Durability, Error, MAX_KEY_BYTES, MAX_VALUE_BYTES, Outcome, Receipt, Store, Ticket,
    View, ViewDef,
};

mod support;

use support::{
    LIMIT, NAMES, TestResult, create_names, expected_names, io_kind, name, put_now, read_names,
    redb_source, settle,
};

const OTHERS: ViewDef<u64, u64> = ViewDef::new("others");
const GATE: ViewDef<u64, u64> = ViewDef::new("gate");

// ---------------------------------------------------------------------------------
// 1. Two handles on one file in one process.

#[test]
fn a_second_open_in_the_same_process_is_refused_and_the_first_keeps_working() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::open(&path)?;
    let names = store.view(&NAMES)?;
    for i in 0..3 {
        assert_eq!(put_now(&names, &i, name(i), 1)?, Outcome::Applied);
    }
    // The same file under the same path, other options, a symlink and a hard link.
    let symlink = dir.path().join("symlink.redb");
    std::os::unix::fs::symlink(&path, &symlink)?;
    let hard_link = dir.path().join("hard-link.redb");
    fs::hard_link(&path, &hard_link)?;
    let before = fs::read(&path)?;
    let periodic = Durability::Periodic { interval: Duration::from_millis(10) };
    let attempts: [(&str, &Path, Durability); 4] = [
        ("the same path", &path, Durability::Immediate),
        ("the same path, periodic durability", &path, periodic),
        ("a symlink", &symlink, Durability::Immediate),
        ("a hard link", &hard_link, Durability::Immediate),
    ];
    for (what, attempt, durability) in attempts {
        let err = Store::builder(attempt)
            .durability(durability)
            .open()
            .map(drop)
            .expect_err("a second open of an open file must be refused");
        // The file lock refuses it, naming the path that was given.
        match &err {
            Error::AlreadyOpen { file } => assert_eq!(file, attempt, "{what}"),
            other => panic!("{what}: expected Error::AlreadyOpen, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("already open"), "{what}: {text}");
        assert!(text.contains(&attempt.display().to_string()), "{what}: {text}");
        // The refused open wrote nothing, and did not release the first one's lock.
        assert_eq!(fs::read(&path)?, before, "{what}: the refused open changed the file");
    }
    // The first handle keeps reading and writing.
    assert_eq!(put_now(&names, &3, name(3), 1)?, Outcome::Applied);
    assert_eq!(names.get(&0).as_deref(), Some(&name(0)));
    check_verify(&store)?;
    store.close()?;
    drop(names);
    // Closing released the lock: the file opens again, with every write.
    assert_eq!(read_names(&path)?, expected_names(0..4));
    Ok(())
}

// ---------------------------------------------------------------------------------
// 3. Files that are not stores.

/// Opens `path`, which must be refused; checks that its bytes did not change and that
/// the error names it. Returns the error.
fn refused_unchanged(path: &Path) -> Result<Error, Box<dyn std::error::Error>> {
    let before = fs::read(path)?;
    let err = Store::open(path).map(drop).expect_err("the file must be refused");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert_eq!(fs::read(path)?, before, "the refused file was changed: {err}");
    Ok(err)
}

fn listing(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>, std::io::Error> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let bytes = if path.is_file() { fs::read(&path)? } else { Vec::new() };
        entries.push((path, bytes));
    }
    entries.sort();
    Ok(entries)
}

#[test]
fn a_directory_is_not_a_store() -> TestResult {
    let dir = tempfile::tempdir()?;
    let target = dir.path().join("views.redb");
    fs::create_dir(&target)?;
    fs::write(target.join("inside.txt"), "untouched")?;
    let before = listing(&target)?;
    let err = Store::open(&target).map(drop).expect_err("a directory is no store");
    match &err {
        Error::NotAStore { file, reason } => {
            assert_eq!(file, &target);
            assert!(reason.contains("directory"), "{reason}");
        }
        other => panic!("expected NotAStore, got {other:?}"),
    }
    assert!(target.is_dir());
    assert_eq!(listing(&target)?, before, "the directory's contents changed");
    Ok(())
}

#[test]
fn random_bytes_are_not_a_store() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut rng = Rng::new(0x5EED_0000_AD7E_u64);
    let random: Vec<u8> = (0..64 * 1024 / 8).flat_map(|_| rng.next_u64().to_le_bytes()).collect();
    assert_eq!(random.len(), 64 * 1024);
    let path = dir.path().join("random.bin");
    fs::write(&path, &random)?;
    let err = refused_unchanged(&path)?;
    assert!(
        matches!(&err, Error::NotAStore { reason, .. } if reason == "no redb header"),
        "{err:?}"
    );
    // The same bytes behind redb's magic number get past the header check: redb itself
    // refuses them (an impossible page size), as Error::Storage(Corrupted), untouched.
    let mut disguised = b"redb\x1a\x0a\xa9\x0d\x0a".to_vec();
    disguised.extend_from_slice(&random[disguised.len()..]);
    let path = dir.path().join("disguised.redb");
    fs::write(&path, &disguised)?;
    let err = refused_unchanged(&path)?;
    assert!(matches!(redb_source(&err), Some(viewstore::redb::Error::Corrupted(_))), "{err:?}");
    Ok(())
}

/// A 4 KiB `SQLite` database: a valid 100-byte header and page 1 holding an empty
/// `sqlite_schema` table (a leaf table b-tree page with no cells).
fn sqlite_file() -> Vec<u8> {
    const PAGE: u16 = 4096;
    let mut page = vec![0u8; usize::from(PAGE)];
    page[..16].copy_from_slice(b"SQLite format 3\0");
    page[16..18].copy_from_slice(&PAGE.to_be_bytes());
    page[18] = 1; // file format write version: legacy (no WAL)
    page[19] = 1; // file format read version
    page[20] = 0; // reserved bytes per page
    page[21] = 64; // maximum embedded payload fraction
    page[22] = 32; // minimum embedded payload fraction
    page[23] = 32; // leaf payload fraction
    page[24..28].copy_from_slice(&1u32.to_be_bytes()); // file change counter
    page[28..32].copy_from_slice(&1u32.to_be_bytes()); // database size in pages
    page[44..48].copy_from_slice(&4u32.to_be_bytes()); // schema format number
    page[56..60].copy_from_slice(&1u32.to_be_bytes()); // text encoding: UTF-8
    page[92..96].copy_from_slice(&1u32.to_be_bytes()); // version-valid-for
    page[96..100].copy_from_slice(&3_045_000u32.to_be_bytes()); // SQLite 3.45.0
    page[100] = 0x0D; // a leaf table b-tree page
    page[105..107].copy_from_slice(&PAGE.to_be_bytes()); // cell content area start
    page
}

#[test]
fn a_sqlite_file_is_not_a_store() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("app.db");
    let bytes = sqlite_file();
    assert_eq!(bytes.len(), 4096);
    fs::write(&path, &bytes)?;
    let err = refused_unchanged(&path)?;
    assert!(
        matches!(&err, Error::NotAStore { reason, .. } if reason == "no redb header"),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn a_store_truncated_to_half_is_an_error_not_a_panic() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    create_names(&path, 500)?;
    let len = fs::metadata(&path)?.len();
    OpenOptions::new().write(true).open(&path)?.set_len(len / 2)?;
    // redb finds the file shorter than its recorded layout: Error::Storage, with
    // redb::Error::Corrupted as its source. The file is left as it was.
    let err = refused_unchanged(&path)?;
    assert!(matches!(&err, Error::Storage { during: "opening the database", .. }), "{err:?}");
    assert!(matches!(redb_source(&err), Some(viewstore::redb::Error::Corrupted(_))), "{err:?}");
    assert!(err.to_string().contains("truncated"), "{err}");
    Ok(())
}

#[test]
fn an_empty_file_is_initialized_as_a_new_store() -> TestResult {
    // Today a 0-byte file is taken for a store whose creation never started: it is
    // initialized in place, like a missing file.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("empty.redb");
    fs::write(&path, b"")?;
    {
        let store = Store::open(&path)?;
        assert_eq!(store.lsn().get(), 0);
        let names = store.view(&NAMES)?;
        assert!(names.is_empty());
        assert_eq!(put_now(&names, &1, name(1), 1)?, Outcome::Applied);
        store.close()?;
    }
    assert!(fs::metadata(&path)?.len() > 0);
    assert!(fs::read(&path)?.starts_with(b"redb"), "the file is not a redb file now");
    assert_eq!(read_names(&path)?, expected_names([1]));
    Ok(())
}

// ---------------------------------------------------------------------------------
// 5. Oversized values and keys.

const BLOBS: ViewDef<u64, String> = ViewDef::new("blobs");

#[test]
fn a_200_mb_value_is_refused_and_nothing_is_written() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::open(&path)?;
    let blobs = store.view(&BLOBS)?;
    assert_eq!(put_now(&blobs, &1, "small".to_owned(), 1)?, Outcome::Applied);
    let lsn = store.lsn();
    let before = fs::read(&path)?;
    let huge = "v".repeat(200_000_000);
    let check = |err: Error| match err {
        Error::ValueTooLarge { view, key, len, max, .. } => {
            assert_eq!((view.as_str(), key.as_str()), ("blobs", "2"));
            // bincode writes the length as a 5-byte varint before the bytes.
            assert_eq!(len, 200_000_005);
            assert_eq!(max, MAX_VALUE_BYTES);
        }
        other => panic!("expected ValueTooLarge, got {other:?}"),
    };
    check(blobs.put(&2, huge.clone(), 1).map(drop).expect_err("200 MB is over the limit"));
    let mut batch = Batch::new();
    check(batch.put(&blobs, &2, huge, 1).map(drop).expect_err("200 MB is over the limit"));
    assert!(batch.is_empty(), "the refused put stayed in the batch");
    // Nothing was written: no group, nothing in memory, the file unchanged.
    assert_eq!(store.lsn(), lsn);
    assert!(!blobs.contains(&2));
    assert_eq!(fs::read(&path)?, before);
    store.close()?;
    drop(blobs);
    let store = Store::open(&path)?;
    let blobs = store.view(&BLOBS)?;
    assert_eq!(store.lsn(), lsn);
    let all: Vec<(u64, String)> =
        blobs.range(..).into_iter().map(|(k, v)| (k, (*v).clone())).collect();
    assert_eq!(all, vec![(1, "small".to_owned())]);
    Ok(())
}

/// A 1 MiB value that differs for each `i`.
fn mib_value(i: u64) -> String {
    format!("{i:08}").repeat((1 << 20) / 8)
}

#[test]
fn a_hundred_and_fifty_1_mib_values_survive_a_reopen() -> TestResult {
    const VALUES: u64 = 150;
    const PER_BATCH: u64 = 50;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    {
        let store = Store::open(&path)?;
        let blobs = store.view(&BLOBS)?;
        // Three batches of 50 MiB each, queued back to back: each is larger than a
        // group's byte limit (32 MiB), so each commits whole, alone.
        let mut tickets = Vec::new();
        for first in (0..VALUES).step_by(PER_BATCH as usize) {
            let mut batch = Batch::new();
            for i in first..first + PER_BATCH {
                batch.put(&blobs, &i, mib_value(i), 1)?;
            }
            tickets.push(store.submit(batch)?);
        }
        let mut lsns = BTreeSet::new();
        for ticket in tickets {
            let receipt = settle(ticket)??;
            assert_eq!(receipt.outcomes, vec![Outcome::Applied; PER_BATCH as usize]);
            lsns.insert(receipt.lsn);
        }
        assert_eq!(lsns.len(), 3, "the three batches did not commit as three groups");
        assert_eq!(blobs.len(), VALUES as usize);
        store.close()?;
    }
    let store = Store::open(&path)?;
    let blobs = store.view(&BLOBS)?;
    assert_eq!(blobs.len(), VALUES as usize);
    for i in 0..VALUES {
        let value = blobs.get(&i).ok_or_else(|| format!("value {i} is missing"))?;
        assert!(*value == mib_value(i), "value {i} came back different");
    }
    check_verify(&store)?;
    Ok(())
}

#[test]
fn a_1_mb_key_is_refused_by_every_operation() -> TestResult {
    const KEYED: ViewDef<String, u64> = ViewDef::new("keyed");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::open(&path)?;
    let keyed = store.view(&KEYED)?;
    assert_eq!(put_now(&keyed, &"ok".to_owned(), 1, 1)?, Outcome::Applied);
    let lsn = store.lsn();
    let huge = "k".repeat(1_000_000);
    let check = |what: &str, result: viewstore::Result<()>| match result {
        Err(Error::KeyTooLarge { view, len, max }) => {
            assert_eq!(view, "keyed", "{what}");
            assert!(len >= 1_000_000, "{what}: len {len}");
            assert_eq!(max, MAX_KEY_BYTES, "{what}");
        }
        other => panic!("{what}: expected KeyTooLarge, got {other:?}"),
    };
    check("View::put", keyed.put(&huge, 2, 1).map(drop));
    check("View::delete", keyed.delete(&huge, 2).map(drop));
    check("View::compare_and_set", keyed.compare_and_set(&huge, None, 2, 2).map(drop));
    check("View::update", keyed.update(&huge, 2, |_| Some(2)).map(drop));
    let mut batch = Batch::new();
    check("Batch::put", batch.put(&keyed, &huge, 2, 1).map(drop));
    check("Batch::delete", batch.delete(&keyed, &huge, 2).map(drop));
    check("Batch::compare_and_set", batch.compare_and_set(&keyed, &huge, None, 2, 2).map(drop));
    check("Batch::update", batch.update(&keyed, &huge, 2, |_| Some(2)).map(drop));
    assert!(batch.is_empty());
    // Reads with the key find nothing, and do not fail.
    assert!(keyed.get(&huge).is_none());
    assert!(!keyed.contains(&huge));
    assert_eq!(store.lsn(), lsn, "a refused operation committed a group");
    assert_eq!(keyed.len(), 1);
    store.close()?;
    Ok(())
}

// ---------------------------------------------------------------------------------
// 6. close() from eight threads at once, with 2,000 batches queued.

/// Holds the writer inside an `update` closure until the returned sender sends (or is
/// dropped). Returns once the writer is inside.
fn block_writer(store: &Store) -> Result<(Ticket, mpsc::Sender<()>), Box<dyn std::error::Error>> {
    let gate = store.view(&GATE)?;
    let (release, released) = mpsc::channel::<()>();
    let (entered_tx, entered) = mpsc::channel::<()>();
    let mut batch = Batch::new();
    batch.update(&gate, &0, 1, move |_| {
        let _ = entered_tx.send(());
        // Bounded, so that a test that fails before releasing cannot hang the writer.
        let _ = released.recv_timeout(LIMIT);
        Some(1)
    })?;
    let ticket = store.submit(batch)?;
    entered.recv_timeout(LIMIT)?;
    Ok((ticket, release))
}

/// Batch `i`: `names[i]` and `others[i]`, so that a reopen can tell a whole batch from
/// half of one.
fn pair_batch(
    names: &View<u64, String>,
    others: &View<u64, u64>,
    i: u64,
) -> viewstore::Result<Batch> {
    let mut batch = Batch::new();
    batch.put(names, &i, name(i), 1)?;
    batch.put(others, &i, i * 3, 1)?;
    Ok(batch)
}

/// Which batches of [`pair_batch`] the store at `path` holds; fails on half a batch.
fn pairs_present(path: &Path) -> Result<BTreeSet<u64>, Box<dyn std::error::Error>> {
    let store = Store::open(path)?;
    let names = store.view(&NAMES)?;
    let others = store.view(&OTHERS)?;
    let in_names: BTreeSet<u64> = names.range(..).into_iter().map(|(k, _)| k).collect();
    let in_others: BTreeSet<u64> = others.range(..).into_iter().map(|(k, _)| k).collect();
    assert_eq!(in_names, in_others, "a batch was found in one view and not the other");
    for &i in &in_names {
        assert_eq!(names.get(&i).as_deref(), Some(&name(i)));
        assert_eq!(others.get(&i).as_deref(), Some(&(i * 3)));
    }
    store.close()?;
    Ok(in_names)
}

#[test]
fn close_from_eight_threads_with_2000_batches_queued() -> TestResult {
    const QUEUED: u64 = 2_000;
    const CLOSERS: usize = 8;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::builder(&path).queue_capacity(4_096).open()?;
    let names = store.view(&NAMES)?;
    let others = store.view(&OTHERS)?;
    let (blocker, release) = block_writer(&store)?;
    // The writer is held: every batch waits in the queue.
    let mut tickets = Vec::new();
    for i in 0..QUEUED {
        tickets.push((i, store.submit(pair_batch(&names, &others, i)?)?));
    }
    let barrier = Arc::new(Barrier::new(CLOSERS + 1));
    let (done_tx, done) = mpsc::channel();
    for n in 0..CLOSERS {
        let (store, barrier, done_tx) = (store.clone(), Arc::clone(&barrier), done_tx.clone());
        std::thread::spawn(move || {
            barrier.wait();
            let _ = done_tx.send((n, store.close()));
        });
    }
    barrier.wait();
    // Release the writer only once a close has begun: from then on the store refuses
    // submits. (An empty batch is checked against the gate without being queued.)
    let deadline = Instant::now() + LIMIT;
    loop {
        match store.submit(Batch::new()) {
            Err(Error::Closed) => break,
            Ok(_) if Instant::now() < deadline => std::thread::yield_now(),
            other => return Err(format!("waiting for close to begin: {other:?}").into()),
        }
    }
    // A batch submitted now is refused, and so never committed.
    let late = QUEUED;
    match store.submit(pair_batch(&names, &others, late)?) {
        Err(Error::Closed) => {}
        other => return Err(format!("a submit during close: {other:?}").into()),
    }
    // No close() can return while the writer is held with batches queued: close
    // commits what is queued first. (Only a defect can make this fail, never timing.)
    assert!(done.try_recv().is_err(), "a close() returned before the queued batches committed");
    release.send(())?;
    for _ in 0..CLOSERS {
        let (n, result) = done.recv_timeout(LIMIT).map_err(|_| "a close() never returned")?;
        result.map_err(|e| format!("close() on thread {n}: {e}"))?;
    }
    assert_eq!(settle(blocker)??.outcomes, vec![Outcome::Applied]);
    // Every batch queued before the close was committed by it.
    let mut acknowledged = BTreeSet::new();
    for (i, ticket) in tickets {
        let receipt = settle(ticket)?.map_err(|e| format!("batch {i} queued before close: {e}"))?;
        assert_eq!(receipt.outcomes, vec![Outcome::Applied; 2]);
        acknowledged.insert(i);
    }
    assert_eq!(acknowledged.len() as u64, QUEUED);
    assert!(matches!(store.close(), Ok(())), "a ninth close");
    drop((store, names, others));
    assert_eq!(pairs_present(&path)?, acknowledged);
    Ok(())
}

// ---------------------------------------------------------------------------------
// 7. The last handle dropped while 64 threads submit.

/// What one submitting thread saw.
struct Submitted {
    acknowledged: Vec<u64>,
    problems: Vec<String>,
}

/// Submits one-put batches through the handle in `slot` until it is gone; records the
/// keys whose tickets came back `Ok`. Takes a clone of the handle for each submit and
/// drops it before waiting, so the last handle can go while tickets are outstanding.
fn submit_until_gone(
    slot: &RwLock<Option<View<u64, String>>>,
    thread: u64,
    acks: &AtomicU64,
) -> Submitted {
    let mut out = Submitted { acknowledged: Vec::new(), problems: Vec::new() };
    for n in 0.. {
        let Some(view) = slot.read().ok().and_then(|s| s.clone()) else {
            break;
        };
        let key = thread * 1_000_000 + n;
        let mut batch = Batch::new();
        let ticket = match batch.put(&view, &key, name(key), 1) {
            Ok(_) => view.store().submit(batch),
            Err(e) => Err(e),
        };
        drop(view);
        let ticket = match ticket {
            Ok(ticket) => ticket,
            Err(e) => {
                // A thread that submits holds a handle, so the store cannot be closed
                // under it: a submit error is a defect.
                out.problems.push(format!("submit of {key}: {e}"));
                break;
            }
        };
        match settle(ticket) {
            Ok(Ok(_)) => {
                out.acknowledged.push(key);
                acks.fetch_add(1, Ordering::SeqCst);
            }
            Ok(Err(e)) => out.problems.push(format!("batch {key} accepted, then failed: {e}")),
            Err(e) => out.problems.push(format!("batch {key}: {e}")),
        }
    }
    out
}

#[test]
fn dropping_the_last_handle_while_64_threads_submit() -> TestResult {
    const THREADS: u64 = 64;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::open(&path)?;
    let names = store.view(&NAMES)?;
    drop(store);
    // The only handles: the view in the slot, and the clones the threads take from it
    // for the duration of one submit.
    let slot = Arc::new(RwLock::new(Some(names)));
    let acks = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(THREADS as usize + 1));
    let (done_tx, done) = mpsc::channel();
    for t in 0..THREADS {
        let (slot, acks, barrier) = (Arc::clone(&slot), Arc::clone(&acks), Arc::clone(&barrier));
        let done_tx = done_tx.clone();
        std::thread::spawn(move || {
            barrier.wait();
            let _ = done_tx.send(submit_until_gone(&slot, t, &acks));
        });
    }
    barrier.wait();
    // Let the threads get going, then drop the handle: whichever thread lets go of the
    // last clone runs the store's shutdown, with other tickets still outstanding.
    let deadline = Instant::now() + LIMIT;
    while acks.load(Ordering::SeqCst) < 1_000 {
        assert!(Instant::now() < deadline, "the submitters made no progress");
        std::thread::yield_now();
    }
    let taken = slot.write().map_err(|_| "slot lock poisoned")?.take();
    drop(taken);
    let mut acknowledged = BTreeSet::new();
    let mut problems = Vec::new();
    for _ in 0..THREADS {
        let submitted = done.recv_timeout(LIMIT).map_err(|_| "a submitter never finished")?;
        acknowledged.extend(submitted.acknowledged);
        problems.extend(submitted.problems);
    }
    assert!(problems.is_empty(), "{} problems, first: {:?}", problems.len(), problems.first());
    // The handle is gone, so the file is free again: every acknowledged key is there,
    // and nothing else (every accepted batch was acknowledged).
    let store = Store::open(&path)?;
    let names = store.view(&NAMES)?;
    let present: BTreeSet<u64> = names.range(..).into_iter().map(|(k, _)| k).collect();
    let lost: Vec<_> = acknowledged.difference(&present).collect();
    assert!(lost.is_empty(), "{} acknowledged keys lost, e.g. {:?}", lost.len(), lost.first());
    assert_eq!(present, acknowledged);
    Ok(())
}

// ---------------------------------------------------------------------------------
// 8. A full disk, in both durability modes.

fn open_on(backend: &Arc<FaultBackend>, durability: Durability) -> viewstore::Result<Store> {
    Store::builder("in-memory").backend(Arc::clone(backend) as _).durability(durability).open()
}

/// Fills the disk (the backend cannot grow) and submits three batches of one 200 kB put
/// each, back to back; checks that each fails with a disk-full `Error::Storage` and
/// that memory is unchanged. Returns the results after the first.
fn fail_on_full_disk(
    store: &Store,
    backend: &FaultBackend,
    names: &View<u64, String>,
    keys: [u64; 3],
) -> Result<Vec<viewstore::Result<Receipt>>, Box<dyn std::error::Error>> {
    let (lsn, len) = (store.lsn(), names.len());
    backend.set_capacity(Some(backend.written_image().len() as u64));
    let big = "x".repeat(200_000);
    // Submitted back to back, so that they may share a group or not.
    let mut submitted = Vec::new();
    for key in keys {
        let mut batch = Batch::new();
        batch.put(names, &key, big.clone(), 1)?;
        submitted.push(store.submit(batch));
    }
    let mut results = Vec::new();
    for submit in submitted {
        results.push(match submit {
            Ok(ticket) => settle(ticket)?,
            Err(e) => Err(e),
        });
    }
    let first = results.remove(0);
    match &first {
        Err(e @ Error::Storage { .. }) => {
            assert_eq!(io_kind(e), Some(std::io::ErrorKind::StorageFull), "{e:?}");
        }
        other => panic!("the first write on a full disk: {other:?}"),
    }
    assert_eq!(store.lsn(), lsn, "a failed group was published");
    assert_eq!(names.len(), len);
    assert!(keys.iter().all(|k| !names.contains(k)), "a failed write is visible");
    Ok(results)
}

/// Puts one record through a submit whose wait is bounded.
fn put_bounded(
    store: &Store,
    names: &View<u64, String>,
    key: u64,
) -> Result<viewstore::Result<Receipt>, Box<dyn std::error::Error>> {
    let mut batch = Batch::new();
    batch.put(names, &key, name(key), 1)?;
    Ok(match store.submit(batch) {
        Ok(ticket) => settle(ticket)?,
        Err(e) => Err(e),
    })
}

fn all_names(names: &View<u64, String>) -> Vec<(u64, String)> {
    names.range(..).into_iter().map(|(k, v)| (k, (*v).clone())).collect()
}

fn is_storage_full(result: &viewstore::Result<Receipt>) -> bool {
    matches!(result, Err(e @ Error::Storage { .. })
        if io_kind(e) == Some(std::io::ErrorKind::StorageFull))
}

#[test]
fn a_full_disk_with_immediate_durability_fails_writes_until_space_returns() -> TestResult {
    let backend = Arc::new(FaultBackend::new());
    {
        let store = open_on(&backend, Durability::Immediate)?;
        let names = store.view(&NAMES)?;
        for i in 0..10 {
            put_bounded(&store, &names, i)??;
        }
        // Every write fails while the disk is full, and the store stays writable: each
        // failed commit reopens the file, which is at the acknowledged LSN.
        for keys in [[100, 101, 102], [103, 104, 105]] {
            for result in fail_on_full_disk(&store, &backend, &names, keys)? {
                assert!(is_storage_full(&result), "a later write on a full disk: {result:?}");
            }
        }
        assert_eq!(all_names(&names), expected_names(0..10));
        backend.set_capacity(None);
        for i in 10..20 {
            let receipt = put_bounded(&store, &names, i)?
                .map_err(|e| format!("put {i} after space returned: {e}"))?;
            assert_eq!(receipt.outcomes, vec![Outcome::Applied]);
        }
        check_verify(&store)?;
        store.close()?;
    }
    let store = open_on(&backend, Durability::Immediate)?;
    let names = store.view(&NAMES)?;
    assert_eq!(all_names(&names), expected_names(0..20), "after a reopen");
    Ok(())
}

#[test]
fn a_full_disk_with_periodic_durability_poisons_only_when_acknowledged_writes_are_unsynced()
-> TestResult {
    // An interval no run reaches: only close() syncs, so what is durable when the disk
    // fills is decided by the test, not by timing.
    let periodic = Durability::Periodic { interval: Duration::from_secs(3_600) };
    let backend = Arc::new(FaultBackend::new());
    let durable_lsn = {
        let store = open_on(&backend, periodic)?;
        let names = store.view(&NAMES)?;
        for i in 0..10 {
            put_bounded(&store, &names, i)??;
        }
        store.close()?;
        store.lsn()
    };
    let store = open_on(&backend, periodic)?;
    let names = store.view(&NAMES)?;
    // Everything acknowledged is durable: a failed commit's reopen finds the file at the
    // acknowledged LSN, and the store goes on as in immediate mode.
    for result in fail_on_full_disk(&store, &backend, &names, [100, 101, 102])? {
        assert!(is_storage_full(&result), "a later write on a full disk: {result:?}");
    }
    backend.set_capacity(None);
    for i in 10..20 {
        put_bounded(&store, &names, i)?
            .map_err(|e| format!("put {i} after space returned: {e}"))?;
    }
    // Now groups 11 to 20 are acknowledged but not synced. The next failed commit loses
    // them on disk (redb drops non-durable commits with the failed database), the
    // reopened file is behind what was acknowledged, and the store turns read-only:
    // Error::Poisoned, as the README documents for periodic durability.
    for result in fail_on_full_disk(&store, &backend, &names, [103, 104, 105])? {
        match &result {
            Err(Error::Poisoned { reason, .. }) => {
                assert!(reason.contains("not yet durable"), "{reason}");
            }
            other => assert!(is_storage_full(other), "after the failed commit: {other:?}"),
        }
    }
    backend.set_capacity(None);
    match put_bounded(&store, &names, 20)? {
        Err(Error::Poisoned { reason, .. }) => assert!(reason.contains("not yet durable")),
        other => panic!("a write once the disk has room again: {other:?}"),
    }
    // Reads are still served, from memory, with every acknowledged write.
    assert_eq!(all_names(&names), expected_names(0..20));
    assert!(matches!(store.close(), Err(Error::Poisoned { .. })));
    drop((store, names));
    // The file holds the last synced state: the writes acknowledged since are lost,
    // whole groups, and the store is writable again.
    let store = open_on(&backend, periodic)?;
    let names = store.view(&NAMES)?;
    assert_eq!(store.lsn(), durable_lsn);
    assert_eq!(all_names(&names), expected_names(0..10));
    put_bounded(&store, &names, 10)??;
    store.close()?;
    Ok(())
}

// ---------------------------------------------------------------------------------
// 9. A snapshot held across a million writes.

#[test]
fn a_snapshot_held_across_a_million_writes() -> TestResult {
    const COUNTS: ViewDef<u64, u64> = ViewDef::new("counts");
    const KEYS: u64 = 10_000;
    const ROUNDS: u64 = 100;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let counts = store.view(&COUNTS)?;
    let mut batch = Batch::new();
    for k in 0..KEYS {
        batch.put(&counts, &k, k, 1)?;
    }
    let first = settle(store.submit(batch)?)??;
    let snapshot = store.snapshot();
    assert_eq!(snapshot.lsn(), first.lsn);
    let pinned = snapshot.view(&counts)?;
    // An iterator half consumed before the writes, finished after them.
    let mut iter = pinned.iter();
    for k in 0..KEYS / 2 {
        assert_eq!(iter.next().map(|(key, v)| (key, *v)), Some((k, k)));
    }
    // 1,000,000 writes: round r sets every key to r * 1,000,000 + k at version r + 1,
    // every round one batch, all queued before any is waited for.
    let value = |round: u64, k: u64| round * 1_000_000 + k;
    let mut tickets = Vec::new();
    for round in 1..=ROUNDS {
        let mut batch = Batch::new();
        for k in 0..KEYS {
            batch.put(&counts, &k, value(round, k), round + 1)?;
        }
        tickets.push(store.submit(batch)?);
    }
    let mut last = first.lsn;
    for (round, ticket) in (1..=ROUNDS).zip(tickets) {
        let receipt = settle(ticket)?.map_err(|e| format!("round {round}: {e}"))?;
        assert!(receipt.outcomes.iter().all(Outcome::is_applied), "round {round}");
        assert_eq!(receipt.outcomes.len() as u64, KEYS);
        assert!(receipt.lsn > last, "round {round} did not commit after the one before");
        last = receipt.lsn;
    }
    // The snapshot and its iterator still show the first group.
    for k in KEYS / 2..KEYS {
        assert_eq!(iter.next().map(|(key, v)| (key, *v)), Some((k, k)));
    }
    assert!(iter.next().is_none());
    assert_eq!(snapshot.lsn(), first.lsn);
    assert_eq!(pinned.len() as u64, KEYS);
    for k in 0..KEYS {
        assert_eq!(pinned.get_versioned(&k).map(|(ver, v)| (ver, *v)), Some((1, k)));
    }
    // A fresh read shows the last round.
    assert_eq!(store.lsn(), last);
    let fresh = store.snapshot();
    assert_eq!(fresh.lsn(), last);
    let now = fresh.view(&counts)?;
    assert_eq!(now.len() as u64, KEYS);
    for k in 0..KEYS {
        assert_eq!(
            now.get_versioned(&k).map(|(ver, v)| (ver, *v)),
            Some((ROUNDS + 1, value(ROUNDS, k)))
        );
        assert_eq!(counts.get(&k).as_deref(), Some(&value(ROUNDS, k)));
    }
    drop((pinned, snapshot));
    store.close()?;
    Ok(())
}
