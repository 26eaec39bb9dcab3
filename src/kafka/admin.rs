//! Creating and deleting topics with rdkafka's admin client, whose calls are futures:
//! driven here on the calling thread (no async runtime), with a deadline.

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Wakes the thread that waits for a future.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` on this thread until it is ready, or `None` at `timeout`.
pub(crate) fn block_on<F: Future>(future: F, timeout: Duration) -> Option<F::Output> {
    let deadline = Instant::now() + timeout;
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::park_timeout((deadline - now).min(Duration::from_millis(50)));
    }
}

/// Creates `topic` with `partitions` partitions (replication factor 1) and the topic
/// configuration `config` (say `[("cleanup.policy", "compact")]`) on the brokers
/// `brokers`. A topic that exists already is left as it is.
///
/// # Errors
///
/// A message naming the topic when the brokers cannot be reached within `timeout` or
/// refuse it.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
///
/// viewstore::kafka::create_topic(
///     "127.0.0.1:9092",
///     "profiles.changelog",
///     1,
///     &[("cleanup.policy", "compact")],
///     Duration::from_secs(10),
/// )?;
/// # Ok::<(), String>(())
/// ```
pub fn create_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
    config: &[(&str, &str)],
    timeout: Duration,
) -> Result<(), String> {
    let admin = admin(brokers, topic)?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (key, value) in config {
        new = new.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let results = block_on(admin.create_topics([&new], &options), timeout)
        .ok_or_else(|| format!("creating topic '{topic}': no answer within {timeout:?}"))?
        .map_err(|e| format!("creating topic '{topic}': {e}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(format!("creating topic '{topic}': {code}")),
        }
    }
    Ok(())
}

/// Deletes `topic` from the brokers `brokers`.
///
/// # Errors
///
/// A message naming the topic when the brokers cannot be reached within `timeout` or
/// refuse it (a topic that does not exist included).
pub fn delete_topic(brokers: &str, topic: &str, timeout: Duration) -> Result<(), String> {
    let admin = admin(brokers, topic)?;
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let results = block_on(admin.delete_topics(&[topic], &options), timeout)
        .ok_or_else(|| format!("deleting topic '{topic}': no answer within {timeout:?}"))?
        .map_err(|e| format!("deleting topic '{topic}': {e}"))?;
    for result in results {
        if let Err((_, code)) = result {
            return Err(format!("deleting topic '{topic}': {code}"));
        }
    }
    Ok(())
}

fn admin(brokers: &str, topic: &str) -> Result<AdminClient<DefaultClientContext>, String> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| format!("topic '{topic}': {e}"))
}
