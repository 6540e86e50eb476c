//! server: the gateway built from its configuration, and served: HTTPS with a required
//! client certificate to devices, plain HTTP for the metrics scraper.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::api::{router, AppState};
use crate::audit::Audit;
use crate::check::UseCase;
use crate::config::{Config, SourceKind};
use crate::metrics::Metrics;
use crate::rate::RateLimiter;
use crate::sources::rules_http::RulesHttp;
use crate::sources::uitpas::{Uitpas, UitpasError};
use crate::sources::Source;
use crate::tls::{self, TlsError};

/// A TLS handshake must finish within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    #[error("server TLS: {0}")]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Uitpas(#[from] UitpasError),
    #[error("audit log: {0}")]
    Audit(#[from] beid_core::audit::AuditError),
}

/// A gateway ready to serve: its routes' state, its TLS configuration and the background
/// tasks of its sources (stopped when it is dropped).
pub struct Gateway {
    state: AppState,
    tls: Arc<rustls::ServerConfig>,
    uitpas: Option<Arc<Uitpas>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Gateway {
    /// Reads the certificates and secrets, opens the audit log, builds the sources and
    /// starts their background work (UiTPAS permissions). Must run inside a tokio runtime.
    pub fn build(config: &Config) -> Result<Self, GatewayError> {
        let metrics = Arc::new(Metrics::default());
        let tls = tls::server_config(
            &config.server.cert,
            &config.server.key,
            &config.server.client_ca,
        )?;
        let audit = Audit::open(
            &config.audit.log,
            &config.audit.secret_file,
            metrics.clone(),
        )?;
        let mut sources: HashMap<SourceKind, Arc<dyn Source>> = HashMap::new();
        let mut uitpas = None;
        let mut tasks = Vec::new();
        if let Some(settings) = &config.uitpas {
            let source = Arc::new(Uitpas::new(settings, metrics.clone())?);
            tasks.push(source.start());
            sources.insert(SourceKind::Uitpas, source.clone());
            uitpas = Some(source);
        }
        if let Some(settings) = &config.rules_http {
            sources.insert(SourceKind::RulesHttp, Arc::new(RulesHttp::new(settings)?));
        }
        let use_cases = config
            .use_cases
            .iter()
            .map(|u| {
                let use_case = UseCase {
                    id: u.id.clone(),
                    rule: u.rule.clone().unwrap_or_else(|| u.id.clone()),
                    combine: u.combine,
                    sources: u
                        .sources
                        .iter()
                        .filter_map(|kind| sources.get(kind).cloned())
                        .collect(),
                };
                (u.id.clone(), use_case)
            })
            .collect();
        let mut listed: Vec<(SourceKind, Arc<dyn Source>)> = sources.into_iter().collect();
        listed.sort_by_key(|(kind, _)| *kind);
        let state = AppState {
            use_cases: Arc::new(use_cases),
            sources: Arc::new(listed.into_iter().map(|(_, source)| source).collect()),
            rate: Arc::new(RateLimiter::new(
                config.server.rate_per_minute,
                config.server.rate_burst,
            )),
            audit,
            metrics,
            answer_within: config.server.answer_within,
        };
        Ok(Self {
            state,
            tls,
            uitpas,
            tasks,
        })
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.state.metrics.clone()
    }

    /// Waits until every audit record queued so far is on disk.
    pub fn flush_audit(&self) {
        self.state.audit.flush();
    }

    /// Asks UiTPAS for its permissions now (start-up, tests); true when they were read.
    pub async fn refresh_permissions(&self) -> bool {
        match &self.uitpas {
            Some(uitpas) => uitpas.refresh_permissions().await,
            None => true,
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Serves the contract on `listener` (HTTPS, client certificate required) until
/// `shutdown` completes; then lets open requests finish. The future owns what it needs:
/// spawn it, keep the [`Gateway`] (its sources' background tasks stop when it drops).
pub fn serve(
    listener: TcpListener,
    gateway: &Gateway,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
    let app = router(gateway.state()).into_make_service_with_connect_info::<Peer>();
    let tls = gateway.tls.clone();
    async move {
        axum::serve(TlsListener::new(listener, tls), app)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// Serves `GET /metrics` (Prometheus text) on `listener`, plain HTTP, until `shutdown`.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Who is on a connection: its address and its client certificate's subject CN.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The device id (subject CN); `None` if the certificate has none.
    pub device: Option<String>,
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        let (_, connection) = stream.io().get_ref();
        let device = connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| tls::common_name(leaf));
        Self {
            addr: *stream.remote_addr(),
            device,
        }
    }
}

/// Accepts TCP connections and runs each TLS handshake in a task of its own, so that a
/// slow or silent client never holds up the others.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: std::io::Result<SocketAddr>,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> Self {
        let local = tcp.local_addr();
        let acceptor = TlsAcceptor::from(config);
        let (sender, ready) = mpsc::channel(1024);
        let acceptor = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: do not spin.
                        tracing::warn!(error = %error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, sender) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, peer)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, error = %error, "TLS handshake refused")
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Self {
            ready,
            local,
            acceptor,
        }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        match &self.local {
            Ok(addr) => Ok(*addr),
            Err(error) => Err(std::io::Error::new(error.kind(), error.to_string())),
        }
    }
}
