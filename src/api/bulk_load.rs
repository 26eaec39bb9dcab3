//! Filling an empty view in bulk: `Store::bulk_load`.

use crate::api::batch::{encode_key_for, encode_value_into};
use crate::api::store::Store;
use crate::api::view::View;
use crate::base::codec::Codec;
use crate::base::error::{Error, Result};
use crate::base::version::{Lsn, Version};
use crate::engine::manage_op::{ManageOp, Managed};
use crate::keys::KeyBuf;
use crate::keys::render_key;
use crate::mem::Entry;
use crate::mem::points::Slot;
use crate::schema::bulk_load::{BulkLoad, BulkRows, RowSink};
use crate::schema::registration::{ViewKey, ViewValue};
use crate::storage::format::Record;
use std::marker::PhantomData;
use std::sync::Arc;

impl Store {
    /// Fills an empty view with `records`, each `(key, version, value)`, in one
    /// transaction: the fast path to build a new view from a source, or to rebuild one
    /// (after [`Store::clear_view`], or into a second view swapped in with
    /// [`Store::swap_views`]).
    ///
    /// The keys are encoded on the calling thread and the records sorted by key (input
    /// in strictly ascending key order is taken as it comes, with no sort). The writer
    /// then, between two groups, writes them to the view's table in key order, encoding
    /// each value as it writes it (the codec runs there, on a thread beside the
    /// writer's), builds each index from them afterwards (entries sorted, written in key
    /// order), and publishes the view once, with its indexes, at the load's LSN. Groups
    /// submitted meanwhile wait in the queue. The commit syncs whatever the store's
    /// durability. A view with a change feed gets one change per record in the load's
    /// feed group.
    ///
    /// **All or nothing**: the load is one redb transaction, so a crash, a failed
    /// commit or a refused input (a key given twice, a value its codec refuses or
    /// panics on, a value over the size limit) leaves the view empty, as it was; a
    /// reopen finds it empty, and the load can simply run again. The price is memory:
    /// every record is held decoded (the values the view keeps, and a list of the keys
    /// for the writer) until the load commits, and redb keeps the transaction's pages
    /// until then. Split a load too large for memory into views (or batches) of its
    /// own.
    ///
    /// Returns the LSN the load committed at.
    ///
    /// # Examples
    ///
    /// ```
    /// use viewstore::{IndexDef, Store, ViewDef};
    ///
    /// const BY_LEN: IndexDef<String, usize> = IndexDef::multi("by_len", |s: &String| s.len());
    /// const WORDS: ViewDef<u32, String> = ViewDef::new("words").with_indexes(&[&BY_LEN]);
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("store.redb"))?;
    /// let words = store.view(&WORDS)?;
    /// let source = ["one", "two", "three"].iter().enumerate();
    /// store.bulk_load(&words, source.map(|(i, w)| (i as u32, 1, w.to_string())))?;
    /// assert_eq!(words.get(&2).as_deref().map(String::as_str), Some("three"));
    /// assert_eq!(words.index_count(&BY_LEN, &3), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::BulkLoad`] when the view holds records or tombstones, when it has
    /// sources, or when two records have the same key (named); the errors of
    /// [`Batch::put`](crate::Batch::put) for a key or value that cannot be encoded or is
    /// over the size limits; [`Error::UniqueViolation`] when two records share a unique
    /// index key, [`Error::IndexPanicked`] and [`Error::IndexKeyTooLarge`] for an
    /// extractor; [`Error::ForeignView`] for a view of another store;
    /// [`Error::Storage`]; [`Error::Closed`]. On any error nothing was loaded.
    pub fn bulk_load<K, V, C, I>(&self, view: &View<K, V, C>, records: I) -> Result<Lsn>
    where
        K: ViewKey,
        V: ViewValue,
        C: Codec<V> + Clone,
        I: IntoIterator<Item = (K, Version, V)>,
    {
        let name = view.name();
        if view.store.id() != self.id() {
            return Err(Error::ForeignView { view: name.to_owned() });
        }
        let records = records.into_iter();
        let mut slots: Vec<Slot<V>> = Vec::with_capacity(records.size_hint().0);
        // Whether every key so far came after the one before it: input in strictly
        // ascending key order (the usual case) is in order already, and holds no key
        // twice.
        let mut ascending = true;
        for (key, version, value) in records {
            let key = encode_key_for(name, &key)?;
            ascending = ascending && slots.last().is_none_or(|last| last.key < key);
            slots.push(Slot { key, entry: Entry { version, value: Arc::new(value) } });
        }
        if !ascending {
            slots.sort_unstable_by(|a, b| a.key.cmp(&b.key));
            if let Some(twice) = slots.windows(2).find(|w| w[0].key == w[1].key) {
                return Err(Error::BulkLoad {
                    view: name.to_owned(),
                    key: Some(render_key::<K>(twice[0].key.as_bytes())),
                    reason: "the input holds this key twice".into(),
                });
            }
        }
        // The writer encodes each record as it writes it (on the thread that writes the
        // view's table), from its own list of the records: the loader takes `slots`.
        let rows = TypedRows::<K, V, C> {
            view: name.to_owned(),
            codec: view.codec.clone(),
            records: slots.iter().map(|s| (s.key.clone(), s.entry.clone())).collect(),
            _key: PhantomData,
        };
        let load = BulkLoad { view: view.id, rows: Box::new(rows), records: Box::new(slots) };
        match self.manage(ManageOp::BulkLoad(Box::new(load)))? {
            Managed::Committed(lsn) => Ok(lsn),
            _ => Err(self.mismatched_answer()),
        }
    }
}

/// A load's records as the writer encodes and writes them: each key with its record,
/// the value shared with the decoded records the view's loader takes.
struct TypedRows<K, V, C> {
    view: String,
    codec: C,
    records: Vec<(KeyBuf, Entry<V>)>,
    _key: PhantomData<fn() -> K>,
}

impl<K: ViewKey, V: ViewValue, C: Codec<V>> BulkRows for TypedRows<K, V, C> {
    fn len(&self) -> usize {
        self.records.len()
    }

    fn write(&self, write: &mut RowSink<'_>) -> Result<()> {
        let mut row = Vec::new();
        for (key, entry) in &self.records {
            row.clear();
            Record::append_live_header(entry.version, &mut row);
            encode_value_into::<K, V, C>(
                &self.view,
                &self.codec,
                key,
                &entry.value,
                false,
                &mut row,
            )?;
            write(key.as_bytes(), &row)?;
        }
        Ok(())
    }
}
