//! `Migration`: a typed chain of steps that converts a view's values stored at older
//! schema versions into its current value type, built from the old types and functions
//! from each to the next.

use crate::base::codec::{Bincode, Codec};
use crate::base::manage::MigrationProgress;
use crate::base::panic::panic_message;
use crate::base::shape::Shape;
use crate::schema::migration::StepFailure;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// The chain so far: converts a value stored at a covered version into the chain's
/// last type.
type Chain<V> = Arc<dyn Fn(u32, &[u8]) -> Result<V, StepFailure> + Send + Sync>;

/// Traces the shape of the value type a covered version is decoded as.
pub(super) type Tracer = fn() -> Result<Shape, String>;

/// What is told of a migration's progress.
pub(super) type ProgressFn = Arc<dyn Fn(&MigrationProgress) + Send + Sync>;

/// A chain of steps that converts the values of a view stored at an older schema
/// version into `V`, the value type of the view's current definition; given to
/// [`Store::view_migrated`](crate::Store::view_migrated).
///
/// Start with [`Migration::from_version`] and the value type stored at that version,
/// then add one step per later version with [`then`](Migration::then) (a function from
/// the previous type to the next) or [`try_then`](Migration::try_then) (one that may
/// fail). A view stored at any version the chain starts a step from is converted
/// through the remaining steps; the chain's last version must be the definition's
/// schema version.
///
/// Stored values are decoded with [`Bincode`], the default codec, as each step's input
/// type; a view stored with another codec cannot be migrated in place (the migration
/// refuses it, changing nothing): rebuild it into a new view and swap them
/// ([`Store::swap_views`](crate::Store::swap_views)). The converted values are encoded
/// with the definition's codec.
///
/// # Examples
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use viewstore::Migration;
///
/// #[derive(Serialize, Deserialize)]
/// struct ProfileV1 { name: String }
/// #[derive(Serialize, Deserialize)]
/// struct ProfileV2 { name: String, posts: u32 }
/// #[derive(Serialize, Deserialize)]
/// struct ProfileV3 { display_name: String, posts: u32 }
///
/// let migration = Migration::<ProfileV1>::from_version(1)
///     .then(2, |v1: ProfileV1| ProfileV2 { name: v1.name, posts: 0 })
///     .try_then(3, |v2: ProfileV2| {
///         if v2.name.is_empty() {
///             return Err(format!("a profile without a name"));
///         }
///         Ok(ProfileV3 { display_name: v2.name, posts: v2.posts })
///     });
/// assert_eq!(migration.target_version(), 3);
/// ```
#[must_use]
pub struct Migration<V> {
    pub(super) last: u32,
    pub(super) chain: Chain<V>,
    /// The versions a step starts from, each with the shape of its input type.
    pub(super) covered: Vec<(u32, Tracer)>,
    /// Why the chain cannot be used (a step's version not above the previous one).
    pub(super) invalid: Option<String>,
    pub(super) chunk_records: usize,
    pub(super) chunk_bytes: usize,
    pub(super) progress: Option<ProgressFn>,
}

impl<V: Serialize + DeserializeOwned + 'static> Migration<V> {
    /// A chain that starts at schema version `version`, whose values are of type `V`.
    /// On its own it converts nothing; add steps with [`then`](Migration::then).
    pub fn from_version(version: u32) -> Self {
        let chain: Chain<V> = Arc::new(move |stored, bytes| decode_as::<V>(stored, bytes));
        Migration {
            last: version,
            chain,
            covered: Vec::new(),
            invalid: None,
            chunk_records: 10_000,
            chunk_bytes: 4 << 20,
            progress: None,
        }
    }

    /// Adds a step to schema version `version`, converting each value of the chain's
    /// last type into a `U`. A panic in `step` fails the migration with
    /// [`Error::Migration`](crate::Error::Migration) naming the view, the key and the
    /// step.
    pub fn then<U, F>(self, version: u32, step: F) -> Migration<U>
    where
        U: Serialize + DeserializeOwned + 'static,
        F: Fn(V) -> U + Send + Sync + 'static,
    {
        self.try_then(version, move |v| Ok::<U, std::convert::Infallible>(step(v)))
    }

    /// Adds a step to schema version `version` that may fail: an `Err` (or a panic)
    /// fails the migration with [`Error::Migration`](crate::Error::Migration) naming the
    /// view, the key, the step and the error's text.
    pub fn try_then<U, E, F>(self, version: u32, step: F) -> Migration<U>
    where
        U: Serialize + DeserializeOwned + 'static,
        E: fmt::Display,
        F: Fn(V) -> Result<U, E> + Send + Sync + 'static,
    {
        let from = self.last;
        let invalid = self.invalid.or_else(|| {
            (version <= from).then(|| {
                format!(
                    "the migration's step to version {version} follows version {from}: each \
                     step's version must be greater than the one before"
                )
            })
        });
        let previous = self.chain;
        let chain: Chain<U> = Arc::new(move |stored, bytes| {
            if stored == version {
                return decode_as::<U>(stored, bytes);
            }
            let value = previous(stored, bytes)?;
            let failed = |reason| StepFailure { step: Some((from, version)), reason };
            match catch_unwind(AssertUnwindSafe(|| step(value))) {
                Ok(Ok(next)) => Ok(next),
                Ok(Err(e)) => Err(failed(e.to_string())),
                Err(payload) => {
                    Err(failed(format!("the step panicked: {}", panic_message(payload.as_ref()))))
                }
            }
        });
        let mut covered = self.covered;
        covered.push((from, Shape::of::<V>));
        Migration {
            last: version,
            chain,
            covered,
            invalid,
            chunk_records: self.chunk_records,
            chunk_bytes: self.chunk_bytes,
            progress: self.progress,
        }
    }
}

impl<V> Migration<V> {
    /// The schema version the chain ends at: the one the view's definition must have.
    pub fn target_version(&self) -> u32 {
        self.last
    }

    /// Converts at most `records` rows of the view's table (tombstones included) per
    /// write transaction. Default = 10,000.
    pub fn chunk_records(mut self, records: usize) -> Self {
        self.chunk_records = records.max(1);
        self
    }

    /// Ends a write transaction once about `bytes` bytes of converted values are in it.
    /// Default = 4 MiB.
    pub fn chunk_bytes(mut self, bytes: usize) -> Self {
        self.chunk_bytes = bytes.max(1);
        self
    }

    /// Calls `report` on the opening thread after each transaction of the migration,
    /// with the rows done and in all. A panic in it is caught and loses that report
    /// only. Default = no reports.
    pub fn on_progress(
        mut self,
        report: impl Fn(&MigrationProgress) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(Arc::new(report));
        self
    }
}

impl<V> Clone for Migration<V> {
    fn clone(&self) -> Self {
        Migration {
            last: self.last,
            chain: Arc::clone(&self.chain),
            covered: self.covered.clone(),
            invalid: self.invalid.clone(),
            chunk_records: self.chunk_records,
            chunk_bytes: self.chunk_bytes,
            progress: self.progress.clone(),
        }
    }
}

impl<V> fmt::Debug for Migration<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from: Vec<u32> = self.covered.iter().map(|(v, _)| *v).collect();
        f.debug_struct("Migration")
            .field("from", &from)
            .field("to", &self.last)
            .field("chunk_records", &self.chunk_records)
            .field("chunk_bytes", &self.chunk_bytes)
            .finish_non_exhaustive()
    }
}

/// A value stored at `version` decoded as `T` with the default codec.
fn decode_as<T: Serialize + DeserializeOwned>(
    version: u32,
    bytes: &[u8],
) -> Result<T, StepFailure> {
    Codec::<T>::decode(&Bincode, bytes).map_err(|e| StepFailure {
        step: None,
        reason: format!(
            "the value stored at schema version {version} does not decode as {}: {e}",
            crate::base::type_names::strip_paths(std::any::type_name::<T>())
        ),
    })
}
