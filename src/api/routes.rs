//! The `/v1` handlers, `/metrics`, and the simulator's controls.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::clients::{Client, Scope};
use super::error::ApiError;
use super::guard::Caller;
use super::AppState;
use crate::beid::Gender;
use crate::session::{EngineError, ReadState};

fn require(client: &Client, scope: Scope) -> Result<(), ApiError> {
    if client.has(scope) {
        Ok(())
    } else {
        Err(ApiError::SCOPE)
    }
}

/// A JSON body, with our own errors for a wrong content type, size or shape.
fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    match body {
        Ok(Json(value)) => Ok(value),
        Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::MEDIA),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(ApiError::TOO_LARGE)
        }
        Err(_) => Err(ApiError::BAD_BODY),
    }
}

pub async fn status(
    State(state): State<AppState>,
    Extension(Caller(client)): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    require(&client, Scope::Advice)?;
    let engine = &state.engine;
    let settings = engine.settings();
    let upstream = settings.advice.status();
    let use_cases: Vec<Value> = settings
        .catalogue
        .iter()
        .map(|u| json!({"id": u.id(), "labels": u.labels(), "channels": u.channels()}))
        .collect();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pcscd": if engine.pcscd_up() { "up" } else { "down" },
        "readers": engine.readers(),
        "upstream": {"kind": upstream.kind, "circuit": upstream.circuit},
        "useCases": use_cases,
        "channel": settings.channel,
        "simulator": state.simulator.is_some(),
    })))
}

pub async fn readers(
    State(state): State<AppState>,
    Extension(Caller(client)): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    require(&client, Scope::Advice)?;
    Ok(Json(json!(state.engine.readers())))
}

fn session_error(error: EngineError) -> ApiError {
    match error {
        EngineError::UnknownSession => ApiError::SESSION_UNKNOWN,
        EngineError::SessionEnded => ApiError::SESSION_ENDED,
        EngineError::UnknownUseCase => ApiError::USE_CASE,
        _ => ApiError::CARD_NOT_READ,
    }
}

/// The session id of the path. A segment that does not even decode (percent-encoded bytes
/// that are not UTF-8) names no session either: our JSON error, not axum's plain-text one.
fn parse_session(path: Result<Path<String>, PathRejection>) -> Result<Uuid, ApiError> {
    let Path(text) = path.map_err(|_| ApiError::SESSION_UNKNOWN)?;
    Uuid::parse_str(&text).map_err(|_| ApiError::SESSION_UNKNOWN)
}

/// The card summary, with only what the client's scopes allow.
pub async fn session(
    State(state): State<AppState>,
    Extension(Caller(client)): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    require(&client, Scope::Advice)?;
    let session = state
        .engine
        .session(parse_session(path)?)
        .map_err(session_error)?;
    let mut view = json!({
        "session": session.id,
        "reader": crate::session::reader_id(&session.reader),
    });
    match session.read_state() {
        ReadState::Reading => view["state"] = json!("reading"),
        ReadState::Failed(code) => {
            view["state"] = json!("error");
            view["error"] = json!(code);
        }
        ReadState::Ready(read) => {
            let identity = &read.identity;
            let today = time::OffsetDateTime::now_utc().date();
            view["state"] = json!("ready");
            view["card"] = json!({
                "appletVersion": read.applet.to_string(),
                "validUntil": identity.validity_end.map(|d| d.to_string()),
                "expired": identity.is_expired_on(today),
            });
            view["authenticity"] = json!({
                "authentic": read.authenticity.authentic,
            });
            if let Some(chip) = &read.authenticity.chip {
                view["authenticity"]["chip"] = json!(chip.result);
            }
            if client.has(Scope::Identity) {
                view["identity"] = json!({
                    "surname": identity.surname,
                    "firstNames": identity.first_names,
                    "birthDate": identity.birth_date.map(|b| b.to_iso()),
                    "gender": identity.gender.unwrap_or(Gender::Unknown),
                    "nationality": identity.nationality,
                });
            }
            if client.has(Scope::NationalNumber) {
                if let Some(number) = &identity.national_number {
                    view["nationalNumber"] = json!(number.expose());
                }
            }
        }
    }
    Ok(Json(view))
}

/// `POST /v1/sessions/{session}/advice`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdviceBody {
    pub use_case: String,
}

pub async fn advice(
    State(state): State<AppState>,
    Extension(Caller(client)): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    request: Result<Json<AdviceBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    require(&client, Scope::Advice)?;
    let request = body(request)?;
    let id = parse_session(path)?;
    let decided = state
        .engine
        .advise(id, &request.use_case)
        .await
        .map_err(session_error)?;
    let decided_at = decided
        .decided_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut answer = json!({
        "session": id,
        "useCase": request.use_case,
        "decision": decided.advice.decision(),
        "decidedAt": decided_at,
    });
    if let Some(reason) = decided.advice.reason() {
        answer["reason"] = json!(reason.code());
    }
    Ok(Json(answer))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
}

/// The simulated readers' controls; not found unless the agent runs simulated.
fn simulator(state: &AppState) -> Result<&crate::sim::SimulatedReaders, ApiError> {
    state.simulator.as_deref().ok_or(ApiError::NOT_FOUND)
}

pub async fn simulator_cards(
    State(state): State<AppState>,
    Extension(Caller(client)): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    require(&client, Scope::Advice)?;
    let simulator = simulator(&state)?;
    Ok(Json(json!(simulator.cards())))
}

/// `POST /v1/simulator/insert`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InsertBody {
    pub card: String,
    pub reader: Option<String>,
}

/// `POST /v1/simulator/remove`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveBody {
    pub reader: Option<String>,
}

/// Waits (at most 2 s) until the engine announced `name`, so a simulator call answers once
/// the agent itself has seen the card arrive or leave.
async fn settled(
    events: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<crate::session::AgentEvent>>,
    name: &str,
) -> Option<std::sync::Arc<crate::session::AgentEvent>> {
    let wait = async {
        while let Ok(event) = events.recv().await {
            if event.name == name {
                return Some(event);
            }
        }
        None
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), wait)
        .await
        .ok()
        .flatten()
}

/// The simulator speaks reader ids, like the rest of the API.
fn reader_name(state: &AppState, id: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(id) = id else { return Ok(None) };
    state
        .engine
        .readers()
        .into_iter()
        .find(|r| r.id == id || r.name == id)
        .map(|r| Some(r.name))
        .ok_or(ApiError::SIMULATOR)
}

pub async fn simulator_insert(
    State(state): State<AppState>,
    Extension(Caller(client)): Extension<Caller>,
    request: Result<Json<InsertBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    require(&client, Scope::Advice)?;
    let request = body(request)?;
    let simulator = simulator(&state)?;
    let reader = reader_name(&state, request.reader.as_deref())?;
    let mut events = state.engine.subscribe();
    simulator
        .insert(reader.as_deref(), &request.card)
        .map_err(|_| ApiError::SIMULATOR)?;
    // The card's session, so a demo or test client needs no second request to find it.
    let inserted = settled(&mut events, "card-inserted").await;
    Ok(Json(json!({
        "reader": inserted.as_ref().and_then(|e| e.reader.clone()),
        "session": inserted.and_then(|e| e.session),
    })))
}

pub async fn simulator_remove(
    State(state): State<AppState>,
    Extension(Caller(client)): Extension<Caller>,
    request: Result<Json<RemoveBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    require(&client, Scope::Advice)?;
    let request = body(request)?;
    let simulator = simulator(&state)?;
    // Without a named reader the simulator takes its first one, as the engine lists them.
    let readers = state.engine.readers();
    let target = match reader_name(&state, request.reader.as_deref())? {
        Some(name) => name,
        None => readers
            .first()
            .map(|r| r.name.clone())
            .ok_or(ApiError::SIMULATOR)?,
    };
    let had_card = readers
        .iter()
        .any(|r| r.name == target && r.session.is_some());
    let mut events = state.engine.subscribe();
    simulator
        .remove(Some(&target))
        .map_err(|_| ApiError::SIMULATOR)?;
    if had_card {
        settled(&mut events, "card-removed").await;
    }
    Ok(StatusCode::NO_CONTENT)
}
