//! A replica store fed the primary's change feed through a `Replicator` goes through the
//! same states at the same LSNs: after each group its LSN is the primary's, and at the
//! end every replicated view (records, versions, tombstones, indexes) equals the
//! primary's, in Immediate and in Journal mode (where replicated groups leave gaps in
//! the journal's LSNs), before and after a reopen. Groups delivered again are skipped;
//! ordinary writes to a replica, replicated groups to a primary, unknown views and
//! changes without values are refused with nothing written; a replica reopened without
//! `replica(true)` is promoted and numbers its groups on.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use viewstore::testing::Rng;
use viewstore::{
    Batch, Durability, Error, FeedMode, IndexDef, Lsn, Replicator, Store, View, ViewDef,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    email: String,
    city: String,
    visits: u64,
}

const BY_EMAIL: IndexDef<User, String> = IndexDef::unique("by_email", |u| u.email.clone());
const BY_CITY: IndexDef<User, String> = IndexDef::multi("by_city", |u| u.city.clone());
const USERS: ViewDef<u64, User> =
    ViewDef::new("users").with_feed(FeedMode::Values).with_indexes(&[&BY_EMAIL, &BY_CITY]);
const COUNTS: ViewDef<String, u64> = ViewDef::new("counts").with_feed(FeedMode::Values);
/// Not in the feed: its groups leave gaps in the LSNs the replica sees.
const LOCAL: ViewDef<u64, u64> = ViewDef::new("local");
const KEYS_ONLY: ViewDef<u64, u64> = ViewDef::new("keys_only").with_feed(FeedMode::Keys);

const KEYS: u64 = 60;
const CITIES: [&str; 4] = ["oslo", "lima", "pune", "kyiv"];

struct Primary {
    store: Store,
    users: View<u64, User>,
    counts: View<String, u64>,
    local: View<u64, u64>,
}

fn open_primary(path: &std::path::Path) -> viewstore::Result<Primary> {
    let store = Store::builder(path).durability(Durability::Immediate).open()?;
    Ok(Primary {
        users: store.view(&USERS)?,
        counts: store.view(&COUNTS)?,
        local: store.view(&LOCAL)?,
        store,
    })
}

struct Replica {
    store: Store,
    users: View<u64, User>,
    counts: View<String, u64>,
    replicator: Replicator,
}

fn open_replica(path: &std::path::Path, durability: Durability) -> viewstore::Result<Replica> {
    let store = Store::builder(path)
        .durability(durability)
        .checkpoint_interval(Duration::from_secs(3600))
        .replica(true)
        .open()?;
    let (users, counts) = (store.view(&USERS)?, store.view(&COUNTS)?);
    let mut replicator = Replicator::new(&store);
    replicator.view(&users)?.view(&counts)?;
    Ok(Replica { store, users, counts, replicator })
}

/// One random group on the primary: puts, deletes, updates, a purge now and then, or
/// a write to the view without a feed.
fn random_group(p: &Primary, rng: &mut Rng, version: &mut u64) -> viewstore::Result<()> {
    let mut batch = Batch::new();
    for _ in 0..=rng.below(4) {
        *version += 1;
        let k = rng.below(KEYS);
        match rng.below(10) {
            0..=4 => {
                let user = User {
                    // Unique: the key is in it.
                    email: format!("u{k}.{}@example.com", rng.below(3)),
                    city: CITIES[rng.below(4) as usize].to_owned(),
                    visits: rng.below(100),
                };
                batch.put(&p.users, &k, user, *version)?;
            }
            5 => {
                batch.delete(&p.users, &k, *version)?;
            }
            6 | 7 => {
                let name = format!("c{}", rng.below(8));
                batch.update_next(&p.counts, &name, |n| Some(n.copied().unwrap_or(0) + 1))?;
            }
            8 => {
                batch.put(&p.local, &k, *version, *version)?;
            }
            _ => {
                if rng.one_in(3) {
                    batch.purge_tombstones(&p.users, *version - rng.below(40))?;
                } else {
                    batch.delete(&p.counts, &format!("c{}", rng.below(8)), *version)?;
                }
            }
        }
    }
    p.store.submit(batch)?.wait()?;
    Ok(())
}

/// Records (version and value, tombstones as `None`) and index lookups of both views.
type Contents = (Vec<(u64, Option<(u64, User)>)>, Vec<(String, Option<u64>)>, Vec<String>);

fn contents(users: &View<u64, User>, counts: &View<String, u64>) -> Contents {
    let users_out =
        (0..KEYS).map(|k| (k, users.get_versioned(&k).map(|(v, u)| (v, (*u).clone())))).collect();
    let counts_out =
        (0..8).map(|c| format!("c{c}")).map(|c| (c.clone(), counts.get(&c).map(|n| *n))).collect();
    let mut lookups = Vec::new();
    for city in CITIES {
        let mut keys: Vec<u64> =
            users.index_get_all(&BY_CITY, city).into_iter().map(|(k, _)| k).collect();
        keys.sort_unstable();
        lookups.push(format!("{city}: {keys:?}"));
    }
    for k in 0..KEYS {
        for n in 0..3 {
            let email = format!("u{k}.{n}@example.com");
            if let Some((key, _)) = users.index_get(&BY_EMAIL, email.as_str()) {
                lookups.push(format!("{email} -> {key}"));
            }
        }
    }
    (users_out, counts_out, lookups)
}

fn replicates_in(durability: Durability) -> TestResult {
    let dir = tempfile::tempdir()?;
    let primary = open_primary(&dir.path().join("primary.redb"))?;
    let replica_path = dir.path().join("replica.redb");
    let replica = open_replica(&replica_path, durability)?;
    let mut rng = Rng::new(0x5eed_1234);
    let mut version = 0;
    let mut feed = primary.store.feed_after(Lsn::new(0))?;
    let mut gaps = 0;
    for _ in 0..400 {
        random_group(&primary, &mut rng, &mut version)?;
        while let Some(group) = feed.next_timeout(Duration::ZERO)? {
            if group.lsn.get() > replica.store.lsn().get() + 1 {
                gaps += 1;
            }
            let receipt = replica.replicator.apply(&group)?.wait()?;
            assert!(!receipt.redelivery);
            assert_eq!(receipt.lsn, group.lsn, "the replica commits at the primary's lsn");
            assert_eq!(replica.store.lsn(), group.lsn);
            assert_eq!(
                contents(&replica.users, &replica.counts),
                contents(&primary.users, &primary.counts),
                "after group {}",
                group.lsn
            );
        }
    }
    assert!(gaps > 20, "the view without a feed left gaps: {gaps}");
    let expected = contents(&primary.users, &primary.counts);
    replica.store.close()?;
    let reopened = open_replica(&replica_path, durability)?;
    assert_eq!(contents(&reopened.users, &reopened.counts), expected, "after a reopen");
    reopened.store.close()?;
    primary.store.close()?;
    #[cfg(feature = "inspect")]
    {
        for view in ["users", "counts"] {
            assert_eq!(
                dump(&dir.path().join("primary.redb"), view)?,
                dump(&replica_path, view)?,
                "the dumps of view {view}"
            );
        }
    }
    Ok(())
}

#[cfg(feature = "inspect")]
fn dump(path: &std::path::Path, view: &str) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let file = viewstore::inspect::StoreFile::open(path)?;
    let mut lines = Vec::new();
    file.dump(view, &mut |record| {
        lines.push(record.to_json().to_string());
        Ok(())
    })?;
    Ok(lines)
}

#[test]
fn a_replica_goes_through_the_primarys_states_immediate() -> TestResult {
    replicates_in(Durability::Immediate)
}

#[test]
fn a_replica_goes_through_the_primarys_states_journal() -> TestResult {
    replicates_in(Durability::Journal)
}

#[test]
fn groups_delivered_again_are_skipped_and_positions_stored() -> TestResult {
    let dir = tempfile::tempdir()?;
    let primary = open_primary(&dir.path().join("p.redb"))?;
    let replica = open_replica(&dir.path().join("r.redb"), Durability::Immediate)?;
    primary.users.put(&1, user("a"), 1)?;
    primary.counts.put(&"x".to_string(), 5, 1)?;
    let groups: Vec<_> =
        primary.store.feed_after(Lsn::new(0))?.take(2).collect::<Result<_, _>>()?;
    let r = &replica.replicator;
    r.apply_with_position(&groups[0], "changelog", 0, 10)?.wait()?;
    r.apply_with_position(&groups[1], "changelog", 0, 11)?.wait()?;
    let again = r.apply_with_position(&groups[0], "changelog", 0, 12)?.wait()?;
    assert!(again.redelivery, "an lsn the replica has is skipped");
    let again = r.apply(&groups[1])?.wait()?;
    assert!(again.redelivery);
    assert_eq!(replica.store.position("changelog", 0)?, Some(11));
    assert_eq!(replica.store.lsn(), primary.store.lsn());
    assert_eq!(replica.counts.get(&"x".to_string()).as_deref(), Some(&5));
    Ok(())
}

fn user(email: &str) -> User {
    User { email: email.into(), city: "oslo".into(), visits: 0 }
}

#[test]
fn a_client_reads_its_write_on_the_replica() -> TestResult {
    let dir = tempfile::tempdir()?;
    let primary = open_primary(&dir.path().join("p.redb"))?;
    let Replica { store: replica, users: replica_users, replicator, .. } =
        open_replica(&dir.path().join("r.redb"), Durability::Immediate)?;
    let mut feed = primary.store.feed_after(Lsn::new(0))?;
    let shipper = std::thread::spawn(move || -> viewstore::Result<()> {
        for group in feed.by_ref().take(20) {
            let group = group?;
            replicator.apply(&group)?.wait()?;
        }
        Ok(())
    });
    for n in 0..20 {
        let lsn = primary.users.put(&n, user(&format!("{n}@x")), 1)?.lsn;
        assert!(replica.wait_for_timeout(lsn, Duration::from_secs(30))?, "lsn {lsn} arrived");
        let read = replica_users.get(&n).map(|u| u.email.clone());
        assert_eq!(read, Some(format!("{n}@x")), "the write at {lsn} is read on the replica");
    }
    shipper.join().map_err(|_| "the shipper panicked")??;
    Ok(())
}

#[test]
fn wrong_roles_and_bad_groups_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let primary = open_primary(&dir.path().join("p.redb"))?;
    let keys_only = primary.store.view(&KEYS_ONLY)?;
    let replica = open_replica(&dir.path().join("r.redb"), Durability::Immediate)?;

    // An ordinary write to a replica.
    let refused = replica.users.put(&1, user("a"), 1);
    assert!(matches!(refused, Err(Error::Replication { view: None, .. })), "{refused:?}");
    assert!(replica.users.get(&1).is_none());

    primary.users.put(&1, user("a"), 1)?;
    keys_only.put(&1, 1, 1)?;
    let groups: Vec<_> =
        primary.store.feed_after(Lsn::new(0))?.take(2).collect::<Result<_, _>>()?;

    // A replicated group to a store that is not a replica.
    let other = Store::open(dir.path().join("o.redb"))?;
    let other_users = other.view(&USERS)?;
    let mut to_primary = Replicator::new(&other);
    to_primary.view(&other_users)?;
    let refused = to_primary.apply(&groups[0])?.wait();
    assert!(matches!(refused, Err(Error::Replication { .. })), "{refused:?}");
    assert!(other_users.get(&1).is_none());

    // A view the replicator does not hold.
    let refused = replica.replicator.apply(&groups[1]);
    assert!(
        matches!(&refused, Err(Error::Replication { view: Some(v), .. }) if v == "keys_only"),
        "{refused:?}"
    );
    // A live change without its value.
    let replica_keys = replica.store.view(&KEYS_ONLY)?;
    let mut with_keys = Replicator::new(&replica.store);
    with_keys.view(&replica_keys)?;
    let refused = with_keys.apply(&groups[1]);
    assert!(
        matches!(&refused, Err(Error::Replication { view: Some(v), reason, .. })
            if v == "keys_only" && reason.contains("FeedMode::Values")),
        "{refused:?}"
    );
    assert_eq!(replica.store.lsn(), Lsn::new(0), "nothing was written");
    // A view of another store.
    let refused = Replicator::new(&replica.store).view(&other_users).map(|_| ());
    assert!(matches!(refused, Err(Error::ForeignView { .. })), "{refused:?}");
    Ok(())
}

#[test]
fn a_reopened_replica_without_the_option_is_promoted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let primary = open_primary(&dir.path().join("p.redb"))?;
    let path = dir.path().join("r.redb");
    let replica = open_replica(&path, Durability::Journal)?;
    primary.local.put(&1, 1, 1)?; // a gap
    primary.users.put(&1, user("a"), 1)?;
    let group = primary.store.feed_after(Lsn::new(0))?.next().ok_or("no group")??;
    replica.replicator.apply(&group)?.wait()?;
    assert_eq!(replica.store.lsn(), Lsn::new(2));
    replica.store.close()?;
    let promoted = Store::builder(&path).durability(Durability::Journal).open()?;
    let users = promoted.view(&USERS)?;
    let lsn = users.put(&2, user("b"), 1)?.lsn;
    assert_eq!(lsn, Lsn::new(3), "the promoted store numbers its groups on");
    assert_eq!(users.get(&1).map(|u| u.email.clone()).as_deref(), Some("a"));
    Ok(())
}

#[test]
fn a_journal_replica_replays_groups_with_gaps_after_a_crash() -> TestResult {
    use std::sync::Arc;
    use viewstore::testing::FaultBackend;
    let dir = tempfile::tempdir()?;
    let primary = open_primary(&dir.path().join("p.redb"))?;
    let (file, log) = (Arc::new(FaultBackend::new()), Arc::new(FaultBackend::new()));
    let open = |file: &Arc<FaultBackend>, log: &Arc<FaultBackend>| -> viewstore::Result<_> {
        let store = Store::builder("replica.redb")
            .backend(Arc::clone(file) as _)
            .durability(Durability::Journal)
            .journal_backend(Arc::clone(log) as _)
            .checkpoint_interval(Duration::from_secs(3600))
            .replica(true)
            .open()?;
        let (users, counts) = (store.view(&USERS)?, store.view(&COUNTS)?);
        let mut replicator = Replicator::new(&store);
        replicator.view(&users)?.view(&counts)?;
        Ok((store, users, counts, replicator))
    };
    let (store, _, _, replicator) = open(&file, &log)?;
    let mut rng = Rng::new(77);
    let mut version = 0;
    let mut feed = primary.store.feed_after(Lsn::new(0))?;
    for _ in 0..60 {
        random_group(&primary, &mut rng, &mut version)?;
        while let Some(group) = feed.next_timeout(Duration::ZERO)? {
            replicator.apply(&group)?.wait()?;
        }
    }
    let at = store.lsn();
    // A crash: what the disk holds now, the journal not checkpointed.
    let (file_image, log_image) = (file.durable_image(), log.durable_image());
    assert!(!log_image.is_empty(), "the journal holds the groups");
    drop((replicator, store));
    let (file, log) = (
        Arc::new(FaultBackend::from_image(file_image)),
        Arc::new(FaultBackend::from_image(log_image)),
    );
    let (store, users, counts, _) = open(&file, &log)?;
    assert_eq!(store.lsn(), at, "the replay reaches the last replicated lsn");
    assert_eq!(contents(&users, &counts), contents(&primary.users, &primary.counts));
    Ok(())
}

/// Ships every group of `primary`'s feed after `after` to `replicator`.
fn ship(primary: &Store, replicator: &Replicator, after: Lsn) -> TestResult {
    let mut feed = primary.feed_after(after)?;
    while let Some(group) = feed.next_timeout(Duration::ZERO)? {
        replicator.apply(&group)?.wait()?;
    }
    Ok(())
}

#[test]
fn deletes_purges_and_clears_leave_the_replica_as_the_primary() -> TestResult {
    let dir = tempfile::tempdir()?;
    let primary = open_primary(&dir.path().join("p.redb"))?;
    let replica = open_replica(&dir.path().join("r.redb"), Durability::Journal)?;
    primary.users.put(&1, user("a@x"), 3)?;
    primary.users.put(&2, user("b@x"), 3)?;
    // One batch deletes a live record and purges its tombstone: the key is absent.
    let mut batch = Batch::new();
    batch.delete(&primary.users, &1, 5)?;
    batch.purge_tombstones(&primary.users, 6)?;
    primary.store.submit(batch)?.wait()?;
    ship(&primary.store, &replica.replicator, Lsn::new(0))?;
    assert!(replica.users.get(&1).is_none());
    assert_eq!(replica.users.index_get(&BY_EMAIL, "a@x").map(|(k, _)| k), None);
    assert_eq!(replica.users.index_get(&BY_EMAIL, "b@x").map(|(k, _)| k), Some(2));
    assert_eq!(
        contents(&replica.users, &replica.counts),
        contents(&primary.users, &primary.counts)
    );
    // A cleared view: every record of it goes, live ones included.
    let before = primary.store.lsn();
    primary.counts.put(&"c1".to_string(), 4, 1)?;
    primary.store.clear_view("users")?;
    ship(&primary.store, &replica.replicator, before)?;
    assert!(replica.users.get(&2).is_none(), "the clear reached the replica");
    assert_eq!(
        contents(&replica.users, &replica.counts),
        contents(&primary.users, &primary.counts)
    );
    assert_eq!(replica.store.lsn(), primary.store.lsn());
    Ok(())
}

#[test]
fn a_replicated_state_wins_over_a_tombstone_the_replica_kept() -> TestResult {
    // A replica that missed a purge (its records compacted away in a changelog) holds a
    // tombstone at 5; the primary's next write of the key is at version 1.
    let dir = tempfile::tempdir()?;
    let primary = open_primary(&dir.path().join("p.redb"))?;
    let replica = open_replica(&dir.path().join("r.redb"), Durability::Immediate)?;
    primary.users.put(&1, user("a@x"), 4)?;
    primary.users.delete(&1, 5)?;
    ship(&primary.store, &replica.replicator, Lsn::new(0))?;
    let purged_at = primary.store.lsn();
    let mut purge = Batch::new();
    purge.purge_tombstones(&primary.users, 6)?;
    primary.store.submit(purge)?.wait()?;
    let skipped = primary.store.lsn();
    primary.users.put(&1, user("again@x"), 1)?;
    assert!(purged_at < skipped);
    ship(&primary.store, &replica.replicator, skipped)?;
    assert_eq!(
        replica.users.get_versioned(&1).map(|(v, u)| (v, u.email.clone())),
        Some((1, "again@x".into()))
    );
    Ok(())
}

#[test]
fn a_replica_refuses_view_management_and_takes_empty_groups() -> TestResult {
    let dir = tempfile::tempdir()?;
    let replica = open_replica(&dir.path().join("r.redb"), Durability::Immediate)?;
    let refused = replica.store.clear_view("users");
    assert!(matches!(refused, Err(Error::Replication { .. })), "{refused:?}");
    let refused = replica.store.drop_view("counts");
    assert!(matches!(refused, Err(Error::Replication { .. })), "{refused:?}");
    // A group without changes (a marker) moves the replica to its LSN.
    let receipt =
        replica.replicator.apply(&viewstore::FeedGroup::new(Lsn::new(7), 0, Vec::new()))?.wait()?;
    assert_eq!(receipt.lsn, Lsn::new(7));
    assert_eq!(replica.store.lsn(), Lsn::new(7));
    Ok(())
}

#[test]
fn when_a_pipelined_group_fails_none_after_it_commits() -> TestResult {
    let dir = tempfile::tempdir()?;
    let primary = open_primary(&dir.path().join("p.redb"))?;
    let replica = open_replica(&dir.path().join("r.redb"), Durability::Immediate)?;
    primary.users.put(&1, user("x@x"), 1)?;
    primary.users.put(&2, user("y@x"), 1)?;
    primary.counts.put(&"c".to_string(), 1, 1)?;
    let groups: Vec<_> =
        primary.store.feed_after(Lsn::new(0))?.take(3).collect::<Result<_, _>>()?;
    replica.replicator.apply(&groups[0])?.wait()?;
    // A group the replica cannot apply: user 2 takes an email user 1 holds here.
    let mut bad = (*groups[1]).clone();
    let mut change = bad.changes[0].clone();
    change.value = groups[0].changes[0].value.clone();
    bad.changes[0] = change;
    let r = &replica.replicator;
    let failed = r.apply_after(&bad, ("log", 0, 2), Some(groups[0].lsn))?;
    let next = r.apply_after(&groups[2], ("log", 0, 3), Some(bad.lsn))?;
    assert!(failed.wait().is_err(), "the bad group fails");
    let after = next.wait();
    assert!(matches!(after, Err(Error::Replication { .. })), "{after:?}");
    assert_eq!(replica.store.lsn(), groups[0].lsn, "nothing after the failed group committed");
    assert_eq!(replica.store.position("log", 0)?, None);
    Ok(())
}
