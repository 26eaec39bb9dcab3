//! Decoding stored bytes into JSON by a traced shape, without the Rust types.
//!
//! A [`ShapedSeed`] walks a [`Format`] and asks the deserializer for exactly what the
//! format names, so it works with any non-self-describing serde format whose structs
//! are their fields in order: bincode (values) and the order-preserving key encoding
//! (keys). Structs are read as tuples of their fields and enum variants by index,
//! which is how both formats lay them out; names come from the shape.
//!
//! The JSON form:
//! - integers and floats are numbers; a 128-bit integer beyond 64 bits, and a float
//!   that is not finite (`"NaN"`, `"inf"`, `"-inf"`), are strings;
//! - `char` and strings are strings, byte strings arrays of numbers, `()` and unit
//!   structs `null`;
//! - `Option`: `null` or the value itself (so `Some(())` and `Some(None)` read as
//!   `null`, the one ambiguity);
//! - sequences, tuples and tuple structs are arrays; newtype structs their content;
//!   structs objects in field order;
//! - maps are objects when their keys are strings, arrays of `[key, value]` pairs
//!   otherwise;
//! - enums as serde's externally tagged form: `"Variant"` for a unit variant,
//!   `{"Variant": payload}` for the others.

use crate::base::shape::{Container, Field, Fields, Format, Shape, Variant};
use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess};
use serde::de::{VariantAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Deserializes one value of `format` into JSON.
#[derive(Clone, Copy)]
pub(crate) struct ShapedSeed<'a> {
    pub(crate) format: &'a Format,
    pub(crate) shape: &'a Shape,
    /// How deep in the value this seed is: bounded by [`MAX_DEPTH`], so that a value
    /// of a recursive shape nested without end fails instead of overflowing the stack.
    depth: u32,
}

/// The deepest nesting decoded or encoded; deeper values are an error.
pub(crate) const MAX_DEPTH: u32 = 128;
/// The most elements of a fixed-size array decoded: an array of a zero-sized type
/// reads no bytes, so a hostile shape could otherwise ask for any number.
const MAX_ARRAY: u64 = 1 << 20;

impl<'a> ShapedSeed<'a> {
    /// The seed of a whole value of `shape`.
    pub(crate) fn root(shape: &'a Shape) -> Self {
        ShapedSeed { format: &shape.root, shape, depth: 0 }
    }

    fn with(self, format: &'a Format) -> Self {
        ShapedSeed { format, shape: self.shape, depth: self.depth + 1 }
    }
}

impl<'de> DeserializeSeed<'de> for ShapedSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        let v = Scalar;
        if self.depth > MAX_DEPTH {
            return Err(de::Error::custom(format!("the value nests deeper than {MAX_DEPTH}")));
        }
        match self.format {
            Format::Named(name) => self.container(name, d),
            Format::Unit => d.deserialize_unit(v),
            Format::Bool => d.deserialize_bool(v),
            Format::I8 => d.deserialize_i8(v),
            Format::I16 => d.deserialize_i16(v),
            Format::I32 => d.deserialize_i32(v),
            Format::I64 => d.deserialize_i64(v),
            Format::I128 => d.deserialize_i128(v),
            Format::U8 => d.deserialize_u8(v),
            Format::U16 => d.deserialize_u16(v),
            Format::U32 => d.deserialize_u32(v),
            Format::U64 => d.deserialize_u64(v),
            Format::U128 => d.deserialize_u128(v),
            Format::F32 => d.deserialize_f32(v),
            Format::F64 => d.deserialize_f64(v),
            Format::Char => d.deserialize_char(v),
            Format::Str => d.deserialize_string(v),
            Format::Bytes => d.deserialize_byte_buf(v),
            Format::Option(inner) => d.deserialize_option(OptionOf(self.with(inner))),
            Format::Seq(inner) => d.deserialize_seq(SeqOf(self.with(inner))),
            Format::Map(key, value) => {
                d.deserialize_map(MapOf { key: self.with(key), value: self.with(value) })
            }
            Format::Tuple(items) => d.deserialize_tuple(items.len(), TupleOf(self, items)),
            Format::Array(content, size) => {
                let size = usize::try_from(*size)
                    .ok()
                    .filter(|_| *size <= MAX_ARRAY)
                    .ok_or_else(|| de::Error::custom(format!("an array of {size} is too long")))?;
                d.deserialize_tuple(size, SeqOf(self.with(content)))
            }
        }
    }
}

impl<'a> ShapedSeed<'a> {
    fn container<'de, D: Deserializer<'de>>(self, name: &str, d: D) -> Result<Value, D::Error> {
        let Some(container) = self.shape.containers.get(name) else {
            return Err(de::Error::custom(format!("the shape has no container '{name}'")));
        };
        match container {
            Container::Struct(fields) => self.fields(fields, d),
            Container::Enum(variants) => d.deserialize_enum("", &[], EnumOf(self, variants)),
        }
    }

    fn fields<'de, D: Deserializer<'de>>(
        self,
        fields: &'a Fields,
        d: D,
    ) -> Result<Value, D::Error> {
        match fields {
            Fields::Unit => d.deserialize_unit(Scalar),
            Fields::Newtype(inner) => self.with(inner).deserialize(d),
            Fields::Tuple(items) => d.deserialize_tuple(items.len(), TupleOf(self, items)),
            // Read as a tuple: both formats lay a struct out as its fields in order, and
            // a tuple needs no `'static` field names.
            Fields::Named(named) => d.deserialize_tuple(named.len(), FieldsOf(self, named)),
        }
    }
}

/// Every primitive, as JSON.
struct Scalar;

fn wide(text: String, fits: Option<Value>) -> Value {
    fits.unwrap_or(Value::String(text))
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or_else(
        || {
            let text = if f.is_nan() {
                "NaN"
            } else if f > 0.0 {
                "inf"
            } else {
                "-inf"
            };
            Value::String(text.to_owned())
        },
        Value::Number,
    )
}

impl Visitor<'_> for Scalar {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value of the stored shape")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_i128<E>(self, n: i128) -> Result<Value, E> {
        Ok(wide(n.to_string(), i64::try_from(n).ok().map(Value::from)))
    }
    fn visit_u128<E>(self, n: u128) -> Result<Value, E> {
        Ok(wide(n.to_string(), u64::try_from(n).ok().map(Value::from)))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(float(f))
    }
    fn visit_char<E>(self, c: char) -> Result<Value, E> {
        Ok(Value::String(c.to_string()))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_bytes<E>(self, b: &[u8]) -> Result<Value, E> {
        Ok(Value::Array(b.iter().map(|&x| Value::from(x)).collect()))
    }
    fn visit_byte_buf<E>(self, b: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Array(b.into_iter().map(Value::from).collect()))
    }
}

struct OptionOf<'a>(ShapedSeed<'a>);

impl<'de> Visitor<'de> for OptionOf<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an option")
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.0.deserialize(d)
    }
}

struct SeqOf<'a>(ShapedSeed<'a>);

impl<'de> Visitor<'de> for SeqOf<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element_seed(self.0)? {
            out.push(item);
        }
        Ok(Value::Array(out))
    }
}

/// Reads exactly `items.len()` elements of the given formats.
fn fixed<'f, 'de, A: SeqAccess<'de>>(
    seed: ShapedSeed<'f>,
    items: impl Iterator<Item = (String, &'f Format)>,
    seq: &mut A,
) -> Result<Vec<(String, Value)>, A::Error> {
    let mut out = Vec::new();
    for (name, format) in items {
        let Some(value) = seq.next_element_seed(seed.with(format))? else {
            return Err(de::Error::custom(format!("the value ends before '{name}'")));
        };
        out.push((name, value));
    }
    Ok(out)
}

struct TupleOf<'a>(ShapedSeed<'a>, &'a [Format]);

impl<'de> Visitor<'de> for TupleOf<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a tuple of {}", self.1.len())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let items = self.1.iter().enumerate().map(|(i, f)| (format!("element {i}"), f));
        let values = fixed(self.0, items, &mut seq)?;
        Ok(Value::Array(values.into_iter().map(|(_, v)| v).collect()))
    }
}

struct FieldsOf<'a>(ShapedSeed<'a>, &'a [Field]);

impl<'de> Visitor<'de> for FieldsOf<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a struct of {} fields", self.1.len())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let items = self.1.iter().map(|field| (field.name.clone(), &field.format));
        Ok(Value::Object(fixed(self.0, items, &mut seq)?.into_iter().collect()))
    }
}

struct MapOf<'a> {
    key: ShapedSeed<'a>,
    value: ShapedSeed<'a>,
}

impl<'de> Visitor<'de> for MapOf<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let string_keys = matches!(self.key.format, Format::Str);
        let mut object = Map::new();
        let mut pairs = Vec::new();
        while let Some(key) = map.next_key_seed(self.key)? {
            let value = map.next_value_seed(self.value)?;
            match key {
                Value::String(key) if string_keys => {
                    object.insert(key, value);
                }
                key => pairs.push(Value::Array(vec![key, value])),
            }
        }
        Ok(if string_keys { Value::Object(object) } else { Value::Array(pairs) })
    }
}

struct EnumOf<'a>(ShapedSeed<'a>, &'a [Variant]);

/// Reads a variant index.
struct VariantIndex;

impl<'de> DeserializeSeed<'de> for VariantIndex {
    type Value = u32;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u32, D::Error> {
        d.deserialize_u32(IndexVisitor)
    }
}

struct IndexVisitor;

impl Visitor<'_> for IndexVisitor {
    type Value = u32;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a variant index")
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<u32, E> {
        u32::try_from(n).map_err(|_| E::custom(format!("variant index {n} is too large")))
    }
}

impl<'de> Visitor<'de> for EnumOf<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an enum")
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (index, variant) = data.variant_seed(VariantIndex)?;
        let Some(named) = usize::try_from(index).ok().and_then(|i| self.1.get(i)) else {
            let known = self.1.len();
            return Err(de::Error::custom(format!(
                "variant index {index} is not in the shape ({known} variants known)"
            )));
        };
        let seed = self.0;
        let payload = match &named.fields {
            Fields::Unit => {
                variant.unit_variant()?;
                return Ok(Value::String(named.name.clone()));
            }
            Fields::Newtype(inner) => variant.newtype_variant_seed(seed.with(inner))?,
            Fields::Tuple(items) => variant.tuple_variant(items.len(), TupleOf(seed, items))?,
            // Read as a tuple variant: both formats lay the two out alike.
            Fields::Named(fields) => variant.tuple_variant(fields.len(), FieldsOf(seed, fields))?,
        };
        let mut object = Map::new();
        object.insert(named.name.clone(), payload);
        Ok(Value::Object(object))
    }
}
