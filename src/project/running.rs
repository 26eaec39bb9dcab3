//! A projector on a thread of its own, and the figures it reports.

use crate::api::batch::Batch;
use crate::api::store::Store;
use crate::base::error::{Error, Result};
use crate::base::panic::panic_message;
use crate::project::projector::{Projection, Projector};
use crate::project::source::{BoxError, Event, Source};
use crate::project::stats::ProjectorStats;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the projector's thread shares with its handle.
struct Shared {
    state: Mutex<Progress>,
    /// Signalled after every step and when the thread ends.
    changed: Condvar,
    stop: AtomicBool,
}

struct Progress {
    stats: ProjectorStats,
    /// How the thread ended, once it has.
    ended: Option<Result<ProjectorStats>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A projector running on its own thread, made by
/// [`Projector::spawn`](crate::Projector::spawn). Stop it with
/// [`stop`](RunningProjector::stop); dropping the handle stops it too.
pub struct RunningProjector {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// The store written to: a handle dropped on its writer thread must not join.
    store: Store,
}

impl std::fmt::Debug for RunningProjector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningProjector").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl<S, H> Projector<S, H>
where
    S: Source,
    H: FnMut(&Event<S::Payload>, &mut Batch) -> std::result::Result<(), BoxError> + Send + 'static,
{
    /// Starts the projector on a thread of its own.
    ///
    /// # Errors
    ///
    /// As [`start`](Projector::start), and [`Error::Io`] when the thread cannot start.
    pub fn spawn(self) -> Result<RunningProjector> {
        RunningProjector::spawn(self.start()?)
    }
}

impl RunningProjector {
    fn spawn<S, H>(projection: Projection<S, H>) -> Result<Self>
    where
        S: Source,
        H: FnMut(&Event<S::Payload>, &mut Batch) -> std::result::Result<(), BoxError>
            + Send
            + 'static,
    {
        let stats = projection.stats();
        let source = stats.source.clone();
        let name = format!("viewstore-projector-{source}");
        let shared = Arc::new(Shared {
            state: Mutex::new(Progress { stats, ended: None }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let thread_shared = Arc::clone(&shared);
        let store = projection.store().clone();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let shared = thread_shared;
                // The source and the handler are user code: a panic past the handler's
                // own guard (in `poll`, `acknowledge`, `heads`) ends the projector with
                // an error instead of leaving its waiters hanging.
                let ran = catch_unwind(AssertUnwindSafe(|| run(&shared, projection)));
                let ended = ran.unwrap_or_else(|panic| {
                    Err(Error::SourceFailed {
                        source,
                        reason: format!(
                            "the projector panicked: {}",
                            panic_message(panic.as_ref())
                        ),
                    })
                });
                let mut progress = shared.lock();
                if let Ok(stats) = &ended {
                    progress.stats = stats.clone();
                }
                progress.ended = Some(ended);
                drop(progress);
                shared.changed.notify_all();
            })
            .map_err(|e| Error::Io { file: "(projector thread)".into(), source: Arc::new(e) })?;
        Ok(RunningProjector { shared, thread: Some(thread), store })
    }

    /// The figures after the latest step.
    pub fn stats(&self) -> ProjectorStats {
        self.shared.lock().stats.clone()
    }

    /// Whether the projector has stopped (after a failure, or once stopped).
    pub fn is_finished(&self) -> bool {
        self.shared.lock().ended.is_some()
    }

    /// Waits until `done` holds for the figures after a step, or the projector stopped,
    /// or `timeout` passed; returns whether `done` held.
    pub fn wait_until(&self, timeout: Duration, done: impl Fn(&ProjectorStats) -> bool) -> bool {
        // A timeout too long to add to the clock waits without a deadline.
        let deadline = Instant::now().checked_add(timeout);
        let mut progress = self.shared.lock();
        loop {
            if done(&progress.stats) {
                return true;
            }
            if progress.ended.is_some() {
                return false;
            }
            progress = match deadline {
                None => self.shared.changed.wait(progress).unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    let waited = self.shared.changed.wait_timeout(progress, deadline - now);
                    waited.unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
    }

    /// Stops polling, waits for the batches in flight and acknowledges what is
    /// durable; returns the final figures.
    ///
    /// # Errors
    ///
    /// Why the projector stopped on its own, if it did ([`Error::EventFailed`], a
    /// store or source error).
    pub fn stop(mut self) -> Result<ProjectorStats> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<ProjectorStats> {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            return Err(Error::SourceFailed {
                source: self.stats().source,
                reason: "the projector thread panicked".into(),
            });
        }
        let mut progress = self.shared.lock();
        progress.ended.take().unwrap_or_else(|| Ok(progress.stats.clone()))
    }
}

impl Drop for RunningProjector {
    fn drop(&mut self) {
        if self.store.check_not_writer().is_err() {
            // On the writer thread (in an update closure): the projector may wait for
            // this very writer, so ask it to stop and let it end on its own.
            self.shared.stop.store(true, Ordering::Release);
            drop(self.thread.take());
            return;
        }
        if self.thread.is_some() {
            let _ = self.stop_and_join();
        }
    }
}

/// Steps `projection` until asked to stop or until it fails, then finishes it,
/// publishing the figures after every step.
fn run<S, H>(shared: &Shared, mut projection: Projection<S, H>) -> Result<ProjectorStats>
where
    S: Source,
    H: FnMut(&Event<S::Payload>, &mut Batch) -> std::result::Result<(), BoxError> + Send + 'static,
{
    while !shared.stop.load(Ordering::Acquire) {
        let stepped = projection.step();
        let stats = projection.stats();
        shared.lock().stats = stats;
        shared.changed.notify_all();
        stepped?;
    }
    projection.finish()
}
