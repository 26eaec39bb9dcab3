//! The SQL-level alternative to streaming replication, measured for the choice of
//! client: poll `pg_logical_slot_peek_binary_changes`, write the rows, wait until they
//! are durable, then `pg_replication_slot_advance`. Not part of the library.

use crate::steady::{measure, spawn_source};
use crate::{Line, PUBLICATION, ROWS, Res, drop_slot, open_store};
use pg::{Client, NoTls};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use viewstore::{Batch, Store, View};

/// What one peek brought: inserted rows at their transaction's commit LSN, and the end
/// LSN of the last whole transaction.
#[derive(Default)]
struct Peeked {
    rows: Vec<(i64, String, u64)>,
    end_lsn: Option<u64>,
}

fn be_u64(b: &[u8], at: usize) -> Res<u64> {
    Ok(u64::from_be_bytes(b.get(at..at + 8).ok_or("a message cut short")?.try_into()?))
}

/// Reads the `pgoutput` (protocol 1) messages of one peek: begin, insert, commit; the
/// others (relation, type, origin) are skipped.
fn decode(messages: &[Vec<u8>], out: &mut Peeked) -> Res<()> {
    let mut commit_lsn = 0;
    for m in messages {
        match m.first() {
            // Begin: final (commit) LSN, commit time, xid.
            Some(b'B') => commit_lsn = be_u64(m, 1)?,
            // Commit: flags, commit LSN, end LSN, commit time.
            Some(b'C') => out.end_lsn = Some(be_u64(m, 10)?),
            // Insert: relation OID, 'N', column count, then per column a kind and value.
            Some(b'I') => {
                let mut at = 1 + 4 + 1 + 2;
                let mut values = Vec::with_capacity(2);
                for _ in 0..2 {
                    let kind = *m.get(at).ok_or("an insert cut short")?;
                    if kind != b't' {
                        return Err("a NULL or unchanged value in `rows`".into());
                    }
                    let len = u32::from_be_bytes(m.get(at + 1..at + 5).ok_or("cut")?.try_into()?);
                    let start = at + 5;
                    let end = start + len as usize;
                    values.push(std::str::from_utf8(m.get(start..end).ok_or("cut")?)?.to_owned());
                    at = end;
                }
                let payload = values.pop().unwrap_or_default();
                let id: i64 = values.pop().unwrap_or_default().parse()?;
                out.rows.push((id, payload, commit_lsn));
            }
            _ => {}
        }
    }
    Ok(())
}

/// One poll: peek (at most `limit` changes), write the rows as one batch, wait until it
/// is durable, advance the slot. Returns the rows and the time the peek took.
fn poll_once(
    db: &mut Client,
    store: &Store,
    view: &View<i64, String>,
    slot: &str,
    limit: Option<i32>,
) -> Res<(usize, Duration)> {
    let started = Instant::now();
    let data: Vec<Vec<u8>> = db
        .query(
            "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, \
             'proto_version', '1', 'publication_names', $3)",
            &[&slot, &limit, &PUBLICATION],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let peek = started.elapsed();
    let mut peeked = Peeked::default();
    decode(&data, &mut peeked)?;
    let n = peeked.rows.len();
    if n > 0 {
        let mut batch = Batch::new();
        for (id, payload, lsn) in peeked.rows {
            batch.put(view, &id, payload, lsn)?;
        }
        store.submit(batch)?.wait()?;
    }
    if let Some(end) = peeked.end_lsn {
        let lsn = format!("{:X}/{:X}", end >> 32, end & 0xFFFF_FFFF);
        db.query(
            "SELECT 1 FROM pg_replication_slot_advance($1, $2::text::pg_lsn)",
            &[&slot, &lsn],
        )?;
    }
    Ok((n, peek))
}

/// The steady workload read by polling every `interval`.
pub(crate) fn steady(
    url: &str,
    next_id: &mut i64,
    rate: u64,
    secs: u64,
    interval: Duration,
) -> Res<Line> {
    let dir = tempfile::tempdir()?;
    let store = open_store(&dir.path().join("sql.redb"))?;
    let view = store.view(&ROWS)?;
    let slot = "vs_bench_sql";
    let mut admin = Client::connect(url, NoTls)?;
    admin.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", &[&slot])?;
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (store, view, stop, url) =
            (store.clone(), view.clone(), Arc::clone(&stop), url.to_owned());
        std::thread::spawn(move || -> Res<(u64, Duration)> {
            let mut db = Client::connect(&url, NoTls)?;
            let (mut polls, mut peeking) = (0u64, Duration::ZERO);
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let (_, peek) = poll_once(&mut db, &store, &view, slot, None)?;
                polls += 1;
                peeking += peek;
                if let Some(rest) = interval.checked_sub(started.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
            Ok((polls, peeking))
        })
    };
    let measured = measure(url, &view, next_id, rate, secs);
    stop.store(true, Ordering::Relaxed);
    let poller_result = poller.join().map_err(|_| "the poller panicked")?;
    drop_slot(&mut admin, slot)?;
    let (rows, per_sec, latency, reached) = measured?;
    let (polls, peeking) = poller_result?;
    Ok(Line {
        what: format!("steady {rate}/s, SQL peek every {} ms", interval.as_millis()),
        rows,
        rows_per_sec: per_sec,
        latency,
        note: format!(
            "writer reached {reached:.0} tx/s; {polls} polls, peek {:.2} ms on average",
            peeking.as_secs_f64() * 1e3 / polls.max(1) as f64
        ),
    })
}

/// `count` 1-row transactions committed while nobody reads, then drained three ways.
pub(crate) fn backlog(url: &str, next_id: &mut i64, count: u64) -> Res<Vec<Line>> {
    let mut db = Client::connect(url, NoTls)?;
    let (sql_slot, stream_slot) = ("vs_bench_backlog", "vs_bench_catchup");
    for slot in [sql_slot, stream_slot] {
        db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", &[&slot])?;
    }
    let first = *next_id;
    let last = first + i64::try_from(count)? - 1;
    *next_id = last + 1;
    let started = Instant::now();
    db.batch_execute(&format!(
        "DO $$ BEGIN FOR i IN {first}..{last} LOOP \
           INSERT INTO rows VALUES (i, rpad(i::text, 64)); COMMIT; \
         END LOOP; END $$"
    ))?;
    let inserted = started.elapsed();
    let what = |how: &str| format!("backlog of {count} 1-row tx: {how}");
    let mut lines = Vec::new();

    // The source catching up from its slot.
    let dir = tempfile::tempdir()?;
    let store = open_store(&dir.path().join("catchup.redb"))?;
    let view = store.view(&ROWS)?;
    let started = Instant::now();
    let running = spawn_source(&store, &view, url, stream_slot, false)?;
    let limit = started + Duration::from_secs(120);
    while !view.contains(&last) && Instant::now() < limit {
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = started.elapsed();
    running.stop()?;
    drop_slot(&mut db, stream_slot)?;
    if !view.contains(&last) {
        return Err("the source did not catch up on the backlog within 120 s".into());
    }
    lines.push(Line {
        what: what("PostgresSource catches up"),
        rows: count,
        rows_per_sec: count as f64 / took.as_secs_f64(),
        latency: None,
        note: format!(
            "{:.2} s; PostgreSQL committed them in {:.2} s",
            took.as_secs_f64(),
            inserted.as_secs_f64()
        ),
    });

    // One peek of the whole backlog: what every poll pays until the slot advances.
    let started = Instant::now();
    let n = db
        .query(
            "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, \
             'proto_version', '1', 'publication_names', $2)",
            &[&sql_slot, &PUBLICATION],
        )?
        .len();
    let took = started.elapsed();
    lines.push(Line {
        what: what("one SQL peek of all of it"),
        rows: count,
        rows_per_sec: count as f64 / took.as_secs_f64(),
        latency: None,
        note: format!(
            "{:.2} s for {n} messages, paid again by each poll before an advance",
            took.as_secs_f64()
        ),
    });

    // Drained a page at a time (about 1,000 transactions of 3 messages), each page
    // written, made durable and advanced past.
    let dir = tempfile::tempdir()?;
    let store = open_store(&dir.path().join("drain.redb"))?;
    let view = store.view(&ROWS)?;
    let started = Instant::now();
    let (mut rows, mut polls) = (0usize, 0u64);
    loop {
        let (n, _) = poll_once(&mut db, &store, &view, sql_slot, Some(3_000))?;
        polls += 1;
        if n == 0 {
            break;
        }
        rows += n;
    }
    let took = started.elapsed();
    drop_slot(&mut db, sql_slot)?;
    if !view.contains(&last) {
        return Err(format!("the SQL drain ended after {rows} of {count} rows").into());
    }
    lines.push(Line {
        what: what("SQL peek pages of ~1,000 tx + advance"),
        rows: rows as u64,
        rows_per_sec: rows as f64 / took.as_secs_f64(),
        latency: None,
        note: format!("{:.2} s in {polls} polls", took.as_secs_f64()),
    });
    Ok(lines)
}
