//! What Kafka costs a shard and a replica, on this machine, against a real broker:
//!
//! 1. rdkafka's own consume rate of a 3-partition topic of small keyed events (a bare
//!    `BaseConsumer`, nothing done with the messages): the ceiling;
//! 2. a shard reading the same topic into a counting view through a `KafkaSource` and
//!    a projector (each message applied once, its offset stored with it), in
//!    Immediate and in Journal durability;
//! 3. changelog replication lag: a primary taking single-write groups at a steady rate
//!    while a `ChangelogPublisher` ships its feed and a `ChangelogFollower` applies it
//!    to a replica; the time from the primary's commit to the write's visibility on
//!    the replica, p50/p99.
//!
//! ```text
//! eval "$(.ci/kafka start "$(mktemp -d)")"
//! cargo run --release --features kafka --example kafka_bench -- "$VIEWSTORE_KAFKA_BROKERS" [events] [rate]
//! ```

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    reason = "rates and percentiles for printing"
)]

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::{Duration, Instant};
use viewstore::kafka::{
    ChangelogConfig, ChangelogFollower, ChangelogPublisher, KafkaConfig, KafkaSource, create_topic,
    offset_of, partition_id,
};
use viewstore::{Batch, Durability, FeedMode, Lsn, Projector, Replicator, Store, ViewDef};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const COUNTS: ViewDef<String, u64> = ViewDef::new("counts");
const PAGES: ViewDef<u64, String> = ViewDef::new("pages").with_feed(FeedMode::Values);

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{nanos}")
}

/// Produces `events` keyed events (10,000 keys, 40-byte values) to `topic`; returns the
/// messages per partition.
fn produce(brokers: &str, topic: &str, events: u64) -> Res<[i64; 3]> {
    let producer: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .create()?;
    let mut counts = [0i64; 3];
    let started = Instant::now();
    for i in 0..events {
        let key = format!("page-{}", i % 10_000);
        let value = format!("{i:020}-{:019}", i * 7);
        let partition = viewstore::kafka::partition_for(key.as_bytes(), 3);
        counts[partition as usize] += 1;
        let mut record = BaseRecord::<str, str>::to(topic).key(&key).payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    let secs = started.elapsed().as_secs_f64();
    println!("produced {events} events in {secs:.2} s ({:.0} events/s)", events as f64 / secs);
    Ok(counts)
}

/// rdkafka alone: every message of the topic read once.
fn raw_consume(brokers: &str, topic: &str, events: u64) -> Res<f64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("viewstore-bench-raw"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..3 {
        assignment.add_partition_offset(topic, p, Offset::Offset(0))?;
    }
    consumer.assign(&assignment)?;
    let (started, mut seen) = (Instant::now(), 0);
    while seen < events {
        match consumer.poll(Duration::from_secs(30)) {
            Some(Ok(_)) => seen += 1,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(format!("rdkafka stalled at {seen} of {events}").into()),
        }
    }
    Ok(events as f64 / started.elapsed().as_secs_f64())
}

/// A shard of all three partitions counting each key's events.
fn shard(brokers: &str, topic: &str, ends: [i64; 3], durability: Durability) -> Res<f64> {
    let dir = tempfile::tempdir()?;
    let store = Store::builder(dir.path().join("shard.redb")).durability(durability).open()?;
    let counts = store.view(&COUNTS)?;
    let config = KafkaConfig::new(brokers, "events")?.with_partitions(topic, &[0, 1, 2])?;
    let started = Instant::now();
    let running = Projector::new(
        &store,
        KafkaSource::new(&store, config),
        move |event, batch: &mut Batch| {
            if let Some(key) = event.payload.key_str() {
                batch
                    .update_next(&counts, &key.to_owned(), |n| Some(n.copied().unwrap_or(0) + 1))?;
            }
            Ok(())
        },
    )
    .spawn()?;
    let caught_up = |p: i32| -> Res<bool> {
        let at = store.position("events", partition_id(0, p))?;
        Ok(ends[p as usize] == 0 || at.is_some_and(|at| offset_of(at) + 1 >= ends[p as usize]))
    };
    while !(caught_up(0)? && caught_up(1)? && caught_up(2)?) {
        if running.is_finished() {
            running.stop()?;
            return Err("the projector ended".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let rate = ends.iter().sum::<i64>() as f64 / started.elapsed().as_secs_f64();
    running.stop()?;
    store.close()?;
    Ok(rate)
}

/// Replication lag at `rate` single-write groups per second for `seconds`.
fn lag(brokers: &str, rate: u64, seconds: u64) -> Res<(f64, f64, f64)> {
    let dir = tempfile::tempdir()?;
    let topic = unique("bench-changelog");
    create_topic(brokers, &topic, 1, &[("cleanup.policy", "compact")], Duration::from_secs(30))?;
    let config = ChangelogConfig::new(brokers, &topic);
    let primary =
        Store::builder(dir.path().join("primary.redb")).durability(Durability::Journal).open()?;
    let pages = primary.view(&PAGES)?;
    let replica = Store::builder(dir.path().join("replica.redb"))
        .durability(Durability::Journal)
        .replica(true)
        .open()?;
    let mut replicator = Replicator::new(&replica);
    replicator.view(&replica.view(&PAGES)?)?;
    let publisher = ChangelogPublisher::start(&primary, config.clone())?;
    let follower = ChangelogFollower::start(replicator, &config)?;
    // Commits and the time each became visible on the replica, measured on one clock.
    let (tx, rx) = std::sync::mpsc::channel::<(Lsn, Instant)>();
    let watcher = {
        let replica = replica.clone();
        std::thread::spawn(move || -> viewstore::Result<Vec<Duration>> {
            let mut lags = Vec::new();
            for (lsn, committed) in rx {
                replica.wait_for(lsn)?;
                lags.push(committed.elapsed());
            }
            Ok(lags)
        })
    };
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let total = rate * seconds;
    for i in 0..total {
        let due = started + interval * u32::try_from(i)?;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let receipt = pages.put(&(i % 1000), format!("page {i}"), i + 1)?;
        tx.send((receipt.lsn, Instant::now()))?;
    }
    drop(tx);
    let mut lags = watcher.join().map_err(|_| "the watcher panicked")??;
    let achieved = total as f64 / started.elapsed().as_secs_f64();
    publisher.stop()?;
    follower.stop()?;
    lags.sort_unstable();
    let at = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    Ok((at(0.5), at(0.99), achieved))
}

/// The broker's own end-to-end latency at `rate` messages per second for `seconds`: a
/// producer (the publisher's settings) and a consumer (the follower's) of one
/// partition, p50/p99 from send to receipt. The floor under replication lag.
fn raw_latency(brokers: &str, rate: u64, seconds: u64) -> Res<(f64, f64)> {
    let topic = unique("bench-latency");
    create_topic(brokers, &topic, 1, &[], Duration::from_secs(30))?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("viewstore-bench-latency"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&topic, 0, Offset::Offset(0))?;
    consumer.assign(&assignment)?;
    let producer: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "1")
        .set("linger.ms", "2")
        .create()?;
    let started = Instant::now();
    let total = rate * seconds;
    let reader = std::thread::spawn(move || -> Result<Vec<Duration>, String> {
        use rdkafka::Message;
        let mut lags = Vec::new();
        while (lags.len() as u64) < total {
            match consumer.poll(Duration::from_secs(30)) {
                Some(Ok(m)) => {
                    let sent = std::str::from_utf8(m.payload().unwrap_or_default())
                        .ok()
                        .and_then(|t| t.parse::<u64>().ok())
                        .ok_or("a message without its send time")?;
                    lags.push(started.elapsed().saturating_sub(Duration::from_micros(sent)));
                }
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("the consumer stalled".into()),
            }
        }
        Ok(lags)
    });
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    for i in 0..total {
        let due = started + interval * u32::try_from(i)?;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let sent = started.elapsed().as_micros().to_string();
        let record = BaseRecord::<str, str>::to(&topic).partition(0).key("k").payload(&sent);
        producer.send(record).map_err(|(e, _)| e)?;
    }
    producer.flush(Duration::from_secs(60))?;
    let mut lags = reader.join().map_err(|_| "the reader panicked")??;
    lags.sort_unstable();
    let at = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    Ok((at(0.5), at(0.99)))
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let brokers = args.get(1).ok_or("usage: kafka_bench BROKERS [events] [rate]")?;
    let events: u64 = args.get(2).map_or(Ok(200_000), |e| e.parse())?;
    let rate: u64 = args.get(3).map_or(Ok(500), |r| r.parse())?;
    let topic = unique("bench-events");
    create_topic(brokers, &topic, 3, &[], Duration::from_secs(30))?;
    let ends = produce(brokers, &topic, events)?;
    let raw = raw_consume(brokers, &topic, events)?;
    println!("rdkafka BaseConsumer alone:        {raw:>9.0} events/s");
    let immediate = shard(brokers, &topic, ends, Durability::Immediate)?;
    println!(
        "shard, Immediate durability:       {immediate:>9.0} events/s ({:.2}x rdkafka)",
        immediate / raw
    );
    let journal = shard(brokers, &topic, ends, Durability::Journal)?;
    println!(
        "shard, Journal durability:         {journal:>9.0} events/s ({:.2}x rdkafka)",
        journal / raw
    );
    let (raw50, raw99) = raw_latency(brokers, rate, 10)?;
    println!(
        "rdkafka produce-to-consume latency at {rate} messages/s (one partition): \
         p50 {raw50:.1} ms, p99 {raw99:.1} ms"
    );
    let (p50, p99, achieved) = lag(brokers, rate, 10)?;
    println!(
        "replication lag at {achieved:.0} groups/s (Journal primary and replica): \
         p50 {p50:.1} ms, p99 {p99:.1} ms"
    );
    Ok(())
}
