//! The serde shape of a type: what its bincode bytes are made of, traced without a value
//! (`trace`), compared field by field (`diff`), and fingerprinted.
//!
//! The structure mirrors serde's data model, in the form `serde-reflection` records it
//! (which earlier builds traced with, so stored fingerprints stay valid), in types of
//! this crate so that what the store records does not follow another crate's versions.
//! It is stored (bincode, standard configuration) in the `viewstore.shapes` table:
//! variants of the enums below are only ever appended, never reordered or removed.

mod deserializer;
mod diff;
mod trace;
mod tracer;

pub(crate) use diff::{Part, ShapeChange, shape_changes};

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write};

/// The serde shape of a type: its root format and the named containers (structs and
/// enums) it reaches, with field and variant names in declaration order.
///
/// A view records the shape of its key and value types in the file and refuses to open
/// when one changed without a new schema version. Shapes compare by structure and by
/// field and variant names, not by container names: a renamed or moved Rust type with
/// the same fields has the same shape.
///
/// # Examples
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use viewstore::Shape;
///
/// #[derive(Serialize, Deserialize)]
/// struct Profile { name: String, posts: u32 }
///
/// let shape = Shape::of::<Profile>().expect("a plain struct traces");
/// assert_eq!(shape.to_string(), "Profile; Profile = struct { name: String, posts: u32 }");
/// assert_eq!(shape.fingerprint(), Shape::of::<Profile>().expect("again").fingerprint());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub(crate) root: Format,
    pub(crate) containers: BTreeMap<String, Container>,
}

/// The format of a value: a primitive, a combination, or a named container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Format {
    Unit,
    Bool,
    I8,
    I16,
    I32,
    I64,
    I128,
    U8,
    U16,
    U32,
    U64,
    U128,
    F32,
    F64,
    Char,
    Str,
    Bytes,
    Option(Box<Format>),
    Seq(Box<Format>),
    Map(Box<Format>, Box<Format>),
    Tuple(Vec<Format>),
    Array(Box<Format>, u64),
    Named(String),
}

/// A named container: a struct, or an enum with its variants in index order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Container {
    Struct(Fields),
    Enum(Vec<Variant>),
}

/// The fields of a struct or of an enum variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Fields {
    Unit,
    Newtype(Format),
    Tuple(Vec<Format>),
    Named(Vec<Field>),
}

/// A named field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Field {
    pub(crate) name: String,
    pub(crate) format: Format,
}

/// An enum variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Variant {
    pub(crate) name: String,
    pub(crate) fields: Fields,
}

impl Shape {
    /// Traces the serde shape of `T` by deserializing it from a tracer (no value needed).
    ///
    /// # Errors
    ///
    /// The reason the shape cannot be traced: `T` validates what it deserializes
    /// (`NonZeroU32`, a custom `Deserialize` that checks), asks for a self-describing
    /// format (`#[serde(flatten)]`, untagged or internally tagged enums,
    /// `deserialize_any`), holds two different containers with the same name, has no
    /// finite value (every variant contains the type itself with no `Option`, sequence
    /// or map in between), or nests containers more than 64 deep. Enums anywhere (inside
    /// an `Option`, a sequence or a map too) and recursive types are traced whole.
    pub fn of<T: serde::de::DeserializeOwned>() -> Result<Shape, String> {
        trace::trace::<T>()
    }

    /// A 64-bit FNV-1a hash of the shape's canonical text: structure, field and variant
    /// names, no container names. Stable across builds and Rust versions.
    pub fn fingerprint(&self) -> u64 {
        fnv1a(self.canonical(&self.root).as_bytes())
    }

    /// The canonical text of `format`: containers numbered in the order first reached,
    /// so that container names do not count and recursive types end.
    pub(crate) fn canonical(&self, format: &Format) -> String {
        let mut out = String::new();
        let mut seen = Vec::new();
        self.write_canonical(format, &mut seen, &mut out);
        out
    }

    fn write_canonical(&self, format: &Format, seen: &mut Vec<String>, out: &mut String) {
        if let Format::Named(name) = format {
            if let Some(i) = seen.iter().position(|s| s == name) {
                let _ = write!(out, "#{i}");
                return;
            }
            let _ = write!(out, "#{}=", seen.len());
            seen.push(name.clone());
            match self.containers.get(name) {
                None => out.push('?'),
                Some(Container::Struct(fields)) => self.canonical_fields(fields, seen, out),
                Some(Container::Enum(variants)) => {
                    out.push_str("enum{");
                    for v in variants {
                        let _ = write!(out, "{}:", v.name);
                        self.canonical_fields(&v.fields, seen, out);
                        out.push(',');
                    }
                    out.push('}');
                }
            }
            return;
        }
        let _ = write!(out, "{}", Render::head(format));
        for inner in children(format) {
            out.push('(');
            self.write_canonical(inner, seen, out);
            out.push(')');
        }
    }

    fn canonical_fields(&self, fields: &Fields, seen: &mut Vec<String>, out: &mut String) {
        match fields {
            Fields::Unit => out.push_str("unit"),
            Fields::Newtype(f) => {
                out.push_str("new(");
                self.write_canonical(f, seen, out);
                out.push(')');
            }
            Fields::Tuple(fs) => {
                out.push_str("tuple(");
                for f in fs {
                    self.write_canonical(f, seen, out);
                    out.push(',');
                }
                out.push(')');
            }
            Fields::Named(fs) => {
                out.push_str("struct{");
                for f in fs {
                    let _ = write!(out, "{}:", f.name);
                    self.write_canonical(&f.format, seen, out);
                    out.push(',');
                }
                out.push('}');
            }
        }
    }

    /// The containers reachable from the root, in the order first reached.
    fn reachable(&self) -> Vec<&str> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        let mut stack = vec![&self.root];
        while let Some(format) = stack.pop() {
            if let Format::Named(name) = format {
                if !seen.insert(name.as_str()) {
                    continue;
                }
                order.push(name.as_str());
                match self.containers.get(name) {
                    Some(Container::Struct(fields)) => stack.extend(fields.formats().rev()),
                    Some(Container::Enum(variants)) => {
                        stack.extend(variants.iter().rev().flat_map(|v| v.fields.formats().rev()));
                    }
                    None => {}
                }
            } else {
                stack.extend(children(format).rev());
            }
        }
        order
    }
}

/// The formats directly inside `format` (none for primitives and names).
fn children(format: &Format) -> impl DoubleEndedIterator<Item = &Format> {
    let list: Vec<&Format> = match format {
        Format::Option(f) | Format::Seq(f) | Format::Array(f, _) => vec![f],
        Format::Map(k, v) => vec![k, v],
        Format::Tuple(fs) => fs.iter().collect(),
        _ => Vec::new(),
    };
    list.into_iter()
}

impl Fields {
    fn formats(&self) -> impl DoubleEndedIterator<Item = &Format> {
        let list: Vec<&Format> = match self {
            Fields::Unit => Vec::new(),
            Fields::Newtype(f) => vec![f],
            Fields::Tuple(fs) => fs.iter().collect(),
            Fields::Named(fs) => fs.iter().map(|f| &f.format).collect(),
        };
        list.into_iter()
    }

    /// What kind of fields these are, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Fields::Unit => "unit",
            Fields::Newtype(_) => "newtype",
            Fields::Tuple(_) => "tuple",
            Fields::Named(_) => "struct",
        }
    }
}

/// A format written the way Rust code names it: `u32`, `String`, `Option<Address>`.
pub(crate) struct Render<'a>(pub(crate) &'a Format);

impl Render<'_> {
    /// The canonical name of a format's outermost part.
    fn head(format: &Format) -> &'static str {
        match format {
            Format::Unit => "()",
            Format::Bool => "bool",
            Format::I8 => "i8",
            Format::I16 => "i16",
            Format::I32 => "i32",
            Format::I64 => "i64",
            Format::I128 => "i128",
            Format::U8 => "u8",
            Format::U16 => "u16",
            Format::U32 => "u32",
            Format::U64 => "u64",
            Format::U128 => "u128",
            Format::F32 => "f32",
            Format::F64 => "f64",
            Format::Char => "char",
            Format::Str => "String",
            Format::Bytes => "bytes",
            Format::Option(_) => "Option",
            Format::Seq(_) => "Vec",
            Format::Map(..) => "Map",
            Format::Tuple(_) => "Tuple",
            Format::Array(..) => "Array",
            Format::Named(_) => "Named",
        }
    }
}

impl fmt::Display for Render<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Format::Option(x) => write!(f, "Option<{}>", Render(x)),
            Format::Seq(x) => write!(f, "Vec<{}>", Render(x)),
            Format::Map(k, v) => write!(f, "Map<{}, {}>", Render(k), Render(v)),
            Format::Array(x, n) => write!(f, "[{}; {n}]", Render(x)),
            Format::Tuple(xs) => {
                f.write_str("(")?;
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", Render(x))?;
                }
                f.write_str(")")
            }
            Format::Named(name) => f.write_str(name),
            other => f.write_str(Render::head(other)),
        }
    }
}

struct RenderFields<'a>(&'a Fields);

impl fmt::Display for RenderFields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Fields::Unit => Ok(()),
            Fields::Newtype(x) => write!(f, "({})", Render(x)),
            Fields::Tuple(xs) => write!(f, "{}", Render(&Format::Tuple(xs.clone()))),
            Fields::Named(fs) => {
                f.write_str(" { ")?;
                for (i, field) in fs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}: {}", field.name, Render(&field.format))?;
                }
                f.write_str(" }")
            }
        }
    }
}

/// The root, then each container it reaches: `Profile; Profile = struct { name: String }`.
impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Render(&self.root))?;
        for name in self.reachable() {
            match self.containers.get(name) {
                Some(Container::Struct(fields)) => {
                    write!(f, "; {name} = {}{}", fields.kind(), RenderFields(fields))?;
                }
                Some(Container::Enum(variants)) => {
                    write!(f, "; {name} = enum {{ ")?;
                    for (i, v) in variants.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "{}{}", v.name, RenderFields(&v.fields))?;
                    }
                    f.write_str(" }")?;
                }
                None => write!(f, "; {name} = ?")?,
            }
        }
        Ok(())
    }
}

/// 64-bit FNV-1a: small, and fixed by its definition (unlike `DefaultHasher`).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::fnv1a;

    #[test]
    fn fnv1a_matches_its_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
