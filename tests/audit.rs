//! The audit trail of a running agent: `serve --simulate` records its start, each card
//! session, each advice (national number pseudonymised) and each access to a session's
//! data; `beid-agent audit verify` proves the chain and catches tampering.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::simulated;

use std::path::Path;
use std::process::Command;

use common::{expected, json, run, stderr, stdout, AGENT};
use serde_json::Value;
use simulated::SimulatedServe;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_session_is_audited_and_tampering_is_detected() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut agent = SimulatedServe::start();
    let mut pace = simulated::pace();
    let (session, _) = agent
        .visit(&reqwest::Client::new(), "gen-1.8-ec", &mut pace)
        .await;
    agent.stop();

    let log_path = agent.state.path().join("audit.jsonl");
    let output = run(Command::new(AGENT)
        .args(["audit", "verify", "--json"])
        .arg(&log_path));
    assert!(output.status.success(), "{}", stdout(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(report["records"].as_u64().unwrap() >= 4, "{report}");

    let log = std::fs::read_to_string(&log_path).unwrap();
    let types: Vec<String> = log
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for wanted in ["agent_started", "card_session", "advice", "api_request"] {
        assert!(
            types.iter().any(|t| t == wanted),
            "{wanted} missing: {types:?}"
        );
    }
    let number = expected("gen-1.8-ec")["national_number"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !log.contains(&number),
        "the national number is in the audit log"
    );
    assert!(log.contains("pseudonym"), "{log}");
    assert!(log.contains(&session));

    // Change one character of the advice record: the chain breaks.
    let tampered = log.replacen("\"eligible\"", "\"not_eligible\"", 1);
    assert_ne!(tampered, log);
    std::fs::write(&log_path, tampered).unwrap();
    let output = run(Command::new(AGENT).args(["audit", "verify"]).arg(&log_path));
    assert_eq!(output.status.code(), Some(12), "{}", stdout(&output));
}

// ---- a sealed log, and what an intruder with the agent's user does to it ----

/// The city's side of a sealed agent: the verification key `seal-init` printed, and the
/// journal export (`journalctl -u beid-agent -o json`), here made from the agent's JSON log
/// the way journald would store its anchors.
struct City {
    dir: tempfile::TempDir,
    log: std::path::PathBuf,
}

impl City {
    fn key(&self) -> String {
        format!("@{}", self.dir.path().join("key").display())
    }

    fn journal(&self) -> std::path::PathBuf {
        self.dir.path().join("journal.json")
    }

    /// `audit verify` of `log` with the key and the anchors, an hour after the day (when
    /// the seal after a cut would long be due); the exit code and the JSON report.
    fn verify(&self, log: &Path) -> (Option<i32>, Value) {
        let as_of = time::OffsetDateTime::now_utc() + std::time::Duration::from_secs(3600);
        let as_of = as_of
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let output = run(Command::new(AGENT)
            .args([
                "audit",
                "verify",
                "--json",
                "--verification-key",
                &self.key(),
            ])
            .arg("--anchors")
            .arg(self.journal())
            .args(["--as-of", &as_of])
            .arg(log));
        (output.status.code(), json(&output))
    }
}

/// `seal-init`, then a citizen's visit at a counter running `serve --simulate`, then the
/// agent stopped as systemd stops it.
async fn sealed_day() -> City {
    let state = tempfile::tempdir().unwrap();
    let city = tempfile::tempdir().unwrap();
    let output = run(Command::new(AGENT)
        .args(["audit", "seal-init", "--json", "--state-dir"])
        .arg(state.path()));
    assert!(output.status.success(), "{}", stderr(&output));
    let init = json(&output);
    let key = init["verificationKey"].as_str().unwrap();
    assert!(key.starts_with("beid-seal-v1:"), "{init}");
    std::fs::write(city.path().join("key"), key).unwrap();
    let sealing_state = state.path().join("audit.jsonl.seal");
    assert_eq!(init["sealingState"], sealing_state.display().to_string());
    assert!(!std::fs::read_to_string(&sealing_state)
        .unwrap()
        .contains(&key[13..77]));

    let agent_log = city.path().join("agent.log");
    let stderr_file = std::fs::File::create(&agent_log).unwrap();
    let mut agent = SimulatedServe::start_in(state, &["--log-format", "json"], stderr_file.into());
    let mut pace = simulated::pace();
    agent
        .visit(&reqwest::Client::new(), "gen-1.8-ec", &mut pace)
        .await;
    assert!(agent.terminate().success());

    let journal: Vec<String> = std::fs::read_to_string(&agent_log)
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["target"] == "beid_audit")
        .map(|event| journal_entry(&event))
        .collect();
    assert!(journal.len() >= 2, "a start and a stop anchor: {journal:?}");
    std::fs::write(city.path().join("journal.json"), journal.join("\n")).unwrap();
    let log = city.path().join("audit.jsonl");
    std::fs::copy(agent.state.path().join("audit.jsonl"), &log).unwrap();
    std::fs::copy(
        agent.state.path().join("audit.jsonl.head"),
        city.path().join("audit.jsonl.head"),
    )
    .unwrap();
    City { dir: city, log }
}

/// A tracing JSON event as journald keeps it: fields upper-cased, values as strings, the
/// unit stamped by journald.
fn journal_entry(event: &Value) -> String {
    let mut entry = serde_json::Map::new();
    entry.insert("_SYSTEMD_UNIT".into(), "beid-agent.service".into());
    for (name, value) in event["fields"].as_object().unwrap() {
        let text = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned);
        entry.insert(name.to_uppercase(), text.into());
    }
    Value::Object(entry).to_string()
}

/// The kinds of the findings of a JSON report.
fn finding_kinds(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| finding["problem"]["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// The hash a record line ends with.
fn hash_of(line: &str) -> &str {
    &line[line.len() - 66..line.len() - 2]
}

/// What the intruder writes: `line` renumbered to `seq`, linked to `prev`, hash recomputed.
fn relinked(line: &str, seq: usize, prev: &str) -> String {
    let body = &line[line.find(",\"at\"").unwrap()..line.rfind(",\"prev\"").unwrap()];
    let hashed = format!("{{\"seq\":{seq}{body},\"prev\":\"{prev}\"");
    let digest = ring::digest::digest(&ring::digest::SHA256, hashed.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{hashed},\"hash\":\"{hex}\"}}")
}

/// Writes `lines` as the log, every line from `from` on re-linked, and a head file naming
/// the last (`None`: the head file deleted).
fn rewrite(log: &Path, mut lines: Vec<String>, from: usize, head: bool) {
    for at in from..lines.len() {
        let prev = match at {
            0 => "0".repeat(64),
            _ => hash_of(&lines[at - 1]).to_owned(),
        };
        lines[at] = relinked(&lines[at], at, &prev);
    }
    std::fs::write(log, lines.join("\n") + "\n").unwrap();
    let head_file = log.with_extension("jsonl.head");
    if head {
        let last = lines.last().unwrap();
        let head = format!(
            "{{\"seq\":{},\"hash\":\"{}\"}}\n",
            lines.len() - 1,
            hash_of(last)
        );
        std::fs::write(head_file, head).unwrap();
    } else {
        let _ = std::fs::remove_file(head_file);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_agent_log_verifies_with_the_key_and_the_journal() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let city = sealed_day().await;
    let (code, report) = city.verify(&city.log);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["verdict"], "intact");
    assert_eq!(report["sealing"]["state"], "verified", "{report}");
    assert_eq!(report["sealing"]["last"]["reason"], "stop");
    assert_eq!(report["anchoring"]["state"], "checked");
    assert_eq!(finding_kinds(&report), Vec::<String>::new());

    // Without them, the text says what was not checked; the chain alone is still intact.
    let output = run(Command::new(AGENT).args(["audit", "verify"]).arg(&city.log));
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(
        text.contains("NOT VERIFIED") && text.contains("NOT CHECKED"),
        "{text}"
    );

    // Another counter's key is named as such.
    let other = tempfile::tempdir().unwrap();
    let init = json(&run(Command::new(AGENT)
        .args(["audit", "seal-init", "--json", "--state-dir"])
        .arg(other.path())));
    let output = run(Command::new(AGENT)
        .args(["audit", "verify", "--json", "--verification-key"])
        .arg(init["verificationKey"].as_str().unwrap())
        .arg(&city.log));
    assert_eq!(output.status.code(), Some(12));
    assert_eq!(finding_kinds(&json(&output)), ["key_mismatch"]);
}

/// Rewrites the log at this path (the intruder's work).
type Attack<'a> = Box<dyn Fn(&Path) + 'a>;

/// The four attacks of issue 12, each on a copy of a sealed agent's log, through the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attack_on_a_sealed_log_is_reported_by_audit_verify() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let city = sealed_day().await;
    let day: Vec<String> = std::fs::read_to_string(&city.log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let advice = day
        .iter()
        .position(|line| line.contains("\"type\":\"advice\""))
        .unwrap();
    let attacks: [(&str, Attack, &[&str]); 4] = [
        (
            "edit a record and recompute every hash",
            Box::new(|log| {
                let mut lines = day.clone();
                lines[advice] = lines[advice].replace("\"decision\":\"", "\"decision\":\"not_");
                rewrite(log, lines, advice, true);
            }),
            &["seal_invalid", "anchor_mismatch"],
        ),
        (
            "delete records and rewrite the head file",
            Box::new(|log| {
                let mut lines = day.clone();
                lines.remove(advice);
                rewrite(log, lines, advice, true);
            }),
            &["seal_invalid", "not_anchored"],
        ),
        (
            "truncate the log and delete the head file",
            Box::new(|log| rewrite(log, day[..1].to_vec(), 1, false)),
            &["unsealed", "truncated_before_anchor"],
        ),
        (
            "append a forged advice",
            Box::new(|log| {
                let mut lines = day.clone();
                lines.push(lines[advice].clone());
                let last = lines.len() - 1;
                rewrite(log, lines, last, true);
            }),
            &["after_stop"],
        ),
    ];
    for (attack, apply, expected) in attacks {
        let copy = tempfile::tempdir().unwrap();
        let log = copy.path().join("audit.jsonl");
        apply(&log);
        let (code, report) = city.verify(&log);
        assert_eq!(code, Some(12), "{attack}: {report}");
        let kinds = finding_kinds(&report);
        for kind in expected {
            assert!(
                kinds.iter().any(|k| k == kind),
                "{attack}: {kind} in {report}"
            );
        }
    }
}

#[test]
fn seal_init_refuses_to_replace_a_sealing_state() {
    let state = tempfile::tempdir().unwrap();
    let init = || {
        run(Command::new(AGENT)
            .args(["audit", "seal-init", "--state-dir"])
            .arg(state.path()))
    };
    let first = init();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).contains("Keep it OFF this computer"));
    let sealing_state = state.path().join("audit.jsonl.seal");
    let before = std::fs::read(&sealing_state).unwrap();
    let second = init();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr(&second).contains("already exists"),
        "{}",
        stderr(&second)
    );
    assert_eq!(std::fs::read(&sealing_state).unwrap(), before);

    let missing = run(Command::new(AGENT)
        .args(["audit", "seal-init", "--state-dir"])
        .arg(state.path().join("nope")));
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("install -d"),
        "{}",
        stderr(&missing)
    );
}
