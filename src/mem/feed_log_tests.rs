//! Retention of the feed log: each limit (groups, bytes, age) alone, together, and never
//! a group readers cannot see yet.

use crate::base::feed::{ChangeKind, FeedChange, FeedGroup, FeedRetention};
use crate::base::version::Lsn;
use crate::mem::feed_log::{FeedLog, Next};
use std::sync::Arc;
use std::time::Duration;

/// Group `lsn`, committed at `at_ms`, with one change of a 68-byte value.
fn group(lsn: u64, at_ms: u64) -> FeedGroup {
    let change = FeedChange {
        view: Arc::from("v"),
        key: Arc::from(&[0u8; 0][..]),
        version: lsn,
        kind: ChangeKind::Live,
        value: Some(Arc::from(&[7u8; 68][..])),
    };
    FeedGroup { lsn: Lsn::new(lsn), committed_at_ms: at_ms, changes: vec![change] }
}

/// A log of groups 1..=n committed a second apart, all revealed.
fn log(n: u64) -> FeedLog {
    FeedLog::new((1..=n).map(|l| group(l, l * 1000)).collect(), Lsn::new(0), Lsn::new(n))
}

#[test]
fn each_limit_prunes_the_oldest_groups_until_it_holds() {
    // Each group counts 24 + 32 + 68 = 124 bytes.
    assert_eq!(group(1, 0).size(), 124);
    let feed = log(10);
    let none = FeedRetention::unbounded();
    assert_eq!(feed.prune_plan(&none, 124, 11_000), None);
    // With the incoming group, 11: keep 4.
    assert_eq!(feed.prune_plan(&none.max_groups(4), 124, 11_000), Some(Lsn::new(7)));
    // 1,000 bytes hold 8 groups: with the incoming one, keep 7 of the 10.
    assert_eq!(feed.prune_plan(&none.max_bytes(1_000), 124, 11_000), Some(Lsn::new(3)));
    // At 11 s, groups older than 4.5 s go: those committed at 1..=6 s.
    let age = none.max_age(Duration::from_millis(4_500));
    assert_eq!(feed.prune_plan(&age, 124, 11_000), Some(Lsn::new(6)));
    // Together: the strictest wins.
    assert_eq!(feed.prune_plan(&age.max_groups(2), 124, 11_000), Some(Lsn::new(9)));
}

#[test]
fn groups_not_revealed_are_never_pruned() {
    let feed = FeedLog::new((1..=10).map(|l| group(l, 0)).collect(), Lsn::new(0), Lsn::new(3));
    let plan = feed.prune_plan(&FeedRetention::unbounded().max_groups(1), 124, 0);
    assert_eq!(plan, Some(Lsn::new(3)));
    feed.prune_through(Lsn::new(3));
    // A reader before the prune learns of it; one after it waits for group 4.
    assert!(
        matches!(feed.wait_after(Lsn::new(1), Some(std::time::Instant::now())), Next::Pruned(p) if p == Lsn::new(3))
    );
    assert!(matches!(feed.wait_after(Lsn::new(3), Some(std::time::Instant::now())), Next::Pending));
    feed.reveal(Lsn::new(4));
    assert!(matches!(feed.wait_after(Lsn::new(3), None), Next::Group(g) if g.lsn == Lsn::new(4)));
}
