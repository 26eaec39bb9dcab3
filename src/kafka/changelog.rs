//! The changelog: where a primary store's feed goes to its replicas. The configuration
//! of a changelog topic, its errors, and the thread that publishes the feed's durable
//! groups to it (`ChangelogPublisher`).

use crate::api::store::Store;
use crate::base::error::Error;
use crate::base::feed::FeedGroup;
use crate::base::version::Lsn;
use crate::kafka::record::{
    AT, COUNT, INDEX, KIND, LSN, MARKER_KEY, VERSION, decode_record, kind_name, record_key,
    record_value,
};
use crate::kafka::worker::Worker;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a changelog lives: the brokers, the topic (one partition, 0, per primary), and
/// client properties for librdkafka.
///
/// # Examples
///
/// ```
/// use viewstore::kafka::ChangelogConfig;
///
/// let config = ChangelogConfig::new("127.0.0.1:9092", "profiles-shard-0.changelog")
///     .with_property("message.timeout.ms", "60000");
/// assert_eq!(config.topic(), "profiles-shard-0.changelog");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ChangelogConfig {
    brokers: String,
    topic: String,
    properties: Vec<(String, String)>,
    timeout: Duration,
}

impl ChangelogConfig {
    /// The changelog topic `topic` on the brokers `brokers` (`host:port`, comma
    /// separated).
    pub fn new(brokers: &str, topic: &str) -> Self {
        ChangelogConfig {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            properties: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }

    /// Sets a librdkafka client property (for both the producer and the consumer).
    /// Default = none beyond the ones the publisher and follower need.
    pub fn with_property(mut self, key: &str, value: &str) -> Self {
        self.properties.push((key.to_owned(), value.to_owned()));
        self
    }

    /// How long a request to the brokers may take before it counts as failed.
    /// Default = 30 s.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The name under which a replica stores its place in the topic
    /// ([`Store::position`] of partition 0).
    pub fn position_source(&self) -> String {
        format!("changelog:{}", self.topic)
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

/// What stops a changelog publisher or follower.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ChangelogError {
    /// The brokers could not be reached or refused a request.
    Broker {
        /// The topic.
        topic: String,
        /// What failed.
        reason: String,
    },
    /// The primary's feed no longer holds the groups after what the topic has: its
    /// retention pruned them before they were published. Replicas can no longer follow
    /// every group; publish to a new topic and bootstrap replicas from it.
    FeedPruned {
        /// The topic.
        topic: String,
        /// The last LSN the topic holds whole.
        published: Lsn,
        /// The feed holds only the groups after this LSN.
        readable_after: Lsn,
    },
    /// A record of the topic is not a changelog record.
    Corrupt {
        /// The topic.
        topic: String,
        /// The record's offset in partition 0.
        offset: i64,
        /// What is wrong with it.
        reason: String,
    },
    /// A replica's stored place in the topic is not in it any more (the topic was
    /// deleted and made again, or truncated). Bootstrap the replica into a new store.
    OffsetGone {
        /// The topic.
        topic: String,
        /// The offset after the last the replica applied.
        wanted: i64,
    },
    /// The producer refused a record for good (larger than the brokers take, say):
    /// publishing stops rather than skip it.
    Refused {
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// The store failed.
    Store(Error),
}

impl std::fmt::Display for ChangelogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangelogError::Broker { topic, reason } => {
                write!(f, "changelog topic '{topic}': the brokers failed: {reason}")
            }
            ChangelogError::FeedPruned { topic, published, readable_after } => write!(
                f,
                "changelog topic '{topic}' holds the groups up to {published}, but the \
                 store's feed holds only those after {readable_after}: publish to a new \
                 topic and bootstrap the replicas from it"
            ),
            ChangelogError::Corrupt { topic, offset, reason } => {
                write!(
                    f,
                    "changelog topic '{topic}', offset {offset}: not a changelog record: {reason}"
                )
            }
            ChangelogError::OffsetGone { topic, wanted } => write!(
                f,
                "changelog topic '{topic}' no longer holds offset {wanted}, where the replica \
                 stopped: bootstrap the replica into a new store"
            ),
            ChangelogError::Refused { topic, reason } => {
                write!(f, "changelog topic '{topic}': a record was refused: {reason}")
            }
            ChangelogError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ChangelogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChangelogError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Error> for ChangelogError {
    fn from(e: Error) -> Self {
        ChangelogError::Store(e)
    }
}

pub(crate) fn broker(topic: &str, reason: impl std::fmt::Display) -> ChangelogError {
    ChangelogError::Broker { topic: topic.to_owned(), reason: reason.to_string() }
}

/// What the producer delivered: the last LSN whose group is in the topic whole, and
/// the failed deliveries with the first reason.
#[derive(Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    reason: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    /// The LSN of a record that ends its group (or a marker's), else 0.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, ends: usize) {
        match result {
            Ok(_) => {
                self.delivered.fetch_max(ends as u64, Ordering::AcqRel);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut reason) = self.reason.lock() {
                    reason.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// A thread that publishes a primary store's change feed to a changelog topic: each
/// group, once durable, as one record per changed record, in LSN order; an LSN whose
/// group changed no view with a feed as one marker record, so that replicas reach every
/// LSN a client may wait for. Started with [`ChangelogPublisher::start`].
///
/// At start it reads the topic's last record and publishes the feed after the last
/// group the topic holds whole: a publisher killed between a commit and its publish,
/// or in the middle of a group, publishes it again (replicas skip what they have). The
/// views to replicate record [`FeedMode::Values`](crate::FeedMode::Values), and the
/// store's [`feed_retention`](crate::StoreBuilder::feed_retention) must keep groups
/// until they are published.
///
/// The topic has one partition, and should be created with `cleanup.policy=compact`
/// so that it keeps the latest state of each record for new replicas.
pub struct ChangelogPublisher {
    published: Arc<AtomicU64>,
    retrying: Arc<Mutex<Option<ChangelogError>>>,
    worker: Worker<ChangelogError>,
}

impl std::fmt::Debug for ChangelogPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangelogPublisher").field("published", &self.published()).finish()
    }
}

impl ChangelogPublisher {
    /// Starts publishing `store`'s feed to the topic of `config`.
    ///
    /// # Errors
    ///
    /// [`ChangelogError::Broker`] when the producer cannot be made (bad properties).
    /// Later failures end the thread: [`stop`](ChangelogPublisher::stop) returns them.
    pub fn start(store: &Store, config: ChangelogConfig) -> Result<Self, ChangelogError> {
        let producer = producer(&config)?;
        let published = Arc::new(AtomicU64::new(0));
        let retrying = Arc::new(Mutex::new(None));
        let topic = config.topic.clone();
        let (store, to_publish, to_retry) =
            (store.clone(), Arc::clone(&published), Arc::clone(&retrying));
        let panicked = || broker("", "the changelog thread panicked");
        let worker = Worker::start("viewstore-changelog", panicked, move |stop| {
            let run =
                Run { retrying: to_retry, store, config, producer, stop, published: to_publish };
            run.run()
        })
        .map_err(|e| broker(&topic, format!("starting the changelog thread: {e}")))?;
        Ok(ChangelogPublisher { published, retrying, worker })
    }

    /// The last LSN the topic holds whole, as far as this publisher knows.
    pub fn published(&self) -> Lsn {
        Lsn::new(self.published.load(Ordering::Acquire))
    }

    /// The broker failure the publisher is retrying (with backoff, from the topic's
    /// last record), if it is: a broker that is down, a topic that was deleted. `None`
    /// once it publishes again.
    pub fn retrying(&self) -> Option<ChangelogError> {
        self.retrying.lock().ok().and_then(|r| r.clone())
    }

    /// Whether the thread has ended (stopped, or failed: see
    /// [`stop`](ChangelogPublisher::stop)).
    pub fn is_finished(&self) -> bool {
        self.worker.is_finished()
    }

    /// Publishes what the feed holds, then stops. Returns the error that ended the
    /// thread, if one did.
    ///
    /// # Errors
    ///
    /// What ended the thread.
    pub fn stop(mut self) -> Result<(), ChangelogError> {
        self.worker.stop()
    }
}

/// The publisher's producer: acknowledged by all replicas of the partition, idempotent
/// and gapless, so that the topic never holds a group after one that failed: a
/// delivery that fails for good is a fatal error of the producer, after which a new
/// producer starts again from the topic's last record.
fn producer(config: &ChangelogConfig) -> Result<BaseProducer<Deliveries>, ChangelogError> {
    config
        .client()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("enable.gapless.guarantee", "true")
        .set("max.in.flight.requests.per.connection", "5")
        .set("linger.ms", "1")
        .create_with_context(Deliveries::default())
        .map_err(|e| broker(&config.topic, e))
}

struct Run {
    retrying: Arc<Mutex<Option<ChangelogError>>>,
    store: Store,
    config: ChangelogConfig,
    producer: BaseProducer<Deliveries>,
    stop: Arc<AtomicBool>,
    published: Arc<AtomicU64>,
}

/// How long the publisher waits for a group before it looks at the durable LSN.
const IDLE: Duration = Duration::from_millis(20);

impl Run {
    fn run(mut self) -> Result<(), ChangelogError> {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.publish_from_topic_tail(&mut backoff) {
                Ok(()) => return Ok(()),
                Err(e @ ChangelogError::Broker { .. }) if !self.stop.load(Ordering::Acquire) => {
                    if let Ok(mut retrying) = self.retrying.lock() {
                        *retrying = Some(e);
                    }
                    // The brokers failed: start again from what the topic holds, with a
                    // new producer (a failed idempotent one cannot go on).
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    if let Ok(fresh) = producer(&self.config) {
                        self.producer = fresh;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Publishes the feed after what the topic holds whole, until stopped.
    fn publish_from_topic_tail(&self, backoff: &mut Duration) -> Result<(), ChangelogError> {
        let topic = &self.config.topic;
        let mut last = last_whole_group(&self.config)?;
        self.published.store(last.get(), Ordering::Release);
        self.producer.context().delivered.store(last.get(), Ordering::Release);
        let mut feed = match self.store.feed_after(last) {
            Err(Error::FeedPruned { readable_after, .. }) => {
                return Err(ChangelogError::FeedPruned {
                    topic: topic.clone(),
                    published: last,
                    readable_after,
                });
            }
            other => other?,
        };
        // Once stopping: the durable LSN then, to publish up to and no further (a
        // primary that keeps committing must not keep the publisher from stopping).
        let mut stop_at: Option<Lsn> = None;
        loop {
            if stop_at.is_none() && self.stop.load(Ordering::Acquire) {
                stop_at = Some(self.store.durable_lsn());
            }
            let wait = if stop_at.is_some() { Duration::ZERO } else { IDLE };
            // Every group up to `durable` is in the feed once `durable` is read.
            let durable = stop_at.unwrap_or_else(|| self.store.durable_lsn());
            let mut sent = 0;
            let mut next = feed.next_timeout(wait)?;
            while let Some(group) = next.take() {
                if group.lsn > durable && stop_at.is_some() {
                    break;
                }
                self.send_group(&group)?;
                last = group.lsn;
                sent += 1;
                if sent < 1024 {
                    next = feed.next_timeout(Duration::ZERO)?;
                }
            }
            if sent < 1024 && last < durable {
                self.send_marker(durable)?;
                last = durable;
                sent += 1;
            }
            // Deliveries are confirmed as they come, without waiting for them: the
            // idempotent producer keeps them in order and without gaps.
            self.producer.poll(Duration::ZERO);
            self.check_deliveries()?;
            if sent > 0 {
                *backoff = Duration::from_millis(100);
                if let Ok(mut retrying) = self.retrying.lock() {
                    *retrying = None;
                }
            }
            if stop_at.is_some_and(|at| last >= at) {
                let topic = &self.config.topic;
                self.producer.flush(self.config.timeout).map_err(|e| broker(topic, e))?;
                return self.check_deliveries();
            }
        }
    }

    fn send_group(&self, group: &FeedGroup) -> Result<(), ChangelogError> {
        let count = u32::try_from(group.changes.len()).unwrap_or(u32::MAX);
        for (index, change) in group.changes.iter().enumerate() {
            let headers = headers(group.lsn, count, index as u32, group.committed_at_ms)
                .insert(Header { key: VERSION, value: Some(&change.version.to_be_bytes()) })
                .insert(Header { key: KIND, value: Some(kind_name(change.kind)) });
            let key = record_key(&change.view, &change.key);
            let ends = if index + 1 == group.changes.len() { group.lsn } else { Lsn::new(0) };
            self.send(&key, record_value(change), headers, ends)?;
        }
        Ok(())
    }

    fn send_marker(&self, lsn: Lsn) -> Result<(), ChangelogError> {
        let headers =
            headers(lsn, 0, 0, now_ms()).insert(Header { key: KIND, value: Some("marker") });
        self.send(&MARKER_KEY, None, headers, lsn)
    }

    fn send(
        &self,
        key: &[u8],
        value: Option<&[u8]>,
        headers: OwnedHeaders,
        ends: Lsn,
    ) -> Result<(), ChangelogError> {
        // LSNs fit a `usize` on the 64-bit targets librdkafka builds for.
        let ends = usize::try_from(ends.get()).unwrap_or(usize::MAX);
        let topic = &self.config.topic;
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, ends).partition(0).key(key).headers(headers);
        if let Some(value) = value {
            record = record.payload(value);
        }
        let deadline = Instant::now() + self.config.timeout;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((e, back)) => {
                    if e.rdkafka_error_code() != Some(RDKafkaErrorCode::QueueFull) {
                        // Not the queue: this record cannot be sent (too large, say), and
                        // retrying would publish nothing after it forever.
                        return Err(ChangelogError::Refused {
                            topic: topic.clone(),
                            reason: e.to_string(),
                        });
                    }
                    if Instant::now() >= deadline {
                        return Err(broker(topic, e));
                    }
                    // A full queue: let deliveries drain, then try again.
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                }
            }
        }
    }

    /// Shows what was delivered; `Err` when a delivery failed (the caller starts again
    /// from the topic's last record, with a new producer).
    fn check_deliveries(&self) -> Result<(), ChangelogError> {
        let deliveries = self.producer.context();
        if deliveries.failed.swap(0, Ordering::AcqRel) > 0 {
            let reason = deliveries.reason.lock().ok().and_then(|mut r| r.take());
            let reason = reason.unwrap_or_else(|| "a delivery failed".into());
            return Err(broker(&self.config.topic, reason));
        }
        self.published.store(deliveries.delivered.load(Ordering::Acquire), Ordering::Release);
        Ok(())
    }
}

fn headers(lsn: Lsn, count: u32, index: u32, at: u64) -> OwnedHeaders {
    OwnedHeaders::new_with_capacity(6)
        .insert(Header { key: LSN, value: Some(&lsn.get().to_be_bytes()) })
        .insert(Header { key: COUNT, value: Some(&count.to_be_bytes()) })
        .insert(Header { key: INDEX, value: Some(&index.to_be_bytes()) })
        .insert(Header { key: AT, value: Some(&at.to_be_bytes()) })
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The LSN of the last group the topic holds whole: its last record's LSN, or the one
/// before when that record is not its group's last (a publish cut short).
fn last_whole_group(config: &ChangelogConfig) -> Result<Lsn, ChangelogError> {
    let topic = &config.topic;
    let consumer: BaseConsumer = config
        .client()
        .set("group.id", "viewstore-changelog-tail")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(|e| broker(topic, e))?;
    let (low, high) =
        consumer.fetch_watermarks(topic, 0, config.timeout).map_err(|e| broker(topic, e))?;
    if high <= low {
        return Ok(Lsn::new(0));
    }
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Offset(high - 1))
        .map_err(|e| broker(topic, e))?;
    consumer.assign(&assignment).map_err(|e| broker(topic, e))?;
    let deadline = Instant::now() + config.timeout;
    while Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.map_err(|e| broker(topic, e))?;
        let headers = message.headers();
        let header = |name: &str| {
            headers.and_then(|h| h.iter().find(|x| x.key == name).and_then(|x| x.value))
        };
        let record = decode_record(message.key(), message.payload(), header).map_err(|reason| {
            ChangelogError::Corrupt { topic: topic.clone(), offset: message.offset(), reason }
        })?;
        return Ok(if record.change.is_none() || record.index + 1 == record.count {
            record.lsn
        } else {
            Lsn::new(record.lsn.get().saturating_sub(1))
        });
    }
    Err(broker(topic, format!("no record at offset {} within {:?}", high - 1, config.timeout)))
}
