//! Managing the views of a store: listing them, dropping, clearing and renaming one,
//! and compacting the file. Each runs in the writer, between groups.

use crate::api::store::Store;
use crate::base::error::{Error, Result};
use crate::base::manage::{CompactReport, ViewInfo};
use crate::base::version::Lsn;
use crate::engine::manage_op::{ManageOp, Managed};
use crate::engine::writer::Request;

impl Store {
    /// Sends a management request to the writer and waits for its answer.
    pub(crate) fn manage(&self, op: ManageOp) -> Result<Managed> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Request::Manage { op, reply })?;
        answer.recv().map_err(|_| self.gone_error())?
    }

    /// The error for an answer of the wrong kind, which the writer never gives.
    pub(super) fn mismatched_answer(&self) -> Error {
        debug_assert!(false, "the writer answered a management request with another's answer");
        self.poisoned("the writer answered a management request with another's answer".into())
    }

    /// Every view the file holds, opened in this process or not (opened in an earlier
    /// run, or by another program), in name order: its definition as the file records
    /// it, its record and tombstone counts and whether it is open here (see
    /// [`ViewInfo`]). Runs in the writer between groups, so the counts are those of
    /// one LSN; a view not open here is counted by one pass over its table, during
    /// which writes wait.
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
    /// let views = store.views()?;
    /// assert_eq!((views[0].name.as_str(), views[0].records, views[0].open), ("pages", 1, true));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the file cannot be read, [`Error::Decode`] for an
    /// unreadable catalog row or record, [`Error::Closed`].
    pub fn views(&self) -> Result<Vec<ViewInfo>> {
        match self.manage(ManageOp::List)? {
            Managed::Views(views) => Ok(views),
            _ => Err(self.mismatched_answer()),
        }
    }

    /// Drops a view that is not open in this process: its record table, its index
    /// tables and its catalog rows, in one transaction that takes the next LSN. A view
    /// of the same name can then be opened afresh, with any types. Changes already in
    /// the change feed stay there; stored source positions are store-wide and stay too.
    ///
    /// # Examples
    ///
    /// ```
    /// use viewstore::{Store, ViewDef};
    ///
    /// const OLD: ViewDef<u64, String> = ViewDef::new("old");
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("views.redb");
    /// # Store::open(&path)?.view(&OLD)?.put(&1, "x".to_string(), 1)?;
    /// // In a later run, before opening the view:
    /// let store = Store::open(&path)?;
    /// store.drop_view("old")?;
    /// assert!(store.views()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::ViewOpen`] when a `View` handle was made for it by this `Store`;
    /// [`Error::UnknownView`]; [`Error::InvalidViewName`]; [`Error::Storage`];
    /// [`Error::Closed`]. On any error nothing changed.
    pub fn drop_view(&self, view: &str) -> Result<Lsn> {
        match self.manage(ManageOp::Drop(view.to_owned()))? {
            Managed::Committed(lsn) => Ok(lsn),
            _ => Err(self.mismatched_answer()),
        }
    }

    /// Empties a view: every record, tombstone and index entry gone, its definition
    /// kept, in one transaction that takes the next LSN. Works on a view open in this
    /// process: readers see all of its records up to the previous LSN and none from
    /// this one on, across the view and its indexes, and its handles keep writing.
    ///
    /// With tombstones gone, a later write at any version applies. For a view open in
    /// this process with a change feed, the feed records one
    /// [`ChangeKind::Purged`](crate::ChangeKind::Purged) change per key the view held;
    /// a view not open here has no known feed mode, and its clear records nothing.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownView`]; [`Error::InvalidViewName`]; [`Error::Storage`];
    /// [`Error::Closed`]. On any error nothing changed.
    pub fn clear_view(&self, view: &str) -> Result<Lsn> {
        match self.manage(ManageOp::Clear(view.to_owned()))? {
            Managed::Committed(lsn) => Ok(lsn),
            _ => Err(self.mismatched_answer()),
        }
    }

    /// Renames a view that is not open in this process: its record table, index tables
    /// and catalog rows move to `new` in one transaction that takes the next LSN. Its
    /// records and indexes are kept; open it under the new name. Changes already in
    /// the change feed keep the old name.
    ///
    /// # Errors
    ///
    /// [`Error::ViewOpen`] when a `View` handle was made for `old` by this `Store`;
    /// [`Error::UnknownView`] for `old`; [`Error::ViewExists`] when the file holds a
    /// view named `new` (or `new` is `old`); [`Error::InvalidViewName`] for either;
    /// [`Error::Storage`]; [`Error::Closed`]. On any error nothing changed.
    pub fn rename_view(&self, old: &str, new: &str) -> Result<Lsn> {
        match self.manage(ManageOp::Rename(old.to_owned(), new.to_owned()))? {
            Managed::Committed(lsn) => Ok(lsn),
            _ => Err(self.mismatched_answer()),
        }
    }

    /// Exchanges two views: their record tables, index tables and catalog rows (types,
    /// schema versions, shapes, sources), in one transaction that takes the next LSN,
    /// through a temporary name. The blue/green rebuild: a second projector fills
    /// `profiles_next` from the source while `profiles` serves, then the service swaps
    /// them. A crash leaves the two exchanged or not at all.
    ///
    /// Two views open in this process swap in memory too, in the same published root:
    /// each `View` handle keeps its name and now reads the other's records and indexes,
    /// and readers see the old view or the new one whole. That takes one definition for
    /// both (types, codec, schema version, shapes, indexes, sources, feed mode); open
    /// views of different definitions, or a view open on one side only, are refused, as
    /// their handles would read data of another type. Views not open here swap
    /// whatever their definitions. Changes already in the change feed keep their view's
    /// name; stored source positions are store-wide and stay: swap once the rebuilding
    /// projector has passed the serving one's positions, so that the events it then
    /// sees again are stale by their versions.
    ///
    /// # Examples
    ///
    /// ```
    /// use viewstore::{Store, ViewDef};
    ///
    /// const LIVE: ViewDef<u64, String> = ViewDef::new("profiles");
    /// const NEXT: ViewDef<u64, String> = ViewDef::new("profiles_next");
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("views.redb");
    /// # {
    /// #     let store = Store::open(&path)?;
    /// #     store.view(&LIVE)?.put(&1, "old".to_string(), 1)?;
    /// #     store.view(&NEXT)?.put(&1, "rebuilt".to_string(), 1)?;
    /// # }
    /// // In a process that has not opened either view:
    /// let store = Store::open(&path)?;
    /// store.swap_views("profiles", "profiles_next")?;
    /// assert_eq!(store.view(&LIVE)?.get(&1).as_deref().map(String::as_str), Some("rebuilt"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::ViewOpen`] when a `View` handle was made by this `Store` for one of
    /// them only, or for both with different definitions; [`Error::UnknownView`] for
    /// either; [`Error::ViewExists`] when `a` is `b`;
    /// [`Error::InvalidViewName`]; [`Error::Storage`]; [`Error::Closed`]. On any error
    /// nothing changed.
    pub fn swap_views(&self, a: &str, b: &str) -> Result<Lsn> {
        match self.manage(ManageOp::Swap(a.to_owned(), b.to_owned()))? {
            Managed::Committed(lsn) => Ok(lsn),
            _ => Err(self.mismatched_answer()),
        }
    }

    /// Reclaims the file's free space: redb moves the pages in use to the front of the
    /// file and truncates the rest. Runs in the writer, so writes wait for it (it
    /// rewrites every page that moves: seconds for a file of gigabytes); reads go on
    /// from memory. It needs no read of the file to be in progress: a running
    /// [`backup`](Store::backup) makes it fail with [`Error::Storage`] (retry once the
    /// backup is done). A backup is itself a compacted copy.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when redb refuses (a read in progress) or fails;
    /// [`Error::Io`] when the file's size cannot be read; [`Error::Closed`].
    pub fn compact(&self) -> Result<CompactReport> {
        match self.manage(ManageOp::Compact)? {
            Managed::Compacted(report) => Ok(report),
            _ => Err(self.mismatched_answer()),
        }
    }
}
