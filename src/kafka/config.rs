//! What the source connects to, what it owns and how it behaves: [`KafkaConfig`]; how
//! its partitions and positions are numbered in the store.

use crate::kafka::error::KafkaError;
use crate::kafka::partition::{MAX_PARTITIONS, ShardRouter, TOPIC_SHIFT};
use std::time::Duration;

/// How many topics one source can read: `2^12`.
const MAX_TOPICS: usize = 1 << (32 - TOPIC_SHIFT);
/// Positions hold the rebuild epoch above the offset's 48 bits.
const EPOCH_SHIFT: u32 = 48;
const OFFSET_MASK: u64 = (1 << EPOCH_SHIFT) - 1;

/// The [`Event::partition`](crate::Event) of partition `partition` of the source's
/// topic number `topic` (numbered from 0 in the order of
/// [`with_partitions`](KafkaConfig::with_partitions) calls): `topic << 20 | partition`.
/// The store's positions are kept by it, so a source must keep its topics in order.
///
/// # Examples
///
/// ```
/// use viewstore::kafka::{partition_id, topic_partition};
///
/// assert_eq!(partition_id(1, 5), (1 << 20) | 5);
/// assert_eq!(topic_partition((1 << 20) | 5), (1, 5));
/// ```
#[must_use]
pub fn partition_id(topic: u32, partition: i32) -> u32 {
    let partition = u32::try_from(partition).unwrap_or(0) & ((1 << TOPIC_SHIFT) - 1);
    topic << TOPIC_SHIFT | partition
}

/// The topic number and Kafka partition of a source partition id: the inverse of
/// [`partition_id`].
#[must_use]
pub fn topic_partition(id: u32) -> (u32, i32) {
    let partition = i32::try_from(id & ((1 << TOPIC_SHIFT) - 1)).unwrap_or(0);
    (id >> TOPIC_SHIFT, partition)
}

/// The Kafka offset of an [`Event::position`](crate::Event): its low 48 bits. The
/// bits above count the rebuilds ([`OffsetsGone::Rebuild`]) the store went through, so
/// that positions keep increasing when a rebuild reads a partition again from its
/// start; until the first rebuild, the position is the offset itself.
#[must_use]
pub fn offset_of(position: u64) -> i64 {
    i64::try_from(position & OFFSET_MASK).unwrap_or(0)
}

/// The rebuild epoch of a position (0 until the first rebuild).
pub(crate) fn epoch_of(position: u64) -> u64 {
    position >> EPOCH_SHIFT
}

/// The position of `offset` in rebuild epoch `epoch`.
pub(crate) fn position_of(epoch: u64, offset: i64) -> u64 {
    epoch << EPOCH_SHIFT | (u64::try_from(offset).unwrap_or(0) & OFFSET_MASK)
}

/// Where a partition the store holds no offset for starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// At its first message still there.
    #[default]
    Earliest,
    /// At its end: only messages produced from now on.
    Latest,
}

/// What the source does when the offsets the store holds for a partition are gone from
/// it (deleted by retention, or the topic created again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetsGone {
    /// Fail with [`KafkaError::OffsetsGone`], naming the topic and partition.
    #[default]
    Fail,
    /// Clear the views of [`with_feeds`](KafkaConfig::with_feeds) and read every owned
    /// partition again from its earliest offset: on a compacted topic, this rebuilds
    /// the views from the latest value of each key.
    Rebuild,
}

/// A topic and the partitions of it the source owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnedTopic {
    pub(crate) name: String,
    pub(crate) partitions: Vec<i32>,
}

/// How a [`KafkaSource`](crate::kafka::KafkaSource) connects and what it reads: the
/// bootstrap servers, the partitions this instance owns (it assigns them itself, at the
/// offsets its store holds: no consumer group decides), librdkafka client properties.
///
/// # Examples
///
/// ```
/// use viewstore::kafka::{KafkaConfig, OffsetsGone, ShardRouter};
///
/// let router = ShardRouter::contiguous(12, 3)?;
/// let config = KafkaConfig::new("127.0.0.1:9092", "orders_views")?
///     .with_shard("orders", &router, 1)?
///     .with_partitions("customers", &[0])?
///     .with_property("fetch.min.bytes", "1")
///     .with_feeds(&["orders_by_customer"])
///     .on_offsets_gone(OffsetsGone::Rebuild);
/// assert_eq!(config.topics(), ["orders", "customers"]);
/// # Ok::<(), viewstore::kafka::KafkaError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct KafkaConfig {
    pub(crate) brokers: String,
    pub(crate) name: String,
    pub(crate) topics: Vec<OwnedTopic>,
    pub(crate) properties: Vec<(String, String)>,
    pub(crate) start: StartAt,
    pub(crate) feeds: Vec<String>,
    pub(crate) offsets_gone: OffsetsGone,
    pub(crate) lag_group: Option<String>,
    pub(crate) fetch_wait: Duration,
    pub(crate) watermark_timeout: Duration,
}

impl KafkaConfig {
    /// A source reading from the brokers `brokers` (`host:port[,host:port...]`), whose
    /// positions are stored under `name` in the store.
    ///
    /// # Errors
    ///
    /// [`KafkaError::Config`] for no brokers, or a name the store would refuse (1 to 200
    /// bytes, no control characters).
    pub fn new(brokers: &str, name: &str) -> Result<Self, KafkaError> {
        if brokers.trim().is_empty() {
            return Err(KafkaError::config("no bootstrap servers given"));
        }
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(KafkaError::config(format!(
                "the source name `{}` must be 1 to 200 bytes without control characters",
                name.escape_debug()
            )));
        }
        Ok(KafkaConfig {
            brokers: brokers.trim().to_owned(),
            name: name.to_owned(),
            topics: Vec::new(),
            properties: Vec::new(),
            start: StartAt::Earliest,
            feeds: Vec::new(),
            offsets_gone: OffsetsGone::Fail,
            lag_group: None,
            fetch_wait: Duration::from_millis(100),
            watermark_timeout: Duration::from_secs(2),
        })
    }

    /// Owns `partitions` of `topic`. Topics are numbered in the order of the calls
    /// ([`partition_id`]); a second call for a topic adds partitions to it.
    ///
    /// # Errors
    ///
    /// [`KafkaError::Config`] for a topic name Kafka would refuse (1 to 249 of
    /// `a-z A-Z 0-9 . _ -`, not `.` or `..`), a partition below 0 or from 2^20 on, or
    /// more than 4,096 topics.
    pub fn with_partitions(mut self, topic: &str, partitions: &[i32]) -> Result<Self, KafkaError> {
        check_topic(topic)?;
        if let Some(p) =
            partitions.iter().find(|&&p| usize::try_from(p).map_or(true, |p| p >= MAX_PARTITIONS))
        {
            return Err(KafkaError::config(format!(
                "partition {p} of topic `{topic}`: partitions are 0 to {}",
                MAX_PARTITIONS - 1
            )));
        }
        let index = if let Some(i) = self.topics.iter().position(|t| t.name == topic) {
            i
        } else {
            if self.topics.len() >= MAX_TOPICS {
                return Err(KafkaError::config(format!(
                    "topic `{topic}`: one source reads at most {MAX_TOPICS} topics"
                )));
            }
            self.topics.push(OwnedTopic { name: topic.to_owned(), partitions: Vec::new() });
            self.topics.len() - 1
        };
        let owned = &mut self.topics[index];
        owned.partitions.extend_from_slice(partitions);
        owned.partitions.sort_unstable();
        owned.partitions.dedup();
        Ok(self)
    }

    /// Owns the partitions of `topic` that `router` gives to `shard`.
    ///
    /// # Errors
    ///
    /// As [`with_partitions`](Self::with_partitions), and [`KafkaError::Config`] for a
    /// shard the router does not have.
    pub fn with_shard(
        self,
        topic: &str,
        router: &ShardRouter,
        shard: u32,
    ) -> Result<Self, KafkaError> {
        let partitions: Vec<i32> = router
            .partitions_of(shard)?
            .into_iter()
            .map(|p| i32::try_from(p).unwrap_or(i32::MAX))
            .collect();
        self.with_partitions(topic, &partitions)
    }

    /// Sets a librdkafka client property (`security.protocol`, `fetch.max.bytes`,
    /// `client.id`...); a later call for the same key replaces it. The source's own
    /// settings (`enable.auto.commit=false`, `enable.auto.offset.store=false`,
    /// `auto.offset.reset=error`) always win. Default = none.
    pub fn with_property(mut self, key: &str, value: &str) -> Self {
        self.properties.retain(|(k, _)| k != key);
        self.properties.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Where a partition without a stored offset starts. Default = [`StartAt::Earliest`].
    pub fn with_start(mut self, start: StartAt) -> Self {
        self.start = start;
        self
    }

    /// The views this source feeds: a rebuild ([`OffsetsGone::Rebuild`]) clears them
    /// before it reads every partition again. Default = none.
    pub fn with_feeds(mut self, views: &[&str]) -> Self {
        self.feeds = views.iter().map(|v| (*v).to_owned()).collect();
        self
    }

    /// What to do when the store's offsets are gone from a partition. Default =
    /// [`OffsetsGone::Fail`].
    pub fn on_offsets_gone(mut self, action: OffsetsGone) -> Self {
        self.offsets_gone = action;
        self
    }

    /// Commits the offsets the store made durable to consumer group `group`, for lag
    /// dashboards only: the source never reads them back (the store's positions decide
    /// where it resumes) and never joins the group. Default = no commits.
    pub fn with_lag_group(mut self, group: &str) -> Self {
        self.lag_group = Some(group.to_owned());
        self
    }

    /// How long the broker may hold a fetch while waiting for messages
    /// (`fetch.wait.max.ms`): the latency of a quiet partition. Default = 100 ms.
    pub fn with_fetch_wait(mut self, wait: Duration) -> Self {
        self.fetch_wait = wait;
        self
    }

    /// How long the source waits for a partition's first and last offsets when it needs
    /// them (only to describe offsets that are gone); a timeout leaves them unknown.
    /// Default = 2 s.
    pub fn with_watermark_timeout(mut self, timeout: Duration) -> Self {
        self.watermark_timeout = timeout;
        self
    }

    /// The bootstrap servers.
    #[must_use]
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// The source's name in the store.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The topics read, in the order they are numbered.
    #[must_use]
    pub fn topics(&self) -> Vec<&str> {
        self.topics.iter().map(|t| t.name.as_str()).collect()
    }

    /// The client properties set with [`with_property`](Self::with_property).
    #[must_use]
    pub fn properties(&self) -> &[(String, String)] {
        &self.properties
    }

    /// Every owned (source partition id, topic, Kafka partition).
    pub(crate) fn owned(&self) -> impl Iterator<Item = (u32, &str, i32)> {
        self.topics.iter().zip(0u32..).flat_map(|(t, index)| {
            t.partitions.iter().map(move |&p| (partition_id(index, p), t.name.as_str(), p))
        })
    }

    /// A librdkafka client configuration: the brokers and the properties set.
    pub(crate) fn client_config(&self) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config
    }
}

/// Kafka's rule for topic names.
fn check_topic(topic: &str) -> Result<(), KafkaError> {
    let ok = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(KafkaError::config(format!(
            "the topic name `{}` must be 1 to 249 of a-z A-Z 0-9 . _ - (and not `.` or `..`)",
            topic.escape_debug()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_positions_round_trip() {
        for (t, p) in [(0, 0), (0, 7), (3, 1_048_575), (4095, 12)] {
            assert_eq!(topic_partition(partition_id(t, p)), (t, p));
        }
        let position = position_of(2, 41);
        assert_eq!((epoch_of(position), offset_of(position)), (2, 41));
        assert_eq!(position_of(0, 41), 41);
    }

    #[test]
    fn bad_topics_and_partitions() -> Result<(), KafkaError> {
        let config = KafkaConfig::new("b:9092", "s")?;
        for bad in ["", ".", "a b", "é", &"x".repeat(250)] {
            assert!(config.clone().with_partitions(bad, &[0]).is_err(), "{bad}");
        }
        assert!(config.clone().with_partitions("t", &[-1]).is_err());
        assert!(config.clone().with_partitions("t", &[1 << 20]).is_err());
        let config = config.with_partitions("a", &[2, 0])?.with_partitions("b", &[1])?;
        let config = config.with_partitions("a", &[1, 2])?;
        let owned: Vec<_> = config.owned().collect();
        assert_eq!(owned, [(0, "a", 0), (1, "a", 1), (2, "a", 2), (1 << 20 | 1, "b", 1)]);
        assert!(KafkaConfig::new(" ", "s").is_err());
        assert!(KafkaConfig::new("b:9092", "").is_err());
        Ok(())
    }
}
