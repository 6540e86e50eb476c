//! A full read over a card answering fuzz-chosen responses (properties and input format:
//! tests/properties/apdu.rs).
#![no_main]

#[allow(dead_code)]
#[path = "../../tests/properties/apdu.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::check(data));
