//! The projector: runs a handler per event of a [`Source`], each event its own batch
//! carrying its position, with many in flight.

use crate::api::batch::Batch;
use crate::api::store::Store;
use crate::base::error::{Error, ErrorKind, Result};
use crate::base::panic::panic_message;
use crate::base::version::{Lsn, Outcome};
use crate::engine::ticket::Ticket;
use crate::project::dead_letter::{DeadLetterKey, LetterBox, OnFailure};
use crate::project::source::{BoxError, Event, Source};
use crate::project::stats::{PartitionStats, ProjectorStats};
use crate::schema::names::check_source_name;
use std::collections::{BTreeMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Feeds views from a [`Source`]: for each event, runs a handler that adds the event's
/// writes to a [`Batch`], and submits that batch with the event's position
/// ([`Batch::set_position_after`]). The batches of many events are in flight at once
/// and share group commits, so one batch per event costs nothing.
///
/// **Exactly once.** An event's writes and its position commit in one transaction;
/// at start the projector resumes the source from the store's positions; within a
/// partition each batch applies only right after the one before it. So after a crash
/// at any point, every event's effect is in the store exactly once: `update` closures
/// that count are right. The source is acknowledged only with durable positions.
///
/// **Failures.** An event whose handler fails or panics, or whose batch fails on its
/// own, does not fail the events batched with it: by [`OnFailure`] it stops the
/// projector with [`Error::EventFailed`], or becomes a dead letter (committed with its
/// position, in order) and the projector goes on. A store or source failure stops the
/// projector; restarting it resumes exactly.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use viewstore::{Batch, MemoryLog, Projector, Store, ViewDef};
///
/// const FOLLOWERS: ViewDef<u64, u64> = ViewDef::new("followers");
///
/// # let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path().join("s.redb"))?;
/// let followers = store.view(&FOLLOWERS)?;
///
/// // "user u gained a follower" events, in 2 partitions.
/// let log = MemoryLog::new(2);
/// for (partition, user) in [(0, 7), (1, 8), (0, 7)] {
///     log.append(partition, user)?;
/// }
/// let counts = followers.clone();
/// let running = Projector::new(&store, log.source("follows"), move |event, batch: &mut Batch| {
///     batch.update_next(&counts, &event.payload, |n| Some(n.copied().unwrap_or(0) + 1))?;
///     Ok(())
/// })
/// .spawn()?;
/// assert!(running.wait_until(Duration::from_secs(10), |stats| stats.events == 3));
/// let stats = running.stop()?;
/// assert_eq!(stats.lag(), 0);
/// assert_eq!(followers.get(&7).as_deref(), Some(&2));
/// assert_eq!(store.positions("follows")?, [(0, 1), (1, 0)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a Projector does nothing until it is started or spawned"]
pub struct Projector<S, H> {
    store: Store,
    source: S,
    handler: H,
    on_failure: OnFailure,
    max_in_flight: usize,
    max_poll: usize,
    poll_timeout: Duration,
}

impl<S, H> Projector<S, H>
where
    S: Source,
    H: FnMut(&Event<S::Payload>, &mut Batch) -> std::result::Result<(), BoxError> + Send + 'static,
{
    /// A projector of `source` into `store`, running `handler` per event.
    pub fn new(store: &Store, source: S, handler: H) -> Self {
        Projector {
            store: store.clone(),
            source,
            handler,
            on_failure: OnFailure::Stop,
            max_in_flight: 16_384,
            max_poll: 4096,
            poll_timeout: Duration::from_millis(50),
        }
    }

    /// What to do with an event that fails. Default = [`OnFailure::Stop`].
    pub fn on_failure(mut self, policy: OnFailure) -> Self {
        self.on_failure = policy;
        self
    }

    /// How many events may be submitted and not yet committed: the most one group
    /// commit can take from this projector. Default = 16,384.
    pub fn with_max_in_flight(mut self, events: usize) -> Self {
        self.max_in_flight = events.max(1);
        self
    }

    /// How many events one poll of the source asks for. Default = 4096.
    pub fn with_max_poll(mut self, events: usize) -> Self {
        self.max_poll = events.max(1);
        self
    }

    /// How long a poll waits for events when none is in flight; it also bounds how
    /// long a spawned projector takes to notice [`RunningProjector::stop`](crate::RunningProjector::stop).
    /// Default = 50 ms.
    pub fn with_poll_timeout(mut self, timeout: Duration) -> Self {
        self.poll_timeout = timeout;
        self
    }

    /// Resumes the source from the store's positions and returns the projection, to
    /// be driven by the caller with [`Projection::step`] (deterministic tests,
    /// single-threaded services). [`spawn`](Projector::spawn) drives it on a thread.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPosition`] for an invalid source name, [`Error::ForeignView`]
    /// for a dead-letter view of another store, [`Error::SourceFailed`] when the
    /// source cannot resume.
    pub fn start(mut self) -> Result<Projection<S, H>> {
        let name: Arc<str> = Arc::from(self.source.name());
        check_source_name(&name)?;
        let letters = match &self.on_failure {
            OnFailure::Stop => None,
            OnFailure::DeadLetter(view) => {
                if view.store.id() != self.store.id() {
                    return Err(Error::ForeignView { view: view.name().to_owned() });
                }
                Some(LetterBox::of(view)?)
            }
        };
        let stored = self.store.positions(&name)?;
        self.source.resume(&stored).map_err(|e| source_failed(&name, "resuming", &e))?;
        let partitions = stored
            .iter()
            .map(|&(p, at)| (p, Partition { submitted: Some(at), applied: Some(at) }))
            .collect();
        Ok(Projection {
            name,
            store: self.store,
            source: self.source,
            handler: self.handler,
            letters,
            max_in_flight: self.max_in_flight,
            max_poll: self.max_poll,
            poll_timeout: self.poll_timeout,
            partitions,
            in_flight: VecDeque::new(),
            unacknowledged: VecDeque::new(),
            failure: None,
            events: 0,
            dead_letters: 0,
            redeliveries: 0,
            stale: 0,
            started: Instant::now(),
        })
    }
}

/// A partition as the projector follows it.
#[derive(Debug, Default, Clone, Copy)]
struct Partition {
    /// The position of the last event submitted.
    submitted: Option<u64>,
    /// The position of the last event committed (applied, dead-lettered or skipped).
    applied: Option<u64>,
}

/// An event's batch, submitted and not yet answered.
struct InFlight {
    partition: u32,
    position: u64,
    /// The batch is the event's dead letter (its handler failed).
    letter: bool,
    ticket: Ticket,
}

/// An event's batch, built and not yet submitted.
struct Prepared {
    partition: u32,
    position: u64,
    letter: bool,
    batch: Batch,
}

/// A started projector, driven step by step by its owner (or by
/// [`RunningProjector`](crate::RunningProjector)). Made by [`Projector::start`].
pub struct Projection<S, H> {
    name: Arc<str>,
    store: Store,
    source: S,
    handler: H,
    letters: Option<LetterBox>,
    max_in_flight: usize,
    max_poll: usize,
    poll_timeout: Duration,
    partitions: BTreeMap<u32, Partition>,
    in_flight: VecDeque<InFlight>,
    /// Committed events not yet acknowledged to the source: LSN, partition, position.
    unacknowledged: VecDeque<(Lsn, u32, u64)>,
    /// Why the projection stopped, once it has.
    failure: Option<Error>,
    events: u64,
    dead_letters: u64,
    redeliveries: u64,
    stale: u64,
    started: Instant,
}

impl<S, H> std::fmt::Debug for Projection<S, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projection")
            .field("source", &self.name)
            .field("in_flight", &self.in_flight.len())
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

impl<S, H> Projection<S, H>
where
    S: Source,
    H: FnMut(&Event<S::Payload>, &mut Batch) -> std::result::Result<(), BoxError> + Send + 'static,
{
    /// One round: polls the source for as many events as there is room in flight
    /// (waiting up to the poll timeout when nothing is in flight, else waiting for the
    /// oldest batch when nothing new came), submits one batch per event, takes the
    /// answers that have come, and acknowledges durable positions to the source.
    /// Returns the number of events polled.
    ///
    /// # Errors
    ///
    /// Why the projection stopped (see [`OnFailure`]); it first waits for the batches
    /// in flight. Every later step returns the same error.
    pub fn step(&mut self) -> Result<usize> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        let room = self.max_in_flight - self.in_flight.len();
        let mut polled = 0;
        if room == 0 {
            self.complete_oldest();
        } else {
            let timeout =
                if self.in_flight.is_empty() { self.poll_timeout } else { Duration::ZERO };
            let events = match self.source.poll(room.min(self.max_poll), timeout) {
                Ok(events) => events,
                Err(e) => return self.stop_with(source_failed(&self.name, "polling", &e)),
            };
            polled = events.len();
            if polled == 0 && !self.in_flight.is_empty() {
                self.complete_oldest();
            }
            let mut prepared = Vec::with_capacity(events.len());
            for event in &events {
                if self.failure.is_some() {
                    break;
                }
                prepared.extend(self.prepare(event));
            }
            self.submit(prepared);
        }
        while self.in_flight.front().is_some_and(|f| f.ticket.is_ready()) {
            self.complete_oldest();
        }
        self.acknowledge_durable();
        match self.failure.take() {
            Some(failure) => self.stop_with(failure),
            None => Ok(polled),
        }
    }

    /// Waits for every batch in flight, acknowledges what is durable, and returns the
    /// final statistics.
    ///
    /// # Errors
    ///
    /// Why the projection stopped, if it did.
    pub fn finish(mut self) -> Result<ProjectorStats> {
        while !self.in_flight.is_empty() {
            self.complete_oldest();
        }
        self.acknowledge_durable();
        match self.failure {
            Some(failure) => Err(failure),
            None => Ok(self.stats()),
        }
    }

    /// The store the projection writes to.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The projection's figures now.
    pub fn stats(&self) -> ProjectorStats {
        let heads: BTreeMap<u32, u64> = self.source.heads().into_iter().collect();
        let mut partitions: BTreeMap<u32, PartitionStats> = BTreeMap::new();
        for (&partition, p) in &self.partitions {
            let behind = self.source.time_behind(partition, p.applied);
            partitions.insert(partition, PartitionStats::new(partition, p.applied, None, behind));
        }
        for (&partition, &head) in &heads {
            let applied = self.partitions.get(&partition).and_then(|p| p.applied);
            let behind = self.source.time_behind(partition, applied);
            let stats = PartitionStats::new(partition, applied, Some(head), behind);
            partitions.insert(partition, stats);
        }
        ProjectorStats {
            source: self.name.to_string(),
            events: self.events,
            dead_letters: self.dead_letters,
            redeliveries: self.redeliveries,
            stale: self.stale,
            in_flight: self.in_flight.len(),
            partitions: partitions.into_values().collect(),
            elapsed: self.started.elapsed(),
        }
    }

    /// Waits for what is in flight, then ends the projection with `failure`.
    fn stop_with(&mut self, failure: Error) -> Result<usize> {
        self.failure = Some(failure);
        while !self.in_flight.is_empty() {
            self.complete_oldest();
        }
        self.acknowledge_durable();
        Err(self.failure.clone().unwrap_or(Error::Closed))
    }

    /// Runs the handler on `event` and builds its batch, chained to the partition's
    /// last one; `None` for an event submitted already, or on a failure to stop on
    /// (recorded).
    fn prepare(&mut self, event: &Event<S::Payload>) -> Option<Prepared> {
        let (partition, position) = (event.partition, event.position);
        let follows = self.partitions.get(&partition).and_then(|p| p.submitted);
        if follows.is_some_and(|s| position <= s) {
            // Delivered again by the source: its batch was submitted already.
            self.redeliveries += 1;
            return None;
        }
        let mut batch = Batch::new();
        let run = &mut self.handler;
        let handled = match catch_unwind(AssertUnwindSafe(|| run(event, &mut batch))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("the handler failed: {e}")),
            Err(panic) => Err(format!("the handler panicked: {}", panic_message(panic.as_ref()))),
        };
        let key = || -> DeadLetterKey { (self.name.to_string(), partition, position) };
        let letter = handled.is_err();
        let built = match (handled, &self.letters) {
            (Ok(()), letters) => {
                match batch.chain_position(&self.name, partition, position, follows) {
                    Ok(()) => {
                        if let Some(letters) = letters {
                            batch.set_fallback(letters.fallback(key()));
                        }
                        Ok(batch)
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            (Err(reason), Some(letters)) => self.letter_batch(letters, &key(), reason, follows),
            (Err(reason), None) => Err(reason),
        };
        match built {
            Ok(batch) => {
                self.partitions.entry(partition).or_default().submitted = Some(position);
                Some(Prepared { partition, position, letter, batch })
            }
            Err(reason) => {
                self.failure = Some(self.event_failed(partition, position, reason));
                None
            }
        }
    }

    /// Submits prepared batches, all at once, and keeps their tickets in flight.
    fn submit(&mut self, prepared: Vec<Prepared>) {
        let mut events = Vec::with_capacity(prepared.len());
        let mut batches = Vec::with_capacity(prepared.len());
        for Prepared { partition, position, letter, batch } in prepared {
            events.push((partition, position, letter));
            batches.push(batch);
        }
        let submitted = self.store.submit_many(batches);
        for ((partition, position, letter), result) in events.into_iter().zip(submitted) {
            match result {
                Ok(ticket) => {
                    self.in_flight.push_back(InFlight { partition, position, letter, ticket });
                }
                // A batch the store refuses as such (another store's view): the event's.
                Err(e) if e.kind() == ErrorKind::Input => {
                    let failed = self.event_failed(partition, position, e.to_string());
                    self.failure.get_or_insert(failed);
                }
                Err(e) => {
                    self.failure.get_or_insert(e);
                }
            }
        }
    }

    /// A batch holding only the dead letter of an event whose handler failed.
    fn letter_batch(
        &self,
        letters: &LetterBox,
        key: &DeadLetterKey,
        reason: String,
        follows: Option<u64>,
    ) -> std::result::Result<Batch, String> {
        let mut batch = Batch::new();
        let op = letters.op(key, reason).map_err(|e| e.to_string())?;
        batch.store = Some(self.store.id());
        batch.ops.push(op);
        batch.chain_position(&self.name, key.1, key.2, follows).map_err(|e| e.to_string())?;
        Ok(batch)
    }

    fn event_failed(&self, partition: u32, position: u64, reason: String) -> Error {
        Error::EventFailed { source: self.name.to_string(), partition, position, reason }
    }

    /// Waits for the oldest batch in flight and takes its answer.
    fn complete_oldest(&mut self) {
        let Some(InFlight { partition, position, letter, ticket }) = self.in_flight.pop_front()
        else {
            return;
        };
        match ticket.wait() {
            Ok(receipt) => {
                if receipt.redelivery {
                    self.redeliveries += 1;
                } else {
                    self.events += 1;
                    self.dead_letters += u64::from(receipt.fell_back || letter);
                    let refused = receipt.outcomes.iter().filter(|o| {
                        matches!(o, Outcome::Stale { .. } | Outcome::Tombstoned { .. })
                    });
                    self.stale += refused.count() as u64;
                }
                let p = self.partitions.entry(partition).or_default();
                p.applied = Some(p.applied.map_or(position, |a| a.max(position)));
                self.unacknowledged.push_back((receipt.lsn, partition, position));
            }
            // A batch after a failed one of its partition: the failure says it all.
            Err(Error::PositionGap { .. }) if self.failure.is_some() => {}
            Err(e) if e.kind() == ErrorKind::Batch && self.letters.is_none() => {
                let failed = self.event_failed(partition, position, e.to_string());
                self.failure.get_or_insert(failed);
            }
            Err(e) => {
                self.failure.get_or_insert(e);
            }
        }
    }

    /// Tells the source the positions whose groups are durable.
    fn acknowledge_durable(&mut self) {
        let durable = self.store.durable_lsn();
        let mut reached: BTreeMap<u32, u64> = BTreeMap::new();
        while let Some(&(lsn, partition, position)) = self.unacknowledged.front() {
            if lsn > durable {
                break;
            }
            self.unacknowledged.pop_front();
            reached.insert(partition, position);
        }
        for (partition, position) in reached {
            if let Err(e) = self.source.acknowledge(partition, position) {
                let failed = source_failed(&self.name, "acknowledging", &e);
                self.failure.get_or_insert(failed);
                return;
            }
        }
    }
}

fn source_failed(name: &str, during: &str, e: &BoxError) -> Error {
    Error::SourceFailed { source: name.to_owned(), reason: format!("{during}: {e}") }
}
