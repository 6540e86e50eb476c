//! How the writer reads the log's end: on open, after a failed write, and when the file
//! changed under it. It finds the last record of the chain, checks it against the head file
//! and the sealing state, and seals what follows it: crash debris as `recovered_tail`, bytes
//! another process wrote as `foreign_bytes`. What no crash explains is refused and left as
//! it is (see the module documentation).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use time::OffsetDateTime;

use super::anchors::{log_anchor, AnchorReason};
use super::error::{io_error, AuditError, Inconsistency};
use super::head::HeadFile;
use super::record::{
    check_line, holds_seal, ChainHead, Checked, Event, RecoveredTail, SealReason, Sha256, MAX_LINE,
};
use super::seal_state::SealPoint;
use super::walk::{walk, Start};
use super::writer::{Paths, State, Tail, MAX_FOREIGN, MAX_RECOVERED};

impl State {
    /// Re-reads the end of the log: finds the last whole record, checks it against the head
    /// file, and completes or seals what a crash left after it. A log holding seals is
    /// refused unless the sealing state knows its last seal.
    pub(super) fn recover(&mut self, paths: &Paths, now: OffsetDateTime) -> Result<(), AuditError> {
        let len = self.file_len(paths)?;
        let scan = scan_tail(&self.file, len, &paths.log)?;
        let knows_a_seal = self.sealer.as_ref().and_then(|s| s.last()).is_some();
        if scan.holds_seal && !knows_a_seal {
            return Err(inconsistent(paths, Inconsistency::SealStateMissing));
        }
        let head = read_head(paths)?;
        check_head(head, scan.last).map_err(|problem| inconsistent(paths, problem))?;
        self.len = len;
        self.last = scan.last;
        self.head_on_disk = head;
        if let Some((offset, debris)) = scan.debris {
            self.settle_debris(paths, offset, &debris, now)?;
        }
        self.needs_recovery = false;
        Ok(())
    }

    /// On open of a sealed log: checks that the last seal the sealing state knows (`point`)
    /// is still where it ended, then walks what follows it. Seals found there (written before
    /// a crash kept the state from being saved) are taken over and the key caught up. After
    /// a stop seal, whatever follows is another process's doing: sealed as `foreign_bytes`.
    /// Otherwise what follows is the chain since the last seal, then crash debris.
    pub(super) fn recover_after_seal(
        &mut self,
        paths: &Paths,
        point: SealPoint,
        now: OffsetDateTime,
    ) -> Result<(), AuditError> {
        let len = self.file_len(paths)?;
        let missing = || inconsistent(paths, Inconsistency::SealMissing { seq: point.seq });
        if len < point.end {
            return Err(missing());
        }
        if len - point.end > MAX_FOREIGN as u64 {
            let problem = Inconsistency::DamagedTail {
                offset: point.end,
                length: len - point.end,
            };
            return Err(inconsistent(paths, problem));
        }
        let from = point.end.saturating_sub(MAX_LINE as u64);
        let bytes = read_range(&self.file, from, len, &paths.log)?;
        let split = usize::try_from(point.end - from).unwrap_or(0);
        let (before, after) = bytes.split_at(split.min(bytes.len()));
        let seal_prev = sealed_line(before, from == 0, point).ok_or_else(missing)?;
        let start = Start {
            seq: point.seq + 1,
            prev: point.hash,
            line: 0,
        };
        let walked = walk(after, point.end, start);
        let mut last = Tail {
            head: point.head(),
            prev: seal_prev,
        };
        log_anchor(point.head(), Some(point.epoch), AnchorReason::Open);
        let mut stop_end = (point.reason == SealReason::Stop).then_some(point.end);
        if stop_end.is_none() {
            for link in &walked.links {
                last = Tail {
                    head: ChainHead {
                        seq: link.seq,
                        hash: link.hash,
                    },
                    prev: link.prev,
                };
                if let (Some(seal), Some(sealer)) = (link.seal(), self.sealer.as_mut()) {
                    let reason = seal.seal.reason;
                    sealer.set_last(SealPoint {
                        seq: link.seq,
                        hash: link.hash,
                        end: link.end,
                        epoch: seal.seal.epoch,
                        reason,
                    });
                    if let Some(epoch) = sealer.epoch_after(reason, link.at) {
                        sealer.evolve_to(epoch);
                    }
                    log_anchor(last.head, Some(seal.seal.epoch), AnchorReason::Open);
                    if reason == SealReason::Stop {
                        stop_end = Some(link.end);
                        break;
                    }
                }
            }
        }
        self.last = Some(last);
        self.len = len;
        if let Some(end) = stop_end {
            // The head file may name what was appended: it is replaced after the seal.
            self.head_on_disk = None;
            self.needs_recovery = false;
            if len > end {
                self.len = end;
                self.seal_foreign(paths, end, len, now)?;
            }
            return Ok(());
        }
        let debris_from = point.end + walked.stopped_at as u64;
        let debris = after.get(walked.stopped_at..).unwrap_or_default();
        if holds_whole_record(debris) {
            // Not what a crash leaves: a line in the middle was damaged. Go on from the last
            // whole record, as for an unsealed log, and leave the damage for `verify`.
            return self.recover(paths, now);
        }
        if debris.len() > MAX_RECOVERED {
            let problem = Inconsistency::DamagedTail {
                offset: debris_from,
                length: debris.len() as u64,
            };
            return Err(inconsistent(paths, problem));
        }
        let head = read_head(paths)?;
        check_head(head, Some(last)).map_err(|problem| inconsistent(paths, problem))?;
        self.head_on_disk = head;
        if !debris.is_empty() {
            self.settle_debris(paths, debris_from, debris, now)?;
        }
        self.needs_recovery = false;
        Ok(())
    }

    /// Bytes after the last whole record. If they are the next record short of its newline,
    /// the newline is added; otherwise they stay where they are and a `recovered_tail` record
    /// names their offset, length and SHA-256 (after a newline ending them, if they lack one).
    fn settle_debris(
        &mut self,
        paths: &Paths,
        offset: u64,
        debris: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), AuditError> {
        if !debris.contains(&b'\n') {
            if let Checked::Record(record) = check_line(debris) {
                if record.seq == self.next_seq()? && record.prev == self.prev() {
                    tracing::warn!(
                        seq = record.seq,
                        "audit log: the last record lacked its newline; completed it"
                    );
                    self.write_synced(paths, b"\n")?;
                    self.last = Some(Tail {
                        head: record.head(),
                        prev: record.prev,
                    });
                    return Ok(());
                }
            }
        }
        tracing::warn!(
            offset,
            length = debris.len(),
            "audit log: sealing bytes a crash left after the last whole record"
        );
        let event = Event::RecoveredTail(fragment(offset, debris));
        self.append(paths, &event, separator(debris), now)?;
        Ok(())
    }

    /// Bytes from `from` to `to` that another process wrote: they stay, and a
    /// `foreign_bytes` record names them. `self.len` must be `to`.
    pub(super) fn seal_foreign(
        &mut self,
        paths: &Paths,
        from: u64,
        to: u64,
        now: OffsetDateTime,
    ) -> Result<(), AuditError> {
        let length = to - from;
        if length > MAX_FOREIGN as u64 {
            let problem = Inconsistency::DamagedTail {
                offset: from,
                length,
            };
            return Err(inconsistent(paths, problem));
        }
        let bytes = read_range(&self.file, from, to, &paths.log)?;
        tracing::error!(
            offset = from,
            length,
            "audit log: another process wrote into the log; sealing those bytes as foreign_bytes"
        );
        self.len = to;
        let event = Event::ForeignBytes(fragment(from, &bytes));
        self.append(paths, &event, separator(&bytes), now)?;
        Ok(())
    }

    /// The error for a log that is shorter than what the agent wrote: cut under it.
    pub(super) fn shrunk(&self, paths: &Paths, len: u64) -> AuditError {
        let found = scan_tail(&self.file, len, &paths.log)
            .ok()
            .and_then(|scan| scan.last)
            .map(|tail| tail.head);
        tracing::error!(
            expected = self.len,
            found = len,
            "audit log: the file shrank under the agent; not writing on"
        );
        let problem = match self.last {
            Some(tail) => Inconsistency::Truncated {
                head: tail.head,
                last: found,
            },
            None => Inconsistency::DamagedTail {
                offset: len,
                length: 0,
            },
        };
        inconsistent(paths, problem)
    }

    fn file_len(&self, paths: &Paths) -> Result<u64, AuditError> {
        Ok(self
            .file
            .metadata()
            .map_err(io_error("stat", &paths.log))?
            .len())
    }
}

fn inconsistent(paths: &Paths, problem: Inconsistency) -> AuditError {
    AuditError::Inconsistent {
        path: paths.log.clone(),
        problem,
    }
}

fn fragment(offset: u64, bytes: &[u8]) -> RecoveredTail {
    RecoveredTail {
        offset,
        length: bytes.len() as u64,
        sha256: Sha256::of(bytes),
    }
}

/// A newline to end sealed bytes that lack one, written with their seal.
fn separator(bytes: &[u8]) -> &'static [u8] {
    if bytes.ends_with(b"\n") {
        b""
    } else {
        b"\n"
    }
}

fn read_head(paths: &Paths) -> Result<Option<ChainHead>, AuditError> {
    match HeadFile::read(&paths.head)? {
        HeadFile::Absent => Ok(None),
        HeadFile::Present(head) => Ok(Some(head)),
        HeadFile::Malformed => Err(AuditError::HeadMalformed {
            path: paths.head.clone(),
        }),
    }
}

/// The head file must name the last record, or the one before it (a crash between the
/// record and the head); it may be missing only while the log has at most one record.
fn check_head(head: Option<ChainHead>, last: Option<Tail>) -> Result<(), Inconsistency> {
    let last_head = last.map(|tail| tail.head);
    match (head, last) {
        (None, None) => Ok(()),
        (None, Some(tail)) if tail.head.seq == 0 => Ok(()),
        (None, Some(tail)) => Err(Inconsistency::HeadMissing { last: tail.head }),
        (Some(head), _) if Some(head) == last_head => Ok(()),
        (Some(head), Some(tail))
            if head.seq.checked_add(1) == Some(tail.head.seq) && tail.prev == head.hash =>
        {
            Ok(())
        }
        (Some(head), _) if last_head.is_none_or(|last| head.seq > last.seq) => {
            Err(Inconsistency::Truncated {
                head,
                last: last_head,
            })
        }
        (Some(head), _) => Err(Inconsistency::HeadMismatch {
            head,
            last: last_head,
        }),
    }
}

/// The `prev` of the seal `point` names, if the line that ends where it says (the end of
/// `before`) is that seal. `at_start`: `before` starts at the file's first byte.
fn sealed_line(before: &[u8], at_start: bool, point: SealPoint) -> Option<Sha256> {
    let body = before.strip_suffix(b"\n")?;
    let line_start = match body.iter().rposition(|&b| b == b'\n') {
        Some(newline) => newline + 1,
        None if at_start => 0,
        None => return None,
    };
    match check_line(body.get(line_start..)?) {
        Checked::Record(record)
            if record.head() == point.head() && matches!(record.event, Event::Seal(_)) =>
        {
            Some(record.prev)
        }
        _ => None,
    }
}

/// Whether a whole line of `bytes` (one a newline ends) is a record on its own.
fn holds_whole_record(bytes: &[u8]) -> bool {
    let whole = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(last_newline) => &bytes[..last_newline],
        None => return false,
    };
    whole
        .split(|&b| b == b'\n')
        .any(|line| matches!(check_line(line), Checked::Record(_)))
}

fn read_range(file: &File, from: u64, to: u64, path: &Path) -> Result<Vec<u8>, AuditError> {
    let mut buf = vec![0; usize::try_from(to - from).unwrap_or(0)];
    file.read_exact_at(&mut buf, from)
        .map_err(io_error("read", path))?;
    Ok(buf)
}

struct TailScan {
    last: Option<Tail>,
    /// Offset and bytes after the last whole record, if any.
    debris: Option<(u64, Vec<u8>)>,
    /// A whole seal record is among the lines read.
    holds_seal: bool,
}

/// Finds the last line that is a record on its own (its hash right) in the last
/// `MAX_RECOVERED + MAX_LINE` bytes, and what follows it.
fn scan_tail(file: &File, len: u64, path: &Path) -> Result<TailScan, AuditError> {
    let window = len.min((MAX_RECOVERED + MAX_LINE + 1) as u64);
    let start = len - window;
    let buf = read_range(file, start, len, path)?;
    let damaged = |from: usize| AuditError::Inconsistent {
        path: path.to_path_buf(),
        problem: Inconsistency::DamagedTail {
            offset: start + from as u64,
            length: (buf.len() - from) as u64,
        },
    };
    // A line is whole if a newline ends it and it starts after a newline or at offset 0.
    let mut end = buf.len();
    let (last, debris_from) = loop {
        let Some(newline) = buf
            .get(..end)
            .and_then(|b| b.iter().rposition(|&c| c == b'\n'))
        else {
            if start == 0 {
                break (None, 0);
            }
            return Err(damaged(0));
        };
        let line_start = match buf
            .get(..newline)
            .and_then(|b| b.iter().rposition(|&c| c == b'\n'))
        {
            Some(before) => before + 1,
            None if start == 0 => 0,
            None => return Err(damaged(newline + 1)),
        };
        if let Some(Checked::Record(record)) = buf.get(line_start..newline).map(check_line) {
            let tail = Tail {
                head: record.head(),
                prev: record.prev,
            };
            break (Some(tail), newline + 1);
        }
        end = line_start;
    };
    let debris = buf.get(debris_from..).unwrap_or_default();
    if debris.len() > MAX_RECOVERED {
        return Err(damaged(debris_from));
    }
    Ok(TailScan {
        last,
        debris: (!debris.is_empty()).then(|| (start + debris_from as u64, debris.to_vec())),
        holds_seal: holds_seal(&buf),
    })
}
