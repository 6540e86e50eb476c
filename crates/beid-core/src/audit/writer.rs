//! The writer: [`AuditLog`].

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::error::{io_error, AuditError, Inconsistency};
use super::head::{self, head_path, head_tmp_path, HeadFile};
use super::record::{
    check_line, encode, AdviceAsked, AdviceRecord, AgentStarted, ApiRequest, CardSession,
    ChainHead, Checked, Event, Pseudonym, RecoveredTail, Sha256, GENESIS, MAX_LINE,
};
use super::record::{CheckAnswered, CheckRecord, CheckRefused, GatewayStarted, OutcomeRecord};
use super::secret::{parent, Secret};

/// The most bytes after the last whole record that the log accepts as crash debris. A crash
/// leaves at most part of one line (and, after a second crash during recovery, part of a
/// second one): a few KiB. More than this is not a crash.
pub const MAX_RECOVERED: usize = 64 * 1024;

/// The audit log of this agent. `Send + Sync`: share it as `Arc<AuditLog>`.
///
/// Every append is blocking file I/O with three syncs (the record, the new head file, the
/// directory): a few hundred µs to a few ms on an SSD (see the module documentation). From
/// async code, call it inside `tokio::task::spawn_blocking`.
pub struct AuditLog {
    paths: Paths,
    secret: Secret,
    state: Mutex<State>,
}

struct Paths {
    log: PathBuf,
    head: PathBuf,
    head_tmp: PathBuf,
}

struct State {
    file: File,
    dir: File,
    /// The file length we expect: what we have written.
    len: u64,
    /// The last whole record of the chain.
    last: Option<Tail>,
    /// What the head file names (after our own writes).
    head_on_disk: Option<ChainHead>,
    /// A write or sync failed, or the lock was poisoned: re-read the tail before writing.
    needs_recovery: bool,
}

#[derive(Debug, Clone, Copy)]
struct Tail {
    head: ChainHead,
    prev: Sha256,
}

impl AuditLog {
    /// Opens (or creates) the log at `path` and the secret at `secret_path`.
    ///
    /// - The secret is created if missing: 32 random bytes, mode 0600. An existing secret must
    ///   be 32 bytes and not readable by group or others.
    /// - The log is created with mode 0600 and opened for appending.
    /// - The chain head is recovered from the last whole record, checked against the head
    ///   file, and bytes a crash left after it are sealed by a `recovered_tail` record (see the
    ///   module documentation). A log whose end no crash explains (truncated, head missing or
    ///   different) is refused with [`AuditError::Inconsistent`] and left untouched.
    ///
    /// Call [`AuditLog::agent_started`] next.
    pub fn open(path: impl AsRef<Path>, secret_path: impl AsRef<Path>) -> Result<Self, AuditError> {
        let log = path.as_ref().to_path_buf();
        let secret = Secret::load_or_create(secret_path.as_ref())?;
        let dir_path = parent(&log);
        let dir = File::open(dir_path).map_err(io_error("open the directory", dir_path))?;
        let (file, created) = open_append(&log)?;
        if created {
            dir.sync_all()
                .map_err(io_error("sync the directory", dir_path))?;
        }
        let paths = Paths {
            head: head_path(&log),
            head_tmp: head_tmp_path(&log),
            log,
        };
        let mut state = State {
            file,
            dir,
            len: 0,
            last: None,
            head_on_disk: None,
            needs_recovery: true,
        };
        state.ensure_ready(&paths)?;
        match state.last {
            Some(tail) => tracing::info!(
                log = %paths.log.display(),
                seq = tail.head.seq,
                hash = %tail.head.hash,
                "audit log opened"
            ),
            None => tracing::info!(log = %paths.log.display(), "audit log opened (empty)"),
        }
        Ok(Self {
            paths,
            secret,
            state: Mutex::new(state),
        })
    }

    /// `agent_started`.
    pub fn agent_started(&self, started: &AgentStarted) -> Result<ChainHead, AuditError> {
        self.append(&Event::AgentStarted(started.clone()))
    }

    /// `card_session`.
    pub fn card_session(&self, session: &CardSession) -> Result<ChainHead, AuditError> {
        self.append(&Event::CardSession(session.clone()))
    }

    /// `advice`. `national_number` is the 11 digits (`NationalNumber::expose()`); only its
    /// [`pseudonym`](Self::pseudonym) is written.
    pub fn advice(
        &self,
        asked: &AdviceAsked,
        national_number: &str,
    ) -> Result<ChainHead, AuditError> {
        let pseudonym = self.pseudonym(national_number);
        self.append(&Event::Advice(AdviceRecord::new(asked, pseudonym)))
    }

    /// `api_request`.
    pub fn api_request(&self, request: &ApiRequest) -> Result<ChainHead, AuditError> {
        self.append(&Event::ApiRequest(request.clone()))
    }

    /// `gateway_started` (beid-gateway).
    pub fn gateway_started(&self, started: &GatewayStarted) -> Result<ChainHead, AuditError> {
        self.append(&Event::GatewayStarted(started.clone()))
    }

    /// `check` (beid-gateway). `national_number` is the 11 digits; only its
    /// [`pseudonym`](Self::pseudonym) is written.
    pub fn check(
        &self,
        answered: &CheckAnswered,
        national_number: &str,
    ) -> Result<ChainHead, AuditError> {
        let pseudonym = self.pseudonym(national_number);
        self.append(&Event::Check(CheckRecord::new(answered, pseudonym)))
    }

    /// `check_refused` (beid-gateway).
    pub fn check_refused(&self, refused: &CheckRefused) -> Result<ChainHead, AuditError> {
        self.append(&Event::CheckRefused(refused.clone()))
    }

    /// `outcome` (beid-gateway).
    pub fn outcome(&self, outcome: &OutcomeRecord) -> Result<ChainHead, AuditError> {
        self.append(&Event::Outcome(outcome.clone()))
    }

    /// hex HMAC-SHA256(secret, `national_number`), as `advice` records carry it.
    pub fn pseudonym(&self, national_number: &str) -> Pseudonym {
        self.secret.pseudonym(national_number)
    }

    /// The last record of the chain, if any.
    pub fn head(&self) -> Option<ChainHead> {
        self.lock().last.map(|tail| tail.head)
    }

    pub fn path(&self) -> &Path {
        &self.paths.log
    }

    fn append(&self, event: &Event) -> Result<ChainHead, AuditError> {
        let mut state = self.lock();
        state.ensure_ready(&self.paths)?;
        state.append(&self.paths, event, &[])
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| {
            self.state.clear_poison();
            let mut state = poisoned.into_inner();
            state.needs_recovery = true;
            state
        })
    }
}

fn open_append(path: &Path) -> Result<(File, bool), AuditError> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).mode(0o600);
    match options.clone().create_new(true).open(path) {
        Ok(file) => Ok((file, true)),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => options
            .open(path)
            .map(|file| (file, false))
            .map_err(io_error("open", path)),
        Err(error) => Err(io_error("create", path)(error)),
    }
}

impl State {
    /// Before each append: recover if something went wrong or the file changed under us, and
    /// bring the head file up to date if its last replacement failed.
    fn ensure_ready(&mut self, paths: &Paths) -> Result<(), AuditError> {
        if !self.needs_recovery {
            let len = self
                .file
                .metadata()
                .map_err(io_error("stat", &paths.log))?
                .len();
            if len != self.len {
                tracing::warn!(
                    expected = self.len,
                    found = len,
                    "audit log changed under the agent; re-reading its end"
                );
                self.needs_recovery = true;
            }
        }
        if self.needs_recovery {
            self.recover(paths)?;
        }
        let last = self.last.map(|tail| tail.head);
        if let Some(last) = last.filter(|last| self.head_on_disk != Some(*last)) {
            head::write(&self.dir, &paths.head, &paths.head_tmp, &last)?;
            self.head_on_disk = Some(last);
        }
        Ok(())
    }

    /// Re-reads the end of the log: finds the last whole record, checks it against the head
    /// file, and completes or seals what a crash left after it.
    fn recover(&mut self, paths: &Paths) -> Result<(), AuditError> {
        let len = self
            .file
            .metadata()
            .map_err(io_error("stat", &paths.log))?
            .len();
        let scan = scan_tail(&self.file, len, &paths.log)?;
        let head = match HeadFile::read(&paths.head)? {
            HeadFile::Absent => None,
            HeadFile::Present(head) => Some(head),
            HeadFile::Malformed => {
                return Err(AuditError::HeadMalformed {
                    path: paths.head.clone(),
                })
            }
        };
        let inconsistent = |problem| AuditError::Inconsistent {
            path: paths.log.clone(),
            problem,
        };
        let last_head = scan.last.map(|tail| tail.head);
        match (head, scan.last) {
            (None, None) => {}
            (None, Some(tail)) if tail.head.seq == 0 => {}
            (None, Some(tail)) => {
                return Err(inconsistent(Inconsistency::HeadMissing { last: tail.head }))
            }
            (Some(head), _) if Some(head) == last_head => {}
            (Some(head), Some(tail))
                if head.seq.checked_add(1) == Some(tail.head.seq) && tail.prev == head.hash => {}
            (Some(head), _) if last_head.is_none_or(|last| head.seq > last.seq) => {
                return Err(inconsistent(Inconsistency::Truncated {
                    head,
                    last: last_head,
                }))
            }
            (Some(head), _) => {
                return Err(inconsistent(Inconsistency::HeadMismatch {
                    head,
                    last: last_head,
                }))
            }
        }
        self.len = len;
        self.last = scan.last;
        self.head_on_disk = head;
        if let Some((offset, debris)) = scan.debris {
            self.settle_debris(paths, offset, &debris)?;
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
        let seal = RecoveredTail {
            offset,
            length: debris.len() as u64,
            sha256: Sha256::of(debris),
        };
        tracing::warn!(
            offset,
            length = seal.length,
            "audit log: sealing bytes a crash left after the last whole record"
        );
        let separator: &[u8] = if debris.ends_with(b"\n") { b"" } else { b"\n" };
        self.append(paths, &Event::RecoveredTail(seal), separator)?;
        Ok(())
    }

    fn next_seq(&self) -> Result<u64, AuditError> {
        match self.last {
            None => Ok(0),
            Some(tail) => tail.head.seq.checked_add(1).ok_or(AuditError::SeqExhausted),
        }
    }

    fn prev(&self) -> Sha256 {
        self.last.map_or(GENESIS, |tail| tail.head.hash)
    }

    /// Appends one record (after `before`, in the same write), syncs it, then replaces the
    /// head file. A failed head replacement is logged and retried before the next append: the
    /// record is durable, and a head lagging by one record is what a crash leaves anyway.
    fn append(
        &mut self,
        paths: &Paths,
        event: &Event,
        before: &[u8],
    ) -> Result<ChainHead, AuditError> {
        let seq = self.next_seq()?;
        let prev = self.prev();
        let at = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .map_err(|_| AuditError::Clock)?;
        let (line, hash) = encode(seq, &at, event, &prev)?;
        let bytes = if before.is_empty() {
            line
        } else {
            [before, &line].concat()
        };
        self.write_synced(paths, &bytes)?;
        let head = ChainHead { seq, hash };
        self.last = Some(Tail { head, prev });
        match head::write(&self.dir, &paths.head, &paths.head_tmp, &head) {
            Ok(()) => self.head_on_disk = Some(head),
            Err(error) => tracing::error!(
                error = %error,
                seq,
                "audit head file not updated; retried before the next record"
            ),
        }
        Ok(head)
    }

    /// One `write_all` of `bytes` at the end of the file, then `fdatasync`. On failure the
    /// file's end is unknown: the next append re-reads it.
    fn write_synced(&mut self, paths: &Paths, bytes: &[u8]) -> Result<(), AuditError> {
        self.needs_recovery = true;
        self.file
            .write_all(bytes)
            .map_err(io_error("append to", &paths.log))?;
        self.file
            .sync_data()
            .map_err(io_error("sync", &paths.log))?;
        self.len += bytes.len() as u64;
        self.needs_recovery = false;
        Ok(())
    }
}

struct TailScan {
    last: Option<Tail>,
    /// Offset and bytes after the last whole record, if any.
    debris: Option<(u64, Vec<u8>)>,
}

/// Finds the last line that is a record on its own (its hash right) in the last
/// `MAX_RECOVERED + MAX_LINE` bytes, and what follows it.
fn scan_tail(file: &File, len: u64, path: &Path) -> Result<TailScan, AuditError> {
    let window = len.min((MAX_RECOVERED + MAX_LINE + 1) as u64);
    let start = len - window;
    let mut buf = vec![0; usize::try_from(window).unwrap_or(0)];
    file.read_exact_at(&mut buf, start)
        .map_err(io_error("read", path))?;
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
    })
}
