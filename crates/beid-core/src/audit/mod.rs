//! audit: an append-only, hash-chained log of what the agent did, for the city's auditors.
//! No async, no HTTP, no card access; never a national number, name or card byte: citizens
//! appear only as a keyed pseudonym.
//!
//! # Files
//!
//! - `<log>`: the records, one JSON object per line (`\n`), UTF-8, mode 0600.
//! - `<log>.head`: `{"seq":N,"hash":"<hex>"}\n`, the last record whose append completed.
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
//! `seq` 0. So an auditor re-implements `verify` with SHA-256 and a JSON parser:
//!
//! 1. split the file at `\n`; a last piece without `\n` is a partial line (crash debris);
//! 2. for each line: cut the last 75 bytes, check they are `,"hash":"<hex>"}`, SHA-256 the
//!    rest, compare with the hex (mismatch: *edited*);
//! 3. parse the line; `seq` must be the previous `seq` + 1 (first: 0), `prev` the previous
//!    `hash` (else: *rehashed*, *deleted* or *reordered*), and the type must not be
//!    `recovered_tail`;
//! 4. a line that fails 2 or 3 (and the lines after it) may be sealed crash debris: it is
//!    accepted if a later line, within [`MAX_RECOVERED`] bytes, is a `recovered_tail` record
//!    with the next `seq` and `prev`, whose `offset` is where the failing line starts, that
//!    starts right after those `length` bytes (plus one `\n` if they do not end with one),
//!    and whose `sha256` is theirs; the walk goes on after it. Otherwise the failing line is
//!    the first problem;
//! 5. the head file must name the last record, or the one before it with the last record's
//!    `prev` equal to its `hash`; it may be absent only if the log has no record but `seq` 0
//!    (else: *truncated* if it names a later seq, otherwise a head problem).
//!
//! Field names `seq`, `at`, `type`, `prev` and `hash` are reserved: no record type uses them.
//! Types (see the structs for the fields):
//! - `agent_started` ([`AgentStarted`]): version, pid, device;
//! - `card_session` ([`CardSession`]): session, reader, applet, authentic, chip, outcome;
//! - `advice` ([`AdviceRecord`]): session, use case, decision, reason, upstream reason,
//!   latency_ms, pseudonym = hex HMAC-SHA256(secret, the 11 ASCII digits of the national
//!   number);
//! - `api_request` ([`ApiRequest`]): client, method, route template, status, session;
//! - `recovered_tail` ([`RecoveredTail`]): offset, length, sha256 of crash debris.
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
//! - a log that ends in a way no crash explains (the head names a later record or another
//!   one, the head is missing after the first record, or more debris than
//!   [`MAX_RECOVERED`]) is refused with [`AuditError::Inconsistent`], and left untouched, so
//!   a restart never writes over the evidence of a truncation. The operator runs
//!   `beid-agent audit verify`, keeps both files, moves them aside and restarts (new chain).
//!
//! `verify` on a log with a partial line not yet sealed reports the chain up to the last whole
//! record as intact ([`Verdict::IntactUpToPartialTail`]), unless the head names a record the
//! log no longer has whole (*truncated*).
//!
//! # What this protects against, and what not
//!
//! The chain is unkeyed (anyone can recompute SHA-256, and `verify` needs no secret): it
//! detects edits, deletions, reordering and (with the head file) truncation by anyone who
//! does not rewrite the chain from that point on and the head with it. Someone with write
//! access to both files can rewrite the end of the log consistently, or append well-formed
//! records. Anchor the head elsewhere to close that: [`AuditLog::open`] logs the chain head
//! (seq and hash) through `tracing`, which the journal keeps apart from the log.
//!
//! # Cost and threads
//!
//! [`AuditLog`] is `Send + Sync` (one `Mutex` around the file); records are a few hundred
//! bytes and a few per citizen. An append costs one `write`, three syncs and a `rename`:
//! measured at about 0.45 ms per record on the development VM (ext4 on a virtio disk, release
//! build; the record's `fdatasync` is about a third of it, the head file the rest). See the
//! `append_cost` test. `verify` checks about 300 000 records a second. From async code,
//! append inside `spawn_blocking`: holding a runtime worker for half a millisecond (more on a
//! slow SD card) per record is avoidable.
//!
//! One process writes a log. There is no file lock (`File::try_lock` needs Rust 1.89, the
//! crate's MSRV is 1.85); each append checks that the file has the length it expects and,
//! if another writer moved it, re-reads the end (sealing foreign bytes) before writing.

mod error;
mod head;
mod record;
mod secret;
mod verify;
mod writer;

#[cfg(test)]
mod tests;

pub use error::{AuditError, Inconsistency};
pub use head::head_path;
pub use record::{
    AdviceAsked, AdviceRecord, AgentStarted, ApiRequest, CardSession, ChainHead, ChipResult,
    Decision, Event, Pseudonym, ReadOutcome, Record, RecoveredTail, Sha256, GENESIS, MAX_LINE,
};
pub use record::{CheckAnswered, CheckRecord, CheckRefused, GatewayStarted, OutcomeRecord};
pub use verify::{
    verify, verify_bytes_with_head, Finding, Fragment, HeadStatus, Problem, Verdict, VerifyReport,
};
pub use writer::{AuditLog, MAX_RECOVERED};
