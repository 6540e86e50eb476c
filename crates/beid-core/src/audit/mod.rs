//! audit: an append-only, hash-chained, forward-securely sealed log of what the agent did,
//! for the city's auditors. No async, no HTTP, no card access; never a national number, name
//! or card byte: citizens appear only as a keyed pseudonym. What it protects against, and
//! what not, is `docs/audit.md`; this documentation is the format, exact enough to
//! re-implement `verify` from it.
//!
//! # Files
//!
//! - `<log>`: the records, one JSON object per line (`\n`), UTF-8, mode 0600.
//! - `<log>.head`: `{"seq":N,"hash":"<hex>"}\n`, the last record whose append completed.
//! - `<log>.seal`: the sealing state (the current sealing key, mode 0600), once `seal-init`
//!   has set sealing up ([`seal_init`]); the verification key it printed is kept by the
//!   city, off the counter. `verify` needs neither file.
//! - the secret file (its own path): 32 random bytes, mode 0600, created on first open. It
//!   keys the pseudonyms; `verify` does not need it.
//!
//! # Record format
//!
//! ```text
//! {"seq":3,"at":"2025-03-01T10:15:02.123456789Z","type":"advice","session":"…","use_case":"uitpas-kansentarief","decision":"eligible","latency_ms":184,"pseudonym":"<64 hex>","prev":"<64 hex>","hash":"<64 hex>"}
//! ```
//!
//! Fields in this order: `seq` (0 for the first record, then +1), `at` (RFC 3339, UTC), `type`,
//! the type's fields (below; optional ones are left out when absent), `prev`, `hash`. Hashes
//! are 64 lowercase hex digits.
//!
//! **What is hashed.** `hash` = SHA-256 of the line's bytes from its first byte `{` up to and
//! including the closing quote of `prev`: the line without its last 75 bytes
//! (`,"hash":"` + 64 hex digits + `"}`) and without its newline. No canonical JSON is needed:
//! the bytes are what they are. `prev` = the `hash` of the record before, 64 zeros for
//! `seq` 0.
//!
//! Field names `seq`, `at`, `type`, `prev` and `hash` are reserved: no record type uses them.
//! Types (see the structs for the fields):
//! - `agent_started` ([`AgentStarted`]): version, pid, device;
//! - `card_session` ([`CardSession`]): session, reader, applet, authentic, chip, outcome;
//! - `advice` ([`AdviceRecord`]): session, use case, decision, reason, upstream reason,
//!   latency_ms, pseudonym = hex HMAC-SHA256(secret, the 11 ASCII digits of the national
//!   number);
//! - `api_request` ([`ApiRequest`]): client, method, route template, status, session;
//! - `staff_decision` ([`StaffDecisionRecord`]): session, use case, the advice, the clerk's
//!   decision, the deviation reason, whether a note was added (not the note);
//! - `recovered_tail` ([`RecoveredTail`]): offset, length, sha256 of crash debris;
//! - `foreign_bytes` ([`RecoveredTail`]'s fields): offset, length, sha256 of bytes another
//!   process wrote into the log;
//! - `seal` ([`Seal`]): reason (`start`, `epoch`, `stop`), epoch, key_id, mac.
//!
//! The log writes `seal`, `recovered_tail` and `foreign_bytes` records itself; the others
//! are *content* records, written by callers.
//!
//! # Verifying the chain
//!
//! An auditor re-implements this part with SHA-256 and a JSON parser:
//!
//! 1. split the file at `\n`; a last piece without `\n` is a partial line (crash debris);
//! 2. for each line: cut the last 75 bytes, check they are `,"hash":"<hex>"}`, SHA-256 the
//!    rest, compare with the hex (mismatch: *edited*);
//! 3. parse the line; `seq` must be the previous `seq` + 1 (first: 0), `prev` the previous
//!    `hash` (else: *rehashed*, *deleted* or *reordered*), and the type must not be
//!    `recovered_tail` or `foreign_bytes`;
//! 4. a line that fails 2 or 3 (and the lines after it) may be sealed bytes: it is accepted
//!    if a later line, within [`MAX_FOREIGN`] bytes, is a `recovered_tail` (at most
//!    [`MAX_RECOVERED`] bytes sealed) or `foreign_bytes` record with the next `seq` and
//!    `prev`, whose `offset` is where the failing line starts, that starts right after those
//!    `length` bytes (plus one `\n` if they do not end with one), and whose `sha256` is
//!    theirs; the walk goes on after it. Likewise, when such a record names as its `offset`
//!    the start of a record already accepted (someone appended well-formed records and the
//!    agent sealed them as foreign), the walk goes back to that record and takes the bytes
//!    from there as sealed. Otherwise the failing line is where the chain breaks;
//! 5. the head file must name the last record, or the one before it with the last record's
//!    `prev` equal to its `hash`; it may be absent only if the log has no record but `seq` 0
//!    (else: *truncated* if it names a later seq, otherwise a head problem);
//! 6. a `foreign_bytes` record is a finding (another process wrote into the log); so is any
//!    record after a `stop` seal other than `foreign_bytes` before the next `start` seal
//!    (written while the agent was not running).
//!
//! # Sealing
//!
//! In the spirit of journald's Forward Secure Sealing, with an HMAC chain:
//!
//! - `seal-init` draws a 32-byte `seed` and fixes a schedule: `start` (unix seconds) and an
//!   epoch `length` (default 15 minutes). The *verification key* is the text
//!   `beid-seal-v1:<seed, 64 hex>:<start>:<length>`. Epoch of a time `t`:
//!   `floor((t - start) / length)`, 0 before `start`.
//! - Sealing keys: `k_0 = HMAC-SHA256(seed, "beid-audit-seal-v1 epoch 0")`,
//!   `k_{i+1} = HMAC-SHA256(k_i, "evolve")`. Key id: the first 8 bytes of
//!   SHA-256(`"beid-audit-seal-v1 key id"` ‖ seed), 16 hex digits.
//! - The writer holds one key, `k_K`, in memory and in `<log>.seal`. It writes a `seal`
//!   record with it: at open (`start`, sealing what a crash left unsealed), whenever the
//!   clock has left epoch `K` (`epoch`: before the next record, or on the serve loop's timer,
//!   so an idle agent seals every epoch too) and at shutdown (`stop`). After a `start` or
//!   `epoch` seal dated `at`, the key moves to epoch `max(K, epoch of at)`: the sealing
//!   state is replaced and the old file's content overwritten, and the old key is erased
//!   from memory. After a `stop` seal the key stays. So every epoch change is preceded by a
//!   seal with the old key.
//! - A record is dated `max(now, start of epoch K)`, so it is dated in the epoch of the key
//!   that will seal it even when the clock steps back.
//! - `mac` = hex HMAC-SHA256(`k_epoch`, message), the message being these seven lines
//!   joined by `\n` (no final newline): `beid-audit-seal-v1`, the seal's `seq` (decimal), its
//!   `at` exactly as written in the line, its `reason`, its `epoch` (decimal), its `key_id`,
//!   its `prev`. Through `prev`, a seal covers the whole chain before it.
//!
//! # Verifying the seals
//!
//! With the verification key, over the chain from step 1-5:
//!
//! 1. every seal's `key_id` is the key's (else: *another key*), and its `mac` verifies
//!    with `k_epoch` (else: the records since the last seal that verifies were changed after
//!    sealing, or the seal is forged);
//! 2. the first seal is of epoch 0, and each next one of the epoch the key moved to after
//!    the one before (the rule above): a jump means seals were removed, or a seal was made
//!    with a key read later;
//! 3. a seal is not dated before its epoch starts (an `epoch` seal: before it ends);
//! 4. content records between two seals are dated in the epoch of the second one (earlier:
//!    *sealed late*, after their own key was erased; later: *misdated*); records before the
//!    first seal were written before sealing was set up and are only reported;
//! 5. after the last seal, unless it is a `stop` seal, the next seal is due at the end of
//!    the epoch the key moved to: past that (as of the time of verification, plus
//!    [`SEAL_GRACE`]), the log is *sealed only up to* its last seal: the agent stopped
//!    without sealing, or the log was cut. A content record dated after that end is the
//!    same finding.
//!
//! # Anchors
//!
//! At every seal, and for the head of an unsealed log at every open, the writer logs a
//! `tracing` event (target [`ANCHOR_TARGET`]) with the fields `audit_seq`, `audit_hash`,
//! `audit_epoch` (sealed logs) and `audit_reason`; the journal keeps them as `AUDIT_SEQ`,
//! `AUDIT_HASH`, `AUDIT_EPOCH` (or with tracing-journald's `F_` prefix), attributed to the
//! agent's unit by journald's trusted `_SYSTEMD_UNIT`. On open of a sealed log the writer
//! anchors the seals it finds after the last one it knew, in case a crash kept their
//! anchor from the journal. Given `journalctl -u beid-agent -o json`, `verify` keeps the
//! entries of the unit and checks that every anchor's (seq, hash) is the chain's, that the
//! chain reaches the last anchor (else: *truncated*), and that every seal from the first
//! anchor on has an anchor at its seq.
//!
//! Types written by the city's gateway (`beid-gateway`) in its own log:
//! - `gateway_started` ([`GatewayStarted`]): version, pid, host;
//! - `check` ([`CheckRecord`]): request id, device, use case, channel, decision, source,
//!   reason, latency_ms, pseudonym (as for `advice`, with the gateway's own secret);
//! - `check_refused` ([`CheckRefused`]): request id, device, reason, status;
//! - `outcome` ([`OutcomeRecord`]): request id, device, the clerk's decision, deviation
//!   reason, whether a note came (never its text).
//!
//! # Crashes, truncation and the head file
//!
//! An append is one `write` of the whole line to a file opened `O_APPEND`, then `fdatasync`;
//! then the head file is replaced (temporary file, `fdatasync`, `rename`, `fsync` of the
//! directory). So after any crash:
//!
//! - the head names the last whole record, or the one before it (crash between the record's
//!   sync and the head's rename). It never names a record the log lacks, and never lags by
//!   two: if replacing the head fails, the next append replaces it first or does not write.
//! - the log may end with *debris*: part of the line being written (a partial line), at
//!   most [`MAX_RECOVERED`] bytes after the last whole record.
//!
//! On [`AuditLog::open`] (and after any failed write) the agent reads the end of the log:
//! - if the debris is the next record lacking only its newline, it adds the newline;
//! - otherwise it leaves the debris in place (append-only: nothing is ever truncated or
//!   rewritten) and writes, in one write, a `\n` ending the debris (if it lacks one) and a
//!   `recovered_tail` record: `offset` = where the debris starts (just after the last whole
//!   record), `length` = its length (without the added `\n`), `sha256` = SHA-256 of it,
//!   `seq`/`prev` continuing the chain from the last whole record. `verify` accepts debris
//!   only when such a record follows it and matches; it reports it in
//!   [`VerifyReport::recovered`]. A second crash during that write leaves longer debris
//!   (old debris + `\n` + part of the seal), which the next open seals as a whole.
//! - a sealed log is read from the last seal the sealing state names: that seal must still
//!   end where the state says; seals found after it (a crash between a seal and the state's
//!   replacement) are taken over and the key caught up; after a `stop` seal, anything is
//!   another process's and becomes `foreign_bytes`.
//! - while the agent runs, bytes that appear after its last write are another process's:
//!   they become `foreign_bytes` before the next record, never part of the chain.
//! - a log that ends in a way no crash explains (the head names a later record or another
//!   one, the head is missing after the first record, more debris than [`MAX_RECOVERED`],
//!   the sealing state's last seal missing, seals without a sealing state, a file shorter
//!   than what the agent wrote) is refused with [`AuditError::Inconsistent`] and left
//!   untouched, so a restart never writes over the evidence of a truncation. The operator
//!   runs `beid-agent audit verify`, keeps the files as evidence, moves them aside and
//!   restarts (new chain; `seal-init` again for a new verification key).
//!
//! `verify` on a log with a partial line not yet sealed reports the chain up to the last whole
//! record as intact ([`Verdict::IntactUpToPartialTail`]), unless the head names a record the
//! log no longer has whole (*truncated*).
//!
//! # Cost and threads
//!
//! [`AuditLog`] is `Send + Sync` (one `Mutex` around the file); records are a few hundred
//! bytes and a few per citizen. An append costs one `write`, three syncs and a `rename`:
//! 255 µs per record, sealed or not, on the development machine (ext4 on a virtio disk,
//! release build); a seal at an epoch's end 0.53 ms (the seal record, then the sealing state
//! replaced and the old one erased: 96 a day, 50 ms a day). `verify` checks 350 000
//! records a second, 340 000 with the key (`cargo bench -p beid-core --bench audit`,
//! figures in `docs/audit.md`). From async code, append inside `spawn_blocking`: holding a
//! runtime worker for a quarter of a millisecond (more on a slow SD card) per record is
//! avoidable.
//!
//! One process writes a log. There is no file lock (`File::try_lock` needs Rust 1.89, the
//! crate's MSRV is 1.85); each append checks that the file has the length it expects, and
//! seals what another writer added as foreign bytes before writing.

mod anchors;
mod error;
mod files;
mod head;
mod record;
mod recovery;
mod seal_state;
mod sealing;
mod secret;
mod verify;
mod verify_seals;
mod walk;
mod writer;

#[cfg(test)]
mod tests;

pub use anchors::{Anchor, Anchoring, Anchors, ANCHOR_DIRECTIVE, ANCHOR_TARGET, DEFAULT_UNIT};
pub use error::{AuditError, Inconsistency};
pub use head::head_path;
pub use record::{
    AdviceAsked, AdviceRecord, AgentStarted, ApiRequest, CardSession, ChainHead, ChipResult,
    Decision, Event, Pseudonym, ReadOutcome, Record, RecoveredTail, Seal, SealReason, Sha256,
    StaffDecisionRecord, GENESIS, MAX_LINE,
};
pub use record::{CheckAnswered, CheckRecord, CheckRefused, GatewayStarted, OutcomeRecord};
pub use seal_state::{seal_init, seal_state_path};
pub use sealing::{
    KeyId, Mac, Schedule, SealingError, VerificationKey, DEFAULT_EPOCH, MAX_EPOCH, MIN_EPOCH,
};
pub use verify::{
    verify, verify_bytes_with_head, verify_with, Finding, Fragment, HeadStatus, Problem, Verdict,
    VerifyOptions, VerifyReport,
};
pub use verify_seals::{Pending, SealSeen, Sealing, SEAL_GRACE};
pub use writer::{AuditLog, Clock, SystemClock, MAX_FOREIGN, MAX_RECOVERED};
