//! What the writer counts as it commits groups: groups, group sizes, commit and sync
//! latencies, and the outcomes of operations. The writer thread records into
//! [`WriterFigures`] with relaxed atomic adds; [`Store::stats`](crate::Store::stats)
//! reads a [`WriterStats`] snapshot without taking any lock the writer holds.
//!
//! A snapshot is not taken at one instant: a group being recorded meanwhile may show in
//! some figures and not yet in others. Each figure only ever grows.

use crate::base::histogram::{Histogram, Recorder};
use crate::base::instrument;
use crate::base::version::Outcome;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many operations of committed groups ended in each way, and how many batches
/// failed. Counted once a group has committed; a batch of a group whose commit failed
/// counts in [`failed_batches`](Outcomes::failed_batches) alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcomes {
    /// Writes that applied ([`Outcome::Applied`]): puts, deletes, updates and
    /// compare-and-sets that changed their record. Deletes are counted here too.
    pub applied: u64,
    /// Of [`applied`](Outcomes::applied), those that deleted their record (a
    /// `delete`, a `compare_and_delete`, an `update` returning `Change::Delete`).
    pub deleted: u64,
    /// Writes refused as not newer ([`Outcome::Stale`]).
    pub stale: u64,
    /// Compare-and-sets that found another version ([`Outcome::Conflict`]).
    pub conflict: u64,
    /// Updates that kept their record ([`Outcome::Unchanged`]).
    pub unchanged: u64,
    /// Writes that met another source's tombstone ([`Outcome::Tombstoned`]).
    pub tombstoned: u64,
    /// Operations of batches skipped as redeliveries ([`Outcome::Redelivered`]).
    pub redelivered: u64,
    /// Purge operations ([`Outcome::Purged`]).
    pub purges: u64,
    /// Tombstones those purges removed.
    pub purged_tombstones: u64,
    /// Batches that failed: alone (a unique violation, a codec error, a panicking
    /// closure, a position gap) or with their whole group (a failed commit).
    pub failed_batches: u64,
}

/// Figures about the writer since the store opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterStats {
    /// Groups committed (each one redb write transaction and one LSN).
    pub groups: u64,
    /// Groups whose commit failed (every batch in them failed).
    pub failed_groups: u64,
    /// Batches per committed group.
    pub batches_per_group: Histogram,
    /// Operations per committed group (a purge counts as one).
    pub writes_per_group: Histogram,
    /// Nanoseconds per committed group from beginning its write transaction to the end
    /// of its commit: applying the batches, writing the tables, and the commit itself
    /// (with [`Durability::Immediate`](crate::Durability::Immediate), its syncs too).
    pub commit_latency: Histogram,
    /// Nanoseconds per sync of the file to disk (`fdatasync`), as redb asks for them: one
    /// or two per durable commit, one per periodic sync, and those of opening and closing.
    pub sync_latency: Histogram,
    /// What became of the operations.
    pub outcomes: Outcomes,
}

/// The writer's queue at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Requests waiting for the writer (batches, view openings, verifications).
    pub queued: usize,
    /// How many the queue holds ([`StoreBuilder::queue_capacity`](crate::StoreBuilder::queue_capacity)).
    pub capacity: usize,
    /// Threads blocked in a submit, waiting for room in the full queue.
    pub blocked_submitters: usize,
    /// Async submits waiting for room in the full queue.
    pub waiting_async_submitters: usize,
}

/// The outcome counters, one atomic each.
#[derive(Default)]
struct OutcomeCounters {
    applied: AtomicU64,
    deleted: AtomicU64,
    stale: AtomicU64,
    conflict: AtomicU64,
    unchanged: AtomicU64,
    tombstoned: AtomicU64,
    redelivered: AtomicU64,
    purges: AtomicU64,
    purged_tombstones: AtomicU64,
    failed_batches: AtomicU64,
}

/// The recording side of [`WriterStats`], shared between the writer and the store.
#[derive(Default)]
pub(crate) struct WriterFigures {
    groups: AtomicU64,
    failed_groups: AtomicU64,
    pub(crate) batches_per_group: Recorder,
    pub(crate) writes_per_group: Recorder,
    pub(crate) commit_latency: Recorder,
    /// Shared with the storage backend wrapper that times each sync.
    pub(crate) sync_latency: Arc<Recorder>,
    outcomes: OutcomeCounters,
}

/// What one batch of a committed group did, for [`WriterFigures::count_batch`].
pub(crate) struct BatchTally<'a> {
    pub(crate) outcomes: &'a [Outcome],
    pub(crate) deleted: u64,
}

fn add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl WriterFigures {
    /// Counts a committed group of `batches` batches and `writes` operations.
    pub(crate) fn count_group(&self, batches: u64, writes: u64) {
        self.batches_per_group.record(batches);
        self.writes_per_group.record(writes);
        add(&self.groups, 1);
        instrument::histogram(instrument::GROUP_BATCHES, batches);
        instrument::histogram(instrument::GROUP_WRITES, writes);
        instrument::counter(instrument::GROUPS, 1);
        instrument::counter(instrument::WRITES, writes);
    }

    /// Records how long a committed group took, from its transaction's start to the end
    /// of its commit.
    pub(crate) fn record_commit(&self, took: std::time::Duration) {
        self.commit_latency.record_duration(took);
        instrument::seconds(instrument::COMMIT_SECONDS, took);
    }

    /// Counts a group whose commit failed, with its `batches`.
    pub(crate) fn count_failed_group(&self, batches: u64) {
        add(&self.failed_groups, 1);
        add(&self.outcomes.failed_batches, batches);
        instrument::counter(instrument::FAILED_GROUPS, 1);
        instrument::counter(instrument::FAILED_BATCHES, batches);
    }

    /// Counts a batch that failed alone.
    pub(crate) fn count_failed_batch(&self) {
        add(&self.outcomes.failed_batches, 1);
        instrument::counter(instrument::FAILED_BATCHES, 1);
    }

    /// Counts the outcomes of a batch of a committed group.
    pub(crate) fn count_batch(&self, batch: &BatchTally<'_>) {
        let o = &self.outcomes;
        let mut tally = [0u64; 8];
        for outcome in batch.outcomes {
            match outcome {
                Outcome::Applied => tally[0] += 1,
                Outcome::Stale { .. } => tally[1] += 1,
                Outcome::Conflict { .. } => tally[2] += 1,
                Outcome::Unchanged => tally[3] += 1,
                Outcome::Tombstoned { .. } => tally[4] += 1,
                Outcome::Redelivered => tally[5] += 1,
                Outcome::Purged { count } => {
                    tally[6] += 1;
                    tally[7] += count;
                }
            }
        }
        let counters = [
            &o.applied,
            &o.stale,
            &o.conflict,
            &o.unchanged,
            &o.tombstoned,
            &o.redelivered,
            &o.purges,
            &o.purged_tombstones,
        ];
        for (counter, n) in counters.into_iter().zip(tally) {
            add(counter, n);
        }
        add(&o.deleted, batch.deleted);
        let names = [
            "applied",
            "stale",
            "conflict",
            "unchanged",
            "tombstoned",
            "redelivered",
            "purges",
            "purged_tombstones",
        ];
        for (name, n) in names.into_iter().zip(tally) {
            instrument::outcome(name, n);
        }
        instrument::outcome("deleted", batch.deleted);
    }

    /// The figures so far.
    pub(crate) fn snapshot(&self) -> WriterStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let o = &self.outcomes;
        WriterStats {
            groups: load(&self.groups),
            failed_groups: load(&self.failed_groups),
            batches_per_group: self.batches_per_group.snapshot(),
            writes_per_group: self.writes_per_group.snapshot(),
            commit_latency: self.commit_latency.snapshot(),
            sync_latency: self.sync_latency.snapshot(),
            outcomes: Outcomes {
                applied: load(&o.applied),
                deleted: load(&o.deleted),
                stale: load(&o.stale),
                conflict: load(&o.conflict),
                unchanged: load(&o.unchanged),
                tombstoned: load(&o.tombstoned),
                redelivered: load(&o.redelivered),
                purges: load(&o.purges),
                purged_tombstones: load(&o.purged_tombstones),
                failed_batches: load(&o.failed_batches),
            },
        }
    }
}
