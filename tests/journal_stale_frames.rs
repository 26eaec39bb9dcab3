//! After a checkpoint the journal is overwritten from its start, so a crash can leave a
//! torn frame followed by frames, and stored values, from before the checkpoint. A value
//! that holds another journal's bytes (a store of backups, say) carries whole frames of
//! groups far above this store's: the open must take them for what they are, old bytes,
//! and not for acknowledged groups after damage, which would refuse to open the store.
//! Frames carry a salt that each checkpoint draws and stores in the store file; a backup
//! gets a salt of its own, so that, restored beside the journal of the store it came
//! from, it does not take that journal's later groups; and a journal written by a build
//! from before salts (unsalted frames) is still replayed.

use std::sync::Arc;
use std::time::Duration;
use viewstore::testing::{FaultBackend, FaultMode, FaultPlan, FaultTarget};
use viewstore::{Durability, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const BLOBS: ViewDef<u64, Vec<u8>> = ViewDef::new("blobs");

/// A journal limit below one blob's frame: the group after a blob checkpoints first.
const LIMIT: u64 = 8 * 1024;

fn open(store: &Arc<FaultBackend>, log: &Arc<FaultBackend>) -> viewstore::Result<Store> {
    Store::builder("stale-frames.redb")
        .backend(Arc::clone(store) as _)
        .durability(Durability::Journal)
        .journal_backend(Arc::clone(log) as _)
        .journal_limit(LIMIT)
        .checkpoint_interval(Duration::from_secs(3600))
        .open()
}

/// The journal of another store after 400 small groups, none checkpointed: whole frames
/// of groups 2 to 401.
fn another_journal() -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let (store, log) = (Arc::new(FaultBackend::new()), Arc::new(FaultBackend::new()));
    let other = Store::builder("other.redb")
        .backend(Arc::clone(&store) as _)
        .durability(Durability::Journal)
        .journal_backend(Arc::clone(&log) as _)
        .checkpoint_interval(Duration::from_secs(3600))
        .open()?;
    let blobs = other.view(&BLOBS)?;
    for k in 0..400 {
        blobs.put(&k, vec![7; 16], 1)?;
    }
    let image = log.written_image();
    drop(other);
    Ok(image)
}

#[test]
fn a_torn_frame_before_a_stored_journal_is_a_torn_tail() -> TestResult {
    let journal_bytes = another_journal()?;
    assert!(journal_bytes.len() > 2 * LIMIT as usize, "{} bytes", journal_bytes.len());

    let (store, log) = (Arc::new(FaultBackend::new()), Arc::new(FaultBackend::new()));
    let db = open(&store, &log)?;
    let blobs = db.view(&BLOBS)?;
    // Groups 2 and 3: the other journal as a value, then (after a checkpoint, since the
    // journal passed its limit) a small value written over the journal's start.
    blobs.put(&1, journal_bytes.clone(), 1)?;
    blobs.put(&2, vec![2; 8], 1)?;
    // Group 4 is appended and its sync fails: it was never acknowledged, and a power
    // loss keeps only its first sector.
    log.set_plan(Some(FaultPlan {
        target: FaultTarget::Sync,
        at: log.counters().syncs,
        mode: FaultMode::Once,
    }));
    assert!(blobs.put(&3, vec![3; 4096], 1).is_err(), "the failed sync fails the write");
    let (durable, written) = (log.durable_image(), log.written_image());
    let store_image = store.durable_image();
    drop(blobs);
    drop(db);

    let start = durable.iter().zip(&written).position(|(a, b)| a != b).ok_or("no new frame")?;
    let mut torn = durable.clone();
    torn[start..start + 512].copy_from_slice(&written[start..start + 512]);
    assert_ne!(torn, durable);

    let (store, log) =
        (Arc::new(FaultBackend::from_image(store_image)), Arc::new(FaultBackend::from_image(torn)));
    let reopened = open(&store, &log)?;
    let blobs = reopened.view(&BLOBS)?;
    assert_eq!(blobs.get(&1).as_deref(), Some(&journal_bytes));
    assert_eq!(blobs.get(&2).as_deref(), Some(&vec![2; 8]));
    assert_eq!(blobs.get(&3), None, "the torn group was never acknowledged");
    assert_eq!(blobs.len(), 2);
    reopened.close()?;
    Ok(())
}

/// CRC-32C, as the journal's frames use it.
fn crc32c(crc: u32, bytes: &[u8]) -> u32 {
    let mut crc = !crc;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

/// What a crash leaves: the store file and the journal's synced bytes, after `write`.
fn crash_after(
    write: impl FnOnce(&Store) -> viewstore::Result<()>,
) -> Result<(Vec<u8>, Vec<u8>), Box<dyn std::error::Error>> {
    let (store, log) = (Arc::new(FaultBackend::new()), Arc::new(FaultBackend::new()));
    let db = open(&store, &log)?;
    write(&db)?;
    let images = (store.durable_image(), log.durable_image());
    // A crash: no checkpoint, the journal not emptied.
    std::mem::forget(db);
    Ok(images)
}

#[test]
fn a_journal_of_unsalted_frames_over_a_salted_file_is_replayed() -> TestResult {
    // A file that a salting build opened (which stores a salt), then a group
    // acknowledged by a build from before salts, which writes unsalted frames and
    // leaves the stored salt as it is: the salted frame rewritten as an unsalted one.
    let (store, journal) = crash_after(|db| db.view(&BLOBS)?.put(&1, vec![1; 8], 1).map(drop))?;
    assert_eq!(&journal[..4], b"VSJ2");
    let len = u32::from_le_bytes(journal[4..8].try_into()?) as usize;
    let payload = &journal[28..28 + len];
    let mut unsalted = b"VSJ1".to_vec();
    unsalted.extend_from_slice(&journal[4..16]);
    let crc = crc32c(crc32c(0, &unsalted[4..16]), payload);
    unsalted.extend_from_slice(&crc.to_le_bytes());
    unsalted.extend_from_slice(payload);

    let (store, log) =
        (Arc::new(FaultBackend::from_image(store)), Arc::new(FaultBackend::from_image(unsalted)));
    let reopened = open(&store, &log)?;
    assert_eq!(reopened.view(&BLOBS)?.get(&1).as_deref(), Some(&vec![1; 8]));
    reopened.close()?;
    Ok(())
}

#[test]
fn a_backup_restored_beside_the_live_journal_does_not_take_its_groups() -> TestResult {
    let backup: Arc<FaultBackend> = Arc::new(FaultBackend::new());
    let (_, journal) = crash_after(|db| {
        let blobs = db.view(&BLOBS)?;
        blobs.put(&1, vec![1; 8], 1)?;
        db.__backup_to_backend(&(Arc::clone(&backup) as _))?;
        // Acknowledged after the backup: in the live journal only.
        blobs.put(&2, vec![2; 8], 1).map(drop)
    })?;
    // The backup moved into place with the crashed store's journal beside it.
    let (store, log) = (
        Arc::new(FaultBackend::from_image(backup.durable_image())),
        Arc::new(FaultBackend::from_image(journal)),
    );
    let restored = open(&store, &log)?;
    let blobs = restored.view(&BLOBS)?;
    assert_eq!(blobs.get(&1).as_deref(), Some(&vec![1; 8]));
    assert_eq!(blobs.get(&2), None, "the restored backup is as it was backed up");
    drop(blobs);
    restored.close()?;
    Ok(())
}

#[test]
fn a_damaged_salt_row_refuses_to_open_in_journal_mode() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("salted.redb");
    let journal =
        |path: &std::path::Path| Store::builder(path).durability(Durability::Journal).open();
    let store = journal(&path)?;
    store.view(&BLOBS)?.put(&1, vec![1; 8], 1)?;
    store.close()?;
    {
        let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("viewstore.meta");
        let db = redb::Database::open(&path)?;
        let txn = db.begin_write()?;
        txn.open_table(meta)?.insert("journal_salt", [1u8, 2, 3].as_slice())?;
        txn.commit()?;
    }
    match journal(&path) {
        Err(viewstore::Error::NotAStore { reason, .. }) => {
            assert!(reason.contains("journal salt of 3 bytes"), "{reason}");
        }
        Err(other) => return Err(format!("expected NotAStore, got {other}").into()),
        Ok(_) => return Err("a damaged salt row opened".into()),
    }
    Ok(())
}

#[test]
fn an_open_with_nothing_to_replay_writes_nothing() -> TestResult {
    let (store, log) = (Arc::new(FaultBackend::new()), Arc::new(FaultBackend::new()));
    let db = open(&store, &log)?;
    db.view(&BLOBS)?.put(&1, vec![1; 8], 1)?;
    db.close()?;
    // Closed cleanly: the journal is empty, the store file holds its salt. Opening it
    // in journal mode keeps that salt rather than committing a new one: it writes what
    // an open in Immediate mode writes (redb's own bookkeeping at open), nothing more.
    let (store_image, log_image) = (store.durable_image(), log.durable_image());
    let opened = |durability: Durability| -> Result<_, Box<dyn std::error::Error>> {
        let (store, log) = (
            Arc::new(FaultBackend::from_image(store_image.clone())),
            Arc::new(FaultBackend::from_image(log_image.clone())),
        );
        let db = Store::builder("stale-frames.redb")
            .backend(Arc::clone(&store) as _)
            .durability(durability)
            .journal_backend(Arc::clone(&log) as _)
            .open()?;
        let (file, journal) = (store.counters(), log.counters());
        assert_eq!(db.view(&BLOBS)?.get(&1).as_deref(), Some(&vec![1; 8]));
        std::mem::forget(db);
        Ok(((file.writes, file.syncs), journal.mutations()))
    };
    let (immediate, _) = opened(Durability::Immediate)?;
    let (journaled, journal_writes) = opened(Durability::Journal)?;
    assert_eq!(journaled, immediate, "a journal-mode open wrote more to the store file");
    assert_eq!(journal_writes, 0, "the open wrote to the journal");
    Ok(())
}
