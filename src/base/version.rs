//! Versions, log sequence numbers, the outcomes of writes and what an `update` closure
//! decides.

use std::fmt;

/// A caller-chosen record version: the source row's update counter, a log offset, a
/// timestamp. A write applies only when its version is strictly greater than the stored
/// one, so replays and out-of-order deliveries never move a view backwards.
pub type Version = u64;

/// The log sequence number of a committed group of batches. Monotonic and persisted:
/// it continues after a reopen. Read the number with [`Lsn::get`]; make an LSN from a
/// number (one kept from an earlier [`Receipt`], say) with [`Lsn::new`].
///
/// ```
/// use viewstore::Lsn;
/// let lsn = Lsn::new(7);
/// assert_eq!(lsn.get(), 7);
/// assert!(Lsn::new(6) < lsn);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(u64);

impl Lsn {
    /// The LSN numbered `n`.
    pub const fn new(n: u64) -> Self {
        Lsn(n)
    }

    /// The number itself.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lsn {}", self.0)
    }
}

/// What happened to one operation of a committed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The write was applied.
    Applied,
    /// The write's version was not newer than the stored one (of a live record or a
    /// tombstone); nothing changed.
    Stale {
        /// The stored version; for a view with sources, the writing source's.
        current: Version,
    },
    /// A compare-and-set or compare-and-delete found another version than it expected;
    /// nothing changed.
    Conflict {
        /// The version of the live record (for a view with sources, the writing
        /// source's version of it), `None` when there is none.
        current: Option<Version>,
    },
    /// An `update` closure returned `None` ([`Change::Keep`]); nothing changed.
    Unchanged,
    /// Tombstones were purged.
    Purged {
        /// How many.
        count: u64,
    },
    /// The batch carried source positions it had already reached, so it was skipped
    /// whole as a redelivery; nothing changed (see [`Receipt::redelivery`]).
    Redelivered,
    /// A write from one source of a view with sources (see
    /// [`ViewDef::with_sources`](crate::ViewDef::with_sources)) met a tombstone that
    /// another source left: the record stays deleted, and only the writing source's
    /// version was recorded, so that a redelivery of this write is
    /// [`Stale`](Outcome::Stale). An `update` closure is not run.
    Tombstoned {
        /// The version of the tombstone's deleter, the source of its last delete.
        deleter_version: Version,
    },
}

impl Outcome {
    /// Whether the operation changed the view.
    pub fn is_applied(&self) -> bool {
        matches!(self, Outcome::Applied | Outcome::Purged { .. })
    }
}

/// What an `update` closure does to a record: keep it as it is, replace its value, or
/// delete it (leaving a tombstone, as [`Batch::delete`](crate::Batch::delete) does).
///
/// A closure may return a `Change` or an `Option<V>`: `Some(value)` is
/// [`Change::Put`], `None` is [`Change::Keep`].
///
/// # Examples
///
/// ```
/// use viewstore::{Batch, Change, Outcome, Store, ViewDef};
///
/// const STOCK: ViewDef<u64, u32> = ViewDef::new("stock");
/// # let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path().join("s.redb"))?;
/// let stock = store.view(&STOCK)?;
/// stock.put(&1, 1, 1)?;
///
/// // Take one item: the record goes away with the last one.
/// let take = |n: Option<&u32>| match n {
///     Some(1) => Change::Delete,
///     Some(n) => Change::Put(n - 1),
///     None => Change::Keep,
/// };
/// assert_eq!(stock.update(&1, 2, take)?, Outcome::Applied);
/// assert_eq!(stock.get(&1), None);
/// // The tombstone is at version 2: an older put is stale.
/// assert_eq!(stock.put(&1, 5, 2)?, Outcome::Stale { current: 2 });
///
/// // Closures returning `Option` work as they are.
/// assert_eq!(stock.update(&1, 3, |n| n.map(|n| n + 1))?, Outcome::Unchanged);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<V> {
    /// Leave the record as it is: [`Outcome::Unchanged`], nothing written.
    Keep,
    /// Write this value at the update's version.
    Put(V),
    /// Delete the record at the update's version, leaving a tombstone.
    Delete,
}

impl<V> From<Option<V>> for Change<V> {
    /// `Some(value)` is [`Change::Put`], `None` is [`Change::Keep`].
    fn from(value: Option<V>) -> Self {
        match value {
            Some(value) => Change::Put(value),
            None => Change::Keep,
        }
    }
}

/// The acknowledgement of a committed batch: its group's LSN and one outcome per
/// operation, in the order the operations were added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Receipt {
    /// The LSN of the group the batch committed in (for a batch skipped as a
    /// redelivery that changed nothing, the store's LSN at the time).
    pub lsn: Lsn,
    /// One outcome per operation; when the batch's fallback was applied instead, one
    /// per operation of the fallback.
    pub outcomes: Vec<Outcome>,
    /// The batch carried source positions the store had already reached: it was
    /// skipped whole, and each outcome is [`Outcome::Redelivered`].
    pub redelivery: bool,
    /// The batch's own operations failed, and the operations of its fallback were
    /// committed instead, with its source positions.
    pub fell_back: bool,
}

impl Receipt {
    /// The receipt of a batch whose operations committed at `lsn`.
    pub(crate) fn committed(lsn: Lsn, outcomes: Vec<Outcome>) -> Self {
        Receipt { lsn, outcomes, redelivery: false, fell_back: false }
    }
}
