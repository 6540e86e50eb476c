//! `beid-agent diagnose` as a technician meets it: a bare machine (no pcscd, no
//! configuration), no reader, an expired or expiring client certificate, an unreachable or
//! silent upstream, and a healthy counter (real pcscd + vpcd, the real mTLS upstream, the
//! agent serving), whose support bundle must hold no personal data.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::upstream;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{run, stderr, stdout, Pcscd, AGENT};
use serde_json::Value;
use upstream::{Pki, Reply, Upstream};

const TOKEN: &str = "5c1e9a0f7b3d2e8c4a6f1b9d0e7c3a5f8b2d4e6a1c9f0b7e3d5a2c8f6e4b1d09";

/// Runs `diagnose --json` with these extra arguments; its exit code and report.
fn diagnose(mut command: Command, args: &[&str]) -> (Option<i32>, Value) {
    command.arg("diagnose").arg("--json").args(args);
    let output = run(&mut command);
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&output), stderr(&output)));
    (output.status.code(), report)
}

/// The named check of a report.
use common::report_check as check;

fn text(check: &Value, field: &str) -> String {
    check[field].as_str().unwrap_or_default().to_owned()
}

/// The named check has this status, and its detail and hint contain these words.
fn assert_check(report: &Value, name: &str, status: &str, detail: &str, hint: &str) {
    let check = check(report, name);
    assert_eq!(check["status"], status, "{check}");
    assert!(text(check, "detail").contains(detail), "{check}");
    assert!(text(check, "hint").contains(hint), "{check}");
}

/// `diagnose --json --config FILE` without pcscd, off the test's runtime.
async fn diagnose_config(config: &Path) -> (Option<i32>, Value) {
    diagnose_async(
        no_pcscd(),
        vec!["--config".into(), config.display().to_string()],
    )
    .await
}

/// No check failed or warned.
fn assert_only_passes(report: &Value) {
    for check in report["checks"].as_array().unwrap() {
        assert!(
            check["status"] == "pass" || check["status"] == "info",
            "{check}"
        );
    }
}

/// Every failure and warning carries a hint.
fn assert_hints(report: &Value) {
    for check in report["checks"].as_array().unwrap() {
        if check["status"] == "fail" || check["status"] == "warn" {
            assert!(!text(check, "hint").is_empty(), "no hint: {check}");
        }
    }
}

fn no_pcscd() -> Command {
    let mut command = Command::new(AGENT);
    command.env("PCSCLITE_CSOCK_NAME", "/nonexistent/pcscd.comm");
    command
}

/// A configuration for an http upstream at `url` with these client files.
fn write_config(dir: &Path, url: &str, pki: &Pki, cert: &Path, key: &Path, extra: &str) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[upstream]\nkind = \"http\"\nurl = \"{url}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\nca_bundle = \"{}\"\ntimeout_ms = 1500\n\n\
             [device]\nid = \"balie-3\"\nchannel = \"counter\"\n\n{extra}",
            cert.display(),
            key.display(),
            pki.ca_bundle.display(),
        ),
    )
    .unwrap();
    path
}

async fn diagnose_async(command: Command, args: Vec<String>) -> (Option<i32>, Value) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        diagnose(command, &args)
    })
    .await
    .unwrap()
}

#[test]
fn a_bare_machine_gets_one_hint_per_problem() {
    // As a newcomer runs it: no pcscd, no configuration (named explicitly, so that the
    // machine's own /etc/beid-agent cannot change the answer).
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("config.toml");
    let (code, report) = diagnose(no_pcscd(), &["--config", absent.to_str().unwrap()]);
    assert_eq!(code, Some(12), "{report:#}");
    assert_eq!(report["ok"], false);
    let pcscd = check(&report, "pcscd");
    assert_eq!(pcscd["status"], "fail");
    assert!(
        text(pcscd, "hint").contains("systemctl start pcscd"),
        "{pcscd}"
    );
    let config = check(&report, "configuration");
    assert_eq!(config["status"], "fail");
    assert!(
        text(config, "detail").contains("no configuration"),
        "{config}"
    );
    assert!(text(config, "hint").contains("--config"), "{config}");
    assert_hints(&report);

    // The human form puts each hint under its failure.
    let output = run(no_pcscd().arg("diagnose"));
    assert_eq!(output.status.code(), Some(12));
    let text = stdout(&output);
    let line = text
        .lines()
        .position(|l| l.starts_with("[FAIL] pcscd:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        text.lines()
            .nth(line + 1)
            .unwrap()
            .trim_start()
            .starts_with("hint: start pcscd"),
        "{text}"
    );
}

#[test]
fn a_machine_without_a_reader_is_told_to_plug_one_in() {
    let pcscd = Pcscd::start_without_readers();
    let (code, report) = diagnose(pcscd.agent(), &[]);
    assert_eq!(code, Some(12), "{report:#}");
    assert_eq!(check(&report, "pcscd")["status"], "pass");
    assert_check(
        &report,
        "readers",
        "fail",
        "no reader",
        "plug the reader in",
    );
    assert_hints(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_client_certificate_is_named_and_one_about_to_expire_warns() {
    upstream::install_crypto();
    let pki = Pki::new();
    let server = Upstream::start(&pki, Reply::Decide("eligible")).await;
    let now = time::OffsetDateTime::now_utc();
    let dir = tempfile::tempdir().unwrap();

    let (cert, key) = pki.client_valid(
        "expired",
        now - time::Duration::days(400),
        now - time::Duration::days(3),
    );
    let config = write_config(dir.path(), &server.url, &pki, &cert, &key, "");
    let (code, report) = diagnose_config(&config).await;
    assert_eq!(code, Some(12));
    assert_check(
        &report,
        "upstream client certificate",
        "fail",
        "expired on",
        "renew",
    );
    // The upstream refuses it too, and diagnose says so.
    assert_check(
        &report,
        "upstream",
        "fail",
        "upstream_tls_rejected",
        "client certificate",
    );
    assert_hints(&report);

    let (cert, key) = pki.client_valid(
        "soon",
        now - time::Duration::days(300),
        now + time::Duration::days(10),
    );
    let config = write_config(dir.path(), &server.url, &pki, &cert, &key, "");
    let (_, report) = diagnose_config(&config).await;
    let certificate = check(&report, "upstream client certificate");
    assert_eq!(certificate["status"], "warn", "{certificate}");
    assert!(
        text(certificate, "detail").contains("days left"),
        "{certificate}"
    );
    assert_eq!(check(&report, "upstream")["status"], "pass", "{report:#}");
    assert_eq!(check(&report, "clock")["status"], "pass", "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_silent_upstream_is_named_with_its_hint() {
    upstream::install_crypto();
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();

    let closed = format!("https://127.0.0.1:{}/", common::free_port());
    let config = write_config(
        dir.path(),
        &closed,
        &pki,
        &pki.client_cert,
        &pki.client_key,
        "",
    );
    let (code, report) = diagnose_config(&config).await;
    assert_eq!(code, Some(12));
    assert_eq!(
        check(&report, "configuration")["status"],
        "pass",
        "{report:#}"
    );
    assert_eq!(
        check(&report, "upstream client certificate")["status"],
        "pass"
    );
    assert_check(
        &report,
        "upstream",
        "fail",
        "upstream_unavailable",
        "no connection",
    );

    // Accepts the connection, never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/", silent.local_addr().unwrap());
    let config = write_config(
        dir.path(),
        &url,
        &pki,
        &pki.client_cert,
        &pki.client_key,
        "",
    );
    let (code, report) = diagnose_config(&config).await;
    assert_eq!(code, Some(12));
    assert_check(
        &report,
        "upstream",
        "fail",
        "upstream_timeout",
        "no answer in time",
    );
    drop(silent);
}

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A national number as people and programs write it: grouped with spaces, dots and dashes,
/// in full-width digits, as hexadecimal ASCII (bare and spaced).
fn national_number_spellings(number: &str) -> Vec<String> {
    let groups = [
        &number[0..2],
        &number[2..4],
        &number[4..6],
        &number[6..9],
        &number[9..11],
    ];
    let full_width: String = number
        .chars()
        .map(|c| char::from_u32(0xFF10 + c.to_digit(10).unwrap()).unwrap())
        .collect();
    let hex: Vec<String> = number.bytes().map(|b| format!("{b:02x}")).collect();
    vec![
        groups.join(" "),
        format!(
            "{}.{}.{}-{}.{}",
            groups[0], groups[1], groups[2], groups[3], groups[4]
        ),
        groups.join("-"),
        full_width,
        hex.concat(),
        hex.join(" "),
    ]
}

/// The values of a card's identity file that identify the citizen (TLV: tag, length, value;
/// lengths ≥ 255 never occur in these tags).
fn personal_values(card: &str) -> Vec<String> {
    let identity = std::fs::read(common::card_dir(card).join("4031-identity.bin")).unwrap();
    let mut values = Vec::new();
    let mut at = 0;
    while at + 2 <= identity.len() {
        let (tag, length) = (identity[at], usize::from(identity[at + 1]));
        let value = &identity[at + 2..(at + 2 + length).min(identity.len())];
        match tag {
            // card number, national number, names, place and date of birth
            0x01 | 0x06 | 0x07 | 0x08 | 0x09 | 0x0B | 0x0C => {
                let text = String::from_utf8_lossy(value).trim().to_owned();
                if text.len() >= 3 {
                    values.push(text);
                }
            }
            // chip number, as hex either case
            0x02 => {
                let hex: String = value.iter().map(|b| format!("{b:02X}")).collect();
                values.push(hex.to_lowercase());
                values.push(hex);
            }
            _ => {}
        }
        at += 2 + length;
    }
    let number = common::expected(card)["national_number"]
        .as_str()
        .unwrap()
        .to_owned();
    values.push(format!(
        "{}.{}.{}-{}.{}",
        &number[0..2],
        &number[2..4],
        &number[4..6],
        &number[6..9],
        &number[9..11]
    ));
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_counter_passes_and_its_support_bundle_holds_no_personal_data() {
    upstream::install_crypto();
    let pki = Pki::new();
    let server = Upstream::start(&pki, Reply::Decide("eligible")).await;
    let pcscd = Pcscd::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // A healthy counter's audit log is sealed (an unsealed one is a warning).
    std::fs::create_dir(&state).unwrap();
    let sealed = run(Command::new(AGENT)
        .args(["audit", "seal-init", "--state-dir"])
        .arg(&state));
    assert!(sealed.status.success(), "{}", stderr(&sealed));
    common::write_secret(&dir.path().join("token"), TOKEN);
    let port = common::free_port();
    let root = common::fixtures().join("test-pki/eid-test-root-ca.crt");
    let config = write_config(
        dir.path(),
        &server.url,
        &pki,
        &pki.client_cert,
        &pki.client_key,
        &format!(
            "[trust]\nextra_roots = [\"{}\"]\nrrn_key_cache = \"{}\"\n\n\
             [policy]\nallow_expired_cards = true\n\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\nauto_advice = [\"uitpas-kansentarief\"]\n\n\
             [[api.clients]]\nname = \"counter\"\ntoken_file = \"token\"\nscopes = [\"advice\"]\n",
            root.display(),
            state.join("rrn-keys.json").display(),
        ),
    );
    let log = dir.path().join("agent.log");
    let mut child = pcscd
        .agent()
        .args(["-vv", "--log-format", "json", "serve", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let _served = Served(child);
    assert!(banner.contains("serving on"), "{banner}");

    // A specimen card goes through the whole path: read, verified, its number sent upstream.
    let _card = pcscd.insert("alice-2009");
    let cache = state.join("rrn-keys.json");
    // Blocks one of the two runtime threads; the upstream serves on the other.
    common::wait_until(Duration::from_secs(15), || {
        server.hits() >= 1 && cache.exists()
    })
    .expect("the agent read the card, cached its RRN key and asked the upstream");

    // The log as support gets it, with the citizen's number written every way a log line
    // might hold it (a stack trace, a hex dump, a copied form field).
    let bundle_log = dir.path().join("bundle-input.log");
    // The upstream counts its hit before the agent logs the answer: wait for the line.
    common::wait_until(Duration::from_secs(15), || {
        std::fs::read_to_string(&log).is_ok_and(|text| text.contains("upstream answered"))
    })
    .expect("the agent logged the upstream's answer");
    let mut log_text = std::fs::read_to_string(&log).unwrap();
    let spellings = national_number_spellings(
        common::expected("alice-2009")["national_number"]
            .as_str()
            .unwrap(),
    );
    for spelling in &spellings {
        log_text.push_str(&format!(
            "{{\"level\":\"DEBUG\",\"fields\":{{\"message\":\"form field {spelling} copied\"}}}}\n"
        ));
    }
    std::fs::write(&bundle_log, log_text).unwrap();
    let bundle = dir.path().join("support.tar.gz");
    let (code, report) = diagnose_async(
        pcscd.agent(),
        vec![
            "--config".into(),
            config.display().to_string(),
            "--state-dir".into(),
            state.display().to_string(),
            "--support-bundle".into(),
            bundle.display().to_string(),
            "--log-file".into(),
            bundle_log.display().to_string(),
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{report:#}");
    assert_only_passes(&report);
    for name in [
        "upstream",
        "upstream server certificate",
        "clock",
        "local API",
        "audit log",
    ] {
        assert_eq!(check(&report, name)["status"], "pass", "{name}: {report:#}");
    }
    assert!(text(check(&report, "RRN key cache"), "detail").contains("1 verified key"));
    assert!(text(
        check(&report, "reader \"Virtual PCD 00 00\" applet"),
        "detail"
    )
    .contains("1.1"));

    // The bundle: every file there, none holding what identifies the citizen.
    let files = unpack(&bundle);
    let names: Vec<&str> = files
        .iter()
        .map(|(n, _)| n.rsplit('/').next().unwrap())
        .collect();
    for wanted in [
        "README.txt",
        "diagnose.json",
        "diagnose.txt",
        "versions.txt",
        "config.toml",
        "service.txt",
        "logs.txt",
        "pcscd.txt",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    let logs = &files
        .iter()
        .find(|(n, _)| n.ends_with("logs.txt"))
        .unwrap()
        .1;
    assert!(
        logs.contains("upstream answered"),
        "the log of the session is in: {logs}"
    );
    let secrets = [
        TOKEN.to_owned(),
        std::fs::read_to_string(&pki.client_key)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .to_owned(),
    ];
    assert!(
        logs.matches("form field [redacted] copied").count() == spellings.len(),
        "every spelling of the number went: {logs}"
    );
    let forbidden: Vec<String> = personal_values("alice-2009")
        .into_iter()
        .chain(spellings)
        .chain(secrets)
        .collect();
    assert!(forbidden.len() >= 8, "{forbidden:?}");
    for (name, content) in &files {
        for value in &forbidden {
            assert!(!content.contains(value.as_str()), "{name} holds {value:?}");
        }
    }
}

fn unpack(bundle: &Path) -> Vec<(String, String)> {
    let file = std::fs::File::open(bundle).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut files = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut content = String::new();
        entry.read_to_string(&mut content).unwrap();
        files.push((name, content));
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_check_passes_on_a_healthy_counter_with_no_card_and_fails_without_its_agent() {
    let mut counter = common::agent::Counter::start(|files| {
        format!(
            "[metrics]\ntextfile = \"{}\"\n",
            files.join("beid_agent.prom").display()
        )
    })
    .await;
    let textfile = counter.files.path().join("beid_agent.prom");
    let common::agent::Counter { agent, pcscd, .. } = &mut counter;
    common::wait_until(Duration::from_secs(20), || textfile.exists()).expect("the textfile");
    let args = vec![
        "--health".to_owned(),
        "--config".into(),
        agent.config().display().to_string(),
        "--state-dir".into(),
        agent.state_dir().display().to_string(),
    ];
    let started = std::time::Instant::now();
    let (code, report) = diagnose_async(pcscd.agent(), args.clone()).await;
    eprintln!("diagnose --health took {:?}", started.elapsed());
    assert_eq!(code, Some(0), "{report:#}");
    assert_only_passes(&report);
    for name in [
        "pcscd",
        "readers",
        "configuration",
        "upstream client certificate",
        "upstream",
        "local API",
        "running configuration",
        "metrics textfile",
    ] {
        assert_eq!(check(&report, name)["status"], "pass", "{name}: {report:#}");
    }
    assert_eq!(
        check(&report, "reader \"Virtual PCD 00 00\"")["detail"],
        "no card"
    );
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for skipped in ["card", "audit log", "RRN key cache"] {
        assert!(
            !names.contains(&skipped),
            "{skipped} is not for --health: {names:?}"
        );
    }

    // A card in the reader is noted, not read.
    let _card = pcscd.insert("gen-1.8-ec");
    pcscd.wait_for_card(0);
    let (code, report) = diagnose_async(pcscd.agent(), args.clone()).await;
    assert_eq!(code, Some(0), "{report:#}");
    assert_check(
        &report,
        "reader \"Virtual PCD 00 00\"",
        "info",
        "not read",
        "",
    );

    // Without its agent the counter is not healthy, and says why.
    agent.stop();
    let (code, report) = diagnose_async(pcscd.agent(), args).await;
    assert_eq!(code, Some(12), "{report:#}");
    assert_check(
        &report,
        "local API",
        "fail",
        "the agent is not running",
        "systemctl start beid-agent",
    );
    assert_eq!(check(&report, "running configuration")["status"], "info");
}
