//! The threat model of `docs/audit.md`, one test per row: what an intruder with the agent's
//! user does to the files, and what `verify` reports with the verification key alone, with
//! the journal's anchors alone, and (where it matters) with neither.
//!
//! The day is [`working_day`]: sealed from 08:00 in epochs of 15 minutes, the agent stopped
//! at 09:20 with its key at epoch 5. The intruder comes at 10:00 and reads that key.

use super::*;
use crate::audit::files::parent;
use crate::audit::seal_state::{SealPoint, Sealer};

/// With neither key nor anchors the attacks below pass the chain checks: `verify` says so
/// rather than calling the log proven.
fn assert_unproven(report: &VerifyReport) {
    assert!(
        matches!(report.sealing, Sealing::NotVerified { .. }),
        "{report}"
    );
    assert_eq!(report.anchoring, Anchoring::NotChecked);
}

fn finding<'a>(report: &'a VerifyReport, kind: &str) -> &'a Finding {
    let at = kinds(report).iter().position(|k| *k == kind);
    &report.findings[at.unwrap_or_else(|| panic!("no {kind}: {report}"))]
}

fn stopped_day() -> Fixture {
    let fixture = Fixture::sealed();
    working_day(&fixture);
    fixture.at(10, 0);
    fixture
}

/// U1: edit a sealed record, recompute every hash after it and the head file.
#[test]
fn attack_1_an_edited_record_with_every_hash_recomputed_is_detected() {
    let fixture = stopped_day();
    assert_eq!(attacker::edit_and_rehash(&fixture), 3);

    let report = fixture.verify_as(true, false);
    assert_eq!(kinds(&report), ["seal_invalid"], "{report}");
    let found = finding(&report, "seal_invalid");
    assert_eq!(found.seq, Some(5), "the first seal after the edit");
    assert_eq!(
        found.problem,
        Problem::SealInvalid {
            since_seq: 1,
            seals: 5
        }
    );

    let report = fixture.verify_as(false, true);
    assert_eq!(kinds(&report), ["anchor_mismatch"], "{report}");
    assert_eq!(finding(&report, "anchor_mismatch").seq, Some(5));

    let report = fixture.verify();
    assert!(report.is_intact(), "{report}");
    assert_unproven(&report);
}

/// U2: the same, then every seal made again with the key read from the sealing state.
#[test]
fn attack_1_resealed_with_the_stolen_key_is_detected() {
    let fixture = stopped_day();
    let key = attacker::steal_key(&fixture);
    assert_eq!(key.epoch(), 5);
    let mut lines = lines(&fixture.bytes());
    let at = attacker::first(&lines, "advice");
    lines[at] = String::from_utf8(lines[at].clone())
        .unwrap()
        .replace("\"eligible\"", "\"not_eligible\"")
        .into_bytes();
    attacker::rehash_and_reseal(&mut lines, at, &key);
    attacker::write(&fixture, &lines);

    let report = fixture.verify_as(true, false);
    let found = kinds(&report);
    assert_eq!(found[0], "sealed_late", "{report}");
    assert!(found.contains(&"seal_epoch"), "{report}");
    assert_eq!(
        finding(&report, "seal_epoch").problem,
        Problem::SealEpoch {
            expected: 0,
            found: 5
        }
    );
    assert!(
        !found.contains(&"seal_invalid"),
        "the MACs are right: {report}"
    );

    let report = fixture.verify_as(false, true);
    assert_eq!(kinds(&report), ["anchor_mismatch"], "{report}");
}

/// U3: delete records, recompute the hashes after them, rewrite the head file.
#[test]
fn attack_2_deleted_records_with_the_head_rewritten_are_detected() {
    let fixture = stopped_day();
    attacker::delete_and_rehash(&fixture, 2);

    let report = fixture.verify_as(true, false);
    assert_eq!(kinds(&report), ["seal_invalid"], "{report}");
    let report = fixture.verify_as(false, true);
    // The seals moved up to seqs the journal never anchored; the anchor at 5 disagrees.
    assert_eq!(
        kinds(&report),
        ["not_anchored", "anchor_mismatch"],
        "{report}"
    );
    assert_eq!(finding(&report, "not_anchored").seq, Some(3));
    assert_unproven(&fixture.verify());
}

/// U4: cut the log and delete the head file (the chain alone cannot tell when one record is
/// left), or cut it after a seal, or after records following one, and rewrite the head.
#[test]
fn attack_3_a_truncated_log_with_its_head_deleted_is_detected() {
    for (keep, last_seal) in [(1, "08:01"), (10, "08:50"), (12, "08:50")] {
        let fixture = stopped_day();
        attacker::truncate(&fixture, keep);
        if keep > 1 {
            let lines = lines(&fixture.bytes());
            fs::write(fixture.head(), attacker::head_for(&lines)).unwrap();
        }

        let report = fixture.verify_as(true, false);
        assert_eq!(kinds(&report), ["unsealed"], "keep {keep}: {report}");
        let text = report.to_string();
        let sealed_up_to = format!("sealed only up to 2025-03-03T{last_seal}:00Z");
        assert!(text.contains(&sealed_up_to), "{text}");

        let report = fixture.verify_as(false, true);
        assert_eq!(kinds(&report), ["truncated_before_anchor"], "{report}");
        assert_eq!(
            finding(&report, "truncated_before_anchor").seq,
            Some(keep as u64)
        );
        assert!(fixture.verify().is_intact(), "the chain alone cannot tell");
    }
}

/// U5: after a truncation the agent refuses to write on, leaving the evidence as it is; also
/// when the sealing state is deleted too.
#[test]
fn a_restart_refuses_a_truncated_sealed_log() {
    let fixture = stopped_day();
    attacker::truncate(&fixture, 10);
    let before = fixture.bytes();
    assert!(matches!(
        fixture.try_open(),
        Err(AuditError::Inconsistent {
            problem: Inconsistency::SealMissing { seq: 18 },
            ..
        })
    ));
    fs::remove_file(fixture.seal_state()).unwrap();
    assert!(matches!(
        fixture.try_open(),
        Err(AuditError::Inconsistent {
            problem: Inconsistency::SealStateMissing,
            ..
        })
    ));
    assert_eq!(fixture.bytes(), before);
}

/// U6: append a forged advice after the agent's stop seal (and rewrite the head file).
#[test]
fn attack_4_a_forged_advice_appended_after_the_stop_is_detected() {
    let fixture = stopped_day();
    attacker::append_forged_advice(&fixture);

    let report = fixture.verify();
    assert_eq!(kinds(&report), ["after_stop"], "no key needed: {report}");
    assert_eq!(finding(&report, "after_stop").seq, Some(19));
    let report = fixture.verify_as(true, true);
    assert!(kinds(&report).contains(&"after_stop"), "{report}");

    // The agent starting again does not take the forged record for its own.
    fixture.at(10, 5);
    let log = fixture.open();
    log.close().unwrap();
    let report = fixture.audit();
    assert_eq!(kinds(&report), ["foreign_bytes"], "{report}");
    assert_eq!(finding(&report, "foreign_bytes").seq, Some(19));
}

/// U7: append a forged advice while the agent runs.
#[test]
fn attack_4_a_forged_advice_appended_while_the_agent_runs_is_detected() {
    let fixture = Fixture::sealed();
    let log = morning(&fixture);
    attacker::append_forged_advice(&fixture);
    fixture.at(9, 16);
    visit(&log, Decision::Eligible);
    log.close().unwrap();
    let report = fixture.verify();
    assert_eq!(kinds(&report), ["foreign_bytes"], "no key needed: {report}");
    assert_eq!(fixture.audit().findings.len(), 1);
}

/// U7, then the agent crashes before its next seal: the next start walks from the last
/// seal again, meets the forged record (well formed, linked) and the agent's foreign_bytes
/// record that names it, and takes the forged bytes as sealed, not as the chain.
#[test]
fn a_forged_advice_sealed_as_foreign_survives_a_crash_as_foreign() {
    let fixture = Fixture::sealed();
    let log = morning(&fixture);
    attacker::append_forged_advice(&fixture);
    visit(&log, Decision::Eligible);
    drop(log);
    fixture.at(9, 30);
    fixture.open().close().unwrap();
    let report = fixture.audit();
    assert_eq!(kinds(&report), ["foreign_bytes"], "{report}");
    assert_eq!(finding(&report, "foreign_bytes").seq, Some(17));
}

/// U8: with the key read after the stop (the stop seal leaves it at its epoch), forge a
/// whole start-to-stop run dated in that epoch. The seals verify: only the journal, which
/// never saw them, tells.
#[test]
fn forged_seals_made_with_the_stolen_key_are_caught_by_the_anchors() {
    let fixture = stopped_day();
    let key = attacker::steal_key(&fixture);
    let mut lines = lines(&fixture.bytes());
    let template = lines[attacker::first(&lines, "advice")].clone();
    let at = "2025-03-03T09:25:00Z";
    let push_seal = |lines: &mut Vec<Vec<u8>>, reason| {
        let prev = attacker::hash_of(lines.last().unwrap());
        let seq = lines.len() as u64;
        lines.push(attacker::seal_line(&key, seq, at, reason, &prev));
    };
    push_seal(&mut lines, SealReason::Start);
    let forged = attacker::redate(&template, at);
    let forged = attacker::reforge(&forged, 20, &attacker::hash_of(&lines[19]));
    lines.push(forged);
    push_seal(&mut lines, SealReason::Stop);
    attacker::write(&fixture, &lines);

    let report = fixture.verify_as(true, false);
    assert!(report.is_intact(), "the key alone cannot tell: {report}");
    let report = fixture.verify_as(true, true);
    assert_eq!(kinds(&report), ["not_anchored"], "{report}");
    let found = finding(&report, "not_anchored");
    assert_eq!(found.seq, Some(19));
    assert!(matches!(
        found.problem,
        Problem::NotAnchored { seals: 2, .. }
    ));
}

/// U9: replace the sealing state with one whose key the intruder made, pointing at the real
/// last seal so that the agent carries on with it.
#[test]
fn a_replaced_sealing_state_is_detected() {
    let fixture = stopped_day();
    fs::remove_file(fixture.seal_state()).unwrap();
    Sealer::create(
        &fixture.seal_state(),
        fixture.key.as_ref().unwrap().schedule(),
    )
    .unwrap();
    let mut own = Sealer::load(&fixture.seal_state()).unwrap().unwrap();
    let lines = lines(&fixture.bytes());
    own.set_last(SealPoint {
        seq: 18,
        hash: Sha256::from_hex(&attacker::hash_of(&lines[18])).unwrap(),
        end: fixture.bytes().len() as u64,
        epoch: 5,
        reason: SealReason::Stop,
    });
    own.save(&fs::File::open(parent(&fixture.log)).unwrap())
        .unwrap();
    let log = fixture.open();
    visit(&log, Decision::Eligible);
    log.close().unwrap();

    let report = fixture.verify_as(true, false);
    assert_eq!(kinds(&report), ["key_mismatch"], "{report}");
    assert_eq!(finding(&report, "key_mismatch").seq, Some(19));
}

/// U10: delete the log, its head and its sealing state, and let the agent start a new log.
#[test]
fn starting_a_new_log_is_detected() {
    let fixture = stopped_day();
    for file in [fixture.log.clone(), fixture.head(), fixture.seal_state()] {
        fs::remove_file(file).unwrap();
    }
    let log = fixture.open();
    visit(&log, Decision::Eligible);
    drop(log);

    let report = fixture.verify_as(true, false);
    assert_eq!(kinds(&report), ["not_sealed"], "{report}");
    let report = fixture.verify_as(false, true);
    assert_eq!(kinds(&report), ["anchor_mismatch"], "{report}");
    assert_eq!(finding(&report, "anchor_mismatch").seq, Some(0));
}

/// L1, what an intruder can still do: rewrite the records since the last seal (the current
/// epoch, here 09:14) and let the agent seal them with the key it holds. Neither the key
/// nor the journal can tell: the window is one epoch.
#[test]
fn the_current_epoch_is_not_protected() {
    let fixture = Fixture::sealed();
    drop(morning(&fixture));
    let mut lines = lines(&fixture.bytes());
    lines[15] = String::from_utf8(lines[15].clone())
        .unwrap()
        .replace("\"unknown\"", "\"eligible\"")
        .replace(",\"reason\":\"upstream_timeout\"", "")
        .into_bytes();
    attacker::rehash_from(&mut lines, 15);
    attacker::write(&fixture, &lines);
    fixture.at(9, 16);
    fixture.open().close().unwrap();
    let report = fixture.audit();
    assert!(report.is_intact(), "{report}");
}

/// Another local user: every file of the log is the agent's alone (and the state directory
/// is 0700, from the unit's `StateDirectoryMode=`).
#[test]
fn every_file_of_the_log_is_private_to_the_agent() {
    let fixture = stopped_day();
    for file in [
        fixture.log.clone(),
        fixture.head(),
        fixture.secret.clone(),
        fixture.seal_state(),
    ] {
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
}

/// U6 with a seal: an epoch seal made with the stolen key after the stop seal is no
/// restart (only a start seal is), so it is reported as written after the stop.
#[test]
fn an_epoch_seal_forged_after_the_stop_is_no_restart() {
    let fixture = stopped_day();
    let key = attacker::steal_key(&fixture);
    let mut lines = lines(&fixture.bytes());
    let prev = attacker::hash_of(lines.last().unwrap());
    let seq = lines.len() as u64;
    let at = "2025-03-03T09:25:00Z";
    lines.push(attacker::seal_line(&key, seq, at, SealReason::Epoch, &prev));
    attacker::write(&fixture, &lines);

    let report = fixture.verify();
    assert_eq!(kinds(&report), ["after_stop"], "{report}");
    assert_eq!(finding(&report, "after_stop").seq, Some(seq));
}

/// Records after the last seal, dated before the current key's epoch, were written after
/// their own key was erased; one dated at the very start of the current epoch was not.
#[test]
fn unsealed_records_dated_before_the_keys_epoch_were_sealed_late() {
    let redated = |at: &str| {
        let fixture = Fixture::sealed();
        drop(morning(&fixture));
        let mut lines = lines(&fixture.bytes());
        // Seq 14, the first record after the seal of epoch 3, in epoch 4 (09:00-09:15).
        lines[14] = attacker::redate(&lines[14], at);
        attacker::rehash_from(&mut lines, 14);
        attacker::write(&fixture, &lines);
        fixture.verify_as(true, false)
    };
    let report = redated("2025-03-03T08:59:59Z");
    assert_eq!(kinds(&report), ["sealed_late"], "{report}");
    assert_eq!(
        finding(&report, "sealed_late").problem,
        Problem::SealedLate {
            records: 1,
            dated: 3,
            sealed: 4
        }
    );
    let report = redated("2025-03-03T09:00:00Z");
    assert!(report.findings.is_empty(), "{report}");
}
