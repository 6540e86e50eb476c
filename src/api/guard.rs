//! Checks every request passes before a handler runs.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::backoff::{Verdict, PER_CONNECTION};
use super::clients::Client;
use super::connections::ConnectionHandle;
use super::error::ApiError;
use super::AppState;

/// The client a `/v1` request comes from, put into the request by [`caller`].
#[derive(Clone)]
pub struct Caller(pub Arc<Client>);

/// For every request: the Host must name this agent (DNS rebinding), the response is never
/// cached, and the request is counted by route and status.
pub async fn host_and_headers(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let mut response = match addressed_to_us(&state, &request) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    state.metrics.request(&route, response.status().as_u16());
    response
}

/// Whether the request is unambiguously meant for this agent. Several `Host` headers are a
/// malformed request (RFC 9112 §3.2: `400`), and so is an absolute-form target naming
/// another host (`GET http://elsewhere/v1/status`: a proxy's request, never a browser's to
/// us); a Host that is not ours is DNS rebinding (`403`); several `Origin` headers leave
/// no origin to check (`403`).
fn addressed_to_us(state: &AppState, request: &Request) -> Result<(), ApiError> {
    let own = |name: &str| {
        state
            .hosts
            .iter()
            .any(|host| host.eq_ignore_ascii_case(name))
    };
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(ApiError::HOST_REPEATED);
    }
    if let Some(authority) = request.uri().authority() {
        if !own(authority.as_str()) {
            return Err(ApiError::AUTHORITY);
        }
    }
    if !host.and_then(|h| h.to_str().ok()).is_some_and(own) {
        return Err(ApiError::HOST);
    }
    if request
        .headers()
        .get_all(header::ORIGIN)
        .iter()
        .nth(1)
        .is_some()
    {
        return Err(ApiError::ORIGIN);
    }
    Ok(())
}

/// For `/v1`: preflights for configured origins only; then the bearer token (or, for the
/// event stream, its ticket), the client's origins on every request that has an Origin,
/// the client's rate; CORS headers only for that client's own origins.
pub async fn caller(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let origin = origin(request.headers());
    if request.method() == Method::OPTIONS {
        return match origin {
            Some(origin) if state.clients.any_allows_origin(&origin) => preflight(&origin),
            _ => ApiError::ORIGIN.into_response(),
        };
    }
    let connection = request
        .extensions()
        .get::<ConnectionHandle>()
        .map(|handle| handle.0.clone());
    // A connection that failed too often is done: a guesser needs a new one every few tries.
    if connection
        .as_ref()
        .is_some_and(|c| c.failed_authentications() >= PER_CONNECTION)
    {
        state.metrics.api_auth_failed(true);
        return closing(ApiError::AUTH_BACKOFF);
    }
    let authenticated = if request.uri().path() == "/v1/events" {
        let ticket = request
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ticket=")))
            .unwrap_or_default()
            .to_owned();
        state
            .tickets
            .redeem(&ticket)
            .ok_or(("unknown ticket", ApiError::TICKET))
    } else {
        match request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
        {
            Some(token) => state
                .clients
                .authenticate(token)
                .ok_or(("wrong token", ApiError::UNAUTHORIZED)),
            None => Err(("missing token", ApiError::UNAUTHORIZED)),
        }
    };
    let client = match authenticated {
        Ok(client) => client,
        Err((what, refusal)) => {
            let route = request
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", |p| p.as_str());
            return authentication_failed(&state, connection.as_deref(), what, route, refusal);
        }
    };
    if let Some(connection) = &connection {
        connection.mark_authenticated();
    }
    if let Some(origin) = &origin {
        if !client.allows_origin(origin) {
            tracing::warn!(client = %client.name, "request from an origin not configured for the client");
            return ApiError::ORIGIN.into_response();
        }
    }
    if !state.clients.admit(&client) {
        return ApiError::RATE.into_response();
    }
    // Which client looked at which card session's data is audited.
    let audited = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .filter(|route| route.starts_with("/v1/sessions/"));
    let session = request
        .uri()
        .path()
        .split('/')
        .nth(3)
        .and_then(|id| uuid::Uuid::parse_str(id).ok());
    let method = request.method().to_string();
    let client_name = client.name.clone();
    request.extensions_mut().insert(Caller(client));
    let mut response = next.run(request).await;
    if let Some(route) = audited {
        let record = crate::audit::ApiRequest {
            client: Some(client_name),
            method,
            route,
            status: response.status().as_u16(),
            session,
        };
        state
            .engine
            .record(move |log| log.api_request(&record))
            .await;
    }
    if let Some(origin) = origin {
        add_cors(response.headers_mut(), &origin);
    }
    response
}

/// Counts a failed authentication and answers it: `401`, or `429` once the agent's failure
/// budget is spent; the connection's last allowed failure is answered `429` and closes it.
fn authentication_failed(
    state: &AppState,
    connection: Option<&super::connections::Connection>,
    what: &'static str,
    route: &str,
    refusal: ApiError,
) -> Response {
    let verdict = state.auth_failures.failed(what, route);
    let connection_done = connection.is_some_and(|c| c.authentication_failed() >= PER_CONNECTION);
    let throttled = connection_done || verdict == Verdict::Throttled;
    state.metrics.api_auth_failed(throttled);
    match (throttled, connection_done) {
        (_, true) => closing(ApiError::AUTH_BACKOFF),
        (true, false) => ApiError::AUTH_BACKOFF.into_response(),
        (false, false) => refusal.into_response(),
    }
}

/// `refusal`, and the connection closed after it.
fn closing(refusal: ApiError) -> Response {
    let mut response = refusal.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The Origin header. One that is not visible ASCII (no browser sends such) still counts as
/// present, so that it is refused rather than ignored: it can never match a configured origin.
fn origin(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::ORIGIN)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
}

fn add_cors(headers: &mut HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
}

fn preflight(origin: &str) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    add_cors(headers, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    // Older Chromium (Private Network Access) asks for this on requests to loopback.
    headers.insert(
        "access-control-allow-private-network",
        HeaderValue::from_static("true"),
    );
    response
}
