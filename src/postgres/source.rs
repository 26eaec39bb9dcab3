//! [`PostgresSource`]: a [`Source`] over PostgreSQL's logical replication.

use crate::api::store::Store;
use crate::postgres::config::PostgresConfig;
use crate::postgres::error::PostgresError;
use crate::postgres::pgoutput::{Decoder, StreamMessage, status_update, stream_message};
use crate::postgres::row::{Kind, Transaction};
use crate::postgres::snapshot::{Snapshot, SnapshotProgress};
use crate::postgres::wire::{Connection, deadline_after, format_lsn, ident, literal};
use crate::project::source::{BoxError, Event, Source};
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

/// The partition of the stream: one event per committed transaction, at its commit LSN.
pub const STREAM: u32 = 0;
/// The partition of the initial snapshot: its parts, at `epoch << 32 | part`.
pub const SNAPSHOT: u32 = 1;
/// The part number of the event that completes a snapshot.
pub(super) const DONE: u64 = u32::MAX as u64;

/// A callback told of the initial snapshot's progress.
type ProgressFn = Box<dyn FnMut(&SnapshotProgress) + Send>;

/// Where the source is.
pub(super) enum Phase {
    /// Not resumed yet.
    Idle,
    /// Copying the tables; `epoch` numbers this snapshot among the store's.
    Snapshot { snapshot: Box<Snapshot>, epoch: u64, part: u64 },
    /// Streaming changes on the connection.
    Streaming(Connection),
    /// The connection broke while streaming; the next poll reconnects.
    Broken,
}

/// A [`Source`] of a PostgreSQL database's committed transactions, read through a
/// logical replication slot with the built-in `pgoutput` plugin (PostgreSQL 14 or
/// newer, `wal_level = logical`).
///
/// - **One transaction, one event, one batch**: each event's payload is a whole
///   [`Transaction`], so readers never see part of a source transaction. Its position
///   is the commit LSN, stored with the batch; the slot is told of a position only once
///   the store has made it durable, and a restart resumes from the store's position.
/// - **Initial snapshot**: a store without a position first receives the
///   publication's rows as they were at the slot's creation
///   ([`Kind::Snapshot`](crate::postgres::Kind), partition [`SNAPSHOT`]), then the
///   changes after it ([`STREAM`]), with no gap and no duplicate.
/// - **Outbox**: messages emitted with `pg_logical_emit_message` arrive as
///   [`Change::Message`](crate::postgres::Change::Message) in commit order.
/// - **Failures**: a broken connection or a restarted server is reconnected with
///   backoff, and streaming resumes from the last durable position; what cannot be
///   recovered (a lost slot, bad credentials, retries exhausted) is a
///   [`PostgresError`] that says what to do.
///
/// The source's name in the store is the slot's name.
///
/// # Examples
///
/// ```no_run
/// use viewstore::postgres::{Change, PostgresConfig, PostgresSource};
/// use viewstore::{Batch, OnFailure, Projector, Store, ViewDef};
///
/// const NAMES: ViewDef<i64, String> = ViewDef::new("user_names");
///
/// let store = Store::open("views.redb")?;
/// let names = store.view(&NAMES)?;
/// let config = PostgresConfig::new("postgres://app@127.0.0.1/shop", "shop_views")?
///     .with_tables(&["users"])
///     .with_feeds(&["user_names"]);
/// let source = PostgresSource::new(&store, config);
/// let view = names.clone();
/// let running = Projector::new(&store, source, move |event, batch: &mut Batch| {
///     for change in &event.payload.changes {
///         match change {
///             Change::Insert { row } | Change::Update { row, .. } => {
///                 let name: String = row.get("name")?;
///                 batch.update_next(&view, &row.get::<i64>("id")?, move |_| Some(name))?;
///             }
///             Change::Delete { old } => {
///                 let id: i64 = old.get("id")?;
///                 batch.update_next(&view, &id, |_| viewstore::Change::Delete)?;
///             }
///             _ => {}
///         }
///     }
///     Ok(())
/// })
/// .spawn()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PostgresSource {
    pub(super) config: PostgresConfig,
    pub(super) store: Store,
    pub(super) phase: Phase,
    pub(super) decoder: Decoder,
    pub(super) on_progress: Option<ProgressFn>,
    /// The position of the last stream event delivered.
    pub(super) delivered: Option<u64>,
    /// The newest position the store has made durable (what the slot is told).
    pub(super) flushed: u64,
    /// `flushed` as last sent to the server.
    pub(super) reported: u64,
    pub(super) last_report: Instant,
    /// The server's WAL end, as last reported.
    pub(super) head: u64,
    /// Commit times of delivered transactions the store may not have applied yet.
    pub(super) commits: VecDeque<(u64, SystemTime)>,
    /// The newest commit time received.
    pub(super) newest_commit: Option<SystemTime>,
    /// When the last stream event was delivered (for heartbeats).
    pub(super) last_event: Instant,
    /// When the server last sent anything on the stream.
    pub(super) last_heard: Instant,
    pub(super) reconnects: u64,
}

impl std::fmt::Debug for PostgresSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSource")
            .field("slot", &self.config.slot)
            .field("delivered", &self.delivered)
            .field("flushed", &self.flushed)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl PostgresSource {
    /// A source for `store` as `config` says. Nothing connects until the projector
    /// starts it.
    pub fn new(store: &Store, config: PostgresConfig) -> Self {
        PostgresSource {
            config,
            store: store.clone(),
            phase: Phase::Idle,
            decoder: Decoder::default(),
            on_progress: None,
            delivered: None,
            flushed: 0,
            reported: 0,
            last_report: Instant::now(),
            head: 0,
            commits: VecDeque::new(),
            newest_commit: None,
            last_event: Instant::now(),
            last_heard: Instant::now(),
            reconnects: 0,
        }
    }

    /// Calls `f` after each part of the initial snapshot with its progress.
    #[must_use]
    pub fn on_snapshot_progress(
        mut self,
        f: impl FnMut(&SnapshotProgress) + Send + 'static,
    ) -> Self {
        self.on_progress = Some(Box::new(f));
        self
    }

    /// How many times the source reconnected while streaming.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// One attempt at a connection (the callers retry, with backoff, what is transient).
    pub(super) fn connect(&self) -> Result<Connection, PostgresError> {
        Connection::connect(&self.config.endpoint, true)
    }

    /// Runs `f` until it succeeds, fails for good, or the configured attempts are spent,
    /// waiting between attempts with a doubling backoff. The last failure of a server
    /// never reached says how many attempts were made.
    fn retrying<T>(
        &mut self,
        mut f: impl FnMut(&mut Self) -> Result<T, BoxError>,
    ) -> Result<T, BoxError> {
        let (attempts, mut wait, max) =
            (self.config.attempts, self.config.backoff, self.config.max_backoff);
        let mut attempt = 1;
        loop {
            match f(self) {
                Err(e) if is_transient(&e) && attempt < attempts => {
                    std::thread::sleep(wait);
                    wait = wait.saturating_mul(2).min(max);
                    attempt += 1;
                }
                Err(e) => {
                    return Err(match e.downcast::<PostgresError>() {
                        Ok(pe) => match *pe {
                            PostgresError::Unreachable { address, reason, .. } => {
                                Box::new(PostgresError::Unreachable {
                                    address,
                                    attempts: attempt,
                                    reason,
                                })
                            }
                            other => Box::new(other),
                        },
                        Err(other) => other,
                    });
                }
                ok => return ok,
            }
        }
    }

    /// Starts streaming on `conn` from the durable position (or the slot's own).
    pub(super) fn start_streaming(&mut self, mut conn: Connection) -> Result<(), PostgresError> {
        let c = &self.config;
        conn.start_copy_both(
            &format!(
                "START_REPLICATION SLOT {} LOGICAL {} (proto_version '1', publication_names {}, \
                 messages 'true')",
                ident(&c.slot),
                format_lsn(self.flushed),
                literal(&ident(&c.publication))
            ),
            "starting to stream",
        )?;
        self.decoder.reset();
        self.reported = self.flushed;
        self.last_report = Instant::now();
        self.last_heard = Instant::now();
        self.phase = Phase::Streaming(conn);
        Ok(())
    }

    /// Connects again after a broken stream: the slot must still be there.
    fn reconnect(&mut self) -> Result<(), BoxError> {
        self.retrying(|source| {
            let mut conn = source.connect()?;
            match source.slot_state(&mut conn)? {
                None => {
                    return Err(Box::new(PostgresError::SlotGone {
                        slot: source.config.slot.clone(),
                    }));
                }
                Some(s) if s.lost => {
                    return Err(Box::new(PostgresError::WalGone {
                        slot: source.config.slot.clone(),
                        reason: "the server removed WAL the slot still needed".into(),
                    }));
                }
                Some(_) => {}
            }
            source.start_streaming(conn)?;
            Ok(())
        })?;
        self.reconnects += 1;
        Ok(())
    }

    /// Tells the server the durable position, if it moved (or `now`).
    fn report(&mut self, now: bool) -> Result<(), PostgresError> {
        let due =
            self.flushed > self.reported && self.last_report.elapsed() >= Duration::from_millis(50);
        let periodic = self.last_report.elapsed() >= self.config.status_interval;
        if !(now || due || periodic) {
            return Ok(());
        }
        if let Phase::Streaming(conn) = &mut self.phase {
            // The periodic update asks for an answer: a server that stays silent after
            // several is gone (see `poll_stream`).
            conn.copy_send(&status_update(self.flushed, self.flushed, periodic))?;
            self.reported = self.flushed;
            self.last_report = Instant::now();
        }
        Ok(())
    }

    fn poll_snapshot(&mut self, max: usize) -> Result<Vec<Event<Transaction>>, BoxError> {
        let mut events = Vec::new();
        let started = Instant::now();
        while events.len() < max && started.elapsed() < Duration::from_millis(200) {
            let Phase::Snapshot { snapshot, epoch, part } = &mut self.phase else { break };
            let epoch = *epoch;
            let advice = if self.config.feeds.is_empty() {
                "name the views it feeds with `PostgresConfig::with_feeds` (or start from a new \
                 store file) and start the projector again"
            } else {
                "start the projector again: it clears the views it feeds and takes a new snapshot"
            };
            let interrupted = |e: PostgresError| PostgresError::SnapshotInterrupted {
                reason: format!("{e}; {advice}"),
            };
            let next = match snapshot.next_rows() {
                Err(e) if e.is_transient() && !self.config.feeds.is_empty() => {
                    // The copy's transaction is gone with its connection: clear what it
                    // wrote (after the parts in flight, which the writer applies first)
                    // and copy again from a new slot.
                    // Parts of this poll are not delivered: they would land after the
                    // clear.
                    events.clear();
                    self.phase = Phase::Broken;
                    self.clear_feeds("the connection failed during the snapshot")?;
                    self.retrying(|source| {
                        let conn = source.connect()?;
                        source.start_snapshot(conn, epoch + 1)?;
                        Ok(())
                    })?;
                    continue;
                }
                other => other.map_err(interrupted)?,
            };
            if let Some(tx) = next {
                *part += 1;
                if *part >= DONE {
                    return Err(Box::new(PostgresError::SnapshotInterrupted {
                        reason: "the snapshot has more than 2^32 parts: set a larger \
                                 `PostgresConfig::with_snapshot_chunk`"
                            .into(),
                    }));
                }
                let position = epoch << 32 | *part;
                if let Some(f) = &mut self.on_progress {
                    f(&snapshot.progress);
                }
                events.push(Event { partition: SNAPSHOT, position, payload: tx });
                continue;
            }
            let Phase::Snapshot { snapshot, .. } =
                std::mem::replace(&mut self.phase, Phase::Broken)
            else {
                break;
            };
            let mut progress = snapshot.progress.clone();
            progress.table.clear();
            progress.done = true;
            let consistent_point = snapshot.consistent_point;
            // Every row is read: a connection that fails now loses nothing (the slot
            // exists, at the copy's point), and the next poll reconnects.
            match snapshot.finish().and_then(|conn| self.start_streaming(conn)) {
                Ok(()) => {}
                Err(e) if e.is_transient() => self.phase = Phase::Broken,
                Err(e) => return Err(Box::new(e)),
            }
            if let Some(f) = &mut self.on_progress {
                f(&progress);
            }
            events.push(Event {
                partition: SNAPSHOT,
                position: epoch << 32 | DONE,
                payload: Transaction {
                    kind: Kind::Snapshot { done: true },
                    commit_lsn: 0,
                    end_lsn: 0,
                    commit_time: None,
                    xid: None,
                    changes: Vec::new(),
                },
            });
            // The stream's position starts at the slot's: what the store holds then
            // agrees with the slot even before the first transaction (after a resync,
            // it replaces the old slot's position).
            self.deliver(heartbeat(consistent_point), &mut events);
            break;
        }
        Ok(events)
    }

    fn poll_stream(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<Event<Transaction>>, BoxError> {
        let deadline = deadline_after(timeout);
        let mut events = Vec::new();
        while events.len() < max {
            if matches!(self.phase, Phase::Broken) {
                self.reconnect()?;
            }
            // Once a transaction is in hand, only what has arrived already joins it:
            // waiting for more would hold it back for as long as the stream keeps
            // coming (up to the whole timeout).
            let wait = if events.is_empty() {
                deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))
            } else {
                Duration::ZERO
            };
            let Phase::Streaming(conn) = &mut self.phase else { break };
            let received = match conn.copy_recv(wait) {
                Ok(Some(payload)) => {
                    self.last_heard = Instant::now();
                    payload
                }
                Ok(None)
                    if self.last_heard.elapsed()
                        > self.config.status_interval.saturating_mul(3) =>
                {
                    // Three periodic updates asked for an answer and none came: the
                    // server is gone without closing the connection.
                    self.phase = Phase::Broken;
                    continue;
                }
                Ok(None) => break,
                Err(e) if e.is_transient() => {
                    self.phase = Phase::Broken;
                    self.decoder.reset();
                    continue;
                }
                Err(e) => return Err(Box::new(e)),
            };
            match stream_message(&received)? {
                StreamMessage::Data { wal_end, payload } => {
                    self.head = self.head.max(wal_end);
                    if let Some(tx) = self.decoder.take(payload)? {
                        self.deliver(tx, &mut events);
                    }
                }
                StreamMessage::Keepalive { wal_end, reply } => {
                    self.head = self.head.max(wal_end);
                    self.heartbeat(wal_end, &mut events);
                    if reply && self.report(true).is_err() {
                        self.phase = Phase::Broken;
                    }
                }
            }
            if Instant::now() >= deadline && !events.is_empty() {
                break;
            }
        }
        if self.report(false).is_err() {
            // The next poll reconnects; these events stand.
            self.phase = Phase::Broken;
        }
        Ok(events)
    }

    /// Adds a received transaction to `events`, unless it was delivered already.
    fn deliver(&mut self, tx: Transaction, events: &mut Vec<Event<Transaction>>) {
        let position = tx.end_lsn;
        if self.delivered.is_some_and(|d| position <= d) || position < self.flushed {
            return;
        }
        if let Some(time) = tx.commit_time {
            self.commits.push_back((position, time));
            self.newest_commit = Some(self.newest_commit.map_or(time, |n| n.max(time)));
        }
        self.delivered = Some(position);
        self.last_event = Instant::now();
        events.push(Event { partition: STREAM, position, payload: tx });
    }

    /// While idle, an empty event at the server's position, so that the slot's position
    /// follows the server's even when no change is for this publication.
    fn heartbeat(&mut self, wal_end: u64, events: &mut Vec<Event<Transaction>>) {
        let ahead = self.delivered.map_or(wal_end > self.flushed, |d| wal_end > d);
        if ahead
            && !self.decoder.in_transaction()
            && self.last_event.elapsed() >= self.config.heartbeat_interval
        {
            self.deliver(heartbeat(wal_end), events);
        }
    }
}

/// An empty event at the server's position `lsn`.
fn heartbeat(lsn: u64) -> Transaction {
    Transaction {
        kind: Kind::Heartbeat,
        commit_lsn: lsn,
        end_lsn: lsn,
        commit_time: None,
        xid: None,
        changes: Vec::new(),
    }
}

/// Whether a boxed error is a transient failure of the connection.
fn is_transient(e: &BoxError) -> bool {
    e.downcast_ref::<PostgresError>().is_some_and(PostgresError::is_transient)
}

impl Drop for PostgresSource {
    /// Tells the server the last durable position and ends the stream, so that the slot
    /// is up to date and free for the next start.
    fn drop(&mut self) {
        if let Phase::Streaming(conn) = &mut self.phase {
            let _ = conn.copy_send(&status_update(self.flushed, self.flushed, false));
            conn.end_copy(Duration::from_secs(2));
        }
    }
}

impl Source for PostgresSource {
    type Payload = Transaction;

    fn name(&self) -> &str {
        &self.config.slot
    }

    fn resume(&mut self, positions: &[(u32, u64)]) -> Result<(), BoxError> {
        // The server may go away in the middle (a restart): every step of a resume can
        // be taken again, so a broken connection starts it over, with backoff.
        self.retrying(|source| source.try_resume(positions))
    }

    fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<Event<Self::Payload>>, BoxError> {
        match &self.phase {
            Phase::Idle => Err(Box::new(PostgresError::protocol("polled before resume"))),
            Phase::Snapshot { .. } => self.poll_snapshot(max),
            Phase::Streaming(_) | Phase::Broken => self.poll_stream(max, timeout),
        }
    }

    fn acknowledge(&mut self, partition: u32, position: u64) -> Result<(), BoxError> {
        if partition != STREAM || position <= self.flushed {
            return Ok(());
        }
        self.flushed = position;
        while self.commits.front().is_some_and(|&(at, _)| at <= position) {
            self.commits.pop_front();
        }
        if self.report(false).is_err() {
            // The next poll reconnects; the position is sent then.
            self.phase = Phase::Broken;
        }
        Ok(())
    }

    fn heads(&self) -> Vec<(u32, u64)> {
        let head = self.head.max(self.delivered.unwrap_or(0));
        if head == 0 { Vec::new() } else { vec![(STREAM, head)] }
    }

    fn time_behind(&self, partition: u32, applied: Option<u64>) -> Option<Duration> {
        if partition != STREAM {
            return None;
        }
        let newest = self.newest_commit?;
        let first_unapplied = self.commits.iter().find(|&&(at, _)| applied.is_none_or(|a| at > a));
        Some(match first_unapplied {
            Some(&(_, time)) => newest.duration_since(time).unwrap_or_default(),
            None => Duration::ZERO,
        })
    }
}
