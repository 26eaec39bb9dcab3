//! Replicas: a store opened with [`StoreBuilder::replica`](crate::StoreBuilder::replica)
//! takes the groups of its primary's change feed, each whole and at the LSN it has on
//! the primary, through a [`Replicator`] that knows how to decode the values of each
//! replicated view.

use crate::api::batch::Batch;
use crate::api::store::Store;
use crate::api::view::View;
use crate::base::codec::Codec;
use crate::base::error::{CodecError, Error, Result};
use crate::base::feed::{ChangeKind, FeedChange, FeedGroup};
use crate::base::panic::panic_message;
use crate::base::version::Lsn;
use crate::engine::ticket::Ticket;
use crate::keys::{KeyBuf, decode_key, render_bytes, render_key};
use crate::schema::op::{Op, OpKind};
use crate::schema::registration::{ViewKey, ViewValue};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// Turns one change of a replicated view into the operation that repeats it.
type ToOp = Box<dyn Fn(&FeedChange) -> Result<OpKind> + Send + Sync>;

struct Replicated {
    id: usize,
    to_op: ToOp,
}

/// Applies groups of a primary store's change feed to a replica store, each whole, in
/// one transaction, at the LSN it has on the primary: the replica goes through the same
/// states at the same LSNs, so a client that wrote through the primary can
/// [`wait_for`](Store::wait_for) its receipt's LSN on the replica and read its write.
///
/// The primary's views must record [`FeedMode::Values`](crate::FeedMode::Values); the
/// replica opens the same views (same types, codec and indexes; its indexes are kept
/// from the replicated values) and registers each with [`view`](Replicator::view):
/// every view with a feed on the primary, since a group that changes a view the
/// replicator does not hold is refused. Each change sets the record as the primary left
/// it (live at its version with its value, a tombstone at its version, or absent),
/// whatever the replica held: the primary decided. Views with sources are not
/// replicated: the feed holds a record's largest version, not its sources'. A group at an LSN the replica has already reached is skipped
/// whole (its receipt says [`redelivery`](crate::Receipt::redelivery)), so groups may
/// be delivered more than once. Groups must arrive in LSN order; a group after a gap is
/// applied (groups without changes to replicated views leave gaps on the primary's
/// feed), so a transport that can lose a group must say so itself.
///
/// Any transport carries the groups: [`Store::feed_after`] on the primary gives them,
/// the `kafka` feature ships them through a compacted topic.
///
/// # Examples
///
/// ```
/// use viewstore::{FeedMode, Replicator, Store, ViewDef};
///
/// const PAGES: ViewDef<u64, String> = ViewDef::new("pages").with_feed(FeedMode::Values);
/// # let dir = tempfile::tempdir()?;
/// let primary = Store::open(dir.path().join("primary.redb"))?;
/// let replica = Store::builder(dir.path().join("replica.redb")).replica(true).open()?;
/// let (pages, replica_pages) = (primary.view(&PAGES)?, replica.view(&PAGES)?);
/// let mut replicator = Replicator::new(&replica);
/// replicator.view(&replica_pages)?;
///
/// let lsn = pages.put(&1, "hello".to_string(), 1)?.lsn;
/// for group in primary.feed_after(viewstore::Lsn::new(0))?.take(1) {
///     replicator.apply(&*group?)?.wait()?;
/// }
/// replica.wait_for(lsn)?;
/// assert_eq!(replica_pages.get(&1).as_deref().map(String::as_str), Some("hello"));
/// assert_eq!(replica.lsn(), primary.lsn());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Replicator {
    store: Store,
    views: HashMap<Arc<str>, Replicated>,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut views: Vec<&str> = self.views.keys().map(|v| &**v).collect();
        views.sort_unstable();
        f.debug_struct("Replicator").field("store", &self.store).field("views", &views).finish()
    }
}

impl Replicator {
    /// A replicator into `store` (opened with
    /// [`replica(true)`](crate::StoreBuilder::replica)), with no view yet.
    pub fn new(store: &Store) -> Self {
        Replicator { store: store.clone(), views: HashMap::new() }
    }

    /// The store it applies to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Replicates `view`: changes of the primary's view of the same name are decoded
    /// with its key type and codec and applied to it.
    ///
    /// # Errors
    ///
    /// [`Error::ForeignView`] for a view of another store; [`Error::Replication`] for a
    /// view with sources.
    pub fn view<K, V, C>(&mut self, view: &View<K, V, C>) -> Result<&mut Self>
    where
        K: ViewKey,
        V: ViewValue,
        C: Codec<V> + Clone,
    {
        if view.store.id() != self.store.id() {
            return Err(Error::ForeignView { view: view.name().to_owned() });
        }
        if !view.sources.is_empty() {
            return Err(self.error(
                Some(view.name()),
                "a view with sources cannot be replicated: the feed holds only the largest \
                 of a record's source versions",
            ));
        }
        let name = Arc::clone(&view.name);
        let codec = view.codec.clone();
        let file = self.store.path().to_owned();
        let to_op: ToOp = Box::new(move |change: &FeedChange| {
            change_op::<K, V, C>(&name, &codec, change).map_err(|reason| match reason {
                Refused::Decode(e) => e,
                Refused::Other(reason) => {
                    Error::Replication { file: file.clone(), view: Some(name.to_string()), reason }
                }
            })
        });
        self.views.insert(Arc::clone(&view.name), Replicated { id: view.id, to_op });
        Ok(self)
    }

    /// Queues `group` for the replica's writer: it commits alone, at `group.lsn`, or is
    /// skipped whole when the replica has reached that LSN.
    ///
    /// # Errors
    ///
    /// [`Error::Replication`] for a change of a view not registered here, or a live
    /// change without its value (a view with [`FeedMode::Keys`](crate::FeedMode::Keys)
    /// on the primary); [`Error::Decode`] for a key or value that does not decode.
    /// Nothing is queued. The writer fails the group with [`Error::Replication`] when
    /// the store is not a replica. Otherwise as [`Store::submit`].
    pub fn apply(&self, group: &FeedGroup) -> Result<Ticket> {
        self.apply_at(group, None, None)
    }

    /// As [`apply`](Replicator::apply), storing `position` of `source`'s `partition`
    /// (where the group was read from its transport, say a topic's offset) in the same
    /// transaction, read back with [`Store::position`]. A group skipped because the
    /// replica has its LSN does not move the stored position.
    ///
    /// # Errors
    ///
    /// As [`apply`](Replicator::apply), and [`Error::InvalidPosition`] for an invalid
    /// source name.
    pub fn apply_with_position(
        &self,
        group: &FeedGroup,
        source: &str,
        partition: u32,
        position: u64,
    ) -> Result<Ticket> {
        self.apply_at(group, Some((source, partition, position)), None)
    }

    /// As [`apply_with_position`](Replicator::apply_with_position), applying only once
    /// the replica has reached `after` (the group submitted before this one), so that a
    /// sender may keep several groups in flight: when one fails, none after it commits
    /// (each fails with [`Error::Replication`]), and the sender starts again from the
    /// stored position.
    ///
    /// # Errors
    ///
    /// As [`apply_with_position`](Replicator::apply_with_position).
    pub fn apply_after(
        &self,
        group: &FeedGroup,
        (source, partition, position): (&str, u32, u64),
        after: Option<Lsn>,
    ) -> Result<Ticket> {
        self.apply_at(group, Some((source, partition, position)), after)
    }

    fn apply_at(
        &self,
        group: &FeedGroup,
        position: Option<(&str, u32, u64)>,
        after: Option<Lsn>,
    ) -> Result<Ticket> {
        let mut batch = Batch::new();
        for change in &group.changes {
            let Some(view) = self.views.get(&change.view) else {
                return Err(self.error(
                    Some(&change.view),
                    &format!(
                        "the group at lsn {} changes a view this replicator does not hold \
                         (register it with `Replicator::view`)",
                        group.lsn
                    ),
                ));
            };
            let kind = (view.to_op)(change)?;
            batch.bytes += change.key.len() + change.value.as_ref().map_or(0, |v| v.len()) + 16;
            batch.ops.push(Op {
                view: view.id,
                source: None,
                key: KeyBuf::from_slice(&change.key),
                kind,
            });
        }
        if let Some((source, partition, at)) = position {
            batch.set_position(source, partition, at)?;
        }
        batch.store = Some(self.store.id());
        batch.replicated = Some(group.lsn);
        batch.replicated_after = after;
        self.store.submit(batch)
    }

    fn error(&self, view: Option<&str>, reason: &str) -> Error {
        Error::Replication {
            file: self.store.path().to_owned(),
            view: view.map(str::to_owned),
            reason: reason.to_owned(),
        }
    }
}

enum Refused {
    Decode(Error),
    Other(String),
}

/// The operation that repeats `change` (live or tombstone) on a view of `K`, `V`.
fn change_op<K: ViewKey, V: ViewValue, C: Codec<V>>(
    view: &str,
    codec: &C,
    change: &FeedChange,
) -> std::result::Result<OpKind, Refused> {
    let key = &change.key;
    let decoded_key = catch_unwind(|| decode_key::<K>(key)).unwrap_or_else(|payload| {
        Err(crate::keys::KeyCodecError(format!(
            "decoding panicked: {}",
            panic_message(payload.as_ref())
        )))
    });
    if let Err(e) = decoded_key {
        return Err(Refused::Decode(Error::decode(view, render_bytes(key), e)));
    }
    let version = change.version;
    match change.kind {
        ChangeKind::Live => {
            let Some(bytes) = change.value.as_deref() else {
                return Err(Refused::Other(format!(
                    "the live change of key {} at version {version} carries no value: the \
                     primary's view must record FeedMode::Values",
                    render_key::<K>(key)
                )));
            };
            let decoded =
                catch_unwind(AssertUnwindSafe(|| codec.decode(bytes))).unwrap_or_else(|payload| {
                    Err(CodecError::from(format!(
                        "the codec panicked: {}",
                        panic_message(payload.as_ref())
                    )))
                });
            let value = decoded
                .map_err(|e| Refused::Decode(Error::decode(view, render_key::<K>(key), e)))?;
            Ok(OpKind::SetLive { version, bytes: bytes.to_vec(), value: Arc::new(value) })
        }
        ChangeKind::Tombstone => Ok(OpKind::SetTombstone { version }),
        ChangeKind::Purged => Ok(OpKind::Remove),
    }
}
