//! RFC 7807 problem details as publiq writes them (`projects/errors/models/Error.json`):
//! the `type` URI tells the problem; `endUserMessage` is a sentence for the person at the
//! counter, passed on to the clerk (untrusted text: cleaned).

use std::collections::BTreeMap;

use beid_core::contract::{AnswerDecision, Basis};
use serde::Deserialize;

use crate::sources::{Reason, SourceAnswer};

/// The longest clerk message kept (the contract's `clerkMessage`).
const MAX_CLERK_MESSAGE_CHARS: usize = 300;

const UITPAS_PROBLEMS: &str = "https://api.publiq.be/probs/uitpas/";

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Problem {
    #[serde(rename = "type", default)]
    problem_type: Option<String>,
    #[serde(default)]
    end_user_message: Option<BTreeMap<String, String>>,
    /// `invalid-card-status`: the card's actual status.
    #[serde(default)]
    card_status: Option<String>,
}

/// The `endUserMessage` in `language` (else Dutch, which publiq always provides), cleaned.
fn end_user_message(problem: &Problem, language: &str) -> Option<String> {
    let messages = problem.end_user_message.as_ref()?;
    let text = messages.get(language).or_else(|| messages.get("nl"))?;
    Some(beid_core::text::untrusted(text, MAX_CLERK_MESSAGE_CHARS)).filter(|t| !t.is_empty())
}

/// The answer for a `400` or `404` of the passholder search: the problems that decide, or
/// `unknown` / `source_rejected`; with the end-user message.
pub(super) fn answer(status: u16, body: &[u8], language: &str) -> SourceAnswer {
    let problem: Problem = serde_json::from_slice(body).unwrap_or_default();
    let kind = problem
        .problem_type
        .as_deref()
        .and_then(|t| t.strip_prefix(UITPAS_PROBLEMS))
        .unwrap_or("");
    let answer = match (status, kind) {
        (_, "card-blocked" | "passholder-blocked") => SourceAnswer::unknown(Reason::CardBlocked),
        (_, "invalid-card-status") if problem.card_status.as_deref() == Some("BLOCKED") => {
            SourceAnswer::unknown(Reason::CardBlocked)
        }
        (404, "passholder-not-found" | "pass-not-found") => SourceAnswer::decided(
            AnswerDecision::NotEligible,
            Basis::RegisteredStatus,
            Some(Reason::NotRegistered),
        ),
        (400, "social-tariff-expired") => SourceAnswer::decided(
            AnswerDecision::NotEligible,
            Basis::RegisteredStatus,
            Some(Reason::SocialTariffExpired),
        ),
        _ => SourceAnswer::unknown(Reason::SourceRejected),
    };
    answer.with_message(end_user_message(&problem, language))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(kind: &str, extra: &str) -> Vec<u8> {
        format!(r#"{{"type":"https://api.publiq.be/probs/uitpas/{kind}","title":"t","status":"400"{extra}}}"#)
            .into_bytes()
    }

    #[test]
    fn blocked_cards_are_unknown_with_the_end_user_message_cleaned() {
        let body = problem(
            "card-blocked",
            r#","endUserMessage":{"nl":"Deze kaart is geblokkeerd.\u001b[31m Bel 85610100147.","fr":"Carte bloquée."}"#,
        );
        let a = answer(400, &body, "nl");
        assert_eq!(a.decision, AnswerDecision::Unknown);
        assert_eq!(a.reason, Some(Reason::CardBlocked));
        assert_eq!(
            a.clerk_message.as_deref(),
            Some("Deze kaart is geblokkeerd.[31m Bel [redacted].")
        );
        assert_eq!(
            answer(400, &body, "fr").clerk_message.as_deref(),
            Some("Carte bloquée.")
        );
        assert_eq!(
            answer(400, &body, "de")
                .clerk_message
                .as_deref()
                .map(|m| m.starts_with("Deze")),
            Some(true)
        );
        let status = problem("invalid-card-status", r#","cardStatus":"BLOCKED""#);
        assert_eq!(answer(400, &status, "nl").reason, Some(Reason::CardBlocked));
    }

    #[test]
    fn not_found_and_expired_decide_other_problems_do_not() {
        assert_eq!(
            answer(404, &problem("passholder-not-found", ""), "nl").decision,
            AnswerDecision::NotEligible
        );
        assert_eq!(
            answer(400, &problem("social-tariff-expired", ""), "nl").reason,
            Some(Reason::SocialTariffExpired)
        );
        for (status, body) in [
            (400, problem("invalid-insz-number", "")),
            (404, b"not json".to_vec()),
            (400, problem("passholder-not-found", "")),
        ] {
            assert_eq!(
                answer(status, &body, "nl").decision,
                AnswerDecision::Unknown
            );
        }
    }
}
