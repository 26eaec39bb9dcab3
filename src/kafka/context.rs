//! The client's callbacks: the partitions' high watermarks from librdkafka's statistics
//! (for lag, without a request to the broker), and the last error it reported.

use rdkafka::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError as RdError;
use rdkafka::statistics::Statistics;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the callbacks learn, shared with the source.
#[derive(Debug, Default)]
pub(crate) struct Learned {
    /// The high watermark (the offset the next message gets) of each (topic, partition).
    pub(crate) high: HashMap<(String, i32), i64>,
    /// The last error the client reported, in its words.
    pub(crate) last_error: Option<String>,
}

/// The consumer's context: records what the statistics and error callbacks say.
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    pub(crate) learned: Arc<Mutex<Learned>>,
}

impl Context {
    /// The high watermark last reported for `topic` `partition`.
    pub(crate) fn high(&self, topic: &str, partition: i32) -> Option<i64> {
        let learned = self.learned.lock().ok()?;
        learned.high.get(&(topic.to_owned(), partition)).copied()
    }

    /// The last error the client reported.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.learned.lock().ok()?.last_error.clone()
    }
}

impl ClientContext for Context {
    fn stats(&self, statistics: Statistics) {
        let Ok(mut learned) = self.learned.lock() else { return };
        for (name, topic) in statistics.topics {
            for (partition, p) in topic.partitions {
                // librdkafka reports -1 (unknown) and its internal partition -1.
                if partition >= 0 && p.hi_offset >= 0 {
                    learned.high.insert((name.clone(), partition), p.hi_offset);
                }
            }
        }
    }

    fn error(&self, error: RdError, reason: &str) {
        if let Ok(mut learned) = self.learned.lock() {
            learned.last_error = Some(format!("{error}: {reason}"));
        }
    }
}

impl ConsumerContext for Context {}
