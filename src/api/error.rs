//! The API's one error type: a stable machine code and an English sentence, never raw
//! internal error text and never personal data.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::views::ErrorView;
use crate::session::EngineError;

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
        "this agent run issued no such card session (if the agent restarted since, the card must be inserted again)",
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
    pub const METHOD: Self = Self::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this resource does not take this method",
    );
    pub const STILL_READING: Self = Self::new(
        StatusCode::CONFLICT,
        "card_reading",
        "the card is still being read; ask again when the card-read event came",
    );
    pub const ADVICE_NOT_ASKED: Self = Self::new(
        StatusCode::CONFLICT,
        "advice_not_asked",
        "ask the advice for this use case first",
    );
    pub const OUTCOME_RECORDED: Self = Self::new(
        StatusCode::CONFLICT,
        "outcome_already_recorded",
        "an outcome is already recorded for this use case in this session",
    );
    pub const DEVIATION_REQUIRED: Self = Self::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "deviation_required",
        "the decision differs from the advice (or the advice is unknown): give a deviation reason",
    );
    pub const DEVIATION_NOT_APPLICABLE: Self = Self::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "deviation_not_applicable",
        "the decision follows the advice: send no deviation",
    );
    pub const DEVIATION_REASON: Self = Self::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "deviation_reason_unknown",
        "the deviation reason is not one of the configured reasons (GET /v1/status)",
    );
    pub const NOTE_TOO_LONG: Self = Self::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "note_too_long",
        "the note may have at most 200 characters",
    );
    pub const NOTE_NATIONAL_NUMBER: Self = Self::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "note_has_national_number",
        "the note looks like it holds a national number: leave it out",
    );
    pub const HOST_REPEATED: Self = Self::new(
        StatusCode::BAD_REQUEST,
        "host_repeated",
        "the request has several Host headers",
    );
    pub const AUTHORITY: Self = Self::new(
        StatusCode::BAD_REQUEST,
        "authority_not_allowed",
        "the request target names a host that is not the agent's own",
    );
    pub const AUTH_BACKOFF: Self = Self::new(
        StatusCode::TOO_MANY_REQUESTS,
        "authentication_backoff",
        "too many failed authentications; wait, then use a valid token",
    );
    pub const STREAMS_CLIENT: Self = Self::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_event_streams",
        "this client has as many event streams open as it may; close one first",
    );
    pub const STREAMS_AGENT: Self = Self::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "event_streams_exhausted",
        "the agent serves as many event streams as it can; try again later",
    );
    pub const CONNECTIONS: Self = Self::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        "every connection the agent serves is busy; try again later",
    );

    /// Every error the API answers, for the OpenAPI document.
    pub const ALL: [Self; 30] = [
        Self::HOST,
        Self::ORIGIN,
        Self::UNAUTHORIZED,
        Self::TICKET,
        Self::SCOPE,
        Self::RATE,
        Self::MEDIA,
        Self::TOO_LARGE,
        Self::BAD_BODY,
        Self::NOT_FOUND,
        Self::SESSION_UNKNOWN,
        Self::SESSION_ENDED,
        Self::USE_CASE,
        Self::CARD_NOT_READ,
        Self::SIMULATOR,
        Self::METHOD,
        Self::STILL_READING,
        Self::ADVICE_NOT_ASKED,
        Self::OUTCOME_RECORDED,
        Self::DEVIATION_REQUIRED,
        Self::DEVIATION_NOT_APPLICABLE,
        Self::DEVIATION_REASON,
        Self::NOTE_TOO_LONG,
        Self::NOTE_NATIONAL_NUMBER,
        Self::HOST_REPEATED,
        Self::AUTHORITY,
        Self::AUTH_BACKOFF,
        Self::STREAMS_CLIENT,
        Self::STREAMS_AGENT,
        Self::CONNECTIONS,
    ];
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::UnknownSession => Self::SESSION_UNKNOWN,
            EngineError::SessionEnded => Self::SESSION_ENDED,
            EngineError::UnknownUseCase => Self::USE_CASE,
            EngineError::AdviceNotAsked => Self::ADVICE_NOT_ASKED,
            EngineError::OutcomeAlreadyRecorded => Self::OUTCOME_RECORDED,
            EngineError::DeviationRequired => Self::DEVIATION_REQUIRED,
            EngineError::DeviationNotApplicable => Self::DEVIATION_NOT_APPLICABLE,
            EngineError::UnknownDeviationReason => Self::DEVIATION_REASON,
            EngineError::NoteTooLong => Self::NOTE_TOO_LONG,
            EngineError::NoteHasNationalNumber => Self::NOTE_NATIONAL_NUMBER,
            EngineError::ReadFailed(_) => Self::CARD_NOT_READ,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorView {
            error: self.code,
            message: self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        let retry_after = match self.status {
            StatusCode::TOO_MANY_REQUESTS => Some("1"),
            StatusCode::SERVICE_UNAVAILABLE => Some("5"),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
        }
        response
    }
}
