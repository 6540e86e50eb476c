//! The "simplified TLV" of the identity and address files (CONT54 §6.1, `docs/card-protocol.md` §10):
//! a 1-byte tag, a length of one byte below 255 or `FF`-prefixed (`FF x` = 255 + x), the
//! value, and possibly zero padding at the end. Tag 00 may only come first.

/// One field of a TLV file, borrowing its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub tag: u8,
    pub value: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlvError {
    #[error("field with tag {tag:#04x} at offset {offset} is cut short")]
    Truncated { tag: u8, offset: usize },
    #[error("field with tag {tag:#04x} at offset {offset} has no length")]
    MissingLength { tag: u8, offset: usize },
}

/// Splits a TLV file into its fields. Zero padding after the last field ends the file;
/// a truncated field is an error, never a panic.
pub fn parse(bytes: &[u8]) -> Result<Vec<Field<'_>>, TlvError> {
    let mut fields = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let tag = bytes[offset];
        if tag == 0x00 && offset > 0 {
            // Tag 00 (file structure version) may only come first: anything later is
            // padding (MW `CTLVBuffer::ParseTLV` stops there too).
            break;
        }
        let (length, value_start) =
            read_length(bytes, offset + 1).ok_or(TlvError::MissingLength { tag, offset })?;
        let value = value_start
            .checked_add(length)
            .and_then(|end| bytes.get(value_start..end))
            .ok_or(TlvError::Truncated { tag, offset })?;
        fields.push(Field { tag, value });
        offset = value_start + length;
    }
    Ok(fields)
}

/// Reads a length at `at`: each `FF` adds 255 and continues; returns (length, next offset).
fn read_length(bytes: &[u8], mut at: usize) -> Option<(usize, usize)> {
    let mut length = 0usize;
    loop {
        let byte = *bytes.get(at)?;
        at += 1;
        length += usize::from(byte);
        if byte != 0xFF {
            return Some((length, at));
        }
    }
}

/// Encodes fields in the card's format (used by the simulator and tests).
pub fn encode(fields: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, value) in fields {
        out.push(*tag);
        let mut length = value.len();
        while length >= 0xFF {
            out.push(0xFF);
            length -= 0xFF;
        }
        // The loop leaves less than 255.
        out.push(length as u8);
        out.extend_from_slice(value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_fields_and_stops_at_padding() {
        let bytes = [
            0x01, 0x02, b'4', b'2', 0x09, 0x00, 0x03, 0x01, b'x', 0x00, 0x00, 0x00,
        ];
        let fields = parse(&bytes).unwrap();
        assert_eq!(
            fields,
            [
                Field {
                    tag: 0x01,
                    value: b"42"
                },
                Field {
                    tag: 0x09,
                    value: b""
                },
                Field {
                    tag: 0x03,
                    value: b"x"
                },
            ]
        );
    }

    #[test]
    fn keeps_trailing_empty_fields_of_foreign_cards() {
        // Foreign 1.7 cards may end with `1A 00 1B 00 1C 00` (`docs/card-protocol.md` §4).
        let bytes = [0x06, 0x01, b'9', 0x1A, 0x00, 0x1B, 0x00, 0x1C, 0x00];
        let tags: Vec<u8> = parse(&bytes).unwrap().iter().map(|f| f.tag).collect();
        assert_eq!(tags, [0x06, 0x1A, 0x1B, 0x1C]);
    }

    #[test]
    fn accepts_a_leading_file_structure_version() {
        let bytes = [0x00, 0x02, 0x01, 0x00, 0x01, 0x01, b'7'];
        let fields = parse(&bytes).unwrap();
        assert_eq!(
            fields[0],
            Field {
                tag: 0x00,
                value: &[0x01, 0x00]
            }
        );
        assert_eq!(
            fields[1],
            Field {
                tag: 0x01,
                value: b"7"
            }
        );
    }

    #[test]
    fn reads_the_ff_long_form() {
        let value = vec![b'a'; 300];
        let encoded = encode(&[(0x07, &value)]);
        assert_eq!(&encoded[..3], &[0x07, 0xFF, 45]);
        assert_eq!(parse(&encoded).unwrap()[0].value, value.as_slice());
    }

    #[test]
    fn reports_truncation() {
        assert_eq!(
            parse(&[0x01, 0x05, b'a']),
            Err(TlvError::Truncated {
                tag: 0x01,
                offset: 0
            })
        );
        assert_eq!(
            parse(&[0x01, 0x01, b'a', 0x02]),
            Err(TlvError::MissingLength {
                tag: 0x02,
                offset: 3
            })
        );
        assert_eq!(
            parse(&[0x01, 0xFF]),
            Err(TlvError::MissingLength {
                tag: 0x01,
                offset: 0
            })
        );
    }

    #[test]
    fn parses_every_specimen_file() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
        let mut files = Vec::new();
        for dir in [
            "cards/alice-2009",
            "cards/alice-2010",
            "cards/nora-ec-2022",
            "parsing",
        ] {
            for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                if name.starts_with("4031")
                    || name.starts_with("4033")
                    || name.ends_with(".bin")
                        && !name.starts_with('4')
                        && !name.starts_with('5')
                        && name != "atr.bin"
                {
                    files.push(path);
                }
            }
        }
        assert!(files.len() >= 10, "{files:?}");
        for path in files {
            let bytes = std::fs::read(&path).unwrap();
            let fields = parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!fields.is_empty(), "{}", path.display());
            let consumed: usize = fields.iter().map(|f| 2 + f.value.len()).sum();
            assert!(
                bytes[consumed..].iter().all(|&b| b == 0),
                "{}",
                path.display()
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_any_input(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn encode_then_parse_is_identity(
            fields in proptest::collection::vec((1u8..=255, proptest::collection::vec(any::<u8>(), 0..400)), 0..8)
        ) {
            let borrowed: Vec<(u8, &[u8])> = fields.iter().map(|(t, v)| (*t, v.as_slice())).collect();
            let encoded = encode(&borrowed);
            let parsed = parse(&encoded).unwrap();
            prop_assert_eq!(parsed.len(), fields.len());
            for (field, (tag, value)) in parsed.iter().zip(&fields) {
                prop_assert_eq!(field.tag, *tag);
                prop_assert_eq!(field.value, value.as_slice());
            }
        }
    }
}
