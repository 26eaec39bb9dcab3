//! `Store::view_migrated`: a view opened at its definition's schema version after its
//! stored values are converted by a `Migration`, in bounded writer transactions.

use crate::api::migration::Migration;
use crate::api::open_view::{shapes_of, traced};
use crate::api::store::Store;
use crate::api::view::{View, ViewDef};
use crate::base::codec::Codec;
use crate::base::error::{Error, Result};
use crate::base::manage::MigrationProgress;
use crate::base::panic::panic_message;
use crate::engine::manage_op::{ManageOp, Managed};
use crate::keys::render_key;
use crate::schema::migration::{Convert, MigrationPlan, StepFailure};
use crate::schema::names::check_view_name;
use crate::schema::registration::{ViewKey, ViewValue};
use crate::storage::shapes::TypeShape;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

impl Store {
    /// Opens a view like [`Store::view`], first converting its stored values to the
    /// definition's schema version with `migration` when the file holds them at an older
    /// version the chain covers.
    ///
    /// The conversion runs in the writer, in transactions of at most
    /// [`Migration::chunk_records`] rows (or about [`Migration::chunk_bytes`] bytes), each
    /// committed durably, with writes to other views going on between them. The first
    /// marks the view as migrating in the file; records are converted in place in key
    /// order, their versions unchanged; the last records the new types and shapes and
    /// drops the view's index tables, which the open then builds from the converted
    /// records. Until then no build opens the view: this one says it is half migrated,
    /// and calling `view_migrated` again with the same migration resumes after the last
    /// converted record (after a crash too). The change feed records nothing of a
    /// migration: it is local to the file, and a follower migrates its own copy.
    ///
    /// A view stored at the definition's version opens as with [`Store::view`]; a view
    /// the file does not hold is created.
    ///
    /// # Examples
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use viewstore::{Migration, Store, ViewDef};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct ProfileV1 { name: String }
    /// #[derive(Debug, PartialEq, Serialize, Deserialize)]
    /// struct Profile { name: String, posts: u32 }
    ///
    /// const PROFILES_V1: ViewDef<u64, ProfileV1> = ViewDef::new("profiles");
    /// const PROFILES: ViewDef<u64, Profile> = ViewDef::new("profiles").with_schema_version(2);
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("views.redb");
    /// # {
    /// #     let store = Store::open(&path)?;
    /// #     store.view(&PROFILES_V1)?.put(&7, ProfileV1 { name: "ada".into() }, 3)?;
    /// # }
    /// let store = Store::open(&path)?;
    /// let migration = Migration::<ProfileV1>::from_version(1)
    ///     .then(2, |old: ProfileV1| Profile { name: old.name, posts: 0 });
    /// let profiles = store.view_migrated(&PROFILES, &migration)?;
    /// assert_eq!(profiles.get(&7).as_deref(), Some(&Profile { name: "ada".into(), posts: 0 }));
    /// assert_eq!(profiles.version(&7), Some(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Migration`] when the chain does not end at the definition's schema
    /// version or its versions do not increase, when it does not convert from the stored
    /// version, when the stored values have another shape than the chain's type for
    /// their version or another codec than `Bincode`, when a step fails or panics or a
    /// stored value does not decode (naming the key and step), or when the view is half
    /// migrated to another version; [`Error::SchemaMismatch`] when the stored schema
    /// version is newer than the definition's, or the key type differs;
    /// [`Error::ViewOpen`] when the view is open in this process at another version;
    /// every error of [`Store::view`]. A failure before the first transaction commits
    /// changes nothing; a later one leaves the view half migrated, to be resumed.
    pub fn view_migrated<K, V, C>(
        &self,
        def: &ViewDef<K, V, C>,
        migration: &Migration<V>,
    ) -> Result<View<K, V, C>>
    where
        K: ViewKey,
        V: ViewValue,
        C: Codec<V> + Clone,
    {
        let view = def.name();
        check_view_name(view)?;
        let refuse = |reason: String| Error::Migration {
            view: view.to_owned(),
            step: None,
            key: None,
            reason,
        };
        if let Some(reason) = &migration.invalid {
            return Err(refuse(reason.clone()));
        }
        let to = def.schema_version();
        if migration.last != to {
            return Err(refuse(format!(
                "the migration ends at schema version {}, and the definition has schema version \
                 {to}",
                migration.last
            )));
        }
        let plan = Arc::new(MigrationPlan {
            view: view.to_owned(),
            meta: def.meta(),
            shapes: shapes_of(def),
            covered: migration
                .covered
                .iter()
                .map(|&(version, trace)| (version, TypeShape::from_trace(traced(trace))))
                .collect(),
            convert: erase(migration, def.codec().clone()),
            render_key: render_key::<K>,
            chunk_records: migration.chunk_records,
            chunk_bytes: migration.chunk_bytes,
        });
        loop {
            let Managed::Migrated(step) = self.manage(ManageOp::Migrate(Arc::clone(&plan)))? else {
                return Err(self.mismatched_answer());
            };
            if step.from != to
                && let Some(report) = &migration.progress
            {
                let progress = MigrationProgress {
                    view: view.to_owned(),
                    from: step.from,
                    to,
                    done: step.done,
                    total: step.total,
                };
                // A panicking report is user code: it loses that report, nothing else.
                let _ = catch_unwind(AssertUnwindSafe(|| report(&progress)));
            }
            if step.finished {
                break;
            }
        }
        self.view(def)
    }
}

/// The chain followed by the definition's codec, with types erased.
fn erase<V: ViewValue, C: Codec<V>>(migration: &Migration<V>, codec: C) -> Convert {
    let chain = Arc::clone(&migration.chain);
    Arc::new(move |stored, bytes| {
        let value = chain(stored, bytes)?;
        let mut out = Vec::new();
        let failed = |reason: String| StepFailure {
            step: None,
            reason: format!("encoding the converted value: {reason}"),
        };
        match catch_unwind(AssertUnwindSafe(|| codec.encode(&value, &mut out))) {
            Ok(Ok(())) => Ok(out),
            Ok(Err(e)) => Err(failed(e.to_string())),
            Err(payload) => Err(failed(format!("panicked: {}", panic_message(payload.as_ref())))),
        }
    })
}
