//! Online backup: a copy taken while another thread writes holds exactly the writes up
//! to the reported LSN, with every table (feed, positions, catalog) and opens as a
//! store; an existing path is refused untouched; a backup interrupted at any I/O
//! failure leaves either no commit or the whole copy.

use redb::{ReadableDatabase, TableHandle};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use viewstore::testing::{FaultBackend, FaultMode, FaultPlan, FaultTarget};
use viewstore::{Batch, Error, FeedMode, IndexDef, Lsn, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const BY_VALUE: IndexDef<u64, u64> = IndexDef::multi("by_value", |v| v % 10);
const COUNTS: ViewDef<u64, u64> =
    ViewDef::new("counts").with_indexes(&[&BY_VALUE]).with_feed(FeedMode::Values);

fn tables(path: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let db = redb::Database::open(path)?;
    let txn = db.begin_read()?;
    Ok(txn.list_tables()?.map(|t| t.name().to_string()).collect())
}

/// The state the log of `(lsn, key, value)` writes gives at `lsn`.
fn expected_at(log: &[(Lsn, u64, u64)], lsn: Lsn) -> BTreeMap<u64, u64> {
    log.iter().filter(|(l, _, _)| *l <= lsn).map(|&(_, k, v)| (k, v)).collect()
}

#[test]
fn a_backup_under_writes_holds_exactly_the_writes_up_to_its_lsn() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::open(&path)?;
    let counts = store.view(&COUNTS)?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (counts, stop) = (counts.clone(), Arc::clone(&stop));
        std::thread::spawn(move || -> viewstore::Result<Vec<(Lsn, u64, u64)>> {
            let mut log = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) || i < 2_000 {
                let key = i % 500;
                let mut batch = Batch::new();
                batch.put(&counts, &key, i, i + 1)?.set_position("log", 0, i)?;
                let receipt = counts.store().submit(batch)?.wait()?;
                log.push((receipt.lsn, key, i));
                i += 1;
            }
            Ok(log)
        })
    };
    // Backups taken at three moments while the writer runs.
    let mut reports = Vec::new();
    for n in 0..3 {
        while store.lsn().get() < 300 * (n + 1) {
            std::thread::yield_now();
        }
        reports.push(store.backup(dir.path().join(format!("backup-{n}.redb")))?);
    }
    stop.store(true, Ordering::Relaxed);
    let log = writer.join().map_err(|_| "the writer panicked")??;
    let last = log.last().map(|e| e.0).ok_or("no writes")?;
    store.close()?;
    let original_tables = tables(&path)?;
    for report in &reports {
        println!("{report}");
        assert!(report.lsn < last, "the backup at {:?} waited for the writes", report.lsn);
        let expected = expected_at(&log, report.lsn);
        assert_eq!(report.records, expected.len() as u64);
        assert_eq!(report.bytes, std::fs::metadata(&report.path)?.len());
        assert_eq!(tables(&report.path)?, original_tables);
        let copy = Store::open(&report.path)?;
        assert_eq!(copy.lsn(), report.lsn);
        let view = copy.view(&COUNTS)?;
        let held: BTreeMap<u64, u64> = view.range(..).into_iter().map(|(k, v)| (k, *v)).collect();
        assert_eq!(held, expected);
        // The position, the feed and the index came along, at the same LSN.
        let applied = log.iter().filter(|(l, _, _)| *l <= report.lsn).count() as u64;
        assert_eq!(copy.position("log", 0)?, Some(applied - 1));
        let mut feed = copy.feed_after(Lsn::new(report.lsn.get() - 1))?;
        let group = feed.next_timeout(std::time::Duration::ZERO)?.ok_or("no feed")?;
        assert_eq!(group.lsn, report.lsn);
        assert_eq!(
            view.index_count(&BY_VALUE, &3),
            expected.values().filter(|v| *v % 10 == 3).count()
        );
        assert!(copy.verify()?.is_ok());
        // The copy is a store of its own: it takes writes.
        view.put(&1_000_000, 1, 1)?;
    }
    Ok(())
}

#[test]
fn a_backup_never_overwrites_a_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::open(&path)?;
    store.view(&COUNTS)?.put(&1, 1, 1)?;
    let taken = dir.path().join("taken");
    std::fs::write(&taken, b"keep me")?;
    for target in [taken.as_path(), path.as_path(), dir.path()] {
        match store.backup(target) {
            Err(Error::FileExists { file }) => assert_eq!(file, target),
            other => return Err(format!("backup to {}: {other:?}", target.display()).into()),
        }
    }
    assert_eq!(std::fs::read(&taken)?, b"keep me");
    // A leftover temporary file of an interrupted backup is replaced.
    std::fs::write(dir.path().join(".fresh.redb.partial"), b"half a backup")?;
    let report = store.backup(dir.path().join("fresh.redb"))?;
    assert!(!dir.path().join(".fresh.redb.partial").exists());
    assert_eq!(Store::open(&report.path)?.view(&COUNTS)?.get(&1).as_deref(), Some(&1));
    Ok(())
}

/// A store's LSN and the records of its `counts` view.
type Held = (Lsn, BTreeMap<u64, u64>);

/// What a store on `image` holds: its LSN and the `counts` view, or `None` when the
/// image holds no store yet: redb writes its magic number last when it creates a
/// file, or no commit of the backup reached it.
fn read_image(image: Vec<u8>) -> Result<Option<Held>, String> {
    const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
    if !image.starts_with(&REDB_MAGIC) {
        return Ok(None);
    }
    let backend = Arc::new(FaultBackend::from_image(image));
    let store = Store::builder("image").backend(backend as _).open().map_err(|e| e.to_string())?;
    if store.views().map_err(|e| e.to_string())?.is_empty() {
        return Ok(None);
    }
    let view = store.view(&COUNTS).map_err(|e| e.to_string())?;
    Ok(Some((store.lsn(), view.range(..).into_iter().map(|(k, v)| (k, *v)).collect())))
}

#[test]
fn a_backup_failing_at_any_io_call_leaves_no_commit_or_the_whole_copy() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let counts = store.view(&COUNTS)?;
    let mut batch = Batch::new();
    for key in 0..300u64 {
        batch.put(&counts, &key, key * 7, 1)?;
    }
    store.submit(batch)?.wait()?;
    let whole: BTreeMap<u64, u64> = (0..300).map(|k| (k, k * 7)).collect();
    let probe = Arc::new(FaultBackend::new());
    store.__backup_to_backend(&(Arc::clone(&probe) as _))?;
    let calls = probe.counters().mutations();
    let (mut failed, mut whole_images) = (0, 0);
    for at in 0..=calls {
        for mode in [FaultMode::Once, FaultMode::FromThenOn] {
            let lsn = store.lsn();
            let target = Arc::new(FaultBackend::new());
            target.set_plan(Some(FaultPlan { target: FaultTarget::Any, at, mode }));
            let result = store.__backup_to_backend(&(Arc::clone(&target) as _));
            failed += u32::from(result.is_err());
            for image in [target.durable_image(), target.power_loss_image(at + 1)] {
                match read_image(image)? {
                    None => {}
                    Some((at_lsn, held)) if at_lsn == lsn && held == whole => whole_images += 1,
                    Some(other) => {
                        return Err(
                            format!("fault at {at} {mode:?}: a partial copy {other:?}").into()
                        );
                    }
                }
            }
            if let Ok(report) = result {
                // An acknowledged backup is durable whole.
                let held = read_image(target.durable_image())?;
                assert_eq!(held, Some((report.lsn, whole.clone())), "fault at {at} {mode:?}");
            }
        }
        // The store goes on after every failed backup.
        counts.put(&1, 7, at + 2)?;
    }
    println!("{calls} calls, {failed} failed backups, {whole_images} whole images");
    assert!(failed > 0 && whole_images > 0);
    Ok(())
}
