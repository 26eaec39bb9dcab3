//! A store file opened read-only, without the service's Rust types: its views, their
//! stored types and shapes, and their records decoded by those shapes.

use super::shaped::ShapedSeed;
use super::stored::{ViewShapes, read_shapes};
use crate::base::error::{Error, Result};
use crate::base::shape::Shape;
use crate::base::version::Lsn;
use crate::keys::decode_key_seed;
use crate::storage::format::{
    INDEXES, IndexMeta, META, META_FORMAT, META_LSN, Record, SOURCES, VIEWS, ViewMeta,
    decode_sources, index_meta_key, index_table, index_table_name, view_table, view_table_name,
};
use redb::ReadableTableMetadata;
use redb::{ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable};
use serde_json::Value;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A store file opened read-only for inspection: no Rust types needed, nothing written.
///
/// Values are decoded with the shapes the store recorded when the view was opened (see
/// [`ViewFileInfo::shape`]); a view whose shape is unknown is dumped as raw bytes.
///
/// A store that a process has open holds the file's lock, and this open then fails with
/// [`Error::AlreadyOpen`]: inspect a copy made by
/// [`Store::backup`](crate::Store::backup) instead. A file left by a crash must first be
/// opened once by [`Store::open`](crate::Store::open), which recovers it.
///
/// # Examples
///
/// ```
/// # fn main() -> viewstore::Result<()> {
/// use viewstore::{Store, ViewDef, inspect::StoreFile};
///
/// static USERS: ViewDef<u64, String> = ViewDef::new("users");
/// let dir = tempfile::tempdir().expect("a temporary directory");
/// let path = dir.path().join("store.redb");
/// {
///     let store = Store::open(&path)?;
///     store.view(&USERS)?.put(&7, "ada".to_string(), 1)?;
///     store.close()?;
/// }
/// let file = StoreFile::open(&path)?;
/// let info = file.info()?;
/// assert_eq!(info.views[0].name, "users");
/// assert_eq!(info.views[0].records, 1);
/// let mut dumped = Vec::new();
/// file.dump("users", &mut |record| {
///     dumped.push(record.to_json());
///     Ok(())
/// })?;
/// assert_eq!(dumped[0].to_string(), r#"{"key":7,"version":1,"value":"ada"}"#);
/// # Ok(()) }
/// ```
pub struct StoreFile {
    db: ReadOnlyDatabase,
    path: PathBuf,
}

/// What a store file holds: see [`StoreFile::info`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FileInfo {
    /// The file.
    pub path: PathBuf,
    /// Its length in bytes.
    pub file_bytes: u64,
    /// The file format version.
    pub format: u32,
    /// The LSN of the last group in the file.
    pub lsn: Lsn,
    /// Every view in the file, by name.
    pub views: Vec<ViewFileInfo>,
}

/// One view of a store file.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ViewFileInfo {
    /// The view's name.
    pub name: String,
    /// The stored key type name.
    pub key_type: String,
    /// The stored value type name.
    pub value_type: String,
    /// The stored codec name.
    pub codec: String,
    /// The stored schema version.
    pub schema_version: u32,
    /// Live records.
    pub records: u64,
    /// Tombstones (deleted records whose version is kept).
    pub tombstones: u64,
    /// The view's indexes.
    pub indexes: Vec<IndexFileInfo>,
    /// The view's source names, in id order; empty for a view without sources.
    pub sources: Vec<String>,
    /// The recorded shapes: a fingerprint, or why the shape is unknown.
    pub shape: String,
}

/// One index of a store file.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct IndexFileInfo {
    /// The index's name.
    pub name: String,
    /// Whether each index key names at most one record.
    pub unique: bool,
    /// The stored index key type name.
    pub key_type: String,
    /// Stored entries.
    pub entries: u64,
}

/// One stored record, decoded as far as its view's shape allows.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DumpedRecord {
    /// The key: decoded by the key shape, or its bytes as an array when unknown.
    pub key: Value,
    /// The record's version (for a view with sources, the largest of its sources').
    pub version: u64,
    /// The value decoded by the value shape (bytes when unknown); `None` for a
    /// tombstone.
    pub value: Option<Value>,
    /// Whether the key or the value is raw bytes because its shape is unknown.
    pub raw: bool,
}

impl DumpedRecord {
    /// The record as one JSON object: `key`, `version`, then `value`, or
    /// `"deleted": true` for a tombstone; `"raw": true` when the value is raw bytes.
    pub fn to_json(&self) -> Value {
        let mut object = serde_json::Map::new();
        object.insert("key".into(), self.key.clone());
        object.insert("version".into(), Value::from(self.version));
        match &self.value {
            Some(value) => object.insert("value".into(), value.clone()),
            None => object.insert("deleted".into(), Value::Bool(true)),
        };
        if self.raw {
            object.insert("raw".into(), Value::Bool(true));
        }
        Value::Object(object)
    }
}

/// Runs `f`, turning a panic of redb on a corrupt, unchecked file into an error.
pub(crate) fn guarded<T>(path: &Path, during: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Error::NotAStore {
            file: path.to_owned(),
            reason: format!("the file is corrupt: reading it failed while {during}"),
        })
    })
}

/// Refuses a store file whose journal still holds groups the file does not: reading or
/// importing without replaying them would show stale records, or lose them.
pub(crate) fn refuse_pending_journal(path: &Path) -> Result<()> {
    let journal = crate::storage::journal::log::journal_path(path);
    match std::fs::metadata(&journal) {
        Ok(m) if m.len() > 0 => Err(Error::NotAStore {
            file: path.to_owned(),
            reason: format!(
                "its journal {} holds groups not yet in the file: open the store once with \
                 Store::open, which replays them",
                journal.display()
            ),
        }),
        _ => Ok(()),
    }
}

/// Bytes as a JSON array of numbers.
pub(crate) fn bytes_json(bytes: &[u8]) -> Value {
    Value::Array(bytes.iter().map(|&b| Value::from(b)).collect())
}

impl StoreFile {
    /// Opens `path` read-only.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyOpen`] when a process has the store open; [`Error::NotAStore`]
    /// for a file that is not a viewstore; [`Error::Storage`] for a file that needs
    /// recovery (open it once with [`Store::open`](crate::Store::open)).
    pub fn open(path: impl AsRef<Path>) -> Result<StoreFile> {
        let path = path.as_ref().to_owned();
        crate::storage::open::check_magic(&path)?;
        refuse_pending_journal(&path)?;
        let db = guarded(&path, "opening it", || {
            ReadOnlyDatabase::open(&path).map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    Error::AlreadyOpen { file: path.clone() }
                }
                e => Error::storage(&path, "opening the file read-only", e),
            })
        })?;
        let file = StoreFile { db, path };
        file.format()?;
        Ok(file)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn db(&self) -> &ReadOnlyDatabase {
        &self.db
    }

    fn read(&self) -> Result<ReadTransaction> {
        self.db.begin_read().map_err(Error::at(&self.path, "starting a read"))
    }

    fn format(&self) -> Result<(u32, Lsn)> {
        let txn = self.read()?;
        let not_a_store =
            |reason: &str| Error::NotAStore { file: self.path.clone(), reason: reason.to_owned() };
        let meta =
            txn.open_table(META).map_err(|_| not_a_store("it has no viewstore meta table"))?;
        let word = |key: &str| -> Result<Option<Vec<u8>>> {
            Ok(meta
                .get(key)
                .map_err(Error::at(&self.path, "reading the meta table"))?
                .map(|v| v.value().to_vec()))
        };
        let format = word(META_FORMAT)?
            .and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| not_a_store("its meta table has no format version"))?;
        let lsn = word(META_LSN)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_le_bytes);
        Ok((format, Lsn::new(lsn)))
    }

    /// The views of the file with their stored types, shapes and counts, its format,
    /// LSN and size. Counts come from reading every record.
    pub fn info(&self) -> Result<FileInfo> {
        guarded(&self.path, "listing its views", || {
            let (format, lsn) = self.format()?;
            let file_bytes = std::fs::metadata(&self.path)
                .map_err(|e| Error::Io { file: self.path.clone(), source: Arc::new(e) })?
                .len();
            let txn = self.read()?;
            let mut views = Vec::new();
            for (name, meta) in self.view_metas(&txn)? {
                views.push(self.view_info(&txn, name, meta)?);
            }
            Ok(FileInfo { path: self.path.clone(), file_bytes, format, lsn, views })
        })
    }

    /// The names of the file's views, in name order.
    pub fn view_names(&self) -> Result<Vec<String>> {
        guarded(&self.path, "listing its views", || {
            let txn = self.read()?;
            Ok(self.view_metas(&txn)?.into_iter().map(|(name, _)| name).collect())
        })
    }

    pub(crate) fn view_metas(&self, txn: &ReadTransaction) -> Result<Vec<(String, ViewMeta)>> {
        let at = Error::at(&self.path, "reading the view list");
        let table = match txn.open_table(VIEWS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(at(e)),
        };
        let mut out = Vec::new();
        for item in table.iter().map_err(Error::at(&self.path, "reading the view list"))? {
            let (name, meta) = item.map_err(Error::at(&self.path, "reading the view list"))?;
            let name = name.value().to_owned();
            let meta = ViewMeta::from_bytes(meta.value()).ok_or_else(|| Error::NotAStore {
                file: self.path.clone(),
                reason: format!("the stored definition of view '{name}' is unreadable"),
            })?;
            out.push((name, meta));
        }
        Ok(out)
    }

    fn view_info(
        &self,
        txn: &ReadTransaction,
        name: String,
        meta: ViewMeta,
    ) -> Result<ViewFileInfo> {
        let (mut records, mut tombstones) = (0, 0);
        self.for_each_stored(txn, &name, &mut |_, record| {
            if record.live().is_some() {
                records += 1;
            } else {
                tombstones += 1;
            }
            Ok(())
        })?;
        let indexes = self.index_infos(txn, &name)?;
        let sources = self.sources(txn, &name)?;
        let shape = read_shapes(&self.path, txn, &name)?.describe();
        Ok(ViewFileInfo {
            name,
            key_type: meta.key_type,
            value_type: meta.value_type,
            codec: meta.codec,
            schema_version: meta.schema_version,
            records,
            tombstones,
            indexes,
            sources,
            shape,
        })
    }

    pub(crate) fn index_infos(
        &self,
        txn: &ReadTransaction,
        view: &str,
    ) -> Result<Vec<IndexFileInfo>> {
        let at = Error::at(&self.path, "reading the index list");
        let table = match txn.open_table(INDEXES) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(at(e)),
        };
        let prefix = index_meta_key(view, "");
        let mut out = Vec::new();
        for item in table
            .range(prefix.as_str()..)
            .map_err(Error::at(&self.path, "reading the index list"))?
        {
            let (k, v) = item.map_err(Error::at(&self.path, "reading the index list"))?;
            let Some(index) = k.value().strip_prefix(prefix.as_str()) else { break };
            if index.contains('/') {
                continue;
            }
            let Some(meta) = IndexMeta::from_bytes(v.value()) else { continue };
            let entries = match txn.open_table(index_table(&index_table_name(view, index))) {
                Ok(t) => t.len().map_err(Error::at(&self.path, "counting index entries"))?,
                Err(_) => 0,
            };
            out.push(IndexFileInfo {
                name: index.to_owned(),
                unique: meta.unique,
                key_type: meta.key_type,
                entries,
            });
        }
        Ok(out)
    }

    fn sources(&self, txn: &ReadTransaction, view: &str) -> Result<Vec<String>> {
        let Ok(table) = txn.open_table(SOURCES) else { return Ok(Vec::new()) };
        let stored = table.get(view).map_err(Error::at(&self.path, "reading the source list"))?;
        Ok(stored.and_then(|v| decode_sources(v.value())).unwrap_or_default())
    }

    /// Calls `f` with each stored record of `view` (tombstones included), in key order.
    pub(crate) fn for_each_stored(
        &self,
        txn: &ReadTransaction,
        view: &str,
        f: &mut dyn FnMut(&[u8], Record<'_>) -> Result<()>,
    ) -> Result<()> {
        let table_name = view_table_name(view);
        let table = match txn.open_table(view_table(&table_name)) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(Error::storage(&self.path, "opening a view", e)),
        };
        for item in table.iter().map_err(Error::at(&self.path, "reading a view"))? {
            let (k, v) = item.map_err(Error::at(&self.path, "reading a view"))?;
            let record = Record::decode(v.value()).map_err(|reason| Error::NotAStore {
                file: self.path.clone(),
                reason: format!("view '{view}': a record is unreadable: {reason}"),
            })?;
            f(k.value(), record)?;
        }
        Ok(())
    }

    /// Whether `view` is being migrated (a progress row in `viewstore.migrations`):
    /// its records are then of two shapes, and decoding them by one would mislead.
    pub(crate) fn is_migrating(&self, txn: &ReadTransaction, view: &str) -> Result<bool> {
        match txn.open_table(crate::storage::migrations::MIGRATIONS) {
            Ok(table) => Ok(table
                .get(view)
                .map_err(Error::at(&self.path, "reading the migrations"))?
                .is_some()),
            Err(_) => Ok(false),
        }
    }

    fn refuse_migrating(&self, txn: &ReadTransaction, view: &str) -> Result<()> {
        if self.is_migrating(txn, view)? {
            return Err(Error::NotAStore {
                file: self.path.clone(),
                reason: format!(
                    "view '{view}' is being migrated, its records of two shapes: open it \
                     once with Store::view_migrated to finish the migration"
                ),
            });
        }
        Ok(())
    }

    /// Calls `f` with every record of `view`, tombstones included, in key order,
    /// decoded by the view's stored shapes.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownView`] for a view the file does not hold; [`Error::Decode`] for
    /// a record that does not decode by its shape; and whatever `f` returns.
    pub fn dump(&self, view: &str, f: &mut dyn FnMut(DumpedRecord) -> Result<()>) -> Result<()> {
        guarded(&self.path, "dumping a view", || {
            let txn = self.read()?;
            if !self.view_metas(&txn)?.iter().any(|(name, _)| name == view) {
                return Err(Error::UnknownView { view: view.to_owned() });
            }
            self.refuse_migrating(&txn, view)?;
            let shapes = read_shapes(&self.path, &txn, view)?;
            self.for_each_stored(&txn, view, &mut |key, record| {
                f(decode_record(view, &shapes, key, &record)?)
            })
        })
    }
}

/// One stored record decoded by `shapes` (raw bytes where a shape is unknown).
pub(crate) fn decode_record(
    view: &str,
    shapes: &ViewShapes,
    key: &[u8],
    record: &Record<'_>,
) -> Result<DumpedRecord> {
    let version = record.version();
    let value = record.live().map(|(_, value)| value);
    let key_json = match &shapes.key {
        Ok(shape) => decode_key_seed(key, ShapedSeed::root(shape))
            .map_err(|e| Error::decode(view, crate::keys::render_bytes(key), e.to_string()))?,
        Err(_) => bytes_json(key),
    };
    let (value_json, raw) = match (value, &shapes.value) {
        (None, _) => (None, shapes.key.is_err()),
        (Some(bytes), Ok(shape)) => {
            let decoded = decode_value(shape, bytes)
                .map_err(|e| Error::decode(view, key_json.to_string(), e))?;
            (Some(decoded), shapes.key.is_err())
        }
        (Some(bytes), Err(_)) => (Some(bytes_json(bytes)), true),
    };
    let raw = raw || shapes.key.is_err();
    Ok(DumpedRecord { key: key_json, version, value: value_json, raw })
}

/// Decodes bincode bytes (the default codec's) by `shape`.
pub(crate) fn decode_value(shape: &Shape, bytes: &[u8]) -> std::result::Result<Value, String> {
    let config = bincode::config::standard().with_limit::<{ 1 << 30 }>();
    let (value, read) =
        bincode::serde::seed_decode_from_slice(ShapedSeed::root(shape), bytes, config)
            .map_err(|e| e.to_string())?;
    if read != bytes.len() {
        return Err(format!("{} trailing bytes after the value", bytes.len() - read));
    }
    Ok(value)
}
