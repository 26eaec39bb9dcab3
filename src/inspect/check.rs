//! Checking and measuring a store file without its Rust types: [`StoreFile::verify`]
//! and [`StoreFile::table_stats`].

use super::file::{StoreFile, decode_record, guarded};
use super::stored::read_shapes;
use crate::base::error::{Error, Result};
use crate::storage::format::{Record, index_table, index_table_name, view_table, view_table_name};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableHandle};
use std::collections::HashMap;

/// What [`StoreFile::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FileCheck {
    /// Views checked.
    pub views: usize,
    /// Records read (tombstones included).
    pub records: u64,
    /// Index entries read.
    pub index_entries: u64,
    /// Values decoded by their stored shape (views whose shape is known).
    pub decoded: u64,
    /// Every problem found, each naming its view, index and key.
    pub problems: Vec<String>,
}

impl FileCheck {
    /// Whether nothing was found wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The size of one redb table of a store file: see [`StoreFile::table_stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableStat {
    /// The redb table's name (`view.<view>`, `index.<view>/<index>`, `viewstore.*`).
    pub name: String,
    /// Entries in the table.
    pub entries: u64,
    /// Bytes of keys and values stored.
    pub stored_bytes: u64,
    /// Bytes of the table's tree structure.
    pub metadata_bytes: u64,
    /// Bytes allocated to the table but unused.
    pub fragmented_bytes: u64,
    /// The height of the table's tree.
    pub tree_height: u32,
}

impl StoreFile {
    /// Reads every record and index entry of every view and reports what is wrong:
    /// records whose layout, key or value does not decode (by the stored shapes, where
    /// known), index entries that name no live record, and unique index keys that name
    /// two records.
    ///
    /// redb's own page checksums are checked by [`Store::open`](crate::Store::open) with
    /// [`StoreBuilder::check_integrity`](crate::StoreBuilder::check_integrity), which
    /// needs the file writable; this check reads the file only.
    pub fn verify(&self) -> Result<FileCheck> {
        guarded(self.path(), "verifying it", || {
            let txn = self.db().begin_read().map_err(Error::at(self.path(), "starting a read"))?;
            let mut check = FileCheck::default();
            for (view, _) in self.view_metas(&txn)? {
                check.views += 1;
                if self.is_migrating(&txn, &view)? {
                    check.problems.push(format!(
                        "view '{view}' is being migrated: its values were not decoded (open it \
                         with Store::view_migrated to finish the migration)"
                    ));
                    continue;
                }
                let shapes = read_shapes(self.path(), &txn, &view)?;
                let mut live = std::collections::HashSet::new();
                let table_name = view_table_name(&view);
                if let Ok(table) = txn.open_table(view_table(&table_name)) {
                    for item in table.iter().map_err(Error::at(self.path(), "reading a view"))? {
                        let (k, v) = item.map_err(Error::at(self.path(), "reading a view"))?;
                        check.records += 1;
                        let key = k.value();
                        let record = match Record::decode(v.value()) {
                            Ok(record) => record,
                            Err(reason) => {
                                check.problems.push(format!(
                                    "view '{view}', key {}: unreadable record: {reason}",
                                    crate::keys::render_bytes(key)
                                ));
                                continue;
                            }
                        };
                        if record.live().is_some() {
                            live.insert(key.to_vec());
                        }
                        match decode_record(&view, &shapes, key, &record) {
                            Ok(dumped) if !dumped.raw && dumped.value.is_some() => {
                                check.decoded += 1;
                            }
                            Ok(_) => {}
                            Err(e) => check.problems.push(e.to_string()),
                        }
                    }
                }
                for index in self.index_infos(&txn, &view)? {
                    let name = index_table_name(&view, &index.name);
                    let Ok(table) = txn.open_table(index_table(&name)) else {
                        check.problems.push(format!(
                            "view '{view}', index '{}': its table is missing",
                            index.name
                        ));
                        continue;
                    };
                    let mut seen: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
                    for item in table.iter().map_err(Error::at(self.path(), "reading an index"))? {
                        let (k, len) = item.map_err(Error::at(self.path(), "reading an index"))?;
                        check.index_entries += 1;
                        let entry = k.value();
                        let Some((ikey, pkey)) = entry.split_at_checked(len.value() as usize)
                        else {
                            check.problems.push(format!(
                                "view '{view}', index '{}', entry {}: its index key length {} \
                                 is longer than the entry",
                                index.name,
                                crate::keys::render_bytes(entry),
                                len.value()
                            ));
                            continue;
                        };
                        if !live.contains(pkey) {
                            check.problems.push(format!(
                                "view '{view}', index '{}', entry {}: names key {}, which is \
                                 not a live record",
                                index.name,
                                crate::keys::render_bytes(ikey),
                                crate::keys::render_bytes(pkey)
                            ));
                        }
                        if index.unique
                            && let Some(other) = seen.insert(ikey.to_vec(), pkey.to_vec())
                        {
                            check.problems.push(format!(
                                "view '{view}', unique index '{}', entry {}: names keys {} \
                                 and {}",
                                index.name,
                                crate::keys::render_bytes(ikey),
                                crate::keys::render_bytes(&other),
                                crate::keys::render_bytes(pkey)
                            ));
                        }
                    }
                }
            }
            Ok(check)
        })
    }

    /// The size of every redb table in the file, in name order.
    pub fn table_stats(&self) -> Result<Vec<TableStat>> {
        guarded(self.path(), "measuring its tables", || {
            let path = self.path();
            let txn = self.db().begin_read().map_err(Error::at(path, "starting a read"))?;
            let mut out = Vec::new();
            for handle in txn.list_tables().map_err(Error::at(path, "listing tables"))? {
                let name = handle.name().to_owned();
                let table =
                    txn.open_untyped_table(handle).map_err(Error::at(path, "opening a table"))?;
                let stats = table.stats().map_err(Error::at(path, "measuring a table"))?;
                out.push(TableStat {
                    name,
                    entries: table.len().map_err(Error::at(path, "counting a table"))?,
                    stored_bytes: stats.stored_bytes(),
                    metadata_bytes: stats.metadata_bytes(),
                    fragmented_bytes: stats.fragmented_bytes(),
                    tree_height: stats.tree_height(),
                });
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }
}
