//! What a projector reads: a [`Source`] of partitioned, positioned [`Event`]s.

use std::time::Duration;

/// The error a [`Source`] or a handler returns: any error, sent across threads.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One event of a source: where it is (partition and position) and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<T> {
    /// The partition it was read from.
    pub partition: u32,
    /// Its position in the partition (a log offset, a WAL LSN, a sequence number):
    /// strictly increasing within the partition.
    pub position: u64,
    /// The event itself.
    pub payload: T,
}

/// A partitioned log a [`Projector`](crate::Projector) reads: Kafka topics, a database's
/// logical replication, a [`MemoryLog`](crate::MemoryLog).
///
/// The contract, which the projector's exactly-once guarantee rests on:
///
/// - Within a partition, [`poll`](Source::poll) returns events in strictly increasing
///   position order. A source may deliver an event again (at-least-once): the
///   projector skips positions it has passed.
/// - After [`resume`](Source::resume), the source delivers each listed partition from
///   the first event after the given position, and every other partition from its
///   start.
/// - [`acknowledge`](Source::acknowledge) is called only with positions whose effects
///   are durable in the store; the source may then forget everything up to them. The
///   store's own positions, not the source's acknowledgements, decide where a
///   restarted projector resumes.
pub trait Source: Send + 'static {
    /// What an event carries.
    type Payload: Send + 'static;

    /// The name positions are stored under in the store (1 to 200 bytes, no control
    /// characters).
    fn name(&self) -> &str;

    /// Prepares to deliver each partition in `positions` from just after its
    /// position, and the other partitions from their start. Called once, before the
    /// first poll, with the positions the store has reached.
    ///
    /// # Errors
    ///
    /// The source cannot seek (it has forgotten a position the store still needs).
    fn resume(&mut self, positions: &[(u32, u64)]) -> Result<(), BoxError>;

    /// Up to `max` events, waiting at most `timeout` for the first one; an empty list
    /// when none came in time.
    ///
    /// # Errors
    ///
    /// The source failed; the projector stops with [`Error::SourceFailed`](crate::Error::SourceFailed).
    fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<Event<Self::Payload>>, BoxError>;

    /// The effects of `partition` up to `position` are durable in the store.
    ///
    /// # Errors
    ///
    /// The source failed to record it.
    fn acknowledge(&mut self, partition: u32, position: u64) -> Result<(), BoxError>;

    /// The position of the last event of each partition the source knows of, to report
    /// lag. Default: none known.
    fn heads(&self) -> Vec<(u32, u64)> {
        Vec::new()
    }

    /// How far, in the source's own time, `partition` is behind when the events up to
    /// `applied` are applied: for a database, the time from the oldest commit not yet
    /// applied to the newest commit received; zero when everything received is applied.
    /// Default: unknown.
    fn time_behind(&self, partition: u32, applied: Option<u64>) -> Option<Duration> {
        let _ = (partition, applied);
        None
    }
}
