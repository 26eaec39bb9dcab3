//! Tracing a type's shape: passes of the tracing `Deserializer` (`deserializer.rs`,
//! steered by `tracer.rs`) until every part of the type is known, then the result
//! converted into this crate's [`Shape`].

use super::deserializer::Tracing;
use super::tracer::{Entry, Fmt, Slots, TraceError, Tracer};
use super::{Container, Field, Fields, Format, Shape, Variant};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

/// How many times the type is deserialized at most: each pass reaches at least one more
/// variant or part, so this bounds the variants and parts of all its types together.
const MAX_PASSES: usize = 1024;

/// The shape of `T`, or why it cannot be traced.
pub(super) fn trace<T: DeserializeOwned>() -> Result<Shape, String> {
    let mut tracer = Tracer::default();
    let mut root = Fmt::Unknown;
    for _ in 0..MAX_PASSES {
        let before = (tracer.entries.clone(), root.clone());
        tracer.start_pass();
        T::deserialize(Tracing::new(&mut tracer, &mut root)).map_err(reason)?;
        if !tracer.incomplete(&root) {
            return convert(&root, &tracer.entries);
        }
        if before.0 == tracer.entries && before.1 == root {
            // A pass that learns nothing: the rest is reachable only where recursion is
            // cut, so no later pass would learn more.
            return Err(missing(&tracer.entries));
        }
    }
    Err(missing(&tracer.entries))
}

/// Why tracing stopped with parts unknown.
fn missing(entries: &BTreeMap<&'static str, Entry>) -> String {
    let enums: Vec<&str> = entries
        .iter()
        .filter(|(_, e)| matches!(e, Entry::Enum(_, vs) if vs.iter().any(Option::is_none)))
        .map(|(&name, _)| name)
        .collect();
    if enums.is_empty() {
        format!("a part of the type could not be traced in {MAX_PASSES} passes")
    } else {
        format!(
            "the variants of enum {} could not all be traced (reached only where recursion \
             is cut, or more than {MAX_PASSES} variants in all)",
            enums.join(", ")
        )
    }
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
        TraceError::NoFiniteValue(name) => format!(
            "{name} has no finite value: it contains itself with no Option, sequence, map or \
             other enum variant that ends the recursion"
        ),
        TraceError::TooDeep(name) => format!(
            "the type nests containers more than {} deep (at {name})",
            super::tracer::MAX_DEPTH
        ),
    }
}

/// Converts what was traced. Container formats get serde-reflection's normalization
/// (a tuple of two or more equal formats is an array); the root does not. Shapes
/// recorded by earlier builds were traced that way, and their fingerprints are stored.
fn convert(root: &Fmt, entries: &BTreeMap<&'static str, Entry>) -> Result<Shape, String> {
    let mut containers = BTreeMap::new();
    for (&name, entry) in entries {
        let part = |fmt: &Fmt| format_of(fmt, true, name);
        let container = match entry {
            Entry::Struct(slots) => Container::Struct(fields_of(slots, &part)?),
            Entry::Enum(names, variants) => {
                let mut list = Vec::with_capacity(variants.len());
                for (&variant, slots) in names.iter().zip(variants) {
                    let slots = slots.as_ref().ok_or_else(|| missing(entries))?;
                    list.push(Variant {
                        name: variant.to_owned(),
                        fields: fields_of(slots, &part)?,
                    });
                }
                Container::Enum(list)
            }
        };
        containers.insert(name.to_owned(), container);
    }
    Ok(Shape { root: format_of(root, false, "the root")?, containers })
}

fn fields_of(
    slots: &Slots,
    part: &dyn Fn(&Fmt) -> Result<Format, String>,
) -> Result<Fields, String> {
    Ok(match slots {
        Slots::Unit => Fields::Unit,
        Slots::Newtype(f) => Fields::Newtype(part(f)?),
        Slots::Tuple(fs) => Fields::Tuple(fs.iter().map(part).collect::<Result<_, _>>()?),
        Slots::Named(fs) => Fields::Named(
            fs.iter()
                .map(|(name, f)| Ok(Field { name: (*name).to_owned(), format: part(f)? }))
                .collect::<Result<_, String>>()?,
        ),
    })
}

fn format_of(fmt: &Fmt, normalize: bool, within: &str) -> Result<Format, String> {
    let inner = |f: &Fmt| format_of(f, normalize, within).map(Box::new);
    Ok(match fmt {
        Fmt::Unknown => return Err(format!("a part of {within} was not traced")),
        Fmt::Leaf(format) => format.clone(),
        Fmt::Option(f) => Format::Option(inner(f)?),
        Fmt::Seq(f) => Format::Seq(inner(f)?),
        Fmt::Map(k, v) => Format::Map(inner(k)?, inner(v)?),
        Fmt::Tuple(fs) => {
            let fs = fs
                .iter()
                .map(|f| format_of(f, normalize, within))
                .collect::<Result<Vec<_>, _>>()?;
            match fs.split_first() {
                Some((first, rest))
                    if normalize && !rest.is_empty() && rest.iter().all(|f| f == first) =>
                {
                    Format::Array(Box::new(first.clone()), fs.len() as u64)
                }
                _ => Format::Tuple(fs),
            }
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
        many: std::collections::BTreeMap<String, Vec<Inner>>,
    }

    #[test]
    fn nested_enums_are_traced_whole() {
        let shape = Shape::of::<Outer>().expect("traceable");
        assert_eq!(
            shape.to_string(),
            "Outer; Outer = struct { first: Option<Inner>, many: Vec<Inner>, direct: Inner }; \
             Inner = enum { A, B(u8), C { x: String } }"
        );
        let shape = Shape::of::<OnlyInside>().expect("enums inside containers trace whole");
        assert_eq!(
            shape.to_string(),
            "OnlyInside; OnlyInside = struct { first: Option<Inner>, many: Map<String, \
             Vec<Inner>> }; Inner = enum { A, B(u8), C { x: String } }"
        );
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
