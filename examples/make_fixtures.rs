//! Writes the migration fixtures: one store file per schema version of the `profiles`
//! view (`tests/profiles/mod.rs` has the three value types), each holding the same
//! records, every tenth deleted. `tests/migration_fixtures.rs` opens each with the
//! current code and the migration chain.
//!
//! ```text
//! cargo run --release --example make_fixtures -- tests/fixtures
//! ```
//!
//! The files are checked in: rerun this only to add a version, never to change the
//! files of the existing ones (they stand for stores written by earlier builds).

#[path = "../tests/profiles/mod.rs"]
mod profiles;

use profiles::{PROFILES_V1, PROFILES_V2, PROFILES_V3, RECORDS, deleted, v1, v2, v3, version_of};
use std::path::{Path, PathBuf};
use viewstore::{Batch, Codec, Store, View, ViewDef, ViewKey, ViewValue};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "tests/fixtures".into()));
    std::fs::create_dir_all(&dir)?;
    write(&dir.join("profiles_v1.redb"), &PROFILES_V1, v1)?;
    write(&dir.join("profiles_v2.redb"), &PROFILES_V2, v2)?;
    write(&dir.join("profiles_v3.redb"), &PROFILES_V3, v3)?;
    Ok(())
}

/// Writes a new store at `path` with the view `def`, then compacts it.
fn write<V, C>(
    path: &Path,
    def: &ViewDef<u64, V, C>,
    value: fn(u64) -> V,
) -> Result<(), Box<dyn std::error::Error>>
where
    V: ViewValue,
    C: Codec<V> + Clone,
    u64: ViewKey,
{
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let store = Store::open(path)?;
    let view: View<u64, V, C> = store.view(def)?;
    let mut batch = Batch::new();
    for id in 0..RECORDS {
        batch.put(&view, &id, value(id), version_of(id))?;
    }
    store.submit(batch)?.wait()?;
    for id in (0..RECORDS).filter(|&id| deleted(id)) {
        view.delete(&id, version_of(id) + 1)?;
    }
    store.compact()?;
    store.close()?;
    println!("{}: {} bytes", path.display(), std::fs::metadata(path)?.len());
    Ok(())
}
