//! Point reads of the current root without a locked instruction.
//!
//! Loading an `ArcSwap` costs two atomic read-modify-write instructions (taking and
//! paying back a debt slot). They touch only the reading thread's own memory, but they
//! are full barriers: a tight loop of reads cannot overlap one read's cache misses with
//! the next one's, which makes a read from a large view about twice as slow as a plain
//! hash map lookup. Instead, each thread keeps the root it last read, with the store's
//! generation at that time; a read compares the generation (one plain load) and uses
//! the kept root while nothing was published since.
//!
//! The cost: a thread keeps one root of the store it read last alive until it reads
//! again (or reads another store, or exits), like a snapshot it holds. Dropping a store
//! clears the dropping thread's entry.

use super::{Published, Root};
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The root a thread read last: (store's published id, generation, root).
type Kept = Option<(u64, u64, Arc<Root>)>;

thread_local! {
    static KEPT: RefCell<Kept> = const { RefCell::new(None) };
}

impl Published {
    /// Runs `f` on the current root. Writes no shared memory and runs no locked
    /// instruction unless a group was published since this thread's last read.
    #[inline]
    pub(crate) fn with_root<R, F: FnOnce(&Root) -> R>(&self, f: F) -> R {
        let generation = self.generation.load(Ordering::Acquire);
        // Fast path: the kept root is current. It stays borrowed (shared) while `f` runs,
        // so a read nested in `f` takes this path too, or the slow one without keeping.
        let mut f = Some(f);
        let fast = KEPT.try_with(|cell| {
            let kept = cell.try_borrow().ok()?;
            match &*kept {
                Some((id, g, root)) if *id == self.id && *g == generation => Some(f.take()?(root)),
                _ => None,
            }
        });
        match (fast, f) {
            (Ok(Some(out)), _) => out,
            (_, Some(f)) => self.with_new_root(generation, f),
            // `f` ran only if it returned.
            (_, None) => unreachable!("a read ran without returning"),
        }
    }

    /// Loads the current root, keeps it for this thread's next reads, and runs `f`.
    #[cold]
    fn with_new_root<R>(&self, generation: u64, f: impl FnOnce(&Root) -> R) -> R {
        let root = self.root.load_full();
        let out = f(&root);
        // Another store's root, or an older one of this store, is let go here. A read
        // made from inside `f` may have kept a newer root meanwhile: keep the newest.
        let _ = KEPT.try_with(|cell| {
            if let Ok(mut kept) = cell.try_borrow_mut()
                && kept.as_ref().is_none_or(|(id, g, _)| *id != self.id || *g <= generation)
            {
                *kept = Some((self.id, generation, root));
            }
        });
        out
    }

    /// Lets go of this thread's kept root of this store.
    pub(crate) fn forget_kept(&self) {
        let _ = KEPT.try_with(|cell| {
            if let Ok(mut kept) = cell.try_borrow_mut()
                && kept.as_ref().is_some_and(|(id, _, _)| *id == self.id)
            {
                *kept = None;
            }
        });
    }
}
