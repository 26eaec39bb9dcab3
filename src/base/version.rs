//! Versions, log sequence numbers and the outcomes of writes.

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
        /// The stored version.
        current: Version,
    },
    /// A compare-and-set found another version than it expected; nothing changed.
    Conflict {
        /// The version of the live record, `None` when there is none.
        current: Option<Version>,
    },
    /// An `update` closure returned `None`; nothing changed.
    Unchanged,
    /// Tombstones were purged.
    Purged {
        /// How many.
        count: u64,
    },
    /// The batch carried source positions it had already reached, so it was skipped
    /// whole as a redelivery; nothing changed (see [`Receipt::redelivery`]).
    Redelivered,
}

impl Outcome {
    /// Whether the operation changed the view.
    pub fn is_applied(&self) -> bool {
        matches!(self, Outcome::Applied | Outcome::Purged { .. })
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
