//! A view's blocking conveniences: one operation in its own batch, waiting for the
//! commit, and what they return. Their async forms are in `writes_async.rs`.

use crate::api::batch::Batch;
use crate::api::view::View;
use crate::base::codec::Codec;
use crate::base::error::{Error, Result};
use crate::base::version::{Change, Lsn, Outcome, Receipt, Version};
use crate::schema::registration::{ViewKey, ViewValue};
use std::ops::Deref;
use std::path::Path;

/// The outcome of a batch of one operation, from its receipt.
pub(super) fn single_outcome(receipt: &Receipt, file: &Path) -> Result<Outcome> {
    // A batch of one operation is answered with exactly one outcome.
    debug_assert_eq!(receipt.outcomes.len(), 1, "a batch of one got another number of outcomes");
    receipt.outcomes.first().copied().ok_or_else(|| Error::Poisoned {
        file: file.to_owned(),
        reason: "the writer answered a batch of one operation without its outcome".into(),
    })
}

/// The count of a purge, from its outcome.
pub(super) fn purged_count(outcome: Outcome, file: &Path) -> Result<u64> {
    match outcome {
        Outcome::Purged { count } => Ok(count),
        // A purge is answered with `Purged`, even when it removes nothing.
        other => {
            debug_assert!(false, "a purge was answered with {other:?}");
            Err(Error::Poisoned {
                file: file.to_owned(),
                reason: format!("the writer answered a purge with {other:?}"),
            })
        }
    }
}

/// What a blocking write of a [`View`] returns: the operation's [`Outcome`] and the
/// LSN of the group it committed in, as its [`Receipt`](crate::Receipt) has them.
///
/// It compares equal to its outcome and dereferences to it, so that
/// `assert_eq!(view.put(..)?, Outcome::Applied)` and `view.put(..)?.is_applied()` read
/// as they would on an `Outcome`; `match` on [`outcome`](Written::outcome). The LSN
/// is for reading your writes from another thread than the one that wrote (which
/// already sees them when the call returns): [`Store::wait_for`](crate::Store::wait_for)
/// with it returns once the write is visible there.
///
/// # Examples
///
/// ```
/// # use viewstore::{Outcome, Store, ViewDef};
/// const NAMES: ViewDef<u64, String> = ViewDef::new("names");
/// # let dir = tempfile::tempdir()?;
/// # let store = Store::open(dir.path().join("s.redb"))?;
/// let names = store.view(&NAMES)?;
/// let written = names.put(&1, "ada".to_string(), 1)?;
/// assert_eq!(written, Outcome::Applied);
/// assert!(written.is_applied());
///
/// // Another thread serving the next request reads its own write.
/// let (reader, lsn) = (names.clone(), written.lsn);
/// std::thread::spawn(move || -> viewstore::Result<()> {
///     reader.store().wait_for(lsn)?;
///     assert_eq!(reader.get(&1).as_deref().map(String::as_str), Some("ada"));
///     Ok(())
/// })
/// .join()
/// .expect("the reader ran")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Written {
    /// The operation's outcome.
    pub outcome: Outcome,
    /// The LSN of the group the operation committed in: once
    /// [`Store::wait_for`](crate::Store::wait_for) returns for it, every read sees the
    /// write. For an operation that changed nothing (`Stale`, `Conflict`,
    /// `Unchanged`), the LSN of its group all the same, or the store's LSN at the time
    /// when its group committed nothing.
    pub lsn: Lsn,
}

impl Deref for Written {
    type Target = Outcome;

    fn deref(&self) -> &Outcome {
        &self.outcome
    }
}

impl PartialEq<Outcome> for Written {
    fn eq(&self, other: &Outcome) -> bool {
        self.outcome == *other
    }
}

impl PartialEq<Written> for Outcome {
    fn eq(&self, other: &Written) -> bool {
        *self == other.outcome
    }
}

impl From<Written> for Outcome {
    fn from(written: Written) -> Outcome {
        written.outcome
    }
}

impl<K: ViewKey, V: ViewValue, C: Codec<V> + Clone> View<K, V, C> {
    fn write(&self, fill: impl FnOnce(&mut Batch) -> Result<&mut Batch>) -> Result<Written> {
        let mut batch = Batch::new();
        fill(&mut batch)?;
        let receipt = self.store.submit(batch)?.wait()?;
        let outcome = single_outcome(&receipt, self.store.path())?;
        Ok(Written { outcome, lsn: receipt.lsn })
    }

    /// Writes `value` at `version` and waits for the commit. See [`Batch::put`]. Every
    /// blocking write returns its outcome with the LSN of its commit, [`Written`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use viewstore::{Outcome, Store, ViewDef};
    /// const NAMES: ViewDef<u64, String> = ViewDef::new("names");
    /// # let dir = tempfile::tempdir()?;
    /// # let store = Store::open(dir.path().join("s.redb"))?;
    /// let names = store.view(&NAMES)?;
    /// assert_eq!(names.put(&1, "new".to_string(), 5)?, Outcome::Applied);
    /// assert_eq!(names.put(&1, "old".to_string(), 4)?, Outcome::Stale { current: 5 });
    /// assert_eq!(names.get(&1).as_deref().map(String::as_str), Some("new"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Blocks the calling thread until the write is committed (durable, with
    /// `Durability::Immediate`) and visible, and while the queue is full: in async
    /// code, await [`put_async`](View::put_async), or call it inside
    /// `spawn_blocking`.
    pub fn put(&self, key: &K, value: V, version: Version) -> Result<Written> {
        self.write(|b| b.put(self, key, value, version))
    }

    /// Deletes `key` at `version` and waits for the commit. See [`Batch::delete`].
    ///
    /// Blocks the calling thread until the write is committed (durable, with
    /// `Durability::Immediate`) and visible, and while the queue is full: in async
    /// code, await [`delete_async`](View::delete_async), or call it inside
    /// `spawn_blocking`.
    pub fn delete(&self, key: &K, version: Version) -> Result<Written> {
        self.write(|b| b.delete(self, key, version))
    }

    /// Compare-and-set, waiting for the commit. See [`Batch::compare_and_set`].
    ///
    /// Blocks the calling thread until the write is committed (durable, with
    /// `Durability::Immediate`) and visible, and while the queue is full: in async
    /// code, await [`compare_and_set_async`](View::compare_and_set_async), or call it inside
    /// `spawn_blocking`.
    pub fn compare_and_set(
        &self,
        key: &K,
        expected: Option<Version>,
        version: Version,
        value: V,
    ) -> Result<Written> {
        self.write(|b| b.compare_and_set(self, key, expected, version, value))
    }

    /// Compare-and-delete, waiting for the commit. See [`Batch::compare_and_delete`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use viewstore::{Outcome, Store, ViewDef};
    /// const NAMES: ViewDef<u64, String> = ViewDef::new("names");
    /// # let dir = tempfile::tempdir()?;
    /// # let store = Store::open(dir.path().join("s.redb"))?;
    /// let names = store.view(&NAMES)?;
    /// names.put(&1, "ada".to_string(), 5)?;
    /// assert_eq!(names.compare_and_delete(&1, 4, 6)?, Outcome::Conflict { current: Some(5) });
    /// assert_eq!(names.compare_and_delete(&1, 5, 6)?, Outcome::Applied);
    /// assert_eq!(names.get(&1), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Blocks the calling thread until the write is committed (durable, with
    /// `Durability::Immediate`) and visible, and while the queue is full: in async
    /// code, await [`compare_and_delete_async`](View::compare_and_delete_async), or call it inside
    /// `spawn_blocking`.
    pub fn compare_and_delete(
        &self,
        key: &K,
        expected: Version,
        version: Version,
    ) -> Result<Written> {
        self.write(|b| b.compare_and_delete(self, key, expected, version))
    }

    /// Read-modify-write inside the writer, waiting for the commit. See
    /// [`Batch::update`] and [`Change`](crate::Change).
    ///
    /// Blocks the calling thread until the write is committed (durable, with
    /// `Durability::Immediate`) and visible, and while the queue is full: in async
    /// code, await [`update_async`](View::update_async), or call it inside
    /// `spawn_blocking`.
    pub fn update<F, R>(&self, key: &K, version: Version, f: F) -> Result<Written>
    where
        F: FnOnce(Option<&V>) -> R + Send + 'static,
        R: Into<Change<V>>,
    {
        self.write(|b| b.update(self, key, version, f))
    }

    /// Read-modify-write at the version after the stored one, waiting for the commit.
    /// See [`Batch::update_next`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use viewstore::{Store, ViewDef};
    /// const VISITS: ViewDef<String, u64> = ViewDef::new("visits");
    /// # let dir = tempfile::tempdir()?;
    /// # let store = Store::open(dir.path().join("s.redb"))?;
    /// let visits = store.view(&VISITS)?;
    /// for _ in 0..3 {
    ///     visits.update_next(&"/home".to_string(), |n| Some(n.copied().unwrap_or(0) + 1))?;
    /// }
    /// assert_eq!(visits.get_versioned("/home").map(|(v, n)| (v, *n)), Some((3, 3)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update_next<F, R>(&self, key: &K, f: F) -> Result<Written>
    where
        F: FnOnce(Option<&V>) -> R + Send + 'static,
        R: Into<Change<V>>,
    {
        self.write(|b| b.update_next(self, key, f))
    }

    /// Removes this view's tombstones below `below` and returns how many there were.
    /// See [`Batch::purge_tombstones`].
    ///
    /// Blocks the calling thread until the write is committed (durable, with
    /// `Durability::Immediate`) and visible, and while the queue is full: in async
    /// code, await [`purge_tombstones_async`](View::purge_tombstones_async), or call it inside
    /// `spawn_blocking`.
    pub fn purge_tombstones(&self, below: Version) -> Result<u64> {
        let written = self.write(|b| b.purge_tombstones(self, below))?;
        purged_count(written.outcome, self.store.path())
    }
}
