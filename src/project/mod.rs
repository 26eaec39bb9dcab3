//! Projection: feeding views from a partitioned source, exactly once. A [`Source`]
//! yields positioned events; a [`Projector`] runs a handler per event and commits each
//! event's writes with its position; a [`MemoryLog`] is a source in memory.

use crate::base::sync;

pub(crate) mod dead_letter;
#[cfg(test)]
mod log_check;
pub(crate) mod memory_log;
pub(crate) mod projector;
pub(crate) mod running;
pub(crate) mod source;
pub(crate) mod stats;
