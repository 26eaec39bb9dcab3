//! `starts_with` on string keys and string index keys, against a brute-force filter
//! over random strings made of the bytes the key encoding treats specially: zero bytes
//! (escaped as 0x00 0xFF), 0x01 and 0xFF neighbours, multi-byte characters, and
//! prefixes that are whole keys, or empty.

use std::collections::BTreeSet;
use std::sync::Arc;
use viewstore::testing::Rng;
use viewstore::{Batch, IndexDef, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The pieces random strings are made of.
const PIECES: [&str; 11] =
    ["\0", "\u{1}", "\u{ff}", "\u{fe}", "a", "b", "é", "\u{7f}", "\u{80}", "\u{10ffff}", "ab"];

fn random_string(rng: &mut Rng, max_pieces: u64) -> String {
    let n = rng.below(max_pieces + 1);
    (0..n).map(|_| PIECES[rng.below(PIECES.len() as u64) as usize]).collect()
}

/// A store in memory: the encoding is the subject here, not the disk.
fn memory_store() -> viewstore::Result<Store> {
    Store::builder("memory")
        .backend(Arc::new(viewstore::redb::backends::InMemoryBackend::new()))
        .open()
}

/// Every prefix of `s` at a character boundary, `s` itself included.
fn char_prefixes(s: &str) -> impl Iterator<Item = &str> {
    s.char_indices().map(|(i, _)| &s[..i]).chain(std::iter::once(s))
}

/// The starts: the empty string, every prefix of every key, and random strings.
fn starts(rng: &mut Rng, keys: &BTreeSet<String>) -> BTreeSet<String> {
    let mut starts: BTreeSet<String> =
        keys.iter().flat_map(|k| char_prefixes(k)).map(str::to_owned).collect();
    starts.extend((0..200).map(|_| random_string(rng, 3)));
    starts.insert(String::new());
    starts
}

#[test]
fn view_keys_starting_with_a_string_are_those_a_filter_finds() -> TestResult {
    for seed in [1, 2, 3] {
        let mut rng = Rng::new(seed);
        let store = memory_store()?;
        let view = store.view(&ViewDef::<String, u32>::new("strings"))?;
        let keys: BTreeSet<String> = (0..300).map(|_| random_string(&mut rng, 5)).collect();
        let mut batch = Batch::new();
        for (i, k) in keys.iter().enumerate() {
            batch.put(&view, k, i as u32, 1)?;
        }
        store.submit(batch)?.wait()?;
        let snap = view.snapshot();
        for start in starts(&mut rng, &keys) {
            let expected: Vec<&String> = keys.iter().filter(|k| k.starts_with(&start)).collect();
            let found: Vec<String> = view.starts_with(&start).into_iter().map(|(k, _)| k).collect();
            assert_eq!(found.iter().collect::<Vec<_>>(), expected, "start {start:?}, seed {seed}");
            let versioned = view.starts_with_versioned(&start);
            assert!(versioned.iter().map(|(k, _, _)| k).eq(expected.iter().copied()));
            let lent: Vec<String> = snap.starts_with(&start).map(|(k, _)| k).collect();
            assert_eq!(lent, found);
            let mut backwards: Vec<String> =
                snap.starts_with(&start).rev().map(|(k, _)| k).collect();
            backwards.reverse();
            assert_eq!(backwards, found);
        }
    }
    Ok(())
}

/// A record whose index keys are random strings: `name` unique, `tag` shared by many.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Item {
    name: String,
    tag: String,
}

const BY_NAME: IndexDef<Item, String> = IndexDef::unique("by_name", |i| i.name.clone());
const BY_TAG: IndexDef<Item, String> = IndexDef::multi("by_tag", |i| i.tag.clone());
const ITEMS: ViewDef<u64, Item> = ViewDef::new("items").with_indexes(&[&BY_NAME, &BY_TAG]);

#[test]
fn index_keys_starting_with_a_string_are_those_a_filter_finds() -> TestResult {
    for seed in [4, 5] {
        let mut rng = Rng::new(seed);
        let store = memory_store()?;
        let items = store.view(&ITEMS)?;
        let names: BTreeSet<String> = (0..300).map(|_| random_string(&mut rng, 5)).collect();
        let tags: Vec<String> = (0..40).map(|_| random_string(&mut rng, 3)).collect();
        // Index entries as the index orders them: index key, then primary key.
        let mut by_name: BTreeSet<(String, u64)> = BTreeSet::new();
        let mut by_tag: BTreeSet<(String, u64)> = BTreeSet::new();
        let mut batch = Batch::new();
        for (id, name) in names.iter().enumerate() {
            let id = id as u64;
            let tag = tags[rng.below(tags.len() as u64) as usize].clone();
            batch.put(&items, &id, Item { name: name.clone(), tag: tag.clone() }, 1)?;
            by_name.insert((name.clone(), id));
            by_tag.insert((tag, id));
        }
        store.submit(batch)?.wait()?;
        let all_keys: BTreeSet<String> = names.iter().chain(&tags).cloned().collect();
        let snap = items.snapshot();
        for start in starts(&mut rng, &all_keys) {
            for (index, model) in [(&BY_NAME, &by_name), (&BY_TAG, &by_tag)] {
                let expected: Vec<(String, u64)> =
                    model.iter().filter(|(k, _)| k.starts_with(&start)).cloned().collect();
                let found: Vec<(String, u64)> = items
                    .index_starts_with(index, &start)
                    .into_iter()
                    .map(|(k, id, item)| {
                        assert!(item.name == k || item.tag == k, "{k:?} holds {item:?}");
                        (k, id)
                    })
                    .collect();
                assert_eq!(found, expected, "{} start {start:?}, seed {seed}", index.name());
                let lent: Vec<(String, u64)> =
                    snap.index(index).starts_with(&start).map(|(k, id, _)| (k, id)).collect();
                assert_eq!(lent, expected);
                let versioned = snap.index(index).starts_with(&start).versioned().count();
                assert_eq!(versioned, expected.len());
            }
        }
    }
    Ok(())
}

#[test]
fn a_start_that_is_a_whole_key_selects_it_and_its_extensions() -> TestResult {
    let store = memory_store()?;
    let view = store.view(&ViewDef::<String, u8>::new("words"))?;
    let words = ["", "\0", "\0\0", "\0a", "a", "a\0", "a\0b", "a\u{1}", "ab", "b", "\u{ff}"];
    for (i, w) in words.iter().enumerate() {
        view.put(&(*w).to_string(), i as u8, 1)?;
    }
    let found = |start: &str| -> Vec<String> {
        view.starts_with(start).into_iter().map(|(k, _)| k).collect()
    };
    assert_eq!(found("a"), ["a", "a\0", "a\0b", "a\u{1}", "ab"]);
    assert_eq!(found("a\0"), ["a\0", "a\0b"]);
    assert_eq!(found("\0"), ["\0", "\0\0", "\0a"]);
    assert_eq!(found("\0\0"), ["\0\0"]);
    assert_eq!(found("ab"), ["ab"]);
    assert_eq!(found("abc"), Vec::<String>::new());
    assert_eq!(found("\u{ff}"), ["\u{ff}"]);
    assert_eq!(found("").len(), words.len());
    Ok(())
}
