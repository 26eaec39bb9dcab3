//! The feed log's protocol, model-checked: `feed_log.rs` compiled again against
//! shuttle's primitives, with a writer that appends, reveals, prunes and closes, and
//! readers that wait blocking or as futures. Shuttle explores thousands of schedules and
//! fails on a deadlock (a reader never woken) or a broken assertion.
//!
//! What every schedule must show: each reader gets the revealed groups in LSN order,
//! each once, or learns they were pruned, and ends when the log closes; nothing hangs.
//! `VIEWSTORE_MODEL_ITERATIONS` sets the schedules per scheduler and scenario (default
//! 5,000).

mod sync {
    pub(crate) use shuttle::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
}

/// How many readers are done (saw the last group, or learned of the prune): the
/// writer closes the log only then, so a lost wake-up is a deadlock, not a late read.
struct Done {
    count: sync::Mutex<u32>,
    changed: sync::Condvar,
}

impl Done {
    fn one(&self) {
        *self.count.lock().expect("done") += 1;
        self.changed.notify_all();
    }

    fn wait_for(&self, n: u32) {
        let mut count = self.count.lock().expect("done");
        while *count < n {
            count = self.changed.wait(count).expect("done");
        }
    }
}

#[allow(
    dead_code,
    unreachable_pub,
    clippy::duplicate_mod,
    reason = "the same file, compiled again against the model's primitives"
)]
#[path = "feed_log.rs"]
mod feed_log;

use crate::base::feed::{FeedGroup, FeedRetention};
use crate::base::version::Lsn;
use feed_log::{FeedLog, Next};
use sync::Arc;

fn group(lsn: u64) -> FeedGroup {
    FeedGroup { lsn: Lsn::new(lsn), committed_at_ms: lsn, changes: Vec::new() }
}

/// What a reader saw: the LSNs of its groups, and whether it learned of a prune.
#[derive(Debug, Default)]
struct Seen {
    lsns: Vec<u64>,
    pruned: Option<u64>,
}

impl Seen {
    /// Takes `next`; `false` once the reader is done.
    fn take(&mut self, next: Next, after: &mut Lsn) -> bool {
        match next {
            Next::Group(g) => {
                assert!(g.lsn > *after, "group {} after {after}", g.lsn);
                *after = g.lsn;
                self.lsns.push(g.lsn.get());
                true
            }
            Next::Pruned(p) => {
                self.pruned = Some(p.get());
                false
            }
            Next::Closed => false,
            Next::Pending => panic!("a wait without deadline came back empty"),
        }
    }

    /// The groups `1..=n`, or those after the prune the reader learned of.
    fn check(&self, n: u64) {
        if let Some(p) = self.pruned {
            assert!(self.lsns.iter().all(|&l| l <= p), "{self:?}");
        } else {
            assert_eq!(self.lsns, (1..=n).collect::<Vec<_>>(), "{self:?}");
        }
    }
}

/// The writer: three groups appended then revealed, one at a time or two at once,
/// a prune when asked; once both readers are done, close.
fn writer(log: &FeedLog, prune: bool, done: &Done) {
    log.append(group(1));
    log.reveal(Lsn::new(1));
    log.append(group(2));
    log.append(group(3));
    log.reveal(Lsn::new(3));
    if prune {
        let plan = log.prune_plan(&FeedRetention::unbounded().max_groups(2), 0, 0);
        assert_eq!(plan, Some(Lsn::new(2)));
        log.prune_through(Lsn::new(2));
    }
    done.wait_for(2);
    log.close();
}

impl Seen {
    /// Whether the reader has all it can get before the close.
    fn finished(&self) -> bool {
        self.pruned.is_some() || self.lsns.last() == Some(&3)
    }
}

fn blocking_reader(log: &FeedLog, done: &Done) -> Seen {
    let (mut seen, mut after) = (Seen::default(), Lsn::new(0));
    let mut told = false;
    while seen.take(log.wait_after(after, None), &mut after) {
        if !told && seen.finished() {
            done.one();
            told = true;
        }
    }
    if !told {
        done.one();
    }
    seen
}

fn async_reader(log: &FeedLog, done: &Done) -> Seen {
    let (mut seen, mut after) = (Seen::default(), Lsn::new(0));
    let mut told = false;
    loop {
        let at = after;
        let next = shuttle::future::block_on(std::future::poll_fn(|cx| log.poll_after(at, cx)));
        let more = seen.take(next, &mut after);
        if !told && (seen.finished() || !more) {
            done.one();
            told = true;
        }
        if !more {
            return seen;
        }
    }
}

fn scenario(prune: bool) {
    let log = Arc::new(FeedLog::new(Vec::new(), Lsn::new(0), Lsn::new(0)));
    let done = Arc::new(Done { count: sync::Mutex::new(0), changed: sync::Condvar::new() });
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (log, done) = (Arc::clone(&log), Arc::clone(&done));
            shuttle::thread::spawn(move || {
                if r == 0 { blocking_reader(&log, &done) } else { async_reader(&log, &done) }
            })
        })
        .collect();
    writer(&log, prune, &done);
    for reader in readers {
        let seen = reader.join().expect("reader");
        seen.check(3);
    }
}

fn iterations() -> usize {
    std::env::var("VIEWSTORE_MODEL_ITERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(5_000)
}

#[test]
fn feed_readers_get_every_group_once_and_end_at_close() {
    let n = iterations();
    for prune in [false, true] {
        shuttle::check_random(move || scenario(prune), n);
        shuttle::check_pct(move || scenario(prune), n, 3);
    }
    eprintln!("model check 'feed log': {} schedules", n * 4);
}
