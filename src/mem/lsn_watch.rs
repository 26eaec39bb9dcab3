//! The published LSN and everything that waits for it: threads blocked in `wait_for`
//! (a condition variable) and futures (a [`Waiters`] list), under one lock with the LSN.
//!
//! Invariants, all under `state`'s lock:
//! 1. `lsn` only grows, and once `ended` is set (the writer thread has stopped: no group
//!    will be published again) neither changes.
//! 2. Every wait has a waker. A blocked thread waits on `advanced` only while
//!    `lsn < target` and not `ended`, counted in `blocked`; a future registers in
//!    `waiters` only under the same condition, in the same critical section as the
//!    check. [`LsnWatch::advance`] takes out every waker whose target it reaches and
//!    notifies `advanced` when a thread is blocked; [`LsnWatch::end`] wakes everyone.
//!    A wait that starts after an advance sees its LSN, so no wake-up is lost between
//!    the check and the registration.
//! 3. No waker is woken or dropped under the lock (`notify`'s rule 2).
//! 4. A future dropped while registered takes its waker out ([`LsnWatch::cancel`]):
//!    abandoned waits do not pile up. Nothing is passed on: an advance wakes every
//!    waiter it reaches, so no waiter depends on another's wake-up.
//!
//! Like the inbox, this file is compiled a second time against a model checker's
//! primitives (`mem::model_check`), where publishers, blocked threads, awaiting and
//! cancelled futures and the writer's end run under thousands of schedules.

use super::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use crate::base::version::Lsn;
use crate::mem::notify::{Place, Removed, Waiters};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The writer stopped before the awaited LSN was published; the last LSN published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ended(pub(crate) Lsn);

struct State {
    lsn: Lsn,
    ended: bool,
    waiters: Waiters,
    /// Threads blocked on `advanced`: it is notified only when there are some.
    blocked: usize,
}

/// The published LSN, with blocking and async ways to wait for it.
pub(crate) struct LsnWatch {
    state: Mutex<State>,
    advanced: Condvar,
}

impl LsnWatch {
    /// A watch at `lsn`.
    pub(crate) fn new(lsn: Lsn) -> Self {
        LsnWatch {
            state: Mutex::new(State { lsn, ended: false, waiters: Waiters::new(), blocked: 0 }),
            advanced: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `lsn` is published and wakes whoever waited for it. An `lsn` below
    /// the current one (a view opened at the same LSN, say) changes nothing.
    pub(crate) fn advance(&self, lsn: Lsn) {
        let mut state = self.lock();
        if state.ended || lsn <= state.lsn {
            return;
        }
        state.lsn = lsn;
        let reached = state.waiters.take_reached(lsn.get());
        let blocked = state.blocked > 0;
        drop(state);
        if blocked {
            self.advanced.notify_all();
        }
        reached.wake();
    }

    /// No LSN will be published again (the writer thread stopped): every wait that has
    /// not reached its LSN ends with [`Ended`].
    pub(crate) fn end(&self) {
        let mut state = self.lock();
        state.ended = true;
        let everyone = state.waiters.take_all();
        drop(state);
        self.advanced.notify_all();
        everyone.wake();
    }

    /// Blocks until the LSN reaches `target`, the watch ends, or `timeout` passes
    /// (`None`: no time limit). Returns the LSN reached, [`Ended`], or `Ok(None)` on
    /// timeout.
    pub(crate) fn wait(
        &self,
        target: Lsn,
        timeout: Option<Duration>,
    ) -> Result<Option<Lsn>, Ended> {
        // A timeout too long to add to the clock waits without a deadline.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut state = self.lock();
        loop {
            if state.lsn >= target {
                return Ok(Some(state.lsn));
            }
            if state.ended {
                return Err(Ended(state.lsn));
            }
            state.blocked += 1;
            state = match deadline {
                None => self.advanced.wait(state).unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        state.blocked -= 1;
                        return Ok(None);
                    }
                    self.advanced
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
            state.blocked -= 1;
        }
    }

    /// Polls for the LSN to reach `target`: ready with the LSN reached or [`Ended`];
    /// pending with `cx`'s waker registered at `place`, which the caller keeps across
    /// polls and hands to [`cancel`](LsnWatch::cancel) if it gives up.
    pub(crate) fn poll_reached(
        &self,
        target: Lsn,
        place: &mut Place,
        cx: &Context<'_>,
    ) -> Poll<Result<Lsn, Ended>> {
        let mut state = self.lock();
        let outcome = if state.lsn >= target {
            Ok(state.lsn)
        } else if state.ended {
            Err(Ended(state.lsn))
        } else {
            let replaced = state.waiters.register(place, target.get(), cx.waker());
            drop(state);
            drop(replaced);
            return Poll::Pending;
        };
        // Ready: a waker still registered (polled again before its wake-up) goes.
        let left = state.waiters.remove(place);
        drop(state);
        drop(left);
        Poll::Ready(outcome)
    }

    /// Takes `place`'s waker out, if it is still registered.
    pub(crate) fn cancel(&self, place: &Place) {
        if !place.is_registered() {
            return;
        }
        let removed = self.lock().waiters.remove(place);
        if let Removed::Waiting(waker) = removed {
            drop(waker);
        }
    }

    /// How many futures wait.
    #[cfg(any(test, feature = "__testing"))]
    pub(crate) fn waiting(&self) -> usize {
        self.lock().waiters.len()
    }
}

/// A future that resolves once the watch's LSN reaches a target: the LSN reached, or
/// [`Ended`] when the writer stopped first. Dropping it before then takes its waker
/// out of the watch.
pub(crate) struct LsnReached {
    watch: std::sync::Arc<LsnWatch>,
    target: Lsn,
    place: Place,
}

impl LsnReached {
    pub(crate) fn new(watch: std::sync::Arc<LsnWatch>, target: Lsn) -> Self {
        LsnReached { watch, target, place: Place::default() }
    }
}

impl Future for LsnReached {
    type Output = Result<Lsn, Ended>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.watch.poll_reached(this.target, &mut this.place, cx)
    }
}

impl Drop for LsnReached {
    fn drop(&mut self) {
        self.watch.cancel(&self.place);
    }
}
