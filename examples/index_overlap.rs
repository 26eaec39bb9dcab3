//! Do unique-index lookups overlap their cache misses, as primary-key reads do?
//!
//! Builds 100,000 users (as `benches/index.rs` does, with one more unique index on a
//! `u64`), then times rounds of 200,000 lookups each: reads by primary
//! key, lookups by e-mail address and lookups by the `u64` index key, each in a loop
//! of independent lookups and in a "dependent" loop where each key depends on the
//! previous result, so that no two lookups can overlap. Prints the minimum over the
//! rounds, in ns per lookup.
//!
//! ```text
//! cargo run --release --example index_overlap [-- KEYS [ROUNDS [ONLY]]]
//! ```
//!
//! KEYS: distinct keys (default 4096); ROUNDS: rounds per loop (default 30); ONLY:
//! `get`, `email` or `u64` to time only those lookups. One round of one kind counts
//! instructions per lookup under callgrind (the total over 400,000 lookups, each loop
//! included):
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*index_overlap::time*' \
//!     target/release/examples/index_overlap 4096 1 email
//! ```

use std::hint::black_box;
use std::time::Instant;
use viewstore::testing::Rng;
use viewstore::{Batch, IndexDef, Store, ViewDef};

#[path = "../benches/support/users.rs"]
mod users;

use users::{BY_CITY, BY_EMAIL, BY_TAG, User, user};

const BY_NUMBER: IndexDef<User, u64> = IndexDef::unique("by_number", |u| u.id * 3);
const USERS: ViewDef<u64, User> =
    ViewDef::new("users").with_indexes(&[&BY_EMAIL, &BY_CITY, &BY_TAG, &BY_NUMBER]);

const RECORDS: u64 = 100_000;
const PER_ROUND: u32 = 200_000;

/// The minimum over `rounds` of ns per call of `f(i)` for `i` in `0..PER_ROUND`, where
/// `f` returns the score it read (always below 2^31, so `dependent` adds zero). Kept
/// out of line, so that callgrind can count its instructions alone.
#[inline(never)]
fn time(rounds: usize, mask: usize, dependent: bool, mut f: impl FnMut(usize) -> u32) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let start = Instant::now();
        let mut i = 0usize;
        for k in 0..PER_ROUND as usize {
            let score = black_box(f(i));
            i = if dependent { (i + 1 + (score >> 31) as usize) & mask } else { (k + 1) & mask };
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e9 / f64::from(PER_ROUND));
    }
    best
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let keys: usize = args.get(1).map_or(Ok(4096), |k| k.parse())?;
    let rounds: usize = args.get(2).map_or(Ok(30), |r| r.parse())?;
    let only = args.get(3).map(String::as_str);
    if only.is_some_and(|o| !["get", "email", "u64"].contains(&o)) {
        return Err("ONLY is one of get, email, u64".into());
    }
    let runs = |kind: &str| only.is_none_or(|o| o == kind);
    let keys = keys.next_power_of_two();
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("users.redb"))?;
    let users = store.view(&USERS)?;
    for start in (0..RECORDS).step_by(10_000) {
        let mut batch = Batch::new();
        for id in start..start + 10_000 {
            batch.put(&users, &id, user(id, 0), 1)?;
        }
        store.submit(batch)?.wait()?;
    }
    let mut rng = Rng::new(0x5EED);
    let ids: Vec<u64> = (0..keys).map(|_| rng.below(RECORDS)).collect();
    let emails: Vec<String> = ids.iter().map(|id| user(*id, 0).email).collect();
    let numbers: Vec<u64> = ids.iter().map(|id| id * 3).collect();
    let mask = keys - 1;
    println!("{keys} keys; ns per lookup, minimum of {rounds} rounds: independent, dependent");
    for dependent in [false, true] {
        let kind = if dependent { "dependent  " } else { "independent" };
        print!("{kind}");
        if runs("get") {
            let get = time(rounds, mask, dependent, |i| {
                users.get_with(&ids[i], |u| u.score).unwrap_or(0)
            });
            print!("  view get_with {get:6.1}");
        }
        if runs("email") {
            let email = time(rounds, mask, dependent, |i| {
                users.index_get_with(&BY_EMAIL, &emails[i], |_, u| u.score).unwrap_or(0)
            });
            print!("  unique by e-mail {email:6.1}");
        }
        if runs("u64") {
            let number = time(rounds, mask, dependent, |i| {
                users.index_get_with(&BY_NUMBER, &numbers[i], |_, u| u.score).unwrap_or(0)
            });
            print!("  unique by u64 {number:6.1}");
        }
        println!();
    }
    Ok(())
}
