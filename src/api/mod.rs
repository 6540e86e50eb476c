//! api: the local HTTP API for POS clients, the counter page and the kiosk page
//! (docs/local-api.md).
//!
//! Loopback only, every request's Host checked, bearer tokens with scopes, Origin checked
//! on every request that carries one, `Cache-Control: no-store` everywhere. Knows nothing
//! of PC/SC or APDUs: it talks to the session [`Engine`]. The only module naming `axum`.

mod backoff;
mod clients;
mod connections;
mod counter;
mod error;
mod events;
mod guard;
pub mod kiosk;
mod openapi;
mod pages;
mod routes;
mod server;
pub mod views;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

pub use clients::{Client, Clients, Scope};
pub use connections::Deadlines;
pub use error::ApiError;
pub use server::{bind, serve, serve_with, ServeLimits};
pub use views::{AdviceBody, InsertBody, OutcomeBody, RemoveBody};

use crate::metrics::Metrics;
use crate::session::Engine;
use crate::sim::SimulatedReaders;

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub clients: Arc<Clients>,
    pub metrics: Arc<Metrics>,
    /// The simulated readers' controls (`/v1/simulator/*`), in simulation only.
    pub simulator: Option<Arc<SimulatedReaders>>,
    tickets: Arc<events::Tickets>,
    /// Open event streams, capped per client and in all.
    streams: Arc<events::Streams>,
    /// The agent-wide budget of failed authentications.
    auth_failures: Arc<backoff::AuthFailures>,
    /// The Host values that name this agent ("127.0.0.1:8099", "localhost:8099", ...).
    hosts: Arc<Vec<String>>,
}

impl AppState {
    /// `port` is the one the agent listens on: only Host headers naming it are served.
    pub fn new(engine: Engine, clients: Clients, metrics: Arc<Metrics>, port: u16) -> Self {
        let hosts = ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .map(|host| format!("{host}:{port}"))
            .collect();
        Self {
            engine,
            clients: Arc::new(clients),
            metrics,
            simulator: None,
            tickets: Arc::new(events::Tickets::default()),
            streams: Arc::new(events::Streams::default()),
            auth_failures: Arc::new(backoff::AuthFailures::default()),
            hosts: Arc::new(hosts),
        }
    }

    /// Other caps on event streams than [`events::STREAMS_PER_CLIENT`] and
    /// [`events::STREAMS_IN_ALL`].
    pub fn with_stream_caps(mut self, per_client: usize, in_all: usize) -> Self {
        self.streams = Arc::new(events::Streams::with_caps(per_client, in_all));
        self
    }

    /// Another failure budget than [`backoff::BURST`] failures with [`backoff::PER_SECOND`]
    /// more a second (fuzzing and load tests fail on purpose, faster than any client).
    pub fn with_failure_budget(mut self, burst: f64, per_second: f64) -> Self {
        self.auth_failures = Arc::new(backoff::AuthFailures::new(burst, per_second));
        self
    }

    /// The metrics in Prometheus text: what was counted, and the engine's state now.
    pub fn metrics_text(&self) -> String {
        self.metrics.render(&self.engine.gauges())
    }

    /// Serves the simulated readers' controls too.
    pub fn with_simulator(mut self, simulator: Option<Arc<SimulatedReaders>>) -> Self {
        self.simulator = simulator;
        self
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let mut v1 = Router::new()
        .route("/v1/status", get(routes::status))
        .route("/v1/readers", get(routes::readers))
        .route("/v1/sessions/{session}", get(routes::session))
        .route(
            "/v1/sessions/{session}/national-number",
            get(routes::national_number),
        )
        .route("/v1/sessions/{session}/advice", post(routes::advice))
        .route("/v1/sessions/{session}/outcome", post(routes::outcome))
        .route("/v1/events/ticket", post(events::ticket))
        .route("/v1/events", get(events::stream))
        // Prometheus' scrape, with a token of the `metrics` scope: its counters show each
        // citizen's outcome as it happens.
        .route("/metrics", get(routes::metrics));
    if state.simulator.is_some() {
        v1 = v1
            .route("/v1/simulator/cards", get(routes::simulator_cards))
            .route("/v1/simulator/insert", post(routes::simulator_insert))
            .route("/v1/simulator/remove", post(routes::simulator_remove));
    }
    // The 405 fallback before the guard layer, so that the guard (preflights, tokens)
    // still sees every request to a /v1 path.
    let v1 = v1
        .method_not_allowed_fallback(|| async { ApiError::METHOD })
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::caller,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/kiosk", get(kiosk::redirect))
        .route("/kiosk/", get(kiosk::page))
        .route("/kiosk/kiosk.js", get(kiosk::script))
        .route("/kiosk/kiosk.css", get(kiosk::style))
        .route("/counter", get(counter::redirect))
        .route("/counter/", get(counter::page))
        .route("/counter/{file}", get(counter::asset))
        .route("/kiosk/speech/{language}/{clip}", get(kiosk::clip))
        .method_not_allowed_fallback(|| async { ApiError::METHOD })
        .merge(v1)
        .fallback(|| async { ApiError::NOT_FOUND })
        .layer(axum::extract::DefaultBodyLimit::max(4096))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::host_and_headers,
        ))
        .with_state(state)
}
