//! The writer: the inbox requests wait in, the tickets that answer them, the thread
//! that commits groups (`writer`), the pure apply step and its version rules (`decide`), view registration and
//! verification, view management (`manage`).

pub(crate) mod apply;
mod bulk_load;
mod checkpoint;
mod decide;
mod effects;
mod feed;
pub(crate) mod inbox;
pub(crate) mod joiner;
mod load;
mod manage;
pub(crate) mod manage_op;
mod migrate;
#[cfg(test)]
mod model_check;
#[cfg(test)]
mod model_check_async;
mod positions;
mod registry;
mod replicated;
pub(crate) mod report;
mod shape_check;
mod sync;
mod tables;
pub(crate) mod ticket;
#[cfg(test)]
mod ticket_tests;
mod verify;
pub(crate) mod writer;
