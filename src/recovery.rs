//! Opening a store file: refuse what is not a viewstore without touching it, run redb's
//! integrity check, read the format version and the last LSN.

use crate::config::{Config, SharedBackend};
use crate::error::{Error, Result};
use crate::format::{FORMAT_VERSION, META, META_FORMAT, META_LSN, REDB_MAGIC};
use crate::version::Lsn;
use redb::{Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable, TableHandle};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Opens (or creates) the redb database of a store and returns it with its last LSN.
pub(crate) fn open_database(config: &Config) -> Result<(Database, Lsn)> {
    let path = config.path.as_path();
    if let Some(backend) = &config.backend {
        reset_interrupted_creation_in(backend.as_ref(), path)?;
        let db = redb::Builder::new()
            .set_check_integrity_on_open(config.check_integrity)
            .set_cache_size(config.cache_size)
            .create_with_backend(SharedBackend(Arc::clone(backend)))
            .map_err(|e| Error::storage(path, "opening the database", e))?;
        let lsn = init_or_check(&db, path)?;
        return Ok((db, lsn));
    }
    let existing = match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            return Err(Error::NotAStore {
                file: path.to_owned(),
                reason: "it is a directory".into(),
            });
        }
        Ok(m) => m.len() > 0,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(Error::Io { file: path.to_owned(), source: Arc::new(e) });
        }
    };
    let existing = existing && !reset_interrupted_creation(path)?;
    if existing {
        check_magic(path)?;
        precheck_read_only(path)?;
    }
    let db = redb::Builder::new()
        .set_check_integrity_on_open(config.check_integrity)
        .set_cache_size(config.cache_size)
        .create(path)
        .map_err(|e| Error::storage(path, "opening the database", e))?;
    let lsn = init_or_check(&db, path)?;
    Ok((db, lsn))
}

/// The largest file an interrupted creation can leave: redb's initial layout is
/// 72 KiB with 4 KiB pages.
const MAX_CREATION_BYTES: usize = 1 << 20;
/// redb writes only its header before the magic number; nothing past it is written
/// until the first commit, which needs the magic number.
const CREATION_HEADER_BYTES: usize = 4096;

/// Whether `bytes` is what redb leaves when creating a database is interrupted before
/// it writes its magic number (the last step of creation): a small file whose magic
/// number slot is zero and which holds nothing past the header. Such a file never held
/// a commit, so it is safe to start over; redb itself refuses it forever.
fn is_interrupted_creation(bytes: &[u8]) -> bool {
    bytes.len() <= MAX_CREATION_BYTES
        && bytes.iter().take(REDB_MAGIC.len()).all(|&b| b == 0)
        && bytes.iter().skip(CREATION_HEADER_BYTES).all(|&b| b == 0)
}

/// Empties the file at `path` if it is an interrupted creation; returns whether it did.
fn reset_interrupted_creation(path: &Path) -> Result<bool> {
    let io = |e| Error::Io { file: path.to_owned(), source: Arc::new(e) };
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() > 0 && m.len() <= MAX_CREATION_BYTES as u64 => {}
        _ => return Ok(false),
    }
    let bytes = std::fs::read(path).map_err(io)?;
    if !is_interrupted_creation(&bytes) {
        return Ok(false);
    }
    let file = std::fs::OpenOptions::new().write(true).open(path).map_err(io)?;
    file.set_len(0).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(true)
}

/// [`reset_interrupted_creation`] for a storage backend.
fn reset_interrupted_creation_in(backend: &dyn redb::StorageBackend, path: &Path) -> Result<()> {
    let io = |e| Error::Io { file: path.to_owned(), source: Arc::new(e) };
    let len = backend.len().map_err(io)?;
    if len == 0 || len > MAX_CREATION_BYTES as u64 {
        return Ok(());
    }
    let mut bytes = vec![0; len as usize];
    backend.read(0, &mut bytes).map_err(io)?;
    if is_interrupted_creation(&bytes) {
        backend.set_len(0).map_err(io)?;
        backend.sync_data().map_err(io)?;
    }
    Ok(())
}

fn check_magic(path: &Path) -> Result<()> {
    let mut head = [0u8; REDB_MAGIC.len()];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head));
    match read {
        Ok(()) if head == REDB_MAGIC => Ok(()),
        Ok(()) => Err(Error::NotAStore { file: path.to_owned(), reason: "no redb header".into() }),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Error::NotAStore {
            file: path.to_owned(),
            reason: "too short for a redb header".into(),
        }),
        Err(e) => Err(Error::Io { file: path.to_owned(), source: Arc::new(e) }),
    }
}

/// Looks at an existing file read-only, so that a redb file of another program, or a
/// viewstore of a newer format, is refused before anything could be written to it.
/// A file that redb cannot open read-only (one that needs repair after a crash) is
/// left to the read-write open, which repairs it and checks again.
///
/// A read-only open cannot run redb's integrity check, and redb may panic on a corrupt
/// file it has not checked: such a panic is caught here and the file is left to the
/// read-write open too, whose integrity check reports the corruption as an error.
fn precheck_read_only(path: &Path) -> Result<()> {
    match std::panic::catch_unwind(|| precheck_unchecked(path)) {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

fn precheck_unchecked(path: &Path) -> Result<()> {
    let Ok(db) = ReadOnlyDatabase::open(path) else {
        return Ok(());
    };
    let Ok(txn) = db.begin_read() else {
        return Ok(());
    };
    let names: Vec<String> = match txn.list_tables() {
        Ok(tables) => tables.map(|t| t.name().to_owned()).collect(),
        Err(_) => return Ok(()),
    };
    if !names.iter().any(|n| n == META.name()) {
        if names.is_empty() {
            return Ok(());
        }
        return Err(Error::NotAStore {
            file: path.to_owned(),
            reason: format!("a redb database without viewstore tables (has {})", names.join(", ")),
        });
    }
    if let Ok(meta) = txn.open_table(META) {
        check_format(path, meta.get(META_FORMAT).ok().flatten().map(|v| v.value().to_vec()))?;
    }
    Ok(())
}

fn check_format(path: &Path, stored: Option<Vec<u8>>) -> Result<()> {
    let Some(bytes) = stored else {
        return Err(Error::NotAStore { file: path.to_owned(), reason: "no format version".into() });
    };
    let found = <[u8; 4]>::try_from(bytes.as_slice()).map(u32::from_le_bytes).map_err(|_| {
        Error::NotAStore { file: path.to_owned(), reason: "unreadable format version".into() }
    })?;
    if found > FORMAT_VERSION {
        return Err(Error::NewerFormat { file: path.to_owned(), found, supported: FORMAT_VERSION });
    }
    Ok(())
}

/// Writes the meta table of a new store, or checks the one of an existing store.
fn init_or_check(db: &Database, path: &Path) -> Result<Lsn> {
    let txn = db.begin_write().map_err(Error::at(path, "beginning a write"))?;
    let names: Vec<String> = txn
        .list_tables()
        .map_err(Error::at(path, "listing tables"))?
        .map(|t| t.name().to_owned())
        .collect();
    if !names.iter().any(|n| n == META.name()) {
        if !names.is_empty() {
            txn.abort().map_err(Error::at(path, "aborting"))?;
            return Err(Error::NotAStore {
                file: path.to_owned(),
                reason: format!(
                    "a redb database without viewstore tables (has {})",
                    names.join(", ")
                ),
            });
        }
        {
            let mut meta = txn.open_table(META).map_err(Error::at(path, "creating meta"))?;
            meta.insert(META_FORMAT, FORMAT_VERSION.to_le_bytes().as_slice())
                .map_err(Error::at(path, "writing meta"))?;
            meta.insert(META_LSN, 0u64.to_le_bytes().as_slice())
                .map_err(Error::at(path, "writing meta"))?;
        }
        txn.commit().map_err(Error::at(path, "initializing the store"))?;
        return Ok(Lsn(0));
    }
    let (format, lsn) = {
        let meta = txn.open_table(META).map_err(Error::at(path, "opening meta"))?;
        let format = meta
            .get(META_FORMAT)
            .map_err(Error::at(path, "reading meta"))?
            .map(|v| v.value().to_vec());
        let lsn = meta
            .get(META_LSN)
            .map_err(Error::at(path, "reading meta"))?
            .map(|v| v.value().to_vec());
        (format, lsn)
    };
    txn.abort().map_err(Error::at(path, "aborting"))?;
    check_format(path, format)?;
    let lsn = lsn
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| Error::NotAStore {
            file: path.to_owned(),
            reason: "unreadable lsn".into(),
        })?;
    Ok(Lsn(lsn))
}
