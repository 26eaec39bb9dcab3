//! The synchronization primitives of the LSN watch: std's here, a model checker's in
//! `model_check`, which compiles the same file again.

pub(crate) use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
