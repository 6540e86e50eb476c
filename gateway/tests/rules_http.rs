//! The rules-http source against a test rule engine that requires a client certificate,
//! and use cases combining it with UiTPAS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use beid_gateway::server::TlsListener;
use common::Harness;
use serde_json::{json, Value};
use uitpas_standin::Kind;

/// The engine's answers by national number; anything else gets `503`.
#[derive(Clone, Default)]
struct Engine {
    answers: Arc<HashMap<&'static str, Value>>,
    bodies: Arc<Mutex<Vec<Value>>>,
}

async fn decide(State(engine): State<Engine>, Json(body): Json<Value>) -> axum::response::Response {
    use axum::response::IntoResponse;
    engine.bodies.lock().unwrap().push(body.clone());
    let number = body["nationalNumber"].as_str().unwrap_or_default();
    match engine.answers.get(number) {
        Some(answer) => Json(answer.clone()).into_response(),
        None => axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

const ENGINE_YES: &str = "85610100147"; // UiTPAS: active in Gent
const ENGINE_NO: &str = "85630300594"; // UiTPAS: expired
const ENGINE_UNDECIDED: &str = "85650500944"; // UiTPAS: blocked
const ENGINE_DOWN: &str = "85660601119"; // UiTPAS: none
const UITPAS_NO_ENGINE_YES: &str = "85640400769"; // UiTPAS: suspended
const UITPAS_BLOCKED_ENGINE_NO: &str = "71715100070"; // UiTPAS: blocked (a fixture card)

struct Started {
    gateway: Harness,
    engine: Engine,
    _engine_dir: tempfile::TempDir,
}

async fn start() -> Started {
    common::install_crypto();
    let engine_dir = tempfile::tempdir().unwrap();
    let pki = common::Pki::new(engine_dir.path());
    let (client_cert, client_key) = pki.issue(
        "gateway-client",
        &["beid-gateway"],
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    );
    let engine = Engine {
        answers: Arc::new(HashMap::from([
            (
                ENGINE_YES,
                json!({"result": "ELIGIBLE", "code": "LEZ-65", "until": "2026-12-31"}),
            ),
            (
                ENGINE_NO,
                json!({"result": "NOT_ELIGIBLE", "code": "income_above_limit"}),
            ),
            (
                ENGINE_UNDECIDED,
                json!({"result": "UNDECIDED", "code": "data_missing"}),
            ),
            (UITPAS_NO_ENGINE_YES, json!({"result": "ELIGIBLE"})),
            (UITPAS_BLOCKED_ENGINE_NO, json!({"result": "NOT_ELIGIBLE"})),
        ])),
        bodies: Arc::default(),
    };
    let tls = beid_gateway::tls::server_config(
        &engine_dir.path().join("server.pem"),
        &engine_dir.path().join("server.key"),
        &pki.ca_bundle(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new()
        .route("/decide", post(decide))
        .with_state(engine.clone());
    tokio::spawn(async move { axum::serve(TlsListener::new(listener, tls), app).await });
    let extra = format!(
        "[rules_http]\nurl = \"https://127.0.0.1:{port}/decide\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n\
         ca_bundle = \"{}\"\ndecision_pointer = \"/result\"\neligible_values = [\"ELIGIBLE\"]\n\
         not_eligible_values = [\"NOT_ELIGIBLE\"]\nreason_pointer = \"/code\"\nvalid_until_pointer = \"/until\"\n\n\
         [[use_cases]]\nid = \"lez-social-tariff\"\nsources = [\"rules-http\"]\n\n\
         [[use_cases]]\nid = \"kansentarief-either\"\nsources = [\"uitpas\", \"rules-http\"]\ncombine = \"eligible_if_any\"\nrule = \"kansentarief\"\n",
        client_cert.display(),
        client_key.display(),
        pki.ca_bundle().display(),
    );
    Started {
        gateway: Harness::start_with(&extra).await,
        engine,
        _engine_dir: engine_dir,
    }
}

fn decision(answer: &Value) -> (&str, &str) {
    (
        answer["decision"].as_str().unwrap_or(""),
        answer["reasonCode"].as_str().unwrap_or(""),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engines_answers_are_mapped_over_mutual_tls() {
    let started = start().await;
    let device = started.gateway.device("balie-3");
    let (_, yes) = device
        .check_as(ENGINE_YES, "lez-social-tariff", "balie-3")
        .await;
    assert_eq!(decision(&yes), ("eligible", "LEZ-65"));
    assert_eq!(yes["basis"], "entitlement_rule");
    assert_eq!(yes["validUntil"], "2026-12-31");
    let (_, no) = device
        .check_as(ENGINE_NO, "lez-social-tariff", "balie-3")
        .await;
    assert_eq!(decision(&no), ("not_eligible", "income_above_limit"));
    let (_, undecided) = device
        .check_as(ENGINE_UNDECIDED, "lez-social-tariff", "balie-3")
        .await;
    assert_eq!(decision(&undecided), ("unknown", "data_missing"));
    let bodies = started.engine.bodies.lock().unwrap().clone();
    assert_eq!(bodies[0]["nationalNumber"], ENGINE_YES);
    assert_eq!(bodies[0]["rule"], "lez-social-tariff");
    assert!(uuid::Uuid::parse_str(bodies[0]["requestId"].as_str().unwrap()).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_failure_is_unknown_and_pauses_it() {
    let started = start().await;
    let device = started.gateway.device("balie-3");
    let (_, down) = device
        .check_as(ENGINE_DOWN, "lez-social-tariff", "balie-3")
        .await;
    assert_eq!(decision(&down), ("unknown", "source_unavailable"));
    let asked = started.engine.bodies.lock().unwrap().len();
    let (_, paused) = device
        .check_as(ENGINE_NO, "lez-social-tariff", "balie-3")
        .await;
    assert_eq!(decision(&paused), ("unknown", "source_unavailable"));
    assert_eq!(
        started.engine.bodies.lock().unwrap().len(),
        asked,
        "asked during back-off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eligible_if_any_combines_both_sources_and_never_turns_unknown_into_no() {
    let started = start().await;
    let device = started.gateway.device("balie-3");
    let cases = [
        (UITPAS_NO_ENGINE_YES, ("eligible", "")),
        (ENGINE_NO, ("not_eligible", "social_tariff_expired")),
        (UITPAS_BLOCKED_ENGINE_NO, ("unknown", "card_blocked")),
        (ENGINE_UNDECIDED, ("unknown", "card_blocked")),
    ];
    for (number, want) in cases {
        let (_, answer) = device
            .check_as(number, "kansentarief-either", "balie-3")
            .await;
        assert_eq!(decision(&answer), want, "{number}: {answer}");
    }
    assert_eq!(
        started.engine.bodies.lock().unwrap()[0]["rule"],
        "kansentarief"
    );
    // The uitpas kinds decide alone for the uitpas-only use case.
    let (_, answer) = device.check(Kind::ActiveGent.national_number()).await;
    assert_eq!(decision(&answer).0, "eligible");
}
