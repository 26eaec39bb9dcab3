//! The writer's inbox: a bounded queue of requests and the gate that closes it, under one
//! lock, so that whether a request got in and whether the store is closed can never
//! disagree.
//!
//! Invariants, all under `state`'s lock:
//! 1. Once `closed` is set it stays set, and no request is pushed after it: a sender
//!    checks `closed` and pushes in one critical section.
//! 2. Once `poisoned` is set, the queue is empty and stays empty: [`Inbox::stop`] takes
//!    every queued request out and every later push is refused.
//! 3. Every wait has a waker: a sender waits on `room` only while the queue is full and
//!    the inbox open, and a pop or a close wakes it; the receiver waits on `arrived` only
//!    while the queue is empty and the inbox open, and a push or a close wakes it.
//! 4. No request is dropped while the lock is held: refused requests go back to their
//!    sender, stopped ones to the caller of `stop`. Dropping one runs user code (a
//!    closure that owns the last store handle closes the store), which takes this lock.
//!
//! The same file is compiled a second time against a model checker's primitives
//! (`writer::model_check`), where every interleaving of senders, closers and the
//! receiver is explored.

use super::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::collections::VecDeque;
use std::time::Instant;

/// Why a request was not queued; the request comes back with it.
pub(crate) enum Refusal {
    /// The queue is full (only `try_send` refuses for this).
    Full,
    /// The inbox was closed.
    Closed,
    /// The writer stopped on a failure; the reason.
    Poisoned(String),
}

/// A refused request and why it was refused.
pub(crate) struct Refused<R> {
    pub(crate) request: R,
    pub(crate) why: Refusal,
}

/// What the receiver got.
pub(crate) enum Received<R> {
    Request(R),
    /// The deadline passed with nothing queued.
    Timeout,
    /// The inbox is closed and empty: nothing more will arrive.
    Closed,
}

struct State<R> {
    queue: VecDeque<R>,
    capacity: usize,
    closed: bool,
    poisoned: Option<String>,
    /// Senders waiting in `send` for room: `room` is notified only when there are some.
    waiting_senders: usize,
    /// Whether the receiver waits for a request: `arrived` is notified only then.
    receiver_waiting: bool,
}

/// A bounded multi-producer, single-consumer queue with a gate.
pub(crate) struct Inbox<R> {
    state: Mutex<State<R>>,
    room: Condvar,
    arrived: Condvar,
}

impl<R> Inbox<R> {
    /// An open inbox that holds up to `capacity` requests (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Inbox {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                capacity: capacity.max(1),
                closed: false,
                poisoned: None,
                waiting_senders: 0,
                receiver_waiting: false,
            }),
            room: Condvar::new(),
            arrived: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<R>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The refusal for a closed or poisoned inbox, if it is one.
    fn gate(state: &State<R>) -> Option<Refusal> {
        if let Some(reason) = &state.poisoned {
            return Some(Refusal::Poisoned(reason.clone()));
        }
        state.closed.then_some(Refusal::Closed)
    }

    fn push(&self, mut state: MutexGuard<'_, State<R>>, request: R) {
        state.queue.push_back(request);
        let wake = state.receiver_waiting;
        drop(state);
        if wake {
            self.arrived.notify_one();
        }
    }

    /// Queues `request`, waiting for room while the queue is full.
    pub(crate) fn send(&self, request: R) -> Result<(), Refused<R>> {
        let mut state = self.lock();
        loop {
            if let Some(why) = Self::gate(&state) {
                drop(state);
                return Err(Refused { request, why });
            }
            if state.queue.len() < state.capacity {
                self.push(state, request);
                return Ok(());
            }
            state.waiting_senders += 1;
            state = self.room.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.waiting_senders -= 1;
        }
    }

    /// Queues `requests` in order, as many at a time as there is room, waiting for room
    /// while the queue is full: one lock and at most one wake-up of the receiver per
    /// round. On a refusal the requests not queued are left in `requests`, for the
    /// caller to drop outside the lock (invariant 4).
    pub(crate) fn send_all(&self, requests: &mut VecDeque<R>) -> Result<(), Refusal> {
        let mut state = self.lock();
        while !requests.is_empty() {
            if let Some(why) = Self::gate(&state) {
                return Err(why);
            }
            let room = state.capacity.saturating_sub(state.queue.len());
            if room > 0 {
                let n = room.min(requests.len());
                state.queue.extend(requests.drain(..n));
                if state.receiver_waiting {
                    drop(state);
                    self.arrived.notify_one();
                    state = self.lock();
                }
                continue;
            }
            state.waiting_senders += 1;
            state = self.room.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.waiting_senders -= 1;
        }
        Ok(())
    }

    /// Queues `request` if there is room now.
    pub(crate) fn try_send(&self, request: R) -> Result<(), Refused<R>> {
        let state = self.lock();
        if let Some(why) = Self::gate(&state) {
            drop(state);
            return Err(Refused { request, why });
        }
        if state.queue.len() >= state.capacity {
            drop(state);
            return Err(Refused { request, why: Refusal::Full });
        }
        self.push(state, request);
        Ok(())
    }

    /// Takes the next request, waiting for one until `deadline` (forever with `None`).
    /// Queued requests are still handed out after a close; `Closed` comes once the
    /// queue is empty.
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Received<R> {
        let mut state = self.lock();
        loop {
            if let Some(request) = state.queue.pop_front() {
                self.made_room(state);
                return Received::Request(request);
            }
            if state.closed || state.poisoned.is_some() {
                return Received::Closed;
            }
            state.receiver_waiting = true;
            state = match deadline {
                None => self.arrived.wait(state).unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        state.receiver_waiting = false;
                        return Received::Timeout;
                    }
                    self.arrived.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0
                }
            };
            state.receiver_waiting = false;
        }
    }

    /// Takes the next request if one is queued.
    pub(crate) fn try_recv(&self) -> Option<R> {
        let mut state = self.lock();
        let request = state.queue.pop_front()?;
        self.made_room(state);
        Some(request)
    }

    fn made_room(&self, state: MutexGuard<'_, State<R>>) {
        let wake = state.waiting_senders > 0;
        drop(state);
        if wake {
            self.room.notify_one();
        }
    }

    /// Closes the inbox to new requests. What is queued stays queued for the receiver;
    /// senders waiting for room are refused.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        drop(state);
        self.room.notify_all();
        self.arrived.notify_all();
    }

    /// The receiver stops: closes the inbox (poisoned when there is a `reason`) and
    /// returns whatever was still queued, for the caller to answer outside the lock.
    pub(crate) fn stop(&self, reason: Option<String>) -> VecDeque<R> {
        let mut state = self.lock();
        state.closed = true;
        if state.poisoned.is_none() {
            state.poisoned = reason;
        }
        let left = std::mem::take(&mut state.queue);
        drop(state);
        self.room.notify_all();
        self.arrived.notify_all();
        left
    }

    /// Whether the inbox is closed, and the reason the writer failed, if it did.
    pub(crate) fn status(&self) -> (bool, Option<String>) {
        let state = self.lock();
        (state.closed, state.poisoned.clone())
    }

    /// How many senders wait for room in a full queue.
    #[cfg(feature = "__testing")]
    pub(crate) fn waiting_senders(&self) -> usize {
        self.lock().waiting_senders
    }

    /// How many requests are queued.
    #[cfg(feature = "__testing")]
    pub(crate) fn len(&self) -> usize {
        self.lock().queue.len()
    }
}
