//! A view as the writer registers and loads it, with its key and value types erased:
//! the one place where typed views meet `dyn Any`.

use crate::base::beside::{BUILD_INDEXES_IN_TWO_FROM, beside};
use crate::base::codec::Codec;
use crate::base::error::{Error, Result};
use crate::base::feed::FeedMode;
use crate::base::index_kind::IndexKind;
use crate::base::panic::panic_message;
use crate::base::version::Version;
use crate::keys::{decode_key, render_key};
use crate::mem::gather::{ChunkKeys, Gathered};
use crate::mem::index::IndexData;
use crate::mem::load::{self, DecodeFn, ExtractFn};
use crate::mem::points::Slot;
use crate::mem::{ResidentView, ViewData};
use crate::schema::index::{AnyIndex, append_keys, extract};
use crate::schema::index_build::{build_entries, lay_out_gathered};
use crate::schema::view_info::WriterIndex;
use crate::storage::format::{IndexMeta, ViewMeta, index_table_name};
use crate::storage::shapes::ViewShapes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What a view key must be: serde-encodable with the order-preserving key encoding
/// (integers, strings, byte strings, `bool`, `char`, `Option`, tuples, structs and enums
/// of those; not floats or maps), and `Debug` so that errors can name it.
///
/// Keys sort in the order of their encoding, which equals their `Ord` order for the
/// types above (and for derived `Ord` on structs and enums of them).
pub trait ViewKey: Serialize + DeserializeOwned + Debug + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Debug + Send + Sync + 'static> ViewKey for T {}

/// What a view value must be: shareable between threads. Its encoding is the
/// [`Codec`]'s business.
pub trait ViewValue: Send + Sync + 'static {}
impl<T: Send + Sync + 'static> ViewValue for T {}

/// A view as the writer registers it: its meta, its indexes and how to load it.
pub(crate) trait Registration: Send {
    fn name(&self) -> &str;
    fn meta(&self) -> ViewMeta;
    /// The names and traced shapes of the view's key and value.
    fn shapes(&self) -> ViewShapes;
    /// The declared source names, in id order; empty for a view without sources.
    fn sources(&self) -> &'static [&'static str];
    /// What the view records in the change feed.
    fn feed(&self) -> FeedMode;
    fn render_key(&self) -> fn(&[u8]) -> String;
    fn indexes(&self) -> Vec<IndexRegistration>;
    fn loader(&self) -> Box<dyn Loader>;
}

/// An index as the writer registers it.
pub(crate) struct IndexRegistration {
    pub(crate) meta: IndexMeta,
    pub(crate) writer: WriterIndex,
}

/// Builds a view's resident records from its stored ones, in key order, then its
/// indexes, from their stored entries or from the records.
pub(crate) trait Loader: Send {
    fn push(&mut self, key: &[u8], version: Version, value: &[u8]) -> Result<()>;
    /// Adds the records of `later`, a loader of the same view whose keys all come after
    /// this one's.
    fn append(&mut self, later: Box<dyn Loader>) -> Result<()>;
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any>;
    /// Decode on the pushing thread instead of on worker threads.
    fn decode_inline(&mut self);
    /// Says that every record is pushed, on the pushing thread (see
    /// `mem::load::Loader::pushed_all`).
    fn pushed_all(&mut self);
    /// Extracts the keys of the indexes listed in `indexes` (by position) as each
    /// record is decoded, for [`Loader::build_stored_indexes`]. Called before the first
    /// record is pushed.
    fn extract_while_decoding(&mut self, indexes: &[usize]);
    /// A loader of the same view, with the same indexes extracted while decoding, for
    /// records whose keys all come after this one's (see [`Loader::append`]).
    fn for_later(&self) -> Box<dyn Loader>;
    /// Makes room for `records` decoded records (stored records, tombstones included,
    /// so possibly more than will be live): a hint, ignored when the memory is not
    /// there.
    fn reserve(&mut self, records: usize);
    /// Waits until every pushed record is decoded. Decoding happens on worker threads
    /// while records are pushed: errors (naming the first bad record in key order)
    /// surface here. Indexes are loaded or built after this.
    fn decoded(&mut self) -> Result<()>;
    /// Takes every record at once, already decoded: `records` is a `Vec<Slot<V>>` of
    /// the view's value type, in key order with no key twice, and nothing was pushed.
    fn take_decoded(&mut self, records: Box<dyn std::any::Any + Send>) -> Result<()>;
    /// Builds the indexes listed in `indexes` (by position), whose entries are already
    /// stored, in memory only: from the entries gathered while the records decoded
    /// ([`Loader::extract_while_decoding`]) when there are some, else from the records;
    /// on two threads when there are several. Returns each one's entry count, in the
    /// order of `indexes`.
    fn build_stored_indexes(&mut self, indexes: &[usize]) -> Result<Vec<u64>>;
    /// Builds index `index` from the records, handing each entry (on-disk key, index
    /// key length) to `sink` and reporting (records done, records in all).
    fn build_index(
        &mut self,
        index: usize,
        sink: &mut dyn FnMut(&[u8], u32) -> Result<()>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()>;
    fn finish(self: Box<Self>, tombstones: u64) -> Result<Arc<dyn ResidentView>>;
}

pub(crate) struct TypedRegistration<K, V: 'static, C> {
    pub(crate) name: &'static str,
    pub(crate) meta: ViewMeta,
    pub(crate) shapes: ViewShapes,
    pub(crate) codec: C,
    pub(crate) indexes: &'static [&'static dyn AnyIndex<V>],
    pub(crate) sources: &'static [&'static str],
    pub(crate) feed: FeedMode,
    pub(crate) _types: PhantomData<fn() -> (K, V)>,
}

impl<K: ViewKey, V: ViewValue, C: Codec<V> + Clone> Registration for TypedRegistration<K, V, C> {
    fn name(&self) -> &str {
        self.name
    }
    fn meta(&self) -> ViewMeta {
        self.meta.clone()
    }
    fn shapes(&self) -> ViewShapes {
        self.shapes.clone()
    }
    fn sources(&self) -> &'static [&'static str] {
        self.sources
    }
    fn feed(&self) -> FeedMode {
        self.feed
    }
    fn render_key(&self) -> fn(&[u8]) -> String {
        render_key::<K>
    }
    fn indexes(&self) -> Vec<IndexRegistration> {
        self.indexes
            .iter()
            .map(|&spec| IndexRegistration {
                meta: IndexMeta {
                    unique: spec.index_kind() == IndexKind::Unique,
                    version: spec.index_definition_version(),
                    key_type: spec.index_key_type().to_owned(),
                },
                writer: WriterIndex {
                    name: Arc::from(spec.index_name()),
                    kind: spec.index_kind(),
                    table: index_table_name(self.name, spec.index_name()),
                    extract: Box::new(move |value| extract(spec, value)),
                    render: Box::new(move |bytes| spec.render_key(bytes)),
                },
            })
            .collect()
    }

    fn loader(&self) -> Box<dyn Loader> {
        let name = self.name;
        let codec = self.codec.clone();
        let (key_type, value_type) = (self.meta.key_type.clone(), self.meta.value_type.clone());
        let version = self.meta.schema_version;
        let decode: DecodeFn<V> = Arc::new(move |key: &[u8], value: &[u8]| {
            // The key's `Deserialize` and the codec are user code: a panic in either
            // fails the view's open with a decode error naming the record.
            let decoded = catch_unwind(AssertUnwindSafe(|| {
                if let Err(e) = decode_key::<K>(key) {
                    let key = crate::keys::render_bytes(key);
                    return Err(Error::decode_as(name, key, e, &key_type, version));
                }
                codec.decode(value).map_err(|e| {
                    Error::decode_as(name, render_key::<K>(key), e, &value_type, version)
                })
            }));
            decoded.unwrap_or_else(|payload| {
                let message = format!("the codec panicked: {}", panic_message(payload.as_ref()));
                Err(Error::decode(name, render_key::<K>(key), message))
            })
        });
        Box::new(TypedLoader::<K, V> {
            name: self.name,
            specs: self.indexes,
            loading: load::Loader::new(self.name, Arc::clone(&decode)),
            decode,
            records: None,
            gathered: Vec::new(),
            indexes: self
                .indexes
                .iter()
                .map(|spec| IndexData::new(spec.index_name(), spec.index_kind()))
                .collect(),
            _types: PhantomData,
        })
    }
}

struct TypedLoader<K, V: 'static> {
    name: &'static str,
    specs: &'static [&'static dyn AnyIndex<V>],
    decode: DecodeFn<V>,
    /// Records pushed so far, being decoded.
    loading: load::Loader<V>,
    /// Every record, decoded, in key order, once `decoded` has run.
    records: Option<Vec<Slot<V>>>,
    /// The indexes extracted while decoding, by position: their entries once `decoded`
    /// has run, or the error of their first record whose keys could not be extracted.
    gathered: Vec<(usize, Option<Result<Gathered>>)>,
    indexes: Vec<IndexData<V>>,
    _types: PhantomData<fn() -> K>,
}

impl<K: ViewKey, V: ViewValue> Loader for TypedLoader<K, V> {
    fn push(&mut self, key: &[u8], version: Version, value: &[u8]) -> Result<()> {
        self.loading.push(key, version, value);
        Ok(())
    }

    fn append(&mut self, later: Box<dyn Loader>) -> Result<()> {
        match later.into_any().downcast::<Self>() {
            Ok(later) => {
                self.loading.append(later.loading);
                Ok(())
            }
            Err(_) => {
                Err(Error::decode(self.name, "(loading)".into(), "records of another view type"))
            }
        }
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }

    fn decode_inline(&mut self) {
        self.loading.decode_inline();
    }

    fn pushed_all(&mut self) {
        self.loading.pushed_all();
    }

    fn extract_while_decoding(&mut self, indexes: &[usize]) {
        let (name, specs) = (self.name, self.specs);
        let chosen: Vec<(usize, &'static dyn AnyIndex<V>)> =
            indexes.iter().filter_map(|&ix| Some((ix, *specs.get(ix)?))).collect();
        if chosen.is_empty() {
            return;
        }
        self.gathered = chosen.iter().map(|&(ix, _)| (ix, None)).collect();
        let kinds = chosen.iter().map(|(_, spec)| spec.index_kind()).collect();
        let extract: ExtractFn<V> =
            Arc::new(move |key: &[u8], value: &V, record: u32, keys: &mut ChunkKeys| {
                for (run, &(_, spec)) in chosen.iter().enumerate() {
                    keys.add(run, record, |bytes, ends| {
                        append_keys(spec, value, bytes, ends).map_err(|e| {
                            e.into_error(name, spec.index_name(), render_key::<K>(key))
                        })
                    });
                }
            });
        self.loading.extract_while_decoding(kinds, extract);
    }

    fn for_later(&self) -> Box<dyn Loader> {
        // Only its records and gathered entries are taken back (`append`): the indexes
        // are built by the loader it is appended to.
        Box::new(TypedLoader::<K, V> {
            name: self.name,
            specs: self.specs,
            decode: Arc::clone(&self.decode),
            loading: self.loading.for_later(),
            records: None,
            gathered: Vec::new(),
            indexes: Vec::new(),
            _types: PhantomData,
        })
    }

    fn reserve(&mut self, records: usize) {
        self.loading.reserve(records);
    }

    fn decoded(&mut self) -> Result<()> {
        if self.records.is_none() {
            let fresh = load::Loader::new(self.name, Arc::clone(&self.decode));
            let loading = std::mem::replace(&mut self.loading, fresh);
            let loaded = loading.into_loaded()?;
            for ((_, slot), gathered) in self.gathered.iter_mut().zip(loaded.gathered) {
                *slot = Some(gathered);
            }
            self.records = Some(loaded.records);
        }
        Ok(())
    }

    fn take_decoded(&mut self, records: Box<dyn std::any::Any + Send>) -> Result<()> {
        match records.downcast::<Vec<Slot<V>>>() {
            Ok(records) => {
                debug_assert!(
                    records.windows(2).all(|w| w[0].key.as_bytes() < w[1].key.as_bytes()),
                    "records taken by a loader are in key order, one per key"
                );
                self.records = Some(*records);
                Ok(())
            }
            Err(_) => {
                Err(Error::decode(self.name, "(loading)".into(), "records of another view type"))
            }
        }
    }

    fn build_stored_indexes(&mut self, indexes: &[usize]) -> Result<Vec<u64>> {
        let records = self.records.as_deref().unwrap_or_default();
        let (name, specs) = (self.name, self.specs);
        // The entries gathered while decoding, each taken by the one build of its index.
        let gathered: Vec<(usize, Mutex<Option<Result<Gathered>>>)> =
            std::mem::take(&mut self.gathered)
                .into_iter()
                .map(|(ix, gathered)| (ix, Mutex::new(gathered)))
                .collect();
        let take_gathered = |ix: usize| {
            let (_, slot) = gathered.iter().find(|(at, _)| *at == ix)?;
            slot.lock().ok()?.take()
        };
        let index_of = |ix: usize, spec: &dyn AnyIndex<V>| match take_gathered(ix) {
            Some(gathered) => lay_out_gathered::<K, V>(name, spec, gathered?, records),
            None => build_entries::<K, V>(name, spec, records, &mut |_, _| {}),
        };
        let next = AtomicUsize::new(0);
        // Each thread takes the next index not yet taken until none is left.
        let work = || {
            let mut built = Vec::new();
            while let Some(&ix) = indexes.get(next.fetch_add(1, Ordering::Relaxed)) {
                let entries = specs
                    .get(ix)
                    .ok_or_else(|| undeclared(name, ix))
                    .and_then(|&spec| index_of(ix, spec));
                built.push((ix, entries));
            }
            built
        };
        let (side, here) = if indexes.len() > 1 && records.len() >= BUILD_INDEXES_IN_TWO_FROM {
            beside("viewstore-index", work, work)
        } else {
            (Vec::new(), work())
        };
        let mut counts = vec![0; indexes.len()];
        for (ix, entries) in side.into_iter().chain(here) {
            let (Some(_), Some(slot)) = (specs.get(ix), self.indexes.get_mut(ix)) else {
                return Err(undeclared(name, ix));
            };
            let built = entries?;
            if let Some(at) = indexes.iter().position(|&i| i == ix) {
                counts[at] = built.entries.len() as u64;
            }
            *slot = built;
        }
        Ok(counts)
    }

    fn build_index(
        &mut self,
        index: usize,
        sink: &mut dyn FnMut(&[u8], u32) -> Result<()>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        let records = self.records.as_deref().unwrap_or_default();
        // The writer builds only the indexes it declared, in declaration order.
        let (Some(&spec), Some(built)) = (self.specs.get(index), self.indexes.get_mut(index))
        else {
            debug_assert!(false, "index {index} of view '{}' was never declared", self.name);
            return Err(undeclared(self.name, index));
        };
        let total = records.len() as u64;
        progress(0, total);
        let index = build_entries::<K, V>(self.name, spec, records, progress)?;
        for entry in index.entries.iter() {
            sink(&entry.whole(), entry.ikey_len() as u32)?;
        }
        if !total.is_multiple_of(10_000) {
            progress(total, total);
        }
        // A build starts from nothing, also after a stored index turned out not to
        // match its records.
        *built = index;
        Ok(())
    }

    fn finish(mut self: Box<Self>, tombstones: u64) -> Result<Arc<dyn ResidentView>> {
        self.decoded()?;
        let records = self.records.take().unwrap_or_default();
        let mut data = ViewData::from_sorted(self.name, records);
        data.tombstones = tombstones;
        data.seal_indexes(std::mem::take(&mut self.indexes));
        Ok(Arc::new(data))
    }
}

/// The error for an index position `index` that view `view` does not declare.
fn undeclared(view: &str, index: usize) -> Error {
    Error::InvalidIndex {
        view: view.to_owned(),
        index: format!("#{index}"),
        reason: "not declared".into(),
        key: None,
    }
}
