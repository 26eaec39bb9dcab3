//! A model test of the change feed: random groups of random batches (puts, deletes,
//! updates, purges) on views with and without a feed, a small retention, reopens, and
//! readers starting at random LSNs, including behind the retention. Every reader must
//! see the groups in LSN order, none twice, none missing (replaying them onto the
//! state at the reader's start gives the store's state at every later LSN the test
//! captured), never a group not yet visible to readers of the store, and a reader
//! behind the retention gets `FeedPruned` naming where it can resume.

use std::collections::BTreeMap;
use std::time::Duration;
use viewstore::testing::Rng;
use viewstore::{Batch, ChangeKind, Error, FeedMode, FeedRetention, Lsn, Store, View, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const VALUES: ViewDef<u64, u64> = ViewDef::new("values").with_feed(FeedMode::Values);
const KEYS: ViewDef<u64, u64> = ViewDef::new("keys").with_feed(FeedMode::Keys);
const PLAIN: ViewDef<u64, u64> = ViewDef::new("plain");
const KEYSPACE: u64 = 12;

/// The live records of the two views with a feed: (view, key) to (version, value);
/// the value is kept for the `Values` view only.
type State = BTreeMap<(String, u64), (u64, Option<u64>)>;

struct Views {
    values: View<u64, u64>,
    keys: View<u64, u64>,
    plain: View<u64, u64>,
}

fn open(path: &std::path::Path, retention: u64) -> viewstore::Result<(Store, Views)> {
    let store = Store::builder(path)
        .feed_retention(FeedRetention::unbounded().max_groups(retention))
        .open()?;
    let views = Views {
        values: store.view(&VALUES)?,
        keys: store.view(&KEYS)?,
        plain: store.view(&PLAIN)?,
    };
    Ok((store, views))
}

/// The state readers of the store see, with the LSN it is at.
fn capture(store: &Store, views: &Views) -> viewstore::Result<(Lsn, State)> {
    let snapshot = store.snapshot();
    let mut state = State::new();
    for (name, view, with_value) in [("values", &views.values, true), ("keys", &views.keys, false)]
    {
        let snap = snapshot.view(view)?;
        for (key, value) in &snap {
            let version = snap
                .get_versioned(&key)
                .map(|(v, _)| v)
                .ok_or("version")
                .map_err(|_| Error::Closed)?;
            state.insert((name.to_owned(), key), (version, with_value.then_some(*value)));
        }
    }
    Ok((snapshot.lsn(), state))
}

fn random_batch(rng: &mut Rng, views: &Views, clock: &mut u64) -> viewstore::Result<Batch> {
    let mut batch = Batch::new();
    for _ in 0..=rng.below(4) {
        *clock += 1;
        let key = rng.below(KEYSPACE);
        // Versions around the clock: some stale, some new.
        let version = clock.saturating_sub(rng.below(6));
        let value = rng.below(1000);
        let view = match rng.below(5) {
            0 => &views.plain,
            1 | 2 => &views.keys,
            _ => &views.values,
        };
        match rng.below(10) {
            0..=4 => batch.put(view, &key, value, version)?,
            5 | 6 => batch.delete(view, &key, version)?,
            7 | 8 => {
                batch.update(view, &key, version, move |v| Some(v.copied().unwrap_or(0) + value))?
            }
            _ => batch.purge_tombstones(view, clock.saturating_sub(rng.below(20)))?,
        };
    }
    Ok(batch)
}

/// Reads the feed after `start` to the end, replaying it onto `states[start]`, and
/// checks it against every captured state on the way.
fn check_reader(store: &Store, states: &BTreeMap<Lsn, State>, start: Lsn) -> Result<usize, String> {
    let mut reader = match store.feed_after(start) {
        Ok(reader) => reader,
        Err(Error::FeedPruned { after, readable_after }) => {
            if after != start || readable_after <= start {
                return Err(format!(
                    "pruned error {after} {readable_after} for a start at {start}"
                ));
            }
            // The named resume point works.
            store
                .feed_after(readable_after)
                .map_err(|e| format!("resume at {readable_after}: {e}"))?;
            return Ok(0);
        }
        Err(e) => return Err(format!("feed_after({start}): {e}")),
    };
    let mut replica = states.get(&start).cloned().ok_or("no state at start")?;
    let mut last = start;
    let mut groups = 0;
    let mut pending_checks = states.range(start..).skip(1).peekable();
    loop {
        let group = match reader.next_timeout(Duration::ZERO) {
            Ok(Some(group)) => group,
            Ok(None) => break,
            Err(Error::FeedPruned { .. }) => return Ok(groups),
            Err(e) => return Err(format!("reading: {e}")),
        };
        if group.lsn <= last {
            return Err(format!("group {} after {last}: out of order or twice", group.lsn));
        }
        if group.lsn > store.lsn() {
            return Err(format!("group {} shown before the store published it", group.lsn));
        }
        // Captured states strictly before this group must equal the replica now.
        while let Some(&(&lsn, state)) = pending_checks.peek() {
            if lsn >= group.lsn {
                break;
            }
            if replica != *state {
                return Err(format!("replica after {start} differs from the store at {lsn}"));
            }
            pending_checks.next();
        }
        for change in &group.changes {
            let key: u64 = change.decode_key().map_err(|e| e.to_string())?;
            let slot = (change.view.to_string(), key);
            match change.kind {
                ChangeKind::Live => {
                    let value = change
                        .value
                        .as_ref()
                        .map(|v| {
                            bincode::serde::decode_from_slice::<u64, _>(
                                v,
                                bincode::config::standard(),
                            )
                        })
                        .transpose()
                        .map_err(|e| format!("value: {e}"))?
                        .map(|(v, _)| v);
                    replica.insert(slot, (change.version, value));
                }
                ChangeKind::Tombstone | ChangeKind::Purged => {
                    replica.remove(&slot);
                }
                _ => return Err("an unknown change kind".into()),
            }
        }
        last = group.lsn;
        groups += 1;
    }
    for (&lsn, state) in pending_checks {
        if replica != *state {
            return Err(format!("replica after {start} differs from the store at {lsn}"));
        }
    }
    Ok(groups)
}

fn run(seed: u64, steps: u64) -> TestResult {
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("feed.redb");
    let retention = 5 + rng.below(40);
    let (mut store, mut views) = open(&path, retention)?;
    let mut states = BTreeMap::new();
    let (lsn, state) = capture(&store, &views)?;
    states.insert(lsn, state);
    let mut clock = 10;
    let mut groups_read = 0;
    for step in 0..steps {
        match rng.below(20) {
            0 => {
                // Reopen: the feed and every captured state stay valid.
                store.close()?;
                drop((store, views));
                (store, views) = open(&path, retention)?;
            }
            1..=3 => {
                let starts: Vec<Lsn> = states.keys().copied().collect();
                let start = starts[rng.below(starts.len() as u64) as usize];
                groups_read += check_reader(&store, &states, start)
                    .map_err(|e| format!("seed {seed} step {step}: {e}"))?;
            }
            _ => {
                // One to four batches submitted together: often one group.
                let mut tickets = Vec::new();
                for _ in 0..=rng.below(4) {
                    tickets.push(store.submit(random_batch(&mut rng, &views, &mut clock)?)?);
                }
                for ticket in tickets {
                    ticket.wait()?;
                }
                let (lsn, state) = capture(&store, &views)?;
                states.insert(lsn, state);
            }
        }
    }
    assert!(groups_read > 0, "seed {seed}: no reader read anything");
    Ok(())
}

#[test]
fn every_reader_sees_exactly_the_committed_changes_in_order() -> TestResult {
    for seed in 0..6 {
        run(0xFEED_0000 + seed, 400)?;
    }
    Ok(())
}

#[test]
fn a_follower_never_sees_a_group_before_the_store_does() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (store, views) = open(&dir.path().join("feed.redb"), 1_000_000)?;
    let reader = store.feed_after(Lsn::new(0))?;
    let published = store.clone();
    let follower = std::thread::spawn(move || -> Result<u64, String> {
        let mut last = Lsn::new(0);
        let mut n = 0;
        for group in reader {
            let group = group.map_err(|e| e.to_string())?;
            if group.lsn <= last || group.lsn > published.lsn() {
                return Err(format!(
                    "group {} after {last}, store at {}",
                    group.lsn,
                    published.lsn()
                ));
            }
            last = group.lsn;
            n += 1;
        }
        Ok(n)
    });
    let mut rng = Rng::new(7);
    let mut clock = 10;
    let mut tickets = Vec::new();
    for _ in 0..2_000 {
        tickets.push(store.submit(random_batch(&mut rng, &views, &mut clock)?)?);
    }
    for ticket in tickets {
        ticket.wait()?;
    }
    drop(views);
    store.close()?;
    let n = follower.join().map_err(|_| "the follower panicked")??;
    assert!(n > 0);
    Ok(())
}
