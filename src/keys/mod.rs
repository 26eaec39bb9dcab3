//! The order-preserving key encoding: encoding and decoding, inline key buffers,
//! composite index keys, what scans by prefix select, the check of key types, and keys
//! rendered for messages.

mod composite;
mod key;
mod key_buf;
mod key_de;
mod key_probe;
mod plain;
mod prefix;

pub(crate) use composite::{composite, prefix_bounds, prefix_successor};
pub(crate) use key::{KeyCodecError, StackKey, encode_key, encode_key_on_stack};
pub(crate) use key_buf::{INLINE, KeyBuf, KeyRef, SlotKey, WideKey, word_at};
pub(crate) use key_de::decode_key;
#[cfg(feature = "inspect")]
pub(crate) use key_de::decode_key_seed;
pub(crate) use key_probe::unencodable_part;
pub(crate) use plain::with_plain_string;
pub use prefix::CompositeKey;
pub(crate) use prefix::string_start;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Encodes `key` into a [`KeyBuf`], mapping failures to a plain message.
pub(crate) fn key_bytes<K: Serialize + ?Sized>(key: &K) -> Result<KeyBuf, KeyCodecError> {
    let mut out = Vec::with_capacity(16);
    encode_key(key, &mut out)?;
    Ok(KeyBuf::from_slice(&out))
}

/// Renders an encoded key for error messages: its decoded `Debug` form when it decodes,
/// its bytes in hex otherwise.
/// A panic in the key's `Deserialize` or `Debug` (user code, run on the writer thread
/// for error messages) gives the hex form instead.
pub(crate) fn render_key<K: DeserializeOwned + std::fmt::Debug>(bytes: &[u8]) -> String {
    let rendered = std::panic::catch_unwind(|| decode_key::<K>(bytes).map(|k| format!("{k:?}")));
    match rendered {
        Ok(Ok(text)) => text,
        Ok(Err(_)) | Err(_) => render_bytes(bytes),
    }
}

/// Hex form of raw key bytes.
pub(crate) fn render_bytes(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::from("0x");
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
