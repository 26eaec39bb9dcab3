//! What the Kafka tests share: the broker from `.ci/kafka` (`VIEWSTORE_KAFKA_BROKERS`),
//! topics created through the admin API, keyed messages produced with the
//! Java client's partitioner and their delivery reports.
//!
//! Without a broker the tests that need one say so and pass, unless
//! `VIEWSTORE_REQUIRE_KAFKA=1` (set by `.ci/run`), which makes its absence a failure.

#![allow(dead_code, reason = "each test binary uses a part of these helpers")]

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The brokers, or `None` (with a note) when the tests run without one.
pub(crate) fn brokers() -> Res<Option<String>> {
    match std::env::var("VIEWSTORE_KAFKA_BROKERS") {
        Ok(brokers) => Ok(Some(brokers)),
        Err(_) if std::env::var("VIEWSTORE_REQUIRE_KAFKA").is_ok_and(|v| v == "1") => {
            Err("VIEWSTORE_REQUIRE_KAFKA=1 but VIEWSTORE_KAFKA_BROKERS is not set: start the \
                 broker with `eval \"$(.ci/kafka start \"$(mktemp -d)\")\"`"
                .into())
        }
        Err(_) => {
            eprintln!(
                "skipped: no Kafka broker (run `eval \"$(.ci/kafka start \"$(mktemp -d)\")\"` \
                 first, as .ci/run does)"
            );
            Ok(None)
        }
    }
}

/// A topic name no other test (or earlier run) uses.
pub(crate) fn unique_topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn admin(brokers: &str) -> Res<AdminClient<DefaultClientContext>> {
    Ok(ClientConfig::new().set("bootstrap.servers", brokers).create()?)
}

fn block_on<F: std::future::Future>(f: F) -> Res<F::Output> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(f))
}

/// Creates `topic` with `partitions` partitions and the given configuration.
pub(crate) fn create_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
    config: &[(&str, &str)],
) -> Res<()> {
    let admin = admin(brokers)?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in config {
        new = new.set(k, v);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in block_on(admin.create_topics([&new], &options))?? {
        result.map_err(|(t, e)| format!("creating topic {t}: {e}"))?;
    }
    Ok(())
}

/// Collects where each message landed.
#[derive(Clone, Default)]
struct Reports(Arc<Mutex<Vec<Report>>>);

/// Message number, partition and offset, or why it was not delivered.
type Report = Result<(usize, i32, i64), String>;

impl rdkafka::ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        use rdkafka::Message;
        let report = match result {
            Ok(m) => Ok((index, m.partition(), m.offset())),
            Err((e, _)) => Err(e.to_string()),
        };
        if let Ok(mut reports) = self.0.lock() {
            reports.push(report);
        }
    }
}

/// One message to produce: key, value (`None`: a tombstone), headers.
pub(crate) struct Out<'a> {
    pub(crate) key: &'a [u8],
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) headers: &'a [(&'a str, &'a [u8])],
}

/// Produces `messages` to `topic`, in order, partitioned by librdkafka's
/// `murmur2_random` partitioner (the Java client's), and returns where each landed:
/// (partition, offset), in the order given.
pub(crate) fn produce(brokers: &str, topic: &str, messages: &[Out<'_>]) -> Res<Vec<(i32, i64)>> {
    let reports = Reports::default();
    let producer: ThreadedProducer<Reports> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("enable.idempotence", "false")
        .set("max.in.flight.requests.per.connection", "1")
        .create_with_context(reports.clone())?;
    for (i, m) in messages.iter().enumerate() {
        let mut headers = OwnedHeaders::new();
        for (k, v) in m.headers {
            headers = headers.insert(Header { key: k, value: Some(*v) });
        }
        let mut record =
            BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, i).key(m.key).headers(headers);
        if let Some(v) = m.value {
            record = record.payload(v);
        }
        producer.send(record).map_err(|(e, _)| format!("producing message {i}: {e}"))?;
    }
    producer.flush(Duration::from_secs(30))?;
    let reports = reports.0.lock().map_err(|_| "poisoned")?.clone();
    let mut landed = vec![None; messages.len()];
    for report in reports {
        let (i, p, o) = report.map_err(|e| format!("a message was not delivered: {e}"))?;
        landed[i] = Some((p, o));
    }
    landed
        .into_iter()
        .enumerate()
        .map(|(i, l)| l.ok_or_else(|| format!("no delivery report for message {i}").into()))
        .collect()
}

/// Runs `.ci/kafka`'s control script (`restart`, `stop`, `start`), when there is one.
pub(crate) fn ctl(action: &str) -> Res<bool> {
    let Ok(script) = std::env::var("VIEWSTORE_KAFKA_CTL") else { return Ok(false) };
    let status = std::process::Command::new(script).arg(action).status()?;
    if !status.success() {
        return Err(format!("the broker's control script failed to {action}").into());
    }
    Ok(true)
}
