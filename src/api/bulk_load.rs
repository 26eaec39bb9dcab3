//! Filling an empty view in bulk: `Store::bulk_load`.

use crate::api::batch::{encode_key_for, encode_value_into};
use crate::api::store::Store;
use crate::api::view::View;
use crate::base::codec::Codec;
use crate::base::error::{Error, Result};
use crate::base::version::{Lsn, Version};
use crate::engine::manage_op::{ManageOp, Managed};
use crate::keys::render_key;
use crate::mem::Entry;
use crate::mem::points::Slot;
use crate::schema::bulk_load::{BulkLoad, RowAt, Rows};
use crate::schema::registration::{ViewKey, ViewValue};
use crate::storage::format::Record;
use std::sync::Arc;

impl Store {
    /// Fills an empty view with `records`, each `(key, version, value)`, in one
    /// transaction: the fast path to build a new view from a source, or to rebuild one
    /// (after [`Store::clear_view`], or into a second view swapped in with
    /// [`Store::swap_views`]).
    ///
    /// The records are encoded on the calling thread and sorted by key (input in
    /// strictly ascending key order is taken as it comes, with no sort). The writer
    /// then, between two groups, writes
    /// them to the view's table in key order, builds each index from them afterwards
    /// (entries sorted, written in key order), and publishes the view once, with its
    /// indexes, at the load's LSN. Groups submitted meanwhile wait in the queue. The
    /// commit syncs whatever the store's durability. A view with a change feed gets one
    /// change per record in the load's feed group.
    ///
    /// **All or nothing**: the load is one redb transaction, so a crash, a failed
    /// commit or a refused input leaves the view empty, as it was; a reopen finds it
    /// empty, and the load can simply run again. The price is memory: the encoded and
    /// decoded records are held at once, and redb keeps the transaction's pages until
    /// it commits. Split a load too large for memory into views (or batches) of its own.
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
        // Each record's slot, and where its key and row lie: the key, the record's
        // header, then the value encoded after it, all in one buffer.
        let mut slots: Vec<Slot<V>> = Vec::with_capacity(records.size_hint().0);
        let mut places: Vec<RowAt> = Vec::with_capacity(records.size_hint().0);
        let mut rows = Rows::default();
        // Whether every key so far came after the one before it: input in strictly
        // ascending key order (the usual case) is in order already, and holds no key
        // twice.
        let mut ascending = true;
        for (key, version, value) in records {
            let key = encode_key_for(name, &key)?;
            let at = rows.store(key.as_bytes(), |row| {
                Record::append_live_header(version, row);
                encode_value_into::<K, V, C>(name, &view.codec, &key, &value, false, row)
            })?;
            ascending = ascending && slots.last().is_none_or(|last| last.key < key);
            slots.push(Slot { key, entry: Entry { version, value: Arc::new(value) } });
            places.push(at);
        }
        if !ascending {
            let mut both: Vec<(Slot<V>, RowAt)> = slots.into_iter().zip(places).collect();
            both.sort_unstable_by(|a, b| a.0.key.cmp(&b.0.key));
            if let Some(twice) = both.windows(2).find(|w| w[0].0.key == w[1].0.key) {
                return Err(Error::BulkLoad {
                    view: name.to_owned(),
                    key: Some(render_key::<K>(twice[0].0.key.as_bytes())),
                    reason: "the input holds this key twice".into(),
                });
            }
            (slots, places) = both.into_iter().unzip();
        }
        rows.set_order(places);
        let load = BulkLoad { view: view.id, rows, records: Box::new(slots) };
        match self.manage(ManageOp::BulkLoad(Box::new(load)))? {
            Managed::Committed(lsn) => Ok(lsn),
            _ => Err(self.mismatched_answer()),
        }
    }
}
