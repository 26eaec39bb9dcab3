//! The change feed on disk: one row per committed group with changes in views with a
//! feed, keyed by LSN, written in the group's own transaction; and how far it was pruned.

use crate::base::error::{Error, Result};
use crate::base::feed::{ChangeKind, FeedChange, FeedGroup};
use crate::base::version::Lsn;
use crate::storage::format::META;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// One row per group: LSN to the encoded group.
pub(crate) const FEED: TableDefinition<u64, &[u8]> = TableDefinition::new("viewstore.feed");

/// The meta row holding the highest pruned LSN (u64 LE); absent when none was pruned.
pub(crate) const META_FEED_PRUNED: &str = "feed_pruned";

/// A group as stored: view names once, changes pointing at them.
#[derive(Serialize, Deserialize)]
struct Stored {
    committed_at_ms: u64,
    views: Vec<String>,
    changes: Vec<StoredChange>,
}

#[derive(Serialize, Deserialize)]
struct StoredChange {
    view: u32,
    key: Vec<u8>,
    kind: u8,
    version: u64,
    value: Option<Vec<u8>>,
}

fn kind_tag(kind: ChangeKind) -> u8 {
    match kind {
        ChangeKind::Live => 0,
        ChangeKind::Tombstone => 1,
        ChangeKind::Purged => 2,
    }
}

/// The bytes of a group's row.
pub(crate) fn encode_group(group: &FeedGroup) -> Vec<u8> {
    let mut views: Vec<String> = Vec::new();
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let changes = group
        .changes
        .iter()
        .map(|c| {
            let view = *ids.entry(&c.view).or_insert_with(|| {
                views.push(c.view.to_string());
                views.len() as u32 - 1
            });
            StoredChange {
                view,
                key: c.key.to_vec(),
                kind: kind_tag(c.kind),
                version: c.version,
                value: c.value.as_ref().map(|v| v.to_vec()),
            }
        })
        .collect();
    let stored = Stored { committed_at_ms: group.committed_at_ms, views, changes };
    bincode::serde::encode_to_vec(&stored, bincode::config::standard()).unwrap_or_default()
}

/// A group from its row, or why the row is corrupt.
pub(crate) fn decode_group(lsn: Lsn, bytes: &[u8]) -> std::result::Result<FeedGroup, String> {
    let (stored, _): (Stored, usize) =
        bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map_err(|e| format!("feed row of {lsn}: {e}"))?;
    let views: Vec<Arc<str>> = stored.views.into_iter().map(Arc::from).collect();
    let mut changes = Vec::with_capacity(stored.changes.len());
    for c in stored.changes {
        let view =
            views.get(c.view as usize).ok_or_else(|| format!("feed row of {lsn}: bad view"))?;
        let kind = match c.kind {
            0 => ChangeKind::Live,
            1 => ChangeKind::Tombstone,
            2 => ChangeKind::Purged,
            tag => return Err(format!("feed row of {lsn}: unknown change kind {tag}")),
        };
        changes.push(FeedChange {
            view: Arc::clone(view),
            key: Arc::from(c.key),
            version: c.version,
            kind,
            value: c.value.map(Arc::from),
        });
    }
    Ok(FeedGroup { lsn, committed_at_ms: stored.committed_at_ms, changes })
}

/// The retained feed of a file, in LSN order, and the highest pruned LSN.
pub(crate) fn read_feed(db: &Database, path: &Path) -> Result<(Vec<FeedGroup>, Lsn)> {
    let txn = db.begin_read().map_err(Error::at(path, "beginning a read"))?;
    let pruned = match txn.open_table(META) {
        Ok(meta) => meta
            .get(META_FEED_PRUNED)
            .map_err(Error::at(path, "reading meta"))?
            .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
            .map_or(0, u64::from_le_bytes),
        Err(TableError::TableDoesNotExist(_)) => 0,
        Err(e) => return Err(Error::storage(path, "opening meta", e)),
    };
    let table = match txn.open_table(FEED) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok((Vec::new(), Lsn::new(pruned))),
        Err(e) => return Err(Error::storage(path, "opening the feed", e)),
    };
    let mut groups = Vec::new();
    for item in table.iter().map_err(Error::at(path, "reading the feed"))? {
        let (lsn, bytes) = item.map_err(Error::at(path, "reading the feed"))?;
        let lsn = Lsn::new(lsn.value());
        let group = decode_group(lsn, bytes.value()).map_err(|reason| Error::NotAStore {
            file: path.to_owned(),
            reason: format!("corrupt change feed: {reason}"),
        })?;
        groups.push(group);
    }
    Ok((groups, Lsn::new(pruned)))
}
