//! Views kept from PostgreSQL itself (feature `postgres`): a [`Source`](crate::Source)
//! over logical replication with the built-in `pgoutput` plugin, transaction for
//! transaction, exactly once.
//!
//! [`PostgresSource`] reads a publication's tables through a replication slot: first a
//! consistent copy of their rows (the initial snapshot), then each committed
//! transaction whole, with the messages the application emitted with
//! `pg_logical_emit_message` in commit order beside the row changes. A
//! [`Projector`](crate::Projector) turns each into one batch; the commit LSN is stored
//! with it, and the slot advances only past what the store made durable.
//!
//! The connection is this crate's own blocking client of PostgreSQL's protocol (the
//! reasons are in `docs/postgres.md`): TCP without TLS, with trust, password, MD5 or
//! SCRAM-SHA-256 authentication.

mod config;
mod error;
mod pgoutput;
mod resume;
mod row;
mod snapshot;
mod source;
mod wire;

pub use config::PostgresConfig;
pub use error::PostgresError;
pub use row::{Change, Column, DecodeError, FromText, Kind, Relation, Row, Transaction, Value};
pub use snapshot::SnapshotProgress;
pub use source::{PostgresSource, SNAPSHOT, STREAM};
