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
//!    An async sender ([`SendFuture`]) registers its waker in `room_waiters` only while
//!    the queue is full and the inbox open, in the critical section that saw it so; a
//!    pop takes out the first registered waker (besides notifying `room`), a close or a
//!    stop takes out all of them.
//! 4. No request is dropped while the lock is held: refused requests go back to their
//!    sender, stopped ones to the caller of `stop`. Dropping one runs user code (a
//!    closure that owns the last store handle closes the store), which takes this lock.
//!    Nor is a waker woken or dropped under it, for the same reason: wakers taken out
//!    are woken, and replaced ones dropped, once it is released.
//! 5. A wake-up of an async sender is not lost with it. A sender dropped before it was
//!    queued takes its waker out; if its waker had already been taken out by a pop (it
//!    was woken for a free slot it will never use) and there is still room, it wakes the
//!    next async sender in its place. A woken sender that finds the slot taken (by a
//!    thread, a `try_send`, or a sender polled for another reason) registers again at
//!    its old position, first in line, and the next pop wakes it.
//!
//! Cancel-safety of [`SendFuture`]: dropped before its request was queued, the request
//! is dropped with it (outside the lock) and never queued; once queued it belongs to
//! the receiver, and dropping the future changes nothing.
//!
//! The same file is compiled a second time against a model checker's primitives
//! (`engine::model_check`), where every interleaving of senders (blocking, `try_send`,
//! async, cancelled), closers and the receiver is explored.

use super::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use crate::base::writer_stats::QueueStats;
use crate::mem::notify::{Place, Removed, Waiters, Wakeups};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
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
    /// Async senders waiting for room, in arrival order (every target is 0).
    room_waiters: Waiters,
}

/// What one attempt of an async send did.
pub(crate) enum Attempt<R> {
    /// The request is queued.
    Sent,
    /// The queue is full: the waker is registered, and the request comes back.
    Waiting(R),
    /// The inbox is closed or poisoned.
    Refused(Refused<R>),
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
                room_waiters: Waiters::new(),
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

    /// One attempt of an async send: queues `request` if there is room, or registers
    /// `cx`'s waker at `place` (kept by the caller across attempts) and gives the
    /// request back.
    pub(crate) fn poll_send(&self, request: R, place: &mut Place, cx: &Context<'_>) -> Attempt<R> {
        let mut state = self.lock();
        if let Some(why) = Self::gate(&state) {
            let left = state.room_waiters.remove(place);
            drop(state);
            drop(left);
            return Attempt::Refused(Refused { request, why });
        }
        if state.queue.len() < state.capacity {
            let left = state.room_waiters.remove(place);
            self.push(state, request);
            drop(left);
            return Attempt::Sent;
        }
        let replaced = state.room_waiters.register(place, 0, cx.waker());
        drop(state);
        drop(replaced);
        Attempt::Waiting(request)
    }

    /// An async sender at `place` gives up before its request was queued: its waker is
    /// taken out, or, if a pop had already taken it out to wake it and there is still
    /// room, the next async sender is woken in its place (invariant 5).
    pub(crate) fn cancel(&self, place: &Place) {
        if !place.is_registered() {
            return;
        }
        let mut state = self.lock();
        let passed_on = match state.room_waiters.remove(place) {
            Removed::Woken
                if Self::gate(&state).is_none() && state.queue.len() < state.capacity =>
            {
                state.room_waiters.take_first()
            }
            Removed::Never | Removed::Woken => Wakeups::default(),
            Removed::Waiting(waker) => {
                drop(state);
                drop(waker);
                return;
            }
        };
        drop(state);
        passed_on.wake();
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

    fn made_room(&self, mut state: MutexGuard<'_, State<R>>) {
        let wake = state.waiting_senders > 0;
        let woken = state.room_waiters.take_first();
        drop(state);
        if wake {
            self.room.notify_one();
        }
        woken.wake();
    }

    /// Closes the inbox to new requests. What is queued stays queued for the receiver;
    /// senders waiting for room are refused.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        let everyone = state.room_waiters.take_all();
        drop(state);
        self.room.notify_all();
        self.arrived.notify_all();
        everyone.wake();
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
        let everyone = state.room_waiters.take_all();
        drop(state);
        self.room.notify_all();
        self.arrived.notify_all();
        everyone.wake();
        left
    }

    /// Whether the inbox is closed, and the reason the writer failed, if it did.
    pub(crate) fn status(&self) -> (bool, Option<String>) {
        let state = self.lock();
        (state.closed, state.poisoned.clone())
    }

    /// The queue now: requests queued, capacity, and senders waiting for room (blocked
    /// threads, async senders). One short critical section.
    pub(crate) fn queue_stats(&self) -> QueueStats {
        let state = self.lock();
        QueueStats {
            queued: state.queue.len(),
            capacity: state.capacity,
            blocked_submitters: state.waiting_senders,
            waiting_async_submitters: state.room_waiters.len(),
        }
    }

    /// How many senders wait for room in a full queue.
    #[cfg(feature = "__testing")]
    pub(crate) fn waiting_senders(&self) -> usize {
        self.lock().waiting_senders
    }

    /// How many async senders wait for room in a full queue.
    #[cfg(any(test, feature = "__testing"))]
    pub(crate) fn waiting_async_senders(&self) -> usize {
        self.lock().room_waiters.len()
    }

    /// How many requests are queued.
    #[cfg(feature = "__testing")]
    pub(crate) fn len(&self) -> usize {
        self.lock().queue.len()
    }
}

/// Sends a request without blocking a thread: resolves once the request is queued, or
/// with the refusal (and the request) when the inbox is closed or poisoned. Dropped
/// before that, the request is dropped unqueued (invariant 5 keeps the other senders'
/// wake-ups).
pub(crate) struct SendFuture<R> {
    inbox: std::sync::Arc<Inbox<R>>,
    /// Until it is queued or refused.
    request: Option<R>,
    place: Place,
}

// Nothing in it is ever pinned: polling moves the request in and out by value.
impl<R> Unpin for SendFuture<R> {}

impl<R> SendFuture<R> {
    pub(crate) fn new(inbox: std::sync::Arc<Inbox<R>>, request: R) -> Self {
        SendFuture { inbox, request: Some(request), place: Place::default() }
    }
}

impl<R> Future for SendFuture<R> {
    type Output = Result<(), Refused<R>>;

    /// Polled again after it completed, it stays pending.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(request) = this.request.take() else {
            return Poll::Pending;
        };
        match this.inbox.poll_send(request, &mut this.place, cx) {
            Attempt::Sent => Poll::Ready(Ok(())),
            Attempt::Refused(refused) => Poll::Ready(Err(refused)),
            Attempt::Waiting(request) => {
                this.request = Some(request);
                Poll::Pending
            }
        }
    }
}

impl<R> Drop for SendFuture<R> {
    fn drop(&mut self) {
        if self.request.is_some() {
            self.inbox.cancel(&self.place);
        }
        // The request, if any, is dropped after this, with no lock held.
    }
}
