//! A workload with a fault at an arbitrary storage call, then every crash image checked.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::check(viewstore::testing::fuzz::crash_point(data));
});
