//! The synchronization primitives of the read layer's waits (the LSN watch, the feed
//! log) and of the in-memory log: std's here, a model checker's in the tests that
//! compile those files again (`mem::model_check`, `mem::feed_check`,
//! `project::log_check`).

pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
