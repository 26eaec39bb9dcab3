//! Type identity and shapes: a view's key and value shapes are recorded in the file, a
//! shape that changes without a new schema version is refused with a message that says
//! what changed, moving a type to another module changes nothing, and older files open.

use redb::{ReadableDatabase, TableDefinition, TableHandle};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use viewstore::{Codec, CodecError, Error, Shape, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const VIEWS: TableDefinition<&str, &[u8]> = TableDefinition::new("viewstore.views");
const SHAPES: TableDefinition<&str, &[u8]> = TableDefinition::new("viewstore.shapes");

/// Writes one `A` under key 1 in view "items", closes, then opens the view as `B` and
/// returns the error's message (or `None` when it opened).
fn reopen_as<A, B>(path: &Path, first: A, v1: u32, v2: u32) -> Result<Option<Error>, Error>
where
    A: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    B: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let store = Store::open(path)?;
    store.view(&ViewDef::<u64, A>::new("items").with_schema_version(v1))?.put(&1, first, 1)?;
    store.close()?;
    let store = Store::open(path)?;
    let opened = store.view(&ViewDef::<u64, B>::new("items").with_schema_version(v2));
    store.close()?;
    Ok(opened.err())
}

/// The changes a `SchemaMismatch` lists, checked to name the view.
fn changes(err: Option<Error>) -> Result<Vec<String>, String> {
    match err {
        Some(Error::SchemaMismatch { view, changes, .. }) if view == "items" => Ok(changes),
        other => Err(format!("expected SchemaMismatch on 'items', got {other:?}")),
    }
}

mod v1 {
    use serde::{Deserialize, Serialize};
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Item {
        pub(crate) a: u32,
        pub(crate) b: u32,
    }
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) enum Kind {
        Small,
        Large(u32),
    }
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Address {
        pub(crate) city: u32,
    }
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Order {
        pub(crate) kinds: Vec<Kind>,
    }
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Profile {
        pub(crate) name: String,
        pub(crate) address: Address,
    }
}

/// The same types as `v1`, in another module.
mod moved {
    use serde::{Deserialize, Serialize};
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Item {
        pub(crate) a: u32,
        pub(crate) b: u32,
    }
}

mod changed {
    use serde::{Deserialize, Serialize};
    pub(crate) mod added {
        use super::{Deserialize, Serialize};
        #[derive(Serialize, Deserialize)]
        pub(crate) struct Item {
            pub(crate) a: u32,
            pub(crate) b: u32,
            pub(crate) c: String,
        }
    }
    pub(crate) mod removed {
        use super::{Deserialize, Serialize};
        #[derive(Serialize, Deserialize)]
        pub(crate) struct Item {
            pub(crate) a: u32,
        }
    }
    pub(crate) mod reordered {
        use super::{Deserialize, Serialize};
        #[derive(Serialize, Deserialize)]
        pub(crate) struct Item {
            pub(crate) b: u32,
            pub(crate) a: u32,
        }
    }
    pub(crate) mod renamed {
        use super::{Deserialize, Serialize};
        #[derive(Serialize, Deserialize)]
        pub(crate) struct Item {
            pub(crate) a: u32,
            pub(crate) bee: u32,
        }
    }
    pub(crate) mod retyped {
        use super::{Deserialize, Serialize};
        #[derive(Serialize, Deserialize)]
        pub(crate) struct Item {
            pub(crate) a: u32,
            pub(crate) b: u64,
        }
    }
    pub(crate) mod variant_added {
        use super::{Deserialize, Serialize};
        #[derive(Serialize, Deserialize)]
        pub(crate) enum Kind {
            Small,
            Large(u32),
            Huge { size: u64 },
        }
    }
    pub(crate) mod in_a_vec {
        use super::{Deserialize, Serialize};
        #[derive(Serialize, Deserialize)]
        pub(crate) enum Kind {
            Small,
            Large(u64),
        }
        #[derive(Serialize, Deserialize)]
        pub(crate) struct Order {
            pub(crate) kinds: Vec<Kind>,
        }
    }
    pub(crate) mod variants_reordered {
        use super::{Deserialize, Serialize};
        #[derive(Serialize, Deserialize)]
        pub(crate) enum Kind {
            Large(u32),
            Small,
        }
    }
    pub(crate) mod nested {
        use super::{Deserialize, Serialize};
        #[derive(Serialize, Deserialize)]
        pub(crate) struct Address {
            pub(crate) city: String,
        }
        #[derive(Serialize, Deserialize)]
        pub(crate) struct Profile {
            pub(crate) name: String,
            pub(crate) address: Address,
        }
    }
}

fn item() -> v1::Item {
    v1::Item { a: 1, b: 2 }
}

#[test]
fn an_added_field_is_refused_and_named() -> TestResult {
    let dir = tempfile::tempdir()?;
    let err =
        reopen_as::<v1::Item, changed::added::Item>(&dir.path().join("s.redb"), item(), 1, 1)?;
    let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
    assert_eq!(changes(err)?, ["value Item: field `c: String` added"]);
    assert!(text.contains("the shape changed: value Item: field `c: String` added"), "{text}");
    Ok(())
}

#[test]
fn a_removed_field_is_refused_and_named() -> TestResult {
    let dir = tempfile::tempdir()?;
    let err =
        reopen_as::<v1::Item, changed::removed::Item>(&dir.path().join("s.redb"), item(), 1, 1)?;
    assert_eq!(changes(err)?, ["value Item: field `b: u32` removed"]);
    Ok(())
}

#[test]
fn reordered_fields_of_one_type_are_refused() -> TestResult {
    // Bincode does not store field names: without the shape check, the swapped fields
    // would decode, silently swapped.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let err = reopen_as::<v1::Item, changed::reordered::Item>(&path, item(), 1, 1)?;
    assert_eq!(changes(err)?, ["value Item: fields reordered from (a, b) to (b, a)"]);
    Ok(())
}

#[test]
fn a_renamed_field_is_refused_and_named() -> TestResult {
    let dir = tempfile::tempdir()?;
    let err =
        reopen_as::<v1::Item, changed::renamed::Item>(&dir.path().join("s.redb"), item(), 1, 1)?;
    assert_eq!(changes(err)?, ["value Item: field `b` renamed to `bee`"]);
    Ok(())
}

#[test]
fn a_retyped_field_is_refused_with_both_types() -> TestResult {
    let dir = tempfile::tempdir()?;
    let err =
        reopen_as::<v1::Item, changed::retyped::Item>(&dir.path().join("s.redb"), item(), 1, 1)?;
    assert_eq!(changes(err)?, ["value Item.b: u32 → u64"]);
    Ok(())
}

#[test]
fn enum_variants_added_or_reordered_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let large = v1::Kind::Large(3);
    let err = reopen_as::<v1::Kind, changed::variant_added::Kind>(
        &dir.path().join("a.redb"),
        large.clone(),
        1,
        1,
    )?;
    assert_eq!(changes(err)?, ["value Kind: variant `Huge` added"]);
    let err = reopen_as::<v1::Kind, changed::variants_reordered::Kind>(
        &dir.path().join("b.redb"),
        large,
        1,
        1,
    )?;
    assert_eq!(
        changes(err)?,
        ["value Kind: variants reordered from (Small, Large) to (Large, Small)"]
    );
    Ok(())
}

#[test]
fn a_change_in_a_nested_type_names_its_path() -> TestResult {
    let dir = tempfile::tempdir()?;
    let profile = v1::Profile { name: "ada".into(), address: v1::Address { city: 7 } };
    let err = reopen_as::<v1::Profile, changed::nested::Profile>(
        &dir.path().join("s.redb"),
        profile,
        1,
        1,
    )?;
    assert_eq!(changes(err)?, ["value Profile.address.city: u32 → String"]);
    Ok(())
}

#[test]
fn a_type_moved_to_another_module_opens_with_its_data() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    assert!(reopen_as::<v1::Item, moved::Item>(&path, item(), 1, 1)?.is_none());
    let store = Store::open(&path)?;
    let items = store.view(&ViewDef::<u64, moved::Item>::new("items"))?;
    assert_eq!(items.get(&1).as_deref(), Some(&moved::Item { a: 1, b: 2 }));
    Ok(())
}

/// The same shape as `v1::Item` under another Rust name.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Renamed {
    a: u32,
    b: u32,
}

#[test]
fn fixed_type_names_survive_a_rust_type_rename() -> TestResult {
    const BEFORE: ViewDef<u64, v1::Item> = ViewDef::new("items").with_type_names("Id", "Item");
    const AFTER: ViewDef<u64, Renamed> = ViewDef::new("items").with_type_names("Id", "Item");
    const UNFIXED: ViewDef<u64, Renamed> = ViewDef::new("items");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::open(&path)?;
    store.view(&BEFORE)?.put(&1, item(), 1)?;
    store.close()?;
    let store = Store::open(&path)?;
    // Without fixed names, the new name is a different type.
    let err = store.view(&UNFIXED).map(drop).expect_err("renamed type");
    assert!(matches!(&err, Error::SchemaMismatch { changes, .. } if changes.is_empty()), "{err:?}");
    let items = store.view(&AFTER)?;
    assert_eq!(items.get(&1).as_deref(), Some(&Renamed { a: 1, b: 2 }));
    Ok(())
}

#[test]
fn a_new_schema_version_is_a_mismatch_as_before_with_the_changes_listed() -> TestResult {
    let dir = tempfile::tempdir()?;
    // The same shape, a new version: refused as before, no shape change to list.
    let err = reopen_as::<v1::Item, moved::Item>(&dir.path().join("a.redb"), item(), 1, 2)?;
    let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(changes(err)?.is_empty());
    assert!(text.contains("schema version 1") && text.contains("schema version 2"), "{text}");
    // A new shape and a new version: refused, with the change listed.
    let path = dir.path().join("b.redb");
    let err = reopen_as::<v1::Item, changed::retyped::Item>(&path, item(), 1, 2)?;
    assert_eq!(changes(err)?, ["value Item.b: u32 → u64"]);
    Ok(())
}

/// The bincode of a `ViewMeta` as builds before shapes wrote it: four fields, strings
/// as a one-byte length (all under 251 bytes) and their bytes, the version as one byte.
fn old_meta(key: &str, value: &str, codec: &str, version: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for text in [key, value, codec] {
        out.push(u8::try_from(text.len()).unwrap_or(0));
        out.extend_from_slice(text.as_bytes());
    }
    out.push(version);
    out
}

#[test]
fn an_old_file_opens_and_records_its_shapes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("old.redb");
    let store = Store::open(&path)?;
    store.view(&ViewDef::<u64, v1::Item>::new("items"))?.put(&1, item(), 1)?;
    store.close()?;
    // Make it the file an older build wrote: full type names, no shapes table.
    let full = std::any::type_name::<v1::Item>();
    assert!(full.contains("::v1::Item"), "{full}");
    {
        let db = redb::Database::open(&path)?;
        let txn = db.begin_write()?;
        txn.open_table(VIEWS)?.insert(
            "items",
            old_meta("u64", full, "viewstore::base::codec::Bincode", 1).as_slice(),
        )?;
        assert!(txn.delete_table(SHAPES)?);
        txn.commit()?;
    }
    let store = Store::open(&path)?;
    let items = store.view(&ViewDef::<u64, v1::Item>::new("items"))?;
    assert_eq!(items.get(&1).as_deref(), Some(&item()));
    store.close()?;
    let db = redb::Database::open(&path)?;
    let txn = db.begin_read()?;
    let meta = txn.open_table(VIEWS)?.get("items")?.map(|m| m.value().to_vec()).unwrap_or_default();
    assert_eq!(meta, old_meta("u64", "Item", "Bincode", 1), "the meta is rewritten without paths");
    let shapes =
        txn.open_table(SHAPES)?.get("items")?.map(|m| m.value().to_vec()).unwrap_or_default();
    let text = String::from_utf8_lossy(&shapes);
    assert!(text.contains("Item") && text.contains('a') && text.contains('b'), "{text}");
    assert!(txn.list_tables()?.any(|t| t.name() == "viewstore.shapes"));
    drop(txn);
    drop(db);
    // Now that the file records the shape, a shape change is refused.
    let store = Store::open(&path)?;
    let err = store.view(&ViewDef::<u64, changed::renamed::Item>::new("items")).err();
    assert_eq!(changes(err)?, ["value Item: field `b` renamed to `bee`"]);
    Ok(())
}

/// A value whose `Deserialize` validates what it reads: tracing offers it a zero, which
/// it refuses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Loose {
    count: std::num::NonZeroU32,
}

fn loose() -> Loose {
    Loose { count: std::num::NonZeroU32::MIN }
}

/// A codec with no shape: the value's bytes are its UTF-8 text.
#[derive(Clone)]
struct Utf8;

impl Codec<String> for Utf8 {
    fn encode(&self, value: &String, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(value.as_bytes());
        Ok(())
    }
    fn decode(&self, bytes: &[u8]) -> Result<String, CodecError> {
        Ok(std::str::from_utf8(bytes)?.to_owned())
    }
}

/// The bytes of view `view`'s row in the shapes table.
fn shape_row(path: &Path, view: &str) -> Result<String, Box<dyn std::error::Error>> {
    let db = redb::Database::open(path)?;
    let txn = db.begin_read()?;
    let row = txn.open_table(SHAPES)?.get(view)?.map(|m| m.value().to_vec()).unwrap_or_default();
    Ok(String::from_utf8_lossy(&row).into_owned())
}

#[test]
fn untraceable_types_open_with_shape_unknown() -> TestResult {
    const LOOSE: ViewDef<u64, Loose> = ViewDef::new("loose");
    const TEXT: ViewDef<u64, String, Utf8> = ViewDef::with_codec("text", Utf8);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::open(&path)?;
    store.view(&LOOSE)?.put(&1, loose(), 1)?;
    store.view(&TEXT)?.put(&1, "plain".to_owned(), 1)?;
    store.close()?;
    let store = Store::open(&path)?;
    assert_eq!(store.view(&LOOSE)?.get(&1).as_deref(), Some(&loose()));
    assert_eq!(store.view(&TEXT)?.get(&1).as_deref(), Some(&"plain".to_owned()));
    store.close()?;
    let loose = shape_row(&path, "loose")?;
    assert!(loose.contains("the type refused the value it was traced with"), "{loose}");
    let text = shape_row(&path, "text")?;
    assert!(text.contains("the codec reports no shape"), "{text}");
    Ok(())
}

/// A codec with no shape for text (its UTF-8 bytes) and for u32 (4 bytes, little-endian):
/// one codec name for two value types.
#[derive(Clone)]
struct Raw;

impl Codec<String> for Raw {
    fn encode(&self, value: &String, out: &mut Vec<u8>) -> Result<(), CodecError> {
        Utf8.encode(value, out)
    }
    fn decode(&self, bytes: &[u8]) -> Result<String, CodecError> {
        Utf8.decode(bytes)
    }
}

impl Codec<u32> for Raw {
    fn encode(&self, value: &u32, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(&value.to_le_bytes());
        Ok(())
    }
    fn decode(&self, bytes: &[u8]) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(bytes.try_into()?))
    }
}

#[test]
fn a_value_that_no_longer_decodes_says_the_schema_changed() -> TestResult {
    // A view whose codec reports no shape cannot be checked at open: its first record
    // that does not decode names the type and the usual fix. Same names, codec and
    // version: only the bytes tell.
    const TEXT: ViewDef<u64, String, Raw> =
        ViewDef::with_codec("values", Raw).with_type_names("u64", "Count");
    const COUNTS: ViewDef<u64, u32, Raw> =
        ViewDef::with_codec("values", Raw).with_type_names("u64", "Count");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::open(&path)?;
    store.view(&TEXT)?.put(&5, "five!".to_owned(), 1)?;
    store.close()?;
    let store = Store::open(&path)?;
    let err = store.view(&COUNTS).map(drop).expect_err("the bytes are not a u32");
    let text = err.to_string();
    assert!(
        text.contains(
            "view 'values', key 5 do not match the current type Count at schema version 1"
        ),
        "{text}"
    );
    assert!(text.contains("usually a schema change rather than corruption"), "{text}");
    assert!(text.contains("raise the view's schema_version"), "{text}");
    Ok(())
}

/// The variants of `v1::Kind`, as a shape's text lists them.
const KIND: &str = "Kind = enum { Small, Large(u32) }";

#[test]
fn enums_inside_options_sequences_and_maps_trace_every_variant() -> TestResult {
    assert_eq!(Shape::of::<Vec<v1::Kind>>()?.to_string(), format!("Vec<Kind>; {KIND}"));
    assert_eq!(Shape::of::<Option<v1::Kind>>()?.to_string(), format!("Option<Kind>; {KIND}"));
    assert_eq!(
        Shape::of::<BTreeMap<String, v1::Kind>>()?.to_string(),
        format!("Map<String, Kind>; {KIND}")
    );
    assert_eq!(
        Shape::of::<Vec<Option<v1::Kind>>>()?.to_string(),
        format!("Vec<Option<Kind>>; {KIND}")
    );
    Ok(())
}

#[test]
fn a_changed_variant_of_an_enum_inside_a_vec_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let order = v1::Order { kinds: vec![v1::Kind::Small, v1::Kind::Large(2)] };
    let path = dir.path().join("s.redb");
    let err = reopen_as::<v1::Order, changed::in_a_vec::Order>(&path, order, 1, 1)?;
    let listed = changes(err)?;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].contains("Large") && listed[0].contains("u32 → u64"), "{listed:?}");
    Ok(())
}

/// A tree whose first variant contains itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Tree {
    Node(Vec<Tree>),
    Leaf(u32),
}

/// A list whose first variant contains itself, with nothing in between.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum List {
    Cons(u32, Box<List>),
    Nil,
}

/// A type with no finite value: every variant contains itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Endless {
    Left(Box<Endless>),
    Right(Box<Endless>),
}

#[test]
fn recursive_enums_trace_and_their_views_open() -> TestResult {
    assert_eq!(
        Shape::of::<Tree>()?.to_string(),
        "Tree; Tree = enum { Node(Vec<Tree>), Leaf(u32) }"
    );
    assert_eq!(Shape::of::<List>()?.to_string(), "List; List = enum { Cons(u32, List), Nil }");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let tree = Tree::Node(vec![Tree::Leaf(1), Tree::Node(vec![])]);
    let list = List::Cons(1, Box::new(List::Nil));
    let store = Store::open(&path)?;
    store.view(&ViewDef::<u64, Tree>::new("trees"))?.put(&1, tree.clone(), 1)?;
    store.view(&ViewDef::<u64, List>::new("lists"))?.put(&1, list.clone(), 1)?;
    store.close()?;
    let store = Store::open(&path)?;
    assert_eq!(store.view(&ViewDef::<u64, Tree>::new("trees"))?.get(&1).as_deref(), Some(&tree));
    assert_eq!(store.view(&ViewDef::<u64, List>::new("lists"))?.get(&1).as_deref(), Some(&list));
    store.close()?;
    let row = shape_row(&path, "trees")?;
    assert!(row.contains("Node") && row.contains("Leaf"), "{row}");
    // The shape is checked: another tree type under the same name is refused.
    let err = reopen_as::<Tree, v1::Kind>(&dir.path().join("b.redb"), tree, 1, 1)?;
    assert!(!changes(err)?.is_empty());
    Ok(())
}

#[test]
fn a_type_without_a_finite_value_opens_with_shape_unknown() -> TestResult {
    let reason = Shape::of::<Endless>().err().ok_or("traced a type without a finite value")?;
    assert!(reason.contains("Endless has no finite value"), "{reason}");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::open(&path)?;
    let view = store.view(&ViewDef::<u64, Endless>::new("endless"))?;
    assert_eq!(view.get(&1), None);
    store.close()?;
    let row = shape_row(&path, "endless")?;
    assert!(row.contains("Endless has no finite value"), "{row}");
    Ok(())
}
