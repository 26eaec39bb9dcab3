//! Value codecs: the [`Codec`] trait and the default, [`Bincode`].

use crate::base::error::CodecError;
use crate::base::shape::Shape;
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

    /// The shape of the values this codec writes, recorded in the file so that a value
    /// type that changes shape without a new schema version is refused at open
    /// ([`Error::SchemaMismatch`](crate::Error::SchemaMismatch) naming what changed).
    /// `Err` says why there is none: the view then opens on its type names and schema
    /// version alone, and the file records "shape unknown" with that reason.
    ///
    /// Default = no shape. [`Bincode`] traces `V` with [`Shape::of`]; a codec whose bytes
    /// follow `V`'s serde shape can do the same.
    fn value_shape(&self) -> Result<Shape, String> {
        Err("the codec reports no shape".to_owned())
    }
}

/// The most memory, in bytes, that [`Bincode`] lets a value's containers claim while it
/// is decoded (1 GiB): a corrupt length prefix fails to decode instead of allocating.
/// Values are at most [`MAX_VALUE_BYTES`](crate::MAX_VALUE_BYTES) encoded; only one that
/// expands more than 64 times when decoded could reach it.
const DECODE_LIMIT: usize = 1 << 30;

thread_local! {
    /// The length of the last value [`Bincode`] encoded on this thread.
    static LAST_ENCODED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The default value codec: bincode 2 with its standard configuration, through serde.
///
/// Decoding refuses a value whose containers would claim more than 1 GiB of memory, so
/// that corrupt bytes fail with an error rather than a huge allocation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

impl<V: Serialize + DeserializeOwned> Codec<V> for Bincode {
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), CodecError> {
        // Room for as many bytes as this thread's last value took, so that a run of
        // similar values grows no buffer byte by byte.
        let start = out.len();
        out.reserve(LAST_ENCODED.get().clamp(16, 4096));
        bincode::serde::encode_into_std_write(value, &mut *out, bincode::config::standard())?;
        LAST_ENCODED.set(out.len() - start);
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

    fn value_shape(&self) -> Result<Shape, String> {
        Shape::of::<V>()
    }
}
