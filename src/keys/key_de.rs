//! Decoding of the order-preserving key encoding (the inverse of [`super::key`]).

use super::key::KeyCodecError;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

/// Decodes a whole encoded key; trailing bytes are an error.
pub(crate) fn decode_key<K: DeserializeOwned>(bytes: &[u8]) -> Result<K, KeyCodecError> {
    let mut de = KeyDeserializer { input: bytes };
    let key = K::deserialize(&mut de)?;
    if de.input.is_empty() {
        Ok(key)
    } else {
        Err(KeyCodecError(format!("{} trailing bytes after the key", de.input.len())))
    }
}

/// Decodes a whole encoded key with `seed`, for reading keys without their Rust type;
/// trailing bytes are an error.
#[cfg(feature = "inspect")]
pub(crate) fn decode_key_seed<'de, S: DeserializeSeed<'de>>(
    bytes: &'de [u8],
    seed: S,
) -> Result<S::Value, KeyCodecError> {
    let mut de = KeyDeserializer { input: bytes };
    let key = seed.deserialize(&mut de)?;
    if de.input.is_empty() {
        Ok(key)
    } else {
        Err(KeyCodecError(format!("{} trailing bytes after the key", de.input.len())))
    }
}

struct KeyDeserializer<'de> {
    input: &'de [u8],
}

impl KeyDeserializer<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], KeyCodecError> {
        if self.input.len() < N {
            return Err(KeyCodecError("key bytes end too early".into()));
        }
        let (head, rest) = self.input.split_at(N);
        self.input = rest;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }

    fn escaped(&mut self) -> Result<Vec<u8>, KeyCodecError> {
        let mut out = Vec::new();
        loop {
            let [b] = self.take::<1>()?;
            if b != 0 {
                out.push(b);
                continue;
            }
            match self.take::<1>()? {
                [0] => return Ok(out),
                [0xFF] => out.push(0),
                [other] => {
                    return Err(KeyCodecError(format!("bad escape 0x00 0x{other:02x} in key")));
                }
            }
        }
    }

    fn string(&mut self) -> Result<String, KeyCodecError> {
        String::from_utf8(self.escaped()?)
            .map_err(|_| KeyCodecError("key string is not UTF-8".into()))
    }
}

fn unsupported<T>(what: &str) -> Result<T, KeyCodecError> {
    Err(KeyCodecError(format!("{what} cannot be decoded from a key")))
}

impl<'de> de::Deserializer<'de> for &mut KeyDeserializer<'de> {
    type Error = KeyCodecError;

    fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, KeyCodecError> {
        unsupported("a self-describing type")
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, KeyCodecError> {
        match self.take::<1>()? {
            [0] => v.visit_bool(false),
            [1] => v.visit_bool(true),
            [b] => Err(KeyCodecError(format!("bad bool byte 0x{b:02x} in key"))),
        }
    }
    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, KeyCodecError> {
        v.visit_i8((u8::from_be_bytes(self.take()?) ^ 0x80).cast_signed())
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, KeyCodecError> {
        v.visit_i16((u16::from_be_bytes(self.take()?) ^ (1 << 15)).cast_signed())
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, KeyCodecError> {
        v.visit_i32((u32::from_be_bytes(self.take()?) ^ (1 << 31)).cast_signed())
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, KeyCodecError> {
        v.visit_i64((u64::from_be_bytes(self.take()?) ^ (1 << 63)).cast_signed())
    }
    fn deserialize_i128<V: Visitor<'de>>(self, v: V) -> Result<V::Value, KeyCodecError> {
        v.visit_i128((u128::from_be_bytes(self.take()?) ^ (1 << 127)).cast_signed())
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, KeyCodecError> {
        v.visit_u8(u8::from_be_bytes(self.take()?))
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, KeyCodecError> {
        v.visit_u16(u16::from_be_bytes(self.take()?))
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, KeyCodecError> {
        v.visit_u32(u32::from_be_bytes(self.take()?))
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, KeyCodecError> {
        v.visit_u64(u64::from_be_bytes(self.take()?))
    }
    fn deserialize_u128<V: Visitor<'de>>(self, v: V) -> Result<V::Value, KeyCodecError> {
        v.visit_u128(u128::from_be_bytes(self.take()?))
    }
    fn deserialize_f32<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, KeyCodecError> {
        unsupported("f32")
    }
    fn deserialize_f64<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, KeyCodecError> {
        unsupported("f64")
    }
    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, KeyCodecError> {
        let code = u32::from_be_bytes(self.take()?);
        let c = char::from_u32(code)
            .ok_or_else(|| KeyCodecError(format!("0x{code:x} is not a char")))?;
        v.visit_char(c)
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, KeyCodecError> {
        v.visit_string(self.string()?)
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, KeyCodecError> {
        v.visit_string(self.string()?)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, KeyCodecError> {
        v.visit_byte_buf(self.escaped()?)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, KeyCodecError> {
        v.visit_byte_buf(self.escaped()?)
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, KeyCodecError> {
        match self.take::<1>()? {
            [0] => v.visit_none(),
            [1] => v.visit_some(self),
            [b] => Err(KeyCodecError(format!("bad option tag 0x{b:02x} in key"))),
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, KeyCodecError> {
        v.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, KeyCodecError> {
        v.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, KeyCodecError> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, KeyCodecError> {
        v.visit_seq(Terminated { de: self })
    }
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        v: V,
    ) -> Result<V::Value, KeyCodecError> {
        v.visit_seq(Counted { de: self, left: len })
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, KeyCodecError> {
        v.visit_seq(Counted { de: self, left: len })
    }
    fn deserialize_map<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, KeyCodecError> {
        unsupported("a map")
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, KeyCodecError> {
        v.visit_seq(Counted { de: self, left: fields.len() })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, KeyCodecError> {
        v.visit_enum(self)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, KeyCodecError> {
        unsupported("an identifier")
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, KeyCodecError> {
        unsupported("an ignored value")
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// Elements of a sequence, each preceded by 0x01, ended by 0x00.
struct Terminated<'a, 'de> {
    de: &'a mut KeyDeserializer<'de>,
}

impl<'de> de::SeqAccess<'de> for Terminated<'_, 'de> {
    type Error = KeyCodecError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, KeyCodecError> {
        match self.de.take::<1>()? {
            [0] => Ok(None),
            [1] => seed.deserialize(&mut *self.de).map(Some),
            [b] => Err(KeyCodecError(format!("bad sequence tag 0x{b:02x} in key"))),
        }
    }
}

/// A fixed number of fields written back to back.
struct Counted<'a, 'de> {
    de: &'a mut KeyDeserializer<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Counted<'_, 'de> {
    type Error = KeyCodecError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, KeyCodecError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::EnumAccess<'de> for &mut KeyDeserializer<'de> {
    type Error = KeyCodecError;
    type Variant = Self;
    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self), KeyCodecError> {
        let index = u32::from_be_bytes(self.take()?);
        let value = seed.deserialize(index.into_deserializer())?;
        Ok((value, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut KeyDeserializer<'de> {
    type Error = KeyCodecError;
    fn unit_variant(self) -> Result<(), KeyCodecError> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, KeyCodecError> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, KeyCodecError> {
        v.visit_seq(Counted { de: self, left: len })
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, KeyCodecError> {
        v.visit_seq(Counted { de: self, left: fields.len() })
    }
}
