//! What `Store::verify` reports: each difference between a view's records, its indexes,
//! the file and memory.

use crate::base::version::Lsn;
use std::fmt;

/// Where a difference was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// Expected from the records, but not stored on disk.
    MissingOnDisk,
    /// Stored on disk, but not expected from the records.
    ExtraOnDisk,
    /// Expected, but not held in memory.
    MissingInMemory,
    /// Held in memory, but not expected.
    ExtraInMemory,
    /// A record whose version in memory differs from the one on disk.
    VersionMismatch,
    /// A record whose index keys could not be extracted.
    ExtractorFailed,
}

/// One difference found by [`Store::verify`](crate::Store::verify).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The view.
    pub view: String,
    /// The index, or `None` for the view's records.
    pub index: Option<String>,
    /// The record key, or the index key and record key, in `Debug` form.
    pub key: String,
    /// What is wrong.
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.index {
            Some(index) => write!(
                f,
                "view '{}', index '{index}', entry {}: {:?}",
                self.view, self.key, self.kind
            ),
            None => write!(f, "view '{}', record {}: {:?}", self.view, self.key, self.kind),
        }
    }
}

/// The result of [`Store::verify`](crate::Store::verify).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The LSN the check ran at.
    pub lsn: Lsn,
    /// Views checked (those opened in this process).
    pub views: usize,
    /// Records compared.
    pub records: u64,
    /// Index entries compared.
    pub index_entries: u64,
    /// Every difference found.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether no difference was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Reports the keys of `expected` missing from `found` as `missing`, and those of
/// `found` missing from `expected` as `extra`.
pub(crate) fn compare<K: Ord, V>(
    expected: &std::collections::BTreeMap<K, V>,
    found: &std::collections::BTreeMap<K, V>,
    missing: ProblemKind,
    extra: ProblemKind,
    mut report: impl FnMut(&K, &V, ProblemKind),
) {
    for (k, v) in expected {
        if !found.contains_key(k) {
            report(k, v, missing);
        }
    }
    for (k, v) in found {
        if !expected.contains_key(k) {
            report(k, v, extra);
        }
    }
}
