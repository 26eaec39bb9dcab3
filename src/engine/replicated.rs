//! The writer's side of replication: which batches a store takes in its role (a
//! replica takes only replicated groups), and the answer to a replicated group that
//! must not commit: one the store has already, or one whose predecessor it lacks.

use crate::base::error::Error;
use crate::base::version::{Lsn, Outcome};
use crate::engine::apply::Committed;
use crate::engine::writer::Writer;
use crate::schema::op::Submission;

impl Writer {
    /// Why `batch` cannot be applied to this store: an ordinary batch on a replica, or
    /// a replicated group on a store that is not one.
    pub(super) fn wrong_role(&self, batch: &Submission) -> Option<Error> {
        let reason = match (self.config.replica, batch.replicated) {
            (true, None) => {
                "the store is a replica: it takes only groups replicated from its primary \
                 (open it without `replica(true)` to promote it)"
            }
            (false, Some(_)) => {
                "the store is not a replica: open it with `StoreBuilder::replica(true)` to \
                 apply replicated groups"
            }
            _ => return None,
        };
        Some(Error::Replication {
            file: self.config.path.clone(),
            view: None,
            reason: reason.into(),
        })
    }

    /// The answer to `batches` when they are a replicated group that must not commit:
    /// skipped whole (a redelivery) when the store has its LSN, failed when the group
    /// submitted before it is missing. `None` when it commits (or is not replicated).
    pub(super) fn replicated_answer(
        &self,
        batches: &[Submission],
    ) -> Option<(Lsn, Vec<crate::base::error::Result<Committed>>)> {
        let [only] = batches else { return None };
        let at = only.replicated?;
        if at <= self.lsn {
            let had = Committed {
                outcomes: vec![Outcome::Redelivered; only.ops.len()],
                redelivery: true,
                fell_back: false,
                deleted: 0,
            };
            return Some((self.lsn, vec![Ok(had)]));
        }
        let after = only.replicated_after.filter(|&after| after > self.lsn)?;
        let reason = format!(
            "the group at lsn {at} follows the group at lsn {after}, which this replica does \
             not have (it failed): nothing after it applies"
        );
        let file = self.config.path.clone();
        Some((self.lsn, vec![Err(Error::Replication { file, view: None, reason })]))
    }
}
