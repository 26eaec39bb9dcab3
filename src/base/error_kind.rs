//! Whose failure an [`Error`] is, and whether trying again may help.

use crate::base::error::{Error, ErrorKind};

impl Error {
    /// Whose failure this is: the caller's input ([`ErrorKind::Input`]), one batch's
    /// ([`ErrorKind::Batch`]) or the store's ([`ErrorKind::Store`]). A [`Ticket`]
    /// can resolve with any of them, so match on this rather than on every variant.
    ///
    /// | Kind | Variants |
    /// |---|---|
    /// | `Input` | `NotAStore`, `NewerFormat`, `SchemaMismatch`, `InvalidViewName`, `ForeignView`, `InvalidSource`, `UnknownSource`, `SourceRequired`, `KeyTooLarge`, `KeyEncoding`, `AlreadyOpen`, `Import`, `Migration`, `WriterReentry`, `InvalidPosition`, `FeedPruned`, `Replication`, `Full`; `ValueTooLarge` and `Encode` of a value given to the batch; `InvalidIndex` of a definition (`key: None`) |
    /// | `Batch` | `UniqueViolation`, `UpdatePanicked`, `IndexPanicked`, `IndexKeyTooLarge`, `Decode`, `PositionGap`, `PartialRedelivery`, `EventFailed`; `ValueTooLarge` and `Encode` of an `update` closure's result (`from_update: true`); `InvalidIndex` of one record's index key (`key: Some`) |
    /// | `Store` | `Storage`, `Io`, `JournalCorrupt`, `Poisoned`, `Closed`, `SourceFailed` |
    ///
    /// # Examples
    ///
    /// Retrying what may pass later, skipping a batch that failed on its own, and giving
    /// up on the rest:
    ///
    /// ```
    /// use std::time::Duration;
    /// use viewstore::{Batch, Error, ErrorKind, Receipt, Store, View, ViewDef};
    ///
    /// const COUNTS: ViewDef<String, u64> = ViewDef::new("counts");
    ///
    /// /// Counts one more `name` at `version`; `Ok(None)` when only this batch failed.
    /// fn count(
    ///     store: &Store,
    ///     counts: &View<String, u64>,
    ///     name: &str,
    ///     version: u64,
    /// ) -> Result<Option<Receipt>, Error> {
    ///     let mut attempt = 0;
    ///     loop {
    ///         attempt += 1;
    ///         let mut batch = Batch::new();
    ///         batch.update(counts, &name.to_owned(), version, |n| Some(n.map_or(1, |n| n + 1)))?;
    ///         let err = match store.try_submit(batch).and_then(|ticket| ticket.wait()) {
    ///             Ok(receipt) => return Ok(Some(receipt)),
    ///             Err(err) => err,
    ///         };
    ///         // A full queue or a failed commit: the same batch may pass later.
    ///         if err.is_retryable() && attempt < 5 {
    ///             std::thread::sleep(Duration::from_millis(10 * attempt));
    ///             continue;
    ///         }
    ///         match err.kind() {
    ///             // This batch failed on its own (a unique violation, a panicking
    ///             // closure...): nothing of it was written, the store goes on.
    ///             ErrorKind::Batch => return Ok(None),
    ///             // A mistake in the call, or a store that cannot write.
    ///             _ => return Err(err),
    ///         }
    ///     }
    /// }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("views.redb"))?;
    /// let counts = store.view(&COUNTS)?;
    /// assert!(count(&store, &counts, "visits", 1)?.is_some());
    /// assert_eq!(counts.get(&"visits".to_owned()).as_deref(), Some(&1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`Ticket`]: crate::Ticket
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotAStore { .. }
            | Error::NewerFormat { .. }
            | Error::SchemaMismatch { .. }
            | Error::InvalidViewName { .. }
            | Error::ForeignView { .. }
            | Error::InvalidSource { .. }
            | Error::UnknownSource { .. }
            | Error::SourceRequired { .. }
            | Error::KeyTooLarge { .. }
            | Error::KeyEncoding { .. }
            | Error::AlreadyOpen { .. }
            | Error::Import { .. }
            | Error::WriterReentry { .. }
            | Error::InvalidPosition { .. }
            | Error::FeedPruned { .. }
            | Error::Replication { .. }
            | Error::UnknownView { .. }
            | Error::ViewExists { .. }
            | Error::ViewOpen { .. }
            | Error::Migration { .. }
            | Error::BulkLoad { .. }
            | Error::FileExists { .. }
            | Error::Full => ErrorKind::Input,
            Error::ValueTooLarge { from_update, .. } | Error::Encode { from_update, .. } => {
                if *from_update {
                    ErrorKind::Batch
                } else {
                    ErrorKind::Input
                }
            }
            Error::InvalidIndex { key, .. } => {
                if key.is_some() {
                    ErrorKind::Batch
                } else {
                    ErrorKind::Input
                }
            }
            Error::Decode { .. }
            | Error::UpdatePanicked { .. }
            | Error::UniqueViolation { .. }
            | Error::IndexPanicked { .. }
            | Error::IndexKeyTooLarge { .. }
            | Error::PositionGap { .. }
            | Error::PartialRedelivery { .. }
            | Error::EventFailed { .. } => ErrorKind::Batch,
            Error::Storage { .. }
            | Error::Io { .. }
            | Error::JournalCorrupt { .. }
            | Error::Poisoned { .. }
            | Error::Closed
            | Error::UnknownTable { .. }
            | Error::SourceFailed { .. } => ErrorKind::Store,
        }
    }

    /// Whether the same operation, made again unchanged after a pause, may succeed:
    /// `true` for [`Error::Full`] (the queue drains), [`Error::SourceFailed`], and for a failure of the storage,
    /// [`Error::Storage`] and [`Error::Io`], which may be passing (a full disk, an I/O
    /// error): after a failed commit the writer reopens the database and takes new
    /// batches, and if it cannot, later calls return [`Error::Poisoned`]. A storage
    /// failure may also last (a corrupt file), so bound the retries.
    ///
    /// `false` for everything else: [`Error::Poisoned`] and [`Error::Closed`] (this
    /// `Store` will not write again), every [`ErrorKind::Batch`] error (the same batch
    /// meets the same data and code), and every other [`ErrorKind::Input`] error
    /// (the same call is refused again; [`Error::AlreadyOpen`] only passes once the
    /// other holder of the file closes it).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Full | Error::Storage { .. } | Error::Io { .. } | Error::SourceFailed { .. }
        )
    }
}
