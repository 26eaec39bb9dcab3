//! A model test: random sequences of operations applied both to a store and to a
//! `BTreeMap` of (version, value or tombstone), with every read compared after every
//! step.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::Duration;
use viewstore::{Batch, Durability, Error, Outcome, Store, Version, View, ViewDef};

const ALPHA: ViewDef<u8, i64> = ViewDef::new("alpha");
const BETA: ViewDef<String, i64> = ViewDef::new("beta");

/// Keys 0..KEYS exist in both views; few of them, so that operations collide.
const KEYS: u8 = 8;
/// The message of the panics the model asks update closures for.
const PLANNED_PANIC: &str = "planned panic in an update closure";

/// Which of the two views an operation addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Which {
    Alpha,
    Beta,
}

/// One operation of a model run: the writes, multi-op batches, groups of batches
/// submitted without waiting, and a reopen of the store.
#[derive(Debug, Clone)]
enum Op {
    Put {
        view: Which,
        key: u8,
        version: Version,
        value: i64,
    },
    Delete {
        view: Which,
        key: u8,
        version: Version,
    },
    /// `delta: None` makes the closure return `None`.
    Update {
        view: Which,
        key: u8,
        version: Version,
        delta: Option<i64>,
        panics: bool,
    },
    /// With `expect_live`, the expectation is the live version when the batch is built.
    CompareAndSet {
        view: Which,
        key: u8,
        expect_live: bool,
        expected: Option<Version>,
        version: Version,
        value: i64,
    },
    Purge {
        view: Which,
        below: Version,
    },
    /// Several operations in one batch, across both views.
    Batch(Vec<Op>),
    /// Several batches submitted before any is waited for, so that they share groups.
    Group(Vec<Vec<Op>>),
    /// Reopens the store, after `close()` or after dropping every handle.
    Reopen {
        close: bool,
    },
}

/// A stored record as the model sees it: a live value or a tombstone (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    version: Version,
    value: Option<i64>,
}

type Model = BTreeMap<(Which, u8), Record>;

fn beta_key(key: u8) -> String {
    format!("key-{key}")
}

/// The handles on one open store.
struct Handles {
    store: Store,
    alpha: View<u8, i64>,
    beta: View<String, i64>,
}

struct Harness {
    open: Box<dyn Fn() -> viewstore::Result<Store>>,
    /// `None` only between dropping a store and opening it again.
    handles: Option<Handles>,
    model: Model,
    lsn: u64,
}

impl Harness {
    fn new(open: Box<dyn Fn() -> viewstore::Result<Store>>) -> viewstore::Result<Self> {
        let store = open()?;
        let (alpha, beta) = (store.view(&ALPHA)?, store.view(&BETA)?);
        let handles = Some(Handles { store, alpha, beta });
        Ok(Harness { open, handles, model: Model::new(), lsn: 0 })
    }

    fn h(&self) -> &Handles {
        self.handles.as_ref().expect("the store is open between steps")
    }

    /// Closes the store, or only drops every handle on it, and opens it again.
    fn reopen(&mut self, close: bool) -> viewstore::Result<()> {
        if let Some(old) = self.handles.take()
            && close
        {
            old.store.close()?;
        }
        let store = (self.open)()?;
        // Register in the other order than at first: views are found by name.
        let beta = store.view(&BETA)?;
        let alpha = store.view(&ALPHA)?;
        self.handles = Some(Handles { store, alpha, beta });
        Ok(())
    }

    /// Replaces `expect_live` by the live version of the model as it is now.
    fn resolve(&self, op: &Op) -> Op {
        match op {
            Op::CompareAndSet { view, key, expect_live: true, version, value, .. } => {
                Op::CompareAndSet {
                    view: *view,
                    key: *key,
                    expect_live: false,
                    expected: self
                        .model
                        .get(&(*view, *key))
                        .filter(|r| r.value.is_some())
                        .map(|r| r.version),
                    version: *version,
                    value: *value,
                }
            }
            other => other.clone(),
        }
    }

    fn add(&self, batch: &mut Batch, op: &Op) -> viewstore::Result<()> {
        match *op {
            Op::Put { view, key, version, value } => match view {
                Which::Alpha => batch.put(&self.h().alpha, &key, value, version),
                Which::Beta => batch.put(&self.h().beta, &beta_key(key), value, version),
            }
            .map(drop),
            Op::Delete { view, key, version } => match view {
                Which::Alpha => batch.delete(&self.h().alpha, &key, version),
                Which::Beta => batch.delete(&self.h().beta, &beta_key(key), version),
            }
            .map(drop),
            Op::Update { view, key, version, delta, panics } => {
                let f = move |current: Option<&i64>| {
                    assert!(!panics, "{PLANNED_PANIC}");
                    delta.map(|d| current.copied().unwrap_or(0) + d)
                };
                match view {
                    Which::Alpha => batch.update(&self.h().alpha, &key, version, f),
                    Which::Beta => batch.update(&self.h().beta, &beta_key(key), version, f),
                }
                .map(drop)
            }
            Op::CompareAndSet { view, key, expected, version, value, .. } => match view {
                Which::Alpha => {
                    batch.compare_and_set(&self.h().alpha, &key, expected, version, value)
                }
                Which::Beta => {
                    batch.compare_and_set(&self.h().beta, &beta_key(key), expected, version, value)
                }
            }
            .map(drop),
            Op::Purge { view, below } => match view {
                Which::Alpha => batch.purge_tombstones(&self.h().alpha, below),
                Which::Beta => batch.purge_tombstones(&self.h().beta, below),
            }
            .map(drop),
            Op::Batch(_) | Op::Group(_) | Op::Reopen { .. } => {
                unreachable!("the strategy only puts single writes into batches")
            }
        }
    }

    fn batch(&self, ops: &[Op]) -> viewstore::Result<Batch> {
        let mut batch = Batch::new();
        for op in ops {
            self.add(&mut batch, op)?;
        }
        Ok(batch)
    }

    /// Applies one batch to the model: its outcomes, or `None` when it fails (a panicking
    /// update), in which case the model is left as it was.
    fn model_batch(&mut self, ops: &[Op]) -> Option<Vec<Outcome>> {
        let mut next = self.model.clone();
        let mut outcomes = Vec::new();
        for op in ops {
            outcomes.push(model_op(&mut next, op)?);
        }
        self.model = next;
        Some(outcomes)
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let batches: Vec<Vec<Op>> = match op {
            Op::Reopen { close } => {
                self.reopen(*close).map_err(fail)?;
                return Ok(());
            }
            Op::Group(batches) => {
                batches.iter().map(|b| b.iter().map(|op| self.resolve(op)).collect()).collect()
            }
            Op::Batch(ops) => vec![ops.iter().map(|op| self.resolve(op)).collect()],
            single => vec![vec![self.resolve(single)]],
        };
        let tickets = batches
            .iter()
            .map(|ops| self.h().store.submit(self.batch(ops)?))
            .collect::<viewstore::Result<Vec<_>>>()
            .map_err(fail)?;
        // Batches of one group share its LSN; each group gets a greater one.
        let before = self.lsn;
        for (ops, ticket) in batches.iter().zip(tickets) {
            let expected = self.model_batch(ops);
            match (ticket.wait(), expected) {
                (Ok(receipt), Some(outcomes)) => {
                    prop_assert_eq!(&receipt.outcomes, &outcomes, "batch {:?}", ops);
                    let lsn = receipt.lsn.get();
                    prop_assert!(lsn > before && lsn >= self.lsn, "lsn {} after {}", lsn, self.lsn);
                    self.lsn = lsn;
                }
                (Err(Error::UpdatePanicked { message, .. }), None) => {
                    prop_assert!(message.contains(PLANNED_PANIC), "{}", message);
                }
                (got, want) => {
                    return Err(TestCaseError::fail(format!(
                        "batch {ops:?}: store gave {got:?}, model {want:?}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Compares every read of both views with the model.
    fn check(&self) -> Result<(), TestCaseError> {
        prop_assert_eq!(self.h().store.lsn().get(), self.lsn);
        let snap = self.h().store.snapshot();
        prop_assert_eq!(snap.lsn().get(), self.lsn);
        for which in [Which::Alpha, Which::Beta] {
            let live: Vec<(u8, Version, i64)> = self
                .model
                .iter()
                .filter(|((w, _), _)| *w == which)
                .filter_map(|((_, k), r)| r.value.map(|v| (*k, r.version, v)))
                .collect();
            let (len, scanned): (usize, Vec<(u8, Version, i64)>) = match which {
                Which::Alpha => {
                    let view = snap.view(&self.h().alpha).expect("a view of this store");
                    let scanned = view
                        .iter()
                        .map(|(k, v)| (k, self.h().alpha.version(&k).unwrap_or(u64::MAX), *v))
                        .collect();
                    (self.h().alpha.len(), scanned)
                }
                Which::Beta => {
                    let view = snap.view(&self.h().beta).expect("a view of this store");
                    let scanned = view
                        .iter()
                        .map(|(k, v)| {
                            let n = k.trim_start_matches("key-").parse().unwrap_or(u8::MAX);
                            (n, self.h().beta.version(&k).unwrap_or(u64::MAX), *v)
                        })
                        .collect();
                    (self.h().beta.len(), scanned)
                }
            };
            prop_assert_eq!(len, live.len(), "len of {:?}", which);
            if which == Which::Alpha {
                // Ranges over the encoded keys select what the model's range selects.
                for (lo, hi) in [(0, KEYS), (2, 5), (3, 3), (6, 2)] {
                    let ranged: Vec<(u8, i64)> =
                        self.h().alpha.range(lo..hi).into_iter().map(|(k, v)| (k, *v)).collect();
                    let want: Vec<(u8, i64)> = live
                        .iter()
                        .filter(|(k, _, _)| (lo..hi).contains(k))
                        .map(|&(k, _, v)| (k, v))
                        .collect();
                    prop_assert_eq!(ranged, want, "range {}..{}", lo, hi);
                }
            }
            prop_assert_eq!(&scanned, &live, "scan of {:?}", which);
            for key in 0..KEYS {
                let want =
                    self.model.get(&(which, key)).and_then(|r| r.value.map(|v| (r.version, v)));
                let (got, got_plain, contains, snap_got) = match which {
                    Which::Alpha => (
                        self.h().alpha.get_versioned(&key).map(|(v, x)| (v, *x)),
                        self.h().alpha.get(&key).map(|x| *x),
                        self.h().alpha.contains(&key),
                        snap.view(&self.h().alpha)
                            .expect("a view of this store")
                            .get_versioned(&key)
                            .map(|(v, x)| (v, *x)),
                    ),
                    Which::Beta => {
                        let k = beta_key(key);
                        (
                            self.h().beta.get_versioned(&k).map(|(v, x)| (v, *x)),
                            self.h().beta.get(&k).map(|x| *x),
                            self.h().beta.contains(&k),
                            snap.view(&self.h().beta)
                                .expect("a view of this store")
                                .get_versioned(&k)
                                .map(|(v, x)| (v, *x)),
                        )
                    }
                };
                prop_assert_eq!(got, want, "get_versioned {:?} {}", which, key);
                prop_assert_eq!(snap_got, want, "snapshot get_versioned {:?} {}", which, key);
                prop_assert_eq!(got_plain, want.map(|(_, v)| v), "get {:?} {}", which, key);
                prop_assert_eq!(contains, want.is_some(), "contains {:?} {}", which, key);
            }
        }
        Ok(())
    }
}

#[expect(clippy::needless_pass_by_value, reason = "a `map_err` adapter")]
fn fail(e: Error) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// The model's semantics of one write. `None`: the operation fails its batch.
fn model_op(model: &mut Model, op: &Op) -> Option<Outcome> {
    let stale = |model: &Model, view: Which, key: u8, version: Version| {
        model
            .get(&(view, key))
            .map(|r| r.version)
            .filter(|&c| version <= c)
            .map(|current| Outcome::Stale { current })
    };
    Some(match *op {
        Op::Put { view, key, version, value } => {
            stale(model, view, key, version).unwrap_or_else(|| {
                model.insert((view, key), Record { version, value: Some(value) });
                Outcome::Applied
            })
        }
        Op::Delete { view, key, version } => {
            stale(model, view, key, version).unwrap_or_else(|| {
                model.insert((view, key), Record { version, value: None });
                Outcome::Applied
            })
        }
        Op::Update { view, key, version, delta, panics } => {
            match stale(model, view, key, version) {
                Some(outcome) => outcome,
                None if panics => return None,
                None => match delta {
                    None => Outcome::Unchanged,
                    Some(d) => {
                        let current = model.get(&(view, key)).and_then(|r| r.value).unwrap_or(0);
                        model.insert((view, key), Record { version, value: Some(current + d) });
                        Outcome::Applied
                    }
                },
            }
        }
        Op::CompareAndSet { view, key, expected, version, value, .. } => {
            let live = model.get(&(view, key)).filter(|r| r.value.is_some()).map(|r| r.version);
            if live != expected {
                Outcome::Conflict { current: live }
            } else if let Some(outcome) = stale(model, view, key, version) {
                outcome
            } else {
                model.insert((view, key), Record { version, value: Some(value) });
                Outcome::Applied
            }
        }
        Op::Purge { view, below } => {
            let before = model.len();
            model.retain(|(w, _), r| !(*w == view && r.value.is_none() && r.version < below));
            Outcome::Purged { count: (before - model.len()) as u64 }
        }
        Op::Batch(_) | Op::Group(_) | Op::Reopen { .. } => {
            unreachable!("the strategy only puts single writes into batches")
        }
    })
}

fn which() -> impl Strategy<Value = Which> {
    prop_oneof![Just(Which::Alpha), Just(Which::Beta)]
}

/// A single write. Small key and version ranges make stale writes, conflicts and
/// resurrections common.
fn write_op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS;
    let version = 0..16u64;
    let value = -50..50i64;
    prop_oneof![
        4 => (which(), key.clone(), version.clone(), value.clone())
            .prop_map(|(view, key, version, value)| Op::Put { view, key, version, value }),
        2 => (which(), key.clone(), version.clone())
            .prop_map(|(view, key, version)| Op::Delete { view, key, version }),
        3 => (
            which(),
            key.clone(),
            version.clone(),
            prop::option::weighted(0.8, -5..6i64),
            prop::bool::weighted(0.05),
        )
            .prop_map(|(view, key, version, delta, panics)| Op::Update {
                view,
                key,
                version,
                delta,
                panics,
            }),
        2 => (
            which(),
            key,
            any::<bool>(),
            prop::option::of(0..16u64),
            version,
            value,
        )
            .prop_map(|(view, key, expect_live, expected, version, value)| {
                Op::CompareAndSet {
                    view,
                    key,
                    expect_live,
                    expected,
                    version,
                    value,
                }
            }),
        1 => (which(), 0..18u64).prop_map(|(view, below)| Op::Purge { view, below }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => write_op(),
        3 => prop::collection::vec(write_op(), 2..6).prop_map(Op::Batch),
        2 => prop::collection::vec(prop::collection::vec(write_op(), 1..4), 2..6)
            .prop_map(Op::Group),
        1 => any::<bool>().prop_map(|close| Op::Reopen { close }),
    ]
}

/// Keeps the planned panics of update closures out of the test output.
fn quiet_planned_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied());
            let planned = message.is_some_and(|m| m.contains(PLANNED_PANIC));
            if !planned {
                previous(info);
            }
        }));
    });
}

fn run(open: Box<dyn Fn() -> viewstore::Result<Store>>, ops: &[Op]) -> Result<(), TestCaseError> {
    quiet_planned_panics();
    let mut harness = Harness::new(open).map_err(fail)?;
    for op in ops {
        harness.step(op)?;
        harness.check()?;
    }
    // Whatever the sequence, a final reopen shows the same state, and memory agrees
    // with the file record by record.
    harness.reopen(true).map_err(fail)?;
    harness.check()?;
    let report = harness.h().store.verify().map_err(fail)?;
    prop_assert!(report.is_ok(), "{:?}", report.problems);
    prop_assert_eq!(report.views, 2);
    harness.h().store.close().map_err(fail)?;
    Ok(())
}

fn memory_opener() -> Box<dyn Fn() -> viewstore::Result<Store>> {
    let backend: Arc<dyn viewstore::redb::StorageBackend> =
        Arc::new(viewstore::redb::backends::InMemoryBackend::new());
    Box::new(move || Store::builder("model-in-memory").backend(Arc::clone(&backend)).open())
}

fn file_opener(path: PathBuf, durability: Durability) -> Box<dyn Fn() -> viewstore::Result<Store>> {
    Box::new(move || Store::builder(&path).durability(durability).open())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn random_operations_match_the_model_in_memory(ops in prop::collection::vec(op(), 1..60)) {
        run(memory_opener(), &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn random_operations_match_the_model_on_disk(ops in prop::collection::vec(op(), 20..50)) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        run(file_opener(dir.path().join("model.redb"), Durability::Immediate), &ops)?;
    }

    /// Syncs every few milliseconds, so that syncs fall between commits, reopens and
    /// drops.
    #[test]
    fn random_operations_match_the_model_with_periodic_durability(
        ops in prop::collection::vec(op(), 20..50),
    ) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let periodic = Durability::Periodic { interval: Duration::from_millis(2) };
        run(file_opener(dir.path().join("model.redb"), periodic), &ops)?;
    }
}

/// The group's earlier batches reach the table only when the group ends; a purge must
/// still see the tombstones they wrote, and not the tombstones they overwrote.
#[test]
fn a_purge_in_a_group_sees_what_earlier_batches_wrote() -> Result<(), TestCaseError> {
    use Which::Alpha;
    let ops = [
        Op::Delete { view: Alpha, key: 1, version: 3 },
        Op::Group(vec![
            vec![Op::Delete { view: Alpha, key: 2, version: 4 }],
            vec![Op::Put { view: Alpha, key: 1, version: 5, value: 7 }],
            vec![Op::Purge { view: Alpha, below: 10 }],
            vec![Op::Put { view: Alpha, key: 2, version: 1, value: 9 }],
        ]),
        Op::Reopen { close: true },
        Op::Put { view: Alpha, key: 1, version: 2, value: 8 },
    ];
    run(memory_opener(), &ops)?;
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    run(file_opener(dir.path().join("model.redb"), Durability::Immediate), &ops)
}

#[test]
fn a_purge_in_a_group_does_not_touch_tombstones_of_later_batches() -> Result<(), TestCaseError> {
    use Which::Alpha;
    let ops = [
        Op::Delete { view: Alpha, key: 1, version: 3 },
        Op::Group(vec![
            vec![Op::Purge { view: Alpha, below: 10 }],
            vec![Op::Delete { view: Alpha, key: 2, version: 4 }],
            vec![Op::Put { view: Alpha, key: 1, version: 1, value: 7 }],
        ]),
        Op::Put { view: Alpha, key: 2, version: 2, value: 9 },
    ];
    run(memory_opener(), &ops)
}
