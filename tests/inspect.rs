//! Reading a store file without the Rust types: values and keys decoded by their stored
//! shapes equal what `serde_json` makes of the typed values, an import of those JSON
//! lines writes the same bytes back, and bad lines change nothing.

#![cfg(feature = "inspect")]

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Cursor;
use viewstore::inspect::{ImportMode, StoreFile, import};
use viewstore::{Error, IndexDef, Store, View, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Kind {
    Plain,
    Tagged(u8),
    Pair(i32, String),
    Named { a: bool, b: Option<u16> },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Meters(f64);

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Marker;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Inner {
    city: String,
    zip: Option<u32>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Everything {
    id: u64,
    neg: i64,
    small: i8,
    wide: u128,
    f: f64,
    single: f32,
    c: char,
    s: String,
    bytes: Vec<u8>,
    opt: Option<String>,
    none: Option<u32>,
    kinds: (Kind, Kind, Kind, Kind),
    kind_list: Vec<Kind>,
    maybe_kind: Option<Kind>,
    list: Vec<Inner>,
    map: BTreeMap<String, u32>,
    int_map: BTreeMap<u32, String>,
    tuple: (u8, String),
    array: [u16; 3],
    unit: (),
    nested: Inner,
    newtype: Meters,
    marker: Marker,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct UserKey {
    tenant: u32,
    user: String,
}

static EVERYTHING: ViewDef<UserKey, Everything> =
    ViewDef::new("everything").with_indexes(&[&BY_CITY]);
static BY_CITY: IndexDef<Everything, String> =
    IndexDef::multi("by_city", |v: &Everything| v.nested.city.clone());

fn sample(n: u32) -> (UserKey, Everything) {
    let key = UserKey { tenant: n % 3, user: format!("user-{n}") };
    let value = Everything {
        id: u64::from(n) * 1_000_000_007,
        neg: -i64::from(n),
        small: -3,
        wide: u128::from(n) << 40,
        f: f64::from(n) / 4.0,
        single: 0.5,
        c: 'é',
        s: format!("name \"{n}\"\n"),
        bytes: vec![0, 255, n as u8],
        opt: n.is_multiple_of(2).then(|| "even".to_owned()),
        none: None,
        kinds: (
            Kind::Plain,
            Kind::Tagged(n as u8),
            Kind::Pair(-1, "p".into()),
            Kind::Named { a: true, b: Some(7) },
        ),
        kind_list: vec![Kind::Named { a: false, b: None }, Kind::Plain],
        maybe_kind: (n % 2 == 1).then_some(Kind::Tagged(3)),
        list: vec![Inner { city: "x".into(), zip: None }; (n % 3) as usize],
        map: BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), n)]),
        int_map: BTreeMap::from([(n, "x".to_owned())]),
        tuple: (9, "t".into()),
        array: [1, 2, n as u16],
        unit: (),
        nested: Inner { city: format!("city-{}", n % 4), zip: Some(n) },
        newtype: Meters(1.5),
        marker: Marker,
    };
    (key, value)
}

fn fill(path: &std::path::Path, n: u32) -> viewstore::Result<()> {
    let store = Store::open(path)?;
    let view: View<UserKey, Everything> = store.view(&EVERYTHING)?;
    for i in 0..n {
        let (key, value) = sample(i);
        view.put(&key, value, u64::from(i) + 1)?;
    }
    view.delete(&sample(0).0, 100)?;
    store.close()
}

#[test]
fn dumped_records_equal_serde_json_of_the_typed_values() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.redb");
    fill(&path, 20)?;
    let file = StoreFile::open(&path)?;
    let info = file.info()?;
    let view = &info.views[0];
    assert!(!view.shape.contains("unknown"), "{}", view.shape);
    assert_eq!((view.name.as_str(), view.records, view.tombstones), ("everything", 19, 1));
    assert_eq!(view.indexes.len(), 1);
    assert_eq!(view.indexes[0].entries, 19);
    let mut seen = BTreeMap::new();
    file.dump("everything", &mut |record| {
        seen.insert(record.key.to_string(), record);
        Ok(())
    })?;
    assert_eq!(seen.len(), 20);
    for i in 0..20 {
        let (key, value) = sample(i);
        let record = &seen[&serde_json::to_value(&key)?.to_string()];
        assert!(!record.raw);
        if i == 0 {
            assert_eq!((record.version, record.value.as_ref()), (100, None));
            continue;
        }
        assert_eq!(record.version, u64::from(i) + 1);
        // serde_json makes map keys strings; the dump keeps a map with keys of another
        // type as [key, value] pairs, so that it reads back.
        let mut expected = serde_json::to_value(&value)?;
        let pairs: Vec<_> = value.int_map.iter().map(|(k, v)| serde_json::json!([k, v])).collect();
        expected["int_map"] = serde_json::Value::Array(pairs);
        assert_eq!(record.value, Some(expected), "record {i}");
    }
    assert!(file.verify()?.is_ok());
    Ok(())
}

#[test]
fn exported_lines_import_into_another_store_and_read_back_typed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (from, to) = (dir.path().join("from.redb"), dir.path().join("to.redb"));
    fill(&from, 30)?;
    {
        let store = Store::open(&to)?;
        let view = store.view(&EVERYTHING)?;
        view.put(&sample(5).0, sample(99).1, 1_000)?; // newer than the import: kept
        view.put(&sample(6).0, sample(98).1, 1)?; // older: replaced
        store.close()?;
    }
    let mut lines = String::new();
    StoreFile::open(&from)?.dump("everything", &mut |record| {
        lines.push_str(&record.to_json().to_string());
        lines.push('\n');
        Ok(())
    })?;
    let report = import(&to, "everything", Cursor::new(lines), ImportMode::Merge)?;
    assert_eq!((report.lines, report.written, report.skipped), (30, 29, 1));

    let store = Store::open(&to)?;
    let view = store.view(&EVERYTHING)?;
    assert_eq!(view.get(&sample(0).0), None);
    let kept = view.get_versioned(&sample(5).0).map(|(v, x)| (v, (*x).clone()));
    assert_eq!(kept, Some((1_000, sample(99).1)));
    for i in (1..30).filter(|&i| i != 5) {
        let (key, value) = sample(i);
        let got = view.get_versioned(&key).map(|(v, x)| (v, (*x).clone()));
        assert_eq!(got, Some((u64::from(i) + 1, value)), "record {i}");
    }
    // The index was rebuilt from the imported records at this open.
    assert!(store.verify()?.is_ok());
    // sample(5) holds sample(99)'s value, in city-3.
    let in_city_1 = (1..30).filter(|&i| i != 5 && i % 4 == 1).count();
    assert_eq!(view.index_count(&BY_CITY, "city-1"), in_city_1);
    Ok(())
}

#[test]
fn a_bad_line_names_itself_and_imports_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.redb");
    fill(&path, 3)?;
    let contents = |path: &std::path::Path| -> viewstore::Result<Vec<String>> {
        let file = StoreFile::open(path)?;
        let mut lines = vec![format!("{:?}", file.info()?.lsn)];
        file.dump("everything", &mut |r| {
            lines.push(r.to_json().to_string());
            Ok(())
        })?;
        Ok(lines)
    };
    let before = contents(&path)?;
    let good = r#"{"key":{"tenant":1,"user":"new"},"version":5,"deleted":true}"#;
    let cases = [
        ("not json", "not JSON"),
        (r#"{"key":{"tenant":1,"user":"x"},"version":0,"deleted":true}"#, "'version'"),
        (r#"{"key":{"tenant":"one","user":"x"},"version":1,"deleted":true}"#, "expected u32"),
        (r#"{"key":{"tenant":1},"version":1,"deleted":true}"#, "missing field 'user'"),
        (r#"{"key":{"tenant":1,"user":"x"},"version":1,"value":{"id":1}}"#, "missing field"),
        (r#"{"key":{"tenant":1,"user":"x"},"version":1,"value":null,"deleted":true}"#, "not both"),
        (r#"{"key":{"tenant":1,"user":"x"},"version":1,"extra":1}"#, "unknown member 'extra'"),
    ];
    for (bad, says) in cases {
        let input = format!("{good}\n\n{bad}\n");
        let err =
            import(&path, "everything", Cursor::new(input), ImportMode::Replace).expect_err(bad);
        let text = err.to_string();
        assert!(matches!(err, Error::Import { line: 3, .. }), "{bad}: {text}");
        assert!(text.contains(says) && text.contains("line 3"), "{bad}: {text} should say {says}");
        assert!(contents(&path)? == before, "{bad} changed the store");
    }
    let err = import(&path, "nothing", Cursor::new(good), ImportMode::Merge).expect_err("no view");
    assert!(matches!(err, Error::UnknownView { .. }), "{err}");
    Ok(())
}

#[test]
fn a_store_held_open_is_refused_with_a_clear_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.redb");
    let store = Store::open(&path)?;
    let err = StoreFile::open(&path).err().ok_or("opened a store held open")?;
    assert!(matches!(err, Error::AlreadyOpen { .. }), "{err}");
    let err = import(&path, "x", Cursor::new(""), ImportMode::Merge).expect_err("held open");
    assert!(matches!(err, Error::AlreadyOpen { .. }), "{err}");
    store.close()?;
    drop(store);
    assert!(StoreFile::open(&path)?.info()?.views.is_empty());
    Ok(())
}

#[test]
fn files_that_are_not_stores_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("garbage");
    std::fs::write(&path, b"definitely not a store")?;
    let err = StoreFile::open(&path).err().ok_or("opened garbage")?;
    assert!(matches!(err, Error::NotAStore { .. }), "{err}");
    Ok(())
}

static WIDE: ViewDef<u32, (u128, f64, i128, f32)> = ViewDef::new("wide");

#[test]
fn wide_integers_and_floats_that_are_not_finite_round_trip_as_strings() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (from, to) = (dir.path().join("from.redb"), dir.path().join("to.redb"));
    let values =
        [(u128::MAX, f64::NAN, i128::MIN, f32::INFINITY), (7, f64::NEG_INFINITY, -7, -0.25)];
    for path in [&from, &to] {
        let store = Store::open(path)?;
        let view = store.view(&WIDE)?;
        if path == &from {
            for (k, v) in values.iter().enumerate() {
                view.put(&(k as u32), *v, 1)?;
            }
        }
        store.close()?;
    }
    let mut lines = String::new();
    StoreFile::open(&from)?.dump("wide", &mut |record| {
        lines.push_str(&record.to_json().to_string());
        lines.push('\n');
        Ok(())
    })?;
    let first = lines.lines().next().ok_or("no line")?;
    assert_eq!(
        first,
        format!(r#"{{"key":0,"version":1,"value":["{}","NaN","{}","inf"]}}"#, u128::MAX, i128::MIN)
    );
    import(&to, "wide", Cursor::new(lines), ImportMode::Merge)?;
    let store = Store::open(&to)?;
    let view = store.view(&WIDE)?;
    for (k, v) in values.iter().enumerate() {
        let got = *view.get(&(k as u32)).ok_or("missing")?;
        assert_eq!(
            (got.0, got.1.to_bits(), got.2, got.3.to_bits()),
            (v.0, v.1.to_bits(), v.2, v.3.to_bits())
        );
    }
    Ok(())
}

/// A codec of its own: values are UTF-8 bytes, so their shape is unknown to the store.
#[derive(Clone)]
struct Utf8;

impl viewstore::Codec<String> for Utf8 {
    fn encode(&self, value: &String, out: &mut Vec<u8>) -> Result<(), viewstore::CodecError> {
        out.extend_from_slice(value.as_bytes());
        Ok(())
    }
    fn decode(&self, bytes: &[u8]) -> Result<String, viewstore::CodecError> {
        String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string().into())
    }
}

static OWN_CODEC: ViewDef<u32, String, Utf8> = ViewDef::with_codec("own", Utf8);

#[test]
fn a_known_key_and_a_raw_value_dump_and_import_each_in_its_own_form() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (from, to) = (dir.path().join("from.redb"), dir.path().join("to.redb"));
    for path in [&from, &to] {
        let store = Store::open(path)?;
        let view = store.view(&OWN_CODEC)?;
        if path == &from {
            view.put(&7, "héllo".to_owned(), 3)?;
        }
        store.close()?;
    }
    let mut lines = String::new();
    StoreFile::open(&from)?.dump("own", &mut |record| {
        lines.push_str(&record.to_json().to_string());
        Ok(())
    })?;
    let bytes: Vec<u8> = "héllo".bytes().collect();
    let expected = serde_json::json!({"key": 7, "version": 3, "value": bytes, "raw": true});
    assert_eq!(lines, expected.to_string());
    import(&to, "own", Cursor::new(lines), ImportMode::Merge)?;
    let store = Store::open(&to)?;
    assert_eq!(store.view(&OWN_CODEC)?.get(&7).as_deref().map(String::as_str), Some("héllo"));
    Ok(())
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Tree(Option<Box<Tree>>);

static TREES: ViewDef<u32, Tree> = ViewDef::new("trees");

#[test]
fn json_that_a_recursive_shape_would_take_without_end_is_an_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.redb");
    {
        let store = Store::open(&path)?;
        store.view(&TREES)?.put(&1, Tree(Some(Box::new(Tree(None)))), 1)?;
        store.close()?;
    }
    let line = r#"{"key":2,"version":1,"value":1}"#;
    let err = import(&path, "trees", Cursor::new(line), ImportMode::Merge).expect_err("endless");
    assert!(err.to_string().contains("nests deeper than"), "{err}");
    Ok(())
}

#[test]
fn a_file_whose_journal_holds_groups_is_refused_until_opened() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.redb");
    fill(&path, 2)?;
    let journal = dir.path().join("store.redb.journal");
    std::fs::write(&journal, b"pending groups")?;
    for err in [
        StoreFile::open(&path).err(),
        import(&path, "everything", Cursor::new(""), ImportMode::Merge).err(),
    ] {
        let err = err.ok_or("read a file with a pending journal")?;
        assert!(err.to_string().contains("Store::open, which replays them"), "{err}");
    }
    std::fs::remove_file(&journal)?;
    assert_eq!(StoreFile::open(&path)?.info()?.views.len(), 1);
    Ok(())
}
