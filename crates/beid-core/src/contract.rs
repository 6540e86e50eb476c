//! The upstream contract (`docs/upstream-openapi.yaml`): the bodies the agent sends and the
//! rule service (the city's `beid-gateway`, or any service speaking the contract) answers.
//!
//! One description for both sides: the agent serialises [`EligibilityCheck`] and reads
//! [`EligibilityAnswer`]; the gateway does the opposite. The YAML document is checked
//! against these types by the agent's tests, so the three cannot drift apart.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::Date;
use uuid::Uuid;

use crate::national_number::NationalNumber;

/// Where the citizen stands: at a counter with a clerk, or alone at a kiosk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A counter PC operated by a clerk.
    Counter,
    /// A self-service kiosk.
    Kiosk,
}

impl Channel {
    /// The contract's value: `counter` or `kiosk`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Kiosk => "kiosk",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /v1/eligibility-checks`: one question. Its `Debug` masks the national number
/// (through [`NationalNumber`]'s own `Debug`); only serialisation writes the digits, because
/// the request body is the one place they must go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EligibilityCheck {
    /// A fresh UUID v4 per question, kept across retries; the answer must echo it.
    pub request_id: Uuid,
    /// The upstream rule name of the use case.
    pub use_case: String,
    /// The citizen's national number: 11 digits (the agent verified the check digits).
    #[serde(
        serialize_with = "expose_national_number",
        deserialize_with = "parse_national_number"
    )]
    pub national_number: NationalNumber,
    /// Where the question comes from.
    pub channel: Channel,
    /// The asking device's configured id (its client certificate's CN at the gateway).
    pub device_id: String,
}

fn expose_national_number<S: Serializer>(
    number: &NationalNumber,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(number.expose())
}

fn parse_national_number<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<NationalNumber, D::Error> {
    let text = zeroize::Zeroizing::new(String::deserialize(deserializer)?);
    // The error names the problem (length, non-digit), never the value.
    NationalNumber::parse(text.as_bytes()).map_err(serde::de::Error::custom)
}

/// The rule service's decision. `eligible` and `not_eligible` are decisions; `unknown` says
/// the service could not decide (a source down, a blocked card) and why, in `reasonCode`,
/// without counting as a failure of the service itself. Any other value is `unknown` at the
/// agent too: never a "no".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnswerDecision {
    Eligible,
    NotEligible,
    Unknown,
}

/// What a decision rests on, so the clerk can weigh it: a registry's status is not a
/// decision on entitlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The city's rules on authentic sources decided entitlement.
    EntitlementRule,
    /// A status registered in a card system (e.g. UiTPAS kansentarief): what was registered,
    /// not whether the citizen is entitled today.
    RegisteredStatus,
    /// A value this version does not know (a newer service): shown as "not stated".
    #[serde(other)]
    Unspecified,
}

impl Basis {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::EntitlementRule => "entitlement_rule",
            Self::RegisteredStatus => "registered_status",
            Self::Unspecified => "unspecified",
        }
    }
}

/// `200` answer to [`EligibilityCheck`]. Further fields are allowed and ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EligibilityAnswer {
    /// The question's `requestId`, echoed.
    pub request_id: Uuid,
    pub decision: AnswerDecision,
    /// An opaque code for the clerk (untrusted text: the agent caps and redacts it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// Until when the decision holds (RFC 3339 full-date).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_date"
    )]
    pub valid_until: Option<Date>,
    /// What the decision rests on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<Basis>,
    /// A sentence for the clerk from the source (e.g. UiTPAS's `endUserMessage`), in the
    /// source's language. Untrusted text: capped and redacted before it is shown; never
    /// shown on a kiosk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clerk_message: Option<String>,
}

/// The clerk's final decision on a use case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StaffDecision {
    Granted,
    NotGranted,
}

impl StaffDecision {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::NotGranted => "not_granted",
        }
    }
}

/// Why the clerk decided other than the advice (or decided on an `unknown` advice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Deviation {
    /// One of the configured deviation reasons (`recently_moved`, ...).
    pub reason: String,
    /// At most 200 characters, never a national number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `POST /v1/eligibility-checks/{requestId}/outcome`: what the clerk finally decided. No
/// national number: the request id ties it to the question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeFeedback {
    pub decision: StaffDecision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deviation: Option<Deviation>,
}

mod optional_date {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Iso8601;
    use time::Date;

    pub fn serialize<S: Serializer>(date: &Option<Date>, serializer: S) -> Result<S::Ok, S::Error> {
        match date {
            Some(date) => serializer.collect_str(date),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Date>, D::Error> {
        let Some(text) = Option::<String>::deserialize(deserializer)? else {
            return Ok(None);
        };
        Date::parse(&text, &Iso8601::DATE)
            .map(Some)
            .map_err(|_| serde::de::Error::custom("validUntil is not an RFC 3339 full-date"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes the agent logs, counts and shows are the contract's JSON values.
    #[test]
    fn every_code_is_its_json_value() {
        let json = |value: serde_json::Value| value.as_str().unwrap().to_owned();
        for channel in [Channel::Counter, Channel::Kiosk] {
            let value = json(serde_json::to_value(channel).unwrap());
            assert_eq!(channel.as_str(), value);
            assert_eq!(channel.to_string(), value);
        }
        for decision in [StaffDecision::Granted, StaffDecision::NotGranted] {
            assert_eq!(
                decision.code(),
                json(serde_json::to_value(decision).unwrap())
            );
        }
        for basis in [Basis::EntitlementRule, Basis::RegisteredStatus] {
            let code = basis.code();
            assert_eq!(code, json(serde_json::to_value(basis).unwrap()));
        }
        assert_eq!(Basis::Unspecified.code(), "unspecified");
    }

    fn number() -> NationalNumber {
        // Month 61: no INSZ uses it, so this is nobody's number.
        NationalNumber::parse(b"85613003318").unwrap()
    }

    #[test]
    fn check_serialises_exactly_the_five_fields() {
        let check = EligibilityCheck {
            request_id: Uuid::nil(),
            use_case: "uitpas-kansentarief".into(),
            national_number: number(),
            channel: Channel::Kiosk,
            device_id: "balie-3".into(),
        };
        assert_eq!(
            serde_json::to_value(&check).unwrap(),
            serde_json::json!({"requestId": Uuid::nil(), "useCase": "uitpas-kansentarief",
                "nationalNumber": "85613003318", "channel": "kiosk", "deviceId": "balie-3"})
        );
        assert!(!format!("{check:?}").contains("85613003318"));
    }

    #[test]
    fn check_refuses_extra_fields_and_bad_numbers_without_echoing_them() {
        let extra = r#"{"requestId":"00000000-0000-0000-0000-000000000000","useCase":"u",
            "nationalNumber":"85613003318","channel":"counter","deviceId":"d","x":1}"#;
        assert!(serde_json::from_str::<EligibilityCheck>(extra).is_err());
        let bad = r#"{"requestId":"00000000-0000-0000-0000-000000000000","useCase":"u",
            "nationalNumber":"8561300331X","channel":"counter","deviceId":"d"}"#;
        let error = serde_json::from_str::<EligibilityCheck>(bad).unwrap_err();
        assert!(!error.to_string().contains("8561300331"), "{error}");
    }

    #[test]
    fn answer_reads_optional_fields_and_ignores_unknown_ones() {
        let answer: EligibilityAnswer = serde_json::from_str(
            r#"{"requestId":"00000000-0000-0000-0000-000000000000","decision":"not_eligible",
                "validUntil":"2026-12-31","basis":"registered_status","extra":true}"#,
        )
        .unwrap();
        assert_eq!(answer.decision, AnswerDecision::NotEligible);
        assert_eq!(answer.basis, Some(Basis::RegisteredStatus));
        assert_eq!(answer.valid_until.unwrap().to_string(), "2026-12-31");
        let newer: EligibilityAnswer = serde_json::from_str(
            r#"{"requestId":"00000000-0000-0000-0000-000000000000","decision":"eligible","basis":"ai"}"#,
        )
        .unwrap();
        assert_eq!(newer.basis, Some(Basis::Unspecified));
        for bad in [
            r#"{"requestId":"00000000-0000-0000-0000-000000000000","decision":"maybe"}"#,
            r#"{"requestId":"00000000-0000-0000-0000-000000000000","decision":"eligible","validUntil":"31/12/2026"}"#,
            r#"{"decision":"eligible"}"#,
        ] {
            assert!(
                serde_json::from_str::<EligibilityAnswer>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn outcome_feedback_has_no_room_for_personal_fields() {
        let feedback = OutcomeFeedback {
            decision: StaffDecision::Granted,
            deviation: Some(Deviation {
                reason: "recently_moved".into(),
                note: None,
            }),
        };
        assert_eq!(
            serde_json::to_value(&feedback).unwrap(),
            serde_json::json!({"decision": "granted", "deviation": {"reason": "recently_moved"}})
        );
        assert!(serde_json::from_str::<OutcomeFeedback>(
            r#"{"decision":"granted","nationalNumber":"85613003318"}"#
        )
        .is_err());
    }
}
