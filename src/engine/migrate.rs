//! One transaction of a view's migration, in the writer: the first marks the view as
//! migrating (a row in `viewstore.migrations`, and its meta set to the target version
//! under a value type name no build accepts), each converts the next bounded run of
//! records in key order and moves the row on, the last records the new identity, drops
//! the index tables (rebuilt from the converted records at the next open) and removes
//! the row. `docs/design.md` has the crash argument.

use crate::base::error::{Error, Result};
use crate::base::limits::MAX_VALUE_BYTES;
use crate::base::shape::{Part, shape_changes};
use crate::engine::manage_op::{Managed, MigrationStep};
use crate::engine::shape_check::mismatch;
use crate::engine::writer::Writer;
use crate::schema::migration::MigrationPlan;
use crate::schema::names::check_view_name;
use crate::storage::format::{Record, VIEWS, ViewMeta, view_table, view_table_name};
use crate::storage::migrations::{MigrationRow, read_row, remove_row, write_row};
use crate::storage::shapes::{SHAPES, TypeShape, ViewShapes};
use crate::storage::view_tables::drop_index_tables;
use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use std::ops::Bound;

/// What the value type name of a view's meta says while the view is migrating: no
/// type is named so, so every build refuses to open the view as it stands (this one
/// says why first).
pub(crate) const MIGRATING_MARK: &str = " (migrating)";

impl Writer {
    /// Runs the next transaction of `plan`'s migration.
    pub(super) fn migrate_step(&mut self, plan: &MigrationPlan) -> Result<Managed> {
        let view = plan.view.as_str();
        check_view_name(view)?;
        let to = plan.meta.schema_version;
        if let Some(open) = self.by_name.get(view) {
            // Open in this process: at the target version there is nothing to do (the
            // open checked it); at another, converting would change records under it.
            if open.meta == plan.meta {
                return Ok(Managed::Migrated(MigrationStep {
                    from: to,
                    done: 0,
                    total: 0,
                    finished: true,
                }));
            }
            return Err(Error::ViewOpen { view: view.to_owned(), operation: "migrate" });
        }
        let file = self.config.path.clone();
        let txn = self.begin_managed()?;
        let row = match read_row(&txn, view, &file)? {
            Some(row) if row.to != to => {
                return Err(refusal(
                    plan,
                    format!(
                        "it is being migrated from schema version {} to {}, not to {to}; finish \
                         that migration first",
                        row.from, row.to
                    ),
                ));
            }
            Some(row) => {
                if plan.covers(row.from).is_none() {
                    return Err(refusal(plan, not_covered(plan, row.from)));
                }
                row
            }
            None => match self.start(&txn, plan)? {
                Some(row) => row,
                None => {
                    return Ok(Managed::Migrated(MigrationStep {
                        from: to,
                        done: 0,
                        total: 0,
                        finished: true,
                    }));
                }
            },
        };
        let step = convert_chunk(&txn, plan, row, &file)?;
        self.commit_managed(txn, Vec::new(), Vec::new())?;
        Ok(Managed::Migrated(step))
    }

    /// Checks that `plan` can migrate the view as stored and marks it as migrating, in
    /// `txn`. `None` when there is nothing to migrate (no such view, or stored at the
    /// target version already: the open checks the rest).
    fn start(&self, txn: &WriteTransaction, plan: &MigrationPlan) -> Result<Option<MigrationRow>> {
        let (view, file) = (plan.view.as_str(), self.config.path.as_path());
        let mut views = txn.open_table(VIEWS).map_err(Error::at(file, "opening the view list"))?;
        let stored = match views.get(view).map_err(Error::at(file, "reading the view list"))? {
            None => return Ok(None),
            Some(bytes) => ViewMeta::from_bytes(bytes.value()).map(|m| m.normalized()),
        };
        let Some(stored) = stored else {
            return Err(Error::decode(view, "(view meta)".into(), "unreadable view meta"));
        };
        let to = plan.meta.schema_version;
        if stored.schema_version == to {
            return Ok(None);
        }
        if stored.schema_version > to || stored.key_type != plan.meta.key_type {
            return Err(mismatch(view, &stored, &plan.meta, Vec::new()));
        }
        let from = stored.schema_version;
        let Some(decoded_as) = plan.covers(from) else {
            return Err(refusal(plan, not_covered(plan, from)));
        };
        if stored.codec != "Bincode" {
            return Err(refusal(
                plan,
                format!(
                    "its values are stored with codec {}, and a migration decodes stored values \
                     with Bincode; rebuild the view into a new one and swap them instead",
                    stored.codec
                ),
            ));
        }
        let shapes = txn.open_table(SHAPES).map_err(Error::at(file, "opening the shape list"))?;
        let stored_shapes = shapes
            .get(view)
            .map_err(Error::at(file, "reading the shapes"))?
            .and_then(|b| ViewShapes::from_bytes(b.value()));
        if let Some(stored_shapes) = stored_shapes {
            let key_changes: Vec<String> =
                known_changes(Part::Key, &stored_shapes.key, &plan.shapes.key);
            if !key_changes.is_empty() {
                return Err(mismatch(view, &stored, &plan.meta, key_changes));
            }
            let value_changes = known_changes(Part::Value, &stored_shapes.value, decoded_as);
            if !value_changes.is_empty() {
                return Err(refusal(
                    plan,
                    format!(
                        "the values stored at schema version {from} have another shape than the \
                         type the migration decodes them as: {}",
                        value_changes.join("; ")
                    ),
                ));
            }
        }
        // From here on every build refuses the view as it stands: this one for the
        // migration row, older ones for the type name and schema version.
        let mut marked = plan.meta.clone();
        marked.value_type.push_str(MIGRATING_MARK);
        views
            .insert(view, marked.to_bytes().as_slice())
            .map_err(Error::at(file, "marking the view as migrating"))?;
        drop(shapes);
        Ok(Some(MigrationRow { from, to, last_key: None, done: 0 }))
    }
}

/// Converts the records after `row.last_key`, up to the plan's bounds, and either moves
/// the row on or, at the end of the table, ends the migration; all in `txn`.
fn convert_chunk(
    txn: &WriteTransaction,
    plan: &MigrationPlan,
    mut row: MigrationRow,
    file: &std::path::Path,
) -> Result<MigrationStep> {
    let view = plan.view.as_str();
    let name = view_table_name(view);
    let mut table = txn.open_table(view_table(&name)).map_err(Error::at(file, "opening a view"))?;
    let total = table.len().map_err(Error::at(file, "counting a view"))?;
    let start = match &row.last_key {
        Some(key) => Bound::Excluded(key.as_slice()),
        None => Bound::Unbounded,
    };
    let mut converted: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let (mut passed, mut bytes, mut last_key) = (0u64, 0usize, None);
    let mut finished = true;
    for item in table
        .range::<&[u8]>((start, Bound::Unbounded))
        .map_err(Error::at(file, "reading a view"))?
    {
        if passed as usize >= plan.chunk_records.max(1) || bytes >= plan.chunk_bytes {
            finished = false;
            break;
        }
        let (key, stored) = item.map_err(Error::at(file, "reading a view"))?;
        let key = key.value().to_vec();
        let record = Record::decode(stored.value())
            .map_err(|reason| Error::decode(view, (plan.render_key)(&key), reason))?;
        let new = match record {
            Record::Live { version, value } => {
                let value = convert_one(plan, row.from, &key, value)?;
                Some(Record::Live { version, value: &value }.encode())
            }
            Record::SourcedLive { sources, value } => {
                let value = convert_one(plan, row.from, &key, value)?;
                Some(Record::SourcedLive { sources, value: &value }.encode())
            }
            Record::Tombstone { .. } | Record::SourcedTombstone { .. } => None,
        };
        if let Some(new) = new {
            bytes += new.len();
            converted.push((key.clone(), new));
        }
        passed += 1;
        last_key = Some(key);
    }
    for (key, value) in &converted {
        table
            .insert(key.as_slice(), value.as_slice())
            .map_err(Error::at(file, "writing a converted record"))?;
    }
    drop(table);
    row.done += passed;
    if last_key.is_some() {
        row.last_key = last_key;
    }
    if finished {
        finish(txn, plan, file)?;
    } else {
        write_row(txn, view, &row, file)?;
    }
    Ok(MigrationStep { from: row.from, done: row.done, total, finished })
}

/// Converts one stored value; a failure names the view, the key and the step.
fn convert_one(plan: &MigrationPlan, from: u32, key: &[u8], value: &[u8]) -> Result<Vec<u8>> {
    let failed = |step, reason| Error::Migration {
        view: plan.view.clone(),
        step,
        key: Some((plan.render_key)(key)),
        reason,
    };
    let out = (plan.convert)(from, value).map_err(|f| failed(f.step, f.reason))?;
    if out.len() > MAX_VALUE_BYTES {
        return Err(failed(
            None,
            format!(
                "the converted value is {} bytes, over the limit of {MAX_VALUE_BYTES}",
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// The migration's last writes: the view's identity and shapes at the target version,
/// its index tables dropped (rebuilt at the next open), its migration row removed.
fn finish(txn: &WriteTransaction, plan: &MigrationPlan, file: &std::path::Path) -> Result<()> {
    let view = plan.view.as_str();
    let mut views = txn.open_table(VIEWS).map_err(Error::at(file, "opening the view list"))?;
    views
        .insert(view, plan.meta.to_bytes().as_slice())
        .map_err(Error::at(file, "recording the migrated view"))?;
    let mut shapes = txn.open_table(SHAPES).map_err(Error::at(file, "opening the shape list"))?;
    shapes
        .insert(view, plan.shapes.to_bytes().as_slice())
        .map_err(Error::at(file, "recording the migrated view's shapes"))?;
    drop_index_tables(txn, view, file)?;
    remove_row(txn, view, file)
}

/// The changes between two shapes, when both are known.
fn known_changes(part: Part, stored: &TypeShape, current: &TypeShape) -> Vec<String> {
    match (stored, current) {
        (TypeShape::Known { shape: old, .. }, TypeShape::Known { shape: new, .. }) => {
            shape_changes(part, old, new).iter().map(ToString::to_string).collect()
        }
        _ => Vec::new(),
    }
}

fn refusal(plan: &MigrationPlan, reason: String) -> Error {
    Error::Migration { view: plan.view.clone(), step: None, key: None, reason }
}

fn not_covered(plan: &MigrationPlan, from: u32) -> String {
    format!(
        "it is stored at schema version {from}, and the migration converts from versions {} \
         only",
        plan.describe_covered()
    )
}
