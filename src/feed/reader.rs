//! The untyped feed reader: every view's changes, group by group, as the store records
//! them.

use crate::api::store::Store;
use crate::base::error::{Error, Result};
use crate::base::feed::FeedGroup;
use crate::base::version::Lsn;
use crate::mem::feed_log::{FeedLog, Next};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Follows the store's change feed from an LSN: the committed groups with changes in
/// views with a feed ([`ViewDef::with_feed`](crate::ViewDef::with_feed)), in LSN order,
/// each once, none missing. Made by [`Store::feed_after`].
///
/// A group is shown only once readers of the store can see it, and once it is durable
/// (with [`Durability::Periodic`](crate::Durability::Periodic), up to one interval
/// later), so that what a reader took never disappears in a crash. Readers never slow
/// the writer: a slow one falls behind, and if the feed's retention passes it, its next
/// read fails with [`Error::FeedPruned`].
///
/// Read it blocking ([`next_timeout`](FeedReader::next_timeout), or as an `Iterator`
/// that ends when the store closes) or async (`futures_core::Stream`, or
/// [`next_async`](FeedReader::next_async)). It holds no `Store` handle: it does not keep
/// the store open.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use viewstore::{FeedMode, Lsn, Store, ViewDef};
///
/// const NAMES: ViewDef<u64, String> = ViewDef::new("names").with_feed(FeedMode::Values);
/// # let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path().join("s.redb"))?;
/// let names = store.view(&NAMES)?;
/// let mut feed = store.feed_after(Lsn::new(0))?;
/// names.put(&1, "ada".to_string(), 1)?;
/// let group = feed.next_timeout(Duration::from_secs(5))?.expect("one group");
/// assert_eq!(group.changes.len(), 1);
/// assert_eq!(&*group.changes[0].view, "names");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FeedReader {
    log: Arc<FeedLog>,
    /// The LSN of the last group read (or the starting point).
    after: Lsn,
    /// The iterator met a gap it reported: it yields nothing more.
    ended: bool,
}

impl std::fmt::Debug for FeedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedReader").field("after", &self.after).finish_non_exhaustive()
    }
}

impl Store {
    /// A reader of the change feed from just after `lsn`: `Lsn::new(0)` for all of it
    /// that is retained, [`Snapshot::lsn`](crate::Snapshot::lsn) to follow on from a
    /// snapshot with no gap and no duplicate.
    ///
    /// # Errors
    ///
    /// [`Error::FeedPruned`] when groups after `lsn` were pruned already: resync by
    /// reading a snapshot (at an LSN at or after the one the error names), then the feed
    /// after the snapshot's LSN.
    pub fn feed_after(&self, lsn: Lsn) -> Result<FeedReader> {
        let reader = FeedReader { log: Arc::clone(&self.inner.feed), after: lsn, ended: false };
        reader.check()?;
        Ok(reader)
    }
}

impl FeedReader {
    fn check(&self) -> Result<()> {
        let pruned = self.log.pruned_through();
        if self.after < pruned {
            return Err(Error::FeedPruned { after: self.after, readable_after: pruned });
        }
        Ok(())
    }

    /// The LSN of the last group read (or the one the reader started after).
    pub fn position(&self) -> Lsn {
        self.after
    }

    /// Takes what the feed log found: a group advances the reader.
    fn take(&mut self, next: Next) -> Option<Result<Arc<FeedGroup>>> {
        match next {
            Next::Group(group) => {
                self.after = group.lsn;
                Some(Ok(group))
            }
            Next::Pruned(readable_after) => {
                Some(Err(Error::FeedPruned { after: self.after, readable_after }))
            }
            Next::Closed => Some(Err(Error::Closed)),
            Next::Pending => None,
        }
    }

    /// The next group, waiting for it up to `timeout`; `Ok(None)` when none came in time.
    ///
    /// # Errors
    ///
    /// [`Error::FeedPruned`] when the feed was pruned past this reader;
    /// [`Error::Closed`] once the store closed and every group was read.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Arc<FeedGroup>>> {
        let deadline = Instant::now().checked_add(timeout);
        let next = self.log.wait_after(self.after, deadline);
        self.take(next).transpose()
    }

    /// The next group, awaited without blocking a thread; works under any executor.
    ///
    /// # Errors
    ///
    /// As [`next_timeout`](FeedReader::next_timeout).
    pub async fn next_async(&mut self) -> Result<Arc<FeedGroup>> {
        std::future::poll_fn(|cx| self.poll_group(cx)).await
    }

    pub(crate) fn poll_group(&mut self, cx: &Context<'_>) -> Poll<Result<Arc<FeedGroup>>> {
        match self.log.poll_after(self.after, cx) {
            Poll::Ready(next) => match self.take(next) {
                Some(result) => Poll::Ready(result),
                None => Poll::Pending,
            },
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Blocks for each group; ends when the store has closed and every group was read, or
/// after yielding an [`Error::FeedPruned`].
impl Iterator for FeedReader {
    type Item = Result<Arc<FeedGroup>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        match self.take(self.log.wait_after(self.after, None)) {
            Some(Err(Error::Closed)) | None => None,
            Some(Err(pruned)) => {
                // Nothing more can be read after the gap: end after saying so.
                self.ended = true;
                Some(Err(pruned))
            }
            other => other,
        }
    }
}

/// Yields each group; ends when the store has closed and every group was read.
impl futures_core::Stream for FeedReader {
    type Item = Result<Arc<FeedGroup>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match this.poll_group(cx) {
            Poll::Ready(Err(Error::Closed)) => Poll::Ready(None),
            Poll::Ready(Err(pruned)) => {
                this.ended = true;
                Poll::Ready(Some(Err(pruned)))
            }
            Poll::Ready(result) => Poll::Ready(Some(result)),
            Poll::Pending => Poll::Pending,
        }
    }
}
