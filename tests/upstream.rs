//! The upstream surface: the HTTPS advice client against a real local rule service that
//! requires a client certificate (axum + tokio-rustls, test PKI by rcgen).
//!
//! Every failure is `unknown` with its own reason, never `not_eligible`.

// clippy.toml allows these inside `#[test]` functions only; the helpers here are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::upstream;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beid_agent::advice::OutcomeDelivery;
use beid_agent::advice::{
    Advice, AdviceRequest, AdviceService, Catalogue, Channel, CircuitSettings, CircuitState,
    Decision, HttpAdviceService, HttpSettings, Labels, Reason, UseCase,
};
use beid_agent::beid::NationalNumber;
use beid_core::contract::{Deviation, OutcomeFeedback, StaffDecision};
use upstream::{install_crypto, Pki, Protocol, Reply, Upstream};

const NATIONAL_NUMBER: &str = "85673003360";

fn settings(pki: &Pki, upstream: &Upstream) -> HttpSettings {
    let mut settings = HttpSettings::new(
        upstream.url.parse().unwrap(),
        pki.client_cert.clone(),
        pki.client_key.clone(),
        pki.ca_bundle.clone(),
    );
    settings.timeout = Duration::from_secs(3);
    settings.connect_timeout = Duration::from_secs(1);
    settings.retries = 2;
    settings.retry_backoff = Duration::from_millis(10);
    settings.circuit = CircuitSettings {
        failure_threshold: 3,
        cooldown: Duration::from_secs(30),
    };
    settings
}

async fn ask_for(service: &dyn AdviceService, use_case: &UseCase, channel: Channel) -> Advice {
    let national_number = NationalNumber::parse(NATIONAL_NUMBER.as_bytes()).unwrap();
    service
        .advise(AdviceRequest {
            national_number: &national_number,
            use_case,
            channel,
            device_id: "balie-3",
        })
        .await
}

async fn ask(service: &dyn AdviceService) -> Advice {
    let catalogue = Catalogue::default();
    let use_case = catalogue.get("uitpas-kansentarief").unwrap();
    ask_for(service, use_case, Channel::Counter).await
}

/// Start an upstream answering `reply`, ask once with default test settings (tuned by `tune`).
async fn one_question(reply: Reply, tune: impl FnOnce(&mut HttpSettings)) -> (Advice, Upstream) {
    install_crypto();
    let pki = Pki::new();
    let upstream = Upstream::start(&pki, reply).await;
    let mut settings = settings(&pki, &upstream);
    tune(&mut settings);
    let service = HttpAdviceService::new(&settings).unwrap();
    let advice = ask(&service).await;
    (advice, upstream)
}

fn assert_unknown(advice: &Advice, reason: Reason) {
    assert_eq!(advice.decision(), Decision::Unknown, "{advice:?}");
    assert_eq!(advice.reason(), Some(reason), "{advice:?}");
    assert_eq!(advice.reason_code(), None);
    assert_eq!(advice.valid_until(), None);
}

#[tokio::test]
async fn eligible_passes_through_with_its_details() {
    let (advice, upstream) = one_question(Reply::Decide("eligible"), |_| {}).await;
    assert_eq!(advice.decision(), Decision::Eligible);
    assert_eq!(advice.reason(), None);
    assert_eq!(advice.reason_code(), Some("TEST-1"));
    assert_eq!(
        advice.valid_until().map(|date| date.to_string()),
        Some("2026-12-31".to_owned())
    );
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn not_eligible_passes_through() {
    let (advice, _upstream) = one_question(Reply::Decide("not_eligible"), |_| {}).await;
    assert_eq!(advice.decision(), Decision::NotEligible);
    assert_eq!(advice.reason(), None);
}

#[tokio::test]
async fn the_request_body_carries_exactly_the_contract_fields() {
    install_crypto();
    let pki = Pki::new();
    let upstream = Upstream::start(&pki, Reply::Decide("eligible")).await;
    let service = HttpAdviceService::new(&settings(&pki, &upstream)).unwrap();
    let labels = Labels {
        nl: "LEZ".into(),
        fr: "LEZ".into(),
        de: "LEZ".into(),
        en: "LEZ".into(),
    };
    let use_case = UseCase::new(
        "lez-social-tariff",
        Some("lez_social_v2".into()),
        labels,
        vec![Channel::Kiosk],
    );
    let advice = ask_for(&service, &use_case, Channel::Kiosk).await;
    assert_eq!(advice.decision(), Decision::Eligible);
    ask(&service).await;

    let bodies = upstream.bodies();
    assert_eq!(bodies.len(), 2);
    let body = bodies[0].as_object().unwrap();
    let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "channel",
            "deviceId",
            "nationalNumber",
            "requestId",
            "useCase"
        ]
    );
    assert_eq!(
        body["useCase"], "lez_social_v2",
        "the rule name, not the id"
    );
    assert_eq!(body["nationalNumber"], NATIONAL_NUMBER);
    assert_eq!(body["channel"], "kiosk");
    assert_eq!(body["deviceId"], "balie-3");
    let first = uuid::Uuid::parse_str(body["requestId"].as_str().unwrap()).unwrap();
    assert_eq!(first.get_version_num(), 4);
    let second = uuid::Uuid::parse_str(bodies[1]["requestId"].as_str().unwrap()).unwrap();
    assert_ne!(first, second, "a fresh requestId per question");
    assert_eq!(bodies[1]["useCase"], "uitpas-kansentarief");
    assert_eq!(bodies[1]["channel"], "counter");
    assert_eq!(
        upstream.content_types(),
        ["application/json", "application/json"]
    );
}

#[tokio::test]
async fn a_client_certificate_the_upstream_does_not_trust_is_unknown_tls_rejected() {
    install_crypto();
    let pki = Pki::new();
    // Over h2 and over http/1.1: the alert reaches the client through different error paths.
    for protocol in [Protocol::Negotiated, Protocol::Http1] {
        let upstream = Upstream::start_with(&pki, Reply::Decide("not_eligible"), protocol).await;
        let mut settings = settings(&pki, &upstream);
        settings.client_cert = pki.rogue_client_cert.clone();
        settings.client_key = pki.rogue_client_key.clone();
        let service = HttpAdviceService::new(&settings).unwrap();
        let advice = ask(&service).await;
        assert_unknown(&advice, Reason::UpstreamTlsRejected);
        assert_eq!(upstream.hits(), 0, "{protocol:?}");
        assert_eq!(
            upstream.handshake_failures(),
            1,
            "TLS failures are not retried ({protocol:?})"
        );
    }
}

#[tokio::test]
async fn http1_upstreams_work_too() {
    install_crypto();
    let pki = Pki::new();
    let upstream = Upstream::start_with(&pki, Reply::Decide("eligible"), Protocol::Http1).await;
    let service = HttpAdviceService::new(&settings(&pki, &upstream)).unwrap();
    assert_eq!(ask(&service).await.decision(), Decision::Eligible);
    upstream.reply(Reply::Large { len: 100 * 1024 });
    assert_unknown(&ask(&service).await, Reason::UpstreamTooLarge);
    upstream.reply(Reply::Stream {
        len: 10 * 1024 * 1024,
    });
    assert_unknown(&ask(&service).await, Reason::UpstreamTooLarge);
}

#[tokio::test]
async fn an_untrusted_server_certificate_is_unknown_tls() {
    install_crypto();
    let pki = Pki::new();
    let upstream = Upstream::start(&pki, Reply::Decide("not_eligible")).await;
    let mut settings = settings(&pki, &upstream);
    settings.ca_bundle = pki.rogue_ca_bundle.clone();
    let service = HttpAdviceService::new(&settings).unwrap();
    let advice = ask(&service).await;
    assert_unknown(&advice, Reason::UpstreamTls);
    assert_eq!(
        upstream.hits(),
        0,
        "nothing was sent to an untrusted server"
    );
    // A refused server certificate is not retried: it will not get better in a second.
    // (The server handshakes one connection after another: once a good client has been
    // answered, every earlier handshake has ended and been counted.)
    let good = HttpAdviceService::new(&self::settings(&pki, &upstream)).unwrap();
    assert_eq!(ask(&good).await.decision(), Decision::NotEligible);
    assert_eq!(upstream.handshake_failures(), 1);
}

#[tokio::test]
async fn no_answer_in_time_is_unknown_timeout() {
    let (advice, upstream) = one_question(Reply::Hang, |settings| {
        settings.timeout = Duration::from_millis(300);
    })
    .await;
    assert_unknown(&advice, Reason::UpstreamTimeout);
    // It waited for the budget (an upper bound is a benchmark's business, not a test's).
    assert!(advice.latency() >= Duration::from_millis(300));
    assert_eq!(
        upstream.hits(),
        1,
        "a request that may have been processed is not retried"
    );
}

#[tokio::test]
async fn a_slow_drip_body_is_unknown_body_timeout() {
    let drip = Reply::Drip {
        len: 10_000,
        every: Duration::from_millis(20),
    };
    let (advice, _upstream) = one_question(drip, |settings| {
        settings.timeout = Duration::from_millis(500);
    })
    .await;
    assert_unknown(&advice, Reason::UpstreamBodyTimeout);
}

#[tokio::test]
async fn status_500_is_unknown_and_not_retried() {
    let (advice, upstream) = one_question(Reply::Status(500, None), |_| {}).await;
    assert_unknown(&advice, Reason::UpstreamStatus(500));
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn status_502_is_retried_then_unknown() {
    let (advice, upstream) = one_question(Reply::Status(502, None), |_| {}).await;
    assert_unknown(&advice, Reason::UpstreamStatus(502));
    assert_eq!(upstream.hits(), 3, "first attempt + 2 retries");
}

#[tokio::test]
async fn status_503_with_retry_after_is_honoured_then_succeeds() {
    install_crypto();
    let pki = Pki::new();
    let upstream = Upstream::start(&pki, Reply::Decide("eligible")).await;
    upstream.then(Reply::Status(503, Some("1")));
    let service = HttpAdviceService::new(&settings(&pki, &upstream)).unwrap();
    let advice = ask(&service).await;
    assert_eq!(advice.decision(), Decision::Eligible);
    assert_eq!(upstream.hits(), 2);
    assert!(
        advice.latency() >= Duration::from_secs(1),
        "{:?}",
        advice.latency()
    );
    assert_eq!(service.status().circuit, CircuitState::Closed);
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_gives_up_at_once() {
    let (advice, upstream) = one_question(Reply::Status(503, Some("120")), |_| {}).await;
    assert_unknown(&advice, Reason::UpstreamStatus(503));
    assert_eq!(upstream.hits(), 1);
    // It did not sleep out its 3 s budget hoping for the 120 s to pass.
    assert!(
        advice.latency() < Duration::from_secs(3),
        "{:?}",
        advice.latency()
    );
}

#[tokio::test]
async fn a_client_error_status_is_unknown_never_a_no_and_not_retried() {
    for status in [400, 401, 403, 404, 405, 409, 410, 422] {
        let (advice, upstream) = one_question(Reply::Status(status, None), |_| {}).await;
        assert_unknown(&advice, Reason::UpstreamStatus(status));
        assert_eq!(upstream.hits(), 1, "{status}");
    }
}

#[tokio::test]
async fn status_429_is_unknown_not_retried_and_counts_towards_the_breaker() {
    install_crypto();
    let pki = Pki::new();
    let upstream = Upstream::start(&pki, Reply::Status(429, Some("1"))).await;
    let service = HttpAdviceService::new(&settings(&pki, &upstream)).unwrap();
    assert_unknown(&ask(&service).await, Reason::UpstreamStatus(429));
    assert_eq!(upstream.hits(), 1);
    assert_eq!(service.status().consecutive_failures, 1);
}

#[tokio::test]
async fn a_redirect_is_unknown_and_the_national_number_goes_nowhere_else() {
    install_crypto();
    let pki = Pki::new();
    // A second live service, which would answer "no" to anything posted to it.
    let elsewhere = Upstream::start(&pki, Reply::Decide("not_eligible")).await;
    let target = format!("{}v1/eligibility-checks", elsewhere.url);
    for status in [301, 302, 303, 307, 308] {
        let (advice, upstream) =
            one_question(Reply::Redirect(status, target.clone()), |_| {}).await;
        assert_unknown(&advice, Reason::UpstreamStatus(status));
        assert_eq!(upstream.hits(), 1, "{status}");
    }
    assert_eq!(
        elsewhere.hits(),
        0,
        "nothing was posted to the redirect's target"
    );
}

#[tokio::test]
async fn malformed_json_is_unknown_malformed() {
    let (advice, _upstream) = one_question(Reply::Raw("{\"requestId\": "), |_| {}).await;
    assert_unknown(&advice, Reason::UpstreamMalformed);
}

#[tokio::test]
async fn an_unknown_decision_value_is_unknown_unknown_decision() {
    // The requestId matches (it is checked first), so only the decision is wrong.
    install_crypto();
    let pki = Pki::new();
    let upstream = Upstream::start(&pki, Reply::Decide("maybe")).await;
    let service = HttpAdviceService::new(&settings(&pki, &upstream)).unwrap();
    assert_unknown(&ask(&service).await, Reason::UpstreamUnknownDecision);
    upstream.reply(Reply::Decide("NOT_ELIGIBLE"));
    assert_unknown(&ask(&service).await, Reason::UpstreamUnknownDecision);
}

#[tokio::test]
async fn a_mismatched_request_id_is_unknown_mismatch() {
    let (advice, _upstream) = one_question(Reply::WrongRequestId, |_| {}).await;
    assert_unknown(&advice, Reason::UpstreamMismatch);
}

#[tokio::test]
async fn an_oversized_body_is_unknown_too_large() {
    let (advice, _upstream) = one_question(Reply::Large { len: 100 * 1024 }, |_| {}).await;
    assert_unknown(&advice, Reason::UpstreamTooLarge);
}

#[tokio::test]
async fn an_oversized_streamed_body_is_stopped_at_the_limit() {
    let (advice, _upstream) = one_question(
        Reply::Stream {
            len: 10 * 1024 * 1024,
        },
        |settings| {
            settings.max_body_bytes = 16 * 1024;
        },
    )
    .await;
    assert_unknown(&advice, Reason::UpstreamTooLarge);
}

#[tokio::test]
async fn a_closed_port_is_unknown_unavailable_after_retries() {
    install_crypto();
    let pki = Pki::new();
    let upstream = Upstream::start(&pki, Reply::Decide("eligible")).await;
    let mut settings = settings(&pki, &upstream);
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    settings.url = format!("https://{}/", closed.local_addr().unwrap())
        .parse()
        .unwrap();
    drop(closed);
    let service = HttpAdviceService::new(&settings).unwrap();
    let advice = ask(&service).await;
    assert_unknown(&advice, Reason::UpstreamUnavailable);
    assert_eq!(
        service.status().consecutive_failures,
        1,
        "one question, one failure"
    );
}

#[tokio::test]
async fn a_use_case_not_offered_on_the_channel_is_not_asked() {
    install_crypto();
    let pki = Pki::new();
    let upstream = Upstream::start(&pki, Reply::Decide("eligible")).await;
    let service = HttpAdviceService::new(&settings(&pki, &upstream)).unwrap();
    let labels = Labels {
        nl: "x".into(),
        fr: "x".into(),
        de: "x".into(),
        en: "x".into(),
    };
    let counter_only = UseCase::new("lez-social-tariff", None, labels, vec![Channel::Counter]);
    let advice = ask_for(&service, &counter_only, Channel::Kiosk).await;
    assert_unknown(&advice, Reason::UseCaseNotAllowed);
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn the_circuit_breaker_opens_fails_fast_and_recovers_after_a_probe() {
    install_crypto();
    let pki = Pki::new();
    let upstream = Upstream::start(&pki, Reply::Status(500, None)).await;
    let service = HttpAdviceService::new(&settings(&pki, &upstream)).unwrap();

    for _ in 0..3 {
        assert_unknown(&ask(&service).await, Reason::UpstreamStatus(500));
    }
    assert_eq!(service.status().circuit, CircuitState::Open);
    assert_eq!(service.status().consecutive_failures, 3);

    // Open: fail fast, the upstream is not asked.
    upstream.reply(Reply::Decide("eligible"));
    assert_unknown(&ask(&service).await, Reason::CircuitOpen);
    assert_eq!(upstream.hits(), 3);

    // Let the cool-down pass on tokio's clock, then one probe goes through and closes it.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(30)).await;
    tokio::time::resume();
    assert_eq!(service.status().circuit, CircuitState::HalfOpen);
    assert_eq!(ask(&service).await.decision(), Decision::Eligible);
    assert_eq!(upstream.hits(), 4);
    assert_eq!(service.status().circuit, CircuitState::Closed);
    assert_eq!(service.status().consecutive_failures, 0);
}

#[tokio::test]
async fn a_failed_probe_opens_the_breaker_again() {
    install_crypto();
    let pki = Pki::new();
    let upstream = Upstream::start(&pki, Reply::Status(503, None)).await;
    let mut settings = settings(&pki, &upstream);
    settings.retries = 0;
    let service = HttpAdviceService::new(&settings).unwrap();
    for _ in 0..3 {
        ask(&service).await;
    }
    assert_eq!(service.status().circuit, CircuitState::Open);
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(30)).await;
    tokio::time::resume();
    assert_unknown(&ask(&service).await, Reason::UpstreamStatus(503));
    assert_eq!(upstream.hits(), 4, "the probe went through");
    assert_eq!(service.status().circuit, CircuitState::Open);
    assert_unknown(&ask(&service).await, Reason::CircuitOpen);
    assert_eq!(upstream.hits(), 4);
}

/// A `MakeWriter` appending everything to one buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn the_national_number_never_appears_in_logs_or_debug_output() {
    install_crypto();
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(capture.clone())
        .finish();
    // The test runtime is single-threaded: client, server and connection tasks all log here.
    let _guard = tracing::subscriber::set_default(subscriber);

    let pki = Pki::new();
    let upstream = Upstream::start(&pki, Reply::Decide("eligible")).await;
    let service = HttpAdviceService::new(&settings(&pki, &upstream)).unwrap();
    let eligible = ask(&service).await;
    upstream.reply(Reply::WrongRequestId);
    let mismatch = ask(&service).await;
    upstream.then(Reply::Status(503, Some("0")));
    upstream.reply(Reply::Raw("not json"));
    let malformed = ask(&service).await;
    assert_eq!(eligible.decision(), Decision::Eligible);
    assert_eq!(
        upstream.bodies()[0]["nationalNumber"],
        NATIONAL_NUMBER,
        "it did leave, in the body"
    );

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("upstream_advice"),
        "the round trip was logged:\n{logs}"
    );
    assert!(logs.contains("request_id="), "{logs}");
    assert!(logs.contains("upstream_mismatch"), "{logs}");
    assert!(logs.contains("retrying"), "{logs}");
    assert!(
        !logs.contains(NATIONAL_NUMBER),
        "national number in the logs:\n{logs}"
    );

    let national_number = NationalNumber::parse(NATIONAL_NUMBER.as_bytes()).unwrap();
    let catalogue = Catalogue::default();
    let request = AdviceRequest {
        national_number: &national_number,
        use_case: catalogue.get("lez-free-registration").unwrap(),
        channel: Channel::Kiosk,
        device_id: "kiosk-1",
    };
    for text in [
        format!("{request:?}"),
        format!("{eligible:?} {mismatch:?} {malformed:?}"),
        format!("{service:?}"),
        format!("{:?}", service.status()),
    ] {
        assert!(!text.contains(NATIONAL_NUMBER), "{text}");
    }
}

#[tokio::test]
async fn unusable_files_are_refused_when_the_service_is_built() {
    install_crypto();
    let pki = Pki::new();
    let upstream = Upstream::start(&pki, Reply::Decide("eligible")).await;
    let mut wrong_key = settings(&pki, &upstream);
    wrong_key.client_key = pki.rogue_client_key.clone();
    let error = HttpAdviceService::new(&wrong_key).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("does not fit the client certificate"),
        "{error}"
    );
    let mut plain_http = settings(&pki, &upstream);
    plain_http.url = "http://127.0.0.1:1/".parse().unwrap();
    let error = HttpAdviceService::new(&plain_http).unwrap_err();
    assert!(error.to_string().contains("is not https"), "{error}");
    let mut missing = settings(&pki, &upstream);
    missing.ca_bundle = pki.dir.join("absent.pem");
    let error = HttpAdviceService::new(&missing).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("cannot read the CA bundle file"),
        "{error}"
    );
}

#[tokio::test]
async fn the_clerks_outcome_goes_back_under_the_questions_request_id_without_the_number() {
    install_crypto();
    let pki = Pki::new();
    let upstream = Upstream::start(&pki, Reply::Decide("not_eligible")).await;
    let service = HttpAdviceService::new(&settings(&pki, &upstream)).unwrap();
    let advice = ask(&service).await;
    assert_eq!(
        advice.basis(),
        Some(beid_agent::advice::Basis::EntitlementRule)
    );
    let request_id = advice
        .request_id()
        .expect("an answered advice has its request id");
    assert_eq!(
        upstream.bodies()[0]["requestId"],
        request_id.to_string(),
        "the id the upstream was asked under"
    );
    let feedback = OutcomeFeedback {
        decision: StaffDecision::Granted,
        deviation: Some(Deviation {
            reason: "recently_moved".into(),
            note: Some("Verhuisd op 2 december".into()),
        }),
    };
    // A 503 is retried; then delivered.
    upstream.outcome_statuses(&[503]);
    assert_eq!(
        service.send_outcome(request_id, &feedback).await,
        OutcomeDelivery::Delivered
    );
    let outcomes = upstream.outcomes();
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[1].0, request_id.to_string());
    assert_eq!(
        outcomes[1].1,
        serde_json::json!({"decision": "granted",
            "deviation": {"reason": "recently_moved", "note": "Verhuisd op 2 december"}})
    );
    assert!(!outcomes[1].1.to_string().contains(NATIONAL_NUMBER));
}

#[tokio::test]
async fn a_service_without_outcomes_is_not_asked_again() {
    install_crypto();
    let pki = Pki::new();
    let upstream = Upstream::start(&pki, Reply::Decide("eligible")).await;
    let service = HttpAdviceService::new(&settings(&pki, &upstream)).unwrap();
    let request_id = ask(&service).await.request_id().unwrap();
    let feedback = OutcomeFeedback {
        decision: StaffDecision::Granted,
        deviation: None,
    };
    upstream.outcome_statuses(&[404]);
    assert_eq!(
        service.send_outcome(request_id, &feedback).await,
        OutcomeDelivery::NotSupported
    );
    assert_eq!(
        service.send_outcome(request_id, &feedback).await,
        OutcomeDelivery::NotSupported
    );
    assert_eq!(upstream.outcomes().len(), 1, "asked once, then never again");
    // A refused outcome (4xx) is not retried.
    let fresh = HttpAdviceService::new(&settings(&pki, &upstream)).unwrap();
    upstream.outcome_statuses(&[400]);
    assert_eq!(
        fresh.send_outcome(request_id, &feedback).await,
        OutcomeDelivery::Failed
    );
    assert_eq!(upstream.outcomes().len(), 2);
}

/// `docs/upstream-openapi.yaml` and `beid_core::contract` describe the same contract: what
/// the types write validates against the document's schemas, and the document's examples
/// read as the types.
#[test]
fn the_contract_document_describes_the_types_that_speak_it() {
    use beid_core::contract::{
        AnswerDecision, Basis, Channel, EligibilityAnswer, EligibilityCheck,
    };
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/upstream-openapi.yaml"),
    )
    .unwrap();
    let document: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    let validate = |schema: &str, value: &serde_json::Value| {
        let mut schema = serde_json::json!({"$ref": format!("#/components/schemas/{schema}")});
        schema["components"] = document["components"].clone();
        let validator = jsonschema::draft202012::new(&schema).unwrap();
        let problems: Vec<String> = validator
            .iter_errors(value)
            .map(|e| e.to_string())
            .collect();
        assert!(
            problems.is_empty(),
            "{value} is not a {schema}: {problems:?}"
        );
    };
    let check = EligibilityCheck {
        request_id: uuid::Uuid::new_v4(),
        use_case: "uitpas-kansentarief".into(),
        national_number: NationalNumber::parse(NATIONAL_NUMBER.as_bytes()).unwrap(),
        channel: Channel::Kiosk,
        device_id: "balie-3".into(),
    };
    validate("EligibilityCheck", &serde_json::to_value(&check).unwrap());
    for decision in [
        AnswerDecision::Eligible,
        AnswerDecision::NotEligible,
        AnswerDecision::Unknown,
    ] {
        for basis in [
            None,
            Some(Basis::EntitlementRule),
            Some(Basis::RegisteredStatus),
        ] {
            let answer = EligibilityAnswer {
                request_id: check.request_id,
                decision,
                reason_code: Some("not_registered".into()),
                valid_until: Some(time::macros::date!(2026 - 12 - 31)),
                basis,
                clerk_message: Some("Kaart geblokkeerd".into()),
            };
            validate("EligibilityAnswer", &serde_json::to_value(&answer).unwrap());
        }
    }
    let feedback = OutcomeFeedback {
        decision: StaffDecision::NotGranted,
        deviation: Some(Deviation {
            reason: "household_situation".into(),
            note: Some("Alleenstaand sinds vorige maand".into()),
        }),
    };
    validate("Outcome", &serde_json::to_value(&feedback).unwrap());
    // The document's own examples read as the types.
    let check_path = &document["paths"]["/v1/eligibility-checks"]["post"];
    let example = &check_path["requestBody"]["content"]["application/json"]["example"];
    serde_json::from_value::<EligibilityCheck>(example.clone()).unwrap();
    for (name, example) in check_path["responses"]["200"]["content"]["application/json"]["examples"]
        .as_object()
        .unwrap()
    {
        serde_json::from_value::<EligibilityAnswer>(example["value"].clone())
            .unwrap_or_else(|e| panic!("example {name}: {e}"));
    }
    let outcome_path = &document["paths"]["/v1/eligibility-checks/{requestId}/outcome"]["post"];
    serde_json::from_value::<OutcomeFeedback>(
        outcome_path["requestBody"]["content"]["application/json"]["example"].clone(),
    )
    .unwrap();
    // And the document names exactly the decisions the types know.
    let decisions =
        &document["components"]["schemas"]["EligibilityAnswer"]["properties"]["decision"]["enum"];
    assert_eq!(
        decisions,
        &serde_json::json!(["eligible", "not_eligible", "unknown"])
    );
}

/// The fleet's certificate alerts rest on this: the client certificate's not-after from the
/// start, the server's from the first verified handshake.
#[tokio::test]
async fn both_certificates_expiries_are_known_once_seen() {
    install_crypto();
    let pki = Pki::new();
    let upstream = Upstream::start(&pki, Reply::Decide("eligible")).await;
    let service = HttpAdviceService::new(&settings(&pki, &upstream)).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let before = service.certificate_expiry();
    assert!(before.client.is_some_and(|at| at > now), "{before:?}");
    assert_eq!(before.server, None, "no handshake yet");
    assert_eq!(ask(&service).await.decision(), Decision::Eligible);
    let after = service.certificate_expiry();
    assert_eq!(after.client, before.client);
    assert!(after.server.is_some_and(|at| at > now), "{after:?}");
}

/// The body limit is exact, both where the Content-Length announces the size and where the
/// body streams without one: `max_body_bytes` are read, one more byte is too large.
#[tokio::test]
async fn a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_too_large() {
    const LIMIT: usize = 4096;
    for streamed in [false, true] {
        let limited = |settings: &mut HttpSettings| settings.max_body_bytes = LIMIT;
        let padded = |len| Reply::Padded { len, streamed };
        let (advice, _upstream) = one_question(padded(LIMIT), limited).await;
        assert_eq!(advice.decision(), Decision::Eligible, "streamed {streamed}");
        let (advice, _upstream) = one_question(padded(LIMIT + 1), limited).await;
        assert_unknown(&advice, Reason::UpstreamTooLarge);
    }
}

/// An announced size past the limit is refused before reading: a body that would take
/// longer than the question's whole budget to arrive is still `too large`, not a timeout.
#[tokio::test]
async fn an_announced_oversized_body_is_refused_without_reading_it() {
    let (advice, _upstream) = one_question(
        Reply::Drip {
            len: 64 * 1024,
            every: Duration::from_secs(1),
        },
        |settings| settings.max_body_bytes = 16 * 1024,
    )
    .await;
    assert_unknown(&advice, Reason::UpstreamTooLarge);
}

/// Questions negotiate HTTP/2 where the upstream offers it (one connection multiplexes a
/// counter's questions); only the health probe keeps to HTTP/1.1.
#[tokio::test]
async fn questions_use_http2_where_the_upstream_offers_it() {
    let (advice, upstream) = one_question(Reply::Decide("eligible"), |_| {}).await;
    assert_eq!(advice.decision(), Decision::Eligible);
    assert_eq!(upstream.versions(), [axum::http::Version::HTTP_2]);
}
