//! Tickets: the acknowledgement of a submitted batch, waited on blocking or awaited.
//!
//! A ticket resolves exactly once: by its [`Completer`], or, when the completer is
//! dropped unresolved (the writer died with the batch in hand), by the completer's
//! `Drop`, which takes no lock but the ticket's own. Like the inbox, this file is also
//! compiled against a model checker's primitives (`writer::model_check`).

use super::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, ThreadId, current_thread};
use crate::base::error::{Error, Result};
use crate::base::version::Receipt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

enum State {
    Pending(Option<Waker>),
    Done(Result<Receipt>),
    Taken,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
    /// The writer thread that resolves the ticket (waiting on it there would wait
    /// forever) and the store's file; `None` for a ticket made resolved.
    origin: Option<(ThreadId, std::sync::Arc<Path>)>,
}

impl Shared {
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
    shared: Arc<Shared>,
}

/// The writer's side of a ticket. Dropped unresolved (the writer died with the batch in
/// hand), it resolves the ticket with [`Error::Poisoned`] naming `file`, instead of
/// leaving it hanging.
pub(crate) struct Completer {
    shared: Arc<Shared>,
    resolved: bool,
}

/// A new pending ticket and the completer that resolves it. `writer` is the thread that
/// will resolve it; `file` names the store in the error of a completer dropped
/// unresolved.
pub(crate) fn pair(writer: ThreadId, file: std::sync::Arc<Path>) -> (Ticket, Completer) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::Pending(None)),
        ready: Condvar::new(),
        origin: Some((writer, file)),
    });
    (Ticket { shared: Arc::clone(&shared) }, Completer { shared, resolved: false })
}

/// The error of a ticket whose completer was dropped unresolved.
pub(crate) fn writer_stopped(file: &Path) -> Error {
    Error::Poisoned {
        file: file.to_owned(),
        reason: "the writer stopped before answering this request".into(),
    }
}

impl Ticket {
    /// A ticket that is already resolved.
    pub(crate) fn ready(result: Result<Receipt>) -> Ticket {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::Done(result)),
            ready: Condvar::new(),
            origin: None,
        });
        Ticket { shared }
    }

    /// The error for a wait that would block the thread that resolves the ticket.
    fn reentry(&self) -> Option<Error> {
        let (writer, file) = self.shared.origin.as_ref()?;
        (*writer == current_thread()).then(|| Error::WriterReentry { file: file.to_path_buf() })
    }

    /// Blocks until the batch is committed (or failed) and returns its receipt.
    ///
    /// # Errors
    ///
    /// The error that failed the batch: a unique violation, a codec error, a panicking
    /// update closure, a failed commit, or [`Error::Poisoned`] when the writer stopped on
    /// a failure before committing it. (A batch queued before a close is committed: a
    /// close fails no queued batch. [`Error::Closed`] comes only from a ticket whose
    /// result was already taken, by a future polled again after it completed.)
    /// [`Error::WriterReentry`] when called from the writer thread (an update closure, an
    /// extractor or a codec) while the batch is still pending: it would wait forever.
    /// [`Error::kind`] tells this batch's failure from the store's.
    pub fn wait(self) -> Result<Receipt> {
        let mut state = self.shared.lock();
        loop {
            match std::mem::replace(&mut *state, State::Taken) {
                State::Done(result) => return result,
                State::Taken => return Err(Error::Closed),
                pending @ State::Pending(_) => {
                    *state = pending;
                    if let Some(e) = self.reentry() {
                        return Err(e);
                    }
                    state = self.shared.ready.wait(state).unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// Like [`wait`](Ticket::wait), but gives the ticket back if it is not resolved
    /// within `timeout`.
    pub fn wait_timeout(self, timeout: Duration) -> std::result::Result<Result<Receipt>, Ticket> {
        {
            let state = self.shared.lock();
            if matches!(*state, State::Pending(_))
                && let Some(e) = self.reentry()
            {
                return Ok(Err(e));
            }
            let (mut state, _) = self
                .shared
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
        !matches!(*self.shared.lock(), State::Pending(_))
    }
}

impl Future for Ticket {
    type Output = Result<Receipt>;

    /// Keeps the waker of the last poll only: a ticket moved to another task (or
    /// polled by a `select` in one, then awaited in another) wakes the task that polled
    /// it last. The waker it replaces is dropped after the ticket's lock is released.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.shared.lock();
        match &mut *state {
            State::Pending(Some(waker)) if waker.will_wake(cx.waker()) => Poll::Pending,
            State::Pending(waker) => {
                let replaced = waker.replace(cx.waker().clone());
                drop(state);
                drop(replaced);
                Poll::Pending
            }
            done => match std::mem::replace(done, State::Taken) {
                State::Done(result) => Poll::Ready(result),
                _ => Poll::Ready(Err(Error::Closed)),
            },
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
        self.resolved = true;
        self.resolve(result);
    }

    fn resolve(&self, result: Result<Receipt>) {
        let waker = {
            let mut state = self.shared.lock();
            match std::mem::replace(&mut *state, State::Done(result)) {
                State::Pending(waker) => waker,
                _ => None,
            }
        };
        self.shared.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if !self.resolved
            && let Some((_, file)) = &self.shared.origin
        {
            self.resolve(Err(writer_stopped(file)));
        }
    }
}
