//! After a checkpoint the journal is overwritten from its start, so a crash can leave a
//! torn frame followed by frames, and stored values, from before the checkpoint. A value
//! that holds another journal's bytes (a store of backups, say) carries whole frames of
//! groups far above this store's: the open must take them for what they are, old bytes,
//! and not for acknowledged groups after damage, which would refuse to open the store.

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
