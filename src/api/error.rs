//! The API's one error type: a stable machine code and an English sentence, never raw
//! internal error text and never personal data.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: &'static str,
}

impl ApiError {
    pub const fn new(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        Self {
            status,
            code,
            message,
        }
    }

    pub const HOST: Self = Self::new(
        StatusCode::FORBIDDEN,
        "host_not_allowed",
        "this Host is not the agent's own",
    );
    pub const ORIGIN: Self = Self::new(
        StatusCode::FORBIDDEN,
        "origin_not_allowed",
        "this Origin is not configured for the client",
    );
    pub const UNAUTHORIZED: Self = Self::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid bearer token is required",
    );
    pub const TICKET: Self = Self::new(
        StatusCode::UNAUTHORIZED,
        "ticket_invalid",
        "the event ticket is unknown, used or expired",
    );
    pub const SCOPE: Self = Self::new(
        StatusCode::FORBIDDEN,
        "scope_missing",
        "the client's scopes do not allow this",
    );
    pub const RATE: Self = Self::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests; slow down",
    );
    pub const MEDIA: Self = Self::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "the body must be application/json",
    );
    pub const TOO_LARGE: Self = Self::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "the body is too large",
    );
    pub const BAD_BODY: Self = Self::new(
        StatusCode::BAD_REQUEST,
        "bad_request",
        "the body is not the expected JSON",
    );
    pub const NOT_FOUND: Self = Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource");
    pub const SESSION_UNKNOWN: Self = Self::new(
        StatusCode::NOT_FOUND,
        "session_not_found",
        "no such card session",
    );
    pub const SESSION_ENDED: Self = Self::new(
        StatusCode::GONE,
        "session_ended",
        "the card of this session was removed",
    );
    pub const USE_CASE: Self = Self::new(
        StatusCode::BAD_REQUEST,
        "unknown_use_case",
        "no such use case",
    );
    pub const CARD_NOT_READ: Self = Self::new(
        StatusCode::CONFLICT,
        "card_not_read",
        "the card could not be read",
    );
    pub const SIMULATOR: Self = Self::new(
        StatusCode::BAD_REQUEST,
        "simulator_refused",
        "no such simulated reader or card",
    );
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.code, "message": self.message});
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
