//! Online backup: a consistent copy of the whole file at one LSN, taken from a redb
//! read transaction (an MVCC snapshot) while the writer goes on committing.

use crate::api::store::Store;
use crate::base::error::{Error, Result};
use crate::base::manage::BackupReport;
use crate::base::version::Lsn;
use crate::engine::manage_op::{ManageOp, Managed};
use crate::storage::copy::{Copied, copy_tables};
use redb::{Database, ReadTransaction};
use std::path::{Path, PathBuf};
use std::sync::Arc;

impl Store {
    /// Writes a consistent copy of the store to a new file at `path`, while the store
    /// keeps serving reads and committing writes. The copy holds exactly the groups up
    /// to the LSN in the report: every table of the file (views, indexes, catalog,
    /// source positions, change feed, meta), so it opens with [`Store::open`] as the
    /// store was at that LSN. It is written in the same directory under the temporary
    /// name `.<file name>.partial`, synced, and only then linked at `path`: a crash
    /// mid-backup never leaves a half backup at `path` (a leftover temporary file is
    /// replaced by the next backup to the same path). The copy is compact: it holds no
    /// free pages.
    ///
    /// The writer only takes the snapshot; the copy runs on the calling thread. While
    /// it runs, redb keeps the pages the snapshot sees, so the file may grow, and
    /// [`compact`](Store::compact) waits for it to end (it fails meanwhile).
    ///
    /// # Examples
    ///
    /// ```
    /// use viewstore::{Store, ViewDef};
    ///
    /// const PAGES: ViewDef<u64, String> = ViewDef::new("pages");
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("views.redb"))?;
    /// store.view(&PAGES)?.put(&1, "<h1>ada</h1>".to_string(), 1)?;
    /// let report = store.backup(dir.path().join("backup.redb"))?;
    /// assert_eq!((report.lsn, report.records), (store.lsn(), 1));
    ///
    /// let copy = Store::open(dir.path().join("backup.redb"))?;
    /// assert_eq!(copy.view(&PAGES)?.get(&1).as_deref().map(String::as_str), Some("<h1>ada</h1>"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::FileExists`] when `path` exists (nothing is written);
    /// [`Error::UnknownTable`] for a file holding a table this build cannot copy;
    /// [`Error::Storage`] or [`Error::Io`] when reading the store or writing the copy
    /// fails (the temporary file is removed); [`Error::Closed`].
    pub fn backup(&self, path: impl AsRef<Path>) -> Result<BackupReport> {
        let path = path.as_ref();
        let io = |e| Error::Io { file: path.to_owned(), source: Arc::new(e) };
        if path.symlink_metadata().is_ok() {
            return Err(Error::FileExists { file: path.to_owned() });
        }
        let partial = partial_path(path).ok_or_else(|| {
            io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "a backup needs a file name"))
        })?;
        match std::fs::remove_file(&partial) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Io { file: partial, source: Arc::new(e) }),
        }
        let (snapshot, lsn) = self.backup_snapshot()?;
        let written = (|| -> Result<Copied> {
            let db = redb::Builder::new()
                .create(&partial)
                .map_err(Error::at(&partial, "creating the backup"))?;
            let copied = self.copy_into(&snapshot, db, &partial)?;
            drop(snapshot);
            link_new(&partial, path)?;
            Ok(copied)
        })();
        // Whatever happened, the temporary name goes: linked, the copy lives at `path`.
        let _ = std::fs::remove_file(&partial);
        let copied = written?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        let bytes = std::fs::metadata(path).map_err(io)?.len();
        Ok(report(path.to_owned(), lsn, copied, bytes))
    }

    /// The writer's snapshot of the latest commit, and its LSN.
    fn backup_snapshot(&self) -> Result<(ReadTransaction, Lsn)> {
        match self.manage(ManageOp::Snapshot)? {
            Managed::Snapshot(txn, lsn) => Ok((txn, lsn)),
            _ => Err(self.poisoned("the writer answered a backup with another answer".into())),
        }
    }

    /// Copies `snapshot` into `db`, a new database, in one transaction that syncs on
    /// commit, and closes `db`.
    fn copy_into(&self, snapshot: &ReadTransaction, db: Database, target: &Path) -> Result<Copied> {
        let mut txn = db.begin_write().map_err(Error::at(target, "writing the backup"))?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| Error::storage(target, "writing the backup", redb::Error::from(e)))?;
        let copied = copy_tables(snapshot, &txn, self.path(), target)?;
        txn.commit().map_err(Error::at(target, "committing the backup"))?;
        drop(db);
        Ok(copied)
    }

    /// [`Store::backup`] into a storage backend instead of a file: one transaction,
    /// so a crash leaves the backend without a commit or with the whole copy.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __backup_to_backend(
        &self,
        backend: &Arc<dyn redb::StorageBackend>,
    ) -> Result<BackupReport> {
        let target = Path::new("(backend)");
        let (snapshot, lsn) = self.backup_snapshot()?;
        let db = redb::Builder::new()
            .create_with_backend(crate::base::config::SharedBackend(Arc::clone(backend)))
            .map_err(Error::at(target, "creating the backup"))?;
        let copied = self.copy_into(&snapshot, db, target)?;
        let bytes =
            backend.len().map_err(|e| Error::Io { file: target.into(), source: e.into() })?;
        Ok(report(target.to_owned(), lsn, copied, bytes))
    }
}

fn report(path: PathBuf, lsn: Lsn, copied: Copied, bytes: u64) -> BackupReport {
    BackupReport {
        path,
        lsn,
        tables: copied.tables,
        records: copied.records,
        rows: copied.rows,
        bytes,
    }
}

/// `.<file name>.partial` beside `path`.
fn partial_path(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy();
    Some(path.with_file_name(format!(".{name}.partial")))
}

/// Gives the synced copy at `from` its final name `to`, never replacing a file that
/// appeared at `to` meanwhile (a hard link fails where `to` exists).
fn link_new(from: &Path, to: &Path) -> Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(Error::FileExists { file: to.to_owned() })
        }
        Err(e) => Err(Error::Io { file: to.to_owned(), source: Arc::new(e) }),
    }
}
