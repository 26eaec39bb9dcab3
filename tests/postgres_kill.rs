//! The PostgreSQL source's kill loop: random SQL transactions run without pause across
//! the shop's tables while a child process projects them into views, and the parent
//! SIGKILLs the child at random moments (some during the initial snapshot), restarts
//! PostgreSQL (immediate shutdown) every tenth cycle, and starts a new store file for
//! each durability mode (Immediate, Periodic, Journal), which takes a new snapshot.
//!
//! After every kill the slot's confirmed position is checked to be no further than the
//! position the store holds: the slot is told only what is durable. At the end the
//! writer stops, a last child runs until it has seen a final marker, and every view
//! must equal its recomputation from the tables; the counters (posts per user,
//! followers, log rows) move by deltas, so a transaction applied twice would show.
//!
//! Needs the server of `.ci/postgres` (`VIEWSTORE_PG_URL`, `VIEWSTORE_PG_CTL`).
//! `VIEWSTORE_PG_KILL_CYCLES` sets the cycles (default 60); `VIEWSTORE_PG_KILL_SEED`
//! replays a run, whose seed is printed.

#[cfg(feature = "postgres")]
#[path = "support/shop.rs"]
mod shop;

#[cfg(not(feature = "postgres"))]
fn main() {
    eprintln!("skipped: needs the `postgres` feature");
}

#[cfg(feature = "postgres")]
fn main() {
    if let Err(e) = kill::main() {
        eprintln!("postgres_kill failed: {e}");
        std::process::exit(1);
    }
}

#[cfg(feature = "postgres")]
mod kill {
    use crate::shop::{self, Expected, Res, Rng, Views};
    use pg::{Client, NoTls};
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    use viewstore::postgres::{PostgresConfig, PostgresSource, STREAM};
    use viewstore::{Batch, Durability, Projector, Store};

    const CHILD_ENV: &str = "VIEWSTORE_PG_KILL_CHILD";
    const MODE_ENV: &str = "VIEWSTORE_PG_KILL_MODE";
    const FINISH_ENV: &str = "VIEWSTORE_PG_KILL_FINISH";
    const SLOT: &str = "vs_kill";
    const MODES: [&str; 3] = ["immediate", "periodic", "journal"];

    fn durability(mode: &str) -> Durability {
        match mode {
            "periodic" => Durability::Periodic { interval: Duration::from_millis(40) },
            "journal" => Durability::Journal,
            _ => Durability::Immediate,
        }
    }

    fn config(url: &str) -> Res<PostgresConfig> {
        Ok(PostgresConfig::new(url, SLOT)?
            .with_tables(&shop::TABLES)
            .with_feeds(&shop::FEEDS)
            .with_snapshot_chunk(2000)
            .with_heartbeat_interval(Duration::from_millis(200))
            .with_retries(60, Duration::from_millis(20), Duration::from_millis(500)))
    }

    /// The child: projects until killed, or (finishing) until the marker `end`.
    fn child(dir: &Path, url: &str) -> Res<()> {
        let mode = std::env::var(MODE_ENV)?;
        let store = Store::builder(dir.join("views.redb")).durability(durability(&mode)).open()?;
        let views = Views::open(&store)?;
        let v = views.clone();
        let source = PostgresSource::new(&store, config(url)?);
        let running =
            Projector::new(&store, source, move |e, b: &mut Batch| v.project(e, b)).spawn()?;
        let finishing = std::env::var(FINISH_ENV).is_ok();
        let mut last_report = Instant::now();
        loop {
            if running.is_finished() {
                return Err(format!("the projector stopped: {:?}", running.stop()).into());
            }
            if finishing && last_report.elapsed() > Duration::from_secs(5) {
                eprintln!("finishing: {:?}", running.stats());
                last_report = Instant::now();
            }
            if finishing && views.markers.get(&"end".to_owned()).is_some() {
                running.stop()?;
                store.close()?;
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn spawn_child(dir: &Path, url: &str, mode: &str, finish: bool) -> Res<Child> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.env(CHILD_ENV, dir).env("VIEWSTORE_PG_KILL_URL", url).env(MODE_ENV, mode);
        if finish {
            cmd.env(FINISH_ENV, "1");
        }
        let stderr = if finish { Stdio::inherit() } else { Stdio::piped() };
        Ok(cmd.stdout(Stdio::null()).stderr(stderr).spawn()?)
    }

    /// Fails with the child's words if it ended on its own.
    fn check_alive(child: &mut Child) -> Res<()> {
        if let Some(status) = child.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err)?;
            }
            return Err(format!("the child ended on its own ({status}): {err}").into());
        }
        Ok(())
    }

    /// The slot's confirmed position is no further than the store's durable one; whether
    /// the store has a position of the stream (the kill came after the snapshot).
    fn check_slot_behind_store(db: &mut Client, dir: &Path, mode: &str) -> Res<bool> {
        let store = Store::builder(dir.join("views.redb")).durability(durability(mode)).open()?;
        let stored = store.positions(SLOT)?;
        store.close()?;
        let Some(&(_, at)) = stored.iter().find(|(p, _)| *p == STREAM) else { return Ok(false) };
        let row = db.query_opt(
            "SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::text FROM pg_replication_slots \
             WHERE slot_name = $1",
            &[&SLOT],
        )?;
        if let Some(row) = row {
            let confirmed: u64 = row.get::<_, String>(0).parse()?;
            if confirmed > at {
                return Err(format!(
                    "the slot confirmed {confirmed:#x}, past the store's durable {at:#x}"
                )
                .into());
            }
        }
        Ok(true)
    }

    /// Random transactions until `stop`, reconnecting across server restarts.
    fn writer(url: &str, seed: u64, stop: &AtomicBool) -> u64 {
        let (mut rng, mut next_post, mut outbox) = (Rng(seed | 1), 1_000_000, 0);
        let mut committed = 0;
        let mut db: Option<Client> = None;
        while !stop.load(Ordering::Relaxed) {
            let Some(conn) = &mut db else {
                match Client::connect(url, NoTls) {
                    Ok(c) => db = Some(c),
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
                continue;
            };
            // Now and then a transaction held open past a heartbeat, and a message
            // outside any transaction: their positions must not meet a heartbeat's.
            if rng.below(60) == 0 {
                let held = conn.transaction().and_then(|mut tx| {
                    tx.execute("INSERT INTO txlog (note) VALUES ('held')", &[])?;
                    std::thread::sleep(Duration::from_millis(300));
                    tx.commit()
                });
                if held.is_err() {
                    db = None;
                }
                continue;
            }
            if rng.below(30) == 0
                && conn.execute("SELECT pg_logical_emit_message(false, 'loose', 'x')", &[]).is_err()
            {
                db = None;
                continue;
            }
            match shop::random_transaction(conn, &mut rng, &mut next_post, &mut outbox) {
                Ok(c) => committed += u64::from(c),
                // The server restarted: a new connection (the transaction is lost or
                // committed; the tables say which).
                Err(_) => db = None,
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        committed
    }

    /// Runs a last child until it has seen the marker `end`.
    fn run_last_child(db: &mut Client, dir: &Path, url: &str, mode: &str) -> Res<()> {
        // The last child may take a new snapshot (a kill interrupted the last one), whose
        // slot starts after any marker already sent: the marker is sent until it is seen.
        let mut last = spawn_child(dir, url, mode, true)?;
        let limit = Instant::now() + Duration::from_secs(120);
        let mut marked: Option<Instant> = None;
        while last.try_wait()?.is_none() {
            if marked.is_none_or(|m| m.elapsed() > Duration::from_millis(300)) {
                shop::mark(db, "end")?;
                marked = Some(Instant::now());
            }
            if Instant::now() > limit {
                for row in db.query(
                    "SELECT slot_name::text || ' active=' || active::text || ' confirmed=' || \
                     confirmed_flush_lsn::text || ' restart=' || restart_lsn::text || ' now=' || \
                     pg_current_wal_lsn()::text FROM pg_replication_slots",
                    &[],
                )? {
                    eprintln!("slot: {}", row.get::<_, String>(0));
                }
                for row in db.query(
                    "SELECT coalesce(application_name, '') || ' ' || coalesce(state, '') || ' ' || \
                     coalesce(wait_event, '') || ' ' || coalesce(query, '') FROM pg_stat_activity",
                    &[],
                )? {
                    eprintln!("activity: {}", row.get::<_, String>(0));
                }
                last.kill()?;
                return Err("the last child did not reach the end marker in 120 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if !last.wait()?.success() {
            check_alive(&mut last)?;
        }
        Ok(())
    }

    pub(crate) fn main() -> Res<()> {
        if let Ok(dir) = std::env::var(CHILD_ENV) {
            let url = std::env::var("VIEWSTORE_PG_KILL_URL")?;
            if let Err(e) = child(Path::new(&dir), &url) {
                eprintln!("{e}");
                std::process::exit(3);
            }
            return Ok(());
        }
        let Some(server) = shop::server_url()? else { return Ok(()) };
        let cycles: u32 = std::env::var("VIEWSTORE_PG_KILL_CYCLES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(60);
        let seed: u64 = std::env::var("VIEWSTORE_PG_KILL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(7, |d| d.as_nanos() as u64)
            });
        println!("postgres_kill: {cycles} cycles, seed {seed}");
        let url = shop::fresh_db(&server, "vs_kill")?;
        let mut db = Client::connect(&url, NoTls)?;
        shop::seed(&mut db, 1000)?;
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (url, stop) = (url.clone(), stop.clone());
            std::thread::spawn(move || writer(&url, seed, &stop))
        };
        let started = Instant::now();
        let mut rng = Rng(seed.rotate_left(17) | 1);
        let mut dir = tempfile::tempdir()?;
        let mut restarts = 0;
        let mut streaming = 0;
        let mut mode = MODES[0];
        let mut phase_start = 0;
        for cycle in 0..cycles {
            let phase = (cycle * 3 / cycles.max(1)) as usize;
            if MODES[phase] != mode {
                // A new store file: the source drops the slot and takes a new snapshot.
                mode = MODES[phase];
                dir = tempfile::tempdir()?;
                phase_start = cycle;
            }
            let mut child = spawn_child(dir.path(), &url, mode, false)?;
            // The first kills of a store come early, most during its first snapshots (each
            // one retaken after clearing the views); one in three later ones comes early,
            // the others later.
            let early = cycle - phase_start < 3 || cycle % 3 == 0;
            let delay = if cycle - phase_start < 3 {
                5 + rng.below(80)
            } else if early {
                30 + rng.below(300)
            } else {
                600 + rng.below(1400)
            };
            std::thread::sleep(Duration::from_millis(delay));
            if cycle % 10 == 5 {
                shop::restart_server()?;
                restarts += 1;
                db = Client::connect(&url, NoTls)?;
                std::thread::sleep(Duration::from_millis(100 + rng.below(300)));
            }
            check_alive(&mut child)?;
            child.kill()?;
            child.wait()?;
            shop::wait_slot_inactive(&mut db, SLOT)?;
            streaming += u32::from(check_slot_behind_store(&mut db, dir.path(), mode)?);
        }
        stop.store(true, Ordering::Relaxed);
        let committed = writer.join().map_err(|_| "the writer panicked")?;
        println!(
            "postgres_kill: the writer committed {committed} transactions in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        run_last_child(&mut db, dir.path(), &url, mode)?;
        let store =
            Store::builder(dir.path().join("views.redb")).durability(durability(mode)).open()?;
        let views = Views::open(&store)?;
        let repeated = shop::repeated_outbox(&views);
        if !repeated.is_empty() {
            return Err(format!("outbox messages applied more than once: {repeated:?}").into());
        }
        let tables = Expected::from_tables(&mut db)?;
        let projected = Expected::from_views(&views);
        if tables != projected {
            return Err(format!(
                "after {cycles} kills the views differ from the tables (seed {seed}): {}",
                tables.diff(&projected)
            )
            .into());
        }
        println!(
            "postgres_kill: {cycles} cycles ({streaming} killed after the snapshot, the others before \
             it or during it; {restarts} server restarts; {committed} transactions committed, {} log \
             rows) in {:.1} s: views equal the tables",
            tables.txlog.get(&0).copied().unwrap_or(0),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}
