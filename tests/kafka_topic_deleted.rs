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
use viewstore::kafka::{ChangelogConfig, ChangelogPublisher};
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
    // Restarted against the deleted topic: it ends with an error, not waiting forever.
    let (path, store) = (dir.path().join("r.redb"), r.store);
    store.close()?;
    drop(store);
    let again = replica(&path, &config)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !again.follower.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let ended = again.follower.stop();
    assert!(ended.is_err(), "the follower reports the deleted topic: {ended:?}");
    eprintln!("a deleted topic: {}", ended.err().map(|e| e.to_string()).unwrap_or_default());
    Ok(())
}
