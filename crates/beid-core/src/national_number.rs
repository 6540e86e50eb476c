//! The national number (INSZ / NISS / rijksregisternummer): identity tag 0x06.
//!
//! It is the most sensitive value the agent handles. The type never shows it by accident:
//! `Debug` and `Display` mask it, and the digits come out only through [`NationalNumber::expose`],
//! whose callers are the upstream request and an explicit `--show-national-number`.

use std::fmt;

use zeroize::Zeroizing;

/// A well-formed national number: 11 ASCII digits. The check digits are not required to
/// be right (a card with a wrong check is reported, not refused at parse time).
#[derive(Clone, PartialEq, Eq)]
pub struct NationalNumber {
    digits: Zeroizing<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NationalNumberError {
    #[error("the national number has {0} characters instead of 11")]
    WrongLength(usize),
    #[error("the national number contains a character that is not a digit")]
    NotDigits,
}

/// What the check digits say (KB 8 Feb 1991 art. 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Checksum {
    /// Right for a birth before 2000.
    ValidBefore2000,
    /// Right with the "2" prefix: born in 2000 or later.
    Valid2000OrLater,
    Invalid,
}

impl Checksum {
    pub fn is_valid(self) -> bool {
        self != Self::Invalid
    }
}

impl NationalNumber {
    pub fn parse(bytes: &[u8]) -> Result<Self, NationalNumberError> {
        if bytes.len() != 11 {
            return Err(NationalNumberError::WrongLength(bytes.len()));
        }
        if !bytes.iter().all(u8::is_ascii_digit) {
            return Err(NationalNumberError::NotDigits);
        }
        let digits: String = bytes.iter().map(|&b| char::from(b)).collect();
        Ok(Self {
            digits: Zeroizing::new(digits),
        })
    }

    /// The full number. Only for the upstream request and an explicit unmasking.
    pub fn expose(&self) -> &str {
        &self.digits
    }

    /// `97 − (N mod 97)` over the first nine digits, with "2" prefixed for births from
    /// 2000 on. Test cards have impossible months, so the month is not judged.
    pub fn checksum(&self) -> Checksum {
        let (Some(body), Some(check)) = (self.number(0..9), self.number(9..11)) else {
            return Checksum::Invalid;
        };
        if 97 - body % 97 == check {
            Checksum::ValidBefore2000
        } else if 97 - (2_000_000_000 + body) % 97 == check {
            Checksum::Valid2000OrLater
        } else {
            Checksum::Invalid
        }
    }

    /// `**.**.**-***.CC`: only the check digits show, enough to tell two cards apart
    /// at the counter and too little to identify anyone.
    pub fn masked(&self) -> String {
        let check = self.digits.get(9..11).unwrap_or("**");
        format!("**.**.**-***.{check}")
    }

    fn number(&self, range: std::ops::Range<usize>) -> Option<u64> {
        self.digits.get(range)?.parse().ok()
    }
}

impl fmt::Debug for NationalNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NationalNumber({})", self.masked())
    }
}

impl fmt::Display for NationalNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nn(s: &str) -> NationalNumber {
        NationalNumber::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn checks_births_before_2000() {
        assert_eq!(nn("79021802145").checksum(), Checksum::ValidBefore2000);
        assert_eq!(nn("85673003360").checksum(), Checksum::ValidBefore2000);
    }

    #[test]
    fn checks_births_from_2000_with_the_2_prefix() {
        assert_eq!(nn("01050399963").checksum(), Checksum::Valid2000OrLater);
    }

    #[test]
    fn accepts_impossible_months_of_test_cards() {
        for number in ["71715100070", "92828100076", "79797900036"] {
            assert!(nn(number).checksum().is_valid(), "{number}");
        }
    }

    #[test]
    fn a_wrong_check_digit_is_invalid() {
        assert_eq!(nn("85073003329").checksum(), Checksum::Invalid);
        assert!(!Checksum::Invalid.is_valid());
        assert!(Checksum::ValidBefore2000.is_valid());
        assert!(Checksum::Valid2000OrLater.is_valid());
    }

    #[test]
    fn remainder_zero_means_check_97() {
        // 000000097: N mod 97 = 0, so the check is 97.
        assert_eq!(nn("00000009797").checksum(), Checksum::ValidBefore2000);
    }

    #[test]
    fn refuses_malformed_numbers() {
        assert_eq!(
            NationalNumber::parse(b"1234"),
            Err(NationalNumberError::WrongLength(4))
        );
        assert_eq!(
            NationalNumber::parse(b"8507300332x"),
            Err(NationalNumberError::NotDigits)
        );
    }

    #[test]
    fn never_shows_the_number_in_debug_or_display() {
        let number = nn("85673003360");
        assert_eq!(number.to_string(), "**.**.**-***.60");
        assert_eq!(format!("{number:?}"), "NationalNumber(**.**.**-***.60)");
        assert_eq!(number.expose(), "85673003360");
    }

    proptest! {
        #[test]
        fn generated_numbers_verify_in_their_century(body in 0u64..1_000_000_000, after_2000 in any::<bool>()) {
            let n = if after_2000 { 2_000_000_000 + body } else { body };
            let check = 97 - n % 97;
            let number = nn(&format!("{body:09}{check:02}"));
            prop_assert!(number.checksum().is_valid());
            if !after_2000 {
                prop_assert_eq!(number.checksum(), Checksum::ValidBefore2000);
            }
        }

        #[test]
        fn masked_output_never_contains_the_first_nine_digits(body in 100_000_000u64..1_000_000_000) {
            let number = nn(&format!("{body:09}00"));
            let shown = format!("{number:?}{number}");
            let hidden = format!("{body:09}");
            prop_assert!(!shown.contains(&hidden));
        }
    }
}
