//! A poll of the PostgreSQL source returns the transactions it has as soon as no more
//! have arrived, instead of holding them while a busy stream keeps coming: under a
//! continuous stream of small commits every poll that returns events takes a small
//! part of its timeout, so a committed row is not held back by up to the timeout.

#![cfg(feature = "postgres")]

#[path = "support/shop.rs"]
mod shop;

use pg::{Client, NoTls};
use shop::Res;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use viewstore::postgres::{PostgresConfig, PostgresSource};
use viewstore::{Source, Store};

#[test]
fn a_poll_returns_what_has_arrived_without_waiting_for_a_busy_stream() -> Res<()> {
    let Some(server) = shop::server_url()? else { return Ok(()) };
    let url = shop::fresh_db(&server, "vs_poll_latency")?;
    let mut db = Client::connect(&url, NoTls)?;
    shop::seed(&mut db, 1)?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let config = PostgresConfig::new(&url, "vs_poll_latency")?
        .with_tables(&shop::TABLES)
        .with_snapshot(false);
    let mut source = PostgresSource::new(&store, config);
    source.resume(&[]).map_err(|e| e.to_string())?;

    // One writer committing 1-row transactions back to back: far less than 1 ms apart.
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, committed, url) = (Arc::clone(&stop), Arc::clone(&committed), url.clone());
        std::thread::spawn(move || -> Result<(), pg::Error> {
            let mut db = Client::connect(&url, NoTls)?;
            let insert = db.prepare("INSERT INTO txlog (note) VALUES ('busy')")?;
            while !stop.load(Ordering::Relaxed) {
                db.execute(&insert, &[])?;
                committed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    let timeout = Duration::from_secs(3);
    let measured = (|| -> Res<(usize, Vec<Duration>)> {
        // The stream has begun once a poll brings something.
        let started = Instant::now();
        let mut received = 0;
        while received == 0 {
            received += source.poll(1_000_000, timeout).map_err(|e| e.to_string())?.len();
            if started.elapsed() > Duration::from_secs(30) {
                return Err("no transaction arrived within 30 s".into());
            }
        }
        let mut polls = Vec::new();
        let window = Instant::now();
        while window.elapsed() < Duration::from_secs(2) {
            let started = Instant::now();
            let events = source.poll(1_000_000, timeout).map_err(|e| e.to_string())?;
            if !events.is_empty() {
                polls.push(started.elapsed());
                received += events.len();
            }
        }
        Ok((received, polls))
    })();
    stop.store(true, Ordering::Relaxed);
    writer.join().map_err(|_| "the writer panicked")??;
    let (received, polls) = measured?;
    let committed = committed.load(Ordering::Relaxed);
    assert!(committed > 500, "the writer kept the stream busy: {committed} commits");
    assert!(!polls.is_empty(), "polls returned transactions");
    assert!(received > 10, "{received} transactions received");
    // Holding the first transaction while more keep coming would make each poll last
    // its whole timeout (3 s); what has arrived is a few milliseconds of commits.
    let slowest = polls.iter().max().copied().unwrap_or_default();
    assert!(slowest < Duration::from_millis(500), "polls took {polls:?}");
    Ok(())
}
