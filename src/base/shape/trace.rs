//! Tracing a type's shape with `serde-reflection`, and converting what it finds into
//! this crate's [`Shape`].

use super::{Container, Field, Fields, Format, Shape, Variant};
use serde::de::DeserializeOwned;
use serde_reflection::{
    ContainerFormat, Error as TraceError, Format as RFormat, Named, Registry, Samples, Tracer,
    TracerConfig, VariantFormat,
};
use std::collections::{BTreeMap, BTreeSet};

/// How many times the same tracer deserializes the type: each pass reaches at least one
/// more variant of some enum, so this bounds the variants of all its enums together.
const MAX_PASSES: usize = 512;
/// How many times tracing starts over after finding enums nested in the type: one more
/// per level of nesting at which new enums appear.
const MAX_ROUNDS: usize = 64;

/// The shape of `T`, or why it cannot be traced.
pub(super) fn trace<T: DeserializeOwned>() -> Result<Shape, String> {
    let samples = Samples::new();
    // Enums found so far. A tracer visits one new variant of an enum per pass, and only
    // if the enum's "incomplete" mark was cleared before the pass, which takes its name:
    // a round that ends with enums it did not know starts over knowing them.
    let mut enums: BTreeSet<String> = BTreeSet::new();
    for _ in 0..MAX_ROUNDS {
        let mut tracer = Tracer::new(TracerConfig::default());
        let mut root = None;
        let mut incomplete = Vec::new();
        for _ in 0..MAX_PASSES {
            let (format, _value) = tracer.trace_type_once::<T>(&samples).map_err(reason)?;
            root = Some(format);
            incomplete.clear();
            for name in &enums {
                if tracer.check_incomplete_enum(name).is_some() {
                    incomplete.push(name.as_str());
                }
            }
            if incomplete.is_empty() {
                break;
            }
        }
        if !incomplete.is_empty() {
            // The tracer explores an `Option`, a sequence or a map once: an enum reached
            // only inside one never gets its other variants visited.
            return Err(incomplete_enum(&incomplete.join(", ")));
        }
        let registry = match tracer.registry() {
            Ok(registry) => registry,
            Err(TraceError::MissingVariants(names)) if names.iter().any(|n| !enums.contains(n)) => {
                enums.extend(names);
                continue;
            }
            Err(e) => return Err(reason(e)),
        };
        let root = root.ok_or_else(|| "nothing was traced".to_owned())?;
        return convert(&root, &registry);
    }
    Err(format!("enums nested more than {MAX_ROUNDS} levels deep"))
}

fn incomplete_enum(names: &str) -> String {
    format!(
        "the variants of enum {names} could not all be traced (an enum reached only inside \
         an Option, a sequence or a map, or more than {MAX_PASSES} variants in all)"
    )
}

fn reason(e: TraceError) -> String {
    match e {
        TraceError::NotSupported(what) => format!(
            "the type asks for a self-describing format ({what}: `#[serde(flatten)]`, an \
             untagged or internally tagged enum, or `deserialize_any`)"
        ),
        TraceError::Custom(message) => {
            format!("the type refused the value it was traced with ({message})")
        }
        TraceError::Incompatible(a, b) => format!(
            "two different types have the same name, or a type's serialization disagrees \
             with its deserialization ({a} / {b})"
        ),
        other => other.to_string(),
    }
}

fn convert(root: &RFormat, registry: &Registry) -> Result<Shape, String> {
    let mut containers = BTreeMap::new();
    for (name, container) in registry {
        containers.insert(name.clone(), container_of(name, container)?);
    }
    Ok(Shape { root: format_of(root)?, containers })
}

fn container_of(name: &str, container: &ContainerFormat) -> Result<Container, String> {
    Ok(match container {
        ContainerFormat::UnitStruct => Container::Struct(Fields::Unit),
        ContainerFormat::NewTypeStruct(f) => Container::Struct(Fields::Newtype(format_of(f)?)),
        ContainerFormat::TupleStruct(fs) => Container::Struct(Fields::Tuple(formats_of(fs)?)),
        ContainerFormat::Struct(fs) => Container::Struct(Fields::Named(named_of(fs)?)),
        ContainerFormat::Enum(variants) => {
            let mut list = Vec::with_capacity(variants.len());
            for (expected, (&index, variant)) in variants.iter().enumerate() {
                if u32::try_from(expected).ok() != Some(index) {
                    return Err(incomplete_enum(name));
                }
                list.push(Variant { name: variant.name.clone(), fields: variant_of(variant)? });
            }
            Container::Enum(list)
        }
    })
}

fn variant_of(variant: &Named<VariantFormat>) -> Result<Fields, String> {
    Ok(match &variant.value {
        VariantFormat::Unit => Fields::Unit,
        VariantFormat::NewType(f) => Fields::Newtype(format_of(f)?),
        VariantFormat::Tuple(fs) => Fields::Tuple(formats_of(fs)?),
        VariantFormat::Struct(fs) => Fields::Named(named_of(fs)?),
        VariantFormat::Variable(_) => {
            return Err(format!("variant {} was not traced", variant.name));
        }
    })
}

fn named_of(fields: &[Named<RFormat>]) -> Result<Vec<Field>, String> {
    fields
        .iter()
        .map(|f| Ok(Field { name: f.name.clone(), format: format_of(&f.value)? }))
        .collect()
}

fn formats_of(formats: &[RFormat]) -> Result<Vec<Format>, String> {
    formats.iter().map(format_of).collect()
}

fn format_of(format: &RFormat) -> Result<Format, String> {
    Ok(match format {
        RFormat::Variable(v) => match v.borrow().as_ref() {
            Some(inner) => format_of(inner)?,
            None => return Err("a part of the type was not traced".to_owned()),
        },
        RFormat::TypeName(name) => Format::Named(name.clone()),
        RFormat::Unit => Format::Unit,
        RFormat::Bool => Format::Bool,
        RFormat::I8 => Format::I8,
        RFormat::I16 => Format::I16,
        RFormat::I32 => Format::I32,
        RFormat::I64 => Format::I64,
        RFormat::I128 => Format::I128,
        RFormat::U8 => Format::U8,
        RFormat::U16 => Format::U16,
        RFormat::U32 => Format::U32,
        RFormat::U64 => Format::U64,
        RFormat::U128 => Format::U128,
        RFormat::F32 => Format::F32,
        RFormat::F64 => Format::F64,
        RFormat::Char => Format::Char,
        RFormat::Str => Format::Str,
        RFormat::Bytes => Format::Bytes,
        RFormat::Option(f) => Format::Option(Box::new(format_of(f)?)),
        RFormat::Seq(f) => Format::Seq(Box::new(format_of(f)?)),
        RFormat::Map { key, value } => {
            Format::Map(Box::new(format_of(key)?), Box::new(format_of(value)?))
        }
        RFormat::Tuple(fs) => Format::Tuple(formats_of(fs)?),
        RFormat::TupleArray { content, size } => {
            Format::Array(Box::new(format_of(content)?), *size as u64)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::Shape;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    enum Inner {
        A,
        B(u8),
        C { x: String },
    }

    #[derive(Serialize, Deserialize)]
    struct Outer {
        first: Option<Inner>,
        many: Vec<Inner>,
        direct: Inner,
    }

    #[derive(Serialize, Deserialize)]
    struct OnlyInside {
        first: Option<Inner>,
    }

    #[test]
    fn nested_enums_are_traced_whole() {
        let shape = Shape::of::<Outer>().expect("traceable");
        assert_eq!(
            shape.to_string(),
            "Outer; Outer = struct { first: Option<Inner>, many: Vec<Inner>, direct: Inner }; \
             Inner = enum { A, B(u8), C { x: String } }"
        );
        let reason = Shape::of::<OnlyInside>().expect_err("not every variant reached");
        assert!(reason.contains("variants of enum Inner could not all be traced"), "{reason}");
    }

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Untagged {
        Number(u64),
        Text(String),
    }

    #[derive(Serialize, Deserialize)]
    struct Flattened {
        #[serde(flatten)]
        inner: std::collections::BTreeMap<String, u8>,
    }

    #[test]
    fn self_describing_types_have_no_shape() {
        for reason in [Shape::of::<Untagged>(), Shape::of::<Flattened>()] {
            let reason = reason.expect_err("untraceable");
            assert!(reason.contains("self-describing format"), "{reason}");
        }
        let reason = Shape::of::<std::num::NonZeroU8>().expect_err("validating");
        assert!(reason.contains("refused the value"), "{reason}");
    }

    #[test]
    fn primitives_have_no_containers() {
        let shape = Shape::of::<(u64, String)>().expect("traceable");
        assert_eq!(shape.to_string(), "(u64, String)");
    }
}
