//! A store whose journal may hold salted frames says so with its format version (3):
//! builds from before salts read only unsalted frames and would take a journal of
//! salted ones for a torn log, dropping its acknowledged groups; with the format raised
//! they refuse the file (`Error::NewerFormat`) instead. A store never opened in
//! journal mode keeps its format, which those builds still open.

use redb::{ReadableDatabase, TableDefinition};
use std::path::{Path, PathBuf};
use std::time::Duration;
use viewstore::{Durability, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const NAMES: ViewDef<u64, String> = ViewDef::new("names");

/// The format version in the meta table of the store file at `path` (not open).
fn format_of(path: &Path) -> Result<u32, Box<dyn std::error::Error>> {
    let db = redb::Database::open(path)?;
    let txn = db.begin_read()?;
    let meta = txn.open_table(TableDefinition::<&str, &[u8]>::new("viewstore.meta"))?;
    let bytes = meta.get("format")?.ok_or("no format version")?.value().to_vec();
    Ok(u32::from_le_bytes(bytes.as_slice().try_into()?))
}

fn journal_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// Writes format version `version` into the meta table of the closed store at `path`.
fn set_format(path: &Path, version: u32) -> TestResult {
    let db = redb::Database::open(path)?;
    let txn = db.begin_write()?;
    txn.open_table(TableDefinition::<&str, &[u8]>::new("viewstore.meta"))?
        .insert("format", version.to_le_bytes().as_slice())?;
    txn.commit()?;
    Ok(())
}

/// Writes 50 records to `names` and copies the store file and its journal to
/// `image` while the store is open: what a crash leaves, the writes acknowledged and
/// only in the journal (no checkpoint for an hour).
fn crash_image(store: &Store, path: &Path, image: &Path) -> TestResult {
    let names = store.view(&NAMES)?;
    for k in 0..50u64 {
        names.put(&k, format!("n{k}"), 1)?;
    }
    std::fs::copy(path, image)?;
    std::fs::copy(journal_of(path), journal_of(image))?;
    Ok(())
}

fn open(path: &Path, durability: Durability) -> viewstore::Result<Store> {
    Store::builder(path)
        .durability(durability)
        .checkpoint_interval(Duration::from_secs(3600))
        .open()
}

#[test]
fn a_store_opened_in_journal_mode_raises_its_format_for_good() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = open(&path, Durability::Immediate)?;
    store.view(&NAMES)?.put(&1, "ada".into(), 1)?;
    store.close()?;
    assert_eq!(format_of(&path)?, 1, "a store only ever written immediately");

    let store = open(&path, Durability::Journal)?;
    store.view(&NAMES)?.put(&2, "grace".into(), 1)?;
    store.close()?;
    assert_eq!(format_of(&path)?, 3, "a store whose journal carried salted frames");

    // Back in Immediate mode the file keeps its format: the journal is empty after a
    // clean close, but lowering the format would have to be undone by every journal
    // open before its first append.
    let store = open(&path, Durability::Immediate)?;
    let names = store.view(&NAMES)?;
    assert_eq!(names.get(&1).as_deref().map(String::as_str), Some("ada"));
    assert_eq!(names.get(&2).as_deref().map(String::as_str), Some("grace"));
    drop(names);
    store.close()?;
    assert_eq!(format_of(&path)?, 3);
    Ok(())
}

#[test]
fn a_crash_image_with_salted_frames_carries_the_raised_format() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = open(&path, Durability::Journal)?;
    let image = dir.path().join("image.redb");
    crash_image(&store, &path, &image)?;
    store.close()?;

    let journal = std::fs::read(journal_of(&image))?;
    assert_eq!(journal.get(..4), Some(&b"VSJ2"[..]), "the journal starts with a salted frame");
    // A build that reads formats up to 2 refuses this file rather than reading its
    // journal as torn and opening without the 50 acknowledged writes.
    assert_eq!(format_of(&image)?, 3);
    let store = open(&image, Durability::Journal)?;
    let names = store.view(&NAMES)?;
    assert_eq!(names.len(), 50, "the groups of the journal are replayed");
    assert_eq!(names.get(&49).as_deref().map(String::as_str), Some("n49"));
    Ok(())
}

#[test]
fn a_salted_store_at_an_older_format_is_raised_before_its_first_append() -> TestResult {
    // A file salted by a build that kept its format: the journal open raises it before
    // appending, though there is nothing to replay.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    open(&path, Durability::Journal)?.close()?;
    set_format(&path, 1)?;
    let store = open(&path, Durability::Journal)?;
    let image = dir.path().join("image.redb");
    crash_image(&store, &path, &image)?;
    store.close()?;
    assert_eq!(format_of(&image)?, 3, "salted frames in a file at format 1");
    let store = open(&image, Durability::Immediate)?;
    assert_eq!(store.view(&NAMES)?.len(), 50);
    Ok(())
}
