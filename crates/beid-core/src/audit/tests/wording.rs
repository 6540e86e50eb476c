//! The words of a verification report, which an auditor reads without the code: each
//! problem and each summary says what was found, with its numbers and times.

use super::*;
use time::macros::datetime;

#[test]
fn an_epoch_seal_out_of_order_says_which_way() {
    let removed = Problem::SealEpoch {
        expected: 3,
        found: 5,
    };
    assert!(
        removed.to_string().starts_with(
            "seal of epoch 5 where epoch 3 was due: the seals of epochs 3 to 4 were removed"
        ),
        "{removed}"
    );
    for (expected, found) in [(5, 3), (4, 4)] {
        let replayed = Problem::SealEpoch { expected, found };
        assert_eq!(
            replayed.to_string(),
            format!(
                "seal of epoch {found} after the key had reached epoch {expected}: a seal \
                 replayed or moved"
            )
        );
    }
}

#[test]
fn an_anchor_time_the_journal_did_not_give_is_called_unknown() {
    let at = datetime!(2025-03-01 10:15:02 UTC);
    let mismatch = |anchored_at| Problem::AnchorMismatch {
        anchored_at,
        anchors: 2,
    };
    assert!(mismatch(None).to_string().starts_with(
        "the journal anchored this seq with another hash at an unknown time (2 anchor(s)"
    ));
    assert!(mismatch(Some(at))
        .to_string()
        .starts_with("the journal anchored this seq with another hash at 2025-03-01T10:15:02Z (2"));
    let truncated = Problem::TruncatedBeforeAnchor {
        anchor_seq: 9,
        anchored_at: None,
        last_seq: Some(7),
    };
    assert!(truncated
        .to_string()
        .starts_with("truncated after seq 7: the journal anchored seq 9 at an unknown time ("));
}

#[test]
fn a_verified_sealing_names_its_span_and_any_records_from_before_it() {
    let seen = |seq, minute: u64, epoch, reason| SealSeen {
        seq,
        at: datetime!(2025-03-01 08:00 UTC) + Duration::from_secs(minute * 60),
        epoch,
        reason,
    };
    let verified = |before_sealing| Sealing::Verified {
        key_id: KeyId([0xab; 8]),
        seals: 3,
        first: seen(2, 0, 0, SealReason::Start),
        last: seen(40, 30, 2, SealReason::Stop),
        before_sealing,
        schedule_start: datetime!(2025-03-01 08:00 UTC),
        epoch_seconds: 900,
    };
    let summary = "3 seal(s) verified under key id abababababababab (epochs of 900 s from \
                   2025-03-01T08:00:00Z); sealed from seq 2 (2025-03-01T08:00:00Z) to seq 40 \
                   (stop seal, 2025-03-01T08:30:00Z); the agent stopped cleanly";
    assert_eq!(verified(0).to_string(), summary);
    assert_eq!(
        verified(2).to_string(),
        format!(
            "{summary}; 2 record(s) before the first seal were written before sealing was set up"
        )
    );
}

#[test]
fn pending_records_say_where_they_start_and_since_when() {
    let pending = Pending {
        first_seq: 41,
        records: 3,
        since: datetime!(2025-03-01 08:31:05 UTC),
    };
    assert_eq!(
        pending.to_string(),
        "3 record(s) from seq 41 on, since 2025-03-01T08:31:05Z (the agent seals them when the \
         epoch ends)"
    );
}
