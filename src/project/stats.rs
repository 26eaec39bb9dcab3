//! What a projector reports: progress, dead letters, lag.

use std::time::Duration;

/// A projector's figures: events committed, dead letters, redeliveries skipped, and per
/// partition the position applied, the source's head and the lag between them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProjectorStats {
    /// The source's name.
    pub source: String,
    /// Events committed since start, dead letters included.
    pub events: u64,
    /// Events committed as dead letters since start.
    pub dead_letters: u64,
    /// Events skipped because the store or the projector had passed their position.
    pub redeliveries: u64,
    /// Writes of committed events refused as not newer than what is stored
    /// ([`Outcome::Stale`](crate::Outcome::Stale), or
    /// [`Outcome::Tombstoned`](crate::Outcome::Tombstoned) in a view with sources):
    /// late and repeated deliveries that versions made harmless.
    pub stale: u64,
    /// Batches submitted and not yet answered.
    pub in_flight: usize,
    /// Per partition, in partition order.
    pub partitions: Vec<PartitionStats>,
    /// Time since start.
    pub elapsed: Duration,
}

impl ProjectorStats {
    /// Events committed per second since start.
    #[expect(clippy::cast_precision_loss, reason = "a rate needs no 53 bits of count")]
    pub fn events_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.events as f64 / secs } else { 0.0 }
    }

    /// The sum of the partitions' lags (those whose head the source reports).
    pub fn lag(&self) -> u64 {
        self.partitions.iter().filter_map(|p| p.lag).fold(0, u64::saturating_add)
    }
}

/// One partition's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionStats {
    /// The partition.
    pub partition: u32,
    /// The position of the last event committed (`None`: none yet).
    pub applied: Option<u64>,
    /// The position of the source's last event, when the source reports it.
    pub head: Option<u64>,
    /// Positions between the two: `head - applied`, or `head + 1` before any event was
    /// applied; `None` when the head is unknown. For a PostgreSQL source, bytes of WAL.
    pub lag: Option<u64>,
    /// How far behind in time, when the source knows
    /// ([`Source::time_behind`](crate::Source::time_behind)): for a PostgreSQL source,
    /// from the oldest commit received and not applied to the newest commit received.
    pub behind: Option<Duration>,
}

impl PartitionStats {
    pub(crate) fn new(
        partition: u32,
        applied: Option<u64>,
        head: Option<u64>,
        behind: Option<Duration>,
    ) -> Self {
        let lag = head.map(|h| match applied {
            Some(a) => h.saturating_sub(a),
            None => h.saturating_add(1),
        });
        PartitionStats { partition, applied, head, lag, behind }
    }
}
