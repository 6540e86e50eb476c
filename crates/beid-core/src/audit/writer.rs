//! The writer: [`AuditLog`]. How it reads the log's end on open or after trouble is
//! [`super::recovery`].

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::anchors::{log_anchor, AnchorReason};
use super::error::{io_error, AuditError};
use super::files::parent;
use super::head::{self, head_path, head_tmp_path};
use super::record::{
    encode, AdviceAsked, AdviceRecord, AgentStarted, ApiRequest, CardSession, ChainHead, Event,
    Pseudonym, SealReason, Sha256, StaffDecisionRecord, GENESIS,
};
use super::record::{CheckAnswered, CheckRecord, CheckRefused, GatewayStarted, OutcomeRecord};
use super::seal_state::{seal_state_path, SealPoint, Sealer};
use super::sealing::KeyId;
use super::secret::Secret;

/// The most bytes after the last whole record that the log accepts as crash debris. A crash
/// leaves at most part of one line (and, after a second crash during recovery, part of a
/// second one): a few KiB. More than this is not a crash.
pub const MAX_RECOVERED: usize = 64 * 1024;

/// The most bytes another process may have written into the log that the agent still seals
/// as `foreign_bytes` (and that the log may hold after its last seal); beyond, it refuses to
/// write on, as for a truncation.
pub const MAX_FOREIGN: usize = 16 * 1024 * 1024;

/// Where the writer gets the time. Tests use a clock they move.
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The system clock (UTC).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// The audit log of this agent. `Send + Sync`: share it as `Arc<AuditLog>`.
///
/// Every append is blocking file I/O with three syncs (the record, the new head file, the
/// directory): a few hundred µs to a few ms on an SSD (see the module documentation). From
/// async code, call it inside `tokio::task::spawn_blocking`.
pub struct AuditLog {
    paths: Paths,
    secret: Secret,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

pub(super) struct Paths {
    pub(super) log: PathBuf,
    pub(super) head: PathBuf,
    pub(super) head_tmp: PathBuf,
}

pub(super) struct State {
    pub(super) file: File,
    pub(super) dir: File,
    /// The file length we expect: what we have written.
    pub(super) len: u64,
    /// The last whole record of the chain.
    pub(super) last: Option<Tail>,
    /// What the head file names (after our own writes).
    pub(super) head_on_disk: Option<ChainHead>,
    /// A write or sync failed, or the lock was poisoned: re-read the tail before writing.
    pub(super) needs_recovery: bool,
    /// The sealing state, when the log is sealed.
    pub(super) sealer: Option<Sealer>,
    /// [`AuditLog::close`] wrote the stop seal: nothing more is written.
    pub(super) closed: bool,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Tail {
    pub(super) head: ChainHead,
    pub(super) prev: Sha256,
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
    /// - If a sealing state `<path>.seal` exists (`seal-init`), the log is sealed: the writer
    ///   checks that the last seal it knows is still in place, treats whatever follows a
    ///   stop seal as foreign bytes, writes a `start` seal and moves the key to the current
    ///   epoch. A log that holds seals without a sealing state is refused.
    /// - The chain head is logged as an anchor (module documentation, "Anchors").
    ///
    /// Call [`AuditLog::agent_started`] next.
    pub fn open(path: impl AsRef<Path>, secret_path: impl AsRef<Path>) -> Result<Self, AuditError> {
        Self::open_with_clock(path, secret_path, Arc::new(SystemClock))
    }

    /// [`open`](Self::open) with another clock.
    pub fn open_with_clock(
        path: impl AsRef<Path>,
        secret_path: impl AsRef<Path>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AuditError> {
        let log = path.as_ref().to_path_buf();
        let secret = Secret::load_or_create(secret_path.as_ref())?;
        let sealer = Sealer::load(&seal_state_path(&log))?;
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
            sealer,
            closed: false,
        };
        state.open(&paths, clock.now())?;
        match state.last {
            Some(tail) => tracing::info!(
                log = %paths.log.display(),
                seq = tail.head.seq,
                hash = %tail.head.hash,
                sealed = state.sealer.is_some(),
                "audit log opened"
            ),
            None => tracing::info!(log = %paths.log.display(), "audit log opened (empty)"),
        }
        if state.sealer.is_none() {
            tracing::warn!(
                log = %paths.log.display(),
                "audit log not sealed: someone with the agent's user can rewrite it unnoticed; \
                 run `beid-agent audit seal-init` and keep the verification key off this computer"
            );
        }
        Ok(Self {
            paths,
            secret,
            clock,
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

    /// `staff_decision`.
    pub fn staff_decision(&self, record: &StaffDecisionRecord) -> Result<ChainHead, AuditError> {
        self.append(&Event::StaffDecision(record.clone()))
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

    /// The key id of the sealing state, when the log is sealed.
    pub fn key_id(&self) -> Option<KeyId> {
        self.lock().sealer.as_ref().map(Sealer::key_id)
    }

    /// Writes the seal of the epoch that has ended, if one has: the serve loop calls this
    /// on a timer (see [`next_seal_in`](Self::next_seal_in)) so that an idle agent still
    /// seals every epoch. Appends do it themselves first. `None` when nothing was due (or
    /// the log is not sealed, or closed).
    pub fn seal_due(&self) -> Result<Option<ChainHead>, AuditError> {
        let now = self.clock.now();
        let mut state = self.lock();
        if state.closed || state.sealer.is_none() {
            return Ok(None);
        }
        state.ensure_ready(&self.paths, now)?;
        state.seal_due(&self.paths, now)
    }

    /// How long until the current epoch ends and a seal is due; `None` for an unsealed log.
    pub fn next_seal_in(&self) -> Option<Duration> {
        let now = self.clock.now();
        let state = self.lock();
        let sealer = state.sealer.as_ref()?;
        let end = sealer.schedule().start_of(sealer.epoch().saturating_add(1));
        Some(Duration::try_from(end - now).unwrap_or(Duration::ZERO))
    }

    /// At shutdown: seals the epoch that ended, if one has, then writes the `stop` seal
    /// (sealed logs), and refuses every later record with [`AuditError::Closed`]. Returns the
    /// stop seal. Calling it again does nothing.
    pub fn close(&self) -> Result<Option<ChainHead>, AuditError> {
        let now = self.clock.now();
        let mut state = self.lock();
        if state.closed {
            return Ok(None);
        }
        state.ensure_ready(&self.paths, now)?;
        state.seal_due(&self.paths, now)?;
        let stop = match state.sealer {
            Some(_) => Some(state.seal(&self.paths, SealReason::Stop, now)?),
            None => None,
        };
        state.closed = true;
        Ok(stop)
    }

    fn append(&self, event: &Event) -> Result<ChainHead, AuditError> {
        let now = self.clock.now();
        let mut state = self.lock();
        state.ensure_ready(&self.paths, now)?;
        state.seal_due(&self.paths, now)?;
        state.append(&self.paths, event, &[], now)
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
    /// On open: recover the chain's end, then (sealed logs) write the `start` seal, or (not
    /// sealed) anchor the head.
    fn open(&mut self, paths: &Paths, now: OffsetDateTime) -> Result<(), AuditError> {
        let last_seal = self.sealer.as_ref().and_then(Sealer::last);
        match last_seal {
            Some(point) => self.recover_after_seal(paths, point, now)?,
            None => self.recover(paths, now)?,
        }
        self.sync_head(paths)?;
        if self.sealer.is_some() {
            self.seal(paths, SealReason::Start, now)?;
        } else if let Some(tail) = self.last {
            log_anchor(tail.head, None, AnchorReason::Open);
        }
        Ok(())
    }

    /// Before each append: refuse if closed, recover if something went wrong, seal bytes
    /// another process appended, refuse a log that shrank, and bring the head file up to
    /// date if its last replacement failed.
    pub(super) fn ensure_ready(
        &mut self,
        paths: &Paths,
        now: OffsetDateTime,
    ) -> Result<(), AuditError> {
        if self.closed {
            return Err(AuditError::Closed);
        }
        let len = self
            .file
            .metadata()
            .map_err(io_error("stat", &paths.log))?
            .len();
        if len < self.len {
            return Err(self.shrunk(paths, len));
        }
        if self.needs_recovery {
            self.recover(paths, now)?;
        } else if len > self.len {
            let from = self.len;
            self.len = len;
            self.seal_foreign(paths, from, len, now)?;
        }
        self.sync_head(paths)
    }

    /// Replaces the head file if it does not name the last record (its last replacement
    /// failed, or a crash came between a record and its head).
    fn sync_head(&mut self, paths: &Paths) -> Result<(), AuditError> {
        let last = self.last.map(|tail| tail.head);
        if let Some(last) = last.filter(|last| self.head_on_disk != Some(*last)) {
            head::write(&self.dir, &paths.head, &paths.head_tmp, &last)?;
            self.head_on_disk = Some(last);
        }
        Ok(())
    }

    /// Writes the seal of the key's epoch if the clock has left it.
    fn seal_due(
        &mut self,
        paths: &Paths,
        now: OffsetDateTime,
    ) -> Result<Option<ChainHead>, AuditError> {
        let Some(sealer) = &self.sealer else {
            return Ok(None);
        };
        match sealer.schedule().epoch_of(now) {
            Some(epoch) if epoch > sealer.epoch() => {
                self.seal(paths, SealReason::Epoch, now).map(Some)
            }
            Some(_) => Ok(None),
            None => {
                tracing::error!(
                    "audit: the clock is a century away from the sealing schedule; not sealing"
                );
                Ok(None)
            }
        }
    }

    /// Writes a seal with the current key, records where it ends, moves the key on (not for
    /// a stop seal), saves the sealing state (erasing the old key) and anchors the seal.
    pub(super) fn seal(
        &mut self,
        paths: &Paths,
        reason: SealReason,
        now: OffsetDateTime,
    ) -> Result<ChainHead, AuditError> {
        let Some(sealer) = &self.sealer else {
            return Err(AuditError::Closed);
        };
        let seq = self.next_seq()?;
        let at_time = sealer.date(now);
        let at = rfc3339(at_time)?;
        let seal = sealer.seal(seq, &at, reason, self.prev());
        let epoch = seal.epoch;
        let head = self.append_at(paths, &Event::Seal(seal), &[], &at)?;
        let end = self.len;
        let Some(sealer) = &mut self.sealer else {
            return Err(AuditError::Closed);
        };
        sealer.set_last(SealPoint {
            seq,
            hash: head.hash,
            end,
            epoch,
            reason,
        });
        match sealer.epoch_after(reason, at_time) {
            Some(next) => sealer.evolve_to(next),
            None => tracing::error!("audit: the clock is a century away; the key stays"),
        }
        let saved = sealer.save(&self.dir);
        log_anchor(head, Some(epoch), AnchorReason::Seal(reason));
        saved.map(|()| head)
    }

    pub(super) fn next_seq(&self) -> Result<u64, AuditError> {
        match self.last {
            None => Ok(0),
            Some(tail) => tail.head.seq.checked_add(1).ok_or(AuditError::SeqExhausted),
        }
    }

    pub(super) fn prev(&self) -> Sha256 {
        self.last.map_or(GENESIS, |tail| tail.head.hash)
    }

    /// Appends one record dated `now` (never before the sealing key's epoch, for a sealed
    /// log) after `before`, in the same write.
    pub(super) fn append(
        &mut self,
        paths: &Paths,
        event: &Event,
        before: &[u8],
        now: OffsetDateTime,
    ) -> Result<ChainHead, AuditError> {
        let at = self.sealer.as_ref().map_or(now, |sealer| sealer.date(now));
        let at = rfc3339(at)?;
        self.append_at(paths, event, before, &at)
    }

    /// Appends one record (after `before`, in the same write), syncs it, then replaces the
    /// head file. A failed head replacement is logged and retried before the next append: the
    /// record is durable, and a head lagging by one record is what a crash leaves anyway.
    fn append_at(
        &mut self,
        paths: &Paths,
        event: &Event,
        before: &[u8],
        at: &str,
    ) -> Result<ChainHead, AuditError> {
        let seq = self.next_seq()?;
        let prev = self.prev();
        let (line, hash) = encode(seq, at, event, &prev)?;
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
    pub(super) fn write_synced(&mut self, paths: &Paths, bytes: &[u8]) -> Result<(), AuditError> {
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

fn rfc3339(at: OffsetDateTime) -> Result<String, AuditError> {
    at.format(&Rfc3339).map_err(|_| AuditError::Clock)
}
