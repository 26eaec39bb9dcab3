//! Snapshot reads that take a view handle or an index definition.

use crate::api::index_def::IndexDef;
use crate::api::view::View;
use crate::mem::{IndexView, Snapshot, ViewSnapshot};
use serde::Serialize;
use serde::de::DeserializeOwned;

impl Snapshot {
    /// The typed records of `view` at this snapshot's LSN.
    ///
    /// A handle of another store reads as an empty view.
    pub fn view<K, V, C>(&self, view: &View<K, V, C>) -> ViewSnapshot<K, V> {
        let id = if view.store.id() == self.store { view.id } else { usize::MAX };
        self.view_by_id(id)
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
