//! Views past one machine on Kafka (feature `kafka`): a partitioned [`Source`] over
//! topics whose partitions an instance assigns itself at the offsets its store holds,
//! the partition function producers in any language share (murmur2, as the Java
//! client computes it) with a router from keys to shards, and replicas that follow a
//! primary store's change feed through a compacted changelog topic.
//!
//! [`Source`]: crate::Source

mod changelog;
mod record;
mod replica;

pub use changelog::{ChangelogConfig, ChangelogError, ChangelogPublisher};
pub use replica::ChangelogFollower;
mod admin;

pub use admin::{create_topic, delete_topic};
