//! The `viewstore.shapes` table: per view, the names and traced serde shapes of its key
//! and value types, with their fingerprints. Kept apart from `viewstore.views` so that
//! a `ViewMeta`'s bytes stay what older builds read.
//!
//! A row is `[1][bincode (standard configuration) of ViewShapes]`. The leading byte is
//! the row's layout version; the structures below, and [`Shape`]'s, only ever gain
//! variants at their end. With it, a tool can decode a view's bincode values without
//! the Rust types: the value's shape says what each byte is.

use crate::base::shape::{Part, Shape, ShapeChange, shape_changes};
use crate::storage::format::{decode_row, encode_row};
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

/// One row per view: its name and its [`ViewShapes`].
pub(crate) const SHAPES: TableDefinition<&str, &[u8]> = TableDefinition::new("viewstore.shapes");

/// The layout version of a row of [`SHAPES`].
const LAYOUT: u8 = 1;

/// What the store records about the shapes of a view's key and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ViewShapes {
    pub(crate) key_type: String,
    pub(crate) value_type: String,
    pub(crate) key: TypeShape,
    pub(crate) value: TypeShape,
}

/// A traced shape with its fingerprint, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum TypeShape {
    Known { fingerprint: u64, shape: Shape },
    Unknown { reason: String },
}

impl TypeShape {
    pub(crate) fn from_trace(traced: Result<Shape, String>) -> Self {
        match traced {
            Ok(shape) => TypeShape::Known { fingerprint: shape.fingerprint(), shape },
            Err(reason) => TypeShape::Unknown { reason },
        }
    }
}

impl ViewShapes {
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        encode_row(LAYOUT, self)
    }

    /// The shapes of a row; `None` for a row this build cannot read (a newer layout).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        decode_row::<Self, { 1 << 24 }>(LAYOUT, bytes)
    }

    /// The changes from `self` (stored) to `current`, for the key then the value; none
    /// for a part whose shape either side does not know.
    pub(crate) fn changes(&self, current: &ViewShapes) -> Vec<ShapeChange> {
        let mut out = Vec::new();
        for (part, old, new) in
            [(Part::Key, &self.key, &current.key), (Part::Value, &self.value, &current.value)]
        {
            if let (TypeShape::Known { shape: old, .. }, TypeShape::Known { shape: new, .. }) =
                (old, new)
            {
                out.extend(shape_changes(part, old, new));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{TypeShape, ViewShapes};
    use crate::base::shape::Shape;

    #[test]
    fn rows_round_trip_and_refuse_other_layouts() {
        let shapes = ViewShapes {
            key_type: "u64".into(),
            value_type: "(u8, String)".into(),
            key: TypeShape::from_trace(Shape::of::<u64>()),
            value: TypeShape::Unknown { reason: "custom codec".into() },
        };
        let bytes = shapes.to_bytes();
        assert_eq!(ViewShapes::from_bytes(&bytes), Some(shapes));
        let mut newer = bytes.clone();
        newer[0] = 2;
        assert_eq!(ViewShapes::from_bytes(&newer), None);
        assert_eq!(ViewShapes::from_bytes(&[]), None);
        assert_eq!(ViewShapes::from_bytes(&bytes[..bytes.len() - 1]), None);
    }
}
