//! What changed between two shapes of a view's key or value, as a list of changes that
//! name the path of each (`Profile.address.city: u32 → String`).

use super::{Container, Fields, Format, Render, Shape, Variant};
use std::collections::BTreeSet;
use std::fmt;

/// Which of a view's types a change is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Key,
    Value,
}

/// One difference between a stored shape and the current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShapeChange {
    pub(crate) part: Part,
    /// Where: the root type's name, then `.field`, `::Variant`, `.0` for tuple
    /// elements, `[]` for elements of a sequence, `[key]` and `[value]` for maps.
    pub(crate) path: String,
    pub(crate) change: Change,
}

/// What changed at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    FieldAdded {
        field: String,
        format: String,
    },
    FieldRemoved {
        field: String,
        format: String,
    },
    /// One field removed and one added at the same position with the same format.
    FieldRenamed {
        from: String,
        to: String,
    },
    /// The fields both shapes have, in a new order.
    FieldsReordered {
        from: Vec<String>,
        to: Vec<String>,
    },
    TypeChanged {
        from: String,
        to: String,
    },
    VariantAdded {
        variant: String,
    },
    VariantRemoved {
        variant: String,
    },
    /// The variants both shapes have, in a new order (bincode stores the index).
    VariantsReordered {
        from: Vec<String>,
        to: Vec<String>,
    },
    /// A struct became an enum, a tuple struct became a struct, and the like.
    KindChanged {
        from: String,
        to: String,
    },
}

/// The changes from `stored` to `current`, in path order; empty when they have the same
/// shape (container names aside).
pub(crate) fn shape_changes(part: Part, stored: &Shape, current: &Shape) -> Vec<ShapeChange> {
    let root = match (&current.root, part) {
        (Format::Named(name), _) => name.clone(),
        (_, Part::Key) => "key".to_owned(),
        (_, Part::Value) => "value".to_owned(),
    };
    let mut diff = Diff { part, old: stored, new: current, seen: BTreeSet::new(), out: Vec::new() };
    diff.format(&root, &stored.root, &current.root);
    diff.out
}

struct Diff<'a> {
    part: Part,
    old: &'a Shape,
    new: &'a Shape,
    /// Pairs of containers already compared: recursive types end.
    seen: BTreeSet<(&'a str, &'a str)>,
    out: Vec<ShapeChange>,
}

impl<'a> Diff<'a> {
    fn push(&mut self, path: &str, change: Change) {
        self.out.push(ShapeChange { part: self.part, path: path.to_owned(), change });
    }

    fn same(&self, a: &Format, b: &Format) -> bool {
        self.old.canonical(a) == self.new.canonical(b)
    }

    fn format(&mut self, path: &str, a: &'a Format, b: &'a Format) {
        match (a, b) {
            (Format::Named(x), Format::Named(y)) => {
                if !self.seen.insert((x, y)) {
                    return;
                }
                match (self.old.containers.get(x), self.new.containers.get(y)) {
                    (Some(Container::Struct(fa)), Some(Container::Struct(fb))) => {
                        self.fields(path, fa, fb);
                    }
                    (Some(Container::Enum(va)), Some(Container::Enum(vb))) => {
                        self.variants(path, va, vb);
                    }
                    (ca, cb) => {
                        let from = ca.map_or("unknown", container_kind).to_owned();
                        let to = cb.map_or("unknown", container_kind).to_owned();
                        self.push(path, Change::KindChanged { from, to });
                    }
                }
            }
            (Format::Option(x), Format::Option(y)) => self.format(path, x, y),
            (Format::Seq(x), Format::Seq(y)) => self.format(&format!("{path}[]"), x, y),
            (Format::Array(x, len_x), Format::Array(y, len_y)) if len_x == len_y => {
                self.format(&format!("{path}[]"), x, y);
            }
            (Format::Map(ka, va), Format::Map(kb, vb)) => {
                self.format(&format!("{path}[key]"), ka, kb);
                self.format(&format!("{path}[value]"), va, vb);
            }
            (Format::Tuple(xs), Format::Tuple(ys)) if xs.len() == ys.len() => {
                for (i, (x, y)) in xs.iter().zip(ys).enumerate() {
                    self.format(&format!("{path}.{i}"), x, y);
                }
            }
            _ if self.same(a, b) => {}
            _ => {
                let (from, to) = (Render(a).to_string(), Render(b).to_string());
                self.push(path, Change::TypeChanged { from, to });
            }
        }
    }

    fn fields(&mut self, path: &str, a: &'a Fields, b: &'a Fields) {
        match (a, b) {
            (Fields::Unit, Fields::Unit) => {}
            (Fields::Newtype(x), Fields::Newtype(y)) => self.format(path, x, y),
            (Fields::Tuple(xs), Fields::Tuple(ys)) if xs.len() == ys.len() => {
                for (i, (x, y)) in xs.iter().zip(ys).enumerate() {
                    self.format(&format!("{path}.{i}"), x, y);
                }
            }
            (Fields::Named(xs), Fields::Named(ys)) => {
                let old: Vec<&str> = xs.iter().map(|f| f.name.as_str()).collect();
                let new: Vec<&str> = ys.iter().map(|f| f.name.as_str()).collect();
                let removed: Vec<usize> =
                    (0..xs.len()).filter(|&i| !new.contains(&old[i])).collect();
                let added: Vec<usize> = (0..ys.len()).filter(|&i| !old.contains(&new[i])).collect();
                if let ([r], [n]) = (removed.as_slice(), added.as_slice())
                    && r == n
                    && self.same(&xs[*r].format, &ys[*n].format)
                {
                    let (from, to) = (xs[*r].name.clone(), ys[*n].name.clone());
                    self.push(path, Change::FieldRenamed { from, to });
                } else {
                    for &i in &removed {
                        let format = Render(&xs[i].format).to_string();
                        self.push(path, Change::FieldRemoved { field: xs[i].name.clone(), format });
                    }
                    for &i in &added {
                        let format = Render(&ys[i].format).to_string();
                        self.push(path, Change::FieldAdded { field: ys[i].name.clone(), format });
                    }
                }
                let kept_old: Vec<String> =
                    old.iter().filter(|n| new.contains(n)).map(|&n| n.to_owned()).collect();
                let kept_new: Vec<String> =
                    new.iter().filter(|n| old.contains(n)).map(|&n| n.to_owned()).collect();
                if kept_old != kept_new {
                    self.push(path, Change::FieldsReordered { from: kept_old, to: kept_new });
                }
                for x in xs {
                    if let Some(y) = ys.iter().find(|y| y.name == x.name) {
                        self.format(&format!("{path}.{}", x.name), &x.format, &y.format);
                    }
                }
            }
            _ => {
                let (from, to) = (fields_kind(a), fields_kind(b));
                self.push(path, Change::KindChanged { from, to });
            }
        }
    }

    fn variants(&mut self, path: &str, a: &'a [Variant], b: &'a [Variant]) {
        let old: Vec<&str> = a.iter().map(|v| v.name.as_str()).collect();
        let new: Vec<&str> = b.iter().map(|v| v.name.as_str()).collect();
        for name in old.iter().filter(|n| !new.contains(n)) {
            self.push(path, Change::VariantRemoved { variant: (*name).to_owned() });
        }
        for name in new.iter().filter(|n| !old.contains(n)) {
            self.push(path, Change::VariantAdded { variant: (*name).to_owned() });
        }
        // Bincode stores a variant's index: a variant that keeps its name but not its
        // index reads as another variant.
        let moved = a
            .iter()
            .enumerate()
            .any(|(i, v)| b.iter().position(|w| w.name == v.name).is_some_and(|j| j != i));
        if moved {
            let from = old.iter().filter(|n| new.contains(n)).map(|&n| n.to_owned()).collect();
            let to = new.iter().filter(|n| old.contains(n)).map(|&n| n.to_owned()).collect();
            self.push(path, Change::VariantsReordered { from, to });
        }
        for v in a {
            if let Some(w) = b.iter().find(|w| w.name == v.name) {
                self.fields(&format!("{path}::{}", v.name), &v.fields, &w.fields);
            }
        }
    }
}

fn container_kind(container: &Container) -> &'static str {
    match container {
        Container::Struct(fields) => fields.kind(),
        Container::Enum(_) => "enum",
    }
}

fn fields_kind(fields: &Fields) -> String {
    match fields {
        Fields::Tuple(xs) => format!("tuple of {}", xs.len()),
        other => other.kind().to_owned(),
    }
}

fn list(names: &[String]) -> String {
    names.join(", ")
}

impl fmt::Display for ShapeChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let part = match self.part {
            Part::Key => "key",
            Part::Value => "value",
        };
        let path = &self.path;
        match &self.change {
            Change::FieldAdded { field, format } => {
                write!(f, "{part} {path}: field `{field}: {format}` added")
            }
            Change::FieldRemoved { field, format } => {
                write!(f, "{part} {path}: field `{field}: {format}` removed")
            }
            Change::FieldRenamed { from, to } => {
                write!(f, "{part} {path}: field `{from}` renamed to `{to}`")
            }
            Change::FieldsReordered { from, to } => {
                write!(f, "{part} {path}: fields reordered from ({}) to ({})", list(from), list(to))
            }
            Change::TypeChanged { from, to } | Change::KindChanged { from, to } => {
                write!(f, "{part} {path}: {from} → {to}")
            }
            Change::VariantAdded { variant } => {
                write!(f, "{part} {path}: variant `{variant}` added")
            }
            Change::VariantRemoved { variant } => {
                write!(f, "{part} {path}: variant `{variant}` removed")
            }
            Change::VariantsReordered { from, to } => write!(
                f,
                "{part} {path}: variants reordered from ({}) to ({})",
                list(from),
                list(to)
            ),
        }
    }
}
