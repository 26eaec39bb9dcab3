//! Order-preserving key encoding: the byte order of encoded keys equals the `Ord` order of
//! the keys.
//!
//! The encoding, by serde data type:
//! - `bool`: one byte, 0 or 1.
//! - unsigned integers: big-endian, fixed width.
//! - signed integers: big-endian, fixed width, sign bit flipped (so negatives sort first).
//! - `char`: its code point as a big-endian `u32`.
//! - strings and byte strings: each 0x00 byte written as 0x00 0xFF, then the terminator
//!   0x00 0x00; a shorter string sorts before every string it is a prefix of.
//! - sequences (`Vec<T>`, also `Vec<u8>`): each element preceded by 0x01, then 0x00.
//! - `Option`: 0x00 for `None`, 0x01 then the value for `Some`.
//! - unit, unit structs: nothing. Newtypes: their content.
//! - tuples, tuple structs, structs: their fields in order.
//! - enums: the variant index as a big-endian `u32`, then the content.
//!
//! Floats and maps have no total byte order and are refused with an error.

use super::key_buf::{INLINE, KeyRef, has_zero, word_at, zero_bytes};
use serde::ser::{self, Serialize};
use std::fmt;

/// Why a key could not be encoded or decoded.
#[derive(Debug)]
pub(crate) struct KeyCodecError(pub(crate) String);

impl fmt::Display for KeyCodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyCodecError {}

impl ser::Error for KeyCodecError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        KeyCodecError(msg.to_string())
    }
}

impl serde::de::Error for KeyCodecError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        KeyCodecError(msg.to_string())
    }
}

/// Appends the order-preserving encoding of `key` to `out`.
pub(crate) fn encode_key<K: Serialize + ?Sized>(
    key: &K,
    out: &mut Vec<u8>,
) -> Result<(), KeyCodecError> {
    key.serialize(&mut KeySerializer { out })
}

/// Encodes `key` into `out`, a fresh [`StackKey`], without touching the heap or a
/// thread-local: a key of up to 14 bytes is assembled in a register-sized word. `None`
/// when the key cannot be encoded (such a key cannot be stored either).
///
/// Always inlined, with [`StackKey`]'s short-key writes: built where it is used, a short
/// key stays in registers. The caller owns `out`, so that a longer key is written once,
/// in place: returned by value, it would be copied in pieces of other sizes than it was
/// written in, and each such copy waits for earlier reads' misses.
#[inline(always)]
#[allow(
    clippy::inline_always,
    reason = "a key must not pass through memory: see `encode_key_on_stack`"
)]
pub(crate) fn encode_key_on_stack<K: Serialize + ?Sized>(
    key: &K,
    out: &mut StackKey,
) -> Option<()> {
    key.serialize(&mut KeySerializer { out }).ok()
}

/// Where the key serializer writes.
trait KeySink {
    fn extend_from_slice(&mut self, bytes: &[u8]);

    /// Appends the first `n` bytes of `word`'s little-endian bytes.
    #[inline]
    fn put_word(&mut self, word: u128, n: usize) {
        self.extend_from_slice(&word.to_le_bytes()[..n]);
    }

    #[inline]
    fn push(&mut self, byte: u8) {
        self.put_word(u128::from(byte), 1);
    }

    /// Appends `bytes` (which hold no zero byte) and the terminator 0x00 0x00.
    #[inline]
    fn put_terminated(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
        self.put_word(0, 2);
    }

    /// Writes `bytes` and the terminator at once when they are the whole key and hold
    /// no zero byte; `false` (nothing written) otherwise.
    #[inline]
    fn put_plain(&mut self, _bytes: &[u8]) -> bool {
        false
    }
}

impl KeySink for Vec<u8> {
    #[inline]
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        Vec::extend_from_slice(self, bytes);
    }
}

/// Words of a long key kept on the stack before a [`StackKey`] moves to the heap.
const STACK_WORDS: usize = 6;
/// Bytes of a long key kept on the stack.
const STACK_BYTES: usize = 8 * STACK_WORDS;

/// An encoded key, built for a point read, whose bytes are only ever written and read
/// back as whole words at the same offsets.
///
/// A key of up to 14 bytes stays in `lo` and `hi` (byte `i` at bits `8 * i` of the
/// two as one 128-bit word, zero past the length). A longer one, up to 48 bytes, is in `words`, as little-endian 64-bit words
/// (zero past the length), each stored whole and read whole by hashing and comparing.
/// Longer keys go to `spill`. The reason: a read that stored its key bytes in pieces
/// and loaded them back as words at other offsets would wait for those stores to
/// complete, and so for every earlier read's cache misses, instead of overlapping them.
pub(crate) struct StackKey {
    len: usize,
    lo: u64,
    hi: u64,
    /// Bytes 6 to 13 of a short key, kept as a word of its own (see [`StackKey::probe`]).
    tail: u64,
    /// Whether the bytes have moved from `lo` and `hi` to `words` (or on to `spill`).
    long: bool,
    words: [u64; STACK_WORDS],
    spill: Vec<u8>,
}

impl StackKey {
    /// An empty key, to encode one into with [`encode_key_on_stack`].
    #[inline(always)]
    #[allow(
        clippy::inline_always,
        reason = "a key must not pass through memory: see `encode_key_on_stack`"
    )]
    pub(crate) fn new() -> Self {
        StackKey {
            len: 0,
            lo: 0,
            hi: 0,
            tail: 0,
            long: false,
            words: [0; STACK_WORDS],
            spill: Vec::new(),
        }
    }

    /// The bytes of a short key, byte `i` at bits `8 * i`.
    fn word(&self) -> u128 {
        u128::from(self.lo) | u128::from(self.hi) << 64
    }

    /// Runs `f` on the key's bytes.
    pub(crate) fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        if self.len <= INLINE {
            let bytes = self.word().to_le_bytes();
            f(&bytes[..self.len])
        } else if self.spill.is_empty() {
            let mut bytes = [0u8; STACK_BYTES];
            for (to, word) in bytes.chunks_exact_mut(8).zip(self.words) {
                to.copy_from_slice(&word.to_le_bytes());
            }
            f(&bytes[..self.len])
        } else {
            f(&self.spill)
        }
    }

    /// The key to probe an index with.
    #[inline(always)]
    #[allow(
        clippy::inline_always,
        reason = "a key must not pass through memory: see `encode_key_on_stack`"
    )]
    pub(crate) fn probe(&self) -> KeyRef<'_> {
        if self.len <= INLINE {
            KeyRef::Inline {
                len: self.len as u8,
                head: self.lo,
                // Stored whole when the key was written: reading bytes 6 to 13 out of
                // `lo` and `hi` would load one word across two stores.
                tail: self.tail,
            }
        } else if self.spill.is_empty() {
            let used = self.len.div_ceil(8).min(STACK_WORDS);
            KeyRef::Words { len: self.len, words: &self.words[..used] }
        } else {
            KeyRef::Long(&self.spill)
        }
    }

    /// Moves the bytes from the inline word to the words, once.
    #[inline]
    fn enter_words(&mut self) {
        if !self.long {
            self.words[0] = self.lo;
            self.words[1] = self.hi;
            self.long = true;
        }
    }

    /// Appends `n` bytes given as little-endian words (zero past the `n`th byte) to a
    /// key longer than the inline limit, or about to become one.
    #[inline]
    fn push_words(&mut self, n: usize, words: impl Iterator<Item = u64>) {
        if !self.spill.is_empty() || self.len + n > STACK_BYTES {
            self.push_spilled(n, words);
            return;
        }
        self.enter_words();
        let shift = 8 * (self.len % 8);
        for (at, w) in (self.len / 8..).zip(words) {
            // Whole-word writes only; the bytes past the key's end stay zero.
            if let Some(word) = self.words.get_mut(at) {
                *word |= w << shift;
            }
            if shift > 0
                && let Some(next) = self.words.get_mut(at + 1)
            {
                *next = w >> (64 - shift);
            }
        }
        self.len += n;
    }

    /// [`KeySink::put_word`] past the inline limit: out of line, so that the short-key
    /// path stays small enough to inline everywhere.
    #[inline(never)]
    fn put_long_word(&mut self, word: u128, n: usize) {
        self.push_words(n, [word as u64, (word >> 64) as u64].into_iter().take(n.div_ceil(8)));
    }

    /// [`StackKey::push_words`] for a key that is, or is about to be, over 48 bytes.
    #[cold]
    fn push_spilled(&mut self, n: usize, words: impl Iterator<Item = u64>) {
        if self.spill.is_empty() {
            let mut spill = Vec::with_capacity(2 * STACK_BYTES);
            self.with_bytes(|bytes| spill.extend_from_slice(bytes));
            self.spill = spill;
        }
        let target = self.spill.len() + n;
        for w in words {
            self.spill.extend_from_slice(&w.to_le_bytes());
        }
        self.spill.truncate(target);
        self.len += n;
    }
}

impl KeySink for StackKey {
    #[inline]
    fn put_plain(&mut self, bytes: &[u8]) -> bool {
        let len = bytes.len() + 2;
        if self.len != 0 || len <= INLINE || len > STACK_BYTES {
            return false;
        }
        // A key that is one string: its words, each checked for a zero byte and stored
        // once, the terminator being the zeros past its end. The string is longer than
        // 12 bytes, so its last eight bytes give its last, partial word.
        let (full, rest) = bytes.as_chunks::<8>();
        let mut zero = 0;
        for (word, chunk) in self.words.iter_mut().zip(full) {
            *word = u64::from_le_bytes(*chunk);
            zero |= zero_bytes(*word);
        }
        if let (Some(word), Some(last)) = (self.words.get_mut(full.len()), bytes.last_chunk())
            && !rest.is_empty()
        {
            let shift = 8 * (8 - rest.len());
            *word = u64::from_le_bytes(*last) >> shift;
            // The bytes past the end read as 0xFF rather than as zeros.
            zero |= zero_bytes(*word | !(u64::MAX >> shift));
        }
        if zero != 0 {
            self.words = [0; STACK_WORDS];
            return false;
        }
        self.long = true;
        self.len = len;
        true
    }

    #[inline(always)]
    #[allow(
        clippy::inline_always,
        reason = "a key must not pass through memory: see `encode_key_on_stack`"
    )]
    fn put_word(&mut self, word: u128, n: usize) {
        if self.len + n <= INLINE {
            let word = word << (8 * self.len);
            let (lo, hi) = (self.lo | word as u64, self.hi | (word >> 64) as u64);
            self.lo = lo;
            self.hi = hi;
            self.tail = (lo >> 48) | (hi << 16);
            self.len += n;
        } else {
            self.put_long_word(word, n);
        }
    }

    #[inline]
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() <= INLINE {
            for &b in bytes {
                self.put_word(u128::from(b), 1);
            }
            return;
        }
        let words = (0..bytes.len().div_ceil(8)).map(|i| word_at(bytes, i));
        self.push_words(bytes.len(), words);
    }
}

/// Writes `bytes` with each 0x00 as 0x00 0xFF, then the terminator 0x00 0x00: the runs
/// between zero bytes are copied whole.
fn write_escaped<S: KeySink>(out: &mut S, bytes: &[u8]) {
    if out.put_plain(bytes) {
        return;
    }
    if !has_zero(bytes) {
        out.put_terminated(bytes);
        return;
    }
    let mut runs = bytes.split(|&b| b == 0);
    if let Some(first) = runs.next() {
        out.extend_from_slice(first);
    }
    for run in runs {
        out.put_word(0xFF00, 2);
        out.extend_from_slice(run);
    }
    out.put_word(0, 2);
}

struct KeySerializer<'a, S> {
    out: &'a mut S,
}

fn refuse<T>(what: &str) -> Result<T, KeyCodecError> {
    Err(KeyCodecError(format!("{what} cannot be part of a key (no total byte order)")))
}

/// Integer serializers: big-endian bytes of the value as an unsigned integer whose
/// order matches the type's (see `OrderedBits`).
macro_rules! big_endian {
    ($($method:ident: $t:ty),*) => {$(
        #[inline]
        fn $method(self, v: $t) -> Result<(), KeyCodecError> {
            // Big-endian bytes, as the low bytes of a little-endian word.
            self.out.put_word(u128::from(v.ordered_bits().swap_bytes()), size_of::<$t>());
            Ok(())
        }
    )*};
}

/// The bits of an integer as an unsigned integer of the same width that sorts the same.
trait OrderedBits {
    type Bits;
    fn ordered_bits(self) -> Self::Bits;
}

macro_rules! ordered_bits {
    ($($signed:ty => $unsigned:ty),*) => {$(
        impl OrderedBits for $signed {
            type Bits = $unsigned;
            fn ordered_bits(self) -> $unsigned {
                self.cast_unsigned() ^ (1 << (<$unsigned>::BITS - 1))
            }
        }
        impl OrderedBits for $unsigned {
            type Bits = $unsigned;
            fn ordered_bits(self) -> $unsigned {
                self
            }
        }
    )*};
}

ordered_bits!(i8 => u8, i16 => u16, i32 => u32, i64 => u64, i128 => u128);

impl<S: KeySink> ser::Serializer for &mut KeySerializer<'_, S> {
    type Ok = ();
    type Error = KeyCodecError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = ser::Impossible<(), KeyCodecError>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Result<(), KeyCodecError> {
        self.out.push(u8::from(v));
        Ok(())
    }
    // Big-endian, fixed width; signed integers with the sign bit flipped so that
    // negatives sort first.
    big_endian!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32);
    big_endian!(serialize_i64: i64, serialize_i128: i128);
    big_endian!(serialize_u8: u8, serialize_u16: u16, serialize_u32: u32);
    big_endian!(serialize_u64: u64, serialize_u128: u128);
    fn serialize_f32(self, _v: f32) -> Result<(), KeyCodecError> {
        refuse("f32")
    }
    fn serialize_f64(self, _v: f64) -> Result<(), KeyCodecError> {
        refuse("f64")
    }
    fn serialize_char(self, v: char) -> Result<(), KeyCodecError> {
        self.out.put_word(u128::from(u32::from(v).swap_bytes()), 4);
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), KeyCodecError> {
        write_escaped(self.out, v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), KeyCodecError> {
        write_escaped(self.out, v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), KeyCodecError> {
        self.out.push(0);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), KeyCodecError> {
        self.out.push(1);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), KeyCodecError> {
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), KeyCodecError> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
    ) -> Result<(), KeyCodecError> {
        self.serialize_u32(variant_index)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), KeyCodecError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), KeyCodecError> {
        self.out.put_word(u128::from(variant_index.swap_bytes()), 4);
        value.serialize(self)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, KeyCodecError> {
        Ok(self)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self, KeyCodecError> {
        Ok(self)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self, KeyCodecError> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, KeyCodecError> {
        self.out.put_word(u128::from(variant_index.swap_bytes()), 4);
        Ok(self)
    }
    fn serialize_map(
        self,
        _len: Option<usize>,
    ) -> Result<ser::Impossible<(), KeyCodecError>, KeyCodecError> {
        refuse("a map")
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, KeyCodecError> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, KeyCodecError> {
        self.out.put_word(u128::from(variant_index.swap_bytes()), 4);
        Ok(self)
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

impl<S: KeySink> ser::SerializeSeq for &mut KeySerializer<'_, S> {
    type Ok = ();
    type Error = KeyCodecError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyCodecError> {
        self.out.push(1);
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), KeyCodecError> {
        self.out.push(0);
        Ok(())
    }
}

macro_rules! concatenating {
    ($trait:ident, $method:ident) => {
        impl<S: KeySink> ser::$trait for &mut KeySerializer<'_, S> {
            type Ok = ();
            type Error = KeyCodecError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyCodecError> {
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), KeyCodecError> {
                Ok(())
            }
        }
    };
}

concatenating!(SerializeTuple, serialize_element);
concatenating!(SerializeTupleStruct, serialize_field);
concatenating!(SerializeTupleVariant, serialize_field);

macro_rules! concatenating_fields {
    ($trait:ident) => {
        impl<S: KeySink> ser::$trait for &mut KeySerializer<'_, S> {
            type Ok = ();
            type Error = KeyCodecError;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                _key: &'static str,
                value: &T,
            ) -> Result<(), KeyCodecError> {
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), KeyCodecError> {
                Ok(())
            }
        }
    };
}

concatenating_fields!(SerializeStruct);
concatenating_fields!(SerializeStructVariant);

#[cfg(test)]
#[path = "key_tests.rs"]
mod tests;
