//! `Store::view`: a view's definition checked, registered with the writer (which
//! checks it against the file and loads the view), and its handle made.

use crate::api::store::Store;
use crate::api::view::{View, ViewDef};
use crate::base::codec::Codec;
use crate::base::error::{Error, Result};
use crate::base::panic::panic_message;
use crate::base::shape::Shape;
use crate::engine::writer::Request;
use crate::keys::unencodable_part;
use crate::schema::names::{check_index_names, check_source_names, check_view_name};
use crate::schema::registration::TypedRegistration;
use crate::schema::registration::{ViewKey, ViewValue};
use crate::storage::shapes::{TypeShape, ViewShapes};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A shape traced by user code (a type's `Deserialize`, a codec): a panic in it makes
/// the shape unknown, with the panic's message as the reason.
pub(super) fn traced(trace: impl FnOnce() -> Result<Shape, String>) -> Result<Shape, String> {
    catch_unwind(AssertUnwindSafe(trace)).unwrap_or_else(|payload| {
        Err(format!("tracing panicked: {}", panic_message(payload.as_ref())))
    })
}

impl Store {
    /// Opens a view: registers it on first use (recording its types and schema version)
    /// and loads its records into memory, or checks that they match what is stored.
    /// Call it once per view and clone the handle.
    ///
    /// # Errors
    ///
    /// [`Error::SchemaMismatch`] when the view is stored with other key or value types,
    /// codec or schema version, with a key or value shape that changed under the same
    /// schema version (the error lists the changes), or sources that the declared ones do not extend
    /// (nothing is written); [`Error::InvalidViewName`]; [`Error::InvalidSource`];
    /// [`Error::KeyEncoding`] when the key type holds a part the key encoding cannot
    /// encode (a float, a map, an untagged enum), in any variant;
    /// [`Error::Decode`] naming the key of a stored record that does not decode;
    /// [`Error::Closed`].
    pub fn view<K, V, C>(&self, def: &ViewDef<K, V, C>) -> Result<View<K, V, C>>
    where
        K: ViewKey,
        V: ViewValue,
        C: Codec<V> + Clone,
    {
        check_view_name(def.name())?;
        check_index_names(def.name(), def.indexes().iter().map(|i| i.index_name()))?;
        check_source_names(def.name(), def.sources())?;
        if let Err(what) = unencodable_part::<K>() {
            return Err(Error::KeyEncoding {
                view: def.name().to_owned(),
                reason: format!(
                    "the key type {} holds {what}, which the order-preserving key encoding \
                     cannot encode",
                    std::any::type_name::<K>()
                ),
            });
        }
        for index in def.indexes() {
            if let Err(what) = index.unencodable_key_part() {
                return Err(Error::InvalidIndex {
                    view: def.name().to_owned(),
                    index: index.index_name().to_owned(),
                    reason: format!(
                        "the index key type {} holds {what}, which the order-preserving key \
                         encoding cannot encode",
                        index.index_key_type()
                    ),
                    key: None,
                });
            }
        }
        let meta = def.meta();
        let shapes = shapes_of(def);
        let registration = TypedRegistration::<K, V, C> {
            name: def.name(),
            meta,
            shapes,
            codec: def.codec().clone(),
            indexes: def.indexes(),
            sources: def.sources(),
            feed: def.feed(),
            _types: PhantomData,
        };
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Request::Register { registration: Box::new(registration), reply })?;
        let id = answer.recv().map_err(|_| self.gone_error())??;
        Ok(View::new(self.clone(), id, def.name(), def.codec().clone(), def.sources()))
    }
}

/// The names and traced shapes of a definition's key and value.
pub(super) fn shapes_of<K, V, C>(def: &ViewDef<K, V, C>) -> ViewShapes
where
    K: ViewKey,
    V: ViewValue,
    C: Codec<V> + Clone,
{
    let meta = def.meta();
    ViewShapes {
        key_type: meta.key_type,
        value_type: meta.value_type,
        key: TypeShape::from_trace(traced(|| Shape::of::<K>())),
        value: TypeShape::from_trace(traced(|| def.codec().value_shape())),
    }
}
