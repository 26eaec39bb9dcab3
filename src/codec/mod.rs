//! Value codecs and the order-preserving key encoding.

mod key;
mod key_buf;
mod key_de;
mod key_probe;

pub(crate) use key::{
    KeyCodecError, StackKey, encode_key, encode_key_on_stack, plain_string, word_at,
};
pub(crate) use key_buf::{INLINE, KeyBuf, KeyRef, SlotKey, WideKey};
pub(crate) use key_de::decode_key;
pub(crate) use key_probe::unencodable_part;

use crate::error::CodecError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Turns values into bytes and back.
///
/// # Invariants
///
/// `decode(encode(v))` must equal `v`. `decode` must never panic, whatever the bytes:
/// corrupt stored bytes surface as [`Error::Decode`](crate::Error::Decode) naming the
/// view and key.
///
/// # Examples
///
/// ```
/// use viewstore::{Bincode, Codec};
///
/// let mut bytes = Vec::new();
/// Bincode.encode(&(7u32, "seven".to_string()), &mut bytes)?;
/// let back: (u32, String) = Bincode.decode(&bytes)?;
/// assert_eq!(back, (7, "seven".to_string()));
/// # Ok::<(), viewstore::CodecError>(())
/// ```
pub trait Codec<V>: Send + Sync + 'static {
    /// Appends the encoding of `value` to `out`.
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), CodecError>;
    /// Decodes a value from exactly `bytes`.
    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError>;
}

/// The most memory, in bytes, that [`Bincode`] lets a value's containers claim while it
/// is decoded (1 GiB): a corrupt length prefix fails to decode instead of allocating.
/// Values are at most [`MAX_VALUE_BYTES`](crate::MAX_VALUE_BYTES) encoded; only one that
/// expands more than 64 times when decoded could reach it.
const DECODE_LIMIT: usize = 1 << 30;

/// The default value codec: bincode 2 with its standard configuration, through serde.
///
/// Decoding refuses a value whose containers would claim more than 1 GiB of memory, so
/// that corrupt bytes fail with an error rather than a huge allocation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

impl<V: Serialize + DeserializeOwned> Codec<V> for Bincode {
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), CodecError> {
        bincode::serde::encode_into_std_write(value, out, bincode::config::standard())?;
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError> {
        // Without a limit, bincode sizes a container from its length prefix before reading
        // it: a corrupt prefix panics with a capacity overflow or aborts on a huge
        // allocation. The limit changes nothing in the encoding.
        let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
        let (value, read) = bincode::serde::decode_from_slice(bytes, config)?;
        if read != bytes.len() {
            return Err(format!("{} trailing bytes after the value", bytes.len() - read).into());
        }
        Ok(value)
    }
}

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
