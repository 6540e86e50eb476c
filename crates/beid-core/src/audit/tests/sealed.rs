//! A sealed log as the agent writes it, and as crashes and clocks leave it: each must verify
//! with the key and the anchors. A crash is not an attack.

use super::*;
use crate::audit::sealing::KeyWalk;
use crate::audit::{head, verify};

fn seals(fixture: &Fixture) -> Vec<(u64, String, u64)> {
    lines(&fixture.bytes())
        .iter()
        .map(|line| serde_json::from_slice::<serde_json::Value>(line).unwrap())
        .filter(|record| record["type"] == "seal")
        .map(|record| {
            (
                record["seq"].as_u64().unwrap(),
                record["reason"].as_str().unwrap().to_owned(),
                record["epoch"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn assert_intact(report: &VerifyReport) {
    assert_eq!(report.verdict(), Verdict::Intact, "{report}");
    assert!(report.findings.is_empty(), "{report}");
}

#[test]
fn a_sealed_working_day_verifies_with_the_key_and_the_anchors() {
    let fixture = Fixture::sealed();
    working_day(&fixture);
    let expected: Vec<(u64, String, u64)> = [
        (0, "start", 0),
        (5, "epoch", 0),
        (9, "epoch", 1),
        (13, "epoch", 3),
        (17, "epoch", 4),
        (18, "stop", 5),
    ]
    .into_iter()
    .map(|(seq, reason, epoch)| (seq, reason.to_owned(), epoch))
    .collect();
    assert_eq!(seals(&fixture), expected);

    fixture.at(12, 0);
    let report = fixture.audit();
    assert_intact(&report);
    let Sealing::Verified {
        seals, first, last, ..
    } = report.sealing
    else {
        panic!("{report}")
    };
    assert_eq!((seals, first.seq, last.seq), (6, 0, 18));
    assert_eq!(last.reason, SealReason::Stop);
    assert!(matches!(
        report.anchoring,
        Anchoring::Checked { anchors: 6, .. }
    ));
    assert!(report.to_string().contains("the agent stopped cleanly"));

    // Without the key and the journal, verify checks the chain and says what it did not.
    let report = fixture.verify();
    assert_intact(&report);
    assert!(matches!(
        report.sealing,
        Sealing::NotVerified { seals: 6, .. }
    ));
    assert_eq!(report.anchoring, Anchoring::NotChecked);
    let text = report.to_string();
    assert!(
        text.contains("NOT VERIFIED") && text.contains("NOT CHECKED"),
        "{text}"
    );
}

/// The seal format and the key schedule, re-implemented from the module documentation with
/// HMAC-SHA256 and a JSON parser only: what the city's auditor would write.
#[test]
fn an_auditor_can_check_the_seals_from_the_documentation() {
    let fixture = Fixture::sealed();
    working_day(&fixture);
    let text = fixture.key.as_ref().unwrap().expose();
    let parts: Vec<&str> = text.split(':').collect();
    assert_eq!(parts[0], "beid-seal-v1");
    let seed = (0..32)
        .map(|i| u8::from_str_radix(&parts[1][2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<u8>>();
    let (start, length): (i64, i64) = (parts[2].parse().unwrap(), parts[3].parse().unwrap());
    assert_eq!((start, length), (T0.unix_timestamp(), 900));
    let key_id = ring::digest::digest(
        &ring::digest::SHA256,
        &[b"beid-audit-seal-v1 key id".as_slice(), &seed].concat(),
    );
    let key_id = record::hex(&key_id.as_ref()[..8]);

    let first = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &seed),
        b"beid-audit-seal-v1 epoch 0",
    );
    let mut key = first.as_ref().to_vec();
    let mut epoch = 0;
    for line in String::from_utf8(fixture.bytes()).unwrap().lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        if record["type"] != "seal" {
            continue;
        }
        let seal_epoch = record["epoch"].as_u64().unwrap();
        while epoch < seal_epoch {
            let next = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), b"evolve");
            key = next.as_ref().to_vec();
            epoch += 1;
        }
        assert_eq!(record["key_id"], key_id.as_str());
        let message = format!(
            "beid-audit-seal-v1\n{}\n{}\n{}\n{}\n{}\n{}",
            record["seq"],
            record["at"].as_str().unwrap(),
            record["reason"].as_str().unwrap(),
            seal_epoch,
            key_id,
            record["prev"].as_str().unwrap()
        );
        let mac = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), message.as_bytes());
        assert_eq!(record["mac"], record::hex(mac.as_ref()).as_str(), "{line}");
    }
    assert_eq!(epoch, 5);
}

/// The sealing state holds only the current key: none of the keys before it is on disk.
#[test]
fn the_sealing_state_holds_only_the_current_key() {
    let fixture = Fixture::sealed();
    let mode = fs::metadata(fixture.seal_state())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    working_day(&fixture);
    let state = fs::read_to_string(fixture.seal_state()).unwrap();
    let seed = &fixture.key.as_ref().unwrap().expose()[13..77];
    assert!(
        !state.contains(seed),
        "the verification key is never on the counter"
    );
    let mut keys = KeyWalk::new(fixture.key.as_ref().unwrap());
    for epoch in 0..5 {
        let old = record::hex(keys.at(epoch).unwrap().bytes());
        assert!(
            !state.contains(&old),
            "the key of epoch {epoch} is still there"
        );
    }
    let current = record::hex(keys.at(5).unwrap().bytes());
    assert!(state.contains(&current));
    fixture.assert_no_temporary_files();
}

#[test]
fn a_crash_is_sealed_at_the_next_start_with_the_key_of_its_epoch() {
    let fixture = Fixture::sealed();
    drop(morning(&fixture));
    // Before the agent starts again, the records since 09:10 are not sealed and the seal
    // due at 09:15 is missing: a crash and a truncation look the same until then.
    fixture.at(11, 0);
    let report = fixture.audit();
    assert_eq!(kinds(&report), ["unsealed"], "{report}");
    assert!(report
        .to_string()
        .contains("sealed only up to 2025-03-03T09:10:00Z"));
    assert_eq!(report.unsealed.map(|pending| pending.records), Some(3));

    let log = fixture.open();
    log.agent_started(&AgentStarted::this_process(None))
        .unwrap();
    fixture.at(11, 5);
    visit(&log, Decision::Eligible);
    log.close().unwrap();
    assert_eq!(
        &seals(&fixture)[4..],
        [(17, "start".into(), 4), (22, "stop".into(), 12)]
    );
    fixture.at(12, 0);
    assert_intact(&fixture.audit());
}

/// [`morning`], then at 09:20 `last_seal` writes a seal and the power is cut before the
/// sealing state is replaced (the state still names the seal before it); the agent starts
/// again at 09:40, serves a visit and stops. Returns the seals from the fifth on.
fn crash_before_the_sealing_state_is_replaced(
    last_seal: impl FnOnce(AuditLog),
) -> (Fixture, Vec<(u64, String, u64)>) {
    let fixture = Fixture::sealed();
    let log = morning(&fixture);
    let state_before = fs::read(fixture.seal_state()).unwrap();
    fixture.at(9, 20);
    last_seal(log);
    fs::write(fixture.seal_state(), state_before).unwrap();

    fixture.at(9, 40);
    let log = fixture.open();
    visit(&log, Decision::Eligible);
    log.close().unwrap();
    let seals = seals(&fixture).split_off(4);
    (fixture, seals)
}

/// A power cut after a seal reached the disk but before the sealing state was replaced: the
/// next start finds the newer seal after the one the state names, and catches the key up.
#[test]
fn a_crash_between_a_seal_and_its_sealing_state_is_caught_up() {
    let (fixture, seals) = crash_before_the_sealing_state_is_replaced(|log| {
        log.seal_due().unwrap().unwrap();
    });
    assert_eq!(
        seals,
        [
            (17, "epoch".into(), 4),
            (18, "start".into(), 5),
            (22, "stop".into(), 6)
        ]
    );
    assert_intact(&fixture.audit());
}

/// The same power cut after a clean stop: the next start finds the stop seal after the one
/// the state names, and takes the log as ending exactly there (no byte after it is
/// foreign).
#[test]
fn a_crash_between_the_stop_seal_and_its_sealing_state_is_caught_up() {
    let (fixture, seals) = crash_before_the_sealing_state_is_replaced(|log| {
        log.close().unwrap();
    });
    assert_eq!(
        seals,
        [
            (17, "epoch".into(), 4),
            (18, "stop".into(), 5),
            (19, "start".into(), 5),
            (23, "stop".into(), 6)
        ]
    );
    assert_intact(&fixture.audit());
}

/// A running agent's records since its last seal are pending, not a finding, until the
/// epoch they are dated in ends.
#[test]
fn a_running_agents_records_since_the_last_seal_are_pending() {
    let fixture = Fixture::sealed();
    let _running = morning(&fixture);
    let report = fixture.audit();
    assert_intact(&report);
    assert_eq!(
        report.unsealed,
        Some(Pending {
            first_seq: 14,
            records: 3,
            since: T0.replace_time(time::Time::from_hms(9, 14, 0).unwrap()),
        })
    );
}

#[test]
fn a_partial_line_after_the_last_seal_is_sealed_as_crash_debris() {
    let fixture = Fixture::sealed();
    drop(morning(&fixture));
    fixture.append_raw(b"{\"seq\":17,\"at\":\"2025-03-03T09:1");
    fixture.at(9, 30);
    let log = fixture.open();
    log.close().unwrap();
    let report = fixture.audit();
    assert_intact(&report);
    assert_eq!(report.recovered.len(), 1);
}

/// A crash, then a second crash while the restart wrote its seal: the debris holds a
/// newline, and is sealed as a whole.
#[test]
fn a_crash_during_the_restart_of_a_sealed_log_is_sealed_as_a_whole() {
    let fixture = Fixture::sealed();
    drop(morning(&fixture));
    fixture.append_raw(b"{\"seq\":17,\"at\":\"2025-\n{\"seq\":17,\"at\":\"20");
    fixture.at(9, 30);
    fixture.open().close().unwrap();
    let report = fixture.audit();
    assert_intact(&report);
    assert_eq!(report.recovered.len(), 1);
}

/// An edit of a record since the last seal, its hash left as it was, is not crash debris:
/// after a restart the chain still breaks there.
#[test]
fn an_edited_unsealed_record_stays_an_edit_after_a_restart() {
    let fixture = Fixture::sealed();
    drop(morning(&fixture));
    let mut lines = lines(&fixture.bytes());
    lines[15] = String::from_utf8(lines[15].clone())
        .unwrap()
        .replace("\"unknown\"", "\"eligible\"")
        .into_bytes();
    write_lines(&fixture.log, &lines);
    fixture.at(9, 16);
    fixture.open().close().unwrap();
    let report = fixture.audit();
    assert_eq!(problem(&report), (Some(15), Problem::Edited), "{report}");
    assert!(report.recovered.is_empty());
}

#[test]
fn an_idle_agent_seals_every_epoch_and_a_silent_one_is_noticed() {
    let fixture = Fixture::sealed();
    fixture.at(8, 1);
    let log = fixture.open();
    log.agent_started(&AgentStarted::this_process(None))
        .unwrap();
    assert_eq!(log.next_seal_in(), Some(Duration::from_secs(14 * 60)));
    for minute in [16, 31, 46] {
        fixture.at(8, minute);
        assert!(log.seal_due().unwrap().is_some());
    }
    fixture.at(9, 2);
    assert_intact(&fixture.audit());
    // Nobody seals after 08:46: by 09:17 (09:15 and the grace) the seal is overdue.
    fixture.at(9, 18);
    let report = fixture.audit();
    assert_eq!(kinds(&report), ["unsealed"], "{report}");
    drop(log);
}

/// NTP steps the clock back across an epoch boundary: the record is dated at the start of
/// the key's epoch, never before it.
#[test]
fn a_clock_stepping_back_across_an_epoch_boundary_dates_records_in_the_keys_epoch() {
    let fixture = Fixture::sealed();
    fixture.at(8, 1);
    let log = fixture.open();
    fixture.clock.set(T0 + Duration::from_secs(15 * 60 + 2));
    visit(&log, Decision::Eligible);
    fixture.clock.set(T0 + Duration::from_secs(15 * 60 - 3));
    visit(&log, Decision::Eligible);
    log.close().unwrap();
    let text = String::from_utf8(fixture.bytes()).unwrap();
    assert!(text.contains("\"at\":\"2025-03-03T08:15:00Z\""), "{text}");
    assert_intact(&fixture.audit());
}

#[test]
fn nothing_is_written_after_close() {
    let fixture = Fixture::sealed();
    let log = fixture.open();
    log.close().unwrap();
    let before = fixture.bytes();
    assert!(matches!(
        log.agent_started(&AgentStarted::this_process(None)),
        Err(AuditError::Closed)
    ));
    assert_eq!(log.seal_due().unwrap(), None);
    assert_eq!(log.close().unwrap(), None);
    assert_eq!(fixture.bytes(), before);
}

/// A log written before sealing was set up: its records are sealed by the first start seal
/// and reported as written before sealing.
#[test]
fn a_log_written_before_sealing_is_sealed_from_its_next_start() {
    let mut fixture = Fixture::new().with_journal();
    fill(&fixture.open(), 5);
    fixture.at(9, 0);
    fixture.key =
        Some(seal_init(&fixture.log, DEFAULT_EPOCH, T0 + Duration::from_secs(3600)).unwrap());
    let log = fixture.open();
    visit(&log, Decision::Eligible);
    log.close().unwrap();
    let report = fixture.audit();
    assert_intact(&report);
    assert!(matches!(
        report.sealing,
        Sealing::Verified {
            before_sealing: 5,
            ..
        }
    ));
}

#[test]
fn seal_init_refuses_to_seal_twice_or_to_forget_a_sealed_log() {
    let fixture = Fixture::sealed();
    assert!(matches!(
        seal_init(&fixture.log, DEFAULT_EPOCH, T0),
        Err(AuditError::SealStateExists { .. })
    ));
    working_day(&fixture);
    fs::remove_file(fixture.seal_state()).unwrap();
    assert!(matches!(
        seal_init(&fixture.log, DEFAULT_EPOCH, T0),
        Err(AuditError::Inconsistent {
            problem: Inconsistency::SealStateMissing,
            ..
        })
    ));
    assert!(matches!(
        seal_init(&fixture.log, Duration::from_secs(30), T0),
        Err(AuditError::Sealing(_))
    ));
}

#[test]
fn a_sealing_state_open_to_others_is_refused() {
    let fixture = Fixture::sealed();
    fs::set_permissions(fixture.seal_state(), fs::Permissions::from_mode(0o640)).unwrap();
    assert!(matches!(
        fixture.try_open(),
        Err(AuditError::SealStatePermissions { mode: 0o640, .. })
    ));
}

/// An unsealed log still anchors its head in the journal at every start.
#[test]
fn an_unsealed_log_is_anchored_at_every_open() {
    let fixture = Fixture::new().with_journal();
    fill(&fixture.open(), 4);
    fill(&fixture.open(), 4);
    drop(fixture.open());
    let anchors: Vec<u64> = fixture
        .journal
        .anchors()
        .anchors()
        .iter()
        .map(|a| a.seq)
        .collect();
    assert_eq!(anchors, [3, 7]);
    assert_intact(&fixture.verify_as(false, true));
    attacker::edit_and_rehash(&fixture);
    let report = fixture.verify_as(false, true);
    assert_eq!(kinds(&report), ["anchor_mismatch"], "{report}");
}

/// A sealed working day's log, its head file, its verification key and its journal export,
/// built once.
fn sealed_template() -> &'static (Vec<u8>, Vec<u8>, VerificationKey, String) {
    static TEMPLATE: OnceLock<(Vec<u8>, Vec<u8>, VerificationKey, String)> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let fixture = Fixture::sealed();
        working_day(&fixture);
        (
            fixture.bytes(),
            fs::read(fixture.head()).unwrap(),
            fixture.key.clone().unwrap(),
            fixture.journal.export(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any change to a sealed log is reported, and nothing panics, with the key and anchors.
    #[test]
    fn any_change_to_a_sealed_log_is_reported(cut in any::<prop::sample::Index>(), len in 0usize..400, insert in prop::collection::vec(any::<u8>(), 0..64)) {
        let (log, head, key, journal) = sealed_template();
        let at = cut.index(log.len());
        let end = (at + len).min(log.len());
        let mut spliced = log[..at].to_vec();
        spliced.extend_from_slice(&insert);
        spliced.extend_from_slice(&log[end..]);
        let options = VerifyOptions {
            key: Some(key.clone()),
            anchors: Some(Anchors::parse_journal_export(journal, DEFAULT_UNIT).unwrap()),
            as_of: T0 + Duration::from_secs(4 * 3600),
        };
        let report = verify::verify_bytes(&spliced, head::HeadFile::parse(head), &options);
        if spliced == *log {
            prop_assert_eq!(report.verdict(), Verdict::Intact, "{}", report);
        } else {
            prop_assert_ne!(report.verdict(), Verdict::Intact, "{}", report);
        }
    }

    /// Whatever text is given as a journal export or a verification key: an answer, no panic.
    #[test]
    fn journal_exports_and_verification_keys_never_panic(text in "(\\PC|\n){0,300}", json in "\\{(\"[A-Z_]{1,12}\":\"[0-9a-f]{0,70}\",?){0,4}\\}") {
        let _ = Anchors::parse_journal_export(&text, DEFAULT_UNIT);
        let entry = json.replacen('{', "{\"_SYSTEMD_UNIT\":\"beid-agent.service\",", 1);
        let _ = Anchors::parse_journal_export(&entry, DEFAULT_UNIT);
        let _ = text.parse::<VerificationKey>();
    }
}
