//! A bulk load in the writer: an empty view filled in one transaction of its own
//! between groups, its records written in key order, then each index built from the
//! records and written in key order, the resident view published once at the end.
//!
//! One transaction makes the load all or nothing: a crash, a failed commit or a refused
//! input (a unique index key held twice) leaves the view as empty as it was, and a
//! reopen finds it so. The cost is that the whole load is in one redb transaction, whose
//! dirty pages redb keeps until the commit.

use crate::base::beside::{WRITE_TABLES_BESIDE_FROM, beside};
use crate::base::config::IndexProgress;
use crate::base::error::{Error, Result};
use crate::base::feed::{ChangeKind, FeedChange, FeedMode};
use crate::base::instrument::Span;
use crate::base::version::Lsn;
use crate::engine::writer::Writer;
use crate::schema::bulk_load::{BulkLoad, Rows};
use crate::schema::view_info::ViewInfo;
use crate::storage::format::{Record, index_table, view_table};
use redb::ReadableTableMetadata;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

impl Writer {
    /// Fills the empty, open view `load.view` with `load`'s records and builds its
    /// indexes, in one transaction that takes the next LSN.
    pub(super) fn bulk_load(&mut self, load: BulkLoad) -> Result<Lsn> {
        let BulkLoad { view: id, rows, records } = load;
        let (Some(info), Some(registration), Some(resident)) =
            (self.views.get(id), self.registrations.get(id), self.root.views.get(id))
        else {
            return Err(Error::ForeignView { view: format!("#{id} (not registered)") });
        };
        let refuse =
            |reason: String| Error::BulkLoad { view: info.name.to_string(), key: None, reason };
        if !registration.sources().is_empty() {
            return Err(refuse(
                "the view has sources, whose records carry per-source versions; load it \
                 through its projector or batches"
                    .into(),
            ));
        }
        // The resident view holds every live record, and counts the tombstones.
        if resident.len() > 0 || resident.tombstones() > 0 {
            return Err(refuse(format!(
                "the view holds {} records and {} tombstones; a bulk load fills an empty \
                 view (empty it first with Store::clear_view)",
                resident.len(),
                resident.tombstones()
            )));
        }
        let file = self.config.path.clone();
        let txn = self.begin_managed()?;
        let mut table =
            txn.open_table(view_table(&info.table)).map_err(Error::at(&file, "opening a view"))?;
        let stored = table.len().map_err(Error::at(&file, "reading a view"))?;
        if stored > 0 {
            return Err(refuse(format!("the view's table holds {stored} rows")));
        }
        let mut index_tables = Vec::with_capacity(info.indexes.len());
        for index in &info.indexes {
            let table = txn
                .open_table(index_table(&index.table))
                .map_err(Error::at(&file, "opening an index"))?;
            // An empty view has empty indexes: the entries built below are all there is.
            if !table.is_empty().map_err(Error::at(&file, "reading an index"))? {
                return Err(refuse(format!("index '{}' holds entries", index.name)));
            }
            index_tables.push(table);
        }
        let mut loader = registration.loader();
        loader.take_decoded(records)?;
        let mut write_records = || -> Result<()> {
            let span = Span::view_load(&info.name);
            span.in_scope(|| -> Result<()> {
                for (key, row) in rows.iter() {
                    table.insert(key, row).map_err(Error::at(&file, "writing a record"))?;
                }
                Ok(())
            })?;
            span.record_records(rows.len() as u64);
            Ok(())
        };
        // The records' table on a thread of its own, beside the index builds and the
        // resident view (tables of one write transaction are `Send`): a small load stays
        // on this thread.
        let build = || -> Result<_> {
            for (ix, (index, mut table)) in info.indexes.iter().zip(index_tables).enumerate() {
                let mut sink = |k: &[u8], len: u32| {
                    table.insert(k, len).map(drop).map_err(Error::at(&file, "building an index"))
                };
                let mut progress = |done, total| {
                    if let Some(report) = &self.config.index_progress {
                        let progress = IndexProgress {
                            view: info.name.to_string(),
                            index: index.name.to_string(),
                            done,
                            total,
                        };
                        // A panicking report is user code: it loses that report only.
                        let _ = catch_unwind(AssertUnwindSafe(|| (report.0)(&progress)));
                    }
                };
                let span = Span::index_build(&info.name, &index.name);
                span.in_scope(|| loader.build_index(ix, &mut sink, &mut progress))?;
            }
            loader.finish(0)
        };
        let (written, view) = if rows.len() < WRITE_TABLES_BESIDE_FROM {
            (write_records(), build())
        } else {
            beside("viewstore-tables", write_records, build)
        };
        written?;
        let view = view?;
        drop(table);
        let changes = feed_changes(info, &rows);
        self.commit_managed(txn, vec![(id, view)], changes)
    }
}

/// The feed's changes for a load into `view`: one `Live` change per record, with its
/// value for a feed of values; none for a view without a feed.
fn feed_changes(view: &ViewInfo, rows: &Rows) -> Vec<FeedChange> {
    if view.feed == FeedMode::Off {
        return Vec::new();
    }
    let values = view.feed == FeedMode::Values;
    let mut changes = Vec::with_capacity(rows.len());
    for (key, row) in rows.iter() {
        let Ok(Record::Live { version, value }) = Record::decode(row) else {
            debug_assert!(false, "a bulk load row is a live record");
            continue;
        };
        changes.push(FeedChange {
            view: Arc::clone(&view.name),
            key: Arc::from(key),
            version,
            kind: ChangeKind::Live,
            value: values.then(|| Arc::from(value)),
        });
    }
    changes
}
