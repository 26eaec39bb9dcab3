//! Unique or multi-valued indexes.

/// Whether an index key may belong to one record or to many.
///
/// Not `#[non_exhaustive]`: this is a yes-or-no question, so a `match` on it may list
/// both answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexKind {
    /// At most one record per index key: a write that would give an index key a second
    /// record fails its batch with [`Error::UniqueViolation`](crate::Error::UniqueViolation).
    Unique,
    /// Any number of records per index key.
    Multi,
}
