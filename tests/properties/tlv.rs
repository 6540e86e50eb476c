//! TLV parser and identity/address parsing: never a panic, and what parses is canonical:
//! re-encoding the fields gives back exactly the bytes they were read from.
//!
//! Shared by `fuzz/fuzz_targets/tlv.rs` and `tests/fuzz_regressions.rs`: `check` panics when
//! a property does not hold.

use beid_agent::beid::tlv::{self, TlvError};
use beid_agent::beid::{der_length, parse_card_date, Address, BirthDate, CardData, Identity};

pub fn check(bytes: &[u8]) {
    let parsed = tlv::parse(bytes);
    match &parsed {
        Ok(fields) => {
            let pairs: Vec<(u8, &[u8])> = fields.iter().map(|f| (f.tag, f.value)).collect();
            let encoded = tlv::encode(&pairs);
            // The long form is unique (FF adds 255, anything else ends it), so the fields
            // re-encode to exactly the bytes they came from ...
            assert!(
                bytes.starts_with(&encoded),
                "re-encoding differs from the input"
            );
            // ... and parsing stops only at the end or at padding (a tag 00 after the first).
            let rest = &bytes[encoded.len()..];
            assert!(
                rest.is_empty() || (rest[0] == 0x00 && !encoded.is_empty()),
                "parsing stopped at {:#04x} after {} bytes",
                rest[0],
                encoded.len()
            );
            let again = tlv::parse(&encoded).unwrap_or_else(|e| panic!("re-parse: {e}"));
            assert_eq!(&again, fields);
        }
        Err(TlvError::Truncated { tag, offset } | TlvError::MissingLength { tag, offset }) => {
            assert!(
                *offset < bytes.len(),
                "error offset {offset} outside the input"
            );
            assert_eq!(bytes[*offset], *tag, "error names another tag");
        }
        Err(other) => panic!("unexpected TLV error {other:?}"),
    }

    match Identity::parse(bytes) {
        Ok(identity) => {
            let fields = parsed
                .as_ref()
                .unwrap_or_else(|e| panic!("identity parsed but TLV failed: {e}"));
            // The national number is the last tag 06, exactly as written.
            let last_06 = fields.iter().rev().find(|f| f.tag == 0x06);
            match (&identity.national_number, last_06) {
                (Some(number), Some(field)) => {
                    assert_eq!(number.expose().as_bytes(), field.value);
                    let masked = number.masked();
                    let debug = format!("{identity:?}");
                    // Debug shows the document type as written, which may hold anything.
                    let leaked = debug.contains(number.expose())
                        && !identity.document_type.contains(number.expose());
                    assert!(
                        !leaked && !masked.contains(number.expose()),
                        "the national number shows in Debug or masked form"
                    );
                }
                (None, None) => {}
                (number, field) => panic!(
                    "national number {} but tag 06 {}",
                    number.is_some(),
                    field.is_some()
                ),
            }
            let known = |tag: u8| tag <= 0x1F;
            let unknown: Vec<u8> = fields
                .iter()
                .map(|f| f.tag)
                .filter(|&t| !known(t))
                .collect();
            assert_eq!(identity.unknown_tags, unknown);
        }
        Err(_) => {
            // Only a structure error or a malformed national number may refuse a file.
            if let Ok(fields) = &parsed {
                assert!(
                    fields.iter().any(|f| f.tag == 0x06
                        && (f.value.len() != 11 || !f.value.iter().all(u8::is_ascii_digit))),
                    "identity refused a well-formed file"
                );
            }
        }
    }
    assert_eq!(Address::parse(bytes).is_ok(), parsed.is_ok());

    // The other small parsers of card bytes.
    let text = String::from_utf8_lossy(bytes);
    let _ = parse_card_date(&text);
    if let Some(birth) = BirthDate::parse(&text) {
        let _ = birth.to_iso();
    }
    if let Some(data) = CardData::parse(bytes) {
        assert_eq!(data.as_bytes(), &bytes[..data.as_bytes().len()]);
        let _ = (data.applet_version(), data.life_cycle(), data.chip_serial());
    }
    if let Some(length) = der_length(bytes) {
        assert!((2..=4 + 0xFFFF).contains(&length));
    }
}
