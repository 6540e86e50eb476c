//! The audit trail of a running agent: `serve --simulate` records its start, each card
//! session, each advice (national number pseudonymised) and each access to a session's
//! data; `beid-agent audit verify` proves the chain and catches tampering.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/simulated.rs"]
mod simulated;

use std::process::Command;

use common::{expected, run, stdout, AGENT};
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
