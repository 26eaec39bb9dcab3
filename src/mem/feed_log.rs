//! The retained change feed, in memory: the groups the writer recorded, in LSN order,
//! shown to readers only up to the LSN it reveals (durable, and published).
//!
//! Invariants, under `state`'s lock:
//! 1. `groups` is in strictly increasing LSN order, every LSN above `pruned_through`.
//! 2. `revealed` never goes back, and a group is shown to a reader only if its LSN is at
//!    or below `revealed`; the writer reveals an LSN only after publishing its root, so
//!    a reader never gets a change that readers of the store cannot see yet.
//! 3. Every wait has a waker: a blocked reader waits on `grown`, an async one registers
//!    in `wakers`, and `reveal`, `reset` and `close` notify both (wakers are woken after
//!    the lock is released).

use super::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use crate::base::feed::{FeedGroup, FeedRetention};
use crate::base::version::Lsn;
use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// What a reader positioned after an LSN finds.
#[derive(Debug)]
pub(crate) enum Next {
    /// The next group.
    Group(Arc<FeedGroup>),
    /// Nothing yet: the next group is not revealed.
    Pending,
    /// The store closed; nothing more will come.
    Closed,
    /// The groups right after the reader's position were pruned: it can read after
    /// this LSN only.
    Pruned(Lsn),
}

struct State {
    groups: VecDeque<Arc<FeedGroup>>,
    /// The retention size of `groups`.
    bytes: usize,
    revealed: Lsn,
    /// Groups at or below this LSN may be gone.
    pruned_through: Lsn,
    closed: bool,
    wakers: Vec<Waker>,
}

/// The change feed held in memory; see the module's invariants.
pub(crate) struct FeedLog {
    state: Mutex<State>,
    grown: Condvar,
}

impl FeedLog {
    /// A feed holding `groups` (in LSN order), of which those at or below `revealed`
    /// are shown.
    pub(crate) fn new(groups: Vec<FeedGroup>, pruned_through: Lsn, revealed: Lsn) -> Self {
        let bytes = groups.iter().map(FeedGroup::size).sum();
        debug_assert!(groups.windows(2).all(|w| w[0].lsn < w[1].lsn));
        FeedLog {
            state: Mutex::new(State {
                groups: groups.into_iter().map(Arc::new).collect(),
                bytes,
                revealed,
                pruned_through,
                closed: false,
                wakers: Vec::new(),
            }),
            grown: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics under this lock; a poisoned lock still holds a whole feed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notifies blocked and async readers, the wakers outside the lock.
    fn notify(&self, mut state: MutexGuard<'_, State>) {
        let wakers = std::mem::take(&mut state.wakers);
        drop(state);
        self.grown.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Adds the group the writer just committed; shown once revealed.
    pub(crate) fn append(&self, group: FeedGroup) {
        let mut state = self.lock();
        debug_assert!(state.groups.back().is_none_or(|g| g.lsn < group.lsn));
        debug_assert!(group.lsn > state.pruned_through);
        state.bytes += group.size();
        state.groups.push_back(Arc::new(group));
    }

    /// Shows readers every group up to `lsn`.
    pub(crate) fn reveal(&self, lsn: Lsn) {
        let mut state = self.lock();
        if lsn <= state.revealed {
            return;
        }
        state.revealed = lsn;
        self.notify(state);
    }

    /// The highest LSN to prune so that, with a group of `incoming` bytes added, the
    /// feed holds to `retention` at `now_ms`; `None` when nothing needs pruning.
    pub(crate) fn prune_plan(
        &self,
        retention: &FeedRetention,
        incoming: usize,
        now_ms: u64,
    ) -> Option<Lsn> {
        let state = self.lock();
        let mut count = state.groups.len() as u64 + 1;
        let mut bytes = (state.bytes + incoming) as u64;
        let mut last = None;
        for group in &state.groups {
            // Never a group readers could not see yet: its LSN may not even survive a
            // crash (periodic durability), and a reader must get the chance to read it.
            if group.lsn > state.revealed {
                break;
            }
            let too_many = retention.groups.is_some_and(|m| count > m);
            let too_big = retention.bytes.is_some_and(|m| bytes > m);
            let too_old = retention.age.is_some_and(|age| {
                let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
                now_ms.saturating_sub(group.committed_at_ms) > age_ms
            });
            if !(too_many || too_big || too_old) {
                break;
            }
            count -= 1;
            bytes -= group.size() as u64;
            last = Some(group.lsn);
        }
        last
    }

    /// Drops the groups at or below `lsn`.
    pub(crate) fn prune_through(&self, lsn: Lsn) {
        let mut state = self.lock();
        while state.groups.front().is_some_and(|g| g.lsn <= lsn) {
            if let Some(group) = state.groups.pop_front() {
                state.bytes -= group.size();
            }
        }
        state.pruned_through = state.pruned_through.max(lsn);
        // Readers positioned in the pruned range learn it at their next look.
        self.notify(state);
    }

    /// Replaces the whole feed with what the file holds (after the writer reopened it).
    /// What is revealed does not change: the writer reveals the file's groups once it
    /// has published them.
    pub(crate) fn reset(&self, groups: Vec<FeedGroup>, pruned_through: Lsn) {
        let mut state = self.lock();
        state.bytes = groups.iter().map(FeedGroup::size).sum();
        state.groups = groups.into_iter().map(Arc::new).collect();
        state.pruned_through = pruned_through;
        self.notify(state);
    }

    /// Ends every reader once it has read what was revealed.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        self.notify(state);
    }

    /// The LSN after which the feed is complete: groups at or below it may be pruned.
    pub(crate) fn pruned_through(&self) -> Lsn {
        self.lock().pruned_through
    }

    fn next_in(state: &State, after: Lsn) -> Next {
        if after < state.pruned_through {
            return Next::Pruned(state.pruned_through);
        }
        // The first group above `after`: groups are in LSN order.
        let at = state.groups.partition_point(|g| g.lsn <= after);
        match state.groups.get(at) {
            Some(group) if group.lsn <= state.revealed => Next::Group(Arc::clone(group)),
            _ if state.closed => Next::Closed,
            _ => Next::Pending,
        }
    }

    /// The first revealed group after `after`, waiting for one until `deadline` (for
    /// ever with `None`); `Next::Pending` when the deadline passed.
    pub(crate) fn wait_after(&self, after: Lsn, deadline: Option<Instant>) -> Next {
        let mut state = self.lock();
        loop {
            match Self::next_in(&state, after) {
                Next::Pending => {}
                found => return found,
            }
            state = match deadline {
                None => self.grown.wait(state).unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Next::Pending;
                    }
                    let waited = self.grown.wait_timeout(state, deadline - now);
                    waited.unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
    }

    /// The first revealed group after `after`, or `Pending` with the task's waker kept to
    /// be woken when more is revealed.
    pub(crate) fn poll_after(&self, after: Lsn, cx: &Context<'_>) -> Poll<Next> {
        let mut state = self.lock();
        match Self::next_in(&state, after) {
            Next::Pending => {
                if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    state.wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
            found => Poll::Ready(found),
        }
    }
}
