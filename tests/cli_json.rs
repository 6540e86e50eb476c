//! `--json` keeps its promise on every command that has it: exactly one JSON object on
//! stdout, also when the command fails, with the exit status the table documents
//! (`beid-agent --help`). Each test feeds a command an error (no pcscd, no card, a dump a
//! Belgian card could not have made, a file that is not there, a wrong option) and parses
//! stdout as a stream of JSON values: there must be exactly one, an object.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{card_variant, file_of, run, stderr, stdout, Pcscd, AGENT};
use serde_json::Value;

/// The agent with a PC/SC socket that does not exist: pcscd "not running", whatever runs
/// on this machine.
fn without_pcscd(dir: &Path) -> Command {
    let mut command = Command::new(AGENT);
    command
        .env("PCSCLITE_CSOCK_NAME", dir.join("no-pcscd.comm"))
        .env_remove("RUST_LOG");
    command
}

/// The one JSON object on stdout; fails when there is none, more than one, or something
/// else beside it.
fn the_one_object(output: &Output) -> Value {
    let text = stdout(output);
    let values: Vec<Value> = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {text:?}; stderr {:?}",
                stderr(output)
            )
        });
    assert_eq!(
        values.len(),
        1,
        "exactly one JSON value on stdout: {text:?}; stderr {:?}",
        stderr(output)
    );
    let value = values.into_iter().next().unwrap();
    assert!(value.is_object(), "not an object: {value}");
    value
}

/// Asserts the failure's object, its exit status and its line on stderr; returns the
/// message.
fn assert_error(output: &Output, status: i32, code: &str) -> String {
    let value = the_one_object(output);
    assert_eq!(output.status.code(), Some(status), "{value}");
    assert_eq!(value["error"]["code"], code, "{value}");
    assert_eq!(
        value.as_object().unwrap().len(),
        1,
        "only the error: {value}"
    );
    let message = value["error"]["message"].as_str().unwrap().to_owned();
    assert!(!message.is_empty(), "{value}");
    assert!(
        stderr(output).contains(&format!("error: {message}")),
        "the same error on stderr: {}",
        stderr(output)
    );
    message
}

#[test]
fn read_without_pcscd_or_card_is_one_error_object() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(without_pcscd(dir.path()).args(["read", "--json"]));
    let message = assert_error(&output, 3, "no_service");
    assert!(message.contains("pcscd"), "{message}");

    let pcscd = Pcscd::start();
    let output = run(pcscd.agent().args(["read", "--json"]));
    assert_error(&output, 5, "no_card");
    let output = run(pcscd
        .agent()
        .args(["read", "--json", "--reader", "No Such Reader 00 00"]));
    assert_error(&output, 4, "no_reader");
}

#[test]
fn readers_without_pcscd_is_one_error_object() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(without_pcscd(dir.path()).args(["readers", "--json"]));
    assert_error(&output, 3, "no_service");
}

#[test]
fn advice_without_a_configuration_or_with_an_unknown_use_case_is_one_error_object() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(without_pcscd(dir.path())
        .args([
            "advice",
            "--json",
            "--use-case",
            "uitpas-kansentarief",
            "--config",
        ])
        .arg(dir.path().join("absent.toml")));
    let message = assert_error(&output, 1, "error");
    assert!(message.contains("absent.toml"), "{message}");

    let output = run(without_pcscd(dir.path()).args([
        "advice",
        "--json",
        "--simulate",
        "--use-case",
        "uitpas-kansentarif",
    ]));
    let message = assert_error(&output, 1, "error");
    assert!(
        message.contains("uitpas-kansentarief"),
        "names the known ones: {message}"
    );
}

/// The case: a foreign card's dump whose national number field has 13 characters
/// printed nothing on stdout.
#[test]
fn verify_dump_of_a_dump_no_belgian_card_makes_is_one_error_object() {
    const THIRTEEN: &[u8] = b"7101011234567";
    let dump = card_variant("alice-2009", |dir| {
        let identity = file_of(dir, "4031");
        let mut bytes = std::fs::read(&identity).unwrap();
        let mut at = 0;
        while bytes[at] != 0x06 {
            at += 2 + usize::from(bytes[at + 1]);
        }
        let old = usize::from(bytes[at + 1]);
        let mut field = vec![0x06, THIRTEEN.len() as u8];
        field.extend_from_slice(THIRTEEN);
        bytes.splice(at..at + 2 + old, field);
        std::fs::write(&identity, bytes).unwrap();
    });
    let output = run(Command::new(AGENT)
        .args(["verify-dump", "--trust-test-roots", "--json"])
        .arg(dump.path()));
    let message = assert_error(&output, 1, "dump_unreadable");
    assert!(message.contains("13 characters"), "{message}");
    let everything = format!("{}{}", stdout(&output), stderr(&output));
    assert!(
        !everything.contains("7101011234567"),
        "the number itself is never printed: {everything}"
    );

    let output = run(Command::new(AGENT)
        .args(["verify-dump", "--json"])
        .arg(dump.path().join("absent")));
    assert_error(&output, 1, "dump_unreadable");
}

#[test]
fn diagnose_that_cannot_write_its_support_bundle_is_one_error_object() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("agent.log");
    std::fs::write(&log, "").unwrap();
    let output = run(without_pcscd(dir.path())
        .args(["diagnose", "--json", "--readers-only", "--support-bundle"])
        .arg(dir.path().join("absent/bundle.tar.gz"))
        .arg("--log-file")
        .arg(&log));
    let message = assert_error(&output, 1, "error");
    assert!(message.contains("support bundle"), "{message}");
}

#[test]
fn audit_verify_of_a_missing_log_or_with_a_bad_key_is_one_error_object() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(Command::new(AGENT)
        .args(["audit", "verify", "--json"])
        .arg(dir.path().join("audit.jsonl")));
    assert_error(&output, 1, "error");

    std::fs::write(dir.path().join("audit.jsonl"), "").unwrap();
    let output = run(Command::new(AGENT)
        .args([
            "audit",
            "verify",
            "--json",
            "--verification-key",
            "not-a-key",
        ])
        .arg(dir.path().join("audit.jsonl")));
    let message = assert_error(&output, 1, "error");
    assert!(message.contains("--verification-key"), "{message}");
}

#[test]
fn audit_seal_init_without_its_state_directory_is_one_error_object() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(Command::new(AGENT)
        .args(["audit", "seal-init", "--json", "--state-dir"])
        .arg(dir.path().join("absent")));
    let message = assert_error(&output, 1, "error");
    assert!(message.contains("create it first"), "{message}");
}

#[test]
fn config_check_of_a_missing_file_is_one_error_object() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(Command::new(AGENT)
        .args(["config", "check", "--json"])
        .arg(dir.path().join("absent.toml")));
    assert_error(&output, 1, "config_unreadable");
}

#[test]
fn a_wrong_command_line_that_asks_for_json_is_one_error_object() {
    for args in [
        &["read", "--json", "--no-such-option"][..],
        &["verify-dump", "--json"],
        &["config", "check", "--json", "a.toml", "b.toml"],
        &["audit", "seal-init", "--json", "--epoch", "1s"],
    ] {
        let output = run(Command::new(AGENT).args(args));
        let message = assert_error(&output, 2, "usage");
        assert!(!message.starts_with("error:"), "{args:?}: {message}");
    }
    // Help is no error: it stays text, exit 0.
    let output = run(Command::new(AGENT).args(["read", "--json", "--help"]));
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("Exit status:"));
}
