//! The exactly-once kill loop of the projector: a child process runs a projector over a
//! deterministic partitioned log (counters updated by closures, versioned puts with
//! late and repeated deliveries, deletes, poison events sent to dead letters) and the
//! parent kills it with SIGKILL at a random moment, in both durability modes. After
//! each kill the parent opens the store and compares it with a model of the log
//! applied up to the stored positions: every counter equals the number of events that
//! touched it (none applied twice, none lost), every versioned record is what the
//! versions say, the dead letters are exactly the poison events, and no position the
//! child acknowledged to its source (durable) is missing. The last cycle stops the
//! child cleanly instead (and, with immediate durability, checks that it acknowledged
//! every stored position).
//!
//! `VIEWSTORE_PROJECTOR_CYCLES` sets the number of cycles (default 200);
//! `VIEWSTORE_PROJECTOR_SEED` replays a failed run, whose seed is printed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use viewstore::testing::Rng;
use viewstore::{
    Batch, BoxError, DEAD_LETTERS, Durability, Event, OnFailure, Projector, Source, Store, View,
    ViewDef,
};

const CHILD_ENV: &str = "VIEWSTORE_PROJECTOR_CHILD";
const SEED_ENV: &str = "VIEWSTORE_PROJECTOR_CHILD_SEED";
const MODE_ENV: &str = "VIEWSTORE_PROJECTOR_MODE";
const IN_FLIGHT_ENV: &str = "VIEWSTORE_PROJECTOR_IN_FLIGHT";
const STOP_AFTER_ENV: &str = "VIEWSTORE_PROJECTOR_STOP_AFTER";
const SOURCE: &str = "events";
const PARTITIONS: u32 = 4;
/// The second source, which writes only its own part of the shared records.
const MARKS: &str = "marks";
const MARK_PARTITIONS: u32 = 2;
/// Records of the view both sources write, each with its own versions.
const SHARED_KEYS: u64 = 8;
const COUNTERS: u64 = 40;
const KEYS_PER_PARTITION: u64 = 16;
const PERIODIC_INTERVAL: Duration = Duration::from_millis(40);

const COUNTS: ViewDef<u64, u64> = ViewDef::new("counts");
const RECORDS: ViewDef<(u32, u64), u64> = ViewDef::new("records");
/// `.0` written by `events` (which may delete), `.1` by `marks`.
const SHARED: ViewDef<u64, (u64, u64)> = ViewDef::new("shared").with_sources(&[SOURCE, MARKS]);

/// What the event at a position asks for; a pure function of the seed and the position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    /// One more for a counter (an `update_next` closure).
    Count(u64),
    /// Put `value` at `version` into a record of this partition (versions may be late
    /// or repeated).
    Put { key: u64, version: u64, value: u64 },
    /// Delete a record of this partition at `version`.
    Delete { key: u64, version: u64 },
    /// The handler fails: a dead letter.
    Fail,
    /// The update closure panics in the writer: a dead letter.
    ClosurePanics(u64),
    /// Set `events`' part of a shared record (`value: None` deletes the record).
    Shared { key: u64, version: u64, value: Option<u64> },
    /// Set `marks`' part of a shared record.
    Mark { key: u64, version: u64, value: u64 },
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn event(seed: u64, partition: u32, position: u64) -> Cmd {
    let h = mix(seed ^ mix((u64::from(partition) << 48) ^ position));
    let key = (h >> 20) % KEYS_PER_PARTITION;
    // Late and repeated deliveries: a version up to 3 behind the position.
    let version = position.saturating_sub((h >> 40) % 4);
    // A shared key belongs to one partition of each source, so that its versions
    // grow with positions.
    let shared = (h >> 12) % (SHARED_KEYS / u64::from(PARTITIONS)) * u64::from(PARTITIONS)
        + u64::from(partition);
    match h % 100 {
        0 => Cmd::Fail,
        1 => Cmd::ClosurePanics((h >> 8) % COUNTERS),
        2..=9 => Cmd::Delete { key, version },
        10..=39 => Cmd::Put { key, version, value: h >> 50 },
        40..=41 => Cmd::Shared { key: shared, version, value: None },
        42..=49 => Cmd::Shared { key: shared, version, value: Some(h >> 52) },
        _ => Cmd::Count((h >> 8) % COUNTERS),
    }
}

/// The event of `marks` at a position.
fn mark(seed: u64, partition: u32, position: u64) -> Cmd {
    let h = mix(!seed ^ mix((u64::from(partition) << 48) ^ position));
    let key = (h >> 12) % (SHARED_KEYS / u64::from(MARK_PARTITIONS)) * u64::from(MARK_PARTITIONS)
        + u64::from(partition);
    Cmd::Mark { key, version: position.saturating_sub((h >> 40) % 3), value: h >> 52 }
}

fn is_poison(cmd: Cmd) -> bool {
    matches!(cmd, Cmd::Fail | Cmd::ClosurePanics(_))
}

/// An endless deterministic log: the events of `event`, partition by partition.
struct Generated {
    name: &'static str,
    event: fn(u64, u32, u64) -> Cmd,
    seed: u64,
    next: Vec<u64>,
    turn: u32,
}

impl Generated {
    fn new(name: &'static str, partitions: u32, seed: u64) -> Self {
        let event = if name == MARKS { mark } else { event };
        Generated { name, event, seed, next: vec![0; partitions as usize], turn: 0 }
    }
}

impl Source for Generated {
    type Payload = Cmd;

    fn name(&self) -> &'static str {
        self.name
    }

    fn resume(&mut self, positions: &[(u32, u64)]) -> Result<(), BoxError> {
        for &(partition, position) in positions {
            *self.next.get_mut(partition as usize).ok_or("no such partition")? = position + 1;
        }
        Ok(())
    }

    fn poll(&mut self, max: usize, _timeout: Duration) -> Result<Vec<Event<Cmd>>, BoxError> {
        let mut out = Vec::with_capacity(max);
        while out.len() < max {
            let partition = self.turn;
            self.turn = (self.turn + 1) % self.next.len() as u32;
            let position = self.next[partition as usize];
            self.next[partition as usize] += 1;
            let payload = (self.event)(self.seed, partition, position);
            out.push(Event { partition, position, payload });
        }
        Ok(out)
    }

    fn acknowledge(&mut self, partition: u32, position: u64) -> Result<(), BoxError> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ack {} {partition} {position}", self.name)?;
        out.flush()?;
        Ok(())
    }
}

fn handler(
    counts: View<u64, u64>,
    records: View<(u32, u64), u64>,
    shared: View<u64, (u64, u64)>,
) -> impl FnMut(&Event<Cmd>, &mut Batch) -> Result<(), BoxError> + Send + 'static {
    move |event, batch| {
        match event.payload {
            Cmd::Shared { key, version, value: Some(value) } => {
                batch.update(&shared, &key, version, move |v: Option<&(u64, u64)>| {
                    Some((value, v.map_or(0, |v| v.1)))
                })?;
            }
            Cmd::Shared { key, version, value: None } => {
                batch.delete(&shared, &key, version)?;
            }
            Cmd::Mark { key, version, value } => {
                batch.update(&shared, &key, version, move |v: Option<&(u64, u64)>| {
                    Some((v.map_or(0, |v| v.0), value))
                })?;
            }
            Cmd::Count(c) => {
                batch.update_next(&counts, &c, |n| Some(n.copied().unwrap_or(0) + 1))?;
            }
            Cmd::Put { key, version, value } => {
                batch.put(&records, &(event.partition, key), value, version)?;
            }
            Cmd::Delete { key, version } => {
                batch.delete(&records, &(event.partition, key), version)?;
            }
            Cmd::Fail => return Err(format!("bad event at {}", event.position).into()),
            Cmd::ClosurePanics(c) => {
                batch.update_next(&counts, &c, |_| -> Option<u64> { panic!("poison") })?;
            }
        }
        Ok(())
    }
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| "projector_kill".contains(f.as_str())) {
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        println!("projector_kill: test");
        return;
    }
    let seed = std::env::var("VIEWSTORE_PROJECTOR_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(viewstore::testing::seed_from_time);
    let cycles: u32 = std::env::var("VIEWSTORE_PROJECTOR_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail(seed, 0, &format!("tempdir: {e}")));
    let started = Instant::now();
    let mut parent = Parent::new(seed);
    for cycle in 0..cycles {
        let last = cycle + 1 == cycles;
        if let Err(e) = parent.cycle(dir.path(), last) {
            let kept = dir.keep();
            fail(seed, cycle, &format!("{e}\n(store kept in {})", kept.display()));
        }
    }
    let applied: u64 = parent.model.positions.values().map(|p| p + 1).sum();
    println!(
        "projector_kill: {cycles} cycles ({} killed while opening, {} periodic), {applied} events \
         applied exactly once ({} counted, {} dead letters), {} acknowledgements checked, \
         seed {seed}, {:.1} s",
        parent.killed_in_open,
        parent.periodic,
        parent.model.counts.values().sum::<u64>(),
        parent.model.letters.len(),
        parent.acks_checked,
        started.elapsed().as_secs_f64()
    );
}

fn fail(seed: u64, cycle: u32, message: &str) -> ! {
    eprintln!(
        "projector_kill FAILED at cycle {cycle}: {message}\n\
         replay with VIEWSTORE_PROJECTOR_SEED={seed}"
    );
    std::process::exit(1);
}

// ---------------------------------------------------------------------------------------
// The child: open, run the projector until killed (or stop cleanly after some events).

fn child(dir: &Path) {
    let env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let seed = env(SEED_ENV).unwrap_or_else(|| child_fail("no seed"));
    // The poison events panic on purpose, hundreds of times: keep their reports out of
    // the test's output.
    std::panic::set_hook(Box::new(|_| {}));
    let periodic = std::env::var(MODE_ENV).is_ok_and(|m| m == "periodic");
    let say = |line: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    say("opening");
    let mut builder = Store::builder(dir.join("store.redb"));
    if periodic {
        builder = builder.durability(Durability::Periodic { interval: PERIODIC_INTERVAL });
    }
    let store = builder.open().unwrap_or_else(|e| child_fail(&format!("open: {e}")));
    let in_flight = env(IN_FLIGHT_ENV).unwrap_or(256) as usize;
    let spawn = |name: &'static str, partitions: u32| -> viewstore::Result<_> {
        let shared = store.view(&SHARED)?.source(name)?;
        let handler = handler(store.view(&COUNTS)?, store.view(&RECORDS)?, shared);
        Projector::new(&store, Generated::new(name, partitions, seed), handler)
            .on_failure(OnFailure::DeadLetter(store.view(&DEAD_LETTERS)?))
            .with_max_in_flight(in_flight)
            .spawn()
    };
    let events = spawn(SOURCE, PARTITIONS).unwrap_or_else(|e| child_fail(&format!("spawn: {e}")));
    let marks =
        spawn(MARKS, MARK_PARTITIONS).unwrap_or_else(|e| child_fail(&format!("spawn: {e}")));
    say("open");
    let stop_after = env(STOP_AFTER_ENV).unwrap_or(u64::MAX);
    events.wait_until(Duration::MAX, |s| s.events >= stop_after);
    for running in [events, marks] {
        match running.stop() {
            Ok(_) if stop_after < u64::MAX => {}
            Ok(_) => child_fail("a projector stopped by itself"),
            Err(e) => child_fail(&format!("a projector failed: {e}")),
        }
    }
    store.close().unwrap_or_else(|e| child_fail(&format!("close: {e}")));
    say("stopped");
}

fn child_fail(message: &str) -> ! {
    eprintln!("projector_kill child: {message}");
    std::process::exit(2);
}

// ---------------------------------------------------------------------------------------
// The parent: the model, the cycles, the checks.

/// One source's part of a shared record: its largest version, and what its first event
/// at that version did (`None`: a delete).
type Part = Option<(u64, Option<u64>)>;

/// A record of the view with sources, as the model keeps it.
#[derive(Default, Debug)]
struct Shared {
    events: Part,
    marks: Part,
    /// Whether `events` ever deleted it (after which `marks`' part may have been reset
    /// by a resurrection, depending on how the two projectors interleaved).
    deleted_once: bool,
}

/// Folds a write of a source at `version` into its part: later equal versions are
/// stale, as the store has them.
fn fold(part: &mut Part, version: u64, value: Option<u64>) {
    if part.is_none_or(|(v, _)| version > v) {
        *part = Some((version, value));
    }
}

/// The log applied up to some positions.
#[derive(Default)]
struct Model {
    /// Per source and partition, the last applied position.
    positions: BTreeMap<(&'static str, u32), u64>,
    shared: BTreeMap<u64, Shared>,
    counts: BTreeMap<u64, u64>,
    /// Per record: its stored version, and its value when live.
    records: BTreeMap<(u32, u64), (u64, Option<u64>)>,
    letters: Vec<(String, u32, u64)>,
}

impl Model {
    /// Applies the events of `source`'s `partition` after the model's position up to
    /// `to`.
    fn advance(&mut self, seed: u64, source: &'static str, partition: u32, to: u64) {
        let from = self.positions.get(&(source, partition)).map_or(0, |p| p + 1);
        let generate = if source == MARKS { mark } else { event };
        for position in from..=to {
            let cmd = generate(seed, partition, position);
            if is_poison(cmd) {
                self.letters.push((source.to_owned(), partition, position));
                continue;
            }
            let (key, version, value) = match cmd {
                Cmd::Count(c) => {
                    *self.counts.entry(c).or_default() += 1;
                    continue;
                }
                Cmd::Shared { key, version, value } => {
                    let shared = self.shared.entry(key).or_default();
                    let before = shared.events;
                    fold(&mut shared.events, version, value);
                    shared.deleted_once |= value.is_none() && shared.events != before;
                    continue;
                }
                Cmd::Mark { key, version, value } => {
                    fold(&mut self.shared.entry(key).or_default().marks, version, Some(value));
                    continue;
                }
                Cmd::Put { key, version, value } => (key, version, Some(value)),
                Cmd::Delete { key, version } => (key, version, None),
                Cmd::Fail | Cmd::ClosurePanics(_) => continue,
            };
            let record = self.records.entry((partition, key));
            match record {
                std::collections::btree_map::Entry::Occupied(mut slot) => {
                    if version > slot.get().0 {
                        slot.insert((version, value));
                    }
                }
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert((version, value));
                }
            }
        }
        self.positions.insert((source, partition), to);
        self.letters.sort();
    }
}

struct Parent {
    seed: u64,
    rng: Rng,
    model: Model,
    killed_in_open: u32,
    periodic: u32,
    acks_checked: u64,
}

type Failure = String;

/// Positions per source and partition: acknowledged, or stored.
type Acks = BTreeMap<(&'static str, u32), u64>;

impl Parent {
    fn new(seed: u64) -> Self {
        Parent {
            seed,
            rng: Rng::new(seed),
            model: Model::default(),
            killed_in_open: 0,
            periodic: 0,
            acks_checked: 0,
        }
    }

    fn cycle(&mut self, dir: &Path, last: bool) -> Result<(), Failure> {
        let periodic = self.rng.one_in(3);
        let in_open = !last && self.rng.one_in(8);
        let delay = if in_open {
            Duration::from_micros(self.rng.below(3000))
        } else {
            Duration::from_millis(5 + self.rng.below(100))
        };
        let in_flight = [1, 8, 256, 1024][self.rng.below(4) as usize];
        let stop_after = last.then(|| 500 + self.rng.below(2000));
        let (acks, opened) =
            self.run_child(dir, periodic, in_open, delay, in_flight, stop_after)?;
        self.killed_in_open += u32::from(!opened);
        self.periodic += u32::from(periodic);
        // After a clean stop with immediate durability every applied position is durable,
        // so the projector acknowledged all of them; with periodic durability, only those
        // synced when it stopped (the rest come again at the next start, and are
        // skipped).
        self.check(dir, &acks, stop_after.is_some() && !periodic)
    }

    fn run_child(
        &self,
        dir: &Path,
        periodic: bool,
        in_open: bool,
        delay: Duration,
        in_flight: u64,
        stop_after: Option<u64>,
    ) -> Result<(Acks, bool), Failure> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut command = Command::new(exe);
        command
            .env(CHILD_ENV, dir)
            .env(SEED_ENV, self.seed.to_string())
            .env(MODE_ENV, if periodic { "periodic" } else { "immediate" })
            .env(IN_FLIGHT_ENV, in_flight.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(n) = stop_after {
            command.env(STOP_AFTER_ENV, n.to_string());
        }
        let mut child = command.spawn().map_err(|e| format!("spawning the child: {e}"))?;
        let stdout = child.stdout.take().ok_or("child has no stdout")?;
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        let mut wait_for = |word: &str| -> Result<(), Failure> {
            loop {
                match rx.recv_timeout(Duration::from_secs(60)) {
                    Ok(line) if line == word => return Ok(()),
                    Ok(line) if line.starts_with("ack ") => lines.push(line),
                    Ok(line) => return Err(format!("child said {line:?} before {word:?}")),
                    Err(_) => return Err(format!("child never said {word:?}")),
                }
            }
        };
        wait_for("opening")?;
        if !in_open {
            wait_for("open")?;
        }
        if stop_after.is_some() {
            wait_for("stopped")?;
            let status = child.wait().map_err(|e| format!("wait: {e}"))?;
            if !status.success() {
                return Err(format!("the child failed: {status}"));
            }
        } else {
            std::thread::sleep(delay);
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("the child exited by itself: {status}"));
            }
            child.kill().map_err(|e| format!("kill: {e}"))?;
            child.wait().map_err(|e| format!("wait: {e}"))?;
        }
        let _ = reader.join();
        let mut opened = !in_open;
        let mut acks = BTreeMap::new();
        for line in lines.into_iter().chain(rx.try_iter()) {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.as_slice() {
                ["open"] => opened = true,
                ["ack", source, p, n] => {
                    let source = [SOURCE, MARKS].into_iter().find(|s| s == source);
                    let source = source.ok_or_else(|| format!("bad line {line:?}"))?;
                    let p: u32 = p.parse().map_err(|_| format!("bad line {line:?}"))?;
                    let n: u64 = n.parse().map_err(|_| format!("bad line {line:?}"))?;
                    let acked = acks.entry((source, p)).or_insert(n);
                    *acked = (*acked).max(n);
                }
                ["stopped"] => {}
                _ => return Err(format!("unexpected child output {line:?}")),
            }
        }
        Ok((acks, opened))
    }

    /// Opens the store and compares it with the model advanced to its positions.
    fn check(&mut self, dir: &Path, acks: &Acks, stopped_cleanly: bool) -> Result<(), Failure> {
        let store = Store::open(dir.join("store.redb")).map_err(|e| format!("reopen: {e}"))?;
        let mut positions: Acks = BTreeMap::new();
        for source in [SOURCE, MARKS] {
            let stored = store.positions(source).map_err(|e| format!("positions: {e}"))?;
            positions.extend(stored.into_iter().map(|(p, n)| ((source, p), n)));
        }
        for (&partition, &acked) in acks {
            self.acks_checked += 1;
            let stored = positions.get(&partition).copied();
            if stored.is_none_or(|s| s < acked) {
                return Err(format!(
                    "{partition:?}: position {acked} was acknowledged as durable but \
                     the store is at {stored:?}"
                ));
            }
            if stopped_cleanly && stored != Some(acked) {
                return Err(format!(
                    "{partition:?}: a clean stop acknowledged {acked}, the store is at \
                     {stored:?}"
                ));
            }
        }
        for (&(source, partition), &position) in &positions {
            if let Some(&before) = self.model.positions.get(&(source, partition))
                && position < before
            {
                return Err(format!(
                    "{source} partition {partition}: the store went back from {before} to \
                     {position}"
                ));
            }
            self.model.advance(self.seed, source, partition, position);
        }
        if positions.len() < self.model.positions.len() {
            return Err(format!("positions lost: {positions:?}"));
        }
        compare(&store, &self.model)?;
        store.close().map_err(|e| format!("close: {e}"))
    }
}

fn compare(store: &Store, model: &Model) -> Result<(), Failure> {
    let counts = store.view(&COUNTS).map_err(|e| format!("counts: {e}"))?;
    let got: BTreeMap<u64, u64> = counts.range(..).into_iter().map(|(k, v)| (k, *v)).collect();
    if got != model.counts {
        let diff: Vec<_> = model
            .counts
            .iter()
            .filter(|(k, v)| got.get(k) != Some(v))
            .map(|(k, v)| format!("counter {k}: {v} expected, {:?} stored", got.get(k)))
            .collect();
        return Err(format!("counters differ from the model: {diff:?}"));
    }
    let records = store.view(&RECORDS).map_err(|e| format!("records: {e}"))?;
    let got: BTreeMap<(u32, u64), (u64, u64)> = records
        .range(..)
        .into_iter()
        .filter_map(|(k, _)| records.get_versioned(&k).map(|(version, v)| (k, (version, *v))))
        .collect();
    let want: BTreeMap<(u32, u64), (u64, u64)> = model
        .records
        .iter()
        .filter_map(|(k, (version, value))| value.map(|v| (*k, (*version, v))))
        .collect();
    if got != want {
        return Err(format!("records differ from the model:\n stored {got:?}\n model {want:?}"));
    }
    compare_shared(store, model)?;
    let letters = store.view(&DEAD_LETTERS).map_err(|e| format!("dead letters: {e}"))?;
    let got: Vec<_> = letters.range(..).into_iter().map(|(k, _)| k).collect();
    if got != model.letters {
        return Err(format!(
            "dead letters differ from the model:\n stored {got:?}\n model {:?}",
            model.letters
        ));
    }
    Ok(())
}

/// The view with sources: whether each record is live, its reported version (the
/// largest of its sources'), `events`' part, and `marks`' part unless a resurrection by
/// `events` may have reset it (which depends on how the projectors interleaved).
fn compare_shared(store: &Store, model: &Model) -> Result<(), Failure> {
    let shared = store.view(&SHARED).map_err(|e| format!("shared: {e}"))?;
    for key in 0..SHARED_KEYS {
        let want = model.shared.get(&key);
        let got = shared.get_versioned(&key).map(|(v, value)| (v, *value));
        let live = match want {
            Some(Shared { events: Some((_, value)), .. }) => value.is_some(),
            Some(Shared { events: None, marks, .. }) => marks.is_some(),
            None => false,
        };
        let fail = || format!("shared record {key}: stored {got:?}, model {want:?}");
        let (Some(want), Some((version, (events, marks)))) = (want, got) else {
            if live || got.is_some() {
                return Err(fail());
            }
            continue;
        };
        let newest = want.events.iter().chain(&want.marks).map(|(v, _)| *v).max();
        let events_part = want.events.and_then(|(_, v)| v).unwrap_or(0);
        let marks_part = want.marks.and_then(|(_, v)| v).unwrap_or(0);
        if !live
            || Some(version) != newest
            || events != events_part
            || (!want.deleted_once && marks != marks_part)
            || (marks != marks_part && marks != 0)
        {
            return Err(fail());
        }
    }
    Ok(())
}
