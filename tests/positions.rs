//! Source positions: stored in the same transaction as a batch's writes, read back by
//! source and partition, and a batch whose positions were reached is skipped whole as a
//! redelivery, so that counting `update` closures apply exactly once.

use viewstore::{Batch, Error, ErrorKind, IndexDef, Outcome, Store, View, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const COUNTS: ViewDef<u64, u64> = ViewDef::new("counts");
const BY_EMAIL: IndexDef<String, String> = IndexDef::unique("by_email", Clone::clone);
const EMAILS: ViewDef<u64, String> = ViewDef::new("emails").with_indexes(&[&BY_EMAIL]);

fn open() -> Result<(tempfile::TempDir, Store), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("positions.redb"))?;
    Ok((dir, store))
}

/// One "key gained one" event at `position` of `partition`.
fn count(
    counts: &View<u64, u64>,
    key: u64,
    partition: u32,
    position: u64,
) -> viewstore::Result<Batch> {
    let mut batch = Batch::new();
    batch.update_next(counts, &key, |n| Some(n.copied().unwrap_or(0) + 1))?;
    batch.set_position("events", partition, position)?;
    Ok(batch)
}

#[test]
fn a_redelivered_batch_is_skipped_whole_and_counts_stay_exact() -> TestResult {
    let (_dir, store) = open()?;
    let counts = store.view(&COUNTS)?;
    let first = store.submit(count(&counts, 7, 0, 10)?)?.wait()?;
    assert!(!first.redelivery);
    assert_eq!(first.outcomes, [Outcome::Applied]);
    assert_eq!(store.position("events", 0)?, Some(10));

    for position in [10, 9, 0] {
        let again = store.submit(count(&counts, 7, 0, position)?)?.wait()?;
        assert!(again.redelivery, "position {position} was reached");
        assert_eq!(again.outcomes, [Outcome::Redelivered]);
    }
    assert_eq!(counts.get(&7).as_deref(), Some(&1));
    store.submit(count(&counts, 7, 0, 11)?)?.wait()?;
    assert_eq!(counts.get(&7).as_deref(), Some(&2));
    assert_eq!(store.position("events", 0)?, Some(11));
    Ok(())
}

#[test]
fn positions_survive_a_reopen_and_are_listed_per_source() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("positions.redb");
    {
        let store = Store::open(&path)?;
        let counts = store.view(&COUNTS)?;
        for (partition, position) in [(2, 5), (0, 7), (1, 3)] {
            store.submit(count(&counts, 1, partition, position)?)?.wait()?;
        }
        let mut other = Batch::new();
        other.set_position("events-2", 0, 99)?.set_position("event", 4, 1)?;
        store.submit(other)?.wait()?;
        store.close()?;
    }
    let store = Store::open(&path)?;
    assert_eq!(store.positions("events")?, [(0, 7), (1, 3), (2, 5)]);
    assert_eq!(store.positions("events-2")?, [(0, 99)]);
    assert_eq!(store.positions("event")?, [(4, 1)]);
    assert_eq!(store.positions("nothing")?, []);
    assert_eq!(store.position("events", 9)?, None);
    // The counts came back with their positions: a redelivery is still skipped.
    let counts = store.view(&COUNTS)?;
    assert!(store.submit(count(&counts, 1, 0, 7)?)?.wait()?.redelivery);
    assert_eq!(counts.get(&1).as_deref(), Some(&3));
    Ok(())
}

#[test]
fn a_batch_with_positions_and_no_operation_stores_them() -> TestResult {
    let (_dir, store) = open()?;
    let before = store.lsn();
    let mut batch = Batch::new();
    batch.set_position("events", 3, 42)?;
    let receipt = store.submit(batch)?.wait()?;
    assert!(receipt.lsn > before);
    assert!(receipt.outcomes.is_empty());
    assert_eq!(store.position("events", 3)?, Some(42));
    Ok(())
}

#[test]
fn a_failed_batch_does_not_store_its_position() -> TestResult {
    let (_dir, store) = open()?;
    let emails = store.view(&EMAILS)?;
    let counts = store.view(&COUNTS)?;
    emails.put(&1, "a@x".into(), 1)?;

    let mut dup = Batch::new();
    dup.put(&emails, &2, "a@x".into(), 1)?.set_position("events", 0, 1)?;
    let err = store.submit(dup)?.wait().err().ok_or("a unique violation")?;
    assert!(matches!(err, Error::UniqueViolation { .. }));
    assert_eq!(store.position("events", 0)?, None);

    let mut panics = Batch::new();
    panics.update(&counts, &1, 1, |_| -> Option<u64> { panic!("boom") })?;
    panics.set_position("events", 0, 2)?;
    let err = store.submit(panics)?.wait().err().ok_or("a panic")?;
    assert!(matches!(err, Error::UpdatePanicked { .. }));
    assert_eq!(store.position("events", 0)?, None);
    assert_eq!(counts.get(&1), None);

    // The same position applies once the batch is fixed.
    store.submit(count(&counts, 1, 0, 2)?)?.wait()?;
    assert_eq!(store.position("events", 0)?, Some(2));
    Ok(())
}

#[test]
fn a_batch_reached_in_some_partitions_only_fails_and_changes_nothing() -> TestResult {
    let (_dir, store) = open()?;
    let counts = store.view(&COUNTS)?;
    store.submit(count(&counts, 1, 0, 5)?)?.wait()?;
    let mut mixed = count(&counts, 1, 1, 8)?;
    mixed.set_position("events", 0, 5)?;
    let err = store.submit(mixed)?.wait().err().ok_or("a partial redelivery")?;
    assert!(
        matches!(&err, Error::PartialRedelivery { partition: 0, position: 5, stored: 5, .. }),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Batch);
    assert_eq!(store.position("events", 1)?, None);
    assert_eq!(counts.get(&1).as_deref(), Some(&1));
    Ok(())
}

#[test]
fn bad_positions_are_refused_when_added() -> TestResult {
    let (_dir, store) = open()?;
    let mut batch = Batch::new();
    batch.set_position("events", 0, 1)?;
    for refused in [
        batch.set_position("events", 0, 2).map(|_| ()),
        batch.set_position("", 1, 2).map(|_| ()),
        batch.set_position("bad\nname", 1, 2).map(|_| ()),
        batch.set_position_after("events", 1, 4, Some(4)).map(|_| ()),
    ] {
        let err = refused.err().ok_or("refused")?;
        assert!(matches!(err, Error::InvalidPosition { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::Input);
    }
    assert!(matches!(store.position("", 0), Err(Error::InvalidPosition { .. })));
    // The batch kept only its one good position.
    store.submit(batch)?.wait()?;
    assert_eq!(store.positions("events")?, [(0, 1)]);
    Ok(())
}

#[test]
fn chained_positions_commit_in_order_and_refuse_a_gap() -> TestResult {
    let (_dir, store) = open()?;
    let counts = store.view(&COUNTS)?;
    // Many in flight at once, each following the one before.
    let mut tickets = Vec::new();
    let mut previous = None;
    for position in (0..200).map(|p| p * 3) {
        let mut batch = Batch::new();
        batch.update_next(&counts, &(position % 7), |n| Some(n.copied().unwrap_or(0) + 1))?;
        batch.set_position_after("events", 0, position, previous)?;
        tickets.push(store.submit(batch)?);
        previous = Some(position);
    }
    for ticket in tickets {
        ticket.wait()?;
    }
    assert_eq!(store.position("events", 0)?, Some(597));
    let total: u64 = (0..7).filter_map(|k| counts.get(&k).map(|n| *n)).sum();
    assert_eq!(total, 200);

    // A batch that says it follows 600 while the store is at 597: refused, nothing
    // written.
    let mut gap = Batch::new();
    gap.update_next(&counts, &0, |n| Some(n.copied().unwrap_or(0) + 100))?;
    gap.set_position_after("events", 0, 700, Some(600))?;
    let err = store.submit(gap)?.wait().err().ok_or("a gap")?;
    assert!(
        matches!(
            err,
            Error::PositionGap { position: 700, follows: Some(600), stored: Some(597), .. }
        ),
        "{err}"
    );
    assert_eq!(store.position("events", 0)?, Some(597));
    assert_eq!((0..7).filter_map(|k| counts.get(&k).map(|n| *n)).sum::<u64>(), 200);
    // A redelivery is skipped, whatever it says it follows.
    let mut again = Batch::new();
    again.set_position_after("events", 0, 597, Some(594))?;
    assert!(store.submit(again)?.wait()?.redelivery);
    Ok(())
}

#[test]
fn a_group_sees_the_positions_of_its_earlier_batches() -> TestResult {
    let (_dir, store) = open()?;
    let counts = store.view(&COUNTS)?;
    // Submitted without waiting, so that they usually share a group: the second and
    // third are redeliveries of the first either way.
    let tickets = [
        store.submit(count(&counts, 1, 0, 4)?)?,
        store.submit(count(&counts, 1, 0, 4)?)?,
        store.submit(count(&counts, 1, 0, 3)?)?,
    ];
    let receipts: Vec<_> =
        tickets.into_iter().map(viewstore::Ticket::wait).collect::<Result<_, _>>()?;
    assert_eq!(receipts.iter().map(|r| r.redelivery).collect::<Vec<_>>(), [false, true, true]);
    assert_eq!(counts.get(&1).as_deref(), Some(&1));
    Ok(())
}
