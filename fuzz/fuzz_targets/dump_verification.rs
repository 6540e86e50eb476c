//! Offline verification of a mutated card dump (properties and input format:
//! tests/properties/dump.rs).
#![no_main]

#[allow(dead_code)]
#[path = "../../tests/properties/dump.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::check(data));
