//! The card TLV parser and the identity, address and card-data parsing on top of it
//! (properties: tests/properties/tlv.rs).
#![no_main]

#[path = "../../tests/properties/tlv.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::check(data));
