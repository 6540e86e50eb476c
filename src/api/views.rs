//! What the API answers, as types: the handlers build these, and the OpenAPI document
//! (`GET /v1/openapi.json`) is generated from them, so the contract cannot drift from the
//! code. Only what a client's scopes allow is ever put into a view.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::advice::{Basis, Channel, CircuitState, Decision, Labels, ServiceKind, UseCase};
use crate::api::Scope;
use crate::beid::{CardFault, Gender};
use crate::session::{
    reader_id, ChipVerdict, Decided, EngineEvent, ReadState, ReaderView, Recorded, Session,
    SpeechOutput,
};
use beid_core::contract::{Deviation, StaffDecision};

/// An RFC 3339 time, as every time in the API is written.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// Every error: a stable code and an English sentence, never internal error text, never
/// personal data.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorView {
    /// A stable code (`session_ended`, `scope_missing`, ...).
    pub error: &'static str,
    pub message: &'static str,
}

/// pcscd as the agent sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PcscdState {
    Up,
    Down,
}

impl From<bool> for PcscdState {
    fn from(up: bool) -> Self {
        if up {
            Self::Up
        } else {
            Self::Down
        }
    }
}

/// `GET /v1/status`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub version: &'static str,
    pub pcscd: PcscdState,
    pub readers: Vec<ReaderView>,
    pub upstream: UpstreamView,
    /// The use cases configured, with the channels they are offered on.
    pub use_cases: Vec<UseCaseView>,
    /// This device's channel.
    pub channel: Channel,
    /// Whether the readers are simulated (`serve --simulate`).
    pub simulator: bool,
    /// What the counter page needs to record a clerk's decision.
    pub counter: CounterView,
    /// What the kiosk page needs (`[kiosk]`).
    pub kiosk: KioskView,
    /// The calling client's scopes: a page offers only what its token may ask for (the
    /// counter page's "show the national number" button, for instance).
    pub scopes: Vec<Scope>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct UpstreamView {
    pub kind: ServiceKind,
    pub circuit: CircuitState,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct UseCaseView {
    pub id: String,
    pub labels: Labels,
    pub channels: Vec<Channel>,
}

impl From<&UseCase> for UseCaseView {
    fn from(use_case: &UseCase) -> Self {
        Self {
            id: use_case.id().to_owned(),
            labels: use_case.labels().clone(),
            channels: use_case.channels().to_vec(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CounterView {
    /// The reasons a clerk may give for deciding other than the advice.
    pub deviation_reasons: Vec<DeviationReasonView>,
    /// The clerk's words for the rule service's reason codes.
    pub reason_codes: BTreeMap<String, Labels>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DeviationReasonView {
    pub id: String,
    pub labels: Labels,
}

/// The kiosk page's settings.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KioskView {
    /// Where the outcome is spoken: `headset` (the citizen's headset only), `speaker`, or
    /// `none` (the page then says the answer is on the screen).
    pub speech_output: SpeechOutput,
}

/// Where a session's read stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Reading,
    Ready,
    Error,
}

/// `GET /v1/sessions/{session}`: the card summary, with what the client's scopes allow.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub session: Uuid,
    pub reader: String,
    pub state: SessionState,
    /// Why the read failed (state `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<CardFault>,
    /// Absent while reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<CardView>,
    /// Absent while reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authenticity: Option<AuthenticityView>,
    /// Scope `identity` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityView>,
    /// The advice decided so far in this session.
    pub advice: Vec<AdviceView>,
    /// The clerk's outcomes recorded so far in this session.
    pub outcomes: Vec<OutcomeView>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardView {
    /// `1.1`, `1.7`, `1.8`.
    pub applet_version: String,
    /// The card's end of validity (`YYYY-MM-DD`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    pub expired: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AuthenticityView {
    /// The National Register's signature is valid, its certificate chains to a Belgian
    /// root, and the chip proved genuine when that was checked.
    pub authentic: bool,
    /// Applet 1.8 anti-clone check, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chip: Option<ChipVerdict>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityView {
    pub surname: String,
    pub first_names: String,
    /// `YYYY-MM-DD`, `YYYY-MM` or `YYYY` as the card has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    pub gender: Gender,
    pub nationality: String,
}

/// One advice. On a kiosk device the upstream's texts (`reasonCode`, `reasonLabel`,
/// `clerkMessage`) are never served: they may say something about the citizen's situation.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdviceView {
    pub session: Uuid,
    pub use_case: String,
    pub decision: Decision,
    /// Why the advice is `unknown` (`upstream_timeout`, `card_expired`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub decided_at: String,
    /// Until when the upstream says its decision holds (`YYYY-MM-DD`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    /// What the decision rests on: the city's rules, or a registered status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basis: Option<Basis>,
    /// The upstream's reason code (counter devices only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// The clerk's words for `reasonCode`, when configured (counter devices only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_label: Option<Labels>,
    /// A sentence from the source for the clerk (counter devices only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clerk_message: Option<String>,
}

impl AdviceView {
    /// The view of `decided` for `session` and `use_case`; `clerk` says whether the
    /// upstream's texts may be shown (counter devices) and gives their labels.
    pub fn new(
        session: Uuid,
        use_case: &str,
        decided: &Decided,
        clerk: Option<&BTreeMap<String, Labels>>,
    ) -> Self {
        let advice = &decided.advice;
        let reason_code = clerk.and(advice.reason_code().map(str::to_owned));
        Self {
            session,
            use_case: use_case.to_owned(),
            decision: advice.decision(),
            reason: advice.reason().map(|r| r.code().to_owned()),
            decided_at: rfc3339(decided.decided_at),
            valid_until: advice.valid_until().map(|d| d.to_string()),
            basis: advice.basis(),
            reason_label: clerk
                .zip(reason_code.as_ref())
                .and_then(|(labels, code)| labels.get(code).cloned()),
            reason_code,
            clerk_message: clerk.and(advice.clerk_message().map(str::to_owned)),
        }
    }
}

/// `POST /v1/sessions/{session}/outcome`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutcomeBody {
    pub use_case: String,
    pub decision: StaffDecision,
    /// Required when the decision differs from the advice or the advice is `unknown`;
    /// refused otherwise.
    #[serde(default)]
    pub deviation: Option<Deviation>,
}

/// A recorded outcome.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeView {
    pub session: Uuid,
    pub use_case: String,
    /// The advice the clerk decided on.
    pub advice: Decision,
    pub decision: StaffDecision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deviation: Option<Deviation>,
    pub recorded_at: String,
}

impl OutcomeView {
    pub fn new(session: Uuid, recorded: &Recorded) -> Self {
        Self {
            session,
            use_case: recorded.use_case.clone(),
            advice: recorded.advice,
            decision: recorded.decision,
            deviation: recorded.deviation.clone(),
            recorded_at: rfc3339(recorded.recorded_at),
        }
    }
}

/// `GET /v1/sessions/{session}/national-number` (scope `national-number`; audited).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NationalNumberView {
    pub session: Uuid,
    pub national_number: String,
}

/// `POST /v1/sessions/{session}/advice`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdviceBody {
    pub use_case: String,
}

/// `POST /v1/events/ticket`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketView {
    /// Single use, for `GET /v1/events?ticket=`.
    pub ticket: String,
    pub expires_at: String,
}

/// The first event of every stream (and the one after `events-missed`): everything the
/// agent knows now. Events with a later id follow; they may repeat what the snapshot
/// already holds, so apply them idempotently.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotView {
    /// Always `snapshot`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub pcscd: PcscdState,
    pub readers: Vec<ReaderView>,
    pub sessions: Vec<SessionSummary>,
}

/// A card session in a snapshot: ids and states only, like every event.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    pub session: Uuid,
    pub reader: String,
    pub state: SessionState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentic: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<CardFault>,
    pub advice: Vec<DecisionOf<Decision>>,
    pub outcomes: Vec<DecisionOf<StaffDecision>>,
}

/// A use case and what was decided on it.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionOf<D> {
    pub use_case: String,
    pub decision: D,
}

impl SessionSummary {
    pub fn new(session: &Session) -> Self {
        let (state, authentic, error) = read_summary(&session.read_state());
        Self {
            session: session.id,
            reader: reader_id(&session.reader),
            state,
            authentic,
            error,
            advice: session
                .decided()
                .into_iter()
                .map(|(use_case, decided)| DecisionOf {
                    use_case,
                    decision: decided.advice.decision(),
                })
                .collect(),
            outcomes: session
                .outcomes()
                .into_iter()
                .map(|(use_case, recorded)| DecisionOf {
                    use_case,
                    decision: recorded.decision,
                })
                .collect(),
        }
    }
}

/// A read's state, verdict and fault.
pub fn read_summary(read: &ReadState) -> (SessionState, Option<bool>, Option<CardFault>) {
    match read {
        ReadState::Reading => (SessionState::Reading, None, None),
        ReadState::Ready(read) => (SessionState::Ready, Some(read.authenticity.authentic), None),
        ReadState::Failed(fault) => (SessionState::Error, None, Some(*fault)),
    }
}

/// `events-missed`: a slow subscriber fell behind and lost `missed` events; a fresh
/// `snapshot` follows.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EventsMissedView {
    /// Always `events-missed`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub missed: u64,
}

/// Everything the event stream carries (for the OpenAPI document).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum StreamEvent {
    Snapshot(SnapshotView),
    EventsMissed(EventsMissedView),
    Engine(EngineEvent),
}

/// `POST /v1/simulator/insert` (simulation only).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InsertBody {
    pub card: String,
    pub reader: Option<String>,
}

/// `POST /v1/simulator/remove` (simulation only).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveBody {
    pub reader: Option<String>,
}

/// The answer to `POST /v1/simulator/insert`: the card's reader and session, once the agent
/// saw it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct InsertedView {
    pub reader: Option<String>,
    pub session: Option<Uuid>,
}
