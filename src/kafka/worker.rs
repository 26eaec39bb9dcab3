//! A background thread of the changelog (the publisher's, the follower's): started
//! with a stop flag, stopped by setting it and joining, on `stop` or on drop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

pub(crate) struct Worker<E> {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), E>>>,
    /// The error that says the thread panicked.
    panicked: fn() -> E,
}

impl<E: Send + 'static> Worker<E> {
    /// Starts `body` on a thread named `name`, with the flag that asks it to stop.
    pub(crate) fn start(
        name: &str,
        panicked: fn() -> E,
        body: impl FnOnce(Arc<AtomicBool>) -> Result<(), E> + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || body(flag))?;
        Ok(Worker { stop, thread: Some(thread), panicked })
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Asks the thread to stop and waits for it; what ended it.
    pub(crate) fn stop(&mut self) -> Result<(), E> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err((self.panicked)()),
            None => Ok(()),
        }
    }
}

impl<E> Drop for Worker<E> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
