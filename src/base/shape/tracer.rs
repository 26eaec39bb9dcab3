//! The tracing `Deserializer`: it deserializes a type from nothing, answering each
//! `deserialize_*` call with a value and recording the format asked for, once per pass.
//!
//! What it records persists across passes (`Tracer::entries`, and the root slot the
//! driver keeps), so each pass can steer towards what is still missing:
//!
//! 1. An `Option` is entered as `Some`, a sequence or map with one element, only while
//!    the format inside is incomplete: unknown, or reaching a container with a variant
//!    not yet visited or a part not yet traced.
//! 2. An enum answers, on each visit, its first variant not yet visited; once all are,
//!    the first whose fields are still incomplete; else the first that has a finite value.
//! 3. Recursion is cut: below a container met again on the current path, every
//!    `Option` is `None`, every sequence and map empty, and an enum answers a variant
//!    whose recorded fields have a finite value under that cut, else one not yet visited
//!    and not in progress; with neither, or a struct met again below the cut, no finite
//!    value exists and tracing fails. Depth is bounded too, so tracing never overflows
//!    the stack.

use super::Format;
use serde::de;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// How many containers deep a traced value may nest.
pub(super) const MAX_DEPTH: usize = 64;

/// A format being traced: [`Format`] with room for a part not yet known.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Fmt {
    Unknown,
    /// A primitive or a named container.
    Leaf(Format),
    Option(Box<Fmt>),
    Seq(Box<Fmt>),
    Map(Box<Fmt>, Box<Fmt>),
    Tuple(Vec<Fmt>),
}

/// The fields of a struct or variant being traced.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Slots {
    Unit,
    Newtype(Fmt),
    Tuple(Vec<Fmt>),
    Named(Vec<(&'static str, Fmt)>),
}

/// A named container as traced so far.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Entry {
    Struct(Slots),
    /// The variant names in index order, and the fields of each variant visited.
    Enum(&'static [&'static str], Vec<Option<Slots>>),
}

/// Why a pass failed.
#[derive(Debug)]
pub(super) enum TraceError {
    /// The type's `Deserialize` refused a traced value, or reported another error.
    Custom(String),
    /// The type needs a self-describing format.
    NotSupported(&'static str),
    /// One name with two different formats.
    Incompatible(String, String),
    /// A container whose every value contains itself.
    NoFiniteValue(String),
    /// Containers nested past [`MAX_DEPTH`].
    TooDeep(String),
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::Custom(m) => f.write_str(m),
            TraceError::NotSupported(what) => write!(f, "{what} is not supported"),
            TraceError::Incompatible(a, b) => write!(f, "{a} / {b}"),
            TraceError::NoFiniteValue(name) => write!(f, "{name} has no finite value"),
            TraceError::TooDeep(name) => write!(f, "{name} nested too deep"),
        }
    }
}

impl std::error::Error for TraceError {}

impl de::Error for TraceError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        TraceError::Custom(msg.to_string())
    }
}

pub(super) type Result<T> = std::result::Result<T, TraceError>;

/// What a tracing pass reads and writes.
#[derive(Debug, Default)]
pub(super) struct Tracer {
    /// Every container reached so far, by name.
    pub(super) entries: BTreeMap<&'static str, Entry>,
    /// The containers entered and not yet left.
    path: Vec<&'static str>,
    /// The enum variants entered and not yet left.
    pub(super) in_progress: Vec<(&'static str, usize)>,
    /// The path length at which a container was met again: below it, recursion is cut.
    cut_at: Option<usize>,
}

impl Tracer {
    /// Starts a pass: nothing entered, nothing cut. What was recorded stays.
    pub(super) fn start_pass(&mut self) {
        self.path.clear();
        self.in_progress.clear();
        self.cut_at = None;
    }

    /// Whether `fmt` has a part not yet known, not counting containers on the path.
    pub(super) fn incomplete(&self, fmt: &Fmt) -> bool {
        let mut seen: BTreeSet<&str> = self.path.iter().copied().collect();
        self.fmt_incomplete(fmt, &mut seen)
    }

    fn fmt_incomplete<'a>(&'a self, fmt: &'a Fmt, seen: &mut BTreeSet<&'a str>) -> bool {
        match fmt {
            Fmt::Unknown => true,
            Fmt::Leaf(Format::Named(name)) => self.container_incomplete(name, seen),
            Fmt::Leaf(_) => false,
            Fmt::Option(f) | Fmt::Seq(f) => self.fmt_incomplete(f, seen),
            Fmt::Map(k, v) => self.fmt_incomplete(k, seen) || self.fmt_incomplete(v, seen),
            Fmt::Tuple(fs) => fs.iter().any(|f| self.fmt_incomplete(f, seen)),
        }
    }

    fn container_incomplete<'a>(&'a self, name: &'a str, seen: &mut BTreeSet<&'a str>) -> bool {
        if !seen.insert(name) {
            return false;
        }
        match self.entries.get(name) {
            None => true,
            Some(Entry::Struct(slots)) => self.slots_incomplete(slots, seen),
            Some(Entry::Enum(_, variants)) => variants
                .iter()
                .any(|v| v.as_ref().is_none_or(|slots| self.slots_incomplete(slots, seen))),
        }
    }

    fn slots_incomplete<'a>(&'a self, slots: &'a Slots, seen: &mut BTreeSet<&'a str>) -> bool {
        slots.formats().any(|f| self.fmt_incomplete(f, seen))
    }

    /// The containers that have a finite value when recursion is cut, each with its
    /// rank: the round of a least fixpoint over what is recorded (a part not yet known
    /// is not finite) in which it became finite. A container of rank `r` has a variant
    /// (or fields) made only of containers of lower rank, so descending by lowest cost
    /// always ends.
    fn ranks(&self) -> BTreeMap<&'static str, usize> {
        let mut ranks = BTreeMap::new();
        for round in 1.. {
            let found: Vec<&'static str> = self
                .entries
                .iter()
                .filter(|(name, _)| !ranks.contains_key(*name))
                .filter(|(_, entry)| match entry {
                    Entry::Struct(slots) => cost(slots, &ranks).is_some(),
                    Entry::Enum(_, variants) => {
                        variants.iter().flatten().any(|slots| cost(slots, &ranks).is_some())
                    }
                })
                .map(|(&name, _)| name)
                .collect();
            if found.is_empty() {
                break;
            }
            ranks.extend(found.into_iter().map(|name| (name, round)));
        }
        ranks
    }

    pub(super) fn cutting(&self) -> bool {
        self.cut_at.is_some()
    }

    /// Enters container `name`; returns the path length to leave it at.
    pub(super) fn enter(&mut self, name: &'static str, is_struct: bool) -> Result<usize> {
        let mark = self.path.len();
        if mark >= MAX_DEPTH {
            return Err(TraceError::TooDeep(name.to_owned()));
        }
        match self.cut_at {
            Some(at) if is_struct && self.path[at..].contains(&name) => {
                return Err(TraceError::NoFiniteValue(name.to_owned()));
            }
            None if self.path.contains(&name) => self.cut_at = Some(mark),
            _ => {}
        }
        self.path.push(name);
        Ok(mark)
    }

    pub(super) fn leave(&mut self, mark: usize) {
        self.path.truncate(mark);
        if self.cut_at.is_some_and(|at| at >= mark) {
            self.cut_at = None;
        }
    }

    /// The variant of enum `name` to answer on this visit (see the module docs).
    pub(super) fn choose(&self, name: &'static str, variants: &[Option<Slots>]) -> Result<usize> {
        let ranks = self.ranks();
        // The recorded variant with a finite value that costs least (the first on ties).
        let cheapest = variants
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some((cost(v.as_ref()?, &ranks)?, i)))
            .min()
            .map(|(_, i)| i);
        let first = |pick: &dyn Fn(usize, &Option<Slots>) -> bool| {
            variants.iter().enumerate().position(|(i, v)| pick(i, v))
        };
        if self.cutting() {
            return cheapest
                .or_else(|| first(&|i, v| v.is_none() && !self.in_progress.contains(&(name, i))))
                .ok_or_else(|| TraceError::NoFiniteValue(name.to_owned()));
        }
        let incomplete = |slots: &Slots| {
            let mut seen: BTreeSet<&str> = self.path.iter().copied().collect();
            seen.insert(name);
            self.slots_incomplete(slots, &mut seen)
        };
        Ok(first(&|_, v| v.is_none())
            .or_else(|| first(&|_, v| v.as_ref().is_some_and(incomplete)))
            .or(cheapest)
            .unwrap_or(0))
    }

    /// Merges `slots` into the entry of struct `name`.
    pub(super) fn record_struct(&mut self, name: &'static str, slots: Slots) -> Result<()> {
        match self.entries.get_mut(name) {
            None => {
                self.entries.insert(name, Entry::Struct(slots));
                Ok(())
            }
            Some(Entry::Struct(old)) => unify_slots(old, slots),
            Some(Entry::Enum(..)) => Err(incompatible(name, "an enum", "a struct")),
        }
    }

    /// The recorded fields of struct `name`, or `fresh` when it has none yet.
    pub(super) fn struct_slots(&self, name: &'static str, fresh: Slots) -> Result<Slots> {
        match self.entries.get(name) {
            None => Ok(fresh),
            Some(Entry::Struct(old)) if old.same_kind(&fresh) => Ok(old.clone()),
            Some(_) => Err(incompatible(name, "one container", "another")),
        }
    }
}

/// The highest rank among the containers `slots` reach without an `Option`, sequence or
/// map (0 for none), or `None` when one of them has no finite value known.
fn cost(slots: &Slots, ranks: &BTreeMap<&'static str, usize>) -> Option<usize> {
    slots.formats().try_fold(0, |most, f| Some(most.max(fmt_cost(f, ranks)?)))
}

fn fmt_cost(fmt: &Fmt, ranks: &BTreeMap<&'static str, usize>) -> Option<usize> {
    match fmt {
        Fmt::Unknown => None,
        Fmt::Leaf(Format::Named(name)) => ranks.get(name.as_str()).copied(),
        Fmt::Leaf(_) | Fmt::Option(_) | Fmt::Seq(_) | Fmt::Map(..) => Some(0),
        Fmt::Tuple(fs) => fs.iter().try_fold(0, |most, f| Some(most.max(fmt_cost(f, ranks)?))),
    }
}

pub(super) fn incompatible(name: &str, a: &str, b: &str) -> TraceError {
    TraceError::Incompatible(format!("{name} as {a}"), format!("{name} as {b}"))
}

impl Slots {
    pub(super) fn formats(&self) -> impl Iterator<Item = &Fmt> {
        let list: Vec<&Fmt> = match self {
            Slots::Unit => Vec::new(),
            Slots::Newtype(f) => vec![f],
            Slots::Tuple(fs) => fs.iter().collect(),
            Slots::Named(fs) => fs.iter().map(|(_, f)| f).collect(),
        };
        list.into_iter()
    }

    pub(super) fn same_kind(&self, other: &Slots) -> bool {
        match (self, other) {
            (Slots::Unit, Slots::Unit) | (Slots::Newtype(_), Slots::Newtype(_)) => true,
            (Slots::Tuple(a), Slots::Tuple(b)) => a.len() == b.len(),
            (Slots::Named(a), Slots::Named(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.0 == y.0)
            }
            _ => false,
        }
    }
}

/// Merges what a visit found (`new`) into what was known (`old`).
pub(super) fn unify(old: &mut Fmt, new: Fmt) -> Result<()> {
    match (old, new) {
        (_, Fmt::Unknown) => Ok(()),
        (old @ Fmt::Unknown, new) => {
            *old = new;
            Ok(())
        }
        (Fmt::Leaf(a), Fmt::Leaf(b)) if *a == b => Ok(()),
        (Fmt::Option(a), Fmt::Option(b)) | (Fmt::Seq(a), Fmt::Seq(b)) => unify(a, *b),
        (Fmt::Map(k1, v1), Fmt::Map(k2, v2)) => {
            unify(k1, *k2)?;
            unify(v1, *v2)
        }
        (Fmt::Tuple(a), Fmt::Tuple(b)) if a.len() == b.len() => {
            a.iter_mut().zip(b).try_for_each(|(a, b)| unify(a, b))
        }
        (a, b) => Err(TraceError::Incompatible(format!("{a:?}"), format!("{b:?}"))),
    }
}

pub(super) fn unify_slots(old: &mut Slots, new: Slots) -> Result<()> {
    if !old.same_kind(&new) {
        return Err(TraceError::Incompatible(format!("{old:?}"), format!("{new:?}")));
    }
    match (old, new) {
        (Slots::Newtype(a), Slots::Newtype(b)) => unify(a, b),
        (Slots::Tuple(a), Slots::Tuple(b)) => {
            a.iter_mut().zip(b).try_for_each(|(a, b)| unify(a, b))
        }
        (Slots::Named(a), Slots::Named(b)) => {
            a.iter_mut().zip(b).try_for_each(|(a, (_, b))| unify(&mut a.1, b))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Shape;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    enum Tree {
        Node(Vec<Tree>),
        Leaf(u32),
    }

    #[derive(Serialize, Deserialize)]
    enum List {
        Cons(u32, Box<List>),
        Nil,
    }

    /// Two lists side by side: the second is reached after `List` is known whole, where
    /// its recursive first variant must not be answered again and again.
    #[derive(Serialize, Deserialize)]
    struct Two {
        a: List,
        b: List,
        trees: Vec<Tree>,
    }

    #[derive(Serialize, Deserialize)]
    enum Ping {
        To(Box<Pong>),
        Stop,
    }

    #[derive(Serialize, Deserialize)]
    enum Pong {
        Back(Box<Ping>),
        Many(Vec<Ping>),
    }

    #[derive(Serialize, Deserialize)]
    enum Endless {
        Left(Box<Endless>),
        Right(Box<Endless>),
    }

    #[derive(Serialize, Deserialize)]
    struct Chain {
        next: Box<Chain>,
    }

    /// Traces on a thread with a small stack: recursion that is not cut would overflow it.
    fn traced<T: serde::de::DeserializeOwned>() -> Result<Result<String, String>, String> {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| Shape::of::<T>().map(|s| s.to_string()))
            .map_err(|e| e.to_string())?
            .join()
            .map_err(|_| "tracing panicked".to_owned())
    }

    #[test]
    fn recursive_first_variants_trace_without_overflow() -> Result<(), String> {
        assert_eq!(traced::<Tree>()??, "Tree; Tree = enum { Node(Vec<Tree>), Leaf(u32) }");
        assert_eq!(traced::<List>()??, "List; List = enum { Cons(u32, List), Nil }");
        assert_eq!(
            traced::<Two>()??,
            "Two; Two = struct { a: List, b: List, trees: Vec<Tree> }; \
             List = enum { Cons(u32, List), Nil }; Tree = enum { Node(Vec<Tree>), Leaf(u32) }"
        );
        assert_eq!(
            traced::<Vec<Pong>>()??,
            "Vec<Pong>; Pong = enum { Back(Ping), Many(Vec<Ping>) }; \
             Ping = enum { To(Pong), Stop }"
        );
        Ok(())
    }

    #[test]
    fn types_without_a_finite_value_fail_clearly() -> Result<(), String> {
        for reason in [traced::<Endless>()?, traced::<Chain>()?] {
            let reason = reason.err().ok_or("traced a type without a finite value")?;
            assert!(reason.contains("has no finite value"), "{reason}");
        }
        Ok(())
    }

    #[test]
    fn enums_inside_containers_get_every_variant() -> Result<(), String> {
        #[derive(Serialize, Deserialize)]
        enum Kind {
            Small,
            Large(u32),
            Huge { size: u64 },
        }
        let kind = "Kind = enum { Small, Large(u32), Huge { size: u64 } }";
        assert_eq!(Shape::of::<Vec<Kind>>()?.to_string(), format!("Vec<Kind>; {kind}"));
        assert_eq!(Shape::of::<Option<Kind>>()?.to_string(), format!("Option<Kind>; {kind}"));
        let map = Shape::of::<std::collections::BTreeMap<String, Vec<Option<Kind>>>>()?;
        assert_eq!(map.to_string(), format!("Map<String, Vec<Option<Kind>>>; {kind}"));
        Ok(())
    }
}
