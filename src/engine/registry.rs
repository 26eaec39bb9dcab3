//! Registering a view: its meta and sources checked or recorded, its records loaded,
//! its indexes loaded, built or dropped, all in the registration transaction.

use crate::base::config::IndexProgress;
use crate::base::error::{Error, Result};
use crate::base::instrument::Span;
use crate::engine::shape_check::{check_identity, mismatch};
use crate::engine::writer::{Registered, Writer};
use crate::mem::ResidentView;
use crate::mem::Root;
use crate::schema::registration::{IndexRegistration, Loader, Registration};
use crate::schema::view_info::ViewInfo;
use crate::storage::format::{
    FORMAT_SOURCES, INDEXES, IndexMeta, META, SOURCES, decode_sources, encode_sources,
    index_meta_key, index_table, index_table_name, raise_format, view_table, view_table_name,
};
use redb::{ReadableTable, ReadableTableMetadata, TableHandle, WriteTransaction};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

impl Writer {
    /// Registers a view: checks or records its meta, loads its records, publishes it.
    pub(super) fn register(&mut self, reg: Box<dyn Registration>) -> Result<usize> {
        let name = reg.name().to_owned();
        let meta = reg.meta();
        let shapes = reg.shapes();
        let index_metas: Vec<(String, IndexMeta)> =
            reg.indexes().into_iter().map(|i| (i.writer.name.to_string(), i.meta)).collect();
        if let Some(known) = self.by_name.get(&name) {
            let changes: Vec<String> =
                known.shapes.changes(&shapes).iter().map(ToString::to_string).collect();
            if known.meta != meta || !changes.is_empty() {
                return Err(mismatch(&name, &known.meta, &meta, changes));
            }
            if known.indexes != index_metas {
                return Err(Error::SchemaMismatch {
                    view: name.clone(),
                    stored: format!("open with indexes {}", describe_indexes(&known.indexes)),
                    requested: format!("indexes {}", describe_indexes(&index_metas)),
                    changes: Vec::new(),
                });
            }
            if known.feed != reg.feed() {
                return Err(Error::SchemaMismatch {
                    view: name.clone(),
                    stored: format!("open with feed {:?}", known.feed),
                    requested: format!("feed {:?}", reg.feed()),
                    changes: Vec::new(),
                });
            }
            if known.sources != reg.sources() {
                return Err(Error::SchemaMismatch {
                    view: name.clone(),
                    stored: format!("open {}", describe_sources(known.sources)),
                    requested: describe_sources(reg.sources()),
                    changes: Vec::new(),
                });
            }
            return Ok(known.id);
        }
        let span = Span::view_load(&name);
        let (view, table_name, indexes) = span.in_scope(|| self.load_view(reg.as_ref()))?;
        span.record_records(view.len() as u64);
        let id = self.views.len();
        self.views.push(ViewInfo {
            name: Arc::from(name.as_str()),
            table: table_name,
            render_key: reg.render_key(),
            indexes: indexes.into_iter().map(|i| i.writer).collect(),
            feed: reg.feed(),
        });
        let (sources, feed) = (reg.sources(), reg.feed());
        self.by_name
            .insert(name, Registered { id, meta, shapes, indexes: index_metas, sources, feed });
        self.registrations.push(reg);
        let mut root = Root {
            lsn: self.root.lsn,
            views: self.root.views.clone(),
            positions: Arc::clone(&self.root.positions),
        };
        root.views.push(view);
        self.publish(Arc::new(root));
        Ok(id)
    }

    /// Checks or records a view's meta, loads its records and brings its indexes in
    /// line, in one transaction. Returns the resident view, the name of its table and
    /// its indexes.
    pub(super) fn load_view(
        &self,
        reg: &dyn Registration,
    ) -> Result<(Arc<dyn ResidentView>, String, Vec<IndexRegistration>)> {
        let name = reg.name();
        let meta = reg.meta();
        let file = self.config.path.clone();
        let table_name = view_table_name(name);
        let txn = self.db()?.begin_write().map_err(Error::at(&file, "beginning a write"))?;
        let checked = check_identity(&txn, &file, name, &meta, &reg.shapes())?;
        let mut created = checked.created;
        let sources_written = self.check_sources(&txn, name, reg.sources(), created)?;
        let mut loader = reg.loader();
        let indexes = reg.indexes();
        let mut tombstones = 0;
        if created {
            // A new view's table is created empty, in the transaction that records it.
            txn.open_table(view_table(&table_name)).map_err(Error::at(&file, "creating a view"))?;
        } else {
            // The keys of the indexes stored with their current definitions are
            // extracted as the records are decoded, for their builds in memory below.
            loader.extract_while_decoding(&self.stored_indexes(&txn, name, &indexes)?);
            // Records are read through read transactions, on two threads for a large
            // view. Only this thread writes, so they see what this transaction sees.
            tombstones = crate::engine::load::read_records(
                self.db()?,
                &table_name,
                reg,
                &file,
                &mut loader,
            )?;
        }
        loader.decoded()?;
        created |= self.open_indexes(&txn, name, &indexes, loader.as_mut())?;
        if created || checked.wrote || sources_written {
            txn.commit().map_err(Error::at(&file, "recording the view"))?;
        } else {
            txn.abort().map_err(Error::at(&file, "aborting a read"))?;
        }
        Ok((loader.finish(tombstones)?, table_name, indexes))
    }

    /// Checks a view's declared sources against the ones the file records for it: the
    /// same list, or the same list with sources appended (new sources get the next
    /// ids). Records a new view's sources and appended ones. A view recorded without
    /// sources cannot gain any, nor lose its own. Returns whether it wrote anything.
    fn check_sources(
        &self,
        txn: &WriteTransaction,
        view: &str,
        declared: &[&str],
        new_view: bool,
    ) -> Result<bool> {
        let file = self.config.path.as_path();
        // Only a file with a view with sources has the table: opening it in this
        // transaction would create it.
        let exists = crate::storage::format::has_table(txn, SOURCES.name(), file)?;
        let stored = if exists && !new_view {
            let table = txn.open_table(SOURCES).map_err(Error::at(file, "opening sources"))?;
            let bytes = table.get(view).map_err(Error::at(file, "reading sources"))?;
            match bytes.map(|b| decode_sources(b.value())) {
                Some(Some(names)) => names,
                Some(None) => {
                    return Err(Error::decode(view, "(source list)".into(), "unreadable sources"));
                }
                None => Vec::new(),
            }
        } else {
            Vec::new()
        };
        let extends =
            stored.len() <= declared.len() && stored.iter().zip(declared).all(|(s, d)| s == d);
        let gains_first = stored.is_empty() && !declared.is_empty() && !new_view;
        if !extends || gains_first {
            let stored: Vec<&str> = stored.iter().map(String::as_str).collect();
            return Err(Error::SchemaMismatch {
                view: view.to_owned(),
                stored: describe_sources(&stored),
                requested: describe_sources(declared),
                changes: Vec::new(),
            });
        }
        if stored.len() == declared.len() {
            return Ok(false);
        }
        let names: Vec<String> = declared.iter().map(|&n| n.to_owned()).collect();
        let mut table = txn.open_table(SOURCES).map_err(Error::at(file, "recording sources"))?;
        table
            .insert(view, encode_sources(&names).as_slice())
            .map_err(Error::at(file, "recording sources"))?;
        // Older builds cannot read the records of a view with sources: the file now
        // says so with its format version.
        let mut meta = txn.open_table(META).map_err(Error::at(file, "opening meta"))?;
        raise_format(&mut meta, FORMAT_SOURCES, file)?;
        Ok(true)
    }

    /// The positions of the `declared` indexes of `view` that the file stores with the
    /// same definition.
    fn stored_indexes(
        &self,
        txn: &WriteTransaction,
        view: &str,
        declared: &[IndexRegistration],
    ) -> Result<Vec<usize>> {
        let file = self.config.path.as_path();
        if declared.is_empty() {
            return Ok(Vec::new());
        }
        let metas = txn.open_table(INDEXES).map_err(Error::at(file, "opening the index list"))?;
        let mut stored = Vec::new();
        for (ix, decl) in declared.iter().enumerate() {
            if stored_as_declared(&metas, view, decl, file)? {
                stored.push(ix);
            }
        }
        Ok(stored)
    }

    /// Brings a view's indexes in line with their definitions inside the registration
    /// transaction: loads the unchanged ones, builds new or changed ones from the
    /// records, drops the ones no longer declared. Returns whether it wrote anything.
    fn open_indexes(
        &self,
        txn: &WriteTransaction,
        view: &str,
        declared: &[IndexRegistration],
        loader: &mut dyn Loader,
    ) -> Result<bool> {
        let file = self.config.path.as_path();
        let mut wrote = false;
        let mut metas =
            txn.open_table(INDEXES).map_err(Error::at(file, "opening the index list"))?;
        let prefix = index_meta_key(view, "");
        let mut undeclared = Vec::new();
        for item in
            metas.range(prefix.as_str()..).map_err(Error::at(file, "reading the index list"))?
        {
            let (k, _) = item.map_err(Error::at(file, "reading the index list"))?;
            let Some(index) = k.value().strip_prefix(prefix.as_str()) else { break };
            // Index names have no '/': a rest with one is an index of another view
            // whose name starts with this one's ("shop/users" below "shop").
            if index.contains('/') {
                continue;
            }
            if !declared.iter().any(|d| &*d.writer.name == index) {
                undeclared.push(index.to_owned());
            }
        }
        for index in undeclared {
            metas
                .remove(index_meta_key(view, &index).as_str())
                .map_err(Error::at(file, "dropping an index"))?;
            let table = index_table_name(view, &index);
            txn.delete_table(index_table(&table)).map_err(Error::at(file, "dropping an index"))?;
            wrote = true;
        }
        // Indexes stored with their current definitions are built in memory from the
        // records (all at once, on two threads): reading their tables row by row would
        // cost more than the records' own load. A stored table whose length differs
        // from what the records give disagrees with them, and is rebuilt below like a
        // new index (an index is derived data).
        let mut stored = Vec::new();
        let mut build = Vec::new();
        for (ix, decl) in declared.iter().enumerate() {
            if stored_as_declared(&metas, view, decl, file)? {
                let table = txn
                    .open_table(index_table(&decl.writer.table))
                    .map_err(Error::at(file, "opening an index"))?;
                stored.push((ix, table.len().map_err(Error::at(file, "opening an index"))?));
            } else {
                build.push(ix);
            }
        }
        let positions: Vec<usize> = stored.iter().map(|(ix, _)| *ix).collect();
        let counts = loader.build_stored_indexes(&positions)?;
        for ((ix, len), count) in stored.into_iter().zip(counts) {
            if len != count {
                build.push(ix);
            }
        }
        build.sort_unstable();
        for ix in build {
            let Some(decl) = declared.get(ix) else { continue };
            let key = index_meta_key(view, &decl.writer.name);
            let table_def = index_table(&decl.writer.table);
            txn.delete_table(table_def).map_err(Error::at(file, "dropping an index"))?;
            let mut table =
                txn.open_table(table_def).map_err(Error::at(file, "creating an index"))?;
            let mut sink = |k: &[u8], len: u32| {
                table.insert(k, len).map(drop).map_err(Error::at(file, "building an index"))
            };
            let mut progress = |done, total| {
                if let Some(report) = &self.config.index_progress {
                    let progress = IndexProgress {
                        view: view.to_owned(),
                        index: decl.writer.name.to_string(),
                        done,
                        total,
                    };
                    // A panicking report is user code: it loses that report, nothing else.
                    let _ = catch_unwind(AssertUnwindSafe(|| (report.0)(&progress)));
                }
            };
            let span = Span::index_build(view, &decl.writer.name);
            span.in_scope(|| loader.build_index(ix, &mut sink, &mut progress))?;
            metas
                .insert(key.as_str(), decl.meta.to_bytes().as_slice())
                .map_err(Error::at(file, "recording an index"))?;
            wrote = true;
        }
        Ok(wrote)
    }
}

fn describe_indexes(indexes: &[(String, IndexMeta)]) -> String {
    let list: Vec<String> = indexes
        .iter()
        .map(|(name, m)| {
            let kind = if m.unique { "unique" } else { "multi" };
            format!("{name} ({kind}, {}, version {})", m.key_type, m.version)
        })
        .collect();
    format!("[{}]", list.join(", "))
}

fn describe_sources(sources: &[&str]) -> String {
    if sources.is_empty() {
        "without sources".to_owned()
    } else {
        format!("with sources [{}]", sources.join(", "))
    }
}

/// Whether `metas` (the index list) stores the index `decl` of `view` with the
/// definition it is declared with: [`Writer::stored_indexes`] (keys extracted while
/// the records load) and [`Writer::open_indexes`] (indexes loaded rather than built)
/// must agree on it.
fn stored_as_declared(
    metas: &impl ReadableTable<&'static str, &'static [u8]>,
    view: &str,
    decl: &IndexRegistration,
    file: &Path,
) -> Result<bool> {
    let key = index_meta_key(view, &decl.writer.name);
    let meta = metas
        .get(key.as_str())
        .map_err(Error::at(file, "reading the index list"))?
        .and_then(|m| IndexMeta::from_bytes(m.value()));
    Ok(meta.as_ref() == Some(&decl.meta))
}
