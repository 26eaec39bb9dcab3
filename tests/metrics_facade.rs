//! With the `metrics` feature, the store publishes through the `metrics` facade the same
//! figures `Store::stats` reports. One test: the recorder is global to the process.
#![cfg(feature = "metrics")]

mod support;

use metrics::{Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName};
use metrics::{Metadata, Recorder, SharedString, Unit};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use support::{NAMES, TestResult};
use viewstore::{Batch, Store};

/// Every metric by name and labels (`name{k=v,..}`): counters and gauges hold their value,
/// histograms every value recorded.
#[derive(Default)]
struct Seen {
    values: Mutex<BTreeMap<String, f64>>,
    samples: Mutex<BTreeMap<String, Vec<f64>>>,
}

struct Handle {
    seen: Arc<Seen>,
    key: String,
}

impl CounterFn for Handle {
    #[expect(clippy::cast_precision_loss, reason = "test counts are small")]
    fn increment(&self, value: u64) {
        let mut values = self.seen.values.lock().unwrap_or_else(PoisonError::into_inner);
        *values.entry(self.key.clone()).or_default() += value as f64;
    }
    #[expect(clippy::cast_precision_loss, reason = "test counts are small")]
    fn absolute(&self, value: u64) {
        let mut values = self.seen.values.lock().unwrap_or_else(PoisonError::into_inner);
        values.insert(self.key.clone(), value as f64);
    }
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        let mut values = self.seen.values.lock().unwrap_or_else(PoisonError::into_inner);
        *values.entry(self.key.clone()).or_default() += value;
    }
    fn decrement(&self, value: f64) {
        GaugeFn::increment(self, -value);
    }
    fn set(&self, value: f64) {
        let mut values = self.seen.values.lock().unwrap_or_else(PoisonError::into_inner);
        values.insert(self.key.clone(), value);
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        let mut samples = self.seen.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples.entry(self.key.clone()).or_default().push(value);
    }
}

struct Capture(Arc<Seen>);

impl Capture {
    fn handle(&self, key: &Key) -> Arc<Handle> {
        let mut name = key.name().to_owned();
        let labels: Vec<String> =
            key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        if !labels.is_empty() {
            name = format!("{name}{{{}}}", labels.join(","));
        }
        Arc::new(Handle { seen: Arc::clone(&self.0), key: name })
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.handle(key))
    }
}

#[test]
#[expect(
    clippy::cast_precision_loss,
    clippy::float_cmp,
    reason = "small integer counts, exact in f64"
)]
fn published_metrics_equal_the_stats() -> TestResult {
    let seen = Arc::new(Seen::default());
    metrics::set_global_recorder(Capture(Arc::clone(&seen)))?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let names = store.view(&NAMES)?;
    for k in 0..20 {
        names.put(&k, format!("n{k}"), 1)?;
    }
    names.put(&1, "old".into(), 1)?;
    names.delete(&2, 2)?;
    let mut batch = Batch::new();
    batch.put(&names, &100, "a".into(), 1)?.put(&names, &101, "b".into(), 1)?;
    store.submit(batch)?.wait()?;
    let failed = names.update(&3, 9, |_: Option<&String>| -> Option<String> { panic!("boom") });
    assert!(failed.is_err());
    let stats = store.stats();
    let values = seen.values.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let samples = seen.samples.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let value = |key: &str| values.get(key).copied().unwrap_or(0.0);
    let count = |key: &str| samples.get(key).map_or(0, Vec::len) as u64;
    let w = &stats.writer;
    assert_eq!(value("viewstore_groups_total"), w.groups as f64);
    assert_eq!(value("viewstore_writes_total"), w.writes_per_group.sum() as f64);
    assert_eq!(value("viewstore_failed_batches_total"), w.outcomes.failed_batches as f64);
    assert_eq!(value("viewstore_outcomes_total{outcome=applied}"), w.outcomes.applied as f64);
    assert_eq!(value("viewstore_outcomes_total{outcome=deleted}"), w.outcomes.deleted as f64);
    assert_eq!(value("viewstore_outcomes_total{outcome=stale}"), w.outcomes.stale as f64);
    assert_eq!((w.outcomes.applied, w.outcomes.deleted, w.outcomes.stale), (23, 1, 1));
    assert_eq!(count("viewstore_group_batches"), w.batches_per_group.count());
    assert_eq!(count("viewstore_group_writes"), w.writes_per_group.count());
    assert_eq!(count("viewstore_commit_seconds"), w.commit_latency.count());
    assert_eq!(count("viewstore_sync_seconds"), w.sync_latency.count());
    let max_commit = samples["viewstore_commit_seconds"].iter().copied().fold(0.0, f64::max);
    assert!((max_commit * 1e9 - w.commit_latency.max() as f64).abs() < 1_000.0);
    let view = &stats.views[0];
    assert_eq!(value("viewstore_view_records{view=names}"), view.records as f64);
    assert_eq!(value("viewstore_view_tombstones{view=names}"), 1.0);
    assert_eq!(value("viewstore_view_memory_bytes{view=names}"), view.resident_bytes() as f64);
    assert_eq!(value("viewstore_queue_depth"), 0.0);
    assert_eq!(value("viewstore_file_bytes"), stats.file_bytes.unwrap_or(0) as f64);
    Ok(())
}
