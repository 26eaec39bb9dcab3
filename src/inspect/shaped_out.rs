//! Encoding JSON back into stored bytes by a traced shape: the inverse of
//! [`super::shaped`], in the same JSON form.
//!
//! Structs are written as tuples of their fields and enum variants by index, as both
//! stored formats lay them out; a struct's JSON object must have exactly its fields.

use crate::base::shape::{Container, Field, Fields, Format, Shape, Variant};
use serde::ser::{self, Error as _, Serialize, SerializeMap, SerializeSeq, SerializeTuple};
use serde::ser::{SerializeTupleVariant, Serializer};
use serde_json::Value;

/// `value`, serialized as a value of `format`.
pub(crate) struct Shaped<'a> {
    pub(crate) format: &'a Format,
    pub(crate) shape: &'a Shape,
    pub(crate) value: &'a Value,
    /// How deep in the value this is, bounded as decoding is: an `Option` or a newtype
    /// passes its JSON down unchanged, so a recursive shape could otherwise recurse
    /// without end on one JSON value.
    depth: u32,
}

impl<'a> Shaped<'a> {
    /// `value` as a whole value of `shape`.
    pub(crate) fn root(shape: &'a Shape, value: &'a Value) -> Self {
        Shaped { format: &shape.root, shape, value, depth: 0 }
    }

    fn at(&self, format: &'a Format, value: &'a Value) -> Shaped<'a> {
        Shaped { format, shape: self.shape, value, depth: self.depth + 1 }
    }
}

fn mismatch<E: ser::Error>(expected: &str, found: &Value) -> E {
    let mut shown = found.to_string();
    if shown.len() > 60 {
        let cut = (0..=60).rev().find(|&i| shown.is_char_boundary(i)).unwrap_or(0);
        shown.truncate(cut);
        shown.push('…');
    }
    E::custom(format!("expected {expected}, found {shown}"))
}

fn int<T: TryFrom<i128>, E: ser::Error>(value: &Value, what: &str) -> Result<T, E> {
    let wide = match value {
        Value::Number(n) => n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from)),
        Value::String(s) => s.parse::<i128>().ok(),
        _ => None,
    };
    wide.and_then(|n| T::try_from(n).ok()).ok_or_else(|| mismatch(what, value))
}

fn uint128<E: ser::Error>(value: &Value) -> Result<u128, E> {
    let wide = match value {
        Value::Number(n) => n.as_u64().map(u128::from),
        Value::String(s) => s.parse::<u128>().ok(),
        _ => None,
    };
    wide.ok_or_else(|| mismatch("u128", value))
}

fn float<E: ser::Error>(value: &Value) -> Result<f64, E> {
    match value {
        Value::Number(n) => n.as_f64().ok_or_else(|| mismatch("a float", value)),
        Value::String(s) if s == "NaN" => Ok(f64::NAN),
        Value::String(s) if s == "inf" => Ok(f64::INFINITY),
        Value::String(s) if s == "-inf" => Ok(f64::NEG_INFINITY),
        _ => Err(mismatch("a float", value)),
    }
}

fn array<'v, E: ser::Error>(value: &'v Value, what: &str) -> Result<&'v Vec<Value>, E> {
    value.as_array().ok_or_else(|| mismatch(what, value))
}

impl Serialize for Shaped<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.value;
        if self.depth > super::shaped::MAX_DEPTH {
            let max = super::shaped::MAX_DEPTH;
            return Err(S::Error::custom(format!("the value nests deeper than {max}")));
        }
        match self.format {
            Format::Named(name) => self.container(name, s),
            Format::Unit if v.is_null() => s.serialize_unit(),
            Format::Unit => Err(mismatch("null", v)),
            Format::Bool => s.serialize_bool(v.as_bool().ok_or_else(|| mismatch("a bool", v))?),
            Format::I8 => s.serialize_i8(int(v, "i8")?),
            Format::I16 => s.serialize_i16(int(v, "i16")?),
            Format::I32 => s.serialize_i32(int(v, "i32")?),
            Format::I64 => s.serialize_i64(int(v, "i64")?),
            Format::I128 => s.serialize_i128(int(v, "i128")?),
            Format::U8 => s.serialize_u8(int(v, "u8")?),
            Format::U16 => s.serialize_u16(int(v, "u16")?),
            Format::U32 => s.serialize_u32(int(v, "u32")?),
            Format::U64 => s.serialize_u64(int(v, "u64")?),
            Format::U128 => s.serialize_u128(uint128(v)?),
            #[expect(clippy::cast_possible_truncation, reason = "an f32 was widened to dump it")]
            Format::F32 => s.serialize_f32(float::<S::Error>(v)? as f32),
            Format::F64 => s.serialize_f64(float(v)?),
            Format::Char => {
                let text = v.as_str().ok_or_else(|| mismatch("a one-character string", v))?;
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => s.serialize_char(c),
                    _ => Err(mismatch("a one-character string", v)),
                }
            }
            Format::Str => s.serialize_str(v.as_str().ok_or_else(|| mismatch("a string", v))?),
            Format::Bytes => {
                let items = array(v, "an array of bytes")?;
                let bytes: Vec<u8> =
                    items.iter().map(|b| int(b, "a byte")).collect::<Result<_, S::Error>>()?;
                s.serialize_bytes(&bytes)
            }
            Format::Option(_) if v.is_null() => s.serialize_none(),
            Format::Option(inner) => s.serialize_some(&self.at(inner, v)),
            Format::Seq(inner) => {
                let items = array(v, "an array")?;
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&self.at(inner, item))?;
                }
                seq.end()
            }
            Format::Map(key, value) => self.map(key, value, s),
            Format::Tuple(items) => self.tuple(items.iter(), array(v, "an array")?, s),
            Format::Array(content, size) => {
                let items = array(v, "an array")?;
                let size = usize::try_from(*size).map_err(|_| mismatch("a shorter array", v))?;
                self.tuple(std::iter::repeat_n(&**content, size), items, s)
            }
        }
    }
}

impl<'a> Shaped<'a> {
    fn tuple<S: Serializer>(
        &self,
        formats: impl ExactSizeIterator<Item = &'a Format>,
        items: &'a [Value],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        if formats.len() != items.len() {
            return Err(S::Error::custom(format!(
                "expected an array of {}, found one of {}",
                formats.len(),
                items.len()
            )));
        }
        let mut tuple = s.serialize_tuple(items.len())?;
        for (format, item) in formats.zip(items) {
            tuple.serialize_element(&self.at(format, item))?;
        }
        tuple.end()
    }

    fn map<S: Serializer>(
        &self,
        key: &'a Format,
        value: &'a Format,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let v = self.value;
        if let (Format::Str, Value::Object(object)) = (key, v) {
            let mut map = s.serialize_map(Some(object.len()))?;
            for (k, item) in object {
                map.serialize_entry(k, &self.at(value, item))?;
            }
            return map.end();
        }
        let pairs = array(v, "an array of [key, value] pairs")?;
        let mut map = s.serialize_map(Some(pairs.len()))?;
        for pair in pairs {
            match pair.as_array().map(Vec::as_slice) {
                Some([k, item]) => map.serialize_entry(&self.at(key, k), &self.at(value, item))?,
                _ => return Err(mismatch("a [key, value] pair", pair)),
            }
        }
        map.end()
    }

    fn named<S: Serializer>(&self, fields: &'a [Field], s: S) -> Result<S::Ok, S::Error> {
        let v = self.value;
        let object = v.as_object().ok_or_else(|| mismatch("an object", v))?;
        if let Some(extra) = object.keys().find(|k| !fields.iter().any(|f| &f.name == *k)) {
            return Err(S::Error::custom(format!("unknown field '{extra}'")));
        }
        let mut tuple = s.serialize_tuple(fields.len())?;
        for field in fields {
            let Some(item) = object.get(&field.name) else {
                return Err(S::Error::custom(format!("missing field '{}'", field.name)));
            };
            tuple.serialize_element(&self.at(&field.format, item))?;
        }
        tuple.end()
    }

    fn container<S: Serializer>(&self, name: &str, s: S) -> Result<S::Ok, S::Error> {
        let Some(container) = self.shape.containers.get(name) else {
            return Err(S::Error::custom(format!("the shape has no container '{name}'")));
        };
        let v = self.value;
        match container {
            Container::Struct(Fields::Unit) if v.is_null() => s.serialize_unit(),
            Container::Struct(Fields::Unit) => Err(mismatch("null", v)),
            Container::Struct(Fields::Newtype(inner)) => self.at(inner, v).serialize(s),
            Container::Struct(Fields::Tuple(items)) => {
                self.tuple(items.iter(), array(v, "an array")?, s)
            }
            Container::Struct(Fields::Named(fields)) => self.named(fields, s),
            Container::Enum(variants) => self.variant(variants, s),
        }
    }

    fn variant<S: Serializer>(&self, variants: &'a [Variant], s: S) -> Result<S::Ok, S::Error> {
        let v = self.value;
        let (name, payload) = match v {
            Value::String(name) => (name, None),
            Value::Object(object) if object.len() == 1 => {
                let (name, payload) =
                    object.iter().next().ok_or_else(|| mismatch("a variant", v))?;
                (name, Some(payload))
            }
            _ => return Err(mismatch("a variant name or {\"Variant\": payload}", v)),
        };
        let Some((index, named)) = variants.iter().enumerate().find(|(_, n)| &n.name == name)
        else {
            return Err(S::Error::custom(format!("unknown variant '{name}'")));
        };
        let index = u32::try_from(index).map_err(|_| S::Error::custom("too many variants"))?;
        match (&named.fields, payload) {
            (Fields::Unit, None) => s.serialize_unit_variant("", index, ""),
            (Fields::Newtype(inner), Some(p)) => {
                s.serialize_newtype_variant("", index, "", &self.at(inner, p))
            }
            (Fields::Tuple(items), Some(p)) => {
                let values = array(p, "an array")?;
                if values.len() != items.len() {
                    return Err(mismatch(&format!("an array of {}", items.len()), p));
                }
                let mut t = s.serialize_tuple_variant("", index, "", items.len())?;
                for (format, item) in items.iter().zip(values) {
                    t.serialize_field(&self.at(format, item))?;
                }
                t.end()
            }
            (Fields::Named(fields), Some(p)) => {
                // Written as a tuple variant: both formats lay the two out alike.
                let mut t = s.serialize_tuple_variant("", index, "", fields.len())?;
                let object = p.as_object().ok_or_else(|| mismatch("an object", p))?;
                if let Some(extra) = object.keys().find(|k| !fields.iter().any(|f| &f.name == *k)) {
                    return Err(S::Error::custom(format!("unknown field '{extra}'")));
                }
                for field in fields {
                    let Some(item) = object.get(&field.name) else {
                        return Err(S::Error::custom(format!("missing field '{}'", field.name)));
                    };
                    t.serialize_field(&self.at(&field.format, item))?;
                }
                t.end()
            }
            (_, _) => Err(mismatch(&format!("variant '{name}' with its payload"), v)),
        }
    }
}
