//! Arbitrary bytes into the value codec, the record format and the key decoder.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::check(viewstore::testing::fuzz::decode_value(data));
});
