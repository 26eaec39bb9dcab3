//! `Store::verify`: every open view and index checked against its records, on disk and
//! in memory, by the writer between groups.

use crate::base::error::{Error, Result};
use crate::engine::report::{Problem, ProblemKind, VerifyReport, compare};
use crate::engine::writer::Writer;
use crate::keys::composite;
use crate::storage::format::{Record, index_table, view_table};
use redb::{ReadableDatabase, ReadableTable};
use std::collections::BTreeMap;

impl Writer {
    /// Checks every open view's records and indexes: recomputed from the records in
    /// memory, compared with the disk and with the resident indexes.
    pub(crate) fn verify(&self) -> Result<VerifyReport> {
        let file = self.config.path.as_path();
        let txn = self.db()?.begin_read().map_err(Error::at(file, "beginning a read"))?;
        let mut report =
            VerifyReport { lsn: self.lsn, views: self.views.len(), ..VerifyReport::default() };
        for (id, info) in self.views.iter().enumerate() {
            let Some(resident) = self.root.views.get(id) else { continue };
            let problem = |index: Option<&str>, key: String, kind| Problem {
                view: info.name.to_string(),
                index: index.map(str::to_owned),
                key,
                kind,
            };
            let mut on_disk = BTreeMap::new();
            let table =
                txn.open_table(view_table(&info.table)).map_err(Error::at(file, "verifying"))?;
            for item in table.iter().map_err(Error::at(file, "verifying"))? {
                let (k, v) = item.map_err(Error::at(file, "verifying"))?;
                if let Some((version, _)) = Record::decode(v.value()).ok().and_then(|r| r.live()) {
                    on_disk.insert(k.value().to_vec(), version);
                }
            }
            let mut in_memory = BTreeMap::new();
            let mut keys = Vec::new();
            resident.for_each_record(&mut |k, version, _| {
                in_memory.insert(k.to_vec(), version);
                keys.push(k.to_vec());
            });
            report.records += in_memory.len() as u64;
            compare(
                &on_disk,
                &in_memory,
                ProblemKind::MissingInMemory,
                ProblemKind::ExtraInMemory,
                |k, _, kind| {
                    report.problems.push(problem(None, (info.render_key)(k), kind));
                },
            );
            for (k, version) in &in_memory {
                if on_disk.get(k).is_some_and(|v| v != version) {
                    report.problems.push(problem(
                        None,
                        (info.render_key)(k),
                        ProblemKind::VersionMismatch,
                    ));
                }
            }
            for (ix, index) in info.indexes.iter().enumerate() {
                let mut expected = BTreeMap::new();
                for pk in &keys {
                    let value = resident.value(pk);
                    match info.index_keys(index, pk, value.as_deref()) {
                        Ok(keys) => {
                            for ikey in keys {
                                expected
                                    .insert(composite(&ikey, pk).as_bytes().to_vec(), ikey.len());
                            }
                        }
                        Err(_) => report.problems.push(problem(
                            Some(&index.name),
                            (info.render_key)(pk),
                            ProblemKind::ExtractorFailed,
                        )),
                    }
                }
                let mut disk = BTreeMap::new();
                let table = txn
                    .open_table(index_table(&index.table))
                    .map_err(Error::at(file, "verifying"))?;
                for item in table.iter().map_err(Error::at(file, "verifying"))? {
                    let (k, len) = item.map_err(Error::at(file, "verifying"))?;
                    disk.insert(k.value().to_vec(), len.value() as usize);
                }
                let memory: BTreeMap<Vec<u8>, usize> =
                    resident.index_composites(ix).into_iter().collect();
                report.index_entries += expected.len() as u64;
                let render = |k: &[u8], len: usize| {
                    let (ikey, pk) = k.split_at(len.min(k.len()));
                    format!("{} -> {}", (index.render)(ikey), (info.render_key)(pk))
                };
                let mut push = |k: &Vec<u8>, len: &usize, kind| {
                    report.problems.push(problem(Some(&index.name), render(k, *len), kind));
                };
                compare(
                    &expected,
                    &disk,
                    ProblemKind::MissingOnDisk,
                    ProblemKind::ExtraOnDisk,
                    &mut push,
                );
                compare(
                    &expected,
                    &memory,
                    ProblemKind::MissingInMemory,
                    ProblemKind::ExtraInMemory,
                    &mut push,
                );
            }
        }
        Ok(report)
    }
}
