//! `verify`: walks a log from its first byte, checks every record's hash and its link to the
//! one before, accepts sealed crash debris, then compares the end with the head file.

use std::fmt;
use std::fs;
use std::path::Path;

use serde::Serialize;

use super::error::{io_error, AuditError};
use super::head::{head_path, HeadFile};
use super::record::{check_line, ChainHead, Checked, Event, Record, Sha256, GENESIS};
use super::writer::MAX_RECOVERED;

/// What `verify` found. The chain is sound up to `records` records; `problem` is the first
/// thing wrong after that, if anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Whole records checked and chained (`recovered_tail` records included).
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
    pub problem: Option<Finding>,
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
        match (&self.problem, &self.partial_tail) {
            (Some(_), _) => Verdict::Broken,
            (None, Some(_)) => Verdict::IntactUpToPartialTail,
            (None, None) => Verdict::Intact,
        }
    }

    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
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

/// The first problem: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The first bad (or missing) `seq`, when one can be named.
    pub seq: Option<u64>,
    /// 1-based line and byte offset in the log; absent for head-file problems.
    pub line: Option<u64>,
    pub offset: Option<u64>,
    pub problem: Problem,
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
}

/// Verifies the log at `path` against its head file (`<path>.head`). `Err` only when a file
/// cannot be read; anything wrong inside them is in the report. Reads the whole log into
/// memory (100 000 records are about 40 MB).
pub fn verify(path: impl AsRef<Path>) -> Result<VerifyReport, AuditError> {
    let path = path.as_ref();
    let log = fs::read(path).map_err(io_error("read", path))?;
    let head = HeadFile::read(&head_path(path))?;
    Ok(verify_bytes(&log, head))
}

/// [`verify`] over bytes: the log and the head file's content (`None`: no head file).
pub fn verify_bytes_with_head(log: &[u8], head: Option<&[u8]>) -> VerifyReport {
    verify_bytes(log, head.map_or(HeadFile::Absent, HeadFile::parse))
}

pub(crate) fn verify_bytes(data: &[u8], head: HeadFile) -> VerifyReport {
    let mut walk = Walk {
        data,
        pos: 0,
        line: 1,
        expected: 0,
        prev: GENESIS,
        last_prev: GENESIS,
        last: None,
        records: 0,
        recovered: Vec::new(),
        head_seq: match head {
            HeadFile::Present(head) => Some(head.seq),
            _ => None,
        },
        hash_at_head_seq: None,
    };
    let mut partial_tail = None;
    let mut problem = None;
    while walk.pos < data.len() {
        let Some(newline) = find_newline(data, walk.pos) else {
            let length = data.len() - walk.pos;
            if length > MAX_RECOVERED {
                let reason = "more bytes after the last line than a crash leaves".to_owned();
                problem = Some(walk.here(walk.expected, Problem::Malformed { reason }));
            } else {
                partial_tail = Some(Fragment {
                    offset: walk.pos as u64,
                    length: length as u64,
                });
            }
            break;
        };
        let checked = data
            .get(walk.pos..newline)
            .map_or(Checked::Malformed("unreadable"), check_line);
        if let Checked::Record(record) = &checked {
            let extends = record.seq == walk.expected
                && record.prev == walk.prev
                && !matches!(record.event, Event::RecoveredTail(_));
            if extends {
                walk.accept(record, newline);
                continue;
            }
        }
        if let Some((seal, seal_end)) = walk.find_seal() {
            walk.recovered.push(Fragment {
                offset: walk.pos as u64,
                length: seal.1,
            });
            walk.accept(&seal.0, seal_end);
            continue;
        }
        problem = Some(walk.classify(checked, newline));
        break;
    }
    let head_status = if problem.is_some() {
        HeadStatus::NotChecked
    } else {
        match walk.check_head(head) {
            Ok(status) => status,
            Err(finding) => {
                problem = Some(finding);
                HeadStatus::NotChecked
            }
        }
    };
    VerifyReport {
        records: walk.records,
        last: walk.last,
        head: head_status,
        recovered: walk.recovered,
        partial_tail,
        problem,
    }
}

fn find_newline(data: &[u8], from: usize) -> Option<usize> {
    data.get(from..)?
        .iter()
        .position(|&byte| byte == b'\n')
        .map(|at| from + at)
}

struct Walk<'a> {
    data: &'a [u8],
    /// Start of the current line.
    pos: usize,
    /// 1-based number of the current line.
    line: u64,
    expected: u64,
    /// Hash of the last record accepted (the `prev` the next one must carry).
    prev: Sha256,
    /// `prev` of the last record accepted.
    last_prev: Sha256,
    last: Option<ChainHead>,
    records: u64,
    recovered: Vec<Fragment>,
    head_seq: Option<u64>,
    hash_at_head_seq: Option<Sha256>,
}

impl Walk<'_> {
    /// Takes `record` (ending at the newline `newline`) into the chain.
    fn accept(&mut self, record: &Record, newline: usize) {
        if Some(record.seq) == self.head_seq {
            self.hash_at_head_seq = Some(record.hash);
        }
        self.records += 1;
        self.last_prev = record.prev;
        self.prev = record.hash;
        self.last = Some(record.head());
        self.expected = record.seq.saturating_add(1);
        let lines = self
            .data
            .get(self.pos..=newline)
            .map_or(1, |bytes| bytes.iter().filter(|&&b| b == b'\n').count());
        self.line += lines as u64;
        self.pos = newline + 1;
    }

    /// A `recovered_tail` record that seals the bytes from `pos`: it must name `pos` as its
    /// offset, continue the chain, start right after the sealed bytes (and a newline the
    /// agent added if they lacked one), and carry their SHA-256. Returns it with the sealed
    /// length and the offset of its own newline.
    fn find_seal(&self) -> Option<((Record, u64), usize)> {
        let limit = self.pos.saturating_add(MAX_RECOVERED + 1);
        let mut start = find_newline(self.data, self.pos)? + 1;
        while start <= limit {
            let newline = find_newline(self.data, start)?;
            if let Some(Checked::Record(record)) = self.data.get(start..newline).map(check_line) {
                if let Event::RecoveredTail(seal) = record.event {
                    if seal.offset == self.pos as u64 {
                        let sealed = self.seals(&record, seal.length, seal.sha256, start);
                        return sealed.then_some(((*record, seal.length), newline));
                    }
                }
            }
            start = newline + 1;
        }
        None
    }

    fn seals(&self, record: &Record, length: u64, sha256: Sha256, line_start: usize) -> bool {
        let Some(end) = usize::try_from(length)
            .ok()
            .and_then(|length| self.pos.checked_add(length))
        else {
            return false;
        };
        let Some(bytes) = self.data.get(self.pos..end).filter(|b| !b.is_empty()) else {
            return false;
        };
        let placed = if bytes.ends_with(b"\n") {
            line_start == end
        } else {
            line_start == end + 1 && self.data.get(end) == Some(&b'\n')
        };
        placed
            && record.seq == self.expected
            && record.prev == self.prev
            && Sha256::of(bytes) == sha256
    }

    fn here(&self, seq: u64, problem: Problem) -> Finding {
        Finding {
            seq: Some(seq),
            line: Some(self.line),
            offset: Some(self.pos as u64),
            problem,
        }
    }

    fn classify(&self, checked: Checked, newline: usize) -> Finding {
        let here = |seq, problem| self.here(seq, problem);
        let record = match checked {
            Checked::Edited => return here(self.expected, Problem::Edited),
            Checked::Malformed(reason) => {
                let reason = reason.to_owned();
                return here(self.expected, Problem::Malformed { reason });
            }
            Checked::Record(record) => record,
        };
        if record.seq == self.expected {
            if record.prev == self.prev {
                let reason = "recovered_tail with no damaged bytes before it".to_owned();
                return here(self.expected, Problem::Malformed { reason });
            }
            return here(self.expected.saturating_sub(1), Problem::Rehashed);
        }
        if record.seq < self.expected {
            return here(self.expected, Problem::Reordered { found: record.seq });
        }
        let next_seq = find_newline(self.data, newline + 1)
            .and_then(|end| self.data.get(newline + 1..end))
            .and_then(|line| match check_line(line) {
                Checked::Record(next) => Some(next.seq),
                _ => None,
            });
        match next_seq {
            Some(next) if next < record.seq => {
                here(self.expected, Problem::Reordered { found: record.seq })
            }
            _ => here(
                self.expected,
                Problem::Deleted {
                    missing: record.seq - self.expected,
                },
            ),
        }
    }

    fn check_head(&self, head: HeadFile) -> Result<HeadStatus, Finding> {
        let at_end = |seq, problem| Finding {
            seq,
            line: None,
            offset: None,
            problem,
        };
        let head = match head {
            HeadFile::Malformed => return Err(at_end(None, Problem::HeadMalformed)),
            HeadFile::Absent => {
                return match self.last {
                    None => Ok(HeadStatus::NotNeeded),
                    Some(last) if last.seq == 0 => Ok(HeadStatus::LagsByOne),
                    Some(_) => Err(at_end(None, Problem::HeadMissing)),
                }
            }
            HeadFile::Present(head) => head,
        };
        let Some(last) = self.last.filter(|last| last.seq >= head.seq) else {
            let last_seq = self.last.map(|last| last.seq);
            let first_missing = last_seq.map_or(0, |seq| seq.saturating_add(1));
            let problem = Problem::Truncated {
                head_seq: head.seq,
                last_seq,
            };
            return Err(at_end(Some(first_missing), problem));
        };
        let mismatch = || {
            let problem = Problem::HeadMismatch { head_seq: head.seq };
            Err(at_end(Some(head.seq), problem))
        };
        if last.seq == head.seq {
            return if last.hash == head.hash {
                Ok(HeadStatus::Matches)
            } else {
                mismatch()
            };
        }
        if self.hash_at_head_seq != Some(head.hash) {
            return mismatch();
        }
        if last.seq - head.seq == 1 && self.last_prev == head.hash {
            return Ok(HeadStatus::LagsByOne);
        }
        let problem = Problem::HeadStale {
            head_seq: head.seq,
            last_seq: last.seq,
        };
        Err(at_end(None, problem))
    }
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
        }
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.verdict() {
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
        if let Some(finding) = &self.problem {
            write!(f, "first problem")?;
            if let Some(seq) = finding.seq {
                write!(f, " at seq {seq}")?;
            }
            if let (Some(line), Some(offset)) = (finding.line, finding.offset) {
                write!(f, " (line {line}, offset {offset})")?;
            }
            writeln!(f, ": {}", finding.problem)?;
        }
        Ok(())
    }
}
