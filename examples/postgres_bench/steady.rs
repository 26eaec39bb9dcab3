//! The steady workload: a writer committing 1-row transactions at a fixed rate, a
//! watcher noting when each row becomes visible in the view, and the `PostgresSource`
//! projector between them.

use crate::{Latency, Line, PUBLICATION, ROWS, Res, drop_slot, open_store, payload};
use pg::{Client, NoTls};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use viewstore::postgres::{Change, PostgresConfig, PostgresSource};
use viewstore::{Batch, Projector, RunningProjector, Store, View};

/// One instant per row, as nanoseconds after `base` plus one (0: not yet).
pub(crate) struct Marks {
    base: Instant,
    first_id: i64,
    nanos: Vec<AtomicU64>,
}

impl Marks {
    pub(crate) fn new(base: Instant, first_id: i64, count: usize) -> Arc<Marks> {
        Arc::new(Marks { base, first_id, nanos: (0..count).map(|_| AtomicU64::new(0)).collect() })
    }

    pub(crate) fn set(&self, id: i64, at: Instant) {
        let i = usize::try_from(id - self.first_id).unwrap_or(usize::MAX);
        if let Some(slot) = self.nanos.get(i) {
            let n = u64::try_from(at.duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
            slot.store(n.saturating_add(1), Ordering::Release);
        }
    }

    fn get(&self, i: usize) -> Option<u64> {
        self.nanos.get(i).map(|a| a.load(Ordering::Acquire)).filter(|&n| n > 0).map(|n| n - 1)
    }

    fn last(&self) -> Option<u64> {
        (0..self.nanos.len()).filter_map(|i| self.get(i)).max()
    }

    fn first(&self) -> Option<u64> {
        (0..self.nanos.len()).filter_map(|i| self.get(i)).min()
    }
}

/// Commits `count` 1-row transactions from `first_id` on, at `rate` per second,
/// noting when each `COMMIT` returned. Returns the rate reached.
pub(crate) fn write_at_rate(
    url: &str,
    first_id: i64,
    count: usize,
    rate: u64,
    commits: &Marks,
) -> Res<f64> {
    let mut db = Client::connect(url, NoTls)?;
    let insert = db.prepare("INSERT INTO rows VALUES ($1, $2)")?;
    let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let started = Instant::now();
    for i in 0..count {
        let due = started + period * u32::try_from(i)?;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let id = first_id + i64::try_from(i)?;
        db.execute(&insert, &[&id, &payload(id)])?;
        commits.set(id, Instant::now());
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// Watches `view` for the rows of `marks` in id order (they commit in that order, and
/// the view applies them in commit order) until all are seen or `stop` is set.
pub(crate) fn watch(view: &View<i64, String>, marks: &Marks, stop: &AtomicBool) {
    let count = marks.nanos.len();
    let mut next = 0usize;
    while next < count && !stop.load(Ordering::Relaxed) {
        let mut progressed = false;
        while next < count && view.contains(&(marks.first_id + next as i64)) {
            marks.set(marks.first_id + next as i64, Instant::now());
            next += 1;
            progressed = true;
        }
        if !progressed {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

/// Runs the writer while a watcher notes visibility, then summarizes: latency from
/// commit to visible, and rows per second from the first commit to the last row seen.
pub(crate) fn measure(
    url: &str,
    view: &View<i64, String>,
    next_id: &mut i64,
    rate: u64,
    secs: u64,
) -> Res<(u64, f64, Option<Latency>, f64)> {
    let count = usize::try_from(rate * secs)?;
    let base = Instant::now();
    let first = *next_id;
    *next_id += i64::try_from(count)?;
    let commits = Marks::new(base, first, count);
    let visible = Marks::new(base, first, count);
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (view, visible, stop) = (view.clone(), Arc::clone(&visible), Arc::clone(&stop));
        std::thread::spawn(move || watch(&view, &visible, &stop))
    };
    let reached = write_at_rate(url, first, count, rate, &commits)?;
    // Every row should arrive within a minute of the last commit.
    let deadline = Instant::now() + Duration::from_secs(60);
    while visible.get(count - 1).is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    watcher.join().map_err(|_| "the watcher panicked")?;
    let mut nanos = Vec::with_capacity(count);
    for i in 0..count {
        let (Some(c), Some(v)) = (commits.get(i), visible.get(i)) else {
            return Err(
                format!("row {} was not seen in the view within 60 s", first + i as i64).into()
            );
        };
        nanos.push(v.saturating_sub(c));
    }
    let span = visible.last().unwrap_or(0).saturating_sub(commits.first().unwrap_or(0));
    let per_sec = count as f64 / (span as f64 / 1e9).max(1e-9);
    Ok((count as u64, per_sec, Latency::of(nanos), reached))
}

/// A projector of slot `slot` into `view`: each inserted row put at the commit LSN
/// (snapshot rows at version 1).
pub(crate) fn spawn_source(
    store: &Store,
    view: &View<i64, String>,
    url: &str,
    slot: &str,
    snapshot: bool,
) -> Res<RunningProjector> {
    let config = PostgresConfig::new(url, slot)?
        .with_publication(PUBLICATION)?
        .with_feeds(&[ROWS.name()])
        .with_snapshot(snapshot);
    let source = PostgresSource::new(store, config);
    let v = view.clone();
    let running = Projector::new(store, source, move |event, batch: &mut Batch| {
        let version = event.position.max(1);
        let version = if event.partition == viewstore::postgres::STREAM { version } else { 1 };
        for change in &event.payload.changes {
            if let Change::Insert { row } = change {
                batch.put(&v, &row.get::<i64>("id")?, row.get::<String>("payload")?, version)?;
            }
        }
        Ok(())
    })
    .spawn()?;
    Ok(running)
}

/// The steady workload through the `PostgresSource`.
pub(crate) fn source(url: &str, next_id: &mut i64, rate: u64, secs: u64) -> Res<Line> {
    let dir = tempfile::tempdir()?;
    let store = open_store(&dir.path().join("steady.redb"))?;
    let view = store.view(&ROWS)?;
    let slot = format!("vs_bench_stream_{rate}");
    let running = spawn_source(&store, &view, url, &slot, false)?;
    let measured = measure(url, &view, next_id, rate, secs);
    let stopped = running.stop();
    drop_slot(&mut Client::connect(url, NoTls)?, &slot)?;
    let (rows, per_sec, latency, reached) = measured?;
    stopped?;
    Ok(Line {
        what: format!("steady {rate}/s, PostgresSource (streaming)"),
        rows,
        rows_per_sec: per_sec,
        latency,
        note: format!("writer reached {reached:.0} tx/s"),
    })
}
