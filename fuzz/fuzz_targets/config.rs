//! Configuration text, parsed and checked (properties: tests/properties/config.rs).
//! Relative paths in it resolve against the fixtures folder.
#![no_main]

use std::path::Path;

#[path = "../../tests/properties/config.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    properties::check(
        data,
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures")),
    )
});
