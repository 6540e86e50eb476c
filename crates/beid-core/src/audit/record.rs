//! The record format: what a line holds, how it is written, and how one line is checked on its
//! own (its hash). Chaining lines together is [`super::verify`]'s job.

use std::fmt;
use std::time::Duration;

use ring::digest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::AuditError;
use super::sealing::{KeyId, Mac};
use crate::contract::StaffDecision;

/// The longest line (record and its newline) the log writes. Records are a few hundred bytes;
/// the limit only stops a caller from writing a megabyte of reader name.
pub const MAX_LINE: usize = 16 * 1024;

/// `prev` of the first record of a log: 64 zeros.
pub const GENESIS: Sha256 = Sha256([0; 32]);

/// `,"hash":"` + 64 hex digits + `"}`: the fixed-size end of every record line.
pub(crate) const HASH_SUFFIX_LEN: usize = HASH_KEY.len() + 64 + 2;
const HASH_KEY: &[u8] = b",\"hash\":\"";

/// A SHA-256 value, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let mut out = [0; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
        Self(out)
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses exactly 64 lowercase hex digits (the only form the log writes).
    pub fn from_hex(text: &str) -> Option<Self> {
        parse_hex(text).map(Self)
    }
}

/// Exactly `2 * N` lowercase hex digits as `N` bytes.
pub(crate) fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let (high, low) = match pair {
            [high, low] => (nibble(*high)?, nibble(*low)?),
            _ => return None,
        };
        *byte = high << 4 | low;
    }
    Some(out)
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.to_hex())
    }
}

impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("expected 64 lowercase hex digits"))
    }
}

/// Where a chain ends: the last record's `seq` and `hash`. Also the content of the head file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: Sha256,
}

/// The pseudonym of a citizen: hex HMAC-SHA256(local secret, national number digits). The same
/// citizen gives the same pseudonym in this agent's log; without the secret it cannot be
/// turned back into a national number (there are only ~10^10 of them, so the secret is what
/// protects it: keep the secret file as private as the log, or more).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pseudonym(String);

impl Pseudonym {
    pub(crate) fn from_mac(mac: &[u8]) -> Self {
        Self(hex(mac))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a record is about: the `type` field and the fields that follow it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    AgentStarted(AgentStarted),
    CardSession(CardSession),
    Advice(AdviceRecord),
    ApiRequest(ApiRequest),
    StaffDecision(StaffDecisionRecord),
    /// Written by the log itself, never by callers: seals bytes a crash left after the last
    /// whole record (see the module documentation).
    RecoveredTail(RecoveredTail),
    /// beid-gateway: a replica (re)started and continues this chain.
    GatewayStarted(GatewayStarted),
    /// beid-gateway: an eligibility check answered.
    Check(CheckRecord),
    /// beid-gateway: a request refused before any source was asked.
    CheckRefused(CheckRefused),
    /// beid-gateway: a clerk's final decision received.
    Outcome(OutcomeRecord),
    /// Written by the log itself: a forward-secure seal (see the module documentation).
    Seal(Seal),
    /// Written by the log itself: bytes that another process wrote into the log (appended
    /// while the agent ran, or after its stop seal). They stay in place, named by offset,
    /// length and SHA-256; `verify` reports them.
    ForeignBytes(RecoveredTail),
}

/// `seal`: a MAC, under the sealing key of `epoch`, over this record's `seq`, `at`, `reason`,
/// `epoch`, `key_id` and `prev` (so over the whole chain before it). See the module
/// documentation for the exact message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    pub reason: SealReason,
    pub epoch: u64,
    pub key_id: KeyId,
    pub mac: Mac,
}

/// Why a seal was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SealReason {
    /// The log was opened: seals what a crash left unsealed, with the key the sealing state
    /// still holds, before that key evolves to the current epoch.
    Start,
    /// The epoch ended (written at the first append or timer tick after its end).
    Epoch,
    /// The agent is shutting down; the key stays (the next start seals with it first).
    Stop,
}

impl SealReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Epoch => "epoch",
            Self::Stop => "stop",
        }
    }
}

impl fmt::Display for SealReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `agent_started`: the agent (re)started and continues this chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStarted {
    /// The agent's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// The process id: tells restarts apart.
    pub pid: u32,
    /// The configured device id (`balie-3`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

impl AgentStarted {
    /// This process: the crate's version and pid.
    pub fn this_process(device: Option<String>) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            device,
        }
    }
}

/// `card_session`: one card read, when it has finished (well or not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardSession {
    pub session: Uuid,
    /// The PC/SC reader name.
    pub reader: String,
    /// The applet version as `AppletVersion` displays it (`1.8`); absent when the applet
    /// was not reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applet: Option<String>,
    /// The authenticity verdict; absent when the read stopped before the checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentic: Option<bool>,
    /// The applet 1.8 anti-clone check, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chip: Option<ChipResult>,
    pub outcome: ReadOutcome,
}

/// Result of the applet 1.8 INTERNAL AUTHENTICATE check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChipResult {
    Genuine,
    NotGenuine,
}

/// How the read ended: `"ok"`, or `{"error": "<stable error code>"}` (e.g. `card_removed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadOutcome {
    Ok,
    Error(String),
}

/// The advice outcome (same codes as `advice::Decision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Eligible,
    NotEligible,
    Unknown,
}

/// What a caller says about an advice; [`super::AuditLog::advice`] adds the pseudonym.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdviceAsked {
    pub session: Uuid,
    /// The use case id (`uitpas-kansentarief`).
    pub use_case: String,
    pub decision: Decision,
    /// The agent's reason for an `unknown` (`advice::Reason`'s `Display`:
    /// `upstream_timeout`, `upstream_status(503)`, `card_expired`, ...).
    pub reason: Option<String>,
    /// The upstream's `reasonCode`, as it came (opaque by contract). Leave it `None` if the
    /// city's codes say something about the citizen's social situation.
    pub upstream_reason: Option<String>,
    /// From asking to deciding (the upstream round trip, or our own refusal).
    pub latency: Duration,
}

/// `advice`: an advice was asked and decided. No national number: only its pseudonym.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdviceRecord {
    pub session: Uuid,
    pub use_case: String,
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_reason: Option<String>,
    pub latency_ms: u64,
    pub pseudonym: Pseudonym,
}

impl AdviceRecord {
    pub(crate) fn new(asked: &AdviceAsked, pseudonym: Pseudonym) -> Self {
        Self {
            session: asked.session,
            use_case: asked.use_case.clone(),
            decision: asked.decision,
            reason: asked.reason.clone(),
            upstream_reason: asked.upstream_reason.clone(),
            latency_ms: u64::try_from(asked.latency.as_millis()).unwrap_or(u64::MAX),
            pseudonym,
        }
    }
}

/// `api_request`: a call on the local API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiRequest {
    /// The configured client's name; absent when the request did not authenticate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    pub method: String,
    /// The route template (`/v1/sessions/{session}`), never the raw path or query (which
    /// carry ids and SSE tickets).
    pub route: String,
    pub status: u16,
    /// The card session the request was about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Uuid>,
}

/// `staff_decision`: what the clerk finally decided on an advice. Tied to the citizen only
/// through the session (whose `advice` record carries the pseudonym); the clerk's note is
/// not kept here (free text: it goes to the rule service, which asked for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffDecisionRecord {
    pub session: Uuid,
    pub use_case: String,
    /// The advice decided on.
    pub advice: Decision,
    /// `granted` or `not_granted`.
    pub decision: StaffDecision,
    /// The deviation reason's id, when the decision deviates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deviation: Option<String>,
    /// Whether the clerk added a note.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub note: bool,
}

/// `recovered_tail`: the `length` bytes at byte `offset` of the log file are what a crash left
/// after the last whole record (a partial line, possibly several); `sha256` is their hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveredTail {
    pub offset: u64,
    pub length: u64,
    pub sha256: Sha256,
}

/// `gateway_started`: a beid-gateway replica (re)started and continues this chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayStarted {
    /// The gateway's version (`CARGO_PKG_VERSION` of beid-gateway).
    pub version: String,
    /// The process id: tells restarts apart.
    pub pid: u32,
    /// The replica's host name, when known: tells replicas apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// What the gateway says about a check it answered; [`super::AuditLog::check`] adds the
/// pseudonym.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckAnswered {
    /// The contract's `requestId`.
    pub request: Uuid,
    /// The device (its client certificate's CN, equal to the request's `deviceId`).
    pub device: String,
    pub use_case: String,
    /// `counter` or `kiosk`.
    pub channel: String,
    pub decision: Decision,
    /// The source that decided (or, for an `unknown`, whose reason is given).
    pub source: Option<String>,
    /// The answer's `reasonCode`.
    pub reason: Option<String>,
    /// From the request's arrival to the answer.
    pub latency: Duration,
}

/// `check`: an eligibility check the gateway answered. No national number: its pseudonym.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub request: Uuid,
    pub device: String,
    pub use_case: String,
    pub channel: String,
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub latency_ms: u64,
    pub pseudonym: Pseudonym,
}

impl CheckRecord {
    pub(crate) fn new(answered: &CheckAnswered, pseudonym: Pseudonym) -> Self {
        Self {
            request: answered.request,
            device: answered.device.clone(),
            use_case: answered.use_case.clone(),
            channel: answered.channel.clone(),
            decision: answered.decision,
            source: answered.source.clone(),
            reason: answered.reason.clone(),
            latency_ms: u64::try_from(answered.latency.as_millis()).unwrap_or(u64::MAX),
            pseudonym,
        }
    }
}

/// `check_refused`: a request the gateway refused before asking any source (a device whose
/// certificate does not match its `deviceId`, over its rate, an invalid body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRefused {
    /// The `requestId`, when the body had a valid one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Uuid>,
    /// The client certificate's CN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// A stable code: `device_mismatch`, `rate_limited`, `invalid_request`, ...
    pub reason: String,
    pub status: u16,
}

/// `outcome`: what a clerk finally decided on a check (`POST .../outcome`). The note's
/// text is not kept: only whether there was one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    pub request: Uuid,
    pub device: String,
    pub decision: crate::contract::StaffDecision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deviation: Option<String>,
    pub note: bool,
}

/// A parsed record line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Record {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(flatten)]
    pub event: Event,
    pub prev: Sha256,
    pub hash: Sha256,
}

impl Record {
    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.hash,
        }
    }
}

/// Writes one record line, newline included, and returns it with its hash:
/// `{"seq":N,"at":"<RFC 3339>",<event fields, "type" first>,"prev":"<hex>"` is hashed, then
/// `,"hash":"<hex>"}` and `\n` are added.
pub(crate) fn encode(
    seq: u64,
    at: &str,
    event: &Event,
    prev: &Sha256,
) -> Result<(Vec<u8>, Sha256), AuditError> {
    let body = serde_json::to_vec(event).map_err(AuditError::Serialize)?;
    let fields = body
        .strip_prefix(b"{")
        .and_then(|rest| rest.strip_suffix(b"}"))
        .filter(|fields| !fields.is_empty())
        .ok_or(AuditError::NotAnObject)?;
    let mut line = Vec::with_capacity(fields.len() + 256);
    line.extend_from_slice(format!("{{\"seq\":{seq},\"at\":\"{at}\",").as_bytes());
    line.extend_from_slice(fields);
    line.extend_from_slice(format!(",\"prev\":\"{prev}\"").as_bytes());
    let hash = Sha256::of(&line);
    line.extend_from_slice(format!(",\"hash\":\"{hash}\"}}\n").as_bytes());
    if line.len() > MAX_LINE {
        return Err(AuditError::RecordTooLarge {
            len: line.len(),
            max: MAX_LINE,
        });
    }
    Ok((line, hash))
}

/// One line (without its newline) judged on its own.
#[derive(Debug)]
pub(crate) enum Checked {
    /// The bytes hash to the line's `hash` and form a record.
    Record(Box<Record>),
    /// The line has the shape of a record but its bytes do not hash to its `hash`.
    Edited,
    /// Not a record of this format.
    Malformed(&'static str),
}

pub(crate) fn check_line(line: &[u8]) -> Checked {
    let Some(split) = line.len().checked_sub(HASH_SUFFIX_LEN) else {
        return Checked::Malformed("too short for a record");
    };
    let (hashed, suffix) = line.split_at(split);
    let stated = suffix
        .strip_prefix(HASH_KEY)
        .and_then(|rest| rest.strip_suffix(b"\"}"))
        .and_then(|digits| std::str::from_utf8(digits).ok())
        .and_then(Sha256::from_hex);
    let Some(stated) = stated else {
        return Checked::Malformed("does not end with a \"hash\" field");
    };
    if Sha256::of(hashed) != stated {
        return Checked::Edited;
    }
    match serde_json::from_slice::<Record>(line) {
        Ok(record) if record.hash == stated => Checked::Record(Box::new(record)),
        Ok(_) => Checked::Malformed("two \"hash\" fields"),
        Err(_) => Checked::Malformed("hashes right but is not a record of a known type"),
    }
}

/// Whether a line of `buf` is a seal record.
pub(crate) fn holds_seal(buf: &[u8]) -> bool {
    const SEAL_TYPE: &[u8] = b"\"type\":\"seal\"";
    buf.split(|&b| b == b'\n')
        .filter(|line| line.windows(SEAL_TYPE.len()).any(|w| w == SEAL_TYPE))
        .any(|line| matches!(check_line(line), Checked::Record(r) if matches!(r.event, Event::Seal(_))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_uppercase() {
        let hash = Sha256::of(b"abc");
        assert_eq!(
            hash.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Sha256::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(Sha256::from_hex(&hash.to_hex().to_uppercase()), None);
        assert_eq!(Sha256::from_hex("ab"), None);
        assert_eq!(Sha256::from_hex(&"é".repeat(32)), None);
    }

    #[test]
    fn an_encoded_line_checks_and_parses_back() {
        let event = Event::ApiRequest(ApiRequest {
            client: Some("pos".into()),
            method: "GET".into(),
            route: "/v1/readers".into(),
            status: 200,
            session: None,
        });
        let (line, hash) = encode(7, "2025-03-01T10:00:00Z", &event, &GENESIS).unwrap();
        let text = std::str::from_utf8(&line).unwrap();
        assert_eq!(
            text,
            format!(
                "{{\"seq\":7,\"at\":\"2025-03-01T10:00:00Z\",\"type\":\"api_request\",\
                 \"client\":\"pos\",\"method\":\"GET\",\"route\":\"/v1/readers\",\"status\":200,\
                 \"prev\":\"{GENESIS}\",\"hash\":\"{hash}\"}}\n"
            )
        );
        let Checked::Record(record) = check_line(line.strip_suffix(b"\n").unwrap()) else {
            panic!("not a record");
        };
        assert_eq!(record.seq, 7);
        assert_eq!(record.event, event);
        assert_eq!(record.hash, hash);
    }

    #[test]
    fn lines_that_are_not_records() {
        assert!(matches!(check_line(b""), Checked::Malformed(_)));
        assert!(matches!(check_line(&[b'x'; 200]), Checked::Malformed(_)));
        let fake = format!("{{\"a\":1,\"hash\":\"{}\"}}", Sha256::of(b"{\"a\":1"));
        assert!(matches!(
            check_line(fake.as_bytes()),
            Checked::Malformed("hashes right but is not a record of a known type")
        ));
        let wrong = format!("{{\"a\":1,\"hash\":\"{}\"}}", Sha256::of(b"other"));
        assert!(matches!(check_line(wrong.as_bytes()), Checked::Edited));
    }

    #[test]
    fn a_huge_record_is_refused() {
        let event = Event::ApiRequest(ApiRequest {
            client: None,
            method: "GET".into(),
            route: "x".repeat(MAX_LINE),
            status: 200,
            session: None,
        });
        assert!(matches!(
            encode(0, "2025-03-01T10:00:00Z", &event, &GENESIS),
            Err(AuditError::RecordTooLarge { .. })
        ));
    }
}
