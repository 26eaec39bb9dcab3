//! Snapshot reads that take a view handle or an index definition.

use crate::api::index_def::IndexDef;
use crate::api::view::View;
use crate::base::error::{Error, Result};
use crate::mem::{IndexView, Snapshot, ViewSnapshot};
use serde::Serialize;
use serde::de::DeserializeOwned;

impl Snapshot {
    /// The typed records of `view` at this snapshot's LSN.
    ///
    /// # Errors
    ///
    /// [`Error::ForeignView`] for a handle of another store than this snapshot's.
    pub fn view<K, V, C>(&self, view: &View<K, V, C>) -> Result<ViewSnapshot<K, V>> {
        if view.store.id() != self.store {
            return Err(Error::ForeignView { view: view.name().to_owned() });
        }
        Ok(self.view_by_id(view.id))
    }
}

impl<K, V> ViewSnapshot<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Send + Sync + 'static,
{
    /// One of this view's secondary indexes, read at this snapshot's LSN. An index the
    /// view was not opened with reads as empty.
    pub fn index<I>(&self, index: &IndexDef<V, I>) -> IndexView<'_, K, V, I>
    where
        I: Serialize + DeserializeOwned,
    {
        self.index_named(index.name())
    }
}
