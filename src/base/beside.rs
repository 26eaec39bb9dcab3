//! Two pieces of work at once: one on a scoped thread of its own, one on the caller's.

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
