//! The `/v1` handlers, `/metrics`, and the simulator's controls.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use uuid::Uuid;

use super::clients::{Client, Scope};
use super::error::ApiError;
use super::guard::Caller;
use super::views::{
    read_summary, AdviceBody, AdviceView, AuthenticityView, CardView, CounterView,
    DeviationReasonView, IdentityView, InsertBody, InsertedView, KioskView, NationalNumberView,
    OutcomeBody, OutcomeView, RemoveBody, SessionView, StatusView, UpstreamView, UseCaseView,
};
use super::AppState;
use crate::advice::{Channel, Labels};
use crate::beid::Gender;
use crate::session::{
    reader_id, EngineError, EngineEvent, EngineSettings, OutcomeInput, Published, ReadState,
    ReaderView,
};

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
) -> Result<Json<StatusView>, ApiError> {
    require(&client, Scope::Advice)?;
    let engine = &state.engine;
    let settings = engine.settings();
    let upstream = settings.advice.status();
    Ok(Json(StatusView {
        version: env!("CARGO_PKG_VERSION"),
        pcscd: engine.pcscd_up().into(),
        readers: engine.readers(),
        upstream: UpstreamView {
            kind: upstream.kind,
            circuit: upstream.circuit,
        },
        use_cases: settings.catalogue.iter().map(UseCaseView::from).collect(),
        channel: settings.channel,
        simulator: state.simulator.is_some(),
        counter: CounterView {
            deviation_reasons: settings
                .counter
                .deviation_reasons
                .iter()
                .map(|reason| DeviationReasonView {
                    id: reason.id.clone(),
                    labels: reason.labels.clone(),
                })
                .collect(),
            reason_codes: settings.counter.reason_codes.clone(),
        },
        kiosk: KioskView {
            speech_output: settings.kiosk.speech_output,
        },
        scopes: client.scopes.clone(),
    }))
}

pub async fn readers(
    State(state): State<AppState>,
    Extension(Caller(client)): Extension<Caller>,
) -> Result<Json<Vec<ReaderView>>, ApiError> {
    require(&client, Scope::Advice)?;
    Ok(Json(state.engine.readers()))
}

/// The session id of the path. A segment that does not even decode (percent-encoded bytes
/// that are not UTF-8) names no session either: our JSON error, not axum's plain-text one.
fn parse_session(path: Result<Path<String>, PathRejection>) -> Result<Uuid, ApiError> {
    let Path(text) = path.map_err(|_| ApiError::SESSION_UNKNOWN)?;
    Uuid::parse_str(&text).map_err(|_| ApiError::SESSION_UNKNOWN)
}

/// The labels of the upstream's reason codes when the advice's texts may be shown: on a
/// counter device (a clerk reads them), never on a kiosk.
fn clerk_labels(settings: &EngineSettings) -> Option<&BTreeMap<String, Labels>> {
    (settings.channel == Channel::Counter).then_some(&settings.counter.reason_codes)
}

/// The card summary, with only what the client's scopes allow.
pub async fn session(
    State(state): State<AppState>,
    Extension(Caller(client)): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<SessionView>, ApiError> {
    require(&client, Scope::Advice)?;
    let session = state.engine.session(parse_session(path)?)?;
    let read = session.read_state();
    let (view_state, _, error) = read_summary(&read);
    let settings = state.engine.settings();
    let clerk = clerk_labels(&settings);
    let mut view = SessionView {
        session: session.id,
        reader: reader_id(&session.reader),
        state: view_state,
        error,
        card: None,
        authenticity: None,
        identity: None,
        advice: session
            .decided()
            .iter()
            .map(|(use_case, decided)| AdviceView::new(session.id, use_case, decided, clerk))
            .collect(),
        outcomes: session
            .outcomes()
            .values()
            .map(|recorded| OutcomeView::new(session.id, recorded))
            .collect(),
    };
    if let ReadState::Ready(read) = read {
        let identity = &read.identity;
        let today = time::OffsetDateTime::now_utc().date();
        view.card = Some(CardView {
            applet_version: read.applet.to_string(),
            valid_until: identity.validity_end.map(|d| d.to_string()),
            expired: identity.is_expired_on(today),
        });
        view.authenticity = Some(AuthenticityView {
            authentic: read.authenticity.authentic,
            chip: read.authenticity.chip.as_ref().map(|chip| chip.result),
        });
        if client.has(Scope::Identity) {
            view.identity = Some(IdentityView {
                surname: identity.surname.clone(),
                first_names: identity.first_names.clone(),
                birth_date: identity.birth_date.map(|b| b.to_iso()),
                gender: identity.gender.unwrap_or(Gender::Unknown),
                nationality: identity.nationality.clone(),
            });
        }
    }
    Ok(Json(view))
}

/// The national number, only for a client with the `national-number` scope and only when
/// it asks: the request is audited (the audit's `api_request` record names the client,
/// this route and the session).
pub async fn national_number(
    State(state): State<AppState>,
    Extension(Caller(client)): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<NationalNumberView>, ApiError> {
    require(&client, Scope::NationalNumber)?;
    let session = state.engine.session(parse_session(path)?)?;
    let number = match session.read_state() {
        ReadState::Ready(read) => read.identity.national_number.clone(),
        ReadState::Reading => return Err(ApiError::STILL_READING),
        ReadState::Failed(fault) => return Err(EngineError::ReadFailed(fault).into()),
    };
    let number = number.ok_or(ApiError::CARD_NOT_READ)?;
    Ok(Json(NationalNumberView {
        session: session.id,
        national_number: number.expose().to_owned(),
    }))
}

pub async fn advice(
    State(state): State<AppState>,
    Extension(Caller(client)): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    request: Result<Json<AdviceBody>, JsonRejection>,
) -> Result<Json<AdviceView>, ApiError> {
    require(&client, Scope::Advice)?;
    let request = body(request)?;
    let id = parse_session(path)?;
    let decided = state.engine.advise(id, &request.use_case).await?;
    let settings = state.engine.settings();
    Ok(Json(AdviceView::new(
        id,
        &request.use_case,
        &decided,
        clerk_labels(&settings),
    )))
}

/// `POST /v1/sessions/{session}/outcome`: the clerk's final decision.
pub async fn outcome(
    State(state): State<AppState>,
    Extension(Caller(client)): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    request: Result<Json<OutcomeBody>, JsonRejection>,
) -> Result<Json<OutcomeView>, ApiError> {
    require(&client, Scope::Advice)?;
    let request = body(request)?;
    let id = parse_session(path)?;
    let recorded = state
        .engine
        .record_outcome(
            id,
            OutcomeInput {
                use_case: request.use_case,
                decision: request.decision,
                deviation: request.deviation,
            },
        )
        .await?;
    Ok(Json(OutcomeView::new(id, &recorded)))
}

/// `GET /metrics`, for a client with the `metrics` scope (Prometheus' bearer token): the
/// outcome counters move as each citizen is served, so no other local process may read them.
pub async fn metrics(
    State(state): State<AppState>,
    Extension(Caller(client)): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    require(&client, Scope::Metrics)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics_text(),
    ))
}

/// The simulated readers' controls; not found unless the agent runs simulated.
fn simulator(state: &AppState) -> Result<&crate::sim::SimulatedReaders, ApiError> {
    state.simulator.as_deref().ok_or(ApiError::NOT_FOUND)
}

pub async fn simulator_cards(
    State(state): State<AppState>,
    Extension(Caller(client)): Extension<Caller>,
) -> Result<Json<Vec<&'static str>>, ApiError> {
    require(&client, Scope::Advice)?;
    let simulator = simulator(&state)?;
    Ok(Json(simulator.cards()))
}

/// Waits (at most 2 s) until the engine announced `name`, so a simulator call answers once
/// the agent itself has seen the card arrive or leave.
async fn settled(
    events: &mut tokio::sync::broadcast::Receiver<Arc<Published>>,
    name: &str,
) -> Option<Arc<Published>> {
    let wait = async {
        while let Ok(published) = events.recv().await {
            if published.event.name() == name {
                return Some(published);
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
) -> Result<Json<InsertedView>, ApiError> {
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
    Ok(Json(match inserted.as_deref().map(|p| &p.event) {
        Some(EngineEvent::CardInserted { reader, session }) => InsertedView {
            reader: Some(reader.clone()),
            session: Some(*session),
        },
        _ => InsertedView {
            reader: None,
            session: None,
        },
    }))
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
