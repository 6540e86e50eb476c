//! The stand-in's HTTPS server and its knobs.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::dataset;

/// The test client id the token endpoint accepts.
pub const CLIENT_ID: &str = "beid-gateway-test-client";
/// Its secret.
pub const CLIENT_SECRET: &str = "stand-in-secret-0123456789abcdef";
/// The token endpoint's path (publiq's authorization server since November 2024).
pub const TOKEN_PATH: &str = "/realms/uitid/protocol/openid-connect/token";

/// A failure the stand-in plays instead of a passholder answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// This status with publiq's problem body for it (`rate-limited` for 429, a server
    /// error otherwise), and `Retry-After: seconds` when given.
    Status(u16, Option<u64>),
    /// An RFC 7807 problem of this type, status and end-user message (Dutch).
    Problem {
        status: u16,
        problem_type: &'static str,
        title: &'static str,
        end_user_message: Option<&'static str>,
    },
    /// `200` with a body that is not a `PassholdersPaginatedResponse`.
    Malformed,
    /// The right answer, this much later.
    Slow(Duration),
}

#[derive(Default)]
struct Knobs {
    token_lifetime: Option<Duration>,
    /// Tokens the API refuses from now on (revoked), besides expired ones.
    revoked_before: Option<Instant>,
    /// Every token is refused (a token that never works).
    refuse_every_token: bool,
    /// The token endpoint refuses the client (revoked credentials).
    refuse_client: bool,
    /// The organizer lacks the passholder search permission.
    search_forbidden: bool,
    /// Answer every passholder search this much later.
    delay: Duration,
    faults: VecDeque<Fault>,
    every_time: Option<Fault>,
    tokens: HashMap<String, Issued>,
    last_query: Option<HashMap<String, String>>,
}

#[derive(Debug, Clone, Copy)]
struct Issued {
    at: Instant,
    expires: Instant,
}

#[derive(Default)]
struct Shared {
    knobs: Mutex<Knobs>,
    token_calls: AtomicUsize,
    permission_calls: AtomicUsize,
    lookups: AtomicUsize,
    unauthorized: AtomicUsize,
}

impl Shared {
    fn knobs(&self) -> MutexGuard<'_, Knobs> {
        self.knobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running stand-in; stops when dropped.
pub struct StandIn {
    addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// Why the stand-in could not start (set-up of a test: the caller unwraps).
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

impl StandIn {
    /// Starts on 127.0.0.1, port 0, with a fresh test CA. Tokens live an hour.
    pub async fn start() -> Result<Self, StartError> {
        let (acceptor, ca_pem) = tls()?;
        let tcp = TcpListener::bind("127.0.0.1:0").await?;
        let addr = tcp.local_addr()?;
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route(TOKEN_PATH, post(token))
            .route("/permissions", get(permissions))
            .route("/passholders", get(passholders))
            .with_state(shared.clone());
        let listener = TlsListener::start(tcp, acceptor);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            ca_pem,
            shared,
            task,
        })
    }

    /// The API's base URL (`https://127.0.0.1:PORT/`).
    pub fn api_url(&self) -> String {
        format!("https://{}/", self.addr)
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> String {
        format!("https://{}{TOKEN_PATH}", self.addr)
    }

    /// The PEM of the CA that issued the stand-in's server certificate: the gateway's
    /// `ca_bundle`.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// `expires_in` of the tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared.knobs().token_lifetime = Some(lifetime);
    }

    /// Every token issued so far is refused from now on (`401`), as after a revocation.
    pub fn revoke_tokens(&self) {
        self.shared.knobs().revoked_before = Some(Instant::now());
    }

    /// Refuse every token, new ones included (`401` on every call).
    pub fn refuse_every_token(&self, refuse: bool) {
        self.shared.knobs().refuse_every_token = refuse;
    }

    /// The token endpoint refuses the client's credentials (`401 invalid_client`).
    pub fn refuse_client(&self, refuse: bool) {
        self.shared.knobs().refuse_client = refuse;
    }

    /// Take the passholder search permission away from the organizer (`GET /permissions`
    /// no longer lists it; `GET /passholders` answers `403`), or give it back.
    pub fn forbid_search(&self, forbidden: bool) {
        self.shared.knobs().search_forbidden = forbidden;
    }

    /// Answer every passholder search after `delay` (the benchmark's 50 ms).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.knobs().delay = delay;
    }

    /// Play `fault` for the next passholder search not yet given one.
    pub fn fail_next(&self, fault: Fault) {
        self.shared.knobs().faults.push_back(fault);
    }

    /// Play `fault` for every passholder search (after the queued ones), or stop.
    pub fn fail_always(&self, fault: Option<Fault>) {
        self.shared.knobs().every_time = fault;
    }

    /// Calls of the token endpoint.
    pub fn token_calls(&self) -> usize {
        self.shared.token_calls.load(Ordering::SeqCst)
    }

    /// Calls of `GET /permissions`, counted once answered.
    pub fn permission_calls(&self) -> usize {
        self.shared.permission_calls.load(Ordering::SeqCst)
    }

    /// Calls of `GET /passholders`.
    pub fn lookups(&self) -> usize {
        self.shared.lookups.load(Ordering::SeqCst)
    }

    /// API calls refused with `401` (no live token).
    pub fn unauthorized(&self) -> usize {
        self.shared.unauthorized.load(Ordering::SeqCst)
    }

    /// The query parameters of the last passholder search.
    pub fn last_query(&self) -> Option<HashMap<String, String>> {
        self.shared.knobs().last_query.clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A CA of its own and a server certificate for 127.0.0.1 and localhost.
fn tls() -> Result<(TlsAcceptor, String), StartError> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "UiTPAS stand-in TEST CA");
    let ca = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?
        .signed_by(&key, &ca, &ca_key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(server.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), ca.pem()))
}

/// Accepts TCP connections and runs each TLS handshake in its own task, so a slow client
/// never holds up the others.
struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    fn start(tcp: TcpListener, acceptor: TlsAcceptor) -> Self {
        let local = tcp
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (sender, ready) = mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = tcp.accept().await else {
                    continue;
                };
                let (acceptor, sender) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
                    {
                        let _ = sender.send((tls, peer)).await;
                    }
                });
            }
        });
        Self { ready, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The acceptor task is gone: the stand-in is stopping.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: String,
    client_id: String,
    client_secret: String,
}

async fn token(State(shared): State<Arc<Shared>>, Form(request): Form<TokenRequest>) -> Response {
    shared.token_calls.fetch_add(1, Ordering::SeqCst);
    let mut knobs = shared.knobs();
    let valid = request.grant_type == "client_credentials"
        && request.client_id == CLIENT_ID
        && request.client_secret == CLIENT_SECRET
        && !knobs.refuse_client;
    if !valid {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"})),
        )
            .into_response();
    }
    let lifetime = knobs.token_lifetime.unwrap_or(Duration::from_secs(3600));
    let now = Instant::now();
    let value = uuid::Uuid::new_v4().simple().to_string();
    knobs.tokens.insert(
        value.clone(),
        Issued {
            at: now,
            expires: now + lifetime,
        },
    );
    axum::Json(
        json!({"access_token": value, "expires_in": lifetime.as_secs(), "token_type": "Bearer"}),
    )
    .into_response()
}

/// Whether the request carries a live token; counts the refusals.
fn authorized(shared: &Shared, knobs: &Knobs, headers: &HeaderMap) -> bool {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let issued = token.and_then(|token| knobs.tokens.get(token));
    let now = Instant::now();
    let live = issued.is_some_and(|issued| {
        issued.expires > now
            && knobs
                .revoked_before
                .is_none_or(|revoked| issued.at > revoked)
            && !knobs.refuse_every_token
    });
    if !live {
        shared.unauthorized.fetch_add(1, Ordering::SeqCst);
    }
    live
}

/// `401` with publiq's problem.
fn unauthorized() -> Response {
    problem_response(dataset::problem(
        401,
        "https://api.publiq.be/probs/auth/unauthorized",
        "Unauthorized",
        None,
    ))
}

fn problem_response(body: Value) -> Response {
    let status = body
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|status| StatusCode::from_u16(u16::try_from(status).ok()?).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

async fn permissions(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let response = {
        let knobs = shared.knobs();
        if authorized(&shared, &knobs, &headers) {
            axum::Json(dataset::permissions(!knobs.search_forbidden)).into_response()
        } else {
            unauthorized()
        }
    };
    // Counted once answered: a caller that sees the count sees the answer's effect.
    shared.permission_calls.fetch_add(1, Ordering::SeqCst);
    response
}

async fn passholders(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    shared.lookups.fetch_add(1, Ordering::SeqCst);
    let (fault, delay) = {
        let mut knobs = shared.knobs();
        knobs.last_query = Some(query.clone());
        if !authorized(&shared, &knobs, &headers) {
            return unauthorized();
        }
        if knobs.search_forbidden {
            return problem_response(json!({"type": "https://api.publiq.be/probs/auth/forbidden",
                "title": "Forbidden", "status": 403,
                "detail": "client has no PASSHOLDERS_SEARCH permission on the organizer"}));
        }
        let fault = knobs
            .faults
            .pop_front()
            .or_else(|| knobs.every_time.clone());
        (fault, knobs.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let Some(national_number) = query.get("inszNumber") else {
        return problem_response(dataset::problem(
            400,
            "https://api.publiq.be/probs/uitpas/invalid-insz-number",
            "Invalid insz number",
            None,
        ));
    };
    match fault {
        None => axum::Json(dataset::passholders(national_number)).into_response(),
        Some(Fault::Slow(wait)) => {
            tokio::time::sleep(wait).await;
            axum::Json(dataset::passholders(national_number)).into_response()
        }
        Some(Fault::Malformed) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"totalItems": "many", "member": {"#,
        )
            .into_response(),
        Some(Fault::Problem {
            status,
            problem_type,
            title,
            end_user_message,
        }) => problem_response(dataset::problem(
            status,
            problem_type,
            title,
            end_user_message,
        )),
        Some(Fault::Status(status, retry_after)) => {
            let body = if status == 429 {
                dataset::problem(
                    429,
                    "https://api.publiq.be/probs/uitpas/rate-limited",
                    "Rate limited",
                    None,
                )
            } else {
                dataset::problem(
                    status,
                    "https://api.publiq.be/probs/internal-server-error",
                    "Internal Server Error",
                    None,
                )
            };
            let mut response = problem_response(body);
            if let Some(seconds) = retry_after {
                if let Ok(value) = seconds.to_string().parse() {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            response
        }
    }
}
