//! How fast views follow PostgreSQL: the [`PostgresSource`] against the SQL-level slot
//! functions and against PostgreSQL's own insert rate, on one machine.
//!
//! ```text
//! export VIEWSTORE_PG_URL=postgres://postgres@127.0.0.1:5432/postgres
//! cargo run --release --features postgres --example postgres_bench [-- URL]
//! ```
//!
//! It creates the database `vs_bench_pg` (dropping an older one with its slots), runs
//! every measurement, prints one table and drops the database. The connecting role
//! needs `CREATEDB` and `REPLICATION`; the server `wal_level = logical`.
//!
//! - **steady**: one connection commits 1-row transactions at a fixed rate for a few
//!   seconds while a projector of a `PostgresSource` writes each row into a view. The
//!   latency of a row is the time from its `COMMIT` returning to the writer until a
//!   watcher thread, polling the view every 100 µs, sees it.
//! - **sql-poll**: the same workload read by polling
//!   `pg_logical_slot_peek_binary_changes` on a plain SQL connection, writing each
//!   poll's rows as one batch, waiting until it is durable, then
//!   `pg_replication_slot_advance`.
//! - **backlog**: 1-row transactions committed while nobody reads, then drained: by the
//!   source, by peeks a page at a time, and the cost of one peek of the whole backlog
//!   (what each poll pays again while the slot is not advanced).
//! - **bulk**: rows inserted in a few large transactions, then the time until all are in
//!   the view; and a new store's initial snapshot of the table.
//! - **pgbench**: `pgbench -n -f <one INSERT> -T <secs>` with 1 and 4 clients against a
//!   table of the same shape, and one `INSERT ... SELECT` of the bulk size.
//!
//! Sizes (environment variables): `BENCH_STEADY_SECS` (default 10), `BENCH_RATES`
//! (`500,2000`), `BENCH_SQL_RATES` (`500,2000`), `BENCH_SQL_INTERVALS_MS` (`10,100`),
//! `BENCH_BACKLOG` (20,000 transactions), `BENCH_BULK_ROWS` (1,000,000),
//! `BENCH_BULK_TX` (4), `BENCH_PGBENCH_SECS` (10).

#![expect(
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "figures for display; row counts and ids far below 2^52"
)]

mod bulk;
mod pgbench;
mod sql_poll;
mod steady;

use pg::{Client, NoTls};
use std::time::{Duration, Instant};
use viewstore::{Durability, Store, ViewDef};

/// Errors of the benchmark, which may cross threads.
type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The database the benchmark owns.
const DB: &str = "vs_bench_pg";
/// The publication every slot reads.
const PUBLICATION: &str = "vs_bench";
/// The view the rows land in: id to payload.
const ROWS: ViewDef<i64, String> = ViewDef::new("rows");
/// The table's shape, for the source and for pgbench alike.
const SCHEMA: &str = "
    CREATE TABLE rows (id int8 PRIMARY KEY, payload text NOT NULL);
    CREATE PUBLICATION vs_bench FOR TABLE rows;
    CREATE SEQUENCE pgb_seq;
    CREATE TABLE pgb (id int8 PRIMARY KEY DEFAULT nextval('pgb_seq'), payload text NOT NULL);
    CREATE TABLE pgb_bulk (id int8 PRIMARY KEY, payload text NOT NULL);
";

/// A new store at `path`, synced as `BENCH_DURABILITY` says: `immediate` (the
/// default: fsync before each group's acknowledgement), `journal`, or `periodic`
/// (fsync at most every 100 ms).
fn open_store(path: &std::path::Path) -> Res<Store> {
    let durability = match std::env::var("BENCH_DURABILITY").as_deref() {
        Err(_) | Ok("immediate") => Durability::Immediate,
        Ok("journal") => Durability::Journal,
        Ok("periodic") => Durability::Periodic { interval: Duration::from_millis(100) },
        Ok(other) => return Err(format!("BENCH_DURABILITY={other}").into()),
    };
    Ok(Store::builder(path).durability(durability).open()?)
}

/// A payload of 64 bytes, as the SQL `repeat` of the bulk load makes them.
fn payload(id: i64) -> String {
    format!("{id:<64}")
}

/// A number from the environment, or `default`.
fn env_num(name: &str, default: u64) -> Res<u64> {
    match std::env::var(name) {
        Ok(v) => Ok(v.trim().replace('_', "").parse().map_err(|_| format!("{name}={v}"))?),
        Err(_) => Ok(default),
    }
}

/// A comma-separated list of numbers from the environment, or `default`.
fn env_list(name: &str, default: &[u64]) -> Res<Vec<u64>> {
    match std::env::var(name) {
        Ok(v) => v
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse().map_err(|_| format!("{name}={v}").into()))
            .collect(),
        Err(_) => Ok(default.to_vec()),
    }
}

/// `url` with its database replaced by `db`.
fn with_db(url: &str, db: &str) -> String {
    let (main, query) = url.split_once('?').map_or((url, None), |(m, q)| (m, Some(q)));
    let base = main.rsplit_once('/').map_or(main, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// Drops `DB` with its replication slots, if it exists.
fn drop_db(admin: &mut Client) -> Res<()> {
    for row in admin
        .query("SELECT slot_name::text FROM pg_replication_slots WHERE database = $1", &[&DB])?
    {
        let slot: String = row.get(0);
        drop_slot(admin, &slot)?;
    }
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))?;
    Ok(())
}

/// Drops `slot` once no walsender holds it (one whose client went away lets go soon).
fn drop_slot(db: &mut Client, slot: &str) -> Res<()> {
    let started = Instant::now();
    loop {
        let active: Option<bool> = db
            .query_opt("SELECT active FROM pg_replication_slots WHERE slot_name = $1", &[&slot])?
            .map(|r| r.get(0));
        match active {
            None => return Ok(()),
            Some(false) => {
                db.execute("SELECT pg_drop_replication_slot($1)", &[&slot])?;
                return Ok(());
            }
            Some(true) if started.elapsed() > Duration::from_secs(30) => {
                return Err(format!("slot `{slot}` stayed active for 30 s").into());
            }
            Some(true) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Latencies of rows, in nanoseconds, summarized.
#[derive(Debug, Clone, Copy)]
struct Latency {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Latency {
    fn of(mut nanos: Vec<u64>) -> Option<Latency> {
        nanos.sort_unstable();
        let at = |q: f64| {
            let i = ((nanos.len() as f64 - 1.0) * q).round() as usize;
            Duration::from_nanos(nanos[i.min(nanos.len() - 1)])
        };
        (!nanos.is_empty()).then(|| Latency { p50: at(0.50), p99: at(0.99), max: at(1.0) })
    }
}

/// One line of the printed table.
struct Line {
    what: String,
    rows: u64,
    rows_per_sec: f64,
    latency: Option<Latency>,
    note: String,
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn print(lines: &[Line]) {
    println!(
        "\n{:<44} {:>9} {:>11} {:>9} {:>9} {:>9}  note",
        "measurement", "rows", "rows/s", "p50 ms", "p99 ms", "max ms"
    );
    for l in lines {
        let (p50, p99, max) = l
            .latency
            .map_or(("-".into(), "-".into(), "-".into()), |t| (ms(t.p50), ms(t.p99), ms(t.max)));
        println!(
            "{:<44} {:>9} {:>11.0} {:>9} {:>9} {:>9}  {}",
            l.what, l.rows, l.rows_per_sec, p50, p99, max, l.note
        );
    }
}

fn main() -> Res<()> {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("VIEWSTORE_PG_URL").ok())
        .ok_or("give a connection string as the argument or in VIEWSTORE_PG_URL")?;
    let mut admin = Client::connect(&url, NoTls)?;
    drop_db(&mut admin)?;
    admin.batch_execute(&format!("CREATE DATABASE {DB}"))?;
    let db_url = with_db(&url, DB);
    let result = run(&db_url);
    let dropped = drop_db(&mut admin);
    let lines = result?;
    dropped?;
    print(&lines);
    Ok(())
}

fn run(url: &str) -> Res<Vec<Line>> {
    let mut db = Client::connect(url, NoTls)?;
    db.batch_execute(SCHEMA)?;
    let settings: Vec<String> = db
        .query(
            "SELECT name || '=' || setting FROM pg_settings WHERE name IN \
             ('server_version', 'fsync', 'synchronous_commit', 'wal_level') ORDER BY name",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    println!("server: {}", settings.join(" "));
    let secs = env_num("BENCH_STEADY_SECS", 10)?;
    let mut next_id = 1i64;
    let mut lines = Vec::new();
    for rate in env_list("BENCH_RATES", &[500, 2000])? {
        let line = steady::source(url, &mut next_id, rate, secs)?;
        eprintln!("{}: done", line.what);
        lines.push(line);
    }
    for rate in env_list("BENCH_SQL_RATES", &[500, 2000])? {
        for interval in env_list("BENCH_SQL_INTERVALS_MS", &[10, 100])? {
            let line =
                sql_poll::steady(url, &mut next_id, rate, secs, Duration::from_millis(interval))?;
            eprintln!("{}: done", line.what);
            lines.push(line);
        }
    }
    let backlog = env_num("BENCH_BACKLOG", 20_000)?;
    if backlog > 0 {
        lines.extend(sql_poll::backlog(url, &mut next_id, backlog)?);
        eprintln!("backlog: done");
    }
    let bulk_rows = env_num("BENCH_BULK_ROWS", 1_000_000)?;
    if bulk_rows > 0 {
        let txs = env_num("BENCH_BULK_TX", 4)?.max(1);
        lines.extend(bulk::load(url, &mut next_id, bulk_rows, txs)?);
        eprintln!("bulk: done");
    }
    let pg_secs = env_num("BENCH_PGBENCH_SECS", 10)?;
    if pg_secs > 0 {
        lines.extend(pgbench::run(url, pg_secs, bulk_rows.max(1))?);
    }
    Ok(lines)
}
