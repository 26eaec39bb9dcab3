//! The order-preserving key encoding, proved through the public API: keys stored in a
//! view come back from scans in their `Ord` order, decoded to what was put in, and a
//! range scan returns exactly the keys a `BTreeMap` would.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::Bound;
use std::sync::Arc;
use viewstore::{Batch, Store, ViewDef, ViewKey};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A store in memory: the encoding is the subject here, not the disk.
fn memory_store() -> viewstore::Result<Store> {
    Store::builder("memory")
        .backend(Arc::new(viewstore::redb::backends::InMemoryBackend::new()))
        .open()
}

/// Puts `keys` into a fresh view (value: the key's rank in a `BTreeMap`), then checks
/// every scan against the `BTreeMap`, including ranges between `a` and `b`.
fn check_order<K>(keys: Vec<K>, a: K, b: K) -> Result<(), TestCaseError>
where
    K: ViewKey + Ord + Clone,
{
    let fail = |e: viewstore::Error| TestCaseError::fail(e.to_string());
    let model: BTreeMap<K, usize> = keys.into_iter().map(|k| (k, 0)).collect();
    let model: BTreeMap<K, usize> = model.into_keys().enumerate().map(|(i, k)| (k, i)).collect();

    let store = memory_store().map_err(fail)?;
    let def: ViewDef<K, usize> = ViewDef::new("keys");
    let view = store.view(&def).map_err(fail)?;
    let mut batch = Batch::new();
    for (k, &rank) in &model {
        batch.put(&view, k, rank, 1).map_err(fail)?;
    }
    store.submit(batch).map_err(fail)?.wait().map_err(fail)?;

    let snap = view.snapshot();
    let scanned: Vec<(K, usize)> = snap.iter().map(|(k, v)| (k, *v)).collect();
    let expected: Vec<(K, usize)> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
    // Same keys (decoding round-trips) in the same order (byte order is `Ord` order).
    prop_assert_eq!(&scanned, &expected);
    let backwards: Vec<K> = snap.iter().rev().map(|(k, _)| k).collect();
    let mut expected_back: Vec<K> = model.keys().cloned().collect();
    expected_back.reverse();
    prop_assert_eq!(backwards, expected_back);
    for (k, &rank) in &model {
        prop_assert_eq!(view.get_with(k, |v| *v), Some(rank));
    }

    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let keys_of =
        |it: &mut dyn Iterator<Item = (K, &usize)>| it.map(|(k, _)| k).collect::<Vec<_>>();
    let model_keys =
        |r: (Bound<&K>, Bound<&K>)| model.range(r).map(|(k, _)| k.clone()).collect::<Vec<_>>();
    prop_assert_eq!(
        keys_of(&mut snap.range(lo.clone()..hi.clone())),
        model_keys((Bound::Included(&lo), Bound::Excluded(&hi)))
    );
    prop_assert_eq!(
        keys_of(&mut snap.range(lo.clone()..=hi.clone())),
        model_keys((Bound::Included(&lo), Bound::Included(&hi)))
    );
    prop_assert_eq!(
        keys_of(&mut snap.range(..hi.clone())),
        model_keys((Bound::Unbounded, Bound::Excluded(&hi)))
    );
    prop_assert_eq!(
        keys_of(&mut snap.range(lo.clone()..)),
        model_keys((Bound::Unbounded, Bound::Unbounded))
            .into_iter()
            .filter(|k| *k >= lo)
            .collect::<Vec<_>>()
    );
    prop_assert_eq!(
        keys_of(&mut snap.range((Bound::Excluded(lo.clone()), Bound::Excluded(hi.clone())))),
        model.keys().filter(|k| **k > lo && **k < hi).cloned().collect::<Vec<_>>()
    );
    // A reversed range holds nothing (and does not panic).
    if lo < hi {
        prop_assert_eq!(keys_of(&mut snap.range(hi.clone()..lo.clone())), Vec::<K>::new());
    }
    // The collecting range on the handle agrees with the snapshot's.
    let collected: Vec<K> =
        view.range(lo.clone()..hi.clone()).into_iter().map(|(k, _)| k).collect();
    prop_assert_eq!(collected, model_keys((Bound::Included(&lo), Bound::Excluded(&hi))));
    store.close().map_err(fail)?;
    Ok(())
}

/// Strings rich in the bytes the encoding escapes or terminates on, and in prefixes of
/// each other.
fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof!["[\\x00\\x01ab\\x7f\u{ff}\u{100}\u{10000}]{0,5}", any::<String>(),]
}

fn tricky_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0xFF), any::<u8>()], 0..6)
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Page {
    section: i16,
    title: String,
    revision: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Event {
    Started,
    Counted(i32),
    Named { name: String, rank: u8 },
    Pair(u8, bool),
}

fn page() -> impl Strategy<Value = Page> {
    (any::<i16>(), tricky_string(), any::<Option<u8>>())
        .prop_map(|(section, title, revision)| Page { section, title, revision })
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::Started),
        any::<i32>().prop_map(Event::Counted),
        (tricky_string(), any::<u8>()).prop_map(|(name, rank)| Event::Named { name, rank }),
        (any::<u8>(), any::<bool>()).prop_map(|(a, b)| Event::Pair(a, b)),
    ]
}

/// `keys` of a strategy plus two range bounds from the same strategy.
macro_rules! order_test {
    ($name:ident, $strategy:expr) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(32))]
            #[test]
            fn $name(
                keys in prop::collection::vec($strategy, 0..24),
                a in $strategy,
                b in $strategy,
            ) {
                check_order(keys, a, b)?;
            }
        }
    };
}

order_test!(u8_keys, any::<u8>());
order_test!(u16_keys, any::<u16>());
order_test!(u32_keys, any::<u32>());
order_test!(u64_keys, any::<u64>());
order_test!(u128_keys, any::<u128>());
order_test!(i8_keys, any::<i8>());
order_test!(i16_keys, any::<i16>());
order_test!(i32_keys, any::<i32>());
order_test!(i64_keys, any::<i64>());
order_test!(i128_keys, any::<i128>());
order_test!(string_keys, tricky_string());
order_test!(byte_vec_keys, tricky_bytes());
order_test!(bool_keys, any::<bool>());
order_test!(char_keys, any::<char>());
order_test!(option_keys, any::<Option<i32>>());
order_test!(nested_option_keys, prop::option::of(prop::option::of(tricky_string())));
order_test!(pair_keys, (any::<u8>(), tricky_string()));
order_test!(triple_keys, (tricky_string(), any::<i64>(), any::<Option<u16>>()));
order_test!(quad_keys, (tricky_bytes(), any::<bool>(), any::<char>(), tricky_string()));
order_test!(struct_keys, page());
order_test!(enum_keys, event());
order_test!(vec_of_strings_keys, prop::collection::vec(tricky_string(), 0..3));

fn assert_sorted_as_given<K: ViewKey + Ord + Clone + Debug>(keys: &[K]) -> TestResult {
    let mut sorted = keys.to_vec();
    sorted.sort();
    assert_eq!(sorted, keys, "the fixture itself must be in Ord order");
    let store = memory_store()?;
    let view = store.view(&ViewDef::<K, u8>::new("edges"))?;
    // Put them in reverse, so that insertion order cannot explain the result.
    let mut batch = Batch::new();
    for k in keys.iter().rev() {
        batch.put(&view, k, 0, 1)?;
    }
    store.submit(batch)?.wait()?;
    let scanned: Vec<K> = view.snapshot().iter().map(|(k, _)| k).collect();
    assert_eq!(scanned, keys);
    Ok(())
}

#[test]
fn integer_edges_sort_in_ord_order() -> TestResult {
    assert_sorted_as_given(&[i64::MIN, i64::MIN + 1, -256, -1, 0, 1, 255, 256, i64::MAX])?;
    assert_sorted_as_given(&[i8::MIN, -1, 0, 1, i8::MAX])?;
    assert_sorted_as_given(&[i128::MIN, -1, 0, 1, i128::MAX])?;
    assert_sorted_as_given(&[0u64, 1, 255, 256, 65_535, 65_536, u64::MAX])?;
    Ok(())
}

#[test]
fn strings_with_nul_bytes_and_prefixes_sort_in_ord_order() -> TestResult {
    let strings: Vec<String> =
        ["", "\0", "\0\0", "\0\u{1}", "\u{1}", "a", "a\0", "a\0\0", "a\0b", "a\u{1}", "aa", "b"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
    assert_sorted_as_given(&strings)?;
    let bytes: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0, 0],
        vec![0, 1],
        vec![0, 0xFF],
        vec![1],
        vec![0xFF],
        vec![0xFF, 0],
    ];
    assert_sorted_as_given(&bytes)?;
    // A shorter string field sorts before a longer one whatever follows it.
    let pairs: Vec<(String, u8)> = vec![("a".into(), 255), ("a\0".into(), 0), ("ab".into(), 0)];
    assert_sorted_as_given(&pairs)?;
    assert_sorted_as_given(&[
        None,
        Some(String::new()),
        Some("\0".to_owned()),
        Some("a".to_owned()),
    ])?;
    Ok(())
}

#[test]
fn prefix_scans_select_by_leading_tuple_fields() -> TestResult {
    let store = memory_store()?;
    let view = store.view(&ViewDef::<(u64, String), u32>::new("follows"))?;
    let mut batch = Batch::new();
    let keys = [(6, "z"), (7, ""), (7, "\0"), (7, "ann"), (7, "bob"), (8, "")];
    for (i, (a, b)) in keys.iter().enumerate() {
        batch.put(&view, &(*a, (*b).to_owned()), i as u32, 1)?;
    }
    store.submit(batch)?.wait()?;
    let sevens: Vec<(u64, String)> = view.prefix(&7u64).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        sevens,
        vec![
            (7, String::new()),
            (7, "\0".to_owned()),
            (7, "ann".to_owned()),
            (7, "bob".to_owned())
        ]
    );
    assert!(view.prefix(&9u64).is_empty());
    let exact: Vec<u32> =
        view.prefix(&(7u64, "ann".to_owned())).into_iter().map(|(_, v)| *v).collect();
    assert_eq!(exact, vec![3]);
    Ok(())
}

#[test]
fn a_prefix_of_all_0xff_bytes_reaches_the_end_of_the_view() -> TestResult {
    let store = memory_store()?;
    let view = store.view(&ViewDef::<(u8, u16), u8>::new("edges"))?;
    let mut batch = Batch::new();
    for key in [(254, 0), (254, u16::MAX), (255, 0), (255, 1), (255, u16::MAX)] {
        batch.put(&view, &key, key.0, 1)?;
    }
    store.submit(batch)?.wait()?;
    let tail: Vec<(u8, u16)> = view.prefix(&255u8).into_iter().map(|(k, _)| k).collect();
    assert_eq!(tail, vec![(255, 0), (255, 1), (255, u16::MAX)]);
    let last: Vec<(u8, u16)> =
        view.prefix(&(255u8, u16::MAX)).into_iter().map(|(k, _)| k).collect();
    assert_eq!(last, vec![(255, u16::MAX)]);
    let below: Vec<(u8, u16)> = view.prefix(&254u8).into_iter().map(|(k, _)| k).collect();
    assert_eq!(below, vec![(254, 0), (254, u16::MAX)]);
    Ok(())
}
