//! Size limits of keys and values, and the most sources a view may declare.

/// The longest encoded key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// The longest encoded value, in bytes.
pub const MAX_VALUE_BYTES: usize = 16 << 20;
/// The most sources a view may declare with
/// [`ViewDef::with_sources`](crate::ViewDef::with_sources).
pub const MAX_SOURCES: usize = 64;
