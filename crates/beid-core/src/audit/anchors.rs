//! Anchors: the chain head, logged to the systemd journal at every seal and at every open,
//! where the agent's user cannot rewrite it (journald writes the journal as root, and stamps
//! each entry with trusted fields a client cannot forge: `_SYSTEMD_UNIT`, `_PID`, `_UID`).
//!
//! The writer logs a `tracing` event with target [`ANCHOR_TARGET`] and the fields
//! `audit_seq`, `audit_hash`, `audit_epoch` (sealed logs) and `audit_reason`; with the
//! agent's native journal output they become the journal fields `AUDIT_SEQ`, `AUDIT_HASH`,
//! `AUDIT_EPOCH` (`F_AUDIT_SEQ`, ... with tracing-journald's default prefix; both are read).
//! `verify` reads `journalctl -u beid-agent -o json` (one JSON object per line, values as
//! strings), keeps the entries whose `_SYSTEMD_UNIT` is the agent's unit, and checks that
//! every anchored (seq, hash) is in the chain, that the chain reaches the last anchor, and
//! that every seal from the first anchor on was anchored.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::error::{io_error, AuditError};
use super::record::{ChainHead, SealReason, Sha256};
use super::verify::{when, Finding, Problem};
use super::walk::Link;

/// The `tracing` target of anchor events: logging must let it through at `info` (the agent's
/// log set-up adds [`ANCHOR_DIRECTIVE`] to its filter).
pub const ANCHOR_TARGET: &str = "beid_audit";
/// An `EnvFilter` directive that lets anchors through whatever the verbosity.
pub const ANCHOR_DIRECTIVE: &str = "beid_audit=info";
/// The agent's systemd unit, whose entries `verify` trusts by default.
pub const DEFAULT_UNIT: &str = "beid-agent.service";

/// Logs the chain head as an anchor (`epoch` for sealed logs).
pub(crate) fn log_anchor(head: ChainHead, epoch: Option<u64>, reason: AnchorReason) {
    tracing::info!(
        target: ANCHOR_TARGET,
        audit_seq = head.seq,
        audit_hash = %head.hash,
        audit_epoch = epoch,
        audit_reason = reason.as_str(),
        "audit chain anchor"
    );
}

/// Why an anchor was logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnchorReason {
    /// The log was opened (an unsealed log's only anchor); or a seal found on open whose
    /// anchor a crash may have kept from the journal.
    Open,
    Seal(SealReason),
}

impl AnchorReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Seal(reason) => reason.as_str(),
        }
    }
}

/// The anchors of one unit, from a journal export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchors {
    unit: String,
    anchors: Vec<Anchor>,
}

/// One anchor: the chain head the agent logged, and when journald received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Anchor {
    pub seq: u64,
    pub hash: Sha256,
    pub epoch: Option<u64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub logged_at: Option<OffsetDateTime>,
}

impl Anchors {
    /// Reads `journalctl -o json` output from `path`, keeping the anchors of `unit`.
    pub fn read_journal_export(path: &Path, unit: &str) -> Result<Self, AuditError> {
        let text = fs::read_to_string(path).map_err(io_error("read the journal export", path))?;
        Self::parse_journal_export(&text, unit)
    }

    /// Parses `journalctl -o json` output (one object per line), keeping the anchors that
    /// journald attributed to `unit` (`beid-agent` means `beid-agent.service`).
    pub fn parse_journal_export(text: &str, unit: &str) -> Result<Self, AuditError> {
        let unit = if unit.contains('.') {
            unit.to_owned()
        } else {
            format!("{unit}.service")
        };
        let mut anchors = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            if line.trim().is_empty() {
                continue;
            }
            let entry: Map<String, Value> =
                serde_json::from_str(line).map_err(|_| AuditError::JournalExport {
                    line: line_no,
                    reason: "not a JSON object: expected the output of `journalctl -o json`",
                })?;
            if text_field(&entry, "_SYSTEMD_UNIT") != Some(unit.as_str()) {
                continue;
            }
            if let Some(anchor) = anchor(&entry, line_no)? {
                anchors.push(anchor);
            }
        }
        Ok(Self { unit, anchors })
    }

    pub fn unit(&self) -> &str {
        &self.unit
    }

    pub fn anchors(&self) -> &[Anchor] {
        &self.anchors
    }
}

/// A field's value when it is a string (journalctl writes binary values and repeated fields
/// as arrays: never an anchor).
fn text_field<'a>(entry: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    entry.get(name).and_then(Value::as_str)
}

/// An anchor field, with or without tracing-journald's `F_` prefix.
fn anchor_field<'a>(entry: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    text_field(entry, name).or_else(|| text_field(entry, &format!("F_{name}")))
}

fn anchor(entry: &Map<String, Value>, line: usize) -> Result<Option<Anchor>, AuditError> {
    let Some(seq) = anchor_field(entry, "AUDIT_SEQ") else {
        return Ok(None);
    };
    let malformed = |reason| AuditError::JournalExport { line, reason };
    let seq = seq
        .parse()
        .map_err(|_| malformed("AUDIT_SEQ is not a number"))?;
    let hash = anchor_field(entry, "AUDIT_HASH")
        .and_then(Sha256::from_hex)
        .ok_or_else(|| malformed("AUDIT_HASH is not 64 lowercase hex digits"))?;
    let epoch = match anchor_field(entry, "AUDIT_EPOCH") {
        Some(epoch) => Some(
            epoch
                .parse()
                .map_err(|_| malformed("AUDIT_EPOCH is not a number"))?,
        ),
        None => None,
    };
    let logged_at = text_field(entry, "__REALTIME_TIMESTAMP")
        .and_then(|micros| micros.parse::<i128>().ok())
        .and_then(|micros| OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).ok());
    Ok(Some(Anchor {
        seq,
        hash,
        epoch,
        logged_at,
    }))
}

/// What the anchors say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Anchoring {
    /// No journal export was given.
    NotChecked,
    Checked {
        unit: String,
        anchors: u64,
        first: Option<Anchor>,
        last: Option<Anchor>,
    },
}

/// Checks the chain `links` (whole if `complete`) against the anchors.
pub(crate) fn check(
    links: &[Link],
    journal: &Anchors,
    complete: bool,
) -> (Anchoring, Vec<Finding>) {
    let anchors = &journal.anchors;
    let first = anchors.iter().min_by_key(|anchor| anchor.seq).copied();
    let last = anchors.iter().max_by_key(|anchor| anchor.seq).copied();
    let anchoring = Anchoring::Checked {
        unit: journal.unit.clone(),
        anchors: anchors.len() as u64,
        first,
        last,
    };
    let (Some(first), Some(last)) = (first, last) else {
        let problem = Problem::NoAnchors {
            unit: journal.unit.clone(),
        };
        return (anchoring, vec![Finding::about_log(None, problem)]);
    };
    let mut findings = Vec::new();
    let base = links.first().map_or(0, |link| link.seq);
    let link_at = |seq: u64| {
        seq.checked_sub(base)
            .and_then(|index| usize::try_from(index).ok())
            .and_then(|index| links.get(index))
    };
    let mut disagreeing: Vec<(&Link, &Anchor)> = anchors
        .iter()
        .filter_map(|anchor| {
            link_at(anchor.seq)
                .filter(|link| link.hash != anchor.hash)
                .map(|link| (link, anchor))
        })
        .collect();
    disagreeing.sort_by_key(|(link, _)| link.seq);
    if let Some((link, anchor)) = disagreeing.first() {
        findings.push(link.finding(Problem::AnchorMismatch {
            anchored_at: anchor.logged_at,
            anchors: disagreeing.len() as u64,
        }));
    }
    let last_seq = links.last().map(|link| link.seq);
    // A chain that disagrees with the journal was rewritten: where it ends says nothing more.
    if complete && disagreeing.is_empty() && last_seq.is_none_or(|end| last.seq > end) {
        let problem = Problem::TruncatedBeforeAnchor {
            anchor_seq: last.seq,
            anchored_at: last.logged_at,
            last_seq,
        };
        findings.push(Finding::about_log(
            Some(last_seq.map_or(0, |seq| seq + 1)),
            problem,
        ));
    }
    // A seal at a seq anchored with another hash is part of the disagreement above.
    let anchored: HashSet<u64> = anchors.iter().map(|anchor| anchor.seq).collect();
    let last_anchor_at = anchors.iter().filter_map(|a| a.logged_at).max();
    let unanchored: Vec<&Link> = links
        .iter()
        .filter(|link| link.seq >= first.seq && link.seal().is_some())
        .filter(|link| !anchored.contains(&link.seq))
        .collect();
    if let Some(link) = unanchored.first() {
        findings.push(link.finding(Problem::NotAnchored {
            seals: unanchored.len() as u64,
            last_anchor_at,
        }));
    }
    (anchoring, findings)
}

impl fmt::Display for Anchoring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotChecked => f.write_str(
                "NOT CHECKED: no journal export (--anchors, from `journalctl -u beid-agent -o json`)",
            ),
            Self::Checked {
                unit,
                anchors,
                first,
                last,
            } => {
                write!(f, "{anchors} anchor(s) of {unit} in the journal export")?;
                let at = |anchor: &Anchor| {
                    anchor
                        .logged_at
                        .map_or_else(|| "time unknown".to_owned(), when)
                };
                if let (Some(first), Some(last)) = (first, last) {
                    write!(
                        f,
                        ", from seq {} ({}) to seq {} ({})",
                        first.seq,
                        at(first),
                        last.seq,
                        at(last)
                    )?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_export_is_read_for_the_agents_unit_only() {
        let hash = Sha256::of(b"x");
        let export = format!(
            "{{\"_SYSTEMD_UNIT\":\"beid-agent.service\",\"AUDIT_SEQ\":\"4\",\"AUDIT_HASH\":\"{hash}\",\"AUDIT_EPOCH\":\"2\",\"__REALTIME_TIMESTAMP\":\"1740816000000000\"}}\n\
             {{\"_SYSTEMD_UNIT\":\"beid-agent.service\",\"F_AUDIT_SEQ\":\"5\",\"F_AUDIT_HASH\":\"{hash}\"}}\n\
             {{\"_SYSTEMD_UNIT\":\"user@1000.service\",\"AUDIT_SEQ\":\"9\",\"AUDIT_HASH\":\"{hash}\"}}\n\
             {{\"_SYSTEMD_UNIT\":\"beid-agent.service\",\"MESSAGE\":\"ready\"}}\n\
             {{\"UNIT\":\"beid-agent.service\",\"AUDIT_SEQ\":\"9\",\"AUDIT_HASH\":\"{hash}\"}}\n\
             {{\"_SYSTEMD_UNIT\":[\"beid-agent.service\",\"x\"],\"AUDIT_SEQ\":\"9\",\"AUDIT_HASH\":\"{hash}\"}}\n"
        );
        let anchors = Anchors::parse_journal_export(&export, "beid-agent").unwrap();
        assert_eq!(anchors.unit(), "beid-agent.service");
        let seqs: Vec<u64> = anchors.anchors().iter().map(|a| a.seq).collect();
        assert_eq!(seqs, [4, 5]);
        assert_eq!(anchors.anchors()[0].epoch, Some(2));
        assert_eq!(
            anchors.anchors()[0].logged_at,
            Some(time::macros::datetime!(2025-03-01 08:00 UTC))
        );
    }

    #[test]
    fn a_broken_export_or_a_malformed_anchor_is_an_error_with_its_line() {
        for (export, line) in [
            ("{}\nnot json\n", 2),
            ("{\"_SYSTEMD_UNIT\":\"beid-agent.service\",\"AUDIT_SEQ\":\"x\"}", 1),
            (
                "\n{\"_SYSTEMD_UNIT\":\"beid-agent.service\",\"AUDIT_SEQ\":\"1\",\"AUDIT_HASH\":\"AB\"}",
                2,
            ),
        ] {
            match Anchors::parse_journal_export(export, DEFAULT_UNIT) {
                Err(AuditError::JournalExport { line: at, .. }) => assert_eq!(at, line, "{export}"),
                other => panic!("{export}: {other:?}"),
            }
        }
    }
}
