//! What an intruder with the agent's user does to the files in the state directory: rewrites
//! records in the documented format and recomputes every hash after them so the chain links
//! again, rewrites the head file, and seals with the key it reads from the sealing state.

use super::*;
use crate::audit::record::encode;
use crate::audit::seal_state::Sealer;

/// The hash stated at the end of a line (with its newline).
pub fn hash_of(line: &[u8]) -> String {
    let text = std::str::from_utf8(line).unwrap().trim_end();
    text[text.len() - 66..text.len() - 2].to_owned()
}

fn field(line: &[u8], name: &str) -> String {
    let value: serde_json::Value = serde_json::from_slice(line).unwrap();
    value[name].as_str().unwrap_or_default().to_owned()
}

/// `line` renumbered to `seq`, linked to `prev`, with its own hash recomputed.
pub fn reforge(line: &[u8], seq: u64, prev: &str) -> Vec<u8> {
    let text = std::str::from_utf8(line).unwrap().trim_end();
    let body = &text[..text.rfind(",\"prev\":\"").unwrap()];
    let after_seq = &body[body.find(",\"at\"").unwrap()..];
    let hashed = format!("{{\"seq\":{seq}{after_seq},\"prev\":\"{prev}\"");
    let hash = Sha256::of(hashed.as_bytes());
    format!("{hashed},\"hash\":\"{hash}\"}}\n").into_bytes()
}

/// `line` dated `at` instead.
pub fn redate(line: &[u8], at: &str) -> Vec<u8> {
    let old = field(line, "at");
    String::from_utf8(line.to_vec())
        .unwrap()
        .replacen(&format!("\"at\":\"{old}\""), &format!("\"at\":\"{at}\""), 1)
        .into_bytes()
}

fn prev_of(lines: &[Vec<u8>], at: usize) -> String {
    match at {
        0 => GENESIS.to_hex(),
        _ => hash_of(&lines[at - 1]),
    }
}

/// Renumbers and re-links every line from `from` on, as if nothing had changed before.
pub fn rehash_from(lines: &mut [Vec<u8>], from: usize) {
    for at in from..lines.len() {
        let prev = prev_of(lines, at);
        lines[at] = reforge(&lines[at], at as u64, &prev);
    }
}

/// [`rehash_from`], and every seal from `from` on made again with the stolen key.
pub fn rehash_and_reseal(lines: &mut [Vec<u8>], from: usize, key: &Sealer) {
    for at in from..lines.len() {
        let prev = prev_of(lines, at);
        lines[at] = if field(&lines[at], "type") == "seal" {
            let reason = match field(&lines[at], "reason").as_str() {
                "start" => SealReason::Start,
                "stop" => SealReason::Stop,
                _ => SealReason::Epoch,
            };
            seal_line(key, at as u64, &field(&lines[at], "at"), reason, &prev)
        } else {
            reforge(&lines[at], at as u64, &prev)
        };
    }
}

/// A seal record made with the stolen key.
pub fn seal_line(key: &Sealer, seq: u64, at: &str, reason: SealReason, prev: &str) -> Vec<u8> {
    let prev = Sha256::from_hex(prev).unwrap();
    let seal = key.seal(seq, at, reason, prev);
    encode(seq, at, &Event::Seal(seal), &prev).unwrap().0
}

/// A head file naming the last line.
pub fn head_for(lines: &[Vec<u8>]) -> Vec<u8> {
    let last = lines.len() - 1;
    format!(
        "{{\"seq\":{last},\"hash\":\"{}\"}}\n",
        hash_of(&lines[last])
    )
    .into_bytes()
}

/// The index of the first line whose type is `kind`.
pub fn first(lines: &[Vec<u8>], kind: &str) -> usize {
    lines
        .iter()
        .position(|line| field(line, "type") == kind)
        .unwrap()
}

/// The sealing key as the intruder reads it from the sealing state: the current epoch's.
pub fn steal_key(fixture: &Fixture) -> Sealer {
    Sealer::load(&fixture.seal_state()).unwrap().unwrap()
}

/// Writes the log and a head file that names its last line.
pub fn write(fixture: &Fixture, lines: &[Vec<u8>]) {
    write_lines(&fixture.log, lines);
    fs::write(fixture.head(), head_for(lines)).unwrap();
}

/// Turns the first `eligible` advice into `not_eligible`, then recomputes every hash after
/// it and the head file.
pub fn edit_and_rehash(fixture: &Fixture) -> usize {
    let mut lines = lines(&fixture.bytes());
    let at = first(&lines, "advice");
    let edited = String::from_utf8(lines[at].clone())
        .unwrap()
        .replace("\"eligible\"", "\"not_eligible\"");
    lines[at] = edited.into_bytes();
    rehash_from(&mut lines, at);
    write(fixture, &lines);
    at
}

/// Deletes `count` records starting with the first advice, renumbers and re-links the
/// rest, and rewrites the head file.
pub fn delete_and_rehash(fixture: &Fixture, count: usize) -> usize {
    let mut lines = lines(&fixture.bytes());
    let at = first(&lines, "advice");
    lines.drain(at..at + count);
    rehash_from(&mut lines, at);
    write(fixture, &lines);
    at
}

/// Keeps the first `keep` records and deletes the head file.
pub fn truncate(fixture: &Fixture, keep: usize) {
    let lines = lines(&fixture.bytes());
    write_lines(&fixture.log, &lines[..keep]);
    fs::remove_file(fixture.head()).unwrap();
}

/// Appends a copy of the first advice, linked to the last record, and rewrites the head.
pub fn append_forged_advice(fixture: &Fixture) {
    let mut lines = lines(&fixture.bytes());
    let template = lines[first(&lines, "advice")].clone();
    let forged = reforge(
        &template,
        lines.len() as u64,
        &hash_of(lines.last().unwrap()),
    );
    lines.push(forged);
    write(fixture, &lines);
}
