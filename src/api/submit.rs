//! Handing a batch to the writer: `submit` (waiting for room while the queue is full),
//! `try_submit` and `try_submit_or_keep` (never waiting), and the projector's
//! `submit_many`. The async form, `submit_async`, is in `asynchronous.rs`.

use crate::api::batch::Batch;
use crate::api::store::{Store, fail_request};
use crate::base::error::{Error, Result};
use crate::base::version::Receipt;
use crate::engine::inbox::Refused;
use crate::engine::ticket::{self, Ticket};
use crate::engine::writer::Request;
use crate::schema::op::Submission;
use std::sync::{Arc, Mutex, PoisonError};

/// A batch [`Store::try_submit_or_keep`] did not queue, given back with the reason.
///
/// [`error`](TrySubmitError::error) is [`Error::Full`] when the queue was full (retry
/// the same batch later, from [`into_batch`](TrySubmitError::into_batch):
/// [`Error::is_retryable`] is true), or the error [`Store::submit`] would have given
/// for it ([`Error::Closed`], [`Error::Poisoned`], [`Error::ForeignView`],
/// [`Error::WriterReentry`]).
///
/// It is `Send + Sync + 'static` (a `Batch` alone is not `Sync`: its `update` closures
/// need only be `Send`), so it boxes into any error type; it converts into its
/// [`Error`], so `?` works in a function that returns
/// [`viewstore::Result`](crate::Result). Either way the batch is dropped.
pub struct TrySubmitError {
    /// Boxed: a `Result` with this error stays the size of a ticket.
    kept: Box<Kept>,
}

struct Kept {
    /// Behind a lock only so that the error is `Sync`: it is never shared while
    /// borrowed, so the lock is never contended.
    batch: Mutex<Batch>,
    error: Error,
}

impl TrySubmitError {
    fn new(batch: Batch, error: Error) -> Self {
        TrySubmitError { kept: Box::new(Kept { batch: Mutex::new(batch), error }) }
    }

    /// Why the batch was not queued.
    pub fn error(&self) -> &Error {
        &self.kept.error
    }

    /// The batch, unchanged, to submit again.
    pub fn into_batch(self) -> Batch {
        self.into_parts().0
    }

    /// The batch and the error.
    pub fn into_parts(self) -> (Batch, Error) {
        let Kept { batch, error } = *self.kept;
        (batch.into_inner().unwrap_or_else(PoisonError::into_inner), error)
    }
}

impl std::fmt::Debug for TrySubmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("TrySubmitError");
        match self.kept.batch.try_lock() {
            Ok(batch) => out.field("batch", &*batch),
            Err(_) => out.field("batch", &"(in use)"),
        };
        out.field("error", &self.kept.error).finish()
    }
}

impl std::fmt::Display for TrySubmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the batch was not queued: {}", self.kept.error)
    }
}

impl std::error::Error for TrySubmitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kept.error)
    }
}

impl From<TrySubmitError> for Error {
    fn from(refused: TrySubmitError) -> Error {
        refused.kept.error
    }
}

/// Whether a batch carries nothing for the writer: it is answered at once.
fn is_empty(batch: &Batch) -> bool {
    batch.is_empty() && batch.positions.is_empty() && batch.replicated.is_none()
}

/// The batch a refused request was made from. Only batch requests are made from
/// batches; the completer goes with the request (its ticket was never handed out).
fn batch_of(request: Request, store: Option<u64>) -> Batch {
    match request {
        Request::Batch {
            batch: Submission { ops, positions, fallback, replicated, replicated_after },
            bytes,
            done,
        } => {
            drop(done);
            Batch { store, ops, bytes, positions, fallback, replicated, replicated_after }
        }
        other => {
            debug_assert!(false, "a batch was queued as another kind of request");
            drop(other);
            Batch::default()
        }
    }
}

impl Store {
    /// The ticket of a batch with nothing in it: resolved at once, at the current LSN.
    pub(crate) fn empty_ticket(&self) -> Result<Ticket> {
        self.check_open()?;
        Ok(Ticket::ready(Ok(Receipt::committed(self.lsn(), Vec::new()))))
    }

    /// Refuses a batch built with the views of another store.
    fn check_batch_store(&self, batch: &Batch) -> Result<()> {
        match batch.store {
            Some(store) if store != self.inner.id => {
                Err(Error::ForeignView { view: "(a view of another store)".into() })
            }
            _ => Ok(()),
        }
    }

    /// The request for `batch` and the ticket it resolves.
    pub(crate) fn request(&self, batch: Batch) -> Result<(Ticket, Request)> {
        self.check_batch_store(&batch)?;
        Ok(self.checked_request(batch))
    }

    /// The request for a batch [`check_batch_store`](Store::check_batch_store) passed.
    fn checked_request(&self, batch: Batch) -> (Ticket, Request) {
        let (ticket, done) = ticket::pair(self.inner.writer.id(), Arc::clone(&self.inner.file));
        let bytes = batch.bytes;
        let batch = Submission {
            ops: batch.ops,
            positions: batch.positions,
            fallback: batch.fallback,
            replicated: batch.replicated,
            replicated_after: batch.replicated_after,
        };
        (ticket, Request::Batch { batch, bytes, done })
    }

    /// Queues `batch` for the writer and returns its [`Ticket`]. Blocks while the queue
    /// is full (backpressure): in async code, await
    /// [`submit_async`](Store::submit_async) instead, which waits for room without
    /// blocking a thread.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`close`](Store::close) (also for a submit that was
    /// waiting for room when the store closed); [`Error::Poisoned`] after the writer
    /// failed for good; [`Error::ForeignView`] for a batch built with views of another
    /// store; [`Error::WriterReentry`] on the writer thread.
    pub fn submit(&self, batch: Batch) -> Result<Ticket> {
        if is_empty(&batch) {
            return self.empty_ticket();
        }
        let (ticket, request) = self.request(batch)?;
        self.send(request)?;
        Ok(ticket)
    }

    /// Queues `batches` in order, many at a time (one lock and one wake-up of the
    /// writer per round rather than per batch), blocking while the queue is full; one
    /// result per batch. A batch refused on its own (another store's view) fails
    /// alone; when the store closes or fails midway, the batches not yet queued
    /// resolve with that error.
    pub(crate) fn submit_many(&self, batches: Vec<Batch>) -> Vec<Result<Ticket>> {
        if let Err(e) = self.check_not_writer() {
            return batches.iter().map(|_| Err(e.clone())).collect();
        }
        let mut results = Vec::with_capacity(batches.len());
        let mut requests = std::collections::VecDeque::with_capacity(batches.len());
        for batch in batches {
            if is_empty(&batch) {
                results.push(self.submit(batch));
                continue;
            }
            match self.request(batch) {
                Ok((ticket, request)) => {
                    results.push(Ok(ticket));
                    requests.push_back(request);
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if let Err(why) = self.inner.inbox.send_all(&mut requests) {
            let error = self.refusal(why);
            for request in requests {
                fail_request(request, &error);
            }
        }
        results
    }

    /// Like [`submit`](Store::submit), but never blocks: a full queue gives
    /// [`Error::Full`] and the batch is dropped. To keep the batch and retry it, use
    /// [`try_submit_or_keep`](Store::try_submit_or_keep).
    pub fn try_submit(&self, batch: Batch) -> Result<Ticket> {
        self.try_submit_or_keep(batch).map_err(Error::from)
    }

    /// Like [`try_submit`](Store::try_submit), but a batch that is not queued comes
    /// back in the error, unchanged, to be submitted again: never blocks, never drops
    /// the batch.
    ///
    /// # Errors
    ///
    /// A [`TrySubmitError`] holding the batch and [`Error::Full`] when the queue is
    /// full, or the error [`submit`](Store::submit) would give.
    ///
    /// # Examples
    ///
    /// Retrying a batch while doing other work between attempts:
    ///
    /// ```
    /// use viewstore::{Batch, Store, ViewDef};
    ///
    /// const NAMES: ViewDef<u64, String> = ViewDef::new("names");
    /// # let dir = tempfile::tempdir()?;
    /// let store = Store::builder(dir.path().join("s.redb")).queue_capacity(1).open()?;
    /// let names = store.view(&NAMES)?;
    ///
    /// let mut batch = Batch::new();
    /// batch.put(&names, &1, "ada".to_string(), 1)?;
    /// let ticket = loop {
    ///     match store.try_submit_or_keep(batch) {
    ///         Ok(ticket) => break ticket,
    ///         Err(refused) if refused.error().is_retryable() => {
    ///             batch = refused.into_batch(); // the same batch, to try again
    ///             std::thread::yield_now(); // ... or serve something else meanwhile
    ///         }
    ///         Err(refused) => return Err(refused.into()),
    ///     }
    /// };
    /// assert!(ticket.wait()?.outcomes[0].is_applied());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_submit_or_keep(&self, batch: Batch) -> Result<Ticket, TrySubmitError> {
        if is_empty(&batch) {
            return self.empty_ticket().map_err(|error| TrySubmitError::new(batch, error));
        }
        if let Err(error) = self.check_not_writer().and_then(|()| self.check_batch_store(&batch)) {
            return Err(TrySubmitError::new(batch, error));
        }
        let store = batch.store;
        let (ticket, request) = self.checked_request(batch);
        match self.inner.inbox.try_send(request) {
            Ok(()) => Ok(ticket),
            Err(Refused { request, why }) => {
                drop(ticket);
                Err(TrySubmitError::new(batch_of(request, store), self.refusal(why)))
            }
        }
    }
}
