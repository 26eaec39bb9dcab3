//! Where reads lose time under a steady write rate: the CPU they get, or what each read
//! costs on it.
//!
//! Loads the read benchmark's 1,000,000 records, then times one thread of
//! `View::get_with` reads of random keys (a list of 2^20, read in turn; the writer
//! writes the same list in turn, as in the benchmark) for SECONDS (default 3) at a
//! time, idle and under the benchmark's paced writer
//! (`read_get/viewstore_get_under_writes`: a batch of 100 puts every 5 ms, 20,000
//! writes/s, up to 64 batches outstanding), alternating, ROUNDS times (default 3). MODE
//! is the store's durability while it is read and written: `immediate` (the
//! benchmark's) or `journal`; `CACHE_MIB`, when given, sets redb's page cache
//! (`StoreBuilder::cache_size`, in MiB) instead of the mode's default.
//!
//! For each timed stretch it prints, from the kernel's per-thread scheduler figures
//! (`/proc/self/task/*/schedstat`: time on a CPU, time runnable but waiting for one;
//! Linux only):
//!
//! - reads per second of wall time, and nanoseconds per read of wall time;
//! - nanoseconds per read of the reading thread's time on a CPU (what a read costs when
//!   it runs);
//! - the share of the stretch the reading thread spent waiting for a CPU while
//!   runnable;
//! - every thread's time on a CPU, by thread name (names cut to 15 bytes by the kernel),
//!   in CPU-milliseconds per second, and the whole process's, which also counts threads
//!   that started and ended within the stretch (`/proc/self/stat`, in 10 ms ticks);
//! - the bytes the process wrote to files, and the write calls that wrote them
//!   (`/proc/self/io`).
//!
//! If the wall-time loss equals the time the reader waited for a CPU, the reads lose
//! the CPU to the writer's threads; if its on-CPU time per read grows, each read costs
//! more (caches, memory traffic).
//!
//! ```text
//! cargo run --release --example reads_under_writes -- [immediate|journal] [SECONDS] [ROUNDS] [CACHE_MIB]
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use viewstore::{Batch, Durability, Store, View};

#[path = "../benches/support/profile.rs"]
mod profile;
#[path = "../benches/support/profile_fixture.rs"]
mod profile_fixture;
use profile::{PROFILES, Profile, profile};
use profile_fixture::{fill_profiles, random_keys};

const RECORDS: u64 = 1_000_000;
const BATCH: u64 = 100;
const WRITES_PER_SECOND: u64 = 20_000;
const IN_FLIGHT: usize = 64;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A thread's (time on a CPU, time runnable and waiting), in nanoseconds.
fn schedstat(path: &std::path::Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    Some((fields.next()?.ok()?, fields.next()?.ok()?))
}

/// Every thread of the process, by thread id: its name and (on a CPU, waiting)
/// nanoseconds.
fn threads() -> BTreeMap<String, (String, u64, u64)> {
    let mut all = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return all;
    };
    for task in tasks.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if let Some((run, wait)) = schedstat(&task.path().join("schedstat")) {
            let id = task.file_name().to_string_lossy().into_owned();
            all.insert(id, (name.trim().to_owned(), run, wait));
        }
    }
    all
}

/// The process's CPU time so far, every thread's, exited ones included (`utime` and
/// `stime` of `/proc/self/stat`), in clock ticks (100 a second on Linux).
fn process_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split(' ').skip(11);
    Some(fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?)
}

/// The bytes the process has passed to `write` calls so far, and those calls
/// (`wchar`, `syscw` of `/proc/self/io`).
fn written() -> Option<(u64, u64)> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    let field = |name: &str| {
        io.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some((field("wchar:")?, field("syscw:")?))
}

/// The reading thread's own figures.
fn own() -> (u64, u64) {
    schedstat(std::path::Path::new("/proc/thread-self/schedstat")).unwrap_or_default()
}

/// One timed stretch of reads: printed, and its reads per wall second returned.
#[expect(clippy::cast_precision_loss, reason = "figures for display")]
fn stretch(label: &str, view: &View<u64, Profile>, keys: &[u64], seconds: f64) -> f64 {
    let before = threads();
    let ticks = process_ticks();
    let io = written();
    let (run0, wait0) = own();
    let started = Instant::now();
    let mut reads = 0u64;
    let mut acc = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        for &k in keys {
            acc = acc.wrapping_add(view.get_with(&black_box(k), |p| p.followers).unwrap_or(0));
        }
        reads += keys.len() as u64;
    }
    black_box(acc);
    let wall = started.elapsed().as_nanos() as f64;
    let (run1, wait1) = own();
    let ticks = process_ticks().zip(ticks).map(|(after, before)| after - before);
    let io = written().zip(io).map(|(after, before)| (after.0 - before.0, after.1 - before.1));
    let after = threads();
    let (run, wait) = ((run1 - run0) as f64, (wait1 - wait0) as f64);
    println!(
        "{label:<13} {:>10.0} reads/s  {:>6.1} ns a read (wall)  {:>6.1} ns a read (on a CPU)  \
         waiting for a CPU {:>4.1}%",
        reads as f64 / (wall / 1e9),
        wall / reads as f64,
        run / reads as f64,
        100.0 * wait / wall,
    );
    // Each thread's time in the stretch (a thread id seen only after it is new), summed
    // by name: threads of one name come and go (work run beside the writer).
    let mut by_name: BTreeMap<&str, u64> = BTreeMap::new();
    for (id, (name, run, _)) in &after {
        let ran = run.saturating_sub(before.get(id).map_or(0, |b| b.1));
        *by_name.entry(name.as_str()).or_default() += ran;
    }
    let others: Vec<String> = by_name
        .iter()
        .filter_map(|(name, run)| {
            let ms_per_s = *run as f64 / wall * 1e3;
            (ms_per_s >= 1.0).then(|| format!("{name} {ms_per_s:.0}"))
        })
        .collect();
    println!("              CPU ms a second, by thread: {}", others.join(", "));
    if let Some(ticks) = ticks {
        // Threads that ran and ended within the stretch (work run beside the writer)
        // count here and in no thread above.
        let ms_per_s = ticks as f64 * 10.0 / (wall / 1e9);
        println!("              CPU ms a second, the whole process: {ms_per_s:.0}");
    }
    if let Some((bytes, calls)) = io.filter(|io| io.1 > 0) {
        let seconds = wall / 1e9;
        println!(
            "              written: {:.1} MB a second in {:.0} write calls a second",
            bytes as f64 / 1e6 / seconds,
            calls as f64 / seconds
        );
    }
    reads as f64 / (wall / 1e9)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let durability = match args.first().map_or("immediate", String::as_str) {
        "immediate" => Durability::Immediate,
        "journal" => Durability::Journal,
        other => return Err(format!("unknown mode {other}: immediate or journal").into()),
    };
    let seconds: f64 = args.get(1).map_or(Ok(3.0), |a| a.parse())?;
    let rounds: usize = args.get(2).map_or(Ok(3), |a| a.parse())?;
    if rounds == 0 {
        return Err("ROUNDS must be at least 1".into());
    }
    let cache_mib: Option<usize> = args.get(3).map(|a| a.parse()).transpose()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("views.redb");
    fill_profiles(&path, RECORDS)?;
    let mut builder = Store::builder(&path).durability(durability);
    if let Some(mib) = cache_mib {
        builder = builder.cache_size(mib << 20);
    }
    let store = builder.open()?;
    let view: View<u64, Profile> = store.view(&PROFILES)?;
    // One list of random keys, read in turn and written in turn, as the benchmark's.
    let keys = random_keys(1 << 20, 0x5EED, RECORDS);
    let version = AtomicU64::new(2);
    let (mut idle, mut busy) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        println!("round {round}");
        idle.push(stretch("idle", &view, &keys, seconds));
        let stop = AtomicBool::new(false);
        let began = Instant::now();
        let written = std::thread::scope(|s| -> Res<u64> {
            let writer = std::thread::Builder::new().name("paced-writer".into()).spawn_scoped(
                s,
                || -> Res<u64> {
                    let every = Duration::from_secs(1) * BATCH as u32 / WRITES_PER_SECOND as u32;
                    let mut next = Instant::now();
                    let mut outstanding = VecDeque::with_capacity(IN_FLIGHT + 1);
                    let mut settled = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let v = version.fetch_add(1, Ordering::Relaxed);
                        let mut batch = Batch::new();
                        for i in 0..BATCH {
                            let at = usize::try_from(v * BATCH + i)? & (keys.len() - 1);
                            let id = keys[at];
                            batch.put(&view, &id, profile(id), v)?;
                        }
                        outstanding.push_back(store.submit(batch)?);
                        while outstanding.len() > IN_FLIGHT {
                            outstanding.pop_front().map(viewstore::Ticket::wait).transpose()?;
                            settled += 1;
                        }
                        let now = Instant::now();
                        let earliest = now.checked_sub(every * IN_FLIGHT as u32).unwrap_or(now);
                        next = (next + every).max(earliest);
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                    }
                    for ticket in outstanding {
                        ticket.wait()?;
                        settled += 1;
                    }
                    Ok(settled * BATCH)
                },
            )?;
            busy.push(stretch("under writes", &view, &keys, seconds));
            stop.store(true, Ordering::Relaxed);
            writer.join().map_err(|_| "the paced writer panicked")?
        })?;
        #[expect(clippy::cast_precision_loss, reason = "a rate for display")]
        let rate = written as f64 / began.elapsed().as_secs_f64();
        println!("              the paced writer settled {rate:.0} writes/s");
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (idle, busy) = (median(&mut idle), median(&mut busy));
    println!("median reads/s: idle {idle:.0}, under writes {busy:.0}: {:.2}x", busy / idle);
    Ok(())
}
