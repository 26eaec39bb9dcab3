//! The synchronization primitives of the inbox and the tickets: std's here, a model
//! checker's in `model_check`, which compiles the same files again.

pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
pub(crate) use std::thread::{JoinHandle, ThreadId};

pub(crate) fn current_thread() -> ThreadId {
    std::thread::current().id()
}

/// Whether a thread has returned, so that joining it would not block.
pub(crate) fn has_finished(handle: &JoinHandle<()>) -> bool {
    handle.is_finished()
}
