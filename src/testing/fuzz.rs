//! The bodies of the fuzz targets in `fuzz/fuzz_targets/`, as plain functions: the fuzz
//! targets call them on generated input, and `tests/fuzz_corpus.rs` calls them on the
//! checked-in corpus, so that the corpus runs on stable in every test run.
//!
//! Each returns `Err` with a description when a property fails; the fuzz targets turn
//! that into a panic, which is what the fuzzer looks for.

use super::crash::{CrashCase, run_crash_case};
use super::fault::{FaultBackend, FaultMode, FaultPlan, FaultTarget};
use crate::api::batch::Batch;
use crate::api::index_def::IndexDef;
use crate::api::store::Store;
use crate::api::view::{View, ViewDef};
use crate::base::codec::{Bincode, Codec};
use crate::base::error::Error;
use crate::base::version::{Outcome, Version};
use crate::keys::{decode_key, encode_key};
use crate::storage::format::Record;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Reads the fuzzer's bytes as a stream of small numbers; zeros once exhausted.
struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |acc, _| (acc << 8) | u64::from(self.byte()))
    }
}

// ---------------------------------------------------------------------------------------
// decode_value

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Unit,
    Pair(u32, String),
    Named { id: i64, tags: Vec<String>, score: Option<u16> },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    followers: u64,
    bio: Option<String>,
    shapes: Vec<Shape>,
    bytes: Vec<u8>,
}

fn round_trip<V>(bytes: &[u8], what: &str) -> Result<(), String>
where
    V: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(value) = Codec::<V>::decode(&Bincode, bytes) else {
        return Ok(());
    };
    let mut again = Vec::new();
    Codec::<V>::encode(&Bincode, &value, &mut again)
        .map_err(|e| format!("{what}: a decoded value does not encode: {e}"))?;
    let back: V = Codec::<V>::decode(&Bincode, &again)
        .map_err(|e| format!("{what}: a re-encoded value does not decode: {e}"))?;
    if back != value {
        return Err(format!("{what}: {value:?} came back as {back:?}"));
    }
    Ok(())
}

fn key_round_trip<K>(bytes: &[u8], what: &str) -> Result<(), String>
where
    K: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(key) = decode_key::<K>(bytes) else {
        return Ok(());
    };
    let mut again = Vec::new();
    encode_key(&key, &mut again)
        .map_err(|e| format!("{what}: decoded key does not encode: {e:?}"))?;
    let back: K = decode_key(&again).map_err(|e| format!("{what}: re-encoded key: {e:?}"))?;
    if back != key {
        return Err(format!("{what}: key {key:?} came back as {back:?}"));
    }
    Ok(())
}

/// Arbitrary bytes into the value codec, the record format and the key decoder: never
/// a panic, and whatever decodes encodes back to an equal value.
///
/// # Errors
///
/// A value or key that does not survive a round trip.
pub fn decode_value(data: &[u8]) -> Result<(), String> {
    let _ = Record::decode(data);
    round_trip::<String>(data, "String")?;
    round_trip::<Vec<u8>>(data, "Vec<u8>")?;
    round_trip::<(u64, String)>(data, "(u64, String)")?;
    round_trip::<Profile>(data, "Profile")?;
    round_trip::<Vec<Shape>>(data, "Vec<Shape>")?;
    round_trip::<Option<i128>>(data, "Option<i128>")?;
    key_round_trip::<u64>(data, "u64 key")?;
    key_round_trip::<i32>(data, "i32 key")?;
    key_round_trip::<String>(data, "String key")?;
    key_round_trip::<(u32, String, Option<i16>)>(data, "tuple key")?;
    key_round_trip::<Vec<u8>>(data, "bytes key")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// ops_model

const A_BY_LEN: IndexDef<String, u64> = IndexDef::multi("by_len", |v| v.len() as u64);
const VIEW_A: ViewDef<u16, String> = ViewDef::new("fz.a").with_indexes(&[&A_BY_LEN]);
const VIEW_B: ViewDef<i16, String> = ViewDef::new("fz.b");

/// Model keys run from -8: view a (unsigned keys) stores them shifted up.
const KEY_OFFSET: i32 = 8;

/// A key's state in the model: version, and the value (`None` = tombstone).
type Model = BTreeMap<i32, (Version, Option<String>)>;

#[derive(Debug, Clone)]
enum UpdateKind {
    Append,
    Unchanged,
    Panic,
}

#[derive(Debug, Clone)]
enum ModelOp {
    Put { key: i32, version: Version, value: String },
    Delete { key: i32, version: Version },
    Cas { key: i32, expected: Option<Version>, version: Version, value: String },
    Update { key: i32, version: Version, kind: UpdateKind },
    Purge { below: Version },
}

fn expected_outcome(model: &mut Model, op: &ModelOp) -> Result<Outcome, ()> {
    let stale = |model: &Model, key: i32, version: Version| {
        model.get(&key).map(|(v, _)| *v).filter(|&current| version <= current)
    };
    Ok(match op {
        ModelOp::Put { key, version, value } => {
            if let Some(current) = stale(model, *key, *version) {
                Outcome::Stale { current }
            } else {
                model.insert(*key, (*version, Some(value.clone())));
                Outcome::Applied
            }
        }
        ModelOp::Delete { key, version } => {
            if let Some(current) = stale(model, *key, *version) {
                Outcome::Stale { current }
            } else {
                model.insert(*key, (*version, None));
                Outcome::Applied
            }
        }
        ModelOp::Cas { key, expected, version, value } => {
            let live = model.get(key).and_then(|(v, val)| val.as_ref().map(|_| *v));
            if live != *expected {
                Outcome::Conflict { current: live }
            } else if let Some(current) = stale(model, *key, *version) {
                Outcome::Stale { current }
            } else {
                model.insert(*key, (*version, Some(value.clone())));
                Outcome::Applied
            }
        }
        ModelOp::Update { key, version, kind } => match stale(model, *key, *version) {
            Some(current) => Outcome::Stale { current },
            None => match kind {
                UpdateKind::Panic => return Err(()),
                UpdateKind::Unchanged => Outcome::Unchanged,
                UpdateKind::Append => {
                    let old = model.get(key).and_then(|(_, v)| v.clone());
                    model.insert(*key, (*version, Some(appended(old.as_deref()))));
                    Outcome::Applied
                }
            },
        },
        ModelOp::Purge { below } => {
            let doomed: Vec<i32> = model
                .iter()
                .filter(|(_, (v, val))| val.is_none() && *v < *below)
                .map(|(k, _)| *k)
                .collect();
            for k in &doomed {
                model.remove(k);
            }
            Outcome::Purged { count: doomed.len() as u64 }
        }
    })
}

fn appended(old: Option<&str>) -> String {
    format!("{}u", old.unwrap_or(""))
}

struct Handles {
    store: Store,
    a: View<u16, String>,
    b: View<i16, String>,
}

impl Handles {
    fn open(backend: &Arc<FaultBackend>) -> Result<Self, String> {
        let store = Store::builder("fuzz-model")
            .backend(Arc::clone(backend) as _)
            .open()
            .map_err(|e| format!("open: {e}"))?;
        Ok(Handles {
            a: store.view(&VIEW_A).map_err(|e| format!("view a: {e}"))?,
            b: store.view(&VIEW_B).map_err(|e| format!("view b: {e}"))?,
            store,
        })
    }

    fn add(&self, batch: &mut Batch, b_view: bool, op: &ModelOp) -> crate::Result<()> {
        if b_view {
            add_op(batch, &self.b, op, |k| k as i16)
        } else {
            add_op(batch, &self.a, op, |k| u16::try_from(k + KEY_OFFSET).unwrap_or(0))
        }
    }

    /// Checks that both views hold exactly the model's live records, in key order.
    fn check(&self, models: &[Model; 2]) -> Result<(), String> {
        let a: Vec<(i32, Version, String)> = self
            .a
            .snapshot()
            .iter()
            .map(|(k, v)| {
                let key = i32::from(k) - KEY_OFFSET;
                (key, self.a.version(&k).unwrap_or(0), v.clone())
            })
            .collect();
        let b: Vec<(i32, Version, String)> = self
            .b
            .snapshot()
            .iter()
            .map(|(k, v)| (i32::from(k), self.b.version(&k).unwrap_or(0), v.clone()))
            .collect();
        for (name, got, model) in [("a", a, &models[0]), ("b", b, &models[1])] {
            let want: Vec<(i32, Version, String)> =
                model.iter().filter_map(|(k, (v, val))| Some((*k, *v, val.clone()?))).collect();
            if got != want {
                return Err(format!("view {name} holds {got:?}, the model {want:?}"));
            }
        }
        Ok(())
    }
}

fn add_op<K: crate::ViewKey>(
    batch: &mut Batch,
    view: &View<K, String>,
    op: &ModelOp,
    key: impl Fn(i32) -> K,
) -> crate::Result<()> {
    match op {
        ModelOp::Put { key: k, version, value } => {
            batch.put(view, &key(*k), value.clone(), *version)?
        }
        ModelOp::Delete { key: k, version } => batch.delete(view, &key(*k), *version)?,
        ModelOp::Cas { key: k, expected, version, value } => {
            batch.compare_and_set(view, &key(*k), *expected, *version, value.clone())?
        }
        ModelOp::Update { key: k, version, kind } => {
            let kind = kind.clone();
            batch.update(view, &key(*k), *version, move |old: Option<&String>| match kind {
                UpdateKind::Append => Some(appended(old.map(String::as_str))),
                UpdateKind::Unchanged => None,
                UpdateKind::Panic => panic!("fuzz: a panicking update closure"),
            })?
        }
        ModelOp::Purge { below } => batch.purge_tombstones(view, *below)?,
    };
    Ok(())
}

fn read_op(input: &mut Input<'_>) -> ModelOp {
    let key = i32::from(input.byte() % 24) - 8;
    let version = Version::from(input.byte() % 32);
    let value = format!("v{}", input.byte());
    match input.byte() % 10 {
        0..=3 => ModelOp::Put { key, version, value },
        4 | 5 => ModelOp::Delete { key, version },
        6 => ModelOp::Cas {
            key,
            expected: (version % 3 != 0).then_some(version.saturating_sub(1)),
            version,
            value,
        },
        7 | 8 => ModelOp::Update {
            key,
            version,
            kind: match input.byte() % 8 {
                0 => UpdateKind::Panic,
                1 => UpdateKind::Unchanged,
                _ => UpdateKind::Append,
            },
        },
        _ => ModelOp::Purge { below: version / 2 },
    }
}

/// A batch of the model workload: its operations, each on view a or b.
type ModelBatch = Vec<(bool, ModelOp)>;

/// Arbitrary operations (puts, deletes, compare-and-set, updates that append, leave
/// unchanged or panic, tombstone purges) in batches and groups over two views, with
/// reopens and simulated crashes, checked against a `BTreeMap` model: every outcome,
/// and after every step every record, in key order.
///
/// # Errors
///
/// The first difference between the store and the model.
pub fn ops_model(data: &[u8]) -> Result<(), String> {
    let mut input = Input { data };
    let mut backend = Arc::new(FaultBackend::new());
    let mut handles = Handles::open(&backend)?;
    let mut models: [Model; 2] = [Model::new(), Model::new()];
    let mut steps = 0;
    while !input.is_empty() && steps < 64 {
        steps += 1;
        match input.byte() % 16 {
            0 => {
                handles.store.close().map_err(|e| format!("close: {e}"))?;
                drop(handles);
                handles = Handles::open(&backend)?;
            }
            1 => {
                // The process dies: a new one finds what was written.
                let image = backend.written_image();
                backend = Arc::new(FaultBackend::from_image(image));
                let old = std::mem::replace(&mut handles, Handles::open(&backend)?);
                drop(old);
            }
            n => {
                let batches: Vec<ModelBatch> = (0..=(n % 3))
                    .map(|_| {
                        (0..=(input.byte() % 4))
                            .map(|_| (input.byte() % 2 == 1, read_op(&mut input)))
                            .collect()
                    })
                    .collect();
                run_group(&handles, &mut models, &batches)?;
            }
        }
        handles.check(&models).map_err(|e| format!("step {steps}: {e}"))?;
        super::workload::check_verify(&handles.store).map_err(|e| format!("step {steps}: {e}"))?;
    }
    handles.store.close().map_err(|e| format!("close: {e}"))
}

/// Submits `batches` together (they may share a group) and checks each receipt
/// against the model applied in submission order.
fn run_group(
    handles: &Handles,
    models: &mut [Model; 2],
    batches: &[ModelBatch],
) -> Result<(), String> {
    let mut tickets = Vec::new();
    for ops in batches {
        let mut batch = Batch::new();
        for (b_view, op) in ops {
            handles.add(&mut batch, *b_view, op).map_err(|e| format!("adding {op:?}: {e}"))?;
        }
        tickets.push(handles.store.submit(batch).map_err(|e| format!("submit: {e}"))?);
    }
    for (ops, ticket) in batches.iter().zip(tickets) {
        let mut next = models.clone();
        let expected: Result<Vec<Outcome>, ()> = ops
            .iter()
            .map(|(b_view, op)| expected_outcome(&mut next[usize::from(*b_view)], op))
            .collect();
        let got = ticket.wait();
        match (expected, got) {
            (Ok(want), Ok(receipt)) if receipt.outcomes == want => *models = next,
            (Err(()), Err(Error::UpdatePanicked { .. })) => {}
            (want, got) => {
                return Err(format!("batch {ops:?}: expected {want:?}, got {got:?}"));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// crash_point

/// A workload run on the fault-injecting backend with a fault chosen by the input (what
/// fails, when, once or for good), immediate, periodic or journal durability (faults in the store file or in the
/// journal), and power-loss
/// images torn by seeds from the input; see
/// [`run_crash_case`](super::run_crash_case).
///
/// # Errors
///
/// The failed check, with the case.
pub fn crash_point(data: &[u8]) -> Result<(), String> {
    let mut input = Input { data };
    let batches = u64::from(input.byte() % 32) + 1;
    let trio_every = u64::from(input.byte() % 6);
    let target = match input.byte() % 3 {
        0 => FaultTarget::Write,
        1 => FaultTarget::Sync,
        _ => FaultTarget::Any,
    };
    let at = u64::from(input.u16() % 400);
    let mode = if input.byte().is_multiple_of(2) { FaultMode::Once } else { FaultMode::FromThenOn };
    let durability = input.byte() % 4;
    let tear_seeds = vec![0, input.u64() | 1, input.u64() | 1];
    // Read last, so that inputs written before journal mode keep their meaning.
    let log_faults = input.byte().is_multiple_of(2);
    run_crash_case(&CrashCase {
        batches,
        trio_every,
        plan: Some(FaultPlan { target, at, mode }),
        periodic: durability == 0,
        journal: durability == 1,
        log_faults,
        tear_seeds,
    })
    .map(drop)
}
