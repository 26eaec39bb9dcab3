//! Reading a store's file directly with redb, and checking a store's invariants: what
//! is in memory equals what is on disk.
//!
//! [`check_store_invariants`] is the one place that says what a consistent store is;
//! it grows with the format (secondary indexes add their checks here).

use crate::api::view::View;
use crate::base::codec::Codec;
use crate::base::config::SharedBackend;
use crate::base::version::Version;
use crate::mem::Snapshot;
use crate::schema::registration::{ViewKey, ViewValue};
use crate::storage::format::{META, META_FORMAT, META_LSN, Record, VIEWS};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// One stored record of a view as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskRecord {
    /// The record's version (of a view with sources: the largest of its sources').
    pub version: Version,
    /// The encoded value; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
}

/// Everything a store file holds, read with redb after its integrity check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskImage {
    /// The format version in the meta table.
    pub format: u32,
    /// The last committed LSN in the meta table.
    pub lsn: u64,
    /// Every recorded view's records, by view name, then by encoded key.
    pub views: BTreeMap<String, BTreeMap<Vec<u8>, DiskRecord>>,
}

impl DiskImage {
    /// The live records of `view` (tombstones left out), by encoded key.
    pub fn live(&self, view: &str) -> BTreeMap<Vec<u8>, (Version, Vec<u8>)> {
        self.views
            .get(view)
            .into_iter()
            .flatten()
            .filter_map(|(k, r)| Some((k.clone(), (r.version, r.value.clone()?))))
            .collect()
    }
}

/// Opens the store file at `path` with redb (the store must be closed), runs redb's
/// integrity check and reads everything.
///
/// # Errors
///
/// A message naming the file and what failed.
pub fn read_file(path: &Path) -> Result<DiskImage, String> {
    let mut db = Database::create(path).map_err(|e| format!("{}: open: {e}", path.display()))?;
    read_database(&mut db).map_err(|e| format!("{}: {e}", path.display()))
}

/// Like [`read_file`], for a database held in `backend`.
///
/// # Errors
///
/// A message saying what failed.
pub fn read_backend(backend: Arc<dyn redb::StorageBackend>) -> Result<DiskImage, String> {
    let mut db = redb::Builder::new()
        .create_with_backend(SharedBackend(backend))
        .map_err(|e| format!("open: {e}"))?;
    read_database(&mut db)
}

fn read_database(db: &mut Database) -> Result<DiskImage, String> {
    match db.check_integrity() {
        Ok(true) => {}
        Ok(false) => return Err("the integrity check had to repair the file".into()),
        Err(e) => return Err(format!("integrity check: {e}")),
    }
    let txn = db.begin_read().map_err(|e| format!("begin read: {e}"))?;
    let meta = txn.open_table(META).map_err(|e| format!("open meta: {e}"))?;
    let get = |key: &str| -> Result<Vec<u8>, String> {
        meta.get(key)
            .map_err(|e| format!("read meta {key}: {e}"))?
            .map(|v| v.value().to_vec())
            .ok_or_else(|| format!("meta has no {key}"))
    };
    let format = <[u8; 4]>::try_from(get(META_FORMAT)?.as_slice())
        .map(u32::from_le_bytes)
        .map_err(|_| "meta format is not 4 bytes".to_string())?;
    let lsn = <[u8; 8]>::try_from(get(META_LSN)?.as_slice())
        .map(u64::from_le_bytes)
        .map_err(|_| "meta lsn is not 8 bytes".to_string())?;
    let mut image = DiskImage { format, lsn, views: BTreeMap::new() };
    let names: Vec<String> = match txn.open_table(VIEWS) {
        Ok(list) => list
            .iter()
            .map_err(|e| format!("list views: {e}"))?
            .map(|item| item.map(|(k, _)| k.value().to_owned()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("list views: {e}"))?,
        Err(redb::TableError::TableDoesNotExist(_)) => Vec::new(),
        Err(e) => return Err(format!("open view list: {e}")),
    };
    let tables: Vec<String> = txn
        .list_tables()
        .map_err(|e| format!("list tables: {e}"))?
        .map(|t| t.name().to_owned())
        .collect();
    for name in names {
        let table_name = crate::storage::format::view_table_name(&name);
        let mut records = BTreeMap::new();
        if tables.contains(&table_name) {
            let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(&table_name);
            let table = txn.open_table(def).map_err(|e| format!("open view '{name}': {e}"))?;
            for item in table.iter().map_err(|e| format!("scan view '{name}': {e}"))? {
                let (k, v) = item.map_err(|e| format!("scan view '{name}': {e}"))?;
                let record = match Record::decode(v.value()) {
                    Ok(record) => DiskRecord {
                        version: record.version(),
                        value: record.live().map(|(_, value)| value.to_vec()),
                    },
                    Err(reason) => {
                        return Err(format!(
                            "view '{name}', key {}: {reason}",
                            crate::keys::render_bytes(k.value())
                        ));
                    }
                };
                records.insert(k.value().to_vec(), record);
            }
        }
        image.views.insert(name, records);
    }
    Ok(image)
}

/// Checks that the records of every view in `snapshot` are exactly the live records on
/// `disk` (same keys, same versions) and that the LSNs agree. Take the snapshot after
/// the last write and read the disk after closing the store.
///
/// # Errors
///
/// A message naming the view and key that differ.
pub fn check_store_invariants(snapshot: &Snapshot, disk: &DiskImage) -> Result<(), String> {
    let root = &snapshot.root;
    if root.lsn.get() != disk.lsn {
        return Err(format!(
            "memory is at lsn {} but the file at lsn {}",
            root.lsn.get(),
            disk.lsn
        ));
    }
    for view in &root.views {
        let name = view.name();
        let live = disk.live(name);
        if !disk.views.contains_key(name) {
            return Err(format!("view '{name}' is in memory but not recorded on disk"));
        }
        if live.len() != view.len() {
            return Err(format!(
                "view '{name}': {} live records on disk, {} in memory",
                live.len(),
                view.len()
            ));
        }
        for (key, (version, _)) in &live {
            match view.version(key) {
                Some(v) if v == *version => {}
                Some(v) => {
                    return Err(format!(
                        "view '{name}', key {}: version {version} on disk, {v} in memory",
                        crate::keys::render_bytes(key)
                    ));
                }
                None => {
                    return Err(format!(
                        "view '{name}', key {}: on disk (version {version}) but not in memory",
                        crate::keys::render_bytes(key)
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Checks that every value of `view` in `snapshot` decodes from the bytes on `disk` to
/// an equal value (the typed half of [`check_store_invariants`]).
///
/// # Errors
///
/// A message naming the view and key that differ.
pub fn check_view_values<K, V, C>(
    view: &View<K, V, C>,
    snapshot: &Snapshot,
    disk: &DiskImage,
) -> Result<(), String>
where
    K: ViewKey,
    V: ViewValue + PartialEq + std::fmt::Debug,
    C: Codec<V> + Clone,
{
    let typed = snapshot.view(view).map_err(|e| e.to_string())?;
    let name = view.name();
    for (key, (_, bytes)) in disk.live(name) {
        let on_disk = view
            .codec
            .decode(&bytes)
            .map_err(|e| format!("view '{name}', key {}: {e}", render::<K>(&key)))?;
        let Ok(k) = crate::keys::decode_key::<K>(&key) else {
            return Err(format!("view '{name}': undecodable key {}", render::<K>(&key)));
        };
        match typed.get(&k) {
            Some(in_memory) if *in_memory == on_disk => {}
            other => {
                return Err(format!(
                    "view '{name}', key {k:?}: {on_disk:?} on disk, {other:?} in memory"
                ));
            }
        }
    }
    Ok(())
}

fn render<K: ViewKey>(key: &[u8]) -> String {
    crate::keys::render_key::<K>(key)
}
