//! How hard a token is to guess, estimated from below.
//!
//! A token made by `openssl rand` is random: each character costs a guesser the full size of
//! its alphabet. A token a person made up is not: it repeats itself, counts (`0123`,
//! `abcd`), or is made of words. The estimate walks the token and charges each stretch what a
//! guesser who tries those patterns first would need:
//!
//! - a repeat of something earlier in the token: where it starts and how long it is;
//! - a run with a constant step (`aaaa`, `1234`, `fedc`): its first character, step and length;
//! - a word-like run of letters (one case, or capitalised, with the vowels of a word):
//!   2 bits a letter, about what a dictionary word costs;
//! - anything else: the bits of one character of the token's alphabet.
//!
//! The cheapest reading of the whole token is taken. A UUID is capped at its 122 random bits;
//! only the first 256 characters are judged.

/// Fewest bits a token may have.
pub const MIN_TOKEN_BITS: f64 = 128.0;

/// Bits per letter of a word-like run.
const WORD_BITS_PER_LETTER: f64 = 2.0;
/// Shortest repeat, step run or word that counts as a pattern.
const MIN_PATTERN: usize = 3;
const MIN_WORD: usize = 4;
/// Random bits of a version 4 UUID.
const UUID_BITS: f64 = 122.0;

/// Only this many characters are judged: beyond them a token is strong enough or not
/// already, and the repeat search stays quick.
const MAX_JUDGED: usize = 256;

/// The estimated entropy of `token`, in bits: the cheapest way to spell it with the readings
/// above (a shortest path from its end to its start).
pub fn estimate_bits(token: &str) -> f64 {
    let chars: Vec<char> = token.chars().take(MAX_JUDGED).collect();
    let symbol = alphabet_size(&chars).log2();
    let mut cheapest = vec![0.0; chars.len() + 1];
    for i in (0..chars.len()).rev() {
        let mut best = symbol + cheapest[i + 1];
        for (cost, length) in [
            repeat(&chars, i),
            step_run(&chars, i, symbol),
            word(&chars, i),
        ]
        .into_iter()
        .flatten()
        {
            best = best.min(cost + cheapest[i + length]);
        }
        cheapest[i] = best;
    }
    let bits = cheapest[0];
    if is_uuid(token) {
        return bits.min(UUID_BITS);
    }
    bits
}

/// The smallest usual alphabet holding every character: hex, base64 (standard or URL-safe),
/// or the union of the classes used (digits, lower case, upper case, other printable ASCII).
fn alphabet_size(chars: &[char]) -> f64 {
    let all = |f: fn(&char) -> bool| chars.iter().all(f);
    if all(|c| c.is_ascii_digit()) {
        return 10.0;
    }
    if all(|c| c.is_ascii_digit() || matches!(c, 'a'..='f'))
        || all(|c| c.is_ascii_digit() || matches!(c, 'A'..='F'))
    {
        return 16.0;
    }
    if all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
        || all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '='))
    {
        let mixed = chars.iter().any(char::is_ascii_lowercase)
            && chars.iter().any(char::is_ascii_uppercase);
        if mixed {
            return 64.0;
        }
    }
    let any = |f: fn(&char) -> bool| chars.iter().any(f);
    let mut size = 0.0;
    if any(char::is_ascii_digit) {
        size += 10.0;
    }
    if any(char::is_ascii_lowercase) {
        size += 26.0;
    }
    if any(char::is_ascii_uppercase) {
        size += 26.0;
    }
    if any(|c| !c.is_ascii_alphanumeric()) {
        size += 33.0;
    }
    size
}

/// The longest copy starting at `i` of text starting earlier (it may overlap itself).
fn repeat(chars: &[char], i: usize) -> Option<(f64, usize)> {
    let longest = (0..i)
        .map(|start| {
            (0..chars.len() - i)
                .take_while(|&k| chars[start + k] == chars[i + k])
                .count()
        })
        .max()?;
    (longest >= MIN_PATTERN).then(|| {
        let cost = (i as f64).log2().max(1.0) + (longest as f64).log2();
        (cost, longest)
    })
}

/// The longest run from `i` whose characters step by a constant -2..=2.
fn step_run(chars: &[char], i: usize, symbol: f64) -> Option<(f64, usize)> {
    let step = |a: char, b: char| i64::from(u32::from(b)) - i64::from(u32::from(a));
    let first = step(*chars.get(i)?, *chars.get(i + 1)?);
    if first.abs() > 2 {
        return None;
    }
    let length = 2 + chars[i + 1..]
        .windows(2)
        .take_while(|pair| step(pair[0], pair[1]) == first)
        .count();
    (length >= MIN_PATTERN).then(|| (symbol + 3.0 + (length as f64).log2(), length))
}

/// A word-like run of letters from `i`: one case, or a capital then lower case; with the
/// vowels of a word (a quarter to two thirds) and no more than four consonants in a row.
fn word(chars: &[char], i: usize) -> Option<(f64, usize)> {
    let first = *chars.get(i)?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let rest_upper =
        first.is_ascii_uppercase() && chars.get(i + 1).is_some_and(|c| c.is_ascii_uppercase());
    let same_case = |c: &char| {
        if rest_upper {
            c.is_ascii_uppercase()
        } else {
            c.is_ascii_lowercase()
        }
    };
    let length = 1 + chars[i + 1..].iter().take_while(|c| same_case(c)).count();
    let run = &chars[i..i + length];
    if length < MIN_WORD {
        return None;
    }
    let vowel = |c: &char| matches!(c.to_ascii_lowercase(), 'a' | 'e' | 'i' | 'o' | 'u' | 'y');
    let vowels = run.iter().filter(|c| vowel(c)).count() as f64 / length as f64;
    let mut cluster = 0;
    let mut longest_cluster = 0;
    for c in run {
        cluster = if vowel(c) { 0 } else { cluster + 1 };
        longest_cluster = longest_cluster.max(cluster);
    }
    let word_like = (0.25..=0.67).contains(&vowels) && longest_cluster <= 4;
    word_like.then_some((WORD_BITS_PER_LETTER * length as f64, length))
}

fn is_uuid(token: &str) -> bool {
    let groups: Vec<&str> = token.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strong(token: &str) -> bool {
        estimate_bits(token) >= MIN_TOKEN_BITS
    }

    #[test]
    fn what_people_make_up_is_weak() {
        for weak in [
            "a".repeat(32),
            "abcd".repeat(8),
            "0123456789".repeat(4),
            "Kp3x".repeat(10),
            "counter-token-0123456789-0123456789-0123".to_owned(),
            "thisisthesecrettokenofthecitycounterbalie".to_owned(),
            "SuperGeheimWachtwoordVoorDeKassaVanHetStadhuis".to_owned(),
            "correct-horse-battery-staple-correct-horse".to_owned(),
            "passwordpasswordpassword12345678".to_owned(),
            "5f0c8d3e-7a4b-4c2d-9e1f-0a1b2c3d4e5f".to_owned(),
            String::new(),
        ] {
            assert!(!strong(&weak), "{weak:?}: {} bits", estimate_bits(&weak));
        }
    }

    /// Output of `openssl rand -hex 32` and `openssl rand -base64 32`.
    #[test]
    fn openssl_tokens_are_strong() {
        for random in [
            "e028403aec62f4d02b998181aab3af30013283a575c40ddece06d1f5e1ffc96d",
            "22879039254564165b46e741053200feb34a1bc081669431b9938715896780e9",
            "bddcd716c94496729ae888fbd2d3e4c671e8a9b0c5919027de80e14253d57118",
            "vneH/EaPBJ1NBSLrqwvtT43kNoAjgC8BU2trcpCwG2A=",
            "CgZNoi66OWwircXs9zXOxZhYVdPjgeuaCvMX2k94yfM=",
            "xczl242nItP+p98fk4Sbs5OPVbSUj7pTTKUz/2KVeOM=",
        ] {
            assert!(strong(random), "{random}: {} bits", estimate_bits(random));
        }
    }

    /// 32 random bytes as hex or base64, as often as a test can afford: none is refused.
    #[test]
    fn random_tokens_are_strong() {
        const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let rng = ring::rand::SystemRandom::new();
        let mut weakest = f64::MAX;
        for _ in 0..2000 {
            let bytes: [u8; 32] = ring::rand::generate(&rng).unwrap().expose();
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let mut base64: String = bytes
                .chunks(3)
                .flat_map(|chunk| {
                    let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b))
                        << (8 * (3 - chunk.len()));
                    (0..=chunk.len())
                        .map(move |k| BASE64[(n >> (18 - 6 * k) & 63) as usize] as char)
                })
                .collect();
            base64.push('=');
            for token in [hex, base64] {
                let bits = estimate_bits(&token);
                weakest = weakest.min(bits);
                assert!(bits >= MIN_TOKEN_BITS, "{token}: {bits} bits");
            }
        }
        eprintln!("weakest random token: {weakest:.0} bits");
    }

    #[test]
    fn a_long_token_is_judged_quickly_by_its_start() {
        let long = "ab".repeat(100_000);
        assert!(!strong(&long));
    }
}
