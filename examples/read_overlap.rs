//! Whether point reads overlap each other's cache misses, as a `HashMap`'s do.
//!
//! Loads 1,000,000 records (the read benchmark's fixture), then times, in 40
//! interleaved rounds of 100,000 random reads each: `View::get_with`, snapshot reads,
//! a `HashMap<u64, Arc<V>>` of the same values, and both "dependent" loops, where each
//! read's key depends on the previous read's result so that no two reads can overlap.
//! A read loop that takes about as long as its dependent loop is serialized.
//!
//! ```text
//! cargo run --release --example read_overlap
//! ```

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;
use viewstore::{Store, View};

#[path = "../benches/support/profile.rs"]
mod profile;
#[path = "../benches/support/profile_fixture.rs"]
mod profile_fixture;
use profile::{PROFILES, Profile};
use profile_fixture::{fill_profiles, random_keys};

const RECORDS: u64 = 1_000_000;
const READS: usize = 100_000;
const ROUNDS: usize = 40;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// One read: (key, previous result) to result.
type Read<'a> = Box<dyn FnMut(u64, u64) -> u64 + 'a>;

/// Nanoseconds per read of one round of `read` over `keys`.
#[expect(clippy::cast_precision_loss, reason = "figures for display")]
fn per_read(keys: &[u64], mut read: impl FnMut(u64, u64) -> u64) -> f64 {
    let started = Instant::now();
    let mut last = 0;
    for &k in keys {
        // `last >> 40` is always 0 (followers are below 100,000), but the compiler
        // cannot know it: the dependent loops use it to chain each key to the result
        // before it.
        last = read(black_box(k), last);
    }
    black_box(last);
    started.elapsed().as_nanos() as f64 / keys.len() as f64
}

fn main() -> Res<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("views.redb");
    fill_profiles(&path, RECORDS)?;
    let store = Store::open(&path)?;
    let view: View<u64, Profile> = store.view(&PROFILES)?;
    let map: HashMap<u64, Arc<Profile>> =
        (0..RECORDS).filter_map(|id| view.get(&id).map(|p| (id, p))).collect();
    let snap = view.snapshot();
    let keys = random_keys(READS, 0x5EED, RECORDS);
    let followers = |p: &Profile| p.followers;
    let mut loops: Vec<(&str, Read<'_>, Vec<f64>)> = vec![
        ("viewstore get_with", Box::new(|k, _| view.get_with(&k, followers).unwrap_or(0)), vec![]),
        ("viewstore snapshot", Box::new(|k, _| snap.get_ref(&k).map_or(0, followers)), vec![]),
        ("HashMap get", Box::new(|k, _| map.get(&k).map_or(0, |p| p.followers)), vec![]),
        (
            "viewstore dependent",
            Box::new(|k, last| view.get_with(&(k + (last >> 40)), followers).unwrap_or(0)),
            vec![],
        ),
        (
            "HashMap dependent",
            Box::new(|k, last| map.get(&(k + (last >> 40))).map_or(0, |p| p.followers)),
            vec![],
        ),
    ];
    for _ in 0..ROUNDS {
        for (_, read, times) in &mut loops {
            times.push(per_read(&keys, read));
        }
    }
    let quartile = |times: &mut Vec<f64>| {
        times.sort_by(f64::total_cmp);
        (times[0], times[times.len() / 4])
    };
    let mut hashmap = (0.0, 0.0);
    println!("ns per read over {ROUNDS} rounds of {READS}: minimum, first quartile");
    for (name, _, times) in &mut loops {
        let (min, q1) = quartile(times);
        if *name == "HashMap get" {
            hashmap = (min, q1);
        }
        println!("{name:<22} {min:7.0} {q1:7.0}");
    }
    for (name, _, times) in &loops {
        println!(
            "{name:<22} / HashMap get: {:.2} {:.2}",
            times[0] / hashmap.0,
            times[ROUNDS / 4] / hashmap.1
        );
    }
    Ok(())
}
