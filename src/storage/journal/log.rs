//! The journal file: appended to and synced once per group, started over at each
//! checkpoint.
//!
//! The file is `<store file>.journal`, beside the store file. It is reached through a
//! [`redb::StorageBackend`], the same seam as the store file, so that tests can hand it
//! a backend that tears writes, loses unsynced bytes or fails its syncs.
//!
//! After a checkpoint the file keeps its length and the next groups overwrite it from
//! offset 0: their blocks are already allocated, so an append's `fdatasync` has no new
//! file size to record.
//! The file is as long as the most the journal held between two checkpoints; a clean
//! close empties it.
//!
//! Invariants, between calls:
//! 1. `len` is where this process writes next: frames from offset 0 up to `len`, each
//!    synced before `append` returned, are of groups since the last checkpoint, in LSN
//!    order.
//! 2. Every frame beyond `len` (or every frame, when the file is left from before a
//!    checkpoint by a crash between the checkpoint and the start of the next group) is
//!    of a group at or below the LSN the store file holds durably, and carries a salt
//!    other than the store file's unless the journal was not appended to since that
//!    salt was stored: the scan ends the journal at the first frame without the salt
//!    or whose LSN is not above the one before it, and the replay skips frames at or
//!    below the store file's LSN. After a clean close the file is empty.

use crate::base::config::Config;
use crate::base::error::{Error, Result};
use redb::StorageBackend;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// The journal of a store in journal mode.
#[derive(Debug)]
pub(crate) struct Journal {
    file: Arc<dyn StorageBackend>,
    path: PathBuf,
    len: u64,
    /// The salt of the frames written since the last checkpoint, which that checkpoint
    /// stored in the store file.
    salt: u64,
    /// Why the journal must not be appended to again: a failed append or sync.
    broken: Option<String>,
}

/// The journal file of the store file `store`: its name with `.journal` added.
pub(crate) fn journal_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

impl Journal {
    /// Opens (or creates) the journal of the store `config` describes: the configured
    /// journal backend, else the file beside the store file.
    pub(crate) fn open(config: &Config) -> Result<Journal> {
        let path = journal_path(&config.path);
        let file: Arc<dyn StorageBackend> = if let Some(backend) = &config.journal_backend {
            Arc::clone(backend)
        } else {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| io_error(&path, e))?;
            Arc::new(LogFile(Mutex::new(file)))
        };
        // Appends start at the beginning: what the file holds is replayed first (and
        // `restart` follows the replay, with the salt that replay stored).
        Ok(Journal { file, path, len: 0, salt: 0, broken: None })
    }

    /// The journal's file, for errors.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes appended since the last checkpoint (not the file's length).
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The salt of the frames since the last checkpoint.
    pub(crate) fn salt(&self) -> u64 {
        self.salt
    }

    /// Everything in the file.
    pub(crate) fn read_all(&self) -> Result<Vec<u8>> {
        let len = self.file.len().map_err(|e| io_error(&self.path, e))?;
        let len = usize::try_from(len).map_err(|_| {
            io_error(&self.path, std::io::Error::other("the journal does not fit in memory"))
        })?;
        let mut bytes = vec![0; len];
        self.file.read(0, &mut bytes).map_err(|e| io_error(&self.path, e))?;
        Ok(bytes)
    }

    /// Appends `frame` and syncs it: once this returns `Ok`, the frame survives a crash
    /// or a power loss. On `Err` the frame may or may not be in the file, whole or torn,
    /// and the journal must not be appended to again (a failed sync leaves no way to
    /// know what the disk holds).
    pub(crate) fn append(&mut self, frame: &[u8]) -> Result<()> {
        if let Some(reason) = &self.broken {
            let refused = std::io::Error::other(format!("the journal failed earlier: {reason}"));
            return Err(io_error(&self.path, refused));
        }
        let appended = self.file.write(self.len, frame).and_then(|()| self.file.sync_data());
        if let Err(e) = appended {
            let e = io_error(&self.path, e);
            self.broken = Some(e.to_string());
            return Err(e);
        }
        self.len += frame.len() as u64;
        Ok(())
    }

    /// Why the journal refuses appends, after a failed one.
    pub(crate) fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Starts the journal over at offset 0 with frames salted `salt`, after a
    /// checkpoint made every frame in it durable in the store file and stored `salt`
    /// there. The file keeps its length and its old frames, which the next groups
    /// overwrite: nothing is written or synced here.
    pub(crate) fn restart(&mut self, salt: u64) {
        self.len = 0;
        self.salt = salt;
    }

    /// Empties the file and syncs that, at a clean close after the last checkpoint: a
    /// closed store leaves an empty journal, which tools that read the store file alone
    /// accept, and frames that no store file can be confused with.
    pub(crate) fn empty(&mut self) -> Result<()> {
        let emptied = self.file.set_len(0).and_then(|()| self.file.sync_data());
        if let Err(e) = emptied {
            let e = io_error(&self.path, e);
            self.broken = Some(e.to_string());
            return Err(e);
        }
        self.len = 0;
        Ok(())
    }
}

/// A salt for the frames after a checkpoint: different, with overwhelming likelihood,
/// from every salt drawn before it, in this process or any other.
pub(crate) fn fresh_salt() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    hasher.write_u128(now.map_or(0, |d| d.as_nanos()));
    hasher.write_u32(std::process::id());
    hasher.finish()
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Io { file: path.to_owned(), source: Arc::new(e) }
}

/// The journal on a file of its own.
#[derive(Debug)]
struct LogFile(Mutex<File>);

impl LogFile {
    fn file(&self) -> std::sync::MutexGuard<'_, File> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StorageBackend for LogFile {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.file().metadata()?.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let mut file = self.file();
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(out)
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.file().set_len(len)
    }

    fn sync_data(&self) -> std::io::Result<()> {
        self.file().sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut file = self.file();
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(data)
    }
}
