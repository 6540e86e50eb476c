//! The contract as a device sees it: who may ask (client certificate, CN = deviceId), how
//! often, what an invalid request gets, the outcome operation, health, metrics and the
//! audit log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use beid_core::audit::{verify, Verdict};
use common::{Harness, USE_CASE};
use serde_json::{json, Value};
use uitpas_standin::Kind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_device_is_refused_and_no_source_is_asked() {
    let gateway = Harness::start().await;
    let device = gateway.device("balie-3");
    let (status, body) = device
        .check_as(Kind::ActiveGent.national_number(), USE_CASE, "balie-4")
        .await;
    assert_eq!(status, 403);
    assert_eq!(body, json!({"error": "device_mismatch"}));
    assert!(body.get("decision").is_none());
    assert_eq!(gateway.standin.lookups(), 0);
    assert!(gateway
        .audit_log()
        .contains(r#""device":"balie-3","reason":"device_mismatch","status":403"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_client_certificate_of_the_device_ca_there_is_no_connection() {
    let gateway = Harness::start().await;
    let anonymous = beid_gateway::tls::http_client(
        Some(&gateway.pki.ca_bundle()),
        None,
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let refused = anonymous
        .get(format!("{}/v1/health", gateway.url))
        .send()
        .await;
    assert!(refused.is_err(), "served without a client certificate");
    // A certificate from another CA with the right CN.
    let rogue_dir = tempfile::tempdir().unwrap();
    let rogue = common::Pki::new(rogue_dir.path());
    let (cert, key) = rogue.issue(
        "rogue",
        &["balie-3"],
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    );
    let rogue_client = beid_gateway::tls::http_client(
        Some(&gateway.pki.ca_bundle()),
        Some((&cert, &key)),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    assert!(rogue_client
        .get(format!("{}/v1/health", gateway.url))
        .send()
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_device_has_its_own_rate_limit() {
    // One check a minute, five at once.
    let gateway = Harness::start_rated((1, 5), "").await;
    let device = gateway.device("balie-3");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(device.check(Kind::ActiveGent.national_number()).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    let response = device
        .http
        .post(format!("{}/v1/eligibility-checks", device.url))
        .json(&json!({"requestId": uuid::Uuid::new_v4(), "useCase": USE_CASE,
            "nationalNumber": Kind::ActiveGent.national_number(), "channel": "counter", "deviceId": "balie-3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let other = gateway.device("balie-4");
    assert_eq!(other.check(Kind::ActiveGent.national_number()).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_get_400_with_a_code_and_never_echo_the_number() {
    let gateway = Harness::start().await;
    let device = gateway.device("balie-3");
    let id = uuid::Uuid::new_v4();
    let cases = [
        (
            json!({"requestId": id, "useCase": USE_CASE, "nationalNumber": "85610100148", "channel": "counter", "deviceId": "balie-3"}),
            "national_number_invalid",
        ),
        (
            json!({"requestId": id, "useCase": USE_CASE, "nationalNumber": "8561010014", "channel": "counter", "deviceId": "balie-3"}),
            "invalid_request",
        ),
        (
            json!({"requestId": id, "useCase": "two words", "nationalNumber": "85610100147", "channel": "counter", "deviceId": "balie-3"}),
            "use_case_invalid",
        ),
        (
            json!({"requestId": id, "useCase": USE_CASE, "nationalNumber": "85610100147", "channel": "web", "deviceId": "balie-3"}),
            "invalid_request",
        ),
        (
            json!({"requestId": id, "useCase": USE_CASE, "nationalNumber": "85610100147", "channel": "counter", "deviceId": "balie-3", "name": "x"}),
            "invalid_request",
        ),
        (
            json!({"requestId": "not-a-uuid", "useCase": USE_CASE, "nationalNumber": "85610100147", "channel": "counter", "deviceId": "balie-3"}),
            "invalid_request",
        ),
    ];
    for (body, code) in cases {
        let (status, answer) = device.post("/v1/eligibility-checks", &body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(code)),
            "{body}"
        );
        assert!(!answer.to_string().contains("8561010014"));
    }
    let response = device
        .http
        .post(format!("{}/v1/eligibility-checks", device.url))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(gateway.standin.lookups(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfigured_use_case_is_unknown() {
    let gateway = Harness::start().await;
    let device = gateway.device("balie-3");
    let (status, answer) = device
        .check_as(
            Kind::ActiveGent.national_number(),
            "lez-free-registration",
            "balie-3",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["decision"], "unknown");
    assert_eq!(answer["reasonCode"], "use_case_not_configured");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_are_validated_recorded_and_counted() {
    let gateway = Harness::start_with("[metrics]\nlisten = \"127.0.0.1:0\"\n").await;
    let device = gateway.device("balie-3");
    let request = uuid::Uuid::new_v4();
    let path = format!("/v1/eligibility-checks/{request}/outcome");
    let (status, _) = device
        .post(&path, &json!({"decision": "granted", "deviation": {"reason": "recently_moved", "note": "Verhuisd op 2 december"}}))
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        device
            .post(&path, &json!({"decision": "not_granted"}))
            .await
            .0,
        204
    );
    for bad in [
        json!({"decision": "granted", "deviation": {"reason": "other", "note": "rijksregister 85.61.01-001.47"}}),
        json!({"decision": "granted", "deviation": {"reason": "Recently moved"}}),
        json!({"decision": "maybe"}),
        json!({"decision": "granted", "nationalNumber": "85610100147"}),
        json!({"decision": "granted", "deviation": {"reason": "other", "note": "x".repeat(201)}}),
    ] {
        assert_eq!(device.post(&path, &bad).await.0, 400, "{bad}");
    }
    assert_eq!(
        device
            .post(
                "/v1/eligibility-checks/12/outcome",
                &json!({"decision": "granted"})
            )
            .await
            .0,
        400
    );
    let log = gateway.audit_log();
    assert!(log.contains(&format!(
        r#""type":"outcome","request":"{request}","device":"balie-3","decision":"granted","deviation":"recently_moved","note":true"#
    )));
    assert!(!log.contains("Verhuisd"), "the note's text is not kept");
    let text = gateway.gateway.metrics().render();
    assert!(
        text.contains(
            r#"beid_gateway_outcomes_total{decision="granted",deviation="recently_moved"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"beid_gateway_outcomes_total{decision="not_granted",deviation="none"} 1"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_chains_pseudonyms_never_numbers() {
    let gateway = Harness::start().await;
    let device = gateway.device("balie-3");
    for kind in [
        Kind::ActiveGent,
        Kind::Expired,
        Kind::Blocked,
        Kind::ActiveGent,
    ] {
        device.check(kind.national_number()).await;
    }
    let log = gateway.audit_log();
    let records: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records[0]["type"], "gateway_started");
    let checks: Vec<&Value> = records.iter().filter(|r| r["type"] == "check").collect();
    assert_eq!(checks.len(), 4);
    assert_eq!(checks[0]["decision"], "eligible");
    assert_eq!(checks[0]["source"], "uitpas");
    assert_eq!(checks[1]["reason"], "social_tariff_expired");
    assert_eq!(checks[2]["decision"], "unknown");
    assert_eq!(
        checks[0]["pseudonym"], checks[3]["pseudonym"],
        "one citizen, one pseudonym"
    );
    assert_ne!(checks[0]["pseudonym"], checks[1]["pseudonym"]);
    for kind in Kind::ALL {
        assert!(!log.contains(kind.national_number()));
    }
    gateway.gateway.flush_audit();
    let report = verify(gateway.dir.path().join("audit.jsonl")).unwrap();
    assert!(
        matches!(report.verdict(), Verdict::Intact),
        "{:?}",
        report.verdict()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_checks_sources_and_tokens_without_personal_data() {
    let mut gateway = Harness::start_with("[metrics]\nlisten = \"127.0.0.1:0\"\n").await;
    let device = gateway.device("balie-3");
    device.check(Kind::ActiveGent.national_number()).await;
    device.check(Kind::Blocked.national_number()).await;
    device
        .check_as(Kind::ActiveGent.national_number(), USE_CASE, "balie-9")
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(beid_gateway::serve_metrics(
        listener,
        gateway.gateway.metrics(),
        async {
            let _ = stopped.await;
        },
    ));
    let text = reqwest::get(format!("http://{address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"beid_gateway_checks_total{use_case="uitpas-kansentarief",decision="eligible"} 1"#,
        r#"beid_gateway_checks_total{use_case="uitpas-kansentarief",decision="unknown"} 1"#,
        r#"beid_gateway_source_errors_total{source="uitpas",reason="card_blocked"} 1"#,
        r#"beid_gateway_source_latency_seconds_count{source="uitpas"} 2"#,
        r#"beid_gateway_token_refreshes_total{source="uitpas",outcome="ok"} 1"#,
        r#"beid_gateway_refused_total{reason="device_mismatch"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
    for kind in Kind::ALL {
        assert!(!text.contains(kind.national_number()));
    }
    assert!(!text.contains("balie"), "no device ids in labels");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    gateway.stop().await;
}
