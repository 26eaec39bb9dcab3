//! Views past one machine on Kafka (feature `kafka`): a partitioned [`Source`] over
//! topics whose partitions an instance assigns itself at the offsets its store holds,
//! the partition function producers in any language share (murmur2, as the Java
//! client computes it) with a router from keys to shards, and replicas that follow a
//! primary store's change feed through a compacted changelog topic.
//!
//! [`KafkaSource`] reads the partitions a [`KafkaConfig`] owns, each message one event
//! ([`KafkaMessage`]) whose offset is stored with its batch; [`partition_for`] and
//! [`ShardRouter`] say which partition and which shard hold a key.
//! [`ChangelogPublisher`] ships a primary's change feed to a changelog topic, and
//! [`ChangelogFollower`] applies it to a replica store. See `docs/kafka.md`.
//!
//! [`Source`]: crate::Source

mod admin;
mod changelog;
mod config;
mod context;
mod error;
mod message;
mod partition;
mod record;
mod replica;
mod resume;
mod source;
mod worker;

pub use admin::{create_topic, delete_topic};
pub use changelog::{ChangelogConfig, ChangelogError, ChangelogPublisher};
pub use config::{KafkaConfig, OffsetsGone, StartAt, offset_of, partition_id, topic_partition};
pub use error::KafkaError;
pub use message::KafkaMessage;
pub use partition::{ShardRouter, murmur2, partition_for};
pub use replica::ChangelogFollower;
pub use source::KafkaSource;
