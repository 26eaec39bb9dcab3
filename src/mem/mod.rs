//! The resident read layer: every live record of every view, decoded, in memory.
//!
//! The whole layer is one immutable [`Root`] behind an [`ArcSwap`]. Each view's records
//! sit in two persistent structures whose parts are shared between successive roots: a
//! hash table for point reads ([`points`]) and a list of sorted leaves for ordered scans
//! ([`ordered`]); both hold the same `Arc` of each value. The writer builds the next
//! root from the current one by copying only the parts its group touched, then swaps it
//! in with one atomic store: a reader sees a whole group or none of it, across all
//! views, and never waits on the writer. `docs/performance.md` explains the choices.

mod current;
pub(crate) mod delta;
#[cfg(test)]
mod feed_check;
pub(crate) mod feed_log;
#[cfg(test)]
mod feed_log_tests;
pub(crate) mod gather;
pub(crate) mod index;
pub(crate) mod index_entries;
pub(crate) mod index_read;
pub(crate) mod load;
pub(crate) mod lsn_watch;
#[cfg(test)]
mod model_check;
pub(crate) mod notify;
pub(crate) mod ordered;
pub(crate) mod points;
pub(crate) mod snapshot;
pub(crate) mod stats;

pub use index_read::{IndexIter, IndexView};
pub use snapshot::{Iter, Snapshot, ViewSnapshot};
pub use stats::{IndexStats, Stats, ViewStats};

use crate::base::sync;
use crate::base::version::{Lsn, Version};
use crate::keys::{KeyBuf, KeyRef};
use arc_swap::ArcSwap;
use delta::{Delta, ViewDelta};
use index::IndexData;
use lsn_watch::{Ended, LsnWatch};
use ordered::OrderedIndex;
use points::{BuildPlan, KeyHasher, PointIndex, Slot};
use std::any::Any;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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

/// The records of one view: a point index and an ordered index over the same values.
pub(crate) struct ViewData<V> {
    pub(crate) name: Arc<str>,
    points: PointIndex<Entry<V>>,
    order: OrderedIndex<V>,
    pub(crate) indexes: Vec<IndexData<V>>,
    /// The view's tombstones in the file: counted at open, then moved by each group's
    /// [`ViewDelta`] (tombstones themselves are not resident).
    pub(crate) tombstones: u64,
}

impl<V> Clone for ViewData<V> {
    fn clone(&self) -> Self {
        ViewData {
            name: Arc::clone(&self.name),
            points: self.points.clone(),
            order: self.order.clone(),
            indexes: self.indexes.clone(),
            tombstones: self.tombstones,
        }
    }
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
    #[cfg(feature = "__testing")]
    fn version(&self, key: &[u8]) -> Option<Version>;
    /// The version of the live record of `key`, and its value `with_value`: one lookup,
    /// for the writer's version checks.
    fn live_version(&self, key: &[u8], with_value: bool) -> Option<(Version, Option<AnyValue>)>;
    /// A new view with `changes` applied; nodes not on a changed path are shared.
    fn with_delta(&self, delta: ViewDelta) -> Arc<dyn ResidentView>;
    /// Visits every record in key order.
    fn for_each_record(&self, f: &mut RecordVisitor<'_>);
    /// The entries of index `index` in their on-disk form, in order.
    fn index_composites(&self, index: usize) -> Vec<(Vec<u8>, usize)>;
    /// Bytes of the view's record indexes, see [`ViewStats::index_bytes`].
    fn index_bytes(&self) -> usize;
    /// Bytes of the view's value allocations, see [`ViewStats::value_bytes`].
    fn value_bytes(&self) -> usize;
    /// The view's tombstones in the file, see [`ViewStats::tombstones`].
    fn tombstones(&self) -> u64;
    /// Entries and bytes of each secondary index, see [`IndexStats`].
    fn index_stats(&self) -> Vec<IndexStats>;
    /// The same records under another name (structures shared): a swap of two open
    /// views moves each one's data into the other's place.
    fn renamed(&self, name: &str) -> Arc<dyn ResidentView>;
}

impl<V: Send + Sync + 'static> ResidentView for ViewData<V> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn len(&self) -> usize {
        self.points.len()
    }

    fn value(&self, key: &[u8]) -> Option<AnyValue> {
        self.get(key).map(|e| Arc::clone(&e.value) as AnyValue)
    }

    #[cfg(feature = "__testing")]
    fn version(&self, key: &[u8]) -> Option<Version> {
        self.get(key).map(|e| e.version)
    }

    fn live_version(&self, key: &[u8], with_value: bool) -> Option<(Version, Option<AnyValue>)> {
        let entry = self.get(key)?;
        Some((entry.version, with_value.then(|| Arc::clone(&entry.value) as AnyValue)))
    }

    fn with_delta(&self, changes: ViewDelta) -> Arc<dyn ResidentView> {
        let tombstones = (self.tombstones + changes.tombstones_gained)
            .checked_sub(changes.tombstones_lost)
            .unwrap_or_else(|| {
                debug_assert!(false, "view '{}' lost more tombstones than it had", self.name);
                0
            });
        let mut typed: Vec<(KeyBuf, Option<Entry<V>>)> = changes
            .records
            .into_iter()
            .filter_map(|change| match change.new {
                // The writer only hands this view values of its own type.
                Some((version, value)) => value
                    .downcast::<V>()
                    .ok()
                    .map(|value| (change.key, Some(Entry { version, value }))),
                None => Some((change.key, None)),
            })
            .collect();
        typed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        typed.dedup_by(|later, earlier| later.0 == earlier.0);
        let ordered = typed.iter().map(|(k, e)| (k.clone(), e.clone())).collect();
        let mut next = self.with_group(changes.unique, changes.multi, || {
            (self.order.with_changes(ordered), self.points.with_changes(typed))
        });
        next.tombstones = tombstones;
        debug_assert_eq!(next.order.len(), next.points.len());
        Arc::new(next)
    }

    fn for_each_record(&self, f: &mut RecordVisitor<'_>) {
        for (key, entry) in self.order.range(Bound::Unbounded, Bound::Unbounded) {
            f(key.as_bytes(), entry.version, &*entry.value);
        }
    }

    fn index_composites(&self, index: usize) -> Vec<(Vec<u8>, usize)> {
        self.indexes.get(index).map(IndexData::composites).unwrap_or_default()
    }

    fn index_bytes(&self) -> usize {
        self.points.structural_bytes() + self.order.structural_bytes()
    }

    fn value_bytes(&self) -> usize {
        // Each value is one `Arc` allocation: two counters and the value itself.
        self.len() * (2 * size_of::<usize>() + size_of::<V>())
    }

    fn tombstones(&self) -> u64 {
        self.tombstones
    }

    fn renamed(&self, name: &str) -> Arc<dyn ResidentView> {
        let mut data = self.clone();
        data.name = Arc::from(name);
        Arc::new(data)
    }

    fn index_stats(&self) -> Vec<IndexStats> {
        self.indexes.iter().map(IndexData::stats).collect()
    }
}

impl<V: Send + Sync + 'static> ViewData<V> {
    /// A view of `records`, which must be sorted by key with no key twice. The ordered
    /// index and the point index's hashing are built on two threads.
    pub(crate) fn from_sorted(name: &str, records: Vec<Slot<V>>) -> Self {
        let hasher = KeyHasher::new();
        let (order, plan) = std::thread::scope(|s| {
            let side = std::thread::Builder::new()
                .name("viewstore-load".into())
                .spawn_scoped(s, || OrderedIndex::from_slots(&records));
            let plan = BuildPlan::new(hasher, &records);
            let order = match side.map(std::thread::ScopedJoinHandle::join) {
                Ok(Ok(order)) => order,
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                Err(_) => OrderedIndex::from_slots(&records),
            };
            (order, plan)
        });
        ViewData {
            name: Arc::from(name),
            points: PointIndex::assemble(plan, records),
            order,
            indexes: Vec::new(),
            tombstones: 0,
        }
    }
}

impl<V> ViewData<V> {
    /// The record of an encoded key.
    #[inline]
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Entry<V>> {
        self.points.get(key)
    }

    /// The record of the key `probe` stands for.
    #[inline]
    pub(crate) fn find(&self, probe: &KeyRef<'_>) -> Option<&Entry<V>> {
        self.points.find(probe)
    }

    /// The number of live records.
    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }

    /// The records whose encoded keys fall between `start` and `end`, in key order.
    pub(crate) fn range(&self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> ordered::Range<'_, V> {
        self.order.range(start, end)
    }
}

/// The source positions a store has reached: `(source, partition)` to position.
pub(crate) type Positions = BTreeMap<(Arc<str>, u32), u64>;

/// Every view at one LSN, and the source positions reached by then.
pub(crate) struct Root {
    pub(crate) lsn: Lsn,
    pub(crate) views: Vec<Arc<dyn ResidentView>>,
    /// Shared between roots until a group records a position.
    pub(crate) positions: Arc<Positions>,
}

impl Root {
    /// The typed records of view `id`. Views are registered with their value type, so
    /// the downcast fails only for an id of another store, which handles never carry.
    pub(crate) fn view<V: 'static>(&self, id: usize) -> Option<&ViewData<V>> {
        self.views.get(id)?.as_any().downcast_ref()
    }

    /// Record and tombstone counts and memory estimates per view, in registration
    /// order.
    pub(crate) fn view_stats(&self) -> Vec<ViewStats> {
        self.views
            .iter()
            .map(|v| ViewStats {
                name: v.name().to_owned(),
                records: v.len(),
                tombstones: v.tombstones(),
                index_bytes: v.index_bytes(),
                value_bytes: v.value_bytes(),
                indexes: v.index_stats(),
            })
            .collect()
    }

    /// The next root: `changes` grouped per view id, applied at `lsn`.
    pub(crate) fn with_delta(&self, lsn: Lsn, delta: Delta) -> Root {
        let mut views = self.views.clone();
        for (id, view_delta) in delta.views {
            if let Some(slot) = views.get_mut(id) {
                *slot = slot.with_delta(view_delta);
            }
        }
        let positions = if delta.positions.is_empty() {
            Arc::clone(&self.positions)
        } else {
            let mut positions = Positions::clone(&self.positions);
            positions.extend(delta.positions);
            Arc::new(positions)
        };
        Root { lsn, views, positions }
    }
}

static NEXT_PUBLISHED: AtomicU64 = AtomicU64::new(1);

/// What readers share with the writer: the current root, the durable LSN, and ways to
/// wait for an LSN, blocking or async.
pub(crate) struct Published {
    /// Unique per store, for the roots that reading threads keep (see [`current`]).
    id: u64,
    /// Bumped after every publish.
    generation: AtomicU64,
    root: ArcSwap<Root>,
    /// The published LSN and its waiters, blocked threads and futures.
    watch: Arc<LsnWatch>,
    /// The last LSN known to be on disk (synced): at most the published LSN.
    durable: AtomicU64,
}

impl Drop for Published {
    fn drop(&mut self) {
        self.forget_kept();
    }
}

impl Published {
    pub(crate) fn new(root: Arc<Root>) -> Self {
        let lsn = root.lsn;
        Published {
            id: NEXT_PUBLISHED.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            root: ArcSwap::new(root),
            watch: Arc::new(LsnWatch::new(lsn)),
            durable: AtomicU64::new(lsn.get()),
        }
    }

    /// The last LSN known to be durable.
    pub(crate) fn durable(&self) -> Lsn {
        Lsn::new(self.durable.load(Ordering::Acquire))
    }

    /// Records that every group up to `lsn` is on disk.
    pub(crate) fn set_durable(&self, lsn: Lsn) {
        self.durable.store(lsn.get(), Ordering::Release);
    }

    /// The current root, borrowed: no reference count is written.
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<Root>> {
        self.root.load()
    }

    /// The current root, owned (one reference count increment).
    pub(crate) fn load_full(&self) -> Arc<Root> {
        self.root.load_full()
    }

    /// Makes `root` visible to every reader at once, then wakes the waiters (blocked
    /// threads and futures) of every LSN up to its own: a woken waiter finds the root.
    pub(crate) fn publish(&self, root: Arc<Root>) {
        let lsn = root.lsn;
        self.root.store(root);
        // After the store: a reader that sees the new generation loads the new root.
        self.generation.fetch_add(1, Ordering::Release);
        self.watch.advance(lsn);
    }

    /// No group will be published again: the writer thread has stopped. Every wait for
    /// a later LSN ends.
    pub(crate) fn end(&self) {
        self.watch.end();
    }

    /// The published LSN and its waiters: for a future that waits for an LSN
    /// ([`lsn_watch::LsnReached`]) or a stream that waits for each next one
    /// ([`LsnWatch::poll_reached`]).
    pub(crate) fn watch(&self) -> &Arc<LsnWatch> {
        &self.watch
    }

    /// How many futures wait for an LSN.
    #[cfg(feature = "__testing")]
    pub(crate) fn lsn_waiters(&self) -> usize {
        self.watch.waiting()
    }

    /// Blocks until the published LSN reaches `lsn` or `timeout` passes; returns
    /// whether it was reached, or [`Ended`] when the writer stopped first.
    pub(crate) fn wait_for(&self, lsn: Lsn, timeout: Option<Duration>) -> Result<bool, Ended> {
        self.watch.wait(lsn, timeout).map(|reached| reached.is_some())
    }
}
