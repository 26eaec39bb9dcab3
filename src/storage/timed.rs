//! A storage backend that times each sync of the file to disk, around redb's own file
//! backend or a caller's backend. Everything else is passed through unchanged, file
//! locks included, so a store opens, locks and fails exactly as without it.

use crate::base::histogram::Recorder;
use crate::base::instrument;
use redb::{BackendError, StorageBackend};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Instant;

/// `inner`, with the duration of every `sync_data` recorded in `syncs`.
#[derive(Debug)]
pub(crate) struct Timed<B> {
    pub(crate) inner: B,
    pub(crate) syncs: Arc<Recorder>,
}

impl<B: StorageBackend> StorageBackend for Timed<B> {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        let started = Instant::now();
        let synced = self.inner.sync_data();
        let took = started.elapsed();
        self.syncs.record_duration(took);
        instrument::seconds(instrument::SYNC_SECONDS, took);
        synced
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), std::io::Error> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
