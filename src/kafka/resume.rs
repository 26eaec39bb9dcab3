//! Starting a [`KafkaSource`]: the consumer, the owned partitions checked against the
//! brokers' metadata and assigned at the store's offsets; and what follows when those
//! offsets are gone (fail, or clear the views and read everything again).

use crate::kafka::config::{OffsetsGone, StartAt, epoch_of, offset_of};
use crate::kafka::error::KafkaError;
use crate::kafka::source::{Client, KafkaSource, Owned, PartState};
use crate::project::source::BoxError;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError as RdError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// How many times the brokers' metadata is asked for before the source fails.
const METADATA_ATTEMPTS: u32 = 5;

impl KafkaSource {
    /// Creates the consumer and assigns the owned partitions after `positions`.
    pub(super) fn start(&mut self, positions: &[(u32, u64)]) -> Result<(), KafkaError> {
        if self.config.topics.iter().all(|t| t.partitions.is_empty()) {
            return Err(KafkaError::config(format!(
                "the source `{}` owns no partition: give it some with \
                 `KafkaConfig::with_partitions` or `with_shard`",
                self.config.name
            )));
        }
        // The newest epoch decides: a partition stored under an older one had not been
        // read again since the rebuild, so it starts from its beginning.
        self.epoch = positions.iter().map(|&(_, at)| epoch_of(at)).max().unwrap_or(0);
        let stored: BTreeMap<u32, Option<i64>> = positions
            .iter()
            .map(|&(p, at)| (p, (epoch_of(at) == self.epoch).then(|| offset_of(at))))
            .collect();
        let consumer =
            Arc::new(self.consumer_config().create_with_context(self.context.clone()).map_err(
                |e| KafkaError::config(format!("librdkafka refused the client properties: {e}")),
            )?);
        self.check_metadata(&consumer)?;
        let starts = self
            .config
            .owned()
            .map(|(id, _, _)| match stored.get(&id) {
                Some(Some(offset)) => (id, Some(*offset)),
                Some(None) => (id, Some(-1)),
                None => (id, None),
            })
            .collect::<Vec<_>>();
        self.assign(&consumer, &starts)?;
        self.consumer = Some(consumer);
        Ok(())
    }

    /// The client configuration: the user's properties, then the source's own.
    fn consumer_config(&self) -> rdkafka::ClientConfig {
        let mut config = self.config.client_config();
        let group = self.config.lag_group.clone().unwrap_or_else(|| {
            // Never joined (the partitions are assigned by hand): only required.
            format!("viewstore.{}", self.config.name.replace(|c: char| !c.is_ascii_graphic(), "_"))
        });
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "error")
            .set("enable.partition.eof", "false")
            .set(
                "fetch.wait.max.ms",
                self.config.fetch_wait.as_millis().clamp(1, 300_000).to_string(),
            );
        if config.get("statistics.interval.ms").is_none() {
            config.set("statistics.interval.ms", "1000");
        }
        config
    }

    /// Checks that every owned topic and partition exists, asking the brokers again
    /// while they cannot answer.
    fn check_metadata(&self, consumer: &Client) -> Result<(), KafkaError> {
        for topic in &self.config.topics {
            let mut wait = Duration::from_millis(200);
            let mut attempt = 1;
            let metadata = loop {
                match consumer.fetch_metadata(Some(&topic.name), self.config.watermark_timeout) {
                    Ok(m) => break m,
                    Err(_) if attempt < METADATA_ATTEMPTS => {
                        std::thread::sleep(wait);
                        wait = wait.saturating_mul(2);
                        attempt += 1;
                    }
                    Err(e) => {
                        return Err(KafkaError::Connection {
                            brokers: self.config.brokers.clone(),
                            reason: format!(
                                "asking for the metadata of topic `{}` ({attempt} attempts): {}",
                                topic.name,
                                self.context.last_error().unwrap_or_else(|| e.to_string())
                            ),
                        });
                    }
                }
            };
            let found = metadata.topics().iter().find(|t| t.name() == topic.name);
            let Some(found) = found.filter(|t| {
                t.error().is_none_or(|e| {
                    RDKafkaErrorCode::from(e) != RDKafkaErrorCode::UnknownTopicOrPartition
                })
            }) else {
                return Err(KafkaError::UnknownTopic {
                    topic: topic.name.clone(),
                    partition: None,
                });
            };
            if found.partitions().is_empty() {
                return Err(KafkaError::UnknownTopic {
                    topic: topic.name.clone(),
                    partition: None,
                });
            }
            if let Some(&p) =
                topic.partitions.iter().find(|&&p| !found.partitions().iter().any(|m| m.id() == p))
            {
                return Err(KafkaError::UnknownTopic {
                    topic: topic.name.clone(),
                    partition: Some(p),
                });
            }
        }
        Ok(())
    }

    /// Assigns every owned partition: after its stored offset (`Some(-1)`: from its
    /// beginning), or at the configured start (`None`), each read through its own queue.
    fn assign(
        &mut self,
        consumer: &Arc<Client>,
        starts: &[(u32, Option<i64>)],
    ) -> Result<(), KafkaError> {
        let mut list = TopicPartitionList::new();
        let owned: Vec<(u32, String, i32)> =
            self.config.owned().map(|(id, t, p)| (id, t.to_owned(), p)).collect();
        for (id, topic, partition) in &owned {
            let start = starts.iter().find(|(s, _)| s == id).and_then(|&(_, s)| s);
            let offset = match start {
                Some(-1) => Offset::Beginning,
                Some(stored) => Offset::Offset(stored + 1),
                None => match self.config.start {
                    StartAt::Earliest => Offset::Beginning,
                    StartAt::Latest => Offset::End,
                },
            };
            list.add_partition_offset(topic, *partition, offset)
                .map_err(|e| assign_failed(topic, *partition, &e))?;
        }
        consumer.assign(&list).map_err(|e| assign_failed("", -1, &e))?;
        self.owned.clear();
        for (id, topic, partition) in owned {
            let queue = consumer.split_partition_queue(&topic, partition).ok_or_else(|| {
                KafkaError::UnknownTopic { topic: topic.clone(), partition: Some(partition) }
            })?;
            let stored =
                starts.iter().find(|(s, _)| *s == id).and_then(|&(_, s)| s).filter(|&s| s >= 0);
            let state = PartState {
                id,
                topic,
                partition,
                stored,
                delivered: stored,
                pending: VecDeque::new(),
                newest: None,
            };
            self.owned.insert(id, Owned { queue, state });
        }
        Ok(())
    }

    /// The store's offsets of partition `id` are gone: fails, or rebuilds.
    pub(super) fn offsets_gone(&mut self, id: u32) -> Result<(), BoxError> {
        let Some(owned) = self.owned.get(&id).map(|o| &o.state) else {
            return Err(Box::new(KafkaError::protocol(format!("no partition {id} is owned"))));
        };
        let (topic, partition) = (owned.topic.clone(), owned.partition);
        let stored = owned.delivered.or(owned.stored).unwrap_or(-1);
        let (earliest, end) = match &self.consumer {
            Some(c) => c
                .fetch_watermarks(&topic, partition, self.config.watermark_timeout)
                .map_or((None, None), |(low, high)| (Some(low), Some(high))),
            None => (None, None),
        };
        let gone = KafkaError::OffsetsGone { topic, partition, stored, earliest, end };
        if self.config.offsets_gone == OffsetsGone::Fail {
            return Err(Box::new(gone));
        }
        if self.config.feeds.is_empty() {
            return Err(Box::new(KafkaError::config(format!(
                "{gone}; a rebuild clears the views the source feeds first, and none are named: \
                 name them with `KafkaConfig::with_feeds`"
            ))));
        }
        // The views are cleared after the batches in flight, which the writer applies
        // first; the events read from now on carry the next epoch.
        for view in &self.config.feeds {
            self.store.clear_view(view)?;
        }
        self.epoch += 1;
        self.rebuilds += 1;
        let consumer = self.consumer.clone().ok_or_else(|| KafkaError::protocol("no consumer"))?;
        let starts: Vec<(u32, Option<i64>)> = self.owned.keys().map(|&id| (id, Some(-1))).collect();
        self.assign(&consumer, &starts)?;
        Ok(())
    }
}

fn assign_failed(topic: &str, partition: i32, e: &RdError) -> KafkaError {
    KafkaError::Broker {
        during: "assigning the owned partitions".into(),
        topic: (!topic.is_empty()).then(|| topic.to_owned()),
        partition: (partition >= 0).then_some(partition),
        message: e.to_string(),
        retriable: false,
    }
}
