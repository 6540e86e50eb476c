//! api: the agent's upstream contract (`docs/upstream-openapi.yaml`), served to devices.
//!
//! - `POST /v1/eligibility-checks`: `200` with a decision (`unknown` included: the gateway
//!   could not decide, and says why in `reasonCode`); `400` for an invalid request, `403`
//!   when the client certificate's CN is not the body's `deviceId`, `429` over the
//!   device's rate (with `Retry-After`), `503` when the audit record cannot be written.
//! - `POST /v1/eligibility-checks/{requestId}/outcome`: the clerk's final decision,
//!   recorded (`204`). The gateway keeps no state: any request id is accepted.
//! - `GET /v1/health`: `200` when every source can answer, `503` with their states.
//!
//! The national number is read from the body into [`NationalNumber`] (whose `Debug`
//! masks it) and goes only to the sources and, as a pseudonym, to the audit log.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use beid_core::audit::{CheckAnswered, CheckRefused, Decision, OutcomeRecord};
use beid_core::contract::{AnswerDecision, EligibilityAnswer, EligibilityCheck, OutcomeFeedback};
use tokio::time::Instant;
use uuid::Uuid;

use crate::audit::Audit;
use crate::check::{Decided, UseCase};
use crate::metrics::Metrics;
use crate::rate::RateLimiter;
use crate::server::Peer;
use crate::sources::{Health, Reason, Source, SourceAnswer};

/// The largest request body read.
const MAX_BODY: usize = 16 * 1024;
/// The contract's limits on `clerkMessage` and `reasonCode`.
const MAX_CLERK_MESSAGE: usize = 300;
const MAX_NOTE_CHARS: usize = 200;

/// What the routes share.
#[derive(Clone)]
pub struct AppState {
    pub(crate) use_cases: Arc<HashMap<String, UseCase>>,
    pub(crate) sources: Arc<Vec<Arc<dyn Source>>>,
    pub(crate) rate: Arc<RateLimiter>,
    pub(crate) audit: Audit,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) answer_within: Duration,
}

/// The routes. Handlers need [`Peer`] as connection info (see [`crate::serve`]).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/eligibility-checks", post(check))
        .route("/v1/eligibility-checks/{request_id}/outcome", post(outcome))
        .route("/v1/health", get(health))
        .with_state(state)
}

/// A refusal with a stable code; never an error's text.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    retry_after: Option<Duration>,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str) -> Self {
        Self {
            status,
            code,
            retry_after: None,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            no_store(),
            Json(serde_json::json!({"error": self.code})),
        )
            .into_response();
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

fn no_store() -> [(header::HeaderName, &'static str); 1] {
    [(header::CACHE_CONTROL, "no-store")]
}

impl AppState {
    /// Counts, logs and audits a refusal; answers it.
    fn refuse(&self, refusal: Refusal, request: Option<Uuid>, device: Option<&str>) -> Response {
        self.metrics.refused(refusal.code);
        tracing::warn!(
            request_id = request.map(|id| id.to_string()),
            device,
            reason = refusal.code,
            status = refusal.status.as_u16(),
            "request refused"
        );
        self.audit.refused(CheckRefused {
            request,
            device: device.map(str::to_owned),
            reason: refusal.code.to_owned(),
            status: refusal.status.as_u16(),
        });
        refusal.into_response()
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The contract's `deviceId`: `^[A-Za-z0-9._-]{1,64}$`.
fn valid_device_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

async fn check(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let device = peer.device.as_deref();
    if !is_json(&headers) {
        return state.refuse(
            Refusal::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_json"),
            None,
            device,
        );
    }
    if body.len() > MAX_BODY {
        return state.refuse(
            Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            None,
            device,
        );
    }
    // serde's message may quote the body: only its category is logged.
    let question: EligibilityCheck = match serde_json::from_slice(&body) {
        Ok(question) => question,
        Err(error) => {
            tracing::debug!(category = ?error.classify(), line = error.line(), column = error.column(), "invalid check body");
            return state.refuse(
                Refusal::new(StatusCode::BAD_REQUEST, "invalid_request"),
                None,
                device,
            );
        }
    };
    let request_id = Some(question.request_id);
    let invalid = if !question.national_number.checksum().is_valid() {
        Some("national_number_invalid")
    } else if question.use_case.is_empty()
        || question.use_case.len() > 64
        || question.use_case.chars().any(char::is_whitespace)
    {
        Some("use_case_invalid")
    } else if !valid_device_id(&question.device_id) {
        Some("device_id_invalid")
    } else {
        None
    };
    if let Some(code) = invalid {
        return state.refuse(
            Refusal::new(StatusCode::BAD_REQUEST, code),
            request_id,
            device,
        );
    }
    if device != Some(question.device_id.as_str()) {
        return state.refuse(
            Refusal::new(StatusCode::FORBIDDEN, "device_mismatch"),
            request_id,
            device,
        );
    }
    if let Err(wait) = state.rate.admit(&question.device_id) {
        let refusal = Refusal {
            retry_after: Some(wait),
            ..Refusal::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited")
        };
        return state.refuse(refusal, request_id, device);
    }

    let use_case = state.use_cases.get(&question.use_case);
    let decided = match use_case {
        Some(use_case) => {
            use_case
                .decide(
                    question.request_id,
                    &question.national_number,
                    started + state.answer_within,
                    &state.metrics,
                )
                .await
        }
        None => Decided {
            answer: SourceAnswer::unknown(Reason::UseCaseNotConfigured),
            source: None,
        },
    };
    let latency = started.elapsed();
    let answer = &decided.answer;
    let reason = answer.reason.as_ref().map(|r| r.code().to_owned());
    let use_case_label = use_case.map_or("unconfigured", |u| u.id.as_str());
    let recorded = state.audit.check(
        CheckAnswered {
            request: question.request_id,
            device: question.device_id.clone(),
            use_case: question.use_case.clone(),
            channel: question.channel.as_str().to_owned(),
            decision: audit_decision(answer.decision),
            source: decided.source.map(str::to_owned),
            reason: reason.clone(),
            latency,
        },
        question.national_number.clone(),
    );
    if !recorded {
        // No answer without its audit record (queued: see crate::audit).
        return state.refuse(
            Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "audit_unavailable"),
            request_id,
            device,
        );
    }
    state
        .metrics
        .check(use_case_label, answer.decision, latency);
    tracing::info!(
        request_id = %question.request_id,
        device = question.device_id,
        use_case = use_case_label,
        channel = %question.channel,
        decision = ?answer.decision,
        source = decided.source,
        reason = reason.as_deref(),
        latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        "check answered"
    );
    let body = EligibilityAnswer {
        request_id: question.request_id,
        decision: answer.decision,
        reason_code: reason,
        valid_until: answer.valid_until,
        basis: answer.basis,
        clerk_message: answer
            .clerk_message
            .as_deref()
            .map(|m| beid_core::text::untrusted(m, MAX_CLERK_MESSAGE)),
    };
    (no_store(), Json(body)).into_response()
}

fn audit_decision(decision: AnswerDecision) -> Decision {
    match decision {
        AnswerDecision::Eligible => Decision::Eligible,
        AnswerDecision::NotEligible => Decision::NotEligible,
        AnswerDecision::Unknown => Decision::Unknown,
    }
}

/// The contract's deviation reason: `^[a-z0-9_]{1,40}$`.
fn valid_reason(reason: &str) -> bool {
    (1..=40).contains(&reason.len())
        && reason
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

async fn outcome(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let device = peer.device.as_deref();
    let Ok(request) = Uuid::parse_str(&request_id) else {
        return state.refuse(
            Refusal::new(StatusCode::BAD_REQUEST, "request_id_invalid"),
            None,
            device,
        );
    };
    let Some(device_id) = device.filter(|d| valid_device_id(d)) else {
        return state.refuse(
            Refusal::new(StatusCode::FORBIDDEN, "device_unknown"),
            Some(request),
            device,
        );
    };
    if !is_json(&headers) || body.len() > MAX_BODY {
        return state.refuse(
            Refusal::new(StatusCode::BAD_REQUEST, "invalid_request"),
            Some(request),
            device,
        );
    }
    let feedback: OutcomeFeedback = match serde_json::from_slice(&body) {
        Ok(feedback) => feedback,
        Err(_) => {
            return state.refuse(
                Refusal::new(StatusCode::BAD_REQUEST, "invalid_request"),
                Some(request),
                device,
            )
        }
    };
    let deviation_ok = feedback.deviation.as_ref().is_none_or(|deviation| {
        valid_reason(&deviation.reason)
            && deviation.note.as_deref().is_none_or(|note| {
                note.chars().count() <= MAX_NOTE_CHARS
                    && beid_core::text::redact_national_numbers(note) == note
            })
    });
    if !deviation_ok {
        return state.refuse(
            Refusal::new(StatusCode::BAD_REQUEST, "deviation_invalid"),
            Some(request),
            device,
        );
    }
    let deviation = feedback.deviation.as_ref().map(|d| d.reason.clone());
    let recorded = state.audit.outcome(OutcomeRecord {
        request,
        device: device_id.to_owned(),
        decision: feedback.decision,
        deviation: deviation.clone(),
        note: feedback
            .deviation
            .as_ref()
            .is_some_and(|d| d.note.is_some()),
    });
    if !recorded {
        return state.refuse(
            Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "audit_unavailable"),
            Some(request),
            device,
        );
    }
    state
        .metrics
        .outcome(feedback.decision, deviation.as_deref());
    tracing::info!(
        request_id = %request,
        device = device_id,
        decision = feedback.decision.code(),
        deviation = deviation.as_deref(),
        "outcome recorded"
    );
    (StatusCode::NO_CONTENT, no_store()).into_response()
}

async fn health(State(state): State<AppState>) -> Response {
    let mut sources = BTreeMap::new();
    let mut ready = true;
    for source in state.sources.iter() {
        let status = match source.health() {
            Health::Ready => "ready",
            Health::NotReady(why) => {
                ready = false;
                why
            }
        };
        sources.insert(source.name(), status);
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if ready { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "sources": sources,
    });
    (status, no_store(), Json(body)).into_response()
}
