//! The resident read layer: every live record of every view, decoded, in memory.
//!
//! The whole layer is one immutable [`Root`] behind an [`ArcSwap`]. Each view's records
//! sit in a persistent B+tree (`imbl::OrdMap`) whose nodes are shared between
//! successive roots. The writer builds the next root from the current one by copying
//! only the paths its group touched, then swaps it in with one atomic store: a reader
//! sees a whole group or none of it, across all views, and never waits on the writer.

pub(crate) mod index;
mod index_read;
pub(crate) mod snapshot;

pub use index_read::{IndexIter, IndexView};
pub use snapshot::{Iter, Snapshot, ViewSnapshot};

use crate::codec::KeyBuf;
use crate::version::{Lsn, Version};
use arc_swap::ArcSwap;
use imbl::OrdMap;
use index::{IndexChange, IndexData};
use std::any::Any;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A decoded value with its type erased, as it travels from a batch to the layer.
pub(crate) type AnyValue = Arc<dyn Any + Send + Sync>;

/// One resident record.
pub(crate) struct Entry<V> {
    pub(crate) version: Version,
    pub(crate) value: Arc<V>,
}

impl<V> Clone for Entry<V> {
    fn clone(&self) -> Self {
        Entry { version: self.version, value: Arc::clone(&self.value) }
    }
}

/// The records of one view, ordered by encoded key.
pub(crate) struct ViewData<V> {
    pub(crate) name: Arc<str>,
    pub(crate) map: OrdMap<KeyBuf, Entry<V>>,
    pub(crate) indexes: Vec<IndexData>,
}

impl<V> Clone for ViewData<V> {
    fn clone(&self) -> Self {
        ViewData {
            name: Arc::clone(&self.name),
            map: self.map.clone(),
            indexes: self.indexes.clone(),
        }
    }
}

/// One change a committed group makes to a view: a new live value, or removal.
pub(crate) struct Change {
    pub(crate) key: KeyBuf,
    pub(crate) new: Option<(Version, AnyValue)>,
}

/// Everything a committed group changes in one view: its records (final states), then
/// its index entries (in the order the batches made them).
#[derive(Default)]
pub(crate) struct ViewChanges {
    pub(crate) records: Vec<Change>,
    pub(crate) index: Vec<IndexChange>,
}

/// Visits a record: its encoded key, version and type-erased value.
pub(crate) type RecordVisitor<'a> = dyn FnMut(&[u8], Version, &(dyn Any + Send + Sync)) + 'a;

/// A view's records with their value type erased, so one root can hold many views.
pub(crate) trait ResidentView: Send + Sync + 'static {
    fn as_any(&self) -> &dyn Any;
    fn name(&self) -> &str;
    fn len(&self) -> usize;
    /// The live value of a key, as the writer hands it to `update` closures.
    fn value(&self, key: &[u8]) -> Option<AnyValue>;
    /// The version of a key's live record.
    fn version(&self, key: &[u8]) -> Option<Version>;
    /// A new view with `changes` applied; nodes not on a changed path are shared.
    fn with_changes(&self, changes: ViewChanges) -> Arc<dyn ResidentView>;
    /// Visits every record in key order.
    fn for_each_record(&self, f: &mut RecordVisitor<'_>);
    /// The entries of index `index` in their on-disk form, in order.
    fn index_composites(&self, index: usize) -> Vec<(Vec<u8>, usize)>;
}

impl<V: Send + Sync + 'static> ResidentView for ViewData<V> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn value(&self, key: &[u8]) -> Option<AnyValue> {
        self.map.get(key).map(|e| Arc::clone(&e.value) as AnyValue)
    }

    fn version(&self, key: &[u8]) -> Option<Version> {
        self.map.get(key).map(|e| e.version)
    }

    fn with_changes(&self, changes: ViewChanges) -> Arc<dyn ResidentView> {
        let mut next = self.clone();
        for change in changes.records {
            match change.new {
                Some((version, value)) => {
                    // The writer only hands this view values of its own type.
                    if let Ok(value) = value.downcast::<V>() {
                        next.map.insert(change.key, Entry { version, value });
                    }
                }
                None => {
                    next.map.remove(change.key.as_bytes());
                }
            }
        }
        next.apply_index_changes(changes.index);
        Arc::new(next)
    }

    fn for_each_record(&self, f: &mut RecordVisitor<'_>) {
        for (key, entry) in &self.map {
            f(key.as_bytes(), entry.version, &*entry.value);
        }
    }

    fn index_composites(&self, index: usize) -> Vec<(Vec<u8>, usize)> {
        self.indexes.get(index).map(IndexData::composites).unwrap_or_default()
    }
}

impl<V: Send + Sync + 'static> ViewData<V> {
    pub(crate) fn new(name: &str) -> Self {
        ViewData { name: Arc::from(name), map: OrdMap::new(), indexes: Vec::new() }
    }
}

/// Figures about one open view, from [`Store::stats`](crate::Store::stats).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ViewStats {
    /// The view's name.
    pub name: String,
    /// Live records held in memory.
    pub records: usize,
}

/// Figures about an open store, from [`Store::stats`](crate::Store::stats).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The LSN of the latest visible group.
    pub lsn: Lsn,
    /// One entry per open view.
    pub views: Vec<ViewStats>,
}

/// Every view at one LSN.
pub(crate) struct Root {
    pub(crate) lsn: Lsn,
    pub(crate) views: Vec<Arc<dyn ResidentView>>,
}

impl Root {
    /// The typed records of view `id`. Views are registered with their value type, so
    /// the downcast fails only for an id of another store, which handles never carry.
    pub(crate) fn view<V: 'static>(&self, id: usize) -> Option<&ViewData<V>> {
        self.views.get(id)?.as_any().downcast_ref()
    }

    /// Record counts per view, in registration order.
    pub(crate) fn view_stats(&self) -> Vec<ViewStats> {
        self.views
            .iter()
            .map(|v| ViewStats { name: v.name().to_owned(), records: v.len() })
            .collect()
    }

    /// The next root: `changes` grouped per view id, applied at `lsn`.
    pub(crate) fn with_changes(&self, lsn: Lsn, changes: Vec<(usize, ViewChanges)>) -> Root {
        let mut views = self.views.clone();
        for (id, view_changes) in changes {
            if let Some(slot) = views.get_mut(id) {
                *slot = slot.with_changes(view_changes);
            }
        }
        Root { lsn, views }
    }
}

/// What readers share with the writer: the current root and a way to wait for an LSN.
pub(crate) struct Published {
    root: ArcSwap<Root>,
    lsn: Mutex<Lsn>,
    advanced: Condvar,
}

impl Published {
    pub(crate) fn new(root: Arc<Root>) -> Self {
        let lsn = root.lsn;
        Published { root: ArcSwap::new(root), lsn: Mutex::new(lsn), advanced: Condvar::new() }
    }

    /// The current root, borrowed: no reference count is written.
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<Root>> {
        self.root.load()
    }

    /// The current root, owned (one reference count increment).
    pub(crate) fn load_full(&self) -> Arc<Root> {
        self.root.load_full()
    }

    /// Makes `root` visible to every reader at once and wakes LSN waiters.
    pub(crate) fn publish(&self, root: Arc<Root>) {
        let lsn = root.lsn;
        self.root.store(root);
        let mut current = self.lsn.lock().unwrap_or_else(PoisonError::into_inner);
        *current = lsn;
        self.advanced.notify_all();
    }

    /// Blocks until the published LSN reaches `lsn` or `timeout` passes; returns
    /// whether it was reached.
    pub(crate) fn wait_for(&self, lsn: Lsn, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut current = self.lsn.lock().unwrap_or_else(PoisonError::into_inner);
        while *current < lsn {
            match deadline {
                None => {
                    current = self.advanced.wait(current).unwrap_or_else(PoisonError::into_inner);
                }
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    current = self
                        .advanced
                        .wait_timeout(current, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        true
    }
}
