//! The real stack: pcscd + vsmartcard's vpcd + our simulated card, read by the agent's
//! binary exactly as a technician runs it. Checked independently with OpenSC.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    card_variant, expected, file_of, fixture_cards, forge_national_number, json, new_p384_key, run,
    stderr, stdout, Pcscd,
};

#[test]
fn every_fixture_card_reads_through_pcscd() {
    let pcscd = Pcscd::start();
    for card in fixture_cards() {
        let want = expected(&card);
        let inserted = pcscd.insert(&card);
        let output = run(pcscd.agent().args([
            "read",
            "--wait",
            "10",
            "--json",
            "--show-national-number",
            "--trust-test-roots",
        ]));
        let got = json(&output);
        // The EC specimen's root is not public: read, signature verified, not trusted.
        let trusted = card != "nora-ec-2022";
        let code = if trusted { 0 } else { 13 };
        assert_eq!(
            output.status.code(),
            Some(code),
            "{card}: {}",
            stderr(&output)
        );
        assert_eq!(got["authenticity"]["authentic"], trusted, "{card}");
        assert_eq!(
            got["authenticity"]["identity"]["signature"], "valid",
            "{card}"
        );
        assert_eq!(
            got["national_number"]["value"], want["national_number"],
            "{card}"
        );
        assert_eq!(got["national_number"]["checksum"], "valid", "{card}");
        assert_eq!(
            got["national_number"]["born_2000_or_later"],
            want["national_number_born_2000_or_later"],
            "{card}"
        );
        if let Some(applet) = want["applet_version"].as_str() {
            assert_eq!(got["applet_version"], applet, "{card}");
        }
        assert_eq!(got["card"]["valid_from"], want["valid_from"], "{card}");
        assert_eq!(got["card"]["valid_until"], want["valid_until"], "{card}");
        let apdus = got["apdus"].as_u64().unwrap();
        if want["file_sizes"]["4032"] == 128 {
            // RSA-1024, cold (503C read and verified): at most 14 APDUs.
            assert!(apdus <= 14, "{card}: {apdus} APDUs");
        }
        eprintln!(
            "{card}: {apdus} APDUs, {} bytes from the card, {} ms",
            got["bytes"], got["elapsed_ms"]
        );
        inserted.remove();
    }
}

#[test]
fn a_removal_at_every_apdu_index_is_reported_and_the_next_read_works() {
    let pcscd = Pcscd::start();
    let card = "alice-2009";
    let number = expected(card)["national_number"].clone();
    let total = {
        let inserted = pcscd.insert(card);
        let output =
            run(pcscd
                .agent()
                .args(["read", "--wait", "10", "--json", "--trust-test-roots"]));
        inserted.remove();
        json(&output)["apdus"].as_u64().unwrap()
    };
    assert!(total >= 6, "{total}");
    for index in 0..total {
        let n = index.to_string();
        let pulled = pcscd.insert_with(card, 0, &["--remove-after-apdus", &n]);
        let output = run(pcscd
            .agent()
            .args(["read", "--wait", "10", "--trust-test-roots"]));
        assert_eq!(
            output.status.code(),
            Some(8),
            "index {index}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output)
                .contains("the card was removed: leave the card in the reader until the read ends"),
            "index {index}: {}",
            stderr(&output)
        );
        assert!(!stderr(&output).contains(number.as_str().unwrap()));
        pulled.wait_gone();

        let inserted = pcscd.insert(card);
        let output = run(pcscd.agent().args([
            "read",
            "--wait",
            "10",
            "--json",
            "--show-national-number",
            "--trust-test-roots",
        ]));
        assert!(
            output.status.success(),
            "after index {index}: {}",
            stderr(&output)
        );
        assert_eq!(json(&output)["national_number"]["value"], number);
        inserted.remove();
    }
}

#[test]
fn without_pcscd_the_read_says_so() {
    let output = run(std::process::Command::new(common::AGENT)
        .arg("read")
        .env("PCSCLITE_CSOCK_NAME", "/nonexistent/pcscd.comm"));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("pcscd"), "{}", stderr(&output));
    assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));

    let output = run(std::process::Command::new(common::AGENT)
        .args(["diagnose", "--json", "--readers-only"])
        .env("PCSCLITE_CSOCK_NAME", "/nonexistent/pcscd.comm"));
    assert_eq!(output.status.code(), Some(12));
    let report = json(&output);
    assert_eq!(report["ok"], false);
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "pcscd")
        .unwrap();
    assert_eq!(check["status"], "fail");
    assert!(check["hint"]
        .as_str()
        .unwrap()
        .contains("systemctl start pcscd"));
}

#[test]
fn no_reader_no_card_and_several_cards_are_told_apart() {
    let empty = Pcscd::start_without_readers();
    let output = run(empty.agent().arg("read"));
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no smart-card reader"),
        "{}",
        stderr(&output)
    );

    let pcscd = Pcscd::start();
    let output = run(pcscd.agent().arg("read"));
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(stderr(&output).contains("no card"), "{}", stderr(&output));

    let _first = pcscd.insert_with("alice-2009", 0, &[]);
    let _second = pcscd.insert_with("gen-1.8-ec", 1, &[]);
    // Wait, event-driven, until pcscd reports both cards.
    for reader in ["Virtual PCD 00 00", "Virtual PCD 00 01"] {
        let seen = run(pcscd.agent().args([
            "readers",
            "--wait-for",
            "card",
            "--reader",
            reader,
            "--timeout",
            "10",
        ]));
        assert!(seen.status.success(), "{reader}: {}", stderr(&seen));
    }
    let output = run(pcscd.agent().arg("read"));
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert!(stderr(&output).contains("Virtual PCD 00 00"));
    assert!(stderr(&output).contains("Virtual PCD 00 01"));

    let output = run(pcscd.agent().args([
        "read",
        "--reader",
        "Virtual PCD 00 01",
        "--json",
        "--trust-test-roots",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(json(&output)["applet_version"], "1.8");
}

#[test]
fn cards_that_are_not_usable_get_their_own_error() {
    let pcscd = Pcscd::start();
    let cases: [(&[&str], i32, &str); 3] = [
        // Another card: no GET CARD DATA, no Belpic applet.
        (
            &["--status-fault", "E4=6D00", "--status-fault", "A4@1=6A82"],
            6,
            "not a Belgian eID",
        ),
        (&["--status-fault", "B0=6D00"], 7, "not activated"),
        (&["--status-fault", "B0=6581"], 1, "6581"),
    ];
    for (faults, code, text) in cases {
        let inserted = pcscd.insert_with("alice-2009", 0, faults);
        let output = run(pcscd.agent().args(["read", "--wait", "10"]));
        assert_eq!(
            output.status.code(),
            Some(code),
            "{faults:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(text),
            "{faults:?}: {}",
            stderr(&output)
        );
        inserted.remove();
    }
}

#[test]
fn a_mute_card_does_not_freeze_the_read() {
    let pcscd = Pcscd::start();
    let _inserted = pcscd.insert_with("alice-2009", 0, &["--mute-after-apdus", "3"]);
    let output = run(pcscd
        .agent()
        .args(["read", "--wait", "10", "--timeout", "2"]));
    // Exit 10 "did not answer" comes only from the read's own deadline: it gave up on the
    // mute card instead of waiting for it (vpcd never times out).
    assert_eq!(output.status.code(), Some(10), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("did not answer"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn diagnose_reports_a_healthy_reader_without_personal_data() {
    let pcscd = Pcscd::start();
    let _inserted = pcscd.insert("alice-2009");
    pcscd.wait_for_card(0);
    let output = run(pcscd.agent().args(["diagnose", "--readers-only"]));
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let text = stdout(&output);
    assert!(text.contains("applet 1.1"), "{text}");
    assert!(text.contains("checksum valid"), "{text}");
    let number = expected("alice-2009")["national_number"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!text.contains(&number));
    assert!(!text.contains("Alice"));
}

/// OpenSC, an independent implementation, recognises and reads the simulated card.
#[test]
fn opensc_reads_the_simulated_card() {
    let pcscd = Pcscd::start();
    let _inserted = pcscd.insert("alice-2009");
    pcscd.wait_for_card(0);
    let socket = pcscd.socket();
    let output = run(std::process::Command::new("opensc-tool")
        .args(["--reader", "0", "--name"])
        .env("PCSCLITE_CSOCK_NAME", &socket));
    assert!(
        stdout(&output).contains("Belpic"),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );

    let output = run(std::process::Command::new("pkcs15-tool")
        .args(["--reader", "0", "--list-certificates"])
        .env("PCSCLITE_CSOCK_NAME", &socket));
    let listing = stdout(&output);
    assert!(output.status.success(), "{listing}{}", stderr(&output));
    assert_eq!(listing.matches("X.509 Certificate").count(), 5, "{listing}");
    assert!(listing.contains("3f00df00503c"), "{listing}");
}

#[test]
fn a_forged_card_read_through_pcscd_is_not_authentic() {
    let pcscd = Pcscd::start();
    let forged = card_variant("alice-2009", |dir| {
        forge_national_number(&file_of(dir, "4031"));
    });
    let _inserted = pcscd.insert(forged.path().to_str().unwrap());
    let output = run(pcscd
        .agent()
        .args(["read", "--wait", "10", "--json", "--trust-test-roots"]));
    assert_eq!(output.status.code(), Some(13), "{}", stderr(&output));
    let report = json(&output);
    assert_eq!(report["authenticity"]["authentic"], false);
    assert_eq!(report["authenticity"]["identity"]["signature"], "invalid");
    // The forged number still passes its checksum: only the signature catches it.
    assert_eq!(report["national_number"]["checksum"], "valid");
}

#[test]
fn a_cached_rrn_key_saves_the_certificate_read() {
    let pcscd = Pcscd::start();
    let state = tempfile::tempdir().unwrap();
    let cache = state.path().join("rrn-keys.json");
    let mut figures = Vec::new();
    for card in ["alice-2009", "alice-2010"] {
        let inserted = pcscd.insert(card);
        let output = run(pcscd
            .agent()
            .args([
                "read",
                "--wait",
                "10",
                "--json",
                "--trust-test-roots",
                "--rrn-cache",
            ])
            .arg(&cache));
        assert!(output.status.success(), "{card}: {}", stderr(&output));
        let report = json(&output);
        assert_eq!(report["authenticity"]["authentic"], true);
        figures.push((
            report["authenticity"]["rrn_key"]
                .as_str()
                .unwrap()
                .to_owned(),
            report["apdus"].as_u64().unwrap(),
            report["bytes"].as_u64().unwrap(),
        ));
        inserted.remove();
    }
    eprintln!("RSA-1024 cold {:?}, warm {:?}", figures[0], figures[1]);
    assert_eq!(figures[0].0, "card");
    assert!(figures[0].1 <= 14, "cold: {:?}", figures[0]);
    assert_eq!(figures[1].0, "cached");
    assert!(figures[1].1 <= 7, "warm: {:?}", figures[1]);
    assert!(figures[1].2 + 800 < figures[0].2, "{figures:?}");
    // The cache file holds certificates only: nothing of the citizen.
    let saved = std::fs::read_to_string(&cache).unwrap();
    assert!(!saved.contains(expected("alice-2009")["national_number"].as_str().unwrap()));
}

#[test]
fn the_chip_of_an_applet_1_8_card_proves_itself_and_clones_fail() {
    let pcscd = Pcscd::start();
    let authenticate = |card: &str| {
        let inserted = pcscd.insert(card);
        let output = run(pcscd.agent().args([
            "read",
            "--wait",
            "10",
            "--json",
            "--trust-test-roots",
            "--authenticate-card",
        ]));
        inserted.remove();
        (output.status.code(), json(&output))
    };

    let (code, genuine) = authenticate("gen-1.8-ec");
    assert_eq!(code, Some(0), "{genuine}");
    assert_eq!(genuine["authenticity"]["chip"]["result"], "genuine");
    assert_eq!(genuine["authenticity"]["authentic"], true);

    // A clone with its own key pair: its 4040 no longer matches the signed tag 0x1A.
    let (other_private, other_public) = new_p384_key();
    let own_key = card_variant("gen-1.8-ec", |dir| {
        std::fs::write(file_of(dir, "4040"), &other_public).unwrap();
        std::fs::write(dir.join("basic-private-key.pk8"), &other_private).unwrap();
    });
    let (code, report) = authenticate(own_key.path().to_str().unwrap());
    assert_eq!(code, Some(13));
    assert_eq!(report["authenticity"]["chip"]["result"], "not_genuine");
    assert_eq!(report["authenticity"]["authentic"], false);
    // The National Register's signature is intact: only the chip check catches it.
    assert_eq!(report["authenticity"]["identity"]["signature"], "valid");

    // A clone that copied every file but cannot know the private key.
    let copied = card_variant("gen-1.8-ec", |dir| {
        std::fs::write(dir.join("basic-private-key.pk8"), &other_private).unwrap();
    });
    let (code, report) = authenticate(copied.path().to_str().unwrap());
    assert_eq!(code, Some(13));
    assert_eq!(report["authenticity"]["chip"]["result"], "not_genuine");
    assert!(report["authenticity"]["problem"]
        .as_str()
        .unwrap()
        .contains("chip"));
}
