//! The chain walk: from a starting point, checks every line's hash and its link to the one
//! before, steps over bytes sealed by a `recovered_tail` or `foreign_bytes` record, and
//! stops at the first line that does not extend the chain. `verify` walks a whole log; the
//! writer walks what follows the last seal when it opens a sealed log.

use time::OffsetDateTime;

use super::record::{check_line, Checked, Event, Record, Seal, Sha256};
use super::verify::{Finding, Fragment, Problem};
use super::writer::{MAX_FOREIGN, MAX_RECOVERED};

/// One record of the chain, as the walk accepted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) seq: u64,
    pub(crate) hash: Sha256,
    pub(crate) prev: Sha256,
    pub(crate) at: OffsetDateTime,
    /// 1-based line number and byte offset of the record in the log file.
    pub(crate) line: u64,
    pub(crate) offset: u64,
    /// Byte offset just after the record's newline.
    pub(crate) end: u64,
    pub(crate) kind: LinkKind,
}

impl Link {
    pub(crate) fn finding(&self, problem: Problem) -> Finding {
        Finding {
            seq: Some(self.seq),
            line: Some(self.line),
            offset: Some(self.offset),
            problem,
        }
    }

    pub(crate) fn seal(&self) -> Option<&SealLink> {
        match &self.kind {
            LinkKind::Seal(seal) => Some(seal),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkKind {
    /// A record callers write (`agent_started`, `advice`, ...).
    Content,
    Seal(SealLink),
    /// A `recovered_tail` record and the crash debris before it.
    Recovered(Fragment),
    /// A `foreign_bytes` record and the bytes before it.
    Foreign(Fragment),
}

/// A seal record, with its `at` exactly as written (its MAC covers that text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SealLink {
    pub(crate) seal: Seal,
    pub(crate) at_text: String,
}

/// Where a walk starts: the first `seq` it expects, the `prev` that record must carry, and
/// the line number of the first line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Start {
    pub(crate) seq: u64,
    pub(crate) prev: Sha256,
    pub(crate) line: u64,
}

/// What a walk found.
#[derive(Debug)]
pub(crate) struct Walked {
    pub(crate) links: Vec<Link>,
    /// Bytes after the last whole record, with no newline and no seal yet.
    pub(crate) partial_tail: Option<Fragment>,
    /// The first line that does not extend the chain.
    pub(crate) problem: Option<Finding>,
    /// Offset (in the walked bytes) of the first byte not taken into the chain.
    pub(crate) stopped_at: usize,
}

/// Walks `data`, the log's bytes from file offset `base` on, from `start`.
pub(crate) fn walk(data: &[u8], base: u64, start: Start) -> Walked {
    let mut walk = Walk {
        data,
        base,
        pos: 0,
        line: start.line,
        expected: start.seq,
        prev: start.prev,
        links: Vec::new(),
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
                partial_tail = Some(walk.fragment(length as u64));
            }
            break;
        };
        let checked = data
            .get(walk.pos..newline)
            .map_or(Checked::Malformed("unreadable"), check_line);
        if let Checked::Record(record) = &checked {
            let extends = record.seq == walk.expected
                && record.prev == walk.prev
                && !matches!(
                    record.event,
                    Event::RecoveredTail(_) | Event::ForeignBytes(_)
                );
            if extends {
                let kind = match &record.event {
                    Event::Seal(seal) => LinkKind::Seal(SealLink {
                        seal: seal.clone(),
                        at_text: at_text(data.get(walk.pos..newline).unwrap_or_default()),
                    }),
                    _ => LinkKind::Content,
                };
                walk.accept(record, kind, newline);
                continue;
            }
        }
        if let Some((record, kind, seal_end)) = walk.find_seal() {
            walk.accept(&record, kind, seal_end);
            continue;
        }
        if let Checked::Record(record) = &checked {
            if walk.rewind_for(record) {
                continue;
            }
        }
        problem = Some(walk.classify(checked, newline));
        break;
    }
    Walked {
        links: walk.links,
        partial_tail,
        problem,
        stopped_at: walk.pos,
    }
}

/// The `at` field of a line exactly as written (a record's `at` is a plain RFC 3339 string,
/// with nothing to unescape).
fn at_text(line: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct At {
        at: String,
    }
    serde_json::from_slice::<At>(line)
        .map(|at| at.at)
        .unwrap_or_default()
}

pub(crate) fn find_newline(data: &[u8], from: usize) -> Option<usize> {
    data.get(from..)?
        .iter()
        .position(|&byte| byte == b'\n')
        .map(|at| from + at)
}

struct Walk<'a> {
    data: &'a [u8],
    /// File offset of `data[0]`.
    base: u64,
    /// Start of the current line (in `data`).
    pos: usize,
    /// 1-based number of the current line.
    line: u64,
    expected: u64,
    /// Hash of the last record accepted (the `prev` the next one must carry).
    prev: Sha256,
    links: Vec<Link>,
}

impl Walk<'_> {
    fn offset(&self, pos: usize) -> u64 {
        self.base + pos as u64
    }

    fn fragment(&self, length: u64) -> Fragment {
        Fragment {
            offset: self.offset(self.pos),
            length,
        }
    }

    /// Takes `record` (ending at the newline `newline`, starting at `pos` or, for a seal of
    /// damaged bytes, after them) into the chain.
    fn accept(&mut self, record: &Record, kind: LinkKind, newline: usize) {
        let record_start = self
            .data
            .get(self.pos..newline)
            .and_then(|bytes| bytes.iter().rposition(|&b| b == b'\n'))
            .map_or(self.pos, |at| self.pos + at + 1);
        let lines = self
            .data
            .get(self.pos..=newline)
            .map_or(1, |bytes| bytes.iter().filter(|&&b| b == b'\n').count())
            as u64;
        self.links.push(Link {
            seq: record.seq,
            hash: record.hash,
            prev: record.prev,
            at: record.at,
            line: self.line + lines - 1,
            offset: self.offset(record_start),
            end: self.offset(newline + 1),
            kind,
        });
        self.prev = record.hash;
        self.expected = record.seq.saturating_add(1);
        self.line += lines;
        self.pos = newline + 1;
    }

    /// `record` seals bytes that start at a record the walk already took into the chain
    /// (someone appended well-formed records, and the agent, which had not written them,
    /// sealed them as foreign bytes): the walk goes back to that record and takes the bytes
    /// from there as sealed instead. Returns whether it did; if the seal does not hold, the
    /// walk is left as it was.
    fn rewind_for(&mut self, record: &Record) -> bool {
        let (Event::RecoveredTail(sealed) | Event::ForeignBytes(sealed)) = &record.event else {
            return false;
        };
        let Ok(from) = self
            .links
            .binary_search_by_key(&sealed.offset, |link| link.offset)
        else {
            return false;
        };
        let saved = (self.pos, self.line, self.expected, self.prev);
        let dropped = self.links.split_off(from);
        if let Some(first) = dropped.first() {
            self.pos = usize::try_from(first.offset - self.base).unwrap_or(usize::MAX);
            self.line = first.line;
            self.expected = first.seq;
            self.prev = first.prev;
        }
        if let Some((seal, kind, seal_end)) = self.find_seal() {
            self.accept(&seal, kind, seal_end);
            return true;
        }
        (self.pos, self.line, self.expected, self.prev) = saved;
        self.links.extend(dropped);
        false
    }

    /// A `recovered_tail` or `foreign_bytes` record that seals the bytes from `pos`: it must
    /// name `pos` as its offset, continue the chain, start right after the sealed bytes (and
    /// a newline the agent added if they lacked one), and carry their SHA-256. Crash debris
    /// (`recovered_tail`) is at most [`MAX_RECOVERED`] bytes, foreign bytes at most
    /// [`MAX_FOREIGN`]. Returns the record, its kind and the offset of its own newline.
    fn find_seal(&self) -> Option<(Record, LinkKind, usize)> {
        let limit = self.pos.saturating_add(MAX_FOREIGN + 1);
        let mut start = find_newline(self.data, self.pos)? + 1;
        while start <= limit {
            let newline = find_newline(self.data, start)?;
            if let Some(Checked::Record(record)) = self.data.get(start..newline).map(check_line) {
                let (sealed, max) = match &record.event {
                    Event::RecoveredTail(sealed) => (sealed, MAX_RECOVERED),
                    Event::ForeignBytes(sealed) => (sealed, MAX_FOREIGN),
                    _ => {
                        start = newline + 1;
                        continue;
                    }
                };
                if sealed.offset == self.offset(self.pos) {
                    let fragment = self.fragment(sealed.length);
                    let kind = match record.event {
                        Event::ForeignBytes(_) => LinkKind::Foreign(fragment),
                        _ => LinkKind::Recovered(fragment),
                    };
                    let ok = sealed.length <= max as u64
                        && self.seals(&record, sealed.length, sealed.sha256, start);
                    return ok.then_some((*record, kind, newline));
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
            offset: Some(self.offset(self.pos)),
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
                let reason = "a seal of damaged bytes with no damaged bytes before it".to_owned();
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
}
