//! What can go wrong between the store and Kafka, each naming the topic and partition
//! where it applies.

use std::fmt;

/// An error of the Kafka source. A projector reports it as
/// [`Error::SourceFailed`](crate::Error::SourceFailed) with this text; the source's own
/// methods return it as is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KafkaError {
    /// The configuration cannot be used: a topic name Kafka would refuse, a partition
    /// out of range, a client property librdkafka does not accept.
    Config {
        /// What is wrong and where.
        reason: String,
    },
    /// No broker could be reached, or the connection to them broke (transient: the
    /// client reconnects on its own).
    Connection {
        /// The bootstrap servers.
        brokers: String,
        /// The client's words.
        reason: String,
    },
    /// A broker answered with an error.
    Broker {
        /// What the source was doing.
        during: String,
        /// The topic, when the error is about one.
        topic: Option<String>,
        /// The partition, when the error is about one.
        partition: Option<i32>,
        /// The broker's (or the client's) message.
        message: String,
        /// Whether trying again may succeed.
        retriable: bool,
    },
    /// The offsets the store holds for a partition are no longer in it: the messages
    /// after them were deleted (retention), or the topic was deleted and created again.
    /// With [`OffsetsGone::Rebuild`](crate::kafka::OffsetsGone::Rebuild) the source
    /// rebuilds its views instead.
    OffsetsGone {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset of the last message the store applied.
        stored: i64,
        /// The partition's first offset, when the broker said.
        earliest: Option<i64>,
        /// The partition's end (the offset its next message gets), when the broker said.
        end: Option<i64>,
    },
    /// A topic (or a partition of it) that the source reads does not exist.
    UnknownTopic {
        /// The topic.
        topic: String,
        /// The partition, when the topic exists and the partition does not.
        partition: Option<i32>,
    },
    /// The store or the broker holds what the source cannot read: a position of a
    /// partition it never writes, a message without an offset.
    Protocol {
        /// What was wrong.
        reason: String,
    },
}

impl KafkaError {
    /// Whether trying again may succeed: a broker unreachable or restarting, a leader
    /// moving.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            KafkaError::Connection { .. } => true,
            KafkaError::Broker { retriable, .. } => *retriable,
            _ => false,
        }
    }

    pub(crate) fn config(reason: impl Into<String>) -> Self {
        KafkaError::Config { reason: reason.into() }
    }

    pub(crate) fn protocol(reason: impl Into<String>) -> Self {
        KafkaError::Protocol { reason: reason.into() }
    }
}

/// ` of topic `t` partition p`, or nothing.
fn place(topic: Option<&str>, partition: Option<i32>) -> String {
    match (topic, partition) {
        (Some(t), Some(p)) => format!(" (topic `{t}` partition {p})"),
        (Some(t), None) => format!(" (topic `{t}`)"),
        (None, Some(p)) => format!(" (partition {p})"),
        (None, None) => String::new(),
    }
}

impl fmt::Display for KafkaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KafkaError::Config { reason } => {
                write!(f, "the Kafka source's configuration is not valid: {reason}")
            }
            KafkaError::Connection { brokers, reason } => write!(
                f,
                "the Kafka brokers {brokers} could not be reached: {reason}; check that they \
                 run and listen there"
            ),
            KafkaError::Broker { during, topic, partition, message, .. } => {
                write!(f, "Kafka failed {during}{}: {message}", place(topic.as_deref(), *partition))
            }
            KafkaError::OffsetsGone { topic, partition, stored, earliest, end } => {
                let range = match (earliest, end) {
                    (Some(e), Some(n)) => format!("it now holds offsets {e} to {}", n - 1),
                    (Some(e), None) => format!("it now starts at offset {e}"),
                    (None, Some(n)) => format!("it now ends before offset {n}"),
                    (None, None) => "the broker refused that offset".to_owned(),
                };
                write!(
                    f,
                    "the store applied topic `{topic}` partition {partition} up to offset \
                     {stored}, but the next offset is no longer in the partition ({range}): the \
                     messages were deleted (retention) or the topic was created again; rebuild: \
                     start again with `KafkaConfig::on_offsets_gone(OffsetsGone::Rebuild)`, \
                     which clears the views the source feeds and reads every partition from \
                     its start (on a compacted topic, the latest value of each key)"
                )
            }
            KafkaError::UnknownTopic { topic, partition: None } => {
                write!(f, "the Kafka topic `{topic}` does not exist")
            }
            KafkaError::UnknownTopic { topic, partition: Some(p) } => {
                write!(f, "the Kafka topic `{topic}` has no partition {p}")
            }
            KafkaError::Protocol { reason } => {
                write!(f, "the Kafka source cannot read what it was given: {reason}")
            }
        }
    }
}

impl std::error::Error for KafkaError {}
