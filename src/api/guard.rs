//! Checks every request passes before a handler runs.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::clients::Client;
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
    let host_ok = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|host| state.hosts.iter().any(|own| own.eq_ignore_ascii_case(host)));
    let mut response = if host_ok {
        next.run(request).await
    } else {
        ApiError::HOST.into_response()
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
    let client = if request.uri().path() == "/v1/events" {
        let ticket = request
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ticket=")))
            .unwrap_or_default()
            .to_owned();
        match state.tickets.redeem(&ticket) {
            Some(client) => client,
            None => return ApiError::TICKET.into_response(),
        }
    } else {
        let token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or_default();
        match state.clients.authenticate(token) {
            Some(client) => client,
            None => return ApiError::UNAUTHORIZED.into_response(),
        }
    };
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
