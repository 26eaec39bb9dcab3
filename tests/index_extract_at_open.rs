//! Index keys extracted at open, beside the decoding of the records: an extractor that
//! panics, or gives a key over the size limit, on a stored record fails the open of
//! its view with the error naming the view, the index and the first such record in key
//! order, whether the view loads on one reading thread or two; and the indexes built
//! from keys extracted while decoding equal those built after the load.
//!
//! One test in this file: the extractors read a process-wide switch.

use std::path::Path;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use viewstore::{Batch, Error, IndexDef, Store, View, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// While not `u64::MAX`, the extractor named by `FAILING` fails on records whose value
/// is a multiple of 1,000 plus 777 and at least this.
static FAIL_FROM: AtomicU64 = AtomicU64::new(u64::MAX);
/// Which extractor fails: `TEXT_FAILS` (it panics) or `LONG_FAILS` (a key over the
/// limit).
static FAILING: AtomicU8 = AtomicU8::new(TEXT_FAILS);
const TEXT_FAILS: u8 = 0;
const LONG_FAILS: u8 = 1;

fn fails(v: u64, index: u8) -> bool {
    let from = FAIL_FROM.load(Ordering::Relaxed);
    FAILING.load(Ordering::Relaxed) == index && from != u64::MAX && v >= from && v % 1_000 == 777
}

const BY_TEXT: IndexDef<u64, String> = IndexDef::unique("by_text", |v| {
    assert!(!fails(*v, TEXT_FAILS), "extractor refuses {v}");
    format!("text {v}")
});
/// Records whose keys were extracted on a thread that reads or decodes records.
static ON_LOAD_THREADS: AtomicU64 = AtomicU64::new(0);
/// Records whose keys were extracted, on any thread.
static EXTRACTED: AtomicU64 = AtomicU64::new(0);

const BY_DIGIT: IndexDef<u64, u64> = IndexDef::multi("by_digit", |v| {
    EXTRACTED.fetch_add(1, Ordering::Relaxed);
    if std::thread::current().name() == Some("viewstore-load") {
        ON_LOAD_THREADS.fetch_add(1, Ordering::Relaxed);
    }
    v % 10
});
const BY_LONG: IndexDef<u64, String> = IndexDef::multi_keys("by_long", |v| {
    let long = if fails(*v, LONG_FAILS) { 5_000 } else { 3 };
    vec!["x".repeat(long), format!("{}", v % 7)]
});
const NUMBERS: ViewDef<u64, u64> =
    ViewDef::new("numbers").with_indexes(&[&BY_TEXT, &BY_DIGIT, &BY_LONG]);
const PLAIN: ViewDef<u64, u64> = ViewDef::new("numbers");

fn fill(path: &Path, records: u64) -> TestResult {
    let store = Store::open(path)?;
    let numbers = store.view(&NUMBERS)?;
    for start in (0..records).step_by(10_000) {
        let mut batch = Batch::new();
        for id in start..(start + 10_000).min(records) {
            batch.put(&numbers, &id, id, 1)?;
        }
        store.submit(batch)?.wait()?;
    }
    store.close()?;
    Ok(())
}

/// The entries of the three indexes, each in order.
type Entries = (Vec<(String, u64)>, Vec<(u64, u64)>, Vec<(String, u64)>);

/// The entries of every index, in order.
fn entries(numbers: &View<u64, u64>) -> Entries {
    let snap = numbers.snapshot();
    let text = snap.index(&BY_TEXT).iter().map(|(i, k, _)| (i, k)).collect();
    let digit = snap.index(&BY_DIGIT).iter().map(|(i, k, _)| (i, k)).collect();
    let long = snap.index(&BY_LONG).iter().map(|(i, k, _)| (i, k)).collect();
    (text, digit, long)
}

/// Opens the file at `path` (a copy of it, kept unchanged) with the extractor `index`
/// failing from `from`.
fn open_failing(path: &Path, index: u8, from: u64) -> Result<Error, Box<dyn std::error::Error>> {
    let copy = path.with_extension("copy");
    std::fs::copy(path, &copy)?;
    FAILING.store(index, Ordering::Relaxed);
    FAIL_FROM.store(from, Ordering::Relaxed);
    let opened = Store::open(&copy).and_then(|store| store.view(&NUMBERS).map(drop));
    FAIL_FROM.store(u64::MAX, Ordering::Relaxed);
    std::fs::remove_file(&copy)?;
    opened.err().ok_or_else(|| format!("an open failing from {from} succeeded").into())
}

#[test]
fn keys_extracted_at_open_fail_it_on_the_first_bad_record_and_equal_a_build() -> TestResult {
    // 20,000 records load on one reading thread with decoding workers; 120,000 in two
    // key ranges, each decoded on its reading thread, split near 60,000.
    for records in [20_000, 120_000] {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("n.redb");
        fill(&path, records)?;
        for (failing, from) in [TEXT_FAILS, LONG_FAILS]
            .into_iter()
            .flat_map(|i| [0, records / 2 + 1_000, records - 1_000].map(|from| (i, from)))
        {
            let first = from + 777;
            match (failing, open_failing(&path, failing, from)?) {
                (TEXT_FAILS, Error::IndexPanicked { view, index, key, message }) => {
                    assert_eq!((view.as_str(), index.as_str()), ("numbers", "by_text"));
                    assert_eq!(key, first.to_string(), "{records} records, from {from}");
                    assert!(message.contains(&format!("refuses {first}")), "{message}");
                }
                (LONG_FAILS, Error::IndexKeyTooLarge { view, index, key, .. }) => {
                    assert_eq!((view.as_str(), index.as_str()), ("numbers", "by_long"));
                    assert_eq!(key, first.to_string(), "{records} records, from {from}");
                }
                (_, other) => panic!("expected extractor {failing}'s error, got {other:?}"),
            }
        }
        // Stored: keys extracted while decoding. Built: the same indexes declared anew
        // on a view opened once without them, so built after the load.
        ON_LOAD_THREADS.store(0, Ordering::Relaxed);
        EXTRACTED.store(0, Ordering::Relaxed);
        let store = Store::open(&path)?;
        let stored = entries(&store.view(&NUMBERS)?);
        store.close()?;
        // Once a record, while decoding: not again after the load.
        assert_eq!(EXTRACTED.load(Ordering::Relaxed), records, "extractions at a stored open");
        // One reading thread hands the records to a decoding thread (at least one, on any
        // machine); two reading threads decode what they read, one of them started for
        // the load. Both kinds of thread are the loader's.
        let on_load = ON_LOAD_THREADS.load(Ordering::Relaxed);
        assert!(on_load > 0, "{records} records: no key extracted while decoding");
        let built_path = dir.path().join("built.redb");
        fill(&built_path, records)?;
        {
            let store = Store::open(&built_path)?;
            store.view(&PLAIN)?;
            store.close()?;
        }
        ON_LOAD_THREADS.store(0, Ordering::Relaxed);
        let store = Store::open(&built_path)?;
        let built = entries(&store.view(&NUMBERS)?);
        store.close()?;
        assert_eq!(ON_LOAD_THREADS.load(Ordering::Relaxed), 0, "new indexes build after the load");
        assert_eq!(stored.0.len() as u64, records);
        assert_eq!(stored.2.len() as u64, 2 * records);
        assert!(stored == built, "{records} records: stored and built indexes differ");
    }
    Ok(())
}
