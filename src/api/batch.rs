//! `Batch`: operations on one or more views, committed atomically.

use crate::api::view::View;
use crate::base::codec::Codec;
use crate::base::error::{Error, Result};
use crate::base::limits::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
use crate::base::panic::panic_message;
use crate::base::version::{Change, Lsn, Version};
use crate::keys::{KeyBuf, key_bytes, render_key};
use crate::schema::names::check_source_name;
use crate::schema::op::{Fallback, Follows, Op, OpKind, Position, UpdateFn, UpdateResult};
use crate::schema::registration::{ViewKey, ViewValue};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// Operations on one or more views of one store, committed atomically: all of them
/// become durable and visible together, or none does.
///
/// Keys and values are encoded when they are added, so an oversized or unencodable
/// write is refused here, on the caller's thread, and never fails a group.
///
/// The version rules below are those of a view without sources. For a view with
/// sources, every operation is attributed to the source of the handle it is given
/// ([`View::source`]) and compares versions per source: see
/// [`ViewDef::with_sources`](crate::ViewDef::with_sources). Every operation on such a
/// view through a plain handle is refused with [`Error::SourceRequired`].
///
/// # Examples
///
/// ```
/// use viewstore::{Batch, Store, ViewDef};
///
/// const NAMES: ViewDef<u64, String> = ViewDef::new("names");
/// const COUNTS: ViewDef<String, u64> = ViewDef::new("counts");
///
/// # let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path().join("s.redb"))?;
/// let (names, counts) = (store.view(&NAMES)?, store.view(&COUNTS)?);
///
/// let mut batch = Batch::new();
/// batch.put(&names, &1, "ada".to_string(), 10)?;
/// batch.update(&counts, &"users".to_string(), 10, |n| Some(n.copied().unwrap_or(0) + 1))?;
/// let receipt = store.submit(batch)?.wait()?;
/// assert!(receipt.outcomes.iter().all(|o| o.is_applied()));
/// assert_eq!(counts.get(&"users".to_string()).as_deref(), Some(&1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct Batch {
    pub(crate) store: Option<u64>,
    pub(crate) ops: Vec<Op>,
    pub(crate) bytes: usize,
    pub(crate) positions: Vec<Position>,
    pub(crate) fallback: Option<Fallback>,
    /// For a group replicated from another store's feed: its LSN there.
    pub(crate) replicated: Option<Lsn>,
    /// For a replicated group: the LSN the store must have reached first.
    pub(crate) replicated_after: Option<Lsn>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("ops", &self.ops.len())
            .field("bytes", &self.bytes)
            .field("positions", &self.positions)
            .finish_non_exhaustive()
    }
}

pub(crate) fn encode_key_for<K: ViewKey>(view_name: &str, key: &K) -> Result<KeyBuf> {
    let key = key_bytes(key)
        .map_err(|e| Error::KeyEncoding { view: view_name.to_owned(), reason: e.0 })?;
    if key.as_bytes().len() > MAX_KEY_BYTES {
        return Err(Error::KeyTooLarge {
            view: view_name.to_owned(),
            len: key.as_bytes().len(),
            max: MAX_KEY_BYTES,
        });
    }
    Ok(key)
}

/// Encodes `value`; `from_update` when it is an `update` closure's result, encoded on
/// the writer thread (its errors then fail only the batch).
pub(crate) fn encode_value<K: ViewKey, V, C: Codec<V>>(
    view_name: &str,
    codec: &C,
    key: &KeyBuf,
    value: &V,
    from_update: bool,
) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    encode_value_into::<K, V, C>(view_name, codec, key, value, from_update, &mut bytes)?;
    Ok(bytes)
}

/// [`encode_value`], appending the value's bytes to `out`; on `Err`, `out` may hold
/// part of them.
pub(crate) fn encode_value_into<K: ViewKey, V, C: Codec<V>>(
    view_name: &str,
    codec: &C,
    key: &KeyBuf,
    value: &V,
    from_update: bool,
    out: &mut Vec<u8>,
) -> Result<()> {
    let start = out.len();
    // The codec and the value's `Serialize` are user code, run on the writer thread for
    // the result of an `update` closure: a panic fails the batch with an encode error.
    let encoded =
        catch_unwind(AssertUnwindSafe(|| codec.encode(value, out))).unwrap_or_else(|payload| {
            Err(format!("the codec panicked: {}", panic_message(payload.as_ref())).into())
        });
    encoded.map_err(|e| Error::Encode {
        view: view_name.to_owned(),
        key: render_key::<K>(key.as_bytes()),
        source: Arc::new(e),
        from_update,
    })?;
    let len = out.len() - start;
    if len > MAX_VALUE_BYTES {
        return Err(Error::ValueTooLarge {
            view: view_name.to_owned(),
            key: render_key::<K>(key.as_bytes()),
            len,
            max: MAX_VALUE_BYTES,
            from_update,
        });
    }
    Ok(())
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch has no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Records that this batch is the effect of `source`'s `partition` up to
    /// `position` (a log offset, a WAL LSN, a sequence number): the position is stored
    /// in the same transaction as the batch's writes, and read back with
    /// [`Store::position`](crate::Store::position). A batch whose position is not
    /// beyond the stored one is a redelivery: it is skipped whole, each outcome is
    /// [`Outcome::Redelivered`](crate::Outcome::Redelivered) and its receipt's
    /// [`redelivery`](crate::Receipt::redelivery) is set. So a consumer of a log that
    /// resumes from the stored positions applies each event exactly once, `update`
    /// closures that count included.
    ///
    /// A batch may carry positions of several partitions: it is a redelivery when all of
    /// them were reached, and fails with [`Error::PartialRedelivery`] when only some
    /// were. A batch with positions and no operation still stores its positions.
    ///
    /// # Examples
    ///
    /// ```
    /// use viewstore::{Batch, Store, ViewDef};
    ///
    /// const FOLLOWERS: ViewDef<u64, u64> = ViewDef::new("followers");
    /// # let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("s.redb"))?;
    /// let followers = store.view(&FOLLOWERS)?;
    ///
    /// // The event at offset 41 of partition 3 of the "follows" log: user 7 gained one.
    /// let event = |batch: &mut Batch| -> viewstore::Result<()> {
    ///     batch.update_next(&followers, &7, |n| Some(n.copied().unwrap_or(0) + 1))?;
    ///     batch.set_position("follows", 3, 41)?;
    ///     Ok(())
    /// };
    /// let mut first = Batch::new();
    /// event(&mut first)?;
    /// store.submit(first)?.wait()?;
    /// // Delivered again after a restart: skipped, the count stays right.
    /// let mut again = Batch::new();
    /// event(&mut again)?;
    /// assert!(store.submit(again)?.wait()?.redelivery);
    /// assert_eq!(followers.get(&7).as_deref(), Some(&1));
    /// assert_eq!(store.position("follows", 3)?, Some(41));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPosition`] for an invalid source name (1 to 200 bytes, no
    /// control characters) or a second position for the same partition; the batch is
    /// unchanged.
    pub fn set_position(
        &mut self,
        source: &str,
        partition: u32,
        position: u64,
    ) -> Result<&mut Self> {
        self.add_position(source, partition, position, Follows::Any)
    }

    /// Like [`set_position`](Batch::set_position), and the batch applies only if the
    /// stored position of the partition is `follows` (`None`: nothing stored yet);
    /// otherwise it fails with [`Error::PositionGap`] (unless it is a redelivery). A
    /// consumer that keeps several batches of a partition in flight chains them this
    /// way, each following the one before, so that when one fails, none after it
    /// commits and the stored position never skips it.
    ///
    /// # Errors
    ///
    /// As [`set_position`](Batch::set_position).
    pub fn set_position_after(
        &mut self,
        source: &str,
        partition: u32,
        position: u64,
        follows: Option<u64>,
    ) -> Result<&mut Self> {
        self.add_position(source, partition, position, Follows::Exactly(follows))
    }

    fn add_position(
        &mut self,
        source: &str,
        partition: u32,
        position: u64,
        follows: Follows,
    ) -> Result<&mut Self> {
        check_source_name(source)?;
        if self.positions.iter().any(|p| &*p.source == source && p.partition == partition) {
            return Err(Error::InvalidPosition {
                source: source.to_owned(),
                reason: format!("the batch already has a position for partition {partition}"),
            });
        }
        if let Follows::Exactly(Some(previous)) = follows
            && previous >= position
        {
            return Err(Error::InvalidPosition {
                source: source.to_owned(),
                reason: format!(
                    "partition {partition}: position {position} cannot follow position {previous}"
                ),
            });
        }
        self.bytes += source.len() + 24;
        let at = position;
        self.positions.push(Position { source: Arc::from(source), partition, at, follows });
        Ok(self)
    }

    /// Adds a position that follows `follows`, as [`set_position_after`] does, for a
    /// source name checked already (a projector's, shared by all its batches).
    ///
    /// [`set_position_after`]: Batch::set_position_after
    pub(crate) fn chain_position(
        &mut self,
        source: &Arc<str>,
        partition: u32,
        at: u64,
        follows: Option<u64>,
    ) -> Result<()> {
        if follows.is_some_and(|f| f >= at)
            || self.positions.iter().any(|p| p.source == *source && p.partition == partition)
        {
            // The general path words the error.
            return self.add_position(source, partition, at, Follows::Exactly(follows)).map(|_| ());
        }
        self.bytes += source.len() + 24;
        let source = Arc::clone(source);
        self.positions.push(Position { source, partition, at, follows: Follows::Exactly(follows) });
        Ok(())
    }

    /// The operations to commit instead of this batch's own when they fail on their
    /// own (`ErrorKind::Batch`: a unique violation, a panicking closure), built on the
    /// writer thread from the error; the batch's positions are stored with them. Used
    /// to write a dead letter in the same place of the log as the failed event.
    pub(crate) fn set_fallback(&mut self, fallback: Fallback) {
        self.fallback = Some(fallback);
    }

    fn push<K, V, C>(&mut self, view: &View<K, V, C>, key: KeyBuf, kind: OpKind) -> Result<()> {
        if view.source.is_none() && !view.sources.is_empty() {
            return Err(Error::SourceRequired { view: view.name().to_owned() });
        }
        match self.store {
            Some(id) if id != view.store.id() => {
                return Err(Error::ForeignView { view: view.name().to_owned() });
            }
            _ => self.store = Some(view.store.id()),
        }
        let value_len = match &kind {
            OpKind::Put { bytes, .. } | OpKind::CompareAndSet { bytes, .. } => bytes.len(),
            _ => 0,
        };
        self.bytes += key.as_bytes().len() + value_len + 16;
        self.ops.push(Op { view: view.id, source: view.source, key, kind });
        Ok(())
    }

    /// Writes `value` at `version`: applied only if `version` is strictly greater than the
    /// stored version (of a live record or a tombstone), otherwise the outcome is
    /// [`Outcome::Stale`](crate::Outcome::Stale).
    ///
    /// # Errors
    ///
    /// The key or value cannot be encoded or is over the size limits; the batch is
    /// unchanged.
    pub fn put<K: ViewKey, V: ViewValue, C: Codec<V> + Clone>(
        &mut self,
        view: &View<K, V, C>,
        key: &K,
        value: V,
        version: Version,
    ) -> Result<&mut Self> {
        let key = encode_key_for(view.name(), key)?;
        let bytes = encode_value::<K, V, C>(view.name(), &view.codec, &key, &value, false)?;
        self.push(view, key, OpKind::Put { version, bytes, value: Arc::new(value) })?;
        Ok(self)
    }

    /// Deletes `key` at `version`, leaving a tombstone with that version so that a late,
    /// older put cannot bring the record back. Applied only if `version` is strictly
    /// greater than the stored version; deleting an absent key still leaves the
    /// tombstone.
    ///
    /// # Errors
    ///
    /// The key cannot be encoded or is over the size limit.
    pub fn delete<K: ViewKey, V: ViewValue, C>(
        &mut self,
        view: &View<K, V, C>,
        key: &K,
        version: Version,
    ) -> Result<&mut Self> {
        let key = encode_key_for(view.name(), key)?;
        self.push(view, key, OpKind::Delete { version })?;
        Ok(self)
    }

    /// Writes `value` at `version` only if the live record's version equals `expected`
    /// (`None`: there is no live record); otherwise the outcome is
    /// [`Outcome::Conflict`](crate::Outcome::Conflict). A matching write must still be
    /// strictly newer than the stored version, tombstones included.
    ///
    /// # Errors
    ///
    /// The key or value cannot be encoded or is over the size limits.
    pub fn compare_and_set<K: ViewKey, V: ViewValue, C: Codec<V> + Clone>(
        &mut self,
        view: &View<K, V, C>,
        key: &K,
        expected: Option<Version>,
        version: Version,
        value: V,
    ) -> Result<&mut Self> {
        let key = encode_key_for(view.name(), key)?;
        let bytes = encode_value::<K, V, C>(view.name(), &view.codec, &key, &value, false)?;
        let kind = OpKind::CompareAndSet { expected, version, bytes, value: Arc::new(value) };
        self.push(view, key, kind)?;
        Ok(self)
    }

    /// Deletes `key` at `version` only if its live record's version equals `expected`;
    /// otherwise (another version, or no live record) the outcome is
    /// [`Outcome::Conflict`](crate::Outcome::Conflict). A matching delete must still be
    /// strictly newer than the stored version, else it is
    /// [`Outcome::Stale`](crate::Outcome::Stale). It leaves a tombstone at `version`,
    /// as [`delete`](Batch::delete) does.
    ///
    /// # Errors
    ///
    /// The key cannot be encoded or is over the size limit.
    pub fn compare_and_delete<K: ViewKey, V: ViewValue, C>(
        &mut self,
        view: &View<K, V, C>,
        key: &K,
        expected: Version,
        version: Version,
    ) -> Result<&mut Self> {
        let key = encode_key_for(view.name(), key)?;
        self.push(view, key, OpKind::CompareAndDelete { expected, version })?;
        Ok(self)
    }

    /// Runs `f` inside the writer on the current value of `key` (`None` when there is no
    /// live record) and applies the [`Change`] it returns at `version`:
    /// [`Change::Put`] writes a value, [`Change::Delete`] deletes the record (leaving a
    /// tombstone at `version`, as [`delete`](Batch::delete) does), [`Change::Keep`]
    /// leaves it as it is ([`Outcome::Unchanged`](crate::Outcome::Unchanged)). The
    /// closure may return an `Option<V>` instead: `Some(value)` puts, `None` keeps. It
    /// runs only if `version` is strictly newer than the stored version. No update is
    /// lost between concurrent writers: the closure sees every write committed before
    /// it.
    ///
    /// A panicking closure fails this batch with [`Error::UpdatePanicked`] and nothing
    /// else.
    ///
    /// # Errors
    ///
    /// The key cannot be encoded or is over the size limit.
    pub fn update<K, V, C, F, R>(
        &mut self,
        view: &View<K, V, C>,
        key: &K,
        version: Version,
        f: F,
    ) -> Result<&mut Self>
    where
        K: ViewKey,
        V: ViewValue,
        C: Codec<V> + Clone,
        F: FnOnce(Option<&V>) -> R + Send + 'static,
        R: Into<Change<V>>,
    {
        let key = encode_key_for(view.name(), key)?;
        let f = update_fn(view, &key, f);
        self.push(view, key, OpKind::Update { version, f })?;
        Ok(self)
    }

    /// Like [`update`](Batch::update), at the version after the stored one (of a live
    /// record or a tombstone; 1 for a key never written), whatever it is: the record's
    /// version counts its changes. For writes whose source has no version of its own
    /// and whose exactly-once comes from source positions
    /// ([`set_position`](Batch::set_position)): counters fed by a log, say.
    ///
    /// # Examples
    ///
    /// ```
    /// use viewstore::{Batch, Store, ViewDef};
    ///
    /// const VISITS: ViewDef<String, u64> = ViewDef::new("visits");
    /// # let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("s.redb"))?;
    /// let visits = store.view(&VISITS)?;
    /// for offset in 0..3 {
    ///     let mut batch = Batch::new();
    ///     batch.update_next(&visits, &"/home".to_string(), |n| Some(n.copied().unwrap_or(0) + 1))?;
    ///     batch.set_position("clicks", 0, offset)?;
    ///     store.submit(batch)?.wait()?;
    /// }
    /// assert_eq!(visits.get_versioned(&"/home".to_string()).map(|(v, n)| (v, *n)), Some((3, 3)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The key cannot be encoded or is over the size limit.
    pub fn update_next<K, V, C, F, R>(
        &mut self,
        view: &View<K, V, C>,
        key: &K,
        f: F,
    ) -> Result<&mut Self>
    where
        K: ViewKey,
        V: ViewValue,
        C: Codec<V> + Clone,
        F: FnOnce(Option<&V>) -> R + Send + 'static,
        R: Into<Change<V>>,
    {
        let key = encode_key_for(view.name(), key)?;
        let f = update_fn(view, &key, f);
        self.push(view, key, OpKind::UpdateNext { f })?;
        Ok(self)
    }

    /// Removes the tombstones of `view` whose version is below `below`. After this, a
    /// put older than a purged tombstone can apply again, so purge only below versions
    /// that can no longer arrive. Through a handle of one source of a view with
    /// sources, only the tombstones that source deleted last, below `below` in its
    /// version.
    pub fn purge_tombstones<K, V, C>(
        &mut self,
        view: &View<K, V, C>,
        below: Version,
    ) -> Result<&mut Self> {
        self.push(view, KeyBuf::from_slice(&[]), OpKind::PurgeTombstones { below })?;
        Ok(self)
    }
}

/// An `update` closure made type-erased for the writer: run under `catch_unwind`, its
/// result encoded.
fn update_fn<K, V, C, F, R>(view: &View<K, V, C>, key: &KeyBuf, f: F) -> UpdateFn
where
    K: ViewKey,
    V: ViewValue,
    C: Codec<V> + Clone,
    F: FnOnce(Option<&V>) -> R + Send + 'static,
    R: Into<Change<V>>,
{
    let name: Arc<str> = Arc::clone(&view.name);
    let codec = view.codec.clone();
    let key_for_errors = key.clone();
    Box::new(move |current| {
        let current = current.and_then(|c| c.downcast_ref::<V>());
        match catch_unwind(AssertUnwindSafe(|| f(current).into())) {
            Err(payload) => UpdateResult::Failed(Error::UpdatePanicked {
                view: name.to_string(),
                key: render_key::<K>(key_for_errors.as_bytes()),
                message: panic_message(payload.as_ref()),
            }),
            Ok(Change::Keep) => UpdateResult::Unchanged,
            Ok(Change::Delete) => UpdateResult::Delete,
            Ok(Change::Put(value)) => {
                match encode_value::<K, V, C>(&name, &codec, &key_for_errors, &value, true) {
                    Ok(bytes) => UpdateResult::Value { bytes, value: Arc::new(value) },
                    Err(e) => UpdateResult::Failed(e),
                }
            }
        }
    })
}
