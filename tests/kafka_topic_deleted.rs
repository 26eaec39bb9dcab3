//! A changelog topic deleted under a replica: the follower restarted against it ends
//! with an error that names the topic, instead of waiting forever. Alone in its test
//! binary: tansu 0.6.0 deletes every topic of the cluster when it deletes one, and
//! librdkafka clients of the same process that knew those topics can crash
//! (docs/kafka.md); test binaries run one after another, and each makes its own topics.

#![cfg(feature = "kafka")]

#[path = "support/changelog.rs"]
mod changelog;

use changelog::*;
use std::time::{Duration, Instant};
use viewstore::kafka::{ChangelogConfig, ChangelogPublisher, create_topic};
use viewstore::testing::Rng;

#[test]
fn a_deleted_topic_ends_the_follower_with_an_error() -> Res<()> {
    let Some(brokers) = brokers()? else { return Ok(()) };
    let topic = new_topic(&brokers, "deleted")?;
    let config = ChangelogConfig::new(&brokers, &topic);
    let dir = tempfile::tempdir()?;
    let p = primary(&dir.path().join("primary.redb"))?;
    let publisher = ChangelogPublisher::start(&p.store, config.clone())?;
    let r = replica(&dir.path().join("r.redb"), &config)?;
    let mut rng = Rng::new(7);
    let mut version = 0;
    random_groups(&p, &mut rng, 20, &mut version)?;
    caught_up(&r, p.store.lsn())?;
    publisher.stop()?;
    r.follower.stop()?;
    viewstore::kafka::delete_topic(&brokers, &topic, Duration::from_secs(30))?;
    // Restarted against the deleted topic: it ends with an error (at start, or soon
    // after), not waiting forever.
    let path = dir.path().join("r.redb");
    r.store.close()?;
    drop(r.store);
    let ended = follow_until_it_ends(&path, &config)?;
    eprintln!("a deleted topic: {ended}");
    // The primary's publisher against the deleted topic says what it is retrying.
    let publisher = ChangelogPublisher::start(&p.store, config.clone())?;
    random_groups(&p, &mut rng, 3, &mut version)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while publisher.retrying().is_none() && !publisher.is_finished() {
        assert!(Instant::now() < deadline, "the publisher reports the deleted topic");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("the publisher: {:?}", publisher.retrying());
    drop(publisher);
    // The topic made again, empty: the replica's place is gone from it.
    create_topic(&brokers, &topic, 1, &[("cleanup.policy", "compact")], Duration::from_secs(30))?;
    let ended = follow_until_it_ends(&path, &config)?;
    assert!(ended.contains("no longer holds offset"), "{ended}");
    Ok(())
}

/// Starts a follower into the replica at `path` and waits until it ends; its error.
fn follow_until_it_ends(path: &std::path::Path, config: &ChangelogConfig) -> Res<String> {
    let store = viewstore::Store::builder(path).replica(true).open()?;
    let (users, counts) = (store.view(&USERS)?, store.view(&COUNTS)?);
    let mut replicator = viewstore::Replicator::new(&store);
    replicator.view(&users)?.view(&counts)?;
    let ended = match viewstore::kafka::ChangelogFollower::start(replicator, config) {
        Err(e) => e.to_string(),
        Ok(follower) => {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !follower.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            match follower.stop() {
                Err(e) => e.to_string(),
                Ok(()) => {
                    return Err("the follower went on against a topic without its place".into());
                }
            }
        }
    };
    store.close()?;
    Ok(ended)
}
