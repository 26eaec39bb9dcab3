//! The one place where viewstore talks to the `metrics` facade and to `tracing`, each
//! behind its cargo feature (both off by default). Without the features every function
//! here is an empty inline function and [`Span`] is empty: the writer calls them at no
//! cost. The metric names are listed in the README's "Operating" section.

use std::time::Duration;

/// Whether the `metrics` feature is on: callers skip work that only feeds a gauge.
pub(crate) const METRICS: bool = cfg!(feature = "metrics");

/// Counters: groups committed, groups failed, operations, batches failed.
pub(crate) const GROUPS: &str = "viewstore_groups_total";
pub(crate) const FAILED_GROUPS: &str = "viewstore_failed_groups_total";
pub(crate) const WRITES: &str = "viewstore_writes_total";
pub(crate) const FAILED_BATCHES: &str = "viewstore_failed_batches_total";
/// A counter labelled by `outcome`.
#[cfg_attr(not(feature = "metrics"), expect(dead_code, reason = "named only by the feature"))]
pub(crate) const OUTCOMES: &str = "viewstore_outcomes_total";
/// Histograms.
pub(crate) const GROUP_BATCHES: &str = "viewstore_group_batches";
pub(crate) const GROUP_WRITES: &str = "viewstore_group_writes";
pub(crate) const COMMIT_SECONDS: &str = "viewstore_commit_seconds";
pub(crate) const SYNC_SECONDS: &str = "viewstore_sync_seconds";
/// Gauges of the store.
pub(crate) const QUEUE_DEPTH: &str = "viewstore_queue_depth";
pub(crate) const BLOCKED_SUBMITTERS: &str = "viewstore_blocked_submitters";
pub(crate) const FILE_BYTES: &str = "viewstore_file_bytes";
/// Gauges labelled by `view`.
pub(crate) const VIEW_RECORDS: &str = "viewstore_view_records";
pub(crate) const VIEW_TOMBSTONES: &str = "viewstore_view_tombstones";
pub(crate) const VIEW_MEMORY: &str = "viewstore_view_memory_bytes";
/// A gauge labelled by `view` and `index`.
#[cfg_attr(not(feature = "metrics"), expect(dead_code, reason = "named only by the feature"))]
pub(crate) const INDEX_MEMORY: &str = "viewstore_index_memory_bytes";

/// Adds `n` to counter `name`.
#[inline]
pub(crate) fn counter(name: &'static str, n: u64) {
    #[cfg(feature = "metrics")]
    if n > 0 {
        metrics::counter!(name).increment(n);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (name, n);
}

/// Adds `n` to the outcome counter of `outcome`.
#[inline]
pub(crate) fn outcome(outcome: &'static str, n: u64) {
    #[cfg(feature = "metrics")]
    if n > 0 {
        metrics::counter!(OUTCOMES, "outcome" => outcome).increment(n);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (outcome, n);
}

/// Records `value` in histogram `name`.
#[inline]
pub(crate) fn histogram(name: &'static str, value: u64) {
    #[cfg(feature = "metrics")]
    #[expect(clippy::cast_precision_loss, reason = "the facade takes f64")]
    metrics::histogram!(name).record(value as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = (name, value);
}

/// Records a duration, in seconds, in histogram `name`.
#[inline]
pub(crate) fn seconds(name: &'static str, duration: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(name).record(duration.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (name, duration);
}

/// Sets gauge `name` of the store.
#[inline]
pub(crate) fn gauge(name: &'static str, value: u64) {
    #[cfg(feature = "metrics")]
    #[expect(clippy::cast_precision_loss, reason = "the facade takes f64")]
    metrics::gauge!(name).set(value as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = (name, value);
}

/// Sets gauge `name` of view `view`.
#[inline]
pub(crate) fn view_gauge(name: &'static str, view: &str, value: u64) {
    #[cfg(feature = "metrics")]
    #[expect(clippy::cast_precision_loss, reason = "the facade takes f64")]
    metrics::gauge!(name, "view" => view.to_owned()).set(value as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = (name, view, value);
}

/// Sets the memory gauge of index `index` of view `view`.
#[inline]
pub(crate) fn index_gauge(view: &str, index: &str, value: u64) {
    #[cfg(feature = "metrics")]
    #[expect(clippy::cast_precision_loss, reason = "the facade takes f64")]
    metrics::gauge!(INDEX_MEMORY, "view" => view.to_owned(), "index" => index.to_owned())
        .set(value as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = (view, index, value);
}

/// A `tracing` span, or nothing without the feature.
pub(crate) struct Span {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl Span {
    /// A group's commit: its batches and writes now, its LSN once known
    /// ([`Span::record_lsn`]).
    #[inline]
    pub(crate) fn commit(batches: usize, writes: usize) -> Span {
        #[cfg(not(feature = "tracing"))]
        let _ = (batches, writes);
        Span {
            #[cfg(feature = "tracing")]
            span: tracing::info_span!(
                "viewstore.commit",
                lsn = tracing::field::Empty,
                batches,
                writes
            ),
        }
    }

    /// Publishing the root of group `lsn` to readers.
    #[inline]
    pub(crate) fn publish(lsn: u64) -> Span {
        #[cfg(not(feature = "tracing"))]
        let _ = lsn;
        Span {
            #[cfg(feature = "tracing")]
            span: tracing::debug_span!("viewstore.publish", lsn),
        }
    }

    /// Loading view `view` from the file; its records once loaded
    /// ([`Span::record_records`]).
    #[inline]
    pub(crate) fn view_load(view: &str) -> Span {
        #[cfg(not(feature = "tracing"))]
        let _ = view;
        Span {
            #[cfg(feature = "tracing")]
            span: tracing::info_span!("viewstore.view_load", view, records = tracing::field::Empty),
        }
    }

    /// Building index `index` of view `view` from the view's records.
    #[inline]
    pub(crate) fn index_build(view: &str, index: &str) -> Span {
        #[cfg(not(feature = "tracing"))]
        let _ = (view, index);
        Span {
            #[cfg(feature = "tracing")]
            span: tracing::info_span!("viewstore.index_build", view, index),
        }
    }

    /// Records the group's LSN on a commit span.
    #[inline]
    #[cfg_attr(
        not(feature = "tracing"),
        expect(clippy::unused_self, reason = "the span is empty without the feature")
    )]
    pub(crate) fn record_lsn(&self, lsn: u64) {
        #[cfg(feature = "tracing")]
        self.span.record("lsn", lsn);
        #[cfg(not(feature = "tracing"))]
        let _ = lsn;
    }

    /// Records the records loaded on a view load span.
    #[inline]
    #[cfg_attr(
        not(feature = "tracing"),
        expect(clippy::unused_self, reason = "the span is empty without the feature")
    )]
    pub(crate) fn record_records(&self, records: u64) {
        #[cfg(feature = "tracing")]
        self.span.record("records", records);
        #[cfg(not(feature = "tracing"))]
        let _ = records;
    }

    /// Runs `f` inside the span.
    #[inline]
    #[cfg_attr(
        not(feature = "tracing"),
        expect(clippy::unused_self, reason = "the span is empty without the feature")
    )]
    pub(crate) fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        #[cfg(feature = "tracing")]
        return self.span.in_scope(f);
        #[cfg(not(feature = "tracing"))]
        f()
    }
}
