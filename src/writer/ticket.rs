//! Tickets: the acknowledgement of a submitted batch, waited on blocking or awaited.

use crate::error::{Error, Result};
use crate::version::Receipt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

enum State {
    Pending(Option<Waker>),
    Done(Result<Receipt>),
    Taken,
}

struct Slot {
    state: Mutex<State>,
    ready: Condvar,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The acknowledgement of a submitted [`Batch`](crate::Batch): wait on it with
/// [`wait`](Ticket::wait), or `.await` it (it is a plain `Future`, tied to no runtime).
///
/// It resolves once the batch's group is committed and visible to readers, with a
/// [`Receipt`] (the group's LSN and one outcome per operation), or with the error that
/// failed the batch. Dropping a ticket does not cancel the batch.
#[must_use = "a ticket tells whether the batch committed"]
pub struct Ticket {
    slot: Arc<Slot>,
}

/// The writer's side of a ticket. Dropped unresolved (the writer stopped first), it
/// resolves the ticket with `unresolved_error` instead of leaving it hanging.
pub(crate) struct Completer {
    slot: Arc<Slot>,
    unresolved: Option<Box<dyn FnOnce() -> Error + Send>>,
}

/// A new pending ticket and the completer that resolves it. `unresolved` gives the
/// error for a completer dropped without a result.
pub(crate) fn pair(unresolved: Box<dyn FnOnce() -> Error + Send>) -> (Ticket, Completer) {
    let slot = Arc::new(Slot { state: Mutex::new(State::Pending(None)), ready: Condvar::new() });
    (Ticket { slot: Arc::clone(&slot) }, Completer { slot, unresolved: Some(unresolved) })
}

impl Ticket {
    /// A ticket that is already resolved.
    pub(crate) fn ready(result: Result<Receipt>) -> Ticket {
        let slot = Arc::new(Slot { state: Mutex::new(State::Done(result)), ready: Condvar::new() });
        Ticket { slot }
    }

    /// Blocks until the batch is committed (or failed) and returns its receipt.
    ///
    /// # Errors
    ///
    /// The error that failed the batch: a unique violation, a codec error, a panicking
    /// update closure, a failed commit, or [`Error::Closed`] when the store closed first.
    pub fn wait(self) -> Result<Receipt> {
        let mut state = self.slot.lock();
        loop {
            match std::mem::replace(&mut *state, State::Taken) {
                State::Done(result) => return result,
                State::Taken => return Err(Error::Closed),
                pending @ State::Pending(_) => {
                    *state = pending;
                    state = self.slot.ready.wait(state).unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// Like [`wait`](Ticket::wait), but gives the ticket back if it is not resolved
    /// within `timeout`.
    pub fn wait_timeout(self, timeout: Duration) -> std::result::Result<Result<Receipt>, Ticket> {
        {
            let state = self.slot.lock();
            let (mut state, _) = self
                .slot
                .ready
                .wait_timeout_while(state, timeout, |s| matches!(s, State::Pending(_)))
                .unwrap_or_else(PoisonError::into_inner);
            match std::mem::replace(&mut *state, State::Taken) {
                State::Done(result) => return Ok(result),
                State::Taken => return Ok(Err(Error::Closed)),
                pending @ State::Pending(_) => *state = pending,
            }
        }
        Err(self)
    }

    /// Whether the ticket is resolved (waiting would not block).
    pub fn is_ready(&self) -> bool {
        !matches!(*self.slot.lock(), State::Pending(_))
    }
}

impl Future for Ticket {
    type Output = Result<Receipt>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.slot.lock();
        match std::mem::replace(&mut *state, State::Taken) {
            State::Done(result) => Poll::Ready(result),
            State::Taken => Poll::Ready(Err(Error::Closed)),
            State::Pending(_) => {
                *state = State::Pending(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket").field("ready", &self.is_ready()).finish()
    }
}

impl Completer {
    /// Resolves the ticket.
    pub(crate) fn complete(mut self, result: Result<Receipt>) {
        self.unresolved = None;
        self.resolve(result);
    }

    fn resolve(&self, result: Result<Receipt>) {
        let waker = {
            let mut state = self.slot.lock();
            match std::mem::replace(&mut *state, State::Done(result)) {
                State::Pending(waker) => waker,
                _ => None,
            }
        };
        self.slot.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if let Some(unresolved) = self.unresolved.take() {
            self.resolve(Err(unresolved()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::Lsn;
    use std::task::Wake;

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn future_is_woken_and_resolves() {
        let (mut ticket, completer) = pair(Box::new(|| Error::Closed));
        let flag = Arc::new(Flag(false.into()));
        let waker = Waker::from(Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut ticket).poll(&mut cx).is_pending());
        completer.complete(Ok(Receipt { lsn: Lsn(3), outcomes: vec![] }));
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        match Pin::new(&mut ticket).poll(&mut cx) {
            Poll::Ready(Ok(r)) => assert_eq!(r.lsn, Lsn(3)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn dropped_completer_resolves_with_its_error() {
        let (ticket, completer) = pair(Box::new(|| Error::Closed));
        drop(completer);
        assert!(matches!(ticket.wait(), Err(Error::Closed)));
    }

    #[test]
    fn wait_timeout_gives_the_ticket_back() {
        let (ticket, completer) = pair(Box::new(|| Error::Closed));
        let ticket = ticket.wait_timeout(Duration::from_millis(5)).expect_err("still pending");
        completer.complete(Ok(Receipt { lsn: Lsn(1), outcomes: vec![] }));
        assert!(ticket.wait().is_ok());
    }
}
