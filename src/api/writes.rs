//! A view's blocking conveniences: one operation in its own batch, waiting for the
//! commit. Their async forms are in `writes_async.rs`.

use crate::api::batch::Batch;
use crate::api::view::View;
use crate::base::codec::Codec;
use crate::base::error::{Error, Result};
use crate::base::version::{Change, Outcome, Receipt, Version};
use crate::schema::registration::{ViewKey, ViewValue};
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

impl<K: ViewKey, V: ViewValue, C: Codec<V> + Clone> View<K, V, C> {
    fn write(&self, fill: impl FnOnce(&mut Batch) -> Result<&mut Batch>) -> Result<Outcome> {
        let mut batch = Batch::new();
        fill(&mut batch)?;
        let receipt = self.store.submit(batch)?.wait()?;
        single_outcome(&receipt, self.store.path())
    }

    /// Writes `value` at `version` and waits for the commit. See [`Batch::put`].
    ///
    /// Blocks the calling thread until the write is committed (durable, with
    /// `Durability::Immediate`) and visible, and while the queue is full: in async
    /// code, await
    /// [`put_async`](View::put_async), or call it inside `spawn_blocking`.
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
    pub fn put(&self, key: &K, value: V, version: Version) -> Result<Outcome> {
        self.write(|b| b.put(self, key, value, version))
    }

    /// Deletes `key` at `version` and waits for the commit. See [`Batch::delete`].
    ///
    /// Blocks the calling thread until the write is committed (durable, with
    /// `Durability::Immediate`) and visible, and while the queue is full: in async
    /// code, await
    /// [`delete_async`](View::delete_async), or call it inside `spawn_blocking`.
    pub fn delete(&self, key: &K, version: Version) -> Result<Outcome> {
        self.write(|b| b.delete(self, key, version))
    }

    /// Compare-and-set, waiting for the commit. See [`Batch::compare_and_set`].
    ///
    /// Blocks the calling thread until the write is committed (durable, with
    /// `Durability::Immediate`) and visible, and while the queue is full: in async
    /// code, await
    /// [`compare_and_set_async`](View::compare_and_set_async), or call it inside `spawn_blocking`.
    pub fn compare_and_set(
        &self,
        key: &K,
        expected: Option<Version>,
        version: Version,
        value: V,
    ) -> Result<Outcome> {
        self.write(|b| b.compare_and_set(self, key, expected, version, value))
    }

    /// Compare-and-delete, waiting for the commit. See [`Batch::compare_and_delete`].
    ///
    /// Blocks the calling thread until the write is committed (durable, with
    /// `Durability::Immediate`) and visible, and while the queue is full: in async
    /// code, await
    /// [`compare_and_delete_async`](View::compare_and_delete_async), or call it inside `spawn_blocking`.
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
    pub fn compare_and_delete(
        &self,
        key: &K,
        expected: Version,
        version: Version,
    ) -> Result<Outcome> {
        self.write(|b| b.compare_and_delete(self, key, expected, version))
    }

    /// Read-modify-write inside the writer, waiting for the commit. See
    /// [`Batch::update`] and [`Change`](crate::Change).
    ///
    /// Blocks the calling thread until the write is committed (durable, with
    /// `Durability::Immediate`) and visible, and while the queue is full: in async
    /// code, await
    /// [`update_async`](View::update_async), or call it inside `spawn_blocking`.
    pub fn update<F, R>(&self, key: &K, version: Version, f: F) -> Result<Outcome>
    where
        F: FnOnce(Option<&V>) -> R + Send + 'static,
        R: Into<Change<V>>,
    {
        self.write(|b| b.update(self, key, version, f))
    }

    /// Removes this view's tombstones below `below` and returns how many there were.
    /// See [`Batch::purge_tombstones`].
    ///
    /// Blocks the calling thread until the write is committed (durable, with
    /// `Durability::Immediate`) and visible, and while the queue is full: in async
    /// code, await
    /// [`purge_tombstones_async`](View::purge_tombstones_async), or call it inside `spawn_blocking`.
    pub fn purge_tombstones(&self, below: Version) -> Result<u64> {
        purged_count(self.write(|b| b.purge_tombstones(self, below))?, self.store.path())
    }
}
