//! A partitioned log in memory: a [`Source`] for tests, demos and in-process pipelines.

use super::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use crate::base::error::{Error, Result};
use crate::project::source::{BoxError, Event, Source};
use std::time::{Duration, Instant};

/// A partitioned, append-only log held in memory, shared by its clones. Each
/// partition's positions are 0, 1, 2, ... in append order. Read it through
/// [`MemoryLog::source`]; several sources may read one log, each with its own cursors.
///
/// It keeps every event (acknowledgements are recorded, nothing is dropped), so a
/// reader can start again from any position.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use viewstore::{MemoryLog, Source};
///
/// let log = MemoryLog::new(2);
/// assert_eq!(log.append(0, "a")?, 0);
/// assert_eq!(log.append(1, "b")?, 0);
/// assert_eq!(log.append(0, "c")?, 1);
///
/// let mut source = log.source("letters");
/// source.resume(&[(0, 0)])?; // partition 0 is done up to position 0
/// let events = source.poll(10, Duration::ZERO)?;
/// let got: Vec<_> = events.iter().map(|e| (e.partition, e.position, e.payload)).collect();
/// assert_eq!(got, [(0, 1, "c"), (1, 0, "b")]);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
pub struct MemoryLog<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for MemoryLog<T> {
    fn clone(&self) -> Self {
        MemoryLog { shared: Arc::clone(&self.shared) }
    }
}

impl<T> std::fmt::Debug for MemoryLog<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        let lens: Vec<usize> = state.partitions.iter().map(Vec::len).collect();
        f.debug_struct("MemoryLog").field("partitions", &lens).finish()
    }
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Signalled on every append.
    appended: Condvar,
}

struct State<T> {
    partitions: Vec<Vec<T>>,
    /// Readers waiting in `poll`: `appended` is notified only when there are some.
    waiting: usize,
    /// Per partition, the highest position acknowledged by a reader.
    acknowledged: Vec<Option<u64>>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding the lock; a poisoned lock still holds a log.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: Clone + Send + 'static> MemoryLog<T> {
    /// An empty log of `partitions` partitions.
    pub fn new(partitions: u32) -> Self {
        let state = State {
            partitions: (0..partitions).map(|_| Vec::new()).collect(),
            acknowledged: vec![None; partitions as usize],
            waiting: 0,
        };
        MemoryLog {
            shared: Arc::new(Shared { state: Mutex::new(state), appended: Condvar::new() }),
        }
    }

    /// The number of partitions.
    pub fn partitions(&self) -> u32 {
        self.shared.lock().partitions.len() as u32
    }

    /// Appends `payload` to `partition`; returns its position.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPosition`] for a partition the log does not have.
    pub fn append(&self, partition: u32, payload: T) -> Result<u64> {
        self.append_all(partition, [payload]).map(|positions| positions.start)
    }

    /// Appends `payloads` to `partition` at once, as a producer's batch: readers see
    /// all of them or none. Returns their positions.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPosition`] for a partition the log does not have; nothing is
    /// appended.
    pub fn append_all(
        &self,
        partition: u32,
        payloads: impl IntoIterator<Item = T>,
    ) -> Result<std::ops::Range<u64>> {
        // The caller's iterator runs before the lock: it may panic or read the log.
        let payloads: Vec<T> = payloads.into_iter().collect();
        let mut state = self.shared.lock();
        let count = state.partitions.len();
        let Some(events) = state.partitions.get_mut(partition as usize) else {
            return Err(no_partition(partition, count));
        };
        let start = events.len() as u64;
        events.extend(payloads);
        let end = events.len() as u64;
        let wake = state.waiting > 0;
        drop(state);
        if wake {
            self.shared.appended.notify_all();
        }
        Ok(start..end)
    }

    /// The number of events in `partition` (0 for a partition the log does not have).
    pub fn len(&self, partition: u32) -> u64 {
        self.shared.lock().partitions.get(partition as usize).map_or(0, |p| p.len() as u64)
    }

    /// Whether no partition holds an event.
    pub fn is_empty(&self) -> bool {
        self.shared.lock().partitions.iter().all(Vec::is_empty)
    }

    /// The highest position of `partition` a reader acknowledged.
    pub fn acknowledged(&self, partition: u32) -> Option<u64> {
        self.shared.lock().acknowledged.get(partition as usize).copied().flatten()
    }

    /// A reader of the log named `name` (the name its positions are stored under),
    /// starting at the beginning of every partition.
    pub fn source(&self, name: &str) -> MemorySource<T> {
        let partitions = self.partitions() as usize;
        MemorySource {
            name: name.to_owned(),
            log: self.clone(),
            next: vec![0; partitions],
            turn: 0,
        }
    }
}

fn no_partition(partition: u32, partitions: usize) -> Error {
    Error::InvalidPosition {
        source: "memory log".into(),
        reason: format!("partition {partition} does not exist (the log has {partitions})"),
    }
}

/// A reader of a [`MemoryLog`], made by [`MemoryLog::source`]; the [`Source`] a
/// projector reads.
pub struct MemorySource<T> {
    name: String,
    log: MemoryLog<T>,
    /// Per partition, the next position to deliver.
    next: Vec<u64>,
    /// The partition the next poll starts with, so that every partition gets its turn.
    turn: usize,
}

impl<T> std::fmt::Debug for MemorySource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySource")
            .field("name", &self.name)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl<T: Clone + Send + 'static> MemorySource<T> {
    /// Takes up to `max` events from the partitions, a fair share each in turn.
    fn take(&mut self, state: &State<T>, max: usize) -> Vec<Event<T>> {
        let mut out = Vec::new();
        let count = state.partitions.len();
        let mut idle = 0;
        while out.len() < max && idle < count {
            let partition = self.turn % count;
            self.turn = (self.turn + 1) % count;
            let events = &state.partitions[partition];
            let next = self.next[partition];
            let Some(payload) = events.get(next as usize) else {
                idle += 1;
                continue;
            };
            idle = 0;
            out.push(Event {
                partition: partition as u32,
                position: next,
                payload: payload.clone(),
            });
            self.next[partition] = next + 1;
        }
        out
    }
}

impl<T: Clone + Send + 'static> Source for MemorySource<T> {
    type Payload = T;

    fn name(&self) -> &str {
        &self.name
    }

    fn resume(&mut self, positions: &[(u32, u64)]) -> std::result::Result<(), BoxError> {
        self.next.iter_mut().for_each(|n| *n = 0);
        for &(partition, position) in positions {
            let Some(next) = self.next.get_mut(partition as usize) else {
                return Err(no_partition(partition, self.next.len()).into());
            };
            *next = position.saturating_add(1);
        }
        Ok(())
    }

    fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> std::result::Result<Vec<Event<T>>, BoxError> {
        // A timeout too long to add to the clock waits without a deadline.
        let deadline = Instant::now().checked_add(timeout);
        let shared = Arc::clone(&self.log.shared);
        let mut state = shared.lock();
        loop {
            let events = self.take(&state, max);
            if !events.is_empty() || max == 0 {
                return Ok(events);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(events);
            }
            state.waiting += 1;
            state = match deadline {
                None => shared.appended.wait(state).unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let waited = shared.appended.wait_timeout(state, deadline - now);
                    waited.unwrap_or_else(PoisonError::into_inner).0
                }
            };
            state.waiting -= 1;
        }
    }

    fn acknowledge(&mut self, partition: u32, position: u64) -> std::result::Result<(), BoxError> {
        let mut state = self.log.shared.lock();
        let count = state.acknowledged.len();
        let Some(acked) = state.acknowledged.get_mut(partition as usize) else {
            return Err(no_partition(partition, count).into());
        };
        *acked = Some(acked.map_or(position, |a| a.max(position)));
        Ok(())
    }

    fn heads(&self) -> Vec<(u32, u64)> {
        let state = self.log.shared.lock();
        let heads = state.partitions.iter().enumerate();
        heads.filter(|(_, e)| !e.is_empty()).map(|(p, e)| (p as u32, e.len() as u64 - 1)).collect()
    }
}
