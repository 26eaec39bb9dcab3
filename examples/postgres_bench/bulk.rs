//! The bulk load: rows inserted in a few large transactions while the source streams,
//! then the same table copied by a new store's initial snapshot.

use crate::steady::spawn_source;
use crate::{Line, ROWS, Res, drop_slot, open_store};
use pg::{Client, NoTls};
use std::time::{Duration, Instant};

/// Waits until `done` holds, at most `limit`; returns whether it did.
fn wait(limit: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// `rows` rows in `txs` transactions of `INSERT ... SELECT`, streamed into a view; then
/// an initial snapshot of the whole table into a new store.
pub(crate) fn load(url: &str, next_id: &mut i64, rows: u64, txs: u64) -> Res<Vec<Line>> {
    let mut db = Client::connect(url, NoTls)?;
    let dir = tempfile::tempdir()?;
    let store = open_store(&dir.path().join("bulk.redb"))?;
    let view = store.view(&ROWS)?;
    let slot = "vs_bench_bulk";
    let running = spawn_source(&store, &view, url, slot, false)?;
    let first = *next_id;
    let last = first + i64::try_from(rows)? - 1;
    *next_id = last + 1;
    let per_tx = i64::try_from(rows.div_ceil(txs))?;
    let started = Instant::now();
    let mut from = first;
    while from <= last {
        let to = (from + per_tx - 1).min(last);
        db.execute(
            "INSERT INTO rows SELECT i, rpad(i::text, 64) FROM generate_series($1::int8, $2::int8) i",
            &[&from, &to],
        )?;
        from = to + 1;
    }
    let inserted = started.elapsed();
    let arrived = wait(Duration::from_secs(300), || view.contains(&last));
    let took = started.elapsed();
    let stats = running.stop();
    drop_slot(&mut db, slot)?;
    stats?;
    if !arrived {
        return Err("the bulk load did not reach the view within 300 s".into());
    }
    let mut lines = vec![Line {
        what: format!("bulk {rows} rows in {txs} tx, PostgresSource"),
        rows,
        rows_per_sec: rows as f64 / took.as_secs_f64(),
        latency: None,
        note: format!(
            "{:.2} s from the first INSERT to all in the view; PostgreSQL's commits took \
             {:.2} s, the last row arrived {:.2} s after the last COMMIT",
            took.as_secs_f64(),
            inserted.as_secs_f64(),
            took.saturating_sub(inserted).as_secs_f64()
        ),
    }];
    drop(view);
    store.close()?;

    // A new store: the initial snapshot copies every row of the table.
    let total: i64 = db.query_one("SELECT count(*) FROM rows", &[])?.get(0);
    let total = usize::try_from(total)?;
    let store = open_store(&dir.path().join("snapshot.redb"))?;
    let view = store.view(&ROWS)?;
    let slot = "vs_bench_snapshot";
    let started = Instant::now();
    let running = spawn_source(&store, &view, url, slot, true)?;
    let arrived = wait(Duration::from_secs(300), || view.len() >= total);
    let took = started.elapsed();
    let stats = running.stop();
    drop_slot(&mut db, slot)?;
    stats?;
    if !arrived {
        return Err(format!("the snapshot copied {} of {total} rows in 300 s", view.len()).into());
    }
    lines.push(Line {
        what: format!("initial snapshot of {total} rows, new store"),
        rows: total as u64,
        rows_per_sec: total as f64 / took.as_secs_f64(),
        latency: None,
        note: format!(
            "{:.2} s from start to all in the view (chunks of 5,000)",
            took.as_secs_f64()
        ),
    });
    Ok(lines)
}
