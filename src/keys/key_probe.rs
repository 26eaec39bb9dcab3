//! Checks, before a view is opened, that its key type can be encoded at all: runs the
//! type's `Deserialize` against a probe that hands it placeholder values and refuses
//! what the key encoding refuses (floats, maps, self-describing types). Each enum is
//! tried variant by variant, so that a float inside any variant is found.
//!
//! The probe only refuses on proof: a type whose `Deserialize` rejects the placeholder
//! values (a validating newtype, say) passes, and any real problem shows at its first
//! write as before.

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, SeqAccess,
    VariantAccess, Visitor,
};
use std::fmt;

/// How deep nested types are followed; a recursive type stops there, unproven.
const MAX_DEPTH: usize = 32;
/// How many variants of each enum are tried.
const MAX_VARIANTS: u32 = 64;

/// Why a probe run ended.
#[derive(Debug)]
enum Stop {
    /// The key encoding cannot encode this part of the type.
    Refused(&'static str),
    /// The type's own `Deserialize` failed, or the type is too deep: nothing proven.
    Inconclusive,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Refused(what) => write!(f, "{what}"),
            Stop::Inconclusive => f.write_str("inconclusive"),
        }
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Stop::Inconclusive
    }
}

/// `Err` with what cannot be encoded when `K` holds a part the key encoding refuses
/// in some variant; `Ok` otherwise (including when nothing could be proven).
pub(crate) fn unencodable_part<K: DeserializeOwned>() -> Result<(), &'static str> {
    let mut variant = 0;
    loop {
        let mut probe = Probe { depth: 0, variant, widest: 0 };
        match K::deserialize(&mut probe) {
            Err(Stop::Refused(what)) => return Err(what),
            Ok(_) | Err(Stop::Inconclusive) => {}
        }
        variant += 1;
        if variant >= probe.widest || variant >= MAX_VARIANTS {
            return Ok(());
        }
    }
}

struct Probe {
    depth: usize,
    /// The variant every enum takes in this run (the last one when it has fewer).
    variant: u32,
    /// The most variants an enum met in this run has.
    widest: u32,
}

impl Probe {
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, Stop>) -> Result<T, Stop> {
        if self.depth >= MAX_DEPTH {
            return Err(Stop::Inconclusive);
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }
}

/// Hands out `left` placeholder elements.
struct Elements<'a> {
    probe: &'a mut Probe,
    left: usize,
}

impl<'de> SeqAccess<'de> for Elements<'_> {
    type Error = Stop;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Stop> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        self.probe.nested(|p| seed.deserialize(&mut *p)).map(Some)
    }
}

impl<'de> EnumAccess<'de> for &mut Probe {
    type Error = Stop;
    type Variant = Self;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self), Stop> {
        let index: de::value::U32Deserializer<Stop> = self.variant.into_deserializer();
        Ok((seed.deserialize(index)?, self))
    }
}

impl<'de> VariantAccess<'de> for &mut Probe {
    type Error = Stop;

    fn unit_variant(self) -> Result<(), Stop> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Stop> {
        self.nested(|p| seed.deserialize(&mut *p))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_seq(Elements { probe: self, left: len })
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_seq(Elements { probe: self, left: fields.len() })
    }
}

macro_rules! placeholder {
    ($($method:ident => $visit:ident($value:expr)),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
                visitor.$visit($value)
            }
        )*
    };
}

macro_rules! refused {
    ($($method:ident => $what:literal),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
                Err(Stop::Refused($what))
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for &mut Probe {
    type Error = Stop;

    placeholder! {
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i8(0),
        deserialize_i16 => visit_i16(0),
        deserialize_i32 => visit_i32(0),
        deserialize_i64 => visit_i64(0),
        deserialize_i128 => visit_i128(0),
        deserialize_u8 => visit_u8(0),
        deserialize_u16 => visit_u16(0),
        deserialize_u32 => visit_u32(0),
        deserialize_u64 => visit_u64(0),
        deserialize_u128 => visit_u128(0),
        deserialize_char => visit_char('a'),
        deserialize_str => visit_str(""),
        deserialize_string => visit_string(String::new()),
        deserialize_bytes => visit_bytes(&[]),
        deserialize_byte_buf => visit_byte_buf(Vec::new()),
    }

    refused! {
        deserialize_any => "a self-describing type (untagged or internally tagged enum, or a type that deserializes any value)",
        deserialize_f32 => "f32 (no total byte order)",
        deserialize_f64 => "f64 (no total byte order)",
        deserialize_map => "a map (no total byte order)",
        deserialize_identifier => "an identifier",
        deserialize_ignored_any => "an ignored value",
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.nested(|p| visitor.visit_some(p))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.nested(|p| visitor.visit_newtype_struct(p))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_seq(Elements { probe: self, left: 1 })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_seq(Elements { probe: self, left: len })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_seq(Elements { probe: self, left: len })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_seq(Elements { probe: self, left: fields.len() })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        let count = u32::try_from(variants.len()).unwrap_or(u32::MAX);
        if count == 0 {
            return Err(Stop::Inconclusive);
        }
        self.widest = self.widest.max(count);
        let chosen = self.variant.min(count - 1);
        let saved = std::mem::replace(&mut self.variant, chosen);
        let result = self.nested(|p| visitor.visit_enum(&mut *p));
        self.variant = saved;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::unencodable_part;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only deserialized")]
    enum Shape {
        Dot,
        Circle(u32),
        Scaled { id: u64, factor: f32 },
    }

    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only deserialized")]
    struct Valid {
        name: String,
        tags: Vec<(u8, Option<i64>)>,
        kind: Option<Box<Valid>>,
    }

    #[test]
    fn finds_what_the_key_encoding_refuses() {
        assert!(unencodable_part::<f64>().is_err());
        assert!(unencodable_part::<(u64, f32)>().is_err());
        assert!(unencodable_part::<Option<Vec<f64>>>().is_err());
        assert!(unencodable_part::<BTreeMap<u8, u8>>().is_err());
        assert!(unencodable_part::<Shape>().is_err(), "a float in the last variant");
        assert!(unencodable_part::<serde_json_like::Any>().is_err());
    }

    #[test]
    fn passes_what_it_encodes() {
        assert!(unencodable_part::<u64>().is_ok());
        assert!(unencodable_part::<(String, i32, bool, char)>().is_ok());
        assert!(unencodable_part::<Vec<u8>>().is_ok());
        assert!(unencodable_part::<Valid>().is_ok(), "a recursive type stops unproven");
        assert!(unencodable_part::<Option<(u16, Vec<String>)>>().is_ok());
    }

    mod serde_json_like {
        use serde::de::{Deserialize, Deserializer, IgnoredAny};

        /// A type that takes any value, as an untagged enum does.
        pub(super) struct Any;

        impl<'de> Deserialize<'de> for Any {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(IgnoredAny).map(|_| Any)
            }
        }
    }
}
