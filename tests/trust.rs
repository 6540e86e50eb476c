//! Authenticity of card dumps, offline, through `beid-agent verify-dump` as technicians and
//! integrators run it.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{card_dir, card_variant, expected, file_of, forge_national_number, json, run, stderr};

fn verify_dump(card: &str, test_roots: bool) -> (Option<i32>, serde_json::Value, String) {
    let mut command = Command::new(common::AGENT);
    command.arg("verify-dump").arg(card_dir(card)).arg("--json");
    if test_roots {
        command.arg("--trust-test-roots");
    }
    let output = run(&mut command);
    (
        output.status.code(),
        json(&output),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn specimen_and_generated_cards_are_authentic_only_under_their_test_roots() {
    for card in ["alice-2009", "alice-2010", "gen-1.7-rsa2048", "gen-1.8-ec"] {
        let (code, report, _) = verify_dump(card, true);
        assert_eq!(code, Some(0), "{card}: {report}");
        assert_eq!(report["authentic"], true);
        assert_eq!(report["identity"]["signature"], "valid");
        assert_eq!(
            report["identity"]["algorithm"],
            expected(card)["signature_algorithm"]
        );
        assert_eq!(report["rrn_certificate"]["trusted"], true);
        assert_eq!(report["address"]["signature"], "valid", "{card}");
        assert_eq!(report["photo"]["hash"], "match", "{card}");

        let (code, report, _) = verify_dump(card, false);
        assert_eq!(
            code,
            Some(13),
            "{card} must not be trusted by the production roots"
        );
        assert_eq!(report["authentic"], false);
        assert_eq!(report["identity"]["signature"], "valid");
        assert_eq!(report["rrn_certificate"]["trusted"], false);
        assert_eq!(report["rrn_certificate"]["root"], serde_json::Value::Null);
    }
}

#[test]
fn the_ec_specimen_verifies_but_its_private_root_is_not_trusted() {
    let (code, report, _) = verify_dump("nora-ec-2022", true);
    assert_eq!(code, Some(13));
    assert_eq!(report["identity"]["signature"], "valid");
    assert_eq!(report["identity"]["algorithm"], "ecdsa-p384-sha384");
    assert_eq!(report["rrn_certificate"]["trusted"], false);
    assert_eq!(report["address"]["signature"], "valid");
}

#[test]
fn a_changed_national_number_breaks_the_signature() {
    let forged = card_variant("alice-2009", |dir| {
        forge_national_number(&file_of(dir, "4031"));
    });
    let (code, report, text) = verify_dump(forged.path().to_str().unwrap(), true);
    assert_eq!(code, Some(13));
    assert_eq!(report["authentic"], false);
    assert_eq!(report["identity"]["signature"], "invalid");
    assert!(report["problem"].as_str().unwrap().contains("signature"));
    assert!(!text.contains("85673003360"));
}

#[test]
fn verify_dump_prints_no_personal_data() {
    let want = expected("alice-2009");
    let number = want["national_number"].as_str().unwrap();
    for test_roots in [true, false] {
        let (_, report, text) = verify_dump("alice-2009", test_roots);
        assert!(!text.contains(number), "{text}");
        assert!(!text.to_lowercase().contains("alice"), "{text}");
        assert_eq!(report["national_number"]["checksum"], "valid");
        assert_eq!(report["card"]["valid_from"], want["valid_from"]);
    }
}

#[test]
fn a_dump_without_signature_or_certificate_is_not_authentic() {
    let bare = card_variant("alice-2009", |dir| {
        std::fs::remove_file(file_of(dir, "4032")).unwrap();
        std::fs::remove_file(file_of(dir, "503C")).unwrap();
    });
    let output = run(Command::new(common::AGENT)
        .arg("verify-dump")
        .arg(bare.path())
        .args(["--json", "--trust-test-roots"]));
    assert_eq!(output.status.code(), Some(13), "{}", stderr(&output));
    let report = json(&output);
    assert_eq!(report["identity"]["signature"], "missing");
    assert_eq!(
        report["rrn_certificate"]["subject"],
        serde_json::Value::Null
    );
}
