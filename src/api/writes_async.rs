//! A view's async conveniences: one operation in its own batch, queued with
//! [`Store::submit_async`](crate::Store::submit_async) and awaited through its
//! [`Ticket`](crate::Ticket). The blocking forms are in `writes.rs`.
//!
//! Each method builds its batch at the call, on the caller's thread (a key or value
//! that does not encode is refused there, and the future resolves with that error), and
//! returns a [`WriteFuture`], which borrows nothing.

use crate::api::asynchronous::SubmitFuture;
use crate::api::batch::Batch;
use crate::api::view::View;
use crate::api::writes::{purged_count, single_outcome};
use crate::base::codec::Codec;
use crate::base::error::{Error, Result};
use crate::base::version::{Change, Outcome, Version};
use crate::engine::ticket::Ticket;
use crate::schema::registration::{ViewKey, ViewValue};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The future of a view's async write ([`View::put_async`] and the others): resolves
/// with the operation's [`Outcome`] once it is committed and visible, having waited
/// for room in the queue and for the commit without blocking a thread.
///
/// `Send + 'static` and `Unpin`: it can be spawned, stored, or polled from any
/// executor. Nothing is queued until it is first polled. **Cancel safety**: dropped
/// while it still waits for room, the write is not made (see [`SubmitFuture`]);
/// dropped once it was queued, the write is made all the same, unobserved.
#[must_use = "a future does nothing unless it is awaited: the write is not queued"]
pub struct WriteFuture {
    state: Writing,
    file: Arc<Path>,
}

enum Writing {
    /// The batch could not be built or submitted; the error, until it is taken.
    Failed(Option<Error>),
    Submitting(SubmitFuture),
    Committing(Ticket),
}

impl Future for WriteFuture {
    type Output = Result<Outcome>;

    /// Polled again after it resolved, it gives [`Error::Closed`], as a ticket does.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                Writing::Failed(error) => {
                    return Poll::Ready(Err(error.take().unwrap_or(Error::Closed)));
                }
                Writing::Submitting(submit) => match Pin::new(submit).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(ticket)) => this.state = Writing::Committing(ticket),
                    Poll::Ready(Err(error)) => {
                        this.state = Writing::Failed(None);
                        return Poll::Ready(Err(error));
                    }
                },
                Writing::Committing(ticket) => {
                    return Pin::new(ticket)
                        .poll(cx)
                        .map(|receipt| single_outcome(&receipt?, &this.file));
                }
            }
        }
    }
}

impl std::fmt::Debug for WriteFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            Writing::Failed(_) => "failed",
            Writing::Submitting(_) => "waiting for room",
            Writing::Committing(_) => "waiting for the commit",
        };
        f.debug_struct("WriteFuture").field("state", &state).finish_non_exhaustive()
    }
}

impl<K: ViewKey, V: ViewValue, C: Codec<V> + Clone> View<K, V, C> {
    /// One operation in its own batch, submitted when the future is first polled.
    fn write_async(&self, fill: impl FnOnce(&mut Batch) -> Result<&mut Batch>) -> WriteFuture {
        let mut batch = Batch::new();
        let state = match fill(&mut batch).map(|_| ()) {
            Ok(()) => Writing::Submitting(self.store.submit_async(batch)),
            Err(e) => Writing::Failed(Some(e)),
        };
        WriteFuture { state, file: Arc::clone(&self.store.inner.file) }
    }

    /// Writes `value` at `version`, waiting for room and for the commit without
    /// blocking a thread. The async form of [`put`](View::put); see [`Batch::put`].
    ///
    /// # Examples
    ///
    /// ```
    /// use viewstore::{Outcome, Store, ViewDef};
    ///
    /// const NAMES: ViewDef<u64, String> = ViewDef::new("names");
    /// # let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("s.redb"))?;
    /// let names = store.view(&NAMES)?;
    /// let runtime = tokio::runtime::Builder::new_multi_thread().build()?;
    /// // The future borrows nothing: it can be spawned.
    /// let write = runtime.spawn(names.put_async(&1, "ada".to_string(), 5));
    /// assert_eq!(runtime.block_on(write)??, Outcome::Applied);
    /// assert_eq!(names.get(&1).as_deref().map(String::as_str), Some("ada"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_async(&self, key: &K, value: V, version: Version) -> WriteFuture {
        self.write_async(|b| b.put(self, key, value, version))
    }

    /// Deletes `key` at `version`, without blocking a thread. The async form of
    /// [`delete`](View::delete); see [`Batch::delete`].
    pub fn delete_async(&self, key: &K, version: Version) -> WriteFuture {
        self.write_async(|b| b.delete(self, key, version))
    }

    /// Compare-and-set, without blocking a thread. The async form of
    /// [`compare_and_set`](View::compare_and_set); see [`Batch::compare_and_set`].
    pub fn compare_and_set_async(
        &self,
        key: &K,
        expected: Option<Version>,
        version: Version,
        value: V,
    ) -> WriteFuture {
        self.write_async(|b| b.compare_and_set(self, key, expected, version, value))
    }

    /// Compare-and-delete, without blocking a thread. The async form of
    /// [`compare_and_delete`](View::compare_and_delete); see
    /// [`Batch::compare_and_delete`].
    pub fn compare_and_delete_async(
        &self,
        key: &K,
        expected: Version,
        version: Version,
    ) -> WriteFuture {
        self.write_async(|b| b.compare_and_delete(self, key, expected, version))
    }

    /// Read-modify-write inside the writer, without blocking a thread. The async form
    /// of [`update`](View::update); see [`Batch::update`] and [`Change`].
    ///
    /// # Examples
    ///
    /// ```
    /// use viewstore::{Outcome, Store, ViewDef};
    ///
    /// const COUNTS: ViewDef<String, u64> = ViewDef::new("counts");
    /// # let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("s.redb"))?;
    /// let counts = store.view(&COUNTS)?;
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// let hits = "hits".to_string();
    /// runtime.block_on(async {
    ///     for version in 1..=3 {
    ///         let bump = counts.update_async(&hits, version, |n| Some(n.copied().unwrap_or(0) + 1));
    ///         assert_eq!(bump.await?, Outcome::Applied);
    ///     }
    ///     Ok::<(), viewstore::Error>(())
    /// })?;
    /// assert_eq!(counts.get(&hits).as_deref(), Some(&3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update_async<F, R>(&self, key: &K, version: Version, f: F) -> WriteFuture
    where
        F: FnOnce(Option<&V>) -> R + Send + 'static,
        R: Into<Change<V>>,
    {
        self.write_async(|b| b.update(self, key, version, f))
    }

    /// Removes this view's tombstones below `below` and resolves with how many there
    /// were, without blocking a thread. The async form of
    /// [`purge_tombstones`](View::purge_tombstones). The future is `Send + 'static`.
    pub fn purge_tombstones_async(
        &self,
        below: Version,
    ) -> impl Future<Output = Result<u64>> + Send + use<K, V, C> {
        let write = self.write_async(|b| b.purge_tombstones(self, below));
        async move {
            let file = Arc::clone(&write.file);
            purged_count(write.await?, &file)
        }
    }
}
