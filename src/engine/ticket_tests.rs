//! Tickets resolved, awaited, timed out and dropped.

use super::sync::{Arc, ThreadId};
use super::ticket::pair;
use crate::base::error::Error;
use crate::base::version::Lsn;
use crate::base::version::Receipt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::task::Wake;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

fn other_thread() -> ThreadId {
    std::thread::spawn(|| std::thread::current().id()).join().expect("spawned")
}

struct Flag(std::sync::atomic::AtomicBool);
impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn future_is_woken_and_resolves() {
    let (mut ticket, completer) = pair(other_thread(), std::sync::Arc::from(Path::new("t")));
    let flag = Arc::new(Flag(false.into()));
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    assert!(Pin::new(&mut ticket).poll(&mut cx).is_pending());
    completer.complete(Ok(Receipt::committed(Lsn::new(3), vec![])));
    assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
    match Pin::new(&mut ticket).poll(&mut cx) {
        Poll::Ready(Ok(r)) => assert_eq!(r.lsn, Lsn::new(3)),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn dropped_completer_resolves_with_its_error() {
    let (ticket, completer) = pair(other_thread(), std::sync::Arc::from(Path::new("t")));
    drop(completer);
    assert!(matches!(ticket.wait(), Err(Error::Poisoned { .. })));
}

#[test]
fn wait_timeout_gives_the_ticket_back() {
    let (ticket, completer) = pair(other_thread(), std::sync::Arc::from(Path::new("t")));
    let ticket = ticket.wait_timeout(Duration::from_millis(5)).expect_err("still pending");
    completer.complete(Ok(Receipt::committed(Lsn::new(1), vec![])));
    assert!(ticket.wait().is_ok());
}
