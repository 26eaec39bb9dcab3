//! # viewstore
//!
//! An embedded, crash-safe store of **precomputed, denormalized views** for Rust
//! services: the read model kept as data instead of a cache.
//!
//! Background projectors *write* new versions of each view whenever its source changes;
//! every write carries a caller-chosen version and applies only if it is newer, so
//! replays and out-of-order deliveries never move a view backwards. Writes go through
//! one writer thread that commits them in groups (one redb transaction each). Every
//! live record is held in memory, decoded: a read is a lookup in memory that never
//! touches disk or waits on the writer. Nothing is evicted, and everything survives a
//! restart.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use viewstore::{Batch, Outcome, Store, ViewDef};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! struct Profile { name: String, posts: u32 }
//!
//! const PROFILES: ViewDef<u64, Profile> = ViewDef::new("profiles");
//!
//! # let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path().join("views.redb"))?;
//! let profiles = store.view(&PROFILES)?;
//!
//! // A projector writes versioned records; an older delivery changes nothing.
//! profiles.put(&7, Profile { name: "ada".into(), posts: 3 }, 12)?;
//! let late = profiles.put(&7, Profile { name: "ada".into(), posts: 2 }, 11)?;
//! assert_eq!(late, Outcome::Stale { current: 12 });
//!
//! // Many operations on many views commit atomically.
//! let mut batch = Batch::new();
//! batch.update(&profiles, &7, 13, |p| p.map(|p| Profile { posts: p.posts + 1, ..p.clone() }))?;
//! let receipt = store.submit(batch)?.wait()?;
//!
//! // Reads come from memory.
//! assert_eq!(profiles.get_with(&7, |p| p.posts), Some(4));
//! assert_eq!(store.lsn(), receipt.lsn);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Threads
//!
//! [`Store`], [`View`], [`Snapshot`] and [`ViewSnapshot`] are `Send + Sync` and cheap to
//! clone: share them across threads freely, no per-thread setup. Values must be
//! `Send + Sync` for that to hold, so a view of values that are not cannot be opened:
//!
//! ```compile_fail
//! use std::cell::Cell;
//! use viewstore::{Store, ViewDef};
//!
//! // `Cell<u64>` is serde-encodable and `Send`, but not `Sync`.
//! const CELLS: ViewDef<u64, Cell<u64>> = ViewDef::new("cells");
//! # let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path().join("s.redb")).unwrap();
//! let view = store.view(&CELLS);
//! ```
//!
//! ```
//! fn shareable<T: Send + Sync + Clone>() {}
//! shareable::<viewstore::Store>();
//! shareable::<viewstore::View<u64, String>>();
//! shareable::<viewstore::Snapshot>();
//! shareable::<viewstore::ViewSnapshot<u64, String>>();
//! ```
//!
//! ## Async
//!
//! Every call that waits has an async form that suspends the task instead of the
//! thread, and needs no particular runtime (tokio, another executor, or a plain
//! `block_on`): [`Store::submit_async`], [`View::put_async`] and the other `*_async`
//! writes, a [`Ticket`] (a `Future`), [`Store::wait_for_async`] and
//! [`Store::close_async`]. Their futures are `Send + 'static`, so they can be spawned.
//! The blocking calls ([`View::put`] and the other writes, [`Store::submit`] while the
//! queue is full, [`Ticket::wait`], [`Store::wait_for`], [`Store::close`]) block their
//! thread until done: from async code, use the async forms, or `spawn_blocking`.
//!
//! ```
//! use viewstore::{Outcome, Store, ViewDef};
//!
//! const NAMES: ViewDef<u64, String> = ViewDef::new("names");
//!
//! # let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path().join("views.redb"))?;
//! let names = store.view(&NAMES)?;
//! let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//! runtime.block_on(async {
//!     // Waits for room in the queue and for the commit, without blocking the thread.
//!     assert_eq!(names.put_async(&1, "ada".to_string(), 1).await?, Outcome::Applied);
//!     store.close_async().await
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Trade-offs
//!
//! - Every live record of every open view is in memory, decoded: memory grows with the
//!   data, by design (no eviction, no cold reads).
//! - One writer thread: writes are serialized and grouped; throughput comes from group
//!   commit, not from parallel writers.
//! - Reads see whole committed groups. A [`Snapshot`] pins the records it sees; the
//!   next groups copy only the parts of the view they change.
//! - Each reading thread keeps the root it read last (so that a point read runs no
//!   locked instruction): until its next read, a thread pins one version of the store
//!   it read last, like a snapshot. `docs/performance.md` has the figures.

mod api;
mod base;
mod engine;
mod feed;
#[cfg(feature = "inspect")]
pub mod inspect;
#[cfg(feature = "kafka")]
pub mod kafka;
mod keys;
mod mem;
#[cfg(feature = "postgres")]
pub mod postgres;
mod project;
mod schema;
mod storage;
#[cfg(feature = "__testing")]
#[doc(hidden)]
pub mod testing;

/// The redb crate viewstore stores its file with, at the version it was built with. Its
/// types appear in viewstore's API ([`redb::StorageBackend`] for
/// [`StoreBuilder::backend`], the [`redb::Error`] kept by [`Error::Storage`]): name
/// them through this re-export, `viewstore::redb::StorageBackend`, so that they always
/// match.
pub use redb;

pub use api::asynchronous::{CloseFuture, SubmitFuture, WaitForFuture};
pub use api::batch::Batch;
pub use api::index_def::IndexDef;
pub use api::migration::Migration;
pub use api::replicate::Replicator;
pub use api::store::Store;
pub use api::submit::TrySubmitError;
pub use api::view::{View, ViewDef};
pub use api::writes::Written;
pub use api::writes_async::WriteFuture;
pub use base::codec::{Bincode, Codec};
pub use base::config::{
    DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_JOURNAL_LIMIT, Durability, IndexProgress, StoreBuilder,
};
pub use base::error::{CodecError, Error, ErrorKind, Result};
pub use base::feed::{ChangeKind, FeedChange, FeedGroup, FeedMode, FeedRetention};
pub use base::histogram::Histogram;
pub use base::index_kind::IndexKind;
pub use base::limits::{MAX_KEY_BYTES, MAX_SOURCES, MAX_VALUE_BYTES};
pub use base::manage::{BackupReport, CompactReport, IndexInfo, MigrationProgress, ViewInfo};
pub use base::shape::Shape;
pub use base::version::{Change, Lsn, Outcome, Receipt, Version};
pub use base::writer_stats::{Outcomes, QueueStats, WriterStats};
pub use engine::report::{Problem, ProblemKind, VerifyReport};
pub use engine::ticket::Ticket;
pub use feed::reader::FeedReader;
pub use feed::typed::{ViewChange, ViewFeed};
pub use keys::CompositeKey;
pub use mem::index_read::VersionedIndexIter;
pub use mem::snapshot::VersionedIter;
pub use mem::{IndexIter, IndexStats, IndexView, Iter, Snapshot, Stats, ViewSnapshot, ViewStats};
pub use project::dead_letter::{DEAD_LETTERS, DeadLetter, DeadLetterKey, OnFailure};
pub use project::memory_log::{MemoryLog, MemorySource};
pub use project::projector::{Projection, Projector};
pub use project::running::RunningProjector;
pub use project::source::{BoxError, Event, Source};
pub use project::stats::{PartitionStats, ProjectorStats};
pub use schema::index::AnyIndex;
pub use schema::registration::{ViewKey, ViewValue};
