//! rules-http: the city's rule engine (entitlement on authentic sources, the LEZ use
//! cases), as a generic JSON connector: `POST` to the configured URL over HTTPS (mutual TLS
//! when a client certificate is configured) with
//! `{"<national_number_field>": "...", "<rule_field>": "<rule>", "requestId": "..."}`, and
//! the answer mapped by JSON pointers: the decision's values that mean eligible and not
//! eligible, a reason and a validity date. Anything unmapped is `unknown`.

use beid_core::contract::AnswerDecision;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::Value;
use time::Date;
use zeroize::Zeroizing;

use super::backoff::Backoff;
use super::http::{read_body, retry_after, transport_kind, transport_reason};
use super::{AnswerFuture, Health, Question, Reason, Source, SourceAnswer};
use crate::config::RulesHttpSettings;
use crate::tls::{self, TlsError};

/// The source's name.
pub const NAME: &str = "rules-http";

const MAX_BODY: usize = 256 * 1024;
/// The longest reason code passed on (the contract's `reasonCode`).
const MAX_REASON_CHARS: usize = 64;

pub struct RulesHttp {
    http: reqwest::Client,
    settings: RulesHttpSettings,
    backoff: Backoff,
}

impl RulesHttp {
    pub fn new(settings: &RulesHttpSettings) -> Result<Self, TlsError> {
        let identity = settings
            .client_cert
            .as_deref()
            .zip(settings.client_key.as_deref());
        Ok(Self {
            http: tls::http_client(settings.ca_bundle.as_deref(), identity, settings.timeout)?,
            settings: settings.clone(),
            backoff: Backoff::default(),
        })
    }

    async fn ask(&self, question: Question<'_>) -> SourceAnswer {
        if self.backoff.paused() {
            return SourceAnswer::unknown(Reason::SourceUnavailable);
        }
        let mut body = serde_json::Map::new();
        body.insert(
            self.settings.national_number_field.clone(),
            Value::String(question.national_number.expose().to_owned()),
        );
        body.insert(
            self.settings.rule_field.clone(),
            Value::String(question.rule.to_owned()),
        );
        body.insert(
            "requestId".into(),
            Value::String(question.request_id.to_string()),
        );
        let body = Zeroizing::new(Value::Object(body).to_string().into_bytes());
        let sent = self
            .http
            .post(self.settings.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body.to_vec())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(kind = transport_kind(&error), "rules-http: call failed");
                self.backoff.failed(None);
                return SourceAnswer::unknown(transport_reason(&error));
            }
        };
        let status = response.status().as_u16();
        if status == 429 || status >= 500 {
            self.backoff.failed(retry_after(&response));
            tracing::warn!(status, "rules-http: engine unavailable; pausing");
            return SourceAnswer::unknown(Reason::SourceUnavailable);
        }
        if status != 200 {
            tracing::warn!(status, "rules-http: engine refused the question");
            return SourceAnswer::unknown(Reason::SourceRejected);
        }
        let answer = match read_body(&mut response, MAX_BODY).await {
            Ok(body) => serde_json::from_slice::<Value>(&body).ok(),
            Err(_) => None,
        };
        match answer.and_then(|answer| map(&self.settings, &answer)) {
            Some(answer) => {
                self.backoff.succeeded();
                answer
            }
            None => {
                tracing::warn!("rules-http: the answer could not be mapped");
                self.backoff.failed(None);
                SourceAnswer::unknown(Reason::SourceMalformed)
            }
        }
    }
}

/// The configured mapping. `None`: no value at the decision pointer.
fn map(settings: &RulesHttpSettings, answer: &Value) -> Option<SourceAnswer> {
    {
        let decision = scalar(answer.pointer(&settings.decision_pointer)?)?;
        let reason = settings
            .reason_pointer
            .as_deref()
            .and_then(|pointer| answer.pointer(pointer))
            .and_then(scalar)
            .map(|text| beid_core::text::untrusted(&text, MAX_REASON_CHARS))
            .filter(|text| !text.is_empty())
            .map(Reason::Engine);
        let decision = if settings.eligible_values.contains(&decision) {
            AnswerDecision::Eligible
        } else if settings.not_eligible_values.contains(&decision) {
            AnswerDecision::NotEligible
        } else {
            // The engine could not decide, or said something we do not map: never a "no".
            return Some(SourceAnswer::unknown(
                reason.unwrap_or(Reason::SourceMalformed),
            ));
        };
        let mut mapped = SourceAnswer::decided(decision, settings.basis, reason);
        mapped.valid_until = settings
            .valid_until_pointer
            .as_deref()
            .and_then(|pointer| answer.pointer(pointer))
            .and_then(Value::as_str)
            .and_then(date);
        Some(mapped)
    }
}

/// A string, boolean or number as text.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// A full date, or the date of a date-time.
fn date(text: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text.get(..10)?, &format).ok()
}

impl Source for RulesHttp {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check<'a>(&'a self, question: Question<'a>) -> AnswerFuture<'a> {
        Box::pin(self.ask(question))
    }

    fn health(&self) -> Health {
        if self.backoff.paused() {
            Health::NotReady("backoff")
        } else {
            Health::Ready
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beid_core::contract::Basis;
    use serde_json::json;

    fn source(settings: impl FnOnce(&mut RulesHttpSettings)) -> RulesHttpSettings {
        let mut s = RulesHttpSettings {
            url: url::Url::parse("https://rules.city.example/decide").unwrap(),
            client_cert: None,
            client_key: None,
            ca_bundle: None,
            timeout: std::time::Duration::from_secs(1),
            national_number_field: "nationalNumber".into(),
            rule_field: "rule".into(),
            decision_pointer: "/result/decision".into(),
            reason_pointer: Some("/result/code".into()),
            valid_until_pointer: Some("/result/until".into()),
            eligible_values: vec!["YES".into(), "true".into()],
            not_eligible_values: vec!["NO".into(), "false".into()],
            basis: Basis::EntitlementRule,
        };
        settings(&mut s);
        s
    }

    #[test]
    fn maps_decisions_reasons_and_dates_by_pointer() {
        let rules = source(|_| {});
        let a = map(&rules, &json!({"result": {"decision": "YES", "code": "LEZ-65+", "until": "2026-12-31T23:59:59Z"}}))
            .unwrap();
        assert_eq!(a.decision, AnswerDecision::Eligible);
        assert_eq!(a.basis, Some(Basis::EntitlementRule));
        assert_eq!(a.reason, Some(Reason::Engine("LEZ-65+".into())));
        assert_eq!(
            a.valid_until.map(|d| d.to_string()),
            Some("2026-12-31".into())
        );
        let a = map(&rules, &json!({"result": {"decision": false}})).unwrap();
        assert_eq!(a.decision, AnswerDecision::NotEligible);
    }

    #[test]
    fn unmapped_values_are_unknown_never_a_no() {
        let rules = source(|s| s.basis = Basis::RegisteredStatus);
        let a = map(
            &rules,
            &json!({"result": {"decision": "MAYBE", "code": "data_missing"}}),
        )
        .unwrap();
        assert_eq!(a.decision, AnswerDecision::Unknown);
        assert_eq!(a.reason.as_ref().map(Reason::code), Some("data_missing"));
        assert!(map(&rules, &json!({"decision": "NO"})).is_none());
        assert!(map(&rules, &json!({"result": {"decision": {"x": 1}}})).is_none());
    }

    #[test]
    fn the_engines_reason_is_cleaned() {
        let rules = source(|_| {});
        let a = map(
            &rules,
            &json!({"result": {"decision": "NO", "code": "nn 85610100147\u{202e}"}}),
        )
        .unwrap();
        assert_eq!(a.reason.as_ref().map(Reason::code), Some("nn [redacted]"));
    }
}
