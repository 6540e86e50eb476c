//! Dates as the card writes them: validity `DD.MM.YYYY`, and birth dates in words in
//! French, Dutch or German with every spacing seen in the field (`docs/card-protocol.md` §10).

use time::{Date, Month};

/// A validity date (`DD.MM.YYYY`, tags 03, 04, 1F), tolerating surrounding spaces and
/// single-digit days or months.
pub fn parse_card_date(raw: &str) -> Option<Date> {
    let mut parts = raw.trim().split('.').map(str::trim);
    let day: u8 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let year: i32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

/// A birth date as far as the card knows it: some have only a year, or an unknown month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BirthDate {
    pub year: i32,
    pub month: Option<u8>,
    pub day: Option<u8>,
}

impl BirthDate {
    /// Parses "01 JAN 1971", "1 JAN 1971", "18 FEB  1979", "22.DEZ. 1997", "08 MAAR 1980",
    /// "29 SEPT 1979", "        1962". `None` only when not even a year is there.
    pub fn parse(raw: &str) -> Option<Self> {
        let words: Vec<&str> = raw
            .split(|c: char| c.is_whitespace() || c == '.')
            .filter(|w| !w.is_empty())
            .collect();
        let (year_word, rest) = words.split_last()?;
        let year: i32 = year_word.parse().ok()?;
        let (day, month) = match rest {
            [] => (None, None),
            [day, month] => (day.parse().ok(), month_number(month)),
            [only] => (None, month_number(only)),
            _ => return None,
        };
        Some(Self { year, month, day })
    }

    /// ISO 8601 as far as known: `1971-01-01`, `1962`.
    pub fn to_iso(&self) -> String {
        match (self.month, self.day) {
            (Some(m), Some(d)) => format!("{:04}-{m:02}-{d:02}", self.year),
            (Some(m), None) => format!("{:04}-{m:02}", self.year),
            _ => format!("{:04}", self.year),
        }
    }
}

/// Month abbreviations in FR, NL and DE (IDF5; MW `dob.cpp`).
fn month_number(word: &str) -> Option<u8> {
    let word = word.to_uppercase();
    let month = match word.as_str() {
        "JAN" | "JANV" => 1,
        "FEB" | "FEV" | "FÉV" => 2,
        "MAR" | "MARS" | "MAAR" | "MÄR" | "MAER" => 3,
        "APR" | "AVR" => 4,
        "MAI" | "MEI" => 5,
        "JUN" | "JUIN" => 6,
        "JUL" | "JUIL" => 7,
        "AUG" | "AOUT" | "AOÛT" => 8,
        "SEP" | "SEPT" => 9,
        "OCT" | "OKT" => 10,
        "NOV" => 11,
        "DEC" | "DÉC" | "DEZ" => 12,
        _ => return None,
    };
    Some(month)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn parses_validity_dates() {
        assert_eq!(parse_card_date("31.05.2012"), Some(date!(2012 - 05 - 31)));
        assert_eq!(parse_card_date(" 1.5.2012 "), Some(date!(2012 - 05 - 01)));
        assert_eq!(parse_card_date("31.02.2012"), None);
        assert_eq!(parse_card_date("2012-05-31"), None);
        assert_eq!(parse_card_date(""), None);
    }

    #[test]
    fn parses_birth_dates_seen_in_the_field() {
        let cases = [
            ("01 JAN 1971", 1971, Some(1), Some(1)),
            ("1 JAN 1971", 1971, Some(1), Some(1)),
            ("18 FEB  1979", 1979, Some(2), Some(18)),
            ("22.DEZ. 1997", 1997, Some(12), Some(22)),
            ("23.SEP. 1982", 1982, Some(9), Some(23)),
            ("08 MAAR 1980", 1980, Some(3), Some(8)),
            ("29 SEPT 1979", 1979, Some(9), Some(29)),
            ("        1962", 1962, None, None),
            ("1962", 1962, None, None),
        ];
        for (raw, year, month, day) in cases {
            assert_eq!(
                BirthDate::parse(raw),
                Some(BirthDate { year, month, day }),
                "{raw:?}"
            );
        }
        assert_eq!(BirthDate::parse("12 ??? 1950").map(|b| b.month), Some(None));
        assert_eq!(BirthDate::parse(""), None);
        assert_eq!(
            BirthDate::parse("01 JAN 1971").unwrap().to_iso(),
            "1971-01-01"
        );
    }
}
