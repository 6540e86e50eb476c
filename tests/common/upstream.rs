//! A real HTTPS rule service for tests: axum behind tokio-rustls on 127.0.0.1, port 0, that
//! requires a client certificate, with a test PKI made by rcgen at test time. Its replies are
//! scripted; it counts requests and TLS handshake failures and keeps every request body.

// Shared by several test crates, each using a part of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::State;
use axum::http::{header, HeaderMap, Response, StatusCode};
use axum::routing::post;
use axum::Router;
use hyper::body::{Frame, SizeHint};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Install ring as the process's rustls provider (once; later calls are no-ops).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

struct Issuer {
    certificate: rcgen::Certificate,
    key: KeyPair,
}

fn authority(name: &str) -> Issuer {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    Issuer {
        certificate: params.self_signed(&key).unwrap(),
        key,
    }
}

fn leaf(issuer: &Issuer, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Issuer {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names.clone()).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, names[0].as_str());
    params.extended_key_usages = vec![usage];
    Issuer {
        certificate: params
            .signed_by(&key, &issuer.certificate, &issuer.key)
            .unwrap(),
        key,
    }
}

/// Writes a PEM file; a key (`*.key`) readable by its owner only, as the agent demands.
fn write_pem(path: &std::path::Path, content: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    if path.extension().is_some_and(|e| e == "key") {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path.to_owned()
}

/// The test PKI, written as PEM files into a fresh folder (removed on drop).
///
/// - `ca`: issues the upstream's server certificate (127.0.0.1, localhost) and the device's
///   client certificate; the server trusts only it for clients.
/// - `rogue`: another CA, with its own client certificate: for "wrong client certificate" and,
///   as a CA bundle, for "untrusted server certificate".
pub struct Pki {
    pub dir: PathBuf,
    pub ca_bundle: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub rogue_ca_bundle: PathBuf,
    pub rogue_client_cert: PathBuf,
    pub rogue_client_key: PathBuf,
    ca: Issuer,
    ca_der: CertificateDer<'static>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
    /// The server certificate and key as PEM.
    server_pem: (String, String),
}

impl Pki {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("beid-upstream-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, content: &str| write_pem(&dir.join(name), content);

        let ca = authority("Test City Upstream CA");
        let server = leaf(
            &ca,
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = leaf(&ca, &["balie-3"], ExtendedKeyUsagePurpose::ClientAuth);
        let rogue = authority("Rogue CA");
        let rogue_client = leaf(&rogue, &["balie-3"], ExtendedKeyUsagePurpose::ClientAuth);

        Self {
            ca_bundle: write("ca.pem", &ca.certificate.pem()),
            client_cert: write("client.pem", &client.certificate.pem()),
            client_key: write("client.key", &client.key.serialize_pem()),
            rogue_ca_bundle: write("rogue-ca.pem", &rogue.certificate.pem()),
            rogue_client_cert: write("rogue-client.pem", &rogue_client.certificate.pem()),
            rogue_client_key: write("rogue-client.key", &rogue_client.key.serialize_pem()),
            ca_der: ca.certificate.der().clone(),
            ca,
            server_chain: vec![server.certificate.der().clone()],
            server_key: server.key.serialize_der(),
            server_pem: (server.certificate.pem(), server.key.serialize_pem()),
            dir,
        }
    }

    /// Another client certificate of the device, issued by `ca`, valid over these dates;
    /// written as `<name>.pem` and `<name>.key`.
    pub fn client_valid(
        &self,
        name: &str,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["balie-3".to_owned()]).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "balie-3");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = not_before;
        params.not_after = not_after;
        let certificate = params
            .signed_by(&key, &self.ca.certificate, &self.ca.key)
            .unwrap();
        let cert_path = self.dir.join(format!("{name}.pem"));
        let key_path = self.dir.join(format!("{name}.key"));
        write_pem(&cert_path, &certificate.pem());
        write_pem(&key_path, &key.serialize_pem());
        (cert_path, key_path)
    }

    /// The CA's private key as `ca.key` (PEM), for a CA run with openssl that issues
    /// client certificates this upstream accepts (its certificate is `ca_bundle`).
    pub fn ca_key(&self) -> PathBuf {
        write_pem(&self.dir.join("ca.key"), &self.ca.key.serialize_pem())
    }

    /// The server certificate (127.0.0.1, localhost) and its key as `server.pem` and
    /// `server.key`, for a server of another kind (the city gateway) to present.
    pub fn server_identity(&self) -> (PathBuf, PathBuf) {
        let cert = self.dir.join("server.pem");
        let key = self.dir.join("server.key");
        std::fs::write(&cert, &self.server_pem.0).unwrap();
        std::fs::write(&key, &self.server_pem.1).unwrap();
        (cert, key)
    }

    fn server_tls(&self, protocol: Protocol) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.server_chain.clone(), key)
            .unwrap();
        config.alpn_protocols = match protocol {
            Protocol::Negotiated => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            Protocol::Http1 => vec![b"http/1.1".to_vec()],
        };
        config
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Which HTTP versions the upstream offers through ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// h2 and http/1.1: the client picks h2.
    Negotiated,
    /// http/1.1 only.
    Http1,
}

/// What the upstream answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this decision, the request's own requestId, a reasonCode and a validUntil.
    Decide(&'static str),
    /// As `Decide`, with this reasonCode (untrusted text the agent must clean).
    DecideWithReason(&'static str, &'static str),
    /// 200 with a contract-shaped body whose requestId is another one.
    WrongRequestId,
    /// This status (and Retry-After, if given), empty body.
    Status(u16, Option<&'static str>),
    /// A redirect: this status and `Location` (an absolute URL).
    Redirect(u16, String),
    /// 200 with this raw body.
    Raw(&'static str),
    /// Never answers.
    Hang,
    /// 200, `Content-Length: len`, then one byte every `every`.
    Drip { len: usize, every: Duration },
    /// 200 with `len` bytes streamed in chunks, without Content-Length.
    Stream { len: usize },
    /// 200 with `len` bytes and a Content-Length.
    Large { len: usize },
    /// 200 with an `eligible` answer padded with spaces to exactly `len` bytes: with a
    /// Content-Length, or (`streamed`) in two chunks without one.
    Padded { len: usize, streamed: bool },
    /// 200 on a status registered in a card system, as the city's gateway answers from
    /// UiTPAS: basis `registered_status`; `not_eligible` with reasonCode `not_registered`.
    Registered(&'static str),
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    fallback: Mutex<Option<Reply>>,
    hits: AtomicUsize,
    handshake_failures: AtomicUsize,
    bodies: Mutex<Vec<Bytes>>,
    content_types: Mutex<Vec<String>>,
    /// Every question's HTTP version.
    versions: Mutex<Vec<axum::http::Version>>,
    /// Outcomes received: the path's request id and the body.
    outcomes: Mutex<Vec<(String, serde_json::Value)>>,
    /// Statuses to answer the next outcomes with (then 204).
    outcome_statuses: Mutex<VecDeque<u16>>,
}

/// A running upstream. Stops when dropped.
pub struct Upstream {
    pub url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Upstream {
    /// Start on 127.0.0.1, port 0, offering h2 and http/1.1, answering `reply` to every
    /// request until told otherwise.
    pub async fn start(pki: &Pki, reply: Reply) -> Self {
        Self::start_with(pki, reply, Protocol::Negotiated).await
    }

    /// Start, offering these HTTP versions.
    pub async fn start_with(pki: &Pki, reply: Reply, protocol: Protocol) -> Self {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        *shared.fallback.lock().unwrap() = Some(reply);
        let listener = TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(pki.server_tls(protocol))),
            shared: shared.clone(),
        };
        let app = Router::new()
            .route("/v1/eligibility-checks", post(answer))
            .route("/v1/health", axum::routing::get(|| async { "ok" }))
            .route(
                "/v1/eligibility-checks/{request_id}/outcome",
                post(take_outcome),
            )
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("https://{addr}/"),
            shared,
            task,
        }
    }

    /// Answer `reply` from now on (after any queued replies).
    pub fn reply(&self, reply: Reply) {
        *self.shared.fallback.lock().unwrap() = Some(reply);
    }

    /// Answer `reply` to the next request not yet scripted.
    pub fn then(&self, reply: Reply) {
        self.shared.script.lock().unwrap().push_back(reply);
    }

    /// Requests that reached the handler.
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// TLS handshakes the server refused.
    pub fn handshake_failures(&self) -> usize {
        self.shared.handshake_failures.load(Ordering::SeqCst)
    }

    /// Every request body, as JSON.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.shared
            .bodies
            .lock()
            .unwrap()
            .iter()
            .map(|body| serde_json::from_slice(body).unwrap())
            .collect()
    }

    /// Every outcome received: the request id of its path, and its body.
    pub fn outcomes(&self) -> Vec<(String, serde_json::Value)> {
        self.shared.outcomes.lock().unwrap().clone()
    }

    /// Answer the next outcomes with these statuses (then 204).
    pub fn outcome_statuses(&self, statuses: &[u16]) {
        self.shared
            .outcome_statuses
            .lock()
            .unwrap()
            .extend(statuses.iter().copied());
    }

    /// Every request's Content-Type.
    pub fn content_types(&self) -> Vec<String> {
        self.shared.content_types.lock().unwrap().clone()
    }

    /// Every question's HTTP version.
    pub fn versions(&self) -> Vec<axum::http::Version> {
        self.shared.versions.lock().unwrap().clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            let handshake = self.acceptor.accept(stream);
            match tokio::time::timeout(Duration::from_secs(5), handshake).await {
                Ok(Ok(tls)) => return (tls, addr),
                _ => {
                    self.shared
                        .handshake_failures
                        .fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

async fn take_outcome(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(request_id): axum::extract::Path<String>,
    body: Bytes,
) -> StatusCode {
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    shared.outcomes.lock().unwrap().push((request_id, body));
    let status = shared.outcome_statuses.lock().unwrap().pop_front();
    StatusCode::from_u16(status.unwrap_or(204)).unwrap()
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    version: axum::http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    shared.versions.lock().unwrap().push(version);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    shared.content_types.lock().unwrap().push(content_type);
    shared.bodies.lock().unwrap().push(body.clone());
    let request_id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("requestId")
                .and_then(|id| id.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let reply = {
        let next = shared.script.lock().unwrap().pop_front();
        next.or_else(|| shared.fallback.lock().unwrap().clone())
            .unwrap()
    };
    let json = |value: serde_json::Value| {
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(value.to_string()))
            .unwrap()
    };
    match reply {
        Reply::Decide(decision) => json(serde_json::json!({
            "requestId": request_id,
            "decision": decision,
            "reasonCode": "TEST-1",
            "validUntil": "2026-12-31",
            "basis": "entitlement_rule",
        })),
        Reply::DecideWithReason(decision, reason) => json(serde_json::json!({
            "requestId": request_id,
            "decision": decision,
            "reasonCode": reason,
        })),
        Reply::WrongRequestId => json(serde_json::json!({
            "requestId": uuid::Uuid::new_v4().to_string(),
            "decision": "not_eligible",
        })),
        Reply::Status(status, retry_after) => {
            let mut response = Response::builder().status(status);
            if let Some(value) = retry_after {
                response = response.header(header::RETRY_AFTER, value);
            }
            response.body(Body::empty()).unwrap()
        }
        Reply::Redirect(status, location) => Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .header(header::LOCATION, location)
            .body(Body::empty())
            .unwrap(),
        Reply::Raw(text) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(text))
            .unwrap(),
        Reply::Hang => std::future::pending().await,
        Reply::Drip { len, every } => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::new(Trickle::new(len, every, 1, true)))
            .unwrap(),
        Reply::Stream { len } => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::new(Trickle::new(len, Duration::ZERO, 8192, false)))
            .unwrap(),
        Reply::Large { len } => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(vec![b' '; len]))
            .unwrap(),
        Reply::Padded { len, streamed } => {
            let mut body = serde_json::to_vec(&serde_json::json!({
                "requestId": request_id,
                "decision": "eligible",
            }))
            .unwrap();
            assert!(body.len() < len / 2, "room for two chunks");
            body.resize(len, b' ');
            let response = Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json");
            if streamed {
                let second = body.split_off(len / 2);
                let chunks = [
                    Ok::<_, Infallible>(Bytes::from(body)),
                    Ok(Bytes::from(second)),
                ];
                response
                    .body(Body::from_stream(futures_util::stream::iter(chunks)))
                    .unwrap()
            } else {
                response.body(Body::from(body)).unwrap()
            }
        }
        Reply::Registered(decision) => json(serde_json::json!({
            "requestId": request_id,
            "decision": decision,
            "reasonCode": (decision == "not_eligible").then_some("not_registered"),
            "basis": "registered_status",
        })),
    }
}

/// A body of `left` spaces, `chunk` at a time, waiting `every` before each chunk.
struct Trickle {
    left: usize,
    every: Duration,
    chunk: usize,
    exact: bool,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Trickle {
    fn new(left: usize, every: Duration, chunk: usize, exact: bool) -> Self {
        Self {
            left,
            every,
            chunk,
            exact,
            sleep: Box::pin(tokio::time::sleep(every)),
        }
    }
}

impl HttpBody for Trickle {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        if !self.every.is_zero() {
            ready!(self.sleep.as_mut().poll(cx));
            let next = tokio::time::Instant::now() + self.every;
            self.sleep.as_mut().reset(next);
        }
        let size = self.chunk.min(self.left);
        self.left -= size;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b' '; size])))))
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact(self.left as u64)
        } else {
            SizeHint::default()
        }
    }
}
