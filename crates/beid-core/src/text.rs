//! Untrusted text: what a rule service, UiTPAS or a clerk's note says, before it is logged,
//! printed, stored or served.
//!
//! Two dangers: it may carry a national number (a service echoing the request, a clerk
//! typing one), and it may carry control characters (terminal escapes in a log, bidi
//! overrides that make a screen lie). [`redact_national_numbers`] removes anything shaped
//! like a national number in every spelling we know; [`untrusted`] also caps the length and
//! keeps only printable characters.

/// What replaces a national-number-shaped run.
pub const REDACTED: &str = "[redacted]";

/// How many digits make a run national-number-shaped: a national number has 11. Longer runs
/// are redacted whole (they may hide one).
const NATIONAL_NUMBER_DIGITS: usize = 11;

/// `text` with every run of at least 11 decimal digits replaced by [`REDACTED`].
///
/// Digits are any Unicode decimal digit (ASCII, full-width `０`-`９`, Arabic-Indic, ...). A
/// run may have one separator between two digits: white space, `.`, `-`, `/`, `_`, `,`, `:`
/// or `'` (`85.61.30-033.18`, `85 61 30 033 18`). The digits written as hexadecimal ASCII
/// (`3835363133...`, 22 hex digits, with or without separators) count as a run too.
pub fn redact_national_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if let Some(end) = run_end(&chars, i) {
            out.push_str(REDACTED);
            i = end;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Untrusted text made safe to show: national numbers redacted, control and format
/// characters (escapes, bidi overrides, zero-width) dropped, white space runs collapsed to
/// one space, at most `max_chars` characters (an ellipsis marks a cut).
pub fn untrusted(text: &str, max_chars: usize) -> String {
    let redacted = redact_national_numbers(text);
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    for c in redacted.chars() {
        let c = if c.is_whitespace() { ' ' } else { c };
        if c != ' ' && !printable(c) {
            continue;
        }
        if c == ' ' {
            if space || out.is_empty() {
                continue;
            }
            space = true;
        } else {
            space = false;
        }
        if count == max_chars {
            out = out.trim_end().to_owned();
            out.push('…');
            return out;
        }
        out.push(c);
        count += 1;
    }
    out.trim_end().to_owned()
}

fn printable(c: char) -> bool {
    !c.is_control()
        && !matches!(c,
            '\u{200B}'..='\u{200F}' // zero-width, LRM/RLM
            | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{2069}' // word joiner, invisible operators, bidi isolates
            | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '.' | '-' | '/' | '_' | ',' | ':' | '\'')
}

/// The end (exclusive) of a national-number-shaped run starting at `start`, if one does.
fn run_end(chars: &[char], start: usize) -> Option<usize> {
    digit_run_end(chars, start).or_else(|| hex_run_end(chars, start))
}

fn digit_run_end(chars: &[char], start: usize) -> Option<usize> {
    if !decimal(chars[start]) {
        return None;
    }
    let (mut digits, mut end, mut i) = (0, start, start);
    while i < chars.len() {
        if decimal(chars[i]) {
            digits += 1;
            i += 1;
            end = i;
        } else if is_separator(chars[i]) && chars.get(i + 1).is_some_and(|&c| decimal(c)) {
            i += 1;
        } else {
            break;
        }
    }
    (digits >= NATIONAL_NUMBER_DIGITS).then_some(end)
}

/// ASCII digits in hexadecimal: pairs `3` + `0`-`9`, 11 pairs or more, a separator allowed
/// between pairs.
fn hex_run_end(chars: &[char], start: usize) -> Option<usize> {
    let (mut pairs, mut end, mut i) = (0, start, start);
    loop {
        let is_pair =
            chars.get(i) == Some(&'3') && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if is_pair {
            pairs += 1;
            i += 2;
            end = i;
        } else if pairs > 0 && chars.get(i).is_some_and(|&c| is_separator(c)) {
            i += 1;
            continue;
        } else {
            break;
        }
        if chars.get(i).is_some_and(char::is_ascii_hexdigit) && chars.get(i) != Some(&'3') {
            // A longer hex string that is not digits-as-hex: leave it.
            break;
        }
    }
    (pairs >= NATIONAL_NUMBER_DIGITS).then_some(end)
}

/// A decimal digit in any script (`char::is_numeric` also takes fractions and roman
/// numerals; `to_digit` only ASCII).
fn decimal(c: char) -> bool {
    c.is_ascii_digit()
        || matches!(c,
            '\u{FF10}'..='\u{FF19}' // full-width
            | '\u{0660}'..='\u{0669}' | '\u{06F0}'..='\u{06F9}' // Arabic-Indic
            | '\u{0966}'..='\u{096F}' // Devanagari
            | '\u{1D7CE}'..='\u{1D7FF}') // mathematical digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_national_number_is_redacted() {
        for spelling in [
            "85613003318",
            "85.61.30-033.18",
            "85 61 30 033 18",
            "85-61-30-033-18",
            "８５６１３００３３１８",
            "８５ ６１ ３０ ０３３ １８",
            "3835363133303033333138",
            "38 35 36 31 33 30 30 33 33 31 38",
            // Bytes listed as in a hex dump: only the hex reading sees a number here.
            "38, 35, 36, 31, 33, 30, 30, 33, 33, 31, 38",
            // The same dump in two-byte words: each word is hex for two digits.
            "3835, 3631, 3330, 3033, 3331, 38",
            "856130033189999",
        ] {
            let text = format!("reason: {spelling} (check)");
            assert_eq!(
                redact_national_numbers(&text),
                "reason: [redacted] (check)",
                "{spelling}"
            );
        }
    }

    #[test]
    fn short_numbers_dates_and_codes_stay() {
        for text in [
            "KT-2026",
            "valid until 2026-12-31",
            "order 592-123",
            "call 09 266 11 11",
            "deadbeef3031",
            // Digits between letters are not a number written with separators.
            "8x5y6z1x3y0z0x3y3z1x8",
            // Hex, but of punctuation (`:;<=>?`), not of digits.
            "3a3b3c3d3e3f3a3b3c3d3e3f",
        ] {
            assert_eq!(redact_national_numbers(text), text);
        }
    }

    #[test]
    fn untrusted_text_loses_controls_and_is_capped() {
        assert_eq!(
            untrusted("\u{1b}[31mred\u{1b}[0m  and\t\nmore\u{202E}txt", 100),
            "[31mred[0m and moretxt"
        );
        assert_eq!(untrusted("abcdefghij", 4), "abcd…");
        assert_eq!(
            untrusted("  Pas gültig für 85613003318  ", 100),
            "Pas gültig für [redacted]"
        );
    }
}
