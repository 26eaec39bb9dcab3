//! The writer's side of the change feed: the changes a group makes to views with a feed,
//! collected as its records are written; the group's feed row and the pruning of old
//! rows, in the group's own transaction.

use crate::base::error::{Error, Result};
use crate::base::feed::{ChangeKind, FeedChange, FeedGroup, FeedMode, FeedRetention};
use crate::base::version::{Lsn, Version};
use crate::engine::tables::Pending;
use crate::keys::KeyBuf;
use crate::mem::feed_log::FeedLog;
use crate::schema::view_info::ViewInfo;
use crate::storage::feed::{FEED, META_FEED_PRUNED, encode_group};
use crate::storage::format::META;
use redb::{ReadableTable, WriteTransaction};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// A record's final state in the group, as the feed records it.
struct Final {
    version: Version,
    kind: ChangeKind,
    value: Option<Vec<u8>>,
}

/// The changes of one group to views with a feed: the last state of each key.
#[derive(Default)]
pub(super) struct FeedChanges {
    changes: BTreeMap<(usize, KeyBuf), Final>,
}

impl FeedChanges {
    /// Notes the records about to be written to `view`'s table.
    pub(super) fn note(&mut self, view: &ViewInfo, id: usize, entries: &[(KeyBuf, Pending)]) {
        if view.feed == FeedMode::Off {
            return;
        }
        let values = view.feed == FeedMode::Values;
        for (key, pending) in entries {
            let (version, kind, value) = match pending {
                Pending::Live { version, bytes } => (*version, ChangeKind::Live, Some(bytes)),
                Pending::Tombstone { version } => (*version, ChangeKind::Tombstone, None),
                Pending::Sourced { sources, bytes } => {
                    let version = sources.latest().unwrap_or_default();
                    match bytes {
                        Some(bytes) => (version, ChangeKind::Live, Some(bytes)),
                        None => (version, ChangeKind::Tombstone, None),
                    }
                }
                Pending::Remove { version } => (*version, ChangeKind::Purged, None),
            };
            let value = value.filter(|_| values).cloned();
            self.changes.insert((id, key.clone()), Final { version, kind, value });
        }
    }

    /// The group's changes, named by view, in view name then key order.
    pub(super) fn into_changes(self, views: &[ViewInfo]) -> Vec<FeedChange> {
        let mut changes: Vec<FeedChange> = self
            .changes
            .into_iter()
            .filter_map(|((id, key), f)| {
                Some(FeedChange {
                    view: Arc::clone(&views.get(id)?.name),
                    key: Arc::from(key.as_bytes()),
                    version: f.version,
                    kind: f.kind,
                    value: f.value.map(Arc::from),
                })
            })
            .collect();
        // Keys are in order within each view already: a stable sort keeps them.
        changes.sort_by(|a, b| a.view.cmp(&b.view));
        changes
    }
}

/// Milliseconds since the Unix epoch, now.
pub(super) fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes `group`'s feed row, and prunes the rows that `retention` no longer keeps;
/// returns the highest LSN pruned, for the in-memory feed to follow once committed.
pub(super) fn write_group(
    txn: &WriteTransaction,
    file: &Path,
    feed: &FeedLog,
    retention: &FeedRetention,
    group: &FeedGroup,
) -> Result<Option<Lsn>> {
    let prune = feed.prune_plan(retention, group.size(), group.committed_at_ms);
    let mut table = txn.open_table(FEED).map_err(Error::at(file, "opening the feed"))?;
    table
        .insert(group.lsn.get(), encode_group(group).as_slice())
        .map_err(Error::at(file, "writing the feed"))?;
    if let Some(through) = prune {
        let doomed: Vec<u64> = {
            let range =
                table.range(..=through.get()).map_err(Error::at(file, "pruning the feed"))?;
            let mut keys = Vec::new();
            for item in range {
                keys.push(item.map_err(Error::at(file, "pruning the feed"))?.0.value());
            }
            keys
        };
        for lsn in doomed {
            table.remove(lsn).map_err(Error::at(file, "pruning the feed"))?;
        }
        let mut meta = txn.open_table(META).map_err(Error::at(file, "opening meta"))?;
        meta.insert(META_FEED_PRUNED, through.get().to_le_bytes().as_slice())
            .map_err(Error::at(file, "writing meta"))?;
    }
    Ok(prune)
}
