//! The writer thread's handle: joined once, by whichever closer comes first, while the
//! others wait for that join to end; or awaited, without blocking a thread, through the
//! [`Finished`] mark the thread sets as its last step. Compiled against a model
//! checker's primitives too (`engine::model_check`).
//!
//! Invariants of [`Finished`], under its lock: `done` is set once and stays set; a
//! future registers its waker only while `done` is not set, in the critical section
//! that saw it so, and [`Finished::finish`] takes every registered waker out in the
//! critical section that sets it, waking them once the lock is released (a waker is
//! user code). A future dropped while registered takes its waker out.

use super::sync::{JoinHandle, Mutex, PoisonError, ThreadId, current_thread, has_finished};
use crate::mem::notify::{Place, Waiters};
use std::task::{Context, Poll};

struct FinishedState {
    done: bool,
    waiters: Waiters,
}

/// Set by the writer thread as its last step: everything it owned (the database
/// included) is dropped by then and every request it held is answered.
pub(crate) struct Finished {
    state: Mutex<FinishedState>,
}

impl Finished {
    pub(crate) fn new() -> Self {
        Finished { state: Mutex::new(FinishedState { done: false, waiters: Waiters::new() }) }
    }

    /// Marks the thread finished and wakes every future waiting for it.
    pub(crate) fn finish(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.done = true;
        let everyone = state.waiters.take_all();
        drop(state);
        everyone.wake();
    }

    /// Ready once the thread is finished; otherwise `cx`'s waker is registered at
    /// `place`, which the caller keeps across polls and hands to
    /// [`cancel`](Finished::cancel) if it gives up.
    pub(crate) fn poll_finished(&self, place: &mut Place, cx: &Context<'_>) -> Poll<()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.done {
            return Poll::Ready(());
        }
        let replaced = state.waiters.register(place, 1, cx.waker());
        drop(state);
        drop(replaced);
        Poll::Pending
    }

    /// Takes `place`'s waker out, if it is still registered.
    pub(crate) fn cancel(&self, place: &Place) {
        if !place.is_registered() {
            return;
        }
        let removed =
            self.state.lock().unwrap_or_else(PoisonError::into_inner).waiters.remove(place);
        drop(removed);
    }
}

/// The writer thread, until it is joined.
pub(crate) struct WriterThread {
    id: ThreadId,
    /// Held for the whole join: a second closer waits here for the first one's join,
    /// and finds `None` once it is done.
    handle: Mutex<Option<JoinHandle<()>>>,
    finished: std::sync::Arc<Finished>,
}

impl WriterThread {
    /// The writer thread, which calls `finished.finish()` as its last step.
    pub(crate) fn new(handle: JoinHandle<()>, finished: std::sync::Arc<Finished>) -> Self {
        WriterThread { id: handle.thread().id(), handle: Mutex::new(Some(handle)), finished }
    }

    /// The writer thread's id.
    pub(crate) fn id(&self) -> ThreadId {
        self.id
    }

    /// Whether the calling thread is the writer.
    pub(crate) fn is_current(&self) -> bool {
        current_thread() == self.id
    }

    /// Waits until the writer thread has ended. On the writer thread itself it returns
    /// at once: the thread cannot wait for itself, and ends once its loop returns.
    pub(crate) fn join(&self) {
        if self.is_current() {
            return;
        }
        let mut handle = self.handle.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = handle.take() {
            // The thread catches every panic of the writer loop and answers what was
            // queued; a panic past that leaves nothing more to do here.
            let _ = handle.join();
        }
    }

    /// Ready once the writer thread has finished its work, without blocking: the async
    /// form of [`join`](WriterThread::join). On the writer thread itself it is ready at
    /// once, as `join` returns. When it is ready and the thread has already exited, the
    /// thread is joined here (that cannot block); otherwise a later `join` reaps it.
    pub(crate) fn poll_stopped(&self, place: &mut Place, cx: &Context<'_>) -> Poll<()> {
        if self.is_current() {
            return Poll::Ready(());
        }
        if self.finished.poll_finished(place, cx).is_pending() {
            return Poll::Pending;
        }
        // Never waits: another closer joining holds the lock, and is then the one.
        if let Ok(mut handle) = self.handle.try_lock()
            && handle.as_ref().is_some_and(has_finished)
            && let Some(handle) = handle.take()
        {
            let _ = handle.join();
        }
        Poll::Ready(())
    }

    /// Gives up a wait of [`poll_stopped`](WriterThread::poll_stopped) at `place`.
    pub(crate) fn cancel_stopped(&self, place: &Place) {
        self.finished.cancel(place);
    }
}
