//! The serde side of tracing: [`Tracing`] is the `Deserializer` a pass hands to the
//! traced type. Each call answers a fixed value (`false`, `0`, `'A'`, empty text and
//! bytes) and records its format in the slot it was given; what to enter and which
//! variant to answer is the [`Tracer`]'s decision.

use super::Format;
use super::tracer::unify_slots;
use super::tracer::{Entry, Fmt, Result, Slots, TraceError, Tracer, incompatible, unify};
use serde::de::value::U32Deserializer;
use serde::de::{self, DeserializeSeed, Visitor};

/// The tracing `Deserializer`: one value, recorded into `slot`.
pub(super) struct Tracing<'a> {
    tracer: &'a mut Tracer,
    slot: &'a mut Fmt,
}

impl<'a> Tracing<'a> {
    pub(super) fn new(tracer: &'a mut Tracer, slot: &'a mut Fmt) -> Self {
        Tracing { tracer, slot }
    }

    fn leaf(self, format: Format) -> Result<()> {
        unify(self.slot, Fmt::Leaf(format))
    }

    /// Whether to enter a container whose inside is `inner`: only while that is
    /// incomplete, and never below a cut.
    fn enter_inside(tracer: &Tracer, inner: &[&Fmt]) -> bool {
        !tracer.cutting() && inner.iter().any(|f| tracer.incomplete(f))
    }

    /// Visits struct `name` with fields `fresh` (all unknown) and records what was found.
    fn visit_struct<'de, V: Visitor<'de>>(
        self,
        name: &'static str,
        fresh: Slots,
        visit: impl FnOnce(&mut Tracer, &mut Slots, V) -> Result<V::Value>,
        visitor: V,
    ) -> Result<V::Value> {
        unify(self.slot, Fmt::Leaf(Format::Named(name.to_owned())))?;
        let tracer = self.tracer;
        let mut slots = tracer.struct_slots(name, fresh)?;
        let mark = tracer.enter(name, true)?;
        let value = visit(tracer, &mut slots, visitor);
        tracer.leave(mark);
        let value = value?;
        tracer.record_struct(name, slots)?;
        Ok(value)
    }
}

/// Primitives: record the format, answer the fixed value.
macro_rules! primitive {
    ($($method:ident => $format:ident, $visit:ident($($value:expr)?);)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            self.leaf(Format::$format)?;
            visitor.$visit($($value)?)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Tracing<'_> {
    type Error = TraceError;

    primitive! {
        deserialize_bool => Bool, visit_bool(false);
        deserialize_i8 => I8, visit_i8(0);
        deserialize_i16 => I16, visit_i16(0);
        deserialize_i32 => I32, visit_i32(0);
        deserialize_i64 => I64, visit_i64(0);
        deserialize_i128 => I128, visit_i128(0);
        deserialize_u8 => U8, visit_u8(0);
        deserialize_u16 => U16, visit_u16(0);
        deserialize_u32 => U32, visit_u32(0);
        deserialize_u64 => U64, visit_u64(0);
        deserialize_u128 => U128, visit_u128(0);
        deserialize_f32 => F32, visit_f32(0.0);
        deserialize_f64 => F64, visit_f64(0.0);
        deserialize_char => Char, visit_char('A');
        deserialize_str => Str, visit_borrowed_str("");
        deserialize_string => Str, visit_string(String::new());
        deserialize_bytes => Bytes, visit_borrowed_bytes(&[]);
        deserialize_byte_buf => Bytes, visit_byte_buf(Vec::new());
        deserialize_unit => Unit, visit_unit();
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(TraceError::NotSupported("deserialize_any"))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(TraceError::NotSupported("deserialize_ignored_any"))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(TraceError::NotSupported("deserialize_identifier"))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        unify(self.slot, Fmt::Option(Box::new(Fmt::Unknown)))?;
        let Fmt::Option(inner) = self.slot else { unreachable_format()? };
        if Self::enter_inside(self.tracer, &[&**inner]) {
            visitor.visit_some(Tracing::new(self.tracer, inner))
        } else {
            visitor.visit_none()
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        unify(self.slot, Fmt::Seq(Box::new(Fmt::Unknown)))?;
        let Fmt::Seq(inner) = self.slot else { unreachable_format()? };
        let mut slots: Vec<&mut Fmt> = Vec::new();
        if Self::enter_inside(self.tracer, &[&**inner]) {
            slots.push(inner);
        }
        visitor.visit_seq(Elements { tracer: self.tracer, slots: slots.into_iter() })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        unify(self.slot, Fmt::Map(Box::new(Fmt::Unknown), Box::new(Fmt::Unknown)))?;
        let Fmt::Map(key, value) = self.slot else { unreachable_format()? };
        let mut slots: Vec<&mut Fmt> = Vec::new();
        if Self::enter_inside(self.tracer, &[&**key, &**value]) {
            slots.extend([&mut **key, &mut **value]);
        }
        visitor.visit_map(Elements { tracer: self.tracer, slots: slots.into_iter() })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        unify(self.slot, Fmt::Tuple(vec![Fmt::Unknown; len]))?;
        let Fmt::Tuple(slots) = self.slot else { unreachable_format()? };
        visitor.visit_seq(Elements { tracer: self.tracer, slots: slots.iter_mut() })
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        self.visit_struct(name, Slots::Unit, |_, _, v: V| v.visit_unit(), visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        let visit = |tracer: &mut Tracer, slots: &mut Slots, v: V| match slots {
            Slots::Newtype(inner) => v.visit_newtype_struct(Tracing::new(tracer, inner)),
            _ => unreachable_format(),
        };
        self.visit_struct(name, Slots::Newtype(Fmt::Unknown), visit, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        let visit = |tracer: &mut Tracer, slots: &mut Slots, v: V| match slots {
            Slots::Tuple(fs) => v.visit_seq(Elements { tracer, slots: fs.iter_mut() }),
            _ => unreachable_format(),
        };
        self.visit_struct(name, Slots::Tuple(vec![Fmt::Unknown; len]), visit, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let visit = |tracer: &mut Tracer, slots: &mut Slots, v: V| match slots {
            Slots::Named(fs) => {
                v.visit_seq(Elements { tracer, slots: fs.iter_mut().map(|(_, f)| f) })
            }
            _ => unreachable_format(),
        };
        let fresh = Slots::Named(fields.iter().map(|&f| (f, Fmt::Unknown)).collect());
        self.visit_struct(name, fresh, visit, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        if variants.is_empty() {
            return Err(TraceError::NotSupported("an enum without variants"));
        }
        unify(self.slot, Fmt::Leaf(Format::Named(name.to_owned())))?;
        let tracer = self.tracer;
        let known = tracer.enum_variants(name, variants)?;
        let mark = tracer.enter(name, false)?;
        let chosen = tracer.choose(name, &known);
        let (index, mut slots) = match chosen {
            Ok(index) => (index, known.into_iter().nth(index).flatten()),
            Err(e) => {
                tracer.leave(mark);
                return Err(e);
            }
        };
        tracer.in_progress.push((name, index));
        let index_u32 = u32::try_from(index).map_err(|_| TraceError::TooDeep(name.to_owned()))?;
        let value = visitor.visit_enum(Variant { tracer, index: index_u32, slots: &mut slots });
        tracer.in_progress.pop();
        tracer.leave(mark);
        let value = value?;
        if let Some(slots) = slots {
            tracer.record_variant(name, index, slots)?;
        }
        Ok(value)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// A slot was just made the format matched next: another is impossible.
fn unreachable_format<T>() -> Result<T> {
    Err(TraceError::Custom("a traced format changed while being traced".to_owned()))
}

impl Tracer {
    /// The variants of enum `name` recorded so far, registering it on first sight.
    fn enum_variants(
        &mut self,
        name: &'static str,
        names: &'static [&'static str],
    ) -> Result<Vec<Option<Slots>>> {
        let entry =
            self.entries.entry(name).or_insert_with(|| Entry::Enum(names, vec![None; names.len()]));
        match entry {
            Entry::Enum(known, variants) if *known == names => Ok(variants.clone()),
            _ => Err(incompatible(name, "one container", "another")),
        }
    }

    fn record_variant(&mut self, name: &'static str, index: usize, slots: Slots) -> Result<()> {
        match self.entries.get_mut(name) {
            Some(Entry::Enum(_, variants)) => match variants.get_mut(index) {
                Some(Some(old)) => unify_slots(old, slots),
                Some(slot @ None) => {
                    *slot = Some(slots);
                    Ok(())
                }
                None => unreachable_format(),
            },
            _ => Err(incompatible(name, "an enum", "another container")),
        }
    }
}

/// The elements of a sequence, tuple, struct or map: one per slot.
struct Elements<'a, I> {
    tracer: &'a mut Tracer,
    slots: I,
}

impl<'de, 'a, I: Iterator<Item = &'a mut Fmt>> de::SeqAccess<'de> for Elements<'_, I> {
    type Error = TraceError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        match self.slots.next() {
            Some(slot) => seed.deserialize(Tracing::new(self.tracer, slot)).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.slots.size_hint().1
    }
}

impl<'de, 'a, I: Iterator<Item = &'a mut Fmt>> de::MapAccess<'de> for Elements<'_, I> {
    type Error = TraceError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        de::SeqAccess::next_element_seed(self, seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        de::SeqAccess::next_element_seed(self, seed)?
            .ok_or_else(|| TraceError::Custom("a map value was asked for past its end".to_owned()))
    }

    fn size_hint(&self) -> Option<usize> {
        self.slots.size_hint().1.map(|n| n / 2)
    }
}

/// The variant a visit of an enum answers, and the fields it records.
struct Variant<'a> {
    tracer: &'a mut Tracer,
    index: u32,
    slots: &'a mut Option<Slots>,
}

/// The recorded fields of a variant, made `fresh` if none were; an error if the variant
/// was recorded with other fields.
fn slots_of(slots: &mut Option<Slots>, fresh: Slots) -> Result<&mut Slots> {
    match slots {
        Some(old) if !old.same_kind(&fresh) => {
            return Err(TraceError::Incompatible(format!("{old:?}"), format!("{fresh:?}")));
        }
        Some(_) => {}
        None => *slots = Some(fresh),
    }
    slots.as_mut().map_or_else(unreachable_format, Ok)
}

impl<'de> de::EnumAccess<'de> for Variant<'_> {
    type Error = TraceError;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self)> {
        let tag = seed.deserialize(U32Deserializer::<TraceError>::new(self.index))?;
        Ok((tag, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_> {
    type Error = TraceError;

    fn unit_variant(self) -> Result<()> {
        slots_of(self.slots, Slots::Unit).map(drop)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        let Slots::Newtype(inner) = slots_of(self.slots, Slots::Newtype(Fmt::Unknown))? else {
            return unreachable_format();
        };
        seed.deserialize(Tracing::new(self.tracer, inner))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        let Slots::Tuple(fs) = slots_of(self.slots, Slots::Tuple(vec![Fmt::Unknown; len]))? else {
            return unreachable_format();
        };
        visitor.visit_seq(Elements { tracer: self.tracer, slots: fs.iter_mut() })
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let fresh = Slots::Named(fields.iter().map(|&f| (f, Fmt::Unknown)).collect());
        let Slots::Named(fs) = slots_of(self.slots, fresh)? else {
            return unreachable_format();
        };
        visitor.visit_seq(Elements { tracer: self.tracer, slots: fs.iter_mut().map(|(_, f)| f) })
    }
}
