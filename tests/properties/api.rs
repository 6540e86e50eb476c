//! The local API on any request: the real router with simulated readers answers every
//! request with `Cache-Control: no-store`, never a 5xx, refuses a foreign Host, a missing
//! token, a foreign Origin, a wrong media type, a big or malformed body with the documented
//! status and a JSON error code, and accepts what the body types accept. Every body the
//! body types accept serialises back to the same value. A request naming the agent
//! ambiguously is refused: several `Host` headers or an absolute-form target naming another
//! host (400), several `Origin` headers (403). A failed authentication is answered 401 or,
//! past the agent's failure budget, 429; a valid token is never refused for others' failures.
//!
//! A request is built from bytes by [`decode`] (fuzz target, regressions) or generated
//! directly (proptest); [`Harness`] sends it to the router in-process, as a one-shot tower
//! service call, and [`check`] judges the answer. Clients see only what their scopes allow.
//!
//! Input: method, target, Host, Authorization, Origin and Content-Type choices (a byte each;
//! `FF` takes free bytes, length-prefixed, after the choices; `FE` leaves the header out;
//! a Host choice from `80` to `FD` sends two Host headers, an odd Origin choice from `81` to
//! `FD` two Origin headers), a flag byte (bit 0: pad the body past the 4 KiB limit), then
//! the body. Targets include absolute-form ones, naming the agent or another host.
//!
//! Shared by `fuzz/fuzz_targets/api_bodies.rs` and `tests/fuzz_regressions.rs`.

use beid_agent::api::{AdviceBody, Client, Clients, InsertBody, RemoveBody, Scope};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

pub const FULL: &str = "fuzz-full-token-0123456789-0123456789-0123";
pub const ADVICE_ONLY: &str = "fuzz-advice-token-0123456789-0123456789-01";
pub const IDENTITY_ONLY: &str = "fuzz-identity-token-0123456789-0123456789";
pub const POS_ORIGIN: &str = "https://pos.example";
pub const READERS: [&str; 2] = ["Fuzz reader 1", "Fuzz reader 2"];
/// A session id that never exists.
pub const NO_SESSION: &str = "6f1c2a3e-8d1b-4c5e-9f00-0123456789ab";
pub const BODY_LIMIT: usize = 4096;

/// The clients of the API under test, without a rate limit (a fuzzer is faster than a POS).
pub fn clients() -> Clients {
    Clients::new(vec![
        Client::new(
            "full",
            FULL,
            vec![
                Scope::Advice,
                Scope::Identity,
                Scope::NationalNumber,
                Scope::Metrics,
            ],
            vec![POS_ORIGIN.into()],
        ),
        Client::new("advice", ADVICE_ONLY, vec![Scope::Advice], vec![]),
        Client::new("identity", IDENTITY_ONLY, vec![Scope::Identity], vec![]),
    ])
    .with_rate_limit(1e9, 1e9)
}

/// What the harness knows of the agent when it builds a request.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub port: u16,
    /// The session of the card in the first reader, if any.
    pub session: Option<String>,
    /// The last ticket issued and not used yet.
    pub ticket: Option<String>,
    /// The simulator's card names.
    pub cards: Vec<String>,
    /// The readers the agent knows, by id and by name.
    pub readers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Lower-case names; only values `http` accepts.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Request {
    /// How many headers of this name the request has.
    pub fn header_count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n == name).count()
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    fn header_text(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The path as the router sees it: `http` parses the target (a fragment, for one, is
    /// not part of it).
    pub fn path(&self) -> String {
        match self.target.parse::<axum::http::Uri>() {
            Ok(uri) => uri.path().to_owned(),
            Err(_) => self.target.split('?').next().unwrap_or_default().to_owned(),
        }
    }

    pub fn query(&self) -> Option<String> {
        let uri = self.target.parse::<axum::http::Uri>().ok()?;
        uri.query().map(str::to_owned)
    }
}

pub struct Response {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn error_code(&self) -> Option<String> {
        let value: Value = serde_json::from_slice(&self.body).ok()?;
        value["error"].as_str().map(str::to_owned)
    }
}

pub const METHODS: [&str; 6] = ["GET", "POST", "OPTIONS", "PUT", "DELETE", "HEAD"];

/// Request targets; `{s}` is the current session, `{t}` the last ticket, `{p}` the agent's
/// port.
pub const TARGETS: [&str; 21] = [
    "/v1/status",
    "/v1/readers",
    "/v1/sessions/{s}",
    "/v1/sessions/{s}/advice",
    "/v1/sessions/6f1c2a3e-8d1b-4c5e-9f00-0123456789ab/advice",
    "/v1/sessions/not-a-session/advice",
    "/v1/events/ticket",
    "/v1/events?ticket={t}",
    "/v1/simulator/cards",
    "/v1/simulator/insert",
    "/v1/simulator/remove",
    "/healthz",
    "/metrics",
    "/v1/openapi.json",
    "/kiosk/",
    "/kiosk",
    "/v1/nothing",
    "http://127.0.0.1:{p}/v1/status",
    "http://LOCALHOST:{p}/v1/readers",
    "http://evil.example/v1/status",
    "http://127.0.0.1.evil.example:{p}/healthz",
];

pub fn target(choice: usize, context: &Context) -> String {
    TARGETS[choice % TARGETS.len()]
        .replace("{s}", context.session.as_deref().unwrap_or(NO_SESSION))
        .replace("{t}", context.ticket.as_deref().unwrap_or("none"))
        .replace("{p}", &context.port.to_string())
}

pub fn hosts(context: &Context) -> Vec<String> {
    let port = context.port;
    vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("LOCALHOST:{port}"),
        format!("127.0.0.1:{}", port.wrapping_add(1)),
        "evil.example".into(),
        format!("127.0.0.1.evil.example:{port}"),
    ]
}

pub const AUTHORIZATIONS: [&str; 5] = [
    "Bearer fuzz-full-token-0123456789-0123456789-0123",
    "Bearer fuzz-advice-token-0123456789-0123456789-01",
    "Bearer fuzz-identity-token-0123456789-0123456789",
    "Bearer not-a-token",
    "bearer fuzz-full-token-0123456789-0123456789-0123",
];

pub const ORIGINS: [&str; 3] = [POS_ORIGIN, "https://evil.example", "null"];

pub const CONTENT_TYPES: [&str; 5] = [
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/problem+json",
];

/// Builds a request from fuzz bytes: choices first, then length-prefixed free text for
/// the choices that take it, and the rest is the body.
pub fn decode(data: &[u8], context: &Context) -> Request {
    let mut input = Input(data);
    let method = METHODS[usize::from(input.byte()) % METHODS.len()].to_owned();
    let target_choice = input.byte();
    let host_choice = input.byte();
    let authorization_choice = input.byte();
    let origin_choice = input.byte();
    let content_type_choice = input.byte();
    let body_flags = input.byte();

    let target = match target_choice {
        0xFF => {
            let free = input.text();
            if free.starts_with('/') {
                free
            } else {
                format!("/{free}")
            }
        }
        choice => self::target(usize::from(choice), context),
    };
    let mut headers = Vec::new();
    let hosts = hosts(context);
    match usize::from(host_choice) {
        0xFF => headers.push(("host".to_owned(), input.bytes())),
        0xFE => {}
        choice @ 0x80.. => {
            headers.push(("host".into(), hosts[choice % hosts.len()].clone().into()));
            headers.push((
                "host".into(),
                hosts[(choice / 8) % hosts.len()].clone().into(),
            ));
        }
        choice => headers.push(("host".into(), hosts[choice % hosts.len()].clone().into())),
    }
    match usize::from(authorization_choice) {
        0xFF => headers.push(("authorization".into(), input.bytes())),
        0xFE => {}
        choice => headers.push((
            "authorization".into(),
            AUTHORIZATIONS[choice % AUTHORIZATIONS.len()].into(),
        )),
    }
    match usize::from(origin_choice) {
        0xFF => headers.push(("origin".into(), input.bytes())),
        choice if choice % 2 == 0 => {}
        choice => {
            headers.push((
                "origin".into(),
                ORIGINS[(choice / 2) % ORIGINS.len()].into(),
            ));
            if choice >= 0x81 {
                headers.push((
                    "origin".into(),
                    ORIGINS[(choice / 8) % ORIGINS.len()].into(),
                ));
            }
        }
    }
    match usize::from(content_type_choice) {
        0xFF => headers.push(("content-type".into(), input.bytes())),
        0xFE => {}
        choice => headers.push((
            "content-type".into(),
            CONTENT_TYPES[choice % CONTENT_TYPES.len()].into(),
        )),
    }
    headers.retain(|(_, value)| axum::http::HeaderValue::from_bytes(value).is_ok());
    let mut body = input.0.to_vec();
    if body_flags & 1 != 0 {
        // Past the body limit, with the JSON intact up to it.
        body.resize(BODY_LIMIT + 1 + usize::from(body_flags >> 1), b' ');
    }
    Request {
        method,
        target,
        headers,
        body,
    }
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&byte, rest)) => {
                self.0 = rest;
                byte
            }
            None => 0,
        }
    }

    fn bytes(&mut self) -> Vec<u8> {
        let length = usize::from(self.byte()).min(self.0.len());
        let (bytes, rest) = self.0.split_at(length);
        self.0 = rest;
        bytes.to_vec()
    }

    fn text(&mut self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

/// The guarded `/v1` routes: (method, whether the path matches).
fn v1_route(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        ["", "v1", "status"] | ["", "v1", "readers"] | ["", "v1", "events"] => Some("GET"),
        ["", "v1", "simulator", "cards"] | ["", "metrics"] => Some("GET"),
        ["", "v1", "sessions", id] if !id.is_empty() => Some("GET"),
        ["", "v1", "sessions", id, "advice"] if !id.is_empty() => Some("POST"),
        ["", "v1", "events", "ticket"] => Some("POST"),
        ["", "v1", "simulator", "insert"] | ["", "v1", "simulator", "remove"] => Some("POST"),
        _ => None,
    }
}

fn other_route(path: &str) -> Option<&'static str> {
    matches!(
        path,
        "/healthz"
            | "/v1/openapi.json"
            | "/kiosk"
            | "/kiosk/"
            | "/kiosk/kiosk.js"
            | "/kiosk/kiosk.css"
    )
    .then_some("GET")
}

fn code_is(code: &Option<String>, head: bool, want: &str) -> bool {
    head || code.as_deref() == Some(want)
}

fn client_of(request: &Request) -> Option<(&'static str, &'static [&'static str], bool)> {
    // (token, scopes, has the POS origin)
    match request.header_text("authorization")? {
        "Bearer fuzz-full-token-0123456789-0123456789-0123" => Some((
            FULL,
            &["advice", "identity", "national-number", "metrics"],
            true,
        )),
        "Bearer fuzz-advice-token-0123456789-0123456789-01" => {
            Some((ADVICE_ONLY, &["advice"], false))
        }
        "Bearer fuzz-identity-token-0123456789-0123456789" => {
            Some((IDENTITY_ONLY, &["identity"], false))
        }
        _ => None,
    }
}

/// A failed authentication: `401` with `code`, or `429` once the agent's failure budget is
/// spent.
fn refused_authentication(status: u16, code: &Option<String>, head: bool, want: &str, what: &str) {
    match status {
        401 => assert!(code_is(code, head, want), "{what}"),
        429 => assert!(code_is(code, head, "authentication_backoff"), "{what}"),
        _ => panic!("unauthenticated, answered {status}: {what}"),
    }
}

/// The body type's verdict, and that what it accepts serialises back to itself.
fn accepts<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(
    body: &[u8],
) -> Option<T> {
    let value: T = serde_json::from_slice(body).ok()?;
    let again =
        serde_json::to_vec(&value).unwrap_or_else(|e| panic!("{value:?} does not serialise: {e}"));
    let back: T = serde_json::from_slice(&again)
        .unwrap_or_else(|e| panic!("{value:?} serialises to something it does not read: {e}"));
    assert_eq!(back, value, "the body does not survive a round trip");
    Some(value)
}

/// Judges one response to `request`.
pub fn check(request: &Request, context: &Context, response: &Response) {
    let status = response.status;
    let code = response.error_code();
    let what = || format!("{} {} → {status} {code:?}", request.method, request.target);
    // A HEAD answer has the headers of its GET and no body, so no code to read.
    let head = request.method == "HEAD";
    assert!(status < 500, "server error: {}", what());
    assert_eq!(
        response.header("cache-control"),
        Some("no-store"),
        "{}",
        what()
    );
    assert_eq!(
        response.header("x-content-type-options"),
        Some("nosniff"),
        "{}",
        what()
    );

    // Errors the agent makes carry a stable JSON code (405 is the router's own, bodiless).
    if (400..500).contains(&status) && status != 405 {
        assert!(
            response
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "error without a JSON body: {}",
            what()
        );
        assert!(head || code.is_some(), "error without a code: {}", what());
    }

    let own = |name: &str| {
        hosts(context)[..3]
            .iter()
            .any(|own| own.eq_ignore_ascii_case(name))
    };
    if request.header_count("host") > 1 {
        assert_eq!(status, 400, "several Hosts served: {}", what());
        assert!(code_is(&code, head, "host_repeated"), "{}", what());
        return;
    }
    let authority = request
        .target
        .parse::<axum::http::Uri>()
        .ok()
        .and_then(|uri| uri.authority().map(|a| a.as_str().to_owned()));
    if authority.as_deref().is_some_and(|a| !own(a)) {
        assert_eq!(status, 400, "another host's target served: {}", what());
        assert!(code_is(&code, head, "authority_not_allowed"), "{}", what());
        return;
    }
    let host_ok = request.header_text("host").is_some_and(own);
    if !host_ok {
        assert_eq!(status, 403, "foreign Host served: {}", what());
        assert!(code_is(&code, head, "host_not_allowed"), "{}", what());
        return;
    }
    assert_ne!(code.as_deref(), Some("host_not_allowed"), "{}", what());
    if request.header_count("origin") > 1 {
        assert_eq!(status, 403, "several Origins served: {}", what());
        assert!(code_is(&code, head, "origin_not_allowed"), "{}", what());
        assert!(response.header("access-control-allow-origin").is_none());
        return;
    }

    let path = request.path();
    let path = path.as_str();
    let method = request.method.as_str();
    let origin = request.header_text("origin").map(str::to_owned);
    let origin_present = request.header("origin").is_some();
    let Some(route_method) = v1_route(path) else {
        match other_route(path) {
            Some(_) if method == "GET" => {
                assert!((200..400).contains(&status), "{}", what());
            }
            Some(_) => {}
            None => {
                assert_eq!(status, 404, "{}", what());
                assert!(code_is(&code, head, "not_found"), "{}", what());
            }
        }
        return;
    };

    if method == "OPTIONS" {
        if origin.as_deref() == Some(POS_ORIGIN) {
            assert_eq!(status, 204, "{}", what());
            assert_eq!(
                response.header("access-control-allow-origin"),
                Some(POS_ORIGIN),
                "{}",
                what()
            );
        } else {
            assert_eq!(status, 403, "{}", what());
            assert!(code_is(&code, head, "origin_not_allowed"), "{}", what());
        }
        return;
    }
    // CORS headers only ever name the POS's own origin.
    if let Some(allowed) = response.header("access-control-allow-origin") {
        assert_eq!(allowed, POS_ORIGIN, "{}", what());
    }

    let (has_origin, scopes): (bool, &[&str]) = if path == "/v1/events" {
        let query = request.query();
        let ticket = query
            .as_deref()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ticket=")));
        if ticket.is_none() || ticket != context.ticket.as_deref() {
            refused_authentication(status, &code, head, "ticket_invalid", &what());
            return;
        }
        // A ticket is bought with the advice scope by the full or advice client.
        if status == 200 {
            assert_eq!(
                response.header("content-type"),
                Some("text/event-stream"),
                "{}",
                what()
            );
        }
        return;
    } else {
        match client_of(request) {
            None => {
                refused_authentication(status, &code, head, "unauthorized", &what());
                if status == 401 {
                    assert_eq!(response.header("www-authenticate"), Some("Bearer"));
                }
                return;
            }
            Some((_, scopes, has_origin)) => (has_origin, scopes),
        }
    };
    if origin_present && !(has_origin && origin.as_deref() == Some(POS_ORIGIN)) {
        assert_eq!(status, 403, "foreign Origin served: {}", what());
        assert!(code_is(&code, head, "origin_not_allowed"), "{}", what());
        return;
    }
    assert_ne!(code.as_deref(), Some("unauthorized"), "{}", what());
    assert_ne!(code.as_deref(), Some("rate_limited"), "{}", what());
    // Others' failed authentications never lock a valid token out.
    assert_ne!(
        code.as_deref(),
        Some("authentication_backoff"),
        "{}",
        what()
    );
    if method != route_method && !(method == "HEAD" && route_method == "GET") {
        assert_eq!(status, 405, "{}", what());
        return;
    }
    let scope = if path == "/metrics" {
        "metrics"
    } else {
        "advice"
    };
    if !scopes.contains(&scope) {
        assert_eq!(status, 403, "{}", what());
        assert!(code_is(&code, head, "scope_missing"), "{}", what());
        return;
    }
    if path == "/metrics" {
        if status == 200 && method == "GET" {
            assert!(
                response
                    .header("content-type")
                    .is_some_and(|t| t.starts_with("text/plain")),
                "{}",
                what()
            );
        }
        return;
    }
    if route_method != "POST" || path == "/v1/events/ticket" {
        if status == 200 && method == "GET" {
            let body: Value = serde_json::from_slice(&response.body)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", what()));
            if path.starts_with("/v1/sessions/") {
                assert!(body["session"].is_string(), "{}", what());
                // A client sees only what its scopes allow; the national number only at
                // its own route.
                assert!(
                    body.get("nationalNumber").is_none() || path.ends_with("/national-number"),
                    "{}",
                    what()
                );
                assert!(
                    scopes.contains(&"identity") || body.get("identity").is_none(),
                    "identity shown without the identity scope: {}",
                    what()
                );
            }
        }
        return;
    }

    // A POST with a JSON body.
    let content_type = request
        .header_text("content-type")
        .map(str::to_ascii_lowercase);
    let json_type = match content_type.as_deref() {
        Some("application/json" | "application/json; charset=utf-8") => Some(true),
        Some(other) if other.contains("json") => None,
        _ => Some(false),
    };
    match json_type {
        Some(false) => {
            assert_eq!(status, 415, "{}", what());
            assert_eq!(
                code.as_deref(),
                Some("unsupported_media_type"),
                "{}",
                what()
            );
            return;
        }
        None => {
            // Other JSON media types (`+json`, parameters): either verdict is fine, the
            // body checks below hold when it was taken.
            if status == 415 {
                return;
            }
        }
        Some(true) => assert_ne!(status, 415, "{}", what()),
    }
    if request.body.len() > BODY_LIMIT {
        assert_eq!(status, 413, "{}", what());
        assert!(code_is(&code, head, "body_too_large"), "{}", what());
        return;
    }
    let accepted = if path.ends_with("/advice") {
        accepts::<AdviceBody>(&request.body).map(|body| ("advice", Some(body.use_case), None))
    } else if path.ends_with("/insert") {
        accepts::<InsertBody>(&request.body).map(|body| ("insert", Some(body.card), body.reader))
    } else {
        accepts::<RemoveBody>(&request.body).map(|body| ("remove", None, body.reader))
    };
    let Some((route, name, reader)) = accepted else {
        assert_eq!(status, 400, "malformed body accepted: {}", what());
        assert!(code_is(&code, head, "bad_request"), "{}", what());
        return;
    };
    assert_ne!(code.as_deref(), Some("bad_request"), "{}", what());
    match route {
        "advice" => {
            let id = path.split('/').nth(3).unwrap_or_default();
            if status == 200 {
                let body: Value = serde_json::from_slice(&response.body)
                    .unwrap_or_else(|e| panic!("{}: not JSON: {e}", what()));
                if Some(id) == context.session.as_deref() {
                    assert_eq!(body["session"].as_str(), Some(id), "{}", what());
                }
                assert_eq!(body["useCase"].as_str(), name.as_deref(), "{}", what());
                assert!(
                    matches!(
                        body["decision"].as_str(),
                        Some("eligible" | "not_eligible" | "unknown")
                    ),
                    "{}",
                    what()
                );
            } else {
                assert!(
                    matches!(
                        code.as_deref(),
                        Some(
                            "session_not_found"
                                | "session_ended"
                                | "unknown_use_case"
                                | "card_not_read"
                        )
                    ),
                    "{}",
                    what()
                );
            }
            if id == NO_SESSION || id == "not-a-session" {
                assert!(code_is(&code, head, "session_not_found"), "{}", what());
            }
        }
        _ => {
            // Readers are named by id or name; without one the first reader is meant.
            let known_card = name
                .as_deref()
                .is_none_or(|c| context.cards.iter().any(|k| k == c));
            let known_reader = match reader.as_deref() {
                Some(reader) => context.readers.iter().any(|r| r == reader),
                None => !context.readers.is_empty(),
            };
            if known_card && known_reader {
                assert!((200..300).contains(&status), "{}", what());
            } else {
                assert!(code_is(&code, head, "simulator_refused"), "{}", what());
            }
        }
    }
}

/// The agent under test in-process: simulated readers, the simulated rule service, the
/// real router, driven request by request. It lives across requests (cards inserted stay
/// in, tickets stay issued), as the agent does in service; the properties hold in any of
/// its states.
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    engine: beid_agent::session::Engine,
    context: std::sync::Mutex<Context>,
}

impl Harness {
    pub const PORT: u16 = 8099;

    pub fn new() -> Self {
        use beid_agent::session::{Engine, EngineSettings};
        use beid_agent::sim::SimulatedReaders;
        use std::sync::Arc;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let source = Arc::new(SimulatedReaders::new(&READERS, false));
        let cards = source.cards().iter().map(|c| (*c).to_owned()).collect();
        let settings =
            EngineSettings::simulated(None).unwrap_or_else(|e| panic!("simulated settings: {e}"));
        let metrics = Arc::new(beid_agent::metrics::Metrics::default());
        let engine = runtime
            .block_on(async { Engine::start(source.clone(), settings, metrics.clone()) })
            .unwrap_or_else(|e| panic!("engine: {e}"));
        // The engine learns of the simulated readers from its tasks: let them run until it
        // knows both (bounded; a request before that is judged against what it knows).
        runtime.block_on(async {
            for _ in 0..100_000 {
                if engine.readers().len() == READERS.len() {
                    break;
                }
                tokio::task::yield_now().await;
            }
        });
        let state = beid_agent::api::AppState::new(engine.clone(), clients(), metrics, Self::PORT)
            .with_simulator(Some(source));
        Self {
            runtime,
            router: beid_agent::api::router(state),
            engine,
            context: std::sync::Mutex::new(Context {
                port: Self::PORT,
                session: None,
                ticket: None,
                cards,
                readers: Vec::new(),
            }),
        }
    }

    /// Builds a request from fuzz bytes, sends it, judges the answer.
    pub fn run(&self, data: &[u8]) {
        let context = self.context();
        self.run_request(decode(data, &context));
    }

    /// A request as a POS sends it: own Host, the token, JSON.
    pub fn request(&self, method: &str, target: &str, token: &str, body: &str) -> Request {
        Request {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: vec![
                (
                    "host".into(),
                    format!("127.0.0.1:{}", Self::PORT).into_bytes(),
                ),
                (
                    "authorization".into(),
                    format!("Bearer {token}").into_bytes(),
                ),
                ("content-type".into(), b"application/json".to_vec()),
            ],
            body: body.as_bytes().to_vec(),
        }
    }

    /// What a request may name right now.
    pub fn context(&self) -> Context {
        let mut context = self
            .context
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let readers = self.engine.readers();
        context.session = readers
            .first()
            .and_then(|r| r.session)
            .map(|s| s.to_string());
        context.readers = readers.into_iter().flat_map(|r| [r.id, r.name]).collect();
        context.clone()
    }

    /// Sends one request, judges the answer and returns it (`None`: `http` refuses to build
    /// the request).
    pub fn run_request(&self, request: Request) -> Option<Response> {
        let context = self.context();
        let mut builder = axum::http::Request::builder()
            .method(request.method.as_str())
            .uri(request.target.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_slice());
        }
        let Ok(http) = builder.body(axum::body::Body::from(request.body.clone())) else {
            return None;
        };
        let response = self.runtime.block_on(send(self.router.clone(), http));
        check(&request, &context, &response);
        let mut shared = self
            .context
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(ticket) = &shared.ticket {
            if request.target.contains(ticket.as_str()) {
                shared.ticket = None;
            }
        }
        if request.path() == "/v1/events/ticket" && response.status == 200 {
            let body: Value = serde_json::from_slice(&response.body).unwrap_or_default();
            shared.ticket = body["ticket"].as_str().map(str::to_owned);
        }
        Some(response)
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

/// `oneshot` without naming tower: `Router` is a tower `Service`, whose methods a bound on
/// axum's `ServiceExt` brings along.
async fn send<S>(mut service: S, request: axum::http::Request<axum::body::Body>) -> Response
where
    S: axum::ServiceExt<
        axum::http::Request<axum::body::Body>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
    >,
{
    let ready = std::future::poll_fn(|cx| service.poll_ready(cx)).await;
    let Ok(()) = ready;
    let Ok(response) = service.call(request).await;
    let status = response.status().as_u16();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    // An event stream never ends: its headers are all there is to judge.
    let streaming = headers
        .iter()
        .any(|(n, v)| n == "content-type" && v.starts_with("text/event-stream"));
    let body = if streaming {
        Vec::new()
    } else {
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_else(|e| panic!("response body: {e}"))
    };
    Response {
        status,
        headers,
        body,
    }
}
