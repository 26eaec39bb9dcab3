//! A replica that follows a changelog topic: the thread that reads the topic's records,
//! puts each group back together and applies it whole, at its primary's LSN, through a
//! [`Replicator`], storing its place in the topic in the same transaction.

use crate::api::replicate::Replicator;
use crate::base::feed::{FeedChange, FeedGroup};
use crate::base::version::Lsn;
use crate::engine::ticket::Ticket;
use crate::kafka::changelog::{ChangelogConfig, ChangelogError, broker};
use crate::kafka::record::{ChangelogRecord, decode_record};
use crate::kafka::worker::Worker;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A thread that keeps a replica store (opened with
/// [`replica(true)`](crate::StoreBuilder::replica)) up to date from a changelog topic
/// that a [`ChangelogPublisher`](crate::kafka::ChangelogPublisher) fills.
///
/// A new replica reads the topic from its start: on a compacted topic, the latest state
/// of each record (a group some of whose records were compacted away is applied with
/// the records left, which later groups complete), then every group whole. A replica
/// restarted after a crash goes on after the last group it applied: its place in the
/// topic ([`ChangelogConfig::position_source`], partition 0) is stored in the same
/// transaction as each group. Groups published twice (a publisher restarted mid-group)
/// are applied once. A client that wrote through the primary reads its write on the
/// replica after [`Store::wait_for`](crate::Store::wait_for) of its receipt's LSN.
pub struct ChangelogFollower {
    worker: Worker<ChangelogError>,
}

impl std::fmt::Debug for ChangelogFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangelogFollower").field("finished", &self.is_finished()).finish()
    }
}

impl ChangelogFollower {
    /// Starts following the topic of `config` into `replicator`'s store.
    ///
    /// # Errors
    ///
    /// [`ChangelogError::Broker`] when the consumer cannot be made or assigned;
    /// [`ChangelogError::Store`] when the stored place cannot be read. Later failures
    /// end the thread: [`stop`](ChangelogFollower::stop) returns them.
    pub fn start(replicator: Replicator, config: &ChangelogConfig) -> Result<Self, ChangelogError> {
        let topic = config.topic().to_owned();
        let source = config.position_source();
        let stored = replicator.store().position(&source, 0)?;
        let consumer: BaseConsumer = config
            .client()
            .set("group.id", "viewstore-replica")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "10")
            // A stored place outside the topic is an error; a new replica starts at
            // the earliest record the topic still has.
            .set("auto.offset.reset", if stored.is_some() { "error" } else { "earliest" })
            .create()
            .map_err(|e| broker(&topic, e))?;
        let start = stored.map_or(0, |offset| offset.saturating_add(1));
        let start = i64::try_from(start).unwrap_or(i64::MAX);
        if stored.is_some() {
            // A topic that ends before the stored place was made again, or lost its
            // records: some brokers answer such a fetch with nothing, never an error.
            let (_, high) = consumer
                .fetch_watermarks(&topic, 0, config.timeout())
                .map_err(|e| broker(&topic, e))?;
            if high < start {
                return Err(ChangelogError::OffsetGone { topic, wanted: start });
            }
        }
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, 0, Offset::Offset(start))
            .map_err(|e| broker(&topic, e))?;
        consumer.assign(&assignment).map_err(|e| broker(&topic, e))?;
        let named = topic.clone();
        let panicked = || broker("", "the replica thread panicked");
        let worker = Worker::start("viewstore-replica", panicked, move |stop| {
            let follow = Follow {
                replicator,
                consumer,
                topic,
                source,
                start,
                stop,
                pending: None,
                tickets: VecDeque::new(),
                reread: None,
                submitted: None,
            };
            follow.run()
        })
        .map_err(|e| broker(&named, format!("starting the replica thread: {e}")))?;
        Ok(ChangelogFollower { worker })
    }

    /// Whether the thread has ended (stopped, or failed: see
    /// [`stop`](ChangelogFollower::stop)).
    pub fn is_finished(&self) -> bool {
        self.worker.is_finished()
    }

    /// Stops following, once the groups handed to the store are applied. Returns the
    /// error that ended the thread, if one did.
    ///
    /// # Errors
    ///
    /// What ended the thread.
    pub fn stop(mut self) -> Result<(), ChangelogError> {
        self.worker.stop()
    }
}

/// A group being put back together.
struct Pending {
    lsn: Lsn,
    committed_at_ms: u64,
    changes: Vec<Option<FeedChange>>,
    missing: usize,
    last_offset: i64,
}

/// How many groups may be in flight in the replica's writer.
const IN_FLIGHT: usize = 64;

/// The most changes a group may say it has: more is a damaged record.
const MAX_GROUP: u32 = 1 << 24;

struct Follow {
    replicator: Replicator,
    consumer: BaseConsumer,
    topic: String,
    source: String,
    start: i64,
    stop: Arc<AtomicBool>,
    pending: Option<Pending>,
    tickets: VecDeque<Ticket>,
    /// The offset of a record read again for its headers.
    reread: Option<i64>,
    /// The LSN of the last group handed to the store.
    submitted: Option<Lsn>,
}

impl Follow {
    fn run(mut self) -> Result<(), ChangelogError> {
        let result = self.follow();
        let drained = self.drain(0);
        result.and(drained)
    }

    fn follow(&mut self) -> Result<(), ChangelogError> {
        while !self.stop.load(Ordering::Acquire) {
            let Some(message) = self.consumer.poll(Duration::from_millis(50)) else {
                continue;
            };
            let message = match message {
                Ok(message) => message,
                Err(
                    KafkaError::MessageConsumption(RDKafkaErrorCode::OffsetOutOfRange)
                    | KafkaError::MessageConsumptionFatal(RDKafkaErrorCode::OffsetOutOfRange),
                ) => {
                    return Err(ChangelogError::OffsetGone {
                        topic: self.topic.clone(),
                        wanted: self.start,
                    });
                }
                Err(KafkaError::MessageConsumption(code)) if is_missing_topic(code) => {
                    return Err(broker(&self.topic, "the topic does not exist (deleted?)"));
                }
                // Broker restarts and the like: librdkafka reconnects by itself.
                Err(_) => continue,
            };
            let offset = message.offset();
            let headers = message.headers();
            if headers.is_none_or(|h| h.count() == 0) && self.reread != Some(offset) {
                // tansu 0.6.0 drops the headers of the first record of a fetch that
                // starts in a gap left by compaction: read that record again, from its
                // own offset.
                self.reread = Some(offset);
                self.consumer
                    .seek(&self.topic, 0, Offset::Offset(offset), Duration::from_secs(10))
                    .map_err(|e| broker(&self.topic, e))?;
                continue;
            }
            let header = |name: &str| {
                headers.and_then(|h| h.iter().find(|x| x.key == name).and_then(|x| x.value))
            };
            let record =
                decode_record(message.key(), message.payload(), header).map_err(|reason| {
                    ChangelogError::Corrupt { topic: self.topic.clone(), offset, reason }
                })?;
            self.take(record, offset)?;
        }
        Ok(())
    }

    /// Adds a record to its group, and applies the group once it is whole.
    fn take(&mut self, record: ChangelogRecord, offset: i64) -> Result<(), ChangelogError> {
        if record.lsn <= self.replicator.store().lsn() {
            return Ok(());
        }
        if self.pending.as_ref().is_some_and(|p| record.lsn > p.lsn) {
            // A group with records missing, and a later one begins: compaction removed
            // the missing ones (later groups hold their keys). Apply what is left.
            self.apply_pending()?;
        }
        if self.pending.as_ref().is_some_and(|p| record.lsn < p.lsn) {
            return Ok(());
        }
        if record.count > MAX_GROUP || (record.change.is_none() && record.count != 0) {
            return Err(ChangelogError::Corrupt {
                topic: self.topic.clone(),
                offset,
                reason: format!("a group of {} changes", record.count),
            });
        }
        let pending = self.pending.get_or_insert_with(|| Pending {
            lsn: record.lsn,
            committed_at_ms: record.committed_at_ms,
            changes: vec![None; record.count as usize],
            missing: record.count as usize,
            last_offset: offset,
        });
        pending.last_offset = offset;
        if let Some(change) = record.change {
            if pending.changes.len() != record.count as usize {
                return Err(ChangelogError::Corrupt {
                    topic: self.topic.clone(),
                    offset,
                    reason: format!(
                        "group {} has {} changes here and {} before",
                        record.lsn,
                        record.count,
                        pending.changes.len()
                    ),
                });
            }
            let slot = &mut pending.changes[record.index as usize];
            if slot.is_none() {
                pending.missing -= 1;
            }
            *slot = Some(change);
        }
        if pending.missing == 0 {
            self.apply_pending()?;
        }
        Ok(())
    }

    fn apply_pending(&mut self) -> Result<(), ChangelogError> {
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        let changes = pending.changes.into_iter().flatten().collect();
        let group = FeedGroup::new(pending.lsn, pending.committed_at_ms, changes);
        let position = u64::try_from(pending.last_offset).unwrap_or(0);
        // Each group applies only after the one submitted before it: when one fails (a
        // storage error, a unique conflict), none after it commits, and the follower
        // stops with its error before the stored offset and LSN pass it.
        let at = (self.source.as_str(), 0, position);
        let ticket = self.replicator.apply_after(&group, at, self.submitted)?;
        self.submitted = Some(group.lsn);
        self.tickets.push_back(ticket);
        self.drain(IN_FLIGHT)
    }

    /// Waits for applied groups until at most `keep` are in flight.
    fn drain(&mut self, keep: usize) -> Result<(), ChangelogError> {
        while self.tickets.len() > keep {
            if let Some(ticket) = self.tickets.pop_front() {
                ticket.wait().map_err(ChangelogError::from)?;
            }
        }
        Ok(())
    }
}

fn is_missing_topic(code: RDKafkaErrorCode) -> bool {
    matches!(code, RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic)
}
