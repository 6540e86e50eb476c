//! The sealing state `<log>.seal`: the current sealing key, its epoch, the schedule, and the
//! last seal written with it. Mode 0600, one JSON object and a newline:
//!
//! ```text
//! {"version":1,"key_id":"<16 hex>","schedule":{"start":1740816000,"length":900},"epoch":5,"key":"<64 hex>","last_seal":{"seq":41,"hash":"<64 hex>","end":12345,"epoch":4,"reason":"epoch"}}
//! ```
//!
//! `last_seal` (absent until the first seal) is where the log's last seal ends (`end`, a byte
//! offset): on open, the writer checks that this seal is still there and reads only what
//! follows it. The file is replaced after every seal: a temporary file (0600, synced) is
//! renamed over it, the directory synced, and only then is the old file's content
//! overwritten with zeros and synced, so the old key leaves the disk (as far as the file
//! system writes in place: ext4 does; copy-on-write file systems and SSD wear levelling may
//! keep old blocks) and a crash at any point leaves one whole state, old or new.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::error::{io_error, AuditError, Inconsistency};
use super::files::{exposure, publish_new, sibling, Exposure, Published};
use super::record::{hex, holds_seal, parse_hex, ChainHead, Seal, SealReason, Sha256};
use super::sealing::{KeyId, Schedule, SealMessage, SealingKey, VerificationKey};

const VERSION: u32 = 1;
/// The state file is a few hundred bytes; anything longer is not one.
const MAX_STATE: u64 = 4096;

/// `seal-init`: sets sealing up for the log at `log` (which may not exist yet) with epochs of
/// `epoch` from `now`, and returns the verification key, shown once and kept nowhere on this
/// computer. Refused if the sealing state exists, or if the log already holds seals (its
/// sealing state was lost: the log is evidence, to be moved aside first).
pub fn seal_init(
    log: &Path,
    epoch: Duration,
    now: OffsetDateTime,
) -> Result<VerificationKey, AuditError> {
    let schedule = Schedule::new(now, epoch)?;
    let bytes = match std::fs::read(log) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(io_error("read", log)(error)),
    };
    if holds_seal(&bytes) {
        return Err(AuditError::Inconsistent {
            path: log.to_path_buf(),
            problem: Inconsistency::SealStateMissing,
        });
    }
    Sealer::create(&seal_state_path(log), schedule)
}

/// The sealing state of the log at `log`: the same path with `.seal` added.
pub fn seal_state_path(log: &Path) -> PathBuf {
    sibling(log, ".seal")
}

/// Where the last seal written under this state ends in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SealPoint {
    pub(crate) seq: u64,
    pub(crate) hash: Sha256,
    /// Byte offset just after the seal's newline.
    pub(crate) end: u64,
    pub(crate) epoch: u64,
    pub(crate) reason: SealReason,
}

impl SealPoint {
    pub(crate) fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.hash,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    key_id: KeyId,
    schedule: Schedule,
    epoch: u64,
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_seal: Option<SealPoint>,
}

/// The writer's sealing state: in memory, and on disk at `path`.
pub(crate) struct Sealer {
    path: PathBuf,
    tmp: PathBuf,
    key_id: KeyId,
    schedule: Schedule,
    key: SealingKey,
    last: Option<SealPoint>,
}

impl Sealer {
    /// `seal-init`: a new random seed, a state at epoch 0 written to `path` (0600), which
    /// must not exist yet. Returns the verification key, which is not kept anywhere else.
    pub(crate) fn create(path: &Path, schedule: Schedule) -> Result<VerificationKey, AuditError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(&mut *seed)
            .map_err(|_| AuditError::Random)?;
        let verification = VerificationKey::new(seed, schedule);
        let sealer = Self {
            path: path.to_path_buf(),
            tmp: sibling(path, ".tmp"),
            key_id: verification.key_id(),
            schedule,
            key: verification.first_key(),
            last: None,
        };
        match publish_new(path, &sealer.encode()?, "create the sealing state")? {
            Published::Created => Ok(verification),
            Published::AlreadyThere => Err(AuditError::SealStateExists {
                path: path.to_path_buf(),
            }),
        }
    }

    /// Reads the state at `path`; `None` when there is none (the log is not sealed).
    pub(crate) fn load(path: &Path) -> Result<Option<Self>, AuditError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error("open the sealing state", path)(error)),
        };
        let meta = file
            .metadata()
            .map_err(io_error("stat the sealing state", path))?;
        let malformed = || AuditError::SealStateMalformed {
            path: path.to_path_buf(),
        };
        match exposure(&meta) {
            None => {}
            Some(Exposure::NotAFile) => return Err(malformed()),
            Some(Exposure::Open { mode }) => {
                return Err(AuditError::SealStatePermissions {
                    path: path.to_path_buf(),
                    mode,
                })
            }
        }
        let mut bytes = Zeroizing::new(Vec::new());
        file.take(MAX_STATE)
            .read_to_end(&mut bytes)
            .map_err(io_error("read the sealing state", path))?;
        let state: StateFile = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
        let hex_key = Zeroizing::new(state.key);
        let key = Zeroizing::new(parse_hex::<32>(&hex_key).ok_or_else(malformed)?);
        if state.version != VERSION {
            return Err(malformed());
        }
        Ok(Some(Self {
            path: path.to_path_buf(),
            tmp: sibling(path, ".tmp"),
            key_id: state.key_id,
            schedule: state.schedule,
            key: SealingKey::new(state.epoch, key),
            last: state.last_seal,
        }))
    }

    fn encode(&self) -> Result<Zeroizing<Vec<u8>>, AuditError> {
        let state = StateFile {
            version: VERSION,
            key_id: self.key_id,
            schedule: self.schedule,
            epoch: self.key.epoch(),
            key: hex(self.key.bytes()),
            last_seal: self.last,
        };
        let bytes = serde_json::to_vec(&state).map(Zeroizing::new);
        // The hex copy of the key is erased as soon as it is written out.
        drop(Zeroizing::new(state.key));
        let mut bytes = bytes.map_err(AuditError::Serialize)?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Replaces the file with the state in memory, then erases the old file's content.
    pub(crate) fn save(&self, dir: &File) -> Result<(), AuditError> {
        let old = OpenOptions::new().write(true).open(&self.path).ok();
        let mut tmp = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&self.tmp)
            .map_err(io_error("create", &self.tmp))?;
        tmp.write_all(&self.encode()?)
            .map_err(io_error("write", &self.tmp))?;
        tmp.sync_data().map_err(io_error("sync", &self.tmp))?;
        std::fs::rename(&self.tmp, &self.path).map_err(io_error("replace", &self.path))?;
        dir.sync_all()
            .map_err(io_error("sync the directory of", &self.path))?;
        if let Some(old) = old {
            erase(&old).map_err(io_error("erase the previous sealing state", &self.path))?;
        }
        Ok(())
    }

    pub(crate) fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub(crate) fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// The epoch of the current key.
    pub(crate) fn epoch(&self) -> u64 {
        self.key.epoch()
    }

    pub(crate) fn last(&self) -> Option<SealPoint> {
        self.last
    }

    pub(crate) fn set_last(&mut self, point: SealPoint) {
        self.last = Some(point);
    }

    /// The time to write in a record: `now`, but never before the current key's epoch
    /// starts (a clock that stepped back across an epoch boundary), so that every record is
    /// dated in the epoch of the key that seals it.
    pub(crate) fn date(&self, now: OffsetDateTime) -> OffsetDateTime {
        now.max(self.schedule.start_of(self.key.epoch()))
    }

    /// The epoch the key must move to after a seal written at `at` (see [`SealReason`]).
    pub(crate) fn epoch_after(&self, reason: SealReason, at: OffsetDateTime) -> Option<u64> {
        match reason {
            SealReason::Stop => Some(self.key.epoch()),
            SealReason::Start | SealReason::Epoch => self
                .schedule
                .epoch_of(at)
                .map(|epoch| epoch.max(self.key.epoch())),
        }
    }

    /// The seal record for the next record `seq`, dated `at`, after `prev`.
    pub(crate) fn seal(&self, seq: u64, at: &str, reason: SealReason, prev: Sha256) -> Seal {
        let message = SealMessage {
            seq,
            at,
            reason,
            epoch: self.key.epoch(),
            key_id: self.key_id,
            prev,
        };
        Seal {
            reason,
            epoch: self.key.epoch(),
            key_id: self.key_id,
            mac: self.key.mac(&message),
        }
    }

    /// Moves the key forward to `epoch`, erasing the keys it leaves (in memory; [`save`]
    /// erases them on disk).
    ///
    /// [`save`]: Self::save
    pub(crate) fn evolve_to(&mut self, epoch: u64) {
        self.key.evolve_to(epoch);
    }
}

/// Overwrites the whole content of `file` with zeros and syncs it.
fn erase(file: &File) -> io::Result<()> {
    let len = file.metadata()?.len();
    let zeros = vec![0u8; usize::try_from(len).unwrap_or(0)];
    file.write_all_at(&zeros, 0)?;
    file.sync_data()
}
