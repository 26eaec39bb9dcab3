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
    pub(crate) fn with_root<R>(&self, f: impl FnOnce(&Root) -> R) -> R {
        let generation = self.generation.load(Ordering::Acquire);
        let kept = KEPT.with(|cell| {
            let mut kept = cell.try_borrow_mut().ok()?;
            match kept.take() {
                Some((id, g, root)) if id == self.id && g == generation => Some(root),
                // Another store's root, or an older one of this store: let it go.
                _ => None,
            }
        });
        let root = kept.unwrap_or_else(|| self.root.load_full());
        let out = f(&root);
        KEPT.with(|cell| {
            // A read made from inside `f` may have left its own root: keep the newest.
            if let Ok(mut kept) = cell.try_borrow_mut() {
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
