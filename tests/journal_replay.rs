//! Opening a store in journal mode replays the journal: acknowledged groups that only
//! the journal holds come back (the store file alone does not have them), a replay made
//! twice gives the same store, a torn last record ends the replay quietly, and a damaged
//! record followed by a valid one refuses to open, naming the journal and the offset,
//! and changes nothing.

use std::sync::Arc;
use std::time::Duration;
use viewstore::testing::FaultBackend;
use viewstore::{Durability, Error, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;
/// Key, version and value of each live item.
type Items = Vec<(u64, u64, String)>;

const ITEMS: ViewDef<u64, String> = ViewDef::new("items");
const WRITES: u64 = 50;

/// The store file and the journal, each a backend.
struct Files {
    store: Arc<FaultBackend>,
    log: Arc<FaultBackend>,
}

impl Files {
    fn new() -> Self {
        Files { store: Arc::new(FaultBackend::new()), log: Arc::new(FaultBackend::new()) }
    }

    fn from_images(store: Vec<u8>, log: Vec<u8>) -> Self {
        Files {
            store: Arc::new(FaultBackend::from_image(store)),
            log: Arc::new(FaultBackend::from_image(log)),
        }
    }

    fn open(&self) -> viewstore::Result<Store> {
        Store::builder("journal-replay.redb")
            .backend(Arc::clone(&self.store) as _)
            .durability(Durability::Journal)
            .journal_backend(Arc::clone(&self.log) as _)
            .checkpoint_interval(Duration::from_secs(3600))
            .open()
    }
}

/// Every item of the store, in key order.
fn contents(files: &Files) -> Result<Items, Box<dyn std::error::Error>> {
    let store = files.open()?;
    let items = store.view(&ITEMS)?;
    let mut out = Vec::new();
    for k in 0..WRITES {
        if let Some((version, value)) = items.get_versioned(&k) {
            out.push((k, version, (*value).clone()));
        }
    }
    store.close()?;
    Ok(out)
}

/// What a power loss leaves after `WRITES` acknowledged single-write groups (and one
/// delete), with no checkpoint since the view was created: the durable bytes of both
/// files.
fn power_loss_after_writes() -> Result<(Vec<u8>, Vec<u8>), Box<dyn std::error::Error>> {
    let files = Files::new();
    let store = files.open()?;
    let items = store.view(&ITEMS)?;
    for k in 0..WRITES {
        items.put(&k, format!("value {k}"), k + 1)?;
    }
    items.delete(&0, 100)?;
    let images = (files.store.durable_image(), files.log.durable_image());
    store.close()?;
    Ok(images)
}

fn expected() -> Items {
    (1..WRITES).map(|k| (k, k + 1, format!("value {k}"))).collect()
}

#[test]
fn acknowledged_groups_only_the_journal_holds_come_back() -> TestResult {
    let (store, log) = power_loss_after_writes()?;
    assert!(!log.is_empty(), "the journal holds the groups");
    // The store file alone lacks them: they are in the journal only.
    assert_eq!(contents(&Files::from_images(store.clone(), Vec::new()))?, vec![]);
    assert_eq!(contents(&Files::from_images(store, log))?, expected());
    Ok(())
}

#[test]
fn replaying_the_same_journal_twice_gives_the_same_store() -> TestResult {
    let (store, log) = power_loss_after_writes()?;
    let once = Files::from_images(store.clone(), log.clone());
    assert_eq!(contents(&once)?, expected());
    // The replayed store file with the same journal again (a crash before the journal
    // was emptied), and the original pair replayed a second time.
    let replayed = once.store.durable_image();
    assert!(once.log.durable_image().is_empty(), "a clean close empties the journal");
    assert_eq!(contents(&once)?, expected());
    assert_eq!(contents(&Files::from_images(replayed, log.clone()))?, expected());
    assert_eq!(contents(&Files::from_images(store, log))?, expected());
    Ok(())
}

#[test]
fn a_torn_last_record_ends_the_replay() -> TestResult {
    let (store, mut log) = power_loss_after_writes()?;
    // The delete of key 0 was the last group: tear its record.
    log.truncate(log.len() - 3);
    let mut want = expected();
    want.insert(0, (0, 1, "value 0".to_owned()));
    assert_eq!(contents(&Files::from_images(store, log))?, want);
    Ok(())
}

#[test]
fn a_damaged_record_before_valid_ones_is_an_error_naming_the_journal_and_offset() -> TestResult {
    let (store, mut log) = power_loss_after_writes()?;
    // The first record starts at offset 0; damage its payload.
    log[30] ^= 0x40;
    let files = Files::from_images(store.clone(), log.clone());
    match files.open() {
        Err(Error::JournalCorrupt { file, offset, reason }) => {
            assert!(file.to_string_lossy().ends_with("journal-replay.redb.journal"), "{file:?}");
            assert_eq!(offset, 0);
            assert!(reason.contains("checksum"), "{reason}");
        }
        Err(other) => return Err(format!("expected JournalCorrupt, got {other}").into()),
        Ok(_) => return Err("a damaged journal opened".into()),
    }
    // Nothing changed: the journal is as it was, and the store file with the journal
    // repaired still replays every group.
    assert!(files.log.written_image() == log, "the damaged journal was changed");
    log[30] ^= 0x40;
    let repaired = Files::from_images(files.store.written_image(), log);
    assert_eq!(contents(&repaired)?, expected());
    drop(store);
    Ok(())
}
