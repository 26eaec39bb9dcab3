//! The PostgreSQL source against a real server: a snapshot then random transactions
//! (some rolled back, some large) leave every view equal to the tables; outbox messages
//! arrive in commit order beside the row changes; a column added, dropped or retyped
//! mid-stream is read by name, and a value the handler cannot read is a dead letter;
//! wrong credentials, an unreachable server and a lost slot are clear errors, and a
//! resync recovers from the last; lag is reported in WAL bytes and seconds.

#![cfg(feature = "postgres")]

#[path = "support/shop.rs"]
mod shop;

use pg::{Client, NoTls};
use shop::{Expected, Res, Rng, Views};
use std::time::Duration;
use viewstore::postgres::{
    Change, PostgresConfig, PostgresError, PostgresSource, STREAM, SnapshotProgress,
};
use viewstore::{Batch, DEAD_LETTERS, OnFailure, Projector, RunningProjector, Store};

const LIMIT: Duration = Duration::from_secs(60);

fn config(url: &str, slot: &str) -> Res<PostgresConfig> {
    Ok(PostgresConfig::new(url, slot)?
        .with_tables(&shop::TABLES)
        .with_feeds(&shop::FEEDS)
        .with_snapshot_chunk(500)
        .with_heartbeat_interval(Duration::from_millis(100))
        .with_retries(20, Duration::from_millis(50), Duration::from_millis(500)))
}

fn spawn(store: &Store, views: &Views, source: PostgresSource) -> Res<RunningProjector> {
    let v = views.clone();
    Ok(Projector::new(store, source, move |event, batch: &mut Batch| v.project(event, batch))
        .spawn()?)
}

/// Waits for marker `name`; on failure, says why the projector stopped, if it did.
fn wait_marker(running: RunningProjector, views: &Views, name: &str) -> Res<RunningProjector> {
    match shop::wait_for_marker(views, name, LIMIT) {
        Ok(()) => Ok(running),
        Err(e) => Err(format!("{e}; the projector ended with {:?}", running.stop()).into()),
    }
}

fn check_equal(db: &mut Client, views: &Views) -> Res<()> {
    let tables = Expected::from_tables(db)?;
    let projected = Expected::from_views(views);
    if tables != projected {
        return Err(format!("the views differ from the tables: {}", tables.diff(&projected)).into());
    }
    Ok(())
}

#[test]
fn snapshot_then_random_transactions_leave_views_equal_to_the_tables() -> Res<()> {
    let Some(server) = shop::server_url()? else { return Ok(()) };
    let url = shop::fresh_db(&server, "vs_random")?;
    let mut db = Client::connect(&url, NoTls)?;
    shop::seed(&mut db, 200)?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let views = Views::open(&store)?;
    let progress = std::sync::Arc::new(std::sync::Mutex::new(Vec::<SnapshotProgress>::new()));
    let seen = progress.clone();
    let source =
        PostgresSource::new(&store, config(&url, "vs_random")?).on_snapshot_progress(move |p| {
            if let Ok(mut s) = seen.lock() {
                s.push(p.clone());
            }
        });
    let running = spawn(&store, &views, source)?;
    // Transactions while the snapshot is taken and after it.
    let (mut rng, mut next_post, mut outbox) = (Rng(0x5eed_1234), 100_000, 0);
    let mut committed = 0;
    for _ in 0..400 {
        committed +=
            u32::from(shop::random_transaction(&mut db, &mut rng, &mut next_post, &mut outbox)?);
    }
    shop::mark(&mut db, "end")?;
    let running = wait_marker(running, &views, "end")?;
    check_equal(&mut db, &views)?;
    assert!(committed > 300, "most transactions commit: {committed}");
    assert_eq!(views.outbox.len() as u64, outbox, "every committed outbox message");
    assert_eq!(shop::repeated_outbox(&views), Vec::<u64>::new(), "each once");
    let stats = running.stop()?;
    assert_eq!(stats.dead_letters, 0);
    let progress = progress.lock().map_err(|_| "poisoned")?.clone();
    let last = progress.last().ok_or("no snapshot progress was reported")?;
    assert!(last.done && last.tables == 4 && last.tables_done == 4, "{last:?}");
    // The slot (and its snapshot) is made before `spawn` returns, so the copy is the
    // seeded rows: 200 users, 600 posts, 200 follows, 10 log rows.
    assert_eq!(last.rows, 1010, "{last:?}");
    Ok(())
}

#[test]
fn outbox_messages_arrive_in_commit_order_beside_row_changes() -> Res<()> {
    let Some(server) = shop::server_url()? else { return Ok(()) };
    let url = shop::fresh_db(&server, "vs_outbox")?;
    let mut db = Client::connect(&url, NoTls)?;
    shop::seed(&mut db, 10)?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let views = Views::open(&store)?;
    let running = spawn(&store, &views, PostgresSource::new(&store, config(&url, "vs_outbox")?))?;
    // Two connections interleave: the message order is the commit order, not the order
    // the messages were emitted in.
    let mut other = Client::connect(&url, NoTls)?;
    let mut a = db.transaction()?;
    a.execute("INSERT INTO txlog (note) VALUES ('a')", &[])?;
    a.execute("SELECT pg_logical_emit_message(true, 'outbox', '2')", &[])?;
    let mut b = other.transaction()?;
    b.execute("SELECT pg_logical_emit_message(true, 'outbox', '1')", &[])?;
    b.execute("INSERT INTO txlog (note) VALUES ('b')", &[])?;
    b.commit()?;
    a.execute("SELECT pg_logical_emit_message(true, 'outbox', '3')", &[])?;
    a.commit()?;
    // A rolled-back message is never delivered.
    let mut c = db.transaction()?;
    c.execute("SELECT pg_logical_emit_message(true, 'outbox', '99')", &[])?;
    c.rollback()?;
    shop::mark(&mut db, "end")?;
    let running = wait_marker(running, &views, "end")?;
    let got: Vec<(u64, (u64, u32))> =
        views.outbox.range(..).into_iter().map(|(k, v)| (k, (v.0, v.1))).collect();
    assert_eq!(shop::repeated_outbox(&views), Vec::<u64>::new());
    assert_eq!(got.len(), 3, "{got:?}");
    let (one, two, three) = (got[0].1, got[1].1, got[2].1);
    // 1 committed first (first in its transaction); 2 and 3 came in one later
    // transaction, after its row (places 1 and 2 beside the row at 0).
    assert!(one.0 < two.0, "commit order: {got:?}");
    assert_eq!(two.0, three.0, "one transaction: {got:?}");
    assert_eq!((one.1, two.1, three.1), (0, 1, 2), "places among the changes: {got:?}");
    assert!(views.outbox.get(&99).is_none());
    check_equal(&mut db, &views)?;
    running.stop()?;
    Ok(())
}

#[test]
fn columns_added_dropped_and_retyped_mid_stream() -> Res<()> {
    let Some(server) = shop::server_url()? else { return Ok(()) };
    let url = shop::fresh_db(&server, "vs_schema")?;
    let mut db = Client::connect(&url, NoTls)?;
    shop::seed(&mut db, 20)?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let views = Views::open(&store)?;
    let letters = store.view(&DEAD_LETTERS)?;
    let v = views.clone();
    let running = Projector::new(
        &store,
        PostgresSource::new(&store, config(&url, "vs_schema")?),
        move |event, batch: &mut Batch| v.project(event, batch),
    )
    .on_failure(OnFailure::DeadLetter(letters.clone()))
    .spawn()?;
    // Each statement its own transaction.
    for sql in [
        "INSERT INTO users VALUES (1001, 'before', NULL)",
        "ALTER TABLE users ADD COLUMN age int4",
        "INSERT INTO users VALUES (1002, 'with age', 'b', 41)",
        // Columns in a new order: `bio` after `age` (DDL itself is not streamed, so the
        // values dropped with a column stay in the views until the rows change).
        "ALTER TABLE users RENAME COLUMN bio TO old_bio",
        "ALTER TABLE users ADD COLUMN bio text",
        "UPDATE users SET bio = old_bio",
        "ALTER TABLE users DROP COLUMN old_bio",
        "INSERT INTO users (id, name, age) VALUES (1003, 'without bio', 7)",
        "UPDATE users SET bio = 'back' WHERE id = 1003",
        // A column retyped to what the handler cannot read: the transactions with
        // such a value are dead letters; the ones after them apply.
        "ALTER TABLE follows ALTER COLUMN followee TYPE text",
        "INSERT INTO follows VALUES (1, 'not a number')",
        "DELETE FROM follows WHERE followee = 'not a number'",
        "ALTER TABLE follows ALTER COLUMN followee TYPE int8 USING followee::int8",
        "INSERT INTO follows VALUES (2, 3) ON CONFLICT DO NOTHING",
        "INSERT INTO users (id, name, age) VALUES (1004, 'after', 5)",
    ] {
        db.batch_execute(sql)?;
    }
    shop::mark(&mut db, "end")?;
    let running = wait_marker(running, &views, "end")?;
    let stats = running.stop()?;
    assert_eq!(stats.dead_letters, 2, "the insert and the delete of the unreadable row");
    let letter = letters.range(..).into_iter().next().ok_or("no dead letter")?;
    assert!(letter.1.error.contains("followee"), "{letter:?}");
    assert_eq!(views.users.get(&1002).map(|u| u.bio.clone()), Some(Some("b".into())));
    assert_eq!(views.users.get(&1003).map(|u| u.bio.clone()), Some(Some("back".into())));
    assert!(views.users.get(&1004).is_some());
    check_equal(&mut db, &views)?;
    Ok(())
}

#[test]
fn bad_credentials_and_an_unreachable_server_are_clear_errors() -> Res<()> {
    let Some(server) = shop::server_url()? else { return Ok(()) };
    let mut admin = Client::connect(&server, NoTls)?;
    admin.batch_execute(
        "DO $$ BEGIN CREATE ROLE vs_password LOGIN REPLICATION PASSWORD 'right';
         EXCEPTION WHEN duplicate_object THEN NULL; END $$;",
    )?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let host = server.split('@').nth(1).and_then(|h| h.split('/').next()).ok_or("url")?;
    let wrong = format!("postgres://vs_password:wrong@{host}/postgres");
    let source = PostgresSource::new(&store, PostgresConfig::new(&wrong, "vs_creds")?);
    let started = std::time::Instant::now();
    let err = Projector::new(&store, source, |_, _: &mut Batch| Ok(())).start().err();
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("refused user `vs_password`"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5), "credentials are not retried");
    // The right password authenticates by SCRAM-SHA-256 (the publication is missing,
    // and no tables were given: that is the error now).
    let right = format!("postgres://vs_password:right@{host}/postgres");
    let source = PostgresSource::new(&store, PostgresConfig::new(&right, "vs_creds")?);
    let text = Projector::new(&store, source, |_, _: &mut Batch| Ok(()))
        .start()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(text.contains("publication `vs_creds` does not exist"), "{text}");
    // Nothing listens on port 1: bounded retries, then an error naming the address.
    let config = PostgresConfig::new("postgres://u@127.0.0.1:1/db", "vs_nowhere")?.with_retries(
        3,
        Duration::from_millis(10),
        Duration::from_millis(20),
    );
    let text =
        Projector::new(&store, PostgresSource::new(&store, config), |_, _: &mut Batch| Ok(()))
            .start()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
    assert!(text.contains("127.0.0.1:1 could not be reached after 3 attempts"), "{text}");
    Ok(())
}

#[test]
fn a_lost_slot_is_a_clear_error_and_a_resync_recovers() -> Res<()> {
    let Some(server) = shop::server_url()? else { return Ok(()) };
    let url = shop::fresh_db(&server, "vs_resync")?;
    let mut db = Client::connect(&url, NoTls)?;
    shop::seed(&mut db, 30)?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let views = Views::open(&store)?;
    let running = spawn(&store, &views, PostgresSource::new(&store, config(&url, "vs_resync")?))?;
    shop::mark(&mut db, "first")?;
    let running = wait_marker(running, &views, "first")?;
    running.stop()?;
    shop::wait_slot_inactive(&mut db, "vs_resync")?;
    // The slot goes (an operator, or max_slot_wal_keep_size) while changes happen.
    db.batch_execute(
        "SELECT pg_drop_replication_slot('vs_resync');
         DELETE FROM posts WHERE id % 2 = 0;
         INSERT INTO users VALUES (5000, 'while away', NULL);",
    )?;
    let err = Projector::new(
        &store,
        PostgresSource::new(&store, config(&url, "vs_resync")?),
        |_, _: &mut Batch| Ok(()),
    )
    .start()
    .err();
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("slot `vs_resync` that the store's position needs is gone"), "{text}");
    assert!(text.contains("resync"), "{text}");
    // A resync clears the views and copies the tables again from a new slot; stopped
    // right after the copy, before any transaction, the store agrees with that slot.
    let source = PostgresSource::new(&store, config(&url, "vs_resync")?.resync(true));
    let running = spawn(&store, &views, source)?;
    let copied = running.wait_until(LIMIT, |s| {
        s.partitions.iter().any(|p| {
            p.partition == 1
                && p.applied.is_some_and(|a| a & 0xFFFF_FFFF == 0xFFFF_FFFF && a >> 32 == 2)
        })
    });
    assert!(copied, "the second snapshot completes: {:?}", running.stats());
    running.stop()?;
    shop::wait_slot_inactive(&mut db, "vs_resync")?;
    // A plain restart now streams on from the new slot.
    let running = spawn(&store, &views, PostgresSource::new(&store, config(&url, "vs_resync")?))?;
    db.batch_execute("INSERT INTO posts VALUES (777777, 5000, 'after the resync')")?;
    shop::mark(&mut db, "second")?;
    let running = wait_marker(running, &views, "second")?;
    check_equal(&mut db, &views)?;
    running.stop()?;
    Ok(())
}

#[test]
fn a_store_older_than_its_slot_is_refused() -> Res<()> {
    let Some(server) = shop::server_url()? else { return Ok(()) };
    let url = shop::fresh_db(&server, "vs_older")?;
    let mut db = Client::connect(&url, NoTls)?;
    shop::seed(&mut db, 10)?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let views = Views::open(&store)?;
    let running = spawn(&store, &views, PostgresSource::new(&store, config(&url, "vs_older")?))?;
    shop::mark(&mut db, "first")?;
    let running = wait_marker(running, &views, "first")?;
    // A copy of the store now, then more changes the slot is told of.
    store.backup(dir.path().join("copy.redb"))?;
    db.batch_execute("INSERT INTO users VALUES (500, 'later', NULL)")?;
    shop::mark(&mut db, "second")?;
    let running = wait_marker(running, &views, "second")?;
    running.stop()?;
    store.close()?;
    shop::wait_slot_inactive(&mut db, "vs_older")?;
    // The copy's position is behind the slot's: the changes between are lost to it.
    let copy = Store::open(dir.path().join("copy.redb"))?;
    let text = Projector::new(
        &copy,
        PostgresSource::new(&copy, config(&url, "vs_older")?),
        |_, _: &mut Batch| Ok(()),
    )
    .start()
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(text.contains("past the store's"), "{text}");
    assert!(text.contains("resync"), "{text}");
    Ok(())
}

#[test]
fn lag_is_reported_in_wal_bytes_and_seconds() -> Res<()> {
    let Some(server) = shop::server_url()? else { return Ok(()) };
    let url = shop::fresh_db(&server, "vs_lag")?;
    let mut db = Client::connect(&url, NoTls)?;
    shop::seed(&mut db, 10)?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let views = Views::open(&store)?;
    let running = spawn(&store, &views, PostgresSource::new(&store, config(&url, "vs_lag")?))?;
    db.batch_execute("INSERT INTO txlog (note) SELECT 'x' FROM generate_series(1, 1000)")?;
    shop::mark(&mut db, "end")?;
    let running = wait_marker(running, &views, "end")?;
    let caught_up = running.wait_until(LIMIT, |s| {
        s.partitions.iter().any(|p| p.partition == STREAM && p.lag == Some(0))
    });
    let stats = running.stop()?;
    let stream = stats.partitions.iter().find(|p| p.partition == STREAM).ok_or("no stream")?;
    assert!(stream.head.is_some_and(|h| h > 0), "{stream:?}");
    assert!(caught_up, "lag reaches 0 bytes once every commit is applied: {stream:?}");
    assert_eq!(stream.behind, Some(Duration::ZERO), "{stream:?}");
    // The slot was told the durable position: its confirmed LSN is the store's.
    let confirmed: String = db
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'vs_lag'",
            &[],
        )?
        .get(0);
    let stored = store.positions("vs_lag")?;
    let at = stored.iter().find(|(p, _)| *p == STREAM).map(|&(_, at)| at).ok_or("no position")?;
    assert_eq!(confirmed, format!("{:X}/{:X}", at >> 32, at & 0xFFFF_FFFF));
    Ok(())
}

#[test]
fn unknown_messages_and_change_kinds_are_delivered_not_fatal() -> Res<()> {
    let Some(server) = shop::server_url()? else { return Ok(()) };
    let url = shop::fresh_db(&server, "vs_kinds")?;
    let mut db = Client::connect(&url, NoTls)?;
    shop::seed(&mut db, 5)?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let views = Views::open(&store)?;
    let kinds = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = kinds.clone();
    let v = views.clone();
    let running = Projector::new(
        &store,
        PostgresSource::new(&store, config(&url, "vs_kinds")?),
        move |event, batch: &mut Batch| {
            for change in &event.payload.changes {
                if let Change::Truncate { relations } = change {
                    let names: Vec<&str> = relations.iter().map(|r| r.name.as_str()).collect();
                    seen.lock().map_err(|_| "poisoned")?.push(format!("truncate {names:?}"));
                    return Ok(());
                }
                if let Change::Message { prefix, .. } = change
                    && prefix != "outbox"
                    && prefix != "marker"
                {
                    seen.lock().map_err(|_| "poisoned")?.push(format!("message {prefix}"));
                }
            }
            v.project(event, batch)
        },
    )
    .spawn()?;
    db.batch_execute(
        "SELECT pg_logical_emit_message(false, 'loose', 'outside any transaction');
         TRUNCATE follows;",
    )?;
    shop::mark(&mut db, "end")?;
    let running = wait_marker(running, &views, "end")?;
    running.stop()?;
    let kinds = kinds.lock().map_err(|_| "poisoned")?.clone();
    assert_eq!(kinds, ["message loose", "truncate [\"follows\"]"]);
    Ok(())
}

#[test]
fn configuration_errors_name_the_fix() {
    let e = PostgresConfig::new("host=h sslmode=verify-full", "s").err();
    assert!(matches!(e, Some(PostgresError::Config { .. })));
    assert!(e.is_some_and(|e| e.to_string().contains("sslmode=disable")));
}
