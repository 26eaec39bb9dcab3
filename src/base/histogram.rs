//! A small fixed-bucket, log-linear histogram: recorded by one thread with relaxed
//! atomic adds (no lock, no allocation), read by any thread as a [`Histogram`] snapshot.
//!
//! Values below 8 have a bucket each; above, every power of two is split into 8 buckets
//! of equal width, so a bucket's upper bound is at most 12.5% above any value in it.
//! 496 buckets cover every `u64`. A percentile is the upper bound of the bucket that
//! holds it, clamped to the largest value recorded: never below the true value, at most
//! 12.5% above it, and the 100th percentile is the exact maximum.
//!
//! Invariants of a [`Recorder`], upheld because one thread records (the writer):
//! 1. `count` equals the sum of `buckets` once a `record` has returned; a snapshot taken
//!    meanwhile may see one value in `buckets` and not yet in `count`, so a snapshot
//!    takes its count from the buckets it read.
//! 2. `max` is at least every value counted in `buckets` once `record` has returned.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Buckets per power of two, as a power of two.
const SUB_BITS: u32 = 3;
/// Buckets per power of two.
const SUB: u64 = 1 << SUB_BITS;
/// Buckets in all: `SUB` exact ones, then `SUB` per power of two from `SUB` to `2^63`.
const BUCKETS: usize = (SUB + (64 - SUB_BITS as u64) * SUB) as usize;

/// The bucket of `value`.
fn bucket_of(value: u64) -> usize {
    if value < SUB {
        return value as usize;
    }
    let exp = value.ilog2();
    let shift = exp - SUB_BITS;
    let sub = (value >> shift) & (SUB - 1);
    (SUB + u64::from(shift) * SUB + sub) as usize
}

/// The largest value that falls in bucket `index`.
fn upper_bound(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB {
        return index;
    }
    let shift = (index - SUB) / SUB;
    let sub = (index - SUB) % SUB;
    let lower = (SUB + sub) << shift;
    lower + ((1u64 << shift) - 1)
}

/// The recording side, shared by `Arc` between the thread that records and readers.
pub(crate) struct Recorder {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder").field("count", &self.count).finish_non_exhaustive()
    }
}

impl Recorder {
    /// Records one value.
    pub(crate) fn record(&self, value: u64) {
        self.buckets[bucket_of(value)].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a duration in nanoseconds (saturating past 584 years).
    pub(crate) fn record_duration(&self, duration: std::time::Duration) {
        self.record(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    }

    /// The values recorded so far.
    pub(crate) fn snapshot(&self) -> Histogram {
        let counts: Vec<(u16, u64)> = self
            .buckets
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let n = b.load(Ordering::Relaxed);
                (n > 0).then_some((i as u16, n))
            })
            .collect();
        let count = counts.iter().map(|(_, n)| n).sum();
        let highest = counts.last().map_or(0, |&(i, _)| upper_bound(usize::from(i)));
        Histogram {
            counts,
            count,
            sum: self.sum.load(Ordering::Relaxed),
            // A value being recorded may be in its bucket before `max` has it.
            max: self.max.load(Ordering::Relaxed).min(highest),
        }
    }
}

/// A snapshot of a histogram of `u64` values (durations in nanoseconds, or counts):
/// log-linear buckets, 8 per power of two, so that [`percentile`](Histogram::percentile)
/// is at most 12.5% above the true value and never below it.
///
/// # Examples
///
/// ```
/// # use viewstore::{Store, ViewDef};
/// # const NAMES: ViewDef<u64, String> = ViewDef::new("names");
/// # let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path().join("views.redb"))?;
/// let names = store.view(&NAMES)?;
/// names.put(&1, "ada".to_string(), 1)?;
/// let commits = store.stats().writer.commit_latency;
/// assert_eq!(commits.count(), 1);
/// assert!(commits.percentile(50.0) <= commits.max());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Histogram {
    /// Non-empty buckets in bucket order: (bucket, values in it).
    counts: Vec<(u16, u64)>,
    count: u64,
    sum: u64,
    max: u64,
}

impl Histogram {
    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value recorded, exactly; 0 when none was.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The sum of the values recorded (wrapping past `u64::MAX`).
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// The mean of the values recorded, exactly; 0 when none was.
    #[expect(clippy::cast_precision_loss, reason = "a mean is a figure for reading")]
    pub fn mean(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.sum as f64 / self.count as f64 }
    }

    /// The value below or at which `p` percent of the values fall (`p` is clamped to
    /// 0..=100): the upper bound of the bucket that holds it, at most the largest value
    /// recorded. 0 when nothing was recorded.
    #[expect(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a rank out of a count, rounded up"
    )]
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let p = if p.is_nan() { 100.0 } else { p.clamp(0.0, 100.0) };
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for &(bucket, n) in &self.counts {
            seen += n;
            if seen >= rank {
                return upper_bound(usize::from(bucket)).min(self.max);
            }
        }
        self.max
    }
}

/// How a histogram's values read in a table: as durations or as plain numbers.
#[derive(Clone, Copy)]
pub(crate) enum Unit {
    Nanos,
    Count,
}

/// Writes `value` in `unit`, short: `1.25ms`, `830µs`, `42`.
pub(crate) fn write_value(f: &mut fmt::Formatter<'_>, value: u64, unit: Unit) -> fmt::Result {
    match unit {
        Unit::Count => write!(f, "{value}"),
        Unit::Nanos => {
            #[expect(clippy::cast_precision_loss, reason = "figures for reading")]
            let v = value as f64;
            if value < 1_000 {
                write!(f, "{value}ns")
            } else if value < 1_000_000 {
                write!(f, "{:.1}µs", v / 1e3)
            } else if value < 1_000_000_000 {
                write!(f, "{:.2}ms", v / 1e6)
            } else {
                write!(f, "{:.2}s", v / 1e9)
            }
        }
    }
}

/// A histogram as one row of [`Stats`](crate::Stats)' table: count, p50, p90, p99, max.
pub(crate) struct Row<'a>(pub(crate) &'a Histogram, pub(crate) Unit);

impl fmt::Display for Row<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Row(h, unit) = *self;
        write!(f, "count {}", h.count())?;
        for (name, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0)] {
            write!(f, "  {name} ")?;
            write_value(f, h.percentile(p), unit)?;
        }
        write!(f, "  max ")?;
        write_value(f, h.max(), unit)
    }
}

#[cfg(test)]
mod tests {
    use super::{BUCKETS, Recorder, bucket_of, upper_bound};

    #[test]
    fn every_value_lies_in_its_bucket_and_the_bound_is_at_most_an_eighth_above() {
        let mut values: Vec<u64> = (0..5_000).collect();
        values.extend((0..64).flat_map(|e| [1u64 << e, (1u64 << e) - 1, (1u64 << e) + 1]));
        values.extend([u64::MAX, u64::MAX - 1, 123_456_789, 999_999_999_999]);
        for v in values {
            let b = bucket_of(v);
            assert!(b < BUCKETS, "{v} → bucket {b}");
            let upper = upper_bound(b);
            assert!(upper >= v, "{v}: bound {upper}");
            assert!(upper - v <= v / 8, "{v}: bound {upper} too far above");
            if b > 0 {
                assert!(upper_bound(b - 1) < v, "{v} belongs to an earlier bucket");
            }
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_of_one_to_a_thousand() {
        let r = Recorder::default();
        for v in 1..=1_000 {
            r.record(v);
        }
        let h = r.snapshot();
        assert_eq!(h.count(), 1_000);
        assert_eq!(h.max(), 1_000);
        assert_eq!(h.sum(), 500_500);
        assert!((h.mean() - 500.5).abs() < 1e-9);
        for (p, exact) in [(50.0, 500), (90.0, 900), (99.0, 990), (0.1, 1)] {
            let got = h.percentile(p);
            assert!(got >= exact && got - exact <= exact / 8, "p{p}: {got} for {exact}");
        }
        assert_eq!(h.percentile(100.0), 1_000);
        assert_eq!(h.percentile(250.0), 1_000, "clamped to 100");
        assert!(h.percentile(50.0) <= h.percentile(90.0));
        assert!(h.percentile(90.0) <= h.percentile(99.0));
    }

    #[test]
    fn small_values_are_exact_and_an_empty_histogram_reads_zero() {
        let r = Recorder::default();
        assert_eq!(r.snapshot().percentile(50.0), 0);
        assert!(r.snapshot().mean().abs() < f64::EPSILON);
        for v in [3, 3, 3, 7] {
            r.record(v);
        }
        let h = r.snapshot();
        assert_eq!(h.percentile(75.0), 3);
        assert_eq!(h.percentile(76.0), 7);
        assert_eq!(h.max(), 7);
    }

    #[test]
    fn one_large_value_is_its_own_maximum() {
        let r = Recorder::default();
        r.record(1_000_003);
        let h = r.snapshot();
        assert_eq!(h.percentile(1.0), 1_000_003, "clamped to the maximum");
        assert_eq!(h.max(), 1_000_003);
    }
}
