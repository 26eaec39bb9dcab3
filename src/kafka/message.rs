//! What a handler reads: [`KafkaMessage`].

use std::time::{Duration, SystemTime};

/// One message of a Kafka partition, as a projector's handler gets it (the payload of
/// each [`Event`](crate::Event) of a [`KafkaSource`](crate::kafka::KafkaSource)).
///
/// # Examples
///
/// ```
/// use viewstore::kafka::KafkaMessage;
///
/// let message = KafkaMessage {
///     topic: "orders".into(),
///     partition: 3,
///     offset: 41,
///     key: Some(b"order-7".to_vec()),
///     value: None,
///     headers: vec![("source".into(), Some(b"shop".to_vec()))],
///     timestamp: Some(1_700_000_000_000),
/// };
/// assert_eq!(message.key_str(), Some("order-7"));
/// assert!(message.is_tombstone());
/// assert_eq!(message.header("source"), Some(&b"shop"[..]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaMessage {
    /// The topic.
    pub topic: String,
    /// The Kafka partition.
    pub partition: i32,
    /// The message's offset in the partition.
    pub offset: i64,
    /// The key, if the message has one.
    pub key: Option<Vec<u8>>,
    /// The value; `None` is a tombstone (on a compacted topic: the key is deleted).
    pub value: Option<Vec<u8>>,
    /// The headers, in order (a name may repeat; a header may have no value).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The message's timestamp, in milliseconds since the Unix epoch, if it has one.
    pub timestamp: Option<i64>,
}

impl KafkaMessage {
    /// The key as UTF-8 text; `None` without a key or when it is not UTF-8.
    #[must_use]
    pub fn key_str(&self) -> Option<&str> {
        self.key.as_deref().and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The value as UTF-8 text; `None` for a tombstone or when it is not UTF-8.
    #[must_use]
    pub fn value_str(&self) -> Option<&str> {
        self.value.as_deref().and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Whether the message is a tombstone (a key without a value).
    #[must_use]
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// The value of the first header named `name`; `None` when there is none or it has
    /// no value.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref())
    }

    /// The timestamp as a time, if the message has one (and it is not before 1970).
    #[must_use]
    pub fn time(&self) -> Option<SystemTime> {
        let millis = u64::try_from(self.timestamp?).ok()?;
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(millis))
    }
}
