//! A model test of views with sources: seeded random sequences of puts, updates (count
//! up, keep, delete), deletes, compare-and-set, compare-and-delete, purges and reopens
//! from two or three sources over a few keys, with late and repeated deliveries, single
//! and in batches (several operations on one key, batches sharing a group). After every
//! step, each outcome, what each update closure saw, and every key's record (live value
//! and reported version, or none) are compared with a model written here.
//!
//! By default, 8 seeds of 2,500 steps in memory and 500 steps in a file; the runs must
//! meet every outcome many times. `VIEWSTORE_SOURCES_SEED=<n>` replays one seed instead
//! (`VIEWSTORE_SOURCES_STEPS` steps, default 2,000).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use viewstore::testing::Rng;
use viewstore::{Batch, Change, Durability, Outcome, Store, Version, View, ViewDef};

const TWO: ViewDef<u8, i64> = ViewDef::new("two").with_sources(&["a", "b"]);
const THREE: ViewDef<u8, i64> = ViewDef::new("three").with_sources(&["a", "b", "c"]);
const KEYS: u8 = 4;

/// What an update closure does with the value it sees.
#[derive(Debug, Clone, Copy)]
enum Upd {
    /// Count up from the value (from 0 when there is none).
    Inc,
    Keep,
    Delete,
}

#[derive(Debug, Clone)]
enum Op {
    Put { src: usize, key: u8, version: Version, value: i64 },
    Delete { src: usize, key: u8, version: Version },
    Update { src: usize, key: u8, version: Version, upd: Upd },
    Cas { src: usize, key: u8, expected: Option<Version>, version: Version, value: i64 },
    Cad { src: usize, key: u8, expected: Version, version: Version },
    Purge { src: usize, below: Version },
}

#[derive(Debug)]
enum Step {
    One(Op),
    Batch(Vec<Op>),
    /// Batches submitted before any is waited for, so that they share a group.
    Group(Vec<Vec<Op>>),
    Reopen,
}

/// A record as the model keeps it: versions per source, the deleter of a tombstone,
/// and the live value (`None` for a tombstone). An absent record is not in the map.
#[derive(Debug, Clone, Default)]
struct Rec {
    versions: Vec<Option<Version>>,
    deleter: Option<usize>,
    value: Option<i64>,
}

type Model = BTreeMap<u8, Rec>;

/// The value an update closure saw (`None`: no live record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Saw(Option<i64>);

/// Applies `op` to the model; returns its outcome and, for an update whose closure
/// runs, the value the closure sees.
fn model_op(model: &mut Model, sources: usize, op: &Op) -> (Outcome, Option<Saw>) {
    if let Op::Purge { src, below } = *op {
        let before = model.len();
        model.retain(|_, r| {
            !(r.value.is_none()
                && r.deleter == Some(src)
                && r.versions[src].is_some_and(|v| v < below))
        });
        return (Outcome::Purged { count: (before - model.len()) as u64 }, None);
    }
    let (src, key) = match *op {
        Op::Put { src, key, .. }
        | Op::Delete { src, key, .. }
        | Op::Update { src, key, .. }
        | Op::Cas { src, key, .. }
        | Op::Cad { src, key, .. } => (src, key),
        Op::Purge { .. } => unreachable!("handled above"),
    };
    let rec = model.get(&key).cloned();
    let mine = rec.as_ref().and_then(|r| r.versions[src]);
    let live = rec.as_ref().is_some_and(|r| r.value.is_some());
    let compared = mine.filter(|_| live);
    let blocked = rec.as_ref().is_some_and(|r| r.value.is_none() && r.deleter != Some(src));
    let stale = |version: Version| mine.filter(|&c| version <= c);
    let next =
        rec.clone().unwrap_or_else(|| Rec { versions: vec![None; sources], ..Rec::default() });
    let recorded = |model: &mut Model, mut next: Rec, version: Version| {
        next.versions[src] = Some(version);
        let deleter_version = next.deleter.and_then(|d| next.versions[d]).unwrap_or_default();
        model.insert(key, next);
        Outcome::Tombstoned { deleter_version }
    };
    // A put (`Some` value) or a delete (`None`), applied.
    let write = |model: &mut Model, mut next: Rec, version: Version, value: Option<i64>| {
        next.versions[src] = Some(version);
        next.deleter = if value.is_some() { None } else { Some(src) };
        next.value = value;
        model.insert(key, next);
        Outcome::Applied
    };
    match *op {
        Op::Put { version, value, .. } => match stale(version) {
            Some(current) => (Outcome::Stale { current }, None),
            None if blocked => (recorded(model, next, version), None),
            None => (write(model, next, version, Some(value)), None),
        },
        Op::Delete { version, .. } => match stale(version) {
            Some(current) => (Outcome::Stale { current }, None),
            None => (write(model, next, version, None), None),
        },
        Op::Update { version, upd, .. } => match stale(version) {
            Some(current) => (Outcome::Stale { current }, None),
            None if blocked => (recorded(model, next, version), None),
            None => {
                let seen = rec.and_then(|r| r.value);
                let outcome = match upd {
                    Upd::Inc => write(model, next, version, Some(seen.unwrap_or(0) + 1)),
                    Upd::Keep => Outcome::Unchanged,
                    Upd::Delete => write(model, next, version, None),
                };
                (outcome, Some(Saw(seen)))
            }
        },
        Op::Cas { expected, version, value, .. } => {
            if compared != expected {
                (Outcome::Conflict { current: compared }, None)
            } else if let Some(current) = stale(version) {
                (Outcome::Stale { current }, None)
            } else if blocked {
                (recorded(model, next, version), None)
            } else {
                (write(model, next, version, Some(value)), None)
            }
        }
        Op::Cad { expected, version, .. } => {
            if compared != Some(expected) {
                (Outcome::Conflict { current: compared }, None)
            } else if let Some(current) = stale(version) {
                (Outcome::Stale { current }, None)
            } else {
                (write(model, next, version, None), None)
            }
        }
        Op::Purge { .. } => unreachable!("handled above"),
    }
}

/// What the update closures saw, in the order they ran, by tag.
type Seen = Arc<Mutex<Vec<(u64, Saw)>>>;

struct Run {
    def: &'static ViewDef<u8, i64>,
    sources: usize,
    open: Box<dyn Fn() -> viewstore::Result<Store>>,
    store: Option<Store>,
    handles: Vec<View<u8, i64>>,
    plain: Option<View<u8, i64>>,
    model: Model,
    rng: Rng,
    /// Per source and key, the highest version handed out so far.
    high: Vec<[Version; KEYS as usize]>,
    seen: Seen,
    tag: u64,
    /// How many outcomes of each kind the store gave, by name.
    tally: BTreeMap<&'static str, u64>,
}

impl Run {
    fn new(seed: u64, on_disk: Option<&std::path::Path>) -> viewstore::Result<Self> {
        let mut rng = Rng::new(seed);
        let (def, sources) = if rng.one_in(2) { (&TWO, 2) } else { (&THREE, 3) };
        let open: Box<dyn Fn() -> viewstore::Result<Store>> = if let Some(path) = on_disk {
            let path = path.to_owned();
            let durability = Durability::Periodic { interval: std::time::Duration::from_secs(60) };
            Box::new(move || Store::builder(&path).durability(durability).open())
        } else {
            let backend: Arc<dyn viewstore::redb::StorageBackend> =
                Arc::new(viewstore::redb::backends::InMemoryBackend::new());
            Box::new(move || Store::builder("sources-model").backend(Arc::clone(&backend)).open())
        };
        let mut run = Run {
            def,
            sources,
            open,
            store: None,
            handles: Vec::new(),
            plain: None,
            model: Model::new(),
            rng,
            high: vec![[0; KEYS as usize]; sources],
            seen: Arc::default(),
            tag: 0,
            tally: BTreeMap::new(),
        };
        run.reopen()?;
        Ok(run)
    }

    fn reopen(&mut self) -> viewstore::Result<()> {
        self.handles.clear();
        self.plain = None;
        if let Some(store) = self.store.take() {
            store.close()?;
        }
        let store = (self.open)()?;
        let view = store.view(self.def)?;
        for name in self.def.sources() {
            self.handles.push(view.source(name)?);
        }
        self.plain = Some(view);
        self.store = Some(store);
        Ok(())
    }

    /// A version for `src` on `key`: mostly newer than any so far, else a late one
    /// (older) or a repeated one (the newest again).
    fn version(&mut self, src: usize, key: u8) -> Version {
        let high = &mut self.high[src][usize::from(key)];
        match self.rng.below(20) {
            0..=11 => {
                *high += 1 + self.rng.below(3);
                *high
            }
            12..=16 if *high > 0 => 1 + self.rng.below(*high),
            _ => (*high).max(1),
        }
    }

    /// The version `src` has of `key`'s live record, as the model has it.
    fn compared(&self, src: usize, key: u8) -> Option<Version> {
        self.model.get(&key).filter(|r| r.value.is_some()).and_then(|r| r.versions[src])
    }

    fn op(&mut self, key: u8) -> Op {
        let src = self.rng.below(self.sources as u64) as usize;
        let version = self.version(src, key);
        let value = i64::try_from(self.rng.below(1000)).unwrap_or(0);
        match self.rng.below(20) {
            0..=5 => Op::Put { src, key, version, value },
            6..=8 => Op::Delete { src, key, version },
            9..=13 => {
                let upd = [Upd::Inc, Upd::Inc, Upd::Keep, Upd::Delete][self.rng.below(4) as usize];
                Op::Update { src, key, version, upd }
            }
            14..=16 => {
                let expected = match self.rng.below(4) {
                    0 | 1 => self.compared(src, key),
                    2 => None,
                    _ => Some(1 + self.rng.below(8)),
                };
                Op::Cas { src, key, expected, version, value }
            }
            17 | 18 => {
                let expected = match self.compared(src, key) {
                    Some(v) if !self.rng.one_in(4) => v,
                    _ => 1 + self.rng.below(8),
                };
                Op::Cad { src, key, expected, version }
            }
            _ => {
                let top = self.high[src].iter().copied().max().unwrap_or(0);
                // Often above every version so far, to purge what this source deleted.
                let below = if self.rng.one_in(2) { top + 1 } else { self.rng.below(top + 3) };
                Op::Purge { src, below }
            }
        }
    }

    fn step(&mut self) -> Step {
        let key = self.rng.below(u64::from(KEYS)) as u8;
        match self.rng.below(40) {
            0 => Step::Reopen,
            1..=6 => {
                // Several operations, mostly on one or two keys.
                let n = 2 + self.rng.below(4);
                let other = self.rng.below(u64::from(KEYS)) as u8;
                Step::Batch(
                    (0..n)
                        .map(|_| {
                            let k = if self.rng.one_in(3) { other } else { key };
                            self.op(k)
                        })
                        .collect(),
                )
            }
            7 | 8 => {
                let batches = 2 + self.rng.below(2);
                Step::Group(
                    (0..batches)
                        .map(|_| {
                            let n = 1 + self.rng.below(3);
                            (0..n)
                                .map(|_| {
                                    let k = self.rng.below(u64::from(KEYS)) as u8;
                                    self.op(k)
                                })
                                .collect()
                        })
                        .collect(),
                )
            }
            _ => Step::One(self.op(key)),
        }
    }

    fn add(&mut self, batch: &mut Batch, op: &Op) -> viewstore::Result<()> {
        let h = |src: usize| &self.handles[src];
        match *op {
            Op::Put { src, key, version, value } => {
                batch.put(h(src), &key, value, version).map(drop)
            }
            Op::Delete { src, key, version } => batch.delete(h(src), &key, version).map(drop),
            Op::Update { src, key, version, upd } => {
                self.tag += 1;
                let (tag, seen) = (self.tag, Arc::clone(&self.seen));
                let f = move |current: Option<&i64>| {
                    seen.lock().expect("seen").push((tag, Saw(current.copied())));
                    match upd {
                        Upd::Inc => Change::Put(current.copied().unwrap_or(0) + 1),
                        Upd::Keep => Change::Keep,
                        Upd::Delete => Change::Delete,
                    }
                };
                batch.update(h(src), &key, version, f).map(drop)
            }
            Op::Cas { src, key, expected, version, value } => {
                batch.compare_and_set(h(src), &key, expected, version, value).map(drop)
            }
            Op::Cad { src, key, expected, version } => {
                batch.compare_and_delete(h(src), &key, expected, version).map(drop)
            }
            Op::Purge { src, below } => batch.purge_tombstones(h(src), below).map(drop),
        }
    }

    /// Runs one step on the store and on the model, and compares everything.
    fn run_step(&mut self, step: &Step) -> Result<(), String> {
        let batches: Vec<&[Op]> = match step {
            Step::Reopen => {
                self.reopen().map_err(|e| format!("reopen: {e}"))?;
                return self.check();
            }
            Step::One(op) => vec![std::slice::from_ref(op)],
            Step::Batch(ops) => vec![ops.as_slice()],
            Step::Group(batches) => batches.iter().map(Vec::as_slice).collect(),
        };
        let first_tag = self.tag + 1;
        let mut tickets = Vec::new();
        for ops in &batches {
            let mut batch = Batch::new();
            for op in *ops {
                self.add(&mut batch, op).map_err(|e| format!("adding {op:?}: {e}"))?;
            }
            let store = self.store.as_ref().ok_or("no store")?;
            tickets.push(store.submit(batch).map_err(|e| format!("submit: {e}"))?);
        }
        let mut expected_seen = Vec::new();
        let mut tag = first_tag;
        for (ops, ticket) in batches.iter().zip(tickets) {
            let receipt = ticket.wait().map_err(|e| format!("batch {ops:?}: {e}"))?;
            let mut outcomes = Vec::new();
            for op in *ops {
                let (outcome, seen) = model_op(&mut self.model, self.sources, op);
                outcomes.push(outcome);
                if let Op::Update { .. } = op {
                    if let Some(seen) = seen {
                        expected_seen.push((tag, seen));
                    }
                    tag += 1;
                }
            }
            for outcome in &receipt.outcomes {
                *self.tally.entry(kind(outcome)).or_default() += 1;
            }
            if receipt.outcomes != outcomes {
                return Err(format!(
                    "batch {ops:?}: store {:?}, model {outcomes:?}",
                    receipt.outcomes
                ));
            }
        }
        let seen = std::mem::take(&mut *self.seen.lock().map_err(|_| "seen lock")?);
        if seen != expected_seen {
            return Err(format!("update closures saw {seen:?}, model {expected_seen:?}"));
        }
        self.check()
    }

    /// Every key's record, through the plain handle and a source handle, against the
    /// model.
    fn check(&self) -> Result<(), String> {
        let plain = self.plain.as_ref().ok_or("no view")?;
        let mut live = 0;
        for key in 0..KEYS {
            let want = self.model.get(&key).and_then(|r| {
                let version = r.versions.iter().flatten().copied().max()?;
                r.value.map(|v| (version, v))
            });
            live += usize::from(want.is_some());
            let got = plain.get_versioned(&key).map(|(v, x)| (v, *x));
            let through_source = self.handles[0].get_versioned(&key).map(|(v, x)| (v, *x));
            if got != want || through_source != want {
                return Err(format!(
                    "key {key}: store {got:?}, model {want:?} ({:?})",
                    self.model.get(&key)
                ));
            }
        }
        if plain.len() != live {
            return Err(format!("len {} against {live}", plain.len()));
        }
        Ok(())
    }
}

/// The name of an outcome's kind, for the tally.
fn kind(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Applied => "applied",
        Outcome::Stale { .. } => "stale",
        Outcome::Conflict { .. } => "conflict",
        Outcome::Unchanged => "unchanged",
        Outcome::Purged { count: 0 } => "purged nothing",
        Outcome::Purged { .. } => "purged",
        Outcome::Tombstoned { .. } => "tombstoned",
        _ => "other",
    }
}

/// Runs `steps` steps from `seed`; `on_disk`: in a file instead of in memory. Returns
/// the tally of outcomes.
fn run(
    seed: u64,
    steps: usize,
    on_disk: Option<&std::path::Path>,
) -> Result<BTreeMap<&'static str, u64>, String> {
    let mut run = Run::new(seed, on_disk).map_err(|e| format!("seed {seed}: open: {e}"))?;
    let mut history = Vec::new();
    for n in 0..steps {
        let step = run.step();
        let result = run.run_step(&step);
        history.push(step);
        if let Err(e) = result {
            let tail: Vec<String> =
                history.iter().rev().take(8).rev().map(|s| format!("{s:?}")).collect();
            return Err(format!(
                "seed {seed}, {} sources, step {n}: {e}\nlast steps:\n{}",
                run.sources,
                tail.join("\n")
            ));
        }
    }
    let store = run.store.take().ok_or("no store")?;
    let report = store.verify().map_err(|e| format!("seed {seed}: verify: {e}"))?;
    report.is_ok().then_some(()).ok_or_else(|| format!("seed {seed}: verify: {report:?}"))?;
    store.close().map_err(|e| format!("seed {seed}: close: {e}"))?;
    Ok(run.tally)
}

/// Checks that the runs met every outcome a view with sources gives, many times.
fn check_tally(tally: &BTreeMap<&'static str, u64>, at_least: u64) -> Result<(), String> {
    println!("outcomes: {tally:?}");
    let kinds = ["applied", "stale", "conflict", "unchanged", "purged", "tombstoned"];
    let rare = kinds.iter().find(|k| tally.get(*k).is_none_or(|n| *n < at_least));
    rare.map_or(Ok(()), |kind| Err(format!("fewer than {at_least} outcomes {kind}: {tally:?}")))
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn random_steps_match_the_model_in_memory() -> Result<(), String> {
    if let Some(seed) = env_u64("VIEWSTORE_SOURCES_SEED") {
        let steps = env_u64("VIEWSTORE_SOURCES_STEPS").unwrap_or(2_000) as usize;
        return run(seed, steps, None).map(drop);
    }
    let mut tally = BTreeMap::new();
    for seed in 1..=8 {
        for (kind, n) in run(seed, 2_500, None)? {
            *tally.entry(kind).or_default() += n;
        }
    }
    check_tally(&tally, 100)
}

#[test]
fn random_steps_match_the_model_in_a_file() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let tally = run(101, 500, Some(&dir.path().join("model.redb")))?;
    check_tally(&tally, 5)
}
