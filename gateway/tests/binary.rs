//! The `beid-gateway` binary: `config check`, serving at trace level without a national
//! number in its logs, stopping on SIGTERM; and proof that it does not link PC/SC.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use uitpas_standin::{Fault, Kind, StandIn, PASSHOLDER_NAME};

const GATEWAY: &str = env!("CARGO_BIN_EXE_beid-gateway");

#[test]
fn config_check_prints_every_problem_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nlisten = 8443\nport = 1\n\n[audit]\nlog = \"/nonexistent/a.jsonl\"\n",
    )
    .unwrap();
    let output = Command::new(GATEWAY)
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in [
        "line 2: server.listen: must be a string",
        "line 3: server.port: unknown key",
        "line 1: server.cert: is missing",
        "line 6: audit.log: /nonexistent/a.jsonl: its folder does not exist",
        "line 5: audit.secret_file: is missing",
        "use_cases: at least one [[use_cases]] is needed",
    ] {
        assert!(stderr.contains(line), "{line:?} not in\n{stderr}");
    }
    let missing = Command::new(GATEWAY)
        .args(["config", "check", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn the_gateway_does_not_link_pcsc() {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let tree = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            "beid-gateway",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(&workspace)
        .output()
        .unwrap();
    assert!(
        tree.status.success(),
        "{}",
        String::from_utf8_lossy(&tree.stderr)
    );
    let tree = String::from_utf8_lossy(&tree.stdout);
    assert!(tree.contains("beid-core"), "{tree}");
    assert!(!tree.lines().any(|l| l.starts_with("pcsc")), "{tree}");
    let dynamic = Command::new("readelf")
        .args(["-d", GATEWAY])
        .output()
        .unwrap();
    assert!(dynamic.status.success());
    let dynamic = String::from_utf8_lossy(&dynamic.stdout);
    assert!(dynamic.contains("NEEDED"), "{dynamic}");
    assert!(!dynamic.contains("pcsclite"), "{dynamic}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_national_number_in_the_logs_at_trace_level() {
    common::install_crypto();
    let standin = StandIn::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pki = common::Pki::new(dir.path());
    common::write_uitpas_files(dir.path(), &standin);
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        common::config_text(&standin, (600, 50), "[metrics]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let log = dir.path().join("gateway.log");
    let (mut child, url) = common::spawn_binary(
        GATEWAY,
        &[
            "-vv".as_ref(),
            "--log-format".as_ref(),
            "json".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ],
        None,
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let harness_device = |cn: &str| {
        let (cert, key) = pki.issue(
            &format!("device-{cn}"),
            &[cn],
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        );
        common::Device {
            http: beid_gateway::tls::http_client(
                Some(&pki.ca_bundle()),
                Some((&cert, &key)),
                Duration::from_secs(10),
            )
            .unwrap(),
            url: url.clone(),
            id: cn.to_owned(),
        }
    };
    let device = harness_device("balie-3");
    // Wait (bounded) for the permissions: health turns 200.
    let deadline = Instant::now() + Duration::from_secs(10);
    while device.get("/v1/health").await.status() != 200 {
        assert!(Instant::now() < deadline, "never healthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for kind in Kind::ALL {
        assert_eq!(device.check(kind.national_number()).await.0, 200);
    }
    standin.revoke_tokens();
    for fault in [
        Fault::Malformed,
        Fault::Problem {
            status: 400,
            problem_type: "https://api.publiq.be/probs/uitpas/invalid-insz-number",
            title: "Invalid insz number",
            end_user_message: Some("Ongeldig rijksregisternummer 85610100147"),
        },
    ] {
        standin.fail_next(fault);
        device.check(Kind::ActiveGent.national_number()).await;
    }
    device
        .check_as(Kind::Expired.national_number(), common::USE_CASE, "balie-4")
        .await;
    device
        .post(
            "/v1/eligibility-checks",
            &json!({"nationalNumber": Kind::Suspended.national_number()}),
        )
        .await;
    device
        .post(
            &format!("/v1/eligibility-checks/{}/outcome", uuid::Uuid::new_v4()),
            &json!({"decision": "granted"}),
        )
        .await;

    // SIGTERM: a graceful stop.
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("check answered") && text.contains("\"level\":\"TRACE\""),
        "logging was not at trace level:\n{text}"
    );
    for number in Kind::ALL.map(Kind::national_number) {
        assert!(!text.contains(number), "a national number in the log");
        assert!(
            !text.contains(&format!("{}.{}", &number[..2], &number[2..4])),
            "a spelled national number"
        );
    }
    assert!(
        !text.contains(PASSHOLDER_NAME),
        "a passholder's name in the log"
    );
    assert!(
        !text.contains(uitpas_standin::CLIENT_SECRET),
        "the client secret in the log"
    );
    assert!(!text.contains("inszNumber"), "a UiTPAS URL in the log");
}
