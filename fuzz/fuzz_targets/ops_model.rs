//! Arbitrary operations, reopens and crashes against a `BTreeMap` model.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: common::allow_deliberate_panics(), |data: &[u8]| {
    common::check(viewstore::testing::fuzz::ops_model(data));
});
