//! The typed feed of one view: its changes with keys and values decoded.

use crate::api::view::View;
use crate::base::codec::Codec;
use crate::base::error::{Error, Result};
use crate::base::feed::{ChangeKind, FeedChange};
use crate::base::version::{Lsn, Version};
use crate::feed::reader::FeedReader;
use crate::keys::{decode_key, render_key};
use crate::schema::registration::{ViewKey, ViewValue};
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// One change of a view, decoded: the record's key, new version, and what became of it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ViewChange<K, V> {
    /// The LSN of the group that made it.
    pub lsn: Lsn,
    /// The record's key.
    pub key: K,
    /// Its new version (for a view with sources, the largest of its sources').
    pub version: Version,
    /// Live, tombstone, or purged.
    pub kind: ChangeKind,
    /// The new value of a live record, for a view with
    /// [`FeedMode::Values`](crate::FeedMode::Values); `None` otherwise.
    pub value: Option<V>,
}

impl FeedChange {
    /// The change's key, decoded as `K` (the key type of its view).
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when the bytes are not a `K`.
    pub fn decode_key<K: ViewKey>(&self) -> Result<K> {
        decode_key::<K>(&self.key)
            .map_err(|e| Error::decode(&self.view, render_key::<K>(&self.key), e.0))
    }
}

/// Follows one view's changes in the change feed, decoded, in LSN order (within a
/// group, in key order). Made by [`View::feed_after`]; reads like [`FeedReader`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use viewstore::{ChangeKind, FeedMode, Lsn, Store, ViewDef};
///
/// const NAMES: ViewDef<u64, String> = ViewDef::new("names").with_feed(FeedMode::Values);
/// # let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path().join("s.redb"))?;
/// let names = store.view(&NAMES)?;
/// let mut changes = names.feed_after(Lsn::new(0))?;
/// names.put(&1, "ada".to_string(), 1)?;
/// names.delete(&1, 2)?;
/// let put = changes.next_timeout(Duration::from_secs(5))?.expect("a change");
/// assert_eq!((put.key, put.version, put.value.as_deref()), (1, 1, Some("ada")));
/// let delete = changes.next_timeout(Duration::from_secs(5))?.expect("a change");
/// assert_eq!((delete.kind, delete.version), (ChangeKind::Tombstone, 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ViewFeed<K, V, C> {
    reader: FeedReader,
    view: Arc<str>,
    codec: C,
    /// Changes of this view from the last group read, not yet handed out.
    pending: VecDeque<(Lsn, FeedChange)>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V, C> std::fmt::Debug for ViewFeed<K, V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewFeed")
            .field("view", &self.view)
            .field("after", &self.reader.position())
            .finish_non_exhaustive()
    }
}

impl<K: ViewKey, V: ViewValue, C: Codec<V> + Clone> View<K, V, C> {
    /// A reader of this view's changes from just after `lsn` (see
    /// [`Store::feed_after`](crate::Store::feed_after)). Only a view defined
    /// [`with_feed`](crate::ViewDef::with_feed) has changes in the feed.
    ///
    /// # Errors
    ///
    /// [`Error::FeedPruned`] when groups after `lsn` were pruned already.
    pub fn feed_after(&self, lsn: Lsn) -> Result<ViewFeed<K, V, C>> {
        Ok(ViewFeed {
            reader: self.store.feed_after(lsn)?,
            view: Arc::clone(&self.name),
            codec: self.codec.clone(),
            pending: VecDeque::new(),
            _types: PhantomData,
        })
    }
}

impl<K: ViewKey, V: ViewValue, C: Codec<V>> ViewFeed<K, V, C> {
    /// Keeps the changes of this view from a group.
    fn keep(&mut self, group: &crate::base::feed::FeedGroup) {
        let mine = group.changes.iter().filter(|c| c.view == self.view);
        self.pending.extend(mine.map(|c| (group.lsn, c.clone())));
    }

    fn decode(&self, lsn: Lsn, change: &FeedChange) -> Result<ViewChange<K, V>> {
        let key = decode_key::<K>(&change.key)
            .map_err(|e| Error::decode(&self.view, render_key::<K>(&change.key), e.0))?;
        let value = match &change.value {
            Some(bytes) => Some(
                self.codec
                    .decode(bytes)
                    .map_err(|e| Error::decode(&self.view, render_key::<K>(&change.key), e))?,
            ),
            None => None,
        };
        Ok(ViewChange { lsn, key, version: change.version, kind: change.kind, value })
    }

    /// The next change of this view, waiting for it up to `timeout`; `Ok(None)` when none
    /// came in time.
    ///
    /// # Errors
    ///
    /// [`Error::FeedPruned`], [`Error::Closed`] as for
    /// [`FeedReader::next_timeout`]; [`Error::Decode`] for a key or value that does not
    /// decode.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<ViewChange<K, V>>> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some((lsn, change)) = self.pending.pop_front() {
                return self.decode(lsn, &change).map(Some);
            }
            let left =
                deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(Instant::now()));
            match self.reader.next_timeout(left)? {
                Some(group) => self.keep(&group),
                None => return Ok(None),
            }
        }
    }

    /// The next change of this view, awaited without blocking a thread.
    ///
    /// # Errors
    ///
    /// As [`next_timeout`](ViewFeed::next_timeout).
    pub async fn next_async(&mut self) -> Result<ViewChange<K, V>> {
        std::future::poll_fn(|cx| self.poll_change(cx)).await
    }

    fn poll_change(&mut self, cx: &mut Context<'_>) -> Poll<Result<ViewChange<K, V>>> {
        loop {
            if let Some((lsn, change)) = self.pending.pop_front() {
                return Poll::Ready(self.decode(lsn, &change));
            }
            match self.reader.poll_group(cx) {
                Poll::Ready(Ok(group)) => self.keep(&group),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Blocks for each change; ends when the store has closed and every change was read.
impl<K: ViewKey, V: ViewValue, C: Codec<V>> Iterator for ViewFeed<K, V, C> {
    type Item = Result<ViewChange<K, V>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((lsn, change)) = self.pending.pop_front() {
                return Some(self.decode(lsn, &change));
            }
            match self.reader.next()? {
                Ok(group) => self.keep(&group),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Yields each change; ends when the store has closed and every change was read.
impl<K: ViewKey, V: ViewValue, C: Codec<V> + Unpin> futures_core::Stream for ViewFeed<K, V, C> {
    type Item = Result<ViewChange<K, V>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some((lsn, change)) = this.pending.pop_front() {
                return Poll::Ready(Some(this.decode(lsn, &change)));
            }
            match Pin::new(&mut this.reader).poll_next(cx) {
                Poll::Ready(Some(Ok(group))) => this.keep(&group),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
