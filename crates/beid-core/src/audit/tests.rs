//! The audit log as an auditor and a crash see it: real files in a temporary directory.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use proptest::prelude::*;
use ring::hmac;
use uuid::Uuid;

use super::*;

const CITIZEN: &str = "85073003328";
const OTHER_CITIZEN: &str = "90022712345";

struct Fixture {
    _dir: tempfile::TempDir,
    log: PathBuf,
    secret: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            log: dir.path().join("audit.jsonl"),
            secret: dir.path().join("audit.secret"),
            _dir: dir,
        }
    }

    fn open(&self) -> AuditLog {
        AuditLog::open(&self.log, &self.secret).unwrap()
    }

    fn head(&self) -> PathBuf {
        head_path(&self.log)
    }

    fn bytes(&self) -> Vec<u8> {
        fs::read(&self.log).unwrap()
    }

    fn verify(&self) -> VerifyReport {
        verify(&self.log).unwrap()
    }

    fn append_raw(&self, bytes: &[u8]) {
        let mut file = OpenOptions::new().append(true).open(&self.log).unwrap();
        file.write_all(bytes).unwrap();
    }
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
    fixture.append_raw(&vec![b'x'; MAX_RECOVERED + 1]);
    assert!(matches!(
        AuditLog::open(&fixture.log, &fixture.secret),
        Err(AuditError::Inconsistent {
            problem: Inconsistency::DamagedTail { .. },
            ..
        })
    ));
    assert_eq!(fixture.verify().verdict(), Verdict::Broken);
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

/// Someone appends to the file while the agent runs: the agent notices the length and
/// seals the foreign bytes before its next record.
#[test]
fn bytes_written_behind_the_agents_back_are_sealed() {
    let fixture = Fixture::new();
    let log = fixture.open();
    fill(&log, 2);
    fixture.append_raw(b"injected\n");
    fill(&log, 1);
    let report = fixture.verify();
    assert_eq!(report.verdict(), Verdict::Intact, "{report}");
    assert_eq!((report.records, report.recovered.len()), (4, 1));
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
    let leftovers: Vec<_> = fs::read_dir(fixture.log.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
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

// ---- an attacker who can write the state directory (issue 12) ----

/// What someone with write access to the state directory does to the files: rewrites records
/// in the documented format and recomputes every hash after them, so the chain links again.
mod attacker {
    use super::*;

    /// The hash stated at the end of a line (with its newline).
    pub fn hash_of(line: &[u8]) -> String {
        let text = std::str::from_utf8(line).unwrap().trim_end();
        text[text.len() - 66..text.len() - 2].to_owned()
    }

    /// `line` renumbered to `seq`, linked to `prev`, with its own hash recomputed.
    pub fn reforge(line: &[u8], seq: u64, prev: &str) -> Vec<u8> {
        let text = std::str::from_utf8(line).unwrap().trim_end();
        let body = &text[..text.rfind(",\"prev\":\"").unwrap()];
        let after_seq = &body[body.find(",\"at\"").unwrap()..];
        let hashed = format!("{{\"seq\":{seq}{after_seq},\"prev\":\"{prev}\"");
        let hash = Sha256::of(hashed.as_bytes());
        format!("{hashed},\"hash\":\"{hash}\"}}\n").into_bytes()
    }

    /// Renumbers and re-links every line from `from` on, as if nothing had changed before.
    pub fn rehash_from(lines: &mut [Vec<u8>], from: usize) {
        for at in from..lines.len() {
            let prev = match at {
                0 => GENESIS.to_hex(),
                _ => hash_of(&lines[at - 1]),
            };
            lines[at] = reforge(&lines[at], at as u64, &prev);
        }
    }

    /// A head file naming the last line.
    pub fn head_for(lines: &[Vec<u8>]) -> Vec<u8> {
        let last = lines.len() - 1;
        format!(
            "{{\"seq\":{last},\"hash\":\"{}\"}}\n",
            hash_of(&lines[last])
        )
        .into_bytes()
    }

    /// The index of the first line whose type is `kind`.
    pub fn first(lines: &[Vec<u8>], kind: &str) -> usize {
        let needle = format!("\"type\":\"{kind}\"");
        lines
            .iter()
            .position(|line| String::from_utf8_lossy(line).contains(&needle))
            .unwrap()
    }

    /// Attack 1: turns the first `eligible` advice into `not_eligible`, then recomputes every
    /// hash after it and the head file.
    pub fn edit_and_rehash(fixture: &Fixture) {
        let mut lines = lines(&fixture.bytes());
        let at = first(&lines, "advice");
        let edited = String::from_utf8(lines[at].clone())
            .unwrap()
            .replace("\"eligible\"", "\"not_eligible\"");
        lines[at] = edited.into_bytes();
        rehash_from(&mut lines, at);
        write_lines(&fixture.log, &lines);
        fs::write(fixture.head(), head_for(&lines)).unwrap();
    }

    /// Attack 2: deletes `count` records starting with the first advice, renumbers and
    /// re-links the rest, and rewrites the head file.
    pub fn delete_and_rehash(fixture: &Fixture, count: usize) {
        let mut lines = lines(&fixture.bytes());
        let at = first(&lines, "advice");
        lines.drain(at..at + count);
        rehash_from(&mut lines, at);
        write_lines(&fixture.log, &lines);
        fs::write(fixture.head(), head_for(&lines)).unwrap();
    }

    /// Attack 3: keeps the first `keep` records and deletes the head file.
    pub fn truncate(fixture: &Fixture, keep: usize) {
        let lines = lines(&fixture.bytes());
        write_lines(&fixture.log, &lines[..keep]);
        fs::remove_file(fixture.head()).unwrap();
    }

    /// Attack 4: appends a copy of the first advice, linked to the last record, and rewrites
    /// the head file.
    pub fn append_forged_advice(fixture: &Fixture) {
        let mut lines = lines(&fixture.bytes());
        let template = lines[first(&lines, "advice")].clone();
        let seq = lines.len() as u64;
        let forged = reforge(&template, seq, &hash_of(lines.last().unwrap()));
        lines.push(forged);
        write_lines(&fixture.log, &lines);
        fs::write(fixture.head(), head_for(&lines)).unwrap();
    }
}

/// A log an agent wrote over a working day: records, then the agent stopped.
fn written_log() -> Fixture {
    let fixture = Fixture::new();
    let log = fixture.open();
    fill(&log, 12);
    drop(log);
    assert_eq!(fixture.verify().verdict(), Verdict::Intact);
    fixture
}

#[test]
fn attack_1_an_edited_record_with_every_hash_recomputed_is_detected() {
    let fixture = written_log();
    attacker::edit_and_rehash(&fixture);
    let report = fixture.verify();
    assert_eq!(report.verdict(), Verdict::Broken, "{report}");
}

#[test]
fn attack_2_deleted_records_with_the_head_rewritten_are_detected() {
    let fixture = written_log();
    attacker::delete_and_rehash(&fixture, 2);
    let report = fixture.verify();
    assert_eq!(report.verdict(), Verdict::Broken, "{report}");
}

#[test]
fn attack_3_a_truncated_log_with_its_head_deleted_is_detected() {
    let fixture = written_log();
    attacker::truncate(&fixture, 1);
    let report = fixture.verify();
    assert_eq!(report.verdict(), Verdict::Broken, "{report}");
}

#[test]
fn attack_4_a_forged_advice_appended_is_detected() {
    let fixture = written_log();
    attacker::append_forged_advice(&fixture);
    let report = fixture.verify();
    assert_eq!(report.verdict(), Verdict::Broken, "{report}");
}

/// The same forgery while the agent runs: it must not take the forged record as its own
/// and seal it into its chain.
#[test]
fn attack_4_a_forged_advice_appended_while_the_agent_runs_is_detected() {
    let fixture = Fixture::new();
    let log = fixture.open();
    fill(&log, 6);
    attacker::append_forged_advice(&fixture);
    fill(&log, 1);
    drop(log);
    let report = fixture.verify();
    assert_eq!(report.verdict(), Verdict::Broken, "{report}");
}
