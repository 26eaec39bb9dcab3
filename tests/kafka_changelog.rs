//! Replicas through a changelog topic on a real broker: a primary's feed published by a
//! `ChangelogPublisher`, followed by `ChangelogFollower`s into replica stores. A replica
//! reaches the primary's LSN exactly (markers carry the LSNs of groups without feed
//! changes) with equal views and indexes, byte for byte in a dump; a client reads its
//! write on the replica after `wait_for`; a replica started late bootstraps from the
//! topic; a replica and a publisher restarted midway go on without loss or double
//! apply (the counters match).

#![cfg(feature = "kafka")]

#[path = "support/changelog.rs"]
mod changelog;

use changelog::*;
use std::time::Duration;
use viewstore::kafka::{ChangelogConfig, ChangelogPublisher};
use viewstore::testing::Rng;

#[test]
fn replicas_follow_bootstrap_and_restart() -> Res<()> {
    let Some(brokers) = brokers()? else { return Ok(()) };
    let topic = new_topic(&brokers, "changelog")?;
    let config = ChangelogConfig::new(&brokers, &topic);
    let dir = tempfile::tempdir()?;
    let p = primary(&dir.path().join("primary.redb"))?;
    let mut publisher = ChangelogPublisher::start(&p.store, config.clone())?;
    let first = replica(&dir.path().join("r1.redb"), &config)?;
    let mut rng = Rng::new(41);
    let mut version = 0;

    random_groups(&p, &mut rng, 150, &mut version)?;
    caught_up(&first, p.store.lsn())?;
    equal(&p, &first);

    // A client reads its own write on the replica.
    for k in 100..110 {
        let lsn = p.counts.put(&k, k, 1)?.lsn;
        assert!(first.store.wait_for_timeout(lsn, Duration::from_secs(30))?);
        assert_eq!(first.counts.get(&k).as_deref(), Some(&k));
    }

    // The publisher restarts midway; the replica too, into the same store.
    publisher.stop()?;
    random_groups(&p, &mut rng, 50, &mut version)?;
    publisher = ChangelogPublisher::start(&p.store, config.clone())?;
    first.follower.stop()?;
    let (path, first_store) = (dir.path().join("r1.redb"), first.store);
    first_store.close()?;
    drop(first_store);
    let first = replica(&path, &config)?;
    random_groups(&p, &mut rng, 100, &mut version)?;
    caught_up(&first, p.store.lsn())?;
    equal(&p, &first);

    // A new replica bootstraps from the topic.
    let second = replica(&dir.path().join("r2.redb"), &config)?;
    caught_up(&second, p.store.lsn())?;
    equal(&p, &second);

    publisher.stop()?;
    first.follower.stop()?;
    second.follower.stop()?;
    let lsn = p.store.lsn();
    for store in [&p.store, &first.store, &second.store] {
        store.close()?;
    }
    assert_eq!(first.store.lsn(), lsn);
    #[cfg(feature = "inspect")]
    for view in ["users", "counts"] {
        let want = dump(&dir.path().join("primary.redb"), view)?;
        assert_eq!(dump(&dir.path().join("r1.redb"), view)?, want, "view {view}, replica 1");
        assert_eq!(dump(&dir.path().join("r2.redb"), view)?, want, "view {view}, replica 2");
    }
    Ok(())
}
