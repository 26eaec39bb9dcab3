//! Two pieces of work at once: one on a scoped thread of its own, one on the caller's.
//! The one way the crate runs work beside the writer (or beside a view's load), and the
//! thresholds below which each such use stays on one thread.
//!
//! Each threshold was tuned on the write and index benchmarks on a 2-core machine: a
//! scoped thread costs some tens of microseconds to start and join, so work is split
//! only where each half is well above that.

use std::sync::Mutex;

/// Runs `side` on a scoped thread named `name` while `here` runs on the calling thread,
/// and returns both results. When no thread can be started, `side` runs on the calling
/// thread after `here`. A panic in `side` resumes on the calling thread.
pub(crate) fn beside<A: Send, B>(
    name: &str,
    side: impl FnOnce() -> A + Send,
    here: impl FnOnce() -> B,
) -> (A, B) {
    // The side work waits here until a thread takes it, so that it is still at hand
    // when none can be started.
    let work = Mutex::new(Some(side));
    let take = || work.lock().ok().and_then(|mut slot| slot.take());
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn_scoped(scope, || take().map(|side| side()));
        let b = here();
        let done = match thread.map(std::thread::ScopedJoinHandle::join) {
            Ok(Ok(done)) => done,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => None,
        };
        match done.or_else(|| take().map(|side| side())) {
            Some(a) => (a, b),
            // Whoever took the work ran it: the thread, or this fallback.
            None => unreachable!("side work taken without being run"),
        }
    })
}

/// Record and index changes in a group from which, with immediate durability, the next
/// root is built beside the commit while it syncs. A smaller group's root takes less
/// time to build than a thread takes to start.
pub(crate) const BUILD_ROOT_BESIDE_COMMIT_FROM: usize = 64;

/// Record and multi-index writes in a group (over two tables or more) from which the
/// group's tables are written on two threads. Below this, starting a thread costs more
/// than it saves.
pub(crate) const WRITE_TABLES_BESIDE_FROM: usize = 1024;

/// Multi-index changes in one group from which a view's multi indexes are updated in
/// memory beside its records and unique indexes.
pub(crate) const MULTI_INDEXES_BESIDE_FROM: usize = 2_048;

/// Stored records (tombstones included) from which a view is read from the file in two
/// key ranges at once when it loads.
pub(crate) const LOAD_IN_TWO_FROM: u64 = 50_000;

/// Records of a view from which its stored indexes are built from the records at open
/// on two threads, one index at a time on each.
pub(crate) const BUILD_INDEXES_IN_TWO_FROM: usize = 10_000;

#[cfg(test)]
mod tests {
    use super::beside;

    #[test]
    fn both_run_and_the_side_runs_on_its_own_named_thread() {
        let (side, here) =
            beside("viewstore-test", || std::thread::current().name().map(String::from), || 2);
        assert_eq!((side.as_deref(), here), (Some("viewstore-test"), 2));
    }

    #[test]
    fn a_panic_on_the_side_resumes_on_the_caller() {
        let caught = std::panic::catch_unwind(|| beside("viewstore-test", || panic!("side"), || 1));
        assert!(caught.is_err());
    }
}
