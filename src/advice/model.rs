//! The advice and what it is about: decisions, reasons, channels, requests.
//!
//! An [`Advice`] can only be built as "eligible" or "not eligible" from an answer of the rule
//! service (or of the simulated one standing in for it); everything that goes wrong on our side
//! builds an "unknown" advice with a [`Reason`]. So no failure can become a "no".

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use time::Date;

use super::catalogue::UseCase;
use crate::beid::NationalNumber;

/// What the advice says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The upstream says the citizen is eligible.
    Eligible,
    /// The upstream says the citizen is not eligible. Only ever from an upstream answer.
    NotEligible,
    /// No decision could be had; see the [`Reason`].
    Unknown,
}

impl Decision {
    /// The stable code: `eligible`, `not_eligible`, `unknown`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Eligible => "eligible",
            Self::NotEligible => "not_eligible",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Why an advice is `unknown`. Codes are stable (`snake_case`) and never tied to the citizen's
/// situation: they describe what went wrong on the way, not who the citizen is.
///
/// Serialized with serde's default (external) tagging: unit variants as their code
/// (`"upstream_timeout"`), [`Reason::UpstreamStatus`] as `{"upstream_status": 503}`.
/// [`Reason::code`] gives the flat code for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// No connection could be made (refused, unreachable, name not resolved).
    UpstreamUnavailable,
    /// No answer (status line and headers) within the time budget, or connect timeout.
    UpstreamTimeout,
    /// The answer started but its body did not arrive within the time budget (slow drip).
    UpstreamBodyTimeout,
    /// TLS failed on our side: typically the upstream's certificate is not trusted by the
    /// configured CA bundle, or its name does not match.
    UpstreamTls,
    /// The upstream ended the TLS session with an alert: typically it refused our client
    /// certificate.
    UpstreamTlsRejected,
    /// The upstream answered with a status other than 200.
    UpstreamStatus(u16),
    /// The body is not the contract's JSON (not JSON, missing or mistyped fields, bad date).
    UpstreamMalformed,
    /// The body's `decision` is not one of the contract's values.
    UpstreamUnknownDecision,
    /// The upstream answered `unknown`: it could not decide (a source down, a blocked card);
    /// its `reasonCode` and message say why, for the clerk.
    UpstreamUndecided,
    /// The body's `requestId` is not the one we sent.
    UpstreamMismatch,
    /// The body is larger than the configured limit.
    UpstreamTooLarge,
    /// Another transport failure after the request was sent (connection reset, protocol error).
    UpstreamError,
    /// The circuit breaker is open after repeated failures: the upstream was not asked.
    CircuitOpen,
    /// This use case is not offered on this channel: the upstream was not asked.
    UseCaseNotAllowed,
    /// The card's data failed its authenticity checks (set by the session layer).
    CardNotAuthentic,
    /// The card has expired (set by the session layer).
    CardExpired,
    /// The national number on the card is not valid (set by the session layer).
    NationalNumberInvalid,
}

impl Reason {
    /// The stable flat code, e.g. `upstream_timeout`, `upstream_status`.
    pub fn code(self) -> &'static str {
        match self {
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamBodyTimeout => "upstream_body_timeout",
            Self::UpstreamTls => "upstream_tls",
            Self::UpstreamTlsRejected => "upstream_tls_rejected",
            Self::UpstreamStatus(_) => "upstream_status",
            Self::UpstreamMalformed => "upstream_malformed",
            Self::UpstreamUnknownDecision => "upstream_unknown_decision",
            Self::UpstreamUndecided => "upstream_undecided",
            Self::UpstreamMismatch => "upstream_mismatch",
            Self::UpstreamTooLarge => "upstream_too_large",
            Self::UpstreamError => "upstream_error",
            Self::CircuitOpen => "circuit_open",
            Self::UseCaseNotAllowed => "use_case_not_allowed",
            Self::CardNotAuthentic => "card_not_authentic",
            Self::CardExpired => "card_expired",
            Self::NationalNumberInvalid => "national_number_invalid",
        }
    }

    /// The unit reason with this code (all but [`Reason::UpstreamStatus`]).
    pub fn from_code(code: &str) -> Option<Self> {
        const UNIT: [Reason; 16] = [
            Reason::UpstreamUnavailable,
            Reason::UpstreamTimeout,
            Reason::UpstreamBodyTimeout,
            Reason::UpstreamTls,
            Reason::UpstreamTlsRejected,
            Reason::UpstreamMalformed,
            Reason::UpstreamUnknownDecision,
            Reason::UpstreamUndecided,
            Reason::UpstreamMismatch,
            Reason::UpstreamTooLarge,
            Reason::UpstreamError,
            Reason::CircuitOpen,
            Reason::UseCaseNotAllowed,
            Reason::CardNotAuthentic,
            Reason::CardExpired,
            Reason::NationalNumberInvalid,
        ];
        UNIT.into_iter().find(|reason| reason.code() == code)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UpstreamStatus(status) => write!(f, "upstream_status({status})"),
            other => f.write_str(other.code()),
        }
    }
}

pub use beid_core::contract::{AnswerDecision, Basis, Channel};

/// One question to an [`AdviceService`](super::AdviceService). Its `Debug` masks the national
/// number (through [`NationalNumber`]'s own `Debug`).
#[derive(Debug, Clone, Copy)]
pub struct AdviceRequest<'a> {
    /// The citizen's national number, sent to the upstream and nowhere else.
    pub national_number: &'a NationalNumber,
    /// The use case, from the catalogue.
    pub use_case: &'a UseCase,
    /// The channel the question comes from.
    pub channel: Channel,
    /// This device's id, as configured.
    pub device_id: &'a str,
}

/// The answer of an [`AdviceService`](super::AdviceService).
///
/// Invariant: `decision` is [`Decision::Unknown`] exactly when `reason` is set; `reason_code`
/// and `valid_until` come only from an upstream answer. The fields are private so that the
/// invariant holds everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Advice {
    decision: Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<Reason>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_date"
    )]
    valid_until: Option<Date>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    basis: Option<Basis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    clerk_message: Option<String>,
    #[serde(rename = "latencyMs", serialize_with = "serialize_millis")]
    latency: Duration,
    /// The `requestId` of the question the upstream answered: the clerk's outcome is sent
    /// back under it. Not part of the advice's JSON.
    #[serde(skip)]
    request_id: Option<uuid::Uuid>,
}

impl Advice {
    /// An unknown advice for this reason. Anyone may build one (the session layer does for
    /// card problems); nobody outside this module can build a "yes" or a "no".
    pub fn unknown(reason: Reason, latency: Duration) -> Self {
        Self {
            decision: Decision::Unknown,
            reason: Some(reason),
            valid_until: None,
            reason_code: None,
            basis: None,
            clerk_message: None,
            latency,
            request_id: None,
        }
    }

    /// A decision as answered by the upstream (or the simulated upstream). The upstream's
    /// texts are untrusted: they arrive here already capped and redacted
    /// ([`beid_core::text::untrusted`]).
    pub(super) fn answered(answer: Answered, latency: Duration) -> Self {
        let (decision, reason) = match answer.decision {
            AnswerDecision::Eligible => (Decision::Eligible, None),
            AnswerDecision::NotEligible => (Decision::NotEligible, None),
            AnswerDecision::Unknown => (Decision::Unknown, Some(Reason::UpstreamUndecided)),
        };
        Self {
            decision,
            reason,
            valid_until: answer.valid_until,
            reason_code: answer.reason_code,
            basis: answer.basis,
            clerk_message: answer.clerk_message,
            latency,
            request_id: None,
        }
    }

    /// The same advice, answered to the question `request_id`.
    pub(super) fn with_request_id(mut self, request_id: uuid::Uuid) -> Self {
        self.request_id = Some(request_id);
        self
    }

    /// The `requestId` the upstream answered, if an upstream did.
    pub fn request_id(&self) -> Option<uuid::Uuid> {
        self.request_id
    }

    /// The same advice with the latency of the whole question.
    pub(super) fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Eligible, not eligible, or unknown.
    pub fn decision(&self) -> Decision {
        self.decision
    }

    /// Why the advice is unknown; `None` for a decision.
    pub fn reason(&self) -> Option<Reason> {
        self.reason
    }

    /// Until when the upstream says its decision holds, if it said so.
    pub fn valid_until(&self) -> Option<Date> {
        self.valid_until
    }

    /// The upstream's opaque reason code, if any. It may be tied to the citizen's situation:
    /// for the clerk at most, never for the kiosk.
    pub fn reason_code(&self) -> Option<&str> {
        self.reason_code.as_deref()
    }

    /// What the upstream says its decision rests on, if it said so.
    pub fn basis(&self) -> Option<Basis> {
        self.basis
    }

    /// The source's sentence for the clerk, if any (never for the kiosk).
    pub fn clerk_message(&self) -> Option<&str> {
        self.clerk_message.as_deref()
    }

    /// How long the whole question took, retries included.
    pub fn latency(&self) -> Duration {
        self.latency
    }
}

/// What an upstream answered, its texts already made safe.
#[derive(Debug, Clone)]
pub(super) struct Answered {
    pub decision: AnswerDecision,
    pub reason_code: Option<String>,
    pub valid_until: Option<Date>,
    pub basis: Option<Basis>,
    pub clerk_message: Option<String>,
}

fn serialize_date<S: Serializer>(date: &Option<Date>, serializer: S) -> Result<S::Ok, S::Error> {
    match date {
        Some(date) => serializer.collect_str(date),
        None => serializer.serialize_none(),
    }
}

fn serialize_millis<S: Serializer>(latency: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_have_stable_snake_case_codes() {
        assert_eq!(
            serde_json::to_value(Reason::UpstreamTimeout).unwrap(),
            serde_json::json!("upstream_timeout")
        );
        assert_eq!(
            serde_json::to_value(Reason::UpstreamStatus(503)).unwrap(),
            serde_json::json!({"upstream_status": 503})
        );
        assert_eq!(Reason::UpstreamStatus(503).code(), "upstream_status");
        assert_eq!(Reason::from_code("circuit_open"), Some(Reason::CircuitOpen));
        assert_eq!(Reason::from_code("upstream_status"), None);
        for code in ["upstream_tls", "upstream_mismatch", "use_case_not_allowed"] {
            let reason = Reason::from_code(code).unwrap();
            assert_eq!(
                serde_json::to_value(reason).unwrap(),
                serde_json::json!(code)
            );
        }
    }

    #[test]
    fn unknown_advice_serializes_with_its_reason() {
        let advice = Advice::unknown(Reason::CircuitOpen, Duration::from_millis(3));
        assert_eq!(
            serde_json::to_value(&advice).unwrap(),
            serde_json::json!({"decision": "unknown", "reason": "circuit_open", "latencyMs": 3})
        );
    }

    #[test]
    fn answered_advice_serializes_its_date() {
        let date = Date::from_calendar_date(2026, time::Month::December, 31).unwrap();
        let advice = Advice::answered(
            Answered {
                decision: AnswerDecision::NotEligible,
                reason_code: Some("R7".into()),
                valid_until: Some(date),
                basis: Some(Basis::EntitlementRule),
                clerk_message: None,
            },
            Duration::ZERO,
        );
        assert_eq!(advice.decision(), Decision::NotEligible);
        assert_eq!(
            serde_json::to_value(&advice).unwrap(),
            serde_json::json!({"decision": "not_eligible", "validUntil": "2026-12-31",
                               "reasonCode": "R7", "basis": "entitlement_rule", "latencyMs": 0})
        );
    }
}
