//! The audit trail of a running agent: `serve --simulate` records its start, each card
//! session, each advice (national number pseudonymised) and each access to a session's
//! data; `beid-agent audit verify` proves the chain and catches tampering.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{expected, run, stdout, AGENT};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_session_is_audited_and_tampering_is_detected() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let state = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut agent = Command::new(AGENT)
        .args([
            "serve",
            "--simulate",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--state-dir",
        ])
        .arg(state.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .expect("the agent listens");
    let token = std::fs::read_to_string(state.path().join("demo-token")).unwrap();
    let token = token.trim();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    assert_eq!(
        post("/v1/simulator/insert", json!({"card": "gen-1.8-ec"}))
            .await
            .unwrap()
            .status(),
        200
    );
    let readers: Value = http
        .get(format!("{base}/v1/readers"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = readers[0]["session"].as_str().unwrap().to_owned();
    let advice = post(
        &format!("/v1/sessions/{session}/advice"),
        json!({"useCase": "uitpas-kansentarief"}),
    )
    .await
    .unwrap();
    assert_eq!(advice.status(), 200);
    assert_eq!(
        post("/v1/simulator/remove", json!({}))
            .await
            .unwrap()
            .status(),
        204
    );
    let _ = agent.kill();
    let _ = agent.wait();

    let log_path = state.path().join("audit.jsonl");
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
