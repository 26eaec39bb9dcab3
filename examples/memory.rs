//! Resident memory per record: a viewstore view of 1,000,000 records next to a
//! `HashMap<u64, Arc<V>>` holding the same values, and the size of the redb file.
//!
//! Each measurement runs in a fresh child process (this program re-run with an
//! argument), so that memory freed by one phase cannot hide the cost of the next. The
//! children run with glibc's `MALLOC_MMAP_THRESHOLD_=131072`: a freed buffer of 128 KiB or
//! more goes back to the system instead of staying in the process for later.
//!
//! ```text
//! cargo run --release --example memory [-- RECORDS [CACHE_MIB]]
//! INDEXED=1 cargo run --release --example memory [-- RECORDS [CACHE_MIB]]
//! ```
//!
//! With `INDEXED=1` the view has three secondary indexes (a unique one by e-mail, multi
//! ones by city and by follower count), and the figures include them. The run then also
//! loads the view without its indexes and builds, in a child of its own, the std
//! collections a user would build by hand for the same lookups (`HashMap<String, u64>`
//! by e-mail, `BTreeSet<(String, u64)>` by city, `BTreeSet<(u64, u64)>` by follower
//! count), and prints what the indexes cost per record against them.
//!
//! `CACHE_MIB` sets redb's page cache (`StoreBuilder::cache_size`; the store's default
//! when left out). `memory populate PATH RECORDS` and
//! `memory viewstore PATH RECORDS [CACHE_MIB]` run one phase alone, for profiling the load
//! (`memory viewstore-plain ...` loads the view without its indexes).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use viewstore::{Batch, Durability, IndexDef, Store, ViewDef};

#[path = "../benches/support/profile.rs"]
mod profile;
use profile::{PROFILES, Profile, profile};

const BY_EMAIL: IndexDef<Profile, String> = IndexDef::unique("by_email", |p| p.email.clone());
const BY_CITY: IndexDef<Profile, String> = IndexDef::multi("by_city", |p| p.city.clone());
const BY_FOLLOWERS: IndexDef<Profile, u64> = IndexDef::multi("by_followers", |p| p.followers);
const INDEXED: ViewDef<u64, Profile> =
    ViewDef::new("profiles").with_indexes(&[&BY_EMAIL, &BY_CITY, &BY_FOLLOWERS]);

/// Whether the view is measured with its three indexes: `INDEXED=1`.
fn indexed() -> bool {
    std::env::var_os("INDEXED").is_some_and(|v| v == "1")
}

/// The view measured: with three indexes when `INDEXED=1`.
fn view_def() -> &'static ViewDef<u64, Profile> {
    if indexed() { &INDEXED } else { &PROFILES }
}

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn populate(path: &Path, records: u64, def: &ViewDef<u64, Profile>) -> Res<()> {
    let store = Store::builder(path)
        .durability(Durability::Periodic { interval: Duration::from_secs(1) })
        .open()?;
    let view = store.view(def)?;
    let mut tickets = Vec::new();
    let mut id = 0;
    while id < records {
        let mut batch = Batch::new();
        for _ in 0..10_000.min(records - id) {
            batch.put(&view, &id, profile(id), 1)?;
            id += 1;
        }
        tickets.push(store.submit(batch)?);
    }
    for t in tickets {
        t.wait()?;
    }
    store.close()?;
    Ok(())
}

/// Child: open the store, load the view (`def`), report the RSS delta and the layer's
/// figures.
fn measure_viewstore(
    path: &Path,
    records: u64,
    cache_mib: Option<usize>,
    def: &'static ViewDef<u64, Profile>,
) -> Res<()> {
    let before = rss();
    let started = Instant::now();
    let mut builder = Store::builder(path);
    if let Some(mib) = cache_mib {
        builder = builder.cache_size(mib << 20);
    }
    let store = builder.open()?;
    let opened = started.elapsed();
    let after_open = rss();
    let view = store.view(def)?;
    let loaded = started.elapsed();
    let after = rss();
    eprintln!(
        "viewstore: store opened in {} ms (RSS +{} MB), view loaded at {} ms (RSS +{} MB)",
        opened.as_millis(),
        (after_open - before) / 1_000_000,
        loaded.as_millis(),
        (after - before) / 1_000_000,
    );
    assert_eq!(view.len() as u64, records);
    let stats = store.stats();
    let v = &stats.views[0];
    println!(
        "viewstore {} {} {} {} {} {}",
        after - before,
        v.index_bytes,
        v.value_bytes,
        loaded.as_millis(),
        v.records,
        v.secondary_index_bytes()
    );
    eprintln!("{stats}");
    Ok(())
}

/// Child: build the same values into a `HashMap<u64, Arc<Profile>>`, decoded from their
/// encoded bytes as the store decodes them (so that strings have the same capacity).
fn measure_hashmap(records: u64) {
    let config = bincode::config::standard();
    let decoded = |id: u64| -> Profile {
        let bytes = bincode::serde::encode_to_vec(profile(id), config).unwrap_or_default();
        bincode::serde::decode_from_slice(&bytes, config).map_or_else(|_| profile(id), |(p, _)| p)
    };
    let before = rss();
    let map: HashMap<u64, Arc<Profile>> =
        (0..records).map(|id| (id, Arc::new(decoded(id)))).collect();
    let after = rss();
    assert_eq!(map.len() as u64, records);
    println!("hashmap {}", after - before);
}

/// Child: the collections a user would build by hand for the three indexes' lookups,
/// from values decoded as the store decodes them: the e-mail to the record key (unique),
/// and (city, key) and (follower count, key) in order (multi), each built from all its
/// entries at once (`collect`), which packs a `BTreeSet` fuller than inserting one by one.
fn measure_std(records: u64) {
    let config = bincode::config::standard();
    let decoded = |id: u64| -> Profile {
        let bytes = bincode::serde::encode_to_vec(profile(id), config).unwrap_or_default();
        bincode::serde::decode_from_slice(&bytes, config).map_or_else(|_| profile(id), |(p, _)| p)
    };
    let before = rss();
    let mut by_email: HashMap<String, u64> = HashMap::with_capacity(records as usize);
    let mut by_city = Vec::with_capacity(records as usize);
    let mut by_followers = Vec::with_capacity(records as usize);
    for id in 0..records {
        let p = decoded(id);
        by_email.insert(p.email, id);
        by_city.push((p.city, id));
        by_followers.push((p.followers, id));
    }
    let by_city: BTreeSet<(String, u64)> = by_city.into_iter().collect();
    let by_followers: BTreeSet<(u64, u64)> = by_followers.into_iter().collect();
    let after = rss();
    assert_eq!(by_email.len() + by_city.len() + by_followers.len(), 3 * records as usize);
    println!("std {}", after - before);
}

fn child(args: &[&str]) -> Res<Vec<u64>> {
    // Large buffers freed after a load or a build (gathered entries, the `Vec` a
    // `BTreeSet` is collected through) go back to the system at once, in every child,
    // so that each figure is what the structures hold, not what glibc keeps for later.
    let out = Command::new(std::env::current_exe()?)
        .env("MALLOC_MMAP_THRESHOLD_", "131072")
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("{args:?} failed").into());
    }
    let text = String::from_utf8(out.stdout)?;
    Ok(text.split_whitespace().skip(1).filter_map(|w| w.parse().ok()).collect())
}

#[expect(clippy::cast_precision_loss, reason = "figures for display")]
fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some(phase @ ("viewstore" | "viewstore-plain")) => {
            let cache_mib = args.get(4).map(|m| m.parse()).transpose()?;
            let def = if phase == "viewstore" { view_def() } else { &PROFILES };
            return measure_viewstore(Path::new(&args[2]), args[3].parse()?, cache_mib, def);
        }
        Some("populate") => return populate(Path::new(&args[2]), args[3].parse()?, view_def()),
        Some("hashmap") => {
            measure_hashmap(args[2].parse()?);
            return Ok(());
        }
        Some("std") => {
            measure_std(args[2].parse()?);
            return Ok(());
        }
        _ => {}
    }
    let records: u64 = args.get(1).map_or(Ok(1_000_000), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("views.redb");
    populate(&path, records, view_def())?;
    let file = std::fs::metadata(&path)?.len();
    let path_arg = path.to_string_lossy().into_owned();
    let count = records.to_string();
    let mut vs_args = vec!["viewstore", &path_arg, &count];
    if let Some(mib) = args.get(2) {
        vs_args.push(mib);
    }
    let vs = child(&vs_args)?;
    let hm = child(&["hashmap", &count])?;
    let per = |bytes: u64| bytes as f64 / records as f64;
    let encoded = bincode::serde::encode_to_vec(profile(records / 2), bincode::config::standard())?;
    println!("records: {records}, value encoded: {} bytes", encoded.len());
    println!(
        "viewstore RSS delta:             {:8.1} B/record  (opened and loaded in {} ms)",
        per(vs[0]),
        vs[3]
    );
    println!(
        "  layer's own accounting:        {:8.1} B/record  (records {:.1} + value allocations {:.1} \
         + secondary indexes {:.1}; heap data inside values not counted)",
        per(vs[1] + vs[2] + vs[5]),
        per(vs[1]),
        per(vs[2]),
        per(vs[5])
    );
    println!("HashMap<u64, Arc<V>> RSS delta:  {:8.1} B/record", per(hm[0]));
    println!("ratio viewstore / HashMap:       {:8.3}", vs[0] as f64 / hm[0] as f64);
    println!("redb file:                       {:8.1} B/record", per(file));
    if indexed() {
        // The same records in a file of their own without indexes: opening the indexed
        // file without its indexes would drop them, a write the figure should not hold.
        let plain_path = dir.path().join("plain.redb");
        populate(&plain_path, records, &PROFILES)?;
        let plain_arg = plain_path.to_string_lossy().into_owned();
        vs_args[0] = "viewstore-plain";
        vs_args[1] = &plain_arg;
        let plain = child(&vs_args)?;
        let std = child(&["std", &count])?;
        let indexes = vs[0].saturating_sub(plain[0]);
        println!(
            "indexes, RSS (with - without):   {:8.1} B/record  (layer's own accounting {:.1}; \
             view loaded in {} ms, {} ms without)",
            per(indexes),
            per(vs[5]),
            vs[3],
            plain[3]
        );
        println!("std collections by hand, RSS:    {:8.1} B/record", per(std[0]));
        println!("ratio indexes / std collections: {:8.3}", indexes as f64 / std[0] as f64);
    }
    Ok(())
}
