//! The synchronization primitives of the feed log and the in-memory log: std's here, a
//! model checker's in the tests that compile those files again (`mem::feed_check`,
//! `project::log_check`).

pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
