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

pub(crate) fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

struct KeySerializer<'a> {
    out: &'a mut Vec<u8>,
}

fn refuse<T>(what: &str) -> Result<T, KeyCodecError> {
    Err(KeyCodecError(format!("{what} cannot be part of a key (no total byte order)")))
}

/// Integer serializers: big-endian bytes of the value as an unsigned integer whose
/// order matches the type's (see `OrderedBits`).
macro_rules! big_endian {
    ($($method:ident: $t:ty),*) => {$(
        fn $method(self, v: $t) -> Result<(), KeyCodecError> {
            self.out.extend_from_slice(&v.ordered_bits().to_be_bytes());
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

impl ser::Serializer for &mut KeySerializer<'_> {
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
        self.out.extend_from_slice(&u32::from(v).to_be_bytes());
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
        self.out.extend_from_slice(&variant_index.to_be_bytes());
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
        self.out.extend_from_slice(&variant_index.to_be_bytes());
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
        self.out.extend_from_slice(&variant_index.to_be_bytes());
        Ok(self)
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

impl ser::SerializeSeq for &mut KeySerializer<'_> {
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
        impl ser::$trait for &mut KeySerializer<'_> {
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
        impl ser::$trait for &mut KeySerializer<'_> {
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
