//! The change feed: every committed group's changes to views with a feed, in LSN order,
//! written with the records, kept across reopens, pruned by retention, read blocking,
//! as an iterator or as an async stream, typed or not.

use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use viewstore::{Batch, ChangeKind, Error, FeedMode, FeedRetention, Lsn, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const NAMES: ViewDef<u64, String> = ViewDef::new("names").with_feed(FeedMode::Values);
const COUNTS: ViewDef<String, u64> = ViewDef::new("counts").with_feed(FeedMode::Keys);
const QUIET: ViewDef<u64, u64> = ViewDef::new("quiet");
const WAIT: Duration = Duration::from_secs(10);

#[test]
fn groups_come_in_lsn_order_with_the_final_state_of_each_record() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("feed.redb"))?;
    let (names, counts, quiet) = (store.view(&NAMES)?, store.view(&COUNTS)?, store.view(&QUIET)?);
    let mut feed = store.feed_after(Lsn::new(0))?;

    let mut batch = Batch::new();
    batch.put(&names, &1, "ada".into(), 1)?.put(&names, &1, "ada l.".into(), 2)?;
    batch.put(&counts, &"x".to_string(), 5, 1)?.put(&quiet, &9, 9, 1)?;
    let first = store.submit(batch)?.wait()?.lsn;
    // A group of a view without a feed only: no group in the feed.
    quiet.put(&10, 10, 1)?;
    names.delete(&1, 3)?;
    let third = store.lsn();

    let group = feed.next_timeout(WAIT)?.ok_or("a group")?;
    assert_eq!(group.lsn, first);
    let changes: Vec<_> = group
        .changes
        .iter()
        .map(|c| (c.view.to_string(), c.version, c.kind, c.value.is_some()))
        .collect();
    // One change per record, its last state; values only for `FeedMode::Values`.
    assert_eq!(
        changes,
        [
            ("counts".to_string(), 1, ChangeKind::Live, false),
            ("names".into(), 2, ChangeKind::Live, true)
        ]
    );
    let group = feed.next_timeout(WAIT)?.ok_or("a group")?;
    assert_eq!(
        (group.lsn, group.changes[0].kind, group.changes[0].version),
        (third, ChangeKind::Tombstone, 3)
    );
    assert!(feed.next_timeout(Duration::from_millis(20))?.is_none());
    assert_eq!(feed.position(), third);
    Ok(())
}

#[test]
fn the_typed_feed_decodes_keys_and_values_and_survives_a_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("feed.redb");
    {
        let store = Store::open(&path)?;
        let names = store.view(&NAMES)?;
        for i in 0..50u64 {
            names.put(&i, format!("n{i}"), 1)?;
        }
        names.purge_tombstones(0)?;
        names.delete(&3, 2)?;
        names.purge_tombstones(3)?;
        store.close()?;
    }
    let store = Store::open(&path)?;
    let names = store.view(&NAMES)?;
    let mut feed = names.feed_after(Lsn::new(0))?;
    let mut seen = Vec::new();
    while let Some(change) = feed.next_timeout(Duration::from_millis(50))? {
        seen.push((change.key, change.version, change.kind, change.value));
    }
    assert_eq!(seen.len(), 52);
    assert_eq!(seen[7], (7, 1, ChangeKind::Live, Some("n7".to_string())));
    assert_eq!(seen[50], (3, 2, ChangeKind::Tombstone, None));
    assert_eq!(seen[51], (3, 2, ChangeKind::Purged, None));
    Ok(())
}

#[test]
fn retention_prunes_and_a_reader_behind_it_resyncs_from_a_snapshot() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::builder(dir.path().join("feed.redb"))
        .feed_retention(FeedRetention::unbounded().max_groups(10))
        .open()?;
    let names = store.view(&NAMES)?;
    let mut slow = store.feed_after(Lsn::new(0))?;
    for i in 0..30u64 {
        names.put(&i, format!("n{i}"), 1)?;
    }
    let err = slow.next_timeout(WAIT).err().ok_or("pruned")?;
    let Error::FeedPruned { after, readable_after } = err else { return Err(err.into()) };
    assert_eq!((after, readable_after), (Lsn::new(0), Lsn::new(20)));
    assert!(matches!(store.feed_after(Lsn::new(5)), Err(Error::FeedPruned { .. })));

    // Resync: a snapshot, then the feed after its LSN: no gap, no duplicate.
    let snapshot = store.snapshot();
    let mut model: Vec<(u64, String)> =
        snapshot.view(&names)?.iter().map(|(k, v)| (k, v.clone())).collect();
    let mut feed = names.feed_after(snapshot.lsn())?;
    names.put(&100, "late".into(), 1)?;
    let change = feed.next_timeout(WAIT)?.ok_or("a change")?;
    model.push((change.key, change.value.ok_or("a value")?));
    let now: Vec<(u64, String)> =
        names.range(..).into_iter().map(|(k, v)| (k, (*v).clone())).collect();
    assert_eq!(model, now);
    Ok(())
}

#[test]
fn the_iterator_ends_when_the_store_closes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("feed.redb"))?;
    let names = store.view(&NAMES)?;
    let feed = store.feed_after(Lsn::new(0))?;
    let follower =
        std::thread::spawn(move || feed.map(|g| g.map(|g| g.changes.len())).collect::<Vec<_>>());
    for i in 0..20u64 {
        names.put(&i, "x".into(), 1)?;
    }
    drop(names);
    store.close()?;
    let seen = follower.join().map_err(|_| "the follower panicked")?;
    assert_eq!(seen.len(), 20);
    assert!(seen.iter().all(|n| matches!(n, Ok(1))));
    Ok(())
}

/// A minimal executor: polls on this thread, parks until woken.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[test]
fn the_async_stream_follows_the_writer_and_ends_at_close() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("feed.redb"))?;
    let names = store.view(&NAMES)?;
    let mut typed = names.feed_after(Lsn::new(0))?;
    let mut stream = store.feed_after(Lsn::new(0))?;
    let writer = {
        let names = names.clone();
        std::thread::spawn(move || -> viewstore::Result<()> {
            for i in 0..100u64 {
                names.put(&i, format!("n{i}"), 1)?;
            }
            Ok(())
        })
    };
    let got = block_on(async {
        let mut keys = Vec::new();
        while keys.len() < 100 {
            keys.push(typed.next_async().await?.key);
        }
        Ok::<_, Error>(keys)
    })?;
    assert_eq!(got, (0..100).collect::<Vec<u64>>());
    writer.join().map_err(|_| "the writer panicked")??;
    drop(names);
    store.close()?;
    let groups = block_on(async {
        let mut n = 0;
        while let Some(group) = std::future::poll_fn(|cx| {
            futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)
        })
        .await
        {
            group?;
            n += 1;
        }
        Ok::<_, Error>(n)
    })?;
    assert_eq!(groups, 100);
    Ok(())
}

#[test]
fn the_feed_stream_runs_under_tokio_beside_async_writes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("feed.redb"))?;
    let names = store.view(&NAMES)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let read = runtime.block_on(async {
        // A task follows the feed while the same single thread awaits 200 writes.
        let mut changes = names.feed_after(Lsn::new(0))?;
        let follower = tokio::spawn(async move {
            let mut keys = Vec::new();
            while keys.len() < 200 {
                keys.push(changes.next_async().await?.key);
            }
            Ok::<_, Error>(keys)
        });
        for i in 0..200u64 {
            names.put_async(&i, format!("n{i}"), 1).await?;
        }
        follower
            .await
            .map_err(|e| Error::SourceFailed { source: "task".into(), reason: e.to_string() })?
    })?;
    assert_eq!(read, (0..200).collect::<Vec<u64>>());
    Ok(())
}

#[test]
fn groups_not_yet_durable_are_neither_shown_nor_pruned() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::builder(dir.path().join("feed.redb"))
        .durability(viewstore::Durability::Periodic { interval: Duration::from_secs(3600) })
        .feed_retention(FeedRetention::unbounded().max_groups(2))
        .open()?;
    let names = store.view(&NAMES)?;
    let mut reader = store.feed_after(Lsn::new(0))?;
    for i in 0..10u64 {
        names.put(&i, "x".into(), 1)?;
    }
    // Visible to readers of the store, not durable yet: not in the feed, and not pruned.
    assert_eq!(names.len(), 10);
    assert!(reader.next_timeout(Duration::from_millis(20))?.is_none());
    // Closing syncs: every group is durable, and the reader gets all ten.
    drop(names);
    store.close()?;
    let read: Vec<_> = reader.map(|g| g.map(|g| g.lsn.get())).collect::<Result<_, _>>()?;
    assert_eq!(read.len(), 10);
    Ok(())
}
