//! With the `tracing` feature, the writer opens spans for commits (with the group's LSN,
//! batches and writes), publishes, view loads and index builds.
#![cfg(feature = "tracing")]

mod support;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use support::{NAMES, TestResult};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use viewstore::{IndexDef, Store, ViewDef};

/// Each span by id: its name and fields, as recorded so far.
type Spans = BTreeMap<u64, (String, BTreeMap<String, String>)>;

#[derive(Default)]
struct Capture {
    next: AtomicU64,
    spans: Arc<Mutex<Spans>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fields = BTreeMap::new();
        span.record(&mut Fields(&mut fields));
        let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        spans.insert(id, (span.metadata().name().to_owned(), fields));
        Id::from_u64(id)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, fields)) = spans.get_mut(&span.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

const BY_LEN: IndexDef<String, u64> = IndexDef::multi("by_len", |s| s.len() as u64);
const INDEXED: ViewDef<u64, String> = ViewDef::new("names").with_indexes(&[&BY_LEN]);

#[test]
fn spans_carry_the_commit_lsn_and_name_views_and_indexes() -> TestResult {
    let capture = Capture::default();
    let spans = Arc::clone(&capture.spans);
    tracing::subscriber::set_global_default(capture)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    {
        let store = Store::open(&path)?;
        let names = store.view(&NAMES)?;
        let first = names.put(&1, "ada".into(), 1)?.lsn;
        let second = names.put(&2, "grace".into(), 1)?.lsn;
        store.close()?;
        let spans = spans.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let commits: Vec<&BTreeMap<String, String>> =
            spans.values().filter(|(n, _)| n == "viewstore.commit").map(|(_, f)| f).collect();
        let lsns: Vec<&str> =
            commits.iter().filter_map(|f| f.get("lsn")).map(String::as_str).collect();
        assert_eq!(lsns, [first.get().to_string(), second.get().to_string()]);
        assert!(commits.iter().all(|f| f.get("batches").map(String::as_str) == Some("1")));
        assert!(commits.iter().all(|f| f.get("writes").map(String::as_str) == Some("1")));
        let published: Vec<&str> = spans
            .values()
            .filter(|(n, _)| n == "viewstore.publish")
            .filter_map(|(_, f)| f.get("lsn").map(String::as_str))
            .collect();
        assert!(published.contains(&second.get().to_string().as_str()), "{published:?}");
    }
    // Opening the view with a new index loads the view and builds the index.
    let store = Store::open(&path)?;
    store.view(&INDEXED)?;
    let spans = spans.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let named = |name: &str| -> Vec<BTreeMap<String, String>> {
        spans.values().filter(|(n, _)| n == name).map(|(_, f)| f.clone()).collect()
    };
    let loads = named("viewstore.view_load");
    let last = loads.last().ok_or("no view load span")?;
    assert_eq!(last.get("view").map(String::as_str), Some("names"));
    assert_eq!(last.get("records").map(String::as_str), Some("2"));
    let builds = named("viewstore.index_build");
    assert_eq!(builds.len(), 1, "{builds:?}");
    assert_eq!(builds[0].get("index").map(String::as_str), Some("by_len"));
    Ok(())
}
