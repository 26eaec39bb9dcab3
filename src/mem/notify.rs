//! A list of async waiters, each waiting for a counter that only grows (an LSN, a
//! writer's end) to reach its target: the one piece every async wait of the crate is
//! built from. `wait_for_async` waits here for the published LSN, the inbox's async
//! senders wait for room (every target 0, woken one at a time in arrival order), the
//! writer's joiner for the end of the writer thread; a change feed's `Stream` can wait
//! for "the published LSN passes X" the same way.
//!
//! The list is plain data with no lock of its own: its owner keeps it beside the counter
//! under one lock, so that "has the counter reached my target" and "I am registered"
//! are decided together, and no wake-up can fall between them. The protocol, for the
//! owner:
//!
//! 1. A waiting future checks the counter and registers its waker in one critical
//!    section; whoever moves the counter (or ends it) takes the reached wakers out in
//!    the critical section that moves it. A registered waker is therefore always taken
//!    out by a later move or end.
//! 2. Wakers are woken and dropped only after the lock is released
//!    ([`Wakeups::wake`], and the [`Waker`] that [`Waiters::register`] or
//!    [`Waiters::remove`] hands back): a waker is user code (an executor's, or one that
//!    owns the last handle of a store, whose drop closes it and takes the same lock).
//! 3. A future keeps its [`Place`] across polls and gives it back to
//!    [`Waiters::remove`] when it is dropped: a cancelled wait leaves nothing behind,
//!    and [`Removed::Woken`] tells it that it had been woken, so that a wake-up meant
//!    for one waiter (a free slot) can be passed on instead of lost.

use std::collections::BTreeMap;
use std::task::Waker;

/// Where a future is registered in a [`Waiters`] list, kept by the future across polls.
/// A future registered again after it was woken gets its old position back (its id
/// orders it among waiters with the same target), so a woken waiter that finds its
/// chance taken is not sent to the back of the line.
#[derive(Debug, Default)]
pub(crate) struct Place {
    /// `(target, id)`, set at the first registration.
    key: Option<(u64, u64)>,
}

impl Place {
    /// Whether the future was ever registered.
    pub(crate) fn is_registered(&self) -> bool {
        self.key.is_some()
    }
}

/// What [`Waiters::remove`] found.
pub(crate) enum Removed {
    /// The future was never registered.
    Never,
    /// It was still waiting: here is its waker, to drop outside the lock.
    Waiting(Waker),
    /// Its waker had been taken out to be woken (or the list was emptied).
    Woken,
}

/// Wakers taken out of a [`Waiters`] list under its owner's lock, to be woken after it
/// is released.
#[must_use = "the wakers must be woken"]
#[derive(Default)]
pub(crate) struct Wakeups(Vec<Waker>);

impl Wakeups {
    /// Wakes every waker. Call it with no lock held.
    pub(crate) fn wake(self) {
        for waker in self.0 {
            waker.wake();
        }
    }

    /// How many wakers there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// Wakers waiting for a counter to reach their targets, in target then arrival order.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    waiting: BTreeMap<(u64, u64), Waker>,
    next_id: u64,
}

impl Waiters {
    /// An empty list.
    pub(crate) fn new() -> Self {
        Waiters::default()
    }

    /// Registers `waker` at `place`, to be woken once the counter reaches `target`; a
    /// future already registered there has its waker replaced, unless the two wake the
    /// same task. Returns the replaced waker, to be dropped once the lock is released.
    pub(crate) fn register(
        &mut self,
        place: &mut Place,
        target: u64,
        waker: &Waker,
    ) -> Option<Waker> {
        let key = match place.key {
            Some((at, id)) if at == target => (at, id),
            Some(old) => {
                // Another target: a new key, keeping the id.
                let replaced = self.waiting.remove(&old);
                let key = (target, old.1);
                place.key = Some(key);
                self.waiting.insert(key, waker.clone());
                return replaced;
            }
            None => {
                let key = (target, self.next_id);
                self.next_id += 1;
                place.key = Some(key);
                key
            }
        };
        match self.waiting.get_mut(&key) {
            Some(current) if current.will_wake(waker) => None,
            Some(current) => Some(std::mem::replace(current, waker.clone())),
            None => self.waiting.insert(key, waker.clone()),
        }
    }

    /// Takes `place` out of the list. The place stays as it was, so that registering it
    /// again keeps its position.
    pub(crate) fn remove(&mut self, place: &Place) -> Removed {
        match place.key {
            None => Removed::Never,
            Some(key) => self.waiting.remove(&key).map_or(Removed::Woken, Removed::Waiting),
        }
    }

    /// Takes out the wakers whose target is at most `value`.
    pub(crate) fn take_reached(&mut self, value: u64) -> Wakeups {
        let Some(above) = value.checked_add(1) else {
            return self.take_all();
        };
        let rest = self.waiting.split_off(&(above, 0));
        let reached = std::mem::replace(&mut self.waiting, rest);
        Wakeups(reached.into_values().collect())
    }

    /// Takes out the first waker: the lowest target, then the earliest registered.
    pub(crate) fn take_first(&mut self) -> Wakeups {
        Wakeups(self.waiting.pop_first().map(|(_, waker)| waker).into_iter().collect())
    }

    /// Takes out every waker.
    pub(crate) fn take_all(&mut self) -> Wakeups {
        Wakeups(std::mem::take(&mut self.waiting).into_values().collect())
    }

    /// Whether no waker is registered.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// How many wakers are registered.
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::{Place, Removed, Waiters};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (Arc::clone(&count), Waker::from(count))
    }

    fn woken(count: &Count) -> usize {
        count.0.load(Ordering::SeqCst)
    }

    #[test]
    fn wakes_the_reached_targets_only() {
        let mut list = Waiters::new();
        let (low, low_waker) = counter();
        let (high, high_waker) = counter();
        let (mut a, mut b) = (Place::default(), Place::default());
        assert!(list.register(&mut a, 3, &low_waker).is_none());
        assert!(list.register(&mut b, 7, &high_waker).is_none());
        let reached = list.take_reached(5);
        assert_eq!(reached.len(), 1);
        reached.wake();
        assert_eq!((woken(&low), woken(&high)), (1, 0));
        assert!(matches!(list.remove(&a), Removed::Woken));
        list.take_reached(u64::MAX).wake();
        assert_eq!(woken(&high), 1);
        assert!(list.is_empty());
    }

    #[test]
    fn registering_again_replaces_the_waker_and_keeps_the_position() {
        let mut list = Waiters::new();
        let (first, first_waker) = counter();
        let (second, second_waker) = counter();
        let (mut a, mut b) = (Place::default(), Place::default());
        assert!(list.register(&mut a, 0, &first_waker).is_none());
        assert!(list.register(&mut b, 0, &second_waker).is_none());
        // The same waker again: nothing replaced.
        assert!(list.register(&mut a, 0, &first_waker).is_none());
        // `a` is woken, then registers again: it is still first in line.
        list.take_first().wake();
        assert_eq!(woken(&first), 1);
        assert!(list.register(&mut a, 0, &first_waker).is_none());
        list.take_first().wake();
        assert_eq!((woken(&first), woken(&second)), (2, 0));
        // Another waker at the same place replaces the old one, handed back.
        let (other, other_waker) = counter();
        assert!(list.register(&mut b, 0, &other_waker).is_some());
        list.take_all().wake();
        assert_eq!((woken(&second), woken(&other)), (0, 1));
    }

    #[test]
    fn a_removed_waiter_leaves_nothing_behind() {
        let mut list = Waiters::new();
        let (_, waker) = counter();
        let mut place = Place::default();
        assert!(matches!(list.remove(&place), Removed::Never));
        assert!(list.register(&mut place, 9, &waker).is_none());
        assert!(place.is_registered());
        assert!(matches!(list.remove(&place), Removed::Waiting(_)));
        assert_eq!(list.len(), 0);
        // Moved to another target, it is found under the new one.
        assert!(list.register(&mut place, 9, &waker).is_none());
        assert!(list.register(&mut place, 4, &waker).is_some());
        assert_eq!(list.take_reached(4).len(), 1);
    }
}
