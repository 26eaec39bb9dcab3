//! What the changelog tests share: the broker from `.ci/kafka`, a topic of their own,
//! a primary with a random workload, replicas that follow the topic, and comparisons.
//!
//! The broker comes from `.ci/kafka` (`VIEWSTORE_KAFKA_BROKERS`); without it the tests
//! say so and pass, unless `VIEWSTORE_REQUIRE_KAFKA=1`.

#![allow(dead_code, reason = "each test binary uses a part of these helpers")]

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use viewstore::kafka::{ChangelogConfig, ChangelogFollower, create_topic};
use viewstore::testing::Rng;
use viewstore::{Batch, Durability, FeedMode, IndexDef, Replicator, Store, View, ViewDef};

pub(crate) type Res<T> = Result<T, Box<dyn std::error::Error>>;

pub(crate) fn brokers() -> Res<Option<String>> {
    match std::env::var("VIEWSTORE_KAFKA_BROKERS") {
        Ok(b) => Ok(Some(b)),
        Err(_) if std::env::var("VIEWSTORE_REQUIRE_KAFKA").is_ok_and(|v| v == "1") => {
            Err("VIEWSTORE_REQUIRE_KAFKA=1 but VIEWSTORE_KAFKA_BROKERS is not set: start the \
                 broker with `eval \"$(.ci/kafka start DIR)\"`"
                .into())
        }
        Err(_) => {
            eprintln!("skipped: no Kafka broker (run `eval \"$(.ci/kafka start DIR)\"` first)");
            Ok(None)
        }
    }
}

/// A topic of its own for each test run.
pub(crate) fn new_topic(brokers: &str, name: &str) -> Res<String> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
    let topic = format!("{name}-{}-{nanos}", std::process::id());
    create_topic(brokers, &topic, 1, &[("cleanup.policy", "compact")], Duration::from_secs(30))?;
    Ok(topic)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct User {
    pub(crate) email: String,
    pub(crate) visits: u64,
}

pub(crate) const BY_EMAIL: IndexDef<User, String> =
    IndexDef::unique("by_email", |u| u.email.clone());
pub(crate) const USERS: ViewDef<u64, User> =
    ViewDef::new("users").with_feed(FeedMode::Values).with_indexes(&[&BY_EMAIL]);
pub(crate) const COUNTS: ViewDef<u64, u64> = ViewDef::new("counts").with_feed(FeedMode::Values);
pub(crate) const LOCAL: ViewDef<u64, u64> = ViewDef::new("local");

pub(crate) struct Primary {
    pub(crate) store: Store,
    pub(crate) users: View<u64, User>,
    pub(crate) counts: View<u64, u64>,
    pub(crate) local: View<u64, u64>,
}

pub(crate) fn primary(path: &std::path::Path) -> Res<Primary> {
    let store = Store::builder(path).durability(Durability::Immediate).open()?;
    Ok(Primary {
        users: store.view(&USERS)?,
        counts: store.view(&COUNTS)?,
        local: store.view(&LOCAL)?,
        store,
    })
}

pub(crate) struct Replica {
    pub(crate) store: Store,
    pub(crate) users: View<u64, User>,
    pub(crate) counts: View<u64, u64>,
    pub(crate) follower: ChangelogFollower,
}

pub(crate) fn replica(path: &std::path::Path, config: &ChangelogConfig) -> Res<Replica> {
    let store = Store::builder(path).replica(true).open()?;
    let (users, counts) = (store.view(&USERS)?, store.view(&COUNTS)?);
    let mut replicator = Replicator::new(&store);
    replicator.view(&users)?.view(&counts)?;
    let follower = ChangelogFollower::start(replicator, config)?;
    Ok(Replica { store, users, counts, follower })
}

pub(crate) fn random_groups(
    p: &Primary,
    rng: &mut Rng,
    groups: usize,
    version: &mut u64,
) -> Res<()> {
    for _ in 0..groups {
        let mut batch = Batch::new();
        for _ in 0..=rng.below(3) {
            *version += 1;
            let k = rng.below(40);
            match rng.below(8) {
                0..=3 => {
                    let user = User { email: format!("{k}.{}@x", rng.below(2)), visits: *version };
                    batch.put(&p.users, &k, user, *version)?;
                }
                4 => {
                    batch.delete(&p.users, &k, *version)?;
                }
                5 | 6 => {
                    batch
                        .update_next(&p.counts, &(k % 5), |n| Some(n.copied().unwrap_or(0) + 1))?;
                }
                _ => {
                    batch.put(&p.local, &k, *version, *version)?;
                }
            }
        }
        p.store.submit(batch)?.wait()?;
    }
    Ok(())
}

pub(crate) type Contents = (Vec<(u64, Option<(u64, User)>)>, Vec<Option<u64>>);

pub(crate) fn contents(users: &View<u64, User>, counts: &View<u64, u64>) -> Contents {
    let users = (0..40).map(|k| (k, users.get_versioned(&k).map(|(v, u)| (v, (*u).clone()))));
    (users.collect(), (0..5).map(|k| counts.get(&k).map(|n| *n)).collect())
}

pub(crate) fn index_lookups(users: &View<u64, User>) -> Vec<Option<u64>> {
    (0..40)
        .flat_map(|k| (0..2).map(move |n| format!("{k}.{n}@x")))
        .map(|email| users.index_get(&BY_EMAIL, email.as_str()).map(|(k, _)| k))
        .collect()
}

/// Waits until the replica is at `lsn`.
pub(crate) fn caught_up(replica: &Replica, lsn: viewstore::Lsn) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while replica.store.lsn() < lsn {
        if replica.follower.is_finished() {
            return Err("the follower ended".into());
        }
        if Instant::now() > deadline {
            return Err(
                format!("the replica is at {} after 60 s, not {lsn}", replica.store.lsn()).into()
            );
        }
        replica.store.wait_for_timeout(lsn, Duration::from_millis(100))?;
    }
    assert_eq!(replica.store.lsn(), lsn, "the replica stops at the primary's lsn");
    Ok(())
}

pub(crate) fn equal(p: &Primary, r: &Replica) {
    assert_eq!(contents(&r.users, &r.counts), contents(&p.users, &p.counts));
    assert_eq!(index_lookups(&r.users), index_lookups(&p.users));
}

#[cfg(feature = "inspect")]
pub(crate) fn dump(path: &std::path::Path, view: &str) -> Res<Vec<String>> {
    let file = viewstore::inspect::StoreFile::open(path)?;
    let mut lines = Vec::new();
    file.dump(view, &mut |record| {
        lines.push(record.to_json().to_string());
        Ok(())
    })?;
    Ok(lines)
}
