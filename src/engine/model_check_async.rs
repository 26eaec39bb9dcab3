//! The async side of the submit/close protocol, model-checked with the model of
//! `model_check`: senders that await room in a full queue ([`SendFuture`], driven by
//! shuttle's `block_on`, which sleeps until its waker is woken: a lost wake-up is a
//! deadlock that shuttle reports), senders polled once and dropped (cancelled, maybe
//! after a pop woke them), tickets awaited on another thread than the one that polled
//! them first, and closers that await the writer's end instead of joining it, against
//! a writer that commits, fails or dies.
//!
//! What every schedule must show, besides `model_check`'s rules: no deadlock; a
//! cancelled batch is never committed and takes no wake-up with it (the others are
//! still queued or refused, never left waiting); an awaited close completes only once
//! the writer has finished, and a cancelled one leaves no waker behind.

use super::model_check::inbox::{Refusal, Refused, SendFuture};
use super::model_check::{Handle, Seen, WriterEnd, check, explore, submit};
use super::model_check::{joiner::WriterThread, sync::Arc};
use crate::mem::notify::Place;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Queues `id` by awaiting room, and records what happened in `seen`.
fn submit_async(handle: &Handle, id: u32, seen: &mut Seen) {
    let (ticket, request) = handle.request(id);
    let sent =
        shuttle::future::block_on(SendFuture::new(std::sync::Arc::clone(&handle.inbox), request));
    match sent {
        Ok(()) => seen.accepted.push((id, ticket)),
        Err(Refused { request, why }) => {
            assert!(!matches!(why, Refusal::Full), "an async send refused as full");
            drop(request);
            seen.refused.push(id);
        }
    }
}

/// Polls a send once with a waker that does nothing, yields, and drops it if it is
/// still pending: a cancelled submit, woken or not by then.
fn submit_cancelled(handle: &Handle, id: u32, seen: &mut Seen) {
    let (ticket, request) = handle.request(id);
    let mut send = SendFuture::new(std::sync::Arc::clone(&handle.inbox), request);
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut send).poll(&mut cx) {
        Poll::Ready(Ok(())) => seen.accepted.push((id, ticket)),
        Poll::Ready(Err(Refused { request, .. })) => {
            drop(request);
            seen.refused.push(id);
        }
        Poll::Pending => {
            shuttle::thread::yield_now();
            drop(send);
            // Never queued: `check` asserts it was never committed either.
            seen.refused.push(id);
        }
    }
}

/// Waits for the writer's end without blocking, as `close_async` does; dropped
/// early, it takes its waker out.
struct Stopped<'a> {
    writer: &'a WriterThread,
    place: Place,
}

impl Future for Stopped<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.writer.poll_stopped(&mut this.place, cx)
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.writer.cancel_stopped(&self.place);
    }
}

fn close_async(handle: &Handle) {
    handle.inbox.close();
    shuttle::future::block_on(Stopped { writer: &handle.writer, place: Place::default() });
    assert!(*handle.finished.lock().expect("finished"), "an awaited close ended before the writer");
}

/// Two async submitters and a blocking one on a queue of one, against a closer: every
/// batch queued or refused, every ticket answered.
fn async_submitters_against_close(end: WriterEnd) {
    let handle = Handle::open(1, end);
    let mut threads = Vec::new();
    for t in 0..3u32 {
        let handle = Arc::clone(&handle);
        threads.push(shuttle::thread::spawn(move || {
            let mut seen = Seen::default();
            for i in 0..2 {
                if t < 2 {
                    submit_async(&handle, t * 10 + i, &mut seen);
                } else {
                    submit(&handle, t * 10 + i, true, &mut seen);
                }
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

/// A cancelled submit beside two async submitters and a blocking one, with the close
/// only after all of them: a wake-up lost with the cancelled one leaves a submitter
/// asleep for ever.
fn cancelled_submit(end: WriterEnd) {
    let handle = Handle::open(1, end);
    let mut threads = Vec::new();
    for t in 0..4u32 {
        let handle = Arc::clone(&handle);
        threads.push(shuttle::thread::spawn(move || {
            let mut seen = Seen::default();
            match t {
                0 => submit_cancelled(&handle, 0, &mut seen),
                1 | 2 => {
                    for i in 0..2 {
                        submit_async(&handle, t * 10 + i, &mut seen);
                    }
                }
                _ => submit(&handle, 30, true, &mut seen),
            }
            seen
        }));
    }
    let seen: Vec<Seen> = threads.into_iter().map(|t| t.join().expect("submitter")).collect();
    assert_eq!(handle.inbox.waiting_async_senders(), 0, "a sender left its waker behind");
    handle.close();
    let committed = std::sync::Arc::clone(&handle.committed);
    drop(handle);
    check(seen, &committed, end);
}

/// Async submitters that await their tickets, the first poll of each on the submitting
/// thread and the rest on another: the ticket wakes the last poller.
fn tickets_awaited_elsewhere(end: WriterEnd) {
    let handle = Handle::open(1, end);
    let submitters: Vec<_> = (0..2u32)
        .map(|t| {
            let handle = Arc::clone(&handle);
            shuttle::thread::spawn(move || {
                let mut seen = Seen::default();
                submit_async(&handle, t, &mut seen);
                let Some((id, mut ticket)) = seen.accepted.pop() else { return seen };
                let mut cx = Context::from_waker(Waker::noop());
                let first = Pin::new(&mut ticket).poll(&mut cx);
                let result = match first {
                    Poll::Ready(result) => result,
                    Poll::Pending => {
                        shuttle::thread::spawn(move || shuttle::future::block_on(ticket))
                            .join()
                            .expect("awaiting thread")
                    }
                };
                seen.answered.push((id, result));
                seen
            })
        })
        .collect();
    let seen: Vec<Seen> = submitters.into_iter().map(|t| t.join().expect("submitter")).collect();
    handle.close();
    let committed = std::sync::Arc::clone(&handle.committed);
    drop(handle);
    check(seen, &committed, end);
}

/// An awaited close, a blocking close and a cancelled awaited close, against an async
/// submitter on a full queue: both closes return once the writer has finished.
fn closes_awaited(end: WriterEnd) {
    let handle = Handle::open(1, end);
    let submitter = {
        let handle = Arc::clone(&handle);
        shuttle::thread::spawn(move || {
            let mut seen = Seen::default();
            for i in 0..3 {
                submit_async(&handle, i, &mut seen);
            }
            seen
        })
    };
    let awaited = {
        let handle = Arc::clone(&handle);
        shuttle::thread::spawn(move || close_async(&handle))
    };
    let cancelled = {
        let handle = Arc::clone(&handle);
        shuttle::thread::spawn(move || {
            let mut stopped = Stopped { writer: &handle.writer, place: Place::default() };
            let mut cx = Context::from_waker(Waker::noop());
            let _ = Pin::new(&mut stopped).poll(&mut cx);
        })
    };
    let blocking = {
        let handle = Arc::clone(&handle);
        shuttle::thread::spawn(move || {
            handle.close();
            assert!(*handle.finished.lock().expect("finished"), "close returned before the join");
        })
    };
    let seen = submitter.join().expect("submitter");
    for t in [awaited, cancelled, blocking] {
        t.join().expect("closer");
    }
    let committed = std::sync::Arc::clone(&handle.committed);
    drop(handle);
    check(vec![seen], &committed, end);
}

#[test]
fn async_submitters_against_close_lose_no_ticket() {
    explore("async submit against close", async_submitters_against_close);
}

#[test]
fn a_cancelled_async_submit_loses_no_wake_up() {
    explore("async submit cancelled", cancelled_submit);
}

#[test]
fn a_ticket_wakes_the_task_that_polled_it_last() {
    explore("tickets awaited on another thread", tickets_awaited_elsewhere);
}

#[test]
fn an_awaited_close_ends_after_the_writer() {
    explore("awaited close", closes_awaited);
}
