//! The kill loop: a child process writes numbered batches from several threads and
//! prints each acknowledgement; the parent kills it with SIGKILL at a random moment
//! (sometimes while it opens the store), reopens the store and checks that every
//! acknowledged batch is there, whole, that at most the batch in flight per thread is
//! there beyond that, and nothing else; and that the change feed, from the oldest group
//! it retains, holds exactly those batches, one after another, each acknowledged one in
//! the group of its LSN.
//!
//! Cycles run in immediate, periodic or journal durability, picked at random; a
//! journal cycle reopens from the store file and its journal.
//!
//! `VIEWSTORE_CRASH_CYCLES` sets the number of cycles (default 380);
//! `VIEWSTORE_CRASH_SEED` replays the cycle plan (kill times, durability modes) of a
//! failed run, whose seed is printed.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use viewstore::testing::{Rng, check_store_invariants, check_view_values, read_file};
use viewstore::{
    Batch, ChangeKind, Durability, Error, FeedMode, FeedRetention, IndexDef, Lsn, Store, View,
    ViewDef,
};

const CHILD_ENV: &str = "VIEWSTORE_CRASH_CHILD";
const MODE_ENV: &str = "VIEWSTORE_CRASH_MODE";
const THREADS: u32 = 3;
/// The journal limit of journal cycles: a checkpoint every few dozen groups.
const JOURNAL_LIMIT: u64 = 64 << 10;
/// The journal limit of spilling journal cycles: hundreds of groups per checkpoint.
const SPILL_JOURNAL_LIMIT: u64 = 4 << 20;
/// redb's page cache in spilling journal cycles: so small that the open transaction's
/// changed pages are written to the file long before the checkpoint commits them.
const SPILL_CACHE: usize = 64 << 10;
/// Items older than this many batches of their thread are deleted.
const KEEP: u64 = 16;
const RING: u64 = 8;
/// Every how many cycles the file is read back with redb and compared with memory.
const FULL_CHECK_EVERY: u32 = 8;
const PERIODIC_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    thread: u32,
    n: u64,
    payload: Vec<u8>,
}

const BY_SIZE: IndexDef<Item, u64> = IndexDef::multi("by_size", |i| i.payload.len() as u64 / 100);
const BY_PARITY: IndexDef<u64, u64> = IndexDef::multi("by_parity", |n| n % 2);
const ITEMS: ViewDef<(u32, u64), Item> =
    ViewDef::new("items").with_indexes(&[&BY_SIZE]).with_feed(FeedMode::Keys);
const RINGS: ViewDef<(u32, u64), u64> =
    ViewDef::new("ring").with_indexes(&[&BY_PARITY]).with_feed(FeedMode::Values);
const HEADS: ViewDef<u32, u64> = ViewDef::new("heads").with_feed(FeedMode::Values);
/// Groups the change feed keeps: a few cycles' worth, so that pruning happens too.
const FEED_GROUPS: u64 = 3_000;
const PROBES: ViewDef<u32, u64> = ViewDef::new("probes");

fn item(thread: u32, n: u64) -> Item {
    let len = if n % 37 == 5 { 3000 } else { ((n * 7 + u64::from(thread)) % 300) as usize };
    Item { thread, n, payload: (0..len).map(|i| (n as usize + i) as u8).collect() }
}

type Failure = String;

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    // Without the test harness, honour a name filter the way libtest would.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| "crash_kill".contains(f.as_str())) {
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        println!("crash_kill: test");
        return;
    }
    let seed = std::env::var("VIEWSTORE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(viewstore::testing::seed_from_time);
    let cycles: u32 =
        std::env::var("VIEWSTORE_CRASH_CYCLES").ok().and_then(|s| s.parse().ok()).unwrap_or(380);
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => fail(seed, 0, &format!("cannot make a temporary directory: {e}")),
    };
    let started = Instant::now();
    let mut parent = Parent::new(dir.path().join("store.redb"), seed);
    for cycle in 0..cycles {
        if let Err(e) = parent.cycle(cycle) {
            let kept = dir.keep();
            fail(seed, cycle, &format!("{e}\nthe store is kept at {}", kept.display()));
        }
    }
    println!(
        "crash_kill: {cycles} cycles ({} killed during open, {} periodic, {} journal of \
         which {} spilled), {} acknowledged batches checked, {} feed groups checked, seed \
         {seed}, {:.1}s",
        parent.killed_in_open,
        parent.periodic_cycles,
        parent.journal_cycles,
        parent.spill_cycles,
        parent.acks_checked,
        parent.feed_groups_checked,
        started.elapsed().as_secs_f64()
    );
}

fn fail(seed: u64, cycle: u32, message: &str) -> ! {
    eprintln!(
        "crash_kill FAILED at cycle {cycle}: {message}\nreplay with VIEWSTORE_CRASH_SEED={seed}"
    );
    std::process::exit(1);
}

// ---------------------------------------------------------------------------------------
// The child: open, then write from several threads until killed.

fn child(dir: &Path) {
    let periodic = std::env::var(MODE_ENV).is_ok_and(|m| m == "periodic");
    let journal = std::env::var(MODE_ENV).is_ok_and(|m| m.starts_with("journal"));
    let spill = std::env::var(MODE_ENV).is_ok_and(|m| m == "journal-spill");
    let say = |line: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    say("opening");
    let mut builder = Store::builder(dir.join("store.redb"))
        .feed_retention(FeedRetention::unbounded().max_groups(FEED_GROUPS));
    if periodic {
        builder = builder.durability(Durability::Periodic { interval: PERIODIC_INTERVAL });
    }
    if journal {
        // A small limit, so that kills land before, during and after checkpoints.
        builder = builder.durability(Durability::Journal).journal_limit(JOURNAL_LIMIT);
    }
    if spill {
        builder = builder.journal_limit(SPILL_JOURNAL_LIMIT).cache_size(SPILL_CACHE);
    }
    let store = builder.open().unwrap_or_else(|e| child_fail(&format!("open: {e}")));
    let views = Views::open(&store).unwrap_or_else(|e| child_fail(&format!("views: {e}")));
    say("open");
    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let store = store.clone();
            let views = views.clone();
            std::thread::spawn(move || {
                let mut n = views.heads.get(&thread).map_or(0, |h| *h);
                loop {
                    let batch = views
                        .batch(thread, n)
                        .unwrap_or_else(|e| child_fail(&format!("batch: {e}")));
                    let receipt = store
                        .submit(batch)
                        .and_then(viewstore::Ticket::wait)
                        .unwrap_or_else(|e| child_fail(&format!("thread {thread} batch {n}: {e}")));
                    if !receipt.outcomes.iter().all(viewstore::Outcome::is_applied) {
                        child_fail(&format!(
                            "thread {thread} batch {n}: outcomes {:?}",
                            receipt.outcomes
                        ));
                    }
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "ack {thread} {n} {}", receipt.lsn.get());
                    if periodic {
                        // Read after the ack is printed: the parent may then require every
                        // batch up to this LSN, acknowledged or not yet printed.
                        let _ = writeln!(out, "durable {}", store.durable_lsn().get());
                    }
                    let _ = out.flush();
                    n += 1;
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

fn child_fail(message: &str) -> ! {
    eprintln!("crash_kill child: {message}");
    std::process::exit(2);
}

#[derive(Clone)]
struct Views {
    items: View<(u32, u64), Item>,
    ring: View<(u32, u64), u64>,
    heads: View<u32, u64>,
}

impl Views {
    fn open(store: &Store) -> viewstore::Result<Self> {
        Ok(Views {
            items: store.view(&ITEMS)?,
            ring: store.view(&RINGS)?,
            heads: store.view(&HEADS)?,
        })
    }

    /// Batch `n` of `thread`: a new item, the deletion of an old one, a ring slot
    /// overwritten, and the thread's head counted up inside the writer.
    fn batch(&self, thread: u32, n: u64) -> viewstore::Result<Batch> {
        let version = n + 1;
        let mut b = Batch::new();
        b.put(&self.items, &(thread, n), item(thread, n), version)?;
        if n >= KEEP {
            b.delete(&self.items, &(thread, n - KEEP), version)?;
        }
        b.put(&self.ring, &(thread, n % RING), n, version)?;
        b.update(&self.heads, &thread, version, |h| Some(h.copied().unwrap_or(0) + 1))?;
        Ok(b)
    }
}

// ---------------------------------------------------------------------------------------
// The parent: run, kill, check.

struct Parent {
    path: PathBuf,
    rng: Rng,
    /// Batches of each thread known durable (the next batch number).
    committed: [u64; THREADS as usize],
    /// The LSN each earlier cycle's probe write got.
    probes: BTreeMap<u32, u64>,
    last_lsn: u64,
    killed_in_open: u32,
    periodic_cycles: u32,
    journal_cycles: u32,
    /// Journal cycles with a page cache small enough that the open transaction writes
    /// its pages into the file before its checkpoint.
    spill_cycles: u32,
    acks_checked: u64,
    feed_groups_checked: u64,
}

/// The acknowledgements of one child, per thread.
struct AckTally {
    /// The next batch number after the last acknowledged one.
    acked: [u64; THREADS as usize],
    /// The next batch number after the last one that must be durable by the kill.
    must_have: [u64; THREADS as usize],
    max_acked_lsn: u64,
}

struct Ack {
    thread: u32,
    n: u64,
    lsn: u64,
}

impl Parent {
    fn new(path: PathBuf, seed: u64) -> Self {
        Parent {
            path,
            rng: Rng::new(seed),
            committed: [0; THREADS as usize],
            probes: BTreeMap::new(),
            last_lsn: 0,
            killed_in_open: 0,
            periodic_cycles: 0,
            journal_cycles: 0,
            spill_cycles: 0,
            acks_checked: 0,
            feed_groups_checked: 0,
        }
    }

    fn cycle(&mut self, cycle: u32) -> Result<(), Failure> {
        // Periodic cycles live longer, so that some acknowledgements are old enough to
        // have to be durable.
        let periodic = self.rng.one_in(12);
        let journal = !periodic && self.rng.one_in(4);
        let in_open = self.rng.one_in(6);
        let delay = if in_open {
            Duration::from_micros(self.rng.below(3000))
        } else if periodic {
            Duration::from_millis(20 + self.rng.below(1600))
        } else {
            Duration::from_millis(1 + self.rng.below(50))
        };
        let mode = if periodic {
            "periodic"
        } else if journal && self.rng.one_in(2) {
            "journal-spill"
        } else if journal {
            "journal"
        } else {
            "immediate"
        };
        let (acks, durable, opened) = self.run_child(mode, in_open, delay)?;
        if !opened {
            self.killed_in_open += 1;
        }
        if periodic {
            self.periodic_cycles += 1;
        }
        if journal {
            self.journal_cycles += 1;
            self.spill_cycles += u32::from(mode == "journal-spill");
        }
        self.check(cycle, (periodic, journal), &acks, durable)
    }

    /// Runs a child and kills it `delay` after it starts opening (`in_open`) or after it
    /// opened. Returns its acknowledgements, the highest durable LSN it reported, and
    /// whether it had finished opening.
    fn run_child(
        &self,
        mode: &str,
        in_open: bool,
        delay: Duration,
    ) -> Result<(Vec<Ack>, u64, bool), Failure> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let dir = self.path.parent().ok_or("store path has no parent")?;
        let mut child = Command::new(exe)
            .env(CHILD_ENV, dir)
            .env(MODE_ENV, mode)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawning the child: {e}"))?;
        let stdout = child.stdout.take().ok_or("child has no stdout")?;
        let (tx, rx) = mpsc::channel::<(String, Instant)>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((line, Instant::now())).is_err() {
                    break;
                }
            }
        });
        let wait_for = |word: &str| -> Result<(), Failure> {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok((line, _)) if line == word => Ok(()),
                Ok((line, _)) => Err(format!("child said {line:?} before {word:?}")),
                Err(_) => Err(format!("child never said {word:?}")),
            }
        };
        wait_for("opening")?;
        if !in_open {
            wait_for("open")?;
        }
        std::thread::sleep(delay);
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the child exited by itself: {status}"));
        }
        child.kill().map_err(|e| format!("kill: {e}"))?;
        child.wait().map_err(|e| format!("wait: {e}"))?;
        let _ = reader.join();
        let mut acks = Vec::new();
        let mut opened = !in_open;
        let mut durable = 0;
        for (line, _) in rx.try_iter() {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.as_slice() {
                ["open"] => opened = true,
                ["ack", t, n, lsn] => acks.push(Ack {
                    thread: t.parse().map_err(|_| format!("bad line {line:?}"))?,
                    n: n.parse().map_err(|_| format!("bad line {line:?}"))?,
                    lsn: lsn.parse().map_err(|_| format!("bad line {line:?}"))?,
                }),
                ["durable", lsn] => {
                    let lsn: u64 = lsn.parse().map_err(|_| format!("bad line {line:?}"))?;
                    durable = durable.max(lsn);
                }
                _ => return Err(format!("unexpected child output {line:?}")),
            }
        }
        Ok((acks, durable, opened))
    }

    /// What the child acknowledged, per thread, in order; checks numbering and LSNs.
    /// In the periodic mode a batch must survive once the child saw its LSN durable
    /// (`Store::durable_lsn`), whenever the kill came: no clock is involved.
    fn tally(&self, periodic: bool, acks: &[Ack], durable: u64) -> Result<AckTally, Failure> {
        // What the child acknowledged, per thread, in order.
        let mut acked = self.committed;
        let mut must_have = self.committed;
        let mut last_lsn = [0u64; THREADS as usize];
        let mut max_acked_lsn = 0;
        for ack in acks {
            let t = ack.thread as usize;
            if t >= acked.len() {
                return Err(format!("ack from unknown thread {}", ack.thread));
            }
            if ack.n != acked[t] {
                return Err(format!(
                    "thread {} acknowledged batch {} but {} was next",
                    ack.thread, ack.n, acked[t]
                ));
            }
            if ack.lsn <= last_lsn[t] || ack.lsn <= self.last_lsn {
                return Err(format!(
                    "thread {} batch {} got lsn {}, not above {} (thread) / {} (store)",
                    ack.thread, ack.n, ack.lsn, last_lsn[t], self.last_lsn
                ));
            }
            last_lsn[t] = ack.lsn;
            max_acked_lsn = max_acked_lsn.max(ack.lsn);
            acked[t] = ack.n + 1;
            let durable_by_now = !periodic || ack.lsn <= durable;
            if durable_by_now {
                must_have[t] = ack.n + 1;
            }
        }

        Ok(AckTally { acked, must_have, max_acked_lsn })
    }

    fn check(
        &mut self,
        cycle: u32,
        (periodic, journal): (bool, bool),
        acks: &[Ack],
        durable: u64,
    ) -> Result<(), Failure> {
        let AckTally { acked, must_have, max_acked_lsn } = self.tally(periodic, acks, durable)?;
        self.acks_checked += acks.len() as u64;
        let mut builder = Store::builder(&self.path)
            .feed_retention(FeedRetention::unbounded().max_groups(FEED_GROUPS));
        if journal {
            builder = builder.durability(Durability::Journal);
        }
        let store = builder.open().map_err(|e| format!("reopen: {e}"))?;
        let views = Views::open(&store).map_err(|e| format!("reopen views: {e}"))?;
        let probes = store.view(&PROBES).map_err(|e| format!("probe view: {e}"))?;
        let lsn = store.lsn().get();
        if lsn < self.last_lsn {
            return Err(format!("lsn went back from {} to {lsn}", self.last_lsn));
        }
        if !periodic && lsn < max_acked_lsn {
            return Err(format!("lsn {lsn} is below the acknowledged lsn {max_acked_lsn}"));
        }
        verify(&store, "after the reopen")?;
        let mut recovered = [0u64; THREADS as usize];
        for t in 0..THREADS {
            let i = t as usize;
            let head = views.heads.get(&t).map_or(0, |h| *h);
            if head < must_have[i] || head > acked[i] + 1 {
                return Err(format!(
                    "thread {t}: {head} batches recovered; acknowledged {} (durable by now: {}), \
                     at most one more may be in flight",
                    acked[i], must_have[i]
                ));
            }
            check_thread(&views, t, head)?;
            recovered[i] = head;
        }
        check_no_strangers(&views)?;
        self.feed_groups_checked += check_feed(&store, &recovered, acks)?;
        for (c, want) in &self.probes {
            let got = probes.get(c).map(|v| *v);
            if got != Some(*want) {
                return Err(format!("probe of cycle {c}: {got:?}, expected {want}"));
            }
        }
        if probes.len() != self.probes.len() {
            return Err(format!("{} probes stored, {} written", probes.len(), self.probes.len()));
        }
        // New writes continue above everything acknowledged.
        let before = store.lsn().get();
        let receipt = store
            .submit({
                let mut b = Batch::new();
                b.put(&probes, &cycle, before + 1, 1).map_err(|e| format!("probe batch: {e}"))?;
                b
            })
            .and_then(viewstore::Ticket::wait)
            .map_err(|e| format!("probe write: {e}"))?;
        let new_lsn = receipt.lsn.get();
        // In periodic mode the groups lost with the crash gave their LSNs back.
        let floor = if periodic { before } else { before.max(max_acked_lsn) };
        if new_lsn <= floor {
            return Err(format!(
                "a new write got lsn {new_lsn}, not above {before} / acknowledged {max_acked_lsn}"
            ));
        }
        if new_lsn != before + 1 {
            return Err(format!("probe expected lsn {}, got {new_lsn}", before + 1));
        }
        self.probes.insert(cycle, new_lsn);
        verify(&store, "after a new write")?;
        let snapshot = store.snapshot();
        store.close().map_err(|e| format!("close: {e}"))?;
        drop(store);
        // Memory equals disk, values included, read back with redb alone (`verify`
        // above compared keys, versions and indexes): every few cycles, as it costs
        // an integrity check of the whole file.
        if cycle.is_multiple_of(FULL_CHECK_EVERY) {
            let disk = read_file(&self.path)?;
            check_store_invariants(&snapshot, &disk)?;
            check_view_values(&views.items, &snapshot, &disk)?;
            check_view_values(&views.ring, &snapshot, &disk)?;
            check_view_values(&views.heads, &snapshot, &disk)?;
            check_view_values(&probes, &snapshot, &disk)?;
        }
        drop(views);
        self.committed = recovered;
        self.last_lsn = new_lsn;
        Ok(())
    }
}

/// The records of `thread` after exactly `head` of its batches: the last `KEEP` items,
/// each ring slot holding its latest batch number, and the head.
fn check_thread(views: &Views, thread: u32, head: u64) -> Result<(), Failure> {
    let items = views.items.range((thread, 0)..(thread + 1, 0));
    let first = head.saturating_sub(KEEP);
    let expected: Vec<u64> = (first..head).collect();
    let found: Vec<u64> = items.iter().map(|((_, n), _)| *n).collect();
    if found != expected {
        return Err(format!(
            "thread {thread} after {head} batches: items {found:?}, expected {expected:?}"
        ));
    }
    for ((_, n), value) in &items {
        if **value != item(thread, *n) {
            return Err(format!("thread {thread} item {n} has the wrong value"));
        }
        if views.items.version(&(thread, *n)) != Some(n + 1) {
            return Err(format!("thread {thread} item {n} has the wrong version"));
        }
    }
    for slot in 0..RING {
        let want = (0..head).rev().find(|i| i % RING == slot);
        let got = views.ring.get_versioned(&(thread, slot));
        let got = got.map(|(v, n)| (v, *n));
        if got != want.map(|n| (n + 1, n)) {
            return Err(format!(
                "thread {thread} ring slot {slot} after {head} batches: {got:?}, expected {:?}",
                want.map(|n| (n + 1, n))
            ));
        }
    }
    let head_version = views.heads.version(&thread);
    if head > 0 && head_version != Some(head) {
        return Err(format!("thread {thread} head {head} has version {head_version:?}"));
    }
    Ok(())
}

/// The store's own check: records in memory equal to those on disk, indexes equal to
/// what the records imply, on disk and in memory.
fn verify(store: &Store, when: &str) -> Result<(), Failure> {
    let report = store.verify().map_err(|e| format!("verify {when}: {e}"))?;
    if report.is_ok() { Ok(()) } else { Err(format!("verify {when}: {:?}", report.problems)) }
}

fn check_no_strangers(views: &Views) -> Result<(), Failure> {
    if let Some(((t, _), _)) = views.items.range((THREADS, 0)..).first() {
        return Err(format!("items of unknown thread {t}"));
    }
    if let Some(((t, _), _)) = views.ring.range((THREADS, 0)..).first() {
        return Err(format!("ring slots of unknown thread {t}"));
    }
    if views.heads.len() > THREADS as usize {
        return Err(format!("{} heads for {THREADS} threads", views.heads.len()));
    }
    Ok(())
}

/// A change as the feed check compares it: which record, version, kind, value.
type Seen = (String, u64, ChangeKind, Option<u64>);

/// The change feed after a restart: every retained group holds, per thread, exactly the
/// changes of one batch (its new item, the item it deleted, its ring slot, its head),
/// the batches of each thread follow one another with no gap and no repeat up to the
/// last recovered one, and every acknowledged batch is in the group of its LSN.
fn check_feed(store: &Store, recovered: &[u64], acks: &[Ack]) -> Result<u64, Failure> {
    let mut reader = match store.feed_after(Lsn::new(0)) {
        Ok(reader) => reader,
        Err(Error::FeedPruned { readable_after, .. }) => store
            .feed_after(readable_after)
            .map_err(|e| format!("feed after {readable_after}: {e}"))?,
        Err(e) => return Err(format!("feed: {e}")),
    };
    let start = reader.position();
    let mut last: [Option<u64>; THREADS as usize] = [None; THREADS as usize];
    let mut at: BTreeMap<(u32, u64), u64> = BTreeMap::new();
    let mut groups = 0;
    while let Some(group) = reader.next_timeout(Duration::ZERO).map_err(|e| format!("feed: {e}"))? {
        groups += 1;
        let mut per_thread: BTreeMap<u32, Vec<Seen>> = BTreeMap::new();
        for c in &group.changes {
            let decode = |e: viewstore::Error| format!("feed of {}: {e}", group.lsn);
            let (thread, name) = match &*c.view {
                "heads" => (c.decode_key::<u32>().map_err(decode)?, "heads".to_owned()),
                view => {
                    let (t, k) = c.decode_key::<(u32, u64)>().map_err(decode)?;
                    (t, format!("{view} {k}"))
                }
            };
            let value = match &c.value {
                Some(v) => Some(
                    bincode::serde::decode_from_slice::<u64, _>(v, bincode::config::standard())
                        .map_err(|e| format!("feed value: {e}"))?
                        .0,
                ),
                None => None,
            };
            per_thread.entry(thread).or_default().push((name, c.version, c.kind, value));
        }
        for (thread, mut changes) in per_thread {
            let head =
                changes.iter().find(|c| c.0 == "heads").and_then(|c| c.3).ok_or_else(|| {
                    format!("feed of {}: thread {thread} without its head", group.lsn)
                })?;
            let n = head - 1;
            let version = n + 1;
            let mut want = vec![
                ("heads".to_owned(), version, ChangeKind::Live, Some(head)),
                (format!("items {n}"), version, ChangeKind::Live, None),
                (format!("ring {}", n % RING), version, ChangeKind::Live, Some(n)),
            ];
            if n >= KEEP {
                want.push((format!("items {}", n - KEEP), version, ChangeKind::Tombstone, None));
            }
            changes.sort_by(|a, b| a.0.cmp(&b.0));
            want.sort_by(|a, b| a.0.cmp(&b.0));
            if changes != want {
                return Err(format!(
                    "feed of {}: thread {thread} batch {n}: {changes:?}, expected {want:?}",
                    group.lsn
                ));
            }
            let i = thread as usize;
            if last[i].is_some_and(|l| l + 1 != n) {
                return Err(format!(
                    "feed of {}: thread {thread} batch {n} follows batch {:?}",
                    group.lsn, last[i]
                ));
            }
            last[i] = Some(n);
            at.insert((thread, n), group.lsn.get());
        }
    }
    for (i, head) in recovered.iter().enumerate() {
        if let Some(l) = last[i]
            && l + 1 != *head
        {
            return Err(format!("the feed ends at batch {l} of thread {i}; {head} recovered"));
        }
    }
    for ack in acks {
        if ack.n < recovered[ack.thread as usize]
            && ack.lsn > start.get()
            && at.get(&(ack.thread, ack.n)) != Some(&ack.lsn)
        {
            return Err(format!(
                "batch {} of thread {} was acknowledged at lsn {}, the feed has it at {:?}",
                ack.n,
                ack.thread,
                ack.lsn,
                at.get(&(ack.thread, ack.n))
            ));
        }
    }
    Ok(groups)
}
