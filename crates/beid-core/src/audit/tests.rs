//! The audit log as an auditor and a crash see it: real files in a temporary directory.

use std::cell::RefCell;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use proptest::prelude::*;
use ring::hmac;
use time::OffsetDateTime;
use uuid::Uuid;

use super::*;

/// Synthetic national numbers: month 67 and 62 (no real number has them), valid check digits.
const CITIZEN: &str = "85673000390";
const OTHER_CITIZEN: &str = "90622712333";

mod attacker;
mod sealed;
mod threats;
mod wording;

/// 2025-03-03 08:00 UTC: when the tests' clocks start (and sealing is set up).
const T0: OffsetDateTime = time::macros::datetime!(2025-03-03 08:00 UTC);

/// A clock the test moves.
struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    fn set(&self, at: OffsetDateTime) {
        *self.0.lock().unwrap() = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

/// What journald would keep of the writer's anchors on one thread, exported as
/// `journalctl -u beid-agent -o json` prints it (trusted fields added as journald adds them).
#[derive(Clone)]
struct Journal {
    clock: Arc<ManualClock>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Journal {
    fn export(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    fn anchors(&self) -> Anchors {
        Anchors::parse_journal_export(&self.export(), DEFAULT_UNIT).unwrap()
    }
}

thread_local! {
    /// The journal of the fixture on this thread, if it has one.
    static JOURNAL: RefCell<Option<Journal>> = const { RefCell::new(None) };
}

/// The process's subscriber in these tests: hands each anchor to the journal of the thread
/// that logged it. (Per-thread scoped subscribers race with tracing's global cache of which
/// callsites are enabled when tests run in parallel.)
struct Journals;

impl Journals {
    fn install() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let _ = tracing::subscriber::set_global_default(Journals);
        });
    }
}

impl tracing::Subscriber for Journals {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == ANCHOR_TARGET
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        JOURNAL.with(|journal| {
            if let Some(journal) = &*journal.borrow() {
                journal.keep(event);
            }
        });
    }
}

impl Journal {
    /// Keeps an anchor as journald would: fields upper-cased, values as text, the unit and
    /// the time stamped by journald.
    fn keep(&self, event: &tracing::Event<'_>) {
        struct Fields(serde_json::Map<String, serde_json::Value>);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                let name = match field.name() {
                    "message" => "MESSAGE".to_owned(),
                    name => name.to_uppercase(),
                };
                self.0.insert(name, format!("{value:?}").into());
            }
        }
        let mut fields = Fields(serde_json::Map::new());
        event.record(&mut fields);
        let micros = self.clock.now().unix_timestamp_nanos() / 1000;
        fields.0.insert("_SYSTEMD_UNIT".into(), DEFAULT_UNIT.into());
        fields
            .0
            .insert("__REALTIME_TIMESTAMP".into(), micros.to_string().into());
        let line = serde_json::Value::Object(fields.0).to_string();
        self.lines.lock().unwrap().push(line);
    }
}

/// While alive, anchors logged on this thread go to one journal.
struct JournalGuard;

impl Drop for JournalGuard {
    fn drop(&mut self) {
        JOURNAL.with(|journal| journal.borrow_mut().take());
    }
}

struct Fixture {
    log: PathBuf,
    secret: PathBuf,
    clock: Arc<ManualClock>,
    journal: Journal,
    /// The verification key, for a sealed log.
    key: Option<VerificationKey>,
    _journal: Option<JournalGuard>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// A log not sealed, with the clock at [`T0`].
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock(Mutex::new(T0)));
        Self {
            log: dir.path().join("audit.jsonl"),
            secret: dir.path().join("audit.secret"),
            journal: Journal {
                clock: Arc::clone(&clock),
                lines: Arc::default(),
            },
            clock,
            key: None,
            _journal: None,
            _dir: dir,
        }
    }

    /// Anchors logged on this thread go to [`Fixture::journal`].
    fn with_journal(mut self) -> Self {
        Journals::install();
        JOURNAL.with(|journal| *journal.borrow_mut() = Some(self.journal.clone()));
        self._journal = Some(JournalGuard);
        self
    }

    /// A log sealed at [`T0`] (epochs of 15 minutes), with a journal.
    fn sealed() -> Self {
        let mut fixture = Self::new().with_journal();
        fixture.key = Some(seal_init(&fixture.log, DEFAULT_EPOCH, T0).unwrap());
        fixture
    }

    fn open(&self) -> AuditLog {
        self.try_open().unwrap()
    }

    fn try_open(&self) -> Result<AuditLog, AuditError> {
        AuditLog::open_with_clock(&self.log, &self.secret, self.clock.clone())
    }

    fn at(&self, hour: u8, minute: u8) {
        self.clock
            .set(T0.replace_time(time::Time::from_hms(hour, minute, 0).unwrap()));
    }

    fn head(&self) -> PathBuf {
        head_path(&self.log)
    }

    fn seal_state(&self) -> PathBuf {
        seal_state_path(&self.log)
    }

    fn bytes(&self) -> Vec<u8> {
        fs::read(&self.log).unwrap()
    }

    /// `verify` with nothing but the log (and its head file).
    fn verify(&self) -> VerifyReport {
        verify(&self.log).unwrap()
    }

    /// `verify` as the city does it: with the verification key and the journal's anchors,
    /// as of the clock.
    fn audit(&self) -> VerifyReport {
        self.verify_as(true, true)
    }

    fn verify_as(&self, key: bool, anchors: bool) -> VerifyReport {
        let options = VerifyOptions {
            key: if key { self.key.clone() } else { None },
            anchors: anchors.then(|| self.journal.anchors()),
            as_of: self.clock.now(),
        };
        verify_with(&self.log, &options).unwrap()
    }

    /// No temporary file (of the head, the secret, the sealing state) is left behind.
    fn assert_no_temporary_files(&self) {
        let leftovers: Vec<_> = fs::read_dir(self.log.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.contains("tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    fn append_raw(&self, bytes: &[u8]) {
        let mut file = OpenOptions::new().append(true).open(&self.log).unwrap();
        file.write_all(bytes).unwrap();
    }
}

/// The kinds of the findings, in order.
fn kinds(report: &VerifyReport) -> Vec<&'static str> {
    report
        .findings
        .iter()
        .map(|finding| match finding.problem {
            Problem::ForeignBytes { .. } => "foreign_bytes",
            Problem::AfterStop { .. } => "after_stop",
            Problem::NotSealed => "not_sealed",
            Problem::KeyMismatch { .. } => "key_mismatch",
            Problem::SealInvalid { .. } => "seal_invalid",
            Problem::SealEpoch { .. } => "seal_epoch",
            Problem::SealMisdated { .. } => "seal_misdated",
            Problem::SealedLate { .. } => "sealed_late",
            Problem::DatedAfterSeal { .. } => "dated_after_seal",
            Problem::Unsealed { .. } => "unsealed",
            Problem::AnchorMismatch { .. } => "anchor_mismatch",
            Problem::TruncatedBeforeAnchor { .. } => "truncated_before_anchor",
            Problem::NotAnchored { .. } => "not_anchored",
            Problem::NoAnchors { .. } => "no_anchors",
            _ => "other",
        })
        .collect()
}

fn card_session(session: Uuid) -> CardSession {
    CardSession {
        session,
        reader: "Alcor Micro AU9540 00 00".into(),
        applet: Some("1.8".into()),
        authentic: Some(true),
        chip: Some(ChipResult::Genuine),
        outcome: ReadOutcome::Ok,
    }
}

fn advice(session: Uuid, decision: Decision) -> AdviceAsked {
    AdviceAsked {
        session,
        use_case: "uitpas-kansentarief".into(),
        decision,
        reason: (decision == Decision::Unknown).then(|| "upstream_timeout".into()),
        upstream_reason: None,
        latency: Duration::from_millis(184),
    }
}

fn api_request(session: Option<Uuid>) -> ApiRequest {
    ApiRequest {
        client: Some("balie-pos".into()),
        method: "POST".into(),
        route: "/v1/sessions/{session}/advice".into(),
        status: 200,
        session,
    }
}

/// `n` records of every type, in the order a counter produces them.
fn fill(log: &AuditLog, n: usize) {
    for i in 0..n {
        let session = Uuid::new_v4();
        match i % 4 {
            0 => log
                .agent_started(&AgentStarted::this_process(Some("balie-3".into())))
                .unwrap(),
            1 => log.card_session(&card_session(session)).unwrap(),
            2 => log
                .advice(&advice(session, Decision::Eligible), CITIZEN)
                .unwrap(),
            _ => log.api_request(&api_request(Some(session))).unwrap(),
        };
    }
}

/// One citizen at the counter: the card read, the advice, the POS looking at the session.
fn visit(log: &AuditLog, decision: Decision) {
    let session = Uuid::new_v4();
    log.card_session(&card_session(session)).unwrap();
    log.advice(&advice(session, decision), CITIZEN).unwrap();
    log.api_request(&api_request(Some(session))).unwrap();
}

/// A sealed morning at a counter (epochs of 15 minutes from 08:00), the agent still running
/// at 09:14: seq 0 start seal (epoch 0), 1 agent_started, 2-4 a visit at 08:05, 5 epoch seal
/// (0), 6-8 a visit at 08:20, 9 epoch seal (1), 10-12 a visit at 08:50, 13 the idle
/// timer's epoch seal (3) at 09:10, 14-16 a visit at 09:14.
fn morning(fixture: &Fixture) -> AuditLog {
    fixture.at(8, 1);
    let log = fixture.open();
    log.agent_started(&AgentStarted::this_process(Some("balie-3".into())))
        .unwrap();
    fixture.at(8, 5);
    visit(&log, Decision::Eligible);
    fixture.at(8, 20);
    visit(&log, Decision::NotEligible);
    fixture.at(8, 50);
    visit(&log, Decision::Eligible);
    fixture.at(9, 10);
    assert!(log.seal_due().unwrap().is_some());
    assert!(log.seal_due().unwrap().is_none(), "one seal per epoch");
    fixture.at(9, 14);
    visit(&log, Decision::Unknown);
    log
}

/// [`morning`], then the agent stops at 09:20: seq 17 epoch seal (4), 18 stop seal (5).
fn working_day(fixture: &Fixture) {
    let log = morning(fixture);
    fixture.at(9, 20);
    let stop = log.close().unwrap().unwrap();
    assert_eq!(stop.seq, 18);
}

/// The lines of a log, each with its newline.
fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    fs::write(path, lines.concat()).unwrap();
}

fn problem(report: &VerifyReport) -> (Option<u64>, Problem) {
    let finding = report.problem.clone().expect("a problem");
    (finding.seq, finding.problem)
}

// ---- a sound chain ----

#[test]
fn audit_log_is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<AuditLog>();
}

#[test]
fn a_chain_of_records_verifies_and_a_restart_continues_it() {
    let fixture = Fixture::new();
    let log = fixture.open();
    fill(&log, 9);
    assert_eq!(log.head().unwrap().seq, 8);
    drop(log);

    let report = fixture.verify();
    assert_eq!(report.verdict(), Verdict::Intact, "{report}");
    assert_eq!(report.records, 9);
    assert_eq!(report.head, HeadStatus::Matches);

    let log = fixture.open();
    assert_eq!(log.head(), report.last);
    let next = log
        .agent_started(&AgentStarted::this_process(None))
        .unwrap();
    assert_eq!(next.seq, 9);
    let report = fixture.verify();
    assert_eq!(report.verdict(), Verdict::Intact, "{report}");
    assert_eq!(report.records, 10);
    assert_eq!(report.last, Some(next));
}

#[test]
fn an_empty_log_verifies_and_a_missing_one_is_an_error() {
    let fixture = Fixture::new();
    drop(fixture.open());
    let report = fixture.verify();
    assert_eq!(report.verdict(), Verdict::Intact);
    assert_eq!(report.head, HeadStatus::NotNeeded);
    assert!(matches!(
        verify(fixture.log.with_extension("nope")),
        Err(AuditError::Io { .. })
    ));
}

/// The documented format, re-implemented from the module documentation with SHA-256 and a
/// JSON parser only: what an external auditor would write.
#[test]
fn an_auditor_can_check_the_chain_from_the_documentation() {
    let fixture = Fixture::new();
    let log = fixture.open();
    fill(&log, 8);
    let text = String::from_utf8(fixture.bytes()).unwrap();
    let mut prev = "0".repeat(64);
    for (seq, line) in text.lines().enumerate() {
        let (hashed, suffix) = line.split_at(line.len() - 75);
        assert!(suffix.starts_with(",\"hash\":\"") && suffix.ends_with("\"}"));
        let stated = &suffix[9..73];
        let digest = ring::digest::digest(&ring::digest::SHA256, hashed.as_bytes());
        assert_eq!(record::hex(digest.as_ref()), stated);
        assert!(hashed.ends_with(&format!(",\"prev\":\"{prev}\"")));
        assert!(line.starts_with(&format!("{{\"seq\":{seq},\"at\":\"")));

        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["seq"], seq);
        assert_eq!(value["prev"], prev.as_str());
        assert!(value["at"].as_str().unwrap().ends_with('Z'));
        let kind = value["type"].as_str().unwrap();
        let type_at = line.find("\"type\"").unwrap();
        assert!(type_at < line.find("\"prev\"").unwrap());
        match kind {
            "agent_started" => assert!(value["version"].is_string() && value["pid"].is_u64()),
            "card_session" => {
                assert_eq!(value["applet"], "1.8");
                assert_eq!(value["authentic"], true);
                assert_eq!(value["chip"], "genuine");
                assert_eq!(value["outcome"], "ok");
            }
            "advice" => {
                assert_eq!(value["use_case"], "uitpas-kansentarief");
                assert_eq!(value["decision"], "eligible");
                assert_eq!(value["latency_ms"], 184);
                assert_eq!(value["pseudonym"].as_str().unwrap().len(), 64);
            }
            "api_request" => {
                assert_eq!(value["route"], "/v1/sessions/{session}/advice");
                assert_eq!(value["status"], 200);
            }
            other => panic!("unexpected type {other}"),
        }
        prev = stated.to_owned();
    }
    let head: serde_json::Value =
        serde_json::from_slice(&fs::read(fixture.head()).unwrap()).unwrap();
    assert_eq!(head["seq"], 7);
    assert_eq!(head["hash"], prev.as_str());
}

#[test]
fn a_failed_read_is_recorded_with_its_error_code() {
    let fixture = Fixture::new();
    let log = fixture.open();
    let failed = CardSession {
        applet: None,
        authentic: None,
        chip: None,
        outcome: ReadOutcome::Error("card_removed".into()),
        ..card_session(Uuid::new_v4())
    };
    log.card_session(&failed).unwrap();
    let text = String::from_utf8(fixture.bytes()).unwrap();
    assert!(
        text.contains(r#""outcome":{"error":"card_removed"}"#),
        "{text}"
    );
    assert!(!text.contains("applet"));
    assert_eq!(fixture.verify().verdict(), Verdict::Intact);
}

// ---- edits, deletions, reordering, truncation ----

/// A log of 12 records and its head file, built once.
fn template() -> &'static (Vec<u8>, Vec<u8>) {
    static TEMPLATE: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let fixture = Fixture::new();
        let log = fixture.open();
        fill(&log, 12);
        (fixture.bytes(), fs::read(fixture.head()).unwrap())
    })
}

proptest! {
    #[test]
    fn editing_any_byte_of_any_record_is_detected(position in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let (log, head) = template();
        let at = position.index(log.len());
        let mut edited = log.clone();
        edited[at] ^= xor;
        let report = verify_bytes_with_head(&edited, Some(head));
        prop_assert_eq!(report.verdict(), Verdict::Broken, "byte {} ^ {}: {}", at, xor, report);
        // The first bad seq named is at or before the record that holds the byte.
        let record = log[..at].iter().filter(|&&b| b == b'\n').count() as u64;
        let seq = report.problem.as_ref().and_then(|finding| finding.seq);
        prop_assert!(seq.is_some_and(|seq| seq <= record), "byte {} in record {}: {}", at, record, report);
    }

    #[test]
    fn verify_never_panics_on_garbage(log in prop::collection::vec(any::<u8>(), 0..2048), head in prop::option::of(prop::collection::vec(any::<u8>(), 0..128))) {
        let _ = verify_bytes_with_head(&log, head.as_deref());
    }

    #[test]
    fn verify_never_panics_on_spliced_records(cut in any::<prop::sample::Index>(), len in 0usize..400, insert in prop::collection::vec(any::<u8>(), 0..64)) {
        let (log, head) = template();
        let at = cut.index(log.len());
        let end = (at + len).min(log.len());
        let mut spliced = log[..at].to_vec();
        spliced.extend_from_slice(&insert);
        spliced.extend_from_slice(&log[end..]);
        let report = verify_bytes_with_head(&spliced, Some(head));
        if spliced != *log {
            prop_assert_ne!(report.verdict(), Verdict::Intact, "{}", report);
        }
    }
}

/// Every position, not a sample: flip its low bit, or make it a newline.
#[test]
fn every_single_byte_edit_is_detected() {
    let (log, head) = template();
    for at in 0..log.len() {
        for replace in [log[at] ^ 0x01, b'\n'] {
            if replace == log[at] {
                continue;
            }
            let mut edited = log.clone();
            edited[at] = replace;
            let report = verify_bytes_with_head(&edited, Some(head));
            assert_eq!(report.verdict(), Verdict::Broken, "byte {at}: {report}");
        }
    }
}

#[test]
fn editing_a_record_and_recomputing_its_hash_is_detected_at_the_next_link() {
    let (log, head) = template();
    let mut lines = lines(log);
    let line = String::from_utf8(lines[2].clone()).unwrap();
    let edited = line.replace("\"eligible\"", "\"not_eligible\"");
    assert_ne!(line, edited);
    let hashed = &edited[..edited.len() - 76];
    let rehashed = format!(
        "{hashed},\"hash\":\"{}\"}}\n",
        Sha256::of(hashed.as_bytes())
    );
    lines[2] = rehashed.into_bytes();
    let report = verify_bytes_with_head(&lines.concat(), Some(head));
    assert_eq!(problem(&report), (Some(2), Problem::Rehashed), "{report}");
    assert_eq!(report.records, 3);
}

#[test]
fn deleting_a_middle_record_is_detected() {
    let (log, head) = template();
    let mut lines = lines(log);
    lines.remove(5);
    let report = verify_bytes_with_head(&lines.concat(), Some(head));
    assert_eq!(
        problem(&report),
        (Some(5), Problem::Deleted { missing: 1 }),
        "{report}"
    );
    assert_eq!(report.records, 5);
    assert_eq!(report.problem.unwrap().line, Some(6));
}

#[test]
fn deleting_the_first_records_is_detected() {
    let (log, head) = template();
    let lines = lines(log);
    let report = verify_bytes_with_head(&lines[2..].concat(), Some(head));
    assert_eq!(
        problem(&report),
        (Some(0), Problem::Deleted { missing: 2 }),
        "{report}"
    );
}

#[test]
fn reordering_two_records_is_detected() {
    let (log, head) = template();
    for first in [3, 10] {
        let mut lines = lines(log);
        lines.swap(first, first + 1);
        let report = verify_bytes_with_head(&lines.concat(), Some(head));
        assert_eq!(
            problem(&report),
            (
                Some(first as u64),
                Problem::Reordered {
                    found: first as u64 + 1
                }
            ),
            "{report}"
        );
    }
}

#[test]
fn a_duplicated_record_is_detected() {
    let (log, head) = template();
    let mut lines = lines(log);
    let copy = lines[4].clone();
    lines.insert(5, copy);
    let report = verify_bytes_with_head(&lines.concat(), Some(head));
    assert_eq!(
        problem(&report),
        (Some(5), Problem::Reordered { found: 4 }),
        "{report}"
    );
}

#[test]
fn truncating_the_last_records_is_detected_with_the_head_file() {
    let (log, head) = template();
    let lines = lines(log);
    for keep in [11, 9, 0] {
        let report = verify_bytes_with_head(&lines[..keep].concat(), Some(head));
        let last_seq = keep.checked_sub(1).map(|seq| seq as u64);
        assert_eq!(
            problem(&report),
            (
                Some(keep as u64),
                Problem::Truncated {
                    head_seq: 11,
                    last_seq
                }
            ),
            "{report}"
        );
        assert_eq!(report.records, keep as u64);
    }
    // Cut inside the last record: the rest of it is a partial line, and still a truncation.
    let cut = &log[..log.len() - 10];
    let report = verify_bytes_with_head(cut, Some(head));
    assert!(matches!(
        report.problem.as_ref().map(|f| &f.problem),
        Some(Problem::Truncated {
            head_seq: 11,
            last_seq: Some(10)
        })
    ));
    assert!(report.partial_tail.is_some());
}

#[test]
fn a_restart_refuses_a_truncated_log_and_leaves_it_as_evidence() {
    let fixture = Fixture::new();
    fill(&fixture.open(), 6);
    let lines = lines(&fixture.bytes());
    write_lines(&fixture.log, &lines[..4]);
    let before = (fixture.bytes(), fs::read(fixture.head()).unwrap());

    let refused = AuditLog::open(&fixture.log, &fixture.secret);
    assert!(matches!(
        refused,
        Err(AuditError::Inconsistent {
            problem: Inconsistency::Truncated { .. },
            ..
        })
    ));
    assert_eq!((fixture.bytes(), fs::read(fixture.head()).unwrap()), before);
    assert!(matches!(
        fixture.verify().problem.map(|f| f.problem),
        Some(Problem::Truncated {
            head_seq: 5,
            last_seq: Some(3)
        })
    ));
}

#[test]
fn a_missing_head_file_is_detected_and_refused() {
    let fixture = Fixture::new();
    fill(&fixture.open(), 3);
    fs::remove_file(fixture.head()).unwrap();
    assert_eq!(problem(&fixture.verify()), (None, Problem::HeadMissing));
    assert!(matches!(
        AuditLog::open(&fixture.log, &fixture.secret),
        Err(AuditError::Inconsistent {
            problem: Inconsistency::HeadMissing { .. },
            ..
        })
    ));
}

#[test]
fn an_edited_or_foreign_head_file_is_detected() {
    let (log, head) = template();
    let report = verify_bytes_with_head(log, Some(b"{\"seq\":11}"));
    assert_eq!(problem(&report), (None, Problem::HeadMalformed));

    let foreign = format!("{{\"seq\":11,\"hash\":\"{}\"}}\n", Sha256::of(b"elsewhere"));
    let report = verify_bytes_with_head(log, Some(foreign.as_bytes()));
    assert_eq!(
        problem(&report),
        (Some(11), Problem::HeadMismatch { head_seq: 11 })
    );

    // A head two records behind: no crash leaves that.
    let lines = lines(log);
    let hash_9 = String::from_utf8(lines[9].clone()).unwrap();
    let hash_9 = &hash_9[hash_9.len() - 67..hash_9.len() - 3];
    let stale = format!("{{\"seq\":9,\"hash\":\"{hash_9}\"}}\n");
    let report = verify_bytes_with_head(log, Some(stale.as_bytes()));
    assert_eq!(
        problem(&report),
        (
            None,
            Problem::HeadStale {
                head_seq: 9,
                last_seq: 11
            }
        )
    );
    assert_eq!(
        verify_bytes_with_head(log, Some(head)).verdict(),
        Verdict::Intact
    );
}

// ---- crashes ----

/// A crash after the record's sync, before the head's rename: the head lags by one.
#[test]
fn a_head_lagging_by_one_record_is_a_crash_and_the_restart_repairs_it() {
    let fixture = Fixture::new();
    let log = fixture.open();
    fill(&log, 4);
    let old_head = fs::read(fixture.head()).unwrap();
    fill(&log, 1);
    drop(log);
    fs::write(fixture.head(), &old_head).unwrap();

    let report = fixture.verify();
    assert_eq!(report.verdict(), Verdict::Intact, "{report}");
    assert_eq!(report.head, HeadStatus::LagsByOne);

    let log = fixture.open();
    assert_eq!(fixture.verify().head, HeadStatus::Matches);
    fill(&log, 2);
    let report = fixture.verify();
    assert_eq!((report.verdict(), report.records), (Verdict::Intact, 7));
}

/// The bytes of the record the log at `fixture` would write next (a copy appends it).
fn next_line(fixture: &Fixture) -> Vec<u8> {
    let copy = Fixture::new();
    fs::copy(&fixture.log, &copy.log).unwrap();
    fs::copy(fixture.head(), copy.head()).unwrap();
    fs::copy(&fixture.secret, &copy.secret).unwrap();
    let before = copy.bytes().len();
    copy.open()
        .advice(&advice(Uuid::new_v4(), Decision::NotEligible), CITIZEN)
        .unwrap();
    copy.bytes()[before..].to_vec()
}

#[test]
fn a_partial_last_line_verifies_up_to_the_last_whole_record_and_the_log_goes_on() {
    let fixture = Fixture::new();
    fill(&fixture.open(), 5);
    let line = next_line(&fixture);
    let offset = fixture.bytes().len() as u64;
    let partial = &line[..line.len() / 2];
    fixture.append_raw(partial);

    let report = fixture.verify();
    assert_eq!(report.verdict(), Verdict::IntactUpToPartialTail, "{report}");
    assert_eq!(report.records, 5);
    assert_eq!(
        report.partial_tail,
        Some(Fragment {
            offset,
            length: partial.len() as u64
        })
    );

    let log = fixture.open();
    assert_eq!(log.head().map(|h| h.seq), Some(5), "the seal is record 5");
    fill(&log, 2);
    drop(log);
    let bytes = fixture.bytes();
    assert_eq!(
        &bytes[offset as usize..][..partial.len()],
        partial,
        "debris kept"
    );
    let report = fixture.verify();
    assert_eq!(report.verdict(), Verdict::Intact, "{report}");
    assert_eq!(report.records, 8);
    assert_eq!(
        report.recovered,
        vec![Fragment {
            offset,
            length: partial.len() as u64
        }]
    );
    let seal = &lines(&bytes)[6];
    assert!(seal.starts_with(b"{\"seq\":5,"));
    assert!(String::from_utf8_lossy(seal).contains("\"type\":\"recovered_tail\""));

    // Editing the sealed debris is detected.
    let mut edited = bytes.clone();
    edited[offset as usize + 3] ^= 0x01;
    let head = fs::read(fixture.head()).unwrap();
    assert_eq!(
        verify_bytes_with_head(&edited, Some(&head)).verdict(),
        Verdict::Broken
    );
}

#[test]
fn a_record_that_lost_only_its_newline_is_completed() {
    let fixture = Fixture::new();
    fill(&fixture.open(), 3);
    let line = next_line(&fixture);
    fixture.append_raw(&line[..line.len() - 1]);
    let log = fixture.open();
    assert_eq!(log.head().map(|h| h.seq), Some(3));
    drop(log);
    let report = fixture.verify();
    assert_eq!(report.verdict(), Verdict::Intact, "{report}");
    assert_eq!((report.records, report.recovered.len()), (4, 0));
    assert_eq!(report.head, HeadStatus::Matches);
}

/// A crash, then a second crash while the restart wrote the seal.
#[test]
fn a_crash_during_recovery_is_sealed_as_a_whole_on_the_next_start() {
    let fixture = Fixture::new();
    fill(&fixture.open(), 3);
    let offset = fixture.bytes().len() as u64;
    let debris = b"{\"seq\":3,\"at\":\"2025-\n{\"seq\":3,\"at\":\"20";
    fixture.append_raw(debris);
    let log = fixture.open();
    fill(&log, 1);
    drop(log);
    let report = fixture.verify();
    assert_eq!(report.verdict(), Verdict::Intact, "{report}");
    assert_eq!(
        report.recovered,
        vec![Fragment {
            offset,
            length: debris.len() as u64
        }]
    );
    assert_eq!(report.records, 5);
}

#[test]
fn a_crash_during_the_very_first_record_is_sealed() {
    let fixture = Fixture::new();
    fs::write(&fixture.log, b"{\"seq\":0,\"at\":\"2025-03-01T").unwrap();
    assert_eq!(fixture.verify().verdict(), Verdict::IntactUpToPartialTail);
    fill(&fixture.open(), 1);
    let report = fixture.verify();
    assert_eq!(report.verdict(), Verdict::Intact, "{report}");
    assert_eq!((report.records, report.recovered.len()), (2, 1));
}

#[test]
fn more_debris_than_a_crash_leaves_is_refused() {
    let fixture = Fixture::new();
    fill(&fixture.open(), 2);
    fixture.append_raw(&vec![b'x'; MAX_RECOVERED]);
    let report = fixture.verify();
    assert_eq!(
        report.verdict(),
        Verdict::IntactUpToPartialTail,
        "as much as a crash may leave: {report}"
    );
    assert!(report.is_intact());
    fixture.append_raw(b"x");
    assert!(matches!(
        AuditLog::open(&fixture.log, &fixture.secret),
        Err(AuditError::Inconsistent {
            problem: Inconsistency::DamagedTail { .. },
            ..
        })
    ));
    let report = fixture.verify();
    assert_eq!(report.verdict(), Verdict::Broken);
    assert!(!report.is_intact());
}

/// A record missing, and the next one there twice: the gap is a deletion (the duplicate
/// after it is no sign of reordering).
#[test]
fn a_gap_followed_by_a_duplicate_is_a_deletion() {
    let (log, head) = template();
    let mut lines = lines(log);
    lines.remove(3);
    lines.insert(4, lines[3].clone());
    let report = verify_bytes_with_head(&lines.concat(), Some(head));
    assert_eq!(problem(&report), (Some(3), Problem::Deleted { missing: 1 }));
}

#[test]
fn a_garbage_line_in_the_middle_is_not_taken_for_debris() {
    let (log, head) = template();
    let mut lines = lines(log);
    lines.insert(4, b"not a record\n".to_vec());
    let report = verify_bytes_with_head(&lines.concat(), Some(head));
    assert!(matches!(
        problem(&report),
        (Some(4), Problem::Malformed { .. })
    ));
}

/// Two records, then `bytes` appended behind the running agent's back, then one more record
/// (which makes the agent seal them as foreign). Returns the log and where the bytes start.
fn foreign_bytes_while_running(bytes: &[u8]) -> (Fixture, u64) {
    let fixture = Fixture::new();
    let log = fixture.open();
    fill(&log, 2);
    let offset = fixture.bytes().len() as u64;
    fixture.append_raw(bytes);
    fill(&log, 1);
    (fixture, offset)
}

/// Someone appends to the file while the agent runs: the agent notices the length, keeps
/// the bytes where they are, names them in a `foreign_bytes` record before its next record,
/// and `verify` reports them: a crash never leaves bytes while the agent runs.
#[test]
fn bytes_written_behind_the_agents_back_are_sealed_and_reported() {
    let (fixture, offset) = foreign_bytes_while_running(b"injected");
    let report = fixture.verify();
    assert_eq!(report.verdict(), Verdict::Broken, "{report}");
    assert_eq!((report.records, report.recovered.len()), (4, 0));
    assert!(report.problem.is_none(), "the chain itself holds: {report}");
    let kinds: Vec<_> = report.findings.iter().map(|f| &f.problem).collect();
    assert_eq!(kinds, [&Problem::ForeignBytes { offset, length: 8 }]);
    // The finding points at the agent's foreign_bytes record: line 4, after the two
    // records, the injected bytes and the newline the agent added to them.
    let found = &report.findings[0];
    assert_eq!(
        (found.seq, found.line, found.offset),
        (Some(2), Some(4), Some(offset + 9))
    );
}

/// The foreign_bytes record must follow the bytes it seals at once: a line slipped in
/// between is neither sealed nor hidden.
#[test]
fn a_line_slipped_between_foreign_bytes_and_their_seal_is_reported() {
    let (fixture, _) = foreign_bytes_while_running(b"injected");
    let mut lines = lines(&fixture.bytes());
    assert_eq!(lines[2], b"injected\n");
    lines.insert(3, b"slipped in\n".to_vec());
    let report = verify_bytes_with_head(&lines.concat(), None);
    assert_eq!(report.verdict(), Verdict::Broken, "{report}");
    let problem = report
        .problem
        .as_ref()
        .expect("the chain breaks at the bytes");
    assert_eq!((problem.seq, problem.line), (Some(2), Some(3)), "{report}");
}

/// Foreign bytes up to the limit (16 MiB), without a newline of their own, are sealed:
/// the seal then starts one byte past the limit.
#[test]
fn foreign_bytes_of_the_largest_size_are_sealed() {
    let (fixture, offset) = foreign_bytes_while_running(&vec![b'x'; MAX_FOREIGN]);
    let report = fixture.verify();
    assert!(report.problem.is_none(), "{report}");
    let length = MAX_FOREIGN as u64;
    assert_eq!(
        report
            .findings
            .iter()
            .map(|f| &f.problem)
            .collect::<Vec<_>>(),
        [&Problem::ForeignBytes { offset, length }]
    );
}

#[test]
fn a_record_over_the_limit_is_refused_and_the_log_is_unchanged() {
    let fixture = Fixture::new();
    let log = fixture.open();
    fill(&log, 1);
    let before = fixture.bytes();
    let huge = ApiRequest {
        route: "x".repeat(MAX_LINE),
        ..api_request(None)
    };
    assert!(matches!(
        log.api_request(&huge),
        Err(AuditError::RecordTooLarge { .. })
    ));
    assert_eq!(fixture.bytes(), before);
    fill(&log, 1);
    assert_eq!(fixture.verify().records, 2);
}

/// The head file cannot be replaced (here: its temporary path is a directory). The record
/// is durable and reported written; the next append first retries the head and, failing,
/// writes nothing, so the head never lags by two records.
#[test]
fn a_failing_head_update_never_lets_the_head_lag_by_two() {
    let fixture = Fixture::new();
    let log = fixture.open();
    fill(&log, 2);
    let blocker = super::head::head_tmp_path(&fixture.log);
    fs::create_dir(&blocker).unwrap();
    fill(&log, 1);
    assert_eq!(fixture.verify().head, HeadStatus::LagsByOne);
    let before = fixture.bytes();
    assert!(matches!(
        log.api_request(&api_request(None)),
        Err(AuditError::Io { .. })
    ));
    assert_eq!(fixture.bytes(), before);
    fs::remove_dir(&blocker).unwrap();
    fill(&log, 1);
    let report = fixture.verify();
    assert_eq!((report.verdict(), report.records), (Verdict::Intact, 4));
    assert_eq!(report.head, HeadStatus::Matches);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Whatever the log file holds, `open` either refuses it or continues a chain that
    /// verifies.
    #[test]
    fn open_never_panics_and_what_it_accepts_verifies(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let fixture = Fixture::new();
        fs::write(&fixture.log, &bytes).unwrap();
        if let Ok(log) = AuditLog::open(&fixture.log, &fixture.secret) {
            fill(&log, 1);
            let report = fixture.verify();
            prop_assert_eq!(report.verdict(), Verdict::Intact, "{}", report);
        }
    }
}

// ---- the secret and pseudonyms ----

#[test]
fn the_secret_is_created_0600_and_reused() {
    let fixture = Fixture::new();
    let first = fixture.open();
    let mode = fs::metadata(&fixture.secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let secret = fs::read(&fixture.secret).unwrap();
    assert_eq!(secret.len(), 32);
    let pseudonym = first.pseudonym(CITIZEN);
    drop(first);

    let again = fixture.open();
    fill(&again, 1);
    assert_eq!(fs::read(&fixture.secret).unwrap(), secret);
    assert_eq!(again.pseudonym(CITIZEN), pseudonym);
    for private in [&fixture.log, &fixture.head()] {
        let mode = fs::metadata(private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", private.display());
    }
    fixture.assert_no_temporary_files();
}

#[test]
fn a_bad_secret_file_is_refused() {
    let fixture = Fixture::new();
    fs::write(&fixture.secret, [7u8; 32]).unwrap();
    fs::set_permissions(&fixture.secret, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        AuditLog::open(&fixture.log, &fixture.secret),
        Err(AuditError::SecretPermissions { mode: 0o644, .. })
    ));
    fs::set_permissions(&fixture.secret, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&fixture.secret, [7u8; 16]).unwrap();
    assert!(matches!(
        AuditLog::open(&fixture.log, &fixture.secret),
        Err(AuditError::SecretLength { len: 16, .. })
    ));
}

#[test]
fn pseudonyms_correlate_a_citizen_without_writing_the_national_number() {
    let fixture = Fixture::new();
    let log = fixture.open();
    let mine = log.pseudonym(CITIZEN);
    assert_eq!(log.pseudonym(CITIZEN), mine);
    assert_ne!(log.pseudonym(OTHER_CITIZEN), mine);

    let secret = fs::read(&fixture.secret).unwrap();
    let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
    let expected = record::hex(hmac::sign(&key, CITIZEN.as_bytes()).as_ref());
    assert_eq!(mine.as_str(), expected);

    let session = Uuid::new_v4();
    log.advice(&advice(session, Decision::Eligible), CITIZEN)
        .unwrap();
    log.advice(&advice(session, Decision::Unknown), CITIZEN)
        .unwrap();
    log.advice(
        &advice(Uuid::new_v4(), Decision::NotEligible),
        OTHER_CITIZEN,
    )
    .unwrap();
    let text = String::from_utf8(fixture.bytes()).unwrap();
    assert!(!text.contains(CITIZEN) && !text.contains(OTHER_CITIZEN));
    assert!(!text.contains(&CITIZEN[..9]) && !text.contains(&OTHER_CITIZEN[..9]));
    assert_eq!(text.matches(mine.as_str()).count(), 2);
    assert_eq!(
        text.matches(log.pseudonym(OTHER_CITIZEN).as_str()).count(),
        1
    );
    assert!(text.contains(r#""reason":"upstream_timeout""#));
    // Another agent's secret gives other pseudonyms.
    let elsewhere = Fixture::new();
    assert_ne!(elsewhere.open().pseudonym(CITIZEN), mine);
}

// ---- threads and cost ----

#[test]
fn concurrent_appends_form_one_chain() {
    let fixture = Fixture::new();
    let log = Arc::new(fixture.open());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || fill(&log, 25))
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let report = fixture.verify();
    assert_eq!((report.verdict(), report.records), (Verdict::Intact, 100));
}
