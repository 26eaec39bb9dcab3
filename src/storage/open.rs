//! Opening a store file: refuse what is not a viewstore without touching it, run redb's
//! integrity check, read the format version and the last LSN.

use crate::base::config::{Config, SharedBackend};
use crate::base::error::{Error, Result};
use crate::base::histogram::Recorder;
use crate::base::version::Lsn;
use crate::storage::format::{
    FORMAT_PLAIN, FORMAT_VERSION, META, META_FORMAT, META_LSN, REDB_MAGIC,
};
use crate::storage::timed::Timed;
use redb::{Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable, TableHandle};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Opens (or creates) the redb database of a store and returns it with its last LSN.
/// Every sync of the file is timed into `syncs`.
pub(crate) fn open_database(config: &Config, syncs: &Arc<Recorder>) -> Result<(Database, Lsn)> {
    let path = config.path.as_path();
    if let Some(backend) = &config.backend {
        reset_interrupted_creation_in(backend.as_ref(), path)?;
        let backend = Timed { inner: SharedBackend(Arc::clone(backend)), syncs: Arc::clone(syncs) };
        let db = redb::Builder::new()
            .set_check_integrity_on_open(config.check_integrity)
            .set_cache_size(config.cache_size())
            .create_with_backend(backend)
            .map_err(|e| open_error(path, e))?;
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
    if existing && inspect_locked(path)? == Inspected::Store {
        precheck_read_only(path)?;
    }
    // What `redb::Builder::create` does, with the file backend wrapped to time its syncs.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| open_error(path, e.into()))?;
    let backend = redb::backends::FileBackend::new(file).map_err(|e| open_error(path, e))?;
    let db = redb::Builder::new()
        .set_check_integrity_on_open(config.check_integrity)
        .set_cache_size(config.cache_size())
        .create_with_backend(Timed { inner: backend, syncs: Arc::clone(syncs) })
        .map_err(|e| open_error(path, e))?;
    let lsn = init_or_check(&db, path)?;
    Ok((db, lsn))
}

/// The error of a failed redb open: a file locked by another opener is
/// [`Error::AlreadyOpen`], anything else a storage error.
fn open_error(path: &Path, e: redb::DatabaseError) -> Error {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::AlreadyOpen { file: path.to_owned() },
        e => Error::storage(path, "opening the database", e),
    }
}

/// What [`inspect_locked`] found.
#[derive(Debug, PartialEq, Eq)]
enum Inspected {
    /// A redb file: it has redb's magic number.
    Store,
    /// An interrupted creation, now emptied, or a file another opener emptied first.
    Empty,
}

/// Looks at an existing file while holding its lock, so that no other opener (a thread
/// or a process) is creating or using it meanwhile: a file that is exactly what an
/// interrupted creation leaves is emptied; anything else without redb's magic number is
/// refused untouched. A file locked by another opener is refused as already open, as
/// redb itself would refuse it.
fn inspect_locked(path: &Path) -> Result<Inspected> {
    let io = |e| Error::Io { file: path.to_owned(), source: Arc::new(e) };
    let file = match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        // A file this process may not write is left to redb, which reports it; without
        // writing there is nothing to reset.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            check_magic(path)?;
            return Ok(Inspected::Store);
        }
        Err(e) => return Err(io(e)),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(Error::AlreadyOpen { file: path.to_owned() });
        }
        // A file system without locks: redb decides, as it would without viewstore.
        Err(std::fs::TryLockError::Error(_)) => {
            return check_magic(path).map(|()| Inspected::Store);
        }
    }
    let len = file.metadata().map_err(io)?.len();
    if len == 0 {
        return Ok(Inspected::Empty);
    }
    if len == interrupted_creation().len {
        let mut bytes = vec![0; len as usize];
        std::io::Read::read_exact(&mut &file, &mut bytes).map_err(io)?;
        if interrupted_creation().matches(&bytes) {
            file.set_len(0).map_err(io)?;
            file.sync_all().map_err(io)?;
            return Ok(Inspected::Empty);
        }
    }
    check_magic(path)?;
    Ok(Inspected::Store)
}

/// Exactly what redb leaves on disk when creating a database is interrupted: the file
/// grown to its initial layout, all zero except, once written, the header, whose magic
/// number is written last. Learnt by creating a database in memory with this build's
/// redb, so that only redb's own half-created file matches, never a foreign file.
struct InterruptedCreation {
    len: u64,
    /// The header as first written: without its magic number.
    header: Vec<u8>,
}

impl InterruptedCreation {
    fn matches(&self, bytes: &[u8]) -> bool {
        if bytes.len() as u64 != self.len || self.header.is_empty() {
            return false;
        }
        let (head, rest) = bytes.split_at(self.header.len().min(bytes.len()));
        let header_written = head == self.header.as_slice();
        let header_unwritten = head.iter().all(|&b| b == 0);
        (header_written || header_unwritten) && rest.iter().all(|&b| b == 0)
    }
}

fn interrupted_creation() -> &'static InterruptedCreation {
    static LAYOUT: std::sync::OnceLock<InterruptedCreation> = std::sync::OnceLock::new();
    LAYOUT.get_or_init(|| {
        let recorder = CreationRecorder::default();
        let created = redb::Builder::new().create_with_backend(recorder.clone());
        let first = recorder.lock().first_header.clone();
        match (created, first) {
            (Ok(_), Some((len, header))) => InterruptedCreation { len, header },
            // Nothing learnt: nothing is ever taken for an interrupted creation.
            _ => InterruptedCreation { len: u64::MAX, header: Vec::new() },
        }
    })
}

/// An in-memory backend that records the file's length and bytes at redb's first write
/// of its header (offset 0), which comes before the magic number.
#[derive(Clone, Default)]
struct CreationRecorder(Arc<std::sync::Mutex<Recorded>>);

#[derive(Default)]
struct Recorded {
    bytes: Vec<u8>,
    /// The length of the file and the bytes of the first write at offset 0.
    first_header: Option<(u64, Vec<u8>)>,
}

impl CreationRecorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for CreationRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CreationRecorder")
    }
}

impl redb::StorageBackend for CreationRecorder {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.lock().bytes.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let recorded = self.lock();
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        let source = recorded
            .bytes
            .get(start..start + out.len())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "past end"))?;
        out.copy_from_slice(source);
        Ok(())
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        let len = usize::try_from(len).map_err(std::io::Error::other)?;
        self.lock().bytes.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> std::io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        let mut recorded = self.lock();
        if recorded.bytes.len() < start + data.len() {
            recorded.bytes.resize(start + data.len(), 0);
        }
        recorded.bytes[start..start + data.len()].copy_from_slice(data);
        if offset == 0 && recorded.first_header.is_none() {
            recorded.first_header = Some((recorded.bytes.len() as u64, data.to_vec()));
        }
        Ok(())
    }
}

/// Empties a storage backend that holds exactly an interrupted creation (see
/// [`InterruptedCreation`]). A backend is one opener's alone: no lock is needed.
fn reset_interrupted_creation_in(backend: &dyn redb::StorageBackend, path: &Path) -> Result<()> {
    let io = |e| Error::Io { file: path.to_owned(), source: Arc::new(e) };
    let layout = interrupted_creation();
    let len = backend.len().map_err(io)?;
    if len != layout.len {
        return Ok(());
    }
    let mut bytes = vec![0; len as usize];
    backend.read(0, &mut bytes).map_err(io)?;
    if layout.matches(&bytes) {
        backend.set_len(0).map_err(io)?;
        backend.sync_data().map_err(io)?;
    }
    Ok(())
}

/// Refuses, without opening it with redb, a file that does not start with redb's magic
/// number.
pub(crate) fn check_magic(path: &Path) -> Result<()> {
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
            meta.insert(META_FORMAT, FORMAT_PLAIN.to_le_bytes().as_slice())
                .map_err(Error::at(path, "writing meta"))?;
            meta.insert(META_LSN, 0u64.to_le_bytes().as_slice())
                .map_err(Error::at(path, "writing meta"))?;
        }
        txn.commit().map_err(Error::at(path, "initializing the store"))?;
        return Ok(Lsn::new(0));
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
    Ok(Lsn::new(lsn))
}
