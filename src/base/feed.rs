//! The change feed's vocabulary: what a committed group changed, as the feed records it,
//! what a view records, and how long the feed is kept.

use crate::base::version::{Lsn, Version};
use std::sync::Arc;
use std::time::Duration;

/// What a view records in the store's change feed. Set with
/// [`ViewDef::with_feed`](crate::ViewDef::with_feed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum FeedMode {
    /// Nothing: the view's changes are not in the feed, and cost nothing. The default.
    #[default]
    Off,
    /// Each changed record's key, new version, and whether it is live, a tombstone or
    /// purged.
    Keys,
    /// As [`Keys`](FeedMode::Keys), with the new value's encoded bytes.
    Values,
}

/// How a record stands after a group, as the feed records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChangeKind {
    /// Written: the record is live at the change's version.
    Live,
    /// Deleted: a tombstone at the change's version.
    Tombstone,
    /// Its tombstone was purged: the key is absent (the change's version is the
    /// purged tombstone's).
    Purged,
}

/// One changed record of a committed group, untyped: the key as the store encodes it and,
/// for a view with [`FeedMode::Values`], the value as its codec encodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeedChange {
    /// The view's name.
    pub view: Arc<str>,
    /// The record's key, encoded (decode it with the view's key type, or ship it).
    pub key: Arc<[u8]>,
    /// The record's new version (for a view with sources, the largest of its sources').
    pub version: Version,
    /// Live, tombstone, or purged.
    pub kind: ChangeKind,
    /// The new value, encoded, for a live record of a view with [`FeedMode::Values`].
    pub value: Option<Arc<[u8]>>,
}

/// A committed group as the feed records it: its LSN, when it committed, and the final
/// state of each record it changed in views with a feed, in view name then key order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeedGroup {
    /// The group's LSN.
    pub lsn: Lsn,
    /// When the group committed, in milliseconds since the Unix epoch.
    pub committed_at_ms: u64,
    /// The records it changed.
    pub changes: Vec<FeedChange>,
}

impl FeedChange {
    /// A change as a transport delivers it, for
    /// [`Replicator::apply`](crate::Replicator::apply).
    pub fn new(
        view: Arc<str>,
        key: Arc<[u8]>,
        version: Version,
        kind: ChangeKind,
        value: Option<Arc<[u8]>>,
    ) -> Self {
        FeedChange { view, key, version, kind, value }
    }
}

impl FeedGroup {
    /// A group as a transport delivers it, for
    /// [`Replicator::apply`](crate::Replicator::apply).
    pub fn new(lsn: Lsn, committed_at_ms: u64, changes: Vec<FeedChange>) -> Self {
        FeedGroup { lsn, committed_at_ms, changes }
    }

    /// The bytes the group takes in the feed, as retention counts them.
    pub(crate) fn size(&self) -> usize {
        let change = |c: &FeedChange| 32 + c.key.len() + c.value.as_ref().map_or(0, |v| v.len());
        24 + self.changes.iter().map(change).sum::<usize>()
    }
}

/// How much of the change feed the store keeps; older groups are pruned by the writer.
/// Each limit is optional; the feed keeps what satisfies all of them. The retained feed
/// is held in memory too, so the limits bound memory as well as disk.
///
/// Default = 64 MiB of changes (counted as in [`FeedRetention::max_bytes`]), no limit
/// on groups or age.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use viewstore::FeedRetention;
///
/// let retention = FeedRetention::default()
///     .max_groups(100_000)
///     .max_age(Duration::from_secs(24 * 3600));
/// # let _ = retention;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct FeedRetention {
    pub(crate) groups: Option<u64>,
    pub(crate) bytes: Option<u64>,
    pub(crate) age: Option<Duration>,
}

impl Default for FeedRetention {
    fn default() -> Self {
        FeedRetention { groups: None, bytes: Some(64 << 20), age: None }
    }
}

impl FeedRetention {
    /// No limit: the feed keeps every group (and holds it in memory).
    pub fn unbounded() -> Self {
        FeedRetention { groups: None, bytes: None, age: None }
    }

    /// Keep at most `groups` groups.
    pub fn max_groups(mut self, groups: u64) -> Self {
        self.groups = Some(groups.max(1));
        self
    }

    /// Keep at most about `bytes` of changes: each change counts its key and value
    /// bytes plus 32, each group 24.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.bytes = Some(bytes);
        self
    }

    /// Keep groups committed within `age`.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.age = Some(age);
        self
    }
}
