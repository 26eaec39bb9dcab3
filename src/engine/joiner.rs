//! The writer thread's handle: joined once, by whichever closer comes first, while the
//! others wait for that join to end. Compiled against a model checker's primitives too
//! (`writer::model_check`).

use super::sync::{JoinHandle, Mutex, PoisonError, ThreadId, current_thread};

/// The writer thread, until it is joined.
pub(crate) struct WriterThread {
    id: ThreadId,
    /// Held for the whole join: a second closer waits here for the first one's join,
    /// and finds `None` once it is done.
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl WriterThread {
    pub(crate) fn new(handle: JoinHandle<()>) -> Self {
        WriterThread { id: handle.thread().id(), handle: Mutex::new(Some(handle)) }
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
}
