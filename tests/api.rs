//! The local API over a real socket: the agent's router on 127.0.0.1 port 0 with simulated
//! readers and the simulated rule service, clients with different scopes and origins.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::raw;

use std::sync::Arc;
use std::time::Duration;

use beid_agent::api::{self, AppState, Client, Clients, Scope};
use beid_agent::metrics::Metrics;
use beid_agent::session::{Engine, EngineSettings};
use beid_agent::sim::SimulatedReaders;
use reqwest::header::{HeaderMap, ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL};
use serde_json::{json, Value};

const POS: &str = "pos-token-0123456789-0123456789-0123456789";
const KIOSK: &str = "kiosk-token-0123456789-0123456789-012345";
const FULL: &str = "full-token-0123456789-0123456789-0123456789";
const IDENTITY_ONLY: &str = "identity-token-0123456789-0123456789-0123";
const PROMETHEUS: &str = "prometheus-token-0123456789-0123456789-01";
const POS_ORIGIN: &str = "https://pos.uitpas.example";

struct Agent {
    base: String,
    http: reqwest::Client,
}

async fn start() -> Agent {
    start_with(|state| state).await
}

/// The agent with its state changed by `configure` (other caps, another failure budget).
async fn start_with(configure: impl FnOnce(AppState) -> AppState) -> Agent {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let source = Arc::new(SimulatedReaders::new(
        &["Simulated reader 1", "Simulated reader 2"],
        false,
    ));
    let settings = EngineSettings {
        device_id: "balie-3".into(),
        ..EngineSettings::simulated(None).unwrap()
    };
    let metrics = Arc::new(Metrics::default());
    let engine = Engine::start(source.clone(), settings, metrics.clone()).unwrap();
    let clients = Clients::new(vec![
        Client::new(
            "pos",
            POS,
            vec![Scope::Advice, Scope::Identity],
            vec![POS_ORIGIN.into()],
        ),
        Client::new("kiosk", KIOSK, vec![Scope::Advice], vec![]),
        Client::new(
            "full",
            FULL,
            vec![Scope::Advice, Scope::Identity, Scope::NationalNumber],
            vec![],
        ),
        Client::new(
            "identity-only",
            IDENTITY_ONLY,
            vec![Scope::Identity],
            vec![],
        ),
        Client::new("prometheus", PROMETHEUS, vec![Scope::Metrics], vec![]),
    ]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state =
        configure(AppState::new(engine, clients, metrics, port)).with_simulator(Some(source));
    tokio::spawn(api::serve(listener, state, std::future::pending()));
    Agent {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    }
}

impl Agent {
    /// `127.0.0.1:PORT`, for raw requests.
    fn address(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Opens an event stream for the client of `token` (a ticket, then the stream): the
    /// ticket's refusal, or the stream's answer.
    async fn stream(&self, token: &str) -> reqwest::Response {
        let ticket = self
            .post("/v1/events/ticket", token, json!({}))
            .send()
            .await
            .unwrap();
        if ticket.status() != 200 {
            return ticket;
        }
        let ticket: Value = ticket.json().await.unwrap();
        self.http
            .get(format!(
                "{}/v1/events?ticket={}",
                self.base,
                ticket["ticket"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap()
    }

    /// A GET with no token.
    async fn anonymous(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// `/metrics` as Prometheus scrapes it (the metrics scope).
    async fn metrics(&self) -> String {
        let response = self.get("/metrics", PROMETHEUS).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    fn post(&self, path: &str, token: &str, body: Value) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
    }

    async fn insert(&self, card: &str) {
        let response = self
            .post("/v1/simulator/insert", FULL, json!({"card": card}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let inserted: Value = response.json().await.unwrap();
        assert!(inserted["session"].is_string(), "{inserted}");
    }

    async fn remove(&self) {
        let response = self
            .post("/v1/simulator/remove", FULL, json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    }

    /// The session of the card in the first reader (inserted just before).
    async fn session(&self) -> String {
        let readers: Value = self
            .get("/v1/readers", FULL)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        readers[0]["session"]
            .as_str()
            .expect("a session")
            .to_owned()
    }

    async fn advise(&self, session: &str, token: &str) -> reqwest::Response {
        self.post(
            &format!("/v1/sessions/{session}/advice"),
            token,
            json!({"useCase": "uitpas-kansentarief"}),
        )
        .send()
        .await
        .unwrap()
    }
}

fn no_store(headers: &HeaderMap) -> bool {
    headers.get(CACHE_CONTROL).is_some_and(|v| v == "no-store")
}

#[tokio::test]
async fn tokens_hosts_and_scopes_are_enforced() {
    let agent = start().await;
    let status = |r: reqwest::Response| r.status().as_u16();
    let anonymous = agent.anonymous("/v1/status").await;
    assert_eq!(anonymous.status(), 401);
    assert!(no_store(anonymous.headers()));
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(
        status(agent.get("/v1/status", "wrong-token").send().await.unwrap()),
        401
    );
    assert_eq!(
        status(agent.get("/v1/status", IDENTITY_ONLY).send().await.unwrap()),
        403
    );
    assert_eq!(
        status(agent.get("/v1/status", KIOSK).send().await.unwrap()),
        200
    );
    // Each client hears its own scopes.
    for (token, scopes) in [
        (KIOSK, serde_json::json!(["advice"])),
        (POS, serde_json::json!(["advice", "identity"])),
        (
            FULL,
            serde_json::json!(["advice", "identity", "national-number"]),
        ),
    ] {
        let body: Value = agent
            .get("/v1/status", token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["scopes"], scopes);
    }

    // DNS rebinding: a name that resolves to 127.0.0.1 but is not the agent's.
    for path in ["/v1/status", "/healthz", "/kiosk/"] {
        let response = agent
            .get(path, FULL)
            .header("Host", "attacker.example:8099")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "host_not_allowed");
    }
}

#[tokio::test]
async fn origins_are_checked_on_every_request_and_cors_names_only_the_clients_own() {
    let agent = start().await;
    let foreign = agent
        .get("/v1/status", POS)
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    assert!(foreign.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    // Another client's origin is foreign too, valid token or not.
    let other = agent
        .get("/v1/status", KIOSK)
        .header("Origin", POS_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);

    let own = agent
        .get("/v1/status", POS)
        .header("Origin", POS_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert_eq!(own.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], POS_ORIGIN);
    assert_eq!(own.headers()["vary"], "Origin");

    let preflight = |origin: &'static str| {
        agent
            .http
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/v1/status", agent.base),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
    };
    let allowed = preflight(POS_ORIGIN).await.unwrap();
    assert_eq!(allowed.status(), 204);
    assert_eq!(allowed.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], POS_ORIGIN);
    assert_eq!(
        allowed.headers()["access-control-allow-private-network"],
        "true"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

#[tokio::test]
async fn a_session_shows_only_what_the_scopes_allow() {
    let agent = start().await;
    agent.insert("gen-1.8-ec").await;
    let session = agent.session().await;
    // Reading takes a moment: asking for advice waits for it.
    assert_eq!(agent.advise(&session, FULL).await.status(), 200);
    let view = |token| {
        let request = agent.get(&format!("/v1/sessions/{session}"), token);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let kiosk = view(KIOSK).await;
    assert_eq!(kiosk["state"], "ready");
    assert_eq!(kiosk["authenticity"]["authentic"], true);
    assert!(kiosk.get("identity").is_none());
    assert!(kiosk.get("nationalNumber").is_none());
    let pos = view(POS).await;
    assert_eq!(pos["identity"]["surname"], "Testkaart");
    assert!(pos.get("nationalNumber").is_none());
    let full = view(FULL).await;
    assert!(
        full.get("nationalNumber").is_none(),
        "only when asked: {full}"
    );
    // The national number only at its own route, only with its scope.
    let number = |token| agent.get(&format!("/v1/sessions/{session}/national-number"), token);
    let refused = number(POS).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let asked = number(FULL).send().await.unwrap();
    assert_eq!(asked.status(), 200);
    let asked: Value = asked.json().await.unwrap();
    assert_eq!(asked["nationalNumber"], "03641299855");
    assert_eq!(asked["session"], session.as_str());
    let kiosk_text = serde_json::to_string(&kiosk).unwrap();
    assert!(!kiosk_text.contains("03641299855") && !kiosk_text.contains("Testkaart"));
}

#[tokio::test]
async fn the_next_citizen_never_gets_the_previous_advice() {
    let agent = start().await;
    agent.insert("gen-1.8-ec").await;
    let first = agent.session().await;
    let answer: Value = agent.advise(&first, KIOSK).await.json().await.unwrap();
    assert_eq!(answer["decision"], "eligible");
    assert_eq!(answer["session"], first.as_str());
    assert!(answer["decidedAt"].as_str().unwrap().ends_with('Z'));

    agent.remove().await;
    let gone = agent.advise(&first, KIOSK).await;
    assert_eq!(gone.status(), 410);
    let gone_view = agent
        .get(&format!("/v1/sessions/{first}"), KIOSK)
        .send()
        .await
        .unwrap();
    assert_eq!(gone_view.status(), 410);

    agent.insert("gen-1.7-rsa2048").await;
    let second = agent.session().await;
    assert_ne!(first, second);
    let answer: Value = agent.advise(&second, KIOSK).await.json().await.unwrap();
    assert_eq!(answer["decision"], "not_eligible");
    let unknown = agent
        .advise("00000000-0000-4000-8000-000000000000", KIOSK)
        .await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn bodies_must_be_small_json() {
    let agent = start().await;
    agent.insert("gen-1.8-ec").await;
    let session = agent.session().await;
    let url = format!("{}/v1/sessions/{session}/advice", agent.base);
    let text = agent
        .http
        .post(&url)
        .bearer_auth(KIOSK)
        .header("Content-Type", "text/plain")
        .body(r#"{"useCase":"uitpas-kansentarief"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    let huge = format!(r#"{{"useCase":"{}"}}"#, "x".repeat(5000));
    let large = agent
        .http
        .post(&url)
        .bearer_auth(KIOSK)
        .header("Content-Type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(large.status(), 413);
    let wrong = agent
        .post(
            &format!("/v1/sessions/{session}/advice"),
            KIOSK,
            json!({"useCase": "no-such-thing"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 400);
}

/// Reads Server-Sent Events until `until` is seen or the time runs out.
async fn collect_events(
    response: &mut reqwest::Response,
    until: &str,
    limit: Duration,
) -> Vec<(String, Value)> {
    let mut text = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while !events
        .iter()
        .any(|(name, _): &(String, Value)| name == until)
    {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("events in time")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let name = block
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .map(str::to_owned);
            let data = block
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .map(|d| serde_json::from_str(d).unwrap());
            if let (Some(name), Some(data)) = (name, data) {
                events.push((name, data));
            }
        }
    }
    events
}

#[tokio::test]
async fn events_come_in_order_through_a_single_use_ticket() {
    let agent = start().await;
    let ticket: Value = agent
        .post("/v1/events/ticket", KIOSK, json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = ticket["ticket"].as_str().unwrap().to_owned();
    let url = format!("{}/v1/events?ticket={ticket}", agent.base);
    let mut stream = agent.http.get(&url).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    // Used once: a second use, or a made-up ticket, is refused.
    assert_eq!(agent.http.get(&url).send().await.unwrap().status(), 401);
    let made_up = format!("{}/v1/events?ticket=0123456789abcdef", agent.base);
    assert_eq!(agent.http.get(&made_up).send().await.unwrap().status(), 401);

    agent.insert("gen-1.8-ec").await;
    let mut seen = collect_events(&mut stream, "card-read", Duration::from_secs(10)).await;
    let session = seen.iter().find(|(n, _)| n == "card-inserted").unwrap().1["session"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(agent.advise(&session, KIOSK).await.status(), 200);
    agent.remove().await;
    seen.extend(collect_events(&mut stream, "card-removed", Duration::from_secs(10)).await);
    let order: Vec<&str> = seen
        .iter()
        .filter(|(_, data)| data["session"] == session.as_str())
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(
        order,
        ["card-inserted", "card-read", "advice", "card-removed"]
    );
    let advice = &seen.iter().find(|(n, _)| n == "advice").unwrap().1;
    assert_eq!(advice["decision"], "eligible");
    assert_eq!(advice["useCase"], "uitpas-kansentarief");
    let all = serde_json::to_string(&seen.iter().map(|(_, d)| d).collect::<Vec<_>>()).unwrap();
    assert!(
        !all.contains("03641299855") && !all.contains("Testkaart"),
        "{all}"
    );
}

#[tokio::test]
async fn health_and_openapi_need_only_the_host() {
    let agent = start().await;
    let health = agent.anonymous("/healthz").await;
    assert_eq!(health.status(), 200);
    let openapi: Value = agent
        .anonymous("/v1/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(openapi["openapi"], "3.1.0");
    assert!(openapi["paths"]["/v1/sessions/{session}/advice"]["post"].is_object());
}

/// Issue 12, finding 9: the decision counters show each citizen's outcome as it happens, so
/// `/metrics` is for a client with the `metrics` scope (Prometheus' bearer token) only.
#[tokio::test]
async fn metrics_need_a_token_with_the_metrics_scope() {
    let agent = start().await;
    let _ = agent.get("/v1/status", "wrong-token").send().await.unwrap();
    let anonymous = agent.anonymous("/metrics").await;
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    for token in [FULL, POS, KIOSK] {
        let other = agent.get("/metrics", token).send().await.unwrap();
        assert_eq!(other.status(), 403);
        let body: Value = other.json().await.unwrap();
        assert_eq!(body["error"], "scope_missing");
    }
    let scraped = agent.get("/metrics", PROMETHEUS).send().await.unwrap();
    assert_eq!(scraped.status(), 200);
    let metrics = scraped.text().await.unwrap();
    assert!(
        metrics.contains("beid_api_requests_total{route=\"/v1/status\",status=\"401\"} 1"),
        "{metrics}"
    );
    // The metrics client sees nothing else.
    assert_eq!(
        agent
            .get("/v1/status", PROMETHEUS)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
}

/// The agent's own OpenAPI document, and a check of an answer against the schema it gives
/// for that operation and status: the document is generated from the code, this proves
/// it describes what the code answers.
struct Contract {
    document: Value,
}

impl Contract {
    async fn fetch(agent: &Agent) -> Self {
        let document = agent
            .anonymous("/v1/openapi.json")
            .await
            .json()
            .await
            .unwrap();
        Self { document }
    }

    fn check(&self, method: &str, path: &str, status: u16, body: &Value) {
        let operation = &self.document["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        let response = &operation["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "{method} {path}: status {status} is not documented"
        );
        let mut schema = response["content"]["application/json"]["schema"].clone();
        assert!(
            schema.is_object(),
            "{method} {path} {status}: no JSON schema"
        );
        schema["components"] = self.document["components"].clone();
        let validator = jsonschema::draft202012::new(&schema)
            .unwrap_or_else(|e| panic!("{method} {path} {status}: bad schema: {e}"));
        let problems: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            problems.is_empty(),
            "{method} {path} {status}: {problems:?}\n{body}"
        );
    }

    /// Sends `request`, checks the answer against the contract, returns status and body.
    async fn call(
        &self,
        method: &str,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> (u16, Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status != 204 {
            self.check(method, path, status, &body);
        }
        (status, body)
    }
}

#[tokio::test]
async fn the_clerks_outcome_is_checked_recorded_announced_and_documented() {
    let agent = start().await;
    let contract = Contract::fetch(&agent).await;
    let mut stream = {
        let ticket: Value = agent
            .post("/v1/events/ticket", POS, json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = format!(
            "{}/v1/events?ticket={}",
            agent.base,
            ticket["ticket"].as_str().unwrap()
        );
        agent.http.get(&url).send().await.unwrap()
    };
    // gen-1.7-rsa2048: not eligible for UiTPAS in the embedded fixture.
    agent.insert("gen-1.7-rsa2048").await;
    let session = agent.session().await;
    let outcome_path = "/v1/sessions/{session}/outcome";
    let outcome = |body: Value| agent.post(&format!("/v1/sessions/{session}/outcome"), POS, body);
    let uitpas = "uitpas-kansentarief";
    // Before the advice: nothing to decide on.
    let (status, body) = contract
        .call(
            "post",
            outcome_path,
            outcome(json!({"useCase": uitpas, "decision": "granted"})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("advice_not_asked"))
    );
    let (status, advice) = contract
        .call(
            "post",
            "/v1/sessions/{session}/advice",
            agent.post(
                &format!("/v1/sessions/{session}/advice"),
                POS,
                json!({"useCase": uitpas}),
            ),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(advice["decision"], "not_eligible");
    // Granting against a "no" needs a configured reason and a clean, short note.
    for (body, code) in [
        (
            json!({"useCase": uitpas, "decision": "granted"}),
            "deviation_required",
        ),
        (
            json!({"useCase": uitpas, "decision": "granted", "deviation": {"reason": "bribe"}}),
            "deviation_reason_unknown",
        ),
        (
            json!({"useCase": uitpas, "decision": "granted",
                   "deviation": {"reason": "recently_moved", "note": "INSZ 85.61.30-033.18"}}),
            "note_has_national_number",
        ),
        (
            json!({"useCase": uitpas, "decision": "granted",
                   "deviation": {"reason": "recently_moved", "note": "x".repeat(201)}}),
            "note_too_long",
        ),
        (
            json!({"useCase": uitpas, "decision": "not_granted", "deviation": {"reason": "other"}}),
            "deviation_not_applicable",
        ),
        (
            json!({"useCase": "no-such-case", "decision": "granted"}),
            "unknown_use_case",
        ),
    ] {
        let (status, answer) = contract.call("post", outcome_path, outcome(body)).await;
        assert_eq!(answer["error"], code, "{answer}");
        assert!(status == 422 || status == 400, "{status} {answer}");
    }
    let (status, recorded) = contract
        .call(
            "post",
            outcome_path,
            outcome(json!({"useCase": uitpas, "decision": "granted",
                           "deviation": {"reason": "recently_moved", "note": "Verhuisd op 2 december"}})),
        )
        .await;
    assert_eq!(status, 200, "{recorded}");
    assert_eq!(recorded["advice"], "not_eligible");
    assert_eq!(recorded["decision"], "granted");
    assert_eq!(recorded["deviation"]["reason"], "recently_moved");
    // Once per session and use case.
    let (status, again) = contract
        .call(
            "post",
            outcome_path,
            outcome(json!({"useCase": uitpas, "decision": "not_granted"})),
        )
        .await;
    assert_eq!(
        (status, again["error"].as_str()),
        (409, Some("outcome_already_recorded"))
    );
    // The session shows it, the stream announced it, the metrics count it.
    let (_, view) = contract
        .call(
            "get",
            "/v1/sessions/{session}",
            agent.get(&format!("/v1/sessions/{session}"), POS),
        )
        .await;
    assert_eq!(view["outcomes"][0]["decision"], "granted");
    assert_eq!(view["advice"][0]["decision"], "not_eligible");
    let events = collect_events(&mut stream, "outcome", Duration::from_secs(10)).await;
    let announced = &events.iter().find(|(n, _)| n == "outcome").unwrap().1;
    assert_eq!(announced["session"], session.as_str());
    assert_eq!(announced["decision"], "granted");
    let metrics = agent.metrics().await;
    assert!(
        metrics.contains(
            "beid_outcomes_total{use_case=\"uitpas-kansentarief\",advice=\"not_eligible\",decision=\"granted\",reason=\"recently_moved\"} 1"
        ),
        "{metrics}"
    );
    // The simulated rule service takes no outcomes: counted as such.
    assert!(metrics.contains("beid_outcome_deliveries_total{result=\"not_supported\"} 1"));
}

#[tokio::test]
async fn the_stream_starts_with_a_snapshot_and_numbers_its_events() {
    let agent = start().await;
    agent.insert("gen-1.8-ec").await;
    let session = agent.session().await;
    assert_eq!(agent.advise(&session, POS).await.status(), 200);
    // Connected after the card and its advice: the snapshot has them.
    let ticket: Value = agent
        .post("/v1/events/ticket", POS, json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!(
        "{}/v1/events?ticket={}",
        agent.base,
        ticket["ticket"].as_str().unwrap()
    );
    let mut stream = agent.http.get(&url).send().await.unwrap();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    // Read until the card-removed of the removal below: all blocks, with their ids.
    let mut removed = false;
    let mut blocks: Vec<(u64, String, Value)> = Vec::new();
    while !removed {
        if blocks.len() == 1 {
            agent.remove().await;
        }
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("events in time")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::to_owned)
            };
            if let (Some(id), Some(event), Some(data)) =
                (field("id: "), field("event: "), field("data: "))
            {
                removed |= event == "card-removed";
                blocks.push((
                    id.parse().unwrap(),
                    event,
                    serde_json::from_str(&data).unwrap(),
                ));
            }
        }
    }
    let (snapshot_id, name, snapshot) = &blocks[0];
    assert_eq!(name, "snapshot");
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["pcscd"], "up");
    let held = &snapshot["sessions"][0];
    assert_eq!(held["session"], session.as_str());
    assert_eq!(held["state"], "ready");
    assert_eq!(held["advice"][0]["decision"], "eligible");
    // What follows is numbered after the snapshot, in order, without repeats.
    let ids: Vec<u64> = blocks.iter().map(|(id, _, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(ids[1] > *snapshot_id);
    let names: Vec<&str> = blocks[1..].iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(names, ["card-removed"], "{blocks:?}");
    assert!(!text.contains("event: error"));
}

#[tokio::test]
async fn an_ended_session_answers_gone_however_many_came_after() {
    let agent = start().await;
    agent.insert("gen-1.8-ec").await;
    let first = agent.session().await;
    agent.remove().await;
    for _ in 0..20 {
        agent.insert("gen-1.7-rsa2048").await;
        agent.remove().await;
    }
    let ended = agent
        .get(&format!("/v1/sessions/{first}"), POS)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 410);
    // An id this agent never issued, even shaped like one of its own: not found.
    let never = uuid::Uuid::new_v4();
    let unknown = agent
        .get(&format!("/v1/sessions/{never}"), POS)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"], "session_not_found");
    assert!(body["message"].as_str().unwrap().contains("restarted"));
}

#[tokio::test]
async fn a_method_a_resource_does_not_take_gets_a_json_405() {
    let agent = start().await;
    let contract = Contract::fetch(&agent).await;
    for (method, path) in [
        (reqwest::Method::DELETE, "/v1/status"),
        (reqwest::Method::PUT, "/v1/readers"),
        (reqwest::Method::GET, "/v1/events/ticket"),
        (reqwest::Method::POST, "/healthz"),
    ] {
        let response = agent
            .http
            .request(method.clone(), format!("{}{path}", agent.base))
            .bearer_auth(POS)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "method_not_allowed", "{method} {path}");
    }
    // Every documented read answers as documented.
    for path in ["/v1/status", "/v1/readers"] {
        let (status, _) = contract.call("get", path, agent.get(path, POS)).await;
        assert_eq!(status, 200);
    }
    let (status, _) = contract
        .call("get", "/v1/status", agent.get("/v1/status", IDENTITY_ONLY))
        .await;
    assert_eq!(status, 403);
}

/// Issue 12, finding 11: a request that names the agent ambiguously is refused, not served
/// for the first of its names.
#[tokio::test]
async fn ambiguous_requests_are_refused() {
    let agent = start().await;
    let address = agent.address();
    let request = |target: &str, headers: &str| {
        format!("GET {target} HTTP/1.1\r\n{headers}Authorization: Bearer {POS}\r\n\r\n")
    };
    let answer = |request: String| async move { raw::send(address, &request).await.unwrap() };

    // Several Host headers (RFC 9112 §3.2: 400), whatever they say.
    for hosts in [
        format!("Host: {address}\r\nHost: {address}\r\n"),
        format!("Host: {address}\r\nHost: attacker.example\r\n"),
        format!("Host: attacker.example\r\nHost: {address}\r\n"),
    ] {
        let refused = answer(request("/v1/status", &hosts)).await;
        assert_eq!(refused.status, 400, "{hosts:?}");
        assert_eq!(refused.error().as_deref(), Some("host_repeated"));
        assert_eq!(refused.header("cache-control"), Some("no-store"));
    }
    // Several Origin headers leave no origin to check.
    let origins =
        format!("Host: {address}\r\nOrigin: {POS_ORIGIN}\r\nOrigin: https://evil.example\r\n");
    let refused = answer(request("/v1/status", &origins)).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.error().as_deref(), Some("origin_not_allowed"));
    assert!(refused.header("access-control-allow-origin").is_none());
    // An absolute-form target naming another host, behind a good Host header.
    let host = format!("Host: {address}\r\n");
    for target in [
        "http://attacker.example/v1/status".to_owned(),
        format!(
            "http://attacker.example:{}/v1/status",
            agent.base.rsplit(':').next().unwrap()
        ),
    ] {
        let refused = answer(request(&target, &host)).await;
        assert_eq!(refused.status, 400, "{target}");
        assert_eq!(refused.error().as_deref(), Some("authority_not_allowed"));
    }
    // Named once and unambiguously, the agent answers, absolute form or not.
    let own = answer(request(&format!("http://{address}/v1/status"), &host)).await;
    assert_eq!(own.status, 200, "{own:?}");
    let own = answer(request(
        "/v1/status",
        &format!("{host}Origin: {POS_ORIGIN}\r\n"),
    ))
    .await;
    assert_eq!(own.status, 200, "{own:?}");
}

/// Polls `open` until it answers `status`, for at most 10 s: the agent notices a stream the
/// client left when the connection closes, a moment after the client drops it.
async fn until_status<F, Fut>(status: u16, mut open: F) -> reqwest::Response
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = open().await;
        if response.status() == status || tokio::time::Instant::now() > deadline {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Issue 12, finding 2: one client opening stream after stream gets `429` past its cap, and
/// every other client keeps working.
#[tokio::test]
async fn event_streams_are_capped_per_client() {
    let agent = start().await;
    let mut open = Vec::new();
    for _ in 0..16 {
        let stream = agent.stream(KIOSK).await;
        assert_eq!(stream.status(), 200);
        open.push(stream);
    }
    let refused = agent.stream(KIOSK).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("retry-after").is_some());
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "too_many_event_streams");

    // The others: a stream, and every call.
    assert_eq!(agent.stream(POS).await.status(), 200);
    assert_eq!(
        agent
            .get("/v1/readers", KIOSK)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    agent.insert("gen-1.8-ec").await;
    let session = agent.session().await;
    assert_eq!(agent.advise(&session, KIOSK).await.status(), 200);

    // A stream the client leaves gives its place back.
    drop(open.pop());
    let again = until_status(200, || agent.stream(KIOSK)).await;
    assert_eq!(again.status(), 200);
}

/// Issue 12, finding 2: past the agent-wide cap every client gets `503` for a new stream, and
/// calls that are not streams go on.
#[tokio::test]
async fn event_streams_are_capped_in_all() {
    let agent = start_with(|state| state.with_stream_caps(4, 6)).await;
    let mut open = Vec::new();
    for token in [KIOSK, KIOSK, KIOSK, KIOSK, POS, POS] {
        let stream = agent.stream(token).await;
        assert_eq!(stream.status(), 200);
        open.push(stream);
    }
    for token in [POS, FULL] {
        let refused = agent.stream(token).await;
        assert_eq!(refused.status(), 503, "{token}");
        assert!(refused.headers().get("retry-after").is_some());
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"], "event_streams_exhausted");
    }
    assert_eq!(
        agent.get("/v1/status", FULL).send().await.unwrap().status(),
        200
    );
    let metrics = agent.metrics().await;
    assert!(metrics.contains("beid_api_event_streams 6"), "{metrics}");
    assert!(
        metrics.contains("beid_api_event_streams_refused_total{cap=\"agent\"} 2"),
        "{metrics}"
    );
    drop(open.pop());
    assert_eq!(until_status(200, || agent.stream(FULL)).await.status(), 200);
}

/// Issue 12, finding 7: failed authentication is limited per connection and in all, and
/// counted; a valid token is served throughout.
#[tokio::test]
async fn failed_authentication_backs_off_per_connection_and_in_all() {
    let agent = start().await;
    let address = agent.address();

    // One connection: the third failure is answered 429 and the connection closed.
    let mut connection = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut statuses = Vec::new();
    for guess in 0..3 {
        let request = format!(
            "GET /v1/status HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer guess-{guess:04}\r\n\r\n"
        );
        let answer = raw::exchange(&mut connection, &request).await.unwrap();
        statuses.push(answer.status);
        if guess == 2 {
            assert_eq!(answer.error().as_deref(), Some("authentication_backoff"));
            assert_eq!(answer.header("connection"), Some("close"));
        }
    }
    assert_eq!(statuses, [401, 401, 429]);
    raw::closed_by_agent(&mut connection).await;

    // In all: past a burst, failures on fresh connections are answered 429 too.
    let mut statuses = Vec::new();
    for guess in 3..43 {
        let response = agent
            .get("/v1/status", &format!("guess-{guess:04}"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses[0], 401);
    assert!(statuses[20..].iter().all(|s| *s == 429), "{statuses:?}");
    // The valid token is served meanwhile.
    assert_eq!(
        agent
            .get("/v1/status", KIOSK)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let metrics = agent.metrics().await;
    let throttled: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("beid_api_auth_failures_total{status=\"429\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(throttled >= 20, "{metrics}");
}

/// Issue 12, finding 7: a burst of failed authentications is one line in the agent's log,
/// without the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentication_is_logged_once_per_burst_without_the_token() {
    let state = tempfile::tempdir().unwrap();
    let log = state.path().join("agent.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let agent = common::simulated::SimulatedServe::start_in(
        tempfile::tempdir().unwrap(),
        &["--log-format", "json"],
        stderr.into(),
    );
    let http = reqwest::Client::new();
    for guess in 0..30 {
        let answer = http
            .get(format!("{}/v1/readers", agent.base))
            .bearer_auth(format!("guess-{guess:04}-of-a-token"))
            .send()
            .await
            .unwrap();
        assert!(matches!(answer.status().as_u16(), 401 | 429));
    }
    // A valid request after them: once it is answered, the failures' log lines are written.
    let served = http
        .get(format!("{}/v1/readers", agent.base))
        .bearer_auth(&agent.token)
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    let logs = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        logs.matches("API authentication failed").count(),
        1,
        "one line per burst: {logs}"
    );
    assert!(
        !logs.contains("guess-"),
        "the token is never logged: {logs}"
    );
}

#[tokio::test]
async fn the_host_must_name_this_agent_with_its_own_port() {
    let agent = start().await;
    let port = agent.base.rsplit(':').next().unwrap().to_owned();
    let other_port = if port == "8099" { "8098" } else { "8099" };
    let host = |host: String| {
        let request = agent.get("/v1/status", FULL).header("Host", host);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    for own in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(host(own.clone()).await, 200, "{own}");
    }
    for foreign in [
        format!("127.0.0.1:{other_port}"),
        format!("localhost:{other_port}"),
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
        format!("127.0.0.2:{port}"),
        format!("localhost.:{port}"),
        format!("attacker.example:{port}"),
        format!("127.0.0.1:{port}.attacker.example"),
        String::new(),
    ] {
        assert_eq!(host(foreign.clone()).await, 403, "{foreign:?}");
    }
}

#[tokio::test]
async fn an_origin_must_be_exactly_one_the_client_has() {
    let agent = start().await;
    let origin = |origin: &str| {
        let request = agent.get("/v1/status", POS).header("Origin", origin);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(origin(POS_ORIGIN).await, 200);
    for foreign in [
        "http://pos.uitpas.example",
        "https://pos.uitpas.example:8443",
        "https://pos.uitpas.example/",
        "https://POS.uitpas.example.evil",
        "https://sub.pos.uitpas.example",
        "null",
        "",
    ] {
        assert_eq!(origin(foreign).await, 403, "{foreign:?}");
    }
}
