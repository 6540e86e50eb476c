//! Small byte helpers: DER framing of card files, hex for the cache file.

use super::error::TrustError;

/// The DER SEQUENCE at the start of a card file, without the card's zero padding.
///
/// Card fact (`docs/card-protocol.md` §4): certificate files are `DER ‖ 00…` (50, 1100 or
/// 1300 zero bytes, or none), so the file is cut at `header + length`:
/// `4 + (b[2] << 8 | b[3])` for `30 82`, `3 + b[2]` for `30 81`, `2 + b[1]` for short
/// lengths.
pub(crate) fn cut_der_sequence(file: &[u8]) -> Result<&[u8], TrustError> {
    let (header, content) = match file {
        [0x30, len @ 0x00..=0x7f, ..] => (2, usize::from(*len)),
        [0x30, 0x81, len, ..] if *len >= 0x80 => (3, usize::from(*len)),
        [0x30, 0x82, hi, lo, ..] if *hi != 0 => (4, usize::from(*hi) << 8 | usize::from(*lo)),
        [0x30, 0x81 | 0x82, ..] => return Err(TrustError::malformed("non-minimal DER length")),
        [0x30, ..] => return Err(TrustError::malformed("unsupported DER length form")),
        [] => return Err(TrustError::malformed("empty file")),
        _ => return Err(TrustError::malformed("not a DER SEQUENCE")),
    };
    let total = header + content;
    file.get(..total)
        .ok_or(TrustError::malformed("file shorter than its DER length"))
}

/// One DER element: its tag, the whole encoding, and its content.
pub(crate) struct Tlv<'a> {
    pub(crate) tag: u8,
    pub(crate) whole: &'a [u8],
    pub(crate) content: &'a [u8],
}

/// Splits the first DER element (single-byte tag, minimal definite length up to 3 length bytes)
/// off `input`; `None` if it does not fit.
pub(crate) fn split_tlv(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0x00..=0x7f => (usize::from(first), rest),
        0x81..=0x83 => {
            let count = usize::from(first & 0x7f);
            let bytes = rest.get(..count)?;
            if bytes.first() == Some(&0) {
                return None;
            }
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| acc << 8 | usize::from(*b));
            if len < 0x80 {
                return None;
            }
            (len, rest.get(count..)?)
        }
        _ => return None,
    };
    let content = rest.get(..len)?;
    let after = rest.get(len..)?;
    let whole = input.get(..input.len() - after.len())?;
    Some((
        Tlv {
            tag,
            whole,
            content,
        },
        after,
    ))
}

/// Lower-case hex.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len().saturating_mul(2));
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Parses hex (either case); `None` on odd length or a non-hex character.
pub(crate) fn from_hex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cuts_long_form_82_and_keeps_exact_files() {
        let mut file = vec![0x30, 0x82, 0x01, 0x00];
        file.extend(std::iter::repeat_n(0xAA, 0x100));
        let exact = file.clone();
        file.extend([0u8; 1100]);
        assert_eq!(cut_der_sequence(&file).unwrap(), &exact[..]);
        assert_eq!(cut_der_sequence(&exact).unwrap(), &exact[..]);
    }

    #[test]
    fn cuts_long_form_81_and_short_form() {
        let mut file = vec![0x30, 0x81, 0x80];
        file.extend([1u8; 0x80]);
        file.extend([0u8; 50]);
        assert_eq!(cut_der_sequence(&file).unwrap().len(), 3 + 0x80);
        assert_eq!(
            cut_der_sequence(&[0x30, 0x02, 5, 6, 0, 0]).unwrap(),
            &[0x30, 0x02, 5, 6]
        );
    }

    #[test]
    fn refuses_truncated_and_foreign_framing() {
        assert!(cut_der_sequence(&[]).is_err());
        assert!(cut_der_sequence(&[0x30]).is_err());
        assert!(cut_der_sequence(&[0x30, 0x82, 0x03]).is_err());
        assert!(cut_der_sequence(&[0x30, 0x82, 0x03, 0x44, 0x00]).is_err());
        assert!(cut_der_sequence(&[0x31, 0x02, 0, 0]).is_err());
        assert!(cut_der_sequence(&[0x30, 0x84, 0, 0, 0, 1, 0]).is_err());
        assert!(cut_der_sequence(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(to_hex(&[0x00, 0xab, 0x7f]), "00ab7f");
        assert_eq!(from_hex("00AB7f").unwrap(), vec![0x00, 0xab, 0x7f]);
        assert!(from_hex("0").is_none());
        assert!(from_hex("zz").is_none());
    }

    proptest! {
        #[test]
        fn cut_never_panics_and_stays_inside(file in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(cut) = cut_der_sequence(&file) {
                prop_assert!(cut.len() <= file.len());
                prop_assert_eq!(cut, &file[..cut.len()]);
            }
        }

        #[test]
        fn hex_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(from_hex(&to_hex(&bytes)), Some(bytes));
        }
    }
}
