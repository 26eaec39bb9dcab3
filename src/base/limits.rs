//! Size limits of keys and values.

/// The longest encoded key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// The longest encoded value, in bytes.
pub const MAX_VALUE_BYTES: usize = 16 << 20;
