//! The submit/close protocol, model-checked: the inbox, the tickets and the writer
//! thread's joiner are compiled again here against shuttle's primitives, and driven by
//! threads that submit, try to submit, close, drop the last handle, and a writer that
//! commits, stops on its own or dies holding a batch. Shuttle runs each scenario under
//! thousands of schedules (random, and PCT, which finds bugs of small depth with a
//! known probability) and fails on a deadlock (every thread blocked) or a broken
//! assertion.
//!
//! What every schedule must show: no deadlock; every submitted batch either refused at
//! submit or answered by its ticket, never both; every ticket resolved by the time the
//! writer is joined; no batch committed after it was refused; an acknowledged batch is
//! one the writer committed. A ticket cannot resolve twice: its completer is consumed
//! by `complete` or resolves only in its `Drop`.
//!
//! `VIEWSTORE_MODEL_ITERATIONS` sets the schedules per scheduler and scenario
//! (default 5,000).

pub(super) mod sync {
    pub(crate) use shuttle::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
    pub(crate) use shuttle::thread::{JoinHandle, ThreadId};

    pub(crate) fn current_thread() -> ThreadId {
        shuttle::thread::current().id()
    }

    /// Shuttle's handles cannot tell: the model never joins early, a later `join`
    /// does.
    pub(crate) fn has_finished(_: &JoinHandle<()>) -> bool {
        false
    }
}

#[allow(
    dead_code,
    unreachable_pub,
    clippy::duplicate_mod,
    reason = "the same file, compiled again against the model's primitives; the model uses a part of it"
)]
#[path = "inbox.rs"]
pub(super) mod inbox;
#[allow(
    dead_code,
    unreachable_pub,
    clippy::duplicate_mod,
    reason = "the same file, compiled again against the model's primitives; the model uses a part of it"
)]
#[path = "joiner.rs"]
pub(super) mod joiner;
#[allow(
    dead_code,
    unreachable_pub,
    clippy::duplicate_mod,
    reason = "the same file, compiled again against the model's primitives; the model uses a part of it"
)]
#[path = "ticket.rs"]
pub(super) mod ticket;

use crate::base::error::Error;
use crate::base::version::{Lsn, Receipt};
use inbox::{Inbox, Received, Refusal, Refused};
use joiner::{Finished, WriterThread};
use std::path::Path;
use sync::{Arc, Mutex};
use ticket::{Completer, Ticket};

/// A batch in the model: its id and its completer.
pub(super) struct Request {
    pub(super) id: u32,
    done: Completer,
    /// A store handle the batch owns, as a closure that captured one does: the last
    /// handle can be dropped with the batch, on the writer thread.
    owner: Option<Arc<Handle>>,
}

/// How the model's writer ends.
#[derive(Clone, Copy)]
pub(super) enum WriterEnd {
    /// Runs until the inbox is closed and empty.
    OnClose,
    /// Stops on a failure (a commit that cannot be retried) after this many batches.
    FailsAfter(u32),
    /// Dies while holding its next batch after this many (drops its completer).
    DiesAfter(u32),
}

/// The model's store: the same parts as `Store`'s `Inner`, and the same shutdown.
pub(super) struct Handle {
    pub(super) inbox: std::sync::Arc<Inbox<Request>>,
    pub(super) writer: WriterThread,
    file: std::sync::Arc<Path>,
    /// Ids of the batches the writer committed.
    pub(super) committed: std::sync::Arc<Mutex<Vec<u32>>>,
    /// Set by the writer thread as its last step.
    pub(super) finished: std::sync::Arc<Mutex<bool>>,
}

impl Handle {
    pub(super) fn open(capacity: usize, end: WriterEnd) -> Arc<Handle> {
        let inbox = std::sync::Arc::new(Inbox::new(capacity));
        let committed = std::sync::Arc::new(Mutex::new(Vec::new()));
        let finished = std::sync::Arc::new(Mutex::new(false));
        let done = std::sync::Arc::new(Finished::new());
        let thread = {
            let (inbox, committed) =
                (std::sync::Arc::clone(&inbox), std::sync::Arc::clone(&committed));
            let finished = std::sync::Arc::clone(&finished);
            let done = std::sync::Arc::clone(&done);
            shuttle::thread::spawn(move || {
                let reason = run_writer(&inbox, &committed, end);
                let error = match &reason {
                    Some(reason) => {
                        Error::Poisoned { file: "model".into(), reason: reason.clone() }
                    }
                    None => Error::Closed,
                };
                for request in inbox.stop(reason) {
                    request.done.complete(Err(error.clone()));
                }
                *finished.lock().expect("finished") = true;
                done.finish();
            })
        };
        Arc::new(Handle {
            inbox,
            writer: WriterThread::new(thread, done),
            file: std::sync::Arc::from(Path::new("model")),
            committed,
            finished,
        })
    }

    pub(super) fn request(&self, id: u32) -> (Ticket, Request) {
        let (ticket, done) = ticket::pair(self.writer.id(), std::sync::Arc::clone(&self.file));
        (ticket, Request { id, done, owner: None })
    }

    pub(super) fn close(&self) {
        self.inbox.close();
        self.writer.join();
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer loop's protocol: take a request, then what else is queued, answer each.
fn run_writer(
    inbox: &Inbox<Request>,
    committed: &Mutex<Vec<u32>>,
    end: WriterEnd,
) -> Option<String> {
    let mut handled = 0;
    loop {
        let first = match inbox.recv(None) {
            Received::Request(r) => r,
            Received::Closed => return None,
            Received::Timeout => unreachable!("no deadline was given"),
        };
        let mut group = vec![first];
        while let Some(next) = inbox.try_recv() {
            group.push(next);
        }
        for request in group {
            match end {
                WriterEnd::FailsAfter(n) if handled >= n => {
                    request.done.complete(Err(Error::Closed));
                    return Some("a commit failed".into());
                }
                WriterEnd::DiesAfter(n) if handled >= n => {
                    drop(request);
                    return Some("the writer died".into());
                }
                _ => {}
            }
            handled += 1;
            committed.lock().expect("committed").push(request.id);
            request.done.complete(Ok(Receipt::committed(Lsn::new(u64::from(request.id)), vec![])));
        }
    }
}

/// What one submitter saw: refused ids, and the tickets of accepted ones.
#[derive(Default)]
pub(super) struct Seen {
    pub(super) refused: Vec<u32>,
    pub(super) accepted: Vec<(u32, Ticket)>,
    /// Accepted batches whose tickets were already waited on.
    pub(super) answered: Vec<(u32, crate::base::error::Result<Receipt>)>,
}

pub(super) fn submit(handle: &Handle, id: u32, blocking: bool, seen: &mut Seen) {
    submit_owned(handle, id, blocking, seen, None);
}

fn submit_owned(
    handle: &Handle,
    id: u32,
    blocking: bool,
    seen: &mut Seen,
    owner: Option<Arc<Handle>>,
) {
    let (ticket, mut request) = handle.request(id);
    request.owner = owner;
    let sent = if blocking { handle.inbox.send(request) } else { handle.inbox.try_send(request) };
    match sent {
        Ok(()) => seen.accepted.push((id, ticket)),
        Err(Refused { request, why }) => {
            assert!(!matches!(why, Refusal::Full) || !blocking, "a blocking send refused as full");
            drop(request);
            seen.refused.push(id);
        }
    }
}

/// Checks one schedule's end state; every handle and thread is gone by then.
pub(super) fn check(seen: Vec<Seen>, committed: &Mutex<Vec<u32>>, end: WriterEnd) {
    let committed = committed.lock().expect("committed").clone();
    for s in seen {
        for id in &s.refused {
            assert!(!committed.contains(id), "batch {id} was refused and committed");
        }
        let waited = s.accepted.into_iter().map(|(id, ticket)| {
            assert!(ticket.is_ready(), "batch {id}'s ticket was never resolved");
            (id, ticket.wait())
        });
        for (id, result) in waited.chain(s.answered) {
            match result {
                Ok(receipt) => {
                    assert!(committed.contains(&id), "batch {id} acknowledged, not committed");
                    assert_eq!(receipt.lsn, Lsn::new(u64::from(id)));
                }
                Err(Error::Closed) if matches!(end, WriterEnd::OnClose) => {
                    panic!("batch {id} accepted by an open inbox, then failed with Closed")
                }
                Err(_) => assert!(!committed.contains(&id), "batch {id} failed and committed"),
            }
        }
    }
}

/// Three non-blocking submitters and a blocking one on a queue of one, against a
/// closer: the interleaving that deadlocked when a dropped completer took the gate lock.
fn try_submit_against_close(end: WriterEnd) {
    let handle = Handle::open(1, end);
    let mut threads = Vec::new();
    for t in 0..4u32 {
        let handle = Arc::clone(&handle);
        threads.push(shuttle::thread::spawn(move || {
            let mut seen = Seen::default();
            for i in 0..2 {
                submit(&handle, t * 10 + i, t == 3, &mut seen);
            }
            seen
        }));
    }
    let closer = {
        let handle = Arc::clone(&handle);
        shuttle::thread::spawn(move || handle.close())
    };
    let seen: Vec<Seen> = threads.into_iter().map(|t| t.join().expect("submitter")).collect();
    closer.join().expect("closer");
    let committed = std::sync::Arc::clone(&handle.committed);
    drop(handle);
    check(seen, &committed, end);
}

/// Two closers at once, with a submitter blocked on a full queue: both return only once
/// the writer is joined.
fn two_closers(end: WriterEnd) {
    let handle = Handle::open(1, end);
    let submitter = {
        let handle = Arc::clone(&handle);
        shuttle::thread::spawn(move || {
            let mut seen = Seen::default();
            for i in 0..3 {
                submit(&handle, i, true, &mut seen);
            }
            seen
        })
    };
    let closers: Vec<_> = (0..2)
        .map(|_| {
            let handle = Arc::clone(&handle);
            shuttle::thread::spawn(move || {
                handle.close();
                assert!(handle.inbox.status().0, "close returned with the inbox open");
                assert!(
                    *handle.finished.lock().expect("finished"),
                    "close returned before the join"
                );
            })
        })
        .collect();
    let seen = submitter.join().expect("submitter");
    for c in closers {
        c.join().expect("closer");
    }
    let committed = std::sync::Arc::clone(&handle.committed);
    drop(handle);
    check(vec![seen], &committed, end);
}

/// Batches that own the last handles: the writer drops the last one, which closes the
/// store from the writer thread; its tickets still resolve and the writer stops.
fn last_handle_dropped_by_the_writer(end: WriterEnd) {
    let handle = Handle::open(2, end);
    let committed = std::sync::Arc::clone(&handle.committed);
    let mut seen = Seen::default();
    for i in 0..2 {
        submit_owned(&handle, i, true, &mut seen, Some(Arc::clone(&handle)));
    }
    drop(handle);
    for (_, ticket) in &mut seen.accepted {
        // Resolving is all that is asked here; `check` reads the results.
        while !ticket.is_ready() {
            shuttle::thread::yield_now();
        }
    }
    check(vec![seen], &committed, end);
}

/// Submitters that drop their tickets unawaited and then their handles: the last one
/// dropped closes the store and joins the writer.
fn last_handle_dropped(end: WriterEnd) {
    let handle = Handle::open(2, end);
    let committed = std::sync::Arc::clone(&handle.committed);
    let inbox = std::sync::Arc::clone(&handle.inbox);
    let threads: Vec<_> = (0..2u32)
        .map(|t| {
            let handle = Arc::clone(&handle);
            shuttle::thread::spawn(move || {
                let mut seen = Seen::default();
                for i in 0..2 {
                    submit(&handle, t * 10 + i, true, &mut seen);
                }
                // The first ticket is dropped unawaited; the second is kept.
                let mut accepted = std::mem::take(&mut seen.accepted);
                if !accepted.is_empty() {
                    drop(accepted.remove(0));
                }
                seen.accepted = accepted;
                seen
            })
        })
        .collect();
    drop(handle);
    let seen: Vec<Seen> = threads.into_iter().map(|t| t.join().expect("submitter")).collect();
    // The last handle is gone, so the writer was joined: the inbox is closed.
    assert!(inbox.status().0, "the last handle was dropped and the inbox is open");
    check(seen, &committed, end);
}

/// Submitters that wait for each acknowledgement before the next submit, and a close
/// only after them: any lost wake-up of the writer or of a waiting ticket deadlocks.
fn submit_and_wait(end: WriterEnd) {
    let handle = Handle::open(1, end);
    let threads: Vec<_> = (0..2u32)
        .map(|t| {
            let handle = Arc::clone(&handle);
            shuttle::thread::spawn(move || {
                let mut seen = Seen::default();
                for i in 0..2 {
                    submit(&handle, t * 10 + i, true, &mut seen);
                    if let Some((id, ticket)) = seen.accepted.pop() {
                        seen.answered.push((id, ticket.wait()));
                    }
                }
                seen
            })
        })
        .collect();
    let seen: Vec<Seen> = threads.into_iter().map(|t| t.join().expect("submitter")).collect();
    handle.close();
    let committed = std::sync::Arc::clone(&handle.committed);
    drop(handle);
    check(seen, &committed, end);
}

/// A submitter queueing three batches at once on a queue of one, beside a plain
/// submitter, against a closer: every batch is queued whole or refused, none is lost.
fn send_all_against_close(end: WriterEnd) {
    let handle = Handle::open(1, end);
    let many = {
        let handle = Arc::clone(&handle);
        shuttle::thread::spawn(move || {
            let mut seen = Seen::default();
            let mut tickets = Vec::new();
            let mut requests = std::collections::VecDeque::new();
            for id in 0..3u32 {
                let (ticket, request) = handle.request(id);
                tickets.push((id, ticket));
                requests.push_back(request);
            }
            let sent = handle.inbox.send_all(&mut requests);
            let refused: Vec<u32> = requests.iter().map(|r| r.id).collect();
            assert_eq!(sent.is_ok(), refused.is_empty(), "a refusal left nothing unsent");
            drop(requests);
            for (id, ticket) in tickets {
                if refused.contains(&id) {
                    seen.refused.push(id);
                } else {
                    seen.accepted.push((id, ticket));
                }
            }
            seen
        })
    };
    let single = {
        let handle = Arc::clone(&handle);
        shuttle::thread::spawn(move || {
            let mut seen = Seen::default();
            submit(&handle, 10, true, &mut seen);
            seen
        })
    };
    let closer = {
        let handle = Arc::clone(&handle);
        shuttle::thread::spawn(move || handle.close())
    };
    let seen = vec![many.join().expect("many"), single.join().expect("single")];
    closer.join().expect("closer");
    let committed = std::sync::Arc::clone(&handle.committed);
    drop(handle);
    check(seen, &committed, end);
}

fn iterations() -> usize {
    std::env::var("VIEWSTORE_MODEL_ITERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(5_000)
}

/// Runs a scenario under the random and the PCT scheduler, for each way the writer ends.
pub(super) fn explore(name: &str, scenario: fn(WriterEnd)) {
    let n = iterations();
    for end in [WriterEnd::OnClose, WriterEnd::FailsAfter(1), WriterEnd::DiesAfter(2)] {
        shuttle::check_random(move || scenario(end), n);
        shuttle::check_pct(move || scenario(end), n, 3);
    }
    eprintln!("model check '{name}': {} schedules", n * 6);
}

#[test]
fn try_submit_against_close_never_deadlocks_or_loses_a_ticket() {
    explore("try_submit against close", try_submit_against_close);
}

#[test]
fn queueing_many_at_once_against_close_loses_no_ticket() {
    explore("send_all against close", send_all_against_close);
}

#[test]
fn the_writer_can_drop_the_last_handle() {
    explore("last handle dropped by the writer", last_handle_dropped_by_the_writer);
}

#[test]
fn acknowledgements_wake_their_waiters() {
    explore("submit and wait", submit_and_wait);
}

#[test]
fn concurrent_closers_wait_for_one_join() {
    explore("two closers", two_closers);
}

#[test]
fn dropping_the_last_handle_stops_the_writer() {
    explore("last handle dropped", last_handle_dropped);
}
