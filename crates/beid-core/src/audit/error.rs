use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::record::ChainHead;

/// Why the audit log could not be opened or written, or a file could not be read for `verify`.
/// What `verify` finds *in* a log is not an error: it is in the [`super::VerifyReport`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("audit: cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("audit secret {path} holds {len} bytes instead of 32")]
    SecretLength { path: PathBuf, len: u64 },
    #[error("audit secret {path} is open to group or others (mode {mode:03o}); make it 0600")]
    SecretPermissions { path: PathBuf, mode: u32 },
    #[error("audit secret {path} is not a regular file")]
    SecretNotAFile { path: PathBuf },
    #[error("audit: the system random generator failed")]
    Random,
    #[error("audit head file {path} is not {{\"seq\":N,\"hash\":\"<hex>\"}}")]
    HeadMalformed { path: PathBuf },
    /// The log and its head file disagree in a way no crash explains: truncation, deletion of
    /// the head, or another writer. The agent does not write on: see the module documentation.
    #[error("audit log {path}: {problem}; run `beid-agent audit verify`, keep both files as evidence and move them aside to start a new chain")]
    Inconsistent {
        path: PathBuf,
        problem: Inconsistency,
    },
    #[error("audit record of {len} bytes is over the {max}-byte limit")]
    RecordTooLarge { len: usize, max: usize },
    #[error("audit record could not be serialized")]
    Serialize(#[source] serde_json::Error),
    #[error("audit record did not serialize to a JSON object")]
    NotAnObject,
    #[error("audit: the clock gives a time RFC 3339 cannot write")]
    Clock,
    #[error("audit log has no sequence number left")]
    SeqExhausted,
    #[error("audit sealing state {path} already exists: this log is sealed already (its verification key was shown when it was set up)")]
    SealStateExists { path: PathBuf },
    #[error("audit sealing state {path} is not a sealing state of this version")]
    SealStateMalformed { path: PathBuf },
    #[error(
        "audit sealing state {path} is open to group or others (mode {mode:03o}); make it 0600"
    )]
    SealStatePermissions { path: PathBuf, mode: u32 },
    #[error("the audit log was sealed for shutdown; no record is written after that")]
    Closed,
    #[error("journal export, line {line}: {reason}")]
    JournalExport { line: usize, reason: &'static str },
    #[error(transparent)]
    Sealing(#[from] super::sealing::SealingError),
}

/// How a log and its head file disagree (see [`AuditError::Inconsistent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Inconsistency {
    /// The log has records beyond the first but no head file.
    HeadMissing { last: ChainHead },
    /// The head names a record the log no longer has: records were cut from the end.
    Truncated {
        head: ChainHead,
        last: Option<ChainHead>,
    },
    /// The head names another record than the log's last (or the one before it).
    HeadMismatch {
        head: ChainHead,
        last: Option<ChainHead>,
    },
    /// More bytes after the last whole record than a crash can leave.
    DamagedTail { offset: u64, length: u64 },
    /// The seal the sealing state names as the last one is not in the log (at its place):
    /// the log was truncated or rewritten below it.
    SealMissing { seq: u64 },
    /// The log holds seal records but its sealing state is missing (or was made anew).
    SealStateMissing,
}

impl fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = |head: &Option<ChainHead>| head.map_or("none".to_owned(), |h| h.seq.to_string());
        match self {
            Self::HeadMissing { last } => {
                write!(f, "the head file is missing (log ends at seq {})", last.seq)
            }
            Self::Truncated { head, last } => write!(
                f,
                "truncated: the head file names seq {}, the log ends at seq {}",
                head.seq,
                seq(last)
            ),
            Self::HeadMismatch { head, last } => write!(
                f,
                "the head file (seq {}) does not match the log (last seq {})",
                head.seq,
                seq(last)
            ),
            Self::DamagedTail { offset, length } => write!(
                f,
                "{length} damaged bytes at offset {offset}, more than a crash leaves"
            ),
            Self::SealMissing { seq } => write!(
                f,
                "the seal at seq {seq}, the last one the sealing state knows, is not in the log: truncated or rewritten"
            ),
            Self::SealStateMissing => f.write_str(
                "the log is sealed but its sealing state is missing or new: deleted or replaced",
            ),
        }
    }
}

/// `map_err` helper: an I/O error with what was being done and to which file.
pub(crate) fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> AuditError {
    let path = path.to_path_buf();
    move |source| AuditError::Io { op, path, source }
}
