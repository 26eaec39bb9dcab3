//! The projector: a handler per event, each event its own batch with its position;
//! resuming from the store's positions applies every event exactly once; a failing
//! event stops the projector naming it, or becomes a dead letter while the others go on.

use std::time::Duration;
use viewstore::{
    Batch, BoxError, DEAD_LETTERS, DeadLetter, Error, Event, IndexDef, MemoryLog, OnFailure,
    Projector, Source, Store, View, ViewDef,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const COUNTS: ViewDef<u64, u64> = ViewDef::new("counts");
const BY_EMAIL: IndexDef<String, String> = IndexDef::unique("by_email", Clone::clone);
const EMAILS: ViewDef<u64, String> = ViewDef::new("emails").with_indexes(&[&BY_EMAIL]);
const WAIT: Duration = Duration::from_secs(30);

/// What the test events ask for.
#[derive(Debug, Clone)]
enum Cmd {
    /// Count one more for the key.
    Count(u64),
    /// The handler fails.
    Fail,
    /// The handler panics.
    Panic,
    /// An update closure panics in the writer.
    ClosurePanics(u64),
    /// Give record `.0` the e-mail `.1` (unique).
    Email(u64, String),
}

fn handler(
    counts: View<u64, u64>,
    emails: View<u64, String>,
) -> impl FnMut(&Event<Cmd>, &mut Batch) -> Result<(), BoxError> + Send + 'static {
    move |event, batch| {
        match &event.payload {
            Cmd::Count(key) => {
                batch.update_next(&counts, key, |n| Some(n.copied().unwrap_or(0) + 1))?;
            }
            Cmd::Fail => return Err("this event is bad".into()),
            Cmd::Panic => panic!("the handler met a bad event"),
            Cmd::ClosurePanics(key) => {
                batch.update_next(&counts, key, |_| -> Option<u64> { panic!("closure") })?;
            }
            Cmd::Email(id, email) => {
                batch.put(&emails, id, email.clone(), event.position)?;
            }
        }
        Ok(())
    }
}

/// The store, its counts and its e-mails.
type Opened = (Store, View<u64, u64>, View<u64, String>);

fn open(dir: &tempfile::TempDir) -> Result<Opened, Error> {
    let store = Store::open(dir.path().join("projector.redb"))?;
    let counts = store.view(&COUNTS)?;
    let emails = store.view(&EMAILS)?;
    Ok((store, counts, emails))
}

fn total(counts: &View<u64, u64>) -> u64 {
    counts.range(..).iter().map(|(_, n)| **n).sum()
}

#[test]
fn every_event_counts_once_and_lag_reaches_zero() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (store, counts, emails) = open(&dir)?;
    let log = MemoryLog::new(4);
    for i in 0..2_000u64 {
        log.append((i % 4) as u32, Cmd::Count(i % 13))?;
    }
    let running =
        Projector::new(&store, log.source("cmds"), handler(counts.clone(), emails)).spawn()?;
    assert!(running.wait_until(WAIT, |s| s.events == 2_000 && s.lag() == 0));
    // More events while it runs.
    for i in 0..100u64 {
        log.append((i % 4) as u32, Cmd::Count(99))?;
    }
    assert!(running.wait_until(WAIT, |s| s.events == 2_100));
    let stats = running.stop()?;
    assert_eq!((stats.events, stats.dead_letters, stats.lag()), (2_100, 0, 0));
    assert_eq!(total(&counts), 2_100);
    assert_eq!(counts.get(&99).as_deref(), Some(&100));
    assert_eq!(store.positions("cmds")?, [(0, 524), (1, 524), (2, 524), (3, 524)]);
    // Durable positions were acknowledged to the source.
    assert!((0..4).all(|p| log.acknowledged(p) == Some(524)));
    Ok(())
}

#[test]
fn a_restarted_projector_resumes_where_the_store_is() -> TestResult {
    let dir = tempfile::tempdir()?;
    let log = MemoryLog::new(3);
    for i in 0..300u64 {
        log.append((i % 3) as u32, Cmd::Count(i % 5))?;
    }
    {
        let (store, counts, emails) = open(&dir)?;
        let mut projection = Projector::new(&store, log.source("cmds"), handler(counts, emails))
            .with_max_poll(50)
            .start()?;
        projection.step()?;
        projection.step()?;
        let stats = projection.finish()?;
        assert_eq!(stats.events, 100);
        store.close()?;
    }
    for i in 0..30u64 {
        log.append((i % 3) as u32, Cmd::Count(7))?;
    }
    let (store, counts, emails) = open(&dir)?;
    assert_eq!(total(&counts), 100);
    let running =
        Projector::new(&store, log.source("cmds"), handler(counts.clone(), emails)).spawn()?;
    assert!(running.wait_until(WAIT, |s| s.lag() == 0 && s.in_flight == 0));
    let stats = running.stop()?;
    assert_eq!(stats.events, 230);
    assert_eq!(total(&counts), 330);
    assert_eq!(counts.get(&7).as_deref(), Some(&30));
    Ok(())
}

/// A source that ignores `resume` and delivers everything from the start, each event
/// twice: the store's positions must keep the counts exact.
struct Forgetful {
    events: Vec<Event<Cmd>>,
    next: usize,
}

impl Source for Forgetful {
    type Payload = Cmd;

    fn name(&self) -> &'static str {
        "cmds"
    }

    fn resume(&mut self, _positions: &[(u32, u64)]) -> Result<(), BoxError> {
        Ok(())
    }

    fn poll(&mut self, max: usize, _timeout: Duration) -> Result<Vec<Event<Cmd>>, BoxError> {
        let end = (self.next + max).min(self.events.len());
        let out = self.events[self.next..end].to_vec();
        self.next = end;
        Ok(out)
    }

    fn acknowledge(&mut self, _partition: u32, _position: u64) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn a_source_that_redelivers_everything_changes_nothing_twice() -> TestResult {
    let dir = tempfile::tempdir()?;
    let events: Vec<Event<Cmd>> = (0..400u64)
        .flat_map(|i| {
            let e =
                Event { partition: (i % 2) as u32, position: i / 2, payload: Cmd::Count(i % 3) };
            [e.clone(), e]
        })
        .collect();
    for round in 0..3 {
        let (store, counts, emails) = open(&dir)?;
        let source = Forgetful { events: events.clone(), next: 0 };
        let mut projection =
            Projector::new(&store, source, handler(counts.clone(), emails)).start()?;
        while projection.step()? > 0 {}
        let stats = projection.finish()?;
        assert_eq!(stats.events, if round == 0 { 400 } else { 0 }, "round {round}");
        assert_eq!(stats.redeliveries, if round == 0 { 400 } else { 800 }, "round {round}");
        assert_eq!(total(&counts), 400);
        store.close()?;
    }
    Ok(())
}

#[test]
fn poison_events_become_dead_letters_and_the_others_apply() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (store, counts, emails) = open(&dir)?;
    let letters = store.view(&DEAD_LETTERS)?;
    let log = MemoryLog::new(2);
    let mut poison = Vec::new();
    for i in 0..400u64 {
        let partition = (i % 2) as u32;
        let cmd = match i % 50 {
            7 => Cmd::Fail,
            19 => Cmd::Panic,
            23 => Cmd::ClosurePanics(1),
            31 => Cmd::Email(i, "taken@x".into()),
            _ => Cmd::Count(i % 9),
        };
        let position = log.append(partition, cmd.clone())?;
        // The first e-mail takes the address; later ones violate the unique index.
        let is_poison = matches!(cmd, Cmd::Fail | Cmd::Panic | Cmd::ClosurePanics(_))
            || (matches!(cmd, Cmd::Email(..)) && i != 31);
        if is_poison {
            poison.push(("cmds".to_owned(), partition, position));
        }
    }
    let running =
        Projector::new(&store, log.source("cmds"), handler(counts.clone(), emails.clone()))
            .on_failure(OnFailure::DeadLetter(letters.clone()))
            .spawn()?;
    assert!(running.wait_until(WAIT, |s| s.events == 400));
    let stats = running.stop()?;
    let stored: Vec<_> = letters.range(..).into_iter().map(|(k, _)| k).collect();
    assert_eq!(stats.dead_letters, poison.len() as u64);
    assert_eq!(stored, poison);
    let counted = 400 - 8 * 4;
    assert_eq!(total(&counts), counted);
    assert_eq!(emails.len(), 1);
    let letter = |position| -> Option<DeadLetter> {
        letters.get(&("cmds".into(), 1, position)).map(|l| (*l).clone())
    };
    assert!(letter(3).is_some_and(|l| l.error.contains("this event is bad")), "event 7 failed");
    assert!(letter(9).is_some_and(|l| l.error.contains("handler panicked")), "event 19 panicked");
    assert!(letter(11).is_some_and(|l| l.error.contains("closure")), "event 23's closure panicked");
    assert!(letter(40).is_some_and(|l| l.error.contains("by_email")), "event 81 is a duplicate");
    assert_eq!(store.positions("cmds")?, [(0, 199), (1, 199)]);
    Ok(())
}

#[test]
fn a_poison_event_stops_the_projector_and_nothing_after_it_commits() -> TestResult {
    let dir = tempfile::tempdir()?;
    let log = MemoryLog::new(2);
    for i in 0..200u64 {
        let cmd = if i == 101 { Cmd::ClosurePanics(5) } else { Cmd::Count(i % 4) };
        log.append((i % 2) as u32, cmd)?;
    }
    {
        let (store, counts, emails) = open(&dir)?;
        let running =
            Projector::new(&store, log.source("cmds"), handler(counts.clone(), emails)).spawn()?;
        // Waits until the projector stops on its own (or the limit passes).
        running.wait_until(WAIT, |_| false);
        assert!(running.is_finished());
        let err = running.stop().err().ok_or("the projector failed")?;
        assert!(matches!(&err, Error::EventFailed { partition: 1, position: 50, .. }), "{err}");
        assert!(err.to_string().contains("panicked"), "{err}");
        // Partition 1 stopped right before the event; partition 0 went on.
        assert_eq!(store.position("cmds", 1)?, Some(49));
        assert_eq!(store.position("cmds", 0)?, Some(99));
        assert_eq!(total(&counts), 150);
        store.close()?;
    }
    // Restarted with dead letters, it picks the event up again and finishes.
    let (store, counts, emails) = open(&dir)?;
    let letters = store.view(&DEAD_LETTERS)?;
    let running = Projector::new(&store, log.source("cmds"), handler(counts.clone(), emails))
        .on_failure(OnFailure::DeadLetter(letters.clone()))
        .spawn()?;
    assert!(running.wait_until(WAIT, |s| s.lag() == 0 && s.in_flight == 0));
    let stats = running.stop()?;
    assert_eq!((stats.events, stats.dead_letters), (50, 1));
    assert_eq!(total(&counts), 199);
    assert_eq!(letters.len(), 1);
    Ok(())
}

#[test]
fn a_dead_letter_view_of_another_store_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let other_dir = tempfile::tempdir()?;
    let (store, counts, emails) = open(&dir)?;
    let other = Store::open(other_dir.path().join("other.redb"))?;
    let letters = other.view(&DEAD_LETTERS)?;
    let log: MemoryLog<Cmd> = MemoryLog::new(1);
    let started = Projector::new(&store, log.source("cmds"), handler(counts, emails))
        .on_failure(OnFailure::DeadLetter(letters))
        .start();
    assert!(matches!(started, Err(Error::ForeignView { .. })));
    let bad_name =
        Projector::new(&store, log.source(""), |_: &Event<Cmd>, _: &mut Batch| Ok(())).start();
    assert!(matches!(bad_name, Err(Error::InvalidPosition { .. })));
    Ok(())
}

/// A source that panics in `poll`.
struct Panicking;

impl Source for Panicking {
    type Payload = Cmd;

    fn name(&self) -> &'static str {
        "cmds"
    }

    fn resume(&mut self, _positions: &[(u32, u64)]) -> Result<(), BoxError> {
        Ok(())
    }

    fn poll(&mut self, _max: usize, _timeout: Duration) -> Result<Vec<Event<Cmd>>, BoxError> {
        panic!("the source broke")
    }

    fn acknowledge(&mut self, _partition: u32, _position: u64) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn a_panicking_source_ends_the_projector_with_an_error_and_wakes_its_waiters() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (store, counts, emails) = open(&dir)?;
    let running = Projector::new(&store, Panicking, handler(counts, emails)).spawn()?;
    // Without a deadline: only the end of the projector can return this wait.
    assert!(!running.wait_until(Duration::MAX, |_| false));
    assert!(running.is_finished());
    let err = running.stop().err().ok_or("a failure")?;
    assert!(
        matches!(&err, Error::SourceFailed { .. }) && err.to_string().contains("broke"),
        "{err}"
    );
    Ok(())
}
