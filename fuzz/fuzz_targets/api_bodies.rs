//! The local API in-process: the real router (`api::router`) with simulated readers and the
//! simulated rule service, on requests built from the input: method, target, Host,
//! Authorization, Origin, Content-Type and the JSON body (properties, input format and the
//! harness: tests/properties/api.rs).
#![no_main]

use std::sync::OnceLock;

#[allow(dead_code)]
#[path = "../../tests/properties/api.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    static HARNESS: OnceLock<properties::Harness> = OnceLock::new();
    HARNESS.get_or_init(properties::Harness::new).run(data);
});
