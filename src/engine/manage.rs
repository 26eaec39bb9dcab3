//! View management in the writer: listing the file's views, dropping, clearing and
//! renaming one, each in one transaction of its own between groups (so it orders with
//! writes and takes the next LSN), the snapshot a backup copies, and compaction.

use crate::base::error::{Error, Result};
use crate::base::feed::{ChangeKind, FeedChange, FeedGroup, FeedMode};
use crate::base::index_kind::IndexKind;
use crate::base::manage::{CompactReport, IndexInfo, ViewInfo};
use crate::base::version::Lsn;
use crate::engine::feed::{now_ms, write_group};
use crate::engine::manage_op::{ManageOp, Managed};
use crate::engine::writer::Writer;
use crate::mem::{ResidentView, Root};
use crate::schema::names::check_view_name;
use crate::storage::catalog::{count_records, read_catalog, stored_rows};
use crate::storage::format::{META, META_LSN};
use crate::storage::view_tables::{
    clear_view_tables, drop_view_tables, rename_view_tables, stored_versions, swap_view_tables,
    view_exists,
};
use redb::{ReadableDatabase, WriteTransaction};
use std::sync::Arc;

impl Writer {
    /// Runs a management request. The flag says whether a write transaction failed on
    /// the storage, after which redb must be reopened.
    pub(super) fn manage(&mut self, op: ManageOp) -> (Result<Managed>, bool) {
        let result = match op {
            ManageOp::List => self.list_views().map(Managed::Views),
            ManageOp::Drop(view) => self.drop_view(&view).map(Managed::Committed),
            ManageOp::Clear(view) => self.clear_view(&view).map(Managed::Committed),
            ManageOp::Rename(old, new) => self.rename_view(&old, &new).map(Managed::Committed),
            ManageOp::Swap(a, b) => self.swap_views(&a, &b).map(Managed::Committed),
            ManageOp::Migrate(plan) => self.migrate_step(&plan),
            ManageOp::Snapshot => self.snapshot(),
            ManageOp::Compact => return self.compact(),
            ManageOp::BulkLoad(load) => self.bulk_load(*load).map(Managed::Committed),
        };
        let failed_storage = matches!(result, Err(Error::Storage { .. }));
        (result, failed_storage)
    }

    fn list_views(&self) -> Result<Vec<ViewInfo>> {
        let file = self.config.path.as_path();
        let txn = self.db()?.begin_read().map_err(Error::at(file, "beginning a read"))?;
        let mut out = Vec::new();
        for stored in read_catalog(&txn, file)? {
            let open = self.by_name.get(&stored.name);
            let resident = open.and_then(|r| self.root.views.get(r.id));
            let (records, tombstones) = match resident {
                // Live records are in memory; the rest of the table is tombstones.
                Some(view) => {
                    let live = view.len() as u64;
                    (live, stored_rows(&txn, &stored.name, file)?.saturating_sub(live))
                }
                None => count_records(&txn, &stored.name, file)?,
            };
            let indexes = stored
                .indexes
                .into_iter()
                .map(|(name, meta)| IndexInfo {
                    name,
                    kind: if meta.unique { IndexKind::Unique } else { IndexKind::Multi },
                    key_type: meta.key_type,
                    definition_version: meta.version,
                })
                .collect();
            out.push(ViewInfo {
                name: stored.name,
                key_type: stored.meta.key_type,
                value_type: stored.meta.value_type,
                codec: stored.meta.codec,
                schema_version: stored.meta.schema_version,
                indexes,
                sources: stored.sources,
                feed: open.map(|r| r.feed),
                records,
                tombstones,
                open: open.is_some(),
            });
        }
        Ok(out)
    }

    /// A write transaction that syncs on commit: management is rare, and its commit
    /// also makes every earlier group durable.
    pub(super) fn begin_managed(&self) -> Result<WriteTransaction> {
        let file = self.config.path.as_path();
        let mut txn = self.db()?.begin_write().map_err(Error::at(file, "beginning a write"))?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| Error::storage(file, "setting durability", redb::Error::from(e)))?;
        Ok(txn)
    }

    /// Fails with [`Error::UnknownView`] unless the file holds `view`.
    fn known(&self, txn: &WriteTransaction, view: &str) -> Result<()> {
        check_view_name(view)?;
        if view_exists(txn, view, &self.config.path)? {
            Ok(())
        } else {
            Err(Error::UnknownView { view: view.to_owned() })
        }
    }

    fn drop_view(&mut self, view: &str) -> Result<Lsn> {
        check_view_name(view)?;
        if self.by_name.contains_key(view) {
            return Err(Error::ViewOpen { view: view.to_owned(), operation: "drop" });
        }
        let txn = self.begin_managed()?;
        self.known(&txn, view)?;
        drop_view_tables(&txn, view, &self.config.path)?;
        self.commit_managed(txn, Vec::new(), Vec::new())
    }

    fn clear_view(&mut self, view: &str) -> Result<Lsn> {
        let txn = self.begin_managed()?;
        self.known(&txn, view)?;
        let file = self.config.path.clone();
        let open = self.by_name.get(view).map(|r| r.id);
        let info = open.and_then(|id| self.views.get(id));
        let mut changes = Vec::new();
        if let Some(info) = info.filter(|i| i.feed != FeedMode::Off) {
            // Every key the view held, live or tombstone, is now absent: the feed says
            // so with one purge per key, as `purge_tombstones` does.
            for (key, version) in stored_versions(&txn, view, &file)? {
                changes.push(FeedChange {
                    view: Arc::clone(&info.name),
                    key: Arc::from(key),
                    version,
                    kind: ChangeKind::Purged,
                    value: None,
                });
            }
        }
        clear_view_tables(&txn, view, &file)?;
        let emptied = match open.and_then(|id| Some((id, self.registrations.get(id)?))) {
            Some((id, registration)) => {
                let mut loader = registration.loader();
                loader.decoded()?;
                Some((id, loader.finish(0)?))
            }
            None => None,
        };
        self.commit_managed(txn, emptied.into_iter().collect(), changes)
    }

    fn rename_view(&mut self, old: &str, new: &str) -> Result<Lsn> {
        check_view_name(old)?;
        check_view_name(new)?;
        if self.by_name.contains_key(old) {
            return Err(Error::ViewOpen { view: old.to_owned(), operation: "rename" });
        }
        let txn = self.begin_managed()?;
        self.known(&txn, old)?;
        if old == new || view_exists(&txn, new, &self.config.path)? {
            return Err(Error::ViewExists { view: new.to_owned() });
        }
        rename_view_tables(&txn, old, new, &self.config.path)?;
        self.commit_managed(txn, Vec::new(), Vec::new())
    }

    fn swap_views(&mut self, a: &str, b: &str) -> Result<Lsn> {
        check_view_name(a)?;
        check_view_name(b)?;
        if a == b {
            return Err(Error::ViewExists { view: b.to_owned() });
        }
        // Two open views of one definition swap their records in memory too, each
        // handle keeping its name and place; a view open on one side only, or two of
        // different definitions, would leave a handle of one type over the other's data.
        let replaced = match (self.by_name.get(a), self.by_name.get(b)) {
            (None, None) => Vec::new(),
            (Some(ra), Some(rb)) if same_definition(ra, rb) => {
                let (Some(va), Some(vb)) = (self.root.views.get(ra.id), self.root.views.get(rb.id))
                else {
                    return Err(Error::ViewOpen { view: a.to_owned(), operation: "swap" });
                };
                vec![(ra.id, vb.renamed(a)), (rb.id, va.renamed(b))]
            }
            (Some(_), _) => {
                return Err(Error::ViewOpen { view: a.to_owned(), operation: "swap" });
            }
            (None, Some(_)) => {
                return Err(Error::ViewOpen { view: b.to_owned(), operation: "swap" });
            }
        };
        let txn = self.begin_managed()?;
        self.known(&txn, a)?;
        self.known(&txn, b)?;
        swap_view_tables(&txn, a, b, &self.config.path)?;
        self.commit_managed(txn, replaced, Vec::new())
    }

    /// Records the next LSN in `txn`, with the feed's row for `changes` if any, commits,
    /// then publishes a root at that LSN (with the views of `replaced` put in place) and
    /// the feed group, as a group commit does.
    pub(super) fn commit_managed(
        &mut self,
        txn: WriteTransaction,
        replaced: Vec<(usize, Arc<dyn ResidentView>)>,
        changes: Vec<FeedChange>,
    ) -> Result<Lsn> {
        let file = self.config.path.clone();
        let lsn = Lsn::new(self.lsn.get() + 1);
        {
            let mut meta = txn.open_table(META).map_err(Error::at(&file, "opening meta"))?;
            meta.insert(META_LSN, lsn.get().to_le_bytes().as_slice())
                .map_err(Error::at(&file, "writing the lsn"))?;
        }
        let group =
            (!changes.is_empty()).then(|| FeedGroup { lsn, committed_at_ms: now_ms(), changes });
        let pruned = match &group {
            Some(group) => {
                write_group(&txn, &file, &self.feed, &self.config.feed_retention, group)?
            }
            None => None,
        };
        txn.commit().map_err(Error::at(&file, "committing"))?;
        // The commit synced every earlier commit too.
        self.unsynced_since = None;
        self.lsn = lsn;
        let mut views = self.root.views.clone();
        for (id, view) in replaced {
            if let Some(slot) = views.get_mut(id) {
                *slot = view;
            }
        }
        self.publish(Arc::new(Root { lsn, views, positions: Arc::clone(&self.root.positions) }));
        if let Some(group) = group {
            self.feed.append(group);
        }
        if let Some(through) = pruned {
            self.feed.prune_through(through);
        }
        self.mark_durable(lsn);
        Ok(lsn)
    }

    /// A read transaction of the latest commit and the LSN it holds.
    fn snapshot(&self) -> Result<Managed> {
        let file = self.config.path.as_path();
        let txn = self.db()?.begin_read().map_err(Error::at(file, "beginning a read"))?;
        let lsn = {
            let meta = txn.open_table(META).map_err(Error::at(file, "opening meta"))?;
            let bytes = meta.get(META_LSN).map_err(Error::at(file, "reading meta"))?;
            bytes.and_then(|b| <[u8; 8]>::try_from(b.value()).ok()).map(u64::from_le_bytes)
        };
        let lsn = lsn.map_or(Lsn::default(), Lsn::new);
        debug_assert_eq!(lsn, self.lsn, "between groups, the file holds the writer's LSN");
        Ok(Managed::Snapshot(txn, lsn))
    }

    /// Compacts the file; the flag says whether redb must be reopened (a failure inside
    /// the compaction's own commits, not a refusal to start).
    fn compact(&mut self) -> (Result<Managed>, bool) {
        let file = self.config.path.clone();
        let before = match self.file_len() {
            Ok(len) => len,
            Err(e) => return (Err(e), false),
        };
        let Some(db) = self.db.as_mut() else {
            return (
                Err(Error::Poisoned { file, reason: "the database is not open".into() }),
                true,
            );
        };
        let compacted = match db.compact() {
            Ok(compacted) => compacted,
            Err(e) => {
                let refused = !matches!(e, redb::CompactionError::Storage(_));
                return (Err(Error::storage(&file, "compacting", e)), !refused);
            }
        };
        // Compaction commits durably: every earlier commit is on disk too.
        self.unsynced_since = None;
        self.mark_durable(self.lsn);
        let result = self
            .file_len()
            .map(|after| Managed::Compacted(CompactReport { before, after, compacted }));
        (result, false)
    }

    fn file_len(&self) -> Result<u64> {
        let file = self.config.path.as_path();
        let io = |e| Error::Io { file: file.to_owned(), source: Arc::new(e) };
        match &self.config.backend {
            Some(backend) => backend.len().map_err(io),
            None => std::fs::metadata(file).map(|m| m.len()).map_err(io),
        }
    }
}

/// Whether two open views have one definition: types, codec, schema version, shapes,
/// indexes, sources and feed mode, so that each one's handles can read the other's data.
fn same_definition(a: &super::writer::Registered, b: &super::writer::Registered) -> bool {
    a.meta == b.meta
        && a.shapes == b.shapes
        && a.indexes == b.indexes
        && a.sources == b.sources
        && a.feed == b.feed
}
