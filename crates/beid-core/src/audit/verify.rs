//! `verify`: walks a log from its first byte (see [`super::walk`]), compares its end with the
//! head file, then judges what the chain holds: its seals (with the verification key, if
//! given; see [`super::verify_seals`]) and the journal's anchors (if given; see
//! [`super::anchors`]). It says plainly what it could not check.

use std::fmt;
use std::fs;
use std::path::Path;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::anchors::{self, Anchoring, Anchors};
use super::error::{io_error, AuditError};
use super::head::{head_path, HeadFile};
use super::record::{ChainHead, GENESIS};
use super::sealing::{KeyId, VerificationKey};
use super::verify_seals::{self, Pending, Sealing};
use super::walk::{walk, Link, LinkKind, Start};

/// What `verify` found. The chain is sound up to `records` records; `problem` is where it
/// breaks, if it does; `findings` is everything else wrong (seals, anchors, foreign bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub verdict: Verdict,
    /// Whole records checked and chained (`recovered_tail` and `seal` records included).
    pub records: u64,
    /// The last record that checked.
    pub last: Option<ChainHead>,
    /// How the head file compares with the last record (when no problem came first).
    pub head: HeadStatus,
    /// Crash debris sealed by a `recovered_tail` record.
    pub recovered: Vec<Fragment>,
    /// Bytes after the last whole record with no newline and no seal yet: what a crash leaves
    /// until the agent starts again. Not a problem on its own.
    pub partial_tail: Option<Fragment>,
    /// Where the chain breaks: the first line that does not extend it, or the head file.
    pub problem: Option<Finding>,
    /// What the seals say, or why they were not checked.
    pub sealing: Sealing,
    /// Records after the last seal: not sealed yet.
    pub unsealed: Option<Pending>,
    /// What the journal's anchors say, or that they were not checked.
    pub anchoring: Anchoring,
    /// Everything wrong besides `problem`, in the order of the log.
    pub findings: Vec<Finding>,
}

/// The one-word outcome, e.g. for an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Intact,
    /// Intact up to the last whole record; a crash left a partial line after it.
    IntactUpToPartialTail,
    Broken,
}

impl VerifyReport {
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// No problem and no finding (a partial last line from a crash is not one).
    pub fn is_intact(&self) -> bool {
        self.verdict != Verdict::Broken
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadStatus {
    /// The head names the last record.
    Matches,
    /// The head names the record before the last (a crash between an append and the head
    /// update; also a first record whose head file was never written).
    LagsByOne,
    /// Empty log and no head file.
    NotNeeded,
    /// A problem in the log came first.
    NotChecked,
}

/// A byte range of the log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Fragment {
    pub offset: u64,
    pub length: u64,
}

/// One thing wrong: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The first bad (or missing) `seq`, when one can be named.
    pub seq: Option<u64>,
    /// 1-based line and byte offset in the log; absent for head-file problems.
    pub line: Option<u64>,
    pub offset: Option<u64>,
    pub problem: Problem,
}

impl Finding {
    /// A finding about the log as a whole, not one of its lines.
    pub(crate) fn about_log(seq: Option<u64>, problem: Problem) -> Self {
        Self {
            seq,
            line: None,
            offset: None,
            problem,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Problem {
    /// The line's bytes do not hash to its `hash`: the record was edited.
    Edited,
    /// The record hashes right but its `prev` is not the hash of the record before: that
    /// record (`seq`) was edited and its hash recomputed, or replaced.
    Rehashed,
    /// The record's `seq` jumps ahead: `missing` records before it were deleted.
    Deleted { missing: u64 },
    /// The record's `seq` comes out of order (`found`): records were moved or duplicated.
    Reordered { found: u64 },
    /// A line that is not a record of this format.
    Malformed { reason: String },
    /// The head file names a record after the log's last: records were cut from the end.
    Truncated {
        head_seq: u64,
        last_seq: Option<u64>,
    },
    /// The log has records beyond the first but no head file.
    HeadMissing,
    /// The head file is not `{"seq":N,"hash":"<hex>"}`.
    HeadMalformed,
    /// The head file names a record of this log, but more than one record before the end.
    HeadStale { head_seq: u64, last_seq: u64 },
    /// The head file names a record this log does not have (another log, or rewritten).
    HeadMismatch { head_seq: u64 },
    /// Another process wrote these bytes into the log (the agent sealed them with a
    /// `foreign_bytes` record at `seq`).
    ForeignBytes { offset: u64, length: u64 },
    /// A record follows the agent's stop seal (`stop_seq`) with no start seal between:
    /// written while the agent was not running.
    AfterStop { stop_seq: u64 },
    /// A verification key was given but the log holds no seal.
    NotSealed,
    /// The seals are made under another key than the one given.
    KeyMismatch { log_key: KeyId, given_key: KeyId },
    /// `seals` seals from `seq` on do not verify: the records since `since_seq` were changed
    /// after they were sealed (hashes recomputed), or the seals were forged.
    SealInvalid { since_seq: u64, seals: u64 },
    /// The seal is of epoch `found` where the key had reached `expected`: seals were removed
    /// (and the records with them), or this seal was made with a later key.
    SealEpoch { expected: u64, found: u64 },
    /// The seal is dated before its epoch began (or, for an `epoch` seal, before its epoch
    /// ended).
    SealMisdated { epoch: u64 },
    /// `records` records from `seq` on are dated in epoch `dated` but sealed with the key of
    /// epoch `sealed`: sealed late, after their own key was erased.
    SealedLate {
        records: u64,
        dated: u64,
        sealed: u64,
    },
    /// Records are dated after the epoch of the key that seals them.
    DatedAfterSeal {
        records: u64,
        dated: u64,
        sealed: u64,
    },
    /// No seal since `since` (the last seal, `seq`), though one was due by `due`: the
    /// agent stopped without sealing (crash, power cut, killed) and has not started again,
    /// or the log was cut after the last seal.
    Unsealed {
        #[serde(with = "time::serde::rfc3339")]
        since: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        due: OffsetDateTime,
    },
    /// The journal anchored this `seq` with another hash (`anchors` anchors disagree from
    /// here): the records up to it were rewritten.
    AnchorMismatch {
        #[serde(with = "time::serde::rfc3339::option")]
        anchored_at: Option<OffsetDateTime>,
        anchors: u64,
    },
    /// The journal anchored `anchor_seq`, after the log's last record: the log was cut.
    TruncatedBeforeAnchor {
        anchor_seq: u64,
        #[serde(with = "time::serde::rfc3339::option")]
        anchored_at: Option<OffsetDateTime>,
        last_seq: Option<u64>,
    },
    /// `seals` seals from this one on that the journal has no anchor of (at their seq),
    /// though it anchored seals before them.
    NotAnchored {
        seals: u64,
        #[serde(with = "time::serde::rfc3339::option")]
        last_anchor_at: Option<OffsetDateTime>,
    },
    /// The journal export holds no anchor of the unit.
    NoAnchors { unit: String },
}

/// What `verify` is given besides the log: the verification key, the journal's anchors, and
/// the time to judge "a seal is overdue" against.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub key: Option<VerificationKey>,
    pub anchors: Option<Anchors>,
    /// Usually now; the time the log was copied when verifying an older copy.
    pub as_of: OffsetDateTime,
}

impl VerifyOptions {
    /// No key, no anchors, judged as of now.
    pub fn now() -> Self {
        Self {
            key: None,
            anchors: None,
            as_of: OffsetDateTime::now_utc(),
        }
    }
}

/// Verifies the log at `path` against its head file (`<path>.head`), with no key and no
/// anchors. `Err` only when a file cannot be read; anything wrong inside them is in the
/// report.
pub fn verify(path: impl AsRef<Path>) -> Result<VerifyReport, AuditError> {
    verify_with(path, &VerifyOptions::now())
}

/// [`verify`] with a verification key and anchors. Reads the whole log into memory (100 000
/// records are about 40 MB).
pub fn verify_with(
    path: impl AsRef<Path>,
    options: &VerifyOptions,
) -> Result<VerifyReport, AuditError> {
    let path = path.as_ref();
    let log = fs::read(path).map_err(io_error("read", path))?;
    let head = HeadFile::read(&head_path(path))?;
    Ok(verify_bytes(&log, head, options))
}

/// [`verify`] over bytes: the log and the head file's content (`None`: no head file).
pub fn verify_bytes_with_head(log: &[u8], head: Option<&[u8]>) -> VerifyReport {
    let head = head.map_or(HeadFile::Absent, HeadFile::parse);
    verify_bytes(log, head, &VerifyOptions::now())
}

pub(crate) fn verify_bytes(data: &[u8], head: HeadFile, options: &VerifyOptions) -> VerifyReport {
    let start = Start {
        seq: 0,
        prev: GENESIS,
        line: 1,
    };
    let walked = walk(data, 0, start);
    let mut problem = walked.problem;
    // Whether the walk went through the whole log: a head file problem does not stop the
    // seals and anchors from judging the chain's end.
    let complete = problem.is_none();
    let head_status = if problem.is_some() {
        HeadStatus::NotChecked
    } else {
        match check_head(&walked.links, head) {
            Ok(status) => status,
            Err(finding) => {
                problem = Some(finding);
                HeadStatus::NotChecked
            }
        }
    };
    let links = &walked.links;
    let seals = verify_seals::check(links, options.key.as_ref(), options.as_of, complete);
    let (anchoring, anchor_findings) = match &options.anchors {
        Some(journal) => anchors::check(links, journal, complete),
        None => (Anchoring::NotChecked, Vec::new()),
    };
    let mut findings = seals.findings;
    findings.extend(anchor_findings);
    findings.sort_by_key(|finding| finding.offset.unwrap_or(u64::MAX));
    let verdict = match (&problem, findings.is_empty(), &walked.partial_tail) {
        (Some(_), _, _) | (None, false, _) => Verdict::Broken,
        (None, true, Some(_)) => Verdict::IntactUpToPartialTail,
        (None, true, None) => Verdict::Intact,
    };
    VerifyReport {
        verdict,
        records: links.len() as u64,
        last: links.last().map(|link| ChainHead {
            seq: link.seq,
            hash: link.hash,
        }),
        head: head_status,
        recovered: links
            .iter()
            .filter_map(|link| match link.kind {
                LinkKind::Recovered(fragment) => Some(fragment),
                _ => None,
            })
            .collect(),
        partial_tail: walked.partial_tail,
        problem,
        sealing: seals.sealing,
        unsealed: seals.pending,
        anchoring,
        findings,
    }
}

/// The head file against the chain's end: the last record, or the one before it (a crash
/// between the append and the head's replacement).
fn check_head(links: &[Link], head: HeadFile) -> Result<HeadStatus, Finding> {
    let last = links.last();
    let head = match head {
        HeadFile::Malformed => return Err(Finding::about_log(None, Problem::HeadMalformed)),
        HeadFile::Absent => {
            return match last {
                None => Ok(HeadStatus::NotNeeded),
                Some(last) if last.seq == 0 => Ok(HeadStatus::LagsByOne),
                Some(_) => Err(Finding::about_log(None, Problem::HeadMissing)),
            }
        }
        HeadFile::Present(head) => head,
    };
    let Some(last) = last.filter(|last| last.seq >= head.seq) else {
        let last_seq = last.map(|last| last.seq);
        let first_missing = last_seq.map_or(0, |seq| seq.saturating_add(1));
        let problem = Problem::Truncated {
            head_seq: head.seq,
            last_seq,
        };
        return Err(Finding::about_log(Some(first_missing), problem));
    };
    let mismatch = || {
        let problem = Problem::HeadMismatch { head_seq: head.seq };
        Err(Finding::about_log(Some(head.seq), problem))
    };
    let named = links
        .iter()
        .rev()
        .find(|link| link.seq == head.seq)
        .map(|link| link.hash);
    if named != Some(head.hash) {
        return mismatch();
    }
    if last.seq == head.seq {
        return Ok(HeadStatus::Matches);
    }
    if last.seq - head.seq == 1 && last.prev == head.hash {
        return Ok(HeadStatus::LagsByOne);
    }
    let problem = Problem::HeadStale {
        head_seq: head.seq,
        last_seq: last.seq,
    };
    Err(Finding::about_log(None, problem))
}

/// RFC 3339, for messages.
pub(crate) fn when(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

fn when_opt(at: &Option<OffsetDateTime>) -> String {
    at.map_or_else(|| "an unknown time".to_owned(), when)
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Edited => f.write_str("edited: the record's bytes do not match its hash"),
            Self::Rehashed => {
                f.write_str("edited and re-hashed: the next record does not link to this one")
            }
            Self::Deleted { missing } => write!(f, "deleted: {missing} record(s) missing"),
            Self::Reordered { found } => write!(f, "reordered: found seq {found} here"),
            Self::Malformed { reason } => write!(f, "not a record: {reason}"),
            Self::Truncated { head_seq, last_seq } => match last_seq {
                Some(last) => write!(
                    f,
                    "truncated: the head file names seq {head_seq}, the log ends at seq {last}"
                ),
                None => write!(
                    f,
                    "truncated: the head file names seq {head_seq}, the log has no record"
                ),
            },
            Self::HeadMissing => f.write_str("the head file is missing"),
            Self::HeadMalformed => f.write_str("the head file is malformed"),
            Self::HeadStale { head_seq, last_seq } => write!(
                f,
                "the head file names seq {head_seq} but the log goes on to seq {last_seq}"
            ),
            Self::HeadMismatch { head_seq } => {
                write!(f, "the head file's seq {head_seq} is not this log's record")
            }
            Self::ForeignBytes { offset, length } => write!(
                f,
                "another process wrote {length} byte(s) into the log at offset {offset} \
                 (the agent found them and sealed them as foreign_bytes)"
            ),
            Self::AfterStop { stop_seq } => write!(
                f,
                "written after the agent's stop seal (seq {stop_seq}) while it was not \
                 running: appended by someone else"
            ),
            Self::NotSealed => f.write_str(
                "the log holds no seal, though a verification key was given: sealing was \
                 never set up for it, or every seal was removed",
            ),
            Self::KeyMismatch { log_key, given_key } => write!(
                f,
                "sealed under key id {log_key}, not under the given key (id {given_key}): \
                 another counter's key, or the sealing state was replaced"
            ),
            Self::SealInvalid { since_seq, seals } => write!(
                f,
                "{seals} seal(s) from here on do not verify: a record from seq {since_seq} on \
                 was edited, inserted or deleted after sealing and the hashes recomputed, \
                 or the seal was forged"
            ),
            Self::SealEpoch { expected, found } if found > expected => write!(
                f,
                "seal of epoch {found} where epoch {expected} was due: the seals of epochs \
                 {expected} to {} were removed, with the records they sealed, or this seal \
                 was made later with a key the intruder read",
                found - 1
            ),
            Self::SealEpoch { expected, found } => write!(
                f,
                "seal of epoch {found} after the key had reached epoch {expected}: a seal \
                 replayed or moved"
            ),
            Self::SealMisdated { epoch } => {
                write!(f, "the seal is dated outside its epoch {epoch}: backdated")
            }
            Self::SealedLate {
                records,
                dated,
                sealed,
            } => write!(
                f,
                "{records} record(s) from here on are dated in epoch {dated} but sealed with \
                 the key of epoch {sealed}: sealed after their own key was erased, so \
                 rewritten or inserted later"
            ),
            Self::DatedAfterSeal {
                records,
                dated,
                sealed,
            } => write!(
                f,
                "{records} record(s) from here on are dated in epoch {dated}, after the epoch \
                 {sealed} of the key that seals them: misdated (a clock that jumped, or forged)"
            ),
            Self::Unsealed { since, due } => write!(
                f,
                "sealed only up to {}: a seal was due by {}; the agent stopped without \
                 sealing (crash, power cut, killed) and has not started since, or the log \
                 was truncated after this seal",
                when(*since),
                when(*due)
            ),
            Self::AnchorMismatch {
                anchored_at,
                anchors,
            } => write!(
                f,
                "the journal anchored this seq with another hash at {} ({anchors} anchor(s) \
                 disagree from here on): the records up to it were rewritten",
                when_opt(anchored_at)
            ),
            Self::TruncatedBeforeAnchor {
                anchor_seq,
                anchored_at,
                last_seq,
            } => write!(
                f,
                "truncated after seq {}: the journal anchored seq {anchor_seq} at {} (if the \
                 agent wrote it between your copy of the log and the journal export, copy \
                 and export again)",
                last_seq.map_or("(none)".to_owned(), |seq| seq.to_string()),
                when_opt(anchored_at)
            ),
            Self::NotAnchored {
                seals,
                last_anchor_at,
            } => write!(
                f,
                "{seals} seal(s) from here on that the journal never anchored (its last \
                 anchor is from {}): forged, or written after the journal export (export it \
                 again after copying the log)",
                when_opt(last_anchor_at)
            ),
            Self::NoAnchors { unit } => write!(
                f,
                "the journal export holds no anchor of {unit}: not checked against the journal"
            ),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "seq {seq}")?,
            None => f.write_str("log")?,
        }
        if let (Some(line), Some(offset)) = (self.line, self.offset) {
            write!(f, " (line {line}, offset {offset})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.verdict {
            Verdict::Intact => "intact",
            Verdict::IntactUpToPartialTail => "intact up to a partial last line (crash)",
            Verdict::Broken => "BROKEN",
        };
        writeln!(f, "{verdict}: {} record(s) chain", self.records)?;
        if let Some(last) = self.last {
            writeln!(f, "last record: seq {} hash {}", last.seq, last.hash)?;
        }
        for fragment in &self.recovered {
            writeln!(
                f,
                "sealed crash debris: {} byte(s) at offset {}",
                fragment.length, fragment.offset
            )?;
        }
        if let Some(tail) = self.partial_tail {
            writeln!(
                f,
                "partial last line: {} byte(s) at offset {}",
                tail.length, tail.offset
            )?;
        }
        writeln!(f, "seals: {}", self.sealing)?;
        if let Some(pending) = &self.unsealed {
            writeln!(f, "not sealed yet: {pending}")?;
        }
        writeln!(f, "anchors: {}", self.anchoring)?;
        if let Some(finding) = &self.problem {
            writeln!(f, "chain broken at {finding}")?;
        }
        if !self.findings.is_empty() {
            writeln!(f, "findings:")?;
            for finding in &self.findings {
                writeln!(f, "  - {finding}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::Sha256;

    /// Links 0..=last, each linked to the one before, except where `prev` says otherwise.
    fn chain(last: u64, prev: impl Fn(u64) -> Option<Sha256>) -> Vec<Link> {
        let hash = |seq: u64| Sha256::of(&seq.to_be_bytes());
        (0..=last)
            .map(|seq| Link {
                seq,
                hash: hash(seq),
                prev: prev(seq).unwrap_or_else(|| hash(seq.wrapping_sub(1))),
                at: OffsetDateTime::UNIX_EPOCH,
                line: seq + 1,
                offset: 0,
                end: 0,
                kind: LinkKind::Content,
            })
            .collect()
    }

    fn head_at(links: &[Link], seq: u64) -> HeadFile {
        HeadFile::Present(ChainHead {
            seq,
            hash: links[seq as usize].hash,
        })
    }

    /// The head may lag the log by exactly one record, and only when that record links to
    /// it: a crash between the append and the head's replacement leaves no other state.
    #[test]
    fn the_head_may_lag_by_one_linked_record_only() {
        let intact = chain(5, |_| None);
        assert_eq!(
            check_head(&intact, head_at(&intact, 5)),
            Ok(HeadStatus::Matches)
        );
        assert_eq!(
            check_head(&intact, head_at(&intact, 4)),
            Ok(HeadStatus::LagsByOne)
        );
        let stale = check_head(&intact, head_at(&intact, 3)).unwrap_err();
        assert_eq!(
            stale.problem,
            Problem::HeadStale {
                head_seq: 3,
                last_seq: 5
            }
        );
        // The last record names another predecessor than the one the head names.
        let relinked = chain(5, |seq| (seq == 5).then(|| Sha256::of(b"elsewhere")));
        assert!(check_head(&relinked, head_at(&relinked, 4)).is_err());
        // Two behind, with the last record forged to link to the head's.
        let forged = chain(5, |seq| (seq == 5).then(|| Sha256::of(&3u64.to_be_bytes())));
        assert!(check_head(&forged, head_at(&forged, 3)).is_err());
    }
}
