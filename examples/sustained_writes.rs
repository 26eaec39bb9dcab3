//! Durable writes sustained well past the journal's size, so that checkpoints show.
//!
//! Fills a view of RECORDS rows (default 1,000,000) with `Store::bulk_load`, then
//! overwrites WRITES random rows (default 10,000,000) as one-write batches, keeping
//! 10,000 of them in flight (the workload of `viewstore_pipelined` in
//! `benches/write.rs`, for much longer). Prints the rate of each second, the rate of the
//! first second against the whole run's, the slowest acknowledgement, and how many
//! groups and syncs the writer made.
//!
//! ```text
//! cargo run --release --example sustained_writes -- [journal|immediate] [WRITES] [RECORDS]
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};
use viewstore::testing::Rng;
use viewstore::{Batch, Durability, Store, Ticket, ViewDef};

#[path = "../benches/support/row.rs"]
mod row;
use row::Row;

const ROWS: ViewDef<u64, Row> = ViewDef::new("rows");
/// One-write batches in flight.
const IN_FLIGHT: usize = 10_000;

#[expect(clippy::cast_precision_loss, reason = "rates and milliseconds for printing")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let durability = match args.get(1).map_or("journal", String::as_str) {
        "journal" => Durability::Journal,
        "immediate" => Durability::Immediate,
        other => return Err(format!("unknown durability '{other}': journal or immediate").into()),
    };
    let writes: u64 = args.get(2).map_or(Ok(10_000_000), |s| s.parse())?;
    let records: u64 = args.get(3).map_or(Ok(1_000_000), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let store = Store::builder(dir.path().join("sustained.redb")).durability(durability).open()?;
    let rows = store.view(&ROWS)?;
    let filled = Instant::now();
    store.bulk_load(&rows, (0..records).map(|id| (id, 1, Row::new(id, 1))))?;
    println!("{durability:?}: {records} rows loaded in {:.1} s", filled.elapsed().as_secs_f64());

    let mut rng = Rng::new(17);
    let mut in_flight: VecDeque<(Instant, Ticket)> = VecDeque::with_capacity(IN_FLIGHT);
    let mut slowest = Duration::ZERO;
    let mut seconds: Vec<u64> = Vec::new();
    let (began, mut second_start, mut in_second) = (Instant::now(), Instant::now(), 0u64);
    let mut wait_oldest = |in_flight: &mut VecDeque<(Instant, Ticket)>| -> viewstore::Result<()> {
        if let Some((submitted, ticket)) = in_flight.pop_front() {
            ticket.wait()?;
            slowest = slowest.max(submitted.elapsed());
        }
        Ok(())
    };
    for n in 0..writes {
        let key = rng.below(records);
        let version = n + 2;
        let mut batch = Batch::new();
        batch.put(&rows, &key, Row::new(key, version), version)?;
        if in_flight.len() == IN_FLIGHT {
            wait_oldest(&mut in_flight)?;
            in_second += 1;
        }
        in_flight.push_back((Instant::now(), store.submit(batch)?));
        if second_start.elapsed() >= Duration::from_secs(1) {
            seconds.push(in_second);
            (second_start, in_second) = (Instant::now(), 0);
        }
    }
    while !in_flight.is_empty() {
        wait_oldest(&mut in_flight)?;
    }
    let total = began.elapsed().as_secs_f64();
    let stats = store.stats();
    println!("{writes} writes in {total:.1} s: {:.0} writes/s", writes as f64 / total);
    let mut sorted = seconds.clone();
    sorted.sort_unstable();
    if let (Some(first), Some(min), Some(max)) = (seconds.first(), sorted.first(), sorted.last()) {
        let median = sorted[sorted.len() / 2];
        println!(
            "acknowledged per second: first {first}, min {min}, median {median}, max {max} \
             (over {} whole seconds); first second / whole run: {:.2}x",
            seconds.len(),
            *first as f64 / (writes as f64 / total)
        );
    }
    println!("slowest acknowledgement: {:.1} ms", slowest.as_secs_f64() * 1e3);
    let ms = |ns: u64| ns as f64 / 1e6;
    let (commits, syncs) = (&stats.writer.commit_latency, &stats.writer.sync_latency);
    println!(
        "writer: {} groups, commit latency p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms; {} syncs \
         of the file, p99 {:.2} ms, max {:.1} ms",
        stats.writer.groups,
        ms(commits.percentile(50.0)),
        ms(commits.percentile(99.0)),
        ms(commits.max()),
        syncs.count(),
        ms(syncs.percentile(99.0)),
        ms(syncs.max()),
    );
    let per_second: Vec<String> = seconds.iter().map(u64::to_string).collect();
    println!("per second: {}", per_second.join(" "));
    assert_eq!(rows.len() as u64, records);
    store.close()?;
    Ok(())
}
