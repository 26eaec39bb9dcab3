//! The store's async forms: submitting a batch, waiting for an LSN and closing, each a
//! future that waits without blocking a thread and needs no particular runtime (it
//! works under tokio, any other executor, or a hand-written `block_on`). The writer
//! wakes them: a pop from its queue wakes a submitter waiting for room, a publish wakes
//! the waiters of its LSN, the writer thread's end wakes closers and every wait it cut
//! short.

use crate::api::batch::Batch;
use crate::api::store::{Store, gate_error, refusal_error};
use crate::base::error::{Error, Result};
use crate::base::version::Lsn;
use crate::engine::inbox::{Inbox, Refused, SendFuture};
use crate::engine::ticket::Ticket;
use crate::engine::writer::Request;
use crate::mem::lsn_watch::{Ended, LsnReached};
use crate::mem::notify::Place;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The future of [`Store::submit_async`]: resolves with the batch's [`Ticket`] once the
/// batch is queued for the writer.
///
/// It queues nothing until it is first polled. While the queue is full it waits for
/// room without blocking its thread, in line with the other async submitters (a
/// thread blocked in [`Store::submit`] or a [`Store::try_submit`] may still take a
/// slot first).
///
/// **Cancel safety**: dropped before it resolved, the batch was not queued and is
/// dropped with the future: it will not be committed. Once the future has resolved
/// the batch is queued, and dropping the ticket does not cancel it. A dropped future
/// takes nothing from the other submitters (no slot, no wake-up).
///
/// It does not keep the store open: when the last [`Store`] handle is dropped, a
/// pending submit resolves with [`Error::Closed`].
#[must_use = "a future does nothing unless it is awaited: the batch is not queued"]
pub struct SubmitFuture {
    state: Submitting,
}

enum Submitting {
    /// `ticket` is taken when the batch is queued.
    Waiting {
        send: SendFuture<Request>,
        ticket: Option<Ticket>,
        file: Arc<Path>,
    },
    Done(Option<Result<Ticket>>),
}

impl Future for SubmitFuture {
    type Output = Result<Ticket>;

    /// Polled again after it resolved, it gives [`Error::Closed`], as a ticket does.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let result = match &mut this.state {
            Submitting::Done(result) => {
                return Poll::Ready(result.take().unwrap_or(Err(Error::Closed)));
            }
            Submitting::Waiting { send, ticket, file } => match Pin::new(send).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => ticket.take().ok_or(Error::Closed),
                Poll::Ready(Err(Refused { request, why })) => {
                    // Dropped here, with no lock held: it may own user code.
                    drop(request);
                    Err(refusal_error(file, why))
                }
            },
        };
        this.state = Submitting::Done(None);
        Poll::Ready(result)
    }
}

impl std::fmt::Debug for SubmitFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queued = matches!(self.state, Submitting::Done(_));
        f.debug_struct("SubmitFuture").field("done", &queued).finish_non_exhaustive()
    }
}

/// The future of [`Store::wait_for_async`]: resolves once the group with the LSN (or a
/// later one) is visible to readers.
///
/// Dropping it before then leaves nothing behind. It does not keep the store open:
/// when the store closes (or its writer fails) before the LSN is published, it
/// resolves with [`Error::Closed`] (or [`Error::Poisoned`]).
#[must_use = "a future does nothing unless it is awaited"]
pub struct WaitForFuture {
    state: Result<WaitingFor, Option<Error>>,
}

struct WaitingFor {
    reached: LsnReached,
    inbox: Arc<Inbox<Request>>,
    file: Arc<Path>,
}

impl Future for WaitForFuture {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            Err(error) => Poll::Ready(error.take().map_or(Ok(()), Err)),
            Ok(waiting) => Pin::new(&mut waiting.reached).poll(cx).map(|reached| match reached {
                Ok(_) => Ok(()),
                Err(Ended(_)) => {
                    Err(gate_error(&waiting.inbox, &waiting.file).unwrap_or(Error::Closed))
                }
            }),
        }
    }
}

impl std::fmt::Debug for WaitForFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitForFuture").finish_non_exhaustive()
    }
}

/// The future of [`Store::close_async`]: the store is already closed to new batches;
/// it resolves once the writer has committed what was queued and stopped.
///
/// Dropping it does not reopen the store, and leaves nothing behind.
#[must_use = "the store is closed already; await the future to know when the writer has stopped"]
pub struct CloseFuture {
    store: Store,
    place: Place,
}

impl Future for CloseFuture {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.store.inner.writer.poll_stopped(&mut this.place, cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(match this.store.inner.inbox.status() {
            (_, Some(reason)) => Err(this.store.poisoned(reason)),
            _ => Ok(()),
        })
    }
}

impl Drop for CloseFuture {
    fn drop(&mut self) {
        self.store.inner.writer.cancel_stopped(&self.place);
    }
}

impl std::fmt::Debug for CloseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloseFuture").field("file", &self.store.path()).finish_non_exhaustive()
    }
}

impl Store {
    /// Queues `batch` for the writer, waiting for room while the queue is full without
    /// blocking a thread, and resolves with its [`Ticket`]; `.await` the ticket for the
    /// commit. The async form of [`submit`](Store::submit), for any executor.
    ///
    /// Nothing is queued until the future is first polled; dropped before it resolves,
    /// the batch is dropped unqueued (see [`SubmitFuture`]).
    ///
    /// # Errors
    ///
    /// As [`submit`](Store::submit): [`Error::Closed`] once the store is closed (also
    /// for a submit waiting for room when it closes), [`Error::Poisoned`],
    /// [`Error::ForeignView`], and [`Error::WriterReentry`] when called on the writer
    /// thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use viewstore::{Batch, Result, Store, View, ViewDef};
    ///
    /// const NAMES: ViewDef<u64, String> = ViewDef::new("names");
    ///
    /// // An async handler: the task waits for room and for the commit, its thread
    /// // keeps serving other tasks.
    /// async fn rename(store: &Store, names: &View<u64, String>, id: u64, name: String, version: u64) -> Result<()> {
    ///     let mut batch = Batch::new();
    ///     batch.put(names, &id, name, version)?;
    ///     let ticket = store.submit_async(batch).await?; // queued
    ///     let receipt = ticket.await?; // committed, durable and visible
    ///     assert!(receipt.outcomes[0].is_applied());
    ///     Ok(())
    /// }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("s.redb"))?;
    /// let names = store.view(&NAMES)?;
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// runtime.block_on(rename(&store, &names, 1, "ada".to_string(), 1))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit_async(&self, batch: Batch) -> SubmitFuture {
        let done = |result| SubmitFuture { state: Submitting::Done(Some(result)) };
        if batch.is_empty() && batch.positions.is_empty() {
            return done(self.empty_ticket());
        }
        if let Err(e) = self.check_not_writer() {
            return done(Err(e));
        }
        match self.request(batch) {
            Err(e) => done(Err(e)),
            Ok((ticket, request)) => SubmitFuture {
                state: Submitting::Waiting {
                    send: SendFuture::new(Arc::clone(&self.inner.inbox), request),
                    ticket: Some(ticket),
                    file: Arc::clone(&self.inner.file),
                },
            },
        }
    }

    /// Resolves once the group with `lsn` (or a later one) is visible to readers,
    /// without blocking a thread: the async form of [`wait_for`](Store::wait_for).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] (or [`Error::Poisoned`]) when the writer stops before `lsn`
    /// is published; [`Error::WriterReentry`] when called on the writer thread for a
    /// later LSN.
    ///
    /// # Examples
    ///
    /// ```
    /// use viewstore::{Lsn, Store, ViewDef};
    ///
    /// const NAMES: ViewDef<u64, String> = ViewDef::new("names");
    /// # let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("s.redb"))?;
    /// let names = store.view(&NAMES)?;
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// runtime.block_on(async {
    ///     // A write made elsewhere, whose LSN this task was handed.
    ///     let next = Lsn::new(store.lsn().get() + 1);
    ///     let writer = std::thread::spawn({
    ///         let names = names.clone();
    ///         move || names.put(&1, "ada".to_string(), 1)
    ///     });
    ///     store.wait_for_async(next).await?; // this thread serves other tasks meanwhile
    ///     assert!(names.get(&1).is_some());
    ///     # writer.join().expect("writer")?;
    ///     Ok::<(), viewstore::Error>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_for_async(&self, lsn: Lsn) -> WaitForFuture {
        if self.lsn() >= lsn {
            return WaitForFuture { state: Err(None) };
        }
        if let Err(e) = self.check_not_writer() {
            return WaitForFuture { state: Err(Some(e)) };
        }
        let watch = Arc::clone(self.inner.published.watch());
        WaitForFuture {
            state: Ok(WaitingFor {
                reached: LsnReached::new(watch, lsn),
                inbox: Arc::clone(&self.inner.inbox),
                file: Arc::clone(&self.inner.file),
            }),
        }
    }

    /// Closes the store to new batches at once, and returns a future that resolves
    /// once the writer has committed what was queued and stopped, without blocking a
    /// thread: the async form of [`close`](Store::close). Submits waiting for room get
    /// [`Error::Closed`]; reads keep working.
    ///
    /// On the writer thread it resolves at once, as `close` returns at once there.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] when the writer had failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use viewstore::{Batch, Error, Store, ViewDef};
    ///
    /// const NAMES: ViewDef<u64, String> = ViewDef::new("names");
    /// # let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("s.redb");
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// runtime.block_on(async {
    ///     let store = Store::open(&path)?;
    ///     let names = store.view(&NAMES)?;
    ///     let mut batch = Batch::new();
    ///     batch.put(&names, &1, "ada".to_string(), 1)?;
    ///     let queued = store.submit_async(batch).await?;
    ///     store.close_async().await?; // what was queued is committed, the file is free
    ///     assert!(queued.await?.outcomes[0].is_applied());
    ///     assert!(matches!(store.submit_async(Batch::new()).await, Err(Error::Closed)));
    ///     Ok::<(), viewstore::Error>(())
    /// })?;
    /// assert!(Store::open(&path)?.view(&NAMES)?.get(&1).is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close_async(&self) -> CloseFuture {
        self.inner.inbox.close();
        CloseFuture { store: self.clone(), place: Place::default() }
    }
}
