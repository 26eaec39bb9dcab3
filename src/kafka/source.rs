//! [`KafkaSource`]: a [`Source`] over the partitions of Kafka topics an instance owns.

use crate::api::store::Store;
use crate::kafka::config::{KafkaConfig, offset_of, position_of};
use crate::kafka::context::Context;
use crate::kafka::error::KafkaError;
use crate::kafka::message::KafkaMessage;
use crate::project::source::{BoxError, Event, Source};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The consumer of the source.
pub(super) type Client = BaseConsumer<Context>;

/// One owned partition, read through its own queue so that an error names it.
pub(super) struct Owned {
    pub(super) queue: rdkafka::consumer::base_consumer::PartitionQueue<Context>,
    pub(super) state: PartState,
}

/// What the source knows of an owned partition.
pub(super) struct PartState {
    pub(super) id: u32,
    pub(super) topic: String,
    pub(super) partition: i32,
    /// The offset of the last message the store had applied when the partition was
    /// assigned (`None`: read from the configured start).
    pub(super) stored: Option<i64>,
    /// The offset of the last message delivered.
    pub(super) delivered: Option<i64>,
    /// Delivered positions with their timestamps, until the store has them.
    pub(super) pending: VecDeque<(u64, i64)>,
    /// The newest timestamp delivered.
    pub(super) newest: Option<i64>,
}

/// A [`Source`] of the messages of the Kafka partitions a [`KafkaConfig`] owns.
///
/// - **Owned, not balanced**: the source assigns its partitions itself, at the offsets
///   its store holds (the offset after the last message applied), or at the configured
///   start for a partition without one. It never joins a consumer group, so no
///   rebalance stops it, and no other instance takes its partitions.
/// - **Exactly once**: each message is one [`Event`] whose position, stored with the
///   event's batch, is the message's offset ([`offset_of`]); after a crash the source
///   resumes right after the last applied message.
/// - **Partitions and positions**: partition `p` of the `t`-th topic is source
///   partition [`partition_id`](crate::kafka::partition_id)`(t, p)`. Positions are
///   offsets, plus a rebuild epoch above bit 48 after a rebuild.
/// - **Offsets gone**: when the next offset the store needs is no longer in its
///   partition, the source fails with [`KafkaError::OffsetsGone`], or, with
///   [`OffsetsGone::Rebuild`](crate::kafka::OffsetsGone::Rebuild), clears the views it
///   feeds and reads every owned partition again from its earliest offset.
/// - **Failures**: librdkafka reconnects on its own to a restarted broker; transient
///   errors are retried, others returned.
/// - **Lag**: [`heads`](Source::heads) from the high watermarks in librdkafka's
///   statistics (every second), [`time_behind`](Source::time_behind) from message
///   timestamps; with [`KafkaConfig::with_lag_group`] the durable offsets are also
///   committed to a consumer group, for dashboards only.
///
/// # Examples
///
/// ```no_run
/// use viewstore::kafka::{KafkaConfig, KafkaSource};
/// use viewstore::{Batch, Projector, Store, ViewDef};
///
/// const CLICKS: ViewDef<String, u64> = ViewDef::new("clicks_by_page");
///
/// let store = Store::open("views.redb")?;
/// let clicks = store.view(&CLICKS)?;
/// let config = KafkaConfig::new("127.0.0.1:9092", "clicks")?
///     .with_partitions("clicks", &[0, 1, 2])?
///     .with_feeds(&["clicks_by_page"]);
/// let source = KafkaSource::new(&store, config);
/// let view = clicks.clone();
/// let running = Projector::new(&store, source, move |event, batch: &mut Batch| {
///     if let Some(page) = event.payload.key_str() {
///         batch.update_next(&view, &page.to_owned(), |n| Some(n.copied().unwrap_or(0) + 1))?;
///     }
///     Ok(())
/// })
/// .spawn()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KafkaSource {
    pub(super) config: KafkaConfig,
    pub(super) store: Store,
    pub(super) context: Context,
    pub(super) consumer: Option<Arc<Client>>,
    /// The owned partitions, by source partition id.
    pub(super) owned: BTreeMap<u32, Owned>,
    /// The rebuild epoch of the positions delivered.
    pub(super) epoch: u64,
    pub(super) rebuilds: u64,
    /// Where the next sweep of the partition queues starts (fairness).
    pub(super) next_sweep: u32,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("name", &self.config.name)
            .field("topics", &self.config.topics())
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// A source for `store` as `config` says. Nothing connects until the projector
    /// starts it.
    pub fn new(store: &Store, config: KafkaConfig) -> Self {
        KafkaSource {
            config,
            store: store.clone(),
            context: Context::default(),
            consumer: None,
            owned: BTreeMap::new(),
            epoch: 0,
            rebuilds: 0,
            next_sweep: 0,
        }
    }

    /// How many times this source rebuilt its views because stored offsets were gone.
    #[must_use]
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds
    }

    /// Takes what the partition queues hold, up to `max` events in all, fairly.
    fn sweep(&mut self, max: usize, events: &mut Vec<Event<KafkaMessage>>) -> Result<(), Swept> {
        let ids: Vec<u32> = self.owned.keys().copied().collect();
        let start = ids.iter().position(|&id| id >= self.next_sweep).unwrap_or(0);
        for &id in ids[start..].iter().chain(&ids[..start]) {
            let Some(owned) = self.owned.get_mut(&id) else { continue };
            while events.len() < max {
                match owned.queue.poll(Duration::ZERO) {
                    None => break,
                    Some(Ok(message)) => deliver(&mut owned.state, self.epoch, &message, events),
                    Some(Err(e)) => classify(&owned.state, &e, &self.context)?,
                }
            }
            if events.len() >= max {
                self.next_sweep = id + 1;
                return Ok(());
            }
        }
        Ok(())
    }

    /// A partition whose end, as the broker last reported it, is before the offset after
    /// the stored one, while nothing was read from it: its stored offset is gone. Some
    /// brokers (tansu) answer a fetch past the end with no messages rather than with
    /// `OFFSET_OUT_OF_RANGE`, so the high watermark of the statistics is the only sign.
    /// Only before the first message: a report taken before later messages came would
    /// look like a partition that shrank.
    fn past_the_end(&self) -> Option<u32> {
        self.owned.values().map(|o| &o.state).find_map(|o| {
            let stored = o.stored?;
            if o.delivered != Some(stored) {
                return None;
            }
            let high = self.context.high(&o.topic, o.partition)?;
            (high <= stored).then_some(o.id)
        })
    }

    /// Serves the consumer's own queue (errors, callbacks, statistics) for up to `wait`.
    fn serve(
        &mut self,
        wait: Duration,
        events: &mut Vec<Event<KafkaMessage>>,
    ) -> Result<(), BoxError> {
        let Some(consumer) = self.consumer.clone() else { return Ok(()) };
        match consumer.poll(wait) {
            None => Ok(()),
            // A message fetched before its partition had its own queue.
            Some(Ok(message)) => {
                let found = self
                    .owned
                    .values_mut()
                    .map(|o| &mut o.state)
                    .find(|o| o.topic == message.topic() && o.partition == message.partition());
                if let Some(owned) = found {
                    deliver(owned, self.epoch, &message, events);
                }
                Ok(())
            }
            Some(Err(e)) => match client_error(&e, &self.config, &self.context) {
                Some(fatal) => Err(Box::new(fatal)),
                None => Ok(()),
            },
        }
    }
}

/// Why a sweep stopped: a partition's offsets are gone, or a failure to return.
pub(super) enum Swept {
    OffsetsGone(u32),
    Failed(KafkaError),
}

/// Adds `message` of `owned` to `events`, unless it was delivered already.
fn deliver(
    owned: &mut PartState,
    epoch: u64,
    message: &BorrowedMessage<'_>,
    events: &mut Vec<Event<KafkaMessage>>,
) {
    let offset = message.offset();
    if offset < 0 || owned.delivered.is_some_and(|d| offset <= d) {
        return;
    }
    let headers = message.headers().map_or_else(Vec::new, |hs| {
        hs.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec))).collect()
    });
    let timestamp = message.timestamp().to_millis();
    let position = position_of(epoch, offset);
    owned.delivered = Some(offset);
    if let Some(ts) = timestamp {
        owned.pending.push_back((position, ts));
        owned.newest = Some(owned.newest.map_or(ts, |n| n.max(ts)));
    }
    events.push(Event {
        partition: owned.id,
        position,
        payload: KafkaMessage {
            topic: owned.topic.clone(),
            partition: owned.partition,
            offset,
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers,
            timestamp,
        },
    });
}

/// What an error on a partition's queue means.
fn classify(owned: &PartState, e: &RdError, context: &Context) -> Result<(), Swept> {
    let code = match e {
        RdError::PartitionEOF(_) => return Ok(()),
        RdError::MessageConsumption(code) | RdError::MessageConsumptionFatal(code) => *code,
        other => other.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
    };
    match code {
        RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange => {
            Err(Swept::OffsetsGone(owned.id))
        }
        RDKafkaErrorCode::UnknownTopicOrPartition
        | RDKafkaErrorCode::UnknownPartition
        | RDKafkaErrorCode::UnknownTopic => Err(Swept::Failed(KafkaError::UnknownTopic {
            topic: owned.topic.clone(),
            partition: Some(owned.partition),
        })),
        code if is_retriable(code) && !matches!(e, RdError::MessageConsumptionFatal(_)) => Ok(()),
        code => Err(Swept::Failed(KafkaError::Broker {
            during: "fetching messages".into(),
            topic: Some(owned.topic.clone()),
            partition: Some(owned.partition),
            message: context.last_error().unwrap_or_else(|| code.to_string()),
            retriable: false,
        })),
    }
}

/// What an error of the consumer's own queue means: `None` when librdkafka retries it
/// by itself (a broker down or restarting).
fn client_error(e: &RdError, config: &KafkaConfig, context: &Context) -> Option<KafkaError> {
    let fatal = matches!(e, RdError::MessageConsumptionFatal(_));
    let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
    if !fatal && is_retriable(code) {
        return None;
    }
    if code == RDKafkaErrorCode::UnknownTopicOrPartition {
        // Named by the partition's own queue, which reports it too.
        return None;
    }
    Some(KafkaError::Broker {
        during: format!("reading from {}", config.brokers),
        topic: None,
        partition: None,
        message: context.last_error().unwrap_or_else(|| e.to_string()),
        retriable: false,
    })
}

/// Whether librdkafka recovers from `code` on its own.
fn is_retriable(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::Resolve
            | C::OperationTimedOut
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::RequestTimedOut
            | C::BrokerNotAvailable
            | C::ReplicaNotAvailable
            | C::NetworkException
            | C::CoordinatorLoadInProgress
            | C::CoordinatorNotAvailable
            | C::NotCoordinator
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::FencedLeaderEpoch
            | C::UnknownLeaderEpoch
            | C::OffsetNotAvailable
            | C::KafkaStorageError
            | C::PartitionEOF
    )
}

impl Source for KafkaSource {
    type Payload = KafkaMessage;

    fn name(&self) -> &str {
        &self.config.name
    }

    fn resume(&mut self, positions: &[(u32, u64)]) -> Result<(), BoxError> {
        self.start(positions).map_err(|e| Box::new(e) as BoxError)
    }

    fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<Event<Self::Payload>>, BoxError> {
        if self.consumer.is_none() {
            return Err(Box::new(KafkaError::protocol("polled before resume")));
        }
        let deadline = Instant::now() + timeout;
        let mut events = Vec::new();
        loop {
            match self.sweep(max.max(1), &mut events) {
                Ok(()) => {}
                Err(Swept::Failed(e)) => return Err(Box::new(e)),
                Err(Swept::OffsetsGone(id)) => {
                    // Events of this poll are not delivered: after a rebuild they would
                    // land in the cleared views under the old epoch.
                    self.offsets_gone(id)?;
                    return Ok(Vec::new());
                }
            }
            if events.is_empty()
                && let Some(id) = self.past_the_end()
            {
                self.offsets_gone(id)?;
                return Ok(Vec::new());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !events.is_empty() || left.is_zero() {
                return Ok(events);
            }
            // The consumer's own queue blocks until something comes (an error, a
            // callback) or a short while passes; partition queues are swept after.
            self.serve(left.min(Duration::from_millis(10)), &mut events)?;
        }
    }

    fn acknowledge(&mut self, partition: u32, position: u64) -> Result<(), BoxError> {
        let Some(owned) = self.owned.get_mut(&partition).map(|o| &mut o.state) else {
            return Ok(());
        };
        while owned.pending.front().is_some_and(|&(at, _)| at <= position) {
            owned.pending.pop_front();
        }
        if let (Some(_), Some(consumer)) = (&self.config.lag_group, &self.consumer) {
            let mut list = TopicPartitionList::new();
            let next = Offset::Offset(offset_of(position) + 1);
            // For dashboards only: a failed commit changes nothing the source relies on.
            if list.add_partition_offset(&owned.topic, owned.partition, next).is_ok() {
                let _ = consumer.commit(&list, CommitMode::Async);
            }
        }
        Ok(())
    }

    fn heads(&self) -> Vec<(u32, u64)> {
        self.owned
            .values()
            .map(|o| &o.state)
            .filter_map(|o| {
                let high = self.context.high(&o.topic, o.partition)?;
                (high > 0).then(|| (o.id, position_of(self.epoch, high - 1)))
            })
            .collect()
    }

    fn time_behind(&self, partition: u32, applied: Option<u64>) -> Option<Duration> {
        let owned = &self.owned.get(&partition)?.state;
        let newest = owned.newest?;
        let first = owned.pending.iter().find(|&&(at, _)| applied.is_none_or(|a| at > a));
        Some(match first {
            Some(&(_, ts)) => Duration::from_millis(u64::try_from(newest - ts).unwrap_or(0)),
            None => Duration::ZERO,
        })
    }
}
